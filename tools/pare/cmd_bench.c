/* pare bench: latency (median, p90), throughput, memory and, with --verbose,
 * the kernel and time of every step of a compiled model; a quantized model is
 * timed in int8 and, block by block in turn, in float32 (its fakequant nodes
 * skipped), and the ratio printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "core/clock.h"
#include "core/rng.h"
#include "report/report.h"

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

/* The float32 plan's time (ms per run) of the step named like step i of the int8 plan, or -1. */
static double float_ms(const pare_plan *pf, const char *name, int total)
{
    pare_plan_info fi;
    pare_plan_get_info(pf, &fi);
    for (int j = 0; j < fi.steps; j++) {
        pare_step_info sj;
        pare_plan_step_info(pf, j, &sj);
        if (!strcmp(sj.name, name))
            return sj.seconds / total * 1e3;
    }
    return -1;
}

/* One block of timed runs (ms, sorted); returns its median. */
static double time_block(pare_plan *p, const float *x, int batch, float *y, int runs, double *t)
{
    for (int i = 0; i < runs; i++) {
        double t0 = pare_now_s();
        pare_plan_run(p, x, batch, y);
        t[i] = (pare_now_s() - t0) * 1e3;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_d);
    return quantile(t, runs, 0.5);
}

int cmd_bench(int argc, char **argv)
{
    int threads = 0, batch = 1, runs = 50, warmup = 10, blocks = 3, verbose = 0, json = 0, dense = 0, no_tune = 0;
    int as_float = 0, no_float = 0;
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
        {"--float", CLI_FLAG, &as_float, NULL, "a quantized model: time it in float32 only (fakequant nodes skipped)",
         NULL, 0, 0, 0},
        {"--no-float", CLI_FLAG, &no_float, NULL, "a quantized model: time it in int8 only, without the float32 run",
         NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"bench", "MODEL.pare [options]",
                   "Compiles a model and measures it on random input: latency median and p90 over blocks of\n"
                   "runs, throughput, activation and weight memory and peak RSS; --verbose adds the kernel\n"
                   "chosen and the time of every step. A quantized model runs in int8 and is also timed in\n"
                   "float32 (blocks of runs in turn), with the ratio of the two medians.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    pare_graph *g = NULL;
    pare_plan *p = NULL, *pf = NULL;
    float *x = NULL, *y = NULL;
    double *t = NULL, *tf = NULL;
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    /* By default each layer's kernels are timed against dense on this machine
     * (cached), so a compiled model is never slower than the dense one. */
    pare_plan_options po = {threads, !no_tune, dense, as_float ? 2 : 0};
    double tc = pare_now_s();
    if (s == PARE_OK)
        s = pare_plan_new(g, &po, &p);
    tc = pare_now_s() - tc;
    if (s != PARE_OK)
        goto fail;
    pare_plan_info info, finfo;
    pare_plan_get_info(p, &info);
    memset(&finfo, 0, sizeof finfo);
    if (info.int8_layers > 0 && !no_float) {
        /* the same model in float32, its quantizers skipped */
        pare_plan_options fo = po;
        fo.float32 = 2;
        s = pare_plan_new(g, &fo, &pf);
        if (s != PARE_OK)
            goto fail;
        pare_plan_get_info(pf, &finfo);
    }
    size_t isz = (size_t)info.in_c * (size_t)info.in_h * (size_t)info.in_w;
    x = malloc(sizeof(float) * isz * (size_t)batch);
    y = malloc(sizeof(float) * (size_t)info.out_size * (size_t)batch);
    t = malloc(sizeof(double) * (size_t)runs * (size_t)blocks);
    tf = malloc(sizeof(double) * (size_t)runs * (size_t)blocks);
    double *bmed = malloc(sizeof(double) * (size_t)blocks);
    if (!x || !y || !t || !tf || !bmed) {
        free(bmed);
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto fail;
    }
    pare_rng rng;
    pare_rng_seed(&rng, 1, 2, 3, 4);
    for (size_t i = 0; i < isz * (size_t)batch; i++)
        x[i] = (float)pare_rng_normal(&rng);
    for (int i = 0; i < warmup; i++) {
        pare_plan_run(p, x, batch, y);
        if (pf)
            pare_plan_run(pf, x, batch, y);
    }
    pare_plan_profile(p, verbose || plot != NULL);
    if (pf)
        pare_plan_profile(pf, verbose);
    /* int8 and float32 in turn, block by block, so drift hits both */
    for (int b = 0; b < blocks; b++) {
        bmed[b] = time_block(p, x, batch, y, runs, t + b * runs);
        if (pf)
            time_block(pf, x, batch, y, runs, tf + b * runs);
    }
    int total = runs * blocks;
    qsort(t, (size_t)total, sizeof(double), cmp_d);
    double med = quantile(t, total, 0.5), p90 = quantile(t, total, 0.9), mn = t[0], fmed = 0;
    if (pf) {
        qsort(tf, (size_t)total, sizeof(double), cmp_d);
        fmed = quantile(tf, total, 0.5);
    }
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
        pare_json_kv_int(j, "int8_layers", info.int8_layers);
        if (pf) {
            pare_json_kv_double(j, "float32_median_ms", fmed);
            pare_json_kv_double(j, "int8_speedup", fmed / med);
            pare_json_kv_int(j, "float32_activation_bytes", (int64_t)finfo.activation_bytes);
            pare_json_kv_int(j, "float32_weight_bytes", (int64_t)finfo.weight_bytes);
        }
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
                if (pf && strstr(si.kernel, "int8"))
                    pare_json_kv_double(j, "float32_ms", float_ms(pf, si.name, total));
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
        if (info.int8_layers > 0)
            printf("int8      %d conv and linear layers in int8\n", info.int8_layers);
        if (pf)
            printf("float32   median %.3f ms, activations %.2f MB, packed weights %.2f MB: int8 is %.2fx faster\n",
                   fmed, (double)finfo.activation_bytes / 1e6, (double)finfo.weight_bytes / 1e6, fmed / med);
        if (verbose) {
            static const char *const hdr[] = {"step", "kernel", "MMAC", "dense MMAC", "ms", "GFLOP/s", "eff.", "f32 ms"};
            pare_table *tb = pare_table_new(pf ? 8 : 7, hdr, "llrrrrrr");
            for (int i = 0; i < info.steps; i++) {
                pare_step_info si;
                pare_plan_step_info(p, i, &si);
                double ms = si.seconds / total * 1e3, fms = pf && strstr(si.kernel, "int8") ? float_ms(pf, si.name, total) : -1;
                char f32[32] = "";
                if (fms >= 0)
                    snprintf(f32, sizeof f32, "%.3f", fms);
                pare_table_rowf(tb, pf ? "%s\t%s\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f\t%s" : "%s\t%s\t%.2f\t%.2f\t%.3f\t%.1f\t%.1f%s",
                                si.name, si.kernel, si.macs / 1e6, si.dense_macs / 1e6, ms,
                                ms > 0 ? 2 * si.macs * batch / (ms * 1e-3) * 1e-9 : 0,
                                ms > 0 ? 2 * si.dense_macs * batch / (ms * 1e-3) * 1e-9 : 0, f32);
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
    free(tf);
    pare_plan_free(p);
    pare_plan_free(pf);
    pare_graph_free(g);
    return code;
}
