/*
 * lso: serve one LSO API request on a connection handed over by systemd,
 * inetd or any launcher of that kind, then exit.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "burst.h"
#include "http.h"
#include "inventory.h"
#include "job.h"
#include "json.h"
#include "lso.h"
#include "yaml.h"

struct config config;

/* Where a credential token may be, and how long it may be. */
#define TOKEN_CREDENTIAL "lso-token"
#define TOKEN_MAX 4096
/* Upper bounds of the numeric settings: a year of seconds, 1 GiB. */
#define SECONDS_MAX (366LL * 24 * 3600)
#define SIZE_LIMIT_MAX (1LL << 30)
/* pydantic's HttpUrl limit. */
#define URL_MAX 2083
/* JSON nesting deeper than this is refused (cJSON's own limit). */
#define JSON_DEPTH_MAX 1000

/* One request and what we answer to it. */
struct exchange {
	int in_fd, out_fd;
	int64_t start_ms;
	struct http_request *req;
	enum status status;
	struct jbuf body;
	const char *extra_headers;
	job_id id;               /* empty when no job */
	char *program;           /* requested name, for the log (owned) */
	int return_code;         /* of a sync run */
	bool ran;
	bool answered;
	bool logged;
};

/* A route's handler; it sets status and body, or answers itself. */
typedef void handler(struct exchange *ex, const char *arg);

struct route {
	const char *prefix;      /* path, or prefix when has_arg */
	bool has_arg;
	const char *method;
	handler *handle;
	const char *allow;       /* the route's methods, for 405 */
};

static void
fail(struct exchange *ex, enum status status, const char *detail)
{
	ex->status = status;
	ex->body.len = 0;
	json_detail(&ex->body, detail);
}

/* --- configuration --- */

static const char *
env_or(const char *name, const char *fallback)
{
	const char *value = getenv(name);

	return value && *value ? value : fallback;
}

/* A positive whole number from the environment, or the default; -1 when malformed. */
static long long
env_number(const char *name, long long fallback)
{
	const char *value = getenv(name);
	char *end;
	long long n;

	if (!value || !*value)
		return fallback;
	errno = 0;
	n = strtoll(value, &end, 10);
	if (errno || *end || n < 0)
		return -1;
	return n;
}

/*
 * Seconds with up to three decimals ("30", "0.25") from the environment, in
 * milliseconds, or the default; -1 when malformed or above SECONDS_MAX.
 */
static long long
env_seconds_ms(const char *name, long long fallback_ms)
{
	const char *value = getenv(name), *p;
	long long ms = 0, scale = 1000;

	if (!value || !*value)
		return fallback_ms;
	for (p = value; *p >= '0' && *p <= '9' && ms <= SECONDS_MAX * 1000; p++)
		ms = ms * 10 + (*p - '0') * 1000;
	if (p == value || ms > SECONDS_MAX * 1000)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && scale > 1; p++)
			ms += (*p - '0') * (scale /= 10);
	return *p ? -1 : ms;
}

/* The token from LSO_API_TOKEN, else from the systemd credential lso-token. */
static const char *
load_token(void)
{
	static char token[TOKEN_MAX + 1];
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];
	size_t len;
	FILE *f;

	if (getenv("LSO_API_TOKEN") && *getenv("LSO_API_TOKEN"))
		return getenv("LSO_API_TOKEN");
	if (!dir || snprintf(path, sizeof(path), "%s/%s", dir, TOKEN_CREDENTIAL) >= (int)sizeof(path))
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	len = fread(token, 1, TOKEN_MAX, f);
	fclose(f);
	token[len] = '\0';
	token[strcspn(token, "\r\n")] = '\0';
	return *token ? token : NULL;
}

