/* The training loop: shuffled epochs, forward, softmax cross-entropy,
 * backward, optimizer step, evaluation after each epoch, and checkpoints that
 * hold everything a run's future depends on, so a resumed run ends with the
 * same bytes as one that was never interrupted. All randomness is a function
 * of (seed, epoch, step, sample), never of a stream's position. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/data.h"
#include "graph/exec.h"
#include "io/io.h"
#include "ops/loss.h"
#include "train/efficient.h"
#include "train/train.h"
#include "train/trainer.h"

#define STATE_VERSION 3
#define PARE_CKPT_EFF "EFFS"
#define PARE_CKPT_HOOK "HOOK" /* the hooks' method state (QAT's latent weights) */

struct pare_trainer {
    pare_graph *g;
    pare_train_config c;
    char *ckpt_path;
    int threads;
    pare_exec *exec;
    pare_optim *opt;
    int32_t *labels;
    long *perm;
    long train_n;           /* size of the training set the schedule was built for */
    long spe, total;        /* steps per epoch (of the first epoch, for the schedule), in all */
    pare_eff *eff;          /* efficient training, or NULL */
    long *order;            /* the examples of the current epoch, in order */
    double flops, flops_dense; /* of the current epoch so far (saved in checkpoints) */
    long examples;          /* trained on in the current epoch */
    long cached;            /* of them, forwards started from the frozen prefix's cache */
    /* progress, all saved in checkpoints */
    long global_step;
    int epoch;              /* epochs completed */
    long step_in_epoch;     /* steps done in the current epoch */
    double loss_sum;        /* over the current epoch, weighted by samples */
    long correct, seen;
    double epoch_seconds;   /* training-loop time of the current epoch so far */
    int n_hist, cap_hist;
    pare_epoch_stats *hist;
    int n_trace, cap_trace;
    double *trace_x, *trace_y;
    double trace_acc;
    long trace_steps;
    pare_train_hooks hooks;
    int last_n;             /* samples in the step the hooks are called for */
};

void pare_trainer_set_hooks(pare_trainer *t, const pare_train_hooks *h)
{
    if (h)
        t->hooks = *h;
    else
        memset(&t->hooks, 0, sizeof t->hooks);
}

pare_exec *pare_trainer_exec(pare_trainer *t) { return t->exec; }
pare_optim *pare_trainer_optim(pare_trainer *t) { return t->opt; }
pare_graph *pare_trainer_graph(pare_trainer *t) { return t->g; }
long pare_trainer_steps_per_epoch(const pare_trainer *t) { return t->spe; }
int pare_trainer_step_samples(const pare_trainer *t) { return t->last_n; }

static double lr_of(const pare_trainer *t, long step)
{
    long total = t->total > 0 ? t->total : step + 1;
    if (t->hooks.lr)
        return t->hooks.lr(step, total, t->spe, t->hooks.user);
    return pare_lr_at(&t->c, step, total, t->spe);
}

void pare_train_config_init(pare_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 3;
    c->batch = 128;
    c->optimizer = PARE_OPT_SGD;
    c->lr = 0.05f;
    c->momentum = 0.9f;
    c->weight_decay = 5e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->schedule = PARE_SCHED_COSINE;
    c->step_epochs = 30;
    c->step_gamma = 0.1f;
    c->eval_batch = 500;
}

static pare_status check_config(const pare_train_config *c)
{
    if (c->epochs < 1 || c->epochs > 100000)
        return pare_fail(PARE_EINVAL, "epochs must be between 1 and 100000, got %d", c->epochs);
    if (c->batch < 1 || c->batch > 1 << 20)
        return pare_fail(PARE_EINVAL, "batch size must be between 1 and 1048576, got %d", c->batch);
    if (!(c->lr > 0) || !isfinite(c->lr))
        return pare_fail(PARE_EINVAL, "learning rate must be positive, got %g", (double)c->lr);
    if (!(c->momentum >= 0) || !(c->momentum < 1))
        return pare_fail(PARE_EINVAL, "momentum must be in [0, 1), got %g", (double)c->momentum);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return pare_fail(PARE_EINVAL, "weight decay must be >= 0, got %g", (double)c->weight_decay);
    if (c->optimizer != PARE_OPT_SGD && c->optimizer != PARE_OPT_ADAMW)
        return pare_fail(PARE_EINVAL, "unknown optimizer %d", (int)c->optimizer);
    if (c->optimizer == PARE_OPT_ADAMW &&
        (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0)))
        return pare_fail(PARE_EINVAL, "AdamW needs betas in [0, 1) and eps > 0");
    if (c->schedule != PARE_SCHED_CONSTANT && c->schedule != PARE_SCHED_STEP &&
        c->schedule != PARE_SCHED_COSINE)
        return pare_fail(PARE_EINVAL, "unknown schedule %d", (int)c->schedule);
    if (c->warmup_steps < 0)
        return pare_fail(PARE_EINVAL, "warm-up steps must be >= 0");
    if (c->schedule == PARE_SCHED_STEP && (c->step_epochs < 1 || !(c->step_gamma > 0)))
        return pare_fail(PARE_EINVAL, "the step schedule needs step epochs >= 1 and gamma > 0");
    if (c->augment_crop_pad < 0 || c->augment_crop_pad > 64)
        return pare_fail(PARE_EINVAL, "crop padding must be between 0 and 64, got %d", c->augment_crop_pad);
    if (c->checkpoint_every < 0)
        return pare_fail(PARE_EINVAL, "checkpoint interval must be >= 0");
    if ((c->resume || c->checkpoint_every) && !c->checkpoint_path)
        return pare_fail(PARE_EINVAL, "checkpoints and --resume need a checkpoint path");
    if (c->eff.cache_frozen_mb > 0 && (c->augment_crop_pad > 0 || c->augment_hflip))
        return pare_fail(PARE_EINVAL, "--cache-frozen keeps the activations of inputs that repeat, so it cannot be "
                                      "combined with augmentation (--crop, --flip)");
    return pare_eff_check(&c->eff);
}

