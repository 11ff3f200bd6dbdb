/* Efficient training (docs/EFFICIENT.md): sparse training keeps the exact
 * sparsity after every prune-and-grow step, frozen units stay bit-identical,
 * skipped weight gradients leave every other update alone, sieving keeps the
 * active set and cycles every example, data removal and batch dropping remove
 * what they say, CKA against hand-computed values, resume gives the same
 * bytes, FLOP accounting against the hand count, bad options refused; the
 * frozen prefix's cut against a naive oracle, and its cache giving the same
 * bits as no cache while skipping exactly the prefix's FLOPs. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "compress/compress.h"
#include "core/rng.h"
#include "data/data.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "synth.h"
#include "test.h"
#include "train/efficient.h"
#include "train/trainer.h"

static const char *eff_dir(void)
{
    static char dir[1024];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", pare_test_path("effsynth"));
        mkdir(dir, 0755);
        if (synth_write_idx(dir, 600, 200, 21) != 0)
            pare_test_fail(__FILE__, __LINE__, "cannot write the synthetic dataset in %s", dir);
    }
    return dir;
}

static pare_dataset *eff_train(long limit)
{
    pare_dataset *tr = NULL;
    CHECK_OK(pare_dataset_open(eff_dir(), PARE_SPLIT_TRAIN, &tr));
    if (tr && limit)
        CHECK_OK(pare_dataset_limit(tr, limit));
    return tr;
}

static size_t zeros_of(const uint8_t *m, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += m[i] == 0;
    return z;
}

/* ---- a: exact sparsity after every prune-and-grow step ------------------------ */

typedef struct sp_watch {
    pare_graph *g;
    pare_unit units[16];
    int n_units;
    const char *scheme;
    pare_scheme sch;
    double sparse, grow;
    long interval, until;
    long steps, grown_steps, bad;
    uint8_t *before[16];     /* each layer's mask before the current cycle's grow */
    long changed;            /* cycles that changed some mask */
} sp_watch;

/* Pruned count the plan's projection guarantees at sparsity s of n weights. */
static size_t exact_count(const sp_watch *w, double s, size_t n)
{
    if (w->sch.kind == PARE_SCHEME_NM)
        return n / (size_t)w->sch.m * (size_t)(w->sch.m - w->sch.n);
    return (size_t)floor(s * (double)n + 1e-9);
}

static void sp_after_step(pare_trainer *t, void *user)
{
    sp_watch *w = user;
    long step = pare_trainer_global_step(t) - 1;
    /* grow at k*interval (k >= 1, before `until`), prune back half an interval later */
    long cycle = step - step % w->interval;
    int grown = cycle > 0 && cycle < w->until && step % w->interval < w->interval / 2;
    w->steps++;
    w->grown_steps += grown;
    for (int u = 1; u < w->n_units - 1; u++) {
        pare_param *p = &w->g->params[w->units[u].weight];
        if (!p->mask) {
            w->bad++;
            pare_test_fail(__FILE__, __LINE__, "%s has no mask at step %ld", p->name, step);
            continue;
        }
        size_t n = p->t->n, z = zeros_of(p->mask, n), want;
        if (grown) {
            /* growth is unstructured: the density rises by `grow` from the target */
            size_t target = exact_count(w, w->sparse, n);
            want = (size_t)floor(((double)target / (double)n - w->grow) * (double)n + 1e-9);
        } else {
            want = exact_count(w, w->sparse, n);
        }
        if (z != want) {
            w->bad++;
            pare_test_fail(__FILE__, __LINE__, "%s (%s): %zu pruned after step %ld, wanted %zu (%s)", p->name,
                           w->scheme, z, step, want, grown ? "grown" : "at target");
        }
        if (!grown && !pare_scheme_satisfied(&w->sch, p->t, p->mask)) {
            w->bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: the mask breaks %s after step %ld", p->name, w->scheme, step);
        }
        size_t stray = 0;
        for (size_t j = 0; j < n; j++)
            stray += !p->mask[j] && p->t->data[j] != 0.0f;
        if (stray) {
            w->bad++;
            pare_test_fail(__FILE__, __LINE__, "%s: %zu pruned weights are not 0 after step %ld", p->name, stray,
                           step);
        }
        /* a cycle: the mask just before a grow vs just after its prune-back */
        if (step % w->interval == w->interval - 1) {
            if (!w->before[u])
                w->before[u] = malloc(n);
            else if (memcmp(w->before[u], p->mask, n) != 0 && u == 1)
                w->changed++;
            memcpy(w->before[u], p->mask, n);
        }
    }
}

static void sparse_run(const char *scheme, int sparse_all)
{
    pare_dataset *tr = eff_train(160);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 1, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 2;
    c.batch = 16;
    c.threads = 2;
    c.eff.sparse = 0.875f;
    c.eff.sparse_scheme = scheme;
    c.eff.sparse_every = 4;
    c.eff.sparse_grow = 0.0625f;
    c.eff.sparse_all = sparse_all;
    sp_watch w;
    memset(&w, 0, sizeof w);
    w.g = g;
    w.n_units = pare_units(g, w.units);
    w.scheme = scheme;
    CHECK_OK(pare_scheme_parse(scheme, &w.sch));
    w.sparse = 0.875;
    w.grow = 0.0625;
    w.interval = 4;
    w.until = (long)floor(0.75 * 20); /* 2 epochs of 10 steps */
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    pare_train_hooks h = {.user = &w, .after_step = sp_after_step};
    pare_trainer_set_hooks(t, &h);
    CHECK_OK(pare_trainer_run(t, tr, NULL));
    CHECKF(w.steps == 20, "%ld steps", w.steps);
    CHECKF(w.grown_steps == 6, "%ld steps in the grown phase", w.grown_steps);
    CHECKF(w.changed >= 2, "%s: prune-and-grow never changed the mask (%ld cycles)", scheme, w.changed);
    /* the exempt layers stay dense unless --sparse-all */
    CHECK(!g->params[w.units[0].weight].mask == !sparse_all);
    pare_epoch_stats st;
    CHECK_OK(pare_trainer_epoch_stats(t, 2, &st));
    /* 87.5% unstructured runs the sparse kernels; 2:4 (50%) stays on the dense path */
    if (w.sch.kind == PARE_SCHEME_UNSTRUCTURED)
        CHECKF(st.flops < 0.5 * st.flops_dense, "%s: %.3g FLOPs of %.3g dense", scheme, st.flops, st.flops_dense);
    else
        CHECKF(st.flops <= st.flops_dense, "%s: %.3g FLOPs of %.3g dense", scheme, st.flops, st.flops_dense);
    for (int u = 0; u < 16; u++)
        free(w.before[u]);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
}

