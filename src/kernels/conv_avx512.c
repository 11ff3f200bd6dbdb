/* The conv family with AVX-512: register tiles of R filters x V chunks of 16
 * positions; each column costs V unaligned loads and R broadcasts for R*V
 * FMAs, so R = 4 (dense, block) runs at the FMA rate and R = 1 (sparse) at
 * one load per FMA. Positions are the outer loop, so a tile's input window
 * stays in L1 while every group's weights stream by. */
#include <immintrin.h>

#include "kernels/conv.h"

#define CH PARE_CONV_CHUNK
#define TILE_CHUNKS 6

/* The first k lanes (none for k <= 0, all for k >= 16). */
static inline __mmask16 first16(long k) { return k >= 16 ? (__mmask16)0xffff : k <= 0 ? 0 : (__mmask16)((1u << k) - 1); }

static inline __mmask16 chunk_mask(const pare_conv_io *io, long q)
{
    __mmask16 m = io->mask ? (__mmask16)io->mask[q / CH] : (__mmask16)0xffff;
    long left = io->n - q;
    if (left < CH)
        m &= first16(left);
    return m;
}

/* The fused activation: 0 none, 1 relu, 2 relu6. */
static inline __m512 activate(__m512 v, int act)
{
    if (act >= 1)
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (act == 2)
        v = _mm512_min_ps(v, _mm512_set1_ps(6.0f));
    return v;
}

static inline __m512 finish(const pare_conv_io *io, int o, long q, __m512 acc)
{
    if (io->res)
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(io->res + o * io->res_cs + q));
    return activate(acc, io->act);
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

/* The columns [c0, c1) of one row into its accumulators acc[0, V). */
#define PAIR_REST(V, acc, off, w, c0, c1)                                                         \
    for (int cr = (c0); cr < (c1); cr++) {                                                        \
        const float *p_ = in + (off)[cr];                                                         \
        __m512 w_ = _mm512_set1_ps((w)[cr]);                                                      \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[v] =                              \
            _mm512_fmadd_ps(w_, _mm512_loadu_ps(p_ + CH * v), acc[v]);                            \
    }
/* Two one-filter groups (CSR rows) side by side: each keeps its own V
 * accumulators and adds its columns in its own order (the same sums as one
 * group at a time), but the two independent streams of loads and FMAs give
 * the core twice the work to overlap; a lone filter's FMAs wait on each
 * other and on its split loads. */
#define PAIR(V)                                                                                   \
    static void pair_##V(const pare_conv_io *io, const pare_conv_group *g, const pare_conv_group *h, \
                         long q)                                                                  \
    {                                                                                             \
        __m512 a[V], b[V];                                                                        \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            a[v] = _mm512_set1_ps(g->bias ? g->bias[0] : 0.0f);                                   \
            b[v] = _mm512_set1_ps(h->bias ? h->bias[0] : 0.0f);                                   \
        }                                                                                         \
        const float *in = io->in + q;                                                             \
        const int32_t *ga = g->off, *ha = h->off;                                                 \
        const float *gw = g->w, *hw = h->w;                                                       \
        int both = g->ncols < h->ncols ? g->ncols : h->ncols, c = 0;                              \
        for (; c < both; c++) {                                                                   \
            const float *p = in + ga[c], *r = in + ha[c];                                         \
            __m512 wp = _mm512_set1_ps(gw[c]), wr = _mm512_set1_ps(hw[c]);                        \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                   \
            {                                                                                     \
                a[v] = _mm512_fmadd_ps(wp, _mm512_loadu_ps(p + CH * v), a[v]);                    \
                b[v] = _mm512_fmadd_ps(wr, _mm512_loadu_ps(r + CH * v), b[v]);                    \
            }                                                                                     \
        }                                                                                         \
        PAIR_REST(V, a, ga, gw, c, g->ncols);                                                     \
        PAIR_REST(V, b, ha, hw, c, h->ncols);                                                     \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            __mmask16 m = chunk_mask(io, q + CH * v);                                             \
            if (!m)                                                                               \
                continue;                                                                         \
            _mm512_mask_storeu_ps(io->out + g->o0 * io->out_cs + q + CH * v, m,                   \
                                  finish(io, g->o0, q + CH * v, a[v]));                           \
            _mm512_mask_storeu_ps(io->out + h->o0 * io->out_cs + q + CH * v, m,                   \
                                  finish(io, h->o0, q + CH * v, b[v]));                           \
        }                                                                                         \
    }

PAIR(1)
PAIR(2)
PAIR(3)
PAIR(4)
PAIR(5)
PAIR(6)

typedef void tile_fn(const pare_conv_io *, const pare_conv_group *, long, int);
typedef void pair_fn(const pare_conv_io *, const pare_conv_group *, const pare_conv_group *, long);
static pair_fn *const pairs[TILE_CHUNKS] = {pair_1, pair_2, pair_3, pair_4, pair_5, pair_6};

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
            if (g->rp == 1 && gi + 1 < g1 && L->groups[gi + 1].rp == 1) {
                pairs[v - 1](io, g, g + 1, q);
                gi++;
                continue;
            }
            int k = rp_index(g->rp);
            tiles[k][v - 1](io, g, q, 0);
            if (g->rp == 8 && g->r > 4)
                tiles[k][v - 1](io, g, q, 4);
        }
    }
}

/* ---- N:M ------------------------------------------------------------------ */

/* One filter over V chunks (V a constant, so the accumulators live in
 * registers): weights of a group taken two at a time into two accumulator
 * sets, for 2V independent FMA chains. */