const char *
lso_config_load(void)
{
	static const struct {
		const char *name;
		long long fallback, min, max;
	} numbers[] = {
		{ "EXECUTABLE_TIMEOUT_SEC", 300, 1, SECONDS_MAX },
		{ "REQUEST_TIMEOUT_SEC", 10, 1, SECONDS_MAX },
		{ "MAX_THREAD_POOL_WORKERS", 0, 0, 4096 }, /* 0: decided when needed */
		{ "LSO_MAX_BODY_BYTES", 1048576, 1, SIZE_LIMIT_MAX },
		{ "LSO_MAX_OUTPUT_BYTES", 16777216, 1, SIZE_LIMIT_MAX },
		{ "LSO_READ_TIMEOUT_SEC", 10, 1, SECONDS_MAX },
		{ "LSO_CALLBACK_RETRIES", 5, 0, 30 },
		{ "ANSIBLE_PLAYBOOK_TIMEOUT_SEC", 300, 1, SECONDS_MAX },
		{ "LSO_PLAYBOOK_MAX_SEC", 86400, 1, SECONDS_MAX },
		{ "LSO_MAX_CONNECTIONS", 64, 1, 65536 },
	};
	long long value[sizeof(numbers) / sizeof(numbers[0])];

	config.read_timeout_sec = 10; /* lets even a configuration error be answered */

	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		value[i] = env_number(numbers[i].name, numbers[i].fallback);
		if (value[i] < numbers[i].min || value[i] > numbers[i].max)
			return numbers[i].name;
	}
	config.executable_timeout_sec = (long)value[0];
	config.request_timeout_sec = (long)value[1];
	config.max_workers = (long)value[2];
	config.max_body_bytes = (size_t)value[3];
	config.max_output_bytes = (size_t)value[4];
	config.read_timeout_sec = (long)value[5];
	config.callback_retries = (long)value[6];
	config.playbook_idle_sec = (long)value[7];
	config.playbook_max_sec = (long)value[8];
	config.max_connections = (long)value[9];
	if ((config.idle_exit_ms = env_seconds_ms("LSO_IDLE_EXIT_SEC", 30000)) < 0)
		return "LSO_IDLE_EXIT_SEC";
	config.playbooks_root = env_or("ANSIBLE_PLAYBOOKS_ROOT_DIR", NULL);
	config.ansible_playbook = env_or("ANSIBLE_PLAYBOOK", NULL);
	config.executables_root = env_or("EXECUTABLES_ROOT_DIR", NULL);
	config.state_dir = env_or("LSO_STATE_DIR", env_or("STATE_DIRECTORY", "/var/lib/lso"));
	config.api_token = NULL;
	config.api_token_loaded = false;
	return NULL;
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
		fail(ex, S_INTERNAL_SERVER_ERROR, "Out of memory.");
	http_respond(ex->out_fd, ex->status, ex->extra_headers, ex->body.data,
	    ex->body.len, http_now_ms() + config.read_timeout_sec * 1000);
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
	job_log(ex->id, "%s %s %d job=%s program=%s rc=%s ms=%lld",
	    ex->req->method ? ex->req->method : "-", ex->req->path ? ex->req->path : "-",
	    (int)ex->status, *ex->id ? ex->id : "-", program.data ? program.data : "-",
	    rc, (long long)(http_now_ms() - ex->start_ms));
	jbuf_free(&program);
}

/* --- request validation, with pydantic's error shapes --- */

/* The collected 422 items: a JSON array under construction. */
struct problems {
	struct jbuf items;
	size_t count;
};

/*
 * cJSON ends strings at NUL, so while it parses a body with "\u0000" escapes,
 * each stands in as a code point the body does not hold otherwise (raw or
 * escaped); empty when the body has none.
 */
static char nul_standin[5];

/* Append JSON text: stand-ins back to \u0000, bytes that are not UTF-8 to U+FFFD. */
static void
add_repaired(struct jbuf *b, const char *json)
{
	const unsigned char *u = (const unsigned char *)json;
	size_t len = strlen(json), i = 0, seq;

	while (i < len) {
		if (*nul_standin && strncmp(json + i, nul_standin, 4) == 0) {
			jbuf_puts(b, "\\u0000");
			i += 4;
		} else if ((seq = json_utf8_len(u + i, len - i)) > 0) {
			jbuf_add(b, json + i, seq);
			i += seq;
		} else {
			jbuf_add(b, "\xef\xbf\xbd", 3);
			i++;
		}
	}
}

/* One 422 item; loc_tail is the JSON of loc after "body" (our own field names). */
static void
problem_at(struct problems *p, const char *type, const char *loc_tail, const char *msg,
    const cJSON *input)
{
	char *input_json = input ? cJSON_PrintUnformatted(input) : NULL;

	jbuf_puts(&p->items, p->count++ ? "," : "[");
	jbuf_printf(&p->items, "{\"type\":\"%s\",\"loc\":[\"body\"%s],\"msg\":", type, loc_tail);
	json_string(&p->items, msg);
	jbuf_puts(&p->items, ",\"input\":");
	add_repaired(&p->items, input_json ? input_json : "null");
	jbuf_puts(&p->items, "}");
	free(input_json);
}

static void
problem(struct problems *p, const char *type, const char *field, long index,
    const char *msg, const cJSON *input)
{
	char loc_tail[96] = "";

	if (field && index >= 0)
		snprintf(loc_tail, sizeof(loc_tail), ",\"%s\",%ld", field, index);
	else if (field)
		snprintf(loc_tail, sizeof(loc_tail), ",\"%s\"", field);
	problem_at(p, type, loc_tail, msg, input);
}

/* The last member named name (Python's json keeps the last of duplicates). */
static cJSON *
member(const cJSON *object, const char *name)
{
	cJSON *found = NULL, *item;

	cJSON_ArrayForEach(item, object)
		if (item->string && strcmp(item->string, name) == 0)
			found = item;
	return found;
}

static bool
has_nul(const char *s, bool body_had_nul)
{
	return body_had_nul && *nul_standin && strstr(s, nul_standin);
}

