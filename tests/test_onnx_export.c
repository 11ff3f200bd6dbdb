/* ONNX export: the model pare writes (read back with protobuf-c, and by ONNX's own
 * checker), round trips pare -> ONNX -> pare (zoo models dense, pruned and
 * quantized, a graph of every op), PyTorch-exported models against PyTorch's
 * outputs, quantized (QDQ) models under ONNX Runtime and from elsewhere, `pare
 * convert`, and a sentence for every failure. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compress/compress.h"
#include "compress/prune.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "io/format.h"
#include "qdq_fixture.h"
#include "test.h"

#ifdef PARE_ONNX
#include "onnx.pb-c.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A python3 that has `module` ("onnx", "torch"): $PARE_PYTHON, python3 on the
 * PATH, or Debian's /usr/bin/python3 (a python3 from pyenv or a venv on the PATH
 * lacks Debian's python3-onnx and python3-torch). The module is looked up, not
 * imported (importing torch takes seconds). NULL when none has it. */
static const char *python_with(const char *module)
{
    static char found[512];
    const char *cand[3] = {getenv("PARE_PYTHON"), "python3", "/usr/bin/python3"};
    for (int i = 0; i < 3; i++) {
        if (!cand[i] || !*cand[i])
            continue;
        char cmd[1200];
        snprintf(cmd, sizeof cmd,
                 "'%s' -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(\"%s\") "
                 "is None)' >/dev/null 2>&1",
                 cand[i], module);
        if (system(cmd) == 0) {
            snprintf(found, sizeof found, "%s", cand[i]);
            return found;
        }
    }
    return NULL;
}

/* The text of a small file (the end of a log), for failure messages. */
static const char *slurp_tail(const char *path)
{
    static char buf[2048];
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return buf;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > (long)sizeof buf - 1 ? n - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

/* ONNX's checker with full_check (strict shape inference: the shapes pare
 * declares must be the ones ONNX infers) on n files at once. 1 when every file
 * passes, 0 when one fails (the failure recorded), -1 when onnx is missing. */
static int onnx_check(const char *const *paths, int n)
{
    const char *py = python_with("onnx");
    if (!py) {
        printf("  skipped ONNX's checker: no python3 with the onnx module (Debian: python3-onnx)\n");
        return -1;
    }
    char cmd[16384], log[1100];
    snprintf(log, sizeof log, "%s", pare_test_path("onnx_check.log"));
    int at = snprintf(cmd, sizeof cmd,
                      "'%s' -c 'import sys, onnx\n"
                      "bad = 0\n"
                      "for p in sys.argv[1:]:\n"
                      "    try:\n"
                      "        onnx.checker.check_model(onnx.load(p), full_check=True)\n"
                      "    except Exception as e:\n"
                      "        print(\"%%s: %%s\" %% (p, e))\n"
                      "        bad = 1\n"
                      "sys.exit(bad)\n'",
                      py);
    for (int i = 0; i < n && at < (int)sizeof cmd; i++)
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, " '%s'", paths[i]);
    if (at >= (int)sizeof cmd - 64) {
        pare_test_fail(__FILE__, __LINE__, "too many files for one checker run");
        return 0;
    }
    snprintf(cmd + at, sizeof cmd - (size_t)at, " >'%s' 2>&1", log);
    int st = system(cmd);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    CHECKF(ok, "ONNX's checker refused a model pare wrote: %s", slurp_tail(log));
    return ok;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d == d ? d : INFINITY;
    }
    return m;
}

/* Max |a - b| / max(1, |b|): absolute for small values, relative for large ones. */
static double max_scaled_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= m))
            m = d == d ? d : INFINITY;
    }
    return m;
}

static size_t in_size(const pare_graph *g)
{
    int c, h, w;
    pare_graph_input_shape(g, &c, &h, &w);
    return (size_t)c * (size_t)h * (size_t)w;
}

static size_t out_size(const pare_graph *g)
{
    int c, h, w;
    pare_graph_output_shape(g, &c, &h, &w);
    return (size_t)c * (size_t)h * (size_t)w;
}

static pare_param *find_param(pare_graph *g, const char *name)
{
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name))
            return &g->params[i];
    return NULL;
}

static size_t zeros_of(const pare_param *p)
{
    size_t z = 0;
    for (size_t k = 0; k < p->t->n; k++)
        z += p->t->data[k] == 0.0f;
    return z;
}

/* Batch norms that do something: random gamma, beta and running statistics. */
static void perturb_bn(pare_graph *g, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 41, 0, 0);
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        float lo, hi;
        switch (p->role) {
        case PARE_ROLE_BN_GAMMA: lo = 0.5f, hi = 1.5f; break;
        case PARE_ROLE_BN_BETA: lo = -0.2f, hi = 0.2f; break;
        case PARE_ROLE_BN_MEAN: lo = -0.2f, hi = 0.2f; break;
        case PARE_ROLE_BN_VAR: lo = 0.5f, hi = 1.5f; break;
        default: continue;
        }
        for (size_t k = 0; k < p->t->n; k++)
            p->t->data[k] = lo + (hi - lo) * pare_rng_uniform(&r);
    }
}

/* Every op of the IR in one graph, the ONNX-era ones included: rank-4 values
 * throughout, a vector branch (Gemm) gating an image (an SE block), a const
 * that broadcasts, softmax of both modes, every pad mode. */
static pare_graph *every_op(void)
{
    pare_graph *g = pare_graph_new("every-op");
    int x = pare_graph_input(g, 4, 8, 8);
    x = pare_graph_conv2d(g, x, 8, 3, 1, 1, "conv");
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = 8;
    d.kernel_h = 3;
    d.kernel_w = 1;
    d.pad_top = d.pad_bottom = 2;
    d.dilation_h = 2;
    d.dilation_w = 1;
    d.groups = 2;
    d.no_bias = 1;
    x = pare_graph_conv2d_ex(g, x, &d, "gconv");
    x = pare_graph_batchnorm_ex(g, x, 1e-3f, 0.2f, "bn");
    x = pare_graph_relu6(g, x, "relu6");
    x = pare_graph_relu(g, x, "relu");
    x = pare_graph_leakyrelu(g, x, 0.1f, "lrelu");
    x = pare_graph_hardswish(g, x, "hswish");
    int s = pare_graph_sigmoid(g, x, "sig");
    x = pare_graph_hardsigmoid(g, s, 0.3f, 0.4f, "hsig");
    x = pare_graph_clip(g, x, 0.45f, 0.6f, "clip");
    x = pare_graph_channel_shuffle(g, x, 2, "shuffle");
    const int p1[4] = {1, 2, 0, 1}, p2[4] = {1, 1, 1, 1};
    x = pare_graph_pad(g, x, p1, 0, 0.25f, "pad");
    x = pare_graph_pad(g, x, p2, 1, 0, "reflect");
    x = pare_graph_pad(g, x, p2, 2, 0, "edge");
    int k = pare_graph_const(g, 8, 1, 1, "k");
    x = pare_graph_mul(g, x, k, "mulk");
    int k2 = pare_graph_const(g, 1, 13, 15, "k2");
    x = pare_graph_add(g, x, k2, "addk");
    x = pare_graph_softmax(g, x, 0, 0, "sm0");
    x = pare_graph_softmax(g, x, 1, 1, "sm1");
    x = pare_graph_softmax(g, x, 2, 0, "sm2");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "mp");
    x = pare_graph_avgpool(g, x, 3, 1, 1, "ap");
    const int perm[3] = {0, 2, 1};
    int t = pare_graph_transpose(g, x, perm, "tr");
    t = pare_graph_reshape(g, t, 8, 6, 7, "rs");
    int gp = pare_graph_global_avgpool(g, x, "gap");
    gp = pare_graph_flatten(g, gp, "flat");
    gp = pare_graph_linear(g, gp, 8, 1, "fc");
    gp = pare_graph_sigmoid(g, gp, "se");
    x = pare_graph_mul(g, t, gp, "gate");
    x = pare_graph_add(g, x, t, "add");
    const int cat[2] = {x, t};
    x = pare_graph_concat(g, cat, 2, "cat");
    x = pare_graph_dropout(g, x, 0.2f, "drop");
    x = pare_graph_maxpool(g, x, 3, 2, 1, "mp2");
    x = pare_graph_flatten(g, x, "flat2");
    x = pare_graph_linear(g, x, 6, 0, "out");
    pare_graph_softmax(g, x, 0, 1, "prob");
    CHECK_OK(pare_graph_status(g));
    if (pare_graph_status(g) != PARE_OK) {
        pare_graph_free(g);
        return NULL;
    }
    CHECK_OK(pare_graph_init_params(g, 5));
    perturb_bn(g, 5);
    size_t n;
    float *kv = pare_graph_param_data(g, "k.weight", &n);
    CHECK(kv && n == 8);
    pare_test_fill(kv, n, 0.5f, 2.0f, 6);
    kv = pare_graph_param_data(g, "k2.weight", &n);
    CHECK(kv && n == 13 * 15);
    pare_test_fill(kv, n, -0.5f, 0.5f, 7);
    CHECK_OK(pare_graph_meta_set(g, "source", "test_onnx_export.c"));
    return g;
}

/* A model of vectors: its input is c x 1 x 1, ONNX [N, c]. */
static pare_graph *vector_model(void)
{
    pare_graph *g = pare_graph_new("vectors");
    int x = pare_graph_input(g, 16, 1, 1);
    x = pare_graph_linear(g, x, 8, 1, "fc1");
    x = pare_graph_batchnorm(g, x, "bn");
    x = pare_graph_leakyrelu(g, x, 0.2f, "lrelu");
    x = pare_graph_dropout(g, x, 0.1f, "drop");
    int k = pare_graph_const(g, 8, 1, 1, "k");
    x = pare_graph_mul(g, x, k, "scale");
    x = pare_graph_linear(g, x, 4, 1, "fc2");
    pare_graph_softmax(g, x, 0, 0, "prob");
    CHECK_OK(pare_graph_status(g));
    if (pare_graph_status(g) != PARE_OK) {
        pare_graph_free(g);
        return NULL;
    }
    CHECK_OK(pare_graph_init_params(g, 9));
    perturb_bn(g, 9);
    size_t n;
    float *kv = pare_graph_param_data(g, "k.weight", &n);
    if (kv)
        pare_test_fill(kv, n, -2.0f, 2.0f, 10);
    return g;
}

