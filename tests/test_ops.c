/* Every op: forward against the naive double reference, backward against
 * central finite differences of that reference; in isolation (guard-page
 * buffers, overwrite and accumulate modes, 1 and 2 threads) and through the
 * executor on graphs with shared inputs, residual adds, concat and flatten. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "ops/loss.h"
#include "ref.h"
#include "test.h"

static double urand(pare_rng *r, double lo, double hi) { return lo + (hi - lo) * pare_rng_uniform_d(r); }

/* Random parameters; BN running variance kept positive. */
static void randomize_params(pare_graph *g, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 1, 0, 0);
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        double lo = p->role == PARE_ROLE_BN_VAR ? 0.5 : -1.0, hi = p->role == PARE_ROLE_BN_VAR ? 2.0 : 1.0;
        for (size_t k = 0; k < p->t->n; k++)
            p->t->data[k] = (float)urand(&r, lo, hi);
    }
}

typedef struct op_run {
    int nin;
    size_t in_sz[8], out_sz;
    float *x[8], *y, *dy, *dx[8];
    float *ws;
    void *aux;
} op_run;

/* Runs one node's forward (and backward when dy given) on guarded buffers. */
static void run_node(const pare_graph *g, int node, int n, int training, int threads, op_run *r,
                     float **dw, const int *acc)
{
    const pare_node *nd = &g->nodes[node];
    const pare_op_def *def = pare_op_get(nd->op);
    pare_op_ctx c;
    memset(&c, 0, sizeof c);
    pare_shape xs[8];
    const float *xp[8];
    float *w[4];
    const uint8_t *mk[4] = {0};
    for (int j = 0; j < nd->n_in; j++) {
        xs[j] = g->nodes[nd->in[j]].out;
        xp[j] = r->x[j];
    }
    for (int k = 0; k < nd->n_param; k++)
        w[k] = g->params[nd->param[k]].t->data;
    size_t wsf = def->ws_floats ? def->ws_floats(g, nd, n, training) : 0;
    wsf = (wsf + 15) / 16 * 16;
    if (!r->ws && wsf)
        r->ws = pare_alloc_array(wsf * (size_t)threads + 16, sizeof(float), 1);
    if (!r->aux && def->aux_bytes)
        r->aux = pare_alloc(def->aux_bytes(g, nd, n) + 64, 1);
    c.g = g;
    c.node = nd;
    c.n = n;
    c.training = training;
    c.threads = threads;
    c.x = xp;
    c.xs = xs;
    c.y = r->y;
    c.w = w;
    c.mask = mk;
    c.aux = r->aux;
    c.ws = r->ws;
    c.ws_floats = wsf;
    c.seed = 1234;
    if (!dw) {
        def->forward(&c);
        return;
    }
    c.dy = r->dy;
    c.dx = r->dx;
    c.dx_acc = acc;
    c.dw = dw;
    def->backward(&c);
}

