/*
 * detach.c: a job outlives the instance that accepted it: in a systemd scope
 * of its own (sd-bus, loaded on use), or inetd style in a session of its own.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if WITH_SYSTEMD
#include <systemd/sd-bus.h>
#endif

#include "file.h"
#include "http.h"
#include "job-internal.h"
#include "log.h"

#if WITH_SYSTEMD
/* libsystemd's sd-bus, loaded only where a job needs systemd. */
struct bus {
	int (*call_method)(sd_bus *, const char *, const char *, const char *,
	    const char *, sd_bus_error *, sd_bus_message **, const char *, ...);
	void (*error_free)(sd_bus_error *);
	sd_bus *(*unref)(sd_bus *);
	sd_bus_message *(*message_unref)(sd_bus_message *);
	sd_bus *bus;
};

static int
bus_open(struct bus *b, char *why, size_t why_size)
{
	int (*open_system)(sd_bus **);
	void *lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
	int r;

	if (!lib || !(*(void **)&open_system = dlsym(lib, "sd_bus_open_system")) ||
	    !(*(void **)&b->call_method = dlsym(lib, "sd_bus_call_method")) ||
	    !(*(void **)&b->error_free = dlsym(lib, "sd_bus_error_free")) ||
	    !(*(void **)&b->unref = dlsym(lib, "sd_bus_flush_close_unref")) ||
	    !(*(void **)&b->message_unref = dlsym(lib, "sd_bus_message_unref"))) {
		snprintf(why, why_size, "cannot load libsystemd: %s", dlerror());
		return -1;
	}
	if ((r = open_system(&b->bus)) < 0) {
		snprintf(why, why_size, "system bus: %s", strerror(-r));
		return -1;
	}
	return 0;
}

/* The outcome of a manager call: r < 0 puts what failed in why. */
static int
bus_done(struct bus *b, int r, sd_bus_error *error, sd_bus_message *reply,
    const char *method, char *why, size_t why_size)
{
	if (r < 0)
		snprintf(why, why_size, "%s: %s", method,
		    error->message ? error->message : strerror(-r));
	b->error_free(error);
	b->message_unref(reply);
	b->unref(b->bus);
	return r;
}

/*
 * Ask systemd to move us into lso-<kind>-<id>.scope: "job" for a job's
 * runner, "callback" for the delivery of a lost job's callback (what is left
 * of that job's own scope may still hold its name).
 */
static int
move_to_scope(const char *kind, const char *id, char *why, size_t why_size)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	struct bus b;
	char unit[64], description[96];
	int r;

	if (bus_open(&b, why, why_size) < 0)
		return -1;
	snprintf(unit, sizeof(unit), "lso-%s-%s.scope", kind, id);
	snprintf(description, sizeof(description), "lso %s %s", kind, id);
	r = b.call_method(b.bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
	    "org.freedesktop.systemd1.Manager", "StartTransientUnit", &error, &reply,
	    "ssa(sv)a(sa(sv))", unit, "fail", 4,
	    "PIDs", "au", 1, (uint32_t)getpid(),
	    "Slice", "s", "lso-jobs.slice",
	    "Description", "s", description,
	    "CollectMode", "s", "inactive-or-failed",
	    0);
	if (bus_done(&b, r, &error, reply, "StartTransientUnit", why, why_size) < 0)
		return -1;
	/* The move is done once our cgroup names the scope. */
	for (int64_t end = http_now_ms() + DETACH_SCOPE_WAIT_MS; http_now_ms() < end;) {
		size_t len;
		char *text = file_read("/proc/self/cgroup", &len);
		bool moved = text && strstr(text, unit);

		free(text);
		if (moved) {
			log_unit_changed();  /* our lines name the scope now */
			return 0;
		}
		poll(NULL, 0, DETACH_SCOPE_POLL_MS);
	}
	snprintf(why, why_size, "%s did not take us in time", unit);
	return -1;
}

/*
 * A dead runner's scope holds exactly what its job left, also what escaped
 * the program's process group (setsid): SIGKILL it all.
 */
void
detach_kill_scope(const char *id)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	struct bus b;
	char unit[64], why[256];

	if (!getenv("INVOCATION_ID") || bus_open(&b, why, sizeof(why)) < 0)
		return;
	snprintf(unit, sizeof(unit), "lso-job-%s.scope", id);
	bus_done(&b, b.call_method(b.bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
	    "org.freedesktop.systemd1.Manager", "KillUnit", &error, &reply,
	    "ssi", unit, "all", SIGKILL), &error, reply, "KillUnit", why, sizeof(why));
}
#else
static int
move_to_scope(const char *kind, const char *id, char *why, size_t why_size)
{
	(void)kind, (void)id;
	snprintf(why, why_size, "built without systemd support");
	return -1;
}

void
detach_kill_scope(const char *id)
{
	(void)id;
}
#endif

