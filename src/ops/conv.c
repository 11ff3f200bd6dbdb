/* conv2d, lowered to CBLAS GEMMs in one of four ways, chosen per layer:
 *  - pointwise (1x1, stride 1, no padding): the input is the GEMM operand;
 *  - shifted (stride 1): the input is zero-padded once and the output is
 *    computed on a grid as wide as the padded input, as a sum of one GEMM per
 *    kernel tap that reads the padded input at that tap's offset; there is no
 *    kh*kw-fold im2col copy (1.2-1.8x faster than im2col on 3x3 layers);
 *  - im2col (strided convs): the classic lowering;
 *  - direct loops for depthwise-style convs (one input channel per group).
 * Backward uses the same lowering; weight gradients go to per-thread partials
 * summed in thread order, so results depend only on the thread count.
 * A masked weight sparse enough runs sparse kernels instead ("sparse paths"). */
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/sptrain.h"
#include "kernels/vec.h"
#include "ops/ops.h"
#include "ops/sparse.h"

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

static void conv_init(pare_graph *g, int node, uint64_t seed, int scheme)
{
    const pare_node *n = &g->nodes[node];
    pare_tensor *w = g->params[n->param[0]].t;
    int taps = w->dims[2] * w->dims[3];
    pare_tensor *b = n->n_param > 1 ? g->params[n->param[1]].t : NULL;
    pare_init_layer(w->data, w->n, b ? b->data : NULL, b ? b->n : 0, w->dims[1] * taps, w->dims[0] * taps,
                    scheme, seed, node);
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

/* ---- sparse paths -------------------------------------------------------- */

/* With a masked weight sparse enough, the three products run as sparse
 * kernels (kernels/sptrain.h) over positions that every operand shares:
 *  - shifted (any stride-1 conv): the padded input and a wide output grid as
 *    in the shifted lowering, all groups at once; forward and weight gradient
 *    read the input at each entry's (channel, tap) offset; the input gradient
 *    gathers the wide output gradient, held with a zero halo of the largest
 *    tap offset on both sides, at minus that offset;
 *  - pointwise: the input and the output gradient themselves;
 *  - im2col (strided convs): the columns of every group, and the column
 *    gradient folded back with col2im.
 * The lists (per filter for forward, per input channel or column for the
 * input gradient, per filter from dw_mask for the weight gradient) are
 * cached in the node's aux and rebuilt when a mask changes (ops/sparse.h). */
enum { SP_SHIFTED, SP_POINTWISE, SP_IM2COL };

/* Densities below which each sparse product runs instead of its dense
 * lowering (forward, input gradient, weight gradient), per lowering: one first
 * setting from bench/sparse_step.c on W1 at 75-95% sparsity, not yet tuned per
 * shape (docs/ALGORITHMS.md, "Sparse weight gradients"). */
static const double sp_thr[3][3] = {
    {0.35, 0.35, 0.35},  /* shifted */
    {0.35, 0.35, 0.35},  /* pointwise */
    {0.35, 0.35, 0.35},  /* im2col */
};

typedef struct sp_geom {
    int kind;
    long cs;         /* channel stride of the input operand */
    long n;          /* positions of the forward and weight-gradient products */
    long dcs, h0;    /* output-gradient operand: row stride, leading zero halo */
    int rpc;         /* input-gradient rows per input channel (im2col: taps) */
    long p0, p1;     /* input-gradient positions */
    long rows_b;     /* input-gradient rows */
} sp_geom;

/* Offsets fit in int32 (the kernels' index type); else the layer runs dense. */
static int sp_geom_of(const geom *q, sp_geom *s)
{
    if (q->method == M_DEPTHWISE)
        return 0;
    memset(s, 0, sizeof *s);
    s->rpc = 1;
    if (q->method == M_POINTWISE) {
        s->kind = SP_POINTWISE;
        s->cs = q->HW;
        s->n = q->HW;
        s->dcs = q->OHW;
        s->p1 = q->HW;
    } else if (q->sh == 1 && q->sw == 1) {
        s->kind = SP_SHIFTED;
        s->cs = q->HpWp;
        s->n = (long)(q->OH - 1) * q->Wp + q->OW;
        s->h0 = (long)(q->kh - 1) * q->dh * q->Wp + (long)(q->kw - 1) * q->dw;
        s->dcs = s->h0 + q->HpWp;
        s->p0 = (long)q->pt * q->Wp + q->pl;
        s->p1 = (long)(q->pt + q->H - 1) * q->Wp + q->pl + q->W;
    } else {
        s->kind = SP_IM2COL;
        s->cs = (long)q->taps * q->OHW;
        s->n = q->OHW;
        s->dcs = q->OHW;
        s->rpc = q->taps;
        s->p1 = q->OHW;
    }
    s->rows_b = (long)q->C * s->rpc;
    double most = (double)q->C * (double)s->cs + (double)q->O * (double)s->dcs;
    return most < 2147483647.0;
}

/* Where tap t of a filter reads, relative to its channel, in the input operand. */
static long sp_tap(const geom *q, const sp_geom *s, int t)
{
    if (s->kind == SP_SHIFTED)
        return tap_offset(q, t);
    return s->kind == SP_IM2COL ? (long)t * q->OHW : 0;
}

/* Per-thread workspace of the sparse paths, in floats. */
typedef struct sp_layout {
    size_t xp;       /* padded input (shifted) or columns (im2col) */
    size_t dy;       /* wide output, or output gradient with its halos (shifted) */
    size_t dxp;      /* padded input gradient (shifted) or column gradient (im2col) */
    size_t dwp;      /* weight-gradient partial: entries of the list, or dense */
    size_t total;
} sp_layout;

static sp_layout sp_layout_of(const geom *q, const sp_geom *s, int training)
{
    sp_layout L;
    memset(&L, 0, sizeof L);
    size_t at = 0;
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        L.field = at;                                                                              \
        at += ((size_t)(n) + 15) / 16 * 16;                                                        \
    } while (0)
    if (s->kind != SP_POINTWISE)
        TAKE(xp, (size_t)q->C * (size_t)s->cs);
    if (s->kind == SP_SHIFTED)
        TAKE(dy, (size_t)q->O * (size_t)s->dcs);
    if (training && s->kind != SP_POINTWISE)
        TAKE(dxp, (size_t)q->C * (size_t)s->cs);
    if (training)
        TAKE(dwp, (size_t)q->O * (size_t)q->K);
#undef TAKE
    L.total = at;
    return L;
}

