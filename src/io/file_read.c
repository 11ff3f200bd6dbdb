/* The .pare reader: checks every byte, count, offset and shape of a file held in
 * memory, then builds a graph; whatever is wrong becomes one sentence, never a crash. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/error.h"
#include "graph/op.h"
#include "io/format.h"
#include "io/io.h"

/* Smallest possible records, to bound counts by the bytes that hold them
 * before anything is allocated. */
#define MIN_NODE_RECORD                                                                            \
    (4 + 4 + 4 + 12 + 4 + 4 + 4 * PARE_FILE_INT_ATTRS + 4 * PARE_FILE_FLOAT_ATTRS)
#define MIN_TENSOR_RECORD (4 + 4 + 4 + 4 + 4 + 4 + 16 + 20 + 32 + 4)
#define MAX_ENTRY_SIZE 1024

enum { S_META, S_GRPH, S_TENS, S_DATA, S__BUILTIN };
static const char builtin_tags[S__BUILTIN][5] = {"META", "GRPH", "TENS", "DATA"};

typedef struct sec {
    char tag[4];
    uint32_t flags, crc;
    uint64_t off, size;
    int known; /* index into builtin_tags, or -1 */
} sec;

/* A byte range of the file that something owns: the header, the table, a section. */
typedef struct span {
    uint64_t lo, hi;
    int who; /* -2 header, -1 table, else a section index */
} span;

static pare_status sec_fail(const char *tag, const char *fmt, ...) PARE_PRINTF(2, 3);

static pare_status sec_fail(const char *tag, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pare_fail(PARE_EFORMAT, "section %.4s: %s", tag, msg);
}

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* n <= INT_MAX items of at least `each` bytes fit in `left` bytes. */
static int count_fits(uint32_t n, size_t left, size_t each)
{
    return n <= INT_MAX && (size_t)n <= left / each;
}

/* A u32-length-prefixed string of at most max bytes, as a new C string; NULL
 * (and *st set) when it is cut short, too long or holds a NUL byte. */
static char *get_str(pare_rbuf *r, size_t max, const char *tag, const char *field, pare_status *st)
{
    uint32_t n = pare_rbuf_u32(r);
    if (!r->bad && n > max) {
        *st = sec_fail(tag, "%s is %lu bytes long, more than the %zu allowed", field,
                       (unsigned long)n, max);
        return NULL;
    }
    if (r->bad || n > pare_rbuf_left(r)) {
        *st = sec_fail(tag, "%s is cut short", field);
        return NULL;
    }
    if (memchr(r->p + r->pos, 0, n)) {
        *st = sec_fail(tag, "%s holds a NUL byte", field);
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        *st = pare_fail(PARE_ENOMEM, "out of memory reading %s", field);
        return NULL;
    }
    memcpy(s, r->p + r->pos, n);
    s[n] = 0;
    r->pos += n;
    return s;
}

static void get_f32s(float *dst, const uint8_t *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u = pare_le32(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
#endif
}

/* ---- header and section table ------------------------------------------- */

static pare_status check_header(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return pare_fail(PARE_EFORMAT, "the file is empty; it is not a pare model file");
    size_t m = len < PARE_FILE_MAGIC_LEN ? len : PARE_FILE_MAGIC_LEN;
    if (memcmp(buf, PARE_FILE_MAGIC, m) != 0)
        return pare_fail(PARE_EFORMAT,
                         "not a pare model file (it does not start with \"PAREMDL\" and a NUL)");
    if (len < 16)
        return pare_fail(PARE_EFORMAT,
                         "truncated: the file has %zu bytes, less than the %d-byte header", len,
                         PARE_FILE_HEADER_SIZE);
    uint32_t major = pare_le32(buf + PARE_FH_MAJOR), minor = pare_le32(buf + PARE_FH_MINOR);
    /* The version comes before the header CRC: a newer major may lay the rest
     * of the header out differently, and deserves its own message. */
    if (major > PARE_FILE_MAJOR)
        return pare_fail(PARE_EFORMAT,
                         "written by a newer pare (format %lu.x); this pare reads %d.x",
                         (unsigned long)major, PARE_FILE_MAJOR);
    if (major < PARE_FILE_MAJOR)
        return pare_fail(PARE_EFORMAT, "format %lu.%lu is not one this pare reads (it reads %d.x)",
                         (unsigned long)major, (unsigned long)minor, PARE_FILE_MAJOR);
    if (len < PARE_FILE_HEADER_SIZE)
        return pare_fail(PARE_EFORMAT,
                         "truncated: the file has %zu bytes, less than the %d-byte header", len,
                         PARE_FILE_HEADER_SIZE);
    uint32_t crc = pare_crc32(0, buf, PARE_FH_CRC);
    if (crc != pare_le32(buf + PARE_FH_CRC))
        return pare_fail(PARE_EFORMAT,
                         "the header is corrupted (its CRC-32 is %08lx, it says %08lx)",
                         (unsigned long)crc, (unsigned long)pare_le32(buf + PARE_FH_CRC));
    uint64_t size = pare_le64(buf + PARE_FH_FILE_SIZE);
    if (size > len)
        return pare_fail(PARE_EFORMAT, "truncated: the header says %llu bytes, the file has %zu",
                         ull(size), len);
    if (size < len)
        return pare_fail(
            PARE_EFORMAT,
            "the header says %llu bytes, the file has %zu: there is data after the end", ull(size),
            len);
    return PARE_OK;
}

static int builtin_index(const char *tag)
{
    for (int i = 0; i < S__BUILTIN; i++)
        if (!memcmp(tag, builtin_tags[i], 4))
            return i;
    return -1;
}

static pare_status read_table(const uint8_t *buf, size_t len, sec **out, uint32_t *count)
{
    *out = NULL;
    uint64_t toff = pare_le64(buf + PARE_FH_TABLE_OFFSET);
    uint32_t n = pare_le32(buf + PARE_FH_SECTION_COUNT);
    uint32_t es = pare_le32(buf + PARE_FH_ENTRY_SIZE);
    *count = n;
    if (es < PARE_FILE_ENTRY_SIZE || es > MAX_ENTRY_SIZE)
        return pare_fail(
            PARE_EFORMAT,
            "the header says section table entries are %lu bytes; %d to %d are allowed",
            (unsigned long)es, PARE_FILE_ENTRY_SIZE, MAX_ENTRY_SIZE);
    uint64_t tsize = (uint64_t)n * es; /* < 2^42: no overflow */
    if (toff < PARE_FILE_HEADER_SIZE || toff > len || tsize > len - toff)
        return pare_fail(PARE_EFORMAT,
                         "the section table (%lu entries at offset %llu) does not lie between the "
                         "header and the end of the %zu-byte file",
                         (unsigned long)n, ull(toff), len);
    const uint8_t *t = buf + toff;
    uint32_t crc = pare_crc32(0, t, (size_t)tsize);
    if (crc != pare_le32(buf + PARE_FH_TABLE_CRC))
        return pare_fail(
            PARE_EFORMAT,
            "the section table is corrupted (its CRC-32 is %08lx, the header says %08lx)",
            (unsigned long)crc, (unsigned long)pare_le32(buf + PARE_FH_TABLE_CRC));
    sec *s = calloc(n > 0 ? n : 1, sizeof *s);
    if (!s)
        return pare_fail(PARE_ENOMEM, "out of memory reading the section table");
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + (size_t)i * es;
        sec *x = &s[i];
        memcpy(x->tag, e + PARE_FE_TAG, 4);
        for (int k = 0; k < 4; k++)
            if ((unsigned char)x->tag[k] < 0x20 || (unsigned char)x->tag[k] > 0x7e) {
                free(s);
                return pare_fail(PARE_EFORMAT,
                                 "section table entry %lu has a tag that is not 4 printable ASCII "
                                 "characters",
                                 (unsigned long)i);
            }
        x->flags = pare_le32(e + PARE_FE_FLAGS);
        x->off = pare_le64(e + PARE_FE_OFFSET);
        x->size = pare_le64(e + PARE_FE_SIZE);
        x->crc = pare_le32(e + PARE_FE_CRC);
        x->known = builtin_index(x->tag);
        if (x->off > len || x->size > len - x->off) {
            pare_status st =
                pare_fail(PARE_EFORMAT,
                          "section %.4s (%llu bytes at offset %llu) lies outside the %zu-byte file",
                          x->tag, ull(x->size), ull(x->off), len);
            free(s);
            return st;
        }
    }
    *out = s;
    return PARE_OK;
}

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return x->who < y->who ? -1 : x->who > y->who;
}

