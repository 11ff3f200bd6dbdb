/* Weight sharing: k-means over runs of weights (k-means++ seeding, guarded
 * Lloyd iterations), the Deep k-Means regulariser, SmartExchange (W ~ Ce B),
 * and pare_share, which applies them to a graph's conv and linear weights with
 * their training phases (docs/ALGORITHMS.md, "Weight sharing"). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/share.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "graph/exec.h"
#include "train/train.h"
#include "train/trainer.h"

/* graph.h's quantization scheme 3: a codebook. */
#define QSCHEME_CODEBOOK 3
#define QSCHEME_BASIS 4
#define K_MAX 256
#define D_MAX 16

/* ---- k-means ---------------------------------------------------------------- */

static int run_kept(const uint8_t *m, int d)
{
    if (!m)
        return 1;
    for (int j = 0; j < d; j++)
        if (m[j])
            return 1;
    return 0;
}

static double dist2(const float *x, const uint8_t *m, const float *c, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++) {
        if (m && !m[j])
            continue;
        double t = (double)x[j] - (double)c[j];
        s += t * t;
    }
    return s;
}

int pare_kmeans_nearest(const float *x, const uint8_t *m, int d, const float *c, int k,
                        double *dist)
{
    int best = 0;
    double bd = dist2(x, m, c, d);
    for (int i = 1; i < k; i++) {
        double t = dist2(x, m, c + (size_t)i * (size_t)d, d);
        if (t < bd) {
            bd = t;
            best = i;
        }
    }
    if (dist)
        *dist = bd;
    return best;
}

/* Scalar runs: the centroids sorted, so the nearest is a binary search away
 * instead of k distances. It must agree with pare_kmeans_nearest exactly
 * (distances in double, ties to the lower index), and does: equal values share
 * their lowest index, and the scan widens while neighbours tie. */
typedef struct sorted1 {
    int n;           /* distinct values */
    double *v;       /* ascending */
    int *idx;        /* the lowest centroid index with that value */
} sorted1;

static int cmp_vi(const void *a, const void *b)
{
    const double *x = a, *y = b; /* pairs (value, index) */
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* 0 when a centroid is not finite (then the brute force decides). */
static int sorted1_build(sorted1 *s, const float *c, int k, double *pairs)
{
    for (int i = 0; i < k; i++) {
        if (!isfinite(c[i]))
            return 0;
        pairs[2 * i] = c[i];
        pairs[2 * i + 1] = i;
    }
    qsort(pairs, (size_t)k, 2 * sizeof(double), cmp_vi);
    s->n = 0;
    for (int i = 0; i < k; i++) {
        if (s->n > 0 && s->v[s->n - 1] == pairs[2 * i])
            continue; /* sorted by index within a value: the first is the lowest */
        s->v[s->n] = pairs[2 * i];
        s->idx[s->n] = (int)pairs[2 * i + 1];
        s->n++;
    }
    return 1;
}

static int sorted1_nearest(const sorted1 *s, float xf, double *dist)
{
    double x = xf;
    int lo = 0, hi = s->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    int best = -1;
    double bd = 0;
    /* lo: the first value >= x. Walk outwards while a value is as near. */
    for (int i = lo - 1; i >= 0; i--) {
        double t = (x - s->v[i]) * (x - s->v[i]);
        if (best >= 0 && t > bd)
            break;
        if (best < 0 || t < bd || (t == bd && s->idx[i] < best)) {
            bd = t;
            best = s->idx[i];
        }
    }
    for (int i = lo; i < s->n; i++) {
        double t = (s->v[i] - x) * (s->v[i] - x);
        if (best >= 0 && t > bd)
            break;
        if (best < 0 || t < bd || (t == bd && s->idx[i] < best)) {
            bd = t;
            best = s->idx[i];
        }
    }
    *dist = bd;
    return best;
}

static pare_status seed_centroids(const float *x, const uint8_t *mask, size_t n, int d, int k,
                                  uint64_t seed, float *centroids, int nt)
{
    if (d < 1 || k < 1 || !x || !centroids)
        return pare_fail(PARE_EINVAL, "k-means needs runs of at least 1 value and 1 centroid");
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += run_kept(mask ? mask + i * (size_t)d : NULL, d);
    if ((size_t)k > kept)
        return pare_fail(PARE_EINVAL, "k-means++ cannot seed %d centroids from %zu runs", k, kept);
    double *D = pare_alloc_array(n ? n : 1, sizeof(double), 0);
    if (!D)
        return pare_fail(PARE_ENOMEM, "out of memory seeding k-means");
    pare_rng r;
    pare_rng_seed(&r, seed, 0x6b6d65616e73ull, (uint64_t)d, (uint64_t)k);
    /* The first centre: uniform among the kept runs. */
    size_t want = (size_t)pare_rng_below(&r, kept), pick = 0;
    for (size_t i = 0, seen = 0; i < n; i++) {
        if (!run_kept(mask ? mask + i * (size_t)d : NULL, d))
            continue;
        if (seen++ == want) {
            pick = i;
            break;
        }
    }
    for (int c = 0;; c++) {
        float *cc = centroids + (size_t)c * (size_t)d;
        memcpy(cc, x + pick * (size_t)d, sizeof(float) * (size_t)d);
        if (c + 1 == k)
            break;
        /* Distances to the nearest centre so far: independent per run, so the
         * threads cannot change them. */
        long nn = (long)n;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > 65536)
        for (long i = 0; i < nn; i++) {
            const uint8_t *m = mask ? mask + (size_t)i * (size_t)d : NULL;
            if (!run_kept(m, d)) {
                D[i] = 0;
                continue;
            }
            double t = dist2(x + (size_t)i * (size_t)d, m, cc, d);
            D[i] = c == 0 || t < D[i] ? t : D[i];
        }
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += D[i];
        if (total > 0 && isfinite(total)) {
            double u = pare_rng_uniform_d(&r) * total, acc = 0;
            pick = SIZE_MAX;
            size_t last = 0;
            for (size_t i = 0; i < n; i++) {
                if (D[i] <= 0)
                    continue;
                last = i;
                acc += D[i];
                if (acc > u) {
                    pick = i;
                    break;
                }
            }
            if (pick == SIZE_MAX)
                pick = last; /* u rounded to the very top of the sum */
        } else {
            /* Every run sits on a centre already (or a distance is not a
             * number): the remaining centres repeat a uniform run. */
            want = (size_t)pare_rng_below(&r, kept);
            for (size_t i = 0, seen = 0; i < n; i++) {
                if (!run_kept(mask ? mask + i * (size_t)d : NULL, d))
                    continue;
                if (seen++ == want) {
                    pick = i;
                    break;
                }
            }
        }
    }
    pare_free(D);
    return PARE_OK;
}

