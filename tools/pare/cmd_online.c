/* pare online: serve and fine-tune a model on a stream of inference requests and
 * labelled samples; pare stream-sim: build a drifting stream from a dataset. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/rng.h"
#include "data/data.h"
#include "report/report.h"

static const char *const policies[] = {"edgeol", "immediate", "never", NULL};

static void print_segments(const pare_online *ol)
{
    static const char *const hdr[] = {"segment", "from record", "records", "labelled", "accuracy", "served acc.",
                                      "rounds"};
    pare_table *t = pare_table_new(7, hdr, "rrrrrrr");
    if (!t)
        return;
    for (int i = 0; i < pare_online_segment_count(ol); i++) {
        pare_online_segment sg;
        if (pare_online_segment_get(ol, i, &sg) != PARE_OK)
            break;
        char acc[32] = "-", sacc[32] = "-";
        if (sg.labelled)
            snprintf(acc, sizeof acc, "%.2f%%", 100.0 * (double)sg.correct / (double)sg.labelled);
        if (sg.served_known)
            snprintf(sacc, sizeof sacc, "%.2f%%", 100.0 * (double)sg.served_correct / (double)sg.served_known);
        pare_table_rowf(t, "%d\t%ld\t%ld\t%ld\t%s\t%s\t%ld", sg.id, sg.first_record + 1, sg.records, sg.labelled, acc,
                        sacc, sg.rounds);
    }
    pare_table_print(t, stdout);
    pare_table_free(t);
}

static void print_json(const char *model, const char *stream, const char *policy, const pare_online *ol,
                       const pare_online_stats *st)
{
    pare_json *j = pare_json_new(stdout, 0);
    pare_json_begin_object(j);
    pare_json_kv_string(j, "model", model);
    pare_json_kv_string(j, "stream", stream);
    pare_json_kv_string(j, "policy", policy);
    pare_json_kv_int(j, "records", st->records);
    pare_json_kv_int(j, "inferences", st->inferences);
    pare_json_kv_int(j, "labelled", st->labelled);
    pare_json_kv_int(j, "segments", st->segments);
    pare_json_kv_int(j, "rounds", st->rounds);
    pare_json_kv_int(j, "forced_rounds", st->forced_rounds);
    pare_json_kv_int(j, "drifts", st->drifts);
    pare_json_kv_int(j, "steps", st->steps);
    pare_json_kv_int(j, "samples_trained", st->samples_trained);
    pare_json_kv_double(j, "finetune_seconds", st->finetune_seconds);
    pare_json_kv_double(j, "finetune_flops", st->flops);
    /* -1 (none) becomes null */
    pare_json_kv_double(j, "accuracy", st->accuracy >= 0 ? st->accuracy : NAN);
    pare_json_kv_double(j, "served_accuracy", st->served_accuracy >= 0 ? st->served_accuracy : NAN);
    pare_json_kv_int(j, "units", st->units);
    pare_json_kv_int(j, "units_frozen", st->units_frozen);
    const long *at;
    int nd = pare_online_drifts(ol, &at);
    pare_json_key(j, "drift_records");
    pare_json_begin_array(j);
    for (int i = 0; i < nd; i++)
        pare_json_int(j, at[i] + 1);
    pare_json_end_array(j);
    pare_json_key(j, "segment_stats");
    pare_json_begin_array(j);
    for (int i = 0; i < pare_online_segment_count(ol); i++) {
        pare_online_segment sg;
        if (pare_online_segment_get(ol, i, &sg) != PARE_OK)
            break;
        pare_json_begin_object(j);
        pare_json_kv_int(j, "id", sg.id);
        pare_json_kv_int(j, "first_record", sg.first_record + 1);
        pare_json_kv_int(j, "records", sg.records);
        pare_json_kv_int(j, "labelled", sg.labelled);
        if (sg.labelled)
            pare_json_kv_double(j, "accuracy", (double)sg.correct / (double)sg.labelled);
        if (sg.served_known)
            pare_json_kv_double(j, "served_accuracy", (double)sg.served_correct / (double)sg.served_known);
        pare_json_kv_int(j, "rounds", sg.rounds);
        pare_json_end_object(j);
    }
    pare_json_end_array(j);
    pare_json_end_object(j);
    pare_json_free(j);
}

