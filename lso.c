/*
 * lso: serve one LSO API request on a connection handed over by systemd,
 * inetd or any launcher of that kind, then exit. Here: the handover, the
 * route table and its handlers, the answers table (every outcome's HTTP
 * status and wording), answering and the access log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "burst.h"
#include "config.h"
#include "docs.h"
#include "files.h"
#include "http.h"
#include "job.h"
#include "json.h"
#include "log.h"
#include "lso.h"
#include "playbook.h"
#include "resolve.h"
#include "run.h"
#include "runuser.h"
#include "validate.h"

/* One request and what we answer to it. */
struct exchange {
	int in_fd, out_fd;
	int64_t start_ms;
	struct http_request *req;
	enum status status;
	struct jbuf body;
	const char *extra_headers;
	const char *content_type;  /* NULL: application/json */
	job_id id;               /* empty when no job */
	char *program;           /* requested name, for the log (owned) */
	int return_code;         /* of a sync run */
	bool ran;
	bool answered;
	bool logged;
};

/* A full queue empties as jobs get slots: a client may try again soon. */
#define QUEUE_FULL_HEADERS "Retry-After: 5\r\n"

/* A route's handler; it sets status and body, or answers itself. */
typedef void handler(struct exchange *ex, const char *arg);

/*
 * Every outcome's HTTP status, and the detail of its {"detail": ...} body
 * (a format: a file's kind, name and root variable; a job's errno text).
 * NULL detail: the handler wrote the body.
 */
static const struct answer {
	enum status status;
	const char *detail;
} answers[] = {
	[OUTCOME_OK] = { S_OK, NULL },
	[RESOLVE_OUTSIDE] = { S_BAD_REQUEST, "Path '%s' is outside the configured root directory." },
	[RESOLVE_MISSING] = { S_GONE, "%s '%s' does not exist." },
	[RESOLVE_NOT_FILE] = { S_SERVICE_UNAVAILABLE, "%s '%s' is not a valid file." },
	[RESOLVE_NOT_EXECUTABLE] = { S_FORBIDDEN, "%s '%s' is not marked as executable." },
	[JOB_SHOWN] = { S_OK, NULL },
	[JOB_CANCELING] = { S_ACCEPTED, NULL },
	[JOB_MISSING] = { S_NOT_FOUND, "Job not found." },
	[JOB_FINISHED] = { S_CONFLICT, "Job already finished." },
	[JOB_UNRECORDED] = { S_INTERNAL_SERVER_ERROR, "Cannot record the job: %s." },
	[JOB_UNREADABLE] = { S_INTERNAL_SERVER_ERROR, "Cannot read the job's record: %s." },
	[JOB_NO_ID] = { S_INTERNAL_SERVER_ERROR, "No randomness for a job id." },
	[JOB_QUEUE_FULL] = { S_SERVICE_UNAVAILABLE,
	    "Too many jobs queued: %ld are waiting for a worker slot (LSO_MAX_QUEUED)." },
	[VALIDATE_PROBLEMS] = { S_UNPROCESSABLE_CONTENT, NULL },
	[FILES_LISTED] = { S_OK, NULL },
	[FILES_FOUND] = { S_OK, NULL },
	[FILES_DELETED] = { S_NO_CONTENT, NULL },
	[FILES_OUTSIDE] = { S_BAD_REQUEST, "Path '%s' is outside the configured root directory." },
	[FILES_MISSING] = { S_NOT_FOUND, "File '%s' does not exist for job '%s'" },
	[FILES_FAILED] = { S_INTERNAL_SERVER_ERROR, "Cannot read the job's files: %s." },
	[LSO_NO_ROUTE] = { S_NOT_FOUND, "Not Found" },
	[LSO_WRONG_METHOD] = { S_METHOD_NOT_ALLOWED, "Method Not Allowed" },
	[LSO_UNAUTHENTICATED] = { S_UNAUTHORIZED, "Not authenticated" },
	[LSO_OUT_OF_MEMORY] = { S_INTERNAL_SERVER_ERROR, "Out of memory." },
	[LSO_CONFIG_ERROR] = { S_INTERNAL_SERVER_ERROR, "Server configuration error." },
	[LSO_OUTPUT_UNREADABLE] = { S_INTERNAL_SERVER_ERROR, "Cannot read the run's output back: %s." },
};

