/* Forward and backward over the node list, with buffers planned by liveness. */
#include "graph/exec.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "graph/op.h"

typedef struct slot {
    size_t floats;
    float *p;
} slot;

struct pare_exec {
    pare_graph *g;
    int batch, training, threads;
    float **y;        /* per node output */
    float **dy;       /* per node output gradient (training) */
    int *dy_alias;    /* 1: dy[v] is its consumer's buffer and v's backward is skipped */
    void **aux;
    float **pgrad;    /* per parameter */
    float *ws;
    size_t ws_floats; /* per thread */
    int n_slots;
    slot *slots;
    float *input;
    int *rg;          /* during backward: v's backward has work */
    int *init;        /* during backward: dy[v] holds a value */
    /* per-call scratch, sized for the widest node */
    const float **sx;
    pare_shape *sxs;
    float **sdx;
    int *sacc;
    int *needed;      /* node contributes to the output */
    int *consumers;   /* number of consumers per node */
    int *cut;         /* 1: no needed node after it reads a node before it */
    int eval;         /* forward as in inference (BN running statistics, no dropout) */
    int profile;
    double *t_fwd, *t_bwd;
    size_t bytes;
    int sparse_grads;           /* weight gradients only where the pruning mask keeps */
    const uint8_t **grad_mask;  /* per parameter, an explicit gradient mask (borrowed) or NULL */
    size_t *aux_size;           /* per node, bytes of aux */
    int n_masked;               /* parameters with a mask when the room was last planned */
};

/* A pool of buffers handed out by size; planning only records sizes. */
typedef struct pool {
    int n, cap;
    slot *s;
    int *busy;
} pool;

static int pool_take(pool *p, size_t floats)
{
    int best = -1, largest = -1;
    for (int i = 0; i < p->n; i++) {
        if (p->busy[i])
            continue;
        if (p->s[i].floats >= floats && (best < 0 || p->s[i].floats < p->s[best].floats))
            best = i;
        if (largest < 0 || p->s[i].floats > p->s[largest].floats)
            largest = i;
    }
    if (best < 0 && largest >= 0) {
        best = largest;
        p->s[best].floats = floats;
    }
    if (best < 0) {
        if (p->n == p->cap) {
            int c = p->cap ? p->cap * 2 : 16;
            slot *ns = realloc(p->s, sizeof(slot) * (size_t)c);
            if (!ns)
                return -1;
            p->s = ns;
            int *nb = realloc(p->busy, sizeof(int) * (size_t)c);
            if (!nb)
                return -1;
            p->busy = nb;
            p->cap = c;
        }
        best = p->n++;
        p->s[best].floats = floats;
        p->s[best].p = NULL;
    }
    p->busy[best] = 1;
    return best;
}

static void pool_give(pool *p, int i) { p->busy[i] = 0; }

int pare_exec_batch(const pare_exec *e) { return e->batch; }
void pare_exec_set_eval(pare_exec *e, int eval) { e->eval = eval != 0; }
float *pare_exec_input(pare_exec *e) { return e->input; }
const float *pare_exec_output(const pare_exec *e) { return e->y[e->g->output]; }
float *pare_exec_output_grad(pare_exec *e) { return e->training ? e->dy[e->g->output] : NULL; }
size_t pare_exec_bytes(const pare_exec *e) { return e->bytes; }
const float *pare_exec_value(const pare_exec *e, int v) { return e->y[v]; }

float *pare_exec_param_grad(pare_exec *e, int param)
{
    if (!e->training || param < 0 || param >= e->g->n_params)
        return NULL;
    const pare_param *p = &e->g->params[param];
    if (!p->trainable || p->frozen)
        return NULL;
    return e->pgrad[param];
}

