/* Quantization on the training side: weight grids and their scales,
 * activation calibration, graph surgery for fakequant nodes, and the QAT
 * hooks that keep weights on their grid while a latent float copy learns.
 * The public entry points (pare_quantize, pare_qat_train, pare_quant_admm,
 * pare_graph_dequantize) are declared in pare.h; docs/QUANT.md has the math. */
#ifndef PARE_COMPRESS_QUANT_H
#define PARE_COMPRESS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "train/trainer.h"

/* ---- weight grids ---------------------------------------------------------- */

/* The largest code magnitude M of symmetric weights at `bits`: 2^(bits-1) - 1,
 * and 1 for bits 1 (binary, codes -1 and +1) and 2 (ternary, -1, 0, +1). */
int pare_quant_wmax(int bits);

/* The code of w at scale s (> 0): bits 1 gives -1 for w < 0 and +1 otherwise;
 * other widths clamp(rint(w / s), -M, M), rounding half to even as the
 * fakequant op and ONNX do. w must be finite. */
float pare_quant_wcode(float w, float s, int bits);

typedef enum pare_wfit {
    PARE_WFIT_MAXABS = 0, /* s = max |w| / M: nothing clips (8 bits' usual choice) */
    PARE_WFIT_L2 = 1      /* s minimising ||w - s code(w)||: alternate code = round(w / s) and
                             s = <w, code> / <code, code> (ADMM-NN's projection) */
} pare_wfit;

/* Scales of `groups` equal consecutive groups of w's n values (groups 1: per
 * tensor; the output channels of a conv or linear weight: per channel), over
 * the values the mask keeps (mask NULL: all). A group with nothing to keep or
 * all zero gets 1 / M (its codes are 0). L2 starts from max-abs (and, when
 * init is not NULL, from init[g] too) and keeps the best scale it visits; at
 * bits 1 the optimum is exact: the mean |w|. */
void pare_quant_fit_scales(const float *w, const uint8_t *mask, size_t n, int groups, int bits,
                           pare_wfit fit, const float *init, float *scale);

/* out[k] = scale[g] * code (in float), and exactly 0 where the mask is 0.
 * out may be w. */
void pare_quant_project(const float *w, const uint8_t *mask, size_t n, int groups, int bits,
                        const float *scale, float *out);

/* Quantizes a conv or linear weight in place: scales by `fit` (per output
 * channel, or one for the tensor), values projected, qparams set (scheme 2
 * axis 0 or scheme 1, zero points 0). One sentence for non-finite weights. */
pare_status pare_quant_weight(pare_param *p, int bits, int per_channel, pare_wfit fit);

/* The int32 bias of a quantized layer: scale[o] = s_in * s_w[o] (s_w from the
 * weight's qparams), values scale * rint(b / scale). Returns 0 and leaves the
 * bias float when a code would not fit in int32 or a scale is not a positive
 * normal float; 1 when quantized; -1 out of memory. */
int pare_quant_bias(pare_param *bias, const pare_param *weight, float s_in);

/* 1 when every value of p is exactly scale * code (0 under a zero mask
 * entry) with a code in its bits' range, a codebook row (scheme 3) or Ce B
 * (scheme 4, which needs its coefficients); 1 for a float tensor. */
int pare_quant_on_grid(const pare_param *p);

/* ---- activation calibration ------------------------------------------------ */

#define PARE_OBS_BINS 2048

/* An observer sees the values of one tensor in two passes: min/max first, then
 * a histogram of PARE_OBS_BINS bins over [min, max]. Exact zeros (ReLU's) are
 * counted apart: 0 is always on the grid. Non-finite values are ignored. */
typedef struct pare_observer {
    double lo, hi;
    long long count, zeros;     /* finite values seen in the histogram pass, exact zeros */
    double *hist;               /* PARE_OBS_BINS, zeros excluded; NULL until pass 2 */
} pare_observer;

void pare_observer_init(pare_observer *o);
void pare_observer_free(pare_observer *o);
void pare_observer_minmax(pare_observer *o, const float *x, size_t n);
pare_status pare_observer_hist(pare_observer *o, const float *x, size_t n);

