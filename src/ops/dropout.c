/* Inverted dropout: in training each value is kept with probability 1 - p and
 * scaled by 1/(1 - p); the keep mask comes from a stream per (step, sample), so
 * it is the same whatever the thread count. */
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "ops/ops.h"

static pare_status dropout_infer(const pare_graph *g, pare_node *n)
{
    if (!(n->a.p >= 0.0f) || !(n->a.p < 1.0f))
        return pare_fail(PARE_EINVAL, "probability %g must be in [0, 1)", (double)n->a.p);
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

static size_t dropout_aux(const pare_graph *g, const pare_node *n, int batch)
{
    (void)g;
    return pare_shape_size(n->out) * (size_t)batch;
}

static void dropout_forward(const pare_op_ctx *c)
{
    size_t per = pare_shape_size(c->node->out);
    float p = c->node->a.p;
    if (!c->training || p == 0.0f) {
        memcpy(c->y, c->x[0], sizeof(float) * per * (size_t)c->n);
        return;
    }
    float scale = 1.0f / (1.0f - p);
    uint8_t *mask = c->aux;
#pragma omp parallel for num_threads(c->threads) schedule(static)
    for (long b = 0; b < c->n; b++) {
        pare_rng r;
        pare_rng_seed(&r, c->seed, (uint64_t)b, 0xd50, 0);
        const float *x = c->x[0] + b * per;
        float *y = c->y + b * per;
        uint8_t *m = mask + b * per;
        for (size_t i = 0; i < per; i++) {
            m[i] = pare_rng_uniform(&r) >= p;
            y[i] = m[i] ? x[i] * scale : 0.0f;
        }
    }
}

static void dropout_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    size_t total = pare_shape_size(c->node->out) * (size_t)c->n;
    float p = c->node->a.p;
    float *dx = c->dx[0];
    int acc = c->dx_acc[0];
    if (!c->training || p == 0.0f) {
        for (size_t i = 0; i < total; i++)
            dx[i] = acc ? dx[i] + c->dy[i] : c->dy[i];
        return;
    }
    float scale = 1.0f / (1.0f - p);
    const uint8_t *m = c->aux;
    for (size_t i = 0; i < total; i++) {
        float v = m[i] ? c->dy[i] * scale : 0.0f;
        dx[i] = acc ? dx[i] + v : v;
    }
}

const pare_op_def pare_op_dropout = {
    .name = "dropout",
    .min_in = 1,
    .max_in = 1,
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .aux_bytes = dropout_aux,
};
