/* The quantized models of make bench-qdq: a .pare model quantized by hand to
 * int8 as ONNX Runtime's static quantization would (tests/qdq_fixture.c: batch
 * norms folded, per-channel int8 weights, int32 biases, uint8 activations after
 * every layer, min/max ranges from seeded normal inputs), then written as
 * PREFIX.f32.onnx (the float model), PREFIX.int8.onnx (QDQ) and PREFIX.int8.pare.
 *
 * usage: qdq_model MODEL.pare PREFIX [CALIBRATION_SAMPLES]
 * One JSON line on stdout counts the layers. */
#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"
#include "graph/graph.h"
#include "qdq_fixture.h"

static int fail(const char *what)
{
    fprintf(stderr, "qdq_model: %s: %s\n", what, pare_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: qdq_model MODEL.pare PREFIX [CALIBRATION_SAMPLES]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 4;
    if (n < 1 || n > 256) {
        fprintf(stderr, "qdq_model: calibration samples must be 1 to 256, not %s\n", argv[3]);
        return 2;
    }
    pare_graph *g = NULL, *q = NULL;
    if (pare_graph_load(argv[1], &g) != PARE_OK)
        return fail(argv[1]);
    int c, h, w;
    pare_graph_input_shape(g, &c, &h, &w);
    size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    float *x = malloc(count * sizeof *x);
    if (!x) {
        fprintf(stderr, "qdq_model: out of memory\n");
        return 1;
    }
    pare_rng r;
    pare_rng_seed(&r, 7, 0, 0, 0);
    for (size_t k = 0; k < count; k++)
        x[k] = (float)pare_rng_normal(&r);
    qdq_fix_options o = {8, 8, 1, 1, 1};
    char path[4096];
    int status = 0;
    snprintf(path, sizeof path, "%s.f32.onnx", argv[2]);
    if (pare_onnx_save(g, path) != PARE_OK)
        status = fail(path);
    if (!status && qdq_fix_quantize(g, x, n, &o, &q) != PARE_OK)
        status = fail("quantizing");
    snprintf(path, sizeof path, "%s.int8.onnx", argv[2]);
    if (!status && pare_onnx_save(q, path) != PARE_OK)
        status = fail(path);
    snprintf(path, sizeof path, "%s.int8.pare", argv[2]);
    if (!status && pare_graph_save(q, path) != PARE_OK)
        status = fail(path);
    if (!status) {
        int convs = 0, fq = 0, qt = 0;
        for (int i = 0; i < q->n_nodes; i++) {
            convs += q->nodes[i].op == PARE_OP_CONV2D;
            fq += q->nodes[i].op == PARE_OP_FAKEQUANT;
        }
        for (int i = 0; i < q->n_params; i++)
            qt += q->params[i].q.bits > 0;
        printf("{\"model\": \"%s\", \"convs\": %d, \"fakequants\": %d, \"quantized_tensors\": %d, "
               "\"calibration_samples\": %d}\n",
               argv[1], convs, fq, qt, n);
    }
    free(x);
    pare_graph_free(g);
    pare_graph_free(q);
    return status;
}
