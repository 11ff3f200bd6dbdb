/* Structural removal: masks that make pruned filters exact zero channels, and
 * pare_purify, which rebuilds a graph without dead or unused channels. */

/*
 * How pare_purify works
 *
 * Units. Every value (node output) is cut into U units of S consecutive
 * features of its per-sample vector: a C x H x W value has U = C channels of
 * S = H*W features; a linear output has S = 1; relu, relu6, dropout and
 * flatten keep their input's units, so after a flatten a unit is still a whole
 * channel (H*W columns of the next linear layer). A value whose units are not
 * its channels (a flattened C x H x W with H*W > 1) is "blocked".
 *
 * Classes. Units that must be kept or removed together are joined in a
 * union-find. An op that maps unit u of its input to unit u of its output
 * (relu, relu6, dropout, flatten, batchnorm, the pools) joins the two; an add
 * joins unit u of both inputs and of its output, so a residual stream keeps
 * the union of the channels of everything that adds into it; a concat joins
 * unit u of input j to output unit offset_j + u; a depthwise conv (groups =
 * input channels > 1, multiplier m) joins input channel c to its outputs
 * c*m .. c*m+m-1. A conv with groups 1 and a linear layer join nothing: they
 * are where classes start ("sources": filter u makes unit u) and end ("sinks":
 * input slice u reads unit u). A class is pinned (never removed) when it holds
 * a unit of the graph input or output, of a grouped conv's input or output
 * (1 < groups, not depthwise: removing a channel would unbalance the groups),
 * or of a value an op cannot follow by units (a conv, batchnorm or pool on a
 * blocked value, an add or concat of mismatched units).
 *
 * Removal. Ops inside a class read only units of that class, so a class can
 * go when no sink can tell: every sink reading one of its units either has an
 * all-zero input slice for it (the unit is unused there) or reads a unit that
 * is dead. Deadness (exactly zero for every finite input) is computed forward:
 * a conv/linear output is dead when its bias is 0 and its filter is zero on
 * every input unit that is not dead (for a depthwise conv: its one input
 * channel is dead or its filter is zero); relu, relu6, pools, dropout and
 * flatten keep deadness; a batchnorm output is dead when its input is and its
 * evaluation-mode constant beta - mean * gamma / sqrt(var + eps), computed as
 * the forward pass computes it, is 0, or when gamma = beta = 0; an add output
 * is dead when both inputs are; a concat maps deadness by offset.
 *
 * Fixed point. The analysis works on a copy W of the graph. Each round computes
 * deadness, marks every removable class, and for each one zeroes in W its
 * sources' filter rows and biases and its sinks' input slices. That changes no
 * value outside the removed classes (those slices added nothing), so W computes
 * the same outputs; but it can make upstream units unused (their readers were
 * removed filters) and downstream units dead (they read only removed units),
 * which the next round finds. Zeros only grow, so the rounds end. A value must
 * keep a unit: when all its classes went, the one whose sources had the most
 * energy in the original comes back; keeping any removed class is still exact,
 * because its sinks' slices are zero in W.
 *
 * Rebuild. A fresh graph is built node by node through pare_graph_add_node
 * (conv and linear output counts and depthwise groups changed, shapes
 * re-inferred), and every parameter of W is gathered over the kept indices of
 * each of its dimensions, with its mask, frozen flag, scheme and per-channel
 * quantization parameters.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/alloc.h"
#include "core/error.h"
#include "graph/op.h"

enum node_kind {
    K_INPUT,   /* the graph input: pinned */
    K_SOURCE,  /* conv with groups 1, linear: filters start classes, input slices end them */
    K_DW,      /* depthwise conv: input channel c joined to its m outputs */
    K_GROUPED, /* other grouped convs: input and output pinned */
    K_TIED,    /* unit u in, unit u out: relu, relu6, dropout, flatten, batchnorm, pools */
    K_ADD,
    K_CONCAT,
    K_LOOSE, /* an op that cannot be followed by units: its input and output pinned */
};

typedef struct plan {
    int n;           /* nodes (= values) */
    int *U, *S;      /* per value: units, features per unit */
    int *base;       /* per value: its first unit in the numbering of all units */
    int total;       /* units of all values */
    uint8_t *kind;   /* per node */
    int *readers;    /* per value: how many inputs read it, the graph output counting as one */
    int *reader;     /* per value: its last reading node (meaningful when readers == 1) */
    int *root;       /* per unit: its class, named by one of its units */
    uint8_t *pinned; /* per unit; at a class's root: the class is pinned */
    int n_grouped;
} plan;

static void plan_free(plan *P)
{
    free(P->U);
    free(P->S);
    free(P->base);
    free(P->kind);
    free(P->readers);
    free(P->reader);
    free(P->root);
    free(P->pinned);
    memset(P, 0, sizeof *P);
}

