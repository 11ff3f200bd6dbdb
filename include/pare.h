/* pare: train, compress and run neural networks on CPUs, in C11.
 * The public API: opaque handles, status codes, one error message per thread. */
#ifndef PARE_H
#define PARE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARE_VERSION_MAJOR 0
#define PARE_VERSION_MINOR 1
#define PARE_VERSION_PATCH 0

/* ---- status and errors -------------------------------------------------- */

typedef enum pare_status {
    PARE_OK = 0,
    PARE_EINVAL,      /* a bad argument or value */
    PARE_ENOMEM,      /* out of memory */
    PARE_EIO,         /* a file could not be opened, read or written */
    PARE_EFORMAT,     /* a file is truncated, corrupted or not what it claims */
    PARE_ESHAPE,      /* shapes that do not fit together */
    PARE_EUNSUPPORTED,/* valid but not supported by this build */
    PARE_ENOTFOUND,   /* a named thing (model, dataset, layer) does not exist */
    PARE_ECANCELLED   /* stopped on request (e.g. SIGINT), state saved */
} pare_status;

/* The message of the last failure on this thread: one sentence naming the file,
 * field or flag. Never NULL. */
const char *pare_last_error(void);
const char *pare_status_name(pare_status s);
const char *pare_version(void);

/* The instruction set the kernels use: "avx512", "avx2" or "ref" (after PARE_ISA). */
const char *pare_isa(void);

/* ---- graphs: a network and its parameters ------------------------------- */

typedef struct pare_graph pare_graph;

/* Builder functions return the id (>= 0) of the value they create, or -1.
 * The first error sticks to the graph: later builder calls return -1 and
 * pare_graph_status() returns it (pare_last_error() has the sentence). */
pare_graph *pare_graph_new(const char *name);
void pare_graph_free(pare_graph *g);
pare_status pare_graph_status(const pare_graph *g);

typedef struct pare_conv2d_desc {
    int out_channels;
    int kernel_h, kernel_w;          /* kernel_w 0: same as kernel_h */
    int stride_h, stride_w;          /* 0: 1, stride_w 0: stride_h */
    int pad_top, pad_left, pad_bottom, pad_right;
    int dilation_h, dilation_w;      /* 0: 1 */
    int groups;                      /* 0: 1; = channels: depthwise */
    int no_bias;
} pare_conv2d_desc;

int pare_graph_input(pare_graph *g, int channels, int height, int width);
/* Square kernel, symmetric padding, groups 1, dilation 1, with bias. */
int pare_graph_conv2d(pare_graph *g, int x, int out_channels, int kernel, int stride,
                      int pad, const char *name);
int pare_graph_conv2d_ex(pare_graph *g, int x, const pare_conv2d_desc *d, const char *name);
int pare_graph_linear(pare_graph *g, int x, int out_features, int bias, const char *name);
int pare_graph_relu(pare_graph *g, int x, const char *name);
int pare_graph_relu6(pare_graph *g, int x, const char *name);
int pare_graph_maxpool(pare_graph *g, int x, int kernel, int stride, int pad, const char *name);
int pare_graph_avgpool(pare_graph *g, int x, int kernel, int stride, int pad, const char *name);
int pare_graph_global_avgpool(pare_graph *g, int x, const char *name);
/* eps 1e-5, momentum 0.1 (PyTorch's defaults); _ex to choose. */
int pare_graph_batchnorm(pare_graph *g, int x, const char *name);
int pare_graph_batchnorm_ex(pare_graph *g, int x, float eps, float momentum, const char *name);
int pare_graph_add(pare_graph *g, int a, int b, const char *name);
int pare_graph_concat(pare_graph *g, const int *xs, int n, const char *name);
int pare_graph_flatten(pare_graph *g, int x, const char *name);
int pare_graph_dropout(pare_graph *g, int x, float p, const char *name);
/* The ops ONNX models bring (docs/ALGORITHMS.md has each one's definition and gradient).
 * hardsigmoid: max(0, min(1, alpha x + beta)); leakyrelu: x < 0 ? alpha x : x;
 * clip: min(max(x, lo), hi), lo <= hi (infinities allowed). */
int pare_graph_sigmoid(pare_graph *g, int x, const char *name);
int pare_graph_hardsigmoid(pare_graph *g, int x, float alpha, float beta, const char *name);
int pare_graph_hardswish(pare_graph *g, int x, const char *name);
int pare_graph_leakyrelu(pare_graph *g, int x, float alpha, const char *name);
int pare_graph_clip(pare_graph *g, int x, float lo, float hi, const char *name);
/* a * b; b broadcasts: each of its channels, height and width is a's or 1 (as
 * the second input of pare_graph_add may also). */
int pare_graph_mul(pare_graph *g, int a, int b, const char *name);
/* axis 0 channels, 1 height, 2 width; mode 0: along that axis alone, mode 1: over
 * that axis and every later one flattened (ONNX before opset 13). */
