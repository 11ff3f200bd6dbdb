/* Quantization: weight grids and their scales against hand-computed values and
 * brute force, calibration ranges against sorted references, the fakequant op
 * against a scalar reference (ties, clamping, NaN) with its straight-through
 * gradient checked by finite differences, PTQ accuracy, the file round trip,
 * QAT and ADMM keeping every weight on its levels, and pare quantize /
 * pare finetune refusing bad input in one sentence. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "compress/quant.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "data/data.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "synth.h"
#include "test.h"

static float gauss(pare_rng *r)
{
    double u = ((double)pare_rng_below(r, 1u << 30) + 0.5) / (double)(1u << 30);
    double v = ((double)pare_rng_below(r, 1u << 30) + 0.5) / (double)(1u << 30);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static float laplace(pare_rng *r)
{
    double u = ((double)pare_rng_below(r, 1u << 30) + 0.5) / (double)(1u << 30) - 0.5;
    return (float)(u < 0 ? log(1 + 2 * u) : -log(1 - 2 * u));
}

/* ---- weight grids ---------------------------------------------------------- */

PARE_TEST(quant_weight_roundtrip_half_step)
{
    pare_rng r;
    pare_rng_seed(&r, 7, 1, 0, 0);
    int dims[4] = {6, 3, 3, 3};
    for (int bits = 2; bits <= 8; bits++) {
        pare_param p;
        memset(&p, 0, sizeof p);
        p.name = (char *)(uintptr_t)"conv.weight";
        p.t = pare_tensor_new(4, dims);
        for (size_t k = 0; k < p.t->n; k++)
            p.t->data[k] = gauss(&r) * (float)(1 + k / 27); /* channels of different sizes */
        pare_tensor *orig = pare_tensor_clone(p.t);
        CHECK_OK(pare_quant_weight(&p, bits, 1, PARE_WFIT_MAXABS));
        CHECK(p.q.bits == bits && p.q.scheme == 2 && p.q.axis == 0 && p.q.n == 6);
        int M = pare_quant_wmax(bits);
        for (int c = 0; c < 6; c++) {
            float amax = 0;
            for (int k = 0; k < 27; k++)
                amax = fabsf(orig->data[c * 27 + k]) > amax ? fabsf(orig->data[c * 27 + k]) : amax;
            CHECK(p.q.scale[c] == amax / (float)M); /* max-abs: nothing clips */
            CHECK(p.q.zero_point[c] == 0);
            for (int k = 0; k < 27; k++) {
                float w = orig->data[c * 27 + k], v = p.t->data[c * 27 + k], s = p.q.scale[c];
                CHECKF(fabsf(w - v) <= 0.5f * s * (1 + 1e-5f), "bits %d: %g -> %g, step %g", bits, w, v, s);
                float code = rintf(v / s);
                CHECK(fabsf(code) <= (float)M && v == s * code);
            }
        }
        CHECK(pare_quant_on_grid(&p));
        /* a value moved off the grid is noticed */
        p.t->data[5] += 0.25f * p.q.scale[0];
        CHECK(!pare_quant_on_grid(&p));
        pare_tensor_free(orig);
        pare_tensor_free(p.t);
        pare_qparams_clear(&p.q);
    }
}

PARE_TEST(quant_scales_hand_made)
{
    /* rows: an ordinary one, an all-zero one, one whose largest value is masked */
    float w[12] = {1.0f, -2.0f, 0.5f, 0.25f, 0, 0, 0, 0, 3.0f, 0.5f, -1.5f, 0.75f};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1};
    float s[3];
    pare_quant_fit_scales(w, mask, 12, 3, 8, PARE_WFIT_MAXABS, NULL, s);
    CHECK(s[0] == 2.0f / 127.0f);
    CHECK(s[1] == 1.0f / 127.0f);
    CHECK(s[2] == 1.5f / 127.0f);
    pare_quant_fit_scales(w, NULL, 12, 1, 8, PARE_WFIT_MAXABS, NULL, s);
    CHECK(s[0] == 3.0f / 127.0f);
    /* 4 bits: M = 7; the masked value becomes exactly 0 */
    float out[12];
    pare_quant_fit_scales(w, mask, 12, 3, 4, PARE_WFIT_MAXABS, NULL, s);
    pare_quant_project(w, mask, 12, 3, 4, s, out);
    CHECK(s[0] == 2.0f / 7.0f && out[1] == -2.0f && out[0] == s[0] * 3.0f && out[3] == s[0] * 1.0f);
    CHECK(out[8] == 0.0f && out[10] == -1.5f);
    /* 1 bit: the mean |w| of the kept values, codes -1 / +1 (0 -> +1) */
    pare_quant_fit_scales(w, mask, 12, 3, 1, PARE_WFIT_L2, NULL, s);
    CHECK(s[0] == (float)(3.75 / 4) && s[2] == (float)(2.75 / 3));
    pare_quant_project(w, mask, 12, 3, 1, s, out);
    CHECK(out[0] == s[0] && out[1] == -s[0] && out[8] == 0.0f && out[10] == -s[2]);
    /* the codes: ties to even, clamping */
    CHECK(pare_quant_wcode(2.5f, 1.0f, 8) == 2.0f && pare_quant_wcode(3.5f, 1.0f, 8) == 4.0f);
    CHECK(pare_quant_wcode(-2.5f, 1.0f, 8) == -2.0f && pare_quant_wcode(1000.0f, 1.0f, 8) == 127.0f);
    CHECK(pare_quant_wcode(-9.0f, 1.0f, 4) == -7.0f && pare_quant_wcode(0.6f, 1.0f, 2) == 1.0f);
    CHECK(pare_quant_wcode(0.0f, 1.0f, 1) == 1.0f && pare_quant_wcode(-1e-9f, 1.0f, 1) == -1.0f);
    /* a small negative weight rounds to +0.0, not -0.0: values are scale * (float)code bit for bit */
    float z = 0.5f * pare_quant_wcode(-0.1f, 0.5f, 8), pz = 0.0f;
    CHECK(!memcmp(&z, &pz, sizeof z));
    float nw[2] = {-0.001f, 1.0f}, nq[2];
    float ns = 1.0f / 127.0f;
    pare_quant_project(nw, NULL, 2, 1, 8, &ns, nq);
    CHECK(!memcmp(&nq[0], &pz, sizeof pz));
    pare_param np;
    memset(&np, 0, sizeof np);
    int nd[1] = {2};
    np.t = pare_tensor_new(1, nd);
    np.t->data[0] = -0.0f; /* -0.0 where the grid gives +0.0 is off the grid */
    np.t->data[1] = 1.0f;
    int32_t zp0 = 0;
    np.q.bits = 8;
    np.q.scheme = 1;
    np.q.n = 1;
    np.q.scale = &ns;
    np.q.zero_point = &zp0;
    CHECK(!pare_quant_on_grid(&np));
    np.t->data[0] = 0.0f;
    CHECK(pare_quant_on_grid(&np));
    pare_tensor_free(np.t);
}

