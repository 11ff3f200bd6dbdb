/* The int8 kernel family: every entry of qconv.inc this CPU runs against its
 * scalar reference, bit for bit, on random layers (groups of 1-8 filters in
 * their quads, random column offsets, int8 weights over the whole range,
 * masks, residuals, u8 and float outputs, sizes from 0 past every tile edge,
 * outputs and inputs flush against a guard page), and the reference itself
 * against hand-computed values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "kernels/qconv.h"
#include "test.h"

static float frand(pare_rng *r, float lo, float hi) { return lo + (hi - lo) * (float)pare_rng_uniform_d(r); }

/* A byte buffer of n dwords whose end touches a PROT_NONE page. */
static uint8_t *guard_bytes(size_t dwords) { return (uint8_t *)(void *)pare_guard_alloc(dwords ? dwords : 1); }
static void guard_bytes_free(uint8_t *p, size_t dwords) { pare_guard_free((float *)(void *)p, dwords ? dwords : 1); }

typedef struct qcase {
    pare_qconv_layer L;
    int O;
    int32_t *off, *bias;
    int8_t *w;
    float *scale, *shift;
} qcase;

static void qcase_free(qcase *k)
{
    free(k->L.groups);
    free(k->off);
    free(k->bias);
    free(k->w);
    free(k->scale);
    free(k->shift);
    memset(k, 0, sizeof *k);
}

/* Groups laid out as the engine packs them: a group of rp filters starts at a
 * multiple of min(rp, 4), so its filters lie in one quad (two for rp = 8). */
static void make_qgroups(qcase *k, pare_rng *r, int max_groups, int max_cols, long span, int sparse)
{
    int ng = 1 + (int)pare_rng_below(r, (uint64_t)max_groups);
    k->L.groups = calloc((size_t)ng, sizeof(pare_qconv_group));
    k->off = malloc(sizeof(int32_t) * (size_t)ng * (size_t)(max_cols + 1));
    k->w = malloc((size_t)ng * (size_t)(max_cols + 1) * 32);
    k->bias = malloc(sizeof(int32_t) * (size_t)ng * 8);
    size_t at_off = 0, at_w = 0;
    int o = 0;
    for (int gi = 0; gi < ng; gi++) {
        static const int rps[4] = {1, 2, 4, 8};
        int rp = rps[pare_rng_below(r, 4)];
        int rr = rp == 1 ? 1 : rp / 2 + 1 + (int)pare_rng_below(r, (uint64_t)(rp / 2));
        int al = rp < 4 ? rp : 4;
        o = (o + al - 1) / al * al + (int)pare_rng_below(r, 2) * al; /* now and then a gap */
        int nc = (int)pare_rng_below(r, (uint64_t)max_cols + 1);
        pare_qconv_group *g = &k->L.groups[gi];
        g->o0 = o;
        g->r = rr;
        g->rp = rp;
        g->ncols = nc;
        g->off = k->off + at_off;
        g->w = k->w + at_w;
        g->bias = k->bias + (size_t)gi * 8;
        for (int c = 0; c < nc; c++) {
            k->off[at_off + (size_t)c] = (int32_t)pare_rng_below(r, (uint64_t)span);
            for (int t = 0; t < rp * 4; t++) {
                int zero = t / 4 >= rr || (sparse && pare_rng_below(r, 100) < (uint64_t)sparse);
                k->w[at_w + (size_t)c * (size_t)rp * 4 + (size_t)t] =
                    zero ? 0 : (int8_t)((int)pare_rng_below(r, 256) - 128);
            }
        }
        for (int t = 0; t < 8; t++)
            k->bias[(size_t)gi * 8 + (size_t)t] = (int32_t)pare_rng_below(r, 1u << 22) - (1 << 21);
        at_off += (size_t)nc;
        at_w += (size_t)nc * (size_t)rp * 4;
        o += rr;
    }
    k->L.n_groups = ng;
    k->O = o;
    k->scale = malloc(sizeof(float) * (size_t)(o + 8));
    k->shift = malloc(sizeof(float) * (size_t)(o + 8));
    for (int c = 0; c < o + 8; c++) {
        int tie = pare_rng_below(r, 4) == 0;
        /* ties of rint: a scale of 1/2 (or 1/4) with a zero shift puts many values on .5 */
        k->scale[c] = tie ? (pare_rng_below(r, 2) ? 0.5f : 0.25f) : frand(r, 2e-5f, 4e-4f) * (pare_rng_below(r, 2) ? 1 : -1);
        k->shift[c] = tie ? 0.0f : frand(r, -40.0f, 40.0f);
    }
    k->L.scale = k->scale;
    k->L.shift = k->shift;
}