static int regular(const pare_graph *g, const plan *P, int v)
{
    return P->U[v] == g->nodes[v].out.c;
}

static int find(int *parent, int x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static void unite(int *parent, int a, int b)
{
    a = find(parent, a);
    b = find(parent, b);
    if (a != b)
        parent[a < b ? b : a] = a < b ? a : b;
}

static void pin_value(plan *P, int v)
{
    memset(P->pinned + P->base[v], 1, (size_t)P->U[v]);
}

/* Units, kinds, readers and classes of a graph (already validated). */
static pare_status plan_build(const pare_graph *g, plan *P)
{
    memset(P, 0, sizeof *P);
    int n = g->n_nodes;
    size_t nn = (size_t)n;
    P->n = n;
    P->U = malloc(nn * sizeof(int));
    P->S = malloc(nn * sizeof(int));
    P->base = malloc(nn * sizeof(int));
    P->kind = malloc(nn);
    P->readers = calloc(nn, sizeof(int));
    P->reader = malloc(nn * sizeof(int));
    if (!P->U || !P->S || !P->base || !P->kind || !P->readers || !P->reader)
        goto fail_mem;
    long long total = 0;
    for (int i = 0; i < n; i++) {
        const pare_node *nd = &g->nodes[i];
        int c = nd->out.c, hw = nd->out.h * nd->out.w;
        int in = nd->n_in > 0 ? nd->in[0] : -1;
        int U = c, S = hw, kind = K_LOOSE;
        switch (nd->op) {
        case PARE_OP_INPUT:
            kind = K_INPUT;
            break;
        case PARE_OP_CONV2D:
            if (nd->a.groups == 1) {
                kind = K_SOURCE;
            } else if (nd->a.groups == g->nodes[in].out.c && regular(g, P, in)) {
                kind = K_DW;
            } else {
                kind = K_GROUPED;
                P->n_grouped++;
            }
            break;
        case PARE_OP_LINEAR:
            kind = K_SOURCE;
            break;
        case PARE_OP_RELU:
        case PARE_OP_RELU6:
        case PARE_OP_DROPOUT:
        case PARE_OP_FLATTEN:
            U = P->U[in];
            S = P->S[in];
            kind = K_TIED;
            break;
        case PARE_OP_MAXPOOL:
        case PARE_OP_AVGPOOL:
        case PARE_OP_GLOBAL_AVGPOOL:
        case PARE_OP_BATCHNORM:
            kind = regular(g, P, in) ? K_TIED : K_LOOSE;
            break;
        case PARE_OP_ADD:
            if (P->U[nd->in[0]] == P->U[nd->in[1]] && P->S[nd->in[0]] == P->S[nd->in[1]]) {
                U = P->U[in];
                S = P->S[in];
                kind = K_ADD;
            }
            break;
        case PARE_OP_CONCAT:
            kind = K_CONCAT;
            for (int j = 0; j < nd->n_in; j++)
                if (!regular(g, P, nd->in[j]))
                    kind = K_LOOSE;
            break;
        default:
            break;
        }
        P->U[i] = U;
        P->S[i] = S;
        P->kind[i] = (uint8_t)kind;
        P->base[i] = (int)total;
        P->reader[i] = -1;
        total += U;
        if (total > INT_MAX)
            return pare_fail(PARE_EUNSUPPORTED, "the graph has more than %d channels to purify",
                             INT_MAX);
        for (int j = 0; j < nd->n_in; j++) {
            P->readers[nd->in[j]]++;
            P->reader[nd->in[j]] = i;
        }
    }
    if (g->output >= 0)
        P->readers[g->output]++;
    P->total = (int)total;
    size_t nt = total > 0 ? (size_t)total : 1;
    P->root = malloc(nt * sizeof(int));
    P->pinned = calloc(nt, 1);
    if (!P->root || !P->pinned)
        goto fail_mem;
    int *parent = P->root;
    for (int u = 0; u < P->total; u++)
        parent[u] = u;
    for (int i = 0; i < n; i++) {
        const pare_node *nd = &g->nodes[i];
        int b = P->base[i];
        switch (P->kind[i]) {
        case K_INPUT:
            pin_value(P, i);
            break;
        case K_SOURCE:
            if (nd->op == PARE_OP_CONV2D && !regular(g, P, nd->in[0]))
                pin_value(P, nd->in[0]);
            break;
        case K_DW: {
            int m = nd->out.c / nd->a.groups;
            for (int j = 0; j < P->U[i]; j++)
                unite(parent, b + j, P->base[nd->in[0]] + j / m);
            break;
        }
        case K_GROUPED:
        case K_LOOSE:
            pin_value(P, i);
            for (int j = 0; j < nd->n_in; j++)
                pin_value(P, nd->in[j]);
            break;
        case K_TIED:
        case K_ADD:
            for (int j = 0; j < nd->n_in; j++)
                for (int u = 0; u < P->U[i]; u++)
                    unite(parent, b + u, P->base[nd->in[j]] + u);
            break;
        case K_CONCAT: {
            int off = 0;
            for (int j = 0; j < nd->n_in; j++) {
                int v = nd->in[j];
                for (int u = 0; u < P->U[v]; u++)
                    unite(parent, b + off + u, P->base[v] + u);
                off += P->U[v];
            }
            break;
        }
        default:
            break;
        }
    }
    if (g->output >= 0)
        pin_value(P, g->output);
    for (int u = 0; u < P->total; u++)
        P->root[u] = find(parent, u);
    for (int u = 0; u < P->total; u++)
        if (P->pinned[u])
            P->pinned[P->root[u]] = 1;
    return PARE_OK;
fail_mem:
    return pare_fail(PARE_ENOMEM, "out of memory planning the removal of channels");
}

/* A conv or linear weight as rows (filters) of blocks: block k of row o reads
 * input unit (o / Og) * Cg + k, or no particular unit when `units` is 0 (a conv
 * on a blocked value, whose channels are not units). */
typedef struct wview {
    const pare_param *w, *b;
    int O, nb, bl; /* rows, blocks per row, floats per block */
    int Og, Cg;    /* rows per group, input units per group */
    int in;        /* the input value */
    int units;
} wview;

static wview view_of(const pare_graph *g, const plan *P, int i)
{
    const pare_node *nd = &g->nodes[i];
    wview v;
    memset(&v, 0, sizeof v);
    int wp = pare_graph_node_param(g, i, PARE_ROLE_WEIGHT);
    int bp = pare_graph_node_param(g, i, PARE_ROLE_BIAS);
    v.w = &g->params[wp];
    v.b = bp >= 0 ? &g->params[bp] : NULL;
    v.in = nd->in[0];
    v.O = nd->out.c;
    if (nd->op == PARE_OP_LINEAR) {
        v.nb = P->U[v.in];
        v.bl = P->S[v.in];
        v.Og = v.O;
        v.units = 1;
    } else {
        const pare_tensor *t = v.w->t;
        v.nb = t->dims[1];
        v.bl = t->dims[2] * t->dims[3];
        v.Og = v.O / nd->a.groups;
        v.units = regular(g, P, v.in);
    }
    v.Cg = v.nb;
    return v;
}

static size_t block_at(const wview *v, int o, int k)
{
    return ((size_t)o * (size_t)v->nb + (size_t)k) * (size_t)v->bl;
}

/* 0: all zero; 1: finite with a nonzero; 2: not all finite (0 * inf is no zero). */
static int zero_state(const float *x, size_t n)
{
    int st = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) {
            if (!isfinite(x[i]))
                return 2;
            st = 1;
        }
    return st;
}

