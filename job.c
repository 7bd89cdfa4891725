/* job.c: the async job's lifecycle: submit, start, the runner, show, cancel, settle, recover; slots. */

/*
 * The processes of one async job, and their entry points (the words as
 * README.md's Vocabulary defines them):
 *
 *   instance    lso serving POST /api/execute/ or /api/playbook (lso.c's
 *               main). job_submit takes the job's lock, writes the first
 *               record, and the client gets its 201; job_start hands the
 *               lock to the runner (detach_job) and returns; main returns.
 *   runner      the job's own process: run_job is its entry point and the
 *               only function that ends it (exit). In a systemd scope of its
 *               own (lso-job-<id>.scope) or, without systemd, a session of
 *               its own. It holds the job's lock for its whole life, waits
 *               for a slot (lining up on the queue lock), runs the program,
 *               writes every record after the first, delivers the callback.
 *   program     the executable or ansible-playbook, in its own process group
 *               (run.c's exec_child, which only ever ends in execve or
 *               _exit); SIGKILLed if the runner dies.
 *   progress    playbooks with a progress URL: playbook.c's post_progress,
 *   poster      which ends in _exit; fed by the runner through a pipe, holds
 *               no lock, dies with the runner.
 *
 * Any other instance may read a record (GET), signal the runner (DELETE), or
 * find the lock free with a record that is not final: the runner is gone,
 * and that instance settles the job as lost (settle_lost), its callback
 * delivered by a process of its own (deliver_and_exit, lso-callback-<id>.scope).
 * lso --recover does the same for every job at boot.
 *
 * Locks (flock, freed by the kernel when their holder dies):
 *   jobs/<id>.lock   the runner's, for the job's whole life: held = alive.
 *   jobs/<id>.json   shared by readers, the spare (<id>.next) exclusive by
 *                    the writer (record.c), so nobody reads a half record.
 *   slots/queue      held by the queued runner next in line for a slot.
 *   slots/<n>        held by a runner while its program runs.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "job-internal.h"
#include "log.h"
#include "playbook.h"
#include "run.h"

const char *const job_status_names[JOB_STATUS_COUNT] = {
	[JOB_QUEUED] = "queued",
	[JOB_RUNNING] = "running",
	[JOB_SUCCESSFUL] = "successful",
	[JOB_FAILED] = "failed",
	[JOB_TIMEOUT] = "timeout",
	[JOB_CANCELED] = "canceled",
	[JOB_LOST] = "lost",
};

const char *const job_kind_names[2] = {
	[JOB_KIND_EXECUTE] = "execute",
	[JOB_KIND_PLAYBOOK] = "playbook",
};

static bool
is_final(enum job_status status)
{
	return status >= JOB_SUCCESSFUL;
}

/* --- ids --- */

