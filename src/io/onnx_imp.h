/* What the ONNX import files share (built only with protobuf-c): TensorProto
 * conversion with every size checked, and constant folding on small tensors. */
#ifndef PARE_IO_ONNX_IMP_H
#define PARE_IO_ONNX_IMP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/onnx.h"
#include "onnx.pb-c.h"

/* Largest tensor read from a file (pare tensors count elements in int) and
 * largest tensor folding may make (a small file must not ask for gigabytes). */
#define ONNX_TENSOR_MAX ((size_t)0x7fffffff)
#define ONNX_FOLD_MAX ((size_t)1 << 24)

/* The name of an ONNX data type ("FLOAT16"), for messages. */
const char *onnx_dtype_name(int dtype);

/* A new zero-filled tensor of dtype FLOAT or INT64 with refs 1; NULL (error
 * set: PARE_EUNSUPPORTED when it would exceed max elements, else ENOMEM) on
 * failure. */
pare_onnx_tensor *onnx_tensor_new(int dtype, int rank, const int64_t *dims, size_t max,
                                  pare_status *st);
static inline pare_onnx_tensor *onnx_tensor_ref(pare_onnx_tensor *t)
{
    t->refs++;
    return t;
}

/* Converts a TensorProto. `what` names it in messages ("initializer 'w'").
 * dir: the model's folder for external data (NULL refuses external data).
 * PARE_EFORMAT when its dims and data disagree or external data is out of
 * bounds; PARE_EUNSUPPORTED for a data type other than float32, int64, int32, bool. */
pare_status onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *dir, const char *what,
                                   pare_onnx_tensor **out);

/* ---- folding: each returns PARE_OK, PARE_ENOMEM, or PARE_EUNSUPPORTED /
 * PARE_EFORMAT with a phrase (no subject) saying why ---------------------- */

/* '+', '-', '*', '/' with numpy broadcasting; both operands of one dtype. */
pare_status onnx_fold_binary(int op, const pare_onnx_tensor *a, const pare_onnx_tensor *b,
                             pare_onnx_tensor **out);
pare_status onnx_fold_neg(const pare_onnx_tensor *a, pare_onnx_tensor **out);
/* to: an ONNX data type; FLOAT, INT64 and INT32 (kept as int64). */
pare_status onnx_fold_cast(const pare_onnx_tensor *a, int to, pare_onnx_tensor **out);
pare_status onnx_fold_gather(const pare_onnx_tensor *data, const pare_onnx_tensor *idx, int axis,
                             pare_onnx_tensor **out);
/* Per ONNX Slice-10+: starts, ends, axes (NULL: 0..n-1), steps (NULL: 1); n entries each. */
pare_status onnx_fold_slice(const pare_onnx_tensor *data, const int64_t *starts,
                            const int64_t *ends, const int64_t *axes, const int64_t *steps, int n,
                            pare_onnx_tensor **out);
pare_status onnx_fold_concat(pare_onnx_tensor *const *xs, int n, int axis, pare_onnx_tensor **out);
pare_status onnx_fold_transpose(const pare_onnx_tensor *a, const int *perm,
                                pare_onnx_tensor **out);
/* The same elements with new dims (their product must be a->n). */
pare_status onnx_fold_reshape(const pare_onnx_tensor *a, int rank, const int64_t *dims,
                              pare_onnx_tensor **out);
/* A tensor of `dims` filled with one value (ConstantOfShape). */
pare_status onnx_fold_fill(int dtype, int rank, const int64_t *dims, double value,
                           pare_onnx_tensor **out);
/* start, start + delta, ... below limit (above when delta < 0); scalars of one dtype. */
pare_status onnx_fold_range(const pare_onnx_tensor *start, const pare_onnx_tensor *limit,
                            const pare_onnx_tensor *delta, pare_onnx_tensor **out);

/* 1 when any element of t stands for the batch size. */
int onnx_tensor_has_batch(const pare_onnx_tensor *t);

/* ---- the importer's state (onnx_import.c), used by the op handlers
 * (onnx_ops.c) --------------------------------------------------------------- */

