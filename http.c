/* http.c: read one HTTP/1.x request under limits and a deadline; write one response. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

static const char *const reasons[] = {
	[S_CONTINUE] = "Continue",
	[S_OK] = "OK",
	[S_CREATED] = "Created",
	[S_ACCEPTED] = "Accepted",
	[S_NO_CONTENT] = "No Content",
	[S_BAD_REQUEST] = "Bad Request",
	[S_UNAUTHORIZED] = "Unauthorized",
	[S_FORBIDDEN] = "Forbidden",
	[S_NOT_FOUND] = "Not Found",
	[S_METHOD_NOT_ALLOWED] = "Method Not Allowed",
	[S_REQUEST_TIMEOUT] = "Request Timeout",
	[S_CONFLICT] = "Conflict",
	[S_GONE] = "Gone",
	[S_PAYLOAD_TOO_LARGE] = "Content Too Large",
	[S_EXPECTATION_FAILED] = "Expectation Failed",
	[S_UNPROCESSABLE_CONTENT] = "Unprocessable Content",
	[S_HEADER_FIELDS_TOO_LARGE] = "Request Header Fields Too Large",
	[S_INTERNAL_SERVER_ERROR] = "Internal Server Error",
	[S_NOT_IMPLEMENTED] = "Not Implemented",
	[S_SERVICE_UNAVAILABLE] = "Service Unavailable",
	[S_VERSION_NOT_SUPPORTED] = "HTTP Version Not Supported",
};

const char *
http_reason(enum status status)
{
	if ((size_t)status < sizeof(reasons) / sizeof(reasons[0]) && reasons[status])
		return reasons[status];
	return "Unknown";
}

int64_t
http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes: 1 ready, 0 expired, -1 error. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline_ms - http_now_ms();
		if (left <= 0)
			return 0;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* Read at most len bytes before the deadline: >0 bytes, 0 EOF, -1 error, -2 expired. */
static ssize_t
read_some(int fd, char *buf, size_t len, int64_t deadline_ms)
{
	ssize_t n;
	int ready;

	for (;;) {
		ready = wait_fd(fd, POLLIN, deadline_ms);
		if (ready == 0)
			return -2;
		if (ready < 0)
			return -1;
		n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return -1;
	}
}

