/* Efficient training: the policies of SpFDE, MEST, SparCL, EdgeOL's
 * intra-tuning and E2-Train on top of the plain training loop (see
 * efficient.h and docs/EFFICIENT.md). */
#include "train/efficient.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune.h"
#include "core/alloc.h"
#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/data.h"
#include "graph/op.h"

#define STATE_VERSION 1
#define PROBE_MAX 128
/* Scores of kept weights when growing: above any gradient, and squared still finite. */
#define KEEP_SCORE 1e18f

/* Activations at the end of the frozen prefix, one row per training example. */
typedef struct fstore {
    int node;                /* 0: none */
    uint64_t key;            /* hash of the parameters of nodes 1..node */
    int epoch;               /* when it stopped being the current store */
    size_t row;              /* floats per example */
    long cap, used;
    int32_t *slot;           /* per example: its row, or -1 */
    float *data;
} fstore;

struct pare_eff {
    pare_graph *g;
    pare_efficiency o;       /* defaults filled in */
    uint64_t seed;
    int epochs, batch;
    long n;
    /* units and freezing */
    int n_units;
    pare_unit *units;
    uint8_t *policy_frozen;  /* per unit: frozen by a policy here */
    uint8_t *orig_frozen;    /* per parameter: its flag in the model we were given */
    int n_frozen;            /* units[0..n_frozen) are frozen by a policy */
    int max_frozen;
    /* sparse training */
    int sparse;
    pare_prune_plan plan;
    long interval, until;
    int grown;               /* a grow happened and its prune is pending */
    int sparse_grads_on;     /* this step: weight gradients only inside the masks */
    int gmask_on;            /* this step: the gradient masks are in force */
    float *score;            /* scratch: the largest weight */
    /* gradient masking, per unit */
    uint8_t **gmask;
    int gmask_valid;
    /* data */
    long n_active, *active;
    long *queue, q_head, q_len;   /* circular, capacity n */
    uint8_t *dropped;
    long n_dropped;
    uint32_t *forgets;
    uint8_t *last;           /* 0 unseen, 1 right, 2 wrong */
    long *perm, *tmp;
    long *epoch_steps, total;
    /* automatic freezing */
    int probe_n;
    long probe_idx[PROBE_MAX];
    float *probe_x;
    double **gram;           /* per unit: centred probe Gram matrix, or NULL */
    double *kscratch;
    float *fscratch;
    /* the frozen prefix's cache */
    size_t cache_budget;     /* bytes; 0: off */
    fstore cur, old;         /* at the prefix's end now, and at a shallower end before */
    float *rows;             /* scratch: a batch of rows at the prefix's end */
    int *pick;               /* scratch: 3 x batch, each example's source and the groups */
    uint64_t *keys;          /* scratch: per node, the prefix's parameter hash */
    int epoch_now;
    /* this step's forward: nodes up to cut ran on n_full examples, those after
     * mid (when set) on n_mid more, those after cut on the whole batch */
    int step_cut, step_mid, n_full, n_mid;
};

int pare_eff_any(const pare_efficiency *o)
{
    return o->sparse > 0 || o->freeze_from > 0 || o->freeze_cka > 0 || o->sieve > 0 ||
           o->drop_data > 0 || o->drop_batch > 0 || o->grad_mask > 0 || o->cache_frozen_mb > 0;
}

static int frac_ok(float v, int open_one) { return v >= 0 && (open_one ? v < 1 : v <= 1) && isfinite(v); }

pare_status pare_eff_check(const pare_efficiency *o)
{
    if (!frac_ok(o->sparse, 1))
        return pare_fail(PARE_EINVAL, "--sparse-train must be in [0, 1), got %g", (double)o->sparse);
    if (!frac_ok(o->sparse_grow, 1) || !frac_ok(o->sparse_until, 0))
        return pare_fail(PARE_EINVAL, "--sparse-grow must be in [0, 1) and --sparse-until in [0, 1]");
    if (o->sparse > 0 && o->sparse_grow > o->sparse)
        return pare_fail(PARE_EINVAL, "--sparse-grow %g is more than the sparsity %g", (double)o->sparse_grow,
                         (double)o->sparse);
    if (o->sparse_every < 0 || o->freeze_check < 0 || o->grad_mask_every < 0)
        return pare_fail(PARE_EINVAL, "step intervals must be >= 0");
    if (o->freeze_from < 0 || o->freeze_every < 0 || o->freeze_units < 0 || o->freeze_max < 0)
        return pare_fail(PARE_EINVAL, "--freeze-from, --freeze-every, --freeze-units and --freeze-max must be >= 0");
    if (!frac_ok(o->freeze_cka, 0))
        return pare_fail(PARE_EINVAL, "--freeze-cka must be in [0, 1], got %g", (double)o->freeze_cka);
    if (!frac_ok(o->sieve, 1) || !frac_ok(o->sieve_swap, 0) || o->sieve_every < 0)
        return pare_fail(PARE_EINVAL, "--sieve must be in [0, 1), --sieve-swap in [0, 1], --sieve-every >= 0");
    if (!frac_ok(o->drop_data, 1) || !frac_ok(o->drop_batch, 1) || !frac_ok(o->grad_mask, 1))
        return pare_fail(PARE_EINVAL, "--drop-data, --drop-batch and --grad-mask must be in [0, 1)");
    if (o->cache_frozen_mb < 0)
        return pare_fail(PARE_EINVAL, "--cache-frozen must be >= 0 MiB, got %ld", o->cache_frozen_mb);
    if (o->sieve + o->drop_data >= 1)
        return pare_fail(PARE_EINVAL, "--sieve %g and --drop-data %g leave no data to train on", (double)o->sieve,
                         (double)o->drop_data);
    return PARE_OK;
}

int pare_units(const pare_graph *g, pare_unit *units)
{
    int n = 0;
    for (int v = 0; v < g->n_nodes; v++) {
        const pare_node *nd = &g->nodes[v];
        if ((nd->op != PARE_OP_CONV2D && nd->op != PARE_OP_LINEAR) || nd->n_param < 1)
            continue;
        int bn = -1, users = 0;
        for (int u = v + 1; u < g->n_nodes; u++)
            for (int j = 0; j < g->nodes[u].n_in; j++)
                if (g->nodes[u].in[j] == v) {
                    users++;
                    if (g->nodes[u].op == PARE_OP_BATCHNORM)
                        bn = u;
                }
        if (units)
            units[n] = (pare_unit){v, users == 1 ? bn : -1, nd->param[0]};
        n++;
    }
    return n;
}

