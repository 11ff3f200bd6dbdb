/* Ops that ONNX models use to move values around a sample or to make them:
 * softmax, channel shuffle, pad, const, reshape and transpose. Each works on
 * the per-sample (c, h, w) box; threads split samples or planes, so results do
 * not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/vec.h"
#include "ops/ops.h"

/* The largest per-sample value count a shape op makes, as for the input. */
#define MAX_VALUES (1 << 30)

/* dx (+)= dy over len floats. */
static void copy_grad(const pare_op_ctx *c, size_t len)
{
    if (!c->dx[0])
        return;
    if (c->dx_acc[0])
        pare_vec()->f32_vacc(len, c->dy, c->dx[0]);
    else
        memcpy(c->dx[0], c->dy, len * sizeof(float));
}

/* A per-sample shape from attributes: every dimension at least 1, the whole
 * no larger than MAX_VALUES (checked in double, so huge values cannot wrap). */
static pare_status check_shape(const int *s, const char *what)
{
    if (s[0] <= 0 || s[1] <= 0 || s[2] <= 0)
        return pare_fail(PARE_EINVAL, "%s %dx%dx%d must be positive in every dimension", what, s[0],
                         s[1], s[2]);
    if ((double)s[0] * s[1] * s[2] > MAX_VALUES)
        return pare_fail(PARE_ESHAPE, "%s %dx%dx%d has more than %d values", what, s[0], s[1], s[2],
                         MAX_VALUES);
    return PARE_OK;
}

/* ---- softmax -------------------------------------------------------------- */

/* The softmax runs over rows of len values spaced inner apart; rows start at
 * every (outer, inner) position. Mode 1 flattens the axis with every later one. */
static void softmax_geometry(pare_shape s, const pare_attrs *a, size_t *outer, size_t *len,
                             size_t *inner)
{
    size_t d[3] = {(size_t)s.c, (size_t)s.h, (size_t)s.w};
    *outer = 1;
    *len = d[a->axis];
    *inner = 1;
    for (int i = 0; i < a->axis; i++)
        *outer *= d[i];
    for (int i = a->axis + 1; i < 3; i++) {
        if (a->mode == 1)
            *len *= d[i];
        else
            *inner *= d[i];
    }
}

static pare_status softmax_infer(const pare_graph *g, pare_node *n)
{
    if (n->a.axis < 0 || n->a.axis > 2)
        return pare_fail(PARE_EINVAL, "axis %d must be 0 (channels), 1 (height) or 2 (width)",
                         n->a.axis);
    if (n->a.mode != 0 && n->a.mode != 1)
        return pare_fail(PARE_EINVAL,
                         "mode %d must be 0 (along the axis) or 1 (the axis and every later one)",
                         n->a.mode);
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

/* The maximum is subtracted so no exponent overflows; the sum runs in double. */
static void softmax_forward(const pare_op_ctx *c)
{
    size_t outer, len, inner;
    softmax_geometry(c->node->out, &c->node->a, &outer, &len, &inner);
    long rows = (long)c->n * (long)(outer * inner);
#pragma omp parallel for num_threads(c->threads) schedule(static) if (rows * (long)len > 16384)
    for (long r = 0; r < rows; r++) {
        size_t o = (size_t)r / inner, j = (size_t)r % inner;
        const float *x = c->x[0] + o * len * inner + j;
        float *y = c->y + o * len * inner + j;
        float m = x[0];
        for (size_t i = 1; i < len; i++)
            if (x[i * inner] > m)
                m = x[i * inner];
        double sum = 0;
        for (size_t i = 0; i < len; i++) {
            y[i * inner] = expf(x[i * inner] - m);
            sum += y[i * inner];
        }
        for (size_t i = 0; i < len; i++)
            y[i * inner] = (float)((double)y[i * inner] / sum);
    }
}

/* dx = y (dy - sum(dy y)) along each row. */
static void softmax_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    size_t outer, len, inner;
    softmax_geometry(c->node->out, &c->node->a, &outer, &len, &inner);
    long rows = (long)c->n * (long)(outer * inner);
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (rows * (long)len > 16384)
    for (long r = 0; r < rows; r++) {
        size_t base = (size_t)r / inner * len * inner + (size_t)r % inner;
        const float *y = c->y + base, *dy = c->dy + base;
        float *dx = c->dx[0] + base;
        double dot = 0;
        for (size_t i = 0; i < len; i++)
            dot += (double)dy[i * inner] * (double)y[i * inner];
        for (size_t i = 0; i < len; i++) {
            float g = (float)((double)y[i * inner] * ((double)dy[i * inner] - dot));
            dx[i * inner] = acc ? dx[i * inner] + g : g;
        }
    }
}