static void print_text(const char *model, const char *stream, const char *policy, const pare_online *ol,
                       const pare_online_stats *st)
{
    printf("%s on %s, policy %s\n", model, stream, policy);
    printf("  records          %ld: %ld inference requests, %ld labelled samples, %ld segment markers\n", st->records,
           st->inferences, st->labelled, st->segments);
    printf("  rounds           %ld (%ld forced by a drift), %ld SGD steps on %ld samples\n", st->rounds,
           st->forced_rounds, st->steps, st->samples_trained);
    printf("  fine-tuning      %.3f s, %.3g GFLOP\n", st->finetune_seconds, st->flops / 1e9);
    if (st->accuracy >= 0)
        printf("  accuracy         %.2f%% prequential (labelled samples, predicted before training on them)\n",
               100 * st->accuracy);
    else
        printf("  accuracy         - (no labelled samples)\n");
    if (st->served_accuracy >= 0)
        printf("  served accuracy  %.2f%% (inference requests whose true class the stream holds)\n",
               100 * st->served_accuracy);
    const long *at;
    int nd = pare_online_drifts(ol, &at);
    printf("  drift detections %d", nd);
    for (int i = 0; i < nd; i++)
        printf("%s%ld", i ? ", " : " (at records ", at[i] + 1);
    printf("%s\n", nd ? ")" : "");
    printf("  frozen units     %d of %d at the end\n", st->units_frozen, st->units);
    if (pare_online_segment_count(ol) > 1)
        print_segments(ol);
}

