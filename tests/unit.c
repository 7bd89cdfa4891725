/*
 * tests/unit.c: unit tests for the pure parts of lso: the HTTP request reader
 * (http.c), the JSON string escaper (json.h), path resolution (resolve.c),
 * the strict JSON parse (jsonparse.c), the body validators (validate.c) and
 * the settings (config.c). Linked with every part but lso.c.
 * Plain C11, no framework: one line per failed check, then "N passed, M failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "../config.h"
#include "../files.h"
#include "../http.h"
#include "../inventory.h"
#include "../job.h"
#include "../json.h"
#include "../jsonparse.h"
#include "../lso.h"
#include "../playbook.h"
#include "../resolve.h"
#include "../spool.h"
#include "../validate.h"
#include "../yaml.h"

/* ---- checks ---- */

static int n_passed, n_failed;

static void
check(bool ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		n_passed++;
		return;
	}
	n_failed++;
	printf("%s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Print bytes readably into out (bounded), for failure messages. */
static const char *
show(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;

	if (!s)
		return "(null)";
	for (size_t i = 0; i < len && o + 8 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
	}
	if (o + 8 >= size)
		o += (size_t)snprintf(out + o, size - o, "...");
	out[o] = '\0';
	return out;
}

static void
check_mem(const char *got, size_t got_len, const char *want, size_t want_len,
    const char *file, int line, const char *expr)
{
	char g[512], w[512];
	bool ok = got && want && got_len == want_len && memcmp(got, want, got_len) == 0;

	if (!got && !want)
		ok = true;
	check(ok, file, line, "expected %s == \"%s\" (%zu bytes), got \"%s\" (%zu bytes)",
	    expr, show(want, want_len, w, sizeof(w)), want_len,
	    show(got, got_len, g, sizeof(g)), got_len);
}

#define CHECK(cond) check((cond), __FILE__, __LINE__, "expected %s", #cond)
#define CHECK_INT(got, want) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	check(got_ == want_, __FILE__, __LINE__, "expected %s == %lld, got %lld", \
	    #got, want_, got_); \
} while (0)
#define CHECK_MEM(got, got_len, want, want_len) \
	check_mem((got), (got_len), (want), (want_len), __FILE__, __LINE__, #got)
#define CHECK_STR(got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	check_mem(g_, g_ ? strlen(g_) : 0, w_, w_ ? strlen(w_) : 0, \
	    __FILE__, __LINE__, #got); \
} while (0)

/* ---- HTTP reader: helpers ---- */

#define MAX_BODY 4096
#define LONG_DEADLINE_MS 5000

static struct http_request *req; /* 64 KiB: on the heap */
static int null_out;             /* out_fd when nothing is expected there */

static void
reset_req(void)
{
	http_request_free(req);
	memset(req, 0, sizeof(*req));
}

/* A memfd holding data, at offset 0: poll() reports it readable, then EOF. */
static int
mem_fd(const char *data, size_t len)
{
	int fd = memfd_create("unit-request", 0);
	size_t off = 0;
	ssize_t n;

	if (fd < 0) {
		perror("memfd_create");
		exit(2);
	}
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n <= 0) {
			perror("write memfd");
			exit(2);
		}
		off += (size_t)n;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static enum status
read_bytes(const char *data, size_t len, size_t max_body)
{
	int fd = mem_fd(data, len);
	enum status status;

	reset_req();
	status = http_read_request(fd, null_out, req, max_body,
	    http_now_ms() + LONG_DEADLINE_MS);
	close(fd);
	return status;
}

static enum status
read_str(const char *data)
{
	return read_bytes(data, strlen(data), MAX_BODY);
}

/* Feed data through a pipe from a child, step bytes at a time with a pause between. */
static enum status
read_trickled(const char *data, size_t len, size_t step, useconds_t pause_us)
{
	int p[2];
	pid_t pid;
	enum status status;

	if (pipe(p) < 0)
		exit(2);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		for (size_t off = 0; off < len; off += step) {
			if (write(p[1], data + off, len - off < step ? len - off : step) < 0)
				_exit(1);
			usleep(pause_us);
		}
		_exit(0);
	}
	close(p[1]);
	reset_req();
	status = http_read_request(p[0], null_out, req, MAX_BODY,
	    http_now_ms() + LONG_DEADLINE_MS);
	close(p[0]);
	waitpid(pid, NULL, 0);
	return status;
}

/* Send data on a pipe whose write end stays open; read with a deadline timeout_ms away. */
static enum status
read_stalled(const char *data, size_t max_body, int64_t timeout_ms, int64_t *elapsed_ms)
{
	int p[2];
	int64_t start;
	enum status status;

	if (pipe(p) < 0 || write(p[1], data, strlen(data)) != (ssize_t)strlen(data))
		exit(2);
	reset_req();
	start = http_now_ms();
	status = http_read_request(p[0], null_out, req, max_body, start + timeout_ms);
	*elapsed_ms = http_now_ms() - start;
	close(p[0]);
	close(p[1]);
	return status;
}

