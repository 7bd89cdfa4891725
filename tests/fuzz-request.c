/*
 * fuzz-request.c: libFuzzer harness for whole requests through lso_serve().
 *
 * Each input is the byte stream a client sends on one connection. Nothing can
 * run: EXECUTABLES_ROOT_DIR and ANSIBLE_PLAYBOOKS_ROOT_DIR are unset, so a
 * valid execute or playbook request gets 410 after validation, and the state
 * directory is a fresh empty one, so the job routes find nothing. A request
 * that mentions Authorization is served with a bearer token configured (so
 * 401 and the token check are reached too).
 *
 * What lso writes is checked: one well-formed HTTP/1.1 response, its
 * Content-Length exact, a status lso can give here, a body that is valid
 * UTF-8 and JSON of the documented shape. The verdict on a submission is
 * also compared with a reference: a strict JSON parser (what Python's
 * json.loads accepts from bytes, as upstream parses) for /api/execute and
 * /api/playbook, and for /api/execute the field rules of API.md (pydantic's
 * lax bool, string args, no NULs). A body the reference rejects must get
 * json_invalid; an execute body it accepts must get 410, or 422 with exactly
 * the problems the reference predicts (callback URLs are left to lso: their
 * rules are pydantic's and not modelled here).
 *
 * LSO_FUZZ_IGNORE (comma-separated codes) relaxes the checks behind findings
 * already reported, so a long run can look past them. The codes appear in
 * the abort message:
 *   utf8             the response body is not valid UTF-8
 *   json-trailing, json-control, json-utf8, json-escape, json-number,
 *   json-whitespace, json-syntax
 *                    lso accepted a body that is not JSON (by kind)
 *   json-rejected    lso called a valid JSON body invalid
 *   fields           lso's 422 problems differ from the reference's
 *   nul-standin      the same, for a body holding U+10FFFF
 *
 * Build: make tests/fuzz-request (with -DLSO_NO_MAIN). Run: tests/fuzz.sh.
 */
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

#include "../config.h"
#include "../http.h"
#include "../json.h"
#include "../lso.h"
#include "fuzz-common.h"

#define FUZZ_MAX_BODY 65536
#define FUZZ_TOKEN "fuzz-token"
/* Responses are small; a bigger one is a finding in itself. */
#define RESPONSE_MAX (1024 * 1024)
/* Growth past this many fds between checks is a leak (a per-input leak is thousands). */
#define FD_SLACK 4
#define FD_CHECK_EVERY 500
/* Past this nesting Python's json raises RecursionError and cJSON gives up: not compared. */
#define REF_DEPTH_MAX 500

static int in_keep = -1, out_keep = -1, parse_fd = -1, null_fd = -1;
/* Counted at the first check, once libFuzzer has opened what it keeps open. */
static long fds_at_start = -1;
static unsigned long iterations;
static char state_dir[4096];
static const char *ignore = "";
static char response[RESPONSE_MAX + 1];
/* The stderr stream from before lso's log was silenced. */
static FILE *report;
/* The harness's own reading of the request (lso's is static inside lso.c). */
static struct http_request req;

static void
remove_state_dir(void)
{
	rmdir(state_dir); /* it stays empty: nothing is ever submitted */
}

static void
die(const char *code, const char *what, const char *detail)
{
	fprintf(report ? report : stderr, "fuzz-request: invariant broken [%s]: %s%s%s\n",
	    code, what, detail ? ": " : "", detail ? detail : "");
	remove_state_dir();
	abort();
}

static bool
ignored(const char *code)
{
	size_t n = strlen(code);

	for (const char *c = strstr(ignore, code); c; c = strstr(c + 1, code))
		if ((c == ignore || c[-1] == ',') && (c[n] == '\0' || c[n] == ','))
			return true;
	return false;
}

