/*
 * Scalar reference kernels of the tensor element types: dequantize,
 * activation quantizers, dot products. (The type table that points at them
 * is quant_types.c; the simple weight quantizers used by tests and the
 * synthetic-model writer are tools/lib/quantize.c.)
 *
 * What "reference" means here, per kernel family:
 *
 *   to_float    exactly ggml's dequantize_row_* arithmetic, operation for
 *               operation (so an embedding row equals llama.cpp's bit for
 *               bit).
 *   from_float  the activation quantizers, numerically equal to what
 *               llama.cpp's x86 CPU backend runs: Q8_0 follows the AVX
 *               quantize_row_q8_0 (d = amax / 127, multiplier 127 / amax,
 *               round half to even), Q8_K follows quantize_row_q8_K_ref
 *               (x86 has no SIMD version), F16/BF16 round to nearest even.
 *   vec_dot     exact integer sums per block, combined with the block
 *               scales the way ggml combines them; only the order of the
 *               float additions may differ from a SIMD kernel (each
 *               function says which order it uses).
 *   quantize    st_quantize_row(): plain round-to-nearest weight
 *               quantizers for tests and synthetic models; they are not
 *               llama-quantize (no error-minimizing search).
 *
 * Float arithmetic relies on IEEE single precision without contraction
 * (-std=c11 makes GCC use -ffp-contract=off; this file is built without
 * -mfma) and on the default round-to-nearest-even mode.
 */
#include "quant/quant_ref.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* rounding                                                             */
/* ------------------------------------------------------------------ */

/*
 * Round half to even for |v| <= 4194303 (ggml's nearest_int): adding
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits.
 */
int32_t
st_nearest_int(float v)
{
    float    t = v + 12582912.f;
    uint32_t i = st_f32_bits(t);

    return (int32_t) (i & 0x007fffff) - 0x00400000;
}


/*
 * _mm256_round_ps(v, _MM_ROUND_NEAREST) then _mm256_cvtps_epi32: half to
 * even; NaN and out-of-range give INT32_MIN ("integer indefinite").
 */
static int32_t
st_cvt_round_i32(float v)
{
    float r, frac;

    if (!(fabsf(v) < 2147483648.f)) {
        return INT32_MIN;
    }
    r = floorf(v);
    frac = v - r;               /* exact: r and v share the exponent range */
    if (frac > 0.5f || (frac == 0.5f && fmodf(r, 2.0f) != 0.0f)) {
        r += 1.0f;
    }
    return (int32_t) r;
}


/* packs_epi32 then packs_epi16: signed saturation to int8 */
static int8_t
st_sat_i8(int32_t v)
{
    return (int8_t) (v < -128 ? -128 : v > 127 ? 127 : v);
}


/* _mm_max_ps lane semantics: (a > b) ? a : b, so a NaN gives b */
static float
st_max_ps(float a, float b)
{
    return a > b ? a : b;
}


/* ------------------------------------------------------------------ */
/* K-quant scale packing                                                */
/* ------------------------------------------------------------------ */

/*
 * 8 sub-blocks, each a 6-bit scale and a 6-bit min, in 12 bytes:
 *   j < 4:  scale = q[j] & 63,   min = q[j + 4] & 63
 *   j >= 4: scale = (q[j + 4] & 15) | (q[j - 4] >> 6) << 4
 *           min   = (q[j + 4] >> 4) | (q[j] >> 6) << 4
 */
static void
st_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t) ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}



/* ------------------------------------------------------------------ */
/* to_float (dequantize)                                                */
/* ------------------------------------------------------------------ */

void
st_to_float_f32(const void *vx, float *y, int64_t n)
{
    memcpy(y, vx, (size_t) n * sizeof(float));
}


void
st_to_float_f16(const void *vx, float *y, int64_t n)
{
    const st_f16 *x = vx;
    int64_t       i;

    for (i = 0; i < n; i++) {
        y[i] = st_f16_to_f32(x[i]);
    }
}


void
st_to_float_bf16(const void *vx, float *y, int64_t n)
{
    const st_bf16 *x = vx;
    int64_t        i;

    for (i = 0; i < n; i++) {
        y[i] = st_bf16_to_f32(x[i]);
    }
}


/* y = (q - 8) * d; low nibbles are elements 0..15, high ones 16..31 */
void
st_to_float_q4_0(const void *vx, float *y, int64_t n)
{
    const st_block_q4_0 *x = vx;
    int64_t              i, nb = n / ST_QK4_0;
    int                  j;
    float                d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK4_0 / 2; j++) {
            y[j] = (float) ((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + ST_QK4_0 / 2] = (float) ((x[i].qs[j] >> 4) - 8) * d;
        }
        y += ST_QK4_0;
    }
}


