/* ONNX export: a pare graph as a standard opset-13 model (docs/ONNX.md, "Export").
 * Parameters become float32 initializers under their own names, schemes and graph
 * metadata go to metadata_props, and the packed model is written atomically. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "graph/graph.h"

#ifndef PARE_ONNX

pare_status pare_onnx_save(const pare_graph *g, const char *path)
{
    (void)g;
    return pare_fail(PARE_EUNSUPPORTED,
                     "cannot write %s: this build of pare has no ONNX support (build it with "
                     "protobuf-c, protoc-c and libonnx-dev installed, see docs/ONNX.md)",
                     path ? path : "an ONNX model");
}

#else

#include <assert.h>
#include <math.h>

#include "core/bytes.h"
#include "core/fsio.h"
#include "graph/op.h"
#include "io/format.h"
#include "onnx.pb-c.h"

#define EXPORT_OPSET 13
#define EXPORT_IR_VERSION 7 /* the IR of ONNX 1.8, the release that brought opset 13 */
/* A protobuf message cannot exceed 2 GiB; beyond that ONNX keeps tensors in
 * external files, which pare does not write. */
#define EXPORT_MAX_BYTES ((size_t)INT32_MAX)
#define NODE_MAX_ATTRS 8
#define ARENA_CHUNK ((size_t)1 << 16)

/* Everything the ModelProto points to lives in an arena freed at once, except
 * the parameters' values, which the initializers point to in place. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

typedef struct nameset {
    size_t n, cap; /* cap: 0 or a power of two, kept at least twice n */
    char **slot;
} nameset;

/* A pare value as an ONNX tensor. A value of c x 1 x 1 may be a matrix [N, c]
 * (rank 2: the input of a vector model and what Flatten and Gemm give);
 * every other value is [N, c, h, w] (a const's batch dimension is 1). */
typedef struct value {
    char *name;
    int rank;
    char *other; /* the same values in the other rank, once something needed it */
} value;

typedef struct scalar {
    uint32_t bits;
    char *name;
} scalar;

typedef struct ex {
    const pare_graph *g;
    pare_status err;
    chunk *arena;
    nameset tensors, nodes;
    value *v;
    char **pname; /* initializer name of each parameter */
    Onnx__NodeProto **node;
    size_t n_node, cap_node;
    Onnx__TensorProto **init;
    size_t n_init, cap_init;
    Onnx__StringStringEntryProto **meta;
    size_t n_meta, cap_meta;
    scalar sc[16]; /* shared float constants: Clip bounds, Pad value, Dropout ratio */
    int n_sc;
} ex;

/* ---- memory ------------------------------------------------------------- */

static void oom(ex *e)
{
    if (!e->err)
        e->err = pare_fail(PARE_ENOMEM, "out of memory building the ONNX model");
}

