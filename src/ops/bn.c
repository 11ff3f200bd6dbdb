/* Batch normalisation over (N, H, W) per channel: batch statistics and running
 * averages in training, running statistics in evaluation or when the layer is
 * frozen; channels are independent, so threads split channels and each sum
 * runs in a fixed order. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "kernels/vec.h"
#include "ops/ops.h"

enum { P_GAMMA, P_BETA, P_MEAN, P_VAR };

static pare_status bn_infer(const pare_graph *g, pare_node *n)
{
    if (!(n->a.eps > 0) || !(n->a.eps < 1))
        return pare_fail(PARE_EINVAL, "eps %g must be in (0, 1)", (double)n->a.eps);
    if (!(n->a.momentum >= 0) || !(n->a.momentum <= 1))
        return pare_fail(PARE_EINVAL, "momentum %g must be in [0, 1]", (double)n->a.momentum);
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

static int bn_params(const pare_graph *g, const pare_node *n, pare_param_spec *s)
{
    int c = g->nodes[n->in[0]].out.c;
    s[0] = (pare_param_spec){PARE_ROLE_BN_GAMMA, 1, {c, 0, 0, 0}, 1};
    s[1] = (pare_param_spec){PARE_ROLE_BN_BETA, 1, {c, 0, 0, 0}, 1};
    s[2] = (pare_param_spec){PARE_ROLE_BN_MEAN, 1, {c, 0, 0, 0}, 0};
    s[3] = (pare_param_spec){PARE_ROLE_BN_VAR, 1, {c, 0, 0, 0}, 0};
    return 4;
}

static void bn_init(pare_graph *g, int node, uint64_t seed, int scheme)
{
    (void)seed;
    (void)scheme;
    const pare_node *n = &g->nodes[node];
    for (int k = 0; k < 4; k++) {
        pare_tensor *t = g->params[n->param[k]].t;
        float v = (k == P_GAMMA || k == P_VAR) ? 1.0f : 0.0f;
        for (size_t i = 0; i < t->n; i++)
            t->data[i] = v;
    }
}

/* aux: per channel, the batch mean and 1/sqrt(var + eps) used by forward. */
static size_t bn_aux(const pare_graph *g, const pare_node *n, int batch)
{
    (void)batch;
    return sizeof(float) * 2 * (size_t)g->nodes[n->in[0]].out.c;
}

/* In training, a frozen BN uses and keeps its running statistics. */
static int uses_batch_stats(const pare_op_ctx *c)
{
    return c->training && !c->g->params[c->node->param[P_GAMMA]].frozen;
}

static double bn_macs(const pare_graph *g, const pare_node *n)
{
    (void)g;
    return (double)pare_shape_size(n->out);
}

static void bn_forward(const pare_op_ctx *c)
{
    pare_shape s = c->xs[0];
    long hw = (long)s.h * s.w, C = s.c;
    const pare_vec_kernels *vk = pare_vec();
    float *gamma = c->w[P_GAMMA], *beta = c->w[P_BETA], *rm = c->w[P_MEAN], *rv = c->w[P_VAR];
    float eps = c->node->a.eps, mom = c->node->a.momentum;
    float *saved = c->aux;
    int batch_stats = uses_batch_stats(c);
    double m_count = (double)c->n * (double)hw;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long ch = 0; ch < C; ch++) {
        float mean, invstd;
        if (batch_stats) {
            /* One pass over the channel: sums shifted by its first value, in double. */
            double k = c->x[0][ch * hw], s1 = 0, s2 = 0;
            for (long b = 0; b < c->n; b++) {
                if (b + 1 < c->n)
                    pare_prefetch_floats(c->x[0] + ((b + 1) * C + ch) * hw, hw, 0);
                vk->f32_vsum2((size_t)hw, c->x[0] + (b * C + ch) * hw, k, &s1, &s2);
            }
            double mk = s1 / m_count, mu = k + mk;
            double sq = s2 - s1 * mk;
            if (sq < 0)
                sq = 0;
            double var = sq / m_count;
            mean = (float)mu;
            invstd = (float)(1.0 / sqrt(var + (double)eps));
            double unbiased = m_count > 1 ? sq / (m_count - 1) : var;
            rm[ch] = (float)((1.0 - mom) * rm[ch] + mom * mu);
            rv[ch] = (float)((1.0 - mom) * rv[ch] + mom * unbiased);
        } else {
            mean = rm[ch];
            invstd = (float)(1.0 / sqrt((double)rv[ch] + (double)eps));
        }
        saved[2 * ch] = mean;
        saved[2 * ch + 1] = invstd;
        float a = gamma[ch] * invstd, bb = beta[ch] - mean * a;
        for (long b = 0; b < c->n; b++) {
            if (b + 1 < c->n)
                pare_prefetch_floats(c->y + ((b + 1) * C + ch) * hw, hw, 1);
            vk->f32_vaffine((size_t)hw, c->x[0] + (b * C + ch) * hw, a, bb, c->y + (b * C + ch) * hw);
        }
    }
}

static void bn_backward(const pare_op_ctx *c)
{
    pare_shape s = c->xs[0];
    long hw = (long)s.h * s.w, C = s.c;
    const pare_vec_kernels *vk = pare_vec();
    const float *gamma = c->w[P_GAMMA];
    const float *saved = c->aux;
    float *dgamma = c->dw[P_GAMMA], *dbeta = c->dw[P_BETA];
    float *dx = c->dx[0];
    int acc = c->dx_acc[0];
    int batch_stats = uses_batch_stats(c);
    double m_count = (double)c->n * (double)hw;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long ch = 0; ch < C; ch++) {
        float mean = saved[2 * ch], invstd = saved[2 * ch + 1];
        double sdy = 0, sdyx = 0;
        for (long b = 0; b < c->n; b++) {
            const float *dy = c->dy + (b * C + ch) * hw;
            if (b + 1 < c->n) {
                pare_prefetch_floats(dy + C * hw, hw, 0);
                pare_prefetch_floats(c->x[0] + ((b + 1) * C + ch) * hw, hw, 0);
            }
            sdy += vk->f32_vsum((size_t)hw, dy);
            sdyx += vk->f32_vdot((size_t)hw, c->x[0] + (b * C + ch) * hw, (double)mean, dy);
        }
        double dg = sdyx * invstd;
        if (dgamma)
            dgamma[ch] = (float)dg;
        if (dbeta)
            dbeta[ch] = (float)sdy;
        if (!dx)
            continue;
        float k = gamma[ch] * invstd;
        float a = batch_stats ? (float)(sdy / m_count) : 0.0f;
        float bcoef = batch_stats ? (float)(dg * invstd / m_count) : 0.0f;
        for (long b = 0; b < c->n; b++) {
            long off = (b * C + ch) * hw;
            if (b + 1 < c->n)
                pare_prefetch_floats(dx + off + C * hw, hw, 1);
            vk->f32_vbn_bwd((size_t)hw, c->x[0] + off, c->dy + off, mean, k, a, bcoef, dx + off, acc);
        }
    }
}

const pare_op_def pare_op_batchnorm = {
    .name = "batchnorm",
    .min_in = 1,
    .max_in = 1,
    .infer = bn_infer,
    .params = bn_params,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .aux_bytes = bn_aux,
    .macs = bn_macs,
    .backward_needs_x = 1,
};
