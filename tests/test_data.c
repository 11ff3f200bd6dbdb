/* Tests of the data layer: the IDX and CIFAR-10 readers (round trip, gzip,
 * truncation, corruption), dataset accessors, epoch order and batch augmentation. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/rng.h"
#include "data/data.h"
#include "test.h"

#define PATH_LEN 1024
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---- helpers ------------------------------------------------------------ */

static void tpath(char *out, const char *name)
{
    snprintf(out, PATH_LEN, "%s", pare_test_path(name));
}

static void tmkdir(char *out, const char *name)
{
    tpath(out, name);
    if (mkdir(out, 0700) != 0)
        pare_test_fail(__FILE__, __LINE__, "cannot create %s", out);
}

static void sub(char *out, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > PATH_LEN) {
        pare_test_fail(__FILE__, __LINE__, "path %s/%s too long", dir, name);
        out[0] = 0;
        return;
    }
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

static void fill_bytes(uint8_t *p, size_t n, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 11, 22, 33);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)pare_rng_u64(&r);
}

/* An IDX file image: header for dims, then ndata bytes of data (which may
 * disagree with the dims, to make broken files). */
static uint8_t *make_idx(int type, int ndim, const uint32_t *dims, const uint8_t *data,
                         size_t ndata, size_t *len)
{
    size_t hdr = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(hdr + ndata + 1);
    b[0] = 0;
    b[1] = 0;
    b[2] = (uint8_t)type;
    b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++)
            b[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
    if (ndata)
        memcpy(b + hdr, data, ndata);
    *len = hdr + ndata;
    return b;
}

static void write_plain(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        pare_test_fail(__FILE__, __LINE__, "cannot create %s", path);
        return;
    }
    if (n && fwrite(p, 1, n, f) != n)
        pare_test_fail(__FILE__, __LINE__, "cannot write %s", path);
    fclose(f);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz) {
        pare_test_fail(__FILE__, __LINE__, "cannot create %s", path);
        return;
    }
    if (n && gzwrite(gz, p, (unsigned)n) != (int)n)
        pare_test_fail(__FILE__, __LINE__, "cannot write %s", path);
    gzclose(gz);
}

/* The raw bytes of a file, as they are on disk. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* Writes an IDX images file (n x h x w) and labels file with the given
 * contents, plain or gzipped. */
static void write_idx_pair(const char *img_path, const char *lab_path, int gz, int n, int h, int w,
                           const uint8_t *pix, const uint8_t *lab)
{
    uint32_t idims[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w}, ldims[1] = {(uint32_t)n};
    size_t ilen, llen;
    uint8_t *ib = make_idx(0x08, 3, idims, pix, (size_t)n * h * w, &ilen);
    uint8_t *lb = make_idx(0x08, 1, ldims, lab, (size_t)n, &llen);
    if (gz) {
        write_gz(img_path, ib, ilen);
        write_gz(lab_path, lb, llen);
    } else {
        write_plain(img_path, ib, ilen);
        write_plain(lab_path, lb, llen);
    }
    free(ib);
    free(lb);
}

static int msg_has(const char *s) { return strstr(pare_last_error(), s) != NULL; }

#define CHECK_MSG(s) CHECKF(msg_has(s), "message \"%s\" lacks \"%s\"", pare_last_error(), s)

/* A dataset made in memory: random pixels, labels i % classes. */
static pare_dataset *synthetic(long n, int c, int h, int w, int classes, uint64_t seed)
{
    pare_dataset *ds = NULL;
    CHECK_OK(pare_dataset_alloc("synthetic", n, c, h, w, &ds));
    if (!ds)
        return NULL;
    fill_bytes(ds->images, (size_t)n * c * h * w, seed);
    for (long i = 0; i < n; i++)
        ds->labels[i] = (uint8_t)(i % classes);
    pare_dataset_count_classes(ds);
    return ds;
}

/* ---- IDX ---------------------------------------------------------------- */

PARE_TEST(data_idx_round_trip)
{
    enum { N = 3, H = 5, W = 4 };
    uint8_t pix[N * H * W], lab[N] = {2, 0, 7};
    fill_bytes(pix, sizeof pix, 1);
    pix[0] = 0;
    pix[1] = 255;
    char ip[PATH_LEN], lp[PATH_LEN];
    tpath(ip, "img");
    tpath(lp, "lab");
    write_idx_pair(ip, lp, 0, N, H, W, pix, lab);
    pare_dataset *ds = NULL;
    CHECK_OK(pare_dataset_load_idx(ip, lp, &ds));
    if (!ds)
        return;
    int c, h, w;
    pare_dataset_shape(ds, &c, &h, &w);
    CHECK(pare_dataset_size(ds) == N);
    CHECK(c == 1 && h == H && w == W);
    CHECK(pare_dataset_classes(ds) == 8);
    CHECK(memcmp(ds->images, pix, sizeof pix) == 0);
    CHECK(memcmp(ds->labels, lab, sizeof lab) == 0);
    CHECK(ds->norm_channels == 0);
    CHECK(ds->name && strstr(ds->name, "img"));
    pare_dataset_free(ds);

    /* Four dimensions: n x c x h x w. */
    uint32_t d4[4] = {2, 3, 4, 5}, d1[1] = {2};
    uint8_t pix4[2 * 3 * 4 * 5], lab4[2] = {1, 1};
    fill_bytes(pix4, sizeof pix4, 2);
    size_t len;
    uint8_t *b = make_idx(0x08, 4, d4, pix4, sizeof pix4, &len);
    write_plain(ip, b, len);
    free(b);
    b = make_idx(0x08, 1, d1, lab4, 2, &len);
    write_plain(lp, b, len);
    free(b);
    CHECK_OK(pare_dataset_load_idx(ip, lp, &ds));
    if (!ds)
        return;
    pare_dataset_shape(ds, &c, &h, &w);
    CHECK(pare_dataset_size(ds) == 2 && c == 3 && h == 4 && w == 5);
    CHECK(pare_dataset_classes(ds) == 2);
    CHECK(memcmp(ds->images, pix4, sizeof pix4) == 0);
    pare_dataset_free(ds);

    /* Five channels do not fit the normalisation arrays. */
    uint32_t d5[4] = {2, 5, 2, 2};
    uint8_t pix5[2 * 5 * 2 * 2] = {0};
    b = make_idx(0x08, 4, d5, pix5, sizeof pix5, &len);
    write_plain(ip, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EUNSUPPORTED);
    CHECK(ds == NULL);
}

