/* The .pare file: exact round trips (zoo, masks, frozen, quantization, schemes, packed
 * tensors, extra sections), layout, sizes, and a sentence for every kind of damage
 * (cuts, flipped bits, edited fields). */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/bytes.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "io/io.h"
#include "test.h"

/* ---- building graphs ----------------------------------------------------- */

/* Random bits in every parameter, with the awkward floats (signed zero,
 * infinities, NaN with a payload, subnormals) in the first one, so a round
 * trip that is exact here is exact for any data. */
static void scramble_params(pare_graph *g, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 3, 0, 0);
    for (int i = 0; i < g->n_params; i++) {
        pare_tensor *t = g->params[i].t;
        for (size_t k = 0; k < t->n; k++) {
            uint32_t u = (uint32_t)pare_rng_u64(&r);
            memcpy(&t->data[k], &u, 4);
        }
    }
    static const uint32_t odd[] = {0x80000000u, 0x7f800000u, 0xff800000u,
                                   0x7fc12345u, 0x00000001u, 0x807fffffu};
    pare_tensor *t = g->params[0].t;
    for (size_t k = 0; k < sizeof odd / sizeof odd[0] && k < t->n; k++)
        memcpy(&t->data[k], &odd[k], 4);
}

static pare_graph *zoo(const char *name, uint64_t seed)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build(name, 0, seed, &g));
    if (!g)
        return NULL;
    scramble_params(g, seed);
    CHECK_OK(pare_graph_meta_set(g, "source", "test_file.c"));
    CHECK_OK(pare_graph_meta_set(g, "empty", ""));
    const float mean[3] = {0.5f, 0.25f, 0.125f}, std[3] = {0.2f, 0.3f, 0.4f};
    CHECK_OK(pare_graph_norm_set(g, 3, mean, std));
    return g;
}

static void set_mask(pare_param *p, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 5, 0, 0);
    p->mask = malloc(p->t->n);
    for (size_t k = 0; k < p->t->n; k++)
        p->mask[k] = (uint8_t)(pare_rng_u64(&r) & 1);
}

static void set_quant(pare_param *p, int bits, int scheme, int axis, int n, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 6, 0, 0);
    p->q.bits = bits;
    p->q.scheme = scheme;
    p->q.axis = axis;
    p->q.n = n;
    p->q.scale = malloc(sizeof(float) * (size_t)n);
    p->q.zero_point = malloc(sizeof(int32_t) * (size_t)n);
    for (int k = 0; k < n; k++) {
        p->q.scale[k] = 0.001f + pare_rng_uniform(&r);
        p->q.zero_point[k] = (int32_t)pare_rng_below(&r, 256) - 128;
    }
}

static pare_param *param(pare_graph *g, const char *name)
{
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name))
            return &g->params[i];
    pare_test_fail(__FILE__, __LINE__, "no tensor %s", name);
    return NULL;
}

/* A small graph that uses every per-tensor feature: a masked, per-channel
 * quantized conv weight of 54 values (so the bitmap's last byte is partly
 * used), a frozen BN gamma, a per-tensor quantized linear weight. */
static pare_graph *tiny(void)
{
    pare_graph *g = pare_graph_new("tiny");
    int x = pare_graph_input(g, 2, 6, 6);
    x = pare_graph_conv2d(g, x, 3, 3, 1, 1, "conv");
    x = pare_graph_batchnorm(g, x, "bn");
    x = pare_graph_relu(g, x, "relu");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "pool");
    x = pare_graph_flatten(g, x, "flat");
    pare_graph_linear(g, x, 4, 1, "fc");
    CHECK_OK(pare_graph_status(g));
    scramble_params(g, 11);
    CHECK_OK(pare_graph_meta_set(g, "norm.mean", "0.5,0.5"));
    CHECK_OK(pare_graph_meta_set(g, "norm.std", "0.25,0.25"));
    pare_param *w = param(g, "conv.weight");
    set_mask(w, 1);
    set_quant(w, 8, 2, 0, 3, 2);
    param(g, "bn.gamma")->frozen = 1;
    set_quant(param(g, "fc.weight"), 4, 1, 0, 1, 3);
    return g;
}

/* ---- comparing graphs ---------------------------------------------------- */

static int same_str(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* Every field the file stores, bit for bit; returns the number of differences. */
static int graphs_differ(const pare_graph *a, const pare_graph *b)
{
    int bad = 0;
#define DIFF(c, ...)                                                                               \
    do {                                                                                           \
        if (c) {                                                                                   \
            bad++;                                                                                 \
            if (bad < 5)                                                                           \
                pare_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                   \
        }                                                                                          \
    } while (0)
    DIFF(!same_str(a->name, b->name), "graph names differ");
    DIFF(a->n_nodes != b->n_nodes, "%d layers became %d", a->n_nodes, b->n_nodes);
    DIFF(a->n_params != b->n_params, "%d tensors became %d", a->n_params, b->n_params);
    DIFF(a->output != b->output, "output %d became %d", a->output, b->output);
    DIFF(a->n_meta != b->n_meta, "%d meta entries became %d", a->n_meta, b->n_meta);
    if (bad)
        return bad;
    for (int i = 0; i < a->n_nodes; i++) {
        const pare_node *x = &a->nodes[i], *y = &b->nodes[i];
        DIFF(x->op != y->op || !same_str(x->name, y->name), "layer %d op or name differs", i);
        DIFF(x->out.c != y->out.c || x->out.h != y->out.h || x->out.w != y->out.w,
             "layer %s shape differs", x->name);
        DIFF(memcmp(&x->a, &y->a, sizeof x->a) != 0, "layer %s attributes differ", x->name);
        DIFF(x->n_in != y->n_in || x->n_param != y->n_param, "layer %s links differ", x->name);
        if (x->n_in == y->n_in)
            DIFF(memcmp(x->in, y->in, sizeof(int) * (size_t)x->n_in) != 0, "layer %s inputs differ",
                 x->name);
        if (x->n_param == y->n_param)
            DIFF(memcmp(x->param, y->param, sizeof(int) * (size_t)x->n_param) != 0,
                 "layer %s tensors differ", x->name);
    }
    for (int i = 0; i < a->n_params; i++) {
        const pare_param *x = &a->params[i], *y = &b->params[i];
        DIFF(!same_str(x->name, y->name) || x->node != y->node || x->role != y->role,
             "tensor %d name, layer or role differs", i);
        DIFF(x->trainable != y->trainable || x->frozen != y->frozen, "tensor %s flags differ",
             x->name);
        DIFF(x->t->ndim != y->t->ndim || x->t->n != y->t->n ||
                 memcmp(x->t->dims, y->t->dims, sizeof x->t->dims) != 0,
             "tensor %s shape differs", x->name);
        if (x->t->n == y->t->n)
            DIFF(memcmp(x->t->data, y->t->data, x->t->n * sizeof(float)) != 0,
                 "tensor %s values differ", x->name);
        DIFF(!x->mask != !y->mask, "tensor %s mask presence differs", x->name);
        if (x->mask && y->mask && x->t->n == y->t->n)
            for (size_t k = 0; k < x->t->n; k++)
                DIFF(!x->mask[k] != !y->mask[k], "tensor %s mask differs at %zu", x->name, k);
        DIFF(!x->scheme != !y->scheme || (x->scheme && y->scheme && strcmp(x->scheme, y->scheme)),
             "tensor %s scheme differs", x->name);
        DIFF(x->q.bits != y->q.bits || x->q.scheme != y->q.scheme || x->q.axis != y->q.axis ||
                 x->q.n != y->q.n,
             "tensor %s quantization differs", x->name);
        if (x->q.n == y->q.n && x->q.n > 0)
            DIFF(memcmp(x->q.scale, y->q.scale, sizeof(float) * (size_t)x->q.n) ||
                     memcmp(x->q.zero_point, y->q.zero_point, sizeof(int32_t) * (size_t)x->q.n),
                 "tensor %s scales or zero points differ", x->name);
    }
    for (int i = 0; i < a->n_meta; i++)
        DIFF(!same_str(a->meta[i].key, b->meta[i].key) ||
                 !same_str(a->meta[i].value, b->meta[i].value),
             "meta entry %d differs", i);
#undef DIFF
    return bad;
}

/* ---- reading the layout (the test knows FORMAT.md independently) --------- */

typedef struct fsec {
    size_t entry; /* file offset of the table entry */
    size_t off, size;
} fsec;

static int find_sec(const uint8_t *p, const char *tag, fsec *out)
{
    size_t toff = (size_t)pare_le64(p + 24), es = pare_le32(p + 36);
    uint32_t n = pare_le32(p + 32);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = p + toff + i * es;
        if (!memcmp(e, tag, 4)) {
            out->entry = toff + i * es;
            out->off = (size_t)pare_le64(e + 8);
            out->size = (size_t)pare_le64(e + 16);
            return 1;
        }
    }
    pare_test_fail(__FILE__, __LINE__, "no section %s", tag);
    return 0;
}

/* Recomputes every CRC (sections inside the file, the table, the header), so
 * an edit reaches the checks behind them. */
static void fix_crcs(uint8_t *p, size_t len)
{
    uint64_t toff = pare_le64(p + 24);
    uint32_t n = pare_le32(p + 32), es = pare_le32(p + 36);
    if (toff <= len && (uint64_t)n * es <= len - toff) {
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *e = p + toff + (size_t)i * es;
            uint64_t off = pare_le64(e + 8), size = pare_le64(e + 16);
            if (off <= len && size <= len - off)
                pare_put_le32(e + 24, pare_crc32(0, p + off, (size_t)size));
        }
        pare_put_le32(p + 40, pare_crc32(0, p + toff, (size_t)n * es));
    }
    pare_put_le32(p + 60, pare_crc32(0, p, 60));
}

static size_t skip_str(const uint8_t *p, size_t at)
{
    return at + 4 + pare_le32(p + at);
}

/* File offset of the body (after its length) of record k of GRPH or TENS. */
static size_t record(const uint8_t *p, const char *tag, int k)
{
    fsec s;
    if (!find_sec(p, tag, &s))
        return 0;
    size_t at = s.off + (!strcmp(tag, "GRPH") ? 8 : 4);
    for (int i = 0; i < k; i++)
        at += 4 + pare_le32(p + at);
    return at + 4;
}

typedef struct nfield {
    size_t op, name, out, n_in, ints;
} nfield;

static nfield node_fields(const uint8_t *p, int k)
{
    nfield f;
    f.op = record(p, "GRPH", k);
    f.name = skip_str(p, f.op);
    f.out = skip_str(p, f.name);
    f.n_in = f.out + 12;
    size_t n_param = f.n_in + 4 + 4 * pare_le32(p + f.n_in);
    f.ints = n_param + 4 + 4 * pare_le32(p + n_param);
    return f;
}

typedef struct tfield {
    size_t name, role, node, flags, dims, doff, dlen, menc, moff, mlen;
    size_t qbits, qscheme, qaxis, qn, soff, zoff, nattr;
    size_t attrs;             /* the first attribute's key */
    size_t enc, nzoff, nzlen; /* the 1.1 fields, when the record has them */
    size_t end;               /* the record's end */
} tfield;

static tfield tens_fields(const uint8_t *p, int k)
{
    tfield f;
    f.name = record(p, "TENS", k);
    f.role = skip_str(p, f.name);
    f.node = skip_str(p, f.role);
    f.flags = f.node + 4;
    f.dims = f.flags + 4;
    f.doff = f.dims + 4 * (size_t)p[f.flags + 3];
    f.dlen = f.doff + 8;
    f.menc = f.dlen + 8;
    f.moff = f.menc + 4;
    f.mlen = f.moff + 8;
    f.qbits = f.mlen + 8;
    f.qscheme = f.qbits + 4;
    f.qaxis = f.qscheme + 4;
    f.qn = f.qaxis + 4;
    f.soff = f.qn + 4;
    f.zoff = f.soff + 8;
    f.nattr = f.zoff + 8;
    f.attrs = f.nattr + 4;
    size_t at = f.attrs;
    for (uint32_t i = 0; i < pare_le32(p + f.nattr); i++)
        at = skip_str(p, skip_str(p, at));
    f.enc = at;
    f.nzoff = at + 4;
    f.nzlen = at + 12;
    f.end = f.name + pare_le32(p + f.name - 4);
    return f;
}

/* The data encoding of tensor k as stored: 0 (dense) when the record ends
 * after its attributes, as 1.0 records do. */
static uint32_t tens_enc(const uint8_t *p, int k)
{
    tfield f = tens_fields(p, k);
    return f.end >= f.enc + 20 ? pare_le32(p + f.enc) : 0;
}

static int tensor_index(const pare_graph *g, const char *name)
{
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name))
            return i;
    return -1;
}

/* ---- decoding expectations ----------------------------------------------- */

static void encode(const pare_graph *g, const pare_file_section *x, int n, uint8_t **buf,
                   size_t *len)
{
    *buf = NULL;
    *len = 0;
    CHECK_OK(pare_file_encode(g, x, n, buf, len));
}

/* The bytes must be refused with PARE_EFORMAT, nothing returned, and a
 * message that names the file and holds `want`. */
static void expect_reject_(const uint8_t *buf, size_t len, const char *want, const char *ctx,
                           int line)
{
    pare_graph *g = (pare_graph *)1;
    pare_file_extra x = {7, (pare_file_section *)1};
    pare_status s = pare_file_decode(buf, len, "m.pare", &g, &x);
    const char *m = pare_last_error();
    if (s != PARE_EFORMAT)
        pare_test_fail(__FILE__, line, "%s: got %s, wanted a format error (%s)", ctx,
                       pare_status_name(s), m);
    if (g != NULL || x.n != 0 || x.s != NULL)
        pare_test_fail(__FILE__, line, "%s: a refused file returned a graph or sections", ctx);
    if (strncmp(m, "m.pare: ", 8) != 0)
        pare_test_fail(__FILE__, line, "%s: the message '%s' does not name the file", ctx, m);
    if (want && !strstr(m, want))
        pare_test_fail(__FILE__, line, "%s: the message '%s' does not say '%s'", ctx, m, want);
    if (s == PARE_OK && g && g != (pare_graph *)1)
        pare_graph_free(g);
}
#define expect_reject(b, n, want, ctx) expect_reject_(b, n, want, ctx, __LINE__)

static pare_graph *decode_ok(const uint8_t *buf, size_t len, pare_file_extra *x)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_file_decode(buf, len, "m.pare", &g, x));
    return g;
}

/* A copy of a file with one edit applied and the CRCs fixed up. */
typedef struct edit {
    uint8_t *p;
    size_t len;
} edit;

static edit copy(const uint8_t *buf, size_t len)
{
    edit e = {malloc(len + 64), len};
    memcpy(e.p, buf, len);
    return e;
}

static void reject_fixed(edit e, const char *want, const char *ctx, int line)
{
    fix_crcs(e.p, e.len);
    expect_reject_(e.p, e.len, want, ctx, line);
    free(e.p);
}
#define REJECT(e, want) reject_fixed(e, want, #want, __LINE__)

/* ---- round trips ---------------------------------------------------------- */

static void roundtrip_zoo(const char *name)
{
    pare_graph *g = zoo(name, 42);
    if (!g)
        return;
    uint8_t *a, *b;
    size_t na, nb;
    encode(g, NULL, 0, &a, &na);
    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECKF(graphs_differ(g, h) == 0, "%s changed in a round trip", name);
        encode(h, NULL, 0, &b, &nb);
        CHECKF(nb == na && !memcmp(a, b, na), "%s: re-encoding the loaded graph changed bytes",
               name);
        free(b);
        pare_graph_free(h);
    }
    /* Same graph built again: same bytes (no clocks, no stray padding). */
    pare_graph *g2 = zoo(name, 42);
    encode(g2, NULL, 0, &b, &nb);
    CHECKF(nb == na && !memcmp(a, b, na), "%s: two builds gave different files", name);
    free(b);
    pare_graph_free(g2);
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_roundtrip_lenet)
{
    roundtrip_zoo("lenet");
}
PARE_TEST(file_roundtrip_fmnist_cnn)
{
    roundtrip_zoo("fmnist-cnn");
}
PARE_TEST(file_roundtrip_resnet20)
{
    roundtrip_zoo("resnet20");
}
PARE_TEST(file_roundtrip_vgg11_bn)
{
    roundtrip_zoo("vgg11-bn");
}
PARE_TEST(file_roundtrip_mobilenetv2)
{
    roundtrip_zoo("mobilenetv2");
}

