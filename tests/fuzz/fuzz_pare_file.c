/* libFuzzer target for the .pare reader: any bytes give a status, never a crash or
 * leak; what the reader accepts, the writer writes back losslessly and in a stable form. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "graph/graph.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_pare_file: %s: %s\n", what, pare_last_error());
    abort();
}

/* Recomputes the CRCs of every section that lies in the buffer, of the table
 * and of the header, where the header says they are. */
static void fix_crcs(uint8_t *p, size_t len)
{
    if (len < 64)
        return;
    uint64_t toff = pare_le64(p + 24);
    uint64_t n = pare_le32(p + 32), es = pare_le32(p + 36);
    if (es >= 32 && toff <= len && n * es <= len - toff) {
        for (uint64_t i = 0; i < n; i++) {
            uint8_t *e = p + toff + i * es;
            uint64_t off = pare_le64(e + 8), sz = pare_le64(e + 16);
            if (off <= len && sz <= len - off)
                pare_put_le32(e + 24, pare_crc32(0, p + off, (size_t)sz));
        }
        pare_put_le32(p + 40, pare_crc32(0, p + toff, (size_t)(n * es)));
    }
    pare_put_le32(p + 60, pare_crc32(0, p, 60));
}

/* Whether two graphs hold the same tensors bit for bit: the writer chooses a
 * packed encoding by the values, and must never lose one (-0.0, NaN payloads,
 * a pruned value that is not zero), which equal bytes after a second round
 * trip would not show. */
static int same_tensors(const pare_graph *a, const pare_graph *b)
{
    if (a->n_params != b->n_params)
        return 0;
    for (int i = 0; i < a->n_params; i++) {
        const pare_param *x = &a->params[i], *y = &b->params[i];
        if (x->t->n != y->t->n || memcmp(x->t->data, y->t->data, x->t->n * sizeof(float)) != 0)
            return 0;
        if (!x->mask != !y->mask || !x->scheme != !y->scheme)
            return 0;
        if (x->mask && memcmp(x->mask, y->mask, x->t->n) != 0)
            return 0;
        if (x->scheme && strcmp(x->scheme, y->scheme) != 0)
            return 0;
    }
    return 1;
}

static void one(const uint8_t *data, size_t size)
{
    pare_graph *g = NULL;
    pare_file_extra x;
    if (pare_file_decode(data, size, "fuzz", &g, &x) != PARE_OK) {
        if (g || x.n || x.s)
            fail("a refused file returned something");
        return;
    }
    /* The reader tolerates layouts the writer never makes (other section
     * order, longer entries and records); the writer's form is canonical. */
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (pare_file_encode(g, x.s, x.n, &a, &na) != PARE_OK)
        fail("the writer refused what the reader accepted");
    pare_graph *h = NULL;
    pare_file_extra y;
    if (pare_file_decode(a, na, "fuzz (re-encoded)", &h, &y) != PARE_OK)
        fail("the reader refused what the writer wrote");
    if (!same_tensors(g, h))
        fail("a round trip through the writer changed a tensor");
    if (pare_file_encode(h, y.s, y.n, &b, &nb) != PARE_OK)
        fail("the writer refused its own file");
    if (na != nb || memcmp(a, b, na) != 0)
        fail("encoding is not stable across a round trip");
    pare_graph_free(h);
    pare_file_extra_free(&y);
    free(a);
    free(b);

    /* The same bytes without extra sections wanted. */
    pare_graph *k = NULL;
    if (pare_file_decode(data, size, "fuzz", &k, NULL) != PARE_OK)
        fail("the file loads with its extra sections but not without");
    pare_graph_free(k);
    pare_graph_free(g);
    pare_file_extra_free(&x);
}

/* Each input is tried as it is and with its CRCs made right, so that mutations
 * reach the checks behind the CRCs instead of all stopping at them. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size < 64)
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    fix_crcs(fixed, size);
    if (memcmp(fixed, data, size) != 0)
        one(fixed, size);
    free(fixed);
    return 0;
}
