/*
 * AVX2 GEMM microkernels (kernels.h), each output element BIT-IDENTICAL
 * to the AVX2 vec_dot of the same type (kernels_avx2.c): the same
 * accumulators updated by the same float operations in the same order,
 * the same final reduction; the tile only shares loads and the
 * weight-side preparation, and may form the exact integer lane sums
 * differently.
 *
 * Q8_0, Q5_0: 2 weight rows x 4 activation rows (see below). Q4_0 and
 * IQ4_NL have their own order and kernel (gemm_q4_0_avx2.c).
 * F32, F16: 2 x 2.
 * Q4_1, Q5_1: 2 weight rows x 4 activation rows; every
 * element is the scalar accumulator of x86/quant32_avx2.h's vec_dot,
 * stepped by the same functions; the tile unpacks each weight block once
 * for its 4 activation rows.
 * Q6_K: 2 weight rows x 4 activation rows, weight super-blocks unpacked
 * once per tile.
 * Types without a kernel here (BF16, other K-quants) use vec_dot per
 * element.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/x86/quant32_avx2.h"

#include <immintrin.h>

#define ST_INLINE static inline __attribute__((always_inline))

/* F32/F16: 16 ymm registers hold 2 x 2 tiles */
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


/* ----------------------------------------------- Q8_0 / Q5_0 */

/* vec_dot Q8_0 / Q5_0 (AVX2) keeps one 8-lane accumulator per dot, block
 * after block (ggml's order, quant_ref.c), then hsum. The tile keeps one
 * per element, 2 weight rows x 4 activation rows: 8 independent chains
 * where vec_dot has one. Each block step is
 *   acc = fma(dx * dy, float(lane sums), acc)
 * with dx * dy one float product broadcast (here a vector product of two
 * broadcasts, the same bits).
 *
 * Lane sums: Q8_0 as vec_dot (maddubs(|x|, sign(y, x)), |x|
 * computed once per weight block for the 4 activation rows); Q5_0
 * multiplies the 5-bit u (0..31) by y and subtracts 16 * (sum of the
 * lane's 4 y values, st_gemm_a_sums8), the same exact integer as
 * vec_dot's (u - 16) * y with activations from from_float (|y| <= 127:
 * no lane saturates either way, 2 * 31 * 127 < 32767). */
#define ST_B4_NW  2
#define ST_B4_NA  4
/* decode (fewer rows than ST_B4_NA): the same steps, 4 weight rows x 1
 * activation row, so that 4 independent chains hide the fma latency that
 * bounds one vec_dot's single chain */
#define ST_B1_NW  4
#define ST_B_MAXW 4              /* array bounds for both shapes */
#define ST_B_MAXA 4

typedef struct {
    const void          *w[ST_B_MAXW];
    const st_block_q8_0 *a[ST_B_MAXA];
    const float         *as[ST_B_MAXA];
    const int32_t       *sums[ST_B_MAXA];
} st_b4_rows;


/* the weight kinds of the tile */
enum { ST_B4_Q8_0, ST_B4_Q5_0 };

/* kinds whose weights are unsigned u = w + c, c = 16 (Q5_0): their
 * lane is u . y - c * sum4(y), with c * sum4(y) from a_sums */
#define ST_B4_UNSIGNED(kind)  ((kind) == ST_B4_Q5_0)