/* ---- round trips -------------------------------------------------------------- */

/* Exports g to `file`, reads it back and runs both on the same n samples;
 * returns the max abs difference of their outputs (-1 when a step failed) and
 * the graph read back in *back (may be NULL). */
static double round_trip(pare_graph *g, const char *file, int n, pare_graph **back_out)
{
    if (back_out)
        *back_out = NULL;
    const char *path = pare_test_path(file);
    char p[1100];
    snprintf(p, sizeof p, "%s", path);
    pare_status s = pare_onnx_save(g, p);
    CHECK_OK(s);
    if (s != PARE_OK)
        return -1;
    pare_graph *back = NULL;
    s = pare_onnx_load(p, &back);
    CHECKF(s == PARE_OK, "%s: reading back what pare wrote: %s", file, pare_last_error());
    if (s != PARE_OK)
        return -1;
    double diff = -1;
    size_t ni = in_size(g) * (size_t)n, no = out_size(g) * (size_t)n;
    CHECKF(in_size(back) == in_size(g) && out_size(back) == out_size(g),
           "%s: sizes %zu -> %zu became %zu -> %zu", file, in_size(g), out_size(g), in_size(back),
           out_size(back));
    float *x = malloc(ni * sizeof *x), *y0 = malloc(no * sizeof *y0), *y1 = malloc(no * sizeof *y1);
    if (x && y0 && y1 && in_size(back) == in_size(g) && out_size(back) == out_size(g)) {
        pare_test_fill(x, ni, -1.0f, 1.0f, 77);
        CHECK_OK(pare_graph_forward(g, x, n, y0, 1));
        CHECK_OK(pare_graph_forward(back, x, n, y1, 1));
        diff = max_abs_diff(y0, y1, no);
    }
    free(x);
    free(y0);
    free(y1);
    if (back_out)
        *back_out = back;
    else
        pare_graph_free(back);
    return diff;
}

/* Every parameter is back under its name, bit for bit, with its scheme; a
 * masked weight comes back masked (the importer makes exact zeros a mask) with
 * as many zeros. */
static void same_params(pare_graph *a, pare_graph *b, const char *what)
{
    int bad = 0;
    for (int i = 0; i < a->n_params && bad < 5; i++) {
        const pare_param *p = &a->params[i];
        pare_param *q = find_param(b, p->name);
        if (!q) {
            bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: tensor %s did not come back", what, p->name);
            continue;
        }
        if (q->t->n != p->t->n || memcmp(q->t->data, p->t->data, p->t->n * sizeof(float))) {
            bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: tensor %s values differ", what, p->name);
        }
        /* A scheme comes back with the mask the zeros make; a weight without
         * zeros (a purified layer) comes back dense. */
        size_t z = zeros_of(p);
        if (p->scheme && z > 0 && (!q->scheme || strcmp(p->scheme, q->scheme))) {
            bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: tensor %s scheme %s came back as %s", what,
                           p->name, p->scheme, q->scheme ? q->scheme : "none");
        }
        if (p->mask && p->role == PARE_ROLE_WEIGHT && z > 0) {
            size_t masked = 0;
            if (q->mask)
                for (size_t k = 0; k < q->t->n; k++)
                    masked += !q->mask[k];
            if (!q->mask || masked != z) {
                bad++;
                pare_test_fail(__FILE__, __LINE__, "%s: weight %s with %zu zeros came back %s", what,
                               p->name, z, q->mask ? "masked differently" : "without a mask");
            }
        }
    }
}

/* ---- the model as written (read back with protobuf-c) -------------------------- */

static Onnx__ModelProto *read_model(const char *path)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK_OK(pare_read_file(path, SIZE_MAX, &buf, &n));
    if (!buf)
        return NULL;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, buf);
    free(buf);
    CHECKF(m != NULL, "%s does not parse as a ModelProto", path);
    return m;
}

static const Onnx__NodeProto *node_named(const Onnx__ModelProto *m, const char *name)
{
    for (size_t i = 0; i < m->graph->n_node; i++)
        if (!strcmp(m->graph->node[i]->name, name))
            return m->graph->node[i];
    pare_test_fail(__FILE__, __LINE__, "no ONNX node %s", name);
    return NULL;
}

