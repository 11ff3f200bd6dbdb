/* conv2d: im2col + GEMM (pointwise convs use the input as it is), a direct
 * loop for depthwise-style convs (one input channel per group); backward by
 * the same lowering, with per-thread weight-gradient partials summed in a
 * fixed order. */
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/vec.h"
#include "ops/ops.h"

typedef struct geom {
    int C, H, W, O, OH, OW;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int groups, Cg, Og, K;
    long HW, OHW;
    int pointwise, depthwise;
} geom;

static geom conv_geom(const pare_node *n, pare_shape in)
{
    geom q;
    const pare_attrs *a = &n->a;
    q.C = in.c;
    q.H = in.h;
    q.W = in.w;
    q.O = a->out_channels;
    q.OH = n->out.h;
    q.OW = n->out.w;
    q.kh = a->kernel[0];
    q.kw = a->kernel[1];
    q.sh = a->stride[0];
    q.sw = a->stride[1];
    q.dh = a->dilation[0];
    q.dw = a->dilation[1];
    q.pt = a->pad[0];
    q.pl = a->pad[1];
    q.groups = a->groups;
    q.Cg = q.C / q.groups;
    q.Og = q.O / q.groups;
    q.K = q.Cg * q.kh * q.kw;
    q.HW = (long)q.H * q.W;
    q.OHW = (long)q.OH * q.OW;
    q.pointwise = q.kh == 1 && q.kw == 1 && q.sh == 1 && q.sw == 1 && q.pt == 0 && q.pl == 0 &&
                  a->pad[2] == 0 && a->pad[3] == 0;
    q.depthwise = q.Cg == 1;
    return q;
}

static pare_status conv_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    const pare_attrs *a = &n->a;
    if (a->out_channels <= 0)
        return pare_fail(PARE_EINVAL, "needs a positive number of output channels, got %d", a->out_channels);
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0 || a->stride[0] <= 0 || a->stride[1] <= 0 ||
        a->dilation[0] <= 0 || a->dilation[1] <= 0)
        return pare_fail(PARE_EINVAL, "kernel %dx%d, stride %dx%d and dilation %dx%d must be positive",
                         a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->dilation[0], a->dilation[1]);
    for (int i = 0; i < 4; i++)
        if (a->pad[i] < 0 || a->pad[i] > 1 << 15)
            return pare_fail(PARE_EINVAL, "padding %d is out of range", a->pad[i]);
    if (a->kernel[0] > 1 << 12 || a->kernel[1] > 1 << 12 || a->out_channels > 1 << 20)
        return pare_fail(PARE_EINVAL, "kernel or channel count is too large");
    if (a->groups <= 0 || in.c % a->groups != 0 || a->out_channels % a->groups != 0)
        return pare_fail(PARE_ESHAPE, "groups %d must divide the %d input and %d output channels",
                         a->groups, in.c, a->out_channels);
    int oh = pare_window_out(in.h, a->kernel[0], a->stride[0], a->pad[0], a->pad[2], a->dilation[0], 0);
    int ow = pare_window_out(in.w, a->kernel[1], a->stride[1], a->pad[1], a->pad[3], a->dilation[1], 0);
    if (oh <= 0 || ow <= 0)
        return pare_fail(PARE_ESHAPE, "a %dx%d kernel (dilation %d) does not fit a %dx%d input with this padding",
                         a->kernel[0], a->kernel[1], a->dilation[0], in.h, in.w);
    double col = (double)(in.c / a->groups) * a->kernel[0] * a->kernel[1] * oh * ow;
    if (col > (double)(1u << 30) || (double)a->out_channels * oh * ow > (double)(1u << 30))
        return pare_fail(PARE_ESHAPE, "the layer is too large (%g values to lower)", col);
    n->out.c = a->out_channels;
    n->out.h = oh;
    n->out.w = ow;
    return PARE_OK;
}

static int conv_params(const pare_graph *g, const pare_node *n, pare_param_spec *s)
{
    pare_shape in = g->nodes[n->in[0]].out;
    const pare_attrs *a = &n->a;
    s[0] = (pare_param_spec){PARE_ROLE_WEIGHT, 4, {a->out_channels, in.c / a->groups, a->kernel[0], a->kernel[1]}, 1};
    if (!a->bias)
        return 1;
    s[1] = (pare_param_spec){PARE_ROLE_BIAS, 1, {a->out_channels, 0, 0, 0}, 1};
    return 2;
}

