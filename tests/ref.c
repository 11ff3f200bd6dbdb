/* Naive double references: the most direct loops of each op's definition. */
#include "ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void ref_conv(const pare_node *nd, pare_shape in, int n, const double *x, const double *w,
                     const double *b, double *y)
{
    const pare_attrs *a = &nd->a;
    int O = nd->out.c, OH = nd->out.h, OW = nd->out.w;
    int G = a->groups, Cg = in.c / G, Og = O / G;
    for (int s = 0; s < n; s++)
        for (int o = 0; o < O; o++) {
            int g = o / Og;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < Cg; c++)
                        for (int i = 0; i < a->kernel[0]; i++)
                            for (int j = 0; j < a->kernel[1]; j++) {
                                int ih = oh * a->stride[0] - a->pad[0] + i * a->dilation[0];
                                int iw = ow * a->stride[1] - a->pad[1] + j * a->dilation[1];
                                if (ih < 0 || ih >= in.h || iw < 0 || iw >= in.w)
                                    continue;
                                double xv = x[(((long)s * in.c + g * Cg + c) * in.h + ih) * in.w + iw];
                                double wv = w[(((long)o * Cg + c) * a->kernel[0] + i) * a->kernel[1] + j];
                                acc += xv * wv;
                            }
                    y[(((long)s * O + o) * OH + oh) * OW + ow] = acc;
                }
        }
}

static void ref_pool(const pare_node *nd, pare_shape in, int n, const double *x, double *y)
{
    const pare_attrs *a = &nd->a;
    int OH = nd->out.h, OW = nd->out.w;
    int is_max = nd->op == PARE_OP_MAXPOOL;
    for (long p = 0; p < (long)n * in.c; p++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int hs = oh * a->stride[0] - a->pad[0], ws = ow * a->stride[1] - a->pad[1];
                int he = hs + a->kernel[0], we = ws + a->kernel[1];
                /* PyTorch: windows stop at the padded edge; padding counts toward the divisor. */
                int hep = he < in.h + a->pad[2] ? he : in.h + a->pad[2];
                int wep = we < in.w + a->pad[3] ? we : in.w + a->pad[3];
                double best = -DBL_MAX, sum = 0;
                int cnt = 0;
                for (int i = 0; i < a->kernel[0]; i++)
                    for (int j = 0; j < a->kernel[1]; j++) {
                        int h = hs + i * a->dilation[0], w = ws + j * a->dilation[1];
                        if (h < 0 || h >= in.h || w < 0 || w >= in.w)
                            continue;
                        double v = x[(p * in.h + h) * in.w + w];
                        if (v > best)
                            best = v;
                        sum += v;
                        cnt++;
                    }
                double div = a->count_include_pad ? (double)(hep - hs) * (wep - ws) : cnt;
                y[(p * OH + oh) * OW + ow] = is_max ? best : sum / div;
            }
}

static void ref_bn(const pare_node *nd, pare_shape in, int n, int training, const double *x,
                   const double *const *w, double *y)
{
    long hw = (long)in.h * in.w;
    for (int c = 0; c < in.c; c++) {
        double mean, var;
        if (training) {
            double s = 0, q = 0;
            for (int b = 0; b < n; b++)
                for (long i = 0; i < hw; i++)
                    s += x[((long)b * in.c + c) * hw + i];
            mean = s / ((double)n * hw);
            for (int b = 0; b < n; b++)
                for (long i = 0; i < hw; i++) {
                    double d = x[((long)b * in.c + c) * hw + i] - mean;
                    q += d * d;
                }
            var = q / ((double)n * hw);
        } else {
            mean = w[2][c];
            var = w[3][c];
        }
        double inv = 1.0 / sqrt(var + nd->a.eps);
        for (int b = 0; b < n; b++)
            for (long i = 0; i < hw; i++) {
                long k = ((long)b * in.c + c) * hw + i;
                y[k] = (x[k] - mean) * inv * w[0][c] + w[1][c];
            }
    }
}

/* Element (c, y, x) of sample s of a c x h x w tensor. */
static size_t at3(pare_shape t, int s, int c, int y, int x)
{
    return (((size_t)s * (size_t)t.c + (size_t)c) * (size_t)t.h + (size_t)y) * (size_t)t.w + (size_t)x;
}

/* a (+ or *) b, where b's axes of size 1 repeat over a's. */
static void ref_binary(pare_shape a, pare_shape b, int n, int mul, const double *xa, const double *xb,
                       double *y)
{
    for (int s = 0; s < n; s++)
        for (int c = 0; c < a.c; c++)
            for (int h = 0; h < a.h; h++)
                for (int w = 0; w < a.w; w++) {
                    double u = xa[at3(a, s, c, h, w)];
                    double v = xb[at3(b, s, b.c == 1 ? 0 : c, b.h == 1 ? 0 : h, b.w == 1 ? 0 : w)];
                    y[at3(a, s, c, h, w)] = mul ? u * v : u + v;
                }
}

