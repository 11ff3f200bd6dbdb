/* The int8 conv kernel family of the engine (docs/ENGINE.md, "int8").
 * Activations are u8 codes in a channel-quad layout ("C4"): per group of 4
 * channels one plane of dwords, byte b of a position's dword the code of
 * channel 4k + b. A conv is a sum over columns as in kernels/conv.h, a column
 * now one (channel quad, tap) pair: one dword of 4 codes per position, dotted
 * with one dword of 4 int8 weights per filter (vpdpbusd: u8 x s8, 4 products
 * summed into an int32 lane, 16 positions a vector):
 *   acc[o][q] = bias[o] + sum_col sum_b in[q + off[col]].byte[b] * w[o][col].byte[b]
 * The int32 accumulator is requantized in the same pass (all float steps
 * exact IEEE operations in a fixed order, so every ISA gives the same bits):
 *   f = fma((float)acc, scale[o], shift[o])
 *   u8 output:    f = fma(res, res_scale, f) (with a residual); f = clamp(f, lo, hi);
 *                 code = rint(f) + zp   (lo, hi: the code bounds minus zp, as floats)
 *   float output: f = f + res; relu/relu6 as max(f, 0), min(f, 6)
 * A column's weight dword is zero in the bytes a filter does not use (other
 * conv groups, pruned channels), so dense, depthwise, grouped, block, CSR and
 * N:M layers all run on one tile: they differ in their packing only. */
#ifndef PARE_KERNELS_QCONV_H
#define PARE_KERNELS_QCONV_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define PARE_QCONV_CHUNK 16 /* positions per mask entry (as PARE_CONV_CHUNK) */
#define PARE_QCONV_MAX_R 8

/* R filters (rp = R rounded up to 1, 2, 4 or 8) over one column list. The
 * filters of a group lie in one channel quad (rp <= 4) or two (rp = 8):
 * o0 is a multiple of min(rp, 4). */
typedef struct pare_qconv_group {
    int o0, r, rp;
    int ncols;
    const int32_t *off;     /* ncols input offsets, in dwords */
    const int8_t *w;        /* ncols x rp x 4: w[(col * rp + j) * 4 + b], zero for j >= r */
    const int32_t *bias;    /* rp initial accumulators */
} pare_qconv_group;

/* A layer's columns are either (quad, tap) dwords of the input itself, or
 * "gathered": per tile of PARE_QCONV_TILE positions the engine first builds
 * n_gather columns, byte b of column i at position p being the code
 * in.byte[4 (p + g_off[4i + b]) + g_sel[4i + b]] (4 arbitrary channel-tap
 * pairs: the 4 GEMM columns of a block-sparse layer's block, or the 4 taps
 * of a PatDNN pattern), and the groups' offsets index that tile
 * (column i at i * PARE_QCONV_TILE). */
#define PARE_QCONV_TILE 96

typedef struct pare_qconv_layer {
    int n_groups;
    pare_qconv_group *groups;
    const float *scale, *shift; /* per output channel */
    int n_gather;           /* gathered columns (0: the groups read the input) */
    const int32_t *g_off;   /* n_gather x 4 source offsets (dwords) */
    const uint8_t *g_sel;   /* n_gather x 4 source bytes (0-3) */
    void *mem;              /* owns every array above */
    size_t bytes;           /* packed weights, offsets and parameters */
} pare_qconv_layer;

/* The positions [0, n) of one call; every base pointer at position 0. */
typedef struct pare_qconv_io {
    const uint8_t *in;      /* C4 codes: dword q at in + 4 q */
    uint8_t *out8;          /* C4 codes out, or NULL for float out */
    float *outf;            /* float planes out (when out8 is NULL) */
    long out_cs;            /* dwords per output quad plane, or floats per plane */
    const float *res;       /* float residual planes, or NULL */
    long res_cs;
    float res_scale;        /* u8 out: the residual's factor (1 / output scale) */
    long n;
    const uint16_t *mask;   /* per PARE_QCONV_CHUNK positions, the lanes stored; NULL: all */
    int act;                /* float out: 0 none, 1 relu, 2 relu6 */
    int32_t zp;             /* u8 out: zero point */
    float lo, hi;           /* u8 out: clamp bounds, in codes minus zp */
} pare_qconv_io;

/* A linear layer on a u8 vector: 16 outputs a block, their 4 weights of each
 * input dword side by side (the vector runs over outputs, the input dword is
 * broadcast), out[o] = act(fma((float)acc, scale[o], shift[o])). */
typedef struct pare_qfc {
    int in4;                /* input dwords (inputs / 4 rounded up) */
    int out;
    const int8_t *w;        /* [ceil(out/16)][in4][16][4] */
    const int32_t *bias;    /* ceil(out/16) * 16 */
    const float *scale, *shift;
} pare_qfc;

