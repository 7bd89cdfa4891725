/*
 * fuzz-request.c: libFuzzer harness for whole requests through lso_serve().
 *
 * Each input is the byte stream a client sends on one connection. Nothing can
 * run: EXECUTABLES_ROOT_DIR is unset, so a valid execute request gets 410
 * after validation, and the state directory is a fresh empty one, so the job
 * routes find nothing. The response lso writes is checked: one well-formed
 * HTTP/1.1 response, Content-Length exact, a status the API can give here, a
 * body that is valid UTF-8 and JSON of the documented shape.
 *
 * LSO_FUZZ_IGNORE (comma-separated) relaxes checks for bugs already reported,
 * so a long run can look past them: "utf8" (body bytes not valid UTF-8).
 *
 * Build: make tests/fuzz-request (built with -DLSO_NO_MAIN). Run: tests/fuzz.sh.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../http.h"
#include "../json.h"
#include "../lso.h"

#define FUZZ_MAX_BODY "65536"
#define FUZZ_TOKEN "fuzz-token"
/* Responses are small; a bigger one is a finding in itself. */
#define RESPONSE_MAX (1024 * 1024)
#define FD_CHECK_EVERY 500

static int in_keep = -1, out_keep = -1;
static long fds_at_start = -1;
static unsigned long iterations;
static char state_dir[] = "/tmp/lso-fuzz-state.XXXXXX";
static bool ignore_utf8;
static char response[RESPONSE_MAX + 1];
/* The stderr stream from before lso's log was silenced. */
static FILE *report;

static void
die(const char *what, const char *detail)
{
	fprintf(report ? report : stderr, "fuzz-request: invariant broken: %s%s%s\n", what,
	    detail ? ": " : "", detail ? detail : "");
	abort();
}

static long
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static void
remove_state_dir(void)
{
	rmdir(state_dir); /* it stays empty: nothing is ever submitted */
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *bad, *ignore = getenv("LSO_FUZZ_IGNORE");
	FILE *devnull;

	(void)argc, (void)argv;
	ignore_utf8 = ignore && strstr(ignore, "utf8");
	if (!mkdtemp(state_dir)) {
		perror("fuzz-request: mkdtemp");
		exit(1);
	}
	atexit(remove_state_dir);
	unsetenv("EXECUTABLES_ROOT_DIR");
	unsetenv("LSO_API_TOKEN");
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("STATE_DIRECTORY");
	setenv("LSO_STATE_DIR", state_dir, 1);
	setenv("LSO_READ_TIMEOUT_SEC", "1", 1);
	setenv("LSO_MAX_BODY_BYTES", FUZZ_MAX_BODY, 1);
	if ((bad = lso_config_load())) {
		fprintf(stderr, "fuzz-request: lso_config_load: %s\n", bad);
		exit(1);
	}
	/*
	 * lso logs a line per request with fprintf(stderr). Point the stdio
	 * stream elsewhere rather than fd 2: libFuzzer's own output and the
	 * sanitizer reports still go to fd 2 (libFuzzer took its FILE earlier).
	 */
	report = stderr;
	if ((devnull = fopen("/dev/null", "we")))
		stderr = devnull;
	in_keep = memfd_create("fuzz-request-in", MFD_CLOEXEC);
	out_keep = memfd_create("fuzz-request-out", MFD_CLOEXEC);
	if (in_keep < 0 || out_keep < 0) {
		perror("fuzz-request: memfd_create");
		exit(1);
	}
	fds_at_start = count_fds();
	return 0;
}

