/* Quantization: weight grids and scale fitting, activation calibration
 * (min-max, percentile, MSE), fakequant insertion by graph rebuilding,
 * post-training quantization with a per-layer error report, QAT hooks
 * (latent weights, straight-through) and ADMM quantization. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune.h"
#include "compress/quant.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/data.h"
#include "graph/exec.h"
#include "graph/op.h"
#include "train/train.h"

/* ---- weight grids ---------------------------------------------------------- */

int pare_quant_wmax(int bits) { return bits <= 2 ? 1 : (1 << (bits - 1)) - 1; }

float pare_quant_wcode(float w, float s, int bits)
{
    if (bits == 1)
        return w < 0.0f ? -1.0f : 1.0f;
    float m = (float)pare_quant_wmax(bits);
    /* + 0.0f: a weight that rounds to code 0 from below gives -0.0, but the
     * representation's value is scale * (float)0 = +0.0, and the file stores
     * codes only when every value rebuilds bit for bit */
    float q = rintf(w / s) + 0.0f;
    return q < -m ? -m : q > m ? m : q;
}

static int kept(const uint8_t *mask, size_t k) { return !mask || mask[k]; }

/* ||w - s code(w)||^2 over the kept values, values computed in float as the
 * representation stores them. */
static double grid_err(const float *w, const uint8_t *mask, size_t n, int bits, float s)
{
    double e = 0;
    for (size_t k = 0; k < n; k++) {
        if (!kept(mask, k))
            continue;
        double d = (double)w[k] - (double)(s * pare_quant_wcode(w[k], s, bits));
        e += d * d;
    }
    return e;
}

/* One alternation from s: codes at s, then the least-squares scale of them. */
static float l2_step(const float *w, const uint8_t *mask, size_t n, int bits, float s)
{
    double num = 0, den = 0;
    for (size_t k = 0; k < n; k++) {
        if (!kept(mask, k))
            continue;
        double c = pare_quant_wcode(w[k], s, bits);
        num += (double)w[k] * c;
        den += c * c;
    }
    return den > 0 ? (float)(num / den) : 0.0f;
}

static float fit_group(const float *w, const uint8_t *mask, size_t n, int bits, pare_wfit fit,
                       float init)
{
    int M = pare_quant_wmax(bits);
    double amax = 0, asum = 0;
    long cnt = 0;
    for (size_t k = 0; k < n; k++) {
        if (!kept(mask, k))
            continue;
        double a = fabs((double)w[k]);
        amax = a > amax ? a : amax;
        asum += a;
        cnt++;
    }
    float s0 = (float)(amax / M);
    if (cnt == 0 || !(s0 >= FLT_MIN))
        return 1.0f / (float)M;
    if (bits == 1) {
        /* Codes are sign(w) whatever the scale: <w, c> / <c, c> = mean |w|. */
        float s = (float)(asum / (double)cnt);
        return s >= FLT_MIN ? s : 1.0f;
    }
    if (fit == PARE_WFIT_MAXABS)
        return s0;
    /* The alternation only descends to a nearby optimum; starting from a few
     * clipping levels finds the good one at low bits, where clipping pays.
     * A warm start (QAT's previous scale) needs only a few steps. */
    float starts[5] = {s0, 0.75f * s0, 0.5f * s0, 0.3f * s0, 0};
    int n_starts = 4, iters = 30;
    if (init > 0 && isfinite(init)) {
        starts[0] = init;
        starts[1] = s0;
        n_starts = 2;
        iters = 4;
    }
    float best = s0;
    double best_e = grid_err(w, mask, n, bits, s0);
    for (int j = 0; j < n_starts; j++) {
        float s = starts[j];
        double e = grid_err(w, mask, n, bits, s);
        if (e < best_e) {
            best_e = e;
            best = s;
        }
        for (int it = 0; it < iters; it++) {
            float s2 = l2_step(w, mask, n, bits, s);
            if (!(s2 >= FLT_MIN) || s2 == s)
                break;
            s = s2;
            e = grid_err(w, mask, n, bits, s);
            if (e < best_e) {
                best_e = e;
                best = s;
            }
        }
    }
    return best;
}

void pare_quant_fit_scales(const float *w, const uint8_t *mask, size_t n, int groups, int bits,
                           pare_wfit fit, const float *init, float *scale)
{
    size_t len = groups > 0 ? n / (size_t)groups : n;
    for (int g = 0; g < groups; g++) {
        size_t at = (size_t)g * len;
        scale[g] = fit_group(w + at, mask ? mask + at : NULL, len, bits, fit, init ? init[g] : 0.0f);
    }
}

void pare_quant_project(const float *w, const uint8_t *mask, size_t n, int groups, int bits,
                        const float *scale, float *out)
{
    size_t len = groups > 0 ? n / (size_t)groups : n;
    for (int g = 0; g < groups; g++) {
        float s = scale[g];
        for (size_t k = (size_t)g * len; k < (size_t)(g + 1) * len; k++)
            out[k] = kept(mask, k) ? s * pare_quant_wcode(w[k], s, bits) : 0.0f;
    }
}

static pare_status set_qparams(pare_param *p, int bits, int scheme, int n, const float *scale)
{
    float *sc = malloc(sizeof(float) * (size_t)n);
    int32_t *zp = calloc((size_t)n, sizeof(int32_t));
    if (!sc || !zp) {
        free(sc);
        free(zp);
        return pare_fail(PARE_ENOMEM, "out of memory quantizing %s", p->name);
    }
    memcpy(sc, scale, sizeof(float) * (size_t)n);
    pare_qparams_clear(&p->q);
    p->q.bits = bits;
    p->q.scheme = scheme;
    p->q.axis = 0;
    p->q.n = n;
    p->q.scale = sc;
    p->q.zero_point = zp;
    return PARE_OK;
}

static pare_status check_finite(const pare_param *p)
{
    for (size_t k = 0; k < p->t->n; k++)
        if (!isfinite(p->t->data[k]))
            return pare_fail(PARE_EINVAL, "%s holds a non-finite value at index %zu; it cannot be quantized",
                             p->name, k);
    return PARE_OK;
}

pare_status pare_quant_weight(pare_param *p, int bits, int per_channel, pare_wfit fit)
{
    if (bits < 1 || bits > 8)
        return pare_fail(PARE_EINVAL, "weights quantize to 1 to 8 bits, not %d", bits);
    pare_status s = check_finite(p);
    if (s != PARE_OK)
        return s;
    int groups = per_channel && p->t->ndim > 1 ? p->t->dims[0] : 1;
    float *scale = malloc(sizeof(float) * (size_t)groups);
    if (!scale)
        return pare_fail(PARE_ENOMEM, "out of memory quantizing %s", p->name);
    pare_quant_fit_scales(p->t->data, p->mask, p->t->n, groups, bits, fit, NULL, scale);
    pare_quant_project(p->t->data, p->mask, p->t->n, groups, bits, scale, p->t->data);
    s = set_qparams(p, bits, per_channel ? 2 : 1, groups, scale);
    free(scale);
    return s;
}

/* Codes up to 2^24 keep value = scale * (float)code exact and recoverable. */
#define BIAS_CODE_MAX 16777216.0

