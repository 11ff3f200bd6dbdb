/* Emitted C against the engine: zoo models dense and pruned (pattern, N:M,
 * block and CSR kernels; strided, depthwise and residual convs; pooling,
 * concat, linear layers) are emitted, compiled with cc -Werror, run on two
 * samples in a row and compared with pare_plan_run; bad prefixes, missing
 * folders and broken weights are refused. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress/prune.h"
#include "core/cpu.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "graph/graph.h"
#include "test.h"

/* The warnings the emitted file must not raise (the project's own set and
 * -Wconversion), so users can drop it into strict builds. */
#define STRICT "-O2 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual " \
               "-Wconversion -Werror"

/* A driver that runs every sample of a file through model_run in turn, so a
 * state left over from one sample (a halo not zeroed) shows in the next. */
static const char driver_src[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "void model_run(const float *in, float *out);\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    if (argc != 6)\n"
    "        return 2;\n"
    "    size_t nin = (size_t)strtol(argv[3], NULL, 10), nout = (size_t)strtol(argv[4], NULL, 10);\n"
    "    size_t n = (size_t)strtol(argv[5], NULL, 10);\n"
    "    float *x = malloc(sizeof(float) * nin * n), *y = malloc(sizeof(float) * nout * n);\n"
    "    FILE *f = fopen(argv[1], \"rb\");\n"
    "    if (!x || !y || !f || fread(x, sizeof(float), nin * n, f) != nin * n)\n"
    "        return 3;\n"
    "    fclose(f);\n"
    "    for (size_t s = 0; s < n; s++)\n"
    "        model_run(x + s * nin, y + s * nout);\n"
    "    f = fopen(argv[2], \"wb\");\n"
    "    if (!f || fwrite(y, sizeof(float), nout * n, f) != nout * n || fclose(f) != 0)\n"
    "        return 4;\n"
    "    free(x);\n"
    "    free(y);\n"
    "    return 0;\n"
    "}\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* cc on PATH: the tests that compile are skipped (with a line saying so) without it. */
static int have_cc(void)
{
    static int known = -1;
    if (known < 0)
        known = system("cc --version > /dev/null 2>&1") == 0;
    if (!known)
        printf("  (skipped: no C compiler 'cc' on PATH)\n");
    return known;
}

static int have_clang(void) { return system("clang --version > /dev/null 2>&1") == 0; }

/* Runs a shell command; on failure prints it and the head of its log. */
static int sh(const char *cmd, const char *log)
{
    int rc = system(cmd);
    if (rc != 0) {
        printf("  command failed (%d): %s\n", rc, cmd);
        FILE *f = log ? fopen(log, "r") : NULL;
        if (f) {
            char line[512];
            for (int i = 0; i < 25 && fgets(line, sizeof line, f); i++)
                printf("    %s", line);
            fclose(f);
        }
    }
    return rc == 0;
}

/* BN statistics away from the identity, so folding shows in the numbers. */
static void shake_stats(pare_graph *g, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 5, 0, 0);
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        for (size_t k = 0; k < p->t->n; k++) {
            float u = (float)pare_rng_uniform_d(&r);
            if (p->role == PARE_ROLE_BN_VAR || p->role == PARE_ROLE_BN_GAMMA)
                p->t->data[k] = 0.5f + u;
            else if (p->role == PARE_ROLE_BN_MEAN || p->role == PARE_ROLE_BN_BETA || p->role == PARE_ROLE_BIAS)
                p->t->data[k] = (u - 0.5f) * 0.2f;
        }
    }
}

static int prune(pare_graph *g, const char *scheme, double sparsity)
{
    pare_prune_options po = {scheme, sparsity, 0, NULL, 0, 0};
    pare_prune_plan plan;
    if (pare_prune_plan_new(g, &po, &plan) != PARE_OK) {
        printf("  (scheme %s: %s)\n", scheme, pare_last_error());
        return 0;
    }
    pare_status s = pare_prune_apply(g, &plan, NULL, NULL);
    pare_prune_plan_free(&plan);
    return s == PARE_OK;
}

/* Whether some step's kernel description contains `what`. */
static int plan_has(const pare_plan *p, const char *what)
{
    pare_plan_info info;
    pare_plan_get_info(p, &info);
    for (int i = 0; i < info.steps; i++) {
        pare_step_info si;
        if (pare_plan_step_info(p, i, &si) == PARE_OK && strstr(si.kernel, what))
            return 1;
    }
    return 0;
}

