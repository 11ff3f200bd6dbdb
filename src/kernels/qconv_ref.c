/* The int8 conv family's scalar reference: the plainest loops of the
 * definitions in qconv.h, the oracle the SIMD versions are tested against. */
#include <math.h>
#include <string.h>

#include "kernels/qconv.h"
#include "kernels/qconv_impl.h"

static int stored(const pare_qconv_io *io, long q)
{
    if (q >= io->n)
        return 0;
    if (!io->mask)
        return 1;
    return (io->mask[q / PARE_QCONV_CHUNK] >> (q % PARE_QCONV_CHUNK)) & 1;
}

static void finish(const pare_qconv_io *io, const pare_qconv_layer *L, int o, long q, int32_t acc)
{
    float f = fmaf((float)acc, L->scale[o], L->shift[o]);
    if (io->out8) {
        if (io->res)
            f = fmaf(io->res[o * io->res_cs + q], io->res_scale, f);
        f = pare_qmaxf(f, io->lo);
        f = pare_qminf(f, io->hi);
        int32_t c = (int32_t)rintf(f) + io->zp;
        io->out8[4 * ((long)(o >> 2) * io->out_cs + q) + (o & 3)] = (uint8_t)c;
    } else {
        if (io->res)
            f += io->res[o * io->res_cs + q];
        if (io->act >= 1)
            f = pare_qmaxf(f, 0.0f);
        if (io->act == 2)
            f = pare_qminf(f, 6.0f);
        io->outf[o * io->out_cs + q] = f;
    }
}

void pare_s8_qconvg_1x1__ref(const pare_qconv_io *io, const pare_qconv_layer *L, int g0, int g1, long q0,
                             long q1)
{
    for (int gi = g0; gi < g1; gi++) {
        const pare_qconv_group *g = &L->groups[gi];
        for (int j = 0; j < g->r; j++)
            for (long q = q0; q < q1; q++) {
                if (!stored(io, q))
                    continue;
                int32_t acc = g->bias[j];
                for (int c = 0; c < g->ncols; c++) {
                    const uint8_t *x = io->in + 4 * (q + g->off[c]);
                    const int8_t *w = g->w + ((long)c * g->rp + j) * 4;
                    for (int b = 0; b < 4; b++)
                        acc += (int32_t)x[b] * (int32_t)w[b];
                }
                finish(io, L, g->o0 + j, q, acc);
            }
    }
}

void pare_s8_qgemv_1x1__ref(const pare_qfc *F, const uint8_t *x, float *y, int act, int b0, int b1)
{
    for (int blk = b0; blk < b1; blk++)
        for (int j = 0; j < 16; j++) {
            int o = blk * 16 + j;
            if (o >= F->out)
                break;
            int32_t acc = F->bias[o];
            for (int k = 0; k < F->in4; k++) {
                const int8_t *w = F->w + (((long)blk * F->in4 + k) * 16 + j) * 4;
                for (int b = 0; b < 4; b++)
                    acc += (int32_t)x[4 * k + b] * (int32_t)w[b];
            }
            float f = fmaf((float)acc, F->scale[o], F->shift[o]);
            if (act >= 1)
                f = pare_qmaxf(f, 0.0f);
            if (act == 2)
                f = pare_qminf(f, 6.0f);
            y[o] = f;
        }
}

void pare_u8_maxrow_1x1__ref(uint32_t *out, const uint32_t *in, long in_rs, int kh, int kw, int sw, long n)
{
    for (long x = 0; x < n; x++) {
        uint8_t m[4] = {0, 0, 0, 0};
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                uint8_t v[4];
                memcpy(v, in + i * in_rs + x * sw + j, 4);
                for (int b = 0; b < 4; b++)
                    m[b] = v[b] > m[b] ? v[b] : m[b];
            }
        memcpy(out + x, m, 4);
    }
}

void pare_u8_quant4_1x1__ref(uint32_t *out, const float *const in[4], long n, float s, float zp, float qmax)
{
    for (long x = 0; x < n; x++) {
        uint8_t c[4];
        for (int b = 0; b < 4; b++)
            c[b] = in[b] ? pare_qcode(in[b][x], s, zp, qmax) : (uint8_t)zp;
        memcpy(out + x, c, 4);
    }
}

void pare_u8_gather4_1x1__ref(uint32_t *dst, long ld, const uint8_t *src, const int32_t *off, const uint8_t *sel, int n,
                              long len)
{
    for (int i = 0; i < n; i++)
        for (long p = 0; p < len; p++) {
            uint8_t c[4];
            for (int b = 0; b < 4; b++)
                c[b] = src[4 * (p + off[4 * i + b]) + sel[4 * i + b]];
            memcpy(dst + i * ld + p, c, 4);
        }
}

void pare_f32_maxrow_1x1__ref(float *out, const float *in, long in_rs, int kh, int kw, int sw, long n)
{
    for (long x = 0; x < n; x++) {
        float m = in[x * sw];
        for (int i = 0; i < kh; i++)
            for (int j = i ? 0 : 1; j < kw; j++) {
                float v = in[i * in_rs + x * sw + j];
                m = v > m ? v : m;
            }
        out[x] = m;
    }
}

void pare_u32_phase2_1x1__ref(uint32_t *even, uint32_t *odd, const uint32_t *in, long n, long w, uint32_t fill)
{
    for (long x = 0; x < n; x++) {
        even[x] = 2 * x < w ? in[2 * x] : fill;
        odd[x] = 2 * x + 1 < w ? in[2 * x + 1] : fill;
    }
}

void pare_f32_fq_1x1__ref(float *y, const float *x, long n, float s, float zp, float qmax)
{
    for (long i = 0; i < n; i++) {
        float q = rintf(x[i] / s);
        if (q < -1.0f - zp)
            q = -1.0f - zp;
        if (q > qmax + 1.0f - zp)
            q = qmax + 1.0f - zp;
        q = q + zp;
        q = q < 0.0f ? 0.0f : q > qmax ? qmax : q;
        y[i] = (q - zp) * s;
    }
}
