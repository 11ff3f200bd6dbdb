/* Sparse training: the sptrain kernels against their ref twin on guard-page
 * buffers; the sparse paths of conv2d and linear against the dense ones (the
 * same weights with zeros) on random masks of several densities and shapes,
 * with narrower gradient masks, accumulate mode and 1 and 2 threads; and
 * training steps through the executor with sparse gradients on and off. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "kernels/sptrain.h"
#include "ops/loss.h"
#include "ops/sparse.h"
#include "test.h"
#include "train/train.h"

/* Max |a - b| over the largest |b| (at least 1): sums of many terms in
 * another order differ by rounding relative to their terms, not to
 * themselves when they cancel. */
static double max_rel(const float *a, const float *b, size_t n)
{
    double worst = 0, scale = 1;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst))
            worst = d;
    }
    return worst / scale;
}

/* ---- kernels ------------------------------------------------------------- */

/* Random rows over an operand of `span` floats per position range [0, q1):
 * every offset leaves room for q1 positions, so the operand's last position
 * touches the guard page. */
static void random_rows(pare_rng *r, int rows, int per_row, long span, int32_t *start, int32_t *off,
                        float *w)
{
    start[0] = 0;
    for (int i = 0; i < rows; i++) {
        int k = (int)pare_rng_below(r, (uint64_t)per_row + 1);
        for (int j = 0; j < k; j++) {
            off[start[i] + j] = (int32_t)pare_rng_below(r, (uint64_t)span + 1);
            w[start[i] + j] = (float)(2 * pare_rng_uniform_d(r) - 1);
        }
        start[i + 1] = start[i] + k;
    }
    /* One entry at the very end, so an overread hits the guard page. */
    if (rows > 0 && start[rows] > 0)
        off[start[rows] - 1] = (int32_t)span;
}

PARE_TEST(kernels_sptrain_vs_ref)
{
    const pare_sptrain_kernels *ref = pare_sptrain_at(PARE_ISA_REF);
    CHECK(ref != NULL);
    static const long qs[] = {0, 1, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 200, 1000};
    pare_rng r;
    pare_rng_seed(&r, 77, 1, 0, 0);
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_sptrain_kernels *k = pare_sptrain_at(level);
        if (!k) {
            printf("  (no %s on this machine or build)\n", pare_isa_name((pare_isa_level)level));
            continue;
        }
        for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++) {
            long q1 = qs[qi], q0 = q1 > 20 ? 3 : 0, span = 37;
            int rows = 5, per = 19;
            int32_t start[6], off[5 * 19];
            float w[5 * 19];
            random_rows(&r, rows, per, span, start, off, w);
            size_t in_n = (size_t)(span + q1) + 1, out_n = (size_t)rows * (size_t)(q1 + 2);
            float *in = pare_guard_alloc(in_n), *a = pare_guard_alloc(out_n);
            float *o1 = pare_guard_alloc(out_n), *o2 = pare_guard_alloc(out_n);
            pare_test_fill(in, in_n, -1, 1, 10 + qi);
            pare_test_fill(a, out_n, -1, 1, 20 + qi);
            pare_sp_rows R = {rows, start, off, w};
            for (int acc = 0; acc < 2; acc++) {
                pare_test_fill(o1, out_n, -1, 1, 30 + qi);
                memcpy(o2, o1, out_n * sizeof(float));
                /* in has one float of slack past position q1 - 1 of the last entry only */
                ref->f32_spgather(&R, 1, rows, in + 1, o1, q1 + 2, q0, q1, acc);
                k->f32_spgather(&R, 1, rows, in + 1, o2, q1 + 2, q0, q1, acc);
                double e = max_rel(o2, o1, out_n);
                CHECKF(e < 1e-5, "%s spgather q=[%ld,%ld) acc %d differs from ref by %g",
                       pare_isa_name((pare_isa_level)level), q0, q1, acc, e);
            }
            float d1[5 * 19], d2[5 * 19];
            for (int i = 0; i < 5 * 19; i++)
                d1[i] = d2[i] = 0.25f * (float)(i % 7);
            ref->f32_sddmm(&R, 0, rows, in + 1, a, q1 + 2, q0, q1, d1);
            k->f32_sddmm(&R, 0, rows, in + 1, a, q1 + 2, q0, q1, d2);
            double e = max_rel(d2, d1, (size_t)start[rows]);
            CHECKF(e < 1e-5, "%s sddmm q=[%ld,%ld) differs from ref by %g", pare_isa_name((pare_isa_level)level),
                   q0, q1, e);
            /* Entries past the rows asked for stay as they were. */
            for (int i = start[rows]; i < 5 * 19; i++)
                CHECK(d2[i] == 0.25f * (float)(i % 7));
            pare_guard_free(in, in_n);
            pare_guard_free(a, out_n);
            pare_guard_free(o1, out_n);
            pare_guard_free(o2, out_n);
        }
    }
}

