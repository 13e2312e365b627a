/*
 * Device code for the weight types Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL
 * and IQ4_XS: one element dequantized with the CPU's to_float arithmetic
 * (st_dq_qt, for the embedding and the cuBLAS prefill tiles) and one
 * block's contribution to a dot product with the CPU's vec_dot
 * arithmetic (st_block_term_qt, for the decode matvec; Q5_0 and IQ4_NL
 * are not block-term types, st_cuda_matvec.cu keeps their 8 lanes). Layouts are
 * ggml's (src/quant/quant.h); byte offsets are given in the comments.
 * Static device functions in a header, because the build does not link
 * device code across files (no -rdc); st_dq_qt is inline (only the
 * kernel file uses it), st_block_term_qt __noinline__: inlined into the
 * matvec, its __dp4a paths took the kernel from 96 to 127 registers on
 * sm_80 for every weight type; as a call it stays at 96 (8 bytes of
 * stack for the two terms). Marked unused for st_cuda_kernels.cu.
 * Included by .cu files only, after st_cuda_compat.h and
 * st_cuda_blocks.h.
 *
 * Activation types (as the CPU's vec_dot_type): Q8_0 for Q5_0 / IQ4_NL,
 * Q8_1 for Q4_1 / Q5_1, Q8_K for Q2_K / Q3_K / IQ4_XS.
 */
#ifndef ST_CUDA_QUANT_TYPES_H
#define ST_CUDA_QUANT_TYPES_H

#include <stdint.h>

#include "backend/cuda/st_cuda_kernels.h"

/* ggml's IQ4_NL / IQ4_XS code book (nibble -> value) as four words of
 * four int8 each, little-endian: -127 -104 -83 -65 | -49 -35 -22 -10 |
 * 1 13 25 38 | 53 69 89 113. Immediates, not a table: a __device__
 * array would need to be __constant__ on a GPU and plain in the shim. */
#define ST_IQ4NL_W0 0xbfad9881u
#define ST_IQ4NL_W1 0xf6eaddcfu
#define ST_IQ4NL_W2 0x26190d01u
#define ST_IQ4NL_W3 0x71594535u

static __device__ __forceinline__ int
st_iq4nl_value(uint32_t q)
{
    uint32_t k = (q & 0xf) >> 2;
    uint32_t w = k == 0 ? ST_IQ4NL_W0 : k == 1 ? ST_IQ4NL_W1
                 : k == 2 ? ST_IQ4NL_W2 : ST_IQ4NL_W3;

    return (int) (int8_t) (uint8_t) (w >> (8 * (q & 3)));
}


/* The code-book values of four nibbles (one in the low 4 bits of each
 * byte of n, high bits clear), as four int8 for __dp4a: two byte
 * permutations pick from values 0..7 and 8..15 by the low 3 bits, bit 3
 * chooses between them. */
static __device__ __forceinline__ int
st_iq4nl_values4(uint32_t n)
{
    uint32_t t = (n & 0x07070707u) | ((n & 0x07070707u) >> 4);
    uint32_t sel = (t & 0xffu) | ((t >> 8) & 0xff00u);
    uint32_t lo = __byte_perm(ST_IQ4NL_W0, ST_IQ4NL_W1, sel);
    uint32_t hi = __byte_perm(ST_IQ4NL_W2, ST_IQ4NL_W3, sel);
    uint32_t m = ((n >> 3) & 0x01010101u) * 0xffu;

    return (int) ((lo & ~m) | (hi & m));
}


/* Scale s (0..15) of a Q3_K block's 12 packed bytes, minus 32: low 4 bits
 * from byte s (s < 8) or the high nibble of byte s - 8, high 2 bits from
 * byte 8 + s % 4 at bit 2 * (s / 4). */
static __device__ __forceinline__ int
st_q3k_scale(const uint8_t *sc, uint32_t s)
{
    uint32_t lo = s < 8 ? (sc[s] & 0xfu) : (uint32_t) (sc[s - 8] >> 4);
    uint32_t hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3u;

    return (int) (lo | (hi << 4)) - 32;
}


