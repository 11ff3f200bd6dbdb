/* The test harness: PARE_TEST(name) defines a test (collected into the runner
 * by the Makefile); PARE_TEST_ISA(name) runs once per ISA level the machine
 * has. Checks record a failure and go on. */
#ifndef PARE_TEST_H
#define PARE_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pare.h"

#define PARE_TEST(name)                                                                            \
    void test_##name(void);                                                                        \
    void test_##name(void)
#define PARE_TEST_ISA(name) PARE_TEST(name)

extern int pare_test_fails;
void pare_test_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            pare_test_fail(__FILE__, __LINE__, "%s", #c);                                          \
    } while (0)
#define CHECKF(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            pare_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                       \
    } while (0)
#define CHECK_OK(e)                                                                                \
    do {                                                                                           \
        pare_status s_ = (e);                                                                      \
        if (s_ != PARE_OK)                                                                         \
            pare_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #e, pare_status_name(s_),           \
                           pare_last_error());                                                     \
    } while (0)
#define CHECK_STATUS(e, want)                                                                      \
    do {                                                                                           \
        pare_status s_ = (e);                                                                      \
        if (s_ != (want))                                                                          \
            pare_test_fail(__FILE__, __LINE__, "%s -> %s, wanted %s (%s)", #e,                     \
                           pare_status_name(s_), pare_status_name(want), pare_last_error());       \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            pare_test_fail(__FILE__, __LINE__, "%s = %.9g, %s = %.9g, differ by more than %g", #a, \
                           a_, #b, b_, (double)(tol));                                             \
    } while (0)

/* Temporary folder for this test (created on first use, removed by the runner). */
const char *pare_test_dir(void);
/* A path inside it. */
const char *pare_test_path(const char *name);
/* Seeded uniform floats in [lo, hi). */
void pare_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed);
/* Max |a - b| / max(1, |b|) over n. */
double pare_test_max_rel(const float *a, const double *b, size_t n);

/* A training callback (user: a pare_test_stopper) that raises flag, the
 * trainer's cancel word, when global step `at` is done: a test stops a run
 * there and resumes it from the checkpoint. */
typedef struct pare_test_stopper {
    volatile int flag;
    long at;
} pare_test_stopper;
void pare_test_stop_at(const pare_train_event *ev, void *user);
/* Sets c's cancel word, callback and user so that the run stops after global
 * step `at` (s cleared). */
void pare_test_stop_config(pare_train_config *c, pare_test_stopper *s, long at);

/* A buffer of n floats whose end touches a PROT_NONE page: reading or writing
 * past it crashes at once. */
float *pare_guard_alloc(size_t n);
void pare_guard_free(float *p, size_t n);

/* The ISA level the current run of a PARE_TEST_ISA test uses. */
int pare_test_isa(void);

#endif
