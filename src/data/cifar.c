/* CIFAR-10, binary version: data_batch_1..5.bin (train) and test_batch.bin
 * (test), each a run of 3073-byte records, read straight or from the
 * cifar-10-batches-bin/ folder the archive unpacks to. */
#include "data/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/fsio.h"

#define CIFAR_SIDE 32
#define CIFAR_CH 3
#define CIFAR_PIXELS (CIFAR_CH * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_CLASSES 10
#define CIFAR_TRAIN_BATCHES 5
#define CIFAR_SUBDIR "cifar-10-batches-bin"
#define PATH_CAP 4096

/* The usual per-channel statistics of the CIFAR-10 training set. */
static const float cifar_mean[CIFAR_CH] = {0.4914f, 0.4822f, 0.4465f};
static const float cifar_std[CIFAR_CH] = {0.2470f, 0.2435f, 0.2616f};

pare_status pare_cifar_parse(const uint8_t *buf, size_t len, const char *what, long *records,
                             uint8_t *images, uint8_t *labels)
{
    if (!what)
        what = "CIFAR-10 data";
    *records = 0;
    if (len == 0)
        return pare_fail(PARE_EFORMAT, "%s is empty; a CIFAR-10 batch holds %d-byte records", what,
                         PARE_CIFAR_RECORD);
    if (!buf)
        return pare_fail(PARE_EINVAL, "%s: no buffer given for %zu bytes", what, len);
    if (len % PARE_CIFAR_RECORD != 0)
        return pare_fail(PARE_EFORMAT,
                         "%s: %zu bytes is not a whole number of %d-byte CIFAR-10 records (1 "
                         "label byte and %d pixels)",
                         what, len, PARE_CIFAR_RECORD, CIFAR_PIXELS);
    size_t n = len / PARE_CIFAR_RECORD;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = buf + i * PARE_CIFAR_RECORD;
        if (rec[0] >= CIFAR_CLASSES)
            return pare_fail(PARE_EFORMAT,
                             "%s: record %zu has label %u; CIFAR-10 labels are 0 to 9", what, i,
                             (unsigned)rec[0]);
        if (labels)
            labels[i] = rec[0];
        if (images)
            memcpy(images + i * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
    }
    *records = (long)n;
    return PARE_OK;
}

/* Batch k (0-based) of a split, as a file name. */
static const char *batch_name(pare_split split, int k, char *buf, size_t cap)
{
    if (split == PARE_SPLIT_TEST)
        return "test_batch.bin";
    snprintf(buf, cap, "data_batch_%d.bin", k + 1);
    return buf;
}

static int batch_count(pare_split split)
{
    return split == PARE_SPLIT_TEST ? 1 : CIFAR_TRAIN_BATCHES;
}

/* The folder holding the split's first batch: dir itself or its
 * cifar-10-batches-bin/ folder; 0 when neither has it. */
static int find_folder(const char *dir, pare_split split, char *folder, size_t cap)
{
    char name[64], path[PATH_CAP];
    const char *first = batch_name(split, 0, name, sizeof name);
    if (pare_path_join(path, sizeof path, dir, first) && pare_file_exists(path))
        return snprintf(folder, cap, "%s", dir) < (int)cap;
    if (pare_path_join(folder, cap, dir, CIFAR_SUBDIR) && pare_path_join(path, sizeof path, folder, first) &&
        pare_file_exists(path))
        return 1;
    return 0;
}

int pare_cifar_present(const char *dir)
{
    char folder[PATH_CAP];
    if (!dir)
        return 0;
    return find_folder(dir, PARE_SPLIT_TRAIN, folder, sizeof folder) ||
           find_folder(dir, PARE_SPLIT_TEST, folder, sizeof folder);
}

