/* validate.h: request bodies checked as upstream's pydantic models check them (validate.c). */
#ifndef LSO_VALIDATE_H
#define LSO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

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
	size_t count;
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
	char *extra_vars;         /* likewise (owned), NULL: none given */
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

/* The 422 body: {"detail": [the items]}. */
void validate_detail(const struct validation *v, struct jbuf *out);

void validate_free(struct validation *v);
void validate_execute_free(struct execute_request *x);
void validate_playbook_free(struct playbook_request *r);

#endif
