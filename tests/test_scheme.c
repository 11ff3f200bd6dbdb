/* Tests of the sparsity schemes: text forms, refusals, and for every scheme on
 * many shapes and sparsities a projection that matches an independent
 * brute-force reference, follows the structure, meets the target and beats
 * random masks of the same structure; plus PatDNN's library and DARB's block
 * sizes on hand-made weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------- */

/* A weight's layout as the tests see it: [O, C, KH, KW], linear with KH = KW = 1. */
typedef struct geo {
    int O, C, KH, KW;
    size_t cols, n;
} geo;

static geo geo_of(const pare_tensor *w)
{
    geo g;
    g.O = w->dims[0];
    g.C = w->dims[1];
    g.KH = w->ndim == 4 ? w->dims[2] : 1;
    g.KW = w->ndim == 4 ? w->dims[3] : 1;
    g.cols = (size_t)g.C * (size_t)g.KH * (size_t)g.KW;
    g.n = (size_t)g.O * g.cols;
    return g;
}

static size_t idx4(const geo *g, int o, int c, int i, int j)
{
    return (((size_t)o * (size_t)g->C + (size_t)c) * (size_t)g->KH + (size_t)i) * (size_t)g->KW +
           (size_t)j;
}

static pare_tensor *tensor(int ndim, int d0, int d1, int d2, int d3)
{
    int dims[4] = {d0, d1, d2, d3};
    return pare_tensor_new(ndim, dims);
}

static void fill_normal(float *x, size_t n, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 11, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)pare_rng_normal(&r);
}

static size_t target_of(double sp, size_t n)
{
    return (size_t)floor(sp * (double)n + 1e-9);
}

static size_t count_pruned(const uint8_t *mask, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += mask[i] == 0;
    return z;
}

static double sq(float x)
{
    return (double)x * (double)x;
}

static double kept_norm(const uint8_t *mask, const float *src, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i])
            s += sq(src[i]);
    return s;
}

