/* docs.h: the documentation pages, Swagger UI and ReDoc, as FastAPI serves them (docs.c). */
#ifndef LSO_DOCS_H
#define LSO_DOCS_H

#include "json.h"

/* Where the pages' scripts come from by default: FastAPI's CDN (LSO_DOCS_ASSETS_URL overrides). */
#define DOCS_ASSETS_URL_DEFAULT "https://cdn.jsdelivr.net/npm"

/* The HTML of GET /api/doc (Swagger UI) and GET /api/redoc (ReDoc), loading /api/openapi.json. */
void docs_swagger_page(struct jbuf *page);
void docs_redoc_page(struct jbuf *page);

#endif
