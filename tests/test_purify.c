/* Structural removal: pruned filters masked to exact zeros, and purified graphs
 * that are smaller yet compute the same outputs, rule by rule and on zoo models. */
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "test.h"

/* ---- building and pruning ------------------------------------------------ */

/* BN statistics and affine parameters away from the identity, so a pruned
 * channel left to PyTorch-style masking would carry a nonzero constant. */
static void randomize_bn(pare_graph *g, uint64_t seed)
{
    for (int i = 0; i < g->n_params; i++) {
        pare_tensor *t = g->params[i].t;
        uint64_t s = seed * 1000 + (uint64_t)i;
        switch (g->params[i].role) {
        case PARE_ROLE_BN_GAMMA:
            pare_test_fill(t->data, t->n, 0.5f, 1.5f, s);
            break;
        case PARE_ROLE_BN_BETA:
        case PARE_ROLE_BN_MEAN:
            pare_test_fill(t->data, t->n, -0.3f, 0.3f, s);
            break;
        case PARE_ROLE_BN_VAR:
            pare_test_fill(t->data, t->n, 0.5f, 2.0f, s);
            break;
        default:
            break;
        }
    }
}

static pare_graph *model(const char *name, uint64_t seed)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build(name, 0, seed, &g));
    if (g)
        randomize_bn(g, seed);
    return g;
}

static int node(const pare_graph *g, const char *name)
{
    int i = pare_graph_find_node(g, name);
    CHECKF(i >= 0, "no layer %s", name);
    return i < 0 ? 0 : i;
}

static pare_param *weight(pare_graph *g, const char *layer)
{
    return &g->params[pare_graph_node_param(g, node(g, layer), PARE_ROLE_WEIGHT)];
}

static pare_param *role(pare_graph *g, const char *layer, pare_param_role r)
{
    int p = pare_graph_node_param(g, node(g, layer), r);
    CHECKF(p >= 0, "layer %s has no %s", layer, pare_role_name(r));
    return p < 0 ? NULL : &g->params[p];
}

static size_t row_len(const pare_param *w)
{
    return w->t->n / (size_t)w->t->dims[0];
}

/* Filter pruning as a pruning method leaves it: the row masked and zero. */
static void prune_row(pare_graph *g, const char *layer, int o)
{
    pare_param *w = weight(g, layer);
    size_t len = row_len(w);
    if (!w->mask) {
        w->mask = malloc(w->t->n);
        memset(w->mask, 1, w->t->n);
    }
    memset(w->mask + (size_t)o * len, 0, len);
    memset(w->t->data + (size_t)o * len, 0, len * sizeof(float));
}

/* Prunes a random 30-60% of the filters of every conv (and of the listed
 * linear layers), chosen by a seeded stream per layer. */
static void prune_random(pare_graph *g, uint64_t seed, const char *const *linear)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const pare_node *nd = &g->nodes[i];
        int take = nd->op == PARE_OP_CONV2D;
        for (int k = 0; linear && linear[k]; k++)
            take |= !strcmp(linear[k], nd->name);
        if (!take)
            continue;
        pare_rng r;
        pare_rng_seed(&r, seed, 91, (uint64_t)i, 0);
        int O = nd->out.c, k = (int)((0.3 + 0.3 * pare_rng_uniform_d(&r)) * O + 0.5);
        int *perm = malloc(sizeof(int) * (size_t)O);
        for (int j = 0; j < O; j++)
            perm[j] = j;
        for (int j = 0; j < k; j++) {
            int s = j + (int)pare_rng_below(&r, (uint64_t)(O - j));
            int t = perm[j];
            perm[j] = perm[s];
            perm[s] = t;
            prune_row(g, nd->name, perm[j]);
        }
        free(perm);
    }
}

/* Whether filter o of a layer is still there (not masked out, or nonzero). */
static int alive(pare_graph *g, const char *layer, int o)
{
    pare_param *w = weight(g, layer);
    size_t len = row_len(w), at = (size_t)o * len;
    for (size_t k = 0; k < len; k++)
        if (w->mask ? w->mask[at + k] != 0 : w->t->data[at + k] != 0.0f)
            return 1;
    return 0;
}

static int n_alive(pare_graph *g, const char *layer)
{
    int n = 0, O = g->nodes[node(g, layer)].out.c;
    for (int o = 0; o < O; o++)
        n += alive(g, layer, o);
    return n;
}

