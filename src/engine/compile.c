/* Compiling a graph into a plan: structural removal of pruned channels,
 * batch-norm folding, fusion of ReLU/ReLU6 and residual adds into the
 * producing conv, halo and phase-plane planning, weight packing per conv
 * kind, kernel choice (by sparsity, or measured against dense and cached),
 * and activation buffers reused by liveness. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compress/compress.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/cpu.h"
#include "core/fsio.h"
#include "core/threads.h"
#include "engine/engine.h"
#include "graph/op.h"

#define SLACK_FRONT 64

/* ---- activations ---------------------------------------------------------- */

static int new_act(pare_plan *p, int C, int H, int W, int P)
{
    pare_act *a = &p->acts[p->n_acts];
    memset(a, 0, sizeof *a);
    a->C = C;
    a->H = H;
    a->W = W;
    a->P = P;
    a->rs = W + 2 * P;
    a->cs = (long)(H + 2 * P) * a->rs;
    /* Kernels read up to a chunk plus a row past a plane's end, and the tap
     * offsets reach a row and a column before a plane's start. */
    a->floats = SLACK_FRONT + (size_t)C * (size_t)a->cs + (size_t)a->rs + 3 * PARE_CONV_CHUNK + 64;
    a->slot = -1;
    return p->n_acts++;
}

/* A depthwise conv (one filter per channel, no dilation, strides 1 or 2) that
 * the depthwise kernel runs straight from its input act, strided or not. */
static int dw_direct(const pare_graph *g, const pare_node *n)
{
    const pare_attrs *a = &n->a;
    int c = g->nodes[n->in[0]].out.c;
    return n->op == PARE_OP_CONV2D && c > 1 && a->groups == c && a->out_channels == c && a->dilation[0] == 1 &&
           a->dilation[1] == 1 && (a->stride[0] == 1 || a->stride[0] == 2) && (a->stride[1] == 1 || a->stride[1] == 2);
}

/* The halo a value needs: the widest padding of a stride-1 or depthwise conv
 * reading it (strided ones read phase planes with their own halo), at least 1
 * for spatial values so convs can run over whole planes (a 1x1 value gets one
 * only when a padded conv reads it). */
static int halo_for(const pare_graph *g, int v, const int *needed)
{
    pare_shape s = g->nodes[v].out;
    int P = s.h * s.w == 1 ? 0 : 1;
    for (int u = v + 1; u < g->n_nodes; u++) {
        const pare_node *n = &g->nodes[u];
        if (!needed[u] || n->op != PARE_OP_CONV2D || n->in[0] != v)
            continue;
        if ((n->a.stride[0] != 1 || n->a.stride[1] != 1) && !dw_direct(g, n))
            continue;
        for (int k = 0; k < 4; k++)
            if (n->a.pad[k] > P)
                P = n->a.pad[k];
    }
    return P;
}

/* Float acts whose halo no reader looks at (pare_act.halo_junk): read only
 * by float convs, as a pointwise conv's input or as a residual. Their halo
 * keeps whatever the arena held (the 1x1 convs of MobileNetV2's blocks read
 * most of its acts; zeroing their halos was about 3 % of a run). Not the
 * model's input or output. */
static void mark_junk_halos(pare_plan *p)
{
    for (int a = 0; a < p->n_acts; a++) {
        pare_act *x = &p->acts[a];
        x->halo_junk = 0;
        if (x->P == 0 || x->q8 || a == p->input_act || a == p->output_act)
            continue;
        int ok = 1, read = 0;
        for (int i = 0; i < p->n_steps && ok; i++) {
            const pare_step *s = &p->steps[i];
            int conv = s->kind == PARE_STEP_CONV;
            for (int j = 0; j < s->n_in; j++)
                if (s->in[j] == a) {
                    read = 1;
                    ok &= conv && s->pointwise;
                }
            if (s->res == a) {
                read = 1;
                ok &= conv;
            }
        }
        x->halo_junk = ok && read;
    }
}

/* ---- builder state -------------------------------------------------------- */

typedef struct builder {
    pare_plan *p;
    pare_graph *g;
    pare_plan_options o;
    int *act_of;       /* node -> act, -1 */
    int *users;        /* consumers per node (the output counts as one) */
    int *user;         /* the single consumer, when users == 1 */
    int *done;         /* node computed (possibly fused) */
    int *needed;
    int cap_steps;
    tune_cache *cache;
    /* int8 */
    int *q8;           /* conv or linear node runs in int8 */
    int *qact;         /* fakequant node -> its u8 act, -1 */
    int *fq_int8;      /* fakequant node: int8 layers reading it */
    int *fq_other;     /* fakequant node: other readers (the output counts) */
    const char *const *keep_float; /* layers measured faster in float32 (NULL-terminated) */
    int qforce_gather, qforce_rows;  /* tests: the int8 candidate to take where it fits (-1: none) */
    int force_kind;                  /* tests: float dense convs take this lowering (PARE_CK_GEMM
                                      * or PARE_CK_LANES) where it fits; 0: none */
} builder;

/* What the test hooks force on a plan (plan_build): the int8 candidate (gather,
 * rows; gather -1: none) and the float dense lowering (kind; 0: none). */
typedef struct plan_force {
    int gather, rows, kind;
} plan_force;

static pare_step *new_step(builder *b, pare_step_kind k, int node)
{
    if (b->p->n_steps == b->cap_steps) {
        int c = b->cap_steps ? b->cap_steps * 2 : 32;
        pare_step *s = realloc(b->p->steps, sizeof *s * (size_t)c);
        if (!s)
            return NULL;
        b->p->steps = s;
        b->cap_steps = c;
    }
    pare_step *s = &b->p->steps[b->p->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    s->node = node;
    s->res = -1;
    snprintf(s->name, sizeof s->name, "%s", b->g->nodes[node].name);
    return s;
}

static int act_for_node(builder *b, int v)
{
    if (b->act_of[v] >= 0)
        return b->act_of[v];
    pare_shape s = b->g->nodes[v].out;
    b->act_of[v] = new_act(b->p, s.c, s.h, s.w, halo_for(b->g, v, b->needed));
    return b->act_of[v];
}

/* The single consumer of v of op `op`, or -1. */
static int sole_user(const builder *b, int v, pare_op_type op)
{
    if (b->users[v] != 1 || b->user[v] < 0)
        return -1;
    return b->g->nodes[b->user[v]].op == op ? b->user[v] : -1;
}

static int same_shape(pare_shape a, pare_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

/* An add whose second input broadcasts has no kernel of its own (nor a fusion). */
static int broadcast_add(const pare_graph *g, const pare_node *nd)
{
    return nd->op == PARE_OP_ADD && !same_shape(g->nodes[nd->in[0]].out, g->nodes[nd->in[1]].out);
}

/* ---- fusion ---------------------------------------------------------------- */

/* Fuses the ReLU or ReLU6 that is *cur's sole user: returns the act code (1
 * relu, 2 relu6, 0 none) and moves *cur to it. */
static int fuse_act(builder *b, int *cur)
{
    int r = sole_user(b, *cur, PARE_OP_RELU), r6 = sole_user(b, *cur, PARE_OP_RELU6);
    if (r < 0 && r6 < 0)
        return 0;
    *cur = r >= 0 ? r : r6;
    b->done[*cur] = 1;
    return r >= 0 ? 1 : 2;
}

/* Fuses the residual add that is *cur's sole user when its other input is
 * computed already (in a float act, with float_only): returns that act, or
 * -1, and moves *cur to the add. */
static int fuse_residual(builder *b, int *cur, int float_only)
{
    int addn = sole_user(b, *cur, PARE_OP_ADD);
    if (addn < 0 || broadcast_add(b->g, &b->g->nodes[addn]))
        return -1;
    const pare_node *an = &b->g->nodes[addn];
    int other = an->in[0] == *cur ? an->in[1] : an->in[0];
    if (other == *cur || !b->done[other] || b->act_of[other] < 0 ||
        (float_only && b->p->acts[b->act_of[other]].q8))
        return -1;
    b->done[addn] = 1;
    *cur = addn;
    return b->act_of[other];
}

/* A batch norm's per-channel tensors. */
typedef struct bn_view {
    const float *gamma, *beta, *mean, *var;
    double eps;
} bn_view;

static bn_view bn_of(const pare_graph *g, int bn)
{
    bn_view v;
    v.gamma = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_GAMMA)].t->data;
    v.beta = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_BETA)].t->data;
    v.mean = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_MEAN)].t->data;
    v.var = g->params[pare_graph_node_param(g, bn, PARE_ROLE_BN_VAR)].t->data;
    v.eps = g->nodes[bn].a.eps;
    return v;
}

/* ---- conv packing --------------------------------------------------------- */

typedef struct conv_geo {
    int O, Cg, G, kh, kw, sh, sw, dh, dw, pt, pl;
    int C;                 /* input channels */
    int Cq;                /* int8: input channel quads, ceil(C / 4) */
    long cs, rs;           /* of the buffer the columns index */
    int nphase;            /* stride > 1: materialised phase planes */
    int phase_slot[64];    /* phase (a*sw + b) -> plane block, -1 unused */
} conv_geo;

/* The offset of plane c at tap (i, j) in the buffer the columns index, whose
 * phase blocks (strided convs) hold `planes` planes each: channels for a float
 * conv, channel quads (in dwords) for an int8 one. */
static long plane_off(const conv_geo *q, int planes, int c, int i, int j)
{
    int th = i * q->dh - q->pt, tw = j * q->dw - q->pl;
    if (q->sh == 1 && q->sw == 1)
        return c * q->cs + (long)th * q->rs + tw;
    int a = ((th % q->sh) + q->sh) % q->sh, bb = ((tw % q->sw) + q->sw) % q->sw;
    int dy = (th - a) / q->sh, dx = (tw - bb) / q->sw;
    int slot = q->phase_slot[a * q->sw + bb];
    return ((long)slot * planes + c) * q->cs + (long)dy * q->rs + dx;
}

static long col_off(const conv_geo *q, int cin, int i, int j) { return plane_off(q, q->C, cin, i, j); }

/* The halo the phase planes of a strided conv need: how far its taps reach
 * past a phase plane's edges (at least 1). */
static int phase_halo(const conv_geo *q, pare_shape in, pare_shape os)
{
    int need = 1;
    for (int i = 0; i < q->kh; i++) {
        int t = i * q->dh - q->pt, a = ((t % q->sh) + q->sh) % q->sh, dy = (t - a) / q->sh;
        int Hq = (in.h + q->sh - 1) / q->sh;
        if (-dy > need)
            need = -dy;
        if (os.h - 1 + dy - (Hq - 1) > need)
            need = os.h - 1 + dy - (Hq - 1);
    }
    for (int j = 0; j < q->kw; j++) {
        int t = j * q->dw - q->pl, a = ((t % q->sw) + q->sw) % q->sw, dx = (t - a) / q->sw;
        int Wq = (in.w + q->sw - 1) / q->sw;
        if (-dx > need)
            need = -dx;
        if (os.w - 1 + dx - (Wq - 1) > need)
            need = os.w - 1 + dx - (Wq - 1);
    }
    return need;
}

/* A conv's geometry from its attributes and input shape (cs, rs and the
 * phases are the lowering's to set). */
static conv_geo geo_of(const pare_attrs *at, pare_shape in)
{
    conv_geo q;
    memset(&q, 0, sizeof q);
    q.O = at->out_channels;
    q.G = at->groups;
    q.Cg = in.c / at->groups;
    q.C = in.c;
    q.Cq = (in.c + 3) / 4;
    q.kh = at->kernel[0];
    q.kw = at->kernel[1];
    q.sh = at->stride[0];
    q.sw = at->stride[1];
    q.dh = at->dilation[0];
    q.dw = at->dilation[1];
    q.pt = at->pad[0];
    q.pl = at->pad[1];
    return q;
}

static int in_channel(const conv_geo *q, int o, int c)
{
    int og = q->O / q->G;
    return (o / og) * q->Cg + c;
}

/* Bytes of everything packed for a layer, allocated in one block. */
typedef struct arena {
    uint8_t *p;
    size_t used, cap;
} arena;

static void *take(arena *a, size_t bytes)
{
    size_t at = (a->used + 63) / 64 * 64;
    if (at + bytes > a->cap)
        return NULL;
    a->used = at + bytes;
    return a->p + at;
}

static int nnz_of(const float *w, size_t n)
{
    int z = 0;
    for (size_t i = 0; i < n; i++)
        z += w[i] != 0.0f;
    return z;
}

/* Groups of up to R filters within a conv group, columns: every column
 * (dense) or the union of the group's nonzero columns (block). */
static pare_status pack_groups(const conv_geo *q, const float *w, const float *bias, int R, int union_cols,
                               pare_conv_layer *L)
{
    int K = q->Cg * q->kh * q->kw, og = q->O / q->G;
    int ng = 0;
    for (int g = 0; g < q->G; g++)
        ng += (og + R - 1) / R;
    int rp = R <= 1 ? 1 : R <= 2 ? 2 : R <= 4 ? 4 : 8;
    size_t need = sizeof(pare_conv_group) * (size_t)ng + (size_t)ng * (size_t)K * (sizeof(int32_t) + sizeof(float) * (size_t)rp) +
                  (size_t)ng * sizeof(float) * 8 + 64 * (size_t)(3 * ng + 4);
    arena a = {pare_alloc(need, 1), 0, need};
    if (!a.p)
        return PARE_ENOMEM;
    L->mem = a.p;
    L->groups = take(&a, sizeof(pare_conv_group) * (size_t)ng);
    L->n_groups = 0;
    for (int g = 0; g < q->G; g++)
        for (int f0 = 0; f0 < og; f0 += R) {
            int r = og - f0 < R ? og - f0 : R;
            int o0 = g * og + f0;
            pare_conv_group *gr = &L->groups[L->n_groups++];
            int32_t *off = take(&a, sizeof(int32_t) * (size_t)K);
            float *gw = take(&a, sizeof(float) * (size_t)K * (size_t)rp);
            float *gb = take(&a, sizeof(float) * 8);
            int nc = 0;
            for (int c = 0; c < q->Cg; c++)
                for (int i = 0; i < q->kh; i++)
                    for (int j = 0; j < q->kw; j++) {
                        int k = (c * q->kh + i) * q->kw + j;
                        int any = !union_cols;
                        for (int t = 0; t < r && !any; t++)
                            any = w[(size_t)(o0 + t) * (size_t)K + (size_t)k] != 0.0f;
                        if (!any)
                            continue;
                        off[nc] = (int32_t)col_off(q, in_channel(q, o0, c), i, j);
                        for (int t = 0; t < rp; t++)
                            gw[(size_t)nc * (size_t)rp + (size_t)t] = t < r ? w[(size_t)(o0 + t) * (size_t)K + (size_t)k] : 0.0f;
                        nc++;
                    }
            for (int t = 0; t < 8; t++)
                gb[t] = t < r ? bias[o0 + t] : 0.0f;
            gr->o0 = o0;
            gr->r = r;
            gr->rp = rp;
            gr->ncols = nc;
            gr->off = off;
            gr->w = gw;
            gr->bias = gb;
            L->bytes += (size_t)nc * (sizeof(int32_t) + sizeof(float) * (size_t)rp);
        }
    return PARE_OK;
}