/* Whatever is waiting in a pipe's read end right now (non-blocking), NUL-terminated. */
static size_t
drain_pipe(int fd, char *buf, size_t size)
{
	ssize_t n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

/* ---- HTTP reader: request line and headers ---- */

static void
test_http_simple_get(void)
{
	CHECK_INT(read_str("GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->method, "GET");
	CHECK_STR(req->path, "/api/version");
	CHECK_INT(req->minor_version, 1);
	CHECK(req->content_type == NULL);
	CHECK(req->authorization == NULL);
	CHECK(!req->expect_continue);
	CHECK_INT(req->head_len, 38);
	CHECK(req->body != NULL);
	CHECK_INT(req->body_len, 0);
	CHECK(req->body && req->body[0] == '\0');
}

static void
test_http_path_drops_query(void)
{
	CHECK_INT(read_str("GET /api/jobs/abc?x=1&y=/2 HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->path, "/api/jobs/abc");
}

/* RFC 9112: the absolute-form target, empty lines before the request line, HEAD. */
static void
test_http_rfc9112_forms(void)
{
	CHECK_INT(read_str("GET http://example.org:8080/api/jobs/abc?x=/y HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->path, "/api/jobs/abc");
	CHECK_INT(read_str("GET HTTPS://example.org HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->path, "/");
	CHECK_INT(read_str("GET http://example.org?q HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->path, "/");
	CHECK_INT(read_str("\r\n\n\r\nGET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->path, "/api/version");
	CHECK(!req->head_only);
	CHECK_INT(read_str("HEAD /api/version HTTP/1.1\r\nHost: x\r\n\r\n"), S_OK);
	CHECK_STR(req->method, "HEAD");
	CHECK(req->head_only);
	CHECK_INT(read_str("\r\n\r\n"), S_OK);  /* nothing but empty lines: no request */
	CHECK_INT(req->head_len, 0);
}

static void
test_http_headers_recorded(void)
{
	CHECK_INT(read_str("POST /api/execute HTTP/1.1\r\nhost: x\r\n"
	    "content-TYPE:   application/json; charset=utf-8 \t\r\n"
	    "X-Other: ignored\r\nAuthorization: Bearer s3cret\r\n"
	    "Content-Length: 0\r\n\r\n"), S_OK);
	CHECK_STR(req->method, "POST");
	CHECK_STR(req->content_type, "application/json; charset=utf-8");
	CHECK_STR(req->authorization, "Bearer s3cret");
	CHECK_INT(req->body_len, 0);
}

static void
test_http_10_without_host_ok(void)
{
	CHECK_INT(read_str("GET / HTTP/1.0\r\n\r\n"), S_OK);
	CHECK_INT(req->minor_version, 0);
	CHECK_STR(req->path, "/");
}

static void
test_http_11_without_host_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_two_hosts_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_bare_lf(void)
{
	CHECK_INT(read_str("POST /p HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc"), S_OK);
	CHECK_STR(req->path, "/p");
	CHECK_MEM(req->body, req->body_len, "abc", 3);
	/* CRLF lines ended by a bare LF blank line */
	CHECK_INT(read_str("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\nhi"), S_OK);
	CHECK_MEM(req->body, req->body_len, "hi", 2);
}

/* The head ends at the first blank line, even if the body holds a CRLF CRLF. */
static void
test_http_bare_lf_body_with_crlfcrlf(void)
{
	static const char r[] = "POST /p HTTP/1.1\nHost: x\nContent-Length: 6\n\n\r\n\r\nab";

	CHECK_INT(read_bytes(r, sizeof(r) - 1, MAX_BODY), S_OK);
	CHECK_INT(req->head_len, 44);
	CHECK_MEM(req->body, req->body_len, "\r\n\r\nab", 6);
}

static void
test_http_bad_request_lines(void)
{
	static const char *const bad[] = {
		"GET\r\nHost: x\r\n\r\n",
		"GET /\r\nHost: x\r\n\r\n",
		"GET / \r\nHost: x\r\n\r\n",
		"/ HTTP/1.1\r\nHost: x\r\n\r\n",
		" / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
		"GET api HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http:/x/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET ftp://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n",
		"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
		"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / http/1.1\r\nHost: x\r\n\r\n",
		"GET / FTP/1.1\r\nHost: x\r\n\r\n",
		"\r\nHost: x\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum status s = read_str(bad[i]);
		check(s == S_BAD_REQUEST, __FILE__, __LINE__,
		    "request line #%zu: expected 400, got %d", i, (int)s);
	}
}

/* A control character in the version is a malformed line (400), not a version (505). */
static void
test_http_control_char_in_version_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\x01\r\nHost: x\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.\x7f\r\nHost: x\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_nul_in_head_400(void)
{
	static const char r[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";

	CHECK_INT(read_bytes(r, sizeof(r) - 1, MAX_BODY), S_BAD_REQUEST);
}

static void
test_http_version_505(void)
{
	CHECK_INT(read_str("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), S_VERSION_NOT_SUPPORTED);
	CHECK_INT(read_str("GET / HTTP/1.2\r\nHost: x\r\n\r\n"), S_VERSION_NOT_SUPPORTED);
	CHECK_INT(read_str("GET / HTTP/0.9\r\nHost: x\r\n\r\n"), S_VERSION_NOT_SUPPORTED);
}

static void
test_http_bad_header_lines_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 0\r\n\r\n"),
	    S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rz\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_obs_fold_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  continued\r\n\r\n"),
	    S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tcontinued\r\n\r\n"),
	    S_BAD_REQUEST);
}

static void
test_http_unknown_expect_417(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n"),
	    S_EXPECTATION_FAILED);
}

/* Fill a request of exactly total bytes: request line, one padding header, blank line. */
static char *
padded_request(size_t total, const char *line_end)
{
	static const char start[] = "GET / HTTP/1.0\r\nX-Pad: ";
	size_t end_len = 2 * strlen(line_end);
	char *r = malloc(total + 1);

	memcpy(r, start, sizeof(start) - 1);
	memset(r + sizeof(start) - 1, 'p', total - (sizeof(start) - 1) - end_len);
	memcpy(r + total - end_len, line_end, end_len / 2);
	memcpy(r + total - end_len / 2, line_end, end_len / 2);
	r[total] = '\0';
	return r;
}

static void
test_http_head_at_limit_ok(void)
{
	char *r = padded_request(HTTP_HEADER_MAX_BYTES, "\r\n");

	CHECK_INT(read_str(r), S_OK);
	CHECK_INT(req->head_len, HTTP_HEADER_MAX_BYTES);
	free(r);
	r = padded_request(HTTP_HEADER_MAX_BYTES, "\n");
	CHECK_INT(read_str(r), S_OK);
	CHECK_INT(req->head_len, HTTP_HEADER_MAX_BYTES);
	free(r);
}

static void
test_http_head_over_limit_431(void)
{
	char *r = padded_request(HTTP_HEADER_MAX_BYTES + 1, "\r\n");

	CHECK_INT(read_str(r), S_HEADER_FIELDS_TOO_LARGE);
	free(r);
	r = padded_request(3 * HTTP_HEADER_MAX_BYTES, "\r\n");
	CHECK_INT(read_str(r), S_HEADER_FIELDS_TOO_LARGE);
	free(r);
}

/* A head of exactly the limit followed by a body: the body comes from the fd. */
static void
test_http_head_at_limit_with_body(void)
{
	static const char start[] = "POST / HTTP/1.0\r\nContent-Length: 5\r\nX-Pad: ";
	char *r = malloc(HTTP_HEADER_MAX_BYTES + 6);

	memcpy(r, start, sizeof(start) - 1);
	memset(r + sizeof(start) - 1, 'p', HTTP_HEADER_MAX_BYTES - (sizeof(start) - 1) - 4);
	memcpy(r + HTTP_HEADER_MAX_BYTES - 4, "\r\n\r\nhello", 10);
	CHECK_INT(read_bytes(r, HTTP_HEADER_MAX_BYTES + 5, MAX_BODY), S_OK);
	CHECK_INT(req->head_len, HTTP_HEADER_MAX_BYTES);
	CHECK_MEM(req->body, req->body_len, "hello", 5);
	free(r);
}

static void
test_http_empty_connection(void)
{
	CHECK_INT(read_bytes("", 0, MAX_BODY), S_OK);
	CHECK_INT(req->head_len, 0);
}

static void
test_http_eof_in_headers_400(void)
{
	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("GET / HT"), S_BAD_REQUEST);
}

/* The reader must not keep stale fields from a previous request in the same struct. */
static void
test_http_reused_struct_fields_reset(void)
{
	int fd;

	CHECK_INT(read_str("GET / HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\n"
	    "Authorization: Bearer t\r\nExpect: 100-continue\r\n\r\n"), S_OK);
	http_request_free(req); /* no memset: the struct is reused as is */
	fd = mem_fd("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 28);
	CHECK_INT(http_read_request(fd, null_out, req, MAX_BODY,
	    http_now_ms() + LONG_DEADLINE_MS), S_OK);
	close(fd);
	CHECK(req->content_type == NULL);
	CHECK(req->authorization == NULL);
	CHECK(!req->expect_continue);
}

/* ---- HTTP reader: http_parse_head directly ---- */

static enum status
parse_head(const char *head, int64_t *content_length, bool *chunked)
{
	reset_req();
	req->head_len = strlen(head);
	memcpy(req->head, head, req->head_len + 1);
	return http_parse_head(req, content_length, chunked);
}

static void
test_parse_head_framing(void)
{
	int64_t cl = 7;
	bool chunked = true;

	CHECK_INT(parse_head("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &cl, &chunked), S_OK);
	CHECK_INT(cl, -1);
	CHECK(!chunked);
	CHECK_INT(parse_head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n",
	    &cl, &chunked), S_OK);
	CHECK_INT(cl, 42);
	CHECK(!chunked);
	CHECK_INT(parse_head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n",
	    &cl, &chunked), S_OK);
	CHECK_INT(cl, -1);
	CHECK(chunked);
}

static void
test_parse_head_content_length_values(void)
{
	int64_t cl;
	bool chunked;

	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: 0042\r\n\r\n", &cl, &chunked),
	    S_OK);
	CHECK_INT(cl, 42);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: -1\r\n\r\n", &cl, &chunked),
	    S_BAD_REQUEST);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: +1\r\n\r\n", &cl, &chunked),
	    S_BAD_REQUEST);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: 1 2\r\n\r\n", &cl, &chunked),
	    S_BAD_REQUEST);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length:\r\n\r\n", &cl, &chunked),
	    S_BAD_REQUEST);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: 0x10\r\n\r\n", &cl, &chunked),
	    S_BAD_REQUEST);
	CHECK_INT(parse_head("POST / HTTP/1.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	    &cl, &chunked), S_PAYLOAD_TOO_LARGE);
}

static void
test_parse_head_no_blank_line_400(void)
{
	int64_t cl;
	bool chunked;

	CHECK_INT(parse_head("GET / HTTP/1.1\r\nHost: x\r\n", &cl, &chunked), S_BAD_REQUEST);
	CHECK_INT(parse_head("GET / HTTP/1.1", &cl, &chunked), S_BAD_REQUEST);
}

/* ---- HTTP reader: bodies ---- */

static void
test_http_content_length_body(void)
{
	static const char r[] = "POST /api/execute HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"a\":\"b\\u0\"}";

	CHECK_INT(read_bytes(r, sizeof(r) - 1, MAX_BODY), S_OK);
	CHECK_MEM(req->body, req->body_len, "{\"a\":\"b\\u0\"}", 12);
	CHECK(req->body && req->body[req->body_len] == '\0');
}

static void
test_http_body_with_nul(void)
{
	static const char r[] = "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\na\0b";

	CHECK_INT(read_bytes(r, sizeof(r) - 1, MAX_BODY), S_OK);
	CHECK_MEM(req->body, req->body_len, "a\0b", 3);
}

/* Bytes after Content-Length are not part of the body. */
static void
test_http_body_stops_at_content_length(void)
{
	CHECK_INT(read_str("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nabcdef"), S_OK);
	CHECK_MEM(req->body, req->body_len, "ab", 2);
}

static void
test_http_body_byte_by_byte(void)
{
	static const char r[] = "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 39\r\n"
	    "\r\n{\"executable_name\": \"prog\", \"args\": []}";

	CHECK_INT(read_trickled(r, sizeof(r) - 1, 1, 200), S_OK);
	CHECK_STR(req->path, "/api/execute");
	CHECK_MEM(req->body, req->body_len, "{\"executable_name\": \"prog\", \"args\": []}", 39);
}

static void
test_http_body_large_split(void)
{
	static const char head[] = "POST / HTTP/1.0\r\nContent-Length: 3000\r\n\r\n";
	char r[sizeof(head) - 1 + 3000];

	memcpy(r, head, sizeof(head) - 1);
	for (size_t i = 0; i < 3000; i++)
		r[sizeof(head) - 1 + i] = (char)('a' + i % 26);
	CHECK_INT(read_trickled(r, sizeof(r), 97, 100), S_OK);
	CHECK_MEM(req->body, req->body_len, r + sizeof(head) - 1, 3000);
}

static void
test_http_eof_in_body_400(void)
{
	CHECK_INT(read_str("POST / HTTP/1.0\r\nContent-Length: 10\r\n\r\nabc"), S_BAD_REQUEST);
}

static void
test_http_content_length_over_max_413(void)
{
	int64_t elapsed;

	CHECK_INT(read_str("POST / HTTP/1.0\r\nContent-Length: 4097\r\n\r\n"),
	    S_PAYLOAD_TOO_LARGE);
	/* Decided from the header alone: no wait for a body that never comes. */
	CHECK_INT(read_stalled("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
	    1000, 3000, &elapsed), S_PAYLOAD_TOO_LARGE);
	CHECK(elapsed < 1000);
}

static void
test_http_content_length_at_max_ok(void)
{
	static const char r[] = "POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\nwxyz";

	CHECK_INT(read_bytes(r, sizeof(r) - 1, 4), S_OK);
	CHECK_MEM(req->body, req->body_len, "wxyz", 4);
	CHECK_INT(read_bytes(r, sizeof(r) - 1, 3), S_PAYLOAD_TOO_LARGE);
}

static void
test_http_two_content_lengths(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\nabcd"), S_BAD_REQUEST);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	    "content-length: 3\r\n\r\nabc"), S_OK);
	CHECK_MEM(req->body, req->body_len, "abc", 3);
}

static void
test_http_content_length_and_chunked_400(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_other_transfer_encoding_501(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
	    S_NOT_IMPLEMENTED);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	    S_NOT_IMPLEMENTED);
}

static void
test_http_chunked_several_chunks(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"), S_OK);
	CHECK_MEM(req->body, req->body_len, "hello, world", 12);
	CHECK(req->body && req->body[12] == '\0');
}

static void
test_http_chunked_extensions_trailers_hex(void)
{
	char want[27];

	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "1A;name=value;q=\"x\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "1 ; ext\r\n!\r\n0;last\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n"), S_OK);
	memcpy(want, "abcdefghijklmnopqrstuvwxyz!", 27);
	CHECK_MEM(req->body, req->body_len, want, 27);
}

static void
test_http_chunked_lowercase_hex_and_bare_lf(void)
{
	char r[256], want[16];

	memset(want, 'z', sizeof(want));
	snprintf(r, sizeof(r), "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
	    "f\n%.15s\n0\n\n", want);
	CHECK_INT(read_str(r), S_OK);
	CHECK_MEM(req->body, req->body_len, want, 15);
}

static void
test_http_chunked_empty_body(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\n"), S_OK);
	CHECK(req->body != NULL);
	CHECK_INT(req->body_len, 0);
}

static void
test_http_chunked_byte_by_byte(void)
{
	static const char r[] = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n";

	CHECK_INT(read_trickled(r, sizeof(r) - 1, 1, 200), S_OK);
	CHECK_MEM(req->body, req->body_len, "abc0123456789", 13);
}

static void
test_http_chunked_bad_size_400(void)
{
	static const char *const sizes[] = {
		"g", "-1", " 5", "0x5", "5 x", "", ";ext", "+5",
	};
	char r[256];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(r, sizeof(r), "POST / HTTP/1.1\r\nHost: x\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0\r\n\r\n", sizes[i]);
		enum status s = read_str(r);
		check(s == S_BAD_REQUEST, __FILE__, __LINE__,
		    "chunk size \"%s\": expected 400, got %d", sizes[i], (int)s);
	}
}

static void
test_http_chunked_missing_crlf_after_data_400(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabcX\r\n0\r\n\r\n"), S_BAD_REQUEST);
}

static void
test_http_chunked_eof_400(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhel"), S_BAD_REQUEST);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n"), S_BAD_REQUEST);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\nX-T: 1\r\n"), S_BAD_REQUEST);
}

static void
test_http_chunk_too_large_413(void)
{
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "1001\r\n"), S_PAYLOAD_TOO_LARGE);
	CHECK_INT(read_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "ffffffffffffffffffffffff\r\n"), S_PAYLOAD_TOO_LARGE);
}

static void
test_http_chunked_total_over_max_413(void)
{
	char *r = malloc(8192);
	int n;

	n = sprintf(r, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "800\r\n");
	memset(r + n, 'a', 0x800);
	n += 0x800;
	n += sprintf(r + n, "\r\n801\r\n");
	memset(r + n, 'b', 0x801);
	n += 0x801;
	n += sprintf(r + n, "\r\n0\r\n\r\n");
	CHECK_INT(read_bytes(r, (size_t)n, MAX_BODY), S_PAYLOAD_TOO_LARGE);
	/* one byte less is exactly max_body: accepted */
	CHECK_INT(read_bytes(r, (size_t)n, MAX_BODY + 1), S_OK);
	CHECK_INT(req->body_len, MAX_BODY + 1);
	free(r);
}

static void
test_http_chunked_trailers_over_limit_431(void)
{
	size_t size = 200 * 1100, n;
	char *r = malloc(size);

	n = (size_t)sprintf(r, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n0\r\n");
	for (int i = 0; i < 100; i++) {
		n += (size_t)sprintf(r + n, "X-T: ");
		memset(r + n, 't', 995);
		n += 995;
		n += (size_t)sprintf(r + n, "\r\n");
	}
	n += (size_t)sprintf(r + n, "\r\n");
	CHECK_INT(read_bytes(r, n, MAX_BODY), S_HEADER_FIELDS_TOO_LARGE);
	free(r);
}

/* ---- HTTP reader: Expect and deadlines ---- */

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Child: send head, wait for "100 Continue" on out, then send body; exit 0 iff it came. */
static void
continue_client(int in_w, int out_r, const char *head, const char *body)
{
	struct pollfd pfd = { .fd = out_r, .events = POLLIN };
	char got[64] = "";
	ssize_t n = 0;

	if (write(in_w, head, strlen(head)) < 0)
		_exit(3);
	if (poll(&pfd, 1, 3000) == 1)
		n = read(out_r, got, sizeof(got) - 1);
	if (n != (ssize_t)strlen(continue_line) || memcmp(got, continue_line, (size_t)n) != 0)
		_exit(1);
	if (write(in_w, body, strlen(body)) < 0)
		_exit(3);
	_exit(0);
}

static void
test_http_expect_continue_sent_before_body(void)
{
	int in[2], out[2], wstatus = 0;
	pid_t pid;

	if (pipe(in) < 0 || pipe(out) < 0)
		exit(2);
	pid = fork();
	if (pid == 0)
		continue_client(in[1], out[0], "POST /x HTTP/1.1\r\nHost: x\r\n"
		    "Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n", "hello");
	close(in[1]);
	reset_req();
	CHECK_INT(http_read_request(in[0], out[1], req, MAX_BODY,
	    http_now_ms() + LONG_DEADLINE_MS), S_OK);
	waitpid(pid, &wstatus, 0);
	CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
	CHECK(req->expect_continue);
	CHECK_MEM(req->body, req->body_len, "hello", 5);
	close(in[0]);
	close(out[0]);
	close(out[1]);
}

static void
test_http_expect_continue_chunked(void)
{
	int in[2], out[2], wstatus = 0;
	pid_t pid;

	if (pipe(in) < 0 || pipe(out) < 0)
		exit(2);
	pid = fork();
	if (pid == 0)
		continue_client(in[1], out[0], "POST /x HTTP/1.1\r\nHost: x\r\n"
		    "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
		    "2\r\nok\r\n0\r\n\r\n");
	close(in[1]);
	reset_req();
	CHECK_INT(http_read_request(in[0], out[1], req, MAX_BODY,
	    http_now_ms() + LONG_DEADLINE_MS), S_OK);
	waitpid(pid, &wstatus, 0);
	CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
	CHECK_MEM(req->body, req->body_len, "ok", 2);
	close(in[0]);
	close(out[0]);
	close(out[1]);
}

/* Read head (then body after a pause, from a child) with out going to a pipe; return what was written there. */
static enum status
read_with_out_pipe(const char *head, const char *body, size_t max_body, char *out_buf,
    size_t out_size)
{
	int in[2], out[2];
	pid_t pid;
	enum status status;

	if (pipe(in) < 0 || pipe(out) < 0)
		exit(2);
	pid = fork();
	if (pid == 0) {
		if (write(in[1], head, strlen(head)) < 0)
			_exit(1);
		usleep(300 * 1000);
		if (write(in[1], body, strlen(body)) < 0)
			_exit(1);
		_exit(0);
	}
	close(in[1]);
	reset_req();
	status = http_read_request(in[0], out[1], req, max_body, http_now_ms() + LONG_DEADLINE_MS);
	waitpid(pid, NULL, 0);
	drain_pipe(out[0], out_buf, out_size);
	close(in[0]);
	close(out[0]);
	close(out[1]);
	return status;
}

static void
test_http_no_continue_without_expect(void)
{
	char out[64];

	CHECK_INT(read_with_out_pipe("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
	    "hi", MAX_BODY, out, sizeof(out)), S_OK);
	CHECK_STR(out, "");
	CHECK_MEM(req->body, req->body_len, "hi", 2);
}

static void
test_http_no_continue_for_http10(void)
{
	char out[64];

	CHECK_INT(read_with_out_pipe("POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
	    "Content-Length: 2\r\n\r\n", "hi", MAX_BODY, out, sizeof(out)), S_OK);
	CHECK_STR(out, "");
	CHECK_MEM(req->body, req->body_len, "hi", 2);
}

/* A body we will refuse anyway is not asked for. */
static void
test_http_no_continue_when_too_large(void)
{
	char out[64];

	CHECK_INT(read_with_out_pipe("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
	    "Content-Length: 5000\r\n\r\n", "", MAX_BODY, out, sizeof(out)),
	    S_PAYLOAD_TOO_LARGE);
	CHECK_STR(out, "");
}

static void
test_http_deadline_in_headers_408(void)
{
	int64_t elapsed;

	CHECK_INT(read_stalled("GET / HTTP/1.1\r\nHost: x\r\n", MAX_BODY, 200, &elapsed),
	    S_REQUEST_TIMEOUT);
	CHECK(elapsed >= 190 && elapsed < 2000);
	CHECK_INT(read_stalled("", MAX_BODY, 200, &elapsed), S_REQUEST_TIMEOUT);
	CHECK(elapsed >= 190 && elapsed < 2000);
}

static void
test_http_deadline_in_body_408(void)
{
	int64_t elapsed;

	CHECK_INT(read_stalled("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
	    MAX_BODY, 200, &elapsed), S_REQUEST_TIMEOUT);
	CHECK(elapsed >= 190 && elapsed < 2000);
	CHECK_INT(read_stalled("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nab", MAX_BODY, 200, &elapsed), S_REQUEST_TIMEOUT);
	CHECK(elapsed >= 190 && elapsed < 2000);
	CHECK_INT(read_stalled("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n", MAX_BODY, 200, &elapsed), S_REQUEST_TIMEOUT);
}

/* ---- JSON escaper ---- */

static struct jbuf jb;

static const char *
escaped(const char *s, size_t len, bool translate)
{
	jbuf_free(&jb);
	json_escape(&jb, s, len, translate);
	return jb.data ? jb.data : "";
}

#define CHECK_ESC(in, translate, want) \
	CHECK_STR(escaped((in), sizeof(in) - 1, (translate)), (want))

static void
test_json_ascii_passthrough(void)
{
	CHECK_ESC("hello, world ~!#$%&'()*+-./09:;<=>?@AZ[]^_`az{|}", false,
	    "hello, world ~!#$%&'()*+-./09:;<=>?@AZ[]^_`az{|}");
	CHECK_ESC("\x7f", false, "\x7f");
	CHECK_ESC("", false, "");
}

static void
test_json_quotes_backslashes(void)
{
	CHECK_ESC("say \"hi\" \\ bye\\", false, "say \\\"hi\\\" \\\\ bye\\\\");
	CHECK_ESC("/", false, "/");
}

static void
test_json_control_characters(void)
{
	CHECK_ESC("\b\t\n\f\r", false, "\\b\\t\\n\\f\\r");
	CHECK_ESC("\x01\x07\x0b\x0e\x1b\x1f", false,
	    "\\u0001\\u0007\\u000b\\u000e\\u001b\\u001f");
	CHECK_ESC("a\0b", false, "a\\u0000b");
	CHECK_ESC("\0", true, "\\u0000");
}

static void
test_json_newline_translation(void)
{
	CHECK_ESC("a\r\nb\rc\nd", true, "a\\nb\\nc\\nd");
	CHECK_ESC("\r\r\n\n\r", true, "\\n\\n\\n\\n");
	CHECK_ESC("\n\r", true, "\\n\\n");
	CHECK_ESC("a\r\nb\rc", false, "a\\r\\nb\\rc");
	CHECK_ESC("\t\b", true, "\\t\\b");
}

static void
test_json_valid_utf8_kept(void)
{
	CHECK_ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", false,
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* boundaries: U+0080 U+07FF U+0800 U+D7FF U+E000 U+FFFD U+FFFF U+10000 U+10FFFF */
	CHECK_ESC("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd"
	    "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", false,
	    "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd"
	    "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
}

#define FFFD "\xef\xbf\xbd"

static void
test_json_invalid_bytes_replaced(void)
{
	CHECK_ESC("\xff", false, FFFD);
	CHECK_ESC("a\x80z", false, "a" FFFD "z");
	CHECK_ESC("\xfe\xf8\xf5\x80", false, FFFD FFFD FFFD FFFD);
	CHECK_ESC("\xc1\xbf", false, FFFD FFFD);
}

static void
test_json_truncated_sequences_replaced(void)
{
	CHECK_ESC("\xc3", false, FFFD);
	CHECK_ESC("\xe2\x82", false, FFFD FFFD);
	CHECK_ESC("\xf0\x9f\x98", false, FFFD FFFD FFFD);
	CHECK_ESC("\xc3" "A", false, FFFD "A");
	CHECK_ESC("\xe2\x82" "\"", false, FFFD FFFD "\\\"");
	CHECK_ESC("\xf0\x9f\x98\n", false, FFFD FFFD FFFD "\\n");
}

/*
 * json_escape_fit keeps the longest prefix whose escape fits the budget:
 * the escape of what it keeps fits, one more unit (byte, "\r\n" or UTF-8
 * sequence) would not, and a cut never splits a unit.
 */
static void
test_json_escape_fit_exact(void)
{
	static const char alphabet[] = "a\"\\\r\n\t\x01\x0b\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3";
	char s[64];
	unsigned seed = 17;

	CHECK_INT(json_escape_fit("", 0, 0, true), 0);
	CHECK_INT(json_escape_fit("\0\0", 2, 11, false), 1);   /* \u0000 is 6 bytes */
	CHECK_INT(json_escape_fit("\0\0", 2, 12, false), 2);
	CHECK_INT(json_escape_fit("a\r\nb", 4, 3, true), 3);   /* "a\n": the pair whole */
	CHECK_INT(json_escape_fit("a\r\nb", 4, 2, true), 1);
	CHECK_INT(json_escape_fit("\xe2\x82\xac", 3, 2, false), 0); /* never half a sequence */
	CHECK_INT(json_escape_fit("\xff", 1, 3, false), 1);    /* U+FFFD: 3 bytes */
	for (int round = 0; round < 3000; round++) {
		size_t len = (seed = seed * 1103515245 + 12345) >> 16 & 31, budget, best = 0;
		bool translate = round & 1;
		char whole[6 * 32 + 1];

		for (size_t i = 0; i < len; i++)
			s[i] = alphabet[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof(alphabet) - 1)];
		snprintf(whole, sizeof(whole), "%s", escaped(s, len, translate));
		budget = ((seed = seed * 1103515245 + 12345) >> 16) % (strlen(whole) + 2);
		/* The longest prefix whose escape fits and begins the whole escape (no unit split). */
		for (size_t p = 0; p <= len; p++) {
			const char *e = escaped(s, p, translate);

			if (strlen(e) <= budget && strncmp(e, whole, strlen(e)) == 0)
				best = p;
		}
		CHECK_INT(json_escape_fit(s, len, budget, translate), best);
	}
}

/* A file holding s[0..len), as a run's spool would. */
static int
spool_of(const char *s, size_t len)
{
	int fd = spool_open();

	CHECK(fd >= 0);
	CHECK_INT(pwrite(fd, s, len, 0), (ssize_t)len);
	return fd;
}

/* What spool_escape writes of [0, len) of fd, read back (malloc'ed). */
static char *
spool_escaped(int fd, off_t len, size_t *out_len)
{
	static struct spool_sink sink;
	int out = spool_open();
	char *text = malloc(6 * (size_t)len + 1);

	spool_sink_fd(&sink, out, true, 0);
	CHECK_INT(spool_escape(&sink, fd, len), 0);
	CHECK_INT(spool_flush(&sink), 0);
	*out_len = (size_t)sink.at;
	CHECK_INT(pread(out, text, *out_len, 0), (ssize_t)*out_len);
	close(out);
	return text;
}

/*
 * Escaping streamed from a spool, a chunk at a time, gives json_escape's
 * bytes for the whole, and spool_fit json_escape_fit's cut, wherever a
 * "\r\n" or a UTF-8 sequence straddles a chunk's end; counting gives the size.
 */
static void
test_spool_escape_as_whole(void)
{
	static const char alphabet[] = "a\"\\\r\n\t\x01\x0b\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3";
	static struct spool_sink counter;
	size_t size = 3 * SPOOL_CHUNK_BYTES, got_len;
	char *s = malloc(size), *got;
	unsigned seed = 29;

	for (int round = 0; round < 60; round++) {
		size_t len = SPOOL_CHUNK_BYTES - 8 + (size_t)round % 16 + (round >= 30 ? SPOOL_CHUNK_BYTES : 0);
		struct jbuf whole = { 0 };
		size_t budget;
		int fd;

		for (size_t i = 0; i < len; i++)
			s[i] = alphabet[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof(alphabet) - 1)];
		fd = spool_of(s, len);
		json_escape(&whole, s, len, true);
		got = spool_escaped(fd, (off_t)len, &got_len);
		CHECK_MEM(got, got_len, whole.data, whole.len);
		spool_sink_count(&counter);
		CHECK_INT(spool_escape(&counter, fd, (off_t)len), 0);
		CHECK_INT(counter.at, (off_t)whole.len);
		budget = ((seed = seed * 1103515245 + 12345) >> 8) % (whole.len + 2);
		CHECK_INT(spool_fit(fd, (off_t)len, budget), (off_t)json_escape_fit(s, len, budget, true));
		CHECK_INT(spool_fit(fd, (off_t)len, whole.len), (off_t)len);
		free(got);
		jbuf_free(&whole);
		close(fd);
	}
	free(s);
}

/* yaml_write writes what yaml_text makes, through its 64 KiB flushes too. */
static void
test_yaml_write_as_text(void)
{
	cJSON *tree = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(tree, "v");
	char *text, *written;
	size_t len;
	int fd;

	for (int i = 0; i < 20000; i++)
		cJSON_AddItemToArray(list, cJSON_CreateString(i % 7 ? "x\"y" : "{{ z }}\xc3\xa9"));
	cJSON_AddNumberToObject(tree, "n", 1.5);
	text = yaml_text(tree);
	fd = spool_open();
	CHECK(yaml_write(fd, tree));
	len = (size_t)lseek(fd, 0, SEEK_END);
	written = calloc(1, len + 1);
	CHECK_INT(pread(fd, written, len, 0), (ssize_t)len);
	CHECK(len > 65536);
	CHECK_STR(written, text);
	close(fd);
	free(written);
	free(text);
	cJSON_Delete(tree);
}

static void
test_json_overlong_replaced(void)
{
	CHECK_ESC("\xc0\x80", false, FFFD FFFD);
	CHECK_ESC("\xe0\x80\x80", false, FFFD FFFD FFFD);
	CHECK_ESC("\xe0\x9f\xbf", false, FFFD FFFD FFFD);
	CHECK_ESC("\xf0\x8f\xbf\xbf", false, FFFD FFFD FFFD FFFD);
}

static void
test_json_surrogates_and_beyond_replaced(void)
{
	CHECK_ESC("\xed\xa0\x80", false, FFFD FFFD FFFD);
	CHECK_ESC("\xed\xbf\xbf", false, FFFD FFFD FFFD);
	CHECK_ESC("\xf4\x90\x80\x80", false, FFFD FFFD FFFD FFFD);
	CHECK_ESC("\xf7\xbf\xbf\xbf", false, FFFD FFFD FFFD FFFD);
}

static void
test_json_utf8_len(void)
{
	CHECK_INT(json_utf8_len((const unsigned char *)"A", 1), 1);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 3), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\x80", 1), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xc0\x80", 2), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
	CHECK_INT(json_utf8_len((const unsigned char *)"\xc3\x28", 2), 0);
}