const pare_op_def pare_op_softmax = {
    .name = "softmax",
    .min_in = 1,
    .max_in = 1,
    .infer = softmax_infer,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .backward_needs_y = 1,
};

/* ---- channel shuffle ------------------------------------------------------ */

static pare_status shuffle_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    if (n->a.groups <= 0 || in.c % n->a.groups != 0)
        return pare_fail(PARE_EINVAL, "%d groups must be positive and divide the %d channels",
                         n->a.groups, in.c);
    n->out = in;
    return PARE_OK;
}

/* The input channel that output channel oc reads: oc = j g + i reads i k + j. */
static int shuffle_src(int oc, int g, int k) { return (oc % g) * k + oc / g; }

static void shuffle_forward(const pare_op_ctx *c)
{
    pare_shape s = c->node->out;
    size_t hw = (size_t)s.h * (size_t)s.w;
    int g = c->node->a.groups, k = s.c / g;
    long planes = (long)c->n * s.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)hw > 32768)
    for (long p = 0; p < planes; p++) {
        long b = p / s.c;
        int oc = (int)(p % s.c);
        const float *x = c->x[0] + ((size_t)b * s.c + (size_t)shuffle_src(oc, g, k)) * hw;
        memcpy(c->y + (size_t)p * hw, x, hw * sizeof(float));
    }
}

static void shuffle_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape s = c->node->out;
    size_t hw = (size_t)s.h * (size_t)s.w;
    int g = c->node->a.groups, k = s.c / g, acc = c->dx_acc[0];
    long planes = (long)c->n * s.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)hw > 32768)
    for (long p = 0; p < planes; p++) {
        long b = p / s.c;
        int oc = (int)(p % s.c);
        const float *dy = c->dy + (size_t)p * hw;
        float *dx = c->dx[0] + ((size_t)b * s.c + (size_t)shuffle_src(oc, g, k)) * hw;
        if (acc)
            for (size_t i = 0; i < hw; i++)
                dx[i] += dy[i];
        else
            memcpy(dx, dy, hw * sizeof(float));
    }
}

const pare_op_def pare_op_channel_shuffle = {
    .name = "channel_shuffle",
    .min_in = 1,
    .max_in = 1,
    .infer = shuffle_infer,
    .forward = shuffle_forward,
    .backward = shuffle_backward,
};

/* ---- pad ------------------------------------------------------------------ */

enum { PAD_CONSTANT = 0, PAD_REFLECT = 1, PAD_EDGE = 2 };

static pare_status pad_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    const int *p = n->a.pad;
    if (p[0] < 0 || p[1] < 0 || p[2] < 0 || p[3] < 0)
        return pare_fail(PARE_EINVAL, "pads %d, %d, %d, %d (top, left, bottom, right) must be >= 0",
                         p[0], p[1], p[2], p[3]);
    if (n->a.mode < PAD_CONSTANT || n->a.mode > PAD_EDGE)
        return pare_fail(PARE_EINVAL, "mode %d must be 0 (constant), 1 (reflect) or 2 (edge)",
                         n->a.mode);
    /* numpy's reflect mirrors about the edge without repeating it, so it
     * reaches at most size - 1 values in. */
    if (n->a.mode == PAD_REFLECT && (p[0] >= in.h || p[2] >= in.h || p[1] >= in.w || p[3] >= in.w))
        return pare_fail(PARE_EINVAL,
                         "reflect pads %d, %d, %d, %d must each be smaller than the %dx%d input "
                         "they mirror",
                         p[0], p[1], p[2], p[3], in.h, in.w);
    long h = (long)in.h + p[0] + p[2], w = (long)in.w + p[1] + p[3];
    if (h > 1 << 20 || w > 1 << 20 || (double)in.c * (double)h * (double)w > MAX_VALUES)
        return pare_fail(PARE_ESHAPE, "padding %dx%dx%d to %ldx%ld is too large", in.c, in.h, in.w,
                         h, w);
    n->out = (pare_shape){in.c, (int)h, (int)w};
    return PARE_OK;
}

/* The input index an output index o reads along one axis of n values padded
 * by lo in front, or -1 for the constant. */