/* ---- one op, dense against sparse --------------------------------------- */

typedef struct op_case {
    pare_graph *g;
    int node, n, threads;
    size_t xn, yn, wn, bn;
    const float *x, *dy;
} op_case;

/* Forward (y), then backward when dx or dw: dx (acc), dw with dw_mask dwm, db. */
static void run_op(const op_case *oc, const uint8_t *wmask, float *y, float *dx, int acc, float *dw,
                   const uint8_t *dwm, float *db)
{
    const pare_graph *g = oc->g;
    const pare_node *nd = &g->nodes[oc->node];
    const pare_op_def *def = pare_op_get(nd->op);
    size_t wsf = def->ws_floats ? (def->ws_floats(g, nd, oc->n, 1) + 15) / 16 * 16 : 0;
    float *ws = wsf ? pare_alloc_array(wsf * (size_t)oc->threads, sizeof(float), 0) : NULL;
    size_t ab = def->aux_bytes ? def->aux_bytes(g, nd, oc->n) : 0;
    void *aux = ab ? pare_alloc(ab, 1) : NULL; /* zeroed, as the executor gives it */
    float *w[2] = {g->params[nd->param[0]].t->data, nd->n_param > 1 ? g->params[nd->param[1]].t->data : NULL};
    const uint8_t *mk[2] = {wmask, NULL}, *dwmk[2] = {dwm, NULL};
    pare_shape xs = g->nodes[nd->in[0]].out;
    const float *xp[1] = {oc->x};
    float *dxs[1] = {dx}, *dws[2] = {dw, db};
    int accs[1] = {acc};
    pare_op_ctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.node = nd;
    c.n = oc->n;
    c.training = 1;
    c.threads = oc->threads;
    c.x = xp;
    c.xs = &xs;
    c.y = y;
    c.w = w;
    c.mask = mk;
    c.aux = aux;
    c.ws = ws;
    c.ws_floats = wsf;
    def->forward(&c);
    if (dx || dw || db) {
        c.dy = oc->dy;
        c.dx = dxs;
        c.dx_acc = accs;
        c.dw = dws;
        c.dw_mask = dwmk;
        def->backward(&c);
    }
    pare_free(ws);
    pare_free(aux);
}

static uint8_t *random_mask(size_t n, double density, uint64_t seed)
{
    uint8_t *m = malloc(n);
    pare_rng r;
    pare_rng_seed(&r, seed, 3, 0, 0);
    for (size_t i = 0; i < n; i++)
        m[i] = pare_rng_uniform_d(&r) < density;
    return m;
}

/* dw at m's positions matches want, and is exactly 0 elsewhere. */
static void check_masked_grad(const char *what, const float *dw, const float *want, const uint8_t *m, size_t n,
                              double tol)
{
    double worst = 0, scale = 1;
    size_t stray = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] && fabs((double)want[i]) > scale)
            scale = fabs((double)want[i]);
    for (size_t i = 0; i < n; i++) {
        if (!m[i]) {
            stray += dw[i] != 0.0f;
            continue;
        }
        double d = fabs((double)dw[i] - (double)want[i]);
        if (!(d <= worst))
            worst = d;
    }
    worst /= scale;
    CHECKF(worst <= tol, "%s: dW differs from the dense one by %g", what, worst);
    CHECKF(stray == 0, "%s: %zu gradients outside the mask are not 0", what, stray);
}

/* Every check of the sparse paths of node 1 of g on one density: y, dx and dW
 * (at the mask) as the dense path's; narrower gradient mask; a dense weight
 * gradient beside a sparse input gradient; accumulate mode; dW alone; 1 and 2
 * threads. */
