/* The conv family with AVX2 + FMA: 8-lane vectors, a 16-position chunk is two
 * of them; tiles are sized for 16 registers (4 filters x 1 chunk, or 1-2
 * filters x 2 chunks). */
#include <immintrin.h>

#include "kernels/conv.h"

#define CH PARE_CONV_CHUNK

static inline unsigned chunk_mask(const pare_conv_io *io, long q)
{
    unsigned m = io->mask ? io->mask[q / CH] : 0xffffu;
    long left = io->n - q;
    if (left < CH)
        m &= left > 0 ? (1u << left) - 1 : 0;
    return m;
}

static inline __m256i lanes(unsigned m8)
{
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m8), bits), bits);
}

static inline __m256 finish(const pare_conv_io *io, int o, long q, __m256 acc)
{
    if (io->res)
        acc = _mm256_add_ps(acc, _mm256_loadu_ps(io->res + o * io->res_cs + q));
    if (io->act >= 1)
        acc = _mm256_max_ps(acc, _mm256_setzero_ps());
    if (io->act == 2)
        acc = _mm256_min_ps(acc, _mm256_set1_ps(6.0f));
    return acc;
}

/* Stores ymm vector v (8 positions from q + 8v) of filter o. */
static inline void store8(const pare_conv_io *io, int o, long q, int v, __m256 acc)
{
    unsigned m = (chunk_mask(io, q + CH * (v / 2)) >> (8 * (v % 2))) & 0xffu;
    if (!m)
        return;
    long at = q + 8 * v;
    __m256 y = finish(io, o, at, acc);
    if (m == 0xffu)
        _mm256_storeu_ps(io->out + o * io->out_cs + at, y);
    else
        _mm256_maskstore_ps(io->out + o * io->out_cs + at, lanes(m), y);
}

/* R filters (weights w[col*RP + roff + r]) over NV vectors of 8 positions at q. */
#define TILE(R, NV)                                                                               \
    static void tile_##R##_##NV(const pare_conv_io *io, const pare_conv_group *g, long q, int roff) \
    {                                                                                             \
        __m256 acc[R][NV];                                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
        {                                                                                         \
            __m256 b = _mm256_set1_ps(g->bias ? g->bias[roff + r] : 0.0f);                        \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] = b;                   \
        }                                                                                         \
        const float *in = io->in + q;                                                             \
        const float *w = g->w + roff;                                                             \
        int rp = g->rp;                                                                           \
        for (int c = 0; c < g->ncols; c++, w += rp) {                                             \
            const float *p = in + g->off[c];                                                      \
            __m256 x[NV];                                                                         \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) x[v] = _mm256_loadu_ps(p + 8 * v); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            {                                                                                     \
                __m256 wr = _mm256_broadcast_ss(w + r);                                           \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[r][v] =                  \
                    _mm256_fmadd_ps(wr, x[v], acc[r][v]);                                         \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
        {                                                                                         \
            if (roff + r >= g->r)                                                                 \
                break;                                                                            \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                                  \
                store8(io, g->o0 + roff + r, q, v, acc[r][v]);                                    \
        }                                                                                         \
    }

TILE(1, 2)
TILE(1, 4)
TILE(2, 2)
TILE(2, 4)
TILE(4, 2)

void pare_f32_convg_4x1__avx2(const pare_conv_io *io, const pare_conv_layer *L, int g0, int g1, long q0,
                              long q1)
{
    for (long q = q0; q < q1; q += 2 * CH) {
        int two = q1 - q > CH;
        for (int gi = g0; gi < g1; gi++) {
            const pare_conv_group *g = &L->groups[gi];
            if (g->rp == 1) {
                if (two)
                    tile_1_4(io, g, q, 0);
                else
                    tile_1_2(io, g, q, 0);
            } else if (g->rp == 2) {
                if (two)
                    tile_2_4(io, g, q, 0);
                else
                    tile_2_2(io, g, q, 0);
            } else {
                for (int roff = 0; roff < g->r; roff += 4) {
                    tile_4_2(io, g, q, roff);
                    if (two)
                        tile_4_2(io, g, q + CH, roff);
                }
            }
        }
    }
}

#define NV 4