int pare_graph_softmax(pare_graph *g, int x, int axis, int mode, const char *name);
/* channels = groups x k; output channel j*groups + i is input channel i*k + j. */
int pare_graph_channel_shuffle(pare_graph *g, int x, int groups, const char *name);
/* pads: top, left, bottom, right (>= 0); mode 0 the constant value, 1 reflect (the
 * edge not repeated; each pad smaller than the side it mirrors), 2 edge. */
int pare_graph_pad(pare_graph *g, int x, const int pads[4], int mode, float value,
                   const char *name);
/* A c x h x w tensor, the same for every sample: a trainable parameter named
 * "<name>.weight", zero until set (pare_graph_param_data). Never pruned. */
int pare_graph_const(pare_graph *g, int c, int h, int w, const char *name);
/* The same values per sample read as c x h x w (the counts must match). */
int pare_graph_reshape(pare_graph *g, int x, int c, int h, int w, const char *name);
/* Output axis i is input axis perm[i], axes numbered 0 c, 1 h, 2 w. */
int pare_graph_transpose(pare_graph *g, int x, const int perm[3], const char *name);
/* Fake quantization (QAT, and the activation scales of a quantized model):
 * x -> (clamp(rint(x / scale) + zero_point, 0, 2^bits - 1) - zero_point) * scale,
 * rounding half to even as ONNX's QuantizeLinear does; bits 1 to 8, zero point
 * in [0, 2^bits - 1]. Its gradient passes unchanged where x was not clamped. */
int pare_graph_fakequant(pare_graph *g, int x, float scale, int zero_point, int bits,
                         const char *name);
/* The values of a parameter by name ("<layer>.<role>": "fc.weight", "k.weight"
 * for a const k), float32 in row-major order of its dimensions, to read or to
 * write in place; *n gets their count. NULL when there is no such parameter. */
float *pare_graph_param_data(pare_graph *g, const char *name, size_t *n);
/* The graph's output is the last value built unless set here. */
pare_status pare_graph_set_output(pare_graph *g, int x);

/* Initialise every parameter as PyTorch does by default (uniform ±1/sqrt(fan_in)
 * for conv and linear weights and biases; BN gamma 1, beta 0, running mean 0, var 1),
 * deterministically from the seed. Builders already call it with seed 0. */
pare_status pare_graph_init_params(pare_graph *g, uint64_t seed);
/* Conv and linear weight initialisations (fan_in = in_channels/groups x kh x kw or
 * in_features; fan_out = out_channels x kh x kw or out_features):
 * DEFAULT: PyTorch's default above;
 * HE_NORMAL: normal with std sqrt(2 / fan_in), biases 0 (torch kaiming_normal_, ReLU);
 * HE_UNIFORM: uniform ±sqrt(6 / fan_in), biases 0 (torch kaiming_uniform_, ReLU);
 * XAVIER_UNIFORM: uniform ±sqrt(6 / (fan_in + fan_out)), biases 0 (Glorot).
 * Batch norm is initialised as above under every scheme. */
typedef enum pare_init_scheme {
    PARE_INIT_DEFAULT = 0,
    PARE_INIT_HE_NORMAL,
    PARE_INIT_HE_UNIFORM,
    PARE_INIT_XAVIER_UNIFORM
} pare_init_scheme;
pare_status pare_graph_init_params_as(pare_graph *g, uint64_t seed, pare_init_scheme scheme);

/* The model zoo: "lenet", "fmnist-cnn", "resnet20", "vgg11-bn", "mobilenetv2"
 * (CIFAR widths), and the 224x224 inference models "resnet18", "vgg16",
 * "mobilenetv2-224". num_classes 0 means 10 (1000 for the 224x224 ones). */
pare_status pare_zoo_build(const char *name, int num_classes, uint64_t seed, pare_graph **out);
/* NULL-terminated list of zoo names. */
const char *const *pare_zoo_names(void);

pare_status pare_graph_save(const pare_graph *g, const char *path);
pare_status pare_graph_load(const char *path, pare_graph **out);

/* ONNX (docs/ONNX.md). pare_onnx_load reads a model of opsets 6 to 17: its
 * initializers become parameters (exact zeros in a conv or linear weight become
 * its mask), constant subgraphs are folded, and every op pare cannot take is
 * named in one error. pare_onnx_save writes opset 13, with each tensor's sparsity
 * scheme in metadata_props. Both fail with PARE_EUNSUPPORTED when pare was built
 * without protobuf-c. */
pare_status pare_onnx_load(const char *path, pare_graph **out);
pare_status pare_onnx_save(const pare_graph *g, const char *path);

/* The shape a graph takes per sample (channels, height, width) and gives. */
void pare_graph_input_shape(const pare_graph *g, int *c, int *h, int *w);
void pare_graph_output_shape(const pare_graph *g, int *c, int *h, int *w);
const char *pare_graph_name(const pare_graph *g);

