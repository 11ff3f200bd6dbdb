/* Pruning plans and methods: the auto mapping, ratio files, exemptions,
 * global ranking against a brute-force sort, every method reaching its
 * sparsity with masks kept through fine-tuning, IMP's rewinding restoring the
 * saved weights exactly, filter pruning followed by exact structural removal,
 * and pare prune's report and refusals. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "compress/prune.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "synth.h"
#include "test.h"

static const pare_prune_layer *layer(const pare_graph *g, const pare_prune_plan *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(g->nodes[p->l[i].node].name, name))
            return &p->l[i];
    return NULL;
}

PARE_TEST(prune_plan_auto_and_exemptions)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 0, &g));
    pare_prune_options o = {"auto", 0.8, 0, NULL, 0, 0};
    pare_prune_plan plan;
    CHECK_OK(pare_prune_plan_new(g, &o, &plan));
    CHECK(plan.n == 6);
    const pare_prune_layer *l = layer(g, &plan, "block2.conv");
    CHECK(l && l->scheme.kind == PARE_SCHEME_PATTERN && l->scheme.n_lib == 8 && l->target == 0.8);
    l = layer(g, &plan, "block1.conv"); /* first layer: half the ratio */
    CHECK(l && l->scheme.kind == PARE_SCHEME_PATTERN && l->target == 0.4);
    l = layer(g, &plan, "fc1"); /* 256 x 3136: big, so 8x4 blocks */
    CHECK(l && l->scheme.kind == PARE_SCHEME_BLOCK && l->scheme.br == 8 && l->scheme.bc == 4);
    l = layer(g, &plan, "fc2"); /* last layer: 4x4 blocks, half the ratio */
    CHECK(l && l->scheme.kind == PARE_SCHEME_BLOCK && l->scheme.br == 4 && l->target == 0.4);
    pare_prune_plan_free(&plan);
    /* mobilenetv2: depthwise convs stay dense under auto; 1x1 convs get blocks */
    pare_graph *m;
    CHECK_OK(pare_zoo_build("mobilenetv2", 0, 0, &m));
    CHECK_OK(pare_prune_plan_new(m, &o, &plan));
    CHECK(layer(m, &plan, "block1.dw.conv") == NULL);
    l = layer(m, &plan, "block1.expand.conv");
    CHECK(l && l->scheme.kind == PARE_SCHEME_BLOCK);
    pare_prune_plan_free(&plan);
    pare_graph_free(m);
    /* exemptions */
    pare_prune_options e = {"unstructured", 0.5, 0, NULL, 1, 1};
    CHECK_OK(pare_prune_plan_new(g, &e, &plan));
    CHECK(plan.n == 4 && !layer(g, &plan, "block1.conv") && !layer(g, &plan, "fc2"));
    pare_prune_plan_free(&plan);
    /* a pattern scheme prunes the 3x3 convs and leaves the linear layers dense */
    pare_prune_options pt = {"pattern", 0.9, 0, NULL, 0, 0};
    CHECK_OK(pare_prune_plan_new(g, &pt, &plan));
    CHECK(plan.n == 4 && !layer(g, &plan, "fc1"));
    pare_prune_plan_free(&plan);
    /* filter pruning leaves the classifier's outputs (fc2's filters) alone;
     * channel pruning may still thin its inputs */
    pare_prune_options fi = {"filter", 0.5, 0, NULL, 0, 0};
    CHECK_OK(pare_prune_plan_new(g, &fi, &plan));
    CHECK(plan.n == 5 && layer(g, &plan, "fc1") && !layer(g, &plan, "fc2"));
    pare_prune_plan_free(&plan);
    pare_prune_options ch = {"channel", 0.5, 0, NULL, 0, 0};
    CHECK_OK(pare_prune_plan_new(g, &ch, &plan));
    CHECK(plan.n == 6 && layer(g, &plan, "fc2"));
    pare_prune_plan_free(&plan);
    pare_graph_free(g);
    /* resnet20: the output layer is found through pooling and flatten */
    CHECK_OK(pare_zoo_build("resnet20", 0, 0, &g));
    CHECK_OK(pare_prune_plan_new(g, &fi, &plan));
    int fc = pare_graph_find_node(g, "fc");
    CHECK(fc >= 0 && !layer(g, &plan, "fc") && layer(g, &plan, "layer3.2.b.conv"));
    pare_prune_plan_free(&plan);
    pare_graph_free(g);
}