static void
test_json_string(void)
{
	jbuf_free(&jb);
	json_string(&jb, NULL);
	CHECK_STR(jb.data, "null");
	jbuf_free(&jb);
	json_string(&jb, "a\"b\r\n\xff");
	CHECK_STR(jb.data, "\"a\\\"b\\r\\n" FFFD "\"");
	jbuf_free(&jb);
	json_detail(&jb, "Not Found");
	CHECK_STR(jb.data, "{\"detail\":\"Not Found\"}");
	jbuf_free(&jb);
}

static void
test_json_long_input_grows(void)
{
	size_t n = 100000;
	char *in = malloc(n);

	for (size_t i = 0; i < n; i++)
		in[i] = i % 3 == 0 ? '"' : 'x';
	escaped(in, n, false);
	CHECK_INT(jb.len, n + (n + 2) / 3);
	CHECK(!jb.failed);
	CHECK(jb.data && jb.data[jb.len] == '\0');
	free(in);
}

/* The reference: the length of a well-formed sequence per Unicode Table 3-7, else 0. */
static size_t
ref_utf8_len(const unsigned char *s, size_t left)
{
	static const struct { unsigned char lo0, hi0, lo1, hi1; size_t len; } rows[] = {
		{ 0x00, 0x7f, 0, 0, 1 },
		{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
		{ 0xe0, 0xe0, 0xa0, 0xbf, 3 },
		{ 0xe1, 0xec, 0x80, 0xbf, 3 },
		{ 0xed, 0xed, 0x80, 0x9f, 3 },
		{ 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 },
		{ 0xf1, 0xf3, 0x80, 0xbf, 4 },
		{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		if (s[0] < rows[r].lo0 || s[0] > rows[r].hi0)
			continue;
		if (rows[r].len == 1)
			return 1;
		if (left < rows[r].len || s[1] < rows[r].lo1 || s[1] > rows[r].hi1)
			return 0;
		for (size_t i = 2; i < rows[r].len; i++)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return 0;
		return rows[r].len;
	}
	return 0;
}

/* What decoding the escaped JSON string must give: each bad byte as U+FFFD. */
static size_t
ref_repair(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, seq;

	for (size_t i = 0; i < len; i += seq ? seq : 1) {
		seq = ref_utf8_len(in + i, len - i);
		if (seq) {
			memcpy(out + o, in + i, seq);
			o += seq;
		} else {
			memcpy(out + o, FFFD, 3);
			o += 3;
		}
	}
	return o;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Random bytes 1..255, often forming (or nearly forming) multi-byte sequences. */
static size_t
random_bytes(unsigned char *buf, size_t max)
{
	static const unsigned char interesting[] = {
		0x01, 0x08, 0x0a, 0x0d, 0x1f, '"', '\\', 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2,
		0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x8f, 0x90,
	};
	size_t len = rng() % max;

	for (size_t i = 0; i < len; i++) {
		if (rng() % 2)
			buf[i] = interesting[rng() % sizeof(interesting)];
		else
			buf[i] = (unsigned char)(1 + rng() % 255);
	}
	return len;
}

/* Is s[0..len) free of raw control bytes and well-formed UTF-8? */
static bool
is_clean_utf8(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t seq;

	for (size_t i = 0; i < len; i += seq) {
		if (u[i] < 0x20)
			return false;
		seq = ref_utf8_len(u + i, len - i);
		if (!seq)
			return false;
	}
	return true;
}

/* One random input: the output is clean, parses with cJSON and decodes to the repaired input. */
static bool
json_fuzz_one(unsigned char *in, size_t len, char *want, struct jbuf *quoted)
{
	size_t want_len = ref_repair(in, len, want);
	cJSON *parsed;
	bool ok;

	jbuf_free(quoted);
	jbuf_add(quoted, "\"", 1);
	json_escape(quoted, (const char *)in, len, false);
	jbuf_add(quoted, "\"", 1);
	if (quoted->failed || !is_clean_utf8(quoted->data, quoted->len))
		return false;
	parsed = cJSON_ParseWithLength(quoted->data, quoted->len);
	ok = cJSON_IsString(parsed) && strlen(parsed->valuestring) == want_len &&
	    memcmp(parsed->valuestring, want, want_len) == 0;
	cJSON_Delete(parsed);
	return ok;
}

static void
test_json_random_bytes_parse_with_cjson(void)
{
	unsigned char in[64];
	char want[64 * 3 + 1];
	struct jbuf quoted = { 0 };
	int bad = 0, first_bad = -1;
	char shown[300];
	size_t first_len = 0;
	unsigned char first_in[64];

	for (int n = 0; n < 5000; n++) {
		size_t len = random_bytes(in, sizeof(in));
		if (!json_fuzz_one(in, len, want, &quoted) && bad++ == 0) {
			first_bad = n;
			first_len = len;
			memcpy(first_in, in, len);
		}
	}
	check(bad == 0, __FILE__, __LINE__,
	    "expected every escaped random string to parse as the repaired input; %d bad, "
	    "first #%d: \"%s\"", bad, first_bad,
	    show((const char *)first_in, first_len, shown, sizeof(shown)));
	jbuf_free(&quoted);
}

/* With translation on, the output still parses; the NUL is kept as an escape. */
static void
test_json_random_translated_parse_with_cjson(void)
{
	unsigned char in[64];
	struct jbuf quoted = { 0 };
	int bad = 0;

	for (int n = 0; n < 2000; n++) {
		size_t len = random_bytes(in, sizeof(in));
		cJSON *parsed;
		if (len > 0)
			in[rng() % len] = (rng() % 2) ? '\r' : '\0';
		jbuf_free(&quoted);
		jbuf_add(&quoted, "\"", 1);
		json_escape(&quoted, (const char *)in, len, true);
		jbuf_add(&quoted, "\"", 1);
		parsed = cJSON_ParseWithLength(quoted.data, quoted.len);
		if (!cJSON_IsString(parsed) || !is_clean_utf8(quoted.data, quoted.len) ||
		    memchr(quoted.data, '\r', quoted.len))
			bad++;
		cJSON_Delete(parsed);
	}
	CHECK_INT(bad, 0);
	jbuf_free(&quoted);
}

/* ---- path resolution ---- */

/* Room for tmp_dir plus a relative name, so paths built from it never truncate. */
#define TREE_PATH_MAX (2 * PATH_MAX)

static char tmp_dir[PATH_MAX], root_dir[TREE_PATH_MAX], root_link[TREE_PATH_MAX];
static char jobfiles_dir[TREE_PATH_MAX];
/* The job whose files the tests of files.c use. */
#define FILES_JOB "0c8e0000-0000-4000-8000-0000000000f1"
static struct program prog;

static void
make_file(const char *rel, mode_t mode)
{
	char path[TREE_PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "#!/bin/sh\nexit 0\n", 17) != 17 || fchmod(fd, mode) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void
make_dir(const char *rel)
{
	char path[TREE_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, rel);
	if (mkdir(path, 0755) < 0) {
		perror(path);
		exit(2);
	}
}

static void
make_link(const char *target, const char *rel)
{
	char path[TREE_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, rel);
	if (symlink(target, path) < 0) {
		perror(path);
		exit(2);
	}
}

/*
 * tmp/root/{prog, noexec, groupx, sub/prog, dir/, link -> prog, outlink -> /bin/true,
 * outdir -> /bin, dangling -> nowhere, evillink -> ../rootevil/prog},
 * tmp/rootevil/prog, tmp/rootlink -> root (tmp itself resolved, as /tmp may be a link).
 */
static void
setup_tree(void)
{
	char made[] = "/tmp/lso-unit-XXXXXX";

	if (!mkdtemp(made) || !realpath(made, tmp_dir)) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(root_dir, sizeof(root_dir), "%s/root", tmp_dir);
	snprintf(root_link, sizeof(root_link), "%s/rootlink", tmp_dir);
	make_dir("root");
	make_dir("root/sub");
	make_dir("root/dir");
	make_dir("rootevil");
	make_file("root/prog", 0755);
	make_file("root/noexec", 0644);
	make_file("root/groupx", 0650);
	make_file("root/sub/prog", 0700);
	make_file("rootevil/prog", 0755);
	make_link("prog", "root/link");
	make_link("/bin/true", "root/outlink");
	make_link("/bin", "root/outdir");
	make_link("nowhere", "root/dangling");
	make_link("../rootevil/prog", "root/evillink");
	make_link("root", "rootlink");
	make_link("../nowhere-at-all", "root/danglingout");
	snprintf(jobfiles_dir, sizeof(jobfiles_dir), "%s/jobfiles", tmp_dir);
	make_link("/nonexistent/prog", "root/danglingabs");
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	return remove(path);
}

static void
teardown_tree(void)
{
	nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static enum outcome
resolve(const char *name)
{
	if (prog.fd > 0)
		resolve_release(&prog);
	memset(&prog, 0, sizeof(prog));
	return resolve_program(root_link, name, &prog);
}

/* prog.path is the real path of tmp/rel, and prog.fd is that file open. */
static bool
resolved_to(const char *rel)
{
	char path[TREE_PATH_MAX];
	struct stat st, open_st;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, rel);
	if (stat(path, &st) < 0 || prog.fd < 0 || fstat(prog.fd, &open_st) < 0)
		return false;
	return strcmp(prog.path, path) == 0 && open_st.st_dev == st.st_dev &&
	    open_st.st_ino == st.st_ino;
}

static void
test_resolve_ok_names(void)
{
	CHECK_INT(resolve("prog"), OUTCOME_OK);
	CHECK(resolved_to("root/prog"));
	CHECK_INT(resolve("sub/prog"), OUTCOME_OK);
	CHECK(resolved_to("root/sub/prog"));
	CHECK_INT(resolve("./prog"), OUTCOME_OK);
	CHECK(resolved_to("root/prog"));
	CHECK_INT(resolve("sub/../prog"), OUTCOME_OK);
	CHECK(resolved_to("root/prog"));
	CHECK_INT(resolve("sub//./prog"), OUTCOME_OK);
	CHECK(resolved_to("root/sub/prog"));
	CHECK_INT(resolve("groupx"), OUTCOME_OK);
}

/* Kernels without openat2: the same names resolve through a walk that follows no link. */
static void
test_resolve_without_openat2(void)
{
	resolve_without_openat2 = true;
	CHECK_INT(resolve("sub/prog"), OUTCOME_OK);
	CHECK(resolved_to("root/sub/prog"));
	CHECK_INT(resolve("link"), OUTCOME_OK);  /* resolved first: the walk sees no link */
	CHECK(resolved_to("root/prog"));
	CHECK_INT(resolve("outdir/true"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("noexec"), RESOLVE_NOT_EXECUTABLE);
	resolve_without_openat2 = false;
}

static void
test_resolve_real_root(void)
{
	resolve_release(&prog);
	CHECK_INT(resolve_program(root_dir, "sub/prog", &prog), OUTCOME_OK);
	CHECK(resolved_to("root/sub/prog"));
}

static void
test_resolve_climbing_out(void)
{
	CHECK_INT(resolve("../x"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve(".."), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("sub/../../x"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("../root/prog"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("../rootlink/prog"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("./../rootevil/prog"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("sub/../../../../../../bin/true"), RESOLVE_OUTSIDE);
}

static void
test_resolve_absolute(void)
{
	char path[TREE_PATH_MAX];

	snprintf(path, sizeof(path), "%s/root/prog", tmp_dir);
	CHECK_INT(resolve(path), OUTCOME_OK);
	CHECK(resolved_to("root/prog"));
	snprintf(path, sizeof(path), "%s/rootlink/sub/prog", tmp_dir);
	CHECK_INT(resolve(path), OUTCOME_OK);
	CHECK(resolved_to("root/sub/prog"));
	CHECK_INT(resolve("/bin/true"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("/nonexistent/prog"), RESOLVE_OUTSIDE);
	snprintf(path, sizeof(path), "%s/rootevil/prog", tmp_dir);
	CHECK_INT(resolve(path), RESOLVE_OUTSIDE);
	snprintf(path, sizeof(path), "%s/root/missing", tmp_dir);
	CHECK_INT(resolve(path), RESOLVE_MISSING);
}

static void
test_resolve_symlinks(void)
{
	CHECK_INT(resolve("link"), OUTCOME_OK);
	CHECK(resolved_to("root/prog"));
	CHECK_INT(resolve("outlink"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("outdir/true"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("evillink"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("dangling"), RESOLVE_MISSING);
	/* Outside is decided before existence: a dangling link out is outside. */
	CHECK_INT(resolve("danglingout"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("danglingabs"), RESOLVE_OUTSIDE);
	CHECK_INT(resolve("sub/../danglingout"), RESOLVE_OUTSIDE);
}

static void
test_resolve_missing(void)
{
	CHECK_INT(resolve("missing"), RESOLVE_MISSING);
	CHECK_INT(resolve("sub/missing"), RESOLVE_MISSING);
	CHECK_INT(resolve("prog/x"), RESOLVE_MISSING);
}

static void
test_resolve_not_file(void)
{
	CHECK_INT(resolve("dir"), RESOLVE_NOT_FILE);
	CHECK_INT(resolve("sub"), RESOLVE_NOT_FILE);
	CHECK_INT(resolve("."), RESOLVE_NOT_FILE);
}

static void
test_resolve_not_executable(void)
{
	CHECK_INT(resolve("noexec"), RESOLVE_NOT_EXECUTABLE);
}

static void
test_resolve_bad_root(void)
{
	char path[TREE_PATH_MAX];

	CHECK_INT(resolve_program(NULL, "prog", &prog), RESOLVE_MISSING);
	snprintf(path, sizeof(path), "%s/no-such-root", tmp_dir);
	CHECK_INT(resolve_program(path, "prog", &prog), RESOLVE_MISSING);
}

static void
test_resolve_long_name(void)
{
	size_t n = PATH_MAX + 100;
	char *name = malloc(n + 1);

	memset(name, 'a', n);
	name[n] = '\0';
	CHECK_INT(resolve(name), RESOLVE_MISSING);
	for (size_t i = 0; i + 2 < n; i += 2)
		memcpy(name + i, "a/", 2);
	CHECK_INT(resolve(name), RESOLVE_MISSING);
	free(name);
}

static void
test_resolve_root_is_slash(void)
{
	memset(&prog, 0, sizeof(prog));
	CHECK_INT(resolve_program("/", "bin/true", &prog), OUTCOME_OK);
	CHECK(prog.path[0] == '/' && strstr(prog.path, "true") != NULL);
}

/* ---- strict JSON parse (jsonparse.c) ---- */

static long
error_at(const char *text)
{
	return jsonparse_error_at(text, strlen(text));
}

/* n arrays nested, "[[...]]", malloc'ed. */
static char *
nested(size_t n)
{
	char *s = malloc(2 * n + 1);

	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';
	return s;
}

static void
test_jsonparse_strict_scan(void)
{
	char *deep;

	CHECK_INT(error_at("{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\\n\"]}"), -1);
	CHECK_INT(error_at(" \t\r\n 0 "), -1);
	CHECK_INT(error_at("01"), 1);              /* leading zero */
	CHECK_INT(error_at("{\"a\":1,}"), 7);      /* trailing comma */
	CHECK_INT(error_at("[1] [2]"), 4);         /* trailing data */
	CHECK_INT(error_at("\"a\tb\""), 2);        /* raw control byte in a string */
	CHECK_INT(error_at("\"\\x\""), 2);         /* bad escape */
	CHECK_INT(error_at("\"\\u12g4\""), 2);
	CHECK_INT(error_at("\"\xc3\x28\""), 1);    /* invalid UTF-8 */
	CHECK_INT(error_at("1."), 2);
	CHECK_INT(error_at("tru"), 0);
	CHECK_INT(error_at(""), 0);
	CHECK_INT(jsonparse_error_at("[1]\0", 4), 3);  /* NUL is not white space */
	deep = nested(REQUEST_JSON_DEPTH_MAX);
	CHECK_INT(error_at(deep), -1);
	free(deep);
	deep = nested(REQUEST_JSON_DEPTH_MAX + 1);
	CHECK(error_at(deep) >= 0);
	free(deep);
}

static void
test_jsonparse_nul_escapes(void)
{
	const char *text = "{\"a\":\"x\\u0000y\",\"b\":\"\\\\u0000\"}";
	struct jsonparse jp;
	const cJSON *a, *b;
	char *printed;

	CHECK(jsonparse_text(&jp, text, strlen(text)));
	CHECK(jp.had_nul);
	a = cJSON_GetObjectItemCaseSensitive(jp.root, "a");
	b = cJSON_GetObjectItemCaseSensitive(jp.root, "b");
	CHECK(cJSON_IsString(a) && strlen(a->valuestring) == 6); /* x, the stand-in, y */
	CHECK(cJSON_IsString(a) && jsonparse_has_nul(&jp, a->valuestring));
	/* An escaped backslash before u0000 is no NUL. */
	CHECK_STR(cJSON_IsString(b) ? b->valuestring : NULL, "\\u0000");
	CHECK(cJSON_IsString(b) && !jsonparse_has_nul(&jp, b->valuestring));
	printed = cJSON_PrintUnformatted(jp.root);
	jbuf_free(&jb);
	jsonparse_add_repaired(&jp, &jb, printed);
	CHECK_STR(jb.data, "{\"a\":\"x\\u0000y\",\"b\":\"\\\\u0000\"}");
	free(printed);
	jsonparse_free(&jp);

	CHECK(jsonparse_text(&jp, "\"plain\"", 7));
	CHECK(!jp.had_nul && !jsonparse_has_nul(&jp, "plain"));
	jsonparse_free(&jp);

	CHECK(!jsonparse_text(&jp, "[1,]", 4));
	CHECK(jp.root == NULL && jp.error_at == 3);
	CHECK_STR(jp.error, "Invalid JSON");
	jbuf_free(&jb);
}

/* Duplicate keys: the last value at the first one's place, at every depth (Python's json.loads). */
static void
test_jsonparse_duplicates(void)
{
	const char *text = "{\"a\":1,\"b\":{\"x\":1,\"x\":[{\"y\":1,\"y\":2}]},\"a\":2,\"c\":0,\"a\":3}";
	struct jsonparse jp;
	char *printed;

	CHECK(jsonparse_text(&jp, text, strlen(text)));
	printed = cJSON_PrintUnformatted(jp.root);
	CHECK_STR(printed, "{\"a\":3,\"b\":{\"x\":[{\"y\":2}]},\"c\":0}");
	free(printed);
	jsonparse_free(&jp);
	CHECK(jsonparse_text(&jp, "{\"k\":1,\"K\":2}", 13));
	CHECK_INT(cJSON_GetArraySize(jp.root), 2);  /* keys are case-sensitive */
	jsonparse_free(&jp);
}

/* ---- body validation (validate.c) ---- */

static struct http_request vreq;
static struct validation v;

/* A fresh validation of a request with this Content-Type and body. */
static void
new_request(const char *content_type, const char *body)
{
	validate_free(&v);
	v = (struct validation){ 0 };
	vreq.content_type = content_type;
	vreq.body = (char *)body;
	vreq.body_len = strlen(body);
}

static bool
execute_body(const char *content_type, const char *body, struct execute_request *x)
{
	new_request(content_type, body);
	*x = (struct execute_request){ 0 };
	return validate_execute(&v, &vreq, x);
}

static bool
playbook_body(const char *body, struct playbook_request *r)
{
	new_request("application/json", body);
	*r = (struct playbook_request){ 0 };
	return validate_playbook(&v, &vreq, r);
}

/* The 422 body as the API sends it. */
static const char *
detail(void)
{
	jbuf_free(&jb);
	validate_detail(&v, &jb);
	return jb.data;
}

/* One execute body that must be refused with exactly want as the 422 body. */
#define CHECK_EXECUTE_422(body, want) do { \
	struct execute_request x_; \
	CHECK(!execute_body("application/json", (body), &x_)); \
	CHECK_STR(detail(), (want)); \
	validate_execute_free(&x_); \
} while (0)

/* A body of n copies of item in args, as text (malloc'ed). */
static char *
args_body(const char *item, size_t n)
{
	struct jbuf b = { 0 };

	jbuf_puts(&b, "{\"executable_name\":\"a\",\"args\":[");
	for (size_t i = 0; i < n; i++)
		jbuf_printf(&b, "%s%s", i ? "," : "", item);
	jbuf_puts(&b, "]}");
	return b.data;
}

/* A 422 lists REQUEST_PROBLEMS_MAX problems, then one item counting the rest. */
static void
test_validate_problems_capped(void)
{
	struct execute_request x;
	char *body = args_body("1", REQUEST_PROBLEMS_MAX + 50);
	cJSON *parsed;
	const cJSON *items, *last;

	CHECK(!execute_body("application/json", body, &x));
	CHECK_INT(v.count, REQUEST_PROBLEMS_MAX + 50);
	parsed = cJSON_Parse(detail());
	items = cJSON_GetObjectItem(parsed, "detail");
	CHECK_INT(cJSON_GetArraySize(items), REQUEST_PROBLEMS_MAX + 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "type")),
	    "string_type");
	last = cJSON_GetArrayItem(items, REQUEST_PROBLEMS_MAX);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(last, "type")), "too_many_errors");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(last, "msg")),
	    "Too many errors: 50 more not shown");
	CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "ctx"),
	    "omitted")), 50);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(last, "input")));
	cJSON_Delete(parsed);
	validate_execute_free(&x);
	free(body);

	/* Exactly at the cap: every problem listed, no extra item. */
	body = args_body("1", REQUEST_PROBLEMS_MAX);
	CHECK(!execute_body("application/json", body, &x));
	parsed = cJSON_Parse(detail());
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(parsed, "detail")), REQUEST_PROBLEMS_MAX);
	cJSON_Delete(parsed);
	validate_execute_free(&x);
	free(body);
}

