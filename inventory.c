/*
 * inventory.c: an ini-format inventory string as the inventory object
 * Ansible's yaml plugin reads (see inventory.h).
 *
 * The rules are those of Ansible's ini plugin: lines split as Python's
 * splitlines() does, stripped; "#" and ";" start comments; [group],
 * [group:vars] and [group:children] sections; host lines split as
 * shlex.split(line, comments=True), then "key=value" tokens; [group:vars]
 * lines split at the first "=". Each value goes through ast.literal_eval,
 * which lso does not emulate in full: a value is converted when literal_eval
 * surely fails (the text stays a string), when it is an int, a float of the
 * form 1.5, True, False or None, or a plain quoted string; every other value
 * that literal_eval could turn into something else (tuples, lists, dicts,
 * complex or hex numbers, escapes in quotes...) is refused with a message
 * naming it. So is text holding control characters other than tab and line
 * ends, or Unicode line or space separators, which Python's str methods treat
 * as line ends or blanks.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "inventory.h"
#include "json.h"

/* A client line or value in a message: "%.200s", cut at the limit in http.h. */
#define STRING(x) STRING_OF(x)
#define STRING_OF(x) #x
#define QUOTE "%." STRING(REQUEST_INVENTORY_QUOTE_MAX_BYTES) "s"

/*
 * Every member the parse makes, found by (object, key) in constant time:
 * cJSON finds a member by walking its object's list, and 100,000 hosts in
 * one group would cost billions of comparisons. Open addressing, at most
 * half full; one entry a member, so bounded by the inventory's size.
 */
struct member_slot {
	const cJSON *object;
	cJSON *item;          /* its key is item->string */
};

struct members {
	struct member_slot *slots;
	size_t used, size;    /* size: 0 or a power of two */
};

struct ini {
	struct members members;
	cJSON *groups;        /* the result */
	cJSON *defined;       /* groups with a [g] or [g:children] section */
	cJSON *vars_only;     /* groups with a [g:vars] section: line text */
	cJSON *children;      /* child group -> the parent that named it */
	char *why;
	size_t why_size;
};

static bool
refuse(struct ini *in, const char *fmt, const char *a, const char *b)
{
	snprintf(in->why, in->why_size, fmt, a, b ? b : "");
	return false;
}

/* --- text that Python would split or strip differently from us --- */

/* U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. */
static bool
is_unicode_separator(const unsigned char *s)
{
	return (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) ||
	    (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) ||
	    (s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 ||
	    s[2] == 0xaf)) ||
	    (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) ||
	    (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80);
}

static bool
check_characters(struct ini *in, const char *text)
{
	const unsigned char *u = (const unsigned char *)text;

	for (size_t i = 0; u[i]; i++) {
		if ((u[i] < 0x20 && !strchr("\t\n\r", u[i])) ||
		    (u[i] >= 0xc2 && is_unicode_separator(u + i)))
			return refuse(in, "Inventory string holds a control character or a Unicode "
			    "line or space separator; send an inventory object instead", NULL, NULL);
	}
	return true;
}

/* --- the members index --- */

static size_t
member_hash(const cJSON *object, const char *key)
{
	size_t h = (size_t)14695981039346656037ULL ^ (size_t)(uintptr_t)object;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * (size_t)1099511628211ULL;
	return h ^ (h >> 29);
}

/* The slot of (object, key): its member's, or the empty one where it would go. */
static struct member_slot *
member_slot(const struct members *m, const cJSON *object, const char *key)
{
	size_t i = member_hash(object, key) & (m->size - 1);

	while (m->slots[i].item &&
	    (m->slots[i].object != object || strcmp(m->slots[i].item->string, key) != 0))
		i = (i + 1) & (m->size - 1);
	return &m->slots[i];
}

static cJSON *
member_find(const struct members *m, const cJSON *object, const char *key)
{
	return m->size ? member_slot(m, object, key)->item : NULL;
}

static bool
members_grow(struct members *m)
{
	struct members bigger = { .size = m->size ? 2 * m->size : 64 };

	if (!(bigger.slots = calloc(bigger.size, sizeof(*bigger.slots))))
		return false;
	for (size_t i = 0; i < m->size; i++)
		if (m->slots[i].item)
			*member_slot(&bigger, m->slots[i].object, m->slots[i].item->string) = m->slots[i];
	bigger.used = m->used;
	free(m->slots);
	*m = bigger;
	return true;
}

