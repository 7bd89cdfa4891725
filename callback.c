/* callback.c: POSTing a job's result (and playbook progress) with libcurl, loaded on use; retries. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "job-internal.h"
#include "log.h"
#include "lso.h"

/* libcurl's functions, loaded here only: every other path stays lean. */
struct callback_curl {
	void *lib;
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

/* How a failure to load libcurl begins: no later attempt would do better. */
#define CALLBACK_NO_CURL "cannot load libcurl: "

/* Once per process: a runner, a progress process or a delivery of its own. */
struct callback_curl *
callback_load_curl(char *why, size_t why_size)
{
	static struct callback_curl curl;
	static bool loaded;
	struct callback_curl *c = &curl;

	if (loaded)
		return c;
	c->lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!c->lib) {
		snprintf(why, why_size, CALLBACK_NO_CURL "%s", dlerror());
		return NULL;
	}
#define LOAD(field, symbol) \
	if (!(*(void **)&c->field = dlsym(c->lib, symbol))) { \
		snprintf(why, why_size, CALLBACK_NO_CURL "it lacks %s", symbol); \
		return NULL; \
	}
	LOAD(easy_init, "curl_easy_init")
	LOAD(easy_setopt, "curl_easy_setopt")
	LOAD(easy_perform, "curl_easy_perform")
	LOAD(easy_getinfo, "curl_easy_getinfo")
	LOAD(easy_cleanup, "curl_easy_cleanup")
	LOAD(easy_strerror, "curl_easy_strerror")
	LOAD(slist_append, "curl_slist_append")
	LOAD(slist_free_all, "curl_slist_free_all")
#undef LOAD
	loaded = true;
	return c;
}

static size_t
discard_response(char *data, size_t size, size_t n, void *unused)
{
	(void)data, (void)unused;
	return size * n;
}

/* A body read from a file, a chunk at a time, as libcurl asks for it. */
struct file_body {
	int fd;
	off_t at, size;
};

static size_t
read_body(char *buffer, size_t size, size_t n, void *arg)
{
	struct file_body *body = arg;
	size_t want = size * n;
	ssize_t got;

	if ((off_t)want > body->size - body->at)
		want = (size_t)(body->size - body->at);
	if (want == 0)
		return 0;
	do
		got = pread(body->fd, buffer, want, body->at);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	body->at += got;
	return (size_t)got;
}

/* libcurl sends the body again (a connection reused and lost): from where it says. */
static int
seek_body(void *arg, curl_off_t offset, int origin)
{
	struct file_body *body = arg;

	if (origin != SEEK_SET || offset < 0 || offset > body->size)
		return CURL_SEEKFUNC_CANTSEEK;
	body->at = (off_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* One POST of body (in memory) or of file (when body is NULL). */
static long
post(struct callback_curl *c, const char *url, const struct jbuf *body, struct file_body *file,
    char *why, size_t why_size)
{
	struct curl_slist *headers = NULL;
	CURL *curl = c->easy_init();
	long http_status = 0;
	CURLcode rc;

	if (!curl) {
		snprintf(why, why_size, "curl_easy_init failed");
		return 0;
	}
	headers = c->slist_append(headers, "Content-Type: application/json");
	c->easy_setopt(curl, CURLOPT_URL, url);
	c->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	c->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	c->easy_setopt(curl, CURLOPT_TIMEOUT, config.callback_timeout_sec);
	c->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	c->easy_setopt(curl, CURLOPT_USERAGENT, "lso/" LSO_VERSION);
	c->easy_setopt(curl, CURLOPT_POST, 1L);
	if (body) {
		c->easy_setopt(curl, CURLOPT_POSTFIELDS, body->data);
		c->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	} else {
		file->at = 0;
		c->easy_setopt(curl, CURLOPT_READFUNCTION, read_body);
		c->easy_setopt(curl, CURLOPT_READDATA, file);
		c->easy_setopt(curl, CURLOPT_SEEKFUNCTION, seek_body);
		c->easy_setopt(curl, CURLOPT_SEEKDATA, file);
		c->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)file->size);
	}
	c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_response);
	rc = c->easy_perform(curl);
	if (rc == CURLE_OK)
		c->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
	else
		snprintf(why, why_size, "%s", c->easy_strerror(rc));
	c->easy_cleanup(curl);
	c->slist_free_all(headers);
	return http_status;
}

long
callback_post(struct callback_curl *c, const char *url, const struct jbuf *body,
    char *why, size_t why_size)
{
	return post(c, url, body, NULL, why, why_size);
}

static void
set_last_error(struct job *j, const char *error)
{
	free(j->last_error);
	j->last_error = error ? strdup(error) : NULL;
}

static void
log_attempt(const struct job *j, const char *outcome)
{
	log_line(j->id, "callback job=%s attempt=%ld %s", j->id, j->attempts, outcome);
}