/* Per-layer facts, as `pare info` prints them. */
typedef struct pare_layer_info {
    const char *name;
    const char *op;
    int out_c, out_h, out_w;
    long long params;        /* trainable values (as PyTorch counts parameters; BN running
                              * statistics are not counted) */
    long long weights;       /* values of its weight tensor (conv, linear), else 0 */
    long long zeros;         /* weights that are zero or masked out */
    double macs;             /* multiply-accumulates per sample */
    int frozen;
    int masked;              /* the weight carries a sparsity mask */
} pare_layer_info;
int pare_graph_layer_count(const pare_graph *g);
pare_status pare_graph_layer_info(const pare_graph *g, int i, pare_layer_info *out);

/* Inference on n samples laid out NCHW; out gets n x output size floats. */
pare_status pare_graph_forward(pare_graph *g, const float *in, int n, float *out, int threads);

/* ---- data --------------------------------------------------------------- */

typedef struct pare_dataset pare_dataset;

typedef enum pare_split { PARE_SPLIT_TRAIN = 0, PARE_SPLIT_TEST = 1 } pare_split;

/* spec: "fashion-mnist" (found in $PARE_DATA, ./data/fashion-mnist or
 * /usr/share/datasets/fashion-mnist), or a folder holding MNIST-format IDX files
 * (train-images-idx3-ubyte[.gz] ...) or CIFAR-10 binary batches. */
pare_status pare_dataset_open(const char *spec, pare_split split, pare_dataset **out);
pare_status pare_dataset_load_idx(const char *images_path, const char *labels_path,
                                  pare_dataset **out);
pare_status pare_dataset_load_cifar10(const char *dir, pare_split split, pare_dataset **out);
void pare_dataset_free(pare_dataset *ds);
long pare_dataset_size(const pare_dataset *ds);
void pare_dataset_shape(const pare_dataset *ds, int *c, int *h, int *w);
int pare_dataset_classes(const pare_dataset *ds);
/* Keep only the first n samples (n <= size). */
pare_status pare_dataset_limit(pare_dataset *ds, long n);
/* Pixels are scaled to [0,1], then (x - mean[c]) / std[c]. Readers set the usual
 * values for Fashion-MNIST and CIFAR-10; others get mean 0, std 1. */
pare_status pare_dataset_set_normalization(pare_dataset *ds, int channels, const float *mean,
                                           const float *std);

/* ---- training ----------------------------------------------------------- */

typedef enum pare_optimizer { PARE_OPT_SGD = 0, PARE_OPT_ADAMW = 1 } pare_optimizer;
typedef enum pare_schedule {
    PARE_SCHED_CONSTANT = 0,
    PARE_SCHED_STEP = 1,     /* lr * gamma^(epoch / step_epochs) */
    PARE_SCHED_COSINE = 2    /* linear warm-up, then cosine to 0 over the remaining steps */
} pare_schedule;

typedef enum pare_event_kind {
    PARE_EV_START,       /* the run begins (or resumes) */
    PARE_EV_STEP,        /* after each optimizer step */
    PARE_EV_EVAL,        /* during evaluation, every few batches */
    PARE_EV_EPOCH,       /* an epoch ended and was evaluated */
    PARE_EV_CHECKPOINT   /* a checkpoint was written */
} pare_event_kind;

typedef struct pare_epoch_stats {
    int epoch;               /* 1-based */
    double train_loss, train_acc;
    double test_loss, test_acc;     /* -1 when there is no test set */
    double seconds;          /* wall time of the training loop of this epoch */
    double images_per_s;
    double lr_end;
    /* Cost: training FLOPs of this epoch (forward and backward, work that was
     * skipped not counted), and what dense training of every example with no layer
     * frozen would have cost. */
    double flops, flops_dense;
    long examples;           /* examples trained on this epoch (after sieving and dropping) */
    long examples_out;       /* examples outside the active set at the epoch's end */
    long examples_cached;    /* examples whose forward started from the frozen prefix's cache */
    int units_frozen, units; /* conv/linear units frozen at the epoch's end, of all */
    double sparsity;         /* of the prunable weights at the epoch's end */
} pare_epoch_stats;

typedef struct pare_train_event {
    pare_event_kind kind;
    int epoch, epochs;               /* epoch is 1-based */
    long step, steps_per_epoch;      /* step within the epoch, 1-based */
    long global_step, total_steps;
    double loss;                     /* running mean over the epoch so far */
    double lr;
    double images_per_s;             /* over the epoch so far */
    double seconds;                  /* since the epoch started */
    long resumed_from;               /* START: global step resumed from, or 0 */
    const pare_epoch_stats *stats;   /* EPOCH */
    const char *path;                /* CHECKPOINT */
} pare_train_event;

typedef void (*pare_train_callback)(const pare_train_event *ev, void *user);

/* Efficient training (docs/EFFICIENT.md): every field 0 means off, and each
 * technique composes with the others and with pruning masks already in the model.
 * "Units" are the conv and linear layers, each with the batch norm that follows it. */
