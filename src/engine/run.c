/* Running a plan: each step zeroes its output's halo and runs its kernel,
 * threads splitting positions (multiples of 96, the widest tile) or filter
 * groups. The small steps (phases, pooling, adds, packing, linear layers, and
 * the ops run through their own forward) are here; convs go to the
 * kernels/conv family. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/blas.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/threads.h"
#include "engine/engine.h"
#include "graph/op.h"
#include "kernels/qconv_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define SPLIT 96 /* positions: a multiple of every conv kernel's tile */

static int tid(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline float act_fn(float v, int act)
{
    if (act >= 1 && v < 0.0f)
        v = 0.0f;
    if (act == 2 && v > 6.0f)
        v = 6.0f;
    return v;
}

/* A u8 act's halo holds its fill code (4 bytes a dword); the side columns
 * dword by dword (a memset call per 4 bytes would cost more than the conv
 * of a small layer). */
static void fill_halo_u8(pare_plan *p, int a)
{
    const pare_act *x = &p->acts[a];
    uint32_t *base = (uint32_t *)(void *)pare_engine_act(p, a), f = 0x01010101u * x->fill;
    long rs = x->rs, P = x->P;
    for (int c = 0; c < (x->C + 3) / 4; c++) {
        uint32_t *pl = base + c * x->cs;
        for (long i = 0; i < P * rs; i++) {
            pl[i] = f;
            pl[(P + x->H) * rs + i] = f;
        }
        for (int y = 0; y < x->H; y++) {
            uint32_t *row = pl + (y + P) * rs;
            for (long i = 0; i < P; i++) {
                row[i] = f;
                row[P + x->W + i] = f;
            }
        }
    }
}

int pare_engine_own_halo(const pare_plan *p, const pare_step *st)
{
    return st->kind == PARE_STEP_CONV && !p->acts[st->out].q8;
}

/* The halo cells of channels [c0, c1) around rows [y0, y1) of planes laid
 * out as a float act's (channel c's plane from base + c * cs: P halo rows,
 * then H rows of rs floats with P halo columns each side of W, then P halo
 * rows): each row's left and right halo, the top rows with row 0 and the
 * bottom rows with the last. */
static void zero_halo_planes(float *base, long cs, long P, long rs, long W, long H, int c0, int c1, int y0, int y1)
{
    for (int c = c0; c < c1; c++) {
        float *pl = base + c * cs;
        if (y0 == 0)
            for (long k = 0; k < P * rs; k++)
                pl[k] = 0.0f;
        if (y1 == H)
            for (long k = (H + P) * rs; k < (H + 2 * P) * rs; k++)
                pl[k] = 0.0f;
        float *row = pl + (y0 + P) * rs;
        if (P == 1) /* the usual halo, spelt out: a loop over P becomes memset calls */
            for (long y = y0; y < y1; y++, row += rs)
                row[0] = row[W + 1] = 0.0f;
        else
            for (long y = y0; y < y1; y++, row += rs) {
                memset(row, 0, sizeof(float) * (size_t)P);
                memset(row + P + W, 0, sizeof(float) * (size_t)P);
            }
    }
}

/* zero_halo_planes on a float act. A conv step's threads call it for the
 * part of the output they write, just before writing it, so the halo's cache
 * lines are already in the core that writes the rows beside them (the serial
 * pare_engine_zero_halo of the whole act before the step made them cross
 * between cores at 2 threads). */
static void zero_halo_part(pare_plan *p, int a, int c0, int c1, int y0, int y1)
{
    const pare_act *x = &p->acts[a];
    if (x->P == 0 || x->q8 || x->halo_junk)
        return;
    zero_halo_planes(pare_engine_act(p, a), x->cs, x->P, x->rs, x->W, x->H, c0, c1, y0, y1);
}

void pare_engine_zero_halo(pare_plan *p, int a)
{
    const pare_act *x = &p->acts[a];
    if (x->P == 0)
        return;
    if (x->q8)
        fill_halo_u8(p, a);
    else
        zero_halo_part(p, a, 0, x->C, 0, x->H);
}

static inline float *at(pare_plan *p, int a, int c, int y, int x)
{
    const pare_act *s = &p->acts[a];
    return pare_engine_act(p, a) + c * s->cs + (long)(y + s->P) * s->rs + (x + s->P);
}

/* How a conv step with `units` filter units splits over T threads: rows (one
 * call per output row in rows mode) and position tiles, and by positions when
 * there are enough of them (every thread then does every filter: balanced
 * whatever the sparsity), else by units; returns the threads to use. */
static int conv_threads(const pare_step *st, const pare_act *oa, int units, int T, long *rows, long *tiles,
                        int *by_pos)
{
    *rows = st->rows_mode ? oa->H : 1;
    *tiles = (st->n_pos + SPLIT - 1) / SPLIT;
    *by_pos = *tiles * *rows >= 2L * T || units < T;
    if (T > units && !*by_pos)
        T = units > 0 ? units : 1;
    return T;
}

/* Thread t's share of row r of a conv step: positions [q0, q1) and filter
 * units [u0, u1); 0 when it has none. By positions when there are enough of
 * them (whole rows in rows mode, else tiles of SPLIT), else by units. */
static int conv_share(const pare_step *st, int by_pos, long rows, long tiles, int units, int nt, int t, long r,
                      long *q0, long *q1, int *u0, int *u1)
{
    long lo, hi;
    *q0 = 0;
    *q1 = st->n_pos;
    *u0 = 0;
    *u1 = units;
    if (by_pos) {
        if (st->rows_mode && rows >= nt) {
            if (r % nt != t)
                return 0;
        } else {
            pare_split_range(tiles, nt, t, &lo, &hi);
            *q0 = lo * SPLIT;
            *q1 = hi * SPLIT < st->n_pos ? hi * SPLIT : st->n_pos;
        }
    } else {
        pare_split_range(units, nt, t, &lo, &hi);
        *u0 = (int)lo;
        *u1 = (int)hi;
    }
    return *q0 < *q1 && *u0 < *u1;
}

/* Zeroes the output halo beside thread t's share of row r of a conv step (see
 * conv_share): the rows its positions cover; by units, a split of the channels
 * (the filters of a unit are not one range of channels). */
static void halo_share(pare_plan *p, const pare_step *st, int by_pos, long rows, int nt, int t, long r, long q0,
                       long q1)
{
    const pare_act *oa = &p->acts[st->out];
    if (!by_pos) {
        if (r == 0) {
            long lo, hi;
            pare_split_range(oa->C, nt, t, &lo, &hi);
            zero_halo_part(p, st->out, (int)lo, (int)hi, 0, oa->H);
        }
    } else if (st->rows_mode) {
        if (rows >= nt || q0 == 0) /* split within the row: its first share's thread */
            zero_halo_part(p, st->out, 0, oa->C, (int)r, (int)r + 1);
    } else {
        long y1 = (q1 - 1) / oa->rs + 1;
        zero_halo_part(p, st->out, 0, oa->C, (int)(q0 / oa->rs), (int)(y1 < oa->H ? y1 : oa->H));
    }
}

/* ---- conv ----------------------------------------------------------------- */

/* The buffers of a step that reads its input act and writes its output act
 * plane by plane: each at pixel (0, 0) of channel 0, with strides. */
static void plane_io(pare_plan *p, const pare_step *st, pare_dw_io *io)
{
    const pare_act *ia = &p->acts[st->in[0]], *oa = &p->acts[st->out];
    io->in = pare_engine_act(p, st->in[0]) + (long)ia->P * ia->rs + ia->P;
    io->out = pare_engine_act(p, st->out) + (long)oa->P * oa->rs + oa->P;
    io->res = NULL;
    io->res_cs = io->res_rs = 0;
    if (st->res >= 0) {
        const pare_act *ra = &p->acts[st->res];
        io->res = pare_engine_act(p, st->res) + (long)ra->P * ra->rs + ra->P;
        io->res_cs = ra->cs;
        io->res_rs = ra->rs;
    }
    io->in_cs = ia->cs;
    io->in_rs = ia->rs;
    io->out_cs = oa->cs;
    io->out_rs = oa->rs;
    io->wo = oa->W;
    io->act = st->act;
}

/* A depthwise step: threads split the channels (or, with fewer channels than
 * threads, the rows); the kernel reads the input act around each output. */
static void run_dw(pare_plan *p, pare_step *st)
{
    const pare_conv_kernels *k = pare_conv();
    const pare_act *oa = &p->acts[st->out];
    pare_dw_io io;
    plane_io(p, st, &io);
    int T = p->threads, C = oa->C, by_rows = C < T;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        long lo, hi;
        pare_split_range(by_rows ? oa->H : C, T, tid(), &lo, &hi);
        if (lo < hi) {
            if (by_rows) {
                zero_halo_part(p, st->out, 0, C, (int)lo, (int)hi);
                k->f32_convdw(&io, &st->conv, 0, C, (int)lo, (int)hi);
            } else {
                zero_halo_part(p, st->out, (int)lo, (int)hi, 0, oa->H);
                k->f32_convdw(&io, &st->conv, (int)lo, (int)hi, 0, oa->H);
            }
        }
    }
}

