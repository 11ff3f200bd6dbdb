/* SGD (momentum, Nesterov, L2 weight decay, as PyTorch defines them) and AdamW
 * (decoupled weight decay); big tensors are updated in parallel chunks, which
 * is exact because every element's update is independent. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "kernels/vec.h"
#include "train/train.h"

#ifdef _OPENMP
#include <omp.h>
#endif

struct pare_optim {
    pare_optimizer kind;
    float momentum, wd, b1, b2, eps;
    int nesterov;
    int n;
    size_t *len;
    float **s1, **s2;   /* SGD: momentum buffer; AdamW: first and second moments */
    long *steps;        /* updates applied to each parameter (SGD's first step, AdamW's bias correction) */
};

void pare_optim_free(pare_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        pare_free(o->s1[i]);
        pare_free(o->s2[i]);
    }
    free(o->s1);
    free(o->s2);
    free(o->len);
    free(o->steps);
    free(o);
}

pare_status pare_optim_new(const pare_graph *g, const pare_train_config *c, pare_optim **out)
{
    *out = NULL;
    pare_optim *o = calloc(1, sizeof *o);
    if (!o)
        return pare_fail(PARE_ENOMEM, "out of memory");
    o->kind = c->optimizer;
    o->momentum = c->momentum;
    o->wd = c->weight_decay;
    o->b1 = c->beta1;
    o->b2 = c->beta2;
    o->eps = c->eps;
    o->nesterov = c->nesterov;
    o->n = g->n_params;
    size_t np = (size_t)(o->n ? o->n : 1);
    o->s1 = calloc(np, sizeof(float *));
    o->s2 = calloc(np, sizeof(float *));
    o->len = calloc(np, sizeof(size_t));
    o->steps = calloc(np, sizeof(long));
    if (!o->s1 || !o->s2 || !o->len || !o->steps)
        goto fail;
    for (int i = 0; i < o->n; i++) {
        if (!g->params[i].trainable)
            continue;
        o->len[i] = g->params[i].t->n;
        o->s1[i] = pare_alloc_array(o->len[i], sizeof(float), 1);
        if (!o->s1[i])
            goto fail;
        if (o->kind == PARE_OPT_ADAMW) {
            o->s2[i] = pare_alloc_array(o->len[i], sizeof(float), 1);
            if (!o->s2[i])
                goto fail;
        }
    }
    *out = o;
    return PARE_OK;
fail:
    pare_optim_free(o);
    return pare_fail(PARE_ENOMEM, "out of memory for the optimizer state");
}

void pare_optim_reset_param(pare_optim *o, int p)
{
    if (p < 0 || p >= o->n || !o->s1[p])
        return;
    memset(o->s1[p], 0, o->len[p] * sizeof(float));
    if (o->s2[p])
        memset(o->s2[p], 0, o->len[p] * sizeof(float));
    o->steps[p] = 0;
}

/* Below this many values the update runs on one thread. */
#define PAR_MIN 65536

static void update_range(const pare_optim *o, const pare_vec_kernels *vk, int p, float *w,
                         const float *gr, const uint8_t *mask, size_t lo, size_t hi, float lr)
{
    size_t n = hi - lo;
    const uint8_t *mk = mask ? mask + lo : NULL;
    if (o->kind == PARE_OPT_SGD) {
        vk->f32_sgd(n, w + lo, gr + lo, o->s1[p] + lo, mk, lr, o->momentum, o->wd, o->nesterov,
                    o->steps[p] == 0);
    } else {
        double t = (double)o->steps[p] + 1;
        float c1 = (float)(1.0 - pow((double)o->b1, t)), c2 = (float)(1.0 - pow((double)o->b2, t));
        vk->f32_adamw(n, w + lo, gr + lo, o->s1[p] + lo, o->s2[p] + lo, mk, lr, o->b1, o->b2,
                      o->eps, o->wd, c1, c2);
    }
}

void pare_optim_step(pare_optim *o, pare_graph *g, pare_exec *e, float lr, int threads)
{
    pare_optim_step_skip(o, g, e, lr, threads, NULL);
}

void pare_optim_step_skip(pare_optim *o, pare_graph *g, pare_exec *e, float lr, int threads,
                          const uint8_t *skip)
{
    const pare_vec_kernels *vk = pare_vec();
    for (int p = 0; p < o->n; p++) {
        pare_param *pp = &g->params[p];
        const float *gr = pare_exec_param_grad(e, p);
        if (!gr || !o->s1[p] || (skip && skip[p]))
            continue;
        size_t n = o->len[p];
        int nt = n < PAR_MIN ? 1 : threads;
        if (nt <= 1) {
            update_range(o, vk, p, pp->t->data, gr, pp->mask, 0, n, lr);
        } else {
#pragma omp parallel num_threads(nt)
            {
                long lo, hi;
#ifdef _OPENMP
                int t = omp_get_thread_num();
#else
                int t = 0;
#endif
                pare_split_range((long)((n + 15) / 16), nt, t, &lo, &hi);
                size_t a = (size_t)lo * 16, b = (size_t)hi * 16 > n ? n : (size_t)hi * 16;
                if (a < b)
                    update_range(o, vk, p, pp->t->data, gr, pp->mask, a, b, lr);
            }
        }
        o->steps[p]++;
    }
}

void pare_optim_save(const pare_optim *o, pare_wbuf *b)
{
    pare_wbuf_u32(b, (uint32_t)o->kind);
    pare_wbuf_u32(b, (uint32_t)o->n);
    for (int p = 0; p < o->n; p++) {
        pare_wbuf_u64(b, (uint64_t)o->len[p]);
        pare_wbuf_u64(b, (uint64_t)o->steps[p]);
        if (!o->s1[p])
            continue;
        pare_wbuf_f32s(b, o->s1[p], o->len[p]);
        if (o->s2[p])
            pare_wbuf_f32s(b, o->s2[p], o->len[p]);
    }
}

pare_status pare_optim_load(pare_optim *o, pare_rbuf *r)
{
    uint32_t kind = pare_rbuf_u32(r), n = pare_rbuf_u32(r);
    if (r->bad || kind != (uint32_t)o->kind || n != (uint32_t)o->n)
        return pare_fail(PARE_EFORMAT, "the optimizer state is for a different optimizer or model");
    for (int p = 0; p < o->n; p++) {
        uint64_t len = pare_rbuf_u64(r), steps = pare_rbuf_u64(r);
        if (r->bad || len != (uint64_t)o->len[p] || steps > (uint64_t)1 << 40)
            return pare_fail(PARE_EFORMAT, "the optimizer state of parameter %d does not fit the model", p);
        o->steps[p] = (long)steps;
        if (!o->s1[p])
            continue;
        if (!pare_rbuf_f32s(r, o->s1[p], o->len[p]) || (o->s2[p] && !pare_rbuf_f32s(r, o->s2[p], o->len[p])))
            return pare_fail(PARE_EFORMAT, "the optimizer state is truncated");
    }
    return PARE_OK;
}