typedef struct pare_efficiency {
    /* Sparse training from scratch (MEST / SpFDE): a random mask at `sparse` from
     * the first step; every `sparse_every` steps (0: once per epoch) the mask grows
     * to sparse - sparse_grow by gradient magnitude, and half an interval later is
     * pruned back to `sparse` by weight magnitude; after `sparse_until` of training
     * (0: 0.75) it stays fixed. */
    float sparse;
    const char *sparse_scheme;   /* NULL: "unstructured"; docs/ALGORITHMS.md lists the schemes */
    long sparse_every;
    float sparse_grow;           /* 0: 0.05 */
    float sparse_until;
    int sparse_all;              /* 1: the first conv and the last linear too (kept dense otherwise) */
    /* Progressive freezing (SpFDE): at the start of epoch `freeze_from` (1-based)
     * and every `freeze_every` epochs after it, the next `freeze_units` units
     * freeze, front to back, up to `freeze_max` of them (0: all but the last).
     * When the run ends, units frozen by freezing policies are unfrozen again;
     * frozen flags the model came with are kept. */
    int freeze_from;
    int freeze_every;            /* 0: 1 */
    int freeze_units;            /* 0: 1 */
    int freeze_max;
    /* Automatic freezing (EdgeOL intra-tuning): every `freeze_check` steps (0: each
     * epoch end) the unfrozen units' activations on a fixed probe batch are
     * compared with the previous check's by linear CKA; from the first unfrozen
     * unit on, units freeze while their CKA is >= freeze_cka. */
    float freeze_cka;
    long freeze_check;
    /* Circular data sieving (SpFDE): `sieve` of the data waits outside the active
     * set; every `sieve_every` epochs (0: 1) the `sieve_swap` (0: 0.1) of the active
     * set with the fewest forgetting events moves to the queue's tail and as many
     * return from its head. */
    float sieve;
    int sieve_every;
    float sieve_swap;
    /* Dynamic data removal (SparCL): the least-forgotten examples leave for good,
     * linearly over the epochs, until `drop_data` of the data is gone. */
    float drop_data;
    /* Stochastic mini-batch dropping (E2-Train): each batch is skipped with this
     * probability (its step still advances the schedule). */
    float drop_batch;
    /* Dynamic gradient masking (SparCL): only the top 1 - grad_mask of |gradient|
     * among unpruned weights is applied (and computed, in layers on the sparse
     * path); the selection is refreshed every `grad_mask_every` steps (0: 10), and
     * after any mask change, from a full gradient. */
    float grad_mask;
    long grad_mask_every;
    /* Caching the frozen prefix: up to this many MiB (0: off) hold each training
     * example's activations where the frozen part of the network ends (frozen
     * units, and the layers without parameters around them), so the next epochs
     * start that example's forward there. The results are the same bits as
     * without the cache. Needs inputs that repeat: refused with augmentation. */
    long cache_frozen_mb;
} pare_efficiency;

typedef struct pare_train_config {
    int epochs;              /* 3 */
    int batch;               /* 128 */
    pare_optimizer optimizer;/* SGD */
    float lr;                /* 0.05 */
    float momentum;          /* 0.9 (SGD) */
    int nesterov;            /* 0 */
    float weight_decay;      /* 5e-4: L2 for SGD, decoupled for AdamW */
    float beta1, beta2, eps; /* AdamW: 0.9, 0.999, 1e-8 */
    pare_schedule schedule;  /* COSINE */
    long warmup_steps;       /* 0 */
    int step_epochs;         /* STEP: 30 */
    float step_gamma;        /* STEP: 0.1 */
    uint64_t seed;           /* 0: data order, augmentation, dropout */
    int threads;             /* 0: PARE_THREADS or all cores */
    int augment_crop_pad;    /* random crop after zero padding by this many pixels; 0 off */
    int augment_hflip;       /* random horizontal flip */
    int eval_batch;          /* 500 */
    const char *checkpoint_path; /* NULL: no checkpoints */
    long checkpoint_every;   /* steps; 0: only at epoch ends */
    int resume;              /* continue from checkpoint_path if it exists */
    pare_train_callback callback;
    void *user;
    volatile const int *cancel;  /* when *cancel turns nonzero: checkpoint and return ECANCELLED */
    pare_efficiency eff;         /* all zero: plain training */
} pare_train_config;

void pare_train_config_init(pare_train_config *c);

typedef struct pare_trainer pare_trainer;

/* The trainer updates g in place; g must outlive it. */
pare_status pare_trainer_new(pare_graph *g, const pare_train_config *c, pare_trainer **out);
void pare_trainer_free(pare_trainer *t);
/* Runs the remaining epochs (all of them, or from the checkpoint when resuming). */
pare_status pare_trainer_run(pare_trainer *t, const pare_dataset *train, const pare_dataset *test);
/* One optimizer step on n samples (already normalised, NCHW) with their labels;
 * for custom loops. The learning rate follows the schedule by global step. */
