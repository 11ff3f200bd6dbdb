/* ONNX tensors: TensorProto to float32 / int64 arrays with every declared size
 * compared to the bytes present (and external data kept inside the model's
 * folder), and the constant folding the importer does on them. */
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/error.h"
#include "core/fsio.h"
#include "io/onnx.h"

void pare_onnx_tensor_free(pare_onnx_tensor *t)
{
    if (!t || --t->refs > 0)
        return;
    free(t->name);
    free(t->f);
    free(t->i);
    free(t->batch);
    free(t);
}

#ifndef PARE_ONNX

pare_status pare_onnx_tensor_read(const char *path, pare_onnx_tensor **out)
{
    (void)path;
    *out = NULL;
    return pare_fail(PARE_EUNSUPPORTED,
                     "pare was built without protobuf-c, so it cannot read ONNX tensors");
}

#else

#include "io/onnx_imp.h"

/* A TensorProto file holds one tensor; 2 GiB is protobuf's own limit. */
#define TENSOR_FILE_MAX ((size_t)1 << 31)

const char *onnx_dtype_name(int dtype)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT",   "UINT8",  "INT8",   "UINT16",    "INT16",      "INT32",
        "INT64",     "STRING",  "BOOL",   "FLOAT16", "DOUBLE",   "UINT32",     "UINT64",
        "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1",
    };
    if (dtype >= 0 && dtype < (int)(sizeof names / sizeof names[0]))
        return names[dtype];
    return "an unknown type";
}

pare_onnx_tensor *onnx_tensor_new(int dtype, int rank, const int64_t *dims, size_t max,
                                  pare_status *st)
{
    size_t n = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0) {
            *st = pare_fail(PARE_EFORMAT, "has a negative dimension (%lld)", (long long)dims[k]);
            return NULL;
        }
        if (dims[k] > 0 && n > max / (size_t)dims[k]) {
            *st = pare_fail(PARE_EUNSUPPORTED, "would have more than %zu elements", max);
            return NULL;
        }
        n *= (size_t)dims[k];
    }
    pare_onnx_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        *st = pare_fail(PARE_ENOMEM, "out of memory for a tensor");
        return NULL;
    }
    t->refs = 1;
    t->dtype = dtype;
    t->rank = rank;
    for (int k = 0; k < rank; k++)
        t->dims[k] = dims[k];
    t->n = n;
    size_t alloc = n > 0 ? n : 1;
    if (dtype == PARE_ONNX_FLOAT)
        t->f = calloc(alloc, sizeof(float));
    else
        t->i = calloc(alloc, sizeof(int64_t));
    if (!t->f && !t->i) {
        free(t);
        *st = pare_fail(PARE_ENOMEM, "out of memory for a tensor of %zu elements", n);
        return NULL;
    }
    *st = PARE_OK;
    return t;
}

int onnx_tensor_has_batch(const pare_onnx_tensor *t)
{
    if (!t->batch)
        return 0;
    for (size_t k = 0; k < t->n; k++)
        if (t->batch[k])
            return 1;
    return 0;
}

/* ---- TensorProto --------------------------------------------------------- */

/* A decimal number of at most 18 digits, nothing else. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s || strlen(s) > 18)
        return 0;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return 1;
}

/* A relative path with no ".." component (checked again after resolving links). */
static int location_ok(const char *loc)
{
    if (!loc || !*loc || loc[0] == '/' || strlen(loc) >= PATH_MAX)
        return 0;
    const char *p = loc;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += len;
        while (*p == '/')
            p++;
    }
    return 1;
}