#define NM_TILE(V)                                                                                \
    static void nm_tile_##V(const pare_conv_io *io, const pare_conv_layer *L, const pare_nm_filter *f, \
                            long q)                                                               \
    {                                                                                             \
        int N = L->nm_n, G = L->nm_ngroups;                                                       \
        long cs = L->nm_cs;                                                                       \
        const float *in = io->in + q;                                                             \
        __m512 a[V], b[V];                                                                        \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            a[v] = _mm512_set1_ps(f->bias);                                                       \
            b[v] = _mm512_setzero_ps();                                                           \
        }                                                                                         \
        const uint8_t *idx = f->idx;                                                              \
        const float *w = f->w;                                                                    \
        for (int g = 0; g < G; g++, idx += N, w += N) {                                           \
            const float *base = in + L->nm_base[g];                                               \
            int k = 0;                                                                            \
            for (; k + 1 < N; k += 2) {                                                           \
                const float *p0 = base + idx[k] * cs, *p1 = base + idx[k + 1] * cs;               \
                __m512 wa = _mm512_set1_ps(w[k]), wb = _mm512_set1_ps(w[k + 1]);                  \
                _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                               \
                {                                                                                 \
                    a[v] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(p0 + CH * v), a[v]);               \
                    b[v] = _mm512_fmadd_ps(wb, _mm512_loadu_ps(p1 + CH * v), b[v]);               \
                }                                                                                 \
            }                                                                                     \
            if (k < N) {                                                                          \
                const float *p0 = base + idx[k] * cs;                                             \
                __m512 wa = _mm512_set1_ps(w[k]);                                                 \
                _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) a[v] =                        \
                    _mm512_fmadd_ps(wa, _mm512_loadu_ps(p0 + CH * v), a[v]);                      \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            __mmask16 m = chunk_mask(io, q + CH * v);                                             \
            if (m)                                                                                \
                _mm512_mask_storeu_ps(io->out + f->o * io->out_cs + q + CH * v, m,                \
                                      finish(io, f->o, q + CH * v, _mm512_add_ps(a[v], b[v])));   \
        }                                                                                         \
    }

/* Kernels of one filter come sorted by pattern: each run of a pattern holds
 * its four tap offsets in registers, so a kernel costs one channel offset and
 * no per-weight index (PatDNN's FKW); taps alternate between two accumulator
 * sets for 2V independent FMA chains. */
#define PAT_TILE(V)                                                                               \
    static void pat_tile_##V(const pare_conv_io *io, const pare_conv_layer *L, const pare_pat_filter *f, \
                             long q)                                                              \
    {                                                                                             \
        const float *in = io->in + q;                                                             \
        __m512 a[V], b[V];                                                                        \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            a[v] = _mm512_set1_ps(f->bias);                                                       \
            b[v] = _mm512_setzero_ps();                                                           \
        }                                                                                         \
        int k = 0;                                                                                \
        while (k < f->nk) {                                                                       \
            int pt = f->pat[k], end = k + 1;                                                      \
            while (end < f->nk && f->pat[end] == pt)                                              \
                end++;                                                                            \
            const long t0 = L->pat_off[pt][0], t1 = L->pat_off[pt][1], t2 = L->pat_off[pt][2],    \
                       t3 = L->pat_off[pt][3];                                                    \
            for (; k < end; k++) {                                                                \
                const float *bs = in + f->coff[k];                                                \
                const float *w = f->w + 4 * k;                                                    \
                __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]);                      \
                __m512 w2 = _mm512_set1_ps(w[2]), w3 = _mm512_set1_ps(w[3]);                      \
                _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                               \
                {                                                                                 \
                    a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(bs + t0 + CH * v), a[v]);          \
                    b[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(bs + t1 + CH * v), b[v]);          \
                    a[v] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(bs + t2 + CH * v), a[v]);          \
                    b[v] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(bs + t3 + CH * v), b[v]);          \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                       \
        {                                                                                         \
            __mmask16 m = chunk_mask(io, q + CH * v);                                             \
            if (m)                                                                                \
                _mm512_mask_storeu_ps(io->out + f->o * io->out_cs + q + CH * v, m,                \
                                      finish(io, f->o, q + CH * v, _mm512_add_ps(a[v], b[v])));   \
        }                                                                                         \
    }

#define ONE_CHUNKS 6
NM_TILE(1)
NM_TILE(2)
NM_TILE(3)
NM_TILE(4)
NM_TILE(5)
NM_TILE(6)
PAT_TILE(1)
PAT_TILE(2)
PAT_TILE(3)
PAT_TILE(4)
PAT_TILE(5)
PAT_TILE(6)

typedef void nm_fn(const pare_conv_io *, const pare_conv_layer *, const pare_nm_filter *, long);
typedef void pat_fn(const pare_conv_io *, const pare_conv_layer *, const pare_pat_filter *, long);
static nm_fn *const nm_tiles[ONE_CHUNKS] = {nm_tile_1, nm_tile_2, nm_tile_3, nm_tile_4, nm_tile_5, nm_tile_6};
static pat_fn *const pat_tiles[ONE_CHUNKS] = {pat_tile_1, pat_tile_2, pat_tile_3, pat_tile_4, pat_tile_5, pat_tile_6};

void pare_f32_convnm_1x4__avx512(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                 long q0, long q1)
{
    for (long q = q0; q < q1; q += CH * ONE_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int V = chunks > ONE_CHUNKS ? ONE_CHUNKS : (int)chunks;
        for (int fi = f0; fi < f1; fi++)
            nm_tiles[V - 1](io, L, &L->nm[fi], q);
    }
}

