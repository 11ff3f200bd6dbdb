/* Kernel families: every ISA entry of the X-macro lists against its ref twin,
 * bit for bit (the vec family is exact by construction), on sizes from 0 past
 * every vector width, with buffers flush against a guard page. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "kernels/vec.h"
#include "test.h"

static const size_t sizes[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 1000, 4099};

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    pare_test_fill(x, n, lo, hi, seed);
    /* Put exact edge values in: zero, six, negative zero. */
    if (n > 3) {
        x[0] = 0.0f;
        x[1] = 6.0f;
        x[2] = -0.0f;
    }
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

PARE_TEST(kernels_vec_vs_ref)
{
    const pare_vec_kernels *ref = pare_vec_at(PARE_ISA_REF);
    CHECK(ref != NULL);
    for (int level = 1; level < PARE_ISA_COUNT; level++) {
        const pare_vec_kernels *k = pare_vec_at(level);
        if (!k) {
            printf("  (no %s on this machine or build)\n", pare_isa_name((pare_isa_level)level));
            continue;
        }
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            float *x = pare_guard_alloc(n), *y = pare_guard_alloc(n), *d = pare_guard_alloc(n);
            float *a = pare_guard_alloc(n), *b = pare_guard_alloc(n);
            float *w1 = pare_guard_alloc(n), *w2 = pare_guard_alloc(n);
            float *m1 = pare_guard_alloc(n), *m2 = pare_guard_alloc(n);
            float *v1 = pare_guard_alloc(n), *v2 = pare_guard_alloc(n);
            uint8_t *mask = malloc(n + 1);
            fill(x, n, 1 + n, -8, 8);
            fill(y, n, 2 + n, -8, 8);
            fill(d, n, 3 + n, -1, 1);
            for (size_t i = 0; i < n; i++)
                mask[i] = (uint8_t)((i * 7) % 3 != 0);
#define ONE_OUT(call_ref, call_k, what)                                                            \
    do {                                                                                           \
        call_ref;                                                                                  \
        call_k;                                                                                    \
        CHECKF(same(a, b, n), "%s %s n=%zu differs from ref", pare_isa_name((pare_isa_level)level),\
               what, n);                                                                           \
    } while (0)
            ONE_OUT(ref->f32_vrelu(n, x, a), k->f32_vrelu(n, x, b), "vrelu");
            ONE_OUT(ref->f32_vrelu6(n, x, a), k->f32_vrelu6(n, x, b), "vrelu6");
            for (int acc = 0; acc < 2; acc++) {
                for (size_t i = 0; i < n; i++)
                    a[i] = b[i] = 0.25f;
                ONE_OUT(ref->f32_vrelu_bwd(n, x, d, a, acc), k->f32_vrelu_bwd(n, x, d, b, acc), "vrelu_bwd");
                ONE_OUT(ref->f32_vrelu6_bwd(n, x, d, a, acc), k->f32_vrelu6_bwd(n, x, d, b, acc), "vrelu6_bwd");
                ONE_OUT(ref->f32_vbn_bwd(n, x, d, 0.3f, 1.7f, 0.01f, -0.2f, a, acc),
                        k->f32_vbn_bwd(n, x, d, 0.3f, 1.7f, 0.01f, -0.2f, b, acc), "vbn_bwd");
            }
            {
                /* n / 2 outputs of rows x and y; ties put in on purpose */
                size_t h = n / 2;
                int32_t *ka = malloc(sizeof(int32_t) * (h + 1)), *kb = malloc(sizeof(int32_t) * (h + 1));
                float *r1 = pare_guard_alloc(n);
                memcpy(r1, y, n * sizeof(float));
                for (size_t i = 0; i + 1 < n; i += 5)
                    r1[i] = x[i + 1];
                float x10 = n > 12 ? x[10] : 0.0f;
                if (n > 12) {
                    r1[4] = NAN; /* loses to r0's pair */
                    r1[10] = x[10] = NAN; /* first in its window: wins */
                }
                ref->f32_vmax2x2(h, x, r1, 7, 40, a, ka);
                k->f32_vmax2x2(h, x, r1, 7, 40, b, kb);
                if (n > 12)
                    x[10] = x10;
                pare_guard_free(r1, n);
                CHECKF(same(a, b, h) && !memcmp(ka, kb, h * sizeof(int32_t)), "%s vmax2x2 n=%zu",
                       pare_isa_name((pare_isa_level)level), h);
                free(ka);
                free(kb);
            }
            ONE_OUT(ref->f32_vadd(n, x, y, a), k->f32_vadd(n, x, y, b), "vadd");
            memcpy(a, y, n * sizeof(float));
            memcpy(b, y, n * sizeof(float));
            ONE_OUT(ref->f32_vacc(n, x, a), k->f32_vacc(n, x, b), "vacc");
            ONE_OUT(ref->f32_vaffine(n, x, 1.3f, -0.7f, a), k->f32_vaffine(n, x, 1.3f, -0.7f, b), "vaffine");
            double s1 = ref->f32_vsum(n, x), s2 = k->f32_vsum(n, x);
            CHECKF(s1 == s2, "vsum n=%zu: %.17g vs %.17g", n, s1, s2);
            s1 = ref->f32_vsumsq_dev(n, x, 0.3);
            s2 = k->f32_vsumsq_dev(n, x, 0.3);
            CHECKF(s1 == s2, "vsumsq_dev n=%zu", n);
            double a1 = 0, a2 = 0, b1 = 0, b2 = 0;
            ref->f32_vsum2(n, x, 0.7, &a1, &a2);
            k->f32_vsum2(n, x, 0.7, &b1, &b2);
            CHECKF(a1 == b1 && a2 == b2, "vsum2 n=%zu", n);
            if (n > 0) {
                double m = 0, v = 0;
                for (size_t i = 0; i < n; i++)
                    m += x[i];
                m /= (double)n;
                for (size_t i = 0; i < n; i++)
                    v += (x[i] - m) * (x[i] - m);
                double mk = a1 / (double)n, var = (a2 - a1 * mk) / (double)n;
                CHECK_NEAR(mk + 0.7, m, 1e-12);
                CHECK_NEAR(var, v / (double)n, 1e-9 * (1 + v / (double)n));
            }
            s1 = ref->f32_vdot(n, x, -0.1, y);
            s2 = k->f32_vdot(n, x, -0.1, y);
            CHECKF(s1 == s2, "vdot n=%zu", n);
            for (int variant = 0; variant < 4; variant++) {
                const uint8_t *mk = (variant & 1) ? mask : NULL;
                int nest = variant >> 1;
                memcpy(w1, x, n * sizeof(float));
                memcpy(w2, x, n * sizeof(float));
                memcpy(m1, y, n * sizeof(float));
                memcpy(m2, y, n * sizeof(float));
                for (int step = 0; step < 3; step++) {
                    ref->f32_sgd(n, w1, d, m1, mk, 0.05f, 0.9f, 5e-4f, nest, step == 0);
                    k->f32_sgd(n, w2, d, m2, mk, 0.05f, 0.9f, 5e-4f, nest, step == 0);
                }
                CHECKF(same(w1, w2, n) && same(m1, m2, n), "sgd variant %d n=%zu", variant, n);
                memcpy(w1, x, n * sizeof(float));
                memcpy(w2, x, n * sizeof(float));
                memset(m1, 0, n * sizeof(float));
                memset(m2, 0, n * sizeof(float));
                memset(v1, 0, n * sizeof(float));
                memset(v2, 0, n * sizeof(float));
                for (int step = 1; step <= 3; step++) {
                    float c1 = 1.0f - powf(0.9f, (float)step), c2 = 1.0f - powf(0.999f, (float)step);
                    ref->f32_adamw(n, w1, d, m1, v1, mk, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, c1, c2);
                    k->f32_adamw(n, w2, d, m2, v2, mk, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, c1, c2);
                }
                CHECKF(same(w1, w2, n) && same(m1, m2, n) && same(v1, v2, n), "adamw variant %d n=%zu",
                       variant, n);
            }
            pare_guard_free(x, n);
            pare_guard_free(y, n);
            pare_guard_free(d, n);
            pare_guard_free(a, n);
            pare_guard_free(b, n);
            pare_guard_free(w1, n);
            pare_guard_free(w2, n);
            pare_guard_free(m1, n);
            pare_guard_free(m2, n);
            pare_guard_free(v1, n);
            pare_guard_free(v2, n);
            free(mask);
        }
    }
}

