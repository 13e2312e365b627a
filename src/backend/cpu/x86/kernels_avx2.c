/*
 * AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; only
 * called after cpu_features.c has seen those features).
 *
 * vec_dot: the integer sum of every block (or of every 16/32-value
 * sub-block, times its integer scale) is computed exactly, as in quant_ref.c;
 * only the float accumulation of the block results is in a different
 * order (8 lanes, several accumulators).
 *
 * from_float: the same float operations as the scalar reference, element
 * for element, so the output is bit-identical.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/quant32_avx2.h"
#include "quant/quant_ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>


static inline float
st_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}


/* Max of 8 lanes in the exact operand order of llama.cpp's x86 q8_0
 * quantizer and quant_ref.c (max_ps(a, b) = a > b ? a : b, which decides
 * what a NaN lane gives). */
static inline float
st_hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_extractf128_ps(v, 1),
                          _mm256_castps256_ps128(v));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}


static inline float
st_f16_load(st_f16 h)
{
    /* F16C conversion is exact, like st_f16_to_f32(). */
    return _cvtsh_ss(h);
}


/* Signed x signed int8 dot of 32 pairs -> 8 int32 partial sums (exact:
 * |x| <= 128, |y| <= 127, pair sums fit int16). */
static inline __m256i
st_dot_i8_32(__m256i x, __m256i y)
{
    __m256i ax = _mm256_sign_epi8(x, x);
    __m256i sy = _mm256_sign_epi8(y, x);
    __m256i p16 = _mm256_maddubs_epi16(ax, sy);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}


/* ------------------------------------------------------------ floats */

static void
st_vec_dot_f32_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    __m256       a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256       a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t      i = 0;
    float        sum;

    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
                             _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8),
                             _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16),
                             _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24),
                             _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
                             _mm256_loadu_ps(y + i), a0);
    }
    sum = st_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1),
                                   _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        sum += x[i] * y[i];
    }
    *s = sum;
}


static void
st_vec_dot_f16_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_f16 *x = vx, *y = vy;
    __m256        a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256        a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t       i = 0, k;
    float         sum;

#define ST_LDH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (p)))
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ST_LDH(x + i), ST_LDH(y + i), a0);
        a1 = _mm256_fmadd_ps(ST_LDH(x + i + 8), ST_LDH(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ST_LDH(x + i + 16), ST_LDH(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ST_LDH(x + i + 24), ST_LDH(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(ST_LDH(x + i), ST_LDH(y + i), a0);
    }
#undef ST_LDH
    sum = st_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1),
                                   _mm256_add_ps(a2, a3)));
    for (k = i; k < n; k++) {
        sum += st_f16_load(x[k]) * st_f16_load(y[k]);
    }
    *s = sum;
}


static inline __m256
st_load_bf16x8(const st_bf16 *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}


static void
st_vec_dot_bf16_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_bf16 *x = vx, *y = vy;
    __m256         a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256         a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t        i = 0;
    float          sum;
    uint32_t       ux, uy;
    float          fx, fy;

    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(st_load_bf16x8(x + i), st_load_bf16x8(y + i),
                             a0);
        a1 = _mm256_fmadd_ps(st_load_bf16x8(x + i + 8),
                             st_load_bf16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(st_load_bf16x8(x + i + 16),
                             st_load_bf16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(st_load_bf16x8(x + i + 24),
                             st_load_bf16x8(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(st_load_bf16x8(x + i), st_load_bf16x8(y + i),
                             a0);
    }
    sum = st_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1),
                                   _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        ux = (uint32_t) x[i] << 16;
        uy = (uint32_t) y[i] << 16;
        memcpy(&fx, &ux, 4);
        memcpy(&fy, &uy, 4);
        sum += fx * fy;
    }
    *s = sum;
}


/* ------------------------------------------------------------ Q8_0 / Q4_0 */

/* Q8_0 in ggml's order (quant_ref.c): one 8-lane accumulator,
 * block after block, then hsum. One dependency chain per dot, as in
 * llama.cpp; the GEMM tiles run many such chains side by side. */