static int all_masked(const uint8_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (m[i])
            return 0;
    return 1;
}

static int block_reads_dead(const plan *P, const wview *v, const uint8_t *dead, int o, int k)
{
    return v->units && dead[P->base[v->in] + (o / v->Og) * v->Cg + k];
}

/* Whether filter o gives exactly zero for every input, given the dead units. */
static int row_dead(const plan *P, const wview *v, const uint8_t *dead, int o)
{
    if (v->b && v->b->t->data[o] != 0.0f)
        return 0;
    for (int k = 0; k < v->nb; k++) {
        int st = zero_state(v->w->t->data + block_at(v, o, k), (size_t)v->bl);
        if (st == 0 || (st == 1 && block_reads_dead(P, v, dead, o, k)))
            continue;
        return 0;
    }
    return 1;
}

/* Whether filter o is pruned: each block is masked out (zero when there is no
 * mask) or reads a dead unit. */
static int row_pruned(const plan *P, const wview *v, const uint8_t *dead, int o)
{
    for (int k = 0; k < v->nb; k++) {
        size_t at = block_at(v, o, k);
        int st = zero_state(v->w->t->data + at, (size_t)v->bl);
        int gone = v->w->mask ? all_masked(v->w->mask + at, (size_t)v->bl) : st == 0;
        if (gone || (st != 2 && block_reads_dead(P, v, dead, o, k)))
            continue;
        return 0;
    }
    return 1;
}

/* Whether sink i (a source node reading units) ignores unit u of its input:
 * the slice is zero, or the unit is dead and the slice finite. */
