/* ONNX ops to pare IR nodes, one handler per op: shapes are per sample with the
 * batch first (rank 4 NCHW, rank 3 NCL as C x 1 x L, rank 2 NF as F x 1 x 1),
 * and constant subgraphs (shape arithmetic) fold at import. docs/ONNX.md lists
 * what each op takes. */
#ifdef PARE_ONNX

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "graph/graph.h"
#include "io/format.h"
#include "io/onnx_imp.h"

typedef const Onnx__NodeProto node;

static const char *str(const char *s) { return s ? s : ""; }

static int same_shape(pare_shape a, pare_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

static int norm_axis(int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank)
        return 0;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 1;
}

/* A fold's status as the node's: its phrase becomes the reason or the error.
 * t is read here, after the fold in the argument list has run. */
static pare_status folded(onnx_imp *m, node *nd, pare_status s, pare_onnx_tensor *const *t)
{
    if (s == PARE_OK)
        return onnx_def_const(m, nd, 0, *t);
    if (s == PARE_EUNSUPPORTED)
        return onnx_unsup(m, nd, "%s", pare_last_error());
    if (s == PARE_EFORMAT)
        return onnx_bad(m, nd, "%s", pare_last_error());
    return s;
}

/* A float32 scalar input (absent: def). */
static pare_status scalar_in(onnx_imp *m, node *nd, size_t k, const char *role, float def,
                             float *out)
{
    pare_onnx_tensor *t;
    pare_status s = onnx_need_const(m, nd, k, PARE_ONNX_FLOAT, role, &t);
    *out = def;
    if (s != PARE_OK || !t)
        return s;
    if (t->n != 1)
        return onnx_bad(m, nd, "its %s holds %zu values, not one", role, t->n);
    *out = t->f[0];
    return PARE_OK;
}

/* An integer list input (at most max values, no batch marks); *n = -1 when absent. */
static pare_status ints_in(onnx_imp *m, node *nd, size_t k, const char *role, int max,
                           int64_t *out, int *n)
{
    pare_onnx_tensor *t;
    *n = -1;
    pare_status s = onnx_need_const(m, nd, k, PARE_ONNX_INT64, role, &t);
    if (s != PARE_OK || !t)
        return s;
    if (t->rank > 1 || t->n > (size_t)max)
        return onnx_bad(m, nd, "its %s is not a list of at most %d integers", role, max);
    if (onnx_tensor_has_batch(t))
        return onnx_unsup(m, nd, "its %s depends on the batch size", role);
    for (size_t e = 0; e < t->n; e++)
        out[e] = t->i[e];
    *n = (int)t->n;
    return PARE_OK;
}

/* An input of the fold handlers, which run only when every input is constant. */
static pare_onnx_tensor *cin(onnx_imp *m, node *nd, size_t k)
{
    onnx_val *x = onnx_in(m, nd, k);
    return x && x->kind == V_CONST ? x->c : NULL;
}

static pare_status elementwise(onnx_imp *m, node *nd, pare_op_type op, const pare_attrs *a)
{
    onnx_val *x;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    int id = onnx_ir_add(m, nd, op, &x->id, 1, a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

/* The activation x seen with new ONNX dims d (batch first, same values per
 * sample): the same IR value, a flatten or a reshape. */
static pare_status reshape_act(onnx_imp *m, node *nd, const onnx_val *x, int id, int rank,
                               const int64_t *d)
{
    pare_shape s, cur = pare_graph_shape(m->g, id);
    if (rank > 4)
        return onnx_unsup(m, nd, "its result has %d dimensions; pare holds up to 4 (batch first)",
                          rank);
    if (!onnx_ir_shape(rank, d, &s) || pare_shape_size(s) != pare_shape_size(cur))
        return onnx_bad(m, nd, "its result does not hold the input's values");
    int out = id;
    if (!same_shape(s, cur)) {
        pare_attrs a = onnx_attrs0();
        pare_status st;
        pare_op_type op = s.h == 1 && s.w == 1 ? PARE_OP_FLATTEN : PARE_OP_RESHAPE;
        a.shape[0] = s.c;
        a.shape[1] = s.h;
        a.shape[2] = s.w;
        out = onnx_ir_add(m, nd, op, &id, 1, &a, NULL, NULL, &st);
        if (out < 0)
            return st;
    }
    return onnx_def_act(m, nd, 0, out, rank, x->batch);
}

/* ---- constants and shapes --------------------------------------------------------- */

static pare_status op_identity(onnx_imp *m, node *nd)
{
    onnx_val *x = onnx_in(m, nd, 0);
    if (!x)
        return onnx_bad(m, nd, "it has no input");
    return onnx_def_copy(m, nd, 0, x);
}

static pare_status op_constant(onnx_imp *m, node *nd)
{
    const Onnx__AttributeProto *a;
    pare_onnx_tensor *t = NULL;
    pare_status s;
    int64_t one = 1;
    if ((a = onnx_attr(nd, "value"))) {
        if (!a->t)
            return onnx_bad(m, nd, "its attribute 'value' holds no tensor");
        char what[64];
        snprintf(what, sizeof what, "its value");
        s = onnx_tensor_from_proto(a->t, m->dir, what, &t);
        if (s == PARE_EUNSUPPORTED)
            return onnx_unsup(m, nd, "%s", pare_last_error());
        if (s != PARE_OK)
            return s == PARE_EFORMAT ? onnx_bad(m, nd, "%s", pare_last_error()) : s;
    } else if ((a = onnx_attr(nd, "value_float")) || (a = onnx_attr(nd, "value_int"))) {
        int fl = !strcmp(a->name, "value_float");
        t = onnx_tensor_new(fl ? PARE_ONNX_FLOAT : PARE_ONNX_INT64, 0, &one, 1, &s);
        if (!t)
            return s;
        if (fl)
            t->f[0] = a->f;
        else
            t->i[0] = a->i;
    } else if ((a = onnx_attr(nd, "value_floats")) || (a = onnx_attr(nd, "value_ints"))) {
        int fl = !strcmp(a->name, "value_floats");
        int64_t n = (int64_t)(fl ? a->n_floats : a->n_ints);
        t = onnx_tensor_new(fl ? PARE_ONNX_FLOAT : PARE_ONNX_INT64, 1, &n, ONNX_TENSOR_MAX, &s);
        if (!t)
            return s;
        for (int64_t e = 0; e < n; e++) {
            if (fl)
                t->f[e] = a->floats[e];
            else
                t->i[e] = a->ints[e];
        }
    } else if (nd->n_attribute > 0) {
        return onnx_unsup(m, nd, "it holds a sparse tensor or strings");
    } else {
        return onnx_bad(m, nd, "it holds no value");
    }
    return onnx_def_const(m, nd, 0, t);
}

/* Shape: an activation's dims with the batch marked, or a constant's. */
static pare_status shape_of(onnx_imp *m, node *nd, int rank, const int64_t *d, int batch_mark)
{
    int64_t start, end;
    pare_status s = onnx_attr_int(m, nd, "start", 0, &start);
    if (s == PARE_OK)
        s = onnx_attr_int(m, nd, "end", rank, &end);
    if (s != PARE_OK)
        return s;
    if (start < 0)
        start += rank;
    if (end < 0)
        end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < start ? start : end > rank ? rank : end;
    int64_t n = end - start;
    pare_onnx_tensor *t = onnx_tensor_new(PARE_ONNX_INT64, 1, &n, PARE_ONNX_MAX_RANK, &s);
    if (!t)
        return s;
    if (batch_mark && start == 0 && n > 0) {
        t->batch = calloc((size_t)n, 1);
        if (!t->batch) {
            pare_onnx_tensor_free(t);
            return pare_fail(PARE_ENOMEM, "out of memory");
        }
        t->batch[0] = 1;
    }
    for (int64_t e = 0; e < n; e++)
        t->i[e] = d[start + e] < 0 ? 1 : d[start + e];
    return onnx_def_const(m, nd, 0, t);
}

static pare_status fold_shape(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0);
    if (!x)
        return onnx_bad(m, nd, "it has no input");
    return shape_of(m, nd, x->rank, x->dims, 0);
}

static pare_status act_shape(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    int64_t d[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, d);
    return shape_of(m, nd, x->rank, d, 1);
}

static pare_status fold_gather(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *data = cin(m, nd, 0), *idx = cin(m, nd, 1), *t = NULL;
    int64_t axis;
    if (!data || !idx)
        return onnx_bad(m, nd, "it needs data and indices");
    pare_status s = onnx_attr_int(m, nd, "axis", 0, &axis);
    if (s != PARE_OK)
        return s;
    if (axis < INT_MIN || axis > INT_MAX)
        return onnx_bad(m, nd, "its axis is out of range");
    return folded(m, nd, onnx_fold_gather(data, idx, (int)axis, &t), &t);
}

/* The axes of Unsqueeze or Squeeze: an attribute before opset 13, an input after. */
static pare_status axes_of(onnx_imp *m, node *nd, int64_t *axes, int *n)
{
    if (m->opset < 13)
        return onnx_attr_ints(m, nd, "axes", PARE_ONNX_MAX_RANK, axes, n);
    return ints_in(m, nd, 1, "axes", PARE_ONNX_MAX_RANK, axes, n);
}

/* New dims after Unsqueeze; 0 (with the message set) on bad axes. */
static pare_status unsqueeze_dims(onnx_imp *m, node *nd, int rank, const int64_t *d, int64_t *out,
                                  int *rout, int *put_first)
{
    int64_t axes[PARE_ONNX_MAX_RANK];
    int n;
    pare_status s = axes_of(m, nd, axes, &n);
    if (s != PARE_OK)
        return s;
    if (n < 0)
        return onnx_bad(m, nd, "it has no axes");
    int r = rank + n;
    if (r > PARE_ONNX_MAX_RANK)
        return onnx_unsup(m, nd, "its result would have %d dimensions", r);
    int mark[PARE_ONNX_MAX_RANK] = {0};
    for (int k = 0; k < n; k++) {
        int ax;
        if (!norm_axis(axes[k], r, &ax) || mark[ax])
            return onnx_bad(m, nd, "its axes are out of range or repeated");
        mark[ax] = 1;
    }
    *put_first = mark[0];
    for (int k = 0, j = 0; k < r; k++)
        out[k] = mark[k] ? 1 : d[j++];
    *rout = r;
    return PARE_OK;
}

static pare_status fold_unsqueeze(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t = NULL;
    int64_t d[PARE_ONNX_MAX_RANK];
    int r, first;
    pare_status s = unsqueeze_dims(m, nd, x->rank, x->dims, d, &r, &first);
    if (s != PARE_OK)
        return s;
    return folded(m, nd, onnx_fold_reshape(x, r, d, &t), &t);
}

static pare_status act_unsqueeze(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    int64_t in[PARE_ONNX_MAX_RANK], d[PARE_ONNX_MAX_RANK];
    int r, first;
    onnx_act_dims(m, x, in);
    if ((s = unsqueeze_dims(m, nd, x->rank, in, d, &r, &first)) != PARE_OK)
        return s;
    if (first)
        return onnx_unsup(m, nd, "it puts an axis before the batch axis");
    return reshape_act(m, nd, x, x->id, r, d);
}

/* Squeeze: the dims without the listed axes (all 1s when none are listed);
 * batch: the batch axis of an activation, which must stay. */
static pare_status squeeze_dims(onnx_imp *m, node *nd, int rank, const int64_t *d, int act,
                                int64_t *out, int *rout)
{
    int64_t axes[PARE_ONNX_MAX_RANK];
    int n, drop[PARE_ONNX_MAX_RANK] = {0};
    pare_status s = axes_of(m, nd, axes, &n);
    if (s != PARE_OK)
        return s;
    if (n < 0) {
        for (int k = 0; k < rank; k++)
            drop[k] = d[k] == 1;
    } else {
        for (int k = 0; k < n; k++) {
            int ax;
            if (!norm_axis(axes[k], rank, &ax))
                return onnx_bad(m, nd, "its axes are out of range");
            if (d[ax] != 1 && !(act && ax == 0))
                return onnx_bad(m, nd, "it squeezes axis %d, which has %lld elements", ax,
                                (long long)d[ax]);
            drop[ax] = 1;
        }
    }
    if (act && drop[0])
        return onnx_unsup(m, nd, "it removes the batch axis");
    int r = 0;
    for (int k = 0; k < rank; k++)
        if (!drop[k])
            out[r++] = d[k];
    *rout = r;
    return PARE_OK;
}

static pare_status fold_squeeze(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t = NULL;
    int64_t d[PARE_ONNX_MAX_RANK];
    int r;
    pare_status s = squeeze_dims(m, nd, x->rank, x->dims, 0, d, &r);
    if (s != PARE_OK)
        return s;
    return folded(m, nd, onnx_fold_reshape(x, r, d, &t), &t);
}

static pare_status act_squeeze(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    int64_t in[PARE_ONNX_MAX_RANK], d[PARE_ONNX_MAX_RANK];
    int r;
    onnx_act_dims(m, x, in);
    /* A fixed batch of 1 is still the batch axis. */
    if (in[0] == 1)
        in[0] = -1;
    if ((s = squeeze_dims(m, nd, x->rank, in, 1, d, &r)) != PARE_OK)
        return s;
    return reshape_act(m, nd, x, x->id, r, d);
}

static pare_status fold_concat(onnx_imp *m, node *nd)
{
    int64_t axis;
    pare_status s = onnx_attr_int(m, nd, "axis", 0, &axis);
    if (s != PARE_OK)
        return s;
    if (nd->n_input == 0 || nd->n_input > 4096)
        return onnx_bad(m, nd, "it has %zu inputs", nd->n_input);
    pare_onnx_tensor *xs[4096], *t = NULL;
    for (size_t k = 0; k < nd->n_input; k++)
        if (!(xs[k] = cin(m, nd, k)))
            return onnx_bad(m, nd, "its input %zu is missing", k);
    if (axis < INT_MIN || axis > INT_MAX)
        return onnx_bad(m, nd, "its axis is out of range");
    return folded(m, nd, onnx_fold_concat(xs, (int)nd->n_input, (int)axis, &t), &t);
}

static pare_status act_concat(onnx_imp *m, node *nd)
{
    int64_t axis;
    pare_status s = onnx_attr_int(m, nd, "axis", 1, &axis);
    if (s != PARE_OK)
        return s;
    if (nd->n_input == 0 || nd->n_input > 4096)
        return onnx_bad(m, nd, "it has %zu inputs", nd->n_input);
    int ids[4096], rank = 0;
    int64_t batch = -1;
    for (size_t k = 0; k < nd->n_input; k++) {
        onnx_val *x = onnx_in(m, nd, k);
        if (!x)
            return onnx_bad(m, nd, "its input %zu is missing", k);
        if (x->kind == V_CONST)
            return onnx_unsup(m, nd, "it joins constants with activations");
        if ((s = onnx_need_act(m, nd, k, &x)) != PARE_OK)
            return s;
        if (k > 0 && x->rank != rank)
            return onnx_bad(m, nd, "its inputs have %d and %d dimensions", rank, x->rank);
        rank = x->rank;
        batch = x->batch;
        ids[k] = x->id;
    }
    int ax;
    if (!norm_axis(axis, rank, &ax))
        return onnx_bad(m, nd, "its axis %lld does not fit %d dimensions", (long long)axis, rank);
    if (ax != 1)
        return onnx_unsup(m, nd, "it joins along axis %d; pare concatenates channels (axis 1)", ax);
    if (nd->n_input == 1)
        return onnx_def_copy(m, nd, 0, onnx_in(m, nd, 0));
    pare_attrs a = onnx_attrs0();
    int id = onnx_ir_add(m, nd, PARE_OP_CONCAT, ids, (int)nd->n_input, &a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, rank, batch);
}

static pare_status fold_cast(onnx_imp *m, node *nd)
{
    int64_t to;
    pare_onnx_tensor *t = NULL;
    pare_status s = onnx_attr_int(m, nd, "to", 0, &to);
    if (s != PARE_OK)
        return s;
    return folded(m, nd, onnx_fold_cast(cin(m, nd, 0), (int)(to > 64 || to < 0 ? 0 : to), &t), &t);
}

static pare_status act_cast(onnx_imp *m, node *nd)
{
    int64_t to;
    pare_status s = onnx_attr_int(m, nd, "to", 0, &to);
    if (s != PARE_OK)
        return s;
    if (to != PARE_ONNX_FLOAT)
        return onnx_unsup(m, nd, "it casts an activation to %s; pare computes in float32",
                          onnx_dtype_name((int)(to > 64 || to < 0 ? 0 : to)));
    onnx_val *x = onnx_in(m, nd, 0);
    if (x && x->kind == V_ACT && x->elem) {
        /* Integer model input is held as float32 already. */
        if (s == PARE_OK && nd->output[0][0])
            onnx_value(m, nd->output[0])->elem = 0;
        return s;
    }
    if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK)
        return s;
    return onnx_def_copy(m, nd, 0, x);
}

