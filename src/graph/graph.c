/* Graph construction, lookup, metadata, cloning and validation. */
#include "graph/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/op.h"

#define PARE_NAME_MAX 255

static const char *const role_names[PARE_ROLE__COUNT] = {
    "weight", "bias", "gamma", "beta", "running_mean", "running_var",
};

const char *pare_role_name(pare_param_role r)
{
    return (unsigned)r < PARE_ROLE__COUNT ? role_names[r] : "?";
}

int pare_role_find(const char *name)
{
    for (int i = 0; i < PARE_ROLE__COUNT; i++)
        if (!strcmp(role_names[i], name))
            return i;
    return -1;
}

pare_graph *pare_graph_new(const char *name)
{
    pare_graph *g = calloc(1, sizeof *g);
    if (!g) {
        pare_fail(PARE_ENOMEM, "out of memory creating a graph");
        return NULL;
    }
    g->name = pare_strdup(name ? name : "model");
    if (!g->name) {
        free(g);
        return NULL;
    }
    g->output = -1;
    return g;
}

static void free_param(pare_param *p)
{
    free(p->name);
    free(p->scheme);
    pare_tensor_free(p->t);
    free(p->mask);
    pare_qparams_clear(&p->q);
}

void pare_qparams_clear(pare_qparams *q)
{
    free(q->scale);
    free(q->zero_point);
    free(q->codebook);
    free(q->coef);
    memset(q, 0, sizeof *q);
}

void pare_graph_free(pare_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].in);
    }
    free(g->nodes);
    for (int i = 0; i < g->n_params; i++)
        free_param(&g->params[i]);
    free(g->params);
    for (int i = 0; i < g->n_meta; i++) {
        free(g->meta[i].key);
        free(g->meta[i].value);
    }
    free(g->meta);
    free(g->name);
    free(g);
}

pare_status pare_graph_status(const pare_graph *g)
{
    if (!g)
        return pare_fail(PARE_EINVAL, "no graph");
    return g->err;
}

const char *pare_graph_name(const pare_graph *g) { return g->name; }

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 1;
    int c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q)
        return 0;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *p = q;
    *cap = c;
    return 1;
}

int pare_graph_find_node(const pare_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].name && !strcmp(g->nodes[i].name, name))
            return i;
    return -1;
}

int pare_graph_node_param(const pare_graph *g, int node, pare_param_role role)
{
    const pare_node *n = &g->nodes[node];
    for (int i = 0; i < n->n_param; i++)
        if (g->params[n->param[i]].role == role)
            return n->param[i];
    return -1;
}

static int sticky(pare_graph *g, pare_status s)
{
    if (g->err == PARE_OK)
        g->err = s;
    return -1;
}

static pare_status add_param(pare_graph *g, int node, const pare_param_spec *s, int *out)
{
    if (!grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof(pare_param)))
        return pare_fail(PARE_ENOMEM, "out of memory adding a parameter");
    pare_param *p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    const char *nn = g->nodes[node].name;
    size_t len = strlen(nn) + strlen(pare_role_name(s->role)) + 2;
    p->name = malloc(len);
    if (!p->name)
        return pare_fail(PARE_ENOMEM, "out of memory adding a parameter");
    snprintf(p->name, len, "%s.%s", nn, pare_role_name(s->role));
    p->t = pare_tensor_new(s->ndim, s->dims);
    if (!p->t) {
        free(p->name);
        p->name = NULL;
        return PARE_ENOMEM;
    }
    p->node = node;
    p->role = s->role;
    p->trainable = s->trainable;
    *out = g->n_params++;
    return PARE_OK;
}

