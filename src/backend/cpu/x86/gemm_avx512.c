/*
 * AVX-512 GEMM microkernels: a tile of NW weight rows x NA activation
 * rows per call, each output element BIT-IDENTICAL to the AVX-512
 * vec_dot of the same type (kernels_avx512.c).
 *
 * How: every output element keeps its own accumulators, updated by the
 * same operations on the same lane values in the same order as in
 * vec_dot, and reduced the same way at the end; the tile only shares the
 * loads and the per-block preparation (weight unpacking, scales) between
 * elements. Integer partial sums may be formed differently as long as
 * each int32 lane ends with the same exact value (no rounding happens in
 * integer arithmetic):
 *   vec_dot Q8_0: dpbusd(0, |w|, sign(w) * a)
 *   here:         dpbusd(-128 * sum4(a), w ^ 0x80, a)    (w + 128 >= 0)
 *   vec_dot Q5_0: dpbusd(0, q, a) - dpbusd(0, 16, a)
 *   here:         dpbusd(-dpbusd(0, 16, a), q, a)
 * which saves the per-pair sign fix-up: the 4-product lane sums are
 * identical integers.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/hsum_avx512.h"
#include "backend/cpu/x86/quant32_avx2.h"

#include <immintrin.h>
#include <string.h>

#define ST_INLINE static inline __attribute__((always_inline))

/* tile of Q8_0, Q5_0: 4 weight rows x 4 activation rows, two elements
 * per zmm accumulator (ST_Q_NP activation-row pairs) */
#define ST_Q_NW  4
#define ST_Q_NA  4
#define ST_Q_NP  (ST_Q_NA / 2)
/* float kernels keep 4 accumulators per element: 2 x 2 */
#define ST_F_NW  2
#define ST_F_NA  2



ST_INLINE float
st_f16_load(st_f16 h)
{
    return _cvtsh_ss(h);
}


ST_INLINE __m512
st_scales2(float lo, float hi)
{
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}


ST_INLINE __m512i
st_load2x256(const void *lo, const void *hi)
{
    return _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) lo)),
        _mm256_loadu_si256((const __m256i *) hi), 1);
}


/* vec_dot's signed x signed dot (kernels_avx512.c), for the odd tail */
ST_INLINE __m512i
st_dot_i8_64(__m512i x, __m512i y)
{
    __mmask64 neg = _mm512_movepi8_mask(x);
    __m512i   ax = _mm512_abs_epi8(x);
    __m512i   sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
}


/* ----------------------------------------------- Q8_0 / Q5_0
 * (Q4_0 and IQ4_NL have their own order and kernel: gemm_q4_0_avx512.c) */

/* vec_dot keeps one 8-lane accumulator per dot (ggml's order,
 * quant_ref.c). Here a zmm holds two of them, the elements of activation
 * rows r (low half) and r + 1 (high half) for one weight row: every lane
 * sees the same fma steps on the same values as in vec_dot, and the two
 * halves are reduced by the tree of hsum_float_8. */

/* the weight kinds of the tile, and the constant c of u = w + c */
enum { ST_Q_Q8_0, ST_Q_Q5_0 };

ST_INLINE char
st_q_offset(int kind)
{
    return kind == ST_Q_Q5_0 ? 16 : (char) 0x80;
}


/* Weight rows prepared once per call, shared by all activation rows:
 * every block's 32 values as u8 u = w + c (Q8_0: w ^ 0x80 =
 * w + 128; Q5_0: the 5-bit values 0..31, in
 * value order), and its scale as f32. */
typedef struct {
    uint8_t  q[ST_Q_NW][ST_GEMM_N_MAX];
    float    d[ST_Q_NW][ST_GEMM_N_MAX / 32];
} st_q_wprep;


ST_INLINE void
st_q_prepare(int kind, const void *vw, size_t w_stride, int64_t nb,
    st_q_wprep *wp)
{
    int64_t i;
    int     o;

    for (o = 0; o < ST_Q_NW; o++) {
        const uint8_t *row = (const uint8_t *) vw + (size_t) o * w_stride;

        for (i = 0; i < nb; i++) {
            __m256i u;
            st_f16  d;

            if (kind == ST_Q_Q5_0) {
                const st_block_q5_0 *x = (const st_block_q5_0 *) row + i;

                u = st_q32_q5_values(x->qs, x->qh);
                d = x->d;
            } else {
                const st_block_q8_0 *x = (const st_block_q8_0 *) row + i;

                u = _mm256_xor_si256(
                        _mm256_loadu_si256((const __m256i *) x->qs),
                        _mm256_set1_epi8((char) 0x80));
                d = x->d;
            }
            _mm256_storeu_si256((__m256i *) (wp->q[o] + 32 * i), u);
            wp->d[o][i] = st_f16_load(d);
        }
    }
}


/* hsum_float_8 of both halves: lane 0 and lane 8 of the result */
ST_INLINE __m512
st_hsum2x8(__m512 v)
{
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
}


