/* Thread count resolution and static work splitting. */
#include "core/threads.h"

#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

int pare_threads_resolve(int requested)
{
    if (requested > 0)
        return requested > 256 ? 256 : requested;
    const char *env = getenv("PARE_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0 && v > 0 && v <= 256)
            return (int)v;
    }
#ifdef _OPENMP
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

void pare_split_range(long n, int parts, int i, long *lo, long *hi)
{
    long base = n / parts, rem = n % parts;
    *lo = i * base + (i < rem ? i : rem);
    *hi = *lo + base + (i < rem ? 1 : 0);
}