static void
st_vec_dot_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q8_0 *x = vx, *y = vy;
    int64_t              nb = n / ST_QK8_0, i;
    __m256               acc = _mm256_setzero_ps();
    __m256i              p;

    for (i = 0; i < nb; i++) {
        p = st_dot_i8_32(_mm256_loadu_si256((const __m256i *) x[i].qs),
                         _mm256_loadu_si256((const __m256i *) y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(st_f16_load(x[i].d)
                                             * st_f16_load(y[i].d)),
                              _mm256_cvtepi32_ps(p), acc);
    }
    *s = st_hsum_ps(acc);
}


/* 32 nibbles of a Q4_0 block as bytes 0..15 in value order. */
static inline __m256i
st_q4_0_unpack(const uint8_t *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *) qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}


/* The same bytes with one ALU operation less: the 16 bytes loaded into
 * both halves (a load-port broadcast), the high half shifted right 4 in
 * its 64-bit lanes (each byte then holds its own high nibble in bits
 * 0..3), masked. */
static inline __m256i
st_q4_0_unpack_b(const uint8_t *qs)
{
    __m256i b = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *) qs));

    b = _mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}


/* sum of (nib - 8) * y per 32-bit lane, nib = 0..15 unsigned: the
 * pairs nib * y and 8 * y are exact in 16 bits (|.| <= 3840), so this
 * is st_dot_i8_32(nib - 8, y) with one operation less. */
static inline __m256i
st_dot_q4_0_32(__m256i nib, __m256i y)
{
    __m256i p16 = _mm256_sub_epi16(
        _mm256_maddubs_epi16(nib, y),
        _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));

    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}


/* Q4_0 in its block order (quant_ref.c): the block's exact sum, then one
 * scalar fma chain. The GEMM tile (gemm_q4_0_avx2.c) runs 8 rows of
 * such chains in the lanes of a register; this serves the edges. */
static void
st_vec_dot_q4_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              nb = n / ST_QK4_0, i = 0;
    float                acc = 0.0f;
    __m256i              p;

    for (i = 0; i < nb; i++) {
        p = st_dot_q4_0_32(st_q4_0_unpack_b(x[i].qs),
                           _mm256_loadu_si256((const __m256i *) y[i].qs));
        acc = fmaf((float) st_q32_hsum_i32(p),
                   st_f16_load(x[i].d) * st_f16_load(y[i].d), acc);
    }
    *s = acc;
}


/* ------------------------------------------------------------ K-quants */

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


static void
st_vec_dot_q4_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m256i        m4 = _mm256_set1_epi8(0x0f);
    float                sum = 0.0f;
    uint8_t              sc[8], mn[8];
    int                  c;

    for (i = 0; i < nb; i++) {
        const uint8_t *qs = x[i].qs;
        const int8_t  *q8 = y[i].qs;
        float          d = y[i].d * st_f16_load(x[i].d);
        float          dmin = y[i].d * st_f16_load(x[i].dmin);
        __m256i        isum = _mm256_setzero_si256();
        __m128i        m16, mlo, mhi;
        __m256i        msum;

        st_q4_K_scales(x[i].scales, sc, mn);

        /* mins term: sum_j mn[j] * (bsums[2j] + bsums[2j+1]), exact */
        m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *) mn));
        mlo = _mm_unpacklo_epi16(m16, m16);
        mhi = _mm_unpackhi_epi16(m16, m16);
        msum = _mm256_madd_epi16(
            _mm256_loadu_si256((const __m256i *) y[i].bsums),
            _mm256_set_m128i(mhi, mlo));

        for (c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *) (qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i plo = _mm256_maddubs_epi16(lo,
                _mm256_loadu_si256((const __m256i *) (q8 + 64 * c)));
            __m256i phi = _mm256_maddubs_epi16(hi,
                _mm256_loadu_si256((const __m256i *) (q8 + 64 * c + 32)));

            plo = _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c]));
            phi = _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(plo, phi));
        }

        /* the reference's float steps on its exact integers */
        sum -= dmin * (float) st_q32_hsum(msum);
        sum += d * (float) st_q32_hsum(isum);
    }
    *s = sum;
}


/* As q4_K, with a fifth bit per value: for chunk c (64 values), bit 2c
 * of qh[l] tops value l and bit 2c+1 value 32 + l. */
