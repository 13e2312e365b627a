/*
 * Fused F16 attention (vec_f16.h), AVX-512: 16-float vectors for the V
 * pass and 8 double lanes for the K.Q dot; the kernel body is
 * attn_f16_impl.h.
 *
 * The dot keeps st_vec_dot_f16_f32_d_avx2's arithmetic exactly: that
 * kernel adds products 0-3 of every 8 into a0 and 4-7 into a1; here one
 * 8-double accumulator holds a0 in its low and a1 in its high half, and
 * a 16-value step is two such 8-value steps in the same order.
 */
#include "backend/cpu/vec_f16.h"

#include <immintrin.h>

#define ST_INLINE static inline __attribute__((always_inline))

#define ST_ATTN_HD_MAX 256       /* 16 zmm accumulators */

#define ST_VEXPF       st_vec_expf_avx512
#define ST_VL          16
#define ST_VF          __m512
#define ST_VLOAD(p)    _mm512_loadu_ps(p)
#define ST_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define ST_VSET1(x)    _mm512_set1_ps(x)
#define ST_VMUL(a, b)  _mm512_mul_ps((a), (b))
#define ST_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define ST_VRT(v)      _mm512_cvtph_ps(_mm512_cvtps_ph((v), \
                                                       _MM_FROUND_TO_NEAREST_INT))
#define ST_VLOADH(p)   _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (p)))


ST_INLINE double
st_attn_dot_d(uint32_t n, const st_f16 *k, const float *q)
{
    __m512d  acc = _mm512_setzero_pd();
    __m256d  a0;
    __m128d  t;
    double   sum;
    uint32_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m512 p = _mm512_mul_ps(
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (k + i))),
            _mm512_loadu_ps(q + i));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(p, 1)));
    }
    if (i + 8 <= n) {
        __m256 p = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (k + i))),
            _mm256_loadu_ps(q + i));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(p));
        i += 8;
    }
    a0 = _mm256_add_pd(_mm512_castpd512_pd256(acc),
                       _mm512_extractf64x4_pd(acc, 1));
    t = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
    sum = _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
    for (; i < n; i++) {
        sum += (double) (_cvtsh_ss(k[i]) * q[i]);
    }
    return sum;
}


/* Scores of 8 keys (hd a multiple of 16): per key the same vertical
 * sums as st_attn_dot_d, then the same reduction tree (256-bit halves,
 * 128-bit halves, the two lanes, each add with the same operands in the
 * same order) run for 8 keys at once on transposed lanes, instead of
 * one horizontal reduction per key. w[j] = (float) dot_j * scale. */
ST_INLINE void
st_attn_dot8(uint32_t hd, const st_f16 *k, size_t stride, const float *q,
    float scale, float *w)
{
    __m512d  acc[8], x[4], y0, y1, z0, z1, s;
    uint32_t i, j;

#pragma GCC unroll 8
    for (j = 0; j < 8; j++) {
        const st_f16 *kr = k + (size_t) j * stride;

        acc[j] = _mm512_setzero_pd();
        for (i = 0; i < hd; i += 16) {
            __m512 p = _mm512_mul_ps(
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (kr + i))),
                _mm512_loadu_ps(q + i));
            acc[j] = _mm512_add_pd(acc[j],
                                   _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
            acc[j] = _mm512_add_pd(acc[j],
                                   _mm512_cvtps_pd(_mm512_extractf32x8_ps(p, 1)));
        }
    }
    /* low 256 + high 256: x[j/2] = [A(key 2m) | A(key 2m+1)], 4 each */
#pragma GCC unroll 4
    for (j = 0; j < 4; j++) {
        x[j] = _mm512_add_pd(
            _mm512_shuffle_f64x2(acc[2 * j], acc[2 * j + 1], 0x44),
            _mm512_shuffle_f64x2(acc[2 * j], acc[2 * j + 1], 0xEE));
    }
    /* low 128 + high 128: z0 = [T(key 0) .. T(key 3)], 2 each */
    y0 = _mm512_shuffle_f64x2(x[0], x[1], 0x88);
    y1 = _mm512_shuffle_f64x2(x[0], x[1], 0xDD);
    z0 = _mm512_add_pd(y0, y1);
    y0 = _mm512_shuffle_f64x2(x[2], x[3], 0x88);
    y1 = _mm512_shuffle_f64x2(x[2], x[3], 0xDD);
    z1 = _mm512_add_pd(y0, y1);
    /* lane 0 + lane 1: keys 0 4 1 5 2 6 3 7 */
    s = _mm512_add_pd(_mm512_unpacklo_pd(z0, z1), _mm512_unpackhi_pd(z0, z1));
    s = _mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), s);
    _mm256_storeu_ps(w, _mm256_mul_ps(_mm512_cvtpd_ps(s),
                                      _mm256_set1_ps(scale)));
}

#define ST_ATTN_HAVE_DOT8 1


#include "backend/cpu/attn_f16_impl.h"


void
st_attn_f16_run_avx512(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys)
{
    uint32_t h = 0;

    if (n_heads == 0) {
        return;
    }
    switch (st->hd) {
    ST_ATTN_CASE(16, 8);
    ST_ATTN_CASE(32, 8);
    ST_ATTN_CASE(64, 4);
    ST_ATTN_CASE(128, 2);
    ST_ATTN_CASE(256, 1);
    default:
        /* head sizes that are not multiples of 16 (e.g. 8) */
        st_attn_f16_run_avx2(st, n_heads, head_off, k, v, stride, n_keys);
        break;
    }
}
