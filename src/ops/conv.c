/* conv2d, lowered to CBLAS GEMMs in one of four ways, chosen per layer:
 *  - pointwise (1x1, stride 1, no padding): the input is the GEMM operand;
 *  - shifted (stride 1): the input is zero-padded once and the output is
 *    computed on a grid as wide as the padded input, as a sum of one GEMM per
 *    kernel tap that reads the padded input at that tap's offset; there is no
 *    kh*kw-fold im2col copy (1.2-1.8x faster than im2col on 3x3 layers);
 *  - im2col (strided convs): the classic lowering;
 *  - direct loops for depthwise-style convs (one input channel per group).
 * Backward uses the same lowering; weight gradients go to per-thread partials
 * summed in thread order, so results depend only on the thread count. */
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/vec.h"
#include "ops/ops.h"

enum { M_IM2COL, M_POINTWISE, M_SHIFTED, M_DEPTHWISE };

typedef struct geom {
    int C, H, W, O, OH, OW;
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int groups, Cg, Og, K;
    long HW, OHW;
    int method;
    int Hp, Wp, taps;   /* shifted: padded input size, kernel taps */
    long HpWp;
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
    q.Hp = q.H + q.pt + a->pad[2];
    q.Wp = q.W + q.pl + a->pad[3];
    q.HpWp = (long)q.Hp * q.Wp;
    q.taps = q.kh * q.kw;
    /* One input channel per group and more than one group: the direct loop.
     * (A single-channel input with groups 1 is a small GEMM, which is faster.) */
    if (q.Cg == 1 && q.groups > 1)
        q.method = M_DEPTHWISE;
    else if (q.kh == 1 && q.kw == 1 && q.sh == 1 && q.sw == 1 && q.pt == 0 && q.pl == 0 &&
             a->pad[2] == 0 && a->pad[3] == 0)
        q.method = M_POINTWISE;
    else if (q.sh == 1 && q.sw == 1 && q.Cg >= 8)
        q.method = M_SHIFTED; /* with fewer channels the per-tap GEMMs are too thin */
    else
        q.method = M_IM2COL;
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
    if (a->kernel[0] > 1 << 12 || a->kernel[1] > 1 << 12 || a->out_channels > 1 << 20 ||
        a->dilation[0] > 1 << 12 || a->dilation[1] > 1 << 12 || a->stride[0] > 1 << 12 || a->stride[1] > 1 << 12)
        return pare_fail(PARE_EINVAL, "kernel, stride, dilation or channel count is too large");
    if (a->groups <= 0 || in.c % a->groups != 0 || a->out_channels % a->groups != 0)
        return pare_fail(PARE_ESHAPE, "groups %d must divide the %d input and %d output channels",
                         a->groups, in.c, a->out_channels);
    int oh = pare_window_out(in.h, a->kernel[0], a->stride[0], a->pad[0], a->pad[2], a->dilation[0], 0);
    int ow = pare_window_out(in.w, a->kernel[1], a->stride[1], a->pad[1], a->pad[3], a->dilation[1], 0);
    if (oh <= 0 || ow <= 0)
        return pare_fail(PARE_ESHAPE, "a %dx%d kernel (dilation %d) does not fit a %dx%d input with this padding",
                         a->kernel[0], a->kernel[1], a->dilation[0], in.h, in.w);
    double col = (double)(in.c / a->groups) * a->kernel[0] * a->kernel[1] * oh * ow;
    double padded = (double)in.c * (in.h + a->pad[0] + a->pad[2]) * (in.w + a->pad[1] + a->pad[3]);
    if (col > (double)(1u << 30) || padded > (double)(1u << 30) ||
        (double)a->out_channels * oh * ow > (double)(1u << 30))
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

/* Per-thread workspace of each lowering, as offsets in floats. */
typedef struct ws_layout {
    size_t col, dcol;          /* im2col: the columns and their gradient */
    size_t wt, xp, yw, dxp;    /* shifted: weights per tap, padded input, wide output (or its
                                * gradient), padded input gradient */
    size_t dwp;                /* weight-gradient partial (training) */
    size_t total;
} ws_layout;

/* How far the last tap's window reads past a padded channel (into the next
 * channel, or past the end of the buffer for the last one). */
static size_t spill(const geom *q) { return (size_t)((q->kw - 1) * q->dw) + 16; }

static ws_layout conv_layout(const geom *q, int training)
{
    ws_layout L;
    memset(&L, 0, sizeof L);
    size_t at = 0, wn = (size_t)q->O * (size_t)q->K;
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        L.field = at;                                                                              \
        at += ((size_t)(n) + 15) / 16 * 16;                                                        \
    } while (0)
    if (q->method == M_IM2COL) {
        TAKE(col, (size_t)q->K * (size_t)q->OHW);
        if (training)
            TAKE(dcol, (size_t)q->K * (size_t)q->OHW);
    } else if (q->method == M_SHIFTED) {
        TAKE(wt, wn);
        TAKE(xp, (size_t)q->Cg * (size_t)q->HpWp + spill(q));
        TAKE(yw, (size_t)q->Og * (size_t)q->OH * (size_t)q->Wp);
        if (training)
            TAKE(dxp, (size_t)q->Cg * (size_t)q->HpWp + spill(q));
    }
    if (training)
        TAKE(dwp, wn);
#undef TAKE
    L.total = at;
    return L;
}

