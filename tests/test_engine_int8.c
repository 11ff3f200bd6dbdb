/* The int8 engine: quantized zoo models (per-channel 8-bit weights, a
 * calibrated fakequant before every conv and linear input) compiled to int8
 * plans, checked layer by layer against the float simulation (every code
 * within one step of the fakequant of the float conv of the same input
 * codes), the whole plan bit for bit against the same plan on the scalar
 * reference kernels and on every ISA, sparse packings bit for bit against
 * the dense one, and the float paths, fallbacks and refusals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "graph/graph.h"
#include "models.h"
#include "test.h"

/* A quantized zoo model (pruned first when a scheme is given). */
static pare_graph *qmodel(const char *name, const char *scheme, double sp, uint64_t seed)
{
    pare_graph *g = NULL, *q = NULL;
    CHECK_OK(pare_zoo_build(name, 0, seed, &g));
    if (!g)
        return NULL;
    test_random_stats(g, seed + 1);
    if (scheme)
        test_prune_to(g, scheme, sp);
    CHECK_OK(pare_engine_fake_quantize(g, 2, seed + 2, &q));
    pare_graph_free(g);
    return q;
}

static int convs_and_linears(const pare_graph *g)
{
    int n = 0;
    for (int v = 0; v < g->n_nodes; v++)
        n += g->nodes[v].op == PARE_OP_CONV2D || g->nodes[v].op == PARE_OP_LINEAR;
    return n;
}

static float *input_of(const pare_graph *g, int n, uint64_t seed)
{
    size_t isz = pare_shape_size(g->nodes[0].out) * (size_t)n;
    float *x = malloc(sizeof(float) * isz);
    pare_rng r;
    pare_rng_seed(&r, seed, 3, 0, 0);
    for (size_t i = 0; i < isz; i++)
        x[i] = (float)pare_rng_normal(&r);
    return x;
}

/* Compiles (at ISA level `isa`, -1 the machine's) and runs n samples. */
static float *plan_out(const pare_graph *g, const pare_plan_options *o, int isa, const float *x, int n,
                       pare_plan_info *info)
{
    pare_isa_override(isa);
    pare_plan *p = NULL;
    float *y = NULL;
    pare_status s = pare_plan_new(g, o, &p);
    if (s == PARE_OK) {
        pare_plan_info in;
        pare_plan_get_info(p, &in);
        if (info)
            *info = in;
        y = malloc(sizeof(float) * (size_t)in.out_size * (size_t)n);
        s = pare_plan_run(p, x, n, y);
    }
    CHECKF(s == PARE_OK, "%s: %s", g->name, pare_last_error());
    pare_plan_free(p);
    pare_isa_override(-1);
    return y;
}

static size_t out_size(const pare_graph *g) { return pare_shape_size(g->nodes[g->output].out); }

PARE_TEST(engine_int8_plans_are_exact_across_isas)
{
    static const char *const models[] = {"lenet", "fmnist-cnn", "resnet20", "mobilenetv2", "vgg11-bn"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        pare_graph *q = qmodel(models[m], NULL, 0, 20 + m);
        if (!q)
            continue;
        float *x = input_of(q, 2, 5 + m);
        pare_plan_options o = {1, 0, 0, 0};
        pare_plan_info info;
        float *ref = plan_out(q, &o, PARE_ISA_REF, x, 2, &info);
        CHECKF(info.int8_layers == convs_and_linears(q), "%s: %d of %d layers run in int8", models[m],
               info.int8_layers, convs_and_linears(q));
        size_t on = out_size(q) * 2;
        for (int level = 1; level < PARE_ISA_COUNT; level++) {
            if (!pare_qconv_at(level))
                continue;
            for (int threads = 1; threads <= 2; threads++) {
                o.threads = threads;
                float *y = plan_out(q, &o, level, x, 2, NULL);
                CHECKF(ref && y && memcmp(ref, y, sizeof(float) * on) == 0, "%s at %s with %d threads differs from ref",
                       models[m], pare_isa_name((pare_isa_level)level), threads);
                free(y);
            }
        }
        /* against the float simulation of the same graph */
        float *sim = malloc(sizeof(float) * on);
        CHECK_OK(pare_graph_forward(q, x, 2, sim, 1));
        double mx = 0, d = 0;
        for (size_t i = 0; i < on && ref; i++) {
            mx = fmax(mx, fabs(sim[i]));
            d = fmax(d, fabs(sim[i] - ref[i]));
        }
        printf("  %s: max |int8 - float simulation| %.3g (max |output| %.3g), activations %zu B\n", models[m], d, mx,
               info.activation_bytes);
        free(sim);
        free(ref);
        free(x);
        pare_graph_free(q);
    }
}

