/* Helpers every op's shape inference uses, and questions asked of any op. */
#include "graph/op.h"

#include "core/error.h"

pare_status pare_op_check_inputs(const pare_graph *g, const pare_node *n)
{
    const pare_op_def *def = pare_op_get(n->op);
    if (n->n_in < def->min_in || (def->max_in >= 0 && n->n_in > def->max_in))
        return pare_fail(PARE_EINVAL, "takes %d%s input%s, got %d", def->min_in,
                         def->max_in == def->min_in ? "" : " or more", def->min_in == 1 ? "" : "s",
                         n->n_in);
    for (int i = 0; i < n->n_in; i++) {
        pare_shape s = g->nodes[n->in[i]].out;
        if (s.c <= 0 || s.h <= 0 || s.w <= 0)
            return pare_fail(PARE_ESHAPE, "input %d has an empty shape", i);
    }
    return PARE_OK;
}

int pare_window_out(int in, int k, int stride, int pad_lo, int pad_hi, int dilation, int ceil_mode)
{
    if (k <= 0 || stride <= 0 || dilation <= 0 || pad_lo < 0 || pad_hi < 0)
        return -1;
    long span = (long)dilation * (k - 1) + 1;
    long room = (long)in + pad_lo + pad_hi - span;
    if (room < 0)
        return -1;
    long out = room / stride + 1;
    if (ceil_mode && room % stride != 0) {
        out++;
        /* PyTorch: the last window must start inside the input or left padding. */
        if ((out - 1) * stride >= (long)in + pad_lo)
            out--;
    }
    return out > 0x7fffffff ? -1 : (int)out;
}

int pare_op_sparse_path(const pare_graph *g, int node)
{
    if (!g || node < 0 || node >= g->n_nodes)
        return 0;
    const pare_op_def *def = pare_op_get(g->nodes[node].op);
    return def && def->sparse_path ? def->sparse_path(g, &g->nodes[node]) : 0;
}