/* Scale ib (0..7) of an IQ4_XS block, minus 32: low 4 bits from
 * scales_l (@4, two per byte), high 2 bits from scales_h (@2, LE). */
static __device__ __forceinline__ int
st_iq4xs_scale(const uint8_t *b, uint32_t ib)
{
    uint32_t h = st_ld16(b + 2);
    uint32_t lo = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0xfu;

    return (int) (lo | (((h >> (2 * ib)) & 3u) << 4)) - 32;
}


/* The 5th bit of element j (0..31) of a Q5_0/Q5_1 block: bit j of the
 * little-endian 32-bit qh. */
static __device__ __forceinline__ uint32_t
st_q5_high(const uint8_t *qh, uint32_t j)
{
    return ((uint32_t) qh[j / 8] >> (j % 8)) & 1u;
}


/* Element i of a weight row of one of the types above (ggml's
 * dequantize_row_* arithmetic); 0 for any other type. */
static __device__ inline float
st_dq_qt(int type, const uint8_t *row, uint32_t i)
{
    uint32_t j = i % 32;
    /* nibble-packed 32-blocks: element j < 16 is the low nibble of qs[j],
     * element j >= 16 the high nibble of qs[j - 16] */
    uint32_t qj = j % 16, hiq = j >= 16;

    switch (type) {
    case ST_CUDA_Q4_1: {
        /* 20 bytes: d f16, m f16 @2, qs[16] @4; x = q * d + m */
        const uint8_t *b = row + (size_t) (i / 32) * 20;
        int            q = hiq ? b[4 + qj] >> 4 : b[4 + qj] & 0xf;
        return (float) q * st_h2f(st_ld16(b)) + st_h2f(st_ld16(b + 2));
    }
    case ST_CUDA_Q5_0: {
        /* 22 bytes: d f16, qh[4] @2, qs[16] @6; x = (q - 16) * d */
        const uint8_t *b = row + (size_t) (i / 32) * 22;
        int            q = (int) ((hiq ? b[6 + qj] >> 4 : b[6 + qj] & 0xf)
                                  | (st_q5_high(b + 2, j) << 4)) - 16;
        return (float) q * st_h2f(st_ld16(b));
    }
    case ST_CUDA_Q5_1: {
        /* 24 bytes: d f16, m f16 @2, qh[4] @4, qs[16] @8; x = q * d + m */
        const uint8_t *b = row + (size_t) (i / 32) * 24;
        int            q = (int) ((hiq ? b[8 + qj] >> 4 : b[8 + qj] & 0xf)
                                  | (st_q5_high(b + 4, j) << 4));
        return (float) q * st_h2f(st_ld16(b)) + st_h2f(st_ld16(b + 2));
    }
    case ST_CUDA_IQ4_NL: {
        /* 18 bytes: d f16, qs[16] @2 (code book indices) */
        const uint8_t *b = row + (size_t) (i / 32) * 18;
        uint32_t       q = hiq ? b[2 + qj] >> 4 : b[2 + qj] & 0xf;
        return st_h2f(st_ld16(b)) * (float) st_iq4nl_value(q);
    }
    case ST_CUDA_IQ4_XS: {
        /* 136 bytes: d f16, scales_h u16 @2, scales_l[4] @4, qs[128] @8;
         * sub-block ib of 32 elements uses qs[16 ib .. 16 ib + 15] */
        const uint8_t *b = row + (size_t) (i / 256) * 136;
        uint32_t       ib = (i % 256) / 32;
        uint32_t       qb = b[8 + 16 * ib + qj];
        float          dl = st_h2f(st_ld16(b))
                            * (float) st_iq4xs_scale(b, ib);
        return dl * (float) st_iq4nl_value(hiq ? qb >> 4 : qb & 0xf);
    }
    case ST_CUDA_Q2_K:
    case ST_CUDA_Q3_K: {
        /* q2_K 84 bytes: scales[16], qs[64] @16, d f16 @80, dmin @82;
         * q3_K 110 bytes: hmask[32], qs[64] @32, scales[12] @96, d @108.
         * Element i of the block: half h = i / 128, shift pair s =
         * (i % 128) / 32, l = i % 32; 2 bits at bit 2 s of qs[32 h + l];
         * its 16-group (scale index) is 8 h + 2 s + l / 16. */
        uint32_t k = i % 256, h = k / 128, s = (k % 128) / 32, l = k % 32;
        uint32_t g = 8 * h + 2 * s + l / 16;

        if (type == ST_CUDA_Q2_K) {
            const uint8_t *b = row + (size_t) (i / 256) * 84;
            uint32_t       sc = b[g];
            int            q = (b[16 + 32 * h + l] >> (2 * s)) & 3;
            float          dl = st_h2f(st_ld16(b + 80)) * (float) (sc & 0xf);
            float          ml = st_h2f(st_ld16(b + 82)) * (float) (sc >> 4);
            return dl * (float) q - ml;
        } else {
            const uint8_t *b = row + (size_t) (i / 256) * 110;
            int            q = (b[32 + 32 * h + l] >> (2 * s)) & 3;
            float          dl = st_h2f(st_ld16(b + 108))
                                * (float) st_q3k_scale(b + 96, g);
            if (!(b[l] & (1u << (4 * h + s)))) {
                q -= 4;
            }
            return dl * (float) q;
        }
    }
    }
    return 0.0f;
}