static void shuffle(size_t *a, size_t n, pare_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)pare_rng_below(r, i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int is_unit_scheme(pare_scheme_kind k)
{
    return k == PARE_SCHEME_UNSTRUCTURED || k == PARE_SCHEME_BLOCK || k == PARE_SCHEME_PUNCHED ||
           k == PARE_SCHEME_FILTER || k == PARE_SCHEME_CHANNEL || k == PARE_SCHEME_COLUMN;
}

/* ---- the test's own model of each scheme --------------------------------- */

/* Units by explicit enumeration of the spec (tiles, channels, columns of the
 * 4-D weight), numbered in their natural order; returns the unit count. */
static size_t make_units(const pare_scheme *s, const pare_tensor *w, size_t *unit)
{
    geo g = geo_of(w);
    size_t id = 0;
    for (size_t x = 0; x < g.n; x++)
        unit[x] = (size_t)-1;
    switch (s->kind) {
    case PARE_SCHEME_UNSTRUCTURED:
        for (size_t x = 0; x < g.n; x++)
            unit[x] = id++;
        break;
    case PARE_SCHEME_FILTER:
        for (int o = 0; o < g.O; o++, id++)
            for (size_t c = 0; c < g.cols; c++)
                unit[(size_t)o * g.cols + c] = id;
        break;
    case PARE_SCHEME_CHANNEL:
        for (int c = 0; c < g.C; c++, id++)
            for (int o = 0; o < g.O; o++)
                for (int i = 0; i < g.KH; i++)
                    for (int j = 0; j < g.KW; j++)
                        unit[idx4(&g, o, c, i, j)] = id;
        break;
    case PARE_SCHEME_COLUMN:
        for (int c = 0; c < g.C; c++)
            for (int i = 0; i < g.KH; i++)
                for (int j = 0; j < g.KW; j++, id++)
                    for (int o = 0; o < g.O; o++)
                        unit[idx4(&g, o, c, i, j)] = id;
        break;
    case PARE_SCHEME_BLOCK:
        for (size_t tr = 0; tr < (size_t)g.O; tr += (size_t)s->br)
            for (size_t tc = 0; tc < g.cols; tc += (size_t)s->bc, id++)
                for (size_t r = tr; r < tr + (size_t)s->br && r < (size_t)g.O; r++)
                    for (size_t c = tc; c < tc + (size_t)s->bc && c < g.cols; c++)
                        unit[r * g.cols + c] = id;
        break;
    case PARE_SCHEME_PUNCHED:
        for (int to = 0; to < g.O; to += s->br)
            for (int tc = 0; tc < g.C; tc += s->bc)
                for (int i = 0; i < g.KH; i++)
                    for (int j = 0; j < g.KW; j++, id++)
                        for (int o = to; o < to + s->br && o < g.O; o++)
                            for (int c = tc; c < tc + s->bc && c < g.C; c++)
                                unit[idx4(&g, o, c, i, j)] = id;
        break;
    default:
        break;
    }
    for (size_t x = 0; x < g.n; x++)
        CHECKF(unit[x] < id, "weight %zu has no unit", x);
    return id;
}

/* The units of one weight under one scheme, built once per case. */
typedef struct units {
    size_t nu;
    size_t *unit; /* per weight */
    size_t *size; /* per unit */
} units;

static void units_build(const pare_scheme *s, const pare_tensor *w, units *U)
{
    U->unit = malloc(w->n * sizeof *U->unit);
    U->nu = make_units(s, w, U->unit);
    U->size = calloc(U->nu, sizeof *U->size);
    for (size_t x = 0; x < w->n; x++)
        U->size[U->unit[x]]++;
}

static void units_free(units *U)
{
    free(U->unit);
    free(U->size);
}

typedef struct rank_t {
    double s;
    size_t i;
} rank_t;

/* Pruning order: lowest score first; on a tie the higher index goes first. */
static int by_prune_order(const void *pa, const void *pb)
{
    const rank_t *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s < b->s ? -1 : 1;
    return a->i < b->i ? 1 : -1;
}

/* Prunes whole units in pruning order while the pruned count stays <= target. */
static void ref_units(const size_t *unit, size_t nu, const float *src, size_t n, size_t target,
                      uint8_t *ref)
{
    double *us = calloc(nu, sizeof *us);
    size_t *usz = calloc(nu, sizeof *usz);
    uint8_t *cut = calloc(nu, 1);
    rank_t *rk = malloc(nu * sizeof *rk);
    for (size_t x = 0; x < n; x++) {
        us[unit[x]] += sq(src[x]);
        usz[unit[x]]++;
    }
    for (size_t u = 0; u < nu; u++) {
        rk[u].s = us[u];
        rk[u].i = u;
    }
    qsort(rk, nu, sizeof *rk, by_prune_order);
    size_t done = 0;
    for (size_t k = 0; k < nu && done + usz[rk[k].i] <= target; k++) {
        cut[rk[k].i] = 1;
        done += usz[rk[k].i];
    }
    for (size_t x = 0; x < n; x++)
        ref[x] = !cut[unit[x]];
    free(rk);
    free(cut);
    free(usz);
    free(us);
}

/* N:M: in each group, pick the best N one at a time (a strict > keeps the lower channel). */
static void ref_nm(const pare_scheme *s, const pare_tensor *w, const float *src, uint8_t *ref)
{
    geo g = geo_of(w);
    for (int o = 0; o < g.O; o++)
        for (int i = 0; i < g.KH; i++)
            for (int j = 0; j < g.KW; j++)
                for (int c0 = 0; c0 < g.C; c0 += s->m) {
                    for (int t = 0; t < s->m; t++)
                        ref[idx4(&g, o, c0 + t, i, j)] = 0;
                    for (int pick = 0; pick < s->n; pick++) {
                        int best = -1;
                        for (int t = 0; t < s->m; t++) {
                            size_t x = idx4(&g, o, c0 + t, i, j);
                            if (!ref[x] &&
                                (best < 0 || sq(src[x]) > sq(src[idx4(&g, o, c0 + best, i, j)])))
                                best = t;
                        }
                        ref[idx4(&g, o, c0 + best, i, j)] = 1;
                    }
                }
}

/* DARB's block size by direct search: the power of two (1..64) nearest to
 * len / kept, ties to the smaller. */
static size_t ref_darb_block(size_t len, size_t kept)
{
    double x = (double)len / (double)kept;
    size_t best = 1;
    for (size_t b = 2; b <= 64; b *= 2)
        if (fabs((double)b - x) < fabs((double)best - x))
            best = b;
    size_t cap = 1;
    while (cap < len)
        cap *= 2;
    return best < cap ? best : cap;
}

static void ref_darb(const pare_tensor *w, const float *src, size_t target, uint8_t *ref,
                     size_t *blocks)
{
    geo g = geo_of(w);
    pare_scheme u = {.kind = PARE_SCHEME_UNSTRUCTURED};
    size_t *unit = malloc(g.n * sizeof *unit);
    size_t nu = make_units(&u, w, unit);
    ref_units(unit, nu, src, g.n, target, ref);
    free(unit);
    for (int o = 0; o < g.O; o++) {
        uint8_t *row = ref + (size_t)o * g.cols;
        const float *x = src + (size_t)o * g.cols;
        size_t kept = 0;
        for (size_t c = 0; c < g.cols; c++)
            kept += row[c];
        blocks[o] = 0;
        if (!kept)
            continue;
        size_t b = ref_darb_block(g.cols, kept);
        blocks[o] = b;
        memset(row, 0, g.cols);
        for (size_t s0 = 0; s0 < g.cols; s0 += b) {
            size_t best = s0;
            for (size_t c = s0; c < s0 + b && c < g.cols; c++)
                if (sq(x[c]) > sq(x[best]))
                    best = c;
            row[best] = 1;
        }
    }
}

/* Pattern: the best library pattern per kernel, then whole kernels in pruning order. */
static void ref_pattern(const pare_scheme *s, const pare_tensor *w, const float *src, size_t target,
                        uint8_t *ref)
{
    size_t nk = w->n / 9;
    rank_t *rk = malloc(nk * sizeof *rk);
    for (size_t k = 0; k < nk; k++) {
        int best = 0;
        double bs = -1;
        for (int l = 0; l < s->n_lib; l++) {
            double sum = 0;
            for (int q = 0; q < 9; q++)
                if (s->lib[l] >> q & 1)
                    sum += sq(src[9 * k + (size_t)q]);
            if (sum > bs) {
                bs = sum;
                best = l;
            }
        }
        for (int q = 0; q < 9; q++)
            ref[9 * k + (size_t)q] = s->lib[best] >> q & 1;
        rk[k].s = bs;
        rk[k].i = k;
    }
    if (target > 5 * nk) {
        qsort(rk, nk, sizeof *rk, by_prune_order);
        size_t drop = (target - 5 * nk) / 4;
        for (size_t k = 0; k < drop && k < nk; k++)
            memset(ref + 9 * rk[k].i, 0, 9);
    }
    free(rk);
}

/* The structure, checked without the library: 1 when mask follows the scheme. */
static int structure_ok(const pare_scheme *s, const pare_tensor *w, const units *U,
                        const uint8_t *mask)
{
    geo g = geo_of(w);
    int ok = 1;
    if (is_unit_scheme(s->kind)) {
        int *first = malloc(U->nu * sizeof *first);
        for (size_t u = 0; u < U->nu; u++)
            first[u] = -1;
        for (size_t x = 0; x < g.n; x++) {
            if (first[U->unit[x]] < 0)
                first[U->unit[x]] = mask[x] != 0;
            else if (first[U->unit[x]] != (mask[x] != 0))
                ok = 0;
        }
        free(first);
    } else if (s->kind == PARE_SCHEME_NM) {
        for (int o = 0; o < g.O; o++)
            for (int i = 0; i < g.KH; i++)
                for (int j = 0; j < g.KW; j++)
                    for (int c0 = 0; c0 < g.C; c0 += s->m) {
                        int kept = 0;
                        for (int t = 0; t < s->m; t++)
                            kept += mask[idx4(&g, o, c0 + t, i, j)] != 0;
                        if (kept > s->n)
                            ok = 0;
                    }
    } else if (s->kind == PARE_SCHEME_DARB) {
        for (int o = 0; o < g.O; o++) {
            const uint8_t *row = mask + (size_t)o * g.cols;
            size_t kept = 0, b = 64;
            for (size_t c = 0; c < g.cols; c++)
                kept += row[c] != 0;
            if (!kept)
                continue;
            while (b > 1 && (g.cols + b - 1) / b < kept)
                b /= 2;
            for (size_t s0 = 0; s0 < g.cols; s0 += b) {
                int in = 0;
                for (size_t c = s0; c < s0 + b && c < g.cols; c++)
                    in += row[c] != 0;
                if (in > 1)
                    ok = 0;
            }
        }
    } else if (s->kind == PARE_SCHEME_PATTERN) {
        for (size_t k = 0; k < g.n / 9; k++) {
            unsigned p = 0;
            int found = 0;
            for (int q = 0; q < 9; q++)
                p |= (unsigned)(mask[9 * k + (size_t)q] != 0) << q;
            for (int l = 0; l < s->n_lib; l++)
                found |= s->lib[l] == p;
            if (p && !found)
                ok = 0;
        }
    }
    return ok;
}

/* ---- random masks of the same structure ---------------------------------- */

/* Fills rnd with a random mask of the scheme's structure holding as many
 * weights as ours: the same number of pruned units of each unit size, the
 * same block size per DARB row, the same number of removed pattern kernels.
 * Ours must keep at least the squared norm of every such mask. */
static void random_like(const pare_scheme *s, const pare_tensor *w, const units *U,
                        const uint8_t *ours, const size_t *darb_b, pare_rng *r, uint8_t *rnd)
{
    geo g = geo_of(w);
    if (is_unit_scheme(s->kind)) {
        size_t nu = U->nu;
        const size_t *unit = U->unit, *usz = U->size;
        size_t *order = malloc(nu * sizeof *order);
        size_t *quota = calloc(g.n + 1, sizeof *quota);
        uint8_t *cut = calloc(nu, 1), *seen = calloc(nu, 1);
        for (size_t x = 0; x < g.n; x++) {
            if (!seen[unit[x]] && !ours[x])
                quota[usz[unit[x]]]++;
            seen[unit[x]] = 1;
        }
        for (size_t u = 0; u < nu; u++)
            order[u] = u;
        shuffle(order, nu, r);
        for (size_t k = 0; k < nu; k++)
            if (quota[usz[order[k]]]) {
                quota[usz[order[k]]]--;
                cut[order[k]] = 1;
            }
        for (size_t x = 0; x < g.n; x++)
            rnd[x] = !cut[unit[x]];
        free(seen);
        free(cut);
        free(quota);
        free(order);
    } else if (s->kind == PARE_SCHEME_NM) {
        size_t t[64];
        for (int o = 0; o < g.O; o++)
            for (int i = 0; i < g.KH; i++)
                for (int j = 0; j < g.KW; j++)
                    for (int c0 = 0; c0 < g.C; c0 += s->m) {
                        for (int k = 0; k < s->m; k++)
                            t[k] = (size_t)k;
                        shuffle(t, (size_t)s->m, r);
                        for (int k = 0; k < s->m; k++)
                            rnd[idx4(&g, o, c0 + (int)t[k], i, j)] = k < s->n;
                    }
    } else if (s->kind == PARE_SCHEME_DARB) {
        memset(rnd, 0, g.n);
        for (int o = 0; o < g.O; o++) {
            size_t b = darb_b[o];
            for (size_t s0 = 0; b && s0 < g.cols; s0 += b) {
                size_t len = s0 + b < g.cols ? b : g.cols - s0;
                rnd[(size_t)o * g.cols + s0 + (size_t)pare_rng_below(r, len)] = 1;
            }
        }
    } else if (s->kind == PARE_SCHEME_PATTERN) {
        size_t nk = g.n / 9, removed = 0;
        size_t *order = malloc(nk * sizeof *order);
        for (size_t k = 0; k < nk; k++) {
            int empty = 1;
            for (int q = 0; q < 9; q++)
                empty &= !ours[9 * k + (size_t)q];
            removed += (size_t)empty;
            unsigned p = s->lib[pare_rng_below(r, (uint64_t)s->n_lib)];
            for (int q = 0; q < 9; q++)
                rnd[9 * k + (size_t)q] = p >> q & 1;
            order[k] = k;
        }
        shuffle(order, nk, r);
        for (size_t k = 0; k < removed; k++)
            memset(rnd + 9 * order[k], 0, 9);
        free(order);
    }
}

/* ---- one case of the sweep ----------------------------------------------- */

static char shape_text[64];

static const char *shape_name(const pare_tensor *w)
{
    if (w->ndim == 4)
        snprintf(shape_text, sizeof shape_text, "conv %dx%dx%dx%d", w->dims[0], w->dims[1],
                 w->dims[2], w->dims[3]);
    else
        snprintf(shape_text, sizeof shape_text, "linear %dx%d", w->dims[0], w->dims[1]);
    return shape_text;
}

/* Flips one weight so the structure breaks; returns its index or -1 when this
 * mask has no such weight (e.g. every unit is a single weight). */
static long break_structure(const pare_scheme *s, const pare_tensor *w, const units *U,
                            uint8_t *mask)
{
    geo g = geo_of(w);
    if (is_unit_scheme(s->kind) && s->kind != PARE_SCHEME_UNSTRUCTURED) {
        long hit = -1;
        /* The first weight of a unit of two or more. */
        for (size_t x = 0; x < g.n && hit < 0; x++)
            if (U->size[U->unit[x]] > 1)
                hit = (long)x;
        if (hit >= 0)
            mask[hit] = !mask[hit];
        return hit;
    }
    if (s->kind == PARE_SCHEME_NM || s->kind == PARE_SCHEME_PATTERN) {
        /* NM: groups keep exactly N, so one more breaks it; pattern: a fifth
         * weight in a kept kernel. */
        for (size_t x = 0; x < g.n; x++) {
            if (mask[x])
                continue;
            if (s->kind == PARE_SCHEME_PATTERN) {
                size_t k = x / 9;
                int any = 0;
                for (int q = 0; q < 9; q++)
                    any |= mask[9 * k + (size_t)q];
                if (!any)
                    continue;
            }
            mask[x] = 1;
            return (long)x;
        }
    }
    return -1;
}

static void run_case(const pare_scheme *s, const pare_tensor *w, const float *score, double sp,
                     uint64_t seed)
{
    geo g = geo_of(w);
    const float *src = score ? score : w->data;
    size_t n = g.n, target = target_of(sp, n);
    uint8_t *mask = malloc(n), *ref = malloc(n), *rnd = malloc(n);
    size_t *darb_b = calloc((size_t)g.O, sizeof *darb_b);
    units U = {0, NULL, NULL};
    char name[48], what[160];
    if (is_unit_scheme(s->kind))
        units_build(s, w, &U);
    pare_scheme_format(s, name, sizeof name);
    snprintf(what, sizeof what, "%s on %s%s at sparsity %.2f", name, shape_name(w),
             score ? " (scored)" : "", sp);

    memset(mask, 7, n);
    pare_status st = pare_scheme_project(s, w, score, sp, mask);
    CHECKF(st == PARE_OK, "%s: %s", what, pare_last_error());
    if (st != PARE_OK)
        goto done;
    int binary = 1;
    for (size_t x = 0; x < n; x++)
        binary &= mask[x] <= 1;
    CHECKF(binary, "%s: mask bytes are not 0/1", what);
    CHECKF(pare_scheme_satisfied(s, w, mask), "%s: pare_scheme_satisfied says no", what);
    CHECKF(structure_ok(s, w, &U, mask), "%s: the test's checker says the structure is broken",
           what);

    /* The reference mask by brute force. */
    size_t max_unit = 1;
    if (is_unit_scheme(s->kind)) {
        for (size_t u = 0; u < U.nu; u++)
            max_unit = U.size[u] > max_unit ? U.size[u] : max_unit;
        ref_units(U.unit, U.nu, src, n, target, ref);
    } else if (s->kind == PARE_SCHEME_NM) {
        ref_nm(s, w, src, ref);
    } else if (s->kind == PARE_SCHEME_DARB) {
        ref_darb(w, src, target, ref, darb_b);
    } else {
        ref_pattern(s, w, src, target, ref);
    }
    CHECKF(memcmp(mask, ref, n) == 0, "%s: the mask differs from the brute-force reference", what);

    /* The target: never exceeded, missed by less than one unit. */
    size_t pruned = count_pruned(mask, n);
    if (is_unit_scheme(s->kind)) {
        CHECKF(pruned <= target && target - pruned < max_unit,
               "%s: pruned %zu for a target of %zu (units of up to %zu)", what, pruned, target,
               max_unit);
    } else if (s->kind == PARE_SCHEME_NM) {
        CHECKF(pruned == n / (size_t)s->m * (size_t)(s->m - s->n), "%s: pruned %zu of %zu", what,
               pruned, n);
    } else if (s->kind == PARE_SCHEME_PATTERN) {
        if (target > 5 * (n / 9))
            CHECKF(pruned <= target && target - pruned < 4, "%s: pruned %zu for a target of %zu",
                   what, pruned, target);
        else
            CHECKF(pruned == 5 * (n / 9), "%s: pruned %zu, patterns alone prune %zu", what, pruned,
                   5 * (n / 9));
    } else {
        /* DARB: each row keeps one weight per block of its size; the reached
         * sparsity follows from the rounding to powers of two. */
        size_t want = 0;
        for (int o = 0; o < g.O; o++)
            want += darb_b[o] ? (g.cols + darb_b[o] - 1) / darb_b[o] : 0;
        CHECKF(n - pruned == want, "%s: kept %zu, the row block sizes give %zu", what, n - pruned,
               want);
    }

    /* Better than (or as good as) random masks of the same structure. */
    double ours = kept_norm(mask, src, n);
    pare_rng r;
    pare_rng_seed(&r, seed, 5, 0, 0);
    for (int t = 0; t < 20; t++) {
        random_like(s, w, &U, mask, darb_b, &r, rnd);
        CHECKF(count_pruned(rnd, n) == pruned, "%s: random mask %d prunes %zu, not %zu", what, t,
               count_pruned(rnd, n), pruned);
        CHECKF(pare_scheme_satisfied(s, w, rnd) && structure_ok(s, w, &U, rnd),
               "%s: random mask %d does not follow the scheme", what, t);
        double other = kept_norm(rnd, src, n);
        CHECKF(ours >= other - 1e-9 * (1 + ours), "%s: kept norm %.9g < %.9g of random mask %d",
               what, ours, other, t);
    }

    /* One flipped weight breaks the structure, and both checkers see it. */
    long hit = break_structure(s, w, &U, mask);
    if (hit >= 0) {
        CHECKF(!pare_scheme_satisfied(s, w, mask), "%s: flipping weight %ld goes unnoticed", what,
               hit);
        CHECKF(!structure_ok(s, w, &U, mask), "%s: the test's checker misses flipped weight %ld",
               what, hit);
    }
done:
    units_free(&U);
    free(darb_b);
    free(rnd);
    free(ref);
    free(mask);
}

/* ---- the sweep ----------------------------------------------------------- */

static const int sweep_shapes[][5] = {
    /* ndim, dims */
    {4, 4, 8, 3, 3},     {4, 16, 32, 3, 3}, {4, 6, 5, 3, 3},  {4, 8, 4, 1, 1},  {4, 1, 3, 3, 3},
    {4, 5, 1, 3, 3},     {4, 3, 6, 5, 5},   {4, 7, 2, 1, 3},  {4, 12, 8, 3, 3}, {2, 10, 16, 0, 0},
    {2, 64, 3136, 0, 0}, {2, 1, 37, 0, 0},  {2, 13, 1, 0, 0}, {2, 7, 12, 0, 0}, {2, 9, 64, 0, 0},
};
static const double sweep_sparsities[] = {0, 0.5, 0.75, 0.9, 0.95};

static int applies(const pare_scheme *s, const pare_tensor *w)
{
    if (s->kind == PARE_SCHEME_NM)
        return w->dims[1] % s->m == 0;
    if (s->kind == PARE_SCHEME_PATTERN)
        return w->ndim == 4 && w->dims[2] == 3 && w->dims[3] == 3;
    return 1;
}

/* Every shape and sparsity; odd-numbered shapes score with a separate array
 * (ADMM's |W + U|) while the weight holds unrelated values. */
static void sweep(const char *text, uint64_t seed)
{
    pare_scheme base;
    CHECK_OK(pare_scheme_parse(text, &base));
    int n_shapes = (int)(sizeof sweep_shapes / sizeof sweep_shapes[0]);
    for (int k = 0; k < n_shapes; k++) {
        const int *d = sweep_shapes[k];
        pare_tensor *w = tensor(d[0], d[1], d[2], d[3], d[4]);
        float *score = NULL;
        pare_scheme s = base;
        fill_normal(w->data, w->n, seed * 100 + (uint64_t)k);
        if (k % 2) {
            score = malloc(w->n * sizeof *score);
            fill_normal(score, w->n, seed * 100 + (uint64_t)k + 50);
            for (size_t x = 0; x < w->n; x++)
                score[x] = fabsf(score[x] + 0.1f * w->data[x]);
        }
        pare_status st = pare_scheme_check(&s, w, "sweep.layer");
        if (!applies(&s, w)) {
            uint8_t *mask = malloc(w->n);
            CHECKF(st == PARE_ESHAPE, "%s on %s: check gave %s, wanted a refusal", text,
                   shape_name(w), pare_status_name(st));
            CHECKF(strstr(pare_last_error(), "sweep.layer") != NULL,
                   "the refusal names no layer: %s", pare_last_error());
            CHECK(pare_scheme_project(&s, w, score, 0.5, mask) == PARE_ESHAPE);
            free(mask);
        } else {
            CHECKF(st == PARE_OK, "%s on %s: %s", text, shape_name(w), pare_last_error());
            if (s.kind == PARE_SCHEME_PATTERN) {
                const pare_tensor *ws[1] = {w};
                CHECK_OK(pare_pattern_library(ws, 1, s.patterns, &s));
            }
            for (size_t j = 0; j < sizeof sweep_sparsities / sizeof sweep_sparsities[0]; j++)
                run_case(&s, w, score, sweep_sparsities[j], seed + j);
        }
        free(score);
        pare_tensor_free(w);
    }
}

PARE_TEST(scheme_unstructured)
{
    sweep("unstructured", 1);
}

PARE_TEST(scheme_nm)
{
    sweep("2:4", 2);
    sweep("1:2", 3);
    sweep("nm:4:8", 4);
    sweep("1:4", 5);
    sweep("3:4", 6);
}

PARE_TEST(scheme_block)
{
    sweep("block:4x4", 7);
    sweep("block:8x1", 8);
    sweep("block:1x8", 9);
    sweep("block:3x5", 10);
    sweep("block:16x32", 11);
}

PARE_TEST(scheme_punched)
{
    sweep("punched:8x4", 12);
    sweep("punched:2x3", 13);
    sweep("punched:4x1", 14);
    sweep("punched:1x1", 15);
}

PARE_TEST(scheme_filter)
{
    sweep("filter", 16);
}
PARE_TEST(scheme_channel)
{
    sweep("channel", 17);
}
PARE_TEST(scheme_column)
{
    sweep("column", 18);
}
PARE_TEST(scheme_darb)
{
    sweep("darb", 19);
}

PARE_TEST(scheme_pattern)
{
    sweep("pattern", 20);
    sweep("pattern:1", 21);
    sweep("pattern:56", 22);
}

/* ---- text forms ---------------------------------------------------------- */

PARE_TEST(scheme_parse_format)
{
    static const struct {
        const char *text, *canonical;
        pare_scheme_kind kind;
        int a, b; /* n, m / br, bc / patterns */
    } good[] = {
        {"unstructured", "unstructured", PARE_SCHEME_UNSTRUCTURED, 0, 0},
        {"2:4", "2:4", PARE_SCHEME_NM, 2, 4},
        {"nm:2:4", "2:4", PARE_SCHEME_NM, 2, 4},
        {"1:64", "1:64", PARE_SCHEME_NM, 1, 64},
        {"63:64", "63:64", PARE_SCHEME_NM, 63, 64},
        {"block:4x4", "block:4x4", PARE_SCHEME_BLOCK, 4, 4},
        {"block:16x1", "block:16x1", PARE_SCHEME_BLOCK, 16, 1},
        {"block:04x4", "block:4x4", PARE_SCHEME_BLOCK, 4, 4},
        {"punched:8x4", "punched:8x4", PARE_SCHEME_PUNCHED, 8, 4},
        {"darb", "darb", PARE_SCHEME_DARB, 0, 0},
        {"pattern", "pattern:8", PARE_SCHEME_PATTERN, 8, 0},
        {"pattern:8", "pattern:8", PARE_SCHEME_PATTERN, 8, 0},
        {"pattern:1", "pattern:1", PARE_SCHEME_PATTERN, 1, 0},
        {"pattern:56", "pattern:56", PARE_SCHEME_PATTERN, 56, 0},
        {"filter", "filter", PARE_SCHEME_FILTER, 0, 0},
        {"channel", "channel", PARE_SCHEME_CHANNEL, 0, 0},
        {"column", "column", PARE_SCHEME_COLUMN, 0, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pare_scheme s, back;
        char buf[64];
        memset(&s, 0xAB, sizeof s);
        CHECK_OK(pare_scheme_parse(good[i].text, &s));
        CHECKF(s.kind == good[i].kind, "%s: kind %d", good[i].text, (int)s.kind);
        if (s.kind == PARE_SCHEME_NM)
            CHECKF(s.n == good[i].a && s.m == good[i].b, "%s: %d:%d", good[i].text, s.n, s.m);
        if (s.kind == PARE_SCHEME_BLOCK || s.kind == PARE_SCHEME_PUNCHED)
            CHECKF(s.br == good[i].a && s.bc == good[i].b, "%s: %dx%d", good[i].text, s.br, s.bc);
        if (s.kind == PARE_SCHEME_PATTERN)
            CHECKF(s.patterns == good[i].a, "%s: K = %d", good[i].text, s.patterns);
        CHECKF(s.n_lib == 0, "%s: a parsed scheme has no library", good[i].text);
        pare_scheme_format(&s, buf, sizeof buf);
        CHECKF(!strcmp(buf, good[i].canonical), "%s formats as %s", good[i].text, buf);
        CHECK_OK(pare_scheme_parse(buf, &back));
        CHECKF(!memcmp(&s, &back, sizeof s), "%s does not round-trip through %s", good[i].text,
               buf);
    }

    static const char *const bad[] = {
        "3:2",
        "2:2",
        "0:4",
        "1:65",
        "block:0x4",
        "block:4x0",
        "block:4",
        "block:4x",
        "block:x4",
        "block:4x4x4",
        "block:65537x1",
        "punched:8",
        "pattern:0",
        "pattern:57",
        "pattern:",
        "pattern:8x",
        "foo",
        "",
        "2:4 ",
        " 2:4",
        "2:",
        ":4",
        "2:4:8",
        "nm:2",
        "nm:",
        "-1:4",
        "+2:4",
        "Unstructured",
        "darb:4",
        "filter:2",
        "99999999999999999999:4",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pare_scheme s;
        memset(&s, 0x5A, sizeof s);
        pare_scheme keep = s;
        pare_status st = pare_scheme_parse(bad[i], &s);
        CHECKF(st == PARE_EINVAL, "\"%s\" parsed (%s)", bad[i], pare_status_name(st));
        CHECKF(strstr(pare_last_error(), bad[i]) != NULL,
               "the sentence for \"%s\" does not quote it: %s", bad[i], pare_last_error());
        CHECKF(!memcmp(&s, &keep, sizeof s), "\"%s\" changed the output on failure", bad[i]);
    }
    pare_scheme s;
    CHECK(pare_scheme_parse("foo", &s) == PARE_EINVAL);
    CHECKF(strstr(pare_last_error(), "block:RxC") && strstr(pare_last_error(), "pattern:K") &&
               strstr(pare_last_error(), "punched:RxC") && strstr(pare_last_error(), "N:M"),
           "the sentence does not list the forms: %s", pare_last_error());
    CHECK(pare_scheme_parse(NULL, &s) == PARE_EINVAL);
    CHECK(pare_scheme_parse("2:4", NULL) == PARE_EINVAL);

    /* Names and odd structs. */
    static const char *const names[] = {"none", "unstructured", "nm",     "block",   "punched",
                                        "darb", "pattern",      "filter", "channel", "column"};
    for (int k = 0; k < PARE_SCHEME__COUNT; k++)
        CHECKF(!strcmp(pare_scheme_kind_name((pare_scheme_kind)k), names[k]), "kind %d is %s", k,
               pare_scheme_kind_name((pare_scheme_kind)k));
    CHECK(!strcmp(pare_scheme_kind_name(PARE_SCHEME__COUNT), "unknown"));
    char buf[16];
    pare_scheme z = {.kind = PARE_SCHEME_PATTERN};
    pare_scheme_format(&z, buf, sizeof buf);
    CHECKF(!strcmp(buf, "pattern:8"), "a zeroed pattern scheme formats as %s", buf);
    z.kind = PARE_SCHEME_NONE;
    pare_scheme_format(&z, buf, sizeof buf);
    CHECK(!strcmp(buf, "none"));
    pare_scheme big = {.kind = PARE_SCHEME_BLOCK, .br = 65536, .bc = 65536};
    pare_scheme_format(&big, buf, 8); /* truncated, still terminated */
    CHECK(strlen(buf) == 7);
    pare_scheme_format(&big, buf, 0);
}

/* ---- refusals ------------------------------------------------------------ */

static int said(const char *part)
{
    return strstr(pare_last_error(), part) != NULL;
}

PARE_TEST(scheme_check_refusals)
{
    pare_scheme s;
    pare_tensor *fc = tensor(2, 10, 3136, 0, 0), *conv = tensor(4, 8, 6, 3, 3);
    pare_tensor *one = tensor(4, 8, 16, 1, 1), *bias = tensor(1, 10, 0, 0, 0);
    pare_tensor *t3 = tensor(3, 2, 3, 4, 0), *k5 = tensor(4, 8, 16, 5, 5);

    CHECK_OK(pare_scheme_parse("1:3", &s));
    CHECK_STATUS(pare_scheme_check(&s, fc, "fc1"), PARE_ESHAPE);
    CHECKF(said("N:M needs M to divide the input dimension: layer fc1 has 3136 inputs, M = 3"),
           "%s", pare_last_error());
    CHECK_OK(pare_scheme_parse("2:4", &s));
    CHECK_STATUS(pare_scheme_check(&s, conv, "block1.conv"), PARE_ESHAPE);
    CHECKF(said("layer block1.conv has 6 input channels per group, M = 4"), "%s",
           pare_last_error());
    CHECK_OK(pare_scheme_check(&s, one, "c"));

    CHECK_OK(pare_scheme_parse("pattern", &s));
    CHECK_STATUS(pare_scheme_check(&s, one, "block1.conv"), PARE_ESHAPE);
    CHECKF(said("the pattern scheme needs a 3x3 conv; layer block1.conv is 1x1"), "%s",
           pare_last_error());
    CHECK_STATUS(pare_scheme_check(&s, k5, "c5"), PARE_ESHAPE);
    CHECKF(said("is 5x5"), "%s", pare_last_error());
    CHECK_STATUS(pare_scheme_check(&s, fc, "fc1"), PARE_ESHAPE);
    CHECKF(said("layer fc1 is a linear layer"), "%s", pare_last_error());
    CHECK_OK(pare_scheme_check(&s, conv, "c3"));
    uint8_t mask[8 * 16];
    CHECK_STATUS(pare_scheme_project(&s, one, NULL, 0.5, mask), PARE_ESHAPE);

    /* 1-D and 3-D tensors for every scheme. */
    static const char *const all[] = {"unstructured", "2:4",    "block:4x4", "punched:8x4", "darb",
                                      "pattern",      "filter", "channel",   "column"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK_OK(pare_scheme_parse(all[i], &s));
        CHECK_STATUS(pare_scheme_check(&s, bias, "fc1.bias"), PARE_ESHAPE);
        CHECKF(said("layer fc1.bias has 1 dimension") && said("[O, I]"), "%s", pare_last_error());
        CHECK_STATUS(pare_scheme_check(&s, t3, NULL), PARE_ESHAPE);
        CHECKF(said("the weight has 3 dimensions"), "%s", pare_last_error());
        CHECK_STATUS(pare_scheme_project(&s, bias, NULL, 0.5, mask), PARE_ESHAPE);
        CHECK(!pare_scheme_satisfied(&s, bias, mask));
    }

    /* Parameters that parse would refuse, set by hand. */
    pare_scheme h = {.kind = PARE_SCHEME_NM, .n = 3, .m = 2};
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    CHECKF(said("1 <= N < M <= 64, got 3:2"), "%s", pare_last_error());
    h.n = 0;
    h.m = 4;
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    h = (pare_scheme){.kind = PARE_SCHEME_BLOCK, .br = 0, .bc = 4};
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    CHECKF(said("block sides of at least 1, got 0x4"), "%s", pare_last_error());
    h = (pare_scheme){.kind = PARE_SCHEME_PUNCHED, .br = 8, .bc = -1};
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    h = (pare_scheme){.kind = PARE_SCHEME_NONE};
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    CHECKF(said("no sparsity scheme is set for layer x"), "%s", pare_last_error());
    h.kind = PARE_SCHEME__COUNT;
    CHECK_STATUS(pare_scheme_check(&h, one, "x"), PARE_EINVAL);
    h = (pare_scheme){.kind = PARE_SCHEME_PATTERN, .n_lib = 65};
    CHECK_STATUS(pare_scheme_check(&h, conv, "x"), PARE_EINVAL);
    CHECK_STATUS(pare_scheme_check(NULL, conv, "x"), PARE_EINVAL);
    CHECK_STATUS(pare_scheme_check(&s, NULL, "x"), PARE_EINVAL);

    /* A tensor whose element count disagrees with its dims. */
    pare_tensor lie = *fc;
    lie.n = 7;
    CHECK_OK(pare_scheme_parse("filter", &s));
    CHECK_STATUS(pare_scheme_check(&s, &lie, "fc9"), PARE_ESHAPE);
    CHECKF(said("layer fc9"), "%s", pare_last_error());

    pare_tensor_free(fc);
    pare_tensor_free(conv);
    pare_tensor_free(one);
    pare_tensor_free(bias);
    pare_tensor_free(t3);
    pare_tensor_free(k5);
}

PARE_TEST(scheme_project_refusals)
{
    pare_tensor *w = tensor(4, 4, 8, 3, 3);
    uint8_t *mask = malloc(w->n);
    pare_scheme s;
    fill_normal(w->data, w->n, 3);
    static const char *const all[] = {"unstructured", "2:4",    "block:4x4", "punched:8x4", "darb",
                                      "pattern",      "filter", "channel",   "column"};
    static const double bad[] = {1.0, 1.2, -0.1, -1e-300, 1e300};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK_OK(pare_scheme_parse(all[i], &s));
        if (s.kind == PARE_SCHEME_PATTERN) {
            const pare_tensor *ws[1] = {w};
            CHECK_OK(pare_pattern_library(ws, 1, 8, &s));
        }
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            CHECK_STATUS(pare_scheme_project(&s, w, NULL, bad[j], mask), PARE_EINVAL);
            CHECKF(said("sparsity must be in [0, 1), got"), "%s", pare_last_error());
        }
        CHECK_STATUS(pare_scheme_project(&s, w, NULL, NAN, mask), PARE_EINVAL);
        CHECK_STATUS(pare_scheme_project(&s, w, NULL, 0.5, NULL), PARE_EINVAL);
        CHECK_OK(pare_scheme_project(&s, w, NULL, 0.999999, mask));
        CHECK(pare_scheme_satisfied(&s, w, mask));
        CHECK(!pare_scheme_satisfied(&s, w, NULL));
    }
    CHECK_OK(pare_scheme_parse("unstructured", &s));
    CHECK_STATUS(pare_scheme_project(&s, w, NULL, 1.2, mask), PARE_EINVAL);
    CHECKF(!strcmp(pare_last_error(), "sparsity must be in [0, 1), got 1.2"), "%s",
           pare_last_error());

    /* The pattern scheme without (or with a broken) library. */
    CHECK_OK(pare_scheme_parse("pattern", &s));
    CHECK_STATUS(pare_scheme_project(&s, w, NULL, 0.5, mask), PARE_EINVAL);
    CHECKF(said("the pattern library is not built"), "%s", pare_last_error());
    s.n_lib = 2;
    s.lib[0] = 0x17;
    s.lib[1] = 0x1F; /* five weights */
    CHECK_STATUS(pare_scheme_project(&s, w, NULL, 0.5, mask), PARE_EINVAL);
    CHECKF(said("pattern library entry 1 (0x01f)"), "%s", pare_last_error());
    CHECK(!pare_scheme_satisfied(&s, w, mask));
    s.lib[1] = 0x0F; /* no centre */
    CHECK_STATUS(pare_scheme_project(&s, w, NULL, 0.5, mask), PARE_EINVAL);

    /* No data to score: fine when a score is given. */
    pare_tensor empty = *w;
    empty.data = NULL;
    CHECK_OK(pare_scheme_parse("unstructured", &s));
    CHECK_STATUS(pare_scheme_project(&s, &empty, NULL, 0.5, mask), PARE_EINVAL);
    CHECK_OK(pare_scheme_project(&s, &empty, w->data, 0.5, mask));
    free(mask);
    pare_tensor_free(w);
}

