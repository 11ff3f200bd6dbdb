/* Datasets: finding and opening them (Fashion-MNIST, IDX folders, CIFAR-10),
 * their accessors, the epoch order, and batch assembly with augmentation. */
#include "data/data.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "core/threads.h"

#define PATH_CAP 4096

/* Decompressed IDX files above this are refused rather than allocated:
 * far beyond any MNIST-format set, well below what would thrash a machine. */
#if SIZE_MAX > 0xffffffffu
#define IDX_MAX_BYTES ((size_t)16 << 30)
#else
#define IDX_MAX_BYTES ((size_t)1 << 30)
#endif

/* Below this many output floats a batch is too small to be worth threads. */
#define BATCH_PAR_MIN 32768

/* The usual statistics of the Fashion-MNIST training set. */
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f

pare_status pare_dataset_alloc(const char *name, long n, int c, int h, int w, pare_dataset **out)
{
    *out = NULL;
    if (n <= 0 || c <= 0 || c > PARE_DATA_MAX_CH || h <= 0 || w <= 0)
        return pare_fail(PARE_EINVAL,
                         "a dataset of %ld samples of %d x %d x %d is not possible (1 to %d "
                         "channels, positive sizes)",
                         n, c, h, w, PARE_DATA_MAX_CH);
    size_t chw = pare_mul_size(pare_mul_size((size_t)c, (size_t)h), (size_t)w);
    size_t bytes = pare_mul_size((size_t)n, chw);
    if (bytes == SIZE_MAX)
        return pare_fail(PARE_ENOMEM, "a dataset of %ld samples of %d x %d x %d is too large", n,
                         c, h, w);
    pare_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return pare_fail(PARE_ENOMEM, "out of memory allocating a dataset");
    ds->name = pare_strdup(name ? name : "dataset");
    ds->images = pare_alloc(bytes, 0);
    ds->labels = pare_alloc((size_t)n, 0);
    if (!ds->name || !ds->images || !ds->labels) {
        pare_dataset_free(ds);
        return pare_fail(PARE_ENOMEM, "out of memory allocating %zu bytes for a dataset", bytes);
    }
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    *out = ds;
    return PARE_OK;
}

void pare_dataset_free(pare_dataset *ds)
{
    if (!ds)
        return;
    free(ds->name);
    pare_free(ds->images);
    pare_free(ds->labels);
    free(ds);
}

void pare_dataset_count_classes(pare_dataset *ds)
{
    int top = 0;
    for (long i = 0; i < ds->n; i++)
        if (ds->labels[i] > top)
            top = ds->labels[i];
    ds->classes = top + 1;
}

long pare_dataset_size(const pare_dataset *ds) { return ds ? ds->n : 0; }

void pare_dataset_shape(const pare_dataset *ds, int *c, int *h, int *w)
{
    if (c)
        *c = ds ? ds->c : 0;
    if (h)
        *h = ds ? ds->h : 0;
    if (w)
        *w = ds ? ds->w : 0;
}

int pare_dataset_classes(const pare_dataset *ds) { return ds ? ds->classes : 0; }

pare_status pare_dataset_limit(pare_dataset *ds, long n)
{
    if (!ds)
        return pare_fail(PARE_EINVAL, "no dataset given to limit");
    if (n < 1 || n > ds->n)
        return pare_fail(PARE_EINVAL, "cannot keep %ld samples of %s: it has %ld", n, ds->name,
                         ds->n);
    /* classes stays: a model sized for the whole set must still fit a prefix. */
    ds->n = n;
    return PARE_OK;
}

pare_status pare_dataset_set_normalization(pare_dataset *ds, int channels, const float *mean,
                                           const float *std)
{
    if (!ds || !mean || !std)
        return pare_fail(PARE_EINVAL, "normalisation needs a dataset, means and deviations");
    if (channels != ds->c && channels != 1)
        return pare_fail(PARE_EINVAL,
                         "normalisation gives %d channels but %s has %d (give %d, or 1 for all)",
                         channels, ds->name, ds->c, ds->c);
    for (int i = 0; i < channels; i++) {
        if (!isfinite(mean[i]))
            return pare_fail(PARE_EINVAL, "normalisation mean %d is not a finite number", i);
        if (!isfinite(std[i]) || !(std[i] > 0))
            return pare_fail(PARE_EINVAL, "normalisation std %d is %g; it must be above 0", i,
                             (double)std[i]);
    }
    /* One channel is kept as one: the batch code broadcasts it. */
    ds->norm_channels = channels;
    for (int i = 0; i < PARE_DATA_MAX_CH; i++) {
        ds->mean[i] = i < channels ? mean[i] : 0.0f;
        ds->std[i] = i < channels ? std[i] : 1.0f;
    }
    return PARE_OK;
}