/* The L2 fit against a brute-force scan of scales. */
PARE_TEST(quant_l2_fit_near_brute_force)
{
    pare_rng r;
    pare_rng_seed(&r, 11, 2, 0, 0);
    enum { N = 4000 };
    static float w[N];
    for (int k = 0; k < N; k++)
        w[k] = k % 3 ? gauss(&r) : laplace(&r);
    for (int bits = 2; bits <= 4; bits++) {
        int M = pare_quant_wmax(bits);
        float amax = 0;
        for (int k = 0; k < N; k++)
            amax = fabsf(w[k]) > amax ? fabsf(w[k]) : amax;
        double best = INFINITY;
        for (int i = 1; i <= 4000; i++) {
            float s = amax / (float)M * (float)i / 4000.0f;
            double e = 0;
            for (int k = 0; k < N; k++) {
                double d = w[k] - s * pare_quant_wcode(w[k], s, bits);
                e += d * d;
            }
            best = e < best ? e : best;
        }
        float s, smax;
        pare_quant_fit_scales(w, NULL, N, 1, bits, PARE_WFIT_L2, NULL, &s);
        pare_quant_fit_scales(w, NULL, N, 1, bits, PARE_WFIT_MAXABS, NULL, &smax);
        double e = 0, emax = 0;
        for (int k = 0; k < N; k++) {
            double d = w[k] - s * pare_quant_wcode(w[k], s, bits), dm = w[k] - smax * pare_quant_wcode(w[k], smax, bits);
            e += d * d;
            emax += dm * dm;
        }
        printf("  %d bits: L2 fit %.4g, brute force %.4g, max-abs %.4g\n", bits, e, best, emax);
        CHECKF(e <= best * 1.01, "%d bits: fit error %g, brute force %g", bits, e, best);
        CHECK(e < 0.8 * emax); /* clipping pays at low bits */
    }
}

PARE_TEST(quant_bias_int32)
{
    int dw[2] = {2, 3}, db[1] = {2};
    pare_param w, b;
    memset(&w, 0, sizeof w);
    memset(&b, 0, sizeof b);
    w.name = (char *)(uintptr_t)"fc.weight";
    b.name = (char *)(uintptr_t)"fc.bias";
    w.t = pare_tensor_new(2, dw);
    b.t = pare_tensor_new(1, db);
    float wv[6] = {0.5f, -1.0f, 0.25f, 2.0f, 1.0f, -0.5f};
    memcpy(w.t->data, wv, sizeof wv);
    b.t->data[0] = 0.123456f;
    b.t->data[1] = -0.5f;
    CHECK_OK(pare_quant_weight(&w, 8, 1, PARE_WFIT_MAXABS));
    CHECK(pare_quant_bias(&b, &w, 0.1f) == 1);
    CHECK(b.q.bits == 32 && b.q.scheme == 2 && b.q.n == 2 && b.q.zero_point[0] == 0);
    CHECK(b.q.scale[0] == 0.1f * (1.0f / 127.0f) && b.q.scale[1] == 0.1f * (2.0f / 127.0f));
    CHECK(b.t->data[0] == b.q.scale[0] * rintf(0.123456f / b.q.scale[0]));
    CHECK(fabsf(b.t->data[0] - 0.123456f) <= 0.5f * b.q.scale[0]);
    CHECK(pare_quant_on_grid(&b));
    /* a code past 2^24 leaves the bias float */
    pare_qparams_clear(&b.q);
    b.t->data[0] = 1e9f;
    CHECK(pare_quant_bias(&b, &w, 0.1f) == 0);
    CHECK(b.q.bits == 0 && b.t->data[0] == 1e9f);
    pare_tensor_free(w.t);
    pare_tensor_free(b.t);
    pare_qparams_clear(&w.q);
    pare_qparams_clear(&b.q);
}

/* ---- calibration ----------------------------------------------------------- */

