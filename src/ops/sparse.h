/* What the sparse-training paths of conv2d and linear share: when to take
 * them, and the dw_mask bookkeeping. A layer takes a sparse path only when its
 * weight has a mask (pruned or sparse-trained) and the product's operand is
 * sparse enough for the sparse kernel (kernels/sptrain.h) to beat the dense
 * lowering; the thresholds, measured per lowering, live beside each op. */
#ifndef PARE_OPS_SPARSE_H
#define PARE_OPS_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/sptrain.h"

/* Lists are sized at plan time for up to this fraction of a weight's entries
 * (any measured threshold is below it); denser layers run dense. */
#define PARE_SPARSE_CAP 0.5

/* Test and benchmark hook for the calling thread (as pare_isa_override):
 * -1 decides by density (the default), 0 never takes a sparse path, 1 takes
 * one whenever the mask and the planned room allow. */
void pare_sparse_force(int mode);
int pare_sparse_forced(void);

/* The most kept entries (of n) at which a product runs sparse, given the
 * lowering's threshold density (sparse below it) and the forced mode; -1:
 * never. */
long pare_sparse_limit(size_t n, double threshold);

/* The most entries the lists of a weight of n entries can hold. */
long pare_sparse_cap(size_t n);

/* A layer's rows x cols weight (conv: filters x (channel, tap); linear: out x
 * in) as the list cache sees it: where each kept entry (r, j) reads its
 * operand in the forward and weight-gradient products (off), and which row of
 * the input-gradient product it joins, reading where (brow). Offsets may
 * depend on `tag` (linear: the samples of the call); a new tag rebuilds. */
typedef struct pare_sp_layer {
    int rows, cols;
    long rows_b;
    long tag;
    const void *geo;
    int32_t (*off)(const void *geo, int r, int j);
    long (*brow)(const void *geo, int r, int j, int32_t *off);
} pare_sp_layer;

/* Bytes of the cache in a node's aux for such a layer. */
size_t pare_sp_cache_bytes(const pare_sp_layer *l);

/* The lists of a layer, cached in its aux across calls. The structure
 * (offsets, and each entry's index into the weight) is rebuilt only when the
 * mask's bytes change; values are gathered from the weights on every call.
 * The sparse paths read the weights only where the mask keeps them: pruned
 * weights are 0, as the optimizer and every pruner keep them.
 * Each returns the number of kept entries of m, and fills *out only when that
 * is at most limit (pare_sparse_limit). */
/* Forward rows (one per filter), values from w. */
long pare_sp_fwd(void *aux, const pare_sp_layer *l, const uint8_t *m, const float *w, long limit,
                 pare_sp_rows *out);
/* Input-gradient rows (the transpose), values from w. */
long pare_sp_bwd(void *aux, const pare_sp_layer *l, const uint8_t *m, const float *w, long limit,
                 pare_sp_rows *out);
/* Weight-gradient rows from dw_mask m (no values); *idx: each entry's index
 * into the weight. */
long pare_sp_dw(void *aux, const pare_sp_layer *l, const uint8_t *m, long limit, pare_sp_rows *out,
                const int32_t **idx);
/* dw (n values) = 0, then dw[idx[k]] = the sum of the threads' partials of
 * entry k (partial t at part + t * stride), in thread order. */
void pare_sp_scatter(size_t n, const int32_t *idx, long nnz, float *dw, const float *part, size_t stride,
                     int parts);

/* Kept entries of a mask. */
long pare_sparse_count(const uint8_t *m, size_t n);

/* dw[i] = 0 wherever m[i] == 0. */
void pare_sparse_zero_outside(float *dw, const uint8_t *m, size_t n);

/* dst (cols x rows) = src (rows x cols) transposed; acc = 1 adds into dst.
 * Splits the work over `threads`. */
void pare_sparse_transpose(int threads, long rows, long cols, const float *src, float *dst, int acc);

#endif
