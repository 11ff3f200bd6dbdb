/* Weight sharing: k-means against a brute-force nearest-centroid oracle,
 * seeding determinism, the inertia's descent, the Deep k-Means regulariser's
 * gradient against finite differences, SmartExchange's power-of-two factors,
 * and pare_share / pare share end to end (masks kept, codebooks exact, files). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "compress/compress.h"
#include "compress/quant.h"
#include "compress/share.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "io/io.h"
#include "synth.h"
#include "test.h"

/* Runs of d values: a few tight clusters plus noise, with exact duplicates
 * and values on a coarse grid so that equal distances (ties) happen. */
static float *cluster_data(size_t n, int d, uint64_t seed)
{
    float *x = malloc(sizeof(float) * n * (size_t)d);
    pare_rng r;
    pare_rng_seed(&r, seed, 1, (uint64_t)d, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)pare_rng_below(&r, 5);
        for (int j = 0; j < d; j++) {
            float v = (float)(c - 2) + 0.3f * (pare_rng_uniform(&r) - 0.5f);
            if (i % 7 == 3)
                v = (float)(int)(4 * v) / 4; /* the grid */
            x[i * (size_t)d + (size_t)j] = v;
        }
        if (i % 11 == 5 && i > 0)
            memcpy(x + i * (size_t)d, x + (i - 1) * (size_t)d, sizeof(float) * (size_t)d);
    }
    return x;
}

static uint8_t *random_mask(size_t n, double keep, uint64_t seed)
{
    uint8_t *m = malloc(n);
    pare_rng r;
    pare_rng_seed(&r, seed, 2, 0, 0);
    for (size_t i = 0; i < n; i++)
        m[i] = pare_rng_uniform_d(&r) < keep;
    return m;
}

/* The oracle: every centroid's distance over kept coordinates, in double,
 * the first of the smallest. */
static int brute_nearest(const float *x, const uint8_t *m, int d, const float *c, int k)
{
    int best = -1;
    double bd = 0;
    for (int i = 0; i < k; i++) {
        double s = 0;
        for (int j = 0; j < d; j++)
            if (!m || m[j]) {
                double t = (double)x[j] - c[i * d + j];
                s += t * t;
            }
        if (best < 0 || s < bd) {
            best = i;
            bd = s;
        }
    }
    return best;
}

static double brute_inertia(const float *x, const uint8_t *mask, size_t n, int d,
                            const pare_kmeans_result *r)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->assign[i] < 0)
            continue;
        for (int j = 0; j < d; j++) {
            size_t e = i * (size_t)d + (size_t)j;
            if (mask && !mask[e])
                continue;
            double t = (double)x[e] - r->centroids[r->assign[i] * d + j];
            s += t * t;
        }
    }
    return s;
}

PARE_TEST(share_kmeans_assigns_the_nearest_centroid)
{
    static const int ds[] = {1, 3, 5};
    static const int ks[] = {1, 4, 16, 40};
    for (size_t di = 0; di < 3; di++)
        for (size_t ki = 0; ki < 4; ki++)
            for (int masked = 0; masked <= 1; masked++) {
                int d = ds[di], k = ks[ki];
                size_t n = 3000;
                float *x = cluster_data(n, d, (uint64_t)(d * 100 + k));
                uint8_t *m = masked ? random_mask(n * (size_t)d, 0.6, (uint64_t)k) : NULL;
                pare_kmeans_result r;
                CHECK_OK(pare_kmeans(x, m, n, d, k, 3, 30, 2, &r));
                size_t bad = 0, none = 0;
                for (size_t i = 0; i < n; i++) {
                    const uint8_t *mi = m ? m + i * (size_t)d : NULL;
                    int any = !mi;
                    for (int j = 0; mi && j < d; j++)
                        any |= mi[j];
                    if (!any) {
                        none += r.assign[i] == -1;
                        continue;
                    }
                    bad += r.assign[i] != brute_nearest(x + i * (size_t)d, mi, d, r.centroids, r.k);
                }
                CHECKF(bad == 0, "d %d, k %d, %s: %zu runs not at their nearest centroid", d, k,
                       masked ? "masked" : "dense", bad);
                CHECK_NEAR(r.inertia, brute_inertia(x, m, n, d, &r), 1e-9 * (1 + r.inertia));
                CHECK(r.k == k);
                free(x);
                free(m);
                pare_kmeans_free(&r);
            }
    /* Ties: a run halfway between two centroids goes to the lower index, with
     * the sorted scalar path as with the brute force. */
    float c[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2};
    float xs[4] = {2.5f, 2.0f, 10.5f, -3.0f};
    int want[4] = {2, 2, 10, 0};
    for (int i = 0; i < 4; i++) {
        CHECK(pare_kmeans_nearest(&xs[i], NULL, 1, c, 12, NULL) == want[i]);
        CHECK(brute_nearest(&xs[i], NULL, 1, c, 12) == want[i]);
    }
}