/* die() unless code is ignored. */
static void
finding(const char *code, const char *what, const char *detail)
{
	if (!ignored(code))
		die(code, what, detail);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *bad;
	FILE *devnull;
	char max_body[32];

	(void)argc, (void)argv;
	if (getenv("LSO_FUZZ_IGNORE"))
		ignore = getenv("LSO_FUZZ_IGNORE");
	/* Under $TMPDIR: tests/fuzz.sh points it at its scratch directory. */
	snprintf(state_dir, sizeof(state_dir), "%s/lso-fuzz-state.XXXXXX",
	    getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(state_dir)) {
		perror("fuzz-request: mkdtemp");
		exit(1);
	}
	atexit(remove_state_dir);
	snprintf(max_body, sizeof(max_body), "%d", FUZZ_MAX_BODY);
	unsetenv("EXECUTABLES_ROOT_DIR");
	unsetenv("ANSIBLE_PLAYBOOKS_ROOT_DIR");
	unsetenv("ANSIBLE_PLAYBOOK");
	unsetenv("LSO_API_KEY");
	unsetenv("LSO_OAUTH2_ACTIVE");
	unsetenv("JOB_FILES_ROOT_DIR");
	unsetenv("CREDENTIALS_DIRECTORY");
	unsetenv("STATE_DIRECTORY");
	setenv("LSO_STATE_DIR", state_dir, 1);
	setenv("LSO_READ_TIMEOUT_SEC", "1", 1);
	setenv("LSO_MAX_BODY_BYTES", max_body, 1);
	if ((bad = config_load())) {
		fprintf(stderr, "fuzz-request: config_load: %s\n", bad);
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
	/* Memfds reused for every input: no fd is created per iteration. */
	in_keep = memfd_create("fuzz-request-in", MFD_CLOEXEC);
	out_keep = memfd_create("fuzz-request-out", MFD_CLOEXEC);
	parse_fd = memfd_create("fuzz-request-parse", MFD_CLOEXEC);
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (in_keep < 0 || out_keep < 0 || parse_fd < 0 || null_fd < 0) {
		perror("fuzz-request: memfd_create");
		exit(1);
	}
	return 0;
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
		die("size", "response over 1 MiB", NULL);
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

/* ---- the reference: strict JSON as Python's json.loads(bytes) reads it ---- */

enum kind { K_NONE, K_NULL, K_BOOL, K_NUMBER, K_STRING, K_ARRAY, K_OBJECT };

/* A decoded string: UTF-8 bytes (WTF-8 for lone surrogates), NULs kept. */
struct ref_string {
	char *s;
	size_t len;
	bool has_nul;
};

/* What the field rules need of a value: its kind, and for strings and arrays some content. */
struct ref_value {
	enum kind kind;
	double number;
	struct ref_string str;
	/* arrays: each item's kind and, for strings, whether it holds a NUL */
	size_t n;
	enum kind *item_kind;
	bool *item_nul;
};

struct ref_parser {
	const unsigned char *s;
	size_t len, pos;
	int depth;
	const char *why;     /* first reason the text is not JSON, a code */
	bool python_only;    /* NaN, Infinity, lone surrogates: Python's extensions */
	bool too_deep;
	bool standin;        /* U+10FFFF somewhere: lso's stand-in for an escaped NUL */
};

/* The top-level object's members we care about, last duplicate winning. */
struct ref_body {
	enum kind kind;      /* of the whole value */
	struct ref_value name, args, callback, is_async;
};

static void
ref_fail(struct ref_parser *p, const char *why)
{
	/* cJSON skips every byte up to ' ', NUL included, as whitespace. */
	if (strcmp(why, "json-syntax") == 0 && p->pos < p->len && p->s[p->pos] < 0x20)
		why = "json-whitespace";
	if (!p->why)
		p->why = why;
}

static void
ref_ws(struct ref_parser *p)
{
	while (p->pos < p->len && strchr(" \t\n\r", p->s[p->pos]) && p->s[p->pos])
		p->pos++;
}

static bool
ref_lit(struct ref_parser *p, const char *lit)
{
	size_t n = strlen(lit);

	if (p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0) {
		p->pos += n;
		return true;
	}
	return false;
}

static void
str_add(struct ref_string *out, const char *bytes, size_t n)
{
	if (!out)
		return;
	out->s = realloc(out->s, out->len + n + 1);
	if (!out->s)
		abort();
	memcpy(out->s + out->len, bytes, n);
	out->len += n;
	out->s[out->len] = '\0';
}

static void
str_add_cp(struct ref_string *out, unsigned cp)
{
	char b[4];

	if (cp < 0x80) {
		b[0] = (char)cp;
		str_add(out, b, 1);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f));
		str_add(out, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		str_add(out, b, 3);
	} else {
		b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (char)(0x80 | (cp >> 6 & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f));
		str_add(out, b, 4);
	}
}

static int
ref_hex4(struct ref_parser *p)
{
	unsigned v = 0;
	int d;

	if (p->len - p->pos < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = (char)p->s[p->pos + (size_t)i];
		d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	p->pos += 4;
	return (int)v;
}

/* At the opening quote. Python: no raw control characters (strict), the usual escapes. */
static void
ref_string(struct ref_parser *p, struct ref_string *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	size_t seq;
	int cp, lo;

	p->pos++;
	for (;;) {
		if (p->pos >= p->len)
			{ ref_fail(p, "json-syntax"); return; }
		unsigned char c = p->s[p->pos];
		if (c == '"') {
			p->pos++;
			return;
		}
		if (c < 0x20)
			{ ref_fail(p, "json-control"); return; }
		if (c != '\\') {
			if (!(seq = json_utf8_len(p->s + p->pos, p->len - p->pos)))
				{ ref_fail(p, "json-utf8"); return; }
			if (seq == 4 && memcmp(p->s + p->pos, "\xf4\x8f\xbf\xbf", 4) == 0)
				p->standin = true;
			str_add(out, (const char *)p->s + p->pos, seq);
			p->pos += seq;
			continue;
		}
		p->pos++;
		if (p->pos >= p->len)
			{ ref_fail(p, "json-syntax"); return; }
		c = p->s[p->pos++];
		if (c != 'u') {
			const char *e = c ? strchr(from, c) : NULL;
			if (!e)
				{ ref_fail(p, "json-escape"); return; }
			str_add(out, &to[e - from], 1);
			continue;
		}
		if ((cp = ref_hex4(p)) < 0)
			{ ref_fail(p, "json-escape"); return; }
		if (cp >= 0xd800 && cp <= 0xdbff && p->len - p->pos >= 6 &&
		    p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
			size_t at = p->pos;
			p->pos += 2;
			lo = ref_hex4(p);
			if (lo >= 0xdc00 && lo <= 0xdfff)
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			else
				p->pos = at; /* not a pair: the high one stands alone */
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			p->python_only = true;
		if (cp == 0x10ffff)
			p->standin = true;
		if (cp == 0 && out)
			out->has_nul = true;
		str_add_cp(out, (unsigned)cp);
	}
}

static bool
is_digit_at(const struct ref_parser *p)
{
	return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9';
}

/*
 * JSON's number grammar; returns its value. A number-like run the grammar
 * refuses (01, 1., -.5, 1e) is "json-number", anything else "json-syntax".
 */
static double
ref_number(struct ref_parser *p)
{
	size_t start = p->pos;
	char *text;
	double value;

	if (ref_lit(p, "-Infinity"))
		return p->python_only = true, 2;
	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '0')
		p->pos++;
	else if (is_digit_at(p))
		while (is_digit_at(p))
			p->pos++;
	else
		return ref_fail(p, p->pos > start ? "json-number" : "json-syntax"), 0;
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (!is_digit_at(p))
			return ref_fail(p, "json-number"), 0;
		while (is_digit_at(p))
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (!is_digit_at(p))
			return ref_fail(p, "json-number"), 0;
		while (is_digit_at(p))
			p->pos++;
	}
	if (p->pos < p->len && strchr("0123456789.eE+-", p->s[p->pos]) && p->s[p->pos])
		return ref_fail(p, "json-number"), 0;
	if (!(text = strndup((const char *)p->s + start, p->pos - start)))
		abort();
	value = strtod(text, NULL);
	free(text);
	return value;
}

static void ref_value(struct ref_parser *p, struct ref_value *out, struct ref_body *top);

static void
value_free(struct ref_value *v)
{
	free(v->str.s);
	free(v->item_kind);
	free(v->item_nul);
	*v = (struct ref_value){ 0 };
}

static void
ref_array(struct ref_parser *p, struct ref_value *out)
{
	struct ref_value item;

	p->pos++;
	ref_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		return;
	}
	for (;;) {
		item = (struct ref_value){ 0 };
		ref_value(p, out ? &item : NULL, NULL);
		if (p->why)
			{ value_free(&item); return; }
		if (out) {
			out->item_kind = realloc(out->item_kind, (out->n + 1) * sizeof(*out->item_kind));
			out->item_nul = realloc(out->item_nul, (out->n + 1) * sizeof(*out->item_nul));
			if (!out->item_kind || !out->item_nul)
				abort();
			out->item_kind[out->n] = item.kind;
			out->item_nul[out->n] = item.str.has_nul;
			out->n++;
		}
		value_free(&item);
		ref_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == ']') {
			p->pos++;
			return;
		}
		{ ref_fail(p, "json-syntax"); return; }
	}
}

