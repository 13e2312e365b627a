/*
 * 16-bit float formats (bit patterns) and their conversions to and from
 * float: IEEE half (F16) and bfloat16 (BF16), rounded to nearest even.
 */
#ifndef ST_F16_H
#define ST_F16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t st_f16;       /* IEEE half, bit pattern */
typedef uint16_t st_bf16;      /* bfloat16, bit pattern */

float   st_f16_to_f32(st_f16 h);
st_f16  st_f32_to_f16(float f);      /* round to nearest even */
float   st_bf16_to_f32(st_bf16 h);
st_bf16 st_f32_to_bf16(float f);     /* round to nearest even (ggml's) */

static inline uint32_t
st_f32_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}


static inline float
st_bits_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

#endif /* ST_F16_H */