/* More than REQUEST_JSON_VALUES_MAX values: refused by the scan, before cJSON builds a tree. */
static void
test_validate_values_capped(void)
{
	struct execute_request x;
	/* The body object, its two members' values and the args: 3 + n values. */
	char *body = args_body("\"s\"", REQUEST_JSON_VALUES_MAX - 3);

	CHECK(execute_body("application/json", body, &x));
	CHECK_INT(x.nargs, REQUEST_JSON_VALUES_MAX - 3);
	validate_execute_free(&x);
	free(body);
	body = args_body("\"s\"", REQUEST_JSON_VALUES_MAX - 2);
	CHECK(!execute_body("application/json", body, &x));
	CHECK(v.json.root == NULL);
	CHECK(strstr(detail(), "\"type\":\"json_invalid\"") != NULL);
	CHECK(strstr(detail(), "\"error\":\"Too many values: at most 65536\"") != NULL);
	validate_execute_free(&x);
	free(body);
}

static void
test_validate_execute_valid(void)
{
	struct execute_request x;

	CHECK(execute_body("application/json; charset=utf-8",
	    "{\"executable_name\":\"prog\",\"args\":[\"a\",\"\"],\"callback\":\"https://h:1/cb?q\","
	    "\"is_async\":false}", &x));
	CHECK_INT(v.count, 0);
	CHECK_STR(x.name, "prog");
	CHECK_INT(x.nargs, 2);
	CHECK_STR(x.nargs == 2 ? x.args[0] : NULL, "a");
	CHECK_STR(x.nargs == 2 ? x.args[1] : NULL, "");
	CHECK_STR(x.callback, "https://h:1/cb?q");
	CHECK(!x.is_async);
	validate_execute_free(&x);

	/* Defaults: no args, no callback, async; the last of duplicate members counts. */
	CHECK(execute_body("application/json", "{\"executable_name\":\"a\",\"executable_name\":\"b\","
	    "\"callback\":null}", &x));
	CHECK_STR(x.name, "b");
	CHECK_INT(x.nargs, 0);
	CHECK(x.callback == NULL);
	CHECK(x.is_async);
	validate_execute_free(&x);

	/* pydantic's lax booleans. */
	CHECK(execute_body("application/json", "{\"executable_name\":\"a\",\"is_async\":\"OFF\"}", &x));
	CHECK(!x.is_async);
	CHECK(execute_body("application/json", "{\"executable_name\":\"a\",\"is_async\":1}", &x));
	CHECK(x.is_async);
	CHECK(execute_body("application/json", "{\"executable_name\":\"a\",\"is_async\":\"n\"}", &x));
	CHECK(!x.is_async);
}