void pare_f32_convpat_1x4__avx512(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1,
                                  long q0, long q1)
{
    for (long q = q0; q < q1; q += CH * ONE_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int V = chunks > ONE_CHUNKS ? ONE_CHUNKS : (int)chunks;
        for (int fi = f0; fi < f1; fi++)
            pat_tiles[V - 1](io, L, &L->pf[fi], q);
    }
}

/* ---- depthwise ------------------------------------------------------------ */

/* The masks of chunk v's loads for `lanes` stored outputs: stride 1 reads
 * the stored lanes; stride 2 the even elements [0, 2 * lanes - 1) of two
 * vectors. Nothing past the last stored output's window is read. */
static inline void dw_masks(int lanes, int S, __mmask16 *ma, __mmask16 *mb)
{
    lanes = lanes < CH ? lanes : CH;
    if (S == 1) {
        *ma = first16(lanes);
        *mb = 0;
        return;
    }
    int e = 2 * lanes - 1;
    *ma = first16(e);
    *mb = first16(e - CH);
}

/* The masks of the S * V + S vectors of an input row whose 3-tap windows
 * give n outputs at stride S: the elements those windows read, none past. */
static inline __attribute__((always_inline)) void dw3_masks(int n, const int V, const int S, __mmask16 *mx)
{
    _Pragma("GCC unroll 10") for (int k = 0; k < S * (V + 1); k++)
    {
        mx[k] = first16(S * (n - 1) + 3 - CH * k); /* elements from this vector on that windows read */
    }
}

/* The three taps' windows of V chunks of one input row from p (masks from
 * dw3_masks): stride 1, the vectors and two shifts of them (valignd); stride
 * 2, their even lanes, their odd lanes and the even lanes shifted by one. */
static inline __attribute__((always_inline)) void dw3_taps(const float *p, const __mmask16 *mx, const int V,
                                                           const int S, __m512 *x0, __m512 *x1, __m512 *x2)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 xs[10], t0[5], t1[4];
    _Pragma("GCC unroll 10") for (int k = 0; k < S * (V + 1); k++) xs[k] = _mm512_maskz_loadu_ps(mx[k], p + CH * k);
    _Pragma("GCC unroll 5") for (int v = 0; v <= V; v++)
    {
        t0[v] = S == 1 ? xs[v] : _mm512_permutex2var_ps(xs[2 * v], even, xs[2 * v + 1]);
        if (v < V)
            t1[v] = S == 1 ? xs[v] : _mm512_permutex2var_ps(xs[2 * v], odd, xs[2 * v + 1]);
    }
    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
    {
        __m512i a = _mm512_castps_si512(t0[v]), b = _mm512_castps_si512(t0[v + 1]);
        x0[v] = t0[v];
        x1[v] = S == 1 ? _mm512_castsi512_ps(_mm512_alignr_epi32(b, a, 1)) : t1[v];
        x2[v] = _mm512_castsi512_ps(S == 1 ? _mm512_alignr_epi32(b, a, 2) : _mm512_alignr_epi32(b, a, 1));
    }
}

/* Stores R rows x V chunks of accumulators (n columns from x), adding the
 * residual and applying the activation. */
static inline __attribute__((always_inline)) void dw_store(const pare_dw_io *io, __m512 (*acc)[4], float *out,
                                                           const float *res, int x, int n, const int R, const int V)
{
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    {
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
        {
            __mmask16 m = first16(n - CH * v);
            __m512 a = acc[r][v];
            if (res)
                a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, res + r * io->res_rs + x + CH * v));
            _mm512_mask_storeu_ps(out + r * io->out_rs + x + CH * v, m, activate(a, io->act));
        }
    }
}

/* R output rows x V chunks from column x (R, V and the stride S constants
 * after inlining), n columns stored: R * V independent accumulators hide the
 * FMA latency even on the narrow planes of late layers (one chunk a row). */
static inline __attribute__((always_inline)) void dw_tile(const pare_dw_io *io, const pare_conv_layer *L,
                                                          const float *top, const float *w, float bias,
                                                          float *out, const float *res, int x, int n,
                                                          const int R, const int V, const int S)
{
    const int kh = L->dw_kh, kw = L->dw_kw;
    const long step = (long)L->dw_sh * io->in_rs; /* input rows between output rows */
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    __mmask16 ma[4], mb[4];
    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) dw_masks(n - CH * v, S, &ma[v], &mb[v]);
    __m512 acc[8][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    {
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] = _mm512_set1_ps(bias);
    }
    const float *p0 = top + (long)x * S;
    if (kw == 3) {
        /* each input row's vectors loaded once a tile, the three taps made from
         * them: stride 1, the vectors and two shifts of them (valignd); stride
         * 2, their even lanes, their odd lanes and the even lanes shifted by
         * one. A third of the loads of one load a tap. */
        __mmask16 mx[10];
        dw3_masks(n, V, S, mx);
        for (int i = 0; i < kh; i++, p0 += io->in_rs) {
            const __m512 w0 = _mm512_set1_ps(w[i * 3]), w1 = _mm512_set1_ps(w[i * 3 + 1]),
                         w2 = _mm512_set1_ps(w[i * 3 + 2]);
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
            {
                __m512 x0[4], x1[4], x2[4];
                dw3_taps(p0 + r * step, mx, V, S, x0, x1, x2);
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
                {
                    acc[r][v] = _mm512_fmadd_ps(w0, x0[v], acc[r][v]);
                    acc[r][v] = _mm512_fmadd_ps(w1, x1[v], acc[r][v]);
                    acc[r][v] = _mm512_fmadd_ps(w2, x2[v], acc[r][v]);
                }
            }
        }
    } else
    for (int i = 0; i < kh; i++, p0 += io->in_rs)
        for (int j = 0; j < kw; j++) {
            __m512 wv = _mm512_set1_ps(w[i * kw + j]);
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
            {
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
                {
                    const float *p = p0 + r * step + j + (long)CH * v * S;
                    __m512 xv = _mm512_maskz_loadu_ps(ma[v], p);
                    if (S == 2)
                        xv = _mm512_permutex2var_ps(xv, even, _mm512_maskz_loadu_ps(mb[v], p + CH));
                    acc[r][v] = _mm512_fmadd_ps(wv, xv, acc[r][v]);
                }
            }
        }
    dw_store(io, acc, out, res, x, n, R, V);
}

