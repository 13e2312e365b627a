/*
 * expf over an array with AVX2 + FMA, bit-identical to the C library's
 * expf (vec_f16.h, st_vec_expf_avx2).
 *
 * Each lane computes e^x in double precision to about 1e-13 relative
 * (x = n ln2 + r, |r| <= ln2 / 2, a degree-10 Taylor polynomial in r,
 * times 2^n), then rounds once to float. That is the correctly rounded
 * float unless e^x lies within the approximation error of a midpoint
 * between two floats. The C library's expf is correctly rounded too
 * except within its own error margin of a midpoint (glibc: 0.502 ulp).
 * So a lane whose double result lies within 1/256 float ulp of a
 * midpoint (about 0.8% of lanes) is recomputed with expf, as is every
 * lane in (-104, -87) (subnormal results) or above 88 (near overflow) or
 * NaN. Elsewhere both give the correctly rounded value: the same bits;
 * x <= -104 (-inf included) gives +0. (Positive arguments: SiLU's
 * exp(-x) of negative activations.)
 * t/unit/test_vexp.c checks it against expf on a sweep of float inputs;
 * ST_VEXP_EXHAUSTIVE=1 makes it check every float.
 */
#include "backend/cpu/vec_f16.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


/* 4 lanes: e^x in double, and a mask of the lanes near a midpoint */
static inline __m256d
st_vexp4_pd(__m128 x4, __m256i *near)
{
    const __m256d log2e = _mm256_set1_pd(1.4426950408889634);
    const __m256d ln2 = _mm256_set1_pd(0.6931471805599453);
    const __m256d ln2_lo = _mm256_set1_pd(2.3190468138462996e-17);
    /* 1.5 * 2^52: adding it leaves round(x log2e) in the low bits */
    const __m256d shift = _mm256_set1_pd(6755399441055744.0);
    /* the float's 29 dropped mantissa bits: a midpoint is 1 << 28; a
     * lane is near when they lie in [2^28 - 2^21, 2^28 + 2^21) */
    const __m256i low_mask = _mm256_set1_epi64x(0x1fffffff);
    const __m256i band_lo = _mm256_set1_epi64x((1 << 28) - (1 << 21));
    const __m256i band_w = _mm256_set1_epi64x(1 << 22);
    __m256d       x = _mm256_cvtps_pd(x4), t, n, r, p, y;
    __m256i       e, low;

    t = _mm256_fmadd_pd(x, log2e, shift);
    n = _mm256_sub_pd(t, shift);
    r = _mm256_fnmadd_pd(n, ln2, x);
    r = _mm256_fnmadd_pd(n, ln2_lo, r);
    /* sum of r^k / k!, k = 0..10, Horner */
    p = _mm256_set1_pd(1.0 / 3628800.0);
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* 2^n for n in [-126, 127]: the exponent field n + 1023, from t's low
     * bits (shift's low 52 bits are those of 2^51) */
    e = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)),
        52);
    y = _mm256_mul_pd(p, _mm256_castsi256_pd(e));
    /* (bits - band_lo) mod 2^29 < 2^22 */
    low = _mm256_and_si256(
        _mm256_sub_epi64(_mm256_castpd_si256(y), band_lo), low_mask);
    *near = _mm256_cmpgt_epi64(band_w, low);
    return y;
}


/* 8 lanes at x, in place; returns the lanes to redo with expf */
static inline unsigned
st_vexp8(float *x)
{
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
    const __m256 tiny = _mm256_set1_ps(-104.0f);
    __m256       v = _mm256_loadu_ps(x), in, z, e;
    __m256i      near0, near1;
    __m256d      y0, y1;

    in = _mm256_and_ps(_mm256_cmp_ps(v, lo, _CMP_GE_OQ),
                       _mm256_cmp_ps(v, hi, _CMP_LE_OQ));
    /* e^x < 2^-150 rounds to +0 (-inf included) */
    z = _mm256_cmp_ps(v, tiny, _CMP_LE_OQ);
    v = _mm256_and_ps(v, in);                /* other lanes: e^0 */
    y0 = st_vexp4_pd(_mm256_castps256_ps128(v), &near0);
    y1 = st_vexp4_pd(_mm256_extractf128_ps(v, 1), &near1);
    e = _mm256_set_m128(_mm256_cvtpd_ps(y1), _mm256_cvtpd_ps(y0));
    _mm256_storeu_ps(x, _mm256_andnot_ps(z, e));
    return (~(unsigned) _mm256_movemask_ps(_mm256_or_ps(in, z))
            | (unsigned) _mm256_movemask_pd(_mm256_castsi256_pd(near0))
            | (unsigned) _mm256_movemask_pd(_mm256_castsi256_pd(near1)) << 4)
           & 0xffu;
}


/* Blocks of 64: the vector pass first, with no branch on the lanes, then
 * expf for the lanes it left (from a copy of the block's inputs). */
void
st_vec_expf_avx2(float *x, int64_t n)
{
    float    in[64];
    uint64_t redo;
    int64_t  b, i, m;

    for (b = 0; b + 8 <= n; b += m) {
        m = n - b >= 64 ? 64 : (n - b) / 8 * 8;
        memcpy(in, x + b, sizeof(float) * (size_t) m);
        redo = 0;
        for (i = 0; i < m; i += 8) {
            redo |= (uint64_t) st_vexp8(x + b + i) << i;
        }
        while (redo) {
            int j = __builtin_ctzll(redo);

            x[b + j] = expf(in[j]);
            redo &= redo - 1;
        }
    }
    for (; b < n; b++) {
        x[b] = expf(x[b]);
    }
}
