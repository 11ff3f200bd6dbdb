/* pare info: a model's layers with their output shapes, parameters, MACs and
 * sparsity, and the totals. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "graph/graph.h"
#include "report/report.h"

static void human(double v, char *buf, size_t n)
{
    if (v >= 1e9)
        snprintf(buf, n, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
}

/* The sparsity scheme of a layer's weight, or NULL. */
static const char *scheme_of(const pare_graph *g, int node)
{
    int p = pare_graph_node_param(g, node, PARE_ROLE_WEIGHT);
    return p >= 0 ? g->params[p].scheme : NULL;
}

/* A layer weight's quantization as text ("" when float): bits and how the
 * codes map to values (FORMAT.md: per tensor, per channel, codebook, basis). */
static const pare_qparams *quant_of(const pare_graph *g, int node, char *buf, size_t n)
{
    int p = pare_graph_node_param(g, node, PARE_ROLE_WEIGHT);
    const pare_qparams *q = p >= 0 ? &g->params[p].q : NULL;
    buf[0] = 0;
    if (!q || q->bits == 0)
        return NULL;
    if (q->scheme == 3)
        snprintf(buf, n, "%d-bit codebook %dx%d", q->bits, q->k, q->d);
    else if (q->scheme == 4)
        snprintf(buf, n, "SmartExchange basis %dx%d, %d-bit coefficients", q->d, q->d, q->bits);
    else
        snprintf(buf, n, "%d-bit per %s", q->bits, q->scheme == 2 ? "channel" : "tensor");
    return q;
}

int cmd_info(int argc, char **argv)
{
    int json = 0, all = 0;
    cli_opt opts[] = {
        {"--json", CLI_FLAG, &json, NULL, "print the table as JSON", NULL, 0, 0, 0},
        {"--all", CLI_FLAG, &all, NULL, "list every layer (default: layers with parameters or a new shape)", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"info", "MODEL.pare [options]",
                   "Shows each layer: op, output shape, parameters, multiply-accumulates per sample and\n"
                   "weight sparsity (zero or masked weights), then the totals.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    pare_graph *g;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s != PARE_OK)
        return cli_fail("info", s);
    int n = pare_graph_layer_count(g);
    long long params = 0, weights = 0, zeros = 0;
    double macs = 0;
    struct stat st;
    long long fsize = stat(pos[0], &st) == 0 ? (long long)st.st_size : -1;
    pare_json *j = json ? pare_json_new(stdout, 1) : NULL;
    static const char *const hdr[] = {"layer", "op", "output", "params", "MACs", "sparsity", "scheme", "quant", ""};
    pare_table *tb = json ? NULL : pare_table_new(9, hdr, "llrrrrlll");
    if (j) {
        pare_json_begin_object(j);
        pare_json_kv_string(j, "model", pare_graph_name(g));
        pare_json_key(j, "layers");
        pare_json_begin_array(j);
    }
    for (int i = 0; i < n; i++) {
        pare_layer_info li;
        pare_graph_layer_info(g, i, &li);
        params += li.params;
        weights += li.weights;
        zeros += li.zeros;
        macs += li.macs;
        if (j) {
            pare_json_begin_object(j);
            pare_json_kv_string(j, "name", li.name);
            pare_json_kv_string(j, "op", li.op);
            pare_json_key(j, "shape");
            pare_json_begin_array(j);
            pare_json_int(j, li.out_c);
            pare_json_int(j, li.out_h);
            pare_json_int(j, li.out_w);
            pare_json_end_array(j);
            pare_json_kv_int(j, "params", li.params);
            pare_json_kv_double(j, "macs", li.macs);
            pare_json_kv_int(j, "weights", li.weights);
            pare_json_kv_int(j, "zeros", li.zeros);
            pare_json_kv_double(j, "sparsity", li.weights ? (double)li.zeros / (double)li.weights : 0);
            pare_json_kv_bool(j, "masked", li.masked);
            pare_json_kv_string(j, "scheme", scheme_of(g, i));
            char qt[64];
            const pare_qparams *q = quant_of(g, i, qt, sizeof qt);
            pare_json_key(j, "quant");
            if (!q) {
                pare_json_null(j);
            } else {
                pare_json_begin_object(j);
                pare_json_kv_int(j, "bits", q->bits);
                pare_json_kv_string(j, "scheme", q->scheme == 4   ? "basis"
                                                 : q->scheme == 3 ? "codebook"
                                                 : q->scheme == 2 ? "channel"
                                                                  : "tensor");
                if (q->scheme == 3 || q->scheme == 4) {
                    pare_json_kv_int(j, "k", q->k);
                    pare_json_kv_int(j, "d", q->d);
                }
                pare_json_end_object(j);
            }
            pare_json_kv_bool(j, "frozen", li.frozen);
            pare_json_end_object(j);
            continue;
        }
        /* By default keep the table to layers that carry weights or change the shape. */
        if (!all && li.params == 0 && strcmp(li.op, "input") && strcmp(li.op, "maxpool") &&
            strcmp(li.op, "avgpool") && strcmp(li.op, "global_avgpool") && strcmp(li.op, "concat") &&
            strcmp(li.op, "add"))
            continue;
        char shape[48], p[24], m[24], sp[24], flags[32] = "";
        snprintf(shape, sizeof shape, "%dx%dx%d", li.out_c, li.out_h, li.out_w);
        pare_format_count((double)li.params, p, sizeof p);
        human(li.macs, m, sizeof m);
        if (li.weights)
            snprintf(sp, sizeof sp, "%.1f%%", 100.0 * (double)li.zeros / (double)li.weights);
        else
            snprintf(sp, sizeof sp, "-");
        if (li.frozen)
            strcat(flags, "frozen ");
        if (li.masked)
            strcat(flags, "masked");
        const char *sch = scheme_of(g, i);
        char qt[64];
        quant_of(g, i, qt, sizeof qt);
        pare_table_rowf(tb, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", li.name, li.op, shape, li.params ? p : "-",
                        li.macs > 0 ? m : "-", sp, sch ? sch : (li.weights ? "dense" : ""),
                        qt[0] ? qt : (li.weights ? "float" : ""), flags);
    }
    int c, h, w, oc, oh, ow;
    pare_graph_input_shape(g, &c, &h, &w);
    pare_graph_output_shape(g, &oc, &oh, &ow);
    if (j) {
        pare_json_end_array(j);
        pare_json_kv_int(j, "params", params);
        pare_json_kv_double(j, "macs", macs);
        pare_json_kv_int(j, "weights", weights);
        pare_json_kv_double(j, "sparsity", weights ? (double)zeros / (double)weights : 0);
        pare_json_kv_int(j, "file_bytes", fsize);
        pare_json_end_object(j);
        pare_json_free(j);
    } else {
        char p[24], m[24], sp[24];
        pare_format_count((double)params, p, sizeof p);
        human(macs, m, sizeof m);
        snprintf(sp, sizeof sp, "%.1f%%", weights ? 100.0 * (double)zeros / (double)weights : 0.0);
        pare_table_separator(tb);
        pare_table_rowf(tb, "total\t%d layers\t\t%s\t%s\t%s\t\t\t", n, p, m, sp);
        printf("model %s: input %dx%dx%d, output %dx%dx%d", pare_graph_name(g), c, h, w, oc, oh, ow);
        if (fsize >= 0)
            printf(", file %.2f MB", (double)fsize / 1e6);
        printf("\n\n");
        pare_table_print(tb, stdout);
        pare_table_free(tb);
    }
    pare_graph_free(g);
    return 0;
}
