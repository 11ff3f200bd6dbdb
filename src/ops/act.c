/* relu and relu6 through the vec kernels, split across threads in cache-line chunks. */
#include "core/error.h"
#include "core/threads.h"
#include "kernels/vec.h"
#include "ops/ops.h"

/* Below this many values a parallel region costs more than it saves. */
#define PAR_MIN 32768

static pare_status same_infer(const pare_graph *g, pare_node *n)
{
    n->out = g->nodes[n->in[0]].out;
    return PARE_OK;
}

static int nthreads(size_t total, int threads) { return total < PAR_MIN ? 1 : threads; }

static void chunk(size_t total, int nt, int t, size_t *lo, size_t *hi)
{
    long l, h;
    pare_split_range((long)((total + 15) / 16), nt, t, &l, &h);
    *lo = (size_t)l * 16;
    *hi = (size_t)h * 16 > total ? total : (size_t)h * 16;
    if (*lo > total)
        *lo = total;
}

static void relu_forward(const pare_op_ctx *c)
{
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    const pare_vec_kernels *vk = pare_vec();
    int six = c->node->op == PARE_OP_RELU6;
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        if (six)
            vk->f32_vrelu6(hi - lo, c->x[0] + lo, c->y + lo);
        else
            vk->f32_vrelu(hi - lo, c->x[0] + lo, c->y + lo);
    }
}

static void relu_backward(const pare_op_ctx *c)
{
    if (!c->dx[0])
        return;
    size_t total = (size_t)c->n * pare_shape_size(c->node->out);
    const pare_vec_kernels *vk = pare_vec();
    int six = c->node->op == PARE_OP_RELU6;
    int nt = nthreads(total, c->threads);
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        chunk(total, nt, pare_thread_id(), &lo, &hi);
        if (six)
            vk->f32_vrelu6_bwd(hi - lo, c->y + lo, c->dy + lo, c->dx[0] + lo, c->dx_acc[0]);
        else
            vk->f32_vrelu_bwd(hi - lo, c->y + lo, c->dy + lo, c->dx[0] + lo, c->dx_acc[0]);
    }
}

const pare_op_def pare_op_relu = {
    .name = "relu",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .backward_needs_y = 1,
};

const pare_op_def pare_op_relu6 = {
    .name = "relu6",
    .min_in = 1,
    .max_in = 1,
    .infer = same_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .backward_needs_y = 1,
};
