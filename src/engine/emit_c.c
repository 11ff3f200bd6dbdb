/* Emitting a plan as one standalone C file: the packed weights as static
 * arrays, one function per step over a static arena, no malloc; libm only
 * for int8 layers and fakequants (rintf, fmaf). */
#include <float.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsio.h"
#include "engine/engine.h"
#include "graph/op.h"

/* Positions a conv computes at once: the input rows of a tile stay in cache
 * while every filter passes over them, and a filter's output tile stays in
 * L1 while its columns stream past. */
#define TILE 256
/* Floats before the first act (and after the last): wide convs read up to P
 * floats before and after an act's planes for the halo lanes they discard. */
#define FRONT 64
#define MAX_PREFIX 64

/* ---- the text buffer ------------------------------------------------------ */

/* The whole file grows here, ~19 bytes per weight (a dense ResNet-18 is 218 MB
 * of text, a dense VGG-16 would be ~2.6 GB); glibc grows blocks this large
 * with mremap, so doubling does not copy them. */
typedef struct ebuf {
    char *p;
    size_t len, cap;
    int oom;
} ebuf;

static int reserve(ebuf *b, size_t more)
{
    if (b->oom)
        return 0;
    if (b->len + more < b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : (size_t)1 << 16;
    while (cap <= b->len + more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void put(ebuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void putf(ebuf *b, const char *fmt, ...) PARE_PRINTF(2, 3);
static void putf(ebuf *b, const char *fmt, ...)
{
    if (!reserve(b, 256))
        return;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len && reserve(b, (size_t)n + 1))
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (!b->oom)
        b->len += (size_t)n;
}

/* ---- exact literals ------------------------------------------------------- */

/* The exact C99 hex literal of a finite float ("-0x1.2345p-7f", "0.0f"),
 * written by hand because printf is too slow for a hundred million weights;
 * returns its length, or 0 for an infinity or a NaN, which C cannot spell
 * without <math.h>. */
static size_t float_lit(char *s, float v)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    char *p = s;
    if (u >> 31)
        *p++ = '-';
    uint32_t e = (u >> 23) & 0xffu, m = (u & 0x7fffffu) << 1; /* 24 bits: 6 hex digits */
    if (e == 0xffu)
        return 0;
    if (e == 0 && m == 0) {
        memcpy(p, "0.0f", 5);
        return (size_t)(p - s) + 4;
    }
    int ex = e ? (int)e - 127 : -126; /* a subnormal is 0x0.hhhhhh times 2^-126 */
    *p++ = '0';
    *p++ = 'x';
    *p++ = e ? '1' : '0';
    if (m) {
        int nd = 6;
        while (!(m & 0xfu)) {
            m >>= 4;
            nd--;
        }
        *p++ = '.';
        for (int i = nd - 1; i >= 0; i--) {
            p[i] = hex[m & 0xfu];
            m >>= 4;
        }
        p += nd;
    }
    *p++ = 'p';
    *p++ = ex < 0 ? '-' : '+';
    unsigned ax = (unsigned)(ex < 0 ? -ex : ex);
    if (ax >= 100)
        *p++ = (char)('0' + ax / 100);
    if (ax >= 10)
        *p++ = (char)('0' + ax / 10 % 10);
    *p++ = (char)('0' + ax % 10);
    *p++ = 'f';
    *p = 0;
    return (size_t)(p - s);
}

static size_t int_lit(char *s, long v)
{
    char tmp[24];
    int n = 0;
    unsigned long a = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    do {
        tmp[n++] = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    size_t k = 0;
    if (v < 0)
        s[k++] = '-';
    while (n)
        s[k++] = tmp[--n];
    s[k] = 0;
    return k;
}

typedef struct emitter {
    ebuf b;
    const pare_plan *p;
    char pre[MAX_PREFIX + 1];  /* every name in the file starts with it */
    int bad_float;             /* a non-finite value was met */
    /* the helpers some step calls (the file defines only those) */
    int use_fill, use_axpy, use_axpy4, use_add, use_relu, use_relu6, use_halo;
    int use_q8;                /* int8 steps (or fakequants): <math.h> */
    int use_qconv, use_qmax, use_qcode;
    int use_halo8;             /* a u8 act with a halo */
    long qbuf_bytes;           /* the largest gathered qconv tile */
    size_t arr_i, arr_n;       /* the integer array being written: values put, declared */
} emitter;

/* A static const array of n floats; C has no empty arrays, so an empty one
 * gets a single zero that no loop reads. */
static void float_array(emitter *E, const char *name, const char *why, const float *v, size_t n)
{
    putf(&E->b, "static const float %s_%s[%zu] = { /* %s */", E->pre, name, n ? n : 1, why);
    if (!n)
        put(&E->b, "0.0f");
    for (size_t i = 0; i < n && reserve(&E->b, 64); i++) {
        char *s = E->b.p + E->b.len;
        size_t k = 0;
        if (i % 8 == 0)
            k += (size_t)sprintf(s, "\n   ");
        s[k++] = ' ';
        size_t f = float_lit(s + k, v[i]);
        if (!f) {
            E->bad_float = 1;
            memcpy(s + k, "0.0f", 5);
            f = 4;
        }
        k += f;
        if (i + 1 < n)
            s[k++] = ',';
        s[k] = 0;
        E->b.len += k;
    }
    put(&E->b, "\n};\n");
}

/* A static const integer array written value by value, so that values kept
 * in several arrays (per group) need no scratch: ints_open declares the array
 * `name` of n values, ints_put appends one, ints_end closes it. */
static void ints_open(emitter *E, const char *type, const char *name, const char *why, size_t n)
{
    putf(&E->b, "static const %s %s_%s[%zu] = { /* %s */", type, E->pre, name, n ? n : 1, why);
    if (!n)
        put(&E->b, "0");
    E->arr_i = 0;
    E->arr_n = n;
}

/* ints_open for step i's array `suffix` (named s<i>_<suffix>). */
static void ints_begin(emitter *E, const char *type, int i, const char *suffix, const char *why, size_t n)
{
    char name[64];
    snprintf(name, sizeof name, "s%d_%s", i, suffix);
    ints_open(E, type, name, why, n);
}

static void ints_put(emitter *E, long v)
{
    if (!reserve(&E->b, 48))
        return;
    char *s = E->b.p + E->b.len;
    size_t k = 0, i = E->arr_i++;
    if (i % 12 == 0)
        k += (size_t)sprintf(s, "\n   ");
    s[k++] = ' ';
    k += int_lit(s + k, v);
    if (i + 1 < E->arr_n)
        s[k++] = ',';
    s[k] = 0;
    E->b.len += k;
}

static void ints_end(emitter *E) { put(&E->b, "\n};\n"); }

/* Step i's array `suffix` of the n values of src, an array of any integer type. */
#define STEP_INTS(E, type, i, suffix, why, src, n)                                                \
    do {                                                                                          \
        size_t n_ = (n);                                                                          \
        ints_begin(E, type, i, suffix, why, n_);                                                  \
        for (size_t e_ = 0; e_ < n_; e_++)                                                        \
            ints_put(E, (long)(src)[e_]);                                                         \
        ints_end(E);                                                                              \
    } while (0)

/* The same for values already in one array of longs, named in full. */
static void int_array(emitter *E, const char *type, const char *name, const char *why, const long *v, size_t n)
{
    ints_open(E, type, name, why, n);
    for (size_t i = 0; i < n; i++)
        ints_put(E, v[i]);
    ints_end(E);
}

/* Layer names come from model files: in a comment they must not close it or
 * splice lines, so anything unusual becomes '_'. */
static void safe_name(char *dst, size_t cap, const char *src)
{
    size_t k = 0;
    for (; src && src[k] && k + 1 < cap; k++) {
        char c = src[k];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._-:+[]()=,#@ ", c);
        dst[k] = ok ? c : '_';
    }
    dst[k] = 0;
}

static int is_identifier(const char *s)
{
    if (!s || !*s || strlen(s) > MAX_PREFIX)
        return 0;
    /* names beginning with '_' are reserved to the implementation at file scope */
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return 0;
    return 1;
}

/* ---- acts ----------------------------------------------------------------- */

/* Floats from the arena's start to element (c, y, x) of an act: the plan's
 * own memory plan, shifted by FRONT. */
static long act_at(const emitter *E, int a, int c, int y, int x)
{
    const pare_act *s = &E->p->acts[a];
    return FRONT + (long)s->offset + c * s->cs + (long)(y + s->P) * s->rs + (x + s->P);
}

static long act_base(const emitter *E, int a) { return FRONT + (long)E->p->acts[a].offset; }

static void halo_call(emitter *E, int a)
{
    const pare_act *s = &E->p->acts[a];
    if (s->P > 0 && s->q8)
        putf(&E->b, "    %s_halo8((unsigned char *)(%s_arena + %ld), %d, %d, %d, %d, %ld, %ld, %u);\n", E->pre, E->pre,
             act_base(E, a), (s->C + 3) / 4, s->H, s->W, s->P, s->rs, s->cs, (unsigned)s->fill);
    else if (s->P > 0)
        putf(&E->b, "    %s_halo(%s_arena + %ld, %d, %d, %d, %d, %ld, %ld);\n", E->pre, E->pre, act_base(E, a), s->C,
             s->H, s->W, s->P, s->rs, s->cs);
}

/* The act applied to the float v, as an expression. */
static const char *act_expr(int act)
{
    return act == 1 ? "(v < 0.0f ? 0.0f : v)" : act == 2 ? "(v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v)" : "v";
}

/* ---- helpers -------------------------------------------------------------- */

static void scan_uses(emitter *E)
{
    const pare_plan *p = E->p;
    E->use_halo = p->acts[p->input_act].P > 0;
    for (int i = 0; i < p->n_steps; i++) {
        const pare_step *st = &p->steps[i];
        const pare_act *oa = &p->acts[st->out];
        if (oa->P > 0 && oa->q8)
            E->use_halo8 = 1;
        else if (oa->P > 0)
            E->use_halo = 1;
        if (st->kind >= PARE_STEP_QCONV || oa->q8 ||
            (st->kind == PARE_STEP_OP && st->op_node.op == PARE_OP_FAKEQUANT))
            E->use_q8 = 1;
        if (st->kind == PARE_STEP_QCONV)
            E->use_qconv = E->use_qmax = 1;
        if (st->kind == PARE_STEP_QFC)
            E->use_qmax = 1;
        if (st->kind == PARE_STEP_QUANT)
            E->use_qcode = E->use_qmax = 1;
        if (st->kind == PARE_STEP_QCONV && st->qconv.n_gather > 0 &&
            (long)st->qconv.n_gather * PARE_QCONV_TILE * 4 > E->qbuf_bytes)
            E->qbuf_bytes = (long)st->qconv.n_gather * PARE_QCONV_TILE * 4;
        if (st->kind != PARE_STEP_CONV || pare_conv_kind_own_runner(st->ck))
            continue; /* those write plain loops */
        E->use_fill = 1;
        if (st->ck == PARE_CK_NM || st->ck == PARE_CK_DENSE || st->ck == PARE_CK_BLOCK || st->ck == PARE_CK_SPARSE)
            E->use_axpy = 1;
        if (st->ck != PARE_CK_NM)
            E->use_axpy4 = 1;
        if (st->res >= 0)
            E->use_add = 1;
        if (st->act == 1)
            E->use_relu = 1;
        if (st->act == 2)
            E->use_relu6 = 1;
    }
}

/* The int8 helpers: kernels/qconv_ref.c's loops, the engine's oracle, which
 * every ISA's kernels equal bit for bit (the float steps are exact IEEE
 * operations in a fixed order, fmaf and rintf from libm). u8 acts are bytes
 * of the arena, 4 channels a dword (the C4 layout of kernels/qconv.h). */
static void emit_q8_helpers(emitter *E)
{
    const char *P = E->pre;
    if (E->use_qconv)
        putf(&E->b,
         "typedef struct %s_qgroup {\n"
         "    int o0, r, rp, ncols;\n"
         "    const int32_t *off;\n"
         "    const int8_t *w;\n"
         "    const int32_t *bias;\n"
         "} %s_qgroup;\n\n"
         "typedef struct %s_qio {\n"
         "    const unsigned char *in;\n"
         "    unsigned char *out8;\n"
         "    float *outf;\n"
         "    long out_cs;\n"
         "    const float *res;\n"
         "    long res_cs;\n"
         "    float res_scale;\n"
         "    long n;\n"
         "    const uint16_t *mask;\n"
         "    int act, zp;\n"
         "    float lo, hi;\n"
         "    const float *scale, *shift;\n"
         "} %s_qio;\n\n",
         P, P, P, P);
    if (E->use_qmax)
        putf(&E->b,
             "static float %s_qmax(float a, float b) { return a > b ? a : b; }\n"
             "static float %s_qmin(float a, float b) { return a < b ? a : b; }\n\n",
             P, P);
    if (E->use_qcode)
        putf(&E->b,
         "/* the fakequant's code of x: clamp(rint(x / s) + zp, 0, qmax), NaN -> 0 */\n"
         "static unsigned char %s_qcode(float x, float s, float zp, float qmax)\n{\n"
         "    float t = rintf(x / s) + zp;\n"
         "    t = %s_qmax(t, 0.0f);\n"
         "    t = %s_qmin(t, qmax);\n"
         "    return (unsigned char)(int32_t)t;\n}\n\n",
         P, P, P);
    if (E->use_qconv)
        putf(&E->b,
         "/* groups [0, ng) at positions [q0, q1): each output the int32 sum of code x\n"
         " * weight over its columns, requantized (u8 out) or made float */\n"
         "static void %s_qconv(const %s_qio *io, const %s_qgroup *g, int ng, long q0, long q1)\n{\n"
         "    for (int gi = 0; gi < ng; gi++)\n"
         "        for (int j = 0; j < g[gi].r; j++)\n"
         "            for (long q = q0; q < q1; q++) {\n"
         "                const int o = g[gi].o0 + j;\n"
         "                int32_t acc = g[gi].bias[j];\n"
         "                float f;\n"
         "                if (q >= io->n || (io->mask && !((io->mask[q / 16] >> (q %% 16)) & 1)))\n"
         "                    continue;\n"
         "                for (int c = 0; c < g[gi].ncols; c++) {\n"
         "                    const unsigned char *x = io->in + 4 * (q + g[gi].off[c]);\n"
         "                    const int8_t *w = g[gi].w + ((long)c * g[gi].rp + j) * 4;\n"
         "                    for (int b = 0; b < 4; b++)\n"
         "                        acc += (int32_t)x[b] * (int32_t)w[b];\n"
         "                }\n"
         "                f = fmaf((float)acc, io->scale[o], io->shift[o]);\n"
         "                if (io->out8) {\n"
         "                    if (io->res)\n"
         "                        f = fmaf(io->res[o * io->res_cs + q], io->res_scale, f);\n"
         "                    f = %s_qmax(f, io->lo);\n"
         "                    f = %s_qmin(f, io->hi);\n"
         "                    io->out8[4 * ((long)(o >> 2) * io->out_cs + q) + (o & 3)] =\n"
         "                        (unsigned char)((int32_t)rintf(f) + io->zp);\n"
         "                } else {\n"
         "                    if (io->res)\n"
         "                        f += io->res[o * io->res_cs + q];\n"
         "                    if (io->act >= 1)\n"
         "                        f = %s_qmax(f, 0.0f);\n"
         "                    if (io->act == 2)\n"
         "                        f = %s_qmin(f, 6.0f);\n"
         "                    io->outf[o * io->out_cs + q] = f;\n"
         "                }\n"
         "            }\n"
         "}\n\n",
         P, P, P, P, P, P, P);
    if (E->qbuf_bytes > 0)
        putf(&E->b,
             "/* a tile of gathered columns: byte b of column i at position p is\n"
             " * src[4 (p + off[4i + b]) + sel[4i + b]] */\n"
             "static unsigned char %s_qbuf[%ld];\n\n"
             "static void %s_qgather(unsigned char *dst, long ld, const unsigned char *src, const int32_t *off,\n"
             "                       const unsigned char *sel, int n, long len)\n{\n"
             "    for (int i = 0; i < n; i++)\n"
             "        for (long p = 0; p < len; p++)\n"
             "            for (int b = 0; b < 4; b++)\n"
             "                dst[4 * (i * ld + p) + b] = src[4 * (p + off[4 * i + b]) + sel[4 * i + b]];\n"
             "}\n\n",
             P, E->qbuf_bytes, P);
    if (E->use_halo8)
        putf(&E->b,
             "/* The border of a u8 act (Cq quad planes of H x W dwords inside a P-wide\n"
             " * halo): its fill code, every byte */\n"
             "static void %s_halo8(unsigned char *b, int Cq, int H, int W, int P, long rs, long cs, unsigned char fill)\n{\n"
             "    for (int c = 0; c < Cq; c++) {\n"
             "        unsigned char *pl = b + 4 * c * cs;\n"
             "        for (long i = 0; i < 4 * P * rs; i++)\n"
             "            pl[i] = pl[4 * (P + H) * rs + i] = fill;\n"
             "        for (int y = 0; y < H; y++) {\n"
             "            unsigned char *row = pl + 4 * (y + P) * rs;\n"
             "            for (int x = 0; x < 4 * P; x++)\n"
             "                row[x] = row[4 * (P + W) + x] = fill;\n"
             "        }\n"
             "    }\n}\n\n",
             P);
}

/* The conv building blocks. Every output position gets its bias, then each
 * column in the packed order, then the residual, then the activation: the
 * reference kernels' order, so results agree to the last bit where the
 * engine runs them. The 8-wide inner loops let cc -O2 vectorise without
 * -ffast-math. */
static void emit_helpers(emitter *E)
{
    const char *P = E->pre;
    if (E->use_q8)
        emit_q8_helpers(E);
    if (E->use_fill)
        putf(&E->b,
             "static void %s_fill(float *restrict y, long n, float v)\n{\n"
             "    for (long q = 0; q < n; q++)\n        y[q] = v;\n}\n\n",
             P);
    if (E->use_axpy)
        putf(&E->b,
             "static void %s_axpy(float *restrict y, const float *restrict x, long n, float w)\n{\n"
             "    const long n8 = n - n %% 8;\n"
             "    for (long q = 0; q < n8; q += 8)\n        for (int l = 0; l < 8; l++)\n            y[q + l] += w * x[q + l];\n"
             "    for (long q = n8; q < n; q++)\n        y[q] += w * x[q];\n}\n\n",
             P);
    if (E->use_axpy4)
        putf(&E->b,
             "/* four columns in one pass, added in order; w holds their weights ws apart */\n"
             "static void %s_axpy4(float *restrict y, const float *restrict x0, const float *restrict x1,\n"
             "                     const float *restrict x2, const float *restrict x3, long n, const float *w, long ws)\n{\n"
             "    const float w0 = w[0], w1 = w[ws], w2 = w[2 * ws], w3 = w[3 * ws];\n"
             "    const long n8 = n - n %% 8;\n"
             "    for (long q = 0; q < n8; q += 8)\n        for (int l = 0; l < 8; l++)\n"
             "            y[q + l] = y[q + l] + w0 * x0[q + l] + w1 * x1[q + l] + w2 * x2[q + l] + w3 * x3[q + l];\n"
             "    for (long q = n8; q < n; q++)\n        y[q] = y[q] + w0 * x0[q] + w1 * x1[q] + w2 * x2[q] + w3 * x3[q];\n}\n\n",
             P);
    if (E->use_add)
        putf(&E->b,
             "static void %s_add(float *restrict y, const float *restrict r, long n)\n{\n"
             "    for (long q = 0; q < n; q++)\n        y[q] += r[q];\n}\n\n",
             P);
    if (E->use_relu)
        putf(&E->b,
             "static void %s_relu(float *restrict y, long n)\n{\n"
             "    for (long q = 0; q < n; q++)\n        y[q] = y[q] < 0.0f ? 0.0f : y[q];\n}\n\n",
             P);
    if (E->use_relu6)
        putf(&E->b,
             "static void %s_relu6(float *restrict y, long n)\n{\n"
             "    for (long q = 0; q < n; q++)\n        y[q] = y[q] < 0.0f ? 0.0f : y[q] > 6.0f ? 6.0f : y[q];\n}\n\n",
             P);
    if (E->use_halo)
        putf(&E->b,
             "/* Zeroes the border of an act (C planes of H x W inside a P-wide halo): the\n"
             " * padding the next conv reads, and the lanes a whole-plane conv discards. */\n"
             "static void %s_halo(float *b, int C, int H, int W, int P, long rs, long cs)\n{\n"
             "    for (int c = 0; c < C; c++) {\n"
             "        float *pl = b + c * cs;\n"
             "        for (long i = 0; i < P * rs; i++)\n"
             "            pl[i] = pl[(P + H) * rs + i] = 0.0f;\n"
             "        for (int y = 0; y < H; y++) {\n"
             "            float *row = pl + (y + P) * rs;\n"
             "            for (int x = 0; x < P; x++)\n"
             "                row[x] = row[P + W + x] = 0.0f;\n"
             "        }\n"
             "    }\n}\n\n",
             P);
}

/* ---- conv steps ----------------------------------------------------------- */

/* Checks that a conv step's positions are what the emitted loops assume:
 * whole interior rows of its output (wide: one run over H rows, storing the
 * interior columns, the mask's lanes; rows: H runs of W). */
static int conv_positions_ok(const emitter *E, const pare_step *st)
{
    const pare_act *ia = &E->p->acts[st->in[0]], *oa = &E->p->acts[st->out];
    if (!st->wide)
        return st->n_pos == oa->W && st->in_base == (long)ia->P * ia->rs + ia->P &&
               st->out_base == (long)oa->P * oa->rs + oa->P;
    if (st->n_pos != (long)oa->H * oa->rs || ia->rs != oa->rs || !st->mask ||
        (st->res >= 0 && E->p->acts[st->res].rs != oa->rs))
        return 0;
    for (long c = 0; c * PARE_CONV_CHUNK < st->n_pos; c++)
        for (int l = 0; l < PARE_CONV_CHUNK; l++) {
            long q = c * PARE_CONV_CHUNK + l, col = q % oa->rs;
            int want = q < st->n_pos && col >= oa->P && col < oa->P + oa->W;
            if (((st->mask[c] >> l) & 1) != want)
                return 0;
        }
    return 1;
}

/* Opens the loops over a conv's positions, tiles outermost so the input
 * rows a tile reads stay in cache while every filter passes over them: x
 * points at the tile's first input position, yt (and rt) at its first
 * output (and residual) position of channel 0; n is its length. */
static void open_positions(emitter *E, const pare_step *st)
{
    const pare_act *ia = &E->p->acts[st->in[0]], *oa = &E->p->acts[st->out];
    const pare_act *ra = st->res >= 0 ? &E->p->acts[st->res] : NULL;
    if (st->wide)
        put(&E->b, "    {\n");
    else
        putf(&E->b, "    for (long row = 0; row < %d; row++) {\n", oa->H);
    putf(&E->b,
         "        for (long q0 = 0; q0 < %ld; q0 += %d) {\n"
         "            const long n = %ld - q0 < %d ? %ld - q0 : %d;\n",
         st->n_pos, TILE, st->n_pos, TILE, st->n_pos, TILE);
    if (st->wide) {
        put(&E->b, "            const float *x = in + q0;\n            float *yt = out + q0;\n");
        if (ra)
            put(&E->b, "            const float *rt = res + q0;\n");
    } else {
        putf(&E->b, "            const float *x = in + row * %ld + q0;\n            float *yt = out + row * %ld + q0;\n",
             ia->rs, oa->rs);
        if (ra)
            putf(&E->b, "            const float *rt = res + row * %ld + q0;\n", ra->rs);
    }
}

/* The end of one filter's tile: the residual, then the activation. */
static void finish_filter(emitter *E, const pare_step *st, const char *ind)
{
    const char *P = E->pre;
    if (st->res >= 0)
        putf(&E->b, "%s%s_add(y, rt + o * %ld, n);\n", ind, P, E->p->acts[st->res].cs);
    if (st->act == 1)
        putf(&E->b, "%s%s_relu(y, n);\n", ind, P);
    if (st->act == 2)
        putf(&E->b, "%s%s_relu6(y, n);\n", ind, P);
}

static int emit_conv_arrays_groups(emitter *E, int i, const pare_step *st)
{
    const pare_conv_layer *L = &st->conv;
    size_t ncols = 0, nw = 0;
    for (int g = 0; g < L->n_groups; g++) {
        ncols += (size_t)L->groups[g].ncols;
        nw += (size_t)L->groups[g].ncols * (size_t)L->groups[g].r;
        nw += (size_t)L->groups[g].r;
    }
    long *grp = malloc(sizeof(long) * (size_t)(3 * L->n_groups + 1));
    long *off = malloc(sizeof(long) * (ncols + 1));
    float *w = malloc(sizeof(float) * (nw + 1));
    if (!grp || !off || !w) {
        free(grp);
        free(off);
        free(w);
        return -1;
    }
    size_t ko = 0, kw = 0, nb = 0;
    for (int g = 0; g < L->n_groups; g++) {
        const pare_conv_group *G = &L->groups[g];
        grp[3 * g] = G->o0;
        grp[3 * g + 1] = G->r;
        grp[3 * g + 2] = G->ncols;
        for (int c = 0; c < G->ncols; c++) {
            off[ko++] = G->off[c];
            for (int j = 0; j < G->r; j++)
                w[kw++] = G->w[(long)c * G->rp + j];
        }
    }
    /* the biases after the weights in the same scratch */
    float *bias = w + kw;
    for (int g = 0; g < L->n_groups; g++)
        for (int j = 0; j < L->groups[g].r; j++)
            bias[nb++] = L->groups[g].bias ? L->groups[g].bias[j] : 0.0f;
    char nm[64];
    snprintf(nm, sizeof nm, "s%d_grp", i);
    int_array(E, "int32_t", nm, "per group: first filter, filters, columns", grp, (size_t)(3 * L->n_groups));
    snprintf(nm, sizeof nm, "s%d_off", i);
    int_array(E, "int32_t", nm, "per group, its columns' input offsets", off, ncols);
    snprintf(nm, sizeof nm, "s%d_w", i);
    float_array(E, nm, "per group, columns x filters", w, kw);
    snprintf(nm, sizeof nm, "s%d_b", i);
    float_array(E, nm, "per group, its filters' biases", bias, nb);
    free(grp);
    free(off);
    free(w);
    return 0;
}

static int emit_conv_arrays_nm(emitter *E, int i, const pare_step *st)
{
    const pare_conv_layer *L = &st->conv;
    size_t per = (size_t)L->nm_ngroups * (size_t)L->nm_n, nf = (size_t)L->n_nm;
    long *iv = calloc(nf * per + nf + (size_t)L->nm_ngroups + 1, sizeof(long));
    float *w = calloc(nf * per + nf + 1, sizeof(float));
    if (!iv || !w) {
        free(iv);
        free(w);
        return -1;
    }
    char nm[64];
    for (int g = 0; g < L->nm_ngroups; g++)
        iv[g] = L->nm_base[g];
    snprintf(nm, sizeof nm, "s%d_base", i);
    int_array(E, "int32_t", nm, "per (channel block, tap): the offset of the block's first channel", iv,
              (size_t)L->nm_ngroups);
    for (size_t f = 0; f < nf; f++)
        iv[f] = L->nm[f].o;
    snprintf(nm, sizeof nm, "s%d_o", i);
    int_array(E, "int32_t", nm, "per filter, its output channel", iv, nf);
    for (size_t f = 0; f < nf; f++)
        for (size_t k = 0; k < per; k++)
            iv[f * per + k] = L->nm[f].idx[k];
    snprintf(nm, sizeof nm, "s%d_idx", i);
    int_array(E, "unsigned char", nm, "per filter and block, the kept channels", iv, nf * per);
    for (size_t f = 0; f < nf; f++)
        for (size_t k = 0; k < per; k++)
            w[f * per + k] = L->nm[f].w[k];
    snprintf(nm, sizeof nm, "s%d_w", i);
    float_array(E, nm, "their weights", w, nf * per);
    for (size_t f = 0; f < nf; f++)
        w[f] = L->nm[f].bias;
    snprintf(nm, sizeof nm, "s%d_b", i);
    float_array(E, nm, "per filter, its bias", w, nf);
    free(iv);
    free(w);
    return 0;
}

static int emit_conv_arrays_pattern(emitter *E, int i, const pare_step *st)
{
    const pare_conv_layer *L = &st->conv;
    size_t nf = (size_t)L->n_pf, nk = 0;
    for (size_t f = 0; f < nf; f++)
        nk += (size_t)L->pf[f].nk;
    size_t ni = 4 * (size_t)L->n_pat + nk + nf + 1, nw = 4 * nk + nf + 1;
    long *iv = calloc(ni, sizeof(long));
    float *w = calloc(nw, sizeof(float));
    if (!iv || !w) {
        free(iv);
        free(w);
        return -1;
    }
    char nm[64];
    if (L->n_pat > 0) {
        putf(&E->b, "static const int32_t %s_s%d_po[%d][4] = { /* per pattern, its 4 tap offsets */\n", E->pre, i,
             L->n_pat);
        for (int k = 0; k < L->n_pat; k++)
            putf(&E->b, "    {%d, %d, %d, %d}%s\n", (int)L->pat_off[k][0], (int)L->pat_off[k][1],
                 (int)L->pat_off[k][2], (int)L->pat_off[k][3], k + 1 < L->n_pat ? "," : "");
        put(&E->b, "};\n");
    } else {
        putf(&E->b, "static const int32_t %s_s%d_po[1][4] = {{0, 0, 0, 0}}; /* no kernel kept */\n", E->pre, i);
    }
    for (size_t f = 0; f < nf; f++)
        iv[f] = L->pf[f].o;
    snprintf(nm, sizeof nm, "s%d_o", i);
    int_array(E, "int32_t", nm, "per filter, its output channel", iv, nf);
    for (size_t f = 0; f < nf; f++)
        iv[f] = L->pf[f].nk;
    snprintf(nm, sizeof nm, "s%d_nk", i);
    int_array(E, "int32_t", nm, "per filter, its kernels", iv, nf);
    size_t k = 0;
    for (size_t f = 0; f < nf; f++)
        for (int j = 0; j < L->pf[f].nk; j++)
            iv[k++] = L->pf[f].coff[j];
    snprintf(nm, sizeof nm, "s%d_coff", i);
    int_array(E, "int32_t", nm, "per kernel, its input channel's offset", iv, nk);
    k = 0;
    for (size_t f = 0; f < nf; f++)
        for (int j = 0; j < L->pf[f].nk; j++)
            iv[k++] = L->pf[f].pat[j];
    snprintf(nm, sizeof nm, "s%d_pat", i);
    int_array(E, "unsigned char", nm, "per kernel, its pattern (sorted within a filter)", iv, nk);
    k = 0;
    for (size_t f = 0; f < nf; f++)
        for (int j = 0; j < 4 * L->pf[f].nk; j++)
            w[k++] = L->pf[f].w[j];
    snprintf(nm, sizeof nm, "s%d_w", i);
    float_array(E, nm, "per kernel, 4 weights in its pattern's tap order", w, k);
    for (size_t f = 0; f < nf; f++)
        w[f] = L->pf[f].bias;
    snprintf(nm, sizeof nm, "s%d_b", i);
    float_array(E, nm, "per filter, its bias", w, nf);
    free(iv);
    free(w);
    return 0;
}

/* The arrays of a plain-loop step: s<i>_w (nw weights) and s<i>_b (nb biases). */
static void weights_and_bias(emitter *E, int i, const char *why, const float *w, size_t nw, const float *b, size_t nb)
{
    char nm[32];
    snprintf(nm, sizeof nm, "s%d_w", i);
    float_array(E, nm, why, w, nw);
    snprintf(nm, sizeof nm, "s%d_b", i);
    float_array(E, nm, "per output channel, its bias", b, nb);
}

/* The opening of a plain-loop step's function: in, out (and res) at element
 * (0, 0, 0) of their acts. */
static void plain_step_head(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const float *restrict in = %s_arena + %ld;\n"
         "    float *restrict out = %s_arena + %ld;\n",
         P, i, P, act_at(E, st->in[0], 0, 0, 0), P, act_at(E, st->out, 0, 0, 0));
    if (st->res >= 0)
        putf(&E->b, "    const float *restrict res = %s_arena + %ld;\n", P, act_at(E, st->res, 0, 0, 0));
}

/* v += the residual at (channel `ch`, y, x), in a plain loop's body. */
static void plain_residual(emitter *E, const pare_step *st, const char *ch)
{
    if (st->res >= 0)
        putf(&E->b, "                v += res[%s * %ldL + y * %ldL + x];\n", ch, E->p->acts[st->res].cs,
             E->p->acts[st->res].rs);
}

/* A depthwise step: the reference kernel's loops (kernels/conv_ref.c), every
 * size a literal. */
static pare_status emit_dw(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_conv_layer *L = &st->conv;
    const pare_act *ia = &E->p->acts[st->in[0]], *oa = &E->p->acts[st->out];
    int kk = L->dw_kh * L->dw_kw;
    weights_and_bias(E, i, "per channel, its kh x kw taps", L->dw_w, (size_t)oa->C * (size_t)kk, L->dw_b,
                     (size_t)oa->C);
    plain_step_head(E, i, st);
    putf(&E->b,
         "    for (long c = 0; c < %d; c++) {\n"
         "        const float *w = %s_s%d_w + c * %d;\n"
         "        for (long y = 0; y < %d; y++) {\n"
         "            const float *top = in + c * %ldL + (y * %d - %d) * %ldL - %d;\n"
         "            float *o = out + c * %ldL + y * %ldL;\n"
         "            for (long x = 0; x < %d; x++) {\n"
         "                float v = %s_s%d_b[c];\n"
         "                for (long i = 0; i < %d; i++)\n"
         "                    for (long j = 0; j < %d; j++)\n"
         "                        v += w[i * %d + j] * top[i * %ldL + x * %d + j];\n",
         oa->C, P, i, kk, oa->H, ia->cs, L->dw_sh, L->dw_pt, ia->rs, L->dw_pl, oa->cs, oa->rs, oa->W, P, i,
         L->dw_kh, L->dw_kw, L->dw_kw, ia->rs, L->dw_sw);
    plain_residual(E, st, "c");
    putf(&E->b,
         "                o[x] = %s;\n"
         "            }\n"
         "        }\n"
         "    }\n"
         "}\n\n",
         act_expr(st->act));
    return PARE_OK;
}

/* An im2col + GEMM or filter-lanes step: its sum written out directly (per
 * output, the columns in order, bias, residual and activation: the engine's
 * order up to the GEMM's own summation order; the lanes reference starts from
 * the bias). GEMM weights are O x K; lanes weights blocks of PARE_LANES filters
 * column by column. */
static pare_status emit_plain_dense(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_conv_layer *L = &st->conv;
    const pare_act *ia = &E->p->acts[st->in[0]], *oa = &E->p->acts[st->out];
    int lanes = st->ck == PARE_CK_LANES, K = L->dn_k;
    size_t nw = (size_t)(lanes ? L->dn_nb * PARE_LANES : oa->C) * (size_t)K;
    weights_and_bias(E, i, lanes ? "per block of 16 filters, K x 16 weights" : "O x K weights", L->dn_w, nw,
                     L->dn_b, (size_t)oa->C);
    char nm[32];
    long *off = malloc(sizeof(long) * (size_t)(K > 0 ? K : 1));
    if (!off)
        return pare_fail(PARE_ENOMEM, "out of memory emitting layer %s", st->name);
    for (int k = 0; k < K; k++)
        off[k] = L->dn_off[k];
    snprintf(nm, sizeof nm, "s%d_off", i);
    int_array(E, "int32_t", nm, "per column, its input offset", off, (size_t)K);
    free(off);
    char init[96];
    snprintf(init, sizeof init, lanes ? "%s_s%d_b[o]" : "0.0f", P, i);
    plain_step_head(E, i, st);
    if (lanes)
        putf(&E->b,
             "    for (long o = 0; o < %d; o++) {\n"
             "        const float *w = %s_s%d_w + o / %d * %ldL + o %% %d;\n",
             oa->C, P, i, PARE_LANES, (long)K * PARE_LANES, PARE_LANES);
    else
        putf(&E->b,
             "    for (long o = 0; o < %d; o++) {\n"
             "        const float *w = %s_s%d_w + o * %d;\n",
             oa->C, P, i, K);
    putf(&E->b,
         "        for (long y = 0; y < %d; y++)\n"
         "            for (long x = 0; x < %d; x++) {\n"
         "                const float *xi = in + y * %ldL + x;\n"
         "                float v = %s;\n"
         "                for (long k = 0; k < %d; k++)\n"
         "                    v += w[k * %d] * xi[%s_s%d_off[k]];\n",
         oa->H, oa->W, ia->rs, init, K, lanes ? PARE_LANES : 1, P, i);
    if (!lanes)
        putf(&E->b, "                v = v + %s_s%d_b[o];\n", P, i);
    plain_residual(E, st, "o");
    putf(&E->b,
         "                out[o * %ldL + y * %ldL + x] = %s;\n"
         "            }\n"
         "    }\n"
         "}\n\n",
         oa->cs, oa->rs, act_expr(st->act));
    return PARE_OK;
}

static pare_status emit_conv(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_conv_layer *L = &st->conv;
    long ocs = E->p->acts[st->out].cs;
    if (st->ck == PARE_CK_DW)
        return emit_dw(E, i, st);
    if (st->ck == PARE_CK_GEMM || st->ck == PARE_CK_LANES || st->ck == PARE_CK_WINO)
        return emit_plain_dense(E, i, st); /* Winograd: the direct sum of its dense weights */
    if (st->ck != PARE_CK_DENSE && st->ck != PARE_CK_BLOCK && st->ck != PARE_CK_SPARSE && st->ck != PARE_CK_NM &&
        st->ck != PARE_CK_PATTERN)
        return pare_fail(PARE_EUNSUPPORTED, "step %d (%s): emitted C has no code for conv kind %d", i, st->name,
                         (int)st->ck);
    if (!conv_positions_ok(E, st))
        return pare_fail(PARE_EUNSUPPORTED,
                         "step %d (%s): its conv positions are not whole interior rows, which emitted C assumes", i,
                         st->name);
    int r = st->ck == PARE_CK_NM        ? emit_conv_arrays_nm(E, i, st)
            : st->ck == PARE_CK_PATTERN ? emit_conv_arrays_pattern(E, i, st)
                                        : emit_conv_arrays_groups(E, i, st);
    if (r < 0)
        return pare_fail(PARE_ENOMEM, "out of memory emitting layer %s", st->name);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const float *restrict in = %s_arena + %ld;\n"
         "    float *restrict out = %s_arena + %ld;\n",
         P, i, P, act_base(E, st->in[0]) + st->in_base, P, act_base(E, st->out) + st->out_base);
    if (st->res >= 0)
        putf(&E->b, "    const float *restrict res = %s_arena + %ld;\n", P, act_base(E, st->res) + st->res_base);
    open_positions(E, st);
    if (st->ck == PARE_CK_NM) {
        long per = (long)L->nm_ngroups * L->nm_n;
        putf(&E->b,
             "            for (int f = 0; f < %d; f++) {\n"
             "                const long o = %s_s%d_o[f];\n"
             "                const unsigned char *ix = %s_s%d_idx + f * %ld;\n"
             "                const float *w = %s_s%d_w + f * %ld;\n"
             "                float *y = yt + o * %ld;\n"
             "                %s_fill(y, n, %s_s%d_b[f]);\n"
             "                for (int g = 0; g < %d; g++)\n"
             "                    for (int k = 0; k < %d; k++)\n"
             "                        %s_axpy(y, x + %s_s%d_base[g] + ix[g * %d + k] * %ldL, n, w[g * %d + k]);\n",
             L->n_nm, P, i, P, i, per, P, i, per, ocs, P, P, i, L->nm_ngroups, L->nm_n, P, P, i, L->nm_n,
             (long)L->nm_cs, L->nm_n);
        finish_filter(E, st, "                ");
        put(&E->b, "            }\n");
    } else if (st->ck == PARE_CK_PATTERN) {
        putf(&E->b,
             "            const int32_t *coff = %s_s%d_coff;\n"
             "            const unsigned char *pat = %s_s%d_pat;\n"
             "            const float *w = %s_s%d_w;\n"
             "            for (int f = 0; f < %d; f++) {\n"
             "                const long o = %s_s%d_o[f];\n"
             "                const int nk = %s_s%d_nk[f];\n"
             "                float *y = yt + o * %ld;\n"
             "                %s_fill(y, n, %s_s%d_b[f]);\n"
             "                for (int k = 0; k < nk; k++) {\n"
             "                    const int32_t *po = %s_s%d_po[pat[k]];\n"
             "                    const float *xk = x + coff[k];\n"
             "                    %s_axpy4(y, xk + po[0], xk + po[1], xk + po[2], xk + po[3], n, w + 4 * k, 1);\n"
             "                }\n",
             P, i, P, i, P, i, L->n_pf, P, i, P, i, ocs, P, P, i, P, i, P);
        finish_filter(E, st, "                ");
        put(&E->b,
            "                coff += nk;\n"
            "                pat += nk;\n"
            "                w += 4 * nk;\n"
            "            }\n");
    } else {
        putf(&E->b,
             "            const int32_t *off = %s_s%d_off;\n"
             "            const float *w = %s_s%d_w, *b = %s_s%d_b;\n"
             "            for (int g = 0; g < %d; g++) {\n"
             "                const int r = %s_s%d_grp[3 * g + 1], nc = %s_s%d_grp[3 * g + 2];\n"
             "                for (int j = 0; j < r; j++) {\n"
             "                    const long o = %s_s%d_grp[3 * g] + j;\n"
             "                    float *y = yt + o * %ld;\n"
             "                    int c = 0;\n"
             "                    %s_fill(y, n, b[j]);\n"
             "                    for (; c + 4 <= nc; c += 4)\n"
             "                        %s_axpy4(y, x + off[c], x + off[c + 1], x + off[c + 2], x + off[c + 3], n,\n"
             "                                 w + (long)c * r + j, r);\n"
             "                    for (; c < nc; c++)\n"
             "                        %s_axpy(y, x + off[c], n, w[(long)c * r + j]);\n",
             P, i, P, i, P, i, L->n_groups, P, i, P, i, P, i, ocs, P, P, P);
        finish_filter(E, st, "                    ");
        put(&E->b,
            "                }\n"
            "                off += nc;\n"
            "                w += (long)nc * r;\n"
            "                b += r;\n"
            "            }\n");
    }
    put(&E->b, "        }\n    }\n}\n\n");
    return PARE_OK;
}

/* ---- the small steps (run.c's loops, sizes as literals) ------------------- */

static void emit_phases(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    for (int cc = 0; cc < %d; cc++) {\n"
         "        const int ph = cc / %d, c = cc %% %d, a = ph / %d, b = ph %% %d;\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            const int sy = y * %d + a;\n"
         "            float *restrict o = %s_arena + %ld + cc * %ldL + y * %ldL;\n"
         "            const float *restrict s;\n"
         "            if (sy >= %d) {\n"
         "                for (int x = 0; x < %d; x++)\n"
         "                    o[x] = 0.0f;\n"
         "                continue;\n"
         "            }\n"
         "            s = %s_arena + %ld + c * %ldL + sy * %ldL;\n"
         "            for (int x = 0; x < %d; x++) {\n"
         "                const int sx = x * %d + b;\n"
         "                o[x] = sx < %d ? s[sx] : 0.0f;\n"
         "            }\n"
         "        }\n"
         "    }\n}\n\n",
         P, i, src->C * st->sh * st->sw, src->C, src->C, st->sw, st->sw, dst->H, st->sh, P, act_at(E, st->out, 0, 0, 0),
         dst->cs, dst->rs, src->H, dst->W, P, act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs, dst->W, st->sw, src->W);
}

static void emit_pool(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    int is_max = st->kind == PARE_STEP_MAXPOOL, inc = !is_max && st->count_include_pad;
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            float *restrict out = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            const int hs = y * %d - %d, he = hs + %d;\n"
         "            const int h0 = hs < 0 ? 0 : hs, h1 = he > %d ? %d : he;\n",
         P, i, dst->C, dst->H, P, act_at(E, st->out, 0, 0, 0), dst->cs, dst->rs, st->s[0], st->pad[0], st->k[0],
         src->H, src->H);
    if (inc)
        putf(&E->b, "            const int hep = he < %d ? he : %d;\n", src->H + st->pad[2], src->H + st->pad[2]);
    putf(&E->b,
         "            for (int x = 0; x < %d; x++) {\n"
         "                const int ws = x * %d - %d, we = ws + %d;\n"
         "                const int w0 = ws < 0 ? 0 : ws, w1 = we > %d ? %d : we;\n",
         dst->W, st->s[1], st->pad[1], st->k[1], src->W, src->W);
    if (inc)
        putf(&E->b, "                const int wep = we < %d ? we : %d;\n", src->W + st->pad[3], src->W + st->pad[3]);
    putf(&E->b, "                float %s;\n", is_max ? "best = -0x1.fffffep+127f" : "sum = 0.0f");
    putf(&E->b,
         "                for (int h = h0; h < h1; h++) {\n"
         "                    const float *row = %s_arena + %ld + c * %ldL + h * %ldL;\n"
         "                    for (int w = w0; w < w1; w++)\n",
         P, act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs);
    if (is_max)
        put(&E->b, "                        if (row[w] > best)\n                            best = row[w];\n");
    else
        put(&E->b, "                        sum += row[w];\n");
    put(&E->b, "                }\n");
    if (is_max) {
        put(&E->b, "                {\n                    const float v = best;\n");
    } else {
        putf(&E->b,
             "                {\n"
             "                    const int cnt = %s;\n"
             "                    const float v = sum / (float)(cnt > 0 ? cnt : 1);\n",
             inc ? "(hep - hs) * (wep - ws)" : "(h1 - h0) * (w1 - w0)");
    }
    putf(&E->b,
         "                    out[x] = %s;\n"
         "                }\n"
         "            }\n"
         "        }\n}\n\n",
         act_expr(st->act));
}