/* Softmax by its definition: each value over the values that share its
 * coordinates on the axes outside the softmax (mode 0: every axis but `axis`;
 * mode 1: the axes before it). */
static void ref_softmax(const pare_node *nd, pare_shape t, int n, const double *x, double *y)
{
    int axis = nd->a.axis, mode = nd->a.mode;
    for (int s = 0; s < n; s++)
        for (int c = 0; c < t.c; c++)
            for (int h = 0; h < t.h; h++)
                for (int w = 0; w < t.w; w++) {
                    int e[3] = {c, h, w};
                    double m = -INFINITY, sum = 0;
                    for (int pass = 0; pass < 2; pass++)
                        for (int c2 = 0; c2 < t.c; c2++)
                            for (int h2 = 0; h2 < t.h; h2++)
                                for (int w2 = 0; w2 < t.w; w2++) {
                                    int f[3] = {c2, h2, w2}, same = 1;
                                    for (int k = 0; k < 3; k++) {
                                        int inside = mode == 1 ? k >= axis : k == axis;
                                        if (!inside && f[k] != e[k])
                                            same = 0;
                                    }
                                    if (!same)
                                        continue;
                                    double v = x[at3(t, s, c2, h2, w2)];
                                    if (pass == 0)
                                        m = v > m ? v : m;
                                    else
                                        sum += exp(v - m);
                                }
                    y[at3(t, s, c, h, w)] = exp(x[at3(t, s, c, h, w)] - m) / sum;
                }
}

/* numpy.pad's index rules along one axis; -1 for the constant. */
static int ref_pad_index(int o, int lo, int len, int mode)
{
    int i = o - lo;
    if (i >= 0 && i < len)
        return i;
    if (mode == 0)
        return -1;
    if (mode == 2)
        return i < 0 ? 0 : len - 1;
    if (i < 0)
        return -i;
    return (len - 1) - (i - (len - 1));
}