/* Members of the top-level object go to top (the last of duplicates wins). */
static void
ref_object(struct ref_parser *p, struct ref_body *top)
{
	struct ref_string key;
	struct ref_value value, *slot;

	p->pos++;
	ref_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		return;
	}
	for (;;) {
		ref_ws(p);
		if (!(p->pos < p->len && p->s[p->pos] == '"'))
			{ ref_fail(p, "json-syntax"); return; }
		key = (struct ref_string){ 0 };
		ref_string(p, &key);
		ref_ws(p);
		if (!p->why && !(p->pos < p->len && p->s[p->pos] == ':'))
			ref_fail(p, "json-syntax");
		if (p->why)
			{ free(key.s); return; }
		p->pos++;
		slot = NULL;
		if (top && key.s && !key.has_nul) {
			if (strcmp(key.s, "executable_name") == 0)
				slot = &top->name;
			else if (strcmp(key.s, "args") == 0)
				slot = &top->args;
			else if (strcmp(key.s, "callback") == 0)
				slot = &top->callback;
			else if (strcmp(key.s, "is_async") == 0)
				slot = &top->is_async;
		}
		free(key.s);
		value = (struct ref_value){ 0 };
		ref_value(p, slot ? &value : NULL, NULL);
		if (slot) {
			value_free(slot);
			*slot = value;
		}
		if (p->why)
			return;
		ref_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == '}') {
			p->pos++;
			return;
		}
		{ ref_fail(p, "json-syntax"); return; }
	}
}