/* item, just added to object, is found from now on; refused past the bound. */
static bool
member_note(struct ini *in, const cJSON *object, cJSON *item)
{
	struct members *m = &in->members;

	if (m->used >= REQUEST_INVENTORY_ENTRIES_MAX)
		return refuse(in, "Inventory string makes more than %s hosts, groups and variables; "
		    "send fewer%s", STRING(REQUEST_INVENTORY_ENTRIES_MAX), NULL);
	if (2 * (m->used + 1) > m->size && !members_grow(m))
		return false;
	*member_slot(m, object, item->string) = (struct member_slot){ object, item };
	m->used++;
	return true;
}

/* --- groups, hosts, variables --- */

/* The member of object named key, created as an empty object if missing. */
static cJSON *
child_object(struct ini *in, cJSON *object, const char *key)
{
	cJSON *item;

	if (!object)
		return NULL;
	if ((item = member_find(&in->members, object, key)))
		return item;
	item = cJSON_AddObjectToObject(object, key);
	return item && member_note(in, object, item) ? item : NULL;
}

/*
 * In place of old (object's member), value under old's key: it keeps old's
 * place. old is freed: it is a value or a "children" entry, never an object
 * the index holds members of (hosts, groups and their "vars" are only ever
 * made by child_object, never replaced).
 */
static bool
replace_member(struct ini *in, cJSON *object, cJSON *old, cJSON *value)
{
	size_t len = strlen(old->string) + 1;
	char *key = cJSON_malloc(len);

	if (!key) {
		cJSON_Delete(value);
		return false;
	}
	memcpy(key, old->string, len);
	value->string = key;
	value->type &= ~cJSON_StringIsConst;
	member_slot(&in->members, object, key)->item = value;
	return cJSON_ReplaceItemViaPointer(object, old, value);
}

/* object[key] = value, the last assignment winning as in Ansible. */
static bool
set_member(struct ini *in, cJSON *object, const char *key, cJSON *value)
{
	cJSON *old;

	if (!object || !value) {
		cJSON_Delete(value);
		return false;
	}
	if ((old = member_find(&in->members, object, key)))
		return replace_member(in, object, old, value);
	if (!cJSON_AddItemToObject(object, key, value)) {
		cJSON_Delete(value);
		return false;
	}
	return member_note(in, object, value);
}

static bool
mark(struct ini *in, cJSON *set, const char *key, const char *value)
{
	return set_member(in, set, key, cJSON_CreateString(value));
}

/* --- values: what ast.literal_eval would make of them --- */

enum value_kind { VALUE_TEXT, VALUE_TYPED, VALUE_REFUSED };

/* Python's int 0|[1-9][0-9]* or float [0-9]+.[0-9]*, the whole of s[0..len). */
static bool
is_plain_number(const char *s, size_t len)
{
	size_t digits = strspn(s, "0123456789"), rest;

	if (digits == 0 || digits > len)
		return false;
	if (digits == len)
		return s[0] != '0' || len == 1;
	if (s[digits] != '.')
		return false;
	rest = strspn(s + digits + 1, "0123456789");
	return digits + 1 + rest == len;
}

/*
 * A token starting with a digit, as far as Python's tokenizer could read it
 * as one number: is it surely no number (two dots, a letter no number holds,
 * a decimal with leading zeros)? Then literal_eval fails.
 */
static bool
surely_not_a_number(const char *s, size_t len)
{
	size_t dots = 0, i;
	bool zeros_then_digit = s[0] == '0';

	for (i = 0; i < len; i++) {
		if (s[i] == '.')
			dots++;
		else if (isalpha((unsigned char)s[i]) && !strchr("eEjJxXoObBaAcCdDfF", s[i]))
			return true;
	}
	if (dots > 1)
		return true;
	for (i = 0; zeros_then_digit && i < len; i++)
		if (!isdigit((unsigned char)s[i]) && s[i] != '_')
			zeros_then_digit = false;
	return zeros_then_digit && strspn(s, "0_") < len;
}

