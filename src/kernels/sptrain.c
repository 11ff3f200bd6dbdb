/* Dispatch of the sparse-training family: one table per ISA level, from sptrain.inc. */
#include "kernels/sptrain.h"

#include <pthread.h>

#include "core/cpu.h"

static pare_sptrain_kernels tables[PARE_ISA_COUNT];
static int have[PARE_ISA_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    int best = (int)pare_cpu()->best;
    /* Entries come in ascending ISA order: the last one that fits a level wins. */
#define PARE_KERNEL(isa, kind, mr, nr)                                                            \
    if (PARE_ISA_ID_##isa <= best) {                                                              \
        for (int l = PARE_ISA_ID_##isa; l < PARE_ISA_COUNT; l++)                                  \
            tables[l].kind = pare_##kind##_##mr##x##nr##__##isa;                                  \
        have[PARE_ISA_ID_##isa] = 1;                                                              \
    }
#include "kernels/sptrain.inc"
#undef PARE_KERNEL
}

const pare_sptrain_kernels *pare_sptrain_at(int level)
{
    pthread_once(&once, build);
    if (level < 0 || level >= PARE_ISA_COUNT || !have[level])
        return NULL;
    return &tables[level];
}

const pare_sptrain_kernels *pare_sptrain(void)
{
    pthread_once(&once, build);
    return &tables[pare_isa_active()];
}