/* ---- set-up ----------------------------------------------------------------- */

static long steps_of(long examples, int batch) { return (examples + batch - 1) / batch; }

/* Examples removed for good by the start of epoch e. */
static long dropped_by(const pare_eff *e, int epoch, long active0)
{
    if (e->o.drop_data <= 0 || e->epochs < 2)
        return 0;
    long d = (long)floor((double)e->o.drop_data * (double)e->n * epoch / (e->epochs - 1) + 1e-9);
    return d < active0 - 1 ? d : active0 - 1;
}

static void store_drop(fstore *f)
{
    free(f->slot);
    pare_free(f->data);
    memset(f, 0, sizeof *f);
}

static size_t store_bytes(const fstore *f) { return f->node ? (size_t)f->cap * f->row * sizeof(float) : 0; }

void pare_eff_free(pare_eff *e)
{
    if (!e)
        return;
    free(e->units);
    free(e->policy_frozen);
    free(e->orig_frozen);
    if (e->sparse)
        pare_prune_plan_free(&e->plan);
    free(e->score);
    if (e->gmask)
        for (int i = 0; i < e->n_units; i++)
            free(e->gmask[i]);
    free(e->gmask);
    free(e->active);
    free(e->queue);
    free(e->dropped);
    free(e->forgets);
    free(e->last);
    free(e->perm);
    free(e->tmp);
    free(e->epoch_steps);
    free(e->probe_x);
    if (e->gram)
        for (int i = 0; i < e->n_units; i++)
            free(e->gram[i]);
    free(e->gram);
    free(e->kscratch);
    free(e->fscratch);
    store_drop(&e->cur);
    store_drop(&e->old);
    pare_free(e->rows);
    free(e->pick);
    free(e->keys);
    free(e);
}