PARE_TEST(efficient_sparse_exact_after_every_update)
{
    sparse_run("unstructured", 0);
    sparse_run("2:4", 0);
}

/* ---- b: progressive freezing keeps frozen units bit-identical ---------------------- */

typedef struct snap {
    pare_graph *g;
    int n;
    float *p[4][64];          /* after epoch e (1..3): every parameter (BN statistics included) */
    int frozen[4];
    long examples[4];
} snap;

static void on_epoch_snap(const pare_train_event *ev, void *user)
{
    snap *s = user;
    if (ev->kind != PARE_EV_EPOCH || ev->epoch > 3)
        return;
    for (int i = 0; i < s->g->n_params && i < 64; i++) {
        size_t n = s->g->params[i].t->n;
        s->p[ev->epoch][i] = malloc(sizeof(float) * n);
        memcpy(s->p[ev->epoch][i], s->g->params[i].t->data, sizeof(float) * n);
    }
    s->frozen[ev->epoch] = ev->stats->units_frozen;
    s->examples[ev->epoch] = ev->stats->examples;
}

/* Parameters of unit u (its layer's and its batch norm's, statistics included). */
static int unit_params(const pare_graph *g, const pare_unit *u, int *out)
{
    int n = 0;
    for (int k = 0; k < g->nodes[u->node].n_param; k++)
        out[n++] = g->nodes[u->node].param[k];
    if (u->bn >= 0)
        for (int k = 0; k < g->nodes[u->bn].n_param; k++)
            out[n++] = g->nodes[u->bn].param[k];
    return n;
}

static int same_param(const snap *s, int a, int b, int i)
{
    return memcmp(s->p[a][i], s->p[b][i], sizeof(float) * s->g->params[i].t->n) == 0;
}

PARE_TEST(efficient_progressive_freezing_bit_identical)
{
    pare_dataset *tr = eff_train(256);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 2, &g));
    pare_unit units[16];
    int nu = pare_units(g, units);
    CHECK(nu == 6 && units[0].bn >= 0 && units[3].bn >= 0 && units[4].bn < 0);
    /* the model comes with its last unit frozen: that flag must survive */
    int last[8], nl = unit_params(g, &units[5], last);
    for (int k = 0; k < nl; k++)
        g->params[last[k]].frozen = 1;
    snap s;
    memset(&s, 0, sizeof s);
    s.g = g;
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 3;
    c.batch = 32;
    c.threads = 2;
    c.eff.freeze_from = 2;
    c.eff.freeze_units = 2;
    c.callback = on_epoch_snap;
    c.user = &s;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, tr, NULL));
    CHECKF(s.frozen[1] == 1 && s.frozen[2] == 3 && s.frozen[3] == 5, "frozen units by epoch: %d %d %d",
           s.frozen[1], s.frozen[2], s.frozen[3]);
    for (int u = 0; u < nu; u++) {
        int ps[8], np = unit_params(g, &units[u], ps);
        for (int k = 0; k < np; k++) {
            int i = ps[k];
            const char *name = g->params[i].name;
            if (u < 2) { /* frozen from epoch 2 on */
                CHECKF(same_param(&s, 1, 2, i) && same_param(&s, 2, 3, i), "%s changed while frozen", name);
            } else if (u < 4) { /* trained in epoch 2, frozen in epoch 3 */
                CHECKF(!same_param(&s, 1, 2, i), "%s did not train in epoch 2", name);
                CHECKF(same_param(&s, 2, 3, i), "%s changed while frozen", name);
            } else if (u == 4) {
                CHECKF(!same_param(&s, 2, 3, i), "%s did not train in epoch 3", name);
            } else {
                CHECKF(same_param(&s, 1, 2, i) && same_param(&s, 2, 3, i), "%s frozen by the model changed", name);
            }
            /* the schedule's flags are cleared at the end; the model's own kept */
            CHECKF(g->params[i].frozen == (u == 5), "%s: frozen flag %d after training", name, g->params[i].frozen);
        }
    }
    for (int e = 1; e <= 3; e++)
        for (int i = 0; i < 64; i++)
            free(s.p[e][i]);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
}

/* ---- c: skipped weight gradients leave every other update alone --------------------- */

static void one_step(pare_graph *g, const float *x, const int32_t *lab, int n, float wd, const uint8_t *gmask,
                     int gparam, int sparse_grads)
{
    pare_train_config c;
    pare_train_config_init(&c);
    c.batch = n;
    c.threads = 2;
    c.weight_decay = wd;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    if (gmask)
        pare_exec_set_grad_mask(pare_trainer_exec(t), gparam, gmask);
    pare_exec_set_sparse_grads(pare_trainer_exec(t), sparse_grads);
    double loss;
    CHECK_OK(pare_trainer_step(t, x, lab, n, &loss));
    pare_trainer_free(t);
}

static double param_diff(const pare_param *a, const pare_param *b)
{
    double m = 0;
    for (size_t j = 0; j < a->t->n; j++) {
        double d = fabs((double)a->t->data[j] - (double)b->t->data[j]);
        m = d > m ? d : m;
    }
    return m;
}