/* The status and body of an outcome; the detail's format takes the arguments. */
static void
set_outcome(struct exchange *ex, enum outcome outcome, ...)
{
	const struct answer *a = &answers[outcome];
	struct jbuf detail = { 0 };
	va_list ap;

	ex->status = a->status;
	if (!a->detail)
		return;
	va_start(ap, outcome);
	jbuf_vprintf(&detail, a->detail, ap);
	va_end(ap);
	ex->body.len = 0;
	json_detail(&ex->body, detail.data ? detail.data : "");
	jbuf_free(&detail);
}

/* An HTTP-level failure (reading the request): the status is the outcome. */
static void
set_http_failure(struct exchange *ex, enum status status)
{
	ex->status = status;
	ex->body.len = 0;
	json_detail(&ex->body, http_reason(status));
}

/* --- the connection --- */

static bool
same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * The connection is fd 3 when the launcher passed it the systemd way
 * (sd_listen_fds protocol: LISTEN_PID is us, LISTEN_FDS >= 1), else stdin/stdout.
 * Read directly: loading libsystemd for two variables costs every request ~1.6 ms.
 */
static void
find_connection(int *in_fd, int *out_fd)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int null_fd;

	*in_fd = 0, *out_fd = 1;
	if (pid && fds && strtol(pid, NULL, 10) == (long)getpid() && strtol(fds, NULL, 10) >= 1) {
		*in_fd = *out_fd = 3;
		fcntl(3, F_SETFD, FD_CLOEXEC);
	}
	unsetenv("LISTEN_PID"), unsetenv("LISTEN_FDS"), unsetenv("LISTEN_FDNAMES");
	/* inetd hands the socket as stderr too: our log lines must not reach the client. */
	if (same_file(2, *in_fd) && (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		dup2(null_fd, 2);
		close(null_fd);
	}
	fcntl(*out_fd, F_SETFL, fcntl(*out_fd, F_GETFL) | O_NONBLOCK);
	if (*in_fd != *out_fd)
		fcntl(*in_fd, F_SETFL, fcntl(*in_fd, F_GETFL) | O_NONBLOCK);
}

/* Send the response (once) and close the connection. */
static void
answer(struct exchange *ex)
{
	if (ex->answered)
		return;
	ex->answered = true;
	if (ex->body.failed)
		set_outcome(ex, LSO_OUT_OF_MEMORY);
	http_respond_typed(ex->out_fd, ex->status, ex->content_type, ex->extra_headers,
	    ex->body.data, ex->body.len, http_now_ms() + config.read_timeout_sec * 1000);
	http_close(ex->in_fd, ex->out_fd);
}

static void
log_exchange(const struct exchange *ex)
{
	struct jbuf program = { 0 };
	char rc[16] = "-";

	/* Quoted and escaped: a name is the client's and may hold anything. */
	if (ex->program)
		json_string(&program, ex->program);
	if (ex->ran)
		snprintf(rc, sizeof(rc), "%d", ex->return_code);
	log_line(ex->id, "%s %s %d job=%s program=%s rc=%s ms=%lld",
	    ex->req->method ? ex->req->method : "-", ex->req->path ? ex->req->path : "-",
	    (int)ex->status, *ex->id ? ex->id : "-", program.data ? program.data : "-",
	    rc, (long long)(http_now_ms() - ex->start_ms));
	jbuf_free(&program);
}

/* --- admission: the requested file, and an id --- */

/* The 403/410/503 wording of a kind of file: executables and playbooks. */
struct file_kind {
	const char *what;        /* "Executable", "Filename" */
	bool need_exec;
};

static const struct file_kind executable_kind = { "Executable", true };
static const struct file_kind playbook_kind = { "Filename", false };