int pare_quant_bias(pare_param *bias, const pare_param *weight, float s_in)
{
    const pare_qparams *wq = &weight->q;
    int n = (int)bias->t->n;
    if (wq->bits < 1 || wq->bits > 8 || (wq->scheme != 1 && wq->scheme != 2) || wq->n < 1 ||
        (wq->scheme == 2 && wq->n != n))
        return 0;
    float *scale = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!scale)
        return -1;
    for (int o = 0; o < n; o++) {
        float sc = s_in * wq->scale[wq->scheme == 2 ? o : 0];
        double r = isnormal(sc) && sc > 0 ? rint((double)(bias->t->data[o] / sc)) : NAN;
        if (!(fabs(r) <= BIAS_CODE_MAX)) {
            free(scale);
            return 0;
        }
        scale[o] = sc;
    }
    for (int o = 0; o < n; o++)
        if (!kept(bias->mask, (size_t)o))
            bias->t->data[o] = 0.0f;
        else
            bias->t->data[o] = scale[o] * (rintf(bias->t->data[o] / scale[o]) + 0.0f);
    pare_status s = set_qparams(bias, 32, 2, n, scale);
    free(scale);
    return s == PARE_OK ? 1 : -1;
}

static int code_ok(double c, int bits)
{
    if (bits == 1)
        return c == -1.0 || c == 1.0;
    if (bits == 32)
        return fabs(c) <= 2147483647.0;
    return c >= (double)pare_qparams_code_min(bits) && c <= (double)pare_qparams_code_max(bits);
}

int pare_quant_on_grid(const pare_param *p)
{
    const pare_qparams *q = &p->q;
    const pare_tensor *t = p->t;
    if (q->bits == 0)
        return 1;
    if (q->scheme == 3) {
        if (!q->codebook || q->d < 1 || t->n % (size_t)q->d)
            return 0;
        for (size_t r = 0; r < t->n / (size_t)q->d; r++) {
            int found = 0;
            for (int j = 0; j < q->k && !found; j++)
                found = !memcmp(t->data + r * (size_t)q->d, q->codebook + (size_t)j * (size_t)q->d,
                                sizeof(float) * (size_t)q->d);
            if (!found)
                return 0;
        }
        return 1;
    }
    if (q->scheme == 4) {
        /* A basis: the values are Ce B (and +0.0 where pruned); without the
         * coefficients that cannot be checked. */
        if (!q->codebook || !q->coef || q->d < 1 || q->k != q->d || t->n % (size_t)q->d)
            return 0;
        for (size_t e = 0; e < t->n; e++) {
            float want = kept(p->mask, e) ? pare_qparams_basis_value(q->coef, q->codebook, q->d,
                                                                     e / (size_t)q->d, (int)(e % (size_t)q->d))
                                          : 0.0f;
            if (memcmp(&t->data[e], &want, sizeof want))
                return 0;
        }
        return 1;
    }
    if ((q->scheme != 1 && q->scheme != 2) || q->n < 1 || !q->scale || !q->zero_point)
        return 0;
    size_t len = q->scheme == 2 ? t->n / (size_t)q->n : t->n;
    for (size_t k = 0; k < t->n; k++) {
        int g = q->scheme == 2 ? (int)(k / len) : 0;
        float v = t->data[k], s = q->scale[g], want = 0.0f;
        /* Bit for bit: -0.0 is not the +0.0 that scale * (float)0 gives. */
        if (kept(p->mask, k)) {
            double code = rint((double)v / (double)s) + q->zero_point[g];
            if (!code_ok(code, q->bits))
                return 0;
            want = s * (float)(code - q->zero_point[g]);
        }
        if (memcmp(&v, &want, sizeof v))
            return 0;
    }
    return 1;
}

/* ---- activation calibration ------------------------------------------------ */

void pare_observer_init(pare_observer *o)
{
    memset(o, 0, sizeof *o);
    o->lo = INFINITY;
    o->hi = -INFINITY;
}

void pare_observer_free(pare_observer *o)
{
    free(o->hist);
    o->hist = NULL;
}

void pare_observer_minmax(pare_observer *o, const float *x, size_t n)
{
    double lo = o->lo, hi = o->hi;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(x[k]))
            continue;
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
    }
    o->lo = lo;
    o->hi = hi;
}

pare_status pare_observer_hist(pare_observer *o, const float *x, size_t n)
{
    if (!o->hist && !(o->hist = calloc(PARE_OBS_BINS, sizeof(double))))
        return pare_fail(PARE_ENOMEM, "out of memory for a calibration histogram");
    double lo = o->lo, span = o->hi - o->lo;
    for (size_t k = 0; k < n; k++) {
        float v = x[k];
        if (!isfinite(v))
            continue;
        o->count++;
        if (v == 0.0f) {
            o->zeros++;
            continue;
        }
        long b = span > 0 ? (long)((v - lo) / span * PARE_OBS_BINS) : 0;
        b = b < 0 ? 0 : b >= PARE_OBS_BINS ? PARE_OBS_BINS - 1 : b;
        o->hist[b] += 1.0;
    }
    return PARE_OK;
}

/* The value below which a fraction p of all values lie, interpolated in its
 * bin; the exact zeros count as sitting in the bin holding 0. */
static double quantile(const pare_observer *o, double p)
{
    double span = o->hi - o->lo, w = span / PARE_OBS_BINS;
    long zb = span > 0 ? (long)((0.0 - o->lo) / span * PARE_OBS_BINS) : 0;
    zb = zb < 0 ? 0 : zb >= PARE_OBS_BINS ? PARE_OBS_BINS - 1 : zb;
    double target = p * (double)o->count, cum = 0;
    for (long b = 0; b < PARE_OBS_BINS; b++) {
        double h = o->hist[b] + (b == zb ? (double)o->zeros : 0.0);
        if (h > 0 && cum + h >= target)
            return o->lo + ((double)b + (target - cum) / h) * w;
        cum += h;
    }
    return o->hi;
}

static double expected_mse(const pare_observer *o, double lo, double hi, int bits)
{
    float s;
    int zp;
    pare_act_qparams((float)lo, (float)hi, bits, &s, &zp);
    double qmax = (double)((1 << bits) - 1);
    double rlo = (0.0 - zp) * s, rhi = (qmax - zp) * s;
    double w = (o->hi - o->lo) / PARE_OBS_BINS, in_bin = w * w / 12.0, round = (double)s * s / 12.0;
    double e = 0;
    for (long b = 0; b < PARE_OBS_BINS; b++) {
        double h = o->hist[b];
        if (h == 0)
            continue;
        double c = o->lo + ((double)b + 0.5) * w;
        if (c < rlo)
            e += h * ((rlo - c) * (rlo - c) + in_bin);
        else if (c > rhi)
            e += h * ((c - rhi) * (c - rhi) + in_bin);
        else
            e += h * round;
    }
    return e;
}

#define MSE_STEPS 512

void pare_observer_range(const pare_observer *o, pare_calib_method m, double pct, int bits,
                         float *lo, float *hi)
{
    double L = o->lo, H = o->hi;
    if (!(L <= H)) { /* nothing finite seen */
        *lo = *hi = 0.0f;
        return;
    }
    double l = L, h = H;
    if (m == PARE_CALIB_PERCENTILE && o->hist && o->count > 0) {
        double p = pct / 100.0;
        h = quantile(o, p);
        if (L < 0)
            l = quantile(o, 1.0 - p);
    } else if (m == PARE_CALIB_MSE && o->hist && o->count > 0) {
        double l0 = L < 0 ? L : 0, h0 = H > 0 ? H : 0, best = expected_mse(o, l0, h0, bits);
        l = l0;
        h = h0;
        for (int k = MSE_STEPS - 1; k >= 1; k--) {
            double a = (double)k / MSE_STEPS, e = expected_mse(o, a * l0, a * h0, bits);
            if (e < best) {
                best = e;
                l = a * l0;
                h = a * h0;
            }
        }
    }
    *lo = (float)(l < 0 ? l : 0);
    *hi = (float)(h > 0 ? h : 0);
}