int pare_graph_add_node(pare_graph *g, pare_op_type op, const int *in, int n_in,
                        const pare_attrs *a, const char *name)
{
    if (!g)
        return -1;
    if (g->err != PARE_OK)
        return -1;
    const pare_op_def *def = pare_op_get(op);
    if (!def)
        return sticky(g, pare_fail(PARE_EINVAL, "unknown op %d", (int)op));
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= g->n_nodes)
            return sticky(g, pare_fail(PARE_EINVAL, "%s %s: input %d is not a value of this graph",
                                       def->name, name ? name : "", in[i]));
    char auto_name[64];
    if (!name || !*name) {
        snprintf(auto_name, sizeof auto_name, "%s%d", def->name, g->n_nodes);
        name = auto_name;
    }
    if (strlen(name) > PARE_NAME_MAX)
        return sticky(g, pare_fail(PARE_EINVAL, "layer name '%.40s...' is longer than %d bytes",
                                   name, PARE_NAME_MAX));
    if (pare_graph_find_node(g, name) >= 0)
        return sticky(g, pare_fail(PARE_EINVAL, "two layers are named '%s'", name));
    if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(pare_node)))
        return sticky(g, pare_fail(PARE_ENOMEM, "out of memory adding layer %s", name));
    pare_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->a = *a;
    n->name = pare_strdup(name);
    n->in = malloc(sizeof(int) * (size_t)(n_in > 0 ? n_in : 1));
    if (!n->name || !n->in) {
        free(n->name);
        free(n->in);
        return sticky(g, pare_fail(PARE_ENOMEM, "out of memory adding layer %s", name));
    }
    if (n_in > 0) /* the input layer passes in == NULL; memcpy from NULL is undefined */
        memcpy(n->in, in, sizeof(int) * (size_t)n_in);
    n->n_in = n_in;
    pare_status s = pare_op_check_inputs(g, n);
    if (s == PARE_OK)
        s = def->infer(g, n);
    if (s != PARE_OK) {
        pare_error_prefix("layer %s (%s)", name, def->name);
        free(n->name);
        free(n->in);
        return sticky(g, s);
    }
    int id = g->n_nodes++;
    if (def->params) {
        pare_param_spec specs[PARE_NODE_MAX_PARAMS];
        int k = def->params(g, n, specs);
        for (int i = 0; i < k; i++) {
            int pid = -1;
            s = add_param(g, id, &specs[i], &pid);
            if (s != PARE_OK)
                return sticky(g, s);
            g->nodes[id].param[i] = pid;
            g->nodes[id].n_param = i + 1;
        }
    }
    if (def->init)
        def->init(g, id, 0, PARE_INIT_DEFAULT);
    if (op != PARE_OP_INPUT)
        g->output = id;
    return id;
}

pare_status pare_graph_meta_set(pare_graph *g, const char *key, const char *value)
{
    for (int i = 0; i < g->n_meta; i++)
        if (!strcmp(g->meta[i].key, key)) {
            char *v = pare_strdup(value);
            if (!v)
                return PARE_ENOMEM;
            free(g->meta[i].value);
            g->meta[i].value = v;
            return PARE_OK;
        }
    if (!grow((void **)&g->meta, &g->cap_meta, g->n_meta + 1, sizeof(pare_meta)))
        return pare_fail(PARE_ENOMEM, "out of memory");
    char *k = pare_strdup(key), *v = pare_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return PARE_ENOMEM;
    }
    g->meta[g->n_meta].key = k;
    g->meta[g->n_meta].value = v;
    g->n_meta++;
    return PARE_OK;
}

const char *pare_graph_meta_get(const pare_graph *g, const char *key)
{
    for (int i = 0; i < g->n_meta; i++)
        if (!strcmp(g->meta[i].key, key))
            return g->meta[i].value;
    return NULL;
}

static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        float v = strtof(s, &end);
        if (end == s)
            return 0;
        out[n++] = v;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return n;
}

int pare_graph_norm_get(const pare_graph *g, float *mean, float *std, int max)
{
    int a = parse_floats(pare_graph_meta_get(g, "norm.mean"), mean, max);
    int b = parse_floats(pare_graph_meta_get(g, "norm.std"), std, max);
    if (a != b || a == 0)
        return 0;
    for (int i = 0; i < a; i++)
        if (!(std[i] > 0))
            return 0;
    return a;
}

pare_status pare_graph_norm_set(pare_graph *g, int n, const float *mean, const float *std)
{
    char a[256] = "", b[256] = "";
    for (int i = 0; i < n && i < 8; i++) {
        size_t la = strlen(a), lb = strlen(b);
        snprintf(a + la, sizeof a - la, "%s%.9g", i ? "," : "", (double)mean[i]);
        snprintf(b + lb, sizeof b - lb, "%s%.9g", i ? "," : "", (double)std[i]);
    }
    pare_status s = pare_graph_meta_set(g, "norm.mean", a);
    return s ? s : pare_graph_meta_set(g, "norm.std", b);
}

