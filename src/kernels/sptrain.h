/* The sparse-training kernel family: the products of a layer whose weights are
 * sparse, as sums over positions (output pixels on a shifted grid, im2col
 * columns, or the samples of a batch) that every operand indexes alike:
 *   gather: out[r][q] (+)= sum over the entries k of row r of w[k] * in[off[k] + q]
 *           (the forward pass with a row per filter; the input gradient with a
 *           row per input channel or column, over the transposed entries);
 *   sddmm:  dw[k] += sum over q of a[r][q] * in[off[k] + q], for the entries k
 *           of row r (the weight gradient at kept positions only: a sampled
 *           dense-dense product);
 *   rows:   dst[r][j] = (acc ? dst[r][j] : 0) + src[r][j] + b, the strided
 *           copies between a layer's tensors and the padded or wide grids.
 * Rows are compressed lists the ops build from the weights and masks. */
#ifndef PARE_KERNELS_SPTRAIN_H
#define PARE_KERNELS_SPTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

typedef struct pare_sp_rows {
    int n_rows;
    const int32_t *start;    /* n_rows + 1: row r's entries are [start[r], start[r + 1]) */
    const int32_t *off;      /* per entry: where position 0 of its operand is in `in` */
    const float *w;          /* per entry: the weight (gather; sddmm ignores it) */
} pare_sp_rows;

/* Rows [r0, r1) over positions [q0, q1); row r of out starts at out + r * out_rs.
 * acc = 1 adds into out. Reads exactly in[off[k] + q] for q in [q0, q1), so
 * buffers need no slack. */
typedef void pare_f32_spgather_fn(const pare_sp_rows *L, int r0, int r1, const float *in,
                                  float *out, long out_rs, long q0, long q1, int acc);
/* Rows [r0, r1) over positions [q0, q1); row r of a starts at a + r * a_rs.
 * Adds each entry's dot product into dw[k]; reads exactly the positions given. */
typedef void pare_f32_sddmm_fn(const pare_sp_rows *L, int r0, int r1, const float *in,
                               const float *a, long a_rs, long q0, long q1, float *dw);

/* rows x cols floats from src (row stride src_rs) to dst (dst_rs), plus b;
 * acc = 1 adds into dst. */
typedef void pare_f32_rows_fn(long rows, long cols, const float *src, long src_rs, float *dst, long dst_rs,
                              float b, int acc);

#define PARE_KERNEL(isa, kind, mr, nr) pare_##kind##_fn pare_##kind##_##mr##x##nr##__##isa;
#include "kernels/sptrain.inc"
#undef PARE_KERNEL

typedef struct pare_sptrain_kernels {
    pare_f32_spgather_fn *f32_spgather;
    pare_f32_sddmm_fn *f32_sddmm;
    pare_f32_rows_fn *f32_rows;
} pare_sptrain_kernels;

/* The kernels for the active ISA level (pare_isa_active()). */
const pare_sptrain_kernels *pare_sptrain(void);
/* The kernels of exactly one level, or NULL when this build or CPU lacks it. */
const pare_sptrain_kernels *pare_sptrain_at(int isa_level);

#endif