static void check_sparse_op(pare_graph *g, int n, double density, uint64_t seed, const char *what)
{
    const double tol = 1e-5;
    op_case oc;
    memset(&oc, 0, sizeof oc);
    oc.g = g;
    oc.node = 1;
    oc.n = n;
    const pare_node *nd = &g->nodes[1];
    pare_param *wp = &g->params[nd->param[0]];
    oc.xn = pare_shape_size(g->nodes[0].out) * (size_t)n;
    oc.yn = pare_shape_size(nd->out) * (size_t)n;
    oc.wn = wp->t->n;
    oc.bn = nd->n_param > 1 ? g->params[nd->param[1]].t->n : 0;
    uint8_t *m = random_mask(oc.wn, density, seed), *gm = random_mask(oc.wn, 0.5, seed + 1);
    for (size_t i = 0; i < oc.wn; i++)
        gm[i] &= m[i];
    pare_test_fill(wp->t->data, oc.wn, -1, 1, seed + 2);
    for (size_t i = 0; i < oc.wn; i++)
        if (!m[i])
            wp->t->data[i] = 0.0f;
    if (oc.bn)
        pare_test_fill(g->params[nd->param[1]].t->data, oc.bn, -1, 1, seed + 3);
    /* The room for the sparse paths is planned for masked weights. */
    free(wp->mask);
    wp->mask = m;
    float *x = pare_guard_alloc(oc.xn), *dy = pare_guard_alloc(oc.yn);
    pare_test_fill(x, oc.xn, -1, 1, seed + 4);
    pare_test_fill(dy, oc.yn, -1, 1, seed + 5);
    oc.x = x;
    oc.dy = dy;
    size_t bnn = oc.bn ? oc.bn : 1;
    float *y0 = pare_guard_alloc(oc.yn), *dx0 = pare_guard_alloc(oc.xn), *dw0 = pare_guard_alloc(oc.wn);
    float *db0 = pare_guard_alloc(bnn);
    float *y1 = pare_guard_alloc(oc.yn), *dx1 = pare_guard_alloc(oc.xn), *dw1 = pare_guard_alloc(oc.wn);
    float *db1 = pare_guard_alloc(bnn), *dw2 = pare_guard_alloc(oc.wn);
    for (int threads = 1; threads <= 2; threads++) {
        oc.threads = threads;
        char tag[160];
        snprintf(tag, sizeof tag, "%s density %.2f batch %d threads %d", what, density, n, threads);
        /* the dense reference: full gradients */
        pare_sparse_force(0);
        run_op(&oc, m, y0, dx0, 0, dw0, NULL, oc.bn ? db0 : NULL);
        pare_sparse_force(1);
        for (size_t i = 0; i < oc.xn; i++)
            dx1[i] = NAN; /* overwrite mode must not read it */
        run_op(&oc, m, y1, dx1, 0, dw1, m, oc.bn ? db1 : NULL);
        double e = max_rel(y1, y0, oc.yn);
        CHECKF(e < tol, "%s: y differs from the dense path by %g", tag, e);
        e = max_rel(dx1, dx0, oc.xn);
        CHECKF(e < tol, "%s: dx differs from the dense path by %g", tag, e);
        check_masked_grad(tag, dw1, dw0, m, oc.wn, tol);
        if (oc.bn)
            CHECKF(max_rel(db1, db0, oc.bn) < tol, "%s: db differs", tag);
        /* a narrower gradient mask: the same values at its positions */
        run_op(&oc, m, y1, NULL, 0, dw2, gm, NULL);
        check_masked_grad(tag, dw2, dw0, gm, oc.wn, tol);
        /* no gradient mask: dense weight gradient, sparse input gradient */
        run_op(&oc, m, y1, dx1, 0, dw2, NULL, NULL);
        e = max_rel(dw2, dw0, oc.wn);
        CHECKF(e < tol, "%s: dense dW beside the sparse dx differs by %g", tag, e);
        e = max_rel(dx1, dx0, oc.xn);
        CHECKF(e < tol, "%s: dx beside a dense dW differs by %g", tag, e);
        /* accumulate mode adds */
        for (size_t i = 0; i < oc.xn; i++)
            dx1[i] = 0.5f;
        run_op(&oc, m, y1, dx1, 1, NULL, NULL, NULL);
        for (size_t i = 0; i < oc.xn; i++)
            dx1[i] -= 0.5f;
        e = max_rel(dx1, dx0, oc.xn);
        CHECKF(e < tol, "%s: accumulate mode dx differs by %g", tag, e);
        /* masks handed to the dense path: the same zeros */
        pare_sparse_force(0);
        run_op(&oc, m, y1, NULL, 0, dw2, gm, NULL);
        check_masked_grad(tag, dw2, dw0, gm, oc.wn, 1e-7);
        pare_sparse_force(-1);
    }
    pare_guard_free(x, oc.xn);
    pare_guard_free(dy, oc.yn);
    pare_guard_free(y0, oc.yn);
    pare_guard_free(dx0, oc.xn);
    pare_guard_free(dw0, oc.wn);
    pare_guard_free(db0, bnn);
    pare_guard_free(y1, oc.yn);
    pare_guard_free(dx1, oc.xn);
    pare_guard_free(dw1, oc.wn);
    pare_guard_free(db1, bnn);
    pare_guard_free(dw2, oc.wn);
    free(gm);
}