PARE_TEST(scheme_gemm_view)
{
    int r, c, h, k;
    pare_tensor *conv = tensor(4, 8, 4, 3, 5), *fc = tensor(2, 10, 16, 0, 0);
    pare_tensor *bias = tensor(1, 10, 0, 0, 0);
    pare_gemm_view(conv, &r, &c, &h, &k);
    CHECK(r == 8 && c == 60 && h == 3 && k == 5);
    pare_gemm_view(fc, &r, &c, &h, &k);
    CHECK(r == 10 && c == 16 && h == 1 && k == 1);
    pare_gemm_view(bias, &r, &c, &h, &k);
    CHECK(r == 0 && c == 0 && h == 0 && k == 0);
    pare_gemm_view(NULL, &r, &c, &h, &k);
    CHECK(r == 0 && c == 0);
    pare_gemm_view(conv, &r, NULL, NULL, NULL);
    CHECK(r == 8);
    pare_tensor_free(conv);
    pare_tensor_free(fc);
    pare_tensor_free(bias);
}

/* ---- PatDNN -------------------------------------------------------------- */

/* A kernel whose best pattern is the centre plus positions a, b, c: those
 * get large |w| (one negative), the centre a tiny one, the rest in between. */
static void pattern_kernel(float *k, int a, int b, int c, float jitter)
{
    static const float rest[9] = {0.5f, -0.9f, 0.3f, -0.7f, 0.01f, 0.8f, -0.2f, 0.6f, -0.4f};
    for (int q = 0; q < 9; q++)
        k[q] = rest[q] + jitter;
    k[4] = 0.01f;
    k[a] = -3.0f;
    k[b] = 2.5f;
    k[c] = 4.0f + jitter;
}