PARE_TEST(efficient_skipped_gradients_same_updates)
{
    const int n = 16;
    pare_dataset *tr = eff_train(n);
    float *x = malloc(sizeof(float) * 784 * n);
    int32_t lab[16];
    long idx[16];
    for (int i = 0; i < n; i++)
        idx[i] = i;
    pare_data_batch(tr, idx, n, x, lab, NULL, 0, 0, 1);
    for (int i = 0; i < 784 * n; i++)
        x[i] = (x[i] - 0.286f) / 0.353f;
    for (int kind = 0; kind < 3; kind++) {
        pare_graph *a, *b, *init;
        CHECK_OK(pare_zoo_build("lenet", 0, 4, &a));
        int conv1 = pare_graph_find_node(a, "conv1"), fc1 = pare_graph_find_node(a, "fc1");
        int w1 = pare_graph_node_param(a, fc1, PARE_ROLE_WEIGHT);
        size_t n1 = a->params[w1].t->n;
        uint8_t *m = malloc(n1);
        pare_rng r;
        pare_rng_seed(&r, 5, 6, 0, 0);
        for (size_t j = 0; j < n1; j++)
            m[j] = pare_rng_uniform(&r) < 0.3f;
        if (kind == 2) { /* a pruned fc1: the weights outside the mask are 0 */
            a->params[w1].mask = malloc(n1);
            memcpy(a->params[w1].mask, m, n1);
            for (size_t j = 0; j < n1; j++)
                if (!m[j])
                    a->params[w1].t->data[j] = 0.0f;
        }
        CHECK_OK(pare_graph_clone(a, &b));
        CHECK_OK(pare_graph_clone(a, &init));
        const char *what = kind == 0 ? "frozen conv1 and fc1" : kind == 1 ? "gradient mask on fc1" : "sparse gradients";
        if (kind == 0) {
            for (int k = 0; k < b->nodes[conv1].n_param; k++)
                b->params[b->nodes[conv1].param[k]].frozen = 1;
            for (int k = 0; k < b->nodes[fc1].n_param; k++)
                b->params[b->nodes[fc1].param[k]].frozen = 1;
        }
        /* weight decay 0 for the mask: SGD's decay would still move masked weights, by design */
        float wd = kind == 1 ? 0.0f : 5e-4f;
        one_step(a, x, lab, n, wd, NULL, 0, 0);
        one_step(b, x, lab, n, wd, kind == 1 ? m : NULL, w1, kind == 2);
        for (int i = 0; i < a->n_params; i++) {
            const pare_param *pa = &a->params[i], *pb = &b->params[i], *p0 = &init->params[i];
            if (b->params[i].frozen) {
                CHECKF(memcmp(pb->t->data, p0->t->data, sizeof(float) * pb->t->n) == 0, "%s: frozen %s moved",
                       what, pb->name);
            } else if (kind == 1 && i == w1) {
                size_t moved = 0, off = 0;
                for (size_t j = 0; j < n1; j++) {
                    if (!m[j])
                        moved += pb->t->data[j] != p0->t->data[j];
                    else
                        off += pb->t->data[j] != pa->t->data[j];
                }
                CHECKF(moved == 0, "%s: %zu masked weights moved", what, moved);
                CHECKF(off == 0, "%s: %zu kept weights differ from the full backward's", what, off);
            } else {
                double d = param_diff(pa, pb);
                /* skipping work must not change the rest: bit-identical, or
                 * sparse kernels' other summation order */
                CHECKF(d <= (kind == 2 ? 1e-6 : 0.0), "%s: %s differs by %g from the full backward's", what,
                       pa->name, d);
                if (kind == 2 && i == w1)
                    for (size_t j = 0; j < n1; j++)
                        if (!m[j] && pb->t->data[j] != 0.0f) {
                            CHECKF(0, "%s: pruned weight %zu of fc1 is %g", what, j, (double)pb->t->data[j]);
                            break;
                        }
            }
        }
        free(m);
        pare_graph_free(a);
        pare_graph_free(b);
        pare_graph_free(init);
    }
    free(x);
    pare_dataset_free(tr);
}

/* ---- d: sieving, data removal, batch dropping ---------------------------------------- */

static pare_eff *eff_for(pare_graph *g, const pare_efficiency *o, int epochs, int batch, long n)
{
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = epochs;
    c.batch = batch;
    c.eff = *o;
    pare_eff *e = NULL;
    CHECK_OK(pare_eff_new(g, &c, n, &e));
    return e;
}

/* Feeds the outcomes of an epoch's examples twice: even examples right then
 * wrong (a forgetting event each epoch they train), odd ones always right. */
static void feed(pare_eff *e, const long *order, long m)
{
    float logits[2 * 64];
    int32_t lab[64];
    for (int pass = 0; pass < 2; pass++)
        for (long s = 0; s < m; s += 64) {
            int k = (int)(m - s < 64 ? m - s : 64);
            for (int i = 0; i < k; i++) {
                long x = order[s + i];
                int right = x % 2 || pass == 0;
                logits[2 * i] = 1.0f;
                logits[2 * i + 1] = 0.0f;
                lab[i] = right ? 0 : 1;
            }
            pare_eff_after_forward(e, order + s, logits, lab, k, 2);
        }
}

PARE_TEST(efficient_sieving_cycles_every_example)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    const long n = 500;
    pare_efficiency o;
    memset(&o, 0, sizeof o);
    o.sieve = 0.2f; /* 100 wait; 10% of the active 400 = 40 swap each epoch */
    const int epochs = 8;
    pare_eff *e = eff_for(g, &o, epochs, 50, n);
    long *order = malloc(sizeof(long) * n);
    uint8_t *seen = calloc((size_t)n, 1), *in_prev = calloc((size_t)n, 1), *in_now = calloc((size_t)n, 1);
    int *last_seen = malloc(sizeof(int) * n);
    for (long i = 0; i < n; i++)
        last_seen[i] = -1;
    int covered_at = -1, max_gap = 0;
    for (int ep = 0; ep < epochs && e; ep++) {
        long m = pare_eff_epoch_begin(e, ep, 1, order);
        CHECKF(m == 400, "epoch %d: the active set has %ld examples", ep + 1, m);
        CHECK(pare_eff_epoch_steps(e, ep) == 8);
        memset(in_now, 0, (size_t)n);
        for (long i = 0; i < m; i++) {
            CHECKF(!in_now[order[i]], "example %ld twice in epoch %d", order[i], ep + 1);
            in_now[order[i]] = 1;
            seen[order[i]] = 1;
            if (last_seen[order[i]] >= 0 && ep - last_seen[order[i]] > max_gap)
                max_gap = ep - last_seen[order[i]];
            last_seen[order[i]] = ep;
        }
        if (covered_at < 0 && zeros_of(seen, (size_t)n) == 0)
            covered_at = ep + 1;
        if (ep > 0) {
            /* who left: the least forgotten, i.e. odd examples while any was active */
            long left = 0, even_left = 0;
            for (long i = 0; i < n; i++)
                if (in_prev[i] && !in_now[i]) {
                    left++;
                    even_left += i % 2 == 0;
                }
            CHECKF(left == 40, "epoch %d: %ld examples left the active set, wanted 40", ep + 1, left);
            CHECKF(even_left == 0, "epoch %d: %ld often-forgotten examples left", ep + 1, even_left);
        }
        memcpy(in_prev, in_now, (size_t)n);
        feed(e, order, m);
        long out;
        int fz, un;
        double sp;
        CHECK_OK(pare_eff_epoch_end(e, NULL, ep));
        pare_train_stats(g, e, &out, &fz, &un, &sp);
        CHECKF(out == 100, "epoch %d: %ld examples out of the set", ep + 1, out);
    }
    /* the queue of 100 drains 40 per epoch: every example is in by epoch 4 */
    CHECKF(covered_at == 4, "every example trained on by epoch %d, wanted 4", covered_at);
    CHECKF(max_gap <= 4, "an example waited %d epochs", max_gap);
    pare_eff_free(e);

    /* data removal: floor(0.3 * 500 * e / 3) gone by the start of epoch e (0-based) */
    memset(&o, 0, sizeof o);
    o.drop_data = 0.3f;
    e = eff_for(g, &o, 4, 64, n);
    memset(seen, 0, (size_t)n);
    const long want[4] = {500, 450, 400, 350};
    for (int ep = 0; ep < 4 && e; ep++) {
        long m = pare_eff_epoch_begin(e, ep, 1, order);
        CHECKF(m == want[ep], "drop-data: epoch %d trains on %ld, wanted %ld", ep + 1, m, want[ep]);
        CHECK(pare_eff_epoch_steps(e, ep) == (want[ep] + 63) / 64);
        memset(in_now, 0, (size_t)n);
        for (long i = 0; i < m; i++) {
            in_now[order[i]] = 1;
            CHECKF(!seen[order[i]] || ep == 0 || in_prev[order[i]], "a removed example came back");
        }
        if (ep > 0) {
            long even_left = 0;
            for (long i = 0; i < n; i++)
                even_left += in_prev[i] && !in_now[i] && i % 2 == 0;
            CHECKF(even_left == 0, "drop-data removed %ld often-forgotten examples", even_left);
        }
        for (long i = 0; i < m; i++)
            seen[order[i]] = 1;
        memcpy(in_prev, in_now, (size_t)n);
        feed(e, order, m);
        CHECK_OK(pare_eff_epoch_end(e, NULL, ep));
    }
    pare_eff_free(e);

    /* batch dropping: seeded, about p of the steps */
    memset(&o, 0, sizeof o);
    o.drop_batch = 0.5f;
    e = eff_for(g, &o, 1, 1, 20000);
    long skipped = 0;
    for (long s = 0; s < 20000 && e; s++)
        skipped += pare_eff_skip_batch(e, s);
    CHECKF(labs(skipped - 10000) < 400, "drop-batch 0.5 skipped %ld of 20000 steps", skipped);
    pare_eff_free(e);
    free(order);
    free(seen);
    free(in_prev);
    free(in_now);
    free(last_seen);
    pare_graph_free(g);
}

