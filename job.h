/* job.h: finding the program inside the root, running it, and (async) jobs. */
#ifndef LSO_JOB_H
#define LSO_JOB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "http.h"
#include "json.h"

/* What resolving a requested name inside a root found. */
enum resolve {
	RESOLVE_OK,
	RESOLVE_OUTSIDE,         /* escapes the root: 403 */
	RESOLVE_MISSING,         /* 410 */
	RESOLVE_NOT_FILE,        /* 503 */
	RESOLVE_NOT_EXECUTABLE,  /* 403 */
};

/* A program that passed the checks: its resolved path and the inode checked. */
struct program {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
};

/* A uuid4 in its 36-character text form. */
#define JOB_ID_LEN 36
typedef char job_id[JOB_ID_LEN + 1];

/* The result of one run, as the API reports it. */
struct run_result {
	struct jbuf output;  /* raw bytes: stdout, then stderr, then any note of ours */
	int return_code;     /* exit status, -N for signal N, -1 timeout/start failure */
	bool timed_out;
	bool canceled;
	bool start_failed;   /* the program never ran: output says why */
};

/* Resolve name inside root: an executable (job_resolve), or any regular file. */
enum resolve job_resolve(const char *root, const char *name, struct program *prog);
enum resolve job_resolve_file(const char *root, const char *name, bool need_exec,
    struct program *prog);

/*
 * Log one line: to journald with the field LSO_JOB_ID=id when stderr is the
 * journal's, else to stderr.
 */
void job_log(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Look up once what every request of this process would read again: our
 * unit's name (for the journal) and the signals we ignore (reset for a
 * program). For burst mode, before it forks a child per connection.
 */
void job_preload(void);

/*
 * Burst mode: job_log hands journal messages to fd (a packet pipe; -1: off)
 * for the burst process to forward with job_log_forward, one whole
 * message (a datagram of journald's native protocol) at a time.
 */
void job_log_relay(int fd);
int job_log_forward(const char *msg, size_t len);

/* Fill id with a fresh random uuid4; -1 if the kernel has no randomness for us. */
int job_new_id(job_id id);

/* How an async job's runner steers a run. */
struct run_control {
	int cancel_fd;            /* readable: cancel the run */
	int lock_fd;              /* the job's lock file, where the program's pid is noted */
	long timeout_sec;         /* overall; 0: EXECUTABLE_TIMEOUT_SEC */
	long idle_timeout_sec;    /* silence that ends the run as a timeout; 0: none */
	void (*on_stdout)(const char *data, size_t len, void *ctx);  /* as it arrives */
	void *ctx;
	const char *const *extra_env;  /* NULL-terminated, added to the program's */
	pid_t keep_pid;           /* a child of the runner that is not the program's */
};

/*
 * Run prog with argv args[0..nargs) and wait for it, within the configured
 * limits; control is NULL for a sync run.
 */
void job_run(const struct program *prog, const char *const *args, size_t nargs,
    const char *id, const struct run_control *control, struct run_result *result);

/* An async job to record and start. */
struct job_request {
	const char *kind;                /* "execute" or "playbook" */
	const char *name;                /* as requested */
	const char *const *args;
	size_t nargs;
	const char *callback;            /* NULL: none */
	const struct program *prog;      /* the executable, or the playbook */
	/* playbooks only */
	const char *inventory;           /* YAML, every client string !unsafe (yaml.h) */
	const char *extra_vars;          /* likewise */
	const char *progress;            /* NULL: none */
	bool incremental;
};

struct job;

bool job_id_valid(const char *id);

/*
 * Record a queued job (its runner's lock taken first); -1 with errno when
 * the state directory cannot hold it. Then answer the client, then job_start.
 */
int job_submit(const struct job_request *request, const char *id, struct job **job);

/* Detach and run the job; returns in the instance once it may exit. */
void job_start(struct job *job);

/* GET and DELETE /api/jobs/{id}: the status, the body in out. */
enum status job_show(const char *id, struct jbuf *out);
enum status job_cancel(const char *id, struct jbuf *out);

/* Settle every job a dead runner left behind (lso --recover, at boot). */
int job_recover(void);

/* Append {"output": ..., "return_code": ..., "status": ...} for a finished run. */
void job_result_json(struct jbuf *b, const struct run_result *result);

void job_result_free(struct run_result *result);

#endif
