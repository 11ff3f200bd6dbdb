/* Online fine-tuning: the stream format (round trip, refusals), the policies
 * (never trains, immediate trains on every batch, the EdgeOL trigger fires on a
 * drift and not on a steady stream), served predictions equal the model's
 * forward, determinism, and the two commands end to end. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/rng.h"
#include "graph/graph.h"
#include "synth.h"
#include "test.h"

#define S 28
#define NPIX (S * S)

/* A bar per class (horizontal for 0-4, vertical for 5-9) on noise, as synth.c draws. */
static void synth_image(pare_rng *r, int k, uint8_t *img)
{
    for (int i = 0; i < NPIX; i++)
        img[i] = (uint8_t)pare_rng_below(r, 60);
    int pos = 3 + 5 * (k % 5) + (int)pare_rng_below(r, 2);
    for (int t = 4; t < 24; t++) {
        int y = k < 5 ? pos : t, x = k < 5 ? t : pos;
        img[y * S + x] = (uint8_t)(200 + pare_rng_below(r, 56));
    }
}

/* LeNet trained briefly on the bars (about 99% on them). */
static pare_graph *pretrained(void)
{
    pare_graph *g = NULL;
    CHECK_OK(pare_zoo_build("lenet", 10, 1, &g));
    if (!g)
        return NULL;
    pare_train_config c;
    pare_train_config_init(&c);
    c.batch = 32;
    c.threads = 1;
    c.schedule = PARE_SCHED_CONSTANT;
    pare_trainer *t = NULL;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    float *x = malloc(sizeof(float) * NPIX * 32);
    int32_t y[32];
    uint8_t img[NPIX];
    pare_rng r;
    pare_rng_seed(&r, 11, 0, 0, 0);
    for (int step = 0; t && x && step < 120; step++) {
        for (int i = 0; i < 32; i++) {
            y[i] = (int32_t)pare_rng_below(&r, 10);
            synth_image(&r, y[i], img);
            for (int p = 0; p < NPIX; p++)
                x[i * NPIX + p] = (float)img[p] / 255.0f;
        }
        CHECK_OK(pare_trainer_step(t, x, y, 32, NULL));
    }
    free(x);
    pare_trainer_free(t);
    return g;
}

/* Feeds n records: every third one labelled; labels become (k + shift) % 10. */
static void feed(pare_online *ol, pare_rng *r, int n, int shift, long *labelled)
{
    uint8_t img[NPIX];
    for (int i = 0; i < n; i++) {
        int k = (int)pare_rng_below(r, 10);
        synth_image(r, k, img);
        int lab = pare_rng_below(r, 3) == 0;
        pare_record rec = {lab ? PARE_REC_LABELLED : PARE_REC_INFER, lab ? (k + shift) % 10 : k, img};
        int pred;
        CHECK_OK(pare_online_feed(ol, &rec, &pred));
        CHECK(pred >= 0 && pred < 10);
        if (labelled)
            *labelled += lab;
    }
}

static void opts(pare_online_options *o, pare_online_policy p)
{
    pare_online_options_init(o);
    o->policy = p;
    o->threads = 1;
    o->batch = 16;
    o->epochs = 1;
    o->buffer = 128;
    o->min_new = 64;
    o->window = 50;
    o->probe = 16;
    o->seed = 5;
}

