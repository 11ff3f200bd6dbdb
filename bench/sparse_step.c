/* Sparse training, measured: where the sparse paths of conv2d and linear beat
 * the dense lowerings, and what they do to a whole training step.
 *   sparse_step layers [THREADS] [REPS] [LAYER]
 *     each product (forward, input gradient, weight gradient) of W1's layers
 *     and of strided/pointwise shapes, dense vs sparse, at densities from 0.02
 *     to 0.6: medians of REPS timings, batch 128;
 *   sparse_step step [THREADS] [STEPS] [REPS]
 *     W1 (fmnist-cnn, batch 128) training steps, dense and with uniform random
 *     masks at 50/75/90/95% sparsity on every conv and linear but the first
 *     conv and the last linear: per-layer forward and backward time, step
 *     time, and speedup next to the FLOP ratio; medians of REPS runs of STEPS.
 * Run with OPENBLAS_CORETYPE unset (see ../shared/WORKLOADS.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "ops/loss.h"
#include "ops/sparse.h"
#include "train/train.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *x, size_t n, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 7, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2 * pare_rng_uniform_d(&r) - 1);
}

/* Uniform random mask of the given density; pruned weights zeroed. */
static void set_mask(pare_param *p, double density, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 8, 0, 0);
    if (!p->mask)
        p->mask = malloc(p->t->n);
    for (size_t i = 0; i < p->t->n; i++) {
        p->mask[i] = pare_rng_uniform_d(&r) < density;
        if (!p->mask[i])
            p->t->data[i] = 0.0f;
    }
}

/* ---- products of one layer ----------------------------------------------- */

typedef struct layer {
    const char *name;
    int c, h, w, o, k, stride, pad, linear;
} layer;

static const layer layers[] = {
    {"W1 block2.conv 32>32 3x3 28x28", 32, 28, 28, 32, 3, 1, 1, 0},
    {"W1 block3.conv 32>64 3x3 14x14", 32, 14, 14, 64, 3, 1, 1, 0},
    {"W1 block4.conv 64>64 3x3 14x14", 64, 14, 14, 64, 3, 1, 1, 0},
    {"W1 fc1 3136>256", 3136, 1, 1, 256, 0, 0, 0, 1},
    {"3x3 s2 32>64 16x16 (im2col)", 32, 16, 16, 64, 3, 2, 1, 0},
    {"1x1 64>64 8x8 (pointwise)", 64, 8, 8, 64, 1, 1, 0, 0},
    {"1x1 s2 32>64 16x16 (im2col)", 32, 16, 16, 64, 1, 2, 0, 0},
};

typedef struct run {
    pare_graph *g;
    const pare_op_def *def;
    int n, threads;
    float *x, *y, *dy, *dx, *dw, *ws;
    size_t wsf;
    void *aux;
} run;

/* what: 0 forward, 1 input gradient, 2 weight gradient (at the mask). */
static double time_product(run *r, int what, int reps)
{
    const pare_node *nd = &r->g->nodes[1];
    pare_param *p = &r->g->params[nd->param[0]];
    float *w[2] = {p->t->data, nd->n_param > 1 ? r->g->params[nd->param[1]].t->data : NULL};
    const uint8_t *mk[2] = {p->mask, NULL}, *dwm[2] = {p->mask, NULL};
    pare_shape xs = r->g->nodes[0].out;
    const float *xp[1] = {r->x};
    float *dxs[1] = {what == 1 ? r->dx : NULL}, *dws[2] = {what == 2 ? r->dw : NULL, NULL};
    int acc[1] = {0};
    pare_op_ctx c;
    memset(&c, 0, sizeof c);
    c.g = r->g;
    c.node = nd;
    c.n = r->n;
    c.training = 1;
    c.threads = r->threads;
    c.x = xp;
    c.xs = &xs;
    c.y = r->y;
    c.w = w;
    c.mask = mk;
    c.aux = r->aux;
    c.ws = r->ws;
    c.ws_floats = r->wsf;
    c.dy = r->dy;
    c.dx = dxs;
    c.dx_acc = acc;
    c.dw = dws;
    c.dw_mask = dwm;
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = -2; i < reps; i++) {
        double t0 = now_s();
        if (what == 0)
            r->def->forward(&c);
        else
            r->def->backward(&c);
        if (i >= 0)
            t[i] = now_s() - t0;
    }
    double m = median(t, reps);
    free(t);
    return m;
}

