/*
 * AVX-512 VNNI GEMM for Q4_0 weights in the block order (quant_ref.c):
 * every output is one fma chain over its blocks' exact integer sums,
 *   acc = fma((float) sum_b, d_w * d_a, acc),
 * so the 16 lanes of a register can hold 16 different weight rows: one
 * dpbusd then adds 4 products for each of 16 rows, and the float steps
 * (cvt, scale product, fma) are done once per block for 16 rows, where
 * the 8-lane order repeats them for every element (5 vector operations
 * per 64 multiply-adds; here 11 per 512).
 *
 * A call computes 16 weight rows x any number of activation rows (na =
 * 1: decode and prefill use the same kernel, hence the same bits). The
 * weights are transposed once per call, 32 blocks at a time, into
 * "lane = row" order (st_q4b_stage): for block b and value group k, lane
 * r holds the 4 nibbles (as bytes 0..15) of values 4k .. 4k + 3 of row r.
 * Then each activation row's 4 values of group k are broadcast and
 *   sum = dpbusd(sum, nibbles, values),  starting at -8 * sum(values)
 * (st_gemm_a_bsums), which is the exact sum of (q - 8) * a. Output
 * partial sums are kept in out between the 32-block chunks (an f32 store
 * and load change no bits).
 *
 * IQ4_NL takes Q4_0's order with its code-book values (+ 128 as u8).
 * Q4_1 (same nibbles, plus a min) and Q5_1 (plus a fifth bit) share the
 * layout and the integer part: their reference order is already one
 * float chain per dot, block after block, which vector mul/add over the
 * row lanes reproduce.
 */
#include "backend/cpu/kernels.h"
#include "quant/quant_ref.h"

#include <immintrin.h>
#include <string.h>

/* up to this many activation rows the weights, read once per call, are
 * what the call waits for: fetch the next call's rows meanwhile
 * (kernels.h); with more, the staged blocks are reused enough to hide it */
#define ST_PF_ROWS    32

#define ST_INLINE static inline __attribute__((always_inline))

#define ST_Q4B_NW     16         /* weight rows: the lanes of a zmm */
#define ST_Q4B_NC     8          /* activation rows per pass over a chunk */
#define ST_Q4B_CHUNK  32         /* blocks transposed at a time */
/* row offsets of a gather stay in int32: 15 * w_stride < 2^31 */
#define ST_Q4B_MAX_N  ((int64_t) 1 << 24)

/* The weight kinds: Q4_0 (block order: fma over the exact sums of
 * (q - 8) * a) and Q4_1, whose reference order (quant_ref.c) is already
 * one float chain per dot, block after block,
 *   sum = sum + ((d_x * d_y) * isum + m_x * s_y),   isum = sum of q * a,
 * so the same lane = row layout reproduces it with vector mul/add. */
enum { ST_Q4B_Q4_0, ST_Q4B_Q4_1, ST_Q4B_Q5_1, ST_Q4B_IQ4_NL };

/* the types with a min and Q8_1 activations */
#define ST_Q4B_MIN(kind)  ((kind) == ST_Q4B_Q4_1 || (kind) == ST_Q4B_Q5_1)

#define ST_Q4B_BS(kind)  ((kind) == ST_Q4B_Q5_1 ? sizeof(st_block_q5_1) \
                          : (kind) == ST_Q4B_Q4_1 ? sizeof(st_block_q4_1) \
                          : sizeof(st_block_q4_0))
/* offset of the nibbles (Q5_1: after d, m and the 32 fifth bits qh) */
#define ST_Q4B_QO(kind)  ((kind) == ST_Q4B_Q5_1 ? 8 \
                          : (kind) == ST_Q4B_Q4_1 ? 4 : 2)

typedef struct {
    __m512i q[ST_Q4B_CHUNK][8];  /* block, value group: lane = row */
    __m512  d[ST_Q4B_CHUNK];     /* block: lane r = row r's scale */
    __m512  m[ST_Q4B_CHUNK];     /* Q4_1: row r's min */
} st_q4b_stage;


/* IQ4_NL's 16 code-book values + 128, in every 128-bit lane: as u8 for
 * dpbusd; the sum then starts at -128 * sum(a) instead of -8 * sum(a) */