/* Zeroed memory from the arena; NULL (and e->err set) on failure. */
static void *ex_alloc(ex *e, size_t n)
{
    if (e->err)
        return NULL;
    size_t a = sizeof(max_align_t);
    if (n > SIZE_MAX / 2) {
        oom(e);
        return NULL;
    }
    n = (n + a - 1) / a * a;
    chunk *c = e->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) {
            oom(e);
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = e->arena;
        e->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

static char *ex_strdup(ex *e, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ex_alloc(e, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static char *ex_printf(ex *e, const char *fmt, ...) PARE_PRINTF(2, 3);
static char *ex_printf(ex *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        oom(e);
        return NULL;
    }
    char *p = ex_alloc(e, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* Room for `need` elements of `elem` bytes in a growing array; NULL on failure. */
static void *grow(ex *e, void *p, size_t *cap, size_t need, size_t elem)
{
    if (e->err)
        return NULL;
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = c <= SIZE_MAX / elem ? realloc(p, c * elem) : NULL;
    if (!q) {
        oom(e);
        return NULL;
    }
    *cap = c;
    return q;
}

/* ---- unique names --------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int ns_has(const nameset *s, const char *k)
{
    if (!s->cap)
        return 0;
    for (size_t i = hash_str(k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i])
            return 0;
        if (!strcmp(s->slot[i], k))
            return 1;
    }
}

static void ns_put(nameset *s, char *k)
{
    size_t i = hash_str(k) & (s->cap - 1);
    while (s->slot[i])
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = k;
    s->n++;
}

/* Adds k (arena-owned, not yet in s). */
static void ns_add(ex *e, nameset *s, char *k)
{
    if (e->err || !k)
        return;
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot) {
            oom(e);
            return;
        }
        nameset t = {0, cap, slot};
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                ns_put(&t, s->slot[i]);
        free(s->slot);
        *s = t;
    }
    ns_put(s, k);
}

/* base itself when nobody has it yet, else base_2, base_3, ... */
static char *ex_unique(ex *e, nameset *s, const char *base)
{
    if (e->err)
        return NULL;
    char *k = ns_has(s, base) ? NULL : ex_strdup(e, base);
    for (long i = 2; !k && !e->err; i++) {
        char *t = ex_printf(e, "%s_%ld", base, i);
        if (t && !ns_has(s, t))
            k = t;
    }
    ns_add(e, s, k);
    return e->err ? NULL : k;
}

/* ---- building messages ------------------------------------------------------ */

/* A node reading n_in tensors (NULL entries: absent optional inputs, only at
 * the end) into one output tensor. Attributes are added after. */
static Onnx__NodeProto *add_node(ex *e, const char *op, const char *name, char *const *in,
                                 int n_in, char *out)
{
    Onnx__NodeProto *n = ex_alloc(e, sizeof *n);
    char **ins = ex_alloc(e, sizeof *ins * (size_t)(n_in > 0 ? n_in : 1));
    char **outs = ex_alloc(e, sizeof *outs);
    Onnx__AttributeProto **at = ex_alloc(e, sizeof *at * NODE_MAX_ATTRS);
    char *nm = ex_unique(e, &e->nodes, name);
    char *ty = ex_strdup(e, op);
    Onnx__NodeProto **list = grow(e, e->node, &e->cap_node, e->n_node + 1, sizeof *list);
    if (!list || !out)
        return NULL;
    e->node = list;
    onnx__node_proto__init(n);
    while (n_in > 0 && !in[n_in - 1])
        n_in--;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            e->err = pare_fail(PARE_EINVAL, "node %s: input %d is missing", name, i);
            return NULL;
        }
        ins[i] = in[i];
    }
    outs[0] = out;
    n->n_input = (size_t)n_in;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->name = nm;
    n->op_type = ty;
    n->attribute = at;
    e->node[e->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *new_attr(ex *e, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    if (!n)
        return NULL;
    assert(n->n_attribute < NODE_MAX_ATTRS);
    Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
    char *nm = ex_strdup(e, name);
    if (!a || !nm)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nm;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(ex *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_float(ex *e, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

static void attr_ints(ex *e, Onnx__NodeProto *n, const char *name, const int *v, int k)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *p = ex_alloc(e, sizeof *p * (size_t)k);
    if (!a || !p)
        return;
    for (int i = 0; i < k; i++)
        p[i] = v[i];
    a->n_ints = (size_t)k;
    a->ints = p;
}

static void attr_string(ex *e, Onnx__NodeProto *n, const char *name, const char *s)
{
    Onnx__AttributeProto *a = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *p = ex_strdup(e, s);
    if (!a || !p)
        return;
    a->has_s = 1;
    a->s.len = strlen(p);
    a->s.data = (uint8_t *)p;
}

/* An initializer named `name` exactly (the caller made it unique). */
static Onnx__TensorProto *add_init(ex *e, char *name, int32_t type, const int64_t *dims, int ndim)
{
    Onnx__TensorProto *t = ex_alloc(e, sizeof *t);
    int64_t *d = ex_alloc(e, sizeof *d * (size_t)(ndim > 0 ? ndim : 1));
    Onnx__TensorProto **list = grow(e, e->init, &e->cap_init, e->n_init + 1, sizeof *list);
    if (!list || !name)
        return NULL;
    e->init = list;
    onnx__tensor_proto__init(t);
    if (ndim > 0)
        memcpy(d, dims, sizeof *d * (size_t)ndim);
    t->name = name;
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndim;
    t->dims = d;
    e->init[e->n_init++] = t;
    return t;
}

/* raw_data is little-endian: on a little-endian host it is the floats
 * themselves, so a large model is not copied before packing. */
static void set_raw_floats(ex *e, Onnx__TensorProto *t, float *v, size_t n)
{
    if (!t)
        return;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    (void)e;
    t->raw_data.data = (uint8_t *)v;
#else
    uint8_t *b = ex_alloc(e, n * 4 > 0 ? n * 4 : 1);
    if (!b)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        pare_put_le32(b + 4 * i, u);
    }
    t->raw_data.data = b;
#endif
    t->has_raw_data = 1;
    t->raw_data.len = n * 4;
}

/* A constant int64 vector (Reshape shapes, Pad amounts) under a new name. */
static char *init_int64s(ex *e, const char *base, const int64_t *v, int n)
{
    int64_t dims[1] = {n};
    char *name = ex_unique(e, &e->tensors, base);
    Onnx__TensorProto *t = add_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, dims, 1);
    uint8_t *b = ex_alloc(e, 8 * (size_t)n);
    if (!t || !b)
        return NULL;
    for (int i = 0; i < n; i++)
        pare_put_le64(b + 8 * i, (uint64_t)v[i]);
    t->has_raw_data = 1;
    t->raw_data.len = 8 * (size_t)n;
    t->raw_data.data = b;
    return name;
}

/* A float scalar (rank 0), shared by every node that needs the same value. */
static char *init_scalar(ex *e, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    for (int i = 0; i < e->n_sc; i++)
        if (e->sc[i].bits == bits)
            return e->sc[i].name;
    char *base = ex_printf(e, "pare.const.%g", (double)v);
    char *name = base ? ex_unique(e, &e->tensors, base) : NULL;
    float *p = ex_alloc(e, sizeof *p);
    Onnx__TensorProto *t = add_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, NULL, 0);
    if (!p || !t)
        return NULL;
    *p = v;
    set_raw_floats(e, t, p, 1);
    if (e->n_sc < (int)(sizeof e->sc / sizeof e->sc[0]))
        e->sc[e->n_sc++] = (scalar){bits, name};
    return name;
}

static void add_meta(ex *e, const char *prefix, const char *key, const char *text)
{
    Onnx__StringStringEntryProto *m = ex_alloc(e, sizeof *m);
    char *k = ex_printf(e, "%s%s", prefix, key);
    char *v = ex_strdup(e, text);
    Onnx__StringStringEntryProto **list = grow(e, e->meta, &e->cap_meta, e->n_meta + 1, sizeof *list);
    if (!list || !v)
        return;
    e->meta = list;
    onnx__string_string_entry_proto__init(m);
    m->key = k;
    m->value = v;
    e->meta[e->n_meta++] = m;
}

/* A float tensor type [N, c] or [N, c, h, w] with the symbolic batch "N". */
static Onnx__ValueInfoProto *value_info(ex *e, char *name, int rank, pare_shape s)
{
    Onnx__ValueInfoProto *vi = ex_alloc(e, sizeof *vi);
    Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_alloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, sizeof *dims * 4);
    char *batch = ex_strdup(e, "N");
    if (!batch)
        return NULL;
    const int64_t size[4] = {0, s.c, s.h, s.w};
    for (int i = 0; i < rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = ex_alloc(e, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = batch;
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = size[i];
        }
        dims[i] = d;
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)rank;
    sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = name;
    vi->type = tp;
    return vi;
}

