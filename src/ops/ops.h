/* The op definitions each family file exports, and helpers they share. */
#ifndef PARE_OPS_OPS_H
#define PARE_OPS_OPS_H

#include "graph/op.h"

extern const pare_op_def pare_op_input;
extern const pare_op_def pare_op_conv2d;
extern const pare_op_def pare_op_linear;
extern const pare_op_def pare_op_relu;
extern const pare_op_def pare_op_relu6;
extern const pare_op_def pare_op_maxpool;
extern const pare_op_def pare_op_avgpool;
extern const pare_op_def pare_op_global_avgpool;
extern const pare_op_def pare_op_batchnorm;
extern const pare_op_def pare_op_add;
extern const pare_op_def pare_op_concat;
extern const pare_op_def pare_op_flatten;
extern const pare_op_def pare_op_dropout;
extern const pare_op_def pare_op_sigmoid;
extern const pare_op_def pare_op_hardsigmoid;
extern const pare_op_def pare_op_hardswish;
extern const pare_op_def pare_op_leakyrelu;
extern const pare_op_def pare_op_clip;
extern const pare_op_def pare_op_mul;
extern const pare_op_def pare_op_softmax;
extern const pare_op_def pare_op_channel_shuffle;
extern const pare_op_def pare_op_pad;
extern const pare_op_def pare_op_const;
extern const pare_op_def pare_op_reshape;
extern const pare_op_def pare_op_transpose;
extern const pare_op_def pare_op_fakequant;

/* Fetches the cache lines of n floats at p ahead of use (write = 1: for
 * writing). The per-channel loops over a batch (batch norm, bias gradients)
 * visit one channel's planes a whole sample apart, each too short for the
 * hardware's stream prefetcher to ramp up; fetching the next plane while the
 * current one is summed halves batch norm's time on W1. */
void pare_prefetch_floats(const float *p, long n, int write);

/* Uniform(-b, b) fill keyed by (seed, node, role). */
void pare_init_uniform(float *x, size_t n, float bound, uint64_t seed, int node, int role);
/* A conv or linear layer's weights (nw values) and bias (nb values, b may be NULL)
 * by a pare_init_scheme, keyed by (seed, node). */
void pare_init_layer(float *w, size_t nw, float *b, size_t nb, int fan_in, int fan_out, int scheme,
                     uint64_t seed, int node);

/* The thread number inside a parallel region (0 outside). */
int pare_thread_id(void);

#endif
