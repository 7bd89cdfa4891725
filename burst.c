/*
 * burst.c: burst mode (lso-burst.socket, Accept=no). systemd starts one lso
 * when a connection arrives and hands it the listening socket; lso accepts
 * and forks a child per connection that serves exactly one request with
 * lso_serve, as every other mode does, then _exits. No exec: the libraries,
 * the sandbox and the configuration are already there.
 *
 * The process map: the burst process accepts, forks and reaps, nothing
 * else; it never reads a request. Each connection child is an instance of
 * the per-connection mode in all but its start: async jobs detach from it
 * exactly as from an lso@.service instance (into lso-job-<id>.scope under
 * systemd), so the burst process exiting never touches a job.
 *
 * Bounds: at most LSO_MAX_CONNECTIONS children at once; at the limit the
 * burst process stops accepting and the kernel's backlog holds the rest,
 * nothing is refused. After LSO_IDLE_EXIT_SEC with no child left it exits
 * 0, but only when no connection is waiting; one that arrives after that
 * stays in the backlog of the socket systemd holds, and systemd starts lso
 * again for it. SIGTERM or SIGINT: accept no more, let the children finish
 * (each within its request deadlines), exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burst.h"
#include "http.h"
#include "lso.h"

/* After accept or fork failed for want of memory or descriptors, the pause before the next try. */
#define BURST_RETRY_MS 100

struct burst {
	int listen_fd;
	int signal_fd;           /* SIGCHLD, SIGTERM, SIGINT, blocked and read here */
	sigset_t start_mask;     /* the signal mask lso started with, for the children */
	long active;             /* connection children not yet reaped */
	bool stopping;           /* SIGTERM or SIGINT: accept no more */
	int64_t idle_since_ms;   /* when the last child was reaped (or the start) */
	int64_t retry_at_ms;     /* accepting paused until then; 0: not paused */
};

bool
burst_is_listening(int fd)
{
	int listening = 0, type = 0;
	socklen_t len = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
		return false;
	len = sizeof(type);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/*
 * In the child: one request on conn_fd, then exit. It holds no descriptor of
 * the burst process's but the connection (accepted close-on-exec, as the
 * listening socket is, so no program inherits either).
 */
static _Noreturn void
serve_child(const struct burst *b, int conn_fd)
{
	close(b->listen_fd);
	close(b->signal_fd);
	sigprocmask(SIG_SETMASK, &b->start_mask, NULL);
	lso_serve(conn_fd, conn_fd);
	_exit(0);
}

static void
pause_accepting(struct burst *b, const char *what)
{
	fprintf(stderr, "lso: burst: %s: %s; accepting again in %d ms\n", what, strerror(errno),
	    BURST_RETRY_MS);
	b->retry_at_ms = http_now_ms() + BURST_RETRY_MS;
}

/* Accepted connection: a child serves it. False when none could be forked. */
static bool
start_child(struct burst *b, int conn_fd)
{
	pid_t pid = fork();

	if (pid == 0)
		serve_child(b, conn_fd);
	close(conn_fd);
	if (pid < 0) {
		/* Rare (no memory, no pids): that one connection is closed unanswered. */
		pause_accepting(b, "fork");
		return false;
	}
	b->active++;
	return true;
}

/* Errors of accept(2) that concern only the connection at hand (see its man page). */
static bool
connection_error(int err)
{
	switch (err) {
	case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
	case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
		return true;
	default:
		return false;
	}
}

/* Take what the backlog holds, up to LSO_MAX_CONNECTIONS children. */
static void
accept_connections(struct burst *b)
{
	int fd;

	while (b->active < config.max_connections) {
		fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && connection_error(errno))
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				pause_accepting(b, "accept");
			return;
		}
		if (!start_child(b, fd))
			return;
	}
}

static void
reap_children(struct burst *b)
{
	bool reaped = false;

	while (waitpid(-1, NULL, WNOHANG) > 0) {
		reaped = true;
		if (b->active > 0)
			b->active--;
	}
	if (reaped && b->active == 0)
		b->idle_since_ms = http_now_ms();
}

static void
read_signals(struct burst *b)
{
	struct signalfd_siginfo info;

	while (read(b->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
		if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT)
			b->stopping = true;
	reap_children(b);
}

/* Is a connection waiting in the backlog right now? */
static bool
connection_waiting(int listen_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Idle long enough, and nothing waiting: time to leave it to systemd. */
static bool
idle_done(const struct burst *b, int64_t now)
{
	return config.idle_exit_ms > 0 && b->active == 0 && !b->stopping &&
	    now - b->idle_since_ms >= config.idle_exit_ms && !connection_waiting(b->listen_fd);
}

/* Milliseconds poll may sleep: until the idle exit, or the end of a pause; -1: no bound. */
static int
poll_timeout(const struct burst *b, int64_t now)
{
	int64_t until = -1;

	if (config.idle_exit_ms > 0 && b->active == 0 && !b->stopping)
		until = b->idle_since_ms + config.idle_exit_ms;
	if (b->retry_at_ms && (until < 0 || b->retry_at_ms < until))
		until = b->retry_at_ms;
	if (until < 0)
		return -1;
	return until <= now ? 0 : (int)(until - now > 60000 ? 60000 : until - now);
}

static bool
accepting(struct burst *b, int64_t now)
{
	if (b->retry_at_ms && now >= b->retry_at_ms)
		b->retry_at_ms = 0;
	return !b->stopping && !b->retry_at_ms && b->active < config.max_connections;
}

static int
setup(struct burst *b, int listen_fd)
{
	sigset_t handled;

	*b = (struct burst){ .listen_fd = listen_fd, .idle_since_ms = http_now_ms() };
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	if (sigprocmask(SIG_BLOCK, &handled, &b->start_mask) < 0 ||
	    (b->signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "lso: burst: signalfd: %s\n", strerror(errno));
		return -1;
	}
	/* Non-blocking: a connection reset between poll and accept must not stall us. */
	if (fcntl(listen_fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) < 0) {
		fprintf(stderr, "lso: burst: listening socket: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int
burst_serve(int listen_fd)
{
	struct burst b;
	struct pollfd fds[2];
	int64_t now;

	if (setup(&b, listen_fd) < 0)
		return EXIT_SYSTEM;
	for (;;) {
		now = http_now_ms();
		if ((b.stopping && b.active == 0) || idle_done(&b, now))
			break;
		fds[0] = (struct pollfd){ .fd = b.signal_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = accepting(&b, now) ? listen_fd : -1, .events = POLLIN };
		if (poll(fds, 2, poll_timeout(&b, now)) < 0 && errno != EINTR) {
			fprintf(stderr, "lso: burst: poll: %s\n", strerror(errno));
			return EXIT_SYSTEM;
		}
		if (fds[0].revents)
			read_signals(&b);
		if (fds[1].revents & POLLIN)
			accept_connections(&b);
		else if (fds[1].revents) {
			/* The socket is broken or gone: nothing more will come. */
			fprintf(stderr, "lso: burst: the listening socket failed; exiting\n");
			b.stopping = true;
		}
	}
	close(b.signal_fd);
	return 0;
}