static const Onnx__AttributeProto *attr_named(const Onnx__NodeProto *n, const char *name)
{
    if (!n)
        return NULL;
    for (size_t i = 0; i < n->n_attribute; i++)
        if (!strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    pare_test_fail(__FILE__, __LINE__, "node %s has no attribute %s", n->name, name);
    return NULL;
}

static const Onnx__TensorProto *init_named(const Onnx__ModelProto *m, const char *name)
{
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (!strcmp(m->graph->initializer[i]->name, name))
            return m->graph->initializer[i];
    pare_test_fail(__FILE__, __LINE__, "no initializer %s", name);
    return NULL;
}

static int ints_are(const Onnx__AttributeProto *a, const int64_t *v, size_t n)
{
    if (!a || a->n_ints != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (a->ints[i] != v[i])
            return 0;
    return 1;
}

/* The value of a float scalar initializer that node input j names. */
static float scalar_input(const Onnx__ModelProto *m, const Onnx__NodeProto *n, size_t j)
{
    if (!n || j >= n->n_input)
        return NAN;
    const Onnx__TensorProto *t = init_named(m, n->input[j]);
    if (!t || t->n_dims != 0 || t->raw_data.len != 4)
        return NAN;
    float v;
    memcpy(&v, t->raw_data.data, 4);
    return v;
}

static int int64s_input(const Onnx__ModelProto *m, const Onnx__NodeProto *n, size_t j,
                        const int64_t *want, size_t k)
{
    if (!n || j >= n->n_input)
        return 0;
    const Onnx__TensorProto *t = init_named(m, n->input[j]);
    if (!t || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->raw_data.len != 8 * k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        int64_t v;
        memcpy(&v, t->raw_data.data + 8 * i, 8);
        if (v != want[i])
            return 0;
    }
    return 1;
}

static const char *meta_value(const Onnx__ModelProto *m, const char *key)
{
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (!strcmp(m->metadata_props[i]->key, key))
            return m->metadata_props[i]->value;
    return NULL;
}

/* The value's declared shape: "N" then the numbers. */
static int shape_is(const Onnx__ValueInfoProto *v, const char *name, const int *dims, int rank)
{
    if (strcmp(v->name, name) || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return 0;
    const Onnx__TypeProto__Tensor *t = v->type->tensor_type;
    if (t->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !t->shape ||
        t->shape->n_dim != (size_t)rank)
        return 0;
    const Onnx__TensorShapeProto__Dimension *d0 = t->shape->dim[0];
    if (d0->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ||
        strcmp(d0->dim_param, "N"))
        return 0;
    for (int i = 1; i < rank; i++)
        if (t->shape->dim[i]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            t->shape->dim[i]->dim_value != dims[i - 1])
            return 0;
    return 1;
}

/* What every model pare writes has: the header fields, the input and output,
 * each parameter as an initializer of its name with its bytes, schemes and
 * graph metadata in metadata_props. */
static void check_common(const Onnx__ModelProto *m, const pare_graph *g, int in_rank, int out_rank)
{
    CHECK(m->has_ir_version && m->ir_version == 7);
    CHECK(m->n_opset_import == 1 && !strcmp(m->opset_import[0]->domain, "") &&
          m->opset_import[0]->version == 13);
    CHECK(!strcmp(m->producer_name, "pare") && !strcmp(m->producer_version, pare_version()));
    CHECK(!strcmp(m->graph->name, g->name));
    CHECK(m->graph->n_input == 1 && m->graph->n_output == 1);
    int c, h, w;
    pare_graph_input_shape(g, &c, &h, &w);
    const int in[3] = {c, h, w};
    CHECKF(shape_is(m->graph->input[0], "input", in, in_rank), "input is not [N, %d, %d, %d] (rank %d)",
           c, h, w, in_rank);
    pare_graph_output_shape(g, &c, &h, &w);
    const int out[3] = {c, h, w};
    CHECKF(shape_is(m->graph->output[0], "output", out, out_rank), "output is not [N, %d, %d, %d] (rank %d)",
           c, h, w, out_rank);
    CHECK(m->graph->n_initializer >= (size_t)g->n_params);
    for (int i = 0; i < g->n_params && i < (int)m->graph->n_initializer; i++) {
        const pare_param *p = &g->params[i];
        const Onnx__TensorProto *t = m->graph->initializer[i];
        CHECKF(!strcmp(t->name, p->name), "initializer %d is %s, not %s", i, t->name, p->name);
        CHECK(t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
        size_t count = 1;
        for (size_t d = 0; d < t->n_dims; d++)
            count *= (size_t)t->dims[d];
        CHECKF(count == p->t->n && t->raw_data.len == 4 * p->t->n, "initializer %s: size", t->name);
        if (g->nodes[p->node].op != PARE_OP_CONST) {
            CHECKF(t->n_dims == (size_t)p->t->ndim, "initializer %s: rank", t->name);
            for (size_t d = 0; d < t->n_dims && d < PARE_MAX_DIMS; d++)
                CHECK(t->dims[d] == p->t->dims[d]);
        } else {
            CHECKF(t->n_dims == 4 && t->dims[0] == 1, "const %s is not [1, c, h, w]", t->name);
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (t->raw_data.len == 4 * p->t->n)
            CHECKF(!memcmp(t->raw_data.data, p->t->data, t->raw_data.len), "initializer %s: bytes",
                   t->name);
#endif
        char key[600];
        snprintf(key, sizeof key, "pare.scheme.%s", p->name);
        const char *v = meta_value(m, key);
        CHECKF(p->scheme ? v && !strcmp(v, p->scheme) : !v, "%s is %s", key, v ? v : "absent");
    }
    for (int i = 0; i < g->n_meta; i++) {
        char key[600];
        snprintf(key, sizeof key, "pare.meta.%s", g->meta[i].key);
        const char *v = meta_value(m, key);
        CHECKF(v && !strcmp(v, g->meta[i].value), "%s is %s", key, v ? v : "absent");
    }
}

#endif

/* ---- tests ---------------------------------------------------------------------- */

PARE_TEST(onnx_export_structure)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    pare_graph *g = every_op();
    if (!g)
        return;
    const float mean[4] = {0.1f, 0.2f, 0.3f, 0.4f}, std[4] = {1, 2, 3, 4};
    CHECK_OK(pare_graph_norm_set(g, 4, mean, std));
    char path[1100], again[1100];
    snprintf(path, sizeof path, "%s", pare_test_path("every-op.onnx"));
    snprintf(again, sizeof again, "%s", pare_test_path("every-op-2.onnx"));
    CHECK_OK(pare_onnx_save(g, path));
    CHECK_OK(pare_onnx_save(g, again));
    /* The same graph gives the same bytes. */
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(pare_read_file(path, SIZE_MAX, &a, &na));
    CHECK_OK(pare_read_file(again, SIZE_MAX, &b, &nb));
    CHECK(a && b && na == nb && !memcmp(a, b, na));
    free(a);
    free(b);
    Onnx__ModelProto *m = read_model(path);
    if (!m) {
        pare_graph_free(g);
        return;
    }
    check_common(m, g, 4, 2);
    CHECK(meta_value(m, "pare.meta.norm.mean") != NULL);
    /* The ONNX ops, in order: one per layer except where opset 13 needs several. */
    static const char *const ops[] = {
        "Conv", "Conv", "BatchNormalization", "Clip", "Relu", "LeakyRelu", "HardSigmoid", "Mul",
        "Sigmoid", "HardSigmoid", "Clip", "Reshape", "Transpose", "Reshape", "Pad", "Pad", "Pad",
        "Mul", "Add", "Softmax", "Reshape", "Softmax", "Reshape", "Softmax", "MaxPool",
        "AveragePool", "Transpose", "Reshape", "GlobalAveragePool", "Flatten", "Gemm", "Sigmoid",
        "Reshape", "Mul", "Add", "Concat", "Dropout", "MaxPool", "Flatten", "Gemm", "Softmax"};
    size_t n_ops = sizeof ops / sizeof ops[0];
    CHECKF(m->graph->n_node == n_ops, "%zu ONNX nodes, expected %zu", m->graph->n_node, n_ops);
    for (size_t i = 0; i < n_ops && i < m->graph->n_node; i++)
        CHECKF(!strcmp(m->graph->node[i]->op_type, ops[i]), "node %zu (%s) is %s, expected %s", i,
               m->graph->node[i]->name, m->graph->node[i]->op_type, ops[i]);

    const Onnx__NodeProto *n = node_named(m, "gconv");
    const int64_t k31[2] = {3, 1}, dil[2] = {2, 1}, pads[4] = {2, 0, 2, 0}, one2[2] = {1, 1};
    CHECK(ints_are(attr_named(n, "kernel_shape"), k31, 2));
    CHECK(ints_are(attr_named(n, "dilations"), dil, 2));
    CHECK(ints_are(attr_named(n, "pads"), pads, 4));
    CHECK(ints_are(attr_named(n, "strides"), one2, 2));
    CHECK(attr_named(n, "group") && attr_named(n, "group")->i == 2);
    CHECK(n && n->n_input == 2); /* no bias */
    n = node_named(m, "bn");
    CHECK(n && n->n_input == 5 && !strcmp(n->input[1], "bn.gamma") && !strcmp(n->input[4], "bn.running_var"));
    CHECK(attr_named(n, "epsilon") && attr_named(n, "epsilon")->f == 1e-3f);
    /* pare's momentum 0.2 weighs the batch; ONNX's weighs the running value. */
    CHECK(attr_named(n, "momentum") && attr_named(n, "momentum")->f == 1.0f - 0.2f);
    n = node_named(m, "relu6");
    CHECK(scalar_input(m, n, 1) == 0.0f && scalar_input(m, n, 2) == 6.0f);
    n = node_named(m, "clip");
    CHECK(scalar_input(m, n, 1) == 0.45f && scalar_input(m, n, 2) == 0.6f);
    n = node_named(m, "hswish/gate");
    CHECK(attr_named(n, "alpha") && attr_named(n, "alpha")->f == 1.0f / 6.0f);
    CHECK(attr_named(n, "beta") && attr_named(n, "beta")->f == 0.5f);
    n = node_named(m, "hswish");
    CHECK(n && n->n_input == 2 && !strcmp(n->input[1], "hswish/gate"));
    n = node_named(m, "hsig");
    CHECK(attr_named(n, "alpha") && attr_named(n, "alpha")->f == 0.3f);
    n = node_named(m, "lrelu");
    CHECK(attr_named(n, "alpha") && attr_named(n, "alpha")->f == 0.1f);
    const int64_t split[5] = {0, 2, 4, 8, 8}, back[4] = {0, 8, 8, 8}, perm5[5] = {0, 2, 1, 3, 4};
    CHECK(int64s_input(m, node_named(m, "shuffle/split"), 1, split, 5));
    CHECK(ints_are(attr_named(node_named(m, "shuffle/transpose"), "perm"), perm5, 5));
    CHECK(int64s_input(m, node_named(m, "shuffle"), 1, back, 4));
    n = node_named(m, "pad");
    const int64_t pad8[8] = {0, 0, 1, 2, 0, 0, 0, 1};
    CHECK(int64s_input(m, n, 1, pad8, 8) && scalar_input(m, n, 2) == 0.25f);
    const Onnx__AttributeProto *mode = attr_named(n, "mode");
    CHECK(mode && mode->s.len == 8 && !memcmp(mode->s.data, "constant", 8));
    mode = attr_named(node_named(m, "reflect"), "mode");
    CHECK(mode && mode->s.len == 7 && !memcmp(mode->s.data, "reflect", 7));
    mode = attr_named(node_named(m, "edge"), "mode");
    CHECK(mode && mode->s.len == 4 && !memcmp(mode->s.data, "edge", 4));
    n = node_named(m, "mulk");
    CHECK(n && !strcmp(n->input[1], "k.weight"));
    CHECK(attr_named(node_named(m, "sm0"), "axis") && attr_named(node_named(m, "sm0"), "axis")->i == 1);
    /* Softmax over h and w: [N, 8, 13 * 15], along axis 2, and back. */
    const int64_t merge[3] = {0, 8, 195}, sm1[4] = {0, 8, 13, 15};
    CHECK(int64s_input(m, node_named(m, "sm1/merge"), 1, merge, 3));
    CHECK(attr_named(node_named(m, "sm1/softmax"), "axis") &&
          attr_named(node_named(m, "sm1/softmax"), "axis")->i == 2);
    CHECK(int64s_input(m, node_named(m, "sm1"), 1, sm1, 4));
    CHECK(attr_named(node_named(m, "sm2"), "axis") && attr_named(node_named(m, "sm2"), "axis")->i == 3);
    n = node_named(m, "ap");
    CHECK(attr_named(n, "count_include_pad") && attr_named(n, "count_include_pad")->i == 1);
    const int64_t perm4[4] = {0, 1, 3, 2}, rs[4] = {0, 8, 6, 7};
    CHECK(ints_are(attr_named(node_named(m, "tr"), "perm"), perm4, 4));
    CHECK(int64s_input(m, node_named(m, "rs"), 1, rs, 4));
    n = node_named(m, "fc");
    CHECK(attr_named(n, "transB") && attr_named(n, "transB")->i == 1 && n->n_input == 3);
    /* The SE gate [N, 8] gets its 1 x 1 before it multiplies [N, 8, 6, 7]. */
    const int64_t se[4] = {0, 8, 1, 1};
    CHECK(int64s_input(m, node_named(m, "se/as4d"), 1, se, 4));
    CHECK(node_named(m, "out") && node_named(m, "out")->n_input == 2);
    CHECK(attr_named(node_named(m, "cat"), "axis") && attr_named(node_named(m, "cat"), "axis")->i == 1);
    CHECK(scalar_input(m, node_named(m, "drop"), 1) == 0.2f);
    n = node_named(m, "prob");
    CHECK(n && n->n_output == 1 && !strcmp(n->output[0], "output"));
    onnx__model_proto__free_unpacked(m, NULL);

    /* A vector model takes [N, c]. */
    pare_graph *v = vector_model();
    if (v) {
        snprintf(path, sizeof path, "%s", pare_test_path("vectors.onnx"));
        CHECK_OK(pare_onnx_save(v, path));
        m = read_model(path);
        if (m) {
            /* The const [1, 8, 1, 1] makes the product, and what follows, 4-D. */
            check_common(m, v, 2, 2);
            CHECK(node_named(m, "fc2") && !strcmp(node_named(m, "fc2")->op_type, "Gemm"));
            onnx__model_proto__free_unpacked(m, NULL);
        }
        pare_graph_free(v);
    }
    pare_graph_free(g);
#endif
}

#ifdef PARE_ONNX
/* The zoo models a round trip test takes: the CIFAR-size ones, or the 224 x 224
 * ones (VGG-16 only with PARE_TEST_BIG=1: 553 MB each way); then ONNX's checker
 * on the files. */
static void zoo_round_trips(int big)
{
    static char paths[16][1100];
    const char *list[16];
    int n_files = 0;
    const char *const *names = pare_zoo_names();
    for (int i = 0; names[i] && n_files < 16; i++) {
        int is_big = !strcmp(names[i], "resnet18") || !strcmp(names[i], "vgg16") ||
                     !strcmp(names[i], "mobilenetv2-224");
        if (is_big != big || (!strcmp(names[i], "vgg16") && !getenv("PARE_TEST_BIG")))
            continue;
        pare_graph *g = NULL;
        CHECK_OK(pare_zoo_build(names[i], 0, 3, &g));
        if (!g)
            continue;
        perturb_bn(g, 3);
        CHECK_OK(pare_graph_meta_set(g, "zoo.note", "round trip"));
        char file[64];
        snprintf(file, sizeof file, "%s.onnx", names[i]);
        pare_graph *back = NULL;
        int n = big ? 1 : 2;
        double d = round_trip(g, file, n, &back);
        snprintf(paths[n_files], sizeof paths[n_files], "%s", pare_test_path(file));
        list[n_files] = paths[n_files];
        n_files++;
        CHECKF(d >= 0 && d <= 1e-6, "%s: outputs differ by %g after the round trip", names[i], d);
        printf("  %-16s round trip: max abs diff %g%s\n", names[i], d, d == 0 ? " (exact)" : "");
        if (back) {
            same_params(g, back, names[i]);
            const char *note = pare_graph_meta_get(back, "zoo.note");
            CHECKF(note && !strcmp(note, "round trip"), "%s: graph metadata did not come back", names[i]);
            pare_graph_free(back);
        }
        pare_graph_free(g);
    }
    if (onnx_check(list, n_files) == 1)
        printf("  ONNX's checker (full_check) accepts all %d\n", n_files);
}
#endif

PARE_TEST(onnx_export_roundtrip_zoo)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    zoo_round_trips(0);
#endif
}

PARE_TEST(onnx_export_roundtrip_224)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    zoo_round_trips(1);
#endif
}

#ifdef PARE_ONNX
static void prune_graph(pare_graph *g, const char *scheme, double sparsity, int exempt_first)
{
    pare_prune_options o;
    memset(&o, 0, sizeof o);
    o.scheme = scheme;
    o.sparsity = sparsity;
    o.exempt_first = exempt_first;
    pare_prune_plan plan;
    memset(&plan, 0, sizeof plan);
    CHECK_OK(pare_prune_plan_new(g, &o, &plan));
    CHECK_OK(pare_prune_apply(g, &plan, NULL, NULL));
    pare_prune_plan_free(&plan);
}
#endif

/* Pruned models (several schemes and ratios, and one with its pruned channels
 * removed) come back with the same outputs, zeros, masks and schemes. */
PARE_TEST(onnx_export_roundtrip_pruned)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    static const struct {
        const char *model, *scheme;
        double sparsity;
        int exempt_first;
    } cases[] = {
        {"lenet", "unstructured", 0.9, 0},     {"fmnist-cnn", "pattern", 0.7, 1},
        {"resnet20", "2:4", 0.5, 1},           {"vgg11-bn", "block:4x4", 0.75, 1},
        {"mobilenetv2", "unstructured", 0.6, 0},
    };
    static char paths[8][1100];
    const char *list[8];
    int n_files = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        pare_graph *g = NULL;
        CHECK_OK(pare_zoo_build(cases[c].model, 0, 4, &g));
        if (!g)
            continue;
        perturb_bn(g, 4);
        prune_graph(g, cases[c].scheme, cases[c].sparsity, cases[c].exempt_first);
        long long z = 0;
        int schemes = 0;
        for (int i = 0; i < g->n_params; i++)
            if (g->params[i].mask) {
                z += (long long)zeros_of(&g->params[i]);
                schemes += g->params[i].scheme != NULL;
            }
        CHECKF(z > 0 && schemes > 0, "%s: pruning left no zeros", cases[c].model);
        char file[96];
        snprintf(file, sizeof file, "%s-%zu.onnx", cases[c].model, c);
        pare_graph *back = NULL;
        double d = round_trip(g, file, 2, &back);
        snprintf(paths[n_files], sizeof paths[n_files], "%s", pare_test_path(file));
        list[n_files] = paths[n_files];
        n_files++;
        CHECKF(d >= 0 && d <= 1e-6, "%s %s: outputs differ by %g", cases[c].model, cases[c].scheme, d);
        printf("  %-12s %-12s %.0f%%: %lld zeros in %d schemed weights, max abs diff %g%s\n",
               cases[c].model, cases[c].scheme, 100 * cases[c].sparsity, z, schemes, d,
               d == 0 ? " (exact)" : "");
        if (back) {
            same_params(g, back, file);
            pare_graph_free(back);
        }
        pare_graph_free(g);
    }

    /* Filters pruned and then removed: a physically smaller graph. */
    pare_graph *g = NULL, *small = NULL;
    CHECK_OK(pare_zoo_build("resnet20", 0, 5, &g));
    if (!g)
        return;
    perturb_bn(g, 5);
    prune_graph(g, "filter", 0.5, 1);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    CHECK_OK(pare_purify(g, &small, NULL));
    if (small) {
        pare_graph *back = NULL;
        double d = round_trip(small, "resnet20-purified.onnx", 2, &back);
        CHECKF(d >= 0 && d <= 1e-6, "purified resnet20: outputs differ by %g", d);
        printf("  resnet20 purified (filters at 50%%): max abs diff %g%s\n", d, d == 0 ? " (exact)" : "");
        if (back) {
            same_params(small, back, "resnet20-purified");
            pare_graph_free(back);
        }
        snprintf(paths[n_files], sizeof paths[n_files], "%s", pare_test_path("resnet20-purified.onnx"));
        list[n_files] = paths[n_files];
        n_files++;
        pare_graph_free(small);
    }
    pare_graph_free(g);
    if (onnx_check(list, n_files) == 1)
        printf("  ONNX's checker (full_check) accepts all %d\n", n_files);
#endif
}

