/* jsonparse.h: a request body parsed strictly into cJSON, NULs included (jsonparse.c). */
#ifndef LSO_JSONPARSE_H
#define LSO_JSONPARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "json.h"

/*
 * A parsed body. cJSON ends strings at NUL, so while it parses a text with
 * "\u0000" escapes, each stands in as a code point the text does not hold
 * otherwise (raw or escaped): nul_standin, "" when the text had none.
 */
struct jsonparse {
	cJSON *root;           /* any JSON value; NULL when the text is not one */
	bool had_nul;          /* the text held "\u0000" escapes */
	char nul_standin[5];   /* the stand-in's UTF-8 */
	long error_at;         /* root NULL: where the text goes wrong */
	const char *error;     /* root NULL: "Invalid JSON", "Expecting value", "Too many values: ..." */
};

/* Parse text[0..len) strictly (RFC 8259, as Python's json.loads); false with error set. */
bool jsonparse_text(struct jsonparse *jp, const char *text, size_t len);

/* -1 when the text is one JSON value, else where it goes wrong. */
long jsonparse_error_at(const char *text, size_t len);

/* Does s, a string of the parsed tree, hold a NUL (its stand-in)? */
bool jsonparse_has_nul(const struct jsonparse *jp, const char *s);

/* Append JSON text printed from the tree: stand-ins back to \u0000, bytes that are not UTF-8 to U+FFFD. */
void jsonparse_add_repaired(const struct jsonparse *jp, struct jbuf *b, const char *json);

void jsonparse_free(struct jsonparse *jp);

#endif