/* A string field: NULL when it is absent or wrong (and a problem was noted). */
static const char *
string_field(struct problems *p, const cJSON *item, const char *field, long index,
    bool body_had_nul)
{
	if (!cJSON_IsString(item)) {
		problem(p, "string_type", field, index, "Input should be a valid string", item);
		return NULL;
	}
	if (has_nul(item->valuestring, body_had_nul)) {
		problem(p, "value_error", field, index,
		    "Value error, string must not hold a NUL character", item);
		return NULL;
	}
	return item->valuestring;
}

/* pydantic's lax bool: true/false, 0/1 and the usual words. */
static bool
lax_bool(struct problems *p, const cJSON *item, const char *field, bool fallback)
{
	static const char *const yes[] = { "true", "1", "yes", "on", "t", "y" };
	static const char *const no[] = { "false", "0", "no", "off", "f", "n" };

	if (!item)
		return fallback;
	if (cJSON_IsBool(item))
		return cJSON_IsTrue(item);
	if (cJSON_IsNumber(item) && (item->valuedouble == 0 || item->valuedouble == 1))
		return item->valuedouble == 1;
	if (cJSON_IsString(item))
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (strcasecmp(item->valuestring, yes[i]) == 0)
				return true;
			if (strcasecmp(item->valuestring, no[i]) == 0)
				return false;
		}
	if (cJSON_IsString(item) || cJSON_IsNumber(item))
		problem(p, "bool_parsing", field, -1,
		    "Input should be a valid boolean, unable to interpret input", item);
	else
		problem(p, "bool_type", field, -1, "Input should be a valid boolean", item);
	return fallback;
}

/* Why url is not an absolute http(s) URL with a host, or NULL when it is. */
static const char *
url_problem(const char *url, const char **type)
{
	size_t scheme_len = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	const char *host;

	*type = "url_parsing";
	if (strlen(url) > URL_MAX) {
		*type = "url_too_long";
		return "URL should have at most 2083 characters";
	}
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 127)
			return "Input should be a valid URL, invalid character";
	if (scheme_len == 0 || url[scheme_len] != ':' ||
	    !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", url[0]))
		return "Input should be a valid URL, relative URL without a base";
	if (!((scheme_len == 4 && strncasecmp(url, "http", 4) == 0) ||
	    (scheme_len == 5 && strncasecmp(url, "https", 5) == 0))) {
		*type = "url_scheme";
		return "URL scheme should be 'http' or 'https'";
	}
	host = url + scheme_len + 1;
	host += strspn(host, "/");
	if (strchr(host, '@'))
		host = strchr(host, '@') + 1;
	if (*host == '\0' || strchr("/?#:", *host))
		return "Input should be a valid URL, empty host";
	return NULL;
}

/* An optional http(s) URL field: NULL when absent, null or wrong. */
static const char *
url_field(struct problems *p, const cJSON *item, const char *field, bool body_had_nul)
{
	const char *why, *type;

	if (!item || cJSON_IsNull(item))
		return NULL;
	if (!cJSON_IsString(item)) {
		problem(p, "url_type", field, -1, "URL input should be a string or URL", item);
		return NULL;
	}
	why = url_problem(item->valuestring, &type);
	if (!why && has_nul(item->valuestring, body_had_nul))
		why = "Input should be a valid URL, invalid character";
	if (why) {
		problem(p, type, field, -1, why, item);
		return NULL;
	}
	return item->valuestring;
}

/* What an execute request asks for, once valid. */
struct execute_request {
	const char *name;
	const char **args;
	size_t nargs;
	const char *callback;
	bool is_async;
};

static void
parse_args(struct problems *p, const cJSON *item, struct execute_request *x,
    bool body_had_nul)
{
	const cJSON *arg;
	long i = 0;

	if (!item)
		return;
	if (!cJSON_IsArray(item)) {
		problem(p, "list_type", "args", -1, "Input should be a valid list", item);
		return;
	}
	x->args = calloc((size_t)cJSON_GetArraySize(item) + 1, sizeof(*x->args));
	if (!x->args) {
		p->items.failed = true; /* answered 500 */
		return;
	}
	cJSON_ArrayForEach(arg, item) {
		x->args[x->nargs++] = string_field(p, arg, "args", i, body_had_nul);
		i++;
	}
}

static void
parse_execute_fields(struct problems *p, const cJSON *body, struct execute_request *x,
    bool body_had_nul)
{
	const cJSON *name = member(body, "executable_name");

	if (!name)
		problem(p, "missing", "executable_name", -1, "Field required", body);
	else
		x->name = string_field(p, name, "executable_name", -1, body_had_nul);
	parse_args(p, member(body, "args"), x, body_had_nul);
	x->callback = url_field(p, member(body, "callback"), "callback", body_had_nul);
	x->is_async = lax_bool(p, member(body, "is_async"), "is_async", true);
}

/* Is there a real "\u0000" escape in the JSON text (an unescaped backslash before it)? */
static const char *
find_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++) {
		if (s[i] != '\\')
			continue;
		if (strncmp(s + i + 1, "u0000", 5) == 0)
			return s + i;
		i++; /* skip the escaped character */
	}
	return NULL;
}