PARE_TEST(efficient_epoch_stats_examples)
{
    /* through the trainer: the examples each epoch reports */
    pare_dataset *tr = eff_train(400);
    for (int kind = 0; kind < 2; kind++) {
        pare_graph *g;
        CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
        pare_train_config c;
        pare_train_config_init(&c);
        c.epochs = 3;
        c.batch = 40;
        c.threads = 2;
        if (kind == 0)
            c.eff.sieve = 0.2f;
        else
            c.eff.drop_batch = 0.5f;
        snap s;
        memset(&s, 0, sizeof s);
        s.g = g;
        c.callback = on_epoch_snap;
        c.user = &s;
        pare_trainer *t;
        CHECK_OK(pare_trainer_new(g, &c, &t));
        CHECK_OK(pare_trainer_run(t, tr, NULL));
        long want_total = 0, got_total = 0;
        pare_eff *e = NULL;
        if (kind == 1)
            e = eff_for(g, &c.eff, 3, 40, 400);
        for (int ep = 1; ep <= 3; ep++) {
            pare_epoch_stats st;
            CHECK_OK(pare_trainer_epoch_stats(t, ep, &st));
            if (kind == 0) {
                CHECKF(st.examples == 320 && st.examples_out == 80, "sieve: epoch %d: %ld examples, %ld out", ep,
                       st.examples, st.examples_out);
            } else {
                long want = 0;
                for (long k = 0; k < 10; k++)
                    want += e && !pare_eff_skip_batch(e, (ep - 1) * 10 + k) ? 40 : 0;
                CHECKF(st.examples == want, "drop-batch: epoch %d: %ld examples, wanted %ld", ep, st.examples, want);
                want_total += want;
                got_total += st.examples;
            }
            /* nothing masked or frozen: each example trained costs one dense step's share */
            double f1, d1;
            pare_train_flops(g, NULL, 1, &f1, &d1);
            CHECKF(st.flops == f1 * (double)st.examples && st.flops_dense == d1 * 400,
                   "epoch %d: %.6g FLOPs for %ld examples (%.6g each), dense %.6g", ep, st.flops, st.examples, f1,
                   st.flops_dense);
            for (int i = 0; i < 64; i++)
                free(s.p[ep][i]);
        }
        if (kind == 1)
            CHECKF(want_total > 0 && want_total < 1200, "drop-batch 0.5 kept %ld of 1200 examples", want_total);
        pare_eff_free(e);
        pare_trainer_free(t);
        pare_graph_free(g);
    }
    pare_dataset_free(tr);
}

/* ---- e: CKA ----------------------------------------------------------------------------- */

/* ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) in double, features centred. */
static double naive_cka(const float *x, int d, const float *y, int d2, int n)
{
    double *xc = malloc(sizeof(double) * (size_t)n * d), *yc = malloc(sizeof(double) * (size_t)n * d2);
    for (int j = 0; j < d; j++) {
        double m = 0;
        for (int i = 0; i < n; i++)
            m += x[i * d + j];
        m /= n;
        for (int i = 0; i < n; i++)
            xc[i * d + j] = x[i * d + j] - m;
    }
    for (int j = 0; j < d2; j++) {
        double m = 0;
        for (int i = 0; i < n; i++)
            m += y[i * d2 + j];
        m /= n;
        for (int i = 0; i < n; i++)
            yc[i * d2 + j] = y[i * d2 + j] - m;
    }
    double yx = 0, xx = 0, yy = 0;
    for (int a = 0; a < d2; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += yc[i * d2 + a] * xc[i * d + b];
            yx += s * s;
        }
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += xc[i * d + a] * xc[i * d + b];
            xx += s * s;
        }
    for (int a = 0; a < d2; a++)
        for (int b = 0; b < d2; b++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += yc[i * d2 + a] * yc[i * d2 + b];
            yy += s * s;
        }
    free(xc);
    free(yc);
    return yx / (sqrt(xx) * sqrt(yy));
}

