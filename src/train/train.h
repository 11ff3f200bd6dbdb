/* Optimizers and learning-rate schedules, used by the trainer (and later by
 * pruning and efficient-training loops). */
#ifndef PARE_TRAIN_TRAIN_H
#define PARE_TRAIN_TRAIN_H

#include "core/bytes.h"
#include "graph/exec.h"
#include "graph/graph.h"

typedef struct pare_optim pare_optim;

pare_status pare_optim_new(const pare_graph *g, const pare_train_config *c, pare_optim **out);
void pare_optim_free(pare_optim *o);
/* One update of every trainable, unfrozen parameter from the executor's
 * gradients, at learning rate lr. Masked weights (param.mask) stay exactly
 * zero and their gradients and state are masked. */
void pare_optim_step(pare_optim *o, pare_graph *g, pare_exec *e, float lr, int threads);
/* The same, leaving the parameters with skip[p] != 0 alone (their own update
 * is the caller's, e.g. BiP's dense weights behind a mask). */
void pare_optim_step_skip(pare_optim *o, pare_graph *g, pare_exec *e, float lr, int threads,
                          const uint8_t *skip);
/* The optimizer state as bytes, and back (same graph layout required). */
void pare_optim_save(const pare_optim *o, pare_wbuf *b);
pare_status pare_optim_load(pare_optim *o, pare_rbuf *r);
/* Clears the state of parameter p (e.g. after its mask changed). */
void pare_optim_reset_param(pare_optim *o, int p);

/* The learning rate before optimizer step `step` (0-based) of `total`. */
double pare_lr_at(const pare_train_config *c, long step, long total, long steps_per_epoch);

#endif
