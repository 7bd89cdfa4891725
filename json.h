/*
 * json.h: JSON output. A growable buffer, string escaping that always yields
 * valid JSON (UTF-8 repaired, newlines translated as Python's universal
 * newlines do), and FastAPI's error shapes. Requests are parsed with cJSON.
 */
#ifndef LSO_JSON_H
#define LSO_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jbuf {
	char *data;
	size_t len, cap;
	bool failed; /* an allocation failed: the content is incomplete */
};

static inline bool
jbuf_reserve(struct jbuf *b, size_t more)
{
	size_t cap;
	char *data;

	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data) {
		b->failed = true;
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

static inline void
jbuf_add(struct jbuf *b, const char *s, size_t len)
{
	if (!jbuf_reserve(b, len))
		return;
	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static inline void
jbuf_puts(struct jbuf *b, const char *s)
{
	jbuf_add(b, s, strlen(s));
}

static inline void
jbuf_vprintf(struct jbuf *b, const char *fmt, va_list ap)
{
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	if (n >= 0 && jbuf_reserve(b, (size_t)n)) {
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
		b->len += (size_t)n;
	}
	va_end(again);
}

static inline void
jbuf_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void
jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	jbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

static inline void
jbuf_free(struct jbuf *b)
{
	free(b->data);
	*b = (struct jbuf){ 0 };
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static inline size_t
json_utf8_len(const unsigned char *s, size_t left)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (left < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid. */
	if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * The character at u[0..left) appended as it is when it is valid UTF-8, as
 * U+FFFD when it is not (one per bad byte); how many bytes it took.
 */
static inline size_t
json_add_utf8(struct jbuf *b, const unsigned char *u, size_t left)
{
	size_t seq = json_utf8_len(u, left);

	if (seq > 0) {
		jbuf_add(b, (const char *)u, seq);
		return seq;
	}
	jbuf_add(b, "\xef\xbf\xbd", 3);
	return 1;
}

/*
 * Append s[0..len) as a JSON string body (no quotes). With translate_newlines,
 * "\r\n" and a lone "\r" become "\n", as upstream's text-mode pipes do.
 * Invalid UTF-8 becomes U+FFFD, one per bad byte.
 */
static inline void
json_escape(struct jbuf *b, const char *s, size_t len, bool translate_newlines)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run;
	char esc[8];

	while (i < len && jbuf_reserve(b, 6)) {
		/* Copy a run of plain printable ASCII in one go. */
		for (run = i; run < len && u[run] >= 0x20 && u[run] < 0x80 &&
		    u[run] != '"' && u[run] != '\\'; run++)
			;
		if (run > i) {
			jbuf_add(b, s + i, run - i);
			i = run;
			continue;
		}
		if (u[i] == '\r' && translate_newlines) {
			jbuf_add(b, "\\n", 2);
			i += i + 1 < len && u[i + 1] == '\n' ? 2 : 1;
		} else if (u[i] == '"' || u[i] == '\\') {
			esc[0] = '\\', esc[1] = (char)u[i];
			jbuf_add(b, esc, 2);
			i++;
		} else if (u[i] < 0x20) {
			static const char short_forms[] = "btn\0fr";
			if (u[i] >= '\b' && u[i] <= '\r' && short_forms[u[i] - '\b']) {
				esc[0] = '\\', esc[1] = short_forms[u[i] - '\b'];
				jbuf_add(b, esc, 2);
			} else {
				snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
				jbuf_add(b, esc, 6);
			}
			i++;
		} else {
			i += json_add_utf8(b, u + i, len - i);
		}
	}
}

/*
 * How many bytes of s[0..len), from its start, json_escape turns into at most
 * budget bytes; never ends inside a "\r\n" or a UTF-8 sequence. What an output
 * cap keeps, so that the cap holds for what goes on the wire, not for the
 * bytes before escaping (a NUL takes 6).
 */
static inline size_t
json_escape_fit(const char *s, size_t len, size_t budget, bool translate_newlines)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, used = 0, in, out;

	while (i < len) {
		in = 1;
		if (u[i] == '\r' && translate_newlines) {
			out = 2;
			in = i + 1 < len && u[i + 1] == '\n' ? 2 : 1;
		} else if (u[i] == '"' || u[i] == '\\') {
			out = 2;
		} else if (u[i] < 0x20) {
			out = u[i] >= '\b' && u[i] <= '\r' && u[i] != 0x0b ? 2 : 6;
		} else if (u[i] < 0x80) {
			out = 1;
		} else if ((in = json_utf8_len(u + i, len - i)) > 0) {
			out = in;
		} else {
			in = 1, out = 3;
		}
		if (used + out > budget)
			break;
		used += out;
		i += in;
	}
	return i;
}

/* Append a quoted JSON string, or null for NULL. */
static inline void
json_string(struct jbuf *b, const char *s)
{
	if (!s) {
		jbuf_puts(b, "null");
		return;
	}
	jbuf_add(b, "\"", 1);
	json_escape(b, s, strlen(s), false);
	jbuf_add(b, "\"", 1);
}

/* {"detail": "message"}, FastAPI's HTTPException body. */
static inline void
json_detail(struct jbuf *b, const char *message)
{
	jbuf_puts(b, "{\"detail\":");
	json_string(b, message);
	jbuf_puts(b, "}");
}

#endif
