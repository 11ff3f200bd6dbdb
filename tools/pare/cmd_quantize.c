/* pare quantize: post-training int8 (or fewer bits) with calibrated activations
 * and a per-layer error report, optionally followed by quantization-aware
 * training or ADMM quantization down to ternary or binary weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report/report.h"

static void db(double v, char *buf, size_t n)
{
    if (isinf(v) && v > 0)
        snprintf(buf, n, "exact");
    else
        snprintf(buf, n, "%.1f", v);
}

static double accuracy(pare_graph *g, const pare_dataset *test, int threads)
{
    pare_eval_result r;
    if (!test || pare_evaluate(g, test, 500, threads, &r) != PARE_OK)
        return -1;
    return r.accuracy;
}

static const char *kept_name(int k) { return k == 1 ? "float (asked)" : k == 2 ? "float (auto)" : ""; }

static void print_table(const pare_quant_report *rep)
{
    static const char *const hdr[] = {"layer", "op", "bits", "input range", "scale / zp", "SQNR dB", "in model", "rel. err", ""};
    pare_table *t = pare_table_new(9, hdr, "llrrrrrrl");
    for (int i = 0; i < rep->n; i++) {
        const pare_quant_layer *l = &rep->layers[i];
        char bits[16], range[64], sc[48], a[24], b[24], e[24];
        snprintf(bits, sizeof bits, "%s", l->kept_float ? "-" : "");
        if (!l->kept_float)
            snprintf(bits, sizeof bits, "%d", l->bits);
        if (l->act_scale > 0) {
            snprintf(range, sizeof range, "[%.4g, %.4g]", (double)l->act_lo, (double)l->act_hi);
            snprintf(sc, sizeof sc, "%.4g / %d", (double)l->act_scale, l->act_zero_point);
        } else {
            snprintf(range, sizeof range, "-");
            snprintf(sc, sizeof sc, "-");
        }
        db(l->sqnr_db, a, sizeof a);
        db(l->model_sqnr_db, b, sizeof b);
        snprintf(e, sizeof e, "%.2f%%", 100 * l->model_rel_error);
        pare_table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", l->name, l->op, bits, range, sc, a, b, e,
                        kept_name(l->kept_float));
    }
    pare_table_print(t, stdout);
    pare_table_free(t);
}

static void json_report(pare_json *j, const pare_quant_report *rep)
{
    pare_json_kv_int(j, "calib_samples", rep->calib_samples);
    pare_json_kv_int(j, "report_samples", rep->report_samples);
    pare_json_kv_int(j, "quantized_layers", rep->quantized);
    pare_json_kv_int(j, "float_layers", rep->kept_float);
    pare_json_kv_int(j, "fakequant_nodes", rep->fakequant_nodes);
    pare_json_kv_double(j, "output_sqnr_db", rep->output_sqnr_db);
    pare_json_kv_double(j, "output_rel_error", rep->output_rel_error);
    pare_json_key(j, "layers");
    pare_json_begin_array(j);
    for (int i = 0; i < rep->n; i++) {
        const pare_quant_layer *l = &rep->layers[i];
        pare_json_begin_object(j);
        pare_json_kv_string(j, "layer", l->name);
        pare_json_kv_string(j, "op", l->op);
        pare_json_kv_int(j, "bits", l->bits);
        pare_json_kv_string(j, "float", l->kept_float == 1 ? "asked" : l->kept_float == 2 ? "auto" : NULL);
        pare_json_kv_bool(j, "bias_int32", l->bias_int32);
        if (l->act_scale > 0) {
            pare_json_kv_float(j, "act_lo", l->act_lo);
            pare_json_kv_float(j, "act_hi", l->act_hi);
            pare_json_kv_float(j, "act_scale", l->act_scale);
            pare_json_kv_int(j, "act_zero_point", l->act_zero_point);
        }
        pare_json_kv_double(j, "sqnr_db", l->sqnr_db);
        pare_json_kv_double(j, "rel_error", l->rel_error);
        pare_json_kv_double(j, "model_sqnr_db", l->model_sqnr_db);
        pare_json_kv_double(j, "model_rel_error", l->model_rel_error);
        pare_json_end_object(j);
    }
    pare_json_end_array(j);
}

/* 8 -> 4 -> 2 -> ... halving down to the final width, which ends the list. */
static int progressive_stages(int bits, int *out)
{
    int n = 0;
    for (int b = 8; b > bits && n < 7; b /= 2)
        out[n++] = b;
    out[n++] = bits;
    return n;
}

