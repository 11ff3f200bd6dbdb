/* pare train: build (or load) a model, train it with a progress bar, evaluate
 * each epoch, checkpoint, write the model, the JSON lines and the curves. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compress/quant.h"
#include "core/fsio.h"
#include "report/report.h"
#include "train/efficient.h"

static volatile int stop_flag;
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
    /* A second Ctrl-C stops at once; the checkpoint on disk is intact. */
    if (++signals_seen > 1)
        _exit(EXIT_INTERRUPTED);
}

typedef struct run_ui {
    pare_progress *bar;
    pare_json *json;
    int quiet;
    int efficient;
    char label[64];
} run_ui;

static void on_event(const pare_train_event *ev, void *user)
{
    run_ui *ui = user;
    char extra[160], rate[32];
    switch (ev->kind) {
    case PARE_EV_START:
        if (ev->resumed_from && !ui->quiet)
            pare_progress_line(ui->bar, "resuming at step %ld of %ld (epoch %d)", ev->resumed_from,
                               ev->total_steps, ev->epoch);
        break;
    case PARE_EV_STEP:
        if (ui->quiet)
            break;
        snprintf(ui->label, sizeof ui->label, "epoch %d/%d", ev->epoch, ev->epochs);
        pare_format_count(ev->images_per_s, rate, sizeof rate);
        snprintf(extra, sizeof extra, "%s img/s  loss %.4f  lr %.3g", rate, ev->loss, ev->lr);
        pare_progress_update(ui->bar, ui->label, ev->step, ev->steps_per_epoch, extra);
        break;
    case PARE_EV_EVAL:
        if (!ui->quiet)
            pare_progress_update(ui->bar, "evaluating", ev->step, ev->steps_per_epoch, NULL);
        break;
    case PARE_EV_EPOCH: {
        const pare_epoch_stats *s = ev->stats;
        if (!ui->quiet) {
            pare_progress_done(ui->bar);
            pare_format_count(s->images_per_s, rate, sizeof rate);
            if (s->test_acc >= 0)
                pare_progress_line(ui->bar,
                                   "epoch %d/%d  train loss %.4f  acc %.2f%%  test loss %.4f  acc %.2f%%  %.1f s  %s img/s",
                                   s->epoch, ev->epochs, s->train_loss, 100 * s->train_acc, s->test_loss,
                                   100 * s->test_acc, s->seconds, rate);
            else
                pare_progress_line(ui->bar, "epoch %d/%d  train loss %.4f  acc %.2f%%  %.1f s  %s img/s",
                                   s->epoch, ev->epochs, s->train_loss, 100 * s->train_acc, s->seconds, rate);
            if (ui->efficient && s->flops_dense > 0)
                pare_progress_line(ui->bar,
                                   "  cost: %.3g TFLOP (%.1f%% of dense)  %ld examples (%ld from the cache), %ld "
                                   "out of the set  %d/%d units frozen  sparsity %.1f%%",
                                   s->flops * 1e-12, 100 * s->flops / s->flops_dense, s->examples,
                                   s->examples_cached, s->examples_out, s->units_frozen, s->units,
                                   100 * s->sparsity);
        }
        if (ui->json) {
            pare_json_begin_object(ui->json);
            pare_json_kv_string(ui->json, "event", "epoch");
            pare_json_kv_int(ui->json, "epoch", s->epoch);
            pare_json_kv_double(ui->json, "train_loss", s->train_loss);
            pare_json_kv_double(ui->json, "train_acc", s->train_acc);
            if (s->test_acc >= 0) {
                pare_json_kv_double(ui->json, "test_loss", s->test_loss);
                pare_json_kv_double(ui->json, "test_acc", s->test_acc);
            }
            pare_json_kv_double(ui->json, "seconds", s->seconds);
            pare_json_kv_double(ui->json, "images_per_s", s->images_per_s);
            pare_json_kv_double(ui->json, "lr", s->lr_end);
            pare_json_kv_double(ui->json, "flops", s->flops);
            pare_json_kv_double(ui->json, "flops_dense", s->flops_dense);
            pare_json_kv_int(ui->json, "examples", s->examples);
            pare_json_kv_int(ui->json, "examples_out", s->examples_out);
            pare_json_kv_int(ui->json, "examples_cached", s->examples_cached);
            pare_json_kv_int(ui->json, "units_frozen", s->units_frozen);
            pare_json_kv_int(ui->json, "units", s->units);
            pare_json_kv_double(ui->json, "sparsity", s->sparsity);
            pare_json_end_object(ui->json);
            fflush(stdout);
        }
        break;
    }
    case PARE_EV_CHECKPOINT:
        break;
    }
}

