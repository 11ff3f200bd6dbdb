/* Ops that move or combine whole tensors: residual add and elementwise mul
 * (the second input may broadcast to the first), channel concat, flatten. */
#include <string.h>

#include "core/error.h"
#include "kernels/vec.h"
#include "ops/ops.h"

/* b broadcasts to a when each of its c, h, w is a's or 1 (a bias per channel, a
 * mask per position, a scale per sample); the output has a's shape. */
static pare_status binary_infer(const pare_graph *g, pare_node *n)
{
    pare_shape a = g->nodes[n->in[0]].out, b = g->nodes[n->in[1]].out;
    if (!pare_shape_broadcasts(b, a))
        return pare_fail(PARE_ESHAPE,
                         "the second input %dx%dx%d does not broadcast to the first %dx%dx%d; "
                         "each of its channels, height and width must equal the first's or be 1",
                         b.c, b.h, b.w, a.c, a.h, a.w);
    n->out = a;
    return PARE_OK;
}

static int same_shape(pare_shape a, pare_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

/* Offset, inside one sample of b, of the value that meets a's (c, y, 0); xstep
 * is 1 when b runs along a row and 0 when its one value repeats. */
static size_t bcast_row(pare_shape a, pare_shape b, int c, int y, int *xstep)
{
    *xstep = b.w == a.w ? 1 : 0;
    return ((size_t)(b.c == 1 ? 0 : c) * (size_t)b.h + (size_t)(b.h == 1 ? 0 : y)) * (size_t)b.w;
}

/* y = a (+ or *) b, b broadcast; parallel over (sample, channel) planes. */
static void bcast_forward(const pare_op_ctx *c, int mul)
{
    pare_shape a = c->xs[0], b = c->xs[1];
    size_t asz = pare_shape_size(a), bsz = pare_shape_size(b), hw = (size_t)a.h * (size_t)a.w;
    long planes = (long)c->n * a.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)hw > 32768)
    for (long p = 0; p < planes; p++) {
        long s = p / a.c;
        int ch = (int)(p % a.c);
        const float *xa = c->x[0] + (size_t)s * asz + (size_t)ch * hw;
        const float *xb0 = c->x[1] + (size_t)s * bsz;
        float *y = c->y + (size_t)s * asz + (size_t)ch * hw;
        for (int r = 0; r < a.h; r++) {
            int step;
            const float *xb = xb0 + bcast_row(a, b, ch, r, &step);
            const float *ra = xa + (size_t)r * a.w;
            float *ry = y + (size_t)r * a.w;
            if (mul)
                for (int x = 0; x < a.w; x++)
                    ry[x] = ra[x] * xb[x * step];
            else
                for (int x = 0; x < a.w; x++)
                    ry[x] = ra[x] + xb[x * step];
        }
    }
}

/* The gradient of the broadcast input: each of its values sums, in double and
 * in a's order, the dy (times a, for mul) of the positions it met. Samples are
 * independent, so threads split them and the sums do not depend on threads. */
static void bcast_reduce(const pare_op_ctx *c, int mul, float *db, int acc)
{
    pare_shape a = c->xs[0], b = c->xs[1];
    size_t asz = pare_shape_size(a), bsz = pare_shape_size(b);
    if (asz == bsz) {
        size_t total = (size_t)c->n * asz;
        for (size_t i = 0; i < total; i++) {
            float g = mul ? c->dy[i] * c->x[0][i] : c->dy[i];
            db[i] = acc ? db[i] + g : g;
        }
        return;
    }
    int c1 = b.c == 1 ? a.c : 1, h1 = b.h == 1 ? a.h : 1, w1 = b.w == 1 ? a.w : 1;
    long items = (long)c->n * (long)bsz, work = (long)c->n * (long)asz;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (work > 32768)
    for (long it = 0; it < items; it++) {
        long s = it / (long)bsz;
        size_t k = (size_t)(it % (long)bsz);
        int bx = (int)(k % (size_t)b.w), by = (int)(k / (size_t)b.w % (size_t)b.h);
        int bc = (int)(k / ((size_t)b.w * (size_t)b.h));
        const float *dy = c->dy + (size_t)s * asz;
        const float *xa = mul ? c->x[0] + (size_t)s * asz : NULL;
        double sum = 0;
        for (int i = 0; i < c1; i++)
            for (int j = 0; j < h1; j++) {
                size_t ch = (size_t)(b.c == 1 ? i : bc), y = (size_t)(b.h == 1 ? j : by);
                size_t row = (ch * (size_t)a.h + y) * (size_t)a.w;
                for (int q = 0; q < w1; q++) {
                    size_t at = row + (size_t)(b.w == 1 ? q : bx);
                    sum += mul ? (double)dy[at] * (double)xa[at] : (double)dy[at];
                }
            }
        float *d = db + (size_t)s * bsz + k;
        *d = acc ? *d + (float)sum : (float)sum;
    }
}

static void add_forward(const pare_op_ctx *c)
{
    if (!same_shape(c->xs[0], c->xs[1])) {
        bcast_forward(c, 0);
        return;
    }
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
    pass_grad(c, 0, 0, 0, total);
    if (same_shape(c->xs[0], c->xs[1]))
        pass_grad(c, 1, 0, 0, total);
    else if (c->dx[1])
        bcast_reduce(c, 0, c->dx[1], c->dx_acc[1]);
}

const pare_op_def pare_op_add = {
    .name = "add",
    .min_in = 2,
    .max_in = 2,
    .infer = binary_infer,
    .forward = add_forward,
    .backward = add_backward,
};

static void mul_forward(const pare_op_ctx *c) { bcast_forward(c, 1); }

/* da = dy * b (b broadcast), then db; an input listed twice (x * x) gets da
 * written first and db added, as the executor's order asks. */
static void mul_backward(const pare_op_ctx *c)
{
    pare_shape a = c->xs[0], b = c->xs[1];
    size_t asz = pare_shape_size(a), bsz = pare_shape_size(b), hw = (size_t)a.h * (size_t)a.w;
    if (c->dx[0]) {
        float *dx = c->dx[0];
        int acc = c->dx_acc[0];
        long planes = (long)c->n * a.c;
#pragma omp parallel for num_threads(c->threads) schedule(static) if (planes * (long)hw > 32768)
        for (long p = 0; p < planes; p++) {
            long s = p / a.c;
            int ch = (int)(p % a.c);
            size_t base = (size_t)s * asz + (size_t)ch * hw;
            for (int r = 0; r < a.h; r++) {
                int step;
                const float *xb = c->x[1] + (size_t)s * bsz + bcast_row(a, b, ch, r, &step);
                const float *dy = c->dy + base + (size_t)r * a.w;
                float *d = dx + base + (size_t)r * a.w;
                for (int x = 0; x < a.w; x++)
                    d[x] = acc ? d[x] + dy[x] * xb[x * step] : dy[x] * xb[x * step];
            }
        }
    }
    if (c->dx[1])
        bcast_reduce(c, 1, c->dx[1], c->dx_acc[1]);
}

static double mul_macs(const pare_graph *g, const pare_node *n)
{
    (void)g;
    return (double)pare_shape_size(n->out);
}

const pare_op_def pare_op_mul = {
    .name = "mul",
    .min_in = 2,
    .max_in = 2,
    .infer = binary_infer,
    .forward = mul_forward,
    .backward = mul_backward,
    .macs = mul_macs,
    .backward_needs_x = 1,
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