PARE_TEST(data_idx_gz_equals_plain)
{
    enum { N = 7, H = 6, W = 9 };
    uint8_t pix[N * H * W], lab[N];
    fill_bytes(pix, sizeof pix, 3);
    for (int i = 0; i < N; i++)
        lab[i] = (uint8_t)(i * 3 % 10);
    char ip[PATH_LEN], lp[PATH_LEN], igz[PATH_LEN], lgz[PATH_LEN];
    tpath(ip, "img");
    tpath(lp, "lab");
    tpath(igz, "img.gz");
    tpath(lgz, "lab.gz");
    write_idx_pair(ip, lp, 0, N, H, W, pix, lab);
    write_idx_pair(igz, lgz, 1, N, H, W, pix, lab);
    /* The gzipped files really are gzip, not a plain copy. */
    size_t n;
    uint8_t *raw = slurp(igz, &n);
    CHECK(raw && n > 2 && raw[0] == 0x1f && raw[1] == 0x8b);
    free(raw);
    pare_dataset *a = NULL, *b = NULL, *m = NULL;
    CHECK_OK(pare_dataset_load_idx(ip, lp, &a));
    CHECK_OK(pare_dataset_load_idx(igz, lgz, &b));
    CHECK_OK(pare_dataset_load_idx(igz, lp, &m));
    if (a && b && m) {
        CHECK(a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w);
        CHECK(a->classes == b->classes && a->classes == 10);
        CHECK(memcmp(a->images, b->images, sizeof pix) == 0);
        CHECK(memcmp(a->labels, b->labels, N) == 0);
        CHECK(memcmp(a->images, pix, sizeof pix) == 0);
        CHECK(memcmp(m->images, pix, sizeof pix) == 0 && memcmp(m->labels, lab, N) == 0);
    }
    pare_dataset_free(a);
    pare_dataset_free(b);
    pare_dataset_free(m);
}