PARE_TEST(file_roundtrip_masks_frozen_quant)
{
    pare_graph *g = tiny();
    uint8_t *a, *b;
    size_t na, nb;
    encode(g, NULL, 0, &a, &na);
    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        const pare_param *w = &h->params[tensor_index(h, "conv.weight")];
        CHECK(w->mask && w->q.n == 3 && w->q.scheme == 2 && w->q.bits == 8);
        CHECK(h->params[tensor_index(h, "bn.gamma")].frozen == 1);
        CHECK(h->params[tensor_index(h, "bn.beta")].frozen == 0);
        CHECK(h->params[tensor_index(h, "bn.running_mean")].trainable == 0);
        CHECK(h->params[tensor_index(h, "fc.weight")].q.n == 1);
        CHECK(h->params[tensor_index(h, "fc.bias")].mask == NULL);
        encode(h, NULL, 0, &b, &nb);
        CHECK(nb == na && !memcmp(a, b, na));
        free(b);
        pare_graph_free(h);
    }
    free(a);
    pare_graph_free(g);

    /* The same on a zoo model: masks on every conv and linear weight, a dense
     * all-ones mask (still a mask), frozen early layers. */
    g = zoo("lenet", 9);
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        if (p->role == PARE_ROLE_WEIGHT)
            set_mask(p, (uint64_t)i);
        if (p->node <= 2)
            p->frozen = 1;
    }
    memset(param(g, "fc3.weight")->mask, 1, param(g, "fc3.weight")->t->n);
    set_quant(param(g, "conv2.weight"), 8, 2, 0, 16, 4);
    encode(g, NULL, 0, &a, &na);
    h = decode_ok(a, na, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        pare_graph_free(h);
    }
    free(a);
    pare_graph_free(g);
}

/* Every op and attribute, a graph without tensors, an output that is not the
 * last layer, an empty graph name. */
PARE_TEST(file_roundtrip_small_graphs)
{
    pare_graph *g = pare_graph_new("");
    int x = pare_graph_input(g, 4, 8, 8);
    int a = pare_graph_relu6(g, x, "r6");
    int b = pare_graph_avgpool(g, a, 3, 1, 1, "avg");
    int c = pare_graph_add(g, a, b, "sum");
    int xs[3] = {c, x, a};
    int d = pare_graph_concat(g, xs, 3, "cat");
    pare_conv2d_desc cd = {0};
    cd.out_channels = 6;
    cd.kernel_h = 3;
    cd.kernel_w = 1;
    cd.stride_h = 2;
    cd.pad_top = 1;
    cd.pad_bottom = 2;
    cd.dilation_h = 2;
    cd.groups = 3;
    cd.no_bias = 1;
    int e = pare_graph_conv2d_ex(g, d, &cd, "grouped");
    e = pare_graph_batchnorm_ex(g, e, 1e-3f, 0.25f, "bn");
    int m = pare_graph_maxpool(g, e, 2, 2, 0, "mp");
    int gp = pare_graph_global_avgpool(g, m, "gap");
    int dr = pare_graph_dropout(g, gp, 0.375f, "drop");
    int f = pare_graph_flatten(g, dr, "flat");
    pare_graph_linear(g, f, 5, 0, "fc");
    CHECK_OK(pare_graph_set_output(g, m));
    CHECK_OK(pare_graph_status(g));
    g->nodes[m].a.ceil_mode = 1; /* same shape here, but stored all the same */
    scramble_params(g, 8);
    uint8_t *p1, *p2;
    size_t n1, n2;
    encode(g, NULL, 0, &p1, &n1);
    pare_graph *h = decode_ok(p1, n1, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        CHECK(h->output == m && h->nodes[m].a.ceil_mode == 1);
        encode(h, NULL, 0, &p2, &n2);
        CHECK(n1 == n2 && !memcmp(p1, p2, n1));
        free(p2);
        pare_graph_free(h);
    }
    free(p1);
    pare_graph_free(g);

    /* No tensors at all: an empty DATA section. */
    g = pare_graph_new("bare");
    x = pare_graph_input(g, 1, 2, 2);
    pare_graph_relu(g, x, "r");
    encode(g, NULL, 0, &p1, &n1);
    h = decode_ok(p1, n1, NULL);
    CHECK(h && h->n_params == 0 && graphs_differ(g, h) == 0);
    fsec data;
    if (p1 && find_sec(p1, "DATA", &data))
        CHECK(data.size == 0 && data.off == n1);
    pare_graph_free(h);
    free(p1);
    pare_graph_free(g);
}

/* A graph with every op format 1.2 added (and an add whose second input
 * broadcasts), their attributes set to values that are not the defaults. */
static pare_graph *onnx_ops_graph(void)
{
    pare_graph *g = pare_graph_new("onnx ops");
    int x = pare_graph_input(g, 4, 6, 5);
    int c = pare_graph_conv2d(g, x, 6, 3, 1, 1, "conv");
    int a = pare_graph_sigmoid(g, c, "sigmoid");
    a = pare_graph_hardsigmoid(g, a, 0.25f, 0.375f, "hardsigmoid");
    a = pare_graph_hardswish(g, a, "hardswish");
    a = pare_graph_leakyrelu(g, a, -0.0625f, "leakyrelu");
    a = pare_graph_clip(g, a, -0.5f, INFINITY, "clip");
    int k = pare_graph_const(g, 6, 1, 5, "k");
    a = pare_graph_mul(g, a, k, "mul");
    int k1 = pare_graph_const(g, 1, 1, 1, "k1");
    a = pare_graph_add(g, a, k1, "add.bcast");
    a = pare_graph_softmax(g, a, 1, 1, "softmax");
    a = pare_graph_channel_shuffle(g, a, 3, "shuffle");
    a = pare_graph_pad(g, a, (const int[4]){2, 1, 0, 3}, 1, 0.0f, "pad.reflect");
    a = pare_graph_pad(g, a, (const int[4]){0, 2, 1, 0}, 0, -1.5f, "pad.const");
    a = pare_graph_transpose(g, a, (const int[3]){2, 0, 1}, "transpose");
    pare_graph_reshape(g, a, 11, 9, 6, "reshape");
    return g;
}

/* Format 1.2: the new ops and attributes come back exactly, the header says
 * minor 2, and the loaded graph computes the same outputs bit for bit. */
PARE_TEST(file_roundtrip_onnx_ops)
{
    pare_graph *g = onnx_ops_graph();
    CHECK_OK(pare_graph_status(g));
    if (pare_graph_status(g) != PARE_OK) {
        pare_graph_free(g);
        return;
    }
    scramble_params(g, 12);
    uint8_t *p1 = NULL, *p2 = NULL;
    size_t n1 = 0, n2 = 0;
    encode(g, NULL, 0, &p1, &n1);
    CHECK(p1 && pare_le32(p1 + 12) == 2);
    pare_graph *h = p1 ? decode_ok(p1, n1, NULL) : NULL;
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        const pare_node *t = &h->nodes[pare_graph_find_node(h, "transpose")];
        CHECK(t->a.perm[0] == 2 && t->a.perm[1] == 0 && t->a.perm[2] == 1);
        const pare_node *pc = &h->nodes[pare_graph_find_node(h, "pad.const")];
        CHECK(pc->a.alpha == -1.5f && pc->a.mode == 0 && pc->a.pad[1] == 2);
        CHECK(isinf(h->nodes[pare_graph_find_node(h, "clip")].a.beta));
        const pare_node *sm = &h->nodes[pare_graph_find_node(h, "softmax")];
        CHECK(sm->a.axis == 1 && sm->a.mode == 1);
        const pare_node *r = &h->nodes[pare_graph_find_node(h, "reshape")];
        CHECK(r->a.shape[0] == 11 && r->a.shape[1] == 9 && r->a.shape[2] == 6);
        encode(h, NULL, 0, &p2, &n2);
        CHECK(n1 == n2 && p2 && !memcmp(p1, p2, n1));
        free(p2);
        pare_graph_free(h);
    }
    /* Same answers: scrambled values hold NaNs, so fresh ones for this. */
    CHECK_OK(pare_graph_init_params(g, 3));
    size_t n = 0;
    float *kv = pare_graph_param_data(g, "k.weight", &n);
    CHECK(kv && n == 30);
    for (size_t i = 0; kv && i < n; i++)
        kv[i] = 0.1f * (float)i - 1.0f;
    const char *path = pare_test_path("onnx-ops.pare");
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", path);
    CHECK_OK(pare_graph_save(g, saved));
    h = NULL;
    CHECK_OK(pare_graph_load(saved, &h));
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        float in[2 * 120], y1[2 * 594], y2[2 * 594];
        pare_test_fill(in, 240, -1, 1, 4);
        CHECK_OK(pare_graph_forward(g, in, 2, y1, 1));
        CHECK_OK(pare_graph_forward(h, in, 2, y2, 2));
        CHECK(!memcmp(y1, y2, sizeof y1));
        int finite = 1;
        for (int i = 0; i < 2 * 594; i++)
            finite &= isfinite(y1[i]) != 0;
        CHECK(finite);
        pare_graph_free(h);
    }
    free(p1);
    pare_graph_free(g);
}

/* A 1.2 attribute that makes no op is refused like any other bad layer. */
PARE_TEST(file_rejects_bad_onnx_attributes)
{
    pare_graph *g = onnx_ops_graph();
    CHECK_OK(pare_graph_status(g));
    uint8_t *p = NULL;
    size_t n = 0;
    encode(g, NULL, 0, &p, &n);
    if (!p) {
        pare_graph_free(g);
        return;
    }
    /* after the 15 ints, eps, momentum, p, alpha and beta: axis, mode, shape, perm */
    size_t f12 = node_fields(p, pare_graph_find_node(g, "transpose")).ints + 15 * 4 + 5 * 4;
    edit e = copy(p, n);
    pare_put_le32(e.p + f12 + 5 * 4, 1); /* perm 2, 0, 1 -> 1, 0, 1 */
    REJECT(e, "permutation of 0, 1, 2");
    f12 = node_fields(p, pare_graph_find_node(g, "softmax")).ints + 15 * 4 + 5 * 4;
    e = copy(p, n);
    pare_put_le32(e.p + f12, 3);
    REJECT(e, "axis 3 must be");
    f12 = node_fields(p, pare_graph_find_node(g, "pad.reflect")).ints + 15 * 4 + 5 * 4;
    e = copy(p, n);
    pare_put_le32(e.p + f12 + 4, 7);
    REJECT(e, "mode 7 must be");
    size_t clip = node_fields(p, pare_graph_find_node(g, "clip")).ints + 15 * 4 + 3 * 4;
    e = copy(p, n);
    pare_put_le32(e.p + clip, 0x40000000u); /* alpha (min) 2, beta (max) 1 */
    pare_put_le32(e.p + clip + 4, 0x3f800000u);
    REJECT(e, "min <= max");
    f12 = node_fields(p, pare_graph_find_node(g, "reshape")).ints + 15 * 4 + 5 * 4;
    e = copy(p, n);
    pare_put_le32(e.p + f12 + 2 * 4, 12);
    REJECT(e, "cannot read");
    free(p);
    pare_graph_free(g);
}

PARE_TEST(file_public_save_load)
{
    pare_graph *g = zoo("lenet", 5), *h = NULL;
    const char *path = pare_test_path("lenet.pare");
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", path);
    CHECK_OK(pare_graph_save(g, saved));
    CHECK_OK(pare_graph_load(saved, &h));
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        /* Same parameters, same answers: scrambled weights hold NaNs, so use
         * freshly initialised ones for this. */
        CHECK_OK(pare_graph_init_params(g, 1));
        CHECK_OK(pare_graph_save(g, saved));
        pare_graph_free(h);
        h = NULL;
        CHECK_OK(pare_graph_load(saved, &h));
        float in[2 * 28 * 28], y1[20], y2[20];
        pare_test_fill(in, sizeof in / sizeof in[0], -1, 1, 3);
        CHECK_OK(pare_graph_forward(g, in, 2, y1, 1));
        if (h)
            CHECK_OK(pare_graph_forward(h, in, 2, y2, 1));
        CHECK(h && !memcmp(y1, y2, sizeof y1));
        pare_graph_free(h);
    }
    CHECK_STATUS(pare_graph_save(NULL, saved), PARE_EINVAL);
    CHECK_STATUS(pare_graph_load(saved, NULL), PARE_EINVAL);
    pare_graph_free(g);
}

PARE_TEST(file_layout_and_alignment)
{
    pare_graph *g = tiny();
    uint8_t extra_bytes[100];
    for (int i = 0; i < 100; i++)
        extra_bytes[i] = (uint8_t)i;
    pare_file_section x[2] = {{{'T', 'R', 'S', 'T'}, extra_bytes, 100},
                              {{'S', 'T', 'E', 'P'}, extra_bytes, 3}};
    uint8_t *a;
    size_t na;
    encode(g, x, 2, &a, &na);
    if (!a)
        return;
    CHECK(!memcmp(a, "PAREMDL\0", 8));
    CHECK(pare_le32(a + 8) == 1 && pare_le32(a + 12) == 0);
    CHECK(pare_le64(a + 16) == na);
    CHECK(pare_le64(a + 24) == 64 && pare_le32(a + 32) == 6 && pare_le32(a + 36) == 32);
    const char *tags[6] = {"META", "GRPH", "TENS", "DATA", "TRST", "STEP"};
    fsec data;
    find_sec(a, "DATA", &data);
    for (int i = 0; i < 6; i++) {
        fsec s;
        if (!find_sec(a, tags[i], &s))
            continue;
        CHECKF(s.off % 64 == 0, "section %s starts at %zu", tags[i], s.off);
        CHECKF(s.entry == 64 + 32 * (size_t)i, "section %s is out of order", tags[i]);
        CHECKF(pare_le32(a + s.entry + 4) == (i < 4 ? 1u : 0u), "section %s flags", tags[i]);
    }
    for (int k = 0; k < g->n_params; k++) {
        tfield f = tens_fields(a, k);
        uint64_t offs[4] = {pare_le64(a + f.doff), pare_le64(a + f.moff), pare_le64(a + f.soff),
                            pare_le64(a + f.zoff)};
        for (int j = 0; j < 4; j++) {
            if (j > 0 && offs[j] == 0)
                continue;
            CHECKF(offs[j] % 64 == 0, "tensor %d array %d at %llu", k, j,
                   (unsigned long long)offs[j]);
            CHECKF(offs[j] >= data.off && offs[j] < data.off + data.size,
                   "tensor %d array %d outside DATA", k, j);
        }
        /* The data really is there, as little-endian float32. */
        uint32_t u;
        memcpy(&u, &g->params[k].t->data[0], 4);
        CHECK(pare_le32(a + pare_le64(a + f.doff)) == u);
    }
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_extra_sections)
{
    pare_graph *g = tiny();
    uint8_t big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 1);
    pare_file_section x[3] = {{{'T', 'R', 'S', 'T'}, big, 100},
                              {{'O', 'P', 'T', ' '}, big, sizeof big},
                              {{'E', 'M', 'P', 'T'}, NULL, 0}};
    uint8_t *a;
    size_t na;
    encode(g, x, 3, &a, &na);
    pare_file_extra got;
    pare_graph *h = decode_ok(a, na, &got);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        CHECK(got.n == 3);
        for (int i = 0; i < got.n && i < 3; i++) {
            CHECK(!memcmp(got.s[i].tag, x[i].tag, 4));
            CHECK(got.s[i].size == x[i].size && got.s[i].data);
            CHECK(x[i].size == 0 || !memcmp(got.s[i].data, x[i].data, x[i].size));
        }
        const pare_file_section *f = pare_file_extra_find(&got, "OPT ");
        CHECK(f && f->size == sizeof big);
        CHECK(pare_file_extra_find(&got, "NONE") == NULL);
        CHECK(pare_file_extra_find(&got, "OPT") == NULL);
        pare_file_extra_free(&got);
        CHECK(got.n == 0 && got.s == NULL);
        pare_graph_free(h);
    }
    /* A reader that does not want them skips them. */
    h = decode_ok(a, na, NULL);
    if (h)
        CHECK(graphs_differ(g, h) == 0);
    pare_graph_free(h);
    free(a);

    /* And through files. */
    char path[1024];
    snprintf(path, sizeof path, "%s", pare_test_path("ck.pare"));
    CHECK_OK(pare_file_save(path, g, x, 3));
    h = NULL;
    CHECK_OK(pare_file_load(path, &h, &got));
    CHECK(h && got.n == 3 && pare_file_extra_find(&got, "TRST"));
    pare_file_extra_free(&got);
    pare_graph_free(h);
    CHECK_OK(pare_graph_load(path, &h));
    pare_graph_free(h);

    /* The writer refuses tags it would not read back, and pare's own tags. */
    pare_file_section bad = {{'M', 'E', 'T', 'A'}, big, 4};
    CHECK_STATUS(pare_file_encode(g, &bad, 1, &a, &na), PARE_EINVAL);
    memcpy(bad.tag, "AB\nC", 4);
    CHECK_STATUS(pare_file_encode(g, &bad, 1, &a, &na), PARE_EINVAL);
    memcpy(bad.tag, "ABCD", 4);
    bad.data = NULL;
    CHECK_STATUS(pare_file_encode(g, &bad, 1, &a, &na), PARE_EINVAL);
    CHECK_STATUS(pare_file_encode(g, NULL, 2, &a, &na), PARE_EINVAL);
    pare_graph_free(g);
}

