/*
 * Helpers shared by the CUDA tests: device buffers from host arrays, a
 * seeded random generator, and comparisons. The same test sources run
 * through the shim (test-cuda-shim) and on a GPU (test-gpu, built with
 * -DST_CUDA_TEST_GPU=1).
 */
#ifndef ST_CUDA_TEST_H
#define ST_CUDA_TEST_H

#include "tap.h"
#include "backend/cuda/st_cuda_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ST_CUDA_TEST_GPU
#define ST_CUDA_TEST_GPU 0
#endif

static uint64_t ct_rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t __attribute__((unused))
ct_rand_u32(void)
{
    /* xorshift64* */
    ct_rng_state ^= ct_rng_state >> 12;
    ct_rng_state ^= ct_rng_state << 25;
    ct_rng_state ^= ct_rng_state >> 27;
    return (uint32_t) ((ct_rng_state * 0x2545f4914f6cdd1dull) >> 32);
}


/* uniform in [-a, a) */
static float __attribute__((unused))
ct_randf(float a)
{
    return ((float) (ct_rand_u32() >> 8) / 8388608.0f * 2.0f - 1.0f) * a;
}


static void __attribute__((unused))
ct_fill(float *x, size_t n, float a)
{
    size_t i;

    for (i = 0; i < n; i++) {
        x[i] = ct_randf(a);
    }
}


/* Device copy of a host buffer (exits the test on failure: test code). */
static __attribute__((unused)) void *
ct_dev(const void *host, size_t bytes)
{
    void *d = st_cuda_malloc(bytes);

    if (d == NULL) {
        printf("Bail out! device allocation of %zu bytes failed\n", bytes);
        exit(1);
    }
    if (host != NULL && st_cuda_upload(d, host, bytes) != 0) {
        printf("Bail out! upload failed\n");
        exit(1);
    }
    return d;
}


static void __attribute__((unused))
ct_get(void *host, const void *dev, size_t bytes)
{
    if (st_cuda_download(host, dev, bytes) != 0) {
        printf("Bail out! download failed\n");
        exit(1);
    }
}


/* Largest |a - b| relative to max(1, |b|) over n values. */
static double __attribute__((unused))
ct_max_rel(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    size_t i;

    for (i = 0; i < n; i++) {
        double d = fabs((double) a[i] - (double) b[i]);
        double s = fabs((double) b[i]) > 1.0 ? fabs((double) b[i]) : 1.0;
        if (isnan(a[i]) != isnan(b[i])) {
            return INFINITY;
        }
        if (d / s > m) {
            m = d / s;
        }
    }
    return m;
}


static double __attribute__((unused))
ct_max_abs(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    size_t i;

    for (i = 0; i < n; i++) {
        double d = fabs((double) a[i] - (double) b[i]);
        if (isnan(a[i]) != isnan(b[i])) {
            return INFINITY;
        }
        if (d > m) {
            m = d;
        }
    }
    return m;
}

#endif /* ST_CUDA_TEST_H */