PARE_TEST(quant_act_qparams)
{
    float s;
    int zp;
    pare_act_qparams(-1.0f, 3.0f, 8, &s, &zp);
    CHECK(s == 4.0f / 255.0f && zp == 64);
    pare_act_qparams(0.0f, 6.0f, 8, &s, &zp);
    CHECK(s == 6.0f / 255.0f && zp == 0);
    pare_act_qparams(0.5f, 2.0f, 4, &s, &zp); /* the range always holds 0 */
    CHECK(s == 2.0f / 15.0f && zp == 0);
    pare_act_qparams(-3.0f, -1.0f, 8, &s, &zp);
    CHECK(s == 3.0f / 255.0f && zp == 255);
    pare_act_qparams(0.0f, 0.0f, 8, &s, &zp);
    CHECK(s == 1.0f && zp == 0);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The real error of fake quantization with a range, computed naively. */
static double fq_mse(const float *x, size_t n, float lo, float hi, int bits)
{
    float s;
    int zp;
    pare_act_qparams(lo, hi, bits, &s, &zp);
    double e = 0, qmax = (1 << bits) - 1;
    for (size_t k = 0; k < n; k++) {
        double q = nearbyint((double)(x[k] / s)) + zp;
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        double d = x[k] - (float)((q - zp) * s);
        e += d * d;
    }
    return e / (double)n;
}

PARE_TEST(quant_calibration_ranges)
{
    enum { N = 200000 };
    float *x = malloc(sizeof(float) * N), *sorted = malloc(sizeof(float) * N);
    pare_rng r;
    pare_rng_seed(&r, 3, 4, 0, 0);
    /* post-ReLU-like: 40% exact zeros, the rest |Laplace| (a heavier tail than
     * a Gaussian's), plus NaN and inf to be ignored */
    for (int k = 0; k < N; k++)
        x[k] = k % 5 < 2 ? 0.0f : fabsf(laplace(&r));
    x[17] = NAN;
    x[18] = INFINITY;
    pare_observer o;
    pare_observer_init(&o);
    pare_observer_minmax(&o, x, N / 2);
    pare_observer_minmax(&o, x + N / 2, N - N / 2);
    CHECK_OK(pare_observer_hist(&o, x, N));
    float lo, hi, mx = 0;
    for (int k = 0; k < N; k++)
        if (isfinite(x[k]) && x[k] > mx)
            mx = x[k];
    pare_observer_range(&o, PARE_CALIB_MINMAX, 0, 8, &lo, &hi);
    CHECK(lo == 0.0f && hi == mx); /* exact */
    CHECK(o.count == N - 2 && o.zeros == 2 * (N / 5));
    /* the percentile against the sorted values, within a bin */
    int m = 0;
    for (int k = 0; k < N; k++)
        if (isfinite(x[k]))
            sorted[m++] = x[k];
    qsort(sorted, (size_t)m, sizeof(float), cmp_float);
    for (int i = 0; i < 3; i++) {
        double pctl = i == 0 ? 99.0 : i == 1 ? 99.9 : 99.99;
        pare_observer_range(&o, PARE_CALIB_PERCENTILE, pctl, 8, &lo, &hi);
        float ref = sorted[(size_t)ceil(pctl / 100.0 * m) - 1];
        CHECKF(fabsf(hi - ref) <= mx / PARE_OBS_BINS * 1.01f, "percentile %g: %g, sorted %g", pctl, hi, ref);
        CHECK(lo == 0.0f);
    }
    /* MSE: beats min-max on this tail, by far at 4 bits (clipping a tail pays
     * when the step is coarse; at 8 bits by the ~13% a Laplace tail allows),
     * and is near the best range of a scan */
    for (int bits = 4; bits <= 8; bits += 4) {
        float mlo, mhi;
        pare_observer_range(&o, PARE_CALIB_MSE, 0, bits, &mlo, &mhi);
        double e_mse = fq_mse(sorted, (size_t)m, mlo, mhi, bits), e_mm = fq_mse(sorted, (size_t)m, 0, mx, bits);
        double best = INFINITY;
        for (int i = 1; i <= 200; i++)
            best = fmin(best, fq_mse(sorted, (size_t)m, 0, mx * (float)i / 200.0f, bits));
        printf("  %d bits: MSE range %.3g (error %.3g), min-max %.3g (error %.3g), best scanned %.3g\n", bits,
               mhi, e_mse, mx, e_mm, best);
        CHECK(e_mse < (bits == 4 ? 0.5 : 0.95) * e_mm);
        CHECK(e_mse < 1.02 * best);
    }
    pare_observer_free(&o);
    /* signed values: the low percentile too */
    pare_observer_init(&o);
    for (int k = 0; k < N; k++)
        x[k] = gauss(&r);
    pare_observer_minmax(&o, x, N);
    CHECK_OK(pare_observer_hist(&o, x, N));
    memcpy(sorted, x, sizeof(float) * N);
    qsort(sorted, N, sizeof(float), cmp_float);
    pare_observer_range(&o, PARE_CALIB_PERCENTILE, 99.9, 8, &lo, &hi);
    float w = (float)((o.hi - o.lo) / PARE_OBS_BINS) * 1.01f;
    CHECK(fabsf(hi - sorted[(size_t)ceil(0.999 * N) - 1]) <= w);
    CHECK(fabsf(lo - sorted[(size_t)ceil(0.001 * N) - 1]) <= w);
    pare_observer_range(&o, PARE_CALIB_MINMAX, 0, 8, &lo, &hi);
    CHECK(lo == sorted[0] && hi == sorted[N - 1]);
    pare_observer_free(&o);
    free(x);
    free(sorted);
}

/* ---- the fakequant op ------------------------------------------------------ */

static float fq_ref(float x, float s, float zp, int bits)
{
    if (isnan(x))
        return x;
    double qmax = (double)((1 << bits) - 1);
    double q = nearbyint((double)(x / s)) + zp; /* half to even in the default mode */
    q = q < 0 ? 0 : q > qmax ? qmax : q;
    return (float)(q - zp) * s;
}

PARE_TEST(quant_fakequant_forward_matches_reference)
{
    static const struct {
        float s;
        int zp, bits;
    } cases[] = {{0.1f, 0, 8}, {0.05f, 128, 8}, {0.25f, 3, 4}, {1.0f, 1, 2}, {0.5f, 0, 1}, {0.0123f, 200, 8}};
    enum { N = 40000 }; /* past the op's threading threshold */
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    pare_rng r;
    pare_rng_seed(&r, 5, 5, 0, 0);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        float s = cases[ci].s, zp = (float)cases[ci].zp;
        int bits = cases[ci].bits;
        float lo = (0 - zp) * s, hi = ((float)((1 << bits) - 1) - zp) * s;
        for (int k = 0; k < N; k++) {
            switch (k % 4) {
            case 0: /* half-way between two codes of the range: ties to even (exact
                     * half-integers of x / s where s is a power of two) */
                x[k] = ((float)pare_rng_below(&r, (unsigned)(1 << bits)) - 0.5f - zp) * s;
                break;
            case 1:
                x[k] = lo - 2 * s + (hi - lo + 4 * s) * (float)pare_rng_below(&r, 1u << 20) / (float)(1u << 20);
                break;
            case 2: /* far outside: clamping */
                x[k] = (k & 8 ? 1 : -1) * (hi - lo) * (float)(1 + pare_rng_below(&r, 100));
                break;
            default:
                x[k] = gauss(&r) * (hi - lo);
            }
        }
        x[3] = NAN;
        x[7] = INFINITY;
        x[11] = -INFINITY;
        pare_graph *g = pare_graph_new("fq");
        int in = pare_graph_input(g, 1, 1, 1);
        CHECK(pare_graph_fakequant(g, in, s, cases[ci].zp, bits, "q") >= 0);
        CHECK_OK(pare_graph_status(g));
        CHECK_OK(pare_graph_forward(g, x, N, y, 2));
        int bad = 0, ties = 0;
        for (int k = 0; k < N; k++) {
            float want = fq_ref(x[k], s, zp, bits);
            int same = isnan(want) ? isnan(y[k]) : y[k] == want;
            if (!same && bad++ < 3)
                CHECKF(0, "s %g zp %g bits %d: x %.9g -> %.9g, reference %.9g", s, zp, bits, x[k], y[k], want);
            ties += k % 4 == 0 && x[k] > lo && x[k] < hi;
        }
        CHECK(ties > 1000 || bits < 4);
        CHECK(y[7] == hi && y[11] == lo);
        pare_graph_free(g);
    }
    /* the builder refuses what the op cannot do */
    pare_graph *g = pare_graph_new("bad");
    int in = pare_graph_input(g, 1, 2, 2);
    CHECK(pare_graph_fakequant(g, in, 0.1f, 0, 9, "q") < 0);
    CHECK(strstr(pare_last_error(), "bits") != NULL);
    pare_graph_free(g);
    g = pare_graph_new("bad");
    in = pare_graph_input(g, 1, 2, 2);
    CHECK(pare_graph_fakequant(g, in, 0.1f, 256, 8, "q") < 0);
    pare_graph_free(g);
    g = pare_graph_new("bad");
    in = pare_graph_input(g, 1, 2, 2);
    CHECK(pare_graph_fakequant(g, in, -1.0f, 0, 8, "q") < 0);
    pare_graph_free(g);
    free(x);
    free(y);
}

/* Runs the op's backward on one batch: dx from dy (acc: added to dx). */
static void fq_backward(const pare_graph *g, const float *x, const float *dy, float *dx, int n, int acc)
{
    const pare_node *nd = &g->nodes[1];
    const float *xs[1] = {x};
    pare_shape shp[1] = {g->nodes[0].out};
    float *dxs[1] = {dx};
    int accs[1] = {acc};
    pare_op_ctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.node = nd;
    c.n = n;
    c.training = 1;
    c.threads = 2;
    c.x = xs;
    c.xs = shp;
    c.dy = dy;
    c.dx = dxs;
    c.dx_acc = accs;
    pare_op_get(PARE_OP_FAKEQUANT)->backward(&c);
}