void
st_to_float_q8_0(const void *vx, float *y, int64_t n)
{
    const st_block_q8_0 *x = vx;
    int64_t              i, nb = n / ST_QK8_0;
    int                  j;
    float                d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK8_0; j++) {
            y[j] = (float) x[i].qs[j] * d;
        }
        y += ST_QK8_0;
    }
}


/*
 * Per 64 values (two sub-blocks sharing 32 bytes of qs):
 *   y[l]      = d*sc(2p)   * (qs[l] & 15) - dmin*m(2p)
 *   y[l + 32] = d*sc(2p+1) * (qs[l] >> 4) - dmin*m(2p+1)
 * with d*sc and dmin*m rounded to f32 first, as ggml does.
 */
void
st_to_float_q4_K(const void *vx, float *y, int64_t n)
{
    const st_block_q4_K *x = vx;
    const uint8_t       *q;
    int64_t              i, nb = n / ST_QK_K;
    int                  p, l;
    uint8_t              sc, m;
    float                d, dmin, d1, m1, d2, m2;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        dmin = st_f16_to_f32(x[i].dmin);
        q = x[i].qs;
        for (p = 0; p < 4; p++) {
            st_get_scale_min_k4(2 * p, x[i].scales, &sc, &m);
            d1 = d * sc;
            m1 = dmin * m;
            st_get_scale_min_k4(2 * p + 1, x[i].scales, &sc, &m);
            d2 = d * sc;
            m2 = dmin * m;
            for (l = 0; l < 32; l++) {
                y[l] = d1 * (q[l] & 0xf) - m1;
            }
            for (l = 0; l < 32; l++) {
                y[l + 32] = d2 * (q[l] >> 4) - m2;
            }
            q += 32;
            y += 64;
        }
    }
}