/* N:M along input channels: every filter keeps at most N of each group of M
 * channels at a tap. 0 when the weights do not follow it (or the conv is grouped). */
static int pack_nm(const conv_geo *q, const float *w, const float *bias, int N, int M, pare_conv_layer *L)
{
    if (q->G != 1 || q->Cg % M != 0 || N < 1 || N >= M || M > 255)
        return 0;
    int K = q->Cg * q->kh * q->kw, blocks = q->Cg / M, ngr = blocks * q->kh * q->kw;
    /* check first */
    for (int o = 0; o < q->O; o++)
        for (int cb = 0; cb < blocks; cb++)
            for (int t = 0; t < q->kh * q->kw; t++) {
                int cnt = 0;
                for (int m = 0; m < M; m++)
                    cnt += w[(size_t)o * K + (size_t)((cb * M + m) * q->kh * q->kw + t)] != 0.0f;
                if (cnt > N)
                    return 0;
            }
    size_t need = sizeof(int32_t) * (size_t)ngr + sizeof(pare_nm_filter) * (size_t)q->O +
                  (size_t)q->O * (size_t)ngr * (size_t)N * (1 + sizeof(float)) + 64 * (size_t)(2 * q->O + 4);
    arena a = {pare_alloc(need, 1), 0, need};
    if (!a.p)
        return -1;
    L->mem = a.p;
    int32_t *base = take(&a, sizeof(int32_t) * (size_t)ngr);
    for (int cb = 0; cb < blocks; cb++)
        for (int t = 0; t < q->kh * q->kw; t++)
            base[cb * q->kh * q->kw + t] = (int32_t)col_off(q, cb * M, t / q->kw, t % q->kw);
    L->nm_base = base;
    L->nm_n = N;
    L->nm_m = M;
    L->nm_ngroups = ngr;
    /* consecutive channels of one block are a channel stride apart */
    L->nm_cs = (int32_t)(col_off(q, 1, 0, 0) - col_off(q, 0, 0, 0));
    L->nm = take(&a, sizeof(pare_nm_filter) * (size_t)q->O);
    L->n_nm = q->O;

    for (int o = 0; o < q->O; o++) {
        uint8_t *idx = take(&a, (size_t)ngr * (size_t)N);
        float *fw = take(&a, sizeof(float) * (size_t)ngr * (size_t)N);
        for (int gi = 0; gi < ngr; gi++) {
            int cb = gi / (q->kh * q->kw), t = gi % (q->kh * q->kw), k = 0;
            for (int m = 0; m < M && k < N; m++) {
                float v = w[(size_t)o * K + (size_t)((cb * M + m) * q->kh * q->kw + t)];
                if (v != 0.0f) {
                    idx[gi * N + k] = (uint8_t)m;
                    fw[gi * N + k] = v;
                    k++;
                }
            }
            for (; k < N; k++) {
                idx[gi * N + k] = 0;
                fw[gi * N + k] = 0.0f;
            }
        }
        L->nm[o].o = o;
        L->nm[o].idx = idx;
        L->nm[o].w = fw;
        L->nm[o].bias = bias[o];
    }
    L->bytes = (size_t)q->O * (size_t)ngr * (size_t)N * (1 + sizeof(float)) + sizeof(int32_t) * (size_t)ngr;
    return 1;
}

static int popcount9(unsigned m)
{
    int c = 0;
    for (; m; m &= m - 1)
        c++;
    return c;
}

typedef struct pat_kernel {
    int c;
    int pat;
} pat_kernel;

static int cmp_pk(const void *x, const void *y)
{
    const pat_kernel *a = x, *b = y;
    if (a->pat != b->pat)
        return a->pat < b->pat ? -1 : 1;
    return a->c < b->c ? -1 : a->c > b->c;
}

/* PatDNN's FKW: per filter, its kernels as (channel, pattern) sorted by
 * pattern, 4 weights each. 0 when a kernel has more than 4 weights or there
 * are more than 64 distinct patterns. */
static int pack_pattern(const conv_geo *q, const float *w, const float *bias, pare_conv_layer *L)
{
    if (q->kh != 3 || q->kw != 3)
        return 0;
    int K = q->Cg * 9;
    unsigned pats[64];
    int npat = 0;
    size_t kernels = 0;
    for (int o = 0; o < q->O; o++)
        for (int c = 0; c < q->Cg; c++) {
            unsigned m = 0;
            for (int t = 0; t < 9; t++)
                if (w[(size_t)o * K + (size_t)(c * 9 + t)] != 0.0f)
                    m |= 1u << t;
            if (!m)
                continue;
            if (popcount9(m) > 4)
                return 0;
            /* a kernel with fewer weights takes the centre and the lowest free
             * taps, so the same sparse kernel always maps to the same pattern */
            for (int t = 4; popcount9(m) < 4; t = (t + 1) % 9)
                m |= 1u << t;
            int id = -1;
            for (int k = 0; k < npat; k++)
                if (pats[k] == m)
                    id = k;
            if (id < 0) {
                if (npat == 64)
                    return 0;
                pats[npat++] = m;
            }
            kernels++;
        }
    size_t need = sizeof(pare_pat_filter) * (size_t)q->O + kernels * (sizeof(int32_t) + 1 + 4 * sizeof(float)) +
                  64 * (size_t)(3 * q->O + 4);
    arena a = {pare_alloc(need, 1), 0, need};
    pat_kernel *tmp = malloc(sizeof *tmp * (size_t)(q->Cg ? q->Cg : 1));
    if (!a.p || !tmp) {
        pare_free(a.p);
        free(tmp);
        return -1;
    }
    L->mem = a.p;
    L->n_pat = npat;
    for (int k = 0; k < npat; k++) {
        int t = 0;
        for (int bit = 0; bit < 9; bit++)
            if (pats[k] >> bit & 1)
                L->pat_off[k][t++] = (int32_t)col_off(q, 0, bit / 3, bit % 3);
    }
    L->pf = take(&a, sizeof(pare_pat_filter) * (size_t)q->O);
    L->n_pf = q->O;
    for (int o = 0; o < q->O; o++) {
        int nk = 0;
        for (int c = 0; c < q->Cg; c++) {
            unsigned m = 0;
            for (int t = 0; t < 9; t++)
                if (w[(size_t)o * K + (size_t)(c * 9 + t)] != 0.0f)
                    m |= 1u << t;
            if (!m)
                continue;
            for (int t = 4; popcount9(m) < 4; t = (t + 1) % 9)
                m |= 1u << t;
            int id = 0;
            while (pats[id] != m)
                id++;
            tmp[nk].c = c;
            tmp[nk].pat = id;
            nk++;
        }
        qsort(tmp, (size_t)nk, sizeof *tmp, cmp_pk);
        int32_t *coff = take(&a, sizeof(int32_t) * (size_t)(nk ? nk : 1));
        uint8_t *pat = take(&a, (size_t)(nk ? nk : 1));
        float *fw = take(&a, sizeof(float) * 4 * (size_t)(nk ? nk : 1));
        for (int k = 0; k < nk; k++) {
            int cin = in_channel(q, o, tmp[k].c);
            coff[k] = (int32_t)(col_off(q, cin, 0, 0) - col_off(q, 0, 0, 0));
            pat[k] = (uint8_t)tmp[k].pat;
            int t = 0;
            for (int bit = 0; bit < 9; bit++)
                if (pats[tmp[k].pat] >> bit & 1)
                    fw[4 * k + t++] = w[(size_t)o * K + (size_t)(tmp[k].c * 9 + bit)];
        }
        L->pf[o].o = o;
        L->pf[o].nk = nk;
        L->pf[o].coff = coff;
        L->pf[o].pat = pat;
        L->pf[o].w = fw;
        L->pf[o].bias = bias[o];
        L->bytes += (size_t)nk * (sizeof(int32_t) + 1 + 4 * sizeof(float));
    }
    free(tmp);
    return 1;
}

/* The dense lowerings' packing: each column's offset, and the folded weights
 * (O x K, K = C x kh x kw in that order) as they are for im2col + GEMM, or for
 * filter lanes in blocks of PARE_LANES filters, each block's weights column by
 * column (zero past the last filter). */
static pare_status pack_dense(const conv_geo *q, const float *w, const float *bias, int lanes,
                              pare_conv_layer *L)
{
    int K = q->Cg * q->kh * q->kw, nb = (q->O + PARE_LANES - 1) / PARE_LANES;
    size_t O = lanes ? (size_t)nb * PARE_LANES : (size_t)q->O, nw = O * (size_t)K;
    arena a = {NULL, 0, 0};
    a.cap = 64 * 4 + sizeof(float) * (nw + O) + sizeof(int32_t) * (size_t)K;
    a.p = pare_alloc_array(a.cap, 1, lanes);
    if (!a.p)
        return pare_fail(PARE_ENOMEM, "out of memory");
    float *wm = take(&a, sizeof(float) * nw), *bm = take(&a, sizeof(float) * O);
    int32_t *off = take(&a, sizeof(int32_t) * (size_t)K);
    if (lanes)
        for (int o = 0; o < q->O; o++) {
            float *dst = wm + (size_t)(o / PARE_LANES) * (size_t)K * PARE_LANES + (size_t)(o % PARE_LANES);
            for (int k = 0; k < K; k++)
                dst[(size_t)k * PARE_LANES] = w[(size_t)o * (size_t)K + (size_t)k];
        }
    else
        memcpy(wm, w, sizeof(float) * nw);
    memcpy(bm, bias, sizeof(float) * (size_t)q->O);
    for (int c = 0, k = 0; c < q->Cg; c++)
        for (int i = 0; i < q->kh; i++)
            for (int j = 0; j < q->kw; j++)
                off[k++] = (int32_t)col_off(q, c, i, j);
    L->mem = a.p;
    L->dn_k = K;
    L->dn_nb = nb;
    L->dn_o = q->O;
    L->dn_w = wm;
    L->dn_b = bm;
    L->dn_off = off;
    L->bytes = sizeof(float) * (nw + O) + sizeof(int32_t) * (size_t)K;
    return PARE_OK;
}

/* Winograd F(2x2, 3x3): the 16 matrices U = G g G^T (kernels/conv.h), after
 * the dense lowering's arrays (which stay for the emitted C). */
static pare_status pack_wino(const conv_geo *q, const float *w, pare_conv_layer *L)
{
    size_t O = (size_t)q->O, C = (size_t)q->Cg;
    float *u = pare_alloc_array(16 * O * C, sizeof(float), 1);
    if (!u)
        return pare_fail(PARE_ENOMEM, "out of memory");
    for (size_t o = 0; o < O; o++)
        for (size_t c = 0; c < C; c++) {
            const float *g = w + (o * C + c) * 9;
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int r = 0; r < 4; r++) {
                float v[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]),
                              t[r][2]};
                for (int s = 0; s < 4; s++)
                    u[((size_t)(4 * r + s) * O + o) * C + c] = v[s];
            }
        }
    L->wn_mem = u;
    L->wn_u = u;
    L->bytes += sizeof(float) * 16 * O * C;
    return PARE_OK;
}

/* Depthwise: per channel its kh x kw weights (the folded [C][1][kh][kw] as
 * they are) and bias. */
static pare_status pack_dw(const conv_geo *q, const float *w, const float *bias, pare_conv_layer *L)
{
    size_t kk = (size_t)q->kh * (size_t)q->kw, C = (size_t)q->O;
    float *m = pare_alloc_array(C * kk + C, sizeof(float), 0);
    if (!m)
        return pare_fail(PARE_ENOMEM, "out of memory");
    memcpy(m, w, sizeof(float) * C * kk);
    memcpy(m + C * kk, bias, sizeof(float) * C);
    L->mem = m;
    L->dw_w = m;
    L->dw_b = m + C * kk;
    L->dw_kh = q->kh;
    L->dw_kw = q->kw;
    L->dw_sh = q->sh;
    L->dw_sw = q->sw;
    L->dw_pt = q->pt;
    L->dw_pl = q->pl;
    L->bytes = sizeof(float) * (C * kk + C);
    return PARE_OK;
}

static void conv_layer_free(pare_conv_layer *L)
{
    pare_free(L->mem);
    pare_free(L->wn_mem);
    memset(L, 0, sizeof *L);
}

/* Packs a conv step for a kind; 0 when the weights do not fit the kind. */
static int pack_kind(pare_step *st, const conv_geo *q, const float *w, const float *bias, pare_conv_kind k,
                     int block_rows)
{
    conv_layer_free(&st->conv);
    pare_status s = PARE_OK;
    int ok = 1;
    switch (k) {
    case PARE_CK_DENSE:
        s = pack_groups(q, w, bias, q->Cg == 1 && q->G > 1 ? 1 : 4, 0, &st->conv);
        break;
    case PARE_CK_BLOCK:
        s = pack_groups(q, w, bias, block_rows, 1, &st->conv);
        break;
    case PARE_CK_SPARSE:
        s = pack_groups(q, w, bias, 1, 1, &st->conv);
        break;
    case PARE_CK_NM:
        ok = pack_nm(q, w, bias, st->nm_n, st->nm_m, &st->conv);
        break;
    case PARE_CK_PATTERN:
        ok = pack_pattern(q, w, bias, &st->conv);
        break;
    case PARE_CK_DW:
        s = pack_dw(q, w, bias, &st->conv);
        break;
    case PARE_CK_GEMM:
    case PARE_CK_LANES:
        s = pack_dense(q, w, bias, k == PARE_CK_LANES, &st->conv);
        break;
    case PARE_CK_WINO:
        s = pack_dense(q, w, bias, 0, &st->conv);
        if (s == PARE_OK)
            s = pack_wino(q, w, &st->conv);
        break;
    default:
        ok = 0;
    }
    if (s != PARE_OK || ok < 0)
        return -1;
    if (!ok)
        return 0;
    st->ck = k;
    return 1;
}

/* ---- lowering ------------------------------------------------------------- */

static const char *const kind_names[PARE_CK__COUNT] = {"dense", "block", "sparse", "N:M", "pattern", "depthwise",
                                                       "im2col+GEMM", "dense (filter lanes)", "winograd"};
const char *pare_conv_kind_name(pare_conv_kind k) { return (unsigned)k < PARE_CK__COUNT ? kind_names[k] : "?"; }

