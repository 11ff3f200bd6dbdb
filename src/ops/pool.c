/* maxpool (argmax saved for backward), avgpool (PyTorch's padding rules) and
 * global average pool; parallel over (sample, channel) planes. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "kernels/vec.h"
#include "ops/ops.h"

static pare_status pool_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    const pare_attrs *a = &n->a;
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->stride[0] <= 0 || a->stride[1] <= 0)
        return pare_fail(PARE_EINVAL, "kernel %dx%d and stride %dx%d must be positive", a->kernel[0],
                         a->kernel[1], a->stride[0], a->stride[1]);
    if (a->dilation[0] <= 0 || a->dilation[1] <= 0)
        return pare_fail(PARE_EINVAL, "dilation %dx%d must be positive", a->dilation[0], a->dilation[1]);
    if (n->op != PARE_OP_MAXPOOL && (a->dilation[0] != 1 || a->dilation[1] != 1))
        return pare_fail(PARE_EUNSUPPORTED, "dilated average pooling is not supported");
    /* ONNX allows any padding smaller than the window (PyTorch: half of it);
     * then every window holds at least one input element. */
    for (int i = 0; i < 4; i++) {
        int span = a->dilation[i % 2] * (a->kernel[i % 2] - 1) + 1;
        if (a->pad[i] < 0 || a->pad[i] >= span)
            return pare_fail(PARE_EINVAL, "padding %d must be between 0 and the window's size less one (%d)",
                             a->pad[i], span - 1);
    }
    int oh = pare_window_out(in.h, a->kernel[0], a->stride[0], a->pad[0], a->pad[2], a->dilation[0],
                             a->ceil_mode);
    int ow = pare_window_out(in.w, a->kernel[1], a->stride[1], a->pad[1], a->pad[3], a->dilation[1],
                             a->ceil_mode);
    if (oh <= 0 || ow <= 0)
        return pare_fail(PARE_ESHAPE, "a %dx%d window does not fit a %dx%d input", a->kernel[0],
                         a->kernel[1], in.h, in.w);
    n->out = (pare_shape){in.c, oh, ow};
    return PARE_OK;
}

static size_t maxpool_aux(const pare_graph *g, const pare_node *n, int batch)
{
    (void)g;
    return pare_shape_size(n->out) * (size_t)batch * sizeof(int32_t);
}

static void maxpool_forward(const pare_op_ctx *c)
{
    pare_shape in = c->xs[0], out = c->node->out;
    const pare_attrs *a = &c->node->a;
    long planes = (long)c->n * in.c;
    int32_t *arg = c->aux;
    long ohw = (long)out.h * out.w;
    if (a->kernel[0] == 2 && a->kernel[1] == 2 && a->stride[0] == 2 && a->stride[1] == 2 &&
        a->dilation[0] == 1 && a->dilation[1] == 1 && a->pad[0] == 0 && a->pad[1] == 0 &&
        2 * out.h <= in.h && 2 * out.w <= in.w) {
        /* The common window: four loads and three selects an output, no bounds. */
        pare_f32_vmax2x2_fn *row = pare_vec()->f32_vmax2x2;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * ohw > 16384)
        for (long p = 0; p < planes; p++)
            for (int oh = 0; oh < out.h; oh++) {
                const float *r0 = c->x[0] + p * in.h * in.w + (long)(2 * oh) * in.w;
                row((size_t)out.w, r0, r0 + in.w, 2 * oh * in.w, in.w, c->y + p * ohw + (long)oh * out.w,
                    arg + p * ohw + (long)oh * out.w);
            }
        return;
    }
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * ohw > 16384)
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + p * in.h * in.w;
        float *y = c->y + p * ohw;
        int32_t *ai = arg + p * ohw;
        int dh = a->dilation[0], dw = a->dilation[1];
        for (int oh = 0; oh < out.h; oh++) {
            int hs = oh * a->stride[0] - a->pad[0];
            for (int ow = 0; ow < out.w; ow++) {
                int ws = ow * a->stride[1] - a->pad[1];
                /* The first element inside the input starts the search, so the
                 * argmax always points into the window. */
                int bi = -1;
                float best = -FLT_MAX;
                for (int i = 0; i < a->kernel[0]; i++) {
                    int h = hs + i * dh;
                    if (h < 0 || h >= in.h)
                        continue;
                    for (int j = 0; j < a->kernel[1]; j++) {
                        int w = ws + j * dw;
                        if (w < 0 || w >= in.w)
                            continue;
                        float v = x[h * in.w + w];
                        if (bi < 0 || v > best) {
                            best = v;
                            bi = h * in.w + w;
                        }
                    }
                }
                if (bi < 0) {
                    /* a dilated window that skips over the whole input */
                    y[oh * out.w + ow] = -FLT_MAX;
                    ai[oh * out.w + ow] = -1;
                } else {
                    y[oh * out.w + ow] = x[bi];
                    ai[oh * out.w + ow] = bi;
                }
            }
        }
    }
}

