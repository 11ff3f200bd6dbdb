/* The compiled engine: every conv kernel of every ISA against its scalar
 * reference on random layers (group widths 1-8, random column offsets,
 * masks, residuals, activations, position ranges from 0 up past every tile,
 * guard pages after the outputs), and compiled plans against the training
 * graph's evaluation outputs for every zoo model at every scheme, with batch
 * norm folding and fusion checked to 1e-5. */
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "graph/graph.h"
#include "kernels/conv.h"
#include "models.h"
#include "test.h"

/* ---- kernels against the reference --------------------------------------- */

typedef struct kcase {
    pare_conv_layer L;
    int32_t *off;
    float *w, *bias;
    uint8_t *idx;
    int32_t *nm_base;
    pare_nm_filter *nm;
    pare_pat_filter *pf;
    int32_t *coff;
    uint8_t *pat;
} kcase;

static void kcase_free(kcase *k)
{
    free(k->L.groups);
    free(k->off);
    free(k->w);
    free(k->bias);
    free(k->idx);
    free(k->nm_base);
    free(k->nm);
    free(k->pf);
    free(k->coff);
    free(k->pat);
    memset(k, 0, sizeof *k);
}

static float frand(pare_rng *r) { return (float)(pare_rng_uniform_d(r) * 2 - 1); }

/* Random groups of 1 to max_r filters over offsets in [0, span). */
static void make_groups(kcase *k, pare_rng *r, int O, int max_r, int max_cols, long span)
{
    int ng = 0;
    k->L.groups = calloc((size_t)O, sizeof(pare_conv_group));
    k->off = malloc(sizeof(int32_t) * (size_t)O * (size_t)(max_cols + 1));
    k->w = malloc(sizeof(float) * (size_t)O * (size_t)(max_cols + 1) * 8);
    k->bias = malloc(sizeof(float) * (size_t)O * 8);
    size_t at_off = 0, at_w = 0;
    for (int o = 0; o < O;) {
        int rr = 1 + (int)pare_rng_below(r, (uint64_t)max_r);
        if (o + rr > O)
            rr = O - o;
        int rp = rr <= 1 ? 1 : rr <= 2 ? 2 : rr <= 4 ? 4 : 8;
        int nc = (int)pare_rng_below(r, (uint64_t)max_cols + 1);
        pare_conv_group *g = &k->L.groups[ng++];
        g->o0 = o;
        g->r = rr;
        g->rp = rp;
        g->ncols = nc;
        g->off = k->off + at_off;
        g->w = k->w + at_w;
        g->bias = k->bias + (size_t)o * 8 / 1;
        for (int c = 0; c < nc; c++) {
            k->off[at_off + (size_t)c] = (int32_t)pare_rng_below(r, (uint64_t)span);
            for (int t = 0; t < rp; t++)
                k->w[at_w + (size_t)c * (size_t)rp + (size_t)t] = t < rr ? frand(r) : 0.0f;
        }
        for (int t = 0; t < 8; t++)
            k->bias[(size_t)o * 8 / 1 + (size_t)t] = frand(r);
        at_off += (size_t)nc;
        at_w += (size_t)nc * (size_t)rp;
        o += rr;
    }
    k->L.n_groups = ng;
}

static void make_nm(kcase *k, pare_rng *r, int O, int N, int M, int groups, long cs, long span)
{
    k->nm_base = malloc(sizeof(int32_t) * (size_t)groups);
    long room = span - (M - 1) * cs; /* every base + index * cs stays below span */
    for (int g = 0; g < groups; g++)
        k->nm_base[g] = (int32_t)pare_rng_below(r, (uint64_t)(room > 1 ? room : 1));
    k->nm = calloc((size_t)O, sizeof(pare_nm_filter));
    k->idx = malloc((size_t)O * (size_t)groups * (size_t)N);
    k->w = malloc(sizeof(float) * (size_t)O * (size_t)groups * (size_t)N);
    for (int o = 0; o < O; o++) {
        for (int g = 0; g < groups * N; g++) {
            k->idx[(size_t)o * (size_t)groups * (size_t)N + (size_t)g] = (uint8_t)pare_rng_below(r, (uint64_t)M);
            k->w[(size_t)o * (size_t)groups * (size_t)N + (size_t)g] = frand(r);
        }
        k->nm[o].o = o;
        k->nm[o].idx = k->idx + (size_t)o * (size_t)groups * (size_t)N;
        k->nm[o].w = k->w + (size_t)o * (size_t)groups * (size_t)N;
        k->nm[o].bias = frand(r);
    }
    k->L.nm_n = N;
    k->L.nm_m = M;
    k->L.nm_ngroups = groups;
    k->L.nm_base = k->nm_base;
    k->L.nm_cs = (int32_t)cs;
    k->L.nm = k->nm;
    k->L.n_nm = O;
}

static void make_pat(kcase *k, pare_rng *r, int O, int C, long cs, int rs)
{
    k->L.n_pat = 1 + (int)pare_rng_below(r, 8);
    for (int p = 0; p < k->L.n_pat; p++)
        for (int t = 0; t < 4; t++)
            k->L.pat_off[p][t] = (int32_t)((long)pare_rng_below(r, 3) * rs + (long)pare_rng_below(r, 3));
    k->pf = calloc((size_t)O, sizeof(pare_pat_filter));
    k->coff = malloc(sizeof(int32_t) * (size_t)O * (size_t)C);
    k->pat = malloc((size_t)O * (size_t)C);
    k->w = malloc(sizeof(float) * (size_t)O * (size_t)C * 4);
    for (int o = 0; o < O; o++) {
        int nk = (int)pare_rng_below(r, (uint64_t)C + 1);
        for (int kk = 0; kk < nk; kk++) {
            k->coff[(size_t)o * (size_t)C + (size_t)kk] = (int32_t)((long)pare_rng_below(r, (uint64_t)C) * cs);
            /* non-decreasing pattern ids, as the packer sorts them */
            k->pat[(size_t)o * (size_t)C + (size_t)kk] =
                (uint8_t)(kk == 0 ? 0 : k->pat[(size_t)o * (size_t)C + (size_t)kk - 1] + (pare_rng_below(r, 3) == 0));
            if (k->pat[(size_t)o * (size_t)C + (size_t)kk] >= k->L.n_pat)
                k->pat[(size_t)o * (size_t)C + (size_t)kk] = (uint8_t)(k->L.n_pat - 1);
            for (int t = 0; t < 4; t++)
                k->w[((size_t)o * (size_t)C + (size_t)kk) * 4 + (size_t)t] = frand(r);
        }
        k->pf[o].o = o;
        k->pf[o].nk = nk;
        k->pf[o].coff = k->coff + (size_t)o * (size_t)C;
        k->pf[o].pat = k->pat + (size_t)o * (size_t)C;
        k->pf[o].w = k->w + (size_t)o * (size_t)C * 4;
        k->pf[o].bias = frand(r);
    }
    k->L.pf = k->pf;
    k->L.n_pf = O;
}