static size_t conv_ws(const pare_graph *g, const pare_node *n, int batch, int training)
{
    (void)batch;
    geom q = conv_geom(n, g->nodes[n->in[0]].out);
    return conv_layout(&q, training).total;
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

/* Dot product with 8 independent lanes, so it vectorises without reassociation. */
static float dot8(long n, const float *a, const float *b, long bstride)
{
    float acc[8] = {0};
    long i = 0;
    if (bstride == 1)
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l = (l + 1) & 7)
        acc[l] += a[i] * b[i * bstride];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
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
                if (ih < 0 || ih >= q->H || hi <= lo)
                    continue;
                const float *xr = x + (long)ih * q->W + (long)lo * q->sw + iw0;
                const float *dyr = dy + (long)oh * q->OW + lo;
                if (dwp)
                    acc += dot8(hi - lo, dyr, xr, q->sw);
                if (dx) {
                    float *dxr = dx + (long)ih * q->W + (long)lo * q->sw + iw0;
                    if (q->sw == 1)
                        for (int k = 0; k < hi - lo; k++)
                            dxr[k] += wv * dyr[k];
                    else
                        for (int k = 0; k < hi - lo; k++)
                            dxr[(long)k * q->sw] += wv * dyr[k];
                }
            }
            if (dwp)
                dwp[i * q->kw + j] += (float)acc;
        }
}

/* ---- shifted lowering ---------------------------------------------------- */

/* Weights regrouped per tap: wt[t][o][c] = w[o][c][t]. */
static void shifted_weights(const geom *q, const float *w, float *wt)
{
    for (int o = 0; o < q->O; o++)
        for (int c = 0; c < q->Cg; c++)
            for (int t = 0; t < q->taps; t++)
                wt[((long)t * q->O + o) * q->Cg + c] = w[((long)o * q->Cg + c) * q->taps + t];
}

static long tap_offset(const geom *q, int t)
{
    return (long)(t / q->kw) * q->dh * q->Wp + (long)(t % q->kw) * q->dw;
}

/* Copies a group's channels into the interior of the padded buffer (whose
 * border and spill area stay zero from the start of the call). */
static void pad_input(const geom *q, const float *x, float *xp)
{
    for (int c = 0; c < q->Cg; c++)
        for (int h = 0; h < q->H; h++)
            memcpy(xp + c * q->HpWp + (long)(h + q->pt) * q->Wp + q->pl, x + c * q->HW + (long)h * q->W,
                   sizeof(float) * (size_t)q->W);
}

static void shifted_forward_sample(const geom *q, const pare_op_ctx *c, long b, float *ws,
                                   const ws_layout *L, int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    float *y = c->y + b * q->O * q->OHW;
    const float *bias = c->node->n_param > 1 ? c->w[1] : NULL;
    float *wt = ws + L->wt, *xp = ws + L->xp, *yw = ws + L->yw;
    int n_wide = q->OH * q->Wp;
    for (int g = 0; g < q->groups; g++) {
        pad_input(q, x + (long)g * q->Cg * q->HW, xp);
        for (int t = 0; t < q->taps; t++)
            pare_sgemm(gemm_threads, 0, 0, q->Og, n_wide, q->Cg, 1.0f, wt + ((long)t * q->O + (long)g * q->Og) * q->Cg,
                       q->Cg, xp + tap_offset(q, t), (int)q->HpWp, t ? 1.0f : 0.0f, yw, n_wide);
        for (int o = 0; o < q->Og; o++) {
            int oc = g * q->Og + o;
            float bv = bias ? bias[oc] : 0.0f;
            for (int oh = 0; oh < q->OH; oh++) {
                const float *src = yw + (long)o * n_wide + (long)oh * q->Wp;
                float *dst = y + oc * q->OHW + (long)oh * q->OW;
                for (int ow = 0; ow < q->OW; ow++)
                    dst[ow] = src[ow] + bv;
            }
        }
    }
}

/* The wide output gradient's extra columns must be exact zeros: they meet
 * padding and the next row in the tap GEMMs and must contribute nothing. */
