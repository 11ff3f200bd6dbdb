/* Per-thread error message: functions that fail set it and return a status. */
#ifndef PARE_CORE_ERROR_H
#define PARE_CORE_ERROR_H

#include "pare.h"

#if defined(__GNUC__)
#define PARE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PARE_PRINTF(a, b)
#endif

/* Sets this thread's message and returns s, so callers can `return pare_fail(...)`. */
pare_status pare_fail(pare_status s, const char *fmt, ...) PARE_PRINTF(2, 3);
/* Prefixes the current message with "<prefix>: " (adds the context a caller knows). */
void pare_error_prefix(const char *fmt, ...) PARE_PRINTF(1, 2);
void pare_error_clear(void);

#endif