/* How many channels survive in at least one of the layers (a residual stream). */
static int n_alive_union(pare_graph *g, const char *const *layers, int n_layers)
{
    int O = g->nodes[node(g, layers[0])].out.c, n = 0;
    for (int o = 0; o < O; o++) {
        int any = 0;
        for (int k = 0; k < n_layers; k++)
            any |= alive(g, layers[k], o);
        n += any;
    }
    return n;
}

static int out_channels(const pare_graph *g, const char *layer)
{
    return g->nodes[node(g, layer)].out.c;
}

/* ---- comparing ------------------------------------------------------------ */

/* max |ya - yb| / max |yb| over a batch of 4 random inputs. */
static double output_error(pare_graph *a, pare_graph *b, uint64_t seed)
{
    int c, h, w, oc, oh, ow;
    pare_graph_input_shape(a, &c, &h, &w);
    pare_graph_output_shape(a, &oc, &oh, &ow);
    size_t isz = (size_t)c * h * w * 4, osz = (size_t)oc * oh * ow * 4;
    float *x = malloc(sizeof(float) * isz), *ya = malloc(sizeof(float) * osz),
          *yb = malloc(sizeof(float) * osz);
    pare_test_fill(x, isz, -1.0f, 1.0f, seed);
    double err = INFINITY;
    pare_status sa = pare_graph_forward(a, x, 4, ya, 1);
    pare_status sb = pare_graph_forward(b, x, 4, yb, 1);
    CHECK_OK(sa);
    CHECK_OK(sb);
    if (sa == PARE_OK && sb == PARE_OK) {
        double d = 0, m = 0;
        for (size_t i = 0; i < osz; i++) {
            d = fmax(d, fabs((double)ya[i] - yb[i]));
            m = fmax(m, fabs((double)yb[i]));
        }
        err = d / (m > 0 ? m : 1e-30);
        if (d == 0)
            err = 0;
    }
    free(x);
    free(ya);
    free(yb);
    return err;
}

/* Same layers, attributes, shapes and parameters (values, masks) bit for bit. */
static int same_graph(const pare_graph *a, const pare_graph *b)
{
    if (a->n_nodes != b->n_nodes || a->n_params != b->n_params || a->output != b->output)
        return 0;
    for (int i = 0; i < a->n_nodes; i++) {
        const pare_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->op != y->op || strcmp(x->name, y->name) || memcmp(&x->a, &y->a, sizeof x->a) ||
            memcmp(&x->out, &y->out, sizeof x->out) || x->n_param != y->n_param)
            return 0;
        for (int k = 0; k < x->n_param; k++) {
            const pare_param *p = &a->params[x->param[k]], *q = &b->params[y->param[k]];
            if (p->t->n != q->t->n || memcmp(p->t->data, q->t->data, p->t->n * sizeof(float)) ||
                !p->mask != !q->mask || (p->mask && memcmp(p->mask, q->mask, p->t->n)) ||
                strcmp(p->name, q->name) || p->frozen != q->frozen)
                return 0;
        }
    }
    return 1;
}

/* Purifies g, checks the outputs and the graph, and that a second purify
 * changes nothing; returns the purified graph. */
static pare_graph *purify_checked(pare_graph *g, pare_purify_report *rep, uint64_t seed)
{
    pare_graph *p = NULL;
    CHECK_OK(pare_purify(g, &p, rep));
    if (!p)
        return NULL;
    CHECK_OK(pare_graph_validate(p));
    double err = output_error(g, p, seed);
    CHECKF(err <= 1e-5, "%s: purified outputs differ by %g (relative)", g->name, err);
    printf("  %s: outputs differ by %.3g (relative)\n", g->name, err);
    pare_graph *q = NULL;
    pare_purify_report r2;
    CHECK_OK(pare_purify(p, &q, &r2));
    if (q) {
        CHECKF(same_graph(p, q), "%s: purifying the purified graph changed it", g->name);
        CHECK(r2.params_after == r2.params_before && r2.macs_after == r2.macs_before);
        CHECK(r2.filters_removed == 0);
    }
    pare_purify_report_free(&r2);
    pare_graph_free(q);
    return p;
}

static void print_report(const char *what, const pare_purify_report *r)
{
    printf("  %s: params %lld -> %lld (%.2fx smaller), MACs %.4g -> %.4g (%.2fx fewer), "
           "%lld filters removed, %d rounds\n",
           what, r->params_before, r->params_after,
           (double)r->params_before / (double)r->params_after, r->macs_before, r->macs_after,
           r->macs_before / r->macs_after, r->filters_removed, r->rounds);
}