static void
test_validate_body_shape(void)
{
	struct execute_request x;

	CHECK(!execute_body(NULL, "{\"executable_name\":\"a\"}", &x));
	CHECK_STR(detail(), "{\"detail\":[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],"
	    "\"msg\":\"Input should be a valid dictionary or object to extract fields from\","
	    "\"input\":\"{\\\"executable_name\\\":\\\"a\\\"}\"}]}");
	CHECK(!execute_body("application/jsonx", "{}", &x));
	CHECK_INT(v.count, 1);
	CHECK_EXECUTE_422("", "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\"],"
	    "\"msg\":\"Field required\",\"input\":null}]}");
	CHECK_EXECUTE_422("{\"executable_name\":01}", "{\"detail\":[{\"type\":\"json_invalid\","
	    "\"loc\":[\"body\",20],\"msg\":\"JSON decode error\",\"input\":{},"
	    "\"ctx\":{\"error\":\"Invalid JSON\"}}]}");
	CHECK_EXECUTE_422("[1]", "{\"detail\":[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],"
	    "\"msg\":\"Input should be a valid dictionary or object to extract fields from\","
	    "\"input\":[1]}]}");
}

static void
test_validate_execute_fields(void)
{
	CHECK_EXECUTE_422("{\"args\":[]}", "{\"detail\":[{\"type\":\"missing\","
	    "\"loc\":[\"body\",\"executable_name\"],\"msg\":\"Field required\",\"input\":{\"args\":[]}}]}");
	CHECK_EXECUTE_422("{\"executable_name\":5}", "{\"detail\":[{\"type\":\"string_type\","
	    "\"loc\":[\"body\",\"executable_name\"],\"msg\":\"Input should be a valid string\",\"input\":5}]}");
	CHECK_EXECUTE_422("{\"executable_name\":\"a\",\"args\":\"x\"}", "{\"detail\":[{\"type\":\"list_type\","
	    "\"loc\":[\"body\",\"args\"],\"msg\":\"Input should be a valid list\",\"input\":\"x\"}]}");
	CHECK_EXECUTE_422("{\"executable_name\":\"a\",\"args\":[\"x\",1,null]}",
	    "{\"detail\":[{\"type\":\"string_type\",\"loc\":[\"body\",\"args\",1],"
	    "\"msg\":\"Input should be a valid string\",\"input\":1},{\"type\":\"string_type\","
	    "\"loc\":[\"body\",\"args\",2],\"msg\":\"Input should be a valid string\",\"input\":null}]}");
	CHECK_EXECUTE_422("{\"executable_name\":\"a\\u0000b\"}", "{\"detail\":[{\"type\":\"value_error\","
	    "\"loc\":[\"body\",\"executable_name\"],\"msg\":\"Value error, string must not hold a NUL "
	    "character\",\"input\":\"a\\u0000b\"}]}");
	CHECK_EXECUTE_422("{\"executable_name\":\"a\",\"is_async\":\"maybe\"}", "{\"detail\":[{\"type\":"
	    "\"bool_parsing\",\"loc\":[\"body\",\"is_async\"],\"msg\":\"Input should be a valid boolean, "
	    "unable to interpret input\",\"input\":\"maybe\"}]}");
	CHECK_EXECUTE_422("{\"executable_name\":\"a\",\"is_async\":[]}", "{\"detail\":[{\"type\":"
	    "\"bool_type\",\"loc\":[\"body\",\"is_async\"],\"msg\":\"Input should be a valid boolean\","
	    "\"input\":[]}]}");
	/* Every problem is listed, in the model's field order. */
	CHECK_EXECUTE_422("{\"is_async\":2,\"callback\":3,\"args\":{},\"executable_name\":[]}",
	    "{\"detail\":[{\"type\":\"string_type\",\"loc\":[\"body\",\"executable_name\"],"
	    "\"msg\":\"Input should be a valid string\",\"input\":[]},{\"type\":\"list_type\","
	    "\"loc\":[\"body\",\"args\"],\"msg\":\"Input should be a valid list\",\"input\":{}},"
	    "{\"type\":\"url_type\",\"loc\":[\"body\",\"callback\"],\"msg\":\"URL input should be a "
	    "string or URL\",\"input\":3},{\"type\":\"bool_parsing\",\"loc\":[\"body\",\"is_async\"],"
	    "\"msg\":\"Input should be a valid boolean, unable to interpret input\",\"input\":2}]}");
}

static void
test_validate_safe_names(void)
{
	static const char *const unsafe[] = { "a b", "a;b", "$(id)", "a\\b", "%2e%2e", "\u00e9",
		"a\\nb", "*", "~root", "a:b", "" };
	struct execute_request x;
	struct playbook_request r;
	char body[128], want[512];

	CHECK(execute_body("application/json", "{\"executable_name\":\"Az09._/-\"}", &x));
	validate_execute_free(&x);
	CHECK_EXECUTE_422("{\"executable_name\":\"a b\"}", "{\"detail\":[{\"type\":\"value_error\","
	    "\"loc\":[\"body\",\"executable_name\"],\"msg\":\"Value error, Name 'a b' contains "
	    "characters that are not allowed.\",\"input\":\"a b\",\"ctx\":{\"error\":{}}}]}");
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
		snprintf(body, sizeof(body), "{\"executable_name\":\"%s\"}", unsafe[i]);
		CHECK(!execute_body("application/json", body, &x));
		CHECK_INT(v.count, 1);
		validate_execute_free(&x);
		snprintf(body, sizeof(body), "{\"playbook_name\":\"%s\",\"inventory\":\"h\\n\"}", unsafe[i]);
		CHECK(!playbook_body(body, &r));
		CHECK(v.count == 1 && strstr(detail(), "\"loc\":[\"body\",\"playbook_name\"]") &&
		    strstr(detail(), "contains characters that are not allowed."));
		validate_playbook_free(&r);
	}
	/* A bad name is one problem among the others, in field order. */
	CHECK(!execute_body("application/json", "{\"executable_name\":\"a b\",\"args\":5}", &x));
	CHECK_INT(v.count, 2);
	validate_execute_free(&x);
	snprintf(want, sizeof(want), "{\"detail\":[{\"type\":\"value_error\",\"loc\":[\"path\","
	    "\"filename\"],\"msg\":\"Value error, Name '../a b' contains characters that are not "
	    "allowed.\",\"input\":\"../a b\",\"ctx\":{\"error\":{}}}]}");
	validate_free(&v);
	v = (struct validation){ 0 };
	CHECK(validate_safe_name(&v, "path", "filename", "../ok/name"));
	CHECK(!validate_safe_name(&v, "path", "filename", "../a b"));
	CHECK_STR(detail(), want);
}

/* The type and message of the one problem a callback URL has, "" when it has none. */
static const char *
url_verdict(const char *url)
{
	struct execute_request x;
	cJSON *body = cJSON_CreateObject(), *item;
	char *text;
	static char verdict[256];

	cJSON_AddStringToObject(body, "executable_name", "a");
	cJSON_AddStringToObject(body, "callback", url);
	text = cJSON_PrintUnformatted(body);
	*verdict = '\0';
	if (!execute_body("application/json", text, &x) && v.count == 1) {
		cJSON *items = cJSON_Parse(detail());

		item = cJSON_GetArrayItem(cJSON_GetObjectItem(items, "detail"), 0);
		snprintf(verdict, sizeof(verdict), "%s: %s",
		    cJSON_GetStringValue(cJSON_GetObjectItem(item, "type")),
		    cJSON_GetStringValue(cJSON_GetObjectItem(item, "msg")));
		cJSON_Delete(items);
	} else if (v.count > 0) {
		snprintf(verdict, sizeof(verdict), "%zu problems", v.count);
	}
	validate_execute_free(&x);
	free(text);
	cJSON_Delete(body);
	return verdict;
}

static void
test_validate_urls(void)
{
	char *longest = malloc(REQUEST_URL_MAX_CHARS + 2);

	CHECK_STR(url_verdict("http://host"), "");
	CHECK_STR(url_verdict("HTTPS://user@host:8/p#f"), "");
	CHECK_STR(url_verdict("ftp://host/"), "url_scheme: URL scheme should be 'http' or 'https'");
	CHECK_STR(url_verdict("/relative"), "url_parsing: Input should be a valid URL, relative URL without a base");
	CHECK_STR(url_verdict("1http://host"), "url_parsing: Input should be a valid URL, relative URL without a base");
	CHECK_STR(url_verdict("http://"), "url_parsing: Input should be a valid URL, empty host");
	CHECK_STR(url_verdict("http://user@/p"), "url_parsing: Input should be a valid URL, empty host");
	CHECK_STR(url_verdict("http://:80"), "url_parsing: Input should be a valid URL, empty host");
	CHECK_STR(url_verdict("http://ho st"), "url_parsing: Input should be a valid URL, invalid character");
	CHECK_STR(url_verdict("http://h\x7f"), "url_parsing: Input should be a valid URL, invalid character");
	CHECK_STR(url_verdict("http://h\tx"), "url_parsing: Input should be a valid URL, invalid character");
	memcpy(longest, "http://h/", 9);
	memset(longest + 9, 'a', REQUEST_URL_MAX_CHARS - 9);
	longest[REQUEST_URL_MAX_CHARS] = '\0';
	CHECK_STR(url_verdict(longest), "");
	longest[REQUEST_URL_MAX_CHARS] = 'a', longest[REQUEST_URL_MAX_CHARS + 1] = '\0';
	CHECK_STR(url_verdict(longest), "url_too_long: URL should have at most 2083 characters");
	free(longest);
}

/* One playbook body that must be refused with exactly want as the 422 body. */
#define CHECK_PLAYBOOK_422(body, want) do { \
	struct playbook_request r_; \
	CHECK(!playbook_body((body), &r_)); \
	CHECK_STR(detail(), (want)); \
	validate_playbook_free(&r_); \
} while (0)

static void
test_playbook_extra_vars(void)
{
	cJSON *client = cJSON_Parse("{\"job_id\":\"mine\",\"a\":1,\"job_id\":\"again\","
	    "\"job_files_dir\":\"/etc\"}");
	char *yaml;

	config.job_files_root = NULL;
	yaml = playbook_extra_vars(NULL, FILES_JOB);
	CHECK_STR(yaml, "{? !unsafe \"job_id\" : !unsafe \"" FILES_JOB "\"}\n");
	free(yaml);
	config.job_files_root = "/";
	yaml = playbook_extra_vars(client, FILES_JOB);
	CHECK_STR(yaml, "{? !unsafe \"a\" : 1, ? !unsafe \"job_id\" : !unsafe \"" FILES_JOB "\", "
	    "? !unsafe \"job_files_dir\" : !unsafe \"/" FILES_JOB "\"}\n");
	free(yaml);
	config.job_files_root = NULL;
	cJSON_Delete(client);
}

static void
test_validate_playbook_valid(void)
{
	struct playbook_request r;

	CHECK(playbook_body("{\"playbook_name\":\"p.yml\",\"inventory\":{\"all\":{\"hosts\":"
	    "{\"h\":null}}},\"extra_vars\":{\"v\":[1]},\"progress\":\"http://h/p\","
	    "\"progress_is_incremental\":false}", &r));
	CHECK_STR(r.name, "p.yml");
	/* As YAML, every string !unsafe (yaml.c). */
	CHECK_STR(r.inventory, "{? !unsafe \"all\" : {? !unsafe \"hosts\" : {? !unsafe \"h\" : null}}}\n");
	CHECK(r.extra_vars && cJSON_IsObject(r.extra_vars));
	{
		/* As YAML once the job has its id, with lso's job_id and job_files_dir over the client's. */
		char *yaml = playbook_extra_vars(r.extra_vars, FILES_JOB);

		CHECK_STR(yaml, "{? !unsafe \"v\" : [1], ? !unsafe \"job_id\" : !unsafe \"" FILES_JOB "\"}\n");
		free(yaml);
	}
	CHECK_STR(r.progress, "http://h/p");
	CHECK(r.callback == NULL);
	CHECK(!r.incremental);
	validate_playbook_free(&r);

	CHECK(playbook_body("{\"playbook_name\":\"p.yml\",\"inventory\":\"[web]\\nh1 # x\\n\"}", &r));
	/* ini text, converted (inventory.c), as YAML. */
	CHECK_STR(r.inventory, "{? !unsafe \"ungrouped\" : {}, ? !unsafe \"web\" : "
	    "{? !unsafe \"hosts\" : {? !unsafe \"h1\" : {}}}}\n");
	CHECK_STR(detail(), "{\"detail\":[]}");
	CHECK(r.extra_vars == NULL);
	CHECK(r.incremental);
	validate_playbook_free(&r);
	test_playbook_extra_vars();
}

