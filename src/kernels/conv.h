/* The conv kernel family of the engine. Every conv is a sum over columns:
 *   out[o][q] = bias[o] + sum_col w[o][col] * in[q + off[col]]
 * for output positions q of a plane, where a column is one (input channel,
 * kernel tap) pair and off[col] its offset in the input buffer (channel stride
 * times channel plus row stride times dy plus dx). Positions run over whole
 * planes when input and output share their strides ("wide" mode: the halo
 * columns are computed and masked out on store) or along one row. Sparsity
 * decides which columns each filter has, and how they are stored:
 *   groups  - R filters sharing one column list with dense R x ncols weights
 *             (dense layers: R = 4 over every column; block-sparse: the kept
 *             blocks' columns; unstructured: R = 1, CSR);
 *   N:M     - per filter, N indices (< M) per group of M channels at a tap;
 *   pattern - per filter, (channel, pattern) kernels sorted by pattern, the
 *             pattern's 4 tap offsets fixed for the layer (PatDNN's FKW).
 * Depthwise convs (one filter per channel) have a kernel of their own that
 * reads the input act directly, strided or not, row by row (pare_dw_io).
 * Dense convs have a second layout, filter lanes (pare_dw_io too): vectors of
 * PARE_LANES filters at one output pixel, each input value broadcast, so only
 * real pixels are computed (no halo columns: small planes waste nothing). */
#ifndef PARE_KERNELS_CONV_H
#define PARE_KERNELS_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define PARE_CONV_CHUNK 16   /* positions per mask entry */
#define PARE_CONV_MAX_R 8
#define PARE_LANES 16        /* filters per lane block (every ISA packs the same way) */
#define PARE_LANES_PIXELS 196 /* pixels a lanes kernel keeps partial sums for (divides the
                               * 7x7 to 112x112 planes of ResNet and VGG) */

typedef struct pare_conv_group {
    int o0, r;               /* first output channel, filters (1..PARE_CONV_MAX_R) */
    int rp;                  /* r rounded up to 1, 2, 4 or 8: the weights' row length */
    int ncols;
    const int32_t *off;      /* ncols input offsets */
    const float *w;          /* ncols x rp weights: w[col * rp + j], zero for j >= r */
    const float *bias;       /* rp biases */
} pare_conv_group;

typedef struct pare_nm_filter {
    int o;
    const uint8_t *idx;      /* ngroups x N indices (< M) */
    const float *w;          /* ngroups x N weights */
    float bias;
} pare_nm_filter;

typedef struct pare_pat_filter {
    int o, nk;
    const int32_t *coff;     /* nk channel offsets */
    const uint8_t *pat;      /* nk pattern ids, non-decreasing */
    const float *w;          /* nk x 4 weights, in the pattern's tap order */
    float bias;
} pare_pat_filter;

/* A packed conv layer (one of the three structures). */
typedef struct pare_conv_layer {
    int n_groups;
    pare_conv_group *groups;
    /* N:M */
    int nm_n, nm_m, nm_ngroups, n_nm;
    const int32_t *nm_base;  /* nm_ngroups offsets of each group's first channel at its tap */
    int32_t nm_cs;           /* channel stride: index k reads base + k * nm_cs */
    pare_nm_filter *nm;
    /* pattern */
    int n_pat, n_pf;
    int32_t pat_off[64][4];  /* per pattern, its 4 tap offsets */
    pare_pat_filter *pf;
    /* The dense lowerings, im2col + GEMM (engine/run.c, not a kernel of this
     * family) and filter lanes: dn_k = C x kh x kw columns, each column's
     * offset (conv.h's off, for pixels y * in_rs + x), dn_o filters, and the
     * weights and biases in the lowering's layout. GEMM: O x K weights as
     * folded, O biases. Lanes: dn_nb blocks of PARE_LANES filters, each with
     * K x PARE_LANES weights (w[(b * K + k) * PARE_LANES + j] is filter
     * b * PARE_LANES + j at column k), dn_nb * PARE_LANES biases, zero past
     * the last filter. */
    int dn_k, dn_o, dn_nb;
    const int32_t *dn_off;
    const float *dn_w, *dn_b;
    /* Winograd F(2x2, 3x3) (engine/run.c with the two transforms below; a
     * dense 3x3 stride-1 conv, padding 1, so C = dn_k / 9 channels): the 16
     * transformed weight matrices U = G g G^T, wn_u + (xi * dn_o + o) * C + c
     * for xi = 4 * row + column of the 4 x 4 transform; the dense lowering's
     * arrays above stay (the emitted C computes the layer from them) */
    const float *wn_u;
    void *wn_mem;
    /* depthwise: per channel kh x kw weights (row-major) and a bias */
    int dw_kh, dw_kw, dw_sh, dw_sw, dw_pt, dw_pl; /* dw_sw is 1 or 2 */
    const float *dw_w, *dw_b;
    void *mem;               /* owns every array above */
    size_t bytes;            /* packed weight and index bytes */
} pare_conv_layer;

/* The positions [0, n) of one call, with every base pointer at position 0. */
typedef struct pare_conv_io {
    const float *in;
    float *out;
    const float *res;        /* added before the activation, or NULL */
    long out_cs, res_cs;     /* channel strides of out and res */
    long n;
    const uint16_t *mask;    /* per PARE_CONV_CHUNK positions, the lanes stored; NULL: all
                              * (positions at or past n are never stored) */
    int act;                 /* 0 none, 1 relu, 2 relu6 */
} pare_conv_io;