/* Empty memfd fd, then data written and the offset back at 0. */
static void
fill(int fd, const uint8_t *data, size_t size)
{
	size_t done = 0;
	ssize_t n;

	if (ftruncate(fd, 0) < 0)
		abort();
	while (done < size) {
		n = pwrite(fd, data + done, size - done, (off_t)done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
}

static size_t
read_response(void)
{
	struct stat st;
	size_t done = 0;
	ssize_t n;

	if (fstat(out_keep, &st) < 0)
		abort();
	if (st.st_size > RESPONSE_MAX)
		die("response over 1 MiB", NULL);
	while (done < (size_t)st.st_size) {
		n = pread(out_keep, response + done, (size_t)st.st_size - done, (off_t)done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	response[done] = '\0';
	return done;
}

static bool
mentions(const uint8_t *data, size_t size, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= size; i++)
		if (strncasecmp((const char *)data + i, word, n) == 0)
			return true;
	return false;
}

static bool
valid_utf8(const char *s, size_t len)
{
	size_t i = 0, seq;

	while (i < len) {
		if (!(seq = json_utf8_len((const unsigned char *)s + i, len - i)))
			return false;
		i += seq;
	}
	return true;
}

/* The statuses lso can answer with when nothing can run and no job exists. */
static bool
possible_status(int status)
{
	static const int possible[] = { 200, 400, 401, 404, 405, 408, 410, 413, 417,
		422, 431, 501, 505 };

	for (size_t i = 0; i < sizeof(possible) / sizeof(possible[0]); i++)
		if (status == possible[i])
			return true;
	return false;
}

static bool
known_error_type(const char *type)
{
	static const char *const types[] = { "missing", "string_type", "list_type",
		"bool_parsing", "bool_type", "url_parsing", "url_scheme", "url_type",
		"url_too_long", "value_error", "json_invalid", "model_attributes_type" };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* FastAPI's 422 list: [{"type", "loc": ["body", ...], "msg", "input"}, ...]. */
static void
check_422(const cJSON *detail)
{
	const cJSON *item, *type, *loc;

	if (!cJSON_IsArray(detail) || cJSON_GetArraySize(detail) == 0)
		die("422 detail is not a non-empty list", NULL);
	cJSON_ArrayForEach(item, detail) {
		type = cJSON_GetObjectItemCaseSensitive(item, "type");
		loc = cJSON_GetObjectItemCaseSensitive(item, "loc");
		if (!cJSON_IsString(type) || !known_error_type(type->valuestring))
			die("422 item with an unknown type", cJSON_IsString(type) ? type->valuestring : NULL);
		if (!cJSON_IsArray(loc) || !cJSON_IsString(cJSON_GetArrayItem(loc, 0)) ||
		    strcmp(cJSON_GetArrayItem(loc, 0)->valuestring, "body") != 0)
			die("422 item whose loc does not start with \"body\"", NULL);
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "msg")))
			die("422 item without msg", NULL);
		if (!cJSON_GetObjectItemCaseSensitive(item, "input"))
			die("422 item without input", NULL);
	}
}

static void
check_response(const uint8_t *data, size_t size, size_t len)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	char *head = response, *body, *cl;
	unsigned long content_length;
	int status;
	cJSON *json;

	if (len == 0) {
		if (size != 0)
			die("no response to a non-empty input", NULL);
		return;
	}
	if (strncmp(head, continue_line, sizeof(continue_line) - 1) == 0)
		head += sizeof(continue_line) - 1;
	if (sscanf(head, "HTTP/1.1 %3d ", &status) != 1 || strncmp(head, "HTTP/1.1 ", 9) != 0)
		die("response does not start with a status line", NULL);
	if (!possible_status(status)) {
		char s[16];
		snprintf(s, sizeof(s), "%d", status);
		die("status lso cannot give here", s);
	}
	if (!(body = strstr(head, "\r\n\r\n")))
		die("response head does not end", NULL);
	*body = '\0';
	body += 4;
	if (!(cl = strstr(head, "\r\nContent-Length: ")) ||
	    sscanf(cl, "\r\nContent-Length: %lu", &content_length) != 1 ||
	    content_length != len - (size_t)(body - response))
		die("Content-Length does not match the body", NULL);
	if (!strstr(head, "\r\nConnection: close"))
		die("no Connection: close", NULL);
	if (status == 405 && !strstr(head, "\r\nAllow: "))
		die("405 without Allow", NULL);
	if (status == 401 && !strstr(head, "\r\nWWW-Authenticate: Bearer"))
		die("401 without WWW-Authenticate", NULL);
	if (!ignore_utf8 && !valid_utf8(body, content_length))
		die("response body is not valid UTF-8", NULL);
	json = cJSON_ParseWithLength(body, content_length);
	if (!cJSON_IsObject(json))
		die("response body is not a JSON object", NULL);
	if (status >= 400) {
		const cJSON *detail = cJSON_GetObjectItemCaseSensitive(json, "detail");
		if (status == 422)
			check_422(detail);
		else if (!cJSON_IsString(detail))
			die("error body without a detail string", NULL);
	}
	cJSON_Delete(json);
	(void)data;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long fds;

	/* A request that brings Authorization is served with a token configured. */
	config.api_token = mentions(data, size, "authorization") ? FUZZ_TOKEN : NULL;
	fill(in_keep, data, size);
	fill(out_keep, NULL, 0);
	/* lso_serve closes both (http_close): hand it duplicates. */
	lso_serve(dup(in_keep), dup(out_keep));
	check_response(data, size, read_response());

	if (++iterations % FD_CHECK_EVERY == 0 && (fds = count_fds()) > fds_at_start) {
		char s[64];
		snprintf(s, sizeof(s), "%ld open, %ld at start", fds, fds_at_start);
		die("fd leak", s);
	}
	return 0;
}