static unsigned pat(int a, int b, int c)
{
    return 1u << 4 | 1u << a | 1u << b | 1u << c;
}

static int valid_pattern(unsigned p)
{
    int n = 0;
    for (int q = 0; q < 9; q++)
        n += p >> q & 1;
    return p < 512 && (p >> 4 & 1) && n == 4;
}

PARE_TEST(scheme_pattern_library)
{
    /* 12 kernels over two weights: A x5, B x3, C x3, D x1. */
    pare_tensor *w1 = tensor(4, 2, 3, 3, 3), *w2 = tensor(4, 3, 2, 3, 3);
    const unsigned A = pat(0, 1, 2), B = pat(6, 7, 8), C = pat(0, 2, 6), D = pat(1, 3, 5);
    const int which[12][3] = {{2, 0, 1}, {6, 7, 8}, {0, 2, 6}, {0, 1, 2}, {8, 6, 7}, {2, 1, 0},
                              {6, 0, 2}, {0, 1, 2}, {1, 3, 5}, {7, 8, 6}, {2, 6, 0}, {1, 0, 2}};
    for (int k = 0; k < 12; k++) {
        float *dst = k < 6 ? w1->data + 9 * k : w2->data + 9 * (k - 6);
        pattern_kernel(dst, which[k][0], which[k][1], which[k][2], 0.001f * (float)k);
    }
    const pare_tensor *ws[2] = {w1, w2};
    pare_scheme s = {.kind = PARE_SCHEME_PATTERN};

    CHECK_OK(pare_pattern_library(ws, 2, 3, &s));
    CHECK(s.n_lib == 3 && s.patterns == 3);
    /* B and C tie at 3: the lower mask value (C) first. */
    CHECKF(s.lib[0] == A && s.lib[1] == C && s.lib[2] == B, "library %#x %#x %#x", s.lib[0],
           s.lib[1], s.lib[2]);
    CHECK(C < B);

    CHECK_OK(pare_pattern_library(ws, 2, 5, &s));
    /* Then D (1), then the lowest-valued candidate that never occurred. */
    CHECKF(s.n_lib == 5 && s.lib[3] == D && s.lib[4] == pat(0, 1, 3), "library[3..4] %#x %#x",
           s.lib[3], s.lib[4]);

    CHECK_OK(pare_pattern_library(ws, 2, 56, &s));
    CHECK(s.n_lib == 56);
    int seen[512] = {0}, ok = 1;
    for (int l = 0; l < 56; l++) {
        ok &= valid_pattern(s.lib[l]) && !seen[s.lib[l]];
        seen[s.lib[l]] = 1;
        if (l >= 5)
            ok &= s.lib[l] > s.lib[l - 1]; /* the unused ones (from 4 on) in rising value */
    }
    CHECK(ok);

    /* One weight alone counts only its kernels: w2 holds B x1, C x2, A x2,
     * D x1, and A (23) and C (85) tie. */
    CHECK_OK(pare_pattern_library(ws + 1, 1, 2, &s));
    CHECKF(s.lib[0] == A && s.lib[1] == C, "w2 library %#x %#x", s.lib[0], s.lib[1]);

    /* Ties inside a kernel go to the lower position; NaN ranks lowest; the
     * centre is kept however small. */
    pare_tensor *t = tensor(4, 1, 1, 3, 3);
    for (int q = 0; q < 9; q++)
        t->data[q] = 1.0f;
    const pare_tensor *tw[1] = {t};
    CHECK_OK(pare_pattern_library(tw, 1, 1, &s));
    CHECK(s.lib[0] == pat(0, 1, 2));
    t->data[0] = NAN;
    t->data[4] = 0;
    CHECK_OK(pare_pattern_library(tw, 1, 1, &s));
    CHECKF(s.lib[0] == pat(1, 2, 3), "NaN kernel gives %#x", s.lib[0]);

    /* Refusals leave the scheme as it was. */
    pare_scheme keep = s;
    CHECK_STATUS(pare_pattern_library(ws, 2, 0, &s), PARE_EINVAL);
    CHECK_STATUS(pare_pattern_library(ws, 2, 57, &s), PARE_EINVAL);
    CHECK_STATUS(pare_pattern_library(ws, 0, 8, &s), PARE_EINVAL);
    CHECK_STATUS(pare_pattern_library(NULL, 1, 8, &s), PARE_EINVAL);
    CHECK_STATUS(pare_pattern_library(ws, 2, 8, NULL), PARE_EINVAL);
    pare_tensor *fc = tensor(2, 4, 9, 0, 0);
    const pare_tensor *mixed[2] = {w1, fc};
    CHECK_STATUS(pare_pattern_library(mixed, 2, 8, &s), PARE_ESHAPE);
    CHECKF(said("weight 2 of 2"), "%s", pare_last_error());
    CHECK(!memcmp(&s, &keep, sizeof s));

    pare_tensor_free(fc);
    pare_tensor_free(t);
    pare_tensor_free(w1);
    pare_tensor_free(w2);
}

