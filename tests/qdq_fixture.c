/* Hand quantization for the QDQ tests and bench: batch-norm folding, min/max
 * calibration, per-channel symmetric weights, fakequant nodes, int32 biases
 * (tests/qdq_fixture.h). */
#include "qdq_fixture.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "graph/exec.h"

static int is_act(pare_op_type op) { return op == PARE_OP_RELU || op == PARE_OP_RELU6; }

/* Readers of each value. */
static int *use_counts(const pare_graph *g, int *only_act)
{
    int *uses = calloc((size_t)g->n_nodes, sizeof *uses);
    if (!uses)
        return NULL;
    for (int v = 0; v < g->n_nodes; v++)
        only_act[v] = 1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            uses[v]++;
            only_act[v] &= is_act(g->nodes[i].op);
        }
    return uses;
}

static pare_status copy_params(pare_graph *h, int to, const pare_graph *g, int from)
{
    const pare_node *a = &g->nodes[from], *b = &h->nodes[to];
    for (int k = 0; k < a->n_param && k < b->n_param; k++) {
        const pare_param *p = &g->params[a->param[k]];
        pare_param *q = &h->params[b->param[k]];
        if (p->t->n != q->t->n)
            return pare_fail(PARE_EINVAL, "layer %s: parameter %d changed size", a->name, k);
        memcpy(q->t->data, p->t->data, p->t->n * sizeof(float));
        if (p->mask) {
            q->mask = malloc(p->t->n);
            if (!q->mask)
                return pare_fail(PARE_ENOMEM, "out of memory");
            memcpy(q->mask, p->mask, p->t->n);
        }
        if (p->scheme && !(q->scheme = strdup(p->scheme)))
            return pare_fail(PARE_ENOMEM, "out of memory");
    }
    return PARE_OK;
}

/* g with every batch norm that is a conv's only reader folded into it. */
static pare_status fold_bn(const pare_graph *g, pare_graph **out)
{
    *out = NULL;
    int *only_act = malloc((size_t)g->n_nodes * sizeof *only_act);
    int *map = malloc((size_t)g->n_nodes * sizeof *map);
    int *uses = only_act ? use_counts(g, only_act) : NULL;
    pare_graph *h = pare_graph_new(g->name ? g->name : "model");
    pare_status s = PARE_ENOMEM;
    if (!uses || !map || !h)
        goto done;
    for (int i = 0; i < g->n_nodes; i++) {
        const pare_node *n = &g->nodes[i];
        if (n->op == PARE_OP_INPUT) {
            map[i] = pare_graph_input(h, n->out.c, n->out.h, n->out.w);
            continue;
        }
        const pare_node *src = n->n_in ? &g->nodes[n->in[0]] : NULL;
        if (n->op == PARE_OP_BATCHNORM && src->op == PARE_OP_CONV2D && uses[n->in[0]] == 1) {
            /* w' = w gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta */
            int c = map[n->in[0]];
            const pare_node *cn = &h->nodes[c];
            float *w = h->params[cn->param[0]].t->data, *b = h->params[cn->param[1]].t->data;
            const float *ga = g->params[n->param[0]].t->data, *be = g->params[n->param[1]].t->data,
                        *mu = g->params[n->param[2]].t->data, *va = g->params[n->param[3]].t->data;
            int O = cn->a.out_channels;
            size_t per = h->params[cn->param[0]].t->n / (size_t)O;
            for (int o = 0; o < O; o++) {
                float k = ga[o] / sqrtf(va[o] + n->a.eps);
                for (size_t j = 0; j < per; j++)
                    w[(size_t)o * per + j] *= k;
                b[o] = (b[o] - mu[o]) * k + be[o];
            }
            map[i] = c;
            continue;
        }
        int in[64];
        for (int k = 0; k < n->n_in && k < 64; k++)
            in[k] = map[n->in[k]];
        pare_attrs a = n->a;
        int folds = 0;
        if (n->op == PARE_OP_CONV2D && uses[i] == 1)
            for (int j = i + 1; j < g->n_nodes; j++)
                if (g->nodes[j].n_in > 0 && g->nodes[j].in[0] == i)
                    folds = g->nodes[j].op == PARE_OP_BATCHNORM;
        if (folds)
            a.bias = 1;
        map[i] = pare_graph_add_node(h, n->op, in, n->n_in, &a, n->name);
        if (map[i] < 0) {
            s = h->err;
            goto done;
        }
        if ((s = copy_params(h, map[i], g, i)) != PARE_OK)
            goto done;
    }
    s = pare_graph_set_output(h, map[g->output]);
    for (int k = 0; s == PARE_OK && k < g->n_meta; k++)
        s = pare_graph_meta_set(h, g->meta[k].key, g->meta[k].value);
done:
    free(only_act);
    free(uses);
    free(map);
    if (s != PARE_OK) {
        pare_graph_free(h);
        return s == PARE_ENOMEM ? pare_fail(s, "out of memory") : s;
    }
    *out = h;
    return PARE_OK;
}

