/* The .pare writer: header, section table, META, GRPH, TENS, DATA and extra
 * sections (docs/FORMAT.md) in one buffer; the same graph always gives the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/error.h"
#include "graph/op.h"
#include "io/format.h"
#include "io/io.h"

/* A new field in pare_attrs needs its place in GRPH (and a format version
 * decision, FORMAT.md "Versions") before it can be saved. */
_Static_assert(sizeof(pare_attrs) == (PARE_FILE_INT_ATTRS + PARE_FILE_ATTRS_12_INTS) * sizeof(int) +
                                         (PARE_FILE_FLOAT_ATTRS + PARE_FILE_ATTRS_12_FLOATS) *
                                             sizeof(float),
               "pare_attrs changed: store the new field in GRPH (io/file_write.c, file_read.c)");

#define N_BUILTIN 4
/* Keeps the section count far from int overflow. */
#define PARE_FILE_MAX_EXTRA (1 << 20)

/* Where one parameter's arrays go, as offsets from the start of DATA, and how
 * its values are stored. */
typedef struct place {
    size_t data, mask, nonzero, scale, zp;
    size_t mask_len, nonzero_len;
    uint32_t enc;  /* PARE_FILE_DATA_* */
    size_t stored; /* values in the data array */
} place;

/* *at += n, then rounded up to the alignment; 0 on overflow. */
static int advance(size_t *at, size_t n)
{
    if (*at > SIZE_MAX - PARE_FILE_ALIGN || n > SIZE_MAX - PARE_FILE_ALIGN - *at)
        return 0;
    *at += n;
    *at = (*at + PARE_FILE_ALIGN - 1) / PARE_FILE_ALIGN * PARE_FILE_ALIGN;
    return 1;
}

/* Bytes an array of n bytes takes in DATA, padding included. A tensor's byte
 * count is far below SIZE_MAX (pare_dims_count keeps it under SIZE_MAX / 8). */
static size_t footprint(size_t n)
{
    return (n + PARE_FILE_ALIGN - 1) / PARE_FILE_ALIGN * PARE_FILE_ALIGN;
}

/* Packing leaves out elements and brings them back as +0.0, so only an element
 * whose bits are those of +0.0 may be left out: -0.0 is a different float,
 * and == would call it zero. */
static int is_plus_zero(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u == 0;
}

/* Picks how a tensor's values are stored (FORMAT.md, "Data encodings"). Packing
 * is lossless by construction and is used only when it saves whole 64-byte
 * blocks: a packed array cannot be used in place from a mapped file, so a few
 * bytes are not worth that. A mask's bitmap is stored anyway, so packing by it
 * costs nothing more; a nonzero bitmap costs 1/32 of the dense array, and is
 * used only for tensors mostly zero (imported pruned models), not for every
 * tensor that happens to hold a few zeros. */
static void choose_encoding(const pare_param *p, place *q)
{
    const float *v = p->t->data;
    size_t n = p->t->n, dense = footprint(n * sizeof(float));
    q->enc = PARE_FILE_DATA_DENSE;
    q->stored = n;
    if (p->mask) {
        size_t kept = 0;
        for (size_t e = 0; e < n; e++) {
            if (p->mask[e])
                kept++;
            else if (!is_plus_zero(v[e]))
                return; /* a pruned weight with a value: only dense keeps it */
        }
        if (footprint(kept * sizeof(float)) < dense) {
            q->enc = PARE_FILE_DATA_BY_MASK;
            q->stored = kept;
        }
        return;
    }
    size_t nonzero = 0;
    for (size_t e = 0; e < n; e++)
        nonzero += !is_plus_zero(v[e]);
    if (2 * (n - nonzero) > n &&
        footprint((n + 7) / 8) + footprint(nonzero * sizeof(float)) < dense) {
        q->enc = PARE_FILE_DATA_BY_NONZERO;
        q->stored = nonzero;
    }
}

/* Places every array in DATA, each at a multiple of 64, and returns DATA's
 * size; *ok is 0 when the sizes overflow. */