pare_status pare_trainer_new(pare_graph *g, const pare_train_config *c, pare_trainer **out)
{
    *out = NULL;
    if (!g || !c)
        return pare_fail(PARE_EINVAL, "a trainer needs a graph and a configuration");
    if (g->err)
        return g->err;
    pare_status s = check_config(c);
    if (s != PARE_OK)
        return s;
    pare_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return pare_fail(PARE_ENOMEM, "out of memory");
    t->g = g;
    t->c = *c;
    t->threads = pare_threads_resolve(c->threads);
    t->c.threads = t->threads;
    if (c->checkpoint_path) {
        t->ckpt_path = pare_strdup(c->checkpoint_path);
        if (!t->ckpt_path)
            goto fail;
        t->c.checkpoint_path = t->ckpt_path;
    }
    s = pare_exec_new(g, c->batch, 1, t->threads, &t->exec);
    if (s != PARE_OK)
        goto fail_status;
    s = pare_optim_new(g, c, &t->opt);
    if (s != PARE_OK)
        goto fail_status;
    t->labels = malloc(sizeof(int32_t) * (size_t)c->batch);
    if (!t->labels)
        goto fail;
    *out = t;
    return PARE_OK;
fail:
    s = pare_fail(PARE_ENOMEM, "out of memory creating the trainer");
fail_status:
    pare_trainer_free(t);
    return s;
}

void pare_trainer_free(pare_trainer *t)
{
    if (!t)
        return;
    pare_exec_free(t->exec);
    pare_optim_free(t->opt);
    pare_eff_free(t->eff);
    free(t->order);
    free(t->labels);
    free(t->perm);
    free(t->hist);
    free(t->trace_x);
    free(t->trace_y);
    free(t->ckpt_path);
    free(t);
}

int pare_trainer_epochs_done(const pare_trainer *t) { return t ? t->epoch : 0; }
long pare_trainer_global_step(const pare_trainer *t) { return t ? t->global_step : 0; }

pare_status pare_trainer_epoch_stats(const pare_trainer *t, int epoch, pare_epoch_stats *out)
{
    if (!t || epoch < 1 || epoch > t->n_hist)
        return pare_fail(PARE_EINVAL, "epoch %d has not been trained", epoch);
    *out = t->hist[epoch - 1];
    return PARE_OK;
}

int pare_trainer_trace(const pare_trainer *t, const double **epochs, const double **losses)
{
    *epochs = t->trace_x;
    *losses = t->trace_y;
    return t->n_trace;
}

/* One optimizer step on the batch already in the executor's input; idx names
 * its examples (NULL outside pare_trainer_run). Fails only when an
 * efficient-training update does (a non-finite loss is the caller's to judge). */
static pare_status step_on_input(pare_trainer *t, int n, const long *idx, long *correct, double *loss_out)
{
    pare_graph *g = t->g;
    int k = g->nodes[g->output].out.c;
    uint64_t seed = pare_hash64(t->c.seed ^ pare_hash64((uint64_t)t->global_step + 0x57e9));
    long step = t->global_step;
    t->last_n = n;
    if (t->eff) {
        pare_eff_before_step(t->eff, t->exec, step);
        t->cached += pare_eff_forward(t->eff, t->exec, idx, n, seed);
    } else {
        pare_exec_forward(t->exec, n, seed);
    }
    double f, fd;
    pare_train_flops(g, t->eff, n, &f, &fd);
    t->flops += f;
    t->examples += n;
    if (t->eff && idx)
        pare_eff_after_forward(t->eff, idx, pare_exec_output(t->exec), t->labels, n, k);
    double loss = pare_softmax_xent(pare_exec_output(t->exec), t->labels, n, k,
                                    pare_exec_output_grad(t->exec), correct);
    pare_exec_backward(t->exec, n);
    if (t->eff)
        pare_eff_after_backward(t->eff, t->exec, step);
    if (t->hooks.after_backward)
        t->hooks.after_backward(t, t->hooks.user);
    float lr = (float)lr_of(t, t->global_step);
    pare_optim_step(t->opt, g, t->exec, lr, t->threads);
    t->global_step++;
    *loss_out = loss;
    if (t->eff) {
        pare_status s = pare_eff_after_step(t->eff, t->exec, step);
        if (s != PARE_OK)
            return s;
    }
    if (t->hooks.after_step)
        t->hooks.after_step(t, t->hooks.user);
    return PARE_OK;
}