pare_status pare_eff_new(pare_graph *g, const pare_train_config *c, long n_train, pare_eff **out)
{
    *out = NULL;
    pare_status s = pare_eff_check(&c->eff);
    if (s != PARE_OK)
        return s;
    pare_eff *e = calloc(1, sizeof *e);
    if (!e)
        return pare_fail(PARE_ENOMEM, "out of memory");
    e->g = g;
    e->o = c->eff;
    pare_efficiency *o = &e->o;
    if (o->sparse_grow == 0)
        o->sparse_grow = o->sparse < 0.05f ? o->sparse : 0.05f;
    if (o->sparse_until == 0)
        o->sparse_until = 0.75f;
    if (o->freeze_every == 0)
        o->freeze_every = 1;
    if (o->freeze_units == 0)
        o->freeze_units = 1;
    if (o->sieve_every == 0)
        o->sieve_every = 1;
    if (o->sieve_swap == 0)
        o->sieve_swap = 0.1f;
    if (o->grad_mask_every == 0)
        o->grad_mask_every = 10;
    o->sparse_scheme = NULL; /* the plan keeps the scheme; the text may not outlive the config */
    e->cache_budget = (size_t)o->cache_frozen_mb << 20;
    e->seed = c->seed;
    e->epochs = c->epochs;
    e->batch = c->batch;
    e->n = n_train;
    e->n_units = pare_units(g, NULL);
    e->units = calloc((size_t)e->n_units + 1, sizeof *e->units);
    e->policy_frozen = calloc((size_t)e->n_units + 1, 1);
    e->orig_frozen = calloc((size_t)g->n_params + 1, 1);
    e->gram = calloc((size_t)e->n_units + 1, sizeof *e->gram);
    e->gmask = calloc((size_t)e->n_units + 1, sizeof *e->gmask);
    e->active = malloc(sizeof(long) * (size_t)n_train);
    e->queue = malloc(sizeof(long) * (size_t)n_train);
    e->dropped = calloc((size_t)n_train, 1);
    e->forgets = calloc((size_t)n_train, sizeof(uint32_t));
    e->last = calloc((size_t)n_train, 1);
    e->perm = malloc(sizeof(long) * (size_t)n_train);
    e->tmp = malloc(sizeof(long) * (size_t)n_train);
    e->epoch_steps = calloc((size_t)c->epochs, sizeof(long));
    if (e->cache_budget) {
        e->pick = malloc(sizeof(int) * 3 * (size_t)c->batch);
        e->keys = malloc(sizeof(uint64_t) * (size_t)g->n_nodes);
    }
    if (!e->units || !e->policy_frozen || !e->orig_frozen || !e->gram || !e->gmask || !e->active || !e->queue || !e->dropped ||
        !e->forgets || !e->last || !e->perm || !e->tmp || !e->epoch_steps ||
        (e->cache_budget && (!e->pick || !e->keys))) {
        pare_eff_free(e);
        return pare_fail(PARE_ENOMEM, "out of memory for the efficient-training state of %ld examples", n_train);
    }
    pare_units(g, e->units);
    for (int i = 0; i < g->n_params; i++)
        e->orig_frozen[i] = g->params[i].frozen != 0;
    e->max_frozen = o->freeze_max > 0 ? o->freeze_max : e->n_units - 1;
    if (e->max_frozen > e->n_units - 1)
        e->max_frozen = e->n_units - 1;
    if (e->max_frozen < 0)
        e->max_frozen = 0;

    /* The initial active set: a seeded sample of n - sieve*n examples; the rest
     * wait in the queue in a seeded order. */
    long out_n = (long)floor((double)o->sieve * (double)n_train + 0.5);
    if (out_n >= n_train)
        out_n = n_train - 1;
    {
        pare_rng r;
        pare_rng_seed(&r, c->seed, 0x51e7e, 0, 0);
        for (long i = 0; i < n_train; i++)
            e->perm[i] = i;
        for (long i = n_train - 1; i > 0; i--) {
            long j = (long)pare_rng_below(&r, (uint64_t)i + 1);
            long t = e->perm[i];
            e->perm[i] = e->perm[j];
            e->perm[j] = t;
        }
        if (out_n == 0) {
            for (long i = 0; i < n_train; i++)
                e->active[i] = i;
        } else {
            /* active in index order (the epoch order is drawn later), queue seeded */
            memset(e->tmp, 0, sizeof(long) * (size_t)n_train);
            for (long i = 0; i < out_n; i++)
                e->tmp[e->perm[i]] = 1;
            long k = 0;
            for (long i = 0; i < n_train; i++)
                if (!e->tmp[i])
                    e->active[k++] = i;
            for (long i = 0; i < out_n; i++)
                e->queue[i] = e->perm[i];
        }
        e->n_active = n_train - out_n;
        e->q_head = 0;
        e->q_len = out_n;
    }
    long active0 = e->n_active;
    e->total = 0;
    for (int ep = 0; ep < c->epochs; ep++) {
        e->epoch_steps[ep] = steps_of(active0 - dropped_by(e, ep, active0), c->batch);
        e->total += e->epoch_steps[ep];
    }

    if (o->sparse > 0) {
        pare_prune_options po;
        memset(&po, 0, sizeof po);
        po.scheme = c->eff.sparse_scheme ? c->eff.sparse_scheme : "unstructured";
        po.sparsity = o->sparse;
        po.exempt_first = !o->sparse_all;
        po.exempt_last = !o->sparse_all;
        s = pare_prune_plan_new(g, &po, &e->plan);
        if (s != PARE_OK) {
            pare_error_prefix("sparse training");
            pare_eff_free(e);
            return s;
        }
        e->sparse = 1;
        e->interval = o->sparse_every > 0 ? o->sparse_every : e->epoch_steps[0];
        if (e->interval < 2)
            e->interval = 2;
        e->until = (long)floor((double)o->sparse_until * (double)e->total);
    }
    size_t biggest = 1;
    for (int i = 0; i < e->n_units; i++)
        if (g->params[e->units[i].weight].t->n > biggest)
            biggest = g->params[e->units[i].weight].t->n;
    e->score = malloc(sizeof(float) * biggest);
    if (!e->score) {
        pare_eff_free(e);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    if (o->freeze_cka > 0) {
        e->probe_n = c->batch < PROBE_MAX ? c->batch : PROBE_MAX;
        if (e->probe_n > n_train)
            e->probe_n = (int)n_train;
        pare_rng r;
        pare_rng_seed(&r, c->seed, 0xcca, 0, 0);
        for (int i = 0; i < e->probe_n; i++)
            e->probe_idx[i] = (long)pare_rng_below(&r, (uint64_t)n_train);
        e->kscratch = malloc(sizeof(double) * (size_t)e->probe_n * (size_t)e->probe_n);
        e->fscratch = malloc(sizeof(float) * (size_t)e->probe_n * (size_t)e->probe_n);
        if (!e->kscratch || !e->fscratch) {
            pare_eff_free(e);
            return pare_fail(PARE_ENOMEM, "out of memory");
        }
    }
    *out = e;
    return PARE_OK;
}

long pare_eff_epoch_steps(const pare_eff *e, int epoch)
{
    return epoch >= 0 && epoch < e->epochs ? e->epoch_steps[epoch] : 0;
}

long pare_eff_total_steps(const pare_eff *e) { return e->total; }

pare_status pare_eff_start(pare_eff *e)
{
    if (!e->sparse)
        return PARE_OK;
    /* A random mask: every layer's weights ranked by seeded uniform scores. */
    float **scores = calloc((size_t)e->plan.n + 1, sizeof *scores);
    if (!scores)
        return pare_fail(PARE_ENOMEM, "out of memory");
    pare_status s = PARE_OK;
    for (int i = 0; i < e->plan.n && s == PARE_OK; i++) {
        size_t n = e->g->params[e->plan.l[i].param].t->n;
        scores[i] = malloc(sizeof(float) * n);
        if (!scores[i]) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            break;
        }
        pare_rng r;
        pare_rng_seed(&r, e->seed, 0x5ba75e, (uint64_t)i, 0);
        for (size_t j = 0; j < n; j++)
            scores[i][j] = pare_rng_uniform(&r) + 1e-3f;
    }
    if (s == PARE_OK)
        s = pare_prune_apply(e->g, &e->plan, NULL, (const float *const *)scores);
    for (int i = 0; i < e->plan.n; i++)
        free(scores[i]);
    free(scores);
    return s;
}

/* ---- freezing ----------------------------------------------------------------- */

static void set_unit_frozen(pare_eff *e, int u, int frozen)
{
    pare_graph *g = e->g;
    int nodes[2] = {e->units[u].node, e->units[u].bn};
    for (int k = 0; k < 2; k++) {
        if (nodes[k] < 0)
            continue;
        const pare_node *nd = &g->nodes[nodes[k]];
        /* unfreezing gives back the flag the model came with */
        for (int j = 0; j < nd->n_param; j++)
            g->params[nd->param[j]].frozen = frozen ? 1 : e->orig_frozen[nd->param[j]];
    }
    e->policy_frozen[u] = (uint8_t)frozen;
}

static void freeze_next(pare_eff *e, int count)
{
    while (count-- > 0 && e->n_frozen < e->max_frozen)
        set_unit_frozen(e, e->n_frozen++, 1);
}

void pare_eff_end(pare_eff *e)
{
    for (int u = 0; u < e->n_units; u++)
        if (e->policy_frozen[u])
            set_unit_frozen(e, u, 0);
    e->n_frozen = 0;
}

void pare_eff_unfreeze(pare_eff *e)
{
    for (int u = 0; u < e->n_units; u++)
        if (e->policy_frozen[u])
            set_unit_frozen(e, u, 0);
    e->n_frozen = 0;
    for (int u = 0; u < e->n_units; u++) {
        free(e->gram[u]);
        e->gram[u] = NULL;
    }
}

/* ---- data ----------------------------------------------------------------------- */

