/* The compiled engine: a plan is a list of steps over planned activation
 * buffers, each step a kernel chosen and packed for its layer's sparsity.
 * docs/ENGINE.md describes the layout and the kernels. */
#ifndef PARE_ENGINE_ENGINE_H
#define PARE_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "kernels/conv.h"
#include "kernels/qconv.h"

/* An activation buffer: C planes of (H + 2P) rows of rs floats; element (c, y, x)
 * at base + c*cs + (y + P)*rs + (x + P). P is 1 for spatial values (0 for 1x1
 * ones); the halo is zero whenever a consumer reads it. */
typedef struct pare_act {
    int C, H, W, P;
    long rs, cs;            /* row and channel strides (floats) */
    size_t floats;          /* C * cs + slack */
    int slot;               /* memory planner's buffer */
    size_t offset;          /* floats into the slot */
    /* int8: u8 codes in the C4 layout (kernels/qconv.h): ceil(C/4) quad planes of
     * dwords with the strides above (in dwords), so a u8 act takes a quarter of the
     * floats of a float one; its halo holds the code `fill` (the zero point, so a
     * padded tap adds nothing; 0 before a max pool) */
    int q8;
    uint8_t fill;
    /* float: no reader looks at the halo (every one is a float conv that is
     * pointwise, or reads it as its residual: a wide-mode kernel's halo lanes
     * are masked off on store), so it is never zeroed (mark_junk_halos) */
    int halo_junk;
} pare_act;

typedef enum pare_step_kind {
    PARE_STEP_CONV,         /* any conv: groups of filters over column lists (kernels/conv.h) */
    PARE_STEP_PHASES,       /* space-to-depth split of a stride-2 conv's input into 4 planes */
    PARE_STEP_FC,           /* linear layer on a flattened vector */
    PARE_STEP_MAXPOOL,
    PARE_STEP_AVGPOOL,
    PARE_STEP_GAP,
    PARE_STEP_ADD,          /* a residual add not fused into a conv */
    PARE_STEP_AFFINE,       /* a per-channel scale and shift (a batch norm with nothing to fold into) */
    PARE_STEP_ACT,          /* a relu/relu6 not fused */
    PARE_STEP_CONCAT,
    PARE_STEP_PACK,         /* halo layout -> plain vector (before a linear layer) */
    PARE_STEP_COPY,         /* input -> its halo buffer */
    PARE_STEP_OP,           /* any graph op's own forward, on plain copies of its inputs */
    PARE_STEP_QCONV,        /* int8 conv: u8 act in, u8 or float act out (kernels/qconv.h) */
    PARE_STEP_QFC,          /* int8 linear layer: u8 vector in, float out */
    PARE_STEP_QUANT,        /* float act -> u8 act (a fakequant's codes) */
    PARE_STEP_QMAXPOOL,     /* max pool on u8 codes (it commutes with the quantizer) */
    PARE_STEP_FQ            /* a fakequant on floats, as its op computes it (for float readers) */
} pare_step_kind;

typedef enum pare_conv_kind {
    PARE_CK_DENSE = 0,      /* groups of 4 filters over every column */
    PARE_CK_BLOCK,          /* groups of R filters over their kept blocks' columns */
    PARE_CK_SPARSE,         /* one filter per group, its nonzero columns (CSR) */
    PARE_CK_NM,             /* N:M: shared group bases, small indices per filter */
    PARE_CK_PATTERN,        /* FKW: per filter, kernels sorted by pattern */
    PARE_CK_DW,             /* depthwise: per channel its taps, read from the input act directly */
    PARE_CK_GEMM,           /* dense: im2col into the plan's scratch, then one sgemm */
    PARE_CK_LANES,          /* dense: vectors of 16 filters at a pixel (kernels/conv.h) */
    PARE_CK_WINO,           /* dense 3x3 stride 1: Winograd F(2x2, 3x3), 16 sgemms (kernels/conv.h) */
    PARE_CK__COUNT
} pare_conv_kind;

/* Kinds with a runner of their own in engine/run.c rather than the position
 * kernels of kernels/conv.h: no wide or rows mode, and plain loops in the
 * emitted C. */