void pare_act_qparams(float lo, float hi, int bits, float *scale, int *zero_point)
{
    lo = lo < 0 ? lo : 0;
    hi = hi > 0 ? hi : 0;
    int qmax = (1 << bits) - 1;
    double span = (double)hi - (double)lo;
    float s = (float)(span / qmax);
    if (!(s >= FLT_MIN) || !isfinite(s)) {
        *scale = 1.0f;
        *zero_point = 0;
        return;
    }
    double z = rint(-(double)lo / s);
    *scale = s;
    *zero_point = z < 0 ? 0 : z > qmax ? qmax : (int)z;
}

/* ---- graph surgery --------------------------------------------------------- */

/* "<base>.fq", or with a number, free in both the old and the new graph. */
static void fq_name(const pare_graph *old, const pare_graph *g, const char *base, int id, char *buf,
                    size_t cap)
{
    for (int k = 1; k < 100; k++) {
        if (k == 1)
            snprintf(buf, cap, "%s.fq", base);
        else
            snprintf(buf, cap, "%s.fq%d", base, k);
        if (strlen(buf) < 250 && pare_graph_find_node(old, buf) < 0 && pare_graph_find_node(g, buf) < 0)
            return;
    }
    for (int k = 0;; k++) {
        snprintf(buf, cap, "fq%d_%d", id, k);
        if (pare_graph_find_node(old, buf) < 0 && pare_graph_find_node(g, buf) < 0)
            return;
    }
}

pare_status pare_graph_rebuild(const pare_graph *g, const uint8_t *drop, const pare_attrs *fq,
                               const uint8_t *reads_fq, pare_graph **out, int *fq_id, int *map)
{
    *out = NULL;
    int n = g->n_nodes;
    int *mp = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int *fqn = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int *in = NULL;
    pare_graph *ng = pare_graph_new(g->name);
    pare_status s = PARE_OK;
    if (!mp || !fqn || !ng) {
        s = pare_fail(PARE_ENOMEM, "out of memory rebuilding model %s", g->name);
        goto done;
    }
    int max_in = 1;
    for (int i = 0; i < n; i++)
        max_in = g->nodes[i].n_in > max_in ? g->nodes[i].n_in : max_in;
    if (!(in = malloc(sizeof(int) * (size_t)max_in))) {
        s = pare_fail(PARE_ENOMEM, "out of memory rebuilding model %s", g->name);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const pare_node *nd = &g->nodes[i];
        fqn[i] = -1;
        if (drop && drop[i] && nd->n_in == 1) {
            mp[i] = mp[nd->in[0]];
            continue;
        }
        for (int k = 0; k < nd->n_in; k++) {
            int v = nd->in[k];
            in[k] = (k == 0 && reads_fq && reads_fq[i] && fqn[v] >= 0) ? fqn[v] : mp[v];
        }
        int id = pare_graph_add_node(ng, nd->op, nd->n_in ? in : NULL, nd->n_in, &nd->a, nd->name);
        if (id < 0) {
            s = ng->err ? ng->err : PARE_EINVAL;
            goto done;
        }
        for (int k = 0; k < nd->n_param && s == PARE_OK; k++)
            s = pare_param_copy_into(&ng->params[ng->nodes[id].param[k]], &g->params[nd->param[k]]);
        if (s != PARE_OK)
            goto done;
        mp[i] = id;
        if (fq && fq[i].mode > 0) {
            char name[300];
            fq_name(g, ng, nd->name, i, name, sizeof name);
            int f = pare_graph_add_node(ng, PARE_OP_FAKEQUANT, &id, 1, &fq[i], name);
            if (f < 0) {
                s = ng->err ? ng->err : PARE_EINVAL;
                goto done;
            }
            fqn[i] = f;
        }
    }
    ng->output = mp[g->output];
    for (int i = 0; i < g->n_meta && s == PARE_OK; i++)
        s = pare_graph_meta_set(ng, g->meta[i].key, g->meta[i].value);
    if (s == PARE_OK && (s = pare_graph_validate(ng)) != PARE_OK)
        pare_error_prefix("rebuilding model %s", g->name);
    if (s != PARE_OK)
        goto done;
    if (fq_id)
        memcpy(fq_id, fqn, sizeof(int) * (size_t)n);
    if (map)
        memcpy(map, mp, sizeof(int) * (size_t)n);
    *out = ng;
    ng = NULL;
done:
    pare_graph_free(ng);
    free(mp);
    free(fqn);
    free(in);
    return s;
}

int pare_quant_count(const pare_graph *g, int *tensors, int *fakequant)
{
    int t = 0, f = 0;
    for (int i = 0; g && i < g->n_params; i++)
        t += g->params[i].q.bits != 0;
    for (int i = 0; g && i < g->n_nodes; i++)
        f += g->nodes[i].op == PARE_OP_FAKEQUANT;
    if (tensors)
        *tensors = t;
    if (fakequant)
        *fakequant = f;
    return t + f;
}

int pare_graph_quantized(const pare_graph *g, int *tensors, int *fakequant_nodes)
{
    return pare_quant_count(g, tensors, fakequant_nodes);
}

pare_status pare_graph_dequantize(const pare_graph *g, pare_graph **out)
{
    *out = NULL;
    if (!g)
        return pare_fail(PARE_EINVAL, "dequantizing needs a model");
    if (g->err)
        return g->err;
    uint8_t *drop = calloc((size_t)(g->n_nodes > 0 ? g->n_nodes : 1), 1);
    if (!drop)
        return pare_fail(PARE_ENOMEM, "out of memory dequantizing %s", g->name);
    for (int i = 0; i < g->n_nodes; i++)
        drop[i] = g->nodes[i].op == PARE_OP_FAKEQUANT && g->nodes[i].n_in == 1;
    pare_status s = pare_graph_rebuild(g, drop, NULL, NULL, out, NULL, NULL);
    free(drop);
    if (s != PARE_OK)
        return s;
    for (int i = 0; i < (*out)->n_params; i++)
        pare_qparams_clear(&(*out)->params[i].q);
    return PARE_OK;
}

/* ---- post-training quantization -------------------------------------------- */

void pare_quant_config_init(pare_quant_config *c)
{
    memset(c, 0, sizeof *c);
    c->weight_bits = 8;
    c->act_bits = 8;
    c->calib = PARE_CALIB_MSE;
    c->percentile = 99.99;
    c->calib_samples = 1000;
    c->report_samples = 500;
    c->keep_float_db = 25.0;
    c->bias_int32 = 1;
}

void pare_quant_report_free(pare_quant_report *r)
{
    if (!r)
        return;
    free(r->layers);
    free(r->names_);
    memset(r, 0, sizeof *r);
}

static pare_status check_config(const pare_quant_config *c)
{
    if (c->weight_bits < 0 || c->weight_bits > 8)
        return pare_fail(PARE_EINVAL, "weights quantize to 1 to 8 bits (0 leaves them float), not %d",
                         c->weight_bits);
    if (c->act_bits < 0 || c->act_bits > 8)
        return pare_fail(PARE_EINVAL,
                         "activations quantize to 1 to 8 bits (0 leaves them float), not %d", c->act_bits);
    if (c->weight_bits == 0 && c->act_bits == 0)
        return pare_fail(PARE_EINVAL, "nothing to quantize: weight bits and activation bits are both 0");
    if (c->calib != PARE_CALIB_MINMAX && c->calib != PARE_CALIB_PERCENTILE && c->calib != PARE_CALIB_MSE)
        return pare_fail(PARE_EINVAL, "unknown calibration method %d", (int)c->calib);
    if (!(c->percentile > 50.0 && c->percentile <= 100.0))
        return pare_fail(PARE_EINVAL, "the calibration percentile must be in (50, 100], not %g", c->percentile);
    if (c->calib_samples < 1 || c->report_samples < 1)
        return pare_fail(PARE_EINVAL, "calibration needs at least 1 sample (and 1 to report on)");
    if (!isfinite(c->keep_float_db))
        return pare_fail(PARE_EINVAL, "the keep-float SQNR threshold must be a number of dB");
    return PARE_OK;
}

