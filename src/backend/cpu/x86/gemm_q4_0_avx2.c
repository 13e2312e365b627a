/*
 * AVX2 GEMM for Q4_0 weights in the block order (quant_ref.c): every
 * output is one fma chain over its blocks' exact integer sums,
 *   acc = fma((float) sum_b, d_w * d_a, acc),
 * so the 8 lanes of a register hold 8 different weight rows and the
 * float steps are done once per block for 8 rows (the AVX-512 kernel,
 * gemm_q4_0_avx512.c, does the same with 16).
 *
 * A call computes 8 weight rows x any number of activation rows (na =
 * 1: decode and prefill share the kernel and the bits). The weights are
 * transposed once per call, 32 blocks at a time, into "lane = row" order:
 * for block b and value group k, lane r of q[b][k] holds the 4 nibbles
 * (as bytes 0..15) of values 4k .. 4k + 3 of row r. Each activation
 * row's 4 values of a group are broadcast and multiplied with maddubs;
 * the 16-bit sums of all 8 groups cannot overflow (|pair| <= 2 * 15 *
 * 128, eight of them <= 30720 < 32767), so one madd per block turns them
 * into the 32-bit sum of q * a, and -8 * sum(a) (st_gemm_a_bsums) makes
 * it the exact sum of (q - 8) * a. IQ4_NL takes the same order on its
 * code-book values (signed, so maddubs(|v|, sign(a, v)) per group).
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

#define ST_Q4A_NW     8          /* weight rows: the lanes of a ymm */
#define ST_Q4A_NC     4          /* activation rows per pass over a chunk */
#define ST_Q4A_CHUNK  32         /* blocks transposed at a time */

/* Q4_0: nibbles; IQ4_NL: their code-book values (signed bytes) */
enum { ST_Q4A_Q4_0, ST_Q4A_IQ4_NL };

typedef struct {
    __m256i q[ST_Q4A_CHUNK][8];  /* block, value group: lane = row */
    __m256  d[ST_Q4A_CHUNK];     /* block: lane r = row r's scale */
} st_q4a_stage;


/* Block i of the 8 rows at w: v[k] lane r = values 4k .. 4k + 3 of row r
 * as bytes, d lane r = its scale. */
ST_INLINE void
st_q4a_load8(int kind, const uint8_t *w, size_t w_stride, int64_t i,
    __m256i v[8], __m256 *d)
{
    const uint8_t *p = w + (size_t) i * sizeof(st_block_q4_0);
    const __m256i  m = _mm256_set1_epi8(0x0f);
    __m256i        y[4], t0, t1, t2, t3, u[4];
    uint16_t       h[ST_Q4A_NW];
    int            r, j;

    /* y[r]: row r's 16 nibble bytes (low half), row r + 4's (high) */
#pragma GCC unroll 4
    for (r = 0; r < 4; r++) {
        y[r] = _mm256_inserti128_si256(
                   _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)
                       (p + 2 + (size_t) r * w_stride))),
                   _mm_loadu_si128((const __m128i *)
                       (p + 2 + (size_t) (r + 4) * w_stride)), 1);
    }
    /* 4 x 4 dword transposes in both halves: u[j] = dword j of rows
     * 0..3 | 4..7 = lane r holds dword j of row r */
    t0 = _mm256_unpacklo_epi32(y[0], y[1]);
    t1 = _mm256_unpackhi_epi32(y[0], y[1]);
    t2 = _mm256_unpacklo_epi32(y[2], y[3]);
    t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    u[0] = _mm256_unpacklo_epi64(t0, t2);
    u[1] = _mm256_unpackhi_epi64(t0, t2);
    u[2] = _mm256_unpacklo_epi64(t1, t3);
    u[3] = _mm256_unpackhi_epi64(t1, t3);
    /* byte 4j + s holds values 4j + s (low nibble), 16 + 4j + s (high) */
#pragma GCC unroll 4
    for (j = 0; j < 4; j++) {
        v[j] = _mm256_and_si256(u[j], m);
        v[j + 4] = _mm256_and_si256(_mm256_srli_epi32(u[j], 4), m);
    }
    if (kind == ST_Q4A_IQ4_NL) {
        const __m256i tb = _mm256_broadcastsi128_si256(
                               _mm_loadu_si128((const __m128i *)
                                               st_iq4nl_values));

#pragma GCC unroll 8
        for (j = 0; j < 8; j++) {
            v[j] = _mm256_shuffle_epi8(tb, v[j]);
        }
    }
#pragma GCC unroll 8
    for (r = 0; r < ST_Q4A_NW; r++) {
        memcpy(&h[r], p + (size_t) r * w_stride, sizeof(h[r]));
    }
    *d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) h));
}


ST_INLINE __m256i
st_q4a_bcast32(const int8_t *p)
{
    int32_t v;

    memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
}


/* Activation rows c0 .. c0 + nc - 1 (nc a constant after inlining) over
 * the staged blocks b0 .. b0 + nblk - 1. */
