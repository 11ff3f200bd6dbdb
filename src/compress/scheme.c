/* Sparsity schemes: their text form, the projection of a weight tensor onto
 * each scheme's masks (one-shot pruning and the Z-step of ADMM), the check that
 * a mask follows a scheme, and PatDNN's pattern library. */
#include "compress/compress.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define NM_MAX_M 64
#define DARB_MAX_BLOCK 64
#define BLOCK_SIDE_MAX 65536  /* parse bound only: a larger side is one tile anyway */
#define PATTERN_CANDIDATES 56 /* C(8, 3): the centre plus 3 of the other 8 positions */
#define PATTERN_DEFAULT 8
#define PATTERN_CENTRE (1u << 4)

/* ---- names, text form ---------------------------------------------------- */

static const char *const kind_names[PARE_SCHEME__COUNT] = {
    "none", "unstructured", "nm",     "block",   "punched",
    "darb", "pattern",      "filter", "channel", "column",
};

const char *pare_scheme_kind_name(pare_scheme_kind k)
{
    if ((int)k < 0 || k >= PARE_SCHEME__COUNT)
        return "unknown";
    return kind_names[k];
}

#define SCHEME_FORMS                                                                               \
    "unstructured, N:M (e.g. 2:4), block:RxC, punched:RxC, darb, pattern, pattern:K, filter, "     \
    "channel or column"

/* A decimal number without sign or spaces; -1 when there is no digit. Saturates
 * far above every bound so that an overlong number still fails the range check
 * (with its sentence) rather than wrapping into range. */
static long read_number(const char **p)
{
    const char *q = *p;
    long v = 0;
    if (*q < '0' || *q > '9')
        return -1;
    for (; *q >= '0' && *q <= '9'; q++)
        if (v < 1000000000L)
            v = v * 10 + (*q - '0');
    *p = q;
    return v;
}

static pare_status bad_form(const char *text)
{
    return pare_fail(PARE_EINVAL, "unknown sparsity scheme \"%.64s\": use " SCHEME_FORMS, text);
}

/* "N:M" once any "nm:" prefix is gone. */
static pare_status parse_nm(const char *text, const char *p, pare_scheme *s)
{
    long n = read_number(&p);
    if (n < 0 || *p != ':')
        return bad_form(text);
    p++;
    long m = read_number(&p);
    if (m < 0 || *p)
        return bad_form(text);
    if (n < 1 || n >= m || m > NM_MAX_M)
        return pare_fail(PARE_EINVAL, "sparsity scheme \"%.64s\" needs 1 <= N < M <= %d", text,
                         NM_MAX_M);
    s->kind = PARE_SCHEME_NM;
    s->n = (int)n;
    s->m = (int)m;
    return PARE_OK;
}

/* "RxC" after "block:" or "punched:". */
static pare_status parse_block(const char *text, const char *p, pare_scheme_kind kind,
                               pare_scheme *s)
{
    long r = read_number(&p);
    if (r < 0 || *p != 'x')
        return bad_form(text);
    p++;
    long c = read_number(&p);
    if (c < 0 || *p)
        return bad_form(text);
    if (r < 1 || c < 1 || r > BLOCK_SIDE_MAX || c > BLOCK_SIDE_MAX)
        return pare_fail(PARE_EINVAL, "sparsity scheme \"%.64s\" needs block sides from 1 to %d",
                         text, BLOCK_SIDE_MAX);
    s->kind = kind;
    s->br = (int)r;
    s->bc = (int)c;
    return PARE_OK;
}

