/* validate.c: the request bodies checked field by field, with pydantic's 422 shapes and wording. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "inventory.h"
#include "json.h"
#include "jsonparse.h"
#include "playbook.h"
#include "validate.h"
#include "yaml.h"

#define STRING(x) STRING_OF(x)
#define STRING_OF(x) #x

/*
 * Begin the next 422 item, or count it only: past REQUEST_PROBLEMS_MAX the
 * problems are counted, not listed (validate_detail says how many).
 */
static bool
begin_item(struct validation *v)
{
	if (v->count++ >= REQUEST_PROBLEMS_MAX)
		return false;
	jbuf_puts(&v->items, v->count > 1 ? "," : "[");
	return true;
}

/*
 * One 422 item at where ("body", "path"); loc_tail is the JSON of loc after
 * it (our own field names); ctx, when not NULL, the JSON of pydantic's ctx.
 */
static void
problem_in(struct validation *v, const char *where, const char *type, const char *loc_tail,
    const char *msg, const cJSON *input, const char *ctx)
{
	char *input_json;

	if (!begin_item(v))
		return;
	input_json = input ? cJSON_PrintUnformatted(input) : NULL;
	jbuf_printf(&v->items, "{\"type\":\"%s\",\"loc\":[\"%s\"%s],\"msg\":", type, where,
	    loc_tail);
	json_string(&v->items, msg);
	jbuf_puts(&v->items, ",\"input\":");
	jsonparse_add_repaired(&v->json, &v->items, input_json ? input_json : "null");
	if (ctx)
		jbuf_printf(&v->items, ",\"ctx\":%s", ctx);
	jbuf_puts(&v->items, "}");
	free(input_json);
}

static void
problem_at(struct validation *v, const char *type, const char *loc_tail, const char *msg,
    const cJSON *input)
{
	problem_in(v, "body", type, loc_tail, msg, input, NULL);
}

static void
problem(struct validation *v, const char *type, const char *field, long index,
    const char *msg, const cJSON *input)
{
	char loc_tail[96] = "";

	if (field && index >= 0)
		snprintf(loc_tail, sizeof(loc_tail), ",\"%s\",%ld", field, index);
	else if (field)
		snprintf(loc_tail, sizeof(loc_tail), ",\"%s\"", field);
	problem_at(v, type, loc_tail, msg, input);
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

/* A string field: NULL when it is absent or wrong (and a problem was noted). */
static const char *
string_field(struct validation *v, const cJSON *item, const char *field, long index)
{
	if (!cJSON_IsString(item)) {
		problem(v, "string_type", field, index, "Input should be a valid string", item);
		return NULL;
	}
	if (jsonparse_has_nul(&v->json, item->valuestring)) {
		problem(v, "value_error", field, index,
		    "Value error, string must not hold a NUL character", item);
		return NULL;
	}
	return item->valuestring;
}

/* pydantic's lax bool: true/false, 0/1 and the usual words. */
static bool
lax_bool(struct validation *v, const cJSON *item, const char *field, bool fallback)
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
		problem(v, "bool_parsing", field, -1,
		    "Input should be a valid boolean, unable to interpret input", item);
	else
		problem(v, "bool_type", field, -1, "Input should be a valid boolean", item);
	return fallback;
}

/* Why url is not an absolute http(s) URL with a host, or NULL when it is. */
static const char *
url_problem(const char *url, const char **type)
{
	size_t scheme_len = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	const char *host;

	*type = "url_parsing";
	if (strlen(url) > REQUEST_URL_MAX_CHARS) {
		*type = "url_too_long";
		return "URL should have at most " STRING(REQUEST_URL_MAX_CHARS) " characters";
	}
	/*
	 * Controls and blanks, and also a quote and a backslash (a URL parser would
	 * percent-encode the one and read the other as '/'): what a record holds
	 * of the URL is then its exact text, which is how GET finds and masks a
	 * password in it (record_mask_password).
	 */
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 127 || *c == '"' || *c == '\\')
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
url_field(struct validation *v, const cJSON *item, const char *field)
{
	const char *why, *type;

	if (!item || cJSON_IsNull(item))
		return NULL;
	if (!cJSON_IsString(item)) {
		problem(v, "url_type", field, -1, "URL input should be a string or URL", item);
		return NULL;
	}
	why = url_problem(item->valuestring, &type);
	if (!why && jsonparse_has_nul(&v->json, item->valuestring))
		why = "Input should be a valid URL, invalid character";
	if (why) {
		problem(v, type, field, -1, why, item);
		return NULL;
	}
	return item->valuestring;
}

