/* Aligned allocation with overflow checks. */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20)

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
    /* big buffers (activation arenas, packed weights, datasets) on 2 MiB
     * boundaries, advised as transparent huge pages: a conv writing 96 planes
     * at once otherwise touches 96 small pages and misses the TLB */
    size_t align = bytes >= HUGE_MIN ? HUGE_PAGE : PARE_ALIGN;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = aligned_alloc(align, rounded);
    if (!p) {
        pare_fail(PARE_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE)
        (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
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
