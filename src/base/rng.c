/*
 * xoshiro256** seeded with splitmix64; see rng.h.
 */
#include "base/rng.h"


static uint64_t
st_rng_splitmix64(uint64_t *x)
{
    uint64_t z;

    *x += 0x9e3779b97f4a7c15ULL;
    z = *x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static uint64_t
st_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}


void
st_rng_seed(st_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    int      i;

    /* splitmix64 output never repeats within 4 calls, so the state can
     * not be all zero (the one state xoshiro must avoid). */
    for (i = 0; i < 4; i++) {
        r->s[i] = st_rng_splitmix64(&x);
    }
}


uint64_t
st_rng_next(st_rng *r)
{
    uint64_t *s = r->s;
    uint64_t  result = st_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = st_rng_rotl(s[3], 45);
    return result;
}


double
st_rng_uniform(st_rng *r)
{
    /* top 53 bits -> exactly representable multiples of 2^-53 */
    return (double) (st_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
