/* Softmax cross-entropy, computed stably (max subtracted) in double. */
#include "ops/loss.h"

#include <math.h>

double pare_softmax_xent(const float *logits, const int32_t *labels, int n, int k, float *grad,
                         long *correct)
{
    double total = 0;
    long right = 0;
    for (int b = 0; b < n; b++) {
        const float *z = logits + (long)b * k;
        int arg = 0;
        float mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx) {
                mx = z[j];
                arg = j;
            }
        double se = 0;
        for (int j = 0; j < k; j++)
            se += exp((double)z[j] - mx);
        double lse = log(se) + mx;
        int y = labels[b];
        total += lse - z[y];
        if (arg == y)
            right++;
        if (grad) {
            float *gz = grad + (long)b * k;
            for (int j = 0; j < k; j++) {
                double p = exp((double)z[j] - lse);
                gz[j] = (float)((p - (j == y ? 1.0 : 0.0)) / n);
            }
        }
    }
    if (correct)
        *correct = right;
    return n > 0 ? total / n : 0.0;
}
