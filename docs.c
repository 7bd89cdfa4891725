/*
 * docs.c: the documentation pages. The HTML FastAPI's get_swagger_ui_html and
 * get_redoc_html write, with lso's OpenAPI document and title; the scripts
 * and styles come from LSO_DOCS_ASSETS_URL, laid out as the CDN lays them
 * out (<base>/swagger-ui-dist@5/..., <base>/redoc@2/bundles/...).
 */
#include <string.h>

#include "config.h"
#include "docs.h"

#define DOCS_OPENAPI_URL "/api/openapi.json"
#define DOCS_TITLE "lso"
/* What FastAPI's pages also load from outside: only with the default (online) assets. */
#define DOCS_FAVICON_URL "https://fastapi.tiangolo.com/img/favicon.png"
#define DOCS_FONTS_URL "https://fonts.googleapis.com/css?family=Montserrat:300,400,700|Roboto:300,400,700"

/* The setting in an HTML attribute: an administrator's URL, escaped all the same. */
static void
add_attribute_text(struct jbuf *page, const char *text, size_t len)
{
	for (const char *c = text; c < text + len; c++) {
		switch (*c) {
		case '&': jbuf_puts(page, "&amp;"); break;
		case '"': jbuf_puts(page, "&quot;"); break;
		case '<': jbuf_puts(page, "&lt;"); break;
		case '>': jbuf_puts(page, "&gt;"); break;
		default: jbuf_add(page, c, 1);
		}
	}
}

/* An asset's URL: the base (no trailing slash), then the asset's path on the CDN. */
static void
add_asset_url(struct jbuf *page, const char *asset)
{
	const char *base = config.docs_assets_url ? config.docs_assets_url : DOCS_ASSETS_URL_DEFAULT;
	size_t len = strlen(base);

	while (len > 0 && base[len - 1] == '/')
		len--;
	add_attribute_text(page, base, len);
	jbuf_puts(page, asset);
}

/* Off-site extras (favicon, fonts) only when the assets come from the CDN anyway. */
static bool
assets_online(void)
{
	return !config.docs_assets_url || strcmp(config.docs_assets_url, DOCS_ASSETS_URL_DEFAULT) == 0;
}

void
docs_swagger_page(struct jbuf *page)
{
	jbuf_puts(page, "\n    <!DOCTYPE html>\n    <html>\n    <head>\n"
	    "    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n"
	    "    <link type=\"text/css\" rel=\"stylesheet\" href=\"");
	add_asset_url(page, "/swagger-ui-dist@5/swagger-ui.css");
	jbuf_puts(page, "\">\n");
	if (assets_online())
		jbuf_puts(page, "    <link rel=\"shortcut icon\" href=\"" DOCS_FAVICON_URL "\">\n");
	jbuf_puts(page, "    <title>" DOCS_TITLE " - Swagger UI</title>\n    </head>\n    <body>\n"
	    "    <div id=\"swagger-ui\">\n    </div>\n    <script src=\"");
	add_asset_url(page, "/swagger-ui-dist@5/swagger-ui-bundle.js");
	jbuf_puts(page, "\"></script>\n"
	    "    <!-- `SwaggerUIBundle` is now available on the page -->\n"
	    "    <script>\n"
	    "    const ui = SwaggerUIBundle({\n"
	    "        url: '" DOCS_OPENAPI_URL "',\n"
	    "    \"dom_id\": \"#swagger-ui\",\n"
	    "\"layout\": \"BaseLayout\",\n"
	    "\"deepLinking\": true,\n"
	    "\"showExtensions\": true,\n"
	    "\"showCommonExtensions\": true,\n"
	    "\n    presets: [\n"
	    "        SwaggerUIBundle.presets.apis,\n"
	    "        SwaggerUIBundle.SwaggerUIStandalonePreset\n"
	    "        ],\n"
	    "    })\n"
	    "    </script>\n    </body>\n    </html>\n    ");
}

void
docs_redoc_page(struct jbuf *page)
{
	jbuf_puts(page, "\n    <!DOCTYPE html>\n    <html>\n    <head>\n"
	    "    <title>" DOCS_TITLE " - ReDoc</title>\n"
	    "    <!-- needed for adaptive design -->\n"
	    "    <meta charset=\"utf-8\"/>\n"
	    "    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
	if (assets_online())
		jbuf_puts(page, "    <link href=\"" DOCS_FONTS_URL "\" rel=\"stylesheet\">\n"
		    "    <link rel=\"shortcut icon\" href=\"" DOCS_FAVICON_URL "\">\n");
	jbuf_puts(page, "    <style>\n      body {\n        margin: 0;\n        padding: 0;\n      }\n"
	    "    </style>\n    </head>\n    <body>\n    <noscript>\n"
	    "        ReDoc requires Javascript to function. Please enable it to browse the documentation.\n"
	    "    </noscript>\n"
	    "    <redoc spec-url=\"" DOCS_OPENAPI_URL "\"></redoc>\n    <script src=\"");
	add_asset_url(page, "/redoc@2/bundles/redoc.standalone.js");
	jbuf_puts(page, "\"> </script>\n    </body>\n    </html>\n    ");
}
