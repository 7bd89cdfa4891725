/* resident: the resident floor, the least a resident HTTP server that runs a program per
 * request can do, to measure lso's burst mode and webhook against.
 *
 *   resident PROGRAM [ARG...]
 *
 * Started once by systemd (Accept=no): fd 3 is the listening socket (LISTEN_FDS=1). It
 * accepts, and serves each connection in a thread of its own: reads the request up to the
 * end of the headers, drains Content-Length body bytes, parses nothing else, runs PROGRAM
 * (posix_spawn, a pipe for stdout, stdin /dev/null, waitpid), and writes a fixed 201
 * response embedding the output, JSON-escaped, the shape floor.c writes. It forks only the
 * program, never itself, and never exits.
 *
 * libc + pthreads only.  cc -O2 -Wall -Wextra -pthread -o resident resident.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "escape.h"

extern char **environ;

#define HDR_MAX 65536
#define OUT_MAX 65536

static char **program;

struct conn {
	int fd;
	char req[HDR_MAX];
	char out[OUT_MAX];
	char resp[6 * OUT_MAX + 512];
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until \r\n\r\n, drain the body; 0, or -1 when the request is incomplete. */
static int read_request(struct conn *c)
{
	static const char name[] = "content-length:";
	size_t n = 0, hlen = 0;
	long left = 0;

	while (!hlen) {
		if (n >= sizeof c->req - 1)
			return -1;
		ssize_t r = read(c->fd, c->req + n, sizeof c->req - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		size_t from = n >= 3 ? n - 3 : 0;
		n += (size_t)r;
		c->req[n] = 0;
		char *e = strstr(c->req + from, "\r\n\r\n");
		if (e)
			hlen = (size_t)(e + 4 - c->req);
	}
	for (char *p = c->req; p < c->req + hlen;) {
		char *eol = memchr(p, '\n', (size_t)(c->req + hlen - p));
		if (!eol)
			break;
		if ((size_t)(eol - p) > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
			left = strtol(p + sizeof name - 1, NULL, 10);
		p = eol + 1;
	}
	left -= (long)(n - hlen);
	while (left > 0) {
		char buf[16384];
		ssize_t r = read(c->fd, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		left -= r;
	}
	return 0;
}

/* Run the program with stdout into c->out; its exit code, -1 if it could not run. */
static int run(struct conn *c, size_t *outlen)
{
	posix_spawn_file_actions_t fa;
	int p[2], st;
	pid_t pid;

	*outlen = 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	int bad = posix_spawn(&pid, program[0], &fa, NULL, program, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (bad) {
		close(p[0]);
		return -1;
	}
	for (;;) {
		ssize_t r = read(p[0], c->out + *outlen, OUT_MAX - *outlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (*outlen += (size_t)r) == OUT_MAX)
			break;
	}
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	static const char pre[] =
	    "{\"job_id\":\"00000000-0000-4000-8000-000000000000\",\"result\":{\"output\":\"";
	char body[6 * OUT_MAX + 256];
	size_t outlen, b;
	int rc;

	if (read_request(c) == 0) {
		rc = run(c, &outlen);
		memcpy(body, pre, sizeof pre - 1);
		b = sizeof pre - 1;
		b += json_escape(body + b, c->out, outlen);
		b += (size_t)snprintf(body + b, sizeof body - b,
		    "\",\"return_code\":%d,\"status\":\"%s\"}}", rc, rc == 0 ? "successful" : "failed");
		int h = snprintf(c->resp, sizeof c->resp,
		    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n", b);
		memcpy(c->resp + h, body, b);
		write_all(c->fd, c->resp, (size_t)h + b);
	}
	close(c->fd);
	free(c);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;

	if (argc < 2 || !getenv("LISTEN_FDS")) {
		fprintf(stderr, "usage: resident PROGRAM [ARG...] (fd 3: a listening socket, LISTEN_FDS=1)\n");
		return 2;
	}
	program = argv + 1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1 << 20);
	for (;;) {
		int fd = accept4(3, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(10000);
			continue;
		}
		struct conn *c = malloc(sizeof *c);
		pthread_t t;
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (pthread_create(&t, &attr, serve, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