static double dot(const double *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* L = sum(dy * ref(x, w)) in double. */
static double ref_loss(const pare_graph *g, int node, int n, int training, double **xd, double **wd,
                       const uint8_t *keep, const float *dy, double *yd, size_t osz)
{
    ref_forward(g, node, n, training, (const double *const *)xd, (const double *const *)wd, keep, yd);
    return dot(yd, dy, osz);
}

/* Finite differences straddling a kink measure neither side: inputs within
 * 0.05 of one (ReLU's 0, the corners of hardsigmoid, hardswish, leakyrelu and
 * clip) move 0.1 from it. */
static float away_from_kinks(const pare_node *nd, float v)
{
    const pare_attrs *a = &nd->a;
    float k[2];
    int nk = 0;
    switch (nd->op) {
    case PARE_OP_RELU:
    case PARE_OP_RELU6:
    case PARE_OP_LEAKYRELU:
        k[nk++] = 0.0f;
        break;
    case PARE_OP_HARDSIGMOID:
        k[nk++] = -a->beta / a->alpha;
        k[nk++] = (1.0f - a->beta) / a->alpha;
        break;
    case PARE_OP_HARDSWISH:
        k[nk++] = -3.0f;
        k[nk++] = 3.0f;
        break;
    case PARE_OP_CLIP:
        k[nk++] = a->alpha;
        k[nk++] = a->beta;
        break;
    default:
        break;
    }
    for (int i = 0; i < nk; i++)
        if (fabsf(v - k[i]) < 0.05f)
            v = v < k[i] ? k[i] - 0.1f : k[i] + 0.1f;
    return v;
}

/* The core check of one node: forward vs reference; dx and dw vs finite
 * differences; accumulate mode adds; threads 1 and 2 agree. */
static void check_node(pare_graph *g, int node, int n, int training, uint64_t seed)
{
    CHECK_OK(pare_graph_status(g));
    if (pare_graph_status(g) != PARE_OK)
        return;
    const pare_node *nd = &g->nodes[node];
    const pare_op_def *def = pare_op_get(nd->op);
    randomize_params(g, seed);
    pare_rng r;
    pare_rng_seed(&r, seed, 2, 0, 0);
    op_run run[2];
    memset(run, 0, sizeof run);
    size_t osz = pare_shape_size(nd->out) * (size_t)n;
    double *xd[8], *wd[4];
    for (int t = 0; t < 2; t++) {
        run[t].nin = nd->n_in;
        run[t].out_sz = osz;
        run[t].y = pare_guard_alloc(osz);
        run[t].dy = pare_guard_alloc(osz);
    }
    for (int j = 0; j < nd->n_in; j++) {
        size_t sz = pare_shape_size(g->nodes[nd->in[j]].out) * (size_t)n;
        xd[j] = malloc(sizeof(double) * sz);
        for (int t = 0; t < 2; t++) {
            run[t].in_sz[j] = sz;
            run[t].x[j] = pare_guard_alloc(sz);
            run[t].dx[j] = pare_guard_alloc(sz);
        }
        /* hardswish bends at -3 and 3: reach past them. */
        double span = nd->op == PARE_OP_HARDSWISH ? 5 : 2;
        for (size_t i = 0; i < sz; i++) {
            float v = away_from_kinks(nd, (float)urand(&r, -span, span));
            run[0].x[j][i] = run[1].x[j][i] = v;
            xd[j][i] = v;
        }
    }
    for (int k = 0; k < nd->n_param; k++) {
        const pare_tensor *t = g->params[nd->param[k]].t;
        wd[k] = malloc(sizeof(double) * t->n);
        for (size_t i = 0; i < t->n; i++)
            wd[k][i] = t->data[i];
    }
    /* Forward with 1 and 2 threads. BN updates running stats in training:
     * restore the params between runs so both see the same values. */
    float *saved[4];
    for (int k = 0; k < nd->n_param; k++) {
        const pare_tensor *t = g->params[nd->param[k]].t;
        saved[k] = malloc(sizeof(float) * t->n);
        memcpy(saved[k], t->data, sizeof(float) * t->n);
    }
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < nd->n_param; k++)
            memcpy(g->params[nd->param[k]].t->data, saved[k], sizeof(float) * g->params[nd->param[k]].t->n);
        run_node(g, node, n, training, t + 1, &run[t], NULL, NULL);
    }
    const uint8_t *keep = nd->op == PARE_OP_DROPOUT ? run[0].aux : NULL;
    double *yd = malloc(sizeof(double) * osz);
    ref_forward(g, node, n, training, (const double *const *)xd, (const double *const *)wd, keep, yd);
    double err = pare_test_max_rel(run[0].y, yd, osz);
    CHECKF(err < 2e-5, "%s %s: forward differs from the reference by %g", def->name, nd->name, err);
    CHECKF(memcmp(run[0].y, run[1].y, osz * sizeof(float)) == 0, "%s: 1 and 2 threads differ", nd->name);
    if (nd->op == PARE_OP_DROPOUT && run[0].aux && run[1].aux)
        CHECK(memcmp(run[0].aux, run[1].aux, osz) == 0);

    /* Backward: dw and dx (overwrite), then dx again in accumulate mode. */
    for (size_t i = 0; i < osz; i++)
        run[0].dy[i] = run[1].dy[i] = (float)urand(&r, -1, 1);
    float *dw[2][4];
    int acc0[8] = {0}, acc1[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < nd->n_param; k++) {
            const pare_param *p = &g->params[nd->param[k]];
            dw[t][k] = p->trainable ? pare_guard_alloc(p->t->n) : NULL;
        }
    for (int k = 0; k < nd->n_param; k++)
        memcpy(g->params[nd->param[k]].t->data, saved[k], sizeof(float) * g->params[nd->param[k]].t->n);
    for (int t = 0; t < 2; t++) {
        for (int j = 0; j < nd->n_in; j++)
            for (size_t i = 0; i < run[t].in_sz[j]; i++)
                run[t].dx[j][i] = NAN; /* overwrite mode must not read it */
        run_node(g, node, n, training, t + 1, &run[t], dw[t], acc0);
    }
    for (int j = 0; j < nd->n_in; j++)
        CHECKF(memcmp(run[0].dx[j], run[1].dx[j], run[0].in_sz[j] * sizeof(float)) == 0,
               "%s: dx with 1 and 2 threads differ", nd->name);
    /* Finite differences on the reference, at sampled positions. */
    const double h = 1e-5;
    double worst = 0;
    for (int j = 0; j < nd->n_in; j++) {
        size_t sz = run[0].in_sz[j];
        int samples = sz < 48 ? (int)sz : 48;
        for (int s = 0; s < samples; s++) {
            size_t i = sz < 48 ? (size_t)s : (size_t)pare_rng_below(&r, sz);
            double keepv = xd[j][i];
            xd[j][i] = keepv + h;
            double lp = ref_loss(g, node, n, training, xd, wd, keep, run[0].dy, yd, osz);
            xd[j][i] = keepv - h;
            double lm = ref_loss(g, node, n, training, xd, wd, keep, run[0].dy, yd, osz);
            xd[j][i] = keepv;
            double fd = (lp - lm) / (2 * h), got = run[0].dx[j][i];
            double e = fabs(fd - got) / (fabs(fd) > 1 ? fabs(fd) : 1);
            if (e > worst)
                worst = e;
            CHECKF(e < 2e-3, "%s %s: dx[%d][%zu] = %.7g, finite difference %.7g", def->name, nd->name, j,
                   i, got, fd);
        }
    }
    for (int k = 0; k < nd->n_param; k++) {
        if (!dw[0][k])
            continue;
        size_t sz = g->params[nd->param[k]].t->n;
        int samples = sz < 48 ? (int)sz : 48;
        for (int s = 0; s < samples; s++) {
            size_t i = sz < 48 ? (size_t)s : (size_t)pare_rng_below(&r, sz);
            double keepv = wd[k][i];
            wd[k][i] = keepv + h;
            double lp = ref_loss(g, node, n, training, xd, wd, keep, run[0].dy, yd, osz);
            wd[k][i] = keepv - h;
            double lm = ref_loss(g, node, n, training, xd, wd, keep, run[0].dy, yd, osz);
            wd[k][i] = keepv;
            double fd = (lp - lm) / (2 * h), got = dw[0][k][i];
            double e = fabs(fd - got) / (fabs(fd) > 1 ? fabs(fd) : 1);
            CHECKF(e < 2e-3, "%s %s: d%s[%zu] = %.7g, finite difference %.7g", def->name, nd->name,
                   pare_role_name(g->params[nd->param[k]].role), i, got, fd);
        }
        CHECKF(memcmp(dw[0][k], dw[1][k], sz * sizeof(float)) == 0 || nd->op == PARE_OP_CONV2D ||
                   nd->op == PARE_OP_LINEAR,
               "%s: dw with 1 and 2 threads differ", nd->name);
        /* Conv/linear split work by thread count; results agree to rounding. */
        for (size_t i = 0; i < sz; i++)
            if (fabsf(dw[0][k][i] - dw[1][k][i]) > 1e-4f * (1 + fabsf(dw[0][k][i]))) {
                CHECKF(0, "%s: dw[%zu] 1 vs 2 threads: %g vs %g", nd->name, i, dw[0][k][i], dw[1][k][i]);
                break;
            }
    }
    (void)worst;
    /* Accumulate mode: dx = previous + new. */
    for (int j = 0; j < nd->n_in; j++)
        for (size_t i = 0; i < run[1].in_sz[j]; i++)
            run[1].dx[j][i] = 0.5f;
    for (int k = 0; k < nd->n_param; k++)
        memcpy(g->params[nd->param[k]].t->data, saved[k], sizeof(float) * g->params[nd->param[k]].t->n);
    /* Redo forward so saved state (argmax, BN stats) matches, then backward with acc. */
    run_node(g, node, n, training, 1, &run[1], NULL, NULL);
    run_node(g, node, n, training, 1, &run[1], dw[1], acc1);
    for (int j = 0; j < nd->n_in; j++)
        for (size_t i = 0; i < run[1].in_sz[j]; i++) {
            float want = 0.5f + run[0].dx[j][i];
            if (fabsf(run[1].dx[j][i] - want) > 1e-5f * (1 + fabsf(want))) {
                CHECKF(0, "%s %s: accumulate mode dx[%d][%zu] = %g, wanted %g", def->name, nd->name, j,
                       i, run[1].dx[j][i], want);
                break;
            }
        }
    for (int t = 0; t < 2; t++) {
        for (int j = 0; j < nd->n_in; j++) {
            pare_guard_free(run[t].x[j], run[t].in_sz[j]);
            pare_guard_free(run[t].dx[j], run[t].in_sz[j]);
        }
        pare_guard_free(run[t].y, osz);
        pare_guard_free(run[t].dy, osz);
        for (int k = 0; k < nd->n_param; k++)
            if (dw[t][k])
                pare_guard_free(dw[t][k], g->params[nd->param[k]].t->n);
        pare_free(run[t].ws);
        pare_free(run[t].aux);
    }
    for (int j = 0; j < nd->n_in; j++)
        free(xd[j]);
    for (int k = 0; k < nd->n_param; k++) {
        free(wd[k]);
        free(saved[k]);
    }
    free(yd);
}

static pare_attrs base_attrs(void)
{
    pare_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.groups = 1;
    return a;
}

