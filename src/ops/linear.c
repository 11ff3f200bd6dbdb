/* linear (fully connected): y = x W^T + b on the flattened sample, through GEMM,
 * or through sparse kernels when the weight is masked and sparse enough. */
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "kernels/sptrain.h"
#include "ops/ops.h"
#include "ops/sparse.h"

static pare_status linear_infer(const pare_graph *g, pare_node *n)
{
    pare_shape in = g->nodes[n->in[0]].out;
    if (n->a.out_channels <= 0 || n->a.out_channels > 1 << 24)
        return pare_fail(PARE_EINVAL, "needs a positive number of output features, got %d", n->a.out_channels);
    if ((double)pare_shape_size(in) * n->a.out_channels > (double)(1u << 31))
        return pare_fail(PARE_ESHAPE, "a %zu x %d weight is too large", pare_shape_size(in), n->a.out_channels);
    n->out.c = n->a.out_channels;
    n->out.h = 1;
    n->out.w = 1;
    return PARE_OK;
}

static int linear_params(const pare_graph *g, const pare_node *n, pare_param_spec *s)
{
    int in = (int)pare_shape_size(g->nodes[n->in[0]].out);
    s[0] = (pare_param_spec){PARE_ROLE_WEIGHT, 2, {n->a.out_channels, in, 0, 0}, 1};
    if (!n->a.bias)
        return 1;
    s[1] = (pare_param_spec){PARE_ROLE_BIAS, 1, {n->a.out_channels, 0, 0, 0}, 1};
    return 2;
}

static void linear_init(pare_graph *g, int node, uint64_t seed, int scheme)
{
    const pare_node *n = &g->nodes[node];
    pare_tensor *w = g->params[n->param[0]].t;
    pare_tensor *b = n->n_param > 1 ? g->params[n->param[1]].t : NULL;
    pare_init_layer(w->data, w->n, b ? b->data : NULL, b ? b->n : 0, w->dims[1], w->dims[0], scheme, seed,
                    node);
}

static double linear_macs(const pare_graph *g, const pare_node *n)
{
    return (double)pare_shape_size(g->nodes[n->in[0]].out) * n->a.out_channels;
}

/* ---- sparse path ------------------------------------------------------------ */

/* With a masked weight sparse enough, each product runs as a sparse kernel
 * (kernels/sptrain.h) whose positions are the samples of the batch: x and dy
 * are transposed (features x samples) so that an entry reads one contiguous
 * row, and each output row keeps its samples in registers across its entries.
 * Rows (output features; input features for dx) are split over the threads by
 * entry count, so results do not depend on the thread count. The lists are
 * cached in aux and rebuilt when a mask changes (ops/sparse.h). */

/* Densities below which the sparse product runs instead of the GEMM (forward,
 * input gradient, weight gradient): a first setting from bench/sparse_step.c on
 * W1's fc1, not yet tuned per shape. */
static const double sp_thr[3] = {0.35, 0.35, 0.35};

/* Below this many samples a vector of positions is mostly empty: dense. */
#define SP_MIN_BATCH 16

typedef struct sp_layout {
    size_t xt, yt, dwc, total;   /* shared by the threads: in thread 0's slice */
} sp_layout;

static sp_layout sp_layout_of(long in, long out, long batch, int training, long cap)
{
    sp_layout L;
    size_t at = 0;
    L.xt = at;
    at += ((size_t)in * (size_t)batch + 15) / 16 * 16;
    L.yt = at;
    at += ((size_t)out * (size_t)batch + 15) / 16 * 16;
    L.dwc = at;
    if (training)
        at += ((size_t)cap + 15) / 16 * 16;
    L.total = at;
    return L;
}

static size_t linear_ws(const pare_graph *g, const pare_node *n, int batch, int training)
{
    const pare_param *p = &g->params[n->param[0]];
    if (!p->mask)
        return 0;
    long in = (long)pare_shape_size(g->nodes[n->in[0]].out);
    return sp_layout_of(in, n->a.out_channels, batch, training, pare_sparse_cap(p->t->n)).total;
}

/* Entry (o, i) reads row i of the transposed input; in the input gradient it
 * joins row i and reads row o of the transposed output gradient. */
static int32_t sp_off(const void *geo, int o, int i)
{
    (void)o;
    return (int32_t)(i * *(const long *)geo);
}

static long sp_brow(const void *geo, int o, int i, int32_t *off)
{
    *off = (int32_t)(o * *(const long *)geo);
    return i;
}

