/*
 * AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16; compiled with those -m
 * flags, called only after cpu_features.c has seen them). Types without
 * an entry here use the AVX2 kernels.
 *
 * Integer block sums are exact (VNNI dpbusd: u8 x s8, 4 products per
 * int32 lane, no intermediate saturation); the quantized dots then take
 * the reference's float steps in its order (kernels.h), so they give the
 * bits of quant_ref.c; the F32/F16/BF16 dots sum in their own order.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/hsum_avx512.h"
#include "backend/cpu/x86/quant32_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>


static inline float
st_f16_load(st_f16 h)
{
    return _cvtsh_ss(h);
}


static inline float
st_hsum256_ps(__m256 v)
{
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}


/* exact: integer lanes add in any order to the same total */
static inline int32_t
st_hsum256_epi32(__m256i v)
{
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v),
                              _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}


/* ------------------------------------------------------------ floats */

static void
st_vec_dot_f32_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    __m512       a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512       a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t      i = 0;
    float        sum;

    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i),
                             _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16),
                             _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32),
                             _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48),
                             _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i),
                             _mm512_loadu_ps(y + i), a0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16) ((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i),
                             _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    sum = st_hsum512_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),
                                             _mm512_add_ps(a2, a3)));
    *s = sum;
}


static void
st_vec_dot_f16_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_f16 *x = vx, *y = vy;
    __m512        a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512        a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t       i = 0;

#define ST_LDH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (p)))
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(ST_LDH(x + i), ST_LDH(y + i), a0);
        a1 = _mm512_fmadd_ps(ST_LDH(x + i + 16), ST_LDH(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(ST_LDH(x + i + 32), ST_LDH(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(ST_LDH(x + i + 48), ST_LDH(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_ps(ST_LDH(x + i), ST_LDH(y + i), a0);
    }
#undef ST_LDH
    if (i < n) {
        __mmask16 m = (__mmask16) ((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)),
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i)), a1);
    }
    *s = st_hsum512_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),
                                            _mm512_add_ps(a2, a3)));
}


/* BF16 pairs with dpbf16ps: bf16 x bf16 products are exact in f32, so
 * only the summation order differs from scalar. (The instruction treats
 * subnormal inputs as zero, as llama.cpp's AVX512-BF16 path does.) */
static void
st_vec_dot_bf16_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_bf16 *x = vx, *y = vy;
    __m512         a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t        i = 0;

    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_dpbf16_ps(a0,
                 (__m512bh) _mm512_loadu_si512(x + i),
                 (__m512bh) _mm512_loadu_si512(y + i));
        a1 = _mm512_dpbf16_ps(a1,
                 (__m512bh) _mm512_loadu_si512(x + i + 32),
                 (__m512bh) _mm512_loadu_si512(y + i + 32));
    }
    if (i < n) {
        /* up to 63 values left: two masked steps of 32 */
        int64_t   left = n - i;
        __mmask32 m0 = left >= 32 ? 0xffffffffu
                                  : (__mmask32) ((1u << left) - 1);
        __mmask32 m1 = left > 32 ? (__mmask32) ((1u << (left - 32)) - 1) : 0;

        a0 = _mm512_dpbf16_ps(a0,
                 (__m512bh) _mm512_maskz_loadu_epi16(m0, x + i),
                 (__m512bh) _mm512_maskz_loadu_epi16(m0, y + i));
        if (m1) {
            a1 = _mm512_dpbf16_ps(a1,
                     (__m512bh) _mm512_maskz_loadu_epi16(m1, x + i + 32),
                     (__m512bh) _mm512_maskz_loadu_epi16(m1, y + i + 32));
        }
    }
    *s = st_hsum512_ps(_mm512_add_ps(a0, a1));
}


/* ----------------------------------------------- Q8_0 / Q4_0 / Q5_0 / IQ4_NL */

/* Q8_0, Q5_0 and IQ4_NL in ggml's order (quant_ref.c): one 8-lane accumulator
 * per dot, so 256-bit vectors; VNNI only forms the exact lane sums. A
 * wider accumulator would change which values meet in the float sum. */
static inline __m256i
st_dot_i8_32_vnni(__m256i x, __m256i y)
{
    __m256i ax = _mm256_abs_epi8(x);
    __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
}


static void
st_vec_dot_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q8_0 *x = vx, *y = vy;
    int64_t              nb = n / ST_QK8_0, i;
    __m256               acc = _mm256_setzero_ps();

    for (i = 0; i < nb; i++) {
        __m256i p = st_dot_i8_32_vnni(
                        _mm256_loadu_si256((const __m256i *) x[i].qs),
                        _mm256_loadu_si256((const __m256i *) y[i].qs));

        acc = _mm256_fmadd_ps(_mm256_set1_ps(st_f16_load(x[i].d)
                                             * st_f16_load(y[i].d)),
                              _mm256_cvtepi32_ps(p), acc);
    }
    *s = st_hsum256_ps(acc);
}