PARE_TEST_ISA(ops_conv2d)
{
    /* c, h, w, out, kh, kw, sh, sw, pads t l b r, dh, dw, groups, bias, n */
    static const int cases[][17] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1},
        {3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2},
        {2, 7, 7, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 3},
        {4, 6, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 2},   /* pointwise, groups 2 */
        {4, 9, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 2},   /* depthwise */
        {3, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 0, 2},   /* depthwise x2, stride 2 */
        {2, 9, 9, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 2},   /* dilation 2 */
        {2, 6, 7, 2, 2, 3, 1, 2, 0, 1, 1, 0, 1, 1, 1, 1, 2},   /* asymmetric */
        {1, 12, 12, 5, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 3}, /* lenet-like */
        {6, 4, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 2, 1, 1},   /* groups, no padding */
        {3, 5, 5, 2, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 2},   /* 1x1 stride 2 */
        {2, 3, 3, 2, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 2},   /* kernel wider than input */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *k = cases[i];
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
        if (y == 1)
            check_node(g, y, k[16], 1, 100 + i);
        pare_graph_free(g);
    }
}

PARE_TEST_ISA(ops_linear)
{
    static const int cases[][5] = {{1, 1, 1, 1, 1}, {7, 1, 1, 5, 3}, {3, 4, 2, 10, 4}, {64, 1, 1, 17, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int bias = 0; bias < 2; bias++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, cases[i][0], cases[i][1], cases[i][2]);
            int y = pare_graph_linear(g, x, cases[i][3], bias, "fc");
            check_node(g, y, cases[i][4], 1, 200 + i);
            pare_graph_free(g);
        }
    }
}

PARE_TEST_ISA(ops_activations)
{
    for (int op = 0; op < 2; op++) {
        static const int shapes[][4] = {{1, 1, 1, 1}, {3, 5, 7, 2}, {16, 33, 33, 3}};
        for (int s = 0; s < 3; s++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, shapes[s][0], shapes[s][1], shapes[s][2]);
            int y = op ? pare_graph_relu6(g, x, "a") : pare_graph_relu(g, x, "a");
            /* relu6 needs inputs above 6 too: scale them up through the range below. */
            check_node(g, y, shapes[s][3], 1, 300 + 10 * op + s);
            pare_graph_free(g);
        }
    }
    /* relu6's upper clip, exactly. */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 1, 1, 4);
    pare_graph_relu6(g, x, "a");
    float in[4] = {-1.0f, 3.0f, 6.0f, 9.5f}, out[4];
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == 0.0f && out[1] == 3.0f && out[2] == 6.0f && out[3] == 6.0f);
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_pooling)
{
    /* c, h, w, k, stride, pad, ceil, include_pad, n */
    static const int cases[][9] = {
        {1, 2, 2, 2, 2, 0, 0, 1, 1}, {3, 8, 8, 2, 2, 0, 0, 1, 2}, {2, 7, 7, 3, 2, 1, 0, 1, 2},
        {2, 7, 7, 3, 2, 1, 1, 1, 2}, {2, 6, 5, 3, 2, 1, 0, 0, 2}, {2, 5, 5, 2, 1, 0, 0, 1, 3},
        {1, 9, 9, 3, 3, 1, 1, 0, 2}, {2, 1, 1, 1, 1, 0, 0, 1, 2},
        /* ONNX's wider padding: up to the window less one */
        {2, 6, 7, 3, 1, 2, 0, 1, 2}, {1, 5, 5, 3, 2, 2, 1, 0, 2}, {2, 4, 4, 2, 1, 1, 0, 0, 2},
    };
    for (int op = 0; op < 2; op++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const int *k = cases[i];
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, k[0], k[1], k[2]);
            pare_attrs a = base_attrs();
            a.kernel[0] = a.kernel[1] = k[3];
            a.stride[0] = a.stride[1] = k[4];
            a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = k[5];
            a.ceil_mode = k[6];
            a.count_include_pad = k[7];
            int y = pare_graph_add_node(g, op ? PARE_OP_AVGPOOL : PARE_OP_MAXPOOL, &x, 1, &a, "pool");
            CHECKF(y == 1, "case %zu: %s", i, pare_last_error());
            if (y == 1)
                check_node(g, y, k[8], 1, 400 + 20 * op + i);
            pare_graph_free(g);
        }
    /* max pooling: dilation, asymmetric padding, ceil mode; c, h, w, kh, kw, sh, sw, dh, dw,
     * pads t l b r, ceil */
    static const int dil[][14] = {
        {2, 7, 7, 2, 2, 1, 1, 2, 2, 0, 0, 0, 0, 0}, {1, 9, 8, 3, 2, 2, 1, 2, 3, 2, 1, 0, 2, 0},
        {2, 6, 6, 3, 3, 2, 2, 1, 1, 0, 1, 2, 0, 1}, {1, 8, 8, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof dil / sizeof dil[0]; i++) {
        const int *k = dil[i];
        pare_graph *g = pare_graph_new("t");
        int x = pare_graph_input(g, k[0], k[1], k[2]);
        pare_attrs a = base_attrs();
        a.kernel[0] = k[3];
        a.kernel[1] = k[4];
        a.stride[0] = k[5];
        a.stride[1] = k[6];
        a.dilation[0] = k[7];
        a.dilation[1] = k[8];
        for (int j = 0; j < 4; j++)
            a.pad[j] = k[9 + j];
        a.ceil_mode = k[13];
        int y = pare_graph_add_node(g, PARE_OP_MAXPOOL, &x, 1, &a, "pool");
        CHECKF(y == 1, "dilated case %zu: %s", i, pare_last_error());
        if (y == 1)
            check_node(g, y, 2, 1, 470 + i);
        pare_graph_free(g);
    }
    {
        /* a window may not be all padding, and average pooling is never dilated */
        pare_graph *g = pare_graph_new("t");
        int x = pare_graph_input(g, 1, 5, 5);
        pare_attrs a = base_attrs();
        a.kernel[0] = a.kernel[1] = 3;
        a.stride[0] = a.stride[1] = 1;
        a.pad[0] = 3;
        CHECK(pare_graph_add_node(g, PARE_OP_MAXPOOL, &x, 1, &a, "p") < 0);
        CHECK(strstr(pare_last_error(), "padding 3") != NULL);
        pare_graph_free(g);
        g = pare_graph_new("t");
        x = pare_graph_input(g, 1, 5, 5);
        a.pad[0] = 0;
        a.dilation[0] = 2;
        CHECK(pare_graph_add_node(g, PARE_OP_AVGPOOL, &x, 1, &a, "q") < 0);
        CHECK(strstr(pare_last_error(), "dilated average pooling") != NULL);
        pare_graph_free(g);
    }
    for (int s = 0; s < 2; s++) {
        pare_graph *g = pare_graph_new("t");
        int x = pare_graph_input(g, 3, s ? 1 : 5, s ? 1 : 6);
        int y = pare_graph_global_avgpool(g, x, "gap");
        check_node(g, y, 3, 1, 450 + s);
        pare_graph_free(g);
    }
}