/* im2col + GEMM: the columns (K x N, N = the output's H x W positions) into
 * the scratch, Y = W x columns (O x N) after them, then Y with the bias, the
 * residual and the activation into the output planes. Threads split the
 * columns' rows, the GEMM's columns (pare_sgemm) and the output channels. */
static void run_gemm(pare_plan *p, pare_step *st)
{
    const pare_act *ia = &p->acts[st->in[0]], *oa = &p->acts[st->out];
    const pare_conv_layer *L = &st->conv;
    int K = L->dn_k, O = oa->C, H = oa->H, W = oa->W, N = H * W, T = p->threads;
    float *col = p->scratch, *y = p->scratch + (size_t)K * (size_t)N;
    const float *in = pare_engine_act(p, st->in[0]) + (long)ia->P * ia->rs + ia->P;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1 && (long)K * N > 32768)
    for (int k = 0; k < K; k++) {
        const float *src = in + L->dn_off[k];
        float *dst = col + (size_t)k * (size_t)N;
        for (int r = 0; r < H; r++)
            memcpy(dst + (size_t)r * (size_t)W, src + (long)r * ia->rs, sizeof(float) * (size_t)W);
    }
    pare_sgemm(T, 0, 0, O, N, K, 1.0f, L->dn_w, K, col, N, 0.0f, y, N);
    float *out = pare_engine_act(p, st->out) + (long)oa->P * oa->rs + oa->P;
    const pare_act *ra = st->res >= 0 ? &p->acts[st->res] : NULL;
    const float *res = ra ? pare_engine_act(p, st->res) + (long)ra->P * ra->rs + ra->P : NULL;
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1 && (long)O * N > 32768)
    for (int o = 0; o < O; o++) {
        zero_halo_part(p, st->out, o, o + 1, 0, H);
        for (int r = 0; r < H; r++) {
            const float *yr = y + (size_t)o * (size_t)N + (size_t)r * (size_t)W;
            float *dr = out + o * oa->cs + (long)r * oa->rs, b = L->dn_b[o];
            const float *rr = res ? res + o * ra->cs + (long)r * ra->rs : NULL;
            for (int x = 0; x < W; x++)
                dr[x] = act_fn(yr[x] + b + (rr ? rr[x] : 0.0f), st->act);
        }
    }
}

/* Filter lanes: threads split the (filter group, pixel block) pairs, a filter
 * group being the kernel's register tile of lane blocks. */
static void run_lanes(pare_plan *p, pare_step *st)
{
    const pare_conv_kernels *k = pare_conv();
    const pare_act *oa = &p->acts[st->out];
    const pare_conv_layer *L = &st->conv;
    pare_dw_io io;
    plane_io(p, st, &io);
    const int GB = 4, PBLK = PARE_LANES_PIXELS; /* the AVX-512 tile's blocks, the kernels' pixel block */
    long npix = (long)oa->H * oa->W, nblk = (npix + PBLK - 1) / PBLK;
    int ngrp = (L->dn_nb + GB - 1) / GB, T = p->threads;
    long items = (long)ngrp * nblk;
    if (T > items)
        T = (int)items;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        long lo, hi;
        pare_split_range(items, T, tid(), &lo, &hi);
        /* one call per filter group over this thread's consecutive blocks of it */
        for (long it = lo, end; it < hi; it = end) {
            int g = (int)(it / nblk);
            end = (g + 1) * nblk < hi ? (g + 1) * nblk : hi;
            long pb = (it - g * nblk) * PBLK, pe = (end - g * nblk) * PBLK < npix ? (end - g * nblk) * PBLK : npix;
            int b0 = g * GB, b1 = b0 + GB < L->dn_nb ? b0 + GB : L->dn_nb;
            int c1 = b1 * PARE_LANES < oa->C ? b1 * PARE_LANES : oa->C;
            zero_halo_part(p, st->out, b0 * PARE_LANES, c1, (int)(pb / oa->W), (int)((pe - 1) / oa->W + 1));
            k->f32_convln(&io, L, b0, b1, pb, pe);
        }
    }
}