void ref_forward(const pare_graph *g, int node, int n, int training, const double *const *x,
                 const double *const *w, const uint8_t *keep, double *y)
{
    const pare_node *nd = &g->nodes[node];
    pare_shape in = nd->n_in ? g->nodes[nd->in[0]].out : nd->out;
    size_t osz = pare_shape_size(nd->out) * (size_t)n;
    switch (nd->op) {
    case PARE_OP_INPUT:
        break;
    case PARE_OP_CONV2D:
        ref_conv(nd, in, n, x[0], w[0], nd->n_param > 1 ? w[1] : NULL, y);
        break;
    case PARE_OP_LINEAR: {
        size_t I = pare_shape_size(in);
        int O = nd->out.c;
        for (int s = 0; s < n; s++)
            for (int o = 0; o < O; o++) {
                double acc = nd->n_param > 1 ? w[1][o] : 0.0;
                for (size_t i = 0; i < I; i++)
                    acc += w[0][(size_t)o * I + i] * x[0][(size_t)s * I + i];
                y[(size_t)s * O + o] = acc;
            }
        break;
    }
    case PARE_OP_RELU:
        for (size_t i = 0; i < osz; i++)
            y[i] = x[0][i] > 0 ? x[0][i] : 0;
        break;
    case PARE_OP_RELU6:
        for (size_t i = 0; i < osz; i++)
            y[i] = x[0][i] < 0 ? 0 : x[0][i] > 6 ? 6 : x[0][i];
        break;
    case PARE_OP_MAXPOOL:
    case PARE_OP_AVGPOOL:
        ref_pool(nd, in, n, x[0], y);
        break;
    case PARE_OP_GLOBAL_AVGPOOL: {
        long hw = (long)in.h * in.w;
        for (long p = 0; p < (long)n * in.c; p++) {
            double s = 0;
            for (long i = 0; i < hw; i++)
                s += x[0][p * hw + i];
            y[p] = s / hw;
        }
        break;
    }
    case PARE_OP_BATCHNORM:
        ref_bn(nd, in, n, training && !g->params[nd->param[0]].frozen, x[0], w, y);
        break;
    case PARE_OP_ADD:
    case PARE_OP_MUL:
        ref_binary(in, g->nodes[nd->in[1]].out, n, nd->op == PARE_OP_MUL, x[0], x[1], y);
        break;
    case PARE_OP_CONCAT: {
        size_t per = pare_shape_size(nd->out), off = 0;
        for (int j = 0; j < nd->n_in; j++) {
            size_t len = pare_shape_size(g->nodes[nd->in[j]].out);
            for (int s = 0; s < n; s++)
                memcpy(y + (size_t)s * per + off, x[j] + (size_t)s * len, len * sizeof(double));
            off += len;
        }
        break;
    }
    case PARE_OP_FLATTEN:
        memcpy(y, x[0], osz * sizeof(double));
        break;
    case PARE_OP_DROPOUT: {
        double scale = 1.0 / (1.0 - nd->a.p);
        for (size_t i = 0; i < osz; i++)
            y[i] = (training && keep) ? (keep[i] ? x[0][i] * scale : 0.0) : x[0][i];
        break;
    }
    case PARE_OP_SIGMOID:
        for (size_t i = 0; i < osz; i++)
            y[i] = 1.0 / (1.0 + exp(-x[0][i]));
        break;
    case PARE_OP_HARDSIGMOID:
        for (size_t i = 0; i < osz; i++)
            y[i] = fmax(0.0, fmin(1.0, nd->a.alpha * x[0][i] + nd->a.beta));
        break;
    case PARE_OP_HARDSWISH:
        for (size_t i = 0; i < osz; i++)
            y[i] = x[0][i] * fmax(0.0, fmin(1.0, x[0][i] / 6.0 + 0.5));
        break;
    case PARE_OP_LEAKYRELU:
        for (size_t i = 0; i < osz; i++)
            y[i] = x[0][i] >= 0 ? x[0][i] : nd->a.alpha * x[0][i];
        break;
    case PARE_OP_CLIP:
        for (size_t i = 0; i < osz; i++)
            y[i] = fmin(fmax(x[0][i], nd->a.alpha), nd->a.beta);
        break;
    case PARE_OP_SOFTMAX:
        ref_softmax(nd, in, n, x[0], y);
        break;
    case PARE_OP_CHANNEL_SHUFFLE: {
        int gr = nd->a.groups, k = in.c / gr;
        for (int s = 0; s < n; s++)
            for (int i = 0; i < gr; i++)
                for (int j = 0; j < k; j++)
                    for (int h = 0; h < in.h; h++)
                        for (int q = 0; q < in.w; q++)
                            y[at3(in, s, j * gr + i, h, q)] = x[0][at3(in, s, i * k + j, h, q)];
        break;
    }
    case PARE_OP_PAD: {
        pare_shape o = nd->out;
        for (int s = 0; s < n; s++)
            for (int c = 0; c < o.c; c++)
                for (int h = 0; h < o.h; h++)
                    for (int q = 0; q < o.w; q++) {
                        int sh = ref_pad_index(h, nd->a.pad[0], in.h, nd->a.mode);
                        int sw = ref_pad_index(q, nd->a.pad[1], in.w, nd->a.mode);
                        double v = sh < 0 || sw < 0 ? nd->a.alpha : x[0][at3(in, s, c, sh, sw)];
                        y[at3(o, s, c, h, q)] = v;
                    }
        break;
    }
    case PARE_OP_CONST: {
        size_t per = pare_shape_size(nd->out);
        for (int s = 0; s < n; s++)
            for (size_t i = 0; i < per; i++)
                y[(size_t)s * per + i] = w[0][i];
        break;
    }
    case PARE_OP_RESHAPE:
        memcpy(y, x[0], osz * sizeof(double));
        break;
    case PARE_OP_TRANSPOSE:
        for (int s = 0; s < n; s++)
            for (int c = 0; c < in.c; c++)
                for (int h = 0; h < in.h; h++)
                    for (int q = 0; q < in.w; q++) {
                        int e[3] = {c, h, q};
                        const int *p = nd->a.perm;
                        y[at3(nd->out, s, e[p[0]], e[p[1]], e[p[2]])] = x[0][at3(in, s, c, h, q)];
                    }
        break;
    default:
        break;
    }
}

double **ref_params_new(const pare_graph *g)
{
    double **w = calloc((size_t)g->n_params + 1, sizeof(double *));
    for (int i = 0; i < g->n_params; i++) {
        const pare_tensor *t = g->params[i].t;
        w[i] = malloc(sizeof(double) * t->n);
        for (size_t k = 0; k < t->n; k++)
            w[i][k] = t->data[k];
    }
    return w;
}

void ref_params_free(const pare_graph *g, double **w)
{
    for (int i = 0; i < g->n_params; i++)
        free(w[i]);
    free(w);
}

void ref_graph_forward(const pare_graph *g, int n, int training, double **values,
                       double *const *w)
{
    for (int v = 1; v < g->n_nodes; v++) {
        const pare_node *nd = &g->nodes[v];
        const double *xs[16];
        const double *ws[4];
        for (int j = 0; j < nd->n_in && j < 16; j++)
            xs[j] = values[nd->in[j]];
        for (int k = 0; k < nd->n_param; k++)
            ws[k] = w[nd->param[k]];
        ref_forward(g, v, n, training, xs, ws, NULL, values[v]);
    }
}