/* A newer minor version, longer table entries, fields appended to records
 * and sections in another order must all load: that is how the format grows. */
PARE_TEST(file_forward_compatible)
{
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    edit e = copy(a, na);
    pare_put_le32(e.p + 12, 7);
    fix_crcs(e.p, e.len);
    pare_graph *h = decode_ok(e.p, e.len, NULL);
    CHECK(h && graphs_differ(g, h) == 0);
    pare_graph_free(h);
    free(e.p);

    /* Rebuild the file with 48-byte table entries and 12 bytes of later fields
     * at the end of every GRPH and TENS record, the new table and sections
     * placed at the end. A TENS record first gets the 1.1 fields (dense: all
     * zero), which a 1.0 writer leaves out, and a GRPH record its 1.2 fields
     * (all zero), which a writer leaves out when no layer needs them: later
     * fields follow them. */
    fsec grph, tens;
    find_sec(a, "GRPH", &grph);
    find_sec(a, "TENS", &tens);
    size_t cap = na + 2 * (grph.size + tens.size) + 32 * (size_t)g->n_params + 4096;
    uint8_t *p = calloc(1, cap);
    memcpy(p, a, na);
    size_t at = (na + 63) / 64 * 64;
    const fsec *olds[2] = {&grph, &tens};
    size_t news[2], newsz[2];
    for (int s = 0; s < 2; s++) {
        const fsec *o = olds[s];
        size_t head = s == 0 ? 8 : 4, count = pare_le32(a + o->off);
        size_t tail = s == 0 ? 40 : 20;
        news[s] = at;
        memcpy(p + at, a + o->off, head);
        size_t r = o->off + head, w = at + head;
        for (size_t i = 0; i < count; i++) {
            uint32_t len = pare_le32(a + r);
            pare_put_le32(p + w, (uint32_t)(len + tail + 12));
            memcpy(p + w + 4, a + r + 4, len);
            memset(p + w + 4 + len, 0, tail);
            memset(p + w + 4 + len + tail, 0xAB, 12);
            r += 4 + len;
            w += 4 + len + tail + 12;
        }
        newsz[s] = w - at;
        memset(p + o->off, 0, o->size);
        at = (w + 63) / 64 * 64;
    }
    size_t toff = at;
    uint32_t n = pare_le32(a + 32);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *dst = p + toff + 48 * i;
        memcpy(dst, a + 64 + 32 * i, 32);
        memset(dst + 32, 0, 16);
        if (!memcmp(dst, "GRPH", 4) || !memcmp(dst, "TENS", 4)) {
            int s = !memcmp(dst, "TENS", 4);
            pare_put_le64(dst + 8, news[s]);
            pare_put_le64(dst + 16, newsz[s]);
        }
    }
    memset(p + 64, 0, 32 * (size_t)n);
    size_t len = toff + 48 * (size_t)n;
    pare_put_le64(p + 16, len);
    pare_put_le64(p + 24, toff);
    pare_put_le32(p + 36, 48);
    fix_crcs(p, len);
    h = decode_ok(p, len, NULL);
    CHECK(h && graphs_differ(g, h) == 0);
    pare_graph_free(h);
    free(p);
    free(a);
    pare_graph_free(g);
}

/* ---- damage --------------------------------------------------------------- */

PARE_TEST(file_rejects_truncation)
{
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    pare_file_section x = {{'T', 'R', 'S', 'T'}, (uint8_t *)"state", 5};
    encode(g, &x, 1, &a, &na);
    expect_reject(a, 0, "empty", "empty file");
    char ctx[64];
    for (size_t n = 1; n < na; n++) {
        snprintf(ctx, sizeof ctx, "tiny cut at %zu", n);
        expect_reject(a, n, "truncated", ctx);
    }
    free(a);
    pare_graph_free(g);

    g = zoo("lenet", 1);
    encode(g, NULL, 0, &a, &na);
    CHECK(na > 100000);
    for (size_t n = 1; n < na; n = n < 4096 ? n + 1 : n + 997) {
        snprintf(ctx, sizeof ctx, "lenet cut at %zu", n);
        expect_reject(a, n, "truncated", ctx);
    }
    expect_reject(a, na - 1, "truncated", "lenet minus one byte");
    char want[96];
    snprintf(want, sizeof want, "truncated: the header says %zu bytes, the file has %zu", na,
             na - 100);
    expect_reject(a, na - 100, want, "exact truncation message");
    /* Bytes after the end are refused too. */
    edit e = copy(a, na);
    e.p[na] = 0;
    e.len = na + 1;
    expect_reject(e.p, e.len, "after the end", "one byte too many");
    free(e.p);
    free(a);
    pare_graph_free(g);
}

/* What a flipped bit at byte i must be reported as. */
static const char *region(const uint8_t *p, size_t i)
{
    static char buf[32];
    if (i < 8)
        return "not a pare model file";
    if (i < 16)
        return NULL; /* the version: "newer pare", "format 0.x" or a header CRC error */
    if (i < 64)
        return "header";
    size_t toff = (size_t)pare_le64(p + 24);
    uint32_t n = pare_le32(p + 32);
    if (i >= toff && i < toff + 32 * (size_t)n)
        return "section table";
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *e = p + toff + 32 * k;
        size_t off = (size_t)pare_le64(e + 8), size = (size_t)pare_le64(e + 16);
        if (i >= off && i < off + size) {
            snprintf(buf, sizeof buf, "section %.4s", (const char *)e);
            return buf;
        }
    }
    return "padding";
}

static void flip_bits(const uint8_t *a, size_t na, size_t from, size_t to, size_t step,
                      const char *name)
{
    uint8_t *p = malloc(na);
    memcpy(p, a, na);
    char ctx[96];
    for (size_t bit = from; bit < to; bit += step) {
        size_t i = bit / 8;
        p[i] ^= (uint8_t)(1u << (bit % 8));
        snprintf(ctx, sizeof ctx, "%s: bit %zu of byte %zu flipped", name, bit % 8, i);
        expect_reject(p, na, region(a, i), ctx);
        p[i] = a[i];
    }
    free(p);
}

PARE_TEST(file_rejects_flipped_bits)
{
    /* Every bit of a small file with every kind of section and padding. */
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    pare_file_section x = {{'T', 'R', 'S', 'T'}, (uint8_t *)"state", 5};
    encode(g, &x, 1, &a, &na);
    flip_bits(a, na, 0, 8 * na, 1, "tiny");
    free(a);
    pare_graph_free(g);

    /* lenet: every bit outside DATA, a sample inside it. */
    g = zoo("lenet", 2);
    encode(g, NULL, 0, &a, &na);
    fsec data;
    if (find_sec(a, "DATA", &data)) {
        flip_bits(a, na, 0, 8 * data.off, 1, "lenet");
        flip_bits(a, na, 8 * data.off, 8 * na, 4099, "lenet");
    }
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_foreign_files)
{
    const char *text = "hello, this is a text file and not a model at all\n";
    expect_reject((const uint8_t *)text, strlen(text), "not a pare model file", "text");
    const uint8_t png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    expect_reject(png, sizeof png, "not a pare model file", "png");
    uint8_t rnd[4096];
    pare_rng r;
    pare_rng_seed(&r, 1, 2, 3, 4);
    for (size_t i = 0; i < sizeof rnd; i++)
        rnd[i] = (uint8_t)pare_rng_u64(&r);
    expect_reject(rnd, sizeof rnd, "not a pare model file", "random");

    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    edit e = copy(a, na);
    e.p[6] = 'X';
    REJECT(e, "not a pare model file");

    /* Through the file API: the path leads the message. */
    char path[1024];
    snprintf(path, sizeof path, "%s", pare_test_path("notes.txt"));
    CHECK_OK(pare_write_file_atomic(path, text, strlen(text)));
    pare_graph *h = NULL;
    CHECK_STATUS(pare_graph_load(path, &h), PARE_EFORMAT);
    CHECK(h == NULL && !strncmp(pare_last_error(), path, strlen(path)));
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_newer_major_version)
{
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    edit e = copy(a, na);
    pare_put_le32(e.p + 8, 2);
    pare_put_le32(e.p + 12, 3);
    REJECT(e, "m.pare: written by a newer pare (format 2.x); this pare reads 1.x");
    e = copy(a, na);
    pare_put_le32(e.p + 8, 0);
    REJECT(e, "format 0.0 is not one this pare reads");
    /* A newer major is named even when the rest of its header means nothing to us. */
    e = copy(a, na);
    pare_put_le32(e.p + 8, 3);
    memset(e.p + 16, 0xEE, 48);
    e.len = 20;
    expect_reject(e.p, e.len, "format 3.x", "short newer file");
    free(e.p);
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_bad_section_table)
{
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    pare_file_section x = {{'T', 'R', 'S', 'T'}, (uint8_t *)"state", 5};
    encode(g, &x, 1, &a, &na);
    fsec meta, grph, tens, data, trst;
    if (!find_sec(a, "META", &meta) || !find_sec(a, "GRPH", &grph) || !find_sec(a, "TENS", &tens) ||
        !find_sec(a, "DATA", &data) || !find_sec(a, "TRST", &trst))
        return;
    edit e;

    /* Outside the file. */
    e = copy(a, na);
    pare_put_le64(e.p + data.entry + 8, na + 64);
    REJECT(e, "section DATA (");
    e = copy(a, na);
    pare_put_le64(e.p + data.entry + 16, na);
    REJECT(e, "lies outside the");
    e = copy(a, na);
    pare_put_le64(e.p + trst.entry + 8, UINT64_MAX - 7);
    pare_put_le64(e.p + trst.entry + 16, 16);
    REJECT(e, "lies outside the");
    e = copy(a, na);
    pare_put_le64(e.p + 24, na);
    REJECT(e, "the section table (");
    e = copy(a, na);
    pare_put_le64(e.p + 24, UINT64_MAX - 63);
    REJECT(e, "the section table (");
    e = copy(a, na);
    pare_put_le32(e.p + 32, 0xFFFFFFFFu);
    REJECT(e, "the section table (");
    e = copy(a, na);
    pare_put_le32(e.p + 36, 8);
    REJECT(e, "entries are 8 bytes");
    e = copy(a, na);
    pare_put_le64(e.p + 24, 0);
    REJECT(e, "the section table (");

    /* Overlaps: with another section, the header, the table. */
    e = copy(a, na);
    pare_put_le64(e.p + grph.entry + 8, meta.off + 8);
    REJECT(e, "overlap");
    e = copy(a, na);
    pare_put_le64(e.p + meta.entry + 8, 0);
    REJECT(e, "the header and section META overlap");
    e = copy(a, na);
    pare_put_le64(e.p + trst.entry + 8, 64);
    REJECT(e, "the section table and section TRST overlap");
    e = copy(a, na);
    pare_put_le64(e.p + tens.entry + 16, tens.size + 64);
    REJECT(e, "overlap");

    /* A stray byte in the padding between sections. */
    e = copy(a, na);
    CHECK(meta.off + meta.size < grph.off);
    e.p[meta.off + meta.size] = 1;
    REJECT(e, "padding before section GRPH");

    /* Tags: unprintable, required but unknown, duplicated, missing; flags. */
    e = copy(a, na);
    e.p[trst.entry] = 0x01;
    REJECT(e, "printable");
    e = copy(a, na);
    pare_put_le32(e.p + trst.entry + 4, 1);
    REJECT(e, "section TRST is marked required");
    e = copy(a, na);
    pare_put_le32(e.p + trst.entry + 4, 0x80);
    fix_crcs(e.p, e.len);
    pare_graph *h = decode_ok(e.p, e.len, NULL); /* unknown flags of a skipped section */
    pare_graph_free(h);
    free(e.p);
    e = copy(a, na);
    pare_put_le32(e.p + meta.entry + 4, 3);
    REJECT(e, "section META has flags");
    e = copy(a, na);
    memcpy(e.p + grph.entry, "META", 4);
    REJECT(e, "two META sections");
    e = copy(a, na);
    memcpy(e.p + tens.entry, "TENX", 4);
    pare_put_le32(e.p + tens.entry + 4, 0);
    REJECT(e, "no TENS section");
    e = copy(a, na);
    pare_put_le32(e.p + 32, 3);
    memset(e.p + 64 + 96, 0, 64);
    memset(e.p + data.off, 0, na - data.off);
    REJECT(e, "no DATA section");
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_bad_meta_and_graph)
{
    pare_graph *g = zoo("lenet", 3);
    char longv[65537];
    memset(longv, 'v', sizeof longv - 1);
    longv[65536] = 0;
    CHECK_OK(pare_graph_meta_set(g, "ka", "1"));
    CHECK_OK(pare_graph_meta_set(g, "kb", "2"));
    CHECK_OK(pare_graph_meta_set(g, "long", longv));
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    fsec meta, grph;
    if (!a || !find_sec(a, "META", &meta) || !find_sec(a, "GRPH", &grph))
        return;
    edit e;

    /* META: counts and strings. */
    size_t count_at = skip_str(a, meta.off);
    e = copy(a, na);
    pare_put_le32(e.p + count_at, 0xFFFFFFF0u);
    REJECT(e, "section META: says it holds 4294967280 entries");
    e = copy(a, na);
    pare_put_le32(e.p + meta.off, 0x7FFFFFFFu);
    REJECT(e, "section META: the graph name is 2147483647 bytes long, more than the 4096 allowed");
    e = copy(a, na);
    e.p[meta.off + 5] = 0;
    REJECT(e, "holds a NUL byte");
    size_t at = count_at + 4;
    for (int i = 0; i < g->n_meta && strcmp(g->meta[i].key, "long"); i++)
        at = skip_str(a, skip_str(a, at));
    e = copy(a, na);
    pare_put_le32(e.p + skip_str(a, at), 65537);
    REJECT(e, "is 65537 bytes long, more than the 65536 allowed");
    /* Two keys "ka" and "kb"; make the second "ka". */
    size_t kb = 0;
    for (size_t i = meta.off; i + 6 <= meta.off + meta.size && !kb; i++)
        if (!memcmp(a + i, "\x02\0\0\0kb", 6))
            kb = i;
    CHECK(kb > 0);
    e = copy(a, na);
    e.p[kb + 5] = 'a';
    REJECT(e, "the metadata key 'ka' appears twice");

    /* GRPH: counts, output, links. */
    e = copy(a, na);
    pare_put_le32(e.p + grph.off, 0xFFFFFFFFu);
    REJECT(e, "section GRPH: says it holds 4294967295 layers");
    e = copy(a, na);
    pare_put_le32(e.p + grph.off, 0);
    REJECT(e, "the output is layer");
    e = copy(a, na);
    pare_put_le32(e.p + grph.off + 4, (uint32_t)g->n_nodes);
    REJECT(e, "the output is layer");
    e = copy(a, na);
    pare_put_le32(e.p + grph.off + 4, 2);
    fix_crcs(e.p, e.len);
    {
        /* Another output is a valid graph, just a different one. */
        pare_graph *h = decode_ok(e.p, e.len, NULL);
        CHECK(h && h->output == 2);
        pare_graph_free(h);
    }
    free(e.p);
    int conv1 = pare_graph_find_node(g, "conv1"), relu2 = pare_graph_find_node(g, "relu2");
    nfield f = node_fields(a, conv1);
    e = copy(a, na);
    pare_put_le32(e.p + record(a, "GRPH", conv1) - 4, 0xFFFFFF);
    REJECT(e, "the record of layer 1 is cut short");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in, 0x40000000u);
    REJECT(e, "layer 'conv1' says it has 1073741824 inputs");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in + 4, 1);
    REJECT(e, "layer 'conv1': input 1 is not an earlier layer");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in + 8, 9);
    REJECT(e, "layer 'conv1' says it has 9 parameters");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in + 12, 0xFFFFFFFFu);
    REJECT(e, "layer 'conv1': tensor 4294967295 does not exist");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in + 12, 999);
    REJECT(e, "parameter 999 is missing");
    e = copy(a, na);
    pare_put_le32(e.p + f.n_in + 8, 1);
    REJECT(e, "the 1.2 attributes of layer 'conv1' are cut short");
    e = copy(a, na);
    pare_put_le32(e.p + f.name, 0);
    REJECT(e, "section GRPH: layer 1 has an empty name");
    e = copy(a, na);
    pare_put_le32(e.p + f.op, 4000);
    REJECT(e, "the op name of layer 1 is cut short");
    e = copy(a, na);
    pare_put_le32(e.p + f.op, 5000);
    REJECT(e, "the op name of layer 1 is 5000 bytes long, more than the 4096 allowed");

    /* An op this pare does not know. */
    e = copy(a, na);
    CHECK(!memcmp(e.p + f.op + 4, "conv2d", 6));
    e.p[f.op + 8] = '9';
    REJECT(e,
           "m.pare: section GRPH: layer 'conv1' uses op 'conv9d', which this pare does not know");

    /* Names: two layers with one name. */
    nfield f2 = node_fields(a, relu2);
    e = copy(a, na);
    CHECK(!memcmp(e.p + f2.name + 4, "relu2", 5));
    e.p[f2.name + 8] = '1';
    REJECT(e, "two layers are named 'relu1'");

    /* Shapes and attributes that disagree with inference. */
    e = copy(a, na);
    pare_put_le32(e.p + f.out, 7);
    REJECT(e, "layer conv1: stored shape 7x28x28 disagrees with 6x28x28");
    e = copy(a, na);
    pare_put_le32(e.p + f.ints + 4, 3); /* kernel height 5 -> 3 */
    REJECT(e, "disagrees");
    e = copy(a, na);
    pare_put_le32(e.p + f.ints + 44, 4); /* groups 1 -> 4 */
    REJECT(e, "groups");
    e = copy(a, na);
    pare_put_le32(e.p + f.ints, 0xFFFFFFFFu); /* out_channels -1 */
    REJECT(e, "layer conv1 (conv2d)");
    e = copy(a, na);
    pare_put_le32(e.p + record(a, "GRPH", 0) - 4, 30);
    REJECT(e, "the record of layer 'input' is cut short");
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_bad_tensors)
{
    pare_graph *g = tiny();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    fsec tens, data;
    if (!a || !find_sec(a, "TENS", &tens) || !find_sec(a, "DATA", &data))
        return;
    int w = tensor_index(g, "conv.weight"), fb = tensor_index(g, "fc.bias");
    tfield f = tens_fields(a, w), fbf = tens_fields(a, fb);
    edit e;

    e = copy(a, na);
    pare_put_le32(e.p + tens.off, 0xFFFFFFFFu);
    REJECT(e, "section TENS: says it holds 4294967295 tensors");
    e = copy(a, na);
    pare_put_le32(e.p + tens.off, 3);
    REJECT(e, "is missing or shared");
    e = copy(a, na);
    pare_put_le32(e.p + f.name - 4, 35);
    REJECT(e, "the record of tensor 'conv.weight' is cut short");
    e = copy(a, na);
    pare_put_le32(e.p + f.name, 0);
    REJECT(e, "section TENS: tensor 0 has an empty name");
    e = copy(a, na);
    e.p[f.role + 4 + 2] = '9';
    REJECT(e, "tensor 'conv.weight' has role 'we9ght', which this pare does not know");
    e = copy(a, na);
    memcpy(e.p + fbf.role + 4, "beta", 4);
    REJECT(e, "layer fc: parameter fc.bias has the wrong role or size");
    e = copy(a, na);
    pare_put_le32(e.p + f.node, 99);
    REJECT(e, "tensor 'conv.weight' belongs to layer 99, but there are 7 layers");
    e = copy(a, na);
    pare_put_le32(e.p + f.node, 2);
    REJECT(e, "wrong role or size");
    e = copy(a, na);
    e.p[f.flags] = 2;
    REJECT(e, "trainable or frozen flag");
    e = copy(a, na);
    e.p[f.flags + 1] = 7;
    REJECT(e, "trainable or frozen flag");
    e = copy(a, na);
    e.p[f.flags + 2] = 2;
    REJECT(e, "tensor 'conv.weight' has data type 2; this pare reads only 1 (float32)");
    e = copy(a, na);
    e.p[f.flags + 3] = 5;
    REJECT(e, "has 5 dimensions; 1 to 4 are allowed");
    e = copy(a, na);
    e.p[f.flags + 3] = 0;
    REJECT(e, "has 0 dimensions");

    /* Dimensions: zero, negative as int, overflowing, reordered. */
    e = copy(a, na);
    pare_put_le32(e.p + f.dims, 0);
    REJECT(e, "dimension 0 is 0");
    e = copy(a, na);
    pare_put_le32(e.p + f.dims + 4, 0x80000000u);
    REJECT(e, "dimension 1 is 2147483648");
    e = copy(a, na);
    for (int d = 0; d < 4; d++)
        pare_put_le32(e.p + f.dims + 4 * (size_t)d, 0x7FFFFFFFu);
    REJECT(e, "multiply to more values");
    e = copy(a, na);
    pare_put_le32(e.p + f.dims, 0x10000);
    pare_put_le32(e.p + f.dims + 4, 0x10000);
    REJECT(e, "values but 216 data bytes");
    tfield fw = tens_fields(a, tensor_index(g, "fc.weight"));
    e = copy(a, na);
    pare_put_le32(e.p + fw.dims, 27); /* 4x27 -> 27x4: the same count */
    pare_put_le32(e.p + fw.dims + 4, 4);
    REJECT(e, "layer fc: tensor 'fc.weight' is 27x4, its op needs 4x27");

    /* Data: length, alignment, place. */
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, 4 * 54 + 4);
    REJECT(e, "has 54 values but 220 data bytes");
    e = copy(a, na);
    pare_put_le64(e.p + f.doff, pare_le64(a + f.doff) + 4);
    REJECT(e, "its data array starts at offset");
    e = copy(a, na);
    pare_put_le64(e.p + f.doff, 0);
    REJECT(e, "its data array (216 bytes at offset 0) is not inside the DATA section");
    e = copy(a, na);
    pare_put_le64(e.p + f.doff, (data.off + data.size) / 64 * 64);
    REJECT(e, "is not inside the DATA section");
    e = copy(a, na);
    pare_put_le64(e.p + f.doff, UINT64_MAX - 63);
    REJECT(e, "is not inside the DATA section");

    /* Masks. */
    e = copy(a, na);
    pare_put_le32(e.p + f.menc, 7);
    REJECT(e, "mask encoding 7");
    e = copy(a, na);
    pare_put_le64(e.p + f.mlen, 8);
    REJECT(e, "a 8-byte mask bitmap");
    e = copy(a, na);
    pare_put_le64(e.p + f.moff, pare_le64(a + f.moff) + 1);
    REJECT(e, "its mask array starts at offset");
    e = copy(a, na);
    e.p[pare_le64(a + f.moff) + 6] |= 0x80; /* bit 55 of 54 */
    REJECT(e, "mask bitmap has bits set past its 54 values");
    e = copy(a, na);
    pare_put_le64(e.p + fbf.moff, 64);
    REJECT(e, "has no mask but a mask offset or length");

    /* Quantization. */
    e = copy(a, na);
    pare_put_le32(e.p + f.qbits, 99);
    REJECT(e, "has 99 quantization bits");
    e = copy(a, na);
    pare_put_le32(e.p + f.qscheme, 3);
    REJECT(e, "quantization scheme 3");
    e = copy(a, na);
    pare_put_le32(e.p + f.qaxis, 4);
    REJECT(e, "along axis 4, but it has 4 dimensions");
    e = copy(a, na);
    pare_put_le32(e.p + f.qaxis, 1);
    REJECT(e, "takes 2 scales, not 3");
    e = copy(a, na);
    pare_put_le32(e.p + f.qn, 1000);
    REJECT(e, "has 1000 quantization scales for its 54 values");
    e = copy(a, na);
    pare_put_le32(e.p + f.qn, 40);
    REJECT(e, "takes 3 scales, not 40");
    e = copy(a, na);
    pare_put_le64(e.p + f.zoff, 32);
    REJECT(e, "its zero-point array starts at offset 32");
    e = copy(a, na);
    pare_put_le64(e.p + fbf.soff, pare_le64(a + f.soff));
    REJECT(e, "has no quantization scales but an offset");
    e = copy(a, na);
    pare_put_le32(e.p + fbf.qbits, 8);
    pare_put_le32(e.p + fbf.qscheme, 1);
    REJECT(e, "per tensor, which takes 1 scale, not 0");

    /* Per-tensor attributes: a count the record cannot hold. */
    e = copy(a, na);
    pare_put_le32(e.p + f.nattr, 0x10000000u);
    REJECT(e, "says it has 268435456 attributes");
    free(a);
    pare_graph_free(g);
}