static void conv_init(pare_graph *g, int node, uint64_t seed)
{
    const pare_node *n = &g->nodes[node];
    pare_tensor *w = g->params[n->param[0]].t;
    int fan_in = w->dims[1] * w->dims[2] * w->dims[3];
    float bound = 1.0f / sqrtf((float)fan_in);
    pare_init_uniform(w->data, w->n, bound, seed, node, PARE_ROLE_WEIGHT);
    if (n->n_param > 1) {
        pare_tensor *b = g->params[n->param[1]].t;
        pare_init_uniform(b->data, b->n, bound, seed, node, PARE_ROLE_BIAS);
    }
}

static double conv_macs(const pare_graph *g, const pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    return (double)n->out.c * n->out.h * n->out.w * (in.c / n->a.groups) * n->a.kernel[0] * n->a.kernel[1];
}

static size_t conv_ws(const pare_graph *g, const pare_node *n, int batch, int training)
{
    (void)batch;
    geom q = conv_geom(n, g->nodes[n->in[0]].out);
    size_t col = (q.pointwise || q.depthwise) ? 0 : (size_t)q.K * (size_t)q.OHW;
    if (!training)
        return col;
    return 2 * col + (size_t)q.O * (size_t)q.K;
}

/* One group's Cg channels into a K x OHW matrix. */
static void im2col(const geom *q, const float *x, float *col)
{
    for (int c = 0; c < q->Cg; c++)
        for (int i = 0; i < q->kh; i++)
            for (int j = 0; j < q->kw; j++) {
                float *row = col + ((long)(c * q->kh + i) * q->kw + j) * q->OHW;
                const float *xc = x + c * q->HW;
                int iw0 = j * q->dw - q->pl;
                for (int oh = 0; oh < q->OH; oh++) {
                    float *r = row + (long)oh * q->OW;
                    int ih = oh * q->sh - q->pt + i * q->dh;
                    if (ih < 0 || ih >= q->H) {
                        memset(r, 0, sizeof(float) * (size_t)q->OW);
                        continue;
                    }
                    const float *xr = xc + (long)ih * q->W;
                    if (q->sw == 1) {
                        int lo = iw0 < 0 ? -iw0 : 0;
                        int hi = q->W - iw0 < q->OW ? q->W - iw0 : q->OW;
                        if (hi < lo)
                            hi = lo;
                        if (lo > q->OW)
                            lo = hi = q->OW;
                        memset(r, 0, sizeof(float) * (size_t)lo);
                        memcpy(r + lo, xr + lo + iw0, sizeof(float) * (size_t)(hi - lo));
                        memset(r + hi, 0, sizeof(float) * (size_t)(q->OW - hi));
                    } else {
                        for (int ow = 0; ow < q->OW; ow++) {
                            int iw = ow * q->sw + iw0;
                            r[ow] = (iw >= 0 && iw < q->W) ? xr[iw] : 0.0f;
                        }
                    }
                }
            }
}

/* Adds a K x OHW matrix back into one group's channels. */
static void col2im_add(const geom *q, const float *col, float *x)
{
    for (int c = 0; c < q->Cg; c++)
        for (int i = 0; i < q->kh; i++)
            for (int j = 0; j < q->kw; j++) {
                const float *row = col + ((long)(c * q->kh + i) * q->kw + j) * q->OHW;
                float *xc = x + c * q->HW;
                int iw0 = j * q->dw - q->pl;
                for (int oh = 0; oh < q->OH; oh++) {
                    int ih = oh * q->sh - q->pt + i * q->dh;
                    if (ih < 0 || ih >= q->H)
                        continue;
                    const float *r = row + (long)oh * q->OW;
                    float *xr = xc + (long)ih * q->W;
                    if (q->sw == 1) {
                        int lo = iw0 < 0 ? -iw0 : 0;
                        int hi = q->W - iw0 < q->OW ? q->W - iw0 : q->OW;
                        for (int ow = lo; ow < hi; ow++)
                            xr[ow + iw0] += r[ow];
                    } else {
                        for (int ow = 0; ow < q->OW; ow++) {
                            int iw = ow * q->sw + iw0;
                            if (iw >= 0 && iw < q->W)
                                xr[iw] += r[ow];
                        }
                    }
                }
            }
}