/* A tile: weight rows 0..NW-1 x activation rows r0 .. r0 + NA - 1. */
ST_INLINE void
st_gemm_q_tile(int kind, const st_gemm_args *g, const st_q_wprep *wp,
    int64_t r0, int64_t nb)
{
    const st_block_q8_0 *a[ST_Q_NA];
    const float         *as[ST_Q_NA];
    __m512               acc[ST_Q_NW * ST_Q_NP];
    int64_t              i;
    int                  o, p, r;

    for (r = 0; r < ST_Q_NA; r++) {
        a[r] = (const st_block_q8_0 *) ((const uint8_t *) g->a
                                        + (size_t) (r0 + r) * g->a_stride);
        as[r] = g->a_scales + (size_t) (r0 + r) * g->as_stride;
    }
#pragma GCC unroll 16
    for (o = 0; o < ST_Q_NW * ST_Q_NP; o++) {
        acc[o] = _mm512_setzero_ps();
    }
    for (i = 0; i < nb; i++) {
        __m512i ay[ST_Q_NP], corr[ST_Q_NP];
        __m512  ad[ST_Q_NP];

#pragma GCC unroll 4
        for (p = 0; p < ST_Q_NP; p++) {
            ay[p] = _mm512_inserti64x4(
                _mm512_castsi256_si512(
                    _mm256_loadu_si256((const __m256i *) a[2 * p][i].qs)),
                _mm256_loadu_si256((const __m256i *) a[2 * p + 1][i].qs), 1);
            /* lane = dpbusd(-c * sum4(a), u, a) with u = w + c */
            corr[p] = _mm512_sub_epi32(_mm512_setzero_si512(),
                          _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                              _mm512_set1_epi8(st_q_offset(kind)), ay[p]));
            ad[p] = _mm512_insertf32x8(_mm512_set1_ps(as[2 * p][i]),
                                       _mm256_set1_ps(as[2 * p + 1][i]), 1);
        }
#pragma GCC unroll 8
        for (o = 0; o < ST_Q_NW; o++) {
            __m512i wq = _mm512_broadcast_i64x4(
                             _mm256_loadu_si256(
                                 (const __m256i *) (wp->q[o] + 32 * i)));
            __m512  wd = _mm512_set1_ps(wp->d[o][i]);

#pragma GCC unroll 4
            for (p = 0; p < ST_Q_NP; p++) {
                __m512i l = _mm512_dpbusd_epi32(corr[p], wq, ay[p]);

                acc[o * ST_Q_NP + p] = _mm512_fmadd_ps(
                    _mm512_mul_ps(wd, ad[p]), _mm512_cvtepi32_ps(l),
                    acc[o * ST_Q_NP + p]);
            }
        }
    }
    for (o = 0; o < ST_Q_NW; o++) {
        for (p = 0; p < ST_Q_NP; p++) {
            float f[16];

            _mm512_storeu_ps(f, st_hsum2x8(acc[o * ST_Q_NP + p]));
            g->out[(size_t) (r0 + 2 * p) * g->out_stride + o] = f[0];
            g->out[(size_t) (r0 + 2 * p + 1) * g->out_stride + o] = f[8];
        }
    }
}


ST_INLINE void
st_gemm_q(int kind, const st_gemm_args *g)
{
    st_q_wprep wp;
    int64_t    nb = g->n / 32, r0;

    st_q_prepare(kind, g->w, g->w_stride, nb, &wp);
    for (r0 = 0; r0 + ST_Q_NA <= g->n_a; r0 += ST_Q_NA) {
        st_gemm_q_tile(kind, g, &wp, r0, nb);
    }
}


static void
st_gemm_q8_0_avx512(const st_gemm_args *g)
{
    st_gemm_q(ST_Q_Q8_0, g);
}


static void
st_gemm_q5_0_avx512(const st_gemm_args *g)
{
    st_gemm_q(ST_Q_Q5_0, g);
}


/* ------------------------------------------------------------ decode GEMV */

/* Fewer activation rows than a tile's ST_Q_NA (decode): 8 weight rows x
 * 1 activation row, two weight rows per zmm (row 2p in the low half, row
 * 2p + 1 in the high half), each half the 8-lane chain of its own
 * vec_dot, stepped with the same values in the same order: 4 chains
 * where vec_dot has one, and the activation block, its correction and
 * the 8 scales formed once for all 8 rows. The weights are read once,
 * so they are unpacked inline (the tile's staging would not pay). */
#define ST_V_NW  8

