/*
 * cancel.c: a runner's side of DELETE /api/jobs/{id}, without a window: the
 * SIGTERM handler is in place before anyone can learn the runner's pid, and
 * a DELETE that comes before the runner has named itself leaves a mark
 * (jobs/<id>.cancel) that the runner reads once it has.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "job-internal.h"

volatile sig_atomic_t cancel_requested;
int cancel_pipe[2] = { -1, -1 };

static void
on_cancel_signal(int sig)
{
	int saved = errno;

	(void)sig;
	cancel_requested = 1;
	if (cancel_pipe[1] >= 0)
		(void)!write(cancel_pipe[1], "c", 1);
	errno = saved;
}

/* SIGTERM and SIGINT held back until cancel_unblock: across a fork, nothing lands unhandled. */
void
cancel_block(sigset_t *saved)
{
	sigset_t cancel_signals;

	sigemptyset(&cancel_signals);
	sigaddset(&cancel_signals, SIGTERM);
	sigaddset(&cancel_signals, SIGINT);
	sigprocmask(SIG_BLOCK, &cancel_signals, saved);
}

void
cancel_unblock(const sigset_t *saved)
{
	sigprocmask(SIG_SETMASK, saved, NULL);
}

/* The runner's handler and the pipe it writes to (the run watches it); once per process. */
void
cancel_install(void)
{
	struct sigaction sa = { .sa_handler = on_cancel_signal };

	if (cancel_pipe[0] >= 0 || pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* Wait until canceled or ms pass: true when canceled. */
bool
cancel_wait(int ms)
{
	struct pollfd pfd = { .fd = cancel_pipe[0], .events = POLLIN };

	return cancel_requested || poll(&pfd, 1, ms) > 0;
}

/* DELETE's mark for a runner not yet named; -1 with errno. */
int
cancel_mark(const char *id)
{
	char path[PATH_MAX];
	int fd;

	if (!record_path(path, "jobs", id, ".cancel"))
		return errno = ENAMETOOLONG, -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return -1;
	close(fd);
	return 0;
}

/* The runner, once named: a DELETE that came earlier left its mark; it is taken (removed). */
void
cancel_take_mark(const char *id)
{
	char path[PATH_MAX];

	if (record_path(path, "jobs", id, ".cancel") && unlink(path) == 0)
		on_cancel_signal(SIGTERM);
}

/* A lost job's mark, left by a DELETE its runner did not live to take. */
void
cancel_drop_mark(const char *id)
{
	char path[PATH_MAX];

	if (record_path(path, "jobs", id, ".cancel"))
		unlink(path);
}
