/* The int8 conv family with AVX-512 VNNI (this file alone is compiled with
 * -mavx512vnni and runs only where the CPU has it): register tiles of R
 * filters x V chunks of 16 positions; a column costs V loads of 16 dwords
 * and R broadcast weight dwords for R*V vpdpbusd, 64 multiply-adds each, so
 * the tile does 4x the work of the float tile per instruction. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qconv.h"
#include "kernels/qconv_impl.h"

#define CH PARE_QCONV_CHUNK
#define TILE_CHUNKS 6

static inline int32_t ld32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline __mmask16 chunk_mask(const pare_qconv_io *io, long q)
{
    __mmask16 m = io->mask ? (__mmask16)io->mask[q / CH] : (__mmask16)0xffff;
    long left = io->n - q;
    if (left < CH)
        m &= (__mmask16)(left > 0 ? (1u << left) - 1 : 0);
    return m;
}

/* The u8 code of each lane (qconv.h's steps, in the same order). */
static inline __m512i to_code(const pare_qconv_io *io, const pare_qconv_layer *L, int o, long q, __m512i acc)
{
    __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(L->scale[o]), _mm512_set1_ps(L->shift[o]));
    if (io->res)
        f = _mm512_fmadd_ps(_mm512_loadu_ps(io->res + o * io->res_cs + q), _mm512_set1_ps(io->res_scale), f);
    f = _mm512_max_ps(f, _mm512_set1_ps(io->lo));
    f = _mm512_min_ps(f, _mm512_set1_ps(io->hi));
    __m512i c = _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_epi32(c, _mm512_set1_epi32(io->zp));
}

static inline __m512 to_float(const pare_qconv_io *io, const pare_qconv_layer *L, int o, long q, __m512i acc)
{
    __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(L->scale[o]), _mm512_set1_ps(L->shift[o]));
    if (io->res)
        f = _mm512_add_ps(f, _mm512_loadu_ps(io->res + o * io->res_cs + q));
    if (io->act >= 1)
        f = _mm512_max_ps(f, _mm512_setzero_ps());
    if (io->act == 2)
        f = _mm512_min_ps(f, _mm512_set1_ps(6.0f));
    return f;
}

/* Requantizes and stores a tile's sums (sums[r][v][lane]). u8 out: the codes
 * of a position's filters go into their bytes of one dword (the filters lie
 * in one quad) and one byte-masked store writes them, so groups sharing a
 * quad never touch each other's bytes. Kept out of the tiles: inlined there,
 * its constants would take registers from the accumulators. */
static __attribute__((noinline)) void store_tile(const pare_qconv_io *io, const pare_qconv_layer *L,
                                                 const pare_qconv_group *g, long q, int roff, int R, int V,
                                                 int RP, const int32_t *sums)
{
    int nr = g->r - roff < R ? g->r - roff : R;
    int o1 = g->o0 + roff;
    if (io->out8 && !io->res && nr == 4 && RP >= 4) {
        /* the common case, a whole quad of codes: to_code's steps with the
         * per-filter constants hoisted */
        __m512 sc[4], sh[4];
        for (int r = 0; r < 4; r++) {
            sc[r] = _mm512_set1_ps(L->scale[o1 + r]);
            sh[r] = _mm512_set1_ps(L->shift[o1 + r]);
        }
        const __m512 lo = _mm512_set1_ps(io->lo), hi = _mm512_set1_ps(io->hi);
        const __m512i zp = _mm512_set1_epi32(io->zp);
        for (int v = 0; v < V; v++) {
            long qv = q + CH * v;
            __mmask16 m = chunk_mask(io, qv);
            if (!m)
                continue;
            __m512i packed = _mm512_setzero_si512();
            for (int r = 0; r < 4; r++) {
                __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(sums + (r * V + v) * CH))),
                                           sc[r], sh[r]);
                f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
                __m512i c = _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
                packed = _mm512_or_si512(packed, _mm512_sllv_epi32(c, _mm512_set1_epi32(8 * r)));
            }
            _mm512_mask_storeu_epi32(io->out8 + 4 * ((long)(o1 >> 2) * io->out_cs + qv), m, packed);
        }
        return;
    }
    for (int v = 0; v < V; v++) {
        long qv = q + CH * v;
        __mmask16 m = chunk_mask(io, qv);
        if (!m)
            continue;
        if (io->out8) {
            __m512i packed = _mm512_setzero_si512();
            unsigned nib = 0;
            for (int r = 0; r < nr; r++) {
                int o = o1 + r, sh = RP >= 4 ? r : (o & 3);
                __m512i c = to_code(io, L, o, qv, _mm512_load_si512((const void *)(sums + (r * V + v) * CH)));
                packed = _mm512_or_si512(packed, _mm512_sllv_epi32(c, _mm512_set1_epi32(8 * sh)));
                nib |= 1u << sh;
            }
            _mm512_mask_storeu_epi8(io->out8 + 4 * ((long)(o1 >> 2) * io->out_cs + qv),
                                    (__mmask64)(pare_qspread16(m) * nib), packed);
        } else {
            for (int r = 0; r < nr; r++)
                _mm512_mask_storeu_ps(io->outf + (o1 + r) * io->out_cs + qv, m,
                                      to_float(io, L, o1 + r, qv, _mm512_load_si512((const void *)(sums + (r * V + v) * CH))));
        }
    }
}