/* The length of the number-like token at s: [0-9A-Za-z_.], an exponent's sign. */
static size_t
number_token_len(const char *s)
{
	size_t len = 0;

	for (;;) {
		while (isalnum((unsigned char)s[len]) || s[len] == '_' || s[len] == '.')
			len++;
		if ((s[len - 1] == 'e' || s[len - 1] == 'E') && (s[len] == '+' || s[len] == '-') &&
		    isdigit((unsigned char)s[len + 1]))
			len++;
		else
			return len;
	}
}

/*
 * After "N+" or "N-": literal_eval takes the sum only with an imaginary
 * number and nothing after it (1+2j); anything else fails (2024-01-01).
 */
static bool
is_complex_operand(const char *s)
{
	size_t len;

	s += strspn(s, " \t");
	if (!isdigit((unsigned char)*s) && *s != '.')
		return false;
	len = number_token_len(s);
	return (s[len - 1] == 'j' || s[len - 1] == 'J') && s[len + strspn(s + len, " \t")] == '\0';
}

/* s starts with a digit; sign is "-" or "". */
static enum value_kind
classify_number(const char *s, const char *sign, struct jbuf *typed)
{
	size_t len = number_token_len(s);
	const char *rest = s + len + strspn(s + len, " \t");

	if (surely_not_a_number(s, len))
		return VALUE_TEXT;
	if (*rest == '\0' && is_plain_number(s, len)) {
		jbuf_printf(typed, "%s%.*s", sign, (int)len, s);
		return VALUE_TYPED;
	}
	/* A tuple, a comment after the number, or a number we do not convert. */
	if (*rest == '\0' || *rest == ',' || *rest == '#')
		return VALUE_REFUSED;
	if (*rest == '+' || *rest == '-')
		return is_complex_operand(rest + 1) ? VALUE_REFUSED : VALUE_TEXT;
	return VALUE_TEXT;
}

/* r, u, b, f, t, br, rb, fr, rf, tr, rt in any case: Python's string prefixes. */
static bool
is_string_prefix(const char *s, size_t len)
{
	static const char *const prefixes[] = { "r", "u", "b", "f", "t", "br", "rb", "fr", "rf",
		"tr", "rt" };

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strlen(prefixes[i]) == len && strncasecmp(s, prefixes[i], len) == 0)
			return true;
	return false;
}

static enum value_kind
classify_word(const char *s, const char *end, struct jbuf *typed)
{
	static const char *const constants[][2] = {
		{ "True", "true" }, { "False", "false" }, { "None", "null" }, { "set", NULL } };
	size_t len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");

	/*
	 * A non-ASCII letter may join the name, and Python's NFKC may turn it
	 * into a constant (U+FF53 U+FF45 U+FF54 "()" is set()): refused when
	 * the name could still become one.
	 */
	if ((unsigned char)s[len] >= 0x80) {
		for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
			if (strncmp(s, constants[i][0], len) == 0 && len < strlen(constants[i][0]))
				return VALUE_REFUSED;
		return is_string_prefix(s, len) ? VALUE_REFUSED : VALUE_TEXT;
	}
	for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
		if (strlen(constants[i][0]) != len || strncmp(s, constants[i][0], len) != 0)
			continue;
		if (s + len == end && constants[i][1]) {
			jbuf_puts(typed, constants[i][1]);
			return VALUE_TYPED;
		}
		return VALUE_REFUSED;
	}
	/* A string prefix (r"", b'', f"" ...) before a quote; another name fails there. */
	if ((s[len] == '"' || s[len] == '\'') && is_string_prefix(s, len))
		return VALUE_REFUSED;
	return VALUE_TEXT; /* a name: literal_eval fails */
}

/* A plain quoted string: 'text' or "text", no backslash, nothing after. */
static enum value_kind
classify_quoted(const char *s, const char *end, struct jbuf *text)
{
	const char *close = memchr(s + 1, s[0], (size_t)(end - s - 1));

	if (!close || close + 1 != end || memchr(s + 1, '\\', (size_t)(close - s - 1)))
		return VALUE_REFUSED;
	jbuf_add(text, s + 1, (size_t)(close - s - 1));
	return VALUE_TEXT;
}

