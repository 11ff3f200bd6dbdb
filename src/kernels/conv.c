/* Dispatch of the conv family: one table per ISA level, built from conv.inc. */
#include "kernels/conv.h"

#include <pthread.h>

#include "core/cpu.h"

static pare_conv_kernels tables[PARE_ISA_COUNT];
static int have[PARE_ISA_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    int best = (int)pare_cpu()->best;
#define PARE_KERNEL(isa, kind, mr, nr)                                                            \
    if (PARE_ISA_ID_##isa <= best) {                                                              \
        for (int l = PARE_ISA_ID_##isa; l < PARE_ISA_COUNT; l++)                                  \
            tables[l].kind = pare_##kind##_##mr##x##nr##__##isa;                                  \
        have[PARE_ISA_ID_##isa] = 1;                                                              \
    }
#include "kernels/conv.inc"
#undef PARE_KERNEL
    static const char *const names[PARE_ISA_COUNT][5] = {
        {"f32_convg_1x1__ref", "f32_convnm_1x1__ref", "f32_convpat_1x1__ref", "f32_convdw_1x1__ref",
         "f32_convln_1x1__ref"},
        {"f32_convg_4x1__avx2", "f32_convnm_1x2__avx2", "f32_convpat_1x2__avx2", "f32_convdw_1x4__avx2",
         "f32_convln_2x6__avx2"},
        {"f32_convg_4x6__avx512", "f32_convnm_1x4__avx512", "f32_convpat_1x4__avx512", "f32_convdw_1x4__avx512",
         "f32_convln_4x6__avx512"},
    };
    for (int l = 0; l < PARE_ISA_COUNT; l++) {
        int k = l;
        while (k > 0 && !have[k])
            k--;
        tables[l].name_g = names[k][0];
        tables[l].name_nm = names[k][1];
        tables[l].name_pat = names[k][2];
        tables[l].name_dw = names[k][3];
        tables[l].name_ln = names[k][4];
        tables[l].tile = k == 2 ? 6 * PARE_CONV_CHUNK : k == 1 ? PARE_CONV_CHUNK : PARE_CONV_CHUNK;
    }
}

const pare_conv_kernels *pare_conv_at(int level)
{
    pthread_once(&once, build);
    if (level < 0 || level >= PARE_ISA_COUNT || !have[level])
        return NULL;
    return &tables[level];
}

const pare_conv_kernels *pare_conv(void)
{
    pthread_once(&once, build);
    return &tables[pare_isa_active()];
}