PARE_TEST(share_kmeans_seeding_is_deterministic)
{
    size_t n = 20000;
    float *x = cluster_data(n, 3, 5);
    float a[16 * 3], b[16 * 3], c[16 * 3];
    CHECK_OK(pare_kmeans_seed(x, NULL, n, 3, 16, 7, a));
    CHECK_OK(pare_kmeans_seed(x, NULL, n, 3, 16, 7, b));
    CHECK_OK(pare_kmeans_seed(x, NULL, n, 3, 16, 8, c));
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* k-means++ picks runs of the data, all different here (D^2 weighting never
     * picks a run that is already a centre). */
    for (int i = 0; i < 16; i++) {
        int found = 0;
        for (size_t p = 0; p < n && !found; p++)
            found = !memcmp(a + 3 * i, x + 3 * p, sizeof(float) * 3);
        CHECKF(found, "centre %d is not a run of the data", i);
        for (int j = 0; j < i; j++)
            CHECKF(memcmp(a + 3 * i, a + 3 * j, sizeof(float) * 3) != 0, "centres %d and %d", j, i);
    }
    /* The whole clustering: the same with 1 thread and with 2. */
    pare_kmeans_result r1, r2;
    CHECK_OK(pare_kmeans(x, NULL, n, 3, 16, 7, 50, 1, &r1));
    CHECK_OK(pare_kmeans(x, NULL, n, 3, 16, 7, 50, 2, &r2));
    CHECK(r1.k == r2.k && r1.iters == r2.iters);
    CHECK(!memcmp(r1.centroids, r2.centroids, sizeof(float) * 48));
    CHECK(!memcmp(r1.assign, r2.assign, sizeof(int32_t) * n));
    pare_kmeans_free(&r1);
    pare_kmeans_free(&r2);
    /* More centroids than runs: k drops to the runs there are. */
    pare_kmeans_result r3;
    CHECK_OK(pare_kmeans(x, NULL, 5, 3, 16, 1, 10, 1, &r3));
    CHECK(r3.k == 5 && r3.inertia == 0);
    pare_kmeans_free(&r3);
    CHECK_STATUS(pare_kmeans_seed(x, NULL, 5, 3, 6, 1, a), PARE_EINVAL);
    free(x);
}

PARE_TEST(share_kmeans_inertia_never_increases)
{
    for (int t = 0; t < 4; t++) {
        int d = t < 2 ? 1 : 3, k = t % 2 ? 24 : 7;
        size_t n = 5000;
        float *x = cluster_data(n, d, (uint64_t)(t + 40));
        uint8_t *m = t == 3 ? random_mask(n * (size_t)d, 0.5, 9) : NULL;
        pare_kmeans_result r;
        CHECK_OK(pare_kmeans(x, m, n, d, k, (uint64_t)t, 100, 2, &r));
        CHECK(r.iters >= 1);
        for (int i = 1; i <= r.iters; i++)
            CHECKF(r.trace[i] <= r.trace[i - 1] * (1 + 1e-12), "case %d: %.17g after %.17g", t,
                   r.trace[i], r.trace[i - 1]);
        CHECKF(r.trace[r.iters] < r.trace[0], "case %d: Lloyd did not improve on the seeding", t);
        CHECK_NEAR(r.trace[r.iters], r.inertia, 0);
        free(x);
        free(m);
        pare_kmeans_free(&r);
    }
}

