/* Pruning methods on top of the plan: one-shot magnitude, gradual magnitude
 * pruning (cubic schedule), iterative magnitude pruning with weight or
 * learning-rate rewinding, ADMM (one-shot and progressive) with any scheme as
 * its projection, and BiP (bi-level: mask scores with the implicit-gradient
 * term). Every method ends with the masks in the graph; fine-tuning keeps
 * them (the optimizer masks gradients, decay and state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/data.h"
#include "graph/exec.h"
#include "ops/loss.h"
#include "train/train.h"
#include "train/trainer.h"

void pare_prune_config_init(pare_prune_config *c)
{
    memset(c, 0, sizeof *c);
    c->method = PARE_PRUNE_ONESHOT;
    pare_train_config_init(&c->train);
    c->train.lr = 0.01f; /* fine-tuning: the peer's recipe (lr 0.01, cosine) */
    c->finetune_epochs = 2;
    c->gmp_ramp = 0.75;
    c->gmp_updates = 16;
    c->imp_rate = 0.2;
    c->admm_epochs = 2;
    c->rho = 1e-2f; /* 1e-4 in ADMM-NN, with 24 ADMM epochs; with 2, W must be pulled harder */
    c->rho_steps = 4;
    c->stages = 2;
    c->bip_epochs = 2;
    c->bip_lambda = 1e-4f;
    c->bip_mask_lr = 0.1f;
}

static double *layer_targets(const pare_prune_plan *plan, double frac_of_density)
{
    /* The stage of a geometric path to the target: density d^frac. */
    double *t = malloc(sizeof(double) * (size_t)(plan->n ? plan->n : 1));
    if (!t)
        return NULL;
    for (int i = 0; i < plan->n; i++) {
        double final = plan->global ? plan->sparsity : plan->l[i].target;
        t[i] = 1.0 - pow(1.0 - final, frac_of_density);
    }
    return t;
}

/* ---- GMP ----------------------------------------------------------------- */

typedef struct gmp_state {
    pare_prune_plan *plan;
    long ramp_steps, every;
    pare_status err;
} gmp_state;

static void gmp_after_step(pare_trainer *t, void *user)
{
    gmp_state *st = user;
    long step = pare_trainer_global_step(t);
    if (st->err || step > st->ramp_steps || (step % st->every != 0 && step != st->ramp_steps))
        return;
    double p = (double)step / (double)st->ramp_steps;
    if (p > 1)
        p = 1;
    double *targets = malloc(sizeof(double) * (size_t)st->plan->n);
    if (!targets) {
        st->err = pare_fail(PARE_ENOMEM, "out of memory");
        return;
    }
    /* Zhu & Gupta: s_t = s_f * (1 - (1 - t/T)^3). */
    for (int i = 0; i < st->plan->n; i++) {
        double final = st->plan->global ? st->plan->sparsity : st->plan->l[i].target;
        targets[i] = final * (1.0 - pow(1.0 - p, 3.0));
    }
    st->err = pare_prune_apply(pare_trainer_graph(t), st->plan, targets, NULL);
    free(targets);
}

/* ---- ADMM ---------------------------------------------------------------- */

/* The loop is the same for every constraint set; only the projection differs
 * (a sparsity scheme here, a quantization grid in compress/quant.c). */
typedef struct admm_state {
    const pare_admm_problem *p;
    pare_graph *g;
    float **Z, **U, **WU;
    float rho, rho0;
    int rho_steps, period;
    long period_steps, step0;
    double lr;
    pare_status err;
} admm_state;

static void admm_free(admm_state *a)
{
    for (int i = 0; i < a->p->n; i++) {
        if (a->Z)
            pare_free(a->Z[i]);
        if (a->U)
            pare_free(a->U[i]);
        if (a->WU)
            pare_free(a->WU[i]);
    }
    free(a->Z);
    free(a->U);
    free(a->WU);
}