/* dir/base, else dir/base.gz, into path; 0 when neither exists. */
static int find_maybe_gz(const char *dir, const char *base, char *path, size_t cap)
{
    if (pare_path_join(path, cap, dir, base) && pare_file_exists(path))
        return 1;
    char gz[256];
    snprintf(gz, sizeof gz, "%s.gz", base);
    return pare_path_join(path, cap, dir, gz) && pare_file_exists(path);
}

pare_status pare_data_find_fashion_mnist(char *dir, size_t len)
{
    if (!dir || len == 0)
        return pare_fail(PARE_EINVAL, "no room given for the Fashion-MNIST folder name");
    const char *env = getenv("PARE_DATA");
    char cand[4][PATH_CAP];
    int nc = 0;
    if (env && *env) {
        snprintf(cand[nc++], PATH_CAP, "%s/fashion-mnist", env);
        snprintf(cand[nc++], PATH_CAP, "%s", env);
    }
    snprintf(cand[nc++], PATH_CAP, "./data/fashion-mnist");
    snprintf(cand[nc++], PATH_CAP, "/usr/share/datasets/fashion-mnist");
    char probe[PATH_CAP];
    for (int i = 0; i < nc; i++) {
        /* Either split's images will do: a folder with only the test set is still the place. */
        if (!find_maybe_gz(cand[i], "train-images-idx3-ubyte", probe, sizeof probe) &&
            !find_maybe_gz(cand[i], "t10k-images-idx3-ubyte", probe, sizeof probe))
            continue;
        if ((size_t)snprintf(dir, len, "%s", cand[i]) >= len)
            return pare_fail(PARE_EINVAL, "the Fashion-MNIST folder name %s is too long", cand[i]);
        return PARE_OK;
    }
    if (nc == 4)
        return pare_fail(PARE_ENOTFOUND,
                         "Fashion-MNIST not found in %s, %s, %s or %s; install Debian's "
                         "dataset-fashion-mnist package or set PARE_DATA",
                         cand[0], cand[1], cand[2], cand[3]);
    return pare_fail(PARE_ENOTFOUND,
                     "Fashion-MNIST not found in %s or %s; install Debian's dataset-fashion-mnist "
                     "package or set PARE_DATA to a folder holding it",
                     cand[0], cand[1]);
}

pare_status pare_dataset_load_idx(const char *images_path, const char *labels_path,
                                  pare_dataset **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "no place given for the IDX dataset");
    *out = NULL;
    if (!images_path || !labels_path)
        return pare_fail(PARE_EINVAL, "an IDX dataset needs an images file and a labels file");
    uint8_t *ibuf = NULL, *lbuf = NULL;
    size_t ilen, llen;
    int ind, lnd, idims[4], ldims[4];
    const uint8_t *ipix, *lpix;
    pare_dataset *ds = NULL;
    pare_status s = pare_data_read_maybe_gz(images_path, IDX_MAX_BYTES, &ibuf, &ilen);
    if (s != PARE_OK)
        return s;
    s = pare_idx_parse(ibuf, ilen, images_path, &ind, idims, &ipix);
    if (s != PARE_OK)
        goto fail_images;
    if (ind != 3 && ind != 4) {
        s = pare_fail(PARE_EFORMAT,
                      "%s has %d dimensions; images need 3 (n x h x w) or 4 (n x c x h x w)",
                      images_path, ind);
        goto fail_images;
    }
    int c = ind == 4 ? idims[1] : 1, h = idims[ind - 2], w = idims[ind - 1];
    if (c > PARE_DATA_MAX_CH) {
        s = pare_fail(PARE_EUNSUPPORTED, "%s has %d channels; pare reads 1 to %d", images_path, c,
                      PARE_DATA_MAX_CH);
        goto fail_images;
    }
    s = pare_data_read_maybe_gz(labels_path, IDX_MAX_BYTES, &lbuf, &llen);
    if (s != PARE_OK)
        goto fail_images;
    s = pare_idx_parse(lbuf, llen, labels_path, &lnd, ldims, &lpix);
    if (s != PARE_OK)
        goto fail_labels;
    if (lnd != 1) {
        s = pare_fail(PARE_EFORMAT, "%s has %d dimensions; labels need 1", labels_path, lnd);
        goto fail_labels;
    }
    if (ldims[0] != idims[0]) {
        s = pare_fail(PARE_EFORMAT, "%s holds %d images but %s holds %d labels", images_path,
                      idims[0], labels_path, ldims[0]);
        goto fail_labels;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        s = pare_fail(PARE_ENOMEM, "out of memory allocating a dataset");
        goto fail_labels;
    }
    ds->name = pare_strdup(images_path);
    if (!ds->name) {
        s = PARE_ENOMEM;
        goto fail_ds;
    }
    /* The file buffers become the dataset's arrays: the header is slid off
     * rather than the pixels copied, so a large set is never held twice. */
    size_t pix = (size_t)idims[0] * (size_t)c * (size_t)h * (size_t)w;
    memmove(ibuf, ipix, pix);
    memmove(lbuf, lpix, (size_t)ldims[0]);
    ds->images = ibuf;
    ds->labels = lbuf;
    ds->n = idims[0];
    ds->c = c;
    ds->h = h;
    ds->w = w;
    pare_dataset_count_classes(ds);
    *out = ds;
    return PARE_OK;