/* ---- layer by layer against the float simulation ------------------------- */

/* The consumer chain of a conv: its batch norm, residual add, activation, max
 * pool and the fakequant that ends it (fields -1 when absent). */
typedef struct chain {
    int bn, add, res_src, act, pool, fq;
} chain;

static int sole_consumer(const pare_graph *g, int v)
{
    int u = -1, n = 0;
    for (int w = v + 1; w < g->n_nodes; w++)
        for (int j = 0; j < g->nodes[w].n_in; j++)
            if (g->nodes[w].in[j] == v) {
                u = w;
                n++;
            }
    return n == 1 && v != g->output ? u : -1;
}

static chain chain_of(const pare_graph *g, int v)
{
    chain c = {-1, -1, -1, -1, -1, -1};
    int cur = v, u = sole_consumer(g, cur);
    if (u >= 0 && g->nodes[u].op == PARE_OP_BATCHNORM) {
        c.bn = u;
        cur = u;
        u = sole_consumer(g, cur);
    }
    if (u >= 0 && g->nodes[u].op == PARE_OP_ADD) {
        c.add = u;
        c.res_src = g->nodes[u].in[0] == cur ? g->nodes[u].in[1] : g->nodes[u].in[0];
        cur = u;
        u = sole_consumer(g, cur);
    }
    if (u >= 0 && (g->nodes[u].op == PARE_OP_RELU || g->nodes[u].op == PARE_OP_RELU6)) {
        c.act = u;
        cur = u;
        u = sole_consumer(g, cur);
    }
    if (u >= 0 && g->nodes[u].op == PARE_OP_MAXPOOL) {
        c.pool = u;
        cur = u;
        u = sole_consumer(g, cur);
    }
    if (u >= 0 && g->nodes[u].op == PARE_OP_FAKEQUANT)
        c.fq = u;
    return c;
}

static float act_f(pare_plan *p, int a, int c, int y, int x)
{
    const pare_act *s = &p->acts[a];
    return pare_engine_act(p, a)[c * s->cs + (long)(y + s->P) * s->rs + (x + s->P)];
}

static int act_code(pare_plan *p, int a, int c, int y, int x)
{
    const pare_act *s = &p->acts[a];
    const uint8_t *b = (const uint8_t *)pare_engine_act(p, a);
    return b[4 * ((c / 4) * s->cs + (long)(y + s->P) * s->rs + (x + s->P)) + c % 4];
}

/* Checks one stride-1 int8 conv step right after it ran: every output is the
 * float simulation (the conv of the dequantized input codes, in double, then
 * batch norm, residual, activation and the fakequant) within one code, and
 * floats within 1e-5. Returns the codes that differ by one. */