pare_status pare_scheme_parse(const char *text, pare_scheme *out)
{
    static const struct {
        const char *name;
        pare_scheme_kind kind;
    } plain[] = {
        {"unstructured", PARE_SCHEME_UNSTRUCTURED}, {"darb", PARE_SCHEME_DARB},
        {"pattern", PARE_SCHEME_PATTERN},           {"filter", PARE_SCHEME_FILTER},
        {"channel", PARE_SCHEME_CHANNEL},           {"column", PARE_SCHEME_COLUMN},
    };
    pare_scheme s;
    pare_status st;

    if (!text || !out)
        return pare_fail(PARE_EINVAL, "no sparsity scheme text was given");
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        if (!strcmp(text, plain[i].name)) {
            s.kind = plain[i].kind;
            if (s.kind == PARE_SCHEME_PATTERN)
                s.patterns = PATTERN_DEFAULT;
            *out = s;
            return PARE_OK;
        }
    }
    if (!strncmp(text, "nm:", 3)) {
        st = parse_nm(text, text + 3, &s);
    } else if (text[0] >= '0' && text[0] <= '9') {
        st = parse_nm(text, text, &s);
    } else if (!strncmp(text, "block:", 6)) {
        st = parse_block(text, text + 6, PARE_SCHEME_BLOCK, &s);
    } else if (!strncmp(text, "punched:", 8)) {
        st = parse_block(text, text + 8, PARE_SCHEME_PUNCHED, &s);
    } else if (!strncmp(text, "pattern:", 8)) {
        const char *p = text + 8;
        long k = read_number(&p);
        if (k < 0 || *p)
            return bad_form(text);
        if (k < 1 || k > PATTERN_CANDIDATES)
            return pare_fail(PARE_EINVAL,
                             "sparsity scheme \"%.64s\" needs a library size K from 1 to %d", text,
                             PATTERN_CANDIDATES);
        s.kind = PARE_SCHEME_PATTERN;
        s.patterns = (int)k;
        st = PARE_OK;
    } else {
        st = bad_form(text);
    }
    if (st == PARE_OK)
        *out = s;
    return st;
}

void pare_scheme_format(const pare_scheme *s, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    if (!s) {
        snprintf(buf, n, "none");
        return;
    }
    switch (s->kind) {
    case PARE_SCHEME_NM:
        snprintf(buf, n, "%d:%d", s->n, s->m);
        break;
    case PARE_SCHEME_BLOCK:
    case PARE_SCHEME_PUNCHED:
        snprintf(buf, n, "%s:%dx%d", kind_names[s->kind], s->br, s->bc);
        break;
    case PARE_SCHEME_PATTERN:
        /* A zeroed struct means the default library size, as "pattern" does. */
        snprintf(buf, n, "pattern:%d", s->patterns > 0 ? s->patterns : PATTERN_DEFAULT);
        break;
    default:
        snprintf(buf, n, "%s", pare_scheme_kind_name(s->kind));
        break;
    }
}

/* ---- shapes -------------------------------------------------------------- */

/* The GEMM view with the conv structure kept: element (r, c) of the view is
 * data[r * cols + c], and c = channel * k2 + i * kw + j. */
typedef struct view {
    size_t rows, cols;
    size_t chans; /* input channels per group; linear: inputs */
    size_t k2;    /* kh * kw; 1 for linear */
    int kh, kw;
    int conv;
} view;

static view view_of(const pare_tensor *w)
{
    view v;
    v.conv = w->ndim == 4;
    v.rows = (size_t)w->dims[0];
    v.chans = (size_t)w->dims[1];
    v.kh = v.conv ? w->dims[2] : 1;
    v.kw = v.conv ? w->dims[3] : 1;
    v.k2 = (size_t)v.kh * (size_t)v.kw;
    v.cols = v.chans * v.k2;
    return v;
}

void pare_gemm_view(const pare_tensor *w, int *rows, int *cols, int *kh, int *kw)
{
    int r = 0, c = 0, h = 0, k = 0;
    /* Anything but a conv or linear weight has no GEMM view: all zero. */
    if (w && (w->ndim == 2 || w->ndim == 4) && pare_dims_count(w->ndim, w->dims) == w->n) {
        view v = view_of(w);
        if (v.cols <= INT_MAX) {
            r = (int)v.rows;
            c = (int)v.cols;
            h = v.kh;
            k = v.kw;
        }
    }
    if (rows)
        *rows = r;
    if (cols)
        *cols = c;
    if (kh)
        *kh = h;
    if (kw)
        *kw = k;
}

