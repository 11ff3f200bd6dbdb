/* libFuzzer target for the dataset readers: IDX parsing, CIFAR-10 record
 * parsing, and the gzip-or-plain file reader (through a temporary file). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp_path[64];

static void remove_tmp(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

/* A parse that succeeds must describe exactly the bytes it was given. */
static void check_idx(const uint8_t *buf, size_t len)
{
    int nd, dims[4];
    const uint8_t *px;
    if (pare_idx_parse(buf, len, "fuzz", &nd, dims, &px) != PARE_OK)
        return;
    if (nd < 1 || nd > 4 || px != buf + 4 + 4 * (size_t)nd)
        abort();
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] <= 0)
            abort();
        total *= (size_t)dims[i];
    }
    if (total != len - (4 + 4 * (size_t)nd))
        abort();
    /* Read every byte the parser vouched for, so ASan checks the range. */
    volatile uint8_t acc = 0;
    for (size_t i = 0; i < total; i++)
        acc ^= px[i];
    (void)acc;
}

static void check_cifar(const uint8_t *buf, size_t len)
{
    long n = 0;
    if (pare_cifar_parse(buf, len, "fuzz", &n, NULL, NULL) != PARE_OK)
        return;
    if (n <= 0 || (size_t)n * PARE_CIFAR_RECORD != len)
        abort();
    uint8_t *images = malloc((size_t)n * (PARE_CIFAR_RECORD - 1));
    uint8_t *labels = malloc((size_t)n);
    long m = 0;
    if (!images || !labels || pare_cifar_parse(buf, len, "fuzz", &m, images, labels) != PARE_OK ||
        m != n)
        abort();
    for (long i = 0; i < n; i++)
        if (labels[i] > 9 || memcmp(images + (size_t)i * (PARE_CIFAR_RECORD - 1),
                                    buf + (size_t)i * PARE_CIFAR_RECORD + 1,
                                    PARE_CIFAR_RECORD - 1) != 0)
            abort();
    free(images);
    free(labels);
}

/* Whole records are 3073 bytes, longer than the fuzzer's inputs for a long
 * while; tiling the input into 1 to 3 records (less a byte when the first
 * byte's top bit says so) reaches the accepting path early. */
static void check_cifar_tiled(const uint8_t *buf, size_t len)
{
    if (len < 2)
        return;
    size_t n = (size_t)1 + buf[0] % 3, total = n * PARE_CIFAR_RECORD - (buf[0] >> 7);
    uint8_t *t = malloc(total);
    if (!t)
        abort();
    for (size_t j = 0; j < total; j++)
        t[j] = buf[1 + j % (len - 1)];
    check_cifar(t, total);
    free(t);
}

/* Gzip input is undone and parsed; anything else must come back unchanged. */
static void check_file(const uint8_t *buf, size_t len)
{
    if (!tmp_path[0]) {
        snprintf(tmp_path, sizeof tmp_path, "/tmp/pare-fuzz-idx-XXXXXX");
        int fd = mkstemp(tmp_path);
        if (fd < 0) {
            tmp_path[0] = 0;
            return;
        }
        close(fd);
        atexit(remove_tmp);
    }
    FILE *f = fopen(tmp_path, "wb");
    if (!f)
        return;
    size_t put = len ? fwrite(buf, 1, len, f) : 0;
    fclose(f);
    if (put != len)
        return;
    uint8_t *out = NULL;
    size_t n = 0;
    pare_status s = pare_data_read_maybe_gz(tmp_path, (size_t)1 << 20, &out, &n);
    int gz = len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
    if (s == PARE_OK) {
        if (!out || (!gz && (n != len || (len && memcmp(out, buf, len) != 0))))
            abort();
        check_idx(out, n);
    } else if (!gz || out != NULL || n != 0) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_idx(data, size);
    check_cifar(data, size);
    check_cifar_tiled(data, size);
    check_file(data, size);
    return 0;
}