static pare_status fold_slice(onnx_imp *m, node *nd)
{
    int64_t st[PARE_ONNX_MAX_RANK], en[PARE_ONNX_MAX_RANK], ax[PARE_ONNX_MAX_RANK],
        sp[PARE_ONNX_MAX_RANK];
    int ns, ne, na, nsp = -1;
    pare_status s;
    if (m->opset < 10) {
        if ((s = onnx_attr_ints(m, nd, "starts", PARE_ONNX_MAX_RANK, st, &ns)) != PARE_OK ||
            (s = onnx_attr_ints(m, nd, "ends", PARE_ONNX_MAX_RANK, en, &ne)) != PARE_OK ||
            (s = onnx_attr_ints(m, nd, "axes", PARE_ONNX_MAX_RANK, ax, &na)) != PARE_OK)
            return s;
    } else if ((s = ints_in(m, nd, 1, "starts", PARE_ONNX_MAX_RANK, st, &ns)) != PARE_OK ||
               (s = ints_in(m, nd, 2, "ends", PARE_ONNX_MAX_RANK, en, &ne)) != PARE_OK ||
               (s = ints_in(m, nd, 3, "axes", PARE_ONNX_MAX_RANK, ax, &na)) != PARE_OK ||
               (s = ints_in(m, nd, 4, "steps", PARE_ONNX_MAX_RANK, sp, &nsp)) != PARE_OK) {
        return s;
    }
    if (ns < 0 || ns != ne || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        return onnx_bad(m, nd, "its starts, ends, axes and steps differ in length");
    pare_onnx_tensor *t = NULL;
    return folded(m, nd,
                  onnx_fold_slice(cin(m, nd, 0), st, en, na >= 0 ? ax : NULL,
                                  nsp >= 0 ? sp : NULL, ns, &t),
                  &t);
}

/* ONNX dims of a value (an activation's batch as -1 when symbolic). */
static int dims_of(onnx_imp *m, const onnx_val *x, int64_t *d)
{
    if (x->kind == V_CONST) {
        memcpy(d, x->c->dims, sizeof(int64_t) * (size_t)x->c->rank);
        return x->c->rank;
    }
    onnx_act_dims(m, x, d);
    return x->rank;
}

/* Before opset 7, Add, Sub, Mul and Div broadcast only when asked (broadcast 1),
 * B to A, aligned at the end or at `axis`. *b gets B as numpy broadcasting reads
 * it (a new reference), or NULL when B is as it is. */
static pare_status legacy_operand(onnx_imp *m, node *nd, pare_onnx_tensor **b)
{
    int64_t bc, axis;
    pare_status s;
    *b = NULL;
    if (m->opset >= 7)
        return PARE_OK;
    onnx_val *x = onnx_in(m, nd, 0), *y = onnx_in(m, nd, 1);
    if (!x || !y)
        return onnx_bad(m, nd, "it needs two inputs");
    if ((s = onnx_attr_int(m, nd, "broadcast", 0, &bc)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "axis", -1, &axis)) != PARE_OK)
        return s;
    if (x->kind == V_SHUF || y->kind == V_SHUF)
        return PARE_OK; /* refused later, with the reason */
    int64_t da[PARE_ONNX_MAX_RANK], db[PARE_ONNX_MAX_RANK];
    int ra = dims_of(m, x, da), rb = dims_of(m, y, db);
    if (!bc) {
        int same = ra == rb;
        for (int k = 0; same && k < ra; k++)
            same = da[k] == db[k] || (da[k] < 0 && db[k] < 0);
        return same ? PARE_OK : onnx_bad(m, nd, "its operands differ in shape and it does not "
                                                "broadcast");
    }
    if (!onnx_attr(nd, "axis"))
        return PARE_OK;
    if (y->kind != V_CONST)
        return onnx_unsup(m, nd, "it broadcasts an activation from an axis (opset 6)");
    if (axis < 0 || axis > ra || rb > ra - axis)
        return onnx_bad(m, nd, "its broadcast axis %lld does not fit its operands",
                        (long long)axis);
    int r = (int)(ra - axis);
    for (int k = rb; k < r; k++)
        db[k] = 1;
    s = onnx_fold_reshape(y->c, r, db, b);
    return s == PARE_ENOMEM ? s : s == PARE_OK ? PARE_OK : onnx_bad(m, nd, "%s", pare_last_error());
}

static pare_status fold_binary(onnx_imp *m, node *nd, int op)
{
    pare_onnx_tensor *a = cin(m, nd, 0), *b = cin(m, nd, 1), *t = NULL, *lb;
    if (!a || !b)
        return onnx_bad(m, nd, "it needs two inputs");
    pare_status s = legacy_operand(m, nd, &lb);
    if (s != PARE_OK)
        return s;
    s = onnx_fold_binary(op, a, lb ? lb : b, &t);
    pare_onnx_tensor_free(lb);
    return folded(m, nd, s, &t);
}

static pare_status fold_add(onnx_imp *m, node *nd) { return fold_binary(m, nd, '+'); }
static pare_status fold_sub(onnx_imp *m, node *nd) { return fold_binary(m, nd, '-'); }
static pare_status fold_mul(onnx_imp *m, node *nd) { return fold_binary(m, nd, '*'); }
static pare_status fold_div(onnx_imp *m, node *nd) { return fold_binary(m, nd, '/'); }

static pare_status fold_neg(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *t = NULL;
    return folded(m, nd, onnx_fold_neg(cin(m, nd, 0), &t), &t);
}