/* ---- files on disk --------------------------------------------------------- */

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

PARE_TEST(file_missing_and_unwritable)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", pare_test_path("no-such-model.pare"));
    pare_graph *g = NULL;
    CHECK_STATUS(pare_graph_load(path, &g), PARE_ENOTFOUND);
    CHECK(g == NULL && strstr(pare_last_error(), path));

    g = tiny();
    snprintf(path, sizeof path, "%s", pare_test_path("no-such-dir/model.pare"));
    CHECK_STATUS(pare_graph_save(g, path), PARE_EIO);
    CHECK(strstr(pare_last_error(), path));
    CHECKF(dir_entries(pare_test_dir()) == 0, "a failed save left %d files behind",
           dir_entries(pare_test_dir()));
    pare_graph_free(g);
}

PARE_TEST(file_save_is_atomic)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", pare_test_path("model.pare"));
    pare_graph *small = tiny(), *big = zoo("resnet20", 1);
    CHECK_OK(pare_graph_save(small, path));
    uint8_t *before, *after;
    size_t nb, na;
    CHECK_OK(pare_read_file(path, SIZE_MAX, &before, &nb));

    /* A save that fails while encoding leaves the old file as it was. */
    pare_graph *broken = pare_graph_new("broken");
    pare_graph_input(broken, 1, 4, 4);
    pare_graph_conv2d(broken, 0, 3, 9, 1, 0, "too-big-kernel");
    CHECK_STATUS(pare_graph_save(broken, path), PARE_EINVAL);
    pare_graph_free(broken);
    param(small, "fc.weight")->q.n = 2;
    CHECK_STATUS(pare_graph_save(small, path), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "fc.weight"));
    param(small, "fc.weight")->q.n = 1;

    /* A save that fails while writing (the file size limit stops it half
     * way) leaves the old file as it was, and no temporary file. */
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 65536;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK_STATUS(pare_graph_save(big, path), PARE_EIO);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(strstr(pare_last_error(), path));
    CHECK_OK(pare_read_file(path, SIZE_MAX, &after, &na));
    CHECK(na == nb && !memcmp(before, after, nb));
    CHECKF(dir_entries(pare_test_dir()) == 1, "%d files after a failed save",
           dir_entries(pare_test_dir()));
    free(after);

    /* A save that succeeds replaces it. */
    CHECK_OK(pare_graph_save(big, path));
    pare_graph *h = NULL;
    CHECK_OK(pare_graph_load(path, &h));
    CHECK(h && graphs_differ(big, h) == 0);
    pare_graph_free(h);
    free(before);
    pare_graph_free(small);
    pare_graph_free(big);
}

PARE_TEST(file_writer_refuses_what_reader_would)
{
    pare_graph *g = tiny();
    uint8_t *a = NULL;
    size_t na = 0;
    pare_param *w = param(g, "conv.weight");

    w->q.scheme = 1;
    CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "conv.weight") && a == NULL);
    w->q.scheme = 2;
    float *scale = w->q.scale;
    w->q.scale = NULL;
    CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
    w->q.scale = scale;
    w->q.bits = 0;
    CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
    w->q.bits = 8;

    char *longname = malloc(5000);
    memset(longname, 'k', 4999);
    longname[4999] = 0;
    CHECK_OK(pare_graph_meta_set(g, longname, "v"));
    CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
    free(g->meta[g->n_meta - 1].key);
    g->meta[g->n_meta - 1].key = longname;
    longname[10] = 0;
    CHECK_OK(pare_file_encode(g, NULL, 0, &a, &na));
    free(a);

    /* A shape the op would not infer is not saved either. */
    g->nodes[1].out.c = 5;
    CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "disagrees"));
    g->nodes[1].out.c = 3;
    CHECK_OK(pare_file_encode(g, NULL, 0, &a, &na));
    free(a);
    CHECK_STATUS(pare_file_encode(NULL, NULL, 0, &a, &na), PARE_EINVAL);
    pare_graph_free(g);
}

/* Files written by format 1.0 (the fuzz seeds, committed) must load in every
 * later pare; and this writer must still write them byte for byte, unless the
 * format version is raised. */
PARE_TEST(file_reads_committed_1_0_files)
{
    const char *dir = "tests/fuzz/seeds/fuzz_pare_file";
    if (!pare_file_exists(dir)) {
        printf("skipped: %s is not here; run from the repository root\n", dir);
        return;
    }
    const char *names[3] = {"input-linear.pare", "add-concat-pool.pare",
                            "conv-mask-quant-extra.pare"};
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *file = NULL, *again = NULL;
        size_t n = 0, m = 0;
        CHECK_OK(pare_read_file(path, SIZE_MAX, &file, &n));
        pare_graph *g = NULL;
        pare_file_extra x;
        CHECK_OK(pare_file_decode(file, n, path, &g, &x));
        if (g) {
            CHECK_OK(pare_file_encode(g, x.s, x.n, &again, &m));
            CHECKF(m == n && !memcmp(file, again, n), "%s is no longer written the same", path);
        }
        if (g && i == 2) {
            const pare_param *w = &g->params[0];
            CHECK(w->mask && w->mask[0] == 0 && w->mask[1] == 1 && w->q.n == 2);
            CHECK(w->q.n == 2 && w->q.scale[1] == 0.25f && w->q.zero_point[1] == -4);
            CHECK(g->params[2].frozen == 1);
            const pare_file_section *t = pare_file_extra_find(&x, "TRST");
            CHECK(t && t->size == 7 && !memcmp(t->data, "step=12", 7));
        }
        free(again);
        free(file);
        pare_file_extra_free(&x);
        pare_graph_free(g);
    }
}

/* ---- format 1.1: sparsity schemes and packed tensor data ------------------ */

/* The longest scheme FORMAT.md allows. */
#define SCHEME_MAX 64

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void set_bits(float *f, uint32_t u)
{
    memcpy(f, &u, 4);
}

/* A mask pruning about `sparsity` of p's values (all of them at 1, none at 0),
 * each pruned value set to +0.0, as a pruner leaves them. */
static void prune(pare_param *p, double sparsity, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 7, 0, 0);
    free(p->mask);
    p->mask = malloc(p->t->n);
    for (size_t k = 0; k < p->t->n; k++) {
        p->mask[k] = !(pare_rng_uniform_d(&r) < sparsity);
        if (!p->mask[k])
            set_bits(&p->t->data[k], 0);
    }
}

static size_t kept(const pare_param *p)
{
    size_t k = 0;
    for (size_t e = 0; e < p->t->n; e++)
        k += p->mask[e] != 0;
    return k;
}

static size_t nonzero(const pare_param *p)
{
    size_t k = 0;
    for (size_t e = 0; e < p->t->n; e++)
        k += bits_of(p->t->data[e]) != 0;
    return k;
}

/* Sets about `zeros` of an unmasked tensor's values to +0.0. */
static void zero_out(pare_param *p, double zeros, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 8, 0, 0);
    for (size_t k = 0; k < p->t->n; k++)
        if (pare_rng_uniform_d(&r) < zeros)
            set_bits(&p->t->data[k], 0);
}