/* u = w + c of block i of rows a (low half) and b (high half) */
ST_INLINE __m512i
st_v_weights(int kind, const uint8_t *ra, const uint8_t *rb, int64_t i)
{
    if (kind == ST_Q_Q8_0) {
        const st_block_q8_0 *xa = (const st_block_q8_0 *) ra + i;
        const st_block_q8_0 *xb = (const st_block_q8_0 *) rb + i;

        return _mm512_xor_si512(st_load2x256(xa->qs, xb->qs),
                                _mm512_set1_epi8((char) 0x80));
    } else {
        /* Q5_0: 16 bytes of nibbles of each row, low nibbles = values
         * 0..15 */
        size_t         bs = sizeof(st_block_q5_0);
        size_t         qo = 6;
        const uint8_t *xa = ra + (size_t) i * bs, *xb = rb + (size_t) i * bs;
        __m512i        v = _mm512_inserti64x4(
                               _mm512_castsi256_si512(
                                   _mm256_broadcastsi128_si256(
                                       _mm_loadu_si128((const __m128i *)
                                                       (xa + qo)))),
                               _mm256_broadcastsi128_si256(
                                   _mm_loadu_si128((const __m128i *)
                                                   (xb + qo))), 1);

        v = _mm512_and_si512(
                _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4,
                                                       0, 0, 4, 4)),
                _mm512_set1_epi8(0x0f));
        if (kind == ST_Q_Q5_0) {
            uint32_t ha, hb;

            memcpy(&ha, xa + 2, 4);
            memcpy(&hb, xb + 2, 4);
            /* bit j of qh is the 5th bit of value j */
            v = _mm512_mask_add_epi8(v, (__mmask64) ha
                                        | (__mmask64) hb << 32,
                                     v, _mm512_set1_epi8(16));
        }
        return v;
    }
}


ST_INLINE void
st_gemv_q_row(int kind, const st_gemm_args *g, int64_t r)
{
    const st_block_q8_0 *a = (const st_block_q8_0 *) ((const uint8_t *) g->a
                             + (size_t) r * g->a_stride);
    const float         *as = g->a_scales + (size_t) r * g->as_stride;
    size_t               bs = kind == ST_Q_Q8_0 ? sizeof(st_block_q8_0)
                                                : sizeof(st_block_q5_0);
    const uint8_t       *w[ST_V_NW];
    __m512               acc[ST_V_NW / 2];
    __m512i              pidx[ST_V_NW / 2];
    int64_t              nb = g->n / 32, i;
    int                  o, p;

    for (o = 0; o < ST_V_NW; o++) {
        w[o] = (const uint8_t *) g->w + (size_t) o * g->w_stride;
    }
    for (p = 0; p < ST_V_NW / 2; p++) {
        acc[p] = _mm512_setzero_ps();
        pidx[p] = _mm512_inserti64x4(_mm512_set1_epi32(2 * p),
                                     _mm256_set1_epi32(2 * p + 1), 1);
    }
    /* the next call's 8 rows follow these (st_prefetch_part) */
    const char          *nx = (const char *) g->w
                              + (size_t) ST_V_NW * g->w_stride;
    for (i = 0; i < nb; i++) {
        __m512i y = _mm512_broadcast_i64x4(
                        _mm256_loadu_si256((const __m256i *) a[i].qs));
        /* lane = dpbusd(-c * sum4(y), u, y) with u = w + c */
        __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(),
                           _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                               _mm512_set1_epi8(st_q_offset(kind)), y));
        st_f16  h[ST_V_NW];
        __m512  dv;
        if (r == 0) {
            st_prefetch_part(nx, (size_t) ST_V_NW * g->w_stride, i, nb);
        }

#pragma GCC unroll 8
        for (o = 0; o < ST_V_NW; o++) {
            memcpy(&h[o], w[o] + (size_t) i * bs, sizeof(st_f16));
        }
        /* the products d_x * d_y of the 8 rows, as vec_dot's */
        dv = _mm512_castps256_ps512(_mm256_mul_ps(
                 _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) h)),
                 _mm256_set1_ps(as[i])));
#pragma GCC unroll 4
        for (p = 0; p < ST_V_NW / 2; p++) {
            __m512i l = _mm512_dpbusd_epi32(corr,
                            st_v_weights(kind, w[2 * p], w[2 * p + 1], i), y);

            acc[p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(pidx[p], dv),
                                     _mm512_cvtepi32_ps(l), acc[p]);
        }
    }
    for (p = 0; p < ST_V_NW / 2; p++) {
        float f[16];

        _mm512_storeu_ps(f, st_hsum2x8(acc[p]));
        g->out[(size_t) r * g->out_stride + 2 * p] = f[0];
        g->out[(size_t) r * g->out_stride + 2 * p + 1] = f[8];
    }
}


ST_INLINE void
st_gemv_q(int kind, const st_gemm_args *g)
{
    int64_t r;

    for (r = 0; r < g->n_a; r++) {
        st_gemv_q_row(kind, g, r);
    }
}


static void
st_gemv_q8_0_avx512(const st_gemm_args *g)
{
    st_gemv_q(ST_Q_Q8_0, g);
}


static void
st_gemv_q5_0_avx512(const st_gemm_args *g)
{
    st_gemv_q(ST_Q_Q5_0, g);
}