/* Valid output columns [lo, hi) of a row for kernel column j (any stride). */
static void ow_range(const geom *q, int j, int *lo, int *hi)
{
    int iw0 = j * q->dw - q->pl;
    /* need 0 <= ow*sw + iw0 < W */
    int l = iw0 >= 0 ? 0 : (-iw0 + q->sw - 1) / q->sw;
    int h = (q->W - 1 - iw0) < 0 ? 0 : (q->W - 1 - iw0) / q->sw + 1;
    if (h > q->OW)
        h = q->OW;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Depthwise-style forward of output channel o (input channel o / Og). */
static void dw_forward_channel(const geom *q, const float *x, const float *w, float bias, float *y)
{
    for (long i = 0; i < q->OHW; i++)
        y[i] = bias;
    for (int i = 0; i < q->kh; i++)
        for (int j = 0; j < q->kw; j++) {
            float wv = w[i * q->kw + j];
            int lo, hi;
            ow_range(q, j, &lo, &hi);
            int iw0 = j * q->dw - q->pl;
            for (int oh = 0; oh < q->OH; oh++) {
                int ih = oh * q->sh - q->pt + i * q->dh;
                if (ih < 0 || ih >= q->H)
                    continue;
                const float *xr = x + (long)ih * q->W;
                float *yr = y + (long)oh * q->OW;
                if (q->sw == 1)
                    for (int ow = lo; ow < hi; ow++)
                        yr[ow] += wv * xr[ow + iw0];
                else
                    for (int ow = lo; ow < hi; ow++)
                        yr[ow] += wv * xr[ow * q->sw + iw0];
            }
        }
}

static void dw_backward_channel(const geom *q, const float *x, const float *w, const float *dy,
                                float *dx, float *dwp)
{
    for (int i = 0; i < q->kh; i++)
        for (int j = 0; j < q->kw; j++) {
            float wv = w[i * q->kw + j];
            double acc = 0;
            int lo, hi;
            ow_range(q, j, &lo, &hi);
            int iw0 = j * q->dw - q->pl;
            for (int oh = 0; oh < q->OH; oh++) {
                int ih = oh * q->sh - q->pt + i * q->dh;
                if (ih < 0 || ih >= q->H)
                    continue;
                const float *xr = x + (long)ih * q->W;
                const float *dyr = dy + (long)oh * q->OW;
                float *dxr = dx ? dx + (long)ih * q->W : NULL;
                float s = 0;
                for (int ow = lo; ow < hi; ow++) {
                    int iw = ow * q->sw + iw0;
                    s += dyr[ow] * xr[iw];
                    if (dxr)
                        dxr[iw] += wv * dyr[ow];
                }
                acc += s;
            }
            if (dwp)
                dwp[i * q->kw + j] += (float)acc;
        }
}

static void forward_sample(const geom *q, const pare_op_ctx *c, long b, float *col, int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    float *y = c->y + b * q->O * q->OHW;
    const float *w = c->w[0];
    const float *bias = c->node->n_param > 1 ? c->w[1] : NULL;
    if (q->depthwise) {
        for (int o = 0; o < q->O; o++)
            dw_forward_channel(q, x + (o / q->Og) * q->HW, w + (long)o * q->kh * q->kw,
                               bias ? bias[o] : 0.0f, y + o * q->OHW);
        return;
    }
    for (int g = 0; g < q->groups; g++) {
        const float *xg = x + (long)g * q->Cg * q->HW;
        const float *src = xg;
        if (!q->pointwise) {
            im2col(q, xg, col);
            src = col;
        }
        pare_sgemm(gemm_threads, 0, 0, q->Og, (int)q->OHW, q->K, 1.0f, w + (long)g * q->Og * q->K,
                   q->K, src, (int)q->OHW, 0.0f, y + (long)g * q->Og * q->OHW, (int)q->OHW);
    }
    if (bias)
        for (int o = 0; o < q->O; o++) {
            float *yo = y + o * q->OHW;
            float bv = bias[o];
            for (long i = 0; i < q->OHW; i++)
                yo[i] += bv;
        }
}

static void conv_forward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    if (c->n >= c->threads && c->threads > 1) {
#pragma omp parallel num_threads(c->threads)
        {
            int t = pare_thread_id();
            long lo, hi;
            pare_split_range(c->n, c->threads, t, &lo, &hi);
            for (long b = lo; b < hi; b++)
                forward_sample(&q, c, b, c->ws + (size_t)t * c->ws_floats, 1);
        }
    } else {
        for (long b = 0; b < c->n; b++)
            forward_sample(&q, c, b, c->ws, c->threads);
    }
}

