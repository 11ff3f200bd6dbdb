/* The vec kernels, written once in portable C and compiled per ISA (vec_ref.c
 * without vectorisation as the oracle, vec_avx2.c and vec_avx512.c with those
 * flags; only the 2x2 max pool row has AVX-512 intrinsics, for its masked
 * tail). ISO C mode keeps -ffp-contract=off, and reductions name their lane
 * order explicitly, so every build computes the same bits. Include after
 * defining PARE_VEC_SUFFIX (e.g. _16x1__avx512). */
#include <math.h>

#include "kernels/vec.h"

#define VK(kind) PARE_PASTE(pare_##kind, PARE_VEC_SUFFIX)
#define LANES 8

void VK(f32_vrelu)(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void VK(f32_vrelu6)(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = v > 6.0f ? 6.0f : v;
    }
}

void VK(f32_vrelu_bwd)(size_t n, const float *y, const float *dy, float *dx, int acc)
{
    if (acc)
        for (size_t i = 0; i < n; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    else
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void VK(f32_vrelu6_bwd)(size_t n, const float *y, const float *dy, float *dx, int acc)
{
    if (acc)
        for (size_t i = 0; i < n; i++)
            dx[i] += (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
    else
        for (size_t i = 0; i < n; i++)
            dx[i] = (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}

#if defined(__AVX512F__)
/* Pool rows are short (14 or 7 outputs in a small CNN), which a compiled loop
 * would leave to a scalar tail whose compares become mispredicted branches;
 * here every row is 16-output vectors with a masked last one. */
#include <immintrin.h>
/* Where v is greater than the maximum *m so far, v becomes it and its index b + add. */
static inline void vmax_take(__m512 v, __m512 *m, __m512i *q, __m512i b, __m512i add)
{
    __mmask16 gt = _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ);
    *q = _mm512_mask_add_epi32(*q, gt, b, add);
    *m = _mm512_mask_mov_ps(*m, gt, v);
}

void VK(f32_vmax2x2)(size_t n, const float *r0, const float *r1, int32_t k0, int32_t w, float *y,
                     int32_t *k)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32(w);
    const __m512i w1 = _mm512_add_epi32(wv, one);
    __m512i b = _mm512_add_epi32(_mm512_set1_epi32(k0), even);
    for (size_t i = 0; i < n; i += 16) {
        size_t rem = n - i < 16 ? n - i : 16;
        __mmask16 mo = (__mmask16)(rem == 16 ? 0xffffu : (1u << rem) - 1u);
        __mmask16 ml = (__mmask16)(rem >= 8 ? 0xffffu : (1u << (2 * rem)) - 1u);
        __mmask16 mh = (__mmask16)(rem <= 8 ? 0u : rem == 16 ? 0xffffu : (1u << (2 * rem - 16)) - 1u);
        __m512 a0 = _mm512_maskz_loadu_ps(ml, r0 + 2 * i), a1 = _mm512_maskz_loadu_ps(mh, r0 + 2 * i + 16);
        __m512 c0 = _mm512_maskz_loadu_ps(ml, r1 + 2 * i), c1 = _mm512_maskz_loadu_ps(mh, r1 + 2 * i + 16);
        __m512 m = _mm512_permutex2var_ps(a0, even, a1), v = _mm512_permutex2var_ps(a0, odd, a1);
        __m512i q = b;
        vmax_take(v, &m, &q, b, one);
        vmax_take(_mm512_permutex2var_ps(c0, even, c1), &m, &q, b, wv);
        vmax_take(_mm512_permutex2var_ps(c0, odd, c1), &m, &q, b, w1);
        _mm512_mask_storeu_ps(y + i, mo, m);
        _mm512_mask_storeu_epi32(k + i, mo, q);
        b = _mm512_add_epi32(b, _mm512_set1_epi32(32));
    }
}
#else
void VK(f32_vmax2x2)(size_t n, const float *r0, const float *r1, int32_t k0, int32_t w, float *y,
                     int32_t *k)
{
    /* Selects, not branches: the winner is data, so a branch mispredicts. */
    for (size_t i = 0; i < n; i++) {
        int32_t b = k0 + 2 * (int32_t)i;
        float m = r0[2 * i], v = r0[2 * i + 1];
        int32_t q = b;
        q = v > m ? b + 1 : q;
        m = v > m ? v : m;
        v = r1[2 * i];
        q = v > m ? b + w : q;
        m = v > m ? v : m;
        v = r1[2 * i + 1];
        q = v > m ? b + w + 1 : q;
        m = v > m ? v : m;
        y[i] = m;
        k[i] = q;
    }
}
#endif

void VK(f32_vadd)(size_t n, const float *x, const float *y, float *z)
{
    for (size_t i = 0; i < n; i++)
        z[i] = x[i] + y[i];
}

void VK(f32_vacc)(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void VK(f32_vaffine)(size_t n, const float *x, float a, float b, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * a + b;
}

static double lanes_total(const double *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double VK(f32_vsum)(size_t n, const float *x)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)x[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += (double)x[i];
    return lanes_total(acc);
}

double VK(f32_vsumsq_dev)(size_t n, const float *x, double m)
{
    double acc[LANES] = {0};
    size_t i = 0;
    /* one operation a loop: the per-lane operations stay the same, and the
     * compiler turns each loop into vector operations (fused, it did not) */
    for (; i + LANES <= n; i += LANES) {
        double d[LANES];
        for (int l = 0; l < LANES; l++)
            d[l] = (double)x[i + l] - m;
        for (int l = 0; l < LANES; l++)
            d[l] = d[l] * d[l];
        for (int l = 0; l < LANES; l++)
            acc[l] += d[l];
    }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - m;
        acc[l] += d * d;
    }
    return lanes_total(acc);
}

/* Sum of (x - k): vsum2's first half. */
static double sum_dev(size_t n, const float *x, double k)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        double d[LANES];
        for (int l = 0; l < LANES; l++)
            d[l] = (double)x[i + l] - k;
        for (int l = 0; l < LANES; l++)
            acc[l] += d[l];
    }
    for (int l = 0; i < n; i++, l++)
        acc[l] += (double)x[i] - k;
    return lanes_total(acc);
}

