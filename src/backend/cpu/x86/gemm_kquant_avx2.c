/*
 * AVX2 GEMM microkernels (kernels.h) for the 256-value block types Q2_K,
 * Q3_K and IQ4_XS, each output element BIT-IDENTICAL to the AVX2 vec_dot
 * of its type (kernels_avx2.c), which is itself bit-identical to
 * quant_ref.c.
 *
 * Why that holds: per block, vec_dot forms exact integer sums (isum, and
 * Q2_K's summs of mins times bsums) and then evaluates one float
 * expression of them with the reference's operations (no FMA: -std=c11
 * keeps contraction off), added to one accumulator in block order. The
 * tile forms the same integers another exact way and evaluates the same
 * expression in the same order, keeping the running sums in out[].
 *
 * Shape: nw = 4 weight rows, and every activation row of the call (n_a,
 * a multiple of na = 4) per weight block: each weight block is unpacked
 * once (bits, high bits, grid lookups, scales) into a small stack buffer
 * for all the activation rows, and each activation chunk is loaded once
 * for the 4 weight rows.
 *
 * Q2_K: the 2-bit quants times their 4-bit scale fit a byte (<= 45), so
 * the scale is multiplied in on the weight side (a 16-bit multiply: both
 * bytes of a lane share one scale and neither product carries), and two
 * chunks' maddubs pairs add as int16 (|.| <= 2 * 2 * 45 * 128 = 23040)
 * before one madd. Q3_K (signed 6-bit scales) and IQ4_XS (signed grid
 * values) keep vec_dot's maddubs, madd-by-scale steps.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/quant32_avx2.h"
#include "quant/quant_ref.h"

#include <immintrin.h>
#include <string.h>

#define ST_KQ_INLINE static inline __attribute__((always_inline))

#define ST_KQ_NW      4              /* weight rows per tile */
#define ST_KQ_NA      4              /* n_a is a multiple of this */
#define ST_KQ_CHUNKS  (ST_QK_K / 32) /* 32-value chunks per block */

typedef enum {
    ST_KQ_Q2_K,
    ST_KQ_Q3_K,
    ST_KQ_IQ4_XS
} st_kq_kind;

/* One weight block of one row, unpacked for the activation rows. */
typedef struct {
    __m256i  u[ST_KQ_CHUNKS];    /* Q2_K: u * scale; Q3_K: u (0..7);
                                    IQ4_XS: |grid value| */
    __m256i  s[ST_KQ_CHUNKS];    /* Q3_K: int16 scales (low half: group
                                    2j, high: 2j + 1); IQ4_XS: the grid
                                    values (for their signs); Q2_K: - */
    __m256i  sc16;               /* Q2_K: 16 mins, Q3_K: 16 scales, int16 */
    int16_t  ls[ST_KQ_CHUNKS];   /* IQ4_XS: sub-block scales */
    float    d;
    float    dmin;               /* Q2_K */
} st_kq_prep;


ST_KQ_INLINE float
st_kq_f16(st_f16 h)
{
    return _cvtsh_ss(h);
}


/* int16 lane 2k of the 8 int16 values broadcast over both halves of h
 * into the low half, lane 2k + 1 into the high half */
ST_KQ_INLINE __m256i
st_kq_scale_pair(__m256i h, int k)
{
    return _mm256_shuffle_epi8(h, _mm256_set_m128i(
        _mm_set1_epi16((short) (0x0100 + 0x0202 * (2 * k + 1))),
        _mm_set1_epi16((short) (0x0100 + 0x0202 * (2 * k)))));
}


/* both 128-bit halves = half c of v; the immediate must be a literal
 * (an unoptimised or sanitizer build does not fold "c ? 0x11 : 0x00") */
static inline __m256i
st_kq_half(__m256i v, int c)
{
    return c ? _mm256_permute2x128_si256(v, v, 0x11)
             : _mm256_permute2x128_si256(v, v, 0x00);
}


