/* The int8 family's AVX-512 rows without VNNI: max pool and quantize, 16
 * dwords a vector (the conv and linear tiles of this level are in
 * qconv_vnni_avx512.c; a CPU without AVX-512 VNNI uses the 256-bit ones). */
#include <immintrin.h>

#include "kernels/qconv.h"

void pare_u8_maxrow_1x16__avx512(uint32_t *out, const uint32_t *in, long in_rs, int kh, int kw, int sw, long n)
{
    long x = 0;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    if (sw == 1 || sw == 2)
        for (; x + 16 + (sw == 2) <= n; x += 16) {
            __m512i m = _mm512_setzero_si512();
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    const uint32_t *p = in + i * in_rs + x * sw + j;
                    __m512i v;
                    if (sw == 1)
                        v = _mm512_loadu_si512((const void *)p);
                    else
                        v = _mm512_permutex2var_epi32(_mm512_loadu_si512((const void *)p), even,
                                                      _mm512_loadu_si512((const void *)(p + 16)));
                    m = _mm512_max_epu8(m, v);
                }
            _mm512_storeu_si512((void *)(out + x), m);
        }
    if (x < n)
        pare_u8_maxrow_1x1__ref(out + x, in + x * sw, in_rs, kh, kw, sw, n - x);
}

void pare_u8_quant4_1x16__avx512(uint32_t *out, const float *const in[4], long n, float s, float zp, float qmax)
{
    const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(zp), vq = _mm512_set1_ps(qmax);
    for (long x = 0; x < n; x += 16) {
        long left = n - x;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512i packed = _mm512_setzero_si512();
        for (int b = 0; b < 4; b++) {
            __m512i c;
            if (in[b]) {
                __m512 t = _mm512_div_ps(_mm512_maskz_loadu_ps(m, in[b] + x), vs);
                t = _mm512_add_ps(_mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
                t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), vq);
                c = _mm512_cvttps_epi32(t);
            } else {
                c = _mm512_set1_epi32((int)zp);
            }
            packed = _mm512_or_si512(packed, _mm512_slli_epi32(c, 8 * b));
        }
        _mm512_mask_storeu_epi32(out + x, m, packed);
    }
}

/* vpshufb control moving byte s of each dword to byte b, zeroing the others
 * (indices are within a 16-byte lane: dword j of a lane reads byte 4j + s). */
static inline __m512i move_byte(int s, int b)
{
    uint32_t c[4];
    for (int j = 0; j < 4; j++)
        c[j] = (0x80808080u & ~(0xffu << (8 * b))) | (uint32_t)(4 * j + s) << (8 * b);
    return _mm512_broadcast_i32x4(_mm_setr_epi32((int)c[0], (int)c[1], (int)c[2], (int)c[3]));
}

void pare_u8_gather4_1x16__avx512(uint32_t *dst, long ld, const uint8_t *src, const int32_t *off, const uint8_t *sel,
                                  int n, long len)
{
    for (int i = 0; i < n; i++) {
        const int32_t *o = off + 4 * i;
        const uint8_t *s = sel + 4 * i;
        const __m512i c0 = move_byte(s[0], 0), c1 = move_byte(s[1], 1), c2 = move_byte(s[2], 2), c3 = move_byte(s[3], 3);
        const uint8_t *p0 = src + 4 * (long)o[0], *p1 = src + 4 * (long)o[1], *p2 = src + 4 * (long)o[2],
                      *p3 = src + 4 * (long)o[3];
        uint32_t *d = dst + i * ld;
        for (long p = 0; p < len; p += 16) {
            __m512i a = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p0 + 4 * p)), c0);
            __m512i b = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p1 + 4 * p)), c1);
            __m512i c = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p2 + 4 * p)), c2);
            __m512i e = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p3 + 4 * p)), c3);
            _mm512_storeu_si512((void *)(d + p), _mm512_or_si512(_mm512_ternarylogic_epi32(a, b, c, 0xfe), e));
        }
    }
}