static void
test_validate_playbook_fields(void)
{
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\"}", "{\"detail\":[{\"type\":\"missing\","
	    "\"loc\":[\"body\",\"inventory\"],\"msg\":\"Field required\",\"input\":{\"playbook_name\":\"p\"}}]}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":7}", "{\"detail\":[{\"type\":"
	    "\"dict_type\",\"loc\":[\"body\",\"inventory\",\"dict[str,any]\"],\"msg\":\"Input should be a "
	    "valid dictionary\",\"input\":7},{\"type\":\"string_type\",\"loc\":[\"body\",\"inventory\","
	    "\"str\"],\"msg\":\"Input should be a valid string\",\"input\":7}]}");
	/* A field of the wrong type: the list form, and the inventory is not looked at (upstream). */
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{},\"extra_vars\":[]}",
	    "{\"detail\":[{\"type\":\"dict_type\",\"loc\":[\"body\",\"extra_vars\"],"
	    "\"msg\":\"Input should be a valid dictionary\",\"input\":[]}]}");
	/* An inventory Ansible would refuse: upstream 5.x's structured detail. */
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{}}", "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"unparsable\",\"messages\":[\"Parsed empty YAML file\"],\"parsed_groups\":[\"all\",\"ungrouped\"],\"parsed_hosts\":[]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{\"plugin\":\"x\"}}",
	    "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"unparsable\",\"messages\":[\"Plugin configuration YAML file, not YAML inventory\"],\"parsed_groups\":[\"all\",\"ungrouped\"],\"parsed_hosts\":[]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{\"g\":{\"hosts\":[1]}}}",
	    "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"unparsable\",\"messages\":[\"Invalid \\\"hosts\\\" entry for \\\"g\\\" group, requires a dictionary, found \\\"<class 'list'>\\\" instead.\"],\"parsed_groups\":[\"all\",\"ungrouped\"],\"parsed_hosts\":[]}}");
	/* Hosts read before the bad group: rejected_with_warnings, and what was read. */
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{\"g1\":{\"hosts\":{\"b\":null,\"a\":{}},"
	    "\"children\":{\"c\":{\"hosts\":{\"d\":null}}}},\"g2\":{\"hosts\":[1]},\"g3\":{\"hosts\":{\"e\":null}}}}",
	    "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"rejected_with_warnings\",\"messages\":"
	    "[\"Invalid \\\"hosts\\\" entry for \\\"g2\\\" group, requires a dictionary, found \\\"<class 'list'>\\\" "
	    "instead.\"],\"parsed_groups\":[\"all\",\"c\",\"g1\",\"ungrouped\"],\"parsed_hosts\":[\"a\",\"b\",\"d\"]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":\"h1\\n[web]\\nw1\\n[bad group]\\nh\"}",
	    "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"rejected_with_warnings\",\"messages\":"
	    "[\"Invalid section entry: '[bad group]'. Please make sure that there are no spaces or other "
	    "characters in the group name\"],\"parsed_groups\":[\"all\",\"ungrouped\",\"web\"],"
	    "\"parsed_hosts\":[\"h1\",\"w1\"]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{\"g\":{\"children\":{\"c\":"
	    "{\"hosts\":{\"h\":\"s\"}}}}}}", "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"unparsable\",\"messages\":[\"Invalid variables for host \\\"h\\\" in group \\\"c\\\", requires a dictionary, found \\\"<class 'str'>\\\" instead.\"],\"parsed_groups\":[\"all\",\"ungrouped\"],\"parsed_hosts\":[]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":\"[bad group]\\nh\"}",
	    "{\"detail\":{\"error\":\"invalid_inventory\",\"reason\":\"unparsable\",\"messages\":[\"Invalid section entry: '[bad group]'. Please make sure that there are no spaces or other characters in the group name\"],\"parsed_groups\":[\"all\",\"ungrouped\"],\"parsed_hosts\":[]}}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":{\"all\":{\"vars\":{\"k\":\"\\u0000\"}}}}",
	    "{\"detail\":[{\"type\":\"value_error\",\"loc\":[\"body\",\"inventory\"],\"msg\":\"Value "
	    "error, string must not hold a NUL character\",\"input\":{\"all\":{\"vars\":{\"k\":"
	    "\"\\u0000\"}}}}]}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":\"h\",\"extra_vars\":{\"k\":\"\\u0000\"}}",
	    "{\"detail\":[{\"type\":\"value_error\",\"loc\":[\"body\",\"extra_vars\"],\"msg\":\"Value "
	    "error, string must not hold a NUL character\",\"input\":{\"k\":\"\\u0000\"}}]}");
	CHECK_PLAYBOOK_422("{\"playbook_name\":\"p\",\"inventory\":\"h\",\"progress\":\"x\","
	    "\"progress_is_incremental\":\"x\"}", "{\"detail\":[{\"type\":\"url_parsing\",\"loc\":"
	    "[\"body\",\"progress\"],\"msg\":\"Input should be a valid URL, relative URL without a base\","
	    "\"input\":\"x\"},{\"type\":\"bool_parsing\",\"loc\":[\"body\",\"progress_is_incremental\"],"
	    "\"msg\":\"Input should be a valid boolean, unable to interpret input\",\"input\":\"x\"}]}");
}

static void
test_validate_inventory_depth(void)
{
	struct jbuf inv = { 0 };
	struct playbook_request r;

	/* Groups nested as deep as the limit pass, one deeper are refused. */
	for (int depth = REQUEST_INVENTORY_DEPTH_MAX; depth <= REQUEST_INVENTORY_DEPTH_MAX + 1; depth++) {
		inv.len = 0;
		jbuf_puts(&inv, "{\"playbook_name\":\"p\",\"inventory\":{\"g\":");
		for (int i = 0; i < depth; i++)
			jbuf_puts(&inv, "{\"children\":{\"g\":");
		jbuf_puts(&inv, "{}");
		for (int i = 0; i < depth; i++)
			jbuf_puts(&inv, "}}");
		jbuf_puts(&inv, "}}");
		if (depth == REQUEST_INVENTORY_DEPTH_MAX) {
			CHECK(playbook_body(inv.data, &r));
		} else {
			CHECK(!playbook_body(inv.data, &r));
			CHECK(detail() && strstr(jb.data, "\"messages\":[\"Inventory groups nest too deep.\"]"));
		}
		validate_playbook_free(&r);
	}
	jbuf_free(&inv);
	validate_free(&v);
	jbuf_free(&jb);
}

/* ---- a job's files (files.c) ---- */

static void
test_files_job_id(void)
{
	job_id id;

	CHECK(files_parse_job_id(FILES_JOB, id));
	CHECK_STR(id, FILES_JOB);
	CHECK(files_parse_job_id("0C8E0000-0000-4000-8000-0000000000F1", id));
	CHECK_STR(id, FILES_JOB);
	CHECK(files_parse_job_id("0c8e0000000040008000" "0000000000f1", id));
	CHECK_STR(id, FILES_JOB);
	CHECK(files_parse_job_id("{" FILES_JOB "}", id));
	CHECK(files_parse_job_id("urn:uuid:" FILES_JOB, id));
	CHECK_STR(id, FILES_JOB);
	CHECK(!files_parse_job_id("", id));
	CHECK(!files_parse_job_id("..", id));
	CHECK(!files_parse_job_id("0c8e0000-0000-4000-8000-0000000000f", id));
	CHECK(!files_parse_job_id("0c8e0000-0000-4000-8000-0000000000f1x", id));
	CHECK(!files_parse_job_id("0c8e0000-0000-4000-8000_0000000000f1", id));
	CHECK(!files_parse_job_id("0c8e0000-0000-4000-8000-0000000000g1", id));
	CHECK(!files_parse_job_id("../../../../../../../../etc/passwd00", id));
}

static void
test_files_decode(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "a.txt", "a.txt" }, { "sub%2Fb", "sub/b" }, { "sub%2fb", "sub/b" },
		{ "..%2F..%2Fx", "../../x" }, { "%2e%2e/x", "../x" }, { "a%20b", "a b" },
		{ "%zz", "%zz" }, { "%", "%" }, { "%2", "%2" }, { "a%00b", "a%00b" },
		{ "%252F", "%2F" }, { "%C3%A9", "\xc3\xa9" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = files_decode(cases[i].in, strlen(cases[i].in));

		CHECK_STR(got, cases[i].out);
		free(got);
	}
}

/*
 * tmp/jobfiles/<FILES_JOB>/{a.txt, sub/b.bin, sub/deep/c, in -> a.txt, out -> ../../secret,
 * abs -> <tmp>/secret, updir -> .., outdir -> <tmp>, gone -> ../../nowhere, fifo, emptydir/},
 * tmp/secret, tmp/jobfiles/<other job> -> tmp/outfolder (a job folder that is a link).
 */
static void
setup_job_files(void)
{
	char target[TREE_PATH_MAX];

	make_dir("jobfiles");
	make_dir("jobfiles/" FILES_JOB);
	make_dir("jobfiles/" FILES_JOB "/sub");
	make_dir("jobfiles/" FILES_JOB "/sub/deep");
	make_dir("jobfiles/" FILES_JOB "/emptydir");
	make_dir("outfolder");
	make_file("jobfiles/" FILES_JOB "/a.txt", 0644);
	make_file("jobfiles/" FILES_JOB "/sub/b.bin", 0644);
	make_file("jobfiles/" FILES_JOB "/sub/deep/c", 0644);
	make_file("secret", 0644);
	make_file("outfolder/kept", 0644);
	make_link("a.txt", "jobfiles/" FILES_JOB "/in");
	make_link("../../secret", "jobfiles/" FILES_JOB "/out");
	snprintf(target, sizeof(target), "%s/secret", tmp_dir);
	make_link(target, "jobfiles/" FILES_JOB "/abs");
	make_link("..", "jobfiles/" FILES_JOB "/updir");
	make_link(tmp_dir, "jobfiles/" FILES_JOB "/outdir");
	make_link("../../nowhere", "jobfiles/" FILES_JOB "/gone");
	make_link(tmp_dir, "jobfiles/0c8e0000-0000-4000-8000-0000000000f2");
	snprintf(target, sizeof(target), "%s/jobfiles/" FILES_JOB "/fifo", tmp_dir);
	mkfifo(target, 0600);
}

static enum outcome
open_job_file(const char *name)
{
	enum outcome found;
	off_t size;
	int fd = -1;

	found = files_open(FILES_JOB, name, &fd, &size);
	if (found == FILES_FOUND)
		close(fd);
	return found;
}

static void
check_job_file_names(void)
{
	CHECK_INT(open_job_file("a.txt"), FILES_FOUND);
	CHECK_INT(open_job_file("sub/b.bin"), FILES_FOUND);
	CHECK_INT(open_job_file("./sub//deep/c"), FILES_FOUND);
	CHECK_INT(open_job_file("sub/../a.txt"), FILES_FOUND);
	CHECK_INT(open_job_file("missing"), FILES_MISSING);
	CHECK_INT(open_job_file("sub"), FILES_MISSING);        /* a folder is not a file */
	CHECK_INT(open_job_file("fifo"), FILES_MISSING);       /* nor a FIFO (and no hang) */
	CHECK_INT(open_job_file("a.txt/x"), FILES_MISSING);
	/* Out, whether or not it exists, however it is spelled. */
	CHECK_INT(open_job_file("../x"), FILES_OUTSIDE);
	CHECK_INT(open_job_file(".."), FILES_OUTSIDE);
	CHECK_INT(open_job_file("sub/../../" FILES_JOB "/a.txt"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("/etc/passwd"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("/nonexistent"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("out"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("abs"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("updir/secret"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("outdir/secret"), FILES_OUTSIDE);
	CHECK_INT(open_job_file("gone"), FILES_OUTSIDE);
}

static void
test_files_open(void)
{
	config.job_files_root = NULL;
	CHECK_INT(open_job_file("a.txt"), FILES_MISSING);
	CHECK_INT(open_job_file("../x"), FILES_OUTSIDE);  /* decided before there is a folder */
	config.job_files_root = jobfiles_dir;
	check_job_file_names();
	CHECK_INT(open_job_file("in"), FILES_FOUND);      /* a link staying inside is followed */
	/* Kernels without openat2: a walk that follows no link at all. */
	resolve_without_openat2 = true;
	check_job_file_names();
	CHECK_INT(open_job_file("in"), FILES_OUTSIDE);
	resolve_without_openat2 = false;
	/* A job folder that is itself a link is no folder. */
	{
		off_t size;
		int fd;

		CHECK_INT(files_open("0c8e0000-0000-4000-8000-0000000000f2", "secret", &fd, &size),
		    FILES_MISSING);
	}
}

static void
test_files_list(void)
{
	jbuf_free(&jb);
	config.job_files_root = jobfiles_dir;
	CHECK_INT(files_list(FILES_JOB, &jb), FILES_LISTED);
	/* Regular files only, sorted; links, FIFOs and folders are not listed. */
	CHECK_STR(jb.data, "{\"job_id\":\"" FILES_JOB "\",\"files\":[\"a.txt\",\"sub/b.bin\","
	    "\"sub/deep/c\"]}");
	jbuf_free(&jb);
	CHECK_INT(files_list("0c8e0000-0000-4000-8000-0000000000f2", &jb), FILES_LISTED);
	CHECK_STR(jb.data, "{\"job_id\":\"0c8e0000-0000-4000-8000-0000000000f2\",\"files\":[]}");
	jbuf_free(&jb);
	CHECK_INT(files_list("0c8e0000-0000-4000-8000-0000000000f3", &jb), FILES_LISTED);
	CHECK_STR(jb.data, "{\"job_id\":\"0c8e0000-0000-4000-8000-0000000000f3\",\"files\":[]}");
	jbuf_free(&jb);
	config.job_files_root = NULL;
	CHECK_INT(files_list(FILES_JOB, &jb), FILES_LISTED);
	CHECK(strstr(jb.data, "\"files\":[]") != NULL);
	jbuf_free(&jb);
}

static bool
exists_in_tmp(const char *rel)
{
	char path[TREE_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, rel);
	return lstat(path, &st) == 0;
}

static void
test_files_delete(void)
{
	char dir[TREE_PATH_MAX];

	config.job_files_root = jobfiles_dir;
	CHECK_INT(files_delete(FILES_JOB), FILES_DELETED);
	CHECK(!exists_in_tmp("jobfiles/" FILES_JOB));
	/* Nothing the links pointed at went with it. */
	CHECK(exists_in_tmp("secret") && exists_in_tmp("outfolder/kept") && exists_in_tmp("jobfiles"));
	/* A job folder that is a link: the link goes, what it points to stays. */
	CHECK_INT(files_delete("0c8e0000-0000-4000-8000-0000000000f2"), FILES_DELETED);
	CHECK(!exists_in_tmp("jobfiles/0c8e0000-0000-4000-8000-0000000000f2"));
	CHECK(exists_in_tmp("secret") && exists_in_tmp("outfolder/kept"));
	CHECK_INT(files_delete(FILES_JOB), FILES_DELETED);  /* none: 204 all the same */
	config.job_files_root = NULL;
	CHECK_INT(files_delete(FILES_JOB), FILES_DELETED);
	CHECK(files_job_dir(FILES_JOB, dir, sizeof(dir)) == false);
	config.job_files_root = jobfiles_dir;
	CHECK(files_job_dir(FILES_JOB, dir, sizeof(dir)));
	CHECK(strstr(dir, "/jobfiles/" FILES_JOB) && dir[0] == '/');
	config.job_files_root = NULL;
}

/* ---- settings (config.c) ---- */

static const char *const setting_names[] = {
	"EXECUTABLE_TIMEOUT_SEC", "REQUEST_TIMEOUT_SEC", "MAX_THREAD_POOL_WORKERS",
	"LSO_MAX_BODY_BYTES", "LSO_MAX_OUTPUT_BYTES", "LSO_READ_TIMEOUT_SEC", "LSO_CALLBACK_RETRIES",
	"ANSIBLE_PLAYBOOK_TIMEOUT_SEC", "LSO_PLAYBOOK_MAX_SEC", "ANSIBLE_PLAYBOOKS_ROOT_DIR",
	"ANSIBLE_PLAYBOOK", "EXECUTABLES_ROOT_DIR", "LSO_STATE_DIR", "STATE_DIRECTORY",
	"LSO_API_KEY", "CREDENTIALS_DIRECTORY", "LSO_OAUTH2_ACTIVE", "JOB_FILES_ROOT_DIR",
	"LSO_DOCS_ASSETS_URL", "LSO_HOST_TAG", "LSO_RUN_USER",
};

static void
clear_settings(void)
{
	for (size_t i = 0; i < sizeof(setting_names) / sizeof(setting_names[0]); i++)
		unsetenv(setting_names[i]);
}

/* The numeric settings, in the order of setting_names, against want. */
static void
check_numbers(const long long want[9])
{
	long long got[9] = { config.executable_timeout_sec, config.callback_timeout_sec,
		config.slot_count, (long long)config.max_body_bytes, (long long)config.max_output_bytes,
		config.read_timeout_sec, config.callback_retries, config.playbook_idle_sec,
		config.playbook_max_sec };

	for (int i = 0; i < 9; i++)
		check(got[i] == want[i], __FILE__, __LINE__, "%s: expected %lld, got %lld",
		    setting_names[i], want[i], got[i]);
}

static void
test_config_defaults(void)
{
	static const long long defaults[9] = { 300, 10, 0, 1048576, 16777216, 10, 5, 300, 86400 };

	clear_settings();
	CHECK(config_load() == NULL);
	check_numbers(defaults);
	CHECK(config.playbooks_root == NULL && config.ansible_playbook == NULL &&
	    config.executables_root == NULL);
	CHECK_STR(config.state_dir, "/var/lib/lso");
	CHECK(config.job_files_root == NULL);
	CHECK_STR(config.docs_assets_url, "https://cdn.jsdelivr.net/npm");
	CHECK(!config.oauth2_active);
	CHECK(config.run_user == NULL);
	setenv("LSO_RUN_USER", "", 1);  /* empty: unset, programs run as lso's user */
	CHECK(config_load() == NULL);
	CHECK(config.run_user == NULL);
	clear_settings();
}

static void
test_config_each_variable_its_field(void)
{
	static const long long one_to_nine[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	char value[4];

	clear_settings();
	for (int i = 0; i < 9; i++) {
		snprintf(value, sizeof(value), "%lld", one_to_nine[i]);
		setenv(setting_names[i], value, 1);
	}
	setenv("ANSIBLE_PLAYBOOKS_ROOT_DIR", "/pb", 1);
	setenv("ANSIBLE_PLAYBOOK", "/ap", 1);
	setenv("EXECUTABLES_ROOT_DIR", "/ex", 1);
	setenv("STATE_DIRECTORY", "/sd", 1);
	setenv("LSO_API_KEY", "tok", 1);
	setenv("JOB_FILES_ROOT_DIR", "/jf", 1);
	setenv("LSO_DOCS_ASSETS_URL", "http://docs", 1);
	setenv("LSO_RUN_USER", "lso-run", 1);
	CHECK(config_load() == NULL);
	check_numbers(one_to_nine);
	CHECK_STR(config.run_user, "lso-run");
	CHECK_STR(config.playbooks_root, "/pb");
	CHECK_STR(config.ansible_playbook, "/ap");
	CHECK_STR(config.executables_root, "/ex");
	CHECK_STR(config.state_dir, "/sd");  /* $STATE_DIRECTORY when LSO_STATE_DIR is unset */
	setenv("LSO_STATE_DIR", "/lsd", 1);
	CHECK(config_load() == NULL);
	CHECK_STR(config.state_dir, "/lsd");
	CHECK_STR(config.job_files_root, "/jf");
	CHECK_STR(config.docs_assets_url, "http://docs");
	clear_settings();
}

/* config_auth after loading the settings: its verdict, the key, and why (NULL when fine). */
static enum config_auth
auth_now(const char **key, const char **why)
{
	*key = *why = NULL;
	if (config_load() != NULL)
		return (enum config_auth)-1;
	return config_auth(key, why);
}

static void
write_credential(const char *dir, const char *text, size_t len)
{
	char path[TREE_PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/lso-api-key", dir);
	unlink(path);
	rmdir(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		perror("write_credential");
	close(fd);
}

static void
test_config_auth(void)
{
	static const char *const on[] = { "true", "TRUE", "1", "yes", "On", "t", "Y" };
	static const char *const off[] = { "false", "0", "no", "OFF", "f", "n", "" };
	char dir[] = "/tmp/lso-unit-cred-XXXXXX", path[TREE_PATH_MAX], *big;
	const char *key, *why;

	clear_settings();
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/lso-api-key", dir);
	/* A key alone changes nothing (as upstream). */
	setenv("LSO_API_KEY", "k3y", 1);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_OFF);
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		setenv("LSO_OAUTH2_ACTIVE", off[i], 1);
		CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_OFF);
	}
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		setenv("LSO_OAUTH2_ACTIVE", on[i], 1);
		CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
		CHECK_STR(key, "k3y");
	}
	setenv("LSO_OAUTH2_ACTIVE", "maybe", 1);
	CHECK_STR(config_load(), "LSO_OAUTH2_ACTIVE");
	setenv("LSO_OAUTH2_ACTIVE", "true", 1);
	/* On without a key: broken, never open. */
	unsetenv("LSO_API_KEY");
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);
	CHECK(key == NULL && why && strstr(why, "LSO_API_KEY"));
	setenv("LSO_API_KEY", "", 1);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);  /* no file there */
	write_credential(dir, "s3cret\n", 7);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
	CHECK_STR(key, "s3cret");
	write_credential(dir, "s3cret\r\nsecond line\n", 21);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
	CHECK_STR(key, "s3cret");
	write_credential(dir, "s3cret", 6);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
	CHECK_STR(key, "s3cret");
	/* LSO_API_KEY, when set, is the key. */
	setenv("LSO_API_KEY", "from-env", 1);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
	CHECK_STR(key, "from-env");
	unsetenv("LSO_API_KEY");
	write_credential(dir, "", 0);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);
	CHECK(why && strstr(why, "empty"));
	write_credential(dir, "\ns3cret\n", 8);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);
	CHECK(why && strstr(why, "blank line"));
	big = malloc(API_KEY_MAX_BYTES + 2);
	memset(big, 'k', API_KEY_MAX_BYTES + 1);
	write_credential(dir, big, API_KEY_MAX_BYTES);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_ON);
	CHECK_INT(strlen(key), API_KEY_MAX_BYTES);
	write_credential(dir, big, API_KEY_MAX_BYTES + 1);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);  /* never cut to a shorter key */
	free(big);
	unlink(path);
	mkdir(path, 0700);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);
	CHECK(why && strstr(why, "not a regular file"));
	rmdir(path);
	mkfifo(path, 0600);
	CHECK_INT(auth_now(&key, &why), CONFIG_AUTH_BROKEN);  /* and no hang */
	unlink(path);
	rmdir(dir);
	clear_settings();
}