static long check_qconv_step(pare_plan *p, const pare_step *st, const pare_graph *g, int v, long *checked)
{
    const pare_node *nd = &g->nodes[v], *fin = &g->nodes[nd->in[0]];
    chain ch = chain_of(g, v);
    if (ch.add >= 0 && st->res < 0) {
        /* the add's other input comes later: the engine fuses the add into its
         * producer, and this step ends at the batch norm */
        ch.add = ch.act = ch.pool = ch.fq = -1;
    }
    const pare_param *w = &g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)];
    int bi = pare_graph_node_param(g, v, PARE_ROLE_BIAS);
    int O = nd->out.c, H = nd->out.h, W = nd->out.w, G = nd->a.groups, C = fin->out.c, Cg = C / G, og = O / G;
    int kh = nd->a.kernel[0], kw = nd->a.kernel[1];
    double s_in = fin->a.alpha, zp_in = fin->a.beta;
    long ones = 0;
    for (int o = 0; o < O; o++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double acc = bi >= 0 ? g->params[bi].t->data[o] : 0;
                for (int c = 0; c < Cg; c++)
                    for (int i = 0; i < kh; i++)
                        for (int j = 0; j < kw; j++) {
                            int yy = y - nd->a.pad[0] + i * nd->a.dilation[0], xx = x - nd->a.pad[1] + j * nd->a.dilation[1];
                            if (yy < 0 || yy >= fin->out.h || xx < 0 || xx >= fin->out.w)
                                continue;
                            int cin = (o / og) * Cg + c;
                            double xv = ((double)act_code(p, st->in[0], cin, yy, xx) - zp_in) * s_in;
                            acc += (double)w->t->data[(((size_t)o * Cg + c) * kh + i) * kw + j] * xv;
                        }
                if (ch.bn >= 0) {
                    const float *gam = g->params[pare_graph_node_param(g, ch.bn, PARE_ROLE_BN_GAMMA)].t->data;
                    const float *bet = g->params[pare_graph_node_param(g, ch.bn, PARE_ROLE_BN_BETA)].t->data;
                    const float *mu = g->params[pare_graph_node_param(g, ch.bn, PARE_ROLE_BN_MEAN)].t->data;
                    const float *var = g->params[pare_graph_node_param(g, ch.bn, PARE_ROLE_BN_VAR)].t->data;
                    acc = (acc - mu[o]) * gam[o] / sqrt((double)var[o] + g->nodes[ch.bn].a.eps) + bet[o];
                }
                if (st->res >= 0)
                    acc += act_f(p, st->res, o, y, x);
                if (ch.act >= 0) {
                    acc = acc > 0 ? acc : 0;
                    if (g->nodes[ch.act].op == PARE_OP_RELU6)
                        acc = acc < 6 ? acc : 6;
                }
                (*checked)++;
                if (st->q_out8) {
                    const pare_node *f = &g->nodes[ch.fq];
                    double c = rint(acc / f->a.alpha) + f->a.beta, qmax = (1 << f->a.mode) - 1;
                    c = c < 0 ? 0 : c > qmax ? qmax : c;
                    int got = act_code(p, st->out, o, y, x);
                    if (got != (int)c) {
                        ones++;
                        if (fabs(got - c) > 1) {
                            CHECKF(0, "%s channel %d (%d, %d): code %d, float simulation %g", nd->name, o, y, x, got, c);
                            return ones;
                        }
                    }
                } else {
                    float got = act_f(p, st->out, o, y, x);
                    if (!(fabs(got - acc) <= 1e-5 * (1 + fabs(acc)))) {
                        CHECKF(0, "%s channel %d (%d, %d): %g, float simulation %g", nd->name, o, y, x, got, acc);
                        return ones;
                    }
                }
            }
    return ones;
}