ST_INLINE __m512i
st_q4b_iq4nl_u8(void)
{
    return _mm512_xor_si512(_mm512_broadcast_i32x4(
                                _mm_loadu_si128((const __m128i *)
                                                st_iq4nl_values)),
                            _mm512_set1_epi8((char) 0x80));
}


/* Block i of the 16 rows at w: v[k] lane r = values 4k .. 4k + 3 of row
 * r as bytes, d lane r = its scale. */
ST_INLINE void
st_q4b_load16(int kind, const uint8_t *w, size_t w_stride, __m512i doff,
    int64_t i, __m512i v[8], __m512 *d, __m512 *mn)
{
    const uint8_t *p = w + (size_t) i * ST_Q4B_BS(kind);
    __m512i        gd;
    /* output lane t: dword (t / 8) [+ 2] of row t % 8, from z[0] (rows
     * 0..3, 4 dwords each) or z[1] (rows 4..7; index + 16) */
    const __m512i  i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28,
                                           1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i  i23 = _mm512_add_epi32(i01, _mm512_set1_epi32(2));
    const __m512i  m = _mm512_set1_epi8(0x0f);
    __m512i        z[4], a, b, c, e, t[4];
    int            q, j;

#pragma GCC unroll 4
    for (q = 0; q < 4; q++) {
        /* 128-bit lane l of z[q]: the 16 nibble bytes of row 4q + l */
        const uint8_t *r = p + ST_Q4B_QO(kind) + (size_t) (4 * q) * w_stride;
        __m512i        x = _mm512_castsi128_si512(
                               _mm_loadu_si128((const __m128i *) r));

        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)
                                   (r + w_stride)), 1);
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)
                                   (r + 2 * w_stride)), 2);
        z[q] = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)
                                      (r + 3 * w_stride)), 3);
    }
    a = _mm512_permutex2var_epi32(z[0], i01, z[1]);  /* dw 0 | 1, rows 0-7 */
    b = _mm512_permutex2var_epi32(z[0], i23, z[1]);  /* dw 2 | 3 */
    c = _mm512_permutex2var_epi32(z[2], i01, z[3]);  /* rows 8-15 */
    e = _mm512_permutex2var_epi32(z[2], i23, z[3]);
    t[0] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(1, 0, 1, 0));
    t[1] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(3, 2, 3, 2));
    t[2] = _mm512_shuffle_i64x2(b, e, _MM_SHUFFLE(1, 0, 1, 0));
    t[3] = _mm512_shuffle_i64x2(b, e, _MM_SHUFFLE(3, 2, 3, 2));
    /* byte 4j + s holds values 4j + s (low nibble), 16 + 4j + s (high) */
#pragma GCC unroll 4
    for (j = 0; j < 4; j++) {
        v[j] = _mm512_and_si512(t[j], m);
        v[j + 4] = _mm512_and_si512(_mm512_srli_epi32(t[j], 4), m);
    }
    if (kind == ST_Q4B_IQ4_NL) {
        /* the code-book values + 128 (u8): one byte shuffle */
        const __m512i tb = st_q4b_iq4nl_u8();

#pragma GCC unroll 8
        for (j = 0; j < 8; j++) {
            v[j] = _mm512_shuffle_epi8(tb, v[j]);
        }
    }
    if (kind == ST_Q4B_Q5_1) {
        /* bit j of qh is value j's fifth bit: the 4 bits of a value
         * group go to bit 4 of its 4 bytes (x * 0x02040810 moves bit s
         * to bit 8s + 4; the shifted copies do not overlap) */
        const __m512i qh = _mm512_i32gather_epi32(doff, p + 4, 1);

#pragma GCC unroll 8
        for (j = 0; j < 8; j++) {
            __m512i b = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * j),
                                         _mm512_set1_epi32(0xf));

            v[j] = _mm512_or_si512(v[j], _mm512_and_si512(
                       _mm512_mullo_epi32(b, _mm512_set1_epi32(0x02040810)),
                       _mm512_set1_epi32(0x10101010)));
        }
    }
    /* the scale is the first 2 bytes of each row's block (Q4_1: then
     * the min) */
    gd = _mm512_i32gather_epi32(doff, p, 1);
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gd));
    if (ST_Q4B_MIN(kind)) {
        *mn = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(
                  _mm512_srli_epi32(gd, 16)));
    }
}


ST_INLINE int32_t
st_q4b_ld32(const int8_t *p)
{
    int32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}