int cmd_online(int argc, char **argv)
{
    const char *stream = NULL, *out = NULL, *pred_path = NULL;
    int policy = 0, json = 0, dequantize = 0;
    float freeze = -1;
    pare_online_options o;
    pare_online_options_init(&o);
    cli_opt opts[] = {
        {"--stream", CLI_STRING, &stream, "FILE", "the stream to serve and learn from (- for standard input; required)", NULL, 0, 0, 0},
        {"--policy", CLI_CHOICE, &policy, "NAME", "when to fine-tune (edgeol)", policies, 0, 0, 0},
        {"--out", CLI_STRING, &out, "FILE", "write the fine-tuned model here at the end", NULL, 0, 0, 0},
        {"--predictions", CLI_STRING, &pred_path, "FILE", "one line per served record: number, kind, prediction, label (- for stdout)", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "print the summary as one JSON object", NULL, 0, 0, 0},
        {"--lr", CLI_FLOAT, &o.lr, "F", "SGD learning rate of the rounds (0.01)", NULL, 1e-12, 1e6, 0},
        {"--momentum", CLI_FLOAT, &o.momentum, "F", "SGD momentum (0.9)", NULL, 0, 0.999999, 0},
        {"--wd", CLI_FLOAT, &o.weight_decay, "F", "L2 weight decay (5e-4)", NULL, 0, 10, 0},
        {"--batch", CLI_INT, &o.batch, "N", "mini-batch; immediate: a round per N new labels (32)", NULL, 1, 4096, 0},
        {"--epochs", CLI_INT, &o.epochs, "N", "passes over the replay buffer per round (4)", NULL, 1, 1000, 0},
        {"--buffer", CLI_INT, &o.buffer, "N", "replay buffer: the N latest labelled samples (512)", NULL, 2, 1 << 20, 0},
        {"--min-new", CLI_INT, &o.min_new, "N", "edgeol: new labels per round at no inference load (64)", NULL, 1, 1 << 24, 0},
        {"--load-scale", CLI_FLOAT, &o.load_scale, "F", "edgeol: the threshold grows by F x the inference share (1)", NULL, 0, 1000, 0},
        {"--window", CLI_INT, &o.window, "N", "drift: labels whose accuracy is watched (100)", NULL, 1, 1 << 20, 0},
        {"--drift-drop", CLI_FLOAT, &o.drift_drop, "F", "drift: accuracy drop below the reference (0.15)", NULL, 1e-6, 1, 0},
        {"--freeze-cka", CLI_FLOAT, &freeze, "T", "freeze units at CKA >= T between rounds, 0 off (edgeol 0.999, else 0)", NULL, 0, 1, 0},
        {"--probe", CLI_INT, &o.probe, "N", "probe batch for CKA (32)", NULL, 2, 4096, 0},
        {"--seed", CLI_U64, &o.seed, "N", "seed of the sample order in rounds and of dropout (0)", NULL, 0, 0, 0},
        {"--threads", CLI_INT, &o.threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--dequantize", CLI_FLAG, &dequantize, NULL, "fine-tune a quantized model as a float one (drops its qparams and fakequant nodes)", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"online", "MODEL.pare --stream FILE|- [options]",
                   "Serves a prediction for every record of a stream (docs/ONLINE.md) and fine-tunes the model on\n"
                   "its labelled samples: edgeol fine-tunes in rounds triggered by new labels, the inference load\n"
                   "and detected drifts, with CKA layer freezing; immediate fine-tunes on every batch of labels;\n"
                   "never only serves. Accuracy is prequential: each label is predicted before it is learned.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!stream)
        return cli_error("online", EXIT_USAGE, "--stream FILE (or - for standard input) is required");
    o.policy = (pare_online_policy)policy;
    o.freeze_cka = freeze >= 0 ? freeze : (o.policy == PARE_ONLINE_EDGEOL ? 0.999f : 0.0f);

    pare_graph *g = NULL;
    pare_stream *st = NULL;
    pare_online *ol = NULL;
    FILE *pf = NULL;
    int code = 0;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s == PARE_OK && o.policy != PARE_ONLINE_NEVER)
        s = cli_float_model(pos[0], &g, dequantize, "fine-tuning", ", or --policy never to serve it only");
    if (s != PARE_OK) {
        pare_graph_free(g);
        return cli_fail("online", s);
    }
    s = pare_stream_open(stream, &st);
    if (s != PARE_OK) {
        code = cli_fail("online", s);
        goto done;
    }
    pare_stream_info info;
    pare_stream_get_info(st, &info);
    int c, h, w, k, kh, kw;
    pare_graph_input_shape(g, &c, &h, &w);
    pare_graph_output_shape(g, &k, &kh, &kw);
    if (info.channels != c || info.height != h || info.width != w) {
        code = cli_error("online", 1, "the stream's samples are %dx%dx%d but %s takes %dx%dx%d", info.channels,
                         info.height, info.width, pos[0], c, h, w);
        goto done;
    }
    if (info.classes > k) {
        code = cli_error("online", 1, "the stream has %d classes but %s predicts %d", info.classes, pos[0], k);
        goto done;
    }
    s = pare_online_new(g, &o, &ol);
    if (s != PARE_OK) {
        code = cli_fail("online", s);
        goto done;
    }
    if (pred_path) {
        pf = strcmp(pred_path, "-") ? fopen(pred_path, "w") : stdout;
        if (!pf) {
            code = cli_error("online", 1, "cannot write the predictions to %s: %s", pred_path, strerror(errno));
            goto done;
        }
    }
    for (;;) {
        pare_record rec;
        int got, pred;
        s = pare_stream_next(st, &rec, &got);
        if (s != PARE_OK || !got)
            break;
        s = pare_online_feed(ol, &rec, &pred);
        if (s != PARE_OK)
            break;
        if (pf && rec.kind != PARE_REC_SEGMENT) {
            if (rec.label >= 0)
                fprintf(pf, "%ld %c %d %d\n", pare_stream_count(st), rec.kind == PARE_REC_INFER ? 'I' : 'L', pred,
                        rec.label);
            else
                fprintf(pf, "%ld I %d -\n", pare_stream_count(st), pred);
        }
    }
    /* what was served stays written, whatever comes next */
    if (pf && pf != stdout) {
        if (fclose(pf) != 0 && s == PARE_OK) {
            pf = NULL;
            code = cli_error("online", 1, "writing the predictions to %s failed", pred_path);
            goto done;
        }
        pf = NULL;
    } else if (pf) {
        fflush(pf);
        pf = NULL;
    }
    if (s != PARE_OK) {
        code = cli_fail("online", s);
        goto done;
    }
    pare_online_stats sts;
    pare_online_get_stats(ol, &sts);
    if (json)
        print_json(pos[0], stream, policies[policy], ol, &sts);
    else if (!pred_path || strcmp(pred_path, "-"))
        print_text(pos[0], stream, policies[policy], ol, &sts);
    pare_online_free(ol);
    ol = NULL;
    if (out) {
        s = pare_graph_save(g, out);
        if (s != PARE_OK)
            code = cli_fail("online", s);
    }
done:
    if (pf && pf != stdout)
        fclose(pf);
    pare_online_free(ol);
    pare_stream_close(st);
    pare_graph_free(g);
    return code;
}

/* ---- the simulator ---- */

static const char *const drifts[] = {"class-mix", "rotate", "contrast", "none", NULL};

/* Parses "N,M,..." into ascending positions; one sentence if not. */
static int parse_at(const char *s, long *at, int cap, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 1 || (*end && *end != ','))
            return cli_error("stream-sim", EXIT_USAGE, "--at takes record numbers >= 1 separated by commas, not '%s'", s);
        if (*n == cap)
            return cli_error("stream-sim", EXIT_USAGE, "--at takes at most %d drift points", cap);
        if (*n > 0 && v <= at[*n - 1])
            return cli_error("stream-sim", EXIT_USAGE, "--at points must increase (%ld after %ld)", v, at[*n - 1]);
        at[(*n)++] = v;
        s = *end ? end + 1 : end;
        if (*end == ',' && !*s)
            return cli_error("stream-sim", EXIT_USAGE, "--at ends with a comma");
    }
    return 0;
}