/* As q4_K with a 5th bit from qh: bit 2p (low half) / 2p+1 (high half). */
void
st_to_float_q5_K(const void *vx, float *y, int64_t n)
{
    const st_block_q5_K *x = vx;
    const uint8_t       *ql, *qh;
    int64_t              i, nb = n / ST_QK_K;
    int                  p, l;
    uint8_t              sc, m, u1, u2;
    float                d, dmin, d1, m1, d2, m2;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        dmin = st_f16_to_f32(x[i].dmin);
        ql = x[i].qs;
        qh = x[i].qh;
        u1 = 1;
        u2 = 2;
        for (p = 0; p < 4; p++) {
            st_get_scale_min_k4(2 * p, x[i].scales, &sc, &m);
            d1 = d * sc;
            m1 = dmin * m;
            st_get_scale_min_k4(2 * p + 1, x[i].scales, &sc, &m);
            d2 = d * sc;
            m2 = dmin * m;
            for (l = 0; l < 32; l++) {
                y[l] = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
            }
            for (l = 0; l < 32; l++) {
                y[l + 32] = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            }
            ql += 32;
            y += 64;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}


/*
 * Per 128 values (64 bytes of ql, 32 of qh, 8 scales): for l < 32,
 *   q(l)      = (ql[l]      & 15) | (qh[l] >> 0 & 3) << 4
 *   q(l + 32) = (ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4
 *   q(l + 64) = (ql[l]      >> 4) | (qh[l] >> 4 & 3) << 4
 *   q(l + 96) = (ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4
 * y = d * scales[v / 16] * (q - 32), evaluated (d * scale) * q as ggml.
 */
void
st_to_float_q6_K(const void *vx, float *y, int64_t n)
{
    const st_block_q6_K *x = vx;
    const uint8_t       *ql, *qh;
    const int8_t        *sc;
    int64_t              i, nb = n / ST_QK_K;
    int                  h, l, is;
    int8_t               q1, q2, q3, q4;
    float                d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        ql = x[i].ql;
        qh = x[i].qh;
        sc = x[i].scales;
        for (h = 0; h < 2; h++) {
            for (l = 0; l < 32; l++) {
                is = l / 16;
                q1 = (int8_t) (((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32);
                q2 = (int8_t) (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4))
                               - 32);
                q3 = (int8_t) (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                q4 = (int8_t) (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4))
                               - 32);
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}


void
st_to_float_q8_K(const void *vx, float *y, int64_t n)
{
    const st_block_q8_K *x = vx;
    int64_t              i, nb = n / ST_QK_K;
    int                  j;

    for (i = 0; i < nb; i++) {
        for (j = 0; j < ST_QK_K; j++) {
            y[j] = x[i].d * x[i].qs[j];
        }
        y += ST_QK_K;
    }
}


/* ------------------------------------------------------------------ */
/* from_float (activation quantizers)                                   */
/* ------------------------------------------------------------------ */

void
st_from_float_f32(const float *x, void *vy, int64_t n)
{
    memcpy(vy, x, (size_t) n * sizeof(float));
}


void
st_from_float_f16(const float *x, void *vy, int64_t n)
{
    st_f16  *y = vy;
    int64_t  i;

    for (i = 0; i < n; i++) {
        y[i] = st_f32_to_f16(x[i]);
    }
}


void
st_from_float_bf16(const float *x, void *vy, int64_t n)
{
    st_bf16 *y = vy;
    int64_t  i;

    for (i = 0; i < n; i++) {
        y[i] = st_f32_to_bf16(x[i]);
    }
}


/*
 * max |x| over a block of 32, reduced in the lane order of llama.cpp's
 * x86 q8_0/q8_1 quantizers (so that even NaN inputs give the same
 * answer): lane k of an 8-wide max over x[k], x[8+k], x[16+k], x[24+k],
 * then high half against low half, 2 -> 1 -> scalar.
 */
static float
st_q8_amax(const float *x)
{
    float lane[8];
    int   j, k;

    for (k = 0; k < 8; k++) {
        lane[k] = fabsf(x[k]);
        for (j = 1; j < 4; j++) {
            lane[k] = st_max_ps(lane[k], fabsf(x[8 * j + k]));
        }
    }
    for (k = 0; k < 4; k++) {
        lane[k] = st_max_ps(lane[k + 4], lane[k]);
    }
    lane[0] = st_max_ps(lane[0], lane[2]);
    lane[1] = st_max_ps(lane[1], lane[3]);
    return st_max_ps(lane[0], lane[1]);
}


/*
 * llama.cpp's x86 (AVX/AVX2/AVX-512 builds) quantize_row_q8_0, in scalar
 * form. Per block of 32:
 *   amax = max |x| (reduced in the same lane order as the SIMD code, so
 *          that even NaN inputs give the same answer)
 *   d    = amax / 127.f, stored as f16 (round to nearest even)
 *   id   = amax != 0 ? 127.f / amax : 0   -- not 1 / d: the quotient is
 *          rounded once, which decides some ties
 *   q    = round-half-to-even(x * id), saturated to int8
 * The portable ggml reference (quantize_row_q8_0_ref) differs: it uses
 * id = 1 / d and roundf (half away from zero), which gives different
 * bytes for some inputs; llama.cpp never runs it on x86.
 */
void
st_from_float_q8_0(const float *x, void *vy, int64_t n)
{
    st_block_q8_0 *y = vy;
    int64_t        i, nb = n / ST_QK8_0;
    int            j;
    float          amax, d, id;

    for (i = 0; i < nb; i++) {
        amax = st_q8_amax(x);
        d = amax / 127.f;
        y[i].d = st_f32_to_f16(d);
        id = (amax != 0.0f) ? 127.f / amax : 0.0f;
        for (j = 0; j < ST_QK8_0; j++) {
            y[i].qs[j] = st_sat_i8(st_cvt_round_i32(x[j] * id));
        }
        x += ST_QK8_0;
    }
}


/*
 * ggml's quantize_row_q8_K_ref (llama.cpp's x86 quantize_row_q8_K calls
 * it). Per block of 256:
 *   max    = the first value with the largest |x| (signed)
 *   iscale = -127.f / max;  q = min(127, nearest_int(iscale * x))
 *   d      = 1 / iscale (f32);  bsums[g] = sum of q[16g .. 16g+15]
 * An all-zero block gets d = 0 and zero quants; its bsums are zeroed here
 * (ggml leaves them stale; with d = 0 they never contribute).
 */
void
st_from_float_q8_K(const float *x, void *vy, int64_t n)
{
    st_block_q8_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            j, g, sum;
    int32_t        v;
    float          max, amax, ax, iscale;

    for (i = 0; i < nb; i++) {
        max = 0.0f;
        amax = 0.0f;
        for (j = 0; j < ST_QK_K; j++) {
            ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            x += ST_QK_K;
            continue;
        }
        iscale = -127.f / max;
        for (j = 0; j < ST_QK_K; j++) {
            v = st_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t) (v < 127 ? v : 127);
        }
        for (g = 0; g < ST_QK_K / 16; g++) {
            sum = 0;
            for (j = 0; j < 16; j++) {
                sum += y[i].qs[16 * g + j];
            }
            y[i].bsums[g] = (int16_t) sum;
        }
        y[i].d = 1 / iscale;
        x += ST_QK_K;
    }
}


/* ------------------------------------------------------------------ */
/* vec_dot (scalar reference)                                           */
/* ------------------------------------------------------------------ */

/* Float rows: one f32 accumulator, elements in order 0..n-1. */
void
st_vec_dot_f32(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    float        sum = 0.0f;
    int64_t      i;

    for (i = 0; i < n; i++) {
        sum += x[i] * y[i];
    }
    *s = sum;
}


/* f16 x f16: each product is exact in f32 (11 x 11 mantissa bits); one
 * f32 accumulator in element order. */
void
st_vec_dot_f16(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_f16 *x = vx, *y = vy;
    float         sum = 0.0f;
    int64_t       i;

    for (i = 0; i < n; i++) {
        sum += st_f16_to_f32(x[i]) * st_f16_to_f32(y[i]);
    }
    *s = sum;
}


/* bf16 x bf16: products exact in f32 (8 x 8 mantissa bits); one f32
 * accumulator in element order. */
void
st_vec_dot_bf16(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_bf16 *x = vx, *y = vy;
    float          sum = 0.0f;
    int64_t        i;

    for (i = 0; i < n; i++) {
        sum += st_bf16_to_f32(x[i]) * st_bf16_to_f32(y[i]);
    }
    *s = sum;
}


/*
 * The 8-lane order of ggml's x86 Q8_0-family dot products (AVX2 vec_dot
 * and the tinyBLAS tiles llama.cpp uses for prefill, on AVX2 and AVX-512
 * builds alike): lane k of a 32-value block holds the exact integer sum
 * of products 4k .. 4k + 3; one 8-lane float accumulator per dot takes
 *   acc[k] = fma(d_x * d_y, (float) lane[k], acc[k])
 * block after block, and the dot is hsum_float_8(acc):
 *   ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)).
 * Every SIMD kernel and GEMM tile of these types repeats exactly this,
 * so that all levels give the same bits and the same bits as llama.cpp.
 */
typedef struct {
    float    acc[8];
} st_lanes8;


static void
st_lanes8_step(st_lanes8 *l, float d, const int32_t lane[8])
{
    int k;

    for (k = 0; k < 8; k++) {
        l->acc[k] = fmaf(d, (float) lane[k], l->acc[k]);
    }
}


static float
st_lanes8_hsum(const float acc[8])
{
    float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5];
    float s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];

    return (s0 + s2) + (s1 + s3);
}


