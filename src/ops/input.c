/* The graph input: its per-sample shape lives in its attributes. */
#include "core/error.h"
#include "ops/ops.h"

static pare_status input_infer(const pare_graph *g, pare_node *n)
{
    (void)g;
    int c = n->a.out_channels, h = n->a.kernel[0], w = n->a.kernel[1];
    if (c <= 0 || h <= 0 || w <= 0 || c > 1 << 16 || h > 1 << 16 || w > 1 << 16)
        return pare_fail(PARE_ESHAPE, "input shape %dx%dx%d must be positive and at most 65536 per dimension", c, h, w);
    if ((double)c * h * w > 1 << 30)
        return pare_fail(PARE_ESHAPE, "input shape %dx%dx%d is too large", c, h, w);
    n->out.c = c;
    n->out.h = h;
    n->out.w = w;
    return PARE_OK;
}

static void input_nop(const pare_op_ctx *c) { (void)c; }

const pare_op_def pare_op_input = {
    .name = "input",
    .min_in = 0,
    .max_in = 0,
    .infer = input_infer,
    .forward = input_nop,
    .backward = input_nop,
};
