/* The vec kernels, written once in portable C and compiled per ISA (vec_ref.c
 * without vectorisation as the oracle, vec_avx2.c and vec_avx512.c with those
 * flags). ISO C mode keeps -ffp-contract=off, and reductions name their lane
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
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[i + l] - m;
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - m;
        acc[l] += d * d;
    }
    return lanes_total(acc);
}

void VK(f32_vsum2)(size_t n, const float *x, double k, double *s1, double *s2)
{
    double a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[i + l] - k;
            a[l] += d;
            b[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - k;
        a[l] += d;
        b[l] += d * d;
    }
    *s1 += lanes_total(a);
    *s2 += lanes_total(b);
}

double VK(f32_vdot)(size_t n, const float *x, double m, const float *y)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += ((double)x[i + l] - m) * (double)y[i + l];
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