/* -x as x times a constant -1. */
static pare_status act_neg(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    float minus = -1.0f;
    pare_onnx_tensor c = {.dtype = PARE_ONNX_FLOAT, .n = 1, .f = &minus};
    int cid = onnx_ir_const(m, nd, &c, (pare_shape){1, 1, 1}, NULL, &s);
    if (cid < 0)
        return s;
    int in[2] = {x->id, cid};
    pare_attrs a = onnx_attrs0();
    int id = onnx_ir_add(m, nd, PARE_OP_MUL, in, 2, &a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

static pare_status fold_constant_of_shape(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *shape = cin(m, nd, 0), *t = NULL;
    if (!shape || shape->dtype != PARE_ONNX_INT64 || shape->rank > 1 ||
        shape->n > PARE_ONNX_MAX_RANK)
        return onnx_bad(m, nd, "its input is not a list of at most %d integers",
                        PARE_ONNX_MAX_RANK);
    if (onnx_tensor_has_batch(shape))
        return onnx_unsup(m, nd, "its shape depends on the batch size");
    double v = 0;
    int dtype = PARE_ONNX_FLOAT;
    const Onnx__AttributeProto *a = onnx_attr(nd, "value");
    if (a) {
        pare_onnx_tensor *val = NULL;
        if (!a->t)
            return onnx_bad(m, nd, "its attribute 'value' holds no tensor");
        pare_status s = onnx_tensor_from_proto(a->t, NULL, "its value", &val);
        if (s == PARE_EUNSUPPORTED)
            return onnx_unsup(m, nd, "%s", pare_last_error());
        if (s != PARE_OK)
            return s == PARE_EFORMAT ? onnx_bad(m, nd, "%s", pare_last_error()) : s;
        if (val->n != 1) {
            pare_onnx_tensor_free(val);
            return onnx_bad(m, nd, "its value holds %zu elements, not one", val->n);
        }
        dtype = val->dtype;
        v = dtype == PARE_ONNX_FLOAT ? val->f[0] : (double)val->i[0];
        pare_onnx_tensor_free(val);
    }
    for (size_t k = 0; k < shape->n; k++)
        if (shape->i[k] < 0)
            return onnx_bad(m, nd, "its shape has a negative dimension");
    return folded(m, nd, onnx_fold_fill(dtype, (int)shape->n, shape->i, v, &t), &t);
}

static pare_status fold_range(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *a = cin(m, nd, 0), *b = cin(m, nd, 1), *c = cin(m, nd, 2), *t = NULL;
    if (!a || !b || !c)
        return onnx_bad(m, nd, "it needs start, limit and delta");
    return folded(m, nd, onnx_fold_range(a, b, c, &t), &t);
}

/* The new dims of Reshape. act: x is an activation, d its dims with the batch
 * (or -1) first: the first target dimension must keep the batch. */
static pare_status reshape_target(onnx_imp *m, node *nd, int rank, const int64_t *d, size_t total,
                                  int act, int64_t *out, int *rout)
{
    pare_onnx_tensor *t;
    int64_t allowzero;
    pare_status s = onnx_need_const(m, nd, 1, PARE_ONNX_INT64, "shape", &t);
    if (s == PARE_OK && !t)
        s = onnx_bad(m, nd, "it has no shape input");
    if (s == PARE_OK)
        s = onnx_attr_int(m, nd, "allowzero", 0, &allowzero);
    if (s != PARE_OK)
        return s;
    if (t->rank > 1)
        return onnx_bad(m, nd, "its shape is not a list");
    if (t->n > PARE_ONNX_MAX_RANK)
        return onnx_unsup(m, nd, "its result has %zu dimensions", t->n);
    int n = (int)t->n, infer = -1;
    if (act && n == 0)
        return onnx_unsup(m, nd, "it removes the batch axis");
    for (int k = 0; k < n; k++) {
        int64_t v = t->i[k];
        int mark = t->batch && t->batch[k];
        if (act && k == 0) {
            /* The batch: marked, copied (0), inferred (-1) or the model's fixed size. */
            if (mark || (v == 0 && !allowzero) || (v > 0 && v == d[0])) {
                out[0] = d[0];
                continue;
            }
            if (v != -1)
                return onnx_unsup(m, nd, "it changes the batch axis (to %lld)", (long long)v);
        } else if (mark) {
            return onnx_unsup(m, nd, "it uses the batch size as dimension %d of its result; pare "
                                     "keeps the batch first",
                              k);
        }
        if (v == 0 && !allowzero) {
            if (k >= rank)
                return onnx_bad(m, nd, "it copies dimension %d, which its input lacks", k);
            out[k] = d[k];
        } else if (v == -1) {
            if (infer >= 0)
                return onnx_bad(m, nd, "its shape has two -1 entries");
            infer = k;
            out[k] = 1;
        } else if (v < 0) {
            return onnx_bad(m, nd, "its shape has a negative entry (%lld)", (long long)v);
        } else {
            out[k] = v;
        }
    }
    /* What the listed dims hold: per sample for an activation. */
    size_t held = 1;
    for (int k = act ? 1 : 0; k < n; k++) {
        if (k == infer)
            continue;
        if (out[k] == 0 || (uint64_t)out[k] > total) {
            held = out[k] == 0 ? 0 : total + 1;
            break;
        }
        held *= (size_t)out[k];
        if (held > total)
            break;
    }
    if (infer > (act ? 0 : -1)) {
        if (held == 0 || total % held)
            return onnx_bad(m, nd, "it cannot reshape %zu values into its shape", total);
        out[infer] = (int64_t)(total / held);
    } else if (held != total) {
        if (act && infer == 0)
            return onnx_unsup(m, nd, "it moves values between samples");
        return onnx_bad(m, nd, "it reshapes %zu values%s into a shape that holds a different count",
                        total, act ? " per sample" : "");
    }
    if (act)
        out[0] = d[0];
    *rout = n;
    return PARE_OK;
}

static pare_status fold_reshape(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t = NULL;
    int64_t d[PARE_ONNX_MAX_RANK];
    int r;
    pare_status s = reshape_target(m, nd, x->rank, x->dims, x->n, 0, d, &r);
    if (s != PARE_OK)
        return s;
    return folded(m, nd, onnx_fold_reshape(x, r, d, &t), &t);
}

static pare_status channel_shuffle(onnx_imp *m, node *nd, int id, int groups, int *out)
{
    pare_attrs a = onnx_attrs0();
    pare_status s;
    a.groups = groups;
    *out = onnx_ir_add(m, nd, PARE_OP_CHANNEL_SHUFFLE, &id, 1, &a, NULL, NULL, &s);
    return *out < 0 ? s : PARE_OK;
}

static pare_status act_reshape(onnx_imp *m, node *nd)
{
    onnx_val *x = onnx_in(m, nd, 0);
    if (!x)
        return onnx_bad(m, nd, "it has no data input");
    int64_t in[PARE_ONNX_MAX_RANK], d[PARE_ONNX_MAX_RANK];
    int r, rin = x->rank, id = x->id;
    pare_status s;
    pare_shape sh = x->kind == V_SHUF || x->kind == V_ACT ? pare_graph_shape(m->g, x->id)
                                                          : (pare_shape){0, 0, 0};
    if (x->kind == V_SHUF) {
        /* (N, g, C/g, H, W), or (N, C/g, g, H, W) once transposed. */
        int g = x->shuf_g, k = sh.c / x->shuf_g;
        int64_t v[5] = {x->batch, x->shuf_t ? k : g, x->shuf_t ? g : k, sh.h, sh.w};
        memcpy(in, v, sizeof v);
    } else {
        if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK)
            return s;
        onnx_act_dims(m, x, in);
    }
    if ((s = reshape_target(m, nd, rin, in, pare_shape_size(sh), 1, d, &r)) != PARE_OK)
        return s;
    if (x->kind == V_SHUF) {
        if (x->shuf_t && (s = channel_shuffle(m, nd, x->id, x->shuf_g, &id)) != PARE_OK)
            return s;
        return reshape_act(m, nd, x, id, r, d);
    }
    /* The first step of a channel shuffle: split the channels into groups. */
    if (r == 5 && x->rank == 4 && d[1] * d[2] == sh.c && d[3] == sh.h && d[4] == sh.w &&
        d[1] > 0 && d[1] <= INT_MAX)
        return onnx_def_shuf(m, nd, 0, x->id, (int)d[1], 0, x->batch);
    return reshape_act(m, nd, x, x->id, r, d);
}

static pare_status fold_flatten(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t = NULL;
    int64_t axis;
    pare_status s = onnx_attr_int(m, nd, "axis", 1, &axis);
    if (s != PARE_OK)
        return s;
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return onnx_bad(m, nd, "its axis does not fit %d dimensions", x->rank);
    int64_t d[2] = {1, 1};
    for (int k = 0; k < x->rank; k++)
        d[k < axis ? 0 : 1] *= x->dims[k];
    return folded(m, nd, onnx_fold_reshape(x, 2, d, &t), &t);
}

static pare_status act_flatten(onnx_imp *m, node *nd)
{
    onnx_val *x;
    int64_t axis;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s == PARE_OK)
        s = onnx_attr_int(m, nd, "axis", 1, &axis);
    if (s != PARE_OK)
        return s;
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return onnx_bad(m, nd, "its axis does not fit %d dimensions", x->rank);
    int64_t in[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, in);
    if (axis == 0)
        return onnx_unsup(m, nd, "it flattens the batch axis into the features (axis 0)");
    for (int k = 1; k < axis; k++)
        if (in[k] != 1)
            return onnx_unsup(m, nd, "it merges the batch axis with axis %d", k);
    int64_t d[2] = {x->batch, (int64_t)pare_shape_size(pare_graph_shape(m->g, x->id))};
    return reshape_act(m, nd, x, x->id, 2, d);
}

static pare_status perm_of(onnx_imp *m, node *nd, int rank, int *perm)
{
    int64_t p[PARE_ONNX_MAX_RANK];
    int n;
    pare_status s = onnx_attr_ints(m, nd, "perm", PARE_ONNX_MAX_RANK, p, &n);
    if (s != PARE_OK)
        return s;
    if (n < 0) {
        for (int k = 0; k < rank; k++)
            perm[k] = rank - 1 - k;
        return PARE_OK;
    }
    if (n != rank)
        return onnx_bad(m, nd, "its perm has %d entries for %d dimensions", n, rank);
    int used[PARE_ONNX_MAX_RANK] = {0};
    for (int k = 0; k < rank; k++) {
        if (p[k] < 0 || p[k] >= rank || used[p[k]])
            return onnx_bad(m, nd, "its perm is not a permutation of the axes");
        used[p[k]] = 1;
        perm[k] = (int)p[k];
    }
    return PARE_OK;
}

static pare_status fold_transpose(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t = NULL;
    int perm[PARE_ONNX_MAX_RANK];
    pare_status s = perm_of(m, nd, x->rank, perm);
    if (s != PARE_OK)
        return s;
    return folded(m, nd, onnx_fold_transpose(x, perm, &t), &t);
}