/*
 * q4_0 x q8_0: one exact integer per block, then one fma chain per dot:
 *   sum = sum over the block's 32 values of (q4 - 8) * q8       (exact)
 *   acc = fma((float) sum, d_x * d_y, acc)                  block after block
 * and the dot is acc. This is llama.cpp's order for Q4_0 in its default
 * x86 build (the repacked GEMM and GEMV, ggml_gemm/gemv_q4_0_8x8_q8_0:
 * fmadd(cvtepi32(iacc), mul(col_scale, row_scale), acc)), not its
 * --no-repack vec_dot (the 8-lane order below): a GEMM in this order
 * keeps several weight rows in the lanes of one register and does the
 * float steps once per block for all of them.
 */
void
st_vec_dot_q4_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              i, nb = n / ST_QK4_0;
    int                  j;
    int32_t              sum;
    float                acc = 0.0f;

    for (i = 0; i < nb; i++) {
        sum = 0;
        for (j = 0; j < ST_QK4_0 / 2; j++) {
            sum += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j]
                   + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + ST_QK4_0 / 2];
        }
        acc = fmaf((float) sum,
                   st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d), acc);
    }
    *s = acc;
}


/* q8_0 x q8_0: the 8-lane order, lanes of q8_x * q8_y. */
void
st_vec_dot_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q8_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              i, nb = n / ST_QK8_0;
    int                  j;
    int32_t              lane[8];
    st_lanes8            l;

    memset(&l, 0, sizeof(l));
    for (i = 0; i < nb; i++) {
        memset(lane, 0, sizeof(lane));
        for (j = 0; j < ST_QK8_0; j++) {
            lane[j / 4] += x[i].qs[j] * y[i].qs[j];
        }
        st_lanes8_step(&l, st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d),
                       lane);
    }
    *s = st_lanes8_hsum(l.acc);
}


/*
 * q4_K x q8_K, per super-block of 256 (in order):
 *   isum = sum over 8 sub-blocks of  scale(j) * sum q4 * q8    (exact)
 *   msum = sum over 16 groups of     min(g / 2) * bsums[g]     (exact)
 *   d    = y.d * f16(x.d),   dmin = y.d * f16(x.dmin)
 *   sum -= dmin * msum;  sum += d * isum
 * which is  sum (d*sc*q - dmin*m) * q8 * y.d  with the mins term taken
 * from the activation's group sums, as every ggml kernel does.
 */
void
st_vec_dot_q4_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_K *x = vx;
    const st_block_q8_K *y = vy;
    const uint8_t       *q4;
    const int8_t        *q8;
    int64_t              i, nb = n / ST_QK_K;
    int                  j, l, g;
    int32_t              isum, msum, sub;
    uint8_t              sc[8], m[8];
    float                d, dmin, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        for (j = 0; j < 8; j++) {
            st_get_scale_min_k4(j, x[i].scales, &sc[j], &m[j]);
        }
        msum = 0;
        for (g = 0; g < ST_QK_K / 16; g++) {
            msum += y[i].bsums[g] * m[g / 2];
        }
        isum = 0;
        q4 = x[i].qs;
        q8 = y[i].qs;
        for (j = 0; j < 8; j += 2) {
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += (q4[l] & 0xf) * q8[l];
            }
            isum += sc[j] * sub;
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += (q4[l] >> 4) * q8[l + 32];
            }
            isum += sc[j + 1] * sub;
            q4 += 32;
            q8 += 64;
        }
        d = y[i].d * st_f16_to_f32(x[i].d);
        dmin = y[i].d * st_f16_to_f32(x[i].dmin);
        sum -= dmin * (float) msum;
        sum += d * (float) isum;
    }
    *s = sum;
}


