/* Thread counts: an explicit count, else PARE_THREADS, else every core. */
#ifndef PARE_CORE_THREADS_H
#define PARE_CORE_THREADS_H

/* Resolves a requested count (0 = default) to the number of threads to use. */
int pare_threads_resolve(int requested);
/* Splits [0, n) into parts pieces; piece i is [*lo, *hi). */
void pare_split_range(long n, int parts, int i, long *lo, long *hi);

#endif