static void
ref_value(struct ref_parser *p, struct ref_value *out, struct ref_body *top)
{
	struct ref_value ignored_value = { 0 };
	unsigned char c;

	if (!out)
		out = &ignored_value;
	ref_ws(p);
	if (p->pos >= p->len)
		{ ref_fail(p, "json-syntax"); return; }
	if (++p->depth > REF_DEPTH_MAX) {
		p->too_deep = true;
		{ ref_fail(p, "json-deep"); return; }
	}
	c = p->s[p->pos];
	if (c == '{') {
		out->kind = K_OBJECT;
		ref_object(p, top);
	} else if (c == '[') {
		out->kind = K_ARRAY;
		ref_array(p, out == &ignored_value ? NULL : out);
	} else if (c == '"') {
		out->kind = K_STRING;
		ref_string(p, out == &ignored_value ? NULL : &out->str);
	} else if (ref_lit(p, "true") || ref_lit(p, "false")) {
		out->kind = K_BOOL;
	} else if (ref_lit(p, "null")) {
		out->kind = K_NULL;
	} else if (ref_lit(p, "NaN") || ref_lit(p, "Infinity")) {
		out->kind = K_NUMBER;
		out->number = 2;
		p->python_only = true;
	} else {
		out->kind = K_NUMBER;
		out->number = ref_number(p);
	}
	p->depth--;
	value_free(&ignored_value);
}

