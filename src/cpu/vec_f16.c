/*
 * F16 element-wise helpers (vec_f16.h): scalar reference and dispatch.
 */
#include "vec_f16.h"
#include "kernels.h"

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