PARE_TEST(online_stream_round_trip)
{
    const char *path = pare_test_path("a.stream");
    pare_stream_info info = {1, 3, 2, 7};
    pare_stream_writer *w;
    CHECK_OK(pare_stream_writer_new(path, &info, &w));
    uint8_t px[4][6];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            px[i][j] = (uint8_t)(40 * i + j * 7);
    pare_record in[6] = {{PARE_REC_INFER, 3, px[0]},     {PARE_REC_LABELLED, 6, px[1]},
                         {PARE_REC_SEGMENT, 1, NULL},     {PARE_REC_INFER, -1, px[2]},
                         {PARE_REC_LABELLED, 0, px[3]},  {PARE_REC_SEGMENT, 12345, NULL}};
    for (int i = 0; i < 6; i++)
        CHECK_OK(pare_stream_write(w, &in[i]));
    pare_record bad = {PARE_REC_LABELLED, 7, px[0]};
    CHECK_STATUS(pare_stream_write(w, &bad), PARE_EINVAL);
    bad.label = -1;
    CHECK_STATUS(pare_stream_write(w, &bad), PARE_EINVAL);
    CHECK_OK(pare_stream_writer_finish(w));
    pare_stream *s;
    CHECK_OK(pare_stream_open(path, &s));
    if (!s)
        return;
    pare_stream_info got_info;
    pare_stream_get_info(s, &got_info);
    CHECK(got_info.channels == 1 && got_info.height == 3 && got_info.width == 2 && got_info.classes == 7);
    for (int i = 0; i < 6; i++) {
        pare_record r;
        int got;
        CHECK_OK(pare_stream_next(s, &r, &got));
        CHECK(got == 1);
        CHECKF(r.kind == in[i].kind && r.label == in[i].label, "record %d: kind %d label %d", i, r.kind, r.label);
        if (in[i].pixels)
            CHECK(r.pixels && !memcmp(r.pixels, in[i].pixels, 6));
    }
    pare_record r;
    int got = 1;
    CHECK_OK(pare_stream_next(s, &r, &got));
    CHECK(got == 0);
    CHECK(pare_stream_count(s) == 6);
    pare_stream_close(s);
    /* 32-byte header, 3 + 6 per sample, 5 per marker */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 0, SEEK_END);
        CHECK(ftell(f) == 32 + 4 * 9 + 2 * 5);
        fclose(f);
    }
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* Reads path to the end; returns the status of the first failure and the count read. */
static pare_status read_all(const char *path, long *n)
{
    pare_stream *s;
    *n = 0;
    pare_status st = pare_stream_open(path, &s);
    if (st != PARE_OK)
        return st;
    for (;;) {
        pare_record r;
        int got;
        st = pare_stream_next(s, &r, &got);
        if (st != PARE_OK || !got)
            break;
        (*n)++;
    }
    pare_stream_close(s);
    return st;
}