/* sum over kept coordinates of (x - its cluster's mean there)^2: the oracle of
 * the indicator penalty (lambda/2 times this). */
static double cluster_spread(const float *x, const uint8_t *mask, size_t n, int d,
                             const int32_t *assign, int k)
{
    double *sum = calloc((size_t)k * (size_t)d, sizeof(double)), s = 0;
    long *cnt = calloc((size_t)k * (size_t)d, sizeof(long));
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            if (assign[i] < 0)
                continue;
            for (int j = 0; j < d; j++) {
                size_t e = i * (size_t)d + (size_t)j, c = (size_t)assign[i] * (size_t)d + (size_t)j;
                if (mask && !mask[e])
                    continue;
                if (pass == 0) {
                    sum[c] += x[e];
                    cnt[c]++;
                } else {
                    double t = x[e] - sum[c] / (double)cnt[c];
                    s += t * t;
                }
            }
        }
    free(sum);
    free(cnt);
    return s;
}

/* d penalty / d w[e] by central differences, in double around float w. */
static double fd_grad(pare_share_reg *r, float *w, size_t e)
{
    float keep = w[e], h = 1e-2f * (fabsf(keep) + 1e-2f);
    w[e] = keep + h;
    double hp = (double)w[e] - keep, up = pare_share_reg_eval(r, w, NULL);
    w[e] = keep - h;
    double hm = keep - (double)w[e], dn = pare_share_reg_eval(r, w, NULL);
    w[e] = keep;
    return (up - dn) / (hp + hm);
}

PARE_TEST(share_regulariser_gradient_matches_finite_differences)
{
    /* spectral (K < d), indicator (K >= d), indicator with a mask */
    static const int cases[3][3] = {{8, 3, 0}, {3, 16, 0}, {1, 5, 1}};
    for (int c = 0; c < 3; c++) {
        int d = cases[c][0], k = cases[c][1];
        size_t n = (size_t)d * 60;
        float *w = cluster_data(n / (size_t)d, d, (uint64_t)c + 3);
        uint8_t *m = cases[c][2] ? random_mask(n, 0.7, 4) : NULL;
        for (size_t e = 0; m && e < n; e++)
            if (!m[e])
                w[e] = 0;
        pare_share_reg r;
        CHECK_OK(pare_share_reg_init(&r, w, m, n, d, k, 0.5f, 11, 1));
        CHECK(r.spectral == (k < d));
        /* Move the weights away from where F was computed: F stays fixed. */
        for (size_t e = 0; e < n; e++)
            if (!m || m[e])
                w[e] += 0.05f * sinf((float)e);
        float *g = calloc(n, sizeof(float));
        pare_share_reg_eval(&r, w, g);
        double worst = 0;
        for (size_t e = 0; e < n; e++) {
            if (m && !m[e]) {
                CHECK(g[e] == 0);
                continue;
            }
            double fd = fd_grad(&r, w, e), err = fabs(fd - g[e]) / (fabs(fd) + 1e-3);
            if (err > worst)
                worst = err;
        }
        CHECKF(worst < 2e-3, "case %d: gradient off by %.2e (relative)", c, worst);
        /* The penalty is lambda/2 times k-means' inertia for the indicator, and
         * the energy outside the top-K subspace for the spectral F (>= 0). */
        double pen = pare_share_reg_eval(&r, w, NULL);
        CHECK(pen >= 0);
        if (!r.spectral)
            CHECK_NEAR(pen, 0.25 * cluster_spread(w, m, n / (size_t)d, d, r.km.assign, r.k),
                       1e-9 * (1 + pen));
        free(g);
        free(w);
        free(m);
        pare_share_reg_free(&r);
    }
    /* The spectral F spans the top-K subspace of the runs: runs that lie in a
     * plane of R^3 leave nothing outside it for K = 2, runs that do not do. */
    for (int flat = 1; flat >= 0; flat--) {
        size_t runs = 200, n = 3 * runs;
        float *w = malloc(sizeof(float) * n);
        pare_rng rg;
        pare_rng_seed(&rg, 8, 8, 8, 8);
        for (size_t e = 0; e < n; e++)
            w[e] = (float)pare_rng_normal(&rg);
        for (size_t i = 0; flat && i < runs; i++)
            w[3 * i + 2] = 0.5f * w[3 * i] - 0.25f * w[3 * i + 1]; /* a plane, to rounding */
        pare_share_reg r;
        CHECK_OK(pare_share_reg_init(&r, w, NULL, n, 3, 2, 1.0f, 0, 1));
        double pen = pare_share_reg_eval(&r, w, NULL), all = 0;
        for (size_t e = 0; e < n; e++)
            all += 0.5 * (double)w[e] * w[e];
        if (flat)
            CHECKF(pen < 1e-5 * all, "runs in a plane: penalty %.3g of %.3g", pen, all);
        else
            CHECKF(pen > 1e-2 * all, "runs in R^3: penalty %.3g of %.3g", pen, all);
        free(w);
        pare_share_reg_free(&r);
    }
}