fail_ds:
    pare_dataset_free(ds);
fail_labels:
    free(lbuf);
fail_images:
    free(ibuf);
    return s;
}

/* Whether the last component of a folder path mentions "fashion", whatever
 * the case: the one hint that a folder of IDX files is Fashion-MNIST. */
static int folder_says_fashion(const char *dir)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    static const char key[] = "fashion";
    size_t k = sizeof key - 1;
    for (size_t i = start; i + k <= end; i++) {
        size_t j = 0;
        while (j < k && tolower((unsigned char)dir[i + j]) == key[j])
            j++;
        if (j == k)
            return 1;
    }
    return 0;
}

static const char *split_prefix(pare_split split)
{
    return split == PARE_SPLIT_TEST ? "t10k" : "train";
}

static const char *split_word(pare_split split)
{
    return split == PARE_SPLIT_TEST ? "test" : "train";
}

/* The split's images and labels from an IDX folder; name_base names the dataset. */
static pare_status open_idx_folder(const char *dir, pare_split split, const char *name_base,
                                   int fashion, pare_dataset **out)
{
    char img[PATH_CAP], lab[PATH_CAP], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split_prefix(split));
    if (!find_maybe_gz(dir, base, img, sizeof img))
        return pare_fail(PARE_ENOTFOUND, "%s holds no %s or %s.gz for the %s split", dir, base,
                         base, split_word(split));
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split_prefix(split));
    if (!find_maybe_gz(dir, base, lab, sizeof lab))
        return pare_fail(PARE_ENOTFOUND, "%s holds images but no %s or %s.gz for the %s split",
                         dir, base, base, split_word(split));
    pare_dataset *ds;
    pare_status s = pare_dataset_load_idx(img, lab, &ds);
    if (s != PARE_OK)
        return s;
    char name[PATH_CAP];
    snprintf(name, sizeof name, "%s %s", name_base, split_word(split));
    char *nn = pare_strdup(name);
    if (!nn) {
        pare_dataset_free(ds);
        return PARE_ENOMEM;
    }
    free(ds->name);
    ds->name = nn;
    if (fashion) {
        ds->norm_channels = 1;
        ds->mean[0] = FMNIST_MEAN;
        ds->std[0] = FMNIST_STD;
    }
    *out = ds;
    return PARE_OK;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

pare_status pare_dataset_open(const char *spec, pare_split split, pare_dataset **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "no place given for the dataset");
    *out = NULL;
    if (!spec || !*spec)
        return pare_fail(PARE_EINVAL, "no dataset named: give \"fashion-mnist\" or a folder");
    if (split != PARE_SPLIT_TRAIN && split != PARE_SPLIT_TEST)
        return pare_fail(PARE_EINVAL, "unknown split %d", (int)split);
    if (!strcmp(spec, "fashion-mnist")) {
        char dir[PATH_CAP];
        pare_status s = pare_data_find_fashion_mnist(dir, sizeof dir);
        if (s != PARE_OK)
            return s;
        return open_idx_folder(dir, split, "fashion-mnist", 1, out);
    }
    if (!is_dir(spec))
        return pare_fail(PARE_ENOTFOUND,
                         "no dataset \"%s\": it is neither \"fashion-mnist\" nor a folder holding "
                         "MNIST-format IDX files or CIFAR-10 binary batches",
                         spec);
    char probe[PATH_CAP], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split_prefix(split));
    /* A folder of IDX files is taken as Fashion-MNIST, with its statistics,
     * only when its name says so; any other MNIST-format set gets mean 0,
     * std 1 until the caller sets its own. */
    if (find_maybe_gz(spec, base, probe, sizeof probe))
        return open_idx_folder(spec, split, spec, folder_says_fashion(spec), out);
    if (pare_cifar_present(spec))
        return pare_dataset_load_cifar10(spec, split, out);
    const char *other =
        split == PARE_SPLIT_TEST ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    if (find_maybe_gz(spec, other, probe, sizeof probe))
        return pare_fail(PARE_ENOTFOUND, "%s holds IDX files but no %s or %s.gz for the %s split",
                         spec, base, base, split_word(split));
    return pare_fail(PARE_ENOTFOUND,
                     "%s holds neither MNIST-format IDX files (%s[.gz]) nor CIFAR-10 batches "
                     "(data_batch_1.bin ... or test_batch.bin, also in cifar-10-batches-bin/)",
                     spec, base);
}

