/* The conv family with AVX-512: register tiles of R filters x V chunks of 16
 * positions; each column costs V unaligned loads and R broadcasts for R*V
 * FMAs, so R = 4 (dense, block) runs at the FMA rate and R = 1 (sparse) at
 * one load per FMA. Positions are the outer loop, so a tile's input window
 * stays in L1 while every group's weights stream by. */
#include <immintrin.h>

#include "kernels/conv.h"

#define CH PARE_CONV_CHUNK
#define TILE_CHUNKS 6

static inline __mmask16 chunk_mask(const pare_conv_io *io, long q)
{
    __mmask16 m = io->mask ? (__mmask16)io->mask[q / CH] : (__mmask16)0xffff;
    long left = io->n - q;
    if (left < CH)
        m &= (__mmask16)(left > 0 ? (1u << left) - 1 : 0);
    return m;
}

static inline __m512 finish(const pare_conv_io *io, int o, long q, __m512 acc)
{
    if (io->res)
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(io->res + o * io->res_cs + q));
    if (io->act >= 1)
        acc = _mm512_max_ps(acc, _mm512_setzero_ps());
    if (io->act == 2)
        acc = _mm512_min_ps(acc, _mm512_set1_ps(6.0f));
    return acc;
}

/* One tile: filters [0, R) of a group (weights w[col*RP + r]) over V chunks at q. */
#define TILE(R, V, RP)                                                                            \
    static void tile_##RP##_##R##_##V(const pare_conv_io *io, const pare_conv_group *g, long q,   \
                                      int roff)                                                   \
    {                                                                                             \
        __m512 acc[R][V];                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
        {                                                                                         \
            __m512 b = _mm512_set1_ps(g->bias ? g->bias[roff + r] : 0.0f);                        \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[r][v] = b;                    \
        }                                                                                         \
        const float *in = io->in + q;                                                             \
        const int32_t *off = g->off;                                                              \
        const float *w = g->w + roff;                                                             \
        for (int c = 0; c < g->ncols; c++, w += RP) {                                             \
            const float *p = in + off[c];                                                         \
            __m512 x[V];                                                                          \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) x[v] = _mm512_loadu_ps(p + CH * v); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            {                                                                                     \
                __m512 wr = _mm512_set1_ps(w[r]);                                                 \
                _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[r][v] =                   \
                    _mm512_fmadd_ps(wr, x[v], acc[r][v]);                                         \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            __mmask16 m = chunk_mask(io, q + CH * v);                                             \
            if (!m)                                                                               \
                continue;                                                                         \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            {                                                                                     \
                if (roff + r >= g->r)                                                             \
                    break;                                                                        \
                int o = g->o0 + roff + r;                                                         \
                _mm512_mask_storeu_ps(io->out + o * io->out_cs + q + CH * v, m,                   \
                                      finish(io, o, q + CH * v, acc[r][v]));                      \
            }                                                                                     \
        }                                                                                         \
    }

/* R = 1: up to 6 chunks; R = 2 and 4: up to 6; R = 8 runs as two halves of 4. */
TILE(1, 1, 1)
TILE(1, 2, 1)
TILE(1, 3, 1)
TILE(1, 4, 1)
TILE(1, 5, 1)
TILE(1, 6, 1)
TILE(2, 1, 2)
TILE(2, 2, 2)
TILE(2, 3, 2)
TILE(2, 4, 2)
TILE(2, 5, 2)
TILE(2, 6, 2)
TILE(4, 1, 4)
TILE(4, 2, 4)
TILE(4, 3, 4)
TILE(4, 4, 4)
TILE(4, 5, 4)
TILE(4, 6, 4)
TILE(4, 1, 8)
TILE(4, 2, 8)
TILE(4, 3, 8)
TILE(4, 4, 8)
TILE(4, 5, 8)
TILE(4, 6, 8)

typedef void tile_fn(const pare_conv_io *, const pare_conv_group *, long, int);

static tile_fn *const tiles[4][TILE_CHUNKS] = {
    {tile_1_1_1, tile_1_1_2, tile_1_1_3, tile_1_1_4, tile_1_1_5, tile_1_1_6},
    {tile_2_2_1, tile_2_2_2, tile_2_2_3, tile_2_2_4, tile_2_2_5, tile_2_2_6},
    {tile_4_4_1, tile_4_4_2, tile_4_4_3, tile_4_4_4, tile_4_4_5, tile_4_4_6},
    {tile_8_4_1, tile_8_4_2, tile_8_4_3, tile_8_4_4, tile_8_4_5, tile_8_4_6},
};

static int rp_index(int rp) { return rp == 1 ? 0 : rp == 2 ? 1 : rp == 4 ? 2 : 3; }

void pare_f32_convg_4x6__avx512(const pare_conv_io *io, const pare_conv_layer *L, int g0, int g1,
                                long q0, long q1)
{
    for (long q = q0; q < q1; q += CH * TILE_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int v = chunks > TILE_CHUNKS ? TILE_CHUNKS : (int)chunks;
        for (int gi = g0; gi < g1; gi++) {
            const pare_conv_group *g = &L->groups[gi];
            int k = rp_index(g->rp);
            tiles[k][v - 1](io, g, q, 0);
            if (g->rp == 8 && g->r > 4)
                tiles[k][v - 1](io, g, q, 4);
        }
    }
}