/* q5_K x q8_K: as q4_K, with 5-bit quants (0..31). */
void
st_vec_dot_q5_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_K *x = vx;
    const st_block_q8_K *y = vy;
    const uint8_t       *ql, *qh;
    const int8_t        *q8;
    int64_t              i, nb = n / ST_QK_K;
    int                  j, l, g;
    int32_t              isum, msum, sub;
    uint8_t              sc[8], m[8], u1, u2;
    float                d, dmin, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        for (j = 0; j < 8; j++) {
            st_get_scale_min_k4(j, x[i].scales, &sc[j], &m[j]);
        }
        msum = 0;
        for (g = 0; g < ST_QK_K / 16; g++) {
            msum += y[i].bsums[g] * m[g / 2];
        }
        isum = 0;
        ql = x[i].qs;
        qh = x[i].qh;
        q8 = y[i].qs;
        u1 = 1;
        u2 = 2;
        for (j = 0; j < 8; j += 2) {
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) * q8[l];
            }
            isum += sc[j] * sub;
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * q8[l + 32];
            }
            isum += sc[j + 1] * sub;
            ql += 32;
            q8 += 64;
            u1 <<= 2;
            u2 <<= 2;
        }
        d = y[i].d * st_f16_to_f32(x[i].d);
        dmin = y[i].d * st_f16_to_f32(x[i].dmin);
        sum -= dmin * (float) msum;
        sum += d * (float) isum;
    }
    *s = sum;
}


/*
 * q6_K x q8_K, per super-block:
 *   isum = sum over 16 groups of  scales[g] * sum (q6 - 32) * q8  (exact)
 *   sum += (f16(x.d) * y.d) * isum
 */
void
st_vec_dot_q6_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q6_K *x = vx;
    const st_block_q8_K *y = vy;
    const uint8_t       *ql, *qh;
    const int8_t        *q8, *sc;
    int64_t              i, nb = n / ST_QK_K;
    int                  h, l, g;
    int32_t              isum, sub[8];
    int                  q[4];
    float                d, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        ql = x[i].ql;
        qh = x[i].qh;
        sc = x[i].scales;
        q8 = y[i].qs;
        isum = 0;
        for (h = 0; h < 2; h++) {
            /* sub[k]: group k of this 128-value half (16 values each) */
            memset(sub, 0, sizeof(sub));
            for (l = 0; l < 32; l++) {
                q[0] = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                q[1] = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                q[2] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                q[3] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                for (g = 0; g < 4; g++) {
                    sub[2 * g + l / 16] += q[g] * q8[l + 32 * g];
                }
            }
            for (g = 0; g < 8; g++) {
                isum += sc[g] * sub[g];
            }
            ql += 64;
            qh += 32;
            sc += 8;
            q8 += 128;
        }
        d = st_f16_to_f32(x[i].d) * y[i].d;
        sum += d * (float) isum;
    }
    *s = sum;
}


/* ------------------------------------------------------------------ */
/* the remaining weight types (Q4_1 .. IQ4_XS) and Q8_1                 */
/* ------------------------------------------------------------------ */

/*
 * The non-linear 4-bit grid of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
 */
const int8_t st_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10,
    1, 13, 25, 38, 53, 69, 89, 113
};


/*
 * Q3_K's 16 6-bit scales from 12 packed bytes (ggml's layout): scale j
 * has its low 4 bits in byte j (j < 8, low nibble) or byte j - 8 (high
 * nibble), and its top 2 bits in byte 8 + j % 4, bits 2 * (j / 4).
 * Returns the signed scales (stored value - 32).
 */
void
st_q3_K_scales(const uint8_t *q, int8_t sc[16])
{
    int j, lo, hi;

    for (j = 0; j < 16; j++) {
        lo = j < 8 ? q[j] & 0xf : q[j - 8] >> 4;
        hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (int8_t) ((lo | hi << 4) - 32);
    }
}


/* IQ4_XS sub-block j's scale minus 32 (-32..31). */
static int
st_iq4_xs_scale(const st_block_iq4_xs *b, int j)
{
    int lo = (b->scales_l[j / 2] >> (4 * (j % 2))) & 0xf;
    int hi = (b->scales_h >> (2 * j)) & 3;

    return (lo | hi << 4) - 32;
}


