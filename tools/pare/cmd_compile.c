/* pare compile: shows the plan a model compiles to (kernel per step, work,
 * memory) and, with --emit-c, writes it as one standalone C file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report/report.h"

int cmd_compile(int argc, char **argv)
{
    const char *emit = NULL, *prefix = "model";
    int threads = 0, no_tune = 0, dense = 0, quiet = 0;
    cli_opt opts[] = {
        {"--emit-c", CLI_STRING, &emit, "FILE.c", "write the plan as one standalone C file", NULL, 0, 0, 0},
        {"--prefix", CLI_STRING, &prefix, "NAME", "names in the C file: NAME_run(in, out) (model)", NULL, 0, 0, 0},
        {"--threads", CLI_INT, &threads, "N", "threads the kernels are timed with (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--no-tune", CLI_FLAG, &no_tune, NULL, "choose kernels by sparsity alone, without timing them", NULL, 0, 0, 0},
        {"--dense", CLI_FLAG, &dense, NULL, "dense kernels only", NULL, 0, 0, 0},
        {"--quiet", CLI_FLAG, &quiet, NULL, "print nothing but errors", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"compile", "MODEL.pare [--emit-c FILE.c] [options]",
                   "Compiles a model for inference and prints the plan: the kernel each step runs and its work.\n"
                   "--emit-c writes the plan as one C file (weights as static arrays in their packed sparse\n"
                   "formats, int8 layers as their codes, one function per step, a static arena, no malloc,\n"
                   "nothing beyond the C library's headers and, for int8 layers, libm) exposing\n"
                   "NAME_run(const float *in, float *out); `cc -O2` builds it (add -lm for an int8 model).",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    pare_graph *g = NULL;
    pare_plan *p = NULL;
    int code = 1;
    pare_status s = pare_graph_load(pos[0], &g);
    pare_plan_options po = {threads, !no_tune, dense, 0};
    if (s == PARE_OK)
        s = pare_plan_new(g, &po, &p);
    if (s == PARE_OK && emit)
        s = pare_plan_emit_c(p, emit, prefix);
    if (s != PARE_OK) {
        code = cli_fail("compile", s);
        goto done;
    }
    if (!quiet) {
        pare_plan_info info;
        pare_plan_get_info(p, &info);
        static const char *const hdr[] = {"step", "kernel", "MMAC", "dense MMAC"};
        pare_table *t = pare_table_new(4, hdr, "llrr");
        for (int i = 0; i < info.steps; i++) {
            pare_step_info si;
            pare_plan_step_info(p, i, &si);
            pare_table_rowf(t, "%s\t%s\t%.2f\t%.2f", si.name, si.kernel, si.macs / 1e6, si.dense_macs / 1e6);
        }
        pare_table_separator(t);
        pare_table_rowf(t, "total\t%d steps\t%.2f\t%.2f", info.steps, info.macs / 1e6, info.dense_macs / 1e6);
        printf("plan of %s: %s kernels, input %dx%dx%d, %d outputs\n\n", pos[0], info.isa, info.in_c, info.in_h,
               info.in_w, info.out_size);
        pare_table_print(t, stdout);
        pare_table_free(t);
        printf("\nactivations %.2f MB (planned, reused by liveness), packed weights %.2f MB\n",
               (double)info.activation_bytes / 1e6, (double)info.weight_bytes / 1e6);
        if (emit)
            printf("wrote %s (%s_run)\n", emit, prefix);
    }
    code = 0;
done:
    pare_plan_free(p);
    pare_graph_free(g);
    return code;
}
