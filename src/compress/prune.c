/* The pruning plan (which layer gets which scheme and ratio), one-shot
 * application of the schemes' projections, and global ranking. */
#include "compress/prune.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/fsio.h"
#include "graph/op.h"

/* Every conv2d and linear node, in graph order. */
static int prunable(const pare_graph *g, int v)
{
    return g->nodes[v].op == PARE_OP_CONV2D || g->nodes[v].op == PARE_OP_LINEAR;
}

/* Whether layer v's output reaches the model's output through no other conv or
 * linear layer: its filters are the model's outputs (the classes), which filter
 * pruning must not remove. */
static int feeds_output(const pare_graph *g, int v)
{
    if (g->output < 0)
        return 0;
    uint8_t *reach = calloc((size_t)g->n_nodes, 1);
    if (!reach)
        return v == g->output;
    reach[v] = 1;
    for (int u = v + 1; u < g->n_nodes; u++)
        if (!prunable(g, u))
            for (int i = 0; i < g->nodes[u].n_in && !reach[u]; i++)
                reach[u] = reach[g->nodes[u].in[i]];
    int r = reach[g->output];
    free(reach);
    return r;
}

static int is_depthwise(const pare_graph *g, int v)
{
    const pare_node *n = &g->nodes[v];
    return n->op == PARE_OP_CONV2D && n->a.groups > 1 && g->nodes[n->in[0]].out.c == n->a.groups;
}

/* The research's rule-based mapping. */
static pare_status auto_scheme(const pare_graph *g, int v, pare_scheme *s, int *dense)
{
    const pare_node *n = &g->nodes[v];
    *dense = 0;
    const char *text;
    if (is_depthwise(g, v)) {
        *dense = 1;
        return PARE_OK;
    }
    const pare_tensor *w = g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)].t;
    int rows, cols, kh, kw;
    pare_gemm_view(w, &rows, &cols, &kh, &kw);
    if (n->op == PARE_OP_CONV2D && kh == 3 && kw == 3)
        text = "pattern:8";
    else if (kh == 1 && kw == 1)
        text = (long)rows * cols >= 65536 ? "block:8x4" : "block:4x4";
    else
        text = "punched:8x4";
    return pare_scheme_parse(text, s);
}

typedef struct ratio_entry {
    char name[256];
    double sparsity;
    int has_scheme;
    pare_scheme scheme;
    int used;
} ratio_entry;

static pare_status read_ratios(const char *path, ratio_entry **out, int *n_out)
{
    uint8_t *buf;
    size_t len;
    *out = NULL;
    *n_out = 0;
    pare_status s = pare_read_file(path, (size_t)1 << 24, &buf, &len);
    if (s != PARE_OK)
        return s;
    int cap = 16, n = 0;
    ratio_entry *e = calloc((size_t)cap, sizeof *e);
    if (!e) {
        free(buf);
        return pare_fail(PARE_ENOMEM, "out of memory reading %s", path);
    }
    char *line = (char *)buf;
    int lineno = 0;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char name[256], num[64], scheme[128];
        int k = sscanf(line, "%255s %63s %127s", name, num, scheme);
        if (k <= 0) {
            line = next;
            continue;
        }
        char *end;
        double sp = k >= 2 ? strtod(num, &end) : NAN;
        if (k < 2 || *end || !(sp >= 0) || !(sp < 1)) {
            s = pare_fail(PARE_EINVAL, "%s line %d: expected 'LAYER SPARSITY [SCHEME]' with a sparsity in [0, 1)",
                          path, lineno);
            goto fail;
        }
        if (n == cap) {
            ratio_entry *ne = realloc(e, sizeof *e * (size_t)cap * 2);
            if (!ne) {
                s = pare_fail(PARE_ENOMEM, "out of memory reading %s", path);
                goto fail;
            }
            e = ne;
            memset(e + cap, 0, sizeof *e * (size_t)cap);
            cap *= 2;
        }
        snprintf(e[n].name, sizeof e[n].name, "%s", name);
        e[n].sparsity = sp;
        if (k == 3) {
            s = pare_scheme_parse(scheme, &e[n].scheme);
            if (s != PARE_OK) {
                pare_error_prefix("%s line %d", path, lineno);
                goto fail;
            }
            e[n].has_scheme = 1;
        }
        n++;
        line = next;
    }
    free(buf);
    *out = e;
    *n_out = n;
    return PARE_OK;
