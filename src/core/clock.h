/* The monotonic clock every timing in pare reads (training reports, tuning,
 * benchmarks). */
#ifndef PARE_CORE_CLOCK_H
#define PARE_CORE_CLOCK_H

#include <time.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
static inline double pare_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