pare_status pare_kmeans_seed(const float *x, const uint8_t *mask, size_t n, int d, int k,
                             uint64_t seed, float *centroids)
{
    return seed_centroids(x, mask, n, d, k, seed, centroids, pare_threads_resolve(0));
}

/* Assigns every run to its nearest centroid; dist[i] its squared distance (0
 * for a run with nothing kept, assign -1). Returns how many assignments
 * changed. Runs are independent: the result does not depend on threads. */
static size_t assign_all(const float *x, const uint8_t *mask, size_t n, int d, const float *c,
                         int k, int32_t *assign, double *dist, sorted1 *s1, double *pairs, int nt)
{
    int fast = d == 1 && k > 8 && sorted1_build(s1, c, k, pairs);
    long nn = (long)n;
    size_t changed = 0;
#pragma omp parallel for schedule(static) reduction(+ : changed) num_threads(nt) if (n > 16384)
    for (long i = 0; i < nn; i++) {
        const uint8_t *m = mask ? mask + (size_t)i * (size_t)d : NULL;
        const float *xi = x + (size_t)i * (size_t)d;
        int a = -1;
        double t = 0;
        if (run_kept(m, d))
            a = fast && isfinite(xi[0]) ? sorted1_nearest(s1, xi[0], &t)
                                        : pare_kmeans_nearest(xi, m, d, c, k, &t);
        changed += assign[i] != a;
        assign[i] = a;
        dist[i] = t;
    }
    return changed;
}

/* One update: each centroid moves to its members' mean (per coordinate, over
 * kept ones) when that does not increase their summed distance; an empty
 * cluster takes the run farthest from its centroid. Serial, in run order:
 * sums do not depend on threads. */
static void update_centroids(const float *x, const uint8_t *mask, size_t n, int d, float *c, int k,
                             int32_t *assign, double *dist, double *sum, int32_t *cnt, float *mean,
                             double *sse)
{
    size_t kd = (size_t)k * (size_t)d;
    memset(sum, 0, sizeof(double) * kd);
    memset(cnt, 0, sizeof(int32_t) * kd);
    for (size_t i = 0; i < n; i++) {
        if (assign[i] < 0)
            continue;
        const float *xi = x + i * (size_t)d;
        const uint8_t *m = mask ? mask + i * (size_t)d : NULL;
        size_t b = (size_t)assign[i] * (size_t)d;
        for (int j = 0; j < d; j++)
            if (!m || m[j]) {
                sum[b + (size_t)j] += xi[j];
                cnt[b + (size_t)j]++;
            }
    }
    for (size_t e = 0; e < kd; e++)
        mean[e] = cnt[e] ? (float)(sum[e] / cnt[e]) : c[e];
    /* sse[2c]: with the old centroid, sse[2c + 1]: with the mean. */
    memset(sse, 0, sizeof(double) * 2 * (size_t)k);
    for (size_t i = 0; i < n; i++) {
        if (assign[i] < 0)
            continue;
        const float *xi = x + i * (size_t)d;
        const uint8_t *m = mask ? mask + i * (size_t)d : NULL;
        size_t a = (size_t)assign[i];
        sse[2 * a] += dist2(xi, m, c + a * (size_t)d, d);
        sse[2 * a + 1] += dist2(xi, m, mean + a * (size_t)d, d);
    }
    int32_t *members = cnt; /* reused: the counts are not needed any more */
    for (int a = 0; a < k; a++)
        members[a] = 0;
    for (size_t i = 0; i < n; i++)
        if (assign[i] >= 0)
            members[assign[i]]++;
    for (int a = 0; a < k; a++)
        if (members[a] > 0 && sse[2 * a + 1] <= sse[2 * a])
            memcpy(c + (size_t)a * (size_t)d, mean + (size_t)a * (size_t)d,
                   sizeof(float) * (size_t)d);
    /* dist[] belongs to the old centroids; it is only used to rank runs for
     * the empty clusters, after which the caller reassigns everything. */
    for (int a = 0; a < k; a++) {
        if (members[a] > 0)
            continue;
        size_t far = SIZE_MAX;
        double fd = 0;
        for (size_t i = 0; i < n; i++)
            if (assign[i] >= 0 && dist[i] > fd && members[assign[i]] > 1) {
                fd = dist[i];
                far = i;
            }
        if (far == SIZE_MAX)
            break; /* every run sits on its centroid: nothing to split */
        const float *xf = x + far * (size_t)d;
        const uint8_t *m = mask ? mask + far * (size_t)d : NULL;
        float *ca = c + (size_t)a * (size_t)d;
        for (int j = 0; j < d; j++)
            ca[j] = !m || m[j] ? xf[j] : 0.0f;
        members[assign[far]]--;
        members[a] = 1;
        assign[far] = a;
        dist[far] = 0;
    }
}

typedef struct lloyd_ws {
    double *dist, *sum, *sse, *pairs;
    int32_t *cnt;
    float *mean;
    sorted1 s1;
} lloyd_ws;

static void ws_free(lloyd_ws *w)
{
    pare_free(w->dist);
    free(w->sum);
    free(w->sse);
    free(w->pairs);
    free(w->cnt);
    free(w->mean);
    free(w->s1.v);
    free(w->s1.idx);
    memset(w, 0, sizeof *w);
}

static pare_status ws_new(lloyd_ws *w, size_t n, int d, int k)
{
    size_t kd = (size_t)k * (size_t)d;
    memset(w, 0, sizeof *w);
    w->dist = pare_alloc_array(n ? n : 1, sizeof(double), 1);
    w->sum = malloc(sizeof(double) * kd);
    w->sse = malloc(sizeof(double) * 2 * (size_t)k);
    w->pairs = malloc(sizeof(double) * 2 * (size_t)k);
    w->cnt = malloc(sizeof(int32_t) * (kd > (size_t)k ? kd : (size_t)k));
    w->mean = malloc(sizeof(float) * kd);
    w->s1.v = malloc(sizeof(double) * (size_t)k);
    w->s1.idx = malloc(sizeof(int) * (size_t)k);
    if (!w->dist || !w->sum || !w->sse || !w->pairs || !w->cnt || !w->mean || !w->s1.v ||
        !w->s1.idx) {
        ws_free(w);
        return pare_fail(PARE_ENOMEM, "out of memory for k-means");
    }
    return PARE_OK;
}

static double total_of(const double *dist, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += dist[i];
    return s;
}

/* Lloyd iterations from the centroids in r (assignments made first).
 * trace (may be NULL) gets the inertia after the first assignment and after
 * each iteration. */