PARE_TEST(engine_conv_kernels_vs_ref)
{
    const pare_conv_kernels *ref = pare_conv_at(PARE_ISA_REF);
    static const long ns[] = {0, 1, 15, 16, 17, 95, 96, 97, 200, 513};
    pare_rng r;
    pare_rng_seed(&r, 42, 0, 0, 0);
    int cases = 0;
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_conv_kernels *k = pare_conv_at(level);
        if (!k) {
            printf("  (no %s here)\n", pare_isa_name((pare_isa_level)level));
            continue;
        }
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int kind = 0; kind < 3; kind++)
                for (int variant = 0; variant < 4; variant++) {
                    long n = ns[ni];
                    int O = 1 + (int)pare_rng_below(&r, 13), C = 1 + (int)pare_rng_below(&r, 6);
                    int rs = 20;
                    long cs = n + 3L * rs + 64, span = (long)C * cs;
                    kcase kc;
                    memset(&kc, 0, sizeof kc);
                    if (kind == 0) /* half the cases CSR rows only (one filter a group, run in pairs) */
                        make_groups(&kc, &r, O, pare_rng_below(&r, 2) ? 8 : 1, 3 * C, span - n - 64);
                    else if (kind == 1) {
                        long room = span - n - 64, nm_cs = room / 8 > 0 ? room / 8 : 1;
                        make_nm(&kc, &r, O, 1 + (int)pare_rng_below(&r, 3), 4, 1 + (int)pare_rng_below(&r, 5), nm_cs,
                                room);
                    }
                    else
                        make_pat(&kc, &r, O, C, cs / 4, rs);
                    /* input: every position a kernel reads (with its chunk slack) */
                    long in_n = span + 2 * PARE_CONV_CHUNK;
                    float *in = pare_guard_alloc((size_t)in_n);
                    for (long i = 0; i < in_n; i++)
                        in[i] = frand(&r);
                    long out_cs = n + 5;
                    size_t out_n = (size_t)((O - 1) * out_cs + n);
                    float *o1 = pare_guard_alloc(out_n + 1), *o2 = pare_guard_alloc(out_n + 1);
                    float *res = pare_guard_alloc(out_n + 2 * PARE_CONV_CHUNK);
                    for (size_t i = 0; i < out_n + 2 * PARE_CONV_CHUNK; i++)
                        res[i] = frand(&r);
                    for (size_t i = 0; i <= out_n; i++)
                        o1[i] = o2[i] = 1234.5f;
                    long chunks = (n + PARE_CONV_CHUNK - 1) / PARE_CONV_CHUNK;
                    uint16_t *mask = malloc(sizeof(uint16_t) * (size_t)(chunks + 1));
                    for (long c = 0; c < chunks; c++)
                        mask[c] = (uint16_t)pare_rng_u64(&r);
                    pare_conv_io io;
                    memset(&io, 0, sizeof io);
                    io.in = in;
                    io.out_cs = out_cs;
                    io.n = n;
                    io.mask = (variant & 1) ? mask : NULL;
                    io.res = (variant & 2) ? res : NULL;
                    io.res_cs = out_cs;
                    io.act = (int)pare_rng_below(&r, 3);
                    int units = kind == 0 ? kc.L.n_groups : O;
                    /* a split into two position ranges at a multiple of 96, like the engine's */
                    long cut = n > 96 ? 96 : n;
                    for (int pass = 0; pass < 2; pass++) {
                        const pare_conv_kernels *kk = pass ? k : ref;
                        io.out = pass ? o2 : o1;
                        if (kind == 0) {
                            kk->f32_convg(&io, &kc.L, 0, units, 0, cut);
                            kk->f32_convg(&io, &kc.L, 0, units, cut, n);
                        } else if (kind == 1) {
                            kk->f32_convnm(&io, &kc.L, 0, units, 0, cut);
                            kk->f32_convnm(&io, &kc.L, 0, units, cut, n);
                        } else {
                            kk->f32_convpat(&io, &kc.L, 0, units, 0, cut);
                            kk->f32_convpat(&io, &kc.L, 0, units, cut, n);
                        }
                    }
                    for (size_t i = 0; i <= out_n; i++) {
                        float a = o1[i], b = o2[i];
                        if (!(fabsf(a - b) <= 1e-5f * (1 + fabsf(a)))) {
                            CHECKF(0, "%s kind %d n %ld variant %d: out[%zu] = %g, ref %g",
                                   pare_isa_name((pare_isa_level)level), kind, n, variant, i, b, a);
                            break;
                        }
                    }
                    if (kind == 0) {
                        /* one group a call (no pairs of one-filter groups): the same bits */
                        float *o3 = pare_guard_alloc(out_n + 1);
                        for (size_t i = 0; i <= out_n; i++)
                            o3[i] = 1234.5f;
                        io.out = o3;
                        for (int u = 0; u < units; u++) {
                            k->f32_convg(&io, &kc.L, u, u + 1, 0, cut);
                            k->f32_convg(&io, &kc.L, u, u + 1, cut, n);
                        }
                        CHECKF(memcmp(o2, o3, sizeof(float) * (out_n + 1)) == 0,
                               "%s n %ld variant %d: groups one at a time differ from all at once",
                               pare_isa_name((pare_isa_level)level), n, variant);
                        pare_guard_free(o3, out_n + 1);
                    }
                    cases++;
                    free(mask);
                    pare_guard_free(in, (size_t)in_n);
                    pare_guard_free(o1, out_n + 1);
                    pare_guard_free(o2, out_n + 1);
                    pare_guard_free(res, out_n + 2 * PARE_CONV_CHUNK);
                    kcase_free(&kc);
                }
    }
    printf("  %d kernel cases\n", cases);
}

/* The depthwise kernel of every ISA against the reference: kernels 1x1 to
 * 5x5, strides 1 and 2 each way, every padding up to the halo, widths across
 * every vector and tile edge (1 to 70 columns), residuals, activations, and
 * the engine's two splits (channels, rows); a third of the cases 3x3 at
 * equal strides on odd channel counts and planes from one column (the
 * streamed-rows and two-channels-a-vector paths); the input ends at a guard
 * page and unstored output cells keep their sentinel. */
/* The first output where a kernel's planes differ from the reference's (to
 * 1e-5 relative) or where either wrote outside the stored pixels (ho x wo
 * pixels of rows rs in planes cs; the rest holds 1234.5); -1 if none. */
static long planes_differ(const float *ref, const float *got, long n, long cs, long rs, long ho, long wo)
{
    for (long i = 0; i < n; i++) {
        float a = ref[i], b = got[i];
        int stored = i % cs < ho * rs && i % cs % rs < wo;
        if (!stored && (a != 1234.5f || b != 1234.5f))
            return i;
        if (!(fabsf(a - b) <= 1e-5f * (1 + fabsf(a))))
            return i;
    }
    return -1;
}

/* The definition's tail: residual (res NULL: none), then the activation. */
static double res_act(double v, const float *res, int act)
{
    if (res)
        v += *res;
    if (act >= 1 && v < 0)
        v = 0;
    if (act == 2 && v > 6)
        v = 6;
    return v;
}

static void free_planes(float *in, long n_in, float *o1, float *o2, float *res, long n_out)
{
    pare_guard_free(in, (size_t)n_in);
    pare_guard_free(o1, (size_t)n_out);
    pare_guard_free(o2, (size_t)n_out);
    pare_guard_free(res, (size_t)n_out);
}