static inline void
st_kq_prep_q2_K(const st_block_q2_K *x, st_kq_prep *p)
{
    const __m256i  m3 = _mm256_set1_epi8(3);
    __m128i        sv = _mm_loadu_si128((const __m128i *) x->scales);
    __m256i        sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sv,
                              _mm_set1_epi8(0x0f)));
    int            c, k;

    p->sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sv, 4),
                                                 _mm_set1_epi8(0x0f)));
    for (c = 0; c < 2; c++) {
        __m256i q = _mm256_loadu_si256((const __m256i *) (x->qs + 32 * c));
        __m256i h = st_kq_half(sc16, c);

        for (k = 0; k < 4; k++) {
            __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);

            p->u[4 * c + k] = _mm256_mullo_epi16(u, st_kq_scale_pair(h, k));
        }
    }
    p->d = st_kq_f16(x->d);
    p->dmin = st_kq_f16(x->dmin);
}


static inline void
st_kq_prep_q3_K(const st_block_q3_K *x, st_kq_prep *p)
{
    const __m256i  m3 = _mm256_set1_epi8(3);
    const __m256i  one = _mm256_set1_epi8(1);
    __m256i        hm = _mm256_loadu_si256((const __m256i *) x->hmask);
    int8_t         sc[16];
    int            c, k;

    st_q3_K_scales(x->scales, sc);
    p->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc));
    for (c = 0; c < 2; c++) {
        __m256i q = _mm256_loadu_si256((const __m256i *) (x->qs + 32 * c));
        __m256i h = st_kq_half(p->sc16, c);

        for (k = 0; k < 4; k++) {
            __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
            __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * c + k),
                                          one);

            p->u[4 * c + k] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
            p->s[4 * c + k] = st_kq_scale_pair(h, k);
        }
    }
    p->d = st_kq_f16(x->d);
}


static inline void
st_kq_prep_iq4_xs(const st_block_iq4_xs *x, st_kq_prep *p)
{
    const __m256i  grid = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *) st_iq4nl_values));
    int            j;

    for (j = 0; j < ST_KQ_CHUNKS; j++) {
        __m256i v = _mm256_shuffle_epi8(grid, st_q32_nibbles(x->qs + 16 * j));

        p->u[j] = _mm256_sign_epi8(v, v);
        p->s[j] = v;
        p->ls[j] = (int16_t) ((((x->scales_l[j / 2] >> (4 * (j % 2))) & 0xf)
                               | ((x->scales_h >> (2 * j)) & 3) << 4) - 32);
    }
    p->d = st_kq_f16(x->d);
}


/* 4 weight rows' block against activation block y: out[o] += each row's
 * block value, with vec_dot's float expression */
ST_KQ_INLINE void
st_kq_block4(st_kq_kind kind, const st_kq_prep *p,
    __m256i (*ls)[ST_KQ_CHUNKS],
    const st_block_q8_K *y, float *out)
{
    __m256i  acc[ST_KQ_NW];
    __m128i  isum4, msum4;
    int32_t  isum[ST_KQ_NW], msum[ST_KQ_NW];
    __m256i  bs = _mm256_loadu_si256((const __m256i *) y->bsums);
    int      j, o;

#pragma GCC unroll 4
    for (o = 0; o < ST_KQ_NW; o++) {
        acc[o] = _mm256_setzero_si256();
    }
    if (kind == ST_KQ_Q2_K) {
        const __m256i ones = _mm256_set1_epi16(1);

#pragma GCC unroll 4
        for (j = 0; j < ST_KQ_CHUNKS; j += 2) {
            __m256i q0 = _mm256_loadu_si256((const __m256i *)
                                            (y->qs + 32 * j));
            __m256i q1 = _mm256_loadu_si256((const __m256i *)
                                            (y->qs + 32 * j + 32));

#pragma GCC unroll 4
            for (o = 0; o < ST_KQ_NW; o++) {
                __m256i t = _mm256_add_epi16(
                    _mm256_maddubs_epi16(p[o].u[j], q0),
                    _mm256_maddubs_epi16(p[o].u[j + 1], q1));

                acc[o] = _mm256_add_epi32(acc[o], _mm256_madd_epi16(t, ones));
            }
        }
    } else {
#pragma GCC unroll 8
        for (j = 0; j < ST_KQ_CHUNKS; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *) (y->qs + 32 * j));

#pragma GCC unroll 4
            for (o = 0; o < ST_KQ_NW; o++) {
                __m256i t;

                if (kind == ST_KQ_Q3_K) {
                    t = _mm256_madd_epi16(_mm256_maddubs_epi16(p[o].u[j], q),
                                          p[o].s[j]);
                } else {
                    t = _mm256_madd_epi16(_mm256_maddubs_epi16(p[o].u[j],
                                              _mm256_sign_epi8(q, p[o].s[j])),
                                          ls[o][j]);
                }
                acc[o] = _mm256_add_epi32(acc[o], t);
            }
        }
    }
    isum4 = st_q32_hsum4(acc[0], acc[1], acc[2], acc[3]);
    _mm_storeu_si128((__m128i *) isum, isum4);
    if (kind != ST_KQ_IQ4_XS) {
        /* Q2_K: mins . bsums; Q3_K: scales . bsums (the -4 offset) */
        msum4 = st_q32_hsum4(_mm256_madd_epi16(bs, p[0].sc16),
                             _mm256_madd_epi16(bs, p[1].sc16),
                             _mm256_madd_epi16(bs, p[2].sc16),
                             _mm256_madd_epi16(bs, p[3].sc16));
        _mm_storeu_si128((__m128i *) msum, msum4);
    }