void pare_exec_free(pare_exec *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n_slots; i++)
        pare_free(e->slots[i].p);
    free(e->slots);
    if (e->aux)
        for (int i = 0; i < e->g->n_nodes; i++)
            pare_free(e->aux[i]);
    if (e->pgrad)
        for (int i = 0; i < e->g->n_params; i++)
            pare_free(e->pgrad[i]);
    free(e->aux);
    free(e->pgrad);
    free(e->y);
    free(e->dy);
    free(e->dy_alias);
    free(e->rg);
    free(e->init);
    free(e->sx);
    free(e->sxs);
    free(e->sdx);
    free(e->sacc);
    free(e->needed);
    free(e->consumers);
    free(e->cut);
    free(e->t_fwd);
    free(e->t_bwd);
    free(e->grad_mask);
    free(e->aux_size);
    pare_free(e->ws);
    free(e);
}

/* Which value owns the storage of v (flatten shares its input's bytes). */
static int storage_root(const pare_graph *g, int v)
{
    while (v > 0 && pare_op_get(g->nodes[v].op)->alias_input)
        v = g->nodes[v].in[0];
    return v;
}

pare_status pare_exec_new(pare_graph *g, int batch, int training, int threads, pare_exec **out)
{
    *out = NULL;
    if (!g || g->err)
        return g ? g->err : pare_fail(PARE_EINVAL, "no graph");
    if (batch <= 0)
        return pare_fail(PARE_EINVAL, "batch size must be positive, got %d", batch);
    if (g->n_nodes == 0 || g->nodes[0].op != PARE_OP_INPUT || g->output < 1)
        return pare_fail(PARE_EINVAL, "graph %s has no input or no layers", g->name);
    int n = g->n_nodes;
    pare_exec *e = calloc(1, sizeof *e);
    if (!e)
        return pare_fail(PARE_ENOMEM, "out of memory");
    e->g = g;
    e->batch = batch;
    e->training = training;
    e->threads = pare_threads_resolve(threads);
    e->y = calloc((size_t)n, sizeof(float *));
    e->dy = calloc((size_t)n, sizeof(float *));
    e->dy_alias = calloc((size_t)n, sizeof(int));
    e->aux = calloc((size_t)n, sizeof(void *));
    e->pgrad = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(float *));
    e->rg = calloc((size_t)n, sizeof(int));
    e->init = calloc((size_t)n, sizeof(int));
    int max_in = 1;
    for (int v = 0; v < n; v++)
        if (g->nodes[v].n_in > max_in)
            max_in = g->nodes[v].n_in;
    e->sx = calloc((size_t)max_in, sizeof(*e->sx));
    e->sxs = calloc((size_t)max_in, sizeof(*e->sxs));
    e->sdx = calloc((size_t)max_in, sizeof(*e->sdx));
    e->sacc = calloc((size_t)max_in, sizeof(*e->sacc));
    e->needed = calloc((size_t)n, sizeof(int));
    e->consumers = calloc((size_t)n, sizeof(int));
    e->cut = calloc((size_t)n, sizeof(int));
    e->t_fwd = calloc((size_t)n, sizeof(double));
    e->t_bwd = calloc((size_t)n, sizeof(double));
    e->grad_mask = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(*e->grad_mask));
    e->aux_size = calloc((size_t)n, sizeof(size_t));
    int *fslot = malloc(sizeof(int) * (size_t)n), *bslot = malloc(sizeof(int) * (size_t)n);
    int *last_use = malloc(sizeof(int) * (size_t)n);
    pool fp = {0, 0, NULL, NULL};
    pare_status st = PARE_ENOMEM;
    if (!e->y || !e->dy || !e->dy_alias || !e->aux || !e->pgrad || !e->rg || !e->init || !e->needed ||
        !e->sx || !e->sxs || !e->sdx || !e->sacc ||
        !e->consumers || !e->cut || !e->t_fwd || !e->t_bwd || !e->grad_mask || !e->aux_size || !fslot || !bslot || !last_use)
        goto fail;

    /* Nodes the output depends on, and consumer counts among them. */
    e->needed[g->output] = 1;
    for (int v = g->output; v >= 0; v--)
        if (e->needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++)
                e->needed[g->nodes[v].in[j]] = 1;
    for (int v = 0; v < n; v++)
        if (e->needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++)
                e->consumers[g->nodes[v].in[j]]++;
    /* Cuts, from the back: `low` is the smallest node a needed node after v reads. */
    for (int v = n - 1, low = n; v > 0; v--) {
        e->cut[v] = e->needed[v] && low >= v;
        if (e->needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++)
                if (g->nodes[v].in[j] < low)
                    low = g->nodes[v].in[j];
    }

    /* Forward storage. Training keeps everything; inference frees a value's
     * storage after its last consumer. */
    for (int v = 0; v < n; v++) {
        fslot[v] = -1;
        last_use[v] = v;
    }
    for (int v = 0; v < n; v++)
        if (e->needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++) {
                int r = storage_root(g, g->nodes[v].in[j]);
                if (last_use[r] < v)
                    last_use[r] = v;
            }
    last_use[storage_root(g, g->output)] = n;
    for (int v = 0; v < n; v++) {
        if (!e->needed[v])
            continue;
        int r = storage_root(g, v);
        if (r != v) {
            fslot[v] = fslot[r];
        } else {
            fslot[v] = pool_take(&fp, pare_mul_size(pare_shape_size(g->nodes[v].out), (size_t)batch));
            if (fslot[v] < 0)
                goto fail;
        }
        if (!training)
            for (int j = 0; j < g->nodes[v].n_in; j++) {
                int r2 = storage_root(g, g->nodes[v].in[j]);
                if (last_use[r2] == v && fp.busy[fslot[r2]])
                    pool_give(&fp, fslot[r2]);
            }
    }
    int n_fwd = fp.n;

    /* Gradient storage, planned in backward order: dy[v] lives from its first
     * consumer's backward to v's own. */
    if (training) {
        for (int v = 0; v < n; v++)
            bslot[v] = -1;
        /* All forward slots stay busy; gradient slots come after them. */
        int o = g->output;
        bslot[o] = pool_take(&fp, pare_mul_size(pare_shape_size(g->nodes[o].out), (size_t)batch));
        if (bslot[o] < 0)
            goto fail;
        for (int v = o; v >= 1; v--) {
            if (!e->needed[v] || bslot[v] < 0)
                continue;
            const pare_node *nd = &g->nodes[v];
            const pare_op_def *def = pare_op_get(nd->op);
            int keep = 0;
            for (int j = 0; j < nd->n_in; j++) {
                int u = nd->in[j];
                if (u == 0 || bslot[u] >= 0)
                    continue;
                if (def->alias_input && e->consumers[u] == 1) {
                    bslot[u] = bslot[v];
                    e->dy_alias[u] = 0;
                    keep = 1;
                    e->dy_alias[v] = 1;
                } else {
                    bslot[u] = pool_take(&fp, pare_mul_size(pare_shape_size(g->nodes[u].out), (size_t)batch));
                    if (bslot[u] < 0)
                        goto fail;
                }
            }
            if (!keep)
                pool_give(&fp, bslot[v]);
        }
    }

    /* Allocate the slots. */
    e->n_slots = fp.n;
    e->slots = fp.s;
    fp.s = NULL;
    for (int i = 0; i < e->n_slots; i++) {
        e->slots[i].p = pare_alloc_array(e->slots[i].floats, sizeof(float), 0);
        if (!e->slots[i].p)
            goto fail;
        e->bytes += e->slots[i].floats * sizeof(float);
    }
    (void)n_fwd;
    for (int v = 0; v < n; v++) {
        if (fslot[v] >= 0)
            e->y[v] = e->slots[fslot[v]].p;
        if (training && bslot[v] >= 0)
            e->dy[v] = e->slots[bslot[v]].p;
    }
    e->input = e->y[0];
    if (!e->input) {
        st = pare_fail(PARE_EINVAL, "graph %s does not use its input", g->name);
        goto fail;
    }

    /* Saved state, workspace, parameter gradients. */
    size_t ws = 0;
    for (int v = 1; v < n; v++) {
        if (!e->needed[v])
            continue;
        const pare_op_def *def = pare_op_get(g->nodes[v].op);
        if (def->ws_floats) {
            size_t w = def->ws_floats(g, &g->nodes[v], batch, training);
            if (w > ws)
                ws = w;
        }
        if (def->aux_bytes) {
            size_t a = def->aux_bytes(g, &g->nodes[v], batch);
            if (a) {
                e->aux[v] = pare_alloc(a, 1);
                if (!e->aux[v])
                    goto fail;
                e->aux_size[v] = a;
                e->bytes += a;
            }
        }
    }
    for (int i = 0; i < g->n_params; i++)
        e->n_masked += g->params[i].mask != NULL;
    e->ws_floats = (ws + 15) / 16 * 16;
    if (e->ws_floats) {
        e->ws = pare_alloc_array(e->ws_floats, sizeof(float) * (size_t)e->threads, 0);
        if (!e->ws)
            goto fail;
        e->bytes += e->ws_floats * sizeof(float) * (size_t)e->threads;
    }
    if (training)
        for (int i = 0; i < g->n_params; i++)
            if (g->params[i].trainable) {
                e->pgrad[i] = pare_alloc_array(g->params[i].t->n, sizeof(float), 1);
                if (!e->pgrad[i])
                    goto fail;
                e->bytes += g->params[i].t->n * sizeof(float);
            }
    free(fslot);
    free(bslot);
    free(last_use);
    free(fp.busy);
    *out = e;
    return PARE_OK;