PARE_TEST(engine_dw_kernel_vs_ref)
{
    const pare_conv_kernels *ref = pare_conv_at(PARE_ISA_REF);
    pare_rng r;
    pare_rng_seed(&r, 77, 0, 0, 0);
    int cases = 0;
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_conv_kernels *k = pare_conv_at(level);
        if (!k)
            continue;
        for (int it = 0; it < 300; it++) {
            pare_conv_layer L;
            memset(&L, 0, sizeof L);
            static const int ks[] = {1, 3, 3, 5};
            L.dw_kh = ks[pare_rng_below(&r, 4)];
            L.dw_kw = ks[pare_rng_below(&r, 4)];
            L.dw_sh = 1 + (int)pare_rng_below(&r, 2);
            L.dw_sw = 1 + (int)pare_rng_below(&r, 2);
            int P = (L.dw_kh > L.dw_kw ? L.dw_kh : L.dw_kw) / 2 + (int)pare_rng_below(&r, 2);
            L.dw_pt = (int)pare_rng_below(&r, (uint64_t)P + 1);
            L.dw_pl = (int)pare_rng_below(&r, (uint64_t)P + 1);
            int pb = (int)pare_rng_below(&r, (uint64_t)P + 1), pr = (int)pare_rng_below(&r, (uint64_t)P + 1);
            int C = 1 + (int)pare_rng_below(&r, 5);
            int H = L.dw_kh + (int)pare_rng_below(&r, 20), W = 1 + (int)pare_rng_below(&r, 140);
            if (it % 3 == 0) { /* 3x3 at equal strides, narrow planes too (two channels a vector) */
                L.dw_kh = L.dw_kw = 3;
                L.dw_sw = L.dw_sh;
                P = 1 + (int)pare_rng_below(&r, 2);
                L.dw_pt = (int)pare_rng_below(&r, 2);
                L.dw_pl = (int)pare_rng_below(&r, 2);
                pb = (int)pare_rng_below(&r, 2);
                pr = (int)pare_rng_below(&r, 2);
                C = 1 + (int)pare_rng_below(&r, 7);
                H = 3 + (int)pare_rng_below(&r, 22);
                W = 1 + (int)pare_rng_below(&r, it % 2 ? 20 : 80);
            }
            if (W + L.dw_pl + pr < L.dw_kw)
                W = L.dw_kw;
            int Ho = (H + L.dw_pt + pb - L.dw_kh) / L.dw_sh + 1, Wo = (W + L.dw_pl + pr - L.dw_kw) / L.dw_sw + 1;
            if (Ho < 1 || Wo < 1)
                continue;
            long rs = W + 2L * P, cs = (H + 2L * P) * rs, n_in = C * cs;
            float *in = pare_guard_alloc((size_t)n_in);
            for (long i = 0; i < n_in; i++)
                in[i] = frand(&r);
            for (int c = 0; c < C; c++) /* the halo holds zeros, as in the engine */
                for (long y = 0; y < H + 2L * P; y++)
                    for (long x = 0; x < rs; x++)
                        if (y < P || y >= P + H || x < P || x >= P + W)
                            in[c * cs + y * rs + x] = 0.0f;
            float *w = malloc(sizeof(float) * (size_t)(C * L.dw_kh * L.dw_kw + C));
            for (int i = 0; i < C * L.dw_kh * L.dw_kw + C; i++)
                w[i] = frand(&r);
            L.dw_w = w;
            L.dw_b = w + C * L.dw_kh * L.dw_kw;
            long ors = Wo + 3, ocs = (long)Ho * ors, n_out = C * ocs;
            float *o1 = pare_guard_alloc((size_t)n_out), *o2 = pare_guard_alloc((size_t)n_out);
            float *res = pare_guard_alloc((size_t)n_out);
            for (long i = 0; i < n_out; i++) {
                o1[i] = o2[i] = 1234.5f;
                res[i] = frand(&r);
            }
            pare_dw_io io;
            memset(&io, 0, sizeof io);
            io.in = in + (long)P * rs + P;
            io.in_cs = cs;
            io.in_rs = rs;
            io.out_cs = ocs;
            io.out_rs = ors;
            io.res = pare_rng_below(&r, 2) ? res : NULL;
            io.res_cs = ocs;
            io.res_rs = ors;
            io.wo = Wo;
            io.act = (int)pare_rng_below(&r, 3);
            int by_rows = it % 2, cut = by_rows ? (int)pare_rng_below(&r, (uint64_t)Ho + 1)
                                                : (int)pare_rng_below(&r, (uint64_t)C + 1);
            for (int pass = 0; pass < 2; pass++) {
                const pare_conv_kernels *kk = pass ? k : ref;
                io.out = pass ? o2 : o1;
                if (by_rows) {
                    kk->f32_convdw(&io, &L, 0, C, 0, cut);
                    kk->f32_convdw(&io, &L, 0, C, cut, Ho);
                } else {
                    kk->f32_convdw(&io, &L, 0, cut, 0, Ho);
                    kk->f32_convdw(&io, &L, cut, C, 0, Ho);
                }
            }
            long d = planes_differ(o1, o2, n_out, ocs, ors, Ho, Wo);
            if (d >= 0)
                CHECKF(0, "%s: k %dx%d s %dx%d pad %d,%d C %d %dx%d: out[%ld] = %g, ref %g",
                       pare_isa_name((pare_isa_level)level), L.dw_kh, L.dw_kw, L.dw_sh, L.dw_sw, L.dw_pt, L.dw_pl, C, H,
                       W, d, o2[d], o1[d]);
            /* the reference itself against the definition at one output */
            int c = C - 1, y = Ho - 1, x = Wo - 1;
            double want = L.dw_b[c];
            for (int i = 0; i < L.dw_kh; i++)
                for (int j = 0; j < L.dw_kw; j++) {
                    int iy = y * L.dw_sh - L.dw_pt + i, ix = x * L.dw_sw - L.dw_pl + j;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                        want += (double)w[(c * L.dw_kh + i) * L.dw_kw + j] * in[c * cs + (iy + P) * rs + ix + P];
                }
            want = res_act(want, io.res ? res + c * ocs + y * ors + x : NULL, io.act);
            CHECK_NEAR(o1[c * ocs + y * ors + x], want, 1e-5 * (1 + fabs(want)));
            cases++;
            free(w);
            free_planes(in, n_in, o1, o2, res, n_out);
        }
    }
    printf("  %d depthwise cases\n", cases);
}

/* The filter-lanes kernels against the reference: filters past every lane
 * block and register tile, columns past a pass, pixels past every tile and
 * pixel block, calls split at random filter blocks and pixels, residual and
 * activations; buffers against guard pages; the reference against the
 * definition at one output. */
