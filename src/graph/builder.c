/* The public builder API: turns friendly calls into IR nodes. */
#include <string.h>

#include "core/error.h"
#include "graph/graph.h"
#include "graph/op.h"

static pare_attrs attrs0(void)
{
    pare_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.groups = 1;
    return a;
}

static int one(pare_graph *g, pare_op_type op, int x, const pare_attrs *a, const char *name)
{
    return pare_graph_add_node(g, op, &x, 1, a, name);
}

int pare_graph_input(pare_graph *g, int channels, int height, int width)
{
    if (!g)
        return -1;
    if (g->err)
        return -1;
    if (g->n_nodes > 0) {
        g->err = pare_fail(PARE_EINVAL, "a graph has one input and it must come first");
        return -1;
    }
    pare_attrs a = attrs0();
    /* The input's shape travels in its attributes: out_channels x kernel. */
    a.out_channels = channels;
    a.kernel[0] = height;
    a.kernel[1] = width;
    return pare_graph_add_node(g, PARE_OP_INPUT, NULL, 0, &a, "input");
}

int pare_graph_conv2d_ex(pare_graph *g, int x, const pare_conv2d_desc *d, const char *name)
{
    if (!g || !d)
        return -1;
    pare_attrs a = attrs0();
    a.out_channels = d->out_channels;
    a.kernel[0] = d->kernel_h;
    a.kernel[1] = d->kernel_w ? d->kernel_w : d->kernel_h;
    a.stride[0] = d->stride_h ? d->stride_h : 1;
    a.stride[1] = d->stride_w ? d->stride_w : a.stride[0];
    a.pad[0] = d->pad_top;
    a.pad[1] = d->pad_left;
    a.pad[2] = d->pad_bottom;
    a.pad[3] = d->pad_right;
    a.dilation[0] = d->dilation_h ? d->dilation_h : 1;
    a.dilation[1] = d->dilation_w ? d->dilation_w : a.dilation[0];
    a.groups = d->groups ? d->groups : 1;
    a.bias = !d->no_bias;
    return one(g, PARE_OP_CONV2D, x, &a, name);
}

int pare_graph_conv2d(pare_graph *g, int x, int out_channels, int kernel, int stride, int pad,
                      const char *name)
{
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = out_channels;
    d.kernel_h = kernel;
    d.stride_h = stride;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
    return pare_graph_conv2d_ex(g, x, &d, name);
}

int pare_graph_linear(pare_graph *g, int x, int out_features, int bias, const char *name)
{
    pare_attrs a = attrs0();
    a.out_channels = out_features;
    a.bias = bias != 0;
    return one(g, PARE_OP_LINEAR, x, &a, name);
}

int pare_graph_relu(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_RELU, x, &a, name);
}

int pare_graph_relu6(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_RELU6, x, &a, name);
}

static int pool(pare_graph *g, pare_op_type op, int x, int kernel, int stride, int pad,
                const char *name)
{
    pare_attrs a = attrs0();
    a.kernel[0] = a.kernel[1] = kernel;
    a.stride[0] = a.stride[1] = stride > 0 ? stride : kernel;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = pad;
    a.count_include_pad = 1;
    return one(g, op, x, &a, name);
}

int pare_graph_maxpool(pare_graph *g, int x, int kernel, int stride, int pad, const char *name)
{
    return pool(g, PARE_OP_MAXPOOL, x, kernel, stride, pad, name);
}

int pare_graph_avgpool(pare_graph *g, int x, int kernel, int stride, int pad, const char *name)
{
    return pool(g, PARE_OP_AVGPOOL, x, kernel, stride, pad, name);
}

int pare_graph_global_avgpool(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_GLOBAL_AVGPOOL, x, &a, name);
}

int pare_graph_batchnorm_ex(pare_graph *g, int x, float eps, float momentum, const char *name)
{
    pare_attrs a = attrs0();
    a.eps = eps;
    a.momentum = momentum;
    return one(g, PARE_OP_BATCHNORM, x, &a, name);
}

int pare_graph_batchnorm(pare_graph *g, int x, const char *name)
{
    return pare_graph_batchnorm_ex(g, x, 1e-5f, 0.1f, name);
}