static size_t place_arrays(const pare_graph *g, place *pl, int *ok)
{
    size_t at = 0;
    *ok = 1;
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        place *q = &pl[i];
        memset(q, 0, sizeof *q);
        choose_encoding(p, q);
        q->data = at;
        if (!advance(&at, q->stored * sizeof(float)))
            goto overflow;
        if (p->mask) {
            q->mask = at;
            q->mask_len = (p->t->n + 7) / 8;
            if (!advance(&at, q->mask_len))
                goto overflow;
        }
        if (q->enc == PARE_FILE_DATA_BY_NONZERO) {
            q->nonzero = at;
            q->nonzero_len = (p->t->n + 7) / 8;
            if (!advance(&at, q->nonzero_len))
                goto overflow;
        }
        if (p->q.n > 0) {
            q->scale = at;
            if (!advance(&at, (size_t)p->q.n * sizeof(float)))
                goto overflow;
            q->zp = at;
            if (!advance(&at, (size_t)p->q.n * sizeof(int32_t)))
                goto overflow;
        }
    }
    return at;
overflow:
    *ok = 0;
    return 0;
}

/* 1 when a layer needs the attribute fields 1.2 added: an op 1.2 added (whose
 * attributes, even all zero, mean something) or any of those fields set. */
static int uses_attrs_12(const pare_node *n)
{
    const pare_attrs *a = &n->a;
    if (n->op > PARE_OP_DROPOUT)
        return 1;
    int any = a->alpha != 0 || a->beta != 0 || a->axis || a->mode;
    for (int j = 0; j < 3; j++)
        any |= a->shape[j] | a->perm[j];
    return any;
}

/* The minor version a file needs: the lowest whose fields it uses, so a graph
 * that 1.0 could store is stored exactly as 1.0 stored it. */
static uint32_t minor_version(const pare_graph *g, const place *pl)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (uses_attrs_12(&g->nodes[i]))
            return PARE_FILE_MINOR;
    for (int i = 0; i < g->n_params; i++)
        if (pl[i].enc != PARE_FILE_DATA_DENSE || g->params[i].scheme)
            return PARE_FILE_MINOR_PACKED;
    return PARE_FILE_MINOR_BASE;
}

static void put_meta(pare_wbuf *b, const pare_graph *g)
{
    pare_wbuf_str(b, g->name);
    pare_wbuf_u32(b, (uint32_t)g->n_meta);
    for (int i = 0; i < g->n_meta; i++) {
        pare_wbuf_str(b, g->meta[i].key);
        pare_wbuf_str(b, g->meta[i].value);
    }
}

/* Records start with their length so a later minor version can append fields
 * that older readers skip. */
static size_t begin_record(pare_wbuf *b)
{
    size_t at = b->len;
    pare_wbuf_u32(b, 0);
    return at;
}

static void end_record(pare_wbuf *b, size_t at)
{
    pare_wbuf_set_u32(b, at, (uint32_t)(b->len - at - 4));
}

static void put_grph(pare_wbuf *b, const pare_graph *g)
{
    pare_wbuf_u32(b, (uint32_t)g->n_nodes);
    pare_wbuf_u32(b, (uint32_t)g->output);
    for (int i = 0; i < g->n_nodes; i++) {
        const pare_node *n = &g->nodes[i];
        const pare_attrs *a = &n->a;
        size_t rec = begin_record(b);
        pare_wbuf_str(b, pare_op_get(n->op)->name);
        pare_wbuf_str(b, n->name);
        pare_wbuf_i32(b, n->out.c);
        pare_wbuf_i32(b, n->out.h);
        pare_wbuf_i32(b, n->out.w);
        pare_wbuf_u32(b, (uint32_t)n->n_in);
        for (int j = 0; j < n->n_in; j++)
            pare_wbuf_u32(b, (uint32_t)n->in[j]);
        pare_wbuf_u32(b, (uint32_t)n->n_param);
        for (int j = 0; j < n->n_param; j++)
            pare_wbuf_u32(b, (uint32_t)n->param[j]);
        /* The order is the format's (FORMAT.md, GRPH), not the struct's. */
        const int ints[PARE_FILE_INT_ATTRS] = {
            a->out_channels, a->kernel[0],   a->kernel[1], a->stride[0], a->stride[1],
            a->dilation[0],  a->dilation[1], a->pad[0],    a->pad[1],    a->pad[2],
            a->pad[3],       a->groups,      a->bias,      a->ceil_mode, a->count_include_pad,
        };
        for (int j = 0; j < PARE_FILE_INT_ATTRS; j++)
            pare_wbuf_i32(b, ints[j]);
        pare_wbuf_f32(b, a->eps);
        pare_wbuf_f32(b, a->momentum);
        pare_wbuf_f32(b, a->p);
        if (uses_attrs_12(n)) {
            pare_wbuf_f32(b, a->alpha);
            pare_wbuf_f32(b, a->beta);
            const int ints12[PARE_FILE_ATTRS_12_INTS] = {
                a->axis,     a->mode,    a->shape[0], a->shape[1],
                a->shape[2], a->perm[0], a->perm[1],  a->perm[2],
            };
            for (int j = 0; j < PARE_FILE_ATTRS_12_INTS; j++)
                pare_wbuf_i32(b, ints12[j]);
        }
        end_record(b, rec);
    }
}