static void
parse_args(struct validation *v, const cJSON *item, struct execute_request *x)
{
	const cJSON *arg;
	long i = 0;

	if (!item)
		return;
	if (!cJSON_IsArray(item)) {
		problem(v, "list_type", "args", -1, "Input should be a valid list", item);
		return;
	}
	x->args = calloc((size_t)cJSON_GetArraySize(item) + 1, sizeof(*x->args));
	if (!x->args) {
		v->items.failed = true; /* answered 500 */
		return;
	}
	cJSON_ArrayForEach(arg, item) {
		x->args[x->nargs++] = string_field(v, arg, "args", i);
		i++;
	}
}

/* Upstream 5.x's SAFE_NAME_PATTERN, ^[A-Za-z0-9._/-]+$, matched in full. */
static bool
is_safe_name(const char *name)
{
	return *name && strspn(name, SAFE_NAME_CHARS) == strlen(name);
}

bool
validate_safe_name(struct validation *v, const char *where, const char *field, const char *name)
{
	struct jbuf msg = { 0 }, loc_tail = { 0 };
	cJSON *input;

	if (is_safe_name(name))
		return true;
	jbuf_printf(&msg, "Value error, Name '%s' contains characters that are not allowed.", name);
	jbuf_printf(&loc_tail, ",\"%s\"", field);
	input = cJSON_CreateString(name);
	/* pydantic's ctx of a ValueError, as FastAPI encodes it. */
	problem_in(v, where, "value_error", loc_tail.data ? loc_tail.data : "",
	    msg.data ? msg.data : "", input, "{\"error\":{}}");
	if (!input || msg.failed || loc_tail.failed)
		v->items.failed = true;
	cJSON_Delete(input);
	jbuf_free(&msg);
	jbuf_free(&loc_tail);
	return false;
}

/* A name field (executable_name, playbook_name): a string, and a safe name. */
static const char *
name_field(struct validation *v, const cJSON *body, const char *field)
{
	const cJSON *item = member(body, field);
	const char *name;

	if (!item) {
		problem(v, "missing", field, -1, "Field required", body);
		return NULL;
	}
	name = string_field(v, item, field, -1);
	if (name && !validate_safe_name(v, "body", field, name))
		return NULL;
	return name;
}

void
validate_uuid_detail(struct jbuf *out, const char *field, const char *input)
{
	jbuf_printf(out, "{\"detail\":[{\"type\":\"uuid_parsing\",\"loc\":[\"path\",\"%s\"],"
	    "\"msg\":\"Input should be a valid UUID, unable to parse string as a UUID\",\"input\":", field);
	json_string(out, input);
	jbuf_puts(out, "}]}");
}

static void
check_execute_fields(struct validation *v, const cJSON *body, struct execute_request *x)
{
	x->name = name_field(v, body, "executable_name");
	parse_args(v, member(body, "args"), x);
	x->callback = url_field(v, member(body, "callback"), "callback");
	x->is_async = lax_bool(v, member(body, "is_async"), "is_async", true);
}

/* The body is not JSON: where it goes wrong, and pydantic's words for it. */
static void
json_invalid(struct validation *v, long pos, const char *error)
{
	if (!begin_item(v))
		return;
	jbuf_printf(&v->items, "{\"type\":\"json_invalid\",\"loc\":[\"body\",%ld],"
	    "\"msg\":\"JSON decode error\",\"input\":{},\"ctx\":{\"error\":\"%s\"}}", pos, error);
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
 * The YAML Ansible reads for a client's JSON value (yaml.h: no string of it
 * is ever templated); a 422 when it holds a NUL, a 500 when out of memory.
 * may_hold_nul: the value is of the body (not converted from ini text).
 */
/* Does a value of the body hold a NUL character somewhere? Then a 422 is noted. */
static bool
holds_nul(struct validation *v, const cJSON *item, const char *field)
{
	char *json = v->json.had_nul ? cJSON_PrintUnformatted(item) : NULL;
	bool nul = json && jsonparse_has_nul(&v->json, json);

	if (nul)
		problem(v, "value_error", field, -1,
		    "Value error, string must not hold a NUL character", item);
	free(json);
	return nul;
}

static char *
client_yaml(struct validation *v, const cJSON *item, const char *field, bool may_hold_nul)
{
	char *yaml = NULL;

	if (may_hold_nul && holds_nul(v, item, field))
		return NULL;
	if (!(yaml = yaml_text(item)))
		v->items.failed = true;
	return yaml;
}

/*
 * Names, each maybe many times: borrowed from the parsed inventory (which
 * outlives them), sorted and made unique only once, when written, so that
 * 65,536 hosts cost one sort, not a search each.
 */
struct names {
	const char **name;
	size_t count, size;
	bool failed;
};