/* Parse the whole text; false when it is not JSON (p->why says how). */
static bool
ref_parse(struct ref_parser *p, struct ref_body *top)
{
	struct ref_value whole = { 0 };

	ref_value(p, &whole, top);
	top->kind = whole.kind;
	value_free(&whole);
	if (p->why)
		return false;
	ref_ws(p);
	if (p->pos != p->len) {
		ref_fail(p, "json-trailing");
		return false;
	}
	return true;
}

static void
body_free(struct ref_body *b)
{
	value_free(&b->name);
	value_free(&b->args);
	value_free(&b->callback);
	value_free(&b->is_async);
}

/* ---- the reference: the field rules of API.md ---- */

#define PROBLEMS_MAX 64
struct expect {
	char item[PROBLEMS_MAX][64];  /* "type body/field/index", sorted later */
	size_t n;
};

static void
expect_add(struct expect *e, const char *type, const char *field, long index)
{
	if (e->n == PROBLEMS_MAX)
		return;
	if (index >= 0)
		snprintf(e->item[e->n++], sizeof(e->item[0]), "%s body/%s/%ld", type, field, index);
	else if (field)
		snprintf(e->item[e->n++], sizeof(e->item[0]), "%s body/%s", type, field);
	else
		snprintf(e->item[e->n++], sizeof(e->item[0]), "%s body", type);
}

static bool
lax_bool_ok(const struct ref_value *v)
{
	static const char *const words[] = { "true", "1", "yes", "on", "t", "y",
		"false", "0", "no", "off", "f", "n" };

	if (v->kind == K_BOOL)
		return true;
	if (v->kind == K_NUMBER)
		return v->number == 0 || v->number == 1;
	if (v->kind != K_STRING || v->str.has_nul || !v->str.s)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(v->str.s, words[i]) == 0)
			return true;
	return false;
}

/* Upstream 5.x's safe name, ^[A-Za-z0-9._/-]+$, written out again (not validate.c's). */
static bool
ref_safe_name(const struct ref_string *name)
{
	if (name->len == 0)
		return false;
	for (size_t i = 0; i < name->len; i++) {
		unsigned char c = (unsigned char)name->s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '/' || c == '-'))
			return false;
	}
	return true;
}

static void
expect_fields(const struct ref_body *b, struct expect *e)
{
	if (b->kind != K_OBJECT) {
		expect_add(e, "model_attributes_type", NULL, -1);
		return;
	}
	if (b->name.kind == K_NONE)
		expect_add(e, "missing", "executable_name", -1);
	else if (b->name.kind != K_STRING)
		expect_add(e, "string_type", "executable_name", -1);
	else if (b->name.str.has_nul || !ref_safe_name(&b->name.str))
		expect_add(e, "value_error", "executable_name", -1);
	if (b->args.kind != K_NONE && b->args.kind != K_ARRAY)
		expect_add(e, "list_type", "args", -1);
	for (size_t i = 0; b->args.kind == K_ARRAY && i < b->args.n; i++)
		if (b->args.item_kind[i] != K_STRING)
			expect_add(e, "string_type", "args", (long)i);
		else if (b->args.item_nul[i])
			expect_add(e, "value_error", "args", (long)i);
	if (b->callback.kind != K_NONE && b->callback.kind != K_NULL &&
	    b->callback.kind != K_STRING)
		expect_add(e, "url_type", "callback", -1);
	if (b->is_async.kind != K_NONE && !lax_bool_ok(&b->is_async))
		expect_add(e, b->is_async.kind == K_STRING || b->is_async.kind == K_NUMBER ?
		    "bool_parsing" : "bool_type", "is_async", -1);
}

