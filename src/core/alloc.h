/* 64-byte aligned allocation (cache lines, AVX-512 loads, mappable tensor data). */
#ifndef PARE_CORE_ALLOC_H
#define PARE_CORE_ALLOC_H

#include <stddef.h>

#define PARE_ALIGN 64

/* NULL on failure or overflow; sets the error message. Zero-filled when zero=1. */
void *pare_alloc(size_t bytes, int zero);
/* count * size with an overflow check. */
void *pare_alloc_array(size_t count, size_t size, int zero);
void pare_free(void *p);
/* strdup that sets the error message on failure; NULL stays NULL. */
char *pare_strdup(const char *s);
/* a * b, or SIZE_MAX when it overflows. */
size_t pare_mul_size(size_t a, size_t b);

#endif