/* y = q * d + m (ggml's operand order), nibbles packed like q4_0 */
void
st_to_float_q4_1(const void *vx, float *y, int64_t n)
{
    const st_block_q4_1 *x = vx;
    int64_t              i, nb = n / ST_QK4_1;
    int                  j;
    float                d, m;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        m = st_f16_to_f32(x[i].m);
        for (j = 0; j < ST_QK4_1 / 2; j++) {
            y[j] = (float) (x[i].qs[j] & 0x0f) * d + m;
            y[j + ST_QK4_1 / 2] = (float) (x[i].qs[j] >> 4) * d + m;
        }
        y += ST_QK4_1;
    }
}


/* 5-bit value j of a q5_0/q5_1 block (0..31): low nibble | qh bit j << 4 */
static int
st_q5_value(const uint8_t *qs, const uint8_t *qh4, int j)
{
    uint32_t qh;
    int      lo;

    memcpy(&qh, qh4, 4);
    lo = j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
    return lo | (int) ((qh >> j) & 1) << 4;
}


/* y = (q - 16) * d */
void
st_to_float_q5_0(const void *vx, float *y, int64_t n)
{
    const st_block_q5_0 *x = vx;
    int64_t              i, nb = n / ST_QK5_0;
    int                  j;
    float                d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK5_0; j++) {
            y[j] = (float) (st_q5_value(x[i].qs, x[i].qh, j) - 16) * d;
        }
        y += ST_QK5_0;
    }
}


/* y = q * d + m */
void
st_to_float_q5_1(const void *vx, float *y, int64_t n)
{
    const st_block_q5_1 *x = vx;
    int64_t              i, nb = n / ST_QK5_1;
    int                  j;
    float                d, m;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        m = st_f16_to_f32(x[i].m);
        for (j = 0; j < ST_QK5_1; j++) {
            y[j] = (float) st_q5_value(x[i].qs, x[i].qh, j) * d + m;
        }
        y += ST_QK5_1;
    }
}


void
st_to_float_q8_1(const void *vx, float *y, int64_t n)
{
    const st_block_q8_1 *x = vx;
    int64_t              i, nb = n / ST_QK8_1;
    int                  j;
    float                d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK8_1; j++) {
            y[j] = (float) x[i].qs[j] * d;
        }
        y += ST_QK8_1;
    }
}


/*
 * q2_K: value v (0..255) is bits 2 * ((v % 128) / 32) of
 * qs[32 * (v / 128) + v % 32]; its group g = v / 16 has scale
 * scales[g] & 15 and min scales[g] >> 4:
 *   y = (d * sc) * q - (dmin * mn), both products rounded to f32 first.
 */
void
st_to_float_q2_K(const void *vx, float *y, int64_t n)
{
    const st_block_q2_K *x = vx;
    int64_t              i, nb = n / ST_QK_K;
    int                  v, g, q;
    float                d, dmin, dl, ml;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        dmin = st_f16_to_f32(x[i].dmin);
        for (g = 0; g < 16; g++) {
            dl = d * (float) (x[i].scales[g] & 0xf);
            ml = dmin * (float) (x[i].scales[g] >> 4);
            for (v = 16 * g; v < 16 * g + 16; v++) {
                q = (x[i].qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32)))
                    & 3;
                y[v] = dl * (float) q - ml;
            }
        }
        y += ST_QK_K;
    }
}


/* Q3_K value v: low 2 bits as q2_K's, minus 4 unless hmask[v % 32] has
 * bit v / 32 set: -4..3. */
static int
st_q3_K_value(const st_block_q3_K *b, int v)
{
    int q = (b->qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;

    return (b->hmask[v % 32] >> (v / 32)) & 1 ? q : q - 4;
}


/* y = (d * (scale - 32)) * q per group of 16 */
void
st_to_float_q3_K(const void *vx, float *y, int64_t n)
{
    const st_block_q3_K *x = vx;
    int64_t              i, nb = n / ST_QK_K;
    int                  v, g;
    int8_t               sc[16];
    float                d, dl;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        st_q3_K_scales(x[i].scales, sc);
        for (g = 0; g < 16; g++) {
            dl = d * (float) sc[g];
            for (v = 16 * g; v < 16 * g + 16; v++) {
                y[v] = dl * (float) st_q3_K_value(&x[i], v);
            }
        }
        y += ST_QK_K;
    }
}


/* y = d * table[nibble] */
void
st_to_float_iq4_nl(const void *vx, float *y, int64_t n)
{
    const st_block_iq4_nl *x = vx;
    int64_t                i, nb = n / ST_QK4_NL;
    int                    j;
    float                  d;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK4_NL / 2; j++) {
            y[j] = d * (float) st_iq4nl_values[x[i].qs[j] & 0xf];
            y[j + ST_QK4_NL / 2] = d * (float) st_iq4nl_values[x[i].qs[j] >> 4];
        }
        y += ST_QK4_NL;
    }
}