/* Two passes over x (a plane, in cache after the first), each with the same
 * lane sums as one fused pass would make: the compiler vectorises a loop that
 * feeds one set of lanes, not one that feeds two. */
void VK(f32_vsum2)(size_t n, const float *x, double k, double *s1, double *s2)
{
    *s1 += sum_dev(n, x, k);
    *s2 += VK(f32_vsumsq_dev)(n, x, k);
}

double VK(f32_vdot)(size_t n, const float *x, double m, const float *y)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        double d[LANES];
        for (int l = 0; l < LANES; l++)
            d[l] = ((double)x[i + l] - m) * (double)y[i + l];
        for (int l = 0; l < LANES; l++)
            acc[l] += d[l];
    }
    for (int l = 0; i < n; i++, l++)
        acc[l] += ((double)x[i] - m) * (double)y[i];
    return lanes_total(acc);
}

void VK(f32_vbn_bwd)(size_t n, const float *x, const float *dy, float m, float k, float a, float b,
                     float *dx, int acc)
{
    if (acc)
        for (size_t i = 0; i < n; i++)
            dx[i] += k * ((dy[i] - a) - (x[i] - m) * b);
    else
        for (size_t i = 0; i < n; i++)
            dx[i] = k * ((dy[i] - a) - (x[i] - m) * b);
}

void VK(f32_sgd)(size_t n, float *w, const float *g, float *buf, const uint8_t *mask, float lr,
                 float mom, float wd, int nesterov, int first)
{
    for (size_t i = 0; i < n; i++) {
        float keep = mask ? (float)mask[i] : 1.0f;
        float gi = (g[i] + wd * w[i]) * keep;
        float b = (first ? gi : mom * buf[i] + gi) * keep;
        buf[i] = b;
        float step = nesterov ? gi + mom * b : b;
        w[i] = (w[i] - lr * step) * keep;
    }
}

void VK(f32_adamw)(size_t n, float *w, const float *g, float *m, float *v, const uint8_t *mask,
                   float lr, float b1, float b2, float eps, float wd, float c1, float c2)
{
    for (size_t i = 0; i < n; i++) {
        float keep = mask ? (float)mask[i] : 1.0f;
        float gi = g[i] * keep;
        float wi = w[i] - lr * wd * w[i];
        float mi = (b1 * m[i] + (1.0f - b1) * gi) * keep;
        float vi = (b2 * v[i] + (1.0f - b2) * gi * gi) * keep;
        m[i] = mi;
        v[i] = vi;
        float den = sqrtf(vi / c2) + eps;
        w[i] = (wi - lr * (mi / c1) / den) * keep;
    }
}

#undef VK
#undef LANES