PARE_TEST(engine_lanes_kernel_vs_ref)
{
    const pare_conv_kernels *ref = pare_conv_at(PARE_ISA_REF);
    pare_rng r;
    pare_rng_seed(&r, 91, 0, 0, 0);
    int cases = 0;
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_conv_kernels *k = pare_conv_at(level);
        if (!k)
            continue;
        for (int it = 0; it < 120; it++) {
            int O = 1 + (int)pare_rng_below(&r, it % 4 ? 40 : 140);
            int C = 1 + (int)pare_rng_below(&r, it % 3 ? 12 : 40), kk = pare_rng_below(&r, 2) ? 9 : 1;
            int K = C * kk, nb = (O + PARE_LANES - 1) / PARE_LANES;
            int wo = 1 + (int)pare_rng_below(&r, it % 5 ? 16 : 30), ho = 1 + (int)pare_rng_below(&r, 14);
            long in_rs = wo + 2, in_cs = (ho + 2) * in_rs, n_in = C * in_cs + 1;
            float *in = pare_guard_alloc((size_t)n_in);
            for (long i = 0; i < n_in; i++)
                in[i] = frand(&r);
            int32_t *off = malloc(sizeof(int32_t) * (size_t)K);
            for (int c = 0, j = 0; c < C; c++)
                for (int t = 0; t < kk; t++, j++)
                    off[j] = (int32_t)(c * in_cs + (kk == 9 ? (t / 3) * in_rs + t % 3 : in_rs + 1));
            float *w = calloc((size_t)nb * (size_t)K * PARE_LANES + (size_t)nb * PARE_LANES, sizeof(float));
            float *bias = w + (size_t)nb * (size_t)K * PARE_LANES;
            for (int o = 0; o < O; o++) {
                for (int j = 0; j < K; j++)
                    w[((size_t)(o / PARE_LANES) * (size_t)K + (size_t)j) * PARE_LANES + (size_t)(o % PARE_LANES)] =
                        frand(&r);
                bias[o] = frand(&r);
            }
            pare_conv_layer L;
            memset(&L, 0, sizeof L);
            L.dn_k = K;
            L.dn_nb = nb;
            L.dn_o = O;
            L.dn_off = off;
            L.dn_w = w;
            L.dn_b = bias;
            long ors = wo + 1 + (long)pare_rng_below(&r, 3), ocs = (long)ho * ors + 3, n_out = O * ocs;
            float *o1 = pare_guard_alloc((size_t)n_out), *o2 = pare_guard_alloc((size_t)n_out);
            float *res = pare_guard_alloc((size_t)n_out);
            for (long i = 0; i < n_out; i++) {
                o1[i] = o2[i] = 1234.5f;
                res[i] = frand(&r);
            }
            pare_dw_io io;
            memset(&io, 0, sizeof io);
            io.in = in;
            io.in_rs = in_rs;
            io.out_cs = ocs;
            io.out_rs = ors;
            io.res = pare_rng_below(&r, 2) ? res : NULL;
            io.res_cs = ocs;
            io.res_rs = ors;
            io.wo = wo;
            io.act = (int)pare_rng_below(&r, 3);
            long npix = (long)wo * ho;
            int bcut = (int)pare_rng_below(&r, (uint64_t)nb + 1);
            long pcut = (long)pare_rng_below(&r, (uint64_t)npix + 1);
            for (int pass = 0; pass < 2; pass++) {
                const pare_conv_kernels *kk2 = pass ? k : ref;
                io.out = pass ? o2 : o1;
                kk2->f32_convln(&io, &L, 0, bcut, 0, pcut);
                kk2->f32_convln(&io, &L, 0, bcut, pcut, npix);
                kk2->f32_convln(&io, &L, bcut, nb, 0, npix);
            }
            long d = planes_differ(o1, o2, n_out, ocs, ors, ho, wo);
            if (d >= 0)
                CHECKF(0, "%s: O %d K %d %dx%d: out[%ld] = %g, ref %g", pare_isa_name((pare_isa_level)level), O, K, ho,
                       wo, d, o2[d], o1[d]);
            int o = O - 1, y = ho - 1, x = wo - 1;
            double want = bias[o];
            for (int j = 0; j < K; j++)
                want += (double)w[((size_t)(o / PARE_LANES) * (size_t)K + (size_t)j) * PARE_LANES +
                                  (size_t)(o % PARE_LANES)] *
                        in[y * in_rs + x + off[j]];
            want = res_act(want, io.res ? res + o * ocs + y * ors + x : NULL, io.act);
            CHECK_NEAR(o1[o * ocs + y * ors + x], want, 1e-4 * (1 + fabs(want)));
            cases++;
            free(w);
            free(off);
            free_planes(in, n_in, o1, o2, res, n_out);
        }
    }
    printf("  %d filter-lanes cases\n", cases);
}

/* Winograd F(2x2, 3x3): each ISA's input and output transforms against the
 * reference's, bit for bit, on planes of odd and even sizes from 1 (a last
 * tile half outside, whose rows and columns past the plane read as zero),
 * with buffers against guard pages; and the reference's input transform
 * against B^T d B written out at one tile. */
PARE_TEST(engine_wino_transforms_vs_ref)
{
    const pare_conv_kernels *ref = pare_conv_at(PARE_ISA_REF);
    pare_rng r;
    pare_rng_seed(&r, 93, 0, 0, 0);
    int cases = 0;
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_conv_kernels *k = pare_conv_at(level);
        if (!k)
            continue;
        for (int it = 0; it < 60; it++) {
            int C = 1 + (int)pare_rng_below(&r, 5), O = 1 + (int)pare_rng_below(&r, 5);
            int h = 1 + (int)pare_rng_below(&r, it % 3 ? 12 : 40), w = 1 + (int)pare_rng_below(&r, it % 2 ? 12 : 70);
            int th = (h + 1) / 2, tw = (w + 1) / 2;
            long rs = w + 2, cs = (long)(h + 2) * rs, n_in = C * cs;
            long ts = th * tw + (long)pare_rng_below(&r, 3), vxs = C * ts + 1, mxs = O * ts + 2;
            float *in = pare_guard_alloc((size_t)n_in), *v1 = pare_guard_alloc((size_t)(16 * vxs)),
                  *v2 = pare_guard_alloc((size_t)(16 * vxs)), *m = pare_guard_alloc((size_t)(16 * mxs));
            for (long i = 0; i < n_in; i++)
                in[i] = frand(&r);
            for (long i = 0; i < 16 * mxs; i++)
                m[i] = frand(&r);
            for (long i = 0; i < 16 * vxs; i++)
                v1[i] = v2[i] = 77.0f;
            long ors = w + (long)pare_rng_below(&r, 3), ocs = (long)h * ors + 1, n_out = O * ocs;
            float *o1 = pare_guard_alloc((size_t)n_out), *o2 = pare_guard_alloc((size_t)n_out),
                  *res = pare_guard_alloc((size_t)n_out), *bias = pare_guard_alloc((size_t)O);
            for (long i = 0; i < n_out; i++) {
                o1[i] = o2[i] = 1234.5f;
                res[i] = frand(&r);
            }
            for (int o = 0; o < O; o++)
                bias[o] = frand(&r);
            pare_wino_io io;
            memset(&io, 0, sizeof io);
            io.in = in;
            io.in_cs = cs;
            io.in_rs = rs;
            io.m = m;
            io.v_xs = vxs;
            io.m_xs = mxs;
            io.ts = ts;
            io.h = h;
            io.w = w;
            io.th = th;
            io.tw = tw;
            io.out_cs = ocs;
            io.out_rs = ors;
            io.res = pare_rng_below(&r, 2) ? res : NULL;
            io.res_cs = ocs;
            io.res_rs = ors;
            io.bias = bias;
            io.act = (int)pare_rng_below(&r, 3);
            /* V and M hold every tile (one band from row 0); the ISA runs it as two bands
             * (the second's V and M at its own tiles) and splits channels and filters */
            int cut = (int)pare_rng_below(&r, (uint64_t)C + 1), ocut = (int)pare_rng_below(&r, (uint64_t)O + 1);
            int icut = (int)pare_rng_below(&r, (uint64_t)th + 1);
            long shift = (long)icut * tw;
            io.v = v1;
            io.out = o1;
            ref->f32_wino_in(&io, 0, C, 0, th);
            ref->f32_wino_out(&io, 0, O, 0, th);
            io.out = o2;
            for (int band = 0; band < 2; band++) {
                int i0 = band ? icut : 0, i1 = band ? th : icut;
                io.v = v2 + (band ? shift : 0);
                io.m = m + (band ? shift : 0);
                k->f32_wino_in(&io, 0, cut, i0, i1);
                k->f32_wino_in(&io, cut, C, i0, i1);
                k->f32_wino_out(&io, 0, ocut, i0, i1);
                k->f32_wino_out(&io, ocut, O, i0, i1);
            }
            io.m = m;
            CHECKF(memcmp(v1, v2, sizeof(float) * (size_t)(16 * vxs)) == 0, "%s: C %d %dx%d: V differs from ref",
                   pare_isa_name((pare_isa_level)level), C, h, w);
            CHECKF(memcmp(o1, o2, sizeof(float) * (size_t)n_out) == 0, "%s: O %d %dx%d act %d: output differs from ref",
                   pare_isa_name((pare_isa_level)level), O, h, w, io.act);
            /* the definition at the last tile of the last channel */
            int c = C - 1, ti = th - 1, tj = tw - 1;
            double d[4][4], bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    int y = 2 * ti + a, x = 2 * tj + b;
                    d[a][b] = y <= h + 1 && x <= w + 1 ? in[c * cs + y * rs + x] : 0.0;
                }
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    double want = 0;
                    for (int e = 0; e < 4; e++)
                        for (int f = 0; f < 4; f++)
                            want += bt[a][e] * d[e][f] * bt[b][f];
                    CHECK_NEAR(v1[(4 * a + b) * vxs + c * ts + ti * tw + tj], want, 1e-5);
                }
            cases++;
            free_planes(in, n_in, o1, o2, res, n_out);
            pare_guard_free(v1, (size_t)(16 * vxs));
            pare_guard_free(v2, (size_t)(16 * vxs));
            pare_guard_free(m, (size_t)(16 * mxs));
            pare_guard_free(bias, (size_t)O);
        }
    }
    printf("  %d winograd transform cases\n", cases);
}