static const double densities[] = {0.05, 0.1, 0.3, 0.5};

PARE_TEST_ISA(sparse_conv_matches_dense)
{
    /* c, h, w, out, kh, kw, sh, sw, pads t l b r, dh, dw, groups, bias */
    static const int cases[][16] = {
        {8, 9, 9, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},    /* 3x3 pad 1 stride 1 */
        {16, 7, 5, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},    /* pointwise */
        {6, 11, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0},   /* stride 2 */
        {8, 8, 8, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1},    /* groups 4 */
        {4, 10, 13, 6, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1},   /* 5x5, odd sizes */
        {5, 9, 7, 7, 3, 3, 1, 1, 2, 1, 0, 2, 2, 1, 1, 1},     /* dilation, asymmetric padding */
        {6, 6, 6, 4, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 2, 1},     /* 1x1 stride 2, groups 2 */
        {6, 7, 9, 4, 2, 3, 1, 2, 0, 1, 1, 0, 1, 1, 1, 1},     /* stride 1x2, 2x3 kernel */
        {3, 5, 5, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 0},     /* kernel as wide as the input */
        {4, 9, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1},     /* depthwise: stays dense */
        {1, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},   /* one input channel */
        {32, 14, 14, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* a W1-like layer */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *k = cases[i];
        for (size_t di = 0; di < sizeof densities / sizeof densities[0]; di++)
            for (int n = 1; n <= 7; n += 6) {
                pare_graph *g = pare_graph_new("t");
                int x = pare_graph_input(g, k[0], k[1], k[2]);
                pare_conv2d_desc d = {0};
                d.out_channels = k[3];
                d.kernel_h = k[4];
                d.kernel_w = k[5];
                d.stride_h = k[6];
                d.stride_w = k[7];
                d.pad_top = k[8];
                d.pad_left = k[9];
                d.pad_bottom = k[10];
                d.pad_right = k[11];
                d.dilation_h = k[12];
                d.dilation_w = k[13];
                d.groups = k[14];
                d.no_bias = !k[15];
                int y = pare_graph_conv2d_ex(g, x, &d, "conv");
                CHECKF(y == 1, "case %zu: %s", i, pare_last_error());
                char what[64];
                snprintf(what, sizeof what, "conv case %zu", i);
                if (y == 1)
                    check_sparse_op(g, n, densities[di], 1000 + 10 * i + di, what);
                pare_graph_free(g);
            }
    }
}

PARE_TEST_ISA(sparse_linear_matches_dense)
{
    /* in, out, bias; batches 1, 7 and 33 */
    static const int cases[][3] = {{64, 17, 1}, {300, 40, 0}, {1000, 64, 1}};
    static const int batches[] = {1, 7, 33};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t di = 0; di < sizeof densities / sizeof densities[0]; di++)
            for (size_t bi = 0; bi < 3; bi++) {
                pare_graph *g = pare_graph_new("t");
                int x = pare_graph_input(g, cases[i][0], 1, 1);
                pare_graph_linear(g, x, cases[i][1], cases[i][2], "fc");
                char what[64];
                snprintf(what, sizeof what, "linear case %zu", i);
                check_sparse_op(g, batches[bi], densities[di], 2000 + 10 * i + di, what);
                pare_graph_free(g);
            }
}

/* ---- through the executor ----------------------------------------------- */

/* Masks of the given density on every conv and linear weight but the first
 * conv's and the last linear's, weights zeroed where pruned. */
