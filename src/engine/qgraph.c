/* A quantized copy of a model for the int8 engine's tests and benchmarks:
 * per-channel symmetric weights of every conv and linear layer put on their
 * grid, and a fakequant node (min-max calibrated on random inputs) before
 * each of their inputs. Not the user-facing quantizer (pare quantize, in
 * compress/): no calibration data, no choice of layers, no report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "graph/exec.h"

/* Every value's range on `samples` normal inputs (eval mode: running stats). */
static pare_status value_ranges(pare_graph *g, int samples, uint64_t seed, float *lo, float *hi)
{
    pare_exec *e;
    pare_status s = pare_exec_new(g, samples, 1, 1, &e);
    if (s != PARE_OK)
        return s;
    pare_exec_set_eval(e, 1);
    pare_rng r;
    pare_rng_seed(&r, seed, 17, 0, 0);
    size_t isz = pare_shape_size(g->nodes[0].out) * (size_t)samples;
    float *x = pare_exec_input(e);
    for (size_t i = 0; i < isz; i++)
        x[i] = (float)pare_rng_normal(&r);
    pare_exec_forward(e, samples, 0);
    for (int v = 0; v < g->n_nodes; v++) {
        const float *y = pare_exec_value(e, v);
        size_t n = pare_shape_size(g->nodes[v].out) * (size_t)samples;
        float a = 0.0f, b = 0.0f; /* the range holds 0, so 0 is a code */
        for (size_t i = 0; y && i < n; i++) {
            a = y[i] < a ? y[i] : a;
            b = y[i] > b ? y[i] : b;
        }
        lo[v] = a;
        hi[v] = b;
    }
    pare_exec_free(e);
    return PARE_OK;
}

/* Per output channel: s = max |w| / 127 (1 for an all-zero channel), w = s * rint(w / s). */
static pare_status quantize_weight(pare_param *p)
{
    int O = p->t->dims[0];
    size_t K = O > 0 ? p->t->n / (size_t)O : 0;
    pare_qparams_clear(&p->q);
    p->q.scale = malloc(sizeof(float) * (size_t)(O > 0 ? O : 1));
    p->q.zero_point = calloc((size_t)(O > 0 ? O : 1), sizeof(int32_t));
    if (!p->q.scale || !p->q.zero_point)
        return pare_fail(PARE_ENOMEM, "out of memory");
    for (int o = 0; o < O; o++) {
        float *w = p->t->data + (size_t)o * K, m = 0.0f;
        for (size_t i = 0; i < K; i++)
            m = fabsf(w[i]) > m ? fabsf(w[i]) : m;
        float s = m > 0.0f ? m / 127.0f : 1.0f;
        for (size_t i = 0; i < K; i++)
            w[i] = s * rintf(w[i] / s);
        p->q.scale[o] = s;
    }
    p->q.bits = 8;
    p->q.scheme = 2;
    p->q.axis = 0;
    p->q.n = O;
    return PARE_OK;
}

pare_status pare_engine_fake_quantize(const pare_graph *g0, int samples, uint64_t seed, pare_graph **out)
{
    *out = NULL;
    pare_graph *g = NULL;
    pare_status s = pare_graph_clone(g0, &g);
    if (s != PARE_OK)
        return s;
    int n = g->n_nodes;
    float *lo = malloc(sizeof(float) * (size_t)n), *hi = malloc(sizeof(float) * (size_t)n);
    int *map = malloc(sizeof(int) * (size_t)n), *fq = malloc(sizeof(int) * (size_t)n);
    pare_graph *q = pare_graph_new(g->name);
    if (!lo || !hi || !map || !fq || !q) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    s = value_ranges(g, samples, seed, lo, hi);
    for (int v = 0; v < n && s == PARE_OK; v++) {
        const pare_node *nd = &g->nodes[v];
        int in[8];
        if (nd->n_in > 8) {
            s = pare_fail(PARE_EUNSUPPORTED, "layer %s has more than 8 inputs", nd->name);
            break;
        }
        for (int j = 0; j < nd->n_in; j++)
            in[j] = map[nd->in[j]];
        int qz = nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR;
        fq[v] = -1;
        if (qz) {
            int u = nd->in[0];
            if (fq[u] < 0) {
                /* 8 bits over [lo, hi] (which holds 0): zp = rint(-lo / s) */
                float scale = (hi[u] - lo[u]) / 255.0f;
                if (!(scale > 0.0f))
                    scale = 1.0f;
                int zp = (int)rintf(-lo[u] / scale);
                zp = zp < 0 ? 0 : zp > 255 ? 255 : zp;
                char name[256];
                snprintf(name, sizeof name, "%.*s.fq", 250, g->nodes[u].name);
                fq[u] = pare_graph_fakequant(q, map[u], scale, zp, 8, name);
            }
            in[0] = fq[u];
        }
        int id = pare_graph_add_node(q, nd->op, nd->n_in ? in : NULL, nd->n_in, &nd->a, nd->name);
        if (id < 0) {
            s = q->err ? q->err : pare_fail(PARE_EINVAL, "could not copy layer %s", nd->name);
            break;
        }
        for (int k = 0; k < nd->n_param && s == PARE_OK; k++) {
            pare_param *d = &q->params[q->nodes[id].param[k]];
            const pare_param *sp = &g->params[nd->param[k]];
            s = pare_param_copy_into(d, sp);
            if (s == PARE_OK && qz && sp->role == PARE_ROLE_WEIGHT)
                s = quantize_weight(d);
        }
        map[v] = id;
    }
    if (s == PARE_OK)
        s = pare_graph_set_output(q, map[g->output]);
    for (int i = 0; s == PARE_OK && i < g->n_meta; i++)
        s = pare_graph_meta_set(q, g->meta[i].key, g->meta[i].value);
done:
    free(lo);
    free(hi);
    free(map);
    free(fq);
    pare_graph_free(g);
    if (s != PARE_OK) {
        pare_graph_free(q);
        return s;
    }
    *out = q;
    return PARE_OK;
}