/*
 * What Ansible's _parse_value makes of v: VALUE_TEXT (the string in text, v
 * itself unless it was a quoted string), VALUE_TYPED (its YAML in text), or
 * VALUE_REFUSED.
 */
static enum value_kind
classify_value(const char *v, struct jbuf *text)
{
	const char *s = v + strspn(v, " \t"), *end = s + strlen(s), *after_sign;
	enum value_kind kind;

	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (isalpha((unsigned char)*s) || *s == '_')
		kind = classify_word(s, end, text);
	else if (isdigit((unsigned char)*s))
		kind = classify_number(s, "", text);
	else if (*s == '+' || *s == '-') {
		after_sign = s + 1 + strspn(s + 1, " \t");
		if (isdigit((unsigned char)*after_sign))
			kind = classify_number(after_sign, *s == '-' ? "-" : "", text);
		else
			kind = *after_sign == '(' || *after_sign == '.' ? VALUE_REFUSED : VALUE_TEXT;
	} else if (*s == '"' || *s == '\'')
		return classify_quoted(s, end, text);
	else if (*s == '.')
		kind = isdigit((unsigned char)s[1]) || s[1] == '.' ? VALUE_REFUSED : VALUE_TEXT;
	else if (*s == '{')
		/* {{ ... }}, {% ... %}, {# ... #}: a set of a set fails, Jinja syntax fails. */
		kind = s[1] == '{' || s[1] == '%' || s[1] == '#' ? VALUE_TEXT : VALUE_REFUSED;
	else if (*s == '(' || *s == '[' || (unsigned char)*s >= 0x80)
		kind = VALUE_REFUSED;
	else
		kind = VALUE_TEXT; /* an operator or a blank: a syntax error */
	if (kind == VALUE_TEXT)
		jbuf_puts(text, v);
	return kind;
}

/* The cJSON item for a variable's value, or NULL (why set) when refused. */
static cJSON *
value_item(struct ini *in, const char *key, const char *v)
{
	struct jbuf text = { 0 };
	enum value_kind kind;
	cJSON *item = NULL;

	jbuf_add(&text, "", 0);
	kind = classify_value(v, &text);
	if (text.failed)
		refuse(in, "Out of memory", NULL, NULL);
	else if (kind == VALUE_REFUSED)
		refuse(in, "Inventory variable " QUOTE ": the value " QUOTE " is not converted from an "
		    "inventory string (Python literals other than numbers, True, False, None and "
		    "plain quoted strings); send an inventory object instead", key, v);
	else
		item = kind == VALUE_TYPED ? cJSON_CreateRaw(text.data) : cJSON_CreateString(text.data);
	jbuf_free(&text);
	return item;
}

/* --- host lines: shlex.split(line, comments=True) --- */

/* Append the token at *pos; false on an unclosed quote or a final backslash. */
static bool
read_token(const char *line, size_t *pos, struct jbuf *token, bool *comment, const char **error)
{
	size_t i = *pos;
	char quote;

	while (line[i] && !strchr(" \t\r\n", line[i])) {
		if (line[i] == '#') {
			*comment = true;
			break;
		}
		if (line[i] == '\\') {
			if (!line[i + 1])
				return *error = "No escaped character", false;
			jbuf_add(token, line + i + 1, 1);
			i += 2;
			continue;
		}
		if (line[i] != '"' && line[i] != '\'') {
			jbuf_add(token, line + i++, 1);
			continue;
		}
		quote = line[i++];
		while (line[i] && line[i] != quote) {
			if (quote == '"' && line[i] == '\\') {
				if (!line[i + 1])
					return *error = "No escaped character", false;
				if (line[i + 1] != '"' && line[i + 1] != '\\')
					jbuf_add(token, "\\", 1);
				i++;
			}
			jbuf_add(token, line + i++, 1);
		}
		if (!line[i])
			return *error = "No closing quotation", false;
		i++;
	}
	*pos = i;
	return true;
}

