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

/* A reader takes any minor version of its major; see "Versions" in FORMAT.md.
 * The writer says the lowest minor whose fields the file uses: 1.2 for a layer
 * with 1.2 attributes (or an op 1.2 added), 1.1 for a packed data encoding or a
 * scheme attribute, so files without them stay 1.0 byte for byte. */
#define PARE_FILE_MAJOR 1
#define PARE_FILE_MINOR 2
#define PARE_FILE_MINOR_PACKED 1
#define PARE_FILE_MINOR_BASE 0

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

/* How a tensor's values are stored (format 1.1; a 1.0 record has no such field
 * and is dense). Packed encodings store only some elements, in element order;
 * every element not stored is +0.0. */
#define PARE_FILE_DATA_DENSE 0
#define PARE_FILE_DATA_BY_MASK 1    /* the elements whose mask bit is 1 */
#define PARE_FILE_DATA_BY_NONZERO 2 /* the elements set in a bitmap of their own */
/* Bytes of the 1.1 fields after a tensor record's attribute list: data
 * encoding (u32), nonzero bitmap offset (u64) and length (u64). */
#define PARE_FILE_TENSOR_TAIL 20

/* The per-tensor attribute that holds pare_param.scheme, and its limit. */
#define PARE_FILE_ATTR_SCHEME "scheme"
#define PARE_FILE_SCHEME_MAX 64

/* pare_attrs as GRPH stores it: these many int32 fields, then float32 fields
 * (format 1.0), then, in 1.2 and only for a layer that uses them, the float32
 * fields alpha, beta and the int32 fields axis, mode, shape[3], perm[3]. */
#define PARE_FILE_INT_ATTRS 15
#define PARE_FILE_FLOAT_ATTRS 3
#define PARE_FILE_ATTRS_12_FLOATS 2
#define PARE_FILE_ATTRS_12_INTS 8

/* Checks what pare_graph_validate does not and a file needs: every parameter
 * belongs to one layer and has exactly its op's dimensions, names are unique and
 * not too long, metadata keys are unique, quantization parameters are
 * consistent. Runs pare_graph_validate first. Returns PARE_EFORMAT (or ENOMEM)
 * with a sentence; the writer reports it as a bad argument, the reader as a bad
 * file. */
pare_status pare_file_check_graph(const pare_graph *g);

/* 1 when s (n bytes) can be a tensor's scheme: 1 to PARE_FILE_SCHEME_MAX
 * printable ASCII characters. */
int pare_file_scheme_ok(const char *s, size_t n);

/* NULL when q suits a tensor of n elements with these dims, else a phrase
 * saying what is wrong ("has 3 scales; per-channel quantization ..."). */
const char *pare_file_qparams_problem(const pare_qparams *q, int ndim, const int *dims, size_t n,
                                      char *buf, size_t cap);

#endif