static void span_name(char *buf, size_t cap, const span *s, const sec *secs)
{
    if (s->who == -2)
        snprintf(buf, cap, "the header");
    else if (s->who == -1)
        snprintf(buf, cap, "the section table");
    else
        snprintf(buf, cap, "section %.4s", secs[s->who].tag);
}

/* Sections may not overlap each other, the header or the table, and every
 * byte that none of them owns is zero padding: so no bit of a file goes
 * unchecked. */
static pare_status check_layout(const uint8_t *buf, size_t len, const sec *secs, uint32_t n)
{
    span *sp = malloc(sizeof *sp * ((size_t)n + 2));
    if (!sp)
        return pare_fail(PARE_ENOMEM, "out of memory reading the section table");
    uint64_t toff = pare_le64(buf + PARE_FH_TABLE_OFFSET);
    uint64_t tsize = (uint64_t)n * pare_le32(buf + PARE_FH_ENTRY_SIZE);
    size_t k = 0;
    sp[k++] = (span){0, PARE_FILE_HEADER_SIZE, -2};
    sp[k++] = (span){toff, toff + tsize, -1};
    for (uint32_t i = 0; i < n; i++)
        if (secs[i].size > 0)
            sp[k++] = (span){secs[i].off, secs[i].off + secs[i].size, (int)i};
    qsort(sp, k, sizeof *sp, cmp_span);
    pare_status s = PARE_OK;
    uint64_t end = 0;
    size_t last = 0;
    char a[32], b[32];
    for (size_t i = 0; i < k && s == PARE_OK; i++) {
        if (sp[i].lo == sp[i].hi)
            continue;
        if (sp[i].lo < end) {
            /* Header first, then the table, then sections by table order. */
            const span *x = &sp[last], *y = &sp[i];
            if (y->who < x->who) {
                x = &sp[i];
                y = &sp[last];
            }
            span_name(a, sizeof a, x, secs);
            span_name(b, sizeof b, y, secs);
            s = pare_fail(PARE_EFORMAT, "%s and %s overlap (at offset %llu)", a, b, ull(sp[i].lo));
            break;
        }
        for (uint64_t at = end; at < sp[i].lo; at++)
            if (buf[at]) {
                span_name(b, sizeof b, &sp[i], secs);
                s = pare_fail(PARE_EFORMAT, "byte %llu, in the padding before %s, is not zero",
                              ull(at), b);
                break;
            }
        end = sp[i].hi;
        last = i;
    }
    for (uint64_t at = end; s == PARE_OK && at < len; at++)
        if (buf[at])
            s = pare_fail(PARE_EFORMAT,
                          "byte %llu, in the padding after the last section, is not zero", ull(at));
    free(sp);
    return s;
}

/* ---- META ------------------------------------------------------------------ */

static pare_status read_meta(const uint8_t *p, size_t n, pare_graph *g)
{
    pare_rbuf r;
    pare_rbuf_init(&r, p, n);
    pare_status s = PARE_OK;
    char *name = get_str(&r, PARE_FILE_NAME_MAX, "META", "the graph name", &s);
    if (!name)
        return s;
    free(g->name);
    g->name = name;
    uint32_t count = pare_rbuf_u32(&r);
    if (r.bad)
        return sec_fail("META", "the entry count is cut short");
    if (!count_fits(count, pare_rbuf_left(&r), 8))
        return sec_fail("META", "says it holds %lu entries, more than its %zu bytes can",
                        (unsigned long)count, n);
    g->meta = calloc(count > 0 ? count : 1, sizeof *g->meta);
    if (!g->meta)
        return pare_fail(PARE_ENOMEM, "out of memory reading metadata");
    g->cap_meta = count > 0 ? (int)count : 1;
    for (uint32_t i = 0; i < count; i++) {
        char field[64];
        snprintf(field, sizeof field, "the key of entry %lu", (unsigned long)i);
        char *key = get_str(&r, PARE_FILE_NAME_MAX, "META", field, &s);
        if (!key)
            return s;
        g->meta[i].key = key;
        g->n_meta = (int)i + 1;
        snprintf(field, sizeof field, "the value of '%.32s'", key);
        g->meta[i].value = get_str(&r, PARE_FILE_VALUE_MAX, "META", field, &s);
        if (!g->meta[i].value)
            return s;
    }
    return PARE_OK;
}

/* ---- GRPH ------------------------------------------------------------------ */

