/* ONNX backend test folders: load model.onnx with the test's extra inputs bound
 * as constants, run every data set through pare_graph_forward and through the
 * compiled plan, and compare with the expected outputs at ONNX's tolerance. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsio.h"
#include "graph/graph.h"
#include "io/onnx.h"

#define MAX_TENSORS 16

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void pare_onnx_case_list_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

pare_status pare_onnx_case_list(const char *dir, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return pare_fail(PARE_ENOTFOUND, "cannot open the folder %s", dir);
    char **list = NULL;
    int count = 0, cap = 0;
    pare_status s = PARE_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        if (e->d_name[0] == '.' || !pare_path_join(path, sizeof path, dir, e->d_name) ||
            strlen(path) + 12 > sizeof path)
            continue;
        strcat(path, "/model.onnx");
        if (!pare_file_exists(path))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **l = realloc(list, sizeof *l * (size_t)cap);
            if (!l) {
                s = pare_fail(PARE_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            list = l;
        }
        if (!(list[count] = strdup(e->d_name))) {
            s = pare_fail(PARE_ENOMEM, "out of memory listing %s", dir);
            break;
        }
        count++;
    }
    closedir(d);
    if (s != PARE_OK) {
        pare_onnx_case_list_free(list, count);
        return s;
    }
    if (count > 1)
        qsort(list, (size_t)count, sizeof *list, cmp_name);
    *names = list;
    *n = count;
    return PARE_OK;
}

/* The message without the "<path>: " the importer puts first. */
static void reason_of(char *buf, size_t cap, const char *path, const char *prefix)
{
    const char *msg = pare_last_error();
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    snprintf(buf, cap, "%s%s", prefix, msg);
}

/* Reads <dir>/<kind>_0.pb, _1.pb, ... while they exist. */
static pare_status read_tensors(const char *dir, const char *kind, pare_onnx_tensor **t, int *n)
{
    *n = 0;
    for (int k = 0; k < MAX_TENSORS; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, kind, k);
        if (!pare_file_exists(path))
            break;
        pare_status s = pare_onnx_tensor_read(path, &t[k]);
        if (s != PARE_OK)
            return s;
        (*n)++;
    }
    return PARE_OK;
}

/* numpy.testing.assert_allclose(actual, expected, rtol, atol): NaN matches NaN,
 * an infinity matches itself. Returns the max |actual - expected| and sets *ok. */
static double compare(const float *y, const float *e, size_t n, int *ok)
{
    double worst = 0;
    *ok = 1;
    for (size_t k = 0; k < n; k++) {
        double a = y[k], x = e[k];
        if (isnan(x) || isnan(a)) {
            *ok &= isnan(x) && isnan(a);
            continue;
        }
        if (isinf(x) || isinf(a)) {
            *ok &= a == x;
            continue;
        }
        double d = fabs(a - x);
        if (d > worst)
            worst = d;
        if (!(d <= PARE_ONNX_ATOL + PARE_ONNX_RTOL * fabs(x)))
            *ok = 0;
    }
    return worst;
}

static void set_result(pare_onnx_case *c, pare_onnx_result r, const char *why)
{
    if (c->result != PARE_ONNX_PASS)
        return;
    c->result = r;
    snprintf(c->reason, sizeof c->reason, "%s", why);
}