ST_INLINE void
st_b4_block(int kind, int nw, int na, const st_b4_rows *t, int64_t i,
    __m256 *acc)
{
    __m256i wv[ST_B_MAXW], xs[ST_B_MAXW];
    __m256  dx[ST_B_MAXW];
    int     o, r;

#pragma GCC unroll 4
    for (o = 0; o < nw; o++) {
        if (kind == ST_B4_Q5_0) {
            const st_block_q5_0 *x = (const st_block_q5_0 *) t->w[o] + i;

            wv[o] = st_q32_q5_values(x->qs, x->qh);
            xs[o] = wv[o];
            dx[o] = _mm256_cvtph_ps(_mm_set1_epi16((short) x->d));
        } else {
            const st_block_q8_0 *x = (const st_block_q8_0 *) t->w[o] + i;

            xs[o] = _mm256_loadu_si256((const __m256i *) x->qs);
            wv[o] = _mm256_sign_epi8(xs[o], xs[o]);
            dx[o] = _mm256_cvtph_ps(_mm_set1_epi16((short) x->d));
        }
    }
#pragma GCC unroll 4
    for (r = 0; r < na; r++) {
        __m256i y = _mm256_loadu_si256((const __m256i *) t->a[r][i].qs);
        __m256  dy = _mm256_broadcast_ss(t->as[r] + i);
        __m256i cs = _mm256_setzero_si256();

        if (ST_B4_UNSIGNED(kind)) {
            cs = _mm256_loadu_si256((const __m256i *) (t->sums[r] + 8 * i));
            if (kind == ST_B4_Q5_0) {
                cs = _mm256_slli_epi32(cs, 1);       /* 16 * sum4(y) */
            }
        }
#pragma GCC unroll 4
        for (o = 0; o < nw; o++) {
            __m256i p;

            if (ST_B4_UNSIGNED(kind)) {
                p = _mm256_sub_epi32(
                        _mm256_madd_epi16(_mm256_maddubs_epi16(wv[o], y),
                                          _mm256_set1_epi16(1)),
                        cs);
            } else {
                p = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(wv[o],
                                             _mm256_sign_epi8(y, xs[o])),
                        _mm256_set1_epi16(1));
            }
            acc[o * na + r] = _mm256_fmadd_ps(
                _mm256_mul_ps(dx[o], dy), _mm256_cvtepi32_ps(p),
                acc[o * na + r]);
        }
    }
}


ST_INLINE void
st_b4_tile(int kind, int nw, int na, const st_gemm_args *g, int64_t r0)
{
    st_b4_rows t;
    __m256     acc[ST_B_MAXW * ST_B_MAXA];
    float     *out = g->out + (size_t) r0 * g->out_stride;
    int64_t    nb = g->n / 32, i;
    int        o, r, e;

    for (o = 0; o < nw; o++) {
        t.w[o] = (const uint8_t *) g->w + (size_t) o * g->w_stride;
    }
    for (r = 0; r < na; r++) {
        t.a[r] = (const st_block_q8_0 *) ((const uint8_t *) g->a
                 + (size_t) (r0 + r) * g->a_stride);
        t.as[r] = g->a_scales + (size_t) (r0 + r) * g->as_stride;
        t.sums[r] = ST_B4_UNSIGNED(kind)
                    ? g->a_sums + (size_t) (r0 + r) * g->sums_stride : NULL;
    }
#pragma GCC unroll 8
    for (e = 0; e < nw * na; e++) {
        acc[e] = _mm256_setzero_ps();
    }
    for (i = 0; i < nb; i++) {
        if (na == 1 && r0 == 0) {
            /* decode: the next call's rows follow these (kernels.h) */
            st_prefetch_part((const uint8_t *) g->w
                             + (size_t) nw * g->w_stride,
                             (size_t) nw * g->w_stride, i, nb);
        }
        st_b4_block(kind, nw, na, &t, i, acc);
    }
    for (o = 0; o < nw; o++) {
        for (r = 0; r < na; r++) {
            e = o * na + r;
            out[(size_t) r * g->out_stride + o] =
                st_hsum_ps(acc[e]);
        }
    }
}


ST_INLINE void
st_b4_gemm(int kind, int nw, int na, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + na <= g->n_a; r0 += na) {
        st_b4_tile(kind, nw, na, g, r0);
    }
}


static void
st_gemm_q8_0_avx2(const st_gemm_args *g)
{
    st_b4_gemm(ST_B4_Q8_0, ST_B4_NW, ST_B4_NA, g);
}


static void
st_gemv_q8_0_avx2(const st_gemm_args *g)
{
    st_b4_gemm(ST_B4_Q8_0, ST_B1_NW, 1, g);
}


static void
st_gemm_q5_0_avx2(const st_gemm_args *g)
{
    st_b4_gemm(ST_B4_Q5_0, ST_B4_NW, ST_B4_NA, g);
}