/* ---- values and ranks ------------------------------------------------------ */

/* Value v as rank 2 (the sample flattened: what Gemm reads) or rank 4. */
static char *as_rank(ex *e, int v, int rank)
{
    value *x = &e->v[v];
    if (x->rank == rank)
        return x->name;
    if (x->other)
        return x->other;
    const pare_node *n = &e->g->nodes[v];
    char *base = ex_printf(e, "%s/%s", n->name, rank == 4 ? "as4d" : "as2d");
    char *out = base ? ex_unique(e, &e->tensors, base) : NULL;
    if (!out)
        return NULL;
    if (rank == 2) {
        Onnx__NodeProto *f = add_node(e, "Flatten", base, &x->name, 1, out);
        attr_int(e, f, "axis", 1);
    } else {
        /* Only a c x 1 x 1 value is ever a matrix, so this adds the 1 x 1. */
        const int64_t shape[4] = {0, n->out.c, n->out.h, n->out.w};
        char *in[2] = {x->name, init_int64s(e, ex_printf(e, "%s.shape", base), shape, 4)};
        add_node(e, "Reshape", base, in, 2, out);
    }
    x->other = out;
    return out;
}

/* The highest rank among a node's inputs: a binary op or a concat reads all
 * its inputs in it, so ONNX's broadcasting lines up c, h and w. */
static int max_rank(const ex *e, const pare_node *n)
{
    int r = 2;
    for (int j = 0; j < n->n_in; j++)
        if (e->v[n->in[j]].rank > r)
            r = e->v[n->in[j]].rank;
    return r;
}

static char *param_of(ex *e, int node, pare_param_role role)
{
    int p = pare_graph_node_param(e->g, node, role);
    return p >= 0 ? e->pname[p] : NULL;
}

/* A name for an intermediate tensor (and its node) of a layer that takes
 * several ONNX nodes. */
static char *part(ex *e, const pare_node *n, const char *what)
{
    char *base = ex_printf(e, "%s/%s", n->name, what);
    return base ? ex_unique(e, &e->tensors, base) : NULL;
}

/* ---- quantized tensors and fake quantization ------------------------------- */

/* An initializer of `len` raw bytes (already little-endian) under a new name. */
static char *init_raw(ex *e, const char *base, int32_t type, const int64_t *dims, int ndim,
                      uint8_t *bytes, size_t len)
{
    char *name = base ? ex_unique(e, &e->tensors, base) : NULL;
    Onnx__TensorProto *t = add_init(e, name, type, dims, ndim);
    if (!t)
        return NULL;
    t->has_raw_data = 1;
    t->raw_data.len = len;
    t->raw_data.data = bytes;
    return name;
}

/* The integer x that ONNX's DequantizeLinear turns back into v exactly,
 * (float)(x - zp) * s == v (the representation of graph.h guarantees one);
 * 0 when there is none. -0.0 counts as the code 0. */
static int code_for(float v, float s, int32_t zp, int64_t *x)
{
    if (!isfinite(v) || !isfinite(s) || !(s > 0.0f))
        return 0;
    double r = rint((double)v / (double)s);
    if (!(fabs(r) < 4.0e9))
        return 0;
    for (int d = 0; d < 3; d++) {
        int64_t k = (int64_t)r + (d == 1) - (d == 2);
        if (s * (float)k == v) {
            *x = k + zp;
            return 1;
        }
    }
    return 0;
}

/* Parameter p (scheme 1 or 2 qparams) as integer codes in an int8, uint8 or
 * int32 initializer and a DequantizeLinear whose output is `name`, the tensor
 * its layer reads. dims/ndim: its ONNX shape (a const's has one more axis in
 * front). */