pare_status pare_trainer_step(pare_trainer *t, const float *x, const int32_t *labels, int n,
                              double *loss_out)
{
    if (!t || !x || !labels || n < 1 || n > t->c.batch)
        return pare_fail(PARE_EINVAL, "a step needs 1 to %d samples and their labels", t ? t->c.batch : 0);
    int k = t->g->nodes[t->g->output].out.c;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return pare_fail(PARE_EINVAL, "label %d of sample %d is outside [0, %d)", labels[i], i, k);
    memcpy(pare_exec_input(t->exec), x, sizeof(float) * pare_shape_size(t->g->nodes[0].out) * (size_t)n);
    memcpy(t->labels, labels, sizeof(int32_t) * (size_t)n);
    double loss = NAN;
    pare_status s = step_on_input(t, n, NULL, NULL, &loss);
    if (s != PARE_OK)
        return s;
    if (loss_out)
        *loss_out = loss;
    return isfinite(loss) ? PARE_OK
                          : pare_fail(PARE_EINVAL, "the loss is not finite (%g): lower the learning rate", loss);
}

/* ---- checkpoints --------------------------------------------------------- */

static void put_fingerprint(pare_wbuf *b, const pare_trainer *t)
{
    const pare_train_config *c = &t->c;
    pare_wbuf_u32(b, (uint32_t)c->epochs);
    pare_wbuf_u32(b, (uint32_t)c->batch);
    pare_wbuf_u32(b, (uint32_t)c->optimizer);
    pare_wbuf_f32(b, c->lr);
    pare_wbuf_f32(b, c->momentum);
    pare_wbuf_u32(b, (uint32_t)c->nesterov);
    pare_wbuf_f32(b, c->weight_decay);
    pare_wbuf_f32(b, c->beta1);
    pare_wbuf_f32(b, c->beta2);
    pare_wbuf_f32(b, c->eps);
    pare_wbuf_u32(b, (uint32_t)c->schedule);
    pare_wbuf_u64(b, (uint64_t)c->warmup_steps);
    pare_wbuf_u32(b, (uint32_t)c->step_epochs);
    pare_wbuf_f32(b, c->step_gamma);
    pare_wbuf_u64(b, c->seed);
    pare_wbuf_u32(b, (uint32_t)c->augment_crop_pad);
    pare_wbuf_u32(b, (uint32_t)c->augment_hflip);
    pare_wbuf_u64(b, (uint64_t)t->train_n);
    const pare_efficiency *o = &c->eff;
    pare_wbuf_f32(b, o->sparse);
    uint64_t h = 0x5c4e;
    for (const char *q = o->sparse_scheme ? o->sparse_scheme : ""; *q; q++)
        h = pare_hash64(h ^ (uint8_t)*q);
    pare_wbuf_u64(b, h);
    pare_wbuf_u64(b, (uint64_t)o->sparse_every);
    pare_wbuf_f32(b, o->sparse_grow);
    pare_wbuf_f32(b, o->sparse_until);
    pare_wbuf_u32(b, (uint32_t)o->sparse_all);
    pare_wbuf_u32(b, (uint32_t)o->freeze_from);
    pare_wbuf_u32(b, (uint32_t)o->freeze_every);
    pare_wbuf_u32(b, (uint32_t)o->freeze_units);
    pare_wbuf_u32(b, (uint32_t)o->freeze_max);
    pare_wbuf_f32(b, o->freeze_cka);
    pare_wbuf_u64(b, (uint64_t)o->freeze_check);
    pare_wbuf_f32(b, o->sieve);
    pare_wbuf_u32(b, (uint32_t)o->sieve_every);
    pare_wbuf_f32(b, o->sieve_swap);
    pare_wbuf_f32(b, o->drop_data);
    pare_wbuf_f32(b, o->drop_batch);
    pare_wbuf_f32(b, o->grad_mask);
    pare_wbuf_u64(b, (uint64_t)o->grad_mask_every);
}