pare_status pare_scheme_check(const pare_scheme *s, const pare_tensor *w, const char *layer)
{
    char who[240];
    if (layer && *layer)
        snprintf(who, sizeof who, "layer %.200s", layer);
    else
        snprintf(who, sizeof who, "the weight");

    if (!s || !w)
        return pare_fail(PARE_EINVAL, "no sparsity scheme or weight was given for %s", who);
    if ((int)s->kind <= PARE_SCHEME_NONE || s->kind >= PARE_SCHEME__COUNT)
        return pare_fail(PARE_EINVAL, "no sparsity scheme is set for %s", who);
    const char *kind = pare_scheme_kind_name(s->kind);
    if (w->ndim != 2 && w->ndim != 4)
        return pare_fail(PARE_ESHAPE,
                         "the %s scheme applies to conv weights [O, C/g, kh, kw] and linear "
                         "weights [O, I]; %s has %d dimension%s",
                         kind, who, w->ndim, w->ndim == 1 ? "" : "s");
    if (pare_dims_count(w->ndim, w->dims) != w->n || w->n == 0)
        return pare_fail(PARE_ESHAPE, "%s has dimensions that do not match its %zu elements", who,
                         w->n);
    view v = view_of(w);
    if (v.cols > INT_MAX)
        return pare_fail(PARE_ESHAPE, "%s has %zu weights per filter, more than a scheme handles",
                         who, v.cols);

    switch (s->kind) {
    case PARE_SCHEME_NM:
        if (s->n < 1 || s->n >= s->m || s->m > NM_MAX_M)
            return pare_fail(PARE_EINVAL, "the N:M scheme needs 1 <= N < M <= %d, got %d:%d",
                             NM_MAX_M, s->n, s->m);
        if (v.chans % (size_t)s->m != 0)
            return pare_fail(PARE_ESHAPE,
                             "N:M needs M to divide the input dimension: %s has %zu %s, M = %d",
                             who, v.chans, v.conv ? "input channels per group" : "inputs", s->m);
        break;
    case PARE_SCHEME_BLOCK:
    case PARE_SCHEME_PUNCHED:
        if (s->br < 1 || s->bc < 1)
            return pare_fail(PARE_EINVAL,
                             "the %s scheme needs block sides of at least 1, got %dx%d", kind,
                             s->br, s->bc);
        break;
    case PARE_SCHEME_PATTERN:
        if (!v.conv)
            return pare_fail(PARE_ESHAPE,
                             "the pattern scheme needs a 3x3 conv; %s is a linear layer", who);
        if (v.kh != 3 || v.kw != 3)
            return pare_fail(PARE_ESHAPE, "the pattern scheme needs a 3x3 conv; %s is %dx%d", who,
                             v.kh, v.kw);
        if (s->n_lib < 0 || s->n_lib > PARE_PATTERN_MAX)
            return pare_fail(PARE_EINVAL, "the pattern library holds %d patterns, not 0 to %d",
                             s->n_lib, PARE_PATTERN_MAX);
        break;
    default:
        break;
    }
    return PARE_OK;
}

/* ---- ranking ------------------------------------------------------------- */

/* Scores are squares or sums of squares, so >= 0; a NaN (a diverged weight)
 * ranks below every number, so it is pruned first and the sort stays a total
 * order (qsort with an inconsistent comparison is undefined). */
static inline double clean(double v)
{
    return v == v ? v : -1.0;
}

static inline double square(float x)
{
    return (double)x * (double)x;
}

typedef struct ranked {
    double s;
    size_t i;
} ranked;

/* Pruning order: ascending score; on equal scores the higher index goes
 * first, so the lower index is the one kept (the rule for every scheme). */
static int cut_order(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    return a->i < b->i ? 1 : (a->i > b->i ? -1 : 0);
}

/* Scores as integers in the same order (the usual sign flip), so selection
 * can run on bytes. */
static inline uint64_t order_key(double d)
{
    uint64_t b;
    if (d == 0)
        d = 0; /* -0 and +0 compare equal as doubles: one key */
    memcpy(&b, &d, sizeof b);
    return b >> 63 ? ~b : b | (UINT64_C(1) << 63);
}

/* The k-th smallest (1-based, 1 <= k <= n) of cand[], which it overwrites:
 * radix selection from the top byte down, at most 8 passes over a shrinking
 * candidate list, O(n) whatever the data. */
static uint64_t kth_smallest(uint64_t *cand, size_t n, size_t k)
{
    uint64_t found = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        size_t hist[256] = {0};
        for (size_t i = 0; i < n; i++)
            hist[(cand[i] >> shift) & 255]++;
        unsigned d = 0;
        while (k > hist[d])
            k -= hist[d++];
        found |= (uint64_t)d << shift;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (((cand[i] >> shift) & 255) == d)
                cand[m++] = cand[i];
        n = m;
    }
    return found;
}