static void emit_gap(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *src = &E->p->acts[st->in[0]];
    /* a double sum, divided by H*W as a double: run.c's steps */
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    float *restrict out = %s_arena + %ld;\n"
         "    for (int c = 0; c < %d; c++) {\n"
         "        double s = 0;\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            const float *row = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            for (int x = 0; x < %d; x++)\n"
         "                s += row[x];\n"
         "        }\n"
         "        {\n"
         "            const float v = (float)(s / %ld.0);\n"
         "            out[c] = %s;\n"
         "        }\n"
         "    }\n}\n\n",
         P, i, P, act_base(E, st->out), src->C, src->H, P, act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs, src->W,
         (long)src->H * src->W, act_expr(st->act));
}

static int emit_elementwise(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *dst = &E->p->acts[st->out], *a = &E->p->acts[st->in[0]];
    char nm[64];
    if (st->kind == PARE_STEP_AFFINE) {
        snprintf(nm, sizeof nm, "s%d_sc", i);
        float_array(E, nm, "per channel, its scale", st->scale, (size_t)dst->C);
        snprintf(nm, sizeof nm, "s%d_sh", i);
        float_array(E, nm, "per channel, its shift", st->shift, (size_t)dst->C);
    }
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            float *restrict out = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            const float *restrict a = %s_arena + %ld + c * %ldL + y * %ldL;\n",
         P, i, dst->C, dst->H, P, act_at(E, st->out, 0, 0, 0), dst->cs, dst->rs, P, act_at(E, st->in[0], 0, 0, 0),
         a->cs, a->rs);
    const char *expr = "a[x]";
    if (st->kind == PARE_STEP_ADD) {
        if (st->n_in < 2)
            return -1;
        const pare_act *b = &E->p->acts[st->in[1]];
        putf(&E->b, "            const float *restrict b = %s_arena + %ld + c * %ldL + y * %ldL;\n", P,
             act_at(E, st->in[1], 0, 0, 0), b->cs, b->rs);
        expr = "a[x] + b[x]";
    } else if (st->kind == PARE_STEP_AFFINE) {
        putf(&E->b, "            const float sc = %s_s%d_sc[c], sh = %s_s%d_sh[c];\n", P, i, P, i);
        expr = "a[x] * sc + sh";
    }
    putf(&E->b,
         "            for (int x = 0; x < %d; x++) {\n"
         "                const float v = %s;\n"
         "                out[x] = %s;\n"
         "            }\n"
         "        }\n}\n\n",
         dst->W, expr, act_expr(st->act));
    return 0;
}

