/* Synthetic IDX datasets for training tests. */
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"

static void be32(FILE *f, unsigned v)
{
    fputc((int)(v >> 24) & 255, f);
    fputc((int)(v >> 16) & 255, f);
    fputc((int)(v >> 8) & 255, f);
    fputc((int)v & 255, f);
}

static int write_split(const char *dir, const char *prefix, int n, unsigned seed)
{
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/%s-images-idx3-ubyte", dir, prefix);
    snprintf(p2, sizeof p2, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fi = fopen(p1, "wb"), *fl = fopen(p2, "wb");
    if (!fi || !fl) {
        if (fi)
            fclose(fi);
        if (fl)
            fclose(fl);
        return -1;
    }
    be32(fi, 0x803);
    be32(fi, (unsigned)n);
    be32(fi, 28);
    be32(fi, 28);
    be32(fl, 0x801);
    be32(fl, (unsigned)n);
    pare_rng r;
    pare_rng_seed(&r, seed, 5, 0, 0);
    unsigned char img[28 * 28];
    for (int s = 0; s < n; s++) {
        int k = (int)pare_rng_below(&r, 10);
        for (int i = 0; i < 28 * 28; i++)
            img[i] = (unsigned char)pare_rng_below(&r, 60);
        /* a bar: horizontal for classes 0-4 at row 4+5k, vertical for 5-9 at column 4+5(k-5) */
        int pos = 3 + 5 * (k % 5) + (int)pare_rng_below(&r, 2);
        for (int t = 4; t < 24; t++) {
            int y = k < 5 ? pos : t, x = k < 5 ? t : pos;
            img[y * 28 + x] = (unsigned char)(200 + pare_rng_below(&r, 56));
        }
        fwrite(img, 1, sizeof img, fi);
        fputc(k, fl);
    }
    int bad = ferror(fi) || ferror(fl);
    bad |= fclose(fi) != 0;
    bad |= fclose(fl) != 0;
    return bad ? -1 : 0;
}

int synth_write_idx(const char *dir, int n_train, int n_test, unsigned seed)
{
    if (write_split(dir, "train", n_train, seed) != 0)
        return -1;
    return write_split(dir, "t10k", n_test, seed + 1);
}