/* base: the file offset of DATA; arrays are stored by file offset so a reader
 * that maps the file can use them in place. Absent arrays have offset 0. */
static void put_tens(pare_wbuf *b, const pare_graph *g, const place *pl, uint64_t base)
{
    pare_wbuf_u32(b, (uint32_t)g->n_params);
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        const place *q = &pl[i];
        size_t rec = begin_record(b);
        pare_wbuf_str(b, p->name);
        pare_wbuf_str(b, pare_role_name(p->role));
        pare_wbuf_u32(b, (uint32_t)p->node);
        pare_wbuf_u8(b, p->trainable ? 1 : 0);
        pare_wbuf_u8(b, p->frozen ? 1 : 0);
        pare_wbuf_u8(b, PARE_FILE_DTYPE_F32);
        pare_wbuf_u8(b, (uint8_t)p->t->ndim);
        for (int d = 0; d < p->t->ndim; d++)
            pare_wbuf_u32(b, (uint32_t)p->t->dims[d]);
        pare_wbuf_u64(b, base + q->data);
        pare_wbuf_u64(b, (uint64_t)q->stored * sizeof(float));
        pare_wbuf_u32(b, p->mask ? PARE_FILE_MASK_BITMAP : PARE_FILE_MASK_NONE);
        pare_wbuf_u64(b, p->mask ? base + q->mask : 0);
        pare_wbuf_u64(b, p->mask ? q->mask_len : 0);
        pare_wbuf_i32(b, p->q.bits);
        pare_wbuf_i32(b, p->q.scheme);
        pare_wbuf_i32(b, p->q.axis);
        pare_wbuf_u32(b, (uint32_t)p->q.n);
        pare_wbuf_u64(b, p->q.n > 0 ? base + q->scale : 0);
        pare_wbuf_u64(b, p->q.n > 0 ? base + q->zp : 0);
        /* Per-tensor key/value facts: the sparsity scheme when there is one. */
        pare_wbuf_u32(b, p->scheme ? 1 : 0);
        if (p->scheme) {
            pare_wbuf_str(b, PARE_FILE_ATTR_SCHEME);
            pare_wbuf_str(b, p->scheme);
        }
        /* 1.1 fields, only for a packed tensor: a dense record ends as in 1.0,
         * which reads the same (no field means dense). */
        if (q->enc != PARE_FILE_DATA_DENSE) {
            pare_wbuf_u32(b, q->enc);
            pare_wbuf_u64(b, q->nonzero_len ? base + q->nonzero : 0);
            pare_wbuf_u64(b, q->nonzero_len);
        }
        end_record(b, rec);
    }
}

static void put_f32(uint8_t *dst, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    pare_put_le32(dst, u);
}

static void put_f32s(uint8_t *dst, const float *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, v, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        pare_put_le32(dst + 4 * i, u);
    }
#endif
}

/* DATA is written straight into the file buffer: it is most of the file, and
 * a second copy of a large model would double the peak memory. */
