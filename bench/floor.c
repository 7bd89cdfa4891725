/* floor: the least a per-connection HTTP responder can do, to measure lso against.
 *
 * Started per connection by an inetd-style launcher (systemd-socket-activate -a --inetd):
 * the connection is stdin/stdout. It reads the request up to the end of the headers,
 * finds Content-Length (case-insensitive), reads that many body bytes, and parses
 * nothing else. Then it runs a fixed program (argv[1..]: fork, a pipe for stdout,
 * stdin /dev/null, execve, read all output, waitpid) and writes a fixed 201 response
 * embedding the output, JSON-escaped. With -n (floor-noexec) it runs nothing and writes
 * the same shape of response.
 *
 * libc only.  cc -O2 -Wall -Wextra -o floor floor.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escape.h"

extern char **environ;

#define HDR_MAX 65536
#define OUT_MAX 65536

static char req[HDR_MAX];
static char out[OUT_MAX];
static char resp[HDR_MAX + 6 * OUT_MAX];

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until \r\n\r\n; return the header length (through the blank line), or -1. */
static ssize_t read_headers(size_t *got)
{
	size_t n = 0;
	while (n < sizeof req - 1) {
		ssize_t r = read(0, req + n, sizeof req - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		size_t from = n >= 3 ? n - 3 : 0;
		n += (size_t)r;
		req[n] = 0;
		char *e = strstr(req + from, "\r\n\r\n");
		if (e) {
			*got = n;
			return e + 4 - req;
		}
	}
	return -1;
}

static long content_length(size_t hlen)
{
	static const char name[] = "content-length:";
	char *p = req;
	char *end = req + hlen;
	while (p < end) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
			return strtol(p + sizeof name - 1, NULL, 10);
		p = eol + 1;
	}
	return 0;
}

static void drain_body(long left)
{
	char buf[16384];
	while (left > 0) {
		ssize_t r = read(0, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		left -= r;
	}
}

/* Run argv, capture stdout into out[]; return the exit status code (-1 if it could not run). */
static int run(char **argv, size_t *outlen)
{
	int p[2];
	*outlen = 0;
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0 && nul != 0) {
			dup2(nul, 0);
			close(nul);
		}
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char buf[4096];
		ssize_t r = read(p[0], buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t take = (size_t)r;
		if (take > OUT_MAX - *outlen)
			take = OUT_MAX - *outlen;
		memcpy(out + *outlen, buf, take);
		*outlen += take;
	}
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return -WTERMSIG(st);
	return -1;
}

int main(int argc, char **argv)
{
	int noexec = argc > 1 && strcmp(argv[1], "-n") == 0;
	if (!noexec && argc < 2) {
		fprintf(stderr, "usage: floor PROGRAM [ARG...] | floor -n\n");
		return 2;
	}
	size_t got;
	ssize_t hlen = read_headers(&got);
	if (hlen < 0)
		return 1;
	long cl = content_length((size_t)hlen);
	drain_body(cl - (long)(got - (size_t)hlen));

	size_t outlen;
	int rc;
	if (noexec) {
		memcpy(out, "hello\n", 6);
		outlen = 6;
		rc = 0;
	} else {
		rc = run(argv + 1, &outlen);
	}

	static char body[6 * OUT_MAX + 256];
	size_t b = 0;
	static const char pre[] =
	    "{\"job_id\":\"00000000-0000-4000-8000-000000000000\",\"result\":{\"output\":\"";
	memcpy(body, pre, sizeof pre - 1);
	b = sizeof pre - 1;
	b += json_escape(body + b, out, outlen);
	b += (size_t)snprintf(body + b, sizeof body - b, "\",\"return_code\":%d,\"status\":\"%s\"}}", rc,
	                      rc == 0 ? "successful" : "failed");

	int h = snprintf(resp, sizeof resp,
	                 "HTTP/1.1 201 Created\r\n"
	                 "Content-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n",
	                 b);
	memcpy(resp + h, body, b);
	return write_all(1, resp, (size_t)h + b) < 0;
}
