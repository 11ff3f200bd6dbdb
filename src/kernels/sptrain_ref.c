/* The sparse-training family's scalar reference: the definitions of
 * sptrain.h as plain loops, the oracle of the SIMD versions. */
#include "kernels/sptrain.h"

void pare_f32_spgather_1x1__ref(const pare_sp_rows *L, int r0, int r1, const float *in, float *out,
                                long out_rs, long q0, long q1, int acc)
{
    for (int r = r0; r < r1; r++) {
        float *o = out + r * out_rs;
        for (long q = q0; q < q1; q++) {
            float s = 0.0f;
            for (int32_t k = L->start[r]; k < L->start[r + 1]; k++)
                s += L->w[k] * in[L->off[k] + q];
            o[q] = acc ? o[q] + s : s;
        }
    }
}

void pare_f32_sddmm_1x1__ref(const pare_sp_rows *L, int r0, int r1, const float *in, const float *a,
                             long a_rs, long q0, long q1, float *dw)
{
    for (int r = r0; r < r1; r++) {
        const float *ar = a + r * a_rs;
        for (int32_t k = L->start[r]; k < L->start[r + 1]; k++) {
            const float *x = in + L->off[k];
            float s = 0.0f;
            for (long q = q0; q < q1; q++)
                s += ar[q] * x[q];
            dw[k] += s;
        }
    }
}

void pare_f32_rows_1x1__ref(long rows, long cols, const float *src, long src_rs, float *dst, long dst_rs, float b,
                            int acc)
{
    for (long r = 0; r < rows; r++) {
        const float *s = src + r * src_rs;
        float *d = dst + r * dst_rs;
        for (long j = 0; j < cols; j++)
            d[j] = acc ? d[j] + (s[j] + b) : s[j] + b;
    }
}
