/* Little-endian encoding into growable buffers, and bounds-checked decoding.
 * Every file pare writes goes through these, so the format is the same on
 * every host whatever its byte order. */
#ifndef PARE_CORE_BYTES_H
#define PARE_CORE_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "pare.h"

typedef struct pare_wbuf {
    uint8_t *p;
    size_t len, cap;
    int failed;   /* set once an allocation failed; later puts do nothing */
} pare_wbuf;

void pare_wbuf_free(pare_wbuf *b);
void pare_wbuf_put(pare_wbuf *b, const void *src, size_t n);
void pare_wbuf_zeros(pare_wbuf *b, size_t n);
void pare_wbuf_align(pare_wbuf *b, size_t a);
void pare_wbuf_u8(pare_wbuf *b, uint8_t v);
void pare_wbuf_u32(pare_wbuf *b, uint32_t v);
void pare_wbuf_u64(pare_wbuf *b, uint64_t v);
void pare_wbuf_i32(pare_wbuf *b, int32_t v);
void pare_wbuf_f32(pare_wbuf *b, float v);
void pare_wbuf_f64(pare_wbuf *b, double v);
/* u32 length then the bytes (no terminator); NULL is written as length 0. */
void pare_wbuf_str(pare_wbuf *b, const char *s);
/* n floats as little-endian. */
void pare_wbuf_f32s(pare_wbuf *b, const float *v, size_t n);
void pare_wbuf_set_u32(pare_wbuf *b, size_t at, uint32_t v);
void pare_wbuf_set_u64(pare_wbuf *b, size_t at, uint64_t v);
pare_status pare_wbuf_status(const pare_wbuf *b);

/* A reader over a byte range; the first read past the end sets `bad` and all
 * later reads return zeros, so parsers check once at the end of a record. */
typedef struct pare_rbuf {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} pare_rbuf;

void pare_rbuf_init(pare_rbuf *r, const void *p, size_t len);
int pare_rbuf_get(pare_rbuf *r, void *dst, size_t n);
uint8_t pare_rbuf_u8(pare_rbuf *r);
uint32_t pare_rbuf_u32(pare_rbuf *r);
uint64_t pare_rbuf_u64(pare_rbuf *r);
int32_t pare_rbuf_i32(pare_rbuf *r);
float pare_rbuf_f32(pare_rbuf *r);
double pare_rbuf_f64(pare_rbuf *r);
/* A string of at most max bytes, as a new NUL-terminated allocation; NULL and
 * bad set when it is too long, truncated or holds a NUL byte. */
char *pare_rbuf_str(pare_rbuf *r, size_t max);
int pare_rbuf_f32s(pare_rbuf *r, float *dst, size_t n);
size_t pare_rbuf_left(const pare_rbuf *r);

uint32_t pare_le32(const uint8_t *p);
uint64_t pare_le64(const uint8_t *p);
void pare_put_le32(uint8_t *p, uint32_t v);
void pare_put_le64(uint8_t *p, uint64_t v);

/* CRC-32 (the zlib/PNG polynomial) of a byte range. */
uint32_t pare_crc32(uint32_t crc, const void *p, size_t n);

#endif