long pare_eff_epoch_begin(pare_eff *e, int epoch, int fresh, long *order)
{
    const pare_efficiency *o = &e->o;
    e->epoch_now = epoch;
    if (fresh && o->freeze_from > 0 && epoch + 1 >= o->freeze_from && (epoch + 1 - o->freeze_from) % o->freeze_every == 0)
        freeze_next(e, o->freeze_units);
    pare_data_permutation(e->n_active, e->seed, (uint64_t)epoch, e->perm);
    for (long i = 0; i < e->n_active; i++)
        order[i] = e->active[e->perm[i]];
    return e->n_active;
}

static double unit_hash(uint64_t seed, uint64_t a, uint64_t b)
{
    return (double)(pare_hash64(seed ^ pare_hash64(a * 0x9e3779b97f4a7c15ull + b)) >> 11) * 0x1.0p-53;
}

int pare_eff_skip_batch(const pare_eff *e, long step)
{
    return e->o.drop_batch > 0 && unit_hash(e->seed, 0xd20b, (uint64_t)step) < e->o.drop_batch;
}

void pare_eff_after_forward(pare_eff *e, const long *idx, const float *logits, const int32_t *labels, int n,
                            int classes)
{
    if (e->o.sieve <= 0 && e->o.drop_data <= 0)
        return;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            if (z[k] > z[best])
                best = k;
        int right = best == labels[i];
        long x = idx[i];
        if (e->last[x] == 1 && !right && e->forgets[x] < UINT32_MAX)
            e->forgets[x]++;
        e->last[x] = right ? 1 : 2;
    }
}

/* Sorts active[0..n) by (forgetting events, a seeded tie-break) ascending. */
typedef struct rank_item {
    uint32_t forgets;
    double tie;
    long idx;
} rank_item;

static int rank_cmp(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->forgets != y->forgets)
        return x->forgets < y->forgets ? -1 : 1;
    if (x->tie != y->tie)
        return x->tie < y->tie ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static rank_item *rank_active(const pare_eff *e, int epoch)
{
    rank_item *r = malloc(sizeof *r * (size_t)(e->n_active > 0 ? e->n_active : 1));
    if (!r)
        return NULL;
    for (long i = 0; i < e->n_active; i++) {
        long x = e->active[i];
        r[i] = (rank_item){e->forgets[x], unit_hash(e->seed, 0x5e7e + (uint64_t)epoch, (uint64_t)x), x};
    }
    qsort(r, (size_t)e->n_active, sizeof *r, rank_cmp);
    return r;
}

static pare_status sieve(pare_eff *e, int epoch)
{
    long k = (long)floor((double)e->o.sieve_swap * (double)e->n_active + 0.5);
    if (k > e->q_len)
        k = e->q_len;
    if (k <= 0)
        return PARE_OK;
    rank_item *r = rank_active(e, epoch);
    if (!r)
        return pare_fail(PARE_ENOMEM, "out of memory sieving the data");
    /* The k least-forgotten leave for the queue's tail; k return from its head. */
    long *back = e->tmp;
    for (long i = 0; i < k; i++) {
        back[i] = e->queue[(e->q_head + i) % e->n];
    }
    e->q_head = (e->q_head + k) % e->n;
    e->q_len -= k;
    for (long i = 0; i < k; i++) {
        e->queue[(e->q_head + e->q_len) % e->n] = r[i].idx;
        e->q_len++;
    }
    /* the active set: the survivors in rank order, then the returning ones */
    for (long i = k; i < e->n_active; i++)
        e->active[i - k] = r[i].idx;
    for (long i = 0; i < k; i++)
        e->active[e->n_active - k + i] = back[i];
    free(r);
    return PARE_OK;
}

static pare_status drop_data(pare_eff *e, int epoch)
{
    long active0 = e->n - (long)floor((double)e->o.sieve * (double)e->n + 0.5);
    long want = dropped_by(e, epoch + 1, active0) - e->n_dropped;
    if (want <= 0 || epoch + 1 >= e->epochs)
        return PARE_OK;
    rank_item *r = rank_active(e, epoch + 0x1000);
    if (!r)
        return pare_fail(PARE_ENOMEM, "out of memory removing data");
    for (long i = 0; i < want; i++)
        e->dropped[r[i].idx] = 1;
    long k = 0;
    for (long i = want; i < e->n_active; i++)
        e->active[k++] = r[i].idx;
    e->n_active = k;
    e->n_dropped += want;
    free(r);
    return PARE_OK;
}

/* ---- sparse training and gradient masks ------------------------------------------ */

static int is_grow_step(const pare_eff *e, long step)
{
    return e->sparse && !e->grown && step > 0 && step % e->interval == 0 && step < e->until &&
           e->o.sparse_grow > 0;
}

/* From half an interval after a grow: the first step that runs (a dropped
 * batch must not leave the mask grown for a whole interval). */
static int is_prune_step(const pare_eff *e, long step)
{
    return e->sparse && e->grown && step % e->interval >= e->interval / 2;
}

static int is_refresh_step(const pare_eff *e, long step)
{
    return e->o.grad_mask > 0 && (step % e->o.grad_mask_every == 0 || !e->gmask_valid);
}

void pare_eff_before_step(pare_eff *e, pare_exec *x, long step)
{
    int any_mask = 0;
    for (int u = 0; u < e->n_units; u++)
        any_mask |= e->g->params[e->units[u].weight].mask != NULL;
    /* Growth ranks pruned weights by their gradients: that step is dense. */
    e->sparse_grads_on = any_mask && !is_grow_step(e, step);
    pare_exec_set_sparse_grads(x, e->sparse_grads_on);
    e->gmask_on = 0;
    if (e->o.grad_mask > 0) {
        int refresh = is_refresh_step(e, step);
        e->gmask_on = !refresh;
        for (int u = 0; u < e->n_units; u++)
            pare_exec_set_grad_mask(x, e->units[u].weight, refresh ? NULL : e->gmask[u]);
    }
}

/* Grows layer i of the plan by its gradient: the pruned weights with the
 * largest |gradient| join the mask (they are zero and start from there). */