fail:
    free(buf);
    free(e);
    return s;
}

void pare_prune_plan_free(pare_prune_plan *plan)
{
    free(plan->l);
    memset(plan, 0, sizeof *plan);
}

static pare_status build_libraries(const pare_graph *g, pare_prune_plan *plan)
{
    /* One library per K, from every pattern layer's weights (PatDNN counts
     * the best patterns over all layers). */
    for (int i = 0; i < plan->n; i++) {
        pare_scheme *s = &plan->l[i].scheme;
        if (s->kind != PARE_SCHEME_PATTERN || s->n_lib > 0)
            continue;
        const pare_tensor **ws = malloc(sizeof *ws * (size_t)plan->n);
        int nw = 0;
        if (!ws)
            return pare_fail(PARE_ENOMEM, "out of memory");
        for (int j = 0; j < plan->n; j++)
            if (plan->l[j].scheme.kind == PARE_SCHEME_PATTERN && plan->l[j].scheme.patterns == s->patterns)
                ws[nw++] = g->params[plan->l[j].param].t;
        pare_scheme lib = *s;
        pare_status st = pare_pattern_library((const pare_tensor *const *)ws, nw, s->patterns, &lib);
        free(ws);
        if (st != PARE_OK)
            return st;
        for (int j = 0; j < plan->n; j++)
            if (plan->l[j].scheme.kind == PARE_SCHEME_PATTERN && plan->l[j].scheme.patterns == s->patterns)
                plan->l[j].scheme = lib;
    }
    return PARE_OK;
}

pare_status pare_prune_plan_new(const pare_graph *g, const pare_prune_options *o, pare_prune_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (!g || !o || !o->scheme)
        return pare_fail(PARE_EINVAL, "pruning needs a model and a scheme");
    if (!(o->sparsity < 1) || (o->sparsity < 0 && !o->ratios_path) || isnan(o->sparsity))
        return pare_fail(PARE_EINVAL, "sparsity must be in [0, 1), got %g", o->sparsity);
    int is_auto = !strcmp(o->scheme, "auto");
    pare_scheme base;
    memset(&base, 0, sizeof base);
    pare_status s = is_auto ? PARE_OK : pare_scheme_parse(o->scheme, &base);
    if (s != PARE_OK)
        return s;
    if (o->global && (is_auto || base.kind != PARE_SCHEME_UNSTRUCTURED))
        return pare_fail(PARE_EINVAL, "global ranking applies to unstructured pruning, not to '%s'", o->scheme);
    ratio_entry *re = NULL;
    int nre = 0;
    if (o->ratios_path && (s = read_ratios(o->ratios_path, &re, &nre)) != PARE_OK)
        return s;
    /* Every name in the ratio file must be a prunable layer. */
    char unknown[512] = "";
    for (int i = 0; i < nre; i++) {
        int v = pare_graph_find_node(g, re[i].name);
        if (v < 0 || !prunable(g, v)) {
            size_t l = strlen(unknown);
            snprintf(unknown + l, sizeof unknown - l, "%s%s%s", l ? ", " : "", re[i].name,
                     v >= 0 ? " (not a conv or linear layer)" : "");
        }
    }
    if (unknown[0]) {
        free(re);
        return pare_fail(PARE_ENOTFOUND, "ratio file %s names layers this model does not have: %s",
                         o->ratios_path, unknown);
    }
    int first = -1, last = -1, cap = 0;
    for (int v = 0; v < g->n_nodes; v++)
        if (prunable(g, v)) {
            if (first < 0)
                first = v;
            last = v;
            cap++;
        }
    plan->l = calloc((size_t)(cap ? cap : 1), sizeof *plan->l);
    if (!plan->l) {
        free(re);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    plan->global = o->global;
    plan->sparsity = o->sparsity;
    int fitting = 0;
    char why[256] = "";
    for (int v = 0; v < g->n_nodes && s == PARE_OK; v++) {
        if (!prunable(g, v))
            continue;
        const pare_node *nd = &g->nodes[v];
        int pid = pare_graph_node_param(g, v, PARE_ROLE_WEIGHT);
        ratio_entry *r = NULL;
        for (int i = 0; i < nre; i++)
            if (!strcmp(re[i].name, nd->name))
                r = &re[i];
        double target = r ? r->sparsity : o->sparsity;
        if (target < 0 || (!r && ((o->exempt_first && v == first) || (o->exempt_last && v == last))))
            continue;
        pare_scheme sch = base;
        int dense = 0;
        if (r && r->has_scheme)
            sch = r->scheme;
        else if (is_auto) {
            s = auto_scheme(g, v, &sch, &dense);
            if (s != PARE_OK)
                break;
            if (!r && (v == first || v == last))
                target *= 0.5;
        }
        if (dense || (!r && sch.kind == PARE_SCHEME_FILTER && feeds_output(g, v)))
            continue;
        pare_status fits = pare_scheme_check(&sch, g->params[pid].t, nd->name);
        if (fits != PARE_OK) {
            /* A layer the file names must take its scheme; otherwise a layer the
             * scheme cannot shape stays dense (a pattern scheme prunes the 3x3
             * convs, not the linear layers). */
            if (r) {
                s = fits;
                break;
            }
            if (!why[0])
                snprintf(why, sizeof why, "%s", pare_last_error());
            continue;
        }
        pare_prune_layer *pl = &plan->l[plan->n++];
        pl->node = v;
        pl->param = pid;
        pl->scheme = sch;
        pl->target = target;
        fitting++;
    }
    free(re);
    if (s == PARE_OK && fitting == 0) {
        if (why[0])
            s = pare_fail(PARE_EINVAL, "no layer of %s can take the scheme '%s': %s", g->name, o->scheme, why);
        else
            s = pare_fail(PARE_EINVAL, "no layer of %s is left to prune (all exempt or ratio 0)", g->name);
    }
    if (s == PARE_OK)
        s = build_libraries(g, plan);
    if (s != PARE_OK)
        pare_prune_plan_free(plan);
    return s;
}

static pare_status ensure_mask(pare_param *p)
{
    if (p->mask)
        return PARE_OK;
    p->mask = malloc(p->t->n ? p->t->n : 1);
    if (!p->mask)
        return pare_fail(PARE_ENOMEM, "out of memory for the mask of %s", p->name);
    memset(p->mask, 1, p->t->n);
    return PARE_OK;
}

static double mask_sparsity(const uint8_t *m, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += !m[i];
    return n ? (double)z / (double)n : 0;
}

/* Bits of |x| as an order-preserving key (NaN sorts above every number). */
static uint32_t key_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u &= 0x7fffffffu;
    return u;
}