/* The candidates a layer's scheme and density allow, best guess first. With
 * tune, irregular layers also try groups of 2 and 4 filters over the union of
 * their columns: more multiply-adds with zeros, but each loaded input serves
 * several filters (timing decides). */
static int candidates(const pare_param *wp, double density, int kh, int kw, pare_conv_kind *out, int *rows,
                      int *nm_n, int *nm_m, int keep_dense, int tune)
{
    int n = 0;
    const char *s = wp->scheme;
    if (!keep_dense && density < 0.75) {
        if (s && !strncmp(s, "pattern", 7) && kh == 3 && kw == 3)
            out[n++] = PARE_CK_PATTERN;
        int a, b;
        char c;
        if (s && sscanf(s, "%d:%d%c", &a, &b, &c) == 2) {
            *nm_n = a;
            *nm_m = b;
            out[n++] = PARE_CK_NM;
        }
        int structured = 0;
        if (s && (sscanf(s, "block:%dx%d", &a, &b) == 2 || sscanf(s, "punched:%dx%d", &a, &b) == 2) && a > 1) {
            rows[n] = a > PARE_CONV_MAX_R ? PARE_CONV_MAX_R : a;
            out[n++] = PARE_CK_BLOCK;
            structured = 1;
        }
        out[n++] = PARE_CK_SPARSE;
        if (tune && !structured)
            for (int r = 2; r <= 4; r *= 2) {
                rows[n] = r;
                out[n++] = PARE_CK_BLOCK;
            }
    }
    out[n++] = PARE_CK_DENSE;
    return n;
}

/* What a conv step needs until its kernel is chosen. */
typedef struct conv_aux {
    int step;
    conv_geo geo;
    float *w, *b;            /* folded weights [O][Cg*kh*kw] and biases */
    int n_cand;
    pare_conv_kind cand[PARE_CK__COUNT + 2];
    int cand_rows[PARE_CK__COUNT + 2]; /* block kinds: filters per group */
    char key[256];
    /* int8: candidates are (kind, filters per group); dense packs every column */
    int q;
    int cand_gather[PARE_CK__COUNT + 2]; /* 1: GEMM k-quads, 2: pattern taps gathered (kernels/qconv.h) */
    int8_t *codes;           /* [O][Cg*kh*kw] */
    float *qs, *qb;          /* per output channel: requantization scale and shift */
    int32_t zp_in;
    int32_t *zb;             /* per output channel: -zp_in * (sum of its codes), the
                              * accumulator's start whatever the packing */
} conv_aux;

typedef struct aux_list {
    int n, cap;
    conv_aux *a;
} aux_list;

/* A phase-plane act for (input act, strides), shared by every conv that
 * reads the same input with the same stride. */
static int new_qact(pare_plan *p, int C, int H, int W, int P, int fill);

/* u8: the act holds int8 codes (4 channels a dword); its phase planes hold
 * Cq quads per phase, halo and out-of-range pixels the source's fill code. */
static int phase_act(builder *b, int in_act, int node, int sh, int sw, int need, int u8)
{
    pare_plan *p = b->p;
    for (int i = 0; i < p->n_steps; i++) {
        pare_step *s = &p->steps[i];
        if (s->kind == PARE_STEP_PHASES && s->in[0] == in_act && s->sh == sh && s->sw == sw &&
            p->acts[s->out].P >= need)
            return s->out;
    }
    const pare_act *src = &p->acts[in_act];
    int Hq = (src->H + sh - 1) / sh, Wq = (src->W + sw - 1) / sw;
    int id = u8 ? new_qact(p, 4 * ((src->C + 3) / 4) * sh * sw, Hq, Wq, need, src->fill)
                : new_act(p, src->C * sh * sw, Hq, Wq, need);
    pare_step *s = new_step(b, PARE_STEP_PHASES, node);
    if (!s)
        return -1;
    snprintf(s->name, sizeof s->name, "%s.phases", b->g->nodes[node].name);
    snprintf(s->kernel, sizeof s->kernel, "space-to-depth %dx%d%s", sh, sw, u8 ? " (u8)" : "");
    s->in[0] = in_act;
    s->n_in = 1;
    s->out = id;
    s->sh = sh;
    s->sw = sw;
    s->nphase = sh * sw;
    return id;
}

static pare_status lower_conv(builder *b, int v, aux_list *aux)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    const pare_attrs *at = &nd->a;
    int src = nd->in[0];
    pare_shape in = g->nodes[src].out;
    int in_act = b->act_of[src];
    conv_geo q = geo_of(at, in);
    int K = q.Cg * q.kh * q.kw;
    /* fold a batch norm that only this conv feeds */
    const pare_param *wp = &g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)];
    int bp = pare_graph_node_param(g, v, PARE_ROLE_BIAS);
    float *w = pare_alloc_array((size_t)q.O * (size_t)K, sizeof(float), 0);
    float *bias = pare_alloc_array((size_t)q.O, sizeof(float), 1);
    if (!w || !bias) {
        pare_free(w);
        pare_free(bias);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    memcpy(w, wp->t->data, sizeof(float) * (size_t)q.O * (size_t)K);
    if (bp >= 0)
        memcpy(bias, g->params[bp].t->data, sizeof(float) * (size_t)q.O);
    int cur = v, bn = sole_user(b, v, PARE_OP_BATCHNORM);
    if (bn >= 0) {
        bn_view n = bn_of(g, bn);
        for (int o = 0; o < q.O; o++) {
            /* the same float32 steps as the BN forward: a = gamma * invstd */
            float invstd = (float)(1.0 / sqrt((double)n.var[o] + n.eps));
            float a = n.gamma[o] * invstd;
            for (int k = 0; k < K; k++)
                w[(size_t)o * K + (size_t)k] *= a;
            bias[o] = bias[o] * a + (n.beta[o] - n.mean[o] * a);
        }
        b->done[bn] = 1;
        cur = bn;
    }
    int res = fuse_residual(b, &cur, 0);
    int act = fuse_act(b, &cur);
    /* phases for strided convs */
    int rd_act = in_act, dw = dw_direct(g, nd);
    pare_shape os = nd->out;
    if ((q.sh > 1 || q.sw > 1) && !dw) {
        int need = phase_halo(&q, in, os);
        rd_act = phase_act(b, in_act, v, q.sh, q.sw, need, 0);
        if (rd_act < 0) {
            pare_free(w);
            pare_free(bias);
            return pare_fail(PARE_ENOMEM, "out of memory");
        }
        for (int k = 0; k < q.sh * q.sw; k++)
            q.phase_slot[k] = k;
        q.nphase = q.sh * q.sw;
    }
    const pare_act *ia = &b->p->acts[rd_act];
    q.cs = ia->cs;
    q.rs = ia->rs;
    int out_act = act_for_node(b, cur);
    pare_step *st = new_step(b, PARE_STEP_CONV, cur);
    if (!st) {
        pare_free(w);
        pare_free(bias);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    snprintf(st->name, sizeof st->name, "%s", nd->name);
    st->in[0] = rd_act;
    st->n_in = 1;
    st->out = out_act;
    st->res = res;
    st->act = act;
    st->depthwise = dw;
    st->pointwise = q.kh == 1 && q.kw == 1 && q.sh == 1 && q.sw == 1 && !at->pad[0] && !at->pad[1] && !at->pad[2] &&
                    !at->pad[3];
    const pare_act *oa = &b->p->acts[out_act];
    st->wide = ia->rs == oa->rs && ia->P == oa->P && (res < 0 || b->p->acts[res].P == oa->P);
    st->rows_mode = !st->wide;
    st->dense_macs = (double)q.O * os.h * os.w * K;
    /* candidates */
    conv_aux ca;
    memset(&ca, 0, sizeof ca);
    ca.geo = q;
    ca.w = w;
    ca.b = bias;
    int nz = nnz_of(w, (size_t)q.O * (size_t)K);
    double density = (double)nz / ((double)q.O * K);
    ca.n_cand = candidates(wp, density, q.kh, q.kw, ca.cand, ca.cand_rows, &st->nm_n, &st->nm_m, b->o.keep_dense,
                           b->o.tune);
    if (dw) {
        /* the depthwise kernel is the dense one; a strided layer has no phase
         * planes for the others to read */
        if (q.sh > 1 || q.sw > 1)
            ca.n_cand = 1;
        ca.cand[ca.n_cand - 1] = PARE_CK_DW;
    } else if (q.G == 1 && (b->o.tune || b->force_kind) && ca.cand[ca.n_cand - 1] == PARE_CK_DENSE) {
        /* the other dense lowerings, for timing to decide: filter lanes waste
         * nothing on the halo of small planes; OpenBLAS wins on a few shapes */
        ca.cand[ca.n_cand++] = PARE_CK_LANES;
        ca.cand[ca.n_cand++] = PARE_CK_GEMM;
        /* Winograd F(2x2, 3x3): 2.25x fewer multiply-adds, in sgemms */
        if (q.kh == 3 && q.kw == 3 && q.sh == 1 && q.sw == 1 && q.dh == 1 && q.dw == 1 && q.pt == 1 && q.pl == 1 &&
            os.h == in.h && os.w == in.w && ia->P >= 1)
            ca.cand[ca.n_cand++] = PARE_CK_WINO;
    }
    snprintf(ca.key, sizeof ca.key, "v6|%s|t%d|%dx%dx%d->%dx%dx%d|k%dx%d|s%dx%d|g%d|nz%d|%s", pare_isa(), b->p->threads,
             in.c, in.h, in.w, os.c, os.h, os.w, q.kh, q.kw, q.sh, q.sw, q.G, nz, wp->scheme ? wp->scheme : "dense");
    ca.step = b->p->n_steps - 1;
    if (aux->n == aux->cap) {
        int c = aux->cap ? aux->cap * 2 : 32;
        conv_aux *na = realloc(aux->a, sizeof *na * (size_t)c);
        if (!na) {
            pare_free(w);
            pare_free(bias);
            return pare_fail(PARE_ENOMEM, "out of memory");
        }
        aux->a = na;
        aux->cap = c;
    }
    aux->a[aux->n++] = ca;
    b->done[v] = 1;
    return PARE_OK;
}

/* A plain vector act for a linear layer's input. */
static int packed_act(builder *b, int src, int node)
{
    int a = b->act_of[src];
    const pare_act *sa = &b->p->acts[a];
    if (sa->P == 0 && sa->H * sa->W == 1)
        return a;
    int id = new_act(b->p, sa->C * sa->H * sa->W, 1, 1, 0);
    pare_step *s = new_step(b, PARE_STEP_PACK, node);
    if (!s)
        return -1;
    snprintf(s->name, sizeof s->name, "%s.pack", b->g->nodes[node].name);
    snprintf(s->kernel, sizeof s->kernel, "pack");
    s->in[0] = a;
    s->n_in = 1;
    s->out = id;
    return id;
}

static pare_status lower_linear(builder *b, int v)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    int in_act = packed_act(b, nd->in[0], v);
    if (in_act < 0)
        return pare_fail(PARE_ENOMEM, "out of memory");
    int cur = v, act = fuse_act(b, &cur);
    int out = act_for_node(b, cur);
    pare_step *st = new_step(b, PARE_STEP_FC, cur);
    if (!st)
        return pare_fail(PARE_ENOMEM, "out of memory");
    snprintf(st->name, sizeof st->name, "%s", nd->name);
    st->in[0] = in_act;
    st->n_in = 1;
    st->out = out;
    st->act = act;
    const pare_tensor *wt = g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)].t;
    int bp = pare_graph_node_param(g, v, PARE_ROLE_BIAS);
    st->fc_out = wt->dims[0];
    st->fc_in = wt->dims[1];
    st->dense_macs = (double)wt->n;
    int nz = nnz_of(wt->data, wt->n);
    st->fc_b = pare_alloc_array((size_t)st->fc_out, sizeof(float), 1);
    if (!st->fc_b)
        return pare_fail(PARE_ENOMEM, "out of memory");
    if (bp >= 0)
        memcpy(st->fc_b, g->params[bp].t->data, sizeof(float) * (size_t)st->fc_out);
    if (!b->o.keep_dense && (double)nz < 0.3 * (double)wt->n) {
        st->fc_sparse = 1;
        st->fc_rowptr = malloc(sizeof(int32_t) * (size_t)(st->fc_out + 1));
        st->fc_col = malloc(sizeof(int32_t) * (size_t)(nz ? nz : 1));
        st->fc_val = pare_alloc_array((size_t)(nz ? nz : 1), sizeof(float), 0);
        if (!st->fc_rowptr || !st->fc_col || !st->fc_val)
            return pare_fail(PARE_ENOMEM, "out of memory");
        int k = 0;
        for (int o = 0; o < st->fc_out; o++) {
            st->fc_rowptr[o] = k;
            for (int i = 0; i < st->fc_in; i++) {
                float x = wt->data[(size_t)o * (size_t)st->fc_in + (size_t)i];
                if (x != 0.0f) {
                    st->fc_col[k] = i;
                    st->fc_val[k++] = x;
                }
            }
        }
        st->fc_rowptr[st->fc_out] = k;
        st->macs = nz;
        snprintf(st->kernel, sizeof st->kernel, "csr spmv");
    } else {
        st->fc_w = pare_alloc_array(wt->n, sizeof(float), 0);
        if (!st->fc_w)
            return pare_fail(PARE_ENOMEM, "out of memory");
        memcpy(st->fc_w, wt->data, sizeof(float) * wt->n);
        st->macs = (double)wt->n;
        snprintf(st->kernel, sizeof st->kernel, "sgemv (%s)", "cblas");
    }
    b->done[v] = 1;
    return PARE_OK;
}

/* The ops the engine runs through their own forward (PARE_STEP_OP): their
 * forwards read only the node, its inputs and its parameters. */
static int runs_as_op(const pare_graph *g, const pare_node *nd)
{
    switch (nd->op) {
    case PARE_OP_SIGMOID:
    case PARE_OP_HARDSIGMOID:
    case PARE_OP_HARDSWISH:
    case PARE_OP_LEAKYRELU:
    case PARE_OP_CLIP:
    case PARE_OP_MUL:
    case PARE_OP_SOFTMAX:
    case PARE_OP_CHANNEL_SHUFFLE:
    case PARE_OP_PAD:
    case PARE_OP_CONST:
    case PARE_OP_RESHAPE:
    case PARE_OP_TRANSPOSE:
    case PARE_OP_FAKEQUANT:
        return 1;
    case PARE_OP_MAXPOOL: /* the engine's pooling kernels have no dilation */
        return nd->a.dilation[0] > 1 || nd->a.dilation[1] > 1;
    default:
        return broadcast_add(g, nd);
    }
}

/* A step that runs the op's forward on one sample: inputs whose act has a halo
 * are copied to plain buffers first, and the output back into its act; an act
 * without a halo is plain already and is used in place. */