static pare_status read_external(const Onnx__TensorProto *tp, const char *dir, const char *what,
                                 size_t need, uint8_t **out)
{
    *out = NULL;
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t k = 0; k < tp->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[k];
        if (!e || !e->key)
            continue;
        if (!strcmp(e->key, "location"))
            loc = e->value;
        else if (!strcmp(e->key, "offset"))
            off_s = e->value;
        else if (!strcmp(e->key, "length"))
            len_s = e->value;
    }
    if (!dir)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s keeps its data in an external file, which needs the model's folder "
                         "(it was loaded from memory)",
                         what);
    if (!loc)
        return pare_fail(PARE_EFORMAT, "%s has external data without a location", what);
    if (!location_ok(loc))
        return pare_fail(PARE_EFORMAT,
                         "%s: external data location '%.200s' is not a relative path inside the "
                         "model's folder",
                         what, loc);
    uint64_t off = 0, len = need;
    if (off_s && !parse_u64(off_s, &off))
        return pare_fail(PARE_EFORMAT, "%s: external data offset '%.40s' is not a number", what,
                         off_s);
    if (len_s && !parse_u64(len_s, &len))
        return pare_fail(PARE_EFORMAT, "%s: external data length '%.40s' is not a number", what,
                         len_s);
    if (len != need)
        return pare_fail(PARE_EFORMAT,
                         "%s: external data length %llu disagrees with its dims, which need %zu "
                         "bytes",
                         what, (unsigned long long)len, need);
    char joined[PATH_MAX + 1];
    char real_dir[PATH_MAX], real_file[PATH_MAX];
    if (!pare_path_join(joined, sizeof joined, dir, loc))
        return pare_fail(PARE_EFORMAT, "%s: external data path is too long", what);
    if (!realpath(dir, real_dir))
        return pare_fail(PARE_EIO, "cannot resolve the model's folder %s: %s", dir,
                         strerror(errno));
    if (!realpath(joined, real_file))
        return pare_fail(PARE_EFORMAT, "%s: cannot open its external data file %.200s: %s", what,
                         loc, strerror(errno));
    /* A link inside the folder may still point out of it. */
    size_t dl = strlen(real_dir);
    int inside = dl == 1 ? real_file[0] == '/' && real_file[1]
                         : !strncmp(real_file, real_dir, dl) && real_file[dl] == '/';
    if (!inside)
        return pare_fail(PARE_EFORMAT,
                         "%s: external data file '%.200s' lies outside the model's folder", what,
                         loc);
    int fd = open(real_file, O_RDONLY);
    if (fd < 0)
        return pare_fail(PARE_EFORMAT, "%s: cannot open its external data file %.200s: %s", what,
                         loc, strerror(errno));
    struct stat st;
    pare_status s = PARE_OK;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = pare_fail(PARE_EFORMAT, "%s: external data '%.200s' is not a regular file", what, loc);
        goto out;
    }
    if (off > (uint64_t)st.st_size || need > (uint64_t)st.st_size - off) {
        s = pare_fail(PARE_EFORMAT,
                      "%s: external data (%zu bytes at offset %llu) runs past the end of "
                      "%.200s (%lld bytes)",
                      what, need, (unsigned long long)off, loc, (long long)st.st_size);
        goto out;
    }
    buf = malloc(need > 0 ? need : 1);
    if (!buf) {
        s = pare_fail(PARE_ENOMEM, "out of memory reading the external data of %s", what);
        goto out;
    }
    size_t got = 0;
    while (got < need) {
        ssize_t r = pread(fd, buf + got, need - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            s = pare_fail(PARE_EFORMAT, "%s: cannot read its external data from %.200s", what,
                          loc);
            free(buf);
            buf = NULL;
            goto out;
        }
        got += (size_t)r;
    }
    *out = buf;
out:
    close(fd);
    return s;
}

