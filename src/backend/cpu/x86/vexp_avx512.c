/*
 * expf over an array with AVX-512, bit-identical to the C library's expf
 * (vec_f16.h, st_vec_expf_avx512): vexp_avx2.c's method and operations,
 * lane for lane, on 8 double lanes per register instead of 4 (the same
 * fma / mul / add per lane, so the same doubles, the same near-midpoint
 * lanes handed to expf, the same floats).
 */
#include "backend/cpu/vec_f16.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


/* 8 lanes: e^x in double, and a mask of the lanes near a midpoint */
static inline __m512d
st_vexp8_pd(__m256 x8, __mmask8 *near)
{
    const __m512d log2e = _mm512_set1_pd(1.4426950408889634);
    const __m512d ln2 = _mm512_set1_pd(0.6931471805599453);
    const __m512d ln2_lo = _mm512_set1_pd(2.3190468138462996e-17);
    const __m512d shift = _mm512_set1_pd(6755399441055744.0);
    const __m512i low_mask = _mm512_set1_epi64(0x1fffffff);
    const __m512i band_lo = _mm512_set1_epi64((1 << 28) - (1 << 21));
    const __m512i band_w = _mm512_set1_epi64(1 << 22);
    __m512d       x = _mm512_cvtps_pd(x8), t, n, r, p, y;
    __m512i       e, low;

    t = _mm512_fmadd_pd(x, log2e, shift);
    n = _mm512_sub_pd(t, shift);
    r = _mm512_fnmadd_pd(n, ln2, x);
    r = _mm512_fnmadd_pd(n, ln2_lo, r);
    p = _mm512_set1_pd(1.0 / 3628800.0);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    e = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_castpd_si512(t), _mm512_set1_epi64(1023)),
        52);
    y = _mm512_mul_pd(p, _mm512_castsi512_pd(e));
    low = _mm512_and_si512(
        _mm512_sub_epi64(_mm512_castpd_si512(y), band_lo), low_mask);
    *near = _mm512_cmpgt_epi64_mask(band_w, low);
    return y;
}


/* 16 lanes at x, in place; returns the lanes to redo with expf */
static inline unsigned
st_vexp16(float *x)
{
    const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f);
    const __m512 tiny = _mm512_set1_ps(-104.0f);
    __m512       v = _mm512_loadu_ps(x), e;
    __mmask16    in, z;
    __mmask8     near0, near1;
    __m512d      y0, y1;

    in = _mm512_cmp_ps_mask(v, lo, _CMP_GE_OQ)
         & _mm512_cmp_ps_mask(v, hi, _CMP_LE_OQ);
    /* e^x < 2^-150 rounds to +0 (-inf included) */
    z = _mm512_cmp_ps_mask(v, tiny, _CMP_LE_OQ);
    v = _mm512_maskz_mov_ps(in, v);          /* other lanes: e^0 */
    y0 = st_vexp8_pd(_mm512_castps512_ps256(v), &near0);
    y1 = st_vexp8_pd(_mm512_extractf32x8_ps(v, 1), &near1);
    e = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(y0)),
                           _mm512_cvtpd_ps(y1), 1);
    _mm512_storeu_ps(x, _mm512_maskz_mov_ps((__mmask16) ~z, e));
    return (~(unsigned) (in | z) | (unsigned) near0 | (unsigned) near1 << 8)
           & 0xffffu;
}


/* Blocks of 64, as the AVX2 version: the vector pass, then expf for the
 * lanes it left; the last n % 16 values go to the AVX2 version (8 lanes,
 * then expf), which gives the same bits. */
void
st_vec_expf_avx512(float *x, int64_t n)
{
    float    in[64];
    uint64_t redo;
    int64_t  b, i, m;

    for (b = 0; b + 16 <= n; b += m) {
        m = n - b >= 64 ? 64 : (n - b) / 16 * 16;
        memcpy(in, x + b, sizeof(float) * (size_t) m);
        redo = 0;
        for (i = 0; i < m; i += 16) {
            redo |= (uint64_t) st_vexp16(x + b + i) << i;
        }
        while (redo) {
            int j = __builtin_ctzll(redo);

            x[b + j] = expf(in[j]);
            redo &= redo - 1;
        }
    }
    if (b < n) {
        st_vec_expf_avx2(x + b, n - b);
    }
}