static int is_layer(const pare_node *nd) { return nd->op == PARE_OP_CONV2D || nd->op == PARE_OP_LINEAR; }

/* Marks the layers a comma-separated list names; one sentence for a name that
 * is not a conv or linear layer. */
static pare_status parse_keep(const pare_graph *g, const char *list, uint8_t *keep)
{
    if (!list)
        return PARE_OK;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char name[300];
        if (len >= sizeof name)
            return pare_fail(PARE_EINVAL, "the keep-float list names a layer of %zu bytes; none is that long", len);
        memcpy(name, p, len);
        name[len] = 0;
        int id = pare_graph_find_node(g, name);
        if (id < 0 || !is_layer(&g->nodes[id]))
            return pare_fail(PARE_ENOTFOUND, "the keep-float list names '%s', which is not a conv or linear layer of model %s",
                             name, g->name);
        keep[id] = 1;
        p += len;
    }
    return PARE_OK;
}

typedef struct site {
    int v;
    pare_observer o;
    float lo, hi, scale;
    int zp, used;
} site;

typedef struct qlayer {
    int node, site;     /* site -1: its input is not quantized */
    int keep, bias_q;
    pare_graph *mini;   /* the layer alone, quantized, behind its input's fakequant */
    pare_exec *me;
    double ref, err, mref, merr;
} qlayer;

static pare_wfit fit_for(int bits) { return bits >= 5 ? PARE_WFIT_MAXABS : PARE_WFIT_L2; }

/* Quantizes node id's weight and bias in G as the configuration asks; s_in is
 * the scale of its input's fakequant (0: none, the bias stays float). */
static pare_status quantize_layer(pare_graph *G, int id, float s_in, const pare_quant_config *c, int *bias_q)
{
    *bias_q = 0;
    int wp = pare_graph_node_param(G, id, PARE_ROLE_WEIGHT), bp = pare_graph_node_param(G, id, PARE_ROLE_BIAS);
    if (wp < 0 || c->weight_bits == 0)
        return PARE_OK;
    pare_status s = pare_quant_weight(&G->params[wp], c->weight_bits, !c->per_tensor, fit_for(c->weight_bits));
    if (s != PARE_OK || bp < 0 || !c->bias_int32 || !(s_in > 0))
        return s;
    int r = pare_quant_bias(&G->params[bp], &G->params[wp], s_in);
    if (r < 0)
        return pare_fail(PARE_ENOMEM, "out of memory quantizing %s", G->params[bp].name);
    *bias_q = r;
    return PARE_OK;
}

static pare_status build_mini(const pare_graph *g, int node, const site *st, const pare_quant_config *c,
                              pare_graph **out, int *bias_q)
{
    *out = NULL;
    const pare_node *nd = &g->nodes[node];
    pare_shape sh = g->nodes[nd->in[0]].out;
    pare_graph *m = pare_graph_new(nd->name);
    if (!m)
        return pare_fail(PARE_ENOMEM, "out of memory");
    int x = pare_graph_input(m, sh.c, sh.h, sh.w);
    if (st && c->act_bits > 0)
        x = pare_graph_fakequant(m, x, st->scale, st->zp, c->act_bits, strcmp(nd->name, "fq") ? "fq" : "fq_");
    int id = x >= 0 ? pare_graph_add_node(m, nd->op, &x, 1, &nd->a, nd->name) : -1;
    pare_status s = id < 0 ? (m->err ? m->err : PARE_EINVAL) : PARE_OK;
    for (int k = 0; s == PARE_OK && k < nd->n_param; k++)
        s = pare_param_copy_into(&m->params[m->nodes[id].param[k]], &g->params[nd->param[k]]);
    if (s == PARE_OK)
        s = quantize_layer(m, id, st && c->act_bits > 0 ? st->scale : 0.0f, c, bias_q);
    if (s != PARE_OK) {
        pare_graph_free(m);
        return s;
    }
    *out = m;
    return PARE_OK;
}

static void sq_sums(const float *y, const float *ref, size_t n, double *sref, double *serr)
{
    double a = 0, b = 0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)y[k] - (double)ref[k];
        a += (double)ref[k] * ref[k];
        b += d * d;
    }
    *sref += a;
    *serr += b;
}

static void errs(double ref, double err, double *rel, double *db)
{
    *rel = ref > 0 ? sqrt(err / ref) : (err > 0 ? INFINITY : 0.0);
    *db = err > 0 ? 10.0 * log10(ref / err) : INFINITY;
}

/* Batches large enough to be efficient, small enough that keeping every
 * value of the graph (and its gradient buffers) stays near 256 MiB. */
static int calib_batch(const pare_graph *g, long n)
{
    double per = 0;
    for (int i = 0; i < g->n_nodes; i++)
        per += (double)pare_shape_size(g->nodes[i].out);
    double b = (double)(1 << 25) / (per > 1 ? per : 1);
    int B = b > 128 ? 128 : b < 1 ? 1 : (int)b;
    return n < B ? (int)n : B;
}

typedef struct feeder {
    const pare_dataset *ds;
    long *idx;
    int32_t *lab;
    int threads;
} feeder;

static void feed(feeder *f, long start, int m, float *in)
{
    for (int i = 0; i < m; i++)
        f->idx[i] = start + i;
    pare_data_batch(f->ds, f->idx, m, in, f->lab, NULL, 0, 0, f->threads);
}

static pare_status fill_report(const pare_graph *g, const qlayer *L, int nl, const site *S,
                               const pare_quant_config *c, pare_quant_report *rep)
{
    size_t chars = 1;
    for (int i = 0; i < nl; i++)
        chars += strlen(g->nodes[L[i].node].name) + 1;
    rep->layers = calloc((size_t)(nl > 0 ? nl : 1), sizeof *rep->layers);
    rep->names_ = malloc(chars);
    if (!rep->layers || !rep->names_)
        return pare_fail(PARE_ENOMEM, "out of memory for the quantization report");
    char *at = rep->names_;
    rep->n = nl;
    for (int i = 0; i < nl; i++) {
        const pare_node *nd = &g->nodes[L[i].node];
        pare_quant_layer *r = &rep->layers[i];
        size_t len = strlen(nd->name);
        memcpy(at, nd->name, len + 1);
        r->name = at;
        at += len + 1;
        r->op = pare_op_get(nd->op)->name;
        r->kept_float = L[i].keep;
        r->bits = L[i].keep ? 0 : c->weight_bits;
        r->bias_int32 = !L[i].keep && L[i].bias_q;
        if (L[i].site >= 0 && c->act_bits > 0 && !L[i].keep) {
            const site *st = &S[L[i].site];
            r->act_lo = st->lo;
            r->act_hi = st->hi;
            r->act_scale = st->scale;
            r->act_zero_point = st->zp;
        }
        errs(L[i].ref, L[i].err, &r->rel_error, &r->sqnr_db);
        errs(L[i].mref, L[i].merr, &r->model_rel_error, &r->model_sqnr_db);
        rep->quantized += !L[i].keep;
        rep->kept_float += L[i].keep != 0;
    }
    return PARE_OK;
}