st_gemm_kernel
st_cpu_avx512_gemv(st_type wtype)
{
    st_gemm_kernel k = { NULL, ST_V_NW, 1, INT64_MAX, ST_GEMM_A_SCALES };

    switch (wtype) {
    case ST_TYPE_Q8_0:   k.fn = st_gemv_q8_0_avx512;   break;
    case ST_TYPE_Q5_0:   k.fn = st_gemv_q5_0_avx512;   break;
    default:             k.nw = k.na = 0;              break;
    }
    return k;
}


/* ------------------------------------------------------------ F32 */

/* 16 values of a float row as f32: F32 (h = 0) or F16 (h = 1) */
ST_INLINE __m512
st_ld16(int h, const void *p, int64_t i)
{
    if (h) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(
                   (const __m256i *) ((const st_f16 *) p + i)));
    }
    return _mm512_loadu_ps((const float *) p + i);
}


ST_INLINE __m512
st_ld16_mask(int h, const void *p, int64_t i, __mmask16 m)
{
    if (h) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m,
                   (const st_f16 *) p + i));
    }
    return _mm512_maskz_loadu_ps(m, (const float *) p + i);
}


/* vec_dot F32 / F16: 4 accumulators over 64-value steps, then 16-value
 * steps into a0, a masked tail into a1, reduce((a0 + a1) + (a2 + a3)). */
ST_INLINE void
st_gemm_fh_tile(int h, int64_t n, float *out, size_t out_stride,
    const void *vw, size_t w_stride, const void *va, size_t a_stride)
{
    const void *w[ST_F_NW], *a[ST_F_NA];
    __m512      acc[ST_F_NW * ST_F_NA][4];
    int64_t     i = 0;
    int         o, r, k;

    for (o = 0; o < ST_F_NW; o++) {
        w[o] = (const uint8_t *) vw + (size_t) o * w_stride;
    }
    for (r = 0; r < ST_F_NA; r++) {
        a[r] = (const uint8_t *) va + (size_t) r * a_stride;
    }
#pragma GCC unroll 16
    for (o = 0; o < ST_F_NW * ST_F_NA; o++) {
#pragma GCC unroll 4
        for (k = 0; k < 4; k++) {
            acc[o][k] = _mm512_setzero_ps();
        }
    }
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 4
        for (k = 0; k < 4; k++) {
            __m512 wv[ST_F_NW], av[ST_F_NA];

#pragma GCC unroll 4
            for (o = 0; o < ST_F_NW; o++) {
                wv[o] = st_ld16(h, w[o], i + 16 * k);
            }
#pragma GCC unroll 4
            for (r = 0; r < ST_F_NA; r++) {
                av[r] = st_ld16(h, a[r], i + 16 * k);
            }
#pragma GCC unroll 4
            for (o = 0; o < ST_F_NW; o++) {
#pragma GCC unroll 4
                for (r = 0; r < ST_F_NA; r++) {
                    acc[o * ST_F_NA + r][k] = _mm512_fmadd_ps(wv[o], av[r],
                        acc[o * ST_F_NA + r][k]);
                }
            }
        }
    }
    for (; i + 16 <= n; i += 16) {
#pragma GCC unroll 4
        for (o = 0; o < ST_F_NW; o++) {
#pragma GCC unroll 4
            for (r = 0; r < ST_F_NA; r++) {
                acc[o * ST_F_NA + r][0] = _mm512_fmadd_ps(
                    st_ld16(h, w[o], i), st_ld16(h, a[r], i),
                    acc[o * ST_F_NA + r][0]);
            }
        }
    }
    if (i < n) {
        __mmask16 m = (__mmask16) ((1u << (n - i)) - 1);

        for (o = 0; o < ST_F_NW; o++) {
            for (r = 0; r < ST_F_NA; r++) {
                acc[o * ST_F_NA + r][1] = _mm512_fmadd_ps(
                    st_ld16_mask(h, w[o], i, m), st_ld16_mask(h, a[r], i, m),
                    acc[o * ST_F_NA + r][1]);
            }
        }
    }
    for (o = 0; o < ST_F_NW; o++) {
        for (r = 0; r < ST_F_NA; r++) {
            __m512 *c = acc[o * ST_F_NA + r];

            out[(size_t) r * out_stride + o] = st_hsum512_ps(
                _mm512_add_ps(_mm512_add_ps(c[0], c[1]),
                              _mm512_add_ps(c[2], c[3])));
        }
    }
}


/* vec_dot BF16: dpbf16ps into a0 / a1 over 64-value steps, then up to 63
 * values as two masked 32-value steps (a0, then a1 if any), reduce(a0 +
 * a1). */