static int
compare_items(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* lso's 422 items in the same form, leaving out callback URL verdicts (not modelled). */
static void
got_fields(const cJSON *detail, struct expect *g, bool *json_invalid)
{
	const cJSON *item, *type, *loc, *part;
	char where[48];
	size_t used;

	*json_invalid = false;
	if (!cJSON_IsArray(detail))
		return; /* invalid_inventory: checked by check_422 */
	cJSON_ArrayForEach(item, detail) {
		type = cJSON_GetObjectItemCaseSensitive(item, "type");
		loc = cJSON_GetObjectItemCaseSensitive(item, "loc");
		if (strcmp(type->valuestring, "json_invalid") == 0)
			*json_invalid = true;
		if (strncmp(type->valuestring, "url_", 4) == 0 && strcmp(type->valuestring, "url_type") != 0)
			continue;
		used = (size_t)snprintf(where, sizeof(where), "body");
		for (part = loc->child ? loc->child->next : NULL; part; part = part->next) {
			if (used >= sizeof(where))
				break;
			if (cJSON_IsString(part))
				used += (size_t)snprintf(where + used, sizeof(where) - used, "/%.30s", part->valuestring);
			else
				used += (size_t)snprintf(where + used, sizeof(where) - used, "/%ld", (long)part->valuedouble);
		}
		if (g->n < PROBLEMS_MAX)
			snprintf(g->item[g->n++], sizeof(g->item[0]), "%s %s", type->valuestring, where);
	}
}

static void
items_text(const struct expect *e, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < e->n && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s[%s]", i ? " " : "", e->item[i]);
}

/* Would Python's json.loads take these bytes at all, rather than guess an encoding? */
static bool
plain_utf8_start(const unsigned char *b, size_t len)
{
	if (len >= 2 && (b[0] == 0 || b[1] == 0))
		return false; /* UTF-16/32 detection */
	if (len >= 2 && ((b[0] == 0xff && b[1] == 0xfe) || (b[0] == 0xfe && b[1] == 0xff)))
		return false;
	return !(len >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf);
}

/* lso's rule (API.md): application/json, parameters allowed. */
static bool
is_json_type(const char *content_type)
{
	size_t n = strlen("application/json");

	if (!content_type || strncasecmp(content_type, "application/json", n) != 0)
		return false;
	return strchr("; \t", content_type[n]) != NULL;
}

/*
 * POST /api/execute or /api/playbook answered 410 or 422: compare with the
 * reference (the JSON verdict for both, the field rules for execute only).
 */
static void
check_submit(int status, const cJSON *json, bool execute)
{
	struct ref_parser p = { .s = (const unsigned char *)req.body, .len = req.body_len };
	struct ref_body body = { 0 };
	struct expect want = { 0 }, got = { 0 };
	const cJSON *detail = cJSON_GetObjectItemCaseSensitive(json, "detail");
	bool json_invalid = false, valid;
	char a[2048], b[2048], msg[4200];

	if (status == 422)
		got_fields(detail, &got, &json_invalid);
	if (!is_json_type(req.content_type)) {
		if (status != 422 || got.n != 1 || strcmp(got.item[0], "model_attributes_type body") != 0)
			die("type", "a body without Content-Type: application/json was not refused", NULL);
		return;
	}
	if (req.body_len == 0 || !plain_utf8_start((const unsigned char *)req.body, req.body_len))
		return; /* FastAPI's own paths (no body, encoding detection): not compared */
	valid = ref_parse(&p, &body);
	if (p.too_deep || p.python_only)
		goto out; /* Python's own extensions and limits: not compared */
	if (!valid) {
		if (!json_invalid)
			finding(p.why, "lso accepted a body that is not JSON", p.why);
		goto out;
	}
	if (json_invalid) {
		finding("json-rejected", "lso called a valid JSON body invalid", NULL);
		goto out;
	}
	if (!execute)
		goto out;
	expect_fields(&body, &want);
	qsort(want.item, want.n, sizeof(want.item[0]), compare_items);
	qsort(got.item, got.n, sizeof(got.item[0]), compare_items);
	if (want.n != got.n || memcmp(want.item, got.item, want.n * sizeof(want.item[0])) != 0) {
		items_text(&want, a, sizeof(a));
		items_text(&got, b, sizeof(b));
		snprintf(msg, sizeof(msg), "want %s, got %s (status %d)", want.n ? a : "none", got.n ? b : "none", status);
		finding(p.standin ? "nul-standin" : "fields", "lso's verdict on the fields differs from the reference", msg);
	}
out:
	body_free(&body);
}

/* ---- the response ---- */

/* The statuses lso can answer with when nothing can run and no job exists. */
static bool
possible_status(int status)
{
	static const int possible[] = { 200, 204, 400, 401, 404, 405, 408, 410, 413, 417,
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
		"url_too_long", "value_error", "json_invalid", "model_attributes_type",
		"dict_type", "uuid_parsing" };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* FastAPI's 422 list: [{"type", "loc": ["body", ...], "msg", "input"}, ...]. */
/* Upstream 5.x's structured detail of an inventory Ansible would refuse. */
static void
check_invalid_inventory(const cJSON *detail)
{
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(detail, "reason");
	static const char *const lists[] = { "messages", "parsed_groups", "parsed_hosts" };

	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(detail, "error")) ||
	    strcmp(cJSON_GetObjectItemCaseSensitive(detail, "error")->valuestring, "invalid_inventory") != 0 ||
	    !cJSON_IsString(reason) || (strcmp(reason->valuestring, "unparsable") != 0 &&
	    strcmp(reason->valuestring, "rejected_with_warnings") != 0))
		die("shape", "422 detail object that is not invalid_inventory", NULL);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(detail, lists[i])))
			die("shape", "invalid_inventory without its lists", lists[i]);
}