static int pad_src(int o, int lo, int n, int mode)
{
    int i = o - lo;
    if (i >= 0 && i < n)
        return i;
    if (mode == PAD_CONSTANT)
        return -1;
    if (mode == PAD_EDGE)
        return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

static void pad_forward(const pare_op_ctx *c)
{
    pare_shape in = c->xs[0], out = c->node->out;
    const pare_attrs *a = &c->node->a;
    size_t ihw = (size_t)in.h * (size_t)in.w, ohw = (size_t)out.h * (size_t)out.w;
    long planes = (long)c->n * in.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)ohw > 32768)
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + (size_t)p * ihw;
        float *y = c->y + (size_t)p * ohw;
        for (int oy = 0; oy < out.h; oy++) {
            float *row = y + (size_t)oy * out.w;
            int sy = pad_src(oy, a->pad[0], in.h, a->mode);
            if (sy < 0) {
                for (int ox = 0; ox < out.w; ox++)
                    row[ox] = a->alpha;
                continue;
            }
            const float *src = x + (size_t)sy * in.w;
            memcpy(row + a->pad[1], src, (size_t)in.w * sizeof(float));
            for (int ox = 0; ox < a->pad[1]; ox++) {
                int sx = pad_src(ox, a->pad[1], in.w, a->mode);
                row[ox] = sx < 0 ? a->alpha : src[sx];
            }
            for (int ox = a->pad[1] + in.w; ox < out.w; ox++) {
                int sx = pad_src(ox, a->pad[1], in.w, a->mode);
                row[ox] = sx < 0 ? a->alpha : src[sx];
            }
        }
    }
}

/* Each input value gets the dy of every output that read it (the reflect and
 * edge modes read some values several times). */
static void pad_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape in = c->xs[0], out = c->node->out;
    const pare_attrs *a = &c->node->a;
    size_t ihw = (size_t)in.h * (size_t)in.w, ohw = (size_t)out.h * (size_t)out.w;
    long planes = (long)c->n * in.c;
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)ohw > 32768)
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + (size_t)p * ihw;
        const float *dy = c->dy + (size_t)p * ohw;
        if (!acc)
            memset(dx, 0, ihw * sizeof(float));
        for (int oy = 0; oy < out.h; oy++) {
            int sy = pad_src(oy, a->pad[0], in.h, a->mode);
            if (sy < 0)
                continue;
            for (int ox = 0; ox < out.w; ox++) {
                int sx = pad_src(ox, a->pad[1], in.w, a->mode);
                if (sx >= 0)
                    dx[(size_t)sy * in.w + (size_t)sx] += dy[(size_t)oy * out.w + (size_t)ox];
            }
        }
    }
}

const pare_op_def pare_op_pad = {
    .name = "pad",
    .min_in = 1,
    .max_in = 1,
    .infer = pad_infer,
    .forward = pad_forward,
    .backward = pad_backward,
};

/* ---- const ---------------------------------------------------------------- */

static pare_status const_infer(const pare_graph *g, pare_node *n)
{
    (void)g;
    pare_status s = check_shape(n->a.shape, "shape");
    if (s != PARE_OK)
        return s;
    n->out = (pare_shape){n->a.shape[0], n->a.shape[1], n->a.shape[2]};
    return PARE_OK;
}

/* A trainable weight, so fine-tuning may move it; never a prune target
 * (compress/prune.c takes conv2d and linear weights only). */
static int const_params(const pare_graph *g, const pare_node *n, pare_param_spec *s)
{
    (void)g;
    const int *d = n->a.shape;
    s[0] = (pare_param_spec){PARE_ROLE_WEIGHT, 3, {d[0], d[1], d[2], 0}, 1};
    return 1;
}

static void const_forward(const pare_op_ctx *c)
{
    size_t per = pare_shape_size(c->node->out);
    for (long b = 0; b < c->n; b++)
        memcpy(c->y + (size_t)b * per, c->w[0], per * sizeof(float));
}

/* dw = sum over the batch of dy, in double and in sample order. */
static void const_backward(const pare_op_ctx *c)
{
    if (!c->dw[0])
        return;
    size_t per = pare_shape_size(c->node->out);
    float *dw = c->dw[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (per * (size_t)c->n > 32768)
    for (long i = 0; i < (long)per; i++) {
        double s = 0;
        for (long b = 0; b < c->n; b++)
            s += c->dy[(size_t)b * per + (size_t)i];
        dw[i] = (float)s;
    }
}

const pare_op_def pare_op_const = {
    .name = "const",
    .min_in = 0,
    .max_in = 0,
    .infer = const_infer,
    .params = const_params,
    .forward = const_forward,
    .backward = const_backward,
};

/* ---- reshape -------------------------------------------------------------- */

static pare_status reshape_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    pare_status s = check_shape(n->a.shape, "shape");
    if (s != PARE_OK)
        return s;
    const int *t = n->a.shape;
    if ((size_t)t[0] * (size_t)t[1] * (size_t)t[2] != pare_shape_size(in))
        return pare_fail(PARE_ESHAPE, "cannot read %dx%dx%d (%zu values) as %dx%dx%d", in.c, in.h,
                         in.w, pare_shape_size(in), t[0], t[1], t[2]);
    n->out = (pare_shape){t[0], t[1], t[2]};
    return PARE_OK;
}