ST_INLINE void
st_gemm_bf16_tile(int64_t n, float *out, size_t out_stride, const void *vw,
    size_t w_stride, const void *va, size_t a_stride)
{
    const st_bf16 *w[ST_F_NW], *a[ST_F_NA];
    __m512         acc[ST_F_NW * ST_F_NA][2];
    int64_t        i = 0;
    int            o, r, k;

    for (o = 0; o < ST_F_NW; o++) {
        w[o] = (const st_bf16 *) ((const uint8_t *) vw + (size_t) o * w_stride);
    }
    for (r = 0; r < ST_F_NA; r++) {
        a[r] = (const st_bf16 *) ((const uint8_t *) va + (size_t) r * a_stride);
    }
#pragma GCC unroll 16
    for (o = 0; o < ST_F_NW * ST_F_NA; o++) {
        acc[o][0] = _mm512_setzero_ps();
        acc[o][1] = _mm512_setzero_ps();
    }
    for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 2
        for (k = 0; k < 2; k++) {
            __m512i wv[ST_F_NW], av[ST_F_NA];

#pragma GCC unroll 4
            for (o = 0; o < ST_F_NW; o++) {
                wv[o] = _mm512_loadu_si512(w[o] + i + 32 * k);
            }
#pragma GCC unroll 4
            for (r = 0; r < ST_F_NA; r++) {
                av[r] = _mm512_loadu_si512(a[r] + i + 32 * k);
            }
#pragma GCC unroll 4
            for (o = 0; o < ST_F_NW; o++) {
#pragma GCC unroll 4
                for (r = 0; r < ST_F_NA; r++) {
                    acc[o * ST_F_NA + r][k] = _mm512_dpbf16_ps(
                        acc[o * ST_F_NA + r][k], (__m512bh) wv[o],
                        (__m512bh) av[r]);
                }
            }
        }
    }
    if (i < n) {
        int64_t   left = n - i;
        __mmask32 m0 = left >= 32 ? 0xffffffffu
                                  : (__mmask32) ((1u << left) - 1);
        __mmask32 m1 = left > 32 ? (__mmask32) ((1u << (left - 32)) - 1) : 0;

        for (o = 0; o < ST_F_NW; o++) {
            for (r = 0; r < ST_F_NA; r++) {
                __m512 *c = acc[o * ST_F_NA + r];

                c[0] = _mm512_dpbf16_ps(c[0],
                    (__m512bh) _mm512_maskz_loadu_epi16(m0, w[o] + i),
                    (__m512bh) _mm512_maskz_loadu_epi16(m0, a[r] + i));
                if (m1) {
                    c[1] = _mm512_dpbf16_ps(c[1],
                        (__m512bh) _mm512_maskz_loadu_epi16(m1, w[o] + i + 32),
                        (__m512bh) _mm512_maskz_loadu_epi16(m1, a[r] + i + 32));
                }
            }
        }
    }
    for (o = 0; o < ST_F_NW; o++) {
        for (r = 0; r < ST_F_NA; r++) {
            __m512 *c = acc[o * ST_F_NA + r];

            out[(size_t) r * out_stride + o] = st_hsum512_ps(
                _mm512_add_ps(c[0], c[1]));
        }
    }
}


/* kind: 0 F32, 1 F16, 2 BF16 */
ST_INLINE void
st_gemm_float(int kind, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + ST_F_NA <= g->n_a; r0 += ST_F_NA) {
        float      *out = g->out + (size_t) r0 * g->out_stride;
        const void *a = (const uint8_t *) g->a + (size_t) r0 * g->a_stride;

        if (kind == 2) {
            st_gemm_bf16_tile(g->n, out, g->out_stride, g->w, g->w_stride,
                              a, g->a_stride);
        } else {
            st_gemm_fh_tile(kind, g->n, out, g->out_stride, g->w,
                            g->w_stride, a, g->a_stride);
        }
    }
}


static void
st_gemm_f32_avx512(const st_gemm_args *g)
{
    st_gemm_float(0, g);
}


static void
st_gemm_f16_avx512(const st_gemm_args *g)
{
    st_gemm_float(1, g);
}


static void
st_gemm_bf16_avx512(const st_gemm_args *g)
{
    st_gemm_float(2, g);
}


/* ------------------------------------------------------------ Q4_K / Q6_K */

/* tile of the K-quant kernels: the integer sums of a super-block need a
 * register per pair on top of the float accumulators */
#define ST_K_NW  2
#define ST_K_NA  4

_Static_assert(ST_K_NW == 2 && ST_K_NA == 4,
               "st_hsum512x8_epi32 and st_k_scales take 2 x 4 elements");


/* The exact totals of 8 int32 vectors of 8 lanes, as one vector:
 * integer additions, so any tree gives the same values. */
ST_INLINE __m256i
st_hsum256x8_epi32(const __m256i *h)
{
    __m256i t01 = _mm256_hadd_epi32(h[0], h[1]);
    __m256i t23 = _mm256_hadd_epi32(h[2], h[3]);
    __m256i t45 = _mm256_hadd_epi32(h[4], h[5]);
    __m256i t67 = _mm256_hadd_epi32(h[6], h[7]);
    __m256i u0 = _mm256_hadd_epi32(t01, t23);
    __m256i u1 = _mm256_hadd_epi32(t45, t67);

    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31));
}


