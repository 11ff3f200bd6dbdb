/* The numbers of the .pare layout (docs/FORMAT.md) and the rules a graph must
 * meet to be stored, shared by the writer and the reader so they cannot drift. */
#ifndef PARE_IO_FORMAT_H
#define PARE_IO_FORMAT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* "PAREMDL" and a NUL: eight bytes. */
#define PARE_FILE_MAGIC "PAREMDL"
#define PARE_FILE_MAGIC_LEN 8

/* A reader takes any minor version of its major; see "Versions" in FORMAT.md.
 * The writer says the lowest minor whose fields the file uses: 1.4 for a
 * SmartExchange basis tensor (quant scheme 4), 1.3 for a tensor stored as
 * integer codes or shared through a codebook, 1.2 for a layer with
 * 1.2 attributes (or an op 1.2 added), 1.1 for a packed data encoding or a
 * scheme attribute, so files without them stay 1.0 byte for byte. */
#define PARE_FILE_MAJOR 1
#define PARE_FILE_MINOR 4
#define PARE_FILE_MINOR_BASIS 4
#define PARE_FILE_MINOR_CODES 3
#define PARE_FILE_MINOR_ATTRS 2
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
/* Format 1.3: integer codes of `bits` bits each, packed least significant bit
 * first, from which the reader rebuilds the float values exactly: one code per
 * element of an affine-quantized tensor (quant schemes 1 and 2), one per run of
 * d values of a shared one (scheme 3, a codebook row). Elements whose mask bit
 * is 0 are +0.0 whatever their code says. */
#define PARE_FILE_DATA_CODES 3         /* a code for every element or run */
#define PARE_FILE_DATA_CODES_BY_MASK 4 /* codes only where the mask keeps something */
/* Format 1.4: a basis tensor's (quant scheme 4) nonzero coefficients, a
 * nonzero bitmap over its coefficients and a code of `bits` bits for each one
 * set; the values are rebuilt from them and the basis
 * (pare_qparams_basis_value), +0.0 where the mask prunes. */
#define PARE_FILE_DATA_BASIS_CODES 5
/* Bytes of the 1.1 fields after a tensor record's attribute list: data
 * encoding (u32), nonzero bitmap offset (u64) and length (u64). */
#define PARE_FILE_TENSOR_TAIL 20
/* Bytes of the 1.3 codebook fields that follow them in the record of a tensor
 * of quant scheme 3 (and only there): rows k (u32), values per row d (u32),
 * codebook offset (u64) and length (u64). */
#define PARE_FILE_CODEBOOK_FIELDS 24

/* Quantization schemes (pare_qparams.scheme). */
#define PARE_QSCHEME_NONE 0
#define PARE_QSCHEME_TENSOR 1
#define PARE_QSCHEME_CHANNEL 2
#define PARE_QSCHEME_CODEBOOK 3
#define PARE_QSCHEME_BASIS 4
/* Codes take 1 to 8 bits; a codebook has at most 2^8 rows of at most 16
 * values (the row length bounds how many values one stored bit can stand for:
 * 16 values of 4 bytes, 512 times). */
#define PARE_FILE_CODE_BITS_MAX 8
/* A basis coefficient's code: a sign bit and 1 to 8 exponent bits. */
#define PARE_FILE_BASIS_BITS_MIN 2
#define PARE_FILE_BASIS_BITS_MAX 9
#define PARE_FILE_CODEBOOK_K_MAX 256
#define PARE_FILE_CODEBOOK_D_MAX 16

/* The bits a codebook of k rows needs: ceil(log2 k), and 1 for k = 1 (0 bits
 * would read as "float"). */
static inline int pare_codebook_bits(int k)
{
    int b = 1;
    while (b < 31 && (1 << b) < k)
        b++;
    return b;
}

/* The value of an affine code, exactly as FORMAT.md and graph.h define it:
 * scale * (code - zero_point), the difference an integer made float, the
 * product in float. Writer and reader both call this, so they agree bit for bit. */
static inline float pare_file_affine_value(float scale, int32_t zero_point, int32_t code)
{
    return scale * (float)((int64_t)code - (int64_t)zero_point);
}

/* Affine codes are signed: bits 1 stores -1 and +1 as 0 and 1; b >= 2 bits
 * store codes -2^(b-1) .. 2^(b-1) - 1 as code + 2^(b-1). */
static inline int32_t pare_file_code_of_field(uint32_t u, int bits)
{
    if (bits == 1)
        return u ? 1 : -1;
    return (int32_t)u - (int32_t)(1u << (bits - 1));
}

/* A basis coefficient from its code: bit 0 the sign (1 negative), the bits
 * above it t, the magnitude scale * 2^-t (scale a power of two, the largest
 * magnitude). */
static inline float pare_file_basis_coef(float scale, uint32_t field)
{
    float m = ldexpf(scale, -(int)(field >> 1));
    return field & 1u ? -m : m;
}

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