static int compare_entries(pare_qkind kind, const pare_qconv_entry **list, int *n)
{
    const pare_qconv_entry *all;
    int total = pare_qconv_entries(&all), m = 0;
    for (int i = 0; i < total; i++)
        if (all[i].kind == kind && all[i].level > 0) {
            if (all[i].present)
                list[m++] = &all[i];
            else
                printf("  (%s does not run on this CPU)\n", all[i].name);
        }
    *n = m;
    return m;
}

PARE_TEST(qkernels_conv_vs_ref)
{
    static const long ns[] = {0, 1, 15, 16, 17, 95, 96, 97, 200, 513};
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_s8_qconvg, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 7, 0, 0, 0);
    int cases = 0;
    for (int e = 0; e < nk; e++) {
        pare_s8_qconvg_fn *fn = (pare_s8_qconvg_fn *)list[e]->fn;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int variant = 0; variant < 12; variant++) {
                long n = ns[ni];
                int sparsity = (int)(variant % 3) * 45 + (variant == 11 ? 9 : 0); /* 0, 45, 90, 99 % */
                qcase kc;
                memset(&kc, 0, sizeof kc);
                long span = 3 * n + 200;
                make_qgroups(&kc, &r, 9, 40, span, sparsity);
                /* input: every dword a kernel reads, with the chunk's slack, against a guard page */
                size_t in_d = (size_t)(span + n + PARE_QCONV_CHUNK);
                uint8_t *in = guard_bytes(in_d);
                for (size_t i = 0; i < 4 * in_d; i++)
                    in[i] = (uint8_t)pare_rng_below(&r, 256);
                int u8 = variant & 1, quads = (kc.O + 3) / 4;
                long out_cs = n + (long)pare_rng_below(&r, 9);
                size_t out_d = u8 ? (size_t)((quads - 1) * out_cs + n) : (size_t)((kc.O - 1) * out_cs + n);
                if (kc.O == 0)
                    out_d = 0;
                uint8_t *o1 = guard_bytes(out_d), *o2 = guard_bytes(out_d);
                for (size_t i = 0; i < 4 * out_d; i++)
                    o1[i] = o2[i] = (uint8_t)(i * 37);
                size_t res_n = (size_t)(kc.O * out_cs + n + 2 * PARE_QCONV_CHUNK);
                float *res = pare_guard_alloc(res_n);
                for (size_t i = 0; i < res_n; i++)
                    res[i] = frand(&r, -80.0f, 80.0f);
                long chunks = (n + PARE_QCONV_CHUNK - 1) / PARE_QCONV_CHUNK;
                uint16_t *mask = malloc(sizeof(uint16_t) * (size_t)(chunks + 1));
                for (long c = 0; c < chunks; c++)
                    mask[c] = (uint16_t)pare_rng_below(&r, 65536);
                pare_qconv_io io;
                memset(&io, 0, sizeof io);
                io.in = in;
                io.out_cs = out_cs;
                io.n = n;
                io.mask = (variant & 4) ? mask : NULL;
                io.res = (variant & 2) ? res : NULL;
                io.res_cs = out_cs;
                io.res_scale = frand(&r, 0.05f, 2.0f);
                io.act = (int)pare_rng_below(&r, 3);
                io.zp = (int32_t)pare_rng_below(&r, 256);
                io.lo = (float)((int)pare_rng_below(&r, (uint64_t)io.zp + 1) - io.zp);
                io.hi = (float)pare_rng_below(&r, (uint64_t)(256 - io.zp));
                /* a split into two position ranges at a multiple of 96, like the engine's */
                long cut = n > 96 ? 96 : n;
                int g_cut = (int)pare_rng_below(&r, (uint64_t)kc.L.n_groups + 1);
                for (int pass = 0; pass < 2; pass++) {
                    pare_s8_qconvg_fn *f = pass ? fn : pare_s8_qconvg_1x1__ref;
                    uint8_t *o = pass ? o2 : o1;
                    io.out8 = u8 ? o : NULL;
                    io.outf = u8 ? NULL : (float *)(void *)o;
                    f(&io, &kc.L, 0, g_cut, 0, cut);
                    f(&io, &kc.L, g_cut, kc.L.n_groups, 0, cut);
                    f(&io, &kc.L, 0, kc.L.n_groups, cut, n);
                }
                if (memcmp(o1, o2, 4 * out_d) != 0) {
                    size_t i = 0;
                    while (o1[i] == o2[i])
                        i++;
                    CHECKF(0, "%s n %ld variant %d (%s out): byte %zu = %d, ref %d", list[e]->name, n, variant,
                           u8 ? "u8" : "float", i, o2[i], o1[i]);
                }
                cases++;
                free(mask);
                guard_bytes_free(in, in_d);
                guard_bytes_free(o1, out_d);
                guard_bytes_free(o2, out_d);
                pare_guard_free(res, res_n);
                qcase_free(&kc);
            }
    }
    printf("  %d conv cases over %d SIMD entries\n", cases, nk);
}

