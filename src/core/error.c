/* Per-thread error messages and status names. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PARE_ERR_MAX 1024

static _Thread_local char err_msg[PARE_ERR_MAX];

pare_status pare_fail(pare_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return s;
}

void pare_error_prefix(const char *fmt, ...)
{
    char prefix[PARE_ERR_MAX], old[PARE_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    /* A long message is cut, not an error. */
    if (snprintf(err_msg, sizeof err_msg, "%s: %s", prefix, old) < 0)
        err_msg[0] = 0;
}

void pare_error_clear(void) { err_msg[0] = 0; }

const char *pare_last_error(void) { return err_msg[0] ? err_msg : "no error"; }

const char *pare_status_name(pare_status s)
{
    switch (s) {
    case PARE_OK: return "ok";
    case PARE_EINVAL: return "invalid argument";
    case PARE_ENOMEM: return "out of memory";
    case PARE_EIO: return "input/output error";
    case PARE_EFORMAT: return "bad file format";
    case PARE_ESHAPE: return "shape mismatch";
    case PARE_EUNSUPPORTED: return "unsupported";
    case PARE_ENOTFOUND: return "not found";
    case PARE_ECANCELLED: return "cancelled";
    }
    return "unknown status";
}

#define PARE_STR2(x) #x
#define PARE_STR(x) PARE_STR2(x)
const char *pare_version(void)
{
    return PARE_STR(PARE_VERSION_MAJOR) "." PARE_STR(PARE_VERSION_MINOR) "." PARE_STR(
        PARE_VERSION_PATCH);
}