PARE_TEST(efficient_cka_hand_values)
{
    /* centred: x = (-1, 0, 1), y = (-1, -2, 1) + ... : y^T x = 1, |x|^2 = 2, |y|^2 = 2 -> 1/4 */
    const float x[3] = {1, 2, 3}, y[3] = {1, 0, 2};
    CHECK_NEAR(pare_linear_cka(x, 1, y, 1, 3), 0.25, 1e-12);
    CHECK_NEAR(pare_linear_cka(x, 1, x, 1, 3), 1.0, 1e-12);
    /* random multi-feature matrices against the feature-space formula */
    const int n = 37, d = 11, d2 = 6;
    float *a = malloc(sizeof(float) * n * d), *b = malloc(sizeof(float) * n * d2), *s = malloc(sizeof(float) * n * d);
    pare_test_fill(a, (size_t)n * d, -1, 1, 31);
    pare_test_fill(b, (size_t)n * d2, -1, 1, 32);
    for (int i = 0; i < n; i++) /* some shared signal so the value is not near 0 */
        for (int j = 0; j < d2; j++)
            b[i * d2 + j] += 0.7f * a[i * d + j] + 3.0f;
    double want = naive_cka(a, d, b, d2, n);
    double got = pare_linear_cka(a, d, b, d2, n);
    CHECKF(want > 0.2 && want < 0.95, "the random case is not informative: %g", want);
    CHECK_NEAR(got, want, 1e-5);
    CHECK_NEAR(pare_linear_cka(b, d2, a, d, n), want, 1e-5); /* symmetric */
    CHECK_NEAR(pare_linear_cka(a, d, a, d, n), 1.0, 1e-6);
    /* invariant to isotropic scaling and to shifting */
    for (int i = 0; i < n * d; i++)
        s[i] = 4.0f * a[i] - 2.5f;
    CHECK_NEAR(pare_linear_cka(s, d, b, d2, n), want, 1e-5);
    free(a);
    free(b);
    free(s);
}

/* ---- f: resume gives the same bytes -------------------------------------------------- */

/* Trains with every technique on, stopping at the steps in stops[] (0-ended)
 * and resuming each time; the final graph in *out and the last epoch's stats. */
static void same_params(const pare_graph *a, const pare_graph *b, const char *what);

static void run_with_stops(const long *stops, const char *ckpt, long cache_mb, pare_graph **out,
                           pare_epoch_stats *last)
{
    pare_dataset *tr = eff_train(120);
    pare_graph *g = NULL;
    pare_test_stopper s = {0, 0};
    int k = 0, done = 0;
    remove(ckpt);
    for (int round = 0; round < 8 && !done; round++) {
        pare_graph_free(g);
        CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 7, &g));
        pare_train_config c;
        pare_train_config_init(&c);
        c.epochs = 3;
        c.batch = 12;
        c.threads = 2;
        c.checkpoint_path = ckpt;
        c.resume = round > 0;
        c.eff.sparse = 0.8f;
        c.eff.sparse_every = 3;
        c.eff.freeze_from = 2;
        c.eff.freeze_cka = 0.2f;
        c.eff.freeze_check = 5;
        c.eff.freeze_max = 4;
        c.eff.sieve = 0.2f;
        c.eff.drop_data = 0.1f;
        c.eff.drop_batch = 0.2f;
        c.eff.grad_mask = 0.5f;
        c.eff.grad_mask_every = 4;
        c.eff.cache_frozen_mb = cache_mb;
        pare_test_stop_config(&c, &s, stops[k]);
        pare_trainer *t;
        CHECK_OK(pare_trainer_new(g, &c, &t));
        pare_status st = pare_trainer_run(t, tr, NULL);
        if (st == PARE_ECANCELLED && stops[k]) {
            CHECKF(pare_trainer_global_step(t) == stops[k], "stopped at %ld, not %ld", pare_trainer_global_step(t),
                   stops[k]);
            k++;
        } else {
            CHECK_OK(st);
            CHECKF(stops[k] == 0, "the run ended before step %ld", stops[k]);
            CHECK_OK(pare_trainer_epoch_stats(t, 3, last));
            done = 1;
        }
        pare_trainer_free(t);
    }
    CHECK(done);
    *out = g;
    pare_dataset_free(tr);
}

PARE_TEST(efficient_resume_bit_identical)
{
    char ck[1100];
    snprintf(ck, sizeof ck, "%s", pare_test_path("eff.ckpt"));
    const long none[] = {0}, stops[] = {5, 8, 14, 20, 0};
    pare_graph *a, *b, *c;
    pare_epoch_stats sa, sb, sc;
    run_with_stops(none, ck, 0, &a, &sa);
    run_with_stops(stops, ck, 0, &b, &sb);
    /* the frozen prefix's cache starts empty at every resume: the same bytes still */
    run_with_stops(stops, ck, 16, &c, &sc);
    same_params(a, c, "resumed with the cache");
    CHECKF(sc.examples_cached > 0 && sc.flops < sa.flops, "the cache served %ld examples, FLOPs %.4g of %.4g",
           sc.examples_cached, sc.flops, sa.flops);
    pare_graph_free(c);
    CHECK(a->n_params == b->n_params);
    for (int i = 0; i < a->n_params && i < b->n_params; i++) {
        const pare_param *pa = &a->params[i], *pb = &b->params[i];
        CHECKF(memcmp(pa->t->data, pb->t->data, sizeof(float) * pa->t->n) == 0, "%s differs after resuming",
               pa->name);
        CHECKF(!pa->mask == !pb->mask && (!pa->mask || memcmp(pa->mask, pb->mask, pa->t->n) == 0),
               "%s: masks differ after resuming", pa->name);
        CHECKF(pa->frozen == pb->frozen && !pa->frozen, "%s: frozen %d vs %d", pa->name, pa->frozen, pb->frozen);
    }
    CHECK(sa.flops == sb.flops && sa.examples == sb.examples && sa.examples_out == sb.examples_out &&
          sa.units_frozen == sb.units_frozen && sa.train_loss == sb.train_loss);
    CHECKF(sa.units_frozen >= 1 && sa.examples_out > 0 && sa.sparsity > 0.5,
           "the techniques were not all active: %d frozen, %ld out, sparsity %.2f", sa.units_frozen, sa.examples_out,
           sa.sparsity);
    pare_graph_free(a);
    pare_graph_free(b);
}

/* ---- g: FLOP accounting ------------------------------------------------------------------ */