/* Z = projection of (W + U); U += W - Z. */
static pare_status admm_update_zu(admm_state *a, int first)
{
    for (int i = 0; i < a->p->n; i++) {
        const pare_tensor *w = a->g->params[a->p->params[i]].t;
        for (size_t k = 0; k < w->n; k++)
            a->WU[i][k] = w->data[k] + (first ? 0.0f : a->U[i][k]);
    }
    pare_status s = a->p->project(a->p->user, a->g, (const float *const *)a->WU, a->Z);
    if (s != PARE_OK)
        return s;
    for (int i = 0; i < a->p->n; i++) {
        const pare_tensor *w = a->g->params[a->p->params[i]].t;
        for (size_t k = 0; k < w->n; k++)
            a->U[i][k] = first ? 0.0f : a->U[i][k] + w->data[k] - a->Z[i][k];
    }
    return PARE_OK;
}

static void admm_after_backward(pare_trainer *t, void *user)
{
    admm_state *a = user;
    pare_exec *e = pare_trainer_exec(t);
    /* d/dW of rho/2 ||W - Z + U||^2 */
    for (int i = 0; i < a->p->n; i++) {
        int p = a->p->params[i];
        float *gr = pare_exec_param_grad(e, p);
        if (!gr)
            continue;
        const pare_tensor *w = a->g->params[p].t;
        for (size_t k = 0; k < w->n; k++)
            gr[k] += a->rho * (w->data[k] - a->Z[i][k] + a->U[i][k]);
    }
}

static void admm_after_step(pare_trainer *t, void *user)
{
    admm_state *a = user;
    long step = pare_trainer_global_step(t);
    if (a->err || step % a->period_steps != 0)
        return;
    a->err = admm_update_zu(a, 0);
    a->period++;
    int i = a->period < a->rho_steps ? a->period : a->rho_steps - 1;
    a->rho = a->rho0 * powf(10.0f, (float)i);
}

/* The learning rate restarts each period and drops x0.1 at 1/3 and 2/3 of it. */
static double admm_lr(long step, long total, long spe, void *user)
{
    (void)total;
    (void)spe;
    admm_state *a = user;
    double pos = (double)(step % a->period_steps) / (double)a->period_steps;
    return a->lr * (pos < 1.0 / 3 ? 1.0 : pos < 2.0 / 3 ? 0.1 : 0.01);
}

pare_status pare_admm_run(pare_graph *g, const pare_admm_problem *p, const pare_prune_config *c,
                          const pare_dataset *train, const pare_dataset *test, float *const *v_out)
{
    if (!g || !p || !p->project || !c || !train || (p->n > 0 && !p->params))
        return pare_fail(PARE_EINVAL, "ADMM needs a model, layers, a projection and training data");
    admm_state a;
    memset(&a, 0, sizeof a);
    a.p = p;
    a.g = g;
    a.rho0 = a.rho = c->rho;
    a.rho_steps = c->rho_steps > 0 ? c->rho_steps : 1;
    a.lr = c->train.lr;
    size_t np = (size_t)(p->n ? p->n : 1);
    a.Z = calloc(np, sizeof(float *));
    a.U = calloc(np, sizeof(float *));
    a.WU = calloc(np, sizeof(float *));
    pare_status s = (a.Z && a.U && a.WU) ? PARE_OK : pare_fail(PARE_ENOMEM, "out of memory");
    for (int i = 0; i < p->n && s == PARE_OK; i++) {
        size_t n = g->params[p->params[i]].t->n;
        a.Z[i] = pare_alloc_array(n, sizeof(float), 1);
        a.U[i] = pare_alloc_array(n, sizeof(float), 1);
        a.WU[i] = pare_alloc_array(n, sizeof(float), 1);
        if (!a.Z[i] || !a.U[i] || !a.WU[i])
            s = pare_fail(PARE_ENOMEM, "out of memory for ADMM's variables");
    }
    if (s == PARE_OK)
        s = admm_update_zu(&a, 1);
    if (s == PARE_OK) {
        long spe = (train->n + c->train.batch - 1) / c->train.batch;
        long total = spe * (long)c->admm_epochs;
        a.period_steps = total / a.rho_steps > 0 ? total / a.rho_steps : 1;
        pare_train_hooks h = {.user = &a, .after_backward = admm_after_backward, .after_step = admm_after_step, .lr = admm_lr};
        s = pare_train_epochs(g, &c->train, c->admm_epochs, &h, train, test, NULL);
        if (s == PARE_OK)
            s = a.err;
    }
    /* The last Z and U, so the caller's hard projection sees the final W + U. */
    if (s == PARE_OK)
        s = admm_update_zu(&a, 0);
    if (s == PARE_OK && v_out)
        for (int i = 0; i < p->n; i++)
            memcpy(v_out[i], a.WU[i], sizeof(float) * g->params[p->params[i]].t->n);
    admm_free(&a);
    return s;
}

