/* CPU features, read once (cpuid + xgetbv), capped by PARE_ISA=ref|avx2|avx512. */
#ifndef PARE_CORE_CPU_H
#define PARE_CORE_CPU_H

typedef enum pare_isa_level {
    PARE_ISA_REF = 0,
    PARE_ISA_AVX2 = 1,    /* AVX2 + FMA */
    PARE_ISA_AVX512 = 2,  /* AVX-512 F, BW, DQ, VL */
    PARE_ISA_COUNT = 3
} pare_isa_level;

typedef struct pare_cpu_features {
    int avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512vnni, avxvnni;
    pare_isa_level best;    /* the highest level this CPU and OS support */
    pare_isa_level level;   /* best capped by PARE_ISA */
    int compiled;           /* 1 when the x86 kernels are in this build */
} pare_cpu_features;

const pare_cpu_features *pare_cpu(void);
/* The level kernels are chosen for; tests lower it with pare_isa_override(). */
pare_isa_level pare_isa_active(void);
/* Test hook: cap the level for this thread (-1 removes the cap). */
void pare_isa_override(int level);
const char *pare_isa_name(pare_isa_level l);

#endif