PARE_TEST(efficient_flops_hand_count)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 0, &g));
    /* multiply-accumulates per image: H*W*O*C*9 per conv, I*O per linear, and
     * one per element for each batch norm (its affine step) */
    const double conv[4] = {28. * 28 * 32 * 1 * 9, 28. * 28 * 32 * 32 * 9, 14. * 14 * 64 * 32 * 9,
                            14. * 14 * 64 * 64 * 9};
    const double lin[2] = {3136. * 256, 256. * 10};
    const double bn[4] = {28. * 28 * 32, 28. * 28 * 32, 14. * 14 * 64, 14. * 14 * 64};
    double fwd = 0;
    for (int i = 0; i < 4; i++)
        fwd += conv[i] + bn[i];
    fwd += lin[0] + lin[1];
    CHECK_NEAR(fwd - bn[0] - bn[1] - bn[2] - bn[3], 19094528, 0); /* WORKLOADS.md: 19.09 MMAC */
    /* dense step: forward, input gradients (all but the first conv's), weight gradients */
    double dense = 2 * fwd + 2 * (fwd - conv[0]) + 2 * (fwd - bn[0] - bn[1] - bn[2] - bn[3]);
    double f, fd;
    pare_train_flops(g, NULL, 1, &f, &fd);
    CHECK_NEAR(f, dense, 0);
    CHECK_NEAR(fd, dense, 0);
    pare_train_flops(g, NULL, 128, &f, &fd);
    CHECK_NEAR(f, 128 * dense, 0);

    /* freezing unit 0 (conv1 + bn1) saves conv1's weight gradient and every
     * input gradient down to conv2's: nothing before them trains */
    pare_unit units[8];
    pare_units(g, units);
    int ps[8], np = unit_params(g, &units[0], ps);
    for (int k = 0; k < np; k++)
        g->params[ps[k]].frozen = 1;
    pare_train_flops(g, NULL, 1, &f, &fd);
    CHECK_NEAR(f, dense - 2 * conv[0] - 2 * bn[0] - 2 * conv[1], 0);
    CHECK_NEAR(fd, dense, 0);
    /* and unit 1 too: conv2's weight gradient, bn2's and conv3's input gradients */
    np = unit_params(g, &units[1], ps);
    for (int k = 0; k < np; k++)
        g->params[ps[k]].frozen = 1;
    pare_train_flops(g, NULL, 1, &f, &fd);
    CHECK_NEAR(f, dense - 2 * conv[0] - 2 * bn[0] - 2 * conv[1] - 2 * conv[1] - 2 * bn[1] - 2 * conv[2], 0);
    for (int i = 0; i < g->n_params; i++)
        g->params[i].frozen = 0;

    /* sparse training: masked layers on their sparse path scale all three terms by
     * their density (weight gradients only inside the mask) */
    pare_train_config c;
    pare_train_config_init(&c);
    c.eff.sparse = 0.9f;
    pare_eff *e = NULL;
    CHECK_OK(pare_eff_new(g, &c, 1000, &e));
    CHECK_OK(pare_eff_start(e));
    pare_exec *x;
    CHECK_OK(pare_exec_new(g, 4, 1, 1, &x));
    pare_eff_before_step(e, x, 1); /* not a growth step: sparse gradients */
    double want = dense;
    const double *mac[6] = {&conv[0], &conv[1], &conv[2], &conv[3], &lin[0], &lin[1]};
    int sparse_layers = 0;
    for (int u = 0; u < 6; u++) {
        const pare_param *p = &g->params[units[u].weight];
        if (!p->mask || !pare_op_sparse_path(g, units[u].node))
            continue;
        sparse_layers++;
        double d = 1.0 - (double)zeros_of(p->mask, p->t->n) / (double)p->t->n;
        int has_dx = u > 0;
        want -= (1 - d) * 2 * *mac[u] * (2 + has_dx);
    }
    CHECKF(sparse_layers == 4, "%d layers on the sparse path", sparse_layers);
    pare_train_flops(g, e, 1, &f, &fd);
    CHECK_NEAR(f / want, 1.0, 1e-12);
    CHECK_NEAR(fd, dense, 0);
    CHECKF(f < 0.15 * dense, "90%% sparse training costs %.3f of dense", f / dense);
    /* a growth step computes dense weight gradients */
    long grow_step = pare_eff_epoch_steps(e, 0);
    pare_eff_before_step(e, x, grow_step);
    double fg;
    pare_train_flops(g, e, 1, &fg, &fd);
    CHECKF(fg > f, "a growth step is not dearer (%g vs %g)", fg, f);
    pare_exec_free(x);
    pare_eff_free(e);
    pare_graph_free(g);
}

/* ---- h: bad options ------------------------------------------------------------------------ */