/* Equal units: the k first in pruning order are those below the k-th
 * smallest score, then the highest-indexed ones at that score. O(u). */
static pare_status cut_k_lowest(const double *score, size_t nu, size_t k, uint8_t *cut)
{
    if (k == 0)
        return PARE_OK;
    if (k >= nu) {
        memset(cut, 1, nu);
        return PARE_OK;
    }
    uint64_t *cand = pare_alloc_array(nu, sizeof *cand, 0);
    if (!cand)
        return PARE_ENOMEM;
    for (size_t u = 0; u < nu; u++)
        cand[u] = order_key(score[u]);
    uint64_t t = kth_smallest(cand, nu, k);
    size_t done = 0;
    for (size_t u = 0; u < nu; u++)
        if (order_key(score[u]) < t) {
            cut[u] = 1;
            done++;
        }
    for (size_t u = nu; u-- > 0 && done < k;)
        if (order_key(score[u]) == t) {
            cut[u] = 1;
            done++;
        }
    pare_free(cand);
    return PARE_OK;
}

/* Marks in cut[] the units to prune: in pruning order while the pruned weight
 * count stays <= target, stopping at the first unit that does not fit, so the
 * kept units are always the top of the ranking. size[u] gives unit sizes, or
 * NULL when all are `usize`. Equal sizes need only a selection; unequal ones
 * (edge tiles of block and punched) one O(u log u) sort (glibc's qsort is a
 * merge sort; the order is total, so any correct sort gives the same result). */
static pare_status cut_lowest(const double *score, const size_t *size, size_t usize, size_t nu,
                              size_t target, uint8_t *cut)
{
    if (size) {
        size_t u = 1;
        while (u < nu && size[u] == size[0])
            u++;
        if (u == nu) {
            usize = size[0];
            size = NULL;
        }
    }
    if (!size)
        return cut_k_lowest(score, nu, target / usize, cut);

    ranked *r = pare_alloc_array(nu, sizeof *r, 0);
    if (!r)
        return PARE_ENOMEM;
    for (size_t u = 0; u < nu; u++) {
        r[u].s = score[u];
        r[u].i = u;
    }
    qsort(r, nu, sizeof *r, cut_order);
    size_t done = 0;
    for (size_t k = 0; k < nu; k++) {
        size_t z = size[r[k].i];
        if (z > target - done)
            break;
        cut[r[k].i] = 1;
        done += z;
    }
    pare_free(r);
    return PARE_OK;
}

/* ---- schemes whose units partition the weights ----------------------------- */

static size_t ceil_div(size_t a, size_t b)
{
    return a / b + (a % b != 0);
}

static size_t unit_count(const pare_scheme *s, const view *v)
{
    switch (s->kind) {
    case PARE_SCHEME_FILTER:
        return v->rows;
    case PARE_SCHEME_CHANNEL:
        return v->chans;
    case PARE_SCHEME_COLUMN:
        return v->cols;
    case PARE_SCHEME_BLOCK:
        return ceil_div(v->rows, (size_t)s->br) * ceil_div(v->cols, (size_t)s->bc);
    case PARE_SCHEME_PUNCHED:
        return ceil_div(v->rows, (size_t)s->br) * ceil_div(v->chans, (size_t)s->bc) * v->k2;
    default: /* unstructured: every weight is its own unit */
        return v->rows * v->cols;
    }
}

/* Weights per unit when all units are equal, else 0 (edge tiles are smaller). */
static size_t unit_size(const pare_scheme *s, const view *v)
{
    switch (s->kind) {
    case PARE_SCHEME_FILTER:
        return v->cols;
    case PARE_SCHEME_CHANNEL:
        return v->rows * v->k2;
    case PARE_SCHEME_COLUMN:
        return v->rows;
    case PARE_SCHEME_BLOCK:
    case PARE_SCHEME_PUNCHED:
        return 0;
    default:
        return 1;
    }
}

/* The unit of element (r, c) of the GEMM view is row_part(r) + col_part[c]:
 * the split keeps divisions out of the per-weight loops. Punched units are
 * numbered (filter tile, channel tile, kernel position). */