static void
test_config_bounds(void)
{
	static const struct { const char *name, *value; bool ok; } cases[] = {
		{ "EXECUTABLE_TIMEOUT_SEC", "0", false },
		{ "EXECUTABLE_TIMEOUT_SEC", "31622400", true },   /* a leap year of seconds */
		{ "EXECUTABLE_TIMEOUT_SEC", "31622401", false },
		{ "EXECUTABLE_TIMEOUT_SEC", "-1", false },
		{ "EXECUTABLE_TIMEOUT_SEC", "5s", false },
		{ "EXECUTABLE_TIMEOUT_SEC", "", true },           /* empty: the default */
		{ "MAX_THREAD_POOL_WORKERS", "0", true },
		{ "MAX_THREAD_POOL_WORKERS", "4096", true },
		{ "MAX_THREAD_POOL_WORKERS", "4097", false },
		{ "LSO_MAX_BODY_BYTES", "1073741824", true },
		{ "LSO_MAX_BODY_BYTES", "1073741825", false },
		{ "LSO_CALLBACK_RETRIES", "0", true },
		{ "LSO_CALLBACK_RETRIES", "31", false },
		{ "LSO_PLAYBOOK_MAX_SEC", "99999999999999999999", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *bad;

		clear_settings();
		setenv(cases[i].name, cases[i].value, 1);
		bad = config_load();
		check(cases[i].ok ? bad == NULL : bad && strcmp(bad, cases[i].name) == 0,
		    __FILE__, __LINE__, "%s=%s: got %s", cases[i].name, cases[i].value,
		    bad ? bad : "accepted");
	}
	/* A bad number changes nothing, not even the settings before it in the table. */
	clear_settings();
	setenv("LSO_READ_TIMEOUT_SEC", "3", 1);
	setenv("LSO_CALLBACK_RETRIES", "x", 1);
	CHECK_STR(config_load(), "LSO_CALLBACK_RETRIES");
	CHECK_INT(config.read_timeout_sec, 10);
	clear_settings();
}

/* LSO_HOST_TAG: two hex digits or nothing; it becomes the id's first byte, the id stays a v4 UUID. */
static void
test_config_host_tag(void)
{
	static const struct { const char *value; int tag; } good[] = {
		{ "00", 0 }, { "0a", 10 }, { "A0", 160 }, { "ff", 255 }, { "", -1 },
	};
	static const char *const bad[] = { "1", "100", "0x1", "g1", " 1", "-1", "1 " };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		clear_settings();
		setenv("LSO_HOST_TAG", good[i].value, 1);
		CHECK(config_load() == NULL);
		check(config.host_tag == good[i].tag, __FILE__, __LINE__, "LSO_HOST_TAG=%s: got %d",
		    good[i].value, config.host_tag);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		clear_settings();
		setenv("LSO_HOST_TAG", bad[i], 1);
		check(config_load() != NULL && strcmp(config_load(), "LSO_HOST_TAG") == 0,
		    __FILE__, __LINE__, "LSO_HOST_TAG=%s accepted", bad[i]);
		CHECK_INT(config.host_tag, -1);
	}
	clear_settings();
	CHECK(config_load() == NULL);
	CHECK_INT(config.host_tag, -1);
}

static void
test_job_id_host_tag(void)
{
	job_id id;
	bool saw_other_first_byte = false;

	clear_settings();
	CHECK(config_load() == NULL);
	/* Untagged: the first byte is random (32 ids all starting 0a: 2^-155). */
	for (int i = 0; i < 32; i++) {
		CHECK(job_new_id(id) == 0);
		saw_other_first_byte |= strncmp(id, "0a", 2) != 0;
	}
	CHECK(saw_other_first_byte);
	setenv("LSO_HOST_TAG", "0A", 1);
	CHECK(config_load() == NULL);
	for (int i = 0; i < 64; i++) {
		CHECK(job_new_id(id) == 0);
		CHECK(job_id_valid(id));
		check(strncmp(id, "0a", 2) == 0 && id[14] == '4' && strchr("89ab", id[19]),
		    __FILE__, __LINE__, "tagged id %s", id);
	}
	clear_settings();
}

/* ---- YAML for Ansible: every string !unsafe (yaml.c) ---- */

static const char *
yaml_of_string(const char *s, size_t len)
{
	jbuf_free(&jb);
	yaml_unsafe_string(&jb, s, len);
	return jb.data ? jb.data : "";
}

#define CHECK_YAML_STR(in, want) CHECK_STR(yaml_of_string((in), sizeof(in) - 1), (want))

/* The YAML of a JSON text (parsed with cJSON), into jb. */
static const char *
yaml_of_json(const char *json)
{
	cJSON *item = cJSON_Parse(json);
	char *text = item ? yaml_text(item) : NULL;

	jbuf_free(&jb);
	if (text) {
		jbuf_puts(&jb, text);
		free(text);
	}
	cJSON_Delete(item);
	return jb.data ? jb.data : "(none)";
}

static void
test_yaml_string_escapes(void)
{
	CHECK_YAML_STR("", "!unsafe \"\"");
	CHECK_YAML_STR("{{ lookup('pipe', 'id') }}", "!unsafe \"{{ lookup('pipe', 'id') }}\"");
	CHECK_YAML_STR("a\"b\\c", "!unsafe \"a\\\"b\\\\c\"");
	CHECK_YAML_STR("\"", "!unsafe \"\\\"\"");
	CHECK_YAML_STR("\\", "!unsafe \"\\\\\"");
	CHECK_YAML_STR("\n\r\t\x01\x1f\x7f", "!unsafe \"\\x0A\\x0D\\x09\\x01\\x1F\\x7F\"");
	CHECK_YAML_STR("a\0b", "!unsafe \"a\\x00b\"");
	CHECK_YAML_STR(" #: - ! & * % @ ` | > ' , [ ] { } ? ",
	    "!unsafe \" #: - ! & * % @ ` | > ' , [ ] { } ? \"");
}

static void
test_yaml_string_non_ascii(void)
{
	CHECK_YAML_STR("\xc3\xa9", "!unsafe \"\\xE9\"");
	CHECK_YAML_STR("\xc2\x85\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf",
	    "!unsafe \"\\x85\\u2028\\u2029\\uFEFF\"");
	CHECK_YAML_STR("\xf0\x9f\x98\x80", "!unsafe \"\\U0001F600\"");
	CHECK_YAML_STR("\xf4\x8f\xbf\xbf", "!unsafe \"\\U0010FFFF\"");
	/* Not UTF-8: one U+FFFD per bad byte, as the JSON escaper does. */
	CHECK_YAML_STR("\xff", "!unsafe \"\\uFFFD\"");
	CHECK_YAML_STR("\xc3", "!unsafe \"\\uFFFD\"");
	CHECK_YAML_STR("\xc0\xaf", "!unsafe \"\\uFFFD\\uFFFD\"");
	CHECK_YAML_STR("\xed\xa0\x80", "!unsafe \"\\uFFFD\\uFFFD\\uFFFD\"");
	CHECK_YAML_STR("\xe2\x80", "!unsafe \"\\uFFFD\\uFFFD\"");
}

/* Whatever the bytes, the output is printable ASCII, and the scalar ends only at its end. */
static void
test_yaml_string_random_bytes(void)
{
	unsigned char in[64];
	unsigned seed = 17;
	const char *out;
	bool ok = true;

	for (int round = 0; round < 20000 && ok; round++) {
		size_t len = (size_t)(round % 64);

		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)((seed = seed * 1103515245 + 12345) >> 16);
		out = yaml_of_string((const char *)in, len);
		ok = strncmp(out, "!unsafe \"", 9) == 0 && out[strlen(out) - 1] == '"';
		for (size_t i = 9; ok && out[i + 1]; i++) {
			ok = out[i] >= 0x20 && out[i] < 0x7f && out[i] != '"';
			if (ok && out[i] == '\\')
				ok = out[++i] != '\0' && strchr("\"\\xuU", out[i]);
		}
	}
	CHECK(ok);
}

static void
test_yaml_values(void)
{
	CHECK_STR(yaml_of_json("{}"), "{}\n");
	CHECK_STR(yaml_of_json("[]"), "[]\n");
	CHECK_STR(yaml_of_json("{\"a\":\"b\",\"c\":[1,true,false,null,\"d\"]}"),
	    "{? !unsafe \"a\" : !unsafe \"b\", ? !unsafe \"c\" : [1, true, false, null, !unsafe \"d\"]}\n");
	CHECK_STR(yaml_of_json("{\"\":{\"x\":{}}}"), "{? !unsafe \"\" : {? !unsafe \"x\" : {}}}\n");
	CHECK_STR(yaml_of_json("\"s\""), "!unsafe \"s\"\n");
}

/* Numbers keep the type Python's json gave cJSON's text of them. */
static void
test_yaml_numbers(void)
{
	CHECK_STR(yaml_of_json("[0,-1,21,3000000000,-0]"), "[0, -1, 21, 3000000000, -0]\n");
	CHECK_STR(yaml_of_json("[1.5,-0.25,1e300,1e-7,1E20,2.5e-10]"),
	    "[1.5, -0.25, 1.0e+300, 1.0e-07, 1.0e+20, 2.5e-10]\n");
	CHECK_STR(yaml_of_json("[3.0]"), "[3]\n");
	CHECK_STR(yaml_of_json("[1e999]"), "[null]\n");
}

/* ---- ini inventory strings as inventory objects (inventory.c) ---- */

static char inventory_why[512];

/* The inventory object of an ini text as compact JSON (Raw values bare), into jb. */
static const char *
ini_json(const char *text)
{
	cJSON *groups = inventory_from_ini(text, inventory_why, sizeof(inventory_why));
	char *json = groups ? cJSON_PrintUnformatted(groups) : NULL;

	jbuf_free(&jb);
	jbuf_puts(&jb, json ? json : "REFUSED");
	free(json);
	cJSON_Delete(groups);
	return jb.data;
}

/* Refused, with a message starting with want. */
static bool
ini_refused(const char *text, const char *want)
{
	return strcmp(ini_json(text), "REFUSED") == 0 &&
	    strncmp(inventory_why, want, strlen(want)) == 0;
}

static void
test_inventory_host_list(void)
{
	CHECK_STR(ini_json("localhost\nhost2.example.com\n"),
	    "{\"ungrouped\":{\"hosts\":{\"localhost\":{},\"host2.example.com\":{}}}}");
	CHECK_STR(ini_json("localhost"), "{\"ungrouped\":{\"hosts\":{\"localhost\":{}}}}");
	CHECK_STR(ini_json(""), "{\"ungrouped\":{}}");
	CHECK_STR(ini_json("a\r\nb\rc\n\n  \t\n# c\n; c\n"),
	    "{\"ungrouped\":{\"hosts\":{\"a\":{},\"b\":{},\"c\":{}}}}");
	CHECK_STR(ini_json("web[1:3]:2222\n"), "{\"ungrouped\":{\"hosts\":{\"web[1:3]:2222\":{}}}}");
}

