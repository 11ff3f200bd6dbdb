/* The graph IR: nodes in topological order, each producing one value, and the
 * named parameters (with masks, frozen flags and quantization parameters) that
 * the training side, the compressors, the file format and the engine share. */
#ifndef PARE_GRAPH_GRAPH_H
#define PARE_GRAPH_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "pare.h"

/* Per-sample shape: channels x height x width (a vector is c x 1 x 1). */
typedef struct pare_shape {
    int c, h, w;
} pare_shape;

static inline size_t pare_shape_size(pare_shape s) { return (size_t)s.c * (size_t)s.h * (size_t)s.w; }

/* 1 when b broadcasts to a: each of b's c, h, w equals a's or is 1 (add, mul). */
static inline int pare_shape_broadcasts(pare_shape b, pare_shape a)
{
    return (b.c == a.c || b.c == 1) && (b.h == a.h || b.h == 1) && (b.w == a.w || b.w == 1);
}

/* The numbering is internal; files store op names, not these numbers. */
typedef enum pare_op_type {
    PARE_OP_INPUT = 0,
    PARE_OP_CONV2D,
    PARE_OP_LINEAR,
    PARE_OP_RELU,
    PARE_OP_RELU6,
    PARE_OP_MAXPOOL,
    PARE_OP_AVGPOOL,
    PARE_OP_GLOBAL_AVGPOOL,
    PARE_OP_BATCHNORM,
    PARE_OP_ADD,
    PARE_OP_CONCAT,
    PARE_OP_FLATTEN,
    PARE_OP_DROPOUT,
    /* Added with ONNX import (file format 1.2). Each reads the attributes named. */
    PARE_OP_SIGMOID,         /* 1 / (1 + e^-x) */
    PARE_OP_HARDSIGMOID,     /* max(0, min(1, alpha x + beta)) */
    PARE_OP_HARDSWISH,       /* x max(0, min(1, x / 6 + 1 / 2)) */
    PARE_OP_LEAKYRELU,       /* x >= 0 ? x : alpha x */
    PARE_OP_CLIP,            /* min(max(x, alpha), beta) */
    PARE_OP_MUL,             /* a * b; b broadcasts to a's shape (pare_shape_broadcasts) */
    PARE_OP_SOFTMAX,         /* over IR axis `axis` (0 c, 1 h, 2 w), or, mode 1,
                                over that axis and every later one flattened */
    PARE_OP_CHANNEL_SHUFFLE, /* groups g, c = g k: output channel j g + i is input
                                channel i k + j (ShuffleNet's reshape-transpose-reshape) */
    PARE_OP_PAD,             /* pad[4] on h and w, >= 0; mode 0 constant alpha, 1 reflect, 2 edge */
    PARE_OP_CONST,           /* no input; one tensor of shape `shape`, the output of every sample */
    PARE_OP_RESHAPE,         /* the same values per sample, read as shape `shape` */
    PARE_OP_TRANSPOSE,       /* output axis i is input axis perm[i] (axes c, h, w) */
    PARE_OP_FAKEQUANT,       /* quantize to `mode` unsigned bits at scale alpha, zero point
                              * beta, and back: (clamp(rint(x / alpha) + beta, 0, 2^mode - 1)
                              * - beta) alpha; the gradient passes where not clamped (STE) */
    PARE_OP__COUNT
} pare_op_type;

/* Attributes of every op; each op reads the fields it needs. */
typedef struct pare_attrs {
    int out_channels;      /* conv: filters; linear: output features */
    int kernel[2];         /* h, w */
    int stride[2];
    int dilation[2];
    int pad[4];            /* top, left, bottom, right */
    int groups;
    int bias;              /* conv/linear have a bias */
    int ceil_mode;         /* pooling output size rounds up */
    int count_include_pad; /* avgpool divides by the full window */
    float eps, momentum;   /* batchnorm */
    float p;               /* dropout probability */
    /* Format 1.2 (stored after p only when a layer uses them; see FORMAT.md). */
    float alpha, beta;     /* leakyrelu/hardsigmoid slope, offset; clip min, max; pad value */
    int axis;              /* softmax */
    int mode;              /* softmax, pad */
    int shape[3];          /* const, reshape: per-sample c, h, w */
    int perm[3];           /* transpose */
} pare_attrs;

typedef enum pare_param_role {
    PARE_ROLE_WEIGHT = 0,
    PARE_ROLE_BIAS,
    PARE_ROLE_BN_GAMMA,
    PARE_ROLE_BN_BETA,
    PARE_ROLE_BN_MEAN,     /* running statistics: updated in training, never by the optimizer */
    PARE_ROLE_BN_VAR,
    PARE_ROLE__COUNT
} pare_param_role;

/* Quantization parameters of a tensor; bits == 0 means float. The tensor's
 * float values are always the dequantized ones, exactly: for schemes 1 and 2,
 * value = scale[c] * (code - zero_point[c]) computed in float with an integer
 * code in the bits' range (weights: zero point 0, codes in [-2^(bits-1),
 * 2^(bits-1) - 1] for 3 bits and more, -1 to 1 for 2 bits, -1 and +1 for 1 bit;
 * pare's own quantizers are symmetric and leave out -2^(bits-1), which
 * PyTorch's per-channel weights use); for
 * scheme 3 (weight sharing) every run of d consecutive values (along the last
 * axis) is one of the k rows of the codebook, bits = ceil(log2 k); for
 * scheme 4 (SmartExchange, W = Ce B) the tensor's runs of d values are rows of
 * coef (same shape as the tensor, each entry 0 or +-scale[0] * 2^-t with
 * 0 <= t < 2^(bits - 1), scale[0] a power of two) times the d x d basis in
 * codebook (k = d): pare_qparams_basis_value(). So training and inference read
 * floats, and only the file and the int8 engine read codes (compress/quant.h). */
