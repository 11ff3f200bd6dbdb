/* The rules a graph must meet to live in a .pare file beyond pare_graph_validate's;
 * writer and reader apply the same ones, so whatever pare saves it can load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "graph/op.h"
#include "io/format.h"

/* Scheme 4 (SmartExchange): a d x d basis in the codebook (k = d, d dividing
 * the last dimension), one scale (the largest coefficient magnitude), a
 * positive power of two with zero point 0,
 * axis 0, codes of a sign and 1 to 8 exponent bits. The coefficients may be
 * absent (values known only as floats). */
static const char *basis_problem(const pare_qparams *q, int ndim, const int *dims, size_t n, char *buf,
                                 size_t cap)
{
    int e = 0;
    if (q->k != q->d || q->d < 1 || q->d > PARE_FILE_CODEBOOK_D_MAX)
        snprintf(buf, cap, "has a basis of %d rows of %d values; a basis is d x d with d from 1 to %d", q->k,
                 q->d, PARE_FILE_CODEBOOK_D_MAX);
    else if (dims[ndim - 1] % q->d != 0 || n % (size_t)q->d != 0)
        snprintf(buf, cap, "has a basis of %d values per row, which does not divide its last dimension %d", q->d,
                 dims[ndim - 1]);
    else if (!q->codebook)
        snprintf(buf, cap, "has a basis (quantization scheme 4) but no basis array");
    else if (q->bits < PARE_FILE_BASIS_BITS_MIN || q->bits > PARE_FILE_BASIS_BITS_MAX)
        snprintf(buf, cap, "has basis coefficients of %d bits; a sign and 1 to 8 exponent bits take %d to %d",
                 q->bits, PARE_FILE_BASIS_BITS_MIN, PARE_FILE_BASIS_BITS_MAX);
    else if (q->n != 1 || q->axis != 0 || !q->scale || !q->zero_point)
        snprintf(buf, cap, "has a basis but %d quantization scales and axis %d (a basis has 1 scale, axis 0)", q->n,
                 q->axis);
    else if (!(q->scale[0] > 0) || !isfinite(q->scale[0]) || frexpf(q->scale[0], &e) != 0.5f ||
             q->zero_point[0] != 0)
        snprintf(buf, cap,
                 "has a basis whose coefficient scale is %g with zero point %ld; it must be a "
                 "power of two with zero point 0",
                 (double)q->scale[0], (long)q->zero_point[0]);
    else
        return NULL;
    return buf;
}