static int write_floats(const char *path, const float *x, size_t n)
{
    return pare_write_file_atomic(path, x, n * sizeof(float)) == PARE_OK;
}

/* Emits the plan of g, builds it with the driver, runs two samples and
 * compares with pare_plan_run to a relative tol; `kernels` lists kernel
 * names the plan must use ("|"-separated), so the case proves it covers them. */
static pare_conv_kind emit_kind; /* nonzero: plans with every float dense conv lowered so */
static int emit_q_gathered = -1, emit_q_rows; /* >= 0: int8 plans with this packing forced */
static int emit_float32;                      /* the plan option float32 */

static void emit_and_compare_tol(pare_graph *g, const char *tag, const char *kernels, double tol)
{
    pare_plan *p = NULL;
    pare_plan_options o = {1, 0, 0, emit_float32};
    CHECK_OK(emit_q_gathered >= 0 ? pare_engine_plan_forced(g, &o, emit_q_gathered, emit_q_rows, &p)
             : emit_kind          ? pare_engine_plan_dense_as(g, &o, emit_kind, &p)
                                  : pare_plan_new(g, &o, &p));
    if (!p)
        return;
    /* int8 layers and fakequants need libm (rintf, fmaf); nothing else does */
    int libm = 0;
    for (int i = 0; i < p->n_steps; i++)
        libm |= p->steps[i].kind >= PARE_STEP_QCONV ||
                (p->steps[i].kind == PARE_STEP_OP && p->steps[i].op_node.op == PARE_OP_FAKEQUANT);
    char want[256];
    snprintf(want, sizeof want, "%s", kernels ? kernels : "");
    for (char *k = strtok(want, "|"); k; k = strtok(NULL, "|"))
        CHECKF(plan_has(p, k), "%s: no step uses a %s kernel", tag, k);
    pare_plan_info info;
    pare_plan_get_info(p, &info);
    size_t nin = (size_t)info.in_c * (size_t)info.in_h * (size_t)info.in_w, nout = (size_t)info.out_size;
    const int n = 2;
    float *x = malloc(sizeof(float) * nin * n), *y0 = malloc(sizeof(float) * nout * n);
    float *y1 = NULL;
    size_t y1_len = 0;
    CHECK(x && y0);
    if (!x || !y0) {
        free(x);
        free(y0);
        pare_plan_free(p);
        return;
    }
    pare_test_fill(x, nin * n, -1, 1, 17);
    CHECK_OK(pare_plan_run(p, x, n, y0));

    char src[1024], bin[900], in[1024], out[1024], drv[1024], log[1024], cmd[8192];
    snprintf(bin, sizeof bin, "%s", pare_test_path(tag));
    snprintf(src, sizeof src, "%s.c", bin);
    snprintf(in, sizeof in, "%s.in", bin);
    snprintf(out, sizeof out, "%s.out", bin);
    snprintf(log, sizeof log, "%s.log", bin);
    snprintf(drv, sizeof drv, "%s", pare_test_path("driver.c"));
    double t0 = now_s();
    CHECK_OK(pare_plan_emit_c(p, src, "model"));
    double t_emit = now_s() - t0;
    CHECK(pare_write_file_atomic(drv, driver_src, strlen(driver_src)) == PARE_OK);
    CHECK(write_floats(in, x, nin * n));
    /* no contraction into FMAs, which would round differently from the engine */
    snprintf(cmd, sizeof cmd, "cc -std=c99 %s -ffp-contract=off -o '%s' '%s' '%s' -lm > '%s' 2>&1", STRICT, bin, src,
             drv, log);
    t0 = now_s();
    int built = sh(cmd, log);
    double t_cc = now_s() - t0;
    CHECKF(built, "%s: the emitted C does not compile cleanly", tag);
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' %zu %zu %d", bin, in, out, nin, nout, n);
        CHECKF(sh(cmd, NULL), "%s: the emitted program failed", tag);
        uint8_t *data = NULL;
        if (pare_read_file(out, (size_t)1 << 30, &data, &y1_len) == PARE_OK)
            y1 = (float *)(void *)data;
        CHECKF(y1 && y1_len == sizeof(float) * nout * n, "%s: the emitted program wrote %zu bytes", tag, y1_len);
    }
    if (y1 && y1_len == sizeof(float) * nout * n) {
        double m = 0, d = 0;
        for (size_t i = 0; i < nout * n; i++) {
            m = fmax(m, fabs(y0[i]));
            d = fmax(d, fabs((double)y0[i] - y1[i]));
        }
        double rel = d / (m > 0 ? m : 1);
        CHECKF(rel <= tol, "%s: the emitted C differs from the engine by %.3g (relative)", tag, rel);
        uint8_t *text = NULL;
        size_t text_len = 0;
        if (pare_read_file(src, (size_t)1 << 31, &text, &text_len) == PARE_OK) {
            /* no allocation, and libm only for int8: the file stands alone */
            CHECK(!strstr((const char *)text, "malloc(") && strstr((const char *)text, "#define MODEL_IN_SIZE"));
            CHECKF(!strstr((const char *)text, "#include <math.h>") == !libm, "%s: <math.h> %s", tag,
                   libm ? "missing" : "included without int8 layers");
            free(text);
        }
        printf("  %-24s %8.1f KB  emit %.2f s  cc -O2 %.2f s  max rel diff %.2g\n", tag, (double)text_len / 1024,
               t_emit, t_cc, rel);
    }
    free(y1);
    free(x);
    free(y0);
    pare_plan_free(p);
}