/* The clipping range [*lo, *hi] (lo <= 0 <= hi) of a method: min-max; the
 * percentile pct (e.g. 99.99) of the values at the top (and 100 - pct at the
 * bottom when the values go below 0); or the range [a min, a max], a in
 * (0, 1], with the least expected quantization error at `bits` over the
 * histogram (rounding s^2/12 inside, the squared distance to the edge
 * outside). Percentile and MSE need the histogram pass. */
void pare_observer_range(const pare_observer *o, pare_calib_method m, double pct, int bits,
                         float *lo, float *hi);

/* Asymmetric unsigned activation parameters of a range: lo <= 0 <= hi is
 * enforced, scale = (hi - lo) / (2^bits - 1) (1 for an empty range), zero
 * point rint(-lo / scale) clamped to [0, 2^bits - 1]. */
void pare_act_qparams(float lo, float hi, int bits, float *scale, int *zero_point);

/* ---- graph surgery --------------------------------------------------------- */

/* Rebuilds g as *out, parameters copied whole (values, masks, schemes, frozen
 * flags, qparams), metadata too:
 *  - drop[i] != 0 (may be NULL): node i (one input) is removed and its
 *    consumers read its input;
 *  - fq[v].mode > 0 (fq may be NULL): a fakequant with attributes fq[v] is
 *    added right after value v, named "<v's name>.fq" (made unique);
 *  - reads_fq[i] != 0: node i reads its first input through that input's
 *    fakequant (when it has one).
 * fq_id (may be NULL, g->n_nodes entries) gets the new id of each inserted
 * fakequant (-1 none); map (may be NULL) the new id of every old node. */
pare_status pare_graph_rebuild(const pare_graph *g, const uint8_t *drop, const pare_attrs *fq,
                               const uint8_t *reads_fq, pare_graph **out, int *fq_id, int *map);

/* Counts quantized tensors (q.bits != 0) and fakequant nodes; returns their sum. */
int pare_quant_count(const pare_graph *g, int *tensors, int *fakequant);

/* Batch-norm running statistics for the weights the model has now: training-
 * mode forward passes over the first `samples` of ds in whole batches of
 * `batch`, batch k taken with momentum 1 / (k + 1), so each running mean
 * (variance) is the plain average of the batches' means (unbiased
 * variances); frozen batch norms and all parameters stay as they are. */
pare_status pare_quant_bn_reestimate(pare_graph *g, const pare_dataset *ds, int batch, long samples,
                                     int threads);

/* ---- quantization-aware training ------------------------------------------ */

/* The QAT state of a graph: every conv/linear weight with qparams of 1 to 8
 * bits (scheme 1 or 2) keeps a latent float copy; after every optimizer step
 * the step's change goes to the latent (straight-through), the scales are
 * refitted (max-abs at 5 bits and more, L2 warm-started below) and the
 * weight becomes the latent's projection, so it is on its grid after every
 * step; masked weights stay 0. The biases of those layers train in float and
 * get their int32 grid back in pare_qat_finish. act_ema > 0: each fakequant's
 * range follows an exponential moving average (that momentum) of the
 * min/max of its input in training batches. */
typedef struct pare_qat pare_qat;

pare_status pare_qat_new(pare_graph *g, float act_ema, pare_qat **out);
/* The latent copies start from f's weights (the float model g was quantized
 * from, same parameter layout) instead of g's quantized ones. */
pare_status pare_qat_latent_from(pare_qat *q, const pare_graph *f);
/* The hooks to give the trainer (user = q). */
pare_train_hooks pare_qat_hooks(pare_qat *q);
/* The first error a hook met (hooks cannot return one). */
pare_status pare_qat_status(const pare_qat *q);
/* Weights on their grid (they already are), biases back to int32. */
pare_status pare_qat_finish(pare_qat *q);
void pare_qat_free(pare_qat *q);
/* Layers under QAT. */
int pare_qat_layers(const pare_qat *q);

#endif
