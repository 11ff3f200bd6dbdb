/* Hand quantization for the QDQ export tests and bench/qdq_model.c: a stand-in
 * for pare's quantizer that follows graph.h's representation to the letter
 * (per-channel symmetric weights, fakequant activations, int32 biases). */
#ifndef PARE_TESTS_QDQ_FIXTURE_H
#define PARE_TESTS_QDQ_FIXTURE_H

#include "graph/graph.h"

typedef struct qdq_fix_options {
    int wbits;      /* conv and linear weights: per output channel, symmetric, 1 to 8 bits */
    int abits;      /* fakequant activations, 1 to 8 bits; 0: none */
    int fold_bn;    /* fold each batch norm into the conv it follows first */
    int everywhere; /* 1: fakequant after every layer whose output reaches a layer other
                       than an activation (ONNX Runtime's static quantization), not only on
                       the inputs of convs and linears; 2: the model's output too */
    int bias32;     /* int32 biases (scale s_in s_w) where the input is fake-quantized */
} qdq_fix_options;

/* A quantized copy of g: batch norms folded if asked, activation ranges from a
 * float forward of the n samples `calib` (min and max, 0 included), weights
 * rounded to their grid. */
pare_status qdq_fix_quantize(const pare_graph *g, const float *calib, int n,
                             const qdq_fix_options *o, pare_graph **out);

#endif