static void emit_and_compare(pare_graph *g, const char *tag, const char *kernels)
{
    emit_and_compare_tol(g, tag, kernels, 1e-5);
}

static void zoo_case(const char *model, const char *scheme, double sparsity, const char *kernels, uint64_t seed)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build(model, 0, seed, &g));
    if (!g)
        return;
    shake_stats(g, seed + 100);
    char tag[96];
    snprintf(tag, sizeof tag, "%s_%s", model, scheme ? scheme : "dense");
    for (char *c = tag; *c; c++)
        if (*c == ':' || *c == '-')
            *c = '_';
    if (!scheme || prune(g, scheme, sparsity))
        emit_and_compare(g, tag, kernels);
    else
        CHECKF(0, "%s: could not prune with %s", model, scheme);
    pare_graph_free(g);
}

PARE_TEST(emit_small_models)
{
    if (!have_cc())
        return;
    /* maxpool, dense convs, dense linear layers; then CSR convs and linear layers */
    zoo_case("lenet", NULL, 0, "dense|sgemv", 1);
    zoo_case("lenet", "unstructured", 0.8, "sparse|csr", 2);
    zoo_case("fmnist-cnn", "block:4x4", 0.8, "block", 3);
}

PARE_TEST(emit_resnet20)
{
    if (!have_cc())
        return;
    /* stride-2 convs on phase planes, residual adds fused into convs, the
     * global average pool; pattern and N:M kernels */
    zoo_case("resnet20", "pattern", 0.8, "pattern|space-to-depth|global_avgpool", 4);
    zoo_case("resnet20", "2:4", 0.8, "N:M", 5);
    /* the im2col + GEMM and filter-lanes lowerings, residuals and strides included */
    emit_kind = PARE_CK_GEMM;
    zoo_case("resnet20", "unstructured", 0.5, "im2col", 6);
    emit_kind = PARE_CK_LANES;
    zoo_case("resnet20", "unstructured", 0.5, "filter lanes", 8);
    /* Winograd steps are emitted as the direct sum of their dense weights */
    emit_kind = PARE_CK_WINO;
    zoo_case("resnet20", "unstructured", 0.5, "F(2x2,3x3)", 9);
    emit_kind = PARE_CK_DENSE;
}

PARE_TEST(emit_mobilenetv2)
{
    if (!have_cc())
        return;
    /* depthwise convs (their own kernel, strided ones read straight from their
     * input), block-sparse 1x1 convs, ReLU6,
     * inverted residuals */
    zoo_case("mobilenetv2", "auto", 0.9, "depthwise|block|pattern", 7);
}

/* int8 plans (pare_engine_fake_quantize: per-channel 8-bit weights, an 8-bit
 * fakequant before every conv and linear input): int8 convs with u8 and
 * float outputs, residuals, strided convs on u8 phase planes, u8 max pools,
 * int8 linear layers, and every packing (dense, block, CSR, pattern and GEMM
 * taps gathered, row by row). At the reference ISA the emitted file equals
 * the engine bit for bit (the int8 arithmetic is exact on every ISA; the
 * float steps between run in the same order); at the best ISA too, where
 * the float steps' kernels agree with the reference on these graphs. */