/* ---- zoo models ------------------------------------------------------------ */

PARE_TEST(purify_resnet20)
{
    pare_graph *g = model("resnet20", 21);
    if (!g)
        return;
    prune_random(g, 21, NULL);
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    CHECK(n > 0);
    pare_purify_report rep;
    pare_graph *p = purify_checked(g, &rep, 5);
    if (!p) {
        pare_graph_free(g);
        return;
    }
    /* Inside a block the first conv loses exactly its pruned filters. */
    char a[64];
    for (int s = 1; s <= 3; s++)
        for (int b = 0; b < 3; b++) {
            snprintf(a, sizeof a, "layer%d.%d.a.conv", s, b);
            CHECKF(out_channels(p, a) == n_alive(g, a), "%s keeps %d of %d live filters", a,
                   out_channels(p, a), n_alive(g, a));
        }
    /* The residual stream of a stage keeps the union of what adds into it. */
    for (int s = 1; s <= 3; s++) {
        char names[4][64];
        const char *list[4];
        int k = 0;
        if (s == 1)
            snprintf(names[k++], 64, "stem.conv");
        else
            snprintf(names[k++], 64, "layer%d.0.down.conv", s);
        for (int b = 0; b < 3; b++)
            snprintf(names[k++], 64, "layer%d.%d.b.conv", s, b);
        for (int j = 0; j < k; j++)
            list[j] = names[j];
        int want = n_alive_union(g, list, k);
        for (int j = 0; j < k; j++)
            CHECKF(out_channels(p, list[j]) == want,
                   "%s keeps %d channels, the stream's union is %d", list[j],
                   out_channels(p, list[j]), want);
    }
    CHECK(out_channels(p, "fc") == 10);
    CHECK(rep.params_after < 0.7 * rep.params_before);
    CHECK(rep.macs_after < 0.7 * rep.macs_before);
    CHECK(rep.n_layers == g->n_nodes && rep.grouped_kept == 0);
    print_report("resnet20", &rep);
    pare_purify_report_free(&rep);
    pare_graph_free(p);
    pare_graph_free(g);
}

PARE_TEST(purify_mobilenetv2)
{
    pare_graph *g = model("mobilenetv2", 22);
    if (!g)
        return;
    prune_random(g, 22, NULL);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    pare_purify_report rep;
    pare_graph *p = purify_checked(g, &rep, 6);
    if (!p) {
        pare_graph_free(g);
        return;
    }
    static const int repeats[7] = {1, 2, 3, 4, 3, 3, 1};
    char dw[48], ex[48], proj[48];
    int blk = 0;
    for (int s = 0; s < 7; s++) {
        char names[4][48];
        const char *list[4];
        for (int r = 0; r < repeats[s]; r++, blk++) {
            snprintf(dw, sizeof dw, "block%d.dw.conv", blk);
            snprintf(ex, sizeof ex, "block%d.expand.conv", blk);
            snprintf(proj, sizeof proj, "block%d.project.conv", blk);
            const char *producer = blk == 0 ? "stem.conv" : ex;
            /* A depthwise filter behind a pruned filter is pruned too. */
            int O = out_channels(g, dw);
            for (int o = 0; o < O; o++)
                if (alive(g, dw, o) && !alive(g, producer, o))
                    pare_test_fail(__FILE__, __LINE__, "%s filter %d reads a pruned channel", dw,
                                   o);
            /* A depthwise channel goes with its filter, its input and its producer. */
            int want = n_alive(g, dw);
            CHECKF(out_channels(p, dw) == want, "%s keeps %d of %d live filters", dw,
                   out_channels(p, dw), want);
            CHECK(p->nodes[node(p, dw)].a.groups == want);
            CHECK(out_channels(p, producer) == want);
            snprintf(names[r], sizeof names[r], "%s", proj);
            list[r] = names[r];
        }
        int want = n_alive_union(g, list, repeats[s]);
        for (int r = 0; r < repeats[s]; r++)
            CHECKF(out_channels(p, list[r]) == want, "%s keeps %d channels, the union is %d",
                   list[r], out_channels(p, list[r]), want);
    }
    CHECK(out_channels(p, "head.conv") == n_alive(g, "head.conv"));
    CHECK(rep.params_after < 0.7 * rep.params_before);
    CHECK(rep.macs_after < 0.7 * rep.macs_before);
    print_report("mobilenetv2", &rep);
    pare_purify_report_free(&rep);
    pare_graph_free(p);
    pare_graph_free(g);
}

