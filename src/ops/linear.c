/* linear (fully connected): y = x W^T + b on the flattened sample, through GEMM. */
#include <math.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "ops/ops.h"

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

static void linear_init(pare_graph *g, int node, uint64_t seed)
{
    const pare_node *n = &g->nodes[node];
    pare_tensor *w = g->params[n->param[0]].t;
    float bound = 1.0f / sqrtf((float)w->dims[1]);
    pare_init_uniform(w->data, w->n, bound, seed, node, PARE_ROLE_WEIGHT);
    if (n->n_param > 1) {
        pare_tensor *b = g->params[n->param[1]].t;
        pare_init_uniform(b->data, b->n, bound, seed, node, PARE_ROLE_BIAS);
    }
}

static double linear_macs(const pare_graph *g, const pare_node *n)
{
    return (double)pare_shape_size(g->nodes[n->in[0]].out) * n->a.out_channels;
}

static void linear_forward(const pare_op_ctx *c)
{
    int in = (int)pare_shape_size(c->xs[0]), out = c->node->a.out_channels;
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
    if (c->dw[0])
        pare_sgemm(c->threads, 1, 0, out, in, c->n, 1.0f, c->dy, out, c->x[0], in, 0.0f, c->dw[0], in);
    if (c->node->n_param > 1 && c->dw[1]) {
        float *db = c->dw[1];
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (long b = 0; b < c->n; b++)
                s += c->dy[b * out + o];
            db[o] = (float)s;
        }
    }
    if (c->dx[0])
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
    .macs = linear_macs,
    .backward_needs_x = 1,
};
