/* Weight sharing on the training side: k-means over runs of weights (Deep
 * k-Means, with its spectrally relaxed regulariser for training) and
 * SmartExchange (W ~ Ce B, Ce sparse with power-of-two entries). The public
 * entry point is pare_share (pare.h); the parts below are what it is built
 * from, exposed for the tests. */
#ifndef PARE_COMPRESS_SHARE_H
#define PARE_COMPRESS_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

/* ---- k-means over runs ---------------------------------------------------- */

/* Points are the n runs x[i*d .. i*d + d) of d values; a mask (one byte per
 * value, may be NULL) leaves pruned coordinates out of every distance and
 * mean, and a run with nothing kept out of the clustering (assign -1). */
typedef struct pare_kmeans_result {
    int k, d;           /* k as asked, capped to the number of kept runs (at least 1) */
    float *centroids;   /* k x d */
    int32_t *assign;    /* n: the nearest centroid, ties to the lowest index; -1: nothing kept */
    int iters;          /* Lloyd iterations run (the last one changes nothing unless capped) */
    double inertia;     /* sum over kept coordinates of squared distances to the centroid */
    double *trace;      /* the inertia after seeding and after each iteration: iters + 1 */
} pare_kmeans_result;

/* k-means++ seeding (the first centre uniform among the kept runs, each next
 * one drawn with probability proportional to the squared distance to the
 * nearest centre so far), then Lloyd iterations until no assignment changes or
 * max_iters. Deterministic for a seed, whatever the thread count. The inertia
 * never increases from one iteration to the next: a centroid moves to its
 * members' mean only when that lowers their distances (float rounding could
 * otherwise undo a tiny gain), and an empty cluster takes the run farthest
 * from its centroid. */
pare_status pare_kmeans(const float *x, const uint8_t *mask, size_t n, int d, int k, uint64_t seed,
                        int max_iters, int threads, pare_kmeans_result *out);
void pare_kmeans_free(pare_kmeans_result *r);
/* The seeding alone: writes k x d centroids (k <= kept runs). */
pare_status pare_kmeans_seed(const float *x, const uint8_t *mask, size_t n, int d, int k,
                             uint64_t seed, float *centroids);
/* The centroid nearest to run x (mask m may be NULL) over its kept
 * coordinates, ties to the lower index; *dist gets the squared distance. */
int pare_kmeans_nearest(const float *x, const uint8_t *m, int d, const float *c, int k,
                        double *dist);

/* ---- the Deep k-Means regulariser ------------------------------------------ */

/* lambda/2 [Tr(X^T X) - Tr(F^T X^T X F)] for X the d x N matrix whose
 * columns are a weight's runs, F (N x K, orthonormal columns) held fixed
 * between refreshes. Its gradient is lambda (X - X F F^T).
 *
 * When K < d, F is the spectral relaxation of k-means: the top-K right
 * singular vectors of X. When K >= d that relaxation is void (X has rank at
 * most d, so X F F^T = X and the penalty is 0), and F is what it relaxes: the
 * normalised indicator of the current k-means clusters (F[i][c] = 1/sqrt(|c|)
 * for run i in cluster c), refreshed by Lloyd iterations from the current
 * centroids; then X F F^T puts each run's cluster mean in its place and the
 * penalty is lambda/2 times the k-means inertia. With a mask, pruned
 * coordinates are 0 and are left out of the cluster means. */
typedef struct pare_share_reg {
    size_t n;           /* values */
    int d, k;           /* run length, clusters (K) */
    size_t runs;        /* N = n / d */
    float lambda;
    const uint8_t *mask;/* borrowed, may be NULL */
    int spectral;       /* 1: F from the SVD (K < d); 0: cluster indicator */
    float *F;           /* spectral: N x K */
    pare_kmeans_result km; /* indicator: the clusters */
    double *sum;        /* scratch: k x d sums */
    int32_t *cnt;       /* scratch: k x d member counts */
    uint64_t seed;
    int threads;
} pare_share_reg;

/* Sets r up for a weight of n values in runs of d and computes F from w. */
pare_status pare_share_reg_init(pare_share_reg *r, const float *w, const uint8_t *mask, size_t n,
                                int d, int k, float lambda, uint64_t seed, int threads);
/* Recomputes F from the current weights. */
pare_status pare_share_reg_refresh(pare_share_reg *r, const float *w);
/* The penalty at w with F fixed; when grad is not NULL, adds its gradient. */
double pare_share_reg_eval(pare_share_reg *r, const float *w, float *grad);
void pare_share_reg_free(pare_share_reg *r);

/* ---- SmartExchange --------------------------------------------------------- */

/* W (n values, rows of S) ~ Ce B: B is S x S dense, Ce (n / S rows of S) is
 * sparse and each of its nonzeros is +-2^p with p in a window of 2^exp_bits
 * consecutive integers below the largest. Alternates: Ce <- least squares given
 * B, then the smallest `sparsity` of its magnitudes (kept coordinates) are
 * zeroed and the rest rounded to the nearest power of two in the window
 * (values below the window become 0); B <- least squares given Ce. Keeps the
 * best iterate. err[i] (iters + 1 values, may be NULL) gets the relative
 * squared error ||W - Ce B||^2 / ||W||^2 of the initial projection (B = I) and
 * after each iteration. Pruned coordinates are left out of the fits. */
typedef struct pare_smartex {
    int S;
    size_t rows;
    float *B;           /* S x S */
    float *Ce;          /* rows x S */
    double error;       /* relative squared error of the kept iterate */
    size_t nonzeros;    /* of Ce */
    int pmax;           /* the largest exponent of the window */
} pare_smartex;

pare_status pare_smartex_fit(const float *w, const uint8_t *mask, size_t n, int S, int exp_bits,
                             double sparsity, int iters, double *err, pare_smartex *out);
/* w (kept coordinates) <- Ce B, in float, in a fixed order; pruned ones stay 0. */
void pare_smartex_apply(const pare_smartex *se, const uint8_t *mask, float *w);
void pare_smartex_free(pare_smartex *se);
/* Makes se the quantization of p (scheme 4, graph.h): its basis, its
 * coefficients (entries +-2^p, p from pmax - 2^exp_bits + 1 to pmax), and
 * the values Ce B; fails in one sentence when they do not fit (the basis does
 * not divide the last dimension, or a coefficient is not a power of two of
 * the window). */
pare_status pare_smartex_set(pare_param *p, const pare_smartex *se, int exp_bits);

/* ---- helpers shared with the command and the tests ------------------------- */

/* The run length pare_share uses for a weight: sub > 0 as given; sub == 0 the
 * kernel width of a conv (dims[3]) and 1 for anything else. */
int pare_share_run_length(const pare_tensor *w, int sub);
/* Makes p a shared tensor: codebook k x d (copied), scheme 3, bits from k, and
 * every run's kept values those of its row assign[i] (pruned stay +0.0).
 * Runs with assign -1 (nothing kept) take row 0, all of it pruned. */
pare_status pare_share_set(pare_param *p, int k, int d, const float *codebook,
                           const int32_t *assign);

#endif