/* Names the first option that differs between the checkpoint and this run. */
static pare_status check_fingerprint(pare_rbuf *r, const pare_trainer *t, const char *path)
{
    pare_wbuf mine = {0};
    put_fingerprint(&mine, t);
    static const struct {
        const char *name;
        int size;
    } fields[] = {{"--epochs", 4},   {"--batch", 4},        {"--optimizer", 4}, {"--lr", 4},
                  {"--momentum", 4}, {"--nesterov", 4},     {"--wd", 4},        {"--beta1", 4},
                  {"--beta2", 4},    {"--adam-eps", 4},     {"--schedule", 4},  {"--warmup", 8},
                  {"--step-epochs", 4}, {"--step-gamma", 4}, {"--seed", 8},     {"--crop", 4},
                  {"--flip", 4},     {"the training set size (--limit)", 8},
                  {"--sparse-train", 4}, {"--scheme", 8}, {"--sparse-every", 8},
                  {"--sparse-grow", 4}, {"--sparse-until", 4}, {"--sparse-all", 4},
                  {"--freeze-from", 4}, {"--freeze-every", 4}, {"--freeze-units", 4},
                  {"--freeze-max", 4}, {"--freeze-cka", 4}, {"--freeze-check", 8},
                  {"--sieve", 4},    {"--sieve-every", 4},  {"--sieve-swap", 4},
                  {"--drop-data", 4}, {"--drop-batch", 4}, {"--grad-mask", 4},
                  {"--grad-mask-every", 8}};
    size_t off = 0;
    pare_status s = PARE_OK;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint8_t theirs[8];
        if (!pare_rbuf_get(r, theirs, (size_t)fields[i].size)) {
            s = pare_fail(PARE_EFORMAT, "checkpoint %s: the trainer state is truncated", path);
            break;
        }
        if (mine.failed || memcmp(theirs, mine.p + off, (size_t)fields[i].size) != 0) {
            s = pare_fail(PARE_EINVAL,
                          "checkpoint %s was written with a different %s; resume with the options of the run that wrote it",
                          path, fields[i].name);
            break;
        }
        off += (size_t)fields[i].size;
    }
    pare_wbuf_free(&mine);
    return s;
}

static pare_status save_checkpoint(pare_trainer *t)
{
    if (!t->ckpt_path)
        return PARE_OK;
    pare_wbuf st = {0}, op = {0};
    pare_wbuf_u32(&st, STATE_VERSION);
    put_fingerprint(&st, t);
    pare_wbuf_u32(&st, (uint32_t)t->threads);
    pare_wbuf_u64(&st, (uint64_t)t->global_step);
    pare_wbuf_u32(&st, (uint32_t)t->epoch);
    pare_wbuf_u64(&st, (uint64_t)t->step_in_epoch);
    pare_wbuf_f64(&st, t->loss_sum);
    pare_wbuf_u64(&st, (uint64_t)t->correct);
    pare_wbuf_u64(&st, (uint64_t)t->seen);
    pare_wbuf_f64(&st, t->epoch_seconds);
    pare_wbuf_f64(&st, t->trace_acc);
    pare_wbuf_u64(&st, (uint64_t)t->trace_steps);
    pare_wbuf_f64(&st, t->flops);
    pare_wbuf_f64(&st, t->flops_dense);
    pare_wbuf_u64(&st, (uint64_t)t->examples);
    pare_wbuf_u64(&st, (uint64_t)t->cached);
    pare_wbuf_u32(&st, (uint32_t)t->n_hist);
    for (int i = 0; i < t->n_hist; i++) {
        const pare_epoch_stats *h = &t->hist[i];
        pare_wbuf_u32(&st, (uint32_t)h->epoch);
        pare_wbuf_f64(&st, h->train_loss);
        pare_wbuf_f64(&st, h->train_acc);
        pare_wbuf_f64(&st, h->test_loss);
        pare_wbuf_f64(&st, h->test_acc);
        pare_wbuf_f64(&st, h->seconds);
        pare_wbuf_f64(&st, h->images_per_s);
        pare_wbuf_f64(&st, h->lr_end);
        pare_wbuf_f64(&st, h->flops);
        pare_wbuf_f64(&st, h->flops_dense);
        pare_wbuf_u64(&st, (uint64_t)h->examples);
        pare_wbuf_u64(&st, (uint64_t)h->examples_out);
        pare_wbuf_u64(&st, (uint64_t)h->examples_cached);
        pare_wbuf_u32(&st, (uint32_t)h->units_frozen);
        pare_wbuf_u32(&st, (uint32_t)h->units);
        pare_wbuf_f64(&st, h->sparsity);
    }
    pare_wbuf_u32(&st, (uint32_t)t->n_trace);
    for (int i = 0; i < t->n_trace; i++) {
        pare_wbuf_f64(&st, t->trace_x[i]);
        pare_wbuf_f64(&st, t->trace_y[i]);
    }
    pare_optim_save(t->opt, &op);
    pare_wbuf ef = {0}, hk = {0};
    if (t->eff)
        pare_eff_save(t->eff, &ef);
    if (t->hooks.save)
        t->hooks.save(&hk, t->hooks.user);
    pare_status s = pare_wbuf_status(&st);
    if (s == PARE_OK)
        s = pare_wbuf_status(&op);
    if (s == PARE_OK)
        s = pare_wbuf_status(&ef);
    if (s == PARE_OK)
        s = pare_wbuf_status(&hk);
    if (s == PARE_OK) {
        pare_file_section sec[4];
        int n = 0;
        const struct {
            const char *tag;
            const pare_wbuf *b;
            int on;
        } parts[4] = {{PARE_CKPT_STATE, &st, 1},
                      {PARE_CKPT_OPTIM, &op, 1},
                      {PARE_CKPT_EFF, &ef, t->eff != NULL},
                      {PARE_CKPT_HOOK, &hk, t->hooks.save != NULL}};
        for (int i = 0; i < 4; i++)
            if (parts[i].on) {
                memcpy(sec[n].tag, parts[i].tag, 4);
                sec[n].data = parts[i].b->p;
                sec[n++].size = parts[i].b->len;
            }
        s = pare_file_save(t->ckpt_path, t->g, sec, n);
    }
    pare_wbuf_free(&st);
    pare_wbuf_free(&op);
    pare_wbuf_free(&ef);
    pare_wbuf_free(&hk);
    return s;
}