PARE_TEST(quant_fakequant_straight_through_gradient)
{
    float s = 0.1f, zp = 20;
    int bits = 8;
    pare_graph *g = pare_graph_new("fq");
    int in = pare_graph_input(g, 1, 1, 1);
    pare_graph_fakequant(g, in, s, (int)zp, bits, "q");
    CHECK_OK(pare_graph_status(g));
    float lo = (0 - zp) * s, hi = (255 - zp) * s;
    enum { N = 40000 };
    float *x = malloc(sizeof(float) * N), *dy = malloc(sizeof(float) * N), *dx = malloc(sizeof(float) * N);
    pare_rng r;
    pare_rng_seed(&r, 9, 9, 0, 0);
    for (int k = 0; k < N; k++) {
        x[k] = lo - 3 + (hi - lo + 6) * (float)pare_rng_below(&r, 1u << 20) / (float)(1u << 20);
        dy[k] = gauss(&r);
        dx[k] = 1.0f;
    }
    x[0] = NAN;
    fq_backward(g, x, dy, dx, N, 0);
    for (int k = 0; k < N; k++) {
        /* inside the range (rounding to a code in [0, 255]) the gradient passes, outside it is 0 */
        double q = nearbyint((double)(x[k] / s)) + zp;
        float want = q >= 0 && q <= 255 ? dy[k] : 0.0f;
        if (dx[k] != want) {
            CHECKF(0, "x %g: dx %g, wanted %g", x[k], dx[k], want);
            break;
        }
    }
    /* accumulating adds */
    for (int k = 0; k < N; k++)
        dx[k] = 1.0f;
    fq_backward(g, x, dy, dx, N, 1);
    CHECK(dx[5] == 1.0f + ((nearbyint((double)(x[5] / s)) + zp >= 0 && nearbyint((double)(x[5] / s)) + zp <= 255) ? dy[5] : 0.0f));
    /* Finite differences away from the steps: x +- h both sit a quarter step
     * off a code, so (f(x+h) - f(x-h)) / 2h is the slope of the forward: 1
     * inside, 0 beyond the clamps, as the straight-through gradient says. */
    float h = 16 * s;
    int n_in = 0, n_out = 0;
    for (int k = 0; k < 2000; k++) {
        float c = (float)((int)pare_rng_below(&r, 400) - 100);
        float xv = (c + 0.25f) * s, xp = xv + h, xm = xv - h, f[2], xx[2] = {xp, xm};
        CHECK_OK(pare_graph_forward(g, xx, 2, f, 1));
        double fd = ((double)f[0] - f[1]) / ((double)xp - xm);
        float one = 1.0f, gx;
        fq_backward(g, &xv, &one, &gx, 1, 0);
        int inside = xm > lo + s && xp < hi - s, outside = xm > hi + s || xp < lo - s;
        if (inside) {
            n_in++;
            CHECKF(fabs(fd - 1.0) < 1e-3 && gx == 1.0f, "x %g: finite difference %g, gradient %g", xv, fd, gx);
        } else if (outside) {
            n_out++;
            CHECKF(fd == 0.0 && gx == 0.0f, "x %g: finite difference %g, gradient %g", xv, fd, gx);
        }
    }
    CHECK(n_in > 100 && n_out > 100);
    pare_graph_free(g);
    free(x);
    free(dy);
    free(dx);
}

/* ---- models ---------------------------------------------------------------- */

static const char *synth_dir(void)
{
    static char dir[1100];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", pare_test_path("synth"));
        mkdir(dir, 0755);
        if (synth_write_idx(dir, 1200, 300, 33) != 0)
            pare_test_fail(__FILE__, __LINE__, "cannot write synthetic data");
    }
    return dir;
}

static pare_graph *trained_lenet(const char *spec, long n_train, long n_test, int epochs, pare_dataset **tr,
                                 pare_dataset **te)
{
    CHECK_OK(pare_dataset_open(spec, PARE_SPLIT_TRAIN, tr));
    CHECK_OK(pare_dataset_open(spec, PARE_SPLIT_TEST, te));
    if (n_train < pare_dataset_size(*tr))
        pare_dataset_limit(*tr, n_train);
    if (n_test < pare_dataset_size(*te))
        pare_dataset_limit(*te, n_test);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = epochs;
    c.batch = n_train > 2000 ? 32 : 8;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, *tr, NULL));
    pare_trainer_free(t);
    return g;
}

static double acc_of(pare_graph *g, const pare_dataset *te)
{
    pare_eval_result r;
    CHECK_OK(pare_evaluate(g, te, 500, 2, &r));
    return r.accuracy;
}

static int all_on_grid(const pare_graph *g, int *n_q)
{
    int ok = 1;
    *n_q = 0;
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        if (p->q.bits == 0)
            continue;
        (*n_q)++;
        if (!pare_quant_on_grid(p)) {
            CHECKF(0, "%s is off its grid", p->name);
            ok = 0;
        }
    }
    return ok;
}