/* Is code point cp absent from the body, raw and as an escaped surrogate pair? */
static bool
absent(const char *s, size_t len, unsigned cp, char raw[5], char escaped[13])
{
	unsigned v = cp - 0x10000;

	raw[0] = (char)(0xf0 | cp >> 18), raw[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	raw[2] = (char)(0x80 | (cp >> 6 & 0x3f)), raw[3] = (char)(0x80 | (cp & 0x3f)), raw[4] = 0;
	snprintf(escaped, 13, "\\u%04x\\u%04x", (0xd800 + (v >> 10)) & 0xffff,
	    (0xdc00 + (v & 0x3ff)) & 0xffff);
	if (memmem(s, len, raw, 4))
		return false;
	for (const char *c = s; (c = memchr(c, '\\', len - (size_t)(c - s))); c++)
		if ((size_t)(s + len - c) >= 12 && strncasecmp(c, escaped, 12) == 0)
			return false;
	return true;
}

/* cJSON stops strings at NUL: stand a code point the body lacks in for each escaped NUL. */
static char *
replace_nul_escapes(const char *s, size_t len, size_t *new_len)
{
	char escaped[13];
	struct jbuf out = { 0 };
	const char *nul;
	unsigned cp = 0x10fffd;

	/* Private use plane 16: some code point there is absent from any body we take. */
	while (cp >= 0x100000 && !absent(s, len, cp, nul_standin, escaped))
		cp--;
	if (cp < 0x100000) {
		*nul_standin = '\0';
		return NULL;
	}
	while ((nul = find_nul_escape(s, len))) {
		jbuf_add(&out, s, (size_t)(nul - s));
		jbuf_add(&out, escaped, 12);
		len -= (size_t)(nul - s) + 6;
		s = nul + 6;
	}
	jbuf_add(&out, s, len);
	*new_len = out.len;
	if (out.failed)
		jbuf_free(&out);
	return out.data;
}

/* A body must be declared JSON: application/json, parameters allowed. */
static bool
is_json_type(const char *content_type)
{
	size_t n = strlen("application/json");

	if (!content_type || strncasecmp(content_type, "application/json", n) != 0)
		return false;
	return content_type[n] == '\0' || content_type[n] == ';' ||
	    content_type[n] == ' ' || content_type[n] == '\t';
}

/*
 * A strict JSON check (RFC 8259, as Python's json.loads takes it) before cJSON,
 * which is lenient: raw control bytes, bad escapes, invalid UTF-8, leading zeros
 * and trailing data all pass cJSON. It gives the position of the first error.
 */
struct json_scan {
	const unsigned char *s;
	size_t len, pos;
	int depth;
};

static bool scan_value(struct json_scan *sc);

static void
scan_space(struct json_scan *sc)
{
	while (sc->pos < sc->len && strchr(" \t\n\r", sc->s[sc->pos]) && sc->s[sc->pos])
		sc->pos++;
}

static bool
scan_char(struct json_scan *sc, char c)
{
	scan_space(sc);
	if (sc->pos >= sc->len || sc->s[sc->pos] != (unsigned char)c)
		return false;
	sc->pos++;
	return true;
}

static bool
scan_escape(struct json_scan *sc)
{
	unsigned char c = sc->pos < sc->len ? sc->s[sc->pos] : 0;

	if (c && strchr("\"\\/bfnrt", c)) {
		sc->pos++;
		return true;
	}
	if (c != 'u' || sc->len - sc->pos < 5)
		return false;
	for (int i = 1; i <= 4; i++)
		if (!isxdigit(sc->s[sc->pos + (size_t)i]))
			return false;
	sc->pos += 5;
	return true;
}

static bool
scan_string(struct json_scan *sc)
{
	size_t seq;

	if (!scan_char(sc, '"'))
		return false;
	while (sc->pos < sc->len) {
		unsigned char c = sc->s[sc->pos];

		if (c == '"') {
			sc->pos++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			sc->pos++;
			if (!scan_escape(sc))
				return false;
		} else if ((seq = json_utf8_len(sc->s + sc->pos, sc->len - sc->pos)) > 0) {
			sc->pos += seq;
		} else {
			return false;
		}
	}
	return false;
}

static bool
scan_digits(struct json_scan *sc)
{
	size_t start = sc->pos;

	while (sc->pos < sc->len && isdigit(sc->s[sc->pos]))
		sc->pos++;
	return sc->pos > start;
}

static bool
scan_number(struct json_scan *sc)
{
	if (sc->s[sc->pos] == '-')
		sc->pos++;
	if (sc->pos < sc->len && sc->s[sc->pos] == '0')
		sc->pos++;
	else if (!scan_digits(sc))
		return false;
	if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
		sc->pos++;
		if (!scan_digits(sc))
			return false;
	}
	if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
		sc->pos++;
		if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
			sc->pos++;
		if (!scan_digits(sc))
			return false;
	}
	return true;
}

