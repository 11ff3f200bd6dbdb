/* vec kernels, AVX2 + FMA build (flags from the Makefile). */
#define PARE_VEC_SUFFIX _8x1__avx2
#include "kernels/vec_impl.h"