PARE_TEST(prune_plan_refusals)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 0, &g));
    pare_prune_plan plan;
    pare_prune_options o = {"unstructured", 1.0, 0, NULL, 0, 0};
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "sparsity"));
    o.sparsity = 0.5;
    o.scheme = "pattern:99";
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_EINVAL);
    o.scheme = "pattern";
    o.global = 1;
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "global"));
    o.global = 0;
    /* a ratio file naming layers the model does not have, or a pattern on a linear layer */
    FILE *f = fopen(pare_test_path("r1.txt"), "w");
    fprintf(f, "# layer sparsity [scheme]\nblock2.conv 0.5\nnope 0.3\nfc9 0.1 2:4\n");
    fclose(f);
    char p1[1100];
    snprintf(p1, sizeof p1, "%s", pare_test_path("r1.txt"));
    o.ratios_path = p1;
    o.scheme = "unstructured";
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_ENOTFOUND);
    CHECK(strstr(pare_last_error(), "nope") && strstr(pare_last_error(), "fc9"));
    f = fopen(pare_test_path("r2.txt"), "w");
    fprintf(f, "fc1 0.9 pattern\n");
    fclose(f);
    snprintf(p1, sizeof p1, "%s", pare_test_path("r2.txt"));
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_ESHAPE);
    CHECK(strstr(pare_last_error(), "fc1"));
    f = fopen(pare_test_path("r3.txt"), "w");
    fprintf(f, "fc1 1.5\n");
    fclose(f);
    snprintf(p1, sizeof p1, "%s", pare_test_path("r3.txt"));
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "line 1"));
    /* N:M that divides no layer's input (1, 32, 64, 3136, 256): M = 9 fits none */
    pare_prune_options nm = {"2:9", 0.5, 0, NULL, 0, 0};
    CHECK_STATUS(pare_prune_plan_new(g, &nm, &plan), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "no layer"));
    pare_graph_free(g);
    /* the pattern scheme on a model without 3x3 convs */
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    pare_prune_options pt = {"pattern", 0.9, 0, NULL, 0, 0};
    CHECK_STATUS(pare_prune_plan_new(g, &pt, &plan), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "3x3"));
    pare_graph_free(g);
}

/* A const's values are a weight-role tensor but no layer's weights: neither a
 * per-layer scheme nor the global ranking nor a ratio file may prune them,
 * even when they are the smallest values in the model. */
