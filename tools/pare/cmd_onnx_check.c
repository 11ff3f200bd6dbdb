/* pare onnx-check: runs ONNX backend test folders (model.onnx and its data sets)
 * through the importer, pare_graph_forward and the compiled plan, and prints a
 * table of pass / FAIL / unsupported with totals per folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fsio.h"
#include "io/onnx.h"
#include "report/report.h"

typedef struct totals {
    int n[3];       /* pass, fail, unsupported (forward) */
    int plan[4];    /* pass, fail, did not compile, not tried */
} totals;

static const char *result_name(pare_onnx_result r)
{
    static const char *const names[] = {"pass", "FAIL", "unsupported", "-"};
    return (unsigned)r < 4 ? names[r] : "?";
}

static void json_case(pare_json *j, const pare_onnx_case *c)
{
    pare_json_begin_object(j);
    pare_json_kv_string(j, "test", c->name);
    pare_json_kv_string(j, "result", c->result == PARE_ONNX_FAIL ? "fail" : result_name(c->result));
    pare_json_kv_double(j, "max_abs_error", c->max_err);
    pare_json_kv_string(j, "reason", c->reason[0] ? c->reason : NULL);
    pare_json_kv_string(j, "plan", c->plan == PARE_ONNX_FAIL      ? "fail"
                                   : c->plan == PARE_ONNX_SKIPPED ? "skipped"
                                                                  : result_name(c->plan));
    pare_json_kv_double(j, "plan_max_abs_error", c->plan_max_err);
    pare_json_kv_string(j, "plan_reason", c->plan_reason[0] ? c->plan_reason : NULL);
    pare_json_end_object(j);
}

static void row(pare_table *t, const pare_onnx_case *c)
{
    char res[64], plan[64];
    if (c->result == PARE_ONNX_FAIL)
        snprintf(res, sizeof res, "FAIL %.3g", c->max_err);
    else
        snprintf(res, sizeof res, "%s", result_name(c->result));
    if (c->plan == PARE_ONNX_FAIL)
        snprintf(plan, sizeof plan, "FAIL %.3g", c->plan_max_err);
    else
        snprintf(plan, sizeof plan, "%s", result_name(c->plan));
    const char *why = c->result != PARE_ONNX_PASS ? c->reason
                      : c->plan != PARE_ONNX_PASS ? c->plan_reason
                                                  : "";
    pare_table_rowf(t, "%s\t%s\t%s\t%.150s", c->name, res, plan, why);
}

/* One folder: a test itself, or a folder of tests. */
static pare_status check_dir(const char *dir, const char *filter, int threads, int brief,
                             pare_json *j, totals *tot)
{
    char **names = NULL;
    int n = 0;
    char model[4200];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    int single = pare_file_exists(model);
    pare_status s = single ? PARE_OK : pare_onnx_case_list(dir, &names, &n);
    if (s != PARE_OK)
        return s;
    if (!single && n == 0) {
        pare_onnx_case_list_free(names, n);
        return pare_fail(PARE_ENOTFOUND, "%s holds no ONNX test folders (model.onnx and "
                                         "test_data_set_N)",
                         dir);
    }
    memset(tot, 0, sizeof *tot);
    static const char *const hdr[] = {"test", "result", "plan", "why"};
    pare_table *t = j ? NULL : pare_table_new(4, hdr, "llll");
    if (j) {
        pare_json_begin_object(j);
        pare_json_kv_string(j, "dir", dir);
        pare_json_key(j, "tests");
        pare_json_begin_array(j);
    }
    for (int i = 0; i < (single ? 1 : n) && s == PARE_OK; i++) {
        char path[4200];
        if (!single && (filter && !strstr(names[i], filter)))
            continue;
        if (single)
            snprintf(path, sizeof path, "%s", dir);
        else if (!pare_path_join(path, sizeof path, dir, names[i]))
            continue;
        pare_onnx_case c;
        s = pare_onnx_check_case(path, threads, &c);
        if (s != PARE_OK)
            break;
        tot->n[c.result < 3 ? c.result : 2]++;
        tot->plan[c.plan]++;
        if (j)
            json_case(j, &c);
        else if (!brief || c.result == PARE_ONNX_FAIL || c.plan == PARE_ONNX_FAIL)
            row(t, &c);
    }
    pare_onnx_case_list_free(names, n);
    if (j) {
        pare_json_end_array(j);
        pare_json_kv_int(j, "passed", tot->n[0]);
        pare_json_kv_int(j, "failed", tot->n[1]);
        pare_json_kv_int(j, "unsupported", tot->n[2]);
        pare_json_kv_int(j, "plan_passed", tot->plan[0]);
        pare_json_kv_int(j, "plan_failed", tot->plan[1]);
        pare_json_kv_int(j, "plan_not_compiled", tot->plan[2]);
        pare_json_end_object(j);
    } else {
        pare_table_print(t, stdout);
        pare_table_free(t);
    }
    return s;
}

