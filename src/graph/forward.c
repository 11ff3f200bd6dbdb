/* Inference through the training-side executor (the compiled engine is faster;
 * this is the reference path every other path is compared with). */
#include <string.h>

#include "core/error.h"
#include "graph/exec.h"
#include "graph/graph.h"

pare_status pare_graph_forward(pare_graph *g, const float *in, int n, float *out, int threads)
{
    if (!g || !in || !out || n < 0)
        return pare_fail(PARE_EINVAL, "pare_graph_forward needs a graph, input, output and n >= 0");
    if (g->err)
        return g->err;
    if (n == 0)
        return PARE_OK;
    int chunk = n < 64 ? n : 64;
    pare_exec *e;
    pare_status s = pare_exec_new(g, chunk, 0, threads, &e);
    if (s != PARE_OK)
        return s;
    size_t isz = pare_shape_size(g->nodes[0].out), osz = pare_shape_size(g->nodes[g->output].out);
    for (int b = 0; b < n; b += chunk) {
        int m = n - b < chunk ? n - b : chunk;
        memcpy(pare_exec_input(e), in + (size_t)b * isz, sizeof(float) * isz * (size_t)m);
        pare_exec_forward(e, m, 0);
        memcpy(out + (size_t)b * osz, pare_exec_output(e), sizeof(float) * osz * (size_t)m);
    }
    pare_exec_free(e);
    return PARE_OK;
}