/* One data set: inputs and outputs read, model loaded with them, compared. */
static pare_status run_set(pare_onnx_case *c, const char *model, const char *set, int threads)
{
    pare_onnx_tensor *in[MAX_TENSORS] = {0}, *out[MAX_TENSORS] = {0};
    int n_in = 0, n_out = 0;
    pare_graph *g = NULL;
    pare_plan *plan = NULL;
    float *y = NULL;
    char why[512];
    pare_status s = read_tensors(set, "input", in, &n_in);
    if (s == PARE_OK)
        s = read_tensors(set, "output", out, &n_out);
    if (s != PARE_OK) {
        if (s == PARE_ENOMEM)
            goto done;
        reason_of(why, sizeof why, "", "");
        set_result(c, s == PARE_EUNSUPPORTED ? PARE_ONNX_UNSUPPORTED : PARE_ONNX_FAIL, why);
        s = PARE_OK;
        goto done;
    }
    if (n_in < 1 || n_out != 1) {
        snprintf(why, sizeof why, "it has %d inputs and %d outputs; pare takes one input and gives "
                                  "one output",
                 n_in, n_out);
        set_result(c, PARE_ONNX_UNSUPPORTED, why);
        goto done;
    }
    /* uint8 and int8 data (a quantized model's input) go in as float32 holding
     * the integers, as the importer takes such an input. */
    if (in[0]->dtype == PARE_ONNX_INT64 &&
        (in[0]->src_dtype == PARE_ONNX_UINT8 || in[0]->src_dtype == PARE_ONNX_INT8)) {
        in[0]->f = malloc((in[0]->n ? in[0]->n : 1) * sizeof(float));
        if (!in[0]->f) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < in[0]->n; k++)
            in[0]->f[k] = (float)in[0]->i[k];
        in[0]->dtype = PARE_ONNX_FLOAT;
    }
    if (in[0]->dtype != PARE_ONNX_FLOAT || out[0]->dtype != PARE_ONNX_FLOAT) {
        set_result(c, PARE_ONNX_UNSUPPORTED, "its data are not float32");
        goto done;
    }
    if (in[0]->rank < 1 || in[0]->dims[0] < 1 || out[0]->rank < 1 ||
        out[0]->dims[0] != in[0]->dims[0]) {
        set_result(c, PARE_ONNX_UNSUPPORTED,
                   "its input and output do not share a leading batch axis");
        goto done;
    }
    pare_onnx_options o = {in + 1, n_in - 1, in[0]->dims, in[0]->rank};
    s = pare_onnx_load_ex(model, &o, &g);
    if (s == PARE_ENOMEM)
        goto done;
    if (s != PARE_OK) {
        reason_of(why, sizeof why, model, s == PARE_EUNSUPPORTED ? "" : "import: ");
        set_result(c, s == PARE_EUNSUPPORTED ? PARE_ONNX_UNSUPPORTED : PARE_ONNX_FAIL, why);
        s = PARE_OK;
        goto done;
    }
    int n = (int)in[0]->dims[0], oc, oh, ow;
    pare_graph_output_shape(g, &oc, &oh, &ow);
    size_t per = (size_t)oc * (size_t)oh * (size_t)ow;
    if (per * (size_t)n != out[0]->n) {
        snprintf(why, sizeof why, "pare gives %zu values, the test expects %zu", per * (size_t)n,
                 out[0]->n);
        set_result(c, PARE_ONNX_FAIL, why);
        goto done;
    }
    y = malloc((out[0]->n ? out[0]->n : 1) * sizeof(float));
    if (!y) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    s = pare_graph_forward(g, in[0]->f, n, y, threads);
    if (s != PARE_OK) {
        if (s == PARE_ENOMEM)
            goto done;
        reason_of(why, sizeof why, "", "forward: ");
        set_result(c, PARE_ONNX_FAIL, why);
        s = PARE_OK;
        goto done;
    }
    int ok;
    double err = compare(y, out[0]->f, out[0]->n, &ok);
    if (err > c->max_err)
        c->max_err = err;
    if (!ok) {
        snprintf(why, sizeof why, "max abs error %.3g", err);
        set_result(c, PARE_ONNX_FAIL, why);
    }
    /* The compiled engine, while it keeps passing. */
    if (c->plan == PARE_ONNX_PASS || c->plan == PARE_ONNX_SKIPPED) {
        pare_plan_options po = {threads, 0, 0, 0};
        s = pare_plan_new(g, &po, &plan);
        if (s == PARE_ENOMEM)
            goto done;
        if (s != PARE_OK) {
            c->plan = PARE_ONNX_UNSUPPORTED;
            reason_of(c->plan_reason, sizeof c->plan_reason, "", "");
            s = PARE_OK;
            goto done;
        }
        s = pare_plan_run(plan, in[0]->f, n, y);
        if (s == PARE_ENOMEM)
            goto done;
        if (s != PARE_OK) {
            c->plan = PARE_ONNX_FAIL;
            reason_of(c->plan_reason, sizeof c->plan_reason, "", "run: ");
            s = PARE_OK;
            goto done;
        }
        err = compare(y, out[0]->f, out[0]->n, &ok);
        if (err > c->plan_max_err)
            c->plan_max_err = err;
        c->plan = ok ? PARE_ONNX_PASS : PARE_ONNX_FAIL;
        if (!ok)
            snprintf(c->plan_reason, sizeof c->plan_reason, "max abs error %.3g", err);
    }
done:
    free(y);
    pare_plan_free(plan);
    pare_graph_free(g);
    for (int k = 0; k < MAX_TENSORS; k++) {
        pare_onnx_tensor_free(in[k]);
        pare_onnx_tensor_free(out[k]);
    }
    return s;
}

pare_status pare_onnx_check_case(const char *dir, int threads, pare_onnx_case *out)
{
    memset(out, 0, sizeof *out);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    snprintf(out->name, sizeof out->name, "%s", base);
    out->result = PARE_ONNX_PASS;
    out->plan = PARE_ONNX_SKIPPED;
    char model[4200], set[4300];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    if (!pare_file_exists(model))
        return pare_fail(PARE_ENOTFOUND, "%s holds no model.onnx", dir);
    for (int k = 0;; k++) {
        snprintf(set, sizeof set, "%s/test_data_set_%d", dir, k);
        char probe[4400];
        snprintf(probe, sizeof probe, "%s/input_0.pb", set);
        if (!pare_file_exists(probe) && k > 0)
            break;
        out->data_sets++;
        pare_status s = run_set(out, model, set, threads);
        if (s != PARE_OK)
            return s;
        if (out->result != PARE_ONNX_PASS)
            break;
    }
    return PARE_OK;
}