static pare_status lower_op(builder *b, int v)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    const pare_op_def *def = pare_op_get(nd->op);
    if (nd->n_in > 8)
        return pare_fail(PARE_EUNSUPPORTED, "layer %s: the engine runs ops of at most 8 inputs", nd->name);
    int out = act_for_node(b, v);
    pare_step *st = new_step(b, PARE_STEP_OP, v);
    if (!st)
        return pare_fail(PARE_ENOMEM, "out of memory");
    snprintf(st->kernel, sizeof st->kernel, "%s (op forward)", def->name);
    st->op_node = *nd;
    st->op_node.name = NULL;
    st->op_node.in = NULL;
    st->out = out;
    size_t floats = 0;
    for (int j = 0; j < nd->n_in; j++) {
        int a = b->act_of[nd->in[j]];
        st->in[st->n_in++] = a;
        st->op_xs[j] = g->nodes[nd->in[j]].out;
        st->op_off[j] = SIZE_MAX;
        if (b->p->acts[a].P > 0) {
            st->op_off[j] = floats;
            floats += pare_shape_size(st->op_xs[j]);
        }
    }
    st->op_out_off = SIZE_MAX;
    if (b->p->acts[out].P > 0) {
        st->op_out_off = floats;
        floats += pare_shape_size(nd->out);
    }
    if (floats) {
        st->op_buf = pare_alloc_array(floats, sizeof(float), 1);
        if (!st->op_buf)
            return pare_fail(PARE_ENOMEM, "out of memory");
    }
    /* Parameters (a const's values) are copied with their masks applied. */
    for (int k = 0; k < nd->n_param; k++) {
        const pare_param *pp = &g->params[nd->param[k]];
        st->op_w[k] = pare_alloc_array(pp->t->n ? pp->t->n : 1, sizeof(float), 0);
        if (!st->op_w[k])
            return pare_fail(PARE_ENOMEM, "out of memory");
        for (size_t i = 0; i < pp->t->n; i++)
            st->op_w[k][i] = pp->mask && !pp->mask[i] ? 0.0f : pp->t->data[i];
        b->p->weight_bytes += pp->t->n * sizeof(float);
    }
    if (def->ws_floats) {
        st->op_ws_floats = (def->ws_floats(g, nd, 1, 0) + 15) / 16 * 16;
        if (st->op_ws_floats) {
            st->op_ws = pare_alloc_array(st->op_ws_floats, sizeof(float) * (size_t)b->p->threads, 0);
            if (!st->op_ws)
                return pare_fail(PARE_ENOMEM, "out of memory");
        }
    }
    if (def->aux_bytes) {
        size_t n = def->aux_bytes(g, nd, 1);
        if (n) {
            st->op_aux = pare_alloc(n, 1);
            if (!st->op_aux)
                return pare_fail(PARE_ENOMEM, "out of memory");
        }
    }
    st->macs = def->macs ? def->macs(g, nd) : 0;
    b->done[v] = 1;
    return PARE_OK;
}

/* Steps for the ops that do not fuse. */
static pare_status lower_other(builder *b, int v)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    pare_step *st;
    int cur = v, act = 0;
    if (runs_as_op(g, nd))
        return lower_op(b, v);
    switch (nd->op) {
    case PARE_OP_FLATTEN:
    case PARE_OP_DROPOUT:
        b->act_of[v] = b->act_of[nd->in[0]];
        b->done[v] = 1;
        return PARE_OK;
    case PARE_OP_ADD:
    case PARE_OP_BATCHNORM:
        act = fuse_act(b, &cur);
        break;
    default:
        break;
    }
    pare_step_kind k;
    switch (nd->op) {
    case PARE_OP_MAXPOOL: k = PARE_STEP_MAXPOOL; break;
    case PARE_OP_AVGPOOL: k = PARE_STEP_AVGPOOL; break;
    case PARE_OP_GLOBAL_AVGPOOL: k = PARE_STEP_GAP; break;
    case PARE_OP_ADD: k = PARE_STEP_ADD; break;
    case PARE_OP_BATCHNORM: k = PARE_STEP_AFFINE; break;
    case PARE_OP_RELU:
    case PARE_OP_RELU6: k = PARE_STEP_ACT; act = nd->op == PARE_OP_RELU ? 1 : 2; break;
    case PARE_OP_CONCAT: k = PARE_STEP_CONCAT; break;
    default:
        return pare_fail(PARE_EUNSUPPORTED, "layer %s: the engine has no kernel for op %s", nd->name,
                         pare_op_get(nd->op)->name);
    }
    int out = act_for_node(b, cur);
    st = new_step(b, k, cur);
    if (!st)
        return pare_fail(PARE_ENOMEM, "out of memory");
    snprintf(st->name, sizeof st->name, "%s", nd->name);
    for (int j = 0; j < nd->n_in && j < 8; j++)
        st->in[st->n_in++] = b->act_of[nd->in[j]];
    if (nd->n_in > 8)
        return pare_fail(PARE_EUNSUPPORTED, "layer %s: the engine concatenates at most 8 inputs", nd->name);
    st->out = out;
    st->act = act;
    st->k[0] = nd->a.kernel[0];
    st->k[1] = nd->a.kernel[1];
    st->s[0] = nd->a.stride[0];
    st->s[1] = nd->a.stride[1];
    memcpy(st->pad, nd->a.pad, sizeof st->pad);
    st->ceil_mode = nd->a.ceil_mode;
    st->count_include_pad = nd->a.count_include_pad;
    snprintf(st->kernel, sizeof st->kernel, "%s", pare_op_get(nd->op)->name);
    if (k == PARE_STEP_AFFINE) {
        int C = nd->out.c;
        st->scale = pare_alloc_array((size_t)C, sizeof(float), 0);
        st->shift = pare_alloc_array((size_t)C, sizeof(float), 0);
        if (!st->scale || !st->shift)
            return pare_fail(PARE_ENOMEM, "out of memory");
        bn_view n = bn_of(g, v);
        for (int c = 0; c < C; c++) {
            float invstd = (float)(1.0 / sqrt((double)n.var[c] + n.eps));
            st->scale[c] = n.gamma[c] * invstd;
            st->shift[c] = n.beta[c] - n.mean[c] * st->scale[c];
        }
    }
    b->done[v] = 1;
    return PARE_OK;
}

/* ---- int8 ------------------------------------------------------------------ */

/* A quantized model runs in int8 where a conv or linear layer reads a
 * fakequant node (bits 1-8) and its weight carries scheme 1 or 2 qparams of 8
 * bits or fewer, zero points 0, every value exactly scale * code. Activations
 * of such layers are u8 codes in the C4 layout (kernels/qconv.h); a fakequant
 * whose only readers are int8 layers becomes the requantization of the layer
 * that produces its input (or, after a max pool, of the layer before it: the
 * pool commutes with the monotone quantizer), else a quantize step. */

static int new_qact(pare_plan *p, int C, int H, int W, int P, int fill)
{
    int id = new_act(p, C, H, W, P);
    pare_act *a = &p->acts[id];
    a->q8 = 1;
    a->fill = (uint8_t)fill;
    a->floats = SLACK_FRONT + (size_t)((C + 3) / 4) * (size_t)a->cs + (size_t)a->rs + 3 * PARE_QCONV_CHUNK + 64;
    return id;
}

static int fq_usable(const pare_node *f)
{
    return f->op == PARE_OP_FAKEQUANT && f->a.mode >= 1 && f->a.mode <= 8 && isfinite(f->a.alpha) && f->a.alpha > 0.0f;
}

/* The int8 codes of a conv or linear weight ([O][K]) and its scale per output
 * channel; 0 when it does not qualify (or its accumulators could overflow). */
static int weight_codes(const pare_param *wp, int O, size_t K, int8_t *codes, float *sw)
{
    const pare_qparams *q = &wp->q;
    if (q->bits < 1 || q->bits > 8 || (q->scheme != 1 && q->scheme != 2) || !q->scale || !q->zero_point)
        return 0;
    if (q->scheme == 1 ? q->n != 1 : (q->n != O || q->axis != 0))
        return 0;
    if (wp->t->n != (size_t)O * K)
        return 0;
    float wmin = (float)pare_qparams_code_min(q->bits), wmax = (float)pare_qparams_code_max(q->bits);
    for (int o = 0; o < O; o++) {
        int k = q->scheme == 1 ? 0 : o;
        float s = q->scale[k];
        if (q->zero_point[k] != 0 || !isfinite(s) || !(s > 0.0f))
            return 0;
        sw[o] = s;
        int64_t mag = 0;
        for (size_t i = 0; i < K; i++) {
            float w = wp->t->data[(size_t)o * K + i], c = rintf(w / s);
            if (!(c >= wmin && c <= wmax) || s * c != w)
                return 0;
            if (codes)
                codes[(size_t)o * K + i] = (int8_t)c;
            mag += (int64_t)fabsf(c);
        }
        /* |sum code * (x - zp)| and the partial sums stay below 2^31 */
        if (mag * 510 >= INT32_MAX)
            return 0;
    }
    return 1;
}

static int kept_float(const builder *b, const char *name)
{
    for (int i = 0; b->keep_float && b->keep_float[i]; i++)
        if (!strcmp(b->keep_float[i], name))
            return 1;
    return 0;
}

static int int8_eligible(const builder *b, int v)
{
    const pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    if (b->o.float32 || (nd->op != PARE_OP_CONV2D && nd->op != PARE_OP_LINEAR) || nd->n_in < 1)
        return 0;
    const pare_node *f = &g->nodes[nd->in[0]];
    if (!fq_usable(f) || kept_float(b, nd->name))
        return 0;
    /* a linear layer reads the fakequant's codes as one flat vector */
    if (nd->op == PARE_OP_LINEAR && (f->out.h != 1 || f->out.w != 1))
        return 0;
    int wi = pare_graph_node_param(g, v, PARE_ROLE_WEIGHT);
    if (wi < 0)
        return 0;
    const pare_param *wp = &g->params[wi];
    int O = wp->t->dims[0];
    size_t K = O > 0 ? wp->t->n / (size_t)O : 0;
    float *sw = malloc(sizeof(float) * (size_t)(O > 0 ? O : 1));
    int ok = sw && O > 0 && weight_codes(wp, O, K, NULL, sw);
    free(sw);
    return ok;
}

/* Which layers run in int8, and who reads each fakequant. */
static pare_status plan_int8(builder *b)
{
    int n = b->g->n_nodes;
    b->q8 = calloc((size_t)n, sizeof(int));
    b->qact = malloc(sizeof(int) * (size_t)n);
    b->fq_int8 = calloc((size_t)n, sizeof(int));
    b->fq_other = calloc((size_t)n, sizeof(int));
    if (!b->q8 || !b->qact || !b->fq_int8 || !b->fq_other)
        return pare_fail(PARE_ENOMEM, "out of memory");
    for (int v = 0; v < n; v++) {
        b->qact[v] = -1;
        if (b->needed[v] && int8_eligible(b, v)) {
            b->q8[v] = 1;
            b->fq_int8[b->g->nodes[v].in[0]]++;
        }
    }
    for (int v = 0; v < n; v++)
        b->fq_other[v] = b->users[v] - b->fq_int8[v];
    return PARE_OK;
}

/* A fakequant: the u8 act its int8 readers need (a quantize step, unless the
 * producer already writes it) and the float value for its other readers. */
static pare_status lower_fakequant(builder *b, int v)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    if (b->o.float32 == 2) {
        /* the float baseline: the quantizer is not there */
        b->act_of[v] = b->act_of[nd->in[0]];
        b->done[v] = 1;
        return PARE_OK;
    }
    if (!fq_usable(nd))
        return lower_op(b, v);
    if (b->fq_int8[v] > 0 && b->qact[v] < 0) {
        int src = b->act_of[nd->in[0]];
        const pare_act *sa = &b->p->acts[src];
        if (!(sa->C == nd->out.c && sa->H == nd->out.h && sa->W == nd->out.w) &&
            !(nd->out.h == 1 && nd->out.w == 1 && (size_t)sa->C * (size_t)sa->H * (size_t)sa->W == (size_t)nd->out.c))
            return pare_fail(PARE_EUNSUPPORTED, "layer %s: the engine cannot quantize a %dx%dx%d value to %dx%dx%d",
                             nd->name, sa->C, sa->H, sa->W, nd->out.c, nd->out.h, nd->out.w);
        int id = new_qact(b->p, nd->out.c, nd->out.h, nd->out.w, halo_for(g, v, b->needed), (int)nd->a.beta);
        pare_step *st = new_step(b, PARE_STEP_QUANT, v);
        if (!st)
            return pare_fail(PARE_ENOMEM, "out of memory");
        snprintf(st->kernel, sizeof st->kernel, "quantize to u8");
        st->in[0] = src;
        st->n_in = 1;
        st->out = id;
        st->q_scale = nd->a.alpha;
        st->q_zpf = nd->a.beta;
        st->q_qmax = (float)((1 << nd->a.mode) - 1);
        b->qact[v] = id;
    }
    if (b->fq_other[v] > 0) {
        int src = b->act_of[nd->in[0]];
        const pare_act *sa = &b->p->acts[src];
        if (sa->q8 || sa->C != nd->out.c || sa->H != nd->out.h || sa->W != nd->out.w)
            return lower_op(b, v);
        /* the op's own arithmetic, a row at a time in place of its generic step */
        int out = act_for_node(b, v);
        pare_step *st = new_step(b, PARE_STEP_FQ, v);
        if (!st)
            return pare_fail(PARE_ENOMEM, "out of memory");
        snprintf(st->kernel, sizeof st->kernel, "fakequant (float)");
        st->in[0] = src;
        st->n_in = 1;
        st->out = out;
        st->q_scale = nd->a.alpha;
        st->q_zpf = nd->a.beta;
        st->q_qmax = (float)((1 << nd->a.mode) - 1);
    }
    b->done[v] = 1;
    return PARE_OK;
}

/* The offset (dwords) of channel quad k at tap (i, j) in the buffer the columns index. */
static long qcol_off(const conv_geo *q, int k, int i, int j) { return plane_off(q, q->Cq, k, i, j); }


/* Starts a packed int8 conv in arena a: its ng groups, and the requantization
 * scale and shift per filter (8 spare: the widest tile reads past O). */
static pare_qconv_layer *q_layer_begin(pare_step *st, arena *a, const conv_aux *ca, int ng)
{
    int O = ca->geo.O;
    pare_qconv_layer *L = &st->qconv;
    L->mem = a->p;
    L->groups = take(a, sizeof(pare_qconv_group) * (size_t)ng);
    float *sc = take(a, sizeof(float) * (size_t)(O + 8)), *sh = take(a, sizeof(float) * (size_t)(O + 8));
    memcpy(sc, ca->qs, sizeof(float) * (size_t)O);
    memcpy(sh, ca->qb, sizeof(float) * (size_t)O);
    L->scale = sc;
    L->shift = sh;
    L->bytes = 2 * sizeof(float) * (size_t)O;
    return L;
}