static size_t row_part(const pare_scheme *s, const view *v, size_t r)
{
    switch (s->kind) {
    case PARE_SCHEME_FILTER:
        return r;
    case PARE_SCHEME_CHANNEL:
    case PARE_SCHEME_COLUMN:
        return 0;
    case PARE_SCHEME_BLOCK:
        return r / (size_t)s->br * ceil_div(v->cols, (size_t)s->bc);
    case PARE_SCHEME_PUNCHED:
        return r / (size_t)s->br * ceil_div(v->chans, (size_t)s->bc) * v->k2;
    default:
        return r * v->cols;
    }
}

/* NULL when out of memory (error set). */
static size_t *col_parts(const pare_scheme *s, const view *v)
{
    size_t *part = pare_alloc_array(v->cols, sizeof *part, 0);
    if (!part)
        return NULL;
    for (size_t c = 0; c < v->cols; c++) {
        switch (s->kind) {
        case PARE_SCHEME_FILTER:
            part[c] = 0;
            break;
        case PARE_SCHEME_CHANNEL:
            part[c] = c / v->k2;
            break;
        case PARE_SCHEME_BLOCK:
            part[c] = c / (size_t)s->bc;
            break;
        case PARE_SCHEME_PUNCHED:
            part[c] = c / v->k2 / (size_t)s->bc * v->k2 + c % v->k2;
            break;
        default: /* column, unstructured */
            part[c] = c;
            break;
        }
    }
    return part;
}

/* Unstructured, block, punched, filter, channel, column: a unit scores the sum
 * of its squared scores (unstructured: the square, same order as |x|), and the
 * lowest units go while the target allows. */
static pare_status project_units(const pare_scheme *s, const view *v, const float *src,
                                 size_t target, uint8_t *mask)
{
    size_t nu = unit_count(s, v), usize = unit_size(s, v);
    pare_status st = PARE_ENOMEM;
    double *score = pare_alloc_array(nu, sizeof *score, 1);
    size_t *size = usize ? NULL : pare_alloc_array(nu, sizeof *size, 1);
    uint8_t *cut = pare_alloc_array(nu, 1, 1);
    size_t *part = col_parts(s, v);
    if (!score || (!usize && !size) || !cut || !part)
        goto fail_scratch;

    for (size_t r = 0; r < v->rows; r++) {
        const float *row = src + r * v->cols;
        size_t base = row_part(s, v, r);
        for (size_t c = 0; c < v->cols; c++)
            score[base + part[c]] += square(row[c]);
        if (size)
            for (size_t c = 0; c < v->cols; c++)
                size[base + part[c]]++;
    }
    for (size_t u = 0; u < nu; u++)
        score[u] = clean(score[u]);
    st = cut_lowest(score, size, usize, nu, target, cut);
    if (st != PARE_OK)
        goto fail_scratch;
    for (size_t r = 0; r < v->rows; r++) {
        const uint8_t *cr = cut + row_part(s, v, r);
        uint8_t *mr = mask + r * v->cols;
        for (size_t c = 0; c < v->cols; c++)
            mr[c] = !cr[part[c]];
    }
fail_scratch:
    pare_free(part);
    pare_free(cut);
    pare_free(size);
    pare_free(score);
    return st;
}

/* Every unit all kept or all pruned: the first weight seen decides for its
 * unit. 0 also when out of memory (error set). */
static int units_satisfied(const pare_scheme *s, const view *v, const uint8_t *mask)
{
    size_t nu = unit_count(s, v);
    uint8_t *state = pare_alloc_array(nu, 1, 1); /* 0 unseen, 1 pruned, 2 kept */
    size_t *part = col_parts(s, v);
    int ok = state && part;
    for (size_t r = 0; ok && r < v->rows; r++) {
        uint8_t *sr = state + row_part(s, v, r);
        const uint8_t *mr = mask + r * v->cols;
        for (size_t c = 0; c < v->cols; c++) {
            uint8_t want = mr[c] ? 2 : 1;
            uint8_t *at = sr + part[c];
            if (!*at) {
                *at = want;
            } else if (*at != want) {
                ok = 0;
                break;
            }
        }
    }
    pare_free(part);
    pare_free(state);
    return ok;
}

/* ---- N:M ----------------------------------------------------------------- */

/* Group g of kernel position p in row r: weights (r, (g*M + t) * k2 + p) for t
 * in [0, M), i.e. M consecutive input channels at one kernel position. An
 * insertion sort of the group (best first, ties to the lower channel) keeps
 * the first N: about M/4 comparisons per weight, no allocation. */