static int sink_ignores(const plan *P, const wview *v, const uint8_t *dead, int u)
{
    int unit_dead = dead[P->base[v->in] + u];
    for (int o = 0; o < v->O; o++) {
        int st = zero_state(v->w->t->data + block_at(v, o, u), (size_t)v->bl);
        if (st == 0 || (st == 1 && unit_dead))
            continue;
        return 0;
    }
    return 1;
}

static const float *param_data(const pare_graph *g, int node, pare_param_role r)
{
    int p = pare_graph_node_param(g, node, r);
    return p >= 0 ? g->params[p].t->data : NULL;
}

/* Evaluation-mode batchnorm of a zero input, channel c, as bn_forward computes
 * it: y = x * a + bb. Dead when a zero input stays zero, or any input goes to 0. */
static int bn_dead(const pare_graph *g, int i, int c, int in_dead)
{
    const float *gamma = param_data(g, i, PARE_ROLE_BN_GAMMA);
    const float *beta = param_data(g, i, PARE_ROLE_BN_BETA);
    const float *mean = param_data(g, i, PARE_ROLE_BN_MEAN);
    const float *var = param_data(g, i, PARE_ROLE_BN_VAR);
    float invstd = (float)(1.0 / sqrt((double)var[c] + (double)g->nodes[i].a.eps));
    float a = gamma[c] * invstd, bb = beta[c] - mean[c] * a;
    if (a == 0.0f && bb == 0.0f)
        return 1;
    return in_dead && bb == 0.0f && isfinite(a);
}

/* Deadness of node i's output units from its inputs'. */
static void dead_node(const pare_graph *g, const plan *P, int i, uint8_t *dead)
{
    const pare_node *nd = &g->nodes[i];
    uint8_t *d = dead + P->base[i];
    int U = P->U[i];
    switch (P->kind[i]) {
    case K_SOURCE:
    case K_DW:
    case K_GROUPED: {
        wview v = view_of(g, P, i);
        for (int o = 0; o < U; o++)
            d[o] = (uint8_t)row_dead(P, &v, dead, o);
        break;
    }
    case K_TIED: {
        const uint8_t *x = dead + P->base[nd->in[0]];
        for (int u = 0; u < U; u++)
            d[u] = nd->op == PARE_OP_BATCHNORM ? (uint8_t)bn_dead(g, i, u, x[u]) : x[u];
        break;
    }
    case K_ADD: {
        const uint8_t *x = dead + P->base[nd->in[0]], *y = dead + P->base[nd->in[1]];
        for (int u = 0; u < U; u++)
            d[u] = x[u] && y[u];
        break;
    }
    case K_CONCAT: {
        int off = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int v = nd->in[j];
            memcpy(d + off, dead + P->base[v], (size_t)P->U[v]);
            off += P->U[v];
        }
        break;
    }
    default: /* the input, and ops whose units are not followed: assume live */
        memset(d, 0, (size_t)U);
        break;
    }
}

static int is_weighted(const plan *P, int i)
{
    return P->kind[i] == K_SOURCE || P->kind[i] == K_DW || P->kind[i] == K_GROUPED;
}

/* A mask of ones when the parameter has none. */
static pare_status ensure_mask(pare_param *p)
{
    if (p->mask)
        return PARE_OK;
    p->mask = malloc(p->t->n ? p->t->n : 1);
    if (!p->mask)
        return pare_fail(PARE_ENOMEM, "out of memory adding a mask to %s", p->name);
    memset(p->mask, 1, p->t->n);
    return PARE_OK;
}

static pare_status mask_entry(pare_graph *g, int node, pare_param_role r, size_t at, size_t len)
{
    int pi = pare_graph_node_param(g, node, r);
    if (pi < 0)
        return PARE_OK;
    pare_param *p = &g->params[pi];
    pare_status s = ensure_mask(p);
    if (s != PARE_OK)
        return s;
    memset(p->t->data + at, 0, len * sizeof(float));
    memset(p->mask + at, 0, len);
    return PARE_OK;
}

/* Zeroes and masks filter o of node i, its bias, and the batchnorm channel it
 * alone feeds (whose running mean goes to 0 so evaluation gives exactly 0). */
static pare_status mask_filter(pare_graph *g, const plan *P, int i, int o)
{
    const pare_tensor *w = g->params[pare_graph_node_param(g, i, PARE_ROLE_WEIGHT)].t;
    size_t row = w->n / (size_t)w->dims[0];
    pare_status s = mask_entry(g, i, PARE_ROLE_WEIGHT, (size_t)o * row, row);
    if (s == PARE_OK)
        s = mask_entry(g, i, PARE_ROLE_BIAS, (size_t)o, 1);
    int r = P->reader[i];
    if (s != PARE_OK || P->readers[i] != 1 || g->output == i ||
        g->nodes[r].op != PARE_OP_BATCHNORM || P->kind[r] != K_TIED)
        return s;
    s = mask_entry(g, r, PARE_ROLE_BN_GAMMA, (size_t)o, 1);
    if (s == PARE_OK)
        s = mask_entry(g, r, PARE_ROLE_BN_BETA, (size_t)o, 1);
    int mi = pare_graph_node_param(g, r, PARE_ROLE_BN_MEAN);
    if (s == PARE_OK && mi >= 0)
        g->params[mi].t->data[o] = 0.0f;
    return s;
}

