/*
 * Element-wise F16 helpers for attention over an F16 KV cache, with
 * run-time dispatch (AVX2+F16C+FMA or scalar). Every function gives the
 * same bits as the plain scalar loop written in its comment, at every
 * kernel level (st_f32_to_f16 rounds to nearest even, as vcvtps2ph does;
 * fmaf rounds once, as vfmadd does).
 */
#ifndef ST_VEC_F16_H
#define ST_VEC_F16_H

#include "quant/quant.h"

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

/* x[i] = expf(x[i]), the C library's expf bit for bit (x86/vexp_avx2.c:
 * vectorised in double, with expf itself for the lanes it cannot
 * decide). The softmax of the fused kernels below calls it. */
void   st_vec_expf_avx2(float *x, int64_t n);
/* the same with 8 double lanes per register (x86/vexp_avx512.c) */
void   st_vec_expf_avx512(float *x, int64_t n);

/* ---- one query head's attention over an F16 KV cache, fused ----
 *
 * The same arithmetic, key for key, as this loop (ggml's CPU flash
 * attention with an F16 cache), which it must match bit for bit:
 *
 *   qf = st_vec_f16_round(q); acc = 0; M = -inf; S = 0
 *   for each key c:
 *       s = (float) st_vec_dot_f16_f32_d(hd, k_c, qf) * scale
 *       if (s > M) { ms = expf(M - s); M = s; vs = 1;
 *                    st_vec_f16_scale_round(acc, ms) }
 *       else       { ms = 1; vs = expf(s - M) }
 *       st_vec_f16_mad_round(acc, v_c, vs); S = S * ms + vs
 *   out = acc * (S == 0 ? 0 : 1 / S)
 *
 * Keys come in runs of rows `stride` elements apart (one KV block), so
 * a paged cache needs no offset table. One call advances n_heads
 * independent heads (states st[0..n_heads), head i's slice at element
 * head_off[i] of each key row) over the same keys: their dependency
 * chains then overlap in the CPU. */
typedef struct {
    float     M;
    float     S;
    uint32_t  hd;
    float     scale;
    float    *qf;                /* (hd) q rounded to F16 values */
    float    *acc;               /* (hd) F16-valued accumulator */
} st_attn_f16_state;

#define ST_ATTN_HEADS_MAX 8      /* n_heads bound of one run call */

typedef void (*st_attn_f16_run_fn)(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys);

/* The run kernel of the selected level (resolve once, call per run). */
st_attn_f16_run_fn st_attn_f16_run_kernel(void);
/* scratch: 2 * hd floats, owned by the caller. */
void st_attn_f16_begin(st_attn_f16_state *st, const float *q, uint32_t hd,
    float scale, float *scratch);
void st_attn_f16_end(const st_attn_f16_state *st, float *out);

/* Per-level runs (vec_f16.c, attn_f16_avx2.c, attn_f16_avx512.c). */
void st_attn_f16_run_scalar(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys);
void st_attn_f16_run_avx2(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys);
void st_attn_f16_run_avx512(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys);

/* y[i] = st_f32_to_f16(x[i]) with the selected level's converter (the
 * same bits at every level). */
void st_vec_f32_to_f16(const float *x, st_f16 *y, int64_t n);

#endif /* ST_VEC_F16_H */