#pragma GCC unroll 4
    for (o = 0; o < ST_KQ_NW; o++) {
        if (kind == ST_KQ_Q2_K) {
            float dall = y->d * p[o].d;
            float dmin = y->d * p[o].dmin;

            out[o] += dall * (float) isum[o] - dmin * (float) msum[o];
        } else if (kind == ST_KQ_Q3_K) {
            float d = y->d * p[o].d;

            out[o] += d * (float) (isum[o] - 4 * msum[o]);
        } else {
            float d = p[o].d * y->d;

            out[o] += d * (float) isum[o];
        }
    }
}


ST_KQ_INLINE void
st_kq_gemm(st_kq_kind kind, const st_gemm_args *g)
{
    st_kq_prep  p[ST_KQ_NW];
    __m256i     ls[ST_KQ_NW][ST_KQ_CHUNKS];
    int64_t     nb = g->n / ST_QK_K, i, r;
    int         o, j;

    for (r = 0; r < g->n_a; r++) {
        for (o = 0; o < ST_KQ_NW; o++) {
            g->out[(size_t) r * g->out_stride + o] = 0.0f;
        }
    }
    for (i = 0; i < nb; i++) {
        for (o = 0; o < ST_KQ_NW; o++) {
            const uint8_t *row = (const uint8_t *) g->w
                                 + (size_t) o * g->w_stride;

            switch (kind) {
            case ST_KQ_Q2_K:
                st_kq_prep_q2_K((const st_block_q2_K *) row + i, &p[o]);
                break;
            case ST_KQ_Q3_K:
                st_kq_prep_q3_K((const st_block_q3_K *) row + i, &p[o]);
                break;
            case ST_KQ_IQ4_XS:
                st_kq_prep_iq4_xs((const st_block_iq4_xs *) row + i, &p[o]);
                for (j = 0; j < ST_KQ_CHUNKS; j++) {
                    ls[o][j] = _mm256_set1_epi16(p[o].ls[j]);
                }
                break;
            }
        }
        for (r = 0; r < g->n_a; r++) {
            const st_block_q8_K *y = (const st_block_q8_K *)
                ((const uint8_t *) g->a + (size_t) r * g->a_stride) + i;

            st_kq_block4(kind, p, ls, y, g->out + (size_t) r * g->out_stride);
        }
    }
}


static void
st_gemm_q2_K_avx2(const st_gemm_args *g)
{
    st_kq_gemm(ST_KQ_Q2_K, g);
}


static void
st_gemm_q3_K_avx2(const st_gemm_args *g)
{
    st_kq_gemm(ST_KQ_Q3_K, g);
}


static void
st_gemm_iq4_xs_avx2(const st_gemm_args *g)
{
    st_kq_gemm(ST_KQ_IQ4_XS, g);
}


st_gemm_kernel
st_cpu_avx2_kquant_gemm(st_type wtype)
{
    st_gemm_kernel k = { NULL, ST_KQ_NW, ST_KQ_NA, INT64_MAX, 0 };

    switch (wtype) {
    case ST_TYPE_Q2_K:   k.fn = st_gemm_q2_K_avx2;   break;
    case ST_TYPE_Q3_K:   k.fn = st_gemm_q3_K_avx2;   break;
    case ST_TYPE_IQ4_XS: k.fn = st_gemm_iq4_xs_avx2; break;
    default:             k.nw = k.na = 0;            break;
    }
    return k;
}