void pare_data_permutation(long n, uint64_t seed, uint64_t epoch, long *perm)
{
    if (n <= 0 || !perm)
        return;
    for (long i = 0; i < n; i++)
        perm[i] = i;
    pare_rng r;
    pare_rng_seed(&r, seed, 0x5eed, epoch, 0);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)pare_rng_below(&r, (uint64_t)i + 1);
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* One sample cropped by (dy, dx) from its zero-padded self, mirrored when
 * flip: out(y, x) = in(y + dy, x' + dx) with x' = x or w-1-x, and padding
 * (raw 0) outside the image. */
static void augment_sample(const uint8_t *src, float *dst, int c, int h, int w, long dy, long dx,
                           int flip, const float (*lut)[256])
{
    size_t hw = (size_t)h * (size_t)w;
    for (int ch = 0; ch < c; ch++) {
        const float *L = lut[ch];
        const uint8_t *plane = src + (size_t)ch * hw;
        float *o = dst + (size_t)ch * hw;
        for (long y = 0; y < h; y++) {
            float *row = o + (size_t)y * (size_t)w;
            long sy = y + dy;
            if (sy < 0 || sy >= h) {
                for (long x = 0; x < w; x++)
                    row[x] = L[0];
                continue;
            }
            const uint8_t *srow = plane + (size_t)sy * (size_t)w;
            for (long x = 0; x < w; x++) {
                long sx = (flip ? w - 1 - x : x) + dx;
                row[x] = sx >= 0 && sx < w ? L[srow[sx]] : L[0];
            }
        }
    }
}

void pare_data_norm_lut(int norm_channels, const float *mean, const float *std, int c, float (*lut)[256])
{
    for (int ch = 0; ch < c; ch++) {
        int k = ch < norm_channels ? ch : 0;
        double m = norm_channels > 0 ? mean[k] : 0.0, sd = norm_channels > 0 ? std[k] : 1.0;
        for (int v = 0; v < 256; v++)
            lut[ch][v] = (float)(((double)v / 255.0 - m) / sd);
    }
}

void pare_data_batch(const pare_dataset *ds, const long *idx, int n, float *out, int32_t *labels,
                     const pare_augment *aug, uint64_t seed, uint64_t epoch, int threads)
{
    if (!ds || !idx || !out || n <= 0)
        return;
    const int c = ds->c, h = ds->h, w = ds->w;
    const size_t hw = (size_t)h * (size_t)w, chw = hw * (size_t)c;
    /* A table per channel turns normalisation into one load per pixel and
     * makes every path (plain, cropped, padded) give the same float for a value. */
    float lut[PARE_DATA_MAX_CH][256];
    pare_data_norm_lut(ds->norm_channels, ds->mean, ds->std, c < PARE_DATA_MAX_CH ? c : PARE_DATA_MAX_CH, lut);
    const long pad = aug && aug->crop_pad > 0 ? aug->crop_pad : 0;
    const int hflip = aug && aug->hflip;
    int nt = pare_threads_resolve(threads);
    if ((double)n * (double)chw < BATCH_PAR_MIN)
        nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; i++) {
        long s = idx[i];
        assert(s >= 0 && s < ds->n);
        const uint8_t *src = ds->images + (size_t)s * chw;
        float *dst = out + (size_t)i * chw;
        if (labels)
            labels[i] = ds->labels[s];
        if (!pad && !hflip) {
            for (int ch = 0; ch < c; ch++) {
                const float *L = lut[ch];
                const uint8_t *p = src + (size_t)ch * hw;
                float *o = dst + (size_t)ch * hw;
                for (size_t j = 0; j < hw; j++)
                    o[j] = L[p[j]];
            }
            continue;
        }
        /* Keyed by the sample, not its place in the batch: the same image
         * gets the same crop and flip however the epoch is cut up. */
        pare_rng r;
        pare_rng_seed(&r, seed, 0xa06, epoch, (uint64_t)s);
        long dy = 0, dx = 0;
        int flip = 0;
        if (pad) {
            dy = (long)pare_rng_below(&r, 2 * (uint64_t)pad + 1) - pad;
            dx = (long)pare_rng_below(&r, 2 * (uint64_t)pad + 1) - pad;
        }
        if (hflip)
            flip = (int)pare_rng_below(&r, 2);
        augment_sample(src, dst, c, h, w, dy, dx, flip, (const float (*)[256])lut);
    }
}
