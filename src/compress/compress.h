/* Compression on the training side: sparsity schemes as projections from a
 * weight tensor to a mask, pruning methods built on them, and structural
 * removal of pruned channels. Masks live in pare_param.mask (one byte per
 * element, 1 keep); a pruned weight is exactly zero. */
#ifndef PARE_COMPRESS_COMPRESS_H
#define PARE_COMPRESS_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* ---- sparsity schemes ---------------------------------------------------- */

typedef enum pare_scheme_kind {
    PARE_SCHEME_NONE = 0,
    PARE_SCHEME_UNSTRUCTURED, /* any weights */
    PARE_SCHEME_NM,           /* N of every M consecutive weights along the input dimension */
    PARE_SCHEME_BLOCK,        /* br x bc blocks of the GEMM view, whole blocks kept or pruned */
    PARE_SCHEME_PUNCHED,      /* YOLObile block-punched: blocks of br filters x bc channels;
                                 in a block, a kernel position is kept or pruned for all its
                                 kernels together */
    PARE_SCHEME_DARB,         /* density-adaptive regular blocks: per row, blocks of b (a power
                                 of 2 from the row's density), one weight kept per block */
    PARE_SCHEME_PATTERN,      /* 3x3 convs: each kernel keeps one of K 4-weight patterns (centre
                                 kept) or is removed whole (connectivity pruning) */
    PARE_SCHEME_FILTER,       /* whole output filters (rows of the GEMM view) */
    PARE_SCHEME_CHANNEL,      /* whole input channels (all kh*kw columns of a channel) */
    PARE_SCHEME_COLUMN,       /* whole columns of the GEMM view (one (channel, kh, kw) position
                                 of every filter) */
    PARE_SCHEME__COUNT
} pare_scheme_kind;

#define PARE_PATTERN_MAX 64

/* A scheme and its parameters. The GEMM view of a weight is rows = output
 * filters (conv: out channels; linear: out features) by columns =
 * in/groups * kh * kw (conv) or in features (linear), row-major as stored. */
typedef struct pare_scheme {
    pare_scheme_kind kind;
    int n, m;                 /* N:M */
    int br, bc;               /* block / punched: rows (filters) x columns (channels) */
    int patterns;             /* pattern: library size K (default 8) */
    int n_lib;                /* pattern: the library, as 9-bit masks of a 3x3 kernel */
    uint16_t lib[PARE_PATTERN_MAX];  /* (bit i*3+j = position (i, j)); n_lib == 0: not built yet */
} pare_scheme;

/* Parses a scheme: "unstructured", "N:M" (e.g. "2:4"), "block:RxC" ("block:4x4"),
 * "punched:RxC", "darb", "pattern" or "pattern:K", "filter", "channel", "column".
 * One sentence naming the text on error. */
pare_status pare_scheme_parse(const char *text, pare_scheme *out);
/* The canonical text of a scheme (parses back to the same scheme, without the
 * library). */
void pare_scheme_format(const pare_scheme *s, char *buf, size_t n);
const char *pare_scheme_kind_name(pare_scheme_kind k);

/* Whether a scheme can apply to a weight tensor (conv [O, C/g, kh, kw] or linear
 * [O, I]); `layer` names it in the sentence ("N:M needs M to divide the input
 * dimension: layer fc1 has 3136 inputs, M = 3"; "the pattern scheme needs a
 * 3x3 conv; layer block1.conv is 1x1"). */
pare_status pare_scheme_check(const pare_scheme *s, const pare_tensor *w, const char *layer);

/* The projection: writes mask (w->n bytes, 1 keep 0 prune) that satisfies the
 * scheme exactly and, among those with at most `sparsity` * n pruned weights
 * (the fraction closest to it that the scheme's units allow, never a unit
 * more), keeps the largest total squared magnitude that the scheme's greedy
 * rule finds (exact for unstructured, N:M, block, filter, channel, column;
 * PatDNN's rule for pattern; DARB's for darb). N:M ignores `sparsity` (it is
 * 1 - N/M). Pattern prunes 5/9 by patterns, and the rest of the target by
 * removing whole kernels of the smallest norm; it needs s->lib (see below).
 * Scores come from `score` when not NULL (same size as w, e.g. |W + U| for
 * ADMM or BiP's scores), else from w. Ties go to the lower index. */
pare_status pare_scheme_project(const pare_scheme *s, const pare_tensor *w, const float *score,
                                double sparsity, uint8_t *mask);

/* Whether mask satisfies the scheme's structure (not its sparsity): every
 * N:M group keeps at most N; blocks, punched positions, filters, channels,
 * columns are all-or-nothing; every kernel of a pattern mask is empty or one
 * of the library's patterns; DARB keeps at most one per block of its row's
 * size (the size is recovered from the mask's row density as the projection
 * chose it). */
int pare_scheme_satisfied(const pare_scheme *s, const pare_tensor *w, const uint8_t *mask);

/* Builds the pattern library: for every 3x3 kernel of the given weights, its
 * best pattern (the centre plus its 3 largest other |w|); the K most frequent
 * of the 56 candidates (ties: lower mask value) become s->lib. */
pare_status pare_pattern_library(const pare_tensor *const *weights, int n_weights, int K,
                                 pare_scheme *s);

/* The GEMM view of a weight: rows and columns, and (conv) kernel size. */
void pare_gemm_view(const pare_tensor *w, int *rows, int *cols, int *kh, int *kw);

#endif