/* Every IR op, including the ones ONNX import brought, and a vector model. */
PARE_TEST(onnx_export_roundtrip_ops)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    pare_graph *g = every_op();
    if (g) {
        pare_graph *back = NULL;
        double d = round_trip(g, "every-op.onnx", 3, &back);
        CHECKF(d >= 0 && d <= 1e-6, "every op: outputs differ by %g", d);
        printf("  every-op round trip: max abs diff %g%s\n", d, d == 0 ? " (exact)" : "");
        if (back) {
            same_params(g, back, "every-op");
            pare_graph_free(back);
        }
        pare_graph_free(g);
    }
    g = vector_model();
    if (g) {
        double d = round_trip(g, "vectors.onnx", 3, NULL);
        CHECKF(d >= 0 && d <= 1e-6, "vector model: outputs differ by %g", d);
        printf("  vector model round trip: max abs diff %g%s\n", d, d == 0 ? " (exact)" : "");
        pare_graph_free(g);
    }
    char p1[1100], p2[1100];
    snprintf(p1, sizeof p1, "%s", pare_test_path("every-op.onnx"));
    snprintf(p2, sizeof p2, "%s", pare_test_path("vectors.onnx"));
    const char *list[2] = {p1, p2};
    if (onnx_check(list, 2) == 1)
        printf("  ONNX's checker (full_check) accepts both\n");
#endif
}

/* ---- PyTorch's models --------------------------------------------------------------- */

#ifdef PARE_ONNX
static float *read_floats(const char *dir, const char *name, size_t want)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint8_t *buf = NULL;
    size_t n = 0;
    pare_status s = pare_read_file(p, SIZE_MAX, &buf, &n);
    CHECKF(s == PARE_OK && n == want * sizeof(float), "%s: %zu bytes, wanted %zu floats", p, n, want);
    if (s != PARE_OK || n != want * sizeof(float)) {
        free(buf);
        return NULL;
    }
    return (float *)buf;
}

/* One exported model: imported, run by the graph and by the compiled plan,
 * compared with PyTorch's output. At opset 13 pare also writes the imported
 * model back out (its path in `back`, else "") and reads it again. */