fail:
    if (st == PARE_ENOMEM)
        pare_fail(PARE_ENOMEM, "out of memory planning batch %d of %s", batch, g->name);
    free(fslot);
    free(bslot);
    free(last_use);
    free(fp.s);
    free(fp.busy);
    pare_exec_free(e);
    return st;
}

static void fill_ctx(pare_exec *e, int v, int n, pare_op_ctx *c, const float **x, pare_shape *xs,
                     float **w, const uint8_t **mask)
{
    pare_graph *g = e->g;
    const pare_node *nd = &g->nodes[v];
    memset(c, 0, sizeof *c);
    c->g = g;
    c->node = nd;
    c->n = n;
    c->training = e->training && !e->eval;
    c->threads = e->threads;
    for (int j = 0; j < nd->n_in; j++) {
        x[j] = e->y[nd->in[j]];
        xs[j] = g->nodes[nd->in[j]].out;
    }
    for (int k = 0; k < nd->n_param; k++) {
        w[k] = g->params[nd->param[k]].t->data;
        mask[k] = g->params[nd->param[k]].mask;
    }
    c->x = x;
    c->xs = xs;
    c->y = e->y[v];
    c->w = w;
    c->mask = mask;
    c->aux = e->aux[v];
    c->ws = e->ws;
    c->ws_floats = e->ws_floats;
}

