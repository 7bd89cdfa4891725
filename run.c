/*
 * run.c: running one program: its environment, a clean process state, exec,
 * capture of stdout and stderr, the watch (deadlines, cancel), the group kill
 * and the subreaping of what escaped the group.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "file.h"
#include "http.h"
#include "job-internal.h"
#include "run.h"
#include "runuser.h"

extern char **environ;

/* Where the child keeps its exec-status pipe and the checked file, both close-on-exec. */
#define STATUS_FD 3
#define PROGRAM_FD 4
#define STRING(x) STRING_OF(x)
#define STRING_OF(x) #x

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

/*
 * What of lso's environment a program gets: not the socket-activation
 * variables, nor what leads to the API key (a program must not learn it),
 * nor what extra sets.
 */
static bool
kept_for_program(const char *entry, const char *const *extra)
{
	return strncmp(entry, "LISTEN_", 7) != 0 && strncmp(entry, "LSO_JOB_ID=", 11) != 0 &&
	    strncmp(entry, "LSO_API_KEY=", 12) != 0 &&
	    strncmp(entry, "CREDENTIALS_DIRECTORY=", 22) != 0 && !overridden(entry, extra);
}

/*
 * What a run adds to lso's environment: extra, then the run user's HOME,
 * USER and LOGNAME (runuser.c) where extra does not set them.
 */
static const char **
joined_extra(const char *const *extra)
{
	const char *const *user = runuser_env();
	size_t n = 0, n_user = 0, kept = 0;
	const char **joined;

	while (extra && extra[n])
		n++;
	while (user && user[n_user])
		n_user++;
	if (!(joined = calloc(n + n_user + 1, sizeof(*joined))))
		return NULL;
	for (size_t i = 0; i < n; i++)
		joined[kept++] = extra[i];
	for (size_t i = 0; i < n_user; i++)
		if (!overridden(user[i], extra))
			joined[kept++] = user[i];
	return joined;
}

/* lso's environment as kept_for_program says, plus extra and LSO_JOB_ID. */
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
		if (kept_for_program(environ[i], extra))
			env[kept++] = environ[i];
	for (size_t i = 0; i < n_extra; i++)
		env[kept++] = (char *)extra[i];
	snprintf(id_var, id_var_size, "LSO_JOB_ID=%s", id);
	env[kept] = id_var;
	return env;
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

/* The ignored signals as run_preload found them, for every later run of this process and its children. */
static bool ignored_known;
static unsigned long long ignored_preloaded;

/* The signals this process ignores (SigIgn of /proc/self/status): one read, not 64 calls. */
static unsigned long long
ignored_signals(void)
{
	char buf[4096], *line;
	ssize_t n;
	int fd;

	if (ignored_known)
		return ignored_preloaded;
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ~0ULL; /* no /proc: reset them all */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	line = strstr(buf, "\nSigIgn:\t");
	return line ? strtoull(line + 9, NULL, 16) : ~0ULL;
}