static void torch_case(const char *dir, const char *line, char *back, size_t n_back)
{
    back[0] = 0;
    char name[64], file[128], fin[128], fout[128];
    int opset, n, c, h, w, per;
    long long zeros;
    if (sscanf(line, "case %63s %d %127s %127s %127s %d %d %d %d %d %lld", name, &opset, file, fin,
               fout, &n, &c, &h, &w, &per, &zeros) != 11) {
        pare_test_fail(__FILE__, __LINE__, "bad manifest line: %s", line);
        return;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    pare_graph *g = NULL;
    pare_status s = pare_onnx_load(path, &g);
    CHECKF(s == PARE_OK, "%s (opset %d) does not import: %s", name, opset, pare_last_error());
    if (s != PARE_OK)
        return;
    int gc, gh, gw;
    pare_graph_input_shape(g, &gc, &gh, &gw);
    CHECKF(gc == c && gh == h && gw == w && out_size(g) == (size_t)per,
           "%s: input %dx%dx%d -> %zu, PyTorch's %dx%dx%d -> %d", file, gc, gh, gw, out_size(g), c, h, w,
           per);
    size_t ni = (size_t)n * (size_t)c * (size_t)h * (size_t)w, no = (size_t)n * (size_t)per;
    float *x = read_floats(dir, fin, ni), *ref = read_floats(dir, fout, no);
    float *y = malloc(no * sizeof *y), *yp = malloc(no * sizeof *yp);
    if (x && ref && y && yp && out_size(g) == (size_t)per && in_size(g) * (size_t)n == ni) {
        CHECK_OK(pare_graph_forward(g, x, n, y, 2));
        double dg = max_scaled_diff(y, ref, no), dp = -1;
        pare_plan_options o;
        memset(&o, 0, sizeof o);
        o.threads = 2;
        pare_plan *plan = NULL;
        CHECK_OK(pare_plan_new(g, &o, &plan));
        if (plan) {
            CHECK_OK(pare_plan_run(plan, x, n, yp));
            dp = max_scaled_diff(yp, ref, no);
            pare_plan_free(plan);
        }
        CHECKF(dg <= 1e-4, "%s opset %d: the graph differs from PyTorch by %g", name, opset, dg);
        CHECKF(dp >= 0 && dp <= 1e-4, "%s opset %d: the plan differs from PyTorch by %g", name, opset, dp);
        printf("  %-13s opset %2d: max diff vs PyTorch: graph %.3g, plan %.3g\n", name, opset, dg, dp);
        /* One sample alone: the batch size is not baked into the model. */
        if (n > 1) {
            CHECK_OK(pare_graph_forward(g, x, 1, y, 1));
            CHECKF(max_scaled_diff(y, ref, (size_t)per) <= 1e-4, "%s: batch of one differs", name);
        }
    }
    if (opset == 13) {
        char file2[160];
        snprintf(file2, sizeof file2, "%s.pare.onnx", name);
        double d = round_trip(g, file2, n, NULL);
        CHECKF(d >= 0 && d <= 1e-6, "%s: pare's export of it differs by %g", name, d);
        printf("  %-13s written by pare and read back: max abs diff %g%s\n", name, d,
               d == 0 ? " (exact)" : "");
        snprintf(back, n_back, "%s", pare_test_path(file2));
    }
    if (zeros > 0) {
        long long masked = 0, z = 0;
        int weights = 0;
        for (int i = 0; i < g->n_params; i++) {
            const pare_param *p = &g->params[i];
            if (p->role != PARE_ROLE_WEIGHT)
                continue;
            size_t pz = zeros_of(p);
            z += (long long)pz;
            if (pz > 0) {
                weights++;
                CHECKF(p->mask != NULL, "%s: weight %s has %zu zeros but no mask", name, p->name, pz);
            }
            if (p->mask)
                for (size_t k = 0; k < p->t->n; k++)
                    masked += !p->mask[k];
            if (p->mask)
                printf("    %s: %zu of %zu masked, scheme %s\n", p->name, pz, p->t->n,
                       p->scheme ? p->scheme : "(none)");
        }
        CHECKF(z == zeros && masked == zeros, "%s: PyTorch pruned %lld weights; %lld zeros, %lld masked",
               name, zeros, z, masked);
        CHECK(weights == 3);
    }
    free(x);
    free(ref);
    free(y);
    free(yp);
    pare_graph_free(g);
}
#endif

/* Models PyTorch exports (tests/onnx/torch_models.py, opsets 9 to 17) import and
 * give PyTorch's outputs. */
PARE_TEST(onnx_torch_models)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    const char *script = "tests/onnx/torch_models.py";
    const char *py = python_with("torch");
    if (!py || !python_with("torchvision")) {
        printf("  skipped: no python3 with torch and torchvision (Debian: python3-torch, "
               "python3-torchvision)\n");
        return;
    }
    if (!pare_file_exists(script)) {
        printf("  skipped: %s not found (run from the source tree, as make check does)\n", script);
        return;
    }
    char dir[1100], log[1100], cmd[4096];
    snprintf(dir, sizeof dir, "%s", pare_test_path("torch"));
    snprintf(log, sizeof log, "%s", pare_test_path("torch.log"));
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' >'%s' 2>&1", py, script, dir, log);
    int st = system(cmd);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed: %s", script, slurp_tail(log));
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "r");
    CHECKF(f != NULL, "%s did not write %s", script, manifest);
    if (!f)
        return;
    char line[1024];
    static char paths[16][1100];
    const char *list[16];
    int cases = 0, n_back = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "case ", 5)) {
            torch_case(dir, line, paths[n_back], sizeof paths[n_back]);
            if (paths[n_back][0] && n_back < 15) {
                list[n_back] = paths[n_back];
                n_back++;
            }
            cases++;
        } else if (!strncmp(line, "skip ", 5)) {
            printf("  PyTorch cannot export: %s\n", line + 5);
        }
    }
    fclose(f);
    CHECKF(cases >= 15, "only %d models exported", cases);
    if (onnx_check(list, n_back) == 1)
        printf("  ONNX's checker (full_check) accepts pare's export of all %d\n", n_back);
#endif
}

/* ---- quantized models: QuantizeLinear / DequantizeLinear ------------------------------ */

#ifdef PARE_ONNX
/* A zoo model quantized by hand (tests/qdq_fixture.c): batch norms folded,
 * weights per channel at wbits, fakequant at abits before every conv and
 * linear (everywhere 0) or after every layer (1; 2: the output too). */
static pare_graph *qdq_zoo(const char *name, int wbits, int abits, int everywhere)
{
    pare_graph *g = NULL, *q = NULL;
    CHECK_OK(pare_zoo_build(name, 0, 3, &g));
    if (!g)
        return NULL;
    perturb_bn(g, 5);
    int n = 4;
    float *x = malloc(in_size(g) * (size_t)n * sizeof *x);
    if (x) {
        pare_test_fill(x, in_size(g) * (size_t)n, -1.0f, 1.0f, 11);
        qdq_fix_options o = {wbits, abits, 1, everywhere, 1};
        CHECK_OK(qdq_fix_quantize(g, x, n, &o, &q));
    }
    free(x);
    pare_graph_free(g);
    return q;
}

/* Layer v seen past flatten and reshape layers that keep its shape: the import
 * makes no layer of those. */
static const char *base_layer(const pare_graph *g, int v)
{
    while ((g->nodes[v].op == PARE_OP_FLATTEN || g->nodes[v].op == PARE_OP_RESHAPE) &&
           !memcmp(&g->nodes[v].out, &g->nodes[g->nodes[v].in[0]].out, sizeof(pare_shape)))
        v = g->nodes[v].in[0];
    return g->nodes[v].name;
}

static int same_qparams(const pare_qparams *a, const pare_qparams *b)
{
    if (a->bits != b->bits || a->scheme != b->scheme || a->n != b->n ||
        (a->scheme == 2 && a->axis != b->axis))
        return 0;
    if (a->n > 0 && (memcmp(a->scale, b->scale, sizeof(float) * (size_t)a->n) ||
                     memcmp(a->zero_point, b->zero_point, sizeof(int32_t) * (size_t)a->n)))
        return 0;
    if (a->scheme == 3 && (a->k != b->k || a->d != b->d ||
                           memcmp(a->codebook, b->codebook, sizeof(float) * (size_t)a->k * a->d)))
        return 0;
    return 1;
}

/* The quantization came back whole: every tensor bit for bit with its qparams,
 * every fakequant layer under its name with its scale, zero point, bits and input. */
static void same_quant(pare_graph *a, pare_graph *b, const char *what)
{
    int bad = 0, fa = 0, fb = 0, qa = 0;
    for (int i = 0; i < a->n_params && bad < 5; i++) {
        const pare_param *p = &a->params[i];
        const pare_param *q = find_param(b, p->name);
        qa += p->q.bits > 0;
        if (!q || q->t->n != p->t->n || memcmp(q->t->data, p->t->data, p->t->n * sizeof(float)) ||
            !same_qparams(&p->q, &q->q)) {
            bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: tensor %s (%d bits, scheme %d) came back %s",
                           what, p->name, p->q.bits, p->q.scheme,
                           !q ? "missing" : q->q.bits != p->q.bits ? "with other bits"
                                                                   : "different");
        }
    }
    for (int i = 0; i < a->n_nodes; i++) {
        const pare_node *n = &a->nodes[i];
        if (n->op != PARE_OP_FAKEQUANT)
            continue;
        fa++;
        int j = pare_graph_find_node(b, n->name);
        const pare_node *m = j >= 0 ? &b->nodes[j] : NULL;
        if (!m || m->op != PARE_OP_FAKEQUANT || memcmp(&m->a.alpha, &n->a.alpha, sizeof(float)) ||
            m->a.beta != n->a.beta || m->a.mode != n->a.mode ||
            strcmp(base_layer(a, n->in[0]), base_layer(b, m->in[0])))
            pare_test_fail(__FILE__, __LINE__, "%s: fakequant %s (%g, %g, %d bits, after %s) came "
                                               "back %s", what, n->name, (double)n->a.alpha,
                           (double)n->a.beta, n->a.mode, base_layer(a, n->in[0]),
                           m ? "different" : "missing");
    }
    for (int j = 0; j < b->n_nodes; j++)
        fb += b->nodes[j].op == PARE_OP_FAKEQUANT;
    CHECKF(fa == fb && fa > 0 && qa > 0, "%s: %d fakequant layers, %d after the round trip (%d "
                                         "quantized tensors)", what, fa, fb, qa);
}

/* The integers of an int8 or int32 initializer. */
static int64_t init_int(const Onnx__TensorProto *t, size_t k)
{
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
        uint32_t u;
        memcpy(&u, t->raw_data.data + 4 * k, 4);
        return (int32_t)u;
    }
    return t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ? (int8_t)t->raw_data.data[k]
                                                               : t->raw_data.data[k];
}

/* What the export of a quantized graph holds: each quantized tensor as codes
 * and a DequantizeLinear exactly as graph.h's representation defines them,
 * each fakequant as QuantizeLinear / DequantizeLinear (a Clip first below 8
 * bits). Returns the number of mismatches. */