static int grow_hist(pare_trainer *t, int need)
{
    if (need <= t->cap_hist)
        return 1;
    int cap = t->cap_hist ? t->cap_hist * 2 : 16;
    while (cap < need)
        cap *= 2;
    pare_epoch_stats *h = realloc(t->hist, sizeof *h * (size_t)cap);
    if (!h)
        return 0;
    t->hist = h;
    t->cap_hist = cap;
    return 1;
}

static int grow_trace(pare_trainer *t, int need)
{
    if (need <= t->cap_trace)
        return 1;
    int cap = t->cap_trace ? t->cap_trace * 2 : 256;
    while (cap < need)
        cap *= 2;
    double *x = realloc(t->trace_x, sizeof(double) * (size_t)cap);
    if (!x)
        return 0;
    t->trace_x = x;
    double *y = realloc(t->trace_y, sizeof(double) * (size_t)cap);
    if (!y)
        return 0;
    t->trace_y = y;
    t->cap_trace = cap;
    return 1;
}

static long steps_in_epoch(const pare_trainer *t, int epoch)
{
    return t->eff ? pare_eff_epoch_steps(t->eff, epoch) : t->spe;
}

static long steps_before(const pare_trainer *t, int epoch)
{
    long s = 0;
    for (int e = 0; e < epoch; e++)
        s += steps_in_epoch(t, e);
    return s;
}

/* Copies the checkpoint's parameters into the trainer's graph after checking
 * that both describe the same model. */
static pare_status adopt_params(pare_graph *dst, const pare_graph *src, const char *path)
{
    if (src->n_params != dst->n_params || src->n_nodes != dst->n_nodes)
        return pare_fail(PARE_EINVAL, "checkpoint %s holds a different model (%d layers, this run builds %d)",
                         path, src->n_nodes, dst->n_nodes);
    for (int i = 0; i < dst->n_params; i++) {
        const pare_param *a = &src->params[i];
        pare_param *b = &dst->params[i];
        if (strcmp(a->name, b->name) || a->t->n != b->t->n || a->role != b->role)
            return pare_fail(PARE_EINVAL, "checkpoint %s holds a different model (parameter %s vs %s)",
                             path, a->name, b->name);
    }
    for (int v = 0; v < dst->n_nodes; v++)
        if (src->nodes[v].op != dst->nodes[v].op)
            return pare_fail(PARE_EINVAL, "checkpoint %s holds a different model (layer %s)", path,
                             dst->nodes[v].name);
    /* values, frozen flags, masks and quantization (QAT refits the scales) */
    for (int i = 0; i < dst->n_params; i++) {
        pare_status s = pare_param_copy_into(&dst->params[i], &src->params[i]);
        if (s != PARE_OK)
            return s;
    }
    /* the activation ranges QAT's moving average moved */
    for (int v = 0; v < dst->n_nodes; v++)
        if (dst->nodes[v].op == PARE_OP_FAKEQUANT) {
            dst->nodes[v].a.alpha = src->nodes[v].a.alpha;
            dst->nodes[v].a.beta = src->nodes[v].a.beta;
        }
    return PARE_OK;
}