/* Rows per tile for V chunks a row: about 8 accumulators. */
#define DW_ROWS(V) ((V) == 1 ? 8 : (V) == 2 ? 4 : (V) == 3 ? 3 : 2)

#define DW_CASE(R, V, S)                                                                          \
    case R:                                                                                       \
        dw_tile(io, L, top, w, bias, out, res, x, n, R, V, S);                                    \
        break;

#define DW_SWITCH(S)                                                                              \
    switch (V) {                                                                                  \
    case 1:                                                                                       \
        switch (R) {                                                                              \
            DW_CASE(1, 1, S) DW_CASE(2, 1, S) DW_CASE(3, 1, S) DW_CASE(4, 1, S) DW_CASE(5, 1, S)   \
            DW_CASE(6, 1, S) DW_CASE(7, 1, S) DW_CASE(8, 1, S)                                   \
        }                                                                                         \
        break;                                                                                    \
    case 2:                                                                                       \
        switch (R) { DW_CASE(1, 2, S) DW_CASE(2, 2, S) DW_CASE(3, 2, S) DW_CASE(4, 2, S) }          \
        break;                                                                                    \
    case 3:                                                                                       \
        switch (R) { DW_CASE(1, 3, S) DW_CASE(2, 3, S) DW_CASE(3, 3, S) }                          \
        break;                                                                                    \
    default:                                                                                      \
        switch (R) { DW_CASE(1, 4, S) DW_CASE(2, 4, S) }                                           \
    }

/* A tile of R (1..DW_ROWS(V)) rows of V chunks. */
static void dw_rows(const pare_dw_io *io, const pare_conv_layer *L, const float *top, const float *w, float bias,
                    float *out, const float *res, int x, int n, int R, int V)
{
    if (L->dw_sw == 1) {
        DW_SWITCH(1)
    } else {
        DW_SWITCH(2)
    }
}

/* ---- 3x3 depthwise, input rows streamed ----------------------------------- */

/* A 3x3 depthwise tile of R output rows x V chunks at stride S (both ways):
 * each of the (R - 1) * S + 3 input rows the tile reads is loaded once, its
 * three taps made from it (as in dw_tile), and added into every output row
 * of the tile that uses it (up to three), so the R x V accumulators stay in
 * registers and no row is loaded or shifted twice. */
static inline __attribute__((always_inline)) void dw3_tile(const pare_dw_io *io, const float *top, const float *w,
                                                           float bias, float *out, const float *res, int x, int n,
                                                           const int R, const int V, const int S)
{
    __mmask16 mx[10];
    dw3_masks(n, V, S, mx);
    __m512 wv[9], acc[8][4];
    _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(w[t]);
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    {
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] = _mm512_set1_ps(bias);
    }
    const float *p = top + (long)x * S;
    _Pragma("GCC unroll 17") for (int ii = 0; ii < (R - 1) * S + 3; ii++, p += io->in_rs)
    {
        __m512 x0[4], x1[4], x2[4];
        dw3_taps(p, mx, V, S, x0, x1, x2);
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)
        {
            _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
            {
                const int d = ii - i, r = d / S;
                if (d < 0 || d % S != 0 || r >= R)
                    continue;
                acc[r][v] = _mm512_fmadd_ps(wv[3 * i], x0[v], acc[r][v]);
                acc[r][v] = _mm512_fmadd_ps(wv[3 * i + 1], x1[v], acc[r][v]);
                acc[r][v] = _mm512_fmadd_ps(wv[3 * i + 2], x2[v], acc[r][v]);
            }
        }
    }
    dw_store(io, acc, out, res, x, n, R, V);
}

/* Two channels a vector for planes at most 8 wide whose 3-tap windows fit in
 * one vector ((wo - 1) * S + 3 <= 16): channel a in lanes 0-7, channel b in
 * lanes 8-15 (b == a for a last odd channel, whose upper half is not
 * stored). The taps come from one load of each channel's row by a two-source
 * permute; the weights wv are the two channels' blended. R output rows from
 * the input row at ta / tb. */