static pare_sp_layer sp_layer_of(int in, int out, const long *n)
{
    return (pare_sp_layer){out, in, in, *n, n, sp_off, sp_brow};
}

static size_t linear_aux(const pare_graph *g, const pare_node *n, int batch)
{
    if (!g->params[n->param[0]].mask)
        return 0;
    long nb = batch;
    pare_sp_layer ly = sp_layer_of((int)pare_shape_size(g->nodes[n->in[0]].out), n->a.out_channels, &nb);
    return pare_sp_cache_bytes(&ly);
}

/* Thread t's rows: an equal share of the entries. */
static void sp_rows_of(const pare_sp_rows *R, int nt, int t, int *r0, int *r1)
{
    long total = R->start[R->n_rows];
    int b[2];
    for (int side = 0; side < 2; side++) {
        long want = total * (t + side) / nt;
        int lo = 0, hi = R->n_rows;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (R->start[mid] < want)
                lo = mid + 1;
            else
                hi = mid;
        }
        b[side] = lo;
    }
    *r0 = t == 0 ? 0 : b[0];
    *r1 = t == nt - 1 ? R->n_rows : b[1];
}

/* 1 when the layer may run sparse at all on this call. */
static int sp_usable(const pare_op_ctx *c, int in, int out, int training, sp_layout *L)
{
    if (!c->mask || !c->mask[0] || !c->aux || pare_sparse_forced() == 0)
        return 0;
    if (c->n < SP_MIN_BATCH && pare_sparse_forced() != 1)
        return 0;
    if ((double)in * c->n >= 2147483647.0 || (double)out * c->n >= 2147483647.0)
        return 0;
    *L = sp_layout_of(in, out, c->n, training, pare_sparse_cap((size_t)in * (size_t)out));
    return L->total <= c->ws_floats;
}

static int sp_forward(const pare_op_ctx *c, int in, int out)
{
    sp_layout L;
    if (!sp_usable(c, in, out, 0, &L))
        return 0;
    long n = c->n, lim = pare_sparse_limit((size_t)in * (size_t)out, sp_thr[0]);
    pare_sp_layer ly = sp_layer_of(in, out, &n);
    pare_sp_rows R;
    if (pare_sp_fwd(c->aux, &ly, c->mask[0], c->w[0], lim, &R) > lim)
        return 0;
    const pare_sptrain_kernels *k = pare_sptrain();
    float *xt = c->ws + L.xt, *yt = c->ws + L.yt;
    pare_sparse_transpose(c->threads, n, in, c->x[0], xt, 0);
#pragma omp parallel num_threads(c->threads)
    {
        int r0, r1;
        sp_rows_of(&R, c->threads, pare_thread_id(), &r0, &r1);
        k->f32_spgather(&R, r0, r1, xt, yt, n, 0, n, 0);
    }
    pare_sparse_transpose(c->threads, out, n, yt, c->y, 0);
    return 1;
}

/* dy transposed into yt, once per backward. */
static void sp_dyt(const pare_op_ctx *c, int out, const sp_layout *L, int *ready)
{
    if (!*ready)
        pare_sparse_transpose(c->threads, c->n, out, c->dy, c->ws + L->yt, 0);
    *ready = 1;
}

/* The weight gradient at dw_mask's entries only; 0 when it must run dense. */
static int sp_backward_dw(const pare_op_ctx *c, int in, int out, const sp_layout *L, int *dyt_ready)
{
    const uint8_t *m = c->dw_mask ? c->dw_mask[0] : NULL;
    if (!m)
        return 0;
    size_t wn = (size_t)in * (size_t)out;
    long n = c->n, lim = pare_sparse_limit(wn, sp_thr[2]);
    pare_sp_layer ly = sp_layer_of(in, out, &n);
    pare_sp_rows R;
    const int32_t *idx;
    long nnz = pare_sp_dw(c->aux, &ly, m, lim, &R, &idx);
    if (nnz > lim)
        return 0;
    const pare_sptrain_kernels *k = pare_sptrain();
    float *xt = c->ws + L->xt, *dyt = c->ws + L->yt, *dwc = c->ws + L->dwc;
    sp_dyt(c, out, L, dyt_ready);
    pare_sparse_transpose(c->threads, n, in, c->x[0], xt, 0);
    memset(dwc, 0, sizeof(float) * (size_t)nnz);
#pragma omp parallel num_threads(c->threads)
    {
        int r0, r1;
        sp_rows_of(&R, c->threads, pare_thread_id(), &r0, &r1);
        k->f32_sddmm(&R, r0, r1, xt, dyt, n, 0, n, dwc);
    }
    pare_sp_scatter(wn, idx, nnz, c->dw[0], dwc, 0, 1);
    return 1;
}