pare_status pare_mask_dead_filters(pare_graph *g, int *n_channels)
{
    if (n_channels)
        *n_channels = 0;
    if (!g)
        return pare_fail(PARE_EINVAL, "pare_mask_dead_filters needs a graph");
    if (g->err)
        return g->err;
    pare_status s = pare_graph_validate(g);
    if (s != PARE_OK)
        return s;
    plan P;
    s = plan_build(g, &P);
    if (s != PARE_OK)
        goto fail_plan;
    uint8_t *dead = calloc(P.total > 0 ? (size_t)P.total : 1, 1);
    if (!dead) {
        s = pare_fail(PARE_ENOMEM, "out of memory finding pruned filters");
        goto fail_plan;
    }
    /* In node order, so a filter behind one pruned here sees that channel dead. */
    int count = 0;
    for (int i = 0; i < g->n_nodes && s == PARE_OK; i++) {
        if (is_weighted(&P, i)) {
            wview v = view_of(g, &P, i);
            for (int o = 0; o < v.O && s == PARE_OK; o++)
                if (row_pruned(&P, &v, dead, o)) {
                    s = mask_filter(g, &P, i, o);
                    count++;
                }
        }
        dead_node(g, &P, i, dead);
    }
    free(dead);
    if (s == PARE_OK && n_channels)
        *n_channels = count;
fail_plan:
    plan_free(&P);
    return s;
}

/* ---- purify ---------------------------------------------------------------- */

/* Zeroes in W what a removed class leaves behind (see the top of the file):
 * source rows whose unit is in `gone`, and sink slices that read one. */
static void zero_removed(pare_graph *W, const plan *P, const uint8_t *gone)
{
    for (int i = 0; i < W->n_nodes; i++) {
        if (!is_weighted(P, i))
            continue;
        wview v = view_of(W, P, i);
        float *w = v.w->t->data;
        for (int o = 0; o < v.O; o++)
            if (gone[P->root[P->base[i] + o]]) {
                memset(w + block_at(&v, o, 0), 0, sizeof(float) * (size_t)v.nb * (size_t)v.bl);
                if (v.b)
                    v.b->t->data[o] = 0.0f;
            }
        if (P->kind[i] != K_SOURCE || !v.units)
            continue;
        for (int u = 0; u < v.nb; u++)
            if (gone[P->root[P->base[v.in] + u]])
                for (int o = 0; o < v.O; o++)
                    memset(w + block_at(&v, o, u), 0, sizeof(float) * (size_t)v.bl);
    }
}

/* Runs the rounds on W; removed[root] marks removed classes. Returns the rounds. */
static int find_removable(pare_graph *W, const plan *P, uint8_t *dead, uint8_t *gone,
                          uint8_t *removed)
{
    int rounds = 0;
    for (;;) {
        rounds++;
        for (int i = 0; i < W->n_nodes; i++)
            dead_node(W, P, i, dead);
        for (int u = 0; u < P->total; u++)
            gone[u] = P->root[u] == u && !P->pinned[u] && !removed[u];
        for (int i = 0; i < W->n_nodes; i++) {
            if (P->kind[i] != K_SOURCE)
                continue;
            wview v = view_of(W, P, i);
            if (!v.units)
                continue;
            for (int u = 0; u < v.nb; u++) {
                int r = P->root[P->base[v.in] + u];
                if (gone[r] && !sink_ignores(P, &v, dead, u))
                    gone[r] = 0;
            }
        }
        int any = 0;
        for (int u = 0; u < P->total; u++)
            if (gone[u]) {
                removed[u] = 1;
                any = 1;
            }
        if (!any)
            return rounds;
        zero_removed(W, P, gone);
    }
}

/* Brings back, for each value left with no unit, its class whose source filters
 * had the most energy in the original graph (ties: the lowest unit). */
