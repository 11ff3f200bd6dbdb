/* Evaluation of a graph on a dataset: loss and accuracy, in order, with
 * activations reused by liveness. */
#include <stdlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/data.h"
#include "graph/exec.h"
#include "ops/loss.h"
#include "train/trainer.h"

pare_status pare_check_data_fits(const pare_graph *g, const pare_dataset *ds)
{
    int c, h, w, oc, oh, ow;
    pare_graph_input_shape(g, &c, &h, &w);
    pare_graph_output_shape(g, &oc, &oh, &ow);
    if (ds->c != c || ds->h != h || ds->w != w)
        return pare_fail(PARE_ESHAPE, "%s has %dx%dx%d samples but model %s takes %dx%dx%d", ds->name,
                         ds->c, ds->h, ds->w, g->name, c, h, w);
    if (oh != 1 || ow != 1 || ds->classes > oc)
        return pare_fail(PARE_ESHAPE, "%s has %d classes but model %s outputs %d values per sample",
                         ds->name, ds->classes, g->name, oc * oh * ow);
    return PARE_OK;
}

pare_status pare_evaluate_cb(pare_graph *g, const pare_dataset *ds, int batch, int threads,
                             pare_eval_result *out, pare_train_callback cb, void *user,
                             const pare_train_event *proto)
{
    out->loss = 0;
    out->accuracy = 0;
    out->samples = 0;
    if (!g || !ds)
        return pare_fail(PARE_EINVAL, "evaluation needs a model and a dataset");
    pare_status s = pare_check_data_fits(g, ds);
    if (s != PARE_OK)
        return s;
    if (batch <= 0)
        batch = 500;
    if (batch > ds->n)
        batch = (int)ds->n;
    threads = pare_threads_resolve(threads);
    pare_exec *e;
    s = pare_exec_new(g, batch, 0, threads, &e);
    if (s != PARE_OK)
        return s;
    long *idx = malloc(sizeof(long) * (size_t)batch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
    if (!idx || !lab) {
        free(idx);
        free(lab);
        pare_exec_free(e);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    int k = g->nodes[g->output].out.c;
    double loss = 0;
    long correct = 0;
    for (long start = 0; start < ds->n; start += batch) {
        int m = (int)(ds->n - start < batch ? ds->n - start : batch);
        for (int i = 0; i < m; i++)
            idx[i] = start + i;
        pare_data_batch(ds, idx, m, pare_exec_input(e), lab, NULL, 0, 0, threads);
        pare_exec_forward(e, m, 0);
        long right;
        loss += m * pare_softmax_xent(pare_exec_output(e), lab, m, k, NULL, &right);
        correct += right;
        if (cb && proto) {
            pare_train_event ev = *proto;
            ev.kind = PARE_EV_EVAL;
            ev.step = start + m;
            ev.steps_per_epoch = ds->n;
            cb(&ev, user);
        }
    }
    out->samples = ds->n;
    out->loss = loss / (double)ds->n;
    out->accuracy = (double)correct / (double)ds->n;
    free(idx);
    free(lab);
    pare_exec_free(e);
    return PARE_OK;
}

pare_status pare_evaluate(pare_graph *g, const pare_dataset *ds, int batch, int threads,
                          pare_eval_result *out)
{
    return pare_evaluate_cb(g, ds, batch, threads, out, NULL, NULL, NULL);
}