PARE_TEST_ISA(ops_batchnorm)
{
    static const int shapes[][4] = {{1, 1, 1, 2}, {3, 4, 5, 2}, {5, 1, 1, 7}, {2, 9, 9, 3}};
    for (int s = 0; s < 4; s++)
        for (int training = 0; training < 2; training++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, shapes[s][0], shapes[s][1], shapes[s][2]);
            int y = pare_graph_batchnorm(g, x, "bn");
            check_node(g, y, shapes[s][3], training, 500 + 2 * s + training);
            pare_graph_free(g);
        }
    /* Running statistics follow PyTorch: momentum 0.1, unbiased variance. */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 1, 1, 2);
    pare_graph_batchnorm(g, x, "bn");
    pare_exec *e;
    CHECK_OK(pare_exec_new(g, 2, 1, 1, &e));
    float *in = pare_exec_input(e);
    in[0] = 1;
    in[1] = 2;
    in[2] = 3;
    in[3] = 6;
    pare_exec_forward(e, 2, 0);
    /* mean 3, biased var 3.5, unbiased 14/3 */
    int pm = pare_graph_node_param(g, 1, PARE_ROLE_BN_MEAN), pv = pare_graph_node_param(g, 1, PARE_ROLE_BN_VAR);
    CHECK_NEAR(g->params[pm].t->data[0], 0.3, 1e-7);
    CHECK_NEAR(g->params[pv].t->data[0], 0.9 + 0.1 * 14.0 / 3.0, 1e-6);
    const float *out = pare_exec_output(e);
    CHECK_NEAR(out[0], (1 - 3) / sqrt(3.5 + 1e-5), 1e-6);
    pare_exec_free(e);
    /* A frozen BN uses and keeps its running statistics even in training. */
    g->params[g->nodes[1].param[0]].frozen = 1;
    g->params[g->nodes[1].param[1]].frozen = 1;
    float m0 = g->params[pm].t->data[0], v0 = g->params[pv].t->data[0];
    CHECK_OK(pare_exec_new(g, 2, 1, 1, &e));
    memcpy(pare_exec_input(e), (float[]){1, 2, 3, 6}, sizeof(float) * 4);
    pare_exec_forward(e, 2, 0);
    CHECK(g->params[pm].t->data[0] == m0 && g->params[pv].t->data[0] == v0);
    CHECK_NEAR(pare_exec_output(e)[0], (1 - m0) / sqrt(v0 + 1e-5), 1e-6);
    pare_exec_free(e);
    check_node(g, 1, 2, 1, 520);
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_add_concat_dropout)
{
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 3, 4, 5);
    int a = pare_graph_relu(g, x, "a");
    int b = pare_graph_relu6(g, x, "b");
    int s = pare_graph_add(g, a, b, "sum");
    check_node(g, s, 2, 1, 600);
    int parts[3] = {a, b, s};
    int c = pare_graph_concat(g, parts, 3, "cat");
    CHECK(g->nodes[c].out.c == 9);
    check_node(g, c, 3, 1, 601);
    int d = pare_graph_dropout(g, x, 0.3f, "drop");
    check_node(g, d, 4, 1, 602);
    check_node(g, d, 4, 0, 603);
    pare_graph_free(g);
}

PARE_TEST(ops_dropout_rate)
{
    /* About p of the values are dropped, the rest scaled by 1/(1-p). */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 100, 10, 10);
    pare_graph_dropout(g, x, 0.25f, "drop");
    pare_exec *e;
    CHECK_OK(pare_exec_new(g, 4, 1, 2, &e));
    float *in = pare_exec_input(e);
    for (int i = 0; i < 40000; i++)
        in[i] = 1.0f;
    pare_exec_forward(e, 4, 99);
    const float *y = pare_exec_output(e);
    int zeros = 0, scaled = 0;
    for (int i = 0; i < 40000; i++) {
        zeros += y[i] == 0.0f;
        scaled += fabsf(y[i] - 1.0f / 0.75f) < 1e-6f;
    }
    CHECK(zeros + scaled == 40000);
    CHECK_NEAR(zeros / 40000.0, 0.25, 0.01);
    pare_exec_free(e);
    pare_graph_free(g);
}

PARE_TEST(ops_softmax_xent)
{
    pare_rng r;
    pare_rng_seed(&r, 7, 0, 0, 0);
    enum { N = 5, K = 7 };
    float z[N * K], gz[N * K];
    int32_t lab[N];
    for (int i = 0; i < N * K; i++)
        z[i] = (float)urand(&r, -4, 4);
    for (int i = 0; i < N; i++)
        lab[i] = (int32_t)pare_rng_below(&r, K);
    long correct;
    double loss = pare_softmax_xent(z, lab, N, K, gz, &correct);
    /* Reference in double. */
    double want = 0;
    long right = 0;
    for (int b = 0; b < N; b++) {
        double se = 0;
        int arg = 0;
        for (int j = 0; j < K; j++) {
            se += exp((double)z[b * K + j]);
            if (z[b * K + j] > z[b * K + arg])
                arg = j;
        }
        want += log(se) - z[b * K + lab[b]];
        right += arg == lab[b];
    }
    CHECK_NEAR(loss, want / N, 1e-9);
    CHECK(correct == right);
    for (int i = 0; i < N * K; i++) {
        float keepv = z[i];
        double h = 1e-3;
        z[i] = (float)(keepv + h);
        double lp = pare_softmax_xent(z, lab, N, K, NULL, NULL);
        z[i] = (float)(keepv - h);
        double lm = pare_softmax_xent(z, lab, N, K, NULL, NULL);
        z[i] = keepv;
        double step = ((double)(float)(keepv + h) - (double)(float)(keepv - h));
        CHECK_NEAR(gz[i], (lp - lm) / step, 1e-4);
    }
    /* Large logits stay finite. */
    float big[3] = {1000.0f, -1000.0f, 999.0f};
    int32_t l0 = 1;
    double lb = pare_softmax_xent(big, &l0, 1, 3, NULL, NULL);
    CHECK(isfinite(lb) && fabs(lb - (2000.0 + log(1 + exp(-1.0)))) < 1e-6);
}

/* Whole graphs through the executor: parameter gradients against finite
 * differences of the double reference executor; covers shared inputs (a value
 * read by two layers), residual adds, concat and flatten. */
static void check_graph(pare_graph *g, int n, int threads, uint64_t seed)
{
    CHECK_OK(pare_graph_status(g));
    randomize_params(g, seed);
    pare_exec *e;
    CHECK_OK(pare_exec_new(g, n, 1, threads, &e));
    if (!e)
        return;
    size_t isz = pare_shape_size(g->nodes[0].out) * (size_t)n;
    size_t osz = pare_shape_size(g->nodes[g->output].out) * (size_t)n;
    pare_rng r;
    pare_rng_seed(&r, seed, 3, 0, 0);
    float *in = pare_exec_input(e);
    for (size_t i = 0; i < isz; i++)
        in[i] = (float)urand(&r, -1, 1);
    /* BN running stats change in forward; keep a copy for the reference. */
    double **wd = ref_params_new(g);
    pare_exec_forward(e, n, 0);
    double **vals = calloc((size_t)g->n_nodes, sizeof(double *));
    for (int v = 0; v < g->n_nodes; v++)
        vals[v] = calloc(pare_shape_size(g->nodes[v].out) * (size_t)n, sizeof(double));
    for (size_t i = 0; i < isz; i++)
        vals[0][i] = in[i];
    ref_graph_forward(g, n, 1, vals, wd);
    double err = pare_test_max_rel(pare_exec_output(e), vals[g->output], osz);
    CHECKF(err < 1e-4, "graph %s: output differs from the reference by %g", g->name, err);
    float *dy = malloc(sizeof(float) * osz);
    for (size_t i = 0; i < osz; i++)
        dy[i] = (float)urand(&r, -1, 1);
    memcpy(pare_exec_output_grad(e), dy, sizeof(float) * osz);
    pare_exec_backward(e, n);
    const double h = 1e-5;
    for (int p = 0; p < g->n_params; p++) {
        if (!g->params[p].trainable)
            continue;
        const float *gp = pare_exec_param_grad(e, p);
        CHECK(gp != NULL);
        if (!gp)
            continue;
        size_t sz = g->params[p].t->n;
        for (int s = 0; s < 6; s++) {
            size_t i = (size_t)pare_rng_below(&r, sz);
            double keepv = wd[p][i];
            wd[p][i] = keepv + h;
            ref_graph_forward(g, n, 1, vals, wd);
            double lp = dot(vals[g->output], dy, osz);
            wd[p][i] = keepv - h;
            ref_graph_forward(g, n, 1, vals, wd);
            double lm = dot(vals[g->output], dy, osz);
            wd[p][i] = keepv;
            double fd = (lp - lm) / (2 * h);
            double e2 = fabs(fd - gp[i]) / (fabs(fd) > 1 ? fabs(fd) : 1);
            CHECKF(e2 < 3e-3, "graph %s: d%s[%zu] = %.7g, finite difference %.7g", g->name,
                   g->params[p].name, i, gp[i], fd);
        }
    }
    for (int v = 0; v < g->n_nodes; v++)
        free(vals[v]);
    free(vals);
    free(dy);
    ref_params_free(g, wd);
    pare_exec_free(e);
}

