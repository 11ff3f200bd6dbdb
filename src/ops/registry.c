/* The one table of ops, indexed by pare_op_type. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "ops/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static const pare_op_def *const table[PARE_OP__COUNT] = {
    [PARE_OP_INPUT] = &pare_op_input,
    [PARE_OP_CONV2D] = &pare_op_conv2d,
    [PARE_OP_LINEAR] = &pare_op_linear,
    [PARE_OP_RELU] = &pare_op_relu,
    [PARE_OP_RELU6] = &pare_op_relu6,
    [PARE_OP_MAXPOOL] = &pare_op_maxpool,
    [PARE_OP_AVGPOOL] = &pare_op_avgpool,
    [PARE_OP_GLOBAL_AVGPOOL] = &pare_op_global_avgpool,
    [PARE_OP_BATCHNORM] = &pare_op_batchnorm,
    [PARE_OP_ADD] = &pare_op_add,
    [PARE_OP_CONCAT] = &pare_op_concat,
    [PARE_OP_FLATTEN] = &pare_op_flatten,
    [PARE_OP_DROPOUT] = &pare_op_dropout,
    [PARE_OP_SIGMOID] = &pare_op_sigmoid,
    [PARE_OP_HARDSIGMOID] = &pare_op_hardsigmoid,
    [PARE_OP_HARDSWISH] = &pare_op_hardswish,
    [PARE_OP_LEAKYRELU] = &pare_op_leakyrelu,
    [PARE_OP_CLIP] = &pare_op_clip,
    [PARE_OP_MUL] = &pare_op_mul,
    [PARE_OP_SOFTMAX] = &pare_op_softmax,
    [PARE_OP_CHANNEL_SHUFFLE] = &pare_op_channel_shuffle,
    [PARE_OP_PAD] = &pare_op_pad,
    [PARE_OP_CONST] = &pare_op_const,
    [PARE_OP_RESHAPE] = &pare_op_reshape,
    [PARE_OP_TRANSPOSE] = &pare_op_transpose,
    [PARE_OP_FAKEQUANT] = &pare_op_fakequant,
};

const pare_op_def *pare_op_get(pare_op_type t)
{
    return (unsigned)t < PARE_OP__COUNT ? table[t] : NULL;
}

int pare_op_find(const char *name)
{
    for (int i = 0; i < PARE_OP__COUNT; i++)
        if (table[i] && !strcmp(table[i]->name, name))
            return i;
    return -1;
}

void pare_prefetch_floats(const float *p, long n, int write)
{
    /* the read/write hint must be a constant: one loop each */
    if (write)
        for (long i = 0; i < n; i += 16)
            __builtin_prefetch(p + i, 1);
    else
        for (long i = 0; i < n; i += 16)
            __builtin_prefetch(p + i, 0);
}

void pare_init_uniform(float *x, size_t n, float bound, uint64_t seed, int node, int role)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 0x1417, (uint64_t)node, (uint64_t)role);
    for (size_t i = 0; i < n; i++)
        x[i] = bound * (2.0f * pare_rng_uniform(&r) - 1.0f);
}

void pare_init_layer(float *w, size_t nw, float *b, size_t nb, int fan_in, int fan_out, int scheme,
                     uint64_t seed, int node)
{
    float fi = (float)(fan_in > 0 ? fan_in : 1), fo = (float)(fan_out > 0 ? fan_out : 1);
    if (scheme == PARE_INIT_DEFAULT) {
        pare_init_uniform(w, nw, 1.0f / sqrtf(fi), seed, node, PARE_ROLE_WEIGHT);
        if (b)
            pare_init_uniform(b, nb, 1.0f / sqrtf(fi), seed, node, PARE_ROLE_BIAS);
        return;
    }
    if (scheme == PARE_INIT_HE_NORMAL) {
        pare_rng r;
        pare_rng_seed(&r, seed, 0x1417, (uint64_t)node, (uint64_t)PARE_ROLE_WEIGHT);
        double sd = sqrt(2.0 / fi);
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)(sd * pare_rng_normal(&r));
    } else {
        float bound = scheme == PARE_INIT_HE_UNIFORM ? sqrtf(6.0f / fi) : sqrtf(6.0f / (fi + fo));
        pare_init_uniform(w, nw, bound, seed, node, PARE_ROLE_WEIGHT);
    }
    for (size_t i = 0; b && i < nb; i++)
        b[i] = 0.0f;
}

int pare_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
