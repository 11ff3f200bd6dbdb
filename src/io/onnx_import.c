/* ONNX import: a ModelProto (protobuf-c code generated from Debian's onnx.proto)
 * becomes a pare graph. This file holds the frame: parsing with a nesting limit,
 * the value table, inputs and outputs, naming, sparsity recognition and the one
 * message that lists every unsupported node; onnx_ops.c translates each op. */
#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/error.h"
#include "core/fsio.h"
#include "graph/graph.h"
#include "io/format.h"
#include "io/onnx.h"

#ifndef PARE_ONNX

static pare_status no_protobuf(const char *what)
{
    return pare_fail(PARE_EUNSUPPORTED,
                     "%s: pare was built without protobuf-c, so it cannot read ONNX models",
                     what ? what : "ONNX model");
}

pare_status pare_onnx_decode(const uint8_t *buf, size_t len, const char *what, const char *dir,
                             const pare_onnx_options *o, pare_graph **out)
{
    (void)buf;
    (void)len;
    (void)dir;
    (void)o;
    if (out)
        *out = NULL;
    return no_protobuf(what);
}

pare_status pare_onnx_load_ex(const char *path, const pare_onnx_options *o, pare_graph **out)
{
    (void)o;
    if (out)
        *out = NULL;
    return no_protobuf(path);
}

pare_status pare_onnx_load(const char *path, pare_graph **out)
{
    return pare_onnx_load_ex(path, NULL, out);
}

#else

#include "io/onnx_imp.h"

/* The default domain's opsets and the IR versions this importer reads. Opsets 6
 * to 8 differ from 9 only in Add/Sub/Mul/Div broadcasting and BatchNormalization's
 * spatial flag among the ops pare takes (ONNX's own PyTorch-converted tests are
 * opset 6). */
#define OPSET_MIN 6
#define OPSET_MAX 17
#define IR_MIN 3
#define IR_MAX 10
/* protobuf's own limit on a message. */
#define MODEL_FILE_MAX ((size_t)1 << 31)
/* Nesting of messages (protobuf-c recurses without a limit; C++ protobuf stops at 100). */
#define NEST_MAX 100
/* Bytes of an ONNX name kept in a layer or tensor name (layer names hold 255). */
#define NAME_KEEP 200
/* Characters of the unsupported-op list that fit the one-sentence message. */
#define UNSUP_LIST_MAX 760

static const char *str(const char *s) { return s ? s : ""; }

/* ---- message nesting --------------------------------------------------------- */

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return 0;
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Whether no message nests deeper than NEST_MAX, walking the wire format with the
 * generated descriptors. Malformed bytes count as fine here: protobuf-c refuses
 * them next. Each byte is looked at once, at its own level. */
static int nesting_ok(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > NEST_MAX)
        return 0;
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, l;
        if (!varint(p, len, &pos, &key))
            return 1;
        switch (key & 7) {
        case 0:
            if (!varint(p, len, &pos, &l))
                return 1;
            break;
        case 1:
            if (len - pos < 8)
                return 1;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return 1;
            pos += 4;
            break;
        case 2: {
            if (!varint(p, len, &pos, &l) || l > len - pos)
                return 1;
            const ProtobufCFieldDescriptor *f =
                (key >> 3) <= UINT_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !nesting_ok(p + pos, (size_t)l, f->descriptor, depth + 1))
                return 0;
            pos += (size_t)l;
            break;
        }
        default:
            return 1;
        }
    }
    return 1;
}

/* ---- string map ---------------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int smap_get(const onnx_smap *m, const char *k)
{
    if (!m->cap)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)str_hash(k) & mask;; i = (i + 1) & mask) {
        if (!m->key[i])
            return -1;
        if (!strcmp(m->key[i], k))
            return m->v[i];
    }
}

/* Keys are borrowed: they must outlive the map. */
static pare_status smap_put(onnx_smap *m, const char *k, int v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        const char **key = calloc(cap, sizeof *key);
        int *val = calloc(cap, sizeof *val);
        if (!key || !val) {
            free(key);
            free(val);
            return pare_fail(PARE_ENOMEM, "out of memory indexing names");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i])
                continue;
            size_t j = (size_t)str_hash(m->key[i]) & (cap - 1);
            while (key[j])
                j = (j + 1) & (cap - 1);
            key[j] = m->key[i];
            val[j] = m->v[i];
        }
        free(m->key);
        free(m->v);
        m->key = key;
        m->v = val;
        m->cap = cap;
    }
    size_t mask = m->cap - 1, i = (size_t)str_hash(k) & mask;
    while (m->key[i] && strcmp(m->key[i], k))
        i = (i + 1) & mask;
    if (!m->key[i])
        m->n++;
    m->key[i] = k;
    m->v[i] = v;
    return PARE_OK;
}

static void smap_free(onnx_smap *m)
{
    free(m->key);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---- messages -------------------------------------------------------------------- */

/* Names from a file go into messages: no control bytes, bounded length. */
static void clean_copy(char *dst, size_t cap, const char *s, size_t keep)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap && n < keep; s++)
        dst[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '_' : *s;
    dst[n] = 0;
}

static void node_label(const onnx_imp *m, const Onnx__NodeProto *nd, char *buf, size_t cap)
{
    char nm[128];
    if (nd->name && *nd->name) {
        clean_copy(nm, sizeof nm, nd->name, 100);
        snprintf(buf, cap, "'%s'", nm);
    } else if (nd->n_output > 0 && nd->output[0][0]) {
        clean_copy(nm, sizeof nm, nd->output[0], 100);
        snprintf(buf, cap, "#%d, output '%s'", m->cur, nm);
    } else {
        snprintf(buf, cap, "#%d", m->cur);
    }
}

