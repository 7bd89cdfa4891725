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
 * A child is forked before its connection arrives: one spare waits on the
 * listening socket, accepts one connection, tells the burst process (which
 * forks the next spare at once) and serves it. The fork is thus off the
 * path of a request. The burst process itself never accepts.
 *
 * Bounds: at most LSO_MAX_CONNECTIONS children serve at once; at the limit
 * there is no spare, nobody accepts, and the kernel's backlog holds the
 * rest: nothing is refused. After LSO_IDLE_EXIT_SEC with no child left it exits
 * 0, but only when no connection is waiting; one that arrives after that
 * stays in the backlog of the socket systemd holds, and systemd starts lso
 * again for it. SIGTERM or SIGINT: accept no more, let the children finish
 * (each within its request deadlines), exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "config.h"
#include "http.h"
#include "log.h"
#include "lso.h"
#include "run.h"
#include "runuser.h"

/* After a fork or an accept failed for want of memory or descriptors, the pause before the next try. */
#define BURST_RETRY_MS 100
/* The journal relay's capacity, in bytes (a page per message). */
#define BURST_RELAY_BYTES (1024 * 1024)

struct burst {
	int listen_fd;
	int signal_fd;           /* SIGCHLD, SIGTERM, SIGINT, blocked and read here */
	int taken[2];            /* a spare that accepted writes its pid here */
	int relay[2];            /* the children's journal messages, one packet each */
	sigset_t start_mask;     /* the signal mask lso started with, for the children */
	long active;             /* children that took a connection, not yet reaped */
	pid_t spare;             /* the child waiting for a connection; 0: none */
	int spare_quit;          /* closing it tells the spare to exit unused */
	bool stopping;           /* SIGTERM or SIGINT: accept no more */
	int64_t idle_since_ms;   /* when the last active child was reaped (or the start) */
	int64_t retry_at_ms;     /* no spare until then; 0: not paused */
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

/* --- the spare: waits for one connection, serves it, exits --- */

/* Errors of accept(2) that concern only the connection at hand (see its man page). */
static bool
connection_error(int err)
{
	switch (err) {
	case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
	case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
	case EAGAIN:
		return true;
	default:
		return false;
	}
}

/* One connection, or -1 once told to quit (the quit pipe closed) or on a hard error. */
static int
wait_for_connection(int listen_fd, int quit_fd)
{
	struct pollfd fds[2] = {
		{ .fd = quit_fd, .events = POLLIN },
		{ .fd = listen_fd, .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			return -1;
		/* Told to quit: a connection waiting is left to the next one to accept. */
		if (fds[0].revents)
			return -1;
		if (!(fds[1].revents & POLLIN))
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			return fd;
		if (!connection_error(errno)) {
			fprintf(stderr, "lso: burst: accept: %s\n", strerror(errno));
			return -1;
		}
	}
}

/*
 * In the spare: a connection, then one request on it, then exit. Once it
 * has its connection it holds no descriptor of the burst process's but it
 * (accepted close-on-exec, as the listening socket is, so no program
 * inherits either).
 */
static _Noreturn void
spare_main(const struct burst *b, int quit_fd)
{
	pid_t self = getpid();
	int conn_fd;

	close(b->signal_fd);
	close(b->taken[0]);
	close(b->relay[0]);
	log_relay(b->relay[1]);
	sigprocmask(SIG_SETMASK, &b->start_mask, NULL);
	conn_fd = wait_for_connection(b->listen_fd, quit_fd);
	close(quit_fd);
	close(b->listen_fd);
	if (conn_fd < 0)
		_exit(0);
	/* Atomic (less than PIPE_BUF): the next spare is forked while we serve. */
	(void)!write(b->taken[1], &self, sizeof(self));
	close(b->taken[1]);
	lso_serve(conn_fd, conn_fd);
	_exit(0);
}

/* --- the burst process --- */

static void
pause_spares(struct burst *b, const char *what)
{
	fprintf(stderr, "lso: burst: %s: %s; trying again in %d ms\n", what, strerror(errno),
	    BURST_RETRY_MS);
	b->retry_at_ms = http_now_ms() + BURST_RETRY_MS;
}

static void
start_spare(struct burst *b)
{
	int quit[2];
	pid_t pid;

	if (pipe2(quit, O_CLOEXEC) < 0) {
		pause_spares(b, "pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(quit[1]);
		spare_main(b, quit[0]);
	}
	close(quit[0]);
	if (pid < 0) {
		close(quit[1]);
		pause_spares(b, "fork");
		return;
	}
	b->spare = pid;
	b->spare_quit = quit[1];
}

/* Tell the spare to exit unused (it may have taken a connection meanwhile: then it serves it). */
static void
dismiss_spare(struct burst *b)
{
	if (b->spare_quit >= 0)
		close(b->spare_quit);
	b->spare_quit = -1;
}

static bool
wants_spare(struct burst *b, int64_t now)
{
	if (b->retry_at_ms && now >= b->retry_at_ms)
		b->retry_at_ms = 0;
	return !b->spare && !b->stopping && !b->retry_at_ms && b->active < config.max_connections;
}

/* Spares that took a connection: they are serving now. */
static void
read_taken(struct burst *b)
{
	pid_t pid;

	while (read(b->taken[0], &pid, sizeof(pid)) == (ssize_t)sizeof(pid)) {
		b->active++;
		if (pid == b->spare) {
			b->spare = 0;
			dismiss_spare(b);
		}
	}
}

static void
reap_children(struct burst *b)
{
	bool reaped = false;
	pid_t pid;

	read_taken(b);
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		/*
		 * The spare gone: if it took a connection (and served it fast), its
		 * "taken" was written before it exited, so it is in the pipe now,
		 * maybe after the read above.
		 */
		if (pid == b->spare)
			read_taken(b);
		if (pid == b->spare) {
			b->spare = 0;   /* left unused */
			dismiss_spare(b);
			continue;
		}
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
	if (b->stopping)
		dismiss_spare(b);
	reap_children(b);
}

/* The children's journal messages, to journald from a sender it knows (see log_relay). */
static void
forward_journal(struct burst *b)
{
	char msg[PIPE_BUF];
	ssize_t n;

	while ((n = read(b->relay[0], msg, sizeof(msg))) > 0)
		log_forward(msg, (size_t)n);
}

/* Is a connection waiting in the backlog right now? */
static bool
connection_waiting(int listen_fd)
{
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static bool
idle_expired(const struct burst *b, int64_t now)
{
	return config.idle_exit_ms > 0 && b->active == 0 && !b->stopping &&
	    now - b->idle_since_ms >= config.idle_exit_ms;
}

/*
 * Idle long enough, nothing waiting: dismiss the spare, and once it is gone
 * without a connection, leave the socket to systemd.
 */
static bool
idle_done(struct burst *b, int64_t now)
{
	if (!idle_expired(b, now) || connection_waiting(b->listen_fd))
		return false;
	dismiss_spare(b);
	return !b->spare;
}

/* Milliseconds poll may sleep: until the idle exit, or the end of a pause; -1: no bound. */
static int
poll_timeout(const struct burst *b, int64_t now)
{
	int64_t until = -1;

	if (config.idle_exit_ms > 0 && b->active == 0 && !b->stopping && b->spare_quit >= 0)
		until = b->idle_since_ms + config.idle_exit_ms;
	if (b->retry_at_ms && (until < 0 || b->retry_at_ms < until))
		until = b->retry_at_ms;
	if (until < 0)
		return -1;
	return until <= now ? 0 : (int)(until - now > 60000 ? 60000 : until - now);
}

/* Ready the burst: 0, or the exit status lso ends with. */
static int
setup(struct burst *b, int listen_fd)
{
	const char *key, *why;
	sigset_t handled;

	*b = (struct burst){ .listen_fd = listen_fd, .spare_quit = -1,
		.idle_since_ms = http_now_ms() };
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	if (sigprocmask(SIG_BLOCK, &handled, &b->start_mask) < 0 ||
	    (b->signal_fd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    pipe2(b->taken, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(b->relay, O_CLOEXEC | O_NONBLOCK | O_DIRECT) < 0) {
		fprintf(stderr, "lso: burst: signalfd, pipe: %s\n", strerror(errno));
		return EXIT_SYSTEM;
	}
	/* Room for a burst of messages (a packet takes a slot); when full, children send directly. */
	fcntl(b->relay[1], F_SETPIPE_SZ, BURST_RELAY_BYTES);
	/* Non-blocking: a connection reset between poll and accept must not stall a spare. */
	if (fcntl(listen_fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK) < 0) {
		fprintf(stderr, "lso: burst: listening socket: %s\n", strerror(errno));
		return EXIT_SYSTEM;
	}
	/* What every request would look up, once for all children (the API key too, when auth is on). */
	log_preload();
	run_preload();
	/* Auth on without a usable key: serve nothing, as upstream refuses to start. */
	if (config_auth(&key, &why) == CONFIG_AUTH_BROKEN) {
		fprintf(stderr, "lso: burst: LSO_OAUTH2_ACTIVE is on but there is no API key: %s\n", why);
		return EXIT_CONFIG;
	}
	/* The run user too, once for all children: unusable, nothing would run. */
	if (!runuser_ready(&why)) {
		fprintf(stderr, "lso: burst: %s\n", why);
		return EXIT_CONFIG;
	}
	return 0;
}

int
burst_serve(int listen_fd)
{
	struct burst b;
	struct pollfd fds[3];
	int64_t now;
	int status;

	if ((status = setup(&b, listen_fd)) != 0)
		return status;
	for (;;) {
		now = http_now_ms();
		if ((b.stopping && b.active == 0 && !b.spare) || idle_done(&b, now))
			break;
		if (wants_spare(&b, now))
			start_spare(&b);
		fds[0] = (struct pollfd){ .fd = b.signal_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = b.taken[0], .events = POLLIN };
		fds[2] = (struct pollfd){ .fd = b.relay[0], .events = POLLIN };
		if (poll(fds, 3, poll_timeout(&b, now)) < 0 && errno != EINTR) {
			fprintf(stderr, "lso: burst: poll: %s\n", strerror(errno));
			return EXIT_SYSTEM;
		}
		if (fds[2].revents)
			forward_journal(&b);
		if (fds[1].revents)
			read_taken(&b);
		if (fds[0].revents)
			read_signals(&b);
	}
	forward_journal(&b);
	close(b.signal_fd);
	return 0;
}