/* Q4_0 in its block order (quant_ref.c): the block's exact sum, then one
 * scalar fma chain (the GEMM, gemm_q4_0_avx512.c, keeps 16 rows of such
 * chains in one register; this serves the edges). */
static void
st_vec_dot_q4_0_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              nb = n / ST_QK4_0, i;
    float                acc = 0.0f;

    for (i = 0; i < nb; i++) {
        __m128i t = _mm_loadu_si128((const __m128i *) x[i].qs);
        __m256i q = _mm256_and_si256(
                        _mm256_set_m128i(_mm_srli_epi16(t, 4), t),
                        _mm256_set1_epi8(0x0f));
        __m256i ya = _mm256_loadu_si256((const __m256i *) y[i].qs);
        /* (q - 8) . y = q . y - 8 . y, both exact u8 x s8 */
        __m256i p = _mm256_dpbusd_epi32(
                        _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                                _mm256_set1_epi8(8), ya)),
                        q, ya);
        acc = fmaf((float) st_q32_hsum_i32(p),
                   st_f16_load(x[i].d) * st_f16_load(y[i].d), acc);
    }
    *s = acc;
}


/* Q5_0: with the 5-bit u = nibble | bit << 4 and 16 . y */
static void
st_vec_dot_q5_0_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              nb = n / ST_QK5_0, i;
    __m256               acc = _mm256_setzero_ps();

    for (i = 0; i < nb; i++) {
        __m256i q = st_q32_q5_values(x[i].qs, x[i].qh);
        __m256i ya = _mm256_loadu_si256((const __m256i *) y[i].qs);
        __m256i p = _mm256_sub_epi32(
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, ya),
                        _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                            _mm256_set1_epi8(16), ya));

        acc = _mm256_fmadd_ps(_mm256_set1_ps(st_f16_load(x[i].d)
                                             * st_f16_load(y[i].d)),
                              _mm256_cvtepi32_ps(p), acc);
    }
    *s = st_hsum256_ps(acc);
}


/* IQ4_NL: the table values by one byte shuffle, then Q4_0's block order
 * (quant_ref.c): the block's sum, one fma chain */
static void
st_vec_dot_iq4_nl_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_iq4_nl *x = vx;
    const st_block_q8_0   *y = vy;
    int64_t                nb = n / ST_QK4_NL, i;
    float                  acc = 0.0f;

    for (i = 0; i < nb; i++) {
        __m256i p = st_dot_i8_32_vnni(st_q32_iq4nl_values(x[i].qs),
                        _mm256_loadu_si256((const __m256i *) y[i].qs));
        acc = fmaf((float) st_q32_hsum_i32(p),
                   st_f16_load(x[i].d) * st_f16_load(y[i].d), acc);
    }
    *s = acc;
}


/* ------------------------------------------------------------ Q4_K */

/* The 8 6-bit scales and mins of a Q4_K/Q5_K super-block (12 packed
 * bytes) as two 8-byte groups, with 32-bit word operations:
 *   scales 0..3 = q[0..3] & 63        mins 0..3 = q[4..7] & 63
 *   scales 4..7 = (q[8..11] & 15) | (q[0..3] >> 6) << 4
 *   mins   4..7 = (q[8..11] >> 4) | (q[4..7] >> 6) << 4 */
static inline void
st_q4_K_scales(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t u[3], s[2], m[2];

    memcpy(u, q, 12);
    s[0] = u[0] & 0x3f3f3f3fu;
    m[0] = u[1] & 0x3f3f3f3fu;
    s[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    m[1] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
    memcpy(sc, s, 8);
    memcpy(mn, m, 8);
}


/* Each 64-value chunk: 32 bytes of nibbles; low nibbles are values 0..31
 * and high nibbles 32..63 — exactly the next 64 activation bytes, so one
 * 512-bit u8 x s8 product covers two sub-blocks. */
static void
st_vec_dot_q4_K_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m512i        m4 = _mm512_set1_epi8(0x0f);
    float                sum = 0.0f;
    uint8_t              sc[8], mn[8];
    int                  c;

    for (i = 0; i < nb; i++) {
        const uint8_t *qs = x[i].qs;
        const int8_t  *q8 = y[i].qs;
        float          d = y[i].d * st_f16_load(x[i].d);
        float          dmin = y[i].d * st_f16_load(x[i].dmin);
        __m512i        isum = _mm512_setzero_si512();
        __m128i        m16, mlo, mhi;
        __m256i        msum;

        st_q4_K_scales(x[i].scales, sc, mn);

        m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *) mn));
        mlo = _mm_unpacklo_epi16(m16, m16);
        mhi = _mm_unpackhi_epi16(m16, m16);
        msum = _mm256_madd_epi16(
            _mm256_loadu_si256((const __m256i *) y[i].bsums),
            _mm256_set_m128i(mhi, mlo));

        for (c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *) (qs + 32 * c));
            __m512i qq = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(q),
                                   _mm256_srli_epi16(q, 4), 1), m4);
            __m512i p = _mm512_maddubs_epi16(qq,
                            _mm512_loadu_si512(q8 + 64 * c));
            __m512i scv = _mm512_inserti64x4(
                _mm512_set1_epi16(sc[2 * c]),
                _mm256_set1_epi16(sc[2 * c + 1]), 1);
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(p, scv));
        }

        /* the reference's float steps on its exact integers */
        sum -= dmin * (float) st_hsum256_epi32(msum);
        sum += d * (float) _mm512_reduce_add_epi32(isum);
    }
    *s = sum;
}