/* maxps(v, m) is v > m ? v : m, the scalar loop's step, lane by lane. */
void pare_f32_maxrow_1x16__avx512(float *out, const float *in, long in_rs, int kh, int kw, int sw, long n)
{
    long x = 0;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    if (sw == 1 || sw == 2)
        for (; x + 16 + (sw == 2) <= n; x += 16) {
            __m512 m = _mm512_setzero_ps();
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    const float *p = in + i * in_rs + x * sw + j;
                    __m512 v = sw == 1 ? _mm512_loadu_ps(p)
                                       : _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
                    m = i == 0 && j == 0 ? v : _mm512_max_ps(v, m);
                }
            _mm512_storeu_ps(out + x, m);
        }
    if ((sw == 1 || sw == 2) && x < n && n - x <= 16) {
        /* the last < 16 (or 16 at stride 2) outputs: masked loads read only
         * the windows' own elements */
        int left = (int)(n - x);
        __mmask16 mo = (__mmask16)((1u << left) - 1);
        __m512 m = _mm512_setzero_ps();
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                const float *p = in + i * in_rs + x * sw + j;
                __m512 v;
                if (sw == 1) {
                    v = _mm512_maskz_loadu_ps(mo, p);
                } else {
                    int e = 2 * left - 1; /* elements the even lanes reach */
                    __mmask16 m0 = (__mmask16)(e >= 16 ? 0xffffu : (1u << e) - 1);
                    __mmask16 m1 = (__mmask16)(e > 16 ? (1u << (e - 16)) - 1 : 0);
                    v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m0, p), even, _mm512_maskz_loadu_ps(m1, p + 16));
                }
                m = i == 0 && j == 0 ? v : _mm512_max_ps(v, m);
            }
        _mm512_mask_storeu_ps(out + x, mo, m);
        return;
    }
    if (x < n)
        pare_f32_maxrow_1x1__ref(out + x, in + x * sw, in_rs, kh, kw, sw, n - x);
}

void pare_u32_phase2_1x16__avx512(uint32_t *even, uint32_t *odd, const uint32_t *in, long n, long w, uint32_t fill)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i vf = _mm512_set1_epi32((int)fill);
    /* 16 outputs of each phase a step from 32 inputs; masked loads read only
     * in[0, w), lanes past w take the fill, lanes past n are not stored */
    for (long x = 0; x < n; x += 16) {
        long ra = w - 2 * x, rb = ra - 16, ve = ra > 0 ? (ra + 1) / 2 : 0, vo = ra > 0 ? ra / 2 : 0, left = n - x;
        __mmask16 ma = ra >= 16 ? (__mmask16)0xffff : ra > 0 ? (__mmask16)((1u << ra) - 1) : 0;
        __mmask16 mb = rb >= 16 ? (__mmask16)0xffff : rb > 0 ? (__mmask16)((1u << rb) - 1) : 0;
        __mmask16 me = ve >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << ve) - 1);
        __mmask16 mo = vo >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << vo) - 1);
        __mmask16 ms = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512i a = _mm512_maskz_loadu_epi32(ma, in + 2 * x), b = _mm512_maskz_loadu_epi32(mb, in + 2 * x + 16);
        _mm512_mask_storeu_epi32(even + x, ms, _mm512_mask_blend_epi32(me, vf, _mm512_permutex2var_epi32(a, ie, b)));
        _mm512_mask_storeu_epi32(odd + x, ms, _mm512_mask_blend_epi32(mo, vf, _mm512_permutex2var_epi32(a, io, b)));
    }
}

/* Blends on ordered comparisons: a NaN fails them and is kept, as in C. */
void pare_f32_fq_1x16__avx512(float *y, const float *x, long n, float s, float zp, float qmax)
{
    const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(zp), vq = _mm512_set1_ps(qmax), zero = _mm512_setzero_ps();
    const __m512 a = _mm512_set1_ps(-1.0f - zp), b = _mm512_set1_ps(qmax + 1.0f - zp);
    for (long i = 0; i < n; i += 16) {
        long left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(q, a, _CMP_LT_OQ), q, a);
        q = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(q, b, _CMP_GT_OQ), q, b);
        q = _mm512_add_ps(q, vz);
        __mmask16 neg = _mm512_cmp_ps_mask(q, zero, _CMP_LT_OQ), big = _mm512_cmp_ps_mask(q, vq, _CMP_GT_OQ);
        q = _mm512_mask_blend_ps(big & (__mmask16)~neg, _mm512_mask_blend_ps(neg, q, zero), vq);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_sub_ps(q, vz), vs));
    }
}