/* One block's float step for 16 rows (lanes) and one activation row:
 * Q4_0 acc = fma(s, d_w * d_a, acc); Q4_1 acc + ((d_w * d_y) * s +
 * m_w * s_y), y the Q8_1 activation block at ai. */
ST_INLINE __m512
st_q4b_step(int kind, __m512 acc, __m512i s, __m512 dw, __m512 mw,
    const uint8_t *ai, float da)
{
    if (ST_Q4B_MIN(kind)) {
        const st_block_q8_1 *y = (const st_block_q8_1 *) (const void *) ai;

        return _mm512_add_ps(acc, _mm512_add_ps(
                   _mm512_mul_ps(_mm512_mul_ps(dw,
                                     _mm512_set1_ps(_cvtsh_ss(y->d))),
                                 _mm512_cvtepi32_ps(s)),
                   _mm512_mul_ps(mw, _mm512_set1_ps(_cvtsh_ss(y->s)))));
    }
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                           _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc);
}


/* Activation rows c0 .. c0 + NC - 1 (nc of them; a constant after
 * inlining) over the staged blocks b0 .. b0 + nblk - 1. */
ST_INLINE void
st_q4b_pass(int kind, const st_q4b_stage *st, int64_t b0, int64_t nblk,
    const st_gemm_args *g, int64_t c0, int nc)
{
    /* activation blocks: Q8_0 (Q4_0) or Q8_1 (Q4_1: d, s, then qs) */
    size_t               ab = ST_Q4B_MIN(kind) ? sizeof(st_block_q8_1)
                                                  : sizeof(st_block_q8_0);
    size_t               ao = ST_Q4B_MIN(kind) ? 4 : 2;
    const uint8_t       *a[ST_Q4B_NC];
    const float         *as[ST_Q4B_NC] = { 0 };
    const int32_t       *cs[ST_Q4B_NC] = { 0 };
    float               *out[ST_Q4B_NC];
    __m512               acc[ST_Q4B_NC];
    int64_t              i;
    int                  c, k;

    for (c = 0; c < nc; c++) {
        a[c] = (const uint8_t *) g->a + (size_t) (c0 + c) * g->a_stride
               + (size_t) b0 * ab;
        if (!ST_Q4B_MIN(kind)) {
            as[c] = g->a_scales + (size_t) (c0 + c) * g->as_stride + b0;
            cs[c] = g->a_sums + (size_t) (c0 + c) * g->sums_stride + b0;
        }
        out[c] = g->out + (size_t) (c0 + c) * g->out_stride;
        acc[c] = b0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(out[c]);
    }
    for (i = 0; i < nblk; i++) {
        const __m512 dw = st->d[i];

#pragma GCC unroll 8
        for (c = 0; c < nc; c++) {
            const uint8_t *ai = a[c] + (size_t) i * ab;
            __m512i        s = kind == ST_Q4B_Q4_0
                               ? _mm512_set1_epi32(cs[c][i])
                               : kind == ST_Q4B_IQ4_NL
                               ? _mm512_set1_epi32(16 * cs[c][i])
                               : _mm512_setzero_si512();

#pragma GCC unroll 8
            for (k = 0; k < 8; k++) {
                s = _mm512_dpbusd_epi32(s, st->q[i][k],
                        _mm512_set1_epi32(st_q4b_ld32(
                            (const int8_t *) ai + ao + 4 * k)));
            }
            acc[c] = st_q4b_step(kind, acc[c], s, dw, st->m[i], ai,
                                 ST_Q4B_MIN(kind) ? 0.0f : as[c][i]);
        }
    }
    for (c = 0; c < nc; c++) {
        _mm512_storeu_ps(out[c], acc[c]);
    }
}


/* One activation row (decode), 8 weight rows: the weights are read once,
 * so they are not transposed; each zmm takes two rows in value order
 * (row 2p low half, 2p + 1 high), dpbusd gives the exact sums of 4
 * values per lane, and a tree of permutes and integer adds turns the 8
 * rows x 8 lanes into 8 row sums (exact: any order of integer adds). The
 * float steps are st_q4b_pass's, so the bits are the same. */
