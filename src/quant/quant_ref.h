/*
 * The scalar reference kernels (quant_ref.c), one per type and direction,
 * as the type table (quant_types.c), the SIMD kernels' tests and the test
 * quantizers (tools/lib/quantize.c) reach them. Callers in the engine go
 * through st_type_traits_get() instead.
 */
#ifndef ST_QUANT_REF_H
#define ST_QUANT_REF_H

#include "quant/quant.h"

/* ggml's nearest_int: round half to even, for |v| <= 4194303 */
int32_t st_nearest_int(float v);
void st_to_float_f32(const void *vx, float *y, int64_t n);
void st_to_float_f16(const void *vx, float *y, int64_t n);
void st_to_float_bf16(const void *vx, float *y, int64_t n);
void st_to_float_q4_0(const void *vx, float *y, int64_t n);
void st_to_float_q8_0(const void *vx, float *y, int64_t n);
void st_to_float_q4_K(const void *vx, float *y, int64_t n);
void st_to_float_q5_K(const void *vx, float *y, int64_t n);
void st_to_float_q6_K(const void *vx, float *y, int64_t n);
void st_to_float_q8_K(const void *vx, float *y, int64_t n);
void st_from_float_f32(const float *x, void *vy, int64_t n);
void st_from_float_f16(const float *x, void *vy, int64_t n);
void st_from_float_bf16(const float *x, void *vy, int64_t n);
void st_from_float_q8_0(const float *x, void *vy, int64_t n);
void st_from_float_q8_K(const float *x, void *vy, int64_t n);
void st_vec_dot_f32(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_f16(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_bf16(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q4_0(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q8_0(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q4_K(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q5_K(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q6_K(int64_t n, float *s, const void *vx, const void *vy);

/* Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS weights, Q8_1 activations */
extern const int8_t st_iq4nl_values[16];   /* ggml's kvalues_iq4nl */
/* Q3_K's 16 packed 6-bit scales, minus 32 */
void st_q3_K_scales(const uint8_t *q, int8_t sc[16]);
void st_to_float_q4_1(const void *vx, float *y, int64_t n);
void st_to_float_q5_0(const void *vx, float *y, int64_t n);
void st_to_float_q5_1(const void *vx, float *y, int64_t n);
void st_to_float_q8_1(const void *vx, float *y, int64_t n);
void st_to_float_q2_K(const void *vx, float *y, int64_t n);
void st_to_float_q3_K(const void *vx, float *y, int64_t n);
void st_to_float_iq4_nl(const void *vx, float *y, int64_t n);
void st_to_float_iq4_xs(const void *vx, float *y, int64_t n);
void st_from_float_q8_1(const float *x, void *vy, int64_t n);
void st_vec_dot_q4_1(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q5_0(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q5_1(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q2_K(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_q3_K(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy);
void st_vec_dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy);

#endif /* ST_QUANT_REF_H */