/* One tile: filters [roff, roff + R) of a group (weight dwords w[col*RP + r])
 * over V chunks at q. u8 out: the R codes of a position go into their bytes
 * of one dword (the filters lie in one quad) and one byte-masked store
 * writes them, so groups sharing a quad never touch each other's bytes. */
#define TILE(R, V, RP)                                                                            \
    static void tile_##RP##_##R##_##V(const pare_qconv_io *io, const pare_qconv_layer *L,         \
                                      const pare_qconv_group *g, long q, int roff)                \
    {                                                                                             \
        __m512i acc[R][V];                                                                        \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
        {                                                                                         \
            __m512i b = _mm512_set1_epi32(g->bias[roff + r]);                                     \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[r][v] = b;                    \
        }                                                                                         \
        const uint8_t *in = io->in + 4 * q;                                                       \
        const int32_t *off = g->off;                                                              \
        const int8_t *w = g->w + 4 * roff;                                                        \
        for (int c = 0; c < g->ncols; c++, w += 4 * RP) {                                         \
            const uint8_t *p = in + 4 * (long)off[c];                                             \
            __m512i x[V];                                                                         \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) x[v] =                            \
                _mm512_loadu_si512((const void *)(p + 4 * CH * v));                               \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                   \
            {                                                                                     \
                __m512i wr = _mm512_set1_epi32(ld32(w + 4 * r));                                  \
                _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) acc[r][v] =                   \
                    _mm512_dpbusd_epi32(acc[r][v], x[v], wr);                                     \
            }                                                                                     \
        }                                                                                         \
        /* the requantization reads the sums back from L1: with the branches                    \
         * below in the same scope, gcc would keep acc[][] in memory in the                       \
         * column loop too */                                                                     \
        _Alignas(64) int32_t sums[R][V][CH];                                                      \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
        {                                                                                         \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++)                                   \
                _mm512_store_si512((void *)sums[r][v], acc[r][v]);                                \
        }                                                                                         \
        store_tile(io, L, g, q, roff, R, V, RP, &sums[0][0][0]);                                   \
    }

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

typedef void tile_fn(const pare_qconv_io *, const pare_qconv_layer *, const pare_qconv_group *, long, int);

static tile_fn *const tiles[4][TILE_CHUNKS] = {
    {tile_1_1_1, tile_1_1_2, tile_1_1_3, tile_1_1_4, tile_1_1_5, tile_1_1_6},
    {tile_2_2_1, tile_2_2_2, tile_2_2_3, tile_2_2_4, tile_2_2_5, tile_2_2_6},
    {tile_4_4_1, tile_4_4_2, tile_4_4_3, tile_4_4_4, tile_4_4_5, tile_4_4_6},
    {tile_8_4_1, tile_8_4_2, tile_8_4_3, tile_8_4_4, tile_8_4_5, tile_8_4_6},
};

static int rp_index(int rp) { return rp == 1 ? 0 : rp == 2 ? 1 : rp == 4 ? 2 : 3; }

void pare_s8_qconvg_4x6__avx512vnni(const pare_qconv_io *io, const pare_qconv_layer *L, int g0, int g1,
                                    long q0, long q1)
{
    for (long q = q0; q < q1; q += CH * TILE_CHUNKS) {
        long chunks = (q1 - q + CH - 1) / CH;
        int v = chunks > TILE_CHUNKS ? TILE_CHUNKS : (int)chunks;
        for (int gi = g0; gi < g1; gi++) {
            const pare_qconv_group *g = &L->groups[gi];
            int k = rp_index(g->rp);
            tiles[k][v - 1](io, L, g, q, 0);
            if (g->rp == 8 && g->r > 4)
                tiles[k][v - 1](io, L, g, q, 4);
        }
    }
}

/* 16 outputs a vector; four accumulators over consecutive input dwords keep
 * four vpdpbusd chains in flight (integer sums: the order changes nothing). */
void pare_s8_qgemv_16x1__avx512vnni(const pare_qfc *F, const uint8_t *x, float *y, int act, int b0, int b1)
{
    for (int blk = b0; blk < b1; blk++) {
        const int8_t *w = F->w + (long)blk * F->in4 * 64;
        __m512i a0 = _mm512_loadu_si512((const void *)(F->bias + 16 * blk));
        __m512i a1 = _mm512_setzero_si512(), a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
        int k = 0;
        for (; k + 4 <= F->in4; k += 4) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(ld32(x + 4 * k)), _mm512_loadu_si512((const void *)(w + 64 * k)));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(ld32(x + 4 * k + 4)),
                                     _mm512_loadu_si512((const void *)(w + 64 * k + 64)));
            a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(ld32(x + 4 * k + 8)),
                                     _mm512_loadu_si512((const void *)(w + 64 * k + 128)));
            a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(ld32(x + 4 * k + 12)),
                                     _mm512_loadu_si512((const void *)(w + 64 * k + 192)));
        }
        for (; k < F->in4; k++)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(ld32(x + 4 * k)), _mm512_loadu_si512((const void *)(w + 64 * k)));
        __m512i acc = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(F->scale + 16 * blk),
                                   _mm512_loadu_ps(F->shift + 16 * blk));
        if (act >= 1)
            f = _mm512_max_ps(f, _mm512_setzero_ps());
        if (act == 2)
            f = _mm512_min_ps(f, _mm512_set1_ps(6.0f));
        int left = F->out - 16 * blk;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        _mm512_mask_storeu_ps(y + 16 * blk, m, f);
    }
}
