/* The vec kernel family: signatures, declarations (from vec.inc) and dispatch. */
#ifndef PARE_KERNELS_VEC_H
#define PARE_KERNELS_VEC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* y = max(x, 0) (NaN stays NaN), in place allowed. */
typedef void pare_f32_vrelu_fn(size_t n, const float *x, float *y);
/* y = min(max(x, 0), 6). */
typedef void pare_f32_vrelu6_fn(size_t n, const float *x, float *y);
/* dx (+)= y > 0 ? dy : 0; acc selects add. */
typedef void pare_f32_vrelu_bwd_fn(size_t n, const float *y, const float *dy, float *dx, int acc);
/* dx (+)= 0 < y < 6 ? dy : 0. */
typedef void pare_f32_vrelu6_bwd_fn(size_t n, const float *y, const float *dy, float *dx, int acc);
/* One output row of a 2x2, stride-2 max pool: y[i] = the largest of r0[2i],
 * r0[2i+1], r1[2i], r1[2i+1] (in that order, the first wins ties and a NaN
 * wins only first), k[i] = its index: k0 + 2i, +1, +w or +w+1. */
typedef void pare_f32_vmax2x2_fn(size_t n, const float *r0, const float *r1, int32_t k0, int32_t w,
                                 float *y, int32_t *k);
/* z = x + y. */
typedef void pare_f32_vadd_fn(size_t n, const float *x, const float *y, float *z);
/* y += x. */
typedef void pare_f32_vacc_fn(size_t n, const float *x, float *y);
/* y = x * a + b. */
typedef void pare_f32_vaffine_fn(size_t n, const float *x, float a, float b, float *y);
/* Sum of x, in double, 8 lanes combined in a fixed order. */
typedef double pare_f32_vsum_fn(size_t n, const float *x);
/* Sum of (x - m)^2, in double. */
typedef double pare_f32_vsumsq_dev_fn(size_t n, const float *x, double m);
/* One pass: *s1 += sum of (x - k), *s2 += sum of (x - k)^2, in double (k, a
 * value near the mean such as the first element, keeps the variance exact enough). */
typedef void pare_f32_vsum2_fn(size_t n, const float *x, double k, double *s1, double *s2);
/* Sum of (x - m) * y, in double. */
typedef double pare_f32_vdot_fn(size_t n, const float *x, double m, const float *y);
/* Batch-norm input gradient: dx (+)= k * (dy - a - (x - m) * b), a per-channel form. */
typedef void pare_f32_vbn_bwd_fn(size_t n, const float *x, const float *dy, float m, float k,
                                 float a, float b, float *dx, int acc);
/* SGD with momentum (PyTorch's form): g' = mask ? g + wd*w : 0; buf = mask ?
 * (first ? g' : mom*buf + g') : 0; step = nesterov ? g' + mom*buf : buf;
 * w = mask ? w - lr*step : 0. mask may be NULL. */
typedef void pare_f32_sgd_fn(size_t n, float *w, const float *g, float *buf, const uint8_t *mask,
                             float lr, float mom, float wd, int nesterov, int first);
/* AdamW: w -= lr*wd*w; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * w -= lr * (m / c1) / (sqrt(v / c2) + eps); masked entries stay 0 with m = v = 0. */
typedef void pare_f32_adamw_fn(size_t n, float *w, const float *g, float *m, float *v,
                               const uint8_t *mask, float lr, float b1, float b2, float eps,
                               float wd, float c1, float c2);

#define PARE_KERNEL(isa, kind, mr, nr) pare_##kind##_fn pare_##kind##_##mr##x##nr##__##isa;
#include "kernels/vec.inc"
#undef PARE_KERNEL

typedef struct pare_vec_kernels {
#define PARE_KERNEL(isa, kind, mr, nr) pare_##kind##_fn *kind;
    PARE_VEC_KINDS_OF(ref, 1)
#undef PARE_KERNEL
} pare_vec_kernels;

/* The kernels for the active ISA level (pare_isa_active()). */
const pare_vec_kernels *pare_vec(void);
/* The kernels of exactly one level, or NULL when this build or CPU lacks it. */
const pare_vec_kernels *pare_vec_at(int isa_level);

#endif