/* per 32-value sub-block j: y = (d * (ls - 32)) * table[nibble], the 16
 * bytes of qs[16 j ..] packed like an iq4_nl block */
void
st_to_float_iq4_xs(const void *vx, float *y, int64_t n)
{
    const st_block_iq4_xs *x = vx;
    int64_t                i, nb = n / ST_QK_K;
    int                    j, l;
    const uint8_t         *qs;
    float                  d, dl;

    for (i = 0; i < nb; i++) {
        d = st_f16_to_f32(x[i].d);
        for (j = 0; j < ST_QK_K / 32; j++) {
            dl = d * (float) st_iq4_xs_scale(&x[i], j);
            qs = x[i].qs + 16 * j;
            for (l = 0; l < 16; l++) {
                y[l] = dl * (float) st_iq4nl_values[qs[l] & 0xf];
                y[l + 16] = dl * (float) st_iq4nl_values[qs[l] >> 4];
            }
            y += 32;
        }
    }
}


/*
 * Q8_1 as llama.cpp's x86 quantize_row_q8_1 (the AVX path x86 builds
 * run): amax, d, id and q exactly as st_from_float_q8_0, then
 *   s = f16(d * (float) sum q)
 * with the sum taken over the rounded int32 values before saturation
 * (wrapping like the SIMD adds; it differs from the int8 sum only for
 * NaN inputs). ggml's portable quantize_row_q8_1_ref differs like its
 * q8_0 one (id = 1 / d, roundf).
 */
void
st_from_float_q8_1(const float *x, void *vy, int64_t n)
{
    st_block_q8_1 *y = vy;
    int64_t        i, nb = n / ST_QK8_1;
    int            j;
    int32_t        v;
    uint32_t       sum;
    float          d, id, amax;

    for (i = 0; i < nb; i++) {
        amax = st_q8_amax(x);
        d = amax / 127.f;
        y[i].d = st_f32_to_f16(d);
        id = (amax != 0.0f) ? 127.f / amax : 0.0f;
        sum = 0;
        for (j = 0; j < ST_QK8_1; j++) {
            v = st_cvt_round_i32(x[j] * id);
            sum += (uint32_t) v;
            y[i].qs[j] = st_sat_i8(v);
        }
        y[i].s = st_f32_to_f16(d * (float) (int32_t) sum);
        x += ST_QK8_1;
    }
}


/*
 * The dot products below share one float contract, which the SIMD
 * kernels reproduce bit for bit: every block's (or super-block's)
 * integer sums are exact, and the float work is, per block in block
 * order, exactly the expression given, with one f32 accumulator (no
 * contraction). For the 32-value types it is ggml's generic
 * ggml_vec_dot_*_generic expression.
 */

/* q4_1 x q8_1: sum += (dx * dy) * isum + mx * sy, isum = sum q * q8 */
void
st_vec_dot_q4_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q4_1 *x = vx;
    const st_block_q8_1 *y = vy;
    int64_t              i, nb = n / ST_QK4_1;
    int                  j;
    int32_t              isum;
    float                sum = 0.0f;

    for (i = 0; i < nb; i++) {
        isum = 0;
        for (j = 0; j < ST_QK4_1 / 2; j++) {
            isum += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            isum += (x[i].qs[j] >> 4) * y[i].qs[j + ST_QK4_1 / 2];
        }
        sum += (st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d)) * (float) isum
               + st_f16_to_f32(x[i].m) * st_f16_to_f32(y[i].s);
    }
    *s = sum;
}


/* q5_0 x q8_0: the 8-lane order (as q8_0), lanes of (q - 16) * q8 */
void
st_vec_dot_q5_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_0 *x = vx;
    const st_block_q8_0 *y = vy;
    int64_t              i, nb = n / ST_QK5_0;
    int                  j;
    int32_t              lane[8];
    st_lanes8            l;

    memset(&l, 0, sizeof(l));
    for (i = 0; i < nb; i++) {
        memset(lane, 0, sizeof(lane));
        for (j = 0; j < ST_QK5_0; j++) {
            lane[j / 4] += (st_q5_value(x[i].qs, x[i].qh, j) - 16)
                           * y[i].qs[j];
        }
        st_lanes8_step(&l, st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d),
                       lane);
    }
    *s = st_lanes8_hsum(l.acc);
}


/* q5_1 x q8_1: as q4_1 with 5-bit q */
void
st_vec_dot_q5_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q5_1 *x = vx;
    const st_block_q8_1 *y = vy;
    int64_t              i, nb = n / ST_QK5_1;
    int                  j;
    int32_t              isum;
    float                sum = 0.0f;

    for (i = 0; i < nb; i++) {
        isum = 0;
        for (j = 0; j < ST_QK5_1; j++) {
            isum += st_q5_value(x[i].qs, x[i].qh, j) * y[i].qs[j];
        }
        sum += (st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d)) * (float) isum
               + st_f16_to_f32(x[i].m) * st_f16_to_f32(y[i].s);
    }
    *s = sum;
}


