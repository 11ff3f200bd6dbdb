/* pare run: a compiled model on raw input (float32 NCHW files) or on a
 * dataset (accuracy). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/bytes.h"
#include "core/fsio.h"
#include "data/data.h"
#include "report/report.h"

int cmd_run(int argc, char **argv)
{
    const char *input = NULL, *output = NULL, *data = NULL;
    int threads = 0, dense = 0, no_tune = 0, json = 0, quiet = 0;
    long limit = 0;
    cli_opt opts[] = {
        {"--input", CLI_STRING, &input, "FILE", "float32 little-endian samples, NCHW, one after another", NULL, 0, 0, 0},
        {"--output", CLI_STRING, &output, "FILE", "write the outputs as float32 (default: print them)", NULL, 0, 0, 0},
        {"--data", CLI_STRING, &data, "SPEC", "evaluate on a dataset's test split instead (fashion-mnist, a folder)", NULL, 0, 0, 0},
        {"--limit", CLI_LONG, &limit, "N", "with --data: the first N samples only", NULL, 1, 1e12, 0},
        {"--threads", CLI_INT, &threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--dense", CLI_FLAG, &dense, NULL, "dense kernels only (a baseline)", NULL, 0, 0, 0},
        {"--no-tune", CLI_FLAG, &no_tune, NULL, "choose kernels by sparsity alone, without timing them", NULL, 0, 0, 0},
        {"--json", CLI_FLAG, &json, NULL, "print the result as JSON", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "print nothing but errors", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"run", "MODEL.pare (--input X.bin | --data SPEC) [options]",
                   "Compiles a model for inference and runs it on raw samples or on a dataset.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!input == !data)
        return cli_error("run", EXIT_USAGE, "give either --input FILE (raw samples) or --data SPEC (a dataset)");
    pare_graph *g = NULL;
    pare_plan *p = NULL;
    pare_dataset *ds = NULL;
    uint8_t *buf = NULL;
    float *x = NULL, *y = NULL;
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    /* By default each layer's kernels are timed against dense on this machine
     * (cached), so a compiled model is never slower than the dense one. */
    pare_plan_options po = {threads, !no_tune, dense, 0};
    if (s == PARE_OK)
        s = pare_plan_new(g, &po, &p);
    if (s != PARE_OK)
        goto fail;
    pare_plan_info info;
    pare_plan_get_info(p, &info);
    size_t isz = (size_t)info.in_c * (size_t)info.in_h * (size_t)info.in_w, osz = (size_t)info.out_size;
    if (input) {
        size_t len;
        if ((s = pare_read_file(input, (size_t)1 << 34, &buf, &len)) != PARE_OK)
            goto fail;
        if (len == 0 || len % (isz * 4)) {
            s = pare_fail(PARE_ESHAPE, "%s has %zu bytes, not a whole number of %dx%dx%d float32 samples (%zu bytes each)",
                          input, len, info.in_c, info.in_h, info.in_w, isz * 4);
            goto fail;
        }
        long n = (long)(len / (isz * 4));
        x = malloc(len);
        y = malloc(sizeof(float) * osz * (size_t)n);
        if (!x || !y) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto fail;
        }
        /* little-endian on disk, whatever this host is */
        for (size_t i = 0; i < len / 4; i++) {
            uint32_t u = pare_le32(buf + 4 * i);
            memcpy(&x[i], &u, 4);
        }
        if ((s = pare_plan_run(p, x, (int)n, y)) != PARE_OK)
            goto fail;
        if (output) {
            if ((s = pare_write_file_atomic(output, y, sizeof(float) * osz * (size_t)n)) != PARE_OK)
                goto fail;
        } else if (!quiet) {
            for (long i = 0; i < n; i++) {
                size_t arg = 0;
                for (size_t k = 1; k < osz; k++)
                    if (y[(size_t)i * osz + k] > y[(size_t)i * osz + arg])
                        arg = k;
                printf("sample %ld: class %zu;", i, arg);
                for (size_t k = 0; k < osz && k < 16; k++)
                    printf(" %.6g", (double)y[(size_t)i * osz + k]);
                printf(osz > 16 ? " ...\n" : "\n");
            }
        }
    } else {
        if ((s = cli_load_data(data, NULL, NULL, PARE_SPLIT_TEST, limit, &ds)) != PARE_OK)
            goto fail;
        cli_apply_model_norm(g, ds);
        if (ds->c != info.in_c || ds->h != info.in_h || ds->w != info.in_w) {
            s = pare_fail(PARE_ESHAPE, "%s has %dx%dx%d samples but %s takes %dx%dx%d", data, ds->c, ds->h, ds->w, pos[0],
                          info.in_c, info.in_h, info.in_w);
            goto fail;
        }
        int batch = 256;
        x = malloc(sizeof(float) * isz * (size_t)batch);
        y = malloc(sizeof(float) * osz * (size_t)batch);
        long *idx = malloc(sizeof(long) * (size_t)batch);
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
        long right = 0;
        for (long at = 0; at < ds->n && x && y && idx && lab; at += batch) {
            int m = (int)(ds->n - at < batch ? ds->n - at : batch);
            for (int i = 0; i < m; i++)
                idx[i] = at + i;
            pare_data_batch(ds, idx, m, x, lab, NULL, 0, 0, threads ? threads : 1);
            pare_plan_run(p, x, m, y);
            for (int i = 0; i < m; i++) {
                size_t arg = 0;
                for (size_t k = 1; k < osz; k++)
                    if (y[(size_t)i * osz + k] > y[(size_t)i * osz + arg])
                        arg = k;
                right += (long)arg == lab[i];
            }
        }
        free(idx);
        free(lab);
        if (json)
            printf("{\"model\":\"%s\",\"samples\":%ld,\"accuracy\":%.6f}\n", pos[0], ds->n, (double)right / (double)ds->n);
        else if (!quiet)
            printf("%s: %ld samples, accuracy %.2f%% (compiled, %s kernels)\n", pos[0], ds->n,
                   100.0 * (double)right / (double)ds->n, info.isa);
    }
    code = 0;
    goto done;
fail:
    code = cli_fail("run", s);
done:
    free(buf);
    free(x);
    free(y);
    pare_dataset_free(ds);
    pare_plan_free(p);
    pare_graph_free(g);
    return code;
}