/* What an ONNX value is while the graph is translated. */
typedef enum onnx_kind {
    V_UNDEF = 0, /* not produced yet */
    V_ACT,       /* an activation: IR value `id`, ONNX rank `rank`, batch first */
    V_CONST,     /* a constant tensor, folded at import */
    V_DEAD,      /* produced by a node pare cannot take (already reported) */
    V_BAD,       /* an initializer pare cannot read (`why` says so); fails where used */
    V_SHUF,      /* the 5-d (N, g, C/g, H, W) view of IR value `id` inside a channel
                    shuffle; shuf_t once transposed to (N, C/g, g, H, W) */
    V_QACT       /* the integer codes QuantizeLinear makes of IR value `id`: a
                    DequantizeLinear turns them into a fakequant layer (qa says how) */
} onnx_kind;

/* The codes of a quantized activation: clamp(rint(x / scale) + zp, lo, hi), in
 * the type of the zero point (lo, hi: its range, or a Clip's narrower one). */
typedef struct onnx_qact {
    float scale;
    int zp, lo, hi, dtype;
    int fq;                  /* the fakequant layer a DequantizeLinear made of them, or -1 */
} onnx_qact;

/* What a DequantizeLinear of a constant says of the floats it gives, so that a
 * conv or linear layer reading them as weight or bias gets pare's qparams. */
typedef struct onnx_quant {
    int dtype;               /* of the codes: UINT8, INT8 or INT32 */
    int bits;                /* 8 or 32, or what the exporter recorded */
    int axis;                /* the axis of per-axis scales, -1 per tensor */
    size_t n;                /* scales */
    float *scale;
    int32_t *zero_point;
    int64_t cmin, cmax;      /* codes minus zero points, over the tensor */
} onnx_quant;

typedef struct onnx_val {
    const char *name;
    onnx_kind kind;
    int defined;
    int id, rank;
    int64_t batch;           /* V_ACT: the batch size when the model fixes it, else -1 */
    pare_onnx_tensor *c;     /* V_CONST */
    char *why;               /* V_BAD */
    int uses, consumer;      /* inputs of nodes (and graph outputs) reading it; the first node */
    int shuf_g, shuf_t;      /* V_SHUF */
    int elem;                /* V_ACT: 0 for float32; UINT8 or INT8 for a model input of
                                that type (held as float32), which only DequantizeLinear
                                and Cast take */
    int clip_lo, clip_hi;    /* V_ACT made by a Clip whose only reader is a QuantizeLinear
                                with that code range: the Clip is the Q's (clip_hi > clip_lo) */
    onnx_qact qa;            /* V_QACT */
    onnx_quant *q;           /* V_CONST from a DequantizeLinear, or NULL */
} onnx_val;

typedef struct onnx_smap {
    size_t cap, n;
    const char **key;
    int *v;
} onnx_smap;

typedef struct onnx_unsup {
    char *op, *node, *reason; /* reason NULL: the op itself is not supported */
    int count;
} onnx_unsup_entry;

typedef struct onnx_imp {
    const char *what;        /* the file, for messages */
    const char *dir;         /* external data folder, or NULL */
    const pare_onnx_options *o;
    const Onnx__ModelProto *model;
    const Onnx__GraphProto *gp;
    int opset;
    pare_graph *g;
    onnx_val *v;
    int nv, capv;
    onnx_smap names, layers, params;
    onnx_unsup_entry *un;
    int nun, capun;
    int cur;                 /* the node being translated */
    uint8_t *fused;          /* per node: an Add whose constant became a MatMul's bias */
} onnx_imp;

typedef pare_status (*onnx_op_fn)(onnx_imp *m, const Onnx__NodeProto *nd);

/* An op pare imports: fold runs when every input is a constant, act otherwise;
 * either may be NULL. */
typedef struct onnx_op {
    const char *name;
    int min_in;              /* inputs that must be present: handlers rely on them */
    onnx_op_fn fold, act;
} onnx_op;

const onnx_op *onnx_op_find(const char *op_type);

/* Records that nd cannot be imported (fmt NULL: its op is unknown to pare) and
 * returns PARE_EUNSUPPORTED (PARE_ENOMEM when even that fails). */
pare_status onnx_unsup(onnx_imp *m, const Onnx__NodeProto *nd, const char *fmt, ...)
    PARE_PRINTF(3, 4);
/* PARE_EFORMAT with "<file>: node X (Op): <text>". */
pare_status onnx_bad(onnx_imp *m, const Onnx__NodeProto *nd, const char *fmt, ...)
    PARE_PRINTF(3, 4);