const char *pare_file_qparams_problem(const pare_qparams *q, int ndim, const int *dims, size_t n,
                                      char *buf, size_t cap)
{
    if (q->bits < 0 || q->bits > 32)
        snprintf(buf, cap, "has %d quantization bits; 0 (float) to 32 are allowed", q->bits);
    else if (q->scheme < 0 || q->scheme > PARE_QSCHEME_BASIS)
        snprintf(buf, cap,
                 "has quantization scheme %d; this pare knows 0 (none), 1 (per tensor), 2 "
                 "(per channel), 3 (codebook) and 4 (basis)",
                 q->scheme);
    else if (q->bits == 0 && q->scheme != 0)
        snprintf(buf, cap, "is float (0 bits) but names quantization scheme %d", q->scheme);
    else if (q->scheme == PARE_QSCHEME_BASIS)
        return basis_problem(q, ndim, dims, n, buf, cap);
    else if (q->coef)
        snprintf(buf, cap, "has basis coefficients but quantization scheme %d (a basis is scheme 4)",
                 q->scheme);
    else if (q->scheme != PARE_QSCHEME_CODEBOOK && (q->k != 0 || q->d != 0 || q->codebook))
        snprintf(buf, cap, "has a codebook but quantization scheme %d (a codebook is scheme 3)",
                 q->scheme);
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && (q->k < 1 || q->k > PARE_FILE_CODEBOOK_K_MAX))
        snprintf(buf, cap, "is shared through a codebook of %d rows; 1 to %d are allowed", q->k,
                 PARE_FILE_CODEBOOK_K_MAX);
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && (q->d < 1 || q->d > PARE_FILE_CODEBOOK_D_MAX))
        snprintf(buf, cap, "has codebook rows of %d values; 1 to %d are allowed", q->d,
                 PARE_FILE_CODEBOOK_D_MAX);
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && dims[ndim - 1] % q->d != 0)
        snprintf(buf, cap, "has codebook rows of %d values, which do not divide its last "
                 "dimension %d", q->d, dims[ndim - 1]);
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && !q->codebook)
        snprintf(buf, cap, "is shared through a codebook (quantization scheme 3) but has none");
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && q->bits != pare_codebook_bits(q->k))
        snprintf(buf, cap, "has a codebook of %d rows, whose codes take %d bits, but says %d bits",
                 q->k, pare_codebook_bits(q->k), q->bits);
    else if (q->scheme == PARE_QSCHEME_CODEBOOK && (q->n != 0 || q->axis != 0))
        snprintf(buf, cap, "is shared through a codebook but has %d quantization scales and "
                 "axis %d (a codebook has neither)", q->n, q->axis);
    else if (q->n < 0 || (size_t)q->n > n)
        snprintf(buf, cap, "has %d quantization scales for its %zu values", q->n, n);
    else if (q->n > 0 && (!q->scale || !q->zero_point))
        snprintf(buf, cap, "has %d quantization scales but no scale or zero-point array", q->n);
    else if (q->scheme == 0 && q->n != 0)
        snprintf(buf, cap, "has %d quantization scales but no quantization scheme", q->n);
    else if (q->scheme == 1 && q->n != 1)
        snprintf(buf, cap, "is quantized per tensor, which takes 1 scale, not %d", q->n);
    else if (q->scheme == 2 && (q->axis < 0 || q->axis >= ndim))
        snprintf(buf, cap, "is quantized per channel along axis %d, but it has %d dimensions",
                 q->axis, ndim);
    else if (q->scheme == 2 && q->n != dims[q->axis])
        snprintf(buf, cap, "is quantized per channel along axis %d, which takes %d scales, not %d",
                 q->axis, dims[q->axis], q->n);
    else
        return NULL;
    return buf;
}

int pare_file_scheme_ok(const char *s, size_t n)
{
    if (!s || n == 0 || n > PARE_FILE_SCHEME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting makes the duplicate check O(n log n): a hostile file may hold
 * hundreds of thousands of names. */
static pare_status check_unique(const char **names, int n, const char *fmt)
{
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return pare_fail(PARE_EFORMAT, fmt, names[i]);
    return PARE_OK;
}

static pare_status check_names(const pare_graph *g)
{
    int most = g->n_nodes;
    if (g->n_params > most)
        most = g->n_params;
    if (g->n_meta > most)
        most = g->n_meta;
    const char **names = malloc(sizeof *names * (size_t)(most > 0 ? most : 1));
    if (!names)
        return pare_fail(PARE_ENOMEM, "out of memory checking names");
    pare_status s = PARE_OK;
    for (int i = 0; i < g->n_nodes; i++)
        names[i] = g->nodes[i].name;
    s = check_unique(names, g->n_nodes, "two layers are named '%s'");
    if (s != PARE_OK)
        goto out;
    for (int i = 0; i < g->n_params; i++)
        names[i] = g->params[i].name;
    s = check_unique(names, g->n_params, "two tensors are named '%s'");
    if (s != PARE_OK)
        goto out;
    for (int i = 0; i < g->n_meta; i++)
        names[i] = g->meta[i].key;
    s = check_unique(names, g->n_meta, "the metadata key '%s' appears twice");
out:
    free(names);
    return s;
}

static int name_ok(const char *s)
{
    return s && *s && strlen(s) <= PARE_FILE_NAME_MAX;
}

static void dims_text(char *buf, size_t cap, int ndim, const int *dims)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && at < cap; i++) {
        int k = snprintf(buf + at, cap - at, "%s%d", i ? "x" : "", dims[i]);
        if (k < 0)
            break;
        at += (size_t)k;
    }
}