static int power_of_two(float v, int pmin, int pmax)
{
    int e;
    double m = frexp(fabs((double)v), &e);
    return m == 0.5 && e - 1 >= pmin && e - 1 <= pmax;
}

PARE_TEST(share_smartexchange_factors)
{
    for (int masked = 0; masked <= 1; masked++) {
        int S = 3;
        size_t n = 3 * 2000;
        float *w = malloc(sizeof(float) * n);
        pare_rng r;
        pare_rng_seed(&r, 4, 4, 4, 4);
        for (size_t e = 0; e < n; e++)
            w[e] = (float)(0.05 * pare_rng_normal(&r));
        uint8_t *m = masked ? random_mask(n, 0.5, 3) : NULL;
        for (size_t e = 0; m && e < n; e++)
            if (!m[e])
                w[e] = 0;
        double err[11];
        pare_smartex se;
        CHECK_OK(pare_smartex_fit(w, m, n, S, 3, 0.4, 10, err, &se));
        size_t nz = 0, bad = 0;
        for (size_t e = 0; e < n; e++) {
            if (se.Ce[e] == 0)
                continue;
            nz++;
            bad += !power_of_two(se.Ce[e], se.pmax - 7, se.pmax);
        }
        CHECKF(bad == 0, "%zu entries of Ce are not +-2^p in the window", bad);
        CHECK(nz == se.nonzeros);
        CHECKF(nz <= (size_t)(0.6 * (double)n) + 3, "Ce has %zu nonzeros of %zu", nz, n);
        /* Alternating beats the plain power-of-two projection (B = I). */
        CHECKF(se.error < err[0], "error %.4f, projection alone %.4f", se.error, err[0]);
        CHECK(se.error <= 1);
        printf("  %s: relative squared error %.4f (projection alone %.4f), %zu nonzeros of %zu\n",
               masked ? "masked" : "dense", se.error, err[0], nz, n);
        /* What apply stores is what the error was measured on. */
        float *v = malloc(sizeof(float) * n);
        memcpy(v, w, sizeof(float) * n);
        pare_smartex_apply(&se, m, v);
        double num = 0, den = 0;
        for (size_t e = 0; e < n; e++) {
            if (m && !m[e]) {
                CHECK(memcmp(&v[e], &(float){0.0f}, 4) == 0);
                continue;
            }
            num += ((double)v[e] - w[e]) * ((double)v[e] - w[e]);
            den += (double)w[e] * w[e];
        }
        CHECK_NEAR(num / den, se.error, 1e-9);
        free(v);
        free(w);
        free(m);
        pare_smartex_free(&se);
    }
}

static const char *synth_dir(void)
{
    static char dir[1100];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", pare_test_path("synth"));
        mkdir(dir, 0755);
        if (synth_write_idx(dir, 1200, 300, 31) != 0)
            pare_test_fail(__FILE__, __LINE__, "cannot write synthetic data");
    }
    return dir;
}