ST_INLINE void
st_q4b_gemv8(int kind, const st_gemm_args *g, const uint8_t *w, float *out,
    const char *nx, size_t nx_bytes)
{
    size_t               ab = ST_Q4B_MIN(kind) ? sizeof(st_block_q8_1)
                                                  : sizeof(st_block_q8_0);
    size_t               ao = ST_Q4B_MIN(kind) ? 4 : 2;
    size_t               qo = ST_Q4B_QO(kind);
    const __m512i        ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                                16, 18, 20, 22, 24, 26,
                                                28, 30);
    const __m512i        io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    const __m512i        m = _mm512_set1_epi8(0x0f);
    /* 64-bit lanes 2, 3 (and 6, 7) take the high nibbles: values 16..31 */
    const __m512i        sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    int64_t              nb = g->n / ST_QK4_0, i;
    size_t               ws = g->w_stride;
    __m256               acc = _mm256_setzero_ps();
    int                  p;

    for (i = 0; i < nb; i++) {
        const uint8_t *x = w + (size_t) i * ST_Q4B_BS(kind);
        const uint8_t *ai = (const uint8_t *) g->a + (size_t) i * ab;
        __m512i        y = _mm512_broadcast_i64x4(
                               _mm256_loadu_si256((const __m256i *)
                                                  (ai + ao)));
        /* Q4_0: lane = dpbusd(-8 * sum4(y), q, y) = the sum of
         * (q - 8) * y; Q4_1: q * y */
        __m512i        corr = ST_Q4B_MIN(kind) ? _mm512_setzero_si512()
                              : _mm512_sub_epi32(_mm512_setzero_si512(),
                                  _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                      _mm512_set1_epi8(kind == ST_Q4B_IQ4_NL
                                                       ? (char) 0x80 : 8),
                                      y));
        __m512i        l[4], s0, s1, t;
        __m256i        sum;
        st_f16         h[8], hm[8];
        __m256         dw, sf;

        st_prefetch_part(nx, nx_bytes, i, nb);
#pragma GCC unroll 4
        for (p = 0; p < 4; p++) {
            const uint8_t *ra = x + (size_t) (2 * p) * ws;
            __m512i        v = _mm512_inserti64x4(
                                   _mm512_castsi256_si512(
                                       _mm256_broadcastsi128_si256(
                                           _mm_loadu_si128((const __m128i *)
                                                           (ra + qo)))),
                                   _mm256_broadcastsi128_si256(
                                       _mm_loadu_si128((const __m128i *)
                                                       (ra + ws + qo))), 1);

            v = _mm512_and_si512(_mm512_srlv_epi64(v, sh), m);
            if (kind == ST_Q4B_IQ4_NL) {
                v = _mm512_shuffle_epi8(st_q4b_iq4nl_u8(), v);
            }
            if (kind == ST_Q4B_Q5_1) {
                uint32_t ha, hb;

                /* bit j of qh: value j's fifth bit */
                memcpy(&ha, ra + 4, 4);
                memcpy(&hb, ra + ws + 4, 4);
                v = _mm512_mask_add_epi8(v, (__mmask64) ha
                                            | (__mmask64) hb << 32,
                                         v, _mm512_set1_epi8(16));
            }
            l[p] = _mm512_dpbusd_epi32(corr, v, y);
        }
        /* rows x lanes 8 x 8 -> 8 x 4 -> 8 x 2 -> 8 x 1 */
        s0 = _mm512_add_epi32(_mm512_permutex2var_epi32(l[0], ie, l[1]),
                              _mm512_permutex2var_epi32(l[0], io, l[1]));
        s1 = _mm512_add_epi32(_mm512_permutex2var_epi32(l[2], ie, l[3]),
                              _mm512_permutex2var_epi32(l[2], io, l[3]));
        t = _mm512_add_epi32(_mm512_permutex2var_epi32(s0, ie, s1),
                             _mm512_permutex2var_epi32(s0, io, s1));
        sum = _mm512_castsi512_si256(_mm512_add_epi32(
                  _mm512_permutexvar_epi32(ie, t),
                  _mm512_permutexvar_epi32(io, t)));