/* Ends group gr (filters o0 .. o0 + r, rows padded to R) with its nc columns:
 * its accumulators start at the filters' zero-point corrections. */
static void q_group_end(pare_qconv_layer *L, pare_qconv_group *gr, const conv_aux *ca, int o0, int r, int R,
                        int nc, const int32_t *off, const int8_t *gw, int32_t *gb)
{
    for (int j = 0; j < 8; j++)
        gb[j] = j < r ? ca->zb[o0 + j] : 0;
    gr->o0 = o0;
    gr->r = r;
    gr->rp = R;
    gr->ncols = nc;
    gr->off = off;
    gr->w = gw;
    gr->bias = gb;
    L->bytes += (size_t)nc * (sizeof(int32_t) + 4 * (size_t)R) + sizeof(int32_t) * (size_t)R;
}

/* Packs an int8 conv: groups of R filters (aligned to R, so a group's filters
 * share a quad), columns every (quad, tap) its filters read (dense) or those
 * where one of them has a nonzero code. A weight dword holds a filter's codes
 * of the quad's 4 channels at the tap, zero for channels outside its conv
 * group: depthwise and grouped convs need no kernel of their own. */
static int qpack(pare_step *st, const conv_aux *ca, int R, int sparse_cols)
{
    const conv_geo *q = &ca->geo;
    int O = q->O, kk = q->kh * q->kw, K = q->Cg * kk, og = q->O / q->G;
    int ng = (O + R - 1) / R, maxc = q->Cq * kk;
    size_t need = sizeof(pare_qconv_group) * (size_t)ng +
                  (size_t)ng * ((size_t)maxc * (sizeof(int32_t) + 4 * (size_t)R) + sizeof(int32_t) * 8) +
                  2 * sizeof(float) * (size_t)(O + 8) + 64 * (size_t)(3 * ng + 8);
    pare_free(st->qconv.mem);
    memset(&st->qconv, 0, sizeof st->qconv);
    arena a = {pare_alloc(need, 1), 0, need};
    if (!a.p)
        return -1;
    pare_qconv_layer *L = q_layer_begin(st, &a, ca, ng);
    for (int gi = 0; gi < ng; gi++) {
        int o0 = gi * R, r = O - o0 < R ? O - o0 : R;
        pare_qconv_group *gr = &L->groups[gi];
        int32_t *off = take(&a, sizeof(int32_t) * (size_t)maxc);
        int8_t *gw = take(&a, 4 * (size_t)R * (size_t)maxc);
        int32_t *gb = take(&a, sizeof(int32_t) * 8);
        int nc = 0;
        for (int k = 0; k < q->Cq; k++)
            for (int t = 0; t < kk; t++) {
                int8_t dw[PARE_QCONV_MAX_R][4];
                memset(dw, 0, sizeof dw);
                int any = 0;
                for (int j = 0; j < r; j++) {
                    int o = o0 + j, gbase = (o / og) * q->Cg;
                    for (int bb = 0; bb < 4; bb++) {
                        int c = 4 * k + bb;
                        if (c >= q->C || c < gbase || c >= gbase + q->Cg)
                            continue;
                        int8_t code = ca->codes[(size_t)o * (size_t)K + (size_t)(c - gbase) * (size_t)kk + (size_t)t];
                        dw[j][bb] = code;
                        any |= sparse_cols ? code != 0 : 1;
                    }
                }
                if (!any)
                    continue;
                off[nc] = (int32_t)qcol_off(q, k, t / q->kw, t % q->kw);
                memcpy(gw + (size_t)nc * 4 * (size_t)R, dw, 4 * (size_t)R);
                nc++;
            }
        q_group_end(L, gr, ca, o0, r, R, nc, off, gw, gb);
    }
    L->n_groups = ng;
    return 1;
}

/* The 4 taps (bits of 0..8) a 3x3 kernel of filter o on channel c runs on:
 * its nonzero taps, completed as pack_pattern does (the centre, then the
 * lowest free taps); 0 for a zero kernel, -1 for more than 4 taps. */
static int kernel_taps(const int8_t *codes, int K, int o, int c)
{
    unsigned m = 0;
    for (int t = 0; t < 9; t++)
        if (codes[(size_t)o * (size_t)K + (size_t)c * 9 + (size_t)t])
            m |= 1u << t;
    if (!m)
        return 0;
    if (popcount9(m) > 4)
        return -1;
    for (int t = 4; popcount9(m) < 4; t = (t + 1) % 9)
        m |= 1u << t;
    return (int)m;
}

/* Packs an int8 conv over gathered columns (qconv.h): mode 1, the GEMM
 * k-quads (4 consecutive columns c * kh*kw + t of pare's GEMM view, so a
 * block-sparse layer's 4-wide blocks are whole dwords); mode 2, PatDNN
 * kernels (a channel's 4 pattern taps). The tile builds only the columns
 * some filter uses; groups of R filters read the ones they need. 0 when the
 * layer does not fit (grouped, row by row, or not a pattern layer). */
static int qpack_gather(pare_step *st, const conv_aux *ca, int R, int mode, int threads)
{
    const conv_geo *q = &ca->geo;
    int O = q->O, kk = q->kh * q->kw, K = q->Cg * kk, C = q->C;
    if (q->G != 1 || st->rows_mode || kk == 1 || (mode == 2 && (q->kh != 3 || q->kw != 3)))
        return 0;
    /* units: k-quads, or (channel, pattern) pairs */
    int n_units, *pat_id = NULL, pats[126], npat = 0;
    if (mode == 1) {
        n_units = (K + 3) / 4;
    } else {
        pat_id = malloc(sizeof(int) * 512);
        if (!pat_id)
            return -1;
        for (int m = 0; m < 512; m++)
            pat_id[m] = -1;
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++) {
                int m = kernel_taps(ca->codes, K, o, c);
                if (m < 0) {
                    free(pat_id);
                    return 0;
                }
                if (m && pat_id[m] < 0) {
                    pat_id[m] = npat;
                    pats[npat++] = m;
                }
            }
        n_units = C * (npat ? npat : 1);
    }
    /* unit u: its 4 sources, and whether filter o uses it */
    int32_t *uoff = malloc(sizeof(int32_t) * 4 * (size_t)n_units);
    uint8_t *usel = malloc(4 * (size_t)n_units), *used = calloc((size_t)n_units, 1);
    int *gidx = malloc(sizeof(int) * (size_t)n_units);
    int8_t *uw = malloc(4 * (size_t)n_units * (size_t)O); /* filter o's dword of unit u */
    if (!uoff || !usel || !used || !gidx || !uw) {
        free(pat_id);
        free(uoff);
        free(usel);
        free(used);
        free(gidx);
        free(uw);
        return -1;
    }
    memset(uw, 0, 4 * (size_t)n_units * (size_t)O);
    for (int u = 0; u < n_units; u++)
        for (int bb = 0; bb < 4; bb++) {
            int c, t;
            if (mode == 1) {
                int k = 4 * u + bb;
                c = k < K ? k / kk : 0;
                t = k < K ? k % kk : 0;
            } else {
                c = u / npat;
                int m = pats[u % npat], seen = 0;
                t = 0;
                for (int bit = 0; bit < 9; bit++)
                    if (m >> bit & 1 && seen++ == bb)
                        t = bit;
            }
            uoff[4 * u + bb] = (int32_t)qcol_off(q, c / 4, t / q->kw, t % q->kw);
            usel[4 * u + bb] = (uint8_t)(c % 4);
        }
    for (int o = 0; o < O; o++) {
        const int8_t *co = ca->codes + (size_t)o * (size_t)K;
        if (mode == 1) {
            for (int k = 0; k < K; k++)
                if (co[k]) {
                    uw[((size_t)(k / 4) * (size_t)O + (size_t)o) * 4 + (size_t)(k % 4)] = co[k];
                    used[k / 4] = 1;
                }
        } else {
            for (int c = 0; c < C; c++) {
                int m = kernel_taps(ca->codes, K, o, c);
                if (!m)
                    continue;
                int u = c * npat + pat_id[m], seen = 0;
                for (int bit = 0; bit < 9; bit++)
                    if (m >> bit & 1)
                        uw[((size_t)u * (size_t)O + (size_t)o) * 4 + (size_t)seen++] = co[c * 9 + bit];
                used[u] = 1;
            }
        }
    }
    int n_gather = 0;
    for (int u = 0; u < n_units; u++)
        gidx[u] = used[u] ? n_gather++ : -1;
    int ng = (O + R - 1) / R;
    size_t ngc = (size_t)(n_gather ? n_gather : 1);
    size_t need = sizeof(pare_qconv_group) * (size_t)ng +
                  (size_t)ng * (ngc * (sizeof(int32_t) + 4 * (size_t)R) + sizeof(int32_t) * 8) +
                  2 * sizeof(float) * (size_t)(O + 8) + ngc * 20 + 64 * (size_t)(3 * ng + 12);
    pare_free(st->qconv.mem);
    memset(&st->qconv, 0, sizeof st->qconv);
    pare_free(st->qws);
    st->qws_dwords = (size_t)n_gather * PARE_QCONV_TILE;
    st->qws = pare_alloc_array(st->qws_dwords * (size_t)threads + 16, sizeof(uint32_t), 1);
    arena a = {pare_alloc(need, 1), 0, need};
    int ok = a.p && st->qws ? 1 : -1;
    if (ok > 0) {
        pare_qconv_layer *L = q_layer_begin(st, &a, ca, ng);
        int32_t *goff = take(&a, sizeof(int32_t) * 4 * (size_t)(n_gather ? n_gather : 1));
        uint8_t *gsel = take(&a, 4 * (size_t)(n_gather ? n_gather : 1));
        for (int u = 0; u < n_units; u++)
            if (gidx[u] >= 0) {
                memcpy(goff + 4 * gidx[u], uoff + 4 * u, sizeof(int32_t) * 4);
                memcpy(gsel + 4 * gidx[u], usel + 4 * u, 4);
            }
        L->n_gather = n_gather;
        L->g_off = goff;
        L->g_sel = gsel;
        L->bytes += (size_t)n_gather * 8;
        for (int gi = 0; gi < ng; gi++) {
            int o0 = gi * R, r = O - o0 < R ? O - o0 : R;
            pare_qconv_group *gr = &L->groups[gi];
            int32_t *off = take(&a, sizeof(int32_t) * (size_t)(n_gather ? n_gather : 1));
            int8_t *gw = take(&a, 4 * (size_t)R * (size_t)(n_gather ? n_gather : 1));
            int32_t *gb = take(&a, sizeof(int32_t) * 8);
            int nc = 0;
            for (int u = 0; u < n_units; u++) {
                if (gidx[u] < 0)
                    continue;
                int any = 0;
                for (int j = 0; j < r && !any; j++)
                    any = memcmp(uw + ((size_t)u * (size_t)O + (size_t)(o0 + j)) * 4, "\0\0\0\0", 4) != 0;
                if (!any)
                    continue;
                off[nc] = gidx[u] * PARE_QCONV_TILE;
                memset(gw + (size_t)nc * 4 * (size_t)R, 0, 4 * (size_t)R);
                memcpy(gw + (size_t)nc * 4 * (size_t)R, uw + ((size_t)u * (size_t)O + (size_t)o0) * 4, 4 * (size_t)r);
                nc++;
            }
            q_group_end(L, gr, ca, o0, r, R, nc, off, gw, gb);
        }
        L->n_groups = ng;
    } else {
        pare_free(a.p);
    }
    free(pat_id);
    free(uoff);
    free(usel);
    free(used);
    free(gidx);
    free(uw);
    return ok;
}

static int qpack_kind(pare_step *st, const conv_aux *ca, int k, int threads)
{
    int ok;
    if (ca->cand_gather[k]) {
        ok = qpack_gather(st, ca, ca->cand_rows[k], ca->cand_gather[k], threads);
    } else {
        pare_free(st->qws);
        st->qws = NULL;
        st->qws_dwords = 0;
        ok = qpack(st, ca, ca->cand_rows[k], ca->cand[k] != PARE_CK_DENSE);
    }
    if (ok > 0)
        st->ck = ca->cand[k];
    return ok;
}

/* int8 candidates: (kind, filters per group, gathered), the layer's
 * structure first, dense last (it always fits). A block-sparse layer with
 * taps first tries its blocks as gathered k-quads (whole dwords), a pattern
 * layer its kernels' taps gathered. */
static int q_candidates(const pare_param *wp, double density, int kk, int keep_dense, int tune, pare_conv_kind *out,
                        int *rows, int *gather)
{
    int n = 0;
    const char *s = wp->scheme;
    if (!keep_dense && density < 0.75) {
        int a, bb, first = 1;
        char c;
        if (s && (sscanf(s, "block:%dx%d", &a, &bb) == 2 || sscanf(s, "punched:%dx%d", &a, &bb) == 2) && a > 1) {
            first = a >= 8 ? 8 : a >= 4 ? 4 : 2;
            if (kk > 1) {
                out[n] = PARE_CK_BLOCK;
                gather[n] = 1;
                rows[n++] = first;
            }
        } else if (s && !strncmp(s, "pattern", 7) && kk == 9 && tune) {
            /* gathering every (channel, pattern) column of a tile costs about what
             * the few filters per column save on the first layers of a network:
             * measured, never the default */
            for (int r = 1; r <= 4; r *= 4) {
                out[n] = PARE_CK_PATTERN;
                gather[n] = 2;
                rows[n++] = r;
            }
        } else if (s && sscanf(s, "%d:%d%c", &a, &bb, &c) == 2) {
            first = 4; /* N:M over channels: a quad holds the group's few kept codes */
        }
        out[n] = first == 1 ? PARE_CK_SPARSE : PARE_CK_BLOCK;
        gather[n] = 0;
        rows[n++] = first;
        for (int r = 1; tune && r <= 8 && n < PARE_CK__COUNT + 1; r *= 2)
            if (r != first) {
                out[n] = r == 1 ? PARE_CK_SPARSE : PARE_CK_BLOCK;
                gather[n] = 0;
                rows[n++] = r;
            }
    }
    out[n] = PARE_CK_DENSE;
    gather[n] = 0;
    rows[n++] = 4;
    return n;
}

/* An int8 conv step: u8 codes in; out u8 codes when its only reader is a
 * fakequant read by int8 layers only (requantization fused, ReLU/ReLU6 as the
 * clamp bounds), or after a max pool so read, else floats (dequantized, with
 * the residual add and activation fused as in the float engine). Batch norm
 * folds into the per-channel requantization scale and shift. */