static void maxpool_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape in = c->xs[0], out = c->node->out;
    long planes = (long)c->n * in.c;
    long ihw = (long)in.h * in.w, ohw = (long)out.h * out.w;
    const int32_t *arg = c->aux;
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * ihw > 16384)
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + p * ihw;
        const float *dy = c->dy + p * ohw;
        const int32_t *ai = arg + p * ohw;
        if (!acc)
            memset(dx, 0, sizeof(float) * (size_t)ihw);
        for (long i = 0; i < ohw; i++)
            if (ai[i] >= 0)
                dx[ai[i]] += dy[i];
    }
}

/* The window of one output and its divisor, as PyTorch's avg_pool2d defines them. */
static void avg_window(const pare_attrs *a, pare_shape in, int oh, int ow, int *h0, int *h1, int *w0,
                       int *w1, float *div)
{
    int hs = oh * a->stride[0] - a->pad[0], ws = ow * a->stride[1] - a->pad[1];
    int he = hs + a->kernel[0], we = ws + a->kernel[1];
    if (he > in.h + a->pad[2])
        he = in.h + a->pad[2];
    if (we > in.w + a->pad[3])
        we = in.w + a->pad[3];
    int full = (he - hs) * (we - ws);
    if (hs < 0)
        hs = 0;
    if (ws < 0)
        ws = 0;
    if (he > in.h)
        he = in.h;
    if (we > in.w)
        we = in.w;
    *h0 = hs;
    *h1 = he;
    *w0 = ws;
    *w1 = we;
    int cnt = a->count_include_pad ? full : (he - hs) * (we - ws);
    *div = cnt > 0 ? (float)cnt : 1.0f;
}

static void avgpool_forward(const pare_op_ctx *c)
{
    pare_shape in = c->xs[0], out = c->node->out;
    const pare_attrs *a = &c->node->a;
    long planes = (long)c->n * in.c;
    long ohw = (long)out.h * out.w;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * ohw > 16384)
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + p * in.h * in.w;
        float *y = c->y + p * ohw;
        for (int oh = 0; oh < out.h; oh++)
            for (int ow = 0; ow < out.w; ow++) {
                int h0, h1, w0, w1;
                float div;
                avg_window(a, in, oh, ow, &h0, &h1, &w0, &w1, &div);
                float s = 0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        s += x[h * in.w + w];
                y[oh * out.w + ow] = s / div;
            }
    }
}

static void avgpool_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape in = c->xs[0], out = c->node->out;
    const pare_attrs *a = &c->node->a;
    long planes = (long)c->n * in.c;
    long ihw = (long)in.h * in.w, ohw = (long)out.h * out.w;
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * ihw > 16384)
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + p * ihw;
        const float *dy = c->dy + p * ohw;
        if (!acc)
            memset(dx, 0, sizeof(float) * (size_t)ihw);
        for (int oh = 0; oh < out.h; oh++)
            for (int ow = 0; ow < out.w; ow++) {
                int h0, h1, w0, w1;
                float div;
                avg_window(a, in, oh, ow, &h0, &h1, &w0, &w1, &div);
                float gv = dy[oh * out.w + ow] / div;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        dx[h * in.w + w] += gv;
            }
    }
}

const pare_op_def pare_op_maxpool = {
    .name = "maxpool",
    .min_in = 1,
    .max_in = 1,
    .infer = pool_infer,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .aux_bytes = maxpool_aux,
};

const pare_op_def pare_op_avgpool = {
    .name = "avgpool",
    .min_in = 1,
    .max_in = 1,
    .infer = pool_infer,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};

static pare_status gap_infer(const pare_graph *g, pare_node *n)
{
    n->out = (pare_shape){g->nodes[n->in[0]].out.c, 1, 1};
    return PARE_OK;
}

static void gap_forward(const pare_op_ctx *c)
{
    pare_shape in = c->xs[0];
    long planes = (long)c->n * in.c, hw = (long)in.h * in.w;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * hw > 16384)
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + p * hw;
        double s = 0;
        for (long i = 0; i < hw; i++)
            s += x[i];
        c->y[p] = (float)(s / (double)hw);
    }
}

static void gap_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    pare_shape in = c->xs[0];
    long planes = (long)c->n * in.c, hw = (long)in.h * in.w;
    int acc = c->dx_acc[0];
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * hw > 16384)
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + p * hw;
        float gv = c->dy[p] / (float)hw;
        if (acc)
            for (long i = 0; i < hw; i++)
                dx[i] += gv;
        else
            for (long i = 0; i < hw; i++)
                dx[i] = gv;
    }
}

const pare_op_def pare_op_global_avgpool = {
    .name = "global_avgpool",
    .min_in = 1,
    .max_in = 1,
    .infer = gap_infer,
    .forward = gap_forward,
    .backward = gap_backward,
};