static void project_nm(const pare_scheme *s, const view *v, const float *src, uint8_t *mask)
{
    size_t m = (size_t)s->m, n = (size_t)s->n, k2 = v->k2, groups = v->chans / m;
    double sc[NM_MAX_M];
    uint8_t order[NM_MAX_M];
    for (size_t r = 0; r < v->rows; r++) {
        for (size_t g = 0; g < groups; g++) {
            for (size_t p = 0; p < k2; p++) {
                size_t base = r * v->cols + g * m * k2 + p;
                for (size_t t = 0; t < m; t++) {
                    double x = clean(square(src[base + t * k2]));
                    size_t at = t;
                    /* Strictly better moves up, so equal scores keep channel order. */
                    while (at > 0 && x > sc[at - 1]) {
                        sc[at] = sc[at - 1];
                        order[at] = order[at - 1];
                        at--;
                    }
                    sc[at] = x;
                    order[at] = (uint8_t)t;
                }
                for (size_t t = 0; t < m; t++)
                    mask[base + (size_t)order[t] * k2] = t < n;
            }
        }
    }
}

static int nm_satisfied(const pare_scheme *s, const view *v, const uint8_t *mask)
{
    size_t m = (size_t)s->m, k2 = v->k2, groups = v->chans / m;
    for (size_t r = 0; r < v->rows; r++) {
        for (size_t g = 0; g < groups; g++) {
            for (size_t p = 0; p < k2; p++) {
                size_t base = r * v->cols + g * m * k2 + p, kept = 0;
                for (size_t t = 0; t < m; t++)
                    kept += mask[base + t * k2] != 0;
                if (kept > (size_t)s->n)
                    return 0;
            }
        }
    }
    return 1;
}

/* ---- DARB ---------------------------------------------------------------- */

/* The block size for a row of `len` weights of which `kept` survive
 * unstructured pruning: the power of two nearest to len / kept on the linear
 * scale (a tie goes to the smaller block, which keeps more weights), at most
 * 64 and at most the row length rounded up to a power of two. */
static size_t darb_block(size_t len, size_t kept)
{
    size_t b = 1, cap = 1;
    while (b < DARB_MAX_BLOCK && 2 * b * kept <= len) /* largest 2^k <= len / kept */
        b *= 2;
    if (b < DARB_MAX_BLOCK && 2 * len > 3 * b * kept) /* len/kept - b > 2b - len/kept */
        b *= 2;
    while (cap < len && cap < DARB_MAX_BLOCK)
        cap *= 2;
    return b < cap ? b : cap;
}

/* DARB: unstructured pruning of the whole tensor to the target gives each row
 * its density; the row then keeps its best weight in each block of the size
 * that density implies (the last block may be shorter). */
static pare_status project_darb(const view *v, const float *src, size_t target, uint8_t *mask)
{
    pare_scheme unstructured = {.kind = PARE_SCHEME_UNSTRUCTURED};
    pare_status st = project_units(&unstructured, v, src, target, mask);
    if (st != PARE_OK)
        return st;
    size_t len = v->cols;
    for (size_t r = 0; r < v->rows; r++) {
        uint8_t *row = mask + r * len;
        const float *x = src + r * len;
        size_t kept = 0;
        for (size_t c = 0; c < len; c++)
            kept += row[c];
        if (!kept)
            continue; /* already all pruned */
        size_t b = darb_block(len, kept);
        for (size_t s0 = 0; s0 < len; s0 += b) {
            size_t end = s0 + b < len ? s0 + b : len, best = s0;
            double bs = clean(square(x[s0]));
            for (size_t c = s0 + 1; c < end; c++) {
                double sc = clean(square(x[c]));
                if (sc > bs) {
                    bs = sc;
                    best = c;
                }
            }
            for (size_t c = s0; c < end; c++)
                row[c] = c == best;
        }
    }
    return PARE_OK;
}

/* A DARB row keeping k weights has some block size b with at most one kept per
 * block; b = 1 always fits, so the test uses the coarsest power of two (<= 64)
 * whose ceil(len / b) blocks still hold k: the projection's b when k > 1 (a
 * single kept weight fits every b). */