static void grow_layer(pare_eff *e, pare_exec *x, int i)
{
    pare_param *p = &e->g->params[e->plan.l[i].param];
    const float *gr = pare_exec_param_grad(x, e->plan.l[i].param);
    if (!p->mask || !gr)
        return;
    size_t n = p->t->n, kept = 0;
    for (size_t j = 0; j < n; j++) {
        e->score[j] = p->mask[j] ? KEEP_SCORE : fabsf(gr[j]);
        kept += p->mask[j] != 0;
    }
    double cur = 1.0 - (double)kept / (double)n;
    double target = cur - e->o.sparse_grow;
    if (target < 0)
        target = 0;
    pare_scheme un = {.kind = PARE_SCHEME_UNSTRUCTURED};
    pare_tensor view = *p->t;
    uint8_t *m = malloc(n);
    if (!m)
        return; /* growth is an optimisation; out of memory skips it */
    if (pare_scheme_project(&un, &view, e->score, target, m) == PARE_OK)
        memcpy(p->mask, m, n);
    free(m);
}

static void refresh_gmask(pare_eff *e, pare_exec *x)
{
    for (int u = 0; u < e->n_units; u++) {
        pare_param *p = &e->g->params[e->units[u].weight];
        float *gr = pare_exec_param_grad(x, e->units[u].weight);
        if (!gr)
            continue;
        size_t n = p->t->n, live = 0;
        if (!e->gmask[u] && !(e->gmask[u] = malloc(n)))
            continue;
        for (size_t j = 0; j < n; j++) {
            int on = !p->mask || p->mask[j];
            e->score[j] = on ? fabsf(gr[j]) : 0.0f;
            live += (size_t)on;
        }
        size_t keep = (size_t)floor((1.0 - e->o.grad_mask) * (double)live + 0.5);
        pare_scheme un = {.kind = PARE_SCHEME_UNSTRUCTURED};
        if (pare_scheme_project(&un, p->t, e->score, 1.0 - (double)keep / (double)n, e->gmask[u]) != PARE_OK) {
            memset(e->gmask[u], 1, n);
            continue;
        }
        if (p->mask)
            for (size_t j = 0; j < n; j++)
                e->gmask[u][j] &= p->mask[j] ? 1 : 0;
        /* this step applies the selection too */
        for (size_t j = 0; j < n; j++)
            if (!e->gmask[u][j])
                gr[j] = 0.0f;
    }
    e->gmask_valid = 1;
}

void pare_eff_after_backward(pare_eff *e, pare_exec *x, long step)
{
    if (is_grow_step(e, step)) {
        for (int i = 0; i < e->plan.n; i++)
            grow_layer(e, x, i);
        e->grown = 1;
        e->gmask_valid = 0; /* the masks changed: select again next step */
    }
    if (e->o.grad_mask > 0 && is_refresh_step(e, step))
        refresh_gmask(e, x);
}

/* ---- automatic freezing by CKA ----------------------------------------------------- */

/* Centred Gram matrix of n rows of d floats, into k (n x n doubles). */
static void centred_gram(const float *x, int d, int n, float *kf, double *k)
{
    pare_sgemm(1, 0, 1, n, n, d, 1.0f, x, d, x, d, 0.0f, kf, n);
    double all = 0;
    double *row = malloc(sizeof(double) * (size_t)n);
    if (!row) {
        for (long i = 0; i < (long)n * n; i++)
            k[i] = 0;
        return;
    }
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += kf[(size_t)i * (size_t)n + (size_t)j];
        row[i] = s / n;
        all += s;
    }
    all /= (double)n * n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            k[(size_t)i * (size_t)n + (size_t)j] = kf[(size_t)i * (size_t)n + (size_t)j] - row[i] - row[j] + all;
    free(row);
}

static double cka_of(const double *a, const double *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    if (aa <= 0 || bb <= 0)
        return aa == bb ? 1.0 : 0.0;
    return ab / sqrt(aa * bb);
}

double pare_linear_cka(const float *x, int d, const float *y, int d2, int n)
{
    double *a = malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *b = malloc(sizeof(double) * (size_t)n * (size_t)n);
    float *f = malloc(sizeof(float) * (size_t)n * (size_t)n);
    double r = NAN;
    if (a && b && f) {
        centred_gram(x, d, n, f, a);
        centred_gram(y, d2, n, f, b);
        r = cka_of(a, b, n);
    }
    free(a);
    free(b);
    free(f);
    return r;
}

int pare_eff_probe(const pare_eff *e, const long **idx)
{
    *idx = e->probe_idx;
    return e->probe_n;
}

void pare_eff_set_probe_data(pare_eff *e, const float *x)
{
    size_t sz = pare_shape_size(e->g->nodes[0].out) * (size_t)e->probe_n;
    free(e->probe_x);
    e->probe_x = malloc(sizeof(float) * sz);
    if (e->probe_x)
        memcpy(e->probe_x, x, sizeof(float) * sz);
}

static pare_status cka_check(pare_eff *e, pare_exec *x)
{
    if (e->o.freeze_cka <= 0 || !e->probe_x || e->n_frozen >= e->max_frozen)
        return PARE_OK;
    pare_graph *g = e->g;
    int n = e->probe_n;
    memcpy(pare_exec_input(x), e->probe_x, sizeof(float) * pare_shape_size(g->nodes[0].out) * (size_t)n);
    pare_exec_set_eval(x, 1);
    pare_exec_forward(x, n, 0);
    pare_exec_set_eval(x, 0);
    int freeze_to = e->n_frozen, chain = 1;
    for (int u = e->n_frozen; u < e->max_frozen; u++) {
        int v = e->units[u].bn >= 0 ? e->units[u].bn : e->units[u].node;
        int d = (int)pare_shape_size(g->nodes[v].out);
        size_t nn = (size_t)n * (size_t)n;
        int had = e->gram[u] != NULL;
        if (!had && !(e->gram[u] = malloc(sizeof(double) * nn)))
            return pare_fail(PARE_ENOMEM, "out of memory for CKA");
        centred_gram(pare_exec_value(x, v), d, n, e->fscratch, e->kscratch);
        /* the first check only records; later ones compare with the previous snapshot */
        double sim = had ? cka_of(e->gram[u], e->kscratch, n) : 0;
        if (chain && sim >= e->o.freeze_cka)
            freeze_to = u + 1;
        else
            chain = 0;
        memcpy(e->gram[u], e->kscratch, sizeof(double) * nn);
    }
    while (e->n_frozen < freeze_to)
        set_unit_frozen(e, e->n_frozen++, 1);
    return PARE_OK;
}

