/* IDX files (the MNIST format) parsed from memory, and whole-file reads that
 * undo gzip when it is there: Debian ships Fashion-MNIST gzipped, others unpack it. */
#include "data/data.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"

/* gzread takes an unsigned count; a GiB per call keeps it well inside. */
#define GZ_CHUNK_MAX ((size_t)1 << 30)
#define GZ_FIRST_CAP ((size_t)1 << 16)

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The element types the IDX format defines; all but 0x08 are valid files
 * that pare does not read, which is a different answer from garbage. */
static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "short";
    case 0x0c: return "int";
    case 0x0d: return "float";
    case 0x0e: return "double";
    }
    return NULL;
}

pare_status pare_idx_parse(const uint8_t *buf, size_t len, const char *what, int *ndim, int dims[4],
                           const uint8_t **data)
{
    if (!what)
        what = "IDX data";
    *ndim = 0;
    *data = NULL;
    for (int i = 0; i < 4; i++)
        dims[i] = 0;
    if (!buf && len > 0)
        return pare_fail(PARE_EINVAL, "%s: no buffer given for %zu bytes", what, len);
    if (len < 4)
        return pare_fail(PARE_EFORMAT,
                         "%s: truncated: %zu bytes, shorter than the 4-byte IDX magic number", what,
                         len);
    if (buf[0] != 0 || buf[1] != 0)
        return pare_fail(PARE_EFORMAT,
                         "%s: not an IDX file: its magic number starts with 0x%02x 0x%02x, not "
                         "two zero bytes",
                         what, buf[0], buf[1]);
    int type = buf[2];
    if (type != 0x08) {
        const char *tn = idx_type_name(type);
        if (tn)
            return pare_fail(PARE_EUNSUPPORTED,
                             "%s: IDX element type 0x%02x (%s) is not supported; pare reads only "
                             "type 0x08 (unsigned bytes)",
                             what, type, tn);
        return pare_fail(PARE_EFORMAT,
                         "%s: not an IDX file: element type byte 0x%02x is none of the IDX types "
                         "(0x08, 0x09, 0x0b-0x0e)",
                         what, type);
    }
    int nd = buf[3];
    if (nd == 0)
        return pare_fail(PARE_EFORMAT, "%s: the IDX header gives 0 dimensions", what);
    if (nd > 4)
        return pare_fail(PARE_EUNSUPPORTED,
                         "%s: the IDX header gives %d dimensions; pare reads 1 to 4", what, nd);
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr)
        return pare_fail(PARE_EFORMAT,
                         "%s: truncated: the header of %d dimensions needs %zu bytes, the file "
                         "has %zu",
                         what, nd, hdr, len);
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        uint32_t d = be32(buf + 4 + 4 * (size_t)i);
        if (d == 0)
            return pare_fail(PARE_EFORMAT, "%s: dimension %d of %d is 0", what, i + 1, nd);
        if (d > INT_MAX)
            return pare_fail(PARE_EFORMAT, "%s: dimension %d is %lu, larger than pare accepts",
                             what, i + 1, (unsigned long)d);
        total = pare_mul_size(total, d);
        /* SIZE_MAX also marks overflow; no real file is that long anyway. Samples
         * are counted in longs, so the product must fit one as well. */
        if (total == SIZE_MAX || total > LONG_MAX)
            return pare_fail(PARE_EFORMAT,
                             "%s: the header's dimensions hold more bytes than this machine can "
                             "address",
                             what);
        dims[i] = (int)d;
    }
    /* One-dimensional IDX files are label lists; more dimensions are images. */
    const char *noun = nd == 1 ? "labels" : "pixels";
    size_t have = len - hdr;
    if (have < total)
        return pare_fail(PARE_EFORMAT, "%s: truncated: header says %zu bytes of %s, file has %zu",
                         what, total, noun, have);
    if (have > total)
        return pare_fail(PARE_EFORMAT,
                         "%s: %zu bytes of trailing data after the %zu bytes of %s the header "
                         "describes",
                         what, have - total, total, noun);
    *ndim = nd;
    *data = buf + hdr;
    return PARE_OK;
}