static int darb_satisfied(const view *v, const uint8_t *mask)
{
    size_t len = v->cols;
    for (size_t r = 0; r < v->rows; r++) {
        const uint8_t *row = mask + r * len;
        size_t kept = 0;
        for (size_t c = 0; c < len; c++)
            kept += row[c] != 0;
        if (!kept)
            continue;
        size_t b = DARB_MAX_BLOCK;
        while (b > 1 && ceil_div(len, b) < kept)
            b /= 2;
        for (size_t s0 = 0; s0 < len; s0 += b) {
            size_t end = s0 + b < len ? s0 + b : len, in = 0;
            for (size_t c = s0; c < end; c++)
                in += row[c] != 0;
            if (in > 1)
                return 0;
        }
    }
    return 1;
}

/* ---- patterns (PatDNN) --------------------------------------------------- */

static int bits9(unsigned p)
{
    int n = 0;
    for (; p; p &= p - 1)
        n++;
    return n;
}

static int pattern_valid(unsigned p)
{
    return p < 512 && (p & PATTERN_CENTRE) && bits9(p) == 4;
}

/* The centre plus the 3 largest |w| among the other 8 positions (ties: lower position). */
static unsigned best_pattern(const float *k)
{
    unsigned p = PATTERN_CENTRE;
    for (int pick = 0; pick < 3; pick++) {
        int best = -1;
        double bs = 0;
        for (int q = 0; q < 9; q++) {
            if (p & (1u << q))
                continue;
            double a = clean(fabs((double)k[q]));
            if (best < 0 || a > bs) {
                best = q;
                bs = a;
            }
        }
        p |= 1u << best;
    }
    return p;
}

pare_status pare_pattern_library(const pare_tensor *const *weights, int n_weights, int K,
                                 pare_scheme *s)
{
    size_t count[512] = {0};
    if (!s)
        return pare_fail(PARE_EINVAL, "no scheme was given to hold the pattern library");
    if (K < 1 || K > PATTERN_CANDIDATES)
        return pare_fail(PARE_EINVAL, "the pattern library size K must be 1 to %d, got %d",
                         PATTERN_CANDIDATES, K);
    if (!weights || n_weights < 1)
        return pare_fail(PARE_EINVAL, "the pattern library needs at least one 3x3 conv weight");
    for (int i = 0; i < n_weights; i++) {
        const pare_tensor *w = weights[i];
        if (!w || w->ndim != 4 || w->dims[2] != 3 || w->dims[3] != 3 || !w->data ||
            pare_dims_count(w->ndim, w->dims) != w->n)
            return pare_fail(
                PARE_ESHAPE,
                "the pattern library needs 3x3 conv weights; weight %d of %d is not one", i + 1,
                n_weights);
        for (size_t k = 0; k < w->n / 9; k++)
            count[best_pattern(w->data + 9 * k)]++;
    }
    /* The K most frequent candidates, ties to the lower mask value: scanning
     * values upwards and replacing only on a strictly larger count does that. */
    uint8_t taken[512] = {0};
    for (int slot = 0; slot < K; slot++) {
        int best = -1;
        for (unsigned p = 0; p < 512; p++) {
            if (taken[p] || !pattern_valid(p))
                continue;
            if (best < 0 || count[p] > count[best])
                best = (int)p;
        }
        taken[best] = 1;
        s->lib[slot] = (uint16_t)best;
    }
    s->n_lib = K;
    s->patterns = K;
    return PARE_OK;
}

static pare_status check_library(const pare_scheme *s)
{
    if (s->n_lib <= 0)
        return pare_fail(PARE_EINVAL,
                         "the pattern library is not built (pare_pattern_library builds it)");
    for (int l = 0; l < s->n_lib; l++)
        if (!pattern_valid(s->lib[l]))
            return pare_fail(PARE_EINVAL,
                             "pattern library entry %d (0x%03x) is not 4 weights of a 3x3 kernel "
                             "with the centre kept",
                             l, (unsigned)s->lib[l]);
    return PARE_OK;
}