static int check_qdq_model(const Onnx__ModelProto *m, const pare_graph *g)
{
    int bad = 0;
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        if (!p->q.bits)
            continue;
        char name[600];
        snprintf(name, sizeof name, "%s/dequantize", p->name);
        const Onnx__NodeProto *dq = node_named(m, name);
        if (!dq || strcmp(dq->op_type, "DequantizeLinear") || strcmp(dq->output[0], p->name)) {
            bad++;
            continue;
        }
        const Onnx__TensorProto *c = init_named(m, dq->input[0]), *s = init_named(m, dq->input[1]);
        int i32 = p->q.bits == 32;
        int want = i32 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT32 : ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
        if (!c || !s || c->data_type != want || c->raw_data.len != p->t->n * (i32 ? 4 : 1) ||
            c->n_dims != (size_t)p->t->ndim || dq->n_input != (i32 ? 2u : 3u) ||
            s->raw_data.len != 4 * (size_t)p->q.n ||
            memcmp(s->raw_data.data, p->q.scale, 4 * (size_t)p->q.n)) {
            CHECKF(0, "%s: codes, scale or zero point of the wrong type or size", p->name);
            bad++;
            continue;
        }
        const Onnx__AttributeProto *ax = attr_named(dq, "axis");
        CHECKF(ax && ax->i == 0, "%s: DequantizeLinear axis", p->name);
        if (!i32) {
            const Onnx__TensorProto *z = init_named(m, dq->input[2]);
            int zeros = z && z->data_type == want && z->raw_data.len == (size_t)p->q.n;
            for (size_t k = 0; zeros && k < z->raw_data.len; k++)
                zeros = z->raw_data.data[k] == 0;
            CHECKF(zeros, "%s: the zero points are not int8 zeros", p->name);
            bad += !zeros;
        }
        int64_t cmax = p->q.bits >= 32 ? INT32_MAX : p->q.bits <= 2 ? 1 : (1 << (p->q.bits - 1)) - 1;
        size_t per = p->t->n / (size_t)p->q.n, wrong = 0;
        for (size_t k = 0; k < p->t->n; k++) {
            int64_t code = init_int(c, k);
            float v = p->q.scale[k / per] * (float)code;
            wrong += code < -cmax || code > cmax || memcmp(&v, &p->t->data[k], sizeof v);
        }
        CHECKF(!wrong, "%s: %zu codes do not give the values back or leave +-%lld", p->name, wrong,
               (long long)cmax);
        bad += wrong > 0;
        if (p->role == PARE_ROLE_BIAS) {
            const pare_node *layer = &g->nodes[p->node];
            const pare_node *src = &g->nodes[layer->in[0]];
            const pare_param *w = &g->params[layer->param[0]];
            for (int o = 0; o < p->q.n && src->op == PARE_OP_FAKEQUANT; o++)
                bad += p->q.scale[o] != src->a.alpha * w->q.scale[o];
        }
        char key[600];
        snprintf(key, sizeof key, "pare.quant.%s", p->name);
        const char *bits = meta_value(m, key);
        char want_bits[16];
        snprintf(want_bits, sizeof want_bits, "bits=%d", p->q.bits);
        CHECKF(p->q.bits == 8 || p->q.bits == 32 ? !bits : bits && !strcmp(bits, want_bits),
               "%s is %s for %d bits", key, bits ? bits : "absent", p->q.bits);
    }
    for (int i = 1; i < g->n_nodes; i++) {
        const pare_node *n = &g->nodes[i];
        if (n->op != PARE_OP_FAKEQUANT)
            continue;
        char qn[600], cn[600];
        snprintf(qn, sizeof qn, "%s/quantize", n->name);
        snprintf(cn, sizeof cn, "%s/clip", n->name);
        const Onnx__NodeProto *q = node_named(m, qn), *dq = node_named(m, n->name);
        const char *src = n->in[0] == 0 ? "input" : g->nodes[n->in[0]].name;
        if (n->a.mode < 8) {
            const Onnx__NodeProto *c = node_named(m, cn);
            int zp = (int)n->a.beta, qmax = (1 << n->a.mode) - 1;
            CHECKF(c && !strcmp(c->op_type, "Clip") && !strcmp(c->input[0], src) &&
                       scalar_input(m, c, 1) == n->a.alpha * (float)(0 - zp) &&
                       scalar_input(m, c, 2) == n->a.alpha * (float)(qmax - zp) && q &&
                       !strcmp(q->input[0], c->output[0]),
                   "%s: %d bits without the Clip to its codes' values", n->name, n->a.mode);
            src = c ? c->output[0] : src;
        }
        if (!q || !dq || strcmp(q->op_type, "QuantizeLinear") || strcmp(q->input[0], src) ||
            strcmp(dq->op_type, "DequantizeLinear") || strcmp(dq->input[0], q->output[0]) ||
            strcmp(q->input[1], dq->input[1]) || strcmp(q->input[2], dq->input[2])) {
            pare_test_fail(__FILE__, __LINE__, "%s: not QuantizeLinear(%s) -> DequantizeLinear",
                           n->name, src);
            bad++;
            continue;
        }
        const Onnx__TensorProto *z = init_named(m, q->input[2]);
        CHECKF(scalar_input(m, q, 1) == n->a.alpha && z &&
                   z->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 && z->n_dims == 0 &&
                   z->raw_data.len == 1 && z->raw_data.data[0] == (uint8_t)n->a.beta,
               "%s: scale or uint8 zero point", n->name);
    }
    return bad;
}
#endif

/* What a quantized graph becomes in ONNX, read back with protobuf-c, and ONNX's
 * checker on it. */
PARE_TEST(onnx_export_qdq_structure)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    static const struct {
        const char *model, *file;
        int wbits, abits, everywhere;
    } cases[] = {
        {"fmnist-cnn", "q8.onnx", 8, 8, 0},
        {"resnet20", "q4.onnx", 4, 4, 1},
        {"fmnist-cnn", "q1.onnx", 1, 3, 2},
    };
    static char paths[3][1100];
    const char *list[3];
    for (int c = 0; c < 3; c++) {
        pare_graph *q = qdq_zoo(cases[c].model, cases[c].wbits, cases[c].abits, cases[c].everywhere);
        if (!q)
            continue;
        snprintf(paths[c], sizeof paths[c], "%s", pare_test_path(cases[c].file));
        list[c] = paths[c];
        CHECK_OK(pare_onnx_save(q, paths[c]));
        Onnx__ModelProto *m = read_model(paths[c]);
        if (m) {
            int bad = check_qdq_model(m, q);
            CHECKF(bad == 0, "%s: %d mismatches", cases[c].file, bad);
            printf("  %-10s w%d a%d: %zu nodes, %zu initializers as written\n", cases[c].model,
                   cases[c].wbits, cases[c].abits, m->graph->n_node, m->graph->n_initializer);
            onnx__model_proto__free_unpacked(m, NULL);
        }
        pare_graph_free(q);
    }
    if (onnx_check(list, 3) == 1)
        printf("  ONNX's checker (full_check) accepts all 3\n");
#endif
}

/* pare -> ONNX -> pare keeps the quantization exactly, and the outputs. */
PARE_TEST(onnx_export_qdq_roundtrip)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    static const struct {
        const char *model;
        int wbits, abits, everywhere;
    } cases[] = {
        {"fmnist-cnn", 8, 8, 0}, {"fmnist-cnn", 4, 4, 1}, {"fmnist-cnn", 1, 8, 0},
        {"resnet20", 8, 8, 2},   {"resnet20", 2, 3, 1},   {"mobilenetv2", 8, 8, 1},
    };
    static char paths[6][1100];
    const char *list[6];
    int n_files = 0;
    for (int c = 0; c < 6; c++) {
        pare_graph *q = qdq_zoo(cases[c].model, cases[c].wbits, cases[c].abits, cases[c].everywhere);
        if (!q)
            continue;
        char file[80], what[120];
        snprintf(file, sizeof file, "rt%d-%s.onnx", c, cases[c].model);
        snprintf(what, sizeof what, "%s w%d a%d", cases[c].model, cases[c].wbits, cases[c].abits);
        pare_graph *back = NULL;
        double d = round_trip(q, file, 3, &back);
        snprintf(paths[n_files], sizeof paths[n_files], "%s", pare_test_path(file));
        list[n_files] = paths[n_files];
        n_files++;
        CHECKF(d == 0, "%s: the outputs differ by %g after the round trip", what, d);
        if (back) {
            same_quant(q, back, what);
            /* The compiled plans of both agree too, and pare's file takes it. */
            size_t ni = in_size(q) * 2, no = out_size(q) * 2;
            float *x = malloc(ni * sizeof *x), *y0 = malloc(no * sizeof *y0),
                  *y1 = malloc(no * sizeof *y1);
            pare_plan_options po;
            memset(&po, 0, sizeof po);
            po.threads = 1;
            pare_plan *p0 = NULL, *p1 = NULL;
            CHECK_OK(pare_plan_new(q, &po, &p0));
            CHECK_OK(pare_plan_new(back, &po, &p1));
            if (x && y0 && y1 && p0 && p1) {
                pare_test_fill(x, ni, -1.0f, 1.0f, 19);
                CHECK_OK(pare_plan_run(p0, x, 2, y0));
                CHECK_OK(pare_plan_run(p1, x, 2, y1));
                /* The engine may fuse a flatten the import did not make differently. */
                double dp = max_scaled_diff(y0, y1, no);
                CHECKF(dp <= 1e-6, "%s: the compiled plans differ by %g", what, dp);
            }
            pare_plan_free(p0);
            pare_plan_free(p1);
            free(x);
            free(y0);
            free(y1);
            char pp[1100];
            snprintf(pp, sizeof pp, "%s", pare_test_path("rt.pare"));
            CHECK_OK(pare_graph_save(back, pp));
            printf("  %-24s round trip exact: %d layers, %d tensors\n", what, back->n_nodes,
                   back->n_params);
            pare_graph_free(back);
        }
        pare_graph_free(q);
    }
    if (onnx_check(list, n_files) == 1)
        printf("  ONNX's checker (full_check) accepts all %d\n", n_files);
#endif
}

#ifdef PARE_ONNX
/* The folder of the ONNX Runtime peer (bench/peers with onnxruntime-node
 * installed), or NULL. */
static const char *ort_peer(void)
{
    static char dir[1100];
    char cwd[1024], cmd[1400];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    snprintf(dir, sizeof dir, "%s/bench/peers", cwd);
    if (!pare_file_exists(dir))
        return NULL;
    snprintf(cmd, sizeof cmd, "node -e \"require('%s/node_modules/onnxruntime-node')\" >/dev/null 2>&1",
             dir);
    return system(cmd) == 0 ? dir : NULL;
}

/* Runs `model` under ONNX Runtime on the n samples in `in` (written here) and
 * reads its outputs; saves the optimised model to `opt` when not NULL. */