/* The awkward floats a packing could lose, put on the first kept (or nonzero)
 * elements: signed zeros, NaNs with payloads, infinities, subnormals. For a
 * masked tensor a kept +0.0 is included: kept values are stored whatever they are. */
static void put_odd_values(pare_param *p)
{
    static const uint32_t odd[] = {0x80000000u, 0x7fc12345u, 0xffbadbadu, 0x00000001u,
                                   0x7f800000u, 0x807fffffu, 0x00000000u};
    size_t n_odd = sizeof odd / sizeof odd[0] - (p->mask ? 0 : 1), j = 0;
    for (size_t e = 0; e < p->t->n && j < n_odd; e++)
        if (p->mask ? p->mask[e] != 0 : bits_of(p->t->data[e]) != 0)
            set_bits(&p->t->data[e], odd[j++]);
    CHECKF(j == n_odd, "tensor %s has too few kept values for the test", p->name);
}

/* A file's bytes with bytes [from, to) of TENS replaced by n bytes of `ins`,
 * and the length of the record whose body starts at `rec` adjusted. TENS moves
 * to the end of the file (readers find sections through the table), so no
 * other offset changes. CRCs are fixed. */
static edit splice_tens(const uint8_t *a, size_t na, size_t rec, size_t from, size_t to,
                        const void *ins, size_t n)
{
    fsec t;
    edit e = {NULL, 0};
    if (!find_sec(a, "TENS", &t))
        return e;
    size_t size = t.size - (to - from) + n, at = (na + 63) / 64 * 64;
    e.len = at + size;
    e.p = calloc(1, e.len + 64);
    memcpy(e.p, a, na);
    memset(e.p + t.off, 0, t.size);
    uint8_t *d = e.p + at;
    memcpy(d, a + t.off, from - t.off);
    if (n)
        memcpy(d + (from - t.off), ins, n);
    memcpy(d + (from - t.off) + n, a + to, t.off + t.size - to);
    pare_put_le32(d + (rec - 4 - t.off), (uint32_t)(pare_le32(a + rec - 4) - (to - from) + n));
    pare_put_le64(e.p + t.entry + 8, at);
    pare_put_le64(e.p + t.entry + 16, size);
    pare_put_le64(e.p + 16, e.len);
    fix_crcs(e.p, e.len);
    return e;
}

/* A str as FORMAT.md lays it out, appended to buf at *at. */
static void put_str(uint8_t *buf, size_t *at, const char *s)
{
    pare_put_le32(buf + *at, (uint32_t)strlen(s));
    memcpy(buf + *at + 4, s, strlen(s));
    *at += 4 + strlen(s);
}

static pare_graph *tiny_scheme(void)
{
    pare_graph *g = tiny();
    param(g, "conv.weight")->scheme = strdup("2:4");
    return g;
}

PARE_TEST(file_scheme_roundtrip)
{
    pare_graph *g = tiny_scheme();
    char longest[SCHEME_MAX + 1];
    for (int i = 0; i < SCHEME_MAX; i++)
        longest[i] = (char)(0x20 + i % 95); /* every printable character, space and ~ too */
    longest[SCHEME_MAX] = 0;
    param(g, "fc.weight")->scheme = strdup(longest);
    uint8_t *a, *b;
    size_t na, nb;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    CHECKF(pare_le32(a + 12) == 1, "a file with schemes says format 1.%u, not 1.1",
           (unsigned)pare_le32(a + 12));
    int w = tensor_index(g, "conv.weight");
    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        CHECK(same_str(h->params[w].scheme, "2:4"));
        CHECK(same_str(param(h, "fc.weight")->scheme, longest));
        CHECK(param(h, "bn.gamma")->scheme == NULL);
        encode(h, NULL, 0, &b, &nb);
        CHECK(nb == na && !memcmp(a, b, na));
        free(b);
        pare_graph_free(h);
    }

    /* The attribute as FORMAT.md lays it out; a scheme alone adds no 1.1 field
     * (tiny's tensors are not packed), so a 1.0 reader reads the record whole. */
    tfield f = tens_fields(a, w);
    CHECK(pare_le32(a + f.nattr) == 1);
    CHECK(pare_le32(a + f.attrs) == 6 && !memcmp(a + f.attrs + 4, "scheme", 6));
    CHECK(pare_le32(a + f.attrs + 10) == 3 && !memcmp(a + f.attrs + 14, "2:4", 3));
    CHECK(f.end == f.enc);

    /* Other keys are read, checked and skipped, before or after the scheme. */
    uint8_t ins[128];
    size_t n = 0;
    put_str(ins, &n, "note");
    put_str(ins, &n, "made by hand");
    for (int after = 0; after < 2; after++) {
        size_t at = after ? f.end : f.attrs;
        edit e = splice_tens(a, na, f.name, at, at, ins, n);
        pare_put_le32(e.p + tens_fields(e.p, w).nattr, 2);
        fix_crcs(e.p, e.len);
        h = decode_ok(e.p, e.len, NULL);
        CHECKF(h && graphs_differ(g, h) == 0, "another attribute %s the scheme changed the graph",
               after ? "after" : "before");
        pare_graph_free(h);
        free(e.p);
    }

    /* Two schemes; values that are not 1 to 64 printable ASCII characters. */
    n = 0;
    put_str(ins, &n, "scheme");
    put_str(ins, &n, "4:8");
    edit e = splice_tens(a, na, f.name, f.end, f.end, ins, n);
    pare_put_le32(e.p + tens_fields(e.p, w).nattr, 2);
    REJECT(e, "section TENS: tensor 'conv.weight' has two scheme attributes");
    const char *bad_value = "has a scheme attribute that is not 1 to 64 printable ASCII characters";
    e = copy(a, na);
    e.p[f.attrs + 15] = 0x01;
    REJECT(e, bad_value);
    e = copy(a, na);
    e.p[f.attrs + 15] = 0xC3;
    REJECT(e, bad_value);
    e = copy(a, na);
    e.p[f.attrs + 15] = 0x7F;
    REJECT(e, bad_value);
    uint8_t empty[4] = {0};
    e = splice_tens(a, na, f.name, f.attrs + 10, f.attrs + 17, empty, 4);
    REJECT(e, bad_value);
    n = 0;
    char v65[66];
    memset(v65, 'x', 65);
    v65[65] = 0;
    put_str(ins, &n, v65);
    e = splice_tens(a, na, f.name, f.attrs + 10, f.attrs + 17, ins, n);
    REJECT(e, bad_value);
    free(a);

    /* The writer refuses what the reader would. */
    pare_param *p = param(g, "conv.weight");
    const char *bad[] = {"", "2:4\n", "caf\xc3\xa9", "tab\there", v65};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        free(p->scheme);
        p->scheme = strdup(bad[i]);
        a = NULL;
        CHECK_STATUS(pare_file_encode(g, NULL, 0, &a, &na), PARE_EINVAL);
        CHECKF(a == NULL && strstr(pare_last_error(), "tensor 'conv.weight' has a sparsity scheme"),
               "scheme %zu: %s", i, pare_last_error());
    }
    /* No scheme anywhere: the file is 1.0 again. */
    free(p->scheme);
    p->scheme = NULL;
    free(param(g, "fc.weight")->scheme);
    param(g, "fc.weight")->scheme = NULL;
    encode(g, NULL, 0, &a, &na);
    CHECK(a && pare_le32(a + 12) == 0);
    free(a);
    pare_graph_free(g);
}

/* Every weight of lenet masked at another sparsity; pruned values +0.0. */
PARE_TEST(file_packed_by_mask_roundtrip)
{
    static const char *names[5] = {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight",
                                   "fc3.weight"};
    static const double sparsity[5] = {0, 0.5, 0.9, 0.99, 1.0};
    pare_graph *g = zoo("lenet", 21);
    size_t dense_len;
    uint8_t *a, *b;
    size_t na, nb;
    encode(g, NULL, 0, &a, &dense_len);
    free(a);
    for (int i = 0; i < 5; i++)
        prune(param(g, names[i]), sparsity[i], (uint64_t)i + 1);
    put_odd_values(param(g, "fc1.weight"));
    put_odd_values(param(g, "conv2.weight"));
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    CHECK(pare_le32(a + 12) == 1);
    fsec data;
    find_sec(a, "DATA", &data);
    for (int i = 0; i < 5; i++) {
        const pare_param *p = param(g, names[i]);
        int k = tensor_index(g, names[i]);
        tfield f = tens_fields(a, k);
        size_t keep = kept(p);
        uint64_t doff = pare_le64(a + f.doff), dlen = pare_le64(a + f.dlen);
        if (sparsity[i] == 0) {
            /* Nothing to leave out: dense, and the record as 1.0 wrote it. */
            CHECK(keep == p->t->n && f.end == f.enc && dlen == 4 * p->t->n);
            continue;
        }
        CHECKF(tens_enc(a, k) == 1, "%s (sparsity %g) has data encoding %u, not 1", names[i],
               sparsity[i], (unsigned)tens_enc(a, k));
        CHECKF(dlen == 4 * keep, "%s keeps %zu values but has %llu data bytes", names[i], keep,
               (unsigned long long)dlen);
        CHECK(doff % 64 == 0 && doff >= data.off && doff + dlen <= data.off + data.size);
        CHECK(pare_le64(a + f.nzoff) == 0 && pare_le64(a + f.nzlen) == 0);
        CHECK(pare_le32(a + f.menc) == 1 && pare_le64(a + f.mlen) == (p->t->n + 7) / 8);
        /* The kept values in element order, as they are. */
        size_t j = 0;
        for (size_t e = 0; e < p->t->n && j < 64; e++)
            if (p->mask[e])
                CHECK(pare_le32(a + doff + 4 * j++) == bits_of(p->t->data[e]));
    }
    CHECK(kept(param(g, "fc3.weight")) == 0);
    CHECKF(na < dense_len / 4, "pruned lenet: %zu bytes, dense %zu", na, dense_len);

    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        const pare_param *p = param(h, "fc1.weight");
        size_t j = 0;
        for (size_t e = 0; e < p->t->n; e++) {
            if (!p->mask[e])
                CHECKF(bits_of(p->t->data[e]) == 0, "pruned value %zu is %08x", e,
                       (unsigned)bits_of(p->t->data[e]));
            else if (j < 7 && ++j)
                CHECK(bits_of(p->t->data[e]) == bits_of(param(g, "fc1.weight")->t->data[e]));
        }
        CHECK(j == 7);
        encode(h, NULL, 0, &b, &nb);
        CHECK(nb == na && !memcmp(a, b, na));
        free(b);
        pare_graph_free(h);
    }
    free(a);
    pare_graph_free(g);
}

/* A pruned value that is not +0.0 (trained past its mask, or -0.0) makes the
 * tensor dense: a packed file would lose it. */
PARE_TEST(file_packed_only_when_lossless)
{
    static const uint32_t stray[3] = {0x3fc00000u /* 1.5 */, 0x80000000u /* -0.0 */,
                                      0x7fc00001u /* NaN */};
    for (int i = 0; i < 3; i++) {
        pare_graph *g = zoo("lenet", 30 + (uint64_t)i);
        pare_param *p = param(g, "fc1.weight");
        prune(p, 0.9, 3);
        size_t e = 0;
        while (p->mask[e])
            e++;
        set_bits(&p->t->data[e], stray[i]);
        uint8_t *a;
        size_t na;
        encode(g, NULL, 0, &a, &na);
        if (!a)
            continue;
        int k = tensor_index(g, "fc1.weight");
        tfield f = tens_fields(a, k);
        CHECKF(f.end == f.enc && pare_le64(a + f.dlen) == 4 * p->t->n,
               "a pruned value %08x did not keep fc1.weight dense", (unsigned)stray[i]);
        CHECK(pare_le32(a + 12) == 0);
        pare_graph *h = decode_ok(a, na, NULL);
        if (h) {
            CHECK(graphs_differ(g, h) == 0);
            CHECK(bits_of(param(h, "fc1.weight")->t->data[e]) == stray[i]);
            pare_graph_free(h);
        }
        free(a);
        pare_graph_free(g);
    }
}

/* Unmasked tensors mostly +0.0 (an imported pruned model) store a bitmap of
 * their nonzero values and those values only. */
PARE_TEST(file_packed_by_nonzero_roundtrip)
{
    pare_graph *g = zoo("lenet", 40);
    pare_param *seventy = param(g, "fc1.weight"), *forty = param(g, "fc2.weight");
    pare_param *all = param(g, "conv2.weight"), *negz = param(g, "fc3.weight");
    zero_out(seventy, 0.7, 1);
    put_odd_values(seventy);
    zero_out(forty, 0.4, 2);
    zero_out(all, 1.0, 3);
    for (size_t e = 0; e < negz->t->n; e++)
        set_bits(&negz->t->data[e], 0x80000000u); /* -0.0 is not zero here */
    uint8_t *a, *b;
    size_t na, nb;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    CHECK(pare_le32(a + 12) == 1);
    fsec data;
    find_sec(a, "DATA", &data);
    const pare_param *packed[2] = {seventy, all};
    for (int i = 0; i < 2; i++) {
        const pare_param *p = packed[i];
        int k = tensor_index(g, p->name);
        tfield f = tens_fields(a, k);
        size_t nz = nonzero(p);
        CHECKF(tens_enc(a, k) == 2, "%s has data encoding %u, not 2", p->name,
               (unsigned)tens_enc(a, k));
        uint64_t doff = pare_le64(a + f.doff), dlen = pare_le64(a + f.dlen);
        uint64_t zoff = pare_le64(a + f.nzoff), zlen = pare_le64(a + f.nzlen);
        CHECK(dlen == 4 * nz && zlen == (p->t->n + 7) / 8);
        CHECK(pare_le32(a + f.menc) == 0 && pare_le64(a + f.moff) == 0);
        CHECK(zoff % 64 == 0 && doff % 64 == 0);
        CHECK(dlen == 0 || zoff >= doff + dlen || doff >= zoff + zlen);
        CHECK(zoff >= data.off && zoff + zlen <= data.off + data.size);
        CHECK(doff >= data.off && doff + dlen <= data.off + data.size);
        size_t j = 0;
        int bitmap_ok = 1, values_ok = 1;
        for (size_t e = 0; e < p->t->n; e++) {
            int set = (a[zoff + e / 8] >> (e % 8)) & 1;
            bitmap_ok &= set == (bits_of(p->t->data[e]) != 0);
            if (set)
                values_ok &= pare_le32(a + doff + 4 * j++) == bits_of(p->t->data[e]);
        }
        CHECKF(bitmap_ok && values_ok, "%s: the nonzero bitmap or its values are not as stored",
               p->name);
    }
    CHECK(nonzero(all) == 0 && pare_le64(a + tens_fields(a, tensor_index(g, all->name)).dlen) == 0);
    /* 40% zeros, or -0.0 everywhere: dense, records as 1.0 wrote them. */
    const pare_param *dense[2] = {forty, negz};
    for (int i = 0; i < 2; i++) {
        tfield f = tens_fields(a, tensor_index(g, dense[i]->name));
        CHECKF(f.end == f.enc && pare_le64(a + f.dlen) == 4 * dense[i]->t->n, "%s is not dense",
               dense[i]->name);
    }
    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        CHECK(param(h, "fc1.weight")->mask == NULL);
        encode(h, NULL, 0, &b, &nb);
        CHECK(nb == na && !memcmp(a, b, na));
        free(b);
        pare_graph_free(h);
    }
    free(a);
    pare_graph_free(g);
}

/* tiny() with a packed-by-mask conv.weight (54 values) and a packed-by-nonzero
 * fc.weight (108 values, unmasked, quantized): small enough to damage bit by bit. */
static pare_graph *tiny_packed(void)
{
    pare_graph *g = tiny_scheme();
    pare_param *w = param(g, "conv.weight"), *fw = param(g, "fc.weight");
    for (size_t e = 0; e < w->t->n; e++)
        if (!w->mask[e])
            set_bits(&w->t->data[e], 0);
    set_bits(&w->t->data[1], 0x80000000u);
    w->mask[1] = 1;
    zero_out(fw, 0.75, 5);
    set_bits(&fw->t->data[0], 0x7fc12345u);
    return g;
}

