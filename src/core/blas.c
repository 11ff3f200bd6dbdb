/* CBLAS sgemm with pare's own column split across OpenMP threads. */
#include "core/blas.h"

#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/threads.h"

/* OpenBLAS keeps a thread pool of its own; left alone, it competes with
 * pare's OpenMP threads for the same cores (2.8x slower training steps on
 * LeNet with 2 threads). The Makefile defines PARE_OPENBLAS when it links
 * OpenBLAS, whose cblas.h declares these. */
#ifdef PARE_OPENBLAS
extern void openblas_set_num_threads(int);
extern char *openblas_get_config(void);
#endif

static int blas_ready;

void pare_blas_init(void)
{
    if (blas_ready)
        return;
#ifdef PARE_OPENBLAS
    openblas_set_num_threads(1);
#endif
    blas_ready = 1;
}

const char *pare_blas_name(void)
{
#ifdef PARE_OPENBLAS
    return openblas_get_config();
#endif
    return "cblas";
}

static void gemm1(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(long)i * ldc + j];
        return;
    }
    if (m == 1) {
        /* one row (a linear layer at batch 1): sgemv streams B once, where
         * sgemm would first copy all of it into its packed panels */
        if (tb)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void pare_sgemm(int threads, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    pare_blas_init();
    int nt = threads;
#ifdef _OPENMP
    if (omp_in_parallel())
        nt = 1;
#else
    nt = 1;
#endif
    /* Below ~1 MFLOP a split costs more than it saves. */
    if (nt <= 1 || (double)m * n * k < 5e5) {
        gemm1(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int split_cols = n >= m;
    long total = split_cols ? n : m;
    if (total < nt)
        nt = (int)total;
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        long lo, hi;
        /* Keep column blocks a multiple of 16 floats (one cache line). */
        long units = split_cols ? (total + 15) / 16 : total;
        pare_split_range(units, nt, t, &lo, &hi);
        if (split_cols) {
            lo *= 16;
            hi *= 16;
            if (hi > total)
                hi = total;
        }
        if (hi > lo) {
            if (split_cols) {
                const float *bb = tb ? b + lo * ldb : b + lo;
                gemm1(ta, tb, m, (int)(hi - lo), k, alpha, a, lda, bb, ldb, beta, c + lo, ldc);
            } else {
                const float *aa = ta ? a + lo : a + lo * lda;
                gemm1(ta, tb, (int)(hi - lo), n, k, alpha, aa, lda, b, ldb, beta, c + lo * ldc, ldc);
            }
        }
    }
}