static pare_status lloyd(const float *x, const uint8_t *mask, size_t n, pare_kmeans_result *r,
                         int max_iters, double *trace, int nt)
{
    lloyd_ws w;
    pare_status s = ws_new(&w, n, r->d, r->k);
    if (s != PARE_OK)
        return s;
    for (size_t i = 0; i < n; i++)
        r->assign[i] = -2; /* everything counts as changed the first time */
    assign_all(x, mask, n, r->d, r->centroids, r->k, r->assign, w.dist, &w.s1, w.pairs, nt);
    r->inertia = total_of(w.dist, n);
    if (trace)
        trace[0] = r->inertia;
    r->iters = 0;
    for (int it = 1; it <= max_iters; it++) {
        update_centroids(x, mask, n, r->d, r->centroids, r->k, r->assign, w.dist, w.sum, w.cnt,
                         w.mean, w.sse);
        size_t changed =
            assign_all(x, mask, n, r->d, r->centroids, r->k, r->assign, w.dist, &w.s1, w.pairs, nt);
        r->inertia = total_of(w.dist, n);
        r->iters = it;
        if (trace)
            trace[it] = r->inertia;
        if (changed == 0)
            break;
    }
    ws_free(&w);
    return PARE_OK;
}

void pare_kmeans_free(pare_kmeans_result *r)
{
    if (!r)
        return;
    free(r->centroids);
    pare_free(r->assign);
    free(r->trace);
    memset(r, 0, sizeof *r);
}

pare_status pare_kmeans(const float *x, const uint8_t *mask, size_t n, int d, int k, uint64_t seed,
                        int max_iters, int threads, pare_kmeans_result *out)
{
    int nt = pare_threads_resolve(threads); /* results do not depend on it */
    memset(out, 0, sizeof *out);
    if (!x || d < 1 || k < 1 || max_iters < 0)
        return pare_fail(PARE_EINVAL,
                         "k-means needs values, runs of at least 1, at least 1 centroid and a "
                         "non-negative iteration count");
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += run_kept(mask ? mask + i * (size_t)d : NULL, d);
    out->d = d;
    out->k = kept == 0 ? 1 : (size_t)k > kept ? (int)kept : k;
    out->centroids = calloc((size_t)out->k * (size_t)d, sizeof(float));
    out->assign = pare_alloc_array(n ? n : 1, sizeof(int32_t), 0);
    out->trace = calloc((size_t)max_iters + 1, sizeof(double));
    if (!out->centroids || !out->assign || !out->trace) {
        pare_kmeans_free(out);
        return pare_fail(PARE_ENOMEM, "out of memory for k-means");
    }
    if (kept == 0) {
        for (size_t i = 0; i < n; i++)
            out->assign[i] = -1;
        return PARE_OK;
    }
    pare_status s = seed_centroids(x, mask, n, d, out->k, seed, out->centroids, nt);
    if (s == PARE_OK)
        s = lloyd(x, mask, n, out, max_iters, out->trace, nt);
    if (s != PARE_OK)
        pare_kmeans_free(out);
    return s;
}

/* ---- small dense linear algebra (d <= 16) ------------------------------------ */

/* Solves (A + ridge I) x = b for a symmetric positive semi-definite A (n x n,
 * overwritten) by Cholesky; the ridge keeps a singular A (a basis direction
 * no run uses) solvable. */
static void spd_solve(double *A, double *b, int n)
{
    double tr = 0;
    for (int i = 0; i < n; i++)
        tr += A[i * n + i];
    double ridge = 1e-12 * (tr > 0 ? tr / n : 1.0) + 1e-300;
    for (int i = 0; i < n; i++)
        A[i * n + i] += ridge;
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++)
            s -= A[j * n + k] * A[j * n + k];
        double l = s > 0 ? sqrt(s) : sqrt(ridge);
        A[j * n + j] = l;
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++)
                t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / l;
        }
    }
    for (int i = 0; i < n; i++) {
        double t = b[i];
        for (int k = 0; k < i; k++)
            t -= A[i * n + k] * b[k];
        b[i] = t / A[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double t = b[i];
        for (int k = i + 1; k < n; k++)
            t -= A[k * n + i] * b[k];
        b[i] = t / A[i * n + i];
    }
}

/* Eigen-decomposition of a symmetric n x n matrix by cyclic Jacobi rotations:
 * A is destroyed, w gets the eigenvalues, V (row-major) the eigenvectors as
 * columns. */
static void jacobi_eigen(double *A, int n, double *w, double *V)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            V[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += A[p * n + q] * A[p * n + q];
        if (off < 1e-30)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++)
        w[i] = A[i * n + i];
}

/* ---- the Deep k-Means regulariser ------------------------------------------- */

void pare_share_reg_free(pare_share_reg *r)
{
    if (!r)
        return;
    free(r->F);
    pare_kmeans_free(&r->km);
    free(r->sum);
    free(r->cnt);
    memset(r, 0, sizeof *r);
}

pare_status pare_share_reg_init(pare_share_reg *r, const float *w, const uint8_t *mask, size_t n,
                                int d, int k, float lambda, uint64_t seed, int threads)
{
    memset(r, 0, sizeof *r);
    if (d < 1 || k < 1 || n % (size_t)d != 0)
        return pare_fail(PARE_EINVAL, "the regulariser needs runs of d >= 1 dividing %zu values", n);
    r->n = n;
    r->d = d;
    r->k = k;
    r->runs = n / (size_t)d;
    r->lambda = lambda;
    r->mask = mask;
    r->spectral = k < d;
    r->seed = seed;
    r->threads = threads;
    if (r->spectral) {
        r->F = calloc(r->runs * (size_t)k + 1, sizeof(float));
        if (!r->F)
            return pare_fail(PARE_ENOMEM, "out of memory for the regulariser");
    } else {
        r->sum = malloc(sizeof(double) * (size_t)k * (size_t)d);
        r->cnt = malloc(sizeof(int32_t) * (size_t)k * (size_t)d);
        if (!r->sum || !r->cnt) {
            pare_share_reg_free(r);
            return pare_fail(PARE_ENOMEM, "out of memory for the regulariser");
        }
        pare_status s = pare_kmeans(w, mask, r->runs, d, k, seed, 20, threads, &r->km);
        if (s != PARE_OK) {
            pare_share_reg_free(r);
            return s;
        }
        r->k = r->km.k;
        return PARE_OK;
    }
    pare_status s = pare_share_reg_refresh(r, w);
    if (s != PARE_OK)
        pare_share_reg_free(r);
    return s;
}

