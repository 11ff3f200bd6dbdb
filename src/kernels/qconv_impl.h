/* Scalar helpers the int8 kernels and the engine share, written with the
 * semantics of the SIMD instructions (maxps/minps return the second operand
 * when either is NaN) so every version computes the same bits. */
#ifndef PARE_KERNELS_QCONV_IMPL_H
#define PARE_KERNELS_QCONV_IMPL_H

#include <math.h>
#include <stdint.h>

static inline float pare_qmaxf(float a, float b) { return a > b ? a : b; }
static inline float pare_qminf(float a, float b) { return a < b ? a : b; }

/* The fakequant op's code of x: clamp(rint(x / s) + zp, 0, qmax) (NaN -> 0). */
static inline uint8_t pare_qcode(float x, float s, float zp, float qmax)
{
    float t = rintf(x / s) + zp;
    t = pare_qmaxf(t, 0.0f);
    t = pare_qminf(t, qmax);
    return (uint8_t)(int32_t)t;
}

/* Bit i of a 16-bit lane mask to bit 4i of a 64-bit byte mask. */
static inline uint64_t pare_qspread16(unsigned m)
{
    uint64_t x = m & 0xffffu;
    x = (x | x << 24) & 0x000000ff000000ffull;
    x = (x | x << 12) & 0x000f000f000f000full;
    x = (x | x << 6) & 0x0303030303030303ull;
    x = (x | x << 3) & 0x1111111111111111ull;
    return x;
}

#endif