/* One threshold over every layer: keeps exactly `keep` weights of the largest
 * |score|, ties to the earlier layer and index. The key's 31 bits are found in
 * two histogram passes (no copy of the scores). */
static pare_status global_masks(const pare_graph *g, const pare_prune_plan *plan, const float *const *scores,
                                double target, uint8_t *const *masks)
{
    size_t total = 0;
    for (int i = 0; i < plan->n; i++)
        total += g->params[plan->l[i].param].t->n;
    size_t prune = (size_t)floor(target * (double)total + 1e-9);
    size_t keep = total - prune;
    uint32_t *hist = calloc(65536, sizeof *hist);
    if (!hist)
        return pare_fail(PARE_ENOMEM, "out of memory");
    /* rank from the top: the keep-th largest key */
    uint32_t hi_bin = 0, lo_bin = 0;
    size_t above = 0;
    if (keep > 0) {
        for (int i = 0; i < plan->n; i++) {
            const pare_tensor *w = g->params[plan->l[i].param].t;
            const float *sc = scores && scores[i] ? scores[i] : w->data;
            for (size_t k = 0; k < w->n; k++)
                hist[key_of(sc[k]) >> 16]++;
        }
        size_t acc = 0;
        int b = 65535;
        for (; b > 0; b--) {
            if (acc + hist[b] >= keep)
                break;
            acc += hist[b];
        }
        hi_bin = (uint32_t)b;
        above = acc;
        memset(hist, 0, 65536 * sizeof *hist);
        for (int i = 0; i < plan->n; i++) {
            const pare_tensor *w = g->params[plan->l[i].param].t;
            const float *sc = scores && scores[i] ? scores[i] : w->data;
            for (size_t k = 0; k < w->n; k++) {
                uint32_t key = key_of(sc[k]);
                if ((key >> 16) == hi_bin)
                    hist[key & 0xffffu]++;
            }
        }
        int lb = 65535;
        for (; lb > 0; lb--) {
            if (above + hist[lb] >= keep)
                break;
            above += hist[lb];
        }
        lo_bin = (uint32_t)lb;
    }
    free(hist);
    uint32_t thr = (hi_bin << 16) | lo_bin;
    size_t ties_left = keep - above; /* how many equal to thr to keep */
    for (int i = 0; i < plan->n; i++) {
        const pare_param *p = &g->params[plan->l[i].param];
        const float *sc = scores && scores[i] ? scores[i] : p->t->data;
        for (size_t k = 0; k < p->t->n; k++) {
            uint32_t key = key_of(sc[k]);
            int on = keep > 0 && (key > thr || (key == thr && ties_left > 0 && ties_left--));
            masks[i][k] = (uint8_t)on;
        }
    }
    return PARE_OK;
}