/* iq4_nl x q8_0: the block order of q4_0 (llama.cpp's default x86 order
 * for IQ4_NL too: its repacked iq4_nl_8x8 GEMM/GEMV), sum = the block's
 * exact sum of table[q] * q8, acc = fma((float) sum, d_x * d_y, acc) */
void
st_vec_dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_iq4_nl *x = vx;
    const st_block_q8_0   *y = vy;
    int64_t                i, nb = n / ST_QK4_NL;
    int                    j;
    int32_t                sum;
    float                  acc = 0.0f;

    for (i = 0; i < nb; i++) {
        sum = 0;
        for (j = 0; j < ST_QK4_NL / 2; j++) {
            sum += st_iq4nl_values[x[i].qs[j] & 0xf] * y[i].qs[j]
                   + st_iq4nl_values[x[i].qs[j] >> 4]
                     * y[i].qs[j + ST_QK4_NL / 2];
        }
        acc = fmaf((float) sum,
                   st_f16_to_f32(x[i].d) * st_f16_to_f32(y[i].d), acc);
    }
    *s = acc;
}


/*
 * q2_K x q8_K, per super-block (ggml's generic expression):
 *   isum  = sum over 16 groups of (scales[g] & 15) * sum q * q8
 *   summs = sum over 16 groups of (scales[g] >> 4) * bsums[g]
 *   sum  += (y.d * f16(x.d)) * isum - (y.d * f16(x.dmin)) * summs
 */
void
st_vec_dot_q2_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q2_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              i, nb = n / ST_QK_K;
    int                  v, g, q;
    int32_t              isum, summs, sub;
    float                dall, dmin, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        isum = 0;
        summs = 0;
        for (g = 0; g < 16; g++) {
            sub = 0;
            for (v = 16 * g; v < 16 * g + 16; v++) {
                q = (x[i].qs[32 * (v / 128) + v % 32]
                     >> (2 * ((v % 128) / 32))) & 3;
                sub += q * y[i].qs[v];
            }
            isum += (x[i].scales[g] & 0xf) * sub;
            summs += (x[i].scales[g] >> 4) * y[i].bsums[g];
        }
        dall = y[i].d * st_f16_to_f32(x[i].d);
        dmin = y[i].d * st_f16_to_f32(x[i].dmin);
        sum += dall * (float) isum - dmin * (float) summs;
    }
    *s = sum;
}


/*
 * q3_K x q8_K: isum = sum over 16 groups of (scale - 32) * sum q * q8
 * (q in -4..3), sum += (y.d * f16(x.d)) * isum.
 */
void
st_vec_dot_q3_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_q3_K *x = vx;
    const st_block_q8_K *y = vy;
    int64_t              i, nb = n / ST_QK_K;
    int                  v, g;
    int8_t               sc[16];
    int32_t              isum, sub;
    float                d, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        st_q3_K_scales(x[i].scales, sc);
        isum = 0;
        for (g = 0; g < 16; g++) {
            sub = 0;
            for (v = 16 * g; v < 16 * g + 16; v++) {
                sub += st_q3_K_value(&x[i], v) * y[i].qs[v];
            }
            isum += sc[g] * sub;
        }
        d = y[i].d * st_f16_to_f32(x[i].d);
        sum += d * (float) isum;
    }
    *s = sum;
}


/*
 * iq4_xs x q8_K: isum = sum over 8 sub-blocks of (ls - 32) * sum
 * table[q] * q8, sum += (f16(x.d) * y.d) * isum.
 */
void
st_vec_dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy)
{
    const st_block_iq4_xs *x = vx;
    const st_block_q8_K   *y = vy;
    const uint8_t         *qs;
    const int8_t          *q8;
    int64_t                i, nb = n / ST_QK_K;
    int                    j, l;
    int32_t                isum, sub;
    float                  d, sum = 0.0f;

    for (i = 0; i < nb; i++) {
        isum = 0;
        for (j = 0; j < ST_QK_K / 32; j++) {
            qs = x[i].qs + 16 * j;
            q8 = y[i].qs + 32 * j;
            sub = 0;
            for (l = 0; l < 16; l++) {
                sub += st_iq4nl_values[qs[l] & 0xf] * q8[l];
                sub += st_iq4nl_values[qs[l] >> 4] * q8[l + 16];
            }
            isum += st_iq4_xs_scale(&x[i], j) * sub;
        }
        d = st_f16_to_f32(x[i].d) * y[i].d;
        sum += d * (float) isum;
    }
    *s = sum;
}