static void
st_vec_dot_q5_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m256i        m4 = _mm256_set1_epi8(0x0f);
    const __m256i        one = _mm256_set1_epi8(1);
    float                sum = 0.0f;
    uint8_t              sc[8], mn[8];
    int                  c;

    for (i = 0; i < nb; i++) {
        const uint8_t *qs = x[i].qs;
        const int8_t  *q8 = y[i].qs;
        float          d = y[i].d * st_f16_load(x[i].d);
        float          dmin = y[i].d * st_f16_load(x[i].dmin);
        __m256i        isum = _mm256_setzero_si256();
        __m256i        vh = _mm256_loadu_si256((const __m256i *) x[i].qh);
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
            __m256i hl = _mm256_slli_epi16(_mm256_and_si256(
                             _mm256_srli_epi16(vh, 2 * c), one), 4);
            __m256i hh = _mm256_slli_epi16(_mm256_and_si256(
                             _mm256_srli_epi16(vh, 2 * c + 1), one), 4);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), hl);
            __m256i hi = _mm256_or_si256(
                             _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh);
            __m256i plo = _mm256_maddubs_epi16(lo,
                _mm256_loadu_si256((const __m256i *) (q8 + 64 * c)));
            __m256i phi = _mm256_maddubs_epi16(hi,
                _mm256_loadu_si256((const __m256i *) (q8 + 64 * c + 32)));

            plo = _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c]));
            phi = _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(plo, phi));
        }

        /* the reference's float steps on its exact integers */
        sum -= dmin * (float) st_q32_hsum(msum);
        sum += d * (float) st_q32_hsum(isum);
    }
    *s = sum;
}


static void
st_vec_dot_q6_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q6_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m256i        m4 = _mm256_set1_epi8(0x0f);
    const __m256i        m2 = _mm256_set1_epi8(0x03);
    const __m256i        m2b = _mm256_set1_epi8(0x0c);
    const __m256i        m2c = _mm256_set1_epi8(0x30);
    const __m256i        m2d = _mm256_set1_epi8((char) 0xc0);
    float                sum = 0.0f;
    int                  h, k;

    for (i = 0; i < nb; i++) {
        const int8_t *sc = x[i].scales;
        float         d = st_f16_load(x[i].d) * y[i].d;
        __m256i       isum = _mm256_setzero_si256();
        __m256i       corr;

        /* The weights are stored as q + 32 (0..63): the -32 offset times
         * each group's activation sum comes from bsums, exactly. */
        corr = _mm256_madd_epi16(
            _mm256_loadu_si256((const __m256i *) y[i].bsums),
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc)));
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));

        for (h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const uint8_t *qh = x[i].qh + 32 * h;
            const int8_t  *q8 = y[i].qs + 128 * h;
            __m256i        vh = _mm256_loadu_si256((const __m256i *) qh);
            __m256i        l0 = _mm256_loadu_si256((const __m256i *) ql);
            __m256i        l1 = _mm256_loadu_si256((const __m256i *) (ql + 32));
            __m256i        q[4];

            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                       _mm256_slli_epi16(_mm256_and_si256(vh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                       _mm256_slli_epi16(_mm256_and_si256(vh, m2b), 2));
            q[2] = _mm256_or_si256(
                       _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                       _mm256_and_si256(vh, m2c));
            q[3] = _mm256_or_si256(
                       _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                       _mm256_srli_epi16(_mm256_and_si256(vh, m2d), 2));

            for (k = 0; k < 4; k++) {
                int     g = 8 * h + 2 * k;     /* group of 16 values */
                __m256i p = _mm256_maddubs_epi16(q[k],
                    _mm256_loadu_si256((const __m256i *) (q8 + 32 * k)));
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]),
                                               _mm_set1_epi16(sc[g]));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
            }
        }
        sum += d * (float) st_q32_hsum(isum);    /* as the reference */
    }
    *s = sum;
}


/* ------------------------------------------------------------ from_float */

/* 32 int32 (already in int8 range) -> 32 int8 in order. */
static inline __m256i
st_pack_i32x32(__m256i a0, __m256i a1, __m256i a2, __m256i a3)
{
    __m256i p01 = _mm256_packs_epi32(a0, a1);
    __m256i p23 = _mm256_packs_epi32(a2, a3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    return _mm256_permutevar8x32_epi32(p,
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6,
                                                         3, 7));
}


/* 32 int32 in 0..255 -> 32 bytes in order (unsigned packs: no
 * saturation happens, so this is a plain truncation to 8 bits). */