PARE_TEST(file_rejects_unknown_data_encoding)
{
    pare_graph *g = tiny_packed();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    int w = tensor_index(g, "conv.weight"), fb = tensor_index(g, "fc.bias");
    CHECK(tens_enc(a, w) == 1 && tens_enc(a, tensor_index(g, "fc.weight")) == 2);
    tfield f = tens_fields(a, w);
    edit e = copy(a, na);
    pare_put_le32(e.p + f.enc, 6); /* 3 and 4 are 1.3's codes, 5 1.4's basis coefficients */
    REJECT(e, "m.pare: section TENS: tensor 'conv.weight' uses data encoding 6, which this pare "
              "does not know (written by a newer pare?)");
    e = copy(a, na);
    pare_put_le32(e.p + f.enc, 0xFFFFFFFFu);
    REJECT(e, "tensor 'conv.weight' uses data encoding 4294967295, which this pare does not know "
              "(written by a newer pare?)");
    /* The same on a dense record given the 1.1 fields. */
    tfield fbf = tens_fields(a, fb);
    uint8_t tail[20] = {9};
    e = splice_tens(a, na, fbf.name, fbf.end, fbf.end, tail, sizeof tail);
    REJECT(e, "tensor 'fc.bias' uses data encoding 9, which this pare does not know");
    /* Encoding 0 written out in full is dense, as if absent. */
    tail[0] = 0;
    e = splice_tens(a, na, fbf.name, fbf.end, fbf.end, tail, sizeof tail);
    pare_graph *h = decode_ok(e.p, e.len, NULL);
    CHECK(h && graphs_differ(g, h) == 0);
    pare_graph_free(h);
    free(e.p);
    free(a);
    pare_graph_free(g);
}

PARE_TEST(file_rejects_damaged_packed_tensors)
{
    pare_graph *g = tiny_packed();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    fsec data;
    if (!a || !find_sec(a, "DATA", &data))
        return;
    int w = tensor_index(g, "conv.weight"), fwi = tensor_index(g, "fc.weight");
    const pare_param *pw = &g->params[w], *pf = &g->params[fwi];
    CHECK(tens_enc(a, w) == 1 && tens_enc(a, fwi) == 2);
    tfield f = tens_fields(a, w), ff = tens_fields(a, fwi);
    size_t keep = kept(pw), nz = nonzero(pf);
    uint64_t moff = pare_le64(a + f.moff), doff = pare_le64(a + f.doff);
    uint64_t zoff = pare_le64(a + ff.nzoff), fdoff = pare_le64(a + ff.doff);
    char want[200];
    edit e;

    /* Packed by mask: the mask's population fixes the data length. */
    size_t one = 0, zero = 0;
    while (!pw->mask[one])
        one++;
    while (pw->mask[zero])
        zero++;
    e = copy(a, na);
    e.p[moff + one / 8] ^= (uint8_t)(1u << (one % 8));
    snprintf(want, sizeof want,
             "tensor 'conv.weight' is packed by its mask, which keeps %zu of its 54 values, but "
             "has %zu data bytes, not %zu",
             keep - 1, 4 * keep, 4 * (keep - 1));
    REJECT(e, want);
    e = copy(a, na);
    e.p[moff + zero / 8] ^= (uint8_t)(1u << (zero % 8));
    snprintf(want, sizeof want, "which keeps %zu of its 54 values", keep + 1);
    REJECT(e, want);
    e = copy(a, na);
    e.p[moff] ^= 1;
    expect_reject(e.p, e.len, "section DATA is corrupted", "mask bit flipped, CRC not fixed");
    free(e.p);
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, 4 * keep + 4);
    REJECT(e, "but has");
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, 4 * keep - 4);
    REJECT(e, "is packed by its mask, which keeps");
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, 4 * 54);
    snprintf(want, sizeof want, "which keeps %zu of its 54 values, but has 216 data bytes", keep);
    REJECT(e, want);
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, data.size + 64);
    REJECT(e, "its data array");
    e = copy(a, na);
    pare_put_le64(e.p + f.doff, doff + 4);
    REJECT(e, "its data array starts at offset");
    /* Read as dense, the record says what a 1.0 reader says of a packed tensor. */
    e = copy(a, na);
    pare_put_le32(e.p + f.enc, 0);
    snprintf(want, sizeof want, "tensor 'conv.weight' has 54 values but %zu data bytes", 4 * keep);
    REJECT(e, want);
    e = copy(a, na);
    pare_put_le32(e.p + f.menc, 0);
    pare_put_le64(e.p + f.moff, 0);
    pare_put_le64(e.p + f.mlen, 0);
    REJECT(e, "tensor 'conv.weight' is packed by its mask (data encoding 1) but has no mask");
    e = copy(a, na);
    pare_put_le64(e.p + f.nzoff, data.off);
    REJECT(e, "tensor 'conv.weight' has data encoding 1 but a nonzero bitmap offset or length");
    e = copy(a, na);
    pare_put_le64(e.p + f.nzlen, 7);
    REJECT(e, "has data encoding 1 but a nonzero bitmap offset or length");
    e = splice_tens(a, na, f.name, f.enc + 12, f.enc + 20, NULL, 0);
    REJECT(e, "the record of tensor 'conv.weight' ends 12 bytes into its data encoding fields");
    e = splice_tens(a, na, f.name, f.enc + 1, f.enc + 20, NULL, 0);
    REJECT(e, "ends 1 bytes into its data encoding fields, which take 20");

    /* Packed by nonzero bitmap: its population fixes the data length, and it
     * marks exactly the values that are not +0.0. */
    size_t set = 0;
    while (!((a[zoff + set / 8] >> (set % 8)) & 1))
        set++;
    e = copy(a, na);
    e.p[zoff + set / 8] ^= (uint8_t)(1u << (set % 8));
    snprintf(want, sizeof want,
             "tensor 'fc.weight' is packed by its nonzero bitmap, which marks %zu of its 108 "
             "values, but has %zu data bytes, not %zu",
             nz - 1, 4 * nz, 4 * (nz - 1));
    REJECT(e, want);
    e = copy(a, na);
    pare_put_le32(e.p + fdoff, 0);
    snprintf(want, sizeof want,
             "tensor 'fc.weight': its nonzero bitmap marks element %zu, but the value stored for "
             "it is 0",
             set);
    REJECT(e, want);
    e = copy(a, na);
    e.p[zoff + 13] |= 0x80; /* bit 111 of 108 */
    REJECT(e, "tensor 'fc.weight': its nonzero bitmap has bits set past its 108 values");
    e = copy(a, na);
    pare_put_le64(e.p + ff.nzlen, 13);
    REJECT(e, "tensor 'fc.weight' has 108 values but a 13-byte nonzero bitmap");
    e = copy(a, na);
    pare_put_le64(e.p + ff.nzoff, 0);
    pare_put_le64(e.p + ff.nzlen, 0);
    REJECT(e, "tensor 'fc.weight' has 108 values but a 0-byte nonzero bitmap");
    e = copy(a, na);
    pare_put_le64(e.p + ff.nzoff, zoff + 8);
    REJECT(e, "tensor 'fc.weight': its nonzero bitmap array starts at offset");
    e = copy(a, na);
    pare_put_le64(e.p + ff.nzoff, data.off + data.size);
    REJECT(e, "its nonzero bitmap array (14 bytes at offset");
    e = copy(a, na);
    pare_put_le64(e.p + ff.dlen, 4 * nz + 64);
    REJECT(e, "is packed by its nonzero bitmap, which marks");

    /* Many records pointing at one bitmap: fc.weight made as large as DATA's
     * bytes can mark, after conv.weight's bitmap was counted. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.dims, 1);
    pare_put_le32(e.p + ff.dims + 4, (uint32_t)(8 * data.size - 8));
    pare_put_le64(e.p + ff.nzoff, data.off);
    pare_put_le64(e.p + ff.nzlen, data.size - 1);
    REJECT(e, "more than the");

    /* A value changed with its CRC fixed is a different model, not damage the
     * format can see: as for dense tensors, the CRC is what guards values. */
    e = copy(a, na);
    e.p[doff + 4 * keep - 1] ^= 0x40;
    expect_reject(e.p, e.len, "section DATA is corrupted", "packed value flipped");
    fix_crcs(e.p, e.len);
    pare_graph *h = decode_ok(e.p, e.len, NULL);
    if (h) {
        size_t last = pw->t->n - 1;
        while (!pw->mask[last])
            last--;
        const pare_param *hw = param(h, "conv.weight");
        CHECK((bits_of(hw->t->data[last]) ^ bits_of(pw->t->data[last])) == 0x40000000u);
        CHECK(!memcmp(hw->t->data, pw->t->data, 4 * last));
    }
    pare_graph_free(h);
    free(e.p);

    /* Every cut and every flipped bit of the whole file. */
    char ctx[64];
    for (size_t n = 1; n < na; n++) {
        snprintf(ctx, sizeof ctx, "packed tiny cut at %zu", n);
        expect_reject(a, n, "truncated", ctx);
    }
    flip_bits(a, na, 0, 8 * na, 1, "packed tiny");
    free(a);
    pare_graph_free(g);
}

/* Later minor versions may append fields after the 1.1 ones: skipped. */
PARE_TEST(file_packed_forward_compatible)
{
    pare_graph *g = tiny_packed();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    uint8_t later[12];
    memset(later, 0xAB, sizeof later);
    for (int k = 0; k < g->n_params; k++) {
        tfield f = tens_fields(a, k);
        if (f.end == f.enc)
            continue; /* a dense record: later fields need the 1.1 ones first */
        edit e = splice_tens(a, na, f.name, f.end, f.end, later, sizeof later);
        pare_graph *h = decode_ok(e.p, e.len, NULL);
        CHECKF(h && graphs_differ(g, h) == 0, "later fields on %s", g->params[k].name);
        pare_graph_free(h);
        free(e.p);
    }
    free(a);
    pare_graph_free(g);
}

static int cmp_magnitude(const void *x, const void *y)
{
    float a = fabsf(**(const float *const *)x), b = fabsf(**(const float *const *)y);
    if (a != b)
        return a < b ? -1 : 1;
    /* Ties by position, so the order does not depend on qsort. */
    const float *p = *(const float *const *)x, *q = *(const float *const *)y;
    return (p > q) - (p < q);
}

/* The issue's target: a 90%-sparse fmnist-cnn's file is at most 35% of the dense one. */
PARE_TEST(file_packed_size_fmnist_cnn)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 7, &g));
    if (!g)
        return;
    char dense_path[1024], sparse_path[1024];
    snprintf(dense_path, sizeof dense_path, "%s", pare_test_path("dense.pare"));
    snprintf(sparse_path, sizeof sparse_path, "%s", pare_test_path("sparse.pare"));
    CHECK_OK(pare_graph_save(g, dense_path));
    size_t weights = 0;
    /* Magnitude pruning of every conv and linear weight: the smallest 90%
     * masked and set to +0.0, as a pruner leaves them. */
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        pare_op_type op = g->nodes[p->node].op;
        if (p->role != PARE_ROLE_WEIGHT || (op != PARE_OP_CONV2D && op != PARE_OP_LINEAR))
            continue;
        size_t n = p->t->n, cut = n * 9 / 10;
        float **order = malloc(n * sizeof *order);
        for (size_t e = 0; e < n; e++)
            order[e] = &p->t->data[e];
        qsort(order, n, sizeof *order, cmp_magnitude);
        p->mask = malloc(n);
        memset(p->mask, 1, n);
        for (size_t e = 0; e < cut; e++) {
            p->mask[order[e] - p->t->data] = 0;
            *order[e] = 0.0f;
        }
        free(order);
        p->scheme = strdup("unstructured");
        weights += n;
    }
    CHECK_OK(pare_graph_save(g, sparse_path));
    uint8_t *dense = NULL, *sparse = NULL, *again = NULL;
    size_t nd = 0, ns = 0, nagain = 0;
    CHECK_OK(pare_read_file(dense_path, SIZE_MAX, &dense, &nd));
    CHECK_OK(pare_read_file(sparse_path, SIZE_MAX, &sparse, &ns));
    printf("fmnist-cnn, %zu conv/linear weights: dense file %zu bytes, 90%%-pruned file %zu "
           "bytes (%.1f%%)\n",
           weights, nd, ns, 100.0 * (double)ns / (double)(nd ? nd : 1));
    CHECKF(ns * 100 <= nd * 35, "the 90%%-pruned file is %zu bytes, more than 35%% of %zu", ns, nd);
    pare_graph *h = NULL;
    CHECK_OK(pare_graph_load(sparse_path, &h));
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        CHECK_OK(pare_file_encode(h, NULL, 0, &again, &nagain));
        CHECK(nagain == ns && again && !memcmp(again, sparse, ns));
        pare_graph_free(h);
    }
    free(again);
    free(dense);
    free(sparse);
    pare_graph_free(g);
}

/* A committed seed of tests/fuzz/seeds/fuzz_pare_file, read and decoded, its
 * header's minor version `minor`; NULL (skipped, with a line) when the seeds
 * are not here, run from elsewhere than the repository root. */
static pare_graph *committed_seed(const char *path, uint32_t minor, uint8_t **file, size_t *n)
{
    *file = NULL;
    *n = 0;
    if (!pare_file_exists(path)) {
        printf("skipped: %s is not here; run from the repository root\n", path);
        return NULL;
    }
    pare_graph *g = NULL;
    CHECK_OK(pare_read_file(path, SIZE_MAX, file, n));
    if (*file)
        CHECK_OK(pare_file_decode(*file, *n, path, &g, NULL));
    CHECKF(!*file || *n < 16 || pare_le32(*file + 12) == minor, "%s says minor %u, not %u", path,
           *file && *n >= 16 ? pare_le32(*file + 12) : 0, minor);
    return g;
}

/* g written again is the seed, byte for byte. */
static void written_as_seed(const pare_graph *g, const uint8_t *file, size_t n, const char *path)
{
    uint8_t *again = NULL;
    size_t m = 0;
    CHECK_OK(pare_file_encode(g, NULL, 0, &again, &m));
    CHECKF(m == n && again && !memcmp(file, again, n), "%s is no longer written the same", path);
    free(again);
}

/* The committed 1.1 seed: a packed-by-mask conv weight with a scheme and a
 * packed-by-nonzero linear weight; it loads, and is written back byte for byte. */
PARE_TEST(file_reads_committed_1_1_file)
{
    const char *path = "tests/fuzz/seeds/fuzz_pare_file/packed-mask-nonzero-scheme.pare";
    uint8_t *file = NULL;
    size_t n = 0;
    pare_graph *g = committed_seed(path, 1, &file, &n);
    if (g) {
        written_as_seed(g, file, n, path);
        const pare_param *w = param(g, "c.weight"), *fw = param(g, "fc.weight");
        CHECK(tens_enc(file, tensor_index(g, "c.weight")) == 1);
        CHECK(tens_enc(file, tensor_index(g, "fc.weight")) == 2);
        CHECK(same_str(w->scheme, "unstructured") && w->mask && kept(w) == 9);
        CHECK(bits_of(w->t->data[2]) == 0x80000000u && w->t->data[1] == 0.0f);
        CHECK(fw->mask == NULL && nonzero(fw) == 10);
        CHECK(bits_of(fw->t->data[5]) == 0x7fc01234u && bits_of(fw->t->data[1]) == 0x80000000u);
    }
    free(file);
    pare_graph_free(g);
}

/* ---- format 1.3: tensors stored as integer codes ----------------------------- */

/* FORMAT.md's affine value, written out here independently of the library. */
static float affine_value(float scale, int32_t zp, int32_t code)
{
    return scale * (float)((int64_t)code - (int64_t)zp);
}

/* Affine quantization of p (scheme 1, or 2 along axis 0) with values that are
 * exactly codes: random codes in the bits' signed range (-1 and +1 at 1 bit),
 * zero points in [-2, 2]; pruned values +0.0. */
static void set_affine(pare_param *p, int bits, int scheme, uint64_t seed)
{
    free(p->q.scale);
    free(p->q.zero_point);
    memset(&p->q, 0, sizeof p->q);
    int n = scheme == 2 ? p->t->dims[0] : 1;
    set_quant(p, bits, scheme, 0, n, seed);
    pare_rng r;
    pare_rng_seed(&r, seed, 9, (uint64_t)bits, (uint64_t)scheme);
    for (int c = 0; c < n; c++)
        p->q.zero_point[c] = (int32_t)pare_rng_below(&r, 5) - 2;
    size_t per = p->t->n / (size_t)n;
    int32_t lo = bits == 1 ? -1 : -(1 << (bits - 1)), span = bits == 1 ? 2 : 1 << bits;
    for (size_t e = 0; e < p->t->n; e++) {
        int32_t code = lo + (int32_t)pare_rng_below(&r, (uint64_t)span);
        if (bits == 1 && code == 0)
            code = 1;
        size_t c = e / per;
        p->t->data[e] = affine_value(p->q.scale[c], p->q.zero_point[c], code);
        if (p->mask && !p->mask[e])
            set_bits(&p->t->data[e], 0);
    }
}