pare_status onnx_tensor_from_proto(const Onnx__TensorProto *tp, const char *dir, const char *what,
                                   pare_onnx_tensor **out)
{
    *out = NULL;
    int dtype = tp->has_data_type ? tp->data_type : 0;
    /* int8 and uint8 hold the codes of quantized models (DequantizeLinear). */
    int small = dtype == PARE_ONNX_INT8 || dtype == PARE_ONNX_UINT8;
    if (dtype != PARE_ONNX_FLOAT && dtype != PARE_ONNX_INT64 && dtype != PARE_ONNX_INT32 &&
        dtype != PARE_ONNX_BOOL && !small)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s is %s; pare reads float32 tensors (int8, uint8 and int32 ones for "
                         "quantized weights, and int64, int32 or bool ones for shapes and flags)",
                         what, onnx_dtype_name(dtype));
    if (tp->segment)
        return pare_fail(PARE_EUNSUPPORTED, "%s is a segment of a tensor, which pare does not read",
                         what);
    if (tp->n_dims > PARE_ONNX_MAX_RANK)
        return pare_fail(PARE_EUNSUPPORTED, "%s has %zu dimensions; pare reads up to %d", what,
                         tp->n_dims, PARE_ONNX_MAX_RANK);
    pare_status s;
    int store = dtype == PARE_ONNX_FLOAT ? PARE_ONNX_FLOAT : PARE_ONNX_INT64;
    for (size_t k = 0; k < tp->n_dims; k++)
        if (tp->dims[k] < 0)
            return pare_fail(PARE_EFORMAT, "%s has a negative dimension (%lld)", what,
                             (long long)tp->dims[k]);
    pare_onnx_tensor *t = onnx_tensor_new(store, (int)tp->n_dims, tp->dims, ONNX_TENSOR_MAX, &s);
    if (!t) {
        pare_error_prefix("%s", what);
        return s == PARE_EUNSUPPORTED ? PARE_EFORMAT : s;
    }
    if (store != dtype)
        t->src_dtype = dtype;
    size_t n = t->n, esize = dtype == PARE_ONNX_INT64 ? 8 : dtype == PARE_ONNX_BOOL || small ? 1 : 4;
    /* bool, int8 and uint8, like int32, keep their typed values in int32_data. */
    size_t typed = dtype == PARE_ONNX_FLOAT   ? tp->n_float_data
                   : dtype == PARE_ONNX_INT64 ? tp->n_int64_data
                                              : tp->n_int32_data;
    int external = tp->has_data_location &&
                   tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    uint8_t *ext = NULL;
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (external) {
        if ((tp->has_raw_data && tp->raw_data.len > 0) || typed > 0) {
            s = pare_fail(PARE_EFORMAT, "%s has external data and values of its own", what);
            goto fail;
        }
        s = read_external(tp, dir, what, n * esize, &ext);
        if (s != PARE_OK)
            goto fail;
        raw = ext;
        raw_len = n * esize;
    } else if (tp->has_raw_data && tp->raw_data.len > 0) {
        if (typed > 0) {
            s = pare_fail(PARE_EFORMAT, "%s holds its values twice (raw and typed)", what);
            goto fail;
        }
        raw = tp->raw_data.data;
        raw_len = tp->raw_data.len;
    }
    if (raw) {
        if (raw_len != n * esize) {
            s = pare_fail(PARE_EFORMAT,
                          "%s has %zu bytes of data, but its dims say %zu values of %zu bytes",
                          what, raw_len, n, esize);
            goto fail;
        }
        for (size_t k = 0; k < n; k++) {
            const uint8_t *p = raw + k * esize;
            if (dtype == PARE_ONNX_FLOAT) {
                uint32_t u = pare_le32(p);
                memcpy(&t->f[k], &u, 4);
            } else if (dtype == PARE_ONNX_INT64) {
                t->i[k] = (int64_t)pare_le64(p);
            } else if (dtype == PARE_ONNX_BOOL) {
                t->i[k] = p[0] != 0;
            } else if (dtype == PARE_ONNX_UINT8) {
                t->i[k] = p[0];
            } else if (dtype == PARE_ONNX_INT8) {
                t->i[k] = (int8_t)p[0];
            } else {
                t->i[k] = (int32_t)pare_le32(p);
            }
        }
    } else if (typed != n) {
        s = pare_fail(PARE_EFORMAT, "%s has %zu values, but its dims say %zu", what, typed, n);
        goto fail;
    } else if (dtype == PARE_ONNX_FLOAT) {
        if (n)
            memcpy(t->f, tp->float_data, n * sizeof(float));
    } else if (dtype == PARE_ONNX_INT64) {
        if (n)
            memcpy(t->i, tp->int64_data, n * sizeof(int64_t));
    } else {
        for (size_t k = 0; k < n; k++) {
            int32_t v = tp->int32_data[k];
            /* A typed int8 or uint8 value outside its type is a damaged file. */
            if ((dtype == PARE_ONNX_UINT8 && (v < 0 || v > 255)) ||
                (dtype == PARE_ONNX_INT8 && (v < -128 || v > 127))) {
                s = pare_fail(PARE_EFORMAT, "%s holds %ld, which is not a %s value", what, (long)v,
                              onnx_dtype_name(dtype));
                goto fail;
            }
            t->i[k] = dtype == PARE_ONNX_BOOL ? v != 0 : v;
        }
    }
    free(ext);
    *out = t;
    return PARE_OK;
fail:
    free(ext);
    pare_onnx_tensor_free(t);
    return s;
}