static pare_status act_transpose(onnx_imp *m, node *nd)
{
    onnx_val *x = onnx_in(m, nd, 0);
    int perm[PARE_ONNX_MAX_RANK];
    pare_status s;
    if (!x)
        return onnx_bad(m, nd, "it has no input");
    if (x->kind == V_SHUF) {
        if ((s = perm_of(m, nd, 5, perm)) != PARE_OK)
            return s;
        static const int swap[5] = {0, 2, 1, 3, 4};
        if (x->shuf_t || memcmp(perm, swap, sizeof swap))
            return onnx_unsup(m, nd, "it transposes a 5-dimensional tensor other than as a "
                                     "channel shuffle does (perm 0, 2, 1, 3, 4)");
        return onnx_def_shuf(m, nd, 0, x->id, x->shuf_g, 1, x->batch);
    }
    if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK ||
        (s = perm_of(m, nd, x->rank, perm)) != PARE_OK)
        return s;
    if (perm[0] != 0)
        return onnx_unsup(m, nd, "it moves the batch axis");
    pare_attrs a = onnx_attrs0();
    int identity = 1;
    for (int k = 0; k < 3; k++)
        a.perm[k] = k;
    for (int k = 1; k < x->rank; k++) {
        a.perm[onnx_ir_axis(x->rank, k)] = onnx_ir_axis(x->rank, perm[k]);
        identity &= perm[k] == k;
    }
    if (identity)
        return onnx_def_copy(m, nd, 0, x);
    int id = onnx_ir_add(m, nd, PARE_OP_TRANSPOSE, &x->id, 1, &a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

/* ---- arithmetic on activations ------------------------------------------------------- */

static pare_status binary_vals(onnx_imp *m, node *nd, int op, onnx_val *a, onnx_val *b);

static pare_status binary_act(onnx_imp *m, node *nd, int op)
{
    onnx_val *a = onnx_in(m, nd, 0), *b = onnx_in(m, nd, 1);
    pare_onnx_tensor *lb;
    if (!a || !b)
        return onnx_bad(m, nd, "it needs two inputs");
    pare_status s = legacy_operand(m, nd, &lb);
    if (s != PARE_OK || !lb)
        return s != PARE_OK ? s : binary_vals(m, nd, op, a, b);
    onnx_val bv = *b;
    bv.c = lb;
    s = binary_vals(m, nd, op, a, &bv);
    pare_onnx_tensor_free(lb);
    return s;
}

static pare_status binary_vals(onnx_imp *m, node *nd, int op, onnx_val *a, onnx_val *b)
{
    static const char *const verbs[] = {"adds", "subtracts", "multiplies", "divides"};
    const char *verb = verbs[op == '+' ? 0 : op == '-' ? 1 : op == '*' ? 2 : 3];
    onnx_val *x;
    pare_status s;
    pare_op_type irop = op == '+' || op == '-' ? PARE_OP_ADD : PARE_OP_MUL;
    if (a->kind != V_CONST && b->kind != V_CONST) {
        if ((s = onnx_need_act(m, nd, 0, &a)) != PARE_OK ||
            (s = onnx_need_act(m, nd, 1, &b)) != PARE_OK)
            return s;
        if (op == '-' || op == '/')
            return onnx_unsup(m, nd, "it %s two activations; pare adds and multiplies them", verb);
        if (a->rank != b->rank)
            return onnx_unsup(m, nd, "its operands have %d and %d dimensions", a->rank, b->rank);
        pare_shape sa = pare_graph_shape(m->g, a->id), sb = pare_graph_shape(m->g, b->id);
        if (!pare_shape_broadcasts(sb, sa)) {
            if (!pare_shape_broadcasts(sa, sb))
                return onnx_unsup(m, nd, "its operands broadcast to each other both ways");
            onnx_val *t = a;
            a = b;
            b = t;
        }
        int in[2] = {a->id, b->id};
        pare_attrs at = onnx_attrs0();
        int id = onnx_ir_add(m, nd, irop, in, 2, &at, NULL, NULL, &s);
        if (id < 0)
            return s;
        return onnx_def_act(m, nd, 0, id, a->rank, a->batch);
    }
    int act_first = a->kind != V_CONST;
    onnx_val *cv = act_first ? b : a;
    if ((s = onnx_need_act(m, nd, act_first ? 0 : 1, &x)) != PARE_OK)
        return s;
    if (!act_first && (op == '-' || op == '/'))
        return onnx_unsup(m, nd, "it %s an activation from or into a constant", verb);
    const pare_onnx_tensor *c = cv->c;
    if (c->dtype != PARE_ONNX_FLOAT)
        return onnx_unsup(m, nd, "its constant operand is not float32");
    int r = x->rank;
    if (c->rank > r)
        return onnx_unsup(m, nd, "its constant has more dimensions (%d) than the activation (%d)",
                          c->rank, r);
    int64_t xd[PARE_ONNX_MAX_RANK], pd[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, xd);
    for (int k = 0; k < r; k++)
        pd[k] = k < r - c->rank ? 1 : c->dims[k - (r - c->rank)];
    if (pd[0] != 1)
        return onnx_unsup(m, nd, "its constant varies along the batch axis");
    for (int k = 1; k < r; k++) {
        if (pd[k] == 1 || pd[k] == xd[k])
            continue;
        if (xd[k] == 1)
            return onnx_unsup(m, nd, "its constant is larger than the activation along axis %d",
                              k);
        return onnx_bad(m, nd, "its operands do not broadcast along axis %d", k);
    }
    pare_shape cs;
    if (!onnx_ir_shape(r, pd, &cs))
        return onnx_bad(m, nd, "its constant has an empty dimension");
    pare_onnx_tensor tmp = *c;
    float *vals = NULL;
    if (op == '-' || op == '/') {
        vals = malloc((c->n ? c->n : 1) * sizeof(float));
        if (!vals)
            return pare_fail(PARE_ENOMEM, "out of memory");
        for (size_t e = 0; e < c->n; e++)
            vals[e] = op == '-' ? -c->f[e] : 1.0f / c->f[e];
        tmp.f = vals;
    }
    int cid = onnx_ir_const(m, nd, &tmp, cs, cv->name, &s);
    free(vals);
    if (cid < 0)
        return s;
    int in[2] = {x->id, cid};
    pare_attrs at = onnx_attrs0();
    int id = onnx_ir_add(m, nd, irop, in, 2, &at, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, r, x->batch);
}

static pare_status act_add(onnx_imp *m, node *nd) { return binary_act(m, nd, '+'); }
static pare_status act_sub(onnx_imp *m, node *nd) { return binary_act(m, nd, '-'); }
static pare_status act_mul(onnx_imp *m, node *nd) { return binary_act(m, nd, '*'); }
static pare_status act_div(onnx_imp *m, node *nd) { return binary_act(m, nd, '/'); }

/* ---- layers ---------------------------------------------------------------------------- */

/* Strides, dilations, pads and auto_pad of a conv or pool with `sp` spatial axes
 * (1 or 2) and kernel k, into a (a 1-d op becomes 2-d with a height of 1). */
static pare_status window(onnx_imp *m, node *nd, const onnx_val *x, const int64_t *k, int dil_ok,
                          pare_attrs *a)
{
    int sp = x->rank - 2;
    int64_t d[PARE_ONNX_MAX_RANK], st[2] = {1, 1}, dl[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
    int n;
    char autopad[32];
    pare_status s;
    onnx_act_dims(m, x, d);
    if ((s = onnx_attr_ints(m, nd, "strides", 2, st, &n)) != PARE_OK)
        return s;
    if (n >= 0 && n != sp)
        return onnx_bad(m, nd, "it has %d strides for %d spatial axes", n, sp);
    if ((s = onnx_attr_ints(m, nd, "dilations", 2, dl, &n)) != PARE_OK)
        return s;
    if (n >= 0 && n != sp)
        return onnx_bad(m, nd, "it has %d dilations for %d spatial axes", n, sp);
    if ((s = onnx_attr_ints(m, nd, "pads", 4, pads, &n)) != PARE_OK)
        return s;
    if (n >= 0 && n != 2 * sp)
        return onnx_bad(m, nd, "it has %d pads for %d spatial axes", n, sp);
    if ((s = onnx_attr_string(m, nd, "auto_pad", "NOTSET", autopad, sizeof autopad)) != PARE_OK)
        return s;
    int same_upper = !strcmp(autopad, "SAME_UPPER"), same_lower = !strcmp(autopad, "SAME_LOWER");
    if (!same_upper && !same_lower && strcmp(autopad, "VALID") && strcmp(autopad, "NOTSET") &&
        autopad[0])
        return onnx_bad(m, nd, "its auto_pad '%.20s' is none of NOTSET, SAME_UPPER, SAME_LOWER, "
                               "VALID",
                        autopad);
    for (int i = 0; i < sp; i++) {
        if (k[i] <= 0 || k[i] > 1 << 16 || st[i] <= 0 || st[i] > 1 << 16 || dl[i] <= 0 ||
            dl[i] > 1 << 16)
            return onnx_bad(m, nd, "its kernel, strides or dilations are out of range");
        if (!strcmp(autopad, "VALID")) {
            pads[i] = pads[i + sp] = 0;
        } else if (same_upper || same_lower) {
            int64_t in = d[2 + i], out = (in + st[i] - 1) / st[i];
            int64_t total = (out - 1) * st[i] + (k[i] - 1) * dl[i] + 1 - in;
            if (total < 0)
                total = 0;
            pads[i] = same_upper ? total / 2 : total - total / 2;
            pads[i + sp] = total - pads[i];
        }
        if (pads[i] < 0 || pads[i + sp] < 0 || pads[i] > 1 << 16 || pads[i + sp] > 1 << 16)
            return onnx_unsup(m, nd, "its pads are negative or too large");
        if (!dil_ok && dl[i] != 1)
            return onnx_unsup(m, nd, "it is dilated; pare dilates convolutions and max pooling");
    }
    if (sp == 2) {
        for (int i = 0; i < 2; i++) {
            a->kernel[i] = (int)k[i];
            a->stride[i] = (int)st[i];
            a->dilation[i] = (int)dl[i];
            a->pad[i] = (int)pads[i];
            a->pad[i + 2] = (int)pads[i + 2];
        }
    } else {
        a->kernel[0] = a->stride[0] = a->dilation[0] = 1;
        a->kernel[1] = (int)k[0];
        a->stride[1] = (int)st[0];
        a->dilation[1] = (int)dl[0];
        a->pad[0] = a->pad[2] = 0;
        a->pad[1] = (int)pads[0];
        a->pad[3] = (int)pads[1];
    }
    return PARE_OK;
}

/* Conv and pools take 1-d and 2-d data. */
static pare_status spatial_act(onnx_imp *m, node *nd, onnx_val **x)
{
    pare_status s = onnx_need_act(m, nd, 0, x);
    if (s != PARE_OK)
        return s;
    if ((*x)->rank != 3 && (*x)->rank != 4)
        return onnx_unsup(m, nd, "its input has %d dimensions; pare takes 1-d and 2-d data (3 or "
                                 "4 dimensions with the batch)",
                          (*x)->rank);
    return PARE_OK;
}

static pare_status act_conv(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_onnx_tensor *w, *b;
    pare_status s;
    if ((s = spatial_act(m, nd, &x)) != PARE_OK)
        return s;
    if ((s = onnx_need_const(m, nd, 1, PARE_ONNX_FLOAT, "weight", &w)) != PARE_OK ||
        (s = onnx_need_const(m, nd, 2, PARE_ONNX_FLOAT, "bias", &b)) != PARE_OK)
        return s;
    if (!w)
        return onnx_bad(m, nd, "it has no weight");
    if (w->rank != x->rank)
        return onnx_bad(m, nd, "its weight has %d dimensions for a %d-dimensional input", w->rank,
                        x->rank);
    int64_t group, ks[2];
    int nk;
    if ((s = onnx_attr_int(m, nd, "group", 1, &group)) != PARE_OK ||
        (s = onnx_attr_ints(m, nd, "kernel_shape", 2, ks, &nk)) != PARE_OK)
        return s;
    pare_shape in = pare_graph_shape(m->g, x->id);
    int64_t O = w->dims[0], Cg = w->dims[1];
    if (group <= 0 || group > in.c || Cg * group != in.c)
        return onnx_bad(m, nd, "its weight reads %lld channels in each of %lld groups, but the "
                               "input has %d",
                        (long long)Cg, (long long)group, in.c);
    if (O <= 0 || O > 1 << 20 || O % group)
        return onnx_bad(m, nd, "its %lld filters do not split into %lld groups", (long long)O,
                        (long long)group);
    for (int i = 0; nk >= 0 && i < x->rank - 2; i++)
        if (nk != x->rank - 2 || ks[i] != w->dims[2 + i])
            return onnx_bad(m, nd, "its kernel_shape disagrees with its weight");
    if (b && (b->rank != 1 || b->n != (size_t)O))
        return onnx_bad(m, nd, "its bias has %zu values for %lld filters", b->n, (long long)O);
    pare_attrs a = onnx_attrs0();
    if ((s = window(m, nd, x, w->dims + 2, 1, &a)) != PARE_OK)
        return s;
    a.out_channels = (int)O;
    a.groups = (int)group;
    a.bias = b != NULL;
    const char *names[PARE_NODE_MAX_PARAMS] = {onnx_in(m, nd, 1)->name,
                                               b ? onnx_in(m, nd, 2)->name : NULL};
    int id = onnx_ir_add(m, nd, PARE_OP_CONV2D, &x->id, 1, &a, NULL, names, &s);
    if (id < 0)
        return s;
    if ((s = onnx_set_param(m, id, 0, w->f, w->n)) != PARE_OK ||
        (b && (s = onnx_set_param(m, id, 1, b->f, b->n)) != PARE_OK) ||
        (s = onnx_weight_sparsity(m, id, names[0])) != PARE_OK ||
        (s = onnx_param_quant(m, id, 0, onnx_in(m, nd, 1), 0, 1)) != PARE_OK ||
        (b && (s = onnx_param_quant(m, id, 1, onnx_in(m, nd, 2), 0, 1)) != PARE_OK))
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

/* A linear layer y = x W^T + b from a weight given as [K, M] (trans 0) or
 * [M, K] (trans 1), scaled by alpha, and a bias of 1 or M values scaled by beta. */
static pare_status linear(onnx_imp *m, node *nd, const onnx_val *x, const pare_onnx_tensor *wt,
                          int trans, float alpha, const pare_onnx_tensor *bias, float beta,
                          const onnx_val *wv, const onnx_val *bv)
{
    const char *wname = wv->name, *bname = bv ? bv->name : NULL;
    pare_status s;
    int64_t K = trans ? wt->dims[1] : wt->dims[0], M = trans ? wt->dims[0] : wt->dims[1];
    size_t in = pare_shape_size(pare_graph_shape(m->g, x->id));
    if ((uint64_t)K != in)
        return onnx_bad(m, nd, "its weight takes %lld features, but the input has %zu",
                        (long long)K, in);
    if (M <= 0 || M > 1 << 24)
        return onnx_bad(m, nd, "its weight gives %lld outputs", (long long)M);
    pare_attrs a = onnx_attrs0();
    a.out_channels = (int)M;
    a.bias = bias != NULL;
    const char *names[PARE_NODE_MAX_PARAMS] = {wname, bname};
    int id = onnx_ir_add(m, nd, PARE_OP_LINEAR, &x->id, 1, &a, NULL, names, &s);
    if (id < 0)
        return s;
    pare_param *wp = &m->g->params[m->g->nodes[id].param[0]];
    if (wp->t->n != (size_t)M * in)
        return pare_fail(PARE_EUNSUPPORTED, "%s: linear weight size mismatch (an importer bug)",
                         m->what);
    for (int64_t o = 0; o < M; o++)
        for (int64_t k = 0; k < K; k++)
            wp->t->data[o * K + k] = alpha * (trans ? wt->f[o * K + k] : wt->f[k * M + o]);
    if (bias) {
        pare_param *bp = &m->g->params[m->g->nodes[id].param[1]];
        for (int64_t o = 0; o < M; o++)
            bp->t->data[o] = beta * bias->f[bias->n == 1 ? 0 : o];
    }
    /* The output axis of the weight (and of a [1, M] bias) becomes pare's axis 0. */
    if ((s = onnx_weight_sparsity(m, id, wname)) != PARE_OK ||
        (s = onnx_param_quant(m, id, 0, wv, trans ? 0 : 1, alpha == 1.0f)) != PARE_OK ||
        (bias && (s = onnx_param_quant(m, id, 1, bv, bias->rank == 2 ? 1 : 0, beta == 1.0f)) !=
                     PARE_OK))
        return s;
    return onnx_def_act(m, nd, 0, id, 2, x->batch);
}

/* A bias operand (of Gemm, or of the Add after a MatMul): 1 or M values, never
 * varying along the batch axis. */
static int bias_fits(const pare_onnx_tensor *c, int64_t M)
{
    if (c->dtype != PARE_ONNX_FLOAT || c->rank > 2 || (c->rank == 2 && c->dims[0] != 1))
        return 0;
    return c->n == 1 || c->n == (size_t)M;
}

static pare_status act_gemm(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_onnx_tensor *w, *c;
    int64_t ta, tb;
    float alpha, beta;
    pare_status s;
    if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK ||
        (s = onnx_need_const(m, nd, 1, PARE_ONNX_FLOAT, "weight (B)", &w)) != PARE_OK ||
        (s = onnx_need_const(m, nd, 2, PARE_ONNX_FLOAT, "bias (C)", &c)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "transA", 0, &ta)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "transB", 0, &tb)) != PARE_OK ||
        (s = onnx_attr_float(m, nd, "alpha", 1.0f, &alpha)) != PARE_OK ||
        (s = onnx_attr_float(m, nd, "beta", 1.0f, &beta)) != PARE_OK)
        return s;
    if (!w)
        return onnx_bad(m, nd, "it has no B");
    if (x->rank != 2)
        return onnx_bad(m, nd, "its A has %d dimensions, not 2", x->rank);
    if (ta)
        return onnx_unsup(m, nd, "it transposes A, which holds the batch");
    if (w->rank != 2)
        return onnx_bad(m, nd, "its B has %d dimensions, not 2", w->rank);
    int64_t M = tb ? w->dims[0] : w->dims[1];
    if (c && !bias_fits(c, M))
        return onnx_unsup(m, nd, "its C is not one value or one per output (it may vary along "
                                 "the batch axis)");
    if (c && beta == 0.0f)
        c = NULL;
    return linear(m, nd, x, w, tb != 0, alpha, c, beta, onnx_in(m, nd, 1),
                  c ? onnx_in(m, nd, 2) : NULL);
}