/* the same for 8 vectors of 16 lanes, with 128-bit lane shuffles (no
 * hadd, which costs three uops): pairs fold their 256-bit halves, then
 * quads their 128-bit lanes, then the 4 lanes within each 128 bits. */
ST_INLINE __m256i
st_hsum512x8_epi32(const __m512i *v)
{
    __m512i s[4], t[2], x, y, u;
    int     p;

    for (p = 0; p < 4; p++) {     /* [v2p: 8 lanes, v2p+1: 8 lanes] */
        s[p] = _mm512_add_epi32(
            _mm512_shuffle_i32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
            _mm512_shuffle_i32x4(v[2 * p], v[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (p = 0; p < 2; p++) {     /* 128-bit lane k: 4 lanes of v4p+k */
        t[p] = _mm512_add_epi32(
            _mm512_shuffle_i32x4(s[2 * p], s[2 * p + 1], _MM_SHUFFLE(2, 0, 2, 0)),
            _mm512_shuffle_i32x4(s[2 * p], s[2 * p + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    }
    x = _mm512_unpacklo_epi32(t[0], t[1]);
    y = _mm512_unpackhi_epi32(t[0], t[1]);
    u = _mm512_add_epi32(x, y);
    u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_BADC));
    /* 128-bit lane k: element 0 = total of v[k], element 1 = of v[4 + k] */
    return _mm512_castsi512_si256(_mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13,
                          0, 0, 0, 0, 0, 0, 0, 0), u));
}


/* the activation scales a[r].d in lanes o * ST_K_NA + r */
ST_INLINE __m256
st_k_ascales(const st_block_q8_K *const *a, int64_t i)
{
    __m128 ad = _mm_setr_ps(a[0][i].d, a[1][i].d, a[2][i].d, a[3][i].d);

    return _mm256_insertf128_ps(_mm256_castps128_ps256(ad), ad, 1);
}


/* d[o * ST_K_NA + r] = a[r].d * xd[o], the reference's product */
ST_INLINE __m256
st_k_scales(__m256 ad, const float *xd)
{
    return _mm256_mul_ps(ad, _mm256_insertf128_ps(
        _mm256_castps128_ps256(_mm_set1_ps(xd[0])), _mm_set1_ps(xd[1]), 1));
}


/* kernels_avx512.c's unpacking of the 6-bit scales and mins */
ST_INLINE void
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


/* vec_dot Q4_K per super-block: exact isum = sum over 64-value chunks
 * of madd(maddubs(nibbles, y), scale) and msum = madd(bsums, mins), then
 * the reference's float steps sum -= dmin * msum; sum += d * isum. The
 * tile forms the same integers and takes the same steps for 8 elements
 * at once (one lane each). */
static void
st_gemm_q4_K_tile(int64_t n, float *out, size_t out_stride, const void *vw,
    size_t w_stride, const void *va, size_t a_stride)
{
    const st_block_q4_K *w[ST_K_NW];
    const st_block_q8_K *a[ST_K_NA];
    __m256               sum = _mm256_setzero_ps();
    const __m512i        m4 = _mm512_set1_epi8(0x0f);
    int64_t              nb = n / ST_QK_K, i;
    int                  o, r, c;

    for (o = 0; o < ST_K_NW; o++) {
        w[o] = (const st_block_q4_K *) ((const uint8_t *) vw
                                        + (size_t) o * w_stride);
    }
    for (r = 0; r < ST_K_NA; r++) {
        a[r] = (const st_block_q8_K *) ((const uint8_t *) va
                                        + (size_t) r * a_stride);
    }
    for (i = 0; i < nb; i++) {
        uint8_t  sc[ST_K_NW][8], mn[ST_K_NW][8];
        __m256i  mv[ST_K_NW];
        __m512i  isum[ST_K_NW * ST_K_NA];
        float    xd[ST_K_NW], xdm[ST_K_NW];

#pragma GCC unroll 4
        for (o = 0; o < ST_K_NW; o++) {
            __m128i m16;

            st_q4_K_scales(w[o][i].scales, sc[o], mn[o]);
            m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *) mn[o]));
            mv[o] = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16),
                                     _mm_unpacklo_epi16(m16, m16));
            xd[o] = st_f16_load(w[o][i].d);
            xdm[o] = st_f16_load(w[o][i].dmin);
        }
