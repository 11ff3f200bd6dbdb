/* pare prune: masks a model's conv and linear weights by a sparsity scheme and
 * a method, fine-tunes with the masks kept, optionally removes pruned
 * channels for real, and reports per layer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compress/prune.h"
#include "graph/graph.h"
#include "report/report.h"

static pare_status write_plot(const pare_graph *g, const pare_prune_plan *plan, const char *path,
                              const char *title)
{
    const char **names = calloc((size_t)plan->n + 1, sizeof *names);
    double *target = calloc((size_t)plan->n + 1, sizeof(double)), *reached = calloc((size_t)plan->n + 1, sizeof(double));
    pare_chart *c = pare_chart_new(1, 120 + 36 * plan->n > 640 ? 120 + 36 * plan->n : 640, 420);
    pare_status s = pare_fail(PARE_ENOMEM, "out of memory drawing %s", path);
    if (names && target && reached && c) {
        for (int i = 0; i < plan->n; i++) {
            names[i] = g->nodes[plan->l[i].node].name;
            target[i] = 100 * (plan->global ? plan->sparsity : plan->l[i].target);
            reached[i] = 100 * plan->l[i].reached;
        }
        pare_chart_title(c, title);
        pare_chart_panel(c, 0, "Sparsity per layer", "layer", "weights pruned (%)");
        pare_chart_categories(c, 0, names, plan->n);
        pare_chart_series(c, 0, "target", PARE_CHART_BARS, NULL, target, plan->n);
        pare_chart_series(c, 0, "reached", PARE_CHART_BARS, NULL, reached, plan->n);
        pare_chart_yrange(c, 0, 0, 100);
        s = pare_chart_write_svg(c, path);
    }
    pare_chart_free(c);
    free(names);
    free(target);
    free(reached);
    return s;
}

int cmd_prune(int argc, char **argv)
{
    static const char *const methods[] = {"oneshot", "gmp", "imp", "admm", "admm-progressive", "bip", NULL};
    static const char *const rewinds[] = {"weights", "lr", NULL};
    const char *scheme = NULL, *ratios = NULL, *out = NULL, *data = "fashion-mnist", *plot = NULL;
    const char *tr_img = NULL, *tr_lab = NULL, *te_img = NULL, *te_lab = NULL, *rewind_from = NULL;
    float sparsity = -1;
    int method = 0, global = 0, ex_first = 0, ex_last = 0, json = 0, quiet = 0, purify = 0, rewind = 0;
    int dequantize = 0;
    long limit = 0, test_limit = 0;
    pare_prune_config pc;
    pare_prune_config_init(&pc);
    float gmp_ramp = (float)pc.gmp_ramp, imp_rate = (float)pc.imp_rate;
    cli_opt opts[] = {
        {"--scheme", CLI_STRING, &scheme, "S", "unstructured, N:M (2:4), block:RxC, punched:RxC, darb, pattern[:K], filter, channel, column, or auto", NULL, 0, 0, 0},
        {"--sparsity", CLI_FLOAT, &sparsity, "F", "fraction of weights to prune, in [0, 1) (N:M schemes: 1 - N/M unless given)", NULL, 0, 0.999999, 0},
        {"--method", CLI_CHOICE, &method, "M", "how (oneshot)", methods, 0, 0, 0},
        {"--global", CLI_FLAG, &global, NULL, "one magnitude threshold over all layers (unstructured)", NULL, 0, 0, 0},
        {"--ratios", CLI_STRING, &ratios, "FILE", "per-layer 'LAYER SPARSITY [SCHEME]' lines", NULL, 0, 0, 0},
        {"--exempt-first", CLI_FLAG, &ex_first, NULL, "leave the first conv/linear layer dense", NULL, 0, 0, 0},
        {"--exempt-last", CLI_FLAG, &ex_last, NULL, "leave the last conv/linear layer dense", NULL, 0, 0, 0},
        {"--finetune", CLI_INT, &pc.finetune_epochs, "N", "epochs of masked fine-tuning afterwards (2)", NULL, 0, 10000, 0},
        {"--lr", CLI_FLOAT, &pc.train.lr, "F", "learning rate of every training phase (0.01, cosine)", NULL, 1e-12, 1e6, 0},
        {"--batch", CLI_INT, &pc.train.batch, "N", "batch size (128)", NULL, 1, 65536, 0},
        {"--wd", CLI_FLOAT, &pc.train.weight_decay, "F", "weight decay (5e-4)", NULL, 0, 10, 0},
        {"--seed", CLI_U64, &pc.train.seed, "N", "seed (0)", NULL, 0, 0, 0},
        {"--threads", CLI_INT, &pc.train.threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--data", CLI_STRING, &data, "SPEC", "fashion-mnist (default) or a folder of IDX or CIFAR-10 files", NULL, 0, 0, 0},
        {"--train-images", CLI_STRING, &tr_img, "FILE", "IDX training images (with --train-labels)", NULL, 0, 0, 0},
        {"--train-labels", CLI_STRING, &tr_lab, "FILE", "IDX training labels", NULL, 0, 0, 0},
        {"--test-images", CLI_STRING, &te_img, "FILE", "IDX test images (with --test-labels)", NULL, 0, 0, 0},
        {"--test-labels", CLI_STRING, &te_lab, "FILE", "IDX test labels", NULL, 0, 0, 0},
        {"--limit", CLI_LONG, &limit, "N", "train on the first N samples only", NULL, 1, 1e12, 0},
        {"--test-limit", CLI_LONG, &test_limit, "N", "evaluate on the first N test samples only", NULL, 1, 1e12, 0},
        {"--gmp-ramp", CLI_FLOAT, &gmp_ramp, "F", "gmp: share of fine-tuning over which the ratio ramps (0.75)", NULL, 0.01, 1, 0},
        {"--imp-rounds", CLI_INT, &pc.imp_rounds, "N", "imp: rounds (0: as many as --imp-rate needs)", NULL, 0, 1000, 0},
        {"--imp-rate", CLI_FLOAT, &imp_rate, "F", "imp: share of the remaining weights pruned per round (0.2)", NULL, 0.01, 0.99, 0},
        {"--rewind", CLI_CHOICE, &rewind, "WHAT", "imp: rewind the weights, or only the learning rate (weights)", rewinds, 0, 0, 0},
        {"--rewind-from", CLI_STRING, &rewind_from, "FILE", "imp: the weights to rewind to (default: the input model's)", NULL, 0, 0, 0},
        {"--admm-epochs", CLI_INT, &pc.admm_epochs, "N", "admm: epochs of ADMM training per stage (2)", NULL, 1, 10000, 0},
        {"--rho", CLI_FLOAT, &pc.rho, "F", "admm: initial penalty, x10 each period (1e-2)", NULL, 1e-12, 1e6, 0},
        {"--rho-steps", CLI_INT, &pc.rho_steps, "N", "admm: penalty periods (4)", NULL, 1, 100, 0},
        {"--stages", CLI_INT, &pc.stages, "N", "admm-progressive: sparsity stages (2)", NULL, 1, 100, 0},
        {"--bip-epochs", CLI_INT, &pc.bip_epochs, "N", "bip: epochs of bi-level training (2)", NULL, 1, 10000, 0},
        {"--bip-lambda", CLI_FLOAT, &pc.bip_lambda, "F", "bip: implicit-gradient weight (1e-4)", NULL, 0, 1e6, 0},
        {"--bip-mask-lr", CLI_FLOAT, &pc.bip_mask_lr, "F", "bip: score learning rate (0.1)", NULL, 1e-12, 1e6, 0},
        {"--dequantize", CLI_FLAG, &dequantize, NULL, "prune a quantized model as a float one (drops its qparams and fakequant nodes)", NULL, 0, 0, 0},
        {"--purify", CLI_FLAG, &purify, NULL, "remove pruned filters and channels from the model for real", NULL, 0, 0, 0},
        {"--out", CLI_STRING, &out, "FILE", "where to write the pruned model (required; not the input)", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "print the report as one JSON object", NULL, 0, 0, 0},
        {"--plot", CLI_STRING, &plot, "FILE.svg", "bar chart of per-layer sparsity", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "no progress output", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"prune", "IN.pare --scheme S --sparsity F --out OUT.pare [options]",
                   "Prunes the conv and linear weights of a model to a sparsity scheme with a method, keeps the\n"
                   "masks through fine-tuning (pruned weights stay exactly zero), and reports each layer's\n"
                   "scheme and sparsity and the accuracy before pruning, after it, and after fine-tuning.\n"
                   "The input file is never modified.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!scheme)
        return cli_error("prune", EXIT_USAGE, "--scheme is required (e.g. unstructured, 2:4, pattern, auto)");
    pare_scheme nm;
    if (sparsity < 0 && !ratios && pare_scheme_parse(scheme, &nm) == PARE_OK && nm.kind == PARE_SCHEME_NM)
        sparsity = 1.0f - (float)nm.n / (float)nm.m; /* the scheme fixes it */
    if (sparsity < 0 && !ratios)
        return cli_error("prune", EXIT_USAGE, "--sparsity is required unless --ratios gives every layer's");
    if (!out)
        return cli_error("prune", EXIT_USAGE, "--out FILE is required (the input file is never modified)");
    if (!strcmp(out, pos[0]) || cli_same_file(out, pos[0]))
        return cli_error("prune", EXIT_USAGE, "--out %s is the input file; pare prune never modifies its input", out);
    if (!tr_img != !tr_lab || !te_img != !te_lab)
        return cli_error("prune", EXIT_USAGE, "--train-images/--train-labels and --test-images/--test-labels come in pairs");
    if (rewind_from && method != PARE_PRUNE_IMP)
        return cli_error("prune", EXIT_USAGE, "--rewind-from applies to --method imp only");
    pc.method = (pare_prune_method)method;
    pc.gmp_ramp = gmp_ramp;
    pc.imp_rate = imp_rate;
    pc.rewind_lr = rewind == 1;

    pare_graph *g = NULL, *rg = NULL, *pg = NULL;
    pare_dataset *train = NULL, *test = NULL;
    pare_prune_plan plan = {0};
    pare_purify_report prep;
    memset(&prep, 0, sizeof prep);
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s != PARE_OK || (s = cli_float_model(pos[0], &g, dequantize, "pruning", NULL)) != PARE_OK)
        goto fail;
    if (rewind_from && (s = pare_graph_load(rewind_from, &rg)) != PARE_OK)
        goto fail;
    pc.rewind_to = rg;
    pare_prune_options po = {scheme, sparsity, global, ratios, ex_first, ex_last};
    if ((s = pare_prune_plan_new(g, &po, &plan)) != PARE_OK)
        goto fail;
    int need_train = pc.method != PARE_PRUNE_ONESHOT || pc.finetune_epochs > 0;
    int data_given = cli_find(&cmd, "--data")->set || tr_img || te_img;
    s = cli_load_train_test("prune", g, data, tr_img, tr_lab, te_img, te_lab, limit, test_limit, need_train,
                            data_given, quiet, &train, &test);
    if (s != PARE_OK)
        goto fail;
    cli_progress u = {0};
    u.bar = pare_progress_new(stderr, quiet ? 0 : -1);
    u.quiet = quiet;
    u.phase = pare_prune_method_name(pc.method);
    pc.train.callback = cli_progress_event;
    pc.train.user = &u;
    pare_prune_result res;
    s = pare_prune_run(g, &plan, &pc, train, test, &res);
    pare_progress_done(u.bar);
    pare_progress_free(u.bar);
    if (s != PARE_OK)
        goto fail;
    pare_graph *final = g;
    if (purify) {
        if ((s = pare_purify(g, &pg, &prep)) != PARE_OK)
            goto fail;
        final = pg;
    }
    if ((s = pare_graph_save(final, out)) != PARE_OK)
        goto fail;
    if (plot) {
        char title[256];
        snprintf(title, sizeof title, "%s: %s, %s", pare_graph_name(g), scheme, pare_prune_method_name(pc.method));
        if ((s = write_plot(g, &plan, plot, title)) != PARE_OK)
            goto fail;
    }
    double overall = pare_prune_sparsity(g, &plan);
    if (json) {
        pare_json *j = pare_json_new(stdout, 1);
        pare_json_begin_object(j);
        pare_json_kv_string(j, "model", pos[0]);
        pare_json_kv_string(j, "out", out);
        pare_json_kv_string(j, "method", pare_prune_method_name(pc.method));
        pare_json_kv_string(j, "scheme", scheme);
        pare_json_kv_double(j, "sparsity", overall);
        pare_json_kv_double(j, "acc_before", res.acc_before);
        pare_json_kv_double(j, "acc_pruned", res.acc_pruned);
        pare_json_kv_double(j, "acc_final", res.acc_final);
        pare_json_kv_double(j, "seconds_prune", res.seconds_prune);
        pare_json_kv_double(j, "seconds_finetune", res.seconds_finetune);
        pare_json_kv_int(j, "finetune_epochs", pc.finetune_epochs);
        pare_json_key(j, "layers");
        pare_json_begin_array(j);
        for (int i = 0; i < plan.n; i++) {
            char st[64];
            pare_scheme_format(&plan.l[i].scheme, st, sizeof st);
            pare_json_begin_object(j);
            pare_json_kv_string(j, "layer", g->nodes[plan.l[i].node].name);
            pare_json_kv_string(j, "scheme", st);
            pare_json_kv_double(j, "target", plan.global ? plan.sparsity : plan.l[i].target);
            pare_json_kv_double(j, "sparsity", plan.l[i].reached);
            pare_json_kv_int(j, "weights", (int64_t)g->params[plan.l[i].param].t->n);
            pare_json_end_object(j);
        }
        pare_json_end_array(j);
        if (purify) {
            pare_json_kv_int(j, "params_before", prep.params_before);
            pare_json_kv_int(j, "params_after", prep.params_after);
        }
        pare_json_end_object(j);
        pare_json_free(j);
    } else if (!quiet) {
        static const char *const hdr[] = {"layer", "scheme", "target", "sparsity", "weights", "kept"};
        pare_table *t = pare_table_new(6, hdr, "llrrrr");
        size_t all = 0, kept_all = 0;
        for (int i = 0; i < plan.n; i++) {
            char st[64], a[24], b[24], w[24], k[24];
            const pare_tensor *wt = g->params[plan.l[i].param].t;
            size_t kept = (size_t)llround((1.0 - plan.l[i].reached) * (double)wt->n);
            pare_scheme_format(&plan.l[i].scheme, st, sizeof st);
            cli_pct(plan.global ? plan.sparsity : plan.l[i].target, a, sizeof a);
            cli_pct(plan.l[i].reached, b, sizeof b);
            pare_format_count((double)wt->n, w, sizeof w);
            pare_format_count((double)kept, k, sizeof k);
            pare_table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s", g->nodes[plan.l[i].node].name, st, a, b, w, k);
            all += wt->n;
            kept_all += kept;
        }
        char b[24], w[24], k[24];
        cli_pct(overall, b, sizeof b);
        pare_format_count((double)all, w, sizeof w);
        pare_format_count((double)kept_all, k, sizeof k);
        pare_table_separator(t);
        pare_table_rowf(t, "total\t\t\t%s\t%s\t%s", b, w, k);
        pare_table_print(t, stdout);
        pare_table_free(t);
        char a0[24], a1[24], a2[24];
        cli_pct(res.acc_before, a0, sizeof a0);
        cli_pct(res.acc_pruned, a1, sizeof a1);
        cli_pct(res.acc_final, a2, sizeof a2);
        printf("\naccuracy: before %s, after pruning %s, after %d epoch%s of fine-tuning %s\n", a0, a1,
               pc.finetune_epochs, pc.finetune_epochs == 1 ? "" : "s", a2);
        printf("time: %s %.1f s, fine-tuning %.1f s\n", pare_prune_method_name(pc.method), res.seconds_prune,
               res.seconds_finetune);
        if (purify)
            printf("structural removal: %lld -> %lld parameters, %.3g -> %.3g MMAC\n", prep.params_before,
                   prep.params_after, prep.macs_before / 1e6, prep.macs_after / 1e6);
        printf("wrote %s\n", out);
    }
    code = 0;
    goto done;
fail:
    code = cli_fail("prune", s);
done:
    pare_purify_report_free(&prep);
    pare_prune_plan_free(&plan);
    pare_dataset_free(train);
    pare_dataset_free(test);
    pare_graph_free(pg);
    pare_graph_free(rg);
    pare_graph_free(g);
    return code;
}
