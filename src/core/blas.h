/* Dense GEMM through CBLAS. OpenBLAS runs single-threaded; pare splits large
 * products across its own OpenMP threads, so results depend only on the
 * thread count and never on OpenBLAS's scheduling. */
#ifndef PARE_CORE_BLAS_H
#define PARE_CORE_BLAS_H

/* C = alpha * op(A) * op(B) + beta * C, row-major; op = transpose when t* != 0.
 * threads > 1 splits the columns (or rows) of C; inside a parallel region
 * it runs on the calling thread. */
void pare_sgemm(int threads, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Called once before the first GEMM: keeps the BLAS single-threaded. */
void pare_blas_init(void);
const char *pare_blas_name(void);

#endif
