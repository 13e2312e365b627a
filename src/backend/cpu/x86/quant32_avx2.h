/*
 * AVX2 pieces shared by the vec_dot (kernels_avx2.c) and GEMM
 * (gemm_avx2.c) kernels of the 32-value block types Q4_1 and Q5_1, so
 * that both compute the same exact integer sums and evaluate the same
 * float expression per block (quant_ref.c's), which makes them
 * bit-identical to the reference and to each other; and the nibble and
 * 5th-bit unpacking that the Q4_0/Q5_0/IQ4_NL kernels use too. Include
 * only from files built with the AVX2 (or AVX-512) flags.
 */
#ifndef ST_QUANT32_AVX2_H
#define ST_QUANT32_AVX2_H

#include "quant/quant_ref.h"

#include <immintrin.h>
#include <string.h>

/* always inlined, so that the block kind is a constant in every body */
#define ST_Q32_INLINE static inline __attribute__((always_inline))

/* 32 nibbles as bytes 0..15 in value order (low nibbles = values 0..15) */
ST_Q32_INLINE __m256i
st_q32_nibbles(const uint8_t *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *) qs);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}


/* the 5th bits of a q5 block as 0x10 per byte: bit j of qh -> byte j */
ST_Q32_INLINE __m256i
st_q32_q5_high(const uint8_t *qh4)
{
    uint32_t      qh;
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0,
                                          1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2,
                                          3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long) 0x8040201008040201ull);
    __m256i       v;

    memcpy(&qh, qh4, 4);
    v = _mm256_shuffle_epi8(_mm256_set1_epi32((int) qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}


/* the 32 5-bit values 0..31 of a Q5_0 / Q5_1 block, in value order
 * (Q5_0's weights are these minus 16) */
ST_Q32_INLINE __m256i
st_q32_q5_values(const uint8_t *qs, const uint8_t *qh4)
{
    return _mm256_or_si256(st_q32_nibbles(qs), st_q32_q5_high(qh4));
}


/* the 32 signed code-book values of an IQ4_NL block, in value order */
ST_Q32_INLINE __m256i
st_q32_iq4nl_values(const uint8_t *qs)
{
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(
                                   _mm_loadu_si128((const __m128i *)
                                                   st_iq4nl_values)),
                               st_q32_nibbles(qs));
}


/*
 * The weight side of one block, ready for st_q32_dot(): the unsigned
 * bytes 0..15 (Q4_1) or 0..31 (Q5_1); *sgn is the same bytes (unused).
 */
typedef enum {
    ST_Q32_Q4_1,
    ST_Q32_Q5_1
} st_q32_kind;

ST_Q32_INLINE __m256i
st_q32_weights(st_q32_kind kind, const void *blk, __m256i *sgn)
{
    if (kind == ST_Q32_Q4_1) {
        *sgn = st_q32_nibbles(((const st_block_q4_1 *) blk)->qs);
    } else {
        const st_block_q5_1 *b = blk;

        *sgn = st_q32_q5_values(b->qs, b->qh);
    }
    return *sgn;
}


/* weight bytes (from st_q32_weights) x 32 activation int8 -> 8 int32;
 * exact: |pair sums| <= 2 * 127 * 127 (|q8| <= 127 for the activation
 * quantizers; a -128 only arises from NaN inputs) */
ST_Q32_INLINE __m256i
st_q32_dot(st_q32_kind kind, __m256i u, __m256i sgn, const int8_t *q8)
{
    __m256i y = _mm256_loadu_si256((const __m256i *) q8);

    (void) kind;
    (void) sgn;
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y),
                             _mm256_set1_epi16(1));
}


/* 4 blocks' 8-lane int32 partial sums -> the 4 block sums (exact) */
ST_Q32_INLINE __m128i
st_q32_hsum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3)
{
    __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1),
                                  _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(t),
                         _mm256_extracti128_si256(t, 1));
}