static pare_status load_checkpoint(pare_trainer *t)
{
    const char *path = t->ckpt_path;
    pare_graph *cg = NULL;
    pare_file_extra ex = {0, NULL};
    pare_status s = pare_file_load(path, &cg, &ex);
    if (s != PARE_OK)
        return s;
    const pare_file_section *st = pare_file_extra_find(&ex, PARE_CKPT_STATE);
    const pare_file_section *op = pare_file_extra_find(&ex, PARE_CKPT_OPTIM);
    if (!st || !op) {
        s = pare_fail(PARE_EFORMAT, "%s is a model file, not a checkpoint (no trainer state)", path);
        goto done;
    }
    pare_rbuf r;
    pare_rbuf_init(&r, st->data, st->size);
    if (pare_rbuf_u32(&r) != STATE_VERSION) {
        s = pare_fail(PARE_EFORMAT, "checkpoint %s has a trainer state this pare does not read", path);
        goto done;
    }
    s = check_fingerprint(&r, t, path);
    if (s != PARE_OK)
        goto done;
    (void)pare_rbuf_u32(&r); /* threads of the run that wrote it */
    long gs = (long)pare_rbuf_u64(&r);
    int ep = (int)pare_rbuf_u32(&r);
    long sie = (long)pare_rbuf_u64(&r);
    double loss_sum = pare_rbuf_f64(&r);
    long correct = (long)pare_rbuf_u64(&r), seen = (long)pare_rbuf_u64(&r);
    double secs = pare_rbuf_f64(&r), tacc = pare_rbuf_f64(&r);
    long tsteps = (long)pare_rbuf_u64(&r);
    double flops = pare_rbuf_f64(&r), flops_dense = pare_rbuf_f64(&r);
    long examples = (long)pare_rbuf_u64(&r), cached = (long)pare_rbuf_u64(&r);
    uint32_t nh = pare_rbuf_u32(&r);
    if (r.bad || ep < 0 || ep > t->c.epochs || sie < 0 || sie > steps_in_epoch(t, ep) || nh != (uint32_t)ep ||
        gs != steps_before(t, ep) + sie) {
        s = pare_fail(PARE_EFORMAT, "checkpoint %s: the trainer state is inconsistent", path);
        goto done;
    }
    if (!grow_hist(t, (int)nh + 1)) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < nh; i++) {
        pare_epoch_stats *h = &t->hist[i];
        h->epoch = (int)pare_rbuf_u32(&r);
        h->train_loss = pare_rbuf_f64(&r);
        h->train_acc = pare_rbuf_f64(&r);
        h->test_loss = pare_rbuf_f64(&r);
        h->test_acc = pare_rbuf_f64(&r);
        h->seconds = pare_rbuf_f64(&r);
        h->images_per_s = pare_rbuf_f64(&r);
        h->lr_end = pare_rbuf_f64(&r);
        h->flops = pare_rbuf_f64(&r);
        h->flops_dense = pare_rbuf_f64(&r);
        h->examples = (long)pare_rbuf_u64(&r);
        h->examples_out = (long)pare_rbuf_u64(&r);
        h->examples_cached = (long)pare_rbuf_u64(&r);
        h->units_frozen = (int)pare_rbuf_u32(&r);
        h->units = (int)pare_rbuf_u32(&r);
        h->sparsity = pare_rbuf_f64(&r);
    }
    uint32_t nt = pare_rbuf_u32(&r);
    if (r.bad || nt > pare_rbuf_left(&r) / 16 || !grow_trace(t, (int)nt + 1)) {
        s = pare_fail(PARE_EFORMAT, "checkpoint %s: the trainer state is truncated", path);
        goto done;
    }
    for (uint32_t i = 0; i < nt; i++) {
        t->trace_x[i] = pare_rbuf_f64(&r);
        t->trace_y[i] = pare_rbuf_f64(&r);
    }
    if (r.bad) {
        s = pare_fail(PARE_EFORMAT, "checkpoint %s: the trainer state is truncated", path);
        goto done;
    }
    s = adopt_params(t->g, cg, path);
    if (s != PARE_OK)
        goto done;
    pare_rbuf ro;
    pare_rbuf_init(&ro, op->data, op->size);
    s = pare_optim_load(t->opt, &ro);
    if (s != PARE_OK) {
        pare_error_prefix("checkpoint %s", path);
        goto done;
    }
    if (t->eff) {
        const pare_file_section *es = pare_file_extra_find(&ex, PARE_CKPT_EFF);
        if (!es) {
            s = pare_fail(PARE_EFORMAT, "checkpoint %s has no efficient-training state", path);
            goto done;
        }
        pare_rbuf re;
        pare_rbuf_init(&re, es->data, es->size);
        s = pare_eff_load(t->eff, &re);
        if (s != PARE_OK) {
            pare_error_prefix("checkpoint %s", path);
            goto done;
        }
    }
    if (t->hooks.load) {
        const pare_file_section *hs = pare_file_extra_find(&ex, PARE_CKPT_HOOK);
        if (!hs) {
            s = pare_fail(PARE_EFORMAT, "checkpoint %s has no state of this training method (written by other "
                                        "options or an older pare)", path);
            goto done;
        }
        pare_rbuf rh;
        pare_rbuf_init(&rh, hs->data, hs->size);
        s = t->hooks.load(&rh, t->hooks.user);
        if (s != PARE_OK) {
            pare_error_prefix("checkpoint %s", path);
            goto done;
        }
    }
    t->global_step = gs;
    t->epoch = ep;
    t->step_in_epoch = sie;
    t->loss_sum = loss_sum;
    t->correct = correct;
    t->seen = seen;
    t->epoch_seconds = secs;
    t->trace_acc = tacc;
    t->trace_steps = tsteps;
    t->flops = flops;
    t->flops_dense = flops_dense;
    t->examples = examples;
    t->cached = cached;
    t->n_hist = (int)nh;
    t->n_trace = (int)nt;
done:
    pare_graph_free(cg);
    pare_file_extra_free(&ex);
    return s;
}

/* ---- the loop ------------------------------------------------------------ */

static void emit(const pare_trainer *t, pare_train_event *ev)
{
    if (t->c.callback)
        t->c.callback(ev, t->c.user);
}

static void base_event(const pare_trainer *t, pare_train_event *ev, pare_event_kind k)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    ev->epoch = t->epoch + 1;
    ev->epochs = t->c.epochs;
    ev->step = t->step_in_epoch;
    ev->steps_per_epoch = t->epoch < t->c.epochs ? steps_in_epoch(t, t->epoch) : t->spe;
    ev->global_step = t->global_step;
    ev->total_steps = t->total;
}