static void quant_param(ex *e, int p, char *name, const int64_t *dims, int ndim)
{
    const pare_param *q = &e->g->params[p];
    const pare_qparams *qp = &q->q;
    size_t n = q->t->n, inner = 1;
    int axis = qp->scheme == 2 ? qp->axis : -1, off = ndim - q->t->ndim;
    if (axis >= 0)
        for (int k = axis + 1; k < q->t->ndim; k++)
            inner *= (size_t)q->t->dims[k];
    int64_t *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        oom(e);
        return;
    }
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    int zp_lo = 0, zp_hi = 0;
    for (int c = 0; c < qp->n; c++) {
        zp_lo = qp->zero_point[c] < zp_lo ? qp->zero_point[c] : zp_lo;
        zp_hi = qp->zero_point[c] > zp_hi ? qp->zero_point[c] : zp_hi;
    }
    for (size_t k = 0; k < n && !e->err; k++) {
        size_t c = axis >= 0 ? (k / inner) % (size_t)q->t->dims[axis] : 0;
        if (!code_for(q->t->data[k], qp->scale[c], qp->zero_point[c], &x[k]))
            e->err = pare_fail(PARE_EINVAL,
                               "tensor %s carries %d-bit quantization parameters, but its value "
                               "%g (element %zu) is not its scale %g times an integer code, so it "
                               "cannot be written as quantized",
                               q->name, qp->bits, (double)q->t->data[k], k, (double)qp->scale[c]);
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
    }
    if (n == 0)
        lo = hi = 0;
    /* The narrowest container ONNX's DequantizeLinear reads: int8 for pare's
     * symmetric weights, uint8, or int32 (biases; no zero point). */
    int32_t type = 0;
    size_t esize = 1;
    if (qp->bits <= 8 && lo >= -128 && hi <= 127 && zp_lo >= -128 && zp_hi <= 127)
        type = ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    else if (qp->bits <= 8 && lo >= 0 && hi <= 255 && zp_lo >= 0 && zp_hi <= 255)
        type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    else if (zp_lo == 0 && zp_hi == 0 && lo >= INT32_MIN && hi <= INT32_MAX)
        type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32, esize = 4;
    if (!e->err && !type)
        e->err = pare_fail(PARE_EINVAL,
                           "tensor %s: its %d-bit codes (%lld to %lld, zero points %d to %d) fit "
                           "no type ONNX's DequantizeLinear reads (int8, uint8, int32 without "
                           "zero point)",
                           q->name, qp->bits, (long long)lo, (long long)hi, zp_lo, zp_hi);
    uint8_t *codes = ex_alloc(e, n * esize > 0 ? n * esize : 1);
    uint8_t *zps = ex_alloc(e, (size_t)qp->n * esize);
    if (e->err || !codes || !zps) {
        free(x);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        if (esize == 4)
            pare_put_le32(codes + 4 * k, (uint32_t)(int32_t)x[k]);
        else
            codes[k] = (uint8_t)(x[k] & 0xff);
    }
    free(x);
    for (int c = 0; c < qp->n; c++)
        zps[c] = (uint8_t)(qp->zero_point[c] & 0xff);
    const int64_t sdims[1] = {qp->n};
    int srank = qp->scheme == 2 ? 1 : 0;
    char *in[3] = {init_raw(e, ex_printf(e, "%s_quantized", name), type, dims, ndim, codes,
                            n * esize),
                   ex_unique(e, &e->tensors, ex_printf(e, "%s_scale", name)), NULL};
    Onnx__TensorProto *st = add_init(e, in[1], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sdims, srank);
    set_raw_floats(e, st, qp->scale, (size_t)qp->n);
    if (esize == 1)
        in[2] = init_raw(e, ex_printf(e, "%s_zero_point", name), type, sdims, srank, zps,
                         (size_t)qp->n);
    char *node = ex_printf(e, "%s/dequantize", name);
    Onnx__NodeProto *o = node ? add_node(e, "DequantizeLinear", node, in, 3, name) : NULL;
    if (qp->scheme == 2)
        attr_int(e, o, "axis", qp->axis + off);
    /* What the container does not say: 4-bit codes in int8, say. */
    if (qp->bits != (esize == 4 ? 32 : 8)) {
        char bits[16];
        snprintf(bits, sizeof bits, "bits=%d", qp->bits);
        add_meta(e, "pare.quant.", name, bits);
    }
}

/* A codebook (scheme 3) in metadata, "k=K d=D: v v ..." with hex floats, so
 * that the import restores it; the tensor itself is written as floats. */
static void codebook_meta(ex *e, const pare_param *q, const char *name)
{
    size_t kd = (size_t)q->q.k * (size_t)q->q.d, cap = 32 + 24 * kd, at;
    char *text = ex_alloc(e, cap);
    if (!text)
        return;
    at = (size_t)snprintf(text, cap, "k=%d d=%d:", q->q.k, q->q.d);
    for (size_t i = 0; i < kd && at < cap; i++)
        at += (size_t)snprintf(text + at, cap - at, " %a", (double)q->q.codebook[i]);
    add_meta(e, "pare.codebook.", name, text);
}

/* Fake quantization: QuantizeLinear to uint8 then DequantizeLinear (opset 13,
 * per tensor). Fewer than 8 bits clamp to [0, 2^bits - 1]: a Clip to the
 * values of those codes comes first, which gives the same result exactly. */