void pare_f32_convnm_1x2__avx2(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1, long q0,
                               long q1)
{
    int N = L->nm_n, G = L->nm_ngroups;
    long cs = L->nm_cs;
    for (long q = q0; q < q1; q += 2 * CH) {
        int nv = q1 - q > CH ? NV : NV / 2;
        const float *in = io->in + q;
        for (int fi = f0; fi < f1; fi++) {
            const pare_nm_filter *f = &L->nm[fi];
            __m256 a[NV], b[NV];
            for (int v = 0; v < NV; v++) {
                a[v] = _mm256_set1_ps(f->bias);
                b[v] = _mm256_setzero_ps();
            }
            const uint8_t *idx = f->idx;
            const float *w = f->w;
            for (int g = 0; g < G; g++, idx += N, w += N) {
                const float *base = in + L->nm_base[g];
                int k = 0;
                for (; k + 1 < N; k += 2) {
                    const float *p0 = base + idx[k] * cs, *p1 = base + idx[k + 1] * cs;
                    __m256 w0 = _mm256_broadcast_ss(w + k), w1 = _mm256_broadcast_ss(w + k + 1);
                    for (int v = 0; v < nv; v++) {
                        a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p0 + 8 * v), a[v]);
                        b[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p1 + 8 * v), b[v]);
                    }
                }
                if (k < N) {
                    const float *p0 = base + idx[k] * cs;
                    __m256 w0 = _mm256_broadcast_ss(w + k);
                    for (int v = 0; v < nv; v++)
                        a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p0 + 8 * v), a[v]);
                }
            }
            for (int v = 0; v < nv; v++)
                store8(io, f->o, q, v, _mm256_add_ps(a[v], b[v]));
        }
    }
}

void pare_f32_convpat_1x2__avx2(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1, long q0,
                                long q1)
{
    for (long q = q0; q < q1; q += 2 * CH) {
        int nv = q1 - q > CH ? NV : NV / 2;
        const float *in = io->in + q;
        for (int fi = f0; fi < f1; fi++) {
            const pare_pat_filter *f = &L->pf[fi];
            __m256 a[NV], b[NV];
            for (int v = 0; v < NV; v++) {
                a[v] = _mm256_set1_ps(f->bias);
                b[v] = _mm256_setzero_ps();
            }
            int k = 0;
            while (k < f->nk) {
                int p = f->pat[k], end = k;
                while (end < f->nk && f->pat[end] == p)
                    end++;
                const int32_t o0 = L->pat_off[p][0], o1 = L->pat_off[p][1], o2 = L->pat_off[p][2],
                              o3 = L->pat_off[p][3];
                for (; k < end; k++) {
                    const float *base = in + f->coff[k];
                    const float *w = f->w + 4 * k;
                    __m256 w0 = _mm256_broadcast_ss(w), w1 = _mm256_broadcast_ss(w + 1);
                    __m256 w2 = _mm256_broadcast_ss(w + 2), w3 = _mm256_broadcast_ss(w + 3);
                    for (int v = 0; v < nv; v++) {
                        const float *bv = base + 8 * v;
                        a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(bv + o0), a[v]);
                        b[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(bv + o1), b[v]);
                        a[v] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(bv + o2), a[v]);
                        b[v] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(bv + o3), b[v]);
                    }
                }
            }
            for (int v = 0; v < nv; v++)
                store8(io, f->o, q, v, _mm256_add_ps(a[v], b[v]));
        }
    }
}

/* ---- depthwise ------------------------------------------------------------ */

/* The first k lanes (k may exceed 8). */
static inline __m256i first_lanes(int k)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), iota);
}

/* 8 input values of a vector at tap offset p (stride 2: the even elements of
 * two masked loads); lanes: outputs stored, so nothing past them is read. */