/* ---- plans against the training graph ------------------------------------ */

static pare_conv_kind plan_kind; /* nonzero: plan_error builds plans with every float dense conv
                                  * lowered so (PARE_CK_GEMM, PARE_CK_LANES) */
static int plan_kind_steps;

/* Plan outputs against pare_graph_forward on a batch of 2. */
static double plan_error(pare_graph *g, int threads, const char *what)
{
    int c, h, w, oc, oh, ow;
    pare_graph_input_shape(g, &c, &h, &w);
    pare_graph_output_shape(g, &oc, &oh, &ow);
    size_t isz = (size_t)c * h * w, osz = (size_t)oc * oh * ow;
    float *x = malloc(isz * 2 * sizeof(float)), *y1 = malloc(osz * 2 * sizeof(float)), *y2 = malloc(osz * 2 * sizeof(float));
    pare_test_fill(x, isz * 2, -1, 1, 5);
    double err = 1e30;
    pare_plan *p = NULL;
    pare_plan_options o = {threads, 0, 0, 0};
    pare_status ps = plan_kind ? pare_engine_plan_dense_as(g, &o, plan_kind, &p) : pare_plan_new(g, &o, &p);
    /* A dirty arena, as after other runs: a halo the plan fails to zero shows */
    if (ps == PARE_OK)
        for (size_t i = 0; i < p->arena_floats; i++)
            p->arena[i] = 1e4f;
    if (pare_graph_forward(g, x, 2, y1, 1) == PARE_OK && ps == PARE_OK && pare_plan_run(p, x, 2, y2) == PARE_OK) {
        for (int i = 0; i < p->n_steps; i++)
            plan_kind_steps += plan_kind && p->steps[i].kind == PARE_STEP_CONV && p->steps[i].ck == plan_kind;
        double m = 0, d = 0;
        for (size_t i = 0; i < osz * 2; i++) {
            m = fmax(m, fabs(y1[i]));
            d = fmax(d, fabs(y1[i] - y2[i]));
        }
        err = d / (m > 0 ? m : 1);
    } else {
        printf("  %s: %s\n", what, pare_last_error());
    }
    pare_plan_free(p);
    free(x);
    free(y1);
    free(y2);
    return err;
}

PARE_TEST_ISA(engine_plans_match_the_graph)
{
    static const char *const models[] = {"lenet", "fmnist-cnn", "resnet20", "vgg11-bn", "mobilenetv2"};
    static const char *const schemes[] = {"dense", "unstructured", "2:4", "block:4x4", "punched:8x4",
                                          "pattern", "filter", "channel", "column", "darb"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++)
            for (int threads = 1; threads <= 2; threads++) {
                if (threads == 2 && s % 3)
                    continue; /* two threads on a third of the cases keeps the suite short */
                pare_graph *g;
                CHECK_OK(pare_zoo_build(models[m], 0, 3 + s, &g));
                test_random_stats(g, 7 + m);
                if (s > 0)
                    test_prune_to(g, schemes[s], 0.8);
                char what[128];
                snprintf(what, sizeof what, "%s %s t%d", models[m], schemes[s], threads);
                double e = plan_error(g, threads, what);
                CHECKF(e <= 1e-4, "%s: relative error %.3g", what, e);
                pare_graph_free(g);
            }
}

/* The other dense lowerings (im2col + sgemm, filter lanes), forced wherever
 * they fit: every zoo model, dense and pruned, strided and residual convs, 1
 * and 2 threads. */
static void dense_lowering_matches(pare_conv_kind kind, const char *tag, int at_least)
{
    static const char *const models[] = {"lenet", "fmnist-cnn", "resnet20", "vgg11-bn", "mobilenetv2"};
    plan_kind = kind;
    plan_kind_steps = 0;
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++)
        for (int threads = 1; threads <= 2; threads++) {
            pare_graph *g;
            CHECK_OK(pare_zoo_build(models[m], 0, 40 + m, &g));
            test_random_stats(g, 9 + m);
            if (threads == 2)
                test_prune_to(g, "unstructured", 0.5);
            char what[128];
            snprintf(what, sizeof what, "%s %s t%d", models[m], tag, threads);
            double e = plan_error(g, threads, what);
            CHECKF(e <= 1e-4, "%s: relative error %.3g", what, e);
            pare_graph_free(g);
        }
    plan_kind = PARE_CK_DENSE;
    CHECKF(plan_kind_steps >= at_least, "only %d convs ran as %s", plan_kind_steps, tag);
}

PARE_TEST(engine_gemm_lowering_matches_the_graph) { dense_lowering_matches(PARE_CK_GEMM, "im2col + GEMM", 40); }

PARE_TEST_ISA(engine_lanes_lowering_matches_the_graph) { dense_lowering_matches(PARE_CK_LANES, "filter lanes", 40); }

/* Winograd fits the 3x3 stride-1 convs with padding 1 (fmnist-cnn's, resnet20's, vgg11's). */
PARE_TEST_ISA(engine_wino_lowering_matches_the_graph) { dense_lowering_matches(PARE_CK_WINO, "winograd", 40); }

/* Banded pairs (a conv, then the depthwise conv reading its output, a band
 * of rows at a time): the same bits as the two steps alone, on a dirty arena,
 * with bands of one output row and of a few (at 1 thread; none at 2); on
 * mobilenetv2 dense and pruned (the expansions' group, N:M and CSR kernels)
 * and on a graph of odd planes with a strided 5x5 depthwise conv and one with
 * a residual added; none where the first conv's output has another reader.
 * The arena and the scratch (the rings) start dirty. */
static void band_case(pare_graph *g, const char *what, int *pairs, int expect)
{
    int c, h, w, oc, oh, ow;
    pare_graph_input_shape(g, &c, &h, &w);
    pare_graph_output_shape(g, &oc, &oh, &ow);
    size_t isz = (size_t)c * h * w, osz = (size_t)oc * oh * ow;
    float *x = malloc(isz * 2 * sizeof(float)), *y0 = malloc(osz * 2 * sizeof(float)),
          *y1 = malloc(osz * 2 * sizeof(float)), *yg = malloc(osz * 2 * sizeof(float));
    pare_test_fill(x, isz * 2, -1, 1, 17);
    CHECK_OK(pare_graph_forward(g, x, 2, yg, 1));
    for (int threads = 1; threads <= 2; threads++) {
        pare_plan *p = NULL;
        pare_plan_options o = {threads, 0, 0, 0};
        CHECK_OK(pare_plan_new(g, &o, &p));
        if (!p)
            continue;
        static const long bytes[] = {0, 1, 6000};
        for (int k = 0; k < 3; k++) {
            pare_engine_set_bands(p, bytes[k], 0);
            int n = 0;
            for (int i = 0; i < p->n_steps; i++)
                n += p->steps[i].band_rows > 0;
            if (k == 1)
                *pairs += n;
            for (size_t i = 0; i < p->arena_floats; i++)
                p->arena[i] = 1e4f;
            for (size_t i = 0; i < p->scratch_floats; i++)
                p->scratch[i] = 1e4f; /* the rings of banded pairs too */
            CHECK_OK(pare_plan_run(p, x, 2, k ? y1 : y0));
            if (k == 0) {
                double m = 0, d = 0;
                for (size_t i = 0; i < osz * 2; i++) {
                    m = fmax(m, fabs(yg[i]));
                    d = fmax(d, fabs(yg[i] - y0[i]));
                }
                CHECKF(d <= 1e-4 * (m > 0 ? m : 1), "%s t%d: relative error %.3g without bands", what, threads,
                       d / (m > 0 ? m : 1));
            } else {
                CHECKF((n > 0) == (expect && threads == 1), "%s t%d: %d banded pairs", what, threads, n);
                CHECKF(!memcmp(y0, y1, osz * 2 * sizeof(float)), "%s t%d, bands of %ld bytes: not the same bits",
                       what, threads, bytes[k]);
            }
        }
        pare_plan_free(p);
    }
    free(x);
    free(y0);
    free(y1);
    free(yg);
}