ST_Q32_INLINE int32_t
st_q32_hsum(__m256i p)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p),
                              _mm256_extracti128_si256(p, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}


/* sum += t[0]; sum += t[1]; ... in lane order (the reference's order) */
ST_Q32_INLINE float
st_q32_acc4(float sum, __m128 t)
{
    __m128 s = _mm_add_ss(_mm_set_ss(sum), t);

    s = _mm_add_ss(s, _mm_movehdup_ps(t));
    s = _mm_add_ss(s, _mm_movehl_ps(t, t));
    s = _mm_add_ss(s, _mm_shuffle_ps(t, t, 3));
    return _mm_cvtss_f32(s);
}


ST_Q32_INLINE size_t
st_q32_wsize(st_q32_kind kind)
{
    return kind == ST_Q32_Q4_1 ? sizeof(st_block_q4_1)
           : sizeof(st_block_q5_1);
}


/* Q4_1/Q5_1 pair with Q8_1 activations (d and the sum s): the min term */
ST_Q32_INLINE int
st_q32_has_min(st_q32_kind kind)
{
    return kind == ST_Q32_Q4_1 || kind == ST_Q32_Q5_1;
}


/* the f16 bits at byte offset off of weight block b (d at 0, m at 2) */
ST_Q32_INLINE short
st_q32_wh(st_q32_kind kind, const void *row, int64_t b, size_t off)
{
    st_f16 h;

    memcpy(&h, (const uint8_t *) row + (size_t) b * st_q32_wsize(kind) + off,
           2);
    return (short) h;
}


ST_Q32_INLINE float
st_q32_wf16(st_q32_kind kind, const void *row, int64_t b, size_t off)
{
    return _cvtsh_ss((unsigned short) st_q32_wh(kind, row, b, off));
}


/* 4 f16 -> 4 f32 with one conversion (exact, like _cvtsh_ss) */
ST_Q32_INLINE __m128
st_q32_f16x4(short h0, short h1, short h2, short h3)
{
    return _mm_cvtph_ps(_mm_setr_epi16(h0, h1, h2, h3, 0, 0, 0, 0));
}


/* the activation block b: its quants, and d, s (Q8_1) as f16 bits */
ST_Q32_INLINE const int8_t *
st_q32_aqh(st_q32_kind kind, const void *a, int64_t b, short *d, short *s)
{
    if (st_q32_has_min(kind)) {
        const st_block_q8_1 *y = (const st_block_q8_1 *) a + b;

        *d = (short) y->d;
        *s = (short) y->s;
        return y->qs;
    } else {
        const st_block_q8_0 *y = (const st_block_q8_0 *) a + b;

        *d = (short) y->d;
        *s = 0;
        return y->qs;
    }
}


/* the activation block b: its quants, d and (Q8_1) s */
ST_Q32_INLINE const int8_t *
st_q32_aq(st_q32_kind kind, const void *a, int64_t b, float *d, float *s)
{
    if (st_q32_has_min(kind)) {
        const st_block_q8_1 *y = (const st_block_q8_1 *) a + b;

        *d = _cvtsh_ss(y->d);
        *s = _cvtsh_ss(y->s);
        return y->qs;
    } else {
        const st_block_q8_0 *y = (const st_block_q8_0 *) a + b;

        *d = _cvtsh_ss(y->d);
        *s = 0.0f;
        return y->qs;
    }
}


/*
 * Blocks i..i+3 of one weight row (pre-unpacked: u[4], sgn[4], dx[4],
 * mx[4]) against one activation row: adds the 4 block terms
 *   (dx * dy) * isum [+ mx * sy]
 * to sum in block order.
 */