/* Rotation about the image centre with bilinear interpolation; outside is 0
 * (the background of Fashion-MNIST and MNIST). */
static void rotate(const uint8_t *in, uint8_t *out, int c, int h, int w, double deg)
{
    double a = deg * 3.14159265358979323846 / 180.0, ca = cos(a), sa = sin(a);
    double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *p = in + (size_t)ch * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double sx = ca * (x - cx) + sa * (y - cy) + cx, sy = -sa * (x - cx) + ca * (y - cy) + cy;
                int x0 = (int)floor(sx), y0 = (int)floor(sy);
                double fx = sx - x0, fy = sy - y0, v = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int xx = x0 + dx, yy = y0 + dy;
                        if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                            continue;
                        v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * p[(size_t)yy * w + xx];
                    }
                long q = lround(v);
                out[(size_t)ch * h * w + (size_t)y * w + x] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
    }
}

static void contrast(const uint8_t *in, uint8_t *out, size_t n, double f)
{
    for (size_t i = 0; i < n; i++) {
        long q = lround(127.5 + f * ((double)in[i] - 127.5));
        out[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    }
}

int cmd_stream_sim(int argc, char **argv)
{
    const char *out = NULL, *data = "fashion-mnist", *at_s = NULL;
    int drift = 0, train_split = 0, no_truth = 0, no_markers = 0;
    long length = 3000;
    float label_rate = 0.3f, angle = 90, cfactor = 0.4f;
    uint64_t seed = 0;
    cli_opt opts[] = {
        {"--out", CLI_STRING, &out, "FILE", "where to write the stream (- for standard output; required)", NULL, 0, 0, 0},
        {"--data", CLI_STRING, &data, "SPEC", "fashion-mnist (default) or a folder of IDX or CIFAR-10 files", NULL, 0, 0, 0},
        {"--train-split", CLI_FLAG, &train_split, NULL, "draw from the training split (default: the test split)", NULL, 0, 0, 0},
        {"--drift", CLI_CHOICE, &drift, "KIND", "what changes at each drift point (class-mix)", drifts, 0, 0, 0},
        {"--at", CLI_STRING, &at_s, "N,M,...", "drift points: sample records (from 1) where a segment begins (length/3, 2 length/3)", NULL, 0, 0, 0},
        {"--length", CLI_LONG, &length, "N", "sample records in the stream (3000)", NULL, 1, 200000, 0},
        {"--label-rate", CLI_FLOAT, &label_rate, "F", "share of records that are labelled samples (0.3)", NULL, 0, 1, 0},
        {"--angle", CLI_FLOAT, &angle, "DEG", "rotate: degrees added at each drift point (90)", NULL, -360, 360, 0},
        {"--contrast", CLI_FLOAT, &cfactor, "F", "contrast: factor applied at each drift point (0.4)", NULL, -4, 4, 0},
        {"--no-truth", CLI_FLAG, &no_truth, NULL, "inference requests without their true class", NULL, 0, 0, 0},
        {"--no-markers", CLI_FLAG, &no_markers, NULL, "no segment markers at the drift points", NULL, 0, 0, 0},
        {"--seed", CLI_U64, &seed, "N", "seed of the sample order and the record kinds (0)", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"stream-sim", "--out FILE [options]",
                   "Builds a drifting stream of inference requests and labelled samples from a dataset\n"
                   "(docs/ONLINE.md): at each drift point the class mix shifts (class-mix: the first half of\n"
                   "the classes, then the second half, and back), or the images turn by --angle more (rotate),\n"
                   "or their contrast around mid-grey is multiplied by --contrast (contrast).",
                   opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!out)
        return cli_error("stream-sim", EXIT_USAGE, "--out FILE (or - for standard output) is required");
    enum { MAX_AT = 64 };
    long at[MAX_AT];
    int nat = 0;
    if (at_s) {
        r = parse_at(at_s, at, MAX_AT, &nat);
        if (r)
            return r;
    } else if (length >= 3) {
        at[0] = length / 3 + 1;
        at[1] = 2 * length / 3 + 1;
        nat = 2;
    }
    if (nat > 0 && at[nat - 1] > length)
        return cli_error("stream-sim", EXIT_USAGE, "--at point %ld is beyond the stream's --length %ld", at[nat - 1],
                         length);
    if (drift == 3)
        nat = 0;
    pare_dataset *ds = NULL;
    pare_status s = cli_load_data(data, NULL, NULL, train_split ? PARE_SPLIT_TRAIN : PARE_SPLIT_TEST, 0, &ds);
    if (s != PARE_OK)
        return cli_fail("stream-sim", s);
    int code = 0;
    long *perm = NULL;
    uint8_t *img = NULL;
    pare_stream_writer *wr = NULL;
    int K = ds->classes, half = K / 2 > 0 ? K / 2 : 1;
    size_t npix = (size_t)ds->c * ds->h * ds->w;
    if (drift == 0 && K < 2) {
        code = cli_error("stream-sim", 1, "class-mix drift needs a dataset of at least 2 classes");
        goto done;
    }
    pare_stream_info info = {ds->c, ds->h, ds->w, K};
    s = pare_stream_writer_new(out, &info, &wr);
    perm = malloc(sizeof(long) * (size_t)ds->n);
    img = malloc(npix);
    if (s == PARE_OK && (!perm || !img))
        s = PARE_ENOMEM;
    if (s != PARE_OK) {
        code = s == PARE_ENOMEM ? cli_error("stream-sim", 1, "out of memory") : cli_fail("stream-sim", s);
        goto done;
    }
    pare_data_permutation(ds->n, seed, 0x5e9, perm);
    pare_rng rk;
    pare_rng_seed(&rk, seed, 0x51b, 1, 0);
    long cursor = 0;
    int segment = 0;
    for (long i = 1; i <= length; i++) {
        if (segment < nat && i == at[segment]) {
            segment++;
            if (!no_markers) {
                pare_record m = {PARE_REC_SEGMENT, segment, NULL};
                if ((s = pare_stream_write(wr, &m)) != PARE_OK)
                    break;
            }
        }
        /* the next sample of the permutation that the segment's class mix allows */
        long idx = -1;
        for (long tries = 0; tries < ds->n; tries++) {
            long j = perm[cursor];
            cursor = (cursor + 1) % ds->n;
            int lab = ds->labels[j];
            if (drift == 0) {
                int first = (segment * half) % K, rel = (lab - first + K) % K;
                if (rel >= half)
                    continue;
            }
            idx = j;
            break;
        }
        if (idx < 0) {
            code = cli_error("stream-sim", 1, "the dataset has no sample of the classes segment %d needs", segment);
            goto done;
        }
        const uint8_t *src = ds->images + npix * (size_t)idx;
        if (drift == 1 && segment > 0)
            rotate(src, img, ds->c, ds->h, ds->w, angle * segment);
        else if (drift == 2 && segment > 0)
            contrast(src, img, npix, pow(cfactor, segment));
        else
            memcpy(img, src, npix);
        int labelled = pare_rng_uniform_d(&rk) < label_rate;
        pare_record rec = {labelled ? PARE_REC_LABELLED : PARE_REC_INFER,
                           labelled || !no_truth ? ds->labels[idx] : -1, img};
        if ((s = pare_stream_write(wr, &rec)) != PARE_OK)
            break;
    }
    if (s == PARE_OK) {
        s = pare_stream_writer_finish(wr);
        wr = NULL;
    }
    if (s != PARE_OK)
        code = cli_fail("stream-sim", s);
    else if (strcmp(out, "-"))
        printf("wrote %s: %ld sample records, %s drift at %d point(s)\n", out, length,
                drifts[drift], nat);
done:
    pare_stream_writer_free(wr);
    free(perm);
    free(img);
    pare_dataset_free(ds);
    return code;
}
