/* The int8 conv family with AVX-VNNI (256-bit vpdpbusd, VEX-encoded): this
 * file alone is compiled with -mavxvnni and runs only where the CPU has it. */
#include <immintrin.h>

#include "kernels/qconv.h"

#define QSUFFIX avxvnni
#define QX __m256i
#define QW __m256i

static inline __m256i qx_prep(__m256i x) { return x; }
static inline __m256i qw_vec(__m256i w) { return w; }
static inline __m256i qw_prep(int32_t w) { return _mm256_set1_epi32(w); }
static inline __m256i qdot(__m256i acc, __m256i x, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, x, w); }

#include "kernels/qconv_256.inc"