pare_status pare_trainer_step(pare_trainer *t, const float *x, const int32_t *labels, int n,
                              double *loss_out);
int pare_trainer_epochs_done(const pare_trainer *t);
pare_status pare_trainer_epoch_stats(const pare_trainer *t, int epoch, pare_epoch_stats *out);
long pare_trainer_global_step(const pare_trainer *t);
/* The training-loss curve: n points of (epoch as a fraction, mean loss of the
 * steps since the previous point), about 50 per epoch; pointers stay valid
 * until the next call into the trainer. Returns n. */
int pare_trainer_trace(const pare_trainer *t, const double **epochs, const double **losses);

typedef struct pare_eval_result {
    double loss, accuracy;
    long samples;
} pare_eval_result;

pare_status pare_evaluate(pare_graph *g, const pare_dataset *ds, int batch, int threads,
                          pare_eval_result *out);

/* ---- quantization (docs/QUANT.md) ---------------------------------------- */

/* A quantized model keeps float values that are exactly scale x integer code
 * (per output channel for weights, symmetric; an int32 grid for biases) and a
 * fakequant node (uint8, asymmetric) on the input of every quantized conv and
 * linear layer, so training, evaluation and the float engine read it as it is. */

typedef enum pare_calib_method {
    PARE_CALIB_MINMAX = 0,     /* the observed range */
    PARE_CALIB_PERCENTILE = 1, /* the percentile's value (and 100 - it below 0) */
    PARE_CALIB_MSE = 2         /* the clipped range with the least expected quantization error */
} pare_calib_method;

typedef struct pare_quant_config {
    int weight_bits;            /* 8; 1 binary, 2 ternary, up to 8; 0: weights stay float */
    int act_bits;               /* 8; 1 to 8; 0: activations stay float (no fakequant nodes) */
    int per_tensor;             /* 0: a weight scale per output channel; 1: one per layer */
    pare_calib_method calib;    /* MSE */
    double percentile;          /* 99.99 (PERCENTILE), in (50, 100] */
    long calib_samples;         /* 1000: the first samples of the calibration set */
    long report_samples;        /* 500: of those, the ones the per-layer errors are measured on */
    int keep_float_auto;        /* 1: a layer whose own SQNR is below keep_float_db stays float */
    double keep_float_db;       /* 25 */
    const char *keep_float;     /* comma-separated conv/linear layer names that stay float, or NULL */
    int bias_int32;             /* 1: biases of quantized layers on their int32 grid */
    int threads;                /* 0: PARE_THREADS or all cores */
} pare_quant_config;

void pare_quant_config_init(pare_quant_config *c);

typedef struct pare_quant_layer {
    const char *name;           /* the conv or linear layer */
    const char *op;
    int bits;                   /* its weights' bits; 0 when it stayed float */
    int kept_float;             /* 0 quantized, 1 named in keep_float, 2 by keep_float_auto */
    int bias_int32;             /* its bias is on the int32 grid */
    float act_lo, act_hi;       /* its input's clipping range (both 0: no fakequant) */
    float act_scale;
    int act_zero_point;
    /* Relative error ||y_q - y|| / ||y|| of the layer's output and SQNR
     * 10 log10(||y||^2 / ||y_q - y||^2), on the report samples: the layer alone
     * (its float input, quantized, through its quantized weights: what
     * keep_float_auto judges), and in the whole quantized model against the float
     * model (errors of earlier layers included). */
    double rel_error, sqnr_db;
    double model_rel_error, model_sqnr_db;
} pare_quant_layer;

typedef struct pare_quant_report {
    int n;
    pare_quant_layer *layers;   /* one per conv/linear layer, in graph order */
    int quantized, kept_float, fakequant_nodes;
    long calib_samples, report_samples;
    double output_rel_error, output_sqnr_db;   /* the model's output, quantized vs float */
    char *names_;               /* storage of the layer names (freed with the report) */
} pare_quant_report;

void pare_quant_report_free(pare_quant_report *r);

/* Post-training quantization: calibrates the activations that enter each conv
 * and linear layer on calib (float model, evaluation mode), quantizes the
 * weights and biases, inserts the fakequant nodes and builds *out; g is not
 * changed. rep (may be NULL) gets the per-layer errors. A model that is
 * already quantized, a calibration set of another sample shape or an
 * impossible bit width is one sentence. */
pare_status pare_quantize(const pare_graph *g, const pare_quant_config *c, const pare_dataset *calib,
                          pare_graph **out, pare_quant_report *rep);

/* Quantization-aware training of a quantized model (pare_quantize's output),
 * in place: each quantized weight keeps a latent float copy that the
 * optimizer's steps update (straight-through estimator), and the weight is the
 * latent's projection onto its grid after every step (masks kept, pruned
 * weights exactly 0). The latents start from float_weights' values (the
 * float model g was quantized from) or, when it is NULL, from g's. act_ema > 0
 * lets the activation ranges follow the training batches (that momentum); 0
 * keeps the calibrated ones. */