static void int8_case(const char *model, const char *scheme, double sparsity, int gathered, int rows,
                      const char *kernels, uint64_t seed, int isa_ref, double tol)
{
    pare_graph *g = NULL, *q = NULL;
    CHECK_OK(pare_zoo_build(model, 0, seed, &g));
    if (!g)
        return;
    shake_stats(g, seed + 100);
    if (scheme && !prune(g, scheme, sparsity)) {
        CHECKF(0, "%s: could not prune with %s", model, scheme);
        pare_graph_free(g);
        return;
    }
    CHECK_OK(pare_engine_fake_quantize(g, 2, seed + 2, &q));
    pare_graph_free(g);
    if (!q)
        return;
    char tag[96];
    snprintf(tag, sizeof tag, "q8_%s_%s_g%d_r%d%s", model, scheme ? scheme : "dense", gathered, rows,
             isa_ref ? "_ref" : "");
    for (char *c = tag; *c; c++)
        if (*c == ':' || *c == '-' || *c == '.')
            *c = '_';
    int saved = (int)pare_isa_active();
    if (isa_ref)
        pare_isa_override(PARE_ISA_REF);
    emit_q_gathered = gathered;
    emit_q_rows = rows;
    emit_and_compare_tol(q, tag, kernels, tol);
    emit_q_gathered = -1;
    pare_isa_override(saved);
    pare_graph_free(q);
}

PARE_TEST(emit_int8)
{
    if (!have_cc())
        return;
    /* lenet: u8 max pools, int8 linear layers; resnet20: residuals into u8
     * outputs, stride-2 convs on u8 phase planes, the global average pool */
    int8_case("lenet", NULL, 0, 0, 4, "int8|max pool (u8)|quantize to u8", 31, 1, 0);
    int8_case("resnet20", NULL, 0, 0, 4, "int8|-> u8|space-to-depth 2x2 (u8)", 32, 1, 0);
    int8_case("resnet20", NULL, 0, 0, 4, "int8", 32, 0, 0);
    /* packings: CSR filters one at a time, block 4x4 as gathered GEMM
     * k-quads, patterns as gathered taps */
    int8_case("resnet20", "unstructured", 0.8, 0, 1, "int8", 33, 1, 0);
    int8_case("resnet20", "block:4x4", 0.75, 1, 4, "gathered", 34, 1, 0);
    int8_case("resnet20", "pattern", 0.8, 2, 4, "gathered", 35, 1, 0);
    /* a float32 plan of the quantized model: its fakequants as float steps
     * (on planes, and on the flattened vector before fc1, an op step); the
     * linear layers run on BLAS in the engine, so not to the bit */
    emit_float32 = 1;
    int8_case("lenet", NULL, 0, -1, 0, "fakequant (float)|fakequant (op forward)", 36, 1, 1e-5);
    emit_float32 = 0;
}

/* The steps no zoo model has: a batch norm with nothing to fold into, an
 * unfused relu and add, a dilated conv, concat, both average pool counts;
 * pruned with `scheme` unless it is NULL. */
