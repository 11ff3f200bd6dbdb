/* The .pare writer: header, section table, META, GRPH, TENS, DATA and extra
 * sections (docs/FORMAT.md) in one buffer; the same graph always gives the same bytes. */
#include <math.h>
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
    size_t data, mask, nonzero, scale, zp, codebook;
    size_t mask_len, nonzero_len;
    uint32_t enc;    /* PARE_FILE_DATA_* */
    size_t stored;   /* values (float encodings) or codes (1.3) in the data array */
    size_t data_len; /* bytes of the data array */
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

/* ---- integer codes (format 1.3) ------------------------------------------ */

/* What it takes to turn a quantized tensor's values back into codes: the
 * values are the truth (graph.h), so a code is found for each value and kept
 * only when it rebuilds that value bit for bit. */
typedef struct coder {
    const pare_param *p;
    int bits, k;
    size_t d, units;   /* values per code (1 when affine) and codes in all */
    size_t inner;      /* per channel: element e is in channel e / inner % nch */
    size_t nch;
    uint16_t order[PARE_FILE_CODEBOOK_K_MAX]; /* codebook rows by their bytes, then index */
} coder;

static int row_cmp(const coder *c, int a, int b)
{
    const float *cb = c->p->q.codebook;
    int r = memcmp(cb + (size_t)a * c->d, cb + (size_t)b * c->d, c->d * sizeof(float));
    return r ? r : (a > b) - (a < b);
}

/* 0 when the tensor has no codes: float, or affine with more than 8 bits. */
static int coder_init(const pare_param *p, coder *c)
{
    const pare_qparams *q = &p->q;
    memset(c, 0, sizeof *c);
    c->p = p;
    c->bits = q->bits;
    c->d = 1;
    if (q->scheme == PARE_QSCHEME_CODEBOOK) {
        c->k = q->k;
        c->d = (size_t)q->d;
        /* Insertion sort: at most 256 rows, and no qsort context to pass. */
        for (int i = 0; i < c->k; i++) {
            int j = i;
            while (j > 0 && row_cmp(c, c->order[j - 1], i) > 0) {
                c->order[j] = c->order[j - 1];
                j--;
            }
            c->order[j] = (uint16_t)i;
        }
    } else if (q->scheme == PARE_QSCHEME_TENSOR || q->scheme == PARE_QSCHEME_CHANNEL) {
        if (q->bits < 1 || q->bits > PARE_FILE_CODE_BITS_MAX)
            return 0;
        c->nch = 1;
        c->inner = 1;
        if (q->scheme == PARE_QSCHEME_CHANNEL) {
            c->nch = (size_t)p->t->dims[q->axis];
            for (int a = q->axis + 1; a < p->t->ndim; a++)
                c->inner *= (size_t)p->t->dims[a];
        }
    } else {
        return 0;
    }
    c->units = p->t->n / c->d;
    return 1;
}

/* Whether run u holds an element the mask keeps (so it needs a code when
 * codes are packed by the mask). */
static int unit_kept(const coder *c, size_t u)
{
    const uint8_t *m = c->p->mask;
    if (!m)
        return 1;
    for (size_t j = 0; j < c->d; j++)
        if (m[u * c->d + j])
            return 1;
    return 0;
}

static int same_bits(float a, float b)
{
    return !memcmp(&a, &b, sizeof a);
}

/* The field of an affine element's code, when one rebuilds it exactly. The
 * nearest code comes first; its neighbours too, in case the quantizer's
 * division rounded the other way. */
static int affine_field(const coder *c, size_t e, uint32_t *field)
{
    const pare_qparams *q = &c->p->q;
    size_t ch = q->scheme == PARE_QSCHEME_CHANNEL ? e / c->inner % c->nch : 0;
    float s = q->scale[ch], v = c->p->t->data[e];
    int32_t z = q->zero_point[ch];
    double r = rint((double)v / (double)s);
    if (!(r >= -4294967296.0 && r <= 4294967296.0))
        return 0; /* NaN, infinities and codes far out of any range */
    int64_t lo = c->bits == 1 ? -1 : -((int64_t)1 << (c->bits - 1));
    int64_t hi = c->bits == 1 ? 1 : ((int64_t)1 << (c->bits - 1)) - 1;
    static const int try_[3] = {0, -1, 1};
    for (int t = 0; t < 3; t++) {
        int64_t code = (int64_t)r + z + try_[t];
        if (code < lo || code > hi || (c->bits == 1 && code == 0))
            continue;
        if (same_bits(pare_file_affine_value(s, z, (int32_t)code), v)) {
            *field = c->bits == 1 ? (uint32_t)(code > 0) : (uint32_t)(code - lo);
            return 1;
        }
    }
    return 0;
}

/* The lowest codebook row that rebuilds run u: equal bits where the mask keeps
 * (the rest is +0.0, checked apart). Whole runs are looked up among the sorted
 * rows; partly pruned ones are compared with each row in turn. */