static void emit_fakequant(ex *e, int i, char *out)
{
    const pare_node *n = &e->g->nodes[i];
    const pare_attrs *a = &n->a;
    int zp = (int)a->beta, qmax = (1 << a->mode) - 1;
    char *x = e->v[n->in[0]].name;
    if (a->mode < 8) {
        char *clipped = part(e, n, "clip");
        char *in[3] = {x, init_scalar(e, a->alpha * (float)(0 - zp)),
                       init_scalar(e, a->alpha * (float)(qmax - zp))};
        add_node(e, "Clip", clipped, in, 3, clipped);
        x = clipped;
    }
    uint8_t *z = ex_alloc(e, 1);
    float *s = ex_alloc(e, sizeof *s);
    if (!z || !s)
        return;
    *z = (uint8_t)zp;
    *s = a->alpha;
    char *sname = ex_unique(e, &e->tensors, ex_printf(e, "%s.scale", n->name));
    set_raw_floats(e, add_init(e, sname, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, NULL, 0), s, 1);
    char *zname = init_raw(e, ex_printf(e, "%s.zero_point", n->name),
                           ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, NULL, 0, z, 1);
    char *codes = part(e, n, "quantize");
    char *in[3] = {x, sname, zname};
    add_node(e, "QuantizeLinear", codes, in, 3, codes);
    char *in2[3] = {codes, sname, zname};
    add_node(e, "DequantizeLinear", n->name, in2, 3, out);
}

/* ---- ops ---------------------------------------------------------------- */

static void emit_pool(ex *e, int i, const char *op, char *out)
{
    const pare_node *n = &e->g->nodes[i];
    const pare_attrs *a = &n->a;
    char *in = as_rank(e, n->in[0], 4);
    Onnx__NodeProto *o = add_node(e, op, n->name, &in, 1, out);
    attr_ints(e, o, "kernel_shape", a->kernel, 2);
    attr_ints(e, o, "strides", a->stride, 2);
    /* pare's order (top, left, bottom, right) is ONNX's (begins, then ends). */
    attr_ints(e, o, "pads", a->pad, 4);
    /* With padding below the window (pare requires it), the last window of
     * ceil mode always starts inside the input or its left padding, so
     * ONNX's ceil rule gives PyTorch's (and pare's) sizes. */
    if (a->ceil_mode)
        attr_int(e, o, "ceil_mode", 1);
    if (n->op == PARE_OP_AVGPOOL)
        attr_int(e, o, "count_include_pad", a->count_include_pad ? 1 : 0);
    else if (a->dilation[0] != 1 || a->dilation[1] != 1)
        attr_ints(e, o, "dilations", a->dilation, 2);
}

static void emit_softmax(ex *e, int i, char *out)
{
    const pare_node *n = &e->g->nodes[i];
    const pare_attrs *a = &n->a;
    pare_shape s = e->g->nodes[n->in[0]].out;
    value *y = &e->v[i];
    if (e->v[n->in[0]].rank == 2 && a->axis == 0) {
        Onnx__NodeProto *o = add_node(e, "Softmax", n->name, &e->v[n->in[0]].name, 1, out);
        attr_int(e, o, "axis", 1);
        y->rank = 2;
        return;
    }
    char *in = as_rank(e, n->in[0], 4);
    long later = a->axis == 0 ? (long)s.h * s.w : a->axis == 1 ? s.w : 1;
    if (a->mode == 0 || later == 1) {
        Onnx__NodeProto *o = add_node(e, "Softmax", n->name, &in, 1, out);
        attr_int(e, o, "axis", 1 + a->axis);
        return;
    }
    /* Over the axis and every later one: opset 13's Softmax takes one axis, so
     * the later axes are merged into it, the batch kept apart (0 copies it). */
    const int64_t merged[3] = {0, a->axis == 0 ? (long)s.c * later : s.c, (long)s.h * s.w};
    const int64_t shape[4] = {0, s.c, s.h, s.w};
    char *flat = part(e, n, "merge"), *soft = part(e, n, "softmax");
    char *in1[2] = {in, init_int64s(e, ex_printf(e, "%s/merge.shape", n->name), merged, 2 + a->axis)};
    add_node(e, "Reshape", flat, in1, 2, flat);
    Onnx__NodeProto *o = add_node(e, "Softmax", soft, &flat, 1, soft);
    attr_int(e, o, "axis", 1 + a->axis);
    char *in2[2] = {soft, init_int64s(e, ex_printf(e, "%s/shape", n->name), shape, 4)};
    add_node(e, "Reshape", n->name, in2, 2, out);
}

static void emit_channel_shuffle(ex *e, int i, char *out)
{
    const pare_node *n = &e->g->nodes[i];
    pare_shape s = e->g->nodes[n->in[0]].out;
    int g = n->a.groups;
    char *in = as_rank(e, n->in[0], 4);
    char *split = part(e, n, "split"), *swap = part(e, n, "transpose");
    /* In a Reshape shape, 0 copies the input's dimension: here the batch. */
    const int64_t shape5[5] = {0, g, s.c / g, s.h, s.w}, shape4[4] = {0, s.c, s.h, s.w};
    char *in1[2] = {in, init_int64s(e, ex_printf(e, "%s/split.shape", n->name), shape5, 5)};
    add_node(e, "Reshape", split, in1, 2, split);
    Onnx__NodeProto *o = add_node(e, "Transpose", swap, &split, 1, swap);
    const int perm[5] = {0, 2, 1, 3, 4};
    attr_ints(e, o, "perm", perm, 5);
    char *in3[2] = {swap, init_int64s(e, ex_printf(e, "%s/shape", n->name), shape4, 4)};
    add_node(e, "Reshape", n->name, in3, 2, out);
}

