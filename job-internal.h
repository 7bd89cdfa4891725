/*
 * job-internal.h: what the job side shares: its limits, a job as its record
 * holds it, and the functions of record.c, callback.c and detach.c. lso.c
 * sees jobs only through job.h.
 */
#ifndef LSO_JOB_INTERNAL_H
#define LSO_JOB_INTERNAL_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "job.h"
#include "json.h"
#include "resolve.h"
#include "run.h"
#include "spool.h"

/*
 * Limits of running a job, each named once (area, what, unit). The limits
 * of serving a request are in http.h; the settings' defaults in config.c.
 */
/* After SIGTERM, how long the process group has before SIGKILL. */
#define RUN_KILL_GRACE_MS 2000
/* After the program exits, how long its leftovers may keep its pipes open. */
#define RUN_EXIT_LINGER_MS 1000
/* Without a pidfd (old kernels, valgrind), how often the watch looks for the exit. */
#define RUN_EXIT_POLL_MS 50
/* The longest single wait of the watch (poll takes an int). */
#define RUN_POLL_MAX_MS 60000
/* At most this many passes over /proc for a lost job's leftovers (each may find new forks). */
#define RUN_LEFTOVER_PASSES 20
/* Between two rounds of killing escapees. */
#define RUN_KILL_POLL_MS 10
/* How often a queued job looks for a free slot. */
#define SLOT_WAIT_POLL_MS 100
/* Slots when MAX_THREAD_POOL_WORKERS is 0: upstream's min(32, ncpu + 4). */
#define SLOT_DEFAULT_MAX 32
#define SLOT_DEFAULT_CPU_EXTRA 4
/* How long detaching into a systemd scope may take, and how often we look. */
#define DETACH_SCOPE_WAIT_MS 5000
#define DETACH_SCOPE_POLL_MS 10
/* Callback retries wait 1 s, 2 s, 4 s, ... at most this long. */
#define CALLBACK_BACKOFF_FIRST_MS 1000
#define CALLBACK_BACKOFF_MAX_MS 60000
/* How long a cancel waits for a just-started runner to name itself, and how often it looks. */
#define CANCEL_RUNNER_WAIT_MS 1000
#define CANCEL_RUNNER_POLL_MS 10
/* Progress: at most one POST per interval, each at most this many bytes of lines. */
#define PROGRESS_INTERVAL_MS 200
#define PROGRESS_BODY_MAX_BYTES (256 * 1024)
/* Blocks waiting for the progress process beyond this are dropped, not waited for. */
#define PROGRESS_PENDING_MAX_BYTES (1024 * 1024)
/* How often the runner looks whether the progress process has exited. */
#define PROGRESS_EXIT_POLL_MS 20
/* Longer stdout lines of a playbook are cut: Ansible's are short. */
#define PLAYBOOK_LINE_MAX_BYTES 65536
/* A runner whose result cannot be recorded tries again after 1 s, 2 s, ... at most this long. */
#define RECORD_RETRY_FIRST_MS 1000
#define RECORD_RETRY_MAX_MS 30000
/* ... and gives up after this long in all (then the job settles as lost). */
#define RECORD_RETRY_TOTAL_MS (10 * 60 * 1000)
/* A sweep starts at most this many callback deliveries (a process each); the rest wait for the next. */
#define SWEEP_DELIVERIES_MAX 64
/* A record that keeps trading places while one waits for its lock: give up after this. */
#define RECORD_OPEN_TRIES 8
/* A record's status lies within its first bytes (record_status). */
#define RECORD_HEAD_BYTES 256
/* Copying a record without copy_file_range: this much at once. */
#define RECORD_COPY_BYTES 65536
/* A record sent by GET is copied first: up to this size into memory, larger ones to disk. */
#define RECORD_COPY_IN_MEMORY_MAX_BYTES (256 * 1024)
/* A record's callback, its last member, lies within its last bytes (record_snapshot). */
#define RECORD_TAIL_BYTES (64 * 1024)

#define JOB_MSG_LOST "Job lost: the process running it ended without recording a result."

/* Where a job is; its name in records and callbacks is job_status_names[status]. */
enum job_status {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_SUCCESSFUL,   /* the first of the final statuses */
	JOB_FAILED,
	JOB_TIMEOUT,
	JOB_CANCELED,
	JOB_LOST,         /* its runner ended without recording a result */
	JOB_STATUS_COUNT
};

/* A job as its record holds it. Strings are owned (malloc'ed). */
struct job {
	job_id id;
	enum job_kind kind;
	char *name;
	char **args;
	size_t nargs;
	char *callback_url;
	enum job_status status;
	char created_at[32], started_at[32], finished_at[32]; /* "" is null */
	struct run_result result;
	bool has_result;
	bool result_recorded;  /* read from the record, output left there: copied, never loaded */
	long attempts;
	bool delivered;
	char *last_error;
	struct program prog;
	int lock_fd;   /* held by the job's runner for its whole life */
	/* playbooks */
	char *progress_url;
	bool incremental;
	/* Its non-empty stdout lines, each as ,"escaped", in an unnamed file (callback_add_line). */
	bool has_lines;
	bool lines_in_memory;
	int lines_fd;
	off_t lines_len;
	size_t lines_raw_bytes;  /* of the lines kept, each with its newline: within LSO_MAX_OUTPUT_BYTES */
	char *failure;             /* why the run failed without running, for the callback */
};

