/* job.c: resolve the program inside its root, run it, report the result. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
check_file(const char *path, struct program *prog)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return RESOLVE_MISSING;
	if (!S_ISREG(st.st_mode))
		return RESOLVE_NOT_FILE;
	if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		return RESOLVE_NOT_EXECUTABLE;
	prog->dev = st.st_dev;
	prog->ino = st.st_ino;
	return RESOLVE_OK;
}

enum resolve
job_resolve(const char *root, const char *name, struct program *prog)
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
	return check_file(prog->path, prog);
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

/* lso's environment without the socket-activation variables, plus LSO_JOB_ID. */
static char **
program_environment(const char *id, char *id_var, size_t id_var_size)
{
	size_t n = 0, kept = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0 &&
		    strncmp(environ[i], "LSO_JOB_ID=", 11) != 0)
			env[kept++] = environ[i];
	snprintf(id_var, id_var_size, "LSO_JOB_ID=%s", id);
	env[kept] = id_var;
	return env;
}

/* In the child: a clean process state for the program, whatever lso had. */
static void
reset_process_state(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
}

/* In the child: never returns. Reports why exec failed on status_fd. */
static void
exec_child(const struct program *prog, char *const argv[], char *const envp[],
    int out_fd, int err_fd, int status_fd)
{
	struct stat st;
	int code, null_fd;

	reset_process_state();
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

/* Where the captured bytes go, within one budget shared by stdout and stderr. */
struct capture {
	struct jbuf out, err;
	size_t budget;
	bool truncated;
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
	keep = (size_t)n < cap->budget ? (size_t)n : cap->budget;
	if (keep < (size_t)n)
		cap->truncated = true;
	/* What the budget cannot take is read and dropped, so the program never blocks on us. */
	jbuf_add(dst, buf, keep);
	cap->budget -= keep;
	return true;
}

/* The state of one running program, watched through its pipes and a pidfd. */
struct watch {
	pid_t pid;
	struct pollfd fds[3];   /* stdout, stderr, pidfd (-1 once exited) */
	int pidfd;
	bool exited;
	int wait_status;
	int64_t deadline_ms;
	int kills_sent;         /* 0, 1 after SIGTERM, 2 after SIGKILL */
};

/* The deadline passed: escalate, or decide to stop waiting. Returns false to stop. */
static bool
deadline_passed(struct watch *w, struct run_result *result)
{
	if (w->exited)
		return false; /* leftovers kept the pipes open past the linger */
	if (w->kills_sent == 0) {
		result->timed_out = true;
		kill(-w->pid, SIGTERM);
		w->kills_sent = 1;
		w->deadline_ms = http_now_ms() + KILL_GRACE_MS;
		return true;
	}
	if (w->kills_sent == 1) {
		kill(-w->pid, SIGKILL);
		w->kills_sent = 2;
		w->deadline_ms = http_now_ms() + KILL_GRACE_MS;
		return true;
	}
	return false;
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
		n = poll(w->fds, 3, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 && n > 0; i++)
			if (w->fds[i].revents && !capture_from(w->fds[i].fd,
			    i == 0 ? &cap->out : &cap->err, cap))
				w->fds[i].fd = -1;
		if (n > 0 && w->fds[2].fd >= 0 && w->fds[2].revents)
			note_exit(w);
	}
	/* Nothing of the job outlives it; then reap. */
	kill(-w->pid, SIGKILL);
	waitpid(w->pid, &w->wait_status, 0);
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
	result->return_code = -1;
	note_line(result, "Could not execute program: ");
	jbuf_puts(&result->output, what);
	jbuf_puts(&result->output, strerror(errno));
}

void
job_run(const struct program *prog, const char *const *args, size_t nargs,
    const char *id, struct run_result *result)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	char id_var[sizeof("LSO_JOB_ID=") + JOB_ID_LEN];
	struct capture cap = { .budget = config.max_output_bytes };
	struct watch w = { 0 };
	char **argv = calloc(nargs + 2, sizeof(*argv));
	char **envp = program_environment(id, id_var, sizeof(id_var));
	int exec_code;

	*result = (struct run_result){ 0 };
	if (!argv || !envp) {
		start_failed(result, "");
		goto out;
	}
	argv[0] = (char *)prog->path;
	memcpy(argv + 1, args, nargs * sizeof(*args));
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(status, O_CLOEXEC) < 0) {
		start_failed(result, "pipe: ");
		goto out;
	}
	w.pid = fork();
	if (w.pid < 0) {
		start_failed(result, "fork: ");
		goto out;
	}
	if (w.pid == 0)
		exec_child(prog, argv, envp, out[1], err[1], status[1]);
	setpgid(w.pid, w.pid);
	close(out[1]), close(err[1]), close(status[1]);
	out[1] = err[1] = status[1] = -1;
	exec_code = read_exec_code(status[0]);
	w.fds[0] = (struct pollfd){ .fd = out[0], .events = POLLIN };
	w.fds[1] = (struct pollfd){ .fd = err[0], .events = POLLIN };
	w.pidfd = pidfd_open(w.pid, 0);
	w.fds[2] = (struct pollfd){ .fd = w.pidfd, .events = POLLIN };
	w.deadline_ms = http_now_ms() + config.executable_timeout_sec * 1000;
	watch_program(&w, &cap, result);
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