int cmd_onnx_check(int argc, char **argv)
{
    int json = 0, brief = 0, threads = 1;
    const char *filter = NULL;
    cli_opt opts[] = {
        {"--json", CLI_FLAG, &json, NULL, "print the results as JSON", NULL, 0, 0, 0},
        {"--failures", CLI_FLAG, &brief, NULL, "list only the tests that fail, then the totals", NULL, 0, 0, 0},
        {"--filter", CLI_STRING, &filter, "TEXT", "run only the tests whose name holds TEXT", NULL, 0, 0, 0},
        {"--threads", CLI_INT, &threads, "N", "threads for each test (1)", NULL, 1, 256, 0},
    };
    cli_cmd cmd = {"onnx-check", "DIR [DIR...] [options]",
                   "Runs ONNX backend tests: every folder under DIR holding model.onnx and\n"
                   "test_data_set_N/{input,output}_K.pb (or DIR itself). Inputs after the first are bound\n"
                   "as constants (the tests feed weights that way); the first is run through\n"
                   "pare_graph_forward and through the compiled plan, and compared with output_0.pb at\n"
                   "ONNX's tolerance (|pare - expected| <= 1e-7 + 1e-3 |expected|). Debian's\n"
                   "libonnx-testdata has them in /usr/share/libonnx-testdata/data/{node,pytorch-converted}.\n"
                   "Exit status 1 when any test fails (either way), 0 otherwise.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 64};
    const char *pos[64];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
#ifndef PARE_ONNX
    (void)filter;
    (void)threads;
    (void)brief;
    fprintf(stderr, "pare onnx-check: this pare was built without ONNX support (it needs protobuf-c, "
                    "protoc-c and libonnx-dev; see docs/ONNX.md), so nothing can be tested\n");
    return 1;
#endif
    pare_json *j = json ? pare_json_new(stdout, 1) : NULL;
    if (j) {
        pare_json_begin_object(j);
        pare_json_key(j, "dirs");
        pare_json_begin_array(j);
    }
    totals all[64];
    int failed = 0;
    for (int i = 0; i < npos; i++) {
        pare_status s = check_dir(pos[i], filter, threads, brief, j, &all[i]);
        if (s != PARE_OK) {
            pare_json_free(j);
            return cli_fail("onnx-check", s);
        }
        failed += all[i].n[1] + all[i].plan[1];
        if (!j)
            printf("\n");
    }
    if (j) {
        pare_json_end_array(j);
        pare_json_kv_int(j, "failed", failed);
        pare_json_end_object(j);
        pare_json_free(j);
    } else {
        for (int i = 0; i < npos; i++)
            printf("%s: %d passed, %d failed, %d unsupported; compiled plan: %d passed, %d failed, "
                   "%d did not compile\n",
                   pos[i], all[i].n[0], all[i].n[1], all[i].n[2], all[i].plan[0], all[i].plan[1],
                   all[i].plan[2]);
    }
    return failed ? 1 : 0;
}