static inline __m256i
st_pack_u8x32(__m256i a0, __m256i a1, __m256i a2, __m256i a3)
{
    __m256i p01 = _mm256_packus_epi32(a0, a1);
    __m256i p23 = _mm256_packus_epi32(a2, a3);
    __m256i p = _mm256_packus_epi16(p01, p23);
    return _mm256_permutevar8x32_epi32(p,
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6,
                                                         3, 7));
}


#define ST_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* Q8_0 as llama.cpp's x86 backend quantizes activations: d = amax / 127
 * (stored as f16), multiplier 127 / amax, round half to even. */
static void
st_from_float_q8_0_avx2(const float *x, void *vy, int64_t n)
{
    st_block_q8_0 *y = vy;
    int64_t        nb = n / ST_QK8_0, i;
    const __m256   sign = _mm256_set1_ps(-0.0f);

    for (i = 0; i < nb; i++) {
        const float *xb = x + i * ST_QK8_0;
        __m256       v0 = _mm256_loadu_ps(xb);
        __m256       v1 = _mm256_loadu_ps(xb + 8);
        __m256       v2 = _mm256_loadu_ps(xb + 16);
        __m256       v3 = _mm256_loadu_ps(xb + 24);
        __m256       mx;
        float        amax, d, id;

        mx = _mm256_andnot_ps(sign, v0);
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v1));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v2));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v3));
        amax = st_hmax_ps(mx);
        d = amax / 127.f;
        y[i].d = st_f32_to_f16(d);
        id = (amax != 0.0f) ? 127.f / amax : 0.0f;

        mx = _mm256_set1_ps(id);
        v0 = _mm256_round_ps(_mm256_mul_ps(v0, mx), ST_RNE);
        v1 = _mm256_round_ps(_mm256_mul_ps(v1, mx), ST_RNE);
        v2 = _mm256_round_ps(_mm256_mul_ps(v2, mx), ST_RNE);
        v3 = _mm256_round_ps(_mm256_mul_ps(v3, mx), ST_RNE);
        _mm256_storeu_si256((__m256i *) y[i].qs,
            st_pack_i32x32(_mm256_cvtps_epi32(v0), _mm256_cvtps_epi32(v1),
                           _mm256_cvtps_epi32(v2), _mm256_cvtps_epi32(v3)));
    }
}


/* Q8_K as quantize_row_q8_K_ref: signed max (first of largest magnitude),
 * iscale = -127 / max, round half to even, clamp to 127, bsums of 16. */
static void
st_from_float_q8_K_avx2(const float *x, void *vy, int64_t n)
{
    st_block_q8_K *y = vy;
    int64_t        nb = n / ST_QK_K, i;
    const __m256   sign = _mm256_set1_ps(-0.0f);
    const __m256i  c127 = _mm256_set1_epi32(127);
    const __m256i  mant = _mm256_set1_epi32(0x007fffff);
    const __m256i  off = _mm256_set1_epi32(0x00400000);
    const __m256i  lowb = _mm256_set1_epi32(0xff);
    const __m256   magic = _mm256_set1_ps(12582912.f);
    int            j, k, sum;

    for (i = 0; i < nb; i++) {
        const float *xb = x + i * ST_QK_K;
        __m256       mx = _mm256_setzero_ps(), is;
        float        amax, max, iscale;

        for (j = 0; j < ST_QK_K; j += 8) {
            /* new value first: a NaN lane keeps the old max, as the
             * reference's "if (ax > amax)" skips NaNs */
            mx = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)),
                               mx);
        }
        amax = st_hmax_ps(mx);
        if (amax == 0.0f) {
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof(y[i].qs));
            memset(y[i].bsums, 0, sizeof(y[i].bsums));
            continue;
        }
        max = amax;
        for (j = 0; j < ST_QK_K; j++) {
            if (xb[j] == amax || xb[j] == -amax) {
                max = xb[j];
                break;
            }
        }
        iscale = -127.f / max;
        is = _mm256_set1_ps(iscale);

        for (j = 0; j < ST_QK_K; j += 32) {
            __m256i a[4];

            for (k = 0; k < 4; k++) {
                __m256  v = _mm256_mul_ps(_mm256_loadu_ps(xb + j + 8 * k), is);
                /* ggml's nearest_int, bit for bit (also for NaN/huge) */
                __m256i t = _mm256_castps_si256(_mm256_add_ps(v, magic));
                t = _mm256_sub_epi32(_mm256_and_si256(t, mant), off);
                /* min(127, v), then the (int8_t) cast keeps the low byte */
                a[k] = _mm256_and_si256(_mm256_min_epi32(t, c127), lowb);
            }
            _mm256_storeu_si256((__m256i *) (y[i].qs + j),
                                st_pack_u8x32(a[0], a[1], a[2], a[3]));
        }
        for (j = 0; j < ST_QK_K / 16; j++) {
            sum = 0;
            for (k = 0; k < 16; k++) {
                sum += y[i].qs[16 * j + k];
            }
            y[i].bsums[j] = (int16_t) sum;
        }
        y[i].d = 1 / iscale;
    }
}


