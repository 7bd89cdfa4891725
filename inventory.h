/*
 * inventory.h: an ini-format inventory string turned into the inventory
 * object Ansible's yaml plugin reads, so that its strings can be marked
 * !unsafe (yaml.h). What cannot be converted faithfully is refused.
 */
#ifndef LSO_INVENTORY_H
#define LSO_INVENTORY_H

#include <stddef.h>

#include <cjson/cJSON.h>

/*
 * The groups of the ini text as {"group": {"hosts": {...}, "vars": {...},
 * "children": {...}}}; hosts before any section are in "ungrouped". Typed
 * values (numbers, booleans, None) are cJSON_Raw items holding their YAML
 * text. NULL with a message in why when Ansible's ini plugin would fail, or
 * when the text holds what lso does not convert.
 */
cJSON *inventory_from_ini(const char *text, char *why, size_t why_size);

/* The same; when refused, *parsed (if parsed is not NULL) gets the groups read before. */
cJSON *inventory_from_ini_partial(const char *text, char *why, size_t why_size, cJSON **parsed);

#endif
