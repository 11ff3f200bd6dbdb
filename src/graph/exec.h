/* Running a graph on batches on the training side: forward, and backward in
 * reverse node order (the graph is static, so autograd is a walk back over
 * the node list). Buffers are planned once per batch capacity. */
#ifndef PARE_GRAPH_EXEC_H
#define PARE_GRAPH_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

typedef struct pare_exec pare_exec;

/* training = 1 keeps every activation for backward and allocates gradients;
 * training = 0 reuses activation buffers by liveness (inference). */
pare_status pare_exec_new(pare_graph *g, int batch, int training, int threads, pare_exec **out);
void pare_exec_free(pare_exec *e);

int pare_exec_batch(const pare_exec *e);
/* batch x input size floats, NCHW. */
float *pare_exec_input(pare_exec *e);
/* eval = 1: the next forwards of a training executor run as inference does
 * (batch norm from running statistics, which stay untouched; no dropout), with
 * every value kept (probes of the activations); backward must not follow. */
void pare_exec_set_eval(pare_exec *e, int eval);
/* Runs the graph on the first n samples of the input. step_seed feeds dropout. */
void pare_exec_forward(pare_exec *e, int n, uint64_t step_seed);
/* Runs only the nodes after `start` (0: every node, as pare_exec_forward). The
 * caller has put start's value for the n samples in pare_exec_value_buf(e,
 * start), and no later node may read a node before start (a cut, such as
 * pare_exec_fixed_prefix returns). */
void pare_exec_forward_from(pare_exec *e, int n, uint64_t step_seed, int start);
/* Runs the nodes after start up to end only, on n samples (the values of later
 * nodes are left as they were). */
void pare_exec_forward_range(pare_exec *e, int n, uint64_t step_seed, int start, int end);
/* The deepest node, short of the output, whose value for a sample training
 * cannot change from step to step (everything up to it is frozen or has no
 * parameters: no dropout, fake quantization, batch norm on batch statistics,
 * or linear layer, whose rounding may depend on the batch's size) and that is
 * a cut: no later node reads a node before it. 0 when there is none. A conv
 * computes each sample alone when the batch has at least as many samples as
 * the executor has threads (fewer: the threads share each sample's product),
 * so a sample's value there is the same bits in any such batch. */
int pare_exec_fixed_prefix(const pare_exec *e);
int pare_exec_threads(const pare_exec *e);
/* The value buffer of node v, writable (batch x its size floats). */
float *pare_exec_value_buf(pare_exec *e, int v);
const float *pare_exec_output(const pare_exec *e);
/* Where the loss writes d(loss)/d(output) before pare_exec_backward (training only). */
float *pare_exec_output_grad(pare_exec *e);
/* Backpropagates to every trainable, unfrozen parameter. Layers whose inputs
 * and parameters need no gradient (a frozen prefix) are skipped entirely. */
void pare_exec_backward(pare_exec *e, int n);
/* on = 1: each parameter's weight gradient is computed only where its pruning
 * mask keeps the weight and is exactly 0 elsewhere (conv and linear skip the
 * work when the layer is sparse enough for that to be faster). Off by default:
 * pruning methods that score weights by their gradients need them all. */
void pare_exec_set_sparse_grads(pare_exec *e, int on);
/* An explicit gradient mask for one parameter (1: compute, 0: leave exactly 0),
 * used instead of the pruning mask whatever the switch above says; NULL restores
 * the default. The executor borrows m: it must live until it is replaced. */
void pare_exec_set_grad_mask(pare_exec *e, int param, const uint8_t *m);
/* The gradient of a parameter from the last backward, or NULL when the parameter
 * is not trainable or was frozen during that backward. */
float *pare_exec_param_grad(pare_exec *e, int param);
/* Bytes of activations, gradients, workspaces and saved state. */
size_t pare_exec_bytes(const pare_exec *e);
/* Value buffer of node v after forward (training mode: every node). */
const float *pare_exec_value(const pare_exec *e, int v);

/* Per-layer time accumulators in seconds (forward, backward); reset with reset=1. */
void pare_exec_profile(pare_exec *e, int enable);
void pare_exec_profile_get(const pare_exec *e, int node, double *fwd, double *bwd);

#endif
