/* ONNX import: ONNX's own backend tests (node and pytorch-converted) as a
 * conformance floor, small models built here with protobuf-c for every op
 * mapping, constant folding, channel shuffles, sparsity recognition and
 * quantized (QDQ) models, and
 * every kind of bad input (truncation, sizes that lie, unsupported ops listed at
 * once, external data outside the model's folder); `pare convert` and
 * `pare onnx-check` end to end. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compress/quant.h"
#include "core/fsio.h"
#include "graph/graph.h"
#include "io/onnx.h"
#include "test.h"

#ifdef PARE_ONNX
#include "onnx.pb-c.h"

/* ---- building models -------------------------------------------------------------- */

#define MB_MEM 8192

/* A model under construction; everything it points to lives in mem. */
typedef struct mb {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__NodeProto *node[64];
    Onnx__TensorProto *init[64];
    Onnx__ValueInfoProto *in[8], *out[4];
    Onnx__StringStringEntryProto *meta[8];
    void *mem[MB_MEM];
    int n_mem;
} mb;

static void *mb_mem(mb *b, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (b->n_mem < MB_MEM)
        b->mem[b->n_mem++] = p;
    return p;
}

static char *mb_str(mb *b, const char *s)
{
    char *p = mb_mem(b, strlen(s) + 1);
    strcpy(p, s);
    return p;
}

static mb *mb_new(int opset)
{
    mb *b = calloc(1, sizeof *b);
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    onnx__operator_set_id_proto__init(&b->opset);
    b->opset.domain = mb_str(b, "");
    b->opset.has_version = 1;
    b->opset.version = opset;
    b->opsets[0] = &b->opset;
    b->model.has_ir_version = 1;
    b->model.ir_version = 7;
    b->model.n_opset_import = 1;
    b->model.opset_import = b->opsets;
    b->model.graph = &b->graph;
    b->model.metadata_props = b->meta;
    b->graph.name = mb_str(b, "test");
    b->graph.node = b->node;
    b->graph.initializer = b->init;
    b->graph.input = b->in;
    b->graph.output = b->out;
    return b;
}

static void mb_free(mb *b)
{
    for (int i = 0; i < b->n_mem; i++)
        free(b->mem[i]);
    free(b);
}

/* A tensor value description; dims < 0 are symbolic ("N"). rank < 0: no shape. */
static Onnx__ValueInfoProto *mb_value(mb *b, const char *name, int elem, int rank,
                                      const int64_t *dims)
{
    Onnx__ValueInfoProto *v = mb_mem(b, sizeof *v);
    Onnx__TypeProto *t = mb_mem(b, sizeof *t);
    Onnx__TypeProto__Tensor *tt = mb_mem(b, sizeof *tt);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    v->name = mb_str(b, name);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (rank >= 0) {
        Onnx__TensorShapeProto *sh = mb_mem(b, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)rank;
        sh->dim = mb_mem(b, sizeof *sh->dim * (size_t)(rank ? rank : 1));
        for (int k = 0; k < rank; k++) {
            Onnx__TensorShapeProto__Dimension *d = mb_mem(b, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[k] < 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = mb_str(b, "N");
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[k];
            }
            sh->dim[k] = d;
        }
        tt->shape = sh;
    }
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    return v;
}

static void mb_input(mb *b, const char *name, int rank, const int64_t *dims)
{
    b->in[b->graph.n_input++] = mb_value(b, name, 1, rank, dims);
}

static void mb_output(mb *b, const char *name)
{
    b->out[b->graph.n_output++] = mb_value(b, name, 1, -1, NULL);
}

/* A float32 (data: float) or int64 (data: int64_t) tensor; data NULL: 0.1 k - 1. */
static Onnx__TensorProto *mb_tensor(mb *b, const char *name, int dtype, int rank,
                                    const int64_t *dims, const void *data)
{
    Onnx__TensorProto *t = mb_mem(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = mb_str(b, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)rank;
    t->dims = mb_mem(b, sizeof(int64_t) * (size_t)(rank ? rank : 1));
    size_t n = 1;
    for (int k = 0; k < rank; k++) {
        t->dims[k] = dims[k];
        n *= (size_t)dims[k];
    }
    if (dtype == 1) {
        t->n_float_data = n;
        t->float_data = mb_mem(b, sizeof(float) * n);
        for (size_t k = 0; k < n; k++)
            t->float_data[k] = data ? ((const float *)data)[k] : 0.1f * (float)k - 1.0f;
    } else {
        t->n_int64_data = n;
        t->int64_data = mb_mem(b, sizeof(int64_t) * n);
        for (size_t k = 0; k < n; k++)
            t->int64_data[k] = data ? ((const int64_t *)data)[k] : (int64_t)k;
    }
    return t;
}

static Onnx__TensorProto *mb_init_f(mb *b, const char *name, int rank, const int64_t *dims,
                                    const float *data)
{
    Onnx__TensorProto *t = mb_tensor(b, name, 1, rank, dims, data);
    b->init[b->graph.n_initializer++] = t;
    return t;
}

static Onnx__TensorProto *mb_init_i(mb *b, const char *name, int n, const int64_t *vals)
{
    int64_t d = n;
    Onnx__TensorProto *t = mb_tensor(b, name, 7, 1, &d, vals);
    b->init[b->graph.n_initializer++] = t;
    return t;
}

/* ins, outs: comma-separated names; an empty entry is an absent optional input. */
static char **mb_list(mb *b, const char *s, size_t *n)
{
    char **v = mb_mem(b, sizeof *v * 16);
    *n = 0;
    if (!*s)
        return v;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        v[*n] = mb_mem(b, len + 1);
        memcpy(v[*n], p, len);
        (*n)++;
        if (!e)
            break;
        p = e + 1;
    }
    return v;
}

static Onnx__NodeProto *mb_node(mb *b, const char *op, const char *name, const char *ins,
                                const char *outs)
{
    Onnx__NodeProto *nd = mb_mem(b, sizeof *nd);
    onnx__node_proto__init(nd);
    nd->op_type = mb_str(b, op);
    nd->name = mb_str(b, name);
    nd->input = mb_list(b, ins, &nd->n_input);
    nd->output = mb_list(b, outs, &nd->n_output);
    nd->attribute = mb_mem(b, sizeof *nd->attribute * 16);
    b->node[b->graph.n_node++] = nd;
    return nd;
}

static Onnx__AttributeProto *mb_attr(mb *b, Onnx__NodeProto *nd, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = mb_mem(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = mb_str(b, name);
    a->has_type = 1;
    a->type = type;
    nd->attribute[nd->n_attribute++] = a;
    return a;
}

static void mb_attr_i(mb *b, Onnx__NodeProto *nd, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void mb_attr_f(mb *b, Onnx__NodeProto *nd, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

static void mb_attr_ints(mb *b, Onnx__NodeProto *nd, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = mb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)n;
    a->ints = mb_mem(b, sizeof(int64_t) * (size_t)(n ? n : 1));
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}

static void mb_attr_s(mb *b, Onnx__NodeProto *nd, const char *name, const char *s)
{
    Onnx__AttributeProto *a = mb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(s);
    a->s.data = (uint8_t *)mb_str(b, s);
}

static void mb_attr_t(mb *b, Onnx__NodeProto *nd, const char *name, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *a = mb_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

/* A Constant node giving an int64 list (rank 1) or scalar (n < 0: the one value v[0]). */
static void mb_const_i(mb *b, const char *out, int n, const int64_t *v)
{
    int64_t d = n;
    Onnx__NodeProto *nd = mb_node(b, "Constant", out, "", out);
    mb_attr_t(b, nd, "value", mb_tensor(b, "", 7, n < 0 ? 0 : 1, &d, v));
}

static void mb_meta(mb *b, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = mb_mem(b, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = mb_str(b, key);
    e->value = mb_str(b, value);
    b->meta[b->model.n_metadata_props++] = e;
}

static uint8_t *mb_pack(mb *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = malloc(*len ? *len : 1);
    onnx__model_proto__pack(&b->model, buf);
    return buf;
}

static pare_status mb_load(mb *b, pare_graph **g)
{
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    pare_status s = pare_onnx_decode(buf, len, "test.onnx", NULL, NULL, g);
    free(buf);
    return s;
}

static void mb_write(mb *b, const char *path)
{
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    CHECK_OK(pare_write_file_atomic(path, buf, len));
    free(buf);
}

/* The graph's ops, as "input conv2d relu". */
static const char *ops_of(const pare_graph *g)
{
    static char buf[1024];
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < pare_graph_layer_count(g) && at < sizeof buf; i++) {
        pare_layer_info li;
        pare_graph_layer_info(g, i, &li);
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? " " : "", li.op);
    }
    return buf;
}

static const pare_param *param_named(const pare_graph *g, const char *name)
{
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name))
            return &g->params[i];
    return NULL;
}

static int node_of(const pare_graph *g, pare_op_type op)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == op)
            return i;
    return -1;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)a[k] - b[k]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static const int64_t D_N4[] = {-1, 4}, D_N6[] = {-1, 6};

/* ---- conformance ------------------------------------------------------------------- */

#define ONNX_DATA "/usr/share/libonnx-testdata/data"

/* Runs every test folder; returns 0 when the folder is absent. */
static int conformance(const char *dir, int floor_pass, int floor_plan)
{
    char **names;
    int n;
    if (pare_onnx_case_list(dir, &names, &n) != PARE_OK) {
        printf("  skipped: %s is absent (Debian's libonnx-testdata)\n", dir);
        return 0;
    }
    int count[3] = {0}, plan_pass = 0, plan_fail = 0;
    for (int i = 0; i < n; i++) {
        char path[4200];
        pare_onnx_case c;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK_OK(pare_onnx_check_case(path, 1, &c));
        count[c.result < 3 ? c.result : 2]++;
        CHECKF(c.result != PARE_ONNX_FAIL, "%s: FAIL: %s", c.name, c.reason);
        plan_pass += c.plan == PARE_ONNX_PASS;
        if (c.plan == PARE_ONNX_FAIL) {
            plan_fail++;
            printf("  compiled plan FAIL (engine): %s: %s\n", c.name, c.plan_reason);
        }
    }
    printf("  %s: %d passed, %d failed, %d unsupported; plan %d passed, %d failed\n", dir,
           count[0], count[1], count[2], plan_pass, plan_fail);
    CHECKF(count[0] >= floor_pass, "%d tests pass, the floor is %d", count[0], floor_pass);
    CHECKF(plan_pass >= floor_plan, "%d compiled plans pass, the floor is %d", plan_pass,
           floor_plan);
    CHECKF(plan_fail == 0, "%d compiled plans disagree with ONNX's outputs", plan_fail);
    pare_onnx_case_list_free(names, n);
    return 1;
}

static void body_onnx_conformance_node(void)
{
    conformance(ONNX_DATA "/node", 94, 86);
}

static void body_onnx_conformance_pytorch_converted(void)
{
    conformance(ONNX_DATA "/pytorch-converted", 44, 44);
}

/* ---- op mappings --------------------------------------------------------------------- */

