/* Pruning: which layers get which scheme and ratio (the plan), masks applied
 * in one shot, and the methods that prune during training (GMP, IMP, ADMM,
 * BiP). */
#ifndef PARE_COMPRESS_PRUNE_H
#define PARE_COMPRESS_PRUNE_H

#include "compress/compress.h"

typedef struct pare_prune_layer {
    int node, param;          /* the layer and its weight */
    pare_scheme scheme;
    double target;            /* sparsity asked for this layer */
    double reached;           /* sparsity of its mask after the last application */
} pare_prune_layer;

typedef struct pare_prune_plan {
    int n;
    pare_prune_layer *l;
    int global;               /* one ranking across layers (unstructured only) */
    double sparsity;          /* the global target (of the planned weights) */
} pare_prune_plan;

typedef struct pare_prune_options {
    const char *scheme;       /* a scheme (pare_scheme_parse) or "auto" */
    double sparsity;          /* < 0: only the layers a ratio file names are pruned */
    int global;               /* rank all layers' weights together (unstructured) */
    const char *ratios_path;  /* per-layer "name sparsity [scheme]" lines, or NULL */
    int exempt_first;         /* leave the first conv/linear dense */
    int exempt_last;          /* leave the last conv/linear dense */
} pare_prune_options;

/* Builds the plan: every conv and linear weight (depthwise convs only when a
 * scheme that fits them is asked explicitly), with its scheme and target.
 * "auto" follows the research's rules: 3x3 convs get patterns, 1x1 convs and
 * linear layers blocks (8x4 when the GEMM view has >= 65536 weights, else
 * 4x4), other kernels block-punched 8x4, depthwise convs are left dense, and
 * the first and last layers get half the ratio. Pattern libraries are built
 * from the current weights. An impossible request is one sentence. */
pare_status pare_prune_plan_new(const pare_graph *g, const pare_prune_options *o,
                                pare_prune_plan *plan);
void pare_prune_plan_free(pare_prune_plan *plan);

/* Masks each planned layer at targets[i] (NULL: the plan's targets), scored by
 * scores[i] (NULL or a NULL entry: the weights), zeroes the pruned weights,
 * records the scheme on the parameter and the reached sparsity in the plan.
 * With plan->global (unstructured), one threshold over all layers' scores
 * keeps exactly the global count. */
pare_status pare_prune_apply(pare_graph *g, pare_prune_plan *plan, const double *targets,
                             const float *const *scores);

/* The masks pare_prune_apply would set, written to masks[i] (one byte per
 * weight of layer i) without touching the graph. */
pare_status pare_prune_masks(const pare_graph *g, const pare_prune_plan *plan, const double *targets,
                             const float *const *scores, uint8_t *const *masks);

/* Sparsity over the planned weights (masked or zero). */
double pare_prune_sparsity(const pare_graph *g, const pare_prune_plan *plan);

typedef enum pare_prune_method {
    PARE_PRUNE_ONESHOT = 0,
    PARE_PRUNE_GMP,           /* gradual magnitude pruning, cubic schedule */
    PARE_PRUNE_IMP,           /* iterative magnitude pruning with rewinding */
    PARE_PRUNE_ADMM,
    PARE_PRUNE_ADMM_PROGRESSIVE,
    PARE_PRUNE_BIP,
    PARE_PRUNE__COUNT
} pare_prune_method;

const char *pare_prune_method_name(pare_prune_method m);
int pare_prune_method_find(const char *name);

typedef struct pare_prune_config {
    pare_prune_method method;
    pare_train_config train;  /* recipe of every training phase (epochs: fine-tuning) */
    int finetune_epochs;      /* masked retraining after pruning (per IMP round) */
    /* GMP: the ratio ramps over the first gmp_ramp of the fine-tuning steps */
    double gmp_ramp;          /* 0.75 */
    int gmp_updates;          /* mask updates during the ramp (16) */
    /* IMP */
    int imp_rounds;           /* 0: enough rounds of imp_rate to reach the target */
    double imp_rate;          /* fraction of the remaining weights pruned per round (0.2) */
    int rewind_lr;            /* 1: keep the weights, replay the schedule; 0: rewind weights */
    const pare_graph *rewind_to;  /* weights to rewind to (NULL: the weights before pruning) */
    /* ADMM */
    int admm_epochs;          /* epochs of ADMM training per stage (2) */
    float rho;                /* initial rho (1e-2), x10 for each of rho_steps periods */
    int rho_steps;            /* 4 */
    int stages;               /* progressive: sparsity stages (2) */
    /* BiP */
    int bip_epochs;           /* 2 */
    float bip_lambda;         /* implicit-gradient weight (1e-4) */
    float bip_mask_lr;        /* score learning rate (0.1) */
} pare_prune_config;

void pare_prune_config_init(pare_prune_config *c);

typedef struct pare_prune_result {
    double acc_before;        /* test accuracy of the input model */
    double acc_pruned;        /* right after the masks took effect (before fine-tuning); -1 n/a */
    double acc_final;         /* after fine-tuning */
    double seconds_prune;     /* wall time of the pruning method (ADMM, GMP, IMP rounds, BiP) */
    double seconds_finetune;  /* wall time of the final fine-tuning */
    int rounds;               /* IMP rounds, ADMM stages */
} pare_prune_result;

/* Prunes g in place by the plan and method, fine-tuning on train and
 * evaluating on test (test may be NULL: accuracies are then -1). */
pare_status pare_prune_run(pare_graph *g, pare_prune_plan *plan, const pare_prune_config *c,
                           const pare_dataset *train, const pare_dataset *test,
                           pare_prune_result *r);

/* ADMM with a pluggable constraint set: the weights params[0..n) are trained
 * with the extra gradient rho (W - Z + U), and Z = project(W + U) (all layers
 * in one call: v[i] and z[i] have layer i's size), U += W - Z at each of
 * rho_steps periods (rho x10 each, the learning rate restarting), as the ADMM
 * pruning method does; the schedule comes from c (train, admm_epochs, rho,
 * rho_steps). Pruning projects onto a sparsity scheme, quantization onto a
 * grid (compress/quant.c). After training, Z and U are updated once more and
 * v_out[i] (may be NULL) gets the final W + U; the weights are left as
 * trained (the caller applies the hard projection). */
typedef struct pare_admm_problem {
    int n;
    const int *params;
    pare_status (*project)(void *user, const pare_graph *g, const float *const *v, float *const *z);
    void *user;
} pare_admm_problem;

pare_status pare_admm_run(pare_graph *g, const pare_admm_problem *p, const pare_prune_config *c,
                          const pare_dataset *train, const pare_dataset *test, float *const *v_out);

#endif