static pare_status read_node(pare_rbuf *r, pare_graph *g, uint32_t i)
{
    pare_node *nd = &g->nodes[i];
    pare_status s = PARE_OK;
    char field[64];
    snprintf(field, sizeof field, "the op name of layer %lu", (unsigned long)i);
    char *op = get_str(r, PARE_FILE_NAME_MAX, "GRPH", field, &s);
    if (!op)
        return s;
    snprintf(field, sizeof field, "the name of layer %lu", (unsigned long)i);
    nd->name = get_str(r, PARE_FILE_NAME_MAX, "GRPH", field, &s);
    if (!nd->name) {
        free(op);
        return s;
    }
    int t = pare_op_find(op);
    if (!*nd->name)
        s = sec_fail("GRPH", "layer %lu has an empty name", (unsigned long)i);
    else if (t < 0)
        s = sec_fail("GRPH", "layer '%s' uses op '%.64s', which this pare does not know", nd->name,
                     op);
    free(op);
    if (s != PARE_OK)
        return s;
    nd->op = (pare_op_type)t;
    nd->out.c = pare_rbuf_i32(r);
    nd->out.h = pare_rbuf_i32(r);
    nd->out.w = pare_rbuf_i32(r);
    uint32_t n_in = pare_rbuf_u32(r);
    if (r->bad)
        return sec_fail("GRPH", "the record of layer '%s' is cut short", nd->name);
    if (!count_fits(n_in, pare_rbuf_left(r), 4))
        return sec_fail("GRPH", "layer '%s' says it has %lu inputs, more than its record holds",
                        nd->name, (unsigned long)n_in);
    nd->in = malloc(sizeof(int) * (n_in > 0 ? n_in : 1));
    if (!nd->in)
        return pare_fail(PARE_ENOMEM, "out of memory reading layer '%s'", nd->name);
    for (uint32_t j = 0; j < n_in; j++) {
        uint32_t v = pare_rbuf_u32(r);
        if (v >= i)
            return sec_fail("GRPH", "layer '%s': input %lu is not an earlier layer", nd->name,
                            (unsigned long)v);
        nd->in[j] = (int)v;
        nd->n_in = (int)j + 1;
    }
    uint32_t n_param = pare_rbuf_u32(r);
    if (r->bad)
        return sec_fail("GRPH", "the record of layer '%s' is cut short", nd->name);
    if (n_param > PARE_NODE_MAX_PARAMS)
        return sec_fail("GRPH", "layer '%s' says it has %lu parameters; at most %d are allowed",
                        nd->name, (unsigned long)n_param, PARE_NODE_MAX_PARAMS);
    for (uint32_t j = 0; j < n_param; j++) {
        uint32_t v = pare_rbuf_u32(r);
        if (v > INT_MAX)
            return sec_fail("GRPH", "layer '%s': tensor %lu does not exist", nd->name,
                            (unsigned long)v);
        nd->param[j] = (int)v;
    }
    nd->n_param = (int)n_param;
    int v[PARE_FILE_INT_ATTRS];
    for (int j = 0; j < PARE_FILE_INT_ATTRS; j++)
        v[j] = pare_rbuf_i32(r);
    pare_attrs *a = &nd->a;
    a->out_channels = v[0];
    a->kernel[0] = v[1];
    a->kernel[1] = v[2];
    a->stride[0] = v[3];
    a->stride[1] = v[4];
    a->dilation[0] = v[5];
    a->dilation[1] = v[6];
    for (int j = 0; j < 4; j++)
        a->pad[j] = v[7 + j];
    a->groups = v[11];
    a->bias = v[12];
    a->ceil_mode = v[13];
    a->count_include_pad = v[14];
    a->eps = pare_rbuf_f32(r);
    a->momentum = pare_rbuf_f32(r);
    a->p = pare_rbuf_f32(r);
    if (r->bad)
        return sec_fail("GRPH", "the record of layer '%s' is cut short", nd->name);
    /* Format 1.2 fields: present when the writer needed them, else zero. */
    if (pare_rbuf_left(r) > 0) {
        a->alpha = pare_rbuf_f32(r);
        a->beta = pare_rbuf_f32(r);
        int v12[PARE_FILE_ATTRS_12_INTS];
        for (int j = 0; j < PARE_FILE_ATTRS_12_INTS; j++)
            v12[j] = pare_rbuf_i32(r);
        a->axis = v12[0];
        a->mode = v12[1];
        for (int j = 0; j < 3; j++) {
            a->shape[j] = v12[2 + j];
            a->perm[j] = v12[5 + j];
        }
        if (r->bad)
            return sec_fail("GRPH", "the 1.2 attributes of layer '%s' are cut short", nd->name);
    }
    /* Bytes left in the record are fields of a later minor version: skipped. */
    return PARE_OK;
}

static pare_status read_grph(const uint8_t *p, size_t n, pare_graph *g)
{
    pare_rbuf r;
    pare_rbuf_init(&r, p, n);
    uint32_t count = pare_rbuf_u32(&r), output = pare_rbuf_u32(&r);
    if (r.bad)
        return sec_fail("GRPH", "the layer count and output are cut short");
    if (!count_fits(count, pare_rbuf_left(&r), MIN_NODE_RECORD))
        return sec_fail("GRPH", "says it holds %lu layers, more than its %zu bytes can",
                        (unsigned long)count, n);
    if (output >= count)
        return sec_fail("GRPH", "the output is layer %lu, but there are %lu layers",
                        (unsigned long)output, (unsigned long)count);
    g->nodes = calloc(count, sizeof *g->nodes);
    if (!g->nodes)
        return pare_fail(PARE_ENOMEM, "out of memory reading %lu layers", (unsigned long)count);
    g->cap_nodes = (int)count;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len = pare_rbuf_u32(&r);
        if (r.bad || len > pare_rbuf_left(&r))
            return sec_fail("GRPH", "the record of layer %lu is cut short", (unsigned long)i);
        pare_rbuf rec;
        pare_rbuf_init(&rec, r.p + r.pos, len);
        r.pos += len;
        g->n_nodes = (int)i + 1;
        pare_status s = read_node(&rec, g, i);
        if (s != PARE_OK)
            return s;
    }
    g->output = (int)output;
    return PARE_OK;
}

/* ---- TENS and DATA ------------------------------------------------------- */

/* An array of a tensor lies in DATA and starts on a 64-byte boundary. */
static pare_status check_array(const sec *data, uint64_t off, uint64_t n, const char *name,
                               const char *what)
{
    if (off % PARE_FILE_ALIGN != 0)
        return sec_fail("TENS",
                        "tensor '%s': its %s array starts at offset %llu, not a multiple of %d",
                        name, what, ull(off), PARE_FILE_ALIGN);
    uint64_t end = data->off + data->size;
    if (off < data->off || off > end || n > end - off)
        return sec_fail(
            "TENS",
            "tensor '%s': its %s array (%llu bytes at offset %llu) is not inside the DATA "
            "section (offsets %llu to %llu)",
            name, what, ull(n), ull(off), ull(data->off), ull(end));
    return PARE_OK;
}

/* Bits set in a bitmap of n elements (FORMAT.md, "Mask bitmap"). */
static size_t bitmap_count(const uint8_t *bm, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < (n + 7) / 8; i++) {
        unsigned b = bm[i];
        b = b - ((b >> 1) & 0x55u);
        b = (b & 0x33u) + ((b >> 2) & 0x33u);
        k += (b + (b >> 4)) & 0x0fu;
    }
    return k;
}