/* The layer's op fixes each parameter's dimensions, not only their product:
 * kernels index weights by them. */
static pare_status check_param_dims(const pare_graph *g, int i)
{
    const pare_node *n = &g->nodes[i];
    const pare_op_def *def = pare_op_get(n->op);
    pare_param_spec specs[PARE_NODE_MAX_PARAMS];
    int k = def->params ? def->params(g, n, specs) : 0;
    for (int j = 0; j < k && j < n->n_param; j++) {
        const pare_param *p = &g->params[n->param[j]];
        int same = p->t->ndim == specs[j].ndim;
        for (int d = 0; same && d < specs[j].ndim; d++)
            same = p->t->dims[d] == specs[j].dims[d];
        if (!same) {
            char have[64], want[64];
            dims_text(have, sizeof have, p->t->ndim, p->t->dims);
            dims_text(want, sizeof want, specs[j].ndim, specs[j].dims);
            return pare_fail(PARE_EFORMAT, "layer %s: tensor '%s' is %s, its op needs %s", n->name,
                             p->name, have, want);
        }
    }
    return PARE_OK;
}

pare_status pare_file_check_graph(const pare_graph *g)
{
    pare_status s = pare_graph_validate(g);
    if (s != PARE_OK)
        return s;
    if (!g->name || strlen(g->name) > PARE_FILE_NAME_MAX)
        return pare_fail(PARE_EFORMAT, "the graph name is missing or longer than %d bytes",
                         PARE_FILE_NAME_MAX);
    for (int i = 0; i < g->n_nodes; i++) {
        if (!name_ok(g->nodes[i].name))
            return pare_fail(PARE_EFORMAT, "layer %d has no name or one longer than %d bytes", i,
                             PARE_FILE_NAME_MAX);
        s = check_param_dims(g, i);
        if (s != PARE_OK)
            return s;
    }
    for (int i = 0; i < g->n_params; i++) {
        const pare_param *p = &g->params[i];
        if (!name_ok(p->name))
            return pare_fail(PARE_EFORMAT, "tensor %d has no name or one longer than %d bytes", i,
                             PARE_FILE_NAME_MAX);
        /* validate saw every layer's own parameters; this finds strays. */
        int owned = 0;
        if (p->node >= 0 && p->node < g->n_nodes)
            for (int j = 0; j < g->nodes[p->node].n_param; j++)
                owned |= g->nodes[p->node].param[j] == i;
        if (!owned)
            return pare_fail(PARE_EFORMAT, "tensor '%s' belongs to no layer", p->name);
        char why[160];
        if (pare_file_qparams_problem(&p->q, p->t->ndim, p->t->dims, p->t->n, why, sizeof why))
            return pare_fail(PARE_EFORMAT, "tensor '%s' %s", p->name, why);
        /* The scheme is stored as text and shown to people: no control bytes,
         * no encodings to guess, and short. Its meaning is compress's business. */
        if (p->scheme &&
            !pare_file_scheme_ok(p->scheme, strnlen(p->scheme, PARE_FILE_SCHEME_MAX + 1)))
            return pare_fail(PARE_EFORMAT,
                             "tensor '%s' has a sparsity scheme that is not 1 to %d printable "
                             "ASCII characters",
                             p->name, PARE_FILE_SCHEME_MAX);
    }
    for (int i = 0; i < g->n_meta; i++) {
        const pare_meta *m = &g->meta[i];
        if (!m->key || !m->value || strlen(m->key) > PARE_FILE_NAME_MAX ||
            strlen(m->value) > PARE_FILE_VALUE_MAX)
            return pare_fail(PARE_EFORMAT,
                             "metadata entry %d is missing, or its key is longer than %d bytes "
                             "or its value longer than %d",
                             i, PARE_FILE_NAME_MAX, PARE_FILE_VALUE_MAX);
    }
    return check_names(g);
}