static pare_status keep_one(const pare_graph *g, const plan *P, uint8_t *removed)
{
    double *energy = calloc(P->total > 0 ? (size_t)P->total : 1, sizeof(double));
    if (!energy)
        return pare_fail(PARE_ENOMEM, "out of memory purifying the graph");
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_weighted(P, i))
            continue;
        wview v = view_of(g, P, i);
        for (int o = 0; o < v.O; o++) {
            const float *w = v.w->t->data + block_at(&v, o, 0);
            double e = v.b ? (double)v.b->t->data[o] * v.b->t->data[o] : 0.0;
            for (size_t k = 0; k < (size_t)v.nb * (size_t)v.bl; k++)
                e += (double)w[k] * w[k];
            energy[P->root[P->base[i] + o]] += e;
        }
    }
    for (int v = 0; v < g->n_nodes; v++) {
        int best = -1;
        for (int u = 0; u < P->U[v]; u++) {
            int r = P->root[P->base[v] + u];
            if (!removed[r]) {
                best = -1;
                break;
            }
            if (best < 0 || energy[r] > energy[best])
                best = r;
        }
        if (best >= 0)
            removed[best] = 0;
    }
    free(energy);
    return PARE_OK;
}

/* Copies the part of a row-major tensor at the given indices of each dimension
 * (idx[d] NULL: all of it), elements of esz bytes. */
static void gather(const void *src, void *dst, size_t esz, const pare_tensor *t,
                   const int *const *idx, const int *cnt)
{
    int D[4] = {1, 1, 1, 1}, N[4] = {1, 1, 1, 1};
    const int *I[4] = {NULL, NULL, NULL, NULL};
    for (int d = 0; d < t->ndim; d++) {
        D[d] = t->dims[d];
        N[d] = cnt[d];
        I[d] = idx[d];
    }
    const char *s = src;
    char *o = dst;
    for (int a = 0; a < N[0]; a++) {
        size_t sa = (size_t)(I[0] ? I[0][a] : a);
        for (int b = 0; b < N[1]; b++) {
            size_t sb = sa * (size_t)D[1] + (size_t)(I[1] ? I[1][b] : b);
            for (int c = 0; c < N[2]; c++) {
                size_t row = (sb * (size_t)D[2] + (size_t)(I[2] ? I[2][c] : c)) * (size_t)D[3];
                if (!I[3]) {
                    memcpy(o, s + row * esz, (size_t)N[3] * esz);
                    o += (size_t)N[3] * esz;
                    continue;
                }
                for (int d = 0; d < N[3]; d++) {
                    memcpy(o, s + (row + (size_t)I[3][d]) * esz, esz);
                    o += esz;
                }
            }
        }
    }
}

/* Fills the new parameter d from s over the kept indices. */
static pare_status copy_kept(const pare_param *s, pare_param *d, const int *const *idx,
                             const int *n_idx)
{
    const pare_tensor *t = s->t;
    int cnt[4] = {0, 0, 0, 0};
    size_t want = 1;
    for (int k = 0; k < t->ndim; k++) {
        cnt[k] = idx[k] ? n_idx[k] : t->dims[k];
        want *= (size_t)cnt[k];
    }
    if (d->role != s->role || d->t->n != want)
        return pare_fail(PARE_EINVAL,
                         "purify: parameter %s would keep %zu values where its layer needs %zu",
                         s->name, want, d->t->n);
    gather(t->data, d->t->data, sizeof(float), t, idx, cnt);
    char *name = pare_strdup(s->name);
    if (!name)
        return PARE_ENOMEM;
    free(d->name);
    d->name = name;
    d->frozen = s->frozen;
    if (s->scheme && !(d->scheme = pare_strdup(s->scheme)))
        return PARE_ENOMEM;
    if (s->mask) {
        d->mask = malloc(want ? want : 1);
        if (!d->mask)
            return pare_fail(PARE_ENOMEM, "out of memory copying the mask of %s", s->name);
        gather(s->mask, d->mask, 1, t, idx, cnt);
    }
    d->q = s->q;
    d->q.scale = NULL;
    d->q.zero_point = NULL;
    d->q.codebook = NULL;
    d->q.coef = NULL;
    if (s->q.codebook && s->q.k > 0 && s->q.d > 0) {
        /* A codebook (weight sharing) or a basis (SmartExchange) is the new
         * tensor's own; runs of d along the last axis survive unless that
         * axis lost entries, when the tensor goes back to plain float values.
         * A basis tensor's coefficients go with its elements. */
        int last = t->ndim - 1;
        if (s->q.d > 1 && idx[last] && cnt[last] != t->dims[last]) {
            memset(&d->q, 0, sizeof d->q);
            return PARE_OK;
        }
        size_t kd = (size_t)s->q.k * (size_t)s->q.d;
        if (!(d->q.codebook = malloc(sizeof(float) * kd)))
            return pare_fail(PARE_ENOMEM, "out of memory copying the codebook of %s", s->name);
        memcpy(d->q.codebook, s->q.codebook, sizeof(float) * kd);
        if (s->q.coef) {
            if (!(d->q.coef = malloc(sizeof(float) * (want ? want : 1))))
                return pare_fail(PARE_ENOMEM, "out of memory copying the coefficients of %s", s->name);
            gather(s->q.coef, d->q.coef, sizeof(float), t, idx, cnt);
        }
    }
    if (s->q.n <= 0)
        return PARE_OK;
    /* Per-channel scales along a dimension that lost entries lose the same ones. */
    int ax = s->q.axis;
    const int *sel = NULL;
    if (ax >= 0 && ax < t->ndim && idx[ax] && s->q.n == t->dims[ax]) {
        sel = idx[ax];
        d->q.n = cnt[ax];
    }
    size_t qn = d->q.n > 0 ? (size_t)d->q.n : 1;
    d->q.scale = malloc(sizeof(float) * qn);
    d->q.zero_point = malloc(sizeof(int32_t) * qn);
    if (!d->q.scale || !d->q.zero_point)
        return pare_fail(PARE_ENOMEM, "out of memory copying the quantization of %s", s->name);
    for (int k = 0; k < d->q.n; k++) {
        int from = sel ? sel[k] : k;
        d->q.scale[k] = s->q.scale[from];
        d->q.zero_point[k] = s->q.zero_point[from];
    }
    return PARE_OK;
}

