/* The numbers of the .pare layout (docs/FORMAT.md) and the rules a graph must
 * meet to be stored, shared by the writer and the reader so they cannot drift. */
#ifndef PARE_IO_FORMAT_H
#define PARE_IO_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* "PAREMDL" and a NUL: eight bytes. */
#define PARE_FILE_MAGIC "PAREMDL"
#define PARE_FILE_MAGIC_LEN 8

/* A reader takes any minor version of its major; see "Versions" in FORMAT.md. */
#define PARE_FILE_MAJOR 1
#define PARE_FILE_MINOR 0

#define PARE_FILE_HEADER_SIZE 64
#define PARE_FILE_ENTRY_SIZE 32
/* Sections and every array in DATA start at a multiple of this (file offsets). */
#define PARE_FILE_ALIGN 64

/* Header fields: byte offsets. Magic and version never move, in any major. */
enum {
    PARE_FH_MAGIC = 0,
    PARE_FH_MAJOR = 8,
    PARE_FH_MINOR = 12,
    PARE_FH_FILE_SIZE = 16,
    PARE_FH_TABLE_OFFSET = 24,
    PARE_FH_SECTION_COUNT = 32,
    PARE_FH_ENTRY_SIZE = 36,
    PARE_FH_TABLE_CRC = 40,
    PARE_FH_CRC = 60 /* CRC-32 of bytes 0..59 */
};

/* Section table entry fields: byte offsets within an entry. */
enum {
    PARE_FE_TAG = 0,
    PARE_FE_FLAGS = 4,
    PARE_FE_OFFSET = 8,
    PARE_FE_SIZE = 16,
    PARE_FE_CRC = 24
};

/* A reader that does not know a section with this flag must refuse the file. */
#define PARE_FILE_SEC_REQUIRED 1u
#define PARE_FILE_SEC_KNOWN_FLAGS PARE_FILE_SEC_REQUIRED

/* Limits: what the writer refuses to write and the reader refuses to read. */
#define PARE_FILE_NAME_MAX 4096   /* names of graph, layers, tensors, ops, roles; meta keys */
#define PARE_FILE_VALUE_MAX 65536 /* meta values */

#define PARE_FILE_DTYPE_F32 1
#define PARE_FILE_MASK_NONE 0
#define PARE_FILE_MASK_BITMAP 1

/* pare_attrs as GRPH stores it: these many int32 fields, then float32 fields. */
#define PARE_FILE_INT_ATTRS 15
#define PARE_FILE_FLOAT_ATTRS 3

/* Checks what pare_graph_validate does not and a file needs: every parameter
 * belongs to one layer and has exactly its op's dimensions, names are unique and
 * not too long, metadata keys are unique, quantization parameters are
 * consistent. Runs pare_graph_validate first. Returns PARE_EFORMAT (or ENOMEM)
 * with a sentence; the writer reports it as a bad argument, the reader as a bad
 * file. */
pare_status pare_file_check_graph(const pare_graph *g);

/* NULL when q suits a tensor of n elements with these dims, else a phrase
 * saying what is wrong ("has 3 scales; per-channel quantization ..."). */
const char *pare_file_qparams_problem(const pare_qparams *q, int ndim, const int *dims, size_t n,
                                      char *buf, size_t cap);

#endif
