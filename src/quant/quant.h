/*
 * Tensor element types and block layouts (the GGUF/ggml on-disk formats),
 * with the scalar reference conversions and dot products.
 *
 * Numerics follow llama.cpp's CPU backend: a matmul converts its activation
 * row to the weight type's "vec_dot type" first (F16 -> F16, BF16 -> BF16,
 * Q4_0/Q5_0/IQ4_NL/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, Q2_K..Q6_K/IQ4_XS ->
 * Q8_K, F32 -> F32) and then takes
 * weight-row x activation-row dot products. The scalar functions here are
 * the reference; SIMD kernels in src/backend/cpu/ must agree with them.
 */
#ifndef ST_QUANT_H
#define ST_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/f16.h"

#if defined(__cplusplus) && !defined(_Static_assert)
#define _Static_assert static_assert   /* C++ includers (cuda/) */
#endif

/* Values are ggml's type ids as stored in GGUF tensor infos. */
typedef enum {
    ST_TYPE_F32  = 0,
    ST_TYPE_F16  = 1,
    ST_TYPE_Q4_0 = 2,
    ST_TYPE_Q4_1 = 3,
    ST_TYPE_Q5_0 = 6,
    ST_TYPE_Q5_1 = 7,
    ST_TYPE_Q8_0 = 8,
    ST_TYPE_Q8_1 = 9,
    ST_TYPE_Q2_K = 10,
    ST_TYPE_Q3_K = 11,
    ST_TYPE_Q4_K = 12,
    ST_TYPE_Q5_K = 13,
    ST_TYPE_Q6_K = 14,
    ST_TYPE_Q8_K = 15,
    ST_TYPE_IQ2_XXS = 16,
    ST_TYPE_IQ2_XS  = 17,
    ST_TYPE_IQ3_XXS = 18,
    ST_TYPE_IQ1_S   = 19,
    ST_TYPE_IQ4_NL  = 20,
    ST_TYPE_IQ3_S   = 21,
    ST_TYPE_IQ2_S   = 22,
    ST_TYPE_IQ4_XS  = 23,
    ST_TYPE_I8   = 24,
    ST_TYPE_I16  = 25,
    ST_TYPE_I32  = 26,
    ST_TYPE_I64  = 27,
    ST_TYPE_F64  = 28,
    ST_TYPE_IQ1_M = 29,
    ST_TYPE_BF16 = 30,
    /* 31..33 (Q4_0_4_4/4_8/8_8) and 36..38 (IQ4_NL_4_4/4_8/8_8) were
     * removed from ggml; like 4 and 5 (Q4_2, Q4_3) they have no traits. */
    ST_TYPE_TQ1_0 = 34,
    ST_TYPE_TQ2_0 = 35,
    ST_TYPE_MXFP4 = 39,
    ST_TYPE_NVFP4 = 40,
    ST_TYPE_COUNT = 41          /* upper bound of ids we know of */
} st_type;


#define ST_QK4_0  32
#define ST_QK8_0  32
#define ST_QK_K   256
#define ST_K_SCALE_SIZE 12

typedef struct {
    st_f16  d;                  /* scale */
    uint8_t qs[ST_QK4_0 / 2];   /* nibbles: low = elems 0..15, high = 16..31 */
} st_block_q4_0;                /* 18 bytes / 32 values */

typedef struct {
    st_f16  d;
    int8_t  qs[ST_QK8_0];
} st_block_q8_0;                /* 34 bytes / 32 values */

typedef struct {
    st_f16  d;                  /* super-block scale for scales */
    st_f16  dmin;               /* super-block scale for mins */
    uint8_t scales[ST_K_SCALE_SIZE]; /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qs[ST_QK_K / 2];
} st_block_q4_K;                /* 144 bytes / 256 values */

typedef struct {
    st_f16  d;                  /* super-block scale for scales */
    st_f16  dmin;               /* super-block scale for mins */
    uint8_t scales[ST_K_SCALE_SIZE]; /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qh[ST_QK_K / 8];    /* 5th bits: bit 2p / 2p+1 of qh[l] for
                                   element l of sub-block 2p / 2p+1 */
    uint8_t qs[ST_QK_K / 2];    /* low 4 bits, packed like q4_K */
} st_block_q5_K;                /* 176 bytes / 256 values */

typedef struct {
    uint8_t ql[ST_QK_K / 2];    /* low 4 bits */
    uint8_t qh[ST_QK_K / 4];    /* high 2 bits */
    int8_t  scales[ST_QK_K / 16];
    st_f16  d;
} st_block_q6_K;                /* 210 bytes / 256 values */