/* Unused bits of a bitmap's last byte are zero, so each bitmap has one encoding. */
static int bitmap_spare_bits(const uint8_t *bm, size_t n)
{
    return n % 8 && (bm[n / 8] >> (n % 8));
}

static int bit(const uint8_t *bm, size_t e)
{
    return (bm[e >> 3] >> (e & 7)) & 1;
}

/* The per-tensor attributes: "scheme" becomes p->scheme; other keys are
 * checked for form and skipped, as later versions may add them. */
static pare_status read_attrs(pare_rbuf *r, pare_param *p, uint32_t n_attr)
{
    const char *nm = p->name;
    pare_status s = PARE_OK;
    char field[80];
    if (!count_fits(n_attr, pare_rbuf_left(r), 8))
        return sec_fail("TENS",
                        "tensor '%s' says it has %lu attributes, more than its record holds", nm,
                        (unsigned long)n_attr);
    for (uint32_t k = 0; k < n_attr; k++) {
        snprintf(field, sizeof field, "attribute %lu of tensor '%.40s'", (unsigned long)k, nm);
        char *key = get_str(r, PARE_FILE_NAME_MAX, "TENS", field, &s);
        if (!key)
            return s;
        char *val = get_str(r, PARE_FILE_VALUE_MAX, "TENS", field, &s);
        if (!val) {
            free(key);
            return s;
        }
        int scheme = !strcmp(key, PARE_FILE_ATTR_SCHEME);
        free(key);
        if (!scheme) {
            free(val);
            continue;
        }
        if (p->scheme)
            s = sec_fail("TENS", "tensor '%s' has two scheme attributes", nm);
        else if (!pare_file_scheme_ok(val, strlen(val)))
            s = sec_fail("TENS",
                         "tensor '%s' has a scheme attribute that is not 1 to %d printable ASCII "
                         "characters",
                         nm, PARE_FILE_SCHEME_MAX);
        if (s != PARE_OK) {
            free(val);
            return s;
        }
        p->scheme = val;
    }
    return PARE_OK;
}

/* Where a tensor's values are and how they are stored. */
typedef struct tdata {
    uint64_t off, len;     /* the data array */
    uint32_t menc;         /* mask encoding */
    uint64_t moff, mlen;   /* the mask bitmap */
    uint32_t enc;          /* data encoding (1.1; 0 when the record ends before it) */
    uint64_t nzoff, nzlen; /* the nonzero bitmap of encoding 2 */
    uint32_t cbk, cbd;     /* 1.3, quant scheme 3 (1.4: and 4): codebook rows and values per row */
    uint64_t cboff, cblen; /* the codebook */
} tdata;

/* The 1.1 fields after the attribute list come as one group: a record ends
 * before them (dense, as 1.0 wrote it) or holds all of them. The 1.3 codebook
 * fields follow them in the record of a shared tensor (quant scheme 3), and
 * only there; whatever follows belongs to a later minor version and is skipped. */
static pare_status read_tail(pare_rbuf *r, const char *nm, int qscheme, tdata *d)
{
    size_t left = pare_rbuf_left(r);
    d->enc = PARE_FILE_DATA_DENSE;
    d->nzoff = d->nzlen = 0;
    d->cbk = d->cbd = 0;
    d->cboff = d->cblen = 0;
    int shared = qscheme == PARE_QSCHEME_CODEBOOK || qscheme == PARE_QSCHEME_BASIS;
    if (left == 0 && shared)
        return sec_fail("TENS",
                        "the record of tensor '%s' has quantization scheme %d (a %s) but "
                        "no codebook fields",
                        nm, qscheme, qscheme == PARE_QSCHEME_BASIS ? "basis" : "codebook");
    if (left == 0)
        return PARE_OK;
    if (left < PARE_FILE_TENSOR_TAIL)
        return sec_fail("TENS",
                        "the record of tensor '%s' ends %zu bytes into its data encoding fields, "
                        "which take %d",
                        nm, left, PARE_FILE_TENSOR_TAIL);
    d->enc = pare_rbuf_u32(r);
    d->nzoff = pare_rbuf_u64(r);
    d->nzlen = pare_rbuf_u64(r);
    if (!shared)
        return PARE_OK;
    left = pare_rbuf_left(r);
    if (left < PARE_FILE_CODEBOOK_FIELDS)
        return sec_fail("TENS",
                        "the record of tensor '%s' ends %zu bytes into its codebook fields, "
                        "which take %d",
                        nm, left, PARE_FILE_CODEBOOK_FIELDS);
    d->cbk = pare_rbuf_u32(r);
    d->cbd = pare_rbuf_u32(r);
    d->cboff = pare_rbuf_u64(r);
    d->cblen = pare_rbuf_u64(r);
    return PARE_OK;
}

/* Checks where a tensor's arrays are and what sizes they have, before any is read. */
static pare_status check_arrays(const sec *data, const tdata *d, size_t count, const char *nm)
{
    pare_status s;
    if (d->enc > PARE_FILE_DATA_BASIS_CODES)
        return sec_fail("TENS",
                        "tensor '%s' uses data encoding %lu, which this pare does not know "
                        "(written by a newer pare?)",
                        nm, (unsigned long)d->enc);
    /* Packed lengths depend on a bitmap's contents and are checked once it
     * has been read (unpack). */
    if (d->enc == PARE_FILE_DATA_DENSE && d->len != (uint64_t)count * sizeof(float))
        return sec_fail("TENS", "tensor '%s' has %zu values but %llu data bytes", nm, count,
                        ull(d->len));
    if ((s = check_array(data, d->off, d->len, nm, "data")))
        return s;
    if (d->menc == PARE_FILE_MASK_NONE) {
        if (d->moff != 0 || d->mlen != 0)
            return sec_fail("TENS", "tensor '%s' has no mask but a mask offset or length", nm);
    } else if (d->menc == PARE_FILE_MASK_BITMAP) {
        if (d->mlen != (count + 7) / 8)
            return sec_fail("TENS", "tensor '%s' has %zu values but a %llu-byte mask bitmap", nm,
                            count, ull(d->mlen));
        if ((s = check_array(data, d->moff, d->mlen, nm, "mask")))
            return s;
    } else {
        return sec_fail(
            "TENS", "tensor '%s' has mask encoding %lu; this pare knows 0 (none) and 1 (bitmap)",
            nm, (unsigned long)d->menc);
    }
    if (d->enc == PARE_FILE_DATA_BY_MASK && d->menc != PARE_FILE_MASK_BITMAP)
        return sec_fail("TENS",
                        "tensor '%s' is packed by its mask (data encoding 1) but has no mask", nm);
    if (d->enc == PARE_FILE_DATA_CODES_BY_MASK && d->menc != PARE_FILE_MASK_BITMAP)
        return sec_fail("TENS",
                        "tensor '%s' stores codes packed by its mask (data encoding 4) but has "
                        "no mask",
                        nm);
    if (d->enc != PARE_FILE_DATA_BY_NONZERO && d->enc != PARE_FILE_DATA_BASIS_CODES) {
        if (d->nzoff != 0 || d->nzlen != 0)
            return sec_fail("TENS",
                            "tensor '%s' has data encoding %lu but a nonzero bitmap offset or "
                            "length (only encodings 2 and 5 have one)",
                            nm, (unsigned long)d->enc);
    } else {
        if (d->nzlen != (count + 7) / 8)
            return sec_fail("TENS", "tensor '%s' has %zu values but a %llu-byte nonzero bitmap", nm,
                            count, ull(d->nzlen));
        if ((s = check_array(data, d->nzoff, d->nzlen, nm, "nonzero bitmap")))
            return s;
    }
    return PARE_OK;
}