static int run_pare(const char *args, char *err, size_t n)
{
    const char *bin = getenv("PARE_BIN");
    char cmd[8192], ep[1100];
    snprintf(ep, sizeof ep, "%s", pare_test_path("eff-stderr.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >/dev/null 2>'%s'", pare_test_dir(), bin, args, ep);
    int st = system(cmd);
    err[0] = 0;
    FILE *f = fopen(ep, "rb");
    if (f) {
        size_t got = fread(err, 1, n - 1, f);
        err[got] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

PARE_TEST(efficient_bad_options)
{
    /* the library: one sentence naming the option */
    pare_train_config c;
    pare_train_config_init(&c);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
#define BAD(body, w)                                                                               \
    do {                                                                                           \
        pare_train_config b = c;                                                                   \
        pare_efficiency *o = &b.eff;                                                               \
        body;                                                                                      \
        pare_trainer *t = NULL;                                                                    \
        CHECK_STATUS(pare_trainer_new(g, &b, &t), PARE_EINVAL);                                    \
        CHECKF(strstr(pare_last_error(), w) != NULL, "wanted '%s' in: %s", w, pare_last_error());  \
        pare_trainer_free(t);                                                                      \
    } while (0)
    BAD(o->sparse = 1.5f, "--sparse-train");
    BAD(o->sparse = NAN, "--sparse-train");
    BAD(o->sieve = -1, "--sieve");
    BAD(o->freeze_cka = 2, "--freeze-cka");
    BAD((o->sieve = 0.6f, o->drop_data = 0.5f), "no data");
    BAD((o->sparse = 0.5f, o->sparse_grow = 0.6f), "--sparse-grow");
    BAD(o->drop_batch = 1, "--drop-batch");
    BAD(o->grad_mask = -0.1f, "--grad-mask");
    BAD(o->freeze_from = -1, "--freeze-from");
    BAD(o->cache_frozen_mb = -1, "--cache-frozen");
    BAD((o->cache_frozen_mb = 16, b.augment_hflip = 1), "augmentation");
#undef BAD
    /* an unknown scheme fails when the run starts, naming it */
    pare_dataset *tr = eff_train(64);
    c.eff.sparse = 0.5f;
    c.eff.sparse_scheme = "diagonal";
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK(pare_trainer_run(t, tr, NULL) != PARE_OK);
    CHECKF(strstr(pare_last_error(), "diagonal") && strstr(pare_last_error(), "sparse training"), "%s",
           pare_last_error());
    pare_trainer_free(t);
    pare_dataset_free(tr);
    pare_graph_free(g);

    /* the command: exit status, one line on stderr naming the flag */
    if (!getenv("PARE_BIN")) {
        printf("  skipped the command's part: PARE_BIN is not set (run through make check)\n");
        return;
    }
    char base[1400];
    snprintf(base, sizeof base, "train --model lenet --data '%s' --limit 64 --epochs 1 --out m.pare --quiet",
             eff_dir());
    static const struct {
        const char *args, *want;
    } cli[] = {
        {"--sparse-train 1.5", "--sparse-train"},
        {"--sieve -1", "--sieve"},
        {"--sparse-train 0.9 --scheme diagonal", "diagonal"},
        {"--scheme 2:4", "--sparse-train"},
        {"--drop-batch 1", "--drop-batch"},
        {"--freeze-cka 1.5", "--freeze-cka"},
        {"--sieve 0.6 --drop-data 0.5", "no data"},
        {"--grad-mask x", "--grad-mask"},
        {"--sparse-train 0.9 --scheme 3:7", "3:7"},
        {"--cache-frozen 64 --crop 2", "augmentation"},
        {"--cache-frozen -5", "--cache-frozen"},
    };
    for (size_t i = 0; i < sizeof cli / sizeof cli[0]; i++) {
        char args[2000], err[4096];
        snprintf(args, sizeof args, "%s %s", base, cli[i].args);
        int code = run_pare(args, err, sizeof err);
        int lines = 0;
        for (const char *p = err; *p; p++)
            lines += *p == '\n';
        CHECKF(code != 0 && code < 128, "pare %s: exit %d", cli[i].args, code);
        CHECKF(lines == 1 && !strncmp(err, "pare", 4) && strstr(err, cli[i].want),
               "pare %s: stderr should be one line naming '%s': %s", cli[i].args, cli[i].want, err);
    }
    /* and the happy path of pare finetune on a sparse, frozen-flag-free model */
    char args[2000], err[4096];
    snprintf(args, sizeof args, "%s --sparse-train 0.5 --freeze-from 1", base);
    CHECKF(run_pare(args, err, sizeof err) == 0, "pare train with efficiency options failed: %s", err);
    snprintf(args, sizeof args,
             "finetune m.pare --data '%s' --limit 64 --out f.pare --quiet --sieve 0.25 --drop-batch 0.25", eff_dir());
    CHECKF(run_pare(args, err, sizeof err) == 0, "pare finetune failed: %s", err);
    snprintf(args, sizeof args, "finetune m.pare --model lenet --data '%s' --out f.pare", eff_dir());
    CHECKF(run_pare(args, err, sizeof err) == 2 && strstr(err, "--model"), "finetune --model: %s", err);
}

/* ---- h: the frozen prefix's cache --------------------------------------------------------- */

static void freeze_units(pare_graph *g, int upto)
{
    pare_unit units[64];
    int nu = pare_units(g, units);
    for (int u = 0; u < nu; u++) {
        int ps[8], np = unit_params(g, &units[u], ps);
        for (int k = 0; k < np; k++)
            g->params[ps[k]].frozen = u < upto;
    }
}

/* The oracle: node c is a fixed cut when everything up to it has no trainable,
 * unfrozen parameter (and no dropout), and nothing after it reads before it. */
static int naive_cut_ok(const pare_graph *g, int c)
{
    for (int v = 1; v <= c; v++) {
        const pare_node *nd = &g->nodes[v];
        if (nd->op == PARE_OP_DROPOUT || nd->op == PARE_OP_FAKEQUANT)
            return 0;
        for (int k = 0; k < nd->n_param; k++)
            if (g->params[nd->param[k]].trainable && !g->params[nd->param[k]].frozen)
                return 0;
    }
    for (int v = c + 1; v < g->n_nodes; v++)
        for (int j = 0; j < g->nodes[v].n_in; j++)
            if (g->nodes[v].in[j] < c)
                return 0;
    return 1;
}

static int cut_of(pare_graph *g, int units_frozen)
{
    freeze_units(g, units_frozen);
    pare_exec *x;
    CHECK_OK(pare_exec_new(g, 2, 1, 1, &x));
    int c = x ? pare_exec_fixed_prefix(x) : -1;
    pare_exec_free(x);
    /* the deepest node the oracle accepts, short of the output */
    int want = 0;
    for (int v = 1; v < g->output; v++)
        if (naive_cut_ok(g, v))
            want = v;
    CHECKF(c == want, "%s with %d units frozen: cut at %d, the oracle says %d", g->name, units_frozen, c, want);
    return c;
}

PARE_TEST(efficient_fixed_prefix_cuts)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 1, &g));
    CHECK(cut_of(g, 0) == 0);
    /* conv1 bn1 relu conv2 bn2 relu pool1 | conv3: the pool ends the prefix */
    int c = cut_of(g, 2);
    CHECKF(c > 0 && !strcmp(g->nodes[c].name, "pool1"), "cut at %s", c > 0 ? g->nodes[c].name : "none");
    /* four units: past pool2 to the flatten that shares its bytes */
    c = cut_of(g, 4);
    CHECKF(c > 0 && g->nodes[c].op == PARE_OP_FLATTEN && !strcmp(g->nodes[g->nodes[c].in[0]].name, "pool2"),
           "cut at %s", c > 0 ? g->nodes[c].name : "none");
    /* a frozen conv whose batch norm trains: the prefix ends before that norm */
    freeze_units(g, 1);
    pare_unit units[16];
    pare_units(g, units);
    for (int k = 0; k < g->nodes[units[0].bn].n_param; k++)
        g->params[g->nodes[units[0].bn].param[k]].frozen = 0;
    pare_exec *x;
    CHECK_OK(pare_exec_new(g, 2, 1, 1, &x));
    CHECKF(pare_exec_fixed_prefix(x) == units[0].node, "cut at %d, not the conv %d", pare_exec_fixed_prefix(x),
           units[0].node);
    pare_exec_free(x);
    pare_graph_free(g);

    /* residual blocks: the skip reads the block's input, so a half-frozen block
     * leaves the cut at its input, and a whole one moves it to its output */
    CHECK_OK(pare_zoo_build("resnet20", 0, 1, &g));
    int stem = cut_of(g, 1);
    CHECK(stem > 0 && g->nodes[stem].op == PARE_OP_RELU);
    CHECKF(cut_of(g, 2) == stem, "half a block frozen moved the cut past the skip");
    int block = cut_of(g, 3);
    CHECKF(block > stem && g->nodes[block].op == PARE_OP_RELU && g->nodes[g->nodes[block].in[0]].op == PARE_OP_ADD,
           "a whole block frozen: cut at %d (%s)", block, g->nodes[block].name);
    for (int u = 4; u < 12; u++)
        cut_of(g, u);

    /* forward from the cut gives the full forward's output, whatever lies before it */
    CHECK_OK(pare_exec_new(g, 3, 1, 1, &x));
    float *in = pare_exec_input(x);
    pare_test_fill(in, 3 * pare_shape_size(g->nodes[0].out), -1, 1, 5);
    pare_exec_forward(x, 3, 9);
    size_t no = 3 * pare_shape_size(g->nodes[g->output].out), nc = 3 * pare_shape_size(g->nodes[block].out);
    float *want = malloc(sizeof(float) * no), *cutv = malloc(sizeof(float) * nc);
    memcpy(want, pare_exec_output(x), sizeof(float) * no);
    memcpy(cutv, pare_exec_value(x, block), sizeof(float) * nc);
    pare_exec_free(x);
    CHECK_OK(pare_exec_new(g, 3, 1, 1, &x));
    pare_test_fill(pare_exec_input(x), 3 * pare_shape_size(g->nodes[0].out), -1, 1, 6); /* other input */
    memcpy(pare_exec_value_buf(x, block), cutv, sizeof(float) * nc);
    pare_exec_forward_from(x, 3, 9, block);
    CHECK(memcmp(want, pare_exec_output(x), sizeof(float) * no) == 0);
    pare_exec_free(x);
    free(want);
    free(cutv);
    pare_graph_free(g);
}