/* The 400/403/410/503 checks on a requested file, with upstream's wording. */
static bool
check_file_in_root(struct exchange *ex, const struct file_kind *kind, const char *root,
    const char *name, struct program *prog)
{
	enum outcome found = resolve_file(root, name, kind->need_exec, prog);

	if (found == OUTCOME_OK)
		return true;
	if (found == RESOLVE_OUTSIDE)
		set_outcome(ex, found, name);  /* upstream 5.x's words: no kind, no root */
	else
		set_outcome(ex, found, kind->what, name);
	return false;
}

/* A valid request's file passes its checks and gets a job id: false when answered already. */
static bool
admit(struct exchange *ex, const struct file_kind *kind, const char *root, const char *name,
    struct program *prog)
{
	const char *why;

	ex->program = strdup(name);
	/* Fail closed: no run user to switch to, nothing runs (as lso's user least of all). */
	if (!runuser_ready(&why)) {
		fprintf(stderr, "lso: %s\n", why);
		set_outcome(ex, LSO_CONFIG_ERROR);
		return false;
	}
	if (!check_file_in_root(ex, kind, root, name, prog))
		return false;
	if (job_new_id(ex->id) < 0) {
		set_outcome(ex, JOB_NO_ID);
		return false;
	}
	return true;
}

/* A sync run's answer, {"job_id": ..., "result": ...}, into s. */
static void
sync_body(struct spool_sink *s, const char *id, const struct run_result *result)
{
	spool_printf(s, "{\"job_id\":\"%s\",\"result\":", id);
	run_result_stream(s, result);
	spool_puts(s, "}");
}

/*
 * The output is in a file (run.h): its escaped size counted first, for the
 * Content-Length, then the answer streamed a chunk at a time. Answered here.
 */
static void
answer_sync(struct exchange *ex, const struct run_result *result)
{
	static struct spool_sink sink;
	int idle_ms = config.read_timeout_sec * 1000;

	spool_sink_count(&sink);
	errno = EIO;
	sync_body(&sink, ex->id, result);
	if (sink.failed) {
		set_outcome(ex, LSO_OUTPUT_UNREADABLE, strerror(errno));
		return;
	}
	ex->answered = true;
	if (http_respond_head(ex->out_fd, ex->status, ex->extra_headers,
	    (unsigned long long)sink.at, idle_ms) == 1) {
		spool_sink_fd(&sink, ex->out_fd, false, idle_ms);
		sync_body(&sink, ex->id, result);
		spool_flush(&sink);
	}
	http_close(ex->in_fd, ex->out_fd);
}

static void
run_sync(struct exchange *ex, const struct program *prog, const struct execute_request *x)
{
	struct run_result result;

	run_program(prog, x->args, x->nargs, ex->id, NULL, &result);
	ex->ran = true;
	ex->return_code = result.return_code;
	ex->status = S_CREATED;
	answer_sync(ex, &result);
	run_result_free(&result);
}

/* The connection's 0 and 1 are closed: /dev/null there, so no later descriptor lands on them. */
static void
keep_std_fds_open(void)
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	for (int fd = 0; fd < 2 && null_fd >= 0; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			dup2(null_fd, fd);
	if (null_fd > 2)
		close(null_fd);
}

/* Record the job, answer 201 at once, then hand the job its own process. */
static void
start_job(struct exchange *ex, const struct job_request *request, const char *body_format)
{
	struct job *job;
	const char *why;

	if (job_admit() < 0) {
		ex->id[0] = '\0';  /* no job was made */
		if (errno != EWOULDBLOCK) {
			why = strerror(errno);
			fprintf(stderr, "lso: state directory %s: queue tickets: %s\n", config.state_dir, why);
			set_outcome(ex, JOB_UNRECORDED, why);
			return;
		}
		set_outcome(ex, JOB_QUEUE_FULL, config.max_queued);
		ex->extra_headers = QUEUE_FULL_HEADERS;
		return;
	}
	if (job_submit(request, ex->id, &job) < 0) {
		why = strerror(errno);
		fprintf(stderr, "lso: state directory %s: %s\n", config.state_dir, why);
		set_outcome(ex, JOB_UNRECORDED, why);
		return;
	}
	ex->status = S_CREATED;
	jbuf_printf(&ex->body, body_format, ex->id);
	answer(ex);
	log_exchange(ex);
	ex->logged = true;
	keep_std_fds_open();
	job_start(job);
}