#pragma GCC unroll 8
        for (p = 0; p < 8; p++) {
            memcpy(&h[p], x + (size_t) p * ws, sizeof(st_f16));
            if (ST_Q4B_MIN(kind)) {
                memcpy(&hm[p], x + (size_t) p * ws + 2, sizeof(st_f16));
            }
        }
        dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) h));
        sf = _mm256_cvtepi32_ps(sum);
        if (ST_Q4B_MIN(kind)) {
            const st_block_q8_1 *yb = (const st_block_q8_1 *)
                                      (const void *) ai;
            __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) hm));

            /* st_q4b_step's operations, 8 lanes */
            acc = _mm256_add_ps(acc, _mm256_add_ps(
                      _mm256_mul_ps(_mm256_mul_ps(dw,
                                        _mm256_set1_ps(_cvtsh_ss(yb->d))),
                                    sf),
                      _mm256_mul_ps(mw, _mm256_set1_ps(_cvtsh_ss(yb->s)))));
        } else {
            acc = _mm256_fmadd_ps(sf, _mm256_mul_ps(dw,
                                      _mm256_set1_ps(g->a_scales[i])), acc);
        }
    }
    _mm256_storeu_ps(out, acc);
}


ST_INLINE void
st_q4b_gemm(int kind, const st_gemm_args *g)
{
    st_q4b_stage st;
    int64_t      nb = g->n / ST_QK4_0, b0, nblk, i, c0;
    __m512i      doff = _mm512_mullo_epi32(
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                              10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32((int) g->w_stride));
    const char  *nx = (const char *) g->w + ST_Q4B_NW * g->w_stride;
    int          pf = g->n_a <= ST_PF_ROWS;

    if (g->n_a == 1) {
        /* each 8 rows fetch the next 8 (st_prefetch_part) */
        const uint8_t *w8 = (const uint8_t *) g->w + 8 * g->w_stride;

        st_q4b_gemv8(kind, g, g->w, g->out, (const char *) w8,
                     8 * g->w_stride);
        st_q4b_gemv8(kind, g, w8, g->out + 8, nx, 8 * g->w_stride);
        return;
    }
    for (b0 = 0; b0 < nb; b0 += nblk) {
        nblk = nb - b0 < ST_Q4B_CHUNK ? nb - b0 : ST_Q4B_CHUNK;
        for (i = 0; i < nblk; i++) {
            if (pf) {
                st_prefetch_part(nx, ST_Q4B_NW * g->w_stride, b0 + i, nb);
            }
            st_q4b_load16(kind, g->w, g->w_stride, doff, b0 + i, st.q[i],
                          &st.d[i], &st.m[i]);
        }
        for (c0 = 0; c0 + ST_Q4B_NC <= g->n_a; c0 += ST_Q4B_NC) {
            st_q4b_pass(kind, &st, b0, nblk, g, c0, ST_Q4B_NC);
        }
        for (; c0 < g->n_a; c0++) {
            st_q4b_pass(kind, &st, b0, nblk, g, c0, 1);
        }
    }
}


static void
st_gemm_q4_0_block_avx512(const st_gemm_args *g)
{
    st_q4b_gemm(ST_Q4B_Q4_0, g);
}


static void
st_gemm_q4_1_avx512(const st_gemm_args *g)
{
    st_q4b_gemm(ST_Q4B_Q4_1, g);
}


static void
st_gemm_q5_1_avx512(const st_gemm_args *g)
{
    st_q4b_gemm(ST_Q4B_Q5_1, g);
}


static void
st_gemm_iq4_nl_block_avx512(const st_gemm_args *g)
{
    st_q4b_gemm(ST_Q4B_IQ4_NL, g);
}


st_gemm_kernel
st_cpu_avx512_gemm_q4_0(void)
{
    st_gemm_kernel k = { st_gemm_q4_0_block_avx512, ST_Q4B_NW, 1,
                         ST_Q4B_MAX_N, ST_GEMM_A_SCALES | ST_GEMM_A_BSUMS };

    return k;
}


/* IQ4_NL: Q4_0's order and extras, its code book for the nibbles */
st_gemm_kernel
st_cpu_avx512_gemm_iq4_nl(void)
{
    st_gemm_kernel k = { st_gemm_iq4_nl_block_avx512, ST_Q4B_NW, 1,
                         ST_Q4B_MAX_N, ST_GEMM_A_SCALES | ST_GEMM_A_BSUMS };

    return k;
}


/* Q4_1 and Q5_1 read their activations' d and s from the Q8_1 blocks
 * themselves */
st_gemm_kernel
st_cpu_avx512_gemm_q4_1(int q5)
{
    st_gemm_kernel k = { q5 ? st_gemm_q5_1_avx512 : st_gemm_q4_1_avx512,
                         ST_Q4B_NW, 1, ST_Q4B_MAX_N, 0 };

    return k;
}