/* The constant of an Add that only this MatMul's output feeds, when it can be
 * the bias: the Add then becomes the linear layer's output. */
static const onnx_val *matmul_bias(onnx_imp *m, node *nd, int64_t M, int *consumer)
{
    if (nd->n_output < 1 || !nd->output[0][0])
        return NULL;
    onnx_val *y = onnx_value(m, nd->output[0]);
    if (!y || y->uses != 1 || y->consumer < 0)
        return NULL;
    const Onnx__NodeProto *add = m->gp->node[y->consumer];
    if (strcmp(str(add->op_type), "Add") || (add->domain && *add->domain &&
                                             strcmp(add->domain, "ai.onnx")) ||
        add->n_input != 2 || add->n_output < 1)
        return NULL;
    const char *other = !strcmp(add->input[0], y->name) ? add->input[1] : add->input[0];
    onnx_val *b = other[0] && strcmp(other, y->name) ? onnx_value(m, other) : NULL;
    if (!b || b->kind != V_CONST || onnx_tensor_has_batch(b->c) || !bias_fits(b->c, M))
        return NULL;
    *consumer = y->consumer;
    return b;
}

static pare_status act_matmul(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_onnx_tensor *w;
    pare_status s;
    if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK)
        return s;
    onnx_val *wv = onnx_in(m, nd, 1);
    if (wv && wv->kind != V_CONST)
        return onnx_unsup(m, nd, "both its operands are activations; pare multiplies by a "
                                 "constant matrix");
    if ((s = onnx_need_const(m, nd, 1, PARE_ONNX_FLOAT, "right operand", &w)) != PARE_OK)
        return s;
    if (!w)
        return onnx_bad(m, nd, "it has no right operand");
    if (x->rank != 2)
        return onnx_unsup(m, nd, "its left operand has %d dimensions; pare multiplies 2-d (batch, "
                                 "features) by a matrix",
                          x->rank);
    if (w->rank != 2)
        return onnx_unsup(m, nd, "its right operand has %d dimensions, not 2", w->rank);
    int consumer = -1;
    const onnx_val *b = matmul_bias(m, nd, w->dims[1], &consumer);
    s = linear(m, nd, x, w, 0, 1.0f, b ? b->c : NULL, 1.0f, wv, b);
    if (s == PARE_OK && b)
        m->fused[consumer] = 1;
    return s;
}

static pare_status act_relu(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    return elementwise(m, nd, PARE_OP_RELU, &a);
}

static pare_status act_sigmoid(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    return elementwise(m, nd, PARE_OP_SIGMOID, &a);
}

static pare_status act_hardswish(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    return elementwise(m, nd, PARE_OP_HARDSWISH, &a);
}

static pare_status act_leakyrelu(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    pare_status s = onnx_attr_float(m, nd, "alpha", 0.01f, &a.alpha);
    return s != PARE_OK ? s : elementwise(m, nd, PARE_OP_LEAKYRELU, &a);
}

static pare_status act_hardsigmoid(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    pare_status s = onnx_attr_float(m, nd, "alpha", 0.2f, &a.alpha);
    if (s == PARE_OK)
        s = onnx_attr_float(m, nd, "beta", 0.5f, &a.beta);
    return s != PARE_OK ? s : elementwise(m, nd, PARE_OP_HARDSIGMOID, &a);
}

static pare_status clip_qact(onnx_imp *m, node *nd, onnx_val *x);
static int clip_codes(onnx_imp *m, node *nd, float lo, float hi, int *klo, int *khi);

static pare_status act_clip(onnx_imp *m, node *nd)
{
    pare_attrs a = onnx_attrs0();
    float lo, hi;
    pare_status s;
    onnx_val *x = onnx_in(m, nd, 0);
    if (x && x->kind == V_QACT)
        return clip_qact(m, nd, x);
    if (m->opset < 11) {
        if ((s = onnx_attr_float(m, nd, "min", -FLT_MAX, &lo)) != PARE_OK ||
            (s = onnx_attr_float(m, nd, "max", FLT_MAX, &hi)) != PARE_OK)
            return s;
    } else if ((s = scalar_in(m, nd, 1, "min", -FLT_MAX, &lo)) != PARE_OK ||
               (s = scalar_in(m, nd, 2, "max", FLT_MAX, &hi)) != PARE_OK) {
        return s;
    }
    int klo, khi;
    if (clip_codes(m, nd, lo, hi, &klo, &khi)) {
        if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK ||
            (s = onnx_def_copy(m, nd, 0, x)) != PARE_OK)
            return s;
        onnx_val *y = onnx_value(m, nd->output[0]);
        y->clip_lo = klo;
        y->clip_hi = khi;
        return PARE_OK;
    }
    if (lo == 0.0f && hi == 6.0f)
        return elementwise(m, nd, PARE_OP_RELU6, &a);
    a.alpha = lo;
    a.beta = hi;
    return elementwise(m, nd, PARE_OP_CLIP, &a);
}