static float *ort_outputs(const char *peer, const char *model, const float *x, size_t ni, size_t no,
                          const char *opt)
{
    char in[1100], out[1100], log[1100], cmd[6000];
    snprintf(in, sizeof in, "%s", pare_test_path("ort.in.bin"));
    snprintf(out, sizeof out, "%s", pare_test_path("ort.out.bin"));
    snprintf(log, sizeof log, "%s", pare_test_path("ort.log"));
    CHECK_OK(pare_write_file_atomic(in, x, ni * sizeof *x));
    snprintf(cmd, sizeof cmd, "%s%s%snode '%s/ort_run.js' '%s' '%s' '%s' >'%s' 2>&1",
             opt ? "ORT_OPTIMIZED='" : "", opt ? opt : "", opt ? "' " : "", peer, model, in, out,
             log);
    int st = system(cmd);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ONNX Runtime failed on %s: %s", model,
           slurp_tail(log));
    uint8_t *buf = NULL;
    size_t n = 0;
    if (pare_read_file(out, SIZE_MAX, &buf, &n) != PARE_OK || n != no * sizeof(float)) {
        pare_test_fail(__FILE__, __LINE__, "ONNX Runtime gave %zu bytes for %zu outputs", n, no);
        free(buf);
        return NULL;
    }
    return (float *)buf;
}

/* How many nodes of op type `op` an ONNX file holds (python3 with onnx), or -1. */
static int count_ops(const char *path, const char *op)
{
    const char *py = python_with("onnx");
    if (!py)
        return -1;
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import sys, onnx; sys.exit(min(200, sum(n.op_type == \"%s\" for n in "
             "onnx.load(\"%s\").graph.node)))'",
             py, op, path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int argmax_of(const float *y, size_t n)
{
    size_t b = 0;
    for (size_t k = 1; k < n; k++)
        if (y[k] > y[b])
            b = k;
    return (int)b;
}
#endif

/* Quantized models exported by pare run under ONNX Runtime in int8 (its
 * optimised graph has a QLinearConv for every conv) and give pare's outputs
 * within two steps of the output's quantization: ONNX Runtime requantizes each
 * layer's int32 sums, which may round a code at a tie the other way. */
PARE_TEST(onnx_export_qdq_ort)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    const char *peer = ort_peer();
    if (!peer) {
        printf("  skipped: no node with onnxruntime-node in bench/peers (cd bench/peers && npm "
               "install --ignore-scripts)\n");
        return;
    }
    static const char *const models[] = {"fmnist-cnn", "resnet20", "mobilenetv2"};
    for (int c = 0; c < 3; c++) {
        pare_graph *q = qdq_zoo(models[c], 8, 8, 2);
        if (!q)
            continue;
        char file[1100], opt[1100];
        snprintf(file, sizeof file, "%s", pare_test_path("ort.onnx"));
        snprintf(opt, sizeof opt, "%s", pare_test_path("ort.opt.onnx"));
        CHECK_OK(pare_onnx_save(q, file));
        int n = 8, convs = 0;
        size_t per = out_size(q), ni = in_size(q) * (size_t)n, no = per * (size_t)n;
        for (int i = 0; i < q->n_nodes; i++)
            convs += q->nodes[i].op == PARE_OP_CONV2D;
        float *x = malloc(ni * sizeof *x), *y = malloc(no * sizeof *y), *r = NULL;
        if (x && y) {
            pare_test_fill(x, ni, -1.5f, 1.5f, 23);
            CHECK_OK(pare_graph_forward(q, x, n, y, 1));
            r = ort_outputs(peer, file, x, ni, no, opt);
        }
        if (r) {
            float step = q->nodes[q->output].a.alpha;
            double d = max_abs_diff(y, r, no);
            int agree = 0;
            for (int k = 0; k < n; k++)
                agree += argmax_of(y + (size_t)k * per, per) == argmax_of(r + (size_t)k * per, per);
            int fused = count_ops(opt, "QLinearConv");
            printf("  %-12s vs ONNX Runtime: max diff %.3g = %.2f output steps, argmax %d of %d, "
                   "QLinearConv %d of %d convs\n",
                   models[c], d, d / step, agree, n, fused, convs);
            CHECKF(d <= 2.0 * step + 1e-7, "%s: ONNX Runtime differs by %g, %.2f steps of %g",
                   models[c], d, d / step, (double)step);
            CHECKF(agree >= n - 1, "%s: argmax agrees on %d of %d", models[c], agree, n);
            CHECKF(fused < 0 || fused == convs, "%s: ONNX Runtime fused %d of %d convs into "
                                                "QLinearConv", models[c], fused, convs);
        }
        free(x);
        free(y);
        free(r);
        pare_graph_free(q);
    }
#endif
}

/* Weight sharing (scheme 3) goes out as the float values, its codebook in
 * metadata; the import restores it when the values follow it. */
PARE_TEST(onnx_export_qdq_codebook)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    pare_graph *g = pare_graph_new("shared");
    int x = pare_graph_input(g, 2, 6, 6);
    x = pare_graph_conv2d(g, x, 4, 3, 1, 1, "conv");
    x = pare_graph_relu(g, x, "relu");
    x = pare_graph_flatten(g, x, "flat");
    x = pare_graph_linear(g, x, 5, 1, "fc");
    CHECK_OK(pare_graph_set_output(g, x));
    /* conv: rows of d = 3 along the kernel's last axis from k = 4; fc: k = 16, d = 1. */
    static const struct {
        const char *name;
        int k, d;
    } sh[2] = {{"conv.weight", 4, 3}, {"fc.weight", 16, 1}};
    for (int s = 0; s < 2; s++) {
        pare_param *p = find_param(g, sh[s].name);
        if (!p)
            continue;
        int k = sh[s].k, d = sh[s].d;
        p->q.codebook = malloc(sizeof(float) * (size_t)(k * d));
        pare_test_fill(p->q.codebook, (size_t)(k * d), -0.5f, 0.5f, 31 + (uint64_t)s);
        for (size_t r = 0; r < p->t->n / (size_t)d; r++)
            memcpy(p->t->data + r * (size_t)d, p->q.codebook + (r * 7 % (size_t)k) * (size_t)d,
                   sizeof(float) * (size_t)d);
        p->q.scheme = 3;
        p->q.k = k;
        p->q.d = d;
        p->q.bits = s == 0 ? 2 : 4;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s", pare_test_path("shared.onnx"));
    CHECK_OK(pare_onnx_save(g, path));
    Onnx__ModelProto *m = read_model(path);
    if (m) {
        check_common(m, g, 4, 2); /* float initializers, bit for bit */
        const char *cb = meta_value(m, "pare.codebook.conv.weight");
        CHECKF(cb && !strncmp(cb, "k=4 d=3: ", 9), "codebook metadata: %s", cb ? cb : "absent");
        onnx__model_proto__free_unpacked(m, NULL);
    }
    pare_graph *back = NULL;
    CHECK_OK(pare_onnx_load(path, &back));
    char why[200];
    const pare_param *w = find_param(g, "conv.weight");
    int file_takes = w && !pare_file_qparams_problem(&w->q, w->t->ndim, w->t->dims, w->t->n, why,
                                                     sizeof why);
    if (back && file_takes) {
        same_params(g, back, "shared");
        for (int s = 0; s < 2; s++) {
            pare_param *a = find_param(g, sh[s].name), *b = find_param(back, sh[s].name);
            CHECKF(a && b && same_qparams(&a->q, &b->q), "%s: the codebook did not come back",
                   sh[s].name);
        }
        printf("  both codebooks (k 4, d 3 and k 16, d 1) came back with the values\n");
    } else if (back) {
        printf("  the .pare format does not take codebooks yet (%s): values only\n", why);
        same_params(g, back, "shared");
    }
    pare_graph_free(back);
    /* A value off the codebook: the tensor comes back as floats. */
    pare_param *p = find_param(g, "fc.weight");
    if (p) {
        p->t->data[3] = 0.75f;
        CHECK_OK(pare_onnx_save(g, path));
        CHECK_OK(pare_onnx_load(path, &back));
        const pare_param *b = back ? find_param(back, "fc.weight") : NULL;
        CHECK(b && b->q.bits == 0 && b->q.scheme == 0 && b->t->data[3] == 0.75f);
        pare_graph_free(back);
    }
    const char *paths[1] = {path};
    onnx_check(paths, 1);
    pare_graph_free(g);
#endif
}

/* Quantization parameters the values do not follow: one sentence naming the
 * tensor, and the file is not written. */
PARE_TEST(onnx_export_qdq_errors)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    pare_graph *q = qdq_zoo("fmnist-cnn", 8, 8, 0);
    if (!q)
        return;
    char path[1100];
    snprintf(path, sizeof path, "%s", pare_test_path("off-grid.onnx"));
    pare_param *w = find_param(q, "block2.conv.weight");
    if (w) {
        float keep = w->t->data[5];
        w->t->data[5] = nextafterf(keep, 10.0f);
        CHECK_STATUS(pare_onnx_save(q, path), PARE_EINVAL);
        const char *e = pare_last_error();
        CHECKF(strstr(e, path) && strstr(e, "block2.conv.weight") && strstr(e, "element 5") &&
                   strstr(e, "not its scale") && !strchr(e, '\n'),
               "%s", e);
        CHECK(!pare_file_exists(path));
        w->t->data[5] = keep;
        w->q.n = 3; /* per channel, but 3 scales for 16 channels */
        CHECK_STATUS(pare_onnx_save(q, path), PARE_EINVAL);
        CHECKF(strstr(pare_last_error(), "block2.conv.weight") &&
                   strstr(pare_last_error(), "per channel"),
               "%s", pare_last_error());
        w->q.n = w->t->dims[0];
        CHECK_OK(pare_onnx_save(q, path));
    }
    pare_graph_free(q);
#endif
}

/* QDQ models made elsewhere (tests/onnx/qdq_models.py: one built with onnx's
 * helper in ONNX Runtime's form, one exported by PyTorch from a model prepared
 * for quantization-aware training) import as quantized pare models and give
 * the reference outputs (ONNX's arithmetic, PyTorch's) within two steps of the
 * output's quantization, through the graph and the compiled plan; and ONNX
 * Runtime agrees. */
PARE_TEST(onnx_qdq_external)
{
#ifndef PARE_ONNX
    printf("  skipped: built without ONNX (protobuf-c)\n");
#else
    const char *script = "tests/onnx/qdq_models.py";
    const char *py = python_with("onnx");
    if (!py) {
        printf("  skipped: no python3 with onnx (Debian: python3-onnx)\n");
        return;
    }
    if (!pare_file_exists(script)) {
        printf("  skipped: %s not found (run from the source tree, as make check does)\n", script);
        return;
    }
    char dir[1100], log[1100], cmd[4096], manifest[1200];
    snprintf(dir, sizeof dir, "%s", pare_test_path("qdq"));
    snprintf(log, sizeof log, "%s", pare_test_path("qdq.log"));
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' >'%s' 2>&1", py, script, dir, log);
    int st = system(cmd);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed: %s", script, slurp_tail(log));
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", dir);
    FILE *f = fopen(manifest, "r");
    CHECKF(f != NULL, "%s did not write %s", script, manifest);
    if (!f)
        return;
    const char *peer = ort_peer();
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], file[128], fin[128], fout[128];
        int n, c, h, w, per, fqs, qps;
        double tol;
        if (!strncmp(line, "skip ", 5)) {
            printf("  %s", line);
            continue;
        }
        if (sscanf(line, "case %63s %127s %127s %127s %d %d %d %d %d %lf %d %d", name, file, fin,
                   fout, &n, &c, &h, &w, &per, &tol, &fqs, &qps) != 12) {
            pare_test_fail(__FILE__, __LINE__, "bad manifest line: %s", line);
            continue;
        }
        cases++;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        pare_graph *g = NULL;
        CHECK_OK(pare_onnx_load(path, &g));
        if (!g)
            continue;
        int got_fq = 0, got_q = 0;
        for (int i = 0; i < g->n_nodes; i++)
            got_fq += g->nodes[i].op == PARE_OP_FAKEQUANT;
        for (int i = 0; i < g->n_params; i++)
            got_q += g->params[i].q.bits > 0;
        CHECKF(got_fq == fqs && got_q == qps, "%s: %d fakequant layers and %d quantized tensors, "
                                              "wanted %d and %d", name, got_fq, got_q, fqs, qps);
        size_t ni = (size_t)n * (size_t)c * (size_t)h * (size_t)w, no = (size_t)n * (size_t)per;
        float *x = read_floats(dir, fin, ni), *ref = read_floats(dir, fout, no);
        float *y = malloc(no * sizeof *y), *yp = malloc(no * sizeof *yp), *r = NULL;
        if (x && ref && y && yp && in_size(g) * (size_t)n == ni && out_size(g) == (size_t)per) {
            CHECK_OK(pare_graph_forward(g, x, n, y, 1));
            pare_plan_options po;
            memset(&po, 0, sizeof po);
            po.threads = 1;
            pare_plan *plan = NULL;
            CHECK_OK(pare_plan_new(g, &po, &plan));
            double dg = max_abs_diff(y, ref, no), dp = -1, dr = -1, dpr = -1;
            if (plan) {
                CHECK_OK(pare_plan_run(plan, x, n, yp));
                dp = max_abs_diff(yp, ref, no);
                /* PyTorch's QAT model runs in int8 whole: its -128 weight codes are
                 * pare's, and its fakequants move past the ReLUs and the Flatten */
                pare_plan_info pi;
                pare_plan_get_info(plan, &pi);
                if (!strcmp(name, "torch_qat"))
                    CHECKF(pi.int8_layers == 3, "torch_qat: %d of its 3 layers run in int8", pi.int8_layers);
                pare_plan_free(plan);
            }
            CHECKF(dg <= tol, "%s: the graph differs from the reference by %g (> %g)", name, dg, tol);
            CHECKF(dp >= 0 && dp <= tol, "%s: the plan differs from the reference by %g (> %g)",
                   name, dp, tol);
            if (peer && (r = ort_outputs(peer, path, x, ni, no, NULL)) != NULL) {
                dr = max_abs_diff(r, ref, no);
                dpr = max_abs_diff(y, r, no);
                CHECKF(dpr <= tol, "%s: pare and ONNX Runtime differ by %g (> %g)", name, dpr, tol);
            }
            printf("  %-10s max diff vs reference: graph %.3g, plan %.3g (tolerance %.3g); ONNX "
                   "Runtime vs reference %.3g, vs pare %.3g\n",
                   name, dg, dp, tol, dr, dpr);
        }
        free(x);
        free(ref);
        free(y);
        free(yp);
        free(r);
        pare_graph_free(g);
    }
    fclose(f);
    CHECKF(cases >= 1, "no models in %s", manifest);
#endif
}

