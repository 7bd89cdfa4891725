/* escape.h: JSON string escaping for the bench floors (floor.c, resident.c), so both
 * answer with the bytes lso would: quote, backslash and newline as two-byte escapes,
 * other control bytes as \u00XX, everything else as is. dst needs 6 * n bytes. */
#ifndef BENCH_ESCAPE_H
#define BENCH_ESCAPE_H

#include <stddef.h>
#include <string.h>

static size_t json_escape(char *dst, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c == '\n') {
			dst[o++] = '\\';
			dst[o++] = 'n';
		} else if (c < 0x20) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex[c >> 4];
			dst[o + 5] = hex[c & 15];
			o += 6;
		} else {
			dst[o++] = (char)c;
		}
	}
	return o;
}

#endif