static cJSON *
split_host_line(struct ini *in, const char *line)
{
	cJSON *tokens = cJSON_CreateArray();
	struct jbuf token;
	size_t pos = 0;
	bool comment = false, ok = true;
	const char *error = NULL;

	while (tokens && ok && !comment) {
		pos += strspn(line + pos, " \t\r\n");
		if (!line[pos] || line[pos] == '#')
			break;
		token = (struct jbuf){ 0 };
		jbuf_add(&token, "", 0);
		ok = read_token(line, &pos, &token, &comment, &error) && !token.failed &&
		    cJSON_AddItemToArray(tokens, cJSON_CreateString(token.data));
		jbuf_free(&token);
	}
	if (!ok || !tokens) {
		cJSON_Delete(tokens);
		refuse(in, "Error parsing host definition '" QUOTE "': %s", line,
		    error ? error : "out of memory");
		return NULL;
	}
	return tokens;
}

static bool
host_line(struct ini *in, cJSON *group, const char *line)
{
	cJSON *tokens = split_host_line(in, line), *token, *host;
	const char *pattern;
	size_t len;
	bool ok = false;

	if (!tokens)
		return false;
	if (!tokens->child) { /* a stripped line always has a token; never read past the end */
		cJSON_Delete(tokens);
		return refuse(in, "Empty host name in '" QUOTE "'", line, NULL);
	}
	pattern = tokens->child->valuestring;
	len = strlen(pattern);
	if (len == 0)
		refuse(in, "Empty host name in '" QUOTE "'", line, NULL);
	else if (pattern[len - 1] == ':')
		refuse(in, "Invalid host pattern '" QUOTE "' supplied, ending in ':' is not allowed, "
		    "this character is reserved to provide a port.", pattern, NULL);
	else if (strcmp(pattern, "---") == 0)
		refuse(in, "Invalid host pattern '" QUOTE "' supplied, '---' is normally a sign this "
		    "is a YAML file.", pattern, NULL);
	else if ((host = child_object(in, child_object(in, group, "hosts"), pattern))) {
		ok = true;
		for (token = tokens->child->next; ok && token; token = token->next) {
			char *eq = strchr(token->valuestring, '=');

			if (!eq) {
				ok = refuse(in, "Expected key=value host variable assignment, got: " QUOTE,
				    token->valuestring, NULL);
				break;
			}
			*eq = '\0';
			ok = set_member(in, host, token->valuestring,
			    value_item(in, token->valuestring, eq + 1));
		}
	}
	cJSON_Delete(tokens);
	return ok;
}

/* --- [group:vars] and [group:children] lines --- */