PARE_TEST(qkernels_gemv_vs_ref)
{
    static const int sizes[] = {0, 1, 3, 4, 5, 15, 16, 17, 33, 64, 70};
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_s8_qgemv, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 8, 0, 0, 0);
    for (int e = 0; e < nk; e++)
        for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
            for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
                pare_qfc F;
                int in4 = sizes[a], out = sizes[b], blocks = (out + 15) / 16;
                F.in4 = in4;
                F.out = out;
                size_t nw = (size_t)blocks * (size_t)in4 * 64;
                int8_t *w = malloc(nw + 1);
                int32_t *bias = malloc(sizeof(int32_t) * (size_t)(blocks * 16 + 1));
                float *scale = malloc(sizeof(float) * (size_t)(blocks * 16 + 1));
                float *shift = malloc(sizeof(float) * (size_t)(blocks * 16 + 1));
                for (size_t i = 0; i < nw; i++)
                    w[i] = (int8_t)((int)pare_rng_below(&r, 256) - 128);
                for (int i = 0; i < blocks * 16; i++) {
                    bias[i] = (int32_t)pare_rng_below(&r, 1u << 20) - (1 << 19);
                    scale[i] = frand(&r, -1e-3f, 1e-3f);
                    shift[i] = frand(&r, -3.0f, 3.0f);
                }
                F.w = w;
                F.bias = bias;
                F.scale = scale;
                F.shift = shift;
                uint8_t *x = guard_bytes((size_t)in4);
                for (int i = 0; i < 4 * in4; i++)
                    x[i] = (uint8_t)pare_rng_below(&r, 256);
                float *y1 = pare_guard_alloc((size_t)out), *y2 = pare_guard_alloc((size_t)out);
                int act = (int)pare_rng_below(&r, 3);
                pare_s8_qgemv_1x1__ref(&F, x, y1, act, 0, blocks);
                int cut = blocks / 2;
                ((pare_s8_qgemv_fn *)list[e]->fn)(&F, x, y2, act, 0, cut);
                ((pare_s8_qgemv_fn *)list[e]->fn)(&F, x, y2, act, cut, blocks);
                CHECKF(memcmp(y1, y2, sizeof(float) * (size_t)out) == 0, "%s in4 %d out %d differs from ref",
                       list[e]->name, in4, out);
                guard_bytes_free(x, (size_t)in4);
                pare_guard_free(y1, (size_t)out);
                pare_guard_free(y2, (size_t)out);
                free(w);
                free(bias);
                free(scale);
                free(shift);
            }
}