static void body_onnx_import_conv_bn_pool(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 4, 9, 9}, dw[] = {8, 2, 3, 3}, d8[] = {8};
    mb_input(b, "x", 4, dx);
    mb_init_f(b, "W", 4, dw, NULL);
    mb_init_f(b, "B", 1, d8, NULL);
    float scale[8], bias[8], mean[8], var[8];
    for (int k = 0; k < 8; k++) {
        scale[k] = 1.0f + 0.1f * (float)k;
        bias[k] = 0.05f * (float)k;
        mean[k] = -0.1f * (float)k;
        var[k] = 0.5f + (float)k;
    }
    mb_init_f(b, "bn.scale", 1, d8, scale);
    mb_init_f(b, "bn.bias", 1, d8, bias);
    mb_init_f(b, "bn.mean", 1, d8, mean);
    mb_init_f(b, "bn.var", 1, d8, var);
    Onnx__NodeProto *c = mb_node(b, "Conv", "c1", "x,W,B", "c");
    mb_attr_i(b, c, "group", 2);
    mb_attr_ints(b, c, "pads", 4, (int64_t[]){1, 0, 2, 1});
    mb_attr_ints(b, c, "strides", 2, (int64_t[]){2, 1});
    mb_attr_ints(b, c, "dilations", 2, (int64_t[]){1, 2});
    mb_attr_ints(b, c, "kernel_shape", 2, (int64_t[]){3, 3});
    Onnx__NodeProto *bn = mb_node(b, "BatchNormalization", "bn", "c,bn.scale,bn.bias,bn.mean,bn.var", "n");
    mb_attr_f(b, bn, "epsilon", 1e-3f);
    mb_attr_f(b, bn, "momentum", 0.8f);
    mb_node(b, "Relu", "r", "n", "r");
    Onnx__NodeProto *mp = mb_node(b, "MaxPool", "mp", "r", "m");
    mb_attr_ints(b, mp, "kernel_shape", 2, (int64_t[]){2, 2});
    mb_attr_ints(b, mp, "strides", 2, (int64_t[]){2, 2});
    mb_attr_i(b, mp, "ceil_mode", 1);
    Onnx__NodeProto *ap = mb_node(b, "AveragePool", "ap", "m", "a");
    mb_attr_ints(b, ap, "kernel_shape", 2, (int64_t[]){3, 3});
    mb_attr_ints(b, ap, "pads", 4, (int64_t[]){1, 1, 1, 1});
    mb_attr_i(b, ap, "count_include_pad", 1);
    mb_node(b, "GlobalAveragePool", "gap", "a", "g");
    mb_node(b, "Flatten", "fl", "g", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        /* The flatten of an 8x1x1 value changes nothing, so it makes no layer. */
        CHECKF(!strcmp(ops_of(g), "input conv2d batchnorm relu maxpool avgpool global_avgpool"),
               "ops: %s", ops_of(g));
        const pare_attrs *a = &g->nodes[1].a;
        CHECK(a->kernel[0] == 3 && a->kernel[1] == 3 && a->stride[0] == 2 && a->stride[1] == 1);
        CHECK(a->dilation[0] == 1 && a->dilation[1] == 2 && a->groups == 2 && a->out_channels == 8);
        CHECK(a->pad[0] == 1 && a->pad[1] == 0 && a->pad[2] == 2 && a->pad[3] == 1 && a->bias);
        pare_shape s = g->nodes[1].out;
        CHECKF(s.c == 8 && s.h == 5 && s.w == 6, "conv output %dx%dx%d", s.c, s.h, s.w);
        const pare_param *w = param_named(g, "W");
        CHECK(w && w->t->n == 144 && w->t->data[5] == 0.1f * 5 - 1.0f && w->role == PARE_ROLE_WEIGHT);
        CHECK(param_named(g, "B") && param_named(g, "bn.var") && param_named(g, "bn.mean"));
        const pare_param *v = param_named(g, "bn.var");
        CHECK(v && v->t->data[3] == 3.5f && v->role == PARE_ROLE_BN_VAR && !v->trainable);
        CHECK_NEAR(g->nodes[2].a.eps, 1e-3, 1e-9);
        CHECK_NEAR(g->nodes[2].a.momentum, 0.2, 1e-6); /* ONNX 0.8 is PyTorch's 0.2 */
        CHECK(g->nodes[4].a.ceil_mode == 1);
        CHECKF(g->nodes[4].out.h == 3 && g->nodes[4].out.w == 3, "maxpool %dx%d", g->nodes[4].out.h,
               g->nodes[4].out.w);
        CHECK(g->nodes[5].a.count_include_pad == 1 && g->nodes[5].a.pad[0] == 1);
        int oc, oh, ow;
        pare_graph_output_shape(g, &oc, &oh, &ow);
        CHECK(oc == 8 && oh == 1 && ow == 1);
        float x[2 * 4 * 81], y[16];
        pare_test_fill(x, sizeof x / sizeof x[0], -1, 1, 3);
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        for (int k = 0; k < 16; k++)
            CHECK(isfinite(y[k]));
    }
    pare_graph_free(g);
    mb_free(b);

    /* 1-d: a conv and a pool over (N, C, L) run with a height of 1. */
    b = mb_new(11);
    static const int64_t dx1[] = {-1, 3, 10}, dw1[] = {4, 3, 3};
    mb_input(b, "x", 3, dx1);
    mb_init_f(b, "w1", 3, dw1, NULL);
    c = mb_node(b, "Conv", "conv1d", "x,w1", "c");
    mb_attr_ints(b, c, "pads", 2, (int64_t[]){1, 2});
    mb_attr_ints(b, c, "strides", 1, (int64_t[]){2});
    ap = mb_node(b, "AveragePool", "pool1d", "c", "p");
    mb_attr_ints(b, ap, "kernel_shape", 1, (int64_t[]){3});
    mb_attr_ints(b, ap, "strides", 1, (int64_t[]){2});
    mb_attr_s(b, ap, "auto_pad", "SAME_UPPER");
    c = mb_node(b, "Conv", "same_lower", "p,w2", "y");
    mb_attr_s(b, c, "auto_pad", "SAME_LOWER");
    mb_init_f(b, "w2", 3, (int64_t[]){2, 4, 2}, NULL);
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        const pare_attrs *a = &g->nodes[1].a;
        CHECK(a->kernel[0] == 1 && a->kernel[1] == 3 && a->stride[0] == 1 && a->stride[1] == 2);
        CHECK(a->pad[0] == 0 && a->pad[1] == 1 && a->pad[2] == 0 && a->pad[3] == 2 && !a->bias);
        CHECK(g->nodes[1].out.h == 1 && g->nodes[1].out.w == 6);
        const pare_param *w = param_named(g, "w1");
        CHECK(w && w->t->ndim == 4 && w->t->dims[2] == 1 && w->t->dims[3] == 3);
        /* SAME_UPPER: 6 -> 3 with stride 2 needs one more value, at the end. */
        a = &g->nodes[2].a;
        CHECK(a->pad[1] == 0 && a->pad[3] == 1 && g->nodes[2].out.w == 3);
        /* SAME_LOWER, kernel 2, stride 1: the extra value goes first. */
        a = &g->nodes[3].a;
        CHECK(a->pad[1] == 1 && a->pad[3] == 0 && g->nodes[3].out.w == 3);
    }
    pare_graph_free(g);
    mb_free(b);
}

static void body_onnx_import_gemm_matmul(void)
{
    /* Gemm with alpha, beta, a scalar C and B as [out, in]. */
    mb *b = mb_new(11);
    mb_input(b, "x", 2, D_N6);
    mb_init_f(b, "B", 2, (int64_t[]){4, 6}, NULL);
    mb_init_f(b, "C", 1, (int64_t[]){1}, (float[]){0.5f});
    Onnx__NodeProto *nd = mb_node(b, "Gemm", "fc", "x,B,C", "y");
    mb_attr_i(b, nd, "transB", 1);
    mb_attr_f(b, nd, "alpha", 2.0f);
    mb_attr_f(b, nd, "beta", 3.0f);
    mb_output(b, "y");
    pare_graph *g = NULL;
    float x[18], y[12], want[12];
    pare_test_fill(x, 18, -1, 1, 5);
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input linear"), "ops: %s", ops_of(g));
        CHECK_OK(pare_graph_forward(g, x, 3, y, 1));
        for (int n = 0; n < 3; n++)
            for (int o = 0; o < 4; o++) {
                double s = 1.5;
                for (int k = 0; k < 6; k++)
                    s += 2.0 * x[n * 6 + k] * (0.1 * (o * 6 + k) - 1.0);
                want[n * 4 + o] = (float)s;
            }
        CHECKF(max_diff(y, want, 12) < 1e-5, "gemm differs by %g", max_diff(y, want, 12));
        CHECK(param_named(g, "B") && param_named(g, "C"));
    }
    pare_graph_free(g);
    mb_free(b);

    /* MatMul by [in, out] then Add of a vector: one linear layer with that bias. */
    b = mb_new(13);
    mb_input(b, "x", 2, D_N6);
    mb_init_f(b, "W", 2, (int64_t[]){6, 4}, NULL);
    mb_init_f(b, "bias", 1, (int64_t[]){4}, (float[]){1, 2, 3, 4});
    mb_node(b, "MatMul", "mm", "x,W", "h");
    mb_node(b, "Add", "add", "h,bias", "y");
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input linear"), "ops: %s", ops_of(g));
        const pare_param *w = param_named(g, "W"), *bb = param_named(g, "bias");
        CHECK(w && bb && w->t->dims[0] == 4 && w->t->dims[1] == 6 && bb->t->data[2] == 3.0f);
        /* W^T: weight[o][k] = W[k][o] */
        CHECK(w && w->t->data[1 * 6 + 2] == 0.1f * (2 * 4 + 1) - 1.0f);
        CHECK_OK(pare_graph_forward(g, x, 3, y, 1));
        for (int n = 0; n < 3; n++)
            for (int o = 0; o < 4; o++) {
                double s = o + 1;
                for (int k = 0; k < 6; k++)
                    s += x[n * 6 + k] * (0.1 * (k * 4 + o) - 1.0);
                want[n * 4 + o] = (float)s;
            }
        CHECK(max_diff(y, want, 12) < 1e-5);
    }
    pare_graph_free(g);
    mb_free(b);

    /* A bias with the batch in it, and a transposed A: both refused with a reason. */
    b = mb_new(13);
    mb_input(b, "x", 2, (int64_t[]){2, 6});
    mb_init_f(b, "W", 2, (int64_t[]){6, 4}, NULL);
    mb_init_f(b, "bias", 2, (int64_t[]){2, 4}, NULL);
    mb_node(b, "MatMul", "mm", "x,W", "h");
    mb_node(b, "Add", "add", "h,bias", "y");
    mb_output(b, "y");
    g = NULL;
    CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "varies along the batch axis") != NULL);
    CHECK(g == NULL);
    mb_free(b);
    b = mb_new(13);
    mb_input(b, "x", 2, D_N6);
    mb_init_f(b, "B", 2, (int64_t[]){6, 4}, NULL);
    nd = mb_node(b, "Gemm", "g", "x,B", "y");
    mb_attr_i(b, nd, "transA", 1);
    mb_output(b, "y");
    CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "Gemm (node 'g', opset 13): it transposes A") != NULL);
    mb_free(b);
}

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

