/* The conv family's scalar reference: the plainest loops of the definitions
 * in conv.h, the oracle the SIMD versions are tested against. */
#include "kernels/conv.h"

static int stored(const pare_conv_io *io, long q)
{
    if (q >= io->n)
        return 0;
    if (!io->mask)
        return 1;
    return (io->mask[q / PARE_CONV_CHUNK] >> (q % PARE_CONV_CHUNK)) & 1;
}

/* The residual (NULL: none) and the activation (0 none, 1 relu, 2 relu6). */
static float res_act(const float *res, int act, float acc)
{
    if (res)
        acc += *res;
    if (act >= 1 && acc < 0.0f)
        acc = 0.0f;
    if (act == 2 && acc > 6.0f)
        acc = 6.0f;
    return acc;
}

static float finish(const pare_conv_io *io, int o, long q, float acc)
{
    return res_act(io->res ? io->res + o * io->res_cs + q : NULL, io->act, acc);
}

static float plane_finish(const pare_dw_io *io, int c, long y, long x, float acc)
{
    return res_act(io->res ? io->res + c * io->res_cs + y * io->res_rs + x : NULL, io->act, acc);
}

void pare_f32_convg_1x1__ref(const pare_conv_io *io, const pare_conv_layer *L, int g0, int g1, long q0,
                             long q1)
{
    for (int gi = g0; gi < g1; gi++) {
        const pare_conv_group *g = &L->groups[gi];
        for (int j = 0; j < g->r; j++) {
            int o = g->o0 + j;
            float *out = io->out + o * io->out_cs;
            for (long q = q0; q < q1; q++) {
                if (!stored(io, q))
                    continue;
                float acc = g->bias ? g->bias[j] : 0.0f;
                for (int c = 0; c < g->ncols; c++)
                    acc += g->w[(long)c * g->rp + j] * io->in[q + g->off[c]];
                out[q] = finish(io, o, q, acc);
            }
        }
    }
}

void pare_f32_convnm_1x1__ref(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1, long q0,
                              long q1)
{
    int N = L->nm_n;
    for (int fi = f0; fi < f1; fi++) {
        const pare_nm_filter *f = &L->nm[fi];
        float *out = io->out + f->o * io->out_cs;
        for (long q = q0; q < q1; q++) {
            if (!stored(io, q))
                continue;
            float acc = f->bias;
            for (int g = 0; g < L->nm_ngroups; g++)
                for (int k = 0; k < N; k++)
                    acc += f->w[g * N + k] * io->in[q + L->nm_base[g] + (long)f->idx[g * N + k] * L->nm_cs];
            out[q] = finish(io, f->o, q, acc);
        }
    }
}

void pare_f32_convpat_1x1__ref(const pare_conv_io *io, const pare_conv_layer *L, int f0, int f1, long q0,
                               long q1)
{
    for (int fi = f0; fi < f1; fi++) {
        const pare_pat_filter *f = &L->pf[fi];
        float *out = io->out + f->o * io->out_cs;
        for (long q = q0; q < q1; q++) {
            if (!stored(io, q))
                continue;
            float acc = f->bias;
            for (int k = 0; k < f->nk; k++) {
                const int32_t *po = L->pat_off[f->pat[k]];
                for (int t = 0; t < 4; t++)
                    acc += f->w[4 * k + t] * io->in[q + f->coff[k] + po[t]];
            }
            out[q] = finish(io, f->o, q, acc);
        }
    }
}

void pare_f32_convdw_1x1__ref(const pare_dw_io *io, const pare_conv_layer *L, int c0, int c1, int y0, int y1)
{
    int kh = L->dw_kh, kw = L->dw_kw;
    for (int c = c0; c < c1; c++) {
        const float *w = L->dw_w + (long)c * kh * kw;
        for (int y = y0; y < y1; y++) {
            const float *top = io->in + c * io->in_cs + (long)(y * L->dw_sh - L->dw_pt) * io->in_rs - L->dw_pl;
            float *out = io->out + c * io->out_cs + y * io->out_rs;
            for (int x = 0; x < io->wo; x++) {
                float acc = L->dw_b[c];
                for (int i = 0; i < kh; i++)
                    for (int j = 0; j < kw; j++)
                        acc += w[i * kw + j] * top[i * io->in_rs + (long)x * L->dw_sw + j];
                out[x] = plane_finish(io, c, y, x, acc);
            }
        }
    }
}

void pare_f32_convln_1x1__ref(const pare_dw_io *io, const pare_conv_layer *L, int b0, int b1, long p0, long p1)
{
    int K = L->dn_k;
    for (int b = b0; b < b1; b++)
        for (int j = 0; j < PARE_LANES; j++) {
            int o = b * PARE_LANES + j;
            if (o >= L->dn_o)
                break;
            const float *w = L->dn_w + (long)b * K * PARE_LANES + j;
            for (long p = p0; p < p1; p++) {
                long y = p / io->wo, x = p % io->wo;
                const float *in = io->in + y * io->in_rs + x;
                float acc = L->dn_b[o];
                for (int k = 0; k < K; k++)
                    acc += w[(long)k * PARE_LANES] * in[L->dn_off[k]];
                io->out[o * io->out_cs + y * io->out_rs + x] = plane_finish(io, o, y, x, acc);
            }
        }
}