static void emit_pad(ex *e, int i, char *out)
{
    const pare_node *n = &e->g->nodes[i];
    const pare_attrs *a = &n->a;
    static const char *const modes[3] = {"constant", "reflect", "edge"};
    if (a->mode < 0 || a->mode > 2) {
        e->err = pare_fail(PARE_EINVAL, "layer %s: pad mode %d has no ONNX form", n->name, a->mode);
        return;
    }
    const int64_t pads[8] = {0, 0, a->pad[0], a->pad[1], 0, 0, a->pad[2], a->pad[3]};
    char *in[3] = {as_rank(e, n->in[0], 4),
                   init_int64s(e, ex_printf(e, "%s.pads", n->name), pads, 8),
                   a->mode == 0 ? init_scalar(e, a->alpha) : NULL};
    Onnx__NodeProto *o = add_node(e, "Pad", n->name, in, 3, out);
    attr_string(e, o, "mode", modes[a->mode]);
}

/* The ONNX nodes of layer i; its value ends in tensor `out`. */
static void emit(ex *e, int i, char *out)
{
    const pare_graph *g = e->g;
    const pare_node *n = &g->nodes[i];
    const pare_attrs *a = &n->a;
    value *y = &e->v[i];
    y->name = out;
    y->rank = 4;
    /* Elementwise ops keep their input's rank. */
    char *x = n->n_in > 0 ? e->v[n->in[0]].name : NULL;
    int xr = n->n_in > 0 ? e->v[n->in[0]].rank : 4;
    Onnx__NodeProto *o;
    switch (n->op) {
    case PARE_OP_CONV2D: {
        char *in[3] = {as_rank(e, n->in[0], 4), param_of(e, i, PARE_ROLE_WEIGHT),
                       param_of(e, i, PARE_ROLE_BIAS)};
        o = add_node(e, "Conv", n->name, in, 3, out);
        attr_ints(e, o, "dilations", a->dilation, 2);
        attr_int(e, o, "group", a->groups);
        attr_ints(e, o, "kernel_shape", a->kernel, 2);
        attr_ints(e, o, "pads", a->pad, 4);
        attr_ints(e, o, "strides", a->stride, 2);
        break;
    }
    case PARE_OP_LINEAR: {
        char *in[3] = {as_rank(e, n->in[0], 2), param_of(e, i, PARE_ROLE_WEIGHT),
                       param_of(e, i, PARE_ROLE_BIAS)};
        o = add_node(e, "Gemm", n->name, in, 3, out);
        attr_int(e, o, "transB", 1);
        y->rank = 2;
        break;
    }
    case PARE_OP_RELU:
        add_node(e, "Relu", n->name, &x, 1, out);
        y->rank = xr;
        break;
    case PARE_OP_RELU6:
    case PARE_OP_CLIP: {
        /* Opset 11 moved Clip's bounds from attributes to inputs. */
        float lo = n->op == PARE_OP_RELU6 ? 0.0f : a->alpha;
        float hi = n->op == PARE_OP_RELU6 ? 6.0f : a->beta;
        char *in[3] = {x, init_scalar(e, lo), init_scalar(e, hi)};
        add_node(e, "Clip", n->name, in, 3, out);
        y->rank = xr;
        break;
    }
    case PARE_OP_MAXPOOL:
        emit_pool(e, i, "MaxPool", out);
        break;
    case PARE_OP_AVGPOOL:
        emit_pool(e, i, "AveragePool", out);
        break;
    case PARE_OP_GLOBAL_AVGPOOL: {
        char *in = as_rank(e, n->in[0], 4);
        add_node(e, "GlobalAveragePool", n->name, &in, 1, out);
        break;
    }
    case PARE_OP_BATCHNORM: {
        char *in[5] = {x, param_of(e, i, PARE_ROLE_BN_GAMMA), param_of(e, i, PARE_ROLE_BN_BETA),
                       param_of(e, i, PARE_ROLE_BN_MEAN), param_of(e, i, PARE_ROLE_BN_VAR)};
        o = add_node(e, "BatchNormalization", n->name, in, 5, out);
        attr_float(e, o, "epsilon", a->eps);
        /* pare (like PyTorch) weighs the new batch by momentum; ONNX weighs the
         * running value by it. */
        attr_float(e, o, "momentum", 1.0f - a->momentum);
        y->rank = xr;
        break;
    }
    case PARE_OP_ADD:
    case PARE_OP_MUL:
    case PARE_OP_CONCAT: {
        int r = max_rank(e, n);
        char **in = ex_alloc(e, sizeof *in * (size_t)n->n_in);
        if (!in)
            return;
        for (int j = 0; j < n->n_in; j++)
            in[j] = as_rank(e, n->in[j], r);
        const char *op = n->op == PARE_OP_ADD ? "Add" : n->op == PARE_OP_MUL ? "Mul" : "Concat";
        o = add_node(e, op, n->name, in, n->n_in, out);
        if (n->op == PARE_OP_CONCAT)
            attr_int(e, o, "axis", 1);
        y->rank = r;
        break;
    }
    case PARE_OP_FLATTEN:
        o = add_node(e, "Flatten", n->name, &x, 1, out);
        attr_int(e, o, "axis", 1);
        y->rank = 2;
        break;
    case PARE_OP_DROPOUT: {
        /* Without a training_mode input Dropout is the identity; the ratio
         * keeps p for a trainer that reads the model back. */
        char *in[2] = {x, init_scalar(e, a->p)};
        add_node(e, "Dropout", n->name, in, 2, out);
        y->rank = xr;
        break;
    }
    case PARE_OP_SIGMOID:
        add_node(e, "Sigmoid", n->name, &x, 1, out);
        y->rank = xr;
        break;
    case PARE_OP_HARDSIGMOID:
        o = add_node(e, "HardSigmoid", n->name, &x, 1, out);
        attr_float(e, o, "alpha", a->alpha);
        attr_float(e, o, "beta", a->beta);
        y->rank = xr;
        break;
    case PARE_OP_HARDSWISH: {
        /* HardSwish is opset 14; x * HardSigmoid(x, 1/6, 1/2) is the same function. */
        char *gate = part(e, n, "gate");
        o = add_node(e, "HardSigmoid", gate, &x, 1, gate);
        attr_float(e, o, "alpha", 1.0f / 6.0f);
        attr_float(e, o, "beta", 0.5f);
        char *in[2] = {x, gate};
        add_node(e, "Mul", n->name, in, 2, out);
        y->rank = xr;
        break;
    }
    case PARE_OP_LEAKYRELU:
        o = add_node(e, "LeakyRelu", n->name, &x, 1, out);
        attr_float(e, o, "alpha", a->alpha);
        y->rank = xr;
        break;
    case PARE_OP_SOFTMAX:
        emit_softmax(e, i, out);
        break;
    case PARE_OP_CHANNEL_SHUFFLE:
        emit_channel_shuffle(e, i, out);
        break;
    case PARE_OP_PAD:
        emit_pad(e, i, out);
        break;
    case PARE_OP_RESHAPE: {
        const int64_t shape[4] = {0, n->out.c, n->out.h, n->out.w};
        char *in[2] = {x, init_int64s(e, ex_printf(e, "%s.shape", n->name), shape, 4)};
        add_node(e, "Reshape", n->name, in, 2, out);
        break;
    }
    case PARE_OP_FAKEQUANT:
        emit_fakequant(e, i, out);
        y->rank = xr;
        break;
    case PARE_OP_TRANSPOSE: {
        char *in = as_rank(e, n->in[0], 4);
        o = add_node(e, "Transpose", n->name, &in, 1, out);
        const int perm[4] = {0, 1 + a->perm[0], 1 + a->perm[1], 1 + a->perm[2]};
        attr_ints(e, o, "perm", perm, 4);
        break;
    }
    default: {
        const pare_op_def *def = pare_op_get(n->op);
        e->err = pare_fail(PARE_EUNSUPPORTED, "layer %s: op %s has no ONNX form in pare's exporter",
                           n->name, def ? def->name : "?");
        break;
    }
    }
}