static pare_status write_plot(const pare_trainer *t, const char *path, const char *title)
{
    int ne = pare_trainer_epochs_done(t);
    const double *tx, *ty;
    int nt = pare_trainer_trace(t, &tx, &ty);
    double *ex = calloc((size_t)ne + 1, sizeof(double)), *tl = calloc((size_t)ne + 1, sizeof(double));
    double *ta = calloc((size_t)ne + 1, sizeof(double)), *tel = calloc((size_t)ne + 1, sizeof(double));
    double *tea = calloc((size_t)ne + 1, sizeof(double));
    pare_chart *c = pare_chart_new(2, 0, 0);
    pare_status s = PARE_ENOMEM;
    if (!ex || !tl || !ta || !tel || !tea || !c)
        goto done;
    int have_test = 0;
    for (int i = 0; i < ne; i++) {
        pare_epoch_stats st;
        pare_trainer_epoch_stats(t, i + 1, &st);
        ex[i] = st.epoch;
        tl[i] = st.train_loss;
        ta[i] = 100 * st.train_acc;
        tel[i] = st.test_acc >= 0 ? st.test_loss : NAN;
        tea[i] = st.test_acc >= 0 ? 100 * st.test_acc : NAN;
        have_test |= st.test_acc >= 0;
    }
    pare_chart_title(c, title);
    pare_chart_panel(c, 0, "Loss", "epoch", "cross-entropy");
    pare_chart_series(c, 0, "train (per step)", PARE_CHART_LINE, tx, ty, nt);
    pare_chart_series(c, 0, "train (epoch mean)", PARE_CHART_MARKERS, ex, tl, ne);
    if (have_test)
        pare_chart_series(c, 0, "test", PARE_CHART_LINE_MARKERS, ex, tel, ne);
    pare_chart_xrange(c, 0, 0, ne > 0 ? ne : 1);
    pare_chart_panel(c, 1, "Accuracy", "epoch", "accuracy (%)");
    pare_chart_series(c, 1, "train", PARE_CHART_LINE_MARKERS, ex, ta, ne);
    if (have_test)
        pare_chart_series(c, 1, "test", PARE_CHART_LINE_MARKERS, ex, tea, ne);
    pare_chart_xrange(c, 1, ne > 1 ? 1 : 0, ne > 1 ? ne : 2);
    s = pare_chart_write_svg(c, path);
done:
    if (s == PARE_ENOMEM && (!ex || !c))
        s = pare_fail(PARE_ENOMEM, "out of memory drawing %s", path);
    pare_chart_free(c);
    free(ex);
    free(tl);
    free(ta);
    free(tel);
    free(tea);
    return s;
}

/* A quantized model trains only as one (--qat) or as a float model again
 * (--dequantize); a float model given --qat is quantized first, calibrated
 * on the first training samples. Replaces *g when it changes it. */