/* Where entry (filter o, column j = channel * taps + tap) reads, for the
 * list cache (ops/sparse.h). */
typedef struct sp_geo {
    const geom *q;
    const sp_geom *s;
} sp_geo;

static int32_t sp_off(const void *geo, int o, int j)
{
    const geom *q = ((const sp_geo *)geo)->q;
    const sp_geom *s = ((const sp_geo *)geo)->s;
    int c = j / q->taps, t = j % q->taps;
    return (int32_t)(((long)(o / q->Og) * q->Cg + c) * s->cs + sp_tap(q, s, t));
}

/* The input-gradient row of entry (o, j): its input channel (or column), and
 * the offset of o's output-gradient row, shifted back by the tap. */
static long sp_brow(const void *geo, int o, int j, int32_t *off)
{
    const geom *q = ((const sp_geo *)geo)->q;
    const sp_geom *s = ((const sp_geo *)geo)->s;
    int c = j / q->taps, t = j % q->taps;
    *off = (int32_t)((long)o * s->dcs + s->h0 - (s->kind == SP_SHIFTED ? tap_offset(q, t) : 0));
    return ((long)(o / q->Og) * q->Cg + c) * s->rpc + (s->rpc > 1 ? t : 0);
}

static pare_sp_layer sp_layer_of(const geom *q, const sp_geom *s, sp_geo *G)
{
    G->q = q;
    G->s = s;
    return (pare_sp_layer){q->O, q->K, s->rows_b, 0, G, sp_off, sp_brow};
}

/* Every channel into the padded buffer's interior (shifted) or every group's
 * columns (im2col). */
static void sp_lower_input(const geom *q, const sp_geom *s, const float *x, float *xp,
                           const pare_sptrain_kernels *k)
{
    if (s->kind == SP_SHIFTED) {
        for (int ch = 0; ch < q->C; ch++)
            k->f32_rows(q->H, q->W, x + ch * q->HW, q->W, xp + ch * q->HpWp + (long)q->pt * q->Wp + q->pl, q->Wp,
                        0.0f, 0);
        return;
    }
    for (int g = 0; g < q->groups; g++)
        im2col(q, x + (long)g * q->Cg * q->HW, xp + (long)g * q->K * q->OHW);
}