static pare_status lower_qconv(builder *b, int v, aux_list *aux)
{
    pare_graph *g = b->g;
    pare_plan *p = b->p;
    const pare_node *nd = &g->nodes[v];
    const pare_attrs *at = &nd->a;
    int F = nd->in[0];
    const pare_node *fq = &g->nodes[F];
    pare_shape in = fq->out;
    int in_act = b->qact[F];
    if (in_act < 0)
        return pare_fail(PARE_EINVAL, "layer %s: its int8 input was not planned", nd->name);
    conv_geo q = geo_of(at, in);
    int K = q.Cg * q.kh * q.kw;
    const pare_param *wp = &g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)];
    int bp = pare_graph_node_param(g, v, PARE_ROLE_BIAS);
    conv_aux ca;
    memset(&ca, 0, sizeof ca);
    ca.q = 1;
    ca.codes = pare_alloc((size_t)q.O * (size_t)K, 0);
    ca.qs = pare_alloc_array((size_t)q.O, sizeof(float), 1);
    ca.qb = pare_alloc_array((size_t)q.O, sizeof(float), 1);
    ca.zb = pare_alloc_array((size_t)q.O, sizeof(int32_t), 0);
    float *sw = pare_alloc_array((size_t)q.O, sizeof(float), 1);
    double *M = calloc((size_t)q.O, sizeof(double)), *B = calloc((size_t)q.O, sizeof(double));
    pare_status s = PARE_OK;
    if (!ca.codes || !ca.qs || !ca.qb || !ca.zb || !sw || !M || !B) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto fail;
    }
    if (!weight_codes(wp, q.O, (size_t)K, ca.codes, sw)) {
        s = pare_fail(PARE_EINVAL, "layer %s: its weights are not on their quantization grid", nd->name);
        goto fail;
    }
    float s_in = fq->a.alpha;
    ca.zp_in = (int32_t)fq->a.beta;
    for (int o = 0; o < q.O; o++) {
        M[o] = (double)s_in * (double)sw[o];
        B[o] = bp >= 0 ? (double)g->params[bp].t->data[o] : 0.0;
    }
    int cur = v, bn = sole_user(b, v, PARE_OP_BATCHNORM);
    if (bn >= 0) {
        bn_view n = bn_of(g, bn);
        for (int o = 0; o < q.O; o++) {
            double a = (double)n.gamma[o] / sqrt((double)n.var[o] + n.eps);
            M[o] *= a;
            B[o] = B[o] * a + ((double)n.beta[o] - (double)n.mean[o] * a);
        }
        b->done[bn] = 1;
        cur = bn;
    }
    int res = fuse_residual(b, &cur, 1);
    int act = fuse_act(b, &cur);
    /* where the output goes */
    int U = b->users[cur] == 1 ? b->user[cur] : -1, Fo = -1, pool = -1;
    if (U >= 0 && fq_usable(&g->nodes[U]) && b->fq_other[U] == 0 && b->fq_int8[U] > 0 && !b->done[U])
        Fo = U;
    else if (U >= 0 && g->nodes[U].op == PARE_OP_MAXPOOL && g->nodes[U].a.dilation[0] <= 1 &&
             g->nodes[U].a.dilation[1] <= 1 && b->users[U] == 1 && b->user[U] >= 0) {
        int F2 = b->user[U];
        if (fq_usable(&g->nodes[F2]) && b->fq_other[F2] == 0 && b->fq_int8[F2] > 0 && !b->done[F2]) {
            Fo = F2;
            pool = U;
        }
    }
    int rd_act = in_act;
    pare_shape os = nd->out;
    if (q.sh > 1 || q.sw > 1) {
        int need = phase_halo(&q, in, os);
        rd_act = phase_act(b, in_act, v, q.sh, q.sw, need, 1);
        if (rd_act < 0) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto fail;
        }
        for (int k = 0; k < q.sh * q.sw; k++)
            q.phase_slot[k] = k;
        q.nphase = q.sh * q.sw;
    }
    const pare_act *ia = &p->acts[rd_act];
    q.cs = ia->cs;
    q.rs = ia->rs;
    int out_act, pool_need = 0;
    const pare_node *pn = pool >= 0 ? &g->nodes[pool] : NULL;
    /* an output as wide as the input (phase planes of a strided conv) takes the
     * input's halo, so both share their row stride and positions run over
     * whole planes */
    int P_in = ia->H == os.h && ia->W == os.w ? ia->P : 0;
    if (pn) {
        /* the pool reads its windows through a halo of code 0 (below every code) */
        pare_shape ps = pn->out;
        int pads[4] = {pn->a.pad[0], pn->a.pad[1],
                       (ps.h - 1) * pn->a.stride[0] - pn->a.pad[0] + pn->a.kernel[0] - os.h,
                       (ps.w - 1) * pn->a.stride[1] - pn->a.pad[1] + pn->a.kernel[1] - os.w};
        for (int k = 0; k < 4; k++)
            if (pads[k] > pool_need)
                pool_need = pads[k];
        if (pool_need < 1)
            pool_need = 1;
        out_act = new_qact(p, os.c, os.h, os.w, pool_need > P_in ? pool_need : P_in, 0);
    } else if (Fo >= 0) {
        int P = halo_for(g, Fo, b->needed);
        out_act = new_qact(p, os.c, os.h, os.w, P > P_in ? P : P_in, (int)g->nodes[Fo].a.beta);
        b->qact[Fo] = out_act;
        b->done[Fo] = 1;
    } else {
        if (b->act_of[cur] < 0) {
            int P = halo_for(g, cur, b->needed);
            b->act_of[cur] = new_act(p, os.c, os.h, os.w, P > P_in ? P : P_in);
        }
        out_act = b->act_of[cur];
    }
    pare_step *st = new_step(b, PARE_STEP_QCONV, cur);
    if (!st) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(st->name, sizeof st->name, "%s", nd->name);
    st->in[0] = rd_act;
    st->n_in = 1;
    st->out = out_act;
    st->res = res;
    st->act = act;
    if (Fo >= 0) {
        const pare_node *fo = &g->nodes[Fo];
        float so = fo->a.alpha, zo = fo->a.beta, qmax = (float)((1 << fo->a.mode) - 1);
        float lo = 0.0f, hi = qmax;
        if (act >= 1)
            lo = zo; /* relu: y >= 0, so code >= zp */
        if (act == 2) {
            float six = rintf(6.0f / so) + zo;
            hi = six < hi ? six : hi;
        }
        st->q_out8 = 1;
        st->q_zp = (int32_t)zo;
        st->q_lo = lo - zo;
        st->q_hi = hi - zo;
        st->q_res_scale = (float)(1.0 / (double)so);
        for (int o = 0; o < q.O; o++) {
            ca.qs[o] = (float)(M[o] / (double)so);
            ca.qb[o] = (float)(B[o] / (double)so);
        }
    } else {
        for (int o = 0; o < q.O; o++) {
            ca.qs[o] = (float)M[o];
            ca.qb[o] = (float)B[o];
        }
    }
    const pare_act *oa = &p->acts[out_act];
    st->wide = ia->rs == oa->rs && ia->P == oa->P && (res < 0 || p->acts[res].P == oa->P);
    st->rows_mode = !st->wide;
    st->dense_macs = (double)q.O * os.h * os.w * K;
    int step_index = p->n_steps - 1;
    if (pn) {
        /* the pool, then its fakequant's act */
        int pooled = new_qact(p, pn->out.c, pn->out.h, pn->out.w, halo_for(g, Fo, b->needed), (int)g->nodes[Fo].a.beta);
        pare_step *ps = new_step(b, PARE_STEP_QMAXPOOL, pool);
        if (!ps) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto fail;
        }
        snprintf(ps->kernel, sizeof ps->kernel, "max pool (u8)");
        ps->in[0] = out_act;
        ps->n_in = 1;
        ps->out = pooled;
        ps->k[0] = pn->a.kernel[0];
        ps->k[1] = pn->a.kernel[1];
        ps->s[0] = pn->a.stride[0];
        ps->s[1] = pn->a.stride[1];
        memcpy(ps->pad, pn->a.pad, sizeof ps->pad);
        b->qact[Fo] = pooled;
        b->done[pool] = 1;
        b->done[Fo] = 1;
    }
    int nz = 0;
    for (int o = 0; o < q.O; o++) {
        int64_t sum = 0;
        for (int i = 0; i < K; i++) {
            int8_t c = ca.codes[(size_t)o * (size_t)K + (size_t)i];
            sum += c;
            nz += c != 0;
        }
        ca.zb[o] = (int32_t)(-(int64_t)ca.zp_in * sum);
    }
    double density = (double)nz / ((double)q.O * K);
    ca.geo = q;
    ca.n_cand = q_candidates(wp, density, q.kh * q.kw, b->o.keep_dense, b->o.tune || b->qforce_gather >= 0, ca.cand,
                             ca.cand_rows, ca.cand_gather);
    snprintf(ca.key, sizeof ca.key, "q1|%s|%s|t%d|%dx%dx%d->%dx%dx%d|k%dx%d|s%dx%d|g%d|nz%d|%s", pare_isa(),
             pare_qconv()->name_conv, p->threads, in.c, in.h, in.w, os.c, os.h, os.w, q.kh, q.kw, q.sh, q.sw, q.G, nz,
             wp->scheme ? wp->scheme : "dense");
    ca.step = step_index;
    snprintf(p->steps[step_index].qkey, sizeof p->steps[step_index].qkey, "d%s", ca.key);
    if (aux->n == aux->cap) {
        int c = aux->cap ? aux->cap * 2 : 32;
        conv_aux *na = realloc(aux->a, sizeof *na * (size_t)c);
        if (!na) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto fail;
        }
        aux->a = na;
        aux->cap = c;
    }
    aux->a[aux->n++] = ca;
    p->int8_layers++;
    b->done[v] = 1;
    pare_free(sw);
    free(M);
    free(B);
    return PARE_OK;
fail:
    pare_free(ca.codes);
    pare_free(ca.qs);
    pare_free(ca.qb);
    pare_free(ca.zb);
    pare_free(sw);
    free(M);
    free(B);
    return s;
}

/* An int8 linear layer: the fakequant's codes as one u8 vector in, floats out
 * (its activation fused); weights 16 outputs x 4 inputs a block (qconv.h). */
static pare_status lower_qfc(builder *b, int v)
{
    pare_graph *g = b->g;
    const pare_node *nd = &g->nodes[v];
    const pare_node *fq = &g->nodes[nd->in[0]];
    int in_act = b->qact[nd->in[0]];
    if (in_act < 0)
        return pare_fail(PARE_EINVAL, "layer %s: its int8 input was not planned", nd->name);
    int cur = v, act = fuse_act(b, &cur);
    int out = act_for_node(b, cur);
    pare_step *st = new_step(b, PARE_STEP_QFC, cur);
    if (!st)
        return pare_fail(PARE_ENOMEM, "out of memory");
    snprintf(st->name, sizeof st->name, "%s", nd->name);
    st->in[0] = in_act;
    st->n_in = 1;
    st->out = out;
    st->act = act;
    const pare_param *wp = &g->params[pare_graph_node_param(g, v, PARE_ROLE_WEIGHT)];
    int bp = pare_graph_node_param(g, v, PARE_ROLE_BIAS);
    int O = wp->t->dims[0], Kin = wp->t->dims[1], in4 = (Kin + 3) / 4, blocks = (O + 15) / 16;
    st->fc_out = O;
    st->fc_in = Kin;
    st->dense_macs = (double)O * Kin;
    st->macs = st->dense_macs;
    size_t wbytes = (size_t)blocks * (size_t)in4 * 64;
    size_t need = wbytes + (size_t)blocks * 16 * (sizeof(int32_t) + 2 * sizeof(float)) + 4 * 64;
    arena a = {pare_alloc(need, 1), 0, need};
    int8_t *codes = pare_alloc((size_t)O * (size_t)Kin, 0);
    float *sw = pare_alloc_array((size_t)O, sizeof(float), 0);
    if (!a.p || !codes || !sw) {
        pare_free(a.p);
        pare_free(codes);
        pare_free(sw);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    if (!weight_codes(wp, O, (size_t)Kin, codes, sw)) {
        pare_free(a.p);
        pare_free(codes);
        pare_free(sw);
        return pare_fail(PARE_EINVAL, "layer %s: its weights are not on their quantization grid", nd->name);
    }
    st->qmem = a.p;
    int8_t *w = take(&a, wbytes);
    int32_t *bias = take(&a, sizeof(int32_t) * (size_t)blocks * 16);
    float *sc = take(&a, sizeof(float) * (size_t)blocks * 16), *sh = take(&a, sizeof(float) * (size_t)blocks * 16);
    float s_in = fq->a.alpha;
    int32_t zp = (int32_t)fq->a.beta;
    for (int o = 0; o < O; o++) {
        int blk = o / 16, j = o % 16;
        int64_t sum = 0;
        for (int i = 0; i < Kin; i++) {
            int8_t c = codes[(size_t)o * (size_t)Kin + (size_t)i];
            w[(((size_t)blk * (size_t)in4 + (size_t)(i / 4)) * 16 + (size_t)j) * 4 + (size_t)(i % 4)] = c;
            sum += c;
        }
        bias[o] = (int32_t)(-(int64_t)zp * sum);
        sc[o] = (float)((double)s_in * (double)sw[o]);
        sh[o] = bp >= 0 ? g->params[bp].t->data[o] : 0.0f;
    }
    st->qfc.in4 = in4;
    st->qfc.out = O;
    st->qfc.w = w;
    st->qfc.bias = bias;
    st->qfc.scale = sc;
    st->qfc.shift = sh;
    b->p->weight_bytes += wbytes + (size_t)O * 12;
    snprintf(st->kernel, sizeof st->kernel, "%s int8", pare_qconv()->name_gemv);
    int nzw = 0;
    for (size_t i = 0; i < (size_t)O * (size_t)Kin; i++)
        nzw += codes[i] != 0;
    snprintf(st->qkey, sizeof st->qkey, "dqfc|%s|%s|t%d|%d->%d|nz%d", pare_isa(), pare_qconv()->name_gemv,
             b->p->threads, Kin, O, nzw);
    b->p->int8_layers++;
    pare_free(codes);
    pare_free(sw);
    b->done[v] = 1;
    return PARE_OK;
}

/* ---- the tuning cache ----------------------------------------------------- */

static void mkdir_p_one(const char *dir) { mkdir(dir, 0755); }

static void cache_put(tune_cache *c, const char *key, int kind)
{
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        char **k = realloc(c->keys, sizeof *k * (size_t)cap);
        if (!k)
            return;
        c->keys = k;
        int *kd = realloc(c->kinds, sizeof *kd * (size_t)cap);
        if (!kd)
            return;
        c->kinds = kd;
        c->cap = cap;
    }
    c->keys[c->n] = pare_strdup(key);
    c->kinds[c->n++] = kind;
    c->dirty = 1;
}