/* The new node i: attributes from the kept counts, parameters gathered from W. */
static pare_status rebuild_node(const pare_graph *W, const plan *P, const int *klist,
                                const int *kcnt, pare_graph *out, int i)
{
    const pare_node *nd = &W->nodes[i];
    pare_attrs a = nd->a;
    int in = nd->n_in > 0 ? nd->in[0] : -1;
    if (nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR)
        a.out_channels = kcnt[i];
    if (P->kind[i] == K_DW)
        a.groups = kcnt[in];
    int id = pare_graph_add_node(out, nd->op, nd->in, nd->n_in, &a, nd->name);
    if (id < 0)
        return out->err ? out->err : PARE_EINVAL;
    const pare_node *nn = &out->nodes[id];
    if (id != i || pare_shape_size(nn->out) != (size_t)kcnt[i] * (size_t)P->S[i])
        return pare_fail(PARE_EINVAL, "purify: layer %s came out as %dx%dx%d, not %d x %d values",
                         nd->name, nn->out.c, nn->out.h, nn->out.w, kcnt[i], P->S[i]);
    const int *idx[4] = {NULL, NULL, NULL, NULL};
    int n_idx[4] = {0, 0, 0, 0};
    int *features = NULL;
    if (P->kind[i] == K_TIED && nd->op == PARE_OP_BATCHNORM) {
        idx[0] = klist + P->base[i];
        n_idx[0] = kcnt[i];
    } else if (is_weighted(P, i)) {
        idx[0] = klist + P->base[i];
        n_idx[0] = kcnt[i];
        if (nd->op == PARE_OP_LINEAR) {
            /* Columns: the S features of each kept unit of the input. */
            int S = P->S[in];
            features = malloc(sizeof(int) * ((size_t)kcnt[in] * (size_t)S + 1));
            if (!features)
                return pare_fail(PARE_ENOMEM, "out of memory purifying layer %s", nd->name);
            for (int k = 0; k < kcnt[in]; k++)
                for (int f = 0; f < S; f++)
                    features[k * S + f] = klist[P->base[in] + k] * S + f;
            idx[1] = features;
            n_idx[1] = kcnt[in] * S;
        } else if (P->kind[i] == K_SOURCE && regular(W, P, in)) {
            idx[1] = klist + P->base[in];
            n_idx[1] = kcnt[in];
        }
    }
    pare_status s = PARE_OK;
    for (int k = 0; k < nd->n_param && s == PARE_OK; k++) {
        const pare_param *src = &W->params[nd->param[k]];
        /* A bias or batchnorm vector only follows dimension 0. */
        const int *vidx[4] = {idx[0], NULL, NULL, NULL};
        s = copy_kept(src, &out->params[nn->param[k]], src->t->ndim > 1 ? idx : vidx, n_idx);
    }
    free(features);
    return s;
}