static void sp_forward_sample(const geom *q, const sp_geom *s, const pare_op_ctx *c, long b, float *ws,
                              const sp_layout *L, const pare_sp_rows *R, const pare_sptrain_kernels *k)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    float *y = c->y + b * q->O * q->OHW;
    const float *bias = c->node->n_param > 1 ? c->w[1] : NULL;
    if (s->kind == SP_SHIFTED) {
        float *xp = ws + L->xp, *yw = ws + L->dy;
        sp_lower_input(q, s, x, xp, k);
        k->f32_spgather(R, 0, q->O, xp, yw, s->dcs, 0, s->n, 0);
        for (int o = 0; o < q->O; o++)
            k->f32_rows(q->OH, q->OW, yw + o * s->dcs, q->Wp, y + o * q->OHW, q->OW, bias ? bias[o] : 0.0f, 0);
        return;
    }
    const float *in = x;
    if (s->kind == SP_IM2COL) {
        sp_lower_input(q, s, x, ws + L->xp, k);
        in = ws + L->xp;
    }
    k->f32_spgather(R, 0, q->O, in, y, q->OHW, 0, q->OHW, 0);
    if (bias)
        for (int o = 0; o < q->O; o++) {
            float *yo = y + o * q->OHW;
            float bv = bias[o];
            for (long i = 0; i < q->OHW; i++)
                yo[i] += bv;
        }
}

/* One sample's gradients. Rx: input-gradient rows (NULL: no dx); Rw:
 * weight-gradient rows (NULL with dwp: the dense product, per tap for the
 * shifted grid as in the shifted lowering, into a dense partial). */
static void sp_backward_sample(const geom *q, const sp_geom *s, const pare_op_ctx *c, long b, float *ws,
                               const sp_layout *L, const pare_sp_rows *Rx, const pare_sp_rows *Rw,
                               float *dwp, const pare_sptrain_kernels *k, int gemm_threads)
{
    const float *x = c->x[0] + b * q->C * q->HW;
    const float *dy = c->dy + b * q->O * q->OHW;
    float *dx = Rx ? c->dx[0] + b * q->C * q->HW : NULL;
    const float *a = dy, *in = x;
    long a_rs = q->OHW;
    if (s->kind == SP_SHIFTED) {
        float *dyw = ws + L->dy;
        for (int o = 0; o < q->O; o++)
            k->f32_rows(q->OH, q->OW, dy + o * q->OHW, q->OW, dyw + o * s->dcs + s->h0, q->Wp, 0.0f, 0);
        a = dyw + s->h0;
        a_rs = s->dcs;
    }
    if (dwp) {
        if (s->kind != SP_POINTWISE) {
            sp_lower_input(q, s, x, ws + L->xp, k);
            in = ws + L->xp;
        }
        if (Rw) {
            k->f32_sddmm(Rw, 0, q->O, in, a, a_rs, 0, s->n, dwp);
        } else {
            for (int g = 0; g < q->groups; g++) {
                const float *ag = a + (long)g * q->Og * a_rs;
                const float *ig = in + (long)g * q->Cg * s->cs;
                if (s->kind == SP_SHIFTED)
                    for (int t = 0; t < q->taps; t++)
                        pare_sgemm(gemm_threads, 0, 1, q->Og, q->Cg, (int)s->n, 1.0f, ag, (int)a_rs,
                                   ig + tap_offset(q, t), (int)q->HpWp, 1.0f,
                                   dwp + ((long)t * q->O + (long)g * q->Og) * q->Cg, q->Cg);
                else
                    pare_sgemm(gemm_threads, 0, 1, q->Og, q->K, (int)s->n, 1.0f, ag, (int)a_rs, ig, (int)s->n,
                               1.0f, dwp + (long)g * q->Og * q->K, q->K);
            }
        }
    }
    if (!dx)
        return;
    int acc = c->dx_acc[0];
    if (s->kind == SP_POINTWISE) {
        k->f32_spgather(Rx, 0, q->C, dy, dx, q->HW, 0, q->HW, acc);
        return;
    }
    float *dxp = ws + L->dxp;
    if (s->kind == SP_IM2COL) {
        k->f32_spgather(Rx, 0, (int)s->rows_b, dy, dxp, q->OHW, 0, q->OHW, 0);
        if (!acc)
            memset(dx, 0, sizeof(float) * (size_t)q->C * (size_t)q->HW);
        for (int g = 0; g < q->groups; g++)
            col2im_add(q, dxp + (long)g * q->K * q->OHW, dx + (long)g * q->Cg * q->HW);
        return;
    }
    k->f32_spgather(Rx, 0, q->C, ws + L->dy, dxp, q->HpWp, s->p0, s->p1, 0);
    for (int ch = 0; ch < q->C; ch++)
        k->f32_rows(q->H, q->W, dxp + ch * q->HpWp + s->p0, q->Wp, dx + ch * q->HW, q->W, 0.0f, acc);
}