PARE_TEST(engine_int8_layers_match_the_float_simulation)
{
    static const char *const models[] = {"lenet", "fmnist-cnn", "resnet20", "mobilenetv2", "vgg11-bn"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        pare_graph *q = qmodel(models[m], NULL, 0, 40 + m);
        if (!q)
            continue;
        float *x = input_of(q, 1, 9 + m);
        pare_plan_options o = {1, 0, 0, 0};
        pare_plan *p = NULL;
        CHECK_OK(pare_plan_new(q, &o, &p));
        if (!p) {
            free(x);
            pare_graph_free(q);
            continue;
        }
        /* pare_plan_run's loop, with a check after every stride-1 int8 conv */
        pare_engine_zero_halo(p, p->input_act);
        const pare_act *ia = &p->acts[p->input_act];
        for (int c = 0; c < p->in_c; c++)
            for (int y = 0; y < p->in_h; y++)
                memcpy(pare_engine_act(p, p->input_act) + c * ia->cs + (long)(y + ia->P) * ia->rs + ia->P,
                       x + ((size_t)c * (size_t)p->in_h + (size_t)y) * (size_t)p->in_w, sizeof(float) * (size_t)p->in_w);
        long checked = 0, ones = 0;
        int layers = 0;
        for (int i = 0; i < p->n_steps; i++) {
            pare_step *st = &p->steps[i];
            pare_engine_zero_halo(p, st->out);
            pare_engine_run_step(p, st);
            if (st->kind != PARE_STEP_QCONV)
                continue;
            int v = pare_graph_find_node(q, st->name);
            if (v < 0 || q->nodes[v].a.stride[0] != 1 || q->nodes[v].a.stride[1] != 1)
                continue;
            ones += check_qconv_step(p, st, q, v, &checked);
            layers++;
        }
        printf("  %s: %d layers, %ld outputs, %ld one code off the float simulation\n", models[m], layers, checked,
               ones);
        CHECKF(layers > 0 && ones * 100 <= checked, "%s: %ld of %ld codes off by one", models[m], ones, checked);
        pare_plan_free(p);
        free(x);
        pare_graph_free(q);
    }
}

/* ---- sparse packings ------------------------------------------------------ */

PARE_TEST(engine_int8_sparse_packings_equal_dense)
{
    /* without tuning, the first candidate: block R x C packs groups of R
     * filters (3x3 layers over gathered k-quads), N:M groups of 4,
     * unstructured and pattern layers single filters (gathered pattern taps
     * are a tuning candidate: the test of the tuned plans covers them) */
    static const struct {
        const char *scheme, *kernel[2];
    } cases[] = {{"block:4x4", {"block 4 gathered", "block 4"}}, {"block:8x8", {"block 8 gathered", "block 8"}},
                 {"block:2x2", {"block 2 gathered", "block 2"}}, {"unstructured", {"sparse", "sparse"}},
                 {"2:4", {"block 4", "block 4"}},                {"pattern", {"sparse", "sparse"}}};
    static const char *const models[] = {"resnet20", "mobilenetv2"};
    for (size_t m = 0; m < 2; m++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            pare_graph *q = qmodel(models[m], cases[k].scheme, 0.8, 60 + k);
            if (!q)
                continue;
            float *x = input_of(q, 2, 3);
            pare_plan_options os = {1, 0, 0, 0}, od = {1, 0, 1, 0};
            pare_plan *p = NULL;
            int found = 0;
            CHECK_OK(pare_plan_new(q, &os, &p));
            for (int i = 0; p && i < p->n_steps; i++)
                found |= p->steps[i].kind == PARE_STEP_QCONV && strstr(p->steps[i].kernel, cases[k].kernel[m]) != NULL;
            pare_plan_free(p);
            CHECKF(found, "%s %s: no layer packed as %s", models[m], cases[k].scheme, cases[k].kernel[m]);
            float *ys = plan_out(q, &os, -1, x, 2, NULL), *yd = plan_out(q, &od, -1, x, 2, NULL);
            CHECKF(ys && yd && memcmp(ys, yd, sizeof(float) * out_size(q) * 2) == 0,
                   "%s %s: the sparse int8 plan differs from the dense one", models[m], cases[k].scheme);
            free(ys);
            free(yd);
            free(x);
            pare_graph_free(q);
        }
}

/* ---- float modes, fallbacks, tuning, refusals ----------------------------- */

static double rel_err(const float *a, const float *b, size_t n)
{
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(b[i]));
        d = fmax(d, fabs(a[i] - b[i]));
    }
    return d / (m > 0 ? m : 1);
}

