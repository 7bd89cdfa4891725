/* job.h: async jobs as lso.c sees them: submit, start, show, cancel, recover (job.c). */
#ifndef LSO_JOB_H
#define LSO_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "json.h"
#include "lso.h"
#include "resolve.h"

/* A uuid4 in its 36-character text form. */
#define JOB_ID_LEN 36
typedef char job_id[JOB_ID_LEN + 1];

/* What a job runs; its name in records is job_kind_names[kind]. */
enum job_kind {
	JOB_KIND_EXECUTE,
	JOB_KIND_PLAYBOOK,
};

/* An async job to record and start. */
struct job_request {
	enum job_kind kind;
	const char *name;                /* as requested */
	const char *const *args;
	size_t nargs;
	const char *callback;            /* NULL: none */
	const struct program *prog;      /* the executable, or the playbook */
	/* playbooks only */
	const char *inventory;           /* YAML, every client string !unsafe (yaml.h) */
	const struct cJSON *extra_vars;  /* the client's object, NULL: none; written as YAML likewise */
	const char *progress;            /* NULL: none */
	bool incremental;
};

struct job;

/* Fill id with a fresh random uuid4; -1 if the kernel has no randomness for us. */
int job_new_id(job_id id);

bool job_id_valid(const char *id);

/*
 * Before job_submit: a place in the queue (LSO_MAX_QUEUED jobs waiting for a
 * slot at most). 0, or -1 with errno: EWOULDBLOCK when the queue is full
 * (answer 503), another when the tickets cannot be counted (answer 500).
 */
int job_admit(void);

/*
 * Record a queued job (its runner's lock taken first); -1 with errno when
 * the state directory cannot hold it. Then answer the client, then job_start.
 */
int job_submit(const struct job_request *request, const char *id, struct job **job);

/* Detach and run the job; returns in the instance once it may exit. */
void job_start(struct job *job);

/*
 * GET /api/jobs/{id}: JOB_SHOWN with a descriptor to send the record from
 * (record_fd, at its start, size bytes; the caller closes it), or
 * JOB_MISSING (no record), or JOB_UNREADABLE (errno). The record is never
 * loaded into memory: it may hold LSO_MAX_OUTPUT_BYTES of output.
 */
enum outcome job_show(const char *id, int *record_fd, off_t *size);

/*
 * DELETE /api/jobs/{id}: JOB_CANCELING with the record appended to record;
 * JOB_MISSING (no record), JOB_UNREADABLE (errno), or JOB_FINISHED (too
 * late to cancel).
 */
enum outcome job_cancel(const char *id, struct jbuf *record);

/* Settle every job a dead runner left behind (lso --recover, at boot). */
int job_recover(void);

#endif