static inline int pare_conv_kind_own_runner(pare_conv_kind k)
{
    return k == PARE_CK_DW || k == PARE_CK_GEMM || k == PARE_CK_LANES || k == PARE_CK_WINO;
}

typedef struct pare_step {
    pare_step_kind kind;
    int node;               /* the graph node it computes (the last one fused) */
    char name[96];
    char kernel[96];        /* the kernel chosen, for pare bench --verbose */
    int in[8], n_in;        /* act ids read */
    int out;                /* act id written */
    int res;                /* act id added before the activation, or -1 */
    int act;                /* 0 none, 1 relu, 2 relu6 */
    double macs;            /* useful multiply-accumulates per sample */
    double dense_macs;      /* what the dense layer would do */
    /* conv */
    pare_conv_kind ck;
    int nm_n, nm_m;         /* N:M */
    int rows_mode;          /* positions run along one row at a time */
    uint16_t *mask;         /* wide mode: per chunk, the lanes that are real outputs */
    long n_pos;             /* positions per call (a plane, or a row) */
    long in_base, out_base, res_base; /* offsets (floats) of position 0 in the buffers */
    pare_conv_layer conv;   /* packed weights, groups, columns (kernels/conv.h) */
    int wide;               /* positions span whole planes (input and output strides agree) */
    int depthwise;          /* lowered as a depthwise conv (one filter per channel) */
    int pointwise;          /* 1x1, stride 1, no padding: output pixel q reads input pixel q only */
    int band_rows;          /* > 0: runs together with the next step, a depthwise conv reading
                             * its output, in bands of this many of that step's output rows
                             * (pare_engine_set_bands); the next step then does not run alone */
    /* fc */
    int fc_in, fc_out;
    float *fc_w, *fc_b;     /* dense [out][in] */
    int fc_sparse;
    int32_t *fc_rowptr, *fc_col;
    float *fc_val;
    /* pooling */
    int k[2], s[2], pad[4], ceil_mode, count_include_pad;
    /* phases: which of the stride's phase planes are materialised */
    int sh, sw, nphase, phase_of_slot[64];
    /* affine */
    float *scale, *shift;
    /* op: the node's copy (its name and input list point nowhere, and the op's
     * forward runs with no graph: the ops run this way read neither), its
     * input shapes and parameters, and a plain buffer per input and the output
     * for the acts that have a halo */
    pare_node op_node;
    pare_shape op_xs[8];
    float *op_w[PARE_NODE_MAX_PARAMS];
    float *op_buf;
    size_t op_off[8], op_out_off; /* floats into op_buf; SIZE_MAX: the act itself (no halo) */
    float *op_ws;
    size_t op_ws_floats;
    void *op_aux;
    /* int8 (qconv, qfc, quant, qmaxpool) */
    pare_qconv_layer qconv;
    pare_qfc qfc;
    void *qmem;             /* the qfc's packed arrays */
    uint32_t *qws;          /* gathered qconv: a tile of gathered columns per thread */
    size_t qws_dwords;      /* per thread */
    int q_out8;             /* qconv: u8 codes out (else floats) */
    int32_t q_zp;           /* u8 output: zero point, clamp bounds (codes minus zp) */
    float q_lo, q_hi;
    float q_res_scale;      /* u8 output with a residual: 1 / output scale */
    float q_scale, q_zpf, q_qmax; /* quant, fq: the fakequant's scale, zero point, top code */
    char qkey[264];         /* qconv, qfc: the tune cache's key of the int8-or-float choice */
    /* timing */
    double seconds;
} pare_step;

struct pare_plan {
    char *name;
    int n_acts;
    pare_act *acts;
    int n_steps;
    pare_step *steps;
    int input_act, output_act;
    int in_c, in_h, in_w, out_n;
    int threads;
    int batch;
    size_t slot_floats[64];
    int n_slots;
    float *arena;           /* every activation buffer */
    size_t arena_floats;
    size_t weight_bytes;
    int isa;
    int profile;
    int int8_layers;        /* conv and linear steps that run in int8 */
    float *scratch;         /* im2col columns and GEMM output of the GEMM steps, max pool rows */
    size_t scratch_floats;
};

