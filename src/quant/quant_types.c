/*
 * The type table: block geometry of every ggml type id, and for the types
 * Starling computes with, their vec_dot type and reference kernels.
 */
#include "quant/quant_ref.h"

/* ------------------------------------------------------------------ */
/* type table                                                           */
/* ------------------------------------------------------------------ */

/* A type we can only size (no kernels). */
#define ST_SIZE_ONLY(id, nm, bs, ts)                                        \
    [id] = { nm, bs, ts, 0, id, NULL, NULL, NULL }

/*
 * Block sizes and bytes as ggml defines them (ggml-common.h). Ids 4, 5
 * (Q4_2, Q4_3), 31..33 (Q4_0_4_4, _4_8, _8_8) and 36..38 (IQ4_NL_4_4,
 * _4_8, _8_8) were removed from ggml, which rejects them in GGUF files;
 * they stay NULL here.
 */
static const st_type_traits st_traits[ST_TYPE_COUNT] = {
    [ST_TYPE_F32] = { "f32", 1, 4, 1, ST_TYPE_F32,
                      st_to_float_f32, st_from_float_f32, st_vec_dot_f32 },
    [ST_TYPE_F16] = { "f16", 1, 2, 1, ST_TYPE_F16,
                      st_to_float_f16, st_from_float_f16, st_vec_dot_f16 },
    [ST_TYPE_Q4_0] = { "q4_0", 32, 18, 1, ST_TYPE_Q8_0,
                       st_to_float_q4_0, NULL, st_vec_dot_q4_0 },
    [ST_TYPE_Q4_1] = { "q4_1", 32, 20, 1, ST_TYPE_Q8_1,
                       st_to_float_q4_1, NULL, st_vec_dot_q4_1 },
    [ST_TYPE_Q5_0] = { "q5_0", 32, 22, 1, ST_TYPE_Q8_0,
                       st_to_float_q5_0, NULL, st_vec_dot_q5_0 },
    [ST_TYPE_Q5_1] = { "q5_1", 32, 24, 1, ST_TYPE_Q8_1,
                       st_to_float_q5_1, NULL, st_vec_dot_q5_1 },
    [ST_TYPE_Q8_0] = { "q8_0", 32, 34, 1, ST_TYPE_Q8_0,
                       st_to_float_q8_0, st_from_float_q8_0, st_vec_dot_q8_0 },
    /* activations only: no dot of its own, not a weight type */
    [ST_TYPE_Q8_1] = { "q8_1", 32, 36, 0, ST_TYPE_Q8_1,
                       st_to_float_q8_1, st_from_float_q8_1, NULL },
    [ST_TYPE_Q2_K] = { "q2_K", 256, 84, 1, ST_TYPE_Q8_K,
                       st_to_float_q2_K, NULL, st_vec_dot_q2_K },
    [ST_TYPE_Q3_K] = { "q3_K", 256, 110, 1, ST_TYPE_Q8_K,
                       st_to_float_q3_K, NULL, st_vec_dot_q3_K },
    [ST_TYPE_Q4_K] = { "q4_K", 256, 144, 1, ST_TYPE_Q8_K,
                       st_to_float_q4_K, NULL, st_vec_dot_q4_K },
    [ST_TYPE_Q5_K] = { "q5_K", 256, 176, 1, ST_TYPE_Q8_K,
                       st_to_float_q5_K, NULL, st_vec_dot_q5_K },
    [ST_TYPE_Q6_K] = { "q6_K", 256, 210, 1, ST_TYPE_Q8_K,
                       st_to_float_q6_K, NULL, st_vec_dot_q6_K },
    /* activations only: no dot of its own, not a weight type */
    [ST_TYPE_Q8_K] = { "q8_K", 256, 292, 0, ST_TYPE_Q8_K,
                       st_to_float_q8_K, st_from_float_q8_K, NULL },
    ST_SIZE_ONLY(ST_TYPE_IQ2_XXS, "iq2_xxs", 256, 66),
    ST_SIZE_ONLY(ST_TYPE_IQ2_XS, "iq2_xs", 256, 74),
    ST_SIZE_ONLY(ST_TYPE_IQ3_XXS, "iq3_xxs", 256, 98),
    ST_SIZE_ONLY(ST_TYPE_IQ1_S, "iq1_s", 256, 50),
    [ST_TYPE_IQ4_NL] = { "iq4_nl", 32, 18, 1, ST_TYPE_Q8_0,
                         st_to_float_iq4_nl, NULL, st_vec_dot_iq4_nl },
    ST_SIZE_ONLY(ST_TYPE_IQ3_S, "iq3_s", 256, 110),
    ST_SIZE_ONLY(ST_TYPE_IQ2_S, "iq2_s", 256, 82),
    [ST_TYPE_IQ4_XS] = { "iq4_xs", 256, 136, 1, ST_TYPE_Q8_K,
                         st_to_float_iq4_xs, NULL, st_vec_dot_iq4_xs },
    ST_SIZE_ONLY(ST_TYPE_I8, "i8", 1, 1),
    ST_SIZE_ONLY(ST_TYPE_I16, "i16", 1, 2),
    ST_SIZE_ONLY(ST_TYPE_I32, "i32", 1, 4),
    ST_SIZE_ONLY(ST_TYPE_I64, "i64", 1, 8),
    ST_SIZE_ONLY(ST_TYPE_F64, "f64", 1, 8),
    ST_SIZE_ONLY(ST_TYPE_IQ1_M, "iq1_m", 256, 56),
    [ST_TYPE_BF16] = { "bf16", 1, 2, 1, ST_TYPE_BF16,
                       st_to_float_bf16, st_from_float_bf16, st_vec_dot_bf16 },
    ST_SIZE_ONLY(ST_TYPE_TQ1_0, "tq1_0", 256, 54),
    ST_SIZE_ONLY(ST_TYPE_TQ2_0, "tq2_0", 256, 66),
    ST_SIZE_ONLY(ST_TYPE_MXFP4, "mxfp4", 32, 17),
    ST_SIZE_ONLY(ST_TYPE_NVFP4, "nvfp4", 64, 36),
};


const st_type_traits *
st_type_traits_get(uint32_t type)
{
    if (type >= ST_TYPE_COUNT || st_traits[type].name == NULL) {
        return NULL;
    }
    return &st_traits[type];
}


uint64_t
st_row_bytes(uint32_t type, uint64_t n)
{
    const st_type_traits *tr = st_type_traits_get(type);

    if (tr == NULL || n % tr->block_size != 0
        || n / tr->block_size > UINT64_MAX / tr->type_size)
    {
        return 0;
    }
    return n / tr->block_size * tr->type_size;
}
