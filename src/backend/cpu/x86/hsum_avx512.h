/*
 * Horizontal float sums of AVX-512 vectors with one fixed addition tree,
 * shared by the vec_dot kernels and the GEMM tiles (include only from
 * files compiled with the AVX-512 flags). The tree is written out rather
 * than left to _mm512_reduce_add_ps, whose order is the compiler's (this
 * one is GCC's): a batch-invariance promise cannot rest on a header.
 *
 *   s8[j]  = v[j + 8] + v[j]        j < 8
 *   s4[j]  = s8[j + 4] + s8[j]      j < 4
 *   s2[j]  = s4[j] + s4[j ^ 2]      j < 2
 *   sum    = s2[0] + s2[1]
 *
 * Float addition is commutative, so only which values meet matters, not
 * the operand order; st_hsum512x8_ps() forms the same pairs for 8
 * vectors at once with shuffles.
 */
#ifndef ST_HSUM_AVX512_H
#define ST_HSUM_AVX512_H

#include <immintrin.h>

static inline float
st_hsum512_ps(__m512 v)
{
    __m256 s8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1),
                              _mm512_castps512_ps256(v));
    __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(s8, 1),
                           _mm256_castps256_ps128(s8));
    __m128 s2 = _mm_add_ps(s4, _mm_shuffle_ps(s4, s4, _MM_SHUFFLE(1, 0, 3, 2)));

    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}


/* out[e] = st_hsum512_ps(v[e]) for e < 8 */
static inline void
st_hsum512x8_ps(const __m512 *v, float *out)
{
    __m512 t[4], u[2], w;
    int    e;

    /* s8: element pairs (2e, 2e + 1) -> [s8 of 2e | s8 of 2e + 1] */
    for (e = 0; e < 4; e++) {
        __m512 a = v[2 * e], b = v[2 * e + 1];

        t[e] = _mm512_add_ps(
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)),
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)));
    }
    /* s4: [s4 of 4e, 4e + 1, 4e + 2, 4e + 3], one 128-bit lane each */
    for (e = 0; e < 2; e++) {
        __m512 a = t[2 * e], b = t[2 * e + 1];

        u[e] = _mm512_add_ps(
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)),
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    }
    /* s2: lane k of u[0] / u[1] -> [s2 of k, s2 of 4 + k] per 128 bits */
    w = _mm512_add_ps(
        _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
        _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* sum: lanes (4k, 4k + 1) -> element k, (4k + 2, 4k + 3) -> 4 + k */
    w = _mm512_add_ps(w, _mm512_permute_ps(w, _MM_SHUFFLE(2, 3, 0, 1)));
    {
        float f[16];

        _mm512_storeu_ps(f, w);
        for (e = 0; e < 4; e++) {
            out[e] = f[4 * e];
            out[4 + e] = f[4 * e + 2];
        }
    }
}

/* The sums of 16 vectors, same pairs as st_hsum512_ps, in one vector:
 * lane 4k + m holds the sum of v[k + 4m]. A wider transpose than
 * st_hsum512x8_ps: one lane-wise add per tree level does 16 sums. */
static inline __m512
st_hsum512x16_ps(const __m512 *v)
{
    __m512 t[8], u[4], w0, w1;
    int    e;

    for (e = 0; e < 8; e++) {
        __m512 a = v[2 * e], b = v[2 * e + 1];

        t[e] = _mm512_add_ps(
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)),
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)));
    }
    for (e = 0; e < 4; e++) {
        __m512 a = t[2 * e], b = t[2 * e + 1];

        u[e] = _mm512_add_ps(
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)),
            _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    }
    /* lane k: [s2 pair of k | s2 pair of 4 + k], and of 8 + k, 12 + k */
    w0 = _mm512_add_ps(
        _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
        _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    w1 = _mm512_add_ps(
        _mm512_shuffle_ps(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
        _mm512_shuffle_ps(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(
        _mm512_shuffle_ps(w0, w1, _MM_SHUFFLE(2, 0, 2, 0)),
        _mm512_shuffle_ps(w0, w1, _MM_SHUFFLE(3, 1, 3, 1)));
}

#endif /* ST_HSUM_AVX512_H */