/* The pointwise ops that need no libm, as C: out[x] from v = a[x] (the op's own
 * float steps, so results match the engine's); 0 when the op has no such form
 * (sigmoid and softmax need expf; the rest move values between positions). */
static int pointwise_body(const pare_node *nd, char *body, size_t cap)
{
    char lo[32], hi[32];
    const pare_attrs *a = &nd->a;
    switch (nd->op) {
    case PARE_OP_HARDSIGMOID:
        if (!float_lit(lo, a->alpha) || !float_lit(hi, a->beta))
            return 0;
        snprintf(body, cap,
                 "                const float v = %s * a[x] + %s;\n"
                 "                out[x] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;\n",
                 lo, hi);
        return 1;
    case PARE_OP_HARDSWISH:
        snprintf(body, cap,
                 "                const float v = a[x] / 6.0f + 0.5f;\n"
                 "                out[x] = a[x] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);\n");
        return 1;
    case PARE_OP_LEAKYRELU:
        if (!float_lit(lo, a->alpha))
            return 0;
        snprintf(body, cap, "                out[x] = a[x] >= 0.0f ? a[x] : %s * a[x];\n", lo);
        return 1;
    case PARE_OP_CLIP: {
        /* An infinite bound clips nothing on its side, and C has no literal
         * for it; a +inf minimum or a -inf maximum clips everything. */
        if (a->alpha > FLT_MAX || a->beta < -FLT_MAX)
            return 0;
        int has_lo = float_lit(lo, a->alpha) != 0, has_hi = float_lit(hi, a->beta) != 0;
        char upper[96] = "v", expr[224];
        if (has_hi)
            snprintf(upper, sizeof upper, "(v > %s ? %s : v)", hi, hi);
        if (has_lo)
            snprintf(expr, sizeof expr, "v < %s ? %s : %s", lo, lo, upper);
        else
            snprintf(expr, sizeof expr, "%s", upper);
        snprintf(body, cap,
                 "                const float v = a[x];\n"
                 "                out[x] = %s;\n",
                 expr);
        return 1;
    }
    case PARE_OP_FAKEQUANT: {
        /* ops/quant.c's forward: the code before clamping (NaN passes), then clamped */
        char qm[32];
        if (!float_lit(lo, a->alpha) || !float_lit(hi, a->beta) || a->mode < 1 || a->mode > 16 ||
            !float_lit(qm, (float)((1 << a->mode) - 1)))
            return 0;
        snprintf(body, cap,
                 "                float q = rintf(a[x] / %s);\n"
                 "                if (q < -1.0f - %s)\n"
                 "                    q = -1.0f - %s;\n"
                 "                if (q > %s + 1.0f - %s)\n"
                 "                    q = %s + 1.0f - %s;\n"
                 "                q = q + %s;\n"
                 "                q = q < 0.0f ? 0.0f : q > %s ? %s : q;\n"
                 "                out[x] = (q - %s) * %s;\n",
                 lo, hi, hi, qm, hi, qm, hi, hi, qm, qm, hi, lo);
        return 1;
    }
    default:
        return 0;
    }
}