static pare_status build_graph(const pare_graph *W, const plan *P, const uint8_t *removed,
                               pare_graph **out)
{
    *out = NULL;
    pare_status s = PARE_ENOMEM;
    size_t nt = P->total > 0 ? (size_t)P->total : 1;
    int *klist = malloc(sizeof(int) * nt), *kcnt = malloc(sizeof(int) * (size_t)P->n);
    pare_graph *g = pare_graph_new(W->name);
    if (!klist || !kcnt || !g) {
        s = pare_fail(PARE_ENOMEM, "out of memory building the purified graph");
        goto fail;
    }
    for (int v = 0; v < P->n; v++) {
        int k = 0;
        for (int u = 0; u < P->U[v]; u++)
            if (!removed[P->root[P->base[v] + u]])
                klist[P->base[v] + k++] = u;
        kcnt[v] = k;
    }
    for (int i = 0; i < W->n_nodes; i++) {
        s = rebuild_node(W, P, klist, kcnt, g, i);
        if (s != PARE_OK)
            goto fail;
    }
    g->output = W->output;
    for (int i = 0; i < W->n_meta; i++) {
        s = pare_graph_meta_set(g, W->meta[i].key, W->meta[i].value);
        if (s != PARE_OK)
            goto fail;
    }
    s = pare_graph_validate(g);
    if (s != PARE_OK) {
        pare_error_prefix("purify built an invalid graph");
        goto fail;
    }
    *out = g;
    g = NULL;
fail:
    pare_graph_free(g);
    free(klist);
    free(kcnt);
    return s;
}

static long long trainable_values(const pare_graph *g, int i)
{
    long long n = 0;
    const pare_node *nd = &g->nodes[i];
    for (int k = 0; k < nd->n_param; k++)
        if (g->params[nd->param[k]].trainable)
            n += (long long)g->params[nd->param[k]].t->n;
    return n;
}

static pare_status fill_report(const pare_graph *a, const pare_graph *b, int rounds, int grouped,
                               pare_purify_report *rep)
{
    rep->layers = calloc((size_t)a->n_nodes, sizeof *rep->layers);
    if (!rep->layers)
        return pare_fail(PARE_ENOMEM, "out of memory for the purify report");
    rep->n_layers = a->n_nodes;
    rep->rounds = rounds;
    rep->grouped_kept = grouped;
    for (int i = 0; i < a->n_nodes; i++) {
        pare_purify_layer *L = &rep->layers[i];
        const pare_op_def *def = pare_op_get(a->nodes[i].op);
        L->name = pare_strdup(a->nodes[i].name);
        if (!L->name)
            return PARE_ENOMEM;
        L->op = def->name;
        L->channels_before = a->nodes[i].out.c;
        L->channels_after = b->nodes[i].out.c;
        L->params_before = trainable_values(a, i);
        L->params_after = trainable_values(b, i);
        L->macs_before = def->macs ? def->macs(a, &a->nodes[i]) : 0;
        L->macs_after = def->macs ? def->macs(b, &b->nodes[i]) : 0;
        rep->params_before += L->params_before;
        rep->params_after += L->params_after;
        rep->macs_before += L->macs_before;
        rep->macs_after += L->macs_after;
        if (a->nodes[i].op == PARE_OP_CONV2D || a->nodes[i].op == PARE_OP_LINEAR)
            rep->filters_removed += L->channels_before - L->channels_after;
    }
    return PARE_OK;
}

void pare_purify_report_free(pare_purify_report *rep)
{
    if (!rep)
        return;
    for (int i = 0; i < rep->n_layers; i++)
        free(rep->layers[i].name);
    free(rep->layers);
    memset(rep, 0, sizeof *rep);
}

pare_status pare_purify(const pare_graph *in, pare_graph **out, pare_purify_report *rep)
{
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_purify needs a place for the new graph");
    *out = NULL;
    if (!in)
        return pare_fail(PARE_EINVAL, "pare_purify needs a graph");
    if (in->err)
        return in->err;
    pare_status s = pare_graph_validate(in);
    if (s != PARE_OK)
        return s;
    pare_graph *W = NULL, *g = NULL;
    plan P;
    uint8_t *dead = NULL, *gone = NULL, *removed = NULL;
    s = plan_build(in, &P);
    if (s != PARE_OK)
        goto fail;
    s = pare_graph_clone(in, &W);
    if (s != PARE_OK)
        goto fail;
    size_t nt = P.total > 0 ? (size_t)P.total : 1;
    dead = calloc(nt, 1);
    gone = calloc(nt, 1);
    removed = calloc(nt, 1);
    if (!dead || !gone || !removed) {
        s = pare_fail(PARE_ENOMEM, "out of memory purifying graph %s", in->name);
        goto fail;
    }
    int rounds = find_removable(W, &P, dead, gone, removed);
    s = keep_one(in, &P, removed);
    if (s == PARE_OK)
        s = build_graph(W, &P, removed, &g);
    if (s == PARE_OK && rep)
        s = fill_report(in, g, rounds, P.n_grouped, rep);
    if (s != PARE_OK) {
        pare_purify_report_free(rep);
        pare_graph_free(g);
        goto fail;
    }
    *out = g;
fail:
    free(dead);
    free(gone);
    free(removed);
    pare_graph_free(W);
    plan_free(&P);
    return s;
}