/* The value of that name (every name in the graph has one), or NULL. */
onnx_val *onnx_value(onnx_imp *m, const char *name);
/* Input k of nd, or NULL when absent (past the end or named ""). */
onnx_val *onnx_in(onnx_imp *m, const Onnx__NodeProto *nd, size_t k);
/* Input k as an activation (refused otherwise). */
pare_status onnx_need_act(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, onnx_val **out);
/* Input k as a constant of dtype (0: any); *out NULL when the input is absent. role
 * names it in messages ("weight"). */
pare_status onnx_need_const(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int dtype,
                            const char *role, pare_onnx_tensor **out);

/* Attributes; absent ones give the default (ints: *n = -1). A wrong type is
 * PARE_EFORMAT. */
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *nd, const char *name);
/* The value of the model's metadata entry "<prefix><vname>" (pare's exporter
 * writes "pare.scheme.<name>" and "pare.codebook.<name>"), or NULL. */
const char *onnx_meta(const onnx_imp *m, const char *prefix, const char *vname);
pare_status onnx_attr_int(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, int64_t def,
                          int64_t *out);
pare_status onnx_attr_float(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, float def,
                            float *out);
pare_status onnx_attr_ints(onnx_imp *m, const Onnx__NodeProto *nd, const char *name, int max,
                           int64_t *out, int *n);
pare_status onnx_attr_string(onnx_imp *m, const Onnx__NodeProto *nd, const char *name,
                             const char *def, char *buf, size_t cap);

/* Output definitions: each output is produced once. def_const takes over one
 * reference of t. */
pare_status onnx_def_act(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int id, int rank,
                         int64_t batch);
pare_status onnx_def_const(onnx_imp *m, const Onnx__NodeProto *nd, size_t k,
                           pare_onnx_tensor *t);
pare_status onnx_def_copy(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, const onnx_val *src);
pare_status onnx_def_shuf(onnx_imp *m, const Onnx__NodeProto *nd, size_t k, int id, int groups,
                          int transposed, int64_t batch);

/* An activation's ONNX dims (d[0] the batch size or -1), from its IR shape. */
void onnx_act_dims(const onnx_imp *m, const onnx_val *x, int64_t *d);
/* The IR shape of per-sample dims d[1..rank-1]; 0 when rank is not 1 to 4 or a
 * dim does not fit. */
int onnx_ir_shape(int rank, const int64_t *d, pare_shape *s);
/* The IR axis (0 c, 1 h, 2 w) of ONNX axis a (1..rank-1). */
int onnx_ir_axis(int rank, int a);

/* Adds an IR node named after nd (plus suffix), its parameters named after the
 * ONNX values in pnames (NULL entries, or pnames NULL: "<layer>.<role>"). Returns
 * its id, or -1 with *st set (PARE_EUNSUPPORTED after recording why). */
int onnx_ir_add(onnx_imp *m, const Onnx__NodeProto *nd, pare_op_type op, const int *in, int n_in,
                const pare_attrs *a, const char *suffix, const char *const *pnames,
                pare_status *st);
/* A const node holding c (float32) with IR shape s. */
int onnx_ir_const(onnx_imp *m, const Onnx__NodeProto *nd, const pare_onnx_tensor *c, pare_shape s,
                  const char *vname, pare_status *st);
/* Copies n values into parameter k of node id. */
pare_status onnx_set_param(onnx_imp *m, int id, int k, const float *x, size_t n);
/* Masks the exact zeros of a conv or linear weight and names the scheme they
 * follow (docs/ONNX.md, "Sparsity"); vname: the ONNX value it came from. */
pare_status onnx_weight_sparsity(onnx_imp *m, int id, const char *vname);

pare_attrs onnx_attrs0(void);

/* ---- quantization (onnx_ops.c) ---------------------------------------------------- */

void onnx_quant_free(onnx_quant *q);
/* A deep copy; NULL when q is NULL or memory runs out (*st says which). */
onnx_quant *onnx_quant_copy(const onnx_quant *q, pare_status *st);
/* Gives parameter k of layer id the qparams of the value it was read from when
 * they fit pare's representation; `axis` is the value's axis that became the
 * parameter's axis 0 (-1: none does), and exact is 0 when the values were
 * scaled or reordered on the way (Gemm's alpha). Otherwise, and for a value
 * without them, the codebook the exporter recorded (pare.codebook.NAME) is
 * restored when the values follow it. */
pare_status onnx_param_quant(onnx_imp *m, int id, int k, const onnx_val *v, int axis, int exact);

#endif