static inline __attribute__((always_inline)) void dw3_pair(const pare_dw_io *io, const float *ta, const float *tb,
                                                           const __m512 *wv, __m512 bv, float *oa, float *ob,
                                                           const float *ra, const float *rb, const int R, const int S)
{
    const int n = io->wo;
    /* tap j of lane l: element S * l + j of a (l < 8), S * (l - 8) + j of b */
    const __m512i i0 = S == 1 ? _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
                              : _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i idx[3] = {i0, _mm512_add_epi32(i0, _mm512_set1_epi32(1)), _mm512_add_epi32(i0, _mm512_set1_epi32(2))};
    const __mmask16 mi = first16(S * (n - 1) + 3), mo = first16(n);
    __m512 acc[8];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[r] = bv;
    _Pragma("GCC unroll 17") for (int ii = 0; ii < (R - 1) * S + 3; ii++)
    {
        __m512 a = _mm512_maskz_loadu_ps(mi, ta + ii * io->in_rs), b = _mm512_maskz_loadu_ps(mi, tb + ii * io->in_rs);
        __m512 x0 = _mm512_permutex2var_ps(a, idx[0], b), x1 = _mm512_permutex2var_ps(a, idx[1], b),
               x2 = _mm512_permutex2var_ps(a, idx[2], b);
        _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++)
        {
            const int d = ii - i, r = d / S;
            if (d < 0 || d % S != 0 || r >= R)
                continue;
            acc[r] = _mm512_fmadd_ps(wv[3 * i], x0, acc[r]);
            acc[r] = _mm512_fmadd_ps(wv[3 * i + 1], x1, acc[r]);
            acc[r] = _mm512_fmadd_ps(wv[3 * i + 2], x2, acc[r]);
        }
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
    {
        __m512 v = acc[r];
        if (ra) {
            __m512 lo = _mm512_maskz_loadu_ps(mo, ra + r * io->res_rs), hi = _mm512_maskz_loadu_ps(mo, rb + r * io->res_rs);
            v = _mm512_add_ps(v, _mm512_shuffle_f32x4(lo, hi, 0x44));
        }
        v = activate(v, io->act);
        _mm512_mask_storeu_ps(oa + r * io->out_rs, mo, v);
        if (ob)
            _mm512_mask_storeu_ps(ob + r * io->out_rs, mo, _mm512_shuffle_f32x4(v, v, 0x4e));
    }
}

/* Rows per 3x3 tile for V chunks a row: at most 16 accumulators. */
#define DW3_ROWS(V) ((V) == 1 ? 8 : (V) == 2 ? 6 : 4)

#define DW3_CASE(R, V, S)                                                                         \
    case R:                                                                                       \
        dw3_tile(io, top, w, bias, out, res, x, n, R, V, S);                                      \
        break;

#define DW3_SWITCH(S)                                                                             \
    switch (V) {                                                                                  \
    case 1:                                                                                       \
        switch (R) {                                                                              \
            DW3_CASE(1, 1, S) DW3_CASE(2, 1, S) DW3_CASE(3, 1, S) DW3_CASE(4, 1, S)                 \
            DW3_CASE(5, 1, S) DW3_CASE(6, 1, S) DW3_CASE(7, 1, S) DW3_CASE(8, 1, S)                 \
        }                                                                                         \
        break;                                                                                    \
    case 2:                                                                                       \
        switch (R) {                                                                              \
            DW3_CASE(1, 2, S) DW3_CASE(2, 2, S) DW3_CASE(3, 2, S) DW3_CASE(4, 2, S)                 \
            DW3_CASE(5, 2, S) DW3_CASE(6, 2, S)                                                   \
        }                                                                                         \
        break;                                                                                    \
    case 3:                                                                                       \
        switch (R) { DW3_CASE(1, 3, S) DW3_CASE(2, 3, S) DW3_CASE(3, 3, S) DW3_CASE(4, 3, S) }      \
        break;                                                                                    \
    default:                                                                                      \
        switch (R) { DW3_CASE(1, 4, S) DW3_CASE(2, 4, S) DW3_CASE(3, 4, S) DW3_CASE(4, 4, S) }      \
    }

static void dw3_rows(const pare_dw_io *io, const float *top, const float *w, float bias, float *out,
                     const float *res, int x, int n, int R, int V, int S)
{
    if (S == 1) {
        DW3_SWITCH(1)
    } else {
        DW3_SWITCH(2)
    }
}

#define DW3P_CASE(R, S)                                                                           \
    case R:                                                                                       \
        dw3_pair(io, ta, tb, wv, bv, oa, ob, ra, rb, R, S);                                       \
        break;

static void dw3_pair_rows(const pare_dw_io *io, const float *ta, const float *tb, const __m512 *wv, __m512 bv,
                          float *oa, float *ob, const float *ra, const float *rb, int R, int S)
{
    if (S == 1) {
        switch (R) {
            DW3P_CASE(1, 1) DW3P_CASE(2, 1) DW3P_CASE(3, 1) DW3P_CASE(4, 1)
            DW3P_CASE(5, 1) DW3P_CASE(6, 1) DW3P_CASE(7, 1) DW3P_CASE(8, 1)
        }
    } else {
        switch (R) {
            DW3P_CASE(1, 2) DW3P_CASE(2, 2) DW3P_CASE(3, 2) DW3P_CASE(4, 2)
            DW3P_CASE(5, 2) DW3P_CASE(6, 2) DW3P_CASE(7, 2) DW3P_CASE(8, 2)
        }
    }
}

/* 3x3 depthwise at equal strides 1 or 2: planes at most 8 wide two channels
 * a vector, wider ones channel by channel in row tiles of up to 64 columns. */