/* --- job.c --- */

extern const char *const job_status_names[JOB_STATUS_COUNT];
extern const char *const job_kind_names[2];

/* Free what j owns and close its lock; j may be loaded again. */
void job_free(struct job *j);

/* --- record.c: the state directory --- */

/* "$LSO_STATE_DIR/<sub>/<file><suffix>" into buf; false when it does not fit. */
bool record_path(char buf[PATH_MAX], const char *sub, const char *file, const char *suffix);

/* Create the state directory and its jobs/ and slots/. */
int record_make_dirs(void);

/* Now in UTC, RFC 3339 with milliseconds. */
void record_now(char buf[32]);

/*
 * Write j's record (first: it is created), on disk when this returns; -1
 * with errno, logged (a first record is then removed). The writer holds j->lock_fd.
 */
int record_write(const struct job *j, bool first);

/* After the last record: empty the spare. */
void record_done(const struct job *j);

/* The result's text as j's record holds it, {"output":...,"status":...}, into s; -1 with errno. */
int record_result_text(const char *id, struct spool_sink *s);

/* A playbook's saved callback body (callback_save_body): opened to write (created, emptied) or to read; -1 errno. */
int record_callback_open(const char *id, bool to_write);

/* The file's data on disk, when LSO_SYNC_RECORDS asks for it. */
int record_sync_data(int fd);

/* A job's record as stored (malloc'ed), read under a shared lock; NULL with errno. */
char *record_text(const char *id, size_t *len);

/* Load a record into j; -1 with errno ENOENT when there is none. */
int record_read(const char *id, struct job *j);

/* The status in a record's head (no parse of the rest); -1 with errno. */
int record_status(const char *id, enum job_status *status);

/* text[0..len) of a record into out, its callback URL's password as "***". */
void record_mask_password(struct jbuf *out, const char *text, size_t len);

/*
 * A descriptor to read the whole record from, at its start, and its size:
 * a private copy, or the record under a shared lock; -1 with errno (ENOENT:
 * none, or empty).
 */
int record_snapshot(const char *id, off_t *size);

/* The job's lock file, opened (not locked); -1 with errno. */
int record_lock_open(const char *id);

/* A refused submission's lock file, removed. */
void record_lock_remove(const char *id);

/* The job's lock taken if nobody holds it: its runner is gone. -1 while it lives. */
int record_lock_if_dead(const char *id);

/* Note the runner's and its program's pids in the lock file (program 0: none yet). */
void record_lock_note_pids(int lock_fd, pid_t runner, pid_t program);

/* The pids in a job's lock file; false when it names no runner. */
bool record_lock_pids(const char *id, pid_t *runner, pid_t *program);

/* --- callback.c: POSTs with libcurl, loaded here only --- */

struct callback_curl;

/* libcurl, loaded; NULL with why set. */
struct callback_curl *callback_load_curl(char *why, size_t why_size);

/* One POST: the HTTP status, or 0 with why set when none came back. */
long callback_post(struct callback_curl *c, const char *url, const struct jbuf *body,
    char *why, size_t why_size);

/* A playbook's stdout line (not empty, no newline) kept for its callback, within LSO_MAX_OUTPUT_BYTES. */
void callback_add_line(struct job *j, const char *line, size_t len);

/*
 * Before a playbook's final record: the body its callback will send, as
 * status says, saved beside the record (<id>.callback) and on disk, so a
 * delivery resumed from the record sends the same bytes. Logged on failure.
 */
void callback_save_body(const struct job *j, enum job_status status);

/* Each non-empty line of text as a JSON string of the array being written. */
void callback_json_lines(struct jbuf *b, const char *text, size_t len, bool *first);

/* POST j's result to its callback URL, with retries; recorded after every attempt. */
void callback_deliver(struct job *j);

/* Is there a callback left to deliver for a dead runner's job? */
bool callback_pending(const struct job *j);

/* --- cancel.c: the runner's SIGTERM, and DELETE's mark for a runner not yet named --- */

extern volatile sig_atomic_t cancel_requested;
extern int cancel_pipe[2];

/* Hold SIGTERM and SIGINT back (the mask before in saved), and let them through again. */
void cancel_block(sigset_t *saved);
void cancel_unblock(const sigset_t *saved);

/* The runner's handler: before it names itself, so no DELETE finds it unprotected. */
void cancel_install(void);

/* Wait until canceled or ms pass: true when canceled. */
bool cancel_wait(int ms);

/* DELETE's mark for a runner that has not named itself yet; -1 with errno. */
int cancel_mark(const char *id);

/* The runner, once named: a mark left by an earlier DELETE cancels it (and is removed). */
void cancel_take_mark(const char *id);

/* A lost job's mark, never taken by its runner, removed. */
void cancel_drop_mark(const char *id);

/* --- detach.c --- */

/*
 * Leave the instance behind: returns in the instance once the job no longer
 * depends on it; the job's own process runs work(j) and exits. scope_kind
 * names the scope, lso-<scope_kind>-<id>.scope. A cancelable process (a
 * runner) has its SIGTERM handler before it names itself. The process holds
 * none of the instance's connections.
 */
void detach_job(struct job *j, const char *scope_kind, bool cancelable, void (*work)(struct job *));

/* SIGKILL what is left in a dead runner's scope. */
void detach_kill_scope(const char *id);

#endif