/* The executor lets y share x's bytes (nothing to do); a caller with its own
 * output buffer gets the values copied. */
static void reshape_forward(const pare_op_ctx *c)
{
    if (c->y != c->x[0])
        memcpy(c->y, c->x[0], (size_t)c->n * pare_shape_size(c->node->out) * sizeof(float));
}

/* Runs only when the input has other consumers (else its gradient buffer is ours). */
static void reshape_backward(const pare_op_ctx *c)
{
    copy_grad(c, (size_t)c->n * pare_shape_size(c->node->out));
}

const pare_op_def pare_op_reshape = {
    .name = "reshape",
    .min_in = 1,
    .max_in = 1,
    .infer = reshape_infer,
    .forward = reshape_forward,
    .backward = reshape_backward,
    .alias_input = 1,
};

/* ---- transpose ------------------------------------------------------------ */

static pare_status transpose_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    const int *p = n->a.perm;
    int seen = 0;
    for (int i = 0; i < 3; i++)
        if (p[i] >= 0 && p[i] <= 2)
            seen |= 1 << p[i];
    if (seen != 7)
        return pare_fail(PARE_EINVAL, "perm %d, %d, %d must be a permutation of 0, 1, 2 (c, h, w)",
                         p[0], p[1], p[2]);
    int d[3] = {in.c, in.h, in.w};
    n->out = (pare_shape){d[p[0]], d[p[1]], d[p[2]]};
    return PARE_OK;
}

/* Offsets in the input of one step along each output axis. */
static void transpose_strides(pare_shape in, const int *perm, size_t *st)
{
    size_t s[3] = {(size_t)in.h * (size_t)in.w, (size_t)in.w, 1};
    for (int i = 0; i < 3; i++)
        st[i] = s[perm[i]];
}

static void transpose_forward(const pare_op_ctx *c)
{
    pare_shape in = c->xs[0], out = c->node->out;
    size_t st[3], per = pare_shape_size(out);
    transpose_strides(in, c->node->a.perm, st);
    long planes = (long)c->n * out.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if ((size_t)c->n * per > 32768)
    for (long p = 0; p < planes; p++) {
        long b = p / out.c;
        int o0 = (int)(p % out.c);
        const float *x = c->x[0] + (size_t)b * per + (size_t)o0 * st[0];
        float *y = c->y + (size_t)p * out.h * out.w;
        for (int o1 = 0; o1 < out.h; o1++)
            for (int o2 = 0; o2 < out.w; o2++)
                y[(size_t)o1 * out.w + (size_t)o2] = x[(size_t)o1 * st[1] + (size_t)o2 * st[2]];
    }
}

/* A permutation: every input value gets exactly one output's dy. */
static void transpose_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape in = c->xs[0], out = c->node->out;
    size_t st[3], per = pare_shape_size(out);
    transpose_strides(in, c->node->a.perm, st);
    long planes = (long)c->n * out.c;
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if ((size_t)c->n * per > 32768)
    for (long p = 0; p < planes; p++) {
        long b = p / out.c;
        int o0 = (int)(p % out.c);
        float *dx = c->dx[0] + (size_t)b * per + (size_t)o0 * st[0];
        const float *dy = c->dy + (size_t)p * out.h * out.w;
        for (int o1 = 0; o1 < out.h; o1++)
            for (int o2 = 0; o2 < out.w; o2++) {
                float *d = dx + (size_t)o1 * st[1] + (size_t)o2 * st[2];
                float g = dy[(size_t)o1 * out.w + (size_t)o2];
                *d = acc ? *d + g : g;
            }
    }
}

const pare_op_def pare_op_transpose = {
    .name = "transpose",
    .min_in = 1,
    .max_in = 1,
    .infer = transpose_infer,
    .forward = transpose_forward,
    .backward = transpose_backward,
};