/* A file of measured kernel choices ("key kind" lines). */
typedef struct tune_cache {
    char *path;
    int n, cap;
    char **keys;
    int *kinds;
    int dirty;
} tune_cache;

/* Runs one step on the plan's arena (threads as planned). */
void pare_engine_run_step(pare_plan *p, pare_step *s);
/* How a Winograd step splits its tile rows into bands, and a band's scratch
 * (floats): the row stride of its V and M matrices (tiles, rounded up), the
 * stride from one of the 16 to the next (padded, so the 16 streams do not
 * share cache sets), and the whole. */
typedef struct pare_wino_bands {
    int rows, n;
    long ts, v_xs, m_xs;
    size_t floats;
} pare_wino_bands;
void pare_engine_wino_bands(const pare_step *st, const pare_act *oa, pare_wino_bands *b);
/* Banded pairs (one thread): a conv whose output (an inverted residual's
 * expansion, say) only a depthwise conv reads, next, is computed a band of
 * rows at a time into a ring in the plan's scratch, each band read by the
 * depthwise conv while it is still in this core's L2, instead of the whole
 * act going out to memory and coming back. 1 when step i and the next may
 * pair, as far as is known before kernels are chosen: a float conv, then a
 * depthwise conv that alone reads its output; the memory planner keeps step
 * i's inputs live through step i + 1 for them. */
int pare_engine_band_candidate(const pare_plan *p, int i);
/* Sets every step's band_rows: at one thread, candidates whose first step
 * runs a position kernel over whole planes, whose second runs the depthwise
 * kernel and whose middle act has at least min_bytes get bands of about
 * band_bytes of that act (at least one output row); the rest 0. band_bytes 0
 * turns banding off. Grows the plan's scratch for the rings. The defaults
 * follow. */
void pare_engine_set_bands(pare_plan *p, long band_bytes, long min_bytes);
/* The scratch floats a banded pair's first step needs for its ring; 0 for
 * other steps. */
size_t pare_engine_band_scratch(const pare_plan *p, const pare_step *a);
#define PARE_BAND_BYTES (512L * 1024)
#define PARE_BAND_MIN_BYTES (2L * 1024 * 1024)
/* Zeroes the halo of an act (its border rows and columns). */
void pare_engine_zero_halo(pare_plan *p, int act);
/* 1 when the step zeroes its output's halo itself (float conv steps: each
 * thread beside the part it writes), so the caller need not. */
int pare_engine_own_halo(const pare_plan *p, const pare_step *st);
float *pare_engine_act(pare_plan *p, int act);
const char *pare_conv_kind_name(pare_conv_kind k);
/* A max pool step's row buffer, in floats per thread (of the plan's scratch):
 * the padded input row and the columns the windows span, with room for the
 * row kernel's vectors. */
size_t pare_engine_pool_row(const pare_plan *p, const pare_step *st);

/* Tests: a plan (untuned) whose float dense convs run as PARE_CK_GEMM or
 * PARE_CK_LANES wherever that lowering fits (groups 1). */
pare_status pare_engine_plan_dense_as(const pare_graph *g, const pare_plan_options *o, pare_conv_kind kind,
                                      pare_plan **out);
/* Tests: a plan (untuned) whose int8 convs take the candidate packing of
 * `rows` filters a group, gathered (1 GEMM k-quads, 2 pattern taps) or not
 * (0), wherever it fits; the others their usual first candidate. */
pare_status pare_engine_plan_forced(const pare_graph *g, const pare_plan_options *o, int gathered, int rows,
                                    pare_plan **out);

/* For tests and benchmarks (engine/qgraph.c): a copy of g with every conv and
 * linear weight on a per-channel symmetric 8-bit grid (scale max|w| / 127) and
 * an 8-bit fakequant before each of their inputs, min-max calibrated on
 * `samples` random normal inputs. Not the user-facing quantizer. */
pare_status pare_engine_fake_quantize(const pare_graph *g, int samples, uint64_t seed, pare_graph **out);

#endif