void pare_engine_wino_bands(const pare_step *st, const pare_act *oa, pare_wino_bands *b)
{
    int th = (oa->H + 1) / 2, tw = (oa->W + 1) / 2, C = st->conv.dn_k / 9, O = oa->C;
    /* about 256 tiles (the sgemms' width: 64 ran slower), fewer when a band's
     * V and M would pass 4 MB, at least 64 */
    int want = 65536 / (C + O);
    want = want > 256 ? 256 : want < 64 ? 64 : want;
    int rb = (want + tw - 1) / tw;
    b->rows = rb < th ? rb : th;
    b->n = (th + b->rows - 1) / b->rows;
    b->ts = ((long)b->rows * tw + 15) / 16 * 16;
    b->v_xs = (long)C * b->ts + 64;
    b->m_xs = (long)O * b->ts + 64;
    b->floats = 16 * (size_t)(b->v_xs + b->m_xs);
}

/* Winograd F(2x2, 3x3), band of tile rows by band (a band's V and M stay near
 * L2), the threads sharing each band: the input transform (threads split the
 * channels), the 16 products M = U V (a single-threaded sgemm each, threads
 * split them), the output transform (threads split the filters, and zero the
 * halo beside the band's rows of theirs). */
static void run_wino(pare_plan *p, pare_step *st)
{
    const pare_conv_kernels *k = pare_conv();
    const pare_act *oa = &p->acts[st->out];
    const pare_conv_layer *L = &st->conv;
    int T = p->threads, C = L->dn_k / 9, O = oa->C;
    pare_wino_bands bd;
    pare_engine_wino_bands(st, oa, &bd);
    pare_dw_io pl;
    plane_io(p, st, &pl);
    float *m = p->scratch + 16 * bd.v_xs;
    pare_wino_io io = {.in = pl.in - pl.in_rs - 1, /* row and column -1 */
                       .in_cs = pl.in_cs,
                       .in_rs = pl.in_rs,
                       .v = p->scratch,
                       .m = m,
                       .v_xs = bd.v_xs,
                       .m_xs = bd.m_xs,
                       .ts = bd.ts,
                       .h = oa->H,
                       .w = oa->W,
                       .th = (oa->H + 1) / 2,
                       .tw = (oa->W + 1) / 2,
                       .out = pl.out,
                       .out_cs = pl.out_cs,
                       .out_rs = pl.out_rs,
                       .res = pl.res,
                       .res_cs = pl.res_cs,
                       .res_rs = pl.res_rs,
                       .bias = L->dn_b,
                       .act = st->act};
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = tid();
        long c0, c1, x0, x1, o0, o1;
        pare_split_range(C, T, t, &c0, &c1);
        pare_split_range(16, T, t, &x0, &x1);
        pare_split_range(O, T, t, &o0, &o1);
        for (int band = 0; band < bd.n; band++) {
            int i0 = band * bd.rows, i1 = i0 + bd.rows < io.th ? i0 + bd.rows : io.th, n = (i1 - i0) * io.tw;
            if (c0 < c1)
                k->f32_wino_in(&io, (int)c0, (int)c1, i0, i1);
#pragma omp barrier
            for (long x = x0; x < x1; x++)
                pare_sgemm(1, 0, 0, O, n, C, 1.0f, L->wn_u + x * O * C, C, io.v + x * bd.v_xs, (int)bd.ts, 0.0f,
                           m + x * bd.m_xs, (int)bd.ts);
#pragma omp barrier
            if (o0 < o1) {
                int y1 = 2 * i1 < oa->H ? 2 * i1 : oa->H;
                zero_halo_part(p, st->out, (int)o0, (int)o1, 2 * i0, y1);
                k->f32_wino_out(&io, (int)o0, (int)o1, i0, i1);
            }
#pragma omp barrier
        }
    }
}

/* A position-kernel conv step's buffers (every position of the plane, or of
 * row 0 in rows mode). */
static pare_conv_io conv_io(pare_plan *p, const pare_step *st)
{
    pare_conv_io io;
    io.in = pare_engine_act(p, st->in[0]) + st->in_base;
    io.out = pare_engine_act(p, st->out) + st->out_base;
    io.res = st->res >= 0 ? pare_engine_act(p, st->res) + st->res_base : NULL;
    io.out_cs = p->acts[st->out].cs;
    io.res_cs = st->res >= 0 ? p->acts[st->res].cs : 0;
    io.n = st->n_pos;
    io.mask = st->wide ? st->mask : NULL;
    io.act = st->act;
    return io;
}

/* The filter units a position-kernel conv step splits (groups, N:M or
 * pattern filters). */
static int conv_units(const pare_step *st)
{
    const pare_conv_layer *L = &st->conv;
    return st->ck == PARE_CK_NM ? L->n_nm : st->ck == PARE_CK_PATTERN ? L->n_pf : L->n_groups;
}

/* Units [u0, u1) of a position-kernel conv step over positions [q0, q1). */
static void conv_call(const pare_conv_kernels *k, const pare_step *st, const pare_conv_io *io, int u0, int u1,
                      long q0, long q1)
{
    if (st->ck == PARE_CK_NM)
        k->f32_convnm(io, &st->conv, u0, u1, q0, q1);
    else if (st->ck == PARE_CK_PATTERN)
        k->f32_convpat(io, &st->conv, u0, u1, q0, q1);
    else
        k->f32_convg(io, &st->conv, u0, u1, q0, q1);
}