static void body_onnx_import_activations(void)
{
    mb *b = mb_new(14);
    static const int64_t dx[] = {-1, 3, 2, 2};
    mb_input(b, "x", 4, dx);
    mb_node(b, "Relu", "relu", "x", "a");
    Onnx__NodeProto *nd = mb_node(b, "LeakyRelu", "leaky", "x", "b");
    mb_attr_f(b, nd, "alpha", 0.2f);
    mb_node(b, "Add", "ab", "a,b", "c");
    mb_node(b, "Sigmoid", "sig", "c", "d");
    nd = mb_node(b, "HardSigmoid", "hsig", "x", "e");
    mb_attr_f(b, nd, "alpha", 0.3f);
    mb_attr_f(b, nd, "beta", 0.4f);
    mb_node(b, "HardSwish", "hswish", "x", "f");
    mb_init_f(b, "lo", 0, NULL, (float[]){-0.5f});
    mb_init_f(b, "hi", 0, NULL, (float[]){0.7f});
    mb_node(b, "Clip", "clip", "f,lo,hi", "h");
    mb_node(b, "Mul", "de", "d,e", "i");
    mb_node(b, "Add", "ih", "i,h", "j");
    nd = mb_node(b, "Softmax", "sm", "j", "k");
    mb_attr_i(b, nd, "axis", 1);
    mb_init_f(b, "ratio", 0, NULL, (float[]){0.3f});
    mb_node(b, "Dropout", "drop", "k,ratio", "l");
    mb_node(b, "Identity", "id", "l", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input relu leakyrelu add sigmoid hardsigmoid hardswish clip mul "
                                  "add softmax dropout"),
               "ops: %s", ops_of(g));
        int k = node_of(g, PARE_OP_CLIP);
        CHECK(k > 0 && g->nodes[k].a.alpha == -0.5f && g->nodes[k].a.beta == 0.7f);
        k = node_of(g, PARE_OP_SOFTMAX);
        CHECK(k > 0 && g->nodes[k].a.axis == 0 && g->nodes[k].a.mode == 0);
        k = node_of(g, PARE_OP_DROPOUT);
        CHECK(k > 0 && fabsf(g->nodes[k].a.p - 0.3f) < 1e-7f);
        float x[24], y[24], want[24], j[24];
        pare_test_fill(x, 24, -4, 4, 9);
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        for (int i = 0; i < 24; i++) {
            float v = x[i];
            float c = (v > 0 ? v : 0) + (v >= 0 ? v : 0.2f * v);
            float e = fmaxf(0, fminf(1, 0.3f * v + 0.4f));
            float f = v * fmaxf(0, fminf(1, v / 6 + 0.5f));
            float h = fminf(fmaxf(f, -0.5f), 0.7f);
            j[i] = sigm(c) * e + h;
        }
        for (int n = 0; n < 2; n++)
            for (int p = 0; p < 4; p++) {
                double s = 0;
                for (int ch = 0; ch < 3; ch++)
                    s += exp(j[n * 12 + ch * 4 + p]);
                for (int ch = 0; ch < 3; ch++)
                    want[n * 12 + ch * 4 + p] = (float)(exp(j[n * 12 + ch * 4 + p]) / s);
            }
        CHECKF(max_diff(y, want, 24) < 1e-5, "activations differ by %g", max_diff(y, want, 24));
    }
    pare_graph_free(g);
    mb_free(b);

    /* Opset 9: Clip by attributes (0 and 6: relu6), Softmax over the flattened rest. */
    b = mb_new(9);
    mb_input(b, "x", 4, dx);
    nd = mb_node(b, "Clip", "c6", "x", "a");
    mb_attr_f(b, nd, "min", 0);
    mb_attr_f(b, nd, "max", 6);
    nd = mb_node(b, "Softmax", "sm", "a", "b");
    mb_attr_i(b, nd, "axis", 1);
    nd = mb_node(b, "Dropout", "d", "b", "y,mask");
    mb_attr_f(b, nd, "ratio", 0.25f);
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input relu6 softmax dropout"), "ops: %s", ops_of(g));
        CHECK(g->nodes[2].a.mode == 1 && g->nodes[2].a.axis == 0 && g->nodes[3].a.p == 0.25f);
    }
    pare_graph_free(g);
    mb_free(b);
}

static void body_onnx_import_broadcast_arithmetic(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 2, 3, 3};
    mb_input(b, "x", 4, dx);
    mb_init_f(b, "per_channel", 3, (int64_t[]){2, 1, 1}, (float[]){1, -1});
    mb_init_f(b, "per_row", 3, (int64_t[]){1, 3, 1}, (float[]){2, 3, 4});
    mb_init_f(b, "half", 0, NULL, (float[]){0.5f});
    mb_init_f(b, "per_col", 1, (int64_t[]){3}, (float[]){1, 2, 4});
    mb_node(b, "Add", "a", "x,per_channel", "a");
    mb_node(b, "Mul", "m", "per_row,a", "m");
    mb_node(b, "Sub", "s", "m,half", "s");
    mb_node(b, "Div", "d", "s,per_col", "d");
    mb_node(b, "Add", "e", "d,x", "e");
    mb_node(b, "Relu", "r", "x", "r");
    mb_node(b, "Mul", "f", "e,r", "f");
    mb_node(b, "Neg", "y", "f", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        const pare_param *c = param_named(g, "per_channel");
        CHECK(c && c->t->n == 2);
        int k = node_of(g, PARE_OP_CONST);
        CHECK(k > 0 && g->nodes[k].out.c == 2 && g->nodes[k].out.h == 1 && g->nodes[k].out.w == 1);
        float x[36], y[36], want[36];
        pare_test_fill(x, 36, -2, 2, 11);
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        static const float rowv[3] = {2, 3, 4}, colv[3] = {1, 2, 4};
        for (int i = 0; i < 36; i++) {
            int ch = (i / 9) % 2, row = (i / 3) % 3, col = i % 3;
            float a = x[i] + (ch ? -1.0f : 1.0f);
            float d = (a * rowv[row] - 0.5f) / colv[col];
            want[i] = -((d + x[i]) * (x[i] > 0 ? x[i] : 0));
        }
        CHECKF(max_diff(y, want, 36) < 1e-5, "arithmetic differs by %g", max_diff(y, want, 36));
    }
    pare_graph_free(g);
    mb_free(b);

    /* What does not map: a constant from which an activation is subtracted, one
     * varying along the batch axis, and two activations divided. */
    static const char *const ins[3] = {"half,x", "big,x", "x,x"};
    static const char *const ops[3] = {"Sub", "Add", "Div"};
    static const char *const want[3] = {"from or into a constant", "varies along the batch axis",
                                        "divides two activations"};
    for (int t = 0; t < 3; t++) {
        b = mb_new(13);
        mb_input(b, "x", 4, dx);
        mb_init_f(b, "half", 0, NULL, (float[]){0.5f});
        mb_init_f(b, "big", 4, (int64_t[]){2, 2, 3, 3}, NULL);
        mb_node(b, ops[t], "op", ins[t], "y");
        mb_output(b, "y");
        g = NULL;
        CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
        CHECKF(strstr(pare_last_error(), want[t]) != NULL, "%s: %s", ops[t], pare_last_error());
        mb_free(b);
    }
}

static void body_onnx_import_folding(void)
{
    /* x.view(x.size(0), -1) as PyTorch exports it, and constants computed from
     * the flattened width: the graph keeps only what touches the data. */
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 3, 4, 4};
    mb_input(b, "x", 4, dx);
    mb_node(b, "Shape", "shape", "x", "s");
    mb_const_i(b, "zero", -1, (int64_t[]){0});
    mb_node(b, "Gather", "gather", "s,zero", "n");
    mb_init_i(b, "axes0", 1, (int64_t[]){0});
    mb_node(b, "Unsqueeze", "unsq", "n,axes0", "n1");
    mb_const_i(b, "minus1", 1, (int64_t[]){-1});
    Onnx__NodeProto *nd = mb_node(b, "Concat", "cat", "n1,minus1", "target");
    mb_attr_i(b, nd, "axis", 0);
    mb_node(b, "Reshape", "flat", "x,target", "r");
    mb_node(b, "Shape", "shape2", "r", "s2");
    mb_const_i(b, "one", -1, (int64_t[]){1});
    mb_node(b, "Gather", "width", "s2,one", "w");
    mb_node(b, "Unsqueeze", "w1", "w,axes0", "w1");
    nd = mb_node(b, "ConstantOfShape", "halves", "w1", "halves");
    mb_attr_t(b, nd, "value", mb_tensor(b, "", 1, 1, (int64_t[]){1}, (float[]){0.5f}));
    mb_node(b, "Mul", "scale", "r,halves", "scaled");
    mb_const_i(b, "start", -1, (int64_t[]){0});
    mb_const_i(b, "step", -1, (int64_t[]){1});
    mb_node(b, "Range", "range", "start,w,step", "idx");
    nd = mb_node(b, "Cast", "cast", "idx", "idxf");
    mb_attr_i(b, nd, "to", 1);
    mb_init_i(b, "s0", 1, (int64_t[]){0});
    mb_init_i(b, "s1", 1, (int64_t[]){48});
    mb_node(b, "Slice", "slice", "idxf,s0,s1", "ramp");
    mb_init_f(b, "hundred", 0, NULL, (float[]){100.0f});
    mb_node(b, "Div", "div", "ramp,hundred", "ramp100");
    mb_node(b, "Add", "y", "scaled,ramp100", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input flatten const mul const add"), "ops: %s", ops_of(g));
        float x[3 * 48], y[3 * 48], want[3 * 48];
        pare_test_fill(x, 3 * 48, -1, 1, 13);
        for (int n = 1; n <= 3; n += 2) {
            CHECK_OK(pare_graph_forward(g, x, n, y, 1));
            for (int i = 0; i < 48 * n; i++)
                want[i] = 0.5f * x[i] + (float)(i % 48) / 100.0f;
            CHECK(max_diff(y, want, (size_t)(48 * n)) < 1e-6);
        }
    }
    pare_graph_free(g);
    mb_free(b);

    /* A fixed batch of 1 with a literal [1, -1]: any batch runs. */
    b = mb_new(13);
    mb_input(b, "x", 4, (int64_t[]){1, 3, 4, 4});
    mb_init_i(b, "t", 2, (int64_t[]){1, -1});
    mb_node(b, "Reshape", "flat", "x,t", "y");
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        float x[5 * 48], y[5 * 48];
        pare_test_fill(x, 5 * 48, -1, 1, 14);
        CHECK_OK(pare_graph_forward(g, x, 5, y, 1));
        CHECK(max_diff(x, y, 5 * 48) == 0);
    }
    pare_graph_free(g);
    mb_free(b);

    /* The batch size anywhere but first in a Reshape, or in arithmetic: refused. */
    for (int t = 0; t < 2; t++) {
        b = mb_new(13);
        mb_input(b, "x", 2, (int64_t[]){-1, 6});
        mb_node(b, "Shape", "shape", "x", "s");
        if (t == 0) {
            mb_init_i(b, "twice", 2, (int64_t[]){0, 0});
            mb_node(b, "Gather", "nn", "s,twice", "target");
        } else {
            mb_init_i(b, "two", 1, (int64_t[]){2});
            mb_node(b, "Mul", "double", "s,two", "target");
        }
        mb_node(b, "Reshape", "rs", "x,target", "y");
        mb_output(b, "y");
        g = NULL;
        CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
        CHECKF(strstr(pare_last_error(), t ? "computes with the batch size" : "batch size as dimension 1"),
               "%s", pare_last_error());
        mb_free(b);
    }
}