/* The sparse forward when the layer qualifies; 0 when it must run dense. */
static int sp_forward(const geom *q, const pare_op_ctx *c)
{
    sp_geom s;
    if (!c->mask || !c->mask[0] || !c->aux || pare_sparse_forced() == 0 || !sp_geom_of(q, &s))
        return 0;
    sp_layout L = sp_layout_of(q, &s, 0);
    if (L.total > c->ws_floats)
        return 0;
    sp_geo G;
    pare_sp_layer ly = sp_layer_of(q, &s, &G);
    long lim = pare_sparse_limit((size_t)q->O * (size_t)q->K, sp_thr[s.kind][0]);
    pare_sp_rows R;
    if (pare_sp_fwd(c->aux, &ly, c->mask[0], c->w[0], lim, &R) > lim)
        return 0;
    const pare_sptrain_kernels *k = pare_sptrain();
    int nt = (c->n >= c->threads && c->threads > 1) ? c->threads : 1;
#pragma omp parallel num_threads(nt)
    {
        int t = pare_thread_id();
        float *ws = c->ws + (size_t)t * c->ws_floats;
        if (s.kind == SP_SHIFTED)
            memset(ws + L.xp, 0, sizeof(float) * (size_t)q->C * (size_t)s.cs);
        long lo, hi;
        pare_split_range(c->n, nt, t, &lo, &hi);
        for (long b = lo; b < hi; b++)
            sp_forward_sample(q, &s, c, b, ws, &L, &R, k);
    }
    return 1;
}

/* The sparse backward (weights and bias gradients, input gradient) when the
 * layer qualifies; 0 when it must run dense. The input gradient goes sparse
 * with the forward's rule; the weight gradient goes sparse (dw_mask entries
 * only) when dw_mask is narrow enough, else runs as dense GEMMs within. */
static int sp_backward(const geom *q, const pare_op_ctx *c)
{
    sp_geom s;
    if (!c->mask || !c->mask[0] || !c->aux || pare_sparse_forced() == 0 || !sp_geom_of(q, &s))
        return 0;
    sp_layout L = sp_layout_of(q, &s, 1);
    if (L.total > c->ws_floats)
        return 0;
    size_t wn = (size_t)q->O * (size_t)q->K;
    float *dW = c->dw[0];
    const uint8_t *dwm = dW && c->dw_mask ? c->dw_mask[0] : NULL;
    sp_geo G;
    pare_sp_layer ly = sp_layer_of(q, &s, &G);
    pare_sp_rows Rx, Rw;
    const int32_t *widx = NULL;
    int dx_sp = 0, dw_sp = 0;
    if (c->dx[0]) {
        long lim = pare_sparse_limit(wn, sp_thr[s.kind][1]);
        if (pare_sp_bwd(c->aux, &ly, c->mask[0], c->w[0], lim, &Rx) > lim)
            return 0;
        dx_sp = 1;
    }
    if (dwm) {
        long lim = pare_sparse_limit(wn, sp_thr[s.kind][2]);
        dw_sp = pare_sp_dw(c->aux, &ly, dwm, lim, &Rw, &widx) <= lim;
    }
    if (!dx_sp && !dw_sp)
        return 0;
    const pare_sptrain_kernels *k = pare_sptrain();
    int nt = (c->n >= c->threads && c->threads > 1) ? c->threads : 1;
    size_t parts = dw_sp ? (size_t)Rw.start[q->O] : wn;
#pragma omp parallel num_threads(nt)
    {
        int t = pare_thread_id();
        float *ws = c->ws + (size_t)t * c->ws_floats;
        float *dwp = dW ? ws + L.dwp : NULL;
        if (dwp)
            memset(dwp, 0, sizeof(float) * parts);
        if (s.kind == SP_SHIFTED) {
            memset(ws + L.xp, 0, sizeof(float) * (size_t)q->C * (size_t)s.cs);
            memset(ws + L.dy, 0, sizeof(float) * (size_t)q->O * (size_t)s.dcs);
        }
        long lo, hi;
        pare_split_range(c->n, nt, t, &lo, &hi);
        for (long b = lo; b < hi; b++)
            sp_backward_sample(q, &s, c, b, ws, &L, dx_sp ? &Rx : NULL, dw_sp ? &Rw : NULL, dwp, k,
                               nt > 1 ? 1 : c->threads);
    }
    if (!dW)
        return 1;
    /* Partials in thread order; entries back to their positions, zeros elsewhere. */
    const float *p0 = c->ws + L.dwp;
    if (dw_sp) {
        pare_sp_scatter(wn, widx, (long)parts, dW, p0, c->ws_floats, nt);
        return 1;
    }
    if (s.kind == SP_SHIFTED) {
        for (int o = 0; o < q->O; o++)
            for (int ch = 0; ch < q->Cg; ch++)
                for (int tp = 0; tp < q->taps; tp++) {
                    size_t src = ((size_t)tp * (size_t)q->O + (size_t)o) * (size_t)q->Cg + (size_t)ch;
                    float v = p0[src];
                    for (int t = 1; t < nt; t++)
                        v += c->ws[(size_t)t * c->ws_floats + L.dwp + src];
                    dW[((size_t)o * (size_t)q->Cg + (size_t)ch) * (size_t)q->taps + (size_t)tp] = v;
                }
    } else {
        memcpy(dW, p0, sizeof(float) * wn);
        const pare_vec_kernels *vk = pare_vec();
        for (int t = 1; t < nt; t++)
            vk->f32_vacc(wn, c->ws + (size_t)t * c->ws_floats + L.dwp, dW);
    }
    if (dwm)
        pare_sparse_zero_outside(dW, dwm, wn);
    return 1;
}