static bool
scan_word(struct json_scan *sc, const char *word)
{
	size_t n = strlen(word);

	if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
		return false;
	sc->pos += n;
	return true;
}

/* The members of an object or the items of an array, up to the closing bracket. */
static bool
scan_container(struct json_scan *sc, char close, bool members)
{
	bool ok = true;

	if (++sc->depth > JSON_DEPTH_MAX)
		return false;
	sc->pos++;
	if (scan_char(sc, close))
		goto out;
	do {
		if (members && (!scan_string(sc) || !scan_char(sc, ':'))) {
			ok = false;
			goto out;
		}
		if (!scan_value(sc)) {
			ok = false;
			goto out;
		}
	} while (scan_char(sc, ','));
	ok = scan_char(sc, close);
out:
	sc->depth--;
	return ok;
}

static bool
scan_value(struct json_scan *sc)
{
	scan_space(sc);
	if (sc->pos >= sc->len)
		return false;
	switch (sc->s[sc->pos]) {
	case '{':
		return scan_container(sc, '}', true);
	case '[':
		return scan_container(sc, ']', false);
	case '"':
		return scan_string(sc);
	case 't':
		return scan_word(sc, "true");
	case 'f':
		return scan_word(sc, "false");
	case 'n':
		return scan_word(sc, "null");
	default:
		return (sc->s[sc->pos] == '-' || isdigit(sc->s[sc->pos])) && scan_number(sc);
	}
}

/* -1 when the text is one JSON value, else where it goes wrong. */
static long
json_error_at(const char *text, size_t len)
{
	struct json_scan sc = { (const unsigned char *)text, len, 0, 0 };

	if (scan_value(&sc)) {
		scan_space(&sc);
		if (sc.pos == len)
			return -1;
	}
	return (long)sc.pos;
}

static void
json_invalid(struct problems *p, long pos, const char *error)
{
	jbuf_puts(&p->items, p->count++ ? "," : "[");
	jbuf_printf(&p->items, "{\"type\":\"json_invalid\",\"loc\":[\"body\",%ld],"
	    "\"msg\":\"JSON decode error\",\"input\":{},\"ctx\":{\"error\":\"%s\"}}", pos, error);
}

/* Parse the request body as a JSON object, noting problems the FastAPI way. */
static cJSON *
parse_body(struct problems *p, const struct http_request *req, bool *body_had_nul)
{
	char *text = req->body;
	size_t len = req->body_len;
	cJSON *body, *as_string;
	long bad;

	*body_had_nul = false;
	if (!is_json_type(req->content_type)) {
		as_string = cJSON_CreateString(req->body);
		problem(p, "model_attributes_type", NULL, -1,
		    "Input should be a valid dictionary or object to extract fields from", as_string);
		cJSON_Delete(as_string);
		return NULL;
	}
	if (len == 0) {
		problem(p, "missing", NULL, -1, "Field required", NULL);
		return NULL;
	}
	if ((bad = json_error_at(text, len)) >= 0) {
		json_invalid(p, bad, "Invalid JSON");
		return NULL;
	}
	if (find_nul_escape(text, len)) {
		text = replace_nul_escapes(req->body, req->body_len, &len);
		*body_had_nul = true;
	}
	body = text ? cJSON_ParseWithLength(text, len) : NULL;
	if (!body) {
		const char *at = text ? cJSON_GetErrorPtr() : NULL;

		json_invalid(p, at && at >= text && at <= text + len ? (long)(at - text) : 0,
		    "Expecting value");
	} else if (!cJSON_IsObject(body)) {
		problem(p, "model_attributes_type", NULL, -1,
		    "Input should be a valid dictionary or object to extract fields from", body);
		cJSON_Delete(body);
		body = NULL;
	}
	if (text != req->body)
		free(text);
	return body;
}

static void
fail_validation(struct exchange *ex, struct problems *p)
{
	if (p->items.failed) {
		fail(ex, S_INTERNAL_SERVER_ERROR, "Out of memory.");
		return;
	}
	ex->status = S_UNPROCESSABLE_CONTENT;
	ex->body.len = 0;
	jbuf_puts(&ex->body, "{\"detail\":");
	jbuf_add(&ex->body, p->items.data, p->items.len);
	jbuf_puts(&ex->body, "]}");
}

/* The 403/410/503 wording of a kind of file: executables and playbooks. */
struct file_kind {
	const char *root_variable;
	const char *what;        /* "Executable", "Filename" */
	bool need_exec;
};

static const struct file_kind executable_kind = { "EXECUTABLES_ROOT_DIR", "Executable", true };
static const struct file_kind playbook_kind = { "ANSIBLE_PLAYBOOKS_ROOT_DIR", "Filename", false };