int pare_graph_add(pare_graph *g, int a_, int b, const char *name)
{
    pare_attrs a = attrs0();
    int in[2] = {a_, b};
    return pare_graph_add_node(g, PARE_OP_ADD, in, 2, &a, name);
}

int pare_graph_concat(pare_graph *g, const int *xs, int n, const char *name)
{
    pare_attrs a = attrs0();
    if (!g)
        return -1;
    if (!xs || n < 1) {
        if (!g->err)
            g->err = pare_fail(PARE_EINVAL, "concat needs at least one input");
        return -1;
    }
    return pare_graph_add_node(g, PARE_OP_CONCAT, xs, n, &a, name);
}

int pare_graph_flatten(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_FLATTEN, x, &a, name);
}

int pare_graph_dropout(pare_graph *g, int x, float p, const char *name)
{
    pare_attrs a = attrs0();
    a.p = p;
    return one(g, PARE_OP_DROPOUT, x, &a, name);
}

int pare_graph_sigmoid(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_SIGMOID, x, &a, name);
}

int pare_graph_hardsigmoid(pare_graph *g, int x, float alpha, float beta, const char *name)
{
    pare_attrs a = attrs0();
    a.alpha = alpha;
    a.beta = beta;
    return one(g, PARE_OP_HARDSIGMOID, x, &a, name);
}

int pare_graph_hardswish(pare_graph *g, int x, const char *name)
{
    pare_attrs a = attrs0();
    return one(g, PARE_OP_HARDSWISH, x, &a, name);
}

int pare_graph_leakyrelu(pare_graph *g, int x, float alpha, const char *name)
{
    pare_attrs a = attrs0();
    a.alpha = alpha;
    return one(g, PARE_OP_LEAKYRELU, x, &a, name);
}

int pare_graph_clip(pare_graph *g, int x, float lo, float hi, const char *name)
{
    pare_attrs a = attrs0();
    a.alpha = lo;
    a.beta = hi;
    return one(g, PARE_OP_CLIP, x, &a, name);
}

int pare_graph_mul(pare_graph *g, int a_, int b, const char *name)
{
    pare_attrs a = attrs0();
    int in[2] = {a_, b};
    return pare_graph_add_node(g, PARE_OP_MUL, in, 2, &a, name);
}

int pare_graph_softmax(pare_graph *g, int x, int axis, int mode, const char *name)
{
    pare_attrs a = attrs0();
    a.axis = axis;
    a.mode = mode;
    return one(g, PARE_OP_SOFTMAX, x, &a, name);
}

int pare_graph_channel_shuffle(pare_graph *g, int x, int groups, const char *name)
{
    pare_attrs a = attrs0();
    a.groups = groups;
    return one(g, PARE_OP_CHANNEL_SHUFFLE, x, &a, name);
}

int pare_graph_pad(pare_graph *g, int x, const int pads[4], int mode, float value, const char *name)
{
    if (!g)
        return -1;
    if (!pads) {
        if (!g->err)
            g->err = pare_fail(PARE_EINVAL, "pad %s needs its four pads", name ? name : "");
        return -1;
    }
    pare_attrs a = attrs0();
    memcpy(a.pad, pads, sizeof a.pad);
    a.mode = mode;
    a.alpha = value;
    return one(g, PARE_OP_PAD, x, &a, name);
}

int pare_graph_const(pare_graph *g, int c, int h, int w, const char *name)
{
    if (!g)
        return -1;
    /* pare_graph_input refuses to follow any layer, so a const first would
     * leave the graph without its input. */
    if (!g->err && g->n_nodes == 0)
        g->err = pare_fail(PARE_EINVAL, "const %s: the graph's input must come first",
                           name ? name : "");
    pare_attrs a = attrs0();
    a.shape[0] = c;
    a.shape[1] = h;
    a.shape[2] = w;
    return pare_graph_add_node(g, PARE_OP_CONST, NULL, 0, &a, name);
}

int pare_graph_reshape(pare_graph *g, int x, int c, int h, int w, const char *name)
{
    pare_attrs a = attrs0();
    a.shape[0] = c;
    a.shape[1] = h;
    a.shape[2] = w;
    return one(g, PARE_OP_RESHAPE, x, &a, name);
}

