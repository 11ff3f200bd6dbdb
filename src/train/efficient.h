/* Efficient training (pare_efficiency): the state and decisions of sparse
 * training, layer freezing, data sieving and removal, mini-batch dropping and
 * gradient masking, driven by the trainer at fixed points of its loop, and the
 * FLOP count of what each step really computed. Every decision is a function
 * of (seed, step, example) and of state saved in checkpoints, so a resumed run
 * ends with the same bytes. */
#ifndef PARE_TRAIN_EFFICIENT_H
#define PARE_TRAIN_EFFICIENT_H

#include "core/bytes.h"
#include "graph/exec.h"
#include "graph/graph.h"

typedef struct pare_eff pare_eff;

/* A conv or linear layer with the batch norm that follows it (bn -1: none). */
typedef struct pare_unit {
    int node, bn;
    int weight;          /* its weight parameter */
} pare_unit;

/* Checks the options (one sentence naming the bad one). */
pare_status pare_eff_check(const pare_efficiency *o);
/* 1 when any technique is on. */
int pare_eff_any(const pare_efficiency *o);

/* State for training g on n_train examples for `epochs` epochs of `batch`. */
pare_status pare_eff_new(pare_graph *g, const pare_train_config *c, long n_train, pare_eff **out);
void pare_eff_free(pare_eff *e);

/* Steps of epoch `epoch` (0-based) and of the whole run, known in advance. */
long pare_eff_epoch_steps(const pare_eff *e, int epoch);
long pare_eff_total_steps(const pare_eff *e);

/* Sets the initial sparse masks (a fresh run; a resumed one has them already). */
pare_status pare_eff_start(pare_eff *e);
/* An epoch begins (fresh: at its first step, not resumed inside it): freezing
 * due now, and the order of its examples (written to order, which holds
 * n_train; returns how many). */
long pare_eff_epoch_begin(pare_eff *e, int epoch, int fresh, long *order);
/* 1 when the batch of this global step is dropped. */
int pare_eff_skip_batch(const pare_eff *e, long step);
/* Before the step's forward: which gradients backward must compute. */
void pare_eff_before_step(pare_eff *e, pare_exec *x, long step);
/* The step's forward on the batch idx[0..n) (idx NULL: no cache). With the
 * frozen prefix's cache (cache_frozen_mb), examples whose activations at the
 * prefix's end are stored start there; those stored at a shallower end (before
 * more units froze, still right) run from that end; the rest run the prefix
 * on their own, and join the store while it has room. Stores are keyed by a
 * hash of the prefix's parameters, so a change there empties them. Returns
 * the examples that started from a store. */
long pare_eff_forward(pare_eff *e, pare_exec *x, const long *idx, int n, uint64_t seed);
/* After forward: per-example correctness (forgetting events). */
void pare_eff_after_forward(pare_eff *e, const long *idx, const float *logits, const int32_t *labels,
                            int n, int classes);
/* After backward, before the optimizer: gradient masking, growth scores. */
void pare_eff_after_backward(pare_eff *e, pare_exec *x, long step);
/* After the optimizer: mask updates; CKA checks that are due (probe runs on x). */
pare_status pare_eff_after_step(pare_eff *e, pare_exec *x, long step);
/* An epoch ended: sieving, data removal, an epoch-end CKA check. */
pare_status pare_eff_epoch_end(pare_eff *e, pare_exec *x, int epoch);
/* The probe batch for CKA (the trainer fills it once: idx[0..n) of the training set). */
int pare_eff_probe(const pare_eff *e, const long **idx);
void pare_eff_set_probe_data(pare_eff *e, const float *x);

/* FLOPs of a training step on n examples of g as the executor runs it now
 * (frozen layers, sparse kernels, gradient masks and the cache's start of e,
 * which may be NULL), and
 * of the same step densely with nothing frozen. */
void pare_train_flops(const pare_graph *g, const pare_eff *e, int n, double *flops, double *dense);
/* Epoch-end facts for pare_epoch_stats (e may be NULL). */
void pare_train_stats(const pare_graph *g, const pare_eff *e, long *out_of_set, int *frozen, int *units,
                      double *sparsity);

/* Training ended: units frozen by the policies get back the frozen flags the
 * model came with (a saved model is not left half frozen by a schedule). */
void pare_eff_end(pare_eff *e);
/* Unfreezes every unit frozen by the policies, as pare_eff_end, and forgets
 * the CKA snapshots (a scenario change, online). */
void pare_eff_unfreeze(pare_eff *e);
/* Linear CKA of two activation matrices (n rows of d and of d2 values),
 * computed from their centred Gram matrices; exposed for tests. */
double pare_linear_cka(const float *x, int d, const float *y, int d2, int n);

/* The state as bytes and back (same graph and options). */
void pare_eff_save(const pare_eff *e, pare_wbuf *b);
pare_status pare_eff_load(pare_eff *e, pare_rbuf *r);

/* The units of a graph in order; returns their count (units may be NULL). */
int pare_units(const pare_graph *g, pare_unit *units);

#endif