/* The 403/410/503 checks on a requested file, with upstream's wording. */
static bool
check_file_in_root(struct exchange *ex, const struct file_kind *kind, const char *root,
    const char *name, struct program *prog)
{
	static const char *const formats[] = {
		[RESOLVE_OUTSIDE] = "%s '%s' is outside %s.",
		[RESOLVE_MISSING] = "%s '%s' does not exist.",
		[RESOLVE_NOT_FILE] = "%s '%s' is not a valid file.",
		[RESOLVE_NOT_EXECUTABLE] = "%s '%s' is not marked as executable.",
	};
	static const enum status statuses[] = {
		[RESOLVE_OUTSIDE] = S_FORBIDDEN,
		[RESOLVE_MISSING] = S_GONE,
		[RESOLVE_NOT_FILE] = S_SERVICE_UNAVAILABLE,
		[RESOLVE_NOT_EXECUTABLE] = S_FORBIDDEN,
	};
	enum resolve found = job_resolve_file(root, name, kind->need_exec, prog);
	struct jbuf detail = { 0 };

	if (found == RESOLVE_OK)
		return true;
	jbuf_printf(&detail, formats[found], kind->what, name, kind->root_variable);
	fail(ex, statuses[found], detail.data ? detail.data : "");
	jbuf_free(&detail);
	return false;
}

/* A valid request's file passes its checks and gets a job id: false when answered already. */
static bool
admit(struct exchange *ex, const struct file_kind *kind, const char *root, const char *name,
    struct program *prog)
{
	ex->program = strdup(name);
	if (!check_file_in_root(ex, kind, root, name, prog))
		return false;
	if (job_new_id(ex->id) < 0) {
		fail(ex, S_INTERNAL_SERVER_ERROR, "No randomness for a job id.");
		return false;
	}
	return true;
}

static void
run_sync(struct exchange *ex, const struct program *prog, const struct execute_request *x)
{
	struct run_result result;

	job_run(prog, x->args, x->nargs, ex->id, NULL, &result);
	ex->ran = true;
	ex->return_code = result.return_code;
	ex->status = S_CREATED;
	jbuf_printf(&ex->body, "{\"job_id\":\"%s\",\"result\":", ex->id);
	job_result_json(&ex->body, &result);
	jbuf_puts(&ex->body, "}");
	job_result_free(&result);
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
	char detail[256];

	if (job_submit(request, ex->id, &job) < 0) {
		snprintf(detail, sizeof(detail), "Cannot record the job: %s.", strerror(errno));
		fprintf(stderr, "lso: state directory %s: %s\n", config.state_dir, strerror(errno));
		fail(ex, S_INTERNAL_SERVER_ERROR, detail);
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

static void
handle_execute(struct exchange *ex, const char *arg)
{
	struct problems p = { 0 };
	struct execute_request x = { 0 };
	struct program prog;
	bool body_had_nul;
	cJSON *body;

	(void)arg;
	body = parse_body(&p, ex->req, &body_had_nul);
	if (body)
		parse_execute_fields(&p, body, &x, body_had_nul);
	if (p.count > 0 || p.items.failed) {
		fail_validation(ex, &p);
		goto out;
	}
	if (!admit(ex, &executable_kind, config.executables_root, x.name, &prog))
		goto out;
	if (x.is_async) {
		struct job_request request = { .kind = "execute", .name = x.name, .args = x.args,
			.nargs = x.nargs, .callback = x.callback, .prog = &prog };

		start_job(ex, &request, "{\"job_id\":\"%s\",\"result\":null}");
	} else
		run_sync(ex, &prog, &x);
out:
	free(x.args);
	cJSON_Delete(body);
	jbuf_free(&p.items);
}

/* --- playbooks --- */

/* Python's name of a JSON value's type, as Ansible's messages print it. */
static const char *
python_type(const cJSON *item)
{
	if (cJSON_IsArray(item))
		return "<class 'list'>";
	if (cJSON_IsBool(item))
		return "<class 'bool'>";
	if (cJSON_IsNumber(item))
		return item->valuedouble == (double)(long long)item->valuedouble ?
		    "<class 'int'>" : "<class 'float'>";
	return "<class 'object'>";
}

/*
 * Check an inventory object the way Ansible's yaml inventory plugin does,
 * with its wording; NULL when Ansible would take it. Fast: no Ansible run.
 */
static const char *
inventory_group_problem(const char *group, const cJSON *data, char *why, size_t why_size,
    int depth)
{
	static const char *const sections[] = { "vars", "children", "hosts" };
	const cJSON *section, *entry;

	if (depth > 64)
		return snprintf(why, why_size, "Inventory groups nest too deep."), why;
	if (!cJSON_IsObject(data))
		return NULL; /* Ansible skips it with a warning */
	for (size_t i = 0; i < 3; i++) {
		section = cJSON_GetObjectItemCaseSensitive(data, sections[i]);
		if (section && !cJSON_IsObject(section) && !cJSON_IsNull(section) &&
		    !cJSON_IsString(section)) {
			snprintf(why, why_size, "Invalid \"%s\" entry for \"%s\" group, requires "
			    "a dictionary, found \"%s\" instead.", sections[i], group, python_type(section));
			return why;
		}
	}
	cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(data, "hosts"))
		if (entry->string && !cJSON_IsObject(entry) && !cJSON_IsNull(entry)) {
			snprintf(why, why_size, "Invalid variables for host \"%s\" in group \"%s\", "
			    "requires a dictionary, found \"%s\" instead.", entry->string, group,
			    cJSON_IsString(entry) ? "<class 'str'>" : python_type(entry));
			return why;
		}
	cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(data, "children"))
		if (entry->string &&
		    inventory_group_problem(entry->string, entry, why, why_size, depth + 1))
			return why;
	return NULL;
}