/* x (4 channels) -> 1x1 conv (6) -> 3x3 depthwise conv, stride s, padding 1
 * at the top and left and pb at the bottom and right; with `add`, the
 * depthwise output plus the expansion (a second reader of its act). */
static void expansion_case(const char *what, int h, int w, int s, int pb, int *pairs, int expect)
{
    int add = !expect;
    pare_graph *g = pare_graph_new(what);
    int a = pare_graph_conv2d(g, pare_graph_input(g, 4, h, w), 6, 1, 1, 0, "a");
    pare_conv2d_desc d = {0};
    d.out_channels = d.groups = 6;
    d.kernel_h = 3;
    d.stride_h = s;
    d.pad_top = d.pad_left = 1;
    d.pad_bottom = d.pad_right = pb;
    int b = pare_graph_conv2d_ex(g, a, &d, "b.dw");
    if (add)
        pare_graph_add(g, b, a, "add");
    CHECK_OK(pare_graph_status(g));
    test_random_stats(g, 67);
    band_case(g, what, pairs, expect);
    pare_graph_free(g);
}

PARE_TEST_ISA(engine_banded_pairs_match_the_steps_alone)
{
    static const char *const schemes[] = {"dense", "unstructured", "2:4", "block:4x4"};
    int pairs = 0;
    for (int s = 0; s < 4; s++) {
        pare_graph *g;
        CHECK_OK(pare_zoo_build("mobilenetv2", 0, 60 + s, &g));
        test_random_stats(g, 61 + s);
        if (s > 0)
            test_prune_to(g, schemes[s], 0.75);
        char what[64];
        snprintf(what, sizeof what, "mobilenetv2 %s", schemes[s]);
        band_case(g, what, &pairs, 1);
        pare_graph_free(g);
    }
    /* odd planes: 1x1 -> 5x5 depthwise stride 2 padding 2; 1x1 -> 3x3
     * depthwise with a residual added; 3x3 -> 3x3 depthwise stride 2 */
    pare_graph *g = pare_graph_new("bands");
    int x = pare_graph_input(g, 6, 13, 11);
    int a = pare_graph_relu6(g, pare_graph_conv2d(g, x, 12, 1, 1, 0, "a"), "a.relu6");
    pare_conv2d_desc d = {0};
    d.out_channels = 12;
    d.kernel_h = 5;
    d.stride_h = 2;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 2;
    d.groups = 12;
    int b = pare_graph_conv2d_ex(g, a, &d, "b.dw");
    int e = pare_graph_relu(g, pare_graph_conv2d(g, b, 12, 1, 1, 0, "e"), "e.relu");
    d.kernel_h = 3;
    d.stride_h = 1;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    int f = pare_graph_add(g, pare_graph_conv2d_ex(g, e, &d, "f.dw"), b, "f.add");
    int h = pare_graph_conv2d(g, f, 8, 3, 1, 1, "h");
    d.out_channels = d.groups = 8;
    d.stride_h = 2;
    pare_graph_conv2d_ex(g, h, &d, "i.dw");
    CHECK_OK(pare_graph_status(g));
    test_random_stats(g, 66);
    band_case(g, "odd planes", &pairs, 1);
    pare_graph_free(g);
    /* stride 2 with no padding at the bottom on 11 rows of 45 columns: the
     * last band's rows run from its first to the end of the plane, one more
     * than a whole band reads (a heap overflow of the ring under ASan before
     * the ring had room for it) */
    expansion_case("no bottom padding", 11, 45, 2, 0, &pairs, 1);
    /* an expansion read by its depthwise conv and by an add: no pair (its
     * act must be whole), the right outputs */
    int none = 0;
    expansion_case("two readers", 9, 10, 1, 1, &none, 0);
    CHECKF(none == 0, "%d banded pairs where the act has two readers", none);
    CHECKF(pairs >= 20, "only %d banded pairs", pairs);
}

PARE_TEST(engine_224_models)
{
    static const char *const models[] = {"resnet18", "mobilenetv2-224"};
    static const char *const schemes[] = {"dense", "pattern", "block:4x4", "2:4"};
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 4; s++) {
            pare_graph *g;
            CHECK_OK(pare_zoo_build(models[m], 0, 9, &g));
            test_random_stats(g, 13);
            if (s > 0)
                test_prune_to(g, schemes[s], 0.9);
            char what[128];
            snprintf(what, sizeof what, "%s %s", models[m], schemes[s]);
            double e = plan_error(g, 2, what);
            CHECKF(e <= 1e-4, "%s: relative error %.3g", what, e);
            pare_graph_free(g);
        }
}

PARE_TEST_ISA(engine_fold_and_fuse_exact)
{
    /* conv -> bn -> add(shortcut) -> relu, and conv -> bn -> relu6, strided
     * and dilated convs, a BN with nothing to fold into, an unfused add */
    pare_graph *g = pare_graph_new("fuse");
    int x = pare_graph_input(g, 8, 9, 11);
    int a = pare_graph_conv2d(g, x, 8, 3, 1, 1, "a");
    a = pare_graph_batchnorm(g, a, "a.bn");
    a = pare_graph_relu6(g, a, "a.relu6");
    pare_conv2d_desc d = {0};
    d.out_channels = 8;
    d.kernel_h = 3;
    d.dilation_h = 2;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 2;
    int b = pare_graph_conv2d_ex(g, a, &d, "b");
    b = pare_graph_batchnorm(g, b, "b.bn");
    int s = pare_graph_add(g, b, x, "add");
    s = pare_graph_relu(g, s, "relu");
    int bn = pare_graph_batchnorm(g, s, "lonely.bn");
    int c = pare_graph_conv2d(g, bn, 6, 3, 2, 1, "strided");
    int dd = pare_graph_conv2d(g, bn, 6, 1, 2, 0, "down");
    int e = pare_graph_add(g, c, dd, "join");
    int f = pare_graph_maxpool(g, e, 3, 2, 1, "pool");
    int parts[2] = {f, f};
    int cat = pare_graph_concat(g, parts, 2, "cat");
    int gp = pare_graph_avgpool(g, cat, 2, 1, 1, "avg");
    pare_graph_linear(g, pare_graph_flatten(g, gp, "flat"), 5, 1, "fc");
    CHECK_OK(pare_graph_status(g));
    test_random_stats(g, 99);
    double err = plan_error(g, 1, "fusion graph");
    CHECKF(err <= 1e-5, "relative error %.3g", err);
    err = plan_error(g, 2, "fusion graph");
    CHECKF(err <= 1e-5, "relative error %.3g with 2 threads", err);
    pare_graph_free(g);
}

