/* Ops that move or combine whole tensors: residual add, channel concat, flatten. */
#include <string.h>

#include "core/error.h"
#include "kernels/vec.h"
#include "ops/ops.h"

static pare_status add_infer(const pare_graph *g, pare_node *n)
{
    pare_shape a = g->nodes[n->in[0]].out, b = g->nodes[n->in[1]].out;
    if (a.c != b.c || a.h != b.h || a.w != b.w)
        return pare_fail(PARE_ESHAPE, "adds %dx%dx%d to %dx%dx%d; the shapes must be equal", a.c, a.h,
                         a.w, b.c, b.h, b.w);
    n->out = a;
    return PARE_OK;
}

static void add_forward(const pare_op_ctx *c)
{
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    pare_vec()->f32_vadd(total, c->x[0], c->x[1], c->y);
}

/* dx (+)= dy for each input that wants it, in order (an input listed twice gets both). */
static void pass_grad(const pare_op_ctx *c, int j, size_t off_dx, size_t off_dy, size_t len)
{
    if (!c->dx[j])
        return;
    if (c->dx_acc[j])
        pare_vec()->f32_vacc(len, c->dy + off_dy, c->dx[j] + off_dx);
    else
        memcpy(c->dx[j] + off_dx, c->dy + off_dy, len * sizeof(float));
}

static void add_backward(const pare_op_ctx *c)
{
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    for (int j = 0; j < 2; j++)
        pass_grad(c, j, 0, 0, total);
}

const pare_op_def pare_op_add = {
    .name = "add",
    .min_in = 2,
    .max_in = 2,
    .infer = add_infer,
    .forward = add_forward,
    .backward = add_backward,
};

static pare_status concat_infer(const pare_graph *g, pare_node *n)
{
    pare_shape a = g->nodes[n->in[0]].out;
    long ch = 0;
    for (int i = 0; i < n->n_in; i++) {
        pare_shape b = g->nodes[n->in[i]].out;
        if (b.h != a.h || b.w != a.w)
            return pare_fail(PARE_ESHAPE, "input %d is %dx%d but input 0 is %dx%d; concat needs equal heights and widths",
                             i, b.h, b.w, a.h, a.w);
        ch += b.c;
    }
    if (ch > 1 << 20)
        return pare_fail(PARE_ESHAPE, "%ld channels are too many", ch);
    n->out = (pare_shape){(int)ch, a.h, a.w};
    return PARE_OK;
}

static void concat_forward(const pare_op_ctx *c)
{
    size_t out = pare_shape_size(c->node->out);
    for (long b = 0; b < c->n; b++) {
        size_t off = 0;
        for (int j = 0; j < c->node->n_in; j++) {
            size_t len = pare_shape_size(c->xs[j]);
            memcpy(c->y + b * out + off, c->x[j] + b * len, len * sizeof(float));
            off += len;
        }
    }
}

static void concat_backward(const pare_op_ctx *c)
{
    size_t out = pare_shape_size(c->node->out);
    size_t off = 0;
    for (int j = 0; j < c->node->n_in; j++) {
        size_t len = pare_shape_size(c->xs[j]);
        for (long b = 0; b < c->n; b++)
            pass_grad(c, j, b * len, b * out + off, len);
        off += len;
    }
}

const pare_op_def pare_op_concat = {
    .name = "concat",
    .min_in = 1,
    .max_in = -1,
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};

static pare_status flatten_infer(const pare_graph *g, pare_node *n)
{
    size_t s = pare_shape_size(g->nodes[n->in[0]].out);
    if (s > (size_t)1 << 30)
        return pare_fail(PARE_ESHAPE, "%zu values per sample are too many to flatten", s);
    n->out = (pare_shape){(int)s, 1, 1};
    return PARE_OK;
}

/* Flatten shares its input's bytes, so forward has nothing to do. */
static void flatten_forward(const pare_op_ctx *c) { (void)c; }

/* Runs only when the input has other consumers (else its gradient buffer is ours). */
static void flatten_backward(const pare_op_ctx *c)
{
    pass_grad(c, 0, 0, 0, (size_t)c->n * pare_shape_size(c->node->out));
}

const pare_op_def pare_op_flatten = {
    .name = "flatten",
    .min_in = 1,
    .max_in = 1,
    .infer = flatten_infer,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .alias_input = 1,
};