typedef struct cache_run {
    pare_epoch_stats st[5];
    pare_graph *g;
} cache_run;

static void on_epoch_stats(const pare_train_event *ev, void *user)
{
    cache_run *r = user;
    if (ev->kind == PARE_EV_EPOCH && ev->epoch <= 4)
        r->st[ev->epoch] = *ev->stats;
}

static void cache_train(long cache_mb, float sieve, cache_run *r)
{
    pare_dataset *tr = eff_train(256);
    memset(r, 0, sizeof *r);
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 3, &r->g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 4;
    c.batch = 32;
    c.threads = 2;
    c.eff.freeze_from = 2;
    c.eff.freeze_units = 2;
    c.eff.freeze_max = 4;
    c.eff.sieve = sieve;
    c.eff.cache_frozen_mb = cache_mb;
    c.callback = on_epoch_stats;
    c.user = r;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(r->g, &c, &t));
    CHECK_OK(pare_trainer_run(t, tr, NULL));
    pare_trainer_free(t);
    pare_dataset_free(tr);
}

static void same_params(const pare_graph *a, const pare_graph *b, const char *what)
{
    for (int i = 0; i < a->n_params; i++)
        CHECKF(memcmp(a->params[i].t->data, b->params[i].t->data, sizeof(float) * a->params[i].t->n) == 0,
               "%s: %s differs from the run without the cache", what, a->params[i].name);
}

PARE_TEST(efficient_frozen_cache_same_bits)
{
    cache_run plain, cached, small, sieved, sieved_c;
    cache_train(0, 0, &plain);
    cache_train(64, 0, &cached);
    same_params(plain.g, cached.g, "cache");
    CHECK(plain.st[4].train_loss == cached.st[4].train_loss);
    /* epoch 2 fills the store at pool1; epoch 3 (4 units frozen) starts from it
     * and fills pool2's; epoch 4 starts from pool2 */
    CHECKF(cached.st[1].examples_cached == 0 && cached.st[2].examples_cached == 0 &&
               cached.st[3].examples_cached == 256 && cached.st[4].examples_cached == 256,
           "examples from the cache by epoch: %ld %ld %ld %ld", cached.st[1].examples_cached,
           cached.st[2].examples_cached, cached.st[3].examples_cached, cached.st[4].examples_cached);
    /* the FLOPs saved are exactly the skipped forwards: conv1, bn1, conv2, bn2
     * in epoch 3; conv1 to bn4 in epoch 4 (2 FLOPs a multiply-accumulate) */
    const double c12 = 28. * 28 * 32 * 9 + 28. * 28 * 32 + 28. * 28 * 32 * 32 * 9 + 28. * 28 * 32;
    const double c34 = 14. * 14 * 64 * 32 * 9 + 14. * 14 * 64 + 14. * 14 * 64 * 64 * 9 + 14. * 14 * 64;
    CHECK(plain.st[2].flops == cached.st[2].flops);
    CHECK_NEAR(plain.st[3].flops - cached.st[3].flops, 256 * 2 * c12, 1e-9 * plain.st[3].flops);
    CHECK_NEAR(plain.st[4].flops - cached.st[4].flops, 256 * 2 * (c12 + c34), 1e-9 * plain.st[4].flops);
    /* 1 MiB holds 41 of pool1's 24.5 KiB rows, and then one of pool2's: those
     * examples start from the cache (but for a few that join a batch's group
     * of uncached examples to make it as large as the threads), the rest of
     * each batch runs the prefix */
    cache_train(1, 0, &small);
    same_params(plain.g, small.g, "1 MiB cache");
    CHECKF(small.st[3].examples_cached >= 30 && small.st[3].examples_cached <= 42,
           "%ld examples from a 1 MiB cache", small.st[3].examples_cached);
    CHECKF(small.st[3].flops < plain.st[3].flops && small.st[3].flops > cached.st[3].flops,
           "a partial cache's FLOPs %.4g: between %.4g and %.4g", small.st[3].flops, cached.st[3].flops,
           plain.st[3].flops);
    /* with sieving, examples come and go from the active set */
    cache_train(0, 0.25f, &sieved);
    cache_train(64, 0.25f, &sieved_c);
    same_params(sieved.g, sieved_c.g, "sieving and cache");
    CHECKF(sieved_c.st[4].examples_cached > 0 && sieved_c.st[4].examples_cached <= sieved_c.st[4].examples,
           "%ld of %ld examples from the cache", sieved_c.st[4].examples_cached, sieved_c.st[4].examples);
    pare_graph_free(plain.g);
    pare_graph_free(cached.g);
    pare_graph_free(small.g);
    pare_graph_free(sieved.g);
    pare_graph_free(sieved_c.g);
}