static void cache_load(tune_cache *c)
{
    const char *env = getenv("PARE_TUNE_CACHE");
    char path[1024];
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return;
        snprintf(path, sizeof path, "%s/.cache/pare/tune.txt", home);
    }
    c->path = pare_strdup(path);
    FILE *f = c->path ? fopen(c->path, "r") : NULL;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char key[400];
        int kind;
        if (sscanf(line, "%399s %d", key, &kind) != 2 || kind < 0 || kind >= PARE_CK__COUNT + 2)
            continue;
        cache_put(c, key, kind);
    }
    fclose(f);
    c->dirty = 0; /* what was read needs no writing back */
}

static int cache_get(const tune_cache *c, const char *key)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (c->keys[i] && !strcmp(c->keys[i], key))
            return c->kinds[i];
    return -1;
}

/* Best effort: a cache that cannot be written only costs a re-measurement. */
static void cache_save_free(tune_cache *c)
{
    if (c->dirty && c->path) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", c->path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            char *p2 = strrchr(dir, '/');
            if (p2) { /* ~/.cache, then ~/.cache/pare */
                *p2 = 0;
                mkdir_p_one(dir);
                *p2 = '/';
            }
            mkdir_p_one(dir);
        }
        size_t len = 0;
        for (int i = 0; i < c->n; i++)
            len += strlen(c->keys[i] ? c->keys[i] : "") + 8;
        char *buf = malloc(len + 1);
        if (buf) {
            size_t at = 0;
            for (int i = 0; i < c->n; i++)
                if (c->keys[i])
                    at += (size_t)sprintf(buf + at, "%s %d\n", c->keys[i], c->kinds[i]);
            pare_write_file_atomic(c->path, buf, at);
            free(buf);
        }
        pare_error_clear();
    }
    for (int i = 0; i < c->n; i++)
        free(c->keys[i]);
    free(c->keys);
    free(c->kinds);
    free(c->path);
    memset(c, 0, sizeof *c);
}

/* ---- choosing and finishing conv steps ------------------------------------ */

static void conv_positions(pare_plan *p, pare_step *st)
{
    const pare_act *ia = &p->acts[st->in[0]], *oa = &p->acts[st->out];
    free(st->mask);
    st->mask = NULL;
    if (st->wide) {
        st->n_pos = (long)oa->H * oa->rs;
        st->in_base = (long)ia->P * ia->rs;
        st->out_base = (long)oa->P * oa->rs;
        st->res_base = st->res >= 0 ? (long)p->acts[st->res].P * p->acts[st->res].rs : 0;
        long chunks = (st->n_pos + PARE_CONV_CHUNK - 1) / PARE_CONV_CHUNK;
        st->mask = malloc(sizeof(uint16_t) * (size_t)chunks);
        if (!st->mask) {
            st->wide = 0; /* the rows mode needs no table */
        } else {
            for (long c = 0; c < chunks; c++) {
                uint16_t m = 0;
                for (int l = 0; l < PARE_CONV_CHUNK; l++) {
                    long q = c * PARE_CONV_CHUNK + l, col = q % oa->rs;
                    if (q < st->n_pos && col >= oa->P && col < oa->P + oa->W)
                        m |= (uint16_t)(1u << l);
                }
                st->mask[c] = m;
            }
            return;
        }
    }
    st->rows_mode = 1;
    st->n_pos = oa->W;
    st->in_base = (long)ia->P * ia->rs + ia->P;
    st->out_base = (long)oa->P * oa->rs + oa->P;
    st->res_base = st->res >= 0 ? (long)p->acts[st->res].P * p->acts[st->res].rs + p->acts[st->res].P : 0;
}

static double conv_macs_of(const pare_step *st, const pare_plan *p)
{
    const pare_act *oa = &p->acts[st->out];
    double per_pos = 0;
    const pare_conv_layer *L = &st->conv;
    switch (st->ck) {
    case PARE_CK_NM:
        per_pos = (double)L->n_nm * L->nm_ngroups * L->nm_n;
        break;
    case PARE_CK_PATTERN:
        for (int f = 0; f < L->n_pf; f++)
            per_pos += 4.0 * L->pf[f].nk;
        break;
    case PARE_CK_DW:
        per_pos = (double)oa->C * L->dw_kh * L->dw_kw;
        break;
    case PARE_CK_GEMM:
    case PARE_CK_LANES:
        per_pos = (double)oa->C * L->dn_k;
        break;
    case PARE_CK_WINO: /* the sgemms' multiply-adds: 16 per tile of 4 outputs */
        return 16.0 * oa->C * (L->dn_k / 9) * ((oa->H + 1) / 2) * ((oa->W + 1) / 2);
    default:
        for (int g = 0; g < L->n_groups; g++)
            per_pos += (double)L->groups[g].ncols * L->groups[g].r;
    }
    return per_pos * oa->H * oa->W;
}

/* The int8 tile's work: every dword of every column, 4 multiply-adds a filter. */
static double qconv_macs_of(const pare_step *st, const pare_plan *p)
{
    const pare_act *oa = &p->acts[st->out];
    double per_pos = 0;
    for (int g = 0; g < st->qconv.n_groups; g++)
        per_pos += 4.0 * st->qconv.groups[g].ncols * st->qconv.groups[g].r;
    return per_pos * oa->H * oa->W;
}

/* The scratch floats a step needs: a GEMM step its columns (K x positions)
 * and its product (O x positions), a max pool a row per thread. */
static size_t step_scratch(const pare_plan *p, const pare_step *st)
{
    const pare_act *oa = &p->acts[st->out];
    if (st->kind == PARE_STEP_CONV && st->ck == PARE_CK_GEMM)
        return (size_t)oa->H * (size_t)oa->W * ((size_t)st->conv.dn_k + (size_t)oa->C);
    if (st->kind == PARE_STEP_CONV && st->ck == PARE_CK_WINO) {
        pare_wino_bands b;
        pare_engine_wino_bands(st, oa, &b);
        return b.floats;
    }
    if (st->kind == PARE_STEP_MAXPOOL)
        return (size_t)p->threads * pare_engine_pool_row(p, st);
    return pare_engine_band_scratch(p, st);
}

static int pack_any(pare_plan *p, pare_step *st, const conv_aux *ca, int k, int threads)
{
    if (ca->q)
        return qpack_kind(st, ca, k, threads);
    int ok = pack_kind(st, &ca->geo, ca->w, ca->b, ca->cand[k], ca->cand_rows[k]);
    if (ok == 1 && (st->ck == PARE_CK_GEMM || st->ck == PARE_CK_WINO)) {
        size_t n = step_scratch(p, st);
        if (n > p->scratch_floats) {
            float *ns = pare_alloc_array(n, sizeof(float), 0);
            if (!ns)
                return -1;
            pare_free(p->scratch);
            p->scratch = ns;
            p->scratch_floats = n;
        }
    }
    return ok;
}

static void name_conv(pare_step *st)
{
    if (st->kind == PARE_STEP_QCONV) {
        int R = st->qconv.n_groups ? st->qconv.groups[0].rp : 4;
        char what[48];
        if (st->ck == PARE_CK_BLOCK || (st->ck == PARE_CK_PATTERN && R > 1))
            snprintf(what, sizeof what, "%.8s %d%s", pare_conv_kind_name(st->ck), R, st->qconv.n_gather ? " gathered" : "");
        else
            snprintf(what, sizeof what, "%.8s%s", pare_conv_kind_name(st->ck), st->qconv.n_gather ? " gathered" : "");
        snprintf(st->kernel, sizeof st->kernel, "%s int8 %s%s%s", pare_qconv()->name_conv, what,
                 st->rows_mode ? " (rows)" : "", st->q_out8 ? " -> u8" : "");
        return;
    }
    const pare_conv_kernels *ck = pare_conv();
    const char *fn = st->ck == PARE_CK_NM        ? ck->name_nm
                     : st->ck == PARE_CK_PATTERN ? ck->name_pat
                     : st->ck == PARE_CK_DW      ? ck->name_dw
                     : st->ck == PARE_CK_GEMM    ? "im2col + sgemm (cblas)"
                     : st->ck == PARE_CK_LANES   ? ck->name_ln
                     : st->ck == PARE_CK_WINO    ? "F(2x2,3x3) transforms + sgemm (cblas)"
                                                 : ck->name_g;
    int by_rows = st->rows_mode && !pare_conv_kind_own_runner(st->ck);
    snprintf(st->kernel, sizeof st->kernel, "%s %s%s", fn, pare_conv_kind_name(st->ck), by_rows ? " (rows)" : "");
}

static pare_status choose_kernels(builder *b, aux_list *aux)
{
    pare_plan *p = b->p;
    for (int i = 0; i < aux->n; i++) {
        conv_aux *ca = &aux->a[i];
        pare_step *st = &p->steps[ca->step];
        conv_positions(p, st);
        int chosen = -1;
        if (ca->n_cand > 1 && b->o.tune) {
            int cached = cache_get(b->cache, ca->key);
            if (cached >= 0 && cached < ca->n_cand)
                chosen = cached;
            if (chosen < 0) {
                /* Measure every candidate on this layer's real shapes. */
                float *in = pare_engine_act(p, st->in[0]);
                const pare_act *ia = &p->acts[st->in[0]];
                for (long e = -SLACK_FRONT; e < (long)(ia->floats - SLACK_FRONT); e++)
                    in[e] = (float)((e * 2654435761u) % 1000) * 1e-3f;
                double best = 1e30;
                for (int k = 0; k < ca->n_cand; k++) {
                    int ok = pack_any(p, st, ca, k, p->threads);
                    if (ok < 0)
                        return pare_fail(PARE_ENOMEM, "out of memory packing layer %s", st->name);
                    if (!ok)
                        continue;
                    double t = 1e30;
                    for (int r = 0; r < 6; r++) {
                        double t0 = pare_now_s();
                        pare_engine_run_step(p, st);
                        double dt = pare_now_s() - t0;
                        if (r > 0 && dt < t)
                            t = dt;
                    }
                    if (t < best) {
                        best = t;
                        chosen = k;
                    }
                }
                if (chosen >= 0)
                    cache_put(b->cache, ca->key, chosen);
            }
        }
        for (int k = 0; !ca->q && b->force_kind && k < ca->n_cand; k++)
            if (ca->cand[k] == (pare_conv_kind)b->force_kind)
                chosen = k;
        for (int k = 0; ca->q && b->qforce_gather >= 0 && k < ca->n_cand; k++)
            if (ca->cand_gather[k] == b->qforce_gather && ca->cand_rows[k] == b->qforce_rows && chosen < 0) {
                int ok = pack_any(p, st, ca, k, p->threads);
                if (ok < 0)
                    return pare_fail(PARE_ENOMEM, "out of memory packing layer %s", st->name);
                chosen = ok ? k : -1;
            }
        /* chosen is an index into the candidate list (the cache stores it too) */
        /* Heuristic or measured choice; a kind whose structure the weights do
         * not follow falls through to the next candidate (dense always fits). */
        int ok = 0;
        if (chosen >= 0) {
            ok = pack_any(p, st, ca, chosen, p->threads);
            if (ok < 0)
                return pare_fail(PARE_ENOMEM, "out of memory packing layer %s", st->name);
        }
        for (int k = 0; k < ca->n_cand && !ok; k++) {
            ok = pack_any(p, st, ca, k, p->threads);
            if (ok < 0)
                return pare_fail(PARE_ENOMEM, "out of memory packing layer %s", st->name);
        }
        if (!ok)
            return pare_fail(PARE_EUNSUPPORTED, "layer %s: no conv kernel fits", st->name);
        st->macs = ca->q ? qconv_macs_of(st, p) : conv_macs_of(st, p);
        p->weight_bytes += ca->q ? st->qconv.bytes : st->conv.bytes;
        name_conv(st);
    }
    return PARE_OK;
}

/* ---- buffers -------------------------------------------------------------- */

static pare_status plan_memory(pare_plan *p)
{
    int n = p->n_acts;
    int *first = malloc(sizeof(int) * (size_t)n), *last = malloc(sizeof(int) * (size_t)n);
    if (!first || !last) {
        free(first);
        free(last);
        return pare_fail(PARE_ENOMEM, "out of memory");
    }
    for (int a = 0; a < n; a++) {
        first[a] = p->n_steps;
        last[a] = -1;
    }
    first[p->input_act] = -1;
    for (int i = 0; i < p->n_steps; i++) {
        const pare_step *s = &p->steps[i];
        if (first[s->out] > i)
            first[s->out] = i;
        for (int j = 0; j < s->n_in; j++)
            if (last[s->in[j]] < i)
                last[s->in[j]] = i;
        if (s->res >= 0 && last[s->res] < i)
            last[s->res] = i;
        /* a conv that may run in bands with the depthwise conv after it reads
         * its inputs while that one writes: they stay live through it */
        if (pare_engine_band_candidate(p, i)) {
            for (int j = 0; j < s->n_in; j++)
                if (last[s->in[j]] < i + 1)
                    last[s->in[j]] = i + 1;
            if (s->res >= 0 && last[s->res] < i + 1)
                last[s->res] = i + 1;
        }
    }
    last[p->output_act] = p->n_steps;
    int busy[64] = {0};
    p->n_slots = 0;
    int status_ok = 1;
    for (int i = -1; i < p->n_steps && status_ok; i++) {
        for (int a = 0; a < n; a++) {
            if (first[a] != i)
                continue;
            int best = -1;
            for (int s = 0; s < p->n_slots; s++)
                if (!busy[s] && (best < 0 || (p->slot_floats[s] >= p->acts[a].floats) >
                                                 (p->slot_floats[best] >= p->acts[a].floats) ||
                                 ((p->slot_floats[s] >= p->acts[a].floats) ==
                                      (p->slot_floats[best] >= p->acts[a].floats) &&
                                  p->slot_floats[s] < p->slot_floats[best])))
                    best = s;
            if (best < 0) {
                if (p->n_slots == 64) {
                    status_ok = 0;
                    break;
                }
                best = p->n_slots++;
                p->slot_floats[best] = 0;
            }
            if (p->slot_floats[best] < p->acts[a].floats)
                p->slot_floats[best] = p->acts[a].floats;
            p->acts[a].slot = best;
            busy[best] = 1;
        }
        for (int a = 0; a < n; a++)
            if (last[a] == i && p->acts[a].slot >= 0 && first[a] <= i) {
                /* the same slot may back an alias read later: release at its last read */
                busy[p->acts[a].slot] = 0;
            }
    }
    free(first);
    free(last);
    if (!status_ok)
        return pare_fail(PARE_EUNSUPPORTED, "the model needs more than 64 live activation buffers");
    size_t total = 0, start[64];
    for (int s = 0; s < p->n_slots; s++) {
        start[s] = total;
        total += (p->slot_floats[s] + 15) / 16 * 16;
    }
    p->arena_floats = total;
    p->arena = pare_alloc_array(total ? total : 16, sizeof(float), 1);
    if (!p->arena)
        return PARE_ENOMEM;
    for (int a = 0; a < n; a++)
        p->acts[a].offset = p->acts[a].slot >= 0 ? start[p->acts[a].slot] : 0;
    return PARE_OK;
}

