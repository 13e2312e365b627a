/*
 * F16 element-wise helpers (vec_f16.h): scalar reference and dispatch.
 */
#include "backend/cpu/vec_f16.h"
#include "backend/cpu/kernels.h"

#include <math.h>


static int
st_vec_f16_simd(void)
{
    return st_cpu_level_selected() >= ST_CPU_AVX2;
}


void
st_vec_f16_round(const float *x, float *y, int64_t n)
{
    int64_t i;

    if (st_vec_f16_simd()) {
        st_vec_f16_round_avx2(x, y, n);
        return;
    }
    for (i = 0; i < n; i++) {
        y[i] = st_f16_to_f32(st_f32_to_f16(x[i]));
    }
}


void
st_vec_f16_scale_round(float *acc, float s, int64_t n)
{
    int64_t i;

    if (st_vec_f16_simd()) {
        st_vec_f16_scale_round_avx2(acc, s, n);
        return;
    }
    for (i = 0; i < n; i++) {
        acc[i] = st_f16_to_f32(st_f32_to_f16(acc[i] * s));
    }
}


void
st_vec_f16_mad_round(float *acc, const st_f16 *v, float s, int64_t n)
{
    int64_t i;

    if (st_vec_f16_simd()) {
        st_vec_f16_mad_round_avx2(acc, v, s, n);
        return;
    }
    for (i = 0; i < n; i++) {
        acc[i] = st_f16_to_f32(st_f32_to_f16(fmaf(st_f16_to_f32(v[i]), s,
                                                  acc[i])));
    }
}


double
st_vec_dot_f16_f32_d(int64_t n, const st_f16 *k, const float *q)
{
    double  sum = 0.0;
    int64_t i;

    if (st_vec_f16_simd()) {
        return st_vec_dot_f16_f32_d_avx2(n, k, q);
    }
    for (i = 0; i < n; i++) {
        sum += (double) (st_f16_to_f32(k[i]) * q[i]);
    }
    return sum;
}


/* The reference composition (vec_f16.h), through the dispatching helpers
 * above: used at the scalar level and as the tests' yardstick. */
static void
st_attn_f16_run_one(st_attn_f16_state *st, const st_f16 *k, const st_f16 *v,
    size_t stride, uint32_t n_keys)
{
    uint32_t  c;
    float     M = st->M, S = st->S;

    for (c = 0; c < n_keys; c++) {
        const st_f16 *kr = k + (size_t) c * stride;
        const st_f16 *vr = v + (size_t) c * stride;
        double        dot;
        float         s, ms = 1.0f, vs = 1.0f;

        dot = st_vec_dot_f16_f32_d(st->hd, kr, st->qf);
        s = (float) dot * st->scale;
        if (s > M) {
            float m_old = M;
            M = s;
            ms = expf(m_old - M);
            st_vec_f16_scale_round(st->acc, ms, st->hd);
        } else {
            vs = expf(s - M);
        }
        st_vec_f16_mad_round(st->acc, vr, vs, st->hd);
        S = S * ms + vs;
    }
    st->M = M;
    st->S = S;
}


void
st_attn_f16_run_scalar(st_attn_f16_state *st, uint32_t n_heads,
    const size_t *head_off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys)
{
    uint32_t h;

    for (h = 0; h < n_heads; h++) {
        st_attn_f16_run_one(&st[h], k + head_off[h], v + head_off[h], stride,
                            n_keys);
    }
}


st_attn_f16_run_fn
st_attn_f16_run_kernel(void)
{
    st_cpu_level level = st_cpu_level_selected();

    if (level >= ST_CPU_AVX512) {
        return st_attn_f16_run_avx512;
    }
    return level >= ST_CPU_AVX2 ? st_attn_f16_run_avx2
                                : st_attn_f16_run_scalar;
}


void
st_attn_f16_begin(st_attn_f16_state *st, const float *q, uint32_t hd,
    float scale, float *scratch)
{
    uint32_t d;

    st->M = -INFINITY;
    st->S = 0.0f;
    st->hd = hd;
    st->scale = scale;
    st->qf = scratch;
    st->acc = scratch + hd;
    st_vec_f16_round(q, st->qf, hd);
    for (d = 0; d < hd; d++) {
        st->acc[d] = 0.0f;
    }
}


void
st_attn_f16_end(const st_attn_f16_state *st, float *out)
{
    float    s_inv = st->S == 0.0f ? 0.0f : 1.0f / st->S;
    uint32_t d;

    for (d = 0; d < st->hd; d++) {
        out[d] = st->acc[d] * s_inv;
    }
}


void
st_vec_f32_to_f16(const float *x, st_f16 *y, int64_t n)
{
    /* once per row, not per value: the level lookup is cheap enough */
    st_from_float_fn f = st_cpu_from_float(st_cpu_level_selected(),
                                           ST_TYPE_F16);

    f(x, y, n);
}