/* Backward of one sample: weight-gradient partial into dwp, input gradient into dx. */
static void backward_sample(const geom *q, const pare_op_ctx *c, long b, float *col, float *dcol,
                            float *dwp, int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    const float *dy = c->dy + b * q->O * q->OHW;
    float *dx = c->dx[0] ? c->dx[0] + b * q->C * q->HW : NULL;
    const float *w = c->w[0];
    if (dx && !c->dx_acc[0] && (!q->pointwise || q->depthwise))
        memset(dx, 0, sizeof(float) * (size_t)(q->C * q->HW));
    if (q->depthwise) {
        for (int o = 0; o < q->O; o++) {
            int ci = o / q->Og;
            float *dxc = dx ? dx + ci * q->HW : NULL;
            dw_backward_channel(q, x + ci * q->HW, w + (long)o * q->kh * q->kw, dy + o * q->OHW, dxc,
                                dwp ? dwp + (long)o * q->kh * q->kw : NULL);
        }
        return;
    }
    for (int g = 0; g < q->groups; g++) {
        const float *xg = x + (long)g * q->Cg * q->HW;
        const float *dyg = dy + (long)g * q->Og * q->OHW;
        const float *wg = w + (long)g * q->Og * q->K;
        if (dwp) {
            const float *src = xg;
            if (!q->pointwise) {
                im2col(q, xg, col);
                src = col;
            }
            pare_sgemm(gemm_threads, 0, 1, q->Og, q->K, (int)q->OHW, 1.0f, dyg, (int)q->OHW, src,
                       (int)q->OHW, 1.0f, dwp + (long)g * q->Og * q->K, q->K);
        }
        if (dx) {
            float *dxg = dx + (long)g * q->Cg * q->HW;
            if (q->pointwise) {
                pare_sgemm(gemm_threads, 1, 0, q->K, (int)q->OHW, q->Og, 1.0f, wg, q->K, dyg,
                           (int)q->OHW, c->dx_acc[0] ? 1.0f : 0.0f, dxg, (int)q->OHW);
            } else {
                pare_sgemm(gemm_threads, 1, 0, q->K, (int)q->OHW, q->Og, 1.0f, wg, q->K, dyg,
                           (int)q->OHW, 0.0f, dcol, (int)q->OHW);
                col2im_add(q, dcol, dxg);
            }
        }
    }
}

static void conv_backward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    float *dW = c->dw[0];
    float *dB = c->node->n_param > 1 ? c->dw[1] : NULL;
    size_t col_f = (q.pointwise || q.depthwise) ? 0 : (size_t)q.K * (size_t)q.OHW;
    size_t wn = (size_t)q.O * (size_t)q.K;
    if (!dW && !c->dx[0] && !dB)
        return;
    if (dW)
        memset(dW, 0, sizeof(float) * wn);
    int par = c->n >= c->threads && c->threads > 1;
    int nt = par ? c->threads : 1;
    if (par) {
#pragma omp parallel num_threads(nt)
        {
            int t = pare_thread_id();
            float *ws = c->ws + (size_t)t * c->ws_floats;
            float *dwp = NULL;
            if (dW) {
                dwp = t == 0 ? dW : ws + 2 * col_f;
                if (t > 0)
                    memset(dwp, 0, sizeof(float) * wn);
            }
            long lo, hi;
            pare_split_range(c->n, nt, t, &lo, &hi);
            for (long b = lo; b < hi; b++)
                backward_sample(&q, c, b, ws, ws + col_f, dwp, 1);
        }
        /* Fixed order: thread 0's partial is dW itself, then 1, 2, ... */
        if (dW) {
            const pare_vec_kernels *vk = pare_vec();
            for (int t = 1; t < nt; t++)
                vk->f32_vacc(wn, c->ws + (size_t)t * c->ws_floats + 2 * col_f, dW);
        }
    } else {
        for (long b = 0; b < c->n; b++)
            backward_sample(&q, c, b, c->ws, c->ws + col_f, dW, c->threads);
    }
    if (dB) {
        const pare_vec_kernels *vk = pare_vec();
#pragma omp parallel for num_threads(c->threads) schedule(static)
        for (int o = 0; o < q.O; o++) {
            double s = 0;
            for (long b = 0; b < c->n; b++)
                s += vk->f32_vsum((size_t)q.OHW, c->dy + (b * q.O + o) * q.OHW);
            dB[o] = (float)s;
        }
    }
}

const pare_op_def pare_op_conv2d = {
    .name = "conv2d",
    .min_in = 1,
    .max_in = 1,
    .infer = conv_infer,
    .params = conv_params,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .ws_floats = conv_ws,
    .macs = conv_macs,
    .backward_needs_x = 1,
};
