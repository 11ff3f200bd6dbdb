/* bench/int8.sh's quantizer: a model file -> the same model with per-channel
 * symmetric 8-bit weights and a calibrated 8-bit fakequant before every conv
 * and linear input (pare_engine_fake_quantize: random-normal calibration, for
 * latency figures only; `pare quantize` is the user-facing quantizer).
 * usage: int8_quant IN.pare OUT.pare [SAMPLES] */
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "pare.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s IN.pare OUT.pare [SAMPLES]\n", argv[0]);
        return 2;
    }
    int samples = argc == 4 ? atoi(argv[3]) : 2;
    if (samples < 1 || samples > 64) {
        fprintf(stderr, "int8_quant: SAMPLES must be 1 to 64\n");
        return 2;
    }
    pare_graph *g = NULL, *q = NULL;
    pare_status s = pare_graph_load(argv[1], &g);
    if (s == PARE_OK)
        s = pare_engine_fake_quantize(g, samples, 1, &q);
    if (s == PARE_OK)
        s = pare_graph_save(q, argv[2]);
    pare_graph_free(g);
    pare_graph_free(q);
    if (s != PARE_OK) {
        fprintf(stderr, "int8_quant: %s\n", pare_last_error());
        return 1;
    }
    return 0;
}