/* A body that is not what the route takes: 422 with pydantic's items (500 when memory ran out). */
static void
set_problems(struct exchange *ex, const struct validation *v)
{
	if (v->items.failed || v->inventory_rejected.failed) {
		set_outcome(ex, LSO_OUT_OF_MEMORY);
		return;
	}
	set_outcome(ex, VALIDATE_PROBLEMS);
	ex->body.len = 0;
	validate_detail(v, &ex->body);
}

/* --- the handlers --- */

static void
start_execute(struct exchange *ex, const struct execute_request *x, const struct program *prog)
{
	struct job_request request = { .kind = JOB_KIND_EXECUTE, .name = x->name,
		.args = x->args, .nargs = x->nargs, .callback = x->callback, .prog = prog };

	if (x->is_async)
		start_job(ex, &request, "{\"job_id\":\"%s\",\"result\":null}");
	else
		run_sync(ex, prog, x);
}

static void
handle_execute(struct exchange *ex, const char *arg)
{
	struct validation v = { 0 };
	struct execute_request x = { 0 };
	struct program prog = { .fd = -1, .dir_fd = -1 };

	(void)arg;
	if (!validate_execute(&v, ex->req, &x))
		set_problems(ex, &v);
	else if (admit(ex, &executable_kind, config.executables_root, x.name, &prog))
		start_execute(ex, &x, &prog);
	resolve_release(&prog);
	validate_execute_free(&x);
	validate_free(&v);
}

static void
start_playbook(struct exchange *ex, const struct playbook_request *r, const struct program *prog)
{
	/* The extra vars go from the client's tree to their file (job_submit): no YAML text of them here. */
	struct job_request request = { .kind = JOB_KIND_PLAYBOOK, .name = r->name, .prog = prog,
		.callback = r->callback, .progress = r->progress, .incremental = r->incremental,
		.inventory = r->inventory, .extra_vars = r->extra_vars };

	start_job(ex, &request, "{\"job_id\":\"%s\"}");
}

static void
handle_playbook(struct exchange *ex, const char *arg)
{
	struct validation v = { 0 };
	struct playbook_request r = { 0 };
	struct program prog = { .fd = -1, .dir_fd = -1 };

	(void)arg;
	if (!validate_playbook(&v, ex->req, &r))
		set_problems(ex, &v);
	else if (admit(ex, &playbook_kind, config.playbooks_root, r.name, &prog))
		start_playbook(ex, &r, &prog);
	resolve_release(&prog);
	validate_playbook_free(&r);
	validate_free(&v);
}

static void
handle_version(struct exchange *ex, const char *arg)
{
	(void)arg;
	ex->status = S_OK;
	jbuf_puts(&ex->body, "{\"api\":\"" LSO_API_VERSION "\",\"module\":\"" LSO_VERSION "\"}");
}

/* Built from openapi.json by the Makefile. */
static const char openapi_document[] =
#include "openapi.h"
    ;

static void
handle_openapi(struct exchange *ex, const char *arg)
{
	(void)arg;
	ex->status = S_OK;
	jbuf_add(&ex->body, openapi_document, sizeof(openapi_document) - 1);
}

/* A well-formed job id names the job in the log line (and its LSO_JOB_ID field). */
static void
note_job_id(struct exchange *ex, const char *id)
{
	if (job_id_valid(id))
		snprintf(ex->id, sizeof(ex->id), "%s", id);
}

/* A job route's outcome; a record that cannot be read is logged, with why (errno). */
static void
set_job_outcome(struct exchange *ex, enum outcome outcome, const char *id)
{
	const char *why = strerror(errno);

	if (outcome == JOB_UNREADABLE)
		fprintf(stderr, "lso: job %s: cannot read its record in %s: %s\n", id,
		    config.state_dir, why);
	set_outcome(ex, outcome, why);
}