static void body_onnx_import_shuffle_transpose_pad_concat(void)
{
    /* ShuffleNet's channel shuffle, groups 2 of 3 channels. */
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 6, 2, 2};
    mb_input(b, "x", 4, dx);
    mb_init_i(b, "split", 5, (int64_t[]){0, 2, 3, 2, 2});
    mb_init_i(b, "join", 4, (int64_t[]){-1, 6, 2, 2});
    mb_node(b, "Reshape", "r1", "x,split", "a");
    Onnx__NodeProto *nd = mb_node(b, "Transpose", "t", "a", "b");
    mb_attr_ints(b, nd, "perm", 5, (int64_t[]){0, 2, 1, 3, 4});
    mb_node(b, "Reshape", "shuffle", "b,join", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    float x[2 * 24], y[2 * 24];
    pare_test_fill(x, 48, -1, 1, 17);
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input channel_shuffle"), "ops: %s", ops_of(g));
        CHECK(g->nodes[1].a.groups == 2);
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        int ok = 1;
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    ok &= !memcmp(y + n * 24 + (j * 2 + i) * 4, x + n * 24 + (i * 3 + j) * 4,
                                  4 * sizeof(float));
        CHECK(ok);
    }
    pare_graph_free(g);
    mb_free(b);

    /* A transpose that keeps the batch first; reflect padding; a channel concat. */
    b = mb_new(13);
    static const int64_t dt[] = {-1, 2, 3, 4};
    mb_input(b, "x", 4, dt);
    nd = mb_node(b, "Transpose", "t", "x", "t");
    mb_attr_ints(b, nd, "perm", 4, (int64_t[]){0, 3, 1, 2});
    mb_init_i(b, "pads", 8, (int64_t[]){0, 0, 1, 2, 0, 0, 1, 0});
    nd = mb_node(b, "Pad", "pad", "t,pads", "p");
    mb_attr_s(b, nd, "mode", "reflect");
    mb_node(b, "Relu", "r", "p", "r");
    nd = mb_node(b, "Concat", "cat", "p,r", "y");
    mb_attr_i(b, nd, "axis", 1);
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(ops_of(g), "input transpose pad relu concat"), "ops: %s", ops_of(g));
        const pare_attrs *a = &g->nodes[1].a;
        CHECK(a->perm[0] == 2 && a->perm[1] == 0 && a->perm[2] == 1);
        a = &g->nodes[2].a;
        CHECK(a->pad[0] == 1 && a->pad[1] == 2 && a->pad[2] == 1 && a->pad[3] == 0 && a->mode == 1);
        pare_shape s = g->nodes[4].out;
        CHECKF(s.c == 8 && s.h == 4 && s.w == 5, "concat %dx%dx%d", s.c, s.h, s.w);
        float in[24], out[160], want[160];
        pare_test_fill(in, 24, -1, 1, 19);
        CHECK_OK(pare_graph_forward(g, in, 1, out, 1));
        /* t[c][h][w] = x[h][w][c] (c < 4, h < 2, w < 3); padded 4x5 with reflection */
        for (int c = 0; c < 4; c++)
            for (int h = 0; h < 4; h++)
                for (int w = 0; w < 5; w++) {
                    int sh = h - 1, sw = w - 2;
                    sh = sh < 0 ? -sh : sh > 1 ? 2 - sh : sh;
                    sw = sw < 0 ? -sw : sw > 2 ? 4 - sw : sw;
                    float v = in[sh * 12 + sw * 4 + c];
                    want[c * 20 + h * 5 + w] = v;
                    want[80 + c * 20 + h * 5 + w] = v > 0 ? v : 0;
                }
        CHECKF(max_diff(out, want, 160) == 0, "differs by %g", max_diff(out, want, 160));
    }
    pare_graph_free(g);
    mb_free(b);

    /* Transposes, concats and pads across the batch or the channels are refused. */
    b = mb_new(13);
    mb_input(b, "x", 4, dt);
    nd = mb_node(b, "Transpose", "t", "x", "t");
    mb_attr_ints(b, nd, "perm", 4, (int64_t[]){1, 0, 2, 3});
    nd = mb_node(b, "Concat", "c", "x,x", "c");
    mb_attr_i(b, nd, "axis", 2);
    mb_init_i(b, "pads", 8, (int64_t[]){0, 1, 0, 0, 0, 0, 0, 0});
    mb_node(b, "Pad", "p", "x,pads", "y");
    mb_output(b, "y");
    g = NULL;
    CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
    const char *e = pare_last_error();
    CHECKF(strstr(e, "3 unsupported ops") && strstr(e, "moves the batch axis") &&
               strstr(e, "joins along axis 2") && strstr(e, "pads the channel axis"),
           "%s", e);
    mb_free(b);
}

/* ---- sparsity ------------------------------------------------------------------------- */

static void body_onnx_import_sparsity(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 4, 5, 5};
    mb_input(b, "x", 4, dx);
    float w24[8 * 36], wf[8 * 36], w48[8 * 36], wr[6 * 16], w5[6 * 16];
    pare_test_fill(w24, 8 * 36, 0.1f, 1, 21);
    memcpy(wf, w24, sizeof wf);
    memcpy(w48, w24, sizeof w48);
    for (int i = 0; i < 8 * 36; i++) {
        if (i % 4 >= 2)
            w24[i] = 0; /* 2 of every 4 along the input */
        if (i / 36 == 0 || i / 36 == 3)
            wf[i] = 0; /* whole filters */
        if (i % 8 >= 4)
            w48[i] = 0;
    }
    pare_test_fill(wr, 96, 0.1f, 1, 22);
    pare_test_fill(w5, 96, 0.1f, 1, 23);
    for (int i = 0; i < 96; i++) {
        if ((i * 37) % 10 < 3 && i != 5)
            wr[i] = 0; /* about 30%, scattered */
        if (i % 25 == 0)
            w5[i] = 0; /* 4 of 96 */
    }
    static const int64_t dw[] = {8, 4, 3, 3};
    mb_init_f(b, "w24", 4, dw, w24);
    mb_init_f(b, "wf", 4, dw, wf);
    mb_init_f(b, "w48", 4, dw, w48);
    mb_init_f(b, "wr", 2, (int64_t[]){8, 12}, wr);
    mb_init_f(b, "w5", 2, (int64_t[]){8, 12}, w5);
    mb_node(b, "Conv", "c1", "x,w24", "c1");
    mb_node(b, "Conv", "c2", "x,wf", "c2");
    mb_node(b, "Conv", "c3", "x,w48", "c3");
    mb_node(b, "Add", "s1", "c1,c2", "s1");
    mb_node(b, "Add", "s2", "s1,c3", "s2");
    mb_node(b, "GlobalAveragePool", "gap", "s2", "p");
    mb_node(b, "Flatten", "fl", "p", "f");
    mb_node(b, "Gemm", "fc1", "f,wr", "h");
    mb_node(b, "Relu", "r2", "h", "h1");
    Onnx__NodeProto *nd = mb_node(b, "Gemm", "fc2", "h1,w5", "y");
    mb_attr_i(b, nd, "transB", 1);
    mb_output(b, "y");
    /* the exporter's record wins over what the zeros would suggest (block:1x4) */
    mb_meta(b, "pare.scheme.w48", "block:1x2");
    mb_meta(b, "pare.meta.norm.mean", "0.5");
    mb_meta(b, "other", "ignored");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        static const char *const names[4] = {"w24", "wf", "w48", "wr"};
        static const char *const schemes[4] = {"2:4", "filter", "block:1x2", "unstructured"};
        for (int k = 0; k < 4; k++) {
            const pare_param *p = param_named(g, names[k]);
            CHECKF(p && p->mask && p->scheme && !strcmp(p->scheme, schemes[k]), "%s: scheme %s",
                   names[k], p && p->scheme ? p->scheme : "none");
            int same = p && p->mask;
            for (size_t i = 0; same && i < p->t->n; i++)
                same = p->mask[i] == (p->t->data[i] != 0.0f);
            CHECKF(same, "%s: the mask is not the nonzeros", names[k]);
        }
        const pare_param *p = param_named(g, "w5");
        CHECK(p && !p->mask && !p->scheme);
        CHECK(pare_graph_meta_get(g, "norm.mean") && !strcmp(pare_graph_meta_get(g, "norm.mean"), "0.5"));
        CHECK(!pare_graph_meta_get(g, "other"));
        CHECK(!strcmp(pare_graph_name(g), "test"));
        /* What the import makes, the .pare format keeps. */
        const char *path = pare_test_path("sparse.pare");
        CHECK_OK(pare_graph_save(g, path));
        pare_graph *h = NULL;
        CHECK_OK(pare_graph_load(path, &h));
        if (h) {
            const pare_param *q = param_named(h, "w24");
            CHECK(q && q->mask && q->scheme && !strcmp(q->scheme, "2:4"));
            float x[100], y1[8], y2[8];
            pare_test_fill(x, 100, -1, 1, 24);
            CHECK_OK(pare_graph_forward(g, x, 1, y1, 1));
            CHECK_OK(pare_graph_forward(h, x, 1, y2, 1));
            CHECK(!memcmp(y1, y2, sizeof y1));
        }
        pare_graph_free(h);
    }
    pare_graph_free(g);
    mb_free(b);
}

/* ---- bad input ----------------------------------------------------------------------- */

static void body_onnx_import_lists_unsupported_ops(void)
{
    mb *b = mb_new(13);
    mb_input(b, "x", 2, D_N4);
    mb_node(b, "LSTM", "lstm_1", "x", "a");
    mb_node(b, "Relu", "after_lstm", "a", "a1");
    mb_node(b, "Einsum", "e", "x", "b");
    mb_node(b, "Tanh", "t1", "x", "c");
    mb_node(b, "Tanh", "t2", "x", "d");
    Onnx__NodeProto *nd = mb_node(b, "Softmax", "s0", "x", "s");
    mb_attr_i(b, nd, "axis", 0);
    nd = mb_node(b, "FusedConv", "fc", "x", "f");
    nd->domain = mb_str(b, "com.microsoft");
    mb_node(b, "Relu", "y", "x", "y");
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
    const char *e = pare_last_error();
    CHECKF(strstr(e, "test.onnx: 5 unsupported ops: ") == e, "%s", e);
    CHECKF(strstr(e, "LSTM (node 'lstm_1', opset 13)"), "%s", e);
    CHECKF(strstr(e, "Einsum (node 'e', opset 13)"), "%s", e);
    CHECKF(strstr(e, "Tanh (node 't1' and 1 more like it, opset 13)"), "%s", e);
    CHECKF(strstr(e, "Softmax (node 's0', opset 13): it runs along the batch axis"), "%s", e);
    CHECKF(strstr(e, "FusedConv (node 'fc', opset 13): its domain 'com.microsoft'"), "%s", e);
    CHECKF(!strstr(e, "after_lstm"), "a node behind an unsupported one is listed: %s", e);
    CHECK(g == NULL);
    mb_free(b);
}

/* A small valid model: conv, relu, flatten, gemm. */
static mb *small_model(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 2, 4, 4};
    mb_input(b, "x", 4, dx);
    mb_init_f(b, "W", 4, (int64_t[]){3, 2, 3, 3}, NULL);
    mb_init_f(b, "B", 1, (int64_t[]){3}, NULL);
    mb_init_f(b, "fcw", 2, (int64_t[]){5, 12}, NULL);
    mb_node(b, "Conv", "conv", "x,W,B", "c");
    mb_node(b, "Relu", "relu", "c", "r");
    mb_node(b, "Flatten", "flat", "r", "f");
    Onnx__NodeProto *nd = mb_node(b, "Gemm", "fc", "f,fcw", "y");
    mb_attr_i(b, nd, "transB", 1);
    mb_output(b, "y");
    return b;
}

/* Loads a model changed by `edit`; expects status and a phrase. */
static void expect_refused(void (*edit)(mb *), pare_status want, const char *phrase)
{
    mb *b = small_model();
    edit(b);
    pare_graph *g = NULL;
    pare_status s = mb_load(b, &g);
    CHECKF(s == want, "%s: status %s, wanted %s (%s)", phrase, pare_status_name(s),
           pare_status_name(want), pare_last_error());
    CHECKF(strstr(pare_last_error(), phrase) != NULL, "wanted '%s' in: %s", phrase,
           pare_last_error());
    CHECK(g == NULL);
    pare_graph_free(g);
    mb_free(b);
}