PARE_TEST(kernels_vec_semantics)
{
    /* The reference itself against hand-computed values. */
    const pare_vec_kernels *k = pare_vec_at(PARE_ISA_REF);
    float x[5] = {-1.5f, 0.0f, 2.0f, 7.0f, 6.0f}, y[5];
    k->f32_vrelu(5, x, y);
    CHECK(y[0] == 0.0f && y[1] == 0.0f && y[2] == 2.0f && y[3] == 7.0f);
    k->f32_vrelu6(5, x, y);
    CHECK(y[0] == 0.0f && y[2] == 2.0f && y[3] == 6.0f && y[4] == 6.0f);
    float dy[5] = {1, 1, 1, 1, 1}, dx[5];
    k->f32_vrelu6_bwd(5, y, dy, dx, 0);
    CHECK(dx[0] == 0 && dx[1] == 0 && dx[2] == 1 && dx[3] == 0 && dx[4] == 0);
    /* 2x2 max pool rows: the largest, the first of ties, a NaN only when first */
    float r0[6] = {1, 3, 2, 2, NAN, 0}, r1[6] = {3, 0, 5, 2, 9, NAN}, mx[3];
    int32_t ki[3];
    k->f32_vmax2x2(3, r0, r1, 100, 10, mx, ki);
    CHECK(mx[0] == 3.0f && ki[0] == 101);
    CHECK(mx[1] == 5.0f && ki[1] == 112);
    CHECK(isnan(mx[2]) && ki[2] == 104);
    r0[4] = 0;
    r0[5] = 9;
    k->f32_vmax2x2(3, r0, r1, 100, 10, mx, ki);
    CHECK(mx[2] == 9.0f && ki[2] == 105);
    /* SGD, PyTorch's form, two steps by hand: w=1, g=0.5, lr=0.1, m=0.9, wd=0.01 */
    float w = 1.0f, g = 0.5f, buf = 0.0f;
    k->f32_sgd(1, &w, &g, &buf, NULL, 0.1f, 0.9f, 0.01f, 0, 1);
    CHECK_NEAR(buf, 0.51, 1e-7);
    CHECK_NEAR(w, 1.0 - 0.1 * 0.51, 1e-7);
    float w_prev = w;
    k->f32_sgd(1, &w, &g, &buf, NULL, 0.1f, 0.9f, 0.01f, 0, 0);
    double gi = 0.5 + 0.01 * w_prev, b2 = 0.9 * 0.51 + gi;
    CHECK_NEAR(buf, b2, 1e-6);
    CHECK_NEAR(w, w_prev - 0.1 * b2, 1e-6);
    /* Nesterov step: w -= lr * (g + m*buf). */
    w = 1.0f;
    buf = 0.0f;
    k->f32_sgd(1, &w, &g, &buf, NULL, 0.1f, 0.9f, 0.0f, 1, 1);
    CHECK_NEAR(w, 1.0 - 0.1 * (0.5 + 0.9 * 0.5), 1e-7);
    /* AdamW one step from zero state: m=(1-b1)g, v=(1-b2)g^2, bias-corrected
     * m/c1 = g, v/c2 = g^2, so w = w(1 - lr wd) - lr * g/(|g| + eps). */
    float m = 0, v = 0;
    w = 2.0f;
    g = -0.25f;
    k->f32_adamw(1, &w, &g, &m, &v, NULL, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.1f, 0.001f);
    CHECK_NEAR(w, 2.0 * (1 - 0.01 * 0.1) + 0.01 * (0.25 / (0.25 + 1e-8)), 1e-6);
    /* A masked weight is zero after a step, and so is its state, whatever they were. */
    uint8_t mask0 = 0;
    w = 0.5f;
    buf = 0.7f;
    g = 3.0f;
    k->f32_sgd(1, &w, &g, &buf, &mask0, 0.1f, 0.9f, 0.01f, 0, 0);
    CHECK(w == 0.0f && buf == 0.0f);
    w = 0.5f;
    m = 0.2f;
    v = 0.3f;
    k->f32_adamw(1, &w, &g, &m, &v, &mask0, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.1f, 0.001f);
    CHECK(w == 0.0f && m == 0.0f && v == 0.0f);
}