/* The input gradient through the transposed lists; 0 when it must run dense.
 * Uses xt's room, so it runs after the weight gradient. */
static int sp_backward_dx(const pare_op_ctx *c, int in, int out, const sp_layout *L, int *dyt_ready)
{
    long n = c->n, lim = pare_sparse_limit((size_t)in * (size_t)out, sp_thr[1]);
    pare_sp_layer ly = sp_layer_of(in, out, &n);
    pare_sp_rows R;
    if (pare_sp_bwd(c->aux, &ly, c->mask[0], c->w[0], lim, &R) > lim)
        return 0;
    const pare_sptrain_kernels *k = pare_sptrain();
    float *dxt = c->ws + L->xt, *dyt = c->ws + L->yt;
    sp_dyt(c, out, L, dyt_ready);
#pragma omp parallel num_threads(c->threads)
    {
        int r0, r1;
        sp_rows_of(&R, c->threads, pare_thread_id(), &r0, &r1);
        k->f32_spgather(&R, r0, r1, dyt, dxt, n, 0, n, 0);
    }
    pare_sparse_transpose(c->threads, in, n, dxt, c->dx[0], c->dx_acc[0]);
    return 1;
}

static int linear_sparse_path(const pare_graph *g, const pare_node *n)
{
    const pare_param *p = &g->params[n->param[0]];
    if (!p->mask)
        return 0;
    return pare_sparse_count(p->mask, p->t->n) <= pare_sparse_limit(p->t->n, sp_thr[0]);
}

static void linear_forward(const pare_op_ctx *c)
{
    int in = (int)pare_shape_size(c->xs[0]), out = c->node->a.out_channels;
    if (!sp_forward(c, in, out))
        pare_sgemm(c->threads, 0, 1, c->n, out, in, 1.0f, c->x[0], in, c->w[0], in, 0.0f, c->y, out);
    if (c->node->n_param > 1) {
        const float *b = c->w[1];
        for (long s = 0; s < c->n; s++) {
            float *y = c->y + s * out;
            for (int o = 0; o < out; o++)
                y[o] += b[o];
        }
    }
}

static void linear_backward(const pare_op_ctx *c)
{
    int in = (int)pare_shape_size(c->xs[0]), out = c->node->a.out_channels;
    size_t wn = (size_t)in * (size_t)out;
    sp_layout L;
    int sp = (c->dw[0] || c->dx[0]) && sp_usable(c, in, out, 1, &L), dyt_ready = 0;
    if (c->dw[0] && !(sp && sp_backward_dw(c, in, out, &L, &dyt_ready))) {
        pare_sgemm(c->threads, 1, 0, out, in, c->n, 1.0f, c->dy, out, c->x[0], in, 0.0f, c->dw[0], in);
        if (c->dw_mask && c->dw_mask[0])
            pare_sparse_zero_outside(c->dw[0], c->dw_mask[0], wn);
    }
    if (c->node->n_param > 1 && c->dw[1]) {
        float *db = c->dw[1];
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (long b = 0; b < c->n; b++)
                s += c->dy[b * out + o];
            db[o] = (float)s;
        }
        if (c->dw_mask && c->dw_mask[1])
            pare_sparse_zero_outside(db, c->dw_mask[1], (size_t)out);
    }
    if (c->dx[0] && !(sp && sp_backward_dx(c, in, out, &L, &dyt_ready)))
        pare_sgemm(c->threads, 0, 0, c->n, in, out, 1.0f, c->dy, out, c->w[0], in,
                   c->dx_acc[0] ? 1.0f : 0.0f, c->dx[0], in);
}

const pare_op_def pare_op_linear = {
    .name = "linear",
    .min_in = 1,
    .max_in = 1,
    .infer = linear_infer,
    .params = linear_params,
    .init = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
    .ws_floats = linear_ws,
    .aux_bytes = linear_aux,
    .macs = linear_macs,
    .backward_needs_x = 1,
    .handles_dw_mask = 1,
    .sparse_path = linear_sparse_path,
};