/* Flatten + linear: a removed channel of the last conv takes its 7x7 = 49
 * columns of fc1 with it; pruned fc1 outputs take fc2's columns. Masks, frozen
 * flags, schemes and per-channel scales follow the kept elements. */
PARE_TEST(purify_fmnist_linear_columns)
{
    pare_graph *g = model("fmnist-cnn", 23);
    if (!g)
        return;
    static const char *const fcs[] = {"fc1", NULL};
    prune_random(g, 23, fcs);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    pare_param *w3 = weight(g, "block3.conv");
    w3->frozen = 1;
    w3->scheme = strdup("filter");
    w3->q.bits = 8;
    w3->q.scheme = 2;
    w3->q.axis = 0;
    w3->q.n = 64;
    w3->q.scale = malloc(sizeof(float) * 64);
    w3->q.zero_point = malloc(sizeof(int32_t) * 64);
    for (int k = 0; k < 64; k++) {
        w3->q.scale[k] = (float)k;
        w3->q.zero_point[k] = k;
    }
    pare_purify_report rep;
    pare_graph *p = purify_checked(g, &rep, 7);
    if (!p) {
        pare_graph_free(g);
        return;
    }
    static const char *const convs[] = {"block1.conv", "block2.conv", "block3.conv", "block4.conv"};
    for (int k = 0; k < 4; k++)
        CHECKF(out_channels(p, convs[k]) == n_alive(g, convs[k]), "%s keeps %d of %d live filters",
               convs[k], out_channels(p, convs[k]), n_alive(g, convs[k]));
    int c4 = n_alive(g, "block4.conv"), f1 = n_alive(g, "fc1");
    CHECK(weight(p, "fc1")->t->dims[0] == f1);
    CHECK(weight(p, "fc1")->t->dims[1] == c4 * 49);
    CHECK(out_channels(p, "flatten") == c4 * 49);
    CHECK(weight(p, "fc2")->t->dims[1] == f1);
    /* fc1's kept columns are the 49 of each live channel, in order. */
    pare_param *a = weight(g, "fc1"), *b = weight(p, "fc1");
    int bad = 0, row_b = 0;
    for (int o = 0; o < 256; o++) {
        if (!alive(g, "fc1", o))
            continue;
        int col_b = 0;
        for (int c = 0; c < 64; c++) {
            if (!alive(g, "block4.conv", c))
                continue;
            for (int f = 0; f < 49; f++, col_b++)
                bad += a->t->data[(size_t)o * 3136 + (size_t)c * 49 + (size_t)f] !=
                       b->t->data[(size_t)row_b * (size_t)(c4 * 49) + (size_t)col_b];
        }
        row_b++;
    }
    CHECK(bad == 0);
    /* What follows the kept filters of block3. */
    pare_param *q3 = weight(p, "block3.conv");
    CHECK(q3->frozen == 1 && q3->scheme && !strcmp(q3->scheme, "filter"));
    CHECK(q3->mask != NULL && q3->q.n == out_channels(p, "block3.conv"));
    int j = 0;
    for (int o = 0; o < 64; o++)
        if (alive(g, "block3.conv", o)) {
            CHECK(q3->q.scale[j] == (float)o && q3->q.zero_point[j] == o);
            j++;
        }
    CHECK(role(p, "block3.bn", PARE_ROLE_BN_GAMMA)->t->n == (size_t)j);
    print_report("fmnist-cnn", &rep);
    pare_purify_report_free(&rep);
    pare_graph_free(p);
    pare_graph_free(g);
}

/* ---- the rules one at a time ------------------------------------------------ */