static void put_data(uint8_t *dst, const pare_graph *g, const place *pl)
{
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        const place *q = &pl[i];
        const float *v = p->t->data;
        size_t n = p->t->n, k = 0;
        uint8_t *d = dst + q->data;
        if (q->enc == PARE_FILE_DATA_DENSE) {
            put_f32s(d, v, n);
        } else if (q->enc == PARE_FILE_DATA_BY_MASK) {
            for (size_t e = 0; e < n; e++)
                if (p->mask[e])
                    put_f32(d + 4 * k++, v[e]);
        } else {
            uint8_t *m = dst + q->nonzero;
            for (size_t e = 0; e < n; e++)
                if (!is_plus_zero(v[e])) {
                    m[e >> 3] |= (uint8_t)(1u << (e & 7));
                    put_f32(d + 4 * k++, v[e]);
                }
        }
        if (p->mask) {
            uint8_t *m = dst + q->mask;
            for (size_t e = 0; e < p->t->n; e++)
                if (p->mask[e])
                    m[e >> 3] |= (uint8_t)(1u << (e & 7));
        }
        if (p->q.n > 0) {
            put_f32s(dst + q->scale, p->q.scale, (size_t)p->q.n);
            for (int e = 0; e < p->q.n; e++)
                pare_put_le32(dst + q->zp + 4 * (size_t)e, (uint32_t)p->q.zero_point[e]);
        }
    }
}

static int builtin_tag(const char *t)
{
    return !memcmp(t, "META", 4) || !memcmp(t, "GRPH", 4) || !memcmp(t, "TENS", 4) ||
           !memcmp(t, "DATA", 4);
}

static pare_status check_extra(const pare_file_section *x, int n)
{
    if (n < 0 || n > PARE_FILE_MAX_EXTRA || (n > 0 && !x))
        return pare_fail(PARE_EINVAL, "%d extra sections: 0 to %d with a list are allowed", n,
                         PARE_FILE_MAX_EXTRA);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++)
            if ((unsigned char)x[i].tag[k] < 0x20 || (unsigned char)x[i].tag[k] > 0x7e)
                return pare_fail(PARE_EINVAL,
                                 "extra section %d: a tag is 4 printable ASCII characters", i);
        if (builtin_tag(x[i].tag))
            return pare_fail(PARE_EINVAL, "extra section %d: the tag %.4s belongs to pare itself",
                             i, x[i].tag);
        if (x[i].size > 0 && !x[i].data)
            return pare_fail(PARE_EINVAL, "extra section %.4s has %zu bytes but no data", x[i].tag,
                             x[i].size);
    }
    return PARE_OK;
}

static void put_entry(uint8_t *e, const char *tag, uint32_t flags, size_t off, size_t size,
                      const uint8_t *file)
{
    memcpy(e + PARE_FE_TAG, tag, 4);
    pare_put_le32(e + PARE_FE_FLAGS, flags);
    pare_put_le64(e + PARE_FE_OFFSET, off);
    pare_put_le64(e + PARE_FE_SIZE, size);
    pare_put_le32(e + PARE_FE_CRC, pare_crc32(0, file + off, size));
}