/* An op step as C when it is pointwise and its input is laid out as its
 * output, or its output is the flattened input (a plain vector, filled in
 * the input's element order). */
static pare_status emit_op(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *dst = &E->p->acts[st->out];
    const pare_act *a = st->n_in == 1 ? &E->p->acts[st->in[0]] : NULL;
    char body[1024];
    int same = a && a->C == dst->C && a->H == dst->H && a->W == dst->W;
    int flat = a && !same && dst->H == 1 && dst->W == 1 && dst->P == 0 && !a->q8 &&
               (long)a->C * a->H * a->W == (long)dst->C;
    if (!(same || flat) || !pointwise_body(&st->op_node, body, sizeof body))
        return pare_fail(PARE_EUNSUPPORTED, "pare compile --emit-c has no C kernel for op %s (layer '%s')",
                         pare_op_get(st->op_node.op)->name, st->name);
    if (flat) {
        putf(&E->b,
             "\nstatic void %s_s%d(void)\n{\n"
             "    for (int c = 0; c < %d; c++)\n"
             "        for (int y = 0; y < %d; y++) {\n"
             "            float *restrict out = %s_arena + %ld + (c * %dL + y) * %d;\n"
             "            const float *restrict a = %s_arena + %ld + c * %ldL + y * %ldL;\n"
             "            for (int x = 0; x < %d; x++) {\n"
             "%s"
             "            }\n"
             "        }\n}\n\n",
             P, i, a->C, a->H, P, act_at(E, st->out, 0, 0, 0), a->H, a->W, P, act_at(E, st->in[0], 0, 0, 0), a->cs,
             a->rs, a->W, body);
        return PARE_OK;
    }
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            float *restrict out = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            const float *restrict a = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            for (int x = 0; x < %d; x++) {\n"
         "%s"
         "            }\n"
         "        }\n}\n\n",
         P, i, dst->C, dst->H, P, act_at(E, st->out, 0, 0, 0), dst->cs, dst->rs, P, act_at(E, st->in[0], 0, 0, 0),
         a->cs, a->rs, dst->W, body);
    return PARE_OK;
}