static unsigned kernel_bits(const uint8_t *m)
{
    unsigned p = 0;
    for (int q = 0; q < 9; q++)
        p |= (unsigned)(m[q] != 0) << q;
    return p;
}

PARE_TEST(scheme_pattern_choice)
{
    const unsigned A = pat(0, 1, 2), B = pat(6, 7, 8), D = pat(1, 3, 5);
    pare_scheme s = {.kind = PARE_SCHEME_PATTERN, .patterns = 3, .n_lib = 3, .lib = {A, B, D}};
    pare_tensor *w = tensor(4, 1, 4, 3, 3);
    uint8_t mask[36];
    float *k = w->data;
    /* Kernel 0 favours B; kernel 1 ties A and B; kernel 2 is best as the
     * centre + {0, 2, 8}, not in the library, where A is the best fit;
     * kernel 3 is all zero. */
    const float k0[9] = {1, 1, 1, 1, 0.1f, 1, 3, 3, 3};
    const float k1[9] = {2, 2, 2, 0, 5, 0, 2, 2, 2};
    const float k2[9] = {3, 0.5f, 3, 0.5f, 1, 0.5f, 0.5f, 0.5f, 3};
    memcpy(k, k0, sizeof k0);
    memcpy(k + 9, k1, sizeof k1);
    memcpy(k + 18, k2, sizeof k2);
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0, mask));
    CHECKF(kernel_bits(mask) == B, "kernel 0 took %#x", kernel_bits(mask));
    CHECKF(kernel_bits(mask + 9) == A, "kernel 1 took %#x", kernel_bits(mask + 9));
    CHECKF(kernel_bits(mask + 18) == A, "kernel 2 took %#x", kernel_bits(mask + 18));
    CHECKF(kernel_bits(mask + 27) == A, "kernel 3 took %#x", kernel_bits(mask + 27));
    /* With B listed first the tie goes to B. */
    s.lib[0] = B;
    s.lib[1] = A;
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0, mask));
    CHECKF(kernel_bits(mask + 9) == B, "kernel 1 took %#x", kernel_bits(mask + 9));
    CHECK(pare_scheme_satisfied(&s, w, mask));
    /* Scores, not weights, decide. */
    float score[36];
    for (int q = 0; q < 36; q++)
        score[q] = 0.1f;
    score[9 * 0 + 3] = score[9 * 0 + 5] = score[9 * 0 + 1] = 9; /* kernel 0 -> D */
    CHECK_OK(pare_scheme_project(&s, w, score, 0, mask));
    CHECKF(kernel_bits(mask) == D, "scored kernel 0 took %#x", kernel_bits(mask));
    /* The 5/9 floor: any target below it gives patterns only. */
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.3, mask));
    CHECK(count_pruned(mask, 36) == 20);
    CHECK_OK(pare_scheme_project(&s, w, NULL, 5.0 / 9.0, mask));
    CHECK(count_pruned(mask, 36) == 20);
    /* 24 of 36 prunes one kernel, the one with the weakest pattern (kernel 3). */
    CHECK_OK(pare_scheme_project(&s, w, NULL, 24.0 / 36, mask));
    CHECK(count_pruned(mask, 36) == 24 && kernel_bits(mask + 27) == 0);
    pare_tensor_free(w);

    /* 90% on 16x32x3x3: patterns (5/9) x connectivity, kernels kept ~ 0.225,
     * and every removed kernel's pattern norm <= every kept one's. */
    w = tensor(4, 16, 32, 3, 3);
    fill_normal(w->data, w->n, 9);
    const pare_tensor *ws[1] = {w};
    pare_scheme p;
    CHECK_OK(pare_scheme_parse("pattern", &p));
    CHECK_OK(pare_pattern_library(ws, 1, 8, &p));
    uint8_t *m = malloc(w->n);
    CHECK_OK(pare_scheme_project(&p, w, NULL, 0.9, m));
    size_t nk = w->n / 9, kept = 0, target = target_of(0.9, w->n);
    double lo_kept = INFINITY, hi_cut = 0;
    for (size_t kk = 0; kk < nk; kk++) {
        unsigned bits = kernel_bits(m + 9 * kk);
        double best = 0;
        for (int l = 0; l < p.n_lib; l++) {
            double sum = 0;
            for (int q = 0; q < 9; q++)
                if (p.lib[l] >> q & 1)
                    sum += sq(w->data[9 * kk + (size_t)q]);
            if (sum > best)
                best = sum;
        }
        if (bits) {
            kept++;
            lo_kept = best < lo_kept ? best : lo_kept;
        } else {
            hi_cut = best > hi_cut ? best : hi_cut;
        }
    }
    size_t pruned = count_pruned(m, w->n);
    CHECKF(pruned <= target && target - pruned < 4, "pruned %zu for %zu", pruned, target);
    CHECKF(fabs((double)kept / (double)nk - 0.225) < 0.01, "kept %zu of %zu kernels", kept, nk);
    CHECK(hi_cut <= lo_kept);
    free(m);
    pare_tensor_free(w);
}