/* Each non-empty line of text as a JSON string of the array being written. */
void
callback_json_lines(struct jbuf *b, const char *text, size_t len, bool *first)
{
	const char *end = text + len, *nl;

	for (; text < end; text = nl + 1) {
		nl = memchr(text, '\n', (size_t)(end - text));
		if (!nl)
			nl = end;
		if (nl > text) {
			jbuf_puts(b, *first ? "\"" : ",\"");
			json_escape(b, text, (size_t)(nl - text), true);
			jbuf_puts(b, "\"");
			*first = false;
		}
	}
}

void
callback_add_line(struct job *j, const char *line, size_t len)
{
	struct jbuf b = { 0 };
	ssize_t n;

	if (j->lines_raw_bytes + len + 1 > config.max_output_bytes)
		return;
	if (!j->has_lines) {
		if ((j->lines_fd = spool_open_small(&j->lines_in_memory)) < 0)
			return;
		j->has_lines = true;
	}
	jbuf_puts(&b, ",\"");
	json_escape(&b, line, len, true);
	jbuf_puts(&b, "\"");
	if (!b.failed && spool_spill(&j->lines_fd, &j->lines_in_memory, j->lines_len + (off_t)b.len) == 0 &&
	    (n = pwrite(j->lines_fd, b.data, b.len, j->lines_len)) == (ssize_t)b.len) {
		j->lines_len += n;
		j->lines_raw_bytes += len + 1;
	}
	jbuf_free(&b);
}

/* Each non-empty line of the spool's [0, len) as a JSON string of the array being written. */
static int
spool_lines(struct spool_sink *s, int fd, off_t len, bool *first)
{
	char buf[SPOOL_CHUNK_BYTES];
	off_t start = 0, at = 0;
	ssize_t n;

	for (; at < len; at += n) {
		size_t want = len - at < (off_t)sizeof(buf) ? (size_t)(len - at) : sizeof(buf);
		if ((n = pread(fd, buf, want, at)) <= 0)
			return -1;
		for (ssize_t i = 0; i <= n; i++) {
			off_t end = at + i;
			if (i < n ? buf[i] != '\n' : end != len)
				continue;
			if (end > start) {
				spool_puts(s, *first ? "\"" : ",\"");
				if (spool_escape_range(s, fd, start, end) < 0)
					return -1;
				spool_puts(s, "\"");
				*first = false;
			}
			start = end + 1;
		}
	}
	return 0;
}

/* Each non-empty line of a run's output (its spool, then our notes), for the array being written. */
static void
output_lines(struct spool_sink *s, const struct run_result *result)
{
	struct jbuf b = { 0 };
	bool first = true;

	if (result->has_spool && spool_lines(s, result->spool_fd, result->spooled, &first) < 0)
		s->failed = true;
	callback_json_lines(&b, result->output.data ? result->output.data : "", result->output.len,
	    &first);
	spool_put_jbuf(s, &b);
}

/*
 * A playbook's callback, in upstream's shape: {"status", "job_id", "output":
 * [non-empty stdout lines], "return_code"}; a run that never ran (or was lost)
 * says why in one line.
 */
static void
playbook_callback_body(const struct job *j, struct spool_sink *s)
{
	const char *status = job_status_names[j->status == JOB_LOST ? JOB_FAILED : j->status];
	const char *failure = j->status == JOB_LOST ? JOB_MSG_LOST : j->failure;
	struct jbuf b = { 0 };

	spool_printf(s, "{\"status\":\"%s\",\"job_id\":\"%s\",\"output\":[", status, j->id);
	if (failure) {
		jbuf_puts(&b, "\"Ansible playbook run failed: ");
		json_escape(&b, failure, strlen(failure), true);
		jbuf_puts(&b, "\"");
		spool_put_jbuf(s, &b);
	} else if (j->has_lines && j->lines_len > 0) {
		/* Each line as ,"line": the first comma dropped. */
		if (spool_copy(s, j->lines_fd, 1, j->lines_len) < 0)
			s->failed = true;
	} else {
		output_lines(s, &j->result);
	}
	spool_printf(s, "],\"return_code\":%d}", failure ? -1 : j->result.return_code);
}

/* The body into s, as callback_body says. */
static void
write_body(const struct job *j, struct spool_sink *s)
{
	if (j->kind == JOB_KIND_PLAYBOOK) {
		playbook_callback_body(j, s);
		return;
	}
	spool_printf(s, "{\"job_id\":\"%s\",\"result\":", j->id);
	if (record_result_text(j->id, s) < 0)
		s->failed = true;
	spool_puts(s, "}");
}

void
callback_save_body(const struct job *j, enum job_status status)
{
	static struct spool_sink sink;
	struct job as_final = *j;
	int fd = record_callback_open(j->id, true), saved;

	as_final.status = status;
	if (fd >= 0) {
		spool_sink_fd(&sink, fd, true, 0);
		errno = EIO;
		playbook_callback_body(&as_final, &sink);
		if (spool_flush(&sink) == 0 && record_sync_data(fd) == 0) {
			close(fd);
			return;
		}
	}
	saved = errno;
	if (fd >= 0)
		close(fd);
	log_line(j->id, "lso: job %s: cannot save its callback's body (%s): a resumed delivery rebuilds it",
	    j->id, strerror(saved));
}