pare_status pare_quantize(const pare_graph *g, const pare_quant_config *c, const pare_dataset *calib,
                          pare_graph **out, pare_quant_report *rep)
{
    if (out)
        *out = NULL;
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (!g || !c || !calib || !out)
        return pare_fail(PARE_EINVAL, "quantizing needs a model, a configuration, calibration data and an output");
    if (g->err)
        return g->err;
    pare_status s = check_config(c);
    if (s != PARE_OK)
        return s;
    int nt, nf;
    if (pare_quant_count(g, &nt, &nf))
        return pare_fail(PARE_EINVAL,
                         "model %s is already quantized (%d quantized tensors, %d fakequant nodes); "
                         "quantize its float original, or dequantize it first",
                         g->name, nt, nf);
    int ic, ih, iw;
    pare_graph_input_shape(g, &ic, &ih, &iw);
    if (calib->c != ic || calib->h != ih || calib->w != iw)
        return pare_fail(PARE_ESHAPE, "the calibration set %s has %dx%dx%d samples but model %s takes %dx%dx%d",
                         calib->name, calib->c, calib->h, calib->w, g->name, ic, ih, iw);
    if (calib->n < 1)
        return pare_fail(PARE_EINVAL, "the calibration set %s is empty", calib->name);
    int threads = pare_threads_resolve(c->threads);
    long N = c->calib_samples < calib->n ? c->calib_samples : calib->n;
    long R = c->report_samples < N ? c->report_samples : N;
    int B = calib_batch(g, N), nn = g->n_nodes, nl = 0, ns = 0;

    pare_graph *fg = NULL, *qg = NULL;
    pare_exec *fe = NULL, *qe = NULL;
    uint8_t *keep = calloc((size_t)nn, 1), *reads = calloc((size_t)nn, 1);
    int *site_of = malloc(sizeof(int) * (size_t)nn), *map = malloc(sizeof(int) * (size_t)nn);
    qlayer *L = calloc((size_t)nn, sizeof *L);
    site *S = calloc((size_t)nn, sizeof *S);
    pare_attrs *fq = calloc((size_t)nn, sizeof *fq);
    feeder fd = {calib, malloc(sizeof(long) * (size_t)B), malloc(sizeof(int32_t) * (size_t)B), threads};
    if (!keep || !reads || !site_of || !map || !L || !S || !fq || !fd.idx || !fd.lab) {
        s = pare_fail(PARE_ENOMEM, "out of memory quantizing %s", g->name);
        goto done;
    }
    if ((s = parse_keep(g, c->keep_float, keep)) != PARE_OK)
        goto done;
    for (int i = 0; i < nn; i++)
        site_of[i] = -1;
    for (int i = 0; i < nn; i++) {
        const pare_node *nd = &g->nodes[i];
        if (!is_layer(nd))
            continue;
        qlayer *l = &L[nl++];
        l->node = i;
        l->keep = keep[i];
        l->site = -1;
        int wp = pare_graph_node_param(g, i, PARE_ROLE_WEIGHT);
        if (wp >= 0 && (s = check_finite(&g->params[wp])) != PARE_OK)
            goto done;
        if (c->act_bits == 0)
            continue;
        int v = nd->in[0];
        if (site_of[v] < 0) {
            site_of[v] = ns;
            S[ns].v = v;
            pare_observer_init(&S[ns].o);
            ns++;
        }
        l->site = site_of[v];
    }
    if (nl == 0) {
        s = pare_fail(PARE_EINVAL, "model %s has no conv or linear layer to quantize", g->name);
        goto done;
    }
    if ((s = pare_graph_clone(g, &fg)) != PARE_OK || (s = pare_exec_new(fg, B, 1, threads, &fe)) != PARE_OK)
        goto done;
    pare_exec_set_eval(fe, 1);

    /* Calibration: min/max, then (percentile, MSE) a histogram over it. */
    for (int pass = 0; pass < (c->calib == PARE_CALIB_MINMAX ? 1 : 2) && ns > 0; pass++) {
        for (long at = 0; at < N; at += B) {
            int m = (int)(N - at < B ? N - at : B);
            feed(&fd, at, m, pare_exec_input(fe));
            pare_exec_forward(fe, m, 0);
            for (int k = 0; k < ns; k++) {
                size_t cnt = (size_t)m * pare_shape_size(fg->nodes[S[k].v].out);
                if (pass == 0)
                    pare_observer_minmax(&S[k].o, pare_exec_value(fe, S[k].v), cnt);
                else if ((s = pare_observer_hist(&S[k].o, pare_exec_value(fe, S[k].v), cnt)) != PARE_OK)
                    goto done;
            }
        }
    }
    for (int k = 0; k < ns; k++) {
        pare_observer_range(&S[k].o, c->calib, c->percentile, c->act_bits, &S[k].lo, &S[k].hi);
        pare_act_qparams(S[k].lo, S[k].hi, c->act_bits, &S[k].scale, &S[k].zp);
    }

    /* Each layer alone on the float activations. */
    for (int i = 0; i < nl; i++) {
        if ((s = build_mini(fg, L[i].node, L[i].site >= 0 ? &S[L[i].site] : NULL, c, &L[i].mini, &L[i].bias_q)) != PARE_OK ||
            (s = pare_exec_new(L[i].mini, B, 0, threads, &L[i].me)) != PARE_OK)
            goto done;
    }
    for (long at = 0; at < R; at += B) {
        int m = (int)(R - at < B ? R - at : B);
        feed(&fd, at, m, pare_exec_input(fe));
        pare_exec_forward(fe, m, 0);
        for (int i = 0; i < nl; i++) {
            const pare_node *nd = &fg->nodes[L[i].node];
            size_t isz = (size_t)m * pare_shape_size(fg->nodes[nd->in[0]].out);
            memcpy(pare_exec_input(L[i].me), pare_exec_value(fe, nd->in[0]), sizeof(float) * isz);
            pare_exec_forward(L[i].me, m, 0);
            sq_sums(pare_exec_output(L[i].me), pare_exec_value(fe, L[i].node),
                    (size_t)m * pare_shape_size(nd->out), &L[i].ref, &L[i].err);
        }
    }
    for (int i = 0; i < nl; i++) {
        double rel, db;
        errs(L[i].ref, L[i].err, &rel, &db);
        if (c->keep_float_auto && !L[i].keep && db < c->keep_float_db)
            L[i].keep = 2;
        if (!L[i].keep && L[i].site >= 0) {
            site *st = &S[L[i].site];
            st->used = 1;
            reads[L[i].node] = 1;
            fq[st->v].mode = c->act_bits;
            fq[st->v].alpha = st->scale;
            fq[st->v].beta = (float)st->zp;
        }
        pare_exec_free(L[i].me);
        L[i].me = NULL;
        pare_graph_free(L[i].mini);
        L[i].mini = NULL;
    }

    /* The quantized model, and each layer's error inside it. */
    if ((s = pare_graph_rebuild(fg, NULL, fq, reads, &qg, NULL, map)) != PARE_OK)
        goto done;
    for (int i = 0; i < nl; i++) {
        if (L[i].keep)
            continue;
        float s_in = L[i].site >= 0 ? S[L[i].site].scale : 0.0f;
        if ((s = quantize_layer(qg, map[L[i].node], s_in, c, &L[i].bias_q)) != PARE_OK)
            goto done;
    }
    if ((s = pare_exec_new(qg, B, 1, threads, &qe)) != PARE_OK)
        goto done;
    pare_exec_set_eval(qe, 1);
    double oref = 0, oerr = 0;
    size_t osz = pare_shape_size(fg->nodes[fg->output].out);
    for (long at = 0; at < R; at += B) {
        int m = (int)(R - at < B ? R - at : B);
        feed(&fd, at, m, pare_exec_input(fe));
        memcpy(pare_exec_input(qe), pare_exec_input(fe), sizeof(float) * (size_t)m * (size_t)(ic * ih * iw));
        pare_exec_forward(fe, m, 0);
        pare_exec_forward(qe, m, 0);
        for (int i = 0; i < nl; i++)
            sq_sums(pare_exec_value(qe, map[L[i].node]), pare_exec_value(fe, L[i].node),
                    (size_t)m * pare_shape_size(fg->nodes[L[i].node].out), &L[i].mref, &L[i].merr);
        sq_sums(pare_exec_output(qe), pare_exec_output(fe), (size_t)m * osz, &oref, &oerr);
    }
    if (rep) {
        if ((s = fill_report(fg, L, nl, S, c, rep)) != PARE_OK)
            goto done;
        for (int k = 0; k < ns; k++)
            rep->fakequant_nodes += S[k].used;
        rep->calib_samples = N;
        rep->report_samples = R;
        errs(oref, oerr, &rep->output_rel_error, &rep->output_sqnr_db);
    }
    *out = qg;
    qg = NULL;
done:
    if (s != PARE_OK && rep)
        pare_quant_report_free(rep);
    for (int i = 0; L && i < nl; i++) {
        pare_exec_free(L[i].me);
        pare_graph_free(L[i].mini);
    }
    for (int k = 0; S && k < ns; k++)
        pare_observer_free(&S[k].o);
    pare_exec_free(fe);
    pare_exec_free(qe);
    pare_graph_free(fg);
    pare_graph_free(qg);
    free(keep);
    free(reads);
    free(site_of);
    free(map);
    free(L);
    free(S);
    free(fq);
    free(fd.idx);
    free(fd.lab);
    return s;
}

