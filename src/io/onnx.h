/* ONNX import internals shared by the importer, `pare onnx-check`, the tests and
 * the fuzz target: loading from memory, binding extra graph inputs to constants
 * (ONNX's backend tests feed weights as inputs), reading TensorProto files, and
 * running one backend test folder. No protobuf-c type appears here. */
#ifndef PARE_IO_ONNX_H
#define PARE_IO_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

#define PARE_ONNX_MAX_RANK 8

/* ONNX TensorProto data types pare reads. */
#define PARE_ONNX_FLOAT 1
#define PARE_ONNX_UINT8 2
#define PARE_ONNX_INT8 3
#define PARE_ONNX_INT32 6
#define PARE_ONNX_INT64 7
#define PARE_ONNX_BOOL 9

/* A constant tensor as the importer holds it: float32 values in f, or integer
 * values (int64, int32, int8, uint8 or bool in the model) in i. */
typedef struct pare_onnx_tensor {
    char *name;                        /* may be NULL */
    int dtype;                         /* PARE_ONNX_FLOAT or PARE_ONNX_INT64 */
    int src_dtype;                     /* the ONNX type it had (INT32, UINT8, ...) when it
                                          differs from dtype; 0 otherwise. Quantization reads
                                          it: a zero point's type is the codes' type */
    int rank;                          /* 0: a scalar */
    int64_t dims[PARE_ONNX_MAX_RANK];
    size_t n;                          /* elements */
    float *f;                          /* dtype FLOAT */
    int64_t *i;                        /* dtype INT64 */
    /* Importer state: batch marks int64 elements that stand for the batch size
     * (from Shape of an activation), so that a Reshape can keep the batch axis;
     * refs counts holders (pare_onnx_tensor_free drops one). */
    uint8_t *batch;
    int refs;
} pare_onnx_tensor;

void pare_onnx_tensor_free(pare_onnx_tensor *t);

/* Reads a serialised TensorProto (a backend test's input_0.pb); float32, int64,
 * int32, int8, uint8 and bool data. PARE_EUNSUPPORTED for other types, PARE_EFORMAT for a bad
 * file. */
pare_status pare_onnx_tensor_read(const char *path, pare_onnx_tensor **out);

typedef struct pare_onnx_options {
    /* Graph inputs after the data input (inputs that are not initializers), in
     * order, become these constants; they must all be given. */
    pare_onnx_tensor *const *bind;
    int n_bind;
    /* When set, the data input's dims (batch first) replace the ones the model
     * declares; a backend test's input_0.pb gives them. */
    const int64_t *input_dims;
    int input_rank;
} pare_onnx_options;

/* Imports a model held in memory. `what` names it in messages; `dir` is the
 * folder external data is read from (NULL: external data is refused). o may
 * be NULL. On failure *out is NULL and the status is PARE_EFORMAT for a file
 * that is not a sound ONNX model, PARE_EUNSUPPORTED for one pare cannot take
 * (the message lists every unsupported node), or PARE_ENOMEM / PARE_EIO. */
pare_status pare_onnx_decode(const uint8_t *buf, size_t len, const char *what, const char *dir,
                             const pare_onnx_options *o, pare_graph **out);
/* pare_onnx_load with options. */
pare_status pare_onnx_load_ex(const char *path, const pare_onnx_options *o, pare_graph **out);

/* ---- backend test folders (pare onnx-check) ----------------------------- */

typedef enum pare_onnx_result {
    PARE_ONNX_PASS = 0,
    PARE_ONNX_FAIL,
    PARE_ONNX_UNSUPPORTED,
    PARE_ONNX_SKIPPED /* the compiled plan only: it was not tried */
} pare_onnx_result;

typedef struct pare_onnx_case {
    char name[256];              /* the folder's name */
    pare_onnx_result result;     /* pare_graph_forward on every data set */
    double max_err;              /* max |pare - expected| over the outputs compared */
    pare_onnx_result plan;       /* the compiled engine: pass, fail, unsupported (did not
                                    compile) or skipped (the import failed) */
    double plan_max_err;
    int data_sets;
    char reason[512];            /* unsupported or FAIL: why, one sentence */
    char plan_reason[512];
} pare_onnx_case;

/* ONNX's backend test tolerance (onnx/backend/test/loader: numpy's
 * assert_allclose with rtol 1e-3, atol 1e-7): |actual - expected| <= atol +
 * rtol |expected|, NaN matching NaN. */
#define PARE_ONNX_RTOL 1e-3
#define PARE_ONNX_ATOL 1e-7

/* Runs one test folder (model.onnx and test_data_set_N/{input,output}_K.pb).
 * Returns PARE_OK whatever the outcome (in *out); an error only when dir is not
 * such a folder or memory runs out. */
pare_status pare_onnx_check_case(const char *dir, int threads, pare_onnx_case *out);

/* The test folders directly under dir (those holding model.onnx), sorted by
 * name; free with pare_onnx_case_list_free. */
pare_status pare_onnx_case_list(const char *dir, char ***names, int *n);
void pare_onnx_case_list_free(char **names, int n);

#endif