static pare_status pool(onnx_imp *m, node *nd, int max)
{
    onnx_val *x;
    int64_t ks[2], ceil_mode = 0, order = 0, cip = 0;
    int nk;
    pare_status s;
    if ((s = spatial_act(m, nd, &x)) != PARE_OK ||
        (s = onnx_attr_ints(m, nd, "kernel_shape", 2, ks, &nk)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "ceil_mode", 0, &ceil_mode)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "storage_order", 0, &order)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "count_include_pad", 0, &cip)) != PARE_OK)
        return s;
    if (nk != x->rank - 2)
        return onnx_bad(m, nd, "its kernel_shape has %d entries for %d spatial axes", nk,
                        x->rank - 2);
    if (order)
        return onnx_unsup(m, nd, "its storage_order is column-major");
    pare_attrs a = onnx_attrs0();
    if ((s = window(m, nd, x, ks, max, &a)) != PARE_OK)
        return s;
    a.ceil_mode = ceil_mode != 0;
    a.count_include_pad = cip != 0;
    int id = onnx_ir_add(m, nd, max ? PARE_OP_MAXPOOL : PARE_OP_AVGPOOL, &x->id, 1, &a, NULL, NULL,
                         &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

static pare_status act_maxpool(onnx_imp *m, node *nd) { return pool(m, nd, 1); }
static pare_status act_avgpool(onnx_imp *m, node *nd) { return pool(m, nd, 0); }

static pare_status act_global_avgpool(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = spatial_act(m, nd, &x);
    if (s != PARE_OK)
        return s;
    pare_attrs a = onnx_attrs0();
    int id = onnx_ir_add(m, nd, PARE_OP_GLOBAL_AVGPOOL, &x->id, 1, &a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

/* A max pool whose window is the whole plane. */
static pare_status act_global_maxpool(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_status s = spatial_act(m, nd, &x);
    if (s != PARE_OK)
        return s;
    pare_shape in = pare_graph_shape(m->g, x->id);
    pare_attrs a = onnx_attrs0();
    a.kernel[0] = in.h;
    a.kernel[1] = in.w;
    int id = onnx_ir_add(m, nd, PARE_OP_MAXPOOL, &x->id, 1, &a, NULL, NULL, &s);
    if (id < 0)
        return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

static pare_status act_batchnorm(onnx_imp *m, node *nd)
{
    onnx_val *x;
    pare_onnx_tensor *p[4];
    static const char *const roles[4] = {"scale", "bias", "mean", "variance"};
    float eps, mom;
    int64_t training = 0;
    pare_status s;
    if ((s = onnx_need_act(m, nd, 0, &x)) != PARE_OK ||
        (s = onnx_attr_float(m, nd, "epsilon", 1e-5f, &eps)) != PARE_OK ||
        (s = onnx_attr_float(m, nd, "momentum", 0.9f, &mom)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "training_mode", 0, &training)) != PARE_OK)
        return s;
    if (x->rank < 2)
        return onnx_bad(m, nd, "its input has no channel axis");
    if (training)
        return onnx_unsup(m, nd, "it is in training mode; pare imports inference models");
    if (m->opset < 9) {
        int64_t spatial;
        if ((s = onnx_attr_int(m, nd, "spatial", 1, &spatial)) != PARE_OK)
            return s;
        if (!spatial)
            return onnx_unsup(m, nd, "it normalises every position on its own (spatial 0)");
    }
    for (size_t k = 1; k < nd->n_output; k++)
        if (nd->output[k][0])
            return onnx_unsup(m, nd, "it gives training outputs (running statistics)");
    int C = pare_graph_shape(m->g, x->id).c;
    const char *names[PARE_NODE_MAX_PARAMS];
    for (int k = 0; k < 4; k++) {
        if ((s = onnx_need_const(m, nd, (size_t)k + 1, PARE_ONNX_FLOAT, roles[k], &p[k])) !=
            PARE_OK)
            return s;
        if (!p[k])
            return onnx_bad(m, nd, "it has no %s", roles[k]);
        if (p[k]->rank != 1 || p[k]->n != (size_t)C)
            return onnx_bad(m, nd, "its %s holds %zu values for %d channels", roles[k], p[k]->n,
                            C);
        names[k] = onnx_in(m, nd, (size_t)k + 1)->name;
    }
    pare_attrs a = onnx_attrs0();
    /* ONNX: running = running m + batch (1 - m); pare (as PyTorch): running (1 - m) + batch m. */
    a.eps = eps;
    a.momentum = 1.0f - mom;
    int id = onnx_ir_add(m, nd, PARE_OP_BATCHNORM, &x->id, 1, &a, NULL, names, &s);
    if (id < 0)
        return s;
    for (int k = 0; k < 4; k++)
        if ((s = onnx_set_param(m, id, k, p[k]->f, p[k]->n)) != PARE_OK)
            return s;
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

static pare_status act_softmax(onnx_imp *m, node *nd)
{
    onnx_val *x;
    int64_t axis;
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s == PARE_OK)
        s = onnx_attr_int(m, nd, "axis", m->opset < 13 ? 1 : -1, &axis);
    if (s != PARE_OK)
        return s;
    int ax;
    if (!norm_axis(axis, x->rank, &ax))
        return onnx_bad(m, nd, "its axis %lld does not fit %d dimensions", (long long)axis,
                        x->rank);
    if (ax == 0)
        return onnx_unsup(m, nd, "it runs along the batch axis");
    pare_attrs a = onnx_attrs0();
    /* Before opset 13 the input is read as 2-d: the axis and all after it. */
    a.mode = m->opset < 13;
    a.axis = onnx_ir_axis(x->rank, ax);
    return elementwise(m, nd, PARE_OP_SOFTMAX, &a);
}

static pare_status act_dropout(onnx_imp *m, node *nd)
{
    float ratio = 0.5f;
    pare_status s;
    if (m->opset < 12) {
        s = onnx_attr_float(m, nd, "ratio", 0.5f, &ratio);
    } else {
        pare_onnx_tensor *t;
        s = scalar_in(m, nd, 1, "ratio", 0.5f, &ratio);
        if (s == PARE_OK)
            s = onnx_need_const(m, nd, 2, 0, "training_mode", &t);
        if (s == PARE_OK && t && (t->n != 1 || (t->dtype == PARE_ONNX_FLOAT ? t->f[0] : t->i[0])))
            return onnx_unsup(m, nd, "it is in training mode; pare imports inference models");
    }
    if (s != PARE_OK)
        return s;
    pare_attrs a = onnx_attrs0();
    a.p = ratio;
    return elementwise(m, nd, PARE_OP_DROPOUT, &a);
}

static pare_status act_pad(onnx_imp *m, node *nd)
{
    onnx_val *x;
    int64_t pads[2 * PARE_ONNX_MAX_RANK];
    int n;
    float value = 0;
    char mode[32];
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s == PARE_OK)
        s = onnx_attr_string(m, nd, "mode", "constant", mode, sizeof mode);
    if (s != PARE_OK)
        return s;
    if (m->opset < 11) {
        if ((s = onnx_attr_ints(m, nd, "pads", 2 * PARE_ONNX_MAX_RANK, pads, &n)) != PARE_OK ||
            (s = onnx_attr_float(m, nd, "value", 0.0f, &value)) != PARE_OK)
            return s;
    } else {
        if ((s = ints_in(m, nd, 1, "pads", 2 * PARE_ONNX_MAX_RANK, pads, &n)) != PARE_OK ||
            (s = scalar_in(m, nd, 2, "constant value", 0.0f, &value)) != PARE_OK)
            return s;
        if (onnx_in(m, nd, 3))
            return onnx_unsup(m, nd, "it names the axes it pads");
    }
    int r = x->rank;
    if (n != 2 * r)
        return onnx_bad(m, nd, "it has %d pads for %d dimensions", n, r);
    for (int k = 0; k < 2 * r; k++)
        if (pads[k] < 0)
            return onnx_unsup(m, nd, "it crops (negative pads)");
    if (pads[0] || pads[r])
        return onnx_unsup(m, nd, "it pads the batch axis");
    if (r >= 2 && (pads[1] || pads[r + 1]))
        return onnx_unsup(m, nd, "it pads the channel axis; pare pads height and width");
    pare_attrs a = onnx_attrs0();
    if (r == 4) {
        a.pad[0] = (int)(pads[2] > 1 << 16 ? 1 << 17 : pads[2]);
        a.pad[1] = (int)(pads[3] > 1 << 16 ? 1 << 17 : pads[3]);
        a.pad[2] = (int)(pads[6] > 1 << 16 ? 1 << 17 : pads[6]);
        a.pad[3] = (int)(pads[7] > 1 << 16 ? 1 << 17 : pads[7]);
    } else if (r == 3) {
        a.pad[1] = (int)(pads[2] > 1 << 16 ? 1 << 17 : pads[2]);
        a.pad[3] = (int)(pads[5] > 1 << 16 ? 1 << 17 : pads[5]);
    }
    if (!a.pad[0] && !a.pad[1] && !a.pad[2] && !a.pad[3])
        return onnx_def_copy(m, nd, 0, x);
    if (!strcmp(mode, "constant"))
        a.mode = 0;
    else if (!strcmp(mode, "reflect"))
        a.mode = 1;
    else if (!strcmp(mode, "edge"))
        a.mode = 2;
    else
        return onnx_unsup(m, nd, "its mode '%.20s' is none of constant, reflect, edge", mode);
    a.alpha = value;
    return elementwise(m, nd, PARE_OP_PAD, &a);
}

/* ---- quantization: QuantizeLinear, DequantizeLinear ------------------------------------ */

void onnx_quant_free(onnx_quant *q)
{
    if (!q)
        return;
    free(q->scale);
    free(q->zero_point);
    free(q);
}

onnx_quant *onnx_quant_copy(const onnx_quant *q, pare_status *st)
{
    *st = PARE_OK;
    if (!q)
        return NULL;
    onnx_quant *c = malloc(sizeof *c);
    float *sc = malloc((q->n ? q->n : 1) * sizeof *sc);
    int32_t *zp = malloc((q->n ? q->n : 1) * sizeof *zp);
    if (!c || !sc || !zp) {
        free(c);
        free(sc);
        free(zp);
        *st = pare_fail(PARE_ENOMEM, "out of memory");
        return NULL;
    }
    *c = *q;
    memcpy(sc, q->scale, q->n * sizeof *sc);
    memcpy(zp, q->zero_point, q->n * sizeof *zp);
    c->scale = sc;
    c->zero_point = zp;
    return c;
}

/* The range of a code type. */
static void code_range(int dtype, int *lo, int *hi)
{
    *lo = dtype == PARE_ONNX_INT8 ? -128 : dtype == PARE_ONNX_UINT8 ? 0 : INT_MIN;
    *hi = dtype == PARE_ONNX_INT8 ? 127 : dtype == PARE_ONNX_UINT8 ? 255 : INT_MAX;
}

/* What the scale and zero point inputs of a QuantizeLinear (is_q) or
 * DequantizeLinear say, for an input of `rank` dims d. */
typedef struct qspec {
    const pare_onnx_tensor *scale, *zp; /* zp NULL: absent (0) */
    int dtype;                          /* the codes' type, from the zero point (0: unknown) */
    int axis;                           /* -1 per tensor */
    size_t n;
} qspec;

static pare_status qspec_of(onnx_imp *m, node *nd, int rank, const int64_t *d, int is_q, qspec *q)
{
    pare_onnx_tensor *sc, *zp;
    int64_t axis, block, odt;
    pare_status s;
    memset(q, 0, sizeof *q);
    q->axis = -1;
    if (m->opset < 10)
        return onnx_unsup(m, nd, "it needs opset 10 or later, and the model imports opset %d",
                          m->opset);
    if ((s = onnx_attr_int(m, nd, "axis", 1, &axis)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "block_size", 0, &block)) != PARE_OK ||
        (s = onnx_attr_int(m, nd, "output_dtype", 0, &odt)) != PARE_OK)
        return s;
    if (block)
        return onnx_unsup(m, nd, "it quantizes in blocks (block_size %lld); pare quantizes per "
                                 "tensor or per channel",
                          (long long)block);
    if ((s = onnx_need_const(m, nd, 1, PARE_ONNX_FLOAT, "scale", &sc)) != PARE_OK ||
        (s = onnx_need_const(m, nd, 2, 0, "zero point", &zp)) != PARE_OK)
        return s;
    if (!sc)
        return onnx_bad(m, nd, "it has no scale");
    if (sc->rank > 1 || sc->n == 0)
        return onnx_bad(m, nd, "its scale is not a scalar or a list");
    q->scale = sc;
    q->n = sc->n;
    /* A 1-D scale of one value is per tensor unless its axis has one entry
     * too (as ONNX Runtime reads it; PyTorch writes per-tensor scales so). */
    int per_axis = sc->rank == 1 && sc->n > 1;
    if (sc->rank == 1 && sc->n == 1 && m->opset >= 13) {
        int ax;
        per_axis = norm_axis(axis, rank, &ax) && d[ax] == 1;
    }
    if (per_axis) {
        if (m->opset < 13)
            return onnx_bad(m, nd, "it has %zu scales, but per-axis quantization needs opset 13",
                            sc->n);
        int ax;
        if (!norm_axis(axis, rank, &ax))
            return onnx_bad(m, nd, "its axis %lld does not fit %d dimensions", (long long)axis,
                            rank);
        if (d[ax] >= 0 && (uint64_t)d[ax] != sc->n)
            return onnx_bad(m, nd, "it has %zu scales for the %lld entries of axis %d", sc->n,
                            (long long)d[ax], ax);
        q->axis = ax;
    }
    if (zp) {
        int t = zp->src_dtype ? zp->src_dtype : zp->dtype;
        if (zp->dtype != PARE_ONNX_INT64 ||
            (t != PARE_ONNX_UINT8 && t != PARE_ONNX_INT8 && (is_q || t != PARE_ONNX_INT32)))
            return onnx_unsup(m, nd, "its zero point is %s; pare reads uint8 and int8 codes%s",
                              onnx_dtype_name(t), is_q ? "" : " (and int32 ones for biases)");
        if (zp->rank != sc->rank || zp->n != sc->n)
            return onnx_bad(m, nd, "its zero point has %zu values and its scale %zu", zp->n, sc->n);
        if (onnx_tensor_has_batch(zp))
            return onnx_unsup(m, nd, "its zero point depends on the batch size");
        q->zp = zp;
        q->dtype = t;
        if (t == PARE_ONNX_INT32)
            for (size_t k = 0; k < zp->n; k++)
                if (zp->i[k])
                    return onnx_bad(m, nd, "its int32 zero point is %lld, and int32 codes have "
                                           "none (it must be 0)",
                                    (long long)zp->i[k]);
    }
    if (odt && odt != PARE_ONNX_UINT8 && odt != PARE_ONNX_INT8)
        return onnx_unsup(m, nd, "its output type is %s; pare reads uint8 and int8 codes",
                          onnx_dtype_name((int)(odt > 64 || odt < 0 ? 0 : odt)));
    if (odt && q->dtype && odt != q->dtype)
        return onnx_bad(m, nd, "its output_dtype %s disagrees with its zero point's %s",
                        onnx_dtype_name((int)odt), onnx_dtype_name(q->dtype));
    if (odt)
        q->dtype = (int)odt;
    if (is_q && !q->dtype)
        q->dtype = PARE_ONNX_UINT8;
    return PARE_OK;
}

static int64_t qzp(const qspec *q, size_t c) { return q->zp ? q->zp->i[q->zp->n == 1 ? 0 : c] : 0; }
static float qscale(const qspec *q, size_t c) { return q->scale->f[q->scale->n == 1 ? 0 : c]; }

/* The channel of element e of a tensor of dims d along axis (per-axis scales). */
static size_t chan_of(size_t e, int rank, const int64_t *d, int axis)
{
    if (axis < 0)
        return 0;
    size_t inner = 1;
    for (int k = axis + 1; k < rank; k++)
        inner *= (size_t)d[k];
    return (e / inner) % (size_t)d[axis];
}

/* ONNX's QuantizeLinear: x / scale rounded half to even (rintf in the default
 * mode), plus the zero point, saturated to the type. */
static int64_t quantize1(float x, float s, int64_t zp, int lo, int hi)
{
    float q = rintf(x / s);
    if (!(q >= (float)lo - (float)zp)) /* NaN saturates low, as ORT's conversion does not
                                          define it; any fixed choice is as good */
        return lo;
    if (q > (float)hi - (float)zp)
        return hi;
    return (int64_t)q + zp;
}

static pare_status fold_quantize(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t;
    qspec q;
    pare_status s;
    if (!x || x->dtype != PARE_ONNX_FLOAT)
        return onnx_unsup(m, nd, "its input is not float32");
    if ((s = qspec_of(m, nd, x->rank, x->dims, 1, &q)) != PARE_OK)
        return s;
    int lo, hi;
    code_range(q.dtype, &lo, &hi);
    t = onnx_tensor_new(PARE_ONNX_INT64, x->rank, x->dims, ONNX_TENSOR_MAX, &s);
    if (!t)
        return s == PARE_ENOMEM ? s : onnx_bad(m, nd, "%s", pare_last_error());
    t->src_dtype = q.dtype;
    for (size_t e = 0; e < x->n; e++) {
        size_t c = chan_of(e, x->rank, x->dims, q.axis);
        t->i[e] = quantize1(x->f[e], qscale(&q, c), qzp(&q, c), lo, hi);
    }
    return onnx_def_const(m, nd, 0, t);
}

/* The bits the exporter recorded for a dequantized tensor ("pare.quant.NAME" =
 * "bits=4"), or 0. */
static int meta_bits(const onnx_imp *m, const char *vname)
{
    static const char prefix[] = "pare.quant.";
    for (size_t k = 0; k < m->model->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *e = m->model->metadata_props[k];
        int b;
        char extra;
        if (e && e->key && e->value && !strncmp(e->key, prefix, sizeof prefix - 1) &&
            !strcmp(e->key + sizeof prefix - 1, vname) &&
            sscanf(e->value, "bits=%d%c", &b, &extra) == 1 && b >= 1 && b <= 32)
            return b;
    }
    return 0;
}

static pare_status fold_dequantize(onnx_imp *m, node *nd)
{
    pare_onnx_tensor *x = cin(m, nd, 0), *t;
    qspec q;
    pare_status s;
    int xt = x ? x->src_dtype : 0;
    if (!x || x->dtype != PARE_ONNX_INT64 ||
        (xt != PARE_ONNX_UINT8 && xt != PARE_ONNX_INT8 && xt != PARE_ONNX_INT32))
        return onnx_unsup(m, nd, "its input is %s; DequantizeLinear reads uint8, int8 or int32 "
                                 "codes",
                          onnx_dtype_name(x ? (xt ? xt : x->dtype) : 0));
    if (onnx_tensor_has_batch(x))
        return onnx_unsup(m, nd, "its input depends on the batch size");
    if ((s = qspec_of(m, nd, x->rank, x->dims, 0, &q)) != PARE_OK)
        return s;
    if (q.dtype && q.dtype != xt)
        return onnx_bad(m, nd, "its codes are %s but its zero point is %s", onnx_dtype_name(xt),
                        onnx_dtype_name(q.dtype));
    t = onnx_tensor_new(PARE_ONNX_FLOAT, x->rank, x->dims, ONNX_TENSOR_MAX, &s);
    onnx_quant *qi = calloc(1, sizeof *qi);
    float *sc = malloc(q.n * sizeof *sc);
    int32_t *zp = malloc(q.n * sizeof *zp);
    if (!t || !qi || !sc || !zp) {
        pare_onnx_tensor_free(t);
        free(qi);
        free(sc);
        free(zp);
        return !t && s != PARE_ENOMEM ? onnx_bad(m, nd, "%s", pare_last_error())
                                      : pare_fail(PARE_ENOMEM, "out of memory");
    }
    int positive = 1;
    for (size_t c = 0; c < q.n; c++) {
        sc[c] = q.scale->f[c];
        zp[c] = (int32_t)qzp(&q, c);
        positive &= isfinite(sc[c]) && sc[c] > 0.0f;
    }
    qi->dtype = xt;
    qi->axis = q.axis;
    qi->n = q.n;
    qi->scale = sc;
    qi->zero_point = zp;
    qi->cmin = INT64_MAX;
    qi->cmax = INT64_MIN;
    for (size_t e = 0; e < x->n; e++) {
        size_t c = chan_of(e, x->rank, x->dims, q.axis);
        int64_t k = x->i[e] - zp[c];
        /* pare's representation: scale * (float)(code - zero point), as ONNX computes it. */
        t->f[e] = sc[c] * (float)k;
        qi->cmin = k < qi->cmin ? k : qi->cmin;
        qi->cmax = k > qi->cmax ? k : qi->cmax;
    }
    int bits = nd->n_output > 0 ? meta_bits(m, nd->output[0]) : 0;
    qi->bits = bits ? bits : xt == PARE_ONNX_INT32 ? 32 : 8;
    s = onnx_def_const(m, nd, 0, t);
    onnx_val *y = s == PARE_OK && nd->n_output > 0 ? onnx_value(m, nd->output[0]) : NULL;
    /* A scale that is not a positive number gives values, but no qparams. */
    if (y && positive) {
        y->q = qi;
        return PARE_OK;
    }
    onnx_quant_free(qi);
    return s;
}

/* A constant quantized with a scale or zero point that is not: the reason is
 * theirs. */
static pare_status const_data(onnx_imp *m, node *nd, const onnx_val *x, int is_q)
{
    qspec q;
    pare_status s = qspec_of(m, nd, x->c->rank, x->c->dims, is_q, &q);
    return s != PARE_OK ? s : onnx_unsup(m, nd, "its inputs mix constants and data");
}

static pare_status act_quantize(onnx_imp *m, node *nd)
{
    onnx_val *x = onnx_in(m, nd, 0);
    qspec q;
    if (x && x->kind == V_CONST)
        return const_data(m, nd, x, 1);
    pare_status s = onnx_need_act(m, nd, 0, &x);
    if (s != PARE_OK)
        return s;
    int64_t d[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, d);
    if ((s = qspec_of(m, nd, x->rank, d, 1, &q)) != PARE_OK)
        return s;
    if (q.axis >= 0 && q.n > 1)
        return onnx_unsup(m, nd, "it quantizes an activation per channel (axis %d); pare's fake "
                                 "quantization has one scale per tensor",
                          q.axis);
    float sc = q.scale->f[0];
    if (!isfinite(sc) || !(sc > 0.0f))
        return onnx_unsup(m, nd, "its scale %g is not a positive number", (double)sc);
    onnx_qact qa = {sc, (int)qzp(&q, 0), 0, 0, q.dtype, -1};
    code_range(q.dtype, &qa.lo, &qa.hi);
    if (qa.zp < qa.lo || qa.zp > qa.hi)
        return onnx_bad(m, nd, "its zero point %d is not a %s value", qa.zp,
                        onnx_dtype_name(q.dtype));
    /* A Clip before it that only narrows the codes (pare's export of fewer bits). */
    if (x->clip_hi > x->clip_lo) {
        qa.lo = x->clip_lo;
        qa.hi = x->clip_hi;
    }
    if ((s = onnx_def_copy(m, nd, 0, x)) != PARE_OK)
        return s;
    onnx_val *y = nd->n_output > 0 && nd->output[0][0] ? onnx_value(m, nd->output[0]) : NULL;
    if (y) {
        y->kind = V_QACT;
        y->clip_lo = y->clip_hi = 0;
        y->qa = qa;
    }
    return PARE_OK;
}

/* A DequantizeLinear of integer model input: (x - zero point) * scale, as an
 * add and a mul of constants (per tensor or along one axis). */
static pare_status dequantize_input(onnx_imp *m, node *nd, onnx_val *x, const qspec *q)
{
    pare_status s;
    if (q->dtype && q->dtype != x->elem)
        return onnx_bad(m, nd, "its input is %s but its zero point is %s",
                        onnx_dtype_name(x->elem), onnx_dtype_name(q->dtype));
    if (q->axis == 0)
        return onnx_unsup(m, nd, "it dequantizes along the batch axis");
    int64_t d[PARE_ONNX_MAX_RANK], pd[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, d);
    for (int k = 0; k < x->rank; k++)
        pd[k] = k == q->axis ? (int64_t)q->n : 1;
    pare_shape cs;
    if (!onnx_ir_shape(x->rank, pd, &cs))
        return onnx_bad(m, nd, "its scale does not fit its input");
    float *v = malloc(q->n * sizeof *v);
    if (!v)
        return pare_fail(PARE_ENOMEM, "out of memory");
    int any_zp = 0, any_scale = 0;
    for (size_t c = 0; c < q->n; c++) {
        any_zp |= qzp(q, c) != 0;
        any_scale |= qscale(q, c) != 1.0f;
    }
    int id = x->id;
    pare_attrs a = onnx_attrs0();
    pare_onnx_tensor ct = {.dtype = PARE_ONNX_FLOAT, .n = q->n, .f = v};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0 ? !any_zp : !any_scale)
            continue;
        for (size_t c = 0; c < q->n; c++)
            v[c] = pass == 0 ? -(float)qzp(q, c) : qscale(q, c);
        int cid = onnx_ir_const(m, nd, &ct, cs, NULL, &s);
        int in[2] = {id, cid};
        if (cid < 0 || (id = onnx_ir_add(m, nd, pass == 0 ? PARE_OP_ADD : PARE_OP_MUL, in, 2, &a,
                                         pass == 0 ? "/zero_point" : NULL, NULL, &s)) < 0) {
            free(v);
            return s;
        }
    }
    free(v);
    if (id == x->id) {
        if ((s = onnx_def_copy(m, nd, 0, x)) == PARE_OK && nd->output[0][0])
            onnx_value(m, nd->output[0])->elem = 0;
        return s;
    }
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

