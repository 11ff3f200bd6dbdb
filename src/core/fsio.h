/* Whole-file reads and atomic writes (temporary file, fsync, rename). */
#ifndef PARE_CORE_FSIO_H
#define PARE_CORE_FSIO_H

#include <stddef.h>
#include <stdint.h>

#include "pare.h"

/* Reads a whole file into a new buffer (free with free()); max bounds its size. */
pare_status pare_read_file(const char *path, size_t max, uint8_t **data, size_t *len);
/* Writes n bytes to path atomically: readers see the old file or the new one,
 * never a part. On failure the old file is untouched. */
pare_status pare_write_file_atomic(const char *path, const void *data, size_t n);
int pare_file_exists(const char *path);
/* "dir/name" into path (cap bytes); 0 when it does not fit. */
int pare_path_join(char *path, size_t cap, const char *dir, const char *name);

#endif