static void shifted_backward_sample(const geom *q, const pare_op_ctx *c, long b, float *ws,
                                    const ws_layout *L, float *dwt, int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    const float *dy = c->dy + b * q->O * q->OHW;
    float *dx = c->dx[0] ? c->dx[0] + b * q->C * q->HW : NULL;
    float *wt = ws + L->wt, *xp = ws + L->xp, *dyw = ws + L->yw, *dxp = ws + L->dxp;
    int n_wide = q->OH * q->Wp;
    for (int g = 0; g < q->groups; g++) {
        for (int o = 0; o < q->Og; o++)
            for (int oh = 0; oh < q->OH; oh++)
                memcpy(dyw + (long)o * n_wide + (long)oh * q->Wp, dy + (long)(g * q->Og + o) * q->OHW + (long)oh * q->OW,
                       sizeof(float) * (size_t)q->OW);
        if (dwt) {
            pad_input(q, x + (long)g * q->Cg * q->HW, xp);
            for (int t = 0; t < q->taps; t++)
                pare_sgemm(gemm_threads, 0, 1, q->Og, q->Cg, n_wide, 1.0f, dyw, n_wide, xp + tap_offset(q, t),
                           (int)q->HpWp, 1.0f, dwt + ((long)t * q->O + (long)g * q->Og) * q->Cg, q->Cg);
        }
        if (dx) {
            memset(dxp, 0, sizeof(float) * ((size_t)q->Cg * (size_t)q->HpWp + spill(q)));
            for (int t = 0; t < q->taps; t++)
                pare_sgemm(gemm_threads, 1, 0, q->Cg, n_wide, q->Og, 1.0f, wt + ((long)t * q->O + (long)g * q->Og) * q->Cg,
                           q->Cg, dyw, n_wide, 1.0f, dxp + tap_offset(q, t), (int)q->HpWp);
            float *dxg = dx + (long)g * q->Cg * q->HW;
            for (int ch = 0; ch < q->Cg; ch++)
                for (int h = 0; h < q->H; h++) {
                    const float *src = dxp + ch * q->HpWp + (long)(h + q->pt) * q->Wp + q->pl;
                    float *dst = dxg + ch * q->HW + (long)h * q->W;
                    if (c->dx_acc[0])
                        for (int w = 0; w < q->W; w++)
                            dst[w] += src[w];
                    else
                        memcpy(dst, src, sizeof(float) * (size_t)q->W);
                }
        }
    }
}

/* Zeroes what must start as zero in a thread's workspace (padding borders,
 * spill areas, the wide gradient's extra columns) and regroups the weights. */
static void shifted_prepare(const geom *q, const pare_op_ctx *c, float *ws, const ws_layout *L, int backward)
{
    shifted_weights(q, c->w[0], ws + L->wt);
    memset(ws + L->xp, 0, sizeof(float) * ((size_t)q->Cg * (size_t)q->HpWp + spill(q)));
    if (backward)
        memset(ws + L->yw, 0, sizeof(float) * (size_t)q->Og * (size_t)q->OH * (size_t)q->Wp);
}

/* ---- the other lowerings, one sample ------------------------------------- */