pare_status pare_dataset_load_cifar10(const char *dir, pare_split split, pare_dataset **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "no place given for the CIFAR-10 dataset");
    *out = NULL;
    if (!dir || !*dir)
        return pare_fail(PARE_EINVAL, "no CIFAR-10 folder given");
    if (split != PARE_SPLIT_TRAIN && split != PARE_SPLIT_TEST)
        return pare_fail(PARE_EINVAL, "unknown split %d for CIFAR-10", (int)split);
    const char *split_name = split == PARE_SPLIT_TEST ? "test" : "train";
    char folder[PATH_CAP], path[PATH_CAP], name[64];
    if (!find_folder(dir, split, folder, sizeof folder))
        return pare_fail(PARE_ENOTFOUND, "no CIFAR-10 %s batch (%s) in %s or %s/%s", split_name,
                         batch_name(split, 0, name, sizeof name), dir, dir, CIFAR_SUBDIR);

    /* Sizes first, so the dataset is allocated once and each file read once. */
    size_t sizes[CIFAR_TRAIN_BATCHES] = {0};
    int files = 0;
    long total = 0;
    for (int k = 0; k < batch_count(split); k++) {
        if (!pare_path_join(path, sizeof path, folder, batch_name(split, k, name, sizeof name)))
            return pare_fail(PARE_EINVAL, "the CIFAR-10 folder name %s is too long", folder);
        struct stat st;
        if (stat(path, &st) != 0) {
            if (errno != ENOENT)
                return pare_fail(PARE_EIO, "cannot open %s: %s", path, strerror(errno));
            /* Batches are taken in order; a hole means a broken download, not a choice. */
            for (int j = k + 1; j < batch_count(split); j++) {
                char later[64], lpath[PATH_CAP];
                if (pare_path_join(lpath, sizeof lpath, folder, batch_name(split, j, later, sizeof later)) &&
                    pare_file_exists(lpath))
                    return pare_fail(PARE_EFORMAT, "%s is missing but %s is there", path, lpath);
            }
            break;
        }
        if (!S_ISREG(st.st_mode))
            return pare_fail(PARE_EIO, "%s is not a regular file", path);
        size_t sz = (size_t)st.st_size;
        if ((unsigned long long)st.st_size != sz || sz == 0 || sz % PARE_CIFAR_RECORD != 0)
            return pare_fail(PARE_EFORMAT,
                             "%s is %lld bytes, not a whole number of %d-byte CIFAR-10 records",
                             path, (long long)st.st_size, PARE_CIFAR_RECORD);
        sizes[files++] = sz;
        total += (long)(sz / PARE_CIFAR_RECORD);
    }

    char dsname[64];
    snprintf(dsname, sizeof dsname, "cifar-10 %s", split_name);
    pare_dataset *ds;
    pare_status s = pare_dataset_alloc(dsname, total, CIFAR_CH, CIFAR_SIDE, CIFAR_SIDE, &ds);
    if (s != PARE_OK)
        return s;
    long at = 0;
    for (int k = 0; k < files; k++) {
        pare_path_join(path, sizeof path, folder, batch_name(split, k, name, sizeof name));
        uint8_t *buf;
        size_t len;
        s = pare_read_file(path, sizes[k], &buf, &len);
        if (s != PARE_OK)
            goto fail_ds;
        long got = 0;
        if (len != sizes[k])
            s = pare_fail(PARE_EIO, "%s changed size while being read", path);
        else
            s = pare_cifar_parse(buf, len, path, &got, ds->images + (size_t)at * CIFAR_PIXELS,
                                 ds->labels + at);
        free(buf);
        if (s != PARE_OK)
            goto fail_ds;
        at += got;
    }
    pare_dataset_count_classes(ds);
    ds->norm_channels = CIFAR_CH;
    memcpy(ds->mean, cifar_mean, sizeof cifar_mean);
    memcpy(ds->std, cifar_std, sizeof cifar_std);
    *out = ds;
    return PARE_OK;

fail_ds:
    pare_dataset_free(ds);
    return s;
}