PARE_TEST(online_stream_bad_input)
{
    const char *good = pare_test_path("g.stream"), *bad = pare_test_path("b.stream");
    pare_stream_info info = {1, 2, 2, 3};
    pare_stream_writer *w;
    CHECK_OK(pare_stream_writer_new(good, &info, &w));
    uint8_t px[4] = {1, 2, 3, 4};
    pare_record r1 = {PARE_REC_LABELLED, 2, px}, r2 = {PARE_REC_INFER, -1, px};
    CHECK_OK(pare_stream_write(w, &r1));
    CHECK_OK(pare_stream_write(w, &r2));
    CHECK_OK(pare_stream_writer_finish(w));
    uint8_t b[32 + 2 * 7];
    FILE *f = fopen(good, "rb");
    CHECK(f && fread(b, 1, sizeof b, f) == sizeof b);
    if (f)
        fclose(f);
    long n;
    CHECK_OK(read_all(good, &n));
    CHECK(n == 2);
    /* every truncation: the header ones fail at open, the record ones after the whole records */
    for (size_t len = 0; len < sizeof b; len++) {
        if (len == 32 || len == 32 + 7)
            continue;   /* record boundaries: a shorter but valid stream */
        write_bytes(bad, b, len);
        pare_status st = read_all(bad, &n);
        CHECKF(st == PARE_EFORMAT, "truncated at %zu: %s", len, pare_status_name(st));
        CHECK(n == (len > 32 + 7 ? 1 : 0));
        if (len > 32)
            CHECKF(strstr(pare_last_error(), "truncated") && strstr(pare_last_error(), "record"), "%s",
                   pare_last_error());
    }
    uint8_t c[sizeof b];
    memcpy(c, b, sizeof b);
    c[0] = 'X';
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    CHECK(strstr(pare_last_error(), "not a pare stream") != NULL);
    memcpy(c, b, sizeof b);
    c[8] = 9;   /* version */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    memcpy(c, b, sizeof b);
    c[12] = 0;  /* zero channels */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    memcpy(c, b, sizeof b);
    c[27] = 0xff;   /* classes 2^31 + 3 */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    memcpy(c, b, sizeof b);
    c[28] = 1;  /* flags */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    memcpy(c, b, sizeof b);
    c[33] = 3;  /* label 3 of 3 classes */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    CHECKF(strstr(pare_last_error(), "label 3") && strstr(pare_last_error(), "record 1"), "%s", pare_last_error());
    memcpy(c, b, sizeof b);
    c[32 + 7] = 'Q';    /* kind of the second record */
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    CHECK(n == 1);
    CHECKF(strstr(pare_last_error(), "record 2") != NULL, "%s", pare_last_error());
    memcpy(c, b, sizeof b);
    c[32 + 8] = 5;  /* an inference request's true class 5 of 3 (not 65535) */
    c[32 + 9] = 0;
    write_bytes(bad, c, sizeof c);
    CHECK_STATUS(read_all(bad, &n), PARE_EFORMAT);
    CHECK_STATUS(read_all(pare_test_path("missing.stream"), &n), PARE_EIO);
    pare_stream *s = NULL;
    CHECK_STATUS(pare_stream_open("", &s), PARE_EINVAL);
    pare_stream_info huge = {4096, 4096, 4096, 10};
    CHECK_STATUS(pare_stream_writer_new(bad, &huge, &w), PARE_EINVAL);
}

PARE_TEST(online_bad_options)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 10, 1, &g));
    pare_online_options o;
    pare_online *ol = NULL;
    struct {
        int field;
        const char *want;
    } cases[] = {{0, "learning rate"}, {1, "batch"}, {2, "replay buffer"}, {3, "drift threshold"}, {4, "CKA"},
                 {5, "policy"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        opts(&o, PARE_ONLINE_EDGEOL);
        switch (cases[i].field) {
        case 0: o.lr = -1; break;
        case 1: o.batch = 0; break;
        case 2: o.buffer = 1; break;
        case 3: o.drift_drop = 0; break;
        case 4: o.freeze_cka = 2; break;
        default: o.policy = (pare_online_policy)7; break;
        }
        CHECK_STATUS(pare_online_new(g, &o, &ol), PARE_EINVAL);
        CHECKF(strstr(pare_last_error(), cases[i].want) != NULL, "%s", pare_last_error());
    }
    opts(&o, PARE_ONLINE_IMMEDIATE);
    CHECK_OK(pare_online_new(g, &o, &ol));
    uint8_t img[NPIX] = {0};
    pare_record r = {PARE_REC_LABELLED, 10, img};
    int pred;
    CHECK_STATUS(pare_online_feed(ol, &r, &pred), PARE_EINVAL);
    r.pixels = NULL;
    r.label = 1;
    CHECK_STATUS(pare_online_feed(ol, &r, &pred), PARE_EINVAL);
    pare_online_free(ol);
    pare_graph_free(g);
}

static void snapshot(const pare_graph *g, float **out, size_t *n)
{
    *n = 0;
    for (int p = 0; p < g->n_params; p++)
        *n += g->params[p].t->n;
    *out = malloc(sizeof(float) * *n);
    size_t at = 0;
    for (int p = 0; *out && p < g->n_params; p++) {
        memcpy(*out + at, g->params[p].t->data, sizeof(float) * g->params[p].t->n);
        at += g->params[p].t->n;
    }
}