static void
st_gemv_q5_0_avx2(const st_gemm_args *g)
{
    st_b4_gemm(ST_B4_Q5_0, ST_B1_NW, 1, g);
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


/* h: 0 F32, 1 F16 */
ST_INLINE void
st_a2_gemm(int h, const st_gemm_args *g)
{
    int64_t r0;

    for (r0 = 0; r0 + ST_A2_NA <= g->n_a; r0 += ST_A2_NA) {
        float      *out = g->out + (size_t) r0 * g->out_stride;
        const void *a = (const uint8_t *) g->a + (size_t) r0 * g->a_stride;

        st_a2_f_tile(h, g->n, out, g->out_stride, g->w, g->w_stride,
                     a, g->a_stride);
    }
}


static void
st_gemm_f32_avx2(const st_gemm_args *g)
{
    st_a2_gemm(0, g);
}


static void
st_gemm_f16_avx2(const st_gemm_args *g)
{
    st_a2_gemm(1, g);
}


static st_gemm_kernel
st_cpu_avx2_gemm_a2(st_type wtype)
{
    st_gemm_kernel k = { NULL, ST_A2_NW, ST_A2_NA, INT64_MAX, 0 };
    st_gemm_kernel q = { NULL, ST_B4_NW, ST_B4_NA, INT64_MAX,
                           ST_GEMM_A_SCALES };

    switch (wtype) {
    case ST_TYPE_Q8_0: q.fn = st_gemm_q8_0_avx2; return q;
    case ST_TYPE_Q4_0: return st_cpu_avx2_gemm_q4_0(); /* gemm_q4_0_avx2.c */
    case ST_TYPE_Q5_0: q.fn = st_gemm_q5_0_avx2;
                       q.a_scales |= ST_GEMM_A_SUMS; return q;
    case ST_TYPE_IQ4_NL: return st_cpu_avx2_gemm_iq4_nl(); /* gemm_q4_0_avx2.c */
    case ST_TYPE_F32:  k.fn = st_gemm_f32_avx2;  break;
    case ST_TYPE_F16:  k.fn = st_gemm_f16_avx2;  break;
    default:           k.nw = k.na = 0;          break;
    }
    return k;
}


/* ------------------------------------------------------------ Q6_K */

/* Q4_K has no tile: its vec_dot unpacks little per super-block, and a
 * 2 x 4 tile that shared the unpacking measured no faster (Zen 3).
 *
 * vec_dot Q6_K (AVX2) per super-block: the exact isum = -(bsums .
 * scales) << 5 (the stored +32 offset), plus the 16 scaled maddubs
 * products of the 6-bit values, then the reference's sum += (d * dy) *
 * isum. The tile (2 weight x 4 activation rows) rebuilds each weight
 * super-block's 6-bit values and scale vectors once for its 4 activation
 * rows and takes the float steps for 4 elements at once. */
#define ST_K6_NW  2
#define ST_K6_NA  4

typedef struct {
    __m256i  q[8];               /* 6-bit values of 32-value group k */
    __m256i  scv[8];             /* scales of group k's two 16s */
    __m256i  sc16;               /* the 16 scales as int16 */
    float    d;
} st_k6_wprep;


ST_INLINE void
st_k6_prep(const st_block_q6_K *x, st_k6_wprep *p)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const int8_t *sc = x->scales;
    int           h, k;

    p->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) sc));
    for (h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h;
        __m256i        vh = _mm256_loadu_si256(
                                (const __m256i *) (x->qh + 32 * h));
        __m256i        l0 = _mm256_loadu_si256((const __m256i *) ql);
        __m256i        l1 = _mm256_loadu_si256((const __m256i *) (ql + 32));
        __m256i       *q = p->q + 4 * h;

        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                   _mm256_slli_epi16(_mm256_and_si256(vh,
                       _mm256_set1_epi8(0x03)), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                   _mm256_slli_epi16(_mm256_and_si256(vh,
                       _mm256_set1_epi8(0x0c)), 2));
        q[2] = _mm256_or_si256(
                   _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                   _mm256_and_si256(vh, _mm256_set1_epi8(0x30)));
        q[3] = _mm256_or_si256(
                   _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                   _mm256_srli_epi16(_mm256_and_si256(vh,
                       _mm256_set1_epi8((char) 0xc0)), 2));
        for (k = 0; k < 4; k++) {
            int g = 8 * h + 2 * k;

            p->scv[4 * h + k] = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]),
                                                 _mm_set1_epi16(sc[g]));
        }
    }
    p->d = st_f16_load(x->d);
}


/* the exact integer isum of one weight and one activation super-block,
 * as 8 lanes */