pare_status pare_trainer_run(pare_trainer *t, const pare_dataset *train, const pare_dataset *test)
{
    if (!t || !train)
        return pare_fail(PARE_EINVAL, "training needs a trainer and a training set");
    pare_graph *g = t->g;
    pare_status s = pare_check_data_fits(g, train);
    if (s == PARE_OK && test)
        s = pare_check_data_fits(g, test);
    if (s != PARE_OK)
        return s;
    if (t->train_n && t->train_n != train->n)
        return pare_fail(PARE_EINVAL, "this trainer was started on %ld samples, not %ld", t->train_n, train->n);
    t->train_n = train->n;
    t->spe = (train->n + t->c.batch - 1) / t->c.batch;
    t->total = t->spe * t->c.epochs;
    if (pare_eff_any(&t->c.eff) && !t->eff) {
        s = pare_eff_new(g, &t->c, train->n, &t->eff);
        if (s != PARE_OK)
            return s;
        t->spe = pare_eff_epoch_steps(t->eff, 0);
        t->total = pare_eff_total_steps(t->eff);
    }
    long resumed = 0;
    if (t->c.resume && pare_file_exists(t->ckpt_path) && t->global_step == 0) {
        s = load_checkpoint(t);
        if (s != PARE_OK)
            return s;
        resumed = t->global_step;
    }
    if (t->eff && t->global_step == 0 && t->epoch == 0) {
        s = pare_eff_start(t->eff);
        if (s != PARE_OK)
            return s;
    }
    if (t->eff) {
        const long *pidx;
        int pn = pare_eff_probe(t->eff, &pidx);
        if (pn > 0) {
            float *px = malloc(sizeof(float) * pare_shape_size(g->nodes[0].out) * (size_t)pn);
            int32_t *pl = malloc(sizeof(int32_t) * (size_t)pn);
            if (!px || !pl) {
                free(px);
                free(pl);
                return pare_fail(PARE_ENOMEM, "out of memory for the probe batch");
            }
            pare_data_batch(train, pidx, pn, px, pl, NULL, t->c.seed, 0, t->threads);
            pare_eff_set_probe_data(t->eff, px);
            free(px);
            free(pl);
        }
    }
    if (train->norm_channels > 0)
        pare_graph_norm_set(g, train->norm_channels, train->mean, train->std);
    free(t->perm);
    t->perm = malloc(sizeof(long) * (size_t)train->n);
    if (!t->perm)
        return pare_fail(PARE_ENOMEM, "out of memory for the order of %ld samples", train->n);
    pare_augment aug = {t->c.augment_crop_pad, t->c.augment_hflip};
    const pare_augment *augp = (aug.crop_pad || aug.hflip) ? &aug : NULL;
    long trace_every = t->spe / 50 > 0 ? t->spe / 50 : 1;
    pare_train_event ev;
    base_event(t, &ev, PARE_EV_START);
    ev.resumed_from = resumed;
    emit(t, &ev);

    while (t->epoch < t->c.epochs) {
        long n_epoch = train->n;
        if (t->eff)
            n_epoch = pare_eff_epoch_begin(t->eff, t->epoch, t->step_in_epoch == 0, t->perm);
        else
            pare_data_permutation(train->n, t->c.seed, (uint64_t)t->epoch, t->perm);
        long spe = steps_in_epoch(t, t->epoch);
        double t0 = pare_now_s(), prev_secs = t->epoch_seconds;
        long seen_at_start = t->seen;
        while (t->step_in_epoch < spe) {
            long start = t->step_in_epoch * t->c.batch;
            int m = (int)(n_epoch - start < t->c.batch ? n_epoch - start : t->c.batch);
            if (t->eff && pare_eff_skip_batch(t->eff, t->global_step)) {
                /* a dropped batch: the schedule moves on, nothing is computed */
                t->global_step++;
                m = 0;
            } else {
                pare_data_batch(train, t->perm + start, m, pare_exec_input(t->exec), t->labels, augp,
                                t->c.seed, (uint64_t)t->epoch, t->threads);
                long right = 0;
                double loss = NAN;
                s = step_on_input(t, m, t->perm + start, &right, &loss);
                if (s != PARE_OK)
                    return s;
                if (!isfinite(loss))
                    return pare_fail(PARE_EINVAL,
                                     "the loss became %g at step %ld (epoch %d); lower the learning rate",
                                     loss, t->global_step, t->epoch + 1);
                t->loss_sum += loss * m;
                t->correct += right;
                t->seen += m;
                t->trace_acc += loss;
                t->trace_steps++;
            }
            t->step_in_epoch++;
            if (t->trace_steps > 0 && (t->trace_steps == trace_every || t->step_in_epoch == spe)) {
                if (!grow_trace(t, t->n_trace + 1))
                    return pare_fail(PARE_ENOMEM, "out of memory");
                t->trace_x[t->n_trace] = t->epoch + (double)t->step_in_epoch / (double)spe;
                t->trace_y[t->n_trace] = t->trace_acc / (double)t->trace_steps;
                t->n_trace++;
                t->trace_acc = 0;
                t->trace_steps = 0;
            }
            t->epoch_seconds = prev_secs + (pare_now_s() - t0);
            base_event(t, &ev, PARE_EV_STEP);
            ev.loss = t->seen ? t->loss_sum / (double)t->seen : 0;
            ev.lr = lr_of(t, t->global_step - 1);
            ev.seconds = t->epoch_seconds;
            ev.images_per_s = t->epoch_seconds > 0 ? (double)(t->seen - seen_at_start) / (pare_now_s() - t0) : 0;
            emit(t, &ev);
            int cancel = t->c.cancel && *t->c.cancel;
            if (t->ckpt_path && ((t->c.checkpoint_every && t->global_step % t->c.checkpoint_every == 0 &&
                                  t->step_in_epoch < spe) || cancel)) {
                s = save_checkpoint(t);
                if (s != PARE_OK)
                    return s;
                base_event(t, &ev, PARE_EV_CHECKPOINT);
                ev.path = t->ckpt_path;
                emit(t, &ev);
            }
            if (cancel)
                return pare_fail(PARE_ECANCELLED, "interrupted at step %ld of %ld%s", t->global_step,
                                 t->total, t->ckpt_path ? "; the checkpoint holds the state" : "");
        }
        pare_epoch_stats st;
        memset(&st, 0, sizeof st);
        st.epoch = t->epoch + 1;
        st.train_loss = t->seen ? t->loss_sum / (double)t->seen : 0;
        st.train_acc = t->seen ? (double)t->correct / (double)t->seen : 0;
        st.seconds = t->epoch_seconds;
        st.images_per_s = t->epoch_seconds > 0 ? (double)t->seen / t->epoch_seconds : 0;
        st.lr_end = lr_of(t, t->global_step - 1);
        st.test_loss = st.test_acc = -1;
        if (t->eff) {
            s = pare_eff_epoch_end(t->eff, t->exec, t->epoch);
            if (s != PARE_OK)
                return s;
        }
        double f1, d1;
        pare_train_flops(g, NULL, 1, &f1, &d1);
        st.flops = t->flops;
        st.flops_dense = d1 * (double)train->n;
        st.examples = t->examples;
        st.examples_cached = t->cached;
        pare_train_stats(g, t->eff, &st.examples_out, &st.units_frozen, &st.units, &st.sparsity);
        if (test) {
            pare_eval_result er;
            pare_train_event proto;
            base_event(t, &proto, PARE_EV_EVAL);
            s = pare_evaluate_cb(g, test, t->c.eval_batch, t->threads, &er, t->c.callback, t->c.user, &proto);
            if (s != PARE_OK)
                return s;
            st.test_loss = er.loss;
            st.test_acc = er.accuracy;
        }
        if (!grow_hist(t, t->n_hist + 1))
            return pare_fail(PARE_ENOMEM, "out of memory");
        t->hist[t->n_hist++] = st;
        t->epoch++;
        t->step_in_epoch = 0;
        t->loss_sum = 0;
        t->correct = t->seen = 0;
        t->epoch_seconds = 0;
        t->flops = t->flops_dense = 0;
        t->examples = 0;
        t->cached = 0;
        base_event(t, &ev, PARE_EV_EPOCH);
        ev.epoch = st.epoch;
        ev.stats = &t->hist[t->n_hist - 1];
        emit(t, &ev);
        if (t->ckpt_path) {
            s = save_checkpoint(t);
            if (s != PARE_OK)
                return s;
            base_event(t, &ev, PARE_EV_CHECKPOINT);
            ev.epoch = st.epoch;
            ev.path = t->ckpt_path;
            emit(t, &ev);
        }
        if (t->c.cancel && *t->c.cancel && t->epoch < t->c.epochs)
            return pare_fail(PARE_ECANCELLED, "interrupted after epoch %d%s", t->epoch,
                             t->ckpt_path ? "; the checkpoint holds the state" : "");
    }
    if (t->eff)
        pare_eff_end(t->eff);
    return PARE_OK;
}

pare_status pare_train_epochs(pare_graph *g, const pare_train_config *base, int epochs, const pare_train_hooks *hooks,
                              const pare_dataset *train, const pare_dataset *test, double *acc)
{
    if (epochs <= 0)
        return PARE_OK;
    pare_train_config tc = *base;
    tc.epochs = epochs;
    tc.checkpoint_path = NULL;
    tc.checkpoint_every = 0;
    tc.resume = 0;
    pare_trainer *t;
    pare_status s = pare_trainer_new(g, &tc, &t);
    if (s != PARE_OK)
        return s;
    pare_trainer_set_hooks(t, hooks);
    s = pare_trainer_run(t, train, test);
    pare_epoch_stats st;
    if (s == PARE_OK && acc && pare_trainer_epoch_stats(t, epochs, &st) == PARE_OK)
        *acc = st.test_acc;
    pare_trainer_free(t);
    return s;
}

double pare_test_accuracy(pare_graph *g, const pare_dataset *test, const pare_train_config *base)
{
    if (!test)
        return -1;
    pare_eval_result r;
    if (pare_evaluate(g, test, base->eval_batch, base->threads, &r) != PARE_OK)
        return -1;
    return r.accuracy;
}
