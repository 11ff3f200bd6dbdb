/* The model zoo, built with the public builder API only. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "graph/graph.h"

static const char *const zoo_names[] = {"lenet",    "fmnist-cnn", "resnet20",        "vgg11-bn",
                                        "mobilenetv2", "resnet18", "vgg16", "mobilenetv2-224",
                                        NULL};

const char *const *pare_zoo_names(void) { return zoo_names; }

static int cbr(pare_graph *g, int x, int out, int k, int stride, int pad, int groups, int bias,
               int act, const char *prefix)
{
    pare_conv2d_desc d;
    memset(&d, 0, sizeof d);
    d.out_channels = out;
    d.kernel_h = k;
    d.stride_h = stride;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
    d.groups = groups;
    d.no_bias = !bias;
    char n1[80], n2[80], n3[80];
    snprintf(n1, sizeof n1, "%s.conv", prefix);
    snprintf(n2, sizeof n2, "%s.bn", prefix);
    snprintf(n3, sizeof n3, "%s.relu", prefix);
    x = pare_graph_conv2d_ex(g, x, &d, n1);
    x = pare_graph_batchnorm(g, x, n2);
    if (act == 1)
        x = pare_graph_relu(g, x, n3);
    else if (act == 6)
        x = pare_graph_relu6(g, x, n3);
    return x;
}

static void build_lenet(pare_graph *g, int classes)
{
    int x = pare_graph_input(g, 1, 28, 28);
    x = pare_graph_conv2d(g, x, 6, 5, 1, 2, "conv1");
    x = pare_graph_relu(g, x, "relu1");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "pool1");
    x = pare_graph_conv2d(g, x, 16, 5, 1, 0, "conv2");
    x = pare_graph_relu(g, x, "relu2");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "pool2");
    x = pare_graph_flatten(g, x, "flatten");
    x = pare_graph_linear(g, x, 120, 1, "fc1");
    x = pare_graph_relu(g, x, "relu3");
    x = pare_graph_linear(g, x, 84, 1, "fc2");
    x = pare_graph_relu(g, x, "relu4");
    pare_graph_linear(g, x, classes, 1, "fc3");
}

static void build_fmnist_cnn(pare_graph *g, int classes)
{
    int x = pare_graph_input(g, 1, 28, 28);
    x = cbr(g, x, 32, 3, 1, 1, 1, 1, 1, "block1");
    x = cbr(g, x, 32, 3, 1, 1, 1, 1, 1, "block2");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "pool1");
    x = cbr(g, x, 64, 3, 1, 1, 1, 1, 1, "block3");
    x = cbr(g, x, 64, 3, 1, 1, 1, 1, 1, "block4");
    x = pare_graph_maxpool(g, x, 2, 2, 0, "pool2");
    x = pare_graph_flatten(g, x, "flatten");
    x = pare_graph_linear(g, x, 256, 1, "fc1");
    x = pare_graph_relu(g, x, "fc1.relu");
    pare_graph_linear(g, x, classes, 1, "fc2");
}

/* A basic residual block; a 1x1 projection when the shape changes. */
static int basic_block(pare_graph *g, int x, int in, int out, int stride, const char *p)
{
    char a[64], b[64], sc[64], add[64], relu[64];
    snprintf(a, sizeof a, "%s.a", p);
    snprintf(b, sizeof b, "%s.b", p);
    snprintf(sc, sizeof sc, "%s.down", p);
    snprintf(add, sizeof add, "%s.add", p);
    snprintf(relu, sizeof relu, "%s.relu", p);
    int y = cbr(g, x, out, 3, stride, 1, 1, 0, 1, a);
    y = cbr(g, y, out, 3, 1, 1, 1, 0, 0, b);
    int s = x;
    if (stride != 1 || in != out)
        s = cbr(g, x, out, 1, stride, 0, 1, 0, 0, sc);
    y = pare_graph_add(g, y, s, add);
    return pare_graph_relu(g, y, relu);
}

static void build_resnet20(pare_graph *g, int classes)
{
    int x = pare_graph_input(g, 3, 32, 32);
    x = cbr(g, x, 16, 3, 1, 1, 1, 0, 1, "stem");
    int in = 16;
    for (int s = 0; s < 3; s++) {
        int out = 16 << s;
        for (int b = 0; b < 3; b++) {
            char p[32];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, b);
            x = basic_block(g, x, in, out, (s > 0 && b == 0) ? 2 : 1, p);
            in = out;
        }
    }
    x = pare_graph_global_avgpool(g, x, "pool");
    x = pare_graph_flatten(g, x, "flatten");
    pare_graph_linear(g, x, classes, 1, "fc");
}

static void build_resnet18(pare_graph *g, int classes)
{
    int x = pare_graph_input(g, 3, 224, 224);
    x = cbr(g, x, 64, 7, 2, 3, 1, 0, 1, "stem");
    x = pare_graph_maxpool(g, x, 3, 2, 1, "stem.pool");
    int in = 64;
    for (int s = 0; s < 4; s++) {
        int out = 64 << s;
        for (int b = 0; b < 2; b++) {
            char p[32];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, b);
            x = basic_block(g, x, in, out, (s > 0 && b == 0) ? 2 : 1, p);
            in = out;
        }
    }
    x = pare_graph_global_avgpool(g, x, "pool");
    x = pare_graph_flatten(g, x, "flatten");
    pare_graph_linear(g, x, classes, 1, "fc");
}