pare_status onnx_unsup(onnx_imp *m, const Onnx__NodeProto *nd, const char *fmt, ...)
{
    char reason[400], op[64], node[192];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof reason, fmt, ap);
        va_end(ap);
    }
    clean_copy(op, sizeof op, str(nd->op_type), 60);
    node_label(m, nd, node, sizeof node);
    for (int i = 0; i < m->nun; i++) {
        onnx_unsup_entry *u = &m->un[i];
        if (!strcmp(u->op, op) && (fmt ? u->reason && !strcmp(u->reason, reason) : !u->reason)) {
            u->count++;
            return PARE_EUNSUPPORTED;
        }
    }
    if (m->nun == m->capun) {
        int cap = m->capun ? m->capun * 2 : 8;
        onnx_unsup_entry *un = realloc(m->un, sizeof *un * (size_t)cap);
        if (!un)
            return pare_fail(PARE_ENOMEM, "out of memory listing unsupported nodes");
        m->un = un;
        m->capun = cap;
    }
    onnx_unsup_entry *u = &m->un[m->nun];
    u->op = strdup(op);
    u->node = strdup(node);
    u->reason = fmt ? strdup(reason) : NULL;
    u->count = 1;
    if (!u->op || !u->node || (fmt && !u->reason)) {
        free(u->op);
        free(u->node);
        free(u->reason);
        return pare_fail(PARE_ENOMEM, "out of memory listing unsupported nodes");
    }
    m->nun++;
    return PARE_EUNSUPPORTED;
}

pare_status onnx_bad(onnx_imp *m, const Onnx__NodeProto *nd, const char *fmt, ...)
{
    char text[512], op[64], node[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    clean_copy(op, sizeof op, str(nd->op_type), 60);
    node_label(m, nd, node, sizeof node);
    return pare_fail(PARE_EFORMAT, "%s: node %s (%s): %s", m->what, node, op, text);
}

/* "path: 3 unsupported ops: LSTM (node 'l', opset 13); Conv (node 'c', opset 13):
 * why; ..." */
static pare_status unsup_report(const onnx_imp *m)
{
    char list[UNSUP_LIST_MAX + 64];
    size_t at = 0;
    list[0] = 0;
    for (int i = 0; i < m->nun; i++) {
        const onnx_unsup_entry *u = &m->un[i];
        char one[700], more[48] = "";
        if (u->count > 1)
            snprintf(more, sizeof more, " and %d more like it", u->count - 1);
        int k = snprintf(one, sizeof one, "%s%s (node %s%s, opset %d)%s%s", i ? "; " : "", u->op,
                         u->node, more, m->opset, u->reason ? ": " : "", str(u->reason));
        if (k < 0 || at + (size_t)k > UNSUP_LIST_MAX) {
            snprintf(list + at, sizeof list - at, "; and %d more", m->nun - i);
            break;
        }
        memcpy(list + at, one, (size_t)k + 1);
        at += (size_t)k;
    }
    return pare_fail(PARE_EUNSUPPORTED, "%s: %d unsupported op%s: %s", m->what, m->nun,
                     m->nun == 1 ? "" : "s", list);
}

/* ---- attributes ------------------------------------------------------------------ */

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *nd, const char *name)
{
    for (size_t k = 0; k < nd->n_attribute; k++) {
        const Onnx__AttributeProto *a = nd->attribute[k];
        if (a && a->name && !strcmp(a->name, name))
            return a;
    }
    return NULL;
}

/* Old writers leave the type out; then the field that is set tells it. */
static int attr_is(const Onnx__AttributeProto *a, Onnx__AttributeProto__AttributeType t, int set)
{
    return a->has_type ? a->type == t : set;
}

pare_status onnx_attr_int(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, int64_t def,
                          int64_t *out)
{
    const Onnx__AttributeProto *a = onnx_attr(nd, name);
    *out = def;
    if (!a)
        return PARE_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
        return onnx_bad(m, nd, "attribute '%s' is not an integer", name);
    *out = a->i;
    return PARE_OK;
}

pare_status onnx_attr_float(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, float def,
                            float *out)
{
    const Onnx__AttributeProto *a = onnx_attr(nd, name);
    *out = def;
    if (!a)
        return PARE_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f))
        return onnx_bad(m, nd, "attribute '%s' is not a float", name);
    *out = a->f;
    return PARE_OK;
}

pare_status onnx_attr_ints(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, int max,
                           int64_t *out, int *n)
{
    const Onnx__AttributeProto *a = onnx_attr(nd, name);
    *n = -1;
    if (!a)
        return PARE_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0))
        return onnx_bad(m, nd, "attribute '%s' is not a list of integers", name);
    if (a->n_ints > (size_t)max)
        return onnx_bad(m, nd, "attribute '%s' has %zu values; at most %d make sense", name,
                        a->n_ints, max);
    for (size_t k = 0; k < a->n_ints; k++)
        out[k] = a->ints[k];
    *n = (int)a->n_ints;
    return PARE_OK;
}

pare_status onnx_attr_string(onnx_imp *m, const Onnx__NodeProto *nd, const char *name,
                             const char *def, char *buf, size_t cap)
{
    const Onnx__AttributeProto *a = onnx_attr(nd, name);
    snprintf(buf, cap, "%s", def);
    if (!a)
        return PARE_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, a->has_s))
        return onnx_bad(m, nd, "attribute '%s' is not a string", name);
    size_t n = a->s.len < cap - 1 ? a->s.len : cap - 1;
    if (n)
        memcpy(buf, a->s.data, n);
    buf[n] = 0;
    return PARE_OK;
}

/* ---- values ------------------------------------------------------------------------ */

static onnx_val *vget(const onnx_imp *m, const char *name)
{
    int i = smap_get(&m->names, name);
    return i >= 0 ? &m->v[i] : NULL;
}

/* Finds or adds a value; all are added before the translation starts, so later
 * pointers into m->v stay valid. */
static pare_status vslot(onnx_imp *m, const char *name, onnx_val **out)
{
    int i = smap_get(&m->names, name);
    if (i < 0) {
        if (m->nv == m->capv)
            return pare_fail(PARE_ENOMEM, "value table overflow");
        i = m->nv++;
        memset(&m->v[i], 0, sizeof m->v[i]);
        m->v[i].name = name;
        m->v[i].consumer = -1;
        pare_status s = smap_put(&m->names, name, i);
        if (s != PARE_OK)
            return s;
    }
    *out = &m->v[i];
    return PARE_OK;
}

static void val_clear(onnx_val *x)
{
    pare_onnx_tensor_free(x->c);
    x->c = NULL;
    onnx_quant_free(x->q);
    x->q = NULL;
    free(x->why);
    x->why = NULL;
}

onnx_val *onnx_value(onnx_imp *m, const char *name)
{
    return vget(m, name);
}