/* Pruning's projection: the scheme's mask of the scores W + U at the targets,
 * and Z = W + U on the kept weights, 0 elsewhere. */
typedef struct prune_proj {
    pare_prune_plan *plan;
    const double *targets;
    uint8_t **mk;
} prune_proj;

static pare_status prune_project(void *user, const pare_graph *g, const float *const *v, float *const *z)
{
    prune_proj *pp = user;
    pare_status s = pare_prune_masks(g, pp->plan, pp->targets, v, pp->mk);
    if (s != PARE_OK)
        return s;
    for (int i = 0; i < pp->plan->n; i++) {
        size_t n = g->params[pp->plan->l[i].param].t->n;
        for (size_t k = 0; k < n; k++)
            z[i][k] = pp->mk[i][k] ? v[i][k] : 0.0f;
    }
    return PARE_OK;
}

static pare_status admm_stage(pare_graph *g, pare_prune_plan *plan, const double *targets,
                              const pare_prune_config *c, const pare_dataset *train, const pare_dataset *test)
{
    size_t np = (size_t)(plan->n ? plan->n : 1);
    int *params = malloc(sizeof(int) * np);
    uint8_t **mk = calloc(np, sizeof(uint8_t *));
    float **wu = calloc(np, sizeof(float *));
    pare_status s = (params && mk && wu) ? PARE_OK : pare_fail(PARE_ENOMEM, "out of memory");
    for (int i = 0; i < plan->n && s == PARE_OK; i++) {
        size_t n = g->params[plan->l[i].param].t->n;
        params[i] = plan->l[i].param;
        mk[i] = malloc(n ? n : 1);
        wu[i] = pare_alloc_array(n, sizeof(float), 1);
        if (!mk[i] || !wu[i])
            s = pare_fail(PARE_ENOMEM, "out of memory for ADMM's variables");
    }
    prune_proj pp = {plan, targets, mk};
    pare_admm_problem prob = {plan->n, params, prune_project, &pp};
    if (s == PARE_OK)
        s = pare_admm_run(g, &prob, c, train, test, wu);
    /* Hard-prune to the support of the last Z. */
    if (s == PARE_OK)
        s = pare_prune_apply(g, plan, targets, (const float *const *)wu);
    for (int i = 0; i < plan->n; i++) {
        if (mk)
            free(mk[i]);
        if (wu)
            pare_free(wu[i]);
    }
    free(mk);
    free(wu);
    free(params);
    return s;
}

/* ---- BiP ----------------------------------------------------------------- */

/* Scores are signed (top-k of s, not of |s|); the projections rank by
 * magnitude, so they get s shifted to be non-negative. */
static void shift_scores(const float *s, float *out, size_t n)
{
    float lo = 0;
    for (size_t k = 0; k < n; k++)
        if (s[k] < lo)
            lo = s[k];
    for (size_t k = 0; k < n; k++)
        out[k] = s[k] - lo;
}