/* The 5th bits of elements j .. j + 3 (j % 4 == 0) of a Q5_0/Q5_1 block
 * as bit 4 of each byte, to OR onto four nibbles for __dp4a. */
static __device__ __forceinline__ int
st_q5_high4(uint32_t qh, uint32_t j)
{
    uint32_t bits = (qh >> j) & 0xfu;

    return (int) (((bits & 1u) << 4) | ((bits & 2u) << 11)
                  | ((bits & 4u) << 18) | ((bits & 8u) << 25));
}


/*
 * Block b of a weight row (wr) times block b of the activation row (ar):
 * what the CPU's scalar vec_dot adds to its sum for this block, as in
 * st_block_term (st_cuda_matvec.cu). All of them are one-term types: *ta
 * = 0 and the CPU does sum += *tb (quant_ref.c). Integer sums are exact,
 * so __dp4a or element order give the same isum; the float operations
 * are the CPU's, in its order.
 */
static __device__ __noinline__ __attribute__((unused)) void
st_block_term_qt(int type, const uint8_t *wr, const uint8_t *ar, uint32_t b,
    float *ta, float *tb)
{
    int32_t isum = 0;
    int     j, l, g;

    *ta = 0.0f;
    switch (type) {
    case ST_CUDA_Q4_1:
    case ST_CUDA_Q5_1: {
        /* x (q4_1 20 / q5_1 24 bytes) . y (q8_1 36 bytes: d, s @2,
         * qs[32] @4): isum = sum q * q8; the min term from y's s */
        int            q5 = type == ST_CUDA_Q5_1;
        const uint8_t *x = wr + (size_t) b * (q5 ? 24 : 20);
        const uint8_t *y = ar + (size_t) b * 36;
        const uint8_t *qs = x + (q5 ? 8 : 4);
        uint32_t       qh = q5 ? (uint32_t) st_ld32_a2(x + 4) : 0;

        for (j = 0; j < 16; j += 4) {
            int q = st_ld32_a2(qs + j);
            int lo = (q & 0x0f0f0f0f), hi = ((q >> 4) & 0x0f0f0f0f);
            if (q5) {
                lo |= st_q5_high4(qh, (uint32_t) j);
                hi |= st_q5_high4(qh, (uint32_t) j + 16);
            }
            isum = __dp4a(lo, st_ld32_a2(y + 4 + j), isum);
            isum = __dp4a(hi, st_ld32_a2(y + 20 + j), isum);
        }
        *tb = (st_h2f(st_ld16(x)) * st_h2f(st_ld16(y))) * (float) isum
              + st_h2f(st_ld16(x + 2)) * st_h2f(st_ld16(y + 2));
        return;
    }
    case ST_CUDA_IQ4_XS: {
        /* x (136 bytes) . y (q8_K 292 bytes: d f32, qs[256] @4):
         * isum = sum over 8 sub-blocks of (scale - 32) * sum value * q8 */
        const uint8_t *x = wr + (size_t) b * 136;
        const uint8_t *y = ar + (size_t) b * 292;
        const uint8_t *qs = x + 8;
        const uint8_t *q8 = y + 4;
        uint32_t       ib;

        for (ib = 0; ib < 8; ib++) {
            int32_t sub = 0;
            for (j = 0; j < 16; j += 4) {
                uint32_t q = (uint32_t) st_ld32_a2(qs + j);
                sub = __dp4a(st_iq4nl_values4(q & 0x0f0f0f0fu),
                             st_ld32_a2(q8 + j), sub);
                sub = __dp4a(st_iq4nl_values4((q >> 4) & 0x0f0f0f0fu),
                             st_ld32_a2(q8 + 16 + j), sub);
            }
            isum += st_iq4xs_scale(x, ib) * sub;
            qs += 16;
            q8 += 32;
        }
        *tb = (st_h2f(st_ld16(x)) * *(const float *) y) * (float) isum;
        return;
    }
    case ST_CUDA_Q2_K:
    case ST_CUDA_Q3_K: {
        /* x (q2_K 84 / q3_K 110 bytes) . y (q8_K, bsums[16] int16 @260):
         * per 16-group g the exact sum of q * q8, times its scale
         * (q2_K: low nibble; q3_K: 6 bits - 32); q2_K's mins (high
         * nibbles) against y's group sums. Four 2-bit quants at a time
         * for __dp4a; q3_K's q = v - 4 (high bit clear) or v (set) is
         * taken as v + 4 * bit, and 4 * (the group's sum of q8, which is
         * bsums[g]) subtracted: the same integers. */
        int            q2 = type == ST_CUDA_Q2_K;
        const uint8_t *x = wr + (size_t) b * (q2 ? 84 : 110);
        const uint8_t *y = ar + (size_t) b * 292;
        const uint8_t *qs = x + (q2 ? 16 : 32), *hm = x;
        const uint8_t *q8 = y + 4;
        const int16_t *bsums = (const int16_t *) (y + 260);
        float          yd = *(const float *) y;
        uint32_t       h, s, gi;

        for (h = 0; h < 2; h++) {
            for (s = 0; s < 4; s++) {
                for (g = 0; g < 2; g++) {
                    int32_t sub = 0;

                    gi = 8 * h + 2 * s + (uint32_t) g;
                    for (l = 16 * g; l < 16 * g + 16; l += 4) {
                        int v = (st_ld32_a2(qs + 32 * h + (uint32_t) l)
                                 >> (2 * s)) & 0x03030303;
                        if (!q2) {
                            v |= ((st_ld32_a2(hm + l) >> (4 * h + s))
                                  & 0x01010101) << 2;
                        }
                        sub = __dp4a(v, st_ld32_a2(q8 + 128 * h + 32 * s
                                                   + (uint32_t) l), sub);
                    }
                    if (q2) {
                        isum += (int) (x[gi] & 0xf) * sub;
                    } else {
                        isum += st_q3k_scale(x + 96, gi)
                                * (sub - 4 * bsums[gi]);
                    }
                }
            }
        }
        if (q2) {
            int32_t msum = 0;

            for (g = 0; g < 16; g++) {
                msum += bsums[g] * (int) (x[g] >> 4);
            }
            /* one term, as ggml's generic expression (quant_ref.c) */
            *tb = (yd * st_h2f(st_ld16(x + 80))) * (float) isum
                  - (yd * st_h2f(st_ld16(x + 82))) * (float) msum;
        } else {
            *tb = (st_h2f(st_ld16(x + 108)) * yd) * (float) isum;
        }
        return;
    }
    }
    *tb = 0.0f;
}

#endif /* ST_CUDA_QUANT_TYPES_H */
