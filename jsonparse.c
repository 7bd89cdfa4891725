/*
 * jsonparse.c: a request body as cJSON, after a strict RFC 8259 scan, with
 * the workaround for "\u0000" escapes (cJSON ends its strings at NUL).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "json.h"
#include "jsonparse.h"

void
jsonparse_add_repaired(const struct jsonparse *jp, struct jbuf *b, const char *json)
{
	const unsigned char *u = (const unsigned char *)json;
	size_t len = strlen(json), i = 0;

	while (i < len) {
		if (*jp->nul_standin && strncmp(json + i, jp->nul_standin, 4) == 0) {
			jbuf_puts(b, "\\u0000");
			i += 4;
		} else {
			i += json_add_utf8(b, u + i, len - i);
		}
	}
}

bool
jsonparse_has_nul(const struct jsonparse *jp, const char *s)
{
	return jp->had_nul && *jp->nul_standin && strstr(s, jp->nul_standin);
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
replace_nul_escapes(const char *s, size_t len, size_t *new_len, char nul_standin[5])
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

/*
 * A strict JSON check (RFC 8259, as Python's json.loads takes it) before cJSON,
 * which is lenient: raw control bytes, bad escapes, invalid UTF-8, leading zeros
 * and trailing data all pass cJSON. It gives the position of the first error.
 */
#define STRING(x) STRING_OF(x)
#define STRING_OF(x) #x
/* A text of more than REQUEST_JSON_VALUES_MAX values, refused before cJSON builds its tree. */
#define JSONPARSE_TOO_MANY_VALUES "Too many values: at most " STRING(REQUEST_JSON_VALUES_MAX)

struct json_scan {
	const unsigned char *s;
	size_t len, pos;
	int depth;
	long values;   /* seen so far: cJSON spends some 80 bytes of memory on each */
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

	if (++sc->depth > REQUEST_JSON_DEPTH_MAX)
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
	if (sc->pos >= sc->len || ++sc->values > REQUEST_JSON_VALUES_MAX)
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

/* -1 when text is one JSON value, else where the scan stopped (sc tells why). */
static long
scan_text(struct json_scan *sc)
{
	if (scan_value(sc)) {
		scan_space(sc);
		if (sc->pos == sc->len)
			return -1;
	}
	return (long)sc->pos;
}

long
jsonparse_error_at(const char *text, size_t len)
{
	struct json_scan sc = { (const unsigned char *)text, len, 0, 0, 0 };

	return scan_text(&sc);
}

/* --- duplicate keys: the last one's value, at the first one's place (Python's dict) --- */

struct keyed {
	cJSON *item;
	size_t index;
};

/* By key, then by position: a run of equal keys is in the order they came. */
static int
compare_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int by_key = strcmp(x->item->string, y->item->string);

	return by_key ? by_key : (x->index > y->index) - (x->index < y->index);
}

/* Members of object with one key, first..last (sorted): keep the last's value at the first's place. */
static void
merge_run(cJSON *object, struct keyed *first, struct keyed *last)
{
	for (struct keyed *k = first + 1; k < last; k++)
		cJSON_Delete(cJSON_DetachItemViaPointer(object, k->item));
	cJSON_ReplaceItemViaPointer(object, first->item, cJSON_DetachItemViaPointer(object, last->item));
}

/* One object's duplicate keys resolved; false when memory ran out. */
static bool
keep_last_in(cJSON *object)
{
	size_t n = 0, i = 0, run;
	struct keyed *keys;
	cJSON *item;

	cJSON_ArrayForEach(item, object)
		n++;
	if (n < 2)
		return true;
	if (!(keys = malloc(n * sizeof(*keys))))
		return false;
	cJSON_ArrayForEach(item, object)
		keys[i] = (struct keyed){ item, i }, i++;
	qsort(keys, n, sizeof(*keys), compare_keyed);
	for (i = 0; i < n; i = run) {
		for (run = i + 1; run < n && strcmp(keys[run].item->string, keys[i].item->string) == 0; run++)
			;
		if (run - i > 1)
			merge_run(object, &keys[i], &keys[run - 1]);
	}
	free(keys);
	return true;
}

/*
 * Every object in the tree as Python's json.loads builds it: of duplicate
 * keys the last value counts (Ansible and pydantic read that one), so every
 * check and every file written later see one value per key, the same one.
 */
static bool
keep_last_of_duplicates(cJSON *value)
{
	cJSON *child;

	if (cJSON_IsObject(value) && !keep_last_in(value))
		return false;
	cJSON_ArrayForEach(child, value)
		if ((cJSON_IsObject(child) || cJSON_IsArray(child)) && !keep_last_of_duplicates(child))
			return false;
	return true;
}

bool
jsonparse_text(struct jsonparse *jp, const char *text, size_t len)
{
	char *parsed = (char *)text;
	const char *at;
	long bad;

	struct json_scan sc = { (const unsigned char *)text, len, 0, 0, 0 };

	*jp = (struct jsonparse){ .error_at = -1 };
	if ((bad = scan_text(&sc)) >= 0) {
		jp->error_at = bad;
		jp->error = sc.values > REQUEST_JSON_VALUES_MAX ? JSONPARSE_TOO_MANY_VALUES :
		    "Invalid JSON";
		return false;
	}
	if (find_nul_escape(text, len)) {
		parsed = replace_nul_escapes(text, len, &len, jp->nul_standin);
		jp->had_nul = true;
	}
	jp->root = parsed ? cJSON_ParseWithLength(parsed, len) : NULL;
	if (!jp->root) {
		at = parsed ? cJSON_GetErrorPtr() : NULL;
		jp->error_at = at && at >= parsed && at <= parsed + len ? (long)(at - parsed) : 0;
		jp->error = "Expecting value";
	}
	if (jp->root && !keep_last_of_duplicates(jp->root)) {
		cJSON_Delete(jp->root);
		jp->root = NULL;
		jp->error_at = 0;
		jp->error = "Out of memory";
	}
	if (parsed != text)
		free(parsed);
	return jp->root != NULL;
}

void
jsonparse_free(struct jsonparse *jp)
{
	cJSON_Delete(jp->root);
	jp->root = NULL;
}
