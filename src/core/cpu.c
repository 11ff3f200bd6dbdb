/* cpuid/xgetbv detection; the result is computed once and never changes. */
#include "core/cpu.h"

#include <stdlib.h>
#include <string.h>

#include "pare.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(PARE_NO_X86_KERNELS)
#include <cpuid.h>
#define PARE_X86 1
#endif

static pare_cpu_features features;
static int features_ready;
static _Thread_local int isa_cap = -1;

#ifdef PARE_X86
static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static void detect(pare_cpu_features *f)
{
    memset(f, 0, sizeof *f);
#ifdef PARE_X86
    f->compiled = 1;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    f->fma = (c >> 12) & 1;
    if (!osxsave || !avx)
        return;
    unsigned long long xcr0 = xgetbv0();
    int ymm_os = (xcr0 & 0x6) == 0x6;
    int zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    f->avx2 = ymm_os && ((b >> 5) & 1);
    f->fma = f->fma && ymm_os;
    f->avx512f = zmm_os && ((b >> 16) & 1);
    f->avx512dq = zmm_os && ((b >> 17) & 1);
    f->avx512bw = zmm_os && ((b >> 30) & 1);
    f->avx512vl = zmm_os && ((b >> 31) & 1);
    f->avx512vnni = zmm_os && ((c >> 11) & 1);
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
        f->avxvnni = ymm_os && ((a >> 4) & 1);
    if (f->avx2 && f->fma)
        f->best = PARE_ISA_AVX2;
    if (f->best == PARE_ISA_AVX2 && f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl)
        f->best = PARE_ISA_AVX512;
#endif
    f->level = f->best;
    const char *env = getenv("PARE_ISA");
    if (env && *env) {
        pare_isa_level cap = f->best;
        if (!strcmp(env, "ref"))
            cap = PARE_ISA_REF;
        else if (!strcmp(env, "avx2"))
            cap = PARE_ISA_AVX2;
        else if (!strcmp(env, "avx512"))
            cap = PARE_ISA_AVX512;
        if (cap < f->level)
            f->level = cap;
    }
}

const pare_cpu_features *pare_cpu(void)
{
    /* Benign race: every thread computes the same value. The library
     * calls pare_cpu() once before it starts threads. */
    if (!features_ready) {
        pare_cpu_features f;
        detect(&f);
        features = f;
        features_ready = 1;
    }
    return &features;
}

pare_isa_level pare_isa_active(void)
{
    pare_isa_level l = pare_cpu()->level;
    if (isa_cap >= 0 && (pare_isa_level)isa_cap < l)
        l = (pare_isa_level)isa_cap;
    return l;
}

void pare_isa_override(int level) { isa_cap = level; }

const char *pare_isa_name(pare_isa_level l)
{
    switch (l) {
    case PARE_ISA_AVX512: return "avx512";
    case PARE_ISA_AVX2: return "avx2";
    default: return "ref";
    }
}

const char *pare_isa(void) { return pare_isa_name(pare_isa_active()); }