pare_status pare_share_reg_refresh(pare_share_reg *r, const float *w)
{
    if (!r->spectral)
        return lloyd(w, r->mask, r->runs, &r->km, 5, NULL, pare_threads_resolve(r->threads));
    int d = r->d, K = r->k;
    double M[D_MAX * D_MAX], V[D_MAX * D_MAX], ev[D_MAX];
    memset(M, 0, sizeof M);
    /* X X^T (d x d): its eigenvectors are X's left singular vectors u, and
     * F's columns X^T u / sigma the right ones. Pruned values are 0. */
    for (size_t i = 0; i < r->runs; i++) {
        const float *x = w + i * (size_t)d;
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                M[a * d + b] += (double)x[a] * x[b];
    }
    jacobi_eigen(M, d, ev, V);
    int order[D_MAX];
    for (int i = 0; i < d; i++)
        order[i] = i;
    for (int i = 1; i < d; i++) /* descending eigenvalues, stable */
        for (int j = i; j > 0 && ev[order[j]] > ev[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int c = 0; c < K; c++) {
        int e = order[c];
        double sigma = ev[e] > 0 ? sqrt(ev[e]) : 0;
        for (size_t i = 0; i < r->runs; i++) {
            double t = 0;
            if (sigma > 0)
                for (int a = 0; a < d; a++)
                    t += V[a * d + e] * w[i * (size_t)d + (size_t)a];
            r->F[i * (size_t)K + (size_t)c] = sigma > 0 ? (float)(t / sigma) : 0.0f;
        }
    }
    return PARE_OK;
}

double pare_share_reg_eval(pare_share_reg *r, const float *w, float *grad)
{
    int d = r->d;
    const uint8_t *mask = r->mask;
    double tr = 0, fit = 0;
    for (size_t e = 0; e < r->n; e++)
        if (!mask || mask[e])
            tr += (double)w[e] * w[e];
    if (r->spectral) {
        int K = r->k;
        double A[D_MAX * K_MAX]; /* X F: d x K */
        memset(A, 0, sizeof(double) * (size_t)d * (size_t)K);
        for (size_t i = 0; i < r->runs; i++)
            for (int a = 0; a < d; a++) {
                double x = w[i * (size_t)d + (size_t)a];
                for (int c = 0; c < K; c++)
                    A[a * K + c] += x * r->F[i * (size_t)K + (size_t)c];
            }
        for (int e = 0; e < d * K; e++)
            fit += A[e] * A[e];
        if (grad)
            for (size_t i = 0; i < r->runs; i++)
                for (int a = 0; a < d; a++) {
                    size_t e = i * (size_t)d + (size_t)a;
                    if (mask && !mask[e])
                        continue;
                    double p = 0;
                    for (int c = 0; c < K; c++)
                        p += A[a * K + c] * r->F[i * (size_t)K + (size_t)c];
                    grad[e] += (float)(r->lambda * (w[e] - p));
                }
        return 0.5 * r->lambda * (tr - fit);
    }
    /* The indicator: each run's cluster mean (per kept coordinate) in its place. */
    int k = r->k;
    size_t kd = (size_t)k * (size_t)d;
    memset(r->sum, 0, sizeof(double) * kd);
    memset(r->cnt, 0, sizeof(int32_t) * kd);
    const int32_t *as = r->km.assign;
    for (size_t i = 0; i < r->runs; i++) {
        if (as[i] < 0)
            continue;
        for (int a = 0; a < d; a++) {
            size_t e = i * (size_t)d + (size_t)a;
            if (mask && !mask[e])
                continue;
            r->sum[(size_t)as[i] * (size_t)d + (size_t)a] += w[e];
            r->cnt[(size_t)as[i] * (size_t)d + (size_t)a]++;
        }
    }
    double pen = 0;
    for (size_t i = 0; i < r->runs; i++) {
        if (as[i] < 0)
            continue;
        for (int a = 0; a < d; a++) {
            size_t e = i * (size_t)d + (size_t)a, c = (size_t)as[i] * (size_t)d + (size_t)a;
            if (mask && !mask[e])
                continue;
            double diff = w[e] - r->sum[c] / r->cnt[c];
            pen += diff * diff;
            if (grad)
                grad[e] += (float)(r->lambda * diff);
        }
    }
    (void)fit;
    return 0.5 * r->lambda * pen;
}

/* ---- SmartExchange ------------------------------------------------------------ */

void pare_smartex_free(pare_smartex *se)
{
    if (!se)
        return;
    free(se->B);
    pare_free(se->Ce);
    memset(se, 0, sizeof *se);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The power of two nearest to v > 0 (in value, not in its logarithm). */
static int nearest_exp(double v)
{
    int e;
    double m = frexp(v, &e); /* v = m 2^e, m in [0.5, 1) */
    return m >= 0.75 ? e : e - 1;
}

/* Ce's entries rounded onto {0, +-2^p : pmin <= p <= pmax}, the smallest
 * `sparsity` of them (by magnitude, among rows with anything kept) zeroed
 * first. Returns the nonzero count. */
static size_t se_project(float *Ce, const uint8_t *mask, size_t rows, int S, int exp_bits,
                         double sparsity, double *mags, int *pmax_out)
{
    size_t m = 0, nz = 0;
    double cmax = 0;
    for (size_t r = 0; r < rows; r++) {
        if (!run_kept(mask ? mask + r * (size_t)S : NULL, S))
            continue;
        for (int s = 0; s < S; s++) {
            double v = fabs(Ce[r * (size_t)S + (size_t)s]);
            mags[m++] = v;
            if (v > cmax)
                cmax = v;
        }
    }
    double tau = -1;
    if (sparsity > 0 && m > 0) {
        qsort(mags, m, sizeof(double), cmp_double);
        size_t cut = (size_t)floor(sparsity * (double)m + 1e-9);
        tau = cut > 0 ? mags[cut - 1] : -1;
    }
    int pmax = cmax > 0 ? nearest_exp(cmax) : 0, pmin = pmax - ((1 << exp_bits) - 1);
    *pmax_out = pmax;
    for (size_t r = 0; r < rows; r++) {
        int kept = run_kept(mask ? mask + r * (size_t)S : NULL, S);
        for (int s = 0; s < S; s++) {
            float *c = &Ce[r * (size_t)S + (size_t)s];
            double v = fabs(*c);
            if (!kept || !(v > tau) || !(v > 0) || !isfinite(v)) {
                *c = 0.0f;
                continue;
            }
            int p = nearest_exp(v);
            if (p < pmin) {
                /* Between 0 and 2^pmin: the nearer of the two. */
                if (v < ldexp(1.0, pmin - 1)) {
                    *c = 0.0f;
                    continue;
                }
                p = pmin;
            }
            *c = (float)ldexp(*c < 0 ? -1.0 : 1.0, p);
            nz++;
        }
    }
    return nz;
}

/* Ce <- least squares given B, row by row, over each row's kept coordinates. */
static void se_fit_ce(const float *w, const uint8_t *mask, size_t rows, int S, const float *B,
                      float *Ce)
{
    long nr = (long)rows;
    int nt = pare_threads_resolve(0);
#pragma omp parallel for schedule(static) num_threads(nt) if (rows > 4096)
    for (long r = 0; r < nr; r++) {
        double G[D_MAX * D_MAX], h[D_MAX];
        const float *x = w + (size_t)r * (size_t)S;
        const uint8_t *m = mask ? mask + (size_t)r * (size_t)S : NULL;
        float *c = Ce + (size_t)r * (size_t)S;
        if (!run_kept(m, S)) {
            memset(c, 0, sizeof(float) * (size_t)S);
            continue;
        }
        for (int a = 0; a < S; a++) {
            h[a] = 0;
            for (int b = 0; b < S; b++) {
                double t = 0;
                for (int j = 0; j < S; j++)
                    if (!m || m[j])
                        t += (double)B[a * S + j] * B[b * S + j];
                G[a * S + b] = t;
            }
            for (int j = 0; j < S; j++)
                if (!m || m[j])
                    h[a] += (double)B[a * S + j] * x[j];
        }
        spd_solve(G, h, S);
        for (int a = 0; a < S; a++)
            c[a] = (float)h[a];
    }
}

/* B <- least squares given Ce, column by column, over the rows that keep it. */
static void se_fit_b(const float *w, const uint8_t *mask, size_t rows, int S, const float *Ce,
                     float *B)
{
    for (int j = 0; j < S; j++) {
        double G[D_MAX * D_MAX], h[D_MAX];
        memset(G, 0, sizeof G);
        memset(h, 0, sizeof h);
        for (size_t r = 0; r < rows; r++) {
            size_t e = r * (size_t)S + (size_t)j;
            if (mask && !mask[e])
                continue;
            const float *c = Ce + r * (size_t)S;
            for (int a = 0; a < S; a++) {
                if (c[a] == 0)
                    continue;
                h[a] += (double)c[a] * w[e];
                for (int b = 0; b < S; b++)
                    G[a * S + b] += (double)c[a] * c[b];
            }
        }
        spd_solve(G, h, S);
        for (int a = 0; a < S; a++)
            B[a * S + j] = (float)h[a];
    }
}

static double se_error(const float *w, const uint8_t *mask, size_t rows, int S, const float *Ce,
                       const float *B)
{
    double e = 0;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < S; j++) {
            size_t i = r * (size_t)S + (size_t)j;
            if (mask && !mask[i])
                continue;
            double t = (double)w[i] - pare_qparams_basis_value(Ce, B, S, r, j);
            e += t * t;
        }
    return e;
}

pare_status pare_smartex_fit(const float *w, const uint8_t *mask, size_t n, int S, int exp_bits,
                             double sparsity, int iters, double *err, pare_smartex *out)
{
    memset(out, 0, sizeof *out);
    if (S < 1 || S > D_MAX || n % (size_t)S != 0 || exp_bits < 1 || exp_bits > 8 || iters < 0 ||
        !(sparsity >= 0 && sparsity < 1))
        return pare_fail(PARE_EINVAL,
                         "SmartExchange needs a basis of 1 to %d dividing the %zu values, 1 to 8 "
                         "exponent bits and a sparsity in [0, 1)",
                         D_MAX, n);
    size_t rows = n / (size_t)S, ss = (size_t)S * (size_t)S;
    out->S = S;
    out->rows = rows;
    out->B = malloc(sizeof(float) * ss);
    out->Ce = pare_alloc_array(n ? n : 1, sizeof(float), 1);
    float *B = malloc(sizeof(float) * ss), *Ce = pare_alloc_array(n ? n : 1, sizeof(float), 1);
    double *mags = pare_alloc_array(n ? n : 1, sizeof(double), 0);
    if (!out->B || !out->Ce || !B || !Ce || !mags) {
        free(B);
        pare_free(Ce);
        pare_free(mags);
        pare_smartex_free(out);
        return pare_fail(PARE_ENOMEM, "out of memory for SmartExchange");
    }
    double norm = 0;
    for (size_t e = 0; e < n; e++)
        if (!mask || mask[e])
            norm += (double)w[e] * w[e];
    if (!(norm > 0))
        norm = 1;
    /* Start: B = I, so Ce is the weights themselves, projected. */
    for (size_t e = 0; e < ss; e++)
        B[e] = e % ((size_t)S + 1) == 0 ? 1.0f : 0.0f;
    for (size_t e = 0; e < n; e++)
        Ce[e] = !mask || mask[e] ? w[e] : 0.0f;
    int pmax;
    size_t nz = se_project(Ce, mask, rows, S, exp_bits, sparsity, mags, &pmax);
    double cur = se_error(w, mask, rows, S, Ce, B);
    if (err)
        err[0] = cur / norm;
    double best = cur;
    memcpy(out->B, B, sizeof(float) * ss);
    memcpy(out->Ce, Ce, sizeof(float) * n);
    out->nonzeros = nz;
    out->pmax = pmax;
    for (int it = 1; it <= iters; it++) {
        /* B given Ce is exact least squares: (Ce, new B) is never worse than
         * (Ce, old B), so it is a candidate too. */
        se_fit_b(w, mask, rows, S, Ce, B);
        cur = se_error(w, mask, rows, S, Ce, B);
        if (cur < best) {
            best = cur;
            memcpy(out->B, B, sizeof(float) * ss);
            memcpy(out->Ce, Ce, sizeof(float) * n);
            out->nonzeros = nz;
            out->pmax = pmax;
        }
        se_fit_ce(w, mask, rows, S, B, Ce);
        nz = se_project(Ce, mask, rows, S, exp_bits, sparsity, mags, &pmax);
        cur = se_error(w, mask, rows, S, Ce, B);
        if (err)
            err[it] = cur / norm;
        if (cur < best) {
            best = cur;
            memcpy(out->B, B, sizeof(float) * ss);
            memcpy(out->Ce, Ce, sizeof(float) * n);
            out->nonzeros = nz;
            out->pmax = pmax;
        }
    }
    out->error = best / norm;
    free(B);
    pare_free(Ce);
    pare_free(mags);
    return PARE_OK;
}

void pare_smartex_apply(const pare_smartex *se, const uint8_t *mask, float *w)
{
    int S = se->S;
    for (size_t r = 0; r < se->rows; r++)
        for (int j = 0; j < S; j++) {
            size_t e = r * (size_t)S + (size_t)j;
            w[e] = !mask || mask[e] ? pare_qparams_basis_value(se->Ce, se->B, S, r, j) : 0.0f;
        }
}

pare_status pare_smartex_set(pare_param *p, const pare_smartex *se, int exp_bits)
{
    size_t n = p->t->n;
    int S = se->S;
    if (S < 1 || S > D_MAX || exp_bits < 1 || exp_bits > 8 || se->rows * (size_t)S != n ||
        p->t->dims[p->t->ndim - 1] % S != 0)
        return pare_fail(PARE_EINVAL, "tensor '%s': a SmartExchange basis of %d x %d does not fit it",
                         p->name, S, S);
    int pmin = se->pmax - ((1 << exp_bits) - 1);
    if (se->pmax < -149 || se->pmax > 127)
        return pare_fail(PARE_EINVAL, "tensor '%s': SmartExchange coefficients up to 2^%d are out of float's range",
                         p->name, se->pmax);
    for (size_t e = 0; e < n; e++) {
        float c = fabsf(se->Ce[e]);
        int ex;
        if (c != 0 && (frexpf(c, &ex) != 0.5f || ex - 1 < pmin || ex - 1 > se->pmax))
            return pare_fail(PARE_EINVAL, "tensor '%s': SmartExchange coefficient %zu is %g, not 0 or "
                             "a power of two from 2^%d to 2^%d",
                             p->name, e, (double)se->Ce[e], pmin, se->pmax);
    }
    pare_qparams q = {0};
    q.bits = 1 + exp_bits;
    q.scheme = QSCHEME_BASIS;
    q.n = 1;
    q.k = q.d = S;
    q.scale = malloc(sizeof(float));
    q.zero_point = calloc(1, sizeof(int32_t));
    q.codebook = malloc(sizeof(float) * (size_t)S * (size_t)S);
    q.coef = malloc(sizeof(float) * (n ? n : 1));
    if (!q.scale || !q.zero_point || !q.codebook || !q.coef) {
        pare_qparams_clear(&q);
        return pare_fail(PARE_ENOMEM, "out of memory for the basis of '%s'", p->name);
    }
    q.scale[0] = ldexpf(1.0f, se->pmax);
    memcpy(q.codebook, se->B, sizeof(float) * (size_t)S * (size_t)S);
    memcpy(q.coef, se->Ce, sizeof(float) * n);
    pare_smartex_apply(se, p->mask, p->t->data);
    pare_qparams_clear(&p->q);
    p->q = q;
    return PARE_OK;
}

/* ---- applying it to a graph ---------------------------------------------------- */

int pare_share_run_length(const pare_tensor *w, int sub)
{
    if (sub > 0)
        return sub;
    return w->ndim == 4 ? w->dims[3] : 1;
}

static int codebook_bits(int k)
{
    int b = 1;
    while ((1 << b) < k)
        b++;
    return b;
}

pare_status pare_share_set(pare_param *p, int k, int d, const float *codebook,
                           const int32_t *assign)
{
    if (k < 1 || k > K_MAX || d < 1 || d > D_MAX || p->t->n % (size_t)d != 0)
        return pare_fail(PARE_EINVAL,
                         "tensor '%s': a codebook of %d rows of %d values does not fit it", p->name,
                         k, d);
    size_t kd = (size_t)k * (size_t)d;
    float *cb = malloc(sizeof(float) * kd);
    if (!cb)
        return pare_fail(PARE_ENOMEM, "out of memory for the codebook of '%s'", p->name);
    memcpy(cb, codebook, sizeof(float) * kd);
    size_t runs = p->t->n / (size_t)d;
    for (size_t i = 0; i < runs; i++) {
        const float *row = cb + (size_t)(assign[i] < 0 ? 0 : assign[i]) * (size_t)d;
        for (int j = 0; j < d; j++) {
            size_t e = i * (size_t)d + (size_t)j;
            p->t->data[e] = !p->mask || p->mask[e] ? row[j] : 0.0f;
        }
    }
    pare_qparams_clear(&p->q);
    p->q.bits = codebook_bits(k);
    p->q.scheme = QSCHEME_CODEBOOK;
    p->q.k = k;
    p->q.d = d;
    p->q.codebook = cb;
    return PARE_OK;
}

void pare_share_options_init(pare_share_options *o)
{
    memset(o, 0, sizeof *o);
    o->k = 16;
    o->max_iters = 50;
    o->reg_epochs = 1;
    o->reg_every = 50;
    pare_train_config_init(&o->train);
    o->train.lr = 0.01f;
    o->se_exp_bits = 3;
    o->se_sparsity = 0.5f;
    o->se_iters = 10;
}

void pare_share_result_free(pare_share_result *r)
{
    if (!r)
        return;
    free(r->layers);
    memset(r, 0, sizeof *r);
}

/* One shared layer while pare_share works on it. */
typedef struct slayer {
    int node, param, d;
    pare_share_reg reg;
    pare_kmeans_result km;
    pare_smartex se;
    float *before;      /* the weights right before sharing */
} slayer;

typedef struct sstate {
    pare_graph *g;
    const pare_share_options *o;
    slayer *l;
    int n;
    pare_status err;
} sstate;

static void reg_after_backward(pare_trainer *t, void *user)
{
    sstate *st = user;
    pare_exec *e = pare_trainer_exec(t);
    for (int i = 0; i < st->n; i++) {
        slayer *L = &st->l[i];
        float *gr = pare_exec_param_grad(e, L->param);
        if (gr)
            pare_share_reg_eval(&L->reg, st->g->params[L->param].t->data, gr);
    }
}

static void reg_after_step(pare_trainer *t, void *user)
{
    sstate *st = user;
    long step = pare_trainer_global_step(t);
    if (st->err || st->o->reg_every <= 0 || step % st->o->reg_every != 0)
        return;
    for (int i = 0; i < st->n && !st->err; i++)
        st->err = pare_share_reg_refresh(&st->l[i].reg, st->g->params[st->l[i].param].t->data);
}

/* Centroid fine-tuning: every member of a centroid gets the mean of its
 * members' gradients (per kept coordinate), so all of them take the same
 * optimizer step and stay equal; that is the centroid's own gradient (the
 * sum) at a step size divided by the cluster's size, which keeps a centroid
 * of 50,000 members from moving 50,000 times as far as a weight. */
static void ft_after_backward(pare_trainer *t, void *user)
{
    sstate *st = user;
    pare_exec *e = pare_trainer_exec(t);
    for (int i = 0; i < st->n; i++) {
        slayer *L = &st->l[i];
        float *gr = pare_exec_param_grad(e, L->param);
        if (!gr)
            continue;
        const pare_param *p = &st->g->params[L->param];
        int d = L->d, k = L->km.k;
        size_t runs = p->t->n / (size_t)d, kd = (size_t)k * (size_t)d;
        double *sum = L->reg.sum;
        int32_t *cnt = L->reg.cnt;
        memset(sum, 0, sizeof(double) * kd);
        memset(cnt, 0, sizeof(int32_t) * kd);
        for (size_t r = 0; r < runs; r++) {
            int32_t a = L->km.assign[r];
            if (a < 0)
                continue;
            for (int j = 0; j < d; j++) {
                size_t el = r * (size_t)d + (size_t)j;
                if (p->mask && !p->mask[el])
                    continue;
                sum[(size_t)a * (size_t)d + (size_t)j] += gr[el];
                cnt[(size_t)a * (size_t)d + (size_t)j]++;
            }
        }
        for (size_t r = 0; r < runs; r++) {
            int32_t a = L->km.assign[r];
            if (a < 0)
                continue;
            for (int j = 0; j < d; j++) {
                size_t el = r * (size_t)d + (size_t)j, c = (size_t)a * (size_t)d + (size_t)j;
                if (p->mask && !p->mask[el])
                    continue;
                gr[el] = (float)(sum[c] / cnt[c]);
            }
        }
    }
}

/* Reads the centroids back from their members (the first kept one of each
 * coordinate) and puts them in every member: the members took identical
 * steps, so this only guards against an optimizer that would not. */
static void ft_snap(sstate *st)
{
    for (int i = 0; i < st->n; i++) {
        slayer *L = &st->l[i];
        pare_param *p = &st->g->params[L->param];
        int d = L->d, k = L->km.k;
        size_t runs = p->t->n / (size_t)d;
        int32_t *seen = L->reg.cnt;
        memset(seen, 0, sizeof(int32_t) * (size_t)k * (size_t)d);
        for (size_t r = 0; r < runs; r++) {
            int32_t a = L->km.assign[r];
            if (a < 0)
                continue;
            for (int j = 0; j < d; j++) {
                size_t el = r * (size_t)d + (size_t)j, c = (size_t)a * (size_t)d + (size_t)j;
                if (p->mask && !p->mask[el])
                    continue;
                if (!seen[c]) {
                    L->km.centroids[c] = p->t->data[el];
                    seen[c] = 1;
                } else {
                    p->t->data[el] = L->km.centroids[c];
                }
            }
        }
    }
}

static void ft_after_step(pare_trainer *t, void *user)
{
    (void)t;
    ft_snap(user);
}

/* SmartExchange fine-tuning: plain (masked) training, the weights projected
 * back onto Ce B at every epoch's end. */
static void se_after_step(pare_trainer *t, void *user)
{
    sstate *st = user;
    long spe = pare_trainer_steps_per_epoch(t), step = pare_trainer_global_step(t);
    if (st->err || spe <= 0 || step % spe != 0)
        return;
    for (int i = 0; i < st->n && !st->err; i++) {
        slayer *L = &st->l[i];
        pare_param *p = &st->g->params[L->param];
        pare_smartex_free(&L->se);
        st->err = pare_smartex_fit(p->t->data, p->mask, p->t->n, L->d, st->o->se_exp_bits,
                                   st->o->se_sparsity, st->o->se_iters, NULL, &L->se);
        if (!st->err)
            pare_smartex_apply(&L->se, p->mask, p->t->data);
    }
}

static void slayers_free(slayer *l, int n)
{
    for (int i = 0; l && i < n; i++) {
        pare_share_reg_free(&l[i].reg);
        pare_kmeans_free(&l[i].km);
        pare_smartex_free(&l[i].se);
        pare_free(l[i].before);
    }
    free(l);
}

/* The conv and linear layers to share: o->layers by name, or all of them. */
static pare_status pick_layers(const pare_graph *g, const pare_share_options *o, slayer **out,
                               int *n)
{
    *out = NULL;
    *n = 0;
    slayer *l = calloc((size_t)(g->n_nodes > 0 ? g->n_nodes : 1), sizeof *l);
    if (!l)
        return pare_fail(PARE_ENOMEM, "out of memory");
    int m = 0;
    if (o->layers && *o->layers) {
        const char *s = o->layers;
        while (*s) {
            const char *end = strchr(s, ',');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            int found = -1;
            for (int i = 0; i < g->n_nodes; i++)
                if (strlen(g->nodes[i].name) == len && !strncmp(g->nodes[i].name, s, len))
                    found = i;
            if (found < 0 ||
                (g->nodes[found].op != PARE_OP_CONV2D && g->nodes[found].op != PARE_OP_LINEAR)) {
                free(l);
                return pare_fail(PARE_ENOTFOUND, "--layers: the model has no conv or linear layer "
                                 "named '%.*s'", (int)(len > 200 ? 200 : len), s);
            }
            int dup = 0;
            for (int j = 0; j < m; j++)
                dup |= l[j].node == found;
            if (!dup)
                l[m++].node = found;
            s += len;
            if (*s == ',')
                s++;
        }
    } else {
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].op == PARE_OP_CONV2D || g->nodes[i].op == PARE_OP_LINEAR)
                l[m++].node = i;
    }
    if (m == 0) {
        free(l);
        return pare_fail(PARE_EINVAL, "the model has no conv or linear layer to share");
    }
    for (int i = 0; i < m; i++) {
        const pare_node *nd = &g->nodes[l[i].node];
        l[i].param = pare_graph_node_param(g, l[i].node, PARE_ROLE_WEIGHT);
        const pare_param *p = &g->params[l[i].param];
        pare_status s = PARE_OK;
        if (p->q.bits != 0 && p->q.scheme != QSCHEME_CODEBOOK && p->q.scheme != QSCHEME_BASIS)
            s = pare_fail(PARE_EINVAL,
                          "layer %s is quantized to %d bits already; share the float model (or "
                          "dequantize it first)",
                          nd->name, p->q.bits);
        int d = pare_share_run_length(p->t, o->sub);
        int last = p->t->dims[p->t->ndim - 1];
        if (s == PARE_OK && (d < 1 || d > D_MAX))
            s = pare_fail(PARE_EINVAL, "layer %s: runs of %d values; 1 to %d are allowed",
                          nd->name, d, D_MAX);
        else if (s == PARE_OK && last % d != 0)
            s = pare_fail(PARE_ESHAPE,
                          "layer %s: runs of %d values do not divide its last dimension %d",
                          nd->name, d, last);
        if (s != PARE_OK) {
            free(l);
            return s;
        }
        l[i].d = d;
    }
    *out = l;
    *n = m;
    return PARE_OK;
}