/* Code i of `bits` bits at bit i * bits, least significant bit first. */
static uint32_t get_code(const uint8_t *src, size_t i, int bits)
{
    size_t at = i * (size_t)bits;
    uint32_t v = 0;
    for (int b = 0; b < bits; b++, at++)
        v |= (uint32_t)((src[at >> 3] >> (at & 7)) & 1u) << b;
    return v;
}

/* Rebuilds the values of a tensor stored as codes (1.3) from its quantization
 * parameters, which pare_file_qparams_problem has accepted: exactly what the
 * writer had, as it stores codes only when they rebuild every value. */
static pare_status unpack_codes(const uint8_t *src, const tdata *d, pare_param *p, size_t count,
                                const uint8_t *mask)
{
    const char *nm = p->name;
    const pare_qparams *q = &p->q;
    int shared = q->scheme == PARE_QSCHEME_CODEBOOK, bits = q->bits;
    if (!shared && (q->scheme == PARE_QSCHEME_NONE || bits < 1 || bits > PARE_FILE_CODE_BITS_MAX))
        return sec_fail("TENS",
                        "tensor '%s' is stored as codes (data encoding %lu) but is quantized to "
                        "%d bits; codes take 1 to %d",
                        nm, (unsigned long)d->enc, bits, PARE_FILE_CODE_BITS_MAX);
    size_t run = shared ? (size_t)q->d : 1, units = count / run, stored = 0;
    for (size_t u = 0; u < units; u++) {
        int kept = d->enc == PARE_FILE_DATA_CODES;
        for (size_t j = 0; !kept && j < run; j++)
            kept = bit(mask, u * run + j);
        stored += kept;
    }
    uint64_t nbits = (uint64_t)stored * (uint64_t)bits, want = (nbits + 7) / 8;
    if (d->len != want)
        return sec_fail("TENS",
                        "tensor '%s' stores %zu codes of %d bits, which take %llu bytes, but has "
                        "%llu data bytes",
                        nm, stored, bits, ull(want), ull(d->len));
    if (nbits % 8 && (src[nbits / 8] >> (nbits % 8)))
        return sec_fail("TENS", "tensor '%s' has bits set past its last code", nm);
    float *v = p->t->data;
    size_t k = 0, inner = 1, nch = 1;
    if (q->scheme == PARE_QSCHEME_CHANNEL) {
        nch = (size_t)p->t->dims[q->axis];
        for (int a = q->axis + 1; a < p->t->ndim; a++)
            inner *= (size_t)p->t->dims[a];
    }
    for (size_t u = 0; u < units; u++) {
        size_t e0 = u * run;
        int kept = d->enc == PARE_FILE_DATA_CODES;
        for (size_t j = 0; !kept && j < run; j++)
            kept = bit(mask, e0 + j);
        if (!kept)
            continue; /* +0.0, as pare_tensor_new left it */
        uint32_t f = get_code(src, k++, bits);
        if (shared && f >= (uint32_t)q->k)
            return sec_fail("TENS",
                            "tensor '%s': the code of run %zu is %lu, but its codebook has %d "
                            "rows",
                            nm, u, (unsigned long)f, q->k);
        for (size_t j = 0; j < run; j++) {
            size_t e = e0 + j;
            if (mask && !bit(mask, e))
                continue;
            if (shared) {
                v[e] = q->codebook[(size_t)f * run + j];
            } else {
                size_t c = q->scheme == PARE_QSCHEME_CHANNEL ? e / inner % nch : 0;
                v[e] = pare_file_affine_value(q->scale[c], q->zero_point[c],
                                              pare_file_code_of_field(f, bits));
            }
        }
    }
    return PARE_OK;
}

/* Rebuilds a basis tensor (quant scheme 4, 1.4) from its coefficients: the
 * nonzero bitmap marks the coefficients stored, a code of `bits` bits each,
 * and its length is checked against the bitmap's population. */
static pare_status unpack_basis(const uint8_t *buf, const tdata *d, pare_param *p, size_t count,
                                const uint8_t *mask)
{
    const char *nm = p->name;
    pare_qparams *q = &p->q;
    const uint8_t *nzb = buf + d->nzoff, *src = buf + d->off;
    if (bitmap_spare_bits(nzb, count))
        return sec_fail("TENS", "tensor '%s': its nonzero bitmap has bits set past its %zu coefficients", nm,
                        count);
    size_t stored = bitmap_count(nzb, count);
    uint64_t nbits = (uint64_t)stored * (uint64_t)q->bits, want = (nbits + 7) / 8;
    if (d->len != want)
        return sec_fail("TENS",
                        "tensor '%s' stores %zu basis coefficients of %d bits, which take %llu bytes, "
                        "but has %llu data bytes",
                        nm, stored, q->bits, ull(want), ull(d->len));
    if (nbits % 8 && (src[nbits / 8] >> (nbits % 8)))
        return sec_fail("TENS", "tensor '%s' has bits set past its last code", nm);
    q->coef = calloc(count, sizeof(float));
    if (!q->coef)
        return pare_fail(PARE_ENOMEM, "out of memory reading the coefficients of tensor '%s'", nm);
    size_t k = 0, dd = (size_t)q->d;
    for (size_t e = 0; e < count; e++)
        if (bit(nzb, e))
            q->coef[e] = pare_file_basis_coef(q->scale[0], get_code(src, k++, q->bits));
    float *v = p->t->data;
    for (size_t e = 0; e < count; e++)
        if (!mask || bit(mask, e))
            v[e] = pare_qparams_basis_value(q->coef, q->codebook, q->d, e / dd, (int)(e % dd));
    return PARE_OK;
}

/* Fills p->t (zeroed, count values) and p->mask from the arrays check_arrays
 * accepted. A packed array must hold exactly the values its bitmap selects:
 * its length is checked against the bitmap's population, not trusted. */