onnx_val *onnx_in(onnx_imp *m, const Onnx__NodeProto *nd, size_t k)
{
    if (k >= nd->n_input || !nd->input[k][0])
        return NULL;
    return vget(m, nd->input[k]);
}

pare_status onnx_need_act(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, onnx_val **out)
{
    onnx_val *x = onnx_in(m, nd, k);
    *out = NULL;
    if (!x)
        return onnx_bad(m, nd, "its input %zu is missing", k);
    char nm[128];
    clean_copy(nm, sizeof nm, x->name, 100);
    if (x->kind == V_SHUF)
        return onnx_unsup(m, nd,
                          "its input '%s' is a 5-dimensional tensor, which pare holds only inside a "
                          "channel shuffle (Reshape, Transpose, Reshape)",
                          nm);
    if (x->kind == V_QACT)
        return onnx_unsup(m, nd,
                          "its input '%s' holds the integer codes of a QuantizeLinear; pare reads "
                          "them only through a DequantizeLinear",
                          nm);
    if (x->kind != V_ACT)
        return onnx_unsup(m, nd, "its input '%s' is a constant where pare needs an activation", nm);
    if (x->elem)
        return onnx_unsup(m, nd,
                          "its input '%s' is %s; pare computes in float32 and takes integer "
                          "data only into DequantizeLinear or a Cast to float",
                          nm, onnx_dtype_name(x->elem));
    *out = x;
    return PARE_OK;
}

pare_status onnx_need_const(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int dtype,
                            const char *role, pare_onnx_tensor **out)
{
    onnx_val *x = onnx_in(m, nd, k);
    *out = NULL;
    if (!x)
        return PARE_OK;
    char nm[128];
    clean_copy(nm, sizeof nm, x->name, 100);
    if (x->kind != V_CONST)
        return onnx_unsup(m, nd, "its %s '%s' is computed from the input; pare needs it constant",
                          role, nm);
    if (dtype == PARE_ONNX_FLOAT && x->c->dtype != PARE_ONNX_FLOAT)
        return onnx_unsup(m, nd, "its %s '%s' is not float32", role, nm);
    if (dtype == PARE_ONNX_INT64 && x->c->dtype != PARE_ONNX_INT64)
        return onnx_bad(m, nd, "its %s '%s' is not an integer tensor", role, nm);
    *out = x->c;
    return PARE_OK;
}

static pare_status def_slot(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, onnx_val **out)
{
    *out = NULL;
    if (k >= nd->n_output || !nd->output[k][0])
        return PARE_OK;
    onnx_val *x = vget(m, nd->output[k]);
    if (!x)
        return pare_fail(PARE_EFORMAT, "%s: value table is inconsistent", m->what);
    if (x->defined) {
        char nm[128];
        clean_copy(nm, sizeof nm, x->name, 100);
        return onnx_bad(m, nd, "its output '%s' is produced earlier too", nm);
    }
    x->defined = 1;
    *out = x;
    return PARE_OK;
}

int onnx_ir_shape(int rank, const int64_t *d, pare_shape *s)
{
    int64_t c = 1, h = 1, w = 1;
    if (rank == 4) {
        c = d[1];
        h = d[2];
        w = d[3];
    } else if (rank == 3) {
        c = d[1];
        w = d[2];
    } else if (rank == 2) {
        c = d[1];
    } else if (rank != 1) {
        return 0;
    }
    if (c <= 0 || h <= 0 || w <= 0 || c > INT_MAX || h > INT_MAX || w > INT_MAX)
        return 0;
    *s = (pare_shape){(int)c, (int)h, (int)w};
    return 1;
}

int onnx_ir_axis(int rank, int a)
{
    if (rank == 4)
        return a - 1;
    if (rank == 3)
        return a == 1 ? 0 : 2;
    return 0;
}

void onnx_act_dims(const onnx_imp *m, const onnx_val *x, int64_t *d)
{
    pare_shape s = pare_graph_shape(m->g, x->id);
    d[0] = x->batch;
    if (x->rank == 4) {
        d[1] = s.c;
        d[2] = s.h;
        d[3] = s.w;
    } else if (x->rank == 3) {
        d[1] = s.c;
        d[2] = s.w;
    } else if (x->rank == 2) {
        d[1] = s.c;
    }
}

pare_status onnx_def_act(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int id, int rank,
                         int64_t batch)
{
    pare_shape s = pare_graph_shape(m->g, id);
    int fits = rank == 4 || (rank == 3 && s.h == 1) || (rank == 2 && s.h == 1 && s.w == 1) ||
               (rank == 1 && s.c == 1 && s.h == 1 && s.w == 1);
    if (!fits)
        return onnx_unsup(m, nd, "pare's shape %dx%dx%d does not fit its %d-dimensional output",
                          s.c, s.h, s.w, rank);
    onnx_val *x;
    pare_status st = def_slot(m, nd, k, &x);
    if (st != PARE_OK || !x)
        return st;
    x->kind = V_ACT;
    x->id = id;
    x->rank = rank;
    x->batch = batch;
    return PARE_OK;
}

pare_status onnx_def_const(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, pare_onnx_tensor *t)
{
    onnx_val *x;
    pare_status st = def_slot(m, nd, k, &x);
    if (st != PARE_OK || !x) {
        pare_onnx_tensor_free(t);
        return st;
    }
    x->kind = V_CONST;
    x->c = t;
    return PARE_OK;
}

pare_status onnx_def_copy(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, const onnx_val *src)
{
    onnx_val *x;
    pare_status st = def_slot(m, nd, k, &x);
    if (st != PARE_OK || !x)
        return st;
    x->kind = src->kind;
    x->id = src->id;
    x->rank = src->rank;
    x->batch = src->batch;
    x->shuf_g = src->shuf_g;
    x->shuf_t = src->shuf_t;
    x->elem = src->elem;
    x->clip_lo = src->clip_lo;
    x->clip_hi = src->clip_hi;
    x->qa = src->qa;
    x->c = src->c ? onnx_tensor_ref(src->c) : NULL;
    if (src->why && !(x->why = strdup(src->why)))
        return pare_fail(PARE_ENOMEM, "out of memory");
    if (src->q && !(x->q = onnx_quant_copy(src->q, &st)))
        return st;
    return PARE_OK;
}

