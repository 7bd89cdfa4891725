/* job.c: resolve the program inside its root, run it, report the result. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#if WITH_SYSTEMD
#include <systemd/sd-bus.h>
#endif

#include "http.h"
#include "job.h"
#include "lso.h"

extern char **environ;

/* After SIGTERM, how long the process group has before SIGKILL. */
#define KILL_GRACE_MS 2000
/* After the program exits, how long its leftovers may keep its pipes open. */
#define EXIT_LINGER_MS 1000
/* Messages of ours in the output, each on a line of its own. */
#define MSG_TIMED_OUT "Execution timed out."
#define MSG_CANCELED "Execution canceled."
/* Exec-status pipe code: the file is no longer the one that was checked. */
#define EXEC_CHANGED (-1)

/* Does path lie in root (both resolved, no trailing slash but for "/")? */
static bool
is_inside(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Does a relative name climb above its start with ".." (before any symlink is looked at)? */
static bool
climbs_out(const char *name)
{
	long depth = 0;
	const char *c = name;
	size_t len;

	while (*c) {
		len = strcspn(c, "/");
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (len > 0 && !(len == 1 && c[0] == '.')) {
			depth++;
		}
		c += len;
		c += strspn(c, "/");
	}
	return false;
}

static enum resolve
check_file(const char *path, bool need_exec, struct program *prog)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return RESOLVE_MISSING;
	if (!S_ISREG(st.st_mode))
		return RESOLVE_NOT_FILE;
	if (need_exec && !(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		return RESOLVE_NOT_EXECUTABLE;
	prog->dev = st.st_dev;
	prog->ino = st.st_ino;
	return RESOLVE_OK;
}

enum resolve
job_resolve(const char *root, const char *name, struct program *prog)
{
	return job_resolve_file(root, name, true, prog);
}

enum resolve
job_resolve_file(const char *root, const char *name, bool need_exec, struct program *prog)
{
	char real_root[PATH_MAX], candidate[PATH_MAX];
	int n;

	if (!root || !realpath(root, real_root))
		return RESOLVE_MISSING;
	if (name[0] == '/')
		n = snprintf(candidate, sizeof(candidate), "%s", name);
	else
		n = snprintf(candidate, sizeof(candidate), "%s/%s", real_root, name);
	if (n < 0 || (size_t)n >= sizeof(candidate))
		return RESOLVE_MISSING;
	/* Refuse a climb out even when its target does not exist. */
	if (name[0] != '/' && climbs_out(name))
		return RESOLVE_OUTSIDE;
	if (!realpath(candidate, prog->path)) {
		if (name[0] == '/' && !is_inside(real_root, candidate))
			return RESOLVE_OUTSIDE;
		return RESOLVE_MISSING;
	}
	if (!is_inside(real_root, prog->path))
		return RESOLVE_OUTSIDE;
	return check_file(prog->path, need_exec, prog);
}

int
job_new_id(job_id id)
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	r[6] = (r[6] & 0x0f) | 0x40; /* version 4 */
	r[8] = (r[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(id, JOB_ID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
	    r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	return 0;
}

/* Is stderr journald's stream ($JOURNAL_STREAM names its device and inode)? */
static bool
stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	return stream && sscanf(stream, "%lu:%lu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

/* The text of an open file; NULL when unreadable or empty. */
static char *
read_all(int fd, size_t *len)
{
	struct jbuf b = { 0 };
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		jbuf_add(&b, buf, (size_t)n);
	if (n < 0 || b.failed || !b.data) {
		jbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

static char *
read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *text;

	if (fd < 0)
		return NULL;
	text = read_all(fd, len);
	close(fd);
	return text;
}

/*
 * What job_preload looked up once for the process and its children (burst
 * mode forks a child per connection): our unit's name, the signals we ignore.
 */
static struct {
	bool unit_known;
	char *unit;                 /* NULL: not in a unit */
	bool ignored_known;
	unsigned long long ignored;
} preloaded;

/*
 * Our unit (instance or job scope): the last component of our cgroup, on the
 * first line of /proc/self/cgroup that ends in one. NULL outside a unit.
 */
static char *
own_unit(void)
{
	size_t len;
	char *text, *unit = NULL, *save, *line, *name;

	if (preloaded.unit_known)
		return preloaded.unit ? strdup(preloaded.unit) : NULL;
	text = read_file("/proc/self/cgroup", &len);

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line && !unit;
	    line = strtok_r(NULL, "\n", &save))
		if ((name = strrchr(line, '/')) && (strstr(name, ".service") || strstr(name, ".scope")))
			unit = strdup(name + 1);
	free(text);
	return unit;
}

/*
 * Burst mode: the connection children hand their journal messages to the
 * burst process through this packet pipe (job_log_relay), which forwards
 * them (job_log_forward). journald gathers a sender's metadata from /proc
 * once per process it has not seen lately: for a child per request that was
 * most of what a request line cost it (~0.15 ms of CPU, against ~0.02 ms
 * from a process it knows). -1: send directly.
 */
static int journal_relay_fd = -1;

void
job_log_relay(int fd)
{
	journal_relay_fd = fd;
}

/* A job's process outlives the burst process: it logs directly, and holds no relay. */
static void
drop_journal_relay(void)
{
	if (journal_relay_fd >= 0)
		close(journal_relay_fd);
	journal_relay_fd = -1;
}

int
job_log_forward(const char *msg, size_t len)
{
	static const struct sockaddr_un addr = { .sun_family = AF_UNIX,
		.sun_path = "/run/systemd/journal/socket" };
	static int fd = -1;

	if (fd < 0 && (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	return sendto(fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&addr,
	    sizeof(addr)) == (ssize_t)len ? 0 : -1;
}

/*
 * Send a line to journald with structured fields, by its native protocol
 * (one datagram): cheaper per request than loading libsystemd for sd_journal_send.
 * journald looks up the sender's unit when it reads the datagram, by then
 * maybe after we exited: OBJECT_SYSTEMD_UNIT (which journalctl -u matches for
 * root's messages) names it in any case.
 */
static int
journal_send(const char *line, const char *id)
{
	struct jbuf msg = { 0 };
	char *unit = own_unit();
	int r = -1;

	jbuf_puts(&msg, "SYSLOG_IDENTIFIER=lso\nPRIORITY=6\nMESSAGE=");
	jbuf_add(&msg, line, strcspn(line, "\n"));
	if (id && *id)
		jbuf_printf(&msg, "\nLSO_JOB_ID=%s", id);
	if (unit)
		jbuf_printf(&msg, "\nOBJECT_SYSTEMD_UNIT=%s", unit);
	free(unit);
	jbuf_add(&msg, "\n", 1);
	/* One packet, whole or not at all (at most PIPE_BUF); a full relay: directly. */
	if (!msg.failed && journal_relay_fd >= 0 && msg.len <= PIPE_BUF &&
	    write(journal_relay_fd, msg.data, msg.len) == (ssize_t)msg.len)
		r = 0;
	else if (!msg.failed)
		r = job_log_forward(msg.data, msg.len);
	jbuf_free(&msg);
	return r;
}

void
job_log(const char *id, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (WITH_SYSTEMD && stderr_is_journal() && journal_send(line, id) == 0)
		return;
	fprintf(stderr, "%s\n", line);
}

/* Does extra set the variable of entry ("NAME=...")? Python keeps the first of duplicates. */
static bool
overridden(const char *entry, const char *const *extra)
{
	size_t name_len = strcspn(entry, "=");

	for (; extra && *extra; extra++)
		if (strncmp(*extra, entry, name_len + 1) == 0)
			return true;
	return false;
}

/* lso's environment without the socket-activation variables, plus extra and LSO_JOB_ID. */
static char **
program_environment(const char *id, char *id_var, size_t id_var_size,
    const char *const *extra)
{
	size_t n = 0, n_extra = 0, kept = 0;
	char **env;

	while (environ[n])
		n++;
	while (extra && extra[n_extra])
		n_extra++;
	env = calloc(n + n_extra + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0 &&
		    strncmp(environ[i], "LSO_JOB_ID=", 11) != 0 && !overridden(environ[i], extra))
			env[kept++] = environ[i];
	for (size_t i = 0; i < n_extra; i++)
		env[kept++] = (char *)extra[i];
	snprintf(id_var, id_var_size, "LSO_JOB_ID=%s", id);
	env[kept] = id_var;
	return env;
}

/*
 * A job's runner names itself, and later its program, in the job's lock file:
 * cancellation signals the runner, and a lost job's leftovers are found by the program's group.
 */
static void
lock_write_pids(int lock_fd, pid_t runner, pid_t program)
{
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%ld %ld\n", (long)runner, (long)program);

	if (ftruncate(lock_fd, 0) == 0)
		(void)!pwrite(lock_fd, buf, (size_t)n, 0);
}

/*
 * glibc's sigaction refuses the two real-time signals it reserves (32, 33),
 * yet a parent may have left them ignored (GNU make does): the kernel call
 * resets them all the same.
 */
static void
reset_reserved_signal(int sig)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} dfl = { 0 };

	if (sig != SIGKILL && sig != SIGSTOP)
		syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
}

/* The signals this process ignores (SigIgn of /proc/self/status): one read, not 64 calls. */
static unsigned long long
ignored_signals(void)
{
	char buf[4096], *line;
	ssize_t n;
	int fd;

	if (preloaded.ignored_known)
		return preloaded.ignored;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ~0ULL; /* no /proc: reset them all */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	line = strstr(buf, "\nSigIgn:\t");
	return line ? strtoull(line + 9, NULL, 16) : ~0ULL;
}

/* In the child: a clean process state for the program, whatever lso had. */
static void
reset_process_state(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	unsigned long long ignored = ignored_signals();
	sigset_t none;

	/* execve resets caught signals itself; only ignored ones stay ignored. */
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if ((ignored >> (sig - 1) & 1) && sigaction(sig, &dfl, NULL) < 0)
			reset_reserved_signal(sig);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
}

void
job_preload(void)
{
	preloaded.unit = own_unit();
	preloaded.unit_known = true;
	preloaded.ignored = ignored_signals();
	preloaded.ignored_known = true;
}

/* In the child: never returns. Reports why exec failed on status_fd. */
static void
exec_child(const struct program *prog, char *const argv[], char *const envp[],
    int out_fd, int err_fd, int status_fd)
{
	struct stat st;
	int code, null_fd;

	reset_process_state();
	/* If whoever runs the job dies, the program must not run on unsupervised. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
	    dup2(err_fd, 2) < 0)
		_exit(127);
	/* Keep only 0-2 and the close-on-exec status pipe. */
	if (status_fd != 3 && (dup3(status_fd, 3, O_CLOEXEC) < 0))
		_exit(127);
	close_range(4, ~0U, 0);
	status_fd = 3;
	/* Execute what was checked: the path has no symlinks left, and the inode must match. */
	if (stat(prog->path, &st) < 0 || st.st_dev != prog->dev || st.st_ino != prog->ino) {
		code = EXEC_CHANGED;
	} else {
		execve(prog->path, argv, envp);
		code = errno;
	}
	(void)!write(status_fd, &code, sizeof(code));
	_exit(127);
}

struct spawn {
	const struct program *prog;
	char *const *argv, *const *envp;
	int out_fd, err_fd, status_fd;
};

static int
spawn_entry(void *arg)
{
	const struct spawn *sp = arg;

	exec_child(sp->prog, sp->argv, sp->envp, sp->out_fd, sp->err_fd, sp->status_fd);
	return 127;
}

/*
 * A sync run's program, as posix_spawn starts one: clone(CLONE_VM |
 * CLONE_VFORK) on a stack of its own, so that nothing of our memory is
 * copied for a child that only execs (a fork of lso, then the teardown of
 * that copy at exec, were most of a sync run's own cost). Safe where it is
 * used: a sync run's process has no signal handler that could run in the
 * child, we wait (CLONE_VFORK) until it has exec'd or exited, and it writes
 * only its own stack. Async runs (their runner has a cancel handler) and
 * sanitizer builds (instrumented code on a foreign stack) fork.
 */
static pid_t
spawn_program(const struct spawn *sp)
{
#if defined(__SANITIZE_ADDRESS__)
	pid_t pid = fork();

	if (pid == 0)
		spawn_entry((void *)sp);
	return pid;
#else
	static char stack[64 * 1024] __attribute__((aligned(64)));

	return clone(spawn_entry, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
	    (void *)sp);
#endif
}

/* Where the captured bytes go, within one budget shared by stdout and stderr. */
struct capture {
	struct jbuf out, err;
	size_t budget;
	bool truncated;
	const struct run_control *control;  /* its on_stdout sees all of stdout */
};

/* Drain what fd has now into dst; returns false at EOF or error. */
static bool
capture_from(int fd, struct jbuf *dst, struct capture *cap)
{
	char buf[65536];
	ssize_t n;
	size_t keep;

	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (dst == &cap->out && cap->control && cap->control->on_stdout)
		cap->control->on_stdout(buf, (size_t)n, cap->control->ctx);
	keep = (size_t)n < cap->budget ? (size_t)n : cap->budget;
	if (keep < (size_t)n)
		cap->truncated = true;
	/* What the budget cannot take is read and dropped, so the program never blocks on us. */
	jbuf_add(dst, buf, keep);
	cap->budget -= keep;
	return true;
}

/* The state of one running program, watched through its pipes, a pidfd and the cancel pipe. */
struct watch {
	pid_t pid;
	struct pollfd fds[4];   /* stdout, stderr, pidfd (-1 once exited), cancel */
	int pidfd;
	bool exited;
	int wait_status;
	int64_t deadline_ms;    /* of the current phase: run, kill grace or linger */
	int64_t run_deadline_ms;
	int64_t idle_ms;        /* silence that ends the run; 0: none */
	int kills_sent;         /* 0, 1 after SIGTERM, 2 after SIGKILL */
};

/* While the program runs, its deadline is the run's, or sooner when it stays silent. */
static void
set_run_deadline(struct watch *w)
{
	int64_t idle_end = http_now_ms() + w->idle_ms;

	w->deadline_ms = w->idle_ms && idle_end < w->run_deadline_ms ? idle_end : w->run_deadline_ms;
}

/* Stop the program's whole group: SIGTERM now, SIGKILL when the grace has passed. */
static void
escalate(struct watch *w)
{
	kill(-w->pid, w->kills_sent == 0 ? SIGTERM : SIGKILL);
	w->kills_sent++;
	w->deadline_ms = http_now_ms() + KILL_GRACE_MS;
}

/* The deadline passed: escalate, or decide to stop waiting. Returns false to stop. */
static bool
deadline_passed(struct watch *w, struct run_result *result)
{
	if (w->exited || w->kills_sent == 2)
		return false; /* leftovers kept the pipes open, or nothing more to do */
	if (w->kills_sent == 0 && !result->canceled)
		result->timed_out = true;
	escalate(w);
	return true;
}

/* The program exited: note its status without reaping, so its group id stays ours. */
static void
note_exit(struct watch *w)
{
	siginfo_t info = { 0 };

	if (waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOWAIT | WNOHANG) < 0 ||
	    info.si_pid == 0)
		return;
	w->exited = true;
	w->fds[2].fd = -1;
	if (http_now_ms() + EXIT_LINGER_MS < w->deadline_ms)
		w->deadline_ms = http_now_ms() + EXIT_LINGER_MS;
}

/* A cancel request arrived on the cancel pipe. */
static void
note_cancel(struct watch *w, struct run_result *result)
{
	char drain[64];

	(void)!read(w->fds[3].fd, drain, sizeof(drain));
	w->fds[3].fd = -1;
	if (w->exited || result->timed_out)
		return;
	result->canceled = true;
	escalate(w);
}

static void
watch_program(struct watch *w, struct capture *cap, struct run_result *result)
{
	int64_t left;
	int n;

	while (w->fds[0].fd >= 0 || w->fds[1].fd >= 0 || !w->exited) {
		left = w->deadline_ms - http_now_ms();
		if (left <= 0) {
			if (!deadline_passed(w, result))
				break;
			continue;
		}
		/* Without a pidfd (old kernels, valgrind), look for the exit every 50 ms. */
		if (w->pidfd < 0 && !w->exited && left > 50)
			left = 50;
		n = poll(w->fds, 4, left > 60000 ? 60000 : (int)left);
		if (w->pidfd < 0 && !w->exited)
			note_exit(w);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 && n > 0; i++) {
			if (!w->fds[i].revents)
				continue;
			if (!capture_from(w->fds[i].fd, i == 0 ? &cap->out : &cap->err, cap))
				w->fds[i].fd = -1;
			else if (w->idle_ms && !w->kills_sent && !w->exited)
				set_run_deadline(w);
		}
		if (n > 0 && w->fds[2].fd >= 0 && w->fds[2].revents)
			note_exit(w);
		if (n > 0 && w->fds[3].fd >= 0 && w->fds[3].revents)
			note_cancel(w, result);
	}
	/* Nothing of the job outlives it; then reap. */
	kill(-w->pid, SIGKILL);
	waitpid(w->pid, &w->wait_status, 0);
}

/*
 * What left the program's process group (a double fork and setsid) was
 * re-parented to us, its subreaper: kill it, and what it leaves in turn, until
 * none is left (or the grace has passed). keep: a child of ours to spare.
 */
static void
kill_escapees(pid_t keep)
{
	char path[64], *text, *at;
	int64_t end = http_now_ms() + KILL_GRACE_MS;
	bool killed = true;
	siginfo_t info;
	size_t len;
	long pid;

	/* No child at all, the usual case: nothing escaped, no need to ask /proc. */
	if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD)
		return;
	snprintf(path, sizeof(path), "/proc/self/task/%ld/children", (long)getpid());
	while (killed && http_now_ms() < end) {
		killed = false;
		if (!(text = read_file(path, &len)))
			return;
		for (at = text; sscanf(at, "%ld", &pid) == 1; at += strcspn(at, " ") + 1) {
			if (pid != keep && kill((pid_t)pid, SIGKILL) == 0)
				killed = true;
			if (!strchr(at, ' '))
				break;
		}
		free(text);
		while (killed && waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (killed)
			poll(NULL, 0, 10);
	}
}

static void
finish_output(struct run_result *result, struct capture *cap)
{
	struct jbuf *out = &result->output;

	*out = cap->out;
	jbuf_add(out, cap->err.data ? cap->err.data : "", cap->err.len);
	jbuf_free(&cap->err);
	if (cap->truncated)
		jbuf_printf(out, "%s[output truncated at %zu bytes]\n",
		    out->len && out->data[out->len - 1] != '\n' ? "\n" : "",
		    config.max_output_bytes);
}

static void
note_line(struct run_result *result, const char *line)
{
	struct jbuf *out = &result->output;

	if (out->len && out->data[out->len - 1] != '\n')
		jbuf_add(out, "\n", 1);
	jbuf_puts(out, line);
}

/* Exit status to the API's return_code, and our notes to the output. */
static void
settle_result(struct run_result *result, int wait_status, int exec_code)
{
	result->start_failed = exec_code != 0;
	if (exec_code == EXEC_CHANGED) {
		result->return_code = -1;
		note_line(result, "Could not execute program: it changed while being started.");
	} else if (exec_code > 0) {
		result->return_code = -1;
		note_line(result, "Could not execute program: ");
		jbuf_puts(&result->output, strerror(exec_code));
	} else if (result->timed_out || result->canceled) {
		result->return_code = -1;
		note_line(result, result->canceled ? MSG_CANCELED : MSG_TIMED_OUT);
	} else if (WIFSIGNALED(wait_status)) {
		result->return_code = -WTERMSIG(wait_status);
	} else {
		result->return_code = WEXITSTATUS(wait_status);
	}
}

/* Did the child report an exec failure before exec'ing? 0 when the exec happened. */
static int
read_exec_code(int status_fd)
{
	int code = 0;
	ssize_t n;

	do
		n = read(status_fd, &code, sizeof(code));
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(code) ? code : 0;
}

static void
start_failed(struct run_result *result, const char *what)
{
	result->start_failed = true;
	result->return_code = -1;
	note_line(result, "Could not execute program: ");
	jbuf_puts(&result->output, what);
	jbuf_puts(&result->output, strerror(errno));
}

void
job_run(const struct program *prog, const char *const *args, size_t nargs,
    const char *id, const struct run_control *control, struct run_result *result)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	char id_var[sizeof("LSO_JOB_ID=") + JOB_ID_LEN];
	struct capture cap = { .budget = config.max_output_bytes, .control = control };
	struct watch w = { 0 };
	char **argv = calloc(nargs + 2, sizeof(*argv));
	char **envp = program_environment(id, id_var, sizeof(id_var),
	    control ? control->extra_env : NULL);
	int exec_code;

	*result = (struct run_result){ 0 };
	if (!argv || !envp) {
		start_failed(result, "");
		goto out;
	}
	argv[0] = (char *)prog->path;
	if (nargs > 0)
		memcpy(argv + 1, args, nargs * sizeof(*args));
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(status, O_CLOEXEC) < 0) {
		start_failed(result, "pipe: ");
		goto out;
	}
	/* Orphans of the program come to us, not to init: see kill_escapees. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (!control) {
		struct spawn sp = { prog, argv, envp, out[1], err[1], status[1] };

		w.pid = spawn_program(&sp);
	} else if ((w.pid = fork()) == 0)
		exec_child(prog, argv, envp, out[1], err[1], status[1]);
	if (w.pid < 0) {
		start_failed(result, "fork: ");
		goto out;
	}
	setpgid(w.pid, w.pid);
	if (control)
		lock_write_pids(control->lock_fd, getpid(), w.pid);
	close(out[1]), close(err[1]), close(status[1]);
	out[1] = err[1] = status[1] = -1;
	exec_code = read_exec_code(status[0]);
	w.fds[0] = (struct pollfd){ .fd = out[0], .events = POLLIN };
	w.fds[1] = (struct pollfd){ .fd = err[0], .events = POLLIN };
	w.pidfd = pidfd_open(w.pid, 0);
	w.fds[2] = (struct pollfd){ .fd = w.pidfd, .events = POLLIN };
	w.fds[3] = (struct pollfd){ .fd = control ? control->cancel_fd : -1, .events = POLLIN };
	w.run_deadline_ms = http_now_ms() + 1000 *
	    (control && control->timeout_sec ? control->timeout_sec : config.executable_timeout_sec);
	w.idle_ms = control ? control->idle_timeout_sec * 1000 : 0;
	set_run_deadline(&w);
	watch_program(&w, &cap, result);
	kill_escapees(control ? control->keep_pid : 0);
	if (w.pidfd >= 0)
		close(w.pidfd);
	finish_output(result, &cap);
	settle_result(result, w.wait_status, exec_code);
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (status[i] >= 0)
			close(status[i]);
	}
	free(argv);
	free(envp);
}

void
job_result_json(struct jbuf *b, const struct run_result *result)
{
	jbuf_puts(b, "{\"output\":\"");
	json_escape(b, result->output.data ? result->output.data : "",
	    result->output.len, true);
	jbuf_printf(b, "\",\"return_code\":%d,\"status\":\"%s\"}",
	    result->return_code, result->return_code == 0 ? "successful" : "failed");
}

void
job_result_free(struct run_result *result)
{
	jbuf_free(&result->output);
}

/* ---------------------------------------------------------------- */
/* Async jobs: records, slots, detachment, the runner, callbacks.   */
/* ---------------------------------------------------------------- */

/* How often a queued job looks for a free slot. */
#define SLOT_POLL_MS 100
/* How long detaching into a systemd scope may take. */
#define SCOPE_WAIT_MS 5000
/* Callback retries wait 1 s, 2 s, 4 s, ... at most this long. */
#define BACKOFF_MAX_MS 60000
/* How long a cancel waits for a just-started runner to name itself. */
#define RUNNER_PID_WAIT_MS 1000
#define MSG_LOST "Job lost: the process running it ended without recording a result."

/* A job as its record holds it. Strings are owned (malloc'ed). */
struct job {
	job_id id;
	char *kind;
	char *name;
	char **args;
	size_t nargs;
	char *callback_url;
	const char *status;
	char created_at[32], started_at[32], finished_at[32]; /* "" is null */
	struct run_result result;
	bool has_result;
	long attempts;
	bool delivered;
	char *last_error;
	struct program prog;
	int lock_fd;   /* held by the job's runner for its whole life */
	/* playbooks */
	char *inventory;   /* YAML (yaml.h) */
	char *extra_vars;  /* YAML (yaml.h) */
	char *progress_url;
	bool incremental;
	struct jbuf stdout_lines;  /* non-empty stdout lines, each ending in '\n' */
	char *failure;             /* why the run failed without running, for the callback */
};

static const char *const final_statuses[] = {
	"successful", "failed", "timeout", "canceled", "lost",
};

static bool
is_final(const char *status)
{
	for (size_t i = 0; i < sizeof(final_statuses) / sizeof(final_statuses[0]); i++)
		if (strcmp(status, final_statuses[i]) == 0)
			return true;
	return false;
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

/*
 * Now in UTC, RFC 3339 with milliseconds. The date is computed by hand (days
 * to civil date, after H. Hinnant): glibc's gmtime_r and strftime would read
 * /etc/localtime on every request.
 */
static void
now_rfc3339(char buf[32])
{
	struct timespec ts;
	long long days, secs, era, doe, yoe, doy, mp, year;
	unsigned month, day;

	clock_gettime(CLOCK_REALTIME, &ts);
	days = ts.tv_sec / 86400;
	secs = ts.tv_sec % 86400;
	days += 719468;
	era = days / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	year = yoe + era * 400 + (month <= 2);
	snprintf(buf, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)year % 10000,
	    month % 100, day % 100, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
	    (unsigned)(secs % 60), (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

/* "$LSO_STATE_DIR/<sub>/<file><suffix>" into buf; false when it does not fit. */
static bool
state_path(char buf[PATH_MAX], const char *sub, const char *file, const char *suffix)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s%s%s%s", config.state_dir, sub,
	    file ? "/" : "", file ? file : "", suffix ? suffix : "");

	return n > 0 && n < PATH_MAX;
}

static int
make_state_dirs(void)
{
	char path[PATH_MAX];

	if (mkdir(config.state_dir, 0750) < 0 && errno != EEXIST)
		return -1;
	if (!state_path(path, "jobs", NULL, NULL) || (mkdir(path, 0750) < 0 && errno != EEXIST))
		return -1;
	if (!state_path(path, "slots", NULL, NULL) || (mkdir(path, 0750) < 0 && errno != EEXIST))
		return -1;
	return 0;
}

static void
json_string_or_null(struct jbuf *b, const char *s)
{
	json_string(b, s && *s ? s : NULL);
}

static void
record_json(const struct job *j, struct jbuf *b)
{
	jbuf_printf(b, "{\"job_id\":\"%s\",\"kind\":", j->id);
	json_string(b, j->kind);
	jbuf_printf(b, ",\"status\":\"%s\",\"name\":", j->status);
	json_string(b, j->name);
	jbuf_puts(b, ",\"args\":[");
	for (size_t i = 0; i < j->nargs; i++) {
		jbuf_puts(b, i ? "," : "");
		json_string(b, j->args[i]);
	}
	jbuf_puts(b, "],\"created_at\":");
	json_string_or_null(b, j->created_at);
	jbuf_puts(b, ",\"started_at\":");
	json_string_or_null(b, j->started_at);
	jbuf_puts(b, ",\"finished_at\":");
	json_string_or_null(b, j->finished_at);
	jbuf_puts(b, ",\"result\":");
	if (j->has_result)
		job_result_json(b, &j->result);
	else
		jbuf_puts(b, "null");
	jbuf_puts(b, ",\"callback\":");
	if (j->callback_url) {
		jbuf_puts(b, "{\"url\":");
		json_string(b, j->callback_url);
		jbuf_printf(b, ",\"attempts\":%ld,\"delivered\":%s,\"last_error\":",
		    j->attempts, j->delivered ? "true" : "false");
		json_string_or_null(b, j->last_error);
		jbuf_puts(b, "}");
	} else {
		jbuf_puts(b, "null");
	}
	jbuf_puts(b, "}\n");
}

/*
 * A record's file, opened and flock'ed (how), and still the one at path once
 * the lock is held: records trade places with their spare (record_write), so
 * the file one opened may have moved while one waited.
 */
static int
open_locked(const char *path, int flags, int how, struct stat *held)
{
	struct stat named;

	for (int tries = 0; tries < 8; tries++) {
		int fd = open(path, flags | O_CLOEXEC, 0640);

		if (fd < 0)
			return -1;
		if (flock(fd, how) == 0 && fstat(fd, held) == 0 && stat(path, &named) == 0 &&
		    held->st_ino == named.st_ino && held->st_dev == named.st_dev)
			return fd;
		close(fd);
	}
	return errno = EAGAIN, -1;
}

/* A job's record as stored, read under a shared lock so no writer reuses it meanwhile. */
static char *
read_record(const char *id, size_t *len)
{
	char path[PATH_MAX], *text;
	struct stat held;
	int fd;

	if (!state_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, NULL;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return NULL;
	text = read_all(fd, len);
	close(fd);
	return text;
}

/* b's text at the start of fd, which held old_size bytes before. */
static int
write_whole(int fd, const struct jbuf *b, off_t old_size)
{
	for (size_t done = 0; done < b->len;) {
		ssize_t n = pwrite(fd, b->data + done, b->len - done, (off_t)done);
		if (n < 0 && errno != EINTR)
			return -1;
		done += n > 0 ? (size_t)n : 0;
	}
	return old_size > (off_t)b->len ? ftruncate(fd, (off_t)b->len) : 0;
}

/* The spare, holding the new text, becomes the record; the old record becomes the spare. */
static int
swap_in(const char *spare, const char *path)
{
	if (renameat2(AT_FDCWD, spare, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
		return 0;
	/* The first record has nothing to trade with; some file systems cannot trade. */
	if (errno == ENOENT || errno == EINVAL || errno == ENOSYS)
		return rename(spare, path);
	return -1;
}

/*
 * Write the record so that a reader sees the old one or the new one, whole.
 * The new text goes into the job's spare file (<id>.next), which then trades
 * places with <id>.json; the old record is the next spare. An update thus
 * creates and deletes no file: on ext4 without a journal, creating a file
 * skips, one by one, every inode deleted in the last minute (see
 * bench/README.md). The spare is overwritten under an exclusive flock, and
 * readers hold a shared one (read_record), so nobody reads a spare while it
 * is rewritten. The writers of a job take turns: they hold its lock
 * (j->lock_fd).
 *
 * The first record is created where it stays, without a spare: nobody knows
 * the job's id before the 201, so nobody reads it half written. An instance
 * killed while writing it leaves an empty record, which --recover skips and
 * GET answers with 404.
 */
static int
record_write(const struct job *j, bool first)
{
	char path[PATH_MAX], spare[PATH_MAX];
	struct jbuf b = { 0 };
	struct stat held = { 0 };
	int fd = -1, r = -1, saved;

	if (!state_path(path, "jobs", j->id, ".json") || !state_path(spare, "jobs", j->id, ".next"))
		return errno = ENAMETOOLONG, -1;
	record_json(j, &b);
	errno = ENOMEM;
	if (!b.failed)
		fd = first ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640) :
		    open_locked(spare, O_RDWR | O_CREAT, LOCK_EX, &held);
	if (fd >= 0 && write_whole(fd, &b, held.st_size) == 0 &&
	    (first || swap_in(spare, path) == 0))
		r = 0;
	saved = errno;
	if (fd >= 0)
		close(fd);
	jbuf_free(&b);
	errno = saved;
	return r;
}

/*
 * The job's last record is written: empty its spare, which holds the one
 * before (up to LSO_MAX_OUTPUT_BYTES of output twice otherwise). Emptied, not
 * deleted, for the reason above; the tmpfiles rule ages it with the record.
 */
static void
record_done(const struct job *j)
{
	char spare[PATH_MAX];
	struct stat held;
	int fd;

	if (!state_path(spare, "jobs", j->id, ".next"))
		return;
	fd = open_locked(spare, O_WRONLY, LOCK_EX, &held);
	if (fd >= 0) {
		(void)!ftruncate(fd, 0);
		close(fd);
	}
}

static char *
dup_string(const cJSON *item)
{
	return cJSON_IsString(item) ? strdup(item->valuestring) : NULL;
}

static void
copy_time(char dst[32], const cJSON *item)
{
	snprintf(dst, 32, "%s", cJSON_IsString(item) ? item->valuestring : "");
}

static void
result_from_json(struct job *j, const cJSON *result)
{
	const cJSON *output = cJSON_GetObjectItemCaseSensitive(result, "output");
	const cJSON *rc = cJSON_GetObjectItemCaseSensitive(result, "return_code");

	if (!cJSON_IsObject(result))
		return;
	j->has_result = true;
	if (cJSON_IsString(output))
		jbuf_puts(&j->result.output, output->valuestring);
	j->result.return_code = cJSON_IsNumber(rc) ? rc->valueint : -1;
}

static void
callback_from_json(struct job *j, const cJSON *callback)
{
	const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(callback, "attempts");

	if (!cJSON_IsObject(callback))
		return;
	j->callback_url = dup_string(cJSON_GetObjectItemCaseSensitive(callback, "url"));
	j->attempts = cJSON_IsNumber(attempts) ? attempts->valueint : 0;
	j->delivered = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(callback, "delivered"));
	j->last_error = dup_string(cJSON_GetObjectItemCaseSensitive(callback, "last_error"));
}

static void
job_free(struct job *j)
{
	free(j->kind);
	free(j->name);
	for (size_t i = 0; i < j->nargs; i++)
		free(j->args[i]);
	free(j->args);
	free(j->callback_url);
	free(j->last_error);
	free(j->inventory);
	free(j->extra_vars);
	free(j->progress_url);
	free(j->failure);
	jbuf_free(&j->stdout_lines);
	job_result_free(&j->result);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	*j = (struct job){ .lock_fd = -1 };
}

static const char *
known_status(const char *status)
{
	static const char *const all[] = { "queued", "running", "successful", "failed",
		"timeout", "canceled", "lost" };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (status && strcmp(status, all[i]) == 0)
			return all[i];
	return "lost";
}

/* Load a record into j; -1 with errno ENOENT when there is none. */
static int
record_read(const char *id, struct job *j)
{
	const cJSON *args, *arg;
	char *text;
	size_t len;
	cJSON *root;

	*j = (struct job){ .lock_fd = -1 };
	if (!(text = read_record(id, &len)))
		return -1;
	root = cJSON_ParseWithLength(text, len);
	free(text);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return errno = EINVAL, -1;
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->kind = dup_string(cJSON_GetObjectItemCaseSensitive(root, "kind"));
	j->name = dup_string(cJSON_GetObjectItemCaseSensitive(root, "name"));
	j->status = known_status(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "status")));
	args = cJSON_GetObjectItemCaseSensitive(root, "args");
	j->args = calloc((size_t)cJSON_GetArraySize(args) + 1, sizeof(*j->args));
	cJSON_ArrayForEach(arg, args)
		if (j->args && cJSON_IsString(arg))
			j->args[j->nargs++] = strdup(arg->valuestring);
	copy_time(j->created_at, cJSON_GetObjectItemCaseSensitive(root, "created_at"));
	copy_time(j->started_at, cJSON_GetObjectItemCaseSensitive(root, "started_at"));
	copy_time(j->finished_at, cJSON_GetObjectItemCaseSensitive(root, "finished_at"));
	result_from_json(j, cJSON_GetObjectItemCaseSensitive(root, "result"));
	callback_from_json(j, cJSON_GetObjectItemCaseSensitive(root, "callback"));
	cJSON_Delete(root);
	return 0;
}

/* --- liveness: the runner holds an exclusive flock on the job's lock file --- */

static int
open_lock(const char *id)
{
	char path[PATH_MAX];

	if (!state_path(path, "jobs", id, ".lock"))
		return errno = ENAMETOOLONG, -1;
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
}

/* Take the job's lock if nobody holds it: its runner is gone. -1 while it lives. */
static int
take_lock_of_dead_runner(const char *id)
{
	int fd = open_lock(id);

	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The pids in a job's lock file (see lock_write_pids); false when it names no runner. */
static bool
read_pids(const char *id, pid_t *runner, pid_t *program)
{
	char path[PATH_MAX], *text;
	long r = 0, p = 0;
	size_t len;

	if (!state_path(path, "jobs", id, ".lock") || !(text = read_file(path, &len)))
		return false;
	sscanf(text, "%ld %ld", &r, &p);
	free(text);
	*runner = (pid_t)r, *program = (pid_t)p;
	return r > 0;
}

/* The runner's pid, waiting briefly for a runner just born to name itself. */
static pid_t
runner_pid(const char *id)
{
	pid_t runner = 0, program;
	int64_t end = http_now_ms() + RUNNER_PID_WAIT_MS;

	while (!read_pids(id, &runner, &program) && http_now_ms() < end)
		poll(NULL, 0, 10);
	return runner > 0 ? runner : -1;
}

/* Does process pid belong to job id? Its environment says so (LSO_JOB_ID). */
static bool
is_jobs_process(pid_t pid, const char *id)
{
	char path[64], var[sizeof("LSO_JOB_ID=") + JOB_ID_LEN], *environ_text;
	size_t len;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
	snprintf(var, sizeof(var), "LSO_JOB_ID=%s", id);
	if (!(environ_text = read_file(path, &len)))
		return false;
	for (size_t at = 0; at < len && !found; at += strlen(environ_text + at) + 1)
		found = strcmp(environ_text + at, var) == 0;
	free(environ_text);
	return found;
}

/*
 * Kill what a dead runner's program left running: the members of its process
 * group that carry the job's id, so a reused group id never hits a stranger.
 */
static void
kill_leftovers(const char *id)
{
	pid_t runner, program, pid;
	char path[64], *stat_text, *after_comm;
	struct dirent *entry;
	long pgrp;
	size_t len;
	DIR *proc;

	if (!read_pids(id, &runner, &program) || program <= 0 || !(proc = opendir("/proc")))
		return;
	while ((entry = readdir(proc))) {
		if ((pid = (pid_t)strtol(entry->d_name, NULL, 10)) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
		if (!(stat_text = read_file(path, &len)))
			continue;
		/* "pid (comm) state ppid pgrp ...": comm may hold anything but ends at the last ')'. */
		after_comm = strrchr(stat_text, ')');
		if (after_comm && sscanf(after_comm + 1, " %*c %*d %ld", &pgrp) == 1 &&
		    pgrp == program && is_jobs_process(pid, id))
			kill(pid, SIGKILL);
		free(stat_text);
	}
	closedir(proc);
}

/* --- slots: at most max_workers programs at once, freed by the kernel when a holder dies --- */

static volatile sig_atomic_t cancel_requested;
static int cancel_pipe[2] = { -1, -1 };

static void
on_cancel_signal(int sig)
{
	int saved = errno;

	(void)sig;
	cancel_requested = 1;
	(void)!write(cancel_pipe[1], "c", 1);
	errno = saved;
}

/* Wait until fd is readable or ms pass: true when readable. */
static bool
wait_readable(int fd, int64_t ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms > 0 ? (int)ms : 0) > 0;
}

/* Wait until cancel_fd is readable or ms pass: true when canceled. */
static bool
wait_canceled(int ms)
{
	struct pollfd pfd = { .fd = cancel_pipe[0], .events = POLLIN };

	return cancel_requested || poll(&pfd, 1, ms) > 0;
}

/* Upstream's thread pool default, min(32, ncpu + 4); looked up only by async jobs. */
static long
max_workers(void)
{
	long ncpu;

	if (config.max_workers > 0)
		return config.max_workers;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	return ncpu < 1 ? 5 : (ncpu + 4 < 32 ? ncpu + 4 : 32);
}

static int
try_slots(void)
{
	char path[PATH_MAX], name[24];
	long slots = max_workers();
	int fd;

	for (long n = 0; n < slots; n++) {
		snprintf(name, sizeof(name), "%ld", n);
		if (!state_path(path, "slots", name, NULL))
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

	if (!state_path(path, "slots", "queue", NULL) ||
	    (queue_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0)
		return try_slots();
	while (flock(queue_fd, LOCK_EX) < 0)
		if (errno != EINTR || cancel_requested)
			goto out;
	while ((slot_fd = try_slots()) < 0)
		if (wait_canceled(SLOT_POLL_MS))
			break;
out:
	close(queue_fd);
	return slot_fd;
}

/* --- callbacks, with libcurl loaded here only: every other path stays lean --- */

struct curl_api {
	void *lib;
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

static bool
load_curl(struct curl_api *c, char *why, size_t why_size)
{
	c->lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!c->lib) {
		snprintf(why, why_size, "cannot load libcurl: %s", dlerror());
		return false;
	}
#define LOAD(field, symbol) \
	if (!(*(void **)&c->field = dlsym(c->lib, symbol))) { \
		snprintf(why, why_size, "libcurl lacks %s", symbol); \
		return false; \
	}
	LOAD(easy_init, "curl_easy_init")
	LOAD(easy_setopt, "curl_easy_setopt")
	LOAD(easy_perform, "curl_easy_perform")
	LOAD(easy_getinfo, "curl_easy_getinfo")
	LOAD(easy_cleanup, "curl_easy_cleanup")
	LOAD(easy_strerror, "curl_easy_strerror")
	LOAD(slist_append, "curl_slist_append")
	LOAD(slist_free_all, "curl_slist_free_all")
#undef LOAD
	return true;
}

static size_t
discard_response(char *data, size_t size, size_t n, void *unused)
{
	(void)data, (void)unused;
	return size * n;
}

/* One POST: the HTTP status, or 0 with why set when none came back. */
static long
post_once(struct curl_api *c, const char *url, const struct jbuf *body,
    char *why, size_t why_size)
{
	struct curl_slist *headers = NULL;
	CURL *curl = c->easy_init();
	long http_status = 0;
	CURLcode rc;

	if (!curl) {
		snprintf(why, why_size, "curl_easy_init failed");
		return 0;
	}
	headers = c->slist_append(headers, "Content-Type: application/json");
	c->easy_setopt(curl, CURLOPT_URL, url);
	c->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	c->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	c->easy_setopt(curl, CURLOPT_TIMEOUT, config.request_timeout_sec);
	c->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	c->easy_setopt(curl, CURLOPT_USERAGENT, "lso/" LSO_VERSION);
	c->easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
	c->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_response);
	rc = c->easy_perform(curl);
	if (rc == CURLE_OK)
		c->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
	else
		snprintf(why, why_size, "%s", c->easy_strerror(rc));
	c->easy_cleanup(curl);
	c->slist_free_all(headers);
	return http_status;
}

static void
set_last_error(struct job *j, const char *error)
{
	free(j->last_error);
	j->last_error = error ? strdup(error) : NULL;
}

static void
log_attempt(const struct job *j, const char *outcome)
{
	job_log(j->id, "callback job=%s attempt=%ld %s", j->id, j->attempts, outcome);
}

static bool
is_playbook(const struct job *j)
{
	return j->kind && strcmp(j->kind, "playbook") == 0;
}

/* Each non-empty line of text as a JSON string of the array being written. */
static void
json_lines(struct jbuf *b, const char *text, size_t len, bool *first)
{
	const char *end = text + len, *nl;

	for (; text < end; text = nl + 1) {
		nl = memchr(text, '\n', (size_t)(end - text));
		if (!nl)
			nl = end;
		if (nl > text) {
			jbuf_puts(b, *first ? "\"" : ",\"");
			json_escape(b, text, (size_t)(nl - text), true);
			jbuf_puts(b, "\"");
			*first = false;
		}
	}
}

/*
 * A playbook's callback, in upstream's shape: {"status", "job_id", "output":
 * [non-empty stdout lines], "return_code"}; a run that never ran (or was lost)
 * says why in one line.
 */
static void
playbook_callback_body(const struct job *j, struct jbuf *b)
{
	const char *status = strcmp(j->status, "lost") == 0 ? "failed" : j->status;
	const struct jbuf *lines = j->stdout_lines.len ? &j->stdout_lines : &j->result.output;
	bool first = true;

	jbuf_printf(b, "{\"status\":\"%s\",\"job_id\":\"%s\",\"output\":[", status, j->id);
	if (j->failure) {
		jbuf_puts(b, "\"Ansible playbook run failed: ");
		json_escape(b, j->failure, strlen(j->failure), true);
		jbuf_puts(b, "\"");
	} else if (lines->data) {
		json_lines(b, lines->data, lines->len, &first);
	}
	jbuf_printf(b, "],\"return_code\":%d}", j->failure ? -1 : j->result.return_code);
}

/* The body the callback receives: upstream's shape for each kind of job. */
static void
callback_body(const struct job *j, struct jbuf *b)
{
	if (is_playbook(j)) {
		playbook_callback_body(j, b);
		return;
	}
	jbuf_printf(b, "{\"job_id\":\"%s\",\"result\":", j->id);
	job_result_json(b, &j->result);
	jbuf_puts(b, "}");
}

/* Are more attempts worth it after this outcome? Not after a 3xx or 4xx. */
static bool
worth_retrying(long http_status)
{
	return http_status == 0 || http_status >= 500;
}

/*
 * POST the result to the callback URL: retried with exponential backoff on
 * connection errors, timeouts and 5xx; recorded after every attempt.
 */
static void
deliver_callback(struct job *j)
{
	struct curl_api curl;
	struct jbuf body = { 0 };
	char why[CURL_ERROR_SIZE + 64], outcome[CURL_ERROR_SIZE + 96];
	long http_status = 0, backoff_ms = 1000;

	if (!j->callback_url || j->delivered)
		return;
	if (!load_curl(&curl, why, sizeof(why))) {
		set_last_error(j, why);
		record_write(j, false);
		log_attempt(j, why);
		return;
	}
	callback_body(j, &body);
	while (j->attempts <= config.callback_retries) {
		if (j->attempts > 0 && j->last_error) {
			struct timespec pause = { backoff_ms / 1000, (backoff_ms % 1000) * 1000000 };
			while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
				;
			backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
		}
		*why = '\0';
		http_status = post_once(&curl, j->callback_url, &body, why, sizeof(why));
		j->attempts++;
		j->delivered = http_status >= 200 && http_status < 300;
		if (http_status)
			snprintf(why, sizeof(why), "HTTP %ld", http_status);
		set_last_error(j, j->delivered ? NULL : why);
		record_write(j, false);
		snprintf(outcome, sizeof(outcome), "%s", why);
		log_attempt(j, outcome);
		if (j->delivered || !worth_retrying(http_status))
			break;
	}
	jbuf_free(&body);
}

/* --- detachment: the job must outlive the instance without escaping management --- */

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
	for (int64_t end = http_now_ms() + SCOPE_WAIT_MS; http_now_ms() < end;) {
		size_t len;
		char *text = read_file("/proc/self/cgroup", &len);
		bool moved = text && strstr(text, unit);

		free(text);
		if (moved) {
			/* Our unit changed: the journal must name the scope now. */
			free(preloaded.unit);
			preloaded.unit = NULL;
			preloaded.unit_known = false;
			return 0;
		}
		poll(NULL, 0, 10);
	}
	snprintf(why, why_size, "%s did not take us in time", unit);
	return -1;
}

/*
 * A dead runner's scope holds exactly what its job left, also what escaped
 * the program's process group (setsid): SIGKILL it all.
 */
static void
kill_scope(const char *id)
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

static void
kill_scope(const char *id)
{
	(void)id;
}
#endif

/*
 * Under systemd: the job's process asks for a scope of its own and tells the
 * instance whether it got one ('S') or not ('F', then the reason). The
 * instance may exit only after 'S': until then the job is in its cgroup.
 */
static void
detach_under_systemd(struct job *j, const char *kind, void (*work)(struct job *))
{
	int ready[2];
	char how = 'F', why[512] = "";
	ssize_t n;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		job_log(j->id, "lso: job %s: cannot detach (%s): running it here", j->id, strerror(errno));
		work(j);
		return;
	}
	if (pid == 0) {
		close(ready[0]);
		drop_journal_relay();
		setsid();
		lock_write_pids(j->lock_fd, getpid(), 0);
		how = move_to_scope(kind, j->id, why, sizeof(why)) == 0 ? 'S' : 'F';
		(void)!write(ready[1], &how, 1);
		(void)!write(ready[1], why, strlen(why));
		close(ready[1]);
		work(j);
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &how, 1) != 1)
		how = 'F';
	if (how != 'S') {
		n = read(ready[0], why, sizeof(why) - 1);
		why[n > 0 ? n : 0] = '\0';
		job_log(j->id, "lso: job %s stays in this instance, which supervises it: %s",
		    j->id, *why ? why : "no scope of its own");
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	close(ready[0]);
}

/*
 * Leave the instance behind: returns in the instance once the job no longer
 * depends on it; the job's own process runs work() and exits. Without
 * systemd, inetd style: a child in a session of its own, adopted by init
 * when the instance exits (it never opens a terminal, so one fork will do).
 */
static void
detach(struct job *j, const char *kind, void (*work)(struct job *))
{
	pid_t pid;

	if (getenv("INVOCATION_ID")) {
		detach_under_systemd(j, kind, work);
		return;
	}
	pid = fork();
	if (pid < 0) {
		job_log(j->id, "lso: job %s: cannot detach (%s): running it here", j->id, strerror(errno));
		work(j);
	} else if (pid == 0) {
		drop_journal_relay();
		setsid();
		lock_write_pids(j->lock_fd, getpid(), 0);
		work(j);
		_exit(0);
	}
}

/* --- playbooks: ansible-playbook with private files, progress while it runs --- */

/* Progress: at most one POST per interval, each at most this many bytes of lines. */
#define PROGRESS_INTERVAL_MS 200
#define PROGRESS_MAX_BYTES (256 * 1024)
/* Blocks waiting for the progress process beyond this are dropped, not waited for. */
#define PROGRESS_PENDING_MAX (1024 * 1024)
/* Longer stdout lines are cut: Ansible's are short. */
#define LINE_MAX_BYTES 65536

/* Remove a directory tree (the job's private files), whatever is in it. */
static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
remove_job_files(const char *id)
{
	char dir[PATH_MAX];

	if (state_path(dir, "tmp", id, NULL))
		nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static bool
write_private_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t len = strlen(text);
	bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * The inventory and the extra vars, YAML with every client string !unsafe
 * (lso.c made them), in a directory only we can read: never on the command line.
 */
static bool
write_playbook_files(const struct job *j, char dir[PATH_MAX], char inventory[PATH_MAX],
    char vars[PATH_MAX])
{
	char top[PATH_MAX];

	if (!state_path(top, "tmp", NULL, NULL) || !state_path(dir, "tmp", j->id, NULL) ||
	    (mkdir(top, 0700) < 0 && errno != EEXIST) || mkdir(dir, 0700) < 0)
		return false;
	if (snprintf(inventory, PATH_MAX, "%s/inventory.yml", dir) >= PATH_MAX ||
	    snprintf(vars, PATH_MAX, "%s/extra_vars.yml", dir) >= PATH_MAX)
		return errno = ENAMETOOLONG, false;
	return write_private_file(inventory, j->inventory ? j->inventory : "") &&
	    write_private_file(vars, j->extra_vars ? j->extra_vars : "{}\n");
}

/* ansible-playbook: $ANSIBLE_PLAYBOOK, else the first on PATH. */
static bool
find_ansible(struct program *prog)
{
	const char *path = getenv("PATH"), *dir, *end;

	if (config.ansible_playbook) {
		snprintf(prog->path, sizeof(prog->path), "%s", config.ansible_playbook);
		return config.ansible_playbook[0] == '/' &&
		    check_file(prog->path, true, prog) == RESOLVE_OK;
	}
	for (dir = path ? path : "/usr/local/bin:/usr/bin:/bin"; *dir; dir = *end ? end + 1 : end) {
		end = dir + strcspn(dir, ":");
		if (end > dir && snprintf(prog->path, sizeof(prog->path), "%.*s/ansible-playbook",
		    (int)(end - dir), dir) < (int)sizeof(prog->path) &&
		    check_file(prog->path, true, prog) == RESOLVE_OK)
			return true;
	}
	return false;
}

/* What the runner keeps while reading a playbook's stdout. */
struct playbook_output {
	struct job *job;
	struct jbuf line;       /* the line being assembled */
	struct jbuf pending;    /* finished task blocks not yet taken by the progress process */
	int progress_fd;        /* -1: no progress */
	size_t dropped_lines;
};

/* Hand what is pending to the progress process without ever waiting for it. */
static void
push_progress(struct playbook_output *o)
{
	ssize_t n;

	if (o->progress_fd < 0 || o->pending.len == 0)
		return;
	n = write(o->progress_fd, o->pending.data, o->pending.len);
	if (n > 0) {
		memmove(o->pending.data, o->pending.data + n, o->pending.len - (size_t)n);
		o->pending.len -= (size_t)n;
	}
}

/* A blank line ends a task's block: the progress process posts whole blocks. */
static void
end_block(struct playbook_output *o)
{
	if (o->progress_fd < 0 || o->pending.len == 0 || o->pending.data[o->pending.len - 1] != '\n' ||
	    (o->pending.len > 1 && o->pending.data[o->pending.len - 2] == '\n'))
		return;
	jbuf_add(&o->pending, "\n", 1);
	push_progress(o);
}

static void
take_line(struct playbook_output *o)
{
	struct jbuf *lines = &o->job->stdout_lines;
	size_t len = o->line.len;

	if (len && o->line.data[len - 1] == '\r')
		len--;
	o->line.len = 0;
	if (len == 0) {
		end_block(o);
		return;
	}
	if (lines->len + len < config.max_output_bytes) {
		jbuf_add(lines, o->line.data, len);
		jbuf_add(lines, "\n", 1);
	}
	if (o->progress_fd < 0)
		return;
	if (o->pending.len + len >= PROGRESS_PENDING_MAX) {
		o->dropped_lines++;
		return;
	}
	jbuf_add(&o->pending, o->line.data, len);
	jbuf_add(&o->pending, "\n", 1);
}

static void
on_playbook_stdout(const char *data, size_t len, void *ctx)
{
	struct playbook_output *o = ctx;

	for (const char *end = data + len, *nl; data < end; data = nl + 1) {
		nl = memchr(data, '\n', (size_t)(end - data));
		if (o->line.len < LINE_MAX_BYTES)
			jbuf_add(&o->line, data, ((nl ? nl : end) - data) <
			    (ptrdiff_t)(LINE_MAX_BYTES - o->line.len) ? (size_t)((nl ? nl : end) - data) :
			    LINE_MAX_BYTES - o->line.len);
		if (!nl)
			break;
		take_line(o);
	}
}

/* {"progress": [lines]} for the lines of text, at most PROGRESS_MAX_BYTES of the newest. */
static void
progress_body(struct jbuf *b, const char *text, size_t len)
{
	bool first = true;

	if (len > PROGRESS_MAX_BYTES) {
		const char *from = memchr(text + len - PROGRESS_MAX_BYTES, '\n', PROGRESS_MAX_BYTES);
		len -= from ? (size_t)(from + 1 - text) : len;
		text = from ? from + 1 : text;
	}
	jbuf_puts(b, "{\"progress\":[");
	json_lines(b, text, len, &first);
	jbuf_puts(b, "]}");
}

/* End of the last whole block ("\n\n") in the buffer, 0 when there is none. */
static size_t
whole_blocks(const struct jbuf *in)
{
	for (size_t i = in->len; i >= 2; i--)
		if (in->data[i - 1] == '\n' && in->data[i - 2] == '\n')
			return i;
	return 0;
}

/*
 * The progress process: reads task blocks from the runner and POSTs them, at
 * most one POST per interval, so a slow receiver delays only itself.
 */
static void
post_progress(int fd, const struct job *j)
{
	struct jbuf in = { 0 }, all = { 0 }, body = { 0 };
	struct curl_api curl;
	char buf[65536], why[CURL_ERROR_SIZE + 64];
	int64_t next_post_ms = 0;
	size_t ready;
	bool eof = false;
	ssize_t n;

	if (!load_curl(&curl, why, sizeof(why))) {
		job_log(j->id, "progress job=%s: %s", j->id, why);
		_exit(0);
	}
	while (!eof) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			jbuf_add(&in, buf, (size_t)n);
		eof = n == 0 || (n < 0 && errno != EINTR);
		ready = eof ? in.len : whole_blocks(&in);
		if (ready == 0 || (!eof && http_now_ms() < next_post_ms &&
		    wait_readable(fd, next_post_ms - http_now_ms())))
			continue; /* more is coming: post it together */
		if (!j->incremental)
			jbuf_add(&all, in.data, ready);
		body.len = 0;
		progress_body(&body, j->incremental ? in.data : all.data, j->incremental ? ready : all.len);
		next_post_ms = http_now_ms() + PROGRESS_INTERVAL_MS;
		*why = '\0';
		if (!post_once(&curl, j->progress_url, &body, why, sizeof(why)) || *why)
			job_log(j->id, "progress job=%s: %s", j->id, *why ? why : "no answer");
		memmove(in.data, in.data + ready, in.len - ready);
		in.len -= ready;
	}
	_exit(0);
}

/* Start the progress process; its pipe's write end in *fd (non-blocking), or -1. */
static pid_t
start_progress(const struct job *j, int *fd)
{
	int p[2];
	pid_t pid;

	*fd = -1;
	if (!j->progress_url || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fcntl(p[1], F_SETPIPE_SZ, PROGRESS_PENDING_MAX);
	pid = fork();
	if (pid == 0) {
		/* Holds nothing of the job (its lock above all), and dies with the runner. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		dup2(p[0], 3);
		close_range(4, ~0U, 0);
		post_progress(3, j);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -1;
	}
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	*fd = p[1];
	return pid;
}

/* Let the progress process post the last blocks, within one request timeout. */
static void
stop_progress(pid_t pid, struct playbook_output *o)
{
	int64_t end = http_now_ms() + (config.request_timeout_sec + 1) * 1000;

	if (o->progress_fd >= 0) {
		fcntl(o->progress_fd, F_SETFL, 0);
		for (struct pollfd pfd = { o->progress_fd, POLLOUT, 0 };
		    o->pending.len && poll(&pfd, 1, (int)(end - http_now_ms())) > 0;)
			push_progress(o);
		close(o->progress_fd);
	}
	if (o->dropped_lines)
		job_log(o->job->id, "progress job=%s: %zu lines dropped, receiver too slow",
		    o->job->id, o->dropped_lines);
	while (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
		if (http_now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		poll(NULL, 0, 20);
	}
}

static void
playbook_failed(struct job *j, const char *reason)
{
	j->failure = strdup(reason);
	j->result.start_failed = true;
	j->result.return_code = -1;
	jbuf_puts(&j->result.output, reason);
}

/* Run the playbook: ansible-playbook -i INVENTORY -e @VARS PLAYBOOK, no shell. */
static void
run_playbook(struct job *j, struct run_control *control)
{
	/* Only the yaml plugin reads the inventory: "auto" would take a key "plugin" as its config. */
	static const char *const ansible_env[] = { "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=0", "ANSIBLE_INVENTORY_UNPARSED_FAILED=1",
		"ANSIBLE_INVENTORY_ENABLED=yaml", "PYTHONUNBUFFERED=1", NULL };
	char dir[PATH_MAX], inventory[PATH_MAX], vars[PATH_MAX], vars_arg[PATH_MAX + 1], why[PATH_MAX + 64];
	struct playbook_output out = { .job = j, .progress_fd = -1 };
	struct program ansible;
	pid_t progress;

	if (!write_playbook_files(j, dir, inventory, vars)) {
		snprintf(why, sizeof(why), "cannot write the inventory: %s", strerror(errno));
		playbook_failed(j, why);
	} else if (!find_ansible(&ansible)) {
		playbook_failed(j, "ansible-playbook not found (ANSIBLE_PLAYBOOK, PATH)");
	} else {
		const char *args[] = { "-i", inventory, "-e", vars_arg, j->prog.path };

		snprintf(vars_arg, sizeof(vars_arg), "@%s", vars);
		progress = start_progress(j, &out.progress_fd);
		control->keep_pid = progress;
		control->timeout_sec = config.playbook_max_sec;
		control->idle_timeout_sec = config.playbook_idle_sec;
		control->on_stdout = on_playbook_stdout;
		control->ctx = &out;
		control->extra_env = ansible_env;
		job_run(&ansible, args, 5, j->id, control, &j->result);
		if (out.line.len)
			take_line(&out);
		end_block(&out);
		stop_progress(progress, &out);
		if (j->result.start_failed)
			playbook_failed(j, j->result.output.data ? j->result.output.data : "");
	}
	jbuf_free(&out.line);
	jbuf_free(&out.pending);
	remove_job_files(j->id);
}

/* --- the runner --- */

static void
finish(struct job *j, const char *status)
{
	j->status = status;
	now_rfc3339(j->finished_at);
	j->has_result = true;
	record_write(j, false);
}

static void
install_cancel_handler(void)
{
	struct sigaction sa = { .sa_handler = on_cancel_signal };

	if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* In the job's own process: wait for a slot, run, record, call back, exit. */
static void
run_job(struct job *j)
{
	int slot_fd;

	install_cancel_handler();
	slot_fd = acquire_slot();
	if (slot_fd < 0) {
		j->result.return_code = -1;
		jbuf_puts(&j->result.output, cancel_requested ? MSG_CANCELED :
		    "Could not take a worker slot.");
		finish(j, cancel_requested ? "canceled" : "failed");
	} else {
		struct run_control control = { .cancel_fd = cancel_pipe[0], .lock_fd = j->lock_fd };

		j->status = "running";
		now_rfc3339(j->started_at);
		record_write(j, false);
		if (is_playbook(j))
			run_playbook(j, &control);
		else
			job_run(&j->prog, (const char *const *)j->args, j->nargs, j->id,
			    &control, &j->result);
		/* Recorded before the slot is freed: no more records say running than there are slots. */
		finish(j, j->result.canceled ? "canceled" : j->result.timed_out ? "timeout" :
		    j->result.return_code == 0 ? "successful" : "failed");
		close(slot_fd);
	}
	job_log(j->id, "job %s %s rc=%d", j->id, j->status, j->result.return_code);
	deliver_callback(j);
	record_done(j);
	job_free(j);
	free(j);
	exit(0);
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
job_submit(const struct job_request *r, const char *id, struct job **out)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		goto fail;
	j->lock_fd = -1;
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->kind = strdup(r->kind);
	j->name = strdup(r->name);
	j->args = calloc(r->nargs + 1, sizeof(*j->args));
	j->callback_url = dup_or_null(r->callback);
	j->inventory = dup_or_null(r->inventory);
	j->extra_vars = dup_or_null(r->extra_vars);
	j->progress_url = dup_or_null(r->progress);
	j->incremental = r->incremental;
	j->prog = *r->prog;
	j->status = "queued";
	now_rfc3339(j->created_at);
	if (!j->kind || !j->name || !j->args || (r->callback && !j->callback_url) ||
	    (r->inventory && !j->inventory) || (r->extra_vars && !j->extra_vars) ||
	    (r->progress && !j->progress_url))
		goto fail;
	for (; j->nargs < r->nargs; j->nargs++)
		if (!(j->args[j->nargs] = strdup(r->args[j->nargs])))
			goto fail;
	/* The lock first: a record must never look abandoned. */
	j->lock_fd = open_lock(id);
	if (j->lock_fd < 0 && errno == ENOENT && make_state_dirs() == 0)
		j->lock_fd = open_lock(id);
	if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX) < 0 || record_write(j, true) < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	if (j) {
		int saved = errno;
		job_free(j);
		free(j);
		errno = saved;
	}
	return -1;
}

void
job_start(struct job *j)
{
	detach(j, "job", run_job);
	job_free(j);
	free(j);
}

/* --- reading, settling and canceling jobs --- */

/* Deliver in a detached process of its own, so a reader's instance can exit. */
static void
deliver_and_exit(struct job *j)
{
	deliver_callback(j);
	record_done(j);
	job_free(j);
	exit(0);
}

/*
 * A job whose runner is gone without a final record is lost: record that
 * and send the failure callback. j->lock_fd must be held.
 */
static void
settle_lost(struct job *j, bool deliver_here)
{
	kill_leftovers(j->id);
	kill_scope(j->id);
	remove_job_files(j->id);
	j->result.return_code = -1;
	jbuf_puts(&j->result.output, MSG_LOST);
	if (is_playbook(j))
		j->failure = strdup(MSG_LOST);
	finish(j, "lost");
	job_log(j->id, "job %s lost", j->id);
	if (!j->callback_url || deliver_here) {
		deliver_callback(j);
		record_done(j);
	} else
		detach(j, "callback", deliver_and_exit);
}

/* Read a record and settle it if its runner died; -1 (errno) when unreadable. */
static int
load_settled(const char *id, struct job *j)
{
	int lock_fd;

	if (record_read(id, j) < 0)
		return -1;
	if (is_final(j->status) || (lock_fd = take_lock_of_dead_runner(id)) < 0)
		return 0;
	/* Reread under the lock: the runner may have finished just now. */
	job_free(j);
	if (record_read(id, j) < 0) {
		close(lock_fd);
		return -1;
	}
	j->lock_fd = lock_fd;
	if (!is_final(j->status))
		settle_lost(j, false);
	return 0;
}

/* The record as stored: only the runner's own copy of the output is exact. */
static void
add_record_text(const char *id, struct jbuf *out)
{
	size_t len = 0;
	char *text = read_record(id, &len);

	jbuf_add(out, text ? text : "null", text ? len : 4);
	free(text);
}

enum status
job_show(const char *id, struct jbuf *out)
{
	struct job j;

	if (!job_id_valid(id) || load_settled(id, &j) < 0) {
		json_detail(out, "Job not found.");
		return S_NOT_FOUND;
	}
	job_free(&j);
	add_record_text(id, out);
	return S_OK;
}

/*
 * Signal the runner, never a stranger: the pidfd is opened first, then the
 * lock proves the runner still lived after that, so the pidfd is the runner's.
 */
static int
signal_runner(const char *id)
{
	pid_t pid = runner_pid(id);
	int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1, lock_fd, r = -1;

	if (pidfd < 0 && (pid <= 0 || errno != ENOSYS))
		return -1;
	lock_fd = take_lock_of_dead_runner(id);
	if (lock_fd >= 0)
		close(lock_fd);
	else if (pidfd >= 0)
		r = pidfd_send_signal(pidfd, SIGTERM, NULL, 0);
	else
		r = kill(pid, SIGTERM); /* no pidfds here: the lock just proved the runner alive */
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

enum status
job_cancel(const char *id, struct jbuf *out)
{
	struct job j;
	bool finished;

	if (!job_id_valid(id) || load_settled(id, &j) < 0) {
		json_detail(out, "Job not found.");
		return S_NOT_FOUND;
	}
	finished = is_final(j.status) || signal_runner(id) < 0;
	job_free(&j);
	if (finished) {
		json_detail(out, "Job already finished.");
		return S_CONFLICT;
	}
	add_record_text(id, out);
	return S_ACCEPTED;
}

/* Deliver what a dead runner left undelivered, unless the receiver refused it. */
static bool
callback_pending(const struct job *j)
{
	return j->callback_url && !j->delivered && j->attempts <= config.callback_retries &&
	    !(j->last_error && (strncmp(j->last_error, "HTTP 3", 6) == 0 ||
	    strncmp(j->last_error, "HTTP 4", 6) == 0));
}

static void
recover_one(const char *id)
{
	struct job j;
	int lock_fd = take_lock_of_dead_runner(id);

	if (lock_fd < 0)
		return; /* its runner lives */
	if (record_read(id, &j) < 0) {
		close(lock_fd);
		return;
	}
	j.lock_fd = lock_fd;
	if (!is_final(j.status))
		settle_lost(&j, true);
	else if (callback_pending(&j)) {
		deliver_callback(&j);
		record_done(&j);
	}
	job_free(&j);
}

int
job_recover(void)
{
	char path[PATH_MAX], id[JOB_ID_LEN + 1];
	struct dirent *entry;
	DIR *dir;

	if (!state_path(path, "jobs", NULL, NULL) || !(dir = opendir(path)))
		return errno == ENOENT ? 0 : -1;
	while ((entry = readdir(dir))) {
		size_t len = strlen(entry->d_name);
		if (len != JOB_ID_LEN + 5 || strcmp(entry->d_name + JOB_ID_LEN, ".json") != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", JOB_ID_LEN, entry->d_name);
		if (job_id_valid(id))
			recover_one(id);
	}
	closedir(dir);
	return 0;
}