PARE_TEST(data_idx_parse_errors)
{
    uint32_t dims[3] = {3, 5, 4};
    uint8_t pix[60];
    fill_bytes(pix, sizeof pix, 4);
    size_t len;
    uint8_t *b = make_idx(0x08, 3, dims, pix, 60, &len);
    int nd, d[4];
    const uint8_t *data;
    CHECK_OK(pare_idx_parse(b, len, "x.idx", &nd, d, &data));
    CHECK(nd == 3 && d[0] == 3 && d[1] == 5 && d[2] == 4 && data == b + 16);

    /* Truncated anywhere: header or pixels. */
    for (size_t cut = 0; cut < len; cut++) {
        CHECK_STATUS(pare_idx_parse(b, cut, "x.idx", &nd, d, &data), PARE_EFORMAT);
        CHECK(data == NULL && nd == 0);
        CHECK_MSG("x.idx");
        CHECK_MSG("truncated");
    }
    CHECK_STATUS(pare_idx_parse(b, len - 1, "x.idx", &nd, d, &data), PARE_EFORMAT);
    CHECK_MSG("x.idx: truncated: header says 60 bytes of pixels, file has 59");
    CHECK_STATUS(pare_idx_parse(NULL, 0, "x.idx", &nd, d, &data), PARE_EFORMAT);

    /* Trailing bytes are as wrong as missing ones. */
    uint8_t *t = make_idx(0x08, 3, dims, pix, 60, &len);
    uint8_t *t2 = realloc(t, len + 3);
    memset(t2 + len, 0, 3);
    CHECK_STATUS(pare_idx_parse(t2, len + 3, "x.idx", &nd, d, &data), PARE_EFORMAT);
    CHECK_MSG("3 bytes of trailing data");
    free(t2);

    /* Magic number. */
    uint8_t bad[80];
    memcpy(bad, b, len);
    bad[0] = 1;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    CHECK_MSG("not an IDX file");
    memcpy(bad, b, len);
    bad[1] = 8;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    /* Type byte: other IDX types are valid but not read; garbage is a format error. */
    memcpy(bad, b, len);
    bad[2] = 0x0d;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EUNSUPPORTED);
    CHECK_MSG("0x0d");
    CHECK_MSG("float");
    bad[2] = 0x42;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    CHECK_MSG("0x42");
    /* Dimension counts. */
    memcpy(bad, b, len);
    bad[3] = 0;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    bad[3] = 5;
    CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EUNSUPPORTED);
    /* A zero in any dimension. */
    for (int k = 0; k < 3; k++) {
        memcpy(bad, b, len);
        memset(bad + 4 + 4 * k, 0, 4);
        CHECK_STATUS(pare_idx_parse(bad, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
        CHECK_MSG("is 0");
    }
    /* Dimensions too large for an int, and products that overflow. */
    uint32_t big[4] = {0x80000000u, 1, 1, 1};
    uint8_t *h = make_idx(0x08, 4, big, NULL, 0, &len);
    CHECK_STATUS(pare_idx_parse(h, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    free(h);
    uint32_t huge[4] = {0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu};
    h = make_idx(0x08, 4, huge, NULL, 0, &len);
    CHECK_STATUS(pare_idx_parse(h, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    free(h);
    uint32_t wide[2] = {0x7fffffffu, 0x7fffffffu};
    h = make_idx(0x08, 2, wide, pix, 10, &len);
    CHECK_STATUS(pare_idx_parse(h, len, "x.idx", &nd, d, &data), PARE_EFORMAT);
    CHECK_MSG("truncated");
    free(h);
    free(b);
}

/* Every prefix of a valid pair of files, plain and gzipped, is refused. */
PARE_TEST(data_idx_truncated)
{
    enum { N = 4, H = 6, W = 5 };
    uint8_t pix[N * H * W], lab[N] = {1, 2, 3, 4};
    fill_bytes(pix, sizeof pix, 5);
    char ip[PATH_LEN], lp[PATH_LEN], cut_path[PATH_LEN];
    tpath(ip, "img");
    tpath(lp, "lab");
    tpath(cut_path, "cut");
    for (int gz = 0; gz <= 1; gz++) {
        write_idx_pair(ip, lp, gz, N, H, W, pix, lab);
        pare_dataset *ds = NULL;
        CHECK_OK(pare_dataset_load_idx(ip, lp, &ds));
        pare_dataset_free(ds);
        for (int which = 0; which < 2; which++) {
            size_t n;
            uint8_t *raw = slurp(which ? lp : ip, &n);
            CHECK(raw != NULL && n > 0);
            for (size_t cut = 0; raw && cut < n; cut++) {
                write_plain(cut_path, raw, cut);
                ds = NULL;
                pare_status s = which ? pare_dataset_load_idx(ip, cut_path, &ds)
                                      : pare_dataset_load_idx(cut_path, lp, &ds);
                CHECKF(s == PARE_EFORMAT, "gz %d file %d cut at %zu of %zu: %s (%s)", gz, which,
                       cut, n, pare_status_name(s), pare_last_error());
                CHECKF(msg_has(cut_path), "message \"%s\" does not name the file",
                       pare_last_error());
                CHECK(ds == NULL);
                pare_dataset_free(ds);
            }
            free(raw);
        }
    }
}

/* Corrupt gzip data is an error, never garbage pixels. */
PARE_TEST(data_idx_gz_corrupt)
{
    enum { N = 4, H = 8, W = 8 };
    uint8_t pix[N * H * W], lab[N] = {0, 1, 0, 1};
    fill_bytes(pix, sizeof pix, 6);
    char ip[PATH_LEN], lp[PATH_LEN], bad[PATH_LEN];
    tpath(ip, "img.gz");
    tpath(lp, "lab.gz");
    tpath(bad, "bad.gz");
    write_idx_pair(ip, lp, 1, N, H, W, pix, lab);
    size_t n;
    uint8_t *raw = slurp(ip, &n);
    CHECK(raw && n > 20);
    if (!raw)
        return;
    /* The CRC and the length in the trailer. */
    for (size_t k = n - 8; k < n; k++) {
        raw[k] ^= 0x40;
        write_plain(bad, raw, n);
        raw[k] ^= 0x40;
        pare_dataset *ds = NULL;
        CHECK_STATUS(pare_dataset_load_idx(bad, lp, &ds), PARE_EFORMAT);
        CHECK_MSG("bad.gz");
        CHECK(ds == NULL);
    }
    /* A gzip magic number followed by junk. */
    uint8_t junk[64];
    fill_bytes(junk, sizeof junk, 7);
    junk[0] = 0x1f;
    junk[1] = 0x8b;
    write_plain(bad, junk, sizeof junk);
    uint8_t *out = NULL;
    size_t len;
    CHECK_STATUS(pare_data_read_maybe_gz(bad, 1 << 20, &out, &len), PARE_EFORMAT);
    CHECK(out == NULL);
    CHECK_MSG("gzip");
    free(raw);
}

PARE_TEST(data_read_maybe_gz)
{
    uint8_t data[5000];
    fill_bytes(data, sizeof data, 8);
    char p[PATH_LEN], g[PATH_LEN], e[PATH_LEN];
    tpath(p, "plain");
    tpath(g, "packed.gz");
    tpath(e, "empty");
    write_plain(p, data, sizeof data);
    write_gz(g, data, sizeof data);
    write_plain(e, NULL, 0);
    uint8_t *out = NULL;
    size_t len = 0;
    CHECK_OK(pare_data_read_maybe_gz(p, sizeof data, &out, &len));
    CHECK(out && len == sizeof data && memcmp(out, data, len) == 0);
    free(out);
    CHECK_OK(pare_data_read_maybe_gz(g, sizeof data, &out, &len));
    CHECK(out && len == sizeof data && memcmp(out, data, len) == 0);
    free(out);
    /* The bound applies to what comes out of gzip, not what is on disk. */
    CHECK_STATUS(pare_data_read_maybe_gz(p, sizeof data - 1, &out, &len), PARE_EFORMAT);
    CHECK(out == NULL && len == 0);
    CHECK_STATUS(pare_data_read_maybe_gz(g, sizeof data - 1, &out, &len), PARE_EFORMAT);
    CHECK_MSG("packed.gz");
    CHECK_OK(pare_data_read_maybe_gz(e, 0, &out, &len));
    CHECK(len == 0);
    free(out);
    char missing[PATH_LEN];
    tpath(missing, "no-such-file");
    CHECK_STATUS(pare_data_read_maybe_gz(missing, 100, &out, &len), PARE_ENOTFOUND);
    CHECK_MSG("no-such-file");
    CHECK_STATUS(pare_data_read_maybe_gz(pare_test_dir(), 100, &out, &len), PARE_EIO);
}

PARE_TEST(data_idx_bad_pairs)
{
    enum { N = 3, H = 4, W = 4 };
    uint8_t pix[N * H * W], lab[N + 1] = {0, 1, 2, 3};
    fill_bytes(pix, sizeof pix, 9);
    char ip[PATH_LEN], lp[PATH_LEN];
    tpath(ip, "images.idx");
    tpath(lp, "labels.idx");
    write_idx_pair(ip, lp, 0, N, H, W, pix, lab);
    pare_dataset *ds = NULL;
    size_t len;
    uint8_t *b;

    /* Four labels for three images. */
    uint32_t l4[1] = {4};
    b = make_idx(0x08, 1, l4, lab, 4, &len);
    write_plain(lp, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    CHECK_MSG("images.idx holds 3 images");
    CHECK_MSG("labels.idx holds 4 labels");
    CHECK(ds == NULL);

    /* Labels with two dimensions; images with two. */
    uint32_t l2[2] = {3, 1};
    b = make_idx(0x08, 2, l2, lab, 3, &len);
    write_plain(lp, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    CHECK_MSG("labels.idx");
    uint32_t l3[1] = {3}, i2[2] = {3, 16};
    b = make_idx(0x08, 1, l3, lab, 3, &len);
    write_plain(lp, b, len);
    free(b);
    CHECK_OK(pare_dataset_load_idx(ip, lp, &ds));
    pare_dataset_free(ds);
    ds = NULL;
    b = make_idx(0x08, 2, i2, pix, sizeof pix, &len);
    write_plain(ip, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    CHECK_MSG("images.idx has 2 dimensions");

    /* Wrong type byte, magic, zero dimension, trailing bytes in the files themselves. */
    uint32_t i3[3] = {N, H, W};
    b = make_idx(0x0c, 3, i3, pix, sizeof pix, &len);
    write_plain(ip, b, len);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EUNSUPPORTED);
    CHECK_MSG("images.idx");
    b[2] = 0x08;
    b[0] = 0x12;
    write_plain(ip, b, len);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    b[0] = 0;
    memset(b + 8, 0, 4);
    write_plain(ip, b, len);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    CHECK_MSG("dimension 2 of 3 is 0");
    free(b);
    uint8_t more[N * H * W + 1];
    memcpy(more, pix, sizeof pix);
    more[N * H * W] = 9;
    b = make_idx(0x08, 3, i3, more, sizeof more, &len);
    write_plain(ip, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, &ds), PARE_EFORMAT);
    CHECK_MSG("trailing");
    CHECK(ds == NULL);

    /* Missing files and bad arguments. */
    char missing[PATH_LEN];
    tpath(missing, "absent-labels");
    b = make_idx(0x08, 3, i3, pix, sizeof pix, &len);
    write_plain(ip, b, len);
    free(b);
    CHECK_STATUS(pare_dataset_load_idx(ip, missing, &ds), PARE_ENOTFOUND);
    CHECK_MSG("absent-labels");
    CHECK_STATUS(pare_dataset_load_idx(NULL, lp, &ds), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_load_idx(ip, lp, NULL), PARE_EINVAL);
}

/* ---- CIFAR-10 ----------------------------------------------------------- */

/* n records with labels (first + i) % 10 and seeded pixels. */
static uint8_t *cifar_records(int n, int first, uint64_t seed)
{
    uint8_t *b = malloc((size_t)n * PARE_CIFAR_RECORD);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * PARE_CIFAR_RECORD;
        r[0] = (uint8_t)((first + i) % 10);
        fill_bytes(r + 1, PARE_CIFAR_RECORD - 1, seed * 100 + (uint64_t)i);
    }
    return b;
}

static void write_cifar(const char *dir, const char *name, const uint8_t *recs, int n)
{
    char p[PATH_LEN];
    sub(p, dir, name);
    write_plain(p, recs, (size_t)n * PARE_CIFAR_RECORD);
}

static void check_cifar_sample(const pare_dataset *ds, long i, const uint8_t *rec)
{
    CHECKF(ds->labels[i] == rec[0], "sample %ld label %d, wanted %d", i, ds->labels[i], rec[0]);
    CHECKF(memcmp(ds->images + (size_t)i * 3072, rec + 1, 3072) == 0, "sample %ld pixels differ",
           i);
}

PARE_TEST(data_cifar_load)
{
    char dir[PATH_LEN], nest[PATH_LEN], inner[PATH_LEN];
    tmkdir(dir, "cifar");
    uint8_t *b1 = cifar_records(3, 0, 1), *b2 = cifar_records(2, 7, 2),
            *tb = cifar_records(2, 4, 3);
    write_cifar(dir, "data_batch_1.bin", b1, 3);
    write_cifar(dir, "data_batch_2.bin", b2, 2);
    write_cifar(dir, "test_batch.bin", tb, 2);
    pare_dataset *ds = NULL;
    CHECK_OK(pare_dataset_load_cifar10(dir, PARE_SPLIT_TRAIN, &ds));
    if (ds) {
        int c, h, w;
        pare_dataset_shape(ds, &c, &h, &w);
        CHECK(pare_dataset_size(ds) == 5 && c == 3 && h == 32 && w == 32);
        /* Labels 0, 1, 2, 7, 8. */
        CHECK(pare_dataset_classes(ds) == 9);
        for (int i = 0; i < 3; i++)
            check_cifar_sample(ds, i, b1 + (size_t)i * PARE_CIFAR_RECORD);
        for (int i = 0; i < 2; i++)
            check_cifar_sample(ds, 3 + i, b2 + (size_t)i * PARE_CIFAR_RECORD);
        CHECK(ds->norm_channels == 3);
        CHECK(ds->mean[0] == 0.4914f && ds->mean[1] == 0.4822f && ds->mean[2] == 0.4465f);
        CHECK(ds->std[0] == 0.2470f && ds->std[1] == 0.2435f && ds->std[2] == 0.2616f);
        CHECK(strstr(ds->name, "train") != NULL);
        /* A pixel in the blue plane, normalised with the blue statistics. */
        long idx[1] = {4};
        float *out = malloc(3072 * sizeof(float));
        pare_data_batch(ds, idx, 1, out, NULL, NULL, 0, 0, 1);
        int at = 2 * 1024 + 5 * 32 + 17;
        uint8_t v = b2[PARE_CIFAR_RECORD + 1 + at];
        CHECK_NEAR(out[at], ((double)v / 255.0 - 0.4465) / 0.2616, 1e-5);
        free(out);
    }
    pare_dataset_free(ds);
    ds = NULL;
    CHECK_OK(pare_dataset_load_cifar10(dir, PARE_SPLIT_TEST, &ds));
    if (ds) {
        CHECK(ds->n == 2);
        for (int i = 0; i < 2; i++)
            check_cifar_sample(ds, i, tb + (size_t)i * PARE_CIFAR_RECORD);
        CHECK(strstr(ds->name, "test") != NULL);
    }
    pare_dataset_free(ds);
    ds = NULL;

    /* The folder the archive unpacks to, found from its parent, also through open. */
    tmkdir(nest, "nested");
    sub(inner, nest, "cifar-10-batches-bin");
    CHECK(mkdir(inner, 0700) == 0);
    write_cifar(inner, "data_batch_1.bin", b1, 3);
    write_cifar(inner, "test_batch.bin", tb, 2);
    CHECK_OK(pare_dataset_load_cifar10(nest, PARE_SPLIT_TRAIN, &ds));
    if (ds) {
        CHECK(ds->n == 3);
        check_cifar_sample(ds, 2, b1 + 2 * PARE_CIFAR_RECORD);
    }
    pare_dataset_free(ds);
    ds = NULL;
    CHECK_OK(pare_dataset_open(nest, PARE_SPLIT_TEST, &ds));
    if (ds) {
        CHECK(ds->n == 2 && ds->c == 3);
        check_cifar_sample(ds, 1, tb + PARE_CIFAR_RECORD);
    }
    pare_dataset_free(ds);
    free(b1);
    free(b2);
    free(tb);
}

PARE_TEST(data_cifar_bad)
{
    char dir[PATH_LEN];
    tmkdir(dir, "cifar-bad");
    uint8_t *b1 = cifar_records(3, 0, 1), *b2 = cifar_records(2, 0, 2);
    write_cifar(dir, "data_batch_1.bin", b1, 3);
    pare_dataset *ds = NULL;

    /* A label byte of 10 in the second record of batch 2. */
    b2[PARE_CIFAR_RECORD] = 10;
    write_cifar(dir, "data_batch_2.bin", b2, 2);
    CHECK_STATUS(pare_dataset_load_cifar10(dir, PARE_SPLIT_TRAIN, &ds), PARE_EFORMAT);
    CHECK_MSG("data_batch_2.bin: record 1 has label 10");
    CHECK(ds == NULL);
    b2[PARE_CIFAR_RECORD] = 3;

    /* A size that is not whole records. */
    char p[PATH_LEN];
    sub(p, dir, "data_batch_2.bin");
    write_plain(p, b2, 2 * PARE_CIFAR_RECORD - 5);
    CHECK_STATUS(pare_dataset_load_cifar10(dir, PARE_SPLIT_TRAIN, &ds), PARE_EFORMAT);
    CHECK_MSG("data_batch_2.bin");
    CHECK_MSG("3073");
    write_plain(p, NULL, 0);
    CHECK_STATUS(pare_dataset_load_cifar10(dir, PARE_SPLIT_TRAIN, &ds), PARE_EFORMAT);
    CHECK_MSG("data_batch_2.bin");

    /* A hole in the batch numbers. */
    remove(p);
    write_cifar(dir, "data_batch_3.bin", b2, 2);
    CHECK_STATUS(pare_dataset_load_cifar10(dir, PARE_SPLIT_TRAIN, &ds), PARE_EFORMAT);
    CHECK_MSG("data_batch_2.bin is missing");

    /* No test batch; no folder. */
    CHECK_STATUS(pare_dataset_load_cifar10(dir, PARE_SPLIT_TEST, &ds), PARE_ENOTFOUND);
    CHECK_MSG("test_batch.bin");
    char none[PATH_LEN];
    tpath(none, "nothing-here");
    CHECK_STATUS(pare_dataset_load_cifar10(none, PARE_SPLIT_TRAIN, &ds), PARE_ENOTFOUND);
    CHECK(ds == NULL);

    /* The memory parser on its own. */
    long recs = -1;
    CHECK_OK(pare_cifar_parse(b1, 3 * PARE_CIFAR_RECORD, "mem", &recs, NULL, NULL));
    CHECK(recs == 3);
    CHECK_STATUS(pare_cifar_parse(b1, 0, "mem", &recs, NULL, NULL), PARE_EFORMAT);
    CHECK(recs == 0);
    CHECK_STATUS(pare_cifar_parse(b1, PARE_CIFAR_RECORD + 1, "mem", &recs, NULL, NULL),
                 PARE_EFORMAT);
    CHECK_MSG("mem");
    free(b1);
    free(b2);
}

/* ---- opening by name or folder ------------------------------------------ */

PARE_TEST(data_open_folder)
{
    enum { N = 5, M = 3, H = 4, W = 3 };
    uint8_t pix[N * H * W], tpix[M * H * W], lab[N] = {0, 1, 2, 3, 4}, tlab[M] = {4, 4, 1};
    fill_bytes(pix, sizeof pix, 10);
    fill_bytes(tpix, sizeof tpix, 11);
    char dir[PATH_LEN], a[PATH_LEN], b[PATH_LEN];
    tmkdir(dir, "digits");
    sub(a, dir, "train-images-idx3-ubyte");
    sub(b, dir, "train-labels-idx1-ubyte");
    write_idx_pair(a, b, 0, N, H, W, pix, lab);
    sub(a, dir, "t10k-images-idx3-ubyte.gz");
    sub(b, dir, "t10k-labels-idx1-ubyte.gz");
    write_idx_pair(a, b, 1, M, H, W, tpix, tlab);
    pare_dataset *tr = NULL, *te = NULL;
    CHECK_OK(pare_dataset_open(dir, PARE_SPLIT_TRAIN, &tr));
    CHECK_OK(pare_dataset_open(dir, PARE_SPLIT_TEST, &te));
    if (tr && te) {
        CHECK(tr->n == N && te->n == M && tr->h == H && te->w == W && tr->c == 1);
        CHECK(memcmp(tr->images, pix, sizeof pix) == 0 &&
              memcmp(te->images, tpix, sizeof tpix) == 0);
        CHECK(memcmp(tr->labels, lab, N) == 0 && memcmp(te->labels, tlab, M) == 0);
        CHECK(strstr(tr->name, "train") && strstr(te->name, "test"));
        /* Not named as Fashion-MNIST: no statistics assumed. */
        CHECK(tr->norm_channels == 0 && te->norm_channels == 0);
    }
    pare_dataset_free(tr);
    pare_dataset_free(te);

    /* A folder whose name says fashion gets Fashion-MNIST's statistics. */
    char fdir[PATH_LEN];
    tmkdir(fdir, "My-Fashion-copy");
    sub(a, fdir, "train-images-idx3-ubyte.gz");
    sub(b, fdir, "train-labels-idx1-ubyte");
    write_idx_pair(a, b, 1, N, H, W, pix, lab);
    tr = NULL;
    CHECK_OK(pare_dataset_open(fdir, PARE_SPLIT_TRAIN, &tr));
    if (tr) {
        CHECK(tr->norm_channels == 1 && tr->mean[0] == 0.2860f && tr->std[0] == 0.3530f);
        CHECK(memcmp(tr->images, pix, sizeof pix) == 0);
    }
    pare_dataset_free(tr);
    tr = NULL;
    /* Its test split is not there. */
    CHECK_STATUS(pare_dataset_open(fdir, PARE_SPLIT_TEST, &tr), PARE_ENOTFOUND);
    CHECK_MSG("t10k-images-idx3-ubyte");
    CHECK(tr == NULL);

    /* Images without labels. */
    char half[PATH_LEN];
    tmkdir(half, "half");
    sub(a, half, "train-images-idx3-ubyte");
    write_plain(a, pix, 10);
    CHECK_STATUS(pare_dataset_open(half, PARE_SPLIT_TRAIN, &tr), PARE_ENOTFOUND);
    CHECK_MSG("train-labels-idx1-ubyte");

    /* Nothing to read, or not a folder at all. */
    char empty[PATH_LEN];
    tmkdir(empty, "empty-dir");
    CHECK_STATUS(pare_dataset_open(empty, PARE_SPLIT_TRAIN, &tr), PARE_ENOTFOUND);
    CHECK_MSG("neither");
    CHECK_STATUS(pare_dataset_open("no-such-dataset-anywhere", PARE_SPLIT_TRAIN, &tr),
                 PARE_ENOTFOUND);
    CHECK_MSG("no-such-dataset-anywhere");
    CHECK_STATUS(pare_dataset_open("", PARE_SPLIT_TRAIN, &tr), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_open(dir, (pare_split)7, &tr), PARE_EINVAL);
    CHECK(tr == NULL);
}

PARE_TEST(data_find_fashion_mnist_env)
{
    enum { N = 2, H = 3, W = 3 };
    uint8_t pix[N * H * W] = {0}, lab[N] = {9, 1};
    char root[PATH_LEN], fm[PATH_LEN], a[PATH_LEN], b[PATH_LEN];
    tmkdir(root, "store");
    sub(fm, root, "fashion-mnist");
    CHECK(mkdir(fm, 0700) == 0);
    sub(a, fm, "train-images-idx3-ubyte.gz");
    sub(b, fm, "train-labels-idx1-ubyte.gz");
    write_idx_pair(a, b, 1, N, H, W, pix, lab);
    setenv("PARE_DATA", root, 1);
    char found[PATH_LEN];
    CHECK_OK(pare_data_find_fashion_mnist(found, sizeof found));
    CHECK(strcmp(found, fm) == 0);
    CHECK_STATUS(pare_data_find_fashion_mnist(found, 4), PARE_EINVAL);
    pare_dataset *ds = NULL;
    CHECK_OK(pare_dataset_open("fashion-mnist", PARE_SPLIT_TRAIN, &ds));
    if (ds) {
        CHECK(ds->n == N && ds->classes == 10);
        CHECK(ds->norm_channels == 1 && ds->mean[0] == 0.2860f && ds->std[0] == 0.3530f);
        CHECK(strcmp(ds->name, "fashion-mnist train") == 0);
    }
    pare_dataset_free(ds);
    /* PARE_DATA itself may be the folder. */
    setenv("PARE_DATA", fm, 1);
    CHECK_OK(pare_data_find_fashion_mnist(found, sizeof found));
    CHECK(strcmp(found, fm) == 0);
}

/* ---- accessors, normalisation ------------------------------------------- */

PARE_TEST(data_limit)
{
    pare_dataset *ds = synthetic(10, 1, 2, 2, 7, 12);
    if (!ds)
        return;
    CHECK(pare_dataset_classes(ds) == 7);
    CHECK_STATUS(pare_dataset_limit(ds, 0), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_limit(ds, -3), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_limit(ds, 11), PARE_EINVAL);
    CHECK(pare_dataset_size(ds) == 10);
    CHECK_OK(pare_dataset_limit(ds, 10));
    CHECK_OK(pare_dataset_limit(ds, 3));
    CHECK(pare_dataset_size(ds) == 3);
    CHECK(pare_dataset_classes(ds) == 7);
    CHECK_STATUS(pare_dataset_limit(ds, 4), PARE_EINVAL);
    CHECK_OK(pare_dataset_limit(ds, 1));
    CHECK(pare_dataset_size(ds) == 1);
    CHECK_STATUS(pare_dataset_limit(NULL, 1), PARE_EINVAL);
    CHECK(pare_dataset_size(NULL) == 0 && pare_dataset_classes(NULL) == 0);
    pare_dataset_free(ds);
    pare_dataset_free(NULL);
}

PARE_TEST(data_normalization)
{
    enum { N = 3, C = 3, H = 4, W = 5, HW = H * W, CHW = C * HW };
    pare_dataset *ds = synthetic(N, C, H, W, 2, 13);
    if (!ds)
        return;
    long idx[N] = {0, 1, 2};
    float out[N * CHW];
    int32_t labels[N];

    /* Default: x / 255. */
    pare_data_batch(ds, idx, N, out, labels, NULL, 0, 0, 1);
    for (int i = 0; i < N * CHW; i++)
        CHECK_NEAR(out[i], ds->images[i] / 255.0, 1e-6);
    CHECK(labels[0] == 0 && labels[1] == 1 && labels[2] == 0);

    /* Per channel. */
    const float mean[C] = {0.1f, 0.5f, 0.9f}, sd[C] = {0.2f, 0.25f, 2.0f};
    CHECK_OK(pare_dataset_set_normalization(ds, C, mean, sd));
    pare_data_batch(ds, idx, N, out, labels, NULL, 0, 0, 1);
    for (int i = 0; i < N * CHW; i++) {
        int ch = i % CHW / HW;
        double want = (ds->images[i] / 255.0 - mean[ch]) / sd[ch];
        CHECKF(fabs(out[i] - want) <= 1e-5, "value %d: %g, wanted %g", i, out[i], want);
    }

    /* One channel broadcast to all. */
    const float m1[1] = {0.3f}, s1[1] = {0.7f};
    CHECK_OK(pare_dataset_set_normalization(ds, 1, m1, s1));
    pare_data_batch(ds, idx, N, out, labels, NULL, 0, 0, 1);
    for (int i = 0; i < N * CHW; i++)
        CHECK_NEAR(out[i], (ds->images[i] / 255.0 - 0.3) / 0.7, 1e-5);

    /* Refused: a channel count that is neither c nor 1, zero, negative or NaN values. */
    const float bad_sd[C] = {0.2f, 0.0f, 1.0f}, neg_sd[C] = {0.2f, 1.0f, -1.0f};
    const float nan_mean[C] = {0.0f, NAN, 0.0f};
    CHECK_STATUS(pare_dataset_set_normalization(ds, 2, mean, sd), PARE_EINVAL);
    CHECK_MSG("2 channels");
    CHECK_STATUS(pare_dataset_set_normalization(ds, C, mean, bad_sd), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_set_normalization(ds, C, mean, neg_sd), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_set_normalization(ds, C, nan_mean, sd), PARE_EINVAL);
    CHECK_STATUS(pare_dataset_set_normalization(ds, C, NULL, sd), PARE_EINVAL);
    /* A refused call leaves the last good setting. */
    CHECK(ds->norm_channels == 1 && ds->mean[0] == 0.3f);
    pare_dataset_free(ds);
}

/* ---- epoch order -------------------------------------------------------- */

static int is_permutation(const long *p, long n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (long i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

PARE_TEST(data_permutation)
{
    enum { N = 1000 };
    long *a = malloc(N * sizeof(long)), *b = malloc(N * sizeof(long)),
         *c = malloc(N * sizeof(long));
    pare_data_permutation(N, 42, 0, a);
    pare_data_permutation(N, 42, 1, b);
    pare_data_permutation(N, 42, 0, c);
    CHECK(is_permutation(a, N) && is_permutation(b, N));
    CHECK(memcmp(a, b, N * sizeof(long)) != 0);
    CHECK(memcmp(a, c, N * sizeof(long)) == 0);
    /* Shuffled, not the identity. */
    long fixed = 0;
    for (long i = 0; i < N; i++)
        fixed += a[i] == i;
    CHECK(fixed < 20);
    pare_data_permutation(N, 43, 0, c);
    CHECK(is_permutation(c, N) && memcmp(a, c, N * sizeof(long)) != 0);
    pare_data_permutation(1, 42, 5, a);
    CHECK(a[0] == 0);
    /* Small n: every order of 3 shows up over epochs. */
    int seen[6] = {0};
    for (uint64_t e = 0; e < 200; e++) {
        long p[3];
        pare_data_permutation(3, 7, e, p);
        CHECK(is_permutation(p, 3));
        seen[p[0] * 2 + (p[1] > p[2])]++;
    }
    for (int k = 0; k < 6; k++)
        CHECKF(seen[k] > 10, "order %d seen %d times in 200", k, seen[k]);
    free(a);
    free(b);
    free(c);
}

/* ---- augmentation ------------------------------------------------------- */

PARE_TEST(data_augment_off_is_plain)
{
    enum { N = 16, C = 3, H = 6, W = 7, CHW = C * H * W };
    pare_dataset *ds = synthetic(N, C, H, W, 10, 14);
    if (!ds)
        return;
    const float mean[C] = {0.4f, 0.5f, 0.6f}, sd[C] = {0.3f, 0.2f, 0.1f};
    CHECK_OK(pare_dataset_set_normalization(ds, C, mean, sd));
    long idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = (i * 5) % N;
    static float plain[N * CHW], aug_out[N * CHW];
    int32_t l1[N], l2[N];
    pare_data_batch(ds, idx, N, plain, l1, NULL, 1, 2, 1);
    pare_augment off = {0, 0};
    pare_data_batch(ds, idx, N, aug_out, l2, &off, 1, 2, 1);
    CHECK(memcmp(plain, aug_out, sizeof plain) == 0);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    for (int i = 0; i < N; i++)
        CHECK(l1[i] == ds->labels[idx[i]]);
    pare_dataset_free(ds);
}

PARE_TEST(data_augment_flip)
{
    enum { N = 200, C = 2, H = 5, W = 7, HW = H * W, CHW = C * HW };
    pare_dataset *ds = synthetic(N, C, H, W, 10, 15);
    if (!ds)
        return;
    long idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    static float plain[N * CHW], out[N * CHW];
    pare_data_batch(ds, idx, N, plain, NULL, NULL, 3, 0, 1);
    pare_augment fl = {0, 1};
    pare_data_batch(ds, idx, N, out, NULL, &fl, 3, 0, 1);
    int flips = 0, same = 0;
    for (int i = 0; i < N; i++) {
        const float *p = plain + (size_t)i * CHW, *o = out + (size_t)i * CHW;
        int is_same = memcmp(p, o, CHW * sizeof(float)) == 0;
        int is_mirror = 1;
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if (o[ch * HW + y * W + x] != p[ch * HW + y * W + (W - 1 - x)])
                        is_mirror = 0;
        CHECKF(is_same || is_mirror, "sample %d is neither itself nor its mirror", i);
        flips += is_mirror && !is_same;
        same += is_same;
    }
    CHECKF(flips > 60 && same > 60, "%d flipped, %d kept of %d", flips, same, N);
    pare_dataset_free(ds);
}

/* The crop equals the image zero-padded by pad, shifted by an offset in
 * [0, 2 pad] on each axis (and mirrored when flip is on). */
static int crop_matches(const float *plain, const float *o, int c, int h, int w, int pad, int oy,
                        int ox, int flip, float zero)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int xx = flip ? w - 1 - x : x;
                int sy = y + oy - pad, sx = xx + ox - pad;
                float want = sy >= 0 && sy < h && sx >= 0 && sx < w
                                 ? plain[(ch * h + sy) * w + sx]
                                 : zero;
                if (o[(ch * h + y) * w + x] != want)
                    return 0;
            }
    return 1;
}

PARE_TEST(data_augment_crop)
{
    enum { N = 300, C = 2, H = 5, W = 6, CHW = C * H * W, PAD = 2, OFFS = 2 * PAD + 1 };
    pare_dataset *ds = synthetic(N, C, H, W, 10, 16);
    if (!ds)
        return;
    /* With mean 0.5 and std 0.25 a padding pixel (raw 0) is exactly -2. */
    const float m[1] = {0.5f}, s[1] = {0.25f};
    CHECK_OK(pare_dataset_set_normalization(ds, 1, m, s));
    long idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    static float plain[N * CHW], out[N * CHW];
    pare_data_batch(ds, idx, N, plain, NULL, NULL, 4, 9, 1);
    for (int flip = 0; flip <= 1; flip++) {
        pare_augment a = {PAD, flip};
        pare_data_batch(ds, idx, N, out, NULL, &a, 4, 9, 1);
        int hits[OFFS * OFFS * 2] = {0};
        for (int i = 0; i < N; i++) {
            int found = 0;
            for (int oy = 0; oy < OFFS; oy++)
                for (int ox = 0; ox < OFFS; ox++)
                    for (int f = 0; f <= flip; f++)
                        if (!found && crop_matches(plain + (size_t)i * CHW, out + (size_t)i * CHW,
                                                   C, H, W, PAD, oy, ox, f, -2.0f)) {
                            found = 1;
                            hits[(oy * OFFS + ox) * 2 + f]++;
                        }
            CHECKF(found, "flip %d: sample %d is no shifted crop of its padded self", flip, i);
        }
        /* Every offset turns up (each has 1/25 chance, 300 samples). */
        for (int k = 0; k < OFFS * OFFS; k++)
            CHECKF(hits[2 * k] + hits[2 * k + 1] > 0, "flip %d: offset %d never chosen", flip, k);
        if (flip) {
            int mirrored = 0;
            for (int k = 0; k < OFFS * OFFS; k++)
                mirrored += hits[2 * k + 1];
            CHECKF(mirrored > 90 && mirrored < 210, "%d of %d mirrored", mirrored, N);
        }
    }
    /* A pad wider than the image can leave nothing but padding. */
    pare_augment wide = {40, 0};
    pare_data_batch(ds, idx, N, out, NULL, &wide, 4, 9, 1);
    int all_pad = 0;
    for (int i = 0; i < N; i++) {
        int k = 0;
        while (k < CHW && out[(size_t)i * CHW + k] == -2.0f)
            k++;
        all_pad += k == CHW;
    }
    CHECK(all_pad > N / 2);
    pare_dataset_free(ds);
}

/* The same batch whatever the thread count, batch split or sample position. */
PARE_TEST(data_batch_threads)
{
    enum { N = 64, C = 3, H = 32, W = 32, CHW = C * H * W };
    pare_dataset *ds = synthetic(N, C, H, W, 10, 17);
    if (!ds)
        return;
    const float m[C] = {0.49f, 0.48f, 0.45f}, s[C] = {0.25f, 0.24f, 0.26f};
    CHECK_OK(pare_dataset_set_normalization(ds, C, m, s));
    long perm[N];
    pare_data_permutation(N, 5, 3, perm);
    float *one = malloc(sizeof(float) * N * CHW), *two = malloc(sizeof(float) * N * CHW);
    float *split = malloc(sizeof(float) * N * CHW);
    int32_t l1[N], l2[N], l3[N];
    pare_augment a = {4, 1};
    pare_data_batch(ds, perm, N, one, l1, &a, 5, 3, 1);
    pare_data_batch(ds, perm, N, two, l2, &a, 5, 3, 2);
    CHECK(memcmp(one, two, sizeof(float) * N * CHW) == 0);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    pare_data_batch(ds, perm, 24, split, l3, &a, 5, 3, 2);
    pare_data_batch(ds, perm + 24, N - 24, split + 24 * CHW, l3 + 24, &a, 5, 3, 1);
    CHECK(memcmp(one, split, sizeof(float) * N * CHW) == 0);
    CHECK(memcmp(l1, l3, sizeof l1) == 0);
    /* Another epoch draws other crops and flips. */
    pare_data_batch(ds, perm, N, two, l2, &a, 5, 4, 2);
    CHECK(memcmp(one, two, sizeof(float) * N * CHW) != 0);
    free(one);
    free(two);
    free(split);
    pare_dataset_free(ds);
}

/* ---- the real thing, when Debian's package is installed ------------------ */

PARE_TEST(data_fashion_mnist_real)
{
    const char *labels = FMNIST_DIR "/train-labels-idx1-ubyte.gz";
    struct stat st;
    if (stat(labels, &st) != 0) {
        printf("skipped: %s is absent (install dataset-fashion-mnist)\n", labels);
        return;
    }
    /* The first label, read independently of the library. */
    uint8_t head[9] = {0};
    gzFile gz = gzopen(labels, "rb");
    CHECK(gz != NULL);
    if (gz) {
        CHECK(gzread(gz, head, 9) == 9);
        gzclose(gz);
    }
    CHECK(head[2] == 0x08 && head[3] == 1);
    pare_dataset *tr = NULL, *te = NULL;
    CHECK_OK(pare_dataset_open(FMNIST_DIR, PARE_SPLIT_TRAIN, &tr));
    CHECK_OK(pare_dataset_open(FMNIST_DIR, PARE_SPLIT_TEST, &te));
    if (tr && te) {
        int c, h, w;
        pare_dataset_shape(tr, &c, &h, &w);
        CHECK(pare_dataset_size(tr) == 60000 && pare_dataset_size(te) == 10000);
        CHECK(c == 1 && h == 28 && w == 28);
        CHECK(pare_dataset_classes(tr) == 10 && pare_dataset_classes(te) == 10);
        CHECK(tr->labels[0] == head[8]);
        /* The folder is named fashion-mnist: its statistics are set. */
        CHECK(tr->norm_channels == 1 && tr->mean[0] == 0.2860f);
        /* The mean pixel of the training set is the statistic the defaults come from. */
        double sum = 0;
        for (size_t i = 0; i < (size_t)60000 * 784; i++)
            sum += tr->images[i];
        CHECK_NEAR(sum / (60000.0 * 784 * 255), 0.2860, 5e-4);
    }
    pare_dataset_free(tr);
    pare_dataset_free(te);
    /* By name, as the CLI opens it (wherever the finder looks first). */
    pare_dataset *byname = NULL;
    CHECK_OK(pare_dataset_open("fashion-mnist", PARE_SPLIT_TEST, &byname));
    if (byname)
        CHECK(pare_dataset_size(byname) == 10000 && byname->h == 28);
    pare_dataset_free(byname);
}
