/* pare bench: latency (median, p90), throughput, memory and, with --verbose,
 * the kernel and time of every step of a compiled model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "core/rng.h"
#include "report/report.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The value at fraction f of sorted v (nearest rank). */
static double quantile(const double *v, int n, double f)
{
    int i = (int)floor(f * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int cmd_bench(int argc, char **argv)
{
    int threads = 0, batch = 1, runs = 50, warmup = 10, blocks = 3, verbose = 0, json = 0, dense = 0, no_tune = 0;
    const char *plot = NULL;
    cli_opt opts[] = {
        {"--threads", CLI_INT, &threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--batch", CLI_INT, &batch, "B", "samples per run (1)", NULL, 1, 4096, 0},
        {"--runs", CLI_INT, &runs, "R", "timed runs per block (50)", NULL, 1, 1000000, 0},
        {"--warmup", CLI_INT, &warmup, "W", "untimed runs first (10)", NULL, 0, 1000000, 0},
        {"--blocks", CLI_INT, &blocks, "K", "blocks of runs (3); their medians show the drift", NULL, 1, 1000, 0},
        {"--verbose", CLI_FLAG, &verbose, NULL, "each step's kernel and time", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "print one JSON object", NULL, 0, 0, 0},
        {"--plot", CLI_STRING, &plot, "FILE.svg", "bar chart of time per step", NULL, 0, 0, 0},
        {"--dense", CLI_FLAG, &dense, NULL, "dense kernels only (the baseline)", NULL, 0, 0, 0},
        {"--no-tune", CLI_FLAG, &no_tune, NULL, "choose kernels by sparsity alone, without timing them", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"bench", "MODEL.pare [options]",
                   "Compiles a model and measures it on random input: latency median and p90 over blocks of\n"
                   "runs, throughput, activation and weight memory and peak RSS; --verbose adds the kernel\n"
                   "chosen and the time of every step.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    pare_graph *g = NULL;
    pare_plan *p = NULL;
    float *x = NULL, *y = NULL;
    double *t = NULL;
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    /* By default each layer's kernels are timed against dense on this machine
     * (cached), so a compiled model is never slower than the dense one. */
    pare_plan_options po = {threads, !no_tune, dense};
    double tc = now_s();
    if (s == PARE_OK)
        s = pare_plan_new(g, &po, &p);
    tc = now_s() - tc;
    if (s != PARE_OK)
        goto fail;
    pare_plan_info info;
    pare_plan_get_info(p, &info);
    size_t isz = (size_t)info.in_c * (size_t)info.in_h * (size_t)info.in_w;
    x = malloc(sizeof(float) * isz * (size_t)batch);
    y = malloc(sizeof(float) * (size_t)info.out_size * (size_t)batch);
    t = malloc(sizeof(double) * (size_t)runs * (size_t)blocks);
    double *bmed = malloc(sizeof(double) * (size_t)blocks);
    if (!x || !y || !t || !bmed) {
        free(bmed);
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto fail;
    }
    pare_rng rng;
    pare_rng_seed(&rng, 1, 2, 3, 4);
    for (size_t i = 0; i < isz * (size_t)batch; i++)
        x[i] = (float)pare_rng_normal(&rng);
    for (int i = 0; i < warmup; i++)
        pare_plan_run(p, x, batch, y);
    pare_plan_profile(p, verbose || plot != NULL);
    for (int b = 0; b < blocks; b++) {
        for (int i = 0; i < runs; i++) {
            double t0 = now_s();
            pare_plan_run(p, x, batch, y);
            t[b * runs + i] = (now_s() - t0) * 1e3;
        }
        qsort(t + b * runs, (size_t)runs, sizeof(double), cmp_d);
        bmed[b] = quantile(t + b * runs, runs, 0.5);
    }
    int total = runs * blocks;
    qsort(t, (size_t)total, sizeof(double), cmp_d);
    double med = quantile(t, total, 0.5), p90 = quantile(t, total, 0.9), mn = t[0];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    double gflops = 2.0 * info.dense_macs * batch / (med * 1e-3) * 1e-9;
    if (json) {
        pare_json *j = pare_json_new(stdout, 0);
        pare_json_begin_object(j);
        pare_json_kv_string(j, "engine", "pare");
        pare_json_kv_string(j, "model", pos[0]);
        pare_json_kv_int(j, "threads", threads);
        pare_json_kv_int(j, "batch", batch);
        pare_json_kv_string(j, "isa", info.isa);
        pare_json_kv_int(j, "runs_per_block", runs);
        pare_json_kv_int(j, "blocks", blocks);
        pare_json_kv_double(j, "median_ms", med);
        pare_json_kv_double(j, "p90_ms", p90);
        pare_json_kv_double(j, "min_ms", mn);
        pare_json_key(j, "block_medians_ms");
        pare_json_begin_array(j);
        for (int b = 0; b < blocks; b++)
            pare_json_double(j, bmed[b]);
        pare_json_end_array(j);
        pare_json_kv_double(j, "images_per_s", batch / (med * 1e-3));
        pare_json_kv_double(j, "macs", info.macs);
        pare_json_kv_double(j, "dense_macs", info.dense_macs);
        pare_json_kv_double(j, "effective_gflops", gflops);
        pare_json_kv_int(j, "activation_bytes", (int64_t)info.activation_bytes);
        pare_json_kv_int(j, "weight_bytes", (int64_t)info.weight_bytes);
        pare_json_kv_double(j, "peak_rss_mb", rss_mb);
        pare_json_kv_double(j, "compile_s", tc);
        if (verbose) {
            pare_json_key(j, "steps");
            pare_json_begin_array(j);
            for (int i = 0; i < info.steps; i++) {
                pare_step_info si;
                pare_plan_step_info(p, i, &si);
                pare_json_begin_object(j);
                pare_json_kv_string(j, "name", si.name);
                pare_json_kv_string(j, "kernel", si.kernel);
                pare_json_kv_double(j, "macs", si.macs);
                pare_json_kv_double(j, "dense_macs", si.dense_macs);
                pare_json_kv_double(j, "ms", si.seconds / total * 1e3);
                pare_json_end_object(j);
            }
            pare_json_end_array(j);
        }
        pare_json_end_object(j);
        pare_json_free(j);
    } else {
        char th[32];
        if (threads)
            snprintf(th, sizeof th, "%d thread%s", threads, threads == 1 ? "" : "s");
        else
            snprintf(th, sizeof th, "all cores");
        printf("model %s: %s kernels, batch %d, %s, compiled in %.2f s\n", pos[0], info.isa, batch, th, tc);
        printf("latency   median %.3f ms, p90 %.3f ms, min %.3f ms (%d blocks x %d runs; block medians", med, p90, mn,
               blocks, runs);
        for (int b = 0; b < blocks; b++)
            printf(" %.3f", bmed[b]);
        printf(")\nthroughput %.1f images/s\n", batch / (med * 1e-3));
        printf("work      %.1f MMAC of the dense %.1f (%.2fx fewer); effective %.1f GFLOP/s (dense-equivalent)\n",
               info.macs / 1e6, info.dense_macs / 1e6, info.macs > 0 ? info.dense_macs / info.macs : 0, gflops);
        printf("memory    activations %.2f MB, packed weights %.2f MB, peak RSS %.1f MB\n",
               (double)info.activation_bytes / 1e6, (double)info.weight_bytes / 1e6, rss_mb);
        if (verbose) {
            static const char *const hdr[] = {"step", "kernel", "MMAC", "dense MMAC", "ms", "GFLOP/s", "eff."};
            pare_table *tb = pare_table_new(7, hdr, "llrrrrr");
            for (int i = 0; i < info.steps; i++) {
                pare_step_info si;
                pare_plan_step_info(p, i, &si);
                double ms = si.seconds / total * 1e3;
                pare_table_rowf(tb, "%s\t%s\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f", si.name, si.kernel, si.macs / 1e6,
                                si.dense_macs / 1e6, ms, ms > 0 ? 2 * si.macs * batch / (ms * 1e-3) * 1e-9 : 0,
                                ms > 0 ? 2 * si.dense_macs * batch / (ms * 1e-3) * 1e-9 : 0);
            }
            printf("\n");
            pare_table_print(tb, stdout);
            pare_table_free(tb);
        }
    }
    if (plot) {
        const char **names = calloc((size_t)info.steps + 1, sizeof *names);
        double *ms = calloc((size_t)info.steps + 1, sizeof(double));
        pare_chart *c = pare_chart_new(1, 200 + 24 * info.steps > 700 ? 200 + 24 * info.steps : 700, 440);
        if (names && ms && c) {
            for (int i = 0; i < info.steps; i++) {
                pare_step_info si;
                pare_plan_step_info(p, i, &si);
                names[i] = si.name;
                ms[i] = si.seconds / total * 1e3;
            }
            char title[256];
            snprintf(title, sizeof title, "%s: %.2f ms median, batch %d", pos[0], med, batch);
            pare_chart_title(c, title);
            pare_chart_panel(c, 0, "Time per step", "step", "ms");
            pare_chart_categories(c, 0, names, info.steps);
            pare_chart_series(c, 0, "time", PARE_CHART_BARS, NULL, ms, info.steps);
            s = pare_chart_write_svg(c, plot);
        } else {
            s = pare_fail(PARE_ENOMEM, "out of memory drawing %s", plot);
        }
        pare_chart_free(c);
        free(names);
        free(ms);
        if (s != PARE_OK) {
            free(bmed);
            goto fail;
        }
    }
    free(bmed);
    code = 0;
    goto done;
fail:
    code = cli_fail("bench", s);
done:
    free(x);
    free(y);
    free(t);
    pare_plan_free(p);
    pare_graph_free(g);
    return code;
}