static void
test_inventory_sections(void)
{
	CHECK_STR(ini_json("[g]\nh1\n[g:vars]\nk = v w \n[all:children]\ng\n"),
	    "{\"ungrouped\":{},\"g\":{\"hosts\":{\"h1\":{}},\"vars\":{\"k\":\"v w\"}},"
	    "\"all\":{\"children\":{\"g\":{}}}}");
	CHECK_STR(ini_json("[p:children]\nc # comment\n[c]\nh\n"),
	    "{\"ungrouped\":{},\"p\":{\"children\":{\"c\":{}}},\"c\":{\"hosts\":{\"h\":{}}}}");
	CHECK_STR(ini_json("[g]  # comment\nh\n"), "{\"ungrouped\":{},\"g\":{\"hosts\":{\"h\":{}}}}");
	CHECK(ini_refused("[g:vars]\nk=v\n", "Section [g:vars] not valid for undefined group: g"));
	CHECK(ini_refused("[p:children]\nc\n", "Section [p:children] includes undefined group: c"));
	CHECK(ini_refused("[p:children]\nc\n[c:vars]\nk=1\n", "Section [c:vars] not valid"));
	CHECK(ini_refused("[g:other]\n", "Section [g:other] has unknown type"));
	CHECK(ini_refused("[broken\nh\n", "Invalid section entry: '[broken'"));
	CHECK(ini_refused("[a b]\n", "Invalid section entry"));
	CHECK(ini_refused("[]\n", "Invalid section entry"));
	CHECK(ini_refused("[g] x\n", "Invalid section entry"));
	CHECK(ini_refused("[g:]\n", "Invalid section entry"));
	CHECK(ini_refused("[g:vars]\nnovalue\n[g]\n", "Expected key=value, got: novalue"));
	CHECK(ini_refused("[g:children]\na b\n", "Expected group name, got: a b"));
}

static void
test_inventory_host_vars(void)
{
	CHECK_STR(ini_json("h a='x y' b=\"p\\\"q\\\\r\\n\" c=p\\ q d=e=f # x=1\n"),
	    "{\"ungrouped\":{\"hosts\":{\"h\":{\"a\":\"x y\",\"b\":\"p\\\"q\\\\r\\\\n\",\"c\":\"p q\","
	    "\"d\":\"e=f\"}}}}");
	CHECK_STR(ini_json("h a=1 b=2\nh a=3\n"), "{\"ungrouped\":{\"hosts\":{\"h\":{\"a\":3,\"b\":2}}}}");
	CHECK_STR(ini_json("h #comment\n"), "{\"ungrouped\":{\"hosts\":{\"h\":{}}}}");
	CHECK_STR(ini_json("h x=1#comment\n"), "{\"ungrouped\":{\"hosts\":{\"h\":{\"x\":1}}}}");
	CHECK(ini_refused("h x#comment\n", "Expected key=value host variable assignment, got: x"));
	CHECK(ini_refused("h novalue\n", "Expected key=value host variable assignment, got: novalue"));
	CHECK(ini_refused("h x=\"open\n", "Error parsing host definition 'h x=\"open': No closing"));
	CHECK(ini_refused("h x='open\n", "Error parsing host definition"));
	CHECK(ini_refused("h x=a\\", "Error parsing host definition 'h x=a\\': No escaped character"));
	CHECK(ini_refused("h:\n", "Invalid host pattern 'h:' supplied, ending in ':'"));
	CHECK(ini_refused("---\n", "Invalid host pattern '---'"));
	CHECK(ini_refused("''\n", "Empty host name"));
}

/* An ini text of hosts h0..h(n-1), a line each with v=first, then (again) each with v=2. */
static char *
ini_hosts(int n, bool again)
{
	size_t size = (size_t)n * 2 * 16 + 1, len = 0;
	char *text = malloc(size);

	for (int i = 0; text && i < n; i++)
		len += (size_t)snprintf(text + len, size - len, "h%d v=1\n", i);
	for (int i = 0; text && again && i < n; i++)
		len += (size_t)snprintf(text + len, size - len, "h%d v=2\n", i);
	return text;
}

/* A host's variables, printed (Raw values bare), are want. */
static bool
host_is(const cJSON *host, const char *want)
{
	char *json = host ? cJSON_PrintUnformatted(host) : NULL;
	bool same = json && strcmp(json, want) == 0;

	free(json);
	return same;
}

/* Many hosts: each found again in constant time (last value wins, first place kept); the bound. */
static void
test_inventory_many_hosts(void)
{
	char *text = ini_hosts(16000, true);
	cJSON *groups = inventory_from_ini(text, inventory_why, sizeof(inventory_why));
	const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(groups, "ungrouped"), "hosts");

	CHECK(cJSON_GetArraySize(hosts) == 16000);
	CHECK(hosts && strcmp(hosts->child->string, "h0") == 0);
	CHECK(hosts && host_is(hosts->child, "{\"v\":2}"));
	CHECK(host_is(cJSON_GetArrayItem(hosts, 15999), "{\"v\":2}"));
	cJSON_Delete(groups);
	free(text);
	/* all, ungrouped (marks), the ungrouped group and its hosts: 4; then a host and its v each. */
	text = ini_hosts((REQUEST_INVENTORY_ENTRIES_MAX - 4) / 2, false);
	CHECK(strcmp(ini_json(text), "REFUSED") != 0);
	free(text);
	text = ini_hosts((REQUEST_INVENTORY_ENTRIES_MAX - 4) / 2 + 1, false);
	CHECK(ini_refused(text, "Inventory string makes more than 32768 hosts, groups and variables"));
	free(text);
}

/* The value of variable x on host h of an ini line "h x=<value>", as JSON. */
static const char *
ini_value(const char *vars_line)
{
	char text[256];
	const char *json;
	static char value[256];

	snprintf(text, sizeof(text), "[g]\nh\n[g:vars]\nx=%s\n", vars_line);
	json = ini_json(text);
	if (strcmp(json, "REFUSED") == 0)
		return "REFUSED";
	snprintf(value, sizeof(value), "%s", strstr(json, "\"x\":") ? strstr(json, "\"x\":") + 4 : json);
	value[strlen(value) > 3 ? strlen(value) - 3 : 0] = '\0'; /* drop "}}}" */
	return value;
}

static void
test_inventory_values_typed(void)
{
	CHECK_STR(ini_value("0"), "0");
	CHECK_STR(ini_value("2222"), "2222");
	CHECK_STR(ini_value("-5"), "-5");
	CHECK_STR(ini_value("- 5"), "-5");
	CHECK_STR(ini_value("+7"), "7");
	CHECK_STR(ini_value("123456789012345678901234567890"), "123456789012345678901234567890");
	CHECK_STR(ini_value("1.5"), "1.5");
	CHECK_STR(ini_value("07.5"), "07.5");
	CHECK_STR(ini_value("1."), "1.");
	CHECK_STR(ini_value("True"), "true");
	CHECK_STR(ini_value("False"), "false");
	CHECK_STR(ini_value("None"), "null");
}

static void
test_inventory_values_text(void)
{
	static const char *const texts[] = { "", "root", "true", "yes", "10.0.0.1", "1.2.3",
		"2024-01-01", "08:00", "2001:db8::1", "12h", "1password", "08", "0777", "-05",
		"/usr/bin/python3", "~/.ssh/id", "-o ProxyCommand=x", "--5", "-+5", "-x", "-", ".x",
		"./run", "{{ lookup('pipe', 'id') }}", "{% if x %}y{% endif %}", "{# c #}", "a b",
		"x,y", "1+2", "1-2", "1 2", "5:6", "5/6", "p\"q\"", "abc'x'", "#x", "$HOME", "*a",
		"@x", "!x", ")", "]", "}", ",", "~5", "Truex", "x # not a comment" };
	char want[256];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		jbuf_free(&jb);
		json_string(&jb, texts[i]);
		snprintf(want, sizeof(want), "%s", jb.data);
		CHECK_STR(ini_value(texts[i]), want);
	}
	CHECK_STR(ini_value("'quoted value'"), "\"quoted value\"");
	CHECK_STR(ini_value("\"{{ x }}\""), "\"{{ x }}\"");
	CHECK_STR(ini_value("''"), "\"\"");
}

static void
test_inventory_values_refused(void)
{
	static const char *const refused[] = { "[1,2]", "(1)", "{'a': 1}", "{1}", "1e5", "1E5",
		"0x10", "0o7", "0b1", "1_000", "00", "1j", "1+2j", "1 - 2j", "1,2", "1,", "5 # c",
		"True,", "True, 1", "set()", "set", "-(5)", "-.5", ".5",
		"...", "b'a'", "r\"a\"", "u'a'", "f'{x}'", "Rb'x'", "'a\\n'", "'a' 'b'", "'a'b", "'open",
		"\"a\" + \"b\"", "\xc3\x84rger", "\xef\xbd\x93\xef\xbd\x85\xef\xbd\x94()",
		"s\xc3\xa4ge", "Tr\xc3\xbc", "r\xc3\xa4" };

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (strcmp(ini_value(refused[i]), "REFUSED") != 0)
			check(false, __FILE__, __LINE__, "value %s converted: %s", refused[i],
			    ini_value(refused[i]));
		else
			n_passed++;
	}
	CHECK(ini_refused("h x=[1]\n", "Inventory variable x: the value [1] is not converted"));
}

static void
test_inventory_characters(void)
{
	CHECK(ini_refused("h\x0b", "Inventory string holds a control character"));
	CHECK(ini_refused("h\x0c", "Inventory string holds"));
	CHECK(ini_refused("h\x1c", "Inventory string holds"));
	CHECK(ini_refused("h\x7f\x01", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xc2\x85" "b", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xc2\xa0" "b", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xe2\x80\xa8" "b", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xe2\x80\xa9" "b", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xe3\x80\x80" "b", "Inventory string holds"));
	CHECK(ini_refused("h x=a\xe1\x9a\x80" "b", "Inventory string holds"));
	CHECK_STR(ini_json("h\tx=caf\xc3\xa9 y=Z\xc3\xbcrich\n"),
	    "{\"ungrouped\":{\"hosts\":{\"h\":{\"x\":\"caf\xc3\xa9\",\"y\":\"Z\xc3\xbcrich\"}}}}");
}

/* The whole way: an ini inventory as YAML, typed values plain, every string !unsafe. */
static void
test_inventory_yaml(void)
{
	cJSON *groups = inventory_from_ini("h n=1 t=True s=\"{{ x }}\"\n", inventory_why,
	    sizeof(inventory_why));
	char *yaml = groups ? yaml_text(groups) : NULL;

	CHECK_STR(yaml ? yaml : "(none)", "{? !unsafe \"ungrouped\" : {? !unsafe \"hosts\" : "
	    "{? !unsafe \"h\" : {? !unsafe \"n\" : 1, ? !unsafe \"t\" : true, ? !unsafe \"s\" : "
	    "!unsafe \"{{ x }}\"}}}}\n");
	free(yaml);
	cJSON_Delete(groups);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	req = calloc(1, sizeof(*req));
	null_out = open("/dev/null", O_WRONLY);
	if (!req || null_out < 0)
		return 2;

	test_http_simple_get();
	test_http_path_drops_query();
	test_http_headers_recorded();
	test_http_10_without_host_ok();
	test_http_11_without_host_400();
	test_http_two_hosts_400();
	test_http_bare_lf();
	test_http_bare_lf_body_with_crlfcrlf();
	test_http_bad_request_lines();
	test_http_rfc9112_forms();
	test_http_control_char_in_version_400();
	test_http_nul_in_head_400();
	test_http_version_505();
	test_http_bad_header_lines_400();
	test_http_obs_fold_400();
	test_http_unknown_expect_417();
	test_http_head_at_limit_ok();
	test_http_head_over_limit_431();
	test_http_head_at_limit_with_body();
	test_http_empty_connection();
	test_http_eof_in_headers_400();
	test_http_reused_struct_fields_reset();
	test_parse_head_framing();
	test_parse_head_content_length_values();
	test_parse_head_no_blank_line_400();
	test_http_content_length_body();
	test_http_body_with_nul();
	test_http_body_stops_at_content_length();
	test_http_body_byte_by_byte();
	test_http_body_large_split();
	test_http_eof_in_body_400();
	test_http_content_length_over_max_413();
	test_http_content_length_at_max_ok();
	test_http_two_content_lengths();
	test_http_content_length_and_chunked_400();
	test_http_other_transfer_encoding_501();
	test_http_chunked_several_chunks();
	test_http_chunked_extensions_trailers_hex();
	test_http_chunked_lowercase_hex_and_bare_lf();
	test_http_chunked_empty_body();
	test_http_chunked_byte_by_byte();
	test_http_chunked_bad_size_400();
	test_http_chunked_missing_crlf_after_data_400();
	test_http_chunked_eof_400();
	test_http_chunk_too_large_413();
	test_http_chunked_total_over_max_413();
	test_http_chunked_trailers_over_limit_431();
	test_http_expect_continue_sent_before_body();
	test_http_expect_continue_chunked();
	test_http_no_continue_without_expect();
	test_http_no_continue_for_http10();
	test_http_no_continue_when_too_large();
	test_http_deadline_in_headers_408();
	test_http_deadline_in_body_408();

	test_json_ascii_passthrough();
	test_json_quotes_backslashes();
	test_json_control_characters();
	test_json_newline_translation();
	test_json_valid_utf8_kept();
	test_json_invalid_bytes_replaced();
	test_json_truncated_sequences_replaced();
	test_json_escape_fit_exact();
	test_spool_escape_as_whole();
	test_yaml_write_as_text();
	test_json_overlong_replaced();
	test_json_surrogates_and_beyond_replaced();
	test_json_utf8_len();
	test_json_string();
	test_json_long_input_grows();
	test_json_random_bytes_parse_with_cjson();
	test_json_random_translated_parse_with_cjson();
	test_yaml_string_escapes();
	test_yaml_string_non_ascii();
	test_yaml_string_random_bytes();
	test_yaml_values();
	test_yaml_numbers();
	test_inventory_host_list();
	test_inventory_sections();
	test_inventory_host_vars();
	test_inventory_many_hosts();
	test_inventory_values_typed();
	test_inventory_values_text();
	test_inventory_values_refused();
	test_inventory_characters();
	test_inventory_yaml();

	setup_tree();
	test_resolve_ok_names();
	test_resolve_real_root();
	test_resolve_without_openat2();
	test_resolve_climbing_out();
	test_resolve_absolute();
	test_resolve_symlinks();
	test_resolve_missing();
	test_resolve_not_file();
	test_resolve_not_executable();
	test_resolve_bad_root();
	test_resolve_long_name();
	test_resolve_root_is_slash();
	setup_job_files();
	test_files_job_id();
	test_files_decode();
	test_files_open();
	test_files_list();
	test_files_delete();
	teardown_tree();

	test_jsonparse_strict_scan();
	test_jsonparse_nul_escapes();
	test_jsonparse_duplicates();
	test_validate_execute_valid();
	test_validate_problems_capped();
	test_validate_values_capped();
	test_validate_body_shape();
	test_validate_execute_fields();
	test_validate_safe_names();
	test_validate_urls();
	test_validate_playbook_valid();
	test_validate_playbook_fields();
	test_validate_inventory_depth();
	test_config_defaults();
	test_config_each_variable_its_field();
	test_config_bounds();
	test_config_host_tag();
	test_job_id_host_tag();
	test_config_auth();

	reset_req();
	free(req);
	jbuf_free(&jb);
	close(null_out);
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed > 0;
}