static void
handle_job_show(struct exchange *ex, const char *id)
{
	enum outcome shown;
	off_t size = 0;
	int fd = -1;

	note_job_id(ex, id);
	shown = job_show(id, &fd, &size);
	set_job_outcome(ex, shown, id);
	if (shown != JOB_SHOWN)
		return;
	/* From the file to the socket (sendfile): a 16 MiB record costs no memory. */
	ex->answered = true;
	http_respond_file(ex->out_fd, ex->status, NULL, ex->extra_headers, fd, size,
	    config.read_timeout_sec * 1000);
	http_close(ex->in_fd, ex->out_fd);
	close(fd);
}

static void
handle_job_cancel(struct exchange *ex, const char *id)
{
	note_job_id(ex, id);
	set_job_outcome(ex, job_cancel(id, &ex->body), id);
}

/* --- documentation pages and files --- */

static void
handle_swagger(struct exchange *ex, const char *arg)
{
	(void)arg;
	ex->status = S_OK;
	ex->content_type = "text/html; charset=utf-8";
	docs_swagger_page(&ex->body);
}

static void
handle_redoc(struct exchange *ex, const char *arg)
{
	(void)arg;
	ex->status = S_OK;
	ex->content_type = "text/html; charset=utf-8";
	docs_redoc_page(&ex->body);
}

/*
 * The job id of a file route, as FastAPI reads a UUID path parameter
 * (percent-decoded, any case, with or without hyphens): false, with the 422
 * (or 500) set, when it is not one.
 */
static bool
files_job(struct exchange *ex, const char *arg, job_id id)
{
	char *raw = files_decode(arg, strcspn(arg, "/"));

	if (!raw) {
		set_outcome(ex, LSO_OUT_OF_MEMORY);
		return false;
	}
	if (files_parse_job_id(raw, id)) {
		note_job_id(ex, id);
		free(raw);
		return true;
	}
	set_outcome(ex, VALIDATE_PROBLEMS);
	ex->body.len = 0;
	validate_uuid_detail(&ex->body, "job_id", raw);
	free(raw);
	return false;
}

static void
handle_files_list(struct exchange *ex, const char *arg)
{
	enum outcome listed;
	job_id id;

	if (!files_job(ex, arg, id))
		return;
	listed = files_list(id, &ex->body);
	set_outcome(ex, listed, strerror(errno));
}

static void
handle_files_delete(struct exchange *ex, const char *arg)
{
	enum outcome deleted;
	job_id id;

	if (!files_job(ex, arg, id))
		return;
	deleted = files_delete(id);
	set_outcome(ex, deleted, strerror(errno));
}

/* The file's bytes straight from the file to the socket (sendfile): any size, no memory. */
static void
send_file(struct exchange *ex, int fd, off_t size, const char *name)
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	char *headers = NULL;

	/* A safe name needs no quoting: [A-Za-z0-9._/-] only. */
	if (asprintf(&headers, "Content-Disposition: attachment; filename=\"%s\"\r\n", base) < 0) {
		set_outcome(ex, LSO_OUT_OF_MEMORY);
		return;
	}
	ex->status = S_OK;
	ex->answered = true;
	http_respond_file(ex->out_fd, S_OK, "application/octet-stream", headers, fd, size,
	    config.read_timeout_sec * 1000);
	http_close(ex->in_fd, ex->out_fd);
	free(headers);
}

static void
handle_files_get(struct exchange *ex, const char *arg)
{
	struct validation v = { 0 };
	const char *encoded = strchr(arg, '/') + 1;
	enum outcome found;
	job_id id;
	off_t size;
	int fd;

	if (!files_job(ex, arg, id))
		return;
	if (!(ex->program = files_decode(encoded, strlen(encoded)))) {
		set_outcome(ex, LSO_OUT_OF_MEMORY);
		return;
	}
	if (!validate_safe_name(&v, "path", "filename", ex->program)) {
		set_problems(ex, &v);
		validate_free(&v);
		return;
	}
	found = files_open(id, ex->program, &fd, &size);
	if (found == FILES_FOUND) {
		send_file(ex, fd, size, ex->program);
		close(fd);
	} else if (found == FILES_MISSING) {
		set_outcome(ex, found, ex->program, id);
	} else {
		set_outcome(ex, found, found == FILES_OUTSIDE ? ex->program : strerror(errno));
	}
}

