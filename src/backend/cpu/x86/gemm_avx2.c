/*
 * AVX2 GEMM microkernels (kernels.h): 2 weight rows x 2 activation rows
 * per tile, each output element BIT-IDENTICAL to the AVX2 vec_dot of the
 * same type (kernels_avx2.c): the same accumulators updated by the same
 * operations in the same order, the same final reduction; the tile only
 * shares loads and the weight-side preparation.
 *
 * Integer lane sums may be formed differently when they stay exact:
 * vec_dot Q8_0 takes maddubs(|x|, sign(y, x)) then madd with ones; here
 * |x| (the weight side) is computed once per block for both activation
 * rows. Types without a kernel here (BF16, K-quants) use vec_dot per
 * element.
 *
 * Q4_1, Q5_0, Q5_1, IQ4_NL: 2 weight rows x 4 activation rows; every
 * element is the scalar accumulator of x86/quant32_avx2.h's vec_dot,
 * stepped by the same functions; the tile unpacks each weight block once
 * for its 4 activation rows.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/quant32_avx2.h"

#include <immintrin.h>

#define ST_INLINE static inline __attribute__((always_inline))

/* 16 ymm registers: 2 x 2 tiles */
#define ST_A2_NW  2
#define ST_A2_NA  2


ST_INLINE float
st_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}


ST_INLINE float
st_f16_load(st_f16 h)
{
    return _cvtsh_ss(h);
}


/* ------------------------------------------------------------ Q8_0 / Q4_0 */

/* Block i of the weight rows as signed bytes: Q8_0 as stored, Q4_0 as
 * nibble - 8 (kernels_avx2.c's unpacking). */
ST_INLINE __m256i
st_a2_wbytes(int q4, const void *row, int64_t i, float *d)
{
    if (q4) {
        const st_block_q4_0 *x = (const st_block_q4_0 *) row + i;
        __m128i t = _mm_loadu_si128((const __m128i *) x->qs);
        __m256i b = _mm256_and_si256(
                        _mm256_set_m128i(_mm_srli_epi16(t, 4), t),
                        _mm256_set1_epi8(0x0f));

        *d = st_f16_load(x->d);
        return _mm256_sub_epi8(b, _mm256_set1_epi8(8));
    } else {
        const st_block_q8_0 *x = (const st_block_q8_0 *) row + i;

        *d = st_f16_load(x->d);
        return _mm256_loadu_si256((const __m256i *) x->qs);
    }
}


/* Block i of every pair: acc = fma(set1(dx * dy), lanesum, acc). */
ST_INLINE void
st_a2_q_block(int q4, const void *const *w, const st_block_q8_0 *const *a,
    int64_t i, __m256 *acc)
{
    __m256i ax[ST_A2_NW], xs[ST_A2_NW];
    float   dx[ST_A2_NW];
    int     o, r;

#pragma GCC unroll 4
    for (o = 0; o < ST_A2_NW; o++) {
        xs[o] = st_a2_wbytes(q4, w[o], i, &dx[o]);
        ax[o] = _mm256_sign_epi8(xs[o], xs[o]);
    }
#pragma GCC unroll 4
    for (r = 0; r < ST_A2_NA; r++) {
        __m256i y = _mm256_loadu_si256((const __m256i *) a[r][i].qs);
        float   dy = st_f16_load(a[r][i].d);

#pragma GCC unroll 4
        for (o = 0; o < ST_A2_NW; o++) {
            __m256i p = _mm256_madd_epi16(
                _mm256_maddubs_epi16(ax[o], _mm256_sign_epi8(y, xs[o])),
                _mm256_set1_epi16(1));

            acc[o * ST_A2_NA + r] = _mm256_fmadd_ps(_mm256_set1_ps(dx[o] * dy),
                _mm256_cvtepi32_ps(p), acc[o * ST_A2_NA + r]);
        }
    }
}