int
job_new_id(job_id id)
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	/* The host's tag, when set, replaces random bits only: still a version 4 UUID. */
	if (config.host_tag >= 0)
		r[0] = (unsigned char)config.host_tag;
	r[6] = (r[6] & 0x0f) | 0x40; /* version 4 */
	r[8] = (r[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(id, JOB_ID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
	    r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	return 0;
}

bool
job_id_valid(const char *id)
{
	if (strlen(id) != JOB_ID_LEN)
		return false;
	for (int i = 0; i < JOB_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? id[i] != '-' : !strchr("0123456789abcdef", id[i]))
			return false;
	}
	return true;
}

void
job_free(struct job *j)
{
	free(j->name);
	for (size_t i = 0; i < j->nargs; i++)
		free(j->args[i]);
	free(j->args);
	free(j->callback_url);
	free(j->last_error);
	free(j->progress_url);
	free(j->failure);
	if (j->has_lines)
		close(j->lines_fd);
	run_result_free(&j->result);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	*j = (struct job){ .lock_fd = -1 };
}

/* --- slots: at most slot_count programs at once, freed by the kernel when a holder dies --- */

/* Upstream's thread pool default, min(32, ncpu + 4); looked up only by async jobs. */
static long
slot_count(void)
{
	long ncpu;

	if (config.slot_count > 0)
		return config.slot_count;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	return ncpu + SLOT_DEFAULT_CPU_EXTRA < SLOT_DEFAULT_MAX ? ncpu + SLOT_DEFAULT_CPU_EXTRA :
	    SLOT_DEFAULT_MAX;
}

static int
try_slots(void)
{
	char path[PATH_MAX], name[24];
	long slots = slot_count();
	int fd;

	for (long n = 0; n < slots; n++) {
		snprintf(name, sizeof(name), "%ld", n);
		if (!record_path(path, "slots", name, NULL))
			return -1;
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

/*
 * A slot's descriptor, or -1 when canceled first. Waiters line up on the
 * queue lock, so slots go roughly in arrival order.
 */
static int
acquire_slot(void)
{
	char path[PATH_MAX];
	int queue_fd, slot_fd = -1;

	if (!record_path(path, "slots", "queue", NULL) ||
	    (queue_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return try_slots();
	while (flock(queue_fd, LOCK_EX) < 0)
		if (errno != EINTR || cancel_requested)
			goto out;
	while ((slot_fd = try_slots()) < 0)
		if (cancel_wait(SLOT_WAIT_POLL_MS))
			break;
out:
	close(queue_fd);
	return slot_fd;
}

/*
 * --- queue tickets: at most LSO_MAX_QUEUED jobs wait for a slot ---
 *
 * Every queued job is a process (its runner, waiting on the queue lock), so
 * the queue is bounded: an instance takes a ticket (slots/queued-<n>, an
 * exclusive flock) before it records the job, its runner inherits it and
 * gives it back once it holds a slot. Freed by the kernel when a holder dies.
 */
static int queue_ticket_fd = -1;

static int
try_ticket(long n)
{
	char path[PATH_MAX], name[32];
	int fd;

	snprintf(name, sizeof(name), "queued-%ld", n);
	if (!record_path(path, "slots", name, NULL))
		return errno = ENAMETOOLONG, -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 && errno == ENOENT && record_make_dirs() == 0)
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	if (fd >= 0) {
		close(fd);
		errno = EWOULDBLOCK;
	}
	return -1;
}

int
job_admit(void)
{
	long tickets = config.max_queued, first;

	if (queue_ticket_fd >= 0)
		return 0;
	/* Start at a place of our own: concurrent instances seldom try the same files. */
	first = (long)getpid() % tickets;
	for (long i = 0; i < tickets; i++) {
		queue_ticket_fd = try_ticket((first + i) % tickets);
		if (queue_ticket_fd >= 0)
			return 0;
		/* No state directory to count in: job_submit makes it, or reports why not. */
		if (errno == ENOENT)
			return 0;
		if (errno != EWOULDBLOCK)
			return -1;  /* a queue that cannot be counted is not a free one */
	}
	return errno = EWOULDBLOCK, -1;
}

/* The runner has a slot (or gave up): its ticket is free, also for the instance's copy. */
static void
give_back_ticket(void)
{
	if (queue_ticket_fd < 0)
		return;
	flock(queue_ticket_fd, LOCK_UN);
	close(queue_ticket_fd);
	queue_ticket_fd = -1;
}

/* --- the settled mark --- */

/*
 * A job with nothing left to do, ever, says so in its lock file (the pids its
 * runner noted there are of no more use): a sweep skips it without reading
 * its record. Only what the record on disk says counts (a write may have
 * failed): it is read back once. j->lock_fd must be held.
 */
#define JOB_SETTLED_MARK "settled\n"

static void
note_settled(const struct job *j)
{
	struct job stored;
	bool settled;

	if (!is_final(j->status) || callback_pending(j) || record_read(j->id, &stored) < 0)
		return;
	settled = is_final(stored.status) && !callback_pending(&stored);
	job_free(&stored);
	if (settled && ftruncate(j->lock_fd, 0) == 0)
		(void)!pwrite(j->lock_fd, JOB_SETTLED_MARK, strlen(JOB_SETTLED_MARK), 0);
}

static bool
is_settled(int lock_fd)
{
	char text[sizeof(JOB_SETTLED_MARK)];
	ssize_t n = pread(lock_fd, text, sizeof(text), 0);

	return n == (ssize_t)strlen(JOB_SETTLED_MARK) && memcmp(text, JOB_SETTLED_MARK, (size_t)n) == 0;
}

/* Is the job marked settled for good? Read without its lock: the mark, once there, stays. */
static bool
marked_settled(const char *id)
{
	int lock_fd = record_lock_open(id);
	bool settled = lock_fd >= 0 && is_settled(lock_fd);

	if (lock_fd >= 0)
		close(lock_fd);
	return settled;
}

/* --- the runner --- */

/* Record j's final status; -1 when the record could not be written (logged). */
static int
finish(struct job *j, enum job_status status)
{
	j->status = status;
	record_now(j->finished_at);
	j->has_result = true;
	return record_write(j, false);
}

/* Can a failed write of a record succeed later (space freed, the disk back)? */
static bool
may_clear(int error)
{
	return error == ENOSPC || error == EDQUOT || error == EIO || error == EROFS || error == ENOMEM;
}

/*
 * The runner's result, recorded before anyone hears of it: while the state
 * directory cannot take it (full, read-only), the runner keeps trying and
 * keeps its lock, so the job looks running, never abandoned, and no
 * callback announces a result that a later GET would contradict. It gives
 * up (false, logged) on an error that will not clear, after
 * RECORD_RETRY_TOTAL_MS, or when canceled meanwhile: the caller then exits
 * without a callback, and the job settles as lost (settle_lost), whose
 * failure callback contradicts nothing.
 */
static bool
finish_for_sure(struct job *j, enum job_status status)
{
	long pause_ms = RECORD_RETRY_FIRST_MS;
	int64_t end = http_now_ms() + RECORD_RETRY_TOTAL_MS, left;
	bool canceled_before = cancel_requested;  /* then the status says canceled already */
	int recorded;

	if (j->kind == JOB_KIND_PLAYBOOK && j->callback_url)
		callback_save_body(j, status);
	while ((recorded = finish(j, status)) < 0) {
		if (!may_clear(errno) || (left = end - http_now_ms()) <= 0)
			break;
		if (left < pause_ms)
			pause_ms = (long)left;
		if (canceled_before)
			poll(NULL, 0, (int)pause_ms);
		else if (cancel_wait((int)pause_ms))
			break;
		pause_ms = pause_ms * 2 > RECORD_RETRY_MAX_MS ? RECORD_RETRY_MAX_MS : pause_ms * 2;
	}
	if (recorded == 0)
		return true;
	log_line(j->id, "lso: job %s: gave up recording %s; it will settle as lost", j->id,
	    job_status_names[status]);
	return false;
}

static enum job_status
status_of_run(const struct run_result *result)
{
	if (result->canceled)
		return JOB_CANCELED;
	if (result->timed_out)
		return JOB_TIMEOUT;
	return result->return_code == 0 ? JOB_SUCCESSFUL : JOB_FAILED;
}

/*
 * A result that cannot be recorded: the runner ends, its slot freed, and
 * sends nothing; with its lock gone, the next GET or sweep settles the job
 * as lost.
 */
static void
abandon(struct job *j, int slot_fd)
{
	if (slot_fd >= 0)
		close(slot_fd);
	job_free(j);
	free(j);
	exit(0);
}

/* The runner's entry point: wait for a slot, run, record, call back, exit. */
static void
run_job(struct job *j)
{
	int slot_fd;

	/* Named in the lock file, its SIGTERM handler in place (detach.c): now the mark. */
	cancel_take_mark(j->id);
	/* Canceled before it had a slot (the mark, a signal): no slot taken, no program started. */
	slot_fd = cancel_requested ? -1 : acquire_slot();
	if (slot_fd >= 0 && cancel_requested) {
		close(slot_fd);
		slot_fd = -1;
	}
	give_back_ticket();
	if (slot_fd < 0) {
		if (j->kind == JOB_KIND_PLAYBOOK)
			playbook_remove_files(j->id);  /* written at submission, for a run that never comes */
		j->result.return_code = -1;
		jbuf_puts(&j->result.output, cancel_requested ? RUN_MSG_CANCELED :
		    "Could not take a worker slot.");
		if (!finish_for_sure(j, cancel_requested ? JOB_CANCELED : JOB_FAILED))
			abandon(j, -1);
	} else {
		struct run_control control = { .cancel_fd = cancel_pipe[0], .lock_fd = j->lock_fd };

		j->status = JOB_RUNNING;
		record_now(j->started_at);
		record_write(j, false);
		if (j->kind == JOB_KIND_PLAYBOOK)
			playbook_run(j, &control);
		else
			run_program(&j->prog, (const char *const *)j->args, j->nargs, j->id,
			    &control, &j->result);
		/* Recorded before the slot is freed: no more records say running than there are slots. */
		if (!finish_for_sure(j, status_of_run(&j->result)))
			abandon(j, slot_fd);
		close(slot_fd);
	}
	log_line(j->id, "job %s %s rc=%d", j->id, job_status_names[j->status], j->result.return_code);
	callback_deliver(j);
	record_done(j);
	note_settled(j);
	job_free(j);
	free(j);
	exit(0);
}

/* --- submitting and starting --- */

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
job_submit(const struct job_request *r, const char *id, struct job **out)
{
	struct job *j = calloc(1, sizeof(*j));
	bool files_written = false;

	if (!j)
		goto fail;
	j->lock_fd = -1;
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->kind = r->kind;
	j->name = strdup(r->name);
	j->args = calloc(r->nargs + 1, sizeof(*j->args));
	j->callback_url = dup_or_null(r->callback);
	j->progress_url = dup_or_null(r->progress);
	j->incremental = r->incremental;
	j->prog = *r->prog;
	j->status = JOB_QUEUED;
	record_now(j->created_at);
	if (!j->name || !j->args || (r->callback && !j->callback_url) ||
	    (r->progress && !j->progress_url))
		goto fail;
	for (; j->nargs < r->nargs; j->nargs++)
		if (!(j->args[j->nargs] = strdup(r->args[j->nargs])))
			goto fail;
	/* The lock first: a record must never look abandoned. */
	j->lock_fd = record_lock_open(id);
	if (j->lock_fd < 0 && errno == ENOENT && record_make_dirs() == 0)
		j->lock_fd = record_lock_open(id);
	if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX) < 0)
		goto fail;
	/* A playbook's files before its record: its runner finds them, or the record does not exist. */
	if (r->kind == JOB_KIND_PLAYBOOK && !(files_written = playbook_write_files(id, r->inventory,
	    (const cJSON *)r->extra_vars)))
		goto fail;
	if (record_write(j, true) < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	if (j) {
		int saved = errno;
		if (files_written)
			playbook_remove_files(id);
		if (j->lock_fd >= 0)
			record_lock_remove(id);  /* nothing left of a refused submission */
		job_free(j);
		free(j);
		errno = saved;
	}
	return -1;
}

void
job_start(struct job *j)
{
	detach_job(j, "job", true, run_job);
	/* The instance's copy only: the runner gives the ticket back when it has a slot. */
	if (queue_ticket_fd >= 0)
		close(queue_ticket_fd);
	queue_ticket_fd = -1;
	job_free(j);
	free(j);
}

/* --- reading, settling and canceling jobs --- */

/* The entry point of a delivery for a dead runner's job, in a detached process of its own. */
static void
deliver_and_exit(struct job *j)
{
	callback_deliver(j);
	record_done(j);
	note_settled(j);
	job_free(j);
	exit(0);
}

/* How many more deliveries this process may start; -1: no bound (a GET starts one). */
static long deliveries_left = -1;

/*
 * What a dead runner left of a final job's callback, delivered by a process
 * of its own (lso-callback-<id>.scope), which takes the lock with it: the
 * caller (a GET, a sweep) does not wait for the receiver, and sweeps deliver
 * in parallel, at most SWEEP_DELIVERIES_MAX per pass. j->lock_fd must be held.
 */
static void
deliver_detached(struct job *j)
{
	if (!callback_pending(j)) {
		record_done(j);
		note_settled(j);
		return;
	}
	if (deliveries_left == 0)
		return;  /* still pending: the next pass delivers it */
	if (deliveries_left > 0)
		deliveries_left--;
	detach_job(j, "callback", false, deliver_and_exit);
}

/*
 * A job whose runner is gone without a final record is lost: kill what it
 * left running, record that and send the failure callback. j->lock_fd must
 * be held. When lost cannot be recorded nothing is sent: the next GET or
 * sweep settles it again.
 */
static void
settle_lost(struct job *j)
{
	detach_kill_scope(j->id);
	run_kill_leftovers(j->id);
	playbook_remove_files(j->id);
	cancel_drop_mark(j->id);  /* a DELETE's mark its runner never took */
	j->result.return_code = -1;
	jbuf_puts(&j->result.output, JOB_MSG_LOST);
	if (j->kind == JOB_KIND_PLAYBOOK)
		j->failure = strdup(JOB_MSG_LOST);
	if (finish(j, JOB_LOST) < 0)
		return;
	log_line(j->id, "job %s lost", j->id);
	deliver_detached(j);
}

/* A dead runner's job, its lock held: lost if it had no result, its callback resumed if pending. */
static void
settle(struct job *j)
{
	if (!is_final(j->status))
		settle_lost(j);
	else
		deliver_detached(j);
}

/* Read a record and settle it if its runner died; -1 (errno) when unreadable. */
static int
load_settled(const char *id, struct job *j)
{
	enum job_status status;
	int lock_fd = -1;

	/*
	 * A final job settled for good (nothing left to deliver), or whose lock
	 * is held (its runner or a delivery lives: nothing to settle), is read
	 * no further than its status: its record may hold 16 MiB of output. A
	 * final one whose lock is free is read whole, under that lock: its
	 * callback may want resuming.
	 */
	if (record_status(id, &status) == 0 && is_final(status) &&
	    (marked_settled(id) || (lock_fd = record_lock_if_dead(id)) < 0)) {
		*j = (struct job){ .lock_fd = -1, .status = status };
		return 0;
	}
	if (lock_fd < 0) {
		if (record_read(id, j) < 0)
			return -1;
		if ((is_final(j->status) && !callback_pending(j)) || (lock_fd = record_lock_if_dead(id)) < 0)
			return 0;
		job_free(j);
	}
	/* Read (again) under the lock: the runner may have finished just now. */
	if (record_read(id, j) < 0) {
		close(lock_fd);
		return -1;
	}
	j->lock_fd = lock_fd;
	settle(j);
	return 0;
}

/* The record as stored: only the runner's own copy of the output is exact. */
static void
add_record_text(const char *id, struct jbuf *out)
{
	size_t len = 0;
	char *text = record_text(id, &len);

	if (text)
		record_mask_password(out, text, len);
	else
		jbuf_add(out, "null", 4);
	free(text);
}

enum outcome
job_show(const char *id, int *record_fd, off_t *size)
{
	struct job j;

	if (!job_id_valid(id))
		return JOB_MISSING;
	/* Only a record that is not there is a missing job; any other failure is ours. */
	if (load_settled(id, &j) < 0)
		return errno == ENOENT ? JOB_MISSING : JOB_UNREADABLE;
	job_free(&j);
	*record_fd = record_snapshot(id, size);
	if (*record_fd < 0)
		return errno == ENOENT ? JOB_MISSING : JOB_UNREADABLE;
	return JOB_SHOWN;
}

/* Is the job's lock held (by its runner, or the instance about to start it)? */
static bool
lock_held(const char *id)
{
	int lock_fd = record_lock_if_dead(id);

	if (lock_fd < 0)
		return true;
	close(lock_fd);
	return false;
}

/*
 * The runner's pid; 0 when it has not named itself yet, and then the mark it
 * reads once it has (cancel.c) cancels it. The mark is left first and the
 * pid looked up after, while the runner names itself first and reads the mark
 * after: one of the two sees the other.
 */
static pid_t
runner_pid(const char *id)
{
	pid_t runner = 0, program;
	int64_t end = http_now_ms() + CANCEL_RUNNER_WAIT_MS;
	char mark[PATH_MAX];

	if (record_lock_pids(id, &runner, &program))
		return runner;
	if (cancel_mark(id) < 0)
		return -1;
	while (!record_lock_pids(id, &runner, &program) && http_now_ms() < end)
		poll(NULL, 0, CANCEL_RUNNER_POLL_MS);
	if (runner > 0 && record_path(mark, "jobs", id, ".cancel"))
		unlink(mark);  /* the signal will do; the runner may have taken the mark already */
	return runner > 0 ? runner : 0;
}

/*
 * Signal the runner, never a stranger: the pidfd is opened first, then the
 * lock proves the runner still lived after that, so the pidfd is the runner's.
 * A runner not yet named has the mark: canceled as well, while its lock is held.
 */
static int
signal_runner(const char *id)
{
	pid_t pid = runner_pid(id);
	int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1, r = -1;

	if (pid == 0)
		return lock_held(id) ? 0 : -1;
	if (pidfd < 0 && (pid < 0 || errno != ENOSYS))
		return -1;
	if (!lock_held(id))
		r = -1;
	else if (pidfd >= 0)
		r = pidfd_send_signal(pidfd, SIGTERM, NULL, 0);
	else
		r = kill(pid, SIGTERM); /* no pidfds here: the lock just proved the runner alive */
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

enum outcome
job_cancel(const char *id, struct jbuf *record)
{
	struct job j;
	bool finished;

	if (!job_id_valid(id))
		return JOB_MISSING;
	/* As job_show: only a record that is not there is a missing job. */
	if (load_settled(id, &j) < 0)
		return errno == ENOENT ? JOB_MISSING : JOB_UNREADABLE;
	finished = is_final(j.status) || signal_runner(id) < 0;
	job_free(&j);
	if (finished)
		return JOB_FINISHED;
	add_record_text(id, record);
	return JOB_CANCELING;
}

/* --- sweeping: lso --recover, at boot and from lso-recover.timer --- */

/* One job of a sweep: settled if its runner is gone and something is left to do. */
static void
sweep_one(const char *id)
{
	struct job j;
	int lock_fd = record_lock_if_dead(id);

	if (lock_fd < 0)
		return; /* its runner (or a delivery of its callback) lives */
	if (is_settled(lock_fd) || record_read(id, &j) < 0) {
		close(lock_fd);
		return;
	}
	j.lock_fd = lock_fd;
	settle(&j);
	job_free(&j);
}

int
job_recover(void)
{
	char path[PATH_MAX], id[JOB_ID_LEN + 1];
	struct dirent *entry;
	DIR *dir;

	if (!record_path(path, "jobs", NULL, NULL) || !(dir = opendir(path)))
		return errno == ENOENT ? 0 : -1;
	deliveries_left = SWEEP_DELIVERIES_MAX;
	while ((entry = readdir(dir))) {
		size_t len = strlen(entry->d_name);
		if (len != JOB_ID_LEN + 5 || strcmp(entry->d_name + JOB_ID_LEN, ".json") != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", JOB_ID_LEN, entry->d_name);
		if (job_id_valid(id))
			sweep_one(id);
	}
	closedir(dir);
	return 0;
}