static void emit_concat(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *dst = &E->p->acts[st->out];
    putf(&E->b, "\nstatic void %s_s%d(void)\n{\n", P, i);
    int c0 = 0;
    for (int j = 0; j < st->n_in; j++) {
        const pare_act *s = &E->p->acts[st->in[j]];
        putf(&E->b,
             "    for (int c = 0; c < %d; c++)\n"
             "        for (int y = 0; y < %d; y++) {\n"
             "            float *restrict o = %s_arena + %ld + c * %ldL + y * %ldL;\n"
             "            const float *restrict s = %s_arena + %ld + c * %ldL + y * %ldL;\n"
             "            for (int x = 0; x < %d; x++)\n"
             "                o[x] = s[x];\n"
             "        }\n",
             s->C, dst->H, P, act_at(E, st->out, c0, 0, 0), dst->cs, dst->rs, P, act_at(E, st->in[j], 0, 0, 0), s->cs,
             s->rs, dst->W);
        c0 += s->C;
    }
    put(&E->b, "}\n\n");
}

static void emit_pack(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *s = &E->p->acts[st->in[0]];
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    float *restrict o = %s_arena + %ld;\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++) {\n"
         "            const float *restrict s = %s_arena + %ld + c * %ldL + y * %ldL;\n"
         "            for (int x = 0; x < %d; x++)\n"
         "                o[(c * %ldL + y) * %d + x] = s[x];\n"
         "        }\n}\n\n",
         P, i, P, act_base(E, st->out), s->C, s->H, P, act_at(E, st->in[0], 0, 0, 0), s->cs, s->rs, s->W, (long)s->H,
         s->W);
}

