/* The FP32 FMA peak of this machine, for make bench-engine: each thread runs
 * independent chains of vector FMAs (enough chains to cover the FMA latency on every
 * FMA pipe), and the best of several timed repetitions counts 2 FLOP per lane per FMA.
 * AVX-512 when the compiler targets it, else AVX2 + FMA, else plain C (a rough figure).
 *
 * build: cc -O3 -march=native -fopenmp bench/peak.c -o peak
 * usage: ./peak [THREADS...]     (default: 1 2) -> one JSON line per thread count
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define CHAINS 12 /* 2 pipes x 4 cycles latency = 8 needed; 12 leaves slack, fits 16 registers */

#if defined(__AVX512F__)
#define ISA "avx512"
#define LANES 16
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
static float vsum(vec v)
{
    return _mm512_reduce_add_ps(v);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define ISA "avx2"
#define LANES 8
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
static float vsum(vec v)
{
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#else
#define ISA "scalar"
#define LANES 1
typedef float vec;
#define VSET(x) (x)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
static float vsum(vec v)
{
    return v;
}
#endif

/* Inputs read from and results written to volatile globals between the clock readings,
 * so the compiler cannot move the timed work out of the timed interval. */
static volatile float g_seed = 0.5f;
static volatile float g_sink;

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CHAINS * iters FMAs on LANES lanes; the result keeps the compiler from dropping them. */
static float fma_chains(long iters, float seed)
{
    vec m = VSET(0.9999999f), c = VSET(1e-6f);
    vec a0 = VSET(seed), a1 = VSET(seed + 1), a2 = VSET(seed + 2), a3 = VSET(seed + 3);
    vec a4 = VSET(seed + 4), a5 = VSET(seed + 5), a6 = VSET(seed + 6), a7 = VSET(seed + 7);
    vec a8 = VSET(seed + 8), a9 = VSET(seed + 9), a10 = VSET(seed + 10), a11 = VSET(seed + 11);
    for (long i = 0; i < iters; i++) {
        a0 = VFMA(a0, m, c);
        a1 = VFMA(a1, m, c);
        a2 = VFMA(a2, m, c);
        a3 = VFMA(a3, m, c);
        a4 = VFMA(a4, m, c);
        a5 = VFMA(a5, m, c);
        a6 = VFMA(a6, m, c);
        a7 = VFMA(a7, m, c);
        a8 = VFMA(a8, m, c);
        a9 = VFMA(a9, m, c);
        a10 = VFMA(a10, m, c);
        a11 = VFMA(a11, m, c);
    }
    vec s = VADD(VADD(VADD(a0, a1), VADD(a2, a3)), VADD(VADD(a4, a5), VADD(a6, a7)));
    s = VADD(s, VADD(VADD(a8, a9), VADD(a10, a11)));
    return vsum(s);
}

/* GFLOP/s of `threads` threads each running fma_chains(iters): the wall time of the
 * parallel region, so a straggling thread counts against the figure. */
static double measure(int threads, long iters)
{
    float acc = 0;
    double t0 = seconds();
    float seed = g_seed;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
    acc += fma_chains(iters, seed + (float)omp_get_thread_num());
    g_sink = acc;
    double dt = seconds() - t0;
    return 2.0 * LANES * CHAINS * (double)iters * threads / dt * 1e-9;
}

int main(int argc, char **argv)
{
    int counts[16] = {1, 2}, n = 2;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 16; i++) {
            int t = atoi(argv[i]);
            if (t < 1) {
                fprintf(stderr, "usage: peak [THREADS...]\n");
                return 2;
            }
            counts[n++] = t;
        }
    }
    /* Calibrate on one thread: about 0.25 s per repetition. */
    long iters = 1 << 16;
    double dt = 0;
    while (dt < 0.05 && iters < (1L << 36)) {
        iters *= 2;
        double t0 = seconds();
        g_sink = fma_chains(iters, g_seed);
        dt = seconds() - t0;
    }
    iters = (long)((double)iters * 0.25 / dt) + 1;
    for (int k = 0; k < n; k++) {
        double best = 0, all[7];
        for (int r = 0; r < 7; r++) {
            all[r] = measure(counts[k], iters);
            if (all[r] > best)
                best = all[r];
        }
        printf("{\"engine\":\"peak\",\"isa\":\"%s\",\"lanes\":%d,\"threads\":%d,\"gflops\":%.2f,\"reps_gflops\":[",
               ISA, LANES, counts[k], best);
        for (int r = 0; r < 7; r++)
            printf("%s%.1f", r ? "," : "", all[r]);
        printf("]}\n");
        fflush(stdout);
    }
    return 0;
}