pare_status pare_onnx_tensor_read(const char *path, pare_onnx_tensor **out)
{
    *out = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    pare_status s = pare_read_file(path, TENSOR_FILE_MAX, &buf, &len);
    if (s != PARE_OK)
        return s;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp)
        return pare_fail(PARE_EFORMAT, "%s is not a serialised ONNX tensor (TensorProto)", path);
    char what[1200];
    snprintf(what, sizeof what, "tensor file %s", path);
    /* ONNX's test data also hold sequences and optionals, which parse as
     * TensorProtos whose dims are their names' bytes: far more elements than a
     * file holds. */
    size_t count = 1;
    int huge = 0;
    for (size_t k = 0; k < tp->n_dims && !huge; k++) {
        if (tp->dims[k] > 0 && count > ONNX_TENSOR_MAX / (uint64_t)tp->dims[k])
            huge = 1;
        else if (tp->dims[k] >= 0)
            count *= (size_t)tp->dims[k];
    }
    if (huge) {
        onnx__tensor_proto__free_unpacked(tp, NULL);
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: its dims say more than %zu elements; it is no tensor pare reads (it "
                         "may hold a sequence or an optional)",
                         what, ONNX_TENSOR_MAX);
    }
    s = onnx_tensor_from_proto(tp, NULL, what, out);
    if (s == PARE_OK && tp->name && *tp->name) {
        (*out)->name = strdup(tp->name);
        if (!(*out)->name) {
            pare_onnx_tensor_free(*out);
            *out = NULL;
            s = pare_fail(PARE_ENOMEM, "out of memory reading %s", path);
        }
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return s;
}

/* ---- folding ---------------------------------------------------------------- */

static pare_status batch_arith(void)
{
    return pare_fail(PARE_EUNSUPPORTED,
                     "it computes with the batch size, which pare keeps symbolic (only a "
                     "Reshape may take it, as its first dimension)");
}

/* A new tensor and, when src carries batch marks, room for them. */
static pare_onnx_tensor *derive(int dtype, int rank, const int64_t *dims, int marks,
                                pare_status *st)
{
    pare_onnx_tensor *t = onnx_tensor_new(dtype, rank, dims, ONNX_FOLD_MAX, st);
    if (t && marks && dtype == PARE_ONNX_INT64) {
        t->batch = calloc(t->n > 0 ? t->n : 1, 1);
        if (!t->batch) {
            pare_onnx_tensor_free(t);
            *st = pare_fail(PARE_ENOMEM, "out of memory folding a constant");
            return NULL;
        }
    }
    return t;
}

static void put(pare_onnx_tensor *o, size_t oi, const pare_onnx_tensor *a, size_t ai)
{
    if (o->dtype == PARE_ONNX_FLOAT) {
        o->f[oi] = a->f[ai];
    } else {
        o->i[oi] = a->i[ai];
        if (o->batch)
            o->batch[oi] = a->batch ? a->batch[ai] : 0;
    }
}

static void row_strides(int rank, const int64_t *dims, int64_t *st)
{
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        st[k] = s;
        s *= dims[k];
    }
}