/* Pooling at sizes that take the max pool's parallel path (over 16384
 * outputs) and at odd shapes: asymmetric windows and padding, ceil mode (a
 * last window past the padding), a window wider than its row; each against
 * the graph at 1 and 2 threads. */
PARE_TEST_ISA(engine_pools_match_the_graph)
{
    static const struct {
        int c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, ceil, max;
    } cases[] = {
        {24, 56, 61, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1}, {20, 57, 40, 2, 3, 2, 1, 0, 1, 0, 2, 1, 1},
        {3, 9, 5, 3, 7, 1, 3, 1, 3, 1, 3, 1, 1},   {5, 13, 11, 3, 2, 3, 2, 1, 0, 1, 1, 1, 1},
        {24, 56, 61, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0}, {4, 13, 11, 3, 2, 3, 2, 1, 0, 1, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pare_graph *g = pare_graph_new("pools");
        int x = pare_graph_input(g, cases[i].c, cases[i].h, cases[i].w);
        pare_attrs a;
        memset(&a, 0, sizeof a);
        a.kernel[0] = cases[i].kh;
        a.kernel[1] = cases[i].kw;
        a.stride[0] = cases[i].sh;
        a.stride[1] = cases[i].sw;
        a.dilation[0] = a.dilation[1] = a.groups = 1;
        a.pad[0] = cases[i].pt;
        a.pad[1] = cases[i].pl;
        a.pad[2] = cases[i].pb;
        a.pad[3] = cases[i].pr;
        a.ceil_mode = cases[i].ceil;
        a.count_include_pad = 1;
        int y = pare_graph_add_node(g, cases[i].max ? PARE_OP_MAXPOOL : PARE_OP_AVGPOOL, &x, 1, &a, "pool");
        if (i % 2) /* fused into the pool step; without it, padding's -inf shows */
            pare_graph_relu(g, y, "relu");
        CHECK_OK(pare_graph_status(g));
        for (int t = 1; t <= 2; t++) {
            char what[64];
            snprintf(what, sizeof what, "pool case %zu, %d threads", i, t);
            double err = plan_error(g, t, what);
            CHECKF(err <= 1e-6, "%s: relative error %.3g", what, err);
        }
        pare_graph_free(g);
    }
}

/* Depthwise convs whose outputs feed 3x3 convs (so their acts have halos the
 * depthwise step must zero): split by channels, and by rows when there are
 * fewer channels than threads (2 channels, 4 threads), stride 1 and 2, on
 * plan_error's dirty arena. */
PARE_TEST_ISA(engine_depthwise_halos_match_the_graph)
{
    for (int c = 2; c <= 8; c += 6)
        for (int stride = 1; stride <= 2; stride++) {
            pare_graph *g = pare_graph_new("dw halos");
            int x = pare_graph_input(g, c, 21, 18);
            pare_conv2d_desc d = {.out_channels = c, .kernel_h = 3, .stride_h = stride, .pad_top = 1, .pad_left = 1,
                                  .pad_bottom = 1, .pad_right = 1, .groups = c};
            int y = pare_graph_conv2d_ex(g, x, &d, "dw1");
            y = pare_graph_relu(g, y, "dw1.relu");
            y = pare_graph_conv2d(g, y, c, 3, 1, 1, "conv");
            y = pare_graph_conv2d_ex(g, y, &d, "dw2");
            y = pare_graph_conv2d(g, y, 4, 3, 1, 1, "out");
            CHECK_OK(pare_graph_status(g));
            test_random_stats(g, 3);
            for (int t = 1; t <= 4; t *= 2) {
                char what[64];
                snprintf(what, sizeof what, "%d channels, stride %d, %d threads", c, stride, t);
                double err = plan_error(g, t, what);
                CHECKF(err <= 1e-5, "%s: relative error %.3g", what, err);
            }
            pare_graph_free(g);
        }
}

/* Every op ONNX import brought, at places that test the engine's plumbing:
 * acts with a halo (copied to plain buffers around the op) and without one
 * (used in place), a const with no input, a broadcast add straight after a
 * conv (it must not fuse as a residual), an SE-style gate whose small input
 * is a conv's output, a reshape and a transpose feeding convs. */
static pare_graph *onnx_ops_graph(void)
{
    pare_graph *g = pare_graph_new("onnx ops");
    int x = pare_graph_input(g, 4, 7, 6);
    int c1 = pare_graph_conv2d(g, x, 6, 3, 1, 1, "c1");
    int bias = pare_graph_const(g, 6, 1, 1, "bias");
    int a = pare_graph_add(g, c1, bias, "bias.add");
    a = pare_graph_hardswish(g, a, "hswish");
    int gp = pare_graph_global_avgpool(g, a, "se.pool");
    int se = pare_graph_conv2d(g, gp, 6, 1, 1, 0, "se.conv");
    se = pare_graph_hardsigmoid(g, se, 0.2f, 0.5f, "se.gate");
    int m = pare_graph_mul(g, a, se, "se.mul");
    int se2 = pare_graph_conv2d(g, gp, 6, 1, 1, 0, "se2.conv");
    int m2 = pare_graph_add(g, m, se2, "se2.add"); /* a conv's output as the broadcast input */
    int p = pare_graph_pad(g, m2, (const int[4]){1, 0, 2, 1}, 1, 0.0f, "reflect");
    int sh = pare_graph_channel_shuffle(g, p, 3, "shuffle");
    int t = pare_graph_transpose(g, sh, (const int[3]){0, 2, 1}, "t");
    int c2 = pare_graph_conv2d(g, t, 6, 3, 1, 1, "c2");
    int lr = pare_graph_leakyrelu(g, c2, 0.1f, "leaky");
    int r = pare_graph_reshape(g, lr, 3, 14, 10, "reshape");
    int c3 = pare_graph_conv2d(g, r, 4, 3, 2, 1, "c3");
    int cl = pare_graph_clip(g, c3, -0.5f, 0.75f, "clip");
    int pe = pare_graph_pad(g, cl, (const int[4]){0, 1, 1, 0}, 2, 0.0f, "edge");
    int pc = pare_graph_pad(g, pe, (const int[4]){1, 1, 0, 0}, 0, -0.25f, "constant");
    int k = pare_graph_const(g, 1, 9, 7, "plane");
    int mk = pare_graph_mul(g, pc, k, "plane.mul");
    int sg = pare_graph_sigmoid(g, mk, "sigmoid");
    int fc = pare_graph_linear(g, pare_graph_flatten(g, sg, "flat"), 12, 1, "fc");
    int sm = pare_graph_softmax(g, fc, 0, 0, "sm");       /* a vector act: no halo */
    int rs = pare_graph_reshape(g, sm, 3, 2, 2, "to3d");
    int sm2 = pare_graph_softmax(g, rs, 1, 1, "sm2");
    pare_graph_add(g, sm2, pare_graph_reshape(g, sm, 3, 2, 2, "to3d.again"), "out");
    return g;
}

PARE_TEST_ISA(engine_runs_onnx_ops)
{
    pare_graph *g = onnx_ops_graph();
    CHECK_OK(pare_graph_status(g));
    if (pare_graph_status(g) != PARE_OK) {
        pare_graph_free(g);
        return;
    }
    test_random_stats(g, 31);
    pare_rng r;
    pare_rng_seed(&r, 32, 0, 0, 0);
    static const char *const consts[] = {"bias.weight", "plane.weight"};
    for (int i = 0; i < 2; i++) {
        size_t n = 0;
        float *v = pare_graph_param_data(g, consts[i], &n);
        CHECK(v && n > 0);
        for (size_t j = 0; v && j < n; j++)
            v[j] = frand(&r);
    }
    double err = plan_error(g, 1, "onnx ops graph");
    CHECKF(err <= 1e-5, "relative error %.3g", err);
    err = plan_error(g, 2, "onnx ops graph");
    CHECKF(err <= 1e-5, "relative error %.3g with 2 threads", err);
    /* Each new op is its own step; the broadcast adds too, so no conv fused them. */
    pare_plan *p = NULL;
    pare_plan_options o = {1, 0, 0, 0};
    CHECK_OK(pare_plan_new(g, &o, &p));
    if (p) {
        pare_plan_info info;
        pare_plan_get_info(p, &info);
        int ops = 0, adds = 0, plain_adds = 0;
        for (int i = 0; i < info.steps; i++) {
            pare_step_info si;
            CHECK_OK(pare_plan_step_info(p, i, &si));
            ops += strstr(si.kernel, "(op forward)") != NULL;
            adds += !strcmp(si.kernel, "add (op forward)");
            plain_adds += !strcmp(si.kernel, "add"); /* the equal-shape add keeps its own step */
        }
        CHECKF(ops == 21 && adds == 2 && plain_adds == 1, "%d op steps (%d adds), %d add steps", ops, adds,
               plain_adds);
        pare_plan_free(p);
    }
    pare_graph_free(g);
}

PARE_TEST(engine_reports_and_refuses)
{
    pare_graph *g;
    CHECK_OK(pare_zoo_build("resnet20", 0, 1, &g));
    test_prune_to(g, "pattern", 0.9);
    pare_plan *p;
    pare_plan_options o = {1, 0, 0, 0};
    CHECK_OK(pare_plan_new(g, &o, &p));
    pare_plan_info info;
    pare_plan_get_info(p, &info);
    CHECK(info.macs < 0.35 * info.dense_macs && info.activation_bytes > 0 && info.weight_bytes > 0);
    int patterns = 0;
    for (int i = 0; i < info.steps; i++) {
        pare_step_info si;
        CHECK_OK(pare_plan_step_info(p, i, &si));
        patterns += strstr(si.kernel, "pattern") != NULL;
    }
    CHECK(patterns >= 15);
    CHECK_STATUS(pare_plan_step_info(p, info.steps, &(pare_step_info){0}), PARE_EINVAL);
    /* dense plans as a baseline */
    pare_plan *q;
    pare_plan_options od = {1, 0, 1, 0};
    CHECK_OK(pare_plan_new(g, &od, &q));
    pare_plan_info qi;
    pare_plan_get_info(q, &qi);
    CHECK(qi.macs >= 0.99 * qi.dense_macs);
    pare_plan_free(q);
    pare_plan_free(p);
    pare_graph_free(g);
    /* a concat of too many inputs is refused with the layer's name */
    g = pare_graph_new("wide");
    int x = pare_graph_input(g, 2, 4, 4), xs[9];
    for (int i = 0; i < 9; i++)
        xs[i] = x;
    pare_graph_concat(g, xs, 9, "nine");
    CHECK_STATUS(pare_plan_new(g, &o, &p), PARE_EUNSUPPORTED);
    CHECK(strstr(pare_last_error(), "nine") != NULL);
    pare_graph_free(g);
}

/* ---- the commands --------------------------------------------------------- */

#include <sys/stat.h>
#include <sys/wait.h>

#include "core/fsio.h"
#include "synth.h"

static int sh(const char *cmd, char *out, size_t n)
{
    char full[4096], path[1100];
    snprintf(path, sizeof path, "%s", pare_test_path("sh.txt"));
    snprintf(full, sizeof full, "cd '%s' && %s >'%s' 2>&1", pare_test_dir(), cmd, path);
    int st = system(full);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t got = fread(out, 1, n - 1, f);
        out[got] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

PARE_TEST(engine_commands)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin) {
        printf("  skipped: PARE_BIN is not set\n");
        return;
    }
    char cache[1100];
    snprintf(cache, sizeof cache, "%s", pare_test_path("tune.txt"));
    setenv("PARE_TUNE_CACHE", cache, 1);
    mkdir(pare_test_path("synth"), 0755);
    CHECK(synth_write_idx(pare_test_path("synth"), 600, 200, 3) == 0);
    char out[16384], cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' train --model lenet --data synth --epochs 3 --batch 8 --out m.pare --quiet", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    /* the compiled model's accuracy is the training graph's */
    snprintf(cmd, sizeof cmd, "'%s' eval m.pare --data synth --json", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    char *a = strstr(out, "\"accuracy\":");
    double acc_eval = a ? atof(a + 11) : -1;
    snprintf(cmd, sizeof cmd, "'%s' run m.pare --data synth --json", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    a = strstr(out, "\"accuracy\":");
    CHECKF(a && fabs(atof(a + 11) - acc_eval) < 1e-9, "run: %s (eval %.4f)", out, acc_eval);
    /* raw input: two samples in, two rows of 10 out */
    float x[2 * 784];
    pare_test_fill(x, 2 * 784, 0, 1, 4);
    FILE *f = fopen(pare_test_path("x.bin"), "wb");
    fwrite(x, sizeof x, 1, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' run m.pare --input x.bin --output y.bin", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    uint8_t *y;
    size_t ny;
    CHECK_OK(pare_read_file(pare_test_path("y.bin"), 1 << 20, &y, &ny));
    CHECK(ny == 2 * 10 * sizeof(float));
    free(y);
    /* a wrong size is refused in one line */
    f = fopen(pare_test_path("bad.bin"), "wb");
    fwrite(x, 100, 1, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' run m.pare --input bad.bin", bin);
    CHECK(sh(cmd, out, sizeof out) == 1 && strstr(out, "not a whole number") && strstr(out, "1x28x28"));
    snprintf(cmd, sizeof cmd, "'%s' run m.pare", bin);
    CHECK(sh(cmd, out, sizeof out) == 2 && strstr(out, "--input"));
    snprintf(cmd, sizeof cmd, "'%s' bench missing.pare", bin);
    CHECK(sh(cmd, out, sizeof out) == 1 && strstr(out, "missing.pare"));
    /* bench a pruned model: its sparse layers get their kernels timed */
    snprintf(cmd, sizeof cmd, "'%s' prune m.pare --scheme unstructured --sparsity 0.8 --finetune 0 --data synth --out p.pare --quiet", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "'%s' bench p.pare --runs 3 --blocks 2 --warmup 1 --threads 1 --json --verbose --plot t.svg", bin);
    CHECK(sh(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "\"median_ms\":") && strstr(out, "\"steps\":[") && strstr(out, "conv2"));
    CHECK(pare_file_exists(pare_test_path("t.svg")));
    CHECK(pare_file_exists(cache)); /* tuning wrote its cache */
    snprintf(cmd, sizeof cmd, "'%s' bench m.pare --runs 2 --blocks 1 --warmup 0", bin);
    CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "latency") && strstr(out, "throughput"));
    /* compile and emit C that builds */
    snprintf(cmd, sizeof cmd, "'%s' compile m.pare --emit-c m.c --prefix lenet", bin);
    CHECK(sh(cmd, out, sizeof out) == 0 && strstr(out, "conv1") && strstr(out, "lenet_run"));
    if (system("command -v cc >/dev/null 2>&1") == 0) {
        CHECK(sh("cc -std=c99 -O2 -Wall -Wextra -Werror -c m.c -o m.o", out, sizeof out) == 0);
    }
    snprintf(cmd, sizeof cmd, "'%s' compile m.pare --emit-c m.c --prefix 9bad", bin);
    CHECK(sh(cmd, out, sizeof out) == 1 && strstr(out, "9bad"));
    unsetenv("PARE_TUNE_CACHE");
}
