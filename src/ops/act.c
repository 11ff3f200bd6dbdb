/* Pointwise activations, split across threads in cache-line chunks: relu and
 * relu6 through the vec kernels; sigmoid, hardsigmoid, hardswish, leakyrelu and
 * clip (the ONNX imports) as plain loops, their gradients as PyTorch takes them. */
#include <math.h>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/vec.h"
#include "ops/ops.h"

/* Below this many values a parallel region costs more than it saves. */
#define PAR_MIN 32768

static pare_status same_infer(const pare_graph *g, pare_node *n)
{
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

static int nthreads(size_t total, int threads) { return total < PAR_MIN ? 1 : threads; }

static void chunk(size_t total, int nt, int t, size_t *lo, size_t *hi)
{
    long l, h;
    pare_split_range((long)((total + 15) / 16), nt, t, &l, &h);
    *lo = (size_t)l * 16;
    *hi = (size_t)h * 16 > total ? total : (size_t)h * 16;
    if (*lo > total)
        *lo = total;
}

static void relu_forward(const pare_op_ctx *c)
{
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    const pare_vec_kernels *vk = pare_vec();
    int six = c->node->op == PARE_OP_RELU6;
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        if (six)
            vk->f32_vrelu6(hi - lo, c->x[0] + lo, c->y + lo);
        else
            vk->f32_vrelu(hi - lo, c->x[0] + lo, c->y + lo);
    }
}

static void relu_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    const pare_vec_kernels *vk = pare_vec();
    int six = c->node->op == PARE_OP_RELU6;
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        if (six)
            vk->f32_vrelu6_bwd(hi - lo, c->y + lo, c->dy + lo, c->dx[0] + lo, c->dx_acc[0]);
        else
            vk->f32_vrelu_bwd(hi - lo, c->y + lo, c->dy + lo, c->dx[0] + lo, c->dx_acc[0]);
    }
}

const pare_op_def pare_op_relu = {
    .name = "relu",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .backward_needs_y = 1,
};

const pare_op_def pare_op_relu6 = {
    .name = "relu6",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .backward_needs_y = 1,
};

/* ---- the ONNX activations ------------------------------------------------- */

/* e^-x overflows for x < -88; the two branches never form inf / inf. */
static inline float sigmoid_of(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void point_forward_range(const pare_node *n, const float *x, float *y, size_t lo, size_t hi)
{
    const pare_attrs *a = &n->a;
    switch (n->op) {
    case PARE_OP_SIGMOID:
        for (size_t i = lo; i < hi; i++)
            y[i] = sigmoid_of(x[i]);
        break;
    case PARE_OP_HARDSIGMOID:
        for (size_t i = lo; i < hi; i++) {
            float v = a->alpha * x[i] + a->beta;
            y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        break;
    case PARE_OP_HARDSWISH:
        for (size_t i = lo; i < hi; i++) {
            float v = x[i] / 6.0f + 0.5f;
            y[i] = x[i] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
        }
        break;
    case PARE_OP_LEAKYRELU:
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] >= 0.0f ? x[i] : a->alpha * x[i];
        break;
    case PARE_OP_CLIP:
        /* NaN passes through, as in PyTorch's clamp. */
        for (size_t i = lo; i < hi; i++)
            y[i] = x[i] < a->alpha ? a->alpha : x[i] > a->beta ? a->beta : x[i];
        break;
    default:
        break;
    }
}

/* The derivative at a kink is PyTorch's: hardsigmoid passes only strictly inside
 * (0, 1), hardswish uses its middle piece on [-3, 3], leakyrelu its slope at 0,
 * clip passes on the closed range [min, max]. */
static void point_backward_range(const pare_op_ctx *c, size_t lo, size_t hi)
{
    const pare_attrs *a = &c->node->a;
    const float *x = c->x[0], *y = c->y, *dy = c->dy;
    float *dx = c->dx[0];
    int acc = c->dx_acc[0];
    for (size_t i = lo; i < hi; i++) {
        float g;
        switch (c->node->op) {
        case PARE_OP_SIGMOID:
            g = dy[i] * y[i] * (1.0f - y[i]);
            break;
        case PARE_OP_HARDSIGMOID: {
            float v = a->alpha * x[i] + a->beta;
            g = v > 0.0f && v < 1.0f ? dy[i] * a->alpha : 0.0f;
            break;
        }
        case PARE_OP_HARDSWISH:
            g = x[i] < -3.0f ? 0.0f : x[i] <= 3.0f ? dy[i] * (x[i] / 3.0f + 0.5f) : dy[i];
            break;
        case PARE_OP_LEAKYRELU:
            g = x[i] > 0.0f ? dy[i] : dy[i] * a->alpha;
            break;
        case PARE_OP_CLIP:
            g = x[i] >= a->alpha && x[i] <= a->beta ? dy[i] : 0.0f;
            break;
        default:
            g = 0.0f;
        }
        dx[i] = acc ? dx[i] + g : g;
    }
}

static void point_forward(const pare_op_ctx *c)
{
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        point_forward_range(c->node, c->x[0], c->y, lo, hi);
    }
}

static void point_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        point_backward_range(c, lo, hi);
    }
}

static pare_status hardsigmoid_infer(const pare_graph *g, pare_node *n)
{
    if (!isfinite(n->a.alpha) || !isfinite(n->a.beta))
        return pare_fail(PARE_EINVAL, "alpha %g and beta %g must be finite", (double)n->a.alpha,
                         (double)n->a.beta);
    return same_infer(g, n);
}

static pare_status leakyrelu_infer(const pare_graph *g, pare_node *n)
{
    if (!isfinite(n->a.alpha))
        return pare_fail(PARE_EINVAL, "slope alpha %g must be finite", (double)n->a.alpha);
    return same_infer(g, n);
}

/* Infinite bounds are fine (ONNX's Clip with one bound given); NaN ones are not. */
static pare_status clip_infer(const pare_graph *g, pare_node *n)
{
    if (isnan(n->a.alpha) || isnan(n->a.beta) || n->a.alpha > n->a.beta)
        return pare_fail(PARE_EINVAL, "bounds [%g, %g] must be numbers with min <= max",
                         (double)n->a.alpha, (double)n->a.beta);
    return same_infer(g, n);
}

const pare_op_def pare_op_sigmoid = {
    .name = "sigmoid",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = point_forward,
    .backward = point_backward,
    .backward_needs_y = 1,
};

const pare_op_def pare_op_hardsigmoid = {
    .name = "hardsigmoid",
    .min_in = 1,
    .max_in = 1,
    .infer = hardsigmoid_infer,
    .forward = point_forward,
    .backward = point_backward,
    .backward_needs_x = 1,
};

const pare_op_def pare_op_hardswish = {
    .name = "hardswish",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = point_forward,
    .backward = point_backward,
    .backward_needs_x = 1,
};

const pare_op_def pare_op_leakyrelu = {
    .name = "leakyrelu",
    .min_in = 1,
    .max_in = 1,
    .infer = leakyrelu_infer,
    .forward = point_forward,
    .backward = point_backward,
    .backward_needs_x = 1,
};

const pare_op_def pare_op_clip = {
    .name = "clip",
    .min_in = 1,
    .max_in = 1,
    .infer = clip_infer,
    .forward = point_forward,
    .backward = point_backward,
    .backward_needs_x = 1,
};
