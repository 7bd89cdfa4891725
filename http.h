/* http.h: one HTTP/1.x request in, one response out, under limits and deadlines. */
#ifndef LSO_HTTP_H
#define LSO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Limits of serving one request, each named once (area, what, unit). The
 * limits of a job are in job-internal.h; the settings' defaults in config.c.
 */
/* Request line plus headers; past this a request gets 431. */
#define HTTP_HEADER_MAX_BYTES 65536
/* A chunk-size line ("1a2b;ext=x\r\n") longer than this is not a chunk-size line. */
#define HTTP_CHUNK_LINE_MAX_BYTES 1024
/* After the response, how long and how much we drain so the client sees it, not a reset. */
#define HTTP_DRAIN_MS 500
#define HTTP_DRAIN_MAX_BYTES (256 * 1024)
/* A callback or progress URL: pydantic's HttpUrl limit. */
#define REQUEST_URL_MAX_CHARS 2083
/* JSON nesting deeper than this is refused (cJSON's own limit). */
#define REQUEST_JSON_DEPTH_MAX 1000
/*
 * A body of more JSON values than this is refused (422 json_invalid): cJSON
 * spends some 80 bytes on each, so 1 MiB of "1," would take 40 MiB; this many
 * take 5.
 */
#define REQUEST_JSON_VALUES_MAX 65536
/* A 422 lists at most this many problems, then one item saying how many more there were. */
#define REQUEST_PROBLEMS_MAX 100
/*
 * An ini inventory string makes at most this many hosts, groups, variables
 * and section marks; more is refused with a 422. Each costs some 200 bytes
 * (a host with a variable is two), so the tree stays within what a body of
 * REQUEST_JSON_VALUES_MAX values may take.
 */
#define REQUEST_INVENTORY_ENTRIES_MAX 32768
/* Inventory groups nested deeper than this are refused; a bad ini line is quoted up to this. */
#define REQUEST_INVENTORY_DEPTH_MAX 64
#define REQUEST_INVENTORY_QUOTE_MAX_BYTES 200
/* A file is sent in sendfile calls of at most this; a copy without sendfile reads this much at once. */
#define HTTP_FILE_CHUNK_BYTES (1 << 20)
#define HTTP_FILE_COPY_BYTES 65536
/* The API key (a longer credential file is refused, not cut). */
#define API_KEY_MAX_BYTES 4096
/* Upper bounds of the numeric settings: a year of seconds, 1 GiB, slots, retries, connections. */
#define SETTING_SECONDS_MAX (366LL * 24 * 3600)
#define SETTING_BYTES_MAX (1LL << 30)
#define SETTING_SLOTS_MAX 4096
#define SETTING_QUEUED_MAX 65536
#define SETTING_RETRIES_MAX 30
#define SETTING_CONNECTIONS_MAX 65536
/* One log line; longer ones are cut. */
#define LOG_LINE_MAX_BYTES 2048

/* The values are the HTTP status codes. */
enum status {
	S_CONTINUE = 100,
	S_OK = 200,
	S_CREATED = 201,
	S_ACCEPTED = 202,
	S_NO_CONTENT = 204,
	S_BAD_REQUEST = 400,
	S_UNAUTHORIZED = 401,
	S_FORBIDDEN = 403,
	S_NOT_FOUND = 404,
	S_METHOD_NOT_ALLOWED = 405,
	S_REQUEST_TIMEOUT = 408,
	S_CONFLICT = 409,
	S_GONE = 410,
	S_PAYLOAD_TOO_LARGE = 413,
	S_EXPECTATION_FAILED = 417,
	S_UNPROCESSABLE_CONTENT = 422,
	S_HEADER_FIELDS_TOO_LARGE = 431,
	S_INTERNAL_SERVER_ERROR = 500,
	S_NOT_IMPLEMENTED = 501,
	S_SERVICE_UNAVAILABLE = 503,
	S_VERSION_NOT_SUPPORTED = 505,
};

/*
 * A parsed request. The string members point into head[] (NUL-terminated in
 * place) or are NULL when the header was absent; body is malloc'ed.
 */
struct http_request {
	char head[HTTP_HEADER_MAX_BYTES + 1];
	size_t head_len;     /* bytes of head[] holding the header block */
	const char *method;
	const char *path;    /* target without the query string (absolute-form: its path) */
	bool head_only;      /* HEAD: served as GET, the responses without their body */
	int minor_version;   /* HTTP/1.x */
	const char *content_type;
	const char *authorization;
	bool expect_continue;
	char *body;          /* always NUL-terminated, may hold NULs itself */
	size_t body_len;
};

/* The outcome of reading: S_OK, or the status to answer with. */
enum status http_read_request(int in_fd, int out_fd, struct http_request *req,
    size_t max_body, int64_t deadline_ms);

/* Parse the header block in req->head[0..head_len), NUL-terminated at or after head_len. */
enum status http_parse_head(struct http_request *req, int64_t *content_length,
    bool *chunked);

void http_request_free(struct http_request *req);

const char *http_reason(enum status status);

/*
 * Write a whole response: status line, Content-Type: application/json,
 * Content-Length, Connection: close, any extra header lines (each ending in
 * "\r\n"), then the body. Returns 0, or -1 when the client is gone or too slow.
 */
int http_respond(int out_fd, enum status status, const char *extra_headers,
    const char *body, size_t body_len, int64_t deadline_ms);

/* The same with another Content-Type (NULL: application/json). A 204 gets no type, length or body. */
int http_respond_typed(int out_fd, enum status status, const char *content_type,
    const char *extra_headers, const char *body, size_t body_len, int64_t deadline_ms);

/*
 * A response whose body is the open regular file fd, size bytes from its
 * start, sent with sendfile; gives up when the client takes nothing for
 * idle_ms. 0, or -1 when the client is gone, too slow, or the file shrank.
 */
int http_respond_file(int out_fd, enum status status, const char *content_type,
    const char *extra_headers, int fd, off_t size, int idle_ms);

/*
 * The head alone of a response whose body (body_len bytes, JSON) the caller
 * then streams with http_send: 1 when the body is to follow, 0 when not
 * (HEAD), -1 when the client is gone or too slow.
 */
int http_respond_head(int out_fd, enum status status, const char *extra_headers,
    unsigned long long body_len, int idle_ms);

/* len bytes of a body to the client, which may take nothing for idle_ms at a time; 0 or -1. */
int http_send(int out_fd, const char *buf, size_t len, int64_t idle_ms);

/* Tell the client we are done (EOF), drain what it still sends, briefly. */
void http_close(int in_fd, int out_fd);

/* Milliseconds on the monotonic clock. */
int64_t http_now_ms(void);

/* The value of one hexadecimal digit, -1 for any other character. */
int http_hex_value(char c);

#endif
