/*
 * yaml.h: client JSON as YAML for Ansible, every string (keys too) tagged
 * !unsafe so that Ansible never templates it. Numbers, booleans and null stay
 * plain scalars of the same type Python's json module gives them.
 */
#ifndef LSO_YAML_H
#define LSO_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "json.h"

/*
 * Append s[0..len) as !unsafe "...": a double-quoted scalar holding nothing
 * but printable ASCII, everything else escaped. Invalid UTF-8 becomes U+FFFD.
 */
void yaml_unsafe_string(struct jbuf *b, const char *s, size_t len);

/*
 * Append a JSON value as one line of YAML flow text. A cJSON_Raw item (lso's
 * own, never the client's) is copied as is: a plain YAML scalar.
 */
void yaml_from_json(struct jbuf *b, const cJSON *item);

/*
 * The same text written to fd as it is made, 64 KiB at a time: never whole
 * in memory (1 MiB of extra vars would be some 2 MiB of YAML). False when
 * out of memory or a write failed (errno).
 */
bool yaml_write(int fd, const cJSON *item);

/* The YAML text of a JSON value (malloc'd), NULL when out of memory. */
char *yaml_text(const cJSON *item);

#endif