PARE_TEST(online_never_keeps_weights)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 10, 2, &g));
    float *before, *after;
    size_t n, n2;
    snapshot(g, &before, &n);
    pare_online_options o;
    opts(&o, PARE_ONLINE_NEVER);
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 1, 0, 0, 0);
    long lab = 0;
    feed(ol, &r, 400, 0, &lab);
    pare_online_stats st;
    pare_online_get_stats(ol, &st);
    CHECK(st.rounds == 0 && st.steps == 0 && st.samples_trained == 0 && st.finetune_seconds == 0);
    CHECK(st.labelled == lab && st.records == 400 && st.inferences == 400 - lab);
    pare_online_free(ol);
    snapshot(g, &after, &n2);
    CHECK(n == n2 && before && after && !memcmp(before, after, sizeof(float) * n));
    free(before);
    free(after);
    pare_graph_free(g);
}

PARE_TEST(online_immediate_every_batch)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 10, 2, &g));
    pare_online_options o;
    opts(&o, PARE_ONLINE_IMMEDIATE);
    o.batch = 8;
    o.buffer = 24;
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 2, 0, 0, 0);
    long lab = 0;
    for (int i = 0; i < 30; i++) {
        feed(ol, &r, 10, 0, &lab);
        pare_online_stats st;
        pare_online_get_stats(ol, &st);
        CHECKF(st.rounds == lab / 8, "%ld labels, %ld rounds", lab, st.rounds);
        CHECK(st.forced_rounds == 0);
    }
    pare_online_stats st;
    pare_online_get_stats(ol, &st);
    CHECK(st.steps > 0 && st.samples_trained > 0 && st.flops > 0);
    pare_online_free(ol);
    pare_graph_free(g);
}

PARE_TEST(online_predictions_match_forward)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 10, 3, &g));
    float mean = 0.3f, sd = 0.4f;
    CHECK_OK(pare_graph_norm_set(g, 1, &mean, &sd));
    pare_online_options o;
    opts(&o, PARE_ONLINE_IMMEDIATE);
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 3, 0, 0, 0);
    uint8_t img[NPIX];
    float x[NPIX], logits[10];
    int mismatches = 0;
    for (int i = 0; i < 300; i++) {
        int k = (int)pare_rng_below(&r, 10);
        synth_image(&r, k, img);
        /* what the dataset readers do with the model's normalisation */
        for (int p = 0; p < NPIX; p++)
            x[p] = (float)(((double)img[p] / 255.0 - mean) / sd);
        CHECK_OK(pare_graph_forward(g, x, 1, logits, 1));
        int want = 0;
        for (int j = 1; j < 10; j++)
            if (logits[j] > logits[want])
                want = j;
        pare_record rec = {i % 2 ? PARE_REC_LABELLED : PARE_REC_INFER, k, img};
        int pred;
        CHECK_OK(pare_online_feed(ol, &rec, &pred));
        mismatches += pred != want;
    }
    CHECK(mismatches == 0);
    pare_online_stats st;
    pare_online_get_stats(ol, &st);
    CHECK(st.rounds > 5);   /* the weights changed between predictions */
    pare_online_free(ol);
    pare_graph_free(g);
}

