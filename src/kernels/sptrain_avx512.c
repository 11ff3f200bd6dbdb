/* The sparse-training family with AVX-512. gather: a tile of V vectors of 16
 * positions stays in registers across every entry of a row (one broadcast and
 * V loads per entry for V FMAs); positions are the outer loop, so a tile's
 * input window stays in L1 while the rows stream by. sddmm: 8 entries of a
 * row at once, so each vector of a row's operand a is loaded once for 8 FMAs;
 * the 8 sums are folded together at the end of the positions. The last vector
 * uses masked (fault-free) loads, so nothing is read past the positions. */
#include <immintrin.h>

#include "kernels/sptrain.h"

#define CH 16
#define GV 8   /* vectors per gather tile */

static inline __mmask16 lanes(long left) { return left >= CH ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

#define GATHER(V)                                                                                 \
    static void gather_##V(const pare_sp_rows *L, int r0, int r1, const float *in, float *out,     \
                           long out_rs, long q, __mmask16 last, int acc)                          \
    {                                                                                             \
        const int32_t *off = L->off;                                                              \
        const float *w = L->w;                                                                    \
        for (int r = r0; r < r1; r++) {                                                           \
            __m512 s[V];                                                                          \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) s[v] = _mm512_setzero_ps();       \
            for (int32_t k = L->start[r], end = L->start[r + 1]; k < end; k++) {                  \
                const float *x = in + off[k] + q;                                                 \
                __m512 wk = _mm512_set1_ps(w[k]);                                                 \
                _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) s[v] =                    \
                    _mm512_fmadd_ps(wk, _mm512_loadu_ps(x + CH * v), s[v]);                       \
                s[V - 1] = _mm512_fmadd_ps(wk, _mm512_maskz_loadu_ps(last, x + CH * (V - 1)), s[V - 1]); \
            }                                                                                     \
            float *o = out + r * out_rs + q;                                                      \
            if (acc) {                                                                            \
                _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) s[v] =                    \
                    _mm512_add_ps(s[v], _mm512_loadu_ps(o + CH * v));                             \
                s[V - 1] = _mm512_add_ps(s[V - 1], _mm512_maskz_loadu_ps(last, o + CH * (V - 1))); \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) _mm512_storeu_ps(o + CH * v, s[v]); \
            _mm512_mask_storeu_ps(o + CH * (V - 1), last, s[V - 1]);                              \
        }                                                                                         \
    }

GATHER(1)
GATHER(2)
GATHER(3)
GATHER(4)
GATHER(5)
GATHER(6)
GATHER(7)
GATHER(8)

typedef void gather_fn(const pare_sp_rows *, int, int, const float *, float *, long, long, __mmask16, int);
static gather_fn *const gathers[GV] = {gather_1, gather_2, gather_3, gather_4,
                                       gather_5, gather_6, gather_7, gather_8};

void pare_f32_spgather_1x8__avx512(const pare_sp_rows *L, int r0, int r1, const float *in, float *out,
                                   long out_rs, long q0, long q1, int acc)
{
    for (long q = q0; q < q1; q += CH * GV) {
        long left = q1 - q;
        int v = left >= CH * GV ? GV : (int)((left + CH - 1) / CH);
        gathers[v - 1](L, r0, r1, in, out, out_rs, q, lanes(left - CH * (v - 1)), acc);
    }
}

/* The 8 sums of 8 vectors, in one: halves added, then two rounds of pairwise
 * horizontal adds and a swap of 128-bit lanes. */
static inline __m256 fold8(const __m512 *s)
{
    __m256 h[8];
    for (int j = 0; j < 8; j++)
        h[j] = _mm256_add_ps(_mm512_castps512_ps256(s[j]), _mm512_extractf32x8_ps(s[j], 1));
    __m256 a01 = _mm256_hadd_ps(h[0], h[1]), a23 = _mm256_hadd_ps(h[2], h[3]);
    __m256 a45 = _mm256_hadd_ps(h[4], h[5]), a67 = _mm256_hadd_ps(h[6], h[7]);
    __m256 b0 = _mm256_hadd_ps(a01, a23), b1 = _mm256_hadd_ps(a45, a67);
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

/* N entries (N <= 8) of one row over positions [q0, q1). */
#define SDDMM(N)                                                                                  \
    static void sddmm_##N(const float *ar, const float *in, const int32_t *off, long q0, long q1, \
                          float *dw)                                                              \
    {                                                                                             \
        const float *x[N];                                                                        \
        __m512 s[8];                                                                              \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) x[j] = in + off[j];                   \
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) s[j] = _mm512_setzero_ps();           \
        long q = q0;                                                                              \
        for (; q + CH <= q1; q += CH) {                                                           \
            __m512 av = _mm512_loadu_ps(ar + q);                                                  \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) s[j] =                            \
                _mm512_fmadd_ps(av, _mm512_loadu_ps(x[j] + q), s[j]);                             \
        }                                                                                         \
        if (q < q1) {                                                                             \
            __mmask16 m = lanes(q1 - q);                                                          \
            __m512 av = _mm512_maskz_loadu_ps(m, ar + q);                                         \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) s[j] =                            \
                _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x[j] + q), s[j]);                    \
        }                                                                                         \
        __mmask8 keep = (__mmask8)((1u << N) - 1);                                                \
        _mm256_mask_storeu_ps(dw, keep, _mm256_add_ps(fold8(s), _mm256_maskz_loadu_ps(keep, dw))); \
    }

SDDMM(1)
SDDMM(2)
SDDMM(3)
SDDMM(4)
SDDMM(5)
SDDMM(6)
SDDMM(7)
SDDMM(8)

typedef void sddmm_fn(const float *, const float *, const int32_t *, long, long, float *);
static sddmm_fn *const sddmms[8] = {sddmm_1, sddmm_2, sddmm_3, sddmm_4, sddmm_5, sddmm_6, sddmm_7, sddmm_8};

#ifndef QB
#define QB 256
#endif
void pare_f32_sddmm_8x1__avx512(const pare_sp_rows *L, int r0, int r1, const float *in, const float *a,
                                long a_rs, long q0, long q1, float *dw)
{
    for (long qb = q0; qb < q1; qb += QB) {
        long qe = qb + QB < q1 ? qb + QB : q1;
        for (int r = r0; r < r1; r++) {
            const float *ar = a + r * a_rs;
            int32_t k = L->start[r], end = L->start[r + 1];
            for (; k + 8 <= end; k += 8)
                sddmm_8(ar, in, L->off + k, qb, qe, dw + k);
            if (k < end)
                sddmms[end - k - 1](ar, in, L->off + k, qb, qe, dw + k);
        }
    }
}

void pare_f32_rows_1x16__avx512(long rows, long cols, const float *src, long src_rs, float *dst, long dst_rs,
                                float b, int acc)
{
    __m512 bv = _mm512_set1_ps(b);
    __mmask16 last = lanes(cols - (cols - 1) / CH * CH);
    long full = cols > 0 ? (cols - 1) / CH * CH : 0;
    for (long r = 0; r < rows && cols > 0; r++) {
        const float *s = src + r * src_rs;
        float *d = dst + r * dst_rs;
        long j = 0;
        for (; j < full; j += CH) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(s + j), bv);
            _mm512_storeu_ps(d + j, acc ? _mm512_add_ps(_mm512_loadu_ps(d + j), v) : v);
        }
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(last, s + j), bv);
        if (acc)
            v = _mm512_add_ps(_mm512_maskz_loadu_ps(last, d + j), v);
        _mm512_mask_storeu_ps(d + j, last, v);
    }
}
