/* pare share: weight sharing of a model's conv and linear weights (k-means per
 * layer with the Deep k-Means regulariser and centroid fine-tuning, or
 * SmartExchange), with a per-layer report and the file sizes. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report/report.h"

int cmd_share(int argc, char **argv)
{
    const char *out = NULL, *data = "fashion-mnist", *sub = "kernel";
    const char *tr_img = NULL, *tr_lab = NULL, *te_img = NULL, *te_lab = NULL;
    int json = 0, quiet = 0;
    long limit = 0, test_limit = 0;
    pare_share_options o;
    pare_share_options_init(&o);
    cli_opt opts[] = {
        {"--k", CLI_INT, &o.k, "K", "centroids per layer (16)", NULL, 1, 256, 0},
        {"--sub", CLI_STRING, &sub, "kernel|1|N", "values per shared run: a conv's kernel width and 1 for linear (kernel), or N for every layer (1 to 16)", NULL, 0, 0, 0},
        {"--layers", CLI_STRING, &o.layers, "L1,L2", "only these conv/linear layers (default: all)", NULL, 0, 0, 0},
        {"--iters", CLI_INT, &o.max_iters, "N", "k-means: Lloyd iterations at most (50)", NULL, 0, 100000, 0},
        {"--seed", CLI_U64, &o.seed, "N", "seed of k-means++ and of training (0)", NULL, 0, 0, 0},
        {"--reg", CLI_FLOAT, &o.reg, "LAMBDA", "train with the Deep k-Means regulariser before clustering (off)", NULL, 0, 1e6, 0},
        {"--reg-epochs", CLI_INT, &o.reg_epochs, "N", "epochs of regularised training (1)", NULL, 1, 10000, 0},
        {"--reg-every", CLI_INT, &o.reg_every, "N", "steps between refreshes of the regulariser's F (50)", NULL, 1, 1e9, 0},
        {"--finetune", CLI_INT, &o.finetune_epochs, "N", "epochs of fine-tuning the centroids after sharing (0)", NULL, 0, 10000, 0},
        {"--smartexchange", CLI_FLAG, &o.smartexchange, NULL, "W = Ce B (power-of-two sparse Ce, small basis B) instead of k-means", NULL, 0, 0, 0},
        {"--se-bits", CLI_INT, &o.se_exp_bits, "N", "SmartExchange: exponent bits of Ce's entries (3)", NULL, 1, 8, 0},
        {"--se-sparsity", CLI_FLOAT, &o.se_sparsity, "F", "SmartExchange: share of Ce's entries zeroed (0.5)", NULL, 0, 0.999999, 0},
        {"--se-iters", CLI_INT, &o.se_iters, "N", "SmartExchange: alternations (10)", NULL, 0, 10000, 0},
        {"--lr", CLI_FLOAT, &o.train.lr, "F", "learning rate of the training phases (0.01, cosine)", NULL, 1e-12, 1e6, 0},
        {"--batch", CLI_INT, &o.train.batch, "N", "batch size (128)", NULL, 1, 65536, 0},
        {"--wd", CLI_FLOAT, &o.train.weight_decay, "F", "weight decay (5e-4)", NULL, 0, 10, 0},
        {"--threads", CLI_INT, &o.train.threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--data", CLI_STRING, &data, "SPEC", "fashion-mnist (default) or a folder of IDX or CIFAR-10 files", NULL, 0, 0, 0},
        {"--train-images", CLI_STRING, &tr_img, "FILE", "IDX training images (with --train-labels)", NULL, 0, 0, 0},
        {"--train-labels", CLI_STRING, &tr_lab, "FILE", "IDX training labels", NULL, 0, 0, 0},
        {"--test-images", CLI_STRING, &te_img, "FILE", "IDX test images (with --test-labels)", NULL, 0, 0, 0},
        {"--test-labels", CLI_STRING, &te_lab, "FILE", "IDX test labels", NULL, 0, 0, 0},
        {"--limit", CLI_LONG, &limit, "N", "train on the first N samples only", NULL, 1, 1e12, 0},
        {"--test-limit", CLI_LONG, &test_limit, "N", "evaluate on the first N test samples only", NULL, 1, 1e12, 0},
        {"--out", CLI_STRING, &out, "FILE", "where to write the shared model (required; not the input)", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "print the report as one JSON object", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "no progress output", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"share", "IN.pare --k K --out OUT.pare [options]",
                   "Shares the weights of each conv and linear layer: k-means (k-means++ seeding) over runs of\n"
                   "--sub consecutive values makes every run one of K centroids, and the file stores the K\n"
                   "centroids and a ceil(log2 K)-bit index per run. --reg trains with the Deep k-Means\n"
                   "regulariser first; --finetune trains the centroids afterwards. --smartexchange writes each\n"
                   "weight as Ce B instead, and the file stores B and Ce's sparse power-of-two entries. Pruned\n"
                   "weights stay exactly 0. The input file is never modified.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!out)
        return cli_error("share", EXIT_USAGE, "--out FILE is required (the input file is never modified)");
    if (!strcmp(out, pos[0]) || cli_same_file(out, pos[0]))
        return cli_error("share", EXIT_USAGE, "--out %s is the input file; pare share never modifies its input", out);
    if (!tr_img != !tr_lab || !te_img != !te_lab)
        return cli_error("share", EXIT_USAGE, "--train-images/--train-labels and --test-images/--test-labels come in pairs");
    if (!strcmp(sub, "kernel")) {
        o.sub = 0;
    } else {
        char *end;
        long v = strtol(sub, &end, 10);
        if (end == sub || *end || v < 1 || v > 16)
            return cli_error("share", EXIT_USAGE, "--sub '%s': kernel, or a run length of 1 to 16", sub);
        o.sub = (int)v;
    }
    if (o.smartexchange && o.reg > 0)
        return cli_error("share", EXIT_USAGE, "--reg is the Deep k-Means regulariser; it does not apply with --smartexchange");
    if (!cli_find(&cmd, "--reg")->set && (cli_find(&cmd, "--reg-epochs")->set || cli_find(&cmd, "--reg-every")->set))
        return cli_error("share", EXIT_USAGE, "--reg-epochs and --reg-every need --reg LAMBDA");
    if (!o.smartexchange && (cli_find(&cmd, "--se-bits")->set || cli_find(&cmd, "--se-sparsity")->set ||
                             cli_find(&cmd, "--se-iters")->set))
        return cli_error("share", EXIT_USAGE, "--se-bits, --se-sparsity and --se-iters need --smartexchange");

    pare_graph *g = NULL;
    pare_dataset *train = NULL, *test = NULL;
    pare_share_result res;
    memset(&res, 0, sizeof res);
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s != PARE_OK)
        goto fail;
    int need_train = o.reg > 0 || o.finetune_epochs > 0;
    int data_given = cli_find(&cmd, "--data")->set || tr_img || te_img;
    s = cli_load_train_test("share", g, data, tr_img, tr_lab, te_img, te_lab, limit, test_limit, need_train,
                            data_given, quiet, &train, &test);
    if (s != PARE_OK)
        goto fail;
    cli_progress u = {0};
    u.bar = pare_progress_new(stderr, quiet ? 0 : -1);
    u.quiet = quiet;
    o.train.callback = cli_progress_event;
    o.train.user = &u;
    s = pare_share(g, &o, train, test, &res);
    pare_progress_done(u.bar);
    pare_progress_free(u.bar);
    if (s != PARE_OK)
        goto fail;
    if ((s = pare_graph_save(g, out)) != PARE_OK)
        goto fail;
    long long in_bytes = cli_file_size(pos[0]), out_bytes = cli_file_size(out);
    long long before = 0, after = 0, weights = 0;
    for (int i = 0; i < res.n; i++) {
        before += res.layers[i].bytes_before;
        after += res.layers[i].bytes_after;
        weights += res.layers[i].weights;
    }
    const char *method = o.smartexchange ? "smartexchange" : "kmeans";
    if (json) {
        pare_json *j = pare_json_new(stdout, 1);
        pare_json_begin_object(j);
        pare_json_kv_string(j, "model", pos[0]);
        pare_json_kv_string(j, "out", out);
        pare_json_kv_string(j, "method", method);
        pare_json_kv_int(j, "k", o.k);
        pare_json_kv_string(j, "sub", sub);
        pare_json_kv_double(j, "reg", o.reg);
        pare_json_kv_int(j, "reg_epochs", o.reg > 0 ? o.reg_epochs : 0);
        pare_json_kv_int(j, "finetune_epochs", o.finetune_epochs);
        pare_json_kv_double(j, "acc_before", res.acc_before);
        pare_json_kv_double(j, "acc_reg", res.acc_reg);
        pare_json_kv_double(j, "acc_shared", res.acc_shared);
        pare_json_kv_double(j, "acc_final", res.acc_final);
        pare_json_kv_int(j, "file_bytes_before", in_bytes);
        pare_json_kv_int(j, "file_bytes_after", out_bytes);
        pare_json_kv_int(j, "weight_bytes_before", before);
        pare_json_kv_int(j, "weight_bytes_after", after);
        pare_json_kv_double(j, "seconds_reg", res.seconds_reg);
        pare_json_kv_double(j, "seconds_share", res.seconds_share);
        pare_json_kv_double(j, "seconds_finetune", res.seconds_finetune);
        pare_json_key(j, "layers");
        pare_json_begin_array(j);
        for (int i = 0; i < res.n; i++) {
            const pare_share_layer *L = &res.layers[i];
            pare_json_begin_object(j);
            pare_json_kv_string(j, "layer", L->name);
            pare_json_kv_int(j, "k", L->k);
            pare_json_kv_int(j, "d", L->d);
            pare_json_kv_int(j, "bits", L->bits);
            pare_json_kv_int(j, "weights", L->weights);
            pare_json_kv_double(j, "rel_error", L->rel_error);
            pare_json_kv_double(j, "bits_per_weight", L->bits_per_weight);
            pare_json_kv_int(j, "bytes_before", L->bytes_before);
            pare_json_kv_int(j, "bytes_after", L->bytes_after);
            if (o.smartexchange)
                pare_json_kv_int(j, "nonzeros", L->nonzeros);
            pare_json_end_object(j);
        }
        pare_json_end_array(j);
        pare_json_end_object(j);
        pare_json_free(j);
    } else if (!quiet) {
        static const char *const hdr[] = {"layer", "k", "d", "weights", "rel. error", "bits/weight", "bytes before", "bytes after"};
        pare_table *t = pare_table_new(8, hdr, "lrrrrrrr");
        for (int i = 0; i < res.n; i++) {
            const pare_share_layer *L = &res.layers[i];
            char k[16], w[24], e[24], b[24], b0[24], b1[24];
            if (o.smartexchange)
                snprintf(k, sizeof k, "-");
            else
                snprintf(k, sizeof k, "%d", L->k);
            pare_format_count((double)L->weights, w, sizeof w);
            snprintf(e, sizeof e, "%.4f", L->rel_error);
            snprintf(b, sizeof b, "%.3f", L->bits_per_weight);
            pare_format_count((double)L->bytes_before, b0, sizeof b0);
            pare_format_count((double)L->bytes_after, b1, sizeof b1);
            pare_table_rowf(t, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s", L->name, k, L->d, w, e, b, b0, b1);
        }
        char w[24], b[24], b0[24], b1[24];
        pare_format_count((double)weights, w, sizeof w);
        snprintf(b, sizeof b, "%.3f", weights ? 8.0 * (double)after / (double)weights : 0.0);
        pare_format_count((double)before, b0, sizeof b0);
        pare_format_count((double)after, b1, sizeof b1);
        pare_table_separator(t);
        pare_table_rowf(t, "total\t\t\t%s\t\t%s\t%s\t%s", w, b, b0, b1);
        pare_table_print(t, stdout);
        pare_table_free(t);
        char a0[24], a1[24], a2[24], a3[24];
        cli_pct(res.acc_before, a0, sizeof a0);
        cli_pct(res.acc_reg, a1, sizeof a1);
        cli_pct(res.acc_shared, a2, sizeof a2);
        cli_pct(res.acc_final, a3, sizeof a3);
        printf("\naccuracy: before %s", a0);
        if (o.reg > 0)
            printf(", after %d epoch%s with the regulariser %s", o.reg_epochs, o.reg_epochs == 1 ? "" : "s", a1);
        printf(", shared %s", a2);
        if (o.finetune_epochs > 0)
            printf(", after %d epoch%s of fine-tuning %s", o.finetune_epochs, o.finetune_epochs == 1 ? "" : "s", a3);
        printf("\nfile: %lld -> %lld bytes (%.1f%%)\n", in_bytes, out_bytes,
               in_bytes > 0 ? 100.0 * (double)out_bytes / (double)in_bytes : 0.0);
        printf("time: regulariser %.1f s, sharing %.1f s, fine-tuning %.1f s\n", res.seconds_reg, res.seconds_share,
               res.seconds_finetune);
        printf("wrote %s\n", out);
    }
    code = 0;
    goto done;
fail:
    code = cli_fail("share", s);
done:
    pare_share_result_free(&res);
    pare_dataset_free(train);
    pare_dataset_free(test);
    pare_graph_free(g);
    return code;
}
