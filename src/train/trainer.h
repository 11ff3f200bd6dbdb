/* Internal parts of the trainer shared with evaluation and the command. */
#ifndef PARE_TRAIN_TRAINER_H
#define PARE_TRAIN_TRAINER_H

#include "core/bytes.h"
#include "graph/graph.h"

/* The dataset's sample shape and classes fit the graph; one sentence if not. */
pare_status pare_check_data_fits(const pare_graph *g, const pare_dataset *ds);
/* pare_evaluate with EVAL progress events built from proto (may be NULL). */
pare_status pare_evaluate_cb(pare_graph *g, const pare_dataset *ds, int batch, int threads,
                             pare_eval_result *out, pare_train_callback cb, void *user,
                             const pare_train_event *proto);

/* Hooks for methods that change training (pruning, ADMM, efficient training).
 * Called on every optimizer step of pare_trainer_run and pare_trainer_step. */
typedef struct pare_train_hooks {
    void *user;
    /* After backward, before the optimizer step: may change the gradients
     * (pare_exec_param_grad on pare_trainer_exec). */
    void (*after_backward)(pare_trainer *t, void *user);
    /* After the optimizer step: may change weights and masks. */
    void (*after_step)(pare_trainer *t, void *user);
    /* When set, the learning rate of step `step` (0-based) of `total`,
     * instead of the configured schedule. */
    double (*lr)(long step, long total, long steps_per_epoch, void *user);
    /* When set, the method's own state goes into the trainer's checkpoints
     * (save) and comes back on resume (load, after the weights, the optimizer
     * and the efficient-training state), so a resumed run is bit-identical. */
    void (*save)(pare_wbuf *w, void *user);
    pare_status (*load)(pare_rbuf *r, void *user);
} pare_train_hooks;

void pare_trainer_set_hooks(pare_trainer *t, const pare_train_hooks *h);

/* Trains g for `epochs` epochs (none when epochs <= 0) of base's recipe, no
 * checkpoints, with hooks (may be NULL), evaluating on test (may be NULL)
 * after each; *acc (may be NULL) gets the last epoch's test accuracy. For
 * methods that train inside (pruning, weight sharing). */
pare_status pare_train_epochs(pare_graph *g, const pare_train_config *base, int epochs, const pare_train_hooks *hooks,
                              const pare_dataset *train, const pare_dataset *test, double *acc);
/* g's accuracy on test with base's batch and threads; -1 with no test set or
 * when evaluation fails. */
double pare_test_accuracy(pare_graph *g, const pare_dataset *test, const pare_train_config *base);
struct pare_exec *pare_trainer_exec(pare_trainer *t);
struct pare_optim *pare_trainer_optim(pare_trainer *t);
pare_graph *pare_trainer_graph(pare_trainer *t);
/* Steps per epoch and in all, known once pare_trainer_run has seen the data. */
long pare_trainer_steps_per_epoch(const pare_trainer *t);
/* Samples in the current step (the executor's buffers hold that many valid
 * ones; a hook reading activations must not look further). */
int pare_trainer_step_samples(const pare_trainer *t);

/* Tags of the checkpoint sections. */
#define PARE_CKPT_STATE "TRST"
#define PARE_CKPT_OPTIM "OPTS"

#endif