static pare_status act_dequantize(onnx_imp *m, node *nd)
{
    onnx_val *x = onnx_in(m, nd, 0);
    qspec q;
    pare_status s;
    if (!x)
        return onnx_bad(m, nd, "it has no input");
    if (x->kind == V_CONST)
        return const_data(m, nd, x, 0);
    if (x->kind == V_ACT && x->elem) {
        int64_t d[PARE_ONNX_MAX_RANK];
        onnx_act_dims(m, x, d);
        if ((s = qspec_of(m, nd, x->rank, d, 0, &q)) != PARE_OK)
            return s;
        return dequantize_input(m, nd, x, &q);
    }
    if (x->kind == V_ACT)
        return onnx_unsup(m, nd, "its input is float32 data; DequantizeLinear reads the codes of a "
                                 "QuantizeLinear or integer model input");
    if (x->kind != V_QACT)
        return onnx_need_act(m, nd, 0, &x);
    int64_t d[PARE_ONNX_MAX_RANK];
    onnx_act_dims(m, x, d);
    if ((s = qspec_of(m, nd, x->rank, d, 0, &q)) != PARE_OK)
        return s;
    const onnx_qact *qa = &x->qa;
    float sc = q.scale->f[0];
    int same_scale = (q.axis < 0 || q.n == 1) && !memcmp(&sc, &qa->scale, sizeof sc);
    if (!same_scale || qzp(&q, 0) != qa->zp || (q.dtype && q.dtype != qa->dtype))
        return onnx_unsup(m, nd, "its scale or zero point differs from those of the "
                                 "QuantizeLinear before it; pare holds the pair as one fake "
                                 "quantization");
    /* clamp(rint(x / s) + zp, lo, hi) - zp = clamp(rint(x / s) + zp', 0, hi - lo) - zp'
     * with zp' = zp - lo: pare's unsigned form, when hi - lo + 1 is a power of two. */
    long width = (long)qa->hi - (long)qa->lo + 1;
    int bits = 0;
    while (bits <= 8 && (1L << bits) < width)
        bits++;
    if (bits < 1 || bits > 8 || (1L << bits) != width)
        return onnx_unsup(m, nd, "its codes lie in [%d, %d], which is not the range of 1 to 8 "
                                 "bits",
                          qa->lo, qa->hi);
    if (qa->zp < qa->lo || qa->zp > qa->hi)
        return onnx_unsup(m, nd, "its zero point %d lies outside its codes' range [%d, %d]",
                          qa->zp, qa->lo, qa->hi);
    int id = qa->fq;
    if (id < 0) {
        pare_attrs a = onnx_attrs0();
        a.alpha = sc;
        a.beta = (float)(qa->zp - qa->lo);
        a.mode = bits;
        if ((id = onnx_ir_add(m, nd, PARE_OP_FAKEQUANT, &x->id, 1, &a, NULL, NULL, &s)) < 0)
            return s;
        x->qa.fq = id; /* a second DequantizeLinear of the same codes reuses it */
    }
    return onnx_def_act(m, nd, 0, id, x->rank, x->batch);
}

