/* vec kernels, scalar reference (the test oracle). */
#define PARE_VEC_SUFFIX _1x1__ref
#include "kernels/vec_impl.h"