PARE_TEST_ISA(ops_graph_gradients)
{
    /* Shared input, add, concat, flatten with and without other consumers. */
    pare_graph *g = pare_graph_new("branches");
    int x = pare_graph_input(g, 2, 6, 6);
    int c1 = pare_graph_conv2d(g, x, 3, 3, 1, 1, "c1");
    int b1 = pare_graph_batchnorm(g, c1, "b1");
    int r1 = pare_graph_relu(g, b1, "r1");
    int c2 = pare_graph_conv2d(g, r1, 3, 3, 1, 1, "c2");
    int c3 = pare_graph_conv2d(g, r1, 3, 1, 1, 0, "c3");
    int s = pare_graph_add(g, c2, c3, "add");
    int both[2] = {s, r1};
    int cat = pare_graph_concat(g, both, 2, "cat");
    int p = pare_graph_maxpool(g, cat, 2, 2, 0, "pool");
    int f = pare_graph_flatten(g, p, "flat");
    int l1 = pare_graph_linear(g, f, 5, 1, "fc1");
    int f2 = pare_graph_flatten(g, s, "flat2");
    int l2 = pare_graph_linear(g, f2, 5, 1, "fc2");
    int f3 = pare_graph_flatten(g, s, "flat3"); /* s has several consumers */
    int l3 = pare_graph_linear(g, f3, 5, 0, "fc3");
    int o = pare_graph_add(g, l1, l2, "o1");
    o = pare_graph_add(g, o, l3, "o2");
    (void)o;
    check_graph(g, 3, 1, 700);
    check_graph(g, 3, 2, 701);
    pare_graph_free(g);
    /* Depthwise + residual, as in MobileNetV2. */
    g = pare_graph_new("mbv2-block");
    x = pare_graph_input(g, 4, 5, 5);
    pare_conv2d_desc d = {0};
    d.out_channels = 8;
    d.kernel_h = 1;
    int e1 = pare_graph_conv2d_ex(g, x, &d, "expand");
    e1 = pare_graph_relu6(g, pare_graph_batchnorm(g, e1, "bn1"), "r6a");
    d.kernel_h = 3;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    d.groups = 8;
    d.no_bias = 1;
    int dw = pare_graph_conv2d_ex(g, e1, &d, "dw");
    dw = pare_graph_relu6(g, pare_graph_batchnorm(g, dw, "bn2"), "r6b");
    int pr = pare_graph_conv2d(g, dw, 4, 1, 1, 0, "project");
    int y = pare_graph_add(g, pr, x, "res");
    y = pare_graph_global_avgpool(g, y, "gap");
    pare_graph_linear(g, y, 3, 1, "fc");
    check_graph(g, 4, 2, 702);
    pare_graph_free(g);
}

PARE_TEST(ops_graph_errors)
{
    pare_graph *g = pare_graph_new("bad");
    int x = pare_graph_input(g, 3, 8, 8);
    CHECK(pare_graph_conv2d(g, x, 4, 11, 1, 0, "too-big") == -1);
    CHECK_STATUS(pare_graph_status(g), PARE_ESHAPE);
    CHECK(strstr(pare_last_error(), "too-big") != NULL);
    CHECK(pare_graph_relu(g, x, "after") == -1); /* the error sticks */
    pare_graph_free(g);

    g = pare_graph_new("bad");
    x = pare_graph_input(g, 3, 8, 8);
    pare_conv2d_desc d = {0};
    d.out_channels = 4;
    d.kernel_h = 3;
    d.groups = 2;
    CHECK(pare_graph_conv2d_ex(g, x, &d, "groups") == -1);
    CHECK(strstr(pare_last_error(), "groups") != NULL);
    pare_graph_free(g);

    g = pare_graph_new("bad");
    x = pare_graph_input(g, 3, 8, 8);
    int y = pare_graph_conv2d(g, x, 4, 3, 1, 1, "c");
    CHECK(pare_graph_add(g, x, y, "add") == -1);
    CHECK(strstr(pare_last_error(), "does not broadcast") != NULL);
    pare_graph_free(g);

    g = pare_graph_new("bad");
    x = pare_graph_input(g, 3, 8, 8);
    CHECK(pare_graph_conv2d(g, x, 4, 3, 1, 1, "same") >= 0);
    CHECK(pare_graph_conv2d(g, x, 4, 3, 1, 1, "same") == -1);
    CHECK(strstr(pare_last_error(), "two layers are named 'same'") != NULL);
    pare_graph_free(g);

    g = pare_graph_new("bad");
    x = pare_graph_input(g, 3, 8, 8);
    CHECK(pare_graph_dropout(g, x, 1.0f, "d") == -1);
    CHECK(pare_graph_relu(g, 57, "r") == -1);
    pare_graph_free(g);

    g = pare_graph_new("bad");
    CHECK(pare_graph_input(g, 0, 8, 8) == -1);
    CHECK_STATUS(pare_graph_status(g), PARE_ESHAPE);
    pare_graph_free(g);
}