static char *
strip(char *s)
{
	char *end;

	s += strspn(s, " \t");
	for (end = s + strlen(s); end > s && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	return s;
}

static bool
vars_line(struct ini *in, cJSON *group, char *line)
{
	char *eq = strchr(line, '='), *key;

	if (!eq)
		return refuse(in, "Expected key=value, got: " QUOTE, line, NULL);
	*eq = '\0';
	key = strip(line);
	return set_member(in, child_object(in, group, "vars"), key, value_item(in, key, strip(eq + 1)));
}

/* A group name: no ':', ']' or blank, then only a comment. */
static size_t
group_name_len(const char *s)
{
	size_t len = strcspn(s, ":] \t");
	const char *rest = s + len + strspn(s + len, " \t");

	return len > 0 && (*rest == '\0' || *rest == '#') ? len : 0;
}

static bool
children_line(struct ini *in, const char *parent, cJSON *group, char *line)
{
	size_t len = group_name_len(line);

	if (!len)
		return refuse(in, "Expected group name, got: " QUOTE, line, NULL);
	line[len] = '\0';
	return set_member(in, child_object(in, group, "children"), line, cJSON_CreateObject()) &&
	    (member_find(&in->members, in->children, line) ||
	    mark(in, in->children, line, parent));
}

/* --- sections --- */

/* Parse "[name]" or "[name:type]" (then blanks, a comment); the group, or NULL. */
static cJSON *
section_line(struct ini *in, char *line, const char **state)
{
	size_t len = strcspn(line + 1, ":] \t\r\n"), tag_len = 0;
	char *name = line + 1, *tag = NULL, *rest;

	if (len == 0)
		goto invalid;
	rest = name + len;
	if (*rest == ':') {
		tag = rest + 1;
		tag_len = strspn(tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
		if (tag_len == 0)
			goto invalid;
		rest = tag + tag_len;
	}
	if (*rest != ']')
		goto invalid;
	rest++;
	rest += strspn(rest, " \t");
	if (*rest && *rest != '#')
		goto invalid;
	name[len] = '\0';
	if (tag)
		tag[tag_len] = '\0';
	*state = tag ? tag : "hosts";
	if (strcmp(*state, "hosts") && strcmp(*state, "children") && strcmp(*state, "vars")) {
		refuse(in, "Section [" QUOTE ":%s] has unknown type", name, *state);
		return NULL;
	}
	if (strcmp(*state, "vars") != 0 ? !mark(in, in->defined, name, "") :
	    !member_find(&in->members, in->vars_only, name) && !mark(in, in->vars_only, name, ""))
		return NULL;
	return child_object(in, in->groups, name);
invalid:
	refuse(in, "Invalid section entry: '" QUOTE "'. Please make sure that there are no spaces "
	    "or other characters in the group name", line, NULL);
	return NULL;
}

/* Every group named by [g:vars] or [p:children] has a section of its own. */
static bool
check_declared(struct ini *in)
{
	const cJSON *g;

	cJSON_ArrayForEach(g, in->vars_only)
		if (!member_find(&in->members, in->defined, g->string))
			return refuse(in, "Section [" QUOTE ":vars] not valid for undefined group: %s",
			    g->string, g->string);
	cJSON_ArrayForEach(g, in->children)
		if (!member_find(&in->members, in->defined, g->string))
			return refuse(in, "Section [" QUOTE ":children] includes undefined group: %s",
			    g->valuestring, g->string);
	return true;
}

/* One stripped line in the current state. */
static bool
parse_line(struct ini *in, char *line, cJSON **group, char *group_name, size_t name_size,
    const char **state)
{
	if (!*line || *line == '#' || *line == ';')
		return true;
	if (*line == '[') {
		if (!(*group = section_line(in, line, state)))
			return false;
		snprintf(group_name, name_size, "%s", line + 1);
		return true;
	}
	if (strcmp(*state, "vars") == 0)
		return vars_line(in, *group, line);
	if (strcmp(*state, "children") == 0)
		return children_line(in, group_name, *group, line);
	return host_line(in, *group, line);
}

cJSON *
inventory_from_ini(const char *text, char *why, size_t why_size)
{
	return inventory_from_ini_partial(text, why, why_size, NULL);
}

cJSON *
inventory_from_ini_partial(const char *text, char *why, size_t why_size, cJSON **parsed)
{
	struct ini in = { .groups = cJSON_CreateObject(), .defined = cJSON_CreateObject(),
		.vars_only = cJSON_CreateObject(), .children = cJSON_CreateObject(),
		.why = why, .why_size = why_size };
	size_t size = strlen(text) + sizeof("ungrouped");
	char *copy = strdup(text), *name = malloc(size), *line, *next;
	const char *state = "hosts";
	cJSON *group = NULL;
	bool ok;

	why[0] = '\0';
	ok = in.groups && in.defined && in.vars_only && in.children && copy && name &&
	    check_characters(&in, text) && mark(&in, in.defined, "all", "") &&
	    mark(&in, in.defined, "ungrouped", "") && (group = child_object(&in, in.groups, "ungrouped"));
	if (ok)
		snprintf(name, size, "ungrouped");
	/* Lines end at "\n", "\r\n" or "\r", as splitlines() has it. */
	for (line = copy; ok && line; line = next) {
		size_t len = strcspn(line, "\r\n");

		next = line[len] ? line + len + 1 + (line[len] == '\r' && line[len + 1] == '\n') : NULL;
		line[len] = '\0';
		ok = parse_line(&in, strip(line), &group, name, size, &state);
	}
	ok = ok && check_declared(&in);
	if (!ok && why[0] == '\0')
		snprintf(why, why_size, "Out of memory");
	free(copy);
	free(name);
	free(in.members.slots);
	cJSON_Delete(in.defined);
	cJSON_Delete(in.vars_only);
	cJSON_Delete(in.children);
	if (!ok) {
		/* What Ansible's ini plugin would have added before it gave up. */
		if (parsed)
			*parsed = in.groups;
		else
			cJSON_Delete(in.groups);
		return NULL;
	}
	return in.groups;
}