PARE_TEST(qkernels_maxrow_quant_vs_ref)
{
    static const long ns[] = {0, 1, 7, 8, 9, 15, 16, 17, 18, 33, 100};
    pare_rng r;
    pare_rng_seed(&r, 9, 0, 0, 0);
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_u8_maxrow, list, &nk);
    for (int e = 0; e < nk; e++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int kh = 1; kh <= 3; kh++)
                for (int kw = 1; kw <= 3; kw++)
                    for (int sw = 1; sw <= 3; sw++) {
                        long n = ns[ni], rs = n * sw + kw + 3;
                        /* exactly the dwords the definition reads, against the guard page */
                        size_t in_d = n ? (size_t)((kh - 1) * rs + (n - 1) * sw + kw) : 0;
                        uint32_t *in = (uint32_t *)(void *)guard_bytes(in_d);
                        for (size_t i = 0; i < in_d; i++)
                            in[i] = (uint32_t)pare_rng_u64(&r);
                        uint32_t *a = (uint32_t *)(void *)guard_bytes((size_t)n);
                        uint32_t *b = (uint32_t *)(void *)guard_bytes((size_t)n);
                        pare_u8_maxrow_1x1__ref(a, in, rs, kh, kw, sw, n);
                        ((pare_u8_maxrow_fn *)list[e]->fn)(b, in, rs, kh, kw, sw, n);
                        CHECKF(memcmp(a, b, 4 * (size_t)n) == 0, "%s n %ld %dx%d stride %d differs from ref",
                               list[e]->name, n, kh, kw, sw);
                        guard_bytes_free((uint8_t *)in, in_d);
                        guard_bytes_free((uint8_t *)a, (size_t)n);
                        guard_bytes_free((uint8_t *)b, (size_t)n);
                    }
    compare_entries(PARE_QK_u8_quant4, list, &nk);
    for (int e = 0; e < nk; e++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int variant = 0; variant < 8; variant++) {
                long n = ns[ni];
                float s = frand(&r, 0.01f, 0.2f), zp = (float)pare_rng_below(&r, 256);
                float qmax = variant & 1 ? 255.0f : 15.0f;
                if (zp > qmax)
                    zp = qmax;
                float *rows[4];
                const float *in[4];
                for (int b = 0; b < 4; b++) {
                    rows[b] = pare_guard_alloc((size_t)n);
                    for (long i = 0; i < n; i++) {
                        long k = (long)pare_rng_below(&r, 600) - 300;
                        switch (pare_rng_below(&r, 8)) {
                        case 0: rows[b][i] = ((float)k + 0.5f) * s; break; /* a tie */
                        case 1: rows[b][i] = (float)k * 1e6f; break;
                        case 2: rows[b][i] = k & 1 ? NAN : INFINITY * (float)(k | 1); break;
                        default: rows[b][i] = frand(&r, -40.0f, 40.0f);
                        }
                    }
                    in[b] = (variant >> 1 & 3) == b ? NULL : rows[b];
                }
                uint32_t *a = (uint32_t *)(void *)guard_bytes((size_t)n);
                uint32_t *c = (uint32_t *)(void *)guard_bytes((size_t)n);
                pare_u8_quant4_1x1__ref(a, in, n, s, zp, qmax);
                ((pare_u8_quant4_fn *)list[e]->fn)(c, in, n, s, zp, qmax);
                CHECKF(memcmp(a, c, 4 * (size_t)n) == 0, "%s n %ld variant %d differs from ref", list[e]->name, n,
                       variant);
                for (int b = 0; b < 4; b++)
                    pare_guard_free(rows[b], (size_t)n);
                guard_bytes_free((uint8_t *)a, (size_t)n);
                guard_bytes_free((uint8_t *)c, (size_t)n);
            }
}