PARE_TEST(ops_zoo_shapes)
{
    /* Parameter counts and MACs against PyTorch's (flops.py in the peers). */
    static const struct {
        const char *name;
        long params;
        double mmac;
    } want[] = {
        {"lenet", 61706, 0.42},
        {"fmnist-cnn", 871018, 19.09},
        {"resnet18", 11689512, 1814.07},
        {"vgg16", 138357544, 15470.26},
        {"mobilenetv2-224", 3504872, 300.77},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pare_graph *g;
        CHECK_OK(pare_zoo_build(want[i].name, 0, 0, &g));
        if (!g)
            continue;
        long params = 0;
        double macs = 0;
        for (int p = 0; p < g->n_params; p++)
            if (g->params[p].trainable)
                params += (long)g->params[p].t->n;
        for (int l = 0; l < pare_graph_layer_count(g); l++) {
            pare_layer_info li;
            CHECK_OK(pare_graph_layer_info(g, l, &li));
            if (!strcmp(li.op, "conv2d") || !strcmp(li.op, "linear"))
                macs += li.macs;
        }
        CHECKF(params == want[i].params, "%s: %ld parameters, PyTorch has %ld", want[i].name, params,
               want[i].params);
        CHECKF(fabs(macs / 1e6 - want[i].mmac) < 0.01, "%s: %.2f MMAC, PyTorch counts %.2f",
               want[i].name, macs / 1e6, want[i].mmac);
        pare_graph_free(g);
    }
    /* CIFAR models end in 10 classes and run. */
    const char *cifar[] = {"resnet20", "vgg11-bn", "mobilenetv2"};
    for (int i = 0; i < 3; i++) {
        pare_graph *g;
        CHECK_OK(pare_zoo_build(cifar[i], 0, 1, &g));
        if (!g)
            continue;
        int c, h, w;
        pare_graph_output_shape(g, &c, &h, &w);
        CHECK(c == 10 && h == 1 && w == 1);
        float *in = calloc(2 * 3 * 32 * 32, sizeof(float)), out[20];
        for (int k = 0; k < 2 * 3 * 32 * 32; k++)
            in[k] = (float)((k % 7) - 3) / 3.0f;
        CHECK_OK(pare_graph_forward(g, in, 2, out, 2));
        for (int k = 0; k < 20; k++)
            CHECK(isfinite(out[k]));
        free(in);
        pare_graph_free(g);
    }
    /* resnet20 has 0.27M parameters (He et al., with 1x1 projection shortcuts: 0.272M). */
    pare_graph *g;
    CHECK_OK(pare_zoo_build("resnet20", 0, 0, &g));
    long params = 0;
    for (int p = 0; p < g->n_params; p++)
        if (g->params[p].trainable)
            params += (long)g->params[p].t->n;
    CHECKF(params > 265000 && params < 280000, "resnet20 has %ld parameters", params);
    pare_graph_free(g);
    CHECK_STATUS(pare_zoo_build("resnet1000", 0, 0, &g), PARE_ENOTFOUND);
    CHECK(strstr(pare_last_error(), "lenet") != NULL);
}

/* ---- the ops ONNX import brought ----------------------------------------- */

/* A builder call that must fail: -1, the status on the graph, the sentence. */
static void refused_(pare_graph *g, int id, pare_status want, const char *frag, int line)
{
    if (id != -1)
        pare_test_fail(__FILE__, line, "the layer was built (id %d), expected a refusal", id);
    pare_status s = pare_graph_status(g);
    if (s != want)
        pare_test_fail(__FILE__, line, "status %s, wanted %s (%s)", pare_status_name(s),
                       pare_status_name(want), pare_last_error());
    if (!strstr(pare_last_error(), frag))
        pare_test_fail(__FILE__, line, "the message '%s' does not say '%s'", pare_last_error(), frag);
}
#define REFUSED(g, id, want, frag) refused_(g, id, want, frag, __LINE__)