pare_status onnx_def_shuf(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int id, int groups,
                          int transposed, int64_t batch)
{
    onnx_val *x;
    pare_status st = def_slot(m, nd, k, &x);
    if (st != PARE_OK || !x)
        return st;
    x->kind = V_SHUF;
    x->id = id;
    x->rank = 5;
    x->batch = batch;
    x->shuf_g = groups;
    x->shuf_t = transposed;
    return PARE_OK;
}

/* ---- naming ---------------------------------------------------------------------- */

/* The first free name among base, base_2, base_3, ... */
static void unique_name(const onnx_smap *used, const char *base, char *out, size_t cap)
{
    snprintf(out, cap, "%s", base);
    for (int k = 2; smap_get(used, out) >= 0; k++)
        snprintf(out, cap, "%s_%d", base, k);
}

pare_attrs onnx_attrs0(void)
{
    pare_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.groups = 1;
    return a;
}

static pare_status name_param(onnx_imp *m, int pid, const char *vname)
{
    pare_param *p = &m->g->params[pid];
    char base[NAME_KEEP + 64], name[NAME_KEEP + 80];
    if (vname && *vname)
        clean_copy(base, sizeof base, vname, NAME_KEEP);
    else
        clean_copy(base, sizeof base, p->name, NAME_KEEP + 40);
    unique_name(&m->params, base, name, sizeof name);
    char *copy = strdup(name);
    if (!copy)
        return pare_fail(PARE_ENOMEM, "out of memory naming a tensor");
    free(p->name);
    p->name = copy;
    return smap_put(&m->params, p->name, pid);
}

int onnx_ir_add(onnx_imp *m, const Onnx__NodeProto *nd, pare_op_type op, const int *in, int n_in,
                const pare_attrs *a, const char *suffix, const char *const *pnames,
                pare_status *st)
{
    char base[NAME_KEEP + 40], name[NAME_KEEP + 60];
    const char *src = nd->name && *nd->name ? nd->name
                      : nd->n_output > 0 && nd->output[0][0] ? nd->output[0]
                                                             : str(nd->op_type);
    clean_copy(base, sizeof base, src, NAME_KEEP);
    if (!base[0])
        snprintf(base, sizeof base, "node%d", m->cur);
    if (suffix)
        strncat(base, suffix, sizeof base - strlen(base) - 1);
    unique_name(&m->layers, base, name, sizeof name);
    int id = pare_graph_add_node(m->g, op, in, n_in, a, name);
    if (id < 0) {
        pare_status s = m->g->err;
        m->g->err = PARE_OK;
        *st = s == PARE_ENOMEM ? s : onnx_unsup(m, nd, "%s", pare_last_error());
        return -1;
    }
    *st = smap_put(&m->layers, m->g->nodes[id].name, id);
    for (int k = 0; k < m->g->nodes[id].n_param && *st == PARE_OK; k++)
        *st = name_param(m, m->g->nodes[id].param[k], pnames ? pnames[k] : NULL);
    return *st == PARE_OK ? id : -1;
}

pare_status onnx_set_param(onnx_imp *m, int id, int k, const float *x, size_t n)
{
    const pare_node *nd = &m->g->nodes[id];
    if (k >= nd->n_param || m->g->params[nd->param[k]].t->n != n)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: layer %s: parameter %d does not hold %zu values (an importer bug)",
                         m->what, nd->name, k, n);
    if (n)
        memcpy(m->g->params[nd->param[k]].t->data, x, n * sizeof(float));
    return PARE_OK;
}

int onnx_ir_const(onnx_imp *m, const Onnx__NodeProto *nd, const pare_onnx_tensor *c, pare_shape s,
                  const char *vname, pare_status *st)
{
    pare_attrs a = onnx_attrs0();
    a.shape[0] = s.c;
    a.shape[1] = s.h;
    a.shape[2] = s.w;
    const char *names[PARE_NODE_MAX_PARAMS] = {vname};
    int id = onnx_ir_add(m, nd, PARE_OP_CONST, NULL, 0, &a, ".const", names, st);
    if (id >= 0 && (*st = onnx_set_param(m, id, 0, c->f, c->n)) != PARE_OK)
        return -1;
    return id;
}

/* ---- sparsity ---------------------------------------------------------------------- */

const char *onnx_meta(const onnx_imp *m, const char *prefix, const char *vname)
{
    size_t np = strlen(prefix);
    for (size_t k = 0; k < m->model->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *e = m->model->metadata_props[k];
        if (e && e->key && e->value && !strncmp(e->key, prefix, np) && !strcmp(e->key + np, vname))
            return e->value;
    }
    return NULL;
}

static int scheme_fits(const char *text, const pare_tensor *w, const uint8_t *mask)
{
    pare_scheme s;
    if (pare_scheme_parse(text, &s) != PARE_OK)
        return 0;
    return pare_scheme_satisfied(&s, w, mask);
}

/* The most structured scheme the zeros follow. N:M first (the sparsest ratio
 * that holds), then 3x3 kernel patterns, whole filters or input channels (which
 * purify can remove), blocks from the largest, whole columns; else unstructured. */
static const char *detect_scheme(const pare_tensor *w, const uint8_t *mask)
{
    static const char *const order[] = {
        "1:8", "1:4", "2:8", "3:8", "2:4", "4:8", "pattern", "filter", "channel",
        "block:8x8", "block:16x1", "block:1x16", "block:4x4", "block:8x1", "block:1x8",
        "block:4x1", "block:1x4", "block:2x2", "block:2x1", "block:1x2", "column",
    };
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        if (scheme_fits(order[k], w, mask))
            return order[k];
    return "unstructured";
}