pare_status pare_prune_masks(const pare_graph *g, const pare_prune_plan *plan, const double *targets,
                             const float *const *scores, uint8_t *const *masks)
{
    if (plan->global)
        return global_masks(g, plan, scores, targets ? targets[0] : plan->sparsity, masks);
    for (int i = 0; i < plan->n; i++) {
        const pare_prune_layer *l = &plan->l[i];
        pare_status s = pare_scheme_project(&l->scheme, g->params[l->param].t, scores ? scores[i] : NULL,
                                            targets ? targets[i] : l->target, masks[i]);
        if (s != PARE_OK) {
            pare_error_prefix("layer %s", g->nodes[l->node].name);
            return s;
        }
    }
    return PARE_OK;
}

pare_status pare_prune_apply(pare_graph *g, pare_prune_plan *plan, const double *targets,
                             const float *const *scores)
{
    pare_status s = PARE_OK;
    uint8_t **masks = malloc(sizeof *masks * (size_t)(plan->n ? plan->n : 1));
    if (!masks)
        return pare_fail(PARE_ENOMEM, "out of memory");
    for (int i = 0; i < plan->n && s == PARE_OK; i++) {
        s = ensure_mask(&g->params[plan->l[i].param]);
        masks[i] = g->params[plan->l[i].param].mask;
    }
    if (s == PARE_OK)
        s = pare_prune_masks(g, plan, targets, scores, masks);
    free(masks);
    if (s != PARE_OK)
        return s;
    int filters = 0;
    for (int i = 0; i < plan->n; i++) {
        pare_prune_layer *l = &plan->l[i];
        pare_param *p = &g->params[l->param];
        for (size_t k = 0; k < p->t->n; k++)
            if (!p->mask[k])
                p->t->data[k] = 0.0f;
        filters |= l->scheme.kind == PARE_SCHEME_FILTER;
        char text[64];
        pare_scheme_format(&l->scheme, text, sizeof text);
        char *dup = pare_strdup(text);
        if (!dup)
            return PARE_ENOMEM;
        free(p->scheme);
        p->scheme = dup;
    }
    /* A pruned filter's channel is still bias -> BN -> constant; masking those
     * too makes it exactly zero, so fine-tuning keeps it zero and structural
     * removal is exact. */
    if (filters && (s = pare_mask_dead_filters(g, NULL)) != PARE_OK)
        return s;
    for (int i = 0; i < plan->n; i++) {
        const pare_param *p = &g->params[plan->l[i].param];
        plan->l[i].reached = mask_sparsity(p->mask, p->t->n);
    }
    return PARE_OK;
}

double pare_prune_sparsity(const pare_graph *g, const pare_prune_plan *plan)
{
    size_t z = 0, n = 0;
    for (int i = 0; i < plan->n; i++) {
        const pare_param *p = &g->params[plan->l[i].param];
        for (size_t k = 0; k < p->t->n; k++)
            z += p->t->data[k] == 0.0f || (p->mask && !p->mask[k]);
        n += p->t->n;
    }
    return n ? (double)z / (double)n : 0;
}

static const char *const method_names[PARE_PRUNE__COUNT] = {"oneshot", "gmp", "imp", "admm",
                                                            "admm-progressive", "bip"};

const char *pare_prune_method_name(pare_prune_method m)
{
    return (unsigned)m < PARE_PRUNE__COUNT ? method_names[m] : "?";
}

int pare_prune_method_find(const char *name)
{
    for (int i = 0; i < PARE_PRUNE__COUNT; i++)
        if (!strcmp(method_names[i], name))
            return i;
    return -1;
}