static void bench_layers(int threads, int reps, int only)
{
    static const double dens[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5};
    const int n = 128;
    printf("per-product time, batch %d, %d thread(s), median of %d; dense ms | sparse ms at each density "
           "(speedup, FLOP ratio 1/density)\n", n, threads, reps);
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const layer *L = &layers[li];
        if (only >= 0 && (size_t)only != li)
            continue;
        pare_graph *g = pare_graph_new("bench");
        int x = pare_graph_input(g, L->c, L->h, L->w);
        if (L->linear) {
            pare_graph_linear(g, x, L->o, 1, "l");
        } else {
            pare_conv2d_desc d = {0};
            d.out_channels = L->o;
            d.kernel_h = L->k;
            d.stride_h = L->stride;
            d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = L->pad;
            pare_graph_conv2d_ex(g, x, &d, "l");
        }
        if (pare_graph_status(g) != PARE_OK) {
            fprintf(stderr, "%s: %s\n", L->name, pare_last_error());
            exit(1);
        }
        run r;
        memset(&r, 0, sizeof r);
        r.g = g;
        r.def = pare_op_get(g->nodes[1].op);
        r.n = n;
        r.threads = threads;
        pare_param *p = &g->params[g->nodes[1].param[0]];
        set_mask(p, 1.0, 1); /* plans the room for the sparse paths */
        size_t xn = pare_shape_size(g->nodes[0].out) * (size_t)n, yn = pare_shape_size(g->nodes[1].out) * (size_t)n;
        r.x = pare_alloc_array(xn, sizeof(float), 0);
        r.dx = pare_alloc_array(xn, sizeof(float), 0);
        r.y = pare_alloc_array(yn, sizeof(float), 0);
        r.dy = pare_alloc_array(yn, sizeof(float), 0);
        r.dw = pare_alloc_array(p->t->n, sizeof(float), 0);
        r.wsf = r.def->ws_floats ? (r.def->ws_floats(g, &g->nodes[1], n, 1) + 15) / 16 * 16 : 0;
        r.ws = pare_alloc_array(r.wsf * (size_t)threads + 16, sizeof(float), 0);
        size_t ab = r.def->aux_bytes ? r.def->aux_bytes(g, &g->nodes[1], n) : 0;
        r.aux = pare_alloc(ab + 64, 0);
        fill(r.x, xn, 2);
        fill(r.dy, yn, 3);
        double macs = r.def->macs(g, &g->nodes[1]) * n;
        printf("\n%s (%.1f MMAC per product)\n%-8s %9s", L->name, macs * 1e-6, "product", "dense");
        for (size_t di = 0; di < sizeof dens / sizeof dens[0]; di++)
            printf("   %5.2f sparse", dens[di]);
        printf("\n");
        static const char *const what_name[3] = {"forward", "dx", "dW"};
        for (int what = 0; what < 3; what++) {
            fill(p->t->data, p->t->n, 4);
            set_mask(p, 1.0, 1);
            pare_sparse_force(0);
            double td = time_product(&r, what, reps);
            printf("%-8s %8.3fms", what_name[what], 1e3 * td);
            for (size_t di = 0; di < sizeof dens / sizeof dens[0]; di++) {
                fill(p->t->data, p->t->n, 4);
                set_mask(p, dens[di], 5 + di);
                pare_sparse_force(1);
                double ts = time_product(&r, what, reps);
                printf(" %6.3f(%4.1fx)", 1e3 * ts, td / ts);
            }
            printf("\n");
        }
        pare_sparse_force(-1);
        pare_free(r.x);
        pare_free(r.dx);
        pare_free(r.y);
        pare_free(r.dy);
        pare_free(r.dw);
        pare_free(r.ws);
        pare_free(r.aux);
        pare_graph_free(g);
    }
}

