/* Dispatch of the int8 conv family: one table per ISA level, built from
 * qconv.inc; an entry needing a CPU feature (AVX-VNNI, AVX-512 VNNI) counts
 * only where the CPU has it, so PARE_ISA caps the level and VNNI code never
 * runs on a CPU without it. */
#include "kernels/qconv.h"

#include <pthread.h>

#include "core/cpu.h"

static pare_qconv_kernels tables[PARE_ISA_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define FEATURE_none(f) 1
#define FEATURE_avxvnni(f) ((f)->avxvnni)
#define FEATURE_avx512vnni(f) ((f)->avx512vnni)

static pare_qconv_entry entries[] = {
#define PARE_QKERNEL(isa, level, feature, kind, mr, nr)                                           \
    {#kind "_" #mr "x" #nr "__" #isa, PARE_QK_##kind, level, 0, (void (*)(void))pare_##kind##_##mr##x##nr##__##isa},
#include "kernels/qconv.inc"
#undef PARE_QKERNEL
};

#define N_ENTRIES ((int)(sizeof entries / sizeof entries[0]))

static void build(void)
{
    const pare_cpu_features *f = pare_cpu();
    int best = (int)f->best, i = 0;
#define PARE_QKERNEL(isa, level, feature, kind, mr, nr)                                           \
    entries[i].present = (level) <= best && FEATURE_##feature(f);                                 \
    if (entries[i].present)                                                                       \
        for (int l = (level); l < PARE_ISA_COUNT; l++) {                                          \
            tables[l].kind = pare_##kind##_##mr##x##nr##__##isa;                                  \
            if (PARE_QK_##kind == PARE_QK_s8_qconvg) {                                            \
                tables[l].name_conv = entries[i].name;                                            \
                tables[l].tile = (nr) * PARE_QCONV_CHUNK; /* mr filters x nr chunks */          \
            }                                                                                     \
            if (PARE_QK_##kind == PARE_QK_s8_qgemv)                                               \
                tables[l].name_gemv = entries[i].name;                                            \
        }                                                                                         \
    i++;
#include "kernels/qconv.inc"
#undef PARE_QKERNEL
}

const pare_qconv_kernels *pare_qconv_at(int level)
{
    pthread_once(&once, build);
    if (level < 0 || level >= PARE_ISA_COUNT || level > (int)pare_cpu()->best)
        return NULL;
    return &tables[level];
}

const pare_qconv_kernels *pare_qconv(void)
{
    pthread_once(&once, build);
    return &tables[pare_isa_active()];
}

int pare_qconv_entries(const pare_qconv_entry **out)
{
    pthread_once(&once, build);
    *out = entries;
    return N_ENTRIES;
}