static pare_status unpack(const uint8_t *buf, const tdata *d, pare_param *p, size_t count)
{
    const char *nm = p->name;
    const uint8_t *mask = d->menc == PARE_FILE_MASK_BITMAP ? buf + d->moff : NULL;
    const uint8_t *nz = d->enc == PARE_FILE_DATA_BY_NONZERO ? buf + d->nzoff : NULL;
    if (mask && bitmap_spare_bits(mask, count))
        return sec_fail("TENS", "tensor '%s': its mask bitmap has bits set past its %zu values", nm,
                        count);
    if (nz && bitmap_spare_bits(nz, count))
        return sec_fail("TENS", "tensor '%s': its nonzero bitmap has bits set past its %zu values",
                        nm, count);
    if (mask) {
        p->mask = malloc(count);
        if (!p->mask)
            return pare_fail(PARE_ENOMEM, "out of memory reading the mask of tensor '%s'", nm);
        for (size_t e = 0; e < count; e++)
            p->mask[e] = (uint8_t)bit(mask, e);
    }
    const uint8_t *src = buf + d->off;
    float *v = p->t->data;
    if (d->enc == PARE_FILE_DATA_DENSE) {
        get_f32s(v, src, count);
        return PARE_OK;
    }
    if (d->enc == PARE_FILE_DATA_BASIS_CODES)
        return unpack_basis(buf, d, p, count, mask);
    if (d->enc >= PARE_FILE_DATA_CODES)
        return unpack_codes(src, d, p, count, mask);
    const uint8_t *sel = d->enc == PARE_FILE_DATA_BY_MASK ? mask : nz;
    size_t stored = bitmap_count(sel, count);
    if (d->len != (uint64_t)stored * sizeof(float)) {
        if (d->enc == PARE_FILE_DATA_BY_MASK)
            return sec_fail("TENS",
                            "tensor '%s' is packed by its mask, which keeps %zu of its %zu values, "
                            "but has %llu data bytes, not %llu",
                            nm, stored, count, ull(d->len), ull((uint64_t)stored * 4));
        return sec_fail("TENS",
                        "tensor '%s' is packed by its nonzero bitmap, which marks %zu of its %zu "
                        "values, but has %llu data bytes, not %llu",
                        nm, stored, count, ull(d->len), ull((uint64_t)stored * 4));
    }
    size_t k = 0;
    for (size_t e = 0; e < count; e++) {
        if (!bit(sel, e))
            continue; /* +0.0: pare_tensor_new zeroes */
        uint32_t u = pare_le32(src + 4 * k++);
        /* Encoding 2 leaves out exactly the +0.0 elements; a stored +0.0 means
         * the bitmap or the value was damaged. */
        if (nz && u == 0)
            return sec_fail("TENS",
                            "tensor '%s': its nonzero bitmap marks element %zu, but the value "
                            "stored for it is 0",
                            nm, e);
        memcpy(&v[e], &u, 4);
    }
    return PARE_OK;
}

/* What codes need before the tensor is allocated: a code width of 1 to 8 bits
 * and, for a code per run (encoding 3), exactly the bytes those codes take,
 * so that a few bytes cannot claim a huge tensor. (Encoding 4's length
 * depends on the mask, whose bitmap bounds the tensor already; unpack_codes
 * checks it.) */
static pare_status check_codes_length(const tdata *d, const pare_qparams *q, int ndim,
                                      const int *dims, size_t count, const char *nm)
{
    int shared = q->scheme == PARE_QSCHEME_CODEBOOK;
    if (!shared && (q->scheme == PARE_QSCHEME_NONE || q->bits < 1 ||
                    q->bits > PARE_FILE_CODE_BITS_MAX))
        return sec_fail("TENS",
                        "tensor '%s' is stored as codes (data encoding %lu) but is quantized to "
                        "%d bits; codes take 1 to %d",
                        nm, (unsigned long)d->enc, q->bits, PARE_FILE_CODE_BITS_MAX);
    if (shared && q->bits != pare_codebook_bits((int)d->cbk))
        return sec_fail("TENS",
                        "tensor '%s' has a codebook of %lu rows, whose codes take %d bits, but "
                        "says %d bits",
                        nm, (unsigned long)d->cbk, pare_codebook_bits((int)d->cbk), q->bits);
    if (shared && dims[ndim - 1] % (int)d->cbd != 0)
        return sec_fail("TENS",
                        "tensor '%s' has codebook rows of %lu values, which do not divide its "
                        "last dimension %d",
                        nm, (unsigned long)d->cbd, dims[ndim - 1]);
    if (d->enc != PARE_FILE_DATA_CODES)
        return PARE_OK;
    size_t codes = count / (shared ? d->cbd : 1);
    uint64_t want = ((uint64_t)codes * (uint64_t)q->bits + 7) / 8;
    if (d->len != want)
        return sec_fail("TENS",
                        "tensor '%s' stores %zu codes of %d bits, which take %llu bytes, but has "
                        "%llu data bytes",
                        nm, codes, q->bits, ull(want), ull(d->len));
    return PARE_OK;
}

/* packed: bytes of bitmap that the packed tensors read so far need, one bitmap
 * each. A packed tensor of n values needs only n / 8 bytes of DATA, so without
 * this bound many records pointing at one bitmap would make a small file
 * allocate 32 times more than records pointing at one dense array could. */