PARE_TEST(engine_int8_float_modes_and_fallbacks)
{
    pare_graph *q = qmodel("resnet20", NULL, 0, 77);
    if (!q)
        return;
    float *x = input_of(q, 2, 4);
    size_t on = out_size(q) * 2;
    float *sim = malloc(sizeof(float) * on);
    CHECK_OK(pare_graph_forward(q, x, 2, sim, 1));
    pare_plan_info i8, f1, f2;
    pare_plan_options o = {1, 0, 0, 0};
    float *y8 = plan_out(q, &o, -1, x, 2, &i8);
    o.float32 = 1;
    float *y1 = plan_out(q, &o, -1, x, 2, &f1);
    o.float32 = 2;
    float *y2 = plan_out(q, &o, -1, x, 2, &f2);
    CHECK(i8.int8_layers == convs_and_linears(q) && f1.int8_layers == 0 && f2.int8_layers == 0);
    /* float32 1 simulates the fakequant nodes: the graph's own evaluation */
    CHECKF(y1 && rel_err(y1, sim, on) < 1e-3, "float32 = 1: relative error %g", y1 ? rel_err(y1, sim, on) : -1.0);
    CHECKF(y8 && rel_err(y8, sim, on) < 1e-3, "int8: relative error %g", y8 ? rel_err(y8, sim, on) : -1.0);
    /* activations are codes: a quarter of the bytes, but for the float values kept (residuals) */
    printf("  activations: int8 %zu B, float32 %zu B\n", i8.activation_bytes, f2.activation_bytes);
    CHECK(i8.activation_bytes < f2.activation_bytes);
    CHECK(i8.weight_bytes * 3 < f2.weight_bytes);
    /* float32 2 skips the quantizers: no step quantizes */
    pare_plan *p = NULL;
    CHECK_OK(pare_plan_new(q, &o, &p));
    for (int i = 0; p && i < p->n_steps; i++)
        CHECKF(p->steps[i].kind != PARE_STEP_QUANT && p->steps[i].kind != PARE_STEP_OP, "float32 = 2: step %s is %s",
               p->steps[i].name, p->steps[i].kernel);
    /* the int8 plan emits as C (tests/test_emit.c compiles and runs it) */
    pare_plan_free(p);
    p = NULL;
    o.float32 = 0;
    CHECK_OK(pare_plan_new(q, &o, &p));
    if (p)
        CHECK_OK(pare_plan_emit_c(p, pare_test_path("m.c"), "m"));
    pare_plan_free(p);
    /* code -128 (PyTorch's per-channel weights use it): still int8, and equal
     * to the simulation */
    int v = pare_graph_find_node(q, "layer2.1.a.conv");
    CHECK(v >= 0);
    if (v >= 0) {
        pare_param *wp = &q->params[pare_graph_node_param(q, v, PARE_ROLE_WEIGHT)];
        size_t per = wp->t->n / (size_t)wp->t->dims[0];
        for (int c = 0; c < wp->t->dims[0]; c += 3)
            wp->t->data[(size_t)c * per + 7] = -128.0f * wp->q.scale[c];
        pare_plan_info ii;
        float *yo = plan_out(q, &o, -1, x, 2, &ii);
        CHECKF(ii.int8_layers == convs_and_linears(q), "code -128: %d int8 layers", ii.int8_layers);
        CHECK_OK(pare_graph_forward(q, x, 2, sim, 1));
        CHECKF(yo && rel_err(yo, sim, on) < 1e-3, "code -128: relative error %g", yo ? rel_err(yo, sim, on) : -1.0);
        free(yo);
    }
    /* a weight off its grid: that layer runs in float32, the rest in int8 */
    if (v >= 0) {
        pare_param *wp = &q->params[pare_graph_node_param(q, v, PARE_ROLE_WEIGHT)];
        wp->t->data[5] = nextafterf(wp->t->data[5], 1e9f);
        pare_plan_info ii;
        float *yo = plan_out(q, &o, -1, x, 2, &ii);
        CHECKF(ii.int8_layers == convs_and_linears(q) - 1, "%d int8 layers", ii.int8_layers);
        CHECK_OK(pare_graph_forward(q, x, 2, sim, 1));
        CHECKF(yo && rel_err(yo, sim, on) < 1e-3, "off-grid weight: relative error %g", yo ? rel_err(yo, sim, on) : -1.0);
        free(yo);
    }
    free(y8);
    free(y1);
    free(y2);
    free(sim);
    free(x);
    pare_graph_free(q);
}