static pare_graph *trained_lenet(pare_dataset **tr, pare_dataset **te)
{
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TRAIN, tr));
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TEST, te));
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 2;
    c.batch = 8;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, *tr, *te));
    pare_trainer_free(t);
    return g;
}

/* Every run of a shared tensor is a codebook row where the mask keeps, +0.0
 * where it prunes: returns the runs that are not. */
static size_t off_codebook(const pare_param *p)
{
    size_t bad = 0, d = (size_t)p->q.d;
    for (size_t u = 0; u < p->t->n / d; u++) {
        int found = 0;
        for (int r = 0; r < p->q.k && !found; r++) {
            found = 1;
            for (size_t j = 0; j < d && found; j++) {
                size_t e = u * d + j;
                float want = p->mask && !p->mask[e] ? 0.0f : p->q.codebook[(size_t)r * d + j];
                found = !memcmp(&want, &p->t->data[e], 4);
            }
        }
        bad += !found;
    }
    return bad;
}

PARE_TEST(share_lenet_end_to_end)
{
    pare_dataset *tr, *te;
    pare_graph *base = trained_lenet(&tr, &te);
    CHECK_OK(pare_dataset_limit(tr, 400)); /* the training phases: short */
    /* conv2's weight pruned: half its values masked and zero. */
    int c2 = pare_graph_node_param(base, pare_graph_find_node(base, "conv2"), PARE_ROLE_WEIGHT);
    pare_param *pc = &base->params[c2];
    pc->mask = random_mask(pc->t->n, 0.5, 77);
    for (size_t e = 0; e < pc->t->n; e++)
        if (!pc->mask[e])
            pc->t->data[e] = 0;
    for (int mode = 0; mode < 3; mode++) {
        pare_graph *g;
        CHECK_OK(pare_graph_clone(base, &g));
        pare_share_options o;
        pare_share_options_init(&o);
        o.k = 8;
        o.train.batch = 16;
        o.train.lr = 0.01f;
        o.finetune_epochs = 1;
        if (mode == 1) {
            o.reg = 0.5f;
            o.reg_every = 20;
        }
        if (mode == 2)
            o.smartexchange = 1;
        pare_share_result r;
        CHECK_OK(pare_share(g, &o, tr, te, &r));
        printf("  %-14s accuracy %.3f -> %.3f (regulariser) -> %.3f (shared) -> %.3f (fine-tuned)\n",
               mode == 0 ? "k-means" : mode == 1 ? "k-means + reg" : "SmartExchange", r.acc_before,
               r.acc_reg, r.acc_shared, r.acc_final);
        CHECK(r.n == 5);
        CHECKF(r.acc_final > 0.6, "mode %d: accuracy %.3f after fine-tuning", mode, r.acc_final);
        for (int i = 0; i < r.n; i++) {
            const pare_share_layer *L = &r.layers[i];
            int node = pare_graph_find_node(g, L->name);
            const pare_param *p = &g->params[pare_graph_node_param(g, node, PARE_ROLE_WEIGHT)];
            for (size_t e = 0; p->mask && e < p->t->n; e++)
                if (!p->mask[e])
                    CHECKF(memcmp(&p->t->data[e], &(float){0.0f}, 4) == 0, "%s[%zu] is pruned but %g",
                           p->name, e, p->t->data[e]);
            CHECK(L->rel_error > 0 && L->rel_error < 1);
            if (mode == 2) {
                /* A basis (scheme 4) whose coefficients rebuild every value. */
                CHECK(p->q.scheme == 4 && p->q.bits == 1 + o.se_exp_bits && p->q.d == L->d && p->q.k == L->d);
                CHECK(L->nonzeros > 0 && p->q.coef && pare_quant_on_grid(p) == 1);
                continue;
            }
            CHECK(p->q.scheme == 3 && p->q.k == L->k && p->q.d == L->d && L->k <= 8);
            CHECK(L->d == (p->t->ndim == 4 ? 5 : 1) && p->q.bits == (L->k > 4 ? 3 : L->k > 2 ? 2 : 1));
            CHECKF(off_codebook(p) == 0, "%s: %zu runs are not codebook rows", p->name, off_codebook(p));
        }
        /* The file stores codes and gives the same graph back. */
        uint8_t *a = NULL;
        size_t na = 0;
        CHECK_OK(pare_file_encode(g, NULL, 0, &a, &na));
        pare_graph *h = NULL;
        if (a)
            CHECK_OK(pare_file_decode(a, na, "shared", &h, NULL));
        for (int i = 0; h && i < g->n_params; i++) {
            const pare_param *x = &g->params[i], *y = &h->params[i];
            CHECK(!memcmp(x->t->data, y->t->data, sizeof(float) * x->t->n));
            CHECK(x->q.k == y->q.k && x->q.d == y->q.d && x->q.bits == y->q.bits);
            if (x->q.codebook)
                CHECK(!memcmp(x->q.codebook, y->q.codebook,
                              sizeof(float) * (size_t)x->q.k * (size_t)x->q.d));
            CHECK(!x->q.coef == !y->q.coef);
            for (size_t e = 0; x->q.coef && y->q.coef && e < x->t->n; e++)
                CHECK(x->q.coef[e] == y->q.coef[e]);
        }
        pare_graph_free(h);
        free(a);
        pare_share_result_free(&r);
        pare_graph_free(g);
    }
    pare_graph_free(base);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* Fine-tuning moves the centroids (not only the other layers), and the
 * shared weights stay their codebooks throughout. */
PARE_TEST(share_finetune_moves_centroids)
{
    pare_dataset *tr, *te;
    pare_graph *g = trained_lenet(&tr, &te);
    CHECK_OK(pare_dataset_limit(tr, 400));
    pare_graph *g0;
    CHECK_OK(pare_graph_clone(g, &g0));
    pare_share_options o;
    pare_share_options_init(&o);
    o.k = 4;
    o.layers = "fc1";
    o.train.batch = 16;
    pare_share_result r0, r1;
    CHECK_OK(pare_share(g0, &o, NULL, te, &r0));
    o.finetune_epochs = 1;
    CHECK_OK(pare_share(g, &o, tr, te, &r1));
    int f = pare_graph_node_param(g, pare_graph_find_node(g, "fc1"), PARE_ROLE_WEIGHT);
    const pare_param *p0 = &g0->params[f], *p1 = &g->params[f];
    CHECK(p0->q.k == 4 && p1->q.k == 4);
    CHECK(memcmp(p0->q.codebook, p1->q.codebook, 4 * sizeof(float)) != 0);
    CHECK(off_codebook(p1) == 0);
    CHECK(r1.n == 1 && !strcmp(r1.layers[0].name, "fc1"));
    printf("  fc1 shared 4 ways: accuracy %.3f, fine-tuned %.3f\n", r0.acc_final, r1.acc_final);
    pare_share_result_free(&r0);
    pare_share_result_free(&r1);
    pare_graph_free(g0);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(share_rejects_bad_requests)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 1, &g));
    if (!g)
        return;
    uint8_t *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    CHECK_OK(pare_file_encode(g, NULL, 0, &before, &nb));
    pare_share_options o;
    pare_share_result r;
    struct {
        int k, sub;
        const char *layers;
        int finetune;
        pare_status want;
        const char *says;
    } bad[] = {
        {0, 0, NULL, 0, PARE_EINVAL, "--k 0"},
        {300, 0, NULL, 0, PARE_EINVAL, "--k 300"},
        {16, 17, NULL, 0, PARE_EINVAL, "--sub 17"},
        {16, 0, "conv1,nope", 0, PARE_ENOTFOUND, "no conv or linear layer named 'nope'"},
        {16, 0, "relu1", 0, PARE_ENOTFOUND, "named 'relu1'"},
        {16, 7, NULL, 0, PARE_ESHAPE, "layer conv1: runs of 7 values do not divide its last "
                                      "dimension 5"},
        {16, 0, NULL, 1, PARE_EINVAL, "needs training data"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pare_share_options_init(&o);
        o.k = bad[i].k;
        o.sub = bad[i].sub;
        o.layers = bad[i].layers;
        o.finetune_epochs = bad[i].finetune;
        CHECK_STATUS(pare_share(g, &o, NULL, NULL, &r), bad[i].want);
        CHECKF(strstr(pare_last_error(), bad[i].says), "'%s' lacks '%s'", pare_last_error(),
               bad[i].says);
    }
    /* A quantized layer is refused by name. */
    pare_param *p = &g->params[pare_graph_node_param(g, pare_graph_find_node(g, "fc2"), PARE_ROLE_WEIGHT)];
    p->q.bits = 8;
    p->q.scheme = 1;
    p->q.n = 1;
    p->q.scale = malloc(sizeof(float));
    p->q.zero_point = calloc(1, sizeof(int32_t));
    p->q.scale[0] = 1;
    pare_share_options_init(&o);
    CHECK_STATUS(pare_share(g, &o, NULL, NULL, &r), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "layer fc2 is quantized to 8 bits already"));
    free(p->q.scale);
    free(p->q.zero_point);
    memset(&p->q, 0, sizeof p->q);
    /* Refusals leave the graph as it was. */
    CHECK_OK(pare_file_encode(g, NULL, 0, &after, &na));
    CHECK(na == nb && before && after && !memcmp(before, after, nb));
    free(before);
    free(after);
    pare_graph_free(g);
}