static pare_status read_tensor(pare_rbuf *r, const uint8_t *buf, const sec *data, pare_graph *g,
                               uint32_t i, uint64_t *packed)
{
    pare_param *p = &g->params[i];
    pare_status s = PARE_OK;
    char field[80];
    snprintf(field, sizeof field, "the name of tensor %lu", (unsigned long)i);
    p->name = get_str(r, PARE_FILE_NAME_MAX, "TENS", field, &s);
    if (!p->name)
        return s;
    if (!*p->name)
        return sec_fail("TENS", "tensor %lu has an empty name", (unsigned long)i);
    const char *nm = p->name;
    snprintf(field, sizeof field, "the role of tensor '%.40s'", nm);
    char *role = get_str(r, PARE_FILE_NAME_MAX, "TENS", field, &s);
    if (!role)
        return s;
    int ri = pare_role_find(role);
    if (ri < 0)
        s = sec_fail("TENS", "tensor '%s' has role '%.64s', which this pare does not know", nm,
                     role);
    free(role);
    if (s != PARE_OK)
        return s;
    p->role = (pare_param_role)ri;
    uint32_t node = pare_rbuf_u32(r);
    uint8_t trainable = pare_rbuf_u8(r), frozen = pare_rbuf_u8(r);
    uint8_t dtype = pare_rbuf_u8(r), ndim = pare_rbuf_u8(r);
    if (r->bad)
        return sec_fail("TENS", "the record of tensor '%s' is cut short", nm);
    if (node >= (uint32_t)g->n_nodes)
        return sec_fail("TENS", "tensor '%s' belongs to layer %lu, but there are %d layers", nm,
                        (unsigned long)node, g->n_nodes);
    if (trainable > 1 || frozen > 1)
        return sec_fail("TENS", "tensor '%s' has a trainable or frozen flag that is not 0 or 1",
                        nm);
    if (dtype != PARE_FILE_DTYPE_F32)
        return sec_fail("TENS", "tensor '%s' has data type %u; this pare reads only %d (float32)",
                        nm, (unsigned)dtype, PARE_FILE_DTYPE_F32);
    if (ndim < 1 || ndim > PARE_MAX_DIMS)
        return sec_fail("TENS", "tensor '%s' has %u dimensions; 1 to %d are allowed", nm,
                        (unsigned)ndim, PARE_MAX_DIMS);
    p->node = (int)node;
    p->trainable = trainable;
    p->frozen = frozen;
    int dims[PARE_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        uint32_t v = pare_rbuf_u32(r);
        if (!r->bad && (v == 0 || v > INT_MAX))
            return sec_fail("TENS", "tensor '%s': dimension %d is %lu; sizes are 1 to %d", nm, d,
                            (unsigned long)v, INT_MAX);
        dims[d] = (int)v;
    }
    tdata d;
    d.off = pare_rbuf_u64(r);
    d.len = pare_rbuf_u64(r);
    d.menc = pare_rbuf_u32(r);
    d.moff = pare_rbuf_u64(r);
    d.mlen = pare_rbuf_u64(r);
    pare_qparams q = {0};
    q.bits = pare_rbuf_i32(r);
    q.scheme = pare_rbuf_i32(r);
    q.axis = pare_rbuf_i32(r);
    uint32_t qn = pare_rbuf_u32(r);
    uint64_t soff = pare_rbuf_u64(r), zoff = pare_rbuf_u64(r);
    uint32_t n_attr = pare_rbuf_u32(r);
    if (r->bad)
        return sec_fail("TENS", "the record of tensor '%s' is cut short", nm);

    size_t count = pare_dims_count(ndim, dims);
    if (count == 0)
        return sec_fail("TENS",
                        "tensor '%s': its dimensions multiply to more values than this "
                        "pare can hold",
                        nm);
    /* The encoding, after the attributes, says how long the data array must
     * be; so the whole record is read before any array is checked. */
    if ((s = read_attrs(r, p, n_attr)) || (s = read_tail(r, nm, q.scheme, &d)) ||
        (s = check_arrays(data, &d, count, nm)))
        return s;
    int basis = q.scheme == PARE_QSCHEME_BASIS, coded = d.enc >= PARE_FILE_DATA_CODES;
    if (d.enc == PARE_FILE_DATA_BASIS_CODES ? !basis : basis && coded)
        return sec_fail("TENS",
                        "tensor '%s' has quantization scheme %d and data encoding %lu; basis "
                        "coefficients (encoding 5) go with a basis (scheme 4), and only they",
                        nm, q.scheme, (unsigned long)d.enc);
    if (q.scheme == PARE_QSCHEME_CODEBOOK || q.scheme == PARE_QSCHEME_BASIS) {
        if (d.cbk < 1 || d.cbk > PARE_FILE_CODEBOOK_K_MAX)
            return sec_fail("TENS",
                            "tensor '%s' is shared through a codebook of %lu rows; 1 to %d are "
                            "allowed",
                            nm, (unsigned long)d.cbk, PARE_FILE_CODEBOOK_K_MAX);
        if (d.cbd < 1 || d.cbd > PARE_FILE_CODEBOOK_D_MAX)
            return sec_fail("TENS",
                            "tensor '%s' has codebook rows of %lu values; 1 to %d are allowed", nm,
                            (unsigned long)d.cbd, PARE_FILE_CODEBOOK_D_MAX);
        uint64_t want = (uint64_t)d.cbk * d.cbd * sizeof(float);
        if (d.cblen != want)
            return sec_fail("TENS",
                            "tensor '%s' has a codebook of %lu rows of %lu values, which takes "
                            "%llu bytes, but its codebook array has %llu",
                            nm, (unsigned long)d.cbk, (unsigned long)d.cbd, ull(want),
                            ull(d.cblen));
        if ((s = check_array(data, d.cboff, d.cblen, nm, "codebook")))
            return s;
    }
    if ((d.enc == PARE_FILE_DATA_CODES || d.enc == PARE_FILE_DATA_CODES_BY_MASK) &&
        (s = check_codes_length(&d, &q, ndim, dims, count, nm)))
        return s;
    /* Arrays that stand for more values than they hold. No overflow: each is
     * inside DATA, *packed <= DATA's size < 2^63 before. */
    uint64_t charge = d.cblen;
    if (d.enc == PARE_FILE_DATA_BY_MASK || d.enc == PARE_FILE_DATA_BY_NONZERO)
        charge += (count + 7) / 8;
    else if (d.enc == PARE_FILE_DATA_CODES)
        charge += d.len;
    else if (d.enc == PARE_FILE_DATA_CODES_BY_MASK || d.enc == PARE_FILE_DATA_BASIS_CODES)
        charge += d.len + (count + 7) / 8;
    *packed += charge;
    if (*packed > data->size)
        return sec_fail("TENS",
                        "tensor '%s': the bitmaps, codes and codebooks of the packed and shared "
                        "tensors up to it add up to %llu bytes, more than the %llu-byte DATA "
                        "section holds (do tensors share an array?)",
                        nm, ull(*packed), ull(data->size));
    if (qn > INT_MAX || qn > count)
        return sec_fail("TENS", "tensor '%s' has %lu quantization scales for its %zu values", nm,
                        (unsigned long)qn, count);
    if (qn == 0 && (soff != 0 || zoff != 0))
        return sec_fail("TENS", "tensor '%s' has no quantization scales but an offset for them",
                        nm);
    if (qn > 0 && ((s = check_array(data, soff, (uint64_t)qn * 4, nm, "scale")) ||
                   (s = check_array(data, zoff, (uint64_t)qn * 4, nm, "zero-point"))))
        return s;

    p->t = pare_tensor_new(ndim, dims);
    if (!p->t)
        return PARE_ENOMEM;
    p->q.bits = q.bits;
    p->q.scheme = q.scheme;
    p->q.axis = q.axis;
    if (qn > 0) {
        p->q.scale = malloc(sizeof(float) * qn);
        p->q.zero_point = malloc(sizeof(int32_t) * qn);
        if (!p->q.scale || !p->q.zero_point)
            return pare_fail(PARE_ENOMEM, "out of memory reading the scales of tensor '%s'", nm);
        p->q.n = (int)qn;
        get_f32s(p->q.scale, buf + soff, qn);
        for (uint32_t e = 0; e < qn; e++)
            p->q.zero_point[e] = (int32_t)pare_le32(buf + zoff + 4 * (size_t)e);
    }
    if (q.scheme == PARE_QSCHEME_CODEBOOK || q.scheme == PARE_QSCHEME_BASIS) {
        size_t kd = (size_t)d.cbk * d.cbd;
        p->q.codebook = malloc(sizeof(float) * kd);
        if (!p->q.codebook)
            return pare_fail(PARE_ENOMEM, "out of memory reading the codebook of tensor '%s'", nm);
        p->q.k = (int)d.cbk;
        p->q.d = (int)d.cbd;
        get_f32s(p->q.codebook, buf + d.cboff, kd);
    }
    /* Codes are read through the quantization parameters: those first. */
    char why[160];
    if (pare_file_qparams_problem(&p->q, ndim, dims, count, why, sizeof why))
        return sec_fail("TENS", "tensor '%s' %s", nm, why);
    return unpack(buf, &d, p, count);
}