PARE_TEST(engine_int8_tuned_never_slower_choice_is_cached)
{
    setenv("PARE_TUNE_CACHE", pare_test_path("tune.txt"), 1);
    pare_graph *q = qmodel("fmnist-cnn", "block:4x4", 0.75, 91);
    if (!q)
        return;
    float *x = input_of(q, 1, 4);
    size_t on = out_size(q);
    float *sim = malloc(sizeof(float) * on);
    CHECK_OK(pare_graph_forward(q, x, 1, sim, 1));
    pare_plan_options o = {1, 1, 0, 0};
    pare_plan_info info;
    float *y = plan_out(q, &o, -1, x, 1, &info);
    CHECKF(y && rel_err(y, sim, on) < 1e-3, "tuned: relative error %g", y ? rel_err(y, sim, on) : -1.0);
    /* every int8 layer has its int8-or-float choice in the cache */
    FILE *f = fopen(pare_test_path("tune.txt"), "r");
    int choices = 0;
    char line[600];
    while (f && fgets(line, sizeof line, f))
        choices += line[0] == 'd';
    if (f)
        fclose(f);
    CHECKF(choices == convs_and_linears(q), "%d int8-or-float choices cached", choices);
    float *y2 = plan_out(q, &o, -1, x, 1, NULL);
    CHECK(y && y2 && memcmp(y, y2, sizeof(float) * on) == 0);
    free(y);
    free(y2);
    free(sim);
    free(x);
    pare_graph_free(q);
}

PARE_TEST(engine_int8_every_packing_equals_dense)
{
    /* each candidate packing forced where it fits, against the dense packing */
    static const struct {
        const char *scheme;
        int gathered, rows;
        const char *kernel;
    } cases[] = {{"pattern", 2, 1, "pattern gathered"}, {"pattern", 2, 4, "pattern 4 gathered"},
                 {"pattern", 0, 4, "block 4 ->"},       {"block:4x4", 1, 4, "block 4 gathered"},
                 {"block:4x4", 0, 1, "sparse"},         {"block:4x4", 0, 2, "block 2 ->"},
                 {"block:4x4", 0, 8, "block 8 ->"},     {"unstructured", 0, 8, "block 8 ->"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pare_graph *q = qmodel("resnet20", cases[k].scheme, 0.8, 80 + k);
        if (!q)
            continue;
        float *x = input_of(q, 1, 5);
        pare_plan_options od = {1, 0, 1, 0};
        float *yd = plan_out(q, &od, -1, x, 1, NULL);
        pare_plan *p = NULL;
        od.keep_dense = 0;
        CHECK_OK(pare_engine_plan_forced(q, &od, cases[k].gathered, cases[k].rows, &p));
        int found = 0;
        float *y = malloc(sizeof(float) * out_size(q));
        for (int i = 0; p && i < p->n_steps; i++)
            found |= p->steps[i].kind == PARE_STEP_QCONV && strstr(p->steps[i].kernel, cases[k].kernel) != NULL;
        CHECKF(found, "%s: no layer packed as %s", cases[k].scheme, cases[k].kernel);
        if (p)
            CHECK_OK(pare_plan_run(p, x, 1, y));
        CHECKF(p && yd && memcmp(y, yd, sizeof(float) * out_size(q)) == 0, "%s packed as %s differs from dense",
               cases[k].scheme, cases[k].kernel);
        pare_plan_free(p);
        /* two threads split the tiles (or, on small planes, the groups) */
        p = NULL;
        od.threads = 2;
        CHECK_OK(pare_engine_plan_forced(q, &od, cases[k].gathered, cases[k].rows, &p));
        if (p)
            CHECK_OK(pare_plan_run(p, x, 1, y));
        CHECKF(p && yd && memcmp(y, yd, sizeof(float) * out_size(q)) == 0,
               "%s packed as %s differs from dense with 2 threads", cases[k].scheme, cases[k].kernel);
        pare_plan_free(p);
        free(y);
        free(yd);
        free(x);
        pare_graph_free(q);
    }
}
