/* Aligned allocation with overflow checks. */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

size_t pare_mul_size(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        return SIZE_MAX;
    return a * b;
}

void *pare_alloc(size_t bytes, int zero)
{
    if (bytes == 0)
        bytes = PARE_ALIGN;
    if (bytes > SIZE_MAX - PARE_ALIGN) {
        pare_fail(PARE_ENOMEM, "cannot allocate %zu bytes", bytes);
        return NULL;
    }
    size_t rounded = (bytes + PARE_ALIGN - 1) / PARE_ALIGN * PARE_ALIGN;
    void *p = aligned_alloc(PARE_ALIGN, rounded);
    if (!p) {
        pare_fail(PARE_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    if (zero)
        memset(p, 0, rounded);
    return p;
}

void *pare_alloc_array(size_t count, size_t size, int zero)
{
    size_t bytes = pare_mul_size(count, size);
    if (bytes == SIZE_MAX) {
        pare_fail(PARE_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    return pare_alloc(bytes, zero);
}

void pare_free(void *p) { free(p); }

char *pare_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) {
        pare_fail(PARE_ENOMEM, "out of memory copying a string");
        return NULL;
    }
    memcpy(d, s, n);
    return d;
}
