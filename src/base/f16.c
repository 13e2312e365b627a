/*
 * IEEE half and bfloat16 conversions, rounding as ggml's (nearest even).
 */
#include "base/f16.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* f16 / bf16                                                           */
/* ------------------------------------------------------------------ */

float
st_f16_to_f32(st_f16 h)
{
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    float    f;

    if (exp == 0x1f) {
        /* inf / NaN: the payload moves to the top of the f32 mantissa */
        return st_bits_f32(sign | 0x7f800000 | (mant << 13));
    }
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in f32 */
        f = (float) mant * 0x1p-24f;
        return sign ? -f : f;
    }
    return st_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}


st_f16
st_f32_to_f16(float f)
{
    uint32_t x = st_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    uint32_t e, m, h, rem, half, shift;

    if (ax > 0x7f800000) {
        /* NaN: keep the top payload bits and set the quiet bit, like
         * F16C's vcvtps2ph (0x7fc00000 -> 0x7e00) */
        return (st_f16) (sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    }
    if (ax >= 0x477ff000) {
        /* >= 65520 (the midpoint between 65504 and 2^16, a tie that
         * rounds to the odd max's even neighbour): inf; also inf itself */
        return (st_f16) (sign | 0x7c00);
    }
    if (ax >= 0x38800000) {
        /* normal half: rebias the exponent, round 13 dropped bits */
        h = ((ax >> 23) - 112) << 10 | ((ax >> 13) & 0x3ff);
        rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) {
            h++;                /* a carry into the exponent is right */
        }
        return (st_f16) (sign | h);
    }
    /* below 2^-14: half subnormal, units of 2^-24 */
    e = ax >> 23;
    if (e < 102) {
        return (st_f16) sign;   /* < 2^-25 (incl. f32 subnormals): 0 */
    }
    m = (ax & 0x7fffff) | 0x800000;
    shift = 126 - e;            /* 14..24 */
    h = m >> shift;
    rem = m & ((1u << shift) - 1);
    half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) {
        h++;                    /* 0x3ff + 1 = smallest normal: right */
    }
    return (st_f16) (sign | h);
}


float
st_bf16_to_f32(st_bf16 h)
{
    return st_bits_f32((uint32_t) h << 16);
}


/*
 * ggml's GGML_FP32_TO_BF16: round to nearest even on the top 16 bits,
 * NaN made quiet (bit 6 of the bf16 set), subnormals kept (not flushed).
 * AVX512-BF16 hardware conversion (vcvtne2ps2bf16, which llama.cpp uses
 * for activation rows when built for it) flushes f32 subnormals to zero;
 * the two agree on every other input.
 */
st_bf16
st_f32_to_bf16(float f)
{
    uint32_t u = st_f32_bits(f);

    if ((u & 0x7fffffff) > 0x7f800000) {
        return (st_bf16) ((u >> 16) | 64);
    }
    return (st_bf16) ((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}