/* ---- N:M ------------------------------------------------------------------ */

#define NM_CHUNKS 4

void pare_f32_convnm_1x4__avx512(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                 long q0, long q1)
{
    int N = L->nm_n, G = L->nm_ngroups;
    long cs = L->nm_cs;
    for (long q = q0; q < q1; q += CH * NM_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int V = chunks > NM_CHUNKS ? NM_CHUNKS : (int)chunks;
        const float *in = io->in + q;
        for (int fi = f0; fi < f1; fi++) {
            const pare_nm_filter *f = &L->nm[fi];
            /* Two accumulator sets (even and odd weights of a filter): eight
             * independent FMA chains hide the FMA latency. */
            __m512 acc[2][NM_CHUNKS];
            for (int v = 0; v < NM_CHUNKS; v++) {
                acc[0][v] = _mm512_set1_ps(f->bias);
                acc[1][v] = _mm512_setzero_ps();
            }
            const uint8_t *idx = f->idx;
            const float *w = f->w;
            int par = 0;
            for (int g = 0; g < G; g++, idx += N, w += N) {
                const float *base = in + L->nm_base[g];
                for (int k = 0; k < N; k++, par ^= 1) {
                    const float *p = base + idx[k] * cs;
                    __m512 wk = _mm512_set1_ps(w[k]);
                    __m512 *a = acc[par];
                    if (V == NM_CHUNKS) {
                        a[0] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(p), a[0]);
                        a[1] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(p + CH), a[1]);
                        a[2] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(p + 2 * CH), a[2]);
                        a[3] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(p + 3 * CH), a[3]);
                    } else {
                        for (int v = 0; v < V; v++)
                            a[v] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(p + CH * v), a[v]);
                    }
                }
            }
            for (int v = 0; v < V; v++) {
                acc[0][v] = _mm512_add_ps(acc[0][v], acc[1][v]);
                __mmask16 m = chunk_mask(io, q + CH * v);
                if (m)
                    _mm512_mask_storeu_ps(io->out + f->o * io->out_cs + q + CH * v, m,
                                          finish(io, f->o, q + CH * v, acc[0][v]));
            }
        }
    }
}

/* ---- pattern -------------------------------------------------------------- */

/* Kernels of one filter come sorted by pattern: each run of a pattern holds its
 * four tap offsets in registers, so a kernel costs one channel offset, no
 * per-weight index. */
void pare_f32_convpat_1x4__avx512(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                  long q0, long q1)
{
    for (long q = q0; q < q1; q += CH * NM_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int V = chunks > NM_CHUNKS ? NM_CHUNKS : (int)chunks;
        const float *in = io->in + q;
        for (int fi = f0; fi < f1; fi++) {
            const pare_pat_filter *f = &L->pf[fi];
            __m512 acc[NM_CHUNKS], acc2[NM_CHUNKS];
            for (int v = 0; v < NM_CHUNKS; v++) {
                acc[v] = _mm512_set1_ps(f->bias);
                acc2[v] = _mm512_setzero_ps();
            }
            int k = 0;
            while (k < f->nk) {
                int p = f->pat[k], end = k;
                while (end < f->nk && f->pat[end] == p)
                    end++;
                const int32_t a = L->pat_off[p][0], b = L->pat_off[p][1], c = L->pat_off[p][2],
                              d = L->pat_off[p][3];
                if (V == NM_CHUNKS) {
                    for (; k < end; k++) {
                        const float *base = in + f->coff[k];
                        const float *w = f->w + 4 * k;
                        __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]);
                        __m512 w2 = _mm512_set1_ps(w[2]), w3 = _mm512_set1_ps(w[3]);
                        for (int v = 0; v < NM_CHUNKS; v++) {
                            const float *bv = base + CH * v;
                            acc[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(bv + a), acc[v]);
                            acc2[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(bv + b), acc2[v]);
                            acc[v] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(bv + c), acc[v]);
                            acc2[v] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(bv + d), acc2[v]);
                        }
                    }
                } else {
                    for (; k < end; k++) {
                        const float *base = in + f->coff[k];
                        const float *w = f->w + 4 * k;
                        for (int v = 0; v < V; v++) {
                            const float *bv = base + CH * v;
                            acc[v] = _mm512_fmadd_ps(_mm512_set1_ps(w[0]), _mm512_loadu_ps(bv + a), acc[v]);
                            acc2[v] = _mm512_fmadd_ps(_mm512_set1_ps(w[1]), _mm512_loadu_ps(bv + b), acc2[v]);
                            acc[v] = _mm512_fmadd_ps(_mm512_set1_ps(w[2]), _mm512_loadu_ps(bv + c), acc[v]);
                            acc2[v] = _mm512_fmadd_ps(_mm512_set1_ps(w[3]), _mm512_loadu_ps(bv + d), acc2[v]);
                        }
                    }
                }
            }
            for (int v = 0; v < V; v++) {
                __mmask16 m = chunk_mask(io, q + CH * v);
                if (m)
                    _mm512_mask_storeu_ps(io->out + f->o * io->out_cs + q + CH * v, m,
                                          finish(io, f->o, q + CH * v, _mm512_add_ps(acc[v], acc2[v])));
            }
        }
    }
}