pare_status onnx_fold_binary(int op, const pare_onnx_tensor *a, const pare_onnx_tensor *b,
                             pare_onnx_tensor **out)
{
    *out = NULL;
    if (a->dtype != b->dtype)
        return pare_fail(PARE_EUNSUPPORTED, "its operands are of different types");
    if (onnx_tensor_has_batch(a) || onnx_tensor_has_batch(b))
        return batch_arith();
    int r = a->rank > b->rank ? a->rank : b->rank;
    int64_t dims[PARE_ONNX_MAX_RANK], sa[PARE_ONNX_MAX_RANK], sb[PARE_ONNX_MAX_RANK];
    int64_t ra[PARE_ONNX_MAX_RANK], rb[PARE_ONNX_MAX_RANK];
    row_strides(a->rank, a->dims, ra);
    row_strides(b->rank, b->dims, rb);
    for (int k = 0; k < r; k++) {
        int ka = k - (r - a->rank), kb = k - (r - b->rank);
        int64_t da = ka >= 0 ? a->dims[ka] : 1, db = kb >= 0 ? b->dims[kb] : 1;
        if (da != db && da != 1 && db != 1)
            return pare_fail(PARE_EFORMAT, "its operands' dims %lld and %lld do not broadcast",
                             (long long)da, (long long)db);
        dims[k] = da == 1 ? db : da;
        sa[k] = ka >= 0 && da != 1 ? ra[ka] : 0;
        sb[k] = kb >= 0 && db != 1 ? rb[kb] : 0;
    }
    pare_status st;
    pare_onnx_tensor *o = derive(a->dtype, r, dims, 0, &st);
    if (!o)
        return st;
    int64_t idx[PARE_ONNX_MAX_RANK] = {0};
    size_t ia = 0, ib = 0;
    for (size_t e = 0; e < o->n; e++) {
        if (o->dtype == PARE_ONNX_FLOAT) {
            float x = a->f[ia], y = b->f[ib];
            o->f[e] = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
        } else {
            int64_t x = a->i[ia], y = b->i[ib], z = 0;
            int bad = 0;
            if (op == '+')
                bad = __builtin_add_overflow(x, y, &z);
            else if (op == '-')
                bad = __builtin_sub_overflow(x, y, &z);
            else if (op == '*')
                bad = __builtin_mul_overflow(x, y, &z);
            else if (y == 0 || (y == -1 && x == INT64_MIN))
                bad = 1;
            else
                z = x / y;
            if (bad) {
                pare_onnx_tensor_free(o);
                return pare_fail(PARE_EUNSUPPORTED,
                                 "its integer arithmetic overflows or divides by zero");
            }
            o->i[e] = z;
        }
        /* Next index: the last axis first, as the elements lie. */
        for (int k = r - 1; k >= 0; k--) {
            idx[k]++;
            ia += (size_t)sa[k];
            ib += (size_t)sb[k];
            if (idx[k] < dims[k])
                break;
            ia -= (size_t)(sa[k] * dims[k]);
            ib -= (size_t)(sb[k] * dims[k]);
            idx[k] = 0;
        }
    }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_neg(const pare_onnx_tensor *a, pare_onnx_tensor **out)
{
    *out = NULL;
    if (onnx_tensor_has_batch(a))
        return batch_arith();
    pare_status st;
    pare_onnx_tensor *o = derive(a->dtype, a->rank, a->dims, 0, &st);
    if (!o)
        return st;
    for (size_t e = 0; e < a->n; e++) {
        if (a->dtype == PARE_ONNX_FLOAT) {
            o->f[e] = -a->f[e];
        } else if (a->i[e] == INT64_MIN) {
            pare_onnx_tensor_free(o);
            return pare_fail(PARE_EUNSUPPORTED, "its integer arithmetic overflows");
        } else {
            o->i[e] = -a->i[e];
        }
    }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_cast(const pare_onnx_tensor *a, int to, pare_onnx_tensor **out)
{
    *out = NULL;
    if (to != PARE_ONNX_FLOAT && to != PARE_ONNX_INT64 && to != PARE_ONNX_INT32)
        return pare_fail(PARE_EUNSUPPORTED, "it casts to %s; pare folds FLOAT, INT64 and INT32",
                         onnx_dtype_name(to));
    int store = to == PARE_ONNX_FLOAT ? PARE_ONNX_FLOAT : PARE_ONNX_INT64;
    if (store == PARE_ONNX_FLOAT && onnx_tensor_has_batch(a))
        return batch_arith();
    pare_status st;
    pare_onnx_tensor *o = derive(store, a->rank, a->dims, a->batch != NULL, &st);
    if (!o)
        return st;
    double lo = to == PARE_ONNX_INT32 ? -2147483648.0 : -9223372036854775808.0;
    double hi = to == PARE_ONNX_INT32 ? 2147483647.0 : 9223372036854774784.0;
    for (size_t e = 0; e < a->n; e++) {
        if (store == PARE_ONNX_FLOAT) {
            o->f[e] = a->dtype == PARE_ONNX_FLOAT ? a->f[e] : (float)a->i[e];
            continue;
        }
        if (a->dtype == PARE_ONNX_FLOAT) {
            double v = a->f[e];
            if (!(v >= lo && v <= hi)) {
                pare_onnx_tensor_free(o);
                return pare_fail(PARE_EUNSUPPORTED, "it casts %g, which %s cannot hold", v,
                                 onnx_dtype_name(to));
            }
            o->i[e] = (int64_t)v;
        } else {
            if (to == PARE_ONNX_INT32 && (a->i[e] < INT32_MIN || a->i[e] > INT32_MAX)) {
                pare_onnx_tensor_free(o);
                return pare_fail(PARE_EUNSUPPORTED, "it casts %lld, which INT32 cannot hold",
                                 (long long)a->i[e]);
            }
            put(o, e, a, e);
        }
    }
    *out = o;
    return PARE_OK;
}

static int norm_axis(int64_t axis, int rank, int *out)
{
    if (axis < -rank || axis >= rank || rank == 0)
        return 0;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 1;
}

pare_status onnx_fold_gather(const pare_onnx_tensor *data, const pare_onnx_tensor *idx, int axis,
                             pare_onnx_tensor **out)
{
    *out = NULL;
    int ax;
    if (!norm_axis(axis, data->rank, &ax))
        return pare_fail(PARE_EFORMAT, "its axis %d does not fit %d dimensions", axis, data->rank);
    if (idx->dtype != PARE_ONNX_INT64)
        return pare_fail(PARE_EFORMAT, "its indices are not integers");
    if (onnx_tensor_has_batch(idx))
        return batch_arith();
    int r = data->rank - 1 + idx->rank;
    if (r > PARE_ONNX_MAX_RANK)
        return pare_fail(PARE_EUNSUPPORTED, "its result would have %d dimensions", r);
    int64_t dims[PARE_ONNX_MAX_RANK];
    int k = 0;
    for (int j = 0; j < ax; j++)
        dims[k++] = data->dims[j];
    for (int j = 0; j < idx->rank; j++)
        dims[k++] = idx->dims[j];
    for (int j = ax + 1; j < data->rank; j++)
        dims[k++] = data->dims[j];
    int64_t d = data->dims[ax];
    for (size_t e = 0; e < idx->n; e++)
        if (idx->i[e] < -d || idx->i[e] >= d)
            return pare_fail(PARE_EFORMAT, "index %lld is out of range for a dimension of %lld",
                             (long long)idx->i[e], (long long)d);
    pare_status st;
    pare_onnx_tensor *o = derive(data->dtype, r, dims, data->batch != NULL, &st);
    if (!o)
        return st;
    size_t outer = 1, inner = 1;
    for (int j = 0; j < ax; j++)
        outer *= (size_t)data->dims[j];
    for (int j = ax + 1; j < data->rank; j++)
        inner *= (size_t)data->dims[j];
    size_t oi = 0;
    for (size_t a = 0; a < outer; a++)
        for (size_t e = 0; e < idx->n; e++) {
            int64_t j = idx->i[e] < 0 ? idx->i[e] + d : idx->i[e];
            size_t base = (a * (size_t)d + (size_t)j) * inner;
            for (size_t q = 0; q < inner; q++)
                put(o, oi++, data, base + q);
        }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_slice(const pare_onnx_tensor *data, const int64_t *starts,
                            const int64_t *ends, const int64_t *axes, const int64_t *steps, int n,
                            pare_onnx_tensor **out)
{
    *out = NULL;
    int r = data->rank;
    int64_t start[PARE_ONNX_MAX_RANK], step[PARE_ONNX_MAX_RANK], dims[PARE_ONNX_MAX_RANK];
    int seen[PARE_ONNX_MAX_RANK] = {0};
    for (int k = 0; k < r; k++) {
        start[k] = 0;
        step[k] = 1;
        dims[k] = data->dims[k];
    }
    if (n > r)
        return pare_fail(PARE_EFORMAT, "it slices %d axes of a %d-dimensional tensor", n, r);
    for (int j = 0; j < n; j++) {
        int ax;
        if (!norm_axis(axes ? axes[j] : j, r, &ax) || seen[ax])
            return pare_fail(PARE_EFORMAT, "its axes are out of range or repeated");
        seen[ax] = 1;
        int64_t d = data->dims[ax], s = starts[j], e = ends[j], st = steps ? steps[j] : 1;
        if (st == 0)
            return pare_fail(PARE_EFORMAT, "it has a step of 0");
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        /* A step longer than the axis takes one element, as the clamped one does;
         * clamping keeps the arithmetic below from overflowing. */
        int64_t reach = d > 0 ? d : 1;
        if (st > reach)
            st = reach;
        if (st < -reach)
            st = -reach;
        int64_t cnt;
        if (st > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            cnt = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            cnt = s > e ? (s - e - 1) / -st + 1 : 0;
        }
        start[ax] = s;
        step[ax] = st;
        dims[ax] = cnt;
    }
    pare_status stt;
    pare_onnx_tensor *o = derive(data->dtype, r, dims, data->batch != NULL, &stt);
    if (!o)
        return stt;
    int64_t src_st[PARE_ONNX_MAX_RANK], idx[PARE_ONNX_MAX_RANK] = {0};
    row_strides(r, data->dims, src_st);
    for (size_t e = 0; e < o->n; e++) {
        int64_t si = 0;
        for (int k = 0; k < r; k++)
            si += (start[k] + idx[k] * step[k]) * src_st[k];
        put(o, e, data, (size_t)si);
        for (int k = r - 1; k >= 0; k--) {
            if (++idx[k] < dims[k])
                break;
            idx[k] = 0;
        }
    }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_concat(pare_onnx_tensor *const *xs, int n, int axis, pare_onnx_tensor **out)
{
    *out = NULL;
    const pare_onnx_tensor *a = xs[0];
    int ax, marks = 0;
    if (!norm_axis(axis, a->rank, &ax))
        return pare_fail(PARE_EFORMAT, "its axis %d does not fit %d dimensions", axis, a->rank);
    int64_t dims[PARE_ONNX_MAX_RANK];
    for (int k = 0; k < a->rank; k++)
        dims[k] = a->dims[k];
    dims[ax] = 0;
    for (int j = 0; j < n; j++) {
        const pare_onnx_tensor *x = xs[j];
        if (x->dtype != a->dtype || x->rank != a->rank)
            return pare_fail(PARE_EFORMAT, "its inputs differ in type or rank");
        for (int k = 0; k < a->rank; k++)
            if (k != ax && x->dims[k] != a->dims[k])
                return pare_fail(PARE_EFORMAT, "its inputs differ along axis %d", k);
        if (x->dims[ax] > (int64_t)ONNX_FOLD_MAX || dims[ax] > (int64_t)ONNX_FOLD_MAX)
            return pare_fail(PARE_EUNSUPPORTED, "its result is too large to fold");
        dims[ax] += x->dims[ax];
        marks |= x->batch != NULL;
    }
    pare_status st;
    pare_onnx_tensor *o = derive(a->dtype, a->rank, dims, marks, &st);
    if (!o)
        return st;
    size_t outer = 1, inner = 1, oi = 0;
    for (int k = 0; k < ax; k++)
        outer *= (size_t)a->dims[k];
    for (int k = ax + 1; k < a->rank; k++)
        inner *= (size_t)a->dims[k];
    for (size_t q = 0; q < outer; q++)
        for (int j = 0; j < n; j++) {
            size_t run = (size_t)xs[j]->dims[ax] * inner;
            for (size_t e = 0; e < run; e++)
                put(o, oi++, xs[j], q * run + e);
        }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_transpose(const pare_onnx_tensor *a, const int *perm,
                                pare_onnx_tensor **out)
{
    *out = NULL;
    int r = a->rank, used[PARE_ONNX_MAX_RANK] = {0};
    int64_t dims[PARE_ONNX_MAX_RANK], src_st[PARE_ONNX_MAX_RANK], st_out[PARE_ONNX_MAX_RANK];
    for (int k = 0; k < r; k++) {
        if (perm[k] < 0 || perm[k] >= r || used[perm[k]])
            return pare_fail(PARE_EFORMAT, "its perm is not a permutation of the axes");
        used[perm[k]] = 1;
        dims[k] = a->dims[perm[k]];
    }
    row_strides(r, a->dims, src_st);
    for (int k = 0; k < r; k++)
        st_out[k] = src_st[perm[k]];
    pare_status st;
    pare_onnx_tensor *o = derive(a->dtype, r, dims, a->batch != NULL, &st);
    if (!o)
        return st;
    int64_t idx[PARE_ONNX_MAX_RANK] = {0};
    for (size_t e = 0; e < o->n; e++) {
        int64_t si = 0;
        for (int k = 0; k < r; k++)
            si += idx[k] * st_out[k];
        put(o, e, a, (size_t)si);
        for (int k = r - 1; k >= 0; k--) {
            if (++idx[k] < dims[k])
                break;
            idx[k] = 0;
        }
    }
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_reshape(const pare_onnx_tensor *a, int rank, const int64_t *dims,
                              pare_onnx_tensor **out)
{
    *out = NULL;
    pare_status st;
    pare_onnx_tensor *o = derive(a->dtype, rank, dims, a->batch != NULL, &st);
    if (!o)
        return st;
    if (o->n != a->n) {
        pare_onnx_tensor_free(o);
        return pare_fail(PARE_EFORMAT, "its new shape holds %zu elements, not %zu", o->n, a->n);
    }
    for (size_t e = 0; e < a->n; e++)
        put(o, e, a, e);
    *out = o;
    return PARE_OK;
}

pare_status onnx_fold_fill(int dtype, int rank, const int64_t *dims, double value,
                           pare_onnx_tensor **out)
{
    pare_status st;
    *out = derive(dtype, rank, dims, 0, &st);
    if (!*out)
        return st;
    for (size_t e = 0; e < (*out)->n; e++) {
        if (dtype == PARE_ONNX_FLOAT)
            (*out)->f[e] = (float)value;
        else
            (*out)->i[e] = (int64_t)value;
    }
    return PARE_OK;
}

pare_status onnx_fold_range(const pare_onnx_tensor *start, const pare_onnx_tensor *limit,
                            const pare_onnx_tensor *delta, pare_onnx_tensor **out)
{
    *out = NULL;
    if (start->n != 1 || limit->n != 1 || delta->n != 1)
        return pare_fail(PARE_EFORMAT, "its start, limit and delta are not scalars");
    if (start->dtype != limit->dtype || start->dtype != delta->dtype)
        return pare_fail(PARE_EFORMAT, "its start, limit and delta differ in type");
    if (onnx_tensor_has_batch(start) || onnx_tensor_has_batch(limit) ||
        onnx_tensor_has_batch(delta))
        return batch_arith();
    int fl = start->dtype == PARE_ONNX_FLOAT;
    double s = fl ? start->f[0] : (double)start->i[0];
    double l = fl ? limit->f[0] : (double)limit->i[0];
    double d = fl ? delta->f[0] : (double)delta->i[0];
    if (!(d != 0) || !isfinite(s) || !isfinite(l) || !isfinite(d))
        return pare_fail(PARE_EFORMAT, "its delta is 0 or a bound is not finite");
    double cnt = ceil((l - s) / d);
    if (cnt < 0)
        cnt = 0;
    if (cnt > (double)ONNX_FOLD_MAX)
        return pare_fail(PARE_EUNSUPPORTED, "it would have more than %zu elements", ONNX_FOLD_MAX);
    int64_t dim = (int64_t)cnt;
    pare_status st;
    pare_onnx_tensor *o = derive(start->dtype, 1, &dim, 0, &st);
    if (!o)
        return st;
    for (int64_t e = 0; e < dim; e++) {
        if (fl) {
            o->f[e] = start->f[0] + (float)e * delta->f[0];
            continue;
        }
        int64_t step, v;
        if (__builtin_mul_overflow(e, delta->i[0], &step) ||
            __builtin_add_overflow(start->i[0], step, &v)) {
            pare_onnx_tensor_free(o);
            return pare_fail(PARE_EUNSUPPORTED, "its integer arithmetic overflows");
        }
        o->i[e] = v;
    }
    *out = o;
    return PARE_OK;
}

#endif