/* ---- DARB ---------------------------------------------------------------- */

/* Rows whose kept counts after unstructured pruning are known: kept weights
 * are >= 10, the rest < 0.01, and the target is exactly the small ones. */
static void darb_case(int len, const int *kept, const int *want_b, int rows, uint64_t seed)
{
    pare_tensor *w = tensor(2, rows, len, 0, 0);
    pare_rng r;
    pare_rng_seed(&r, seed, 0, 0, 0);
    size_t small = 0, *pos = malloc((size_t)len * sizeof *pos);
    for (int o = 0; o < rows; o++) {
        float *row = w->data + (size_t)o * (size_t)len;
        for (int c = 0; c < len; c++) {
            row[c] = 0.001f + 0.008f * pare_rng_uniform(&r);
            pos[c] = (size_t)c;
        }
        shuffle(pos, (size_t)len, &r);
        for (int k = 0; k < kept[o]; k++)
            row[pos[k]] = (pare_rng_uniform(&r) < 0.5f ? -1 : 1) * (10 + pare_rng_uniform(&r));
        small += (size_t)(len - kept[o]);
    }
    pare_scheme s;
    CHECK_OK(pare_scheme_parse("darb", &s));
    uint8_t *mask = malloc(w->n);
    CHECK_OK(pare_scheme_project(&s, w, NULL, (double)small / (double)w->n, mask));
    CHECK(pare_scheme_satisfied(&s, w, mask));
    for (int o = 0; o < rows; o++) {
        const uint8_t *row = mask + (size_t)o * (size_t)len;
        const float *x = w->data + (size_t)o * (size_t)len;
        int b = want_b[o], got = 0;
        for (int c = 0; c < len; c++)
            got += row[c];
        int want = b ? (len + b - 1) / b : 0;
        CHECKF(got == want, "row %d of %d (density %d/%d): kept %d, block %d gives %d", o, len,
               kept[o], len, got, b, want);
        /* Each block of b keeps exactly its largest |w|. */
        for (int s0 = 0; b && s0 < len; s0 += b) {
            int best = s0, in = 0;
            for (int c = s0; c < s0 + b && c < len; c++) {
                if (fabsf(x[c]) > fabsf(x[best]))
                    best = c;
                in += row[c];
            }
            CHECKF(in == 1 && row[best], "row %d block at %d (size %d) keeps %d", o, s0, b, in);
        }
        CHECKF(b == 0 || (b & (b - 1)) == 0, "block %d is not a power of two", b);
    }
    free(mask);
    free(pos);
    pare_tensor_free(w);
}