static const char *
inventory_object_problem(const cJSON *inventory, char *why, size_t why_size)
{
	const cJSON *group;

	if (!inventory->child)
		return snprintf(why, why_size, "Parsed empty YAML file"), why;
	if (cJSON_GetObjectItemCaseSensitive(inventory, "plugin"))
		return snprintf(why, why_size, "Plugin configuration YAML file, not YAML inventory"), why;
	cJSON_ArrayForEach(group, inventory)
		if (inventory_group_problem(group->string, group, why, why_size, 0))
			return why;
	return NULL;
}

struct playbook_request {
	const char *name;
	char *inventory;          /* YAML for Ansible, every string !unsafe (owned) */
	char *extra_vars;         /* likewise (owned) */
	const char *callback, *progress;
	bool incremental;
};

/*
 * The YAML Ansible reads for a client's JSON value (yaml.h: no string of it
 * is ever templated); a 422 when it holds a NUL, a 500 when out of memory.
 */
static char *
client_yaml(struct problems *p, const cJSON *item, const char *field, bool body_had_nul)
{
	char *json = body_had_nul ? cJSON_PrintUnformatted(item) : NULL, *yaml = NULL;

	if (json && has_nul(json, body_had_nul))
		problem(p, "value_error", field, -1,
		    "Value error, string must not hold a NUL character", item);
	else if (!(yaml = yaml_text(item)))
		p->items.failed = true;
	free(json);
	return yaml;
}

static void
parse_inventory(struct problems *p, const cJSON *body, const cJSON *item,
    struct playbook_request *r, bool body_had_nul)
{
	char why[512];
	cJSON *groups;

	if (!item) {
		problem(p, "missing", "inventory", -1, "Field required", body);
	} else if (cJSON_IsString(item)) {
		if (!string_field(p, item, "inventory", -1, body_had_nul))
			return;
		/* Ansible's ini format cannot mark a string unsafe: send it as YAML. */
		if (!(groups = inventory_from_ini(item->valuestring, why, sizeof(why))))
			problem(p, "value_error", "inventory", -1, why, item);
		else
			r->inventory = client_yaml(p, groups, "inventory", false);
		cJSON_Delete(groups);
	} else if (cJSON_IsObject(item)) {
		if (inventory_object_problem(item, why, sizeof(why)))
			problem(p, "value_error", "inventory", -1, why, item);
		else
			r->inventory = client_yaml(p, item, "inventory", body_had_nul);
	} else {
		/* pydantic reports each member of the union dict | str */
		problem_at(p, "dict_type", ",\"inventory\",\"dict[str,any]\"",
		    "Input should be a valid dictionary", item);
		problem_at(p, "string_type", ",\"inventory\",\"str\"",
		    "Input should be a valid string", item);
	}
}

static void
parse_playbook_fields(struct problems *p, const cJSON *body, struct playbook_request *r,
    bool body_had_nul)
{
	const cJSON *name = member(body, "playbook_name"), *vars = member(body, "extra_vars");

	if (!name)
		problem(p, "missing", "playbook_name", -1, "Field required", body);
	else
		r->name = string_field(p, name, "playbook_name", -1, body_had_nul);
	parse_inventory(p, body, member(body, "inventory"), r, body_had_nul);
	if (vars && !cJSON_IsObject(vars))
		problem(p, "dict_type", "extra_vars", -1, "Input should be a valid dictionary", vars);
	else if (vars)
		r->extra_vars = client_yaml(p, vars, "extra_vars", body_had_nul);
	r->callback = url_field(p, member(body, "callback"), "callback", body_had_nul);
	r->progress = url_field(p, member(body, "progress"), "progress", body_had_nul);
	r->incremental = lax_bool(p, member(body, "progress_is_incremental"),
	    "progress_is_incremental", true);
}