pare_status pare_eff_after_step(pare_eff *e, pare_exec *x, long step)
{
    pare_status s = PARE_OK;
    if (is_prune_step(e, step)) {
        /* back to the target by weight magnitude: exactly the plan's sparsity */
        s = pare_prune_apply(e->g, &e->plan, NULL, NULL);
        e->grown = 0;
        e->gmask_valid = 0;
        if (s != PARE_OK)
            return s;
    }
    if (e->o.freeze_cka > 0 && e->o.freeze_check > 0 && (step + 1) % e->o.freeze_check == 0)
        s = cka_check(e, x);
    return s;
}

pare_status pare_eff_epoch_end(pare_eff *e, pare_exec *x, int epoch)
{
    pare_status s = PARE_OK;
    /* the shallower store has served once every example has come round since */
    if (e->old.node && (e->cur.used >= e->old.used || epoch > e->old.epoch))
        store_drop(&e->old);
    if (e->o.sieve > 0 && (epoch + 1) % e->o.sieve_every == 0)
        s = sieve(e, epoch);
    if (s == PARE_OK && e->o.drop_data > 0)
        s = drop_data(e, epoch);
    if (s == PARE_OK && e->o.freeze_cka > 0 && e->o.freeze_check == 0)
        s = cka_check(e, x);
    return s;
}

/* ---- the frozen prefix's cache ------------------------------------------------------------ */

static uint64_t mix_bytes(uint64_t h, const void *p, size_t bytes)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < bytes; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* keys[v] for v in [0, upto]: a hash of the values and masks of every
 * parameter of nodes 1..v, which is what their outputs depend on. */
static void prefix_keys(const pare_graph *g, int upto, uint64_t *keys)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    keys[0] = h;
    for (int v = 1; v <= upto; v++) {
        const pare_node *nd = &g->nodes[v];
        for (int k = 0; k < nd->n_param; k++) {
            const pare_param *p = &g->params[nd->param[k]];
            h = mix_bytes(h, p->t->data, p->t->n * sizeof(float));
            if (p->mask)
                h = mix_bytes(h, p->mask, p->t->n);
        }
        keys[v] = h;
    }
}

static int store_open(fstore *f, const pare_graph *g, int node, uint64_t key, long n, size_t budget)
{
    memset(f, 0, sizeof *f);
    size_t row = pare_shape_size(g->nodes[node].out);
    size_t rows = row ? budget / (row * sizeof(float)) : 0;
    long cap = rows < (size_t)n ? (long)rows : n;
    if (cap < 1)
        return 0;
    f->slot = malloc(sizeof(int32_t) * (size_t)n);
    f->data = pare_alloc_array((size_t)cap * row, sizeof(float), 0);
    if (!f->slot || !f->data) {
        pare_error_clear(); /* the cache is an optimisation: training goes on without it */
        store_drop(f);
        return 0;
    }
    for (long i = 0; i < n; i++)
        f->slot[i] = -1;
    f->node = node;
    f->key = key;
    f->row = row;
    f->cap = cap;
    return 1;
}

/* Keeps the stores in step with the frozen prefix: its end now (returned; 0:
 * none or the cache is off) and the parameters up to it. */
static int cache_plan(pare_eff *e, pare_exec *x)
{
    if (!e->cache_budget)
        return 0;
    pare_graph *g = e->g;
    int cut = pare_exec_fixed_prefix(x);
    if (cut == 0) {
        store_drop(&e->cur);
        store_drop(&e->old);
        return 0;
    }
    uint64_t *keys = e->keys;
    prefix_keys(g, cut > e->cur.node ? cut : e->cur.node, keys);
    if (e->cur.node != cut || e->cur.key != keys[cut]) {
        /* The prefix grew (more units froze) or changed: a store at a
         * shallower end that is still right starts the forward of its
         * examples part of the way in, until the new store has them. */
        if (e->cur.node && e->cur.node < cut && e->cur.key == keys[e->cur.node]) {
            store_drop(&e->old);
            e->old = e->cur;
            e->old.epoch = e->epoch_now;
            memset(&e->cur, 0, sizeof e->cur);
        } else {
            store_drop(&e->cur);
        }
        if (e->old.node && (e->old.node >= cut || e->old.key != keys[e->old.node]))
            store_drop(&e->old);
        size_t used = store_bytes(&e->old);
        pare_free(e->rows);
        e->rows = pare_alloc_array((size_t)e->batch * pare_shape_size(g->nodes[cut].out), sizeof(float), 0);
        if (!e->rows)
            pare_error_clear();
        else
            store_open(&e->cur, g, cut, keys[cut], e->n, used < e->cache_budget ? e->cache_budget - used : 0);
    }
    return e->cur.node ? cut : 0;
}

/* Puts rows packed at 0..m (a group's forward) at their batch positions pos[0..m). */
static void gather_rows(float *rows, const float *packed, const int *pos, int m, size_t row)
{
    for (int j = 0; j < m; j++)
        memcpy(rows + (size_t)pos[j] * row, packed + (size_t)j * row, row * sizeof(float));
}

/* When the shallower store's group of a batch (from[i] == 1, *mo examples) is
 * smaller than the thread count, its examples run from the input instead. */
static void shallow_joins_input(int *from, int n, int threads, int *mo, int *mn)
{
    if (*mo == 0 || *mo >= threads)
        return;
    for (int i = 0; i < n; i++)
        if (from[i] == 1)
            from[i] = 0;
    *mn += *mo;
    *mo = 0;
}