static pare_status read_tens(const uint8_t *buf, const sec *tens, const sec *data, pare_graph *g)
{
    pare_rbuf r;
    pare_rbuf_init(&r, buf + tens->off, (size_t)tens->size);
    uint32_t count = pare_rbuf_u32(&r);
    if (r.bad)
        return sec_fail("TENS", "the tensor count is cut short");
    if (!count_fits(count, pare_rbuf_left(&r), MIN_TENSOR_RECORD))
        return sec_fail("TENS", "says it holds %lu tensors, more than its %llu bytes can",
                        (unsigned long)count, ull(tens->size));
    g->params = calloc(count > 0 ? count : 1, sizeof *g->params);
    if (!g->params)
        return pare_fail(PARE_ENOMEM, "out of memory reading %lu tensors", (unsigned long)count);
    g->cap_params = count > 0 ? (int)count : 1;
    uint64_t packed = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len = pare_rbuf_u32(&r);
        if (r.bad || len > pare_rbuf_left(&r))
            return sec_fail("TENS", "the record of tensor %lu is cut short", (unsigned long)i);
        pare_rbuf rec;
        pare_rbuf_init(&rec, r.p + r.pos, len);
        r.pos += len;
        g->n_params = (int)i + 1;
        pare_status s = read_tensor(&rec, buf, data, g, i, &packed);
        if (s != PARE_OK)
            return s;
    }
    return PARE_OK;
}

/* ---- the whole file ------------------------------------------------------ */

static pare_status check_sections(const uint8_t *buf, const sec *secs, uint32_t n, int *where)
{
    for (int k = 0; k < S__BUILTIN; k++)
        where[k] = -1;
    for (uint32_t i = 0; i < n; i++) {
        const sec *x = &secs[i];
        uint32_t crc = pare_crc32(0, buf + x->off, (size_t)x->size);
        if (crc != x->crc)
            return pare_fail(PARE_EFORMAT,
                             "section %.4s is corrupted (its CRC-32 is %08lx, the section table "
                             "says %08lx)",
                             x->tag, (unsigned long)crc, (unsigned long)x->crc);
        if (x->known < 0) {
            if (x->flags & PARE_FILE_SEC_REQUIRED)
                return pare_fail(PARE_EFORMAT,
                                 "section %.4s is marked required, and this pare does not know "
                                 "it (a newer pare wrote the file)",
                                 x->tag);
            continue;
        }
        if (x->flags & ~PARE_FILE_SEC_KNOWN_FLAGS)
            return pare_fail(PARE_EFORMAT,
                             "section %.4s has flags %08lx, which this pare does not know", x->tag,
                             (unsigned long)x->flags);
        if (where[x->known] >= 0)
            return pare_fail(PARE_EFORMAT, "the file has two %.4s sections", x->tag);
        where[x->known] = (int)i;
    }
    for (int k = 0; k < S__BUILTIN; k++)
        if (where[k] < 0)
            return pare_fail(PARE_EFORMAT, "the file has no %s section", builtin_tags[k]);
    return PARE_OK;
}

static pare_status take_extra(const uint8_t *buf, const sec *secs, uint32_t n, pare_file_extra *x)
{
    int k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += secs[i].known < 0;
    if (k == 0)
        return PARE_OK;
    x->s = calloc((size_t)k, sizeof *x->s);
    if (!x->s)
        return pare_fail(PARE_ENOMEM, "out of memory reading extra sections");
    for (uint32_t i = 0; i < n; i++) {
        const sec *c = &secs[i];
        if (c->known >= 0)
            continue;
        pare_file_section *d = &x->s[x->n];
        /* Never NULL, even when empty, so callers can pass it on as it is. */
        d->data = malloc(c->size > 0 ? (size_t)c->size : 1);
        if (!d->data)
            return pare_fail(PARE_ENOMEM, "out of memory reading section %.4s", c->tag);
        x->n++;
        memcpy(d->tag, c->tag, 4);
        memcpy(d->data, buf + c->off, (size_t)c->size);
        d->size = (size_t)c->size;
    }
    return PARE_OK;
}

static pare_status decode(const uint8_t *buf, size_t len, pare_graph **out, pare_file_extra *extra)
{
    pare_status s = check_header(buf, len);
    if (s != PARE_OK)
        return s;
    sec *secs = NULL;
    uint32_t n = 0;
    pare_graph *g = NULL;
    pare_file_extra x = {0, NULL};
    int where[S__BUILTIN];
    if ((s = read_table(buf, len, &secs, &n)) || (s = check_layout(buf, len, secs, n)) ||
        (s = check_sections(buf, secs, n, where)))
        goto fail;
    g = pare_graph_new(NULL);
    if (!g) {
        s = PARE_ENOMEM;
        goto fail;
    }
    const sec *meta = &secs[where[S_META]], *grph = &secs[where[S_GRPH]];
    if ((s = read_meta(buf + meta->off, (size_t)meta->size, g)) ||
        (s = read_grph(buf + grph->off, (size_t)grph->size, g)) ||
        (s = read_tens(buf, &secs[where[S_TENS]], &secs[where[S_DATA]], g)))
        goto fail;
    s = pare_file_check_graph(g);
    if (s != PARE_OK) {
        if (s != PARE_ENOMEM)
            s = PARE_EFORMAT;
        goto fail;
    }
    if (extra && (s = take_extra(buf, secs, n, &x)))
        goto fail;
    free(secs);
    *out = g;
    if (extra)
        *extra = x;
    return PARE_OK;
fail:
    pare_file_extra_free(&x);
    pare_graph_free(g);
    free(secs);
    return s;
}

pare_status pare_file_decode(const uint8_t *buf, size_t len, const char *what, pare_graph **g,
                             pare_file_extra *extra)
{
    if (extra) {
        extra->n = 0;
        extra->s = NULL;
    }
    if (!g)
        return pare_fail(PARE_EINVAL, "pare_file_decode needs somewhere to put the graph");
    *g = NULL;
    if (!buf && len > 0)
        return pare_fail(PARE_EINVAL, "pare_file_decode was given %zu bytes at NULL", len);
    pare_status s = decode(len ? buf : (const uint8_t *)"", len, g, extra);
    if (s != PARE_OK)
        pare_error_prefix("%s", what ? what : "model");
    return s;
}