PARE_TEST(purify_add_union)
{
    pare_graph *g = model("resnet20", 24);
    if (!g)
        return;
    /* Channel 5: dead in the block's branch, live on the shortcut: kept. */
    prune_row(g, "layer1.0.b.conv", 5);
    /* Channel 7 inside the block: removed. */
    prune_row(g, "layer1.0.a.conv", 7);
    /* Channel 3: dead in every input of every add of stage 1: removed. */
    prune_row(g, "stem.conv", 3);
    for (int b = 0; b < 3; b++) {
        char name[32];
        snprintf(name, sizeof name, "layer1.%d.b.conv", b);
        prune_row(g, name, 3);
    }
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    CHECK(n == 6);
    pare_graph *p = purify_checked(g, NULL, 8);
    if (p) {
        CHECK(out_channels(p, "layer1.0.a.conv") == 15);
        CHECK(out_channels(p, "layer1.1.a.conv") == 16);
        CHECK(out_channels(p, "stem.conv") == 15);
        CHECK(out_channels(p, "layer1.0.b.conv") == 15);
        CHECK(out_channels(p, "layer1.0.add") == 15);
        CHECK(out_channels(p, "layer2.0.a.conv") == 32);
        CHECK(weight(p, "layer2.0.a.conv")->t->dims[1] == 15);
        CHECK(weight(p, "layer2.0.down.conv")->t->dims[1] == 15);
        /* The kept dead channel 5 (now 4) is still an exact zero with its masks. */
        pare_param *gm = role(p, "layer1.0.b.bn", PARE_ROLE_BN_GAMMA);
        CHECK(gm->mask && gm->mask[4] == 0 && gm->t->data[4] == 0.0f);
        CHECK(!alive(p, "layer1.0.b.conv", 4));
    }
    pare_graph_free(p);
    pare_graph_free(g);
}

/* PyTorch-style masking (weights and bias zero, BN untouched) leaves the
 * constant beta - mean * gamma / sqrt(var + eps) in the channel: it stays,
 * until pare_mask_dead_filters makes it an exact zero. */
PARE_TEST(purify_bn_constant_kept)
{
    pare_graph *g = model("fmnist-cnn", 35);
    if (!g)
        return;
    prune_row(g, "block1.conv", 4);
    role(g, "block1.conv", PARE_ROLE_BIAS)->t->data[4] = 0.0f;
    pare_graph *p = purify_checked(g, NULL, 18);
    if (p)
        CHECK(out_channels(p, "block1.conv") == 32);
    pare_graph_free(p);
    /* beta = mean * gamma * invstd exactly: the BN maps 0 to 0, and the channel goes. */
    pare_param *bt = role(g, "block1.bn", PARE_ROLE_BN_BETA);
    bt->t->data[4] = 0.0f;
    role(g, "block1.bn", PARE_ROLE_BN_MEAN)->t->data[4] = 0.0f;
    p = purify_checked(g, NULL, 19);
    if (p)
        CHECK(out_channels(p, "block1.conv") == 31);
    pare_graph_free(p);
    bt->t->data[4] = 0.25f;
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    CHECK(n == 1);
    p = purify_checked(g, NULL, 20);
    if (p)
        CHECK(out_channels(p, "block1.conv") == 31);
    pare_graph_free(p);
    pare_graph_free(g);
}

/* An input slice of the next layer that is all zero makes its producer's
 * filter unused, though that filter is live. */
PARE_TEST(purify_unused_slice)
{
    pare_graph *g = model("fmnist-cnn", 25);
    if (!g)
        return;
    pare_param *w2 = weight(g, "block2.conv");
    for (int o = 0; o < 32; o++)
        memset(w2->t->data + ((size_t)o * 32 + 3) * 9, 0, 9 * sizeof(float));
    pare_param *f1 = weight(g, "fc1");
    for (int o = 0; o < 256; o++)
        memset(f1->t->data + (size_t)o * 3136 + 10 * 49, 0, 49 * sizeof(float));
    int n = -1;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    CHECK(n == 0);
    CHECK(alive(g, "block1.conv", 3) && alive(g, "block4.conv", 10));
    pare_graph *p = purify_checked(g, NULL, 9);
    if (p) {
        CHECK(out_channels(p, "block1.conv") == 31);
        CHECK(out_channels(p, "block2.conv") == 32);
        CHECK(weight(p, "block2.conv")->t->dims[1] == 31);
        CHECK(out_channels(p, "block4.conv") == 63);
        CHECK(weight(p, "fc1")->t->dims[1] == 63 * 49);
        CHECK(role(p, "block1.bn", PARE_ROLE_BN_BETA)->t->n == 31);
    }
    pare_graph_free(p);
    pare_graph_free(g);
}

/* Removal feeds itself: block3 never reads channel 5 of block2, and block2's
 * filter 5 is the only one that reads channel 3 of block1; so block2's filter
 * 5 goes in one round, which leaves block1's channel 3 unused for the next. */