static int emit_fc(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    char nm[64];
    snprintf(nm, sizeof nm, "s%d_b", i);
    float_array(E, nm, "biases", st->fc_b, (size_t)st->fc_out);
    if (st->fc_sparse) {
        size_t nz = (size_t)st->fc_rowptr[st->fc_out];
        long *iv = malloc(sizeof(long) * (nz + (size_t)st->fc_out + 2));
        if (!iv)
            return -1;
        for (int o = 0; o <= st->fc_out; o++)
            iv[o] = st->fc_rowptr[o];
        snprintf(nm, sizeof nm, "s%d_rp", i);
        int_array(E, "int32_t", nm, "CSR: per output, where its row starts", iv, (size_t)st->fc_out + 1);
        for (size_t k = 0; k < nz; k++)
            iv[k] = st->fc_col[k];
        snprintf(nm, sizeof nm, "s%d_col", i);
        int_array(E, "int32_t", nm, "CSR: the kept inputs", iv, nz);
        free(iv);
        snprintf(nm, sizeof nm, "s%d_val", i);
        float_array(E, nm, "CSR: their weights", st->fc_val, nz);
        putf(&E->b,
             "\nstatic void %s_s%d(void)\n{\n"
             "    const float *restrict x = %s_arena + %ld;\n"
             "    float *restrict y = %s_arena + %ld;\n"
             "    for (int o = 0; o < %d; o++) {\n"
             "        float v = %s_s%d_b[o];\n"
             "        for (int32_t k = %s_s%d_rp[o]; k < %s_s%d_rp[o + 1]; k++)\n"
             "            v += %s_s%d_val[k] * x[%s_s%d_col[k]];\n"
             "        y[o] = %s;\n"
             "    }\n}\n\n",
             P, i, P, act_base(E, st->in[0]), P, act_base(E, st->out), st->fc_out, P, i, P, i, P, i, P, i, P, i,
             act_expr(st->act));
        return 0;
    }
    /* Dense weights stored input-major, so each output's sum runs bias first
     * and then the inputs in order while the loop over outputs vectorises. */
    size_t n = (size_t)st->fc_in * (size_t)st->fc_out;
    float *wt = malloc(sizeof(float) * (n ? n : 1));
    if (!wt)
        return -1;
    for (int o = 0; o < st->fc_out; o++)
        for (int k = 0; k < st->fc_in; k++)
            wt[(size_t)k * (size_t)st->fc_out + (size_t)o] = st->fc_w[(size_t)o * (size_t)st->fc_in + (size_t)k];
    snprintf(nm, sizeof nm, "s%d_wt", i);
    float_array(E, nm, "dense, inputs x outputs", wt, n);
    free(wt);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const float *restrict x = %s_arena + %ld;\n"
         "    float *restrict y = %s_arena + %ld;\n"
         "    for (int o = 0; o < %d; o++)\n"
         "        y[o] = %s_s%d_b[o];\n"
         "    for (long k = 0; k < %d; k++) {\n"
         "        const float xk = x[k];\n"
         "        const float *restrict w = %s_s%d_wt + k * %d;\n"
         "        for (int o = 0; o < %d; o++)\n"
         "            y[o] += w[o] * xk;\n"
         "    }\n",
         P, i, P, act_base(E, st->in[0]), P, act_base(E, st->out), st->fc_out, P, i, st->fc_in, P, i, st->fc_out,
         st->fc_out);
    if (st->act)
        putf(&E->b,
             "    for (int o = 0; o < %d; o++) {\n"
             "        const float v = y[o];\n"
             "        y[o] = %s;\n"
             "    }\n",
             st->fc_out, act_expr(st->act));
    put(&E->b, "}\n\n");
    return 0;
}

/* ---- int8 steps (run.c's int8 loops, kernels/qconv_ref.c's arithmetic) --- */

/* A float as an exact literal (into buf, at least 32 bytes); "0.0f" and a
 * note in E->bad_float for what C cannot spell. */
static const char *flit(emitter *E, char *buf, float v)
{
    if (!float_lit(buf, v)) {
        E->bad_float = 1;
        snprintf(buf, 32, "0.0f");
    }
    return buf;
}

/* The u8 act a as bytes: "(unsigned char *)(arena + base)". */
static void bytes_of(emitter *E, char *dst, size_t cap, int a)
{
    snprintf(dst, cap, "(unsigned char *)(%s_arena + %ld)", E->pre, act_base(E, a));
}

/* An int8 layer's requantization: per output, the accumulator's scale and
 * the shift after it. */
static void requant_arrays(emitter *E, int i, const float *scale, const float *shift, size_t n, const char *per)
{
    char nm[64], why[96];
    snprintf(nm, sizeof nm, "s%d_scale", i);
    snprintf(why, sizeof why, "per %s, the accumulator's scale", per);
    float_array(E, nm, why, scale, n);
    snprintf(nm, sizeof nm, "s%d_shift", i);
    snprintf(why, sizeof why, "per %s, the shift after it", per);
    float_array(E, nm, why, shift, n);
}