/* Pattern pruning, then connectivity pruning of whole kernels beyond 5/9. */
static pare_status project_pattern(const pare_scheme *s, const view *v, const float *src,
                                   size_t target, uint8_t *mask)
{
    pare_status st = check_library(s);
    if (st != PARE_OK)
        return st;
    size_t nk = v->rows * v->chans;
    st = PARE_ENOMEM;
    double *score = pare_alloc_array(nk, sizeof *score, 0);
    uint8_t *cut = pare_alloc_array(nk, 1, 1);
    if (!score || !cut)
        goto fail_scratch;

    for (size_t k = 0; k < nk; k++) {
        const float *x = src + 9 * k;
        double sq[9];
        for (int q = 0; q < 9; q++)
            sq[q] = square(x[q]);
        int best = 0;
        double bs = 0;
        for (int l = 0; l < s->n_lib; l++) {
            double sum = 0;
            for (int q = 0; q < 9; q++)
                if (s->lib[l] & (1u << q))
                    sum += sq[q];
            sum = clean(sum);
            if (l == 0 || sum > bs) {
                best = l;
                bs = sum;
            }
        }
        score[k] = bs;
        for (int q = 0; q < 9; q++)
            mask[9 * k + (size_t)q] = (s->lib[best] >> q) & 1u;
    }
    /* Patterns prune 5 of every 9; a kernel removal prunes its remaining 4. */
    if (target > 5 * nk) {
        st = cut_lowest(score, NULL, 4, nk, target - 5 * nk, cut);
        if (st != PARE_OK)
            goto fail_scratch;
        for (size_t k = 0; k < nk; k++)
            if (cut[k])
                memset(mask + 9 * k, 0, 9);
    }
    st = PARE_OK;
fail_scratch:
    pare_free(cut);
    pare_free(score);
    return st;
}

/* Every kernel empty or a library pattern; with no library yet, any of the 56
 * candidates. */
static int pattern_satisfied(const pare_scheme *s, const view *v, const uint8_t *mask)
{
    for (int l = 0; l < s->n_lib; l++)
        if (!pattern_valid(s->lib[l]))
            return 0;
    size_t nk = v->rows * v->chans;
    for (size_t k = 0; k < nk; k++) {
        unsigned p = 0;
        for (int q = 0; q < 9; q++)
            p |= (unsigned)(mask[9 * k + (size_t)q] != 0) << q;
        if (!p)
            continue;
        int ok = 0;
        if (s->n_lib == 0)
            ok = pattern_valid(p);
        for (int l = 0; l < s->n_lib && !ok; l++)
            ok = s->lib[l] == p;
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- entry points -------------------------------------------------------- */

pare_status pare_scheme_project(const pare_scheme *s, const pare_tensor *w, const float *score,
                                double sparsity, uint8_t *mask)
{
    pare_status st = pare_scheme_check(s, w, NULL);
    if (st != PARE_OK)
        return st;
    if (!mask)
        return pare_fail(PARE_EINVAL, "no mask buffer was given for the %s projection",
                         pare_scheme_kind_name(s->kind));
    const float *src = score ? score : w->data;
    if (!src)
        return pare_fail(PARE_EINVAL, "the weight has no data to score for the %s projection",
                         pare_scheme_kind_name(s->kind));
    if (!(sparsity >= 0 && sparsity < 1))
        return pare_fail(PARE_EINVAL, "sparsity must be in [0, 1), got %g", sparsity);

    /* The epsilon keeps 0.3 * 10 from flooring to 2 through rounding. */
    double t = floor(sparsity * (double)w->n + 1e-9);
    size_t target = t >= (double)w->n ? w->n : (size_t)t;
    view v = view_of(w);
    switch (s->kind) {
    case PARE_SCHEME_NM:
        project_nm(s, &v, src, mask);
        return PARE_OK;
    case PARE_SCHEME_DARB:
        return project_darb(&v, src, target, mask);
    case PARE_SCHEME_PATTERN:
        return project_pattern(s, &v, src, target, mask);
    default:
        return project_units(s, &v, src, target, mask);
    }
}

int pare_scheme_satisfied(const pare_scheme *s, const pare_tensor *w, const uint8_t *mask)
{
    if (!mask || pare_scheme_check(s, w, NULL) != PARE_OK)
        return 0;
    view v = view_of(w);
    switch (s->kind) {
    case PARE_SCHEME_UNSTRUCTURED:
        return 1;
    case PARE_SCHEME_NM:
        return nm_satisfied(s, &v, mask);
    case PARE_SCHEME_DARB:
        return darb_satisfied(&v, mask);
    case PARE_SCHEME_PATTERN:
        return pattern_satisfied(s, &v, mask);
    default:
        return units_satisfied(s, &v, mask);
    }
}