/* A depthwise or filter-lanes call's buffers. Depthwise: output (y, x) of
 * channel c reads the input at (y * sh - pt + i, x * sw - pl + j), inside the
 * input's halo (which covers the padding: nothing is read outside [-pl, W + pr)
 * of a row for a stored x). Filter lanes: pixel p (y = p / wo, x = p % wo)
 * reads in + y * in_rs + x + off[k] (in_cs unused) and writes
 * out + o * out_cs + y * out_rs + x. */
typedef struct pare_dw_io {
    const float *in;         /* channel 0, row 0, column 0 of the input */
    float *out;              /* channel 0, row 0, column 0 of the output */
    const float *res;        /* the same for the residual, or NULL */
    long in_cs, out_cs, res_cs;
    long in_rs, out_rs, res_rs;
    int wo;                  /* output columns */
    int act;                 /* 0 none, 1 relu, 2 relu6 */
} pare_dw_io;

/* Computes positions [q0, q1) (q0 a multiple of PARE_CONV_CHUNK) of the groups
 * [g0, g1) of a layer. Reads up to PARE_CONV_CHUNK - 1 positions past q1
 * (buffers carry slack). */
typedef void pare_f32_convg_fn(const pare_conv_io *io, const pare_conv_layer *L, int g0, int g1,
                               long q0, long q1);
/* The same for N:M filters [f0, f1). */
typedef void pare_f32_convnm_fn(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                long q0, long q1);
/* The same for pattern filters [f0, f1). */
typedef void pare_f32_convpat_fn(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                 long q0, long q1);

/* Depthwise: output rows [y0, y1) of channels [c0, c1). */
typedef void pare_f32_convdw_fn(const pare_dw_io *io, const pare_conv_layer *L, int c0, int c1, int y0, int y1);
/* Filter lanes: the input, output and residual offsets of pixels [p, p + n)
 * (opos and rpos may be NULL: a kernel that stores rows needs neither). */
static inline void pare_lanes_positions(const pare_dw_io *io, long p, int n, long *ipos, long *opos, long *rpos)
{
    for (int i = 0; i < n; i++) {
        long y = (p + i) / io->wo, x = (p + i) % io->wo;
        ipos[i] = y * io->in_rs + x;
        if (opos)
            opos[i] = y * io->out_rs + x;
        if (rpos)
            rpos[i] = y * io->res_rs + x;
    }
}

/* Filter lanes: pixels [p0, p1) of the filter blocks [b0, b1). */
typedef void pare_f32_convln_fn(const pare_dw_io *io, const pare_conv_layer *L, int b0, int b1, long p0, long p1);

/* Winograd F(2x2, 3x3) (Lavin and Gray): output tile (i, j) is rows 2i, 2i + 1
 * and columns 2j, 2j + 1; its 4 x 4 input patch starts at row 2i - 1, column
 * 2j - 1. The input transform writes V = B^T d B of every patch, as 16
 * matrices of channels x tiles; the engine multiplies them by the weights' 16
 * (M = U V, one sgemm each); the output transform takes A^T M A of every
 * filter's tiles, adds bias and residual, applies the activation and stores
 * the rows and columns that exist. Input rows past h and columns past w (a
 * last tile of an odd plane) read as zero. */
typedef struct pare_wino_io {
    const float *in;         /* channel 0 at row -1, column -1 (the halo's corner) */
    long in_cs, in_rs;
    float *v;                /* V: v + xi * v_xs + c * ts + t */
    const float *m;          /* M: m + xi * m_xs + o * ts + t */
    long v_xs, m_xs, ts;
    int h, w, th, tw;        /* rows and columns (of input and output), tile rows and columns */
    float *out;              /* channel 0, row 0, column 0 */
    long out_cs, out_rs;
    const float *res;        /* the same for the residual, or NULL */
    long res_cs, res_rs;
    const float *bias;
    int act;
} pare_wino_io;

/* The input transform of channels [c0, c1) at tile rows [i0, i1) (a band:
 * V's tile t is (i - i0) * tw + j). */
typedef void pare_f32_wino_in_fn(const pare_wino_io *io, int c0, int c1, int i0, int i1);
/* The output transform of filters [o0, o1) at tile rows [i0, i1) (M's tiles
 * numbered as V's). */
typedef void pare_f32_wino_out_fn(const pare_wino_io *io, int o0, int o1, int i0, int i1);

#define PARE_KERNEL(isa, kind, mr, nr) pare_##kind##_fn pare_##kind##_##mr##x##nr##__##isa;
#include "kernels/conv.inc"
#undef PARE_KERNEL

typedef struct pare_conv_kernels {
    pare_f32_convg_fn *f32_convg;
    pare_f32_convnm_fn *f32_convnm;
    pare_f32_convpat_fn *f32_convpat;
    pare_f32_convdw_fn *f32_convdw;
    pare_f32_convln_fn *f32_convln;
    pare_f32_wino_in_fn *f32_wino_in;
    pare_f32_wino_out_fn *f32_wino_out;
    const char *name_g, *name_nm, *name_pat, *name_dw, *name_ln;
    int tile;                /* positions a group call handles at once (for splitting work) */
} pare_conv_kernels;

const pare_conv_kernels *pare_conv(void);
const pare_conv_kernels *pare_conv_at(int isa_level);

#endif