static void run_conv(pare_plan *p, pare_step *st)
{
    if (st->ck == PARE_CK_DW) {
        run_dw(p, st);
        return;
    }
    if (st->ck == PARE_CK_LANES) {
        run_lanes(p, st);
        return;
    }
    if (st->ck == PARE_CK_GEMM) {
        run_gemm(p, st);
        return;
    }
    if (st->ck == PARE_CK_WINO) {
        run_wino(p, st);
        return;
    }
    const pare_conv_kernels *k = pare_conv();
    const pare_act *ia = &p->acts[st->in[0]], *oa = &p->acts[st->out];
    pare_conv_io io = conv_io(p, st);
    int units = conv_units(st);
    int T = p->threads;
    long rows, tiles;
    int by_pos;
    T = conv_threads(st, oa, units, T, &rows, &tiles, &by_pos);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = tid(), nt = T;
        for (long r = 0; r < rows; r++) {
            pare_conv_io rio = io;
            if (st->rows_mode) {
                rio.in = io.in + r * ia->rs;
                rio.out = io.out + r * oa->rs;
                rio.res = io.res ? io.res + r * p->acts[st->res].rs : NULL;
            }
            long q0, q1;
            int u0, u1;
            if (!conv_share(st, by_pos, rows, tiles, units, nt, t, r, &q0, &q1, &u0, &u1))
                continue;
            halo_share(p, st, by_pos, rows, nt, t, r, q0, q1);
            conv_call(k, st, &rio, u0, u1, q0, q1);
        }
    }
}

/* ---- banded pairs --------------------------------------------------------- */

/* 1 when step i + 1 reads step i's output as its input and nothing else
 * reads it. */
static int sole_reader(const pare_plan *p, int i)
{
    int a = p->steps[i].out;
    if (a == p->output_act)
        return 0;
    for (int j = 0; j < p->n_steps; j++) {
        const pare_step *s = &p->steps[j];
        if (s->res == a)
            return 0; /* the depthwise step's own residual too */
        for (int k = j == i + 1; k < s->n_in; k++)
            if (s->in[k] == a)
                return 0;
    }
    return 1;
}

int pare_engine_band_candidate(const pare_plan *p, int i)
{
    if (i < 0 || i + 1 >= p->n_steps)
        return 0;
    const pare_step *a = &p->steps[i], *b = &p->steps[i + 1];
    return a->kind == PARE_STEP_CONV && b->kind == PARE_STEP_CONV && b->depthwise && b->n_in == 1 &&
           b->in[0] == a->out && !p->acts[a->out].q8 && !p->acts[b->out].q8 && sole_reader(p, i);
}

void pare_engine_set_bands(pare_plan *p, long band_bytes, long min_bytes)
{
    for (int i = 0; i < p->n_steps; i++) {
        pare_step *a = &p->steps[i];
        a->band_rows = 0;
        if (band_bytes <= 0 || p->threads != 1 || !pare_engine_band_candidate(p, i))
            continue;
        const pare_step *b = &p->steps[i + 1];
        const pare_act *ma = &p->acts[a->out];
        long row = (long)ma->C * ma->rs * (long)sizeof(float); /* one row of every channel */
        if (pare_conv_kind_own_runner(a->ck) || !a->wide || b->ck != PARE_CK_DW || (long)ma->H * row < min_bytes)
            continue;
        long rows = band_bytes / (row * b->conv.dw_sh);
        a->band_rows = (int)(rows < 1 ? 1 : rows > p->acts[b->out].H ? p->acts[b->out].H : rows);
    }
    /* the rings live in the plan's scratch: grow it if they need more (out of
     * memory: no bands) */
    size_t need = 0;
    for (int i = 0; i < p->n_steps; i++) {
        size_t n = pare_engine_band_scratch(p, &p->steps[i]);
        need = n > need ? n : need;
    }
    if (need > p->scratch_floats) {
        float *ns = pare_alloc_array(need, sizeof(float), 0);
        if (!ns) {
            for (int i = 0; i < p->n_steps; i++)
                p->steps[i].band_rows = 0;
            return;
        }
        pare_free(p->scratch);
        p->scratch = ns;
        p->scratch_floats = need;
    }
}

/* The ring of a banded pair in the plan's scratch: per channel, position q
 * of the first step's output (wide numbering, q = y * rs + x + P) at
 * q - qa + front, qa the band's first position; front leaves room for the
 * top halo rows, and cs holds a band's rows with the bottom halo. */
static void band_ring(const pare_plan *p, const pare_step *a, long *front, long *cs)
{
    const pare_act *ma = &p->acts[a->out];
    const pare_conv_layer *L = &a[1].conv;
    /* a band reads (band_rows - 1) * sh + kh rows; the last one runs from its
     * first to the plane's end, up to sh - 1 more with no bottom padding */
    long rows = (long)a->band_rows * L->dw_sh + L->dw_kh;
    *front = (long)ma->P * ma->rs + PARE_CONV_CHUNK;
    *cs = *front + (rows + ma->P) * ma->rs + 2 * PARE_CONV_CHUNK;
}

size_t pare_engine_band_scratch(const pare_plan *p, const pare_step *a)
{
    if (a->band_rows <= 0)
        return 0;
    long front, cs;
    band_ring(p, a, &front, &cs);
    return (size_t)p->acts[a->out].C * (size_t)cs;
}

/* Step a (a position kernel over whole planes) and the depthwise step b, its
 * output's only reader, a band of b's output rows at a time: a computes the
 * input rows the band reads (the rows two bands share are computed twice)
 * into a ring in the plan's scratch instead of its act, the ring's halo
 * cells of those rows are zeroed, and b computes the band from the ring
 * while it is still in this core's L2. Neither the act nor the ring goes out
 * to memory and back. The same sums in the same order as the two steps
 * alone: the same bits. One thread only (pare_engine_set_bands): at two,
 * splitting each band between the threads cost a barrier a band and rows
 * crossing between the cores, and measured slower than the steps alone. */
