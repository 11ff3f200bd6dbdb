/* The sparse-training paths' shared helpers (see sparse.h). */
#include "ops/sparse.h"

#include <math.h>
#include <string.h>

static _Thread_local int forced = -1;

void pare_sparse_force(int mode) { forced = mode < 0 ? -1 : mode != 0; }
int pare_sparse_forced(void) { return forced; }

long pare_sparse_cap(size_t n) { return (long)ceil(PARE_SPARSE_CAP * (double)n); }

long pare_sparse_limit(size_t n, double threshold)
{
    long cap = pare_sparse_cap(n);
    if (forced == 0)
        return -1;
    if (forced == 1)
        return cap;
    long lim = (long)ceil(threshold * (double)n) - 1;
    return lim < cap ? lim : cap;
}

void pare_sparse_zero_outside(float *dw, const uint8_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!m[i])
            dw[i] = 0.0f;
}

/* Tiles of 16 x 16: each one's rows and columns stay in L1. */
#define TB 16

void pare_sparse_transpose(int threads, long rows, long cols, const float *src, float *dst, int acc)
{
    long tiles = (cols + TB - 1) / TB;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && rows * cols > 65536)
    for (long tj = 0; tj < tiles; tj++) {
        long j0 = tj * TB, j1 = j0 + TB < cols ? j0 + TB : cols;
        for (long i0 = 0; i0 < rows; i0 += TB) {
            long i1 = i0 + TB < rows ? i0 + TB : rows;
            for (long j = j0; j < j1; j++) {
                float *d = dst + j * rows;
                if (acc)
                    for (long i = i0; i < i1; i++)
                        d[i] += src[i * cols + j];
                else
                    for (long i = i0; i < i1; i++)
                        d[i] = src[i * cols + j];
            }
        }
    }
}

long pare_sparse_count(const uint8_t *m, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++)
        k += m[i] != 0;
    return k;
}

void pare_sp_scatter(size_t n, const int32_t *idx, long nnz, float *dw, const float *part, size_t stride,
                     int parts)
{
    memset(dw, 0, sizeof(float) * n);
    for (long k = 0; k < nnz; k++) {
        float v = part[k];
        for (int t = 1; t < parts; t++)
            v += part[(size_t)t * stride + (size_t)k];
        dw[idx[k]] = v;
    }
}

/* ---- the list cache -------------------------------------------------------- */

#define CACHE_MAGIC 0x53505431 /* "SPT1" */

/* Header, then the weight mask's copy and the dw_mask's copy (bytes, each
 * rounded to 4), then the arrays, all int32 or float. */
typedef struct cache_hdr {
    int32_t magic, rows, cols, rows_b, cap;
    int64_t tag;
    int64_t nnz_w, nnz_d;   /* kept entries of the cached masks; -1: nothing cached */
} cache_hdr;

typedef struct cache_view {
    cache_hdr *h;
    uint8_t *wmask, *dmask;
    int32_t *fstart, *foff, *fidx;
    float *fval;
    int32_t *bstart, *boff, *bidx;
    float *bval;
    int32_t *dstart, *doff, *didx;
    size_t bytes;
} cache_view;

/* Byte offsets of the parts, for a layer. */
typedef struct cache_layout {
    size_t wmask, dmask, fstart, foff, fidx, fval, bstart, boff, bidx, bval, dstart, doff, didx, total;
} cache_layout;

static cache_layout layout_of(const pare_sp_layer *l)
{
    cache_layout c;
    size_t wn = (size_t)l->rows * (size_t)l->cols, cap = (size_t)pare_sparse_cap(wn);
    size_t mb = (wn + 63) / 64 * 64, at = (sizeof(cache_hdr) + 63) / 64 * 64;
#define PART(field, bytes)                                                                         \
    do {                                                                                           \
        c.field = at;                                                                              \
        at += ((size_t)(bytes) + 63) / 64 * 64;                                                    \
    } while (0)
    PART(wmask, mb);
    PART(dmask, mb);
    PART(fstart, 4 * ((size_t)l->rows + 1));
    PART(foff, 4 * cap);
    PART(fidx, 4 * cap);
    PART(fval, 4 * cap);
    PART(bstart, 4 * ((size_t)l->rows_b + 1));
    PART(boff, 4 * cap);
    PART(bidx, 4 * cap);
    PART(bval, 4 * cap);
    PART(dstart, 4 * ((size_t)l->rows + 1));
    PART(doff, 4 * cap);
    PART(didx, 4 * cap);
#undef PART
    c.total = at;
    return c;
}

static cache_view view_of(void *aux, const pare_sp_layer *l)
{
    cache_layout c = layout_of(l);
    uint8_t *p = aux;
    cache_view v;
    v.h = aux;
    v.wmask = p + c.wmask;
    v.dmask = p + c.dmask;
    v.fstart = (int32_t *)(void *)(p + c.fstart);
    v.foff = (int32_t *)(void *)(p + c.foff);
    v.fidx = (int32_t *)(void *)(p + c.fidx);
    v.fval = (float *)(void *)(p + c.fval);
    v.bstart = (int32_t *)(void *)(p + c.bstart);
    v.boff = (int32_t *)(void *)(p + c.boff);
    v.bidx = (int32_t *)(void *)(p + c.bidx);
    v.bval = (float *)(void *)(p + c.bval);
    v.dstart = (int32_t *)(void *)(p + c.dstart);
    v.doff = (int32_t *)(void *)(p + c.doff);
    v.didx = (int32_t *)(void *)(p + c.didx);
    v.bytes = c.total;
    return v;
}

size_t pare_sp_cache_bytes(const pare_sp_layer *l) { return layout_of(l).total; }