static void
st_from_float_f16_avx2(const float *x, void *vy, int64_t n)
{
    st_f16  *y = vy;
    int64_t  i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *) (y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                         _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) {
        y[i] = st_f32_to_f16(x[i]);
    }
}


/* ggml's rounding: NaN -> quiet NaN, else round to nearest even on the
 * bit pattern (integer ops, so subnormals are kept, as in scalar). */
static void
st_from_float_bf16_avx2(const float *x, void *vy, int64_t n)
{
    st_bf16       *y = vy;
    int64_t        i = 0;
    const __m256i  abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i  inf = _mm256_set1_epi32(0x7f800000);
    const __m256i  one = _mm256_set1_epi32(1);
    const __m256i  bias = _mm256_set1_epi32(0x7fff);
    const __m256i  quiet = _mm256_set1_epi32(0x40);

    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        int     k;

        for (k = 0; k < 2; k++) {
            __m256i u = _mm256_loadu_si256((const __m256i *) (x + i + 8 * k));
            __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask),
                                               inf);
            __m256i rnd = _mm256_add_epi32(u, _mm256_add_epi32(bias,
                              _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
            __m256i nanv = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);

            rnd = _mm256_srli_epi32(rnd, 16);
            r[k] = _mm256_blendv_epi8(rnd, nanv, isnan);
        }
        _mm256_storeu_si256((__m256i *) (y + i),
            _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]),
                                     0xd8));
    }
    for (; i < n; i++) {
        y[i] = st_f32_to_bf16(x[i]);
    }
}


static void
st_from_float_f32_avx2(const float *x, void *vy, int64_t n)
{
    memcpy(vy, x, (size_t) n * sizeof(float));
}


/* ------------------------------------------------------------ Q4_1 .. IQ4_XS
 *
 * These kernels are bit-identical to quant_ref.c: the integer sums are
 * vectorized (exact), and the float expression of every block is then
 * evaluated lane-wise with the reference's operations (mul, mul, add; no
 * FMA) and added to one accumulator in block order.
 */

static inline int32_t
st_hsum_epi32(__m256i p)
{
    return st_q32_hsum(p);
}


static void
st_vec_dot_q4_1_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    *s = st_q32_vec_dot(ST_Q32_Q4_1, n, vx, vy);
}


/* Q5_0 and IQ4_NL in Q8_0's 8-lane order (quant_ref.c). Q5_0: the 5-bit
 * values u = nibble | bit << 4 (0..31) times y minus 16 times y, both
 * exact in 16 bits (2 * 31 * 127 < 32767); IQ4_NL: the table values by
 * one byte shuffle, |v| . sign(y, v) as Q8_0 (2 * 127 * 127 < 32767). */
static void
st_vec_dot_q5_0_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              nb = n / ST_QK5_0, i;
    __m256               acc = _mm256_setzero_ps();

    for (i = 0; i < nb; i++) {
        __m256i u = st_q32_q5_values(x[i].qs, x[i].qh);
        __m256i ya = _mm256_loadu_si256((const __m256i *) y[i].qs);
        __m256i p = _mm256_madd_epi16(
                        _mm256_sub_epi16(
                            _mm256_maddubs_epi16(u, ya),
                            _mm256_maddubs_epi16(_mm256_set1_epi8(16), ya)),
                        _mm256_set1_epi16(1));

        acc = _mm256_fmadd_ps(_mm256_set1_ps(st_f16_load(x[i].d)
                                             * st_f16_load(y[i].d)),
                              _mm256_cvtepi32_ps(p), acc);
    }
    *s = st_hsum_ps(acc);
}