PARE_TEST(prune_skips_const_weights)
{
    pare_graph *g = pare_graph_new("k");
    int x = pare_graph_input(g, 2, 5, 5);
    int c = pare_graph_conv2d(g, x, 4, 3, 1, 1, "conv");
    int k = pare_graph_const(g, 4, 5, 5, "k");
    int m = pare_graph_mul(g, c, k, "mul");
    pare_graph_linear(g, pare_graph_flatten(g, m, "flat"), 3, 1, "fc");
    CHECK_OK(pare_graph_status(g));
    size_t n = 0;
    float *kv = pare_graph_param_data(g, "k.weight", &n);
    CHECK(kv && n == 100);
    float keep[100];
    for (size_t i = 0; i < n && i < 100; i++)
        keep[i] = kv[i] = 1e-4f * (float)i;
    const pare_param *kp = &g->params[pare_graph_node_param(g, k, PARE_ROLE_WEIGHT)];
    static const char *const schemes[] = {"unstructured", "unstructured", "auto"};
    for (int i = 0; i < 3; i++) {
        pare_prune_options o = {schemes[i], 0.7, i == 1, NULL, 0, 0};
        pare_prune_plan plan;
        CHECK_OK(pare_prune_plan_new(g, &o, &plan));
        for (int j = 0; j < plan.n; j++)
            CHECKF(g->nodes[plan.l[j].node].op == PARE_OP_CONV2D || g->nodes[plan.l[j].node].op == PARE_OP_LINEAR,
                   "%s: layer %s is a prune target", schemes[i], g->nodes[plan.l[j].node].name);
        CHECK(plan.n >= 1 && plan.n <= 2);
        CHECK_OK(pare_prune_apply(g, &plan, NULL, NULL));
        CHECK(pare_prune_sparsity(g, &plan) > 0.2);
        CHECK(kp->mask == NULL && kp->scheme == NULL && !memcmp(kp->t->data, keep, sizeof keep));
        pare_prune_plan_free(&plan);
    }
    FILE *f = fopen(pare_test_path("rk.txt"), "w");
    fprintf(f, "conv 0.5\nk 0.5\n");
    fclose(f);
    char path[1100];
    snprintf(path, sizeof path, "%s", pare_test_path("rk.txt"));
    pare_prune_options o = {"unstructured", 0.5, 0, path, 0, 0};
    pare_prune_plan plan;
    CHECK_STATUS(pare_prune_plan_new(g, &o, &plan), PARE_ENOTFOUND);
    CHECK(strstr(pare_last_error(), ": k (not a conv or linear layer)") != NULL);
    pare_graph_free(g);
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

PARE_TEST(prune_global_matches_sort)
{
    pare_graph *g;
    /* PyTorch's init: weights scale with 1/sqrt(fan in), so global ranking
     * prunes the wide layers more than the small last one */
    CHECK_OK(pare_zoo_build("lenet", 0, 5, &g));
    pare_prune_options o = {"unstructured", 0.83, 1, NULL, 0, 0};
    pare_prune_plan plan;
    CHECK_OK(pare_prune_plan_new(g, &o, &plan));
    /* the threshold by sorting every |w| */
    size_t total = 0;
    for (int i = 0; i < plan.n; i++)
        total += g->params[plan.l[i].param].t->n;
    float *all = malloc(sizeof(float) * total);
    size_t at = 0;
    for (int i = 0; i < plan.n; i++) {
        const pare_tensor *t = g->params[plan.l[i].param].t;
        for (size_t k = 0; k < t->n; k++)
            all[at++] = fabsf(t->data[k]);
    }
    qsort(all, total, sizeof(float), cmp_f);
    size_t prune = (size_t)(0.83 * (double)total + 1e-9);
    float thr = all[prune]; /* the smallest kept magnitude */
    free(all);
    CHECK_OK(pare_prune_apply(g, &plan, NULL, NULL));
    size_t kept = 0;
    for (int i = 0; i < plan.n; i++) {
        const pare_param *p = &g->params[plan.l[i].param];
        for (size_t k = 0; k < p->t->n; k++) {
            kept += p->mask[k];
            if (p->mask[k])
                CHECK(fabsf(p->t->data[k]) >= thr);
            else
                CHECK(p->t->data[k] == 0.0f);
        }
        CHECK(p->scheme && !strcmp(p->scheme, "unstructured"));
    }
    CHECK(kept == total - prune);
    CHECK_NEAR(pare_prune_sparsity(g, &plan), (double)prune / (double)total, 1e-12);
    /* the layers end up with different sparsities: the small last layer is pruned less */
    CHECK(plan.l[plan.n - 1].reached < plan.l[2].reached);
    pare_prune_plan_free(&plan);
    pare_graph_free(g);
}

static const char *synth_dir(void)
{
    static char dir[1100];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", pare_test_path("synth"));
        mkdir(dir, 0755);
        if (synth_write_idx(dir, 1200, 300, 21) != 0)
            pare_test_fail(__FILE__, __LINE__, "cannot write synthetic data");
    }
    return dir;
}

/* A lenet trained one epoch on the synthetic bars. */
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

