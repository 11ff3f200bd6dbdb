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

/* Parses a scheme: "unstructured", "N:M" or "nm:N:M" (e.g. "2:4"; 1 <= N < M
 * <= 64), "block:RxC" ("block:4x4"), "punched:RxC" (sides 1..65536), "darb",
 * "pattern" (K = 8) or "pattern:K" (1..56), "filter", "channel", "column";
 * exact lower case, no spaces. PARE_EINVAL and one sentence quoting the text
 * on error, *out untouched. */
pare_status pare_scheme_parse(const char *text, pare_scheme *out);
/* The canonical text of a scheme ("2:4", "block:4x4", "punched:8x4",
 * "pattern:8"; parses back to the same scheme, without the library). A
 * pattern scheme with patterns == 0 formats as the default "pattern:8";
 * PARE_SCHEME_NONE as "none". Truncates to n bytes, always terminated. */
void pare_scheme_format(const pare_scheme *s, char *buf, size_t n);
const char *pare_scheme_kind_name(pare_scheme_kind k);

/* Whether a scheme can apply to a weight tensor (conv [O, C/g, kh, kw] or linear
 * [O, I]; anything else, e.g. a bias, is refused); `layer` names it in the
 * sentence ("N:M needs M to divide the input dimension: layer fc1 has 3136
 * inputs, M = 3"; "the pattern scheme needs a 3x3 conv; layer block1.conv is
 * 1x1"), NULL says "the weight". PARE_ESHAPE when the layer's shape does not
 * fit, PARE_EINVAL for bad scheme parameters (PARE_SCHEME_NONE included). */
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
 * ADMM or BiP's scores), else from w. Ties go to the lower index.
 *
 * Precisely: the target is floor(sparsity * n + 1e-9) pruned weights, and
 * sparsity must be in [0, 1) for every scheme (N:M included). A unit (a
 * weight, tile, punched position, filter, channel or column) scores the sum
 * of its squared scores; units go in ascending score order, on equal scores
 * the higher index first (so the lower index is kept), while the pruned
 * count stays <= target, stopping at the first unit that does not fit.
 * Block and punched edge tiles are smaller units; with them the rule is
 * optimal among masks pruning as many tiles of each size. NaN scores rank
 * below every number (pruned first). Two schemes can prune more than the
 * target: pattern never prunes less than 5/9 (its minimum sparsity), and DARB
 * rounds each row's block size to the nearest power of two (linear scale, a
 * tie to the smaller; 1..64 and at most the row length's next power of two)
 * of len / kept, where kept is the row's count after unstructured pruning of
 * the whole tensor to the target; it keeps ceil(len / b) weights (the best
 * of each block of b), or none when kept is 0. Unstructured, DARB and
 * equal-sized units cost O(n) (radix selection); unequal units one
 * O(u log u) sort. On failure the mask's contents are unspecified. */
pare_status pare_scheme_project(const pare_scheme *s, const pare_tensor *w, const float *score,
                                double sparsity, uint8_t *mask);

/* Whether mask satisfies the scheme's structure (not its sparsity): every
 * N:M group keeps at most N; blocks, punched positions, filters, channels,
 * columns are all-or-nothing; every kernel of a pattern mask is empty or one
 * of the library's patterns (any of the 56 when no library is built); DARB
 * keeps at most one per block of its row's size (the size is recovered from
 * the mask's row density as the projection chose it: the largest power of
 * two b <= 64 whose ceil(len / b) blocks can hold the row's kept count).
 * A nonzero byte is a kept weight. 0 also when the scheme does not apply to
 * w (the error is set then). */
int pare_scheme_satisfied(const pare_scheme *s, const pare_tensor *w, const uint8_t *mask);

/* Builds the pattern library: for every 3x3 kernel of the given weights, its
 * best pattern (the centre plus its 3 largest other |w|, ties to the lower
 * position); the K most frequent of the 56 candidates (ties: lower mask
 * value; unseen candidates fill up in rising value) become s->lib, most
 * frequent first, and s->n_lib = s->patterns = K (1..56). The projection
 * gives each kernel the library pattern of the largest squared norm (ties:
 * earlier in lib). Only s->lib, n_lib and patterns change, and only on
 * success. */
pare_status pare_pattern_library(const pare_tensor *const *weights, int n_weights, int K,
                                 pare_scheme *s);

/* The GEMM view of a weight: rows and columns, and (conv) kernel size (1 x 1
 * for linear). All zero for a tensor that is not a conv or linear weight;
 * NULL outputs are skipped. */
void pare_gemm_view(const pare_tensor *w, int *rows, int *cols, int *kh, int *kw);

/* ---- structural removal -------------------------------------------------- */

/* Makes every pruned filter an exact zero channel that stays one through
 * fine-tuning with masks kept. A conv/linear filter is pruned when its weight
 * row is all masked (all exactly zero when the weight has no mask), or when its
 * only nonzero weights read channels that are exactly zero already (a
 * depthwise filter behind a pruned filter: its output could only be a
 * constant). For each one, the weight row and the layer's bias entry are
 * zeroed and masked, and when the layer's output goes only into a batchnorm,
 * that channel's gamma and beta too (masks are created where missing, 1
 * elsewhere) and its running mean is set to 0, so the BN channel gives exactly
 * 0 in evaluation instead of the constant beta - mean*gamma/sqrt(var + eps).
 * *n_channels (may be NULL) gets the number of such filters. */
pare_status pare_mask_dead_filters(pare_graph *g, int *n_channels);

/* One layer (node) in a purify report; ids are equal in both graphs. */
typedef struct pare_purify_layer {
    char *name;
    const char *op;
    int channels_before, channels_after; /* output channels (features for linear/flatten) */
    long long params_before, params_after;
    double macs_before, macs_after; /* per sample */
} pare_purify_layer;

typedef struct pare_purify_report {
    int n_layers; /* one per node, in node order */
    pare_purify_layer *layers;
    long long params_before, params_after; /* trainable values, as pare_layer_info counts */
    double macs_before, macs_after;
    long long filters_removed; /* conv filters and linear outputs */
    int rounds;                /* rounds of the fixed point (the last one removes nothing) */
    int grouped_kept;          /* grouped (not depthwise) convs whose channels were left alone */
} pare_purify_report;

/* Builds *out, a physically smaller graph whose inference outputs equal in's
 * (to float rounding, for finite inputs): channels that are dead (exactly zero
 * for every input) or unused (read by nothing) are removed, with the filters,
 * batchnorm entries and input slices that belong to them, until nothing more
 * can go. Channels joined by residual adds, concats, depthwise convs and
 * per-channel ops go together (an add keeps the union of its inputs'
 * channels); the channels around grouped convs (1 < groups < channels) and the
 * graph's input and output stay; every value keeps at least one channel.
 * Masks, frozen flags, schemes and per-channel quantization parameters follow
 * the kept elements. rep (may be NULL) is filled; free it with
 * pare_purify_report_free. The algorithm is described in purify.c. */
pare_status pare_purify(const pare_graph *in, pare_graph **out, pare_purify_report *rep);
void pare_purify_report_free(pare_purify_report *rep);

#endif