static void build_vgg(pare_graph *g, int classes, const int *cfg, int bn, int imagenet)
{
    int x = imagenet ? pare_graph_input(g, 3, 224, 224) : pare_graph_input(g, 3, 32, 32);
    int conv = 0, pool = 0;
    char a[32], b[32];
    for (int i = 0; cfg[i]; i++) {
        if (cfg[i] < 0) {
            snprintf(a, sizeof a, "pool%d", ++pool);
            x = pare_graph_maxpool(g, x, 2, 2, 0, a);
            continue;
        }
        conv++;
        snprintf(a, sizeof a, "block%d", conv);
        if (bn) {
            x = cbr(g, x, cfg[i], 3, 1, 1, 1, 1, 1, a);
        } else {
            snprintf(a, sizeof a, "block%d.conv", conv);
            snprintf(b, sizeof b, "block%d.relu", conv);
            x = pare_graph_conv2d(g, x, cfg[i], 3, 1, 1, a);
            x = pare_graph_relu(g, x, b);
        }
    }
    x = pare_graph_flatten(g, x, "flatten");
    if (imagenet) {
        x = pare_graph_linear(g, x, 4096, 1, "fc1");
        x = pare_graph_relu(g, x, "fc1.relu");
        x = pare_graph_dropout(g, x, 0.5f, "fc1.drop");
        x = pare_graph_linear(g, x, 4096, 1, "fc2");
        x = pare_graph_relu(g, x, "fc2.relu");
        x = pare_graph_dropout(g, x, 0.5f, "fc2.drop");
        pare_graph_linear(g, x, classes, 1, "fc3");
    } else {
        pare_graph_linear(g, x, classes, 1, "fc");
    }
}

static void build_mobilenetv2(pare_graph *g, int classes, int imagenet)
{
    /* (expansion, channels, repeats, stride); CIFAR keeps the stem and the
     * second stage at stride 1 so a 32x32 input ends at 4x4. */
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int x = imagenet ? pare_graph_input(g, 3, 224, 224) : pare_graph_input(g, 3, 32, 32);
    x = cbr(g, x, 32, 3, imagenet ? 2 : 1, 1, 1, 0, 6, "stem");
    int in = 32, blk = 0;
    for (int s = 0; s < 7; s++) {
        int t = cfg[s][0], out = cfg[s][1], stride = cfg[s][3];
        if (!imagenet && s == 1)
            stride = 1;
        for (int r = 0; r < cfg[s][2]; r++) {
            int st = r == 0 ? stride : 1, hidden = in * t;
            char p[32];
            snprintf(p, sizeof p, "block%d", blk++);
            int y = x;
            char exn[48], dwn[48], prn[48], addn[48];
            snprintf(exn, sizeof exn, "%s.expand", p);
            if (t != 1)
                y = cbr(g, y, hidden, 1, 1, 0, 1, 0, 6, exn);
            snprintf(dwn, sizeof dwn, "%s.dw", p);
            snprintf(prn, sizeof prn, "%s.project", p);
            snprintf(addn, sizeof addn, "%s.add", p);
            y = cbr(g, y, hidden, 3, st, 1, hidden, 0, 6, dwn);
            y = cbr(g, y, out, 1, 1, 0, 1, 0, 0, prn);
            if (st == 1 && in == out)
                y = pare_graph_add(g, y, x, addn);
            x = y;
            in = out;
        }
    }
    x = cbr(g, x, 1280, 1, 1, 0, 1, 0, 6, "head");
    x = pare_graph_global_avgpool(g, x, "pool");
    x = pare_graph_flatten(g, x, "flatten");
    if (imagenet)
        x = pare_graph_dropout(g, x, 0.2f, "drop");
    pare_graph_linear(g, x, classes, 1, "fc");
}

pare_status pare_zoo_build(const char *name, int num_classes, uint64_t seed, pare_graph **out)
{
    static const int vgg11[] = {64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1, 0};
    static const int vgg16[] = {64,  64,  -1,  128, 128, -1,  256, 256, 256, -1,
                                512, 512, 512, -1,  512, 512, 512, -1,  0};
    *out = NULL;
    if (!name)
        return pare_fail(PARE_EINVAL, "no model name given");
    if (num_classes < 0 || num_classes > 1 << 20)
        return pare_fail(PARE_EINVAL, "number of classes %d is out of range", num_classes);
    int big = !strcmp(name, "resnet18") || !strcmp(name, "vgg16") || !strcmp(name, "mobilenetv2-224");
    int classes = num_classes ? num_classes : (big ? 1000 : 10);
    pare_graph *g = pare_graph_new(name);
    if (!g)
        return PARE_ENOMEM;
    if (!strcmp(name, "lenet"))
        build_lenet(g, classes);
    else if (!strcmp(name, "fmnist-cnn"))
        build_fmnist_cnn(g, classes);
    else if (!strcmp(name, "resnet20"))
        build_resnet20(g, classes);
    else if (!strcmp(name, "vgg11-bn"))
        build_vgg(g, classes, vgg11, 1, 0);
    else if (!strcmp(name, "mobilenetv2"))
        build_mobilenetv2(g, classes, 0);
    else if (!strcmp(name, "resnet18"))
        build_resnet18(g, classes);
    else if (!strcmp(name, "vgg16"))
        build_vgg(g, classes, vgg16, 0, 1);
    else if (!strcmp(name, "mobilenetv2-224"))
        build_mobilenetv2(g, classes, 1);
    else {
        pare_graph_free(g);
        char list[256] = "";
        for (int i = 0; zoo_names[i]; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, zoo_names[i]);
        }
        return pare_fail(PARE_ENOTFOUND, "no model named '%s' in the zoo (known: %s)", name, list);
    }
    pare_status s = pare_graph_status(g);
    if (s == PARE_OK)
        s = pare_graph_init_params(g, seed);
    if (s != PARE_OK) {
        pare_error_prefix("building %s", name);
        pare_graph_free(g);
        return s;
    }
    pare_graph_meta_set(g, "zoo", name);
    *out = g;
    return PARE_OK;
}