static void e_opset5(mb *b) { b->opset.version = 5; }
static void e_opset18(mb *b) { b->opset.version = 18; }
static void e_no_opset(mb *b) { b->model.n_opset_import = 0; }
static void e_ir2(mb *b) { b->model.ir_version = 2; }
static void e_no_graph(mb *b) { b->model.graph = NULL; }
static void e_two_inputs(mb *b) { mb_input(b, "z", 2, D_N4); }
static void e_two_outputs(mb *b) { mb_output(b, "c"); }
static void e_raw_short(mb *b)
{
    Onnx__TensorProto *t = b->init[1];
    t->n_float_data = 0;
    t->has_raw_data = 1;
    t->raw_data.len = 8;
    t->raw_data.data = mb_mem(b, 8);
}
static void e_count(mb *b) { b->init[0]->n_float_data = 53; }
static void e_negative_dim(mb *b) { b->init[1]->dims[0] = -3; }
static void e_huge_dims(mb *b)
{
    b->init[2]->dims[0] = (int64_t)1 << 40;
    b->init[2]->dims[1] = (int64_t)1 << 40;
}
static void e_float16(mb *b) { b->init[0]->data_type = 10; }
static void e_undefined(mb *b) { b->node[1]->input[0] = mb_str(b, "nothing"); }
static void e_twice(mb *b) { b->node[1]->output[0] = mb_str(b, "c"); }
static void e_attr_type(mb *b) { mb_attr_f(b, b->node[0], "group", 1.0f); }
static void e_no_output_node(mb *b) { b->out[0]->name = mb_str(b, "nowhere"); }
static void e_symbolic_height(mb *b)
{
    b->in[0]->type->tensor_type->shape->dim[2]->value_case =
        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    b->in[0]->type->tensor_type->shape->dim[2]->dim_param = mb_str(b, "H");
}
static void e_int_input(mb *b) { b->in[0]->type->tensor_type->elem_type = 7; }
static void e_external_in_memory(mb *b)
{
    Onnx__TensorProto *t = b->init[1];
    t->n_float_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    t->n_external_data = 1;
    t->external_data = mb_mem(b, sizeof *t->external_data);
    t->external_data[0] = mb_mem(b, sizeof **t->external_data);
    onnx__string_string_entry_proto__init(t->external_data[0]);
    t->external_data[0]->key = mb_str(b, "location");
    t->external_data[0]->value = mb_str(b, "w.bin");
}

static void body_onnx_import_refuses_bad_models(void)
{
    expect_refused(e_opset5, PARE_EUNSUPPORTED, "opset 5 of the default ONNX domain");
    expect_refused(e_opset18, PARE_EUNSUPPORTED, "opset 18");
    expect_refused(e_no_opset, PARE_EFORMAT, "imports no opset");
    expect_refused(e_ir2, PARE_EUNSUPPORTED, "IR version 2");
    expect_refused(e_no_graph, PARE_EFORMAT, "holds no graph");
    expect_refused(e_two_inputs, PARE_EUNSUPPORTED, "2 inputs ('x', 'z')");
    expect_refused(e_two_outputs, PARE_EUNSUPPORTED, "2 outputs ('y', 'c')");
    expect_refused(e_raw_short, PARE_EFORMAT, "initializer 'B' has 8 bytes of data, but its dims say 3 values");
    expect_refused(e_count, PARE_EFORMAT, "initializer 'W' has 53 values, but its dims say 54");
    expect_refused(e_negative_dim, PARE_EFORMAT, "negative dimension");
    expect_refused(e_huge_dims, PARE_EFORMAT, "initializer 'fcw'");
    expect_refused(e_float16, PARE_EUNSUPPORTED, "initializer 'W' is FLOAT16");
    expect_refused(e_undefined, PARE_EFORMAT, "reads 'nothing', which no earlier node");
    expect_refused(e_twice, PARE_EFORMAT, "its output 'c' is produced earlier too");
    expect_refused(e_attr_type, PARE_EFORMAT, "attribute 'group' is not an integer");
    expect_refused(e_no_output_node, PARE_EFORMAT, "the output 'nowhere' is produced by no node");
    expect_refused(e_symbolic_height, PARE_EUNSUPPORTED, "symbolic or unknown size along axis 2");
    expect_refused(e_int_input, PARE_EUNSUPPORTED, "input 'x' is INT64");
    expect_refused(e_external_in_memory, PARE_EUNSUPPORTED, "needs the model's folder");

    /* Not ONNX at all, and nothing. */
    pare_graph *g = NULL;
    static const char text[] = "this is a text file, not an ONNX model\n";
    CHECK_STATUS(pare_onnx_decode((const uint8_t *)text, sizeof text - 1, "t.onnx", NULL, NULL, &g),
                 PARE_EFORMAT);
    CHECK(strstr(pare_last_error(), "t.onnx is not an ONNX model") != NULL && !g);
    CHECK_STATUS(pare_onnx_decode((const uint8_t *)"", 0, "e.onnx", NULL, NULL, &g), PARE_EFORMAT);
    CHECK(strstr(pare_last_error(), "e.onnx is empty") != NULL);
    CHECK_STATUS(pare_onnx_load(pare_test_path("missing.onnx"), &g), PARE_ENOTFOUND);

    /* A float16 initializer nobody reads is no obstacle. */
    mb *b = small_model();
    mb_init_f(b, "unused", 1, (int64_t[]){2}, NULL)->data_type = 10;
    CHECK_OK(mb_load(b, &g));
    pare_graph_free(g);
    mb_free(b);
}

/* Subgraphs inside attributes, nested `depth` times. */
static mb *nested_model(int depth)
{
    mb *b = mb_new(13);
    mb_input(b, "x", 2, D_N4);
    mb_node(b, "Relu", "y", "x", "y");
    mb_output(b, "y");
    Onnx__NodeProto *nd = mb_node(b, "If", "if", "x", "z");
    for (int k = 0; k < depth; k++) {
        Onnx__AttributeProto *a = mb_attr(b, nd, "then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
        Onnx__GraphProto *sub = mb_mem(b, sizeof *sub);
        onnx__graph_proto__init(sub);
        sub->node = mb_mem(b, sizeof *sub->node);
        nd = mb_mem(b, sizeof *nd);
        onnx__node_proto__init(nd);
        nd->op_type = mb_str(b, "If");
        nd->attribute = mb_mem(b, sizeof *nd->attribute * 2);
        sub->node[0] = nd;
        sub->n_node = 1;
        a->g = sub;
    }
    return b;
}

static void body_onnx_import_refuses_deep_nesting(void)
{
    pare_graph *g = NULL;
    mb *b = nested_model(5);
    CHECK_STATUS(mb_load(b, &g), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "If (node 'if', opset 13)") != NULL);
    mb_free(b);
    /* Each level is a graph, a node and an attribute: 40 levels nest 120 messages. */
    b = nested_model(40);
    CHECK_STATUS(mb_load(b, &g), PARE_EFORMAT);
    CHECK(strstr(pare_last_error(), "nests messages more than 100 deep") != NULL);
    mb_free(b);
}

static void body_onnx_import_truncation_and_damage(void)
{
    mb *b = small_model();
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    int loaded = 0, refused = 0;
    /* Every prefix: refused with a sentence, or (where a prefix happens to end
     * between fields) loaded whole; never a crash or a leak. */
    for (size_t n = 0; n <= len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        pare_graph *g = NULL;
        pare_status s = pare_onnx_decode(cut, n, "cut.onnx", NULL, NULL, &g);
        if (s == PARE_OK) {
            loaded++;
            CHECK(g != NULL);
        } else {
            refused++;
            CHECK(g == NULL && strstr(pare_last_error(), "cut.onnx") != NULL);
            CHECK(s == PARE_EFORMAT || s == PARE_EUNSUPPORTED);
        }
        pare_graph_free(g);
        free(cut);
    }
    CHECK(loaded >= 1 && refused > (int)len / 2);
    /* Every byte flipped. */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0xff;
        pare_graph *g = NULL;
        if (pare_onnx_decode(buf, len, "flip.onnx", NULL, NULL, &g) != PARE_OK)
            CHECK(g == NULL);
        pare_graph_free(g);
        buf[i] ^= 0xff;
    }
    free(buf);
    mb_free(b);
}

/* small_model with W's data in an external file described by (location, offset). */
static void write_external(const char *dir, const char *location, long offset, long length)
{
    mb *b = small_model();
    Onnx__TensorProto *t = b->init[0];
    t->n_float_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    t->n_external_data = 3;
    t->external_data = mb_mem(b, sizeof *t->external_data * 3);
    static const char *const keys[3] = {"location", "offset", "length"};
    char off[32], ln[32];
    snprintf(off, sizeof off, "%ld", offset);
    snprintf(ln, sizeof ln, "%ld", length);
    const char *vals[3] = {location, off, ln};
    for (int k = 0; k < 3; k++) {
        t->external_data[k] = mb_mem(b, sizeof **t->external_data);
        onnx__string_string_entry_proto__init(t->external_data[k]);
        t->external_data[k]->key = mb_str(b, keys[k]);
        t->external_data[k]->value = mb_str(b, vals[k]);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    mb_write(b, path);
    mb_free(b);
}

static void expect_external(const char *location, long offset, long length, pare_status want,
                            const char *phrase)
{
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s", pare_test_path("ext"));
    write_external(dir, location, offset, length);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    pare_graph *g = NULL;
    pare_status s = pare_onnx_load(path, &g);
    CHECKF(s == want, "%s: %s, wanted %s (%s)", location, pare_status_name(s),
           pare_status_name(want), pare_last_error());
    if (phrase)
        CHECKF(strstr(pare_last_error(), phrase) != NULL, "%s: wanted '%s' in: %s", location,
               phrase, pare_last_error());
    if (s == PARE_OK) {
        const pare_param *w = param_named(g, "W");
        CHECK(w && w->t->n == 54 && w->t->data[7] == 7.0f * 0.25f);
    }
    pare_graph_free(g);
}

static void body_onnx_import_external_data(void)
{
    char dir[1100], p[1200];
    snprintf(dir, sizeof dir, "%s", pare_test_path("ext"));
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
    float w[4 + 54];
    for (int k = 0; k < 58; k++)
        w[k] = (float)(k - 4) * 0.25f;
    snprintf(p, sizeof p, "%s/weights.bin", dir);
    CHECK_OK(pare_write_file_atomic(p, w, sizeof w));
    snprintf(p, sizeof p, "%s/sub/w.bin", dir);
    CHECK_OK(pare_write_file_atomic(p, w, sizeof w));
    CHECK_OK(pare_write_file_atomic(pare_test_path("outside.bin"), w, sizeof w));
    snprintf(p, sizeof p, "%s/link.bin", dir);
    CHECK(symlink("../outside.bin", p) == 0);
    expect_external("weights.bin", 16, 216, PARE_OK, NULL);
    expect_external("sub/w.bin", 16, 216, PARE_OK, NULL);
    expect_external("./sub/../weights.bin", 16, 216, PARE_EFORMAT, "not a relative path inside");
    expect_external("../outside.bin", 16, 216, PARE_EFORMAT, "not a relative path inside");
    expect_external("/etc/passwd", 0, 216, PARE_EFORMAT, "not a relative path inside");
    expect_external("link.bin", 16, 216, PARE_EFORMAT, "lies outside the model's folder");
    expect_external("weights.bin", 40, 216, PARE_EFORMAT, "runs past the end");
    expect_external("weights.bin", 16, 200, PARE_EFORMAT, "disagrees with its dims");
    expect_external("nosuch.bin", 0, 216, PARE_EFORMAT, "cannot open its external data");
}

static void body_onnx_import_names(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 2, 4, 4};
    mb_input(b, "x", 4, dx);
    mb_init_f(b, "W", 4, (int64_t[]){2, 2, 1, 1}, NULL);
    mb_node(b, "Conv", "a\001b\nc", "x,W", "c1");
    mb_node(b, "Conv", "a\001b\nc", "c1,W", "c2");
    mb_node(b, "Relu", "", "c2", "out:relu");
    mb_output(b, "out:relu");
    b->graph.name = mb_str(b, "my\tmodel");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        CHECKF(!strcmp(g->nodes[1].name, "a_b_c") && !strcmp(g->nodes[2].name, "a_b_c_2"),
               "%s, %s", g->nodes[1].name, g->nodes[2].name);
        CHECK(!strcmp(g->nodes[3].name, "out:relu"));
        CHECK(param_named(g, "W") && param_named(g, "W_2"));
        CHECK(!strcmp(pare_graph_name(g), "my_model"));
        const char *path = pare_test_path("names.pare");
        CHECK_OK(pare_graph_save(g, path));
        pare_graph *h = NULL;
        CHECK_OK(pare_graph_load(path, &h));
        pare_graph_free(h);
    }
    pare_graph_free(g);
    mb_free(b);

    /* A model that computes nothing still gives a graph with a layer. */
    b = mb_new(13);
    mb_input(b, "x", 2, D_N4);
    mb_node(b, "Identity", "id", "x", "y");
    mb_output(b, "y");
    g = NULL;
    CHECK_OK(mb_load(b, &g));
    if (g) {
        float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        CHECK(!memcmp(x, y, sizeof x));
    }
    pare_graph_free(g);
    mb_free(b);
}