/*
 * The body the callback receives, upstream's shape for each kind of job, in
 * an unnamed file (spool.h); its size in *size. An execute job's is built
 * from its record, the result's text as recorded: a first attempt and one
 * resumed from the record (a GET, lso --recover) send the same bytes, and
 * neither holds the output in memory. -1 with errno.
 */
/* About how big the body will be: the record's size, or the lines' (a playbook's). */
static off_t
body_size_hint(const struct job *j)
{
	char path[PATH_MAX];
	struct stat st;

	if (j->kind == JOB_KIND_PLAYBOOK)
		return (j->has_lines ? j->lines_len : 0) + (j->result.has_spool ? j->result.spooled : 0) +
		    (off_t)j->result.output.len;
	return record_path(path, "jobs", j->id, ".json") && stat(path, &st) == 0 ? st.st_size : (off_t)SPOOL_IN_MEMORY_MAX_BYTES + 1;
}

static int
callback_body(const struct job *j, off_t *size)
{
	static struct spool_sink sink;
	struct stat st;
	int fd;

	/* A playbook's, saved before its final record (a lost job's says so, whatever was saved). */
	if (j->kind == JOB_KIND_PLAYBOOK && j->status != JOB_LOST &&
	    (fd = record_callback_open(j->id, false)) >= 0) {
		if (fstat(fd, &st) == 0 && st.st_size > 0) {
			*size = st.st_size;
			return fd;
		}
		close(fd);
	}
	if ((fd = spool_open_for(body_size_hint(j))) < 0)
		return -1;
	spool_sink_fd(&sink, fd, true, 0);
	errno = EIO;
	write_body(j, &sink);
	if (spool_flush(&sink) < 0) {
		int saved = errno;
		close(fd);
		return errno = saved, -1;
	}
	*size = sink.at;
	return fd;
}

/* Are more attempts worth it after this outcome? Not after a 3xx or 4xx. */
static bool
worth_retrying(long http_status)
{
	return http_status == 0 || http_status >= 500;
}

/*
 * POST the result to the callback URL: retried with exponential backoff on
 * connection errors, timeouts and 5xx; recorded after every attempt.
 */
void
callback_deliver(struct job *j)
{
	struct callback_curl *curl;
	struct file_body body = { .fd = -1 };
	char why[CURL_ERROR_SIZE + 64], outcome[CURL_ERROR_SIZE + 96];
	long http_status = 0, backoff_ms = CALLBACK_BACKOFF_FIRST_MS;

	if (!j->callback_url || j->delivered)
		return;
	if (!(curl = callback_load_curl(why, sizeof(why)))) {
		/* A failed attempt, and the last one (callback_pending): no delivery process forked again. */
		j->attempts++;
		set_last_error(j, why);
		record_write(j, false);
		log_attempt(j, why);
		return;
	}
	if ((body.fd = callback_body(j, &body.size)) < 0) {
		/* No body to send (no file for it, the record unreadable): a failed attempt, tried again later. */
		snprintf(why, sizeof(why), "cannot build the body: %s", strerror(errno));
		j->attempts++;
		set_last_error(j, why);
		record_write(j, false);
		log_attempt(j, why);
		return;
	}
	while (j->attempts <= config.callback_retries) {
		if (j->attempts > 0 && j->last_error) {
			struct timespec pause = { backoff_ms / 1000, (backoff_ms % 1000) * 1000000 };
			while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
				;
			backoff_ms = backoff_ms * 2 > CALLBACK_BACKOFF_MAX_MS ? CALLBACK_BACKOFF_MAX_MS : backoff_ms * 2;
		}
		*why = '\0';
		http_status = post(curl, j->callback_url, NULL, &body, why, sizeof(why));
		j->attempts++;
		j->delivered = http_status >= 200 && http_status < 300;
		if (http_status)
			snprintf(why, sizeof(why), "HTTP %ld", http_status);
		set_last_error(j, j->delivered ? NULL : why);
		record_write(j, false);
		snprintf(outcome, sizeof(outcome), "%s", why);
		log_attempt(j, outcome);
		if (j->delivered || !worth_retrying(http_status))
			break;
	}
	close(body.fd);
}

/* Deliver what a dead runner left undelivered, unless the receiver refused it or libcurl is missing. */
bool
callback_pending(const struct job *j)
{
	return j->callback_url && !j->delivered && j->attempts <= config.callback_retries &&
	    !(j->last_error && (strncmp(j->last_error, "HTTP 3", 6) == 0 ||
	    strncmp(j->last_error, "HTTP 4", 6) == 0 ||
	    strncmp(j->last_error, CALLBACK_NO_CURL, strlen(CALLBACK_NO_CURL)) == 0));
}