/* Ops plan room for their sparse paths (workspace, saved lists) only for
 * masked weights, and sparse training adds masks after the executor exists:
 * when the number of masks changes, the room grows to what the ops now ask.
 * Should that fail, the old room stays and those layers run dense. */
static void grow_for_masks(pare_exec *e)
{
    pare_graph *g = e->g;
    int masked = 0;
    for (int i = 0; i < g->n_params; i++)
        masked += g->params[i].mask != NULL;
    if (masked == e->n_masked)
        return;
    e->n_masked = masked;
    size_t ws = 0;
    for (int v = 1; v < g->n_nodes; v++) {
        if (!e->needed[v])
            continue;
        const pare_op_def *def = pare_op_get(g->nodes[v].op);
        if (def->ws_floats) {
            size_t w = def->ws_floats(g, &g->nodes[v], e->batch, e->training);
            if (w > ws)
                ws = w;
        }
        size_t a = def->aux_bytes ? def->aux_bytes(g, &g->nodes[v], e->batch) : 0;
        void *p = a > e->aux_size[v] ? pare_alloc(a, 1) : NULL;
        if (p) {
            pare_free(e->aux[v]);
            e->aux[v] = p;
            e->bytes += a - e->aux_size[v];
            e->aux_size[v] = a;
        }
    }
    ws = (ws + 15) / 16 * 16;
    float *p = ws > e->ws_floats ? pare_alloc_array(ws, sizeof(float) * (size_t)e->threads, 0) : NULL;
    if (p) {
        pare_free(e->ws);
        e->ws = p;
        e->bytes += (ws - e->ws_floats) * sizeof(float) * (size_t)e->threads;
        e->ws_floats = ws;
    }
}