int pare_graph_fakequant(pare_graph *g, int x, float scale, int zero_point, int bits,
                         const char *name)
{
    pare_attrs a = attrs0();
    a.alpha = scale;
    a.beta = (float)zero_point;
    a.mode = bits;
    return one(g, PARE_OP_FAKEQUANT, x, &a, name);
}

int pare_graph_transpose(pare_graph *g, int x, const int perm[3], const char *name)
{
    if (!g)
        return -1;
    if (!perm) {
        if (!g->err)
            g->err = pare_fail(PARE_EINVAL, "transpose %s needs its permutation", name ? name : "");
        return -1;
    }
    pare_attrs a = attrs0();
    memcpy(a.perm, perm, sizeof a.perm);
    return one(g, PARE_OP_TRANSPOSE, x, &a, name);
}

float *pare_graph_param_data(pare_graph *g, const char *name, size_t *n)
{
    if (n)
        *n = 0;
    if (!g || !name) {
        pare_fail(PARE_EINVAL, "pare_graph_param_data needs a graph and a parameter name");
        return NULL;
    }
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->params[i].name, name)) {
            if (n)
                *n = g->params[i].t->n;
            return g->params[i].t->data;
        }
    pare_fail(PARE_ENOTFOUND, "graph %s has no parameter named '%s'", g->name, name);
    return NULL;
}

pare_status pare_graph_init_params_as(pare_graph *g, uint64_t seed, pare_init_scheme scheme)
{
    if (!g)
        return pare_fail(PARE_EINVAL, "no graph");
    if (g->err)
        return g->err;
    if ((int)scheme < PARE_INIT_DEFAULT || scheme > PARE_INIT_XAVIER_UNIFORM)
        return pare_fail(PARE_EINVAL, "initialisation scheme %d is not one of pare_init_scheme's", (int)scheme);
    for (int i = 0; i < g->n_nodes; i++) {
        const pare_op_def *def = pare_op_get(g->nodes[i].op);
        if (def->init)
            def->init(g, i, seed, (int)scheme);
    }
    return PARE_OK;
}

pare_status pare_graph_init_params(pare_graph *g, uint64_t seed)
{
    return pare_graph_init_params_as(g, seed, PARE_INIT_DEFAULT);
}

void pare_graph_input_shape(const pare_graph *g, int *c, int *h, int *w)
{
    pare_shape s = {0, 0, 0};
    if (g && g->n_nodes > 0)
        s = g->nodes[0].out;
    if (c)
        *c = s.c;
    if (h)
        *h = s.h;
    if (w)
        *w = s.w;
}

void pare_graph_output_shape(const pare_graph *g, int *c, int *h, int *w)
{
    pare_shape s = {0, 0, 0};
    if (g && g->output >= 0)
        s = g->nodes[g->output].out;
    if (c)
        *c = s.c;
    if (h)
        *h = s.h;
    if (w)
        *w = s.w;
}

int pare_graph_layer_count(const pare_graph *g) { return g ? g->n_nodes : 0; }

pare_status pare_graph_layer_info(const pare_graph *g, int i, pare_layer_info *out)
{
    if (!g || i < 0 || i >= g->n_nodes)
        return pare_fail(PARE_EINVAL, "layer %d does not exist", i);
    const pare_node *n = &g->nodes[i];
    const pare_op_def *def = pare_op_get(n->op);
    memset(out, 0, sizeof *out);
    out->name = n->name;
    out->op = def->name;
    out->out_c = n->out.c;
    out->out_h = n->out.h;
    out->out_w = n->out.w;
    out->macs = def->macs ? def->macs(g, n) : 0;
    for (int j = 0; j < n->n_param; j++) {
        const pare_param *p = &g->params[n->param[j]];
        if (p->trainable)
            out->params += (long long)p->t->n;
        if (p->frozen)
            out->frozen = 1;
        /* A const's values are a weight tensor too, but not a layer's weights. */
        if (p->role == PARE_ROLE_WEIGHT && (n->op == PARE_OP_CONV2D || n->op == PARE_OP_LINEAR)) {
            out->weights = (long long)p->t->n;
            out->masked = p->mask != NULL;
            for (size_t k = 0; k < p->t->n; k++)
                if (p->t->data[k] == 0.0f || (p->mask && !p->mask[k]))
                    out->zeros++;
        }
    }
    return PARE_OK;
}