pare_status onnx_weight_sparsity(onnx_imp *m, int id, const char *vname)
{
    int pid = pare_graph_node_param(m->g, id, PARE_ROLE_WEIGHT);
    if (pid < 0)
        return PARE_OK;
    pare_param *p = &m->g->params[pid];
    const pare_tensor *w = p->t;
    size_t zeros = 0;
    for (size_t k = 0; k < w->n; k++)
        zeros += w->data[k] == 0.0f;
    const char *recorded = vname ? onnx_meta(m, "pare.scheme.", vname) : NULL;
    /* A scheme the exporter recorded stands even at a low sparsity; found zeros
     * count from about a tenth. */
    if (zeros == 0 || (!recorded && zeros * 10 < w->n))
        return PARE_OK;
    uint8_t *mask = malloc(w->n);
    if (!mask)
        return pare_fail(PARE_ENOMEM, "out of memory masking layer %s", m->g->nodes[id].name);
    for (size_t k = 0; k < w->n; k++)
        mask[k] = w->data[k] != 0.0f;
    const char *scheme = NULL;
    char canon[PARE_FILE_SCHEME_MAX + 1];
    pare_scheme sc;
    if (recorded && pare_scheme_parse(recorded, &sc) == PARE_OK &&
        pare_scheme_satisfied(&sc, w, mask)) {
        pare_scheme_format(&sc, canon, sizeof canon);
        scheme = canon;
    } else if (zeros * 10 >= w->n) {
        scheme = detect_scheme(w, mask);
    }
    if (!scheme) {
        free(mask);
        return PARE_OK;
    }
    char *copy = strdup(scheme);
    if (!copy) {
        free(mask);
        return pare_fail(PARE_ENOMEM, "out of memory masking layer %s", m->g->nodes[id].name);
    }
    free(p->mask);
    free(p->scheme);
    p->mask = mask;
    p->scheme = copy;
    return PARE_OK;
}

/* ---- the graph's edges ------------------------------------------------------------- */

static pare_status add_initializers(onnx_imp *m)
{
    const Onnx__GraphProto *gp = m->gp;
    for (size_t k = 0; k < gp->n_initializer; k++) {
        const Onnx__TensorProto *tp = gp->initializer[k];
        char nm[128];
        clean_copy(nm, sizeof nm, tp ? str(tp->name) : "", 100);
        if (!tp || !tp->name || !*tp->name)
            return pare_fail(PARE_EFORMAT, "%s: initializer %zu has no name", m->what, k);
        onnx_val *x = vget(m, tp->name);
        if (x->defined)
            return pare_fail(PARE_EFORMAT, "%s: two initializers are named '%s'", m->what, nm);
        x->defined = 1;
        char what[200];
        snprintf(what, sizeof what, "initializer '%s'", nm);
        pare_onnx_tensor *t = NULL;
        pare_status s = onnx_tensor_from_proto(tp, m->dir, what, &t);
        if (s == PARE_EUNSUPPORTED) {
            /* Unread until a node needs it: models carry unused odd tensors. */
            x->kind = V_BAD;
            if (!(x->why = strdup(pare_last_error())))
                return pare_fail(PARE_ENOMEM, "out of memory");
            continue;
        }
        if (s != PARE_OK) {
            if (s == PARE_EFORMAT)
                pare_error_prefix("%s", m->what);
            return s;
        }
        x->kind = V_CONST;
        x->c = t;
    }
    return PARE_OK;
}

static int is_initializer(const onnx_imp *m, const char *name)
{
    for (size_t k = 0; k < m->gp->n_initializer; k++)
        if (m->gp->initializer[k] && !strcmp(str(m->gp->initializer[k]->name), name))
            return 1;
    return 0;
}

/* A tensor type's element type and dims (dim_value, or -1 for a symbolic or
 * unknown one); 0 when it is not a tensor or has no shape. */
static int value_type(const Onnx__ValueInfoProto *vi, int *elem, int *rank, int64_t *d)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return 0;
    *elem = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    if (!sh || sh->n_dim > PARE_ONNX_MAX_RANK)
        return 0;
    *rank = (int)sh->n_dim;
    for (size_t k = 0; k < sh->n_dim; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh->dim[k];
        d[k] = dm && dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                       dm->dim_value > 0
                   ? dm->dim_value
                   : -1;
    }
    return 1;
}

static pare_status add_inputs(onnx_imp *m)
{
    const Onnx__GraphProto *gp = m->gp;
    const Onnx__ValueInfoProto *data = NULL;
    int extra = 0, n_bind = m->o ? m->o->n_bind : 0;
    char names[300] = "";
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *vi = gp->input[k];
        if (!vi || !vi->name || !*vi->name)
            return pare_fail(PARE_EFORMAT, "%s: graph input %zu has no name", m->what, k);
        if (is_initializer(m, vi->name))
            continue;
        char nm[128];
        clean_copy(nm, sizeof nm, vi->name, 100);
        if (strlen(names) + strlen(nm) + 8 < sizeof names)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'",
                     names[0] ? ", " : "", nm);
        if (!data) {
            data = vi;
            continue;
        }
        onnx_val *x = vget(m, vi->name);
        if (x->defined)
            return pare_fail(PARE_EFORMAT, "%s: graph input '%s' is listed twice", m->what, nm);
        if (extra < n_bind) {
            x->defined = 1;
            x->kind = V_CONST;
            x->c = onnx_tensor_ref(m->o->bind[extra]);
        }
        extra++;
    }
    if (!data)
        return pare_fail(PARE_EUNSUPPORTED, "%s: the model has no data input (every input is an initializer)", m->what);
    if (extra > n_bind)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: the model has %d inputs (%s); a pare graph takes one", m->what,
                         extra + 1, names);
    int elem = 0, rank = 0;
    int64_t d[PARE_ONNX_MAX_RANK];
    char nm[128];
    clean_copy(nm, sizeof nm, data->name, 100);
    if (!value_type(data, &elem, &rank, d))
        return pare_fail(PARE_EUNSUPPORTED, "%s: input '%s' is not a tensor with a shape", m->what,
                         nm);
    /* An input of int8 or uint8 codes (a quantized model's) is fed as float32
     * holding those integers; only DequantizeLinear and Cast may read it. */
    if (elem != PARE_ONNX_FLOAT && elem != PARE_ONNX_UINT8 && elem != PARE_ONNX_INT8)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: input '%s' is %s; pare takes float32 input (or uint8 or int8 codes "
                         "into a DequantizeLinear)",
                         m->what, nm, onnx_dtype_name(elem));
    if (m->o && m->o->input_dims) {
        if (m->o->input_rank < 0 || m->o->input_rank > PARE_ONNX_MAX_RANK)
            return pare_fail(PARE_EINVAL, "the input rank %d is out of range", m->o->input_rank);
        rank = m->o->input_rank;
        for (int k = 0; k < rank; k++)
            d[k] = m->o->input_dims[k];
    }
    if (rank < 1 || rank > 4)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: input '%s' has %d dimensions; pare takes 1 to 4 (batch first)",
                         m->what, nm, rank);
    for (int k = 1; k < rank; k++)
        if (d[k] <= 0)
            return pare_fail(PARE_EUNSUPPORTED,
                             "%s: input '%s' has a symbolic or unknown size along axis %d; pare "
                             "needs fixed sizes but for the batch",
                             m->what, nm, k);
    pare_shape s;
    if (!onnx_ir_shape(rank, d, &s) || pare_shape_size(s) > (size_t)1 << 30)
        return pare_fail(PARE_EUNSUPPORTED, "%s: input '%s' is too large", m->what, nm);
    int id = pare_graph_input(m->g, s.c, s.h, s.w);
    if (id < 0) {
        pare_status st = m->g->err;
        pare_error_prefix("%s: input '%s'", m->what, nm);
        return st == PARE_ENOMEM ? st : PARE_EUNSUPPORTED;
    }
    pare_status st = smap_put(&m->layers, m->g->nodes[id].name, id);
    if (st != PARE_OK)
        return st;
    onnx_val *x = vget(m, data->name);
    x->defined = 1;
    x->kind = V_ACT;
    x->id = id;
    x->rank = rank;
    x->batch = d[0] > 0 ? d[0] : -1;
    x->elem = elem == PARE_ONNX_FLOAT ? 0 : elem;
    return PARE_OK;
}