PARE_TEST(online_drift_trigger)
{
    pare_graph *g = pretrained();
    if (!g)
        return;
    pare_graph *g2;
    CHECK_OK(pare_graph_clone(g, &g2));
    pare_online_options o;
    opts(&o, PARE_ONLINE_EDGEOL);
    /* a steady stream: rounds by the amount of data, never a drift */
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 4, 0, 0, 0);
    long lab = 0;
    feed(ol, &r, 1500, 0, &lab);
    pare_online_stats st;
    pare_online_get_stats(ol, &st);
    CHECKF(st.drifts == 0 && st.forced_rounds == 0, "%ld drifts on a steady stream", st.drifts);
    CHECKF(st.accuracy > 0.9, "accuracy %g", st.accuracy);
    /* fewer, larger rounds than one per batch: the threshold is scaled up by the load */
    CHECKF(st.rounds >= 2 && st.rounds <= lab / o.min_new, "%ld rounds for %ld labels", st.rounds, lab);
    pare_online_free(ol);
    /* the same start, then labels permuted: a forced round within a window of labels */
    CHECK_OK(pare_online_new(g2, &o, &ol));
    pare_rng_seed(&r, 4, 0, 0, 0);
    lab = 0;
    feed(ol, &r, 600, 0, &lab);
    pare_online_get_stats(ol, &st);
    CHECK(st.drifts == 0);
    long before = lab;
    int found = 0;
    for (int i = 0; i < 300 && !found; i++) {
        feed(ol, &r, 1, 3, &lab);
        pare_online_get_stats(ol, &st);
        found = st.forced_rounds > 0;
    }
    CHECKF(found, "no forced round after %ld permuted labels", lab - before);
    CHECKF(lab - before <= o.window, "the forced round came %ld labels after the drift", lab - before);
    CHECK(st.drifts == 1);
    const long *at;
    CHECK(pare_online_drifts(ol, &at) == 1 && at[0] >= 600);
    pare_online_free(ol);
    pare_graph_free(g);
    pare_graph_free(g2);
}

/* A run over a fixed stream; returns the stats and the weights. */
static void run_once(const pare_graph *g0, pare_online_stats *st, float **w, size_t *n)
{
    pare_graph *g;
    CHECK_OK(pare_graph_clone(g0, &g));
    pare_online_options o;
    opts(&o, PARE_ONLINE_EDGEOL);
    o.freeze_cka = 0.9f;
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 8, 0, 0, 0);
    feed(ol, &r, 500, 0, NULL);
    feed(ol, &r, 300, 4, NULL);
    pare_online_get_stats(ol, st);
    pare_online_free(ol);
    snapshot(g, w, n);
    pare_graph_free(g);
}

PARE_TEST(online_deterministic)
{
    pare_graph *g = pretrained();
    if (!g)
        return;
    pare_online_stats a, b;
    float *wa, *wb;
    size_t na, nb;
    run_once(g, &a, &wa, &na);
    run_once(g, &b, &wb, &nb);
    CHECK(a.rounds == b.rounds && a.forced_rounds == b.forced_rounds && a.drifts == b.drifts);
    CHECK(a.steps == b.steps && a.correct == b.correct && a.served_correct == b.served_correct);
    CHECK(a.units_frozen == b.units_frozen && a.flops == b.flops);
    CHECK(a.rounds > 2 && a.drifts >= 1);
    CHECK(na == nb && wa && wb && !memcmp(wa, wb, sizeof(float) * na));
    free(wa);
    free(wb);
    pare_graph_free(g);
}