static void
st_vec_dot_q5_1_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    *s = st_q32_vec_dot(ST_Q32_Q5_1, n, vx, vy);
}


static void
st_vec_dot_iq4_nl_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_iq4_nl *x = vx;
    const st_block_q8_0   *y = vy;
    int64_t                nb = n / ST_QK4_NL, i;
    float                  acc = 0.0f;

    /* Q4_0's block order (quant_ref.c): the block's sum, one fma chain */
    for (i = 0; i < nb; i++) {
        __m256i v = st_q32_iq4nl_values(x[i].qs);
        __m256i ya = _mm256_loadu_si256((const __m256i *) y[i].qs);
        __m256i p = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(_mm256_sign_epi8(v, v),
                                             _mm256_sign_epi8(ya, v)),
                        _mm256_set1_epi16(1));
        acc = fmaf((float) st_q32_hsum_i32(p),
                   st_f16_load(x[i].d) * st_f16_load(y[i].d), acc);
    }
    *s = acc;
}


/*
 * Scales of groups 2k (low 128-bit half) and 2k + 1 (high half) from 8
 * int16 scales held in both halves of h: a byte shuffle picks int16 lane
 * 2k / 2k + 1 into every lane of its half.
 */
static inline __m256i
st_scale_pair(__m256i h, int k)
{
    return _mm256_shuffle_epi8(h, _mm256_set_m128i(
        _mm_set1_epi16((short) (0x0100 + 0x0202 * (2 * k + 1))),
        _mm_set1_epi16((short) (0x0100 + 0x0202 * (2 * k)))));
}


/* Q3_K's 16 scales minus 32 (as st_q3_K_scales) with 32-bit word
 * operations: low nibbles from bytes 0..7 (low, then high halves), top
 * 2 bits from bytes 8..11 */
static inline __m128i
st_q3_K_scales_v(const uint8_t *q)
{
    uint32_t a[3], w[4];

    memcpy(a, q, 12);
    w[0] = (a[0] & 0x0f0f0f0fu) | (a[2] & 0x03030303u) << 4;
    w[1] = (a[1] & 0x0f0f0f0fu) | ((a[2] >> 2) & 0x03030303u) << 4;
    w[2] = ((a[0] >> 4) & 0x0f0f0f0fu) | ((a[2] >> 4) & 0x03030303u) << 4;
    w[3] = ((a[1] >> 4) & 0x0f0f0f0fu) | ((a[2] >> 6) & 0x03030303u) << 4;
    return _mm_sub_epi8(_mm_loadu_si128((const __m128i *) (void *) w),
                        _mm_set1_epi8(32));
}


static void
st_vec_dot_q2_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q2_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m256i        m3 = _mm256_set1_epi8(3);
    int                  c, k;
    float                dall, dmin, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        const uint8_t *sc = x[i].scales;
        const int8_t  *q8 = y[i].qs;
        __m256i        acc = _mm256_setzero_si256();
        __m128i        sv = _mm_loadu_si128((const __m128i *) sc);
        __m256i        mn = _mm256_cvtepu8_epi16(_mm_and_si128(
                                _mm_srli_epi16(sv, 4), _mm_set1_epi8(0x0f)));
        __m256i        sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sv,
                                  _mm_set1_epi8(0x0f)));
        int32_t        isum, summs;

        summs = st_hsum_epi32(_mm256_madd_epi16(
            _mm256_loadu_si256((const __m256i *) y[i].bsums), mn));
        for (c = 0; c < 2; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *) (x[i].qs + 32 * c));
            __m256i h = c ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                          : _mm256_permute2x128_si256(sc16, sc16, 0x00);

            for (k = 0; k < 4; k++) {
                __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
                __m256i p = _mm256_maddubs_epi16(v, _mm256_loadu_si256(
                    (const __m256i *) (q8 + 128 * c + 32 * k)));

                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p,
                                                    st_scale_pair(h, k)));
            }
        }
        isum = st_hsum_epi32(acc);
        dall = y[i].d * st_f16_load(x[i].d);
        dmin = y[i].d * st_f16_load(x[i].dmin);
        sum += dall * (float) isum - dmin * (float) summs;
    }
    *s = sum;
}


/*
 * q3_K: the quants are u - 4 with u = low 2 bits | high bit << 2 (0..7);
 * sum sc * (u - 4) * q8 = sum sc * u * q8 - 4 * sum sc * bsums (exact).
 */