static void
check_422(const cJSON *detail)
{
	const cJSON *item, *type, *loc;

	if (cJSON_IsObject(detail)) {
		check_invalid_inventory(detail);
		return;
	}
	if (!cJSON_IsArray(detail) || cJSON_GetArraySize(detail) == 0)
		die("shape", "422 detail is not a non-empty list", NULL);
	cJSON_ArrayForEach(item, detail) {
		type = cJSON_GetObjectItemCaseSensitive(item, "type");
		loc = cJSON_GetObjectItemCaseSensitive(item, "loc");
		if (!cJSON_IsString(type) || !known_error_type(type->valuestring))
			die("shape", "422 item with an unknown type",
			    cJSON_IsString(type) ? type->valuestring : NULL);
		if (!cJSON_IsArray(loc) || !cJSON_IsString(cJSON_GetArrayItem(loc, 0)) ||
		    (strcmp(cJSON_GetArrayItem(loc, 0)->valuestring, "body") != 0 &&
		    strcmp(cJSON_GetArrayItem(loc, 0)->valuestring, "path") != 0))
			die("shape", "422 item whose loc does not start with \"body\" or \"path\"", NULL);
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "msg")))
			die("shape", "422 item without msg", NULL);
		if (!cJSON_GetObjectItemCaseSensitive(item, "input"))
			die("shape", "422 item without input", NULL);
	}
}