static pare_status bip_run(pare_graph *g, pare_prune_plan *plan, const pare_prune_config *c,
                           const pare_dataset *train)
{
    int n = plan->n, batch = c->train.batch;
    int threads = pare_threads_resolve(c->train.threads);
    size_t np = (size_t)(n ? n : 1);
    float **theta = calloc(np, sizeof(float *)), **score = calloc(np, sizeof(float *));
    float **shifted = calloc(np, sizeof(float *)), **buf = calloc(np, sizeof(float *));
    uint8_t **mk = calloc(np, sizeof(uint8_t *));
    uint8_t *skip = calloc((size_t)g->n_params + 1, 1);
    long *perm = malloc(sizeof(long) * (size_t)train->n);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)batch);
    pare_exec *e = NULL;
    pare_optim *opt = NULL;
    pare_status s = PARE_OK;
    if (!theta || !score || !shifted || !buf || !mk || !skip || !perm || !labels) {
        s = pare_fail(PARE_ENOMEM, "out of memory for BiP");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        pare_param *p = &g->params[plan->l[i].param];
        size_t m = p->t->n;
        theta[i] = pare_alloc_array(m, sizeof(float), 0);
        score[i] = pare_alloc_array(m, sizeof(float), 0);
        shifted[i] = pare_alloc_array(m, sizeof(float), 0);
        buf[i] = pare_alloc_array(m, sizeof(float), 1);
        mk[i] = malloc(m ? m : 1);
        if (!theta[i] || !score[i] || !shifted[i] || !buf[i] || !mk[i]) {
            s = pare_fail(PARE_ENOMEM, "out of memory for BiP");
            goto done;
        }
        memcpy(theta[i], p->t->data, m * sizeof(float));
        for (size_t k = 0; k < m; k++)
            score[i][k] = fabsf(theta[i][k]); /* scores start at |w| */
        skip[plan->l[i].param] = 1;
    }
    if ((s = pare_prune_masks(g, plan, NULL, (const float *const *)score, mk)) != PARE_OK)
        goto done;
    if ((s = pare_exec_new(g, batch, 1, threads, &e)) != PARE_OK)
        goto done;
    if ((s = pare_optim_new(g, &c->train, &opt)) != PARE_OK)
        goto done;
    int k_out = g->nodes[g->output].out.c;
    long spe = (train->n + batch - 1) / batch, pairs = spe / 2 > 0 ? spe / 2 : 1;
    long total = pairs * c->bip_epochs, step = 0;
    float lam = c->bip_lambda, mlr = c->bip_mask_lr, mom = c->train.momentum, wd = c->train.weight_decay;
    pare_augment aug = {c->train.augment_crop_pad, c->train.augment_hflip};
    const pare_augment *augp = (aug.crop_pad || aug.hflip) ? &aug : NULL;
    for (int ep = 0; ep < c->bip_epochs; ep++) {
        pare_data_permutation(train->n, c->train.seed, (uint64_t)(1000 + ep), perm);
        for (long pr = 0; pr < pairs; pr++, step++) {
            float lr = (float)(c->train.lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)step / (double)total)));
            for (int half = 0; half < 2; half++) {
                long start = (2 * pr + half) % spe * batch;
                int m = (int)(train->n - start < batch ? train->n - start : batch);
                pare_data_batch(train, perm + start, m, pare_exec_input(e), labels, augp, c->train.seed,
                                (uint64_t)(1000 + ep), threads);
                for (int i = 0; i < n; i++) {
                    pare_tensor *w = g->params[plan->l[i].param].t;
                    for (size_t k = 0; k < w->n; k++)
                        w->data[k] = mk[i][k] ? theta[i][k] : 0.0f;
                }
                pare_exec_forward(e, m, pare_hash64(c->train.seed ^ (uint64_t)(2 * step + half)));
                pare_softmax_xent(pare_exec_output(e), labels, m, k_out, pare_exec_output_grad(e), NULL);
                pare_exec_backward(e, m);
                for (int i = 0; i < n; i++) {
                    const float *gw = pare_exec_param_grad(e, plan->l[i].param);
                    size_t sz = g->params[plan->l[i].param].t->n;
                    if (!gw)
                        continue;
                    if (half == 0) {
                        /* theta step: d l(m*theta)/d theta = m * g_w, SGD with momentum */
                        for (size_t k = 0; k < sz; k++) {
                            float gt = (mk[i][k] ? gw[k] : 0.0f) + wd * theta[i][k];
                            buf[i][k] = step == 0 ? gt : mom * buf[i][k] + gt;
                            theta[i][k] -= lr * buf[i][k];
                        }
                    } else {
                        /* mask step: g_m = g_w * theta; implicit gradient -lambda g_m g_theta */
                        for (size_t k = 0; k < sz; k++) {
                            float gm = gw[k] * theta[i][k];
                            float gt = mk[i][k] ? gw[k] : 0.0f;
                            score[i][k] -= mlr * (gm - lam * gm * gt);
                        }
                    }
                }
                if (half == 0)
                    pare_optim_step_skip(opt, g, e, lr, threads, skip);
            }
            for (int i = 0; i < n; i++)
                shift_scores(score[i], shifted[i], g->params[plan->l[i].param].t->n);
            if ((s = pare_prune_masks(g, plan, NULL, (const float *const *)shifted, mk)) != PARE_OK)
                goto done;
        }
    }
    /* The ticket: the last mask on the trained dense weights. */
    for (int i = 0; i < n; i++)
        memcpy(g->params[plan->l[i].param].t->data, theta[i], sizeof(float) * g->params[plan->l[i].param].t->n);
    s = pare_prune_apply(g, plan, NULL, (const float *const *)shifted);