int cmd_quantize(int argc, char **argv)
{
    static const char *const methods[] = {"ptq", "qat", "admm", NULL};
    static const char *const calibs[] = {"minmax", "percentile", "mse", NULL};
    static const char *const grains[] = {"channel", "layer", NULL};
    const char *out = NULL, *calib = NULL, *data = NULL, *keep = NULL;
    int method = 0, grain = -1, json = 0, quiet = 0, no_eval = 0, progressive = 0;
    long limit = 0, test_limit = 0;
    float percentile = 99.99f, keep_db = 25.0f, act_ema = 0;
    pare_quant_config qc;
    pare_quant_config_init(&qc);
    int calib_i = (int)qc.calib;
    pare_admm_quant_config ac;
    pare_admm_quant_config_init(&ac);
    int epochs = 2;
    cli_opt opts[] = {
        {"--calib", CLI_STRING, &calib, "SPEC", "calibration data: fashion-mnist or a folder (its training split)", NULL, 0, 0, 0},
        {"--out", CLI_STRING, &out, "FILE", "where to write the quantized model (required; not the input)", NULL, 0, 0, 0},
        {"--method", CLI_CHOICE, &method, "M", "ptq, qat (PTQ, then quantization-aware training) or admm (ptq)", methods, 0, 0, 0},
        {"--bits", CLI_INT, &qc.weight_bits, "N", "weight bits: 8, 4, 2 (ternary), 1 (binary), ... (8)", NULL, 1, 8, 0},
        {"--act-bits", CLI_INT, &qc.act_bits, "N", "activation bits; 0 leaves activations float (8)", NULL, 0, 8, 0},
        {"--granularity", CLI_CHOICE, &grain, "G", "weight scales per output channel or per layer (channel; admm: layer)", grains, 0, 0, 0},
        {"--calib-method", CLI_CHOICE, &calib_i, "M", "activation ranges: minmax, percentile or mse (mse)", calibs, 0, 0, 0},
        {"--percentile", CLI_FLOAT, &percentile, "P", "percentile of --calib-method percentile (99.99)", NULL, 50.000001, 100, 0},
        {"--calib-samples", CLI_LONG, &qc.calib_samples, "N", "calibration samples (1000)", NULL, 1, 1e9, 0},
        {"--report-samples", CLI_LONG, &qc.report_samples, "N", "samples the per-layer errors are measured on (500)", NULL, 1, 1e9, 0},
        {"--keep-float", CLI_STRING, &keep, "LIST|auto", "layers that stay float: comma-separated names, or auto (by SQNR)", NULL, 0, 0, 0},
        {"--keep-float-db", CLI_FLOAT, &keep_db, "DB", "auto: a layer whose own SQNR is below DB stays float (25)", NULL, -1000, 1000, 0},
        {"--data", CLI_STRING, &data, "SPEC", "training (qat, admm) and test data (default: the --calib data)", NULL, 0, 0, 0},
        {"--limit", CLI_LONG, &limit, "N", "train on the first N samples only", NULL, 1, 1e12, 0},
        {"--test-limit", CLI_LONG, &test_limit, "N", "evaluate on the first N test samples only", NULL, 1, 1e12, 0},
        {"--no-eval", CLI_FLAG, &no_eval, NULL, "do not measure accuracy", NULL, 0, 0, 0},
        {"--epochs", CLI_INT, &epochs, "N", "qat: epochs of quantization-aware training (2)", NULL, 1, 100000, 0},
        {"--lr", CLI_FLOAT, &ac.train.lr, "F", "qat, admm: learning rate of every training phase (0.01, cosine)", NULL, 1e-12, 1e6, 0},
        {"--batch", CLI_INT, &ac.train.batch, "N", "batch size (128)", NULL, 1, 65536, 0},
        {"--wd", CLI_FLOAT, &ac.train.weight_decay, "F", "weight decay (5e-4)", NULL, 0, 10, 0},
        {"--seed", CLI_U64, &ac.train.seed, "N", "seed (0)", NULL, 0, 0, 0},
        {"--act-ema", CLI_FLOAT, &act_ema, "M", "qat: activation ranges follow the batches' min/max by EMA of momentum M (0: fixed)", NULL, 0, 0.999999, 0},
        {"--admm-epochs", CLI_INT, &ac.admm_epochs, "N", "admm: epochs of ADMM training per stage (2)", NULL, 1, 10000, 0},
        {"--rho", CLI_FLOAT, &ac.rho, "F", "admm: initial penalty, x10 each period (1e-2)", NULL, 1e-12, 1e6, 0},
        {"--rho-steps", CLI_INT, &ac.rho_steps, "N", "admm: penalty periods per stage (4)", NULL, 1, 100, 0},
        {"--progressive", CLI_FLAG, &progressive, NULL, "admm: lower the bits in stages, 8, 4, 2, ... down to --bits", NULL, 0, 0, 0},
        {"--finetune", CLI_INT, &ac.finetune_epochs, "N", "admm: epochs of QAT fine-tuning on the final grid (2)", NULL, 0, 10000, 0},
        {"--threads", CLI_INT, &qc.threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--json", CLI_FLAG, &json, NULL, "print the report as one JSON object", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "no progress output", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"quantize", "IN.pare --calib SPEC --out OUT.pare [options]",
                   "Quantizes a float model: weights symmetric per output channel (int8 by default), biases on\n"
                   "their int32 grid, and a calibrated uint8 fakequant on the input of every conv and linear\n"
                   "layer; reports each layer's error (SQNR) alone and inside the quantized model, and the\n"
                   "accuracy before and after. --method qat then trains with fake quantization (straight-through\n"
                   "gradients); --method admm trains towards the {0, ±q, ..., ±Mq} levels (binary at --bits 1)\n"
                   "and fine-tunes on the grid. Pruning masks are kept. The input file is never modified.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!calib)
        return cli_error("quantize", EXIT_USAGE, "--calib SPEC is required (the data the activation ranges come from)");
    if (!out)
        return cli_error("quantize", EXIT_USAGE, "--out FILE is required (the input file is never modified)");
    if (!strcmp(out, pos[0]) || cli_same_file(out, pos[0]))
        return cli_error("quantize", EXIT_USAGE, "--out %s is the input file; pare quantize never modifies its input", out);
    if (progressive && method != 2)
        return cli_error("quantize", EXIT_USAGE, "--progressive belongs to --method admm");
    qc.calib = (pare_calib_method)calib_i;
    qc.percentile = percentile;
    qc.keep_float_db = keep_db;
    if (keep && !strcmp(keep, "auto"))
        qc.keep_float_auto = 1;
    else
        qc.keep_float = keep;
    int per_layer = grain < 0 ? method == 2 : grain == 1;
    qc.per_tensor = per_layer;
    ac.per_channel = !per_layer;
    ac.train.threads = qc.threads;
    if (progressive)
        ac.stages = progressive_stages(qc.weight_bits, ac.bits);
    else
        ac.bits[0] = qc.weight_bits;
    if (!data)
        data = calib;

    pare_graph *g = NULL, *qg = NULL;
    pare_dataset *cal = NULL, *train = NULL, *test = NULL;
    pare_quant_report rep;
    memset(&rep, 0, sizeof rep);
    int code = 1;
    double acc_float = -1, acc_ptq = -1, acc_final = -1;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s != PARE_OK)
        goto fail;
    if ((s = cli_load_data(calib, NULL, NULL, PARE_SPLIT_TRAIN, qc.calib_samples, &cal)) != PARE_OK) {
        pare_error_prefix("--calib %s", calib);
        goto fail;
    }
    cli_apply_model_norm(g, cal);
    /* Quantize first: a calibration set or bit width that does not fit fails
     * before any other data is read. */
    if ((s = pare_quantize(g, &qc, cal, &qg, &rep)) != PARE_OK)
        goto fail;
    if (!no_eval) {
        s = cli_load_data(data, NULL, NULL, PARE_SPLIT_TEST, test_limit, &test);
        if (s != PARE_OK) {
            if (method != 0 || s != PARE_ENOTFOUND)
                goto fail;
            test = NULL;
            if (!quiet)
                fprintf(stderr, "pare quantize: no test data (%s); accuracy is not reported\n", pare_last_error());
        } else {
            cli_apply_model_norm(g, test);
        }
    }
    if (method != 0) {
        if ((s = cli_load_data(data, NULL, NULL, PARE_SPLIT_TRAIN, limit, &train)) != PARE_OK)
            goto fail;
        cli_apply_model_norm(g, train);
    }
    acc_float = accuracy(g, test, qc.threads);
    acc_ptq = accuracy(qg, test, qc.threads);
    acc_final = acc_ptq;
    cli_progress u = {0};
    u.bar = pare_progress_new(stderr, quiet ? 0 : -1);
    u.quiet = quiet;
    ac.train.callback = cli_progress_event;
    ac.train.user = &u;
    if (method == 1) {
        pare_train_config tc = ac.train;
        tc.epochs = epochs;
        u.phase = "qat";
        s = pare_qat_train(qg, g, &tc, act_ema, train, test);
    } else if (method == 2) {
        u.phase = "admm";
        s = pare_quant_admm(qg, g, &ac, train, test);
    }
    pare_progress_done(u.bar);
    pare_progress_free(u.bar);
    if (s != PARE_OK)
        goto fail;
    if (method != 0)
        acc_final = accuracy(qg, test, qc.threads);
    if ((s = pare_graph_save(qg, out)) != PARE_OK)
        goto fail;
    long long in_size = cli_file_size(pos[0]), out_size = cli_file_size(out);
    if (json) {
        pare_json *j = pare_json_new(stdout, 1);
        pare_json_begin_object(j);
        pare_json_kv_string(j, "model", pos[0]);
        pare_json_kv_string(j, "out", out);
        pare_json_kv_string(j, "method", methods[method]);
        pare_json_kv_int(j, "bits", qc.weight_bits);
        pare_json_kv_int(j, "act_bits", qc.act_bits);
        pare_json_kv_string(j, "granularity", per_layer ? "layer" : "channel");
        pare_json_kv_string(j, "calib_method", calibs[calib_i]);
        if (method == 2) {
            pare_json_key(j, "stages");
            pare_json_begin_array(j);
            for (int k = 0; k < ac.stages; k++)
                pare_json_int(j, ac.bits[k]);
            pare_json_end_array(j);
        }
        pare_json_kv_double(j, "acc_float", acc_float);
        pare_json_kv_double(j, "acc_ptq", acc_ptq);
        pare_json_kv_double(j, "acc_final", acc_final);
        pare_json_kv_int(j, "bytes_in", in_size);
        pare_json_kv_int(j, "bytes_out", out_size);
        json_report(j, &rep);
        pare_json_end_object(j);
        pare_json_free(j);
    } else if (!quiet) {
        print_table(&rep);
        char a0[24], a1[24], a2[24], o[24];
        db(rep.output_sqnr_db, o, sizeof o);
        printf("\n%d layers quantized, %d float, %d fakequant nodes; output SQNR %s dB on %ld samples "
               "(calibrated on %ld)\n",
               rep.quantized, rep.kept_float, rep.fakequant_nodes, o, rep.report_samples, rep.calib_samples);
        cli_pct(acc_float, a0, sizeof a0);
        cli_pct(acc_ptq, a1, sizeof a1);
        cli_pct(acc_final, a2, sizeof a2);
        if (method == 0)
            printf("accuracy: float %s, quantized %s\n", a0, a1);
        else
            printf("accuracy: float %s, after PTQ %s, after %s %s\n", a0, a1, methods[method], a2);
        printf("wrote %s (%lld bytes; the input has %lld)\n", out, out_size, in_size);
    }
    code = 0;
    goto done;
fail:
    code = cli_fail("quantize", s);
done:
    pare_quant_report_free(&rep);
    pare_dataset_free(cal);
    pare_dataset_free(train);
    pare_dataset_free(test);
    pare_graph_free(qg);
    pare_graph_free(g);
    return code;
}