/* Slots for every name, use counts, and each value's first consumer. */
static pare_status index_names(onnx_imp *m)
{
    const Onnx__GraphProto *gp = m->gp;
    size_t total = gp->n_initializer + gp->n_input + gp->n_output + 1;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        if (!nd)
            return pare_fail(PARE_EFORMAT, "%s: node %zu is empty", m->what, i);
        total += nd->n_input + nd->n_output;
    }
    if (total > INT_MAX / 2)
        return pare_fail(PARE_EUNSUPPORTED, "%s: the graph is too large", m->what);
    m->capv = (int)total;
    m->v = calloc(total, sizeof *m->v);
    m->fused = calloc(gp->n_node + 1, 1);
    if (!m->v || !m->fused)
        return pare_fail(PARE_ENOMEM, "out of memory indexing %s", m->what);
    onnx_val *x;
    pare_status s;
    for (size_t k = 0; k < gp->n_initializer; k++)
        if (gp->initializer[k] && gp->initializer[k]->name &&
            (s = vslot(m, gp->initializer[k]->name, &x)) != PARE_OK)
            return s;
    for (size_t k = 0; k < gp->n_input; k++)
        if (gp->input[k] && gp->input[k]->name && (s = vslot(m, gp->input[k]->name, &x)) != PARE_OK)
            return s;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        for (size_t k = 0; k < nd->n_input; k++) {
            if (!nd->input[k][0])
                continue;
            if ((s = vslot(m, nd->input[k], &x)) != PARE_OK)
                return s;
            x->uses++;
            if (x->consumer < 0)
                x->consumer = (int)i;
        }
        for (size_t k = 0; k < nd->n_output; k++)
            if (nd->output[k][0] && (s = vslot(m, nd->output[k], &x)) != PARE_OK)
                return s;
    }
    for (size_t k = 0; k < gp->n_output; k++) {
        if (!gp->output[k] || !gp->output[k]->name || !*gp->output[k]->name)
            return pare_fail(PARE_EFORMAT, "%s: graph output %zu has no name", m->what, k);
        if ((s = vslot(m, gp->output[k]->name, &x)) != PARE_OK)
            return s;
        x->uses++;
    }
    return PARE_OK;
}

static pare_status set_dead(onnx_imp *m, const Onnx__NodeProto *nd)
{
    for (size_t k = 0; k < nd->n_output; k++) {
        if (!nd->output[k][0])
            continue;
        onnx_val *x = vget(m, nd->output[k]);
        if (x->defined && x->kind != V_DEAD && x->kind != V_UNDEF) {
            /* A handler that failed after defining it. */
            val_clear(x);
        } else if (x->defined) {
            char nm[128];
            clean_copy(nm, sizeof nm, x->name, 100);
            return onnx_bad(m, nd, "its output '%s' is produced earlier too", nm);
        }
        x->defined = 1;
        x->kind = V_DEAD;
    }
    return PARE_OK;
}

static pare_status convert_node(onnx_imp *m, const Onnx__NodeProto *nd)
{
    if (!nd->op_type || !*nd->op_type)
        return onnx_bad(m, nd, "it has no op type");
    int dead = 0, all_const = 1, any = 0;
    for (size_t k = 0; k < nd->n_input; k++) {
        if (!nd->input[k][0])
            continue;
        onnx_val *x = vget(m, nd->input[k]);
        if (!x->defined) {
            char nm[128];
            clean_copy(nm, sizeof nm, x->name, 100);
            return onnx_bad(m, nd, "it reads '%s', which no earlier node, input or initializer "
                                   "produces",
                            nm);
        }
        any = 1;
        dead |= x->kind == V_DEAD;
        all_const &= x->kind == V_CONST;
    }
    if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx")) {
        char dm[80];
        clean_copy(dm, sizeof dm, nd->domain, 60);
        return onnx_unsup(m, nd, "its domain '%s' is not the default ONNX domain", dm);
    }
    const onnx_op *op = onnx_op_find(nd->op_type);
    if (!op)
        return onnx_unsup(m, nd, NULL);
    /* Downstream of a node already reported: nothing more to say. */
    if (dead)
        return PARE_EUNSUPPORTED;
    for (size_t k = 0; k < nd->n_input; k++) {
        onnx_val *x = onnx_in(m, nd, k);
        if (x && x->kind == V_BAD)
            return onnx_unsup(m, nd, "%s", x->why);
    }
    if (m->fused[m->cur]) {
        for (size_t k = 0; k < nd->n_input; k++) {
            onnx_val *x = onnx_in(m, nd, k);
            if (x && x->kind == V_ACT)
                return onnx_def_copy(m, nd, 0, x);
        }
    }
    for (int k = 0; k < op->min_in; k++)
        if ((size_t)k >= nd->n_input || !nd->input[k][0])
            return onnx_bad(m, nd, "it lacks its input %d", k);
    if ((all_const || !any) && op->fold)
        return op->fold(m, nd);
    if (!all_const && op->act)
        return op->act(m, nd);
    if (op->act)
        return onnx_unsup(m, nd, "all its inputs are constants, and pare folds %s only as an "
                                 "activation op",
                          op->name);
    return onnx_unsup(m, nd, "pare folds it when all its inputs are constants, and an input "
                             "here comes from the data");
}