ST_Q32_INLINE float
st_q32_step4(st_q32_kind kind, float sum, const __m256i u[4],
    const __m256i sgn[4], __m128 dx, __m128 mx, const void *a, int64_t i)
{
    short        dy[4], sy[4];
    const int8_t *q[4];
    __m128       t;
    int          k;

    for (k = 0; k < 4; k++) {
        q[k] = st_q32_aqh(kind, a, i + k, &dy[k], &sy[k]);
    }
    t = _mm_mul_ps(_mm_mul_ps(dx, st_q32_f16x4(dy[0], dy[1], dy[2], dy[3])),
                   _mm_cvtepi32_ps(
            st_q32_hsum4(st_q32_dot(kind, u[0], sgn[0], q[0]),
                         st_q32_dot(kind, u[1], sgn[1], q[1]),
                         st_q32_dot(kind, u[2], sgn[2], q[2]),
                         st_q32_dot(kind, u[3], sgn[3], q[3]))));
    if (st_q32_has_min(kind)) {
        t = _mm_add_ps(t, _mm_mul_ps(mx, st_q32_f16x4(sy[0], sy[1], sy[2],
                                                      sy[3])));
    }
    return st_q32_acc4(sum, t);
}


/* one block (the tail of a row) */
ST_Q32_INLINE float
st_q32_step1(st_q32_kind kind, float sum, const void *w, const void *a,
    int64_t i)
{
    __m256i      sgn, u = st_q32_weights(kind, (const uint8_t *) w
                                         + (size_t) i * st_q32_wsize(kind),
                                         &sgn);
    float        dy, sy, t;
    const int8_t *q = st_q32_aq(kind, a, i, &dy, &sy);

    t = (st_q32_wf16(kind, w, i, 0) * dy)
        * (float) st_q32_hsum(st_q32_dot(kind, u, sgn, q));
    if (st_q32_has_min(kind)) {
        t = t + st_q32_wf16(kind, w, i, 2) * sy;
    }
    return sum + t;
}


/* unpack blocks i..i+3 of a weight row */
ST_Q32_INLINE void
st_q32_unpack4(st_q32_kind kind, const void *w, int64_t i, __m256i u[4],
    __m256i sgn[4], __m128 *dx, __m128 *mx)
{
    size_t ws = st_q32_wsize(kind);
    int    k;

    for (k = 0; k < 4; k++) {
        u[k] = st_q32_weights(kind, (const uint8_t *) w + (size_t) (i + k) * ws,
                              &sgn[k]);
    }
    *dx = st_q32_f16x4(st_q32_wh(kind, w, i, 0), st_q32_wh(kind, w, i + 1, 0),
                       st_q32_wh(kind, w, i + 2, 0),
                       st_q32_wh(kind, w, i + 3, 0));
    *mx = st_q32_has_min(kind)
          ? st_q32_f16x4(st_q32_wh(kind, w, i, 2), st_q32_wh(kind, w, i + 1, 2),
                         st_q32_wh(kind, w, i + 2, 2),
                         st_q32_wh(kind, w, i + 3, 2))
          : _mm_setzero_ps();
}


/* the whole vec_dot of one row pair */
ST_Q32_INLINE float
st_q32_vec_dot(st_q32_kind kind, int64_t n, const void *w, const void *a)
{
    int64_t nb = n / 32, i = 0;
    float   sum = 0.0f;
    __m256i u[4], sgn[4];
    __m128  dx, mx;

    for (; i + 4 <= nb; i += 4) {
        st_q32_unpack4(kind, w, i, u, sgn, &dx, &mx);
        sum = st_q32_step4(kind, sum, u, sgn, dx, mx, a, i);
    }
    for (; i < nb; i++) {
        sum = st_q32_step1(kind, sum, w, a, i);
    }
    return sum;
}

/* The sum of the 8 int32 lanes of p (exact): the block sum of the
 * block-order vec_dots (Q4_0, IQ4_NL; quant_ref.c). */
ST_Q32_INLINE int32_t
st_q32_hsum_i32(__m256i p)
{
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(p),
                              _mm256_extracti128_si256(p, 1));

    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(h);
}

#endif /* ST_QUANT32_AVX2_H */