float *pare_engine_act(pare_plan *p, int act)
{
    return p->arena + p->acts[act].offset + SLACK_FRONT;
}

/* ---- the plan ------------------------------------------------------------- */

void pare_plan_free(pare_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_steps; i++) {
        pare_step *s = &p->steps[i];
        conv_layer_free(&s->conv);
        pare_free(s->qconv.mem);
        pare_free(s->qmem);
        pare_free(s->qws);
        free(s->mask);
        pare_free(s->fc_w);
        pare_free(s->fc_b);
        free(s->fc_rowptr);
        free(s->fc_col);
        pare_free(s->fc_val);
        pare_free(s->scale);
        pare_free(s->shift);
        for (int k = 0; k < PARE_NODE_MAX_PARAMS; k++)
            pare_free(s->op_w[k]);
        pare_free(s->op_buf);
        pare_free(s->op_ws);
        pare_free(s->op_aux);
    }
    free(p->steps);
    free(p->acts);
    pare_free(p->arena);
    pare_free(p->scratch);
    free(p->name);
    free(p);
}

/* Builds a plan; the layers named in keep_float stay float32 though quantized;
 * force (tests, or NULL) takes an int8 candidate or a dense lowering where it
 * fits. */
static pare_status plan_build(const pare_graph *g0, const pare_plan_options *o, const char *const *keep_float,
                              const plan_force *force, pare_plan **out)
{
    *out = NULL;
    if (!g0)
        return pare_fail(PARE_EINVAL, "no model to compile");
    if (g0->err)
        return g0->err;
    pare_status s = pare_graph_validate(g0);
    if (s != PARE_OK)
        return s;
    pare_plan_options opts;
    memset(&opts, 0, sizeof opts);
    if (o)
        opts = *o;
    pare_graph *g = NULL;
    s = pare_purify(g0, &g, NULL);
    if (s != PARE_OK)
        return s;
    int n = g->n_nodes;
    builder b;
    memset(&b, 0, sizeof b);
    tune_cache cache;
    memset(&cache, 0, sizeof cache);
    aux_list aux = {0, 0, NULL};
    pare_plan *p = calloc(1, sizeof *p);
    b.act_of = malloc(sizeof(int) * (size_t)n);
    b.users = calloc((size_t)n, sizeof(int));
    b.user = malloc(sizeof(int) * (size_t)n);
    b.done = calloc((size_t)n, sizeof(int));
    b.needed = calloc((size_t)n, sizeof(int));
    if (!p || !b.act_of || !b.users || !b.user || !b.done || !b.needed) {
        s = pare_fail(PARE_ENOMEM, "out of memory compiling %s", g->name);
        goto done;
    }
    p->acts = calloc((size_t)(4 * n + 8), sizeof(pare_act)); /* nodes, phase planes, packs */
    p->name = pare_strdup(g->name);
    if (!p->acts || !p->name) {
        s = pare_fail(PARE_ENOMEM, "out of memory compiling %s", g->name);
        goto done;
    }
    p->threads = pare_threads_resolve(opts.threads);
    p->isa = (int)pare_isa_active();
    b.p = p;
    b.g = g;
    b.o = opts;
    if (opts.tune) {
        cache_load(&cache);
        b.cache = &cache;
    }
    for (int v = 0; v < n; v++) {
        b.act_of[v] = -1;
        b.user[v] = -1;
    }
    b.needed[g->output] = 1;
    for (int v = g->output; v >= 0; v--)
        if (b.needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++)
                b.needed[g->nodes[v].in[j]] = 1;
    for (int v = 0; v < n; v++)
        if (b.needed[v])
            for (int j = 0; j < g->nodes[v].n_in; j++) {
                int u = g->nodes[v].in[j];
                b.users[u]++;
                b.user[u] = v;
            }
    b.users[g->output]++; /* the output is read by the caller */
    b.keep_float = keep_float;
    b.force_kind = force ? force->kind : 0;
    b.qforce_gather = force ? force->gather : -1;
    b.qforce_rows = force ? force->rows : 0;
    s = plan_int8(&b);
    if (s != PARE_OK)
        goto done;
    p->input_act = act_for_node(&b, 0);
    b.done[0] = 1;
    for (int v = 1; v < n && s == PARE_OK; v++) {
        if (!b.needed[v] || b.done[v])
            continue;
        switch (g->nodes[v].op) {
        case PARE_OP_CONV2D:
            s = b.q8[v] ? lower_qconv(&b, v, &aux) : lower_conv(&b, v, &aux);
            break;
        case PARE_OP_LINEAR:
            s = b.q8[v] ? lower_qfc(&b, v) : lower_linear(&b, v);
            break;
        case PARE_OP_FAKEQUANT:
            s = lower_fakequant(&b, v);
            break;
        default:
            s = lower_other(&b, v);
        }
    }
    if (s != PARE_OK)
        goto done;
    p->output_act = b.act_of[g->output];
    p->in_c = g->nodes[0].out.c;
    p->in_h = g->nodes[0].out.h;
    p->in_w = g->nodes[0].out.w;
    p->out_n = (int)pare_shape_size(g->nodes[g->output].out);
    if (p->output_act == p->input_act) {
        s = pare_fail(PARE_EUNSUPPORTED, "model %s computes nothing", g->name);
        goto done;
    }
    s = plan_memory(p);
    if (s == PARE_OK)
        s = choose_kernels(&b, &aux);
    if (s == PARE_OK)
        mark_junk_halos(p);
    if (s == PARE_OK)
        pare_engine_set_bands(p, PARE_BAND_BYTES, PARE_BAND_MIN_BYTES);
    if (s == PARE_OK) {
        /* tuning sized the scratch for every GEMM it tried: keep what the
         * chosen kernels and the max pools need */
        size_t need = 0;
        for (int i = 0; i < p->n_steps; i++)
            if (step_scratch(p, &p->steps[i]) > need)
                need = step_scratch(p, &p->steps[i]);
        if (need != p->scratch_floats) {
            pare_free(p->scratch);
            p->scratch = need ? pare_alloc_array(need, sizeof(float), 0) : NULL;
            p->scratch_floats = p->scratch ? need : 0;
            if (need && !p->scratch)
                s = pare_fail(PARE_ENOMEM, "out of memory");
        }
    }
    if (s == PARE_OK)
        for (int i = 0; i < p->n_steps; i++) {
            pare_step *st = &p->steps[i];
            if (st->kind == PARE_STEP_CONV)
                continue;
            if (st->kind == PARE_STEP_FC)
                p->weight_bytes += st->fc_sparse ? (size_t)st->fc_rowptr[st->fc_out] * 8 + 4 * (size_t)st->fc_out
                                                 : (size_t)st->fc_in * (size_t)st->fc_out * 4;
        }
done:
    for (int i = 0; i < aux.n; i++) {
        pare_free(aux.a[i].w);
        pare_free(aux.a[i].b);
        pare_free(aux.a[i].codes);
        pare_free(aux.a[i].qs);
        pare_free(aux.a[i].qb);
        pare_free(aux.a[i].zb);
    }
    free(aux.a);
    if (b.cache)
        cache_save_free(&cache);
    free(b.act_of);
    free(b.users);
    free(b.user);
    free(b.done);
    free(b.needed);
    free(b.q8);
    free(b.qact);
    free(b.fq_int8);
    free(b.fq_other);
    pare_graph_free(g);
    if (s != PARE_OK) {
        pare_plan_free(p);
        return s;
    }
    *out = p;
    return PARE_OK;
}

void pare_plan_get_info(const pare_plan *p, pare_plan_info *out)
{
    memset(out, 0, sizeof *out);
    out->steps = p->n_steps;
    out->activation_bytes = (p->arena_floats + p->scratch_floats) * sizeof(float); /* with the GEMM scratch */
    out->weight_bytes = p->weight_bytes;
    for (int i = 0; i < p->n_steps; i++) {
        out->macs += p->steps[i].macs;
        out->dense_macs += p->steps[i].dense_macs ? p->steps[i].dense_macs : p->steps[i].macs;
    }
    out->in_c = p->in_c;
    out->in_h = p->in_h;
    out->in_w = p->in_w;
    out->out_size = p->out_n;
    out->isa = pare_isa_name((pare_isa_level)p->isa);
    out->int8_layers = p->int8_layers;
}

pare_status pare_engine_plan_dense_as(const pare_graph *g, const pare_plan_options *o, pare_conv_kind kind,
                                      pare_plan **out)
{
    pare_plan_options opts = *o;
    opts.tune = 0;
    plan_force f = {-1, 0, (int)kind};
    return plan_build(g, &opts, NULL, &f, out);
}

pare_status pare_engine_plan_forced(const pare_graph *g, const pare_plan_options *o, int gathered, int rows,
                                    pare_plan **out)
{
    pare_plan_options opts = *o;
    opts.tune = 0;
    plan_force f = {gathered, rows, 0};
    return plan_build(g, &opts, NULL, &f, out);
}

/* Per step of two plans, the least time of `runs` runs each (profiled one
 * run at a time, the plans in turn, so load on a shared machine hits both). */
static void step_times(pare_plan *pa, double *ta, pare_plan *pb, double *tb, const float *x, float *y, int runs)
{
    pare_plan *ps[2] = {pa, pb};
    double *ts[2] = {ta, tb};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < ps[k]->n_steps; i++)
            ts[k][i] = 1e30;
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < 2; k++) {
            pare_plan_profile(ps[k], 1);
            pare_plan_run(ps[k], x, 1, y);
            for (int i = 0; i < ps[k]->n_steps; i++)
                if (r > 0 && ps[k]->steps[i].seconds < ts[k][i])
                    ts[k][i] = ps[k]->steps[i].seconds;
        }
    pare_plan_profile(pa, 0);
    pare_plan_profile(pb, 0);
}

static int is_int8_layer(const pare_step *st) { return st->kind == PARE_STEP_QCONV || st->kind == PARE_STEP_QFC; }

/* With tuning, every int8 layer is timed against the same layer in float32
 * (the float plan of the model, its quantizers skipped) and a layer that is
 * slower in int8 stays float, so a quantized plan is never slower than the
 * float one layer by layer. The choices are cached as the kernels are. */
pare_status pare_plan_new(const pare_graph *g0, const pare_plan_options *o, pare_plan **out)
{
    *out = NULL;
    pare_plan_options opts;
    memset(&opts, 0, sizeof opts);
    if (o)
        opts = *o;
    pare_plan *pq = NULL, *pf = NULL;
    pare_status s = plan_build(g0, &opts, NULL, NULL, &pq);
    if (s != PARE_OK || !opts.tune || opts.float32 || pq->int8_layers == 0) {
        *out = pq;
        return s;
    }
    int n = pq->n_steps, missing = 0, n_keep = 0;
    const char **keep = calloc((size_t)n + 1, sizeof *keep);
    double *tq = malloc(sizeof(double) * (size_t)n), *tf = NULL;
    float *x = NULL, *y = NULL;
    tune_cache cache;
    memset(&cache, 0, sizeof cache);
    if (!keep || !tq) {
        s = pare_fail(PARE_ENOMEM, "out of memory");
        goto done;
    }
    cache_load(&cache);
    for (int i = 0; i < n; i++)
        if (is_int8_layer(&pq->steps[i])) {
            int d = cache_get(&cache, pq->steps[i].qkey);
            if (d < 0)
                missing = 1;
            else if (d == 0)
                keep[n_keep++] = pq->steps[i].name;
        }
    cache_save_free(&cache);
    if (missing) {
        pare_plan_options fo = opts;
        fo.float32 = 2;
        s = plan_build(g0, &fo, NULL, NULL, &pf);
        if (s != PARE_OK)
            goto done;
        size_t isz = (size_t)pq->in_c * (size_t)pq->in_h * (size_t)pq->in_w;
        size_t osz = (size_t)(pq->out_n > pf->out_n ? pq->out_n : pf->out_n);
        x = malloc(sizeof(float) * (isz ? isz : 1));
        y = malloc(sizeof(float) * (osz ? osz : 1));
        tf = malloc(sizeof(double) * (size_t)pf->n_steps);
        if (!x || !y || !tf) {
            s = pare_fail(PARE_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < isz; i++)
            x[i] = (float)((i * 2654435761u) % 2001) * 1e-3f - 1.0f;
        step_times(pq, tq, pf, tf, x, y, 9);
        cache_load(&cache);
        n_keep = 0;
        for (int i = 0; i < n; i++) {
            const pare_step *st = &pq->steps[i];
            if (!is_int8_layer(st))
                continue;
            int d = cache_get(&cache, st->qkey);
            if (d < 0) {
                /* float must win by 10 %: a layer that falls back costs its
                 * neighbours a float fakequant and a quantize step too */
                d = 1;
                for (int j = 0; j < pf->n_steps; j++)
                    if (!strcmp(pf->steps[j].name, st->name) && tf[j] < 0.9 * tq[i])
                        d = 0;
                cache_put(&cache, st->qkey, d);
            }
            if (d == 0)
                keep[n_keep++] = st->name;
        }
        cache_save_free(&cache);
    }
    if (n_keep > 0) {
        pare_plan *p2 = NULL;
        s = plan_build(g0, &opts, keep, NULL, &p2);
        if (s == PARE_OK) {
            pare_plan_free(pq);
            pq = p2;
        }
    }
done:
    pare_plan_free(pf);
    free(keep);
    free(tq);
    free(tf);
    free(x);
    free(y);
    if (s != PARE_OK) {
        pare_plan_free(pq);
        return s;
    }
    *out = pq;
    return PARE_OK;
}

pare_status pare_plan_step_info(const pare_plan *p, int i, pare_step_info *out)
{
    if (!p || i < 0 || i >= p->n_steps)
        return pare_fail(PARE_EINVAL, "step %d does not exist", i);
    const pare_step *s = &p->steps[i];
    out->name = s->name;
    out->kernel = s->kernel;
    out->macs = s->macs;
    out->dense_macs = s->dense_macs ? s->dense_macs : s->macs;
    out->seconds = s->seconds;
    return PARE_OK;
}

void pare_plan_profile(pare_plan *p, int enable)
{
    p->profile = enable;
    for (int i = 0; i < p->n_steps; i++)
        p->steps[i].seconds = 0;
}