static pare_graph *odd_graph(const char *scheme)
{
    pare_graph *g = pare_graph_new("odd steps");
    int x = pare_graph_input(g, 3, 11, 9);
    int a = pare_graph_conv2d(g, x, 8, 3, 1, 1, "a");
    a = pare_graph_batchnorm(g, a, "a.bn");
    a = pare_graph_relu6(g, a, "a.relu6");
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = 8;
    d.kernel_h = 3;
    d.dilation_h = 2;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 2;
    int b = pare_graph_conv2d_ex(g, a, &d, "dilated");
    int s = pare_graph_add(g, b, a, "add");
    s = pare_graph_relu(g, s, "add.relu");
    int lone = pare_graph_batchnorm(g, s, "lonely.bn");
    int c = pare_graph_conv2d(g, lone, 6, 3, 2, 1, "strided");
    int e = pare_graph_conv2d(g, lone, 6, 1, 2, 0, "down");
    int j = pare_graph_add(g, c, e, "join");
    int m = pare_graph_maxpool(g, j, 3, 2, 1, "pool");
    int m2 = pare_graph_avgpool(g, j, 3, 2, 1, "pool2");
    int pa = pare_graph_add(g, m, m2, "pool.add");
    int parts[3] = {m, pa, m2};
    int cat = pare_graph_concat(g, parts, 3, "cat");
    int r = pare_graph_relu(g, cat, "cat.relu");
    int p1 = pare_graph_avgpool(g, r, 2, 1, 1, "avg.incl");
    int p2 = pare_graph_avgpool(g, p1, 3, 2, 1, "avg.excl");
    if (p2 >= 0)
        g->nodes[p2].a.count_include_pad = 0;
    int f = pare_graph_linear(g, pare_graph_flatten(g, p2, "flat"), 7, 1, "fc1");
    f = pare_graph_relu(g, f, "fc1.relu");
    pare_graph_linear(g, f, 5, 1, "fc2");
    shake_stats(g, 21);
    if (scheme && pare_graph_status(g) == PARE_OK)
        CHECKF(prune(g, scheme, 0.8), "odd graph: could not prune with %s", scheme);
    return g;
}

PARE_TEST(emit_odd_steps)
{
    if (!have_cc())
        return;
    static const char *const schemes[] = {NULL, "pattern", "2:4"};
    static const char *const kernels[] = {"concat|avgpool|maxpool|batchnorm|relu|add|pack|sgemv", "pattern", "N:M"};
    for (int k = 0; k < 3; k++) {
        pare_graph *g = odd_graph(schemes[k]);
        CHECK_OK(pare_graph_status(g));
        char tag[64];
        snprintf(tag, sizeof tag, "odd_%s", schemes[k] ? (k == 1 ? "pattern" : "2_4") : "dense");
        emit_and_compare(g, tag, kernels[k]);
        pare_graph_free(g);
    }
}

/* The ops ONNX import brought: the pointwise ones that need no libm become C
 * (hardswish, hardsigmoid, leakyrelu, clip with finite and infinite bounds, on
 * planes with a halo, on vectors, and on a flattened value); the rest are
 * refused in one sentence naming the op and the layer. */
PARE_TEST(emit_onnx_ops)
{
    pare_graph *g = pare_graph_new("sigmoid gate");
    int x = pare_graph_input(g, 3, 6, 5);
    int c = pare_graph_conv2d(g, x, 4, 3, 1, 1, "c");
    pare_graph_sigmoid(g, c, "gate");
    pare_plan *p = NULL;
    pare_plan_options o = {1, 0, 0, 0};
    CHECK_OK(pare_plan_new(g, &o, &p));
    const char *path = pare_test_path("gate.c");
    if (p) {
        CHECK_STATUS(pare_plan_emit_c(p, path, "m"), PARE_EUNSUPPORTED);
        CHECKF(!strcmp(pare_last_error(), "pare compile --emit-c has no C kernel for op sigmoid (layer 'gate')"),
               "message: %s", pare_last_error());
        CHECK(!pare_file_exists(path));
        pare_plan_free(p);
    }
    pare_graph_free(g);
    if (!have_cc())
        return;
    /* a pointwise op on a flattened value: the input's elements in order */
    g = pare_graph_new("flat swish");
    x = pare_graph_input(g, 3, 6, 5);
    c = pare_graph_conv2d(g, x, 2, 3, 1, 1, "c");
    pare_graph_hardswish(g, pare_graph_flatten(g, c, "flat"), "hs");
    emit_and_compare(g, "flat_swish", "hardswish (op forward)");
    pare_graph_free(g);
    g = pare_graph_new("pointwise");
    x = pare_graph_input(g, 3, 9, 8);
    /* c1 has 5 channels: with 4, c2's 36 columns make gcc -O2 flag the emitted
     * conv's (empty) tail loop with -Waggressive-loop-optimizations, an issue of
     * the conv emitter apart from these ops. */
    c = pare_graph_conv2d(g, x, 5, 3, 1, 1, "c1");
    c = pare_graph_hardswish(g, c, "hswish");
    c = pare_graph_conv2d(g, c, 4, 3, 1, 1, "c2");
    c = pare_graph_leakyrelu(g, c, 0.1f, "leaky");
    c = pare_graph_clip(g, c, -0.5f, 0.3f, "clip");
    c = pare_graph_clip(g, c, -INFINITY, 0.25f, "clip.hi");
    c = pare_graph_clip(g, c, -0.4f, INFINITY, "clip.lo");
    c = pare_graph_hardsigmoid(g, c, 0.2f, 0.5f, "hsig");
    c = pare_graph_global_avgpool(g, c, "gap");
    c = pare_graph_linear(g, pare_graph_flatten(g, c, "flat"), 5, 1, "fc");
    pare_graph_leakyrelu(g, c, -0.3f, "fc.leaky");
    CHECK_OK(pare_graph_status(g));
    shake_stats(g, 23);
    emit_and_compare(g, "onnx_pointwise", "hardswish|leakyrelu|clip|hardsigmoid");
    pare_graph_free(g);
}