PARE_TEST(prune_every_method_reaches_its_sparsity)
{
    pare_dataset *tr, *te;
    pare_graph *base = trained_lenet(&tr, &te);
    static const char *const schemes[] = {"unstructured", "unstructured", "block:4x4", "2:4", "unstructured", "unstructured"};
    for (int m = 0; m < PARE_PRUNE__COUNT; m++) {
        pare_graph *g;
        CHECK_OK(pare_graph_clone(base, &g));
        int global = !strcmp(schemes[m], "unstructured");
        pare_prune_options o = {schemes[m], 0.75, global, NULL, 0, 0};
        pare_prune_plan plan;
        CHECK_OK(pare_prune_plan_new(g, &o, &plan));
        pare_prune_config c;
        pare_prune_config_init(&c);
        c.method = (pare_prune_method)m;
        c.finetune_epochs = 1;
        c.train.batch = 16;
        c.train.lr = 0.02f;
        c.imp_rounds = 2;
        c.admm_epochs = 1;
        c.bip_epochs = 1;
        pare_prune_result r;
        CHECK_OK(pare_prune_run(g, &plan, &c, tr, te, &r));
        double sp = pare_prune_sparsity(g, &plan);
        double want = !strcmp(schemes[m], "2:4") ? 0.5 : 0.75; /* N:M fixes its own ratio */
        printf("  %-16s %-12s sparsity %.4f  accuracy %.3f -> %.3f -> %.3f\n", pare_prune_method_name(c.method),
               schemes[m], sp, r.acc_before, r.acc_pruned, r.acc_final);
        CHECKF(fabs(sp - want) < 0.01, "%s reached %.4f", pare_prune_method_name(c.method), sp);
        /* masks kept: every masked weight is exactly zero after fine-tuning, and
         * every mask satisfies its scheme */
        for (int i = 0; i < plan.n; i++) {
            const pare_param *p = &g->params[plan.l[i].param];
            for (size_t k = 0; k < p->t->n; k++)
                if (!p->mask[k] && p->t->data[k] != 0.0f) {
                    CHECKF(0, "%s: %s[%zu] is masked but %g", pare_prune_method_name(c.method), p->name, k,
                           p->t->data[k]);
                    break;
                }
            CHECK(pare_scheme_satisfied(&plan.l[i].scheme, p->t, p->mask));
        }
        CHECKF(r.acc_final > 0.5, "%s: accuracy %.3f after fine-tuning", pare_prune_method_name(c.method),
               r.acc_final);
        pare_prune_plan_free(&plan);
        pare_graph_free(g);
    }
    pare_graph_free(base);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(prune_imp_rewinds_exactly)
{
    pare_dataset *tr, *te;
    pare_graph *g = trained_lenet(&tr, &te);
    pare_graph *early;
    CHECK_OK(pare_zoo_build("lenet", 0, 77, &early)); /* the weights to rewind to */
    pare_prune_options o = {"unstructured", 0.6, 1, NULL, 0, 0};
    pare_prune_plan plan;
    CHECK_OK(pare_prune_plan_new(g, &o, &plan));
    pare_prune_config c;
    pare_prune_config_init(&c);
    c.method = PARE_PRUNE_IMP;
    c.imp_rounds = 3;
    c.finetune_epochs = 0;
    c.rewind_to = early;
    pare_prune_result r;
    CHECK_OK(pare_prune_run(g, &plan, &c, tr, te, &r));
    CHECK(r.rounds == 3);
    /* every parameter equals the rewind point's, the pruned ones zero */
    for (int p = 0; p < g->n_params; p++) {
        const pare_param *a = &g->params[p], *b = &early->params[p];
        for (size_t k = 0; k < a->t->n; k++) {
            float want = (a->mask && !a->mask[k]) ? 0.0f : b->t->data[k];
            if (memcmp(&a->t->data[k], &want, sizeof want) != 0) {
                CHECKF(0, "%s[%zu] = %g, rewind point %g", a->name, k, a->t->data[k], want);
                break;
            }
        }
    }
    CHECK_NEAR(pare_prune_sparsity(g, &plan), 0.6, 1e-3);
    pare_prune_plan_free(&plan);
    pare_graph_free(early);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(prune_filters_then_purify_exactly)
{
    pare_dataset *tr, *te;
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TRAIN, &tr));
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TEST, &te));
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 0, &g));
    pare_prune_options o = {"filter", 0.5, 0, NULL, 0, 1};
    pare_prune_plan plan;
    CHECK_OK(pare_prune_plan_new(g, &o, &plan));
    pare_prune_config c;
    pare_prune_config_init(&c);
    c.finetune_epochs = 1;
    c.train.batch = 32;
    CHECK_OK(pare_dataset_limit(tr, 400));
    pare_prune_result r;
    CHECK_OK(pare_prune_run(g, &plan, &c, tr, te, &r));
    pare_graph *small;
    pare_purify_report rep;
    CHECK_OK(pare_purify(g, &small, &rep));
    /* half of each conv's filters and of fc1's outputs are gone */
    CHECK(small->nodes[pare_graph_find_node(small, "block2.conv")].out.c == 16);
    CHECK(small->nodes[pare_graph_find_node(small, "fc1")].out.c == 128);
    CHECK(rep.params_after < rep.params_before / 2);
    float *x = malloc(sizeof(float) * 4 * 784), y1[40], y2[40];
    pare_test_fill(x, 4 * 784, -1, 1, 9);
    CHECK_OK(pare_graph_forward(g, x, 4, y1, 1));
    CHECK_OK(pare_graph_forward(small, x, 4, y2, 1));
    double m = 0, d = 0;
    for (int i = 0; i < 40; i++) {
        m = fmax(m, fabs(y1[i]));
        d = fmax(d, fabs(y1[i] - y2[i]));
    }
    CHECKF(d <= 1e-5 * m, "purified outputs differ by %g (max |y| %g)", d, m);
    free(x);
    pare_purify_report_free(&rep);
    pare_graph_free(small);
    pare_prune_plan_free(&plan);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* ---- the command --------------------------------------------------------- */