/* ---- whole training steps -------------------------------------------------- */

typedef struct step_result {
    double step, fwd[64], bwd[64];
} step_result;

/* STEPS training steps (after 3 warm-up steps) on a fixed random batch. */
static void time_steps(pare_graph *g, int batch, int threads, int steps, int sparse, step_result *out)
{
    pare_exec *e;
    if (pare_exec_new(g, batch, 1, threads, &e) != PARE_OK) {
        fprintf(stderr, "%s\n", pare_last_error());
        exit(1);
    }
    pare_exec_set_sparse_grads(e, sparse);
    pare_train_config c;
    pare_train_config_init(&c);
    pare_optim *o;
    pare_optim_new(g, &c, &o);
    fill(pare_exec_input(e), pare_shape_size(g->nodes[0].out) * (size_t)batch, 9);
    int k = g->nodes[g->output].out.c;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
    for (int i = 0; i < batch; i++)
        lab[i] = i % k;
    double t_all = 0;
    for (int s = -3; s < steps; s++) {
        if (s == 0)
            pare_exec_profile(e, 1);
        double t0 = now_s();
        pare_exec_forward(e, batch, (uint64_t)s);
        pare_softmax_xent(pare_exec_output(e), lab, batch, k, pare_exec_output_grad(e), NULL);
        pare_exec_backward(e, batch);
        pare_optim_step(o, g, e, 0.01f, threads);
        if (s >= 0)
            t_all += now_s() - t0;
    }
    out->step = t_all / steps;
    for (int v = 1; v < g->n_nodes && v < 64; v++) {
        pare_exec_profile_get(e, v, &out->fwd[v], &out->bwd[v]);
        out->fwd[v] /= steps;
        out->bwd[v] /= steps;
    }
    free(lab);
    pare_optim_free(o);
    pare_exec_free(e);
}

/* Training FLOPs of conv and linear layers per sample (forward, input
 * gradient unless the layer reads the graph input, weight gradient), dense
 * and at each weight's kept fraction. */
static void step_flops(const pare_graph *g, double *dense, double *sparse)
{
    *dense = *sparse = 0;
    for (int v = 1; v < g->n_nodes; v++) {
        const pare_node *nd = &g->nodes[v];
        if (nd->op != PARE_OP_CONV2D && nd->op != PARE_OP_LINEAR)
            continue;
        const pare_param *p = &g->params[nd->param[0]];
        double f = 2 * pare_op_get(nd->op)->macs(g, nd), keep = 1;
        if (p->mask) {
            size_t k = 0;
            for (size_t i = 0; i < p->t->n; i++)
                k += p->mask[i] != 0;
            keep = (double)k / (double)p->t->n;
        }
        int prods = g->nodes[nd->in[0]].op == PARE_OP_INPUT ? 2 : 3;
        *dense += prods * f;
        *sparse += prods * f * keep;
    }
}