/* ---- quantization-aware training ------------------------------------------ */

struct pare_qat {
    pare_graph *g;
    int n;
    int *param, *node, *bits, *groups;
    float **latent, **prev;
    int started, latent_given;
    float ema;
    int n_fq, *fq;
    pare_status err;
};

void pare_qat_free(pare_qat *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n; i++) {
        if (q->latent)
            pare_free(q->latent[i]);
        if (q->prev)
            pare_free(q->prev[i]);
    }
    free(q->latent);
    free(q->prev);
    free(q->param);
    free(q->node);
    free(q->bits);
    free(q->groups);
    free(q->fq);
    free(q);
}

int pare_qat_layers(const pare_qat *q) { return q ? q->n : 0; }
pare_status pare_qat_status(const pare_qat *q) { return q ? q->err : PARE_OK; }

/* A conv/linear weight that QAT (and ADMM) can keep on a grid. */
static int grid_weight(const pare_graph *g, int node)
{
    if (!is_layer(&g->nodes[node]))
        return -1;
    int wp = pare_graph_node_param(g, node, PARE_ROLE_WEIGHT);
    if (wp < 0)
        return -1;
    const pare_qparams *q = &g->params[wp].q;
    return q->bits >= 1 && q->bits <= 8 && (q->scheme == 1 || q->scheme == 2) ? wp : -1;
}

pare_status pare_qat_new(pare_graph *g, float act_ema, pare_qat **out)
{
    *out = NULL;
    if (!g)
        return pare_fail(PARE_EINVAL, "QAT needs a model");
    if (!(act_ema >= 0.0f && act_ema < 1.0f))
        return pare_fail(PARE_EINVAL, "the activation EMA momentum must be in [0, 1), not %g", (double)act_ema);
    pare_qat *q = calloc(1, sizeof *q);
    size_t nn = (size_t)(g->n_nodes > 0 ? g->n_nodes : 1);
    if (!q)
        return pare_fail(PARE_ENOMEM, "out of memory for QAT");
    q->g = g;
    q->ema = act_ema;
    q->param = malloc(sizeof(int) * nn);
    q->node = malloc(sizeof(int) * nn);
    q->bits = malloc(sizeof(int) * nn);
    q->groups = malloc(sizeof(int) * nn);
    q->fq = malloc(sizeof(int) * nn);
    q->latent = calloc(nn, sizeof(float *));
    q->prev = calloc(nn, sizeof(float *));
    pare_status s = PARE_OK;
    if (!q->param || !q->node || !q->bits || !q->groups || !q->fq || !q->latent || !q->prev) {
        s = pare_fail(PARE_ENOMEM, "out of memory for QAT");
        goto fail;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == PARE_OP_FAKEQUANT)
            q->fq[q->n_fq++] = i;
        int wp = grid_weight(g, i);
        if (wp < 0)
            continue;
        pare_param *p = &g->params[wp];
        int groups = p->q.scheme == 2 ? p->q.n : 1;
        if (p->q.scheme == 2 && (p->q.axis != 0 || p->t->ndim < 2 || groups != p->t->dims[0])) {
            s = pare_fail(PARE_EINVAL, "%s is quantized per channel along axis %d; QAT needs the output channels (axis 0)",
                          p->name, p->q.axis);
            goto fail;
        }
        if ((s = check_finite(p)) != PARE_OK)
            goto fail;
        int k = q->n;
        q->param[k] = wp;
        q->node[k] = i;
        q->bits[k] = p->q.bits;
        q->groups[k] = groups;
        q->latent[k] = pare_alloc_array(p->t->n, sizeof(float), 0);
        q->prev[k] = pare_alloc_array(p->t->n, sizeof(float), 0);
        q->n++;
        if (!q->latent[k] || !q->prev[k]) {
            s = pare_fail(PARE_ENOMEM, "out of memory for the latent weights of %s", p->name);
            goto fail;
        }
    }
    if (q->n == 0) {
        s = pare_fail(PARE_EINVAL, "model %s has no quantized conv or linear weights to train with QAT "
                                   "(quantize it first)", g->name);
        goto fail;
    }
    /* The biases learn in float; pare_qat_finish puts them back on their grid. */
    for (int k = 0; k < q->n; k++) {
        int bp = pare_graph_node_param(g, q->node[k], PARE_ROLE_BIAS);
        if (bp >= 0)
            pare_qparams_clear(&g->params[bp].q);
    }
    *out = q;
    return PARE_OK;
fail:
    pare_qat_free(q);
    return s;
}

static void qat_start(pare_qat *q)
{
    for (int i = 0; i < q->n; i++) {
        const pare_param *p = &q->g->params[q->param[i]];
        if (!q->latent_given)
            memcpy(q->latent[i], p->t->data, sizeof(float) * p->t->n);
        for (size_t k = 0; k < p->t->n; k++)
            if (!kept(p->mask, k))
                q->latent[i][k] = 0.0f;
        memcpy(q->prev[i], p->t->data, sizeof(float) * p->t->n);
    }
    q->started = 1;
}

pare_status pare_qat_latent_from(pare_qat *q, const pare_graph *f)
{
    const pare_graph *g = q->g;
    if (f->n_params != g->n_params)
        return pare_fail(PARE_EINVAL, "model %s is not the float model %s was quantized from", f->name, g->name);
    for (int i = 0; i < q->n; i++) {
        const pare_param *a = &f->params[q->param[i]], *b = &g->params[q->param[i]];
        if (strcmp(a->name, b->name) || a->t->n != b->t->n)
            return pare_fail(PARE_EINVAL, "model %s is not the float model %s was quantized from (parameter %s)",
                             f->name, g->name, b->name);
    }
    for (int i = 0; i < q->n; i++) {
        const pare_param *a = &f->params[q->param[i]];
        pare_status s = check_finite(a);
        if (s != PARE_OK)
            return s;
        memcpy(q->latent[i], a->t->data, sizeof(float) * a->t->n);
    }
    q->latent_given = 1;
    return PARE_OK;
}