pare_status pare_qat_train(pare_graph *g, const pare_graph *float_weights, const pare_train_config *c,
                           float act_ema, const pare_dataset *train, const pare_dataset *test);

typedef struct pare_admm_quant_config {
    int stages;                 /* 1 to 8: bits[0..stages) in order, e.g. 8, 4, 2, 1 */
    int bits[8];                /* the weights end at bits[stages - 1] */
    int per_channel;            /* 0: one q per layer (ADMM-NN); 1: per output channel */
    pare_train_config train;    /* every training phase; lr 0.01 by default */
    int admm_epochs;            /* 2, per stage */
    float rho;                  /* 1e-2, x10 for each of rho_steps periods */
    int rho_steps;              /* 4 */
    int finetune_epochs;        /* 2: QAT with the weights on the final grid */
} pare_admm_quant_config;

void pare_admm_quant_config_init(pare_admm_quant_config *c);

/* ADMM quantization of a quantized model (pare_quantize's output; its
 * quantized layers are the ones constrained) in place: for each stage, ADMM
 * training towards the levels {0, ±q, ..., ±Mq} of its bits ({-q, +q} at 1
 * bit), q refitted in every projection; then the weights are projected and
 * fine-tuned with QAT. float_weights (may be NULL) is the float model the
 * quantized one came from: ADMM starts from its weights instead. */
pare_status pare_quant_admm(pare_graph *g, const pare_graph *float_weights,
                            const pare_admm_quant_config *c, const pare_dataset *train,
                            const pare_dataset *test);

/* A float copy: quantization parameters dropped (values kept) and fakequant
 * nodes removed. */
pare_status pare_graph_dequantize(const pare_graph *g, pare_graph **out);
/* Quantized tensors plus fakequant nodes (0: a float model); each count may be NULL. */
int pare_graph_quantized(const pare_graph *g, int *tensors, int *fakequant_nodes);

/* ---- weight sharing (docs/ALGORITHMS.md, "Weight sharing") --------------- */

/* Each chosen conv and linear weight is cut into runs of d consecutive values
 * along its last axis; k-means (k-means++ seeding) finds k centroids per layer
 * and every run becomes its centroid, so the file stores a k x d codebook and
 * a ceil(log2 k)-bit index per run (quantization scheme 3). Pruned weights
 * stay exactly 0 (left out of the clustering). Optionally, before clustering,
 * training with the Deep k-Means regulariser pulls the runs towards k
 * clusters, and after it, fine-tuning trains the centroids themselves.
 * SmartExchange instead writes each weight as Ce B (B d x d dense, Ce sparse
 * with power-of-two entries); its file keeps float values. */
typedef struct pare_share_options {
    int k;                      /* 16: centroids per layer, 1 to 256 */
    int sub;                    /* 0: d = a conv's kernel width, 1 for linear; else d = sub (1 to 16) */
    const char *layers;         /* comma-separated layer names; NULL: every conv and linear */
    int max_iters;              /* 50: Lloyd iterations at most */
    uint64_t seed;              /* 0: k-means++ */
    /* The Deep k-Means regulariser: reg_epochs of training with lambda/2 [Tr(W^T W) -
     * Tr(F^T W^T W F)] per layer added to the loss, F refreshed every reg_every steps. */
    float reg;                  /* lambda; 0: off */
    int reg_epochs;             /* 1 */
    int reg_every;              /* 50 */
    /* After sharing: epochs of fine-tuning the centroids (each centroid moves by the
     * mean of its members' gradients; assignments fixed). SmartExchange: training
     * with the weights projected back onto Ce B after every epoch. */
    int finetune_epochs;        /* 0 */
    pare_train_config train;    /* the recipe of both training phases: lr 0.01, cosine */
    /* SmartExchange instead of k-means. */
    int smartexchange;
    int se_exp_bits;            /* 3: Ce's nonzeros are +-2^p, p in 8 consecutive values */
    float se_sparsity;          /* 0.5: the share of Ce's smallest entries zeroed */
    int se_iters;               /* 10 alternations */
} pare_share_options;

void pare_share_options_init(pare_share_options *o);

typedef struct pare_share_layer {
    const char *name;           /* the layer (valid while the graph is) */
    int k, d, bits;             /* centroids (capped to the runs there are), run length, code bits;
                                 * SmartExchange: k 0, d the basis size, bits 0 */
    long long weights;          /* values of the weight */
    double rel_error;           /* ||W' - W|| / ||W||: the weights before and right after sharing */
    double bits_per_weight;     /* (index bits + codebook bits) / weights; SmartExchange: its
                                 * compact form's (B, Ce positions, signs and exponents) */
    long long bytes_before;     /* the weight's values as floats (kept ones when masked) */
    long long bytes_after;      /* codes + codebook; SmartExchange: the compact form (the
                                 * file keeps floats) */
    long long nonzeros;         /* SmartExchange: of Ce */
} pare_share_layer;