static int
write_all(int fd, const char *buf, size_t len, int64_t deadline_ms)
{
	ssize_t n;

	while (len > 0) {
		if (wait_fd(fd, POLLOUT, deadline_ms) <= 0)
			return -1;
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The status for a read that did not deliver: expiry is 408, EOF or error 400. */
static enum status
read_failure(ssize_t n)
{
	return n == -2 ? S_REQUEST_TIMEOUT : S_BAD_REQUEST;
}

/*
 * The end of the first blank line: "\n\n" or "\n\r\n" (which CRLF and bare LF
 * endings, and any mix, come down to); its length in *len. NULL: none yet.
 */
static char *
find_head_end(char *buf, size_t size, size_t *len)
{
	char *lf = memmem(buf, size, "\n\n", 2), *crlf = memmem(buf, size, "\n\r\n", 3);

	if (lf && (!crlf || lf < crlf)) {
		*len = 2;
		return lf;
	}
	*len = 3;
	return crlf;
}

/*
 * Empty lines (CRLF or LF) at the start of buf[0..*have), dropped: RFC 9112
 * section 2.2 has a server ignore them before the request line. Their count
 * is returned; a CR whose LF has not arrived yet stays.
 */
static size_t
drop_empty_lines(char *buf, size_t *have)
{
	size_t n = 0;

	while (n < *have && (buf[n] == '\n' || (buf[n] == '\r' && n + 1 < *have && buf[n + 1] == '\n')))
		n += buf[n] == '\r' ? 2 : 1;
	memmove(buf, buf + n, *have - n + 1);  /* with the NUL after them */
	*have -= n;
	return n;
}

/*
 * Read until the blank line that ends the header block. Bytes read past it
 * (the start of the body) stay in head[] after head_len; *have counts all.
 * Empty lines before the request line are dropped, but count toward the
 * header limit, so a stream of them ends in 431 like any other.
 */
static enum status
read_head(int fd, struct http_request *req, size_t *have, int64_t deadline_ms)
{
	char *end;
	size_t scan_from = 0, end_len, dropped = 0;
	ssize_t n;

	*have = 0;
	for (;;) {
		if (*have + dropped >= HTTP_HEADER_MAX_BYTES)
			return S_HEADER_FIELDS_TOO_LARGE;
		n = read_some(fd, req->head + *have, HTTP_HEADER_MAX_BYTES - *have - dropped, deadline_ms);
		if (n <= 0)
			return *have == 0 && n == 0 ? S_OK : read_failure(n);
		*have += (size_t)n;
		req->head[*have] = '\0';
		if (scan_from == 0)
			dropped += drop_empty_lines(req->head, have);
		end = find_head_end(req->head + scan_from, *have - scan_from, &end_len);
		if (end) {
			req->head_len = (size_t)(end - req->head) + end_len;
			return S_OK;
		}
		scan_from = *have > 3 ? *have - 3 : 0;
	}
}

/* Cut the next line off *cursor (CRLF or LF), NUL-terminating it in place. */
static char *
next_line(char **cursor)
{
	char *line = *cursor, *nl = strchr(line, '\n');

	if (!nl)
		return NULL;
	*nl = '\0';
	if (nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	*cursor = nl + 1;
	return line;
}

static bool
is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

/* This process's request was HEAD: its responses carry their headers only (one request per process). */
static bool respond_without_body;

/*
 * The path of an absolute-form target ("http://host:port/path", RFC 9112
 * section 3.2.2, which a server must accept); NULL when it is not one or its
 * authority is empty or holds userinfo (RFC 9110 section 4.2.4: an error).
 */
static const char *
absolute_form_path(const char *target)
{
	size_t scheme = strncasecmp(target, "http://", 7) == 0 ? 7 :
	    strncasecmp(target, "https://", 8) == 0 ? 8 : 0;
	size_t authority;

	if (!scheme)
		return NULL;
	authority = strcspn(target + scheme, "/");
	if (authority == 0 || memchr(target + scheme, '@', authority))
		return NULL;
	return target[scheme + authority] ? target + scheme + authority : "/";
}

static enum status
parse_request_line(struct http_request *req, char *line)
{
	char *target, *version, *query;

	target = strchr(line, ' ');
	if (!target)
		return S_BAD_REQUEST;
	*target++ = '\0';
	version = strchr(target, ' ');
	if (!version)
		return S_BAD_REQUEST;
	*version++ = '\0';
	if (*line == '\0' || strchr(version, ' '))
		return S_BAD_REQUEST;
	for (const char *c = line; *c; c++)
		if (!is_token_char((unsigned char)*c))
			return S_BAD_REQUEST;
	for (const char *c = target; *c; c++)
		if ((unsigned char)*c <= 32 || *c == 127)
			return S_BAD_REQUEST;
	if (strncmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
	    version[6] != '.' || !isdigit((unsigned char)version[7]) || version[8] != '\0')
		return S_BAD_REQUEST;
	if (strcmp(version, "HTTP/1.1") == 0)
		req->minor_version = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		req->minor_version = 0;
	else
		return S_VERSION_NOT_SUPPORTED;
	query = strchr(target, '?');
	if (query)
		*query = '\0';
	req->method = line;
	req->path = *target == '/' ? target : absolute_form_path(target);
	if (!req->path)
		return S_BAD_REQUEST;
	req->head_only = respond_without_body = strcmp(line, "HEAD") == 0;
	return S_OK;
}

/* Content-Length: digits only; a repeat must agree with the first. */
static enum status
parse_content_length(const char *value, int64_t *content_length)
{
	int64_t n = 0;

	if (*value == '\0')
		return S_BAD_REQUEST;
	for (const char *c = value; *c; c++) {
		if (*c < '0' || *c > '9')
			return S_BAD_REQUEST;
		if (n > (INT64_MAX - 9) / 10)
			return S_PAYLOAD_TOO_LARGE;
		n = n * 10 + (*c - '0');
	}
	if (*content_length >= 0 && *content_length != n)
		return S_BAD_REQUEST;
	*content_length = n;
	return S_OK;
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

/* Record one header we use; the rest are skipped. */
static enum status
parse_header(struct http_request *req, char *line, int64_t *content_length,
    bool *chunked, bool *has_host)
{
	char *colon = strchr(line, ':'), *value;

	if (!colon || colon == line)
		return S_BAD_REQUEST;
	*colon = '\0';
	for (const char *c = line; *c; c++)
		if (!is_token_char((unsigned char)*c))
			return S_BAD_REQUEST; /* e.g. "Content-Length :" */
	value = trim(colon + 1);
	for (const char *c = value; *c; c++)
		if ((unsigned char)*c < 32 && *c != '\t')
			return S_BAD_REQUEST;
	if (strcasecmp(line, "Content-Length") == 0)
		return parse_content_length(value, content_length);
	if (strcasecmp(line, "Transfer-Encoding") == 0) {
		if (*chunked || strcasecmp(value, "chunked") != 0)
			return S_NOT_IMPLEMENTED;
		*chunked = true;
	} else if (strcasecmp(line, "Expect") == 0) {
		if (strcasecmp(value, "100-continue") != 0)
			return S_EXPECTATION_FAILED;
		req->expect_continue = true;
	} else if (strcasecmp(line, "Content-Type") == 0) {
		req->content_type = value;
	} else if (strcasecmp(line, "Authorization") == 0) {
		req->authorization = value;
	} else if (strcasecmp(line, "Host") == 0) {
		if (*has_host)
			return S_BAD_REQUEST;
		*has_host = true;
	}
	return S_OK;
}

enum status
http_parse_head(struct http_request *req, int64_t *content_length, bool *chunked)
{
	char *cursor = req->head, *line;
	bool has_host = false;
	enum status status;

	*content_length = -1;
	*chunked = false;
	req->head_only = respond_without_body = false;
	line = next_line(&cursor);
	if (!line)
		return S_BAD_REQUEST;
	status = parse_request_line(req, line);
	if (status != S_OK)
		return status;
	while ((line = next_line(&cursor)) && *line) {
		if (*line == ' ' || *line == '\t')
			return S_BAD_REQUEST; /* obsolete line folding */
		status = parse_header(req, line, content_length, chunked, &has_host);
		if (status != S_OK)
			return status;
	}
	if (!line)
		return S_BAD_REQUEST;
	/* Both framings at once is how requests get smuggled. */
	if (*chunked && *content_length >= 0)
		return S_BAD_REQUEST;
	if (req->minor_version == 1 && !has_host)
		return S_BAD_REQUEST;
	return S_OK;
}

/*
 * The body arrives through a small cursor over what read_head left over and
 * then the connection, so chunked decoding reads it like a stream.
 */
struct stream {
	int fd;
	int64_t deadline_ms;
	char *buf;
	size_t pos, len;
	char spare[16384];
};

/* Next byte, or a negative read_some() result. */
static int
stream_getc(struct stream *s)
{
	ssize_t n;

	if (s->pos == s->len) {
		n = read_some(s->fd, s->spare, sizeof(s->spare), s->deadline_ms);
		if (n <= 0)
			return n == 0 ? -1 : (int)n;
		s->buf = s->spare;
		s->pos = 0;
		s->len = (size_t)n;
	}
	return (unsigned char)s->buf[s->pos++];
}

/* Copy exactly len bytes into dst. */
static enum status
stream_read(struct stream *s, char *dst, size_t len)
{
	size_t take;
	ssize_t n;

	while (len > 0) {
		if (s->pos < s->len) {
			take = s->len - s->pos < len ? s->len - s->pos : len;
			memcpy(dst, s->buf + s->pos, take);
			s->pos += take;
			dst += take;
			len -= take;
			continue;
		}
		n = read_some(s->fd, dst, len, s->deadline_ms);
		if (n <= 0)
			return read_failure(n);
		dst += n;
		len -= (size_t)n;
	}
	return S_OK;
}

/* One line of at most HTTP_CHUNK_LINE_MAX_BYTES bytes, without its CRLF. */
static enum status
stream_line(struct stream *s, char *line)
{
	size_t len = 0;
	int c;

	for (;;) {
		c = stream_getc(s);
		if (c < 0)
			return c == -2 ? S_REQUEST_TIMEOUT : S_BAD_REQUEST;
		if (c == '\n')
			break;
		if (len == HTTP_CHUNK_LINE_MAX_BYTES)
			return S_BAD_REQUEST;
		line[len++] = (char)c;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	return S_OK;
}

int
http_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "1a;name=value" -> 26; anything but hex digits before the extension is 400. */
static enum status
parse_chunk_size(const char *line, size_t max, size_t *size)
{
	size_t n = 0;
	const char *c = line;

	if (http_hex_value(*c) < 0)
		return S_BAD_REQUEST;
	for (; http_hex_value(*c) >= 0; c++) {
		n = n * 16 + (size_t)http_hex_value(*c);
		if (n > max)
			return S_PAYLOAD_TOO_LARGE;
	}
	while (*c == ' ' || *c == '\t')
		c++;
	if (*c != '\0' && *c != ';')
		return S_BAD_REQUEST;
	*size = n;
	return S_OK;
}

static enum status
grow_body(struct http_request *req, size_t need)
{
	char *body = realloc(req->body, need + 1);

	if (!body)
		return S_INTERNAL_SERVER_ERROR;
	req->body = body;
	return S_OK;
}

static enum status
read_chunked(struct stream *s, struct http_request *req, size_t max_body)
{
	char line[HTTP_CHUNK_LINE_MAX_BYTES + 1];
	size_t size;
	enum status status;

	for (;;) {
		if ((status = stream_line(s, line)) != S_OK)
			return status;
		status = parse_chunk_size(line, max_body - req->body_len, &size);
		if (status != S_OK)
			return status;
		if (size == 0)
			break;
		if ((status = grow_body(req, req->body_len + size)) != S_OK)
			return status;
		if ((status = stream_read(s, req->body + req->body_len, size)) != S_OK)
			return status;
		req->body_len += size;
		if ((status = stream_line(s, line)) != S_OK)
			return status;
		if (*line != '\0')
			return S_BAD_REQUEST;
	}
	/* Trailer fields, ignored, up to the blank line; bounded like the head. */
	for (size_t trailer_bytes = 0;; trailer_bytes += strlen(line)) {
		if (trailer_bytes > HTTP_HEADER_MAX_BYTES)
			return S_HEADER_FIELDS_TOO_LARGE;
		if ((status = stream_line(s, line)) != S_OK)
			return status;
		if (*line == '\0')
			return S_OK;
	}
}

static enum status
read_body(struct stream *s, struct http_request *req, int64_t content_length,
    bool chunked, size_t max_body)
{
	enum status status;

	if (chunked)
		return read_chunked(s, req, max_body);
	if (content_length <= 0)
		return S_OK;
	if ((status = grow_body(req, (size_t)content_length)) != S_OK)
		return status;
	status = stream_read(s, req->body, (size_t)content_length);
	if (status == S_OK)
		req->body_len = (size_t)content_length;
	return status;
}

enum status
http_read_request(int in_fd, int out_fd, struct http_request *req,
    size_t max_body, int64_t deadline_ms)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct stream s = { .fd = in_fd, .deadline_ms = deadline_ms, .buf = req->head };
	int64_t content_length;
	size_t have;
	bool chunked;
	enum status status;

	req->method = req->path = req->content_type = req->authorization = NULL;
	req->minor_version = 0;
	req->expect_continue = false;
	req->body = NULL;
	req->body_len = 0;
	req->head_len = 0;
	status = read_head(in_fd, req, &have, deadline_ms);
	if (status != S_OK || have == 0)
		return status;
	if ((status = http_parse_head(req, &content_length, &chunked)) != S_OK)
		return status;
	if (content_length > (int64_t)max_body)
		return S_PAYLOAD_TOO_LARGE;
	s.pos = req->head_len;
	s.len = have;
	/* Only ask for the body once we know we want it. */
	if (req->expect_continue && req->minor_version == 1 && s.pos == s.len &&
	    (chunked || content_length > 0))
		if (write_all(out_fd, continue_line, sizeof(continue_line) - 1, deadline_ms) < 0)
			return S_BAD_REQUEST;
	status = read_body(&s, req, content_length, chunked, max_body);
	if (status == S_OK && !req->body && grow_body(req, 0) != S_OK)
		return S_INTERNAL_SERVER_ERROR;
	if (req->body)
		req->body[req->body_len] = '\0';
	return status;
}

void
http_request_free(struct http_request *req)
{
	free(req->body);
	req->body = NULL;
	req->body_len = 0;
}

/* Write head and body with one writev when the socket takes it all: one packet, no Nagle wait. */
static int
write_two(int fd, const char *head, size_t head_len, const char *body, size_t body_len,
    int64_t deadline_ms)
{
	struct iovec iov[2] = { { (void *)head, head_len }, { (void *)body, body_len } };
	ssize_t n;

	do
		n = writev(fd, iov, body_len ? 2 : 1);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		return -1;
	if (n < 0)
		n = 0;
	if ((size_t)n < head_len)
		return write_all(fd, head + n, head_len - (size_t)n, deadline_ms) < 0 ? -1 :
		    write_all(fd, body, body_len, deadline_ms);
	n -= (ssize_t)head_len;
	return write_all(fd, body + n, body_len - (size_t)n, deadline_ms);
}

/* The status line and headers; a 204 has neither a type nor a length (RFC 9110, 8.6). */
static int
format_head(char *head, size_t size, enum status status, const char *content_type,
    const char *extra_headers, unsigned long long body_len)
{
	int n;

	if (status == S_NO_CONTENT)
		n = snprintf(head, size, "HTTP/1.1 %d %s\r\nConnection: close\r\n%s\r\n",
		    (int)status, http_reason(status), extra_headers ? extra_headers : "");
	else
		n = snprintf(head, size,
		    "HTTP/1.1 %d %s\r\n"
		    "Content-Type: %s\r\n"
		    "Content-Length: %llu\r\n"
		    "Connection: close\r\n"
		    "%s\r\n",
		    (int)status, http_reason(status), content_type ? content_type : "application/json",
		    body_len, extra_headers ? extra_headers : "");
	return n < 0 || (size_t)n >= size ? -1 : n;
}

int
http_respond_typed(int out_fd, enum status status, const char *content_type,
    const char *extra_headers, const char *body, size_t body_len, int64_t deadline_ms)
{
	char head[1024];
	int n = format_head(head, sizeof(head), status, content_type, extra_headers, body_len);

	if (n < 0)
		return -1;
	return write_two(out_fd, head, (size_t)n, body ? body : "",
	    status == S_NO_CONTENT || respond_without_body ? 0 : body_len, deadline_ms);
}

int
http_respond(int out_fd, enum status status, const char *extra_headers,
    const char *body, size_t body_len, int64_t deadline_ms)
{
	return http_respond_typed(out_fd, status, NULL, extra_headers, body, body_len, deadline_ms);
}

/* Copy with read and write, where sendfile cannot (out is not a socket, say). */
static int
copy_file(int out_fd, int fd, off_t offset, off_t left, int idle_ms)
{
	char buf[HTTP_FILE_COPY_BYTES];
	ssize_t n;

	while (left > 0) {
		n = pread(fd, buf, (size_t)(left < (off_t)sizeof(buf) ? left : (off_t)sizeof(buf)), offset);
		if (n <= 0)
			return -1;  /* shrunk under us: the client sees a short body */
		if (write_all(out_fd, buf, (size_t)n, http_now_ms() + idle_ms) < 0)
			return -1;
		offset += n;
		left -= n;
	}
	return 0;
}

int
http_respond_file(int out_fd, enum status status, const char *content_type,
    const char *extra_headers, int fd, off_t size, int idle_ms)
{
	char head[2048];
	int n = format_head(head, sizeof(head), status, content_type, extra_headers,
	    (unsigned long long)size);
	off_t offset = 0;
	ssize_t sent;

	if (n < 0 || write_all(out_fd, head, (size_t)n, http_now_ms() + idle_ms) < 0)
		return -1;
	if (respond_without_body)
		return 0;
	/* The kernel moves the bytes: lso's memory is the same for 1 KB and 10 GB. */
	while (offset < size) {
		if (wait_fd(out_fd, POLLOUT, http_now_ms() + idle_ms) <= 0)
			return -1;  /* the client took nothing for idle_ms */
		sent = sendfile(out_fd, fd, &offset, (size_t)(size - offset < HTTP_FILE_CHUNK_BYTES ?
		    size - offset : HTTP_FILE_CHUNK_BYTES));
		if (sent < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (sent < 0 && (errno == EINVAL || errno == ENOSYS) && offset == 0)
			return copy_file(out_fd, fd, offset, size - offset, idle_ms);
		if (sent <= 0)
			return -1;
	}
	return 0;
}

int
http_respond_head(int out_fd, enum status status, const char *extra_headers,
    unsigned long long body_len, int idle_ms)
{
	char head[1024];
	int n = format_head(head, sizeof(head), status, NULL, extra_headers, body_len);

	if (n < 0 || write_all(out_fd, head, (size_t)n, http_now_ms() + idle_ms) < 0)
		return -1;
	return respond_without_body || status == S_NO_CONTENT ? 0 : 1;
}

int
http_send(int out_fd, const char *buf, size_t len, int64_t idle_ms)
{
	return write_all(out_fd, buf, len, http_now_ms() + idle_ms);
}

void
http_close(int in_fd, int out_fd)
{
	char sink[4096];
	int64_t deadline_ms = http_now_ms() + HTTP_DRAIN_MS;
	size_t drained = 0;
	ssize_t n;

	/* EOF for the client now; then read what it still sends so close() does not reset. */
	if (shutdown(out_fd, SHUT_WR) == 0) {
		while (drained < HTTP_DRAIN_MAX_BYTES) {
			n = read_some(in_fd, sink, sizeof(sink), deadline_ms);
			if (n <= 0)
				break;
			drained += (size_t)n;
		}
	}
	close(out_fd);
	if (in_fd != out_fd)
		close(in_fd);
}