/* Outputs a handler left undefined (an optional second output) must be unused. */
static pare_status check_outputs(onnx_imp *m, const Onnx__NodeProto *nd)
{
    for (size_t k = 0; k < nd->n_output; k++) {
        if (!nd->output[k][0])
            continue;
        onnx_val *x = vget(m, nd->output[k]);
        if (x->defined)
            continue;
        x->defined = 1;
        x->kind = V_DEAD;
        if (x->uses > 0) {
            char nm[128];
            clean_copy(nm, sizeof nm, x->name, 100);
            return onnx_unsup(m, nd, "its output %zu ('%s') is used, and pare produces only the "
                                     "first",
                              k, nm);
        }
    }
    return PARE_OK;
}

static pare_status set_output(onnx_imp *m)
{
    const Onnx__GraphProto *gp = m->gp;
    if (gp->n_output != 1) {
        char names[300] = "";
        for (size_t k = 0; k < gp->n_output; k++) {
            char nm[128];
            clean_copy(nm, sizeof nm, str(gp->output[k]->name), 100);
            if (strlen(names) + strlen(nm) + 8 < sizeof names)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'",
                         k ? ", " : "", nm);
        }
        if (gp->n_output == 0)
            return pare_fail(PARE_EFORMAT, "%s: the graph has no output", m->what);
        return pare_fail(PARE_EUNSUPPORTED, "%s: the model has %zu outputs (%s); a pare graph gives one",
                         m->what, gp->n_output, names);
    }
    return PARE_OK;
}

static pare_status finish_output(onnx_imp *m)
{
    const Onnx__ValueInfoProto *vi = m->gp->output[0];
    onnx_val *x = vget(m, vi->name);
    char nm[128];
    clean_copy(nm, sizeof nm, vi->name, 100);
    if (!x->defined)
        return pare_fail(PARE_EFORMAT, "%s: the output '%s' is produced by no node", m->what, nm);
    if (x->kind == V_CONST)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: the output '%s' is a constant (it does not depend on the input)",
                         m->what, nm);
    if (x->kind == V_QACT)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: the output '%s' holds the integer codes of a QuantizeLinear; pare's "
                         "graphs give float32 (a DequantizeLinear after it would give their values)",
                         m->what, nm);
    if (x->kind != V_ACT)
        return pare_fail(PARE_EUNSUPPORTED, "%s: the output '%s' is a 5-dimensional tensor",
                         m->what, nm);
    if (x->elem)
        return pare_fail(PARE_EUNSUPPORTED, "%s: the output '%s' is %s; pare's graphs give float32",
                         m->what, nm, onnx_dtype_name(x->elem));
    int id = x->id;
    if (id == 0) {
        /* The model computes nothing (its output is its input): one layer that
         * copies, since a pare graph's output is a layer after the input. */
        pare_attrs a = onnx_attrs0();
        pare_shape s = pare_graph_shape(m->g, 0);
        char name[NAME_KEEP + 1];
        a.shape[0] = s.c;
        a.shape[1] = s.h;
        a.shape[2] = s.w;
        clean_copy(name, sizeof name, vi->name, NAME_KEEP);
        if (smap_get(&m->layers, name) >= 0)
            snprintf(name, sizeof name, "output");
        id = pare_graph_add_node(m->g, PARE_OP_RESHAPE, &id, 1, &a, name);
        if (id < 0)
            return m->g->err;
    }
    return pare_graph_set_output(m->g, id);
}

static pare_status set_names_and_meta(onnx_imp *m)
{
    const char *gname = m->gp->name && *m->gp->name ? m->gp->name : "model";
    char buf[NAME_KEEP + 1];
    clean_copy(buf, sizeof buf, gname, NAME_KEEP);
    char *copy = strdup(buf);
    if (!copy)
        return pare_fail(PARE_ENOMEM, "out of memory");
    free(m->g->name);
    m->g->name = copy;
    static const char prefix[] = "pare.meta.";
    for (size_t k = 0; k < m->model->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *e = m->model->metadata_props[k];
        if (!e || !e->key || !e->value || strncmp(e->key, prefix, sizeof prefix - 1))
            continue;
        const char *key = e->key + sizeof prefix - 1;
        if (!*key || strlen(key) > PARE_FILE_NAME_MAX || strlen(e->value) > PARE_FILE_VALUE_MAX)
            continue;
        pare_status s = pare_graph_meta_set(m->g, key, e->value);
        if (s != PARE_OK)
            return s;
    }
    return PARE_OK;
}