PARE_TEST(qkernels_ref_semantics)
{
    /* One group of 2 filters (rp 2) over 2 columns, by hand. Input dwords:
     * position 0 at offset 0 is codes (10, 20, 30, 40), at offset 1 (1, 2, 3, 4). */
    uint8_t in[4 * 4] = {10, 20, 30, 40, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
    int32_t off[2] = {0, 1};
    int8_t w[2 * 2 * 4] = {1, -1, 2, 0, /* col 0 filter 0 */ 3, 0, 0, -128, /* col 0 filter 1 */
                           5, 5, 5, 5, /* col 1 filter 0 */ 0, 0, 0, 127 /* col 1 filter 1 */};
    int32_t bias[2] = {-7, 1000};
    pare_qconv_group g = {2, 2, 2, 2, off, w, bias};
    float scale[4] = {0, 0, 0.5f, -0.01f}, shift[4] = {0, 0, 0.0f, 2.5f};
    pare_qconv_layer L;
    memset(&L, 0, sizeof L);
    L.n_groups = 1;
    L.groups = &g;
    L.scale = scale;
    L.shift = shift;
    /* filter 2: -7 + 10 - 20 + 60 + 0 + 5*(1+2+3+4) = 93 -> 46.5 -> rint 46 (even) + zp 3 = 49
     * filter 3: 1000 + 30 - 5120 + 4*127 = -3582 -> 35.82 + 2.5 = 38.32 -> 38 + 3 = 41 */
    uint8_t out[4] = {9, 9, 9, 9};
    pare_qconv_io io;
    memset(&io, 0, sizeof io);
    io.in = in;
    io.out8 = out;
    io.out_cs = 1;
    io.n = 1;
    io.zp = 3;
    io.lo = -3;
    io.hi = 252;
    pare_s8_qconvg_1x1__ref(&io, &L, 0, 1, 0, 1);
    CHECK(out[0] == 9 && out[1] == 9 && out[2] == 49 && out[3] == 41);
    /* clamped above: hi 40 - 3 */
    io.hi = 37;
    pare_s8_qconvg_1x1__ref(&io, &L, 0, 1, 0, 1);
    CHECK(out[2] == 40 && out[3] == 40);
    /* float out with relu6 and a residual: 46.5 + 1 -> 6; 38.32 - 40 -> 0 */
    float outf[4 * 2] = {0}, res[4 * 2] = {0, 0, 1.0f, -40.0f};
    io.out8 = NULL;
    io.outf = outf;
    io.res = res;
    io.res_cs = 1;
    io.act = 2;
    pare_s8_qconvg_1x1__ref(&io, &L, 0, 1, 0, 1);
    CHECK(outf[2] == 6.0f && outf[3] == 0.0f);
    /* the quantizer is the fakequant op's: rint(x / s) + zp, clamped */
    float r0[3] = {0.25f, -100.0f, 0.75f}, r1[3] = {1.0f, 2.0f, 1e9f};
    const float *rows[4] = {r0, r1, NULL, r0};
    uint32_t q[3];
    pare_u8_quant4_1x1__ref(q, rows, 3, 0.5f, 10.0f, 255.0f);
    uint8_t *qb = (uint8_t *)q;
    /* 0.25/0.5 = 0.5 -> 0 (even); 1/0.5 = 2; -200 -> 0; 4; 1.5 -> 2; 2e9 -> 255 */
    CHECK(qb[0] == 10 && qb[1] == 12 && qb[2] == 10 && qb[3] == 10);
    CHECK(qb[4] == 0 && qb[5] == 14 && qb[6] == 10 && qb[7] == 0);
    CHECK(qb[8] == 12 && qb[9] == 255 && qb[10] == 10 && qb[11] == 12);
    /* the max pool is bytewise */
    uint32_t mi[3], mo[2];
    uint8_t *mb = (uint8_t *)mi;
    for (int i = 0; i < 12; i++)
        mb[i] = (uint8_t)((i * 97) % 256);
    pare_u8_maxrow_1x1__ref(mo, mi, 0, 1, 2, 1, 2);
    uint8_t *ob = (uint8_t *)mo;
    for (int b = 0; b < 4; b++) {
        CHECK(ob[b] == (mb[b] > mb[4 + b] ? mb[b] : mb[4 + b]));
        CHECK(ob[4 + b] == (mb[4 + b] > mb[8 + b] ? mb[4 + b] : mb[8 + b]));
    }
}

PARE_TEST(qkernels_gather_vs_ref)
{
    static const long lens[] = {0, 16, 32, 48, 96};
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_u8_gather4, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 10, 0, 0, 0);
    for (int e = 0; e < nk; e++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int n = 0; n <= 9; n += 3) {
                long len = lens[li], span = 300, ld = len + (long)pare_rng_below(&r, 5);
                size_t src_d = (size_t)(span + len);
                uint8_t *src = guard_bytes(src_d);
                for (size_t i = 0; i < 4 * src_d; i++)
                    src[i] = (uint8_t)pare_rng_below(&r, 256);
                int32_t off[40];
                uint8_t sel[40];
                for (int i = 0; i < 4 * n; i++) {
                    off[i] = (int32_t)pare_rng_below(&r, (uint64_t)span + 1);
                    sel[i] = (uint8_t)pare_rng_below(&r, 4);
                }
                size_t dst_d = n ? (size_t)((n - 1) * ld + len) : 0;
                uint32_t *a = (uint32_t *)(void *)guard_bytes(dst_d), *b = (uint32_t *)(void *)guard_bytes(dst_d);
                memset(a, 0, 4 * dst_d);
                memset(b, 0, 4 * dst_d);
                pare_u8_gather4_1x1__ref(a, ld, src, off, sel, n, len);
                ((pare_u8_gather4_fn *)list[e]->fn)(b, ld, src, off, sel, n, len);
                CHECKF(memcmp(a, b, 4 * dst_d) == 0, "%s n %d len %ld differs from ref", list[e]->name, n, len);
                guard_bytes_free(src, src_d);
                guard_bytes_free((uint8_t *)a, dst_d);
                guard_bytes_free((uint8_t *)b, dst_d);
            }
    /* the reference by hand: bytes (2 of dword 1, 0 of dword 0, 3 of dword 2, 1 of dword 1) */
    uint8_t src[16];
    for (int i = 0; i < 16; i++)
        src[i] = (uint8_t)(10 + i);
    int32_t off[4] = {1, 0, 2, 1};
    uint8_t sel[4] = {2, 0, 3, 1};
    uint32_t d;
    pare_u8_gather4_1x1__ref(&d, 1, src, off, sel, 1, 1);
    uint8_t *db = (uint8_t *)&d;
    CHECK(db[0] == 16 && db[1] == 10 && db[2] == 21 && db[3] == 15);
}