static int codebook_field(const coder *c, size_t u, uint32_t *field)
{
    const float *v = c->p->t->data + u * c->d, *cb = c->p->q.codebook;
    const uint8_t *m = c->p->mask ? c->p->mask + u * c->d : NULL;
    int whole = 1;
    for (size_t j = 0; m && j < c->d; j++)
        whole &= m[j] != 0;
    if (whole) {
        int lo = 0, hi = c->k; /* first row >= v in (bytes, index) order */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (memcmp(cb + (size_t)c->order[mid] * c->d, v, c->d * sizeof(float)) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < c->k && !memcmp(cb + (size_t)c->order[lo] * c->d, v, c->d * sizeof(float))) {
            *field = c->order[lo];
            return 1;
        }
        return 0;
    }
    for (int r = 0; r < c->k; r++) {
        const float *row = cb + (size_t)r * c->d;
        int ok = 1;
        for (size_t j = 0; ok && j < c->d; j++)
            ok = !m[j] || same_bits(row[j], v[j]);
        if (ok) {
            *field = (uint32_t)r;
            return 1;
        }
    }
    return 0;
}

static int unit_field(const coder *c, size_t u, uint32_t *field)
{
    return c->p->q.scheme == PARE_QSCHEME_CODEBOOK ? codebook_field(c, u, field)
                                                   : affine_field(c, u, field);
}

/* Codes instead of floats when every stored value is rebuilt exactly from one
 * (and every pruned element is +0.0, as it comes back), and the codes take
 * fewer 64-byte blocks than the float encoding chosen already. A masked tensor
 * stores codes only for runs its mask keeps something of: never more bytes,
 * since the mask is stored anyway. */
static void choose_codes(const pare_param *p, place *q)
{
    coder c;
    if (!coder_init(p, &c))
        return;
    const float *v = p->t->data;
    if (p->mask)
        for (size_t e = 0; e < p->t->n; e++)
            if (!p->mask[e] && !is_plus_zero(v[e]))
                return;
    size_t coded = 0;
    for (size_t u = 0; u < c.units; u++) {
        uint32_t f;
        if (!unit_kept(&c, u))
            continue;
        if (!unit_field(&c, u, &f))
            return;
        coded++;
    }
    size_t bytes = (coded * (size_t)c.bits + 7) / 8;
    if (footprint(bytes) < footprint(q->data_len)) {
        q->enc = p->mask ? PARE_FILE_DATA_CODES_BY_MASK : PARE_FILE_DATA_CODES;
        q->stored = coded;
        q->data_len = bytes;
    }
}

/* ---- SmartExchange bases (format 1.4) ------------------------------------- */

/* The code of a nonzero basis coefficient c: (t << 1) | sign for
 * c = +-scale * 2^-t, t below 2^(bits - 1); 0 when c has none. */
static int basis_field(float c, float scale, int bits, uint32_t *field)
{
    int ec, es;
    if (!isfinite(c) || c == 0 || frexpf(fabsf(c), &ec) != 0.5f || frexpf(scale, &es) != 0.5f)
        return 0;
    long t = (long)es - ec;
    if (t < 0 || t >= (1L << (bits - 1)))
        return 0;
    uint32_t f = (uint32_t)t << 1 | (c < 0 ? 1u : 0u);
    if (!same_bits(pare_file_basis_coef(scale, f), c))
        return 0;
    *field = f;
    return 1;
}

/* A basis tensor (scheme 4) is stored as its coefficients' codes when it has
 * them, they all have codes, its values are exactly what they rebuild (+0.0
 * where pruned), and codes and their nonzero bitmap take fewer 64-byte blocks
 * than the float encoding chosen already. */
static void choose_basis(const pare_param *p, place *q)
{
    const pare_qparams *qp = &p->q;
    char why[160];
    if (!qp->coef || pare_file_qparams_problem(qp, p->t->ndim, p->t->dims, p->t->n, why, sizeof why))
        return;
    size_t n = p->t->n, d = (size_t)qp->d, nz = 0;
    for (size_t e = 0; e < n; e++) {
        uint32_t f;
        if (qp->coef[e] == 0)
            continue;
        if (!basis_field(qp->coef[e], qp->scale[0], qp->bits, &f))
            return;
        nz++;
    }
    for (size_t e = 0; e < n; e++) {
        float want = p->mask && !p->mask[e]
                         ? 0.0f
                         : pare_qparams_basis_value(qp->coef, qp->codebook, qp->d, e / d, (int)(e % d));
        if (!same_bits(want, p->t->data[e]))
            return;
    }
    size_t bytes = (nz * (size_t)qp->bits + 7) / 8;
    if (footprint(bytes) + footprint((n + 7) / 8) < footprint(q->data_len)) {
        q->enc = PARE_FILE_DATA_BASIS_CODES;
        q->stored = nz;
        q->data_len = bytes;
    }
}

/* Picks how a tensor's values are stored (FORMAT.md, "Data encodings"). Packing
 * is lossless by construction and is used only when it saves whole 64-byte
 * blocks: a packed array cannot be used in place from a mapped file, so a few
 * bytes are not worth that. A mask's bitmap is stored anyway, so packing by it
 * costs nothing more; a nonzero bitmap costs 1/32 of the dense array, and is
 * used only for tensors mostly zero (imported pruned models), not for every
 * tensor that happens to hold a few zeros. */
