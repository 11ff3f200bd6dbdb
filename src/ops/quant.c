/* Fake quantization: the activation quantizer of quantization-aware training
 * and of a quantized model's activation scales, with the straight-through
 * gradient. Rounding is half to even (rintf in the default mode), as ONNX's
 * QuantizeLinear, so pare, its int8 engine and ONNX Runtime agree. */
#include <math.h>

#include "core/error.h"
#include "core/threads.h"
#include "ops/ops.h"

#define PAR_MIN 32768

static pare_status fakequant_infer(const pare_graph *g, pare_node *n)
{
    const pare_attrs *a = &n->a;
    if (a->mode < 1 || a->mode > 8)
        return pare_fail(PARE_EINVAL, "fake quantization to %d bits: bits must be 1 to 8", a->mode);
    if (!isfinite(a->alpha) || !(a->alpha > 0.0f))
        return pare_fail(PARE_EINVAL, "fake quantization scale %g must be a positive number",
                         (double)a->alpha);
    float qmax = (float)((1 << a->mode) - 1);
    if (!(a->beta >= 0.0f && a->beta <= qmax) || a->beta != floorf(a->beta))
        return pare_fail(PARE_EINVAL,
                         "fake quantization zero point %g must be an integer in [0, %g] for %d bits",
                         (double)a->beta, (double)qmax, a->mode);
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

/* The code of x before clamping, as a float (exact: |x / s| is rounded to an
 * integer, and one past the range is enough to know it clamps). */
static inline float code_of(float x, float s, float zp, float qmax)
{
    float q = rintf(x / s);
    /* NaN stays NaN through the comparisons below and is clamped to nothing:
     * it propagates, as a float op would. */
    if (q < -1.0f - zp)
        q = -1.0f - zp;
    if (q > qmax + 1.0f - zp)
        q = qmax + 1.0f - zp;
    return q + zp;
}

static void range_of(const pare_op_ctx *c, int nt, size_t total, size_t *lo, size_t *hi)
{
    long l, h;
    pare_split_range((long)((total + 15) / 16), nt, pare_thread_id(), &l, &h);
    *lo = (size_t)l * 16 > total ? total : (size_t)l * 16;
    *hi = (size_t)h * 16 > total ? total : (size_t)h * 16;
    (void)c;
}

static void fakequant_forward(const pare_op_ctx *c)
{
    const pare_attrs *a = &c->node->a;
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    float s = a->alpha, zp = a->beta, qmax = (float)((1 << a->mode) - 1);
    int nt = total < PAR_MIN ? 1 : c->threads;
    const float *x = c->x[0];
    float *y = c->y;
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        range_of(c, nt, total, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            float q = code_of(x[i], s, zp, qmax);
            q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
            y[i] = (q - zp) * s;
        }
    }
}

/* Straight-through: the gradient passes where the code was inside [0, qmax]
 * before clamping, and is 0 where the input was clamped. */
static void fakequant_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    const pare_attrs *a = &c->node->a;
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    float s = a->alpha, zp = a->beta, qmax = (float)((1 << a->mode) - 1);
    int nt = total < PAR_MIN ? 1 : c->threads;
    const float *x = c->x[0], *dy = c->dy;
    float *dx = c->dx[0];
    int acc = c->dx_acc[0];
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        range_of(c, nt, total, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            float q = code_of(x[i], s, zp, qmax);
            float gi = q >= 0.0f && q <= qmax ? dy[i] : 0.0f;
            dx[i] = acc ? dx[i] + gi : gi;
        }
    }
}

const pare_op_def pare_op_fakequant = {
    .name = "fakequant",
    .min_in = 1,
    .max_in = 1,
    .infer = fakequant_infer,
    .forward = fakequant_forward,
    .backward = fakequant_backward,
    .backward_needs_x = 1,
};