PARE_TEST(online_freezing_front_to_back)
{
    pare_graph *g = pretrained();
    if (!g)
        return;
    pare_online_options o;
    opts(&o, PARE_ONLINE_EDGEOL);
    o.freeze_cka = 0.5f;    /* low: units freeze as soon as a second round compares */
    o.lr = 0.001f;
    pare_online *ol;
    CHECK_OK(pare_online_new(g, &o, &ol));
    pare_rng r;
    pare_rng_seed(&r, 9, 0, 0, 0);
    feed(ol, &r, 900, 0, NULL);
    pare_online_stats st;
    pare_online_get_stats(ol, &st);
    CHECKF(st.units_frozen >= 1 && st.units_frozen < st.units, "%d of %d frozen", st.units_frozen, st.units);
    /* the frozen ones are the first units, the last stays free */
    int frozen_seen = 0, order_ok = 1, last = -1;
    for (int v = 0; v < g->n_nodes; v++) {
        if (g->nodes[v].op != PARE_OP_CONV2D && g->nodes[v].op != PARE_OP_LINEAR)
            continue;
        int f = g->params[g->nodes[v].param[0]].frozen;
        if (f && frozen_seen < 0)
            order_ok = 0;
        frozen_seen = f ? frozen_seen + 1 : -1;
        last = f;
    }
    CHECK(order_ok && last == 0);
    /* the weights of frozen units do not move in later rounds */
    int fc = -1;
    for (int v = 0; v < g->n_nodes && fc < 0; v++)
        if (g->nodes[v].op == PARE_OP_CONV2D)
            fc = g->nodes[v].param[0];
    pare_tensor *t = g->params[fc].t;
    float *copy = malloc(sizeof(float) * t->n);
    memcpy(copy, t->data, sizeof(float) * t->n);
    feed(ol, &r, 600, 0, NULL);
    pare_online_stats st2;
    pare_online_get_stats(ol, &st2);
    CHECK(st2.rounds > st.rounds);
    if (st2.drifts == 0)
        CHECK(!memcmp(copy, t->data, sizeof(float) * t->n));
    free(copy);
    /* free gives the model back with its own flags */
    pare_online_free(ol);
    for (int p = 0; p < g->n_params; p++)
        CHECK(!g->params[p].frozen);
    pare_graph_free(g);
}

/* ---- the commands ---- */

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

PARE_TEST(online_cli)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    const char *dir = pare_test_dir();
    CHECK(synth_write_idx(dir, 50, 400, 7) == 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' zoo lenet --out m.pare >/dev/null && "
             "'%s' stream-sim --data . --out s.stream --drift rotate --length 600 --at 200,400 --seed 3 >/dev/null",
             dir, bin, bin);
    CHECK(sh("%s%s", cmd, "") == 0);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' online m.pare --stream s.stream --policy immediate --threads 1 --json --out m2.pare "
             "--predictions p.txt > o.json 2> e.txt",
             dir, bin);
    CHECK(sh("%s%s", cmd, "") == 0);
    char p[1100];
    snprintf(p, sizeof p, "%s/p.txt", dir);
    CHECK(count_lines(p) == 600);
    snprintf(p, sizeof p, "%s/o.json", dir);
    CHECK(count_lines(p) == 1);
    /* stdin, and a stream cut inside its 301st sample (record 302, after a marker): one sentence, status 1,
     * the 300 predictions before it kept */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && head -c %d s.stream | '%s' online m2.pare --stream - --policy edgeol --threads 1 "
             "--predictions q.txt > /dev/null 2> e2.txt",
             dir, 32 + 1 * 5 + 300 * (3 + NPIX) + 100, bin);
    CHECK(sh("%s%s", cmd, "") == 1);
    snprintf(p, sizeof p, "%s/e2.txt", dir);
    CHECK(count_lines(p) == 1);
    FILE *f = fopen(p, "r");
    char line[1024] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
    }
    CHECKF(strstr(line, "pare online: standard input is truncated: record 302") != NULL, "%s", line);
    snprintf(p, sizeof p, "%s/q.txt", dir);
    CHECKF(count_lines(p) == 300, "%ld predictions kept", count_lines(p));
    /* bad input: one line on stderr, non-zero status */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' online m.pare --stream m.pare 2> e3.txt >/dev/null", dir, bin);
    CHECK(sh("%s%s", cmd, "") == 1);
    snprintf(p, sizeof p, "%s/e3.txt", dir);
    CHECK(count_lines(p) == 1);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' online m.pare 2> e4.txt", dir, bin);
    CHECK(sh("%s%s", cmd, "") == 2);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' stream-sim --out x.stream --data . --at 5,3 2> e5.txt", dir, bin);
    CHECK(sh("%s%s", cmd, "") == 2);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' stream-sim --out x.stream --data . --length 10 --at 50 2> e6.txt", dir,
             bin);
    CHECK(sh("%s%s", cmd, "") == 2);
}
