/* vec kernels, AVX-512 build (flags from the Makefile). */
#define PARE_VEC_SUFFIX _16x1__avx512
#include "kernels/vec_impl.h"