/* --- routing and the key --- */

/* What follows a route's prefix: nothing, one path segment, or a segment and more. */
enum route_arg { ARG_NONE, ARG_SEGMENT, ARG_REST };

struct route {
	const char *prefix;      /* the path, or what precedes the argument */
	enum route_arg arg;
	const char *suffix;      /* after an ARG_SEGMENT, "" for none */
	const char *method;
	handler *handle;
	bool public;             /* served without the key even when auth is on */
};

/* In order: a path matching two routes goes to the first with its method, as in FastAPI. */
static const struct route routes[] = {
	{ "/api/execute/", ARG_NONE, "", "POST", handle_execute, false },
	{ "/api/execute", ARG_NONE, "", "POST", handle_execute, false },
	{ "/api/playbook/", ARG_NONE, "", "POST", handle_playbook, false },
	{ "/api/playbook", ARG_NONE, "", "POST", handle_playbook, false },
	{ "/api/version", ARG_NONE, "", "GET", handle_version, false },
	{ "/api/version/", ARG_NONE, "", "GET", handle_version, false },
	{ "/api/openapi.json", ARG_NONE, "", "GET", handle_openapi, true },
	{ "/api/doc", ARG_NONE, "", "GET", handle_swagger, true },
	{ "/api/redoc", ARG_NONE, "", "GET", handle_redoc, true },
	{ "/api/jobs/", ARG_SEGMENT, "", "GET", handle_job_show, false },
	{ "/api/jobs/", ARG_SEGMENT, "", "DELETE", handle_job_cancel, false },
	{ "/api/files/", ARG_SEGMENT, "/delete", "DELETE", handle_files_delete, false },
	{ "/api/files/", ARG_REST, "", "GET", handle_files_get, false },
	{ "/api/files/", ARG_SEGMENT, "", "GET", handle_files_list, false },
};

/* Constant-time comparison, so the time taken tells nothing of the key. */
static bool
key_matches(const char *given, const char *key)
{
	size_t given_len = strlen(given), key_len = strlen(key);
	unsigned char diff = given_len != key_len;

	for (size_t i = 0; i < key_len; i++)
		diff |= (unsigned char)(key[i] ^ given[i < given_len ? i : 0]);
	return diff == 0;
}

/* Auth as upstream 5.x: with LSO_OAUTH2_ACTIVE, "Authorization: Bearer <key>" or 401. */
static bool
authorized(struct exchange *ex)
{
	const char *auth = ex->req->authorization, *key, *why;

	switch (config_auth(&key, &why)) {
	case CONFIG_AUTH_OFF:
		return true;
	case CONFIG_AUTH_BROKEN:
		/* Fail closed: on without a key lets nobody in, and says so. */
		fprintf(stderr, "lso: LSO_OAUTH2_ACTIVE is on but there is no API key: %s\n", why);
		set_outcome(ex, LSO_CONFIG_ERROR);
		return false;
	case CONFIG_AUTH_ON:
		break;
	}
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && key_matches(auth + 7, key))
		return true;
	set_outcome(ex, LSO_UNAUTHENTICATED);
	ex->extra_headers = "WWW-Authenticate: Bearer\r\n";
	return false;
}

static bool
path_matches(const struct route *r, const char *path, const char **arg)
{
	size_t n = strlen(r->prefix), segment;
	const char *after;

	if (r->arg == ARG_NONE)
		return strcmp(path, r->prefix) == 0;
	if (strncmp(path, r->prefix, n) != 0 || !(segment = strcspn(path + n, "/")))
		return false;
	after = path + n + segment;
	if (r->arg == ARG_REST && !(after[0] == '/' && after[1]))
		return false;
	if (r->arg == ARG_SEGMENT && strcmp(after, r->suffix) != 0)
		return false;
	*arg = path + n;
	return true;
}

/*
 * 405's Allow: the methods of every route the path matches, in the table's
 * order, each once, HEAD after GET (served for every GET route, RFC 9110
 * 9.3.2). No method's name is part of another's.
 */
