/* Shared definitions of the kernel families. */
#ifndef PARE_KERNELS_KERNELS_H
#define PARE_KERNELS_KERNELS_H

#if (defined(__x86_64__) || defined(__i386__)) && !defined(PARE_NO_X86_KERNELS)
#define PARE_X86_KERNELS 1
#else
#define PARE_X86_KERNELS 0
#endif

#define PARE_ISA_ID_ref 0
#define PARE_ISA_ID_avx2 1
#define PARE_ISA_ID_avx512 2

#define PARE_PASTE_(a, b) a##b
#define PARE_PASTE(a, b) PARE_PASTE_(a, b)

#endif