static pare_status set_q(pare_qparams *q, int bits, int scheme, int n, const float *scale)
{
    q->bits = bits;
    q->scheme = scheme;
    q->axis = 0;
    q->n = n;
    q->scale = malloc((size_t)n * sizeof *q->scale);
    q->zero_point = calloc((size_t)n, sizeof *q->zero_point);
    if (!q->scale || !q->zero_point)
        return pare_fail(PARE_ENOMEM, "out of memory");
    memcpy(q->scale, scale, (size_t)n * sizeof *scale);
    return PARE_OK;
}

/* Per output channel: s = max |w| / M (the mean |w| for binary), w = s code. */
static pare_status quantize_weight(pare_param *p, int O, int bits, float *scale)
{
    size_t per = p->t->n / (size_t)O;
    int M = bits <= 2 ? 1 : (1 << (bits - 1)) - 1;
    for (int o = 0; o < O; o++) {
        float *w = p->t->data + (size_t)o * per;
        double mx = 0, sum = 0;
        for (size_t j = 0; j < per; j++) {
            mx = fmax(mx, fabs(w[j]));
            sum += fabs(w[j]);
        }
        float s = bits == 1 ? (float)(sum / (double)per) : (float)(mx / M);
        if (!(s > FLT_MIN))
            s = 1.0f;
        for (size_t j = 0; j < per; j++) {
            float c = bits == 1 ? (w[j] < 0 ? -1.0f : 1.0f) : rintf(w[j] / s);
            c = c < (float)-M ? (float)-M : c > (float)M ? (float)M : c;
            w[j] = s * (float)(int)c; /* (int) turns -0 into 0: a code, not a sign */
        }
        scale[o] = s;
    }
    return set_q(&p->q, bits, 2, O, scale);
}

