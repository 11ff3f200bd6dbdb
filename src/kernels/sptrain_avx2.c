/* The sparse-training family with AVX2 + FMA: the AVX-512 version's shapes
 * with 8-lane vectors (a gather tile of 8 vectors = 64 positions; 8 sddmm
 * sums in 8 of the 16 registers); the last vector is read with a masked,
 * fault-free load. */
#include <immintrin.h>

#include "kernels/sptrain.h"

#define CH 8
#define GV 8

static inline __m256i lanes(long left)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(left >= CH ? CH : (int)left), iota);
}

#define GATHER(V)                                                                                 \
    static void gather_##V(const pare_sp_rows *L, int r0, int r1, const float *in, float *out,     \
                           long out_rs, long q, __m256i last, int acc)                            \
    {                                                                                             \
        const int32_t *off = L->off;                                                              \
        const float *w = L->w;                                                                    \
        for (int r = r0; r < r1; r++) {                                                           \
            __m256 s[V];                                                                          \
            _Pragma("GCC unroll 8") for (int v = 0; v < V; v++) s[v] = _mm256_setzero_ps();       \
            for (int32_t k = L->start[r], end = L->start[r + 1]; k < end; k++) {                  \
                const float *x = in + off[k] + q;                                                 \
                __m256 wk = _mm256_broadcast_ss(w + k);                                           \
                _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) s[v] =                    \
                    _mm256_fmadd_ps(wk, _mm256_loadu_ps(x + CH * v), s[v]);                       \
                s[V - 1] = _mm256_fmadd_ps(wk, _mm256_maskload_ps(x + CH * (V - 1), last), s[V - 1]); \
            }                                                                                     \
            float *o = out + r * out_rs + q;                                                      \
            if (acc) {                                                                            \
                _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) s[v] =                    \
                    _mm256_add_ps(s[v], _mm256_loadu_ps(o + CH * v));                             \
                s[V - 1] = _mm256_add_ps(s[V - 1], _mm256_maskload_ps(o + CH * (V - 1), last));   \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (int v = 0; v < V - 1; v++) _mm256_storeu_ps(o + CH * v, s[v]); \
            _mm256_maskstore_ps(o + CH * (V - 1), last, s[V - 1]);                                \
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

typedef void gather_fn(const pare_sp_rows *, int, int, const float *, float *, long, long, __m256i, int);
static gather_fn *const gathers[GV] = {gather_1, gather_2, gather_3, gather_4,
                                       gather_5, gather_6, gather_7, gather_8};

void pare_f32_spgather_1x8__avx2(const pare_sp_rows *L, int r0, int r1, const float *in, float *out,
                                 long out_rs, long q0, long q1, int acc)
{
    for (long q = q0; q < q1; q += CH * GV) {
        long left = q1 - q;
        int v = left >= CH * GV ? GV : (int)((left + CH - 1) / CH);
        gathers[v - 1](L, r0, r1, in, out, out_rs, q, lanes(left - CH * (v - 1)), acc);
    }
}

/* The 8 sums of 8 vectors: two rounds of pairwise horizontal adds and a swap
 * of 128-bit lanes. */
static inline __m256 fold8(const __m256 *s)
{
    __m256 a01 = _mm256_hadd_ps(s[0], s[1]), a23 = _mm256_hadd_ps(s[2], s[3]);
    __m256 a45 = _mm256_hadd_ps(s[4], s[5]), a67 = _mm256_hadd_ps(s[6], s[7]);
    __m256 b0 = _mm256_hadd_ps(a01, a23), b1 = _mm256_hadd_ps(a45, a67);
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

#define SDDMM(N)                                                                                  \
    static void sddmm_##N(const float *ar, const float *in, const int32_t *off, long q0, long q1, \
                          float *dw)                                                              \
    {                                                                                             \
        const float *x[N];                                                                        \
        __m256 s[8];                                                                              \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) x[j] = in + off[j];                   \
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) s[j] = _mm256_setzero_ps();           \
        long q = q0;                                                                              \
        for (; q + CH <= q1; q += CH) {                                                           \
            __m256 av = _mm256_loadu_ps(ar + q);                                                  \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) s[j] =                            \
                _mm256_fmadd_ps(av, _mm256_loadu_ps(x[j] + q), s[j]);                             \
        }                                                                                         \
        if (q < q1) {                                                                             \
            __m256i m = lanes(q1 - q);                                                            \
            __m256 av = _mm256_maskload_ps(ar + q, m);                                            \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) s[j] =                            \
                _mm256_fmadd_ps(av, _mm256_maskload_ps(x[j] + q, m), s[j]);                       \
        }                                                                                         \
        __m256i keep = lanes(N);                                                                  \
        _mm256_maskstore_ps(dw, keep, _mm256_add_ps(fold8(s), _mm256_maskload_ps(dw, keep)));     \
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

void pare_f32_sddmm_8x1__avx2(const pare_sp_rows *L, int r0, int r1, const float *in, const float *a,
                              long a_rs, long q0, long q1, float *dw)
{
    for (int r = r0; r < r1; r++) {
        const float *ar = a + r * a_rs;
        int32_t k = L->start[r], end = L->start[r + 1];
        for (; k + 8 <= end; k += 8)
            sddmm_8(ar, in, L->off + k, q0, q1, dw + k);
        if (k < end)
            sddmms[end - k - 1](ar, in, L->off + k, q0, q1, dw + k);
    }
}

void pare_f32_rows_1x8__avx2(long rows, long cols, const float *src, long src_rs, float *dst, long dst_rs,
                             float b, int acc)
{
    __m256 bv = _mm256_set1_ps(b);
    __m256i last = lanes(cols - (cols - 1) / CH * CH);
    long full = cols > 0 ? (cols - 1) / CH * CH : 0;
    for (long r = 0; r < rows && cols > 0; r++) {
        const float *s = src + r * src_rs;
        float *d = dst + r * dst_rs;
        long j = 0;
        for (; j < full; j += CH) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(s + j), bv);
            _mm256_storeu_ps(d + j, acc ? _mm256_add_ps(_mm256_loadu_ps(d + j), v) : v);
        }
        __m256 v = _mm256_add_ps(_mm256_maskload_ps(s + j, last), bv);
        if (acc)
            v = _mm256_add_ps(_mm256_maskload_ps(d + j, last), v);
        _mm256_maskstore_ps(d + j, last, v);
    }
}