#pragma GCC unroll 8
        for (o = 0; o < ST_K_NW * ST_K_NA; o++) {
            isum[o] = _mm512_setzero_si512();
        }
        for (c = 0; c < 4; c++) {
            __m512i qq[ST_K_NW], scv[ST_K_NW];

#pragma GCC unroll 4
            for (o = 0; o < ST_K_NW; o++) {
                __m256i q = _mm256_loadu_si256(
                                (const __m256i *) (w[o][i].qs + 32 * c));

                qq[o] = _mm512_and_si512(
                    _mm512_inserti64x4(_mm512_castsi256_si512(q),
                                       _mm256_srli_epi16(q, 4), 1), m4);
                scv[o] = _mm512_inserti64x4(
                    _mm512_set1_epi16(sc[o][2 * c]),
                    _mm256_set1_epi16(sc[o][2 * c + 1]), 1);
            }
#pragma GCC unroll 4
            for (r = 0; r < ST_K_NA; r++) {
                __m512i y = _mm512_loadu_si512(a[r][i].qs + 64 * c);

#pragma GCC unroll 4
                for (o = 0; o < ST_K_NW; o++) {
                    isum[o * ST_K_NA + r] = _mm512_add_epi32(
                        isum[o * ST_K_NA + r],
                        _mm512_madd_epi16(_mm512_maddubs_epi16(qq[o], y),
                                          scv[o]));
                }
            }
        }
        {
            __m256i msum[ST_K_NW * ST_K_NA];

#pragma GCC unroll 4
            for (o = 0; o < ST_K_NW; o++) {
#pragma GCC unroll 4
                for (r = 0; r < ST_K_NA; r++) {
                    msum[o * ST_K_NA + r] = _mm256_madd_epi16(
                        _mm256_loadu_si256((const __m256i *) a[r][i].bsums),
                        mv[o]);
                }
            }
            __m256  ad = st_k_ascales(a, i);

            sum = _mm256_sub_ps(sum, _mm256_mul_ps(st_k_scales(ad, xdm),
                      _mm256_cvtepi32_ps(st_hsum256x8_epi32(msum))));
            sum = _mm256_add_ps(sum, _mm256_mul_ps(st_k_scales(ad, xd),
                      _mm256_cvtepi32_ps(st_hsum512x8_epi32(isum))));
        }
    }
    {
        float sums[ST_K_NW * ST_K_NA];

        _mm256_storeu_ps(sums, sum);
        for (o = 0; o < ST_K_NW; o++) {
            for (r = 0; r < ST_K_NA; r++) {
                out[(size_t) r * out_stride + o] = sums[o * ST_K_NA + r];
            }
        }
    }
}


/* vec_dot Q6_K per super-block: the exact isum starts at
 * -32 * madd(bsums, scales) (low 8 lanes), then adds madd(maddubs(q6,
 * y), scale) for the four 64-value steps; sum += (x.d * y.d) * isum. */
static void
st_gemm_q6_K_tile(int64_t n, float *out, size_t out_stride, const void *vw,
    size_t w_stride, const void *va, size_t a_stride)
{
    const st_block_q6_K *w[ST_K_NW];
    const st_block_q8_K *a[ST_K_NA];
    __m256               sum = _mm256_setzero_ps();
    const __m512i        m4 = _mm512_set1_epi8(0x0f);
    const __m512i        m30 = _mm512_set1_epi8(0x30);
    __m512i              gidx[4];
    int64_t              nb = n / ST_QK_K, i;
    int                  o, r, h, k;

    for (k = 0; k < 4; k++) {
        int16_t idx[32];
        int     l;

        for (l = 0; l < 32; l++) {
            idx[l] = (int16_t) (4 * k + l / 8);
        }
        gidx[k] = _mm512_loadu_si512(idx);
    }
    for (o = 0; o < ST_K_NW; o++) {
        w[o] = (const st_block_q6_K *) ((const uint8_t *) vw
                                        + (size_t) o * w_stride);
    }
    for (r = 0; r < ST_K_NA; r++) {
        a[r] = (const st_block_q8_K *) ((const uint8_t *) va
                                        + (size_t) r * a_stride);
    }
    for (i = 0; i < nb; i++) {
        __m512i sc16[ST_K_NW], isum[ST_K_NW * ST_K_NA];

#pragma GCC unroll 4
        for (o = 0; o < ST_K_NW; o++) {
            sc16[o] = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(
                          _mm_loadu_si128((const __m128i *) w[o][i].scales)));
#pragma GCC unroll 4
            for (r = 0; r < ST_K_NA; r++) {
                __m256i corr = _mm256_madd_epi16(
                    _mm256_loadu_si256((const __m256i *) a[r][i].bsums),
                    _mm512_castsi512_si256(sc16[o]));

                isum[o * ST_K_NA + r] = _mm512_maskz_mov_epi32(0x00ff,
                    _mm512_castsi256_si512(_mm256_sub_epi32(
                        _mm256_setzero_si256(), _mm256_slli_epi32(corr, 5))));
            }
        }
        for (h = 0; h < 2; h++) {
            __m512i qA[ST_K_NW], qB[ST_K_NW], sA[ST_K_NW], sB[ST_K_NW];

#pragma GCC unroll 4
            for (o = 0; o < ST_K_NW; o++) {
                __m512i l = _mm512_loadu_si512(w[o][i].ql + 64 * h);
                __m256i vh = _mm256_loadu_si256(
                                 (const __m256i *) (w[o][i].qh + 32 * h));
                __m512i hA = _mm512_inserti64x4(
                                 _mm512_castsi256_si512(
                                     _mm256_slli_epi16(vh, 4)),
                                 _mm256_slli_epi16(vh, 2), 1);
                __m512i hB = _mm512_inserti64x4(
                                 _mm512_castsi256_si512(vh),
                                 _mm256_srli_epi16(vh, 2), 1);

                qA[o] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                        _mm512_and_si512(hA, m30));
                qB[o] = _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                            _mm512_and_si512(hB, m30));
                sA[o] = _mm512_permutexvar_epi16(gidx[2 * h], sc16[o]);
                sB[o] = _mm512_permutexvar_epi16(gidx[2 * h + 1], sc16[o]);
            }