static void run_band_pair(pare_plan *p, pare_step *a, pare_step *b)
{
    const pare_conv_kernels *k = pare_conv();
    const pare_act *ma = &p->acts[a->out], *oa = &p->acts[b->out];
    const pare_conv_layer *L = &b->conv;
    const long rs = ma->rs, P = ma->P, W = ma->W, H = ma->H;
    long front, cs;
    band_ring(p, a, &front, &cs);
    float *ring = p->scratch;
    pare_conv_io io = conv_io(p, a);
    io.out_cs = cs;
    pare_dw_io dio;
    plane_io(p, b, &dio);
    dio.in_cs = cs;
    for (int y0 = 0; y0 < oa->H; y0 += a->band_rows) {
        double t0 = p->profile ? pare_now_s() : 0;
        int y1 = y0 + a->band_rows < oa->H ? y0 + a->band_rows : oa->H;
        long first = (long)y0 * L->dw_sh - L->dw_pt, last = (long)(y1 - 1) * L->dw_sh - L->dw_pt + L->dw_kh;
        if (first < 0)
            first = 0;
        if (last > H || y1 == oa->H)
            last = H;
        long qa = first * rs / PARE_CONV_CHUNK * PARE_CONV_CHUNK;
        long qend = (last * rs + PARE_CONV_CHUNK - 1) / PARE_CONV_CHUNK * PARE_CONV_CHUNK;
        float *base = ring + front - qa; /* position q of channel c: base + c * cs + q */
        io.out = base;
        conv_call(k, a, &io, 0, conv_units(a), qa, qend < a->n_pos ? qend : a->n_pos);
        /* the ring's planes start P rows above position 0 */
        zero_halo_planes(base - P * rs, cs, P, rs, W, H, 0, ma->C, (int)first, (int)last);
        dio.in = base + P;
        double t1 = p->profile ? pare_now_s() : 0;
        zero_halo_part(p, b->out, 0, oa->C, y0, y1);
        k->f32_convdw(&dio, L, 0, oa->C, y0, y1);
        if (p->profile) {
            a->seconds += t1 - t0;
            b->seconds += pare_now_s() - t1;
        }
    }
}

/* ---- small steps ---------------------------------------------------------- */

size_t pare_engine_pool_row(const pare_plan *p, const pare_step *st)
{
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
    long span = (long)(dst->W - 1) * st->s[1] + st->k[1], padded = (long)st->pad[1] + src->W;
    return (size_t)(span > padded ? span : padded) + 64;
}

/* A max pool in two steps per output row: the maximum over the window's input
 * rows into a row with -FLT_MAX in its padding columns, then over each
 * window's columns of that row; both are the vectorised row kernel, and no
 * output needs a bounds check. Each thread's row is pare_engine_pool_row()
 * floats of the plan's scratch, its padding set once. */
static void run_maxpool(pare_plan *p, pare_step *st)
{
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
    const pare_qconv_kernels *k = pare_qconv();
    int kh = st->k[0], kw = st->k[1], sh = st->s[0], sw = st->s[1], ph = st->pad[0], pw = st->pad[1];
    size_t R = pare_engine_pool_row(p, st);
#pragma omp parallel num_threads(p->threads) if (dst->C * dst->H * dst->W > 16384)
    {
        float *row = p->scratch + (size_t)tid() * R;
        for (size_t x = 0; x < R; x++)
            row[x] = -FLT_MAX;
#pragma omp for schedule(static)
        for (int c = 0; c < dst->C; c++)
            for (int y = 0; y < dst->H; y++) {
                float *out = at(p, st->out, c, y, 0);
                int hs = y * sh - ph, he = hs + kh;
                int h0 = hs < 0 ? 0 : hs, h1 = he > src->H ? src->H : he;
                if (h1 > h0)
                    k->f32_maxrow(row + pw, at(p, st->in[0], c, h0, 0), src->rs, h1 - h0, 1, 1, src->W);
                else
                    for (int x = 0; x < src->W; x++)
                        row[pw + x] = -FLT_MAX;
                k->f32_maxrow(out, row, 0, 1, kw, sw, dst->W);
                if (st->act)
                    for (int x = 0; x < dst->W; x++)
                        out[x] = act_fn(out[x], st->act);
            }
    }
}

/* Average pool: each window's sum over its input (the padding counted or not). */
static void run_avgpool(pare_plan *p, pare_step *st)
{
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
#pragma omp parallel for num_threads(p->threads) schedule(static) if (dst->C * dst->H * dst->W > 16384)
    for (int c = 0; c < dst->C; c++)
        for (int y = 0; y < dst->H; y++) {
            float *out = at(p, st->out, c, y, 0);
            int hs = y * st->s[0] - st->pad[0], he = hs + st->k[0];
            int hep = he < src->H + st->pad[2] ? he : src->H + st->pad[2];
            int h0 = hs < 0 ? 0 : hs, h1 = he > src->H ? src->H : he;
            for (int x = 0; x < dst->W; x++) {
                int ws = x * st->s[1] - st->pad[1], we = ws + st->k[1];
                int wep = we < src->W + st->pad[3] ? we : src->W + st->pad[3];
                int w0 = ws < 0 ? 0 : ws, w1 = we > src->W ? src->W : we;
                float sum = 0;
                for (int h = h0; h < h1; h++) {
                    const float *row = at(p, st->in[0], c, h, 0);
                    for (int w = w0; w < w1; w++)
                        sum += row[w];
                }
                int cnt = st->count_include_pad ? (hep - hs) * (wep - ws) : (h1 - h0) * (w1 - w0);
                out[x] = act_fn(sum / (float)(cnt > 0 ? cnt : 1), st->act);
            }
        }
}

/* Global average pool: per channel a double sum in row order (the graph's and
 * the emitted C's order), GAP_LANES channels side by side so that their
 * dependent adds overlap (one channel at a time waits on each add's latency).
 * The last block ends at the last channel (recomputing some: the same bits);
 * with fewer channels than that, each channel fills every lane. */
#define GAP_LANES 8
static void gap_lanes(const float *base, long cs, long rs, int H, int W, double *s)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *px = base + (long)y * rs + x;
            for (int j = 0; j < GAP_LANES; j++)
                s[j] += px[j * cs];
        }
}

static void run_gap(pare_plan *p, pare_step *st)
{
    const pare_act *src = &p->acts[st->in[0]];
    float *out = pare_engine_act(p, st->out);
    const double n = (double)src->H * src->W;
    const int few = src->C < GAP_LANES, step = few ? 1 : GAP_LANES;
    for (int c = 0; c < src->C; c += step) {
        int c0 = few || c + GAP_LANES <= src->C ? c : src->C - GAP_LANES;
        double s[GAP_LANES] = {0};
        gap_lanes(at(p, st->in[0], c0, 0, 0), few ? 0 : src->cs, src->rs, src->H, src->W, s);
        for (int j = 0; j < step; j++)
            out[c0 + j] = act_fn((float)(s[j] / n), st->act);
    }
}

