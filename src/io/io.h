/* The .pare model file (docs/FORMAT.md): a versioned header, a section table,
 * and sections (metadata, graph, tensor directory, 64-byte aligned tensor data,
 * and any extra sections a caller adds, e.g. a trainer's checkpoint state),
 * each with its own CRC-32; all little-endian. */
#ifndef PARE_IO_IO_H
#define PARE_IO_IO_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* A section the caller adds to or reads from a file, identified by a 4-byte
 * tag (e.g. "TRST"); the file layer stores the bytes and checks their CRC but
 * does not interpret them. */
typedef struct pare_file_section {
    char tag[4];
    uint8_t *data;
    size_t size;
} pare_file_section;

typedef struct pare_file_extra {
    int n;
    pare_file_section *s;     /* owned: free with pare_file_extra_free */
} pare_file_extra;

void pare_file_extra_free(pare_file_extra *x);
/* The first extra section with this tag, or NULL. */
const pare_file_section *pare_file_extra_find(const pare_file_extra *x, const char *tag);

/* Serialises g (and extra sections, may be NULL/0) into memory. A tensor is
 * stored packed (only the values it keeps) when that is lossless and smaller:
 * docs/FORMAT.md, "Data encodings". */
pare_status pare_file_encode(const pare_graph *g, const pare_file_section *extra, int n_extra,
                             uint8_t **out, size_t *len);
/* Parses a whole file held in memory. `what` names it in error messages (a
 * path). Every length, offset, count, shape and CRC is checked; on error the
 * status is PARE_EFORMAT (or ENOMEM) and the message says what is wrong.
 * extra may be NULL when the caller does not want extra sections. */
pare_status pare_file_decode(const uint8_t *buf, size_t len, const char *what, pare_graph **g,
                             pare_file_extra *extra);
/* Encode + atomic write; read + decode. */
pare_status pare_file_save(const char *path, const pare_graph *g, const pare_file_section *extra,
                           int n_extra);
pare_status pare_file_load(const char *path, pare_graph **g, pare_file_extra *extra);

#endif