static pare_status prepare_quant(const char *from, pare_graph **g, int dequantize,
                                 int qat_bits, int act_bits, long calib_samples, int threads,
                                 const pare_dataset *train, pare_graph **float_src)
{
    *float_src = NULL;
    pare_graph *ng = NULL;
    pare_status s;
    if (pare_graph_quantized(*g, NULL, NULL) && !dequantize) {
        if (!qat_bits)
            return cli_float_model(from, g, 0, "training", ", or --qat BITS to keep it quantized");
        for (int i = 0; i < (*g)->n_params; i++) {
            const pare_param *p = &(*g)->params[i];
            if (p->role != PARE_ROLE_WEIGHT || p->q.bits == 0)
                continue;
            if (p->q.scheme >= 3 || p->q.bits != qat_bits)
                return pare_fail(PARE_EINVAL,
                                 "%s holds %s with %d-bit %s weights; --qat %d continues a model quantized to "
                                 "%d bits: add --dequantize to quantize it again from its values",
                                 from, p->name, p->q.bits, p->q.scheme >= 3 ? "weight-shared" : "integer",
                                 qat_bits, qat_bits);
        }
        return PARE_OK;
    }
    if (dequantize && (s = cli_float_model(from, g, 1, "training", NULL)) != PARE_OK)
        return s;
    if (!qat_bits)
        return PARE_OK;
    pare_quant_config qc;
    pare_quant_config_init(&qc);
    qc.weight_bits = qat_bits;
    qc.act_bits = act_bits;
    qc.calib_samples = calib_samples;
    qc.report_samples = 1;
    qc.threads = threads;
    if ((s = pare_quantize(*g, &qc, train, &ng, NULL)) != PARE_OK)
        return s;
    *float_src = *g; /* QAT's latent weights start from the float ones */
    *g = ng;
    return PARE_OK;
}

