/* UTF-8 decoding and widths, and the growable buffer the SVG writer builds
 * its document in. */
#include "report/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t pare_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0)
        return 0;
    unsigned char b = u[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
        v = b & 0x1F;
        min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        v = b & 0x0F;
        min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        v = b & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (!is_cont(u[i]))
            return 0;
        v = (v << 6) | (u[i] & 0x3F);
    }
    /* Overlong forms and surrogates would let two spellings of one text
     * differ, and JSON and XML readers reject them. */
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

size_t pare_utf8_width(const char *s)
{
    size_t n = strlen(s), w = 0;
    for (size_t i = 0; i < n; w++) {
        uint32_t cp;
        size_t k = pare_utf8_next(s + i, n - i, &cp);
        i += k ? k : 1;
    }
    return w;
}

size_t pare_utf8_prefix(const char *s, size_t cols)
{
    size_t n = strlen(s), i = 0;
    for (size_t w = 0; i < n && w < cols; w++) {
        uint32_t cp;
        size_t k = pare_utf8_next(s + i, n - i, &cp);
        i += k ? k : 1;
    }
    return i;
}

static int grow(pare_strbuf *b, size_t extra)
{
    if (b->oom)
        return 0;
    if (b->len + extra + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void pare_strbuf_put(pare_strbuf *b, const char *s, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void pare_strbuf_puts(pare_strbuf *b, const char *s)
{
    pare_strbuf_put(b, s, strlen(s));
}

void pare_strbuf_printf(pare_strbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        pare_strbuf_put(b, small, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void pare_strbuf_xml(pare_strbuf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = pare_utf8_next(s + i, n - i, &cp);
        if (k == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE ||
            cp == 0xFFFF) {
            pare_strbuf_puts(b, "\xEF\xBF\xBD");
            i += k ? k : 1;
            continue;
        }
        switch (cp) {
        case '&':
            pare_strbuf_puts(b, "&amp;");
            break;
        case '<':
            pare_strbuf_puts(b, "&lt;");
            break;
        case '>':
            pare_strbuf_puts(b, "&gt;");
            break;
        case '"':
            pare_strbuf_puts(b, "&quot;");
            break;
        default:
            pare_strbuf_put(b, s + i, k);
            break;
        }
        i += k;
    }
}

void pare_strbuf_release(pare_strbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
