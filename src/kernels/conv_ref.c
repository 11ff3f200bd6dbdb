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

/* Winograd F(2x2, 3x3): the transforms in conv.h's order of operations, which
 * the SIMD versions keep (the same bits). */
void pare_f32_wino_in_1x1__ref(const pare_wino_io *io, int c0, int c1, int i0, int i1)
{
    for (int c = c0; c < c1; c++)
        for (int i = i0; i < i1; i++)
            for (int j = 0; j < io->tw; j++) {
                float d[4][4], t[4][4];
                for (int r = 0; r < 4; r++)
                    for (int s = 0; s < 4; s++) {
                        int y = 2 * i + r, x = 2 * j + s; /* from row and column -1 */
                        d[r][s] = y <= io->h + 1 && x <= io->w + 1 ? io->in[c * io->in_cs + y * io->in_rs + x] : 0.0f;
                    }
                for (int s = 0; s < 4; s++) {
                    t[0][s] = d[0][s] - d[2][s];
                    t[1][s] = d[1][s] + d[2][s];
                    t[2][s] = d[2][s] - d[1][s];
                    t[3][s] = d[1][s] - d[3][s];
                }
                float *v = io->v + c * io->ts + (i - i0) * io->tw + j;
                for (int r = 0; r < 4; r++) {
                    v[(4 * r + 0) * io->v_xs] = t[r][0] - t[r][2];
                    v[(4 * r + 1) * io->v_xs] = t[r][1] + t[r][2];
                    v[(4 * r + 2) * io->v_xs] = t[r][2] - t[r][1];
                    v[(4 * r + 3) * io->v_xs] = t[r][1] - t[r][3];
                }
            }
}

void pare_f32_wino_out_1x1__ref(const pare_wino_io *io, int o0, int o1, int i0, int i1)
{
    for (int o = o0; o < o1; o++)
        for (int i = i0; i < i1; i++)
            for (int j = 0; j < io->tw; j++) {
                const float *m = io->m + o * io->ts + (i - i0) * io->tw + j;
                float a[2][4], y[2][2];
                for (int s = 0; s < 4; s++) {
                    a[0][s] = m[s * io->m_xs] + m[(4 + s) * io->m_xs] + m[(8 + s) * io->m_xs];
                    a[1][s] = m[(4 + s) * io->m_xs] - m[(8 + s) * io->m_xs] - m[(12 + s) * io->m_xs];
                }
                for (int r = 0; r < 2; r++) {
                    y[r][0] = a[r][0] + a[r][1] + a[r][2];
                    y[r][1] = a[r][1] - a[r][2] - a[r][3];
                }
                for (int r = 0; r < 2; r++)
                    for (int s = 0; s < 2; s++) {
                        int yy = 2 * i + r, xx = 2 * j + s;
                        if (yy >= io->h || xx >= io->w)
                            continue;
                        const float *res = io->res ? io->res + o * io->res_cs + yy * io->res_rs + xx : NULL;
                        io->out[o * io->out_cs + yy * io->out_rs + xx] = res_act(res, io->act, y[r][s] + io->bias[o]);
                    }
            }
}