static void
check_response(size_t size, size_t len, bool parsed)
{
	static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	char *head = response, *body, *cl, s[16];
	unsigned long content_length;
	int status;
	cJSON *json;

	if (len == 0) {
		if (size != 0)
			die("shape", "no response to a non-empty input", NULL);
		return;
	}
	if (strncmp(head, continue_line, sizeof(continue_line) - 1) == 0)
		head += sizeof(continue_line) - 1;
	if (strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head, "HTTP/1.1 %3d ", &status) != 1)
		die("shape", "response does not start with a status line", NULL);
	snprintf(s, sizeof(s), "%d", status);
	if (!possible_status(status))
		die("status", "status lso cannot give here", s);
	if (!(body = strstr(head, "\r\n\r\n")))
		die("shape", "response head does not end", NULL);
	*body = '\0';
	body += 4;
	/* 204 (a job's files deleted): no type, no length, no body. */
	if (status == 204) {
		if (strstr(head, "\r\nContent-Length: ") || (size_t)(body - response) != len)
			die("shape", "204 with a length or a body", NULL);
		return;
	}
	if (!(cl = strstr(head, "\r\nContent-Length: ")) ||
	    sscanf(cl, "\r\nContent-Length: %lu", &content_length) != 1)
		die("shape", "no Content-Length", NULL);
	/* HEAD (RFC 9110 9.3.2): GET's head, the length of GET's body, no body. */
	if (req.head_only) {
		if ((size_t)(body - response) != len)
			die("shape", "a body in the response to HEAD", s);
		return;
	}
	if (content_length != len - (size_t)(body - response))
		die("shape", "Content-Length does not match the body", NULL);
	if (!strstr(head, "\r\nConnection: close"))
		die("shape", "no Connection: close", NULL);
	if (status == 405 && !strstr(head, "\r\nAllow: "))
		die("shape", "405 without Allow", NULL);
	if (status == 401 && !strstr(head, "\r\nWWW-Authenticate: Bearer"))
		die("shape", "401 without WWW-Authenticate", NULL);
	if (!valid_utf8(body, content_length))
		finding("utf8", "response body is not valid UTF-8", s);
	/* The documentation pages are HTML. */
	if (strstr(head, "\r\nContent-Type: text/html"))
		return;
	json = cJSON_ParseWithLength(body, content_length);
	if (!cJSON_IsObject(json))
		die("shape", "response body is not a JSON object", s);
	if (status >= 400) {
		const cJSON *detail = cJSON_GetObjectItemCaseSensitive(json, "detail");
		if (status == 422)
			check_422(detail);
		else if (!cJSON_IsString(detail))
			die("shape", "error body without a detail string", s);
	}
	/* The harness read the same request: compare a submission's verdict with the reference. */
	if (parsed && (status == 410 || status == 422) && strcmp(req.method, "POST") == 0 &&
	    (strcmp(req.path, "/api/execute") == 0 || strcmp(req.path, "/api/execute/") == 0))
		check_submit(status, json, true);
	else if (parsed && (status == 410 || status == 422) && strcmp(req.method, "POST") == 0 &&
	    (strcmp(req.path, "/api/playbook") == 0 || strcmp(req.path, "/api/playbook/") == 0))
		check_submit(status, json, false);
	else if (status == 422 && parsed && strncmp(req.path, "/api/files/", 11) == 0)
		; /* a file route's job id or file name (loc "path") */
	else if (status == 410 || status == 422)
		die("status", "410 or 422 on a request that is not a readable submission", s);
	cJSON_Delete(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool read_ok, parsed, no_request;
	long fds;

	/* The harness's own reading of the request, for the reference checks. */
	fill(parse_fd, data, size);
	read_ok = http_read_request(parse_fd, null_fd, &req, FUZZ_MAX_BODY,
	    http_now_ms() + 3000) == S_OK;
	parsed = read_ok && req.head_len > 0;
	no_request = read_ok && req.head_len == 0;

	/* A request that brings Authorization is served with auth on and a key configured. */
	config.oauth2_active = mentions(data, size, "authorization");
	config.api_key = FUZZ_TOKEN;
	config.api_key_loaded = true;
	fill(in_keep, data, size);
	fill(out_keep, NULL, 0);
	/* lso_serve closes both (http_close): hand it duplicates. */
	lso_serve(dup(in_keep), dup(out_keep));
	/* Empty lines alone (RFC 9112 has them ignored) are no request: no response either. */
	check_response(no_request ? 0 : size, read_response(), parsed);
	http_request_free(&req);

	if (++iterations % FD_CHECK_EVERY == 0) {
		fds = count_fds();
		if (fds_at_start < 0) {
			fds_at_start = fds;
		} else if (fds > fds_at_start + FD_SLACK) {
			char s[64];
			snprintf(s, sizeof(s), "%ld open, %ld at the first check", fds, fds_at_start);
			die("fd", "fd leak", s);
		}
	}
	return 0;
}