static void forward_sample(const geom *q, const pare_op_ctx *c, long b, float *ws, const ws_layout *L,
                           int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    float *y = c->y + b * q->O * q->OHW;
    const float *w = c->w[0];
    const float *bias = c->node->n_param > 1 ? c->w[1] : NULL;
    if (q->method == M_SHIFTED) {
        shifted_forward_sample(q, c, b, ws, L, gemm_threads);
        return;
    }
    if (q->method == M_DEPTHWISE) {
        for (int o = 0; o < q->O; o++)
            dw_forward_channel(q, x + (o / q->Og) * q->HW, w + (long)o * q->kh * q->kw,
                               bias ? bias[o] : 0.0f, y + o * q->OHW);
        return;
    }
    for (int g = 0; g < q->groups; g++) {
        const float *xg = x + (long)g * q->Cg * q->HW;
        const float *src = xg;
        if (q->method == M_IM2COL) {
            im2col(q, xg, ws + L->col);
            src = ws + L->col;
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

static void backward_sample(const geom *q, const pare_op_ctx *c, long b, float *ws, const ws_layout *L,
                            float *dwp, int gemm_threads)
{
    if (q->method == M_SHIFTED) {
        shifted_backward_sample(q, c, b, ws, L, dwp, gemm_threads);
        return;
    }
    const float *x = c->x[0] + b * q->C * q->HW;
    const float *dy = c->dy + b * q->O * q->OHW;
    float *dx = c->dx[0] ? c->dx[0] + b * q->C * q->HW : NULL;
    const float *w = c->w[0];
    if (dx && !c->dx_acc[0] && q->method != M_POINTWISE)
        memset(dx, 0, sizeof(float) * (size_t)(q->C * q->HW));
    if (q->method == M_DEPTHWISE) {
        for (int o = 0; o < q->O; o++) {
            int ci = o / q->Og;
            dw_backward_channel(q, x + ci * q->HW, w + (long)o * q->kh * q->kw, dy + o * q->OHW,
                                dx ? dx + ci * q->HW : NULL, dwp ? dwp + (long)o * q->kh * q->kw : NULL);
        }
        return;
    }
    for (int g = 0; g < q->groups; g++) {
        const float *xg = x + (long)g * q->Cg * q->HW;
        const float *dyg = dy + (long)g * q->Og * q->OHW;
        const float *wg = w + (long)g * q->Og * q->K;
        if (dwp) {
            const float *src = xg;
            if (q->method == M_IM2COL) {
                im2col(q, xg, ws + L->col);
                src = ws + L->col;
            }
            pare_sgemm(gemm_threads, 0, 1, q->Og, q->K, (int)q->OHW, 1.0f, dyg, (int)q->OHW, src,
                       (int)q->OHW, 1.0f, dwp + (long)g * q->Og * q->K, q->K);
        }
        if (dx) {
            float *dxg = dx + (long)g * q->Cg * q->HW;
            if (q->method == M_POINTWISE) {
                pare_sgemm(gemm_threads, 1, 0, q->K, (int)q->OHW, q->Og, 1.0f, wg, q->K, dyg,
                           (int)q->OHW, c->dx_acc[0] ? 1.0f : 0.0f, dxg, (int)q->OHW);
            } else {
                pare_sgemm(gemm_threads, 1, 0, q->K, (int)q->OHW, q->Og, 1.0f, wg, q->K, dyg,
                           (int)q->OHW, 0.0f, ws + L->dcol, (int)q->OHW);
                col2im_add(q, ws + L->dcol, dxg);
            }
        }
    }
}

/* ---- the op -------------------------------------------------------------- */

static void conv_forward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    ws_layout L = conv_layout(&q, 0);
    if (c->n >= c->threads && c->threads > 1) {
#pragma omp parallel num_threads(c->threads)
        {
            int t = pare_thread_id();
            float *ws = c->ws + (size_t)t * c->ws_floats;
            if (q.method == M_SHIFTED)
                shifted_prepare(&q, c, ws, &L, 0);
            long lo, hi;
            pare_split_range(c->n, c->threads, t, &lo, &hi);
            for (long b = lo; b < hi; b++)
                forward_sample(&q, c, b, ws, &L, 1);
        }
    } else {
        if (q.method == M_SHIFTED)
            shifted_prepare(&q, c, c->ws, &L, 0);
        for (long b = 0; b < c->n; b++)
            forward_sample(&q, c, b, c->ws, &L, c->threads);
    }
}

static void conv_backward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    ws_layout L = conv_layout(&q, 1);
    float *dW = c->dw[0];
    float *dB = c->node->n_param > 1 ? c->dw[1] : NULL;
    size_t wn = (size_t)q.O * (size_t)q.K;
    if (!dW && !c->dx[0] && !dB)
        return;
    /* Each thread sums its samples' weight gradients into its own partial. */
    int nt = (c->n >= c->threads && c->threads > 1) ? c->threads : 1;
#pragma omp parallel num_threads(nt)
    {
        int t = pare_thread_id();
        float *ws = c->ws + (size_t)t * c->ws_floats;
        float *dwp = dW ? ws + L.dwp : NULL;
        if (dwp)
            memset(dwp, 0, sizeof(float) * wn);
        if (q.method == M_SHIFTED)
            shifted_prepare(&q, c, ws, &L, 1);
        long lo, hi;
        pare_split_range(c->n, nt, t, &lo, &hi);
        for (long b = lo; b < hi; b++)
            backward_sample(&q, c, b, ws, &L, dwp, nt > 1 ? 1 : c->threads);
    }
    if (dW) {
        /* Fixed order: thread 0's partial, then 1, 2, ...; the shifted
         * lowering's partials are per tap and are regrouped here. */
        const float *p0 = c->ws + L.dwp;
        if (q.method == M_SHIFTED) {
            for (int o = 0; o < q.O; o++)
                for (int ch = 0; ch < q.Cg; ch++)
                    for (int tp = 0; tp < q.taps; tp++) {
                        size_t src = ((size_t)tp * (size_t)q.O + (size_t)o) * (size_t)q.Cg + (size_t)ch;
                        float s = p0[src];
                        for (int t = 1; t < nt; t++)
                            s += c->ws[(size_t)t * c->ws_floats + L.dwp + src];
                        dW[((size_t)o * (size_t)q.Cg + (size_t)ch) * (size_t)q.taps + (size_t)tp] = s;
                    }
        } else {
            memcpy(dW, p0, sizeof(float) * wn);
            const pare_vec_kernels *vk = pare_vec();
            for (int t = 1; t < nt; t++)
                vk->f32_vacc(wn, c->ws + (size_t)t * c->ws_floats + L.dwp, dW);
        }
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
