/*
 * Element-wise F16 helpers for attention over an F16 KV cache, with
 * run-time dispatch (AVX2+F16C+FMA or scalar). Every function gives the
 * same bits as the plain scalar loop written in its comment, at every
 * kernel level (st_f32_to_f16 rounds to nearest even, as vcvtps2ph does;
 * fmaf rounds once, as vfmadd does).
 */
#ifndef ST_VEC_F16_H
#define ST_VEC_F16_H

#include "quant.h"

/* y[i] = st_f16_to_f32(st_f32_to_f16(x[i]))   (x == y allowed) */
void st_vec_f16_round(const float *x, float *y, int64_t n);

/* acc[i] = st_f16_to_f32(st_f32_to_f16(acc[i] * s)) */
void st_vec_f16_scale_round(float *acc, float s, int64_t n);

/* acc[i] = st_f16_to_f32(st_f32_to_f16(fmaf(st_f16_to_f32(v[i]), s,
 *                                            acc[i]))) */
void st_vec_f16_mad_round(float *acc, const st_f16 *v, float s, int64_t n);

/* sum over i of (double) (st_f16_to_f32(k[i]) * q[i]), the f32 products
 * added in double. When every q[i] is an f16 value each product is exact,
 * and the double sum is exact (hence independent of order, so equal to a
 * sequential loop) unless the terms' exponents span more than ~30 bits;
 * the SIMD version adds in 4 double lanes. */
double st_vec_dot_f16_f32_d(int64_t n, const st_f16 *k, const float *q);

/* Per-ISA versions (kernels_avx2.c). */
void   st_vec_f16_round_avx2(const float *x, float *y, int64_t n);
void   st_vec_f16_scale_round_avx2(float *acc, float s, int64_t n);
void   st_vec_f16_mad_round_avx2(float *acc, const st_f16 *v, float s,
           int64_t n);
double st_vec_dot_f16_f32_d_avx2(int64_t n, const st_f16 *k, const float *q);

#endif /* ST_VEC_F16_H */