typedef struct pare_qparams {
    int bits;              /* 0: float */
    int scheme;            /* 0 none, 1 affine per tensor, 2 affine per channel, 3 codebook,
                            * 4 basis (SmartExchange) */
    int axis;              /* channel axis for per-channel */
    int n;                 /* number of scales (schemes 1 and 2) */
    float *scale;          /* n */
    int32_t *zero_point;   /* n */
    int k, d;              /* scheme 3: centroids, values per centroid */
    float *codebook;       /* scheme 3: k x d; scheme 4: the d x d basis */
    float *coef;           /* scheme 4: the coefficients, one per element (NULL when only
                            * the values are known, as after a float file record) */
} pare_qparams;

/* The codes a weight's or bias's qparams of `bits` bits allow (zero point 0):
 * -1 to 1 at 1 and 2 bits (1 bit: -1 and +1 only), else the whole signed
 * range [-2^(bits-1), 2^(bits-1) - 1]. */
static inline int64_t pare_qparams_code_min(int bits) { return bits <= 2 ? -1 : -((int64_t)1 << (bits - 1)); }
static inline int64_t pare_qparams_code_max(int bits) { return bits <= 2 ? 1 : ((int64_t)1 << (bits - 1)) - 1; }

/* Scheme 4: the value of element j of run r, before any mask: the sum over s
 * of coef[r d + s] * basis[s d + j], in double in that order (each product is
 * exact, as coef is a power of two, so contracting it into an FMA changes
 * nothing), rounded once to float. The file's reader and writer and the
 * compressor all call this, so they agree bit for bit. */
static inline float pare_qparams_basis_value(const float *coef, const float *basis, int d, size_t r, int j)
{
    double acc = 0.0;
    for (int s = 0; s < d; s++)
        acc += (double)coef[r * (size_t)d + (size_t)s] * (double)basis[s * d + j];
    return (float)acc;
}

typedef struct pare_param {
    char *name;            /* "<node>.weight" */
    int node;              /* owning node */
    pare_param_role role;
    int trainable;         /* 0 for running statistics */
    pare_tensor *t;
    uint8_t *mask;         /* NULL: dense; else one byte per element, 1 keep, 0 pruned */
    int frozen;            /* excluded from optimizer updates and weight gradients */
    char *scheme;          /* the sparsity scheme the mask follows ("2:4", "pattern:8", ...), or NULL */
    pare_qparams q;
} pare_param;

#define PARE_NODE_MAX_PARAMS 4

typedef struct pare_node {
    pare_op_type op;
    char *name;
    int n_in;
    int *in;               /* value ids = producing node ids, all < this node's id */
    int n_param;
    int param[PARE_NODE_MAX_PARAMS];   /* indices into graph params, in the op's role order */
    pare_attrs a;
    pare_shape out;
} pare_node;

typedef struct pare_meta {
    char *key, *value;
} pare_meta;

struct pare_graph {
    char *name;
    int n_nodes, cap_nodes;
    pare_node *nodes;
    int n_params, cap_params;
    pare_param *params;
    int output;            /* node id, -1 until built */
    int n_meta, cap_meta;
    pare_meta *meta;
    pare_status err;       /* first builder error, sticky */
};

/* Adds a node whose attributes and inputs are set, infers its shape through the
 * op registry and creates its parameters (zero-initialised); returns its id or
 * -1 (and records the error on the graph). */
int pare_graph_add_node(pare_graph *g, pare_op_type op, const int *in, int n_in,
                        const pare_attrs *a, const char *name);
/* Finds a node by name; -1 when absent. */
int pare_graph_find_node(const pare_graph *g, const char *name);
/* Finds a parameter of a node by role; -1 when absent. */
int pare_graph_node_param(const pare_graph *g, int node, pare_param_role role);
/* Shape of a value (node output). */
static inline pare_shape pare_graph_shape(const pare_graph *g, int v) { return g->nodes[v].out; }

/* Metadata key/values (dataset normalisation, provenance); set replaces. */
pare_status pare_graph_meta_set(pare_graph *g, const char *key, const char *value);
const char *pare_graph_meta_get(const pare_graph *g, const char *key);

/* Deep copy. */
pare_status pare_graph_clone(const pare_graph *g, pare_graph **out);
/* Copies s's values and all that hangs on them (trainable and frozen flags,
 * mask, scheme, quantization) into d, a parameter of the same role and size
 * in another graph; d's own are replaced. */
pare_status pare_param_copy_into(pare_param *d, const pare_param *s);
/* Frees a tensor's quantization parameters: it is float again (values stay). */
void pare_qparams_clear(pare_qparams *q);

/* The name of a parameter role ("weight", "bias", ...) and its inverse (-1). */
const char *pare_role_name(pare_param_role r);
int pare_role_find(const char *name);

/* The dataset normalisation a graph was trained with (meta "norm.mean"/"norm.std");
 * returns the channel count stored (0 when none). */
int pare_graph_norm_get(const pare_graph *g, float *mean, float *std, int max);
pare_status pare_graph_norm_set(pare_graph *g, int n, const float *mean, const float *std);

/* Validates a graph built or loaded from a file: input ids in range and
 * earlier, shapes re-inferred and equal to the stored ones, parameters of the
 * right count, role and size. Used by the file reader on untrusted input. */
pare_status pare_graph_validate(const pare_graph *g);

#endif