/* Clip whose only reader is a QuantizeLinear with bounds exactly on its grid,
 * scale * (k - zp) for codes k spanning 2^b values: the Clip narrows the codes
 * to [klo, khi] and adds no layer (pare exports fake quantization to b < 8 bits
 * that way). 0 when it is anything else. */
static int clip_codes(onnx_imp *m, node *nd, float lo, float hi, int *klo, int *khi)
{
    if (nd->n_output < 1 || !nd->output[0][0])
        return 0;
    onnx_val *y = onnx_value(m, nd->output[0]);
    if (!y || y->uses != 1 || y->consumer < 0)
        return 0;
    const Onnx__NodeProto *qn = m->gp->node[y->consumer];
    if (strcmp(str(qn->op_type), "QuantizeLinear") ||
        (qn->domain && *qn->domain && strcmp(qn->domain, "ai.onnx")) || qn->n_input < 2 ||
        strcmp(qn->input[0], y->name) || onnx_attr(qn, "block_size") || onnx_attr(qn, "output_dtype"))
        return 0;
    onnx_val *sv = onnx_value(m, qn->input[1]);
    onnx_val *zv = qn->n_input > 2 && qn->input[2][0] ? onnx_value(m, qn->input[2]) : NULL;
    if (!sv || sv->kind != V_CONST || sv->c->dtype != PARE_ONNX_FLOAT || sv->c->n != 1)
        return 0;
    int dtype = PARE_ONNX_UINT8, zp = 0;
    if (zv) {
        if (zv->kind != V_CONST || zv->c->dtype != PARE_ONNX_INT64 || zv->c->n != 1 ||
            (zv->c->src_dtype != PARE_ONNX_UINT8 && zv->c->src_dtype != PARE_ONNX_INT8))
            return 0;
        dtype = zv->c->src_dtype;
        zp = (int)zv->c->i[0];
    }
    float s = sv->c->f[0];
    int tlo, thi;
    code_range(dtype, &tlo, &thi);
    if (!isfinite(s) || !(s > 0.0f) || !(lo / s >= -1024.0f && hi / s <= 1024.0f) || !(lo < hi))
        return 0;
    int a = (int)rintf(lo / s) + zp, b = (int)rintf(hi / s) + zp;
    long width = (long)b - a + 1;
    if (a < tlo || b > thi || width > 128 || (width & (width - 1)) ||
        s * (float)(a - zp) != lo || s * (float)(b - zp) != hi)
        return 0;
    *klo = a;
    *khi = b;
    return 1;
}

/* Clip of codes (PyTorch clamps them to [0, 127] for 7-bit ranges): the codes'
 * range narrows. */
static pare_status clip_qact(onnx_imp *m, node *nd, onnx_val *x)
{
    pare_onnx_tensor *t[2];
    pare_status s;
    int b[2] = {x->qa.lo, x->qa.hi};
    for (int k = 0; k < 2; k++) {
        if ((s = onnx_need_const(m, nd, (size_t)k + 1, 0, k ? "max" : "min", &t[k])) != PARE_OK)
            return s;
        if (!t[k])
            continue;
        if (t[k]->dtype != PARE_ONNX_INT64 || t[k]->src_dtype != x->qa.dtype || t[k]->n != 1)
            return onnx_bad(m, nd, "its %s is not one %s value", k ? "max" : "min",
                            onnx_dtype_name(x->qa.dtype));
        int64_t v = t[k]->i[0];
        if (k == 0 && v > b[0])
            b[0] = (int)v;
        if (k == 1 && v < b[1])
            b[1] = (int)v;
    }
    if (b[0] > b[1])
        return onnx_unsup(m, nd, "its min exceeds its max");
    if ((s = onnx_def_copy(m, nd, 0, x)) != PARE_OK)
        return s;
    if (nd->output[0][0]) {
        onnx_val *y = onnx_value(m, nd->output[0]);
        y->qa.lo = b[0];
        y->qa.hi = b[1];
        y->qa.fq = -1;
    }
    return PARE_OK;
}

/* ---- qparams of imported weights ---------------------------------------------------------- */

static int row_cmp(const float *a, const float *b, int d) { return memcmp(a, b, sizeof(float) * (size_t)d); }

/* The codebook the exporter recorded for p, restored when every run of d
 * values along the last axis is one of its rows and pare's file takes it. */
static pare_status restore_codebook(pare_param *p, const char *text)
{
    int k, d, used;
    if (sscanf(text, "k=%d d=%d:%n", &k, &d, &used) != 2 || k < 1 || d < 1 || k > 65536 ||
        d > 65536 || (size_t)k * (size_t)d > ((size_t)1 << 22) || p->t->ndim < 1 ||
        p->t->dims[p->t->ndim - 1] % d)
        return PARE_OK;
    size_t kd = (size_t)k * (size_t)d;
    float *cb = malloc(kd * sizeof *cb);
    int *order = malloc((size_t)k * sizeof *order);
    pare_status st = PARE_OK;
    if (!cb || !order) {
        st = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    const char *at = text + used;
    for (size_t e = 0; e < kd; e++) {
        char *end;
        cb[e] = strtof(at, &end);
        if (end == at)
            goto done;
        at = end;
    }
    /* Rows sorted by their bytes (insertion sort: k is small), then a binary
     * search per run of the tensor. */
    for (int i = 0; i < k; i++) {
        int j = i;
        while (j > 0 && row_cmp(cb + (size_t)order[j - 1] * d, cb + (size_t)i * d, d) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t r = 0; r < p->t->n / (size_t)d; r++) {
        const float *run = p->t->data + r * (size_t)d;
        int lo = 0, hi = k - 1, found = 0;
        while (lo <= hi && !found) {
            int mid = (lo + hi) / 2, c = row_cmp(cb + (size_t)order[mid] * d, run, d);
            found = c == 0;
            if (c < 0)
                lo = mid + 1;
            else if (c > 0)
                hi = mid - 1;
        }
        if (!found)
            goto done;
    }
    pare_qparams q = {0};
    q.scheme = 3;
    q.k = k;
    q.d = d;
    q.codebook = cb;
    for (q.bits = 0; (1L << q.bits) < k; q.bits++)
        ;
    if (q.bits == 0)
        q.bits = 1;
    char why[200];
    if (pare_file_qparams_problem(&q, p->t->ndim, p->t->dims, p->t->n, why, sizeof why))
        goto done;
    free(p->q.scale);
    free(p->q.zero_point);
    free(p->q.codebook);
    p->q = q;
    cb = NULL;
done:
    free(cb);
    free(order);
    return st;
}

pare_status onnx_param_quant(onnx_imp *m, int id, int k, const onnx_val *v, int axis, int exact)
{
    const pare_node *nd = &m->g->nodes[id];
    if (!v || k >= nd->n_param)
        return PARE_OK;
    pare_param *p = &m->g->params[nd->param[k]];
    const onnx_quant *q = v->q;
    if (!q) {
        /* "k=K d=D: v v v ..." (hex floats) */
        const char *cb = onnx_meta(m, "pare.codebook.", v->name);
        return cb && exact ? restore_codebook(p, cb) : PARE_OK;
    }
    if (!exact || (q->axis >= 0 && q->axis != axis) || q->bits < 1 || q->bits > 32)
        return PARE_OK;
    /* pare's weights and biases have zero point 0 and the codes graph.h
     * allows: others keep their values as float. */
    for (size_t c = 0; c < q->n; c++)
        if (q->zero_point[c])
            return PARE_OK;
    if (q->cmin < pare_qparams_code_min(q->bits) || q->cmax > pare_qparams_code_max(q->bits))
        return PARE_OK;
    pare_qparams nq = {0};
    nq.bits = q->bits;
    nq.scheme = q->axis < 0 ? 1 : 2;
    nq.axis = 0;
    nq.n = (int)q->n;
    nq.scale = malloc(q->n * sizeof *nq.scale);
    nq.zero_point = calloc(q->n, sizeof *nq.zero_point);
    if (!nq.scale || !nq.zero_point) {
        free(nq.scale);
        free(nq.zero_point);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    memcpy(nq.scale, q->scale, q->n * sizeof *nq.scale);
    char why[200];
    if (pare_file_qparams_problem(&nq, p->t->ndim, p->t->dims, p->t->n, why, sizeof why)) {
        free(nq.scale);
        free(nq.zero_point);
        return PARE_OK;
    }
    free(p->q.scale);
    free(p->q.zero_point);
    free(p->q.codebook);
    p->q = nq;
    return PARE_OK;
}

static const onnx_op ops[] = {
    {"Add", 2, fold_add, act_add},
    {"AveragePool", 1, NULL, act_avgpool},
    {"BatchNormalization", 5, NULL, act_batchnorm},
    {"Cast", 1, fold_cast, act_cast},
    {"Clip", 1, NULL, act_clip},
    {"Concat", 1, fold_concat, act_concat},
    {"Constant", 0, op_constant, NULL},
    {"ConstantOfShape", 1, fold_constant_of_shape, NULL},
    {"Conv", 2, NULL, act_conv},
    {"DequantizeLinear", 2, fold_dequantize, act_dequantize},
    {"Div", 2, fold_div, act_div},
    {"Dropout", 1, NULL, act_dropout},
    {"Flatten", 1, fold_flatten, act_flatten},
    {"Gather", 2, fold_gather, NULL},
    {"Gemm", 2, NULL, act_gemm},
    {"GlobalAveragePool", 1, NULL, act_global_avgpool},
    {"GlobalMaxPool", 1, NULL, act_global_maxpool},
    {"HardSigmoid", 1, NULL, act_hardsigmoid},
    {"HardSwish", 1, NULL, act_hardswish},
    {"Identity", 1, op_identity, op_identity},
    {"LeakyRelu", 1, NULL, act_leakyrelu},
    {"MatMul", 2, NULL, act_matmul},
    {"MaxPool", 1, NULL, act_maxpool},
    {"Mul", 2, fold_mul, act_mul},
    {"Neg", 1, fold_neg, act_neg},
    {"Pad", 1, NULL, act_pad},
    {"QuantizeLinear", 2, fold_quantize, act_quantize},
    {"Range", 3, fold_range, NULL},
    {"Relu", 1, NULL, act_relu},
    {"Reshape", 2, fold_reshape, act_reshape},
    {"Shape", 1, fold_shape, act_shape},
    {"Sigmoid", 1, NULL, act_sigmoid},
    {"Slice", 1, fold_slice, NULL},
    {"Softmax", 1, NULL, act_softmax},
    {"Squeeze", 1, fold_squeeze, act_squeeze},
    {"Sub", 2, fold_sub, act_sub},
    {"Transpose", 1, fold_transpose, act_transpose},
    {"Unsqueeze", 1, fold_unsqueeze, act_unsqueeze},
};

const onnx_op *onnx_op_find(const char *op_type)
{
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(ops[k].name, op_type))
            return &ops[k];
    return NULL;
}

#else
/* Built without protobuf-c: onnx_import.c refuses ONNX models. */
typedef int pare_onnx_ops_unused;
#endif