static int emit_qconv(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_qconv_layer *L = &st->qconv;
    const pare_act *ia = &E->p->acts[st->in[0]], *oa = &E->p->acts[st->out];
    const pare_act *ra = st->res >= 0 ? &E->p->acts[st->res] : NULL;
    size_t ncol = 0, nw = 0, nb = 0;
    for (int g = 0; g < L->n_groups; g++) {
        ncol += (size_t)L->groups[g].ncols;
        nw += (size_t)L->groups[g].ncols * (size_t)L->groups[g].rp * 4;
        nb += (size_t)L->groups[g].rp;
    }
    size_t ng4 = (size_t)4 * (size_t)L->n_gather, nm16 = 0;
    if (st->wide && st->mask)
        nm16 = (size_t)((st->n_pos + PARE_QCONV_CHUNK - 1) / PARE_QCONV_CHUNK);
    ints_begin(E, "int32_t", i, "off", "per group, its columns' input offsets (dwords)", ncol);
    for (int g = 0; g < L->n_groups; g++)
        for (int c = 0; c < L->groups[g].ncols; c++)
            ints_put(E, L->groups[g].off[c]);
    ints_end(E);
    ints_begin(E, "int8_t", i, "w", "per group, columns x filters x 4 int8 weights", nw);
    for (int g = 0; g < L->n_groups; g++)
        for (size_t e = 0; e < (size_t)L->groups[g].ncols * (size_t)L->groups[g].rp * 4; e++)
            ints_put(E, L->groups[g].w[e]);
    ints_end(E);
    ints_begin(E, "int32_t", i, "b", "per group, its filters' initial accumulators", nb);
    for (int g = 0; g < L->n_groups; g++)
        for (int j = 0; j < L->groups[g].rp; j++)
            ints_put(E, L->groups[g].bias[j]);
    ints_end(E);
    if (ng4 > 0) {
        STEP_INTS(E, "int32_t", i, "goff", "gathered columns: 4 source offsets each (dwords)", L->g_off, ng4);
        STEP_INTS(E, "unsigned char", i, "gsel", "gathered columns: 4 source bytes each", L->g_sel, ng4);
    }
    if (nm16 > 0)
        STEP_INTS(E, "uint16_t", i, "mask", "per 16 positions, the ones stored", st->mask, nm16);
    requant_arrays(E, i, L->scale, L->shift, (size_t)oa->C, "filter");
    putf(&E->b, "static const %s_qgroup %s_s%d_g[%d] = {\n", P, P, i, L->n_groups > 0 ? L->n_groups : 1);
    size_t ko = 0, kw = 0, kb = 0;
    for (int g = 0; g < L->n_groups; g++) {
        const pare_qconv_group *G = &L->groups[g];
        putf(&E->b, "    {%d, %d, %d, %d, %s_s%d_off + %zu, %s_s%d_w + %zu, %s_s%d_b + %zu},\n", G->o0, G->r, G->rp, G->ncols,
             P, i, ko, P, i, kw, P, i, kb);
        ko += (size_t)G->ncols;
        kw += (size_t)G->ncols * (size_t)G->rp * 4;
        kb += (size_t)G->rp;
    }
    if (L->n_groups == 0)
        put(&E->b, "    {0, 0, 1, 0, 0, 0, 0},\n");
    put(&E->b, "};\n");
    char in[160], out[160], res[160], mask[96], lo[32], hi[32], rsc[32];
    bytes_of(E, in, sizeof in, st->in[0]);
    if (st->q_out8)
        bytes_of(E, out, sizeof out, st->out);
    if (ra)
        snprintf(res, sizeof res, "%s_arena + %ld + %ld", P, act_base(E, st->res), st->res_base);
    if (nm16 > 0)
        snprintf(mask, sizeof mask, "%s_s%d_mask", P, i);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    %s_qio io = {0};\n"
         "    io.in = %s + %ld;\n",
         P, i, P, in, 4 * st->in_base);
    if (st->q_out8)
        putf(&E->b, "    io.out8 = %s + %ld;\n", out, 4 * st->out_base);
    else
        putf(&E->b, "    io.outf = %s_arena + %ld + %ld;\n", P, act_base(E, st->out), st->out_base);
    putf(&E->b,
         "    io.out_cs = %ld;\n"
         "    io.res = %s;\n"
         "    io.res_cs = %ld;\n"
         "    io.res_scale = %s;\n"
         "    io.n = %ld;\n"
         "    io.mask = %s;\n"
         "    io.act = %d;\n"
         "    io.zp = %d;\n"
         "    io.lo = %s;\n"
         "    io.hi = %s;\n"
         "    io.scale = %s_s%d_scale;\n"
         "    io.shift = %s_s%d_shift;\n",
         oa->cs, ra ? res : "0", ra ? ra->cs : 0L, flit(E, rsc, st->q_res_scale), st->n_pos,
         nm16 > 0 ? mask : "0", st->act, (int)st->q_zp, flit(E, lo, st->q_lo), flit(E, hi, st->q_hi), P, i,
         P, i);
    if (L->n_gather > 0) {
        putf(&E->b,
             "    for (long q0 = 0; q0 < %ld; q0 += %d) {\n"
             "        const long len = %ld - q0 < %d ? %ld - q0 : %d;\n"
             "        %s_qio t = io;\n"
             "        %s_qgather(%s_qbuf, %d, io.in + 4 * q0, %s_s%d_goff, %s_s%d_gsel, %d, (len + 15) / 16 * 16);\n"
             "        t.in = %s_qbuf;\n"
             "        if (t.out8)\n"
             "            t.out8 += 4 * q0;\n"
             "        else\n"
             "            t.outf += q0;\n"
             "        if (t.res)\n"
             "            t.res += q0;\n"
             "        if (t.mask)\n"
             "            t.mask += q0 / 16;\n"
             "        t.n -= q0;\n"
             "        %s_qconv(&t, %s_s%d_g, %d, 0, len);\n"
             "    }\n}\n\n",
             st->n_pos, PARE_QCONV_TILE, st->n_pos, PARE_QCONV_TILE, st->n_pos, PARE_QCONV_TILE, P, P, P,
             PARE_QCONV_TILE, P, i, P, i, L->n_gather, P, P, P, i, L->n_groups);
        return 0;
    }
    if (!st->rows_mode) {
        putf(&E->b, "    %s_qconv(&io, %s_s%d_g, %d, 0, %ld);\n}\n\n", P, P, i, L->n_groups, st->n_pos);
        return 0;
    }
    putf(&E->b,
         "    for (long row = 0; row < %d; row++) {\n"
         "        %s_qio t = io;\n"
         "        t.in += 4 * row * %ld;\n"
         "        if (t.out8)\n"
         "            t.out8 += 4 * row * %ld;\n"
         "        else\n"
         "            t.outf += row * %ld;\n"
         "        if (t.res)\n"
         "            t.res += row * %ld;\n"
         "        %s_qconv(&t, %s_s%d_g, %d, 0, %ld);\n"
         "    }\n}\n\n",
         oa->H, P, ia->rs, oa->rs, oa->rs, ra ? ra->rs : 0L, P, P, i, L->n_groups, st->n_pos);
    return 0;
}

static int emit_qfc(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_qfc *F = &st->qfc;
    int blocks = (F->out + 15) / 16;
    size_t nw = (size_t)blocks * (size_t)F->in4 * 64, nb = (size_t)blocks * 16;
    STEP_INTS(E, "int8_t", i, "w", "[blocks of 16 outputs][input dwords][16][4] int8 weights", F->w, nw);
    STEP_INTS(E, "int32_t", i, "b", "per output, the initial accumulator", F->bias, nb);
    requant_arrays(E, i, F->scale, F->shift, (size_t)F->out, "output");
    char x[160];
    bytes_of(E, x, sizeof x, st->in[0]);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const unsigned char *x = %s;\n"
         "    float *y = %s_arena + %ld;\n"
         "    for (int o = 0; o < %d; o++) {\n"
         "        const int blk = o / 16, j = o %% 16;\n"
         "        int32_t acc = %s_s%d_b[o];\n"
         "        float f;\n"
         "        for (long k = 0; k < %d; k++) {\n"
         "            const int8_t *w = %s_s%d_w + (((long)blk * %d + k) * 16 + j) * 4;\n"
         "            for (int b = 0; b < 4; b++)\n"
         "                acc += (int32_t)x[4 * k + b] * (int32_t)w[b];\n"
         "        }\n"
         "        f = fmaf((float)acc, %s_s%d_scale[o], %s_s%d_shift[o]);\n",
         P, i, x, P, act_base(E, st->out), F->out, P, i, F->in4, P, i, F->in4, P, i, P, i);
    if (st->act >= 1)
        putf(&E->b, "        f = %s_qmax(f, 0.0f);\n", P);
    if (st->act == 2)
        putf(&E->b, "        f = %s_qmin(f, 6.0f);\n", P);
    put(&E->b, "        y[o] = f;\n    }\n}\n\n");
    return 0;
}

static void emit_quant(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    char sc[32], zp[32], qm[32], out[160];
    flit(E, sc, st->q_scale);
    flit(E, zp, st->q_zpf);
    flit(E, qm, st->q_qmax);
    bytes_of(E, out, sizeof out, st->out);
    if (src->C == dst->C && src->H == dst->H && src->W == dst->W) {
        /* C4: byte b of quad kq's dword is channel 4 kq + b, the zero point past C */
        putf(&E->b,
             "\nstatic void %s_s%d(void)\n{\n"
             "    unsigned char *o = %s;\n"
             "    for (int kq = 0; kq < %d; kq++)\n"
             "        for (int y = 0; y < %d; y++)\n"
             "            for (int x = 0; x < %d; x++)\n"
             "                for (int b = 0; b < 4; b++) {\n"
             "                    const int c = 4 * kq + b;\n"
             "                    o[4 * (kq * %ldL + (y + %d) * %ldL + x + %d) + b] =\n"
             "                        c < %d ? %s_qcode(%s_arena[%ldL + c * %ldL + y * %ldL + x], %s, %s, %s)\n"
             "                               : (unsigned char)%d;\n"
             "                }\n}\n\n",
             P, i, out, (dst->C + 3) / 4, dst->H, dst->W, dst->cs, dst->P, dst->rs, dst->P, src->C, P, P,
             act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs, sc, zp, qm, (int)st->q_zpf);
        return;
    }
    /* a flattened vector: one code a value, padded to a whole dword */
    long n = (long)src->C * src->H * src->W;
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    unsigned char *o = %s;\n"
         "    long i = 0;\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++, i++)\n"
         "                o[i] = %s_qcode(%s_arena[%ldL + c * %ldL + y * %ldL + x], %s, %s, %s);\n"
         "    for (; i < %ld; i++)\n"
         "        o[i] = (unsigned char)%d;\n}\n\n",
         P, i, out, src->C, src->H, src->W, P, P, act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs, sc, zp, qm,
         (n + 3) / 4 * 4, (int)st->q_zpf);
}

/* A fakequant on floats, as the op computes it (kernels/qconv_ref.c). */
static void emit_fq(emitter *E, int i, const pare_step *st)
{
    const char *P = E->pre;
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    char sc[32], zp[32], qm[32];
    flit(E, sc, st->q_scale);
    flit(E, zp, st->q_zpf);
    flit(E, qm, st->q_qmax);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const float s = %s, zp = %s, qmax = %s;\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++) {\n"
         "                float q = rintf(%s_arena[%ldL + c * %ldL + y * %ldL + x] / s);\n"
         "                if (q < -1.0f - zp)\n"
         "                    q = -1.0f - zp;\n"
         "                if (q > qmax + 1.0f - zp)\n"
         "                    q = qmax + 1.0f - zp;\n"
         "                q = q + zp;\n"
         "                q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;\n"
         "                %s_arena[%ldL + c * %ldL + y * %ldL + x] = (q - zp) * s;\n"
         "            }\n}\n\n",
         P, i, sc, zp, qm, dst->C, dst->H, dst->W, P, act_at(E, st->in[0], 0, 0, 0), src->cs, src->rs, P,
         act_at(E, st->out, 0, 0, 0), dst->cs, dst->rs);
}

/* The head of a step from a u8 act to a u8 act: s and d point at their bytes. */
static void u8_step_head(emitter *E, int i, const pare_step *st)
{
    char in[160], out[160];
    bytes_of(E, in, sizeof in, st->in[0]);
    bytes_of(E, out, sizeof out, st->out);
    putf(&E->b,
         "\nstatic void %s_s%d(void)\n{\n"
         "    const unsigned char *s = %s;\n"
         "    unsigned char *d = %s;\n",
         E->pre, i, in, out);
}

/* Max pool on codes, bytewise; windows read through the input's halo of code 0. */
static void emit_qmaxpool(emitter *E, int i, const pare_step *st)
{
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    u8_step_head(E, i, st);
    putf(&E->b,
         "    for (int kq = 0; kq < %d; kq++)\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++)\n"
         "                for (int b = 0; b < 4; b++) {\n"
         "                    unsigned char m = 0;\n"
         "                    for (int i = 0; i < %d; i++)\n"
         "                        for (int j = 0; j < %d; j++) {\n"
         "                            const unsigned char v = s[4 * (kq * %ldL + (y * %d - %d + i + %d) * %ldL + x * %d - %d + j + %d) + b];\n"
         "                            m = v > m ? v : m;\n"
         "                        }\n"
         "                    d[4 * (kq * %ldL + (y + %d) * %ldL + x + %d) + b] = m;\n"
         "                }\n}\n\n",
         (dst->C + 3) / 4, dst->H, dst->W, st->k[0], st->k[1], src->cs, st->s[0], st->pad[0], src->P, src->rs,
         st->s[1], st->pad[1], src->P, dst->cs, dst->P, dst->rs, dst->P);
}