/* ---- the command line and failures ---------------------------------------------------- */

static int run_pare(const char *args, int *code, char *err, size_t n_err)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin)
        return 0;
    char out[1100], errp[1100], cmd[8192];
    snprintf(out, sizeof out, "%s", pare_test_path("stdout.txt"));
    snprintf(errp, sizeof errp, "%s", pare_test_path("stderr.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", pare_test_dir(), bin, args, out, errp);
    int st = system(cmd);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    err[0] = 0;
    FILE *f = fopen(errp, "rb");
    if (f) {
        size_t got = fread(err, 1, n_err - 1, f);
        err[got] = 0;
        fclose(f);
    }
    return 1;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

PARE_TEST(onnx_export_cli)
{
    int code;
    char err[4096];
    if (!run_pare("zoo lenet --out m.pare --seed 3", &code, err, sizeof err)) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    CHECKF(code == 0, "pare zoo: %s", err);
#ifndef PARE_ONNX
    run_pare("convert m.pare m.onnx", &code, err, sizeof err);
    CHECKF(code != 0 && count_lines(err) == 1 && strstr(err, "ONNX"),
           "convert without ONNX support: exit %d: %s", code, err);
#else
    run_pare("convert m.pare m.onnx", &code, err, sizeof err);
    CHECKF(code == 0, "pare convert m.pare m.onnx: exit %d: %s", code, err);
    char p[1100];
    snprintf(p, sizeof p, "%s", pare_test_path("m.pare"));
    pare_graph *g = NULL, *back = NULL;
    CHECK_OK(pare_graph_load(p, &g));
    snprintf(p, sizeof p, "%s", pare_test_path("m.onnx"));
    CHECK_OK(pare_onnx_load(p, &back));
    if (g && back) {
        float x[2 * 784], y0[20], y1[20];
        pare_test_fill(x, 2 * 784, -1, 1, 8);
        CHECK(out_size(back) == 10);
        CHECK_OK(pare_graph_forward(g, x, 2, y0, 1));
        CHECK_OK(pare_graph_forward(back, x, 2, y1, 1));
        CHECKF(max_abs_diff(y0, y1, 20) <= 1e-6, "converted model differs by %g", max_abs_diff(y0, y1, 20));
    }
    pare_graph_free(g);
    pare_graph_free(back);
    const char *list[1] = {p};
    onnx_check(list, 1);
    /* A folder that does not exist: one sentence naming the path, nothing written. */
    run_pare("convert m.pare /nonexistent-dir/m.onnx", &code, err, sizeof err);
    CHECKF(code == 1, "exit %d (%s)", code, err);
    CHECKF(count_lines(err) == 1 && !strncmp(err, "pare", 4) && strstr(err, "/nonexistent-dir/m.onnx"),
           "stderr: %s", err);
    /* A folder where the file should go: refused, the folder untouched. */
    mkdir(pare_test_path("taken.onnx"), 0755);
    run_pare("convert m.pare taken.onnx", &code, err, sizeof err);
    CHECKF(code == 1 && count_lines(err) == 1 && strstr(err, "taken.onnx"), "exit %d: %s", code, err);
    struct stat st;
    CHECK(stat(pare_test_path("taken.onnx"), &st) == 0 && S_ISDIR(st.st_mode));
#endif
}

PARE_TEST(onnx_export_errors)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 1, &g));
    if (!g)
        return;
    char p[1100];
    snprintf(p, sizeof p, "%s", pare_test_path("m.onnx"));
#ifndef PARE_ONNX
    CHECK_STATUS(pare_onnx_save(g, p), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "ONNX") != NULL && strstr(pare_last_error(), p) != NULL);
    CHECK(!pare_file_exists(p));
#else
    CHECK_STATUS(pare_onnx_save(g, NULL), PARE_EINVAL);
    CHECK_STATUS(pare_onnx_save(g, ""), PARE_EINVAL);
    CHECK_STATUS(pare_onnx_save(NULL, p), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), p) != NULL);
    CHECK_STATUS(pare_onnx_save(g, "/nonexistent-dir/m.onnx"), PARE_EIO);
    CHECKF(strstr(pare_last_error(), "/nonexistent-dir/m.onnx") != NULL, "%s", pare_last_error());
    /* A failed export leaves the file that was there as it was. */
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("old contents", f);
        fclose(f);
    }
    pare_graph *bad = pare_graph_new("bad");
    int x = pare_graph_input(bad, 1, 4, 4);
    pare_graph_conv2d(bad, x, 2, 9, 1, 0, "too-big");
    CHECK(pare_graph_status(bad) != PARE_OK);
    CHECK_STATUS(pare_onnx_save(bad, p), PARE_EINVAL);
    CHECKF(strstr(pare_last_error(), p) && strstr(pare_last_error(), "bad"), "%s", pare_last_error());
    pare_graph_free(bad);
    /* So does a graph whose stored shapes are wrong (pare_graph_validate). */
    g->nodes[1].out.c++;
    CHECK_STATUS(pare_onnx_save(g, p), PARE_EINVAL);
    CHECKF(strstr(pare_last_error(), p) && strstr(pare_last_error(), "conv1"), "%s", pare_last_error());
    g->nodes[1].out.c--;
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK_OK(pare_read_file(p, 1 << 20, &buf, &n));
    CHECK(buf && n == 12 && !memcmp(buf, "old contents", 12));
    free(buf);
    /* A success replaces it. */
    CHECK_OK(pare_onnx_save(g, p));
    CHECK_OK(pare_read_file(p, 1 << 24, &buf, &n));
    CHECK(buf && n > 200000);
    free(buf);
#endif
    pare_graph_free(g);
}