ST_INLINE void
st_q4a_pass(int kind, const st_q4a_stage *st, int64_t b0, int64_t nblk,
    const st_gemm_args *g, int64_t c0, int nc)
{
    const st_block_q8_0 *a[ST_Q4A_NC];
    const float         *as[ST_Q4A_NC];
    const int32_t       *cs[ST_Q4A_NC];
    float               *out[ST_Q4A_NC];
    __m256               acc[ST_Q4A_NC];
    int64_t              i;
    int                  c, k;

    for (c = 0; c < nc; c++) {
        a[c] = (const st_block_q8_0 *) ((const uint8_t *) g->a
                                        + (size_t) (c0 + c) * g->a_stride)
               + b0;
        as[c] = g->a_scales + (size_t) (c0 + c) * g->as_stride + b0;
        cs[c] = g->a_sums == NULL ? NULL   /* IQ4_NL */
                : g->a_sums + (size_t) (c0 + c) * g->sums_stride + b0;
        out[c] = g->out + (size_t) (c0 + c) * g->out_stride;
        acc[c] = b0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(out[c]);
    }
    for (i = 0; i < nblk; i++) {
        __m256i s16[ST_Q4A_NC], s32[ST_Q4A_NC];

        if (kind == ST_Q4A_IQ4_NL) {
            /* signed values up to 127: maddubs(|v|, sign(a, v)) pairs
             * reach 2 * 127 * 127, so each group goes to 32 bits */
#pragma GCC unroll 4
            for (c = 0; c < nc; c++) {
                s32[c] = _mm256_set1_epi32(0);
            }
#pragma GCC unroll 8
            for (k = 0; k < 8; k++) {
                const __m256i wk = st->q[i][k];
                const __m256i ak = _mm256_sign_epi8(wk, wk);

#pragma GCC unroll 4
                for (c = 0; c < nc; c++) {
                    __m256i p = _mm256_maddubs_epi16(ak, _mm256_sign_epi8(
                                    st_q4a_bcast32(a[c][i].qs + 4 * k), wk));

                    s32[c] = _mm256_add_epi32(s32[c], _mm256_madd_epi16(
                                 p, _mm256_set1_epi16(1)));
                }
            }
#pragma GCC unroll 4
            for (c = 0; c < nc; c++) {
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[c]),
                                         _mm256_mul_ps(st->d[i],
                                             _mm256_set1_ps(as[c][i])),
                                         acc[c]);
            }
            continue;
        }

#pragma GCC unroll 8
        for (k = 0; k < 8; k++) {
            const __m256i wk = st->q[i][k];

#pragma GCC unroll 4
            for (c = 0; c < nc; c++) {
                __m256i p = _mm256_maddubs_epi16(
                                wk, st_q4a_bcast32(a[c][i].qs + 4 * k));

                s16[c] = k == 0 ? p : _mm256_add_epi16(s16[c], p);
            }
        }
#pragma GCC unroll 4
        for (c = 0; c < nc; c++) {
            __m256i s = _mm256_add_epi32(
                            _mm256_madd_epi16(s16[c], _mm256_set1_epi16(1)),
                            _mm256_set1_epi32(cs[c][i]));

            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                     _mm256_mul_ps(st->d[i],
                                         _mm256_set1_ps(as[c][i])),
                                     acc[c]);
        }
    }
    for (c = 0; c < nc; c++) {
        _mm256_storeu_ps(out[c], acc[c]);
    }
}


ST_INLINE void
st_q4a_gemm(int kind, const st_gemm_args *g)
{
    st_q4a_stage st;
    int64_t      nb = g->n / ST_QK4_0, b0, nblk, i, c0;
    /* decode: the weights are read once, fetch the next call's rows
     * meanwhile (kernels.h) */
    const char  *nx = (const char *) g->w + ST_Q4A_NW * g->w_stride;
    int          pf = g->n_a <= ST_PF_ROWS;

    for (b0 = 0; b0 < nb; b0 += nblk) {
        nblk = nb - b0 < ST_Q4A_CHUNK ? nb - b0 : ST_Q4A_CHUNK;
        for (i = 0; i < nblk; i++) {
            if (pf) {
                st_prefetch_part(nx, ST_Q4A_NW * g->w_stride, b0 + i, nb);
            }
            st_q4a_load8(kind, g->w, g->w_stride, b0 + i, st.q[i],
                         &st.d[i]);
        }
        for (c0 = 0; c0 + ST_Q4A_NC <= g->n_a; c0 += ST_Q4A_NC) {
            st_q4a_pass(kind, &st, b0, nblk, g, c0, ST_Q4A_NC);
        }
        for (; c0 < g->n_a; c0++) {
            st_q4a_pass(kind, &st, b0, nblk, g, c0, 1);
        }
    }
}


static void
st_gemm_q4_0_block_avx2(const st_gemm_args *g)
{
    st_q4a_gemm(ST_Q4A_Q4_0, g);
}


static void
st_gemm_iq4_nl_block_avx2(const st_gemm_args *g)
{
    st_q4a_gemm(ST_Q4A_IQ4_NL, g);
}


/* IQ4_NL: Q4_0's block order on its code-book values; no sums needed */
st_gemm_kernel
st_cpu_avx2_gemm_iq4_nl(void)
{
    st_gemm_kernel k = { st_gemm_iq4_nl_block_avx2, ST_Q4A_NW, 1, INT64_MAX,
                         ST_GEMM_A_SCALES };

    return k;
}


st_gemm_kernel
st_cpu_avx2_gemm_q4_0(void)
{
    st_gemm_kernel k = { st_gemm_q4_0_block_avx2, ST_Q4A_NW, 1, INT64_MAX,
                         ST_GEMM_A_SCALES | ST_GEMM_A_BSUMS };

    return k;
}