static void dw3(const pare_dw_io *io, const pare_conv_layer *L, int c0, int c1, int y0, int y1)
{
    const int S = L->dw_sh;
    const long in_top = -(long)L->dw_pt * io->in_rs - L->dw_pl;
    if (io->wo <= 8 && S * (io->wo - 1) + 3 <= CH) {
        for (int c = c0; c < c1; c += 2) {
            const int cb = c + 1 < c1 ? c + 1 : c;
            __m512 wv[9];
            for (int t = 0; t < 9; t++)
                wv[t] = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(L->dw_w[c * 9L + t]),
                                             _mm512_set1_ps(L->dw_w[cb * 9L + t]));
            __m512 bv = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(L->dw_b[c]), _mm512_set1_ps(L->dw_b[cb]));
            for (int y = y0; y < y1;) {
                int R = y1 - y < 8 ? y1 - y : 8;
                const long ti = in_top + (long)y * S * io->in_rs;
                float *oa = io->out + c * io->out_cs + y * io->out_rs;
                const float *ra = io->res ? io->res + c * io->res_cs + y * io->res_rs : NULL;
                dw3_pair_rows(io, io->in + c * io->in_cs + ti, io->in + cb * io->in_cs + ti, wv, bv, oa,
                              cb != c ? io->out + cb * io->out_cs + y * io->out_rs : NULL, ra,
                              ra ? io->res + cb * io->res_cs + y * io->res_rs : NULL, R, S);
                y += R;
            }
        }
        return;
    }
    const int V = (io->wo + CH - 1) / CH > 4 ? 4 : (io->wo + CH - 1) / CH, RM = DW3_ROWS(V);
    for (int c = c0; c < c1; c++) {
        const float *w = L->dw_w + (long)c * 9;
        float bias = L->dw_b[c];
        for (int y = y0; y < y1;) {
            int R = y1 - y < RM ? y1 - y : RM;
            const float *top = io->in + c * io->in_cs + in_top + (long)y * S * io->in_rs;
            float *out = io->out + c * io->out_cs + y * io->out_rs;
            const float *res = io->res ? io->res + c * io->res_cs + y * io->res_rs : NULL;
            for (int x = 0; x < io->wo; x += 4 * CH) {
                int n = io->wo - x > 4 * CH ? 4 * CH : io->wo - x;
                dw3_rows(io, top, w, bias, out, res, x, n, R, (n + CH - 1) / CH, S);
            }
            y += R;
        }
    }
}

/* Channel by channel; a channel's plane row tile by row tile (up to 64
 * columns, so wide rows take two passes whose input rows stay in L2). */
void pare_f32_convdw_1x4__avx512(const pare_dw_io *io, const pare_conv_layer *L, int c0, int c1, int y0, int y1)
{
    if (L->dw_kh == 3 && L->dw_kw == 3 && L->dw_sh == L->dw_sw && L->dw_sh <= 2) {
        dw3(io, L, c0, c1, y0, y1);
        return;
    }
    const int kk = L->dw_kh * L->dw_kw;
    for (int c = c0; c < c1; c++) {
        const float *w = L->dw_w + (long)c * kk;
        float bias = L->dw_b[c];
        for (int y = y0; y < y1;) {
            int V = (io->wo + CH - 1) / CH > 4 ? 4 : (io->wo + CH - 1) / CH, RM = DW_ROWS(V);
            int R = y1 - y < RM ? y1 - y : RM;
            const float *top = io->in + c * io->in_cs + (long)(y * L->dw_sh - L->dw_pt) * io->in_rs - L->dw_pl;
            float *out = io->out + c * io->out_cs + y * io->out_rs;
            const float *res = io->res ? io->res + c * io->res_cs + y * io->res_rs : NULL;
            for (int x = 0; x < io->wo; x += 4 * CH) {
                int n = io->wo - x > 4 * CH ? 4 * CH : io->wo - x;
                dw_rows(io, L, top, w, bias, out, res, x, n, R, (n + CH - 1) / CH);
            }
            y += R;
        }
    }
}

/* ---- filter lanes --------------------------------------------------------- */

/* A pass covers LN_KC columns (4 blocks' weights of a pass stay in L1) over a
 * block of LN_PB pixels, whose partial sums wait in sc between passes. */
#define LN_KC 144
#define LN_PB PARE_LANES_PIXELS
#define LN_F 4
#define LN_P 6

/* F filter blocks x P pixels (from pixel i of the block) over columns [k0, k1):
 * starts from the biases or the partial sums and ends in the partial sums
 * (ln_store takes them to the planes after the last pass). */
static inline __attribute__((always_inline)) void ln_tile(const pare_dw_io *io, const pare_conv_layer *L,
                                                          int b, int i, const long *ipos, int k0, int k1,
                                                          float *sc, const int F, const int P)
{
    __m512 acc[LN_F][LN_P];
    float *s = sc + (long)i * LN_F * PARE_LANES;
    if (k0 == 0) {
        for (int f = 0; f < F; f++) {
            __m512 bv = _mm512_loadu_ps(L->dn_b + (long)(b + f) * PARE_LANES);
            for (int p = 0; p < P; p++)
                acc[f][p] = bv;
        }
    } else {
        for (int p = 0; p < P; p++)
            for (int f = 0; f < F; f++)
                acc[f][p] = _mm512_load_ps(s + (p * LN_F + f) * PARE_LANES);
    }
    const float *in[LN_P];
    for (int p = 0; p < P; p++)
        in[p] = io->in + ipos[i + p];
    const long K = L->dn_k;
    const float *w = L->dn_w + ((long)b * K + k0) * PARE_LANES;
    const int32_t *off = L->dn_off;
    for (int k = k0; k < k1; k++, w += PARE_LANES) {
        __m512 wv[LN_F];
        for (int f = 0; f < F; f++)
            wv[f] = _mm512_loadu_ps(w + f * K * PARE_LANES);
        const long o = off[k];
        for (int p = 0; p < P; p++) {
            __m512 x = _mm512_set1_ps(in[p][o]);
            for (int f = 0; f < F; f++)
                acc[f][p] = _mm512_fmadd_ps(wv[f], x, acc[f][p]);
        }
    }
    for (int p = 0; p < P; p++)
        for (int f = 0; f < F; f++)
            _mm512_store_ps(s + (p * LN_F + f) * PARE_LANES, acc[f][p]);
}