/* ------------------------------------------------------------ Q6_K */

/* 64 values per 512-bit step: values 0..63 of a 128-value half come from
 * ql[0..63] low nibbles, 64..127 from their high nibbles; the 2 high bits
 * from qh, shifted per 256-bit half. The -32 offset is taken out exactly
 * through bsums, as in the AVX2 kernel. */
static void
st_vec_dot_q6_K_avx512(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q6_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m512i        m4 = _mm512_set1_epi8(0x0f);
    const __m512i        m30 = _mm512_set1_epi8(0x30);
    __m512i              gidx[4];
    float                sum = 0.0f;
    int                  h, k;

    /* lane k of group-of-4 step g: scale index 4g + k / 8 */
    for (k = 0; k < 4; k++) {
        int16_t idx[32];
        int     l;

        for (l = 0; l < 32; l++) {
            idx[l] = (int16_t) (4 * k + l / 8);
        }
        gidx[k] = _mm512_loadu_si512(idx);
    }

    for (i = 0; i < nb; i++) {
        float   d = st_f16_load(x[i].d) * y[i].d;
        __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(
                           _mm_loadu_si128((const __m128i *) x[i].scales)));
        __m256i corr;
        __m512i isum;

        corr = _mm256_madd_epi16(
            _mm256_loadu_si256((const __m256i *) y[i].bsums),
            _mm512_castsi512_si256(sc16));
        isum = _mm512_castsi256_si512(
            _mm256_sub_epi32(_mm256_setzero_si256(),
                             _mm256_slli_epi32(corr, 5)));
        isum = _mm512_maskz_mov_epi32(0x00ff, isum);

        for (h = 0; h < 2; h++) {
            const int8_t *q8 = y[i].qs + 128 * h;
            __m512i       l = _mm512_loadu_si512(x[i].ql + 64 * h);
            __m256i       vh = _mm256_loadu_si256(
                                   (const __m256i *) (x[i].qh + 32 * h));
            __m512i       hA = _mm512_inserti64x4(
                                   _mm512_castsi256_si512(
                                       _mm256_slli_epi16(vh, 4)),
                                   _mm256_slli_epi16(vh, 2), 1);
            __m512i       hB = _mm512_inserti64x4(
                                   _mm512_castsi256_si512(vh),
                                   _mm256_srli_epi16(vh, 2), 1);
            __m512i       qA = _mm512_or_si512(_mm512_and_si512(l, m4),
                                               _mm512_and_si512(hA, m30));
            __m512i       qB = _mm512_or_si512(
                                   _mm512_and_si512(_mm512_srli_epi16(l, 4),
                                                    m4),
                                   _mm512_and_si512(hB, m30));
            __m512i       pA = _mm512_maddubs_epi16(qA,
                                   _mm512_loadu_si512(q8));
            __m512i       pB = _mm512_maddubs_epi16(qB,
                                   _mm512_loadu_si512(q8 + 64));

            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(pA,
                       _mm512_permutexvar_epi16(gidx[2 * h], sc16)));
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(pB,
                       _mm512_permutexvar_epi16(gidx[2 * h + 1], sc16)));
        }
        sum += d * (float) _mm512_reduce_add_epi32(isum);  /* as the reference */
    }
    *s = sum;
}


st_vec_dot_fn
st_cpu_avx512_vec_dot(st_type wtype)
{
    switch (wtype) {
    case ST_TYPE_F32:  return st_vec_dot_f32_avx512;
    case ST_TYPE_F16:  return st_vec_dot_f16_avx512;
    case ST_TYPE_BF16: return st_vec_dot_bf16_avx512;
    case ST_TYPE_Q8_0: return st_vec_dot_q8_0_avx512;
    case ST_TYPE_Q4_0: return st_vec_dot_q4_0_avx512;
    case ST_TYPE_Q5_0: return st_vec_dot_q5_0_avx512;
    case ST_TYPE_IQ4_NL: return st_vec_dot_iq4_nl_avx512;
    case ST_TYPE_Q4_K: return st_vec_dot_q4_K_avx512;
    case ST_TYPE_Q6_K: return st_vec_dot_q6_K_avx512;
    default:           return NULL;
    }
}


st_from_float_fn
st_cpu_avx512_from_float(st_type vdtype)
{
    (void) vdtype;
    return NULL;                 /* the AVX2 quantizers are used */
}
