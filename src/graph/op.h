/* The op interface: each op family in src/ops/ defines its shape inference,
 * parameter shapes, forward, backward, workspace needs and MAC count, and the
 * registry (src/ops/registry.c) lists them in one table. */
#ifndef PARE_GRAPH_OP_H
#define PARE_GRAPH_OP_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* One call of an op on a batch. Buffers are NCHW, n samples each. */
typedef struct pare_op_ctx {
    const pare_graph *g;
    const pare_node *node;
    int n;                      /* samples in this call */
    int training;               /* batch statistics, dropout active */
    int threads;
    const float *const *x;      /* inputs */
    const pare_shape *xs;       /* input shapes */
    float *y;                   /* output */
    float *const *w;            /* parameter data, in the node's param order */
    const uint8_t *const *mask; /* parameter masks or NULL */
    /* backward only */
    const float *dy;            /* gradient of the loss w.r.t. y */
    float *const *dx;           /* NULL entries: that input needs no gradient */
    const int *dx_acc;          /* 1: add into dx, 0: overwrite it */
    float *const *dw;           /* parameter gradients (overwritten); NULL: not needed */
    const uint8_t *const *dw_mask; /* per parameter, where its gradient is needed (1); elsewhere
                                    * it is left exactly 0. NULL (array or entry): everywhere */
    /* state */
    void *aux;                  /* saved from forward for backward (aux_bytes); zeroed
                                 * when allocated, kept across calls (caches live there) */
    float *ws;                  /* workspace: threads x ws_floats, 64-byte aligned per thread */
    size_t ws_floats;           /* per thread, rounded up to 16 */
    uint64_t seed;              /* per step, for dropout */
} pare_op_ctx;

/* What a parameter of a node must look like. */
typedef struct pare_param_spec {
    pare_param_role role;
    int ndim;
    int dims[4];
    int trainable;
} pare_param_spec;

typedef struct pare_op_def {
    const char *name;           /* as stored in files: "conv2d", "relu", ... */
    int min_in, max_in;         /* max_in < 0: any number */
    /* Checks attributes and input shapes, fills n->out; one clear sentence on error. */
    pare_status (*infer)(const pare_graph *g, pare_node *n);
    /* Fills specs (up to PARE_NODE_MAX_PARAMS) and returns how many; may be NULL (none). */
    int (*params)(const pare_graph *g, const pare_node *n, pare_param_spec *specs);
    /* Parameter initialisation by scheme (a pare_init_scheme); NULL: leave zeros. */
    void (*init)(pare_graph *g, int node, uint64_t seed, int scheme);
    void (*forward)(const pare_op_ctx *c);
    void (*backward)(const pare_op_ctx *c);
    /* Per-thread workspace in floats for a batch; NULL: none. */
    size_t (*ws_floats)(const pare_graph *g, const pare_node *n, int batch, int training);
    /* Bytes saved in forward for backward, for a batch; NULL: none. */
    size_t (*aux_bytes)(const pare_graph *g, const pare_node *n, int batch);
    /* Multiply-accumulates per sample (forward); NULL: 0. */
    double (*macs)(const pare_graph *g, const pare_node *n);
    /* 1 when y may share x[0]'s buffer (flatten: same bytes). */
    int alias_input;
    /* 1 when backward reads its own output y (so y must be kept), 0 when not. */
    int backward_needs_y;
    /* 1 when backward reads its inputs x. */
    int backward_needs_x;
    /* 1 when backward honours dw_mask itself (skipping the work where it can);
     * for other ops the executor zeroes the gradients outside it. */
    int handles_dw_mask;
    /* 1 when the node's forward takes a sparse path (a masked weight sparse
     * enough, ops/sparse.h) with its current weights; NULL: never. */
    int (*sparse_path)(const pare_graph *g, const pare_node *n);
} pare_op_def;

const pare_op_def *pare_op_get(pare_op_type t);
/* -1 when no op has that name. */
int pare_op_find(const char *name);

/* pare_op_def.sparse_path of node v (0 when the op has none), e.g. for
 * counting the FLOPs a training step skips. */
int pare_op_sparse_path(const pare_graph *g, int node);

/* Shared helpers for op implementations. */
pare_status pare_op_check_inputs(const pare_graph *g, const pare_node *n);
/* Output size of a sliding window; -1 when it does not fit. */
int pare_window_out(int in, int k, int stride, int pad_lo, int pad_hi, int dilation, int ceil_mode);

#endif
