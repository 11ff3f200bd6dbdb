/* Deterministic random numbers: xoshiro256** seeded through splitmix64 from a
 * (seed, stream...) key, so every consumer (init of one tensor, the shuffle of
 * one epoch, the augmentation of one sample) has its own reproducible stream,
 * independent of threads and of what ran before. */
#ifndef PARE_CORE_RNG_H
#define PARE_CORE_RNG_H

#include <stdint.h>

typedef struct pare_rng {
    uint64_t s[4];
} pare_rng;

/* A stream keyed by seed and up to three stream ids. */
void pare_rng_seed(pare_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint64_t pare_rng_u64(pare_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float pare_rng_uniform(pare_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double pare_rng_uniform_d(pare_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t pare_rng_below(pare_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
double pare_rng_normal(pare_rng *r);
/* A hash of a key, for deriving seeds. */
uint64_t pare_hash64(uint64_t x);

#endif
