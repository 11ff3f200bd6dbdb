/* The depthwise kernel alone, on MobileNetV2-224's ten depthwise shapes
 * (3x3, ReLU6, halo 1), planes hot in cache:
 *   dw_kernel [ISA] [REPS]
 * ISA: avx512 (default), avx2 or ref. Per shape the median over REPS timings
 * (each the mean of 10 calls over every channel and row), GFLOP/s, and the
 * network's total (each shape as often as MobileNetV2 has it).
 * Run with OPENBLAS_CORETYPE unset, pinned to one core (taskset -c N). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/conv.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *isa = argc > 1 ? argv[1] : "avx512";
    int reps = argc > 2 ? atoi(argv[2]) : 101;
    int level = !strcmp(isa, "ref") ? 0 : !strcmp(isa, "avx2") ? 1 : !strcmp(isa, "avx512") ? 2 : -1;
    const pare_conv_kernels *k = level >= 0 ? pare_conv_at(level) : NULL;
    if (!k || reps < 1) {
        fprintf(stderr, "usage: dw_kernel [avx512|avx2|ref] [REPS >= 1] (%s: %s)\n", isa,
                level < 0 ? "unknown ISA" : !k ? "not on this CPU" : "REPS < 1");
        return 2;
    }
    /* channels, input size, stride, times in the network */
    static const int shapes[][4] = {{32, 112, 1, 1}, {96, 112, 2, 1}, {144, 56, 1, 1}, {144, 56, 2, 1},
                                    {192, 28, 1, 2}, {192, 28, 2, 1}, {384, 14, 1, 4}, {576, 14, 1, 2},
                                    {576, 14, 2, 1}, {960, 7, 1, 3}};
    double *t = malloc(sizeof(double) * (size_t)reps), net = 0;
    if (!t)
        return 1;
    printf("depthwise 3x3 kernel %s (%s), medians of %d\n", k->name_dw, isa, reps);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], H = shapes[s][1], S = shapes[s][2], Ho = (H - 1) / S + 1;
        long rs = H + 2, cs = (long)(H + 2) * rs, ors = Ho + 2, ocs = (long)(Ho + 2) * ors;
        float *in = calloc((size_t)(C * cs + 64), sizeof(float)), *out = calloc((size_t)(C * ocs + 64), sizeof(float));
        float *w = malloc(sizeof(float) * (size_t)(C * 10));
        if (!in || !out || !w)
            return 1;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < H; x++)
                    in[c * cs + (y + 1) * rs + x + 1] = (float)((x * 7 + y * 3 + c) % 11) * 0.1f;
        for (int i = 0; i < C * 10; i++)
            w[i] = (float)(i % 5) * 0.1f - 0.2f;
        pare_conv_layer L;
        memset(&L, 0, sizeof L);
        L.dw_kh = L.dw_kw = 3;
        L.dw_sh = L.dw_sw = S;
        L.dw_pt = L.dw_pl = 1;
        L.dw_w = w;
        L.dw_b = w + C * 9;
        pare_dw_io io;
        memset(&io, 0, sizeof io);
        io.in = in + rs + 1;
        io.in_cs = cs;
        io.in_rs = rs;
        io.out = out + ors + 1;
        io.out_cs = ocs;
        io.out_rs = ors;
        io.wo = Ho;
        io.act = 2;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            for (int q = 0; q < 10; q++)
                k->f32_convdw(&io, &L, 0, C, 0, Ho);
            t[r] = (now_s() - t0) / 10;
        }
        qsort(t, (size_t)reps, sizeof(double), by_value);
        double med = t[reps / 2];
        net += med * shapes[s][3];
        printf("  %4d ch %3dx%-3d stride %d -> %3dx%-3d  %.4f ms  %6.1f GFLOP/s\n", C, H, H, S, Ho, Ho, med * 1e3,
               2.0 * C * Ho * Ho * 9 / med * 1e-9);
        free(in);
        free(out);
        free(w);
    }
    printf("  MobileNetV2-224's 17 depthwise convs: %.3f ms\n", net * 1e3);
    free(t);
    return 0;
}