PARE_TEST(purify_fixed_point)
{
    pare_graph *g = model("fmnist-cnn", 34);
    if (!g)
        return;
    pare_param *w2 = weight(g, "block2.conv"), *w3 = weight(g, "block3.conv");
    for (int o = 0; o < 32; o++)
        if (o != 5)
            memset(w2->t->data + ((size_t)o * 32 + 3) * 9, 0, 9 * sizeof(float));
    for (int o = 0; o < 64; o++)
        memset(w3->t->data + ((size_t)o * 32 + 5) * 9, 0, 9 * sizeof(float));
    pare_purify_report rep;
    pare_graph *p = purify_checked(g, &rep, 17);
    if (p) {
        CHECK(out_channels(p, "block2.conv") == 31);
        CHECK(out_channels(p, "block1.conv") == 31);
        CHECK(weight(p, "block3.conv")->t->dims[1] == 31);
        CHECK(rep.rounds == 3 && rep.filters_removed == 2);
    }
    pare_purify_report_free(&rep);
    pare_graph_free(p);
    pare_graph_free(g);
}

/* Two branches concatenated, then a depthwise conv with 2 filters per channel. */
PARE_TEST(purify_concat)
{
    pare_graph *g = pare_graph_new("cat");
    int x = pare_graph_input(g, 3, 8, 8);
    int a = pare_graph_conv2d(g, x, 8, 3, 1, 1, "a.conv");
    a = pare_graph_batchnorm(g, a, "a.bn");
    a = pare_graph_relu(g, a, "a.relu");
    int b = pare_graph_conv2d(g, x, 6, 1, 1, 0, "b.conv");
    b = pare_graph_relu(g, b, "b.relu");
    int ab[2] = {a, b};
    int c = pare_graph_concat(g, ab, 2, "cat");
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = 28;
    d.kernel_h = 3;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    d.groups = 14;
    c = pare_graph_conv2d_ex(g, c, &d, "dw.conv");
    c = pare_graph_batchnorm(g, c, "dw.bn");
    c = pare_graph_relu(g, c, "dw.relu");
    c = pare_graph_conv2d(g, c, 5, 3, 1, 1, "c.conv");
    c = pare_graph_maxpool(g, c, 2, 2, 0, "pool");
    c = pare_graph_flatten(g, c, "flatten");
    pare_graph_linear(g, c, 4, 1, "fc");
    CHECK_OK(pare_graph_status(g));
    CHECK_OK(pare_graph_init_params(g, 26));
    randomize_bn(g, 26);
    prune_row(g, "a.conv", 1);
    prune_row(g, "a.conv", 4);
    prune_row(g, "b.conv", 0);
    prune_row(g, "b.conv", 5);
    prune_row(g, "dw.conv", 4); /* both filters of channel 2 */
    prune_row(g, "dw.conv", 5);
    prune_row(g, "dw.conv", 18); /* one of channel 9's two */
    prune_row(g, "c.conv", 3);
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    /* 8 pruned, plus the 8 depthwise filters behind channels 1, 4, 8, 13. */
    CHECK(n == 16);
    pare_graph *p = purify_checked(g, NULL, 10);
    if (p) {
        CHECK(out_channels(p, "a.conv") == 5);
        CHECK(out_channels(p, "b.conv") == 4);
        CHECK(out_channels(p, "cat") == 9);
        CHECK(out_channels(p, "dw.conv") == 18);
        CHECK(p->nodes[node(p, "dw.conv")].a.groups == 9);
        CHECK(out_channels(p, "c.conv") == 4);
        CHECK(weight(p, "c.conv")->t->dims[1] == 18);
        CHECK(weight(p, "fc")->t->dims[1] == 4 * 16);
    }
    pare_graph_free(p);
    pare_graph_free(g);
}

/* Channels around a grouped conv stay: removing one would unbalance the groups. */
PARE_TEST(purify_grouped_kept)
{
    pare_graph *g = pare_graph_new("grouped");
    int x = pare_graph_input(g, 4, 6, 6);
    x = pare_graph_conv2d(g, x, 8, 3, 1, 1, "c1");
    x = pare_graph_relu(g, x, "r1");
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = 8;
    d.kernel_h = 3;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    d.groups = 2;
    x = pare_graph_conv2d_ex(g, x, &d, "g");
    x = pare_graph_relu(g, x, "r2");
    x = pare_graph_conv2d(g, x, 6, 1, 1, 0, "c2");
    x = pare_graph_flatten(g, x, "flatten");
    pare_graph_linear(g, x, 3, 1, "fc");
    CHECK_OK(pare_graph_status(g));
    CHECK_OK(pare_graph_init_params(g, 27));
    prune_row(g, "c1", 0);
    prune_row(g, "c1", 3);
    prune_row(g, "g", 1);
    prune_row(g, "c2", 2);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    pare_purify_report rep;
    pare_graph *p = purify_checked(g, &rep, 11);
    if (p) {
        CHECK(out_channels(p, "c1") == 8);
        CHECK(out_channels(p, "g") == 8);
        CHECK(out_channels(p, "c2") == 5);
        CHECK(rep.grouped_kept == 1);
    }
    pare_purify_report_free(&rep);
    pare_graph_free(p);
    pare_graph_free(g);
}