PARE_TEST_ISA(ops_onnx_activations)
{
    /* c, h, w, batch: a single value, odd planes, one big enough for threads */
    static const int shapes[][4] = {{1, 1, 1, 1}, {3, 5, 7, 2}, {16, 33, 33, 3}};
    for (int op = 0; op < 7; op++)
        for (int s = 0; s < 3; s++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, shapes[s][0], shapes[s][1], shapes[s][2]), y = -1;
            switch (op) {
            case 0: y = pare_graph_sigmoid(g, x, "a"); break;
            case 1: y = pare_graph_hardsigmoid(g, x, 0.4f, 0.3f, "a"); break;
            case 2: y = pare_graph_hardsigmoid(g, x, -0.5f, 0.6f, "a"); break;
            case 3: y = pare_graph_hardswish(g, x, "a"); break;
            case 4: y = pare_graph_leakyrelu(g, x, 0.125f, "a"); break;
            case 5: y = pare_graph_leakyrelu(g, x, -1.5f, "a"); break;
            default: y = pare_graph_clip(g, x, -0.7f, 1.3f, "a"); break;
            }
            CHECKF(y == 1, "op case %d: %s", op, pare_last_error());
            if (y == 1)
                check_node(g, y, shapes[s][3], 1, 1000 + 10 * op + s);
            pare_graph_free(g);
        }
    /* Exact values at the corners and far out: sigmoid saturates without NaN,
     * hardswish is 0 below -3 and x above 3, clip takes infinite bounds. */
    static const float in[8] = {-1000.0f, -4.0f, -3.0f, -1.5f, 0.0f, 1.5f, 3.0f, 1000.0f};
    float out[8];
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 1, 1, 8);
    pare_graph_sigmoid(g, x, "s");
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == 0.0f && out[7] == 1.0f && out[4] == 0.5f);
    CHECK_NEAR(out[3], 1.0 / (1.0 + exp(1.5)), 1e-7);
    pare_graph_free(g);
    g = pare_graph_new("t");
    x = pare_graph_input(g, 1, 1, 8);
    pare_graph_hardswish(g, x, "hs");
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.0f && out[4] == 0.0f);
    CHECK(out[5] == 1.5f * 0.75f && out[6] == 3.0f && out[7] == 1000.0f);
    CHECK_NEAR(out[3], -1.5 * 0.25, 1e-7);
    pare_graph_free(g);
    g = pare_graph_new("t");
    x = pare_graph_input(g, 1, 1, 8);
    pare_graph_clip(g, x, -INFINITY, 2.0f, "c");
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == -1000.0f && out[5] == 1.5f && out[6] == 2.0f && out[7] == 2.0f);
    pare_graph_free(g);
    g = pare_graph_new("t");
    x = pare_graph_input(g, 1, 1, 8);
    pare_graph_leakyrelu(g, x, 0.01f, "l");
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[1] == -4.0f * 0.01f && out[4] == 0.0f && out[7] == 1000.0f);
    pare_graph_free(g);
    g = pare_graph_new("t");
    x = pare_graph_input(g, 1, 1, 8);
    pare_graph_hardsigmoid(g, x, 0.2f, 0.5f, "h");
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == 0.0f && out[4] == 0.5f && out[7] == 1.0f);
    CHECK_NEAR(out[5], 0.8, 1e-7);
    pare_graph_free(g);

    /* Attributes that make no function are refused in one sentence. */
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_clip(g, x, 2.0f, 1.0f, "c"), PARE_EINVAL, "min <= max");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_clip(g, x, NAN, 1.0f, "c"), PARE_EINVAL, "layer c (clip)");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_leakyrelu(g, x, INFINITY, "l"), PARE_EINVAL, "must be finite");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_hardsigmoid(g, x, 0.2f, NAN, "h"), PARE_EINVAL, "must be finite");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_add_mul_broadcast)
{
    /* b's shape against a 4x5x6 a: every pattern of kept and size-1 axes */
    static const int bs[][3] = {{4, 5, 6}, {4, 1, 1}, {1, 5, 6}, {1, 1, 1}, {4, 5, 1},
                                {1, 5, 1}, {4, 1, 6}, {1, 1, 6}};
    for (int op = 0; op < 2; op++)
        for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, 4, 5, 6);
            int b = pare_graph_const(g, bs[i][0], bs[i][1], bs[i][2], "b");
            int y = op ? pare_graph_mul(g, x, b, "op") : pare_graph_add(g, x, b, "op");
            CHECKF(y == 2, "%s with b %dx%dx%d: %s", op ? "mul" : "add", bs[i][0], bs[i][1], bs[i][2],
                   pare_last_error());
            if (y == 2) {
                CHECK(g->nodes[y].out.c == 4 && g->nodes[y].out.h == 5 && g->nodes[y].out.w == 6);
                check_node(g, y, 3, 1, 1100 + 10 * op + i);
            }
            pare_graph_free(g);
        }
    /* Planes enough for two threads, and a value times itself. */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 16, 40, 41);
    int b = pare_graph_const(g, 16, 1, 1, "b");
    int m = pare_graph_mul(g, x, b, "m");
    check_node(g, m, 2, 1, 1130);
    int a = pare_graph_add(g, x, b, "a");
    check_node(g, a, 2, 1, 1131);
    int sq = pare_graph_mul(g, x, x, "sq");
    check_node(g, sq, 2, 1, 1132);
    pare_graph_free(g);
    /* Only the second input broadcasts, and only from size 1. */
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 5, 6);
    b = pare_graph_const(g, 2, 5, 6, "b");
    REFUSED(g, pare_graph_mul(g, x, b, "m"), PARE_ESHAPE, "does not broadcast");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 5, 6);
    b = pare_graph_const(g, 1, 1, 1, "b");
    REFUSED(g, pare_graph_add(g, b, x, "a"), PARE_ESHAPE, "does not broadcast to the first 1x1x1");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_softmax)
{
    static const int shapes[][4] = {{3, 4, 5, 2}, {2, 1, 7, 3}, {1, 1, 1, 2}};
    for (int s = 0; s < 3; s++)
        for (int axis = 0; axis < 3; axis++)
            for (int mode = 0; mode < 2; mode++) {
                pare_graph *g = pare_graph_new("t");
                int x = pare_graph_input(g, shapes[s][0], shapes[s][1], shapes[s][2]);
                int y = pare_graph_softmax(g, x, axis, mode, "sm");
                CHECKF(y == 1, "axis %d mode %d: %s", axis, mode, pare_last_error());
                if (y == 1)
                    check_node(g, y, shapes[s][3], 1, 1200 + 10 * s + 2 * axis + mode);
                pare_graph_free(g);
            }
    /* Large logits: the maximum is subtracted, so nothing overflows; each
     * row (mode 1 over h and w: the whole channel plane) sums to 1. */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 2, 3, 4);
    pare_graph_softmax(g, x, 1, 1, "sm");
    float in[24], out[24];
    for (int i = 0; i < 24; i++)
        in[i] = 1000.0f + 10.0f * (float)(i % 5);
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    for (int c = 0; c < 2; c++) {
        double sum = 0;
        for (int i = 0; i < 12; i++) {
            CHECK(isfinite(out[c * 12 + i]));
            sum += out[c * 12 + i];
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
    }
    CHECK_NEAR(out[4] / out[0], exp(40.0), exp(40.0) * 1e-5);
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 4);
    REFUSED(g, pare_graph_softmax(g, x, 3, 0, "sm"), PARE_EINVAL, "axis 3 must be 0");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 3, 4);
    REFUSED(g, pare_graph_softmax(g, x, 1, 2, "sm"), PARE_EINVAL, "mode 2 must be 0");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_channel_shuffle)
{
    static const int groups[] = {1, 2, 3, 6};
    for (int i = 0; i < 4; i++) {
        pare_graph *g = pare_graph_new("t");
        int x = pare_graph_input(g, 6, 3, 5);
        int y = pare_graph_channel_shuffle(g, x, groups[i], "cs");
        CHECKF(y == 1, "groups %d: %s", groups[i], pare_last_error());
        if (y == 1)
            check_node(g, y, 2, 1, 1300 + i);
        pare_graph_free(g);
    }
    /* ShuffleNet's reshape(2, 3)-transpose-reshape: channels 0 3 1 4 2 5. */
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 6, 1, 1);
    pare_graph_channel_shuffle(g, x, 2, "cs");
    float in[6] = {0, 1, 2, 3, 4, 5}, out[6];
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[0] == 0 && out[1] == 3 && out[2] == 1 && out[3] == 4 && out[4] == 2 && out[5] == 5);
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 6, 3, 5);
    REFUSED(g, pare_graph_channel_shuffle(g, x, 4, "cs"), PARE_EINVAL, "divide the 6 channels");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 6, 3, 5);
    REFUSED(g, pare_graph_channel_shuffle(g, x, 0, "cs"), PARE_EINVAL, "must be positive");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_pad)
{
    /* top, left, bottom, right on a 4x5 plane (reflect allows up to 3 and 4) */
    static const int pads[][4] = {{1, 2, 0, 3}, {0, 0, 0, 0}, {3, 4, 3, 4}, {2, 0, 1, 1}};
    for (int mode = 0; mode < 3; mode++)
        for (int i = 0; i < 4; i++) {
            pare_graph *g = pare_graph_new("t");
            int x = pare_graph_input(g, 2, 4, 5);
            int y = pare_graph_pad(g, x, pads[i], mode, 0.75f, "pad");
            CHECKF(y == 1, "mode %d pads %d: %s", mode, i, pare_last_error());
            if (y == 1) {
                CHECK(g->nodes[y].out.h == 4 + pads[i][0] + pads[i][2]);
                CHECK(g->nodes[y].out.w == 5 + pads[i][1] + pads[i][3]);
                check_node(g, y, 2, 1, 1400 + 10 * mode + i);
            }
            pare_graph_free(g);
        }
    /* numpy.pad([1, 2, 3], 2): constant 9, reflect, edge */
    static const float want[3][7] = {
        {9, 9, 1, 2, 3, 9, 9}, {3, 2, 1, 2, 3, 2, 1}, {1, 1, 1, 2, 3, 3, 3}};
    for (int mode = 0; mode < 3; mode++) {
        pare_graph *g = pare_graph_new("t");
        int x = pare_graph_input(g, 1, 1, 3);
        const int p[4] = {0, 2, 0, 2};
        pare_graph_pad(g, x, p, mode, 9.0f, "pad");
        float in[3] = {1, 2, 3}, out[7];
        CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
        CHECKF(!memcmp(out, want[mode], sizeof out), "mode %d: %g %g %g %g %g %g %g", mode, out[0],
               out[1], out[2], out[3], out[4], out[5], out[6]);
        pare_graph_free(g);
    }
    pare_graph *g = pare_graph_new("bad");
    int x = pare_graph_input(g, 2, 4, 5);
    REFUSED(g, pare_graph_pad(g, x, (const int[4]){1, -1, 0, 0}, 0, 0.0f, "pad"), PARE_EINVAL,
            "must be >= 0");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 4, 5);
    REFUSED(g, pare_graph_pad(g, x, (const int[4]){1, 1, 1, 1}, 3, 0.0f, "pad"), PARE_EINVAL,
            "mode 3 must be");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 4, 5);
    REFUSED(g, pare_graph_pad(g, x, (const int[4]){4, 0, 0, 0}, 1, 0.0f, "pad"), PARE_EINVAL,
            "smaller than the 4x5 input");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 4, 5);
    REFUSED(g, pare_graph_pad(g, x, NULL, 0, 0.0f, "pad"), PARE_EINVAL, "four pads");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 2, 4, 5);
    REFUSED(g, pare_graph_pad(g, x, (const int[4]){0x7fffffff, 0, 0x7fffffff, 0}, 2, 0.0f, "pad"),
            PARE_ESHAPE, "too large");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_const)
{
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 3, 2, 5);
    int k = pare_graph_const(g, 3, 2, 5, "k");
    CHECK(k == 1 && g->nodes[k].n_param == 1);
    if (k == 1) {
        const pare_param *p = &g->params[g->nodes[k].param[0]];
        CHECK(p->role == PARE_ROLE_WEIGHT && p->trainable && p->t->ndim == 3 && p->t->n == 30);
        CHECK(p->t->data[0] == 0.0f && p->t->data[29] == 0.0f); /* zeros until set */
        check_node(g, k, 4, 1, 1500);
    }
    /* Its values, set by name, are every sample's output. */
    size_t n = 0;
    float *v = pare_graph_param_data(g, "k.weight", &n);
    CHECK(v && n == 30);
    if (v)
        for (size_t i = 0; i < n; i++)
            v[i] = (float)i - 7.5f;
    pare_graph_add(g, x, k, "sum"); /* a graph's output must depend on its input */
    float in[2 * 30] = {0}, out[2 * 30];
    in[31] = 1.0f;
    CHECK_OK(pare_graph_forward(g, in, 2, out, 1));
    CHECK(out[0] == -7.5f && out[29] == 21.5f && out[30] == -7.5f && out[31] == -5.5f &&
          out[59] == 21.5f);
    CHECK(pare_graph_param_data(g, "k.bias", &n) == NULL && n == 0);
    CHECK(strstr(pare_last_error(), "no parameter named 'k.bias'") != NULL);
    pare_layer_info li;
    CHECK_OK(pare_graph_layer_info(g, k, &li));
    CHECK(li.params == 30 && li.weights == 0 && li.zeros == 0 && !strcmp(li.op, "const"));
    pare_graph_free(g);
    g = pare_graph_new("bad");
    pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_const(g, 3, 0, 5, "k"), PARE_EINVAL, "must be positive");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    pare_graph_input(g, 2, 3, 3);
    REFUSED(g, pare_graph_const(g, 1 << 15, 1 << 15, 2, "k"), PARE_ESHAPE, "more than");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    REFUSED(g, pare_graph_const(g, 3, 2, 5, "k"), PARE_EINVAL, "input must come first");
    pare_graph_free(g);
}

