/* Internal parts of the trainer shared with evaluation and the command. */
#ifndef PARE_TRAIN_TRAINER_H
#define PARE_TRAIN_TRAINER_H

#include "graph/graph.h"

/* The dataset's sample shape and classes fit the graph; one sentence if not. */
pare_status pare_check_data_fits(const pare_graph *g, const pare_dataset *ds);
/* pare_evaluate with EVAL progress events built from proto (may be NULL). */
pare_status pare_evaluate_cb(pare_graph *g, const pare_dataset *ds, int batch, int threads,
                             pare_eval_result *out, pare_train_callback cb, void *user,
                             const pare_train_event *proto);

/* Tags of the checkpoint sections. */
#define PARE_CKPT_STATE "TRST"
#define PARE_CKPT_OPTIM "OPTS"

#endif