PARE_TEST(scheme_darb_block_sizes)
{
    /* len 64: 1/d = 2, 4, 8, 64, -, 1, 3.05 -> 4, 2.91 -> 2, 21.3 -> 16,
     * 1.49 -> 1, 1.52 -> 2, 12.8 -> 16. */
    const int k64[] = {32, 16, 8, 1, 0, 64, 21, 22, 3, 43, 42, 5};
    const int b64[] = {2, 4, 8, 64, 0, 1, 4, 2, 16, 1, 2, 16};
    darb_case(64, k64, b64, 12, 1);
    /* len 48: 48 -> 32 (halfway between 32 and 64: the smaller), 16 -> 16,
     * 1.5 -> 1 (halfway: the smaller). */
    const int k48[] = {1, 3, 32, 24};
    const int b48[] = {32, 16, 1, 2};
    darb_case(48, k48, b48, 4, 2);
    /* Short rows: blocks stop at the row length's power of two. */
    const int k5[] = {1, 2, 5};
    const int b5[] = {4, 2, 1};
    darb_case(5, k5, b5, 3, 3);
    const int k3[] = {1};
    const int b3[] = {2};
    darb_case(3, k3, b3, 1, 4);
    /* Long rows: at most 64. */
    const int k100[] = {1, 2};
    const int b100[] = {64, 64};
    darb_case(100, k100, b100, 2, 5);
}

/* ---- hand-made masks for pare_scheme_satisfied ---------------------------- */