static void
st_vec_dot_q3_K_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q3_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              nb = n / ST_QK_K, i;
    const __m256i        m3 = _mm256_set1_epi8(3);
    const __m256i        one = _mm256_set1_epi8(1);
    int                  c, k;
    float                d, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        const int8_t *q8 = y[i].qs;
        __m256i       hm = _mm256_loadu_si256((const __m256i *) x[i].hmask);
        __m256i       acc = _mm256_setzero_si256();
        __m128i       sv = st_q3_K_scales_v(x[i].scales);
        __m256i       sc16 = _mm256_cvtepi8_epi16(sv);
        int32_t       isum;

        for (c = 0; c < 2; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *) (x[i].qs + 32 * c));
            __m256i h = c ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                          : _mm256_permute2x128_si256(sc16, sc16, 0x00);

            for (k = 0; k < 4; k++) {
                __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
                __m256i hb = _mm256_and_si256(
                    _mm256_srli_epi16(hm, 4 * c + k), one);
                __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256(
                    (const __m256i *) (q8 + 128 * c + 32 * k)));

                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p,
                                                    st_scale_pair(h, k)));
            }
        }
        isum = st_hsum_epi32(acc) - 4 * st_hsum_epi32(_mm256_madd_epi16(
                   _mm256_loadu_si256((const __m256i *) y[i].bsums), sc16));
        d = y[i].d * st_f16_load(x[i].d);
        sum += d * (float) isum;
    }
    *s = sum;
}


static void
st_vec_dot_iq4_xs_avx2(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_iq4_xs *x = vx;
    const st_block_q8_K   *y = vy;
    int64_t                nb = n / ST_QK_K, i;
    const __m256i          grid = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *) st_iq4nl_values));
    int                    j, ls;
    float                  d, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        __m256i acc = _mm256_setzero_si256();

        for (j = 0; j < ST_QK_K / 32; j++) {
            __m256i v = _mm256_shuffle_epi8(grid,
                                            st_q4_0_unpack(x[i].qs + 16 * j));
            __m256i q8 = _mm256_loadu_si256(
                (const __m256i *) (y[i].qs + 32 * j));
            /* int16 pair sums (|.| <= 2 * 127 * 127), then times the
             * sub-block scale into int32: exact */
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v),
                                             _mm256_sign_epi8(q8, v));

            ls = (((x[i].scales_l[j / 2] >> (4 * (j % 2))) & 0xf)
                  | ((x[i].scales_h >> (2 * j)) & 3) << 4) - 32;
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p,
                                            _mm256_set1_epi16((short) ls)));
        }
        d = st_f16_load(x[i].d) * y[i].d;
        sum += d * (float) st_hsum_epi32(acc);
    }
    *s = sum;
}


/* Q8_1 as st_from_float_q8_1: q8_0's quants, s = f16(d * sum of the
 * rounded int32 values). */
static void
st_from_float_q8_1_avx2(const float *x, void *vy, int64_t n)
{
    st_block_q8_1 *y = vy;
    int64_t        nb = n / ST_QK8_1, i;
    const __m256   sign = _mm256_set1_ps(-0.0f);

    for (i = 0; i < nb; i++) {
        const float *xb = x + i * ST_QK8_1;
        __m256       v0 = _mm256_loadu_ps(xb);
        __m256       v1 = _mm256_loadu_ps(xb + 8);
        __m256       v2 = _mm256_loadu_ps(xb + 16);
        __m256       v3 = _mm256_loadu_ps(xb + 24);
        __m256       mx;
        __m256i      i0, i1, i2, i3;
        float        amax, d, id;

        mx = _mm256_andnot_ps(sign, v0);
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v1));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v2));
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v3));
        amax = st_hmax_ps(mx);
        d = amax / 127.f;
        y[i].d = st_f32_to_f16(d);
        id = (amax != 0.0f) ? 127.f / amax : 0.0f;

        mx = _mm256_set1_ps(id);
        i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mx), ST_RNE));
        i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mx), ST_RNE));
        i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mx), ST_RNE));
        i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mx), ST_RNE));
        y[i].s = st_f32_to_f16(d * (float) st_hsum_epi32(_mm256_add_epi32(
                     _mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3))));
        _mm256_storeu_si256((__m256i *) y[i].qs,
                            st_pack_i32x32(i0, i1, i2, i3));
    }
}