static void mask_model(pare_graph *g, double density, uint64_t seed)
{
    int first = -1, last = -1;
    for (int v = 1; v < g->n_nodes; v++)
        if (g->nodes[v].op == PARE_OP_CONV2D || g->nodes[v].op == PARE_OP_LINEAR) {
            if (first < 0)
                first = v;
            last = v;
        }
    for (int v = 1; v < g->n_nodes; v++) {
        if (v == first || v == last || (g->nodes[v].op != PARE_OP_CONV2D && g->nodes[v].op != PARE_OP_LINEAR))
            continue;
        pare_param *p = &g->params[g->nodes[v].param[0]];
        free(p->mask);
        p->mask = random_mask(p->t->n, density, seed + (uint64_t)v);
        for (size_t i = 0; i < p->t->n; i++)
            if (!p->mask[i])
                p->t->data[i] = 0.0f;
    }
}

static void fill_batch(pare_exec *e, const pare_graph *g, int n, int32_t *labels)
{
    pare_test_fill(pare_exec_input(e), pare_shape_size(g->nodes[0].out) * (size_t)n, -1, 2, 4242);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)((i * 7) % g->nodes[g->output].out.c);
}

/* Two SGD steps (momentum, weight decay) on a fixed batch. */
static void train_steps(pare_graph *g, pare_exec *e, int n, int threads)
{
    pare_train_config c;
    pare_train_config_init(&c);
    pare_optim *o;
    CHECK_OK(pare_optim_new(g, &c, &o));
    int32_t labels[64];
    int k = g->nodes[g->output].out.c;
    for (int s = 0; s < 2; s++) {
        fill_batch(e, g, n, labels);
        pare_exec_forward(e, n, (uint64_t)s);
        pare_softmax_xent(pare_exec_output(e), labels, n, k, pare_exec_output_grad(e), NULL);
        pare_exec_backward(e, n);
        pare_optim_step(o, g, e, 0.05f, threads);
    }
    pare_optim_free(o);
}

PARE_TEST_ISA(sparse_train_step_matches_dense)
{
    const int n = 24;
    for (int threads = 1; threads <= 2; threads++) {
        pare_graph *a, *b;
        CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 5, &a));
        mask_model(a, 0.1, 9);
        CHECK_OK(pare_graph_clone(a, &b));
        /* b's executor exists before its masks, as in sparse training from
         * scratch: the room for the sparse paths must grow on first use. */
        for (int i = 0; i < b->n_params; i++) {
            free(b->params[i].mask);
            b->params[i].mask = NULL;
        }
        pare_exec *ea, *eb;
        CHECK_OK(pare_exec_new(a, n, 1, threads, &ea));
        CHECK_OK(pare_exec_new(b, n, 1, threads, &eb));
        size_t before = pare_exec_bytes(eb);
        for (int i = 0; i < b->n_params; i++)
            if (a->params[i].mask) {
                b->params[i].mask = malloc(a->params[i].t->n);
                memcpy(b->params[i].mask, a->params[i].mask, a->params[i].t->n);
            }
        int fc1 = pare_graph_find_node(b, "fc1"), conv1 = pare_graph_find_node(b, "block1.conv");
        CHECK(pare_op_sparse_path(b, fc1) == 1);
        CHECK(pare_op_sparse_path(b, conv1) == 0);
        CHECK(pare_op_sparse_path(b, pare_graph_find_node(b, "block3.conv")) == 1);
        pare_sparse_force(0);
        train_steps(a, ea, n, threads);
        pare_sparse_force(-1);
        pare_exec_set_sparse_grads(eb, 1);
        train_steps(b, eb, n, threads);
        CHECKF(pare_exec_bytes(eb) > before, "the executor did not plan room for masks added later");
        for (int i = 0; i < a->n_params; i++) {
            const pare_param *pa = &a->params[i], *pb = &b->params[i];
            double e = max_rel(pb->t->data, pa->t->data, pa->t->n);
            CHECKF(e < 1e-5, "threads %d: %s after two steps differs by %g", threads, pa->name, e);
            const float *gb = pare_exec_param_grad(eb, i);
            if (pb->mask && gb) {
                size_t stray = 0;
                for (size_t j = 0; j < pb->t->n; j++)
                    stray += !pb->mask[j] && (gb[j] != 0.0f || pb->t->data[j] != 0.0f);
                CHECKF(stray == 0, "%s: %zu pruned weights or gradients are not 0", pb->name, stray);
            }
        }
        pare_exec_free(ea);
        pare_exec_free(eb);
        pare_graph_free(a);
        pare_graph_free(b);
    }
}

