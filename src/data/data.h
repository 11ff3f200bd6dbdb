/* Datasets held as raw uint8 pixels (a quarter of the memory of floats);
 * batches are normalised, and augmented, as they are assembled. */
#ifndef PARE_DATA_DATA_H
#define PARE_DATA_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "pare.h"

#define PARE_DATA_MAX_CH 4

struct pare_dataset {
    char *name;                 /* e.g. "fashion-mnist train" */
    long n;                     /* samples */
    int c, h, w;                /* per-sample shape */
    int classes;                /* 1 + the largest label */
    uint8_t *images;            /* n x c x h x w, CHW per sample */
    uint8_t *labels;            /* n */
    int norm_channels;          /* 0: mean 0, std 1 for every channel */
    float mean[PARE_DATA_MAX_CH], std[PARE_DATA_MAX_CH];
};

typedef struct pare_augment {
    int crop_pad;               /* random crop after zero-padding by this many pixels (0 off) */
    int hflip;                  /* horizontal flip with probability 1/2 */
} pare_augment;

/* Assembles samples idx[0..n) as floats (x/255 - mean)/std, NCHW, and their
 * labels. With aug (may be NULL), each sample's crop and flip come from a
 * stream keyed by (seed, epoch, idx[i]), so a batch is the same whatever the
 * thread count or batch split. Padding pixels are raw 0 before normalisation,
 * as torchvision's RandomCrop pads. */
void pare_data_batch(const pare_dataset *ds, const long *idx, int n, float *out, int32_t *labels,
                     const pare_augment *aug, uint64_t seed, uint64_t epoch, int threads);

/* The float of each pixel value v of channels [0, c): (v/255 - mean)/std with
 * the statistics of channel ch (channel 0's past norm_channels; 0 and 1 when
 * norm_channels is 0). Every path that turns pixels into inputs uses it, so
 * the same value always gives the same float. */
void pare_data_norm_lut(int norm_channels, const float *mean, const float *std, int c, float (*lut)[256]);

/* The order of epoch `epoch`: a permutation of [0, n) from (seed, epoch). */
void pare_data_permutation(long n, uint64_t seed, uint64_t epoch, long *perm);

/* Parses an IDX file held in memory (the MNIST format: magic 0x0000 08 nd,
 * big-endian dims, uint8 data; gzip already undone). */
pare_status pare_idx_parse(const uint8_t *buf, size_t len, const char *what, int *ndim, int dims[4],
                           const uint8_t **data);

/* Reads a file that may be gzip-compressed or plain into memory (free with
 * free()); more than max bytes once decompressed is an error. */
pare_status pare_data_read_maybe_gz(const char *path, size_t max, uint8_t **out, size_t *len);

/* CIFAR-10 binary records: 1 label byte (0..9) then 3072 pixels, CHW 3x32x32. */
#define PARE_CIFAR_RECORD 3073

/* Parses CIFAR-10 records held in memory; what names them in errors. *records
 * gets their count; images (records x 3072) and labels (records) may be NULL
 * to only check. */
pare_status pare_cifar_parse(const uint8_t *buf, size_t len, const char *what, long *records,
                             uint8_t *images, uint8_t *labels);

/* Whether dir (or its cifar-10-batches-bin/ folder) holds CIFAR-10 batches. */
int pare_cifar_present(const char *dir);

/* A dataset with room for n samples of c x h x w (pixels and labels left
 * uninitialised), mean 0 and std 1; name is copied. */
pare_status pare_dataset_alloc(const char *name, long n, int c, int h, int w, pare_dataset **out);

/* Sets classes to 1 + the largest label. */
void pare_dataset_count_classes(pare_dataset *ds);

/* The folder holding Fashion-MNIST: $PARE_DATA/fashion-mnist, $PARE_DATA,
 * ./data/fashion-mnist, /usr/share/datasets/fashion-mnist; ENOTFOUND with the
 * places tried and the Debian package to install. */
pare_status pare_data_find_fashion_mnist(char *dir, size_t len);

#endif