/* r[0..15] (16 pixels' vectors of 16 filters) -> r[j] = filter j's 16 pixels:
 * 32-bit and 64-bit interleaves, then two rounds of 128-bit lane shuffles. */
static inline void transpose16(__m512 r[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 16; i += 2) {
        a[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        a[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int h = 0; h < 2; h++) {
            __m512d x = _mm512_castps_pd(a[i + h]), y = _mm512_castps_pd(a[i + h + 2]);
            b[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
            b[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
        }
    /* b[4q + m] holds, in 128-bit lane k, element 4k + m of rows 4q .. 4q + 3 */
    for (int m = 0; m < 4; m++) {
        __m512 c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x88), c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xdd);
        __m512 d0 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x88), d1 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xdd);
        r[m] = _mm512_shuffle_f32x4(c0, d0, 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(c0, d0, 0xdd);
        r[4 + m] = _mm512_shuffle_f32x4(c1, d1, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(c1, d1, 0xdd);
    }
}

/* The last pass's sums of F filter blocks over the np pixels from pixel pb
 * (sc: pixel-major, LN_F vectors of 16 filters a pixel) into the output
 * planes, with residual and activation: 16 pixels at a time transposed into
 * one vector per filter, stored as one masked store per output row they
 * cover (a store at the row position minus the segment's first lane, whose
 * lanes outside the segment are masked off). */
static void ln_store(const pare_dw_io *io, const pare_conv_layer *L, int b, int F, long pb, int np, const float *sc)
{
    for (int g = 0; g < np; g += 16) {
        int n = np - g < 16 ? np - g : 16;
        int ns = 0, l0[16], len[16];
        long ry[16], rx[16]; /* each segment's first pixel */
        for (int l = 0; l < n; ns++) {
            long px = pb + g + l, y = px / io->wo, x = px % io->wo;
            int k = io->wo - x < n - l ? (int)(io->wo - x) : n - l;
            l0[ns] = l;
            len[ns] = k;
            ry[ns] = y;
            rx[ns] = x;
            l += k;
        }
        for (int f = 0; f < F; f++) {
            int o0 = (b + f) * PARE_LANES, nf = L->dn_o - o0 < PARE_LANES ? L->dn_o - o0 : PARE_LANES;
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j < n ? _mm512_load_ps(sc + ((long)(g + j) * LN_F + f) * PARE_LANES) : _mm512_setzero_ps();
            transpose16(r);
            for (int j = 0; j < nf; j++) {
                float *out = io->out + (long)(o0 + j) * io->out_cs;
                const float *res = io->res ? io->res + (long)(o0 + j) * io->res_cs : NULL;
                for (int s = 0; s < ns; s++) {
                    __mmask16 m = (__mmask16)(((1u << len[s]) - 1) << l0[s]);
                    __m512 v = r[j];
                    if (res)
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + ry[s] * io->res_rs + rx[s] - l0[s]));
                    _mm512_mask_storeu_ps(out + ry[s] * io->out_rs + rx[s] - l0[s], m, activate(v, io->act));
                }
            }
        }
    }
}

#define LN_CASE(F, P)                                                                             \
    case (F - 1) * LN_P + P - 1:                                                                  \
        ln_tile(io, L, b, i, ipos, k0, k1, sc, F, P);                                             \
        break;

void pare_f32_convln_4x6__avx512(const pare_dw_io *io, const pare_conv_layer *L, int b0, int b1, long p0,
                                 long p1)
{
    float sc[LN_PB * LN_F * PARE_LANES] __attribute__((aligned(64)));
    long ipos[LN_PB]; /* ln_store finds the output rows itself */
    const int K = L->dn_k;
    for (long pb = p0; pb < p1; pb += LN_PB) {
        int np = p1 - pb < LN_PB ? (int)(p1 - pb) : LN_PB;
        pare_lanes_positions(io, pb, np, ipos, NULL, NULL);
        for (int b = b0; b < b1; b += LN_F) {
            int F = b1 - b < LN_F ? b1 - b : LN_F;
            for (int k0 = 0; k0 < K; k0 += LN_KC) {
                int k1 = K - k0 < LN_KC ? K : k0 + LN_KC;
                for (int i = 0; i < np; i += LN_P) {
                    int P = np - i < LN_P ? np - i : LN_P;
                    switch ((F - 1) * LN_P + P - 1) {
                        LN_CASE(1, 1) LN_CASE(1, 2) LN_CASE(1, 3) LN_CASE(1, 4) LN_CASE(1, 5) LN_CASE(1, 6)
                        LN_CASE(2, 1) LN_CASE(2, 2) LN_CASE(2, 3) LN_CASE(2, 4) LN_CASE(2, 5) LN_CASE(2, 6)
                        LN_CASE(3, 1) LN_CASE(3, 2) LN_CASE(3, 3) LN_CASE(3, 4) LN_CASE(3, 5) LN_CASE(3, 6)
                        LN_CASE(4, 1) LN_CASE(4, 2) LN_CASE(4, 3) LN_CASE(4, 4) LN_CASE(4, 5) LN_CASE(4, 6)
                    }
                }
            }
            ln_store(io, L, b, F, pb, np, sc);
        }
    }
}