/* A header that belongs to another layer (or is uninitialised) resets the cache. */
static cache_view open_cache(void *aux, const pare_sp_layer *l)
{
    cache_view v = view_of(aux, l);
    long cap = pare_sparse_cap((size_t)l->rows * (size_t)l->cols);
    cache_hdr *h = v.h;
    if (h->magic != CACHE_MAGIC || h->rows != l->rows || h->cols != l->cols || h->rows_b != l->rows_b ||
        h->cap != cap || h->tag != l->tag) {
        h->magic = CACHE_MAGIC;
        h->rows = l->rows;
        h->cols = l->cols;
        h->rows_b = (int32_t)l->rows_b;
        h->cap = (int32_t)cap;
        h->tag = l->tag;
        h->nnz_w = h->nnz_d = -1;
    }
    return v;
}

/* Rows r of entries (r, j) kept by m, in j order: offsets and weight indices. */
static void build_rows(const pare_sp_layer *l, const uint8_t *m, int32_t *start, int32_t *off, int32_t *idx)
{
    int32_t k = 0;
    start[0] = 0;
    for (int r = 0; r < l->rows; r++) {
        const uint8_t *mr = m + (size_t)r * (size_t)l->cols;
        for (int j = 0; j < l->cols; j++)
            if (mr[j]) {
                off[k] = l->off(l->geo, r, j);
                if (idx)
                    idx[k] = (int32_t)((size_t)r * (size_t)l->cols + (size_t)j);
                k++;
            }
        start[r + 1] = k;
    }
}

/* The transposed rows: a counting pass, then a fill with start[] as cursors
 * (entries by r, then j, within each row), then start[] shifted back. */
static void build_cols(const pare_sp_layer *l, const uint8_t *m, int32_t *start, int32_t *off, int32_t *idx)
{
    memset(start, 0, sizeof(int32_t) * (size_t)(l->rows_b + 1));
    int32_t o;
    for (int r = 0; r < l->rows; r++)
        for (int j = 0; j < l->cols; j++)
            if (m[(size_t)r * (size_t)l->cols + (size_t)j])
                start[l->brow(l->geo, r, j, &o) + 1]++;
    for (long b = 0; b < l->rows_b; b++)
        start[b + 1] += start[b];
    for (int r = 0; r < l->rows; r++)
        for (int j = 0; j < l->cols; j++) {
            size_t at = (size_t)r * (size_t)l->cols + (size_t)j;
            if (!m[at])
                continue;
            long b = l->brow(l->geo, r, j, &o);
            int32_t k = start[b]++;
            off[k] = o;
            idx[k] = (int32_t)at;
        }
    for (long b = l->rows_b; b > 0; b--)
        start[b] = start[b - 1];
    start[0] = 0;
}

/* Brings the weight mask's lists up to date; the kept count. */
static long sync_weight_lists(cache_view *v, const pare_sp_layer *l, const uint8_t *m)
{
    size_t wn = (size_t)l->rows * (size_t)l->cols;
    if (v->h->nnz_w >= 0 && memcmp(v->wmask, m, wn) == 0)
        return (long)v->h->nnz_w;
    memcpy(v->wmask, m, wn);
    long nnz = pare_sparse_count(m, wn);
    if (nnz <= v->h->cap) {
        build_rows(l, m, v->fstart, v->foff, v->fidx);
        build_cols(l, m, v->bstart, v->boff, v->bidx);
    }
    v->h->nnz_w = nnz;
    return nnz;
}

/* The forward rows (transposed = 0) or the input-gradient rows (1), values from w. */
static long weight_rows(void *aux, const pare_sp_layer *l, const uint8_t *m, const float *w, long limit,
                        pare_sp_rows *out, int transposed)
{
    cache_view v = open_cache(aux, l);
    long nnz = sync_weight_lists(&v, l, m);
    if (nnz > v.h->cap || nnz > limit)
        return nnz;
    const int32_t *idx = transposed ? v.bidx : v.fidx;
    float *val = transposed ? v.bval : v.fval;
    for (long k = 0; k < nnz; k++)
        val[k] = w[idx[k]];
    *out = transposed ? (pare_sp_rows){(int)l->rows_b, v.bstart, v.boff, v.bval}
                      : (pare_sp_rows){l->rows, v.fstart, v.foff, v.fval};
    return nnz;
}

long pare_sp_fwd(void *aux, const pare_sp_layer *l, const uint8_t *m, const float *w, long limit,
                 pare_sp_rows *out)
{
    return weight_rows(aux, l, m, w, limit, out, 0);
}

long pare_sp_bwd(void *aux, const pare_sp_layer *l, const uint8_t *m, const float *w, long limit,
                 pare_sp_rows *out)
{
    return weight_rows(aux, l, m, w, limit, out, 1);
}

long pare_sp_dw(void *aux, const pare_sp_layer *l, const uint8_t *m, long limit, pare_sp_rows *out,
                const int32_t **idx)
{
    cache_view v = open_cache(aux, l);
    size_t wn = (size_t)l->rows * (size_t)l->cols;
    if (v.h->nnz_d < 0 || memcmp(v.dmask, m, wn) != 0) {
        memcpy(v.dmask, m, wn);
        v.h->nnz_d = pare_sparse_count(m, wn);
        if (v.h->nnz_d <= v.h->cap)
            build_rows(l, m, v.dstart, v.doff, v.didx);
    }
    if (v.h->nnz_d <= v.h->cap && v.h->nnz_d <= limit) {
        *out = (pare_sp_rows){l->rows, v.dstart, v.doff, NULL};
        *idx = v.didx;
    }
    return (long)v.h->nnz_d;
}