/* The engine's scalar max-pool loop before the kernel existed: the first row
 * of the window initialises, the rest compare. */
static void maxrow_loop(float *out, const float *in, long rs, int kh, int kw, int sw, long n)
{
    for (long x = 0; x < n; x++) {
        const float *w0 = in + x * sw;
        float m = w0[0];
        for (int j = 1; j < kw; j++)
            m = w0[j] > m ? w0[j] : m;
        out[x] = m;
    }
    for (int h = 1; h < kh; h++)
        for (long x = 0; x < n; x++) {
            const float *wh = in + h * rs + x * sw;
            float m = out[x];
            for (int j = 0; j < kw; j++)
                m = wh[j] > m ? wh[j] : m;
            out[x] = m;
        }
}

PARE_TEST(qkernels_float_maxrow_vs_ref)
{
    static const long ns[] = {0, 1, 7, 8, 9, 15, 16, 17, 18, 33, 100};
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_f32_maxrow, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 11, 0, 0, 0);
    for (int e = -1; e < nk; e++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int kh = 1; kh <= 3; kh++)
                for (int kw = 1; kw <= 3; kw++)
                    for (int sw = 1; sw <= 3; sw++) {
                        long n = ns[ni], rs = n * sw + kw + 3;
                        size_t in_n = n ? (size_t)((kh - 1) * rs + (n - 1) * sw + kw) : 0;
                        float *in = pare_guard_alloc(in_n);
                        for (size_t i = 0; i < in_n; i++) {
                            uint64_t u = pare_rng_below(&r, 50);
                            in[i] = u == 0 ? NAN : u == 1 ? -0.0f : u == 2 ? 0.0f : frand(&r, -5, 5);
                        }
                        float *a = pare_guard_alloc((size_t)n), *b = pare_guard_alloc((size_t)n);
                        /* e = -1: the reference against the engine's old loop */
                        if (e < 0)
                            maxrow_loop(a, in, rs, kh, kw, sw, n);
                        else
                            pare_f32_maxrow_1x1__ref(a, in, rs, kh, kw, sw, n);
                        (e < 0 ? pare_f32_maxrow_1x1__ref : (pare_f32_maxrow_fn *)list[e]->fn)(b, in, rs, kh, kw, sw, n);
                        CHECKF(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "%s n %ld %dx%d stride %d",
                               e < 0 ? "the reference against the loop" : list[e]->name, n, kh, kw, sw);
                        pare_guard_free(in, in_n);
                        pare_guard_free(a, (size_t)n);
                        pare_guard_free(b, (size_t)n);
                    }
}

