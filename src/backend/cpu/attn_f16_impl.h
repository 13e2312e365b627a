/*
 * Body of the fused F16 attention kernels (vec_f16.h), included by
 * attn_f16_avx2.c and attn_f16_avx512.c after they define the vector
 * width and operations:
 *
 *   ST_VL            floats per vector      ST_VF        vector type
 *   ST_VLOAD(p) ST_VSTORE(p, v) ST_VSET1(x) ST_VMUL(a, b)
 *   ST_VFMA(a, b, c) = a * b + c, one rounding
 *   ST_VRT(v)        round every lane to F16 and back (nearest even)
 *   ST_VLOADH(p)     ST_VL F16 values as floats
 *   ST_ATTN_HD_MAX   G * hd bound for the register-resident path
 *   ST_VEXPF(x, n)   expf over an array, libm's bits (vec_f16.h)
 *   st_attn_dot_d()  the reference K.Q dot, same operations as
 *                    st_vec_dot_f16_f32_d_avx2
 *
 * Bit-identical to the reference loop of separate st_vec_* calls; it
 * only removes their per-key overheads:
 *
 * 1. scores of a chunk of keys are computed first (they do not depend
 *    on the running max), then scalar passes turn them into the rescale /
 *    weight factors (expf, the running max M and the sum S, in the same
 *    order as the reference); the exponentials of a chunk are one
 *    st_vec_expf_avx2 call, equal to expf lane for lane;
 *    A level may define ST_ATTN_HAVE_DOT8 and st_attn_dot8() to score 8
 *    keys at once with the same arithmetic; the scalar passes run the
 *    heads of a group interleaved;
 * 2. the V pass keeps the accumulators of a group of heads in registers
 *    for the usual head sizes; the heads' dependency chains (fma, round
 *    to F16, per key) are independent, so they overlap.
 */
#ifndef ST_ATTN_F16_IMPL_H
#define ST_ATTN_F16_IMPL_H

#include <math.h>

#define ST_ATTN_CHUNK  64        /* keys scored per pass */

/* Scores of n keys, then the softmax factors in key order: w[j] is the
 * rescale factor ms when up[j] (a new max; the key's own weight is 1),
 * else the key's weight vs. The running max depends on the scores only,
 * so the expf arguments are found first and expf then runs on the
 * chunk's values at once (st_vec_expf_avx2: the libm function's bits,
 * whose rounding is part of the numerics). */
ST_INLINE void
st_attn_scan(st_attn_f16_state *st, uint32_t hd, const st_f16 *k,
    size_t stride, uint32_t n, float *w, uint8_t *up)
{
    float    M = st->M, S = st->S;
    uint32_t j = 0;

#ifdef ST_ATTN_HAVE_DOT8
    if (hd % 16 == 0) {
        for (; j + 8 <= n; j += 8) {
            st_attn_dot8(hd, k + (size_t) j * stride, stride, st->qf,
                         st->scale, w + j);
        }
    }
#endif
    for (; j < n; j++) {
        w[j] = (float) st_attn_dot_d(hd, k + (size_t) j * stride, st->qf)
               * st->scale;
    }
    for (j = 0; j < n; j++) {
        float s = w[j];

        if (s > M) {
            w[j] = M - s;        /* ms = expf(m_old - M) */
            M = s;
            up[j] = 1;
        } else {
            w[j] = s - M;        /* vs = expf(s - M) */
            up[j] = 0;
        }
    }
    ST_VEXPF(w, n);
    for (j = 0; j < n; j++) {
        float ms = up[j] ? w[j] : 1.0f, vs = up[j] ? 1.0f : w[j];

        S = S * ms + vs;
    }
    st->M = M;
    st->S = S;
}


/* st_attn_scan of G heads, pass by pass with the heads interleaved so
 * that their serial chains (running max, S) overlap; per head the same
 * operations in the same order. S * 1.0f is S exactly, so a key that is
 * not a new max adds its weight without the multiply (half the latency
 * of the S chain). */
ST_INLINE void
st_attn_scan_group(st_attn_f16_state *st, uint32_t G, uint32_t hd,
    const size_t *off, const st_f16 *k, size_t stride, uint32_t n,
    float (*w)[ST_ATTN_CHUNK], uint8_t (*up)[ST_ATTN_CHUNK])
{
    float    M[ST_ATTN_HEADS_MAX], S[ST_ATTN_HEADS_MAX];
    uint32_t j, g;

    for (g = 0; g < G; g++) {
        const st_f16 *kg = k + off[g];

        j = 0;
#ifdef ST_ATTN_HAVE_DOT8
        if (hd % 16 == 0) {
            for (; j + 8 <= n; j += 8) {
                st_attn_dot8(hd, kg + (size_t) j * stride, stride, st[g].qf,
                             st[g].scale, w[g] + j);
            }
        }
#endif
        for (; j < n; j++) {
            w[g][j] = (float) st_attn_dot_d(hd, kg + (size_t) j * stride,
                                            st[g].qf) * st[g].scale;
        }
    }
#pragma GCC unroll 8
    for (g = 0; g < G; g++) {
        M[g] = st[g].M;
        S[g] = st[g].S;
    }
    for (j = 0; j < n; j++) {
#pragma GCC unroll 8
        for (g = 0; g < G; g++) {
            float s = w[g][j];

            if (s > M[g]) {
                w[g][j] = M[g] - s;
                M[g] = s;
                up[g][j] = 1;
            } else {
                w[g][j] = s - M[g];
                up[g][j] = 0;
            }
        }
    }
    for (g = 0; g < G; g++) {
        ST_VEXPF(w[g], n);
    }
    for (j = 0; j < n; j++) {
#pragma GCC unroll 8
        for (g = 0; g < G; g++) {
            if (up[g][j]) {
                S[g] = S[g] * w[g][j] + 1.0f;
            } else {
                S[g] = S[g] + w[g][j];
            }
        }
    }
#pragma GCC unroll 8
    for (g = 0; g < G; g++) {
        st[g].M = M[g];
        st[g].S = S[g];
    }
}