PARE_TEST(quant_ptq_keeps_accuracy_and_round_trips)
{
    /* Fashion-MNIST when installed (the real distribution), else the synthetic bars. */
    pare_dataset *probe;
    int real = pare_dataset_open("fashion-mnist", PARE_SPLIT_TEST, &probe) == PARE_OK;
    if (real)
        pare_dataset_free(probe);
    pare_dataset *tr, *te;
    pare_graph *g = trained_lenet(real ? "fashion-mnist" : synth_dir(), real ? 6000 : 1200, real ? 2000 : 300, 1, &tr, &te);
    pare_quant_config c;
    pare_quant_config_init(&c);
    c.calib_samples = 500;
    c.report_samples = 200;
    pare_graph *q;
    pare_quant_report rep;
    CHECK_OK(pare_quantize(g, &c, tr, &q, &rep));
    double af = acc_of(g, te), aq = acc_of(q, te);
    printf("  %s: float %.4f, int8 %.4f; output SQNR %.1f dB\n", real ? "fashion-mnist" : "synthetic", af, aq,
           rep.output_sqnr_db);
    CHECKF(fabs(af - aq) <= 0.01, "float %.4f, int8 %.4f", af, aq);
    CHECK(af > (real ? 0.6 : 0.9));
    /* the report: every layer quantized, errors small and consistent */
    CHECK(rep.n == 5 && rep.quantized == 5 && rep.kept_float == 0 && rep.fakequant_nodes == 5);
    for (int i = 0; i < rep.n; i++) {
        const pare_quant_layer *l = &rep.layers[i];
        CHECKF(l->sqnr_db > 30 && l->model_sqnr_db > 25, "%s: SQNR %.1f / %.1f dB", l->name, l->sqnr_db,
               l->model_sqnr_db);
        CHECK_NEAR(l->sqnr_db, -20 * log10(l->rel_error), 1e-6);
        CHECK(l->bits == 8 && l->bias_int32 && l->act_scale > 0);
    }
    CHECK(!strcmp(rep.layers[0].name, "conv1"));
    if (real) /* normalised pixels go below 0: an asymmetric range */
        CHECK(rep.layers[0].act_lo < 0 && rep.layers[0].act_zero_point > 0);
    CHECK(rep.layers[1].act_lo == 0 && rep.layers[1].act_zero_point == 0); /* after a ReLU */
    CHECK(rep.output_sqnr_db > 25);
    /* the structure: a fakequant in front of each layer, weights and biases on their grids */
    int nq;
    CHECK(all_on_grid(q, &nq) && nq == 10);
    for (int i = 0; i < q->n_nodes; i++) {
        const pare_node *nd = &q->nodes[i];
        if (nd->op != PARE_OP_CONV2D && nd->op != PARE_OP_LINEAR)
            continue;
        const pare_node *src = &q->nodes[nd->in[0]];
        CHECK(src->op == PARE_OP_FAKEQUANT && src->a.mode == 8);
        const pare_param *w = &q->params[pare_graph_node_param(q, i, PARE_ROLE_WEIGHT)];
        const pare_param *b = &q->params[pare_graph_node_param(q, i, PARE_ROLE_BIAS)];
        CHECK(w->q.scheme == 2 && b->q.bits == 32 && b->q.scale[0] == src->a.alpha * w->q.scale[0]);
    }
    CHECK(pare_graph_find_node(q, "input.fq") == 1);
    /* the input is untouched */
    int nt, nf;
    CHECK(pare_graph_quantized(g, &nt, &nf) == 0);
    /* save and load: the same model, evaluating identically */
    CHECK_OK(pare_graph_save(q, pare_test_path("q.pare")));
    pare_graph *l;
    CHECK_OK(pare_graph_load(pare_test_path("q.pare"), &l));
    CHECK(l->n_nodes == q->n_nodes && l->n_params == q->n_params);
    for (int i = 0; i < q->n_params; i++) {
        const pare_qparams *a = &q->params[i].q, *b = &l->params[i].q;
        CHECK(a->bits == b->bits && a->scheme == b->scheme && a->n == b->n);
        CHECK(a->n == 0 || (!memcmp(a->scale, b->scale, sizeof(float) * (size_t)a->n) &&
                            !memcmp(a->zero_point, b->zero_point, sizeof(int32_t) * (size_t)a->n)));
        CHECK(!memcmp(q->params[i].t->data, l->params[i].t->data, sizeof(float) * q->params[i].t->n));
    }
    for (int i = 0; i < q->n_nodes; i++)
        if (q->nodes[i].op == PARE_OP_FAKEQUANT)
            CHECK(l->nodes[i].op == PARE_OP_FAKEQUANT && l->nodes[i].a.alpha == q->nodes[i].a.alpha &&
                  l->nodes[i].a.beta == q->nodes[i].a.beta && l->nodes[i].a.mode == q->nodes[i].a.mode);
    CHECK(all_on_grid(l, &nq) && nq == 10);
    float *x = malloc(sizeof(float) * 64 * 784), *y1 = malloc(sizeof(float) * 640), *y2 = malloc(sizeof(float) * 640);
    long idx[64];
    int32_t lab[64];
    for (int i = 0; i < 64; i++)
        idx[i] = i;
    pare_data_batch(te, idx, 64, x, lab, NULL, 0, 0, 1);
    CHECK_OK(pare_graph_forward(q, x, 64, y1, 2));
    CHECK_OK(pare_graph_forward(l, x, 64, y2, 2));
    CHECK(!memcmp(y1, y2, sizeof(float) * 640));
    CHECK(acc_of(l, te) == aq);
    /* dequantized: no fakequant, no qparams, the same weights */
    pare_graph *d;
    CHECK_OK(pare_graph_dequantize(l, &d));
    CHECK(pare_graph_quantized(d, NULL, NULL) == 0 && d->n_nodes == g->n_nodes && d->n_params == q->n_params);
    for (int i = 0; i < d->n_params; i++)
        CHECK(!memcmp(d->params[i].t->data, q->params[i].t->data, sizeof(float) * d->params[i].t->n));
    /* quantizing a quantized model is refused */
    pare_graph *qq = NULL;
    CHECK_STATUS(pare_quantize(q, &c, tr, &qq, NULL), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "already quantized") != NULL && qq == NULL);
    pare_graph_free(d);
    pare_graph_free(l);
    pare_graph_free(q);
    pare_quant_report_free(&rep);
    free(x);
    free(y1);
    free(y2);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(quant_keep_float_and_bad_input)
{
    pare_dataset *tr, *te;
    pare_graph *g = trained_lenet(synth_dir(), 600, 100, 1, &tr, &te);
    pare_quant_config c;
    pare_quant_config_init(&c);
    c.calib_samples = 200;
    c.report_samples = 100;
    pare_graph *q;
    pare_quant_report rep;
    /* named layers stay float, with no fakequant of their own */
    c.keep_float = "conv1, fc3";
    CHECK_OK(pare_quantize(g, &c, tr, &q, &rep));
    CHECK(rep.quantized == 3 && rep.kept_float == 2 && rep.layers[0].kept_float == 1 && rep.layers[4].kept_float == 1);
    CHECK(pare_graph_find_node(q, "input.fq") < 0);
    int c1 = pare_graph_find_node(q, "conv1");
    CHECK(q->params[pare_graph_node_param(q, c1, PARE_ROLE_WEIGHT)].q.bits == 0);
    CHECK(!memcmp(q->params[0].t->data, g->params[0].t->data, sizeof(float) * g->params[0].t->n));
    pare_quant_report_free(&rep);
    pare_graph_free(q);
    /* auto with an impossible bar: every layer stays float and the model is the float one */
    c.keep_float = NULL;
    c.keep_float_auto = 1;
    c.keep_float_db = 200;
    CHECK_OK(pare_quantize(g, &c, tr, &q, &rep));
    CHECK(rep.quantized == 0 && rep.kept_float == 5 && rep.layers[2].kept_float == 2 && isinf(rep.output_sqnr_db));
    CHECK(pare_graph_quantized(q, NULL, NULL) == 0);
    pare_quant_report_free(&rep);
    pare_graph_free(q);
    /* a bar between the layers' SQNRs: exactly the layers below it stay float */
    c.keep_float_db = 0;
    CHECK_OK(pare_quantize(g, &c, tr, &q, &rep));
    double mid = 0;
    for (int i = 0; i < rep.n; i++)
        mid += rep.layers[i].sqnr_db / rep.n;
    pare_quant_report_free(&rep);
    pare_graph_free(q);
    c.keep_float_db = mid;
    CHECK_OK(pare_quantize(g, &c, tr, &q, &rep));
    int below = 0;
    for (int i = 0; i < rep.n; i++) {
        CHECK((rep.layers[i].kept_float == 2) == (rep.layers[i].sqnr_db < mid));
        below += rep.layers[i].sqnr_db < mid;
    }
    CHECK(below > 0 && below < rep.n);
    pare_quant_report_free(&rep);
    pare_graph_free(q);
    c.keep_float_auto = 0;
    /* bad input: one sentence each */
    q = NULL;
    c.keep_float = "conv1,pool1";
    CHECK_STATUS(pare_quantize(g, &c, tr, &q, &rep), PARE_ENOTFOUND);
    CHECK(strstr(pare_last_error(), "'pool1'") != NULL && q == NULL && rep.n == 0);
    c.keep_float = NULL;
    c.weight_bits = 9;
    CHECK_STATUS(pare_quantize(g, &c, tr, &q, NULL), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "1 to 8 bits") != NULL);
    c.weight_bits = 8;
    c.act_bits = -1;
    CHECK_STATUS(pare_quantize(g, &c, tr, &q, NULL), PARE_EINVAL);
    c.act_bits = 8;
    pare_dataset *wrong;
    CHECK_OK(pare_dataset_alloc("cifar-like", 10, 3, 32, 32, &wrong));
    memset(wrong->images, 7, 10 * 3 * 32 * 32);
    memset(wrong->labels, 1, 10);
    CHECK_STATUS(pare_quantize(g, &c, wrong, &q, NULL), PARE_ESHAPE);
    CHECK(strstr(pare_last_error(), "calibration set cifar-like has 3x32x32") != NULL && q == NULL);
    pare_dataset_free(wrong);
    pare_admm_quant_config ac;
    pare_admm_quant_config_init(&ac);
    ac.bits[0] = 0;
    CHECK_STATUS(pare_quant_admm(g, NULL, &ac, tr, te), PARE_EINVAL);
    CHECK_STATUS(pare_qat_train(g, NULL, &ac.train, 0, tr, te), PARE_EINVAL); /* a float model */
    CHECK(strstr(pare_last_error(), "quantize it first") != NULL);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* Masks half of each conv weight (alternate elements) so QAT's masks are checked. */
