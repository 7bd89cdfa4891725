/* validate.h: request bodies checked as upstream's pydantic models check them (validate.c). */
#ifndef LSO_VALIDATE_H
#define LSO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "json.h"
#include "jsonparse.h"

/*
 * One body's checks: the 422 items found (a JSON array under construction)
 * and the parsed body, which the strings of a valid request point into.
 * Zero it before use; validate_free after.
 */
struct validation {
	struct jbuf items;
	size_t count;             /* problems found, listed or not */
	struct jbuf inventory_rejected;  /* upstream 5.x's invalid_inventory detail, "" when none */
	struct jsonparse json;
};

/* What an execute request asks for, once valid. */
struct execute_request {
	const char *name;
	const char **args;        /* owned array, strings in the body */
	size_t nargs;
	const char *callback;     /* NULL: none */
	bool is_async;
};

/* What a playbook request asks for, once valid. */
struct playbook_request {
	const char *name;
	char *inventory;          /* YAML for Ansible, every string !unsafe (owned) */
	const cJSON *extra_vars;  /* the client's object (in the body), NULL: none given */
	const char *callback, *progress;
	bool incremental;
};

/*
 * Check a request's body as the route's model; true when it is valid. False:
 * v->count problems were noted (422), or v->items.failed (out of memory).
 */
bool validate_execute(struct validation *v, const struct http_request *req,
    struct execute_request *x);
bool validate_playbook(struct validation *v, const struct http_request *req,
    struct playbook_request *r);

/* The characters of a safe name (upstream 5.x: ^[A-Za-z0-9._/-]+$). */
#define SAFE_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-"

/*
 * Is name a safe name? If not, a value_error item at [where, field] is noted
 * with upstream's wording. where: "body" or "path".
 */
bool validate_safe_name(struct validation *v, const char *where, const char *field,
    const char *name);

/* The 422 body of a path parameter that is not a UUID (pydantic's uuid_parsing). */
void validate_uuid_detail(struct jbuf *out, const char *field, const char *input);

/*
 * The 422 body: {"detail": [the items]}, at most REQUEST_PROBLEMS_MAX of
 * them and then, when there were more, one "too_many_errors" item whose ctx
 * says how many were left out (a 1 MiB body of wrong list items would
 * otherwise get a 50 MB answer); or, when the only problem is an
 * inventory Ansible would refuse, upstream 5.x's {"detail": {"error":
 * "invalid_inventory", "reason": ..., "messages": [...], "parsed_groups":
 * [...], "parsed_hosts": [...]}}.
 */
void validate_detail(const struct validation *v, struct jbuf *out);

void validate_free(struct validation *v);
void validate_execute_free(struct execute_request *x);
void validate_playbook_free(struct playbook_request *r);

#endif