st_vec_dot_fn
st_cpu_avx2_vec_dot(st_type wtype)
{
    switch (wtype) {
    case ST_TYPE_F32:  return st_vec_dot_f32_avx2;
    case ST_TYPE_F16:  return st_vec_dot_f16_avx2;
    case ST_TYPE_BF16: return st_vec_dot_bf16_avx2;
    case ST_TYPE_Q8_0: return st_vec_dot_q8_0_avx2;
    case ST_TYPE_Q4_0: return st_vec_dot_q4_0_avx2;
    case ST_TYPE_Q4_K: return st_vec_dot_q4_K_avx2;
    case ST_TYPE_Q5_K: return st_vec_dot_q5_K_avx2;
    case ST_TYPE_Q6_K: return st_vec_dot_q6_K_avx2;
    case ST_TYPE_Q4_1: return st_vec_dot_q4_1_avx2;
    case ST_TYPE_Q5_0: return st_vec_dot_q5_0_avx2;
    case ST_TYPE_Q5_1: return st_vec_dot_q5_1_avx2;
    case ST_TYPE_Q2_K: return st_vec_dot_q2_K_avx2;
    case ST_TYPE_Q3_K: return st_vec_dot_q3_K_avx2;
    case ST_TYPE_IQ4_NL: return st_vec_dot_iq4_nl_avx2;
    case ST_TYPE_IQ4_XS: return st_vec_dot_iq4_xs_avx2;
    default:           return NULL;
    }
}


st_from_float_fn
st_cpu_avx2_from_float(st_type vdtype)
{
    switch (vdtype) {
    case ST_TYPE_F32:  return st_from_float_f32_avx2;
    case ST_TYPE_F16:  return st_from_float_f16_avx2;
    case ST_TYPE_BF16: return st_from_float_bf16_avx2;
    case ST_TYPE_Q8_0: return st_from_float_q8_0_avx2;
    case ST_TYPE_Q8_K: return st_from_float_q8_K_avx2;
    case ST_TYPE_Q8_1: return st_from_float_q8_1_avx2;
    default:           return NULL;
    }
}


/* ------------------------------------------------------------ vec_f16.h */

#include "backend/cpu/vec_f16.h"

#define ST_F16_RT(v) _mm256_cvtph_ps(_mm256_cvtps_ph((v), \
                                                     _MM_FROUND_TO_NEAREST_INT))

void
st_vec_f16_round_avx2(const float *x, float *y, int64_t n)
{
    int64_t i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, ST_F16_RT(_mm256_loadu_ps(x + i)));
    }
    for (; i < n; i++) {
        y[i] = st_f16_load(st_f32_to_f16(x[i]));
    }
}


void
st_vec_f16_scale_round_avx2(float *acc, float s, int64_t n)
{
    __m256  vs = _mm256_set1_ps(s);
    int64_t i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(acc + i,
                         ST_F16_RT(_mm256_mul_ps(_mm256_loadu_ps(acc + i),
                                                 vs)));
    }
    for (; i < n; i++) {
        acc[i] = st_f16_load(st_f32_to_f16(acc[i] * s));
    }
}


void
st_vec_f16_mad_round_avx2(float *acc, const st_f16 *v, float s, int64_t n)
{
    __m256  vs = _mm256_set1_ps(s);
    int64_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (v + i)));
        _mm256_storeu_ps(acc + i,
                         ST_F16_RT(_mm256_fmadd_ps(vv, vs,
                                                   _mm256_loadu_ps(acc + i))));
    }
    for (; i < n; i++) {
        /* scalar FMA (compiled with -mfma): one rounding, like fmaf */
        __m128 r = _mm_fmadd_ss(_mm_set_ss(st_f16_load(v[i])), _mm_set_ss(s),
                                _mm_set_ss(acc[i]));
        acc[i] = st_f16_load(st_f32_to_f16(_mm_cvtss_f32(r)));
    }
}


double
st_vec_dot_f16_f32_d_avx2(int64_t n, const st_f16 *k, const float *q)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    __m128d t;
    double  sum;
    int64_t i = 0;

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
        sum += (double) (st_f16_load(k[i]) * q[i]);
    }
    return sum;
}