/* ---- the op -------------------------------------------------------------- */

/* The sparse paths' room is planned only for weights masked at plan time. */
static size_t conv_ws(const pare_graph *g, const pare_node *n, int batch, int training)
{
    (void)batch;
    geom q = conv_geom(n, g->nodes[n->in[0]].out);
    size_t d = conv_layout(&q, training).total;
    sp_geom s;
    if (!g->params[n->param[0]].mask || !sp_geom_of(&q, &s))
        return d;
    size_t sp = sp_layout_of(&q, &s, training).total;
    return sp > d ? sp : d;
}

static size_t conv_aux(const pare_graph *g, const pare_node *n, int batch)
{
    (void)batch;
    geom q = conv_geom(n, g->nodes[n->in[0]].out);
    sp_geom s;
    if (!g->params[n->param[0]].mask || !sp_geom_of(&q, &s))
        return 0;
    sp_geo G;
    pare_sp_layer ly = sp_layer_of(&q, &s, &G);
    return pare_sp_cache_bytes(&ly);
}

static int conv_sparse_path(const pare_graph *g, const pare_node *n)
{
    const pare_param *p = &g->params[n->param[0]];
    geom q = conv_geom(n, g->nodes[n->in[0]].out);
    sp_geom s;
    if (!p->mask || !sp_geom_of(&q, &s))
        return 0;
    return pare_sparse_count(p->mask, p->t->n) <= pare_sparse_limit(p->t->n, sp_thr[s.kind][0]);
}

static void conv_forward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    if (sp_forward(&q, c))
        return;
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

/* Weight and input gradients through the dense lowerings. */
static void dense_backward(const geom *qp, const pare_op_ctx *c)
{
    geom q = *qp;
    ws_layout L = conv_layout(&q, 1);
    float *dW = c->dw[0];
    size_t wn = (size_t)q.O * (size_t)q.K;
    if (!dW && !c->dx[0])
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
        if (c->dw_mask && c->dw_mask[0])
            pare_sparse_zero_outside(dW, c->dw_mask[0], wn);
    }
}

static void conv_backward(const pare_op_ctx *c)
{
    geom q = conv_geom(c->node, c->xs[0]);
    float *dB = c->node->n_param > 1 ? c->dw[1] : NULL;
    if (!c->dw[0] && !c->dx[0] && !dB)
        return;
    if (!sp_backward(&q, c))
        dense_backward(&q, c);
    if (dB) {
        const pare_vec_kernels *vk = pare_vec();
#pragma omp parallel for num_threads(c->threads) schedule(static)
        for (int o = 0; o < q.O; o++) {
            double s = 0;
            for (long b = 0; b < c->n; b++) {
                if (b + 1 < c->n)
                    pare_prefetch_floats(c->dy + ((b + 1) * q.O + o) * q.OHW, q.OHW, 0);
                s += vk->f32_vsum((size_t)q.OHW, c->dy + (b * q.O + o) * q.OHW);
            }
            dB[o] = (float)s;
        }
        if (c->dw_mask && c->dw_mask[1])
            pare_sparse_zero_outside(dB, c->dw_mask[1], (size_t)q.O);
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
    .aux_bytes = conv_aux,
    .macs = conv_macs,
    .backward_needs_x = 1,
    .handles_dw_mask = 1,
    .sparse_path = conv_sparse_path,
};