PARE_TEST(emit_bitwise_at_ref)
{
    if (!have_cc())
        return;
    /* Without BLAS in the plan (CSR linear layers) and with the scalar
     * reference kernels, the emitted sums run in the engine's order: the
     * outputs agree to the bit. */
    int saved = (int)pare_isa_active();
    pare_isa_override(PARE_ISA_REF);
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 11, &g));
    if (g) {
        shake_stats(g, 12);
        if (prune(g, "unstructured", 0.8))
            emit_and_compare_tol(g, "lenet_ref", "sparse|csr", 0);
        pare_graph_free(g);
    }
    g = odd_graph("unstructured");
    emit_and_compare_tol(g, "odd_ref", "sparse|csr|space-to-depth|concat|avgpool|batchnorm", 0);
    pare_graph_free(g);
    pare_isa_override(saved);
}

/* Emits p (freed) as tag.c and compiles it with cc -std=c11 and, when there
 * is clang, clang -std=c99 and -std=c11 (its front end alone: it warns
 * without generating code); the text is returned (free it) for more checks. */
static char *emit_other_ccs(pare_plan *p, const char *tag, int clang)
{
    char src[1024], obj[1024], log[1024], cmd[4096];
    snprintf(src, sizeof src, "%s.c", pare_test_path(tag));
    snprintf(obj, sizeof obj, "%s.o", pare_test_path(tag));
    snprintf(log, sizeof log, "%s.log", pare_test_path(tag));
    CHECK_OK(pare_plan_emit_c(p, src, tag));
    pare_plan_free(p);
    uint8_t *text = NULL;
    size_t len = 0;
    if (pare_read_file(src, (size_t)1 << 28, &text, &len) != PARE_OK)
        text = NULL;
    snprintf(cmd, sizeof cmd, "cc -std=c11 %s -c '%s' -o '%s' > '%s' 2>&1", STRICT, src, obj, log);
    CHECKF(sh(cmd, log), "%s: cc -std=c11 fails", tag);
    static const int stds[2] = {99, 11};
    for (int k = 0; clang && k < 2; k++) {
        snprintf(cmd, sizeof cmd, "clang -std=c%d %s -fsyntax-only '%s' > '%s' 2>&1", stds[k], STRICT, src, log);
        CHECKF(sh(cmd, log), "%s: clang -std=c%d fails", tag, stds[k]);
    }
    return (char *)text;
}