static void body_onnx_tensor_files(void)
{
    Onnx__TensorProto t;
    onnx__tensor_proto__init(&t);
    int64_t dims[2] = {2, 3};
    float v[6] = {1, 2, 3, 4, 5, 6};
    t.n_dims = 2;
    t.dims = dims;
    t.has_data_type = 1;
    t.data_type = 1;
    t.n_float_data = 6;
    t.float_data = v;
    t.name = (char *)"input";
    size_t len = onnx__tensor_proto__get_packed_size(&t);
    uint8_t *buf = malloc(len);
    onnx__tensor_proto__pack(&t, buf);
    const char *path = pare_test_path("t.pb");
    CHECK_OK(pare_write_file_atomic(path, buf, len));
    pare_onnx_tensor *r = NULL;
    CHECK_OK(pare_onnx_tensor_read(path, &r));
    CHECK(r && r->rank == 2 && r->dims[1] == 3 && r->n == 6 && r->f[4] == 5.0f);
    CHECK(r && r->name && !strcmp(r->name, "input"));
    pare_onnx_tensor_free(r);
    t.data_type = 11; /* DOUBLE */
    onnx__tensor_proto__pack(&t, buf);
    CHECK_OK(pare_write_file_atomic(path, buf, len));
    CHECK_STATUS(pare_onnx_tensor_read(path, &r), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "DOUBLE") != NULL && r == NULL);
    CHECK_OK(pare_write_file_atomic(path, buf, len / 2));
    CHECK_STATUS(pare_onnx_tensor_read(path, &r), PARE_EFORMAT);
    free(buf);
}

/* ---- the command line ------------------------------------------------------------------ */