pare_status pare_graph_set_output(pare_graph *g, int x)
{
    if (!g)
        return pare_fail(PARE_EINVAL, "no graph");
    if (g->err)
        return g->err;
    if (x < 0 || x >= g->n_nodes)
        return pare_fail(PARE_EINVAL, "output %d is not a value of this graph", x);
    g->output = x;
    return PARE_OK;
}

/* What hangs on a parameter's values: flags, mask, scheme and quantization;
 * d's own are NULL. */
static pare_status copy_attachments(pare_param *d, const pare_param *s)
{
    d->trainable = s->trainable;
    d->frozen = s->frozen;
    if (s->scheme && !(d->scheme = pare_strdup(s->scheme)))
        return pare_fail(PARE_ENOMEM, "out of memory copying %s", s->name);
    if (s->mask) {
        if (!(d->mask = malloc(s->t->n ? s->t->n : 1)))
            return pare_fail(PARE_ENOMEM, "out of memory copying %s", s->name);
        memcpy(d->mask, s->mask, s->t->n);
    }
    d->q = s->q;
    d->q.scale = NULL;
    d->q.zero_point = NULL;
    d->q.codebook = NULL;
    d->q.coef = NULL;
    if (s->q.n > 0) {
        d->q.scale = malloc(sizeof(float) * (size_t)s->q.n);
        d->q.zero_point = malloc(sizeof(int32_t) * (size_t)s->q.n);
        if (!d->q.scale || !d->q.zero_point)
            return pare_fail(PARE_ENOMEM, "out of memory copying %s", s->name);
        memcpy(d->q.scale, s->q.scale, sizeof(float) * (size_t)s->q.n);
        memcpy(d->q.zero_point, s->q.zero_point, sizeof(int32_t) * (size_t)s->q.n);
    }
    if (s->q.codebook && s->q.k > 0 && s->q.d > 0) {
        size_t kd = (size_t)s->q.k * (size_t)s->q.d;
        if (!(d->q.codebook = malloc(sizeof(float) * kd)))
            return pare_fail(PARE_ENOMEM, "out of memory copying %s", s->name);
        memcpy(d->q.codebook, s->q.codebook, sizeof(float) * kd);
    }
    if (s->q.coef) {
        if (!(d->q.coef = malloc(sizeof(float) * (s->t->n ? s->t->n : 1))))
            return pare_fail(PARE_ENOMEM, "out of memory copying %s", s->name);
        memcpy(d->q.coef, s->q.coef, sizeof(float) * s->t->n);
    }
    return PARE_OK;
}

static pare_status copy_param(pare_param *d, const pare_param *s)
{
    memset(d, 0, sizeof *d);
    d->name = pare_strdup(s->name);
    d->t = pare_tensor_clone(s->t);
    if (!d->name || !d->t)
        return PARE_ENOMEM;
    d->node = s->node;
    d->role = s->role;
    return copy_attachments(d, s);
}

pare_status pare_param_copy_into(pare_param *d, const pare_param *s)
{
    if (d->role != s->role || d->t->n != s->t->n)
        return pare_fail(PARE_EINVAL, "rebuilding: parameter %s changed shape", s->name);
    memcpy(d->t->data, s->t->data, sizeof(float) * s->t->n);
    free(d->mask);
    free(d->scheme);
    d->mask = NULL;
    d->scheme = NULL;
    pare_qparams_clear(&d->q);
    return copy_attachments(d, s);
}