/* ---- the model ------------------------------------------------------------ */

/* Initializers for every parameter, in parameter order and under its name. */
static void add_params(ex *e)
{
    const pare_graph *g = e->g;
    for (int p = 0; p < g->n_params && !e->err; p++) {
        const pare_param *q = &g->params[p];
        char *name = ex_unique(e, &e->tensors, q->name);
        int64_t dims[PARE_MAX_DIMS];
        int ndim = q->t->ndim;
        const pare_node *n = &g->nodes[q->node];
        if (n->op == PARE_OP_CONST) {
            /* A batch of one, which broadcasts against any batch. */
            dims[0] = 1;
            dims[1] = n->out.c;
            dims[2] = n->out.h;
            dims[3] = n->out.w;
            ndim = 4;
        } else {
            for (int d = 0; d < ndim; d++)
                dims[d] = q->t->dims[d];
        }
        char why[256];
        if (q->q.bits && pare_file_qparams_problem(&q->q, q->t->ndim, q->t->dims, q->t->n, why,
                                                   sizeof why)) {
            e->err = pare_fail(PARE_EINVAL, "tensor %s %s", q->name, why);
            return;
        }
        e->pname[p] = name;
        /* Affine qparams: the codes and a DequantizeLinear (ONNX Runtime's QDQ
         * form); a codebook: the floats, and the codebook in metadata. */
        if ((q->q.scheme == 1 || q->q.scheme == 2) && q->q.bits > 0 && q->q.n > 0) {
            quant_param(e, p, name, dims, ndim);
        } else {
            Onnx__TensorProto *t =
                add_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, ndim);
            set_raw_floats(e, t, q->t->data, q->t->n);
            if (q->q.scheme == 3 && q->q.codebook && q->q.k > 0 && q->q.d > 0)
                codebook_meta(e, q, name);
        }
        if (q->scheme)
            add_meta(e, "pare.scheme.", name, q->scheme);
    }
}