static void mask_half(pare_graph *g)
{
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        if (p->role != PARE_ROLE_WEIGHT || g->nodes[p->node].op != PARE_OP_CONV2D)
            continue;
        p->mask = malloc(p->t->n);
        for (size_t k = 0; k < p->t->n; k++) {
            p->mask[k] = k % 2;
            if (!p->mask[k])
                p->t->data[k] = 0.0f;
        }
    }
}

static int masks_exact(const pare_graph *g)
{
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        for (size_t k = 0; p->mask && k < p->t->n; k++)
            if (!p->mask[k] && p->t->data[k] != 0.0f)
                return 0;
    }
    return 1;
}

PARE_TEST(quant_qat_keeps_weights_on_grid)
{
    pare_dataset *tr, *te;
    pare_graph *base = trained_lenet(synth_dir(), 1200, 300, 2, &tr, &te);
    mask_half(base);
    static const int widths[] = {8, 4, 2, 1};
    for (int wi = 0; wi < 4; wi++) {
        pare_quant_config c;
        pare_quant_config_init(&c);
        c.weight_bits = widths[wi];
        c.calib_samples = 200;
        c.report_samples = 50;
        pare_graph *g;
        CHECK_OK(pare_quantize(base, &c, tr, &g, NULL));
        pare_graph *before;
        CHECK_OK(pare_graph_clone(g, &before));
        pare_qat *q;
        CHECK_OK(pare_qat_new(g, widths[wi] == 4 ? 0.05f : 0.0f, &q));
        CHECK(pare_qat_layers(q) == 5);
        pare_train_config tc;
        pare_train_config_init(&tc);
        tc.batch = 16;
        tc.lr = 0.02f;
        pare_trainer *t;
        CHECK_OK(pare_trainer_new(g, &tc, &t));
        pare_train_hooks h = pare_qat_hooks(q);
        pare_trainer_set_hooks(t, &h);
        float *x = malloc(sizeof(float) * 16 * 784);
        int32_t lab[16];
        long idx[16];
        int steps = 40, off = 0, nq;
        for (int st = 0; st < steps; st++) {
            for (int i = 0; i < 16; i++)
                idx[i] = (st * 16 + i) % tr->n;
            pare_data_batch(tr, idx, 16, x, lab, NULL, 0, 0, 1);
            double loss;
            CHECK_OK(pare_trainer_step(t, x, lab, 16, &loss));
            off += !all_on_grid(g, &nq) || !masks_exact(g);
            CHECK(nq == 5); /* the biases train in float until the end */
        }
        CHECKF(off == 0, "%d bits: %d steps left weights off the grid", widths[wi], off);
        CHECK_OK(pare_qat_status(q));
        /* the weights moved, in whole steps of their grid */
        int moved = 0;
        for (int i = 0; i < g->n_params; i++)
            if (g->params[i].q.bits)
                moved += memcmp(g->params[i].t->data, before->params[i].t->data, sizeof(float) * g->params[i].t->n) != 0;
        CHECKF(moved >= 3, "%d bits: only %d layers changed", widths[wi], moved);
        CHECK_OK(pare_qat_finish(q));
        CHECK(all_on_grid(g, &nq) && nq == 10); /* biases back on their int32 grid */
        if (widths[wi] == 4) { /* the EMA moved a range */
            int changed = 0;
            for (int i = 0; i < g->n_nodes; i++)
                changed += g->nodes[i].op == PARE_OP_FAKEQUANT && g->nodes[i].a.alpha != before->nodes[i].a.alpha;
            CHECK(changed > 0);
        }
        /* binary: exactly two values per layer among the kept weights */
        if (widths[wi] == 1)
            for (int i = 0; i < g->n_params; i++) {
                const pare_param *p = &g->params[i];
                if (p->role != PARE_ROLE_WEIGHT)
                    continue;
                for (size_t k = 0; k < p->t->n; k++) {
                    int gi = p->q.scheme == 2 ? (int)(k / (p->t->n / (size_t)p->q.n)) : 0;
                    float v = p->t->data[k], sc = p->q.scale[gi];
                    CHECK(p->mask && !p->mask[k] ? v == 0.0f : (v == sc || v == -sc));
                }
            }
        free(x);
        pare_trainer_free(t);
        pare_qat_free(q);
        pare_graph_free(before);
        pare_graph_free(g);
    }
    pare_graph_free(base);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* QAT from `quantized` for 2 epochs with an EMA of the ranges, stopped at
 * each step of stops[] (0-ended) and resumed from the checkpoint; the result. */
static pare_graph *qat_with_stops(const pare_graph *quantized, const pare_dataset *tr, const long *stops,
                                  const char *ckpt)
{
    pare_graph *g = NULL;
    pare_test_stopper st = {0, 0};
    int k = 0, done = 0;
    remove(ckpt);
    for (int round = 0; round < 8 && !done; round++) {
        pare_graph_free(g);
        CHECK_OK(pare_graph_clone(quantized, &g));
        pare_qat *q;
        CHECK_OK(pare_qat_new(g, 0.05f, &q));
        pare_train_config c;
        pare_train_config_init(&c);
        c.epochs = 2;
        c.batch = 16;
        c.lr = 0.02f;
        c.threads = 1;
        c.checkpoint_path = ckpt;
        c.resume = round > 0;
        pare_test_stop_config(&c, &st, stops[k]);
        pare_trainer *t;
        CHECK_OK(pare_trainer_new(g, &c, &t));
        pare_train_hooks h = pare_qat_hooks(q);
        pare_trainer_set_hooks(t, &h);
        pare_status s = pare_trainer_run(t, tr, NULL);
        if (s == PARE_ECANCELLED && stops[k]) {
            k++;
        } else {
            CHECK_OK(s);
            CHECKF(stops[k] == 0, "the run ended before step %ld", stops[k]);
            CHECK_OK(pare_qat_finish(q));
            done = 1;
        }
        pare_trainer_free(t);
        pare_qat_free(q);
    }
    CHECK(done);
    return g;
}

/* A QAT run stopped and resumed (its latent weights in the checkpoint) ends
 * with the bytes of an uninterrupted one; a checkpoint without that state
 * is refused in one sentence. */
PARE_TEST(quant_qat_resume_bit_identical)
{
    pare_dataset *tr, *te;
    pare_graph *base = trained_lenet(synth_dir(), 320, 100, 1, &tr, &te);
    pare_quant_config qc;
    pare_quant_config_init(&qc);
    qc.weight_bits = 4;
    qc.calib_samples = 100;
    qc.report_samples = 50;
    pare_graph *qz;
    CHECK_OK(pare_quantize(base, &qc, tr, &qz, NULL));
    char ck[1100];
    snprintf(ck, sizeof ck, "%s", pare_test_path("qat.ckpt"));
    const long none[] = {0}, stops[] = {3, 17, 25, 0};
    pare_graph *a = qat_with_stops(qz, tr, none, ck), *b = qat_with_stops(qz, tr, stops, ck);
    int moved = 0;
    for (int i = 0; i < a->n_params; i++) {
        const pare_param *pa = &a->params[i], *pb = &b->params[i];
        CHECKF(memcmp(pa->t->data, pb->t->data, sizeof(float) * pa->t->n) == 0, "%s differs after resuming",
               pa->name);
        CHECKF(pa->q.n == pb->q.n && (!pa->q.n || memcmp(pa->q.scale, pb->q.scale, sizeof(float) * (size_t)pa->q.n) == 0),
               "%s: scales differ after resuming", pa->name);
        moved += pa->q.bits && memcmp(pa->t->data, qz->params[i].t->data, sizeof(float) * pa->t->n) != 0;
    }
    CHECK(moved >= 3);
    for (int i = 0; i < a->n_nodes; i++)
        CHECK(a->nodes[i].a.alpha == b->nodes[i].a.alpha && a->nodes[i].a.beta == b->nodes[i].a.beta);
    /* a plain training checkpoint holds no QAT state */
    pare_graph *g;
    CHECK_OK(pare_graph_clone(qz, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 1;
    c.batch = 16;
    c.threads = 1;
    c.checkpoint_path = ck;
    remove(ck);
    pare_trainer *t;
    pare_test_stopper st;
    pare_test_stop_config(&c, &st, 4);
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_STATUS(pare_trainer_run(t, tr, NULL), PARE_ECANCELLED);
    pare_trainer_free(t);
    pare_qat *q;
    CHECK_OK(pare_qat_new(g, 0, &q));
    c.resume = 1;
    c.cancel = NULL;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    pare_train_hooks h = pare_qat_hooks(q);
    pare_trainer_set_hooks(t, &h);
    CHECK_STATUS(pare_trainer_run(t, tr, NULL), PARE_EFORMAT);
    CHECKF(strstr(pare_last_error(), "has no state of this training method") != NULL, "%s", pare_last_error());
    pare_trainer_free(t);
    pare_qat_free(q);
    pare_graph_free(g);
    pare_graph_free(a);
    pare_graph_free(b);
    pare_graph_free(qz);
    pare_graph_free(base);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* The distinct values of a weight's kept entries, up to max + 1. */
static int levels(const pare_param *p, float *vals, int max)
{
    int n = 0;
    for (size_t k = 0; k < p->t->n; k++) {
        if (p->mask && !p->mask[k])
            continue;
        int found = 0;
        for (int j = 0; j < n && !found; j++)
            found = vals[j] == p->t->data[k];
        if (!found) {
            if (n > max)
                return n;
            vals[n++] = p->t->data[k];
        }
    }
    return n;
}

PARE_TEST(quant_admm_reaches_its_levels)
{
    pare_dataset *tr, *te;
    pare_graph *base = trained_lenet(synth_dir(), 600, 300, 2, &tr, &te);
    mask_half(base);
    double af = acc_of(base, te);
    static const struct {
        int stages, bits[3], per_channel, admm_epochs, finetune;
    } runs[] = {{1, {2}, 0, 4, 0}, {2, {4, 1}, 0, 1, 1}, {1, {3}, 1, 1, 1}};
    for (int ri = 0; ri < 3; ri++) {
        pare_quant_config c;
        pare_quant_config_init(&c);
        c.weight_bits = runs[ri].bits[runs[ri].stages - 1];
        c.per_tensor = !runs[ri].per_channel;
        c.calib_samples = 200;
        c.report_samples = 50;
        pare_graph *g;
        CHECK_OK(pare_quantize(base, &c, tr, &g, NULL));
        pare_admm_quant_config ac;
        pare_admm_quant_config_init(&ac);
        ac.stages = runs[ri].stages;
        memcpy(ac.bits, runs[ri].bits, sizeof runs[ri].bits);
        ac.per_channel = runs[ri].per_channel;
        ac.admm_epochs = runs[ri].admm_epochs;
        ac.finetune_epochs = runs[ri].finetune;
        ac.train.batch = 16;
        ac.train.lr = 0.02f;
        CHECK_OK(pare_quant_admm(g, base, &ac, tr, te));
        int bits = c.weight_bits, M = pare_quant_wmax(bits), nq;
        CHECK(all_on_grid(g, &nq) && nq == 10 && masks_exact(g));
        for (int i = 0; i < g->n_params; i++) {
            const pare_param *p = &g->params[i];
            if (p->role != PARE_ROLE_WEIGHT)
                continue;
            CHECK(p->q.bits == bits && p->q.scheme == (runs[ri].per_channel ? 2 : 1));
            if (runs[ri].per_channel)
                continue;
            float vals[64];
            int n = levels(p, vals, 63);
            /* {0, ±q, ..., ±Mq}; binary: {-q, +q} exactly */
            if (bits == 1)
                CHECKF(n == 2 && vals[0] == -vals[1], "%s: %d levels", p->name, n);
            else
                CHECKF(n <= 2 * M + 1 && n >= 2, "%s: %d levels for %d bits", p->name, n, bits);
            for (int j = 0; j < n; j++) {
                float code = vals[j] / p->q.scale[0];
                CHECK(code == rintf(code) && fabsf(code) <= (float)M && (bits > 1 || code != 0.0f));
            }
        }
        double a = acc_of(g, te);
        printf("  ADMM %d stage(s) to %d bits (%s): accuracy %.3f (float %.3f)\n", runs[ri].stages, bits,
               runs[ri].per_channel ? "per channel" : "per layer", a, af);
        CHECK(a > 0.5);
        pare_graph_free(g);
    }
    pare_graph_free(base);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(quant_bn_reestimate_averages_batches)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 3, &g));
    pare_dataset *ds;
    CHECK_OK(pare_dataset_alloc("noise", 100, 1, 28, 28, &ds));
    pare_rng r;
    pare_rng_seed(&r, 2, 2, 0, 0);
    for (long k = 0; k < 100 * 784; k++)
        ds->images[k] = (uint8_t)pare_rng_below(&r, 256);
    memset(ds->labels, 0, 100);
    int bn = pare_graph_find_node(g, "block3.bn"), conv = g->nodes[bn].in[0];
    int C = g->nodes[bn].out.c;
    size_t hw = (size_t)g->nodes[bn].out.h * (size_t)g->nodes[bn].out.w;
    float *rm = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_MEAN)].t->data;
    float *rv = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_VAR)].t->data;
    /* the reference: the plain average over 3 batches of 32 (the last 4 samples left out) of
     * each batch's mean and unbiased variance of the conv output, computed naively */
    double *mean = calloc((size_t)C, sizeof(double)), *var = calloc((size_t)C, sizeof(double));
    pare_exec *e;
    CHECK_OK(pare_exec_new(g, 32, 1, 1, &e));
    float *x = malloc(sizeof(float) * 32 * 784);
    int32_t lab[32];
    long idx[32];
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < 32; i++)
            idx[i] = b * 32 + i;
        pare_data_batch(ds, idx, 32, pare_exec_input(e), lab, NULL, 0, 0, 1);
        pare_exec_forward(e, 32, 0);
        const float *y = pare_exec_value(e, conv);
        for (int c = 0; c < C; c++) {
            double s1 = 0, s2 = 0, m = 32.0 * (double)hw;
            for (int i = 0; i < 32; i++)
                for (size_t k = 0; k < hw; k++)
                    s1 += y[((size_t)i * (size_t)C + (size_t)c) * hw + k];
            double mu = s1 / m;
            for (int i = 0; i < 32; i++)
                for (size_t k = 0; k < hw; k++) {
                    double d = y[((size_t)i * (size_t)C + (size_t)c) * hw + k] - mu;
                    s2 += d * d;
                }
            mean[c] += mu / 3;
            var[c] += s2 / (m - 1) / 3;
        }
    }
    pare_exec_free(e);
    free(x);
    /* the forwards above moved the running statistics: start again from garbage */
    for (int c = 0; c < C; c++) {
        rm[c] = 100.0f;
        rv[c] = 1e-6f;
    }
    CHECK_OK(pare_quant_bn_reestimate(g, ds, 32, 100, 2));
    for (int c = 0; c < C; c++) {
        CHECK_NEAR(rm[c], mean[c], 1e-5 * (1 + fabs(mean[c])));
        CHECK_NEAR(rv[c], var[c], 1e-4 * var[c]);
    }
    CHECK(g->nodes[bn].a.momentum == 0.1f); /* restored */
    free(mean);
    free(var);
    pare_dataset_free(ds);
    pare_graph_free(g);
}