static inline __m256 dw_in8(const float *p, int sw, int lanes_n)
{
    if (sw == 1)
        return _mm256_maskload_ps(p, first_lanes(lanes_n));
    int e = 2 * lanes_n - 1;
    __m256 a = _mm256_maskload_ps(p, first_lanes(e)), b = _mm256_maskload_ps(p + 8, first_lanes(e - 8));
    __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline __attribute__((always_inline)) void dw_tile8(const pare_dw_io *io, const pare_conv_layer *L,
                                                           const float *top, const float *w, float bias,
                                                           float *out, const float *res, int x, int n,
                                                           const int V)
{
    const int kh = L->dw_kh, kw = L->dw_kw, sw = L->dw_sw;
    __m256 acc[4];
    for (int v = 0; v < V; v++)
        acc[v] = _mm256_set1_ps(bias);
    const float *p0 = top + (long)x * sw;
    for (int i = 0; i < kh; i++, p0 += io->in_rs)
        for (int j = 0; j < kw; j++) {
            __m256 wv = _mm256_set1_ps(w[i * kw + j]);
            for (int v = 0; v < V; v++)
                acc[v] = _mm256_fmadd_ps(wv, dw_in8(p0 + j + 8L * v * sw, sw, n - 8 * v), acc[v]);
        }
    for (int v = 0; v < V; v++) {
        __m256i m = first_lanes(n - 8 * v);
        __m256 a = acc[v];
        if (res)
            a = _mm256_add_ps(a, _mm256_maskload_ps(res + x + 8 * v, m));
        if (io->act >= 1)
            a = _mm256_max_ps(a, _mm256_setzero_ps());
        if (io->act == 2)
            a = _mm256_min_ps(a, _mm256_set1_ps(6.0f));
        _mm256_maskstore_ps(out + x + 8 * v, m, a);
    }
}

void pare_f32_convdw_1x4__avx2(const pare_dw_io *io, const pare_conv_layer *L, int c0, int c1, int y0, int y1)
{
    const int kk = L->dw_kh * L->dw_kw;
    for (int c = c0; c < c1; c++) {
        const float *w = L->dw_w + (long)c * kk;
        float bias = L->dw_b[c];
        for (int y = y0; y < y1; y++) {
            const float *top = io->in + c * io->in_cs + (long)(y * L->dw_sh - L->dw_pt) * io->in_rs - L->dw_pl;
            float *out = io->out + c * io->out_cs + y * io->out_rs;
            const float *res = io->res ? io->res + c * io->res_cs + y * io->res_rs : NULL;
            for (int x = 0; x < io->wo; x += 32) {
                int n = io->wo - x;
                if (n > 24)
                    dw_tile8(io, L, top, w, bias, out, res, x, n, 4);
                else if (n > 16)
                    dw_tile8(io, L, top, w, bias, out, res, x, n, 3);
                else if (n > 8)
                    dw_tile8(io, L, top, w, bias, out, res, x, n, 2);
                else
                    dw_tile8(io, L, top, w, bias, out, res, x, n, 1);
            }
        }
    }
}

/* ---- filter lanes --------------------------------------------------------- */

/* As the AVX-512 version (conv_avx512.c), with a block of 16 filters in two
 * vectors and no scatter: the last pass stores through a small tile. */
#define LN_KC 144
#define LN_PB PARE_LANES_PIXELS
#define LN_P 6

static inline __attribute__((always_inline)) void ln_tile8(const pare_dw_io *io, const pare_conv_layer *L,
                                                           int b, int i, const long *ipos, const long *opos,
                                                           const long *rpos, int k0, int k1, float *sc,
                                                           const int P)
{
    __m256 lo[LN_P], hi[LN_P];
    float *s = sc + (long)i * PARE_LANES;
    if (k0 == 0) {
        __m256 bl = _mm256_loadu_ps(L->dn_b + (long)b * PARE_LANES), bh = _mm256_loadu_ps(L->dn_b + (long)b * PARE_LANES + 8);
        for (int p = 0; p < P; p++) {
            lo[p] = bl;
            hi[p] = bh;
        }
    } else {
        for (int p = 0; p < P; p++) {
            lo[p] = _mm256_load_ps(s + p * PARE_LANES);
            hi[p] = _mm256_load_ps(s + p * PARE_LANES + 8);
        }
    }
    const float *in[LN_P];
    for (int p = 0; p < P; p++)
        in[p] = io->in + ipos[i + p];
    const float *w = L->dn_w + ((long)b * L->dn_k + k0) * PARE_LANES;
    const int32_t *off = L->dn_off;
    for (int k = k0; k < k1; k++, w += PARE_LANES) {
        __m256 wl = _mm256_loadu_ps(w), wh = _mm256_loadu_ps(w + 8);
        const long o = off[k];
        for (int p = 0; p < P; p++) {
            __m256 x = _mm256_broadcast_ss(in[p] + o);
            lo[p] = _mm256_fmadd_ps(wl, x, lo[p]);
            hi[p] = _mm256_fmadd_ps(wh, x, hi[p]);
        }
    }
    if (k1 < L->dn_k) {
        for (int p = 0; p < P; p++) {
            _mm256_store_ps(s + p * PARE_LANES, lo[p]);
            _mm256_store_ps(s + p * PARE_LANES + 8, hi[p]);
        }
        return;
    }
    int o0 = b * PARE_LANES, n = L->dn_o - o0 < PARE_LANES ? L->dn_o - o0 : PARE_LANES;
    for (int p = 0; p < P; p++) {
        float t[PARE_LANES];
        _mm256_storeu_ps(t, lo[p]);
        _mm256_storeu_ps(t + 8, hi[p]);
        float *out = io->out + o0 * io->out_cs + opos[i + p];
        const float *res = io->res ? io->res + o0 * io->res_cs + rpos[i + p] : NULL;
        for (int j = 0; j < n; j++) {
            float v = t[j] + (res ? res[j * io->res_cs] : 0.0f);
            if (io->act >= 1)
                v = v > 0.0f ? v : 0.0f;
            if (io->act == 2)
                v = v < 6.0f ? v : 6.0f;
            out[j * io->out_cs] = v;
        }
    }
}

void pare_f32_convln_2x6__avx2(const pare_dw_io *io, const pare_conv_layer *L, int b0, int b1, long p0, long p1)
{
    float sc[LN_PB * PARE_LANES] __attribute__((aligned(32)));
    long ipos[LN_PB], opos[LN_PB], rpos[LN_PB];
    const int K = L->dn_k;
    for (long pb = p0; pb < p1; pb += LN_PB) {
        int np = p1 - pb < LN_PB ? (int)(p1 - pb) : LN_PB;
        pare_lanes_positions(io, pb, np, ipos, opos, rpos);
        for (int b = b0; b < b1; b++)
            for (int k0 = 0; k0 < K; k0 += LN_KC) {
                int k1 = K - k0 < LN_KC ? K : k0 + LN_KC;
                for (int i = 0; i < np; i += LN_P) {
                    switch (np - i < LN_P ? np - i : LN_P) {
                    case 1: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 1); break;
                    case 2: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 2); break;
                    case 3: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 3); break;
                    case 4: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 4); break;
                    case 5: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 5); break;
                    default: ln_tile8(io, L, b, i, ipos, opos, rpos, k0, k1, sc, 6); break;
                    }
                }
            }
    }
}

