/* libFuzzer target for the ONNX importer: any bytes give a status, never a crash
 * or leak; what it accepts is a graph pare can save, read back and run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "io/io.h"
#include "io/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_onnx: %s: %s\n", what, pare_last_error());
    abort();
}

/* Small enough to run in a fuzzing loop. */
static int cheap(const pare_graph *g)
{
    double macs = 0, values = 0;
    for (int i = 0; i < pare_graph_layer_count(g); i++) {
        pare_layer_info li;
        if (pare_graph_layer_info(g, i, &li) != PARE_OK)
            return 0;
        macs += li.macs;
        values += (double)li.out_c * li.out_h * li.out_w;
    }
    return macs < 1e6 && values < 1e6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pare_graph *g = NULL;
    if (pare_onnx_decode(data, size, "fuzz", NULL, NULL, &g) != PARE_OK) {
        if (g)
            fail("a refused model returned a graph");
        return 0;
    }
    if (!g)
        fail("an accepted model returned no graph");
    uint8_t *buf = NULL;
    size_t len = 0;
    if (pare_file_encode(g, NULL, 0, &buf, &len) != PARE_OK)
        fail("the .pare writer refused an imported graph");
    pare_graph *h = NULL;
    if (pare_file_decode(buf, len, "fuzz (re-encoded)", &h, NULL) != PARE_OK)
        fail("the .pare reader refused an imported graph");
    free(buf);
    pare_graph_free(h);
    if (cheap(g)) {
        int c, hh, w, oc, oh, ow;
        pare_graph_input_shape(g, &c, &hh, &w);
        pare_graph_output_shape(g, &oc, &oh, &ow);
        float *x = calloc((size_t)c * hh * w * 2 + 1, sizeof(float));
        float *y = calloc((size_t)oc * oh * ow * 2 + 1, sizeof(float));
        if (x && y)
            pare_graph_forward(g, x, 2, y, 1);
        free(x);
        free(y);
    }
    pare_graph_free(g);
    return 0;
}
