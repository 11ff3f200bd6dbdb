/* The int8 conv family with AVX2 and no VNNI: exact int16 products (vpmaddwd
 * on zero-extended codes and sign-extended weights; vpmaddubsw would saturate
 * its int16 pair sums and break bit equality with the reference), and the
 * max-pool and quantize rows. */
#include <immintrin.h>

#include "kernels/qconv.h"

typedef struct qx {
    __m256i e, o;
} qx;

/* Even and odd bytes of each dword as int16 pairs. */
static inline qx qx_prep(__m256i x)
{
    qx r = {_mm256_and_si256(x, _mm256_set1_epi32(0x00ff00ff)), _mm256_srli_epi16(x, 8)};
    return r;
}

static inline qx qw_vec(__m256i w)
{
    qx r = {_mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), _mm256_srai_epi16(w, 8)};
    return r;
}

static inline qx qw_prep(int32_t w) { return qw_vec(_mm256_set1_epi32(w)); }

static inline __m256i qdot(__m256i acc, qx x, qx w)
{
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(x.e, w.e), _mm256_madd_epi16(x.o, w.o)));
}

#define QX qx
#define QW qx
#define QSUFFIX avx2
#include "kernels/qconv_256.inc"

/* Stride 1 and 2 in vectors of 8 outputs while every dword a vector reads is
 * one the row needs; the rest (and other strides) one output at a time. */
void pare_u8_maxrow_1x8__avx2(uint32_t *out, const uint32_t *in, long in_rs, int kh, int kw, int sw, long n)
{
    long x = 0;
    if (sw == 1 || sw == 2)
        for (; x + 8 + (sw == 2) <= n; x += 8) {
            __m256i m = _mm256_setzero_si256();
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    const uint32_t *p = in + i * in_rs + x * sw + j;
                    __m256i v;
                    if (sw == 1) {
                        v = _mm256_loadu_si256((const __m256i *)(const void *)p);
                    } else {
                        __m256 a = _mm256_loadu_ps((const float *)(const void *)p);
                        __m256 b = _mm256_loadu_ps((const float *)(const void *)(p + 8));
                        __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
                        v = _mm256_permute4x64_epi64(_mm256_castps_si256(ev), _MM_SHUFFLE(3, 1, 2, 0));
                    }
                    m = _mm256_max_epu8(m, v);
                }
            _mm256_storeu_si256((__m256i *)(void *)(out + x), m);
        }
    if (x < n)
        pare_u8_maxrow_1x1__ref(out + x, in + x * sw, in_rs, kh, kw, sw, n - x);
}

void pare_u8_quant4_1x8__avx2(uint32_t *out, const float *const in[4], long n, float s, float zp, float qmax)
{
    long x = 0;
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(zp), vq = _mm256_set1_ps(qmax);
    for (; x + 8 <= n; x += 8) {
        __m256i packed = _mm256_setzero_si256();
        for (int b = 0; b < 4; b++) {
            __m256i c;
            if (in[b]) {
                __m256 t = _mm256_div_ps(_mm256_loadu_ps(in[b] + x), vs);
                t = _mm256_add_ps(_mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
                t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), vq);
                c = _mm256_cvttps_epi32(t);
            } else {
                c = _mm256_set1_epi32((int)zp);
            }
            packed = _mm256_or_si256(packed, _mm256_slli_epi32(c, 8 * b));
        }
        _mm256_storeu_si256((__m256i *)(void *)(out + x), packed);
    }
    if (x < n) {
        const float *rest[4];
        for (int b = 0; b < 4; b++)
            rest[b] = in[b] ? in[b] + x : NULL;
        pare_u8_quant4_1x1__ref(out + x, rest, n - x, s, zp, qmax);
    }
}

/* vpshufb control moving byte s of each dword to byte b, zeroing the others
 * (indices are within a 16-byte lane: dword j of a lane reads byte 4j + s). */
static inline __m256i move_byte(int s, int b)
{
    uint32_t c[4];
    for (int j = 0; j < 4; j++)
        c[j] = (0x80808080u & ~(0xffu << (8 * b))) | (uint32_t)(4 * j + s) << (8 * b);
    return _mm256_broadcastsi128_si256(_mm_setr_epi32((int)c[0], (int)c[1], (int)c[2], (int)c[3]));
}

void pare_u8_gather4_1x8__avx2(uint32_t *dst, long ld, const uint8_t *src, const int32_t *off, const uint8_t *sel, int n,
                               long len)
{
    for (int i = 0; i < n; i++) {
        const int32_t *o = off + 4 * i;
        const uint8_t *s = sel + 4 * i;
        const __m256i c0 = move_byte(s[0], 0), c1 = move_byte(s[1], 1), c2 = move_byte(s[2], 2), c3 = move_byte(s[3], 3);
        uint32_t *d = dst + i * ld;
        for (long p = 0; p < len; p += 8) {
            __m256i a = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * (p + o[0]))), c0);
            __m256i b = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * (p + o[1]))), c1);
            __m256i c = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * (p + o[2]))), c2);
            __m256i e = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * (p + o[3]))), c3);
            _mm256_storeu_si256((__m256i *)(void *)(d + p), _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, e)));
        }
    }
}

void pare_f32_maxrow_1x8__avx2(float *out, const float *in, long in_rs, int kh, int kw, int sw, long n)
{
    long x = 0;
    if (sw == 1 || sw == 2)
        for (; x + 8 + (sw == 2) <= n; x += 8) {
            __m256 m = _mm256_setzero_ps();
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    const float *p = in + i * in_rs + x * sw + j;
                    __m256 v;
                    if (sw == 1) {
                        v = _mm256_loadu_ps(p);
                    } else {
                        __m256 ev = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
                        v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
                    }
                    m = i == 0 && j == 0 ? v : _mm256_max_ps(v, m);
                }
            _mm256_storeu_ps(out + x, m);
        }
    if (x < n)
        pare_f32_maxrow_1x1__ref(out + x, in + x * sw, in_rs, kh, kw, sw, n - x);
}

void pare_f32_fq_1x8__avx2(float *y, const float *x, long n, float s, float zp, float qmax)
{
    const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(zp), vq = _mm256_set1_ps(qmax), zero = _mm256_setzero_ps();
    const __m256 a = _mm256_set1_ps(-1.0f - zp), b = _mm256_set1_ps(qmax + 1.0f - zp);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_blendv_ps(q, a, _mm256_cmp_ps(q, a, _CMP_LT_OQ));
        q = _mm256_blendv_ps(q, b, _mm256_cmp_ps(q, b, _CMP_GT_OQ));
        q = _mm256_add_ps(q, vz);
        __m256 neg = _mm256_cmp_ps(q, zero, _CMP_LT_OQ), big = _mm256_andnot_ps(neg, _mm256_cmp_ps(q, vq, _CMP_GT_OQ));
        q = _mm256_blendv_ps(_mm256_blendv_ps(q, zero, neg), vq, big);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(q, vz), vs));
    }
    if (i < n)
        pare_f32_fq_1x1__ref(y + i, x + i, n - i, s, zp, qmax);
}