/* Positions [q0, q1) (q0 a multiple of PARE_QCONV_CHUNK) of groups [g0, g1);
 * reads up to PARE_QCONV_CHUNK - 1 positions past q1. */
typedef void pare_s8_qconvg_fn(const pare_qconv_io *io, const pare_qconv_layer *L, int g0, int g1,
                               long q0, long q1);
/* Output blocks [b0, b1) of 16 (y written for outputs < F->out only). */
typedef void pare_s8_qgemv_fn(const pare_qfc *F, const uint8_t *x, float *y, int act, int b0, int b1);
/* One output row of a max pool on C4 codes, bytewise: out[x] = max over
 * i < kh, j < kw of in[i * in_rs + x * sw + j] (dwords), x in [0, n). Reads
 * nothing outside those dwords. */
typedef void pare_u8_maxrow_fn(uint32_t *out, const uint32_t *in, long in_rs, int kh, int kw, int sw,
                               long n);
/* One output row of a float max pool (the interior of the engine's pooling):
 * out[x] = the max over i < kh, j < kw of in[i * in_rs + x * sw + j], taken
 * in that order from in[x * sw] with m = v > m ? v : m (so a NaN is kept or
 * passed over exactly as the scalar loop does); reads only within the span
 * of the dwords the definition reads. */
typedef void pare_f32_maxrow_fn(float *out, const float *in, long in_rs, int kh, int kw, int sw, long n);
/* The fakequant op's forward on a float row, step for step (ops/quant.c):
 * q = rint(x / s), clamped to [-1 - zp, qmax + 1 - zp] by comparisons that a
 * NaN fails (so it propagates), q += zp, clamped to [0, qmax], y = (q - zp) * s. */
typedef void pare_f32_fq_fn(float *y, const float *x, long n, float s, float zp, float qmax);
/* The two stride-2 phase rows of one input row (space-to-depth, 4-byte
 * elements: u8 quads or floats), for x < n: even[x] = in[2x] while 2x < w,
 * odd[x] = in[2x + 1] while 2x + 1 < w, else fill; reads in[0, w) once. */
typedef void pare_u32_phase2_fn(uint32_t *even, uint32_t *odd, const uint32_t *in, long n, long w, uint32_t fill);
/* Gathered columns [0, n) of positions [0, len) (len a multiple of 16):
 * dst[i * ld + p] = the dword whose byte b is src[4 (p + off[4i + b]) + sel[4i + b]]. */
typedef void pare_u8_gather4_fn(uint32_t *dst, long ld, const uint8_t *src, const int32_t *off, const uint8_t *sel,
                                int n, long len);
/* Quantizes 4 float rows into one row of C4 dwords, as the fakequant op:
 * t = rint(x / s) + zp, clamped to [0, qmax] (max/min semantics: NaN -> 0);
 * a NULL row gives code zp in its byte. */
typedef void pare_u8_quant4_fn(uint32_t *out, const float *const in[4], long n, float s, float zp,
                               float qmax);

#define PARE_QKERNEL(isa, level, feature, kind, mr, nr) pare_##kind##_fn pare_##kind##_##mr##x##nr##__##isa;
#include "kernels/qconv.inc"
#undef PARE_QKERNEL

typedef struct pare_qconv_kernels {
    pare_s8_qconvg_fn *s8_qconvg;
    pare_s8_qgemv_fn *s8_qgemv;
    pare_u8_maxrow_fn *u8_maxrow;
    pare_u8_quant4_fn *u8_quant4;
    pare_u8_gather4_fn *u8_gather4;
    pare_f32_maxrow_fn *f32_maxrow;
    pare_u32_phase2_fn *u32_phase2;
    pare_f32_fq_fn *f32_fq;
    const char *name_conv, *name_gemv;
    int tile;               /* positions a conv call handles at once */
} pare_qconv_kernels;

/* The kernels for the active ISA level (the best VNNI form it has). */
const pare_qconv_kernels *pare_qconv(void);
const pare_qconv_kernels *pare_qconv_at(int isa_level);

/* Every compiled entry of qconv.inc, for the tests: present when this CPU runs it. */
typedef enum pare_qkind {
    PARE_QK_s8_qconvg,
    PARE_QK_s8_qgemv,
    PARE_QK_u8_maxrow,
    PARE_QK_u8_quant4,
    PARE_QK_u8_gather4,
    PARE_QK_f32_maxrow,
    PARE_QK_u32_phase2,
    PARE_QK_f32_fq
} pare_qkind;

typedef struct pare_qconv_entry {
    const char *name;
    pare_qkind kind;
    int level;
    int present;
    void (*fn)(void);
} pare_qconv_entry;

int pare_qconv_entries(const pare_qconv_entry **out);

#endif
