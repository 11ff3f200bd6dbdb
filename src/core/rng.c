/* xoshiro256** keyed by splitmix64; Box-Muller normals. */
#include "core/rng.h"

#include <math.h>

uint64_t pare_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void pare_rng_seed(pare_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t k = pare_hash64(seed);
    k = pare_hash64(k ^ pare_hash64(a + 0x632be59bd9b4e019ULL));
    k = pare_hash64(k ^ pare_hash64(b + 0x8cb92ba72f3d8dd7ULL));
    k = pare_hash64(k ^ pare_hash64(c + 0xd1b54a32d192ed03ULL));
    for (int i = 0; i < 4; i++) {
        k += 0x9e3779b97f4a7c15ULL;
        r->s[i] = pare_hash64(k);
    }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pare_rng_u64(pare_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float pare_rng_uniform(pare_rng *r) { return (float)(pare_rng_u64(r) >> 40) * 0x1.0p-24f; }

double pare_rng_uniform_d(pare_rng *r) { return (double)(pare_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t pare_rng_below(pare_rng *r, uint64_t n)
{
    /* Lemire's method would need 128-bit products; rejection keeps it portable. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = pare_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double pare_rng_normal(pare_rng *r)
{
    double u1 = pare_rng_uniform_d(r), u2 = pare_rng_uniform_d(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