static int train_main(int argc, char **argv, int finetune)
{
    const char *cname = finetune ? "finetune" : "train";
    static const char *const optimizers[] = {"sgd", "adamw", NULL};
    static const char *const schedules[] = {"constant", "step", "cosine", NULL};
    static const char *const inits[] = {"default", "he-normal", "he-uniform", "xavier-uniform", NULL};
    pare_train_config cfg;
    pare_train_config_init(&cfg);
    if (finetune) {
        cfg.epochs = 1;
        cfg.lr = 0.01f;
    }
    pare_efficiency *ef = &cfg.eff;
    const char *model = NULL, *from = NULL, *data = "fashion-mnist", *out = NULL, *plot = NULL;
    const char *ckpt = NULL, *tr_img = NULL, *tr_lab = NULL, *te_img = NULL, *te_lab = NULL;
    int opt_i = 0, sched_i = 2, init_i = 0, json = 0, quiet = 0, no_test = 0, classes = 0;
    int dequantize = 0, qat_bits = 0, act_bits = 8;
    float act_ema = 0;
    long limit = 0, test_limit = 0, calib_samples = 1000;
    cli_opt opts[] = {
        {"--model", CLI_STRING, &model, "NAME", "a zoo model: lenet, fmnist-cnn, resnet20, vgg11-bn, mobilenetv2, ...", NULL, 0, 0, 0},
        {"--from", CLI_STRING, &from, "FILE", "continue training the model in FILE instead", NULL, 0, 0, 0},
        {"--data", CLI_STRING, &data, "SPEC", "fashion-mnist (default) or a folder of IDX or CIFAR-10 files", NULL, 0, 0, 0},
        {"--train-images", CLI_STRING, &tr_img, "FILE", "IDX images to train on (with --train-labels)", NULL, 0, 0, 0},
        {"--train-labels", CLI_STRING, &tr_lab, "FILE", "IDX labels of --train-images", NULL, 0, 0, 0},
        {"--test-images", CLI_STRING, &te_img, "FILE", "IDX images to evaluate on (with --test-labels)", NULL, 0, 0, 0},
        {"--test-labels", CLI_STRING, &te_lab, "FILE", "IDX labels of --test-images", NULL, 0, 0, 0},
        {"--out", CLI_STRING, &out, "FILE", "where to write the trained model (required)", NULL, 0, 0, 0},
        {"--epochs", CLI_INT, &cfg.epochs, "N", "epochs to train (3)", NULL, 1, 100000, 0},
        {"--batch", CLI_INT, &cfg.batch, "N", "batch size (128)", NULL, 1, 65536, 0},
        {"--optimizer", CLI_CHOICE, &opt_i, "NAME", "optimizer (sgd)", optimizers, 0, 0, 0},
        {"--lr", CLI_FLOAT, &cfg.lr, "F", "learning rate (0.05)", NULL, 1e-12, 1e6, 0},
        {"--momentum", CLI_FLOAT, &cfg.momentum, "F", "SGD momentum (0.9)", NULL, 0, 0.999999, 0},
        {"--nesterov", CLI_FLAG, &cfg.nesterov, NULL, "Nesterov momentum", NULL, 0, 0, 0},
        {"--wd", CLI_FLOAT, &cfg.weight_decay, "F", "weight decay (5e-4; decoupled for adamw)", NULL, 0, 10, 0},
        {"--beta1", CLI_FLOAT, &cfg.beta1, "F", "AdamW beta1 (0.9)", NULL, 0, 0.999999, 0},
        {"--beta2", CLI_FLOAT, &cfg.beta2, "F", "AdamW beta2 (0.999)", NULL, 0, 0.999999, 0},
        {"--schedule", CLI_CHOICE, &sched_i, "NAME", "learning-rate schedule (cosine)", schedules, 0, 0, 0},
        {"--warmup", CLI_LONG, &cfg.warmup_steps, "STEPS", "linear warm-up steps before the schedule (0)", NULL, 0, 1e12, 0},
        {"--step-epochs", CLI_INT, &cfg.step_epochs, "N", "step schedule: epochs between drops (30)", NULL, 1, 100000, 0},
        {"--step-gamma", CLI_FLOAT, &cfg.step_gamma, "F", "step schedule: factor at each drop (0.1)", NULL, 1e-9, 1, 0},
        {"--seed", CLI_U64, &cfg.seed, "N", "seed of data order, augmentation, dropout and init (0)", NULL, 0, 0, 0},
        {"--threads", CLI_INT, &cfg.threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--limit", CLI_LONG, &limit, "N", "train on the first N samples only", NULL, 1, 1e12, 0},
        {"--test-limit", CLI_LONG, &test_limit, "N", "evaluate on the first N test samples only", NULL, 1, 1e12, 0},
        {"--no-test", CLI_FLAG, &no_test, NULL, "do not evaluate after each epoch", NULL, 0, 0, 0},
        {"--crop", CLI_INT, &cfg.augment_crop_pad, "PAD", "random crop after padding by PAD pixels (0: off)", NULL, 0, 64, 0},
        {"--flip", CLI_FLAG, &cfg.augment_hflip, NULL, "random horizontal flips", NULL, 0, 0, 0},
        {"--classes", CLI_INT, &classes, "N", "classes of a zoo model (10)", NULL, 1, 1 << 20, 0},
        {"--init", CLI_CHOICE, &init_i, "NAME", "a zoo model's conv/linear weight initialisation (default: PyTorch's)", inits, 0, 0, 0},
        {"--checkpoint", CLI_STRING, &ckpt, "FILE", "checkpoint file (OUT.ckpt)", NULL, 0, 0, 0},
        {"--checkpoint-every", CLI_LONG, &cfg.checkpoint_every, "STEPS", "also checkpoint every STEPS steps (0: epoch ends only)", NULL, 0, 1e12, 0},
        {"--resume", CLI_FLAG, &cfg.resume, NULL, "continue from the checkpoint if there is one", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "JSON lines on stdout (one per epoch, then a summary)", NULL, 0, 0, 0},
        {"--plot", CLI_STRING, &plot, "FILE.svg", "write loss and accuracy curves as SVG", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "no progress output", NULL, 0, 0, 0},
        /* efficient training (docs/EFFICIENT.md) */
        {"--sparse-train", CLI_FLOAT, &ef->sparse, "F", "sparse training: weights at sparsity F from the first step", NULL, 0, 0.9999, 0},
        {"--scheme", CLI_STRING, &ef->sparse_scheme, "S", "sparse training's scheme (unstructured)", NULL, 0, 0, 0},
        {"--sparse-every", CLI_LONG, &ef->sparse_every, "STEPS", "steps between prune-and-grow updates (an epoch)", NULL, 0, 1e12, 0},
        {"--sparse-grow", CLI_FLOAT, &ef->sparse_grow, "F", "each update grows the density by F (0.05)", NULL, 0, 0.9999, 0},
        {"--sparse-until", CLI_FLOAT, &ef->sparse_until, "F", "the mask is fixed after this fraction of training (0.75)", NULL, 0, 1, 0},
        {"--sparse-all", CLI_FLAG, &ef->sparse_all, NULL, "make the first conv and the last linear sparse too", NULL, 0, 0, 0},
        {"--freeze-from", CLI_INT, &ef->freeze_from, "EPOCH", "progressive freezing from this epoch (1-based)", NULL, 0, 100000, 0},
        {"--freeze-every", CLI_INT, &ef->freeze_every, "N", "epochs between freezing steps (1)", NULL, 0, 100000, 0},
        {"--freeze-units", CLI_INT, &ef->freeze_units, "N", "units (conv/linear + BN) frozen per step (1)", NULL, 0, 100000, 0},
        {"--freeze-max", CLI_INT, &ef->freeze_max, "N", "at most N units frozen (all but the last)", NULL, 0, 100000, 0},
        {"--freeze-cka", CLI_FLOAT, &ef->freeze_cka, "T", "freeze a unit once the CKA of its activations reaches T", NULL, 0, 1, 0},
        {"--freeze-check", CLI_LONG, &ef->freeze_check, "STEPS", "steps between CKA checks (each epoch end)", NULL, 0, 1e12, 0},
        {"--sieve", CLI_FLOAT, &ef->sieve, "F", "circular data sieving: F of the data waits outside the active set", NULL, 0, 0.9999, 0},
        {"--sieve-every", CLI_INT, &ef->sieve_every, "N", "epochs between sieving swaps (1)", NULL, 0, 100000, 0},
        {"--sieve-swap", CLI_FLOAT, &ef->sieve_swap, "F", "fraction of the active set swapped each time (0.1)", NULL, 0, 1, 0},
        {"--drop-data", CLI_FLOAT, &ef->drop_data, "F", "remove the least-forgotten examples, F of the data by the end", NULL, 0, 0.9999, 0},
        {"--drop-batch", CLI_FLOAT, &ef->drop_batch, "P", "skip each mini-batch with probability P", NULL, 0, 0.9999, 0},
        {"--grad-mask", CLI_FLOAT, &ef->grad_mask, "F", "drop the smallest F of the weight gradients", NULL, 0, 0.9999, 0},
        {"--grad-mask-every", CLI_LONG, &ef->grad_mask_every, "STEPS", "steps between gradient-mask refreshes (10)", NULL, 0, 1e12, 0},
        {"--cache-frozen", CLI_LONG, &ef->cache_frozen_mb, "MB", "keep up to MB MiB of the frozen prefix's activations per example (0: off)", NULL, 0, 1e9, 0},
        /* quantization (docs/QUANT.md) */
        {"--dequantize", CLI_FLAG, &dequantize, NULL, "train a quantized model as a float one (drops its qparams and fakequant nodes)", NULL, 0, 0, 0},
        {"--qat", CLI_INT, &qat_bits, "BITS", "quantization-aware training with BITS-bit weights (8, 4, 2, 1)", NULL, 1, 8, 0},
        {"--act-bits", CLI_INT, &act_bits, "N", "qat: activation bits of a float model being quantized (8; 0: float)", NULL, 0, 8, 0},
        {"--act-ema", CLI_FLOAT, &act_ema, "M", "qat: activation ranges follow the batches by EMA of momentum M (0: fixed)", NULL, 0, 0.999999, 0},
        {"--calib-samples", CLI_LONG, &calib_samples, "N", "qat: training samples that calibrate a float model's activations (1000)", NULL, 1, 1e9, 0},
    };
    cli_cmd cmd = {"train", "--model NAME --out FILE [options]",
                   "Trains a model with SGD or AdamW, evaluates it after every epoch, writes a checkpoint at\n"
                   "each epoch end (and every --checkpoint-every steps), and writes the final model to --out.\n"
                   "Ctrl-C saves a checkpoint; run the same command with --resume to continue: the result is\n"
                   "bit-identical to an uninterrupted run with the same seed and thread count.\n"
                   "The efficient-training options (sparse training, freezing, sieving, dropping, gradient\n"
                   "masks) compose; the epoch report then shows the FLOPs spent beside dense training's.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    if (finetune) {
        cmd.name = "finetune";
        cmd.usage = "MODEL.pare --out FILE [options]";
        cmd.about = "Fine-tunes a model (masks, frozen flags and schemes kept) with the options of pare train;\n"
                    "defaults: 1 epoch, lr 0.01, cosine. The efficient-training options apply as in train.";
        cmd.min_pos = cmd.max_pos = 1;
        /* the model is the argument: no --model, no --from (the first two options) */
        cmd.opts += 2;
        cmd.nopts -= 2;
    }
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (finetune)
        from = pos[0];
    if (!out)
        return cli_error(cname, EXIT_USAGE, "--out FILE is required (where the trained model goes)");
    if (!model == !from)
        return cli_error(cname, EXIT_USAGE, "give either --model NAME (a zoo model) or --from FILE (a model to continue)");
    if (!model && cli_find(&cmd, "--init")->set)
        return cli_error(cname, EXIT_USAGE, "--init initialises a zoo model: it goes with --model NAME");
    if (ef->sparse_scheme && !(ef->sparse > 0))
        return cli_error(cname, EXIT_USAGE, "--scheme belongs to sparse training: give --sparse-train F too");
    if (!tr_img != !tr_lab || !te_img != !te_lab)
        return cli_error(cname, EXIT_USAGE, "--train-images/--train-labels and --test-images/--test-labels come in pairs");
    if (te_img && !tr_img)
        return cli_error(cname, EXIT_USAGE, "--test-images needs --train-images too");
    if (!qat_bits && (cli_find(&cmd, "--act-bits")->set || cli_find(&cmd, "--act-ema")->set ||
                      cli_find(&cmd, "--calib-samples")->set))
        return cli_error(cname, EXIT_USAGE, "--act-bits, --act-ema and --calib-samples belong to --qat BITS");
    cfg.optimizer = (pare_optimizer)opt_i;
    cfg.schedule = (pare_schedule)sched_i;
    if (cfg.optimizer == PARE_OPT_ADAMW && !cli_find(&cmd, "--wd")->set)
        cfg.weight_decay = 0.01f;
    char ckpt_buf[4096];
    if (!ckpt) {
        if (snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", out) >= (int)sizeof ckpt_buf)
            return cli_error(cname, EXIT_USAGE, "--out path is too long");
        ckpt = ckpt_buf;
    }
    cfg.checkpoint_path = ckpt;

    pare_graph *g = NULL;
    pare_dataset *train = NULL, *test = NULL;
    pare_trainer *t = NULL;
    pare_qat *qat = NULL;
    pare_graph *float_src = NULL;
    pare_status s;
    int code = 1;
    if (model) {
        s = pare_zoo_build(model, classes, cfg.seed, &g);
        if (s == PARE_OK && init_i)
            s = pare_graph_init_params_as(g, cfg.seed, (pare_init_scheme)init_i);
    } else {
        s = pare_graph_load(from, &g);
    }
    if (s != PARE_OK)
        goto fail_status;
    s = cli_load_data(data, tr_img, tr_lab, PARE_SPLIT_TRAIN, limit, &train);
    if (s != PARE_OK)
        goto fail_status;
    if (!no_test) {
        s = cli_load_data(data, te_img, te_lab, PARE_SPLIT_TEST, test_limit, &test);
        if (s != PARE_OK) {
            if (te_img || s != PARE_ENOTFOUND)
                goto fail_status;
            test = NULL; /* a training-only folder: no evaluation */
        }
    }
    if (from) {
        cli_apply_model_norm(g, train);
        if (test)
            cli_apply_model_norm(g, test);
    }
    if ((s = prepare_quant(from, &g, dequantize, qat_bits, act_bits, calib_samples, cfg.threads, train,
                           &float_src)) != PARE_OK)
        goto fail_status;
    if (qat_bits && (s = pare_qat_new(g, act_ema, &qat)) != PARE_OK)
        goto fail_status;
    /* Resuming, the latents start from the checkpoint's weights instead. */
    if (qat && float_src && !(cfg.resume && pare_file_exists(ckpt)) &&
        (s = pare_qat_latent_from(qat, float_src)) != PARE_OK)
        goto fail_status;
    if (cfg.resume && !pare_file_exists(ckpt) && !quiet)
        fprintf(stderr, "pare train: no checkpoint at %s; starting from the beginning\n", ckpt);
    run_ui ui = {0};
    ui.bar = pare_progress_new(stderr, quiet ? 0 : -1);
    ui.quiet = quiet;
    ui.efficient = pare_eff_any(ef);
    ui.json = json ? pare_json_new(stdout, 0) : NULL;
    cfg.callback = on_event;
    cfg.user = &ui;
    cfg.cancel = &stop_flag;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    s = pare_trainer_new(g, &cfg, &t);
    if (s == PARE_OK && qat) {
        pare_train_hooks h = pare_qat_hooks(qat);
        pare_trainer_set_hooks(t, &h);
    }
    if (s == PARE_OK)
        s = pare_trainer_run(t, train, test);
    if (s == PARE_OK && qat)
        s = pare_qat_finish(qat);
    pare_progress_done(ui.bar);
    if (s == PARE_ECANCELLED) {
        code = cli_error(cname, EXIT_INTERRUPTED, "%s; continue with the same command and --resume",
                         pare_last_error());
        goto done_ui;
    }
    if (s != PARE_OK) {
        code = cli_fail(cname, s);
        goto done_ui;
    }
    s = pare_graph_save(g, out);
    if (s != PARE_OK) {
        code = cli_fail(cname, s);
        goto done_ui;
    }
    if (plot) {
        char title[256];
        snprintf(title, sizeof title, "%s on %s", pare_graph_name(g), data);
        s = write_plot(t, plot, title);
        if (s != PARE_OK) {
            code = cli_fail(cname, s);
            goto done_ui;
        }
    }
    int ne = pare_trainer_epochs_done(t);
    pare_epoch_stats last;
    memset(&last, 0, sizeof last);
    last.test_acc = -1;
    if (ne > 0)
        pare_trainer_epoch_stats(t, ne, &last);
    if (ui.json) {
        pare_json_begin_object(ui.json);
        pare_json_kv_string(ui.json, "event", "done");
        pare_json_kv_string(ui.json, "model", pare_graph_name(g));
        pare_json_kv_string(ui.json, "out", out);
        pare_json_kv_int(ui.json, "epochs", ne);
        pare_json_kv_int(ui.json, "steps", pare_trainer_global_step(t));
        pare_json_kv_int(ui.json, "threads", cfg.threads ? cfg.threads : 0);
        if (last.test_acc >= 0)
            pare_json_kv_double(ui.json, "test_acc", last.test_acc);
        pare_json_kv_double(ui.json, "train_loss", last.train_loss);
        pare_json_end_object(ui.json);
    }
    if (!quiet)
        fprintf(json ? stderr : stdout, "wrote %s (%s, %d epoch%s%s%.2f%%)\n", out, pare_graph_name(g), ne,
                ne == 1 ? "" : "s", last.test_acc >= 0 ? ", test accuracy " : ", train accuracy ",
                100 * (last.test_acc >= 0 ? last.test_acc : last.train_acc));
    code = 0;
done_ui:
    pare_json_free(ui.json);
    pare_progress_free(ui.bar);
    goto done;
fail_status:
    code = cli_fail(cname, s);
done:
    pare_trainer_free(t);
    pare_qat_free(qat);
    pare_graph_free(float_src);
    pare_dataset_free(train);
    pare_dataset_free(test);
    pare_graph_free(g);
    return code;
}

int cmd_train(int argc, char **argv) { return train_main(argc, argv, 0); }
int cmd_finetune(int argc, char **argv) { return train_main(argc, argv, 1); }