pare_status qdq_fix_quantize(const pare_graph *g, const float *calib, int n,
                             const qdq_fix_options *o, pare_graph **out)
{
    *out = NULL;
    pare_graph *h = NULL, *q = NULL;
    pare_exec *ex = NULL;
    pare_status s = o->fold_bn ? fold_bn(g, &h) : pare_graph_clone(g, &h);
    if (s != PARE_OK)
        return s;
    int N = h->n_nodes;
    float *lo = malloc((size_t)N * sizeof *lo), *hi = malloc((size_t)N * sizeof *hi);
    float *wscale = NULL;
    int *only_act = malloc((size_t)N * sizeof *only_act), *map = malloc((size_t)N * sizeof *map);
    int *fq = malloc((size_t)N * sizeof *fq), *want = calloc((size_t)N, sizeof *want);
    int *uses = only_act ? use_counts(h, only_act) : NULL;
    size_t wmax = 1;
    for (int p = 0; p < h->n_params; p++)
        wmax = h->params[p].t->n > wmax ? h->params[p].t->n : wmax;
    wscale = malloc(wmax * sizeof *wscale);
    if (!lo || !hi || !map || !fq || !want || !uses || !wscale) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    /* Ranges of every value, from a float forward that keeps them all. */
    if ((s = pare_exec_new(h, n, 1, 1, &ex)) != PARE_OK)
        goto done;
    pare_exec_set_eval(ex, 1);
    memcpy(pare_exec_input(ex), calib, (size_t)n * pare_shape_size(h->nodes[0].out) * sizeof(float));
    pare_exec_forward(ex, n, 0);
    for (int v = 0; v < N; v++) {
        const float *x = pare_exec_value(ex, v);
        size_t m = (size_t)n * pare_shape_size(h->nodes[v].out);
        lo[v] = 0.0f;
        hi[v] = 0.0f;
        for (size_t k = 0; x && k < m; k++) {
            lo[v] = fminf(lo[v], x[k]);
            hi[v] = fmaxf(hi[v], x[k]);
        }
        fq[v] = -1;
    }
    /* Where fake quantization goes. */
    for (int i = 0; i < N && o->abits; i++) {
        const pare_node *nd = &h->nodes[i];
        if (!o->everywhere) {
            if (nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR)
                want[nd->in[0]] = 1;
            continue;
        }
        pare_op_type t = nd->op;
        int last = i == h->output;
        want[i] = (last ? o->everywhere > 1 : uses[i] > 0 && !only_act[i]) && t != PARE_OP_FLATTEN &&
                  t != PARE_OP_RESHAPE && t != PARE_OP_DROPOUT && t != PARE_OP_SOFTMAX &&
                  t != PARE_OP_FAKEQUANT;
    }
    if (!(q = pare_graph_new(h->name ? h->name : "model"))) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < N; i++) {
        const pare_node *nd = &h->nodes[i];
        if (nd->op == PARE_OP_INPUT) {
            map[i] = pare_graph_input(q, nd->out.c, nd->out.h, nd->out.w);
        } else {
            int in[64];
            for (int k = 0; k < nd->n_in && k < 64; k++)
                in[k] = fq[nd->in[k]] >= 0 ? fq[nd->in[k]] : map[nd->in[k]];
            map[i] = pare_graph_add_node(q, nd->op, in, nd->n_in, &nd->a, nd->name);
            if (map[i] < 0 || (s = copy_params(q, map[i], h, i)) != PARE_OK) {
                s = map[i] < 0 ? q->err : s;
                goto done;
            }
        }
        if (map[i] < 0) {
            s = q->err;
            goto done;
        }
        const pare_node *qn = &q->nodes[map[i]];
        if ((nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR) && o->wbits) {
            pare_param *w = &q->params[qn->param[0]];
            if ((s = quantize_weight(w, nd->a.out_channels, o->wbits, wscale)) != PARE_OK)
                goto done;
            const pare_node *src = &q->nodes[qn->in[0]];
            if (o->bias32 && nd->a.bias && src->op == PARE_OP_FAKEQUANT) {
                pare_param *b = &q->params[qn->param[1]];
                float *sb = malloc((size_t)nd->a.out_channels * sizeof *sb);
                int fits = sb != NULL;
                for (int c = 0; fits && c < nd->a.out_channels; c++) {
                    sb[c] = src->a.alpha * wscale[c];
                    double k = rint((double)b->t->data[c] / (double)sb[c]);
                    fits = isfinite(k) && fabs(k) < 2147483647.0 && sb[c] > FLT_MIN;
                    if (fits)
                        b->t->data[c] = sb[c] * (float)(int32_t)k;
                }
                s = fits ? set_q(&b->q, 32, 2, nd->a.out_channels, sb)
                         : sb ? PARE_OK : pare_fail(PARE_ENOMEM, "out of memory");
                free(sb);
                if (s != PARE_OK)
                    goto done;
            }
        }
        if (want[i]) {
            int qmax = (1 << o->abits) - 1;
            float scale = (hi[i] - lo[i]) / (float)qmax;
            if (!(scale > FLT_MIN) || !isfinite(scale))
                scale = 1.0f;
            float z = rintf(-lo[i] / scale);
            int zp = z < 0 ? 0 : z > (float)qmax ? qmax : (int)z;
            char name[300];
            snprintf(name, sizeof name, "%s.fq", nd->name);
            fq[i] = pare_graph_fakequant(q, map[i], scale, zp, o->abits, name);
            if (fq[i] < 0) {
                s = q->err;
                goto done;
            }
        }
    }
    s = pare_graph_set_output(q, fq[h->output] >= 0 ? fq[h->output] : map[h->output]);
    for (int k = 0; s == PARE_OK && k < h->n_meta; k++)
        s = pare_graph_meta_set(q, h->meta[k].key, h->meta[k].value);
done:
    pare_exec_free(ex);
    free(lo);
    free(hi);
    free(wscale);
    free(only_act);
    free(uses);
    free(map);
    free(fq);
    free(want);
    pare_graph_free(h);
    if (s != PARE_OK) {
        pare_graph_free(q);
        return s;
    }
    *out = q;
    return PARE_OK;
}