/* Weight sharing of p: a k x d codebook of random floats (row 1 repeated as
 * row 3 when k > 3, so two rows give the same values), every run one of its
 * rows; pruned values +0.0. */
static void set_codebook(pare_param *p, int k, int d, uint64_t seed)
{
    free(p->q.scale);
    free(p->q.zero_point);
    free(p->q.codebook);
    memset(&p->q, 0, sizeof p->q);
    pare_rng r;
    pare_rng_seed(&r, seed, 10, (uint64_t)k, (uint64_t)d);
    p->q.scheme = 3;
    p->q.k = k;
    p->q.d = d;
    p->q.bits = 1;
    while ((1 << p->q.bits) < k)
        p->q.bits++;
    p->q.codebook = malloc(sizeof(float) * (size_t)k * (size_t)d);
    for (int i = 0; i < k * d; i++)
        p->q.codebook[i] = pare_rng_uniform(&r) - 0.5f;
    if (k > 3)
        memcpy(p->q.codebook + 3 * d, p->q.codebook + d, sizeof(float) * (size_t)d);
    for (size_t u = 0; u < p->t->n / (size_t)d; u++) {
        int row = (int)pare_rng_below(&r, (uint64_t)k);
        for (int j = 0; j < d; j++) {
            size_t e = u * (size_t)d + (size_t)j;
            p->t->data[e] = p->q.codebook[row * d + j];
            if (p->mask && !p->mask[e])
                set_bits(&p->t->data[e], 0);
        }
    }
}

static int same_codebook(const pare_param *a, const pare_param *b)
{
    if (a->q.k != b->q.k || a->q.d != b->q.d || !a->q.codebook != !b->q.codebook)
        return 0;
    return !a->q.codebook ||
           !memcmp(a->q.codebook, b->q.codebook, sizeof(float) * (size_t)a->q.k * (size_t)a->q.d);
}

/* A basis tensor's coefficients after a round trip: equal in value (a zero
 * coefficient comes back +0.0) when they were stored (coded), absent when the
 * values were stored as floats. */
static int same_coef(const pare_param *a, const pare_param *b, int coded)
{
    if (a->q.scheme != 4 || !a->q.coef)
        return !b->q.coef;
    if (!coded)
        return !b->q.coef;
    if (!b->q.coef)
        return 0;
    for (size_t e = 0; e < a->t->n; e++)
        if (a->q.coef[e] != b->q.coef[e])
            return 0;
    return 1;
}

/* Encodes, checks the encoding of `name` and its data length, decodes, and
 * checks that every field and every value came back bit for bit and that
 * the loaded graph is written back byte for byte. */
static void codes_roundtrip(pare_graph *g, const char *name, uint32_t want_enc, uint64_t want_len,
                            const char *ctx)
{
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    int i = tensor_index(g, name);
    tfield f = tens_fields(a, i);
    CHECKF(tens_enc(a, i) == want_enc, "%s: %s has data encoding %u, not %u", ctx, name,
           tens_enc(a, i), want_enc);
    CHECKF(pare_le64(a + f.dlen) == want_len, "%s: %s has %llu data bytes, not %llu", ctx, name,
           (unsigned long long)pare_le64(a + f.dlen), (unsigned long long)want_len);
    /* 1.4 for a basis, 1.3 for codes or a codebook; quantized floats are 1.0's. */
    int shared = 0, basis = 0;
    for (int k = 0; k < g->n_params; k++) {
        shared |= g->params[k].q.scheme == 3;
        basis |= g->params[k].q.scheme == 4;
    }
    if (basis)
        CHECKF(pare_le32(a + 12) == 4, "%s: the file says minor %u", ctx, pare_le32(a + 12));
    else if (want_enc >= 3 || shared)
        CHECKF(pare_le32(a + 12) == 3, "%s: the file says minor %u", ctx, pare_le32(a + 12));
    pare_graph *h = decode_ok(a, na, NULL);
    if (h) {
        CHECKF(graphs_differ(g, h) == 0, "%s: a round trip changed the graph", ctx);
        for (int k = 0; k < g->n_params; k++) {
            CHECKF(same_codebook(&g->params[k], &h->params[k]), "%s: the codebook of %s changed",
                   ctx, g->params[k].name);
            CHECKF(same_coef(&g->params[k], &h->params[k], want_enc == 5), "%s: the coefficients of %s changed",
                   ctx, g->params[k].name);
        }
        encode(h, NULL, 0, &b, &nb);
        CHECKF(nb == na && b && !memcmp(a, b, na), "%s: the loaded graph is written differently",
               ctx);
        free(b);
        pare_graph_free(h);
    }
    free(a);
}

PARE_TEST(file_codes_affine_roundtrip)
{
    for (int bits = 1; bits <= 8; bits++)
        for (int scheme = 1; scheme <= 2; scheme++)
            for (int masked = 0; masked <= 1; masked++) {
                pare_graph *g = tiny();
                pare_param *w = param(g, "conv.weight"), *fw = param(g, "fc.weight");
                if (!masked) {
                    free(w->mask);
                    w->mask = NULL;
                }
                set_affine(w, bits, scheme, (uint64_t)(bits * 7 + scheme));
                set_affine(fw, bits, 1, 99);
                size_t units = masked ? kept(w) : w->t->n;
                char ctx[64];
                snprintf(ctx, sizeof ctx, "%d bits, scheme %d, %s", bits, scheme,
                         masked ? "masked" : "dense");
                codes_roundtrip(g, "conv.weight", masked ? 4 : 3, (units * (size_t)bits + 7) / 8,
                                ctx);
                codes_roundtrip(g, "fc.weight", 3, (fw->t->n * (size_t)bits + 7) / 8, ctx);
                pare_graph_free(g);
            }
}

/* Codes are chosen only when they give back every value bit for bit; else the
 * floats stay, and still round-trip exactly. */
PARE_TEST(file_codes_only_when_exact)
{
    pare_graph *g = tiny();
    pare_param *w = param(g, "conv.weight");
    free(w->mask);
    w->mask = NULL;
    set_affine(w, 4, 2, 5);
    codes_roundtrip(g, "conv.weight", 3, (54 * 4 + 7) / 8, "exact");
    /* One value a ulp away from its code. */
    uint32_t u = bits_of(w->t->data[7]);
    set_bits(&w->t->data[7], u + 1);
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "one ulp off");
    set_bits(&w->t->data[7], u);
    /* -0.0 where a code gives +0.0 (scale * 0). */
    w->q.zero_point[0] = 0;
    set_bits(&w->t->data[0], 0x80000000u);
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "-0.0");
    /* A NaN and an infinity: no code. */
    set_bits(&w->t->data[0], 0x7fc00001u);
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "NaN");
    set_affine(w, 4, 2, 5);
    set_bits(&w->t->data[3], 0xff800000u);
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "infinity");
    /* A scale that is not a number: nothing matches. */
    set_affine(w, 4, 2, 5);
    set_bits(&w->q.scale[1], 0x7fc00000u);
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "NaN scale");
    /* More than 8 bits: floats. */
    set_affine(w, 8, 1, 6);
    w->q.bits = 16;
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "16 bits");
    /* A pruned value that is not +0.0. */
    set_mask(w, 4);
    set_affine(w, 3, 1, 8);
    size_t e0 = 0;
    while (w->mask[e0])
        e0++;
    w->t->data[e0] = 0.5f;
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "pruned value kept");
    pare_graph_free(g);
}

PARE_TEST(file_codes_codebook_roundtrip)
{
    static const int ks[] = {1, 2, 5, 16, 256};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (int d = 1; d <= 3; d += 2)
            for (int masked = 0; masked <= 1; masked++) {
                pare_graph *g = tiny();
                pare_param *w = param(g, "conv.weight"), *fw = param(g, "fc.weight");
                if (!masked) {
                    free(w->mask);
                    w->mask = NULL;
                }
                int k = ks[ki], fd = d == 1 ? 9 : 3;
                set_codebook(w, k, d, (uint64_t)(k * 3 + d));
                set_codebook(fw, k, fd, 17);
                size_t runs = 0;
                for (size_t u = 0; u < w->t->n / (size_t)d; u++) {
                    int any = !masked;
                    for (int j = 0; masked && j < d; j++)
                        any |= w->mask[u * (size_t)d + (size_t)j] != 0;
                    runs += any;
                }
                char ctx[64];
                snprintf(ctx, sizeof ctx, "k %d, d %d, %s", k, d, masked ? "masked" : "dense");
                size_t bits = (size_t)w->q.bits;
                codes_roundtrip(g, "conv.weight", masked ? 4 : 3, (runs * bits + 7) / 8, ctx);
                if (k <= 16)
                    codes_roundtrip(g, "fc.weight", 3, (fw->t->n / (size_t)fd * bits + 7) / 8,
                                    ctx);
                pare_graph_free(g);
            }
    /* Values that are not rows of the codebook keep floats (and the codebook). */
    pare_graph *g = tiny();
    pare_param *w = param(g, "conv.weight");
    free(w->mask);
    w->mask = NULL;
    set_codebook(w, 5, 3, 1);
    w->t->data[4] = 0.25f;
    codes_roundtrip(g, "conv.weight", 0, 54 * 4, "not a row");
    pare_graph_free(g);
}

/* The issue's figure: fmnist-cnn with 16 (and 4) centroids per layer against
 * the float file. */
PARE_TEST(file_codes_size_fmnist_cnn)
{
    static const int ks[2] = {16, 4};
    size_t nd = 0;
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 7, &g));
    if (!g)
        return;
    uint8_t *dense = NULL;
    encode(g, NULL, 0, &dense, &nd);
    free(dense);
    pare_graph_free(g);
    for (int t = 0; t < 2; t++) {
        g = NULL;
        CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 7, &g));
        pare_share_options o;
        pare_share_options_init(&o);
        o.k = ks[t];
        o.max_iters = 10; /* the size does not depend on how well k-means converged */
        pare_share_result r;
        CHECK_OK(pare_share(g, &o, NULL, NULL, &r));
        pare_share_result_free(&r);
        uint8_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        encode(g, NULL, 0, &a, &na);
        printf("fmnist-cnn, %d centroids per layer (runs of 3 in convs, scalars in linears): %zu "
               "bytes, %.1f%% of the float file's %zu\n",
               ks[t], na, 100.0 * (double)na / (double)nd, nd);
        /* 4 bits (16) or 2 bits (4) per linear weight, a third of that per conv weight. */
        CHECKF(na * 100 <= nd * (t == 0 ? 13 : 7), "%zu bytes of %zu", na, nd);
        pare_graph *h = a ? decode_ok(a, na, NULL) : NULL;
        if (h) {
            CHECK(graphs_differ(g, h) == 0);
            for (int k = 0; k < g->n_params; k++)
                CHECK(same_codebook(&g->params[k], &h->params[k]));
            encode(h, NULL, 0, &b, &nb);
            CHECK(nb == na && b && !memcmp(a, b, na));
            pare_graph_free(h);
        }
        free(a);
        free(b);
        pare_graph_free(g);
    }
}

/* SmartExchange of p (scheme 4): a random d x d basis, coefficients 0 (about
 * 40%) or +-2^(-2 - t) with t below 2^(bits - 1), the values Ce B; pruned
 * values +0.0. Returns the nonzero coefficients. */
static size_t set_basis(pare_param *p, int d, int bits, uint64_t seed)
{
    pare_qparams_clear(&p->q);
    pare_rng r;
    pare_rng_seed(&r, seed, 11, (uint64_t)d, (uint64_t)bits);
    p->q.scheme = 4;
    p->q.bits = bits;
    p->q.k = p->q.d = d;
    p->q.n = 1;
    p->q.scale = malloc(sizeof(float));
    p->q.zero_point = calloc(1, sizeof(int32_t));
    p->q.scale[0] = 0.25f;
    p->q.codebook = malloc(sizeof(float) * (size_t)d * (size_t)d);
    p->q.coef = malloc(sizeof(float) * p->t->n);
    for (int i = 0; i < d * d; i++)
        p->q.codebook[i] = pare_rng_uniform(&r) - 0.5f;
    size_t nz = 0;
    for (size_t e = 0; e < p->t->n; e++) {
        if (pare_rng_uniform(&r) < 0.4f) {
            p->q.coef[e] = 0.0f;
            continue;
        }
        int t = (int)pare_rng_below(&r, 1u << (bits - 1));
        float m = ldexpf(p->q.scale[0], -t);
        p->q.coef[e] = pare_rng_below(&r, 2) ? -m : m;
        nz += m != 0; /* 9 bits reach past float's smallest power of two, 2^-149 */
    }
    for (size_t e = 0; e < p->t->n; e++)
        p->t->data[e] = p->mask && !p->mask[e]
                            ? 0.0f
                            : pare_qparams_basis_value(p->q.coef, p->q.codebook, d, e / (size_t)d,
                                                       (int)(e % (size_t)d));
    return nz;
}

PARE_TEST(file_codes_basis_roundtrip)
{
    static const int bitss[] = {2, 4, 9};
    for (size_t bi = 0; bi < sizeof bitss / sizeof bitss[0]; bi++)
        for (int d = 1; d <= 3; d += 2)
            for (int masked = 0; masked <= 1; masked++) {
                /* conv.weight unmasked, fc.weight masked or not (a masked
                 * 54-value tensor's floats packed by its mask would take as
                 * many 64-byte blocks as codes and a bitmap) */
                pare_graph *g = tiny();
                pare_param *w = param(g, "conv.weight"), *fw = param(g, "fc.weight");
                free(w->mask);
                w->mask = NULL;
                if (masked)
                    set_mask(fw, (uint64_t)(7 + d));
                int bits = bitss[bi];
                size_t nz = set_basis(w, d, bits, (uint64_t)(bits * 5 + d));
                size_t fnz = set_basis(fw, 3, bits, 31);
                char ctx[64];
                snprintf(ctx, sizeof ctx, "basis %dx%d, %d bits, %s", d, d, bits, masked ? "masked" : "dense");
                codes_roundtrip(g, "conv.weight", 5, (nz * (size_t)bits + 7) / 8, ctx);
                codes_roundtrip(g, "fc.weight", 5, (fnz * (size_t)bits + 7) / 8, ctx);
                pare_graph_free(g);
            }
    /* Floats (and the basis, without coefficients) whenever the coefficients
     * cannot rebuild the values or are not of the window. */
    pare_graph *g = tiny();
    pare_param *w = param(g, "fc.weight");
    set_basis(w, 3, 4, 3);
    uint32_t u = bits_of(w->t->data[5]);
    set_bits(&w->t->data[5], u + 1);
    codes_roundtrip(g, "fc.weight", 0, 108 * 4, "one ulp off");
    set_basis(w, 3, 4, 3);
    size_t e = 0;
    while (w->q.coef[e] == 0)
        e++;
    w->q.coef[e] *= 1.5f; /* not a power of two */
    for (size_t k = 0; k < w->t->n; k++)
        w->t->data[k] = pare_qparams_basis_value(w->q.coef, w->q.codebook, 3, k / 3, (int)(k % 3));
    codes_roundtrip(g, "fc.weight", 0, 108 * 4, "a coefficient off the grid");
    set_basis(w, 3, 2, 3);
    w->q.coef[e] = ldexpf(w->q.scale[0], -2); /* t = 2 needs 3 bits */
    for (size_t k = 0; k < w->t->n; k++)
        w->t->data[k] = pare_qparams_basis_value(w->q.coef, w->q.codebook, 3, k / 3, (int)(k % 3));
    codes_roundtrip(g, "fc.weight", 0, 108 * 4, "a coefficient past the window");
    set_basis(w, 3, 4, 3);
    free(w->q.coef);
    w->q.coef = NULL;
    codes_roundtrip(g, "fc.weight", 0, 108 * 4, "no coefficients");
    pare_graph_free(g);
}

/* conv.weight affine per channel, fc.weight a 3 x 3 basis with 4-bit
 * coefficients (encoding 5). */
static pare_graph *tiny_basis(size_t *fnz)
{
    pare_graph *g = tiny();
    set_affine(param(g, "conv.weight"), 4, 2, 21);
    *fnz = set_basis(param(g, "fc.weight"), 3, 4, 23);
    return g;
}

