/* pare convert: ONNX to pare's format and back, the direction read from the file
 * extensions, with a one-line summary of what was converted. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "graph/graph.h"
#include "report/report.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* "2:4 x3, unstructured x1" from the schemes of the masked layers. */
static int sparse_layers(const pare_graph *g, char *buf, size_t cap)
{
    const char *kinds[16];
    int counts[16], nk = 0, total = 0;
    for (int i = 0; i < pare_graph_layer_count(g); i++) {
        pare_layer_info li;
        if (pare_graph_layer_info(g, i, &li) != PARE_OK || !li.masked)
            continue;
        int p = pare_graph_node_param(g, i, PARE_ROLE_WEIGHT);
        const char *scheme = p >= 0 && g->params[p].scheme ? g->params[p].scheme : "masked";
        total++;
        int k = 0;
        while (k < nk && strcmp(kinds[k], scheme))
            k++;
        if (k == nk && nk < 16) {
            kinds[nk] = scheme;
            counts[nk++] = 0;
        }
        if (k < nk)
            counts[k]++;
    }
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < nk && at < cap; k++) {
        int w = snprintf(buf + at, cap - at, "%s%s x%d", k ? ", " : "", kinds[k], counts[k]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
    return total;
}

int cmd_convert(int argc, char **argv)
{
    int quiet = 0;
    cli_opt opts[] = {
        {"--quiet", CLI_FLAG, &quiet, NULL, "print nothing but errors", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"convert", "IN OUT",
                   "Converts a model between ONNX and pare's format; the extensions say which way.\n"
                   "IN.onnx OUT.pare imports (opsets 6 to 17: weights become trainable parameters,\n"
                   "constant shape arithmetic is folded, exact zeros in conv and linear weights become\n"
                   "masks with the sparsity scheme they follow; docs/ONNX.md). IN.pare OUT.onnx exports\n"
                   "opset 13, keeping a pruned model's zeros and recording each layer's scheme.\n"
                   "OUT is written whole or not at all.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 2, 2};
    const char *pos[2];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    int import = ends_with(pos[0], ".onnx") && ends_with(pos[1], ".pare");
    int export = ends_with(pos[0], ".pare") && ends_with(pos[1], ".onnx");
    if (!import && !export)
        return cli_error("convert", EXIT_USAGE,
                         "cannot tell which way to convert '%s' to '%s': give IN.onnx OUT.pare or "
                         "IN.pare OUT.onnx",
                         pos[0], pos[1]);
    pare_graph *g = NULL;
    pare_status s = import ? pare_onnx_load(pos[0], &g) : pare_graph_load(pos[0], &g);
    if (s == PARE_OK)
        s = import ? pare_graph_save(g, pos[1]) : pare_onnx_save(g, pos[1]);
    if (s != PARE_OK) {
        pare_graph_free(g);
        return cli_fail("convert", s);
    }
    if (!quiet) {
        long long params = 0;
        int n = pare_graph_layer_count(g);
        for (int i = 0; i < n; i++) {
            pare_layer_info li;
            if (pare_graph_layer_info(g, i, &li) == PARE_OK)
                params += li.params;
        }
        char count[32], kinds[256];
        pare_format_count((double)params, count, sizeof count);
        int sparse = sparse_layers(g, kinds, sizeof kinds);
        printf("%s -> %s: %d layers, %s parameters, ", pos[0], pos[1], n, count);
        if (sparse)
            printf("%d sparse layer%s (%s)\n", sparse, sparse == 1 ? "" : "s", kinds);
        else
            printf("no sparse layers\n");
    }
    pare_graph_free(g);
    return 0;
}