static pare_status check_model(onnx_imp *m)
{
    const Onnx__ModelProto *mp = m->model;
    if (!mp->graph)
        return pare_fail(PARE_EFORMAT, "%s is not an ONNX model (it holds no graph)", m->what);
    if (!mp->has_ir_version)
        return pare_fail(PARE_EFORMAT, "%s is not an ONNX model (it has no IR version)", m->what);
    if (mp->ir_version < IR_MIN || mp->ir_version > IR_MAX)
        return pare_fail(PARE_EUNSUPPORTED, "%s: ONNX IR version %lld; pare reads %d to %d",
                         m->what, (long long)mp->ir_version, IR_MIN, IR_MAX);
    m->opset = -1;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[k];
        if (o && (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")))
            m->opset = o->has_version ? (int)(o->version > INT_MAX ? INT_MAX : o->version) : 1;
    }
    if (m->opset < 0)
        return pare_fail(PARE_EFORMAT, "%s imports no opset of the default ONNX domain", m->what);
    if (m->opset < OPSET_MIN || m->opset > OPSET_MAX)
        return pare_fail(PARE_EUNSUPPORTED, "%s: opset %d of the default ONNX domain; pare reads "
                                            "opsets %d to %d",
                         m->what, m->opset, OPSET_MIN, OPSET_MAX);
    m->gp = mp->graph;
    return PARE_OK;
}

static void imp_free(onnx_imp *m)
{
    for (int i = 0; i < m->nv; i++)
        val_clear(&m->v[i]);
    free(m->v);
    free(m->fused);
    smap_free(&m->names);
    smap_free(&m->layers);
    smap_free(&m->params);
    for (int i = 0; i < m->nun; i++) {
        free(m->un[i].op);
        free(m->un[i].node);
        free(m->un[i].reason);
    }
    free(m->un);
}

/* A fakequant read only by a ReLU or a Flatten (PyTorch's QAT export: conv,
 * its output's fakequant, the ReLU, then the Flatten before a linear layer)
 * trades places with it: with 0 <= zero point <= top code, 0 is a code, so
 * relu(fq(x)) = fq(relu(x)) for every x, bit for bit (a negative x gives
 * +0.0 either way, a NaN stays NaN), and a pointwise op commutes with a
 * reshape. The ReLU then fuses into the conv before it, and the next conv or
 * linear layer reads a fakequant's output, which is what lets them run in
 * int8. One pass moves a fakequant past a ReLU and then a Flatten; a Flatten
 * only after a ReLU, so pare's own exports (a fakequant after a pooling,
 * then the Flatten) come back as they went out. */
static void relu_before_fakequant(pare_graph *g)
{
    for (int b = 1; b < g->n_nodes; b++) {
        pare_node *r = &g->nodes[b];
        if ((r->op != PARE_OP_RELU && r->op != PARE_OP_FLATTEN) || r->n_in != 1)
            continue;
        int a = r->in[0];
        pare_node *f = &g->nodes[a];
        if (f->op != PARE_OP_FAKEQUANT || f->n_in != 1 || a == g->output || f->a.mode < 1 || f->a.mode > 16)
            continue;
        if (r->op == PARE_OP_FLATTEN && g->nodes[f->in[0]].op != PARE_OP_RELU)
            continue;
        float top = (float)((1 << f->a.mode) - 1);
        if (!(f->a.beta >= 0.0f && f->a.beta <= top) || f->a.beta != rintf(f->a.beta))
            continue;
        int users = 0;
        for (int u = a + 1; u < g->n_nodes; u++)
            for (int k = 0; k < g->nodes[u].n_in; k++)
                users += g->nodes[u].in[k] == a;
        if (users != 1)
            continue;
        pare_op_type op = f->op;
        pare_attrs at = f->a;
        char *name = f->name;
        f->op = r->op;
        f->a = r->a;
        f->name = r->name;
        f->out = r->out;
        r->op = op;
        r->a = at;
        r->name = name;
    }
}

static pare_status translate(onnx_imp *m)
{
    pare_status s = check_model(m);
    if (s == PARE_OK)
        s = set_output(m);
    if (s == PARE_OK)
        s = index_names(m);
    if (s == PARE_OK)
        s = add_initializers(m);
    if (s == PARE_OK)
        s = add_inputs(m);
    if (s != PARE_OK)
        return s;
    for (size_t i = 0; i < m->gp->n_node; i++) {
        const Onnx__NodeProto *nd = m->gp->node[i];
        m->cur = (int)i;
        s = convert_node(m, nd);
        if (s == PARE_OK)
            s = check_outputs(m, nd);
        if (s == PARE_EUNSUPPORTED)
            s = set_dead(m, nd);
        if (s != PARE_OK)
            return s;
    }
    if (m->nun > 0)
        return unsup_report(m);
    s = finish_output(m);
    if (s == PARE_OK)
        s = set_names_and_meta(m);
    if (s == PARE_OK)
        relu_before_fakequant(m->g);
    /* Whatever the import makes, pare can save. */
    if (s == PARE_OK && (s = pare_file_check_graph(m->g)) != PARE_OK)
        pare_error_prefix("%s", m->what);
    return s;
}

pare_status pare_onnx_decode(const uint8_t *buf, size_t len, const char *what, const char *dir,
                             const pare_onnx_options *o, pare_graph **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_onnx_decode needs somewhere to put the graph");
    *out = NULL;
    if (!what)
        what = "ONNX model";
    if (!buf && len)
        return pare_fail(PARE_EINVAL, "%s: no bytes", what);
    if (len == 0)
        return pare_fail(PARE_EFORMAT, "%s is empty; it is not an ONNX model", what);
    if (len > MODEL_FILE_MAX)
        return pare_fail(PARE_EFORMAT, "%s is %zu bytes, more than protobuf's 2 GiB limit", what,
                         len);
    if (!nesting_ok(buf, len, &onnx__model_proto__descriptor, 1))
        return pare_fail(PARE_EFORMAT, "%s nests messages more than %d deep; it is not a sound "
                                       "ONNX model",
                         what, NEST_MAX);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp)
        return pare_fail(PARE_EFORMAT,
                         "%s is not an ONNX model (it does not parse as a protobuf ModelProto; "
                         "it may be truncated)",
                         what);
    onnx_imp m;
    memset(&m, 0, sizeof m);
    m.what = what;
    m.dir = dir;
    m.o = o;
    m.model = mp;
    pare_status s = PARE_ENOMEM;
    m.g = pare_graph_new("model");
    if (m.g)
        s = translate(&m);
    imp_free(&m);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (s != PARE_OK) {
        pare_graph_free(m.g);
        return s;
    }
    *out = m.g;
    return PARE_OK;
}

pare_status pare_onnx_load_ex(const char *path, const pare_onnx_options *o, pare_graph **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_onnx_load needs somewhere to put the graph");
    *out = NULL;
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "no path to load an ONNX model from");
    uint8_t *buf = NULL;
    size_t len = 0;
    pare_status s = pare_read_file(path, MODEL_FILE_MAX, &buf, &len);
    if (s != PARE_OK)
        return s;
    /* External data lives beside the model. */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    s = pare_onnx_decode(buf, len, path, dir, o, out);
    free(buf);
    return s;
}

pare_status pare_onnx_load(const char *path, pare_graph **out)
{
    return pare_onnx_load_ex(path, NULL, out);
}

#endif