static void run_elementwise(pare_plan *p, pare_step *st)
{
    const pare_act *dst = &p->acts[st->out];
#pragma omp parallel for num_threads(p->threads) schedule(static) if (dst->C * dst->H * dst->W > 32768)
    for (int c = 0; c < dst->C; c++)
        for (int y = 0; y < dst->H; y++) {
            float *out = at(p, st->out, c, y, 0);
            const float *a = at(p, st->in[0], c, y, 0);
            if (st->kind == PARE_STEP_ADD) {
                const float *b = at(p, st->in[1], c, y, 0);
                for (int x = 0; x < dst->W; x++)
                    out[x] = act_fn(a[x] + b[x], st->act);
            } else if (st->kind == PARE_STEP_AFFINE) {
                float sc = st->scale[c], sh = st->shift[c];
                for (int x = 0; x < dst->W; x++)
                    out[x] = act_fn(a[x] * sc + sh, st->act);
            } else {
                for (int x = 0; x < dst->W; x++)
                    out[x] = act_fn(a[x], st->act);
            }
        }
}

static void run_concat(pare_plan *p, pare_step *st)
{
    const pare_act *dst = &p->acts[st->out];
    int c0 = 0;
    for (int j = 0; j < st->n_in; j++) {
        const pare_act *s = &p->acts[st->in[j]];
        for (int c = 0; c < s->C; c++)
            for (int y = 0; y < dst->H; y++)
                memcpy(at(p, st->out, c0 + c, y, 0), at(p, st->in[j], c, y, 0), sizeof(float) * (size_t)dst->W);
        c0 += s->C;
    }
}

static void run_pack(pare_plan *p, pare_step *st)
{
    const pare_act *s = &p->acts[st->in[0]];
    float *out = pare_engine_act(p, st->out);
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++)
            memcpy(out + ((long)c * s->H + y) * s->W, at(p, st->in[0], c, y, 0), sizeof(float) * (size_t)s->W);
}

static void run_fc(pare_plan *p, pare_step *st)
{
    const float *x = pare_engine_act(p, st->in[0]);
    float *y = pare_engine_act(p, st->out);
    if (st->fc_sparse) {
#pragma omp parallel for num_threads(p->threads) schedule(static) if (st->fc_rowptr[st->fc_out] > 65536)
        for (int o = 0; o < st->fc_out; o++) {
            float s = st->fc_b[o];
            for (int k = st->fc_rowptr[o]; k < st->fc_rowptr[o + 1]; k++)
                s += st->fc_val[k] * x[st->fc_col[k]];
            y[o] = act_fn(s, st->act);
        }
        return;
    }
    memcpy(y, st->fc_b, sizeof(float) * (size_t)st->fc_out);
    pare_sgemm(p->threads, 0, 1, 1, st->fc_out, st->fc_in, 1.0f, x, st->fc_in, st->fc_w, st->fc_in, 1.0f, y,
               st->fc_out);
    if (st->act)
        for (int o = 0; o < st->fc_out; o++)
            y[o] = act_fn(y[o], st->act);
}


/* ---- int8 ----------------------------------------------------------------- */

/* A 32-bit element of an act at plane k, row y, column x (halo coordinates
 * from -P): a u8 act's dword (4 codes) of quad k, or a float act's value. */
static inline uint32_t *qat(pare_plan *p, int a, int k, int y, int x)
{
    const pare_act *s = &p->acts[a];
    return (uint32_t *)(void *)pare_engine_act(p, a) + k * s->cs + (long)(y + s->P) * s->rs + (x + s->P);
}

/* Space-to-depth of a float act (a plane a channel) or a u8 one (a plane a
 * channel quad, 4 codes a dword): the same copy of 32-bit elements, pixels
 * past the input its fill (0.0f, or the u8 act's fill code in every byte). */
static void run_phases(pare_plan *p, pare_step *st)
{
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
    int planes = src->q8 ? (src->C + 3) / 4 : src->C, sh = st->sh, sw = st->sw;
    uint32_t fill = src->q8 ? 0x01010101u * src->fill : 0u;
    const pare_qconv_kernels *kq = pare_qconv();
    /* plane (a, b) of input plane k is cc = (a * sw + b) * planes + k; each
     * input row is read once for all its phases b */
#pragma omp parallel for num_threads(p->threads) schedule(static) if (planes * dst->H * dst->W > 32768)
    for (int ka = 0; ka < planes * sh; ka++) {
        int k = ka % planes, a = ka / planes;
        for (int y = 0; y < dst->H; y++) {
            int sy = y * sh + a;
            const uint32_t *in = sy < src->H ? qat(p, st->in[0], k, sy, 0) : NULL;
            if (in && sw == 2) {
                kq->u32_phase2(qat(p, st->out, (a * 2) * planes + k, y, 0),
                               qat(p, st->out, (a * 2 + 1) * planes + k, y, 0), in, dst->W, src->W, fill);
                continue;
            }
            for (int b = 0; b < sw; b++) {
                uint32_t *out = qat(p, st->out, (a * sw + b) * planes + k, y, 0);
                for (int x = 0; x < dst->W; x++) {
                    int sx = x * sw + b;
                    out[x] = in && sx < src->W ? in[sx] : fill;
                }
            }
        }
    }
}

/* Gathered columns: per tile of PARE_QCONV_TILE positions (the split unit),
 * a thread builds the tile's columns in its buffer and runs the groups on
 * it. With fewer tiles than twice the threads, every thread builds every
 * tile and runs its share of the groups. */