/* V pass of G heads with hd a multiple of ST_VL, G * hd <= ST_ATTN_HD_MAX,
 * both known at compile time: per key and head, acc = round(acc * ms) on
 * a new max, then acc = round(fma(v, vs, acc)), as
 * st_vec_f16_scale_round_avx2 / st_vec_f16_mad_round_avx2 do. The G
 * heads' chains are independent, so their latencies overlap. */
ST_INLINE void
st_attn_v_fixed(st_attn_f16_state *st, uint32_t G, uint32_t hd,
    const size_t *off, const st_f16 *v, size_t stride, uint32_t n,
    float (*w)[ST_ATTN_CHUNK], uint8_t (*up)[ST_ATTN_CHUNK])
{
    ST_VF    a[ST_ATTN_HD_MAX / ST_VL];
    uint32_t j, g, d, nv = hd / ST_VL;

#pragma GCC unroll 16
    for (g = 0; g < G; g++) {
#pragma GCC unroll 16
        for (d = 0; d < nv; d++) {
            a[g * nv + d] = ST_VLOAD(st[g].acc + ST_VL * d);
        }
    }
    for (j = 0; j < n; j++) {
#pragma GCC unroll 8
        for (g = 0; g < G; g++) {
            const st_f16 *vr = v + off[g] + (size_t) j * stride;
            ST_VF         vs = ST_VSET1(w[g][j]);

            if (up[g][j]) {
#pragma GCC unroll 16
                for (d = 0; d < nv; d++) {
                    a[g * nv + d] = ST_VRT(ST_VMUL(a[g * nv + d], vs));
                }
                vs = ST_VSET1(1.0f);
            }
#pragma GCC unroll 16
            for (d = 0; d < nv; d++) {
                ST_VF vv = ST_VLOADH(vr + ST_VL * d);

                a[g * nv + d] = ST_VRT(ST_VFMA(vv, vs, a[g * nv + d]));
            }
        }
    }
#pragma GCC unroll 16
    for (g = 0; g < G; g++) {
#pragma GCC unroll 16
        for (d = 0; d < nv; d++) {
            ST_VSTORE(st[g].acc + ST_VL * d, a[g * nv + d]);
        }
    }
}


/* Any other head size: the reference helpers, key by key. */
static void
st_attn_v_any(st_attn_f16_state *st, const st_f16 *v, size_t stride,
    uint32_t n, const float *w, const uint8_t *up)
{
    uint32_t j, hd = st->hd;

    for (j = 0; j < n; j++) {
        const st_f16 *vr = v + (size_t) j * stride;

        if (up[j]) {
            st_vec_f16_scale_round_avx2(st->acc, w[j], hd);
            st_vec_f16_mad_round_avx2(st->acc, vr, 1.0f, hd);
        } else {
            st_vec_f16_mad_round_avx2(st->acc, vr, w[j], hd);
        }
    }
}


/* G heads (G = 0: one head of any size, through st_attn_v_any). */
ST_INLINE void
st_attn_run_group(st_attn_f16_state *st, uint32_t G, uint32_t hd,
    const size_t *off, const st_f16 *k, const st_f16 *v, size_t stride,
    uint32_t n_keys)
{
    float    w[ST_ATTN_HEADS_MAX][ST_ATTN_CHUNK];
    uint8_t  up[ST_ATTN_HEADS_MAX][ST_ATTN_CHUNK];
    uint32_t c0, m;
    size_t   kv0;

    for (c0 = 0; c0 < n_keys; c0 += m) {
        m = n_keys - c0 < ST_ATTN_CHUNK ? n_keys - c0 : ST_ATTN_CHUNK;
        kv0 = (size_t) c0 * stride;
        if (G == 0) {
            st_attn_scan(st, st->hd, k + off[0] + kv0, stride, m, w[0],
                         up[0]);
            st_attn_v_any(st, v + off[0] + kv0, stride, m, w[0], up[0]);
            continue;
        }
        st_attn_scan_group(st, G, hd, off, k + kv0, stride, m, w, up);
        st_attn_v_fixed(st, G, hd, off, v + kv0, stride, m, w, up);
    }
}




/* One switch case of a run function: groups of G heads of size HD, what
 * is left in groups of G / 2 and G / 4 (7 heads with G = 4: 4 + 2 + 1),
 * then single heads. */
#define ST_ATTN_GROUPS(HD, G)                                                \
    if ((G) > 0) {                                                           \
        for (; h + (G) <= n_heads; h += (G)) {                               \
            st_attn_run_group(st + h, (G), HD, head_off + h, k, v, stride,  \
                              n_keys);                                       \
        }                                                                    \
    }

#define ST_ATTN_CASE(HD, G)                                                  \
    case HD:                                                                 \
        ST_ATTN_GROUPS(HD, G)                                                \
        ST_ATTN_GROUPS(HD, (G) / 2)                                          \
        ST_ATTN_GROUPS(HD, (G) / 4)                                          \
        ST_ATTN_GROUPS(HD, 1)                                                \
        break

#endif /* ST_ATTN_F16_IMPL_H */
