/* run.h: running one program and waiting for it, within the configured limits (run.c). */
#ifndef LSO_RUN_H
#define LSO_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "json.h"
#include "resolve.h"
#include "spool.h"

/* Messages of ours in the output, each on a line of its own. */
#define RUN_MSG_TIMED_OUT "Execution timed out."
#define RUN_MSG_CANCELED "Execution canceled."

/* The result of one run, as the API reports it. */
struct run_result {
	/*
	 * The output, raw bytes: what the program printed, stdout then stderr,
	 * kept in an unnamed file (spool.h), then any note of ours in memory.
	 */
	bool has_spool;      /* spool_fd is open */
	int spool_fd;
	off_t spooled;       /* its bytes [0, spooled) */
	struct jbuf output;  /* after them: our notes */
	int return_code;     /* exit status, -N for signal N, -1 timeout/start failure */
	bool timed_out;
	bool canceled;
	bool start_failed;   /* the program never ran: output says why */
};

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
	int pass_fd;              /* given to the program as RUN_PASSED_FD; 0: none */
};

/* The descriptor number a run_control's pass_fd has in the program (not close-on-exec). */
#define RUN_PASSED_FD 5

/*
 * Run prog with argv args[0..nargs) and wait for it, within the configured
 * limits; id goes into its environment (LSO_JOB_ID); control is NULL for a
 * sync run.
 */
void run_program(const struct program *prog, const char *const *args, size_t nargs,
    const char *id, const struct run_control *control, struct run_result *result);

/*
 * Look up once what every run of this process would read again: the
 * signals it ignores (reset for the program). For burst mode, before it
 * forks a child per connection.
 */
void run_preload(void);

/*
 * {"output": ..., "return_code": ..., "status": ...} for a finished run, into
 * s (counted, or written): the output escaped chunk by chunk from its spool.
 */
void run_result_stream(struct spool_sink *s, const struct run_result *result);

/* The output's last byte (spool, then notes); -1 when it is empty. */
int run_result_last_byte(const struct run_result *result);

void run_result_free(struct run_result *result);

/*
 * Kill what a dead runner's program left running: every process that carries
 * the job's id in its environment, in whatever group or session.
 */
void run_kill_leftovers(const char *id);

#endif