typedef struct pare_share_result {
    int n;
    pare_share_layer *layers;
    /* Test accuracy (-1 without test data): before, after the regulariser's
     * training, right after sharing, after fine-tuning. */
    double acc_before, acc_reg, acc_shared, acc_final;
    double seconds_reg, seconds_share, seconds_finetune;
} pare_share_result;

void pare_share_result_free(pare_share_result *r);

/* Shares the weights of g in place (train may be NULL when no training phase
 * is asked; test may be NULL). A layer that is already quantized, a run length
 * that does not divide a layer's last dimension or an unknown layer name is
 * one sentence, found before anything changes; r is filled on success only
 * (free it with pare_share_result_free). */
pare_status pare_share(pare_graph *g, const pare_share_options *o, const pare_dataset *train,
                       const pare_dataset *test, pare_share_result *r);

/* ---- the compiled engine ------------------------------------------------- */

typedef struct pare_plan pare_plan;

typedef struct pare_plan_options {
    int threads;     /* 0: PARE_THREADS or all cores */
    int tune;        /* 1: time sparse against dense kernels per layer and keep the faster
                      * (cached in $PARE_TUNE_CACHE or ~/.cache/pare/tune.txt);
                      * 0: choose by the layer's sparsity alone (deterministic) */
    int keep_dense;  /* 1: dense kernels everywhere (a baseline) */
    int float32;     /* a quantized model (fakequant nodes before conv and linear inputs,
                      * weights with 8-bit or narrower qparams) runs in int8 by default;
                      * 1: in float32, its fakequant nodes computed exactly as float steps;
                      * 2: in float32 with its fakequant nodes skipped (the float baseline
                      * that pare bench prints beside int8) */
} pare_plan_options;

/* Compiles a model for inference: channel-pruned layers shrink, batch norms
 * fold into the convs or linear layers before them, ReLU/ReLU6 and residual
 * adds fuse into the producing kernel, activation buffers are planned up
 * front, and each layer's weights are packed for the kernel its sparsity
 * allows (dense, CSR, N:M, block, pattern). The model may be freed after. */
pare_status pare_plan_new(const pare_graph *g, const pare_plan_options *o, pare_plan **out);
void pare_plan_free(pare_plan *p);
/* Runs n samples (NCHW) through the plan; out gets n x output size floats. */
pare_status pare_plan_run(pare_plan *p, const float *in, int n, float *out);

typedef struct pare_plan_info {
    int steps;
    size_t activation_bytes;   /* the planned activation arena (peak activation memory) and
                                * the im2col scratch of GEMM-lowered convs */
    size_t weight_bytes;       /* packed weights and indices */
    double macs, dense_macs;   /* per sample: done, and what the dense model does */
    int in_c, in_h, in_w, out_size;
    const char *isa;
    int int8_layers;           /* conv and linear layers that run in int8 */
} pare_plan_info;

void pare_plan_get_info(const pare_plan *p, pare_plan_info *out);

typedef struct pare_step_info {
    const char *name;          /* the layer (the last one fused into the step) */
    const char *kernel;        /* e.g. "f32_convpat_1x4__avx512 pattern" */
    double macs, dense_macs;   /* per sample */
    double seconds;            /* accumulated while profiling */
} pare_step_info;

pare_status pare_plan_step_info(const pare_plan *p, int i, pare_step_info *out);
/* Per-step timing on (accumulated by pare_plan_run) or off; on also resets. */
void pare_plan_profile(pare_plan *p, int enable);

/* Writes a standalone C file: the packed weights as static arrays, one function
 * per step, a static arena, no malloc, only libm; it exposes
 * `void <prefix>_run(const float *in, float *out)` (one sample). */
pare_status pare_plan_emit_c(const pare_plan *p, const char *path, const char *prefix);

/* Online fine-tuning (docs/ONLINE.md) */

/* A stream interleaves inference requests and labelled samples (docs/ONLINE.md has
 * the byte layout). Pixels are uint8, CHW, normalised as the model records. */
typedef enum pare_record_kind {
    PARE_REC_INFER = 0,     /* an inference request: predict, never learn from it */
    PARE_REC_LABELLED = 1,  /* a labelled sample: predict first (test), then keep to train on */
    PARE_REC_SEGMENT = 2    /* a marker: a new segment begins (e.g. the simulator's drift points) */
} pare_record_kind;

typedef struct pare_stream_info {
    int channels, height, width;   /* each 1..4096, at most 16 Mi values a sample */
    int classes;                   /* 1..65535 */
} pare_stream_info;

typedef struct pare_record {
    pare_record_kind kind;
    /* LABELLED: the class; INFER: the true class when the stream knows it (to
     * measure the served accuracy; never trained on), else -1; SEGMENT: its number. */
    int label;
    const uint8_t *pixels;         /* channels x height x width (not for SEGMENT) */
} pare_record;