static int run(const char *args, char *err, size_t n)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin)
        return -1;
    char cmd[4096], ep[1100];
    snprintf(ep, sizeof ep, "%s", pare_test_path("err.txt"));
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

PARE_TEST(prune_command)
{
    if (!getenv("PARE_BIN")) {
        printf("  skipped: PARE_BIN is not set\n");
        return;
    }
    synth_dir();
    char err[4096];
    CHECK(run("train --model lenet --data synth --epochs 2 --batch 8 --out m.pare --quiet", err, sizeof err) == 0);
    uint8_t *before;
    size_t nb;
    CHECK_OK(pare_read_file(pare_test_path("m.pare"), 1 << 26, &before, &nb));
    CHECK(run("prune m.pare --scheme unstructured --sparsity 0.9 --global --data synth --finetune 1 --out p.pare --plot s.svg --json --quiet",
              err, sizeof err) == 0);
    CHECKF(err[0] == 0, "stderr: %s", err);
    /* the input file is untouched */
    uint8_t *after;
    size_t na;
    CHECK_OK(pare_read_file(pare_test_path("m.pare"), 1 << 26, &after, &na));
    CHECK(na == nb && !memcmp(before, after, nb));
    free(after);
    free(before);
    pare_graph *p;
    CHECK_OK(pare_graph_load(pare_test_path("p.pare"), &p));
    int fc1 = pare_graph_node_param(p, pare_graph_find_node(p, "fc1"), PARE_ROLE_WEIGHT);
    CHECK(p->params[fc1].mask && p->params[fc1].scheme && !strcmp(p->params[fc1].scheme, "unstructured"));
    pare_graph_free(p);
    CHECK(pare_file_exists(pare_test_path("s.svg")));
    /* the file shrinks */
    struct stat s1, s2;
    CHECK(stat(pare_test_path("m.pare"), &s1) == 0 && stat(pare_test_path("p.pare"), &s2) == 0);
    CHECKF(s2.st_size * 100 <= s1.st_size * 35, "pruned file %lld bytes, dense %lld", (long long)s2.st_size,
           (long long)s1.st_size);
    /* refusals: one line, non-zero, input untouched */
    static const struct {
        const char *args, *word;
        int code;
    } bad[] = {
        {"prune m.pare --scheme 2:9 --sparsity 0.5 --data synth --out q.pare", "no layer", 1},
        {"prune m.pare --scheme pattern --sparsity 0.5 --data synth --out q.pare", "3x3", 1},
        {"prune m.pare --scheme unstructured --sparsity 1 --out q.pare", "out of range", 2},
        {"prune m.pare --scheme unstructured --sparsity 0.5 --out m.pare", "never modifies", 2},
        {"prune m.pare --scheme lumpy --sparsity 0.5 --out q.pare --data synth", "lumpy", 1},
        {"prune m.pare --sparsity 0.5 --out q.pare", "--scheme is required", 2},
        {"prune m.pare --scheme unstructured --out q.pare", "--sparsity is required", 2},
        {"prune missing.pare --scheme unstructured --sparsity 0.5 --out q.pare", "missing.pare", 1},
        {"prune m.pare --scheme unstructured --sparsity 0.5 --ratios nofile.txt --out q.pare --data synth", "nofile.txt", 1},
        {"prune m.pare --scheme filter --sparsity 0.5 --method imp --rewind-from nofile.pare --out q.pare --data synth", "nofile.pare", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = run(bad[i].args, err, sizeof err);
        int lines = 0;
        for (char *c = err; *c; c++)
            lines += *c == '\n';
        CHECKF(code == bad[i].code && lines == 1 && strstr(err, bad[i].word), "pare %s: exit %d, stderr %s",
               bad[i].args, code, err);
    }
    CHECK(!pare_file_exists(pare_test_path("q.pare")));
    /* an N:M scheme fixes its ratio: no --sparsity needed, 2 of every 4 kept */
    CHECK(run("prune m.pare --scheme 2:4 --data synth --finetune 0 --out nm.pare --json --quiet", err, sizeof err) == 0);
    CHECK_OK(pare_graph_load(pare_test_path("nm.pare"), &p));
    int fc2 = pare_graph_node_param(p, pare_graph_find_node(p, "fc2"), PARE_ROLE_WEIGHT);
    size_t kept = 0, n = p->params[fc2].t->n;
    for (size_t i = 0; p->params[fc2].mask && i < n; i++)
        kept += p->params[fc2].mask[i];
    CHECKF(p->params[fc2].mask && kept * 2 == n, "fc2 keeps %zu of %zu", kept, n);
    pare_graph_free(p);
}