ST_INLINE __m256i
st_k6_isum(const st_k6_wprep *p, const st_block_q8_K *y)
{
    __m256i isum, corr;
    int     k;

    corr = _mm256_madd_epi16(
        _mm256_loadu_si256((const __m256i *) y->bsums), p->sc16);
    isum = _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_slli_epi32(corr, 5));
#pragma GCC unroll 8
    for (k = 0; k < 8; k++) {
        __m256i pk = _mm256_maddubs_epi16(p->q[k],
            _mm256_loadu_si256((const __m256i *) (y->qs + 32 * k)));

        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(pk, p->scv[k]));
    }
    return isum;
}


/* each weight super-block prepared once, used for every activation row */
static void
st_gemm_q6_K_avx2(const st_gemm_args *g)
{
    int64_t nb = g->n / ST_QK_K, r0, i;
    int     o, r;

    for (r0 = 0; r0 + ST_K6_NA <= g->n_a; r0 += ST_K6_NA) {
        const st_block_q6_K *w[ST_K6_NW];
        const st_block_q8_K *a[ST_K6_NA];
        __m128               sum[ST_K6_NW];     /* lane r: activation row r */
        float               *out = g->out + (size_t) r0 * g->out_stride;

        for (o = 0; o < ST_K6_NW; o++) {
            w[o] = (const st_block_q6_K *) ((const uint8_t *) g->w
                                            + (size_t) o * g->w_stride);
            sum[o] = _mm_setzero_ps();
        }
        for (r = 0; r < ST_K6_NA; r++) {
            a[r] = (const st_block_q8_K *) ((const uint8_t *) g->a
                   + (size_t) (r0 + r) * g->a_stride);
        }
        for (i = 0; i < nb; i++) {
            __m128 ad = _mm_setr_ps(a[0][i].d, a[1][i].d, a[2][i].d,
                                    a[3][i].d);

            for (o = 0; o < ST_K6_NW; o++) {
                st_k6_wprep p;
                __m128i     tot;

                st_k6_prep(w[o] + i, &p);
                tot = st_q32_hsum4(st_k6_isum(&p, a[0] + i),
                                   st_k6_isum(&p, a[1] + i),
                                   st_k6_isum(&p, a[2] + i),
                                   st_k6_isum(&p, a[3] + i));
                sum[o] = _mm_add_ps(sum[o], _mm_mul_ps(
                    _mm_mul_ps(_mm_set1_ps(p.d), ad), _mm_cvtepi32_ps(tot)));
            }
        }
        for (o = 0; o < ST_K6_NW; o++) {
            float s4[ST_K6_NA];

            _mm_storeu_ps(s4, sum[o]);
            for (r = 0; r < ST_K6_NA; r++) {
                out[(size_t) r * g->out_stride + o] = s4[r];
            }
        }
    }
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
st_gemm_q5_1_avx2(const st_gemm_args *g)
{
    st_q32_gemm(ST_Q32_Q5_1, g);
}


/* decode rows: ST_B1_NW weight rows x 1 activation row */
st_gemm_kernel
st_cpu_avx2_gemv(st_type wtype)
{
    st_gemm_kernel k = { NULL, ST_B1_NW, 1, INT64_MAX, ST_GEMM_A_SCALES };

    switch (wtype) {
    case ST_TYPE_Q8_0:   k.fn = st_gemv_q8_0_avx2;   break;
    case ST_TYPE_Q5_0:   k.fn = st_gemv_q5_0_avx2;
                         k.a_scales |= ST_GEMM_A_SUMS; break;
    default:             k.nw = k.na = 0;            break;
    }
    return k;
}


st_gemm_kernel
st_cpu_avx2_gemm(st_type wtype)
{
    st_gemm_kernel q32 = { NULL, ST_Q32_NW, ST_Q32_NA, INT64_MAX, 0 };

    st_gemm_kernel k6 = { NULL, ST_K6_NW, ST_K6_NA, INT64_MAX, 0 };

    switch (wtype) {
    case ST_TYPE_Q6_K:   k6.fn = st_gemm_q6_K_avx2;    return k6;
    case ST_TYPE_Q4_1:   q32.fn = st_gemm_q4_1_avx2;   return q32;
    case ST_TYPE_Q5_1:   q32.fn = st_gemm_q5_1_avx2;   return q32;
    default:             return st_cpu_avx2_gemm_a2(wtype);
    }
}