pare_status pare_file_encode(const pare_graph *g, const pare_file_section *extra, int n_extra,
                             uint8_t **out, size_t *len)
{
    if (!out || !len)
        return pare_fail(PARE_EINVAL, "pare_file_encode needs somewhere to put the bytes");
    *out = NULL;
    *len = 0;
    if (!g)
        return pare_fail(PARE_EINVAL, "no graph to save");
    if (g->err != PARE_OK)
        return pare_fail(PARE_EINVAL, "graph '%s' cannot be saved: building it failed (%s)",
                         g->name ? g->name : "?", pare_status_name(g->err));
    pare_status s = pare_file_check_graph(g);
    if (s != PARE_OK) {
        pare_error_prefix("graph '%s' cannot be saved", g->name ? g->name : "?");
        return s == PARE_ENOMEM ? s : PARE_EINVAL;
    }
    s = check_extra(extra, n_extra);
    if (s != PARE_OK)
        return s;

    pare_wbuf meta = {0}, grph = {0}, tens = {0};
    uint8_t *file = NULL;
    place *pl = calloc((size_t)(g->n_params > 0 ? g->n_params : 1), sizeof *pl);
    if (!pl) {
        s = pare_fail(PARE_ENOMEM, "out of memory saving graph '%s'", g->name);
        goto fail;
    }
    int ok;
    size_t data_size = place_arrays(g, pl, &ok);
    if (!ok) {
        s = pare_fail(PARE_EINVAL, "graph '%s' is too large to save", g->name);
        goto fail;
    }
    put_meta(&meta, g);
    put_grph(&grph, g);
    /* TENS holds file offsets into DATA, which follows it; its size does not
     * depend on their values, so a first pass with base 0 gives the layout. */
    put_tens(&tens, g, pl, 0);
    if ((s = pare_wbuf_status(&meta)) || (s = pare_wbuf_status(&grph)) ||
        (s = pare_wbuf_status(&tens)))
        goto fail;

    int ns = N_BUILTIN + n_extra;
    size_t off[N_BUILTIN], at = PARE_FILE_HEADER_SIZE;
    ok = advance(&at, (size_t)ns * PARE_FILE_ENTRY_SIZE);
    off[0] = at;
    ok = ok && advance(&at, meta.len);
    off[1] = at;
    ok = ok && advance(&at, grph.len);
    off[2] = at;
    ok = ok && advance(&at, tens.len);
    off[3] = at;
    ok = ok && data_size <= SIZE_MAX - at;
    size_t end = ok ? at + data_size : 0;
    for (int i = 0; ok && i < n_extra; i++) {
        at = end;
        ok = advance(&at, 0) && extra[i].size <= SIZE_MAX - at;
        end = ok ? at + extra[i].size : 0;
    }
    if (!ok) {
        s = pare_fail(PARE_EINVAL, "graph '%s' is too large to save", g->name);
        goto fail;
    }
    tens.len = 0;
    put_tens(&tens, g, pl, off[3]);
    if ((s = pare_wbuf_status(&tens)))
        goto fail;

    /* calloc: every padding byte is zero, so equal graphs give equal files. */
    file = calloc(1, end);
    if (!file) {
        s = pare_fail(PARE_ENOMEM, "out of memory saving graph '%s' (%zu bytes)", g->name, end);
        goto fail;
    }
    memcpy(file + off[0], meta.p, meta.len);
    memcpy(file + off[1], grph.p, grph.len);
    memcpy(file + off[2], tens.p, tens.len);
    put_data(file + off[3], g, pl);

    uint8_t *table = file + PARE_FILE_HEADER_SIZE;
    put_entry(table, "META", PARE_FILE_SEC_REQUIRED, off[0], meta.len, file);
    put_entry(table + 32, "GRPH", PARE_FILE_SEC_REQUIRED, off[1], grph.len, file);
    put_entry(table + 64, "TENS", PARE_FILE_SEC_REQUIRED, off[2], tens.len, file);
    put_entry(table + 96, "DATA", PARE_FILE_SEC_REQUIRED, off[3], data_size, file);
    at = off[3] + data_size;
    for (int i = 0; i < n_extra; i++) {
        advance(&at, 0);
        if (extra[i].size > 0)
            memcpy(file + at, extra[i].data, extra[i].size);
        /* Not required: a reader that does not know the tag can still load the model. */
        put_entry(table + 32 * (size_t)(N_BUILTIN + i), extra[i].tag, 0, at, extra[i].size, file);
        at += extra[i].size;
    }

    memcpy(file + PARE_FH_MAGIC, PARE_FILE_MAGIC, PARE_FILE_MAGIC_LEN);
    pare_put_le32(file + PARE_FH_MAJOR, PARE_FILE_MAJOR);
    pare_put_le32(file + PARE_FH_MINOR, minor_version(g, pl));
    pare_put_le64(file + PARE_FH_FILE_SIZE, end);
    pare_put_le64(file + PARE_FH_TABLE_OFFSET, PARE_FILE_HEADER_SIZE);
    pare_put_le32(file + PARE_FH_SECTION_COUNT, (uint32_t)ns);
    pare_put_le32(file + PARE_FH_ENTRY_SIZE, PARE_FILE_ENTRY_SIZE);
    pare_put_le32(file + PARE_FH_TABLE_CRC,
                  pare_crc32(0, table, (size_t)ns * PARE_FILE_ENTRY_SIZE));
    pare_put_le32(file + PARE_FH_CRC, pare_crc32(0, file, PARE_FH_CRC));

    *out = file;
    *len = end;
    file = NULL;
    s = PARE_OK;
fail:
    free(file);
    free(pl);
    pare_wbuf_free(&meta);
    pare_wbuf_free(&grph);
    pare_wbuf_free(&tens);
    return s;
}