/* Latents start at the first step, not at pare_qat_new: a trainer resuming
 * from a checkpoint loads its weights in between. */
static void qat_after_backward(pare_trainer *t, void *user)
{
    (void)t;
    pare_qat *q = user;
    if (!q->started)
        qat_start(q);
}

static void qat_observe(pare_qat *q, pare_trainer *t)
{
    pare_exec *e = pare_trainer_exec(t);
    int m = pare_trainer_step_samples(t);
    for (int j = 0; j < q->n_fq; j++) {
        pare_node *nd = &q->g->nodes[q->fq[j]];
        int v = nd->in[0];
        pare_observer o;
        pare_observer_init(&o);
        pare_observer_minmax(&o, pare_exec_value(e, v), (size_t)m * pare_shape_size(q->g->nodes[v].out));
        if (!(o.lo <= o.hi))
            continue;
        float s = nd->a.alpha, zp = nd->a.beta, qmax = (float)((1 << nd->a.mode) - 1);
        double lo = (0.0f - zp) * s, hi = (qmax - zp) * s, mom = q->ema;
        lo = (1 - mom) * lo + mom * o.lo;
        hi = (1 - mom) * hi + mom * o.hi;
        int z;
        pare_act_qparams((float)lo, (float)hi, nd->a.mode, &s, &z);
        nd->a.alpha = s;
        nd->a.beta = (float)z;
    }
}

static void qat_after_step(pare_trainer *t, void *user)
{
    pare_qat *q = user;
    if (!q->started)
        qat_start(q);
    for (int i = 0; i < q->n && q->err == PARE_OK; i++) {
        pare_param *p = &q->g->params[q->param[i]];
        if (p->frozen)
            continue;
        float *w = p->t->data, *lat = q->latent[i], *prev = q->prev[i];
        size_t n = p->t->n;
        /* Straight-through: the step moved the quantized weight by w - prev;
         * that move goes to the latent, which keeps what rounding hides. */
        for (size_t k = 0; k < n; k++) {
            lat[k] += w[k] - prev[k];
            if (!kept(p->mask, k))
                lat[k] = 0.0f;
            else if (!isfinite(lat[k]))
                q->err = pare_fail(PARE_EINVAL, "QAT: a weight of %s became non-finite (is the learning rate too high?)",
                                   p->name);
        }
        if (q->err)
            break;
        pare_quant_fit_scales(lat, p->mask, n, q->groups[i], q->bits[i], fit_for(q->bits[i]), p->q.scale,
                              p->q.scale);
        pare_quant_project(lat, p->mask, n, q->groups[i], q->bits[i], p->q.scale, w);
        memcpy(prev, w, sizeof(float) * n);
    }
    if (q->ema > 0)
        qat_observe(q, t);
}

/* The checkpoint state (the trainer restores the weights, their scales and
 * the fakequant ranges): whether the latents started, then each layer's
 * element count and latent weights. */
static void qat_save(pare_wbuf *w, void *user)
{
    const pare_qat *q = user;
    pare_wbuf_u32(w, 1); /* version */
    pare_wbuf_u32(w, (uint32_t)q->n);
    pare_wbuf_u8(w, (uint8_t)q->started);
    for (int i = 0; q->started && i < q->n; i++) {
        size_t n = q->g->params[q->param[i]].t->n;
        pare_wbuf_u64(w, (uint64_t)n);
        pare_wbuf_f32s(w, q->latent[i], n);
    }
}

/* Runs after the trainer restored the weights: prev is the weights the last
 * step left. */
static pare_status qat_load(pare_rbuf *r, void *user)
{
    pare_qat *q = user;
    if (pare_rbuf_u32(r) != 1 || pare_rbuf_u32(r) != (uint32_t)q->n)
        return pare_fail(PARE_EFORMAT, "its QAT state is from other options or damaged");
    int started = pare_rbuf_u8(r);
    for (int i = 0; started && i < q->n; i++) {
        const pare_param *p = &q->g->params[q->param[i]];
        if (pare_rbuf_u64(r) != (uint64_t)p->t->n || !pare_rbuf_f32s(r, q->latent[i], p->t->n))
            return pare_fail(PARE_EFORMAT, "its QAT state does not fit layer %s", p->name);
        memcpy(q->prev[i], p->t->data, sizeof(float) * p->t->n);
    }
    if (r->bad || pare_rbuf_left(r))
        return pare_fail(PARE_EFORMAT, "its QAT state is damaged");
    if (started) {
        q->started = 1;
        q->latent_given = 1;
    }
    return PARE_OK;
}

pare_train_hooks pare_qat_hooks(pare_qat *q)
{
    pare_train_hooks h = {.user = q, .after_backward = qat_after_backward, .after_step = qat_after_step, .save = qat_save, .load = qat_load};
    return h;
}

pare_status pare_qat_finish(pare_qat *q)
{
    if (!q)
        return pare_fail(PARE_EINVAL, "no QAT state");
    if (q->err)
        return q->err;
    pare_graph *g = q->g;
    for (int i = 0; i < q->n; i++) {
        const pare_node *nd = &g->nodes[q->node[i]];
        int bp = pare_graph_node_param(g, q->node[i], PARE_ROLE_BIAS);
        const pare_node *src = &g->nodes[nd->in[0]];
        if (bp < 0 || src->op != PARE_OP_FAKEQUANT)
            continue;
        if (pare_quant_bias(&g->params[bp], &g->params[q->param[i]], src->a.alpha) < 0)
            return pare_fail(PARE_ENOMEM, "out of memory quantizing %s", g->params[bp].name);
    }
    return PARE_OK;
}

pare_status pare_qat_train(pare_graph *g, const pare_graph *float_weights, const pare_train_config *c,
                           float act_ema, const pare_dataset *train, const pare_dataset *test)
{
    if (!g || !c || !train)
        return pare_fail(PARE_EINVAL, "QAT needs a model, a training configuration and training data");
    pare_qat *q;
    pare_status s = pare_qat_new(g, act_ema, &q);
    if (s != PARE_OK)
        return s;
    pare_trainer *t;
    if (float_weights && (s = pare_qat_latent_from(q, float_weights)) != PARE_OK) {
        pare_qat_free(q);
        return s;
    }
    if ((s = pare_trainer_new(g, c, &t)) == PARE_OK) {
        pare_train_hooks h = pare_qat_hooks(q);
        pare_trainer_set_hooks(t, &h);
        s = pare_trainer_run(t, train, test);
        pare_trainer_free(t);
    }
    if (s == PARE_OK)
        s = pare_qat_finish(q);
    pare_qat_free(q);
    return s;
}

/* ---- ADMM quantization ------------------------------------------------------ */

void pare_admm_quant_config_init(pare_admm_quant_config *c)
{
    memset(c, 0, sizeof *c);
    c->stages = 1;
    c->bits[0] = 8;
    pare_train_config_init(&c->train);
    c->train.lr = 0.01f;
    c->admm_epochs = 2;
    c->rho = 1e-2f;
    c->rho_steps = 4;
    c->finetune_epochs = 2;
}

typedef struct quant_proj {
    const pare_graph *g;
    const int *param;
    int n, bits, per_channel;
    float *scale;
} quant_proj;

static int groups_of(const pare_param *p, int per_channel)
{
    return per_channel && p->t->ndim > 1 ? p->t->dims[0] : 1;
}

/* Z = the nearest point of {0, ±q, ..., ±Mq} (per layer or channel, q fitted
 * by the alternation) to W + U; masked weights stay 0. */
