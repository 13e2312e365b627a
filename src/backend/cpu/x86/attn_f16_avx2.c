/*
 * Fused F16 attention (vec_f16.h), AVX2 + FMA + F16C: 8-float vectors;
 * the kernel body is attn_f16_impl.h.
 */
#include "backend/cpu/vec_f16.h"

#include <immintrin.h>

#define ST_ATTN_HD_MAX 128       /* 16 ymm accumulators */

#define ST_VEXPF       st_vec_expf_avx2
#define ST_VL          8
#define ST_VF          __m256
#define ST_VLOAD(p)    _mm256_loadu_ps(p)
#define ST_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define ST_VSET1(x)    _mm256_set1_ps(x)
#define ST_VMUL(a, b)  _mm256_mul_ps((a), (b))
#define ST_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define ST_VRT(v)      _mm256_cvtph_ps(_mm256_cvtps_ph((v), \
                                                       _MM_FROUND_TO_NEAREST_INT))
#define ST_VLOADH(p)   _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (p)))

#define ST_INLINE static inline __attribute__((always_inline))


/* The same operations as st_vec_dot_f16_f32_d_avx2 (kernels_avx2.c):
 * 2 x 4 double lanes, then the scalar tail. */
ST_INLINE double
st_attn_dot_d(uint32_t n, const st_f16 *k, const float *q)
{
    __m256d  a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    __m128d  t;
    double   sum;
    uint32_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 p = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (k + i))),
            _mm256_loadu_ps(q + i));
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
    }
    a0 = _mm256_add_pd(a0, a1);
    t = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
    sum = _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
    for (; i < n; i++) {
        sum += (double) (_cvtsh_ss(k[i]) * q[i]);
    }
    return sum;
}


#include "backend/cpu/attn_f16_impl.h"


void
st_attn_f16_run_avx2(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys)
{
    uint32_t h = 0;

    if (n_heads == 0) {
        return;
    }
    /* constant head sizes and group widths let the compiler unroll and
     * keep the accumulators in registers (G * hd <= 128 floats) */
    switch (st->hd) {
    ST_ATTN_CASE(8, 8);
    ST_ATTN_CASE(16, 8);
    ST_ATTN_CASE(32, 4);
    ST_ATTN_CASE(48, 2);
    ST_ATTN_CASE(64, 2);
    ST_ATTN_CASE(80, 1);
    ST_ATTN_CASE(96, 1);
    ST_ATTN_CASE(128, 1);
    default:
        for (; h < n_heads; h++) {
            st_attn_run_group(st + h, 0, 0, head_off + h, k, v, stride,
                              n_keys);
        }
        break;
    }
}