static void bench_step(int threads, int steps, int reps)
{
    static const double sparsity[] = {0, 0.5, 0.75, 0.9, 0.95};
    const int batch = 128, ns = (int)(sizeof sparsity / sizeof sparsity[0]);
    pare_graph *g0;
    if (pare_zoo_build("fmnist-cnn", 0, 0, &g0) != PARE_OK) {
        fprintf(stderr, "%s\n", pare_last_error());
        exit(1);
    }
    int nn = g0->n_nodes < 64 ? g0->n_nodes : 64;
    /* [sparsity][rep] */
    step_result *res = calloc((size_t)ns * (size_t)reps, sizeof *res);
    double fl_dense = 0, fl[8];
    /* Runs interleaved over sparsities so drifting machine load hits all alike. */
    for (int rep = 0; rep < reps; rep++)
        for (int si = 0; si < ns; si++) {
            pare_graph *g;
            pare_graph_clone(g0, &g);
            int first = -1, last = -1;
            for (int v = 1; v < g->n_nodes; v++)
                if (g->nodes[v].op == PARE_OP_CONV2D || g->nodes[v].op == PARE_OP_LINEAR) {
                    if (first < 0)
                        first = v;
                    last = v;
                }
            if (sparsity[si] > 0)
                for (int v = 1; v < g->n_nodes; v++)
                    if (v != first && v != last &&
                        (g->nodes[v].op == PARE_OP_CONV2D || g->nodes[v].op == PARE_OP_LINEAR))
                        set_mask(&g->params[g->nodes[v].param[0]], 1 - sparsity[si], 100 + (uint64_t)v);
            step_flops(g, &fl_dense, &fl[si]);
            pare_sparse_force(sparsity[si] > 0 ? -1 : 0);
            time_steps(g, batch, threads, steps, sparsity[si] > 0, &res[si * reps + rep]);
            pare_sparse_force(-1);
            pare_graph_free(g);
        }
    double *tmp = malloc(sizeof(double) * (size_t)reps);
    double med[8][2][64], step[8];
    for (int si = 0; si < ns; si++) {
        for (int r = 0; r < reps; r++)
            tmp[r] = res[si * reps + r].step;
        step[si] = median(tmp, reps);
        for (int v = 1; v < nn; v++)
            for (int fb = 0; fb < 2; fb++) {
                for (int r = 0; r < reps; r++)
                    tmp[r] = fb ? res[si * reps + r].bwd[v] : res[si * reps + r].fwd[v];
                med[si][fb][v] = median(tmp, reps);
            }
    }
    printf("W1 fmnist-cnn training step, batch %d, %d thread(s), median of %d runs of %d steps\n", batch, threads,
           reps, steps);
    printf("%-16s", "layer fwd|bwd ms");
    for (int si = 0; si < ns; si++)
        printf("      %3.0f%% sparse", 100 * sparsity[si]);
    printf("\n");
    for (int v = 1; v < nn; v++) {
        const pare_node *nd = &g0->nodes[v];
        if (nd->op == PARE_OP_FLATTEN)
            continue;
        printf("%-16s", nd->name);
        for (int si = 0; si < ns; si++)
            printf("  %6.2f|%6.2f", 1e3 * med[si][0][v], 1e3 * med[si][1][v]);
        printf("\n");
        if (nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR) {
            printf("%-16s", "  speedup f|b");
            for (int si = 0; si < ns; si++)
                printf("  %5.1fx|%5.1fx", med[0][0][v] / med[si][0][v], med[0][1][v] / med[si][1][v]);
            printf("\n");
        }
    }
    printf("%-16s", "step ms");
    for (int si = 0; si < ns; si++)
        printf("  %13.1f", 1e3 * step[si]);
    printf("\n%-16s", "step speedup");
    for (int si = 0; si < ns; si++)
        printf("  %12.2fx", step[0] / step[si]);
    printf("\n%-16s", "conv+fc FLOP 1/x");
    for (int si = 0; si < ns; si++)
        printf("  %12.2fx", fl_dense / fl[si]);
    printf("\n");
    free(tmp);
    free(res);
    pare_graph_free(g0);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "step";
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (!strcmp(mode, "layers")) {
        bench_layers(threads, argc > 3 ? atoi(argv[3]) : 7, argc > 4 ? atoi(argv[4]) : -1);
    } else if (!strcmp(mode, "step")) {
        bench_step(threads, argc > 3 ? atoi(argv[3]) : 10, argc > 4 ? atoi(argv[4]) : 3);
    } else {
        fprintf(stderr, "usage: sparse_step layers|step [THREADS] [...]\n");
        return 2;
    }
    return 0;
}