/* Space-to-depth of a u8 act: dwords of 4 codes, the fill code past the input. */
static void emit_phases_q8(emitter *E, int i, const pare_step *st)
{
    const pare_act *src = &E->p->acts[st->in[0]], *dst = &E->p->acts[st->out];
    int planes = (src->C + 3) / 4;
    u8_step_head(E, i, st);
    putf(&E->b,
         "    for (int cc = 0; cc < %d; cc++) {\n"
         "        const int ph = cc / %d, k = cc %% %d, a = ph / %d, b = ph %% %d;\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++) {\n"
         "                const int sy = y * %d + a, sx = x * %d + b;\n"
         "                for (int e = 0; e < 4; e++)\n"
         "                    d[4 * (cc * %ldL + (y + %d) * %ldL + x + %d) + e] =\n"
         "                        sy < %d && sx < %d ? s[4 * (k * %ldL + (sy + %d) * %ldL + sx + %d) + e] : (unsigned char)%u;\n"
         "            }\n"
         "    }\n}\n\n",
         planes * st->sh * st->sw, planes, planes, st->sw, st->sw, dst->H, dst->W, st->sh, st->sw,
         dst->cs, dst->P, dst->rs, dst->P, src->H, src->W, src->cs, src->P, src->rs, src->P, (unsigned)src->fill);
}

/* ---- the file ------------------------------------------------------------- */

static void emit_header(emitter *E)
{
    const pare_plan *p = E->p;
    char up[MAX_PREFIX + 1], name[128];
    size_t k = 0;
    for (; E->pre[k]; k++)
        up[k] = E->pre[k] >= 'a' && E->pre[k] <= 'z' ? (char)(E->pre[k] - 'a' + 'A') : E->pre[k];
    up[k] = 0;
    safe_name(name, sizeof name, p->name);
    int kinds[PARE_CK__COUNT] = {0}, fc_dense = 0, fc_csr = 0, qconv = 0, qfc = 0, other = 0;
    double macs = 0, dense = 0;
    for (int i = 0; i < p->n_steps; i++) {
        const pare_step *st = &p->steps[i];
        if (st->kind == PARE_STEP_CONV && (unsigned)st->ck < PARE_CK__COUNT)
            kinds[st->ck]++;
        else if (st->kind == PARE_STEP_FC)
            *(st->fc_sparse ? &fc_csr : &fc_dense) += 1;
        else if (st->kind == PARE_STEP_QCONV)
            qconv++;
        else if (st->kind == PARE_STEP_QFC)
            qfc++;
        else
            other++;
        macs += st->macs;
        dense += st->dense_macs > 0 ? st->dense_macs : st->macs;
    }
    putf(&E->b,
         "/* %s: standalone inference code emitted by pare (pare_plan_emit_c).\n"
         " * Input: %d x %d x %d floats (one sample, NCHW); output: %d floats.\n"
         " * %d steps: convs ",
         name, p->in_c, p->in_h, p->in_w, p->out_n, p->n_steps);
    int first = 1;
    for (int k2 = 0; k2 < PARE_CK__COUNT; k2++)
        if (kinds[k2]) {
            putf(&E->b, "%s%d %s", first ? "" : ", ", kinds[k2], pare_conv_kind_name((pare_conv_kind)k2));
            first = 0;
        }
    if (first)
        put(&E->b, "none");
    putf(&E->b,
         "; linear layers %d dense, %d CSR;\n"
         " * int8: %d convs, %d linear layers; %d other steps. %.0f multiply-adds per sample (dense: %.0f);\n"
         " * %zu packed weight bytes; one static arena of %zu floats.\n"
         " * Every array keeps the packed sparse format the engine chose, floats as\n"
         " * exact hex literals; sums run in the reference kernels' order.\n"
         " *\n"
         " * Use: cc -O2 -c this file, and from your code:\n"
         " *     #define %s_IN_SIZE %ld\n"
         " *     #define %s_OUT_SIZE %d\n"
         " *     void %s_run(const float *in, float *out);\n"
         " * Needs only a C99 compiler: no malloc%s. Not reentrant: the\n"
         " * activations live in the static arena, so use one thread at a time. */\n"
         "%s#include <stdint.h>\n\n"
         "#define %s_IN_SIZE %ld\n"
         "#define %s_OUT_SIZE %d\n\n"
         "void %s_run(const float *in, float *out);\n\n",
         fc_dense, fc_csr, qconv, qfc, other, macs, dense, p->weight_bytes, p->arena_floats + 2 * FRONT, up,
         (long)p->in_c * p->in_h * p->in_w, up, p->out_n, E->pre,
         E->use_q8 ? ";\n * libm (rintf, fmaf) for its int8 layers, computed as the engine's\n"
                     " * reference kernels do, bit for bit (link with -lm)"
                   : ", no libm",
         E->use_q8 ? "#include <math.h>\n" : "", up, (long)p->in_c * p->in_h * p->in_w, up, p->out_n, E->pre);
    putf(&E->b, "static float %s_arena[%zu];\n\n", E->pre, p->arena_floats + 2 * FRONT);
}

static void emit_run(emitter *E)
{
    const pare_plan *p = E->p;
    const char *P = E->pre;
    const pare_act *ia = &p->acts[p->input_act], *oa = &p->acts[p->output_act];
    putf(&E->b,
         "void %s_run(const float *in, float *out)\n{\n"
         "    float *restrict a = %s_arena + %ld;\n"
         "    const float *restrict z;\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++)\n"
         "                a[c * %ldL + y * %ldL + x] = in[(c * %ldL + y) * %d + x];\n",
         P, P, act_at(E, p->input_act, 0, 0, 0), p->in_c, p->in_h, p->in_w, ia->cs, ia->rs, (long)p->in_h, p->in_w);
    halo_call(E, p->input_act);
    for (int i = 0; i < p->n_steps; i++) {
        char name[128];
        safe_name(name, sizeof name, p->steps[i].name);
        putf(&E->b, "    %s_s%d(); /* %s */\n", P, i, name);
        halo_call(E, p->steps[i].out);
    }
    putf(&E->b,
         "    z = %s_arena + %ld;\n"
         "    for (int c = 0; c < %d; c++)\n"
         "        for (int y = 0; y < %d; y++)\n"
         "            for (int x = 0; x < %d; x++)\n"
         "                out[(c * %ldL + y) * %d + x] = z[c * %ldL + y * %ldL + x];\n"
         "}\n",
         P, act_at(E, p->output_act, 0, 0, 0), oa->C, oa->H, oa->W, (long)oa->H, oa->W, oa->cs, oa->rs);
}

static pare_status emit_step(emitter *E, int i)
{
    const pare_step *st = &E->p->steps[i];
    char name[128];
    safe_name(name, sizeof name, st->name);
    if (st->kind == PARE_STEP_CONV)
        putf(&E->b, "/* ---- step %d: %s, conv (%s%s) */\n", i, name, pare_conv_kind_name(st->ck),
             pare_conv_kind_own_runner(st->ck) ? "" : st->wide ? ", whole planes" : ", row by row");
    else
        putf(&E->b, "/* ---- step %d: %s */\n", i, name);
    int r = 0;
    switch (st->kind) {
    case PARE_STEP_CONV:
        return emit_conv(E, i, st);
    case PARE_STEP_PHASES:
        if (E->p->acts[st->in[0]].q8)
            emit_phases_q8(E, i, st);
        else
            emit_phases(E, i, st);
        break;
    case PARE_STEP_QCONV:
        r = emit_qconv(E, i, st);
        break;
    case PARE_STEP_QFC:
        r = emit_qfc(E, i, st);
        break;
    case PARE_STEP_QUANT:
        emit_quant(E, i, st);
        break;
    case PARE_STEP_QMAXPOOL:
        emit_qmaxpool(E, i, st);
        break;
    case PARE_STEP_FC:
        r = emit_fc(E, i, st);
        break;
    case PARE_STEP_MAXPOOL:
    case PARE_STEP_AVGPOOL:
        emit_pool(E, i, st);
        break;
    case PARE_STEP_GAP:
        emit_gap(E, i, st);
        break;
    case PARE_STEP_ADD:
    case PARE_STEP_AFFINE:
    case PARE_STEP_ACT:
        r = emit_elementwise(E, i, st);
        break;
    case PARE_STEP_CONCAT:
        emit_concat(E, i, st);
        break;
    case PARE_STEP_PACK:
        emit_pack(E, i, st);
        break;
    case PARE_STEP_COPY: /* run.c does nothing for it but zero its halo */
        putf(&E->b, "\nstatic void %s_s%d(void)\n{\n}\n\n", E->pre, i);
        break;
    case PARE_STEP_OP:
        return emit_op(E, i, st);
    case PARE_STEP_FQ:
        emit_fq(E, i, st);
        break;
    default:
        return pare_fail(PARE_EUNSUPPORTED, "step %d (%s): emitted C has no code for its kind", i, st->name);
    }
    if (r < 0)
        return pare_fail(PARE_ENOMEM, "out of memory emitting layer %s", st->name);
    return PARE_OK;
}

pare_status pare_plan_emit_c(const pare_plan *p, const char *path, const char *prefix)
{
    if (!p || !path)
        return pare_fail(PARE_EINVAL, "pare_plan_emit_c needs a plan and a path");
    if (!is_identifier(prefix))
        return pare_fail(PARE_EINVAL,
                         "the prefix \"%s\" is not a C identifier: up to %d letters, digits and '_', beginning with a "
                         "letter",
                         prefix ? prefix : "(null)", MAX_PREFIX);
    const pare_act *ia = &p->acts[p->input_act], *oa = &p->acts[p->output_act];
    if (ia->C != p->in_c || ia->H != p->in_h || ia->W != p->in_w || (long)oa->C * oa->H * oa->W != p->out_n)
        return pare_fail(PARE_EUNSUPPORTED, "plan %s: its input or output buffer does not match its declared sizes",
                         p->name);
    for (int a = 0; a < p->n_acts; a++)
        if (p->acts[a].P > FRONT)
            return pare_fail(PARE_EUNSUPPORTED, "a halo of %d is wider than emitted C allows (%d)", p->acts[a].P,
                             FRONT);
    emitter E;
    memset(&E, 0, sizeof E);
    E.p = p;
    snprintf(E.pre, sizeof E.pre, "%s", prefix);
    pare_status s = PARE_OK;
    scan_uses(&E);
    emit_header(&E);
    emit_helpers(&E);
    for (int i = 0; i < p->n_steps && s == PARE_OK && !E.b.oom; i++) {
        s = emit_step(&E, i);
        if (s == PARE_OK && E.bad_float)
            s = pare_fail(PARE_EINVAL, "layer %s has a weight that is infinite or not a number, which C cannot spell "
                          "without libm", p->steps[i].name);
    }
    if (s != PARE_OK)
        goto done;
    emit_run(&E);
    if (E.b.oom) {
        s = pare_fail(PARE_ENOMEM, "out of memory emitting C for %s (%zu bytes of text so far)", p->name, E.b.len);
        goto done;
    }
    s = pare_write_file_atomic(path, E.b.p, E.b.len);
done:
    free(E.b.p);
    return s;
}
