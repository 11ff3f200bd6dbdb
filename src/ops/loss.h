/* Softmax cross-entropy over logits, with its gradient. */
#ifndef PARE_OPS_LOSS_H
#define PARE_OPS_LOSS_H

#include <stdint.h>

/* Mean loss over n samples of k logits; labels must be in [0, k). When grad is
 * not NULL it gets d(mean loss)/d(logits). correct (may be NULL) gets the
 * number of samples whose largest logit is at the label (ties: first index). */
double pare_softmax_xent(const float *logits, const int32_t *labels, int n, int k, float *grad,
                         long *correct);

#endif