static void
names_add(struct names *set, const char *name)
{
	const char **bigger;

	if (!name || set->failed)
		return;
	if (set->count == set->size) {
		set->size = set->size ? 2 * set->size : 64;
		if (!(bigger = realloc(set->name, set->size * sizeof(*set->name)))) {
			set->failed = true;
			return;
		}
		set->name = bigger;
	}
	set->name[set->count++] = name;
}

/* The groups and hosts below a group's data (hosts, children), as Ansible would have added them. */
static void
collect_group(const char *name, const cJSON *data, struct names *groups, struct names *hosts,
    int depth)
{
	const cJSON *entry;

	names_add(groups, name);
	if (!cJSON_IsObject(data) || depth > REQUEST_INVENTORY_DEPTH_MAX)
		return;
	entry = cJSON_GetObjectItemCaseSensitive(data, "hosts");
	if (cJSON_IsObject(entry))
		for (entry = entry->child; entry; entry = entry->next)
			names_add(hosts, entry->string);
	entry = cJSON_GetObjectItemCaseSensitive(data, "children");
	if (cJSON_IsObject(entry))
		for (entry = entry->child; entry; entry = entry->next)
			collect_group(entry->string, entry, groups, hosts, depth + 1);
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A set's names as a sorted JSON list, each once. */
static void
add_sorted_names(struct jbuf *out, struct names *set)
{
	size_t i, written = 0;

	if (set->failed) {
		out->failed = true;
		return;
	}
	if (set->count)
		qsort(set->name, set->count, sizeof(*set->name), compare_strings);
	jbuf_puts(out, "[");
	for (i = 0; i < set->count; i++) {
		if (i && strcmp(set->name[i], set->name[i - 1]) == 0)
			continue;
		if (written++)
			jbuf_puts(out, ",");
		json_string(out, set->name[i]);
	}
	jbuf_puts(out, "]");
}

/*
 * An inventory Ansible would refuse: upstream 5.x's structured detail, apart
 * from the list (shown only when nothing else is wrong, as upstream checks
 * the inventory after the model). parsed: what Ansible would have read before
 * it gave up (groups as the inventory object has them), may be NULL.
 * "rejected_with_warnings" when some hosts were read, else "unparsable".
 */
static void
inventory_rejected(struct validation *v, const char *why, const cJSON *parsed)
{
	struct names groups = { 0 }, hosts = { 0 };
	const cJSON *group;
	struct jbuf *out = &v->inventory_rejected;

	/* Ansible's own two groups exist in every inventory. */
	names_add(&groups, "all");
	names_add(&groups, "ungrouped");
	cJSON_ArrayForEach(group, parsed)
		collect_group(group->string, group, &groups, &hosts, 0);
	out->len = 0;
	jbuf_printf(out, "{\"error\":\"invalid_inventory\",\"reason\":\"%s\",\"messages\":[",
	    hosts.count ? "rejected_with_warnings" : "unparsable");
	json_string(out, why);
	jbuf_puts(out, "],\"parsed_groups\":");
	add_sorted_names(out, &groups);
	jbuf_puts(out, ",\"parsed_hosts\":");
	add_sorted_names(out, &hosts);
	jbuf_puts(out, "}");
	free(groups.name);
	free(hosts.name);
}

/* The groups of an inventory object the yaml plugin reads before the first bad one. */
static cJSON *
readable_groups(const cJSON *inventory)
{
	cJSON *readable = cJSON_CreateObject(), *alone;
	const cJSON *group;
	char why[512];
	bool bad;

	cJSON_ArrayForEach(group, inventory) {
		if (!(alone = cJSON_CreateObject()))
			break;
		cJSON_AddItemReferenceToObject(alone, group->string, (cJSON *)group);
		bad = playbook_inventory_object_problem(alone, why, sizeof(why)) != NULL;
		cJSON_Delete(alone);
		if (bad)
			break;
		cJSON_AddItemReferenceToObject(readable, group->string, (cJSON *)group);
	}
	return readable;
}

static void
parse_inventory(struct validation *v, const cJSON *body, const cJSON *item,
    struct playbook_request *r)
{
	char why[512];
	cJSON *groups, *parsed = NULL;

	if (!item) {
		problem(v, "missing", "inventory", -1, "Field required", body);
	} else if (cJSON_IsString(item)) {
		if (!string_field(v, item, "inventory", -1))
			return;
		/* Ansible's ini format cannot mark a string unsafe: send it as YAML. */
		if (!(groups = inventory_from_ini_partial(item->valuestring, why, sizeof(why), &parsed)))
			inventory_rejected(v, why, parsed);
		else
			r->inventory = client_yaml(v, groups, "inventory", false);
		cJSON_Delete(groups);
		cJSON_Delete(parsed);
	} else if (cJSON_IsObject(item)) {
		if (playbook_inventory_object_problem(item, why, sizeof(why))) {
			parsed = readable_groups(item);
			inventory_rejected(v, why, parsed);
			cJSON_Delete(parsed);
		} else
			r->inventory = client_yaml(v, item, "inventory", true);
	} else {
		/* pydantic reports each member of the union dict | str */
		problem_at(v, "dict_type", ",\"inventory\",\"dict[str,any]\"",
		    "Input should be a valid dictionary", item);
		problem_at(v, "string_type", ",\"inventory\",\"str\"",
		    "Input should be a valid string", item);
	}
}

static void
check_playbook_fields(struct validation *v, const cJSON *body, struct playbook_request *r)
{
	const cJSON *vars = member(body, "extra_vars");

	r->name = name_field(v, body, "playbook_name");
	parse_inventory(v, body, member(body, "inventory"), r);
	if (vars && !cJSON_IsObject(vars))
		problem(v, "dict_type", "extra_vars", -1, "Input should be a valid dictionary", vars);
	else if (vars && !holds_nul(v, vars, "extra_vars"))
		r->extra_vars = vars;  /* YAML once the job has its id (playbook_extra_vars) */
	r->callback = url_field(v, member(body, "callback"), "callback");
	r->progress = url_field(v, member(body, "progress"), "progress");
	r->incremental = lax_bool(v, member(body, "progress_is_incremental"),
	    "progress_is_incremental", true);
}

/* The request body as a JSON object, problems noted the FastAPI way; NULL when it is not one. */
static const cJSON *
parse_body(struct validation *v, const struct http_request *req)
{
	cJSON *as_string;

	if (!is_json_type(req->content_type)) {
		as_string = cJSON_CreateString(req->body);
		problem(v, "model_attributes_type", NULL, -1,
		    "Input should be a valid dictionary or object to extract fields from", as_string);
		cJSON_Delete(as_string);
		return NULL;
	}
	if (req->body_len == 0) {
		problem(v, "missing", NULL, -1, "Field required", NULL);
		return NULL;
	}
	if (!jsonparse_text(&v->json, req->body, req->body_len)) {
		json_invalid(v, v->json.error_at, v->json.error);
		return NULL;
	}
	if (!cJSON_IsObject(v->json.root)) {
		problem(v, "model_attributes_type", NULL, -1,
		    "Input should be a valid dictionary or object to extract fields from", v->json.root);
		return NULL;
	}
	return v->json.root;
}

/* Problems noted, or memory ran out: the request is not taken. */
static bool
is_valid(const struct validation *v)
{
	return v->count == 0 && !v->items.failed && !v->inventory_rejected.failed &&
	    v->inventory_rejected.len == 0;
}

bool
validate_execute(struct validation *v, const struct http_request *req, struct execute_request *x)
{
	const cJSON *body = parse_body(v, req);

	if (body)
		check_execute_fields(v, body, x);
	return is_valid(v);
}

bool
validate_playbook(struct validation *v, const struct http_request *req, struct playbook_request *r)
{
	const cJSON *body = parse_body(v, req);

	if (body)
		check_playbook_fields(v, body, r);
	return is_valid(v);
}

/*
 * The last item of a truncated 422, shaped like the others (type, loc, msg,
 * input, ctx) so that clients reading pydantic's list still read it.
 */
static void
add_omitted_item(struct jbuf *out, size_t omitted)
{
	jbuf_printf(out, ",{\"type\":\"too_many_errors\",\"loc\":[\"body\"],"
	    "\"msg\":\"Too many errors: %zu more not shown\",\"input\":null,"
	    "\"ctx\":{\"limit\":%d,\"omitted\":%zu}}", omitted, REQUEST_PROBLEMS_MAX, omitted);
}

void
validate_detail(const struct validation *v, struct jbuf *out)
{
	if (v->count == 0 && v->inventory_rejected.len) {
		jbuf_puts(out, "{\"detail\":");
		jbuf_add(out, v->inventory_rejected.data, v->inventory_rejected.len);
		jbuf_puts(out, "}");
		return;
	}
	jbuf_puts(out, "{\"detail\":");
	jbuf_add(out, v->items.data ? v->items.data : "[", v->items.data ? v->items.len : 1);
	if (v->count > REQUEST_PROBLEMS_MAX)
		add_omitted_item(out, v->count - REQUEST_PROBLEMS_MAX);
	jbuf_puts(out, "]}");
}

void
validate_free(struct validation *v)
{
	jsonparse_free(&v->json);
	jbuf_free(&v->items);
	jbuf_free(&v->inventory_rejected);
}

void
validate_execute_free(struct execute_request *x)
{
	free(x->args);
	x->args = NULL;
}

void
validate_playbook_free(struct playbook_request *r)
{
	free(r->inventory);
	r->inventory = NULL;
	r->extra_vars = NULL;
}
