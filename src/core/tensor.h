/* Dense tensors: float32 data, up to 4 dimensions, 64-byte aligned, owned. */
#ifndef PARE_CORE_TENSOR_H
#define PARE_CORE_TENSOR_H

#include <stddef.h>

#define PARE_MAX_DIMS 4

typedef struct pare_tensor {
    int ndim;
    int dims[PARE_MAX_DIMS];
    size_t n;       /* number of elements */
    float *data;
} pare_tensor;

/* NULL on failure (error set). Zero-filled. */
pare_tensor *pare_tensor_new(int ndim, const int *dims);
pare_tensor *pare_tensor_clone(const pare_tensor *t);
void pare_tensor_free(pare_tensor *t);
/* Product of dims with an overflow check; 0 for a bad shape. */
size_t pare_dims_count(int ndim, const int *dims);

#endif
