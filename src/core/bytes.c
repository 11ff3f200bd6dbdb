/* Little-endian buffers and CRC-32 (through zlib). */
#include "core/bytes.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"

void pare_wbuf_free(pare_wbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int reserve(pare_wbuf *b, size_t n)
{
    if (b->failed)
        return 0;
    if (n > SIZE_MAX - b->len) {
        b->failed = 1;
        return 0;
    }
    size_t need = b->len + n;
    if (need <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void pare_wbuf_put(pare_wbuf *b, const void *src, size_t n)
{
    if (n == 0 || !reserve(b, n))
        return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void pare_wbuf_zeros(pare_wbuf *b, size_t n)
{
    if (n == 0 || !reserve(b, n))
        return;
    memset(b->p + b->len, 0, n);
    b->len += n;
}

void pare_wbuf_align(pare_wbuf *b, size_t a)
{
    size_t r = b->len % a;
    if (r)
        pare_wbuf_zeros(b, a - r);
}

void pare_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void pare_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t pare_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t pare_le64(const uint8_t *p) { return (uint64_t)pare_le32(p) | (uint64_t)pare_le32(p + 4) << 32; }

void pare_wbuf_u8(pare_wbuf *b, uint8_t v) { pare_wbuf_put(b, &v, 1); }

void pare_wbuf_u32(pare_wbuf *b, uint32_t v)
{
    uint8_t t[4];
    pare_put_le32(t, v);
    pare_wbuf_put(b, t, 4);
}

void pare_wbuf_u64(pare_wbuf *b, uint64_t v)
{
    uint8_t t[8];
    pare_put_le64(t, v);
    pare_wbuf_put(b, t, 8);
}

void pare_wbuf_i32(pare_wbuf *b, int32_t v) { pare_wbuf_u32(b, (uint32_t)v); }

void pare_wbuf_f32(pare_wbuf *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    pare_wbuf_u32(b, u);
}

void pare_wbuf_f64(pare_wbuf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    pare_wbuf_u64(b, u);
}

void pare_wbuf_str(pare_wbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    pare_wbuf_u32(b, (uint32_t)n);
    pare_wbuf_put(b, s, n);
}

void pare_wbuf_f32s(pare_wbuf *b, const float *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    pare_wbuf_put(b, v, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++)
        pare_wbuf_f32(b, v[i]);
#endif
}

void pare_wbuf_set_u32(pare_wbuf *b, size_t at, uint32_t v)
{
    if (!b->failed && at + 4 <= b->len)
        pare_put_le32(b->p + at, v);
}

void pare_wbuf_set_u64(pare_wbuf *b, size_t at, uint64_t v)
{
    if (!b->failed && at + 8 <= b->len)
        pare_put_le64(b->p + at, v);
}

pare_status pare_wbuf_status(const pare_wbuf *b)
{
    return b->failed ? pare_fail(PARE_ENOMEM, "out of memory while encoding") : PARE_OK;
}

void pare_rbuf_init(pare_rbuf *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->bad = 0;
}

size_t pare_rbuf_left(const pare_rbuf *r) { return r->bad ? 0 : r->len - r->pos; }

int pare_rbuf_get(pare_rbuf *r, void *dst, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        memset(dst, 0, n);
        return 0;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 1;
}

uint8_t pare_rbuf_u8(pare_rbuf *r)
{
    uint8_t v;
    pare_rbuf_get(r, &v, 1);
    return v;
}

uint32_t pare_rbuf_u32(pare_rbuf *r)
{
    uint8_t t[4];
    pare_rbuf_get(r, t, 4);
    return pare_le32(t);
}

uint64_t pare_rbuf_u64(pare_rbuf *r)
{
    uint8_t t[8];
    pare_rbuf_get(r, t, 8);
    return pare_le64(t);
}

int32_t pare_rbuf_i32(pare_rbuf *r) { return (int32_t)pare_rbuf_u32(r); }

float pare_rbuf_f32(pare_rbuf *r)
{
    uint32_t u = pare_rbuf_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double pare_rbuf_f64(pare_rbuf *r)
{
    uint64_t u = pare_rbuf_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

char *pare_rbuf_str(pare_rbuf *r, size_t max)
{
    uint32_t n = pare_rbuf_u32(r);
    if (r->bad || n > max || n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    if (memchr(r->p + r->pos, 0, n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p + r->pos, n);
    s[n] = 0;
    r->pos += n;
    return s;
}

int pare_rbuf_f32s(pare_rbuf *r, float *dst, size_t n)
{
    if (r->bad || n > (r->len - r->pos) / 4) {
        r->bad = 1;
        return 0;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, r->p + r->pos, n * 4);
    r->pos += n * 4;
#else
    for (size_t i = 0; i < n; i++)
        dst[i] = pare_rbuf_f32(r);
#endif
    return 1;
}

uint32_t pare_crc32(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    /* zlib takes uInt lengths; feed it in pieces that fit. */
    while (n > 0) {
        uInt chunk = n > 0x40000000u ? 0x40000000u : (uInt)n;
        crc = (uint32_t)crc32((uLong)crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return crc;
}
