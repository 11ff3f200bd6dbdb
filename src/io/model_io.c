/* Saving and loading .pare files: encode or decode (file_write.c, file_read.c)
 * plus an atomic write or a whole-file read; and the public model API on top. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsio.h"
#include "io/io.h"

void pare_file_extra_free(pare_file_extra *x)
{
    if (!x)
        return;
    for (int i = 0; i < x->n; i++)
        free(x->s[i].data);
    free(x->s);
    x->n = 0;
    x->s = NULL;
}

const pare_file_section *pare_file_extra_find(const pare_file_extra *x, const char *tag)
{
    if (!x || !tag || strlen(tag) != 4)
        return NULL;
    for (int i = 0; i < x->n; i++)
        if (!memcmp(x->s[i].tag, tag, 4))
            return &x->s[i];
    return NULL;
}

pare_status pare_file_save(const char *path, const pare_graph *g, const pare_file_section *extra,
                           int n_extra)
{
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "no path to save the model to");
    uint8_t *buf = NULL;
    size_t len = 0;
    pare_status s = pare_file_encode(g, extra, n_extra, &buf, &len);
    if (s != PARE_OK) {
        pare_error_prefix("%s", path);
        return s;
    }
    s = pare_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}

pare_status pare_file_load(const char *path, pare_graph **g, pare_file_extra *extra)
{
    if (extra) {
        extra->n = 0;
        extra->s = NULL;
    }
    if (!g)
        return pare_fail(PARE_EINVAL, "pare_file_load needs somewhere to put the graph");
    *g = NULL;
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "no path to load a model from");
    uint8_t *buf = NULL;
    size_t len = 0;
    pare_status s = pare_read_file(path, SIZE_MAX, &buf, &len);
    if (s != PARE_OK)
        return s;
    s = pare_file_decode(buf, len, path, g, extra);
    free(buf);
    return s;
}

pare_status pare_graph_save(const pare_graph *g, const char *path)
{
    return pare_file_save(path, g, NULL, 0);
}

pare_status pare_graph_load(const char *path, pare_graph **out)
{
    return pare_file_load(path, out, NULL);
}