PARE_TEST(qkernels_phase2_vs_ref)
{
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_u32_phase2, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 12, 0, 0, 0);
    for (int e = 0; e < nk; e++)
        for (long w = 0; w < 80; w += 1 + (w > 40) * 6)
            for (long n = 0; n <= (w + 1) / 2 + 2; n++) {
                uint32_t *in = (uint32_t *)(void *)guard_bytes((size_t)w);
                for (long i = 0; i < w; i++)
                    in[i] = (uint32_t)pare_rng_u64(&r);
                uint32_t *a = (uint32_t *)(void *)guard_bytes((size_t)n), *b = (uint32_t *)(void *)guard_bytes((size_t)n);
                uint32_t *ao = (uint32_t *)(void *)guard_bytes((size_t)n), *bo = (uint32_t *)(void *)guard_bytes((size_t)n);
                pare_u32_phase2_1x1__ref(a, ao, in, n, w, 0x07070707u);
                ((pare_u32_phase2_fn *)list[e]->fn)(b, bo, in, n, w, 0x07070707u);
                CHECKF(memcmp(a, b, 4 * (size_t)n) == 0, "%s n %ld w %ld differs from ref", list[e]->name, n, w);
                CHECKF(memcmp(ao, bo, 4 * (size_t)n) == 0, "%s n %ld w %ld: odd phase differs from ref", list[e]->name,
                       n, w);
                guard_bytes_free((uint8_t *)in, (size_t)w);
                guard_bytes_free((uint8_t *)a, (size_t)n);
                guard_bytes_free((uint8_t *)b, (size_t)n);
                guard_bytes_free((uint8_t *)ao, (size_t)n);
                guard_bytes_free((uint8_t *)bo, (size_t)n);
            }
    uint32_t in[5] = {1, 2, 3, 4, 5}, out[4], odd[4];
    pare_u32_phase2_1x1__ref(out, odd, in, 4, 5, 9);
    CHECK(out[0] == 1 && out[1] == 3 && out[2] == 5 && out[3] == 9);
    CHECK(odd[0] == 2 && odd[1] == 4 && odd[2] == 9 && odd[3] == 9);
}

/* ops/quant.c's forward, copied: the oracle of the float fakequant row. */
static float fq_op(float x, float s, float zp, float qmax)
{
    float q = rintf(x / s);
    if (q < -1.0f - zp)
        q = -1.0f - zp;
    if (q > qmax + 1.0f - zp)
        q = qmax + 1.0f - zp;
    q = q + zp;
    q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
    return (q - zp) * s;
}

PARE_TEST(qkernels_float_fakequant_vs_ref)
{
    const pare_qconv_entry *list[16];
    int nk;
    compare_entries(PARE_QK_f32_fq, list, &nk);
    pare_rng r;
    pare_rng_seed(&r, 13, 0, 0, 0);
    for (int e = -1; e < nk; e++)
        for (long n = 0; n < 70; n += 1 + (n > 20) * 5) {
            float s = frand(&r, 0.01f, 0.3f), zp = (float)pare_rng_below(&r, 200), qmax = pare_rng_below(&r, 2) ? 255.0f : 15.0f;
            if (zp > qmax)
                zp = qmax;
            float *x = pare_guard_alloc((size_t)n), *a = pare_guard_alloc((size_t)n), *b = pare_guard_alloc((size_t)n);
            for (long i = 0; i < n; i++) {
                long k = (long)pare_rng_below(&r, 600) - 300;
                switch (pare_rng_below(&r, 6)) {
                case 0: x[i] = ((float)k + 0.5f) * s; break;
                case 1: x[i] = (float)k * 1e7f; break;
                case 2: x[i] = k & 1 ? NAN : INFINITY * (float)(k | 1); break;
                default: x[i] = frand(&r, -30.0f, 30.0f);
                }
                a[i] = fq_op(x[i], s, zp, qmax);
            }
            (e < 0 ? pare_f32_fq_1x1__ref : (pare_f32_fq_fn *)list[e]->fn)(b, x, n, s, zp, qmax);
            CHECKF(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "%s n %ld differs from the op's forward",
                   e < 0 ? "the reference" : list[e]->name, n);
            pare_guard_free(x, (size_t)n);
            pare_guard_free(a, (size_t)n);
            pare_guard_free(b, (size_t)n);
        }
}