/* The status and sentence for zlib's current error on gz, if any. */
static pare_status gz_status(gzFile gz, const char *path)
{
    int err = Z_OK;
    int saved = errno;
    const char *msg = gzerror(gz, &err);
    /* zlib puts "<path>: " before its message; the sentence names the path once. */
    size_t plen = strlen(path);
    if (msg && !strncmp(msg, path, plen) && msg[plen] == ':' && msg[plen + 1] == ' ')
        msg += plen + 2;
    if (!msg)
        msg = "unknown zlib error";
    switch (err) {
    case Z_OK: return PARE_OK;
    case Z_ERRNO: return pare_fail(PARE_EIO, "cannot read %s: %s", path, strerror(saved));
    case Z_MEM_ERROR: return pare_fail(PARE_ENOMEM, "out of memory decompressing %s", path);
    case Z_BUF_ERROR:
        /* zlib's word for input that stopped inside a gzip stream. */
        return pare_fail(PARE_EFORMAT, "%s: the gzip stream is truncated (%s)", path, msg);
    default: return pare_fail(PARE_EFORMAT, "%s: corrupt gzip data: %s", path, msg);
    }
}

pare_status pare_data_read_maybe_gz(const char *path, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "no file name given to read");
    struct stat st;
    if (stat(path, &st) != 0)
        return pare_fail(errno == ENOENT ? PARE_ENOTFOUND : PARE_EIO, "cannot open %s: %s", path,
                         strerror(errno));
    /* A folder or a pipe would fail later with a vaguer message, or block. */
    if (!S_ISREG(st.st_mode))
        return pare_fail(PARE_EIO, "%s is not a regular file", path);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        if (errno == 0)
            return pare_fail(PARE_ENOMEM, "out of memory opening %s", path);
        return pare_fail(errno == ENOENT ? PARE_ENOTFOUND : PARE_EIO, "cannot open %s: %s", path,
                         strerror(errno));
    }
    pare_status s = PARE_OK;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    /* One byte more than max is enough to know the file is too big. */
    size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
    if (gzbuffer(gz, 1u << 17) != 0) {
        s = pare_fail(PARE_ENOMEM, "cannot set a read buffer for %s", path);
        goto fail_buf;
    }
    for (;;) {
        if (n == cap) {
            if (cap == limit)
                break;
            size_t ncap = cap == 0 ? GZ_FIRST_CAP : (cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2);
            if (ncap > limit)
                ncap = limit;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = pare_fail(PARE_ENOMEM, "out of memory reading %s (%zu bytes)", path, ncap);
                goto fail_buf;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - n;
        if (want > GZ_CHUNK_MAX)
            want = GZ_CHUNK_MAX;
        int r = gzread(gz, buf + n, (unsigned)want);
        if (r < 0) {
            s = gz_status(gz, path);
            if (s == PARE_OK)
                s = pare_fail(PARE_EIO, "cannot read %s", path);
            goto fail_buf;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        s = pare_fail(PARE_EFORMAT, "%s holds more than the %zu bytes this reader accepts", path,
                      max);
        goto fail_buf;
    }
    /* A stream cut short reads as a short file; only the error state tells. */
    s = gz_status(gz, path);
    if (s != PARE_OK)
        goto fail_buf;
    int cr = gzclose(gz);
    gz = NULL;
    if (cr != Z_OK) {
        s = cr == Z_BUF_ERROR ? pare_fail(PARE_EFORMAT, "%s: the gzip stream is truncated", path)
                              : pare_fail(PARE_EIO, "cannot read %s to its end", path);
        goto fail_buf;
    }
    /* The doubling left up to half the buffer unused; give it back. */
    if (n > 0 && n < cap) {
        uint8_t *nb = realloc(buf, n);
        if (nb)
            buf = nb;
    }
    *out = buf;
    *len = n;
    return PARE_OK;

fail_buf:
    free(buf);
    if (gz)
        gzclose(gz);
    return s;
}