PARE_TEST(emit_other_compilers)
{
    if (!have_cc())
        return;
    /* C11 and clang, compile only, on the odd graph dense (it alone uses
     * every helper the emitter writes) and pruned (pattern, N:M). */
    static const char *const schemes[] = {NULL, "pattern", "2:4"};
    const char *tags[3] = {"odd", "odd_pat", "odd_nm"};
    static const char *const helpers[] = {"_fill(float", "_axpy(float", "_axpy4(float", "_add(float",
                                          "_relu(float", "_relu6(float", "_halo(float"};
    int seen[sizeof helpers / sizeof helpers[0]] = {0};
    int clang = have_clang();
    if (!clang)
        printf("  (no clang here: gcc only)\n");
    for (int k = 0; k < 3; k++) {
        pare_plan *p = NULL;
        pare_plan_options o = {1, 0, 0, 0};
        pare_graph *g = odd_graph(schemes[k]);
        CHECK_OK(pare_plan_new(g, &o, &p));
        pare_graph_free(g);
        char *text = p ? emit_other_ccs(p, tags[k], clang) : NULL;
        for (size_t h = 0; text && h < sizeof helpers / sizeof helpers[0]; h++)
            seen[h] |= strstr(text, helpers[h]) != NULL;
        free(text);
    }
    for (size_t h = 0; h < sizeof helpers / sizeof helpers[0]; h++)
        CHECKF(seen[h], "no emitted file defines %s", helpers[h]);
    /* int8: every int8 helper (gathered columns, u8 halos, codes, max pools,
     * linear layers) in one file, resnet20 with patterns gathered, and lenet */
    static const char *const q8_models[2] = {"resnet20", "lenet"};
    for (int k = 0; k < 2; k++) {
        pare_graph *g = NULL, *q = NULL;
        CHECK_OK(pare_zoo_build(q8_models[k], 0, 40 + (uint64_t)k, &g));
        if (g && k == 0)
            CHECK(prune(g, "pattern", 0.8));
        if (g)
            CHECK_OK(pare_engine_fake_quantize(g, 2, 7, &q));
        pare_graph_free(g);
        pare_plan *p = NULL;
        pare_plan_options o = {1, 0, 0, 0};
        if (q)
            CHECK_OK(pare_engine_plan_forced(q, &o, k == 0 ? 2 : 0, 4, &p));
        pare_graph_free(q);
        free(p ? emit_other_ccs(p, q8_models[k], clang) : NULL);
    }
}

PARE_TEST(emit_refuses)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 1, &g));
    if (!g)
        return;
    pare_plan *p = NULL;
    pare_plan_options o = {1, 0, 0, 0};
    CHECK_OK(pare_plan_new(g, &o, &p));
    if (!p) {
        pare_graph_free(g);
        return;
    }
    const char *path = pare_test_path("m.c");
    static const char *const bad[] = {"", "9lives", "a-b", "a b", "_hidden", "net.v2", "x\xc3\xa9",
                                      "a_name_that_is_far_too_long_to_be_a_sensible_prefix_for_anything_at_all"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(pare_plan_emit_c(p, path, bad[i]), PARE_EINVAL);
        CHECK(strstr(pare_last_error(), "prefix") != NULL);
    }
    CHECK_STATUS(pare_plan_emit_c(p, path, NULL), PARE_EINVAL);
    CHECK_STATUS(pare_plan_emit_c(NULL, path, "m"), PARE_EINVAL);
    CHECK_STATUS(pare_plan_emit_c(p, NULL, "m"), PARE_EINVAL);
    CHECK(!pare_file_exists(path));
    /* a folder that does not exist: an I/O error naming the file */
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.c", pare_test_dir());
    CHECK_STATUS(pare_plan_emit_c(p, missing, "m"), PARE_EIO);
    CHECK(strstr(pare_last_error(), "m.c") != NULL);
    /* the same plan gives the same bytes; good prefixes of every shape pass */
    CHECK_OK(pare_plan_emit_c(p, path, "Net_2"));
    char path2[1024];
    snprintf(path2, sizeof path2, "%s", pare_test_path("m2.c"));
    CHECK_OK(pare_plan_emit_c(p, path2, "Net_2"));
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(pare_read_file(path, (size_t)1 << 28, &a, &na));
    CHECK_OK(pare_read_file(path2, (size_t)1 << 28, &b, &nb));
    CHECK(a && b && na == nb && na > 0 && !memcmp(a, b, na));
    CHECK(a && strstr((const char *)a, "void Net_2_run(const float *in, float *out)") &&
          strstr((const char *)a, "#define NET_2_IN_SIZE 784") && strstr((const char *)a, "#define NET_2_OUT_SIZE 10"));
    free(a);
    free(b);
    pare_plan_free(p);
    /* a weight C cannot spell without libm is refused with the layer's name */
    int w = pare_graph_node_param(g, 1, PARE_ROLE_WEIGHT);
    CHECK(w >= 0);
    if (w >= 0) {
        g->params[w].t->data[0] = INFINITY;
        p = NULL;
        CHECK_OK(pare_plan_new(g, &o, &p));
        if (p) {
            CHECK_STATUS(pare_plan_emit_c(p, path, "m"), PARE_EINVAL);
            CHECK(strstr(pare_last_error(), g->nodes[1].name) != NULL);
            pare_plan_free(p);
        }
    }
    pare_graph_free(g);
}
