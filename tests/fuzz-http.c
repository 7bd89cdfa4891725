/*
 * fuzz-http.c: libFuzzer harness for the HTTP reader, http_read_request().
 *
 * Each input is the byte stream a client sends: it is put into a memfd
 * (poll reports a regular file readable, so no read blocks and EOF ends the
 * stream), read with a small body limit, and the parsed request checked.
 * Build: make tests/fuzz-http. Run: tests/fuzz.sh SECONDS (or the binary
 * with a corpus directory, -dict=tests/fuzz-corpus/http.dict).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../http.h"
#include "fuzz-common.h"

/* Small, so that 413 and the chunk-size bound are reached by small inputs. */
#define FUZZ_MAX_BODY 4096
/* A memfd never blocks: a deadline this far away expires only on a hang. */
#define FUZZ_DEADLINE_MS 3000
/* How often the open fds are counted. */
/* Growth past this many fds between checks is a leak (a per-input leak is thousands). */
#define FD_SLACK 4
#define FD_CHECK_EVERY 1000

static int in_fd = -1, null_fd = -1;
/* Counted at the first check, once libFuzzer has opened what it keeps open. */
static long fds_at_start = -1;
static unsigned long iterations;
/* Static: the request holds a 64 KiB header buffer. */
static struct http_request req;

static void
die(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz-http: invariant broken: %s (input %zu bytes)\n", what, size);
	(void)data;
	abort();
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* One memfd for all inputs, refilled each time: no fd per iteration. */
	in_fd = memfd_create("fuzz-http-in", MFD_CLOEXEC);
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (in_fd < 0 || null_fd < 0) {
		perror("fuzz-http: memfd_create or /dev/null");
		exit(1);
	}
	return 0;
}


static bool
known_status(enum status s)
{
	switch (s) {
	case S_OK:
	case S_BAD_REQUEST:
	case S_PAYLOAD_TOO_LARGE:
	case S_EXPECTATION_FAILED:
	case S_HEADER_FIELDS_TOO_LARGE:
	case S_INTERNAL_SERVER_ERROR:
	case S_NOT_IMPLEMENTED:
	case S_VERSION_NOT_SUPPORTED:
		return true;
	default:
		return false; /* 408 included: a memfd never makes the reader wait */
	}
}

/* Case-insensitive search of the header block as sent (head[] is cut up by now). */
static bool
head_mentions(const uint8_t *data, size_t len, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp((const char *)data + i, word, n) == 0)
			return true;
	return false;
}

/* The empty lines (CRLF or LF) that start data: RFC 9112 has a server ignore them. */
static size_t
empty_lines_prefix(const uint8_t *data, size_t size)
{
	size_t i = 0;

	while (i < size && (data[i] == '\n' || (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')))
		i += data[i] == '\r' ? 2 : 1;
	return i;
}

static void
check_ok(const uint8_t *data, size_t size)
{
	size_t skip = empty_lines_prefix(data, size);

	if (req.head_len == 0) {
		if (skip != size)
			die("S_OK without a header block on an input of more than empty lines", data, size);
		return;
	}
	/* head_len and the body count from the request line on. */
	data += skip;
	size -= skip;
	if (req.head_len > HTTP_HEADER_MAX_BYTES || req.head_len > size)
		die("head_len out of range", data, size);
	if (!req.method || !req.path)
		die("method or path is NULL", data, size);
	if (!*req.method)
		die("empty method", data, size);
	if (req.path[0] != '/')
		die("path does not start with '/'", data, size);
	if (strchr(req.path, '?'))
		die("path keeps its query string", data, size);
	for (const char *c = req.path; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 127)
			die("path holds a control character or space", data, size);
	if (req.minor_version != 0 && req.minor_version != 1)
		die("minor_version is neither 0 nor 1", data, size);
	if (!req.body)
		die("body is NULL", data, size);
	if (req.body_len > FUZZ_MAX_BODY)
		die("body_len over max_body", data, size);
	if (req.body[req.body_len] != '\0')
		die("body not NUL-terminated at body_len", data, size);
	/*
	 * A Content-Length body is the bytes right after the header block; any
	 * other body must have come through chunked decoding.
	 */
	if (req.body_len > 0 &&
	    !(req.head_len + req.body_len <= size &&
	    memcmp(data + req.head_len, req.body, req.body_len) == 0) &&
	    !head_mentions(data, req.head_len, "chunked"))
		die("body is not the bytes after the head, and not chunked", data, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum status status;
	long fds;

	fill(in_fd, data, size);
	status = http_read_request(in_fd, null_fd, &req, FUZZ_MAX_BODY,
	    http_now_ms() + FUZZ_DEADLINE_MS);
	if (!known_status(status)) {
		fprintf(stderr, "fuzz-http: status %d\n", (int)status);
		die("unexpected status", data, size);
	}
	if (status == S_OK)
		check_ok(data, size);
	else if (req.body && req.body[req.body_len] != '\0')
		die("body not NUL-terminated after a failure", data, size);
	http_request_free(&req);
	if (req.body)
		die("http_request_free left body set", data, size);

	if (++iterations % FD_CHECK_EVERY == 0) {
		fds = count_fds();
		if (fds_at_start < 0)
			fds_at_start = fds;
		else if (fds > fds_at_start + FD_SLACK) {
			fprintf(stderr, "fuzz-http: %ld fds open, %ld at the first check\n", fds, fds_at_start);
			die("fd leak", data, size);
		}
	}
	return 0;
}