void pare_exec_forward_range(pare_exec *e, int n, uint64_t step_seed, int start, int end)
{
    pare_graph *g = e->g;
    if (n > e->batch)
        n = e->batch;
    if (start < 0 || start >= g->n_nodes)
        start = 0;
    if (end >= g->n_nodes)
        end = g->n_nodes - 1;
    grow_for_masks(e);
    for (int v = start + 1; v <= end; v++) {
        if (!e->needed[v])
            continue;
        const pare_node *nd = &g->nodes[v];
        const pare_op_def *def = pare_op_get(nd->op);
        if (def->alias_input)
            continue;
        float *w[PARE_NODE_MAX_PARAMS];
        const uint8_t *mask[PARE_NODE_MAX_PARAMS];
        pare_op_ctx c;
        fill_ctx(e, v, n, &c, e->sx, e->sxs, w, mask);
        c.seed = pare_hash64(step_seed ^ pare_hash64((uint64_t)v));
        double t0 = e->profile ? pare_now_s() : 0;
        def->forward(&c);
        if (e->profile)
            e->t_fwd[v] += pare_now_s() - t0;
    }
}

void pare_exec_forward_from(pare_exec *e, int n, uint64_t step_seed, int start)
{
    pare_exec_forward_range(e, n, step_seed, start, e->g->n_nodes - 1);
}

void pare_exec_forward(pare_exec *e, int n, uint64_t step_seed) { pare_exec_forward_range(e, n, step_seed, 0, e->g->n_nodes - 1); }

/* Computes the same values for a sample at every training step, whatever
 * else is in its batch: no trainable, unfrozen parameter, no dropout or fake
 * quantization (QAT moves its ranges), a batch norm only when frozen (it then
 * normalises with running statistics), and no linear layer (it multiplies the
 * batch as one matrix, whose rounding may depend on the batch's size). */
static int fixed_node(const pare_graph *g, const pare_node *nd)
{
    if (nd->op == PARE_OP_DROPOUT || nd->op == PARE_OP_FAKEQUANT || nd->op == PARE_OP_LINEAR)
        return 0;
    if (nd->op == PARE_OP_BATCHNORM && (nd->n_param < 1 || !g->params[nd->param[0]].frozen))
        return 0;
    for (int k = 0; k < nd->n_param; k++) {
        const pare_param *p = &g->params[nd->param[k]];
        if (p->trainable && !p->frozen)
            return 0;
    }
    return 1;
}

int pare_exec_fixed_prefix(const pare_exec *e)
{
    const pare_graph *g = e->g;
    int best = 0;
    for (int v = 1; v < g->output; v++) {
        if (e->needed[v] && !fixed_node(g, &g->nodes[v]))
            break;
        if (e->cut[v])
            best = v;
    }
    return best;
}

int pare_exec_threads(const pare_exec *e) { return e->threads; }

float *pare_exec_value_buf(pare_exec *e, int v) { return v >= 0 && v < e->g->n_nodes ? e->y[v] : NULL; }