static void
handle_playbook(struct exchange *ex, const char *arg)
{
	struct problems p = { 0 };
	struct playbook_request r = { 0 };
	struct program prog;
	bool body_had_nul;
	cJSON *body;

	(void)arg;
	body = parse_body(&p, ex->req, &body_had_nul);
	if (body)
		parse_playbook_fields(&p, body, &r, body_had_nul);
	if (p.count > 0 || p.items.failed) {
		fail_validation(ex, &p);
		goto out;
	}
	if (!admit(ex, &playbook_kind, config.playbooks_root, r.name, &prog))
		goto out;
	struct job_request request = { .kind = "playbook", .name = r.name, .prog = &prog,
		.callback = r.callback, .progress = r.progress, .incremental = r.incremental,
		.inventory = r.inventory, .extra_vars = r.extra_vars ? r.extra_vars : "{}\n" };
	start_job(ex, &request, "{\"job_id\":\"%s\"}");
out:
	free(r.inventory);
	free(r.extra_vars);
	cJSON_Delete(body);
	jbuf_free(&p.items);
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

static void
handle_job_show(struct exchange *ex, const char *id)
{
	note_job_id(ex, id);
	ex->status = job_show(id, &ex->body);
}

static void
handle_job_cancel(struct exchange *ex, const char *id)
{
	note_job_id(ex, id);
	ex->status = job_cancel(id, &ex->body);
}

static const struct route routes[] = {
	{ "/api/execute/", false, "POST", handle_execute, "POST" },
	{ "/api/execute", false, "POST", handle_execute, "POST" },
	{ "/api/playbook/", false, "POST", handle_playbook, "POST" },
	{ "/api/playbook", false, "POST", handle_playbook, "POST" },
	{ "/api/version", false, "GET", handle_version, "GET" },
	{ "/api/openapi.json", false, "GET", handle_openapi, "GET" },
	{ "/api/jobs/", true, "GET", handle_job_show, "GET, DELETE" },
	{ "/api/jobs/", true, "DELETE", handle_job_cancel, "GET, DELETE" },
};

/* Constant-time comparison, so the time taken tells nothing of the token. */
static bool
token_matches(const char *given, const char *token)
{
	size_t given_len = strlen(given), token_len = strlen(token);
	unsigned char diff = given_len != token_len;

	for (size_t i = 0; i < token_len; i++)
		diff |= (unsigned char)(token[i] ^ given[i < given_len ? i : 0]);
	return diff == 0;
}

static bool
authorized(struct exchange *ex)
{
	const char *auth = ex->req->authorization;

	if (strcmp(ex->req->path, "/api/version") == 0)
		return true;
	/* Read here, not at start-up: /api/version never needs the credential's file. */
	if (!config.api_token_loaded) {
		config.api_token = load_token();
		config.api_token_loaded = true;
	}
	if (!config.api_token)
		return true;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0 && token_matches(auth + 7, config.api_token))
		return true;
	fail(ex, S_UNAUTHORIZED, "Not authenticated");
	ex->extra_headers = "WWW-Authenticate: Bearer\r\n";
	return false;
}

static bool
path_matches(const struct route *r, const char *path, const char **arg)
{
	size_t n = strlen(r->prefix);

	if (!r->has_arg)
		return strcmp(path, r->prefix) == 0;
	if (strncmp(path, r->prefix, n) != 0 || !path[n] || strchr(path + n, '/'))
		return false;
	*arg = path + n;
	return true;
}

/* Unknown paths get 404 and wrong methods 405 before the token is asked for, as FastAPI does. */
static void
route(struct exchange *ex)
{
	static char allow[64];
	const struct route *r, *path_found = NULL;
	const char *arg = NULL;

	for (r = routes; r < routes + sizeof(routes) / sizeof(routes[0]); r++) {
		if (!path_matches(r, ex->req->path, &arg))
			continue;
		path_found = r;
		if (strcmp(r->method, ex->req->method) != 0)
			continue;
		if (authorized(ex))
			r->handle(ex, arg);
		return;
	}
	if (!path_found) {
		fail(ex, S_NOT_FOUND, "Not Found");
		return;
	}
	snprintf(allow, sizeof(allow), "Allow: %s\r\n", path_found->allow);
	ex->extra_headers = allow;
	fail(ex, S_METHOD_NOT_ALLOWED, "Method Not Allowed");
}

/* lso --recover: settle what dead runners left (a oneshot at boot). */
static int
recover(void)
{
	const char *bad_variable = lso_config_load();

	if (bad_variable) {
		fprintf(stderr, "lso: %s is not a valid number in range\n", bad_variable);
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
		fail(&ex, ex.status, http_reason(ex.status));
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
	listening = in_fd == 3 && burst_is_listening(in_fd);
	if ((bad_variable = lso_config_load()) && listening) {
		fprintf(stderr, "lso: %s is not a valid number in range\n", bad_variable);
		return EXIT_CONFIG;
	}
	if (listening)
		return burst_serve(in_fd);
	if (bad_variable) {
		struct exchange ex = { .in_fd = in_fd, .out_fd = out_fd };

		fprintf(stderr, "lso: %s is not a valid number in range\n", bad_variable);
		fail(&ex, S_INTERNAL_SERVER_ERROR, "Server configuration error.");
		answer(&ex);
		jbuf_free(&ex.body);
		return EXIT_CONFIG;
	}
	lso_serve(in_fd, out_fd);
	return 0;
}
#endif
