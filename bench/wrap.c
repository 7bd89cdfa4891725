/* wrap: two small process wrappers for bench.sh.
 *
 *   wrap reap PIDFILE CMD [ARG...]
 *     Becomes a child subreaper, starts CMD, writes CMD's pid to PIDFILE and reaps every
 *     process that ends up its child until none is left. Under it, the detached
 *     (double-forked) jobs of a per-connection server are reaped here, as systemd's
 *     PID 1 reaps them in production, instead of piling up as zombies; their CPU time
 *     lands in this process, not in CMD's. SIGTERM/SIGINT/SIGHUP are passed on to CMD.
 *
 *   wrap rss OUTFILE CMD [ARG...]
 *     Runs CMD (inheriting stdin/stdout) and appends to OUTFILE the peak resident set of
 *     CMD's own process, in KiB: VmHWM read from /proc when CMD is about to exit
 *     (ptrace PTRACE_O_TRACEEXIT; its children are not traced and not counted). If
 *     ptrace is refused, falls back to wait4()'s ru_maxrss (which also covers the
 *     children CMD reaped) and says so: "KIB ptrace" or "KIB rusage".
 *
 * libc only.  cc -O2 -Wall -Wextra -o wrap wrap.c
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t main_child;

static void forward(int sig)
{
	if (main_child > 0)
		kill(main_child, sig);
}

static int reap(const char *pidfile, char **cmd)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		perror("wrap: PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid < 0) {
		perror("wrap: fork");
		return 1;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		perror(cmd[0]);
		_exit(127);
	}
	main_child = pid;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", pidfile);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0 || rename(tmp, pidfile) != 0) {
		perror(pidfile);
		kill(pid, SIGTERM);
	}

	int rc = 0;
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing left */
		}
		if (w == pid) {
			main_child = 0;
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
	return rc;
}

static long vmhwm(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static int rss(const char *outfile, char **cmd)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("wrap: fork");
		return 1;
	}
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
			raise(SIGSTOP);
		execvp(cmd[0], cmd);
		perror(cmd[0]);
		_exit(127);
	}
	/* Do not hold the connection open: only the child should. */
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (nul > 2)
			close(nul);
	}
	long hwm = -1;
	int st;
	struct rusage ru;
	for (;;) {
		pid_t w = wait4(pid, &st, 0, &ru);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("wrap: wait4");
			return 1;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			break;
		if (!WIFSTOPPED(st))
			continue;
		int event = st >> 16;
		int sig = WSTOPSIG(st);
		if (event == 0 && sig == SIGSTOP && hwm == -1) {
			/* the child's own raise(SIGSTOP) right after PTRACE_TRACEME */
			ptrace(PTRACE_SETOPTIONS, pid, NULL,
			       (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL));
			hwm = -2;
			sig = 0;
		} else if (event == PTRACE_EVENT_EXIT) {
			hwm = vmhwm(pid);
			sig = 0;
		} else if (event != 0) {
			sig = 0;
		}
		ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
	}
	FILE *o = fopen(outfile, "a");
	if (o) {
		if (hwm >= 0)
			fprintf(o, "%ld ptrace\n", hwm);
		else
			fprintf(o, "%ld rusage\n", ru.ru_maxrss);
		fclose(o);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "reap") == 0)
		return reap(argv[2], argv + 3);
	if (argc >= 4 && strcmp(argv[1], "rss") == 0)
		return rss(argv[2], argv + 3);
	fprintf(stderr, "usage: wrap reap PIDFILE CMD [ARG...] | wrap rss OUTFILE CMD [ARG...]\n");
	return 2;
}
