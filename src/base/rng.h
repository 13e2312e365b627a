/*
 * Per-request pseudo-random numbers: xoshiro256** (Blackman & Vigna),
 * seeded from one 64-bit seed through splitmix64 so that every seed,
 * including 0, gives a well-mixed non-zero state. Small, fast, and fully
 * determined by the seed: same seed => same sequence on every platform.
 * Not for cryptography.
 */
#ifndef ST_RNG_H
#define ST_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} st_rng;

void     st_rng_seed(st_rng *r, uint64_t seed);
uint64_t st_rng_next(st_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double   st_rng_uniform(st_rng *r);

#endif /* ST_RNG_H */