PARE_TEST_ISA(ops_reshape_transpose)
{
    pare_graph *g = pare_graph_new("t");
    int x = pare_graph_input(g, 4, 3, 5);
    int r = pare_graph_reshape(g, x, 6, 10, 1, "r");
    CHECK(r == 1 && g->nodes[r].out.c == 6 && g->nodes[r].out.h == 10 && g->nodes[r].out.w == 1);
    if (r == 1)
        check_node(g, r, 3, 1, 1600);
    pare_graph_free(g);
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int i = 0; i < 6; i++) {
        g = pare_graph_new("t");
        x = pare_graph_input(g, 2, 3, 4);
        int t = pare_graph_transpose(g, x, perms[i], "t");
        CHECKF(t == 1, "perm %d: %s", i, pare_last_error());
        if (t == 1) {
            int d[3] = {2, 3, 4};
            CHECK(g->nodes[t].out.c == d[perms[i][0]] && g->nodes[t].out.h == d[perms[i][1]] &&
                  g->nodes[t].out.w == d[perms[i][2]]);
            check_node(g, t, 2, 1, 1610 + i);
        }
        pare_graph_free(g);
    }
    /* (c, h, w) -> (w, c, h): element (1, 2, 3) of a 2x3x4 lands at (3, 1, 2). */
    g = pare_graph_new("t");
    x = pare_graph_input(g, 2, 3, 4);
    pare_graph_transpose(g, x, (const int[3]){2, 0, 1}, "t");
    float in[24], out[24];
    for (int i = 0; i < 24; i++)
        in[i] = (float)i;
    CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
    CHECK(out[(3 * 2 + 1) * 3 + 2] == in[(1 * 3 + 2) * 4 + 3]);
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 3, 5);
    REFUSED(g, pare_graph_reshape(g, x, 6, 10, 2, "r"), PARE_ESHAPE,
            "cannot read 4x3x5 (60 values) as 6x10x2");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 3, 5);
    REFUSED(g, pare_graph_reshape(g, x, -6, -10, 1, "r"), PARE_EINVAL, "must be positive");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 3, 5);
    REFUSED(g, pare_graph_transpose(g, x, (const int[3]){0, 0, 1}, "t"), PARE_EINVAL,
            "permutation of 0, 1, 2");
    pare_graph_free(g);
    g = pare_graph_new("bad");
    x = pare_graph_input(g, 4, 3, 5);
    REFUSED(g, pare_graph_transpose(g, x, (const int[3]){0, 1, 3}, "t"), PARE_EINVAL, "permutation");
    pare_graph_free(g);
}

/* Every new op inside graphs through the executor: parameter gradients (the
 * consts' among them) against finite differences of the double reference,
 * with a reshape that shares its input's memory, one whose input has other
 * readers, and a value multiplied by itself. */
PARE_TEST_ISA(ops_onnx_graph_gradients)
{
    pare_graph *g = pare_graph_new("onnx-ops");
    int x = pare_graph_input(g, 2, 5, 6);
    int c1 = pare_graph_conv2d(g, x, 4, 3, 1, 1, "c1");
    int h = pare_graph_hardswish(g, c1, "hswish");
    int p = pare_graph_pad(g, h, (const int[4]){1, 2, 2, 1}, 1, 0.0f, "reflect");
    int c2 = pare_graph_conv2d(g, p, 4, 3, 1, 0, "c2");
    int sg = pare_graph_sigmoid(g, c2, "sig");
    int k1 = pare_graph_const(g, 4, 1, 1, "scale");
    int m = pare_graph_mul(g, sg, k1, "mul");
    int hs = pare_graph_hardsigmoid(g, m, 0.3f, 0.45f, "hsig");
    int sq = pare_graph_mul(g, hs, hs, "square");
    int k2 = pare_graph_const(g, 1, 6, 7, "plane");
    int a = pare_graph_add(g, sq, k2, "shift");
    int lr = pare_graph_leakyrelu(g, a, 0.2f, "leaky");
    int cl = pare_graph_clip(g, lr, -0.8f, 1.1f, "clip");
    int cs = pare_graph_channel_shuffle(g, cl, 2, "shuffle");
    int pe = pare_graph_pad(g, cs, (const int[4]){0, 1, 1, 0}, 2, 0.0f, "edge");
    int pc = pare_graph_pad(g, pe, (const int[4]){1, 0, 0, 2}, 0, 0.5f, "constant");
    int t = pare_graph_transpose(g, pc, (const int[3]){1, 2, 0}, "t");
    int r1 = pare_graph_reshape(g, t, 10, 32, 1, "r1");  /* sole reader of t: shares its bytes */
    int sm = pare_graph_softmax(g, r1, 1, 0, "sm");
    int r2 = pare_graph_reshape(g, sm, 320, 1, 1, "r2"); /* sm is read twice */
    int sm2 = pare_graph_softmax(g, sm, 1, 1, "sm2");
    int f1 = pare_graph_linear(g, r2, 5, 1, "fc1");
    int f2 = pare_graph_linear(g, pare_graph_flatten(g, sm2, "flat"), 5, 1, "fc2");
    pare_graph_add(g, f1, f2, "out");
    CHECK_OK(pare_graph_status(g));
    CHECK(g->nodes[pc].out.c == 4 && g->nodes[pc].out.h == 8 && g->nodes[pc].out.w == 10);
    check_graph(g, 3, 1, 1700);
    check_graph(g, 2, 2, 1701);
    pare_graph_free(g);
}