/* ---- Winograd F(2x2, 3x3) ---------------------------------------------------- */

/* 8 tiles a vector: a patch row's columns 2j + s are the even and odd lanes of
 * 16 floats from column 2j (s = 0, 1) and from column 2j + 2 (s = 2, 3);
 * columns past the plane's last load as zero. */
static inline __m256 wino_load8(const float *p, long k) { return _mm256_maskload_ps(p, first_lanes(k < 8 ? (int)k : 8)); }
static inline __m256 even8(__m256 a, __m256 b)
{
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
}
static inline __m256 odd8(__m256 a, __m256 b)
{
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
}

void pare_f32_wino_in_1x1__avx2(const pare_wino_io *io, int c0, int c1, int i0, int i1)
{
    for (int c = c0; c < c1; c++)
        for (int i = i0; i < i1; i++)
            for (int j0 = 0; j0 < io->tw; j0 += 8) {
                int n = io->tw - j0 < 8 ? io->tw - j0 : 8;
                long cols = io->w + 2 - 2L * j0;
                __m256 d[4][4], t[4][4];
                for (int r = 0; r < 4; r++) {
                    if (2 * i + r > io->h + 1) {
                        for (int s = 0; s < 4; s++)
                            d[r][s] = _mm256_setzero_ps();
                        continue;
                    }
                    const float *p = io->in + c * io->in_cs + (long)(2 * i + r) * io->in_rs + 2L * j0;
                    __m256 a = wino_load8(p, cols), b = wino_load8(p + 8, cols - 8);
                    __m256 a2 = wino_load8(p + 2, cols - 2), b2 = wino_load8(p + 10, cols - 10);
                    d[r][0] = even8(a, b);
                    d[r][1] = odd8(a, b);
                    d[r][2] = even8(a2, b2);
                    d[r][3] = odd8(a2, b2);
                }
                for (int s = 0; s < 4; s++) {
                    t[0][s] = _mm256_sub_ps(d[0][s], d[2][s]);
                    t[1][s] = _mm256_add_ps(d[1][s], d[2][s]);
                    t[2][s] = _mm256_sub_ps(d[2][s], d[1][s]);
                    t[3][s] = _mm256_sub_ps(d[1][s], d[3][s]);
                }
                __m256i m = first_lanes(n);
                float *v = io->v + c * io->ts + (i - i0) * io->tw + j0;
                for (int r = 0; r < 4; r++) {
                    _mm256_maskstore_ps(v + (4 * r + 0) * io->v_xs, m, _mm256_sub_ps(t[r][0], t[r][2]));
                    _mm256_maskstore_ps(v + (4 * r + 1) * io->v_xs, m, _mm256_add_ps(t[r][1], t[r][2]));
                    _mm256_maskstore_ps(v + (4 * r + 2) * io->v_xs, m, _mm256_sub_ps(t[r][2], t[r][1]));
                    _mm256_maskstore_ps(v + (4 * r + 3) * io->v_xs, m, _mm256_sub_ps(t[r][1], t[r][3]));
                }
            }
}

