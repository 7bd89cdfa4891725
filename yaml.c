/*
 * yaml.c: client JSON as YAML flow text with every string !unsafe.
 *
 * Ansible templates every string it reads from an inventory or an extra-vars
 * file, so a client string like "{{ lookup('pipe', ...) }}" would run a
 * command. A string tagged !unsafe is never templated. The output is one line
 * of flow YAML, {? !unsafe "key" : value, ...} and [value, ...]: explicit keys
 * (?) because YAML limits implicit keys to 1024 characters; double-quoted
 * scalars of printable ASCII only, so no client byte can end the scalar.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "yaml.h"

/* yaml_write: where the text goes as it is made, and how much it gathers first. */
#define YAML_FLUSH_BYTES 65536
static int flush_fd = -1;
static bool flush_failed;

/* What is gathered, to flush_fd. */
static void
flush_out(struct jbuf *b)
{
	size_t done = 0;
	ssize_t n;

	while (done < b->len && !flush_failed) {
		n = write(flush_fd, b->data + done, b->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			flush_failed = true;
		else
			done += (size_t)n;
	}
	b->len = 0;
}

/* Between two values: what is gathered goes to flush_fd, when writing to a file. */
static void
flush_if_full(struct jbuf *b)
{
	if (flush_fd >= 0 && b->len >= YAML_FLUSH_BYTES)
		flush_out(b);
}

/* Append one escape for code point cp: \xHH, \uHHHH or \UHHHHHHHH. */
static void
escape_code_point(struct jbuf *b, unsigned long cp)
{
	if (cp < 0x100)
		jbuf_printf(b, "\\x%02lX", cp);
	else if (cp < 0x10000)
		jbuf_printf(b, "\\u%04lX", cp);
	else
		jbuf_printf(b, "\\U%08lX", cp);
}

/* The code point of the valid UTF-8 sequence s[0..len). */
static unsigned long
decode_utf8(const unsigned char *s, size_t len)
{
	static const unsigned char lead_mask[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	unsigned long cp = s[0] & lead_mask[len];

	for (size_t i = 1; i < len; i++)
		cp = cp << 6 | (s[i] & 0x3f);
	return cp;
}

void
yaml_unsafe_string(struct jbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run, seq;

	jbuf_puts(b, "!unsafe \"");
	while (i < len && !b->failed) {
		/* A run of printable ASCII other than the quote and the backslash. */
		for (run = i; run < len && u[run] >= 0x20 && u[run] < 0x7f &&
		    u[run] != '"' && u[run] != '\\'; run++)
			;
		if (run > i) {
			jbuf_add(b, s + i, run - i);
			i = run;
		} else if (u[i] == '"' || u[i] == '\\') {
			jbuf_add(b, u[i] == '"' ? "\\\"" : "\\\\", 2);
			i++;
		} else if (u[i] < 0x80) {
			escape_code_point(b, u[i]);
			i++;
		} else if ((seq = json_utf8_len(u + i, len - i)) > 0) {
			escape_code_point(b, decode_utf8(u + i, seq));
			i += seq;
		} else {
			escape_code_point(b, 0xfffd);
			i++;
		}
	}
	jbuf_puts(b, "\"");
}

/*
 * A number as Python's json module read it from cJSON's text before: that
 * text as a YAML int, or as a YAML float with the "." and signed exponent
 * YAML 1.1 wants ("1e+20" would be a string there: "1.0e+20").
 */
static void
append_number(struct jbuf *b, const cJSON *item)
{
	char *text = cJSON_PrintUnformatted(item);
	size_t mantissa;

	if (!text) {
		b->failed = true;
		return;
	}
	mantissa = strcspn(text, "eE");
	if (strcmp(text, "null") == 0 || strpbrk(text, ".eE") == NULL) {
		jbuf_puts(b, text);
	} else {
		jbuf_add(b, text, mantissa);
		if (!memchr(text, '.', mantissa))
			jbuf_puts(b, ".0");
		jbuf_puts(b, text + mantissa);
	}
	free(text);
}

static void
append_object(struct jbuf *b, const cJSON *object)
{
	const cJSON *member;

	jbuf_puts(b, "{");
	cJSON_ArrayForEach(member, object) {
		jbuf_puts(b, member == object->child ? "? " : ", ? ");
		yaml_unsafe_string(b, member->string ? member->string : "",
		    member->string ? strlen(member->string) : 0);
		jbuf_puts(b, " : ");
		yaml_from_json(b, member);
		flush_if_full(b);
	}
	jbuf_puts(b, "}");
}

static void
append_array(struct jbuf *b, const cJSON *array)
{
	const cJSON *element;

	jbuf_puts(b, "[");
	cJSON_ArrayForEach(element, array) {
		if (element != array->child)
			jbuf_puts(b, ", ");
		yaml_from_json(b, element);
		flush_if_full(b);
	}
	jbuf_puts(b, "]");
}

void
yaml_from_json(struct jbuf *b, const cJSON *item)
{
	if (cJSON_IsString(item))
		yaml_unsafe_string(b, item->valuestring, strlen(item->valuestring));
	else if (cJSON_IsNumber(item))
		append_number(b, item);
	else if (cJSON_IsTrue(item))
		jbuf_puts(b, "true");
	else if (cJSON_IsFalse(item))
		jbuf_puts(b, "false");
	else if (cJSON_IsObject(item))
		append_object(b, item);
	else if (cJSON_IsArray(item))
		append_array(b, item);
	else if (cJSON_IsRaw(item) && item->valuestring)
		jbuf_puts(b, item->valuestring);
	else
		jbuf_puts(b, "null");
}

char *
yaml_text(const cJSON *item)
{
	struct jbuf b = { 0 };

	yaml_from_json(&b, item);
	jbuf_puts(&b, "\n");
	if (b.failed) {
		jbuf_free(&b);
		return NULL;
	}
	return b.data;
}

bool
yaml_write(int fd, const cJSON *item)
{
	struct jbuf b = { 0 };
	bool ok;

	flush_fd = fd;
	flush_failed = false;
	yaml_from_json(&b, item);
	jbuf_puts(&b, "\n");
	ok = !b.failed;
	if (ok)
		flush_out(&b);
	flush_fd = -1;
	ok = ok && !flush_failed;
	jbuf_free(&b);
	return ok;
}