done:
    for (int i = 0; i < n; i++) {
        if (theta)
            pare_free(theta[i]);
        if (score)
            pare_free(score[i]);
        if (shifted)
            pare_free(shifted[i]);
        if (buf)
            pare_free(buf[i]);
        if (mk)
            free(mk[i]);
    }
    free(theta);
    free(score);
    free(shifted);
    free(buf);
    free(mk);
    free(skip);
    free(perm);
    free(labels);
    pare_optim_free(opt);
    pare_exec_free(e);
    return s;
}

/* ---- the driver ---------------------------------------------------------- */

pare_status pare_prune_run(pare_graph *g, pare_prune_plan *plan, const pare_prune_config *c,
                           const pare_dataset *train, const pare_dataset *test, pare_prune_result *r)
{
    memset(r, 0, sizeof *r);
    r->acc_pruned = -1;
    r->acc_final = -1;
    if (!g || !plan || !c)
        return pare_fail(PARE_EINVAL, "pruning needs a model, a plan and a configuration");
    int trains = c->method != PARE_PRUNE_ONESHOT || c->finetune_epochs > 0;
    if (trains && !train)
        return pare_fail(PARE_EINVAL, "the %s method needs training data", pare_prune_method_name(c->method));
    r->acc_before = pare_test_accuracy(g, test, &c->train);
    double t0 = pare_now_s();
    pare_status s = PARE_OK;
    switch (c->method) {
    case PARE_PRUNE_ONESHOT:
        s = pare_prune_apply(g, plan, NULL, NULL);
        r->acc_pruned = pare_test_accuracy(g, test, &c->train);
        break;
    case PARE_PRUNE_GMP: {
        /* The masks grow during fine-tuning; there is no separate phase. */
        gmp_state st = {plan, 0, 1, PARE_OK};
        long spe = (train->n + c->train.batch - 1) / c->train.batch;
        long total = spe * (long)(c->finetune_epochs > 0 ? c->finetune_epochs : 1);
        st.ramp_steps = (long)(c->gmp_ramp * (double)total);
        if (st.ramp_steps < 1)
            st.ramp_steps = 1;
        st.every = st.ramp_steps / (c->gmp_updates > 0 ? c->gmp_updates : 1);
        if (st.every < 1)
            st.every = 1;
        pare_train_hooks h = {.user = &st, .after_step = gmp_after_step};
        s = pare_train_epochs(g, &c->train, c->finetune_epochs > 0 ? c->finetune_epochs : 1, &h, train, test,
                              &r->acc_final);
        if (s == PARE_OK)
            s = st.err;
        if (s == PARE_OK) /* the last update lands at the ramp's end; make sure */
            s = pare_prune_apply(g, plan, NULL, NULL);
        r->seconds_finetune = pare_now_s() - t0;
        r->acc_final = pare_test_accuracy(g, test, &c->train);
        return s;
    }
    case PARE_PRUNE_IMP: {
        pare_graph *rewind = NULL;
        if (!c->rewind_lr) {
            s = pare_graph_clone(c->rewind_to ? c->rewind_to : g, &rewind);
            if (s != PARE_OK)
                return s;
            if (rewind->n_params != g->n_params) {
                pare_graph_free(rewind);
                return pare_fail(PARE_EINVAL, "the rewind model is not this model");
            }
        }
        double goal = 1.0;
        for (int i = 0; i < plan->n; i++) {
            double t = plan->global ? plan->sparsity : plan->l[i].target;
            if (1 - t < goal)
                goal = 1 - t;
        }
        int rounds = c->imp_rounds;
        if (rounds <= 0)
            rounds = goal < 1 ? (int)ceil(log(goal) / log(1 - c->imp_rate) - 1e-9) : 1;
        if (rounds < 1)
            rounds = 1;
        r->rounds = rounds;
        for (int k = 1; k <= rounds && s == PARE_OK; k++) {
            double *targets = layer_targets(plan, (double)k / rounds);
            if (!targets)
                return pare_fail(PARE_ENOMEM, "out of memory");
            s = pare_prune_apply(g, plan, targets, NULL);
            free(targets);
            if (s != PARE_OK)
                break;
            if (rewind) {
                /* Weight rewinding: every parameter back to the rewind point,
                 * the survivors of pruned layers included, the pruned ones 0. */
                for (int p = 0; p < g->n_params; p++) {
                    pare_param *dp = &g->params[p];
                    const pare_param *sp = &rewind->params[p];
                    for (size_t e = 0; e < dp->t->n; e++)
                        dp->t->data[e] = (dp->mask && !dp->mask[e]) ? 0.0f : sp->t->data[e];
                }
            }
            if (k == rounds)
                r->acc_pruned = pare_test_accuracy(g, test, &c->train);
            if (k < rounds)
                s = pare_train_epochs(g, &c->train, c->finetune_epochs, NULL, train, test, NULL);
        }
        pare_graph_free(rewind);
        break;
    }
    case PARE_PRUNE_ADMM:
        s = admm_stage(g, plan, NULL, c, train, test);
        r->rounds = 1;
        r->acc_pruned = pare_test_accuracy(g, test, &c->train);
        break;
    case PARE_PRUNE_ADMM_PROGRESSIVE: {
        int k = c->stages > 0 ? c->stages : 1;
        r->rounds = k;
        for (int j = 1; j <= k && s == PARE_OK; j++) {
            double *targets = layer_targets(plan, (double)j / k);
            if (!targets)
                return pare_fail(PARE_ENOMEM, "out of memory");
            s = admm_stage(g, plan, targets, c, train, test);
            free(targets);
        }
        r->acc_pruned = pare_test_accuracy(g, test, &c->train);
        break;
    }
    case PARE_PRUNE_BIP:
        s = bip_run(g, plan, c, train);
        r->acc_pruned = pare_test_accuracy(g, test, &c->train);
        break;
    default:
        return pare_fail(PARE_EINVAL, "unknown pruning method %d", (int)c->method);
    }
    if (s != PARE_OK)
        return s;
    r->seconds_prune = pare_now_s() - t0;
    double t1 = pare_now_s();
    r->acc_final = r->acc_pruned;
    if (c->finetune_epochs > 0 && train)
        s = pare_train_epochs(g, &c->train, c->finetune_epochs, NULL, train, test, &r->acc_final);
    r->seconds_finetune = pare_now_s() - t1;
    return s;
}