/* ---- the command ----------------------------------------------------------- */

static int run(const char *args, char *err, size_t n)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin)
        return -1;
    char cmd[4096], ep[1100];
    snprintf(ep, sizeof ep, "%s", pare_test_path("qerr.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >/dev/null 2>'%s'", pare_test_dir(), bin, args, ep);
    int st = system(cmd);
    err[0] = 0;
    FILE *f = fopen(ep, "r");
    if (f) {
        size_t got = fread(err, 1, n - 1, f);
        err[got] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void be32(FILE *f, unsigned v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* IDX files of 20x20 images: a calibration set of the wrong shape. */
static void write_small_idx(const char *dir)
{
    char p[1200];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    be32(f, 0x803);
    be32(f, 8);
    be32(f, 20);
    be32(f, 20);
    for (int i = 0; i < 8 * 400; i++)
        fputc(i & 255, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    be32(f, 0x801);
    be32(f, 8);
    for (int i = 0; i < 8; i++)
        fputc(i, f);
    fclose(f);
}

PARE_TEST(quant_command)
{
    if (!getenv("PARE_BIN")) {
        printf("  skipped: PARE_BIN is not set\n");
        return;
    }
    synth_dir();
    write_small_idx(pare_test_path("small"));
    char err[4096];
    CHECK(run("train --model lenet --data synth --epochs 1 --batch 16 --out m.pare --quiet", err, sizeof err) == 0);
    CHECK(run("quantize m.pare --calib synth --calib-samples 300 --out q.pare --json --quiet", err, sizeof err) == 0);
    CHECKF(err[0] == 0, "stderr: %s", err);
    pare_graph *q;
    CHECK_OK(pare_graph_load(pare_test_path("q.pare"), &q));
    int nt, nf;
    CHECK(pare_graph_quantized(q, &nt, &nf) && nt == 10 && nf == 5);
    pare_graph_free(q);
    CHECK(run("quantize m.pare --calib synth --calib-samples 200 --keep-float auto --calib-method percentile --out q2.pare --quiet",
              err, sizeof err) == 0);
    CHECK(run("finetune q.pare --data synth --qat 8 --batch 16 --out qat.pare --quiet", err, sizeof err) == 0);
    CHECK_OK(pare_graph_load(pare_test_path("qat.pare"), &q));
    int n;
    CHECK(all_on_grid(q, &n) && n == 10);
    pare_graph_free(q);
    CHECK(run("finetune m.pare --data synth --qat 4 --calib-samples 100 --batch 16 --out qat4.pare --quiet", err,
              sizeof err) == 0);
    CHECK_OK(pare_graph_load(pare_test_path("qat4.pare"), &q));
    CHECK(all_on_grid(q, &n) && n == 10 && q->params[0].q.bits == 4);
    pare_graph_free(q);
    /* refusals: one line, non-zero, the input untouched */
    uint8_t *before, *after;
    size_t nb, na;
    CHECK_OK(pare_read_file(pare_test_path("q.pare"), 1 << 26, &before, &nb));
    static const struct {
        const char *args, *word;
        int code;
    } bad[] = {
        {"finetune q.pare --data synth --out x.pare", "--dequantize", 1},
        {"train --from q.pare --data synth --out x.pare", "quantized model", 1},
        {"finetune q.pare --data synth --qat 4 --out x.pare", "--dequantize to quantize it again", 1},
        {"quantize m.pare --calib small --out x.pare", "has 1x20x20 samples but model lenet takes 1x28x28", 1},
        {"quantize m.pare --calib synth --bits 9 --out x.pare", "--bits 9 is out of range", 2},
        {"quantize m.pare --calib synth --bits 0 --out x.pare", "--bits 0 is out of range", 2},
        {"quantize m.pare --calib synth --act-bits 16 --out x.pare", "--act-bits 16 is out of range", 2},
        {"finetune m.pare --data synth --qat 12 --out x.pare", "--qat 12 is out of range", 2},
        {"quantize q.pare --calib synth --out x.pare", "already quantized", 1},
        {"quantize m.pare --calib synth --out m.pare", "never modifies", 2},
        {"quantize m.pare --out x.pare", "--calib SPEC is required", 2},
        {"quantize m.pare --calib synth --keep-float fc9 --out x.pare", "'fc9'", 1},
        {"quantize m.pare --calib synth --progressive --out x.pare", "--method admm", 2},
        {"finetune m.pare --data synth --act-bits 4 --out x.pare", "belong to --qat", 2},
        {"prune q.pare --scheme unstructured --sparsity 0.5 --data synth --out x.pare", "give --dequantize", 1},
        {"online q.pare --stream none.stream --out x.pare", "give --dequantize", 1},
        /* serving only keeps the model as it is: the next problem is the stream */
        {"online q.pare --stream none.stream --policy never --out x.pare", "none.stream", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = run(bad[i].args, err, sizeof err);
        int lines = 0;
        for (char *c = err; *c; c++)
            lines += *c == '\n';
        CHECKF(code == bad[i].code && lines == 1 && strstr(err, bad[i].word), "pare %s: exit %d, stderr %s",
               bad[i].args, code, err);
    }
    CHECK(!pare_file_exists(pare_test_path("x.pare")));
    CHECK_OK(pare_read_file(pare_test_path("q.pare"), 1 << 26, &after, &na));
    CHECK(na == nb && !memcmp(before, after, nb));
    free(after);
    free(before);
    /* --dequantize: a float model again, trainable */
    CHECK(run("finetune q.pare --data synth --dequantize --batch 16 --out f.pare --quiet", err, sizeof err) == 0);
    pare_graph *f;
    CHECK_OK(pare_graph_load(pare_test_path("f.pare"), &f));
    CHECK(pare_graph_quantized(f, NULL, NULL) == 0);
    pare_graph_free(f);
    CHECK(run("prune q.pare --dequantize --scheme unstructured --sparsity 0.5 --finetune 0 --data synth --out p.pare "
              "--quiet",
              err, sizeof err) == 0);
    CHECK_OK(pare_graph_load(pare_test_path("p.pare"), &f));
    CHECK(pare_graph_quantized(f, NULL, NULL) == 0 && f->params[0].mask != NULL);
    pare_graph_free(f);
}