/* ---- Winograd F(2x2, 3x3) ---------------------------------------------------- */

/* 16 tiles a vector: a patch row's 4 columns 2j + s are the even and odd lanes
 * of 32 floats from column 2j (s = 0, 1) and from column 2j + 2 (s = 2, 3);
 * columns past the plane's last (w + 1 from column -1) load as zero. */
void pare_f32_wino_in_1x1__avx512(const pare_wino_io *io, int c0, int c1, int i0, int i1)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int c = c0; c < c1; c++)
        for (int i = i0; i < i1; i++)
            for (int j0 = 0; j0 < io->tw; j0 += 16) {
                int n = io->tw - j0 < 16 ? io->tw - j0 : 16;
                long cols = io->w + 2 - 2L * j0; /* valid columns from column 2 j0 */
                __m512 d[4][4], t[4][4];
                for (int r = 0; r < 4; r++) {
                    if (2 * i + r > io->h + 1) {
                        for (int s = 0; s < 4; s++)
                            d[r][s] = _mm512_setzero_ps();
                        continue;
                    }
                    const float *p = io->in + c * io->in_cs + (long)(2 * i + r) * io->in_rs + 2L * j0;
                    __m512 a = _mm512_maskz_loadu_ps(first16(cols), p);
                    __m512 b = _mm512_maskz_loadu_ps(first16(cols - 16), p + 16);
                    __m512 a2 = _mm512_maskz_loadu_ps(first16(cols - 2), p + 2);
                    __m512 b2 = _mm512_maskz_loadu_ps(first16(cols - 18), p + 18);
                    d[r][0] = _mm512_permutex2var_ps(a, ev, b);
                    d[r][1] = _mm512_permutex2var_ps(a, od, b);
                    d[r][2] = _mm512_permutex2var_ps(a2, ev, b2);
                    d[r][3] = _mm512_permutex2var_ps(a2, od, b2);
                }
                for (int s = 0; s < 4; s++) {
                    t[0][s] = _mm512_sub_ps(d[0][s], d[2][s]);
                    t[1][s] = _mm512_add_ps(d[1][s], d[2][s]);
                    t[2][s] = _mm512_sub_ps(d[2][s], d[1][s]);
                    t[3][s] = _mm512_sub_ps(d[1][s], d[3][s]);
                }
                __mmask16 m = first16(n);
                float *v = io->v + c * io->ts + (i - i0) * io->tw + j0;
                for (int r = 0; r < 4; r++) {
                    _mm512_mask_storeu_ps(v + (4 * r + 0) * io->v_xs, m, _mm512_sub_ps(t[r][0], t[r][2]));
                    _mm512_mask_storeu_ps(v + (4 * r + 1) * io->v_xs, m, _mm512_add_ps(t[r][1], t[r][2]));
                    _mm512_mask_storeu_ps(v + (4 * r + 2) * io->v_xs, m, _mm512_sub_ps(t[r][2], t[r][1]));
                    _mm512_mask_storeu_ps(v + (4 * r + 3) * io->v_xs, m, _mm512_sub_ps(t[r][1], t[r][3]));
                }
            }
}

/* An output row's 32 columns from 16 tiles' two (interleaved), with bias,
 * residual and activation, stored where they exist. */
static inline void wino_row16(const pare_wino_io *io, int o, int y, int j0, __m512 y0, __m512 y1)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 b = _mm512_set1_ps(io->bias[o]);
    __m512 v[2] = {_mm512_add_ps(_mm512_permutex2var_ps(y0, lo, y1), b),
                   _mm512_add_ps(_mm512_permutex2var_ps(y0, hi, y1), b)};
    long x0 = 2L * j0, left = io->w - x0;
    float *out = io->out + o * io->out_cs + (long)y * io->out_rs + x0;
    const float *res = io->res ? io->res + o * io->res_cs + (long)y * io->res_rs + x0 : NULL;
    for (int h = 0; h < 2; h++) {
        __mmask16 m = first16(left - 16 * h);
        if (!m)
            break;
        if (res)
            v[h] = _mm512_add_ps(v[h], _mm512_maskz_loadu_ps(m, res + 16 * h));
        _mm512_mask_storeu_ps(out + 16 * h, m, activate(v[h], io->act));
    }
}

void pare_f32_wino_out_1x1__avx512(const pare_wino_io *io, int o0, int o1, int i0, int i1)
{
    for (int o = o0; o < o1; o++)
        for (int i = i0; i < i1; i++)
            for (int j0 = 0; j0 < io->tw; j0 += 16) {
                __mmask16 mk = first16(io->tw - j0);
                const float *mp = io->m + o * io->ts + (i - i0) * io->tw + j0;
                __m512 m[16], a[2][4];
                for (int x = 0; x < 16; x++)
                    m[x] = _mm512_maskz_loadu_ps(mk, mp + x * io->m_xs);
                for (int s = 0; s < 4; s++) {
                    a[0][s] = _mm512_add_ps(_mm512_add_ps(m[s], m[4 + s]), m[8 + s]);
                    a[1][s] = _mm512_sub_ps(_mm512_sub_ps(m[4 + s], m[8 + s]), m[12 + s]);
                }
                for (int r = 0; r < 2 && 2 * i + r < io->h; r++)
                    wino_row16(io, o, 2 * i + r, j0, _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), a[r][2]),
                               _mm512_sub_ps(_mm512_sub_ps(a[r][1], a[r][2]), a[r][3]));
            }
}