long pare_eff_forward(pare_eff *e, pare_exec *x, const long *idx, int n, uint64_t seed)
{
    e->step_cut = e->step_mid = e->n_mid = 0;
    e->n_full = n;
    /* Fewer samples than threads run each sample's convs on every thread, in
     * other bits than the rows stored (docs/EFFICIENT.md): no cache then. */
    int threads = pare_exec_threads(x);
    int cut = idx && n >= threads ? cache_plan(e, x) : 0;
    if (!cut) {
        pare_exec_forward(x, n, seed);
        return 0;
    }
    const fstore *cur = &e->cur, *old = &e->old;
    size_t row = cur->row;
    /* each example from the current store (from[i] 2), the shallower one (1),
     * or the input (0); partial groups of at least `threads` samples, so that
     * they compute the same bits as whole batches do */
    int *pos = e->pick, *pn = pos + n, *from = pn + n, mc = 0, mo = 0, mn = 0;
    for (int i = 0; i < n; i++) {
        from[i] = cur->slot[idx[i]] >= 0 ? 2 : old->node && old->slot[idx[i]] >= 0 ? 1 : 0;
        mo += from[i] == 1;
        mn += from[i] == 0;
    }
    /* a too small shallower group joins the input's; a too small input group
     * takes examples of the current store, then of the shallower one, whose
     * rest then joins it if too few remain */
    shallow_joins_input(from, n, threads, &mo, &mn);
    for (int src = 2; src >= 1; src--)
        for (int i = 0; i < n && mn > 0 && mn < threads; i++)
            if (from[i] == src) {
                from[i] = 0;
                mn++;
                mo -= src == 1;
            }
    shallow_joins_input(from, n, threads, &mo, &mn);
    mo = mn = 0;
    for (int i = 0; i < n; i++) {
        if (from[i] == 2)
            mc++;
        else if (from[i] == 1)
            pos[mo++] = i;
        else
            pn[mn++] = i;
    }
    float *at_cut = pare_exec_value_buf(x, cut);
    if (mn == n) {
        pare_exec_forward(x, n, seed);
    } else if (mc == n) {
        for (int i = 0; i < n; i++)
            memcpy(at_cut + (size_t)i * row, cur->data + (size_t)cur->slot[idx[i]] * row, row * sizeof(float));
        e->step_cut = cut;
        e->n_full = 0;
    } else {
        float *rows = e->rows;
        if (mo > 0) {
            float *dst = pare_exec_value_buf(x, old->node);
            for (int j = 0; j < mo; j++)
                memcpy(dst + (size_t)j * old->row, old->data + (size_t)old->slot[idx[pos[j]]] * old->row,
                       old->row * sizeof(float));
            pare_exec_forward_range(x, mo, seed, old->node, cut);
            gather_rows(rows, at_cut, pos, mo, row);
        }
        if (mn > 0) {
            /* the uncached examples' inputs to the front, in order (rows only move down) */
            float *in = pare_exec_input(x);
            size_t isz = pare_shape_size(e->g->nodes[0].out);
            for (int j = 0; j < mn; j++)
                if (pn[j] != j)
                    memmove(in + (size_t)j * isz, in + (size_t)pn[j] * isz, isz * sizeof(float));
            pare_exec_forward_range(x, mn, seed, 0, cut);
            gather_rows(rows, at_cut, pn, mn, row);
        }
        for (int i = 0; i < n; i++)
            if (from[i] == 2)
                memcpy(rows + (size_t)i * row, cur->data + (size_t)cur->slot[idx[i]] * row, row * sizeof(float));
        memcpy(at_cut, rows, (size_t)n * row * sizeof(float));
        e->step_cut = cut;
        e->step_mid = mo > 0 ? old->node : 0;
        e->n_full = mn;
        e->n_mid = mo;
    }
    /* the batch's new rows join the store while it has room */
    fstore *f = &e->cur;
    for (int i = 0; i < n && f->used < f->cap; i++)
        if (f->slot[idx[i]] < 0) {
            f->slot[idx[i]] = (int32_t)f->used;
            memcpy(f->data + (size_t)f->used * row, at_cut + (size_t)i * row, row * sizeof(float));
            f->used++;
        }
    if (mn < n)
        pare_exec_forward_from(x, n, seed, cut);
    return mc + mo;
}

/* ---- accounting ----------------------------------------------------------------------- */

static double density_of(const pare_param *p)
{
    if (!p->mask)
        return 1.0;
    size_t k = 0;
    for (size_t j = 0; j < p->t->n; j++)
        k += p->mask[j] != 0;
    return (double)k / (double)p->t->n;
}

void pare_train_flops(const pare_graph *g, const pare_eff *e, int n, double *flops, double *dense)
{
    double f = 0, fd = 0;
    /* up[v]: some trainable, unfrozen parameter at v or before it on a path into v */
    int *up = calloc((size_t)g->n_nodes, sizeof(int));
    for (int v = 0; v < g->n_nodes; v++) {
        const pare_node *nd = &g->nodes[v];
        const pare_op_def *def = pare_op_get(nd->op);
        double macs = def && def->macs ? def->macs(g, nd) : 0;
        int own = 0, any = 0;
        for (int j = 0; j < nd->n_param; j++) {
            const pare_param *p = &g->params[nd->param[j]];
            own |= p->trainable && !p->frozen;
            any |= p->trainable;
        }
        int in_up = 0;
        for (int j = 0; j < nd->n_in; j++)
            in_up |= up ? up[nd->in[j]] : 1;
        if (up)
            up[v] = own || in_up;
        double dens = 1.0, gdens = 1.0;
        if ((nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR) && nd->n_param > 0) {
            const pare_param *w = &g->params[nd->param[0]];
            if (w->mask && pare_op_sparse_path(g, v)) {
                dens = density_of(w);
                /* plain training and growth steps ask for dense weight gradients */
                gdens = e && e->sparse_grads_on ? dens : 1.0;
                if (e && e->gmask_on)
                    for (int u = 0; u < e->n_units; u++)
                        if (e->units[u].node == v && e->gmask[u])
                            gdens = dens * (1.0 - e->o.grad_mask);
            }
        }
        double fwd = 2.0 * macs * n;
        if (e && e->step_cut && v <= e->step_cut)   /* only the examples the cache lacked */
            f += 2.0 * macs * (e->n_full + (v > e->step_mid && e->step_mid ? e->n_mid : 0)) * dens;
        else
            f += fwd * dens;
        fd += fwd;
        if (in_up && v > 0)
            f += fwd * dens;                         /* gradient of the input */
        if (nd->n_in > 0 && g->nodes[nd->in[0]].op != PARE_OP_INPUT)
            fd += fwd;
        if (own && (nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR))
            f += fwd * gdens;                        /* gradient of the weights */
        if (any && (nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR))
            fd += fwd;
    }
    free(up);
    *flops = f;
    *dense = fd;
}