/* The remaining weight types, laid out as ggml-common.h defines them. */
#define ST_QK4_1  32
#define ST_QK5_0  32
#define ST_QK5_1  32
#define ST_QK8_1  32
#define ST_QK4_NL 32

typedef struct {
    st_f16  d;                  /* scale */
    st_f16  m;                  /* min: x = d * q + m */
    uint8_t qs[ST_QK4_1 / 2];   /* nibbles, packed like q4_0 */
} st_block_q4_1;                /* 20 bytes / 32 values */

typedef struct {
    st_f16  d;
    uint8_t qh[4];              /* 5th bits: bit j = element j (32 bits LE) */
    uint8_t qs[ST_QK5_0 / 2];   /* low 4 bits, packed like q4_0 */
} st_block_q5_0;                /* 22 bytes / 32 values; x = d * (q - 16) */

typedef struct {
    st_f16  d;
    st_f16  m;
    uint8_t qh[4];
    uint8_t qs[ST_QK5_1 / 2];
} st_block_q5_1;                /* 24 bytes / 32 values; x = d * q + m */

typedef struct {
    st_f16  d;                  /* scale */
    st_f16  s;                  /* d * sum(qs) */
    int8_t  qs[ST_QK8_1];
} st_block_q8_1;                /* 36 bytes / 32 values (activations only) */

typedef struct {
    uint8_t scales[ST_QK_K / 16]; /* low 4 bits scale, high 4 bits min */
    uint8_t qs[ST_QK_K / 4];      /* 2-bit quants */
    st_f16  d;                    /* super-block scale for scales */
    st_f16  dmin;                 /* super-block scale for mins */
} st_block_q2_K;                  /* 84 bytes / 256 values */

typedef struct {
    uint8_t hmask[ST_QK_K / 8];   /* high bit (set = no subtraction of 4) */
    uint8_t qs[ST_QK_K / 4];      /* low 2 bits */
    uint8_t scales[12];           /* 16 x 6-bit scales, packed */
    st_f16  d;                    /* super-block scale */
} st_block_q3_K;                  /* 110 bytes / 256 values */

typedef struct {
    st_f16  d;
    uint8_t qs[ST_QK4_NL / 2];    /* nibbles indexing the non-linear table */
} st_block_iq4_nl;                /* 18 bytes / 32 values */

typedef struct {
    st_f16   d;
    uint16_t scales_h;            /* high 2 bits of the 8 sub-block scales */
    uint8_t  scales_l[ST_QK_K / 64]; /* low 4 bits, two per byte */
    uint8_t  qs[ST_QK_K / 2];
} st_block_iq4_xs;                /* 136 bytes / 256 values */

typedef struct {
    float   d;
    int8_t  qs[ST_QK_K];
    int16_t bsums[ST_QK_K / 16];  /* sums of groups of 16 */
} st_block_q8_K;                /* 292 bytes / 256 values (activations only) */

_Static_assert(sizeof(st_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(st_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(st_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(st_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(st_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(st_block_q8_K) == 292, "q8_K layout");
_Static_assert(sizeof(st_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(st_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(st_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(st_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(st_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(st_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(st_block_iq4_nl) == 18, "iq4_nl layout");
_Static_assert(sizeof(st_block_iq4_xs) == 136, "iq4_xs layout");

/* Row conversions: n must be a multiple of the block size. */
typedef void (*st_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*st_from_float_fn)(const float *x, void *y, int64_t n);
/* s = dot(x, y) over n values; x in the weight type, y in its vec_dot type. */
typedef void (*st_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

typedef struct {
    const char       *name;        /* "q4_K" ... */
    uint32_t          block_size;  /* values per block */
    uint32_t          type_size;   /* bytes per block */
    int               supported;   /* usable as a model weight type */
    st_type           vec_dot_type;
    st_to_float_fn    to_float;    /* dequantize (reference) */
    st_from_float_fn  from_float;  /* quantize activations (reference,
                                      numerically equal to llama.cpp's);
                                      set for the vec_dot types only:
                                      F32, F16, BF16, Q8_0, Q8_1, Q8_K */
    st_vec_dot_fn     vec_dot;     /* scalar reference dot */
} st_type_traits;

/* vec_dot_type, to_float and vec_dot are meaningful only where set:
 * types without kernels have NULL functions and vec_dot_type = own id.
 * NULL for ids we do not know at all. block_size/type_size are known for
 * every ggml type so the loader can size tensors it will not use. */
const st_type_traits *st_type_traits_get(uint32_t type);
/* Bytes for n values of type t (n a multiple of the block size), 0 if
 * unknown or not a multiple. */
uint64_t st_row_bytes(uint32_t type, uint64_t n);

#endif /* ST_QUANT_H */
