/*
 * st_vec_expf_avx2 and st_vec_expf_avx512 (vec_f16.h) against the C
 * library's expf: the same bits for every input checked. A sweep of float bit patterns over the
 * whole range (every sign, exponent and many mantissas, -inf, NaN,
 * subnormals), every float in the softmax's common range [-16, 0] and
 * in SiLU's [0, 16] at a fine stride, and arrays of every length 0..40
 * for the tail paths.
 * ST_VEXP_EXHAUSTIVE=1 checks all 2^32 floats instead (about a minute).
 */
#include "tap.h"

#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_f16.h"

#include <math.h>
#include <stdint.h>

#define N_BUF 4096

typedef void (*vexp_fn)(float *x, int64_t n);
static vexp_fn vexp;             /* the version under test */


static float
bits_f(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}


/* values in[0..n) through both; count differing bits patterns */
static uint64_t
check_buf(const float *in, float *out, int64_t n, uint32_t *first_bad)
{
    uint64_t bad = 0;
    int64_t  i;

    memcpy(out, in, sizeof(float) * (size_t) n);
    vexp(out, n);
    for (i = 0; i < n; i++) {
        float    want = expf(in[i]);
        uint32_t a, b;

        memcpy(&a, &out[i], sizeof(a));
        memcpy(&b, &want, sizeof(b));
        /* every NaN is a NaN: the payload is not part of the numerics */
        if (a != b && !(isnan(out[i]) && isnan(want))) {
            if (bad++ == 0) {
                memcpy(first_bad, &in[i], sizeof(*first_bad));
            }
        }
    }
    return bad;
}


/* bit patterns lo, lo + step, ... up to hi (inclusive bound, 64-bit
 * counter so that the last pattern is reached) */
static uint64_t
sweep(uint64_t lo, uint64_t hi, uint64_t step, uint64_t *count,
    uint32_t *first_bad)
{
    static float in[N_BUF], out[N_BUF];
    uint64_t     u, bad = 0;
    int64_t      m = 0;

    for (u = lo; u <= hi; u += step) {
        in[m++] = bits_f((uint32_t) u);
        if (m == N_BUF) {
            bad += check_buf(in, out, m, first_bad);
            *count += (uint64_t) m;
            m = 0;
        }
    }
    bad += check_buf(in, out, m, first_bad);
    *count += (uint64_t) m;
    return bad;
}


static void
test_one(const char *name)
{
    static const float specials[] = {
        0.0f, -0.0f, -INFINITY, INFINITY, NAN, -NAN, -87.0f, -86.99999f,
        -87.00001f, -87.33654f, -87.33655f, -103.97208f, -103.97209f,
        -104.0f, -1e-30f, -1e-7f, -1.0f, -0.5f, -0.6931472f, -88.72283f,
        88.72283f, 88.72284f, 1.0f, 1e-40f, -1e-40f, -1e-45f, 88.0f,
        87.99999f, 88.00001f, 16.0f, 0.6931472f, 1e-7f,
    };
    const char *exh = getenv("ST_VEXP_EXHAUSTIVE");
    float       in[64], out[64];
    uint64_t    bad, count = 0;
    uint32_t    first = 0;
    int64_t     len;
    size_t      k;

    diag("%s", name);
    bad = check_buf(specials, out,
                    (int64_t) (sizeof(specials) / sizeof(specials[0])),
                    &first);
    ok(bad == 0, "special values (zeros, infinities, NaN, range edges): "
       "%llu differ", (unsigned long long) bad);

    for (len = 0, bad = 0; len <= 40; len++) {
        for (k = 0; k < (size_t) len; k++) {
            in[k] = -0.37f * (float) (k + 1) - 0.01f * (float) len;
        }
        in[len / 2] = len % 3 ? -200.0f : -INFINITY;   /* a redone lane */
        bad += check_buf(in, out, len, &first);
    }
    ok(bad == 0, "every length 0..40 (vector body, tails, redone lanes)");

    if (exh != NULL && strcmp(exh, "1") == 0) {
        bad = sweep(0, 0xffffffffu, 1, &count, &first);
        ok(bad == 0, "all %llu floats: %llu differ from expf (first %08x)",
           (unsigned long long) count, (unsigned long long) bad, first);
        return;
    }

    /* 2^20 patterns over the whole range, an odd stride so that every
     * mantissa bit varies */
    bad = sweep(0, 0xffffffffu, 4093, &count, &first);
    ok(bad == 0, "%llu floats across the range: %llu differ from expf "
       "(first %08x)", (unsigned long long) count, (unsigned long long) bad,
       first);

    /* [-16, -0]: the softmax's usual arguments, every 1021st float */
    count = 0;
    bad = sweep(0x80000000u, 0xc1800000u, 1021, &count, &first);
    ok(bad == 0, "%llu floats in [-16, 0]: %llu differ from expf "
       "(first %08x)", (unsigned long long) count, (unsigned long long) bad,
       first);

    /* [+0, 16]: SiLU's exp(-x) of negative activations */
    count = 0;
    bad = sweep(0x00000000u, 0x41800000u, 1021, &count, &first);
    ok(bad == 0, "%llu floats in [0, 16]: %llu differ from expf "
       "(first %08x)", (unsigned long long) count, (unsigned long long) bad,
       first);
}


int
main(void)
{
    (void) tap_root_dir;
    (void) tap_shared_dir;

    if (!st_cpu_level_supported(ST_CPU_AVX2)) {
        skip("st_vec_expf_avx2: no AVX2");
        return done_testing();
    }
    vexp = st_vec_expf_avx2;
    test_one("st_vec_expf_avx2");
    if (st_cpu_level_supported(ST_CPU_AVX512)) {
        vexp = st_vec_expf_avx512;
        test_one("st_vec_expf_avx512");
    } else {
        skip("st_vec_expf_avx512: no AVX-512");
    }
    return done_testing();
}