static void run_qconv_gathered(pare_plan *p, pare_step *st, const pare_qconv_io *io)
{
    const pare_qconv_kernels *k = pare_qconv();
    const pare_qconv_layer *L = &st->qconv;
    long tiles = (st->n_pos + PARE_QCONV_TILE - 1) / PARE_QCONV_TILE;
    int T = p->threads, units = L->n_groups;
    int by_tile = tiles >= 2L * T || units < T;
    if (T > units && !by_tile)
        T = units > 0 ? units : 1;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = tid();
        long lo = 0, hi = tiles, glo = 0, ghi = units;
        if (by_tile)
            pare_split_range(tiles, T, t, &lo, &hi);
        else
            pare_split_range(units, T, t, &glo, &ghi);
        uint32_t *buf = st->qws + (size_t)t * st->qws_dwords;
        for (long tile = lo; tile < hi && glo < ghi; tile++) {
            long q0 = tile * PARE_QCONV_TILE, len = st->n_pos - q0 < PARE_QCONV_TILE ? st->n_pos - q0 : PARE_QCONV_TILE;
            k->u8_gather4(buf, PARE_QCONV_TILE, io->in + 4 * q0, L->g_off, L->g_sel, L->n_gather,
                          (len + PARE_QCONV_CHUNK - 1) / PARE_QCONV_CHUNK * PARE_QCONV_CHUNK);
            pare_qconv_io tio = *io;
            tio.in = (const uint8_t *)buf;
            if (tio.out8)
                tio.out8 += 4 * q0;
            else
                tio.outf += q0;
            if (tio.res)
                tio.res += q0;
            if (tio.mask)
                tio.mask += q0 / PARE_QCONV_CHUNK;
            tio.n -= q0;
            k->s8_qconvg(&tio, L, (int)glo, (int)ghi, 0, len);
        }
    }
}

static void run_qconv(pare_plan *p, pare_step *st)
{
    const pare_qconv_kernels *k = pare_qconv();
    const pare_act *ia = &p->acts[st->in[0]], *oa = &p->acts[st->out];
    pare_qconv_io io;
    memset(&io, 0, sizeof io);
    io.in = (const uint8_t *)pare_engine_act(p, st->in[0]) + 4 * st->in_base;
    if (st->q_out8)
        io.out8 = (uint8_t *)pare_engine_act(p, st->out) + 4 * st->out_base;
    else
        io.outf = pare_engine_act(p, st->out) + st->out_base;
    io.out_cs = oa->cs;
    io.res = st->res >= 0 ? pare_engine_act(p, st->res) + st->res_base : NULL;
    io.res_cs = st->res >= 0 ? p->acts[st->res].cs : 0;
    io.res_scale = st->q_res_scale;
    io.n = st->n_pos;
    io.mask = st->wide ? st->mask : NULL;
    io.act = st->act;
    io.zp = st->q_zp;
    io.lo = st->q_lo;
    io.hi = st->q_hi;
    const pare_qconv_layer *L = &st->qconv;
    int units = L->n_groups, T = p->threads;
    if (L->n_gather > 0) {
        run_qconv_gathered(p, st, &io);
        return;
    }
    long rows, tiles;
    int by_pos;
    T = conv_threads(st, oa, units, T, &rows, &tiles, &by_pos);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = tid(), nt = T;
        for (long r = 0; r < rows; r++) {
            pare_qconv_io rio = io;
            if (st->rows_mode) {
                rio.in = io.in + 4 * r * ia->rs;
                if (io.out8)
                    rio.out8 = io.out8 + 4 * r * oa->rs;
                else
                    rio.outf = io.outf + r * oa->rs;
                rio.res = io.res ? io.res + r * p->acts[st->res].rs : NULL;
            }
            long q0, q1;
            int u0, u1;
            if (!conv_share(st, by_pos, rows, tiles, units, nt, t, r, &q0, &q1, &u0, &u1))
                continue;
            k->s8_qconvg(&rio, L, u0, u1, q0, q1);
        }
    }
}

static void run_qfc(pare_plan *p, pare_step *st)
{
    const pare_qconv_kernels *k = pare_qconv();
    const uint8_t *x = (const uint8_t *)pare_engine_act(p, st->in[0]);
    float *y = pare_engine_act(p, st->out);
    int blocks = (st->qfc.out + 15) / 16;
    int T = (double)st->qfc.in4 * blocks * 64 > 262144 ? p->threads : 1;
    if (T > blocks)
        T = blocks > 0 ? blocks : 1;
#pragma omp parallel num_threads(T) if (T > 1)
    {
        long lo, hi;
        pare_split_range(blocks, T, tid(), &lo, &hi);
        if (lo < hi)
            k->s8_qgemv(&st->qfc, x, y, st->act, (int)lo, (int)hi);
    }
}

/* Float -> u8 codes, as the fakequant computes them; a flattened vector
 * (a spatial value quantized for a linear layer) one code at a time. */
static void run_quant(pare_plan *p, pare_step *st)
{
    const pare_qconv_kernels *k = pare_qconv();
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
    float s = st->q_scale, zp = st->q_zpf, qmax = st->q_qmax;
    if (src->C == dst->C && src->H == dst->H && src->W == dst->W) {
        int Cq = (dst->C + 3) / 4;
#pragma omp parallel for num_threads(p->threads) schedule(static) if (dst->C * dst->H * dst->W > 32768)
        for (int kq = 0; kq < Cq; kq++)
            for (int y = 0; y < dst->H; y++) {
                const float *rows[4];
                for (int b = 0; b < 4; b++)
                    rows[b] = 4 * kq + b < src->C ? at(p, st->in[0], 4 * kq + b, y, 0) : NULL;
                k->u8_quant4(qat(p, st->out, kq, y, 0), rows, dst->W, s, zp, qmax);
            }
        return;
    }
    uint8_t *out = (uint8_t *)pare_engine_act(p, st->out);
    long i = 0;
    for (int c = 0; c < src->C; c++)
        for (int y = 0; y < src->H; y++) {
            const float *row = at(p, st->in[0], c, y, 0);
            for (int x = 0; x < src->W; x++, i++)
                out[i] = pare_qcode(row[x], s, zp, qmax);
        }
    for (; i % 4; i++)
        out[i] = (uint8_t)zp;
}

/* A fakequant for float readers: the op's arithmetic, row by row (the halo
 * stays as the run loop zeroed it: the fakequant of 0 is 0). */