typedef struct pare_stream pare_stream;

/* Opens a stream file ("-": standard input) and checks its header. */
pare_status pare_stream_open(const char *path, pare_stream **out);
void pare_stream_get_info(const pare_stream *s, pare_stream_info *out);
/* The next record: *got = 1 and rec (valid until the next call), or *got = 0 at a
 * clean end. A truncated or corrupt record is PARE_EFORMAT naming the stream and
 * the record's number; the records before it were returned whole. */
pare_status pare_stream_next(pare_stream *s, pare_record *rec, int *got);
/* Records returned so far. */
long pare_stream_count(const pare_stream *s);
void pare_stream_close(pare_stream *s);

typedef struct pare_stream_writer pare_stream_writer;

/* Records are kept in memory; finish writes the file atomically ("-": standard
 * output) and frees the writer, as free does without writing. */
pare_status pare_stream_writer_new(const char *path, const pare_stream_info *info,
                                   pare_stream_writer **out);
pare_status pare_stream_write(pare_stream_writer *w, const pare_record *rec);
pare_status pare_stream_writer_finish(pare_stream_writer *w);
void pare_stream_writer_free(pare_stream_writer *w);

typedef enum pare_online_policy {
    PARE_ONLINE_EDGEOL = 0,    /* rounds by new data x inference load, forced by a drift; CKA freezing */
    PARE_ONLINE_IMMEDIATE = 1, /* a round on every `batch` new labels */
    PARE_ONLINE_NEVER = 2      /* serve only */
} pare_online_policy;

typedef struct pare_online_options {
    pare_online_policy policy;  /* EDGEOL */
    /* A round: `epochs` passes of SGD (constant lr, momentum, L2 decay) in
     * mini-batches of `batch` over the replay buffer, the `buffer` latest labels. */
    float lr;                   /* 0.01 */
    float momentum;             /* 0.9 */
    float weight_decay;         /* 5e-4 */
    int batch;                  /* 32 */
    int epochs;                 /* 4 */
    int buffer;                 /* 512 */
    /* EDGEOL: a round once min_new * (1 + load_scale * s) new labels arrived, s the
     * share of inference requests among recent records; the three rounds after a
     * drift come at a quarter of that. */
    int min_new;                /* 64 */
    float load_scale;           /* 1 */
    /* Drift (a scenario change): the prequential accuracy of the last `window`
     * labels falls more than drift_drop below its running reference. Counted by
     * every policy; under EDGEOL it forces a round at once, unfreezes every layer
     * and drops the replay samples older than the window. */
    int window;                 /* 100 */
    float drift_drop;           /* 0.15 */
    /* Freezing at round ends: units (conv/linear + BN) freeze front to back while
     * the linear CKA of their activations on a fixed probe batch against the
     * previous round's is >= freeze_cka; 0: off. Honoured by every policy. */
    float freeze_cka;           /* 0.999 */
    int probe;                  /* 32 */
    uint64_t seed;              /* 0: the order of samples in rounds, dropout */
    int threads;                /* 0: PARE_THREADS or all cores */
} pare_online_options;

void pare_online_options_init(pare_online_options *o);

typedef struct pare_online_stats {
    long records, inferences, labelled, segments;
    long rounds, forced_rounds, drifts;
    long steps, samples_trained;    /* SGD steps and the samples they processed */
    double finetune_seconds;        /* wall time inside rounds */
    double flops;                   /* training FLOPs of the rounds (frozen work not counted) */
    long correct;                   /* labelled samples predicted right before training on them */
    double accuracy;                /* prequential: correct / labelled (-1 when none) */
    long served_known, served_correct; /* inference requests whose true class was known */
    double served_accuracy;         /* -1 when none */
    int units, units_frozen;        /* now */
} pare_online_stats;

/* Per segment (segment 0 runs until the first marker). */
typedef struct pare_online_segment {
    int id;                         /* the marker's number (0 for the first) */
    long first_record, records, labelled, correct, served_known, served_correct, rounds;
} pare_online_segment;

typedef struct pare_online pare_online;

/* The learner updates g in place; g must outlive it. */
pare_status pare_online_new(pare_graph *g, const pare_online_options *o, pare_online **out);
void pare_online_free(pare_online *ol);
/* One record (pixels of the graph's input size): *pred gets the predicted class
 * (-1 for a marker). A labelled sample may run a round before returning. */
pare_status pare_online_feed(pare_online *ol, const pare_record *rec, int *pred);
void pare_online_get_stats(const pare_online *ol, pare_online_stats *out);
int pare_online_segment_count(const pare_online *ol);
pare_status pare_online_segment_get(const pare_online *ol, int i, pare_online_segment *out);
/* The record numbers (0-based) at which drifts were detected; returns their count. */
int pare_online_drifts(const pare_online *ol, const long **records);

#ifdef __cplusplus
}
#endif
#endif