/* Does v's backward have work: a trainable unfrozen parameter here or upstream. */
static void grad_flags(const pare_exec *e, int *rg)
{
    const pare_graph *g = e->g;
    for (int v = 0; v < g->n_nodes; v++) {
        rg[v] = 0;
        if (!e->needed[v])
            continue;
        const pare_node *nd = &g->nodes[v];
        for (int k = 0; k < nd->n_param; k++) {
            const pare_param *p = &g->params[nd->param[k]];
            if (p->trainable && !p->frozen)
                rg[v] = 1;
        }
        for (int j = 0; j < nd->n_in; j++)
            if (rg[nd->in[j]])
                rg[v] = 1;
    }
}

void pare_exec_backward(pare_exec *e, int n)
{
    pare_graph *g = e->g;
    if (!e->training)
        return;
    if (n > e->batch)
        n = e->batch;
    int *rg = e->rg, *init = e->init;
    grad_flags(e, rg);
    memset(init, 0, sizeof(int) * (size_t)g->n_nodes);
    init[g->output] = 1;
    for (int v = g->output; v >= 1; v--) {
        if (!e->needed[v] || !rg[v] || !init[v])
            continue;
        const pare_node *nd = &g->nodes[v];
        const pare_op_def *def = pare_op_get(nd->op);
        if (e->dy_alias[v]) {
            /* The input's gradient is this buffer already (flatten). */
            init[nd->in[0]] = 1;
            continue;
        }
        float *w[PARE_NODE_MAX_PARAMS], *dw[PARE_NODE_MAX_PARAMS];
        const uint8_t *mask[PARE_NODE_MAX_PARAMS], *dw_mask[PARE_NODE_MAX_PARAMS];
        pare_op_ctx c;
        fill_ctx(e, v, n, &c, e->sx, e->sxs, w, mask);
        /* Inputs listed twice get overwrite then add, in order. */
        for (int j = 0; j < nd->n_in; j++) {
            int u = nd->in[j];
            e->sdx[j] = rg[u] ? e->dy[u] : NULL;
            e->sacc[j] = e->sdx[j] ? init[u] : 0;
            if (e->sdx[j])
                init[u] = 1;
        }
        for (int k = 0; k < nd->n_param; k++) {
            const pare_param *p = &g->params[nd->param[k]];
            dw[k] = (p->trainable && !p->frozen) ? e->pgrad[nd->param[k]] : NULL;
            dw_mask[k] = e->grad_mask[nd->param[k]] ? e->grad_mask[nd->param[k]]
                                                     : e->sparse_grads ? p->mask : NULL;
        }
        c.dy = e->dy[v];
        c.dx = e->sdx;
        c.dx_acc = e->sacc;
        c.dw = dw;
        c.dw_mask = dw_mask;
        double t0 = e->profile ? pare_now_s() : 0;
        def->backward(&c);
        if (!def->handles_dw_mask)
            for (int k = 0; k < nd->n_param; k++)
                if (dw[k] && dw_mask[k])
                    for (size_t i = 0; i < g->params[nd->param[k]].t->n; i++)
                        if (!dw_mask[k][i])
                            dw[k][i] = 0.0f;
        if (e->profile)
            e->t_bwd[v] += pare_now_s() - t0;
    }
}

void pare_exec_set_sparse_grads(pare_exec *e, int on) { e->sparse_grads = on != 0; }

void pare_exec_set_grad_mask(pare_exec *e, int param, const uint8_t *m)
{
    if (param >= 0 && param < e->g->n_params)
        e->grad_mask[param] = m;
}

void pare_exec_profile(pare_exec *e, int enable)
{
    e->profile = enable;
    memset(e->t_fwd, 0, sizeof(double) * (size_t)e->g->n_nodes);
    memset(e->t_bwd, 0, sizeof(double) * (size_t)e->g->n_nodes);
}

void pare_exec_profile_get(const pare_exec *e, int node, double *fwd, double *bwd)
{
    *fwd = e->t_fwd[node];
    *bwd = e->t_bwd[node];
}
