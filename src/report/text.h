/* Text helpers shared by the report files (not public): UTF-8 decoding and
 * widths, and a growable string buffer with XML escaping. */
#ifndef PARE_REPORT_TEXT_H
#define PARE_REPORT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Decodes one code point from s (at most n bytes): returns its length 1..4,
 * or 0 when the bytes there are not valid UTF-8 (overlong, surrogate, past
 * U+10FFFF, truncated). */
size_t pare_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Columns of s: code points, an invalid byte counting as one. */
size_t pare_utf8_width(const char *s);
/* Bytes of the longest prefix of s that is at most cols code points wide. */
size_t pare_utf8_prefix(const char *s, size_t cols);

typedef struct pare_strbuf {
    char *p;
    size_t len, cap;
    int oom; /* an append failed: the text is incomplete */
} pare_strbuf;

void pare_strbuf_put(pare_strbuf *b, const char *s, size_t n);
void pare_strbuf_puts(pare_strbuf *b, const char *s);
void pare_strbuf_printf(pare_strbuf *b, const char *fmt, ...) PARE_PRINTF(2, 3);
/* Appends s escaped for XML text and attribute values; characters XML 1.0
 * forbids (most controls) and invalid UTF-8 become U+FFFD. */
void pare_strbuf_xml(pare_strbuf *b, const char *s);
void pare_strbuf_release(pare_strbuf *b);

#endif