static void build(ex *e, Onnx__GraphProto *gp)
{
    const pare_graph *g = e->g;
    e->v = ex_alloc(e, sizeof *e->v * (size_t)g->n_nodes);
    e->pname = ex_alloc(e, sizeof *e->pname * (size_t)(g->n_params > 0 ? g->n_params : 1));
    char *input = ex_unique(e, &e->tensors, "input");
    char *output = ex_unique(e, &e->tensors, "output");
    if (e->err)
        return;
    add_params(e);
    pare_shape in = g->nodes[0].out;
    /* A model of vectors takes [N, c], as a PyTorch MLP does; images [N, c, h, w]. */
    e->v[0].name = input;
    e->v[0].rank = in.h == 1 && in.w == 1 ? 2 : 4;
    for (int i = 1; i < g->n_nodes && !e->err; i++) {
        const pare_node *n = &g->nodes[i];
        if (n->op == PARE_OP_CONST) {
            e->v[i].name = param_of(e, i, PARE_ROLE_WEIGHT);
            e->v[i].rank = 4;
            if (!e->v[i].name && n->n_param > 0)
                e->v[i].name = e->pname[n->param[0]];
            if (!e->v[i].name)
                e->err = pare_fail(PARE_EINVAL, "layer %s: a const layer without its tensor", n->name);
            continue;
        }
        emit(e, i, i == g->output ? output : ex_unique(e, &e->tensors, n->name));
    }
    if (e->err)
        return;
    const value *out = &e->v[g->output];
    if (out->name != output)
        add_node(e, "Identity", "output", &e->v[g->output].name, 1, output);
    for (int i = 0; i < g->n_meta; i++)
        add_meta(e, "pare.meta.", g->meta[i].key, g->meta[i].value);
    Onnx__ValueInfoProto **gin = ex_alloc(e, sizeof *gin);
    Onnx__ValueInfoProto **gout = ex_alloc(e, sizeof *gout);
    char *gname = ex_strdup(e, g->name ? g->name : "model");
    if (!gin || !gout || !gname)
        return;
    gin[0] = value_info(e, input, e->v[0].rank, in);
    gout[0] = value_info(e, output, out->rank, g->nodes[g->output].out);
    gp->name = gname;
    gp->n_node = e->n_node;
    gp->node = e->node;
    gp->n_initializer = e->n_init;
    gp->initializer = e->init;
    gp->n_input = 1;
    gp->input = gin;
    gp->n_output = 1;
    gp->output = gout;
}

static void ex_free(ex *e)
{
    while (e->arena) {
        chunk *c = e->arena;
        e->arena = c->next;
        free(c);
    }
    free(e->tensors.slot);
    free(e->nodes.slot);
    free(e->node);
    free(e->init);
    free(e->meta);
}

pare_status pare_onnx_save(const pare_graph *g, const char *path)
{
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "no path to save the ONNX model to");
    if (!g)
        return pare_fail(PARE_EINVAL, "no graph to save to %s", path);
    if (g->err != PARE_OK)
        return pare_fail(PARE_EINVAL, "%s: graph '%s' cannot be exported: building it failed (%s)",
                         path, g->name ? g->name : "?", pare_status_name(g->err));
    pare_status s = pare_graph_validate(g);
    if (s != PARE_OK) {
        pare_error_prefix("%s: graph '%s' cannot be exported", path, g->name ? g->name : "?");
        return s == PARE_ENOMEM ? s : PARE_EINVAL;
    }
    ex e;
    memset(&e, 0, sizeof e);
    e.g = g;
    Onnx__GraphProto gp;
    onnx__graph_proto__init(&gp);
    build(&e, &gp);

    Onnx__OperatorSetIdProto opset;
    onnx__operator_set_id_proto__init(&opset);
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    opset.domain = ex_strdup(&e, ""); /* the default domain, ai.onnx */
    opset.has_version = 1;
    opset.version = EXPORT_OPSET;
    Onnx__ModelProto m;
    onnx__model_proto__init(&m);
    m.has_ir_version = 1;
    m.ir_version = EXPORT_IR_VERSION;
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.producer_name = ex_strdup(&e, "pare");
    m.producer_version = ex_strdup(&e, pare_version());
    m.graph = &gp;
    m.n_metadata_props = e.n_meta;
    m.metadata_props = e.meta;

    uint8_t *buf = NULL;
    if ((s = e.err) != PARE_OK) {
        pare_error_prefix("%s", path);
        goto done;
    }
    size_t len = onnx__model_proto__get_packed_size(&m);
    if (len > EXPORT_MAX_BYTES) {
        s = pare_fail(PARE_EUNSUPPORTED,
                      "%s: the model takes %zu bytes in ONNX, over protobuf's 2 GiB limit (pare "
                      "does not write external data)",
                      path, len);
        goto done;
    }
    buf = malloc(len > 0 ? len : 1);
    if (!buf) {
        s = pare_fail(PARE_ENOMEM, "%s: out of memory packing the ONNX model (%zu bytes)", path, len);
        goto done;
    }
    size_t packed = onnx__model_proto__pack(&m, buf);
    assert(packed == len);
    (void)packed;
    s = pare_write_file_atomic(path, buf, len);
done:
    free(buf);
    ex_free(&e);
    return s;
}

#endif
