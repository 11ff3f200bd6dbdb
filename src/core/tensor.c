/* Dense float32 tensors. */
#include "core/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

size_t pare_dims_count(int ndim, const int *dims)
{
    if (ndim < 0 || ndim > PARE_MAX_DIMS)
        return 0;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0)
            return 0;
        n = pare_mul_size(n, (size_t)dims[i]);
        if (n > (SIZE_MAX >> 3))
            return 0;
    }
    return n;
}

pare_tensor *pare_tensor_new(int ndim, const int *dims)
{
    size_t n = pare_dims_count(ndim, dims);
    if (n == 0) {
        pare_fail(PARE_ESHAPE, "a tensor needs 1 to %d positive dimensions", PARE_MAX_DIMS);
        return NULL;
    }
    pare_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        pare_fail(PARE_ENOMEM, "out of memory");
        return NULL;
    }
    t->data = pare_alloc_array(n, sizeof(float), 1);
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    t->n = n;
    return t;
}

pare_tensor *pare_tensor_clone(const pare_tensor *t)
{
    pare_tensor *c = pare_tensor_new(t->ndim, t->dims);
    if (c)
        memcpy(c->data, t->data, t->n * sizeof(float));
    return c;
}

void pare_tensor_free(pare_tensor *t)
{
    if (!t)
        return;
    pare_free(t->data);
    free(t);
}