PARE_TEST(file_rejects_damaged_basis)
{
    size_t nz = 0;
    pare_graph *g = tiny_basis(&nz);
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    int fi = tensor_index(g, "fc.weight");
    CHECK(tens_enc(a, fi) == 5 && pare_le32(a + 12) == 4);
    tfield ff = tens_fields(a, fi);
    size_t cbk = ff.enc + 20, cbd = cbk + 4, cblen = cbd + 4 + 8;
    size_t flen = (nz * 4 + 7) / 8, doff = pare_le64(a + ff.doff), nzoff = pare_le64(a + ff.enc + 4);
    CHECK(pare_le64(a + ff.dlen) == flen && pare_le64(a + ff.enc + 12) == (108 + 7) / 8);
    char want[200];
    edit e;
    /* The codes' length follows the nonzero bitmap. */
    e = copy(a, na);
    pare_put_le64(e.p + ff.dlen, flen - 1);
    snprintf(want, sizeof want,
             "tensor 'fc.weight' stores %zu basis coefficients of 4 bits, which take %zu bytes, but has %zu "
             "data bytes",
             nz, flen, flen - 1);
    REJECT(e, want);
    e = copy(a, na);
    e.p[nzoff] ^= 0x01; /* one coefficient more or fewer */
    REJECT(e, "basis coefficients of 4 bits, which take");
    e = copy(a, na);
    e.p[nzoff + 13] |= 0x80; /* bit 111 of 108 */
    REJECT(e, "tensor 'fc.weight': its nonzero bitmap has bits set past its 108 coefficients");
    if ((nz * 4) % 8) {
        e = copy(a, na);
        e.p[doff + flen - 1] |= 0x80;
        REJECT(e, "tensor 'fc.weight' has bits set past its last code");
    }
    e = copy(a, na);
    pare_put_le64(e.p + ff.enc + 12, 13);
    REJECT(e, "tensor 'fc.weight' has 108 values but a 13-byte nonzero bitmap");
    /* The basis: square, dividing the last dimension, and its size. */
    e = copy(a, na);
    pare_put_le32(e.p + cbk, 1);
    pare_put_le64(e.p + cblen, 12);
    REJECT(e, "tensor 'fc.weight' has a basis of 1 rows of 3 values; a basis is d x d");
    e = copy(a, na);
    pare_put_le32(e.p + cbk, 2);
    pare_put_le32(e.p + cbd, 2);
    pare_put_le64(e.p + cblen, 16);
    REJECT(e, "has a basis of 2 values per row, which does not divide its last dimension 27");
    e = copy(a, na);
    pare_put_le64(e.p + cblen, 32);
    REJECT(e, "has a codebook of 3 rows of 3 values, which takes 36 bytes, but its codebook array has 32");
    /* Coefficient width, scale and zero point. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.qbits, 1);
    REJECT(e, "tensor 'fc.weight' has basis coefficients of 1 bits; a sign and 1 to 8 exponent bits take 2 to 9");
    e = copy(a, na);
    pare_put_le32(e.p + ff.qbits, 10);
    REJECT(e, "has basis coefficients of 10 bits");
    e = copy(a, na);
    uint32_t sb = pare_le32(a + pare_le64(a + ff.soff));
    pare_put_le32(e.p + pare_le64(a + ff.soff), sb + 1);
    REJECT(e, "has a basis whose coefficient scale is");
    e = copy(a, na);
    pare_put_le32(e.p + pare_le64(a + ff.zoff), 1);
    REJECT(e, "with zero point 1; it must be a power of two with zero point 0");
    e = copy(a, na);
    pare_put_le32(e.p + pare_le64(a + ff.soff), 0x7f800000u);
    REJECT(e, "tensor 'fc.weight' has a basis whose coefficient scale is inf with zero point 0");
    /* Encoding 5 goes with scheme 4 only, and scheme 4's codes are encoding 5. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.qscheme, 3);
    REJECT(e, "tensor 'fc.weight' has quantization scheme 3 and data encoding 5; basis coefficients "
              "(encoding 5) go with a basis (scheme 4), and only they");
    e = copy(a, na);
    pare_put_le32(e.p + ff.enc, 3);
    pare_put_le64(e.p + ff.enc + 4, 0);
    pare_put_le64(e.p + ff.enc + 12, 0);
    REJECT(e, "tensor 'fc.weight' has quantization scheme 4 and data encoding 3");
    /* The record: the basis fields cut or missing. */
    e = splice_tens(a, na, ff.name, ff.end - 4, ff.end, NULL, 0);
    REJECT(e, "the record of tensor 'fc.weight' ends 20 bytes into its codebook fields, which take 24");
    e = splice_tens(a, na, ff.name, ff.enc, ff.end, NULL, 0);
    REJECT(e, "the record of tensor 'fc.weight' has quantization scheme 4 (a basis) but no codebook fields");
    free(a);
    pare_graph_free(g);
}

/* The issue's figure for SmartExchange: fmnist-cnn with a basis per layer (3 x 3
 * in the convs, 1 x 1 in the linear layers, 3 exponent bits, half of Ce zero)
 * against the float file: a bit per coefficient and 4 per nonzero one. */
PARE_TEST(file_basis_size_fmnist_cnn)
{
    size_t nd = 0;
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 7, &g));
    if (!g)
        return;
    uint8_t *dense = NULL;
    encode(g, NULL, 0, &dense, &nd);
    free(dense);
    pare_share_options o;
    pare_share_options_init(&o);
    o.smartexchange = 1;
    o.se_iters = 2;
    pare_share_result r;
    CHECK_OK(pare_share(g, &o, NULL, NULL, &r));
    pare_share_result_free(&r);
    int bases = 0, weights = 0;
    for (int k = 0; k < g->n_params; k++) {
        weights += g->params[k].role == PARE_ROLE_WEIGHT && g->params[k].t->ndim >= 2;
        bases += g->params[k].q.scheme == 4 && g->params[k].q.coef != NULL;
    }
    CHECKF(bases == weights && bases > 0, "%d tensors have a basis and its coefficients, of %d conv and linear weights",
           bases, weights);
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    encode(g, NULL, 0, &a, &na);
    printf("fmnist-cnn, SmartExchange (3 exponent bits, half of Ce zero): %zu bytes, %.1f%% of the float "
           "file's %zu\n",
           na, 100.0 * (double)na / (double)nd, nd);
    CHECKF(na * 100 <= nd * 11, "%zu bytes of %zu", na, nd);
    pare_graph *h = a ? decode_ok(a, na, NULL) : NULL;
    if (h) {
        CHECK(graphs_differ(g, h) == 0);
        for (int k = 0; k < g->n_params; k++)
            CHECK(same_coef(&g->params[k], &h->params[k], 1));
        encode(h, NULL, 0, &b, &nb);
        CHECK(nb == na && b && !memcmp(a, b, na));
        pare_graph_free(h);
    }
    free(a);
    free(b);
    pare_graph_free(g);
}

/* A small graph with one tensor of each kind of codes: conv.weight affine
 * per channel (4 bits, zero points, masked: encoding 4), fc.weight shared
 * (k 5, d 3: encoding 3). */
static pare_graph *tiny_codes(void)
{
    pare_graph *g = tiny();
    pare_param *w = param(g, "conv.weight"), *fw = param(g, "fc.weight");
    set_affine(w, 4, 2, 21);
    set_codebook(fw, 5, 3, 22);
    return g;
}

PARE_TEST(file_rejects_damaged_codes)
{
    pare_graph *g = tiny_codes();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    int wi = tensor_index(g, "conv.weight"), fi = tensor_index(g, "fc.weight");
    CHECK(tens_enc(a, wi) == 4 && tens_enc(a, fi) == 3);
    tfield f = tens_fields(a, wi), ff = tens_fields(a, fi);
    size_t cbk = ff.enc + 20, cbd = cbk + 4, cboff = cbd + 4, cblen = cboff + 8;
    CHECK(ff.end == cblen + 8 && pare_le32(a + cbk) == 5 && pare_le32(a + cbd) == 3);
    const pare_param *w = param(g, "conv.weight");
    size_t wlen = (kept(w) * 4 + 7) / 8, flen = (36 * 3 + 7) / 8;
    CHECK(pare_le64(a + f.dlen) == wlen && pare_le64(a + ff.dlen) == flen);
    edit e;

    /* Truncated or overlong code arrays. */
    e = copy(a, na);
    pare_put_le64(e.p + f.dlen, wlen - 1);
    REJECT(e, "tensor 'conv.weight' stores");
    e = copy(a, na);
    pare_put_le64(e.p + ff.dlen, flen - 1);
    REJECT(e, "tensor 'fc.weight' stores 36 codes of 3 bits, which take 14 bytes, but has 13 "
              "data bytes");
    e = copy(a, na);
    pare_put_le64(e.p + ff.dlen, flen + 1);
    REJECT(e, "which take 14 bytes, but has 15 data bytes");
    /* A code past the codebook's 5 rows: set every bit of the first code. */
    e = copy(a, na);
    e.p[pare_le64(a + ff.doff)] |= 0x07;
    REJECT(e, "tensor 'fc.weight': the code of run 0 is 7, but its codebook has 5 rows");
    /* Bits past the last code (36 x 3 = 108 bits: 4 spare in byte 13). */
    e = copy(a, na);
    e.p[pare_le64(a + ff.doff) + 13] |= 0x80;
    REJECT(e, "tensor 'fc.weight' has bits set past its last code");
    /* The codebook: rows, row length, size, place. */
    e = copy(a, na);
    pare_put_le64(e.p + cblen, 56);
    REJECT(e, "tensor 'fc.weight' has a codebook of 5 rows of 3 values, which takes 60 bytes, but "
              "its codebook array has 56");
    e = copy(a, na);
    pare_put_le32(e.p + cbk, 4);
    REJECT(e, "has a codebook of 4 rows of 3 values, which takes 48 bytes");
    e = copy(a, na);
    pare_put_le32(e.p + cbk, 0);
    REJECT(e, "is shared through a codebook of 0 rows; 1 to 256 are allowed");
    e = copy(a, na);
    pare_put_le32(e.p + cbk, 257);
    REJECT(e, "is shared through a codebook of 257 rows");
    e = copy(a, na);
    pare_put_le32(e.p + cbd, 17);
    REJECT(e, "has codebook rows of 17 values; 1 to 16 are allowed");
    e = copy(a, na);
    pare_put_le32(e.p + cbd, 2);
    pare_put_le64(e.p + cblen, 40);
    REJECT(e, "has codebook rows of 2 values, which do not divide its last dimension 27");
    e = copy(a, na);
    pare_put_le64(e.p + cboff, pare_le64(a + cboff) + 4);
    REJECT(e, "tensor 'fc.weight': its codebook array starts at offset");
    e = copy(a, na);
    pare_put_le64(e.p + cboff, 0);
    REJECT(e, "its codebook array (60 bytes at offset 0) is not inside the DATA section");
    /* Bits: 0, more than 8, and not what the codebook needs. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.qbits, 0);
    REJECT(e, "tensor 'fc.weight' has a codebook of 5 rows, whose codes take 3 bits, but says 0 "
              "bits");
    e = copy(a, na);
    pare_put_le32(e.p + ff.qbits, 4);
    REJECT(e, "has a codebook of 5 rows, whose codes take 3 bits, but says 4 bits");
    e = copy(a, na);
    pare_put_le32(e.p + f.qbits, 9);
    REJECT(e, "tensor 'conv.weight' is stored as codes (data encoding 4) but is quantized to 9 "
              "bits; codes take 1 to 8");
    e = copy(a, na);
    pare_put_le32(e.p + f.qbits, 0);
    REJECT(e, "tensor 'conv.weight' is stored as codes (data encoding 4) but is quantized to 0 "
              "bits; codes take 1 to 8");
    /* Codes need a quantized tensor, encoding 4 a mask. */
    tfield fb = tens_fields(a, tensor_index(g, "fc.bias"));
    uint8_t tail[20] = {3};
    e = splice_tens(a, na, fb.name, fb.end, fb.end, tail, sizeof tail);
    REJECT(e, "tensor 'fc.bias' is stored as codes (data encoding 3) but is quantized to 0 bits");
    e = copy(a, na);
    pare_put_le32(e.p + ff.enc, 4);
    REJECT(e, "tensor 'fc.weight' stores codes packed by its mask (data encoding 4) but has no "
              "mask");
    /* The record of a shared tensor: its codebook fields cut, or missing. */
    e = splice_tens(a, na, ff.name, ff.end - 4, ff.end, NULL, 0);
    REJECT(e, "the record of tensor 'fc.weight' ends 20 bytes into its codebook fields, which "
              "take 24");
    e = splice_tens(a, na, ff.name, ff.enc, ff.end, NULL, 0);
    REJECT(e, "the record of tensor 'fc.weight' has quantization scheme 3 (a codebook) but no "
              "codebook fields");
    /* Another scheme: the codebook fields are then a later version's, and the
     * codes are one per value. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.qscheme, 1);
    REJECT(e, "tensor 'fc.weight' stores 108 codes of 3 bits, which take 41 bytes, but has 14 "
              "data bytes");
    /* A huge tensor claimed by a few code bytes is refused before it is made. */
    e = copy(a, na);
    pare_put_le32(e.p + ff.dims, 40000);
    REJECT(e, "tensor 'fc.weight' stores 360000 codes of 3 bits, which take 135000 bytes, but has "
              "14 data bytes");
    free(a);
    pare_graph_free(g);
}

/* What a later minor version appends after the codebook fields is skipped. */
PARE_TEST(file_codes_forward_compatible)
{
    pare_graph *g = tiny_codes();
    uint8_t *a;
    size_t na;
    encode(g, NULL, 0, &a, &na);
    if (!a)
        return;
    uint8_t later[12];
    memset(later, 0xCD, sizeof later);
    const char *names[2] = {"conv.weight", "fc.weight"};
    for (int k = 0; k < 2; k++) {
        tfield f = tens_fields(a, tensor_index(g, names[k]));
        edit e = splice_tens(a, na, f.name, f.end, f.end, later, sizeof later);
        pare_graph *h = decode_ok(e.p, e.len, NULL);
        CHECKF(h && graphs_differ(g, h) == 0, "later fields on %s", names[k]);
        if (h)
            CHECK(same_codebook(param(g, names[k]), param(h, names[k])));
        pare_graph_free(h);
        free(e.p);
    }
    free(a);
    pare_graph_free(g);
}

/* The committed 1.3 seed (tiny_codes as pare saved it): it loads, and is
 * written back byte for byte. */
PARE_TEST(file_reads_committed_1_3_file)
{
    const char *path = "tests/fuzz/seeds/fuzz_pare_file/codes-affine-codebook.pare";
    uint8_t *file = NULL;
    size_t n = 0;
    pare_graph *g = committed_seed(path, 3, &file, &n), *want = tiny_codes();
    if (g) {
        CHECK(graphs_differ(want, g) == 0);
        CHECK(same_codebook(param(want, "fc.weight"), param(g, "fc.weight")));
        CHECK(tens_enc(file, tensor_index(g, "conv.weight")) == 4);
        CHECK(tens_enc(file, tensor_index(g, "fc.weight")) == 3);
        written_as_seed(g, file, n, path);
    }
    free(file);
    pare_graph_free(g);
    pare_graph_free(want);
}

/* The committed 1.4 seed (tiny_basis as pare saved it): it loads, with its
 * coefficients, and is written back byte for byte. PARE_WRITE_SEED=1 in the
 * environment writes it afresh first (after a deliberate format change). */
PARE_TEST(file_reads_committed_1_4_file)
{
    const char *path = "tests/fuzz/seeds/fuzz_pare_file/basis-smartexchange.pare";
    size_t nz = 0, n = 0;
    pare_graph *want = tiny_basis(&nz);
    if (getenv("PARE_WRITE_SEED"))
        CHECK_OK(pare_graph_save(want, path));
    uint8_t *file = NULL;
    pare_graph *g = committed_seed(path, 4, &file, &n);
    if (g) {
        CHECK(graphs_differ(want, g) == 0);
        CHECK(same_coef(param(want, "fc.weight"), param(g, "fc.weight"), 1));
        CHECK(tens_enc(file, tensor_index(g, "fc.weight")) == 5);
        written_as_seed(g, file, n, path);
    }
    free(file);
    pare_graph_free(g);
    pare_graph_free(want);
}