static void
set_allow(char *header, size_t size, const char *path)
{
	const struct route *r;
	const char *arg, *separator = " ";
	size_t len = (size_t)snprintf(header, size, "Allow:");

	for (r = routes; r < routes + sizeof(routes) / sizeof(routes[0]); r++) {
		if (len >= size || !path_matches(r, path, &arg) || strstr(header, r->method))
			continue;
		len += (size_t)snprintf(header + len, size - len, "%s%s%s", separator, r->method,
		    strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
		separator = ", ";
	}
	if (len < size)
		snprintf(header + len, size - len, "\r\n");
}

/* Unknown paths get 404 and wrong methods 405 before the key is asked for, as FastAPI does. */
static void
route(struct exchange *ex)
{
	static char allow[64];
	const struct route *r;
	const char *arg = NULL;
	bool path_found = false;

	for (r = routes; r < routes + sizeof(routes) / sizeof(routes[0]); r++) {
		if (!path_matches(r, ex->req->path, &arg))
			continue;
		path_found = true;
		if (strcmp(r->method, ex->req->head_only ? "GET" : ex->req->method) != 0)
			continue;
		if (r->public || authorized(ex))
			r->handle(ex, arg);
		return;
	}
	if (!path_found) {
		set_outcome(ex, LSO_NO_ROUTE);
		return;
	}
	set_allow(allow, sizeof(allow), ex->req->path);
	ex->extra_headers = allow;
	set_outcome(ex, LSO_WRONG_METHOD);
}

/* --- main --- */

/* lso --recover: settle what dead runners left (a oneshot at boot). */
static int
recover(void)
{
	const char *bad_variable = config_load();

	if (bad_variable) {
		fprintf(stderr, "lso: %s is malformed or out of range\n", bad_variable);
		return EXIT_CONFIG;
	}
	if (job_recover() < 0) {
		fprintf(stderr, "lso: --recover: %s: %s\n", config.state_dir, strerror(errno));
		return EXIT_SYSTEM;
	}
	return 0;
}

static int
usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--version | --recover]\n"
	    "Serves one LSO API request on the connection it was started with, or, handed\n"
	    "a listening socket, each connection on it (burst mode).\n", argv0);
	return EXIT_CONFIG;
}

void
lso_serve(int in_fd, int out_fd)
{
	static struct http_request req;
	struct exchange ex = { .req = &req, .in_fd = in_fd, .out_fd = out_fd };

	ex.start_ms = http_now_ms();
	ex.status = http_read_request(in_fd, out_fd, &req, config.max_body_bytes,
	    ex.start_ms + config.read_timeout_sec * 1000);
	if (ex.status == S_OK && req.head_len == 0) {
		http_close(in_fd, out_fd);
		return; /* the client closed without a word */
	}
	if (ex.status != S_OK)
		set_http_failure(&ex, ex.status);
	else
		route(&ex);
	answer(&ex);
	if (!ex.logged)
		log_exchange(&ex);
	jbuf_free(&ex.body);
	free(ex.program);
	http_request_free(&req);
}

#ifndef LSO_NO_MAIN
int
main(int argc, char *argv[])
{
	const char *bad_variable;
	int in_fd, out_fd;
	bool listening;

	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("lso %s\n", LSO_VERSION);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "--recover") == 0)
		return recover();
	if (argc > 1)
		return usage(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	find_connection(&in_fd, &out_fd);
	/* Burst mode: handed a listening socket, not a connection (see burst.c). */
	listening = in_fd == 3 && burst_is_listening(in_fd);
	if ((bad_variable = config_load()) && listening) {
		fprintf(stderr, "lso: %s is malformed or out of range\n", bad_variable);
		return EXIT_CONFIG;
	}
	if (listening)
		return burst_serve(in_fd);
	if (bad_variable) {
		struct exchange ex = { .in_fd = in_fd, .out_fd = out_fd };

		fprintf(stderr, "lso: %s is malformed or out of range\n", bad_variable);
		set_outcome(&ex, LSO_CONFIG_ERROR);
		answer(&ex);
		jbuf_free(&ex.body);
		return EXIT_CONFIG;
	}
	lso_serve(in_fd, out_fd);
	return 0;
}
#endif