/* pare share on the command line: the report, the file, and one line per mistake. */
static int run_pare(const char *args, int *code, char *out, size_t cap)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin)
        return 0;
    char o[1100], e[1100], cmd[8192];
    snprintf(o, sizeof o, "%s", pare_test_path("out.txt"));
    snprintf(e, sizeof e, "%s", pare_test_path("err.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", pare_test_dir(), bin, args, o, e);
    int st = system(cmd);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    out[0] = 0;
    FILE *f = fopen(*code == 0 ? o : e, "rb");
    if (f) {
        size_t got = fread(out, 1, cap - 1, f);
        out[got] = 0;
        fclose(f);
    }
    return 1;
}

PARE_TEST(share_cli)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 3, &g));
    CHECK_OK(pare_graph_save(g, pare_test_path("m.pare")));
    pare_graph_free(g);
    static char out[65536];
    int code;
    char args[2048];
    snprintf(args, sizeof args, "share m.pare --k 4 --out s.pare --json --data '%s'", synth_dir());
    if (!run_pare(args, &code, out, sizeof out)) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    CHECKF(code == 0, "pare share failed: %s", out);
    CHECK(strstr(out, "\"method\": \"kmeans\"") && strstr(out, "\"layer\": \"fc1\"") &&
          strstr(out, "\"bits\": 2"));
    CHECK_OK(pare_graph_load(pare_test_path("s.pare"), &g));
    if (g) {
        int f = pare_graph_node_param(g, pare_graph_find_node(g, "fc1"), PARE_ROLE_WEIGHT);
        CHECK(g->params[f].q.scheme == 3 && g->params[f].q.k == 4 && off_codebook(&g->params[f]) == 0);
        pare_graph_free(g);
    }
    run_pare("info s.pare", &code, out, sizeof out);
    CHECK(code == 0 && strstr(out, "2-bit codebook 4x5") && strstr(out, "2-bit codebook 4x1"));
    snprintf(args, sizeof args, "share m.pare --k 4 --sub 2 --out t.pare --data '%s'", synth_dir());
    run_pare(args, &code, out, sizeof out);
    CHECK(code == 1 && strstr(out, "pare share: layer conv1: runs of 2 values do not divide its last dimension 5"));
    run_pare("share m.pare --k 4 --sub x --out t.pare", &code, out, sizeof out);
    CHECK(code == 2 && strstr(out, "--sub 'x'"));
    run_pare("share m.pare --k 4", &code, out, sizeof out);
    CHECK(code == 2 && strstr(out, "--out FILE is required"));
    run_pare("share m.pare --k 4 --reg-epochs 2 --out t.pare", &code, out, sizeof out);
    CHECK(code == 2 && strstr(out, "need --reg"));
    run_pare("share m.pare --k 4 --out m.pare", &code, out, sizeof out);
    CHECK(code == 2 && strstr(out, "is the input file"));
    /* SmartExchange: the file keeps the basis and the coefficients. */
    snprintf(args, sizeof args, "share m.pare --smartexchange --se-iters 2 --out x.pare --data '%s'", synth_dir());
    run_pare(args, &code, out, sizeof out);
    CHECKF(code == 0, "pare share --smartexchange failed: %s", out);
    run_pare("info x.pare", &code, out, sizeof out);
    CHECK(code == 0 && strstr(out, "SmartExchange basis 5x5, 4-bit coefficients") &&
          strstr(out, "SmartExchange basis 1x1, 4-bit coefficients"));
    CHECK_OK(pare_graph_load(pare_test_path("x.pare"), &g));
    if (g) {
        int f = pare_graph_node_param(g, pare_graph_find_node(g, "conv1"), PARE_ROLE_WEIGHT);
        CHECK(g->params[f].q.scheme == 4 && g->params[f].q.coef && pare_quant_on_grid(&g->params[f]) == 1);
        pare_graph_free(g);
    }
}