pare_status pare_share(pare_graph *g, const pare_share_options *o, const pare_dataset *train,
                       const pare_dataset *test, pare_share_result *r)
{
    if (!g || !o || !r)
        return pare_fail(PARE_EINVAL, "pare_share needs a graph, options and a result");
    memset(r, 0, sizeof *r);
    r->acc_before = r->acc_reg = r->acc_shared = r->acc_final = -1;
    if (o->k < 1 || o->k > K_MAX)
        return pare_fail(PARE_EINVAL, "--k %d: 1 to %d centroids per layer", o->k, K_MAX);
    if (o->sub < 0 || o->sub > D_MAX)
        return pare_fail(PARE_EINVAL, "--sub %d: runs of 1 to %d values", o->sub, D_MAX);
    if (o->max_iters < 0 || o->reg < 0 || !isfinite(o->reg) || o->reg_epochs < 0 ||
        o->finetune_epochs < 0)
        return pare_fail(PARE_EINVAL, "pare_share: iterations, lambda and epochs are not negative");
    if (o->smartexchange && (o->se_exp_bits < 1 || o->se_exp_bits > 8 ||
                             !(o->se_sparsity >= 0 && o->se_sparsity < 1) || o->se_iters < 0))
        return pare_fail(PARE_EINVAL,
                         "SmartExchange takes 1 to 8 exponent bits and a sparsity in [0, 1)");
    if (o->smartexchange && o->reg > 0)
        return pare_fail(PARE_EINVAL, "the Deep k-Means regulariser (--reg) is for k-means, not "
                         "SmartExchange");
    int reg = o->reg > 0 && o->reg_epochs > 0 && !o->smartexchange;
    if ((reg || o->finetune_epochs > 0) && !train)
        return pare_fail(PARE_EINVAL, "sharing with training (--reg, --finetune) needs training "
                         "data");
    slayer *l = NULL;
    int n = 0;
    pare_status s = pick_layers(g, o, &l, &n);
    if (s != PARE_OK)
        return s;
    r->layers = calloc((size_t)n, sizeof *r->layers);
    if (!r->layers) {
        slayers_free(l, n);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    r->n = n;
    /* Training phases see float weights: the old codebooks go now. */
    for (int i = 0; i < n; i++)
        pare_qparams_clear(&g->params[l[i].param].q);
    sstate st = {g, o, l, n, PARE_OK};
    r->acc_before = pare_test_accuracy(g, test, &o->train);

    double t0 = pare_now_s();
    if (reg) {
        for (int i = 0; i < n && s == PARE_OK; i++) {
            const pare_param *p = &g->params[l[i].param];
            s = pare_share_reg_init(&l[i].reg, p->t->data, p->mask, p->t->n, l[i].d, o->k, o->reg,
                                    o->seed + (uint64_t)i, o->train.threads);
        }
        pare_train_hooks h = {.user = &st, .after_backward = reg_after_backward, .after_step = reg_after_step};
        if (s == PARE_OK)
            s = pare_train_epochs(g, &o->train, o->reg_epochs, &h, train, NULL, NULL);
        if (s == PARE_OK)
            s = st.err;
        for (int i = 0; i < n; i++)
            pare_share_reg_free(&l[i].reg);
        if (s == PARE_OK)
            r->acc_reg = pare_test_accuracy(g, test, &o->train);
    }
    r->seconds_reg = pare_now_s() - t0;

    t0 = pare_now_s();
    for (int i = 0; i < n && s == PARE_OK; i++) {
        slayer *L = &l[i];
        pare_param *p = &g->params[L->param];
        pare_share_layer *R = &r->layers[i];
        size_t nv = p->t->n, runs = nv / (size_t)L->d;
        L->before = pare_alloc_array(nv, sizeof(float), 0);
        if (!L->before) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            break;
        }
        memcpy(L->before, p->t->data, sizeof(float) * nv);
        R->name = g->nodes[L->node].name;
        R->d = L->d;
        R->weights = (long long)nv;
        size_t kept = nv, kept_runs = 0;
        if (p->mask) {
            kept = 0;
            for (size_t e = 0; e < nv; e++)
                kept += p->mask[e] != 0;
        }
        for (size_t u = 0; u < runs; u++)
            kept_runs += run_kept(p->mask ? p->mask + u * (size_t)L->d : NULL, L->d);
        R->bytes_before = (long long)kept * 4;
        if (o->smartexchange) {
            s = pare_smartex_fit(p->t->data, p->mask, nv, L->d, o->se_exp_bits, o->se_sparsity,
                                 o->se_iters, NULL, &L->se);
            if (s != PARE_OK)
                break;
            pare_smartex_apply(&L->se, p->mask, p->t->data);
            /* The compact form: B in float, a bit per entry of Ce for where its
             * nonzeros are, and a sign and an exponent for each. */
            double bits = 32.0 * L->d * L->d + (double)kept_runs * L->d +
                          (double)L->se.nonzeros * (1 + o->se_exp_bits);
            R->nonzeros = (long long)L->se.nonzeros;
            R->bits_per_weight = bits / (double)nv;
            R->bytes_after = (long long)ceil(bits / 8);
        } else {
            s = pare_kmeans(p->t->data, p->mask, runs, L->d, o->k, o->seed + (uint64_t)i,
                            o->max_iters, o->train.threads, &L->km);
            if (s != PARE_OK)
                break;
            for (size_t u = 0; u < runs; u++) {
                const float *row = L->km.centroids +
                                   (size_t)(L->km.assign[u] < 0 ? 0 : L->km.assign[u]) *
                                       (size_t)L->d;
                for (int j = 0; j < L->d; j++) {
                    size_t e = u * (size_t)L->d + (size_t)j;
                    p->t->data[e] = !p->mask || p->mask[e] ? row[j] : 0.0f;
                }
            }
            R->k = L->km.k;
            R->bits = codebook_bits(L->km.k);
            double bits = (double)kept_runs * R->bits + 32.0 * L->km.k * L->d;
            R->bits_per_weight = bits / (double)nv;
            R->bytes_after = (long long)(((long long)kept_runs * R->bits + 7) / 8) +
                             4LL * L->km.k * L->d;
            /* Scratch for fine-tuning. */
            L->reg.sum = malloc(sizeof(double) * (size_t)L->km.k * (size_t)L->d);
            L->reg.cnt = malloc(sizeof(int32_t) * (size_t)L->km.k * (size_t)L->d);
            if (!L->reg.sum || !L->reg.cnt)
                s = pare_fail(PARE_ENOMEM, "out of memory");
        }
        double num = 0, den = 0;
        for (size_t e = 0; e < nv; e++) {
            double t = (double)p->t->data[e] - L->before[e];
            num += t * t;
            den += (double)L->before[e] * L->before[e];
        }
        R->rel_error = den > 0 ? sqrt(num / den) : 0;
    }
    r->seconds_share = pare_now_s() - t0;
    if (s == PARE_OK)
        r->acc_shared = pare_test_accuracy(g, test, &o->train);

    t0 = pare_now_s();
    if (s == PARE_OK && o->finetune_epochs > 0) {
        pare_train_hooks h = {.user = &st};
        if (o->smartexchange) {
            h.after_step = se_after_step;
        } else {
            h.after_backward = ft_after_backward;
            h.after_step = ft_after_step;
        }
        s = pare_train_epochs(g, &o->train, o->finetune_epochs, &h, train, NULL, NULL);
        if (s == PARE_OK)
            s = st.err;
        if (s == PARE_OK && !o->smartexchange)
            ft_snap(&st);
        if (s == PARE_OK)
            r->acc_final = pare_test_accuracy(g, test, &o->train);
    } else {
        r->acc_final = r->acc_shared;
    }
    r->seconds_finetune = pare_now_s() - t0;

    /* The codebooks and bases become the tensors' quantization parameters
     * last, so the training phases above saw plain float weights. */
    for (int i = 0; i < n && s == PARE_OK; i++) {
        pare_param *p = &g->params[l[i].param];
        s = o->smartexchange ? pare_smartex_set(p, &l[i].se, o->se_exp_bits)
                             : pare_share_set(p, l[i].km.k, l[i].d, l[i].km.centroids, l[i].km.assign);
    }
    slayers_free(l, n);
    if (s != PARE_OK)
        pare_share_result_free(r);
    return s;
}