PARE_TEST(purify_nothing_pruned)
{
    static const char *const names[] = {"resnet20", "mobilenetv2", "fmnist-cnn"};
    for (int k = 0; k < 3; k++) {
        pare_graph *g = model(names[k], 28);
        if (!g)
            continue;
        int n = -1;
        CHECK_OK(pare_mask_dead_filters(g, &n));
        CHECK(n == 0);
        pare_graph *p = NULL;
        pare_purify_report rep;
        CHECK_OK(pare_purify(g, &p, &rep));
        if (p) {
            CHECKF(same_graph(g, p), "%s changed with nothing pruned", names[k]);
            CHECK(rep.params_after == rep.params_before && rep.filters_removed == 0);
            CHECK(output_error(g, p, 12) == 0);
        }
        pare_purify_report_free(&rep);
        pare_graph_free(p);
        pare_graph_free(g);
    }
}

PARE_TEST(purify_one_channel_left)
{
    /* All but filter 17 of block3: that one stays, as it was. */
    pare_graph *g = model("fmnist-cnn", 29);
    if (!g)
        return;
    for (int o = 0; o < 64; o++)
        if (o != 17)
            prune_row(g, "block3.conv", o);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    pare_graph *p = purify_checked(g, NULL, 13);
    if (p) {
        CHECK(out_channels(p, "block3.conv") == 1);
        CHECK(weight(p, "block4.conv")->t->dims[1] == 1);
        CHECK(!memcmp(weight(p, "block3.conv")->t->data,
                      weight(g, "block3.conv")->t->data + 17 * 288, 288 * sizeof(float)));
    }
    pare_graph_free(p);
    pare_graph_free(g);

    /* Every filter of block2: everything after is dead and everything before
     * unused; each value still keeps one channel and the (constant) outputs
     * are the same. */
    g = model("fmnist-cnn", 30);
    if (!g)
        return;
    for (int o = 0; o < 32; o++)
        prune_row(g, "block2.conv", o);
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    /* block3, block4, fc1 and fc2 read only dead channels: pruned too. */
    CHECK(n == 32 + 64 + 64 + 256 + 10);
    p = purify_checked(g, NULL, 14);
    if (p) {
        static const char *const convs[] = {"block1.conv", "block2.conv", "block3.conv",
                                            "block4.conv"};
        for (int k = 0; k < 4; k++)
            CHECKF(out_channels(p, convs[k]) == 1, "%s keeps %d", convs[k],
                   out_channels(p, convs[k]));
        CHECK(weight(p, "fc1")->t->dims[1] == 49);
    }
    pare_graph_free(p);
    pare_graph_free(g);
}

PARE_TEST(purify_save_load)
{
    pare_graph *g = model("fmnist-cnn", 31);
    if (!g)
        return;
    prune_random(g, 31, NULL);
    CHECK_OK(pare_mask_dead_filters(g, NULL));
    pare_graph *p = purify_checked(g, NULL, 15), *l = NULL;
    if (!p) {
        pare_graph_free(g);
        return;
    }
    char full[1024], small[1024];
    snprintf(full, sizeof full, "%s", pare_test_path("full.pare"));
    snprintf(small, sizeof small, "%s", pare_test_path("small.pare"));
    CHECK_OK(pare_graph_save(g, full));
    CHECK_OK(pare_graph_save(p, small));
    CHECK_OK(pare_graph_load(small, &l));
    if (l) {
        CHECK_OK(pare_graph_validate(l));
        CHECK(same_graph(p, l));
        CHECK(output_error(p, l, 16) == 0);
    }
    long sizes[2] = {-1, -1};
    const char *paths[2] = {full, small};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "rb");
        CHECK(f != NULL);
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        sizes[k] = ftell(f);
        fclose(f);
    }
    CHECKF(sizes[1] > 0 && sizes[1] < sizes[0] * 3 / 4, "the file went from %ld to %ld bytes",
           sizes[0], sizes[1]);
    printf("  fmnist-cnn file: %ld -> %ld bytes\n", sizes[0], sizes[1]);
    pare_graph_free(l);
    pare_graph_free(p);
    pare_graph_free(g);
}