#pragma GCC unroll 4
            for (r = 0; r < ST_K_NA; r++) {
                __m512i yA = _mm512_loadu_si512(a[r][i].qs + 128 * h);
                __m512i yB = _mm512_loadu_si512(a[r][i].qs + 128 * h + 64);

#pragma GCC unroll 4
                for (o = 0; o < ST_K_NW; o++) {
                    __m512i t = _mm512_add_epi32(
                        _mm512_madd_epi16(_mm512_maddubs_epi16(qA[o], yA),
                                          sA[o]),
                        _mm512_madd_epi16(_mm512_maddubs_epi16(qB[o], yB),
                                          sB[o]));

                    isum[o * ST_K_NA + r] = _mm512_add_epi32(
                        isum[o * ST_K_NA + r], t);
                }
            }
        }
        {
            float xd[ST_K_NW] = { st_f16_load(w[0][i].d),
                                  st_f16_load(w[1][i].d) };

            sum = _mm256_add_ps(sum, _mm256_mul_ps(
                      st_k_scales(st_k_ascales(a, i), xd),
                      _mm256_cvtepi32_ps(st_hsum512x8_epi32(isum))));
        }
    }
    {
        float sums[ST_K_NW * ST_K_NA];

        _mm256_storeu_ps(sums, sum);
        for (o = 0; o < ST_K_NW; o++) {
            for (r = 0; r < ST_K_NA; r++) {
                out[(size_t) r * out_stride + o] = sums[o * ST_K_NA + r];
            }
        }
    }
}


ST_INLINE void
st_gemm_k(int q6, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + ST_K_NA <= g->n_a; r0 += ST_K_NA) {
        float      *out = g->out + (size_t) r0 * g->out_stride;
        const void *a = (const uint8_t *) g->a + (size_t) r0 * g->a_stride;

        if (q6) {
            st_gemm_q6_K_tile(g->n, out, g->out_stride, g->w, g->w_stride,
                              a, g->a_stride);
        } else {
            st_gemm_q4_K_tile(g->n, out, g->out_stride, g->w, g->w_stride,
                              a, g->a_stride);
        }
    }
}


static void
st_gemm_q4_K_avx512(const st_gemm_args *g)
{
    st_gemm_k(0, g);
}


static void
st_gemm_q6_K_avx512(const st_gemm_args *g)
{
    st_gemm_k(1, g);
}


st_gemm_kernel
st_cpu_avx512_gemm(st_type wtype)
{
    st_gemm_kernel k = { NULL, 0, 0, 0, 0 };

    switch (wtype) {
    case ST_TYPE_Q4_0:
        return st_cpu_avx512_gemm_q4_0();   /* gemm_q4_0_avx512.c */
    case ST_TYPE_IQ4_NL:
        return st_cpu_avx512_gemm_iq4_nl();  /* gemm_q4_0_avx512.c */
    case ST_TYPE_Q8_0:
    case ST_TYPE_Q5_0:
        k.fn = wtype == ST_TYPE_Q8_0 ? st_gemm_q8_0_avx512
                                     : st_gemm_q5_0_avx512;
        k.nw = ST_Q_NW;
        k.na = ST_Q_NA;
        k.max_n = ST_GEMM_N_MAX;
        k.a_scales = 1;
        break;
    case ST_TYPE_F32:
    case ST_TYPE_F16:
    case ST_TYPE_BF16:
        k.fn = wtype == ST_TYPE_F32 ? st_gemm_f32_avx512
               : wtype == ST_TYPE_F16 ? st_gemm_f16_avx512
               : st_gemm_bf16_avx512;
        k.nw = ST_F_NW;
        k.na = ST_F_NA;
        k.max_n = INT64_MAX;
        break;
    case ST_TYPE_Q4_K:
    case ST_TYPE_Q6_K:
        k.fn = wtype == ST_TYPE_Q4_K ? st_gemm_q4_K_avx512
                                     : st_gemm_q6_K_avx512;
        k.nw = ST_K_NW;
        k.na = ST_K_NA;
        k.max_n = INT64_MAX;
        break;
    default:
        break;
    }
    return k;
}