/* vec_dot Q8_0 / Q4_0 (AVX2): even blocks into a0, odd into a1, a last
 * single block into a0; hsum(a0 + a1). */
ST_INLINE void
st_a2_q_tile(int q4, int64_t n, float *out, size_t out_stride,
    const void *vw, size_t w_stride, const void *va, size_t a_stride)
{
    const void          *w[ST_A2_NW];
    const st_block_q8_0 *a[ST_A2_NA];
    __m256               a0[ST_A2_NW * ST_A2_NA], a1[ST_A2_NW * ST_A2_NA];
    int64_t              nb = n / 32, i = 0;
    int                  o, r;

    for (o = 0; o < ST_A2_NW; o++) {
        w[o] = (const uint8_t *) vw + (size_t) o * w_stride;
    }
    for (r = 0; r < ST_A2_NA; r++) {
        a[r] = (const st_block_q8_0 *) ((const uint8_t *) va
                                        + (size_t) r * a_stride);
    }
#pragma GCC unroll 8
    for (o = 0; o < ST_A2_NW * ST_A2_NA; o++) {
        a0[o] = _mm256_setzero_ps();
        a1[o] = _mm256_setzero_ps();
    }
    for (; i + 2 <= nb; i += 2) {
        st_a2_q_block(q4, w, a, i, a0);
        st_a2_q_block(q4, w, a, i + 1, a1);
    }
    for (; i < nb; i++) {
        st_a2_q_block(q4, w, a, i, a0);
    }
    for (o = 0; o < ST_A2_NW; o++) {
        for (r = 0; r < ST_A2_NA; r++) {
            out[(size_t) r * out_stride + o] = st_hsum_ps(
                _mm256_add_ps(a0[o * ST_A2_NA + r], a1[o * ST_A2_NA + r]));
        }
    }
}


/* ------------------------------------------------------------ F32 / F16 */

ST_INLINE __m256
st_ld8(int h, const void *p, int64_t i)
{
    if (h) {
        return _mm256_cvtph_ps(_mm_loadu_si128(
                   (const __m128i *) ((const st_f16 *) p + i)));
    }
    return _mm256_loadu_ps((const float *) p + i);
}


ST_INLINE float
st_ld1(int h, const void *p, int64_t i)
{
    return h ? st_f16_load(((const st_f16 *) p)[i]) : ((const float *) p)[i];
}


/* vec_dot F32 / F16 (AVX2): a0..a3 over 32-value steps (a_k takes values
 * 8k..8k+7 of each step), 8-value steps into a0, hsum((a0 + a1) + (a2 +
 * a3)), then the last n % 8 products added one by one. Four
 * accumulators for four elements do not fit 16 registers, so a0/a1 and
 * a2/a3 are two passes over the rows (each accumulator's own sequence is
 * unchanged). */