static int run_pare(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("PARE_BIN");
    char cmd[4096], o[1100], e[1100];
    snprintf(o, sizeof o, "%s", pare_test_path("cli.out"));
    snprintf(e, sizeof e, "%s", pare_test_path("cli.err"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", pare_test_dir(), bin, args, o, e);
    int st = system(cmd);
    FILE *f = fopen(o, "rb");
    size_t n = f ? fread(out, 1, cap / 2 - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
    f = fopen(e, "rb");
    size_t m = f ? fread(out + n + 1, 1, cap / 2 - 1, f) : 0;
    out[n + 1 + m] = 0;
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *err_of(const char *out) { return out + strlen(out) + 1; }

static void write_tensor(const char *path, int rank, int64_t *dims, float *v)
{
    Onnx__TensorProto t;
    onnx__tensor_proto__init(&t);
    size_t n = 1;
    for (int k = 0; k < rank; k++)
        n *= (size_t)dims[k];
    t.n_dims = (size_t)rank;
    t.dims = dims;
    t.has_data_type = 1;
    t.data_type = 1;
    t.n_float_data = n;
    t.float_data = v;
    size_t len = onnx__tensor_proto__get_packed_size(&t);
    uint8_t *buf = malloc(len);
    onnx__tensor_proto__pack(&t, buf);
    CHECK_OK(pare_write_file_atomic(path, buf, len));
    free(buf);
}

/* A backend-test folder for Relu; wrong: its expected output is off. */
static void write_case(const char *name, int wrong)
{
    char dir[1200], p[1300];
    snprintf(dir, sizeof dir, "%s/%s", pare_test_path("suite"), name);
    mkdir(pare_test_path("suite"), 0755);
    mkdir(dir, 0755);
    mb *b = mb_new(13);
    mb_input(b, "x", 2, (int64_t[]){-1, 3});
    mb_node(b, "Relu", "r", "x", "y");
    mb_output(b, "y");
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    mb_write(b, p);
    mb_free(b);
    snprintf(p, sizeof p, "%s/test_data_set_0", dir);
    mkdir(p, 0755);
    float x[6] = {-1, 2, -3, 4, 0.5f, -0.25f}, y[6];
    for (int k = 0; k < 6; k++)
        y[k] = x[k] > 0 ? x[k] : 0;
    if (wrong)
        y[3] += 0.1f;
    int64_t dims[2] = {2, 3};
    snprintf(p, sizeof p, "%s/test_data_set_0/input_0.pb", dir);
    write_tensor(p, 2, dims, x);
    snprintf(p, sizeof p, "%s/test_data_set_0/output_0.pb", dir);
    write_tensor(p, 2, dims, y);
}

static void body_onnx_cli_convert(void)
{
    if (!getenv("PARE_BIN")) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    static char out[65536];
    mb *b = small_model();
    mb_write(b, pare_test_path("m.onnx"));
    mb_free(b);
    int code = run_pare("convert m.onnx m.pare", out, sizeof out);
    CHECKF(code == 0, "convert: %d %s", code, err_of(out));
    CHECKF(strstr(out, "m.onnx -> m.pare: 5 layers, 117 parameters, no sparse layers"), "%s", out);
    CHECK(pare_file_exists(pare_test_path("m.pare")));
    code = run_pare("info m.pare", out, sizeof out);
    CHECK(code == 0 && strstr(out, "conv") && strstr(out, "fc"));
    code = run_pare("convert m.onnx m.txt", out, sizeof out);
    CHECK(code == 2 && strstr(err_of(out), "pare convert: cannot tell which way"));
    CHECK_OK(pare_write_file_atomic(pare_test_path("bad.onnx"), "not a model", 11));
    code = run_pare("convert bad.onnx never.pare", out, sizeof out);
    CHECK(code == 1 && strstr(err_of(out), "bad.onnx is not an ONNX model"));
    CHECK(!pare_file_exists(pare_test_path("never.pare")));
    b = mb_new(13);
    mb_input(b, "x", 2, D_N4);
    mb_node(b, "LSTM", "lstm", "x", "y");
    mb_output(b, "y");
    mb_write(b, pare_test_path("lstm.onnx"));
    mb_free(b);
    code = run_pare("convert lstm.onnx never.pare", out, sizeof out);
    CHECK(code == 1 && strstr(err_of(out), "1 unsupported op: LSTM (node 'lstm', opset 13)"));
    CHECK(!pare_file_exists(pare_test_path("never.pare")));
    /* The other way is the exporter's: whole or nothing. */
    code = run_pare("convert m.pare back.onnx", out, sizeof out);
    CHECK(code == 0 ? pare_file_exists(pare_test_path("back.onnx"))
                    : !pare_file_exists(pare_test_path("back.onnx")));
}

static void body_onnx_cli_check(void)
{
    if (!getenv("PARE_BIN"))
        return;
    static char out[65536];
    write_case("test_relu", 0);
    int code = run_pare("onnx-check suite", out, sizeof out);
    CHECKF(code == 0, "onnx-check: %d %s %s", code, out, err_of(out));
    CHECK(strstr(out, "test_relu") && strstr(out, "pass") && strstr(out, "suite: 1 passed, 0 failed"));
    write_case("test_relu_wrong", 1);
    code = run_pare("onnx-check suite --json", out, sizeof out);
    CHECK(code == 1 && strstr(out, "\"result\": \"fail\"") && strstr(out, "\"failed\": 1"));
    code = run_pare("onnx-check suite/test_relu_wrong", out, sizeof out);
    CHECK(code == 1 && strstr(out, "FAIL 0.1"));
    code = run_pare("onnx-check suite --failures", out, sizeof out);
    CHECK(code == 1 && strstr(out, "test_relu_wrong") && !strstr(out, "test_relu  "));
    code = run_pare("onnx-check nosuch", out, sizeof out);
    CHECK(code == 1 && strstr(err_of(out), "pare onnx-check: ") && strstr(err_of(out), "nosuch"));
    code = run_pare("onnx-check", out, sizeof out);
    CHECK(code == 2);
}


/* ---- quantized (QDQ) models ------------------------------------------------------------ */

/* An int8, uint8 or int32 initializer (raw little-endian data); rank 0 is a scalar. */
static Onnx__TensorProto *mb_init_q(mb *b, const char *name, int dtype, int rank,
                                    const int64_t *dims, const int32_t *v)
{
    Onnx__TensorProto *t = mb_mem(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = mb_str(b, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)rank;
    t->dims = mb_mem(b, sizeof(int64_t) * (size_t)(rank ? rank : 1));
    size_t n = 1, es = dtype == 6 ? 4 : 1;
    for (int k = 0; k < rank; k++) {
        t->dims[k] = dims[k];
        n *= (size_t)dims[k];
    }
    uint8_t *raw = mb_mem(b, n * es);
    for (size_t k = 0; k < n; k++) {
        uint32_t u = (uint32_t)v[k];
        for (size_t j = 0; j < es; j++)
            raw[k * es + j] = (uint8_t)(u >> (8 * j));
    }
    t->has_raw_data = 1;
    t->raw_data.len = n * es;
    t->raw_data.data = raw;
    b->init[b->graph.n_initializer++] = t;
    return t;
}

static void mb_scalar_f(mb *b, const char *name, float v) { mb_init_f(b, name, 0, NULL, &v); }

static void mb_scalar_q(mb *b, const char *name, int dtype, int32_t v)
{
    mb_init_q(b, name, dtype, 0, NULL, &v);
}

/* ONNX's QuantizeLinear then DequantizeLinear on one value (codes in [lo, hi]). */
static float qdq_ref(float x, float s, int zp, int lo, int hi)
{
    float q = rintf(x / s) + (float)zp;
    q = q < (float)lo ? (float)lo : q > (float)hi ? (float)hi : q;
    return s * (float)((int)q - zp);
}

static int fq_is(const pare_graph *g, const char *name, float alpha, int beta, int bits)
{
    int i = pare_graph_find_node(g, name);
    if (i < 0 || g->nodes[i].op != PARE_OP_FAKEQUANT)
        return 0;
    const pare_attrs *a = &g->nodes[i].a;
    return !memcmp(&a->alpha, &alpha, sizeof alpha) && a->beta == (float)beta && a->mode == bits;
}

/* Every prefix of a QDQ model and every byte changed two ways: a status with
 * a sentence, or a graph that runs; never a crash (the sanitizer build says). */
static void qdq_damage(mb *b)
{
    size_t len;
    uint8_t *buf = mb_pack(b, &len);
    int loaded = 0;
    float x[64] = {0}, y[4096];
    for (size_t k = 0; k < 64; k++)
        x[k] = 0.1f * (float)k - 3.0f;
    for (size_t i = 0; i <= 2 * len; i++) {
        if (i > len)
            buf[i - len - 1] ^= i % 2 ? 0x01 : 0xff;
        pare_graph *g = NULL;
        pare_status s = pare_onnx_decode(buf, i < len ? i : len, "d.onnx", NULL, NULL, &g);
        if (s == PARE_OK) {
            int c, h, w;
            pare_graph_input_shape(g, &c, &h, &w);
            pare_graph_output_shape(g, &c, &h, &w);
            loaded++;
            if ((size_t)c * h * w <= 2048 && pare_graph_forward(g, x, 1, y, 1) != PARE_OK)
                CHECK(pare_last_error()[0] != 0);
        } else {
            CHECK(g == NULL && strstr(pare_last_error(), "d.onnx") && !strchr(pare_last_error(), '\n'));
        }
        pare_graph_free(g);
        if (i > len)
            buf[i - len - 1] ^= i % 2 ? 0x01 : 0xff;
    }
    CHECK(loaded >= 1);
    free(buf);
}

/* input -> Q/DQ (uint8) -> Gemm with a per-channel int8 weight and an int32 bias. */
static void qdq_gemm_case(void)
{
    mb *b = mb_new(13);
    static const int64_t d3[] = {3}, dw[] = {3, 4};
    const float xs = 0.05f, ws[3] = {0.01f, 0.02f, 0.5f};
    const int32_t wc[12] = {-127, 0, 5, 127, 1, -2, 3, -4, 100, -100, 50, -50},
                  bc[3] = {1000, -2000, 30}, z3[3] = {0, 0, 0};
    float bs[3];
    for (int o = 0; o < 3; o++)
        bs[o] = xs * ws[o];
    mb_input(b, "x", 2, D_N4);
    mb_scalar_f(b, "xs", xs);
    mb_scalar_q(b, "xz", 2, 10);
    mb_init_q(b, "Wq", 3, 2, dw, wc);
    mb_init_f(b, "ws", 1, d3, ws);
    mb_init_q(b, "wz", 3, 1, d3, z3);
    mb_init_q(b, "Bq", 6, 1, d3, bc);
    mb_init_f(b, "bs", 1, d3, bs);
    mb_node(b, "QuantizeLinear", "q", "x,xs,xz", "xq");
    mb_node(b, "DequantizeLinear", "fq", "xq,xs,xz", "xd");
    mb_attr_i(b, mb_node(b, "DequantizeLinear", "wdq", "Wq,ws,wz", "W"), "axis", 0);
    mb_attr_i(b, mb_node(b, "DequantizeLinear", "bdq", "Bq,bs", "B"), "axis", 0);
    mb_attr_i(b, mb_node(b, "Gemm", "fc", "xd,W,B", "y"), "transB", 1);
    mb_output(b, "y");
    qdq_damage(b);
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    mb_free(b);
    if (!g)
        return;
    CHECKF(!strcmp(ops_of(g), "input fakequant linear"), "ops: %s", ops_of(g));
    CHECK(fq_is(g, "fq", xs, 10, 8));
    const pare_param *w = param_named(g, "W"), *bias = param_named(g, "B");
    CHECK(w && w->q.bits == 8 && w->q.scheme == 2 && w->q.axis == 0 && w->q.n == 3 &&
          !memcmp(w->q.scale, ws, sizeof ws) && !w->q.zero_point[0] && !w->q.zero_point[2]);
    CHECK(bias && bias->q.bits == 32 && bias->q.scheme == 2 && bias->q.n == 3 &&
          !memcmp(bias->q.scale, bs, sizeof bs));
    for (int k = 0; w && k < 12; k++)
        CHECK(w->t->data[k] == ws[k / 4] * (float)wc[k]);
    for (int o = 0; bias && o < 3; o++)
        CHECK(bias->t->data[o] == bs[o] * (float)bc[o]);
    /* Values past both ends of the codes, ties, and ordinary ones. */
    float x[20] = {-1.0f, 0.025f, 0.075f, -0.025f, 13.0f, -0.6f, 0.3f, 0.0f, 0.124f, 7.0f,
                   -7.0f, 0.5f,   -0.51f, 1.0f,    2.0f,  0.0251f, -0.4f, 0.9f, 0.11f, -0.2f};
    float y[15];
    CHECK_OK(pare_graph_forward(g, x, 5, y, 1));
    double worst = 0;
    for (int n = 0; n < 5; n++)
        for (int o = 0; o < 3; o++) {
            double r = bs[o] * (float)bc[o];
            for (int k = 0; k < 4; k++)
                r += (double)(ws[o] * (float)wc[o * 4 + k]) * qdq_ref(x[n * 4 + k], xs, 10, 0, 255);
            worst = fmax(worst, fabs(r - y[n * 3 + o]));
        }
    CHECKF(worst <= 1e-5, "the graph differs from ONNX's QDQ arithmetic by %g", worst);
    pare_graph_free(g);
}

/* int8 zero points, a Clip of the codes (PyTorch's 7-bit range) and a Clip of
 * the floats on the grid (pare's export of 4 bits): three fake quantizations,
 * no clip layer. */
static void qdq_ranges_case(void)
{
    mb *b = mb_new(13);
    mb_input(b, "x", 2, D_N6);
    mb_scalar_f(b, "s1", 0.1f);
    mb_scalar_q(b, "z1", 3, -3);
    mb_scalar_f(b, "s2", 0.2f);
    mb_scalar_q(b, "z2", 2, 5);
    mb_scalar_q(b, "lo2", 2, 0);
    mb_scalar_q(b, "hi2", 2, 127);
    mb_scalar_f(b, "s3", 0.25f);
    mb_scalar_q(b, "z3", 2, 3);
    mb_scalar_f(b, "lo3", 0.25f * (float)(0 - 3));
    mb_scalar_f(b, "hi3", 0.25f * (float)(15 - 3));
    mb_node(b, "QuantizeLinear", "q1", "x,s1,z1", "c1");
    mb_node(b, "DequantizeLinear", "a", "c1,s1,z1", "a");
    mb_node(b, "QuantizeLinear", "q2", "a,s2,z2", "c2");
    mb_node(b, "Clip", "clip2", "c2,lo2,hi2", "c2c");
    mb_node(b, "DequantizeLinear", "b", "c2c,s2,z2", "b");
    mb_node(b, "Clip", "clip3", "b,lo3,hi3", "b3");
    mb_node(b, "QuantizeLinear", "q3", "b3,s3,z3", "c3");
    mb_node(b, "DequantizeLinear", "c", "c3,s3,z3", "c");
    mb_output(b, "c");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    mb_free(b);
    if (!g)
        return;
    CHECKF(!strcmp(ops_of(g), "input fakequant fakequant fakequant"), "ops: %s", ops_of(g));
    CHECK(fq_is(g, "a", 0.1f, 125, 8));
    CHECK(fq_is(g, "b", 0.2f, 5, 7));
    CHECK(fq_is(g, "c", 0.25f, 3, 4));
    float x[18], y[18];
    for (int k = 0; k < 18; k++)
        x[k] = -14.0f + 1.73f * (float)k;
    x[3] = 0.05f; /* a tie */
    CHECK_OK(pare_graph_forward(g, x, 3, y, 1));
    double worst = 0;
    for (int k = 0; k < 18; k++) {
        float v = qdq_ref(x[k], 0.1f, -3, -128, 127);
        v = qdq_ref(v, 0.2f, 5, 0, 127);
        v = fminf(fmaxf(v, 0.25f * (float)(0 - 3)), 0.25f * (float)(15 - 3));
        v = qdq_ref(v, 0.25f, 3, 0, 255);
        worst = fmax(worst, fabs((double)v - y[k]));
    }
    CHECKF(worst == 0, "the fake quantizations differ from ONNX's by %g", worst);
    pare_graph_free(g);
}

/* PyTorch's QAT order, a fakequant then a ReLU then a Flatten, comes in as
 * ReLU, Flatten, fakequant (exact: 0 is a code), so the layers around run in
 * int8; a fakequant with another reader stays where it is. */
static void qdq_relu_flatten_case(void)
{
    static const int64_t dx[] = {-1, 2, 3, 3};
    for (int shared = 0; shared <= 1; shared++) {
        mb *b = mb_new(13);
        mb_input(b, "x", 4, dx);
        mb_scalar_f(b, "s", 0.1f);
        mb_scalar_q(b, "z", 3, -3);
        mb_node(b, "QuantizeLinear", "q", "x,s,z", "c");
        mb_node(b, "DequantizeLinear", "fq", "c,s,z", "d");
        mb_node(b, "Relu", "r", "d", "r");
        if (shared) {
            mb_node(b, "Add", "add", "r,d", "y");
        } else {
            mb_node(b, "Flatten", "fl", "r", "y");
        }
        mb_output(b, "y");
        pare_graph *g = NULL;
        CHECK_OK(mb_load(b, &g));
        mb_free(b);
        if (!g)
            continue;
        const char *want = shared ? "input fakequant relu add" : "input relu flatten fakequant";
        CHECKF(!strcmp(ops_of(g), want), "ops: %s, not %s", ops_of(g), want);
        CHECK(fq_is(g, "fq", 0.1f, 125, 8));
        float x[36], y[36];
        for (int k = 0; k < 36; k++)
            x[k] = -1.9f + 0.11f * (float)k;
        x[5] = 0.05f; /* a tie */
        x[6] = -0.0f;
        CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
        int same = 1;
        for (int k = 0; k < 36; k++) {
            float d = qdq_ref(x[k], 0.1f, -3, -128, 127), r = d < 0.0f ? 0.0f : d, want_y = shared ? r + d : r;
            same &= !memcmp(&want_y, &y[k], sizeof want_y);
        }
        CHECKF(same, "%s: the outputs differ from ONNX's arithmetic", want);
        pare_graph_free(g);
    }
}

/* MatMul by a [K, M] weight quantized along axis 1 (the outputs) with the Add
 * of an int32 bias: pare's weight is [M, K], quantized along axis 0. A weight
 * quantized per tensor is scheme 1. A code of -128 (PyTorch's per-channel
 * weights have them) is pare's too; a zero point is not: that weight keeps
 * its values and comes in as float. */
static void qdq_matmul_case(void)
{
    for (int variant = 0; variant < 4; variant++) {
        mb *b = mb_new(13);
        static const int64_t d3[] = {3}, dw[] = {4, 3};
        const float ws[3] = {0.5f, 0.25f, 0.125f};
        int32_t wc[12] = {1, 2, 3, -4, -5, -6, 7, 8, 9, 127, -127, 0}, z3[3] = {0, 0, 0};
        if (variant == 2)
            wc[4] = -128;
        if (variant == 3)
            z3[1] = 1;
        const int32_t bc[3] = {4, -8, 16};
        mb_input(b, "x", 2, D_N4);
        mb_init_q(b, "Wq", 3, 2, dw, wc);
        if (variant == 1) {
            mb_scalar_f(b, "ws", 0.5f);
            mb_scalar_q(b, "wz", 3, 0);
        } else {
            mb_init_f(b, "ws", 1, d3, ws);
            mb_init_q(b, "wz", 3, 1, d3, z3);
        }
        mb_init_q(b, "Bq", 6, 1, d3, bc);
        mb_init_f(b, "bs", 1, d3, ws);
        mb_attr_i(b, mb_node(b, "DequantizeLinear", "wdq", "Wq,ws,wz", "W"), "axis", 1);
        mb_attr_i(b, mb_node(b, "DequantizeLinear", "bdq", "Bq,bs", "B"), "axis", 0);
        mb_node(b, "MatMul", "mm", "x,W", "p");
        mb_node(b, "Add", "add", "p,B", "y");
        mb_output(b, "y");
        pare_graph *g = NULL;
        CHECK_OK(mb_load(b, &g));
        mb_free(b);
        if (!g)
            continue;
        CHECKF(!strcmp(ops_of(g), "input linear"), "ops: %s", ops_of(g));
        const pare_param *w = param_named(g, "W"), *bias = param_named(g, "B");
        if (!w || !bias)
            continue;
        for (int o = 0; o < 3; o++)
            for (int k = 0; k < 4; k++)
                CHECK(w->t->data[o * 4 + k] == (variant == 1 ? 0.5f : ws[o]) * (float)(wc[k * 3 + o] - z3[o]));
        if (variant == 0 || variant == 2)
            CHECK(w->q.bits == 8 && w->q.scheme == 2 && w->q.axis == 0 && w->q.n == 3 &&
                  !memcmp(w->q.scale, ws, sizeof ws));
        if (variant == 2)
            CHECK(w->t->data[1 * 4 + 1] == -128.0f * ws[1] && pare_quant_on_grid(w) == 1);
        if (variant == 1)
            CHECK(w->q.bits == 8 && w->q.scheme == 1 && w->q.n == 1 && w->q.scale[0] == 0.5f);
        if (variant == 3)
            CHECK(w->q.bits == 0 && w->q.scheme == 0);
        CHECK(bias->q.bits == 32 && bias->q.scheme == 2 && bias->t->data[1] == -8.0f * 0.25f);
        pare_graph_free(g);
    }
}

/* A lone DequantizeLinear of uint8 model input, per channel: (x - zp) * s, as
 * ONNX's backend test test_dequantizelinear_axis has it. */
static void qdq_input_case(void)
{
    mb *b = mb_new(13);
    static const int64_t dx[] = {-1, 3, 2, 2}, d3[] = {3};
    const float s[3] = {2.0f, 4.0f, 0.5f};
    const int32_t z[3] = {84, 24, 196};
    b->in[b->graph.n_input++] = mb_value(b, "x", 2, 4, dx);
    mb_init_f(b, "s", 1, d3, s);
    mb_init_q(b, "z", 2, 1, d3, z);
    mb_attr_i(b, mb_node(b, "DequantizeLinear", "dq", "x,s,z", "y"), "axis", 1);
    mb_output(b, "y");
    pare_graph *g = NULL;
    CHECK_OK(mb_load(b, &g));
    mb_free(b);
    if (!g)
        return;
    float x[24], y[24];
    for (int k = 0; k < 24; k++)
        x[k] = (float)((k * 37) % 256);
    CHECK_OK(pare_graph_forward(g, x, 2, y, 1));
    int ok = 1;
    for (int k = 0; k < 24; k++)
        ok &= y[k] == (x[k] - (float)z[(k / 4) % 3]) * s[(k / 4) % 3];
    CHECK(ok);
    pare_graph_free(g);
}

/* Opset 10's forms: per tensor only. */
static void qdq_opset10_case(void)
{
    for (int per_axis = 0; per_axis < 2; per_axis++) {
        mb *b = mb_new(10);
        static const int64_t d3[] = {3}, dw[] = {3, 4};
        const float ws[3] = {0.5f, 0.25f, 0.125f};
        const int32_t wc[12] = {1, 2, 3, -4, -5, -6, 7, 8, 9, 127, -127, 0};
        mb_input(b, "x", 2, D_N4);
        mb_scalar_f(b, "xs", 0.5f);
        mb_scalar_q(b, "xz", 2, 128);
        mb_init_q(b, "Wq", 3, 2, dw, wc);
        if (per_axis)
            mb_init_f(b, "ws", 1, d3, ws);
        else
            mb_scalar_f(b, "ws", 0.5f);
        mb_node(b, "QuantizeLinear", "q", "x,xs,xz", "xq");
        mb_node(b, "DequantizeLinear", "fq", "xq,xs,xz", "xd");
        mb_node(b, "DequantizeLinear", "wdq", "Wq,ws", "W");
        mb_attr_i(b, mb_node(b, "Gemm", "fc", "xd,W", "y"), "transB", 1);
        mb_output(b, "y");
        pare_graph *g = NULL;
        pare_status s = mb_load(b, &g);
        mb_free(b);
        if (!per_axis) {
            CHECK_OK(s);
            CHECK(g && fq_is(g, "fq", 0.5f, 128, 8));
            const pare_param *w = g ? param_named(g, "W") : NULL;
            CHECK(w && w->q.bits == 8 && w->q.scheme == 1);
        } else {
            CHECK_STATUS(s, PARE_EFORMAT);
            CHECKF(strstr(pare_last_error(), "node 'wdq' (DequantizeLinear)") &&
                       strstr(pare_last_error(), "needs opset 13"),
                   "%s", pare_last_error());
        }
        pare_graph_free(g);
    }
}

/* One model per refusal: x [N, 4] -> Q -> DQ -> output, edited. */
static mb *qdq_model(int opset)
{
    mb *b = mb_new(opset);
    mb_input(b, "x", 2, D_N4);
    mb_scalar_f(b, "s", 0.5f);
    mb_scalar_q(b, "z", 2, 7);
    mb_node(b, "QuantizeLinear", "q", "x,s,z", "c");
    mb_node(b, "DequantizeLinear", "dq", "c,s,z", "y");
    mb_output(b, "y");
    return b;
}

static void qdq_refused(mb *b, pare_status want, const char *node, const char *phrase)
{
    pare_graph *g = NULL;
    pare_status s = mb_load(b, &g);
    mb_free(b);
    CHECKF(s == want && !g, "%s: %s, wanted %s", phrase, pare_status_name(s), pare_status_name(want));
    const char *e = pare_last_error();
    CHECKF(strstr(e, node) && strstr(e, phrase) && !strchr(e, '\n'), "wanted %s and '%s': %s",
           node, phrase, e);
}

static void qdq_refusals_case(void)
{
    static const int64_t d4[] = {4};
    const float s4[4] = {0.5f, 0.5f, 0.25f, 0.25f};
    mb *b = mb_new(13);
    mb_input(b, "x", 2, D_N4);
    mb_scalar_q(b, "z", 2, 7);
    mb_node(b, "Relu", "r", "x", "sa");
    mb_node(b, "QuantizeLinear", "q", "x,sa,z", "c");
    mb_node(b, "DequantizeLinear", "dq", "c,sa,z", "y");
    mb_output(b, "y");
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'",
                "its scale 'sa' is computed from the input; pare needs it constant");
    b = mb_new(13);
    static const int64_t dw[] = {2, 4};
    const int32_t wc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mb_input(b, "x", 2, D_N4);
    mb_init_q(b, "Wq", 3, 2, dw, wc);
    mb_node(b, "Relu", "r", "x", "sa");
    mb_node(b, "DequantizeLinear", "wdq", "Wq,sa", "W");
    mb_attr_i(b, mb_node(b, "Gemm", "fc", "x,W", "y"), "transB", 1);
    mb_output(b, "y");
    qdq_refused(b, PARE_EUNSUPPORTED, "DequantizeLinear (node 'wdq'",
                "its scale 'sa' is computed from the input; pare needs it constant");
    b = qdq_model(13);
    mb_attr_i(b, b->node[0], "block_size", 2);
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "it quantizes in blocks");
    b = qdq_model(13);
    b->init[1]->data_type = 5; /* INT16 */
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "INT16");
    b = qdq_model(13);
    b->init[1]->data_type = 17; /* FLOAT8E4M3FN (opset 19) */
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "FLOAT8E4M3FN");
    b = qdq_model(13);
    mb_attr_i(b, b->node[0], "output_dtype", 5);
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "its output type is INT16");
    b = qdq_model(13);
    const int32_t z4[4] = {7, 7, 7, 7};
    b->init[0] = mb_tensor(b, "s", 1, 1, d4, s4);
    b->init[1] = mb_tensor(b, "z", 2, 1, d4, NULL);
    b->graph.n_initializer = 1;
    mb_init_q(b, "z", 2, 1, d4, z4);
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'",
                "quantizes an activation per channel");
    b = qdq_model(13);
    b->graph.n_node = 1;
    b->out[0]->name = mb_str(b, "c");
    qdq_refused(b, PARE_EUNSUPPORTED, "the output 'c'", "holds the integer codes");
    b = qdq_model(13);
    b->node[1]->op_type = mb_str(b, "Relu");
    b->node[1]->name = mb_str(b, "relu");
    b->node[1]->n_input = 1;
    qdq_refused(b, PARE_EUNSUPPORTED, "Relu (node 'relu'", "holds the integer codes");
    b = qdq_model(13);
    mb_scalar_f(b, "s2", 0.25f);
    b->node[1]->input[1] = mb_str(b, "s2");
    qdq_refused(b, PARE_EUNSUPPORTED, "DequantizeLinear (node 'dq'",
                "differs from those of the QuantizeLinear");
    b = qdq_model(13);
    b->node[1]->input[0] = mb_str(b, "x");
    qdq_refused(b, PARE_EUNSUPPORTED, "DequantizeLinear (node 'dq'", "its input is float32 data");
    b = qdq_model(9);
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "needs opset 10");
    b = qdq_model(13);
    mb_scalar_f(b, "neg", -0.5f);
    b->node[0]->input[1] = b->node[1]->input[1] = mb_str(b, "neg");
    qdq_refused(b, PARE_EUNSUPPORTED, "QuantizeLinear (node 'q'", "is not a positive number");
}