/* Structural removal keeps each layer's codebook (its own copy): the runs of
 * a conv survive the loss of filters and input channels. */
PARE_TEST(share_survives_purify)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 0, 5, &g));
    if (!g)
        return;
    /* conv1's filter 0 pruned whole: purify removes it and conv2's input channel 0. */
    pare_param *w = &g->params[pare_graph_node_param(g, pare_graph_find_node(g, "conv1"), PARE_ROLE_WEIGHT)];
    size_t per = w->t->n / (size_t)w->t->dims[0];
    w->mask = malloc(w->t->n);
    for (size_t e = 0; e < w->t->n; e++) {
        w->mask[e] = e >= per;
        if (e < per)
            w->t->data[e] = 0;
    }
    pare_graph *g0 = NULL;
    CHECK_OK(pare_graph_clone(g, &g0));
    pare_graph_free(g);
    /* k-means (scheme 3), then SmartExchange (scheme 4: the coefficients go
     * with the elements that stay). */
    for (int se = 0; se <= 1 && g0; se++) {
        g = NULL;
        CHECK_OK(pare_graph_clone(g0, &g));
        pare_share_options o;
        pare_share_options_init(&o);
        o.k = 4;
        o.smartexchange = se;
        o.se_iters = 2;
        pare_share_result r;
        CHECK_OK(pare_share(g, &o, NULL, NULL, &r));
        pare_share_result_free(&r);
        pare_graph *h = NULL;
        CHECK_OK(pare_mask_dead_filters(g, NULL));
        CHECK_OK(pare_purify(g, &h, NULL));
        if (h) {
            const char *names[2] = {"conv1", "conv2"};
            for (int i = 0; i < 2; i++) {
                const pare_param *p = &h->params[pare_graph_node_param(h, pare_graph_find_node(h, names[i]), PARE_ROLE_WEIGHT)];
                const pare_param *q = &g->params[pare_graph_node_param(g, pare_graph_find_node(g, names[i]), PARE_ROLE_WEIGHT)];
                CHECK(p->t->n < q->t->n && p->q.scheme == 3 + se && p->q.codebook && p->q.codebook != q->q.codebook);
                if (se)
                    CHECKF(p->q.coef && pare_quant_on_grid(p) == 1, "%s: its values are not its Ce B", p->name);
                else
                    CHECK(off_codebook(p) == 0);
            }
            uint8_t *a = NULL;
            size_t na = 0;
            CHECK_OK(pare_file_encode(h, NULL, 0, &a, &na));
            free(a);
        }
        pare_graph_free(h);
        pare_graph_free(g);
    }
    pare_graph_free(g0);
}