PARE_TEST(scheme_satisfied_crafted)
{
    pare_scheme s;
    pare_tensor *fc = tensor(2, 2, 8, 0, 0), *conv = tensor(4, 2, 4, 3, 3);
    uint8_t m[72];

    CHECK_OK(pare_scheme_parse("2:4", &s));
    const uint8_t nm_ok[16] = {1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0};
    CHECK(pare_scheme_satisfied(&s, fc, nm_ok));
    memcpy(m, nm_ok, 16);
    m[2] = 1;
    CHECK(!pare_scheme_satisfied(&s, fc, m));
    /* Conv groups run along channels: (o, c0..c3, i, j) at stride 9. */
    memset(m, 0, 72);
    m[0] = m[9] = 1; /* o 0, c 0 and 1, position 0 */
    CHECK(pare_scheme_satisfied(&s, conv, m));
    m[18] = 1;
    CHECK(!pare_scheme_satisfied(&s, conv, m));
    m[18] = 0;
    m[1] = m[2] = m[3] = 1; /* one channel, many positions: fine */
    CHECK(pare_scheme_satisfied(&s, conv, m));

    CHECK_OK(pare_scheme_parse("block:2x4", &s));
    const uint8_t blk_ok[16] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    CHECK(pare_scheme_satisfied(&s, fc, blk_ok));
    memcpy(m, blk_ok, 16);
    m[12] = 1;
    CHECK(!pare_scheme_satisfied(&s, fc, m));

    CHECK_OK(pare_scheme_parse("filter", &s));
    memset(m, 1, 16);
    memset(m + 8, 0, 8);
    CHECK(pare_scheme_satisfied(&s, fc, m));
    m[15] = 1;
    CHECK(!pare_scheme_satisfied(&s, fc, m));
    CHECK_OK(pare_scheme_parse("column", &s));
    CHECK(!pare_scheme_satisfied(&s, fc, m));
    memset(m, 0, 16);
    m[3] = m[11] = 1;
    CHECK(pare_scheme_satisfied(&s, fc, m));

    /* Channel on conv: W[:, c, :, :] together. */
    CHECK_OK(pare_scheme_parse("channel", &s));
    memset(m, 0, 72);
    for (int o = 0; o < 2; o++)
        memset(m + o * 36 + 9, 1, 9); /* channel 1 of both filters */
    CHECK(pare_scheme_satisfied(&s, conv, m));
    m[36 + 9] = 0;
    CHECK(!pare_scheme_satisfied(&s, conv, m));

    /* Punched 2x2 on conv: position (i, j) of channels 0-1 of both filters together. */
    CHECK_OK(pare_scheme_parse("punched:2x2", &s));
    memset(m, 1, 72);
    for (int o = 0; o < 2; o++)
        for (int c = 0; c < 2; c++)
            m[o * 36 + c * 9 + 4] = 0;
    CHECK(pare_scheme_satisfied(&s, conv, m));
    m[36 + 9 + 4] = 1;
    CHECK(!pare_scheme_satisfied(&s, conv, m));

    /* DARB, row of 8: 2 kept -> blocks of 4; 3 kept -> blocks of 2. */
    CHECK_OK(pare_scheme_parse("darb", &s));
    const uint8_t d_ok[16] = {0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(pare_scheme_satisfied(&s, fc, d_ok));
    const uint8_t d_bad[16] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(!pare_scheme_satisfied(&s, fc, d_bad));
    const uint8_t d_three[16] = {1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(pare_scheme_satisfied(&s, fc, d_three));
    const uint8_t d_three_bad[16] = {1, 1, 0, 0, 0, 0, 1, 0};
    CHECK(!pare_scheme_satisfied(&s, fc, d_three_bad));

    /* Pattern: library patterns or empty kernels only. */
    pare_scheme p = {.kind = PARE_SCHEME_PATTERN,
                     .patterns = 2,
                     .n_lib = 2,
                     .lib = {pat(0, 1, 2), pat(6, 7, 8)}};
    memset(m, 0, 72);
    m[0] = m[1] = m[2] = m[4] = 1;
    m[9 + 4] = m[9 + 6] = m[9 + 7] = m[9 + 8] = 1;
    CHECK(pare_scheme_satisfied(&p, conv, m));
    m[9 + 3] = 1;
    CHECK(!pare_scheme_satisfied(&p, conv, m));
    m[9 + 3] = 0;
    m[9 + 8] = 0;
    m[9 + 5] = 1; /* a valid shape, not in the library */
    CHECK(!pare_scheme_satisfied(&p, conv, m));
    p.n_lib = 0; /* no library: any of the 56 */
    CHECK(pare_scheme_satisfied(&p, conv, m));
    CHECK(!pare_scheme_satisfied(&p, fc, m));

    CHECK_OK(pare_scheme_parse("unstructured", &s));
    CHECK(pare_scheme_satisfied(&s, conv, m));
    pare_tensor_free(fc);
    pare_tensor_free(conv);
}

/* ---- ties, zeros, NaN ---------------------------------------------------- */

PARE_TEST(scheme_ties_and_nan)
{
    pare_tensor *w = tensor(2, 4, 8, 0, 0);
    uint8_t m[32];
    pare_scheme s;
    for (int i = 0; i < 32; i++)
        w->data[i] = 1;

    /* Equal scores: the lower index is kept. */
    CHECK_OK(pare_scheme_parse("unstructured", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.5, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i < 16), "unstructured tie at %d", i);
    CHECK_OK(pare_scheme_parse("filter", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.5, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i < 16), "filter tie at %d", i);
    CHECK_OK(pare_scheme_parse("column", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.5, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i % 8 < 4), "column tie at %d", i);
    CHECK_OK(pare_scheme_parse("2:4", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i % 4 < 2), "N:M tie at %d", i);
    CHECK_OK(pare_scheme_parse("block:2x4", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.25, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i < 16 || i % 8 < 4), "block tie at %d", i);
    CHECK_OK(pare_scheme_parse("darb", &s));
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.5, m));
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i < 16), "darb tie at %d", i);
    CHECK_OK(pare_scheme_project(&s, w, NULL, 0.75, m)); /* 8 kept: row 0 dense */
    for (int i = 0; i < 32; i++)
        CHECKF(m[i] == (i < 8), "darb tie at %d", i);

    /* Ties between tiles of different sizes (the sorted path): 4x6 zeros in
     * 2x4 blocks are tiles of 8, 4, 8, 4 weights; the higher index goes
     * first, and pruning stops at the first tile that does not fit. */
    pare_tensor *e = tensor(2, 4, 6, 0, 0);
    CHECK_OK(pare_scheme_parse("block:2x4", &s));
    CHECK_OK(pare_scheme_project(&s, e, NULL, 0.5, m));
    for (int i = 0; i < 24; i++)
        CHECKF(m[i] == (i < 12), "block tie at %d", i);
    CHECK_OK(pare_scheme_project(&s, e, NULL, 0.4, m)); /* 9: tile 3 (4), then 8 > 5 */
    for (int i = 0; i < 24; i++)
        CHECKF(m[i] == (i < 12 || i % 6 < 4), "block tie at %d (0.4)", i);
    e->data[0] = NAN; /* tile 0 now ranks lowest and goes first */
    CHECK_OK(pare_scheme_project(&s, e, NULL, 0.5, m));
    for (int i = 0; i < 24; i++)
        CHECKF(m[i] == !((i < 12 && i % 6 < 4) || (i >= 12 && i % 6 >= 4)), "block NaN at %d", i);
    pare_tensor_free(e);

    /* All zero: every scheme still gives a valid mask. */
    pare_tensor *z = tensor(4, 4, 8, 3, 3);
    static const char *const all[] = {"unstructured", "2:4",    "block:4x4", "punched:8x4", "darb",
                                      "pattern",      "filter", "channel",   "column"};
    uint8_t *zm = malloc(z->n);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK_OK(pare_scheme_parse(all[i], &s));
        if (s.kind == PARE_SCHEME_PATTERN) {
            const pare_tensor *ws[1] = {z};
            CHECK_OK(pare_pattern_library(ws, 1, 8, &s));
            CHECK(s.lib[0] == pat(0, 1, 2));
        }
        CHECK_OK(pare_scheme_project(&s, z, NULL, 0.9, zm));
        CHECKF(pare_scheme_satisfied(&s, z, zm), "%s on zeros", all[i]);
    }
    free(zm);
    pare_tensor_free(z);

    /* NaN ranks below every number: pruned first; +inf is kept. */
    const float v[8] = {1, NAN, 3, 4, 5, INFINITY, 7, 8};
    pare_tensor *r = tensor(2, 1, 8, 0, 0);
    memcpy(r->data, v, sizeof v);
    CHECK_OK(pare_scheme_parse("unstructured", &s));
    CHECK_OK(pare_scheme_project(&s, r, NULL, 0.25, m));
    CHECK(m[1] == 0 && m[0] == 0 && m[5] == 1 && count_pruned(m, 8) == 2);
    CHECK_OK(pare_scheme_parse("1:2", &s));
    CHECK_OK(pare_scheme_project(&s, r, NULL, 0, m));
    CHECK(m[0] == 1 && m[1] == 0 && m[4] == 0 && m[5] == 1);
    CHECK_OK(pare_scheme_parse("column", &s));
    CHECK_OK(pare_scheme_project(&s, r, NULL, 0.125, m));
    CHECK(m[1] == 0 && count_pruned(m, 8) == 1);
    CHECK_OK(pare_scheme_parse("darb", &s));
    CHECK_OK(pare_scheme_project(&s, r, NULL, 0.5, m));
    CHECK(m[1] == 0 && pare_scheme_satisfied(&s, r, m));
    pare_tensor_free(r);
    pare_tensor_free(w);
}