static void body_onnx_import_qdq(void)
{
    qdq_gemm_case();
    qdq_ranges_case();
    qdq_matmul_case();
    qdq_relu_flatten_case();
    qdq_input_case();
    qdq_opset10_case();
    qdq_refusals_case();
}

#endif

#ifdef PARE_ONNX
#define RUN(body) body()
#else
/* Built without protobuf-c: every ONNX entry point refuses with a sentence. */
static void without_protobuf(void)
{
    pare_graph *g = NULL;
    CHECK_STATUS(pare_onnx_load("model.onnx", &g), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "without protobuf-c") != NULL && g == NULL);
    CHECK_STATUS(pare_onnx_decode((const uint8_t *)"x", 1, "m", NULL, NULL, &g), PARE_EUNSUPPORTED);
}
#define RUN(body) without_protobuf()
#endif

PARE_TEST(onnx_conformance_node)
{
    RUN(body_onnx_conformance_node);
}

PARE_TEST(onnx_conformance_pytorch_converted)
{
    RUN(body_onnx_conformance_pytorch_converted);
}

PARE_TEST(onnx_import_conv_bn_pool)
{
    RUN(body_onnx_import_conv_bn_pool);
}

PARE_TEST(onnx_import_gemm_matmul)
{
    RUN(body_onnx_import_gemm_matmul);
}

PARE_TEST(onnx_import_activations)
{
    RUN(body_onnx_import_activations);
}

PARE_TEST(onnx_import_broadcast_arithmetic)
{
    RUN(body_onnx_import_broadcast_arithmetic);
}

PARE_TEST(onnx_import_folding)
{
    RUN(body_onnx_import_folding);
}

PARE_TEST(onnx_import_shuffle_transpose_pad_concat)
{
    RUN(body_onnx_import_shuffle_transpose_pad_concat);
}

PARE_TEST(onnx_import_sparsity)
{
    RUN(body_onnx_import_sparsity);
}

PARE_TEST(onnx_import_lists_unsupported_ops)
{
    RUN(body_onnx_import_lists_unsupported_ops);
}

PARE_TEST(onnx_import_refuses_bad_models)
{
    RUN(body_onnx_import_refuses_bad_models);
}

PARE_TEST(onnx_import_refuses_deep_nesting)
{
    RUN(body_onnx_import_refuses_deep_nesting);
}

PARE_TEST(onnx_import_truncation_and_damage)
{
    RUN(body_onnx_import_truncation_and_damage);
}

PARE_TEST(onnx_import_external_data)
{
    RUN(body_onnx_import_external_data);
}

PARE_TEST(onnx_import_qdq)
{
    RUN(body_onnx_import_qdq);
}

PARE_TEST(onnx_import_names)
{
    RUN(body_onnx_import_names);
}

PARE_TEST(onnx_tensor_files)
{
    RUN(body_onnx_tensor_files);
}

PARE_TEST(onnx_cli_convert)
{
    RUN(body_onnx_cli_convert);
}

PARE_TEST(onnx_cli_check)
{
    RUN(body_onnx_cli_check);
}