static void run_fq(pare_plan *p, pare_step *st)
{
    const pare_qconv_kernels *k = pare_qconv();
    const pare_act *dst = &p->acts[st->out];
#pragma omp parallel for num_threads(p->threads) schedule(static) if (dst->C * dst->H * dst->W > 32768)
    for (int c = 0; c < dst->C; c++)
        for (int y = 0; y < dst->H; y++)
            k->f32_fq(at(p, st->out, c, y, 0), at(p, st->in[0], c, y, 0), dst->W, st->q_scale, st->q_zpf, st->q_qmax);
}

/* Windows read through the input's halo of code 0, which no code is below. */
static void run_qmaxpool(pare_plan *p, pare_step *st)
{
    const pare_qconv_kernels *k = pare_qconv();
    const pare_act *src = &p->acts[st->in[0]], *dst = &p->acts[st->out];
    int Cq = (dst->C + 3) / 4;
#pragma omp parallel for num_threads(p->threads) schedule(static) if (dst->C * dst->H * dst->W > 16384)
    for (int kq = 0; kq < Cq; kq++)
        for (int y = 0; y < dst->H; y++)
            k->u8_maxrow(qat(p, st->out, kq, y, 0), qat(p, st->in[0], kq, y * st->s[0] - st->pad[0], -st->pad[1]),
                         src->rs, st->k[0], st->k[1], st->s[1], dst->W);
}

/* ---- ops through their own forward ---------------------------------------- */

/* An act's values in plain NCHW order, and back. */
static void act_gather(pare_plan *p, int a, float *dst)
{
    const pare_act *s = &p->acts[a];
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++)
            memcpy(dst + ((size_t)c * (size_t)s->H + (size_t)y) * (size_t)s->W, at(p, a, c, y, 0),
                   sizeof(float) * (size_t)s->W);
}

static void act_scatter(pare_plan *p, int a, const float *src)
{
    const pare_act *s = &p->acts[a];
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++)
            memcpy(at(p, a, c, y, 0), src + ((size_t)c * (size_t)s->H + (size_t)y) * (size_t)s->W,
                   sizeof(float) * (size_t)s->W);
}

/* Inference on one sample, threads as planned; the op reads no graph. */
static void run_op(pare_plan *p, pare_step *st)
{
    static const uint8_t *const no_masks[PARE_NODE_MAX_PARAMS] = {NULL};
    const float *x[8];
    for (int j = 0; j < st->n_in; j++) {
        if (st->op_off[j] == SIZE_MAX) {
            x[j] = pare_engine_act(p, st->in[j]);
        } else {
            float *d = st->op_buf + st->op_off[j];
            act_gather(p, st->in[j], d);
            x[j] = d;
        }
    }
    float *y = st->op_out_off == SIZE_MAX ? pare_engine_act(p, st->out) : st->op_buf + st->op_out_off;
    pare_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = &st->op_node;
    c.n = 1;
    c.threads = p->threads;
    c.x = x;
    c.xs = st->op_xs;
    c.y = y;
    c.w = st->op_w;
    c.mask = no_masks;
    c.aux = st->op_aux;
    c.ws = st->op_ws;
    c.ws_floats = st->op_ws_floats;
    pare_op_get(st->op_node.op)->forward(&c);
    if (st->op_out_off != SIZE_MAX)
        act_scatter(p, st->out, y);
}

void pare_engine_run_step(pare_plan *p, pare_step *st)
{
    switch (st->kind) {
    case PARE_STEP_CONV:
        run_conv(p, st);
        break;
    case PARE_STEP_PHASES:
        run_phases(p, st);
        break;
    case PARE_STEP_FC:
        run_fc(p, st);
        break;
    case PARE_STEP_MAXPOOL:
        run_maxpool(p, st);
        break;
    case PARE_STEP_AVGPOOL:
        run_avgpool(p, st);
        break;
    case PARE_STEP_GAP:
        run_gap(p, st);
        break;
    case PARE_STEP_ADD:
    case PARE_STEP_AFFINE:
    case PARE_STEP_ACT:
        run_elementwise(p, st);
        break;
    case PARE_STEP_CONCAT:
        run_concat(p, st);
        break;
    case PARE_STEP_PACK:
        run_pack(p, st);
        break;
    case PARE_STEP_COPY:
        break;
    case PARE_STEP_OP:
        run_op(p, st);
        break;
    case PARE_STEP_QCONV:
        run_qconv(p, st);
        break;
    case PARE_STEP_QFC:
        run_qfc(p, st);
        break;
    case PARE_STEP_QUANT:
        run_quant(p, st);
        break;
    case PARE_STEP_QMAXPOOL:
        run_qmaxpool(p, st);
        break;
    case PARE_STEP_FQ:
        run_fq(p, st);
        break;
    }
}

pare_status pare_plan_run(pare_plan *p, const float *in, int n, float *out)
{
    if (!p || !in || !out || n < 0)
        return pare_fail(PARE_EINVAL, "pare_plan_run needs a plan, an input, an output and n >= 0");
    size_t isz = (size_t)p->in_c * (size_t)p->in_h * (size_t)p->in_w;
    const pare_act *oa = &p->acts[p->output_act];
    for (int s = 0; s < n; s++) {
        const float *x = in + (size_t)s * isz;
        pare_engine_zero_halo(p, p->input_act);
        for (int c = 0; c < p->in_c; c++)
            for (int y = 0; y < p->in_h; y++)
                memcpy(at(p, p->input_act, c, y, 0), x + ((size_t)c * (size_t)p->in_h + (size_t)y) * (size_t)p->in_w,
                       sizeof(float) * (size_t)p->in_w);
        for (int i = 0; i < p->n_steps; i++) {
            pare_step *st = &p->steps[i];
            if (st->band_rows > 0) {
                run_band_pair(p, st, &p->steps[i + 1]);
                i++;
                continue;
            }
            double t0 = p->profile ? pare_now_s() : 0;
            if (!pare_engine_own_halo(p, st))
                pare_engine_zero_halo(p, st->out);
            pare_engine_run_step(p, st);
            if (p->profile)
                st->seconds += pare_now_s() - t0;
        }
        float *y = out + (size_t)s * (size_t)p->out_n;
        for (int c = 0; c < oa->C; c++)
            for (int r = 0; r < oa->H; r++)
                memcpy(y + ((size_t)c * (size_t)oa->H + (size_t)r) * (size_t)oa->W, at(p, p->output_act, c, r, 0),
                       sizeof(float) * (size_t)oa->W);
    }
    return PARE_OK;
}
