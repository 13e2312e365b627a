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


/* ------------------------------------------------------------------ */
/* Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS                         */
/* ------------------------------------------------------------------ */

/* Pack 32 quants (0..31) of a q5 block: low nibbles like q4_0, bit 4 of
 * value j to qh bit j. */
static void
st_pack_q5(const uint8_t L[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    int      j;

    for (j = 0; j < 16; j++) {
        qs[j] = (uint8_t) ((L[j] & 0xf) | ((L[j + 16] & 0xf) << 4));
    }
    for (j = 0; j < 32; j++) {
        h |= (uint32_t) (L[j] >> 4) << j;
    }
    memcpy(qh, &h, 4);
}


/*
 * Affine 32-value blocks (q4_1: nmax 15, q5_1: nmax 31): m = min x
 * (f16), d = (max - m) / nmax (f16), q = round((x - m) / d) in 0..nmax
 * with the stored d and m.
 */
static void
st_quantize_affine32(const float *x, int nmax, st_f16 *d_out, st_f16 *m_out,
    uint8_t L[32])
{
    float lo = x[0], hi = x[0], d, m, id;
    int   j;

    for (j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    *m_out = st_f32_to_f16(lo);
    m = st_f16_to_f32(*m_out);
    *d_out = st_f16_ceil((hi - m) / (float) nmax);
    d = st_f16_to_f32(*d_out);
    id = d > 0.0f ? 1.0f / d : 0.0f;
    for (j = 0; j < 32; j++) {
        L[j] = (uint8_t) st_quant_level((x[j] - m) * id, 0, nmax);
    }
}


static void
st_quantize_q4_1(const float *x, void *vy, int64_t n)
{
    st_block_q4_1 *y = vy;
    int64_t        i, nb = n / ST_QK4_1;
    int            j;
    uint8_t        L[32];

    for (i = 0; i < nb; i++) {
        st_quantize_affine32(x, 15, &y[i].d, &y[i].m, L);
        for (j = 0; j < 16; j++) {
            y[i].qs[j] = (uint8_t) (L[j] | (L[j + 16] << 4));
        }
        x += ST_QK4_1;
    }
}


static void
st_quantize_q5_1(const float *x, void *vy, int64_t n)
{
    st_block_q5_1 *y = vy;
    int64_t        i, nb = n / ST_QK5_1;
    uint8_t        L[32];

    for (i = 0; i < nb; i++) {
        st_quantize_affine32(x, 31, &y[i].d, &y[i].m, L);
        st_pack_q5(L, y[i].qs, y[i].qh);
        x += ST_QK5_1;
    }
}


/* q5_0: as q4_0 with 5 bits: the largest-magnitude value maps to -16 */
static void
st_quantize_q5_0(const float *x, void *vy, int64_t n)
{
    st_block_q5_0 *y = vy;
    int64_t        i, nb = n / ST_QK5_0;
    int            j;
    uint8_t        L[32];
    float          d, id;

    for (i = 0; i < nb; i++) {
        d = st_signed_absmax(x, ST_QK5_0) / -16.f;
        y[i].d = st_f32_to_f16(d);
        d = st_f16_to_f32(y[i].d);
        id = d != 0.0f ? 1.0f / d : 0.0f;
        for (j = 0; j < 32; j++) {
            L[j] = (uint8_t) (st_quant_level(x[j] * id, -16, 15) + 16);
        }
        st_pack_q5(L, y[i].qs, y[i].qh);
        x += ST_QK5_0;
    }
}


/* Bit position of value v in the q2_K/q3_K 2-bit array. */
static void
st_put_2bit(uint8_t qs[64], int v, int q)
{
    qs[32 * (v / 128) + v % 32] |= (uint8_t) ((q & 3)
                                              << (2 * ((v % 128) / 32)));
}


/*
 * q2_K: per 16 values an affine map x ~ step * q - mn, q in 0..3,
 * mn = -min(0, min x); 4-bit scales (rounded up) and mins against
 * d = max step / 15, dmin = max mn / 15 (f16).
 */
static void
st_quantize_q2_K(const float *x, void *vy, int64_t n)
{
    st_block_q2_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            g, l, sc, mi;
    float          step[16], mn[16], lo, hi, max_step, max_mn, d, dmin;
    float          d1, m1, id1;

    for (i = 0; i < nb; i++) {
        max_step = 0.0f;
        max_mn = 0.0f;
        for (g = 0; g < 16; g++) {
            lo = 0.0f;
            hi = 0.0f;
            for (l = 0; l < 16; l++) {
                lo = fminf(lo, x[16 * g + l]);
                hi = fmaxf(hi, x[16 * g + l]);
            }
            step[g] = (hi - lo) / 3.f;
            mn[g] = -lo;
            max_step = fmaxf(max_step, step[g]);
            max_mn = fmaxf(max_mn, mn[g]);
        }
        y[i].d = st_f16_ceil(max_step / 15.f);
        y[i].dmin = st_f32_to_f16(max_mn / 15.f);
        d = st_f16_to_f32(y[i].d);
        dmin = st_f16_to_f32(y[i].dmin);
        memset(y[i].qs, 0, sizeof(y[i].qs));
        for (g = 0; g < 16; g++) {
            sc = d > 0.0f ? st_clamp_int((int) ceilf(step[g] / d), 0, 15) : 0;
            mi = dmin > 0.0f ? st_quant_level(mn[g] / dmin, 0, 15) : 0;
            y[i].scales[g] = (uint8_t) (sc | mi << 4);
            d1 = d * (float) sc;
            m1 = dmin * (float) mi;
            id1 = d1 > 0.0f ? 1.0f / d1 : 0.0f;
            for (l = 0; l < 16; l++) {
                st_put_2bit(y[i].qs, 16 * g + l,
                            st_quant_level((x[16 * g + l] + m1) * id1, 0, 3));
            }
        }
        x += ST_QK_K;
    }
}


/*
 * q3_K: symmetric per 16 values, step = amax / 4 (q in -4..3, the
 * positive end clipped at 3); 6-bit scales 0..31 (rounded up, stored
 * + 32) against d = max step / 31 (f16).
 */
static void
st_quantize_q3_K(const float *x, void *vy, int64_t n)
{
    st_block_q3_K *y = vy;
    int64_t        i, nb = n / ST_QK_K;
    int            g, l, v, q, sc[16];
    float          step[16], amax, max_step, d, d1, id1;

    for (i = 0; i < nb; i++) {
        max_step = 0.0f;
        for (g = 0; g < 16; g++) {
            amax = 0.0f;
            for (l = 0; l < 16; l++) {
                amax = fmaxf(amax, fabsf(x[16 * g + l]));
            }
            step[g] = amax / 4.f;
            max_step = fmaxf(max_step, step[g]);
        }
        y[i].d = st_f16_ceil(max_step / 31.f);
        d = st_f16_to_f32(y[i].d);
        memset(y[i].qs, 0, sizeof(y[i].qs));
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        memset(y[i].scales, 0, sizeof(y[i].scales));
        for (g = 0; g < 16; g++) {
            sc[g] = d > 0.0f ? st_clamp_int((int) ceilf(step[g] / d), 0, 31)
                             : 0;
            d1 = d * (float) sc[g];
            id1 = d1 > 0.0f ? 1.0f / d1 : 0.0f;
            for (l = 0; l < 16; l++) {
                v = 16 * g + l;
                q = st_quant_level(x[v] * id1, -4, 3);
                if (q >= 0) {
                    y[i].hmask[v % 32] |= (uint8_t) (1u << (v / 32));
                    st_put_2bit(y[i].qs, v, q);
                } else {
                    st_put_2bit(y[i].qs, v, q + 4);
                }
            }
        }
        /* inverse of st_q3_K_scales: low nibbles, then the top 2 bits */
        for (g = 0; g < 16; g++) {
            int u = sc[g] + 32;

            if (g < 8) {
                y[i].scales[g] |= (uint8_t) (u & 0xf);
            } else {
                y[i].scales[g - 8] |= (uint8_t) ((u & 0xf) << 4);
            }
            y[i].scales[8 + g % 4] |= (uint8_t) ((u >> 4) << (2 * (g / 4)));
        }
        x += ST_QK_K;
    }
}


/* index of the grid value nearest to v (the first on ties) */
static int
st_iq4_nearest(float v)
{
    int   k, best = 0;
    float e, best_e = fabsf(v - (float) st_iq4nl_values[0]);

    for (k = 1; k < 16; k++) {
        e = fabsf(v - (float) st_iq4nl_values[k]);
        if (e < best_e) {
            best_e = e;
            best = k;
        }
    }
    return best;
}


/* 32 values against scale dl into iq4_nl-packed nibbles */
static void
st_quantize_iq4_32(const float *x, float dl, uint8_t qs[16])
{
    float id = dl != 0.0f ? 1.0f / dl : 0.0f;
    int   j, lo, hi;

    for (j = 0; j < 16; j++) {
        lo = dl != 0.0f ? st_iq4_nearest(x[j] * id) : 8;
        hi = dl != 0.0f ? st_iq4_nearest(x[j + 16] * id) : 8;
        qs[j] = (uint8_t) (lo | hi << 4);
    }
}


/* iq4_nl: the largest-magnitude value maps to the grid's -127 */
static void
st_quantize_iq4_nl(const float *x, void *vy, int64_t n)
{
    st_block_iq4_nl *y = vy;
    int64_t          i, nb = n / ST_QK4_NL;

    for (i = 0; i < nb; i++) {
        y[i].d = st_f32_to_f16(st_signed_absmax(x, ST_QK4_NL) / -127.f);
        st_quantize_iq4_32(x, st_f16_to_f32(y[i].d), y[i].qs);
        x += ST_QK4_NL;
    }
}


/*
 * iq4_xs: per 32 values the scale s = signed max / -127 (as iq4_nl);
 * d = max |s| / 31 (f16, rounded up), ls = round(s / d) in -31..31.
 */
static void
st_quantize_iq4_xs(const float *x, void *vy, int64_t n)
{
    st_block_iq4_xs *y = vy;
    int64_t          i, nb = n / ST_QK_K;
    int              j, ls, u;
    float            sub[8], max_s, d;

    for (i = 0; i < nb; i++) {
        max_s = 0.0f;
        for (j = 0; j < 8; j++) {
            sub[j] = st_signed_absmax(x + 32 * j, 32) / -127.f;
            max_s = fmaxf(max_s, fabsf(sub[j]));
        }
        y[i].d = st_f16_ceil(max_s / 31.f);
        d = st_f16_to_f32(y[i].d);
        y[i].scales_h = 0;
        memset(y[i].scales_l, 0, sizeof(y[i].scales_l));
        for (j = 0; j < 8; j++) {
            ls = d > 0.0f ? st_quant_level(sub[j] / d, -31, 31) : 0;
            u = ls + 32;
            y[i].scales_l[j / 2] |= (uint8_t) ((u & 0xf) << (4 * (j % 2)));
            y[i].scales_h |= (uint16_t) ((u >> 4) << (2 * j));
            st_quantize_iq4_32(x + 32 * j, d * (float) ls, y[i].qs + 16 * j);
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
    case ST_TYPE_Q8_1:
        st_from_float_q8_1(x, y, n);
        break;
    case ST_TYPE_Q4_1:
        st_quantize_q4_1(x, y, n);
        break;
    case ST_TYPE_Q5_0:
        st_quantize_q5_0(x, y, n);
        break;
    case ST_TYPE_Q5_1:
        st_quantize_q5_1(x, y, n);
        break;
    case ST_TYPE_Q2_K:
        st_quantize_q2_K(x, y, n);
        break;
    case ST_TYPE_Q3_K:
        st_quantize_q3_K(x, y, n);
        break;
    case ST_TYPE_IQ4_NL:
        st_quantize_iq4_nl(x, y, n);
        break;
    case ST_TYPE_IQ4_XS:
        st_quantize_iq4_xs(x, y, n);
        break;
    default:
        break;
    }
}