/* ---- pare_mask_dead_filters ------------------------------------------------ */

PARE_TEST(purify_mask_dead_filters)
{
    /* c feeds only bn: its BN channel is masked too. d feeds bn2 and an add:
     * only its bias is. */
    pare_graph *g = pare_graph_new("masks");
    int x = pare_graph_input(g, 2, 5, 5);
    int c = pare_graph_conv2d(g, x, 4, 3, 1, 1, "c");
    c = pare_graph_batchnorm(g, c, "bn");
    c = pare_graph_relu(g, c, "r");
    int d = pare_graph_conv2d(g, c, 4, 3, 1, 1, "d");
    int e = pare_graph_batchnorm(g, d, "bn2");
    pare_graph_add(g, e, d, "add");
    CHECK_OK(pare_graph_status(g));
    CHECK_OK(pare_graph_init_params(g, 32));
    randomize_bn(g, 32);
    role(g, "bn", PARE_ROLE_BN_BETA)->t->data[2] = 3.0f; /* a constant relu lets through */
    pare_graph *orig = NULL;
    CHECK_OK(pare_graph_clone(g, &orig));
    prune_row(g, "c", 2);
    prune_row(g, "d", 1);
    int n = 0;
    CHECK_OK(pare_mask_dead_filters(g, &n));
    CHECK(n == 2);
    pare_param *b = role(g, "c", PARE_ROLE_BIAS), *gm = role(g, "bn", PARE_ROLE_BN_GAMMA),
               *bt = role(g, "bn", PARE_ROLE_BN_BETA), *mu = role(g, "bn", PARE_ROLE_BN_MEAN),
               *var = role(g, "bn", PARE_ROLE_BN_VAR);
    for (int k = 0; k < 4; k++) {
        CHECK(b->mask[k] == (k != 2) && gm->mask[k] == (k != 2) && bt->mask[k] == (k != 2));
        CHECK(var->mask == NULL &&
              var->t->data[k] == role(orig, "bn", PARE_ROLE_BN_VAR)->t->data[k]);
    }
    CHECK(b->t->data[2] == 0 && gm->t->data[2] == 0 && bt->t->data[2] == 0 && mu->t->data[2] == 0);
    CHECK(mu->t->data[1] == role(orig, "bn", PARE_ROLE_BN_MEAN)->t->data[1]);
    CHECK(role(g, "d", PARE_ROLE_BIAS)->mask[1] == 0);
    CHECK(role(g, "bn2", PARE_ROLE_BN_GAMMA)->mask == NULL);
    /* Channel 2 of r is now exactly zero everywhere (before, a constant). */
    CHECK_OK(pare_graph_set_output(g, node(g, "r")));
    CHECK_OK(pare_graph_set_output(orig, node(orig, "r")));
    prune_row(orig, "c", 2);
    float in[2 * 25], y[4 * 25], y0[4 * 25];
    pare_test_fill(in, 50, -1, 1, 33);
    CHECK_OK(pare_graph_forward(g, in, 1, y, 1));
    CHECK_OK(pare_graph_forward(orig, in, 1, y0, 1));
    int zero = 1, const0 = 1;
    for (int k = 0; k < 25; k++) {
        zero &= y[2 * 25 + k] == 0.0f;
        const0 &= y0[2 * 25 + k] == y0[2 * 25];
    }
    CHECK(zero && const0 && y0[2 * 25] != 0.0f);
    /* A second call finds the same filters and changes nothing. */
    pare_graph *again = NULL;
    CHECK_OK(pare_graph_clone(g, &again));
    CHECK_OK(pare_mask_dead_filters(again, &n));
    CHECK(n == 2 && same_graph(g, again));
    pare_graph_free(again);
    pare_graph_free(orig);
    pare_graph_free(g);
}

PARE_TEST(purify_errors)
{
    pare_graph *p = NULL;
    CHECK_STATUS(pare_purify(NULL, &p, NULL), PARE_EINVAL);
    CHECK(p == NULL);
    CHECK_STATUS(pare_mask_dead_filters(NULL, NULL), PARE_EINVAL);
    pare_graph *g = pare_graph_new("bad");
    int x = pare_graph_input(g, 3, 4, 4);
    pare_graph_conv2d(g, x, 0, 3, 1, 1, "conv");
    CHECK(pare_graph_status(g) != PARE_OK);
    CHECK(pare_purify(g, &p, NULL) == pare_graph_status(g));
    CHECK(p == NULL);
    pare_graph_free(g);
}