pare_status pare_graph_clone(const pare_graph *g, pare_graph **out)
{
    *out = NULL;
    pare_graph *c = pare_graph_new(g->name);
    if (!c)
        return PARE_ENOMEM;
    pare_status s = PARE_ENOMEM;
    c->nodes = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(pare_node));
    c->params = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(pare_param));
    if (!c->nodes || !c->params)
        goto fail;
    c->cap_nodes = g->n_nodes ? g->n_nodes : 1;
    c->cap_params = g->n_params ? g->n_params : 1;
    for (int i = 0; i < g->n_nodes; i++) {
        pare_node *d = &c->nodes[i];
        *d = g->nodes[i];
        d->name = pare_strdup(g->nodes[i].name);
        d->in = malloc(sizeof(int) * (size_t)(d->n_in > 0 ? d->n_in : 1));
        c->n_nodes = i + 1;
        if (!d->name || !d->in)
            goto fail;
        memcpy(d->in, g->nodes[i].in, sizeof(int) * (size_t)d->n_in);
    }
    for (int i = 0; i < g->n_params; i++) {
        c->n_params = i + 1;
        if (copy_param(&c->params[i], &g->params[i]) != PARE_OK)
            goto fail;
    }
    for (int i = 0; i < g->n_meta; i++)
        if (pare_graph_meta_set(c, g->meta[i].key, g->meta[i].value) != PARE_OK)
            goto fail;
    c->output = g->output;
    c->err = g->err;
    *out = c;
    return PARE_OK;
fail:
    pare_graph_free(c);
    return pare_fail(s, "out of memory copying graph %s", g->name);
}

pare_status pare_graph_validate(const pare_graph *g)
{
    if (g->n_nodes == 0)
        return pare_fail(PARE_EFORMAT, "the graph has no layers");
    if (g->nodes[0].op != PARE_OP_INPUT)
        return pare_fail(PARE_EFORMAT, "the graph does not start with its input");
    if (g->output < 0 || g->output >= g->n_nodes)
        return pare_fail(PARE_EFORMAT, "the graph's output %d is not one of its %d layers",
                         g->output, g->n_nodes);
    int *owner = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(int));
    if (!owner)
        return pare_fail(PARE_ENOMEM, "out of memory");
    pare_status s = PARE_OK;
    for (int i = 0; i < g->n_nodes && s == PARE_OK; i++) {
        const pare_node *n = &g->nodes[i];
        const pare_op_def *def = pare_op_get(n->op);
        if (!def) {
            s = pare_fail(PARE_EFORMAT, "layer %d has an unknown op", i);
            break;
        }
        if (n->op == PARE_OP_INPUT && i != 0) {
            s = pare_fail(PARE_EFORMAT, "layer %s: only the first layer may be an input", n->name);
            break;
        }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] < 0 || n->in[j] >= i) {
                s = pare_fail(PARE_EFORMAT, "layer %s: input %d is not an earlier layer", n->name,
                              n->in[j]);
                break;
            }
        if (s != PARE_OK)
            break;
        pare_node tmp = *n;
        s = pare_op_check_inputs(g, &tmp);
        if (s == PARE_OK)
            s = def->infer(g, &tmp);
        if (s != PARE_OK) {
            pare_error_prefix("layer %s (%s)", n->name, def->name);
            s = PARE_EFORMAT;
            break;
        }
        if (tmp.out.c != n->out.c || tmp.out.h != n->out.h || tmp.out.w != n->out.w) {
            s = pare_fail(PARE_EFORMAT, "layer %s: stored shape %dx%dx%d disagrees with %dx%dx%d",
                          n->name, n->out.c, n->out.h, n->out.w, tmp.out.c, tmp.out.h, tmp.out.w);
            break;
        }
        pare_param_spec specs[PARE_NODE_MAX_PARAMS];
        int k = def->params ? def->params(g, n, specs) : 0;
        if (k != n->n_param) {
            s = pare_fail(PARE_EFORMAT, "layer %s has %d parameters, its op needs %d", n->name,
                          n->n_param, k);
            break;
        }
        for (int j = 0; j < k; j++) {
            int pid = n->param[j];
            if (pid < 0 || pid >= g->n_params || owner[pid]) {
                s = pare_fail(PARE_EFORMAT, "layer %s: parameter %d is missing or shared", n->name, pid);
                break;
            }
            owner[pid] = 1;
            const pare_param *p = &g->params[pid];
            size_t want = pare_dims_count(specs[j].ndim, specs[j].dims);
            if (p->role != specs[j].role || !p->t || p->t->n != want || p->node != i) {
                s = pare_fail(PARE_EFORMAT, "layer %s: parameter %s has the wrong role or size",
                              n->name, p->name ? p->name : "?");
                break;
            }
        }
    }
    free(owner);
    return s;
}