ST_INLINE void
st_a2_f_tile(int h, int64_t n, float *out, size_t out_stride,
    const void *vw, size_t w_stride, const void *va, size_t a_stride)
{
    const void *w[ST_A2_NW], *a[ST_A2_NA];
    __m256      acc[2][ST_A2_NW * ST_A2_NA][2];
    int64_t     i, n32 = n / 32 * 32, k;
    int         o, r, pass, j;

    for (o = 0; o < ST_A2_NW; o++) {
        w[o] = (const uint8_t *) vw + (size_t) o * w_stride;
    }
    for (r = 0; r < ST_A2_NA; r++) {
        a[r] = (const uint8_t *) va + (size_t) r * a_stride;
    }
    for (pass = 0; pass < 2; pass++) {
        __m256 c[ST_A2_NW * ST_A2_NA][2];

#pragma GCC unroll 8
        for (o = 0; o < ST_A2_NW * ST_A2_NA; o++) {
            c[o][0] = _mm256_setzero_ps();
            c[o][1] = _mm256_setzero_ps();
        }
        for (i = 0; i < n32; i += 32) {
#pragma GCC unroll 2
            for (j = 0; j < 2; j++) {
                int64_t off = i + 8 * (2 * pass + j);
                __m256  wv[ST_A2_NW];

#pragma GCC unroll 4
                for (o = 0; o < ST_A2_NW; o++) {
                    wv[o] = st_ld8(h, w[o], off);
                }
#pragma GCC unroll 4
                for (r = 0; r < ST_A2_NA; r++) {
                    __m256 av = st_ld8(h, a[r], off);

#pragma GCC unroll 4
                    for (o = 0; o < ST_A2_NW; o++) {
                        c[o * ST_A2_NA + r][j] = _mm256_fmadd_ps(wv[o], av,
                            c[o * ST_A2_NA + r][j]);
                    }
                }
            }
        }
        if (pass == 0) {
            for (i = n32; i + 8 <= n; i += 8) {
#pragma GCC unroll 4
                for (o = 0; o < ST_A2_NW; o++) {
#pragma GCC unroll 4
                    for (r = 0; r < ST_A2_NA; r++) {
                        c[o * ST_A2_NA + r][0] = _mm256_fmadd_ps(
                            st_ld8(h, w[o], i), st_ld8(h, a[r], i),
                            c[o * ST_A2_NA + r][0]);
                    }
                }
            }
        }
#pragma GCC unroll 8
        for (o = 0; o < ST_A2_NW * ST_A2_NA; o++) {
            acc[pass][o][0] = c[o][0];
            acc[pass][o][1] = c[o][1];
        }
    }
    k = n32 + (n - n32) / 8 * 8;         /* first value of the scalar tail */
    for (o = 0; o < ST_A2_NW; o++) {
        for (r = 0; r < ST_A2_NA; r++) {
            int    e = o * ST_A2_NA + r;
            float  sum = st_hsum_ps(
                _mm256_add_ps(_mm256_add_ps(acc[0][e][0], acc[0][e][1]),
                              _mm256_add_ps(acc[1][e][0], acc[1][e][1])));

            for (i = k; i < n; i++) {
                sum += st_ld1(h, w[o], i) * st_ld1(h, a[r], i);
            }
            out[(size_t) r * out_stride + o] = sum;
        }
    }
}


/* kind: 0 Q8_0, 1 Q4_0, 2 F32, 3 F16 */
ST_INLINE void
st_a2_gemm(int kind, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + ST_A2_NA <= g->n_a; r0 += ST_A2_NA) {
        float      *out = g->out + (size_t) r0 * g->out_stride;
        const void *a = (const uint8_t *) g->a + (size_t) r0 * g->a_stride;

        if (kind < 2) {
            st_a2_q_tile(kind, g->n, out, g->out_stride, g->w, g->w_stride,
                         a, g->a_stride);
        } else {
            st_a2_f_tile(kind - 2, g->n, out, g->out_stride, g->w,
                         g->w_stride, a, g->a_stride);
        }
    }
}


static void
st_gemm_q8_0_avx2(const st_gemm_args *g)
{
    st_a2_gemm(0, g);
}


static void
st_gemm_q4_0_avx2(const st_gemm_args *g)
{
    st_a2_gemm(1, g);
}


static void
st_gemm_f32_avx2(const st_gemm_args *g)
{
    st_a2_gemm(2, g);
}


static void
st_gemm_f16_avx2(const st_gemm_args *g)
{
    st_a2_gemm(3, g);
}


static st_gemm_kernel
st_cpu_avx2_gemm_a2(st_type wtype)
{
    st_gemm_kernel k = { NULL, ST_A2_NW, ST_A2_NA, INT64_MAX, 0 };

    switch (wtype) {
    case ST_TYPE_Q8_0: k.fn = st_gemm_q8_0_avx2; break;
    case ST_TYPE_Q4_0: k.fn = st_gemm_q4_0_avx2; break;
    case ST_TYPE_F32:  k.fn = st_gemm_f32_avx2;  break;
    case ST_TYPE_F16:  k.fn = st_gemm_f16_avx2;  break;
    default:           k.nw = k.na = 0;          break;
    }
    return k;
}