PARE_TEST(sparse_grad_mask_through_exec)
{
    const int n = 16;
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 6, &g));
    mask_model(g, 0.2, 11);
    pare_exec *e;
    CHECK_OK(pare_exec_new(g, n, 1, 2, &e));
    int32_t labels[16];
    fill_batch(e, g, n, labels);
    int k = g->nodes[g->output].out.c;
    pare_exec_forward(e, n, 1);
    /* Backward reuses the output gradient's buffer: the loss refills it each time. */
#define BACKWARD()                                                                                 \
    do {                                                                                           \
        pare_softmax_xent(pare_exec_output(e), labels, n, k, pare_exec_output_grad(e), NULL);      \
        pare_exec_backward(e, n);                                                                  \
    } while (0)
    BACKWARD();
    /* Dense gradients by default, kept for comparison. */
    float *full[64] = {0};
    for (int i = 0; i < g->n_params && i < 64; i++) {
        const float *gr = pare_exec_param_grad(e, i);
        if (!gr)
            continue;
        full[i] = malloc(sizeof(float) * g->params[i].t->n);
        memcpy(full[i], gr, sizeof(float) * g->params[i].t->n);
    }
    int fc1w = pare_graph_node_param(g, pare_graph_find_node(g, "fc1"), PARE_ROLE_WEIGHT);
    int c3w = pare_graph_node_param(g, pare_graph_find_node(g, "block3.conv"), PARE_ROLE_WEIGHT);
    int c3b = pare_graph_node_param(g, pare_graph_find_node(g, "block3.bn"), PARE_ROLE_BN_GAMMA);
    size_t nonzero = 0;
    for (size_t j = 0; j < g->params[fc1w].t->n; j++)
        nonzero += !g->params[fc1w].mask[j] && full[fc1w][j] != 0.0f;
    CHECKF(nonzero > 0, "with sparse gradients off, pruned weights get gradients");
    /* Sparse gradients on, a narrower explicit mask on fc1 and on a BN scale
     * (an op that does not skip work: the executor zeroes for it). */
    uint8_t *gm = random_mask(g->params[fc1w].t->n, 0.3, 12);
    for (size_t j = 0; j < g->params[fc1w].t->n; j++)
        gm[j] &= g->params[fc1w].mask[j];
    uint8_t *bm = random_mask(g->params[c3b].t->n, 0.5, 13);
    pare_exec_set_sparse_grads(e, 1);
    pare_exec_set_grad_mask(e, fc1w, gm);
    pare_exec_set_grad_mask(e, c3b, bm);
    BACKWARD();
    check_masked_grad("fc1 explicit", pare_exec_param_grad(e, fc1w), full[fc1w], gm, g->params[fc1w].t->n, 1e-5);
    check_masked_grad("block3.conv", pare_exec_param_grad(e, c3w), full[c3w], g->params[c3w].mask,
                      g->params[c3w].t->n, 1e-5);
    check_masked_grad("block3.bn", pare_exec_param_grad(e, c3b), full[c3b], bm, g->params[c3b].t->n, 0);
    /* NULL restores the pruning mask; switching off restores dense gradients. */
    pare_exec_set_grad_mask(e, fc1w, NULL);
    pare_exec_set_grad_mask(e, c3b, NULL);
    BACKWARD();
    check_masked_grad("fc1 default", pare_exec_param_grad(e, fc1w), full[fc1w], g->params[fc1w].mask,
                      g->params[fc1w].t->n, 1e-5);
    pare_exec_set_sparse_grads(e, 0);
    BACKWARD();
#undef BACKWARD
    for (int i = 0; i < g->n_params && i < 64; i++)
        if (full[i]) {
            double err = max_rel(pare_exec_param_grad(e, i), full[i], g->params[i].t->n);
            CHECKF(err < 1e-6, "%s: dense gradients again differ by %g", g->params[i].name, err);
        }
    for (int i = 0; i < 64; i++)
        free(full[i]);
    free(gm);
    free(bm);
    pare_exec_free(e);
    pare_graph_free(g);
}