static pare_status quant_project(void *user, const pare_graph *g, const float *const *v, float *const *z)
{
    quant_proj *qp = user;
    for (int i = 0; i < qp->n; i++) {
        const pare_param *p = &g->params[qp->param[i]];
        int groups = groups_of(p, qp->per_channel);
        pare_quant_fit_scales(v[i], p->mask, p->t->n, groups, qp->bits, PARE_WFIT_L2, NULL, qp->scale);
        pare_quant_project(v[i], p->mask, p->t->n, groups, qp->bits, qp->scale, z[i]);
    }
    return PARE_OK;
}

static pare_status adopt_float(pare_graph *g, const pare_graph *f)
{
    if (f->n_params != g->n_params)
        return pare_fail(PARE_EINVAL, "model %s is not the float model %s was quantized from", f->name, g->name);
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(f->params[i].name, g->params[i].name) || f->params[i].t->n != g->params[i].t->n)
            return pare_fail(PARE_EINVAL, "model %s is not the float model %s was quantized from (parameter %s)",
                             f->name, g->name, g->params[i].name);
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].q.bits != 0) /* the rounded ones; the rest are equal already */
            memcpy(g->params[i].t->data, f->params[i].t->data, sizeof(float) * g->params[i].t->n);
    return PARE_OK;
}

/* A hard projection changes every layer's output distribution, and the
 * running statistics of the float weights would misplace it. */
pare_status pare_quant_bn_reestimate(pare_graph *g, const pare_dataset *ds, int batch, long samples,
                                     int threads)
{
    int has_bn = 0;
    for (int i = 0; i < g->n_nodes; i++)
        has_bn |= g->nodes[i].op == PARE_OP_BATCHNORM;
    if (!has_bn)
        return PARE_OK;
    long n = ds->n < samples ? ds->n : samples;
    int B = batch < n ? batch : (int)n;
    if (B < 1)
        return pare_fail(PARE_EINVAL, "re-estimating batch-norm statistics needs samples");
    float *mom = malloc(sizeof(float) * (size_t)g->n_nodes);
    feeder fd = {ds, malloc(sizeof(long) * (size_t)B), malloc(sizeof(int32_t) * (size_t)B), threads};
    pare_exec *e = NULL;
    pare_status s = PARE_OK;
    if (!mom || !fd.idx || !fd.lab)
        s = pare_fail(PARE_ENOMEM, "out of memory re-estimating batch-norm statistics");
    else
        s = pare_exec_new(g, B, 1, threads, &e);
    if (s == PARE_OK) {
        for (int i = 0; i < g->n_nodes; i++)
            mom[i] = g->nodes[i].a.momentum;
        long k = 0;
        for (long at = 0; at + B <= n; at += B, k++) { /* whole batches: equal weights */
            for (int i = 0; i < g->n_nodes; i++)
                if (g->nodes[i].op == PARE_OP_BATCHNORM)
                    g->nodes[i].a.momentum = 1.0f / (float)(k + 1);
            feed(&fd, at, B, pare_exec_input(e));
            pare_exec_forward(e, B, 0);
        }
        for (int i = 0; i < g->n_nodes; i++)
            g->nodes[i].a.momentum = mom[i];
    }
    pare_exec_free(e);
    free(mom);
    free(fd.idx);
    free(fd.lab);
    return s;
}

pare_status pare_quant_admm(pare_graph *g, const pare_graph *float_weights, const pare_admm_quant_config *c,
                            const pare_dataset *train, const pare_dataset *test)
{
    if (!g || !c || !train)
        return pare_fail(PARE_EINVAL, "ADMM quantization needs a model, a configuration and training data");
    if (c->stages < 1 || c->stages > 8)
        return pare_fail(PARE_EINVAL, "ADMM quantization takes 1 to 8 stages, not %d", c->stages);
    for (int j = 0; j < c->stages; j++)
        if (c->bits[j] < 1 || c->bits[j] > 8)
            return pare_fail(PARE_EINVAL, "ADMM quantizes weights to 1 to 8 bits, not %d (stage %d)", c->bits[j], j + 1);
    if (c->admm_epochs < 1 || !(c->rho > 0) || c->rho_steps < 1 || c->finetune_epochs < 0)
        return pare_fail(PARE_EINVAL, "ADMM quantization needs admm epochs >= 1, rho > 0 and rho steps >= 1");
    size_t nn = (size_t)(g->n_nodes > 0 ? g->n_nodes : 1);
    int *param = malloc(sizeof(int) * nn), n = 0;
    float *scale = NULL;
    pare_graph *trained = NULL;
    pare_status s = PARE_OK;
    if (!param)
        return pare_fail(PARE_ENOMEM, "out of memory");
    size_t widest = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        int wp = grid_weight(g, i);
        if (wp < 0)
            continue;
        param[n++] = wp;
        widest = (size_t)g->params[wp].t->dims[0] > widest ? (size_t)g->params[wp].t->dims[0] : widest;
    }
    if (n == 0) {
        s = pare_fail(PARE_EINVAL, "model %s has no quantized conv or linear weights for ADMM (quantize it first)", g->name);
        goto done;
    }
    if (float_weights && (s = adopt_float(g, float_weights)) != PARE_OK)
        goto done;
    if (!(scale = malloc(sizeof(float) * widest))) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    /* ADMM trains float weights; the biases follow them in float until the end. */
    for (int i = 0; i < n; i++) {
        pare_param *p = &g->params[param[i]];
        pare_qparams_clear(&p->q);
        if ((s = check_finite(p)) != PARE_OK)
            goto done;
        int bp = pare_graph_node_param(g, p->node, PARE_ROLE_BIAS);
        if (bp >= 0)
            pare_qparams_clear(&g->params[bp].q);
    }
    pare_prune_config pc;
    pare_prune_config_init(&pc);
    pc.train = c->train;
    pc.admm_epochs = c->admm_epochs;
    pc.rho = c->rho;
    pc.rho_steps = c->rho_steps;
    for (int j = 0; j < c->stages && s == PARE_OK; j++) {
        quant_proj qp = {g, param, n, c->bits[j], c->per_channel, scale};
        pare_admm_problem prob = {n, param, quant_project, &qp};
        s = pare_admm_run(g, &prob, &pc, train, test, NULL);
        /* The last stage's float weights seed QAT's latent copy: projected
         * ones would all sit on a few levels, each a whole step from flipping. */
        if (s == PARE_OK && j == c->stages - 1 && c->finetune_epochs > 0)
            s = pare_graph_clone(g, &trained);
        /* Hard quantization: the weights as trained, onto their grid. */
        for (int i = 0; i < n && s == PARE_OK; i++)
            s = pare_quant_weight(&g->params[param[i]], c->bits[j], c->per_channel, PARE_WFIT_L2);
        if (s == PARE_OK)
            s = pare_quant_bn_reestimate(g, train, c->train.batch, 4096, pare_threads_resolve(c->train.threads));
    }
    if (s != PARE_OK)
        goto done;
    if (c->finetune_epochs > 0) {
        pare_train_config tc = c->train;
        tc.epochs = c->finetune_epochs;
        tc.checkpoint_path = NULL;
        tc.checkpoint_every = 0;
        tc.resume = 0;
        s = pare_qat_train(g, trained, &tc, 0.0f, train, test);
    } else {
        pare_qat *q;
        if ((s = pare_qat_new(g, 0.0f, &q)) == PARE_OK) {
            s = pare_qat_finish(q);
            pare_qat_free(q);
        }
    }
done:
    pare_graph_free(trained);
    free(param);
    free(scale);
    return s;
}