/* ------------------------------------------------------------ Q4_1 .. IQ4_NL */

#define ST_Q32_NW  2
#define ST_Q32_NA  4

ST_INLINE void
st_q32_tile(st_q32_kind kind, int64_t n, float *out, size_t out_stride,
    const void *vw, size_t w_stride, const void *va, size_t a_stride)
{
    const void *w[ST_Q32_NW], *a[ST_Q32_NA];
    float       sum[ST_Q32_NW][ST_Q32_NA];
    int64_t     nb = n / 32, i = 0;
    int         o, r;

    for (o = 0; o < ST_Q32_NW; o++) {
        w[o] = (const uint8_t *) vw + (size_t) o * w_stride;
        for (r = 0; r < ST_Q32_NA; r++) {
            sum[o][r] = 0.0f;
        }
    }
    for (r = 0; r < ST_Q32_NA; r++) {
        a[r] = (const uint8_t *) va + (size_t) r * a_stride;
    }
    for (; i + 4 <= nb; i += 4) {
        for (o = 0; o < ST_Q32_NW; o++) {
            __m256i u[4], sgn[4];
            __m128  dx, mx;

            st_q32_unpack4(kind, w[o], i, u, sgn, &dx, &mx);
#pragma GCC unroll 4
            for (r = 0; r < ST_Q32_NA; r++) {
                sum[o][r] = st_q32_step4(kind, sum[o][r], u, sgn, dx, mx,
                                         a[r], i);
            }
        }
    }
    for (; i < nb; i++) {
        for (o = 0; o < ST_Q32_NW; o++) {
            for (r = 0; r < ST_Q32_NA; r++) {
                sum[o][r] = st_q32_step1(kind, sum[o][r], w[o], a[r], i);
            }
        }
    }
    for (o = 0; o < ST_Q32_NW; o++) {
        for (r = 0; r < ST_Q32_NA; r++) {
            out[(size_t) r * out_stride + o] = sum[o][r];
        }
    }
}


ST_INLINE void
st_q32_gemm(st_q32_kind kind, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + ST_Q32_NA <= g->n_a; r0 += ST_Q32_NA) {
        st_q32_tile(kind, g->n, g->out + (size_t) r0 * g->out_stride,
                    g->out_stride, g->w, g->w_stride,
                    (const uint8_t *) g->a + (size_t) r0 * g->a_stride,
                    g->a_stride);
    }
}


static void
st_gemm_q4_1_avx2(const st_gemm_args *g)
{
    st_q32_gemm(ST_Q32_Q4_1, g);
}


static void
st_gemm_q5_0_avx2(const st_gemm_args *g)
{
    st_q32_gemm(ST_Q32_Q5_0, g);
}


static void
st_gemm_q5_1_avx2(const st_gemm_args *g)
{
    st_q32_gemm(ST_Q32_Q5_1, g);
}


static void
st_gemm_iq4_nl_avx2(const st_gemm_args *g)
{
    st_q32_gemm(ST_Q32_IQ4_NL, g);
}


st_gemm_kernel
st_cpu_avx2_gemm(st_type wtype)
{
    st_gemm_kernel q32 = { NULL, ST_Q32_NW, ST_Q32_NA, INT64_MAX, 0 };

    switch (wtype) {
    case ST_TYPE_Q4_1:   q32.fn = st_gemm_q4_1_avx2;   return q32;
    case ST_TYPE_Q5_0:   q32.fn = st_gemm_q5_0_avx2;   return q32;
    case ST_TYPE_Q5_1:   q32.fn = st_gemm_q5_1_avx2;   return q32;
    case ST_TYPE_IQ4_NL: q32.fn = st_gemm_iq4_nl_avx2; return q32;
    default:             return st_cpu_avx2_gemm_a2(wtype);
    }
}