/* An output row's 16 columns from 8 tiles' two, with bias, residual and
 * activation, stored where they exist. */
static inline void wino_row8(const pare_wino_io *io, int o, int y, int j0, __m256 y0, __m256 y1)
{
    __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1), b = _mm256_set1_ps(io->bias[o]);
    __m256 v[2] = {_mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), b),
                   _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x31), b)};
    long x0 = 2L * j0, left = io->w - x0;
    float *out = io->out + o * io->out_cs + (long)y * io->out_rs + x0;
    const float *res = io->res ? io->res + o * io->res_cs + (long)y * io->res_rs + x0 : NULL;
    for (int h = 0; h < 2 && left - 8 * h > 0; h++) {
        long k = left - 8 * h;
        __m256i m = first_lanes(k < 8 ? (int)k : 8);
        if (res)
            v[h] = _mm256_add_ps(v[h], _mm256_maskload_ps(res + 8 * h, m));
        if (io->act >= 1)
            v[h] = _mm256_max_ps(v[h], _mm256_setzero_ps());
        if (io->act == 2)
            v[h] = _mm256_min_ps(v[h], _mm256_set1_ps(6.0f));
        _mm256_maskstore_ps(out + 8 * h, m, v[h]);
    }
}

void pare_f32_wino_out_1x1__avx2(const pare_wino_io *io, int o0, int o1, int i0, int i1)
{
    for (int o = o0; o < o1; o++)
        for (int i = i0; i < i1; i++)
            for (int j0 = 0; j0 < io->tw; j0 += 8) {
                __m256i mk = first_lanes(io->tw - j0 < 8 ? io->tw - j0 : 8);
                const float *mp = io->m + o * io->ts + (i - i0) * io->tw + j0;
                __m256 a[2][4];
                for (int s = 0; s < 4; s++) {
                    __m256 m0 = _mm256_maskload_ps(mp + s * io->m_xs, mk);
                    __m256 m1 = _mm256_maskload_ps(mp + (4 + s) * io->m_xs, mk);
                    __m256 m2 = _mm256_maskload_ps(mp + (8 + s) * io->m_xs, mk);
                    __m256 m3 = _mm256_maskload_ps(mp + (12 + s) * io->m_xs, mk);
                    a[0][s] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                    a[1][s] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
                }
                for (int r = 0; r < 2 && 2 * i + r < io->h; r++)
                    wino_row8(io, o, 2 * i + r, j0, _mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), a[r][2]),
                              _mm256_sub_ps(_mm256_sub_ps(a[r][1], a[r][2]), a[r][3]));
            }
}
