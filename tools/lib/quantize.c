/*
 * Simple round-to-nearest weight quantizers, for tests and the synthetic
 * model writer (not bit-identical to llama-quantize: no error-minimizing
 * search). Not part of the engine library.
 */
#include "quantize.h"

#include "quant/quant_ref.h"

#include <math.h>
#include <string.h>

static void
st_put_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t *q)
{
    int j;

    for (j = 0; j < 4; j++) {
        q[j] = (uint8_t) ((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t) ((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t) ((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
    }
}


/* ------------------------------------------------------------------ */
/* weight quantizers (simple round to nearest)                          */
/* ------------------------------------------------------------------ */

/* Largest-magnitude value, signed (first one on ties). */
static float
st_signed_absmax(const float *x, int n)
{
    float max = 0.0f, amax = 0.0f;
    int   j;

    for (j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}


/*
 * Smallest f16 >= v, for a super-block scale: rounding the scale down
 * (which matters where it is an f16 subnormal) would leave the largest
 * sub-block scale above the 6/8-bit range and clip its values.
 */
static st_f16
st_f16_ceil(float v)
{
    st_f16 h = st_f32_to_f16(v);

    if (v > 0.0f && st_f16_to_f32(h) < v && h < 0x7bff) {
        h++;
    }
    return h;
}


static int
st_clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}


/* Non-finite or huge inputs must not reach st_nearest_int's range limit. */
static int
st_quant_level(float v, int lo, int hi)
{
    if (!(v > (float) lo)) {
        return lo;
    }
    if (!(v < (float) hi)) {
        return hi;
    }
    return st_clamp_int(st_nearest_int(v), lo, hi);
}


/*
 * q4_0: the largest-magnitude value m maps to -8: d = m / -8, so the
 * values span [-8d, 7d] on m's side; q = round(x / d) + 8 in 0..15
 * (using the stored f16 d).
 */
static void
st_quantize_q4_0(const float *x, void *vy, int64_t n)
{
    st_block_q4_0 *y = vy;
    int64_t        i, nb = n / ST_QK4_0;
    int            j, q0, q1;
    float          d, id;

    for (i = 0; i < nb; i++) {
        d = st_signed_absmax(x, ST_QK4_0) / -8.f;
        y[i].d = st_f32_to_f16(d);
        d = st_f16_to_f32(y[i].d);
        id = d != 0.0f ? 1.0f / d : 0.0f;
        for (j = 0; j < ST_QK4_0 / 2; j++) {
            q0 = st_quant_level(x[j] * id, -8, 7) + 8;
            q1 = st_quant_level(x[j + ST_QK4_0 / 2] * id, -8, 7) + 8;
            y[i].qs[j] = (uint8_t) (q0 | (q1 << 4));
        }
        x += ST_QK4_0;
    }
}


/*
 * Shared by q4_K (nmax 15) and q5_K (nmax 31): per 32-value sub-block the
 * affine map x ~ step * q - mn with mn = -min(0, min x) >= 0, step =
 * (max - min) / nmax. The super-block scales are d = max step / 63 and
 * dmin = max mn / 63 (f16); 6-bit scales are rounded UP so each
 * sub-block's range stays covered, mins to nearest. Outputs the 6-bit
 * values and the quants L[256] in 0..nmax.
 */
static void
st_quantize_k_affine(const float *x, int nmax, st_f16 *d_out,
    st_f16 *dmin_out, uint8_t sc[8], uint8_t m[8], uint8_t L[ST_QK_K])
{
    float step[8], mn[8], lo, hi, max_step = 0.0f, max_mn = 0.0f;
    float d, dmin, d1, m1, id1;
    int   j, l;

    for (j = 0; j < 8; j++) {
        lo = 0.0f;
        hi = 0.0f;
        for (l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * j + l]);
            hi = fmaxf(hi, x[32 * j + l]);
        }
        step[j] = (hi - lo) / (float) nmax;
        mn[j] = -lo;
        max_step = fmaxf(max_step, step[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    *d_out = st_f16_ceil(max_step / 63.f);
    *dmin_out = st_f32_to_f16(max_mn / 63.f);
    d = st_f16_to_f32(*d_out);
    dmin = st_f16_to_f32(*dmin_out);
    for (j = 0; j < 8; j++) {
        sc[j] = (uint8_t) (d > 0.0f
                ? st_clamp_int((int) ceilf(step[j] / d), 0, 63) : 0);
        m[j] = (uint8_t) (dmin > 0.0f
               ? st_quant_level(mn[j] / dmin, 0, 63) : 0);
        d1 = d * sc[j];
        m1 = dmin * m[j];
        id1 = d1 > 0.0f ? 1.0f / d1 : 0.0f;
        for (l = 0; l < 32; l++) {
            L[32 * j + l] = (uint8_t) st_quant_level((x[32 * j + l] + m1) * id1,
                                                     0, nmax);
        }
    }
}


static void
st_quantize_q4_K(const float *x, void *vy, int64_t n)
{
    st_block_q4_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            p, l;
    uint8_t        sc[8], m[8], L[ST_QK_K];

    for (i = 0; i < nb; i++) {
        st_quantize_k_affine(x, 15, &y[i].d, &y[i].dmin, sc, m, L);
        st_put_scale_min_k4(sc, m, y[i].scales);
        for (p = 0; p < 4; p++) {
            for (l = 0; l < 32; l++) {
                y[i].qs[32 * p + l] = (uint8_t) (L[64 * p + l]
                                                 | (L[64 * p + 32 + l] << 4));
            }
        }
        x += ST_QK_K;
    }
}


static void
st_quantize_q5_K(const float *x, void *vy, int64_t n)
{
    st_block_q5_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            p, l;
    uint8_t        sc[8], m[8], L[ST_QK_K], lo, hi;

    for (i = 0; i < nb; i++) {
        st_quantize_k_affine(x, 31, &y[i].d, &y[i].dmin, sc, m, L);
        st_put_scale_min_k4(sc, m, y[i].scales);
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (p = 0; p < 4; p++) {
            for (l = 0; l < 32; l++) {
                lo = L[64 * p + l];
                hi = L[64 * p + 32 + l];
                y[i].qs[32 * p + l] = (uint8_t) ((lo & 0xf)
                                                 | ((hi & 0xf) << 4));
                y[i].qh[l] |= (uint8_t) (((lo >> 4) << (2 * p))
                                         | ((hi >> 4) << (2 * p + 1)));
            }
        }
        x += ST_QK_K;
    }
}


/*
 * q6_K: symmetric per 16 values, step = amax / 31 so q - 32 stays in
 * -31..31; d = max step / 127 (f16); int8 scales rounded UP (1..127).
 */
static void
st_quantize_q6_K(const float *x, void *vy, int64_t n)
{
    st_block_q6_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            g, l, h, v;
    uint8_t        L[ST_QK_K], q1, q2, q3, q4;
    float          step[16], max_step, amax, d, d1, id1;

    for (i = 0; i < nb; i++) {
        max_step = 0.0f;
        for (g = 0; g < 16; g++) {
            amax = 0.0f;
            for (l = 0; l < 16; l++) {
                amax = fmaxf(amax, fabsf(x[16 * g + l]));
            }
            step[g] = amax / 31.f;
            max_step = fmaxf(max_step, step[g]);
        }
        y[i].d = st_f16_ceil(max_step / 127.f);
        d = st_f16_to_f32(y[i].d);
        for (g = 0; g < 16; g++) {
            y[i].scales[g] = (int8_t) (d > 0.0f
                ? st_clamp_int((int) ceilf(step[g] / d), 0, 127) : 0);
            d1 = d * y[i].scales[g];
            id1 = d1 > 0.0f ? 1.0f / d1 : 0.0f;
            for (l = 0; l < 16; l++) {
                v = 16 * g + l;
                L[v] = (uint8_t) (st_quant_level(x[v] * id1, -32, 31) + 32);
            }
        }
        for (h = 0; h < 2; h++) {
            for (l = 0; l < 32; l++) {
                q1 = L[128 * h + l];
                q2 = L[128 * h + l + 32];
                q3 = L[128 * h + l + 64];
                q4 = L[128 * h + l + 96];
                y[i].ql[64 * h + l] = (uint8_t) ((q1 & 0xf)
                                                 | ((q3 & 0xf) << 4));
                y[i].ql[64 * h + l + 32] = (uint8_t) ((q2 & 0xf)
                                                      | ((q4 & 0xf) << 4));
                y[i].qh[32 * h + l] = (uint8_t) ((q1 >> 4) | ((q2 >> 4) << 2)
                                                 | ((q3 >> 4) << 4)
                                                 | ((q4 >> 4) << 6));
            }
        }
        x += ST_QK_K;
    }
}


void
st_quantize_row(st_type type, const float *x, void *y, int64_t n)
{
    switch (type) {
    case ST_TYPE_F32:
        st_from_float_f32(x, y, n);
        break;
    case ST_TYPE_F16:
        st_from_float_f16(x, y, n);
        break;
    case ST_TYPE_BF16:
        st_from_float_bf16(x, y, n);
        break;
    case ST_TYPE_Q8_0:
        /* the activation quantizer is already round-to-nearest */
        st_from_float_q8_0(x, y, n);
        break;
    case ST_TYPE_Q8_K:
        st_from_float_q8_K(x, y, n);
        break;
    case ST_TYPE_Q4_0:
        st_quantize_q4_0(x, y, n);
        break;
    case ST_TYPE_Q4_K:
        st_quantize_q4_K(x, y, n);
        break;
    case ST_TYPE_Q5_K:
        st_quantize_q5_K(x, y, n);
        break;
    case ST_TYPE_Q6_K:
        st_quantize_q6_K(x, y, n);
        break;
    default:
        break;
    }
}
