/* File helpers with clear errors; writes go through a temporary file in the
 * same folder, fsync and rename, so a crash never leaves half a file. */
#include "core/fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"

int pare_file_exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

int pare_path_join(char *path, size_t cap, const char *dir, const char *name)
{
    /* By hand rather than snprintf: the length check is explicit, and gcc
     * does not warn about a truncation that cannot happen. */
    size_t a = strlen(dir), b = strlen(name);
    if (a + b + 2 > cap)
        return 0;
    memcpy(path, dir, a);
    path[a] = '/';
    memcpy(path + a + 1, name, b + 1);
    return 1;
}

pare_status pare_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pare_fail(errno == ENOENT ? PARE_ENOTFOUND : PARE_EIO, "cannot open %s: %s", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pare_fail(PARE_EIO, "%s is not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max) {
        close(fd);
        return pare_fail(PARE_EFORMAT, "%s is %lld bytes, more than the %zu this reader accepts",
                         path, (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = pare_alloc(n + 1, 0);
    if (!buf) {
        close(fd);
        return PARE_ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            free(buf);
            return pare_fail(PARE_EIO, "cannot read %s: %s", path, r < 0 ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return PARE_OK;
}

/* Makes a rename durable across a power loss, not just a crash: fsync the
 * folder that holds the new name. Best effort; the data itself is synced. */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        dir[0] = '.';
        dir[1] = 0;
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0)
            n = 1;
        if (n >= sizeof dir)
            return;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

pare_status pare_write_file_atomic(const char *path, const void *data, size_t n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return pare_fail(PARE_ENOMEM, "out of memory writing %s", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        pare_status s = pare_fail(PARE_EIO, "cannot create a file beside %s: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    const uint8_t *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail_write;
        done += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail_write;
    /* mkstemp makes the file 0600; a model file is as readable as any other. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0)
        goto fail_write;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_write;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail_write;
    sync_parent(path);
    free(tmp);
    return PARE_OK;

fail_write:;
    pare_status s = pare_fail(PARE_EIO, "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return s;
}