void
run_preload(void)
{
	ignored_preloaded = ignored_signals();
	ignored_known = true;
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

/*
 * In the child: run the checked file itself. A script's interpreter opens it
 * again as /dev/fd/PROGRAM_FD, which the kernel refuses (ENOENT) while that
 * descriptor is close-on-exec: then, and only for that one, it stays open
 * across the exec. Returns only on failure, with errno.
 */
static void
exec_checked(char *const argv[], char *const envp[])
{
	syscall(SYS_execveat, PROGRAM_FD, "", argv, envp, AT_EMPTY_PATH);
	if (errno == ENOSYS) {
		/* No execveat (valgrind's older versions): the same file through its descriptor's magic link. */
		if (fcntl(PROGRAM_FD, F_SETFD, 0) == 0)
			execve("/proc/self/fd/" STRING(PROGRAM_FD), argv, envp);
		return;
	}
	if (errno != ENOENT || fcntl(PROGRAM_FD, F_SETFD, 0) < 0)
		return;
	syscall(SYS_execveat, PROGRAM_FD, "", argv, envp, AT_EMPTY_PATH);
}

/* What the child needs: the program, its argv and environment, and its descriptors. */
struct spawn {
	const struct program *prog;
	char *const *argv, *const *envp;
	int out_fd, err_fd, status_fd;
	int pass_fd;  /* given to the program as RUN_PASSED_FD; -1: none */
};

/* In the child: the descriptors the program gets, at their numbers; false with errno. */
static bool
place_fds(const struct spawn *sp)
{
	int status_fd = fcntl(sp->status_fd, F_DUPFD_CLOEXEC, 10);
	int program_fd = fcntl(sp->prog->fd, F_DUPFD_CLOEXEC, 10);
	int pass_fd = sp->pass_fd >= 0 ? fcntl(sp->pass_fd, F_DUPFD_CLOEXEC, 10) : -1;
	int null_fd = open("/dev/null", O_RDONLY);

	/* Each moved out of the way of 0-5 first, whatever numbers they had. */
	if (status_fd < 0 || program_fd < 0 || (sp->pass_fd >= 0 && pass_fd < 0) || null_fd < 0 ||
	    dup2(null_fd, 0) < 0 || dup2(sp->out_fd, 1) < 0 || dup2(sp->err_fd, 2) < 0 ||
	    dup3(status_fd, STATUS_FD, O_CLOEXEC) < 0 || dup3(program_fd, PROGRAM_FD, O_CLOEXEC) < 0 ||
	    (pass_fd >= 0 && dup2(pass_fd, RUN_PASSED_FD) < 0))
		return false;
	/* Keep only 0-2, the two close-on-exec ones and the one passed on. */
	close_range(pass_fd >= 0 ? RUN_PASSED_FD + 1 : PROGRAM_FD + 1, ~0U, 0);
	return true;
}

/*
 * In the child: never returns. Reports why exec failed on the status pipe:
 * an errno, negated when it is the switch to the run user that failed.
 */
static void
exec_child(const struct spawn *sp)
{
	int code;

	reset_process_state();
	if (!place_fds(sp)) {
		code = errno;
		(void)!write(sp->status_fd, &code, sizeof(code));
		_exit(127);
	}
	/* The descriptors are in place, and stay the program's whatever its uid. */
	if ((code = runuser_enter()) != 0) {
		code = -code;
		(void)!write(STATUS_FD, &code, sizeof(code));
		_exit(127);
	}
	/*
	 * If whoever runs the job dies, the program must not run on unsupervised.
	 * After the switch: a change of uid clears the death signal.
	 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	exec_checked(sp->argv, sp->envp);
	code = errno;
	(void)!write(STATUS_FD, &code, sizeof(code));
	_exit(127);
}

static int
spawn_entry(void *arg)
{
	exec_child(arg);
	return 127;
}

/*
 * A sync run's program, as posix_spawn starts one: clone(CLONE_VM |
 * CLONE_VFORK) on a stack of its own, so that nothing of our memory is
 * copied for a child that only execs (in burst mode, a fork of the
 * connection child, then the teardown of that copy at exec, were most of a
 * sync run's own cost). Safe where it is used: a sync run's process has no
 * signal handler that could run in the child, we wait (CLONE_VFORK) until
 * it has exec'd or exited, and it writes only its own stack. Async runs
 * (their runner has a cancel handler) and sanitizer builds (instrumented
 * code on a foreign stack) fork.
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

/*
 * Where the captured bytes go: two unnamed files (spool.h), never memory,
 * within one limit for both: the output is stdout then stderr, so stdout
 * has the first claim on the room and stderr gets what stdout leaves.
 * stderr that arrives first is cut back as stdout grows: it never pushes
 * stdout out.
 */
struct capture {
	int out_fd, err_fd;
	bool out_in_memory, err_in_memory;  /* small so far: see SPOOL_IN_MEMORY_MAX_BYTES */
	off_t out_len, err_len;  /* kept of each: the files may hold more of stderr */
	size_t max;
	bool truncated;
	const struct run_control *control;  /* its on_stdout sees all of stdout */
};

/* buf[0..n) at offset at of fd; how many bytes went in (short: the disk is full). */
static size_t
spool_write(int fd, const char *buf, size_t n, off_t at)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		w = pwrite(fd, buf + done, n - done, at + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done;
}

/* Keep what of buf[0..n) the limit lets the stream have; stderr gives way to stdout. */
static void
capture_keep(struct capture *cap, bool is_stdout, const char *buf, size_t n)
{
	off_t used = is_stdout ? cap->out_len : cap->out_len + cap->err_len;
	size_t room = (size_t)((off_t)cap->max - used);
	size_t keep = n < room ? n : room, kept;

	if (keep < n)
		cap->truncated = true;
	/* What the limit cannot take is read and dropped, so the program never blocks on us. */
	if (keep > 0 && (is_stdout ?
	    spool_spill(&cap->out_fd, &cap->out_in_memory, cap->out_len + (off_t)keep) :
	    spool_spill(&cap->err_fd, &cap->err_in_memory, cap->err_len + (off_t)keep)) < 0)
		keep = 0;  /* no file for more: kept in memory so far, the rest dropped */
	kept = spool_write(is_stdout ? cap->out_fd : cap->err_fd, buf, keep,
	    is_stdout ? cap->out_len : cap->err_len);
	if (kept < keep)
		cap->truncated = true;
	*(is_stdout ? &cap->out_len : &cap->err_len) += (off_t)kept;
	if (cap->out_len + cap->err_len > (off_t)cap->max) {
		cap->err_len = (off_t)cap->max - cap->out_len;
		cap->truncated = true;
	}
}

/* Drain what fd has now into the capture; returns false at EOF or error. */
static bool
capture_from(int fd, bool is_stdout, struct capture *cap)
{
	char buf[65536];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (is_stdout && cap->control && cap->control->on_stdout)
		cap->control->on_stdout(buf, (size_t)n, cap->control->ctx);
	capture_keep(cap, is_stdout, buf, (size_t)n);
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
	w->deadline_ms = http_now_ms() + RUN_KILL_GRACE_MS;
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
	if (http_now_ms() + RUN_EXIT_LINGER_MS < w->deadline_ms)
		w->deadline_ms = http_now_ms() + RUN_EXIT_LINGER_MS;
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
		/* Without a pidfd (old kernels, valgrind), look for the exit now and then. */
		if (w->pidfd < 0 && !w->exited && left > RUN_EXIT_POLL_MS)
			left = RUN_EXIT_POLL_MS;
		n = poll(w->fds, 4, left > RUN_POLL_MAX_MS ? RUN_POLL_MAX_MS : (int)left);
		if (w->pidfd < 0 && !w->exited)
			note_exit(w);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 && n > 0; i++) {
			if (!w->fds[i].revents)
				continue;
			if (!capture_from(w->fds[i].fd, i == 0, cap))
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
	int64_t end = http_now_ms() + RUN_KILL_GRACE_MS;
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
		if (!(text = file_read(path, &len)))
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
			poll(NULL, 0, RUN_KILL_POLL_MS);
	}
}

int
run_result_last_byte(const struct run_result *result)
{
	if (result->output.len)
		return (unsigned char)result->output.data[result->output.len - 1];
	return result->has_spool ? spool_last_byte(result->spool_fd, result->spooled) : -1;
}

/*
 * The output: stdout's spool, stderr's kept part after it, cut where its
 * escape fits the cap (it holds for the output as sent and recorded,
 * escaped: 16 MiB of NULs would be 96), then the truncation line.
 */
static void
finish_output(struct run_result *result, struct capture *cap)
{
	off_t total = cap->out_len, fits;

	if (cap->err_len > 0 && spool_append(cap->out_fd, cap->err_fd, 0, cap->err_len) == 0)
		total += cap->err_len;
	else if (cap->err_len > 0)
		cap->truncated = true;
	fits = spool_fit(cap->out_fd, total, config.max_output_bytes);
	if (fits < 0)
		fits = 0;
	if (fits < total) {
		(void)!ftruncate(cap->out_fd, fits);
		cap->truncated = true;
	}
	result->has_spool = true;
	result->spool_fd = cap->out_fd;
	result->spooled = fits;
	cap->out_fd = -1;
	if (cap->truncated)
		jbuf_printf(&result->output, "%s[output truncated at %zu bytes]\n",
		    fits && run_result_last_byte(result) != '\n' ? "\n" : "",
		    config.max_output_bytes);
}

static void
note_line(struct run_result *result, const char *line)
{
	int last = run_result_last_byte(result);

	if (last >= 0 && last != '\n')
		jbuf_add(&result->output, "\n", 1);
	jbuf_puts(&result->output, line);
}

/* Exit status to the API's return_code, and our notes to the output. */
static void
settle_result(struct run_result *result, int wait_status, int exec_code)
{
	result->start_failed = exec_code != 0;
	if (exec_code > 0) {
		result->return_code = -1;
		note_line(result, "Could not execute program: ");
		jbuf_puts(&result->output, strerror(exec_code));
	} else if (exec_code < 0) {
		result->return_code = -1;
		note_line(result, "Could not execute program: cannot switch to LSO_RUN_USER: ");
		jbuf_puts(&result->output, strerror(-exec_code));
	} else if (result->timed_out || result->canceled) {
		result->return_code = -1;
		note_line(result, result->canceled ? RUN_MSG_CANCELED : RUN_MSG_TIMED_OUT);
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
run_program(const struct program *prog, const char *const *args, size_t nargs,
    const char *id, const struct run_control *control, struct run_result *result)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	char id_var[sizeof("LSO_JOB_ID=") + JOB_ID_LEN];
	struct capture cap = { .out_fd = -1, .err_fd = -1, .max = config.max_output_bytes,
		.control = control };
	struct watch w = { 0 };
	struct spawn sp;
	char **argv = calloc(nargs + 2, sizeof(*argv));
	const char **extra = joined_extra(control ? control->extra_env : NULL);
	char **envp = extra ? program_environment(id, id_var, sizeof(id_var), extra) : NULL;
	int exec_code;

	*result = (struct run_result){ .spool_fd = -1 };
	if (!argv || !envp) {
		start_failed(result, "");
		goto out;
	}
	if ((cap.out_fd = spool_open_small(&cap.out_in_memory)) < 0 ||
	    (cap.err_fd = spool_open_small(&cap.err_in_memory)) < 0) {
		start_failed(result, "spool: ");
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
	sp = (struct spawn){ prog, argv, envp, out[1], err[1], status[1],
		control && control->pass_fd > 0 ? control->pass_fd : -1 };
	if (!control)
		w.pid = spawn_program(&sp);
	else if ((w.pid = fork()) == 0)
		exec_child(&sp);
	if (w.pid < 0) {
		start_failed(result, "fork: ");
		goto out;
	}
	setpgid(w.pid, w.pid);
	if (control)
		record_lock_note_pids(control->lock_fd, getpid(), w.pid);
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
	if (cap.out_fd >= 0)
		close(cap.out_fd);
	if (cap.err_fd >= 0)
		close(cap.err_fd);
	free(argv);
	free(envp);
	free(extra);
}

void
run_result_stream(struct spool_sink *s, const struct run_result *result)
{
	struct jbuf notes = { 0 };
	size_t skip = 0;

	spool_puts(s, "{\"output\":\"");
	if (result->has_spool && spool_escape(s, result->spool_fd, result->spooled) < 0)
		s->failed = true;
	/* A "\r" ending the spool and the "\n" our note begins with are one newline, escaped already. */
	if (result->has_spool && result->output.len && result->output.data[0] == '\n' &&
	    spool_last_byte(result->spool_fd, result->spooled) == '\r')
		skip = 1;
	json_escape(&notes, result->output.data ? result->output.data + skip : "",
	    result->output.len - skip, true);
	spool_put_jbuf(s, &notes);
	spool_printf(s, "\",\"return_code\":%d,\"status\":\"%s\"}",
	    result->return_code, result->return_code == 0 ? "successful" : "failed");
}

void
run_result_free(struct run_result *result)
{
	if (result->has_spool)
		close(result->spool_fd);
	result->has_spool = false;
	result->spool_fd = -1;
	result->spooled = 0;
	jbuf_free(&result->output);
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
	if (!(environ_text = file_read(path, &len)))
		return false;
	for (size_t at = 0; at < len && !found; at += strlen(environ_text + at) + 1)
		found = strcmp(environ_text + at, var) == 0;
	free(environ_text);
	return found;
}

/* One pass over /proc: SIGKILL every process that carries the job's id; how many there were. */
static int
kill_carriers(const char *id)
{
	struct dirent *entry;
	int killed = 0;
	pid_t pid;
	DIR *proc;

	if (!(proc = opendir("/proc")))
		return 0;
	while ((entry = readdir(proc)))
		if ((pid = (pid_t)strtol(entry->d_name, NULL, 10)) > 0 && is_jobs_process(pid, id) &&
		    kill(pid, SIGKILL) == 0)
			killed++;
	closedir(proc);
	return killed;
}

/*
 * A lost job's leftovers, whatever their group or session (a setsid escapee
 * too): the processes that carry its id (LSO_JOB_ID), so a reused pid never
 * hits a stranger. Again while a pass found some: one may have forked meanwhile.
 */
void
run_kill_leftovers(const char *id)
{
	for (int pass = 0; pass < RUN_LEFTOVER_PASSES && kill_carriers(id) > 0; pass++)
		;
}