void pare_train_stats(const pare_graph *g, const pare_eff *e, long *out_of_set, int *frozen, int *units,
                      double *sparsity)
{
    *out_of_set = e ? e->n - e->n_active : 0;
    int fz = 0, nu = 0;
    size_t zero = 0, all = 0;
    for (int v = 0; v < g->n_nodes; v++) {
        const pare_node *nd = &g->nodes[v];
        if ((nd->op != PARE_OP_CONV2D && nd->op != PARE_OP_LINEAR) || nd->n_param < 1)
            continue;
        const pare_param *p = &g->params[nd->param[0]];
        nu++;
        fz += p->frozen != 0;
        for (size_t j = 0; j < p->t->n; j++)
            zero += (p->mask && !p->mask[j]) || p->t->data[j] == 0.0f;
        all += p->t->n;
    }
    *frozen = fz;
    *units = nu;
    *sparsity = all ? (double)zero / (double)all : 0;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

void pare_eff_save(const pare_eff *e, pare_wbuf *b)
{
    pare_wbuf_u32(b, STATE_VERSION);
    pare_wbuf_u64(b, (uint64_t)e->n);
    pare_wbuf_u32(b, (uint32_t)e->n_units);
    pare_wbuf_u32(b, (uint32_t)e->n_frozen);
    for (int u = 0; u < e->n_units; u++)
        pare_wbuf_u8(b, e->policy_frozen[u]);
    pare_wbuf_u32(b, (uint32_t)e->grown);
    pare_wbuf_u32(b, (uint32_t)e->gmask_valid);
    for (int u = 0; u < e->n_units; u++) {
        size_t n = e->g->params[e->units[u].weight].t->n;
        pare_wbuf_u8(b, e->gmask[u] != NULL);
        if (e->gmask[u])
            pare_wbuf_put(b, e->gmask[u], n);
    }
    pare_wbuf_u64(b, (uint64_t)e->n_active);
    for (long i = 0; i < e->n_active; i++)
        pare_wbuf_u64(b, (uint64_t)e->active[i]);
    pare_wbuf_u64(b, (uint64_t)e->q_head);
    pare_wbuf_u64(b, (uint64_t)e->q_len);
    for (long i = 0; i < e->q_len; i++)
        pare_wbuf_u64(b, (uint64_t)e->queue[(e->q_head + i) % e->n]);
    pare_wbuf_u64(b, (uint64_t)e->n_dropped);
    pare_wbuf_put(b, e->dropped, (size_t)e->n);
    for (long i = 0; i < e->n; i++)
        pare_wbuf_u32(b, e->forgets[i]);
    pare_wbuf_put(b, e->last, (size_t)e->n);
    pare_wbuf_u32(b, (uint32_t)e->probe_n);
    for (int u = 0; u < e->n_units; u++) {
        pare_wbuf_u8(b, e->gram[u] != NULL);
        if (e->gram[u])
            for (size_t i = 0; i < (size_t)e->probe_n * (size_t)e->probe_n; i++)
                pare_wbuf_f64(b, e->gram[u][i]);
    }
}

pare_status pare_eff_load(pare_eff *e, pare_rbuf *r)
{
#define BAD() pare_fail(PARE_EFORMAT, "the efficient-training state is damaged or from other options")
    if (pare_rbuf_u32(r) != STATE_VERSION || pare_rbuf_u64(r) != (uint64_t)e->n ||
        pare_rbuf_u32(r) != (uint32_t)e->n_units)
        return BAD();
    uint32_t nf = pare_rbuf_u32(r);
    if (nf > (uint32_t)e->n_units)
        return BAD();
    e->n_frozen = (int)nf;
    for (int u = 0; u < e->n_units; u++)
        e->policy_frozen[u] = pare_rbuf_u8(r);
    e->grown = (int)pare_rbuf_u32(r);
    e->gmask_valid = (int)pare_rbuf_u32(r);
    for (int u = 0; u < e->n_units; u++) {
        size_t n = e->g->params[e->units[u].weight].t->n;
        if (pare_rbuf_u8(r)) {
            if (!e->gmask[u] && !(e->gmask[u] = malloc(n)))
                return pare_fail(PARE_ENOMEM, "out of memory");
            if (!pare_rbuf_get(r, e->gmask[u], n))
                return BAD();
        }
    }
    uint64_t na = pare_rbuf_u64(r);
    if (r->bad || na > (uint64_t)e->n)
        return BAD();
    e->n_active = (long)na;
    for (long i = 0; i < e->n_active; i++) {
        uint64_t v = pare_rbuf_u64(r);
        if (v >= (uint64_t)e->n)
            return BAD();
        e->active[i] = (long)v;
    }
    uint64_t qh = pare_rbuf_u64(r), ql = pare_rbuf_u64(r);
    if (r->bad || qh >= (uint64_t)e->n || ql > (uint64_t)e->n)
        return BAD();
    e->q_head = (long)qh;
    e->q_len = (long)ql;
    for (long i = 0; i < e->q_len; i++) {
        uint64_t v = pare_rbuf_u64(r);
        if (v >= (uint64_t)e->n)
            return BAD();
        e->queue[(e->q_head + i) % e->n] = (long)v;
    }
    e->n_dropped = (long)pare_rbuf_u64(r);
    if (!pare_rbuf_get(r, e->dropped, (size_t)e->n))
        return BAD();
    for (long i = 0; i < e->n; i++)
        e->forgets[i] = pare_rbuf_u32(r);
    if (!pare_rbuf_get(r, e->last, (size_t)e->n) || pare_rbuf_u32(r) != (uint32_t)e->probe_n)
        return BAD();
    for (int u = 0; u < e->n_units; u++) {
        if (pare_rbuf_u8(r)) {
            size_t nn = (size_t)e->probe_n * (size_t)e->probe_n;
            if (!e->gram[u] && !(e->gram[u] = malloc(sizeof(double) * (nn ? nn : 1))))
                return pare_fail(PARE_ENOMEM, "out of memory");
            for (size_t i = 0; i < nn; i++)
                e->gram[u][i] = pare_rbuf_f64(r);
        }
    }
    if (r->bad)
        return BAD();
    return PARE_OK;
#undef BAD
}