static void choose_floats(const pare_param *p, place *q)
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

static void choose_encoding(const pare_param *p, place *q)
{
    choose_floats(p, q);
    q->data_len = q->stored * sizeof(float);
    /* The nonzero bitmap is an array of its own: codes must beat both. */
    size_t floats = q->data_len;
    if (q->enc == PARE_FILE_DATA_BY_NONZERO)
        q->data_len += footprint((p->t->n + 7) / 8);
    if (p->q.scheme == PARE_QSCHEME_BASIS)
        choose_basis(p, q);
    else
        choose_codes(p, q);
    if (q->enc == PARE_FILE_DATA_BY_NONZERO)
        q->data_len = floats;
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
        if (!advance(&at, q->data_len))
            goto overflow;
        if (p->mask) {
            q->mask = at;
            q->mask_len = (p->t->n + 7) / 8;
            if (!advance(&at, q->mask_len))
                goto overflow;
        }
        if (q->enc == PARE_FILE_DATA_BY_NONZERO || q->enc == PARE_FILE_DATA_BASIS_CODES) {
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
        if (p->q.scheme == PARE_QSCHEME_CODEBOOK || p->q.scheme == PARE_QSCHEME_BASIS) {
            q->codebook = at;
            if (!advance(&at, (size_t)p->q.k * (size_t)p->q.d * sizeof(float)))
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
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].q.scheme == PARE_QSCHEME_BASIS)
            return PARE_FILE_MINOR_BASIS;
    for (int i = 0; i < g->n_params; i++)
        if (pl[i].enc >= PARE_FILE_DATA_CODES || g->params[i].q.scheme == PARE_QSCHEME_CODEBOOK)
            return PARE_FILE_MINOR_CODES;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == PARE_OP_FAKEQUANT)
            return PARE_FILE_MINOR_CODES;
    for (int i = 0; i < g->n_nodes; i++)
        if (uses_attrs_12(&g->nodes[i]))
            return PARE_FILE_MINOR_ATTRS;
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
        pare_wbuf_u64(b, (uint64_t)q->data_len);
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
         * which reads the same (no field means dense). A shared tensor has
         * them too, as its 1.3 codebook fields follow them (a basis, 1.4,
         * has the same fields: its d x d basis is the codebook). */
        int shared = p->q.scheme == PARE_QSCHEME_CODEBOOK || p->q.scheme == PARE_QSCHEME_BASIS;
        if (q->enc != PARE_FILE_DATA_DENSE || shared) {
            pare_wbuf_u32(b, q->enc);
            pare_wbuf_u64(b, q->nonzero_len ? base + q->nonzero : 0);
            pare_wbuf_u64(b, q->nonzero_len);
        }
        if (shared) {
            pare_wbuf_u32(b, (uint32_t)p->q.k);
            pare_wbuf_u32(b, (uint32_t)p->q.d);
            pare_wbuf_u64(b, base + q->codebook);
            pare_wbuf_u64(b, (uint64_t)p->q.k * (uint64_t)p->q.d * sizeof(float));
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

/* Code i of `bits` bits at bit i * bits, least significant bit first. */
static void put_code(uint8_t *dst, size_t i, int bits, uint32_t v)
{
    size_t at = i * (size_t)bits;
    for (int b = 0; b < bits; b++, at++)
        if ((v >> b) & 1u)
            dst[at >> 3] |= (uint8_t)(1u << (at & 7));
}

/* choose_codes has checked that every code exists. */
static void put_codes(uint8_t *d, const pare_param *p, uint32_t enc)
{
    coder c;
    coder_init(p, &c);
    size_t k = 0;
    for (size_t u = 0; u < c.units; u++) {
        uint32_t f = 0;
        if (enc == PARE_FILE_DATA_CODES_BY_MASK && !unit_kept(&c, u))
            continue;
        if (unit_kept(&c, u))
            unit_field(&c, u, &f);
        put_code(d, k++, c.bits, f);
    }
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
        } else if (q->enc == PARE_FILE_DATA_BASIS_CODES) {
            uint8_t *m = dst + q->nonzero;
            for (size_t e = 0; e < n; e++) {
                uint32_t f;
                if (p->q.coef[e] == 0)
                    continue;
                m[e >> 3] |= (uint8_t)(1u << (e & 7));
                basis_field(p->q.coef[e], p->q.scale[0], p->q.bits, &f);
                put_code(d, k++, p->q.bits, f);
            }
        } else if (q->enc >= PARE_FILE_DATA_CODES) {
            put_codes(d, p, q->enc);
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
        if (p->q.scheme == PARE_QSCHEME_CODEBOOK || p->q.scheme == PARE_QSCHEME_BASIS)
            put_f32s(dst + q->codebook, p->q.codebook, (size_t)p->q.k * (size_t)p->q.d);
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