/*
 * The instance's connection (a GET that settles a lost job is still
 * answering it) is none of the job's business: a stream socket on 0 or 1
 * becomes /dev/null, above 2 it is closed. Any stream socket, connected or
 * not: once the client has closed, getpeername fails on what is still its
 * connection. Descriptors are looked up in /proc/self/fd; other kinds (the
 * lock, the journal's datagram socket) stay, and so does 2: under systemd it
 * is journald's stream, and where inetd handed the connection as stderr
 * too, lso.c has put /dev/null there.
 */
static bool
is_connection(int fd)
{
	int type;
	socklen_t type_len = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_STREAM;
}

static void
drop_connections(void)
{
	int dir_fd, null_fd, fds[64], n = 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;

	if (!dir)
		return;
	dir_fd = dirfd(dir);
	while ((entry = readdir(dir)) && n < (int)(sizeof(fds) / sizeof(fds[0]))) {
		int fd = (int)strtol(entry->d_name, NULL, 10);
		if ((fd > 0 || entry->d_name[0] == '0') && fd != 2 && fd != dir_fd && is_connection(fd))
			fds[n++] = fd;
	}
	closedir(dir);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < n; i++) {
		if (fds[i] < 2 && null_fd >= 0)
			dup2(null_fd, fds[i]);
		else
			close(fds[i]);
	}
	if (null_fd > 2)
		close(null_fd);
}

/*
 * What every detached process does first, in order: it leaves the instance's
 * connection and its session, gets its SIGTERM handler if it is a runner,
 * and only then names itself in the lock file (a DELETE signals that pid).
 */
static void
become_job_process(struct job *j, bool cancelable, const sigset_t *saved_mask)
{
	log_relay_drop();  /* the job outlives a burst process */
	drop_connections();
	setsid();
	if (cancelable)
		cancel_install();
	cancel_unblock(saved_mask);
	record_lock_note_pids(j->lock_fd, getpid(), 0);
}

/*
 * A job that cannot leave the instance (no pipe, no fork). A runner is run
 * here, the instance named in the lock file as a detached runner names
 * itself (its SIGTERM handler first): a DELETE signals it, and a mark left
 * before is read by run_job, so a queued job still ends canceled. A delivery
 * is not run here (it would end the instance before its answer): the
 * callback stays pending for the next GET or sweep.
 */
static void
run_here(struct job *j, bool cancelable, void (*work)(struct job *), int error)
{
	if (!cancelable) {
		log_line(j->id, "lso: job %s: cannot detach its callback's delivery (%s): "
		    "left for the next GET or sweep", j->id, strerror(error));
		return;
	}
	log_line(j->id, "lso: job %s: cannot detach (%s): running it here", j->id, strerror(error));
	cancel_install();
	record_lock_note_pids(j->lock_fd, getpid(), 0);
	work(j);
}

/*
 * Under systemd: the job's process asks for a scope of its own and tells the
 * instance whether it got one ('S') or not ('F', then the reason). The
 * instance may exit only after 'S': until then the job is in its cgroup.
 */
static void
detach_under_systemd(struct job *j, const char *kind, bool cancelable, void (*work)(struct job *))
{
	int ready[2];
	char how = 'F', why[512] = "";
	ssize_t n;
	pid_t pid;
	sigset_t saved_mask;

	if (pipe2(ready, O_CLOEXEC) < 0) {
		run_here(j, cancelable, work, errno);
		return;
	}
	cancel_block(&saved_mask);
	if ((pid = fork()) < 0) {
		int error = errno;

		cancel_unblock(&saved_mask);
		close(ready[0]);
		close(ready[1]);
		run_here(j, cancelable, work, error);
		return;
	}
	if (pid == 0) {
		close(ready[0]);
		become_job_process(j, cancelable, &saved_mask);
		how = move_to_scope(kind, j->id, why, sizeof(why)) == 0 ? 'S' : 'F';
		(void)!write(ready[1], &how, 1);
		(void)!write(ready[1], why, strlen(why));
		close(ready[1]);
		work(j);
		_exit(0);
	}
	cancel_unblock(&saved_mask);
	close(ready[1]);
	if (read(ready[0], &how, 1) != 1)
		how = 'F';
	if (how != 'S') {
		n = read(ready[0], why, sizeof(why) - 1);
		why[n > 0 ? n : 0] = '\0';
		log_line(j->id, "lso: job %s stays in this instance, which supervises it: %s",
		    j->id, *why ? why : "no scope of its own");
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	close(ready[0]);
}

/*
 * Without systemd, inetd style: a child in a session of its own, adopted by
 * init when the instance exits (it never opens a terminal, so one fork will do).
 */
void
detach_job(struct job *j, const char *kind, bool cancelable, void (*work)(struct job *))
{
	sigset_t saved_mask;
	pid_t pid;
	int error;

	if (getenv("INVOCATION_ID")) {
		detach_under_systemd(j, kind, cancelable, work);
		return;
	}
	cancel_block(&saved_mask);
	pid = fork();
	error = errno;
	if (pid != 0)
		cancel_unblock(&saved_mask);
	if (pid < 0) {
		run_here(j, cancelable, work, error);
	} else if (pid == 0) {
		become_job_process(j, cancelable, &saved_mask);
		work(j);
		_exit(0);
	}
}
