/*
 * SIMD kernels against quant_ref.c's scalar reference, at every kernel level
 * this CPU has (scalar / avx2 / avx512; missing levels are skipped).
 *
 *   from_float (Q8_0, Q8_K, F16, BF16, F32): output bytes identical.
 *   vec_dot: |simd - ref| <= 1e-6 * M, where M is the sum of |terms| the
 *     dot is made of (|x_i * y_i| on dequantized values; for Q4_K the
 *     scale and min parts counted apart, since they are summed apart).
 *     With unit scales every partial sum is an integer below 2^24, so
 *     there the result must equal the exact integer dot product.
 */
#include "tap.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "quant/quant.h"
#include "backend/cpu/vec_f16.h"
#include "backend/cpu/act.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ST_TOL_REL 1e-6

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 16);
}

/* uniform in [-1, 1) */
static float
rng_f(void)
{
    return (float) ((double) rng_u32() / 2147483648.0 - 1.0);
}

/* activation-like values: mostly small, some larger, a few exact ties */
static void
fill_acts(float *x, int64_t n, int variant)
{
    int64_t i;

    for (i = 0; i < n; i++) {
        float v = rng_f();

        switch (variant % 4) {
        case 0:
            x[i] = v;
            break;
        case 1:
            x[i] = v * v * v * 30.0f;
            break;
        case 2:
            /* values on a grid of halves: x * 127 / amax hits .5 ties */
            x[i] = (float) ((int) (v * 254.0f)) * 0.5f;
            break;
        default:
            x[i] = v * 1e-3f;
            if (rng_u32() % 16 == 0) {
                x[i] = -x[i] * 1000.0f;
            }
            break;
        }
    }
}

static const char *
tname(st_type t)
{
    const st_type_traits *tr = st_type_traits_get(t);
    return tr ? tr->name : "?";
}


/* ---------------------------------------------------------------- from_float */

static void
test_from_float(st_cpu_level lv, st_type vt, int64_t blk, int max_blocks)
{
    const st_type_traits *tr = st_type_traits_get(vt);
    st_from_float_fn      fn = st_cpu_from_float(lv, vt);
    int                   nb, variant, bad = 0, runs = 0;
    char                  where[128] = "";

    for (nb = 1; nb <= max_blocks; nb++) {
        for (variant = 0; variant < 5; variant++) {
            int64_t  n = blk * nb;
            size_t   bytes = st_row_bytes(vt, (uint64_t) n);
            float   *x = malloc((size_t) n * sizeof(float));
            uint8_t *a = malloc(bytes), *b = malloc(bytes);
            int64_t  i;

            if (x == NULL || a == NULL || b == NULL) {
                ok(0, "alloc");
                free(x); free(a); free(b);
                return;
            }
            fill_acts(x, n, variant);
            if (variant == 4) {
                /* specials: zero block, equal +/- maxima, subnormals */
                for (i = 0; i < n && i < blk; i++) {
                    x[i] = 0.0f;
                }
                if (n > blk + 3) {
                    x[blk] = -2.0f;
                    x[blk + 3] = 2.0f;
                    x[blk + 1] = 1e-40f;
                    x[blk + 2] = -3e-39f;
                }
            }
            memset(a, 0xa5, bytes);
            memset(b, 0xa5, bytes);
            tr->from_float(x, a, n);
            fn(x, b, n);
            runs++;
            if (memcmp(a, b, bytes) != 0 && !bad) {
                bad = 1;
                snprintf(where, sizeof(where), "n=%lld variant %d",
                         (long long) n, variant);
            }
            free(x); free(a); free(b);
        }
    }
    ok(!bad, "%s from_float %s: %d rows bit-identical to scalar%s%s",
       st_cpu_level_name(lv), tname(vt), runs, bad ? ", differs at " : "",
       where);
}


/* F16/BF16 conversion of special values and odd lengths (tails). */
static void
test_from_float_specials(st_cpu_level lv, st_type vt)
{
    const st_type_traits *tr = st_type_traits_get(vt);
    st_from_float_fn      fn = st_cpu_from_float(lv, vt);
    float                 x[67];
    uint16_t              a[67], b[67];
    uint32_t              u;
    int                   i, n, bad = 0;

    for (i = 0; i < 67; i++) {
        u = rng_u32() ^ (rng_u32() << 16);
        memcpy(&x[i], &u, 4);      /* any bit pattern, NaNs included */
    }
    x[0] = 65504.0f; x[1] = 65520.0f; x[2] = 1e-8f; x[3] = -0.0f;
    x[4] = INFINITY; x[5] = 3e-39f; x[6] = 1.0f + 0x1p-11f;
    for (n = 1; n <= 67; n += 11) {
        memset(a, 0, sizeof(a));
        memset(b, 0, sizeof(b));
        tr->from_float(x, a, n);
        fn(x, b, n);
        if (memcmp(a, b, (size_t) n * 2) != 0) {
            bad = 1;
        }
    }
    ok(!bad, "%s from_float %s: random bit patterns (NaN, inf, "
       "subnormal) and tails identical", st_cpu_level_name(lv), tname(vt));
}


/* ---------------------------------------------------------------- weights */

static uint16_t
rand_scale_f16(float lo, float hi)
{
    float v = lo + (hi - lo) * (rng_f() * 0.5f + 0.5f);
    return st_f32_to_f16(v);
}


/* Random but valid weight blocks. unit != 0: scales 1 and small integer
 * sub-scales so every partial sum is an integer < 2^24. */
static void
fill_weights(st_type t, void *w, int64_t n, int unit)
{
    int64_t i, j;

    switch (t) {
    case ST_TYPE_F32: {
        float *x = w;
        for (i = 0; i < n; i++) {
            x[i] = unit ? (float) (int) (rng_f() * 100) : rng_f();
        }
        break;
    }
    case ST_TYPE_F16: {
        st_f16 *x = w;
        for (i = 0; i < n; i++) {
            x[i] = st_f32_to_f16(unit ? (float) (int) (rng_f() * 100)
                                      : rng_f());
        }
        break;
    }
    case ST_TYPE_BF16: {
        st_bf16 *x = w;
        for (i = 0; i < n; i++) {
            x[i] = st_f32_to_bf16(unit ? (float) (int) (rng_f() * 100)
                                       : rng_f());
        }
        break;
    }
    case ST_TYPE_Q8_0: {
        st_block_q8_0 *b = w;
        for (i = 0; i < n / 32; i++) {
            b[i].d = unit ? st_f32_to_f16(1.0f) : rand_scale_f16(1e-3f, 2e-2f);
            for (j = 0; j < 32; j++) {
                b[i].qs[j] = (int8_t) ((int) (rng_u32() % 255) - 127);
            }
        }
        break;
    }
    case ST_TYPE_Q4_0: {
        st_block_q4_0 *b = w;
        for (i = 0; i < n / 32; i++) {
            b[i].d = unit ? st_f32_to_f16(1.0f) : rand_scale_f16(-2e-2f, 2e-2f);
            for (j = 0; j < 16; j++) {
                b[i].qs[j] = (uint8_t) rng_u32();
            }
        }
        break;
    }
    case ST_TYPE_Q4_K: {
        st_block_q4_K *b = w;
        for (i = 0; i < n / 256; i++) {
            b[i].d = unit ? st_f32_to_f16(1.0f) : rand_scale_f16(1e-4f, 1e-3f);
            b[i].dmin = unit ? st_f32_to_f16(1.0f)
                             : rand_scale_f16(1e-4f, 1e-3f);
            for (j = 0; j < 12; j++) {
                /* unit: every 6-bit scale and min <= 3 */
                b[i].scales[j] = unit ? (uint8_t) (rng_u32() & 0x03)
                                      : (uint8_t) rng_u32();
            }
            for (j = 0; j < 128; j++) {
                b[i].qs[j] = (uint8_t) rng_u32();
            }
        }
        break;
    }
    case ST_TYPE_Q5_K: {
        st_block_q5_K *b = w;
        for (i = 0; i < n / 256; i++) {
            b[i].d = unit ? st_f32_to_f16(1.0f) : rand_scale_f16(1e-4f, 1e-3f);
            b[i].dmin = unit ? st_f32_to_f16(1.0f)
                             : rand_scale_f16(1e-4f, 1e-3f);
            for (j = 0; j < 12; j++) {
                b[i].scales[j] = unit ? (uint8_t) (rng_u32() & 0x03)
                                      : (uint8_t) rng_u32();
            }
            for (j = 0; j < 32; j++) {
                b[i].qh[j] = (uint8_t) rng_u32();
            }
            for (j = 0; j < 128; j++) {
                b[i].qs[j] = (uint8_t) rng_u32();
            }
        }
        break;
    }
    case ST_TYPE_Q6_K: {
        st_block_q6_K *b = w;
        for (i = 0; i < n / 256; i++) {
            b[i].d = unit ? st_f32_to_f16(1.0f) : rand_scale_f16(1e-4f, 1e-3f);
            for (j = 0; j < 128; j++) {
                b[i].ql[j] = (uint8_t) rng_u32();
            }
            for (j = 0; j < 64; j++) {
                b[i].qh[j] = (uint8_t) rng_u32();
            }
            for (j = 0; j < 16; j++) {
                b[i].scales[j] = unit ? (int8_t) ((int) (rng_u32() % 7) - 3)
                                      : (int8_t) rng_u32();
            }
        }
        break;
    }
    case ST_TYPE_Q4_1: case ST_TYPE_Q5_0: case ST_TYPE_Q5_1:
    case ST_TYPE_IQ4_NL: case ST_TYPE_Q2_K: case ST_TYPE_Q3_K:
    case ST_TYPE_IQ4_XS: {
        /* random bytes, then sane f16 scales at each format's offsets
         * (d, then m/dmin where the format has one) */
        const st_type_traits *tr = st_type_traits_get(t);
        uint8_t              *b = w;
        size_t                d_off, m_off = 0;
        int                   has_m = 0;

        for (i = 0; i < (int64_t) st_row_bytes(t, (uint64_t) n); i++) {
            b[i] = (uint8_t) rng_u32();
        }
        d_off = t == ST_TYPE_Q2_K ? 80 : t == ST_TYPE_Q3_K ? 108 : 0;
        if (t == ST_TYPE_Q4_1 || t == ST_TYPE_Q5_1 || t == ST_TYPE_Q2_K) {
            has_m = 1;
            m_off = d_off + 2;
        }
        for (i = 0; i < n / (int64_t) tr->block_size; i++) {
            uint8_t *blk = b + (size_t) i * tr->type_size;
            st_f16   d = unit ? st_f32_to_f16(1.0f)
                              : rand_scale_f16(-2e-2f, 2e-2f);
            st_f16   m = unit ? st_f32_to_f16(i % 2 ? -1.0f : 1.0f)
                              : rand_scale_f16(-2e-1f, 2e-1f);

            memcpy(blk + d_off, &d, 2);
            if (has_m) {
                memcpy(blk + m_off, &m, 2);
            }
            if (unit && t == ST_TYPE_IQ4_XS) {
                /* sub-block scales 32..35 (ls - 32 in 0..3): the exact
                 * sums stay below 2^24 */
                st_block_iq4_xs *bx = (st_block_iq4_xs *) (void *) blk;

                bx->scales_h = 0xaaaa;
                for (j = 0; j < 4; j++) {
                    bx->scales_l[j] &= 0x33;
                }
            }
        }
        break;
    }
    default:
        break;
    }
}


/* Unit-scale Q8_1 activations: d = 1, quants in -60..60 so that s =
 * f16(sum) is exact. */
static void
unit_q8_1(void *vy, int64_t n)
{
    st_block_q8_1 *y = vy;
    int64_t        i;
    int            j, sum;

    for (i = 0; i < n / 32; i++) {
        y[i].d = st_f32_to_f16(1.0f);
        sum = 0;
        for (j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t) ((int) (rng_u32() % 121) - 60);
            sum += y[i].qs[j];
        }
        y[i].s = st_f32_to_f16((float) sum);
    }
}


/* Unit-scale Q8_K activations: d = 1, integer quants, true bsums. */
static void
unit_q8_K(void *vy, int64_t n)
{
    st_block_q8_K *y = vy;
    int64_t        i;
    int            j, g, sum;

    for (i = 0; i < n / 256; i++) {
        y[i].d = 1.0f;
        for (j = 0; j < 256; j++) {
            y[i].qs[j] = (int8_t) ((int) (rng_u32() % 255) - 127);
        }
        for (g = 0; g < 16; g++) {
            sum = 0;
            for (j = 0; j < 16; j++) {
                sum += y[i].qs[16 * g + j];
            }
            y[i].bsums[g] = (int16_t) sum;
        }
    }
}


static void
unit_q8_0(void *vy, int64_t n)
{
    st_block_q8_0 *y = vy;
    int64_t        i;
    int            j;

    for (i = 0; i < n / 32; i++) {
        y[i].d = st_f32_to_f16(1.0f);
        for (j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t) ((int) (rng_u32() % 255) - 127);
        }
    }
}


/* Sum of |terms| of the dot, in double (see the top comment). */
static double
dot_magnitude(st_type wt, const void *w, const float *wd, const float *yd,
    int64_t n)
{
    double m = 0.0;
    int64_t i;

    if (wt == ST_TYPE_Q4_K || wt == ST_TYPE_Q5_K) {
        /* q5_K starts with the same fields as q4_K: d, dmin, scales */
        const uint8_t *base = w;
        size_t         bsz = wt == ST_TYPE_Q4_K ? sizeof(st_block_q4_K)
                                                : sizeof(st_block_q5_K);
        for (i = 0; i < n; i++) {
            const st_block_q4_K *bk =
                (const st_block_q4_K *) (base + (size_t) (i / 256) * bsz);
            const uint8_t *qs = wt == ST_TYPE_Q4_K
                ? bk->qs : ((const st_block_q5_K *) bk)->qs;
            const uint8_t *q = bk->scales;
            int  j = (int) (i % 256) / 32, sc, mn;
            int  nib = (int) ((i % 64) < 32 ? qs[(i / 64 % 4) * 32 + i % 32] & 15
                                            : qs[(i / 64 % 4) * 32 + i % 32] >> 4);

            if (wt == ST_TYPE_Q5_K
                && (((const st_block_q5_K *) bk)->qh[i % 32] >> j) & 1)
            {
                nib += 16;
            }

            if (j < 4) {
                sc = q[j] & 63;
                mn = q[j + 4] & 63;
            } else {
                sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
                mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
            }
            m += (fabs((double) st_f16_to_f32(bk->d) * sc * nib)
                  + fabs((double) st_f16_to_f32(bk->dmin) * mn))
                 * fabs((double) yd[i]);
        }
        return m;
    }
    for (i = 0; i < n; i++) {
        m += fabs((double) wd[i] * yd[i]);
    }
    return m;
}


static void
test_vec_dot(st_cpu_level lv, st_type wt, int64_t blk, int max_blocks)
{
    const st_type_traits *tr = st_type_traits_get(wt);
    const st_type_traits *vt = st_type_traits_get(tr->vec_dot_type);
    st_vec_dot_fn         fn = st_cpu_vec_dot(lv, wt);
    int                   nb, variant, runs = 0, bad = 0, bad_exact = 0;
    int                   bad_bits = 0;
    /* every quantized type promises bit identity with quant_ref.c at
     * every level (exact integer sums, then the reference's float steps;
     * Q8_0 and Q4_0 in ggml's 8-lane order) */
    int                   bitwise = wt != ST_TYPE_F32 && wt != ST_TYPE_F16
                                    && wt != ST_TYPE_BF16;
    double                worst = 0.0;
    char                  where[160] = "";

    for (nb = 1; nb <= max_blocks; nb++) {
        for (variant = 0; variant < 5; variant++) {
            int64_t  n = blk * nb;
            int      unit = variant == 4;
            size_t   wbytes = st_row_bytes(wt, (uint64_t) n);
            size_t   ybytes = st_row_bytes(tr->vec_dot_type, (uint64_t) n);
            uint8_t *w = malloc(wbytes), *y = malloc(ybytes);
            float   *x = malloc((size_t) n * sizeof(float));
            float   *wd = malloc((size_t) n * sizeof(float));
            float   *yd = malloc((size_t) n * sizeof(float));
            float    ref = 0, got = 0;
            double   mag, err, exact = 0;
            int64_t  i;

            if (!w || !y || !x || !wd || !yd) {
                ok(0, "alloc");
                free(w); free(y); free(x); free(wd); free(yd);
                return;
            }
            fill_weights(wt, w, n, unit);
            if (unit && tr->vec_dot_type == ST_TYPE_Q8_K) {
                unit_q8_K(y, n);
            } else if (unit && tr->vec_dot_type == ST_TYPE_Q8_0) {
                unit_q8_0(y, n);
            } else if (unit && tr->vec_dot_type == ST_TYPE_Q8_1) {
                unit_q8_1(y, n);
            } else {
                fill_acts(x, n, unit ? 2 : variant);
                if (unit) {
                    for (i = 0; i < n; i++) {
                        x[i] = (float) (int) x[i];
                    }
                }
                vt->from_float(x, y, n);
            }
            tr->to_float(w, wd, n);
            vt->to_float(y, yd, n);

            tr->vec_dot(n, &ref, w, y);
            fn(n, &got, w, y);
            runs++;
            if (memcmp(&ref, &got, sizeof(float)) != 0) {
                if (bad_bits++ == 0 && bitwise) {
                    diag("bits: n=%lld variant %d ref %.9g simd %.9g",
                         (long long) n, variant, ref, got);
                }
            }

            mag = dot_magnitude(wt, w, wd, yd, n);
            err = fabs((double) got - ref);
            if (mag > 0 && err / mag > worst) {
                worst = err / mag;
            }
            if (!(err <= ST_TOL_REL * mag) && !bad) {
                bad = 1;
                snprintf(where, sizeof(where),
                         "n=%lld variant %d: ref %.9g simd %.9g mag %.3g",
                         (long long) n, variant, ref, got, mag);
            }
            if (unit) {
                for (i = 0; i < n; i++) {
                    exact += (double) wd[i] * yd[i];
                }
                if ((double) got != exact || (double) ref != exact) {
                    if (!bad_exact) {
                        diag("exact: n=%lld ref %.1f simd %.1f exact %.1f",
                             (long long) n, ref, got, exact);
                    }
                    bad_exact = 1;
                }
            }
            free(w); free(y); free(x); free(wd); free(yd);
        }
    }
    ok(!bad, "%s vec_dot %s x %s: %d rows within %.0e*sum|terms| "
       "(worst %.2e)%s%s", st_cpu_level_name(lv), tr->name, vt->name, runs,
       ST_TOL_REL, worst, bad ? "; " : "", where);
    ok(!bad_exact, "%s vec_dot %s: unit scales give the exact integer dot",
       st_cpu_level_name(lv), tr->name);
    if (bitwise) {
        ok(bad_bits == 0, "%s vec_dot %s x %s: %d rows bit-identical to "
           "scalar (%d differ)", st_cpu_level_name(lv), tr->name, vt->name,
           runs, bad_bits);
    }
}


/* vec_f16.h: the AVX2 versions against the plain loops they document. */
/* st_swiglu (vectorised exp at AVX2 and up) against its scalar formula,
 * bit for bit: activations over the whole useful range (both signs, up
 * to overflow of exp(-x)), infinities and NaN, every tail length. */
static void
test_swiglu(void)
{
    static float gate[1000], up[1000], ref[1000];
    static const float special[] = { 0.0f, -0.0f, 88.0f, -88.0f, -88.5f,
                                     -90.0f, 87.5f, 104.0f, -104.0f,
                                     INFINITY, -INFINITY, NAN, 1e-30f,
                                     -1e-30f, 1e-45f };
    size_t       n, i, bad = 0, ns = sizeof(special) / sizeof(special[0]);
    uint32_t     r = 12345;

    for (n = 0; n <= 1000; n += n < 40 ? 1 : 97) {
        for (i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            gate[i] = i < ns ? special[i]
                      : ((float) (r >> 8) / 16777216.0f - 0.5f)
                        * (float) (1 << (r % 8));
            up[i] = (float) (r % 1000) / 100.0f - 5.0f;
            ref[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
        }
        st_swiglu(gate, up, n);
        for (i = 0; i < n; i++) {
            uint32_t a, b;

            memcpy(&a, &gate[i], 4);
            memcpy(&b, &ref[i], 4);
            bad += a != b && !(isnan(gate[i]) && isnan(ref[i]));
        }
    }
    ok(bad == 0, "swiglu at %s: bit-identical to g / (1 + expf(-g)) * u "
       "(%zu differ)", st_cpu_kernels_name(), bad);
}


static void
test_vec_f16(void)
{
    enum { N = 133 };
    float   x[N], a[N], b[N], q[N];
    st_f16  v[N];
    int     i, n, bad_r = 0, bad_s = 0, bad_m = 0, bad_d = 0;
    double  ref, got;

    for (n = 1; n <= N; n += 11) {
        for (i = 0; i < n; i++) {
            x[i] = rng_f() * (i % 5 == 0 ? 70000.0f : 3.0f);
            v[i] = st_f32_to_f16(rng_f() * 4.0f);
            q[i] = st_f16_to_f32(st_f32_to_f16(rng_f()));
        }
        if (n > 3) {
            x[0] = 1e-7f;             /* f16 subnormal range */
            x[1] = 65520.0f;          /* rounds to inf */
            x[2] = -0.0f;
        }

        for (i = 0; i < n; i++) {
            a[i] = st_f16_to_f32(st_f32_to_f16(x[i]));
        }
        st_vec_f16_round_avx2(x, b, n);
        bad_r |= memcmp(a, b, (size_t) n * 4) != 0;

        for (i = 0; i < n; i++) {
            a[i] = st_f16_to_f32(st_f32_to_f16(x[i] * 0.37f));
        }
        memcpy(b, x, (size_t) n * 4);
        st_vec_f16_scale_round_avx2(b, 0.37f, n);
        bad_s |= memcmp(a, b, (size_t) n * 4) != 0;

        for (i = 0; i < n; i++) {
            a[i] = st_f16_to_f32(st_f32_to_f16(
                       fmaf(st_f16_to_f32(v[i]), 1.7f, x[i])));
        }
        memcpy(b, x, (size_t) n * 4);
        st_vec_f16_mad_round_avx2(b, v, 1.7f, n);
        bad_m |= memcmp(a, b, (size_t) n * 4) != 0;

        ref = 0;
        for (i = 0; i < n; i++) {
            ref += (double) (st_f16_to_f32(v[i]) * q[i]);
        }
        got = st_vec_dot_f16_f32_d_avx2(n, v, q);
        bad_d |= ref != got;
    }
    ok(!bad_r, "avx2 st_vec_f16_round: bit-identical to the scalar loop");
    ok(!bad_s, "avx2 st_vec_f16_scale_round: bit-identical");
    ok(!bad_m, "avx2 st_vec_f16_mad_round: bit-identical (single-rounding "
       "fma)");
    ok(!bad_d, "avx2 st_vec_dot_f16_f32_d: equal to the sequential double "
       "sum for f16-valued q");
}


/* The fused attention kernel (vec_f16.h) against the reference loop of
 * st_vec_* calls (st_attn_f16_run_scalar, which uses the selected
 * level's helpers): outputs, running max and sum bit-identical, for head
 * sizes with and without a register-resident path, groups of heads
 * sharing KV heads, and keys fed in uneven runs. */
static void
test_attn_fused(const char *name, st_attn_f16_run_fn run)
{
    static const uint32_t hds[] = { 5, 8, 16, 24, 32, 48, 64, 80, 128, 136,
                                    256 };
    static const uint32_t nhs[] = { 1, 2, 3, 4, 7, 8 };
    enum { KEYS = 150, HMAX = ST_ATTN_HEADS_MAX };
    size_t                t, k, u;
    int                   bad = 0, cases = 0;

    for (t = 0; t < sizeof(hds) / sizeof(hds[0]); t++) {
        uint32_t hd = hds[t], nh, n_kv, stride, h, c, n;
        float    spread;

        for (u = 0; u < sizeof(nhs) / sizeof(nhs[0]); u++) {
            st_attn_f16_state  sa[HMAX], sb[HMAX];
            size_t             off[HMAX];
            float             *q, *bufa, *bufb, *oa, *ob;
            st_f16            *kk, *vv;

            nh = nhs[u];
            n_kv = (nh + 1) / 2;
            stride = n_kv * hd + 3;          /* rows with a gap */
            q = malloc(sizeof(float) * hd * nh);
            bufa = malloc(sizeof(float) * 2 * hd * nh);
            bufb = malloc(sizeof(float) * 2 * hd * nh);
            oa = malloc(sizeof(float) * hd);
            ob = malloc(sizeof(float) * hd);
            kk = malloc(sizeof(st_f16) * stride * KEYS);
            vv = malloc(sizeof(st_f16) * stride * KEYS);
            if (!q || !bufa || !bufb || !oa || !ob || !kk || !vv) {
                ok(0, "attn alloc");
                return;
            }
            spread = (float) (1 + rng_u32() % 8);
            for (k = 0; k < (size_t) stride * KEYS; k++) {
                kk[k] = st_f32_to_f16(rng_f() * spread);
                vv[k] = st_f32_to_f16(rng_f() * 4.0f);
            }
            for (k = 0; k < (size_t) hd * 2; k++) {
                kk[stride * 7 + k % (n_kv * hd)] = kk[k % (n_kv * hd)];
            }                                /* a tie with key 0 */
            for (k = 0; k < (size_t) hd * nh; k++) {
                q[k] = rng_f() * spread;
            }
            for (h = 0; h < nh; h++) {
                off[h] = (size_t) (h / 2) * hd;
                st_attn_f16_begin(&sa[h], q + h * hd, hd, 0.125f,
                                  bufa + (size_t) h * 2 * hd);
                st_attn_f16_begin(&sb[h], q + h * hd, hd, 0.125f,
                                  bufb + (size_t) h * 2 * hd);
            }
            for (c = 0; c < KEYS; c += n) {
                n = 1 + rng_u32() % 40;
                if (n > KEYS - c) {
                    n = KEYS - c;
                }
                run(sa, nh, off, kk + (size_t) c * stride,
                    vv + (size_t) c * stride, stride, n);
                st_attn_f16_run_scalar(sb, nh, off, kk + (size_t) c * stride,
                                       vv + (size_t) c * stride, stride, n);
            }
            for (h = 0; h < nh; h++) {
                st_attn_f16_end(&sa[h], oa);
                st_attn_f16_end(&sb[h], ob);
                if (memcmp(oa, ob, sizeof(float) * hd) != 0
                    || memcmp(&sa[h].M, &sb[h].M, sizeof(float)) != 0
                    || memcmp(&sa[h].S, &sb[h].S, sizeof(float)) != 0)
                {
                    if (bad++ < 3) {
                        diag("attn hd %u heads %u head %u: out[0] %.9g vs "
                             "%.9g, S %.9g vs %.9g", hd, nh, h, oa[0], ob[0],
                             sa[h].S, sb[h].S);
                    }
                }
            }
            cases++;
            free(q); free(bufa); free(bufb); free(oa); free(ob);
            free(kk); free(vv);
        }
    }
    ok(bad == 0, "%s fused F16 attention bit-identical to the st_vec_* loop "
       "(%d cases)", name, cases);
}


int
main(void)
{
    static const st_type wtypes[] = {
        ST_TYPE_F32, ST_TYPE_F16, ST_TYPE_BF16, ST_TYPE_Q8_0, ST_TYPE_Q4_0,
        ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q5_K, ST_TYPE_Q4_1, ST_TYPE_Q5_0,
        ST_TYPE_Q5_1, ST_TYPE_IQ4_NL, ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_IQ4_XS
    };
    int lv;
    size_t k;

    (void) tap_root_dir;         /* no data files needed */
    (void) tap_shared_dir;

    diag("cpu: detected %s, selected %s",
         st_cpu_level_name(st_cpu_level_detect()), st_cpu_kernels_name());

    for (lv = ST_CPU_SCALAR; lv < ST_CPU_LEVEL_COUNT; lv++) {
        if (!st_cpu_level_supported((st_cpu_level) lv)) {
            skip("kernel level %s: not supported by this CPU",
                 st_cpu_level_name((st_cpu_level) lv));
            continue;
        }
        test_from_float((st_cpu_level) lv, ST_TYPE_Q8_0, 32, 9);
        test_from_float((st_cpu_level) lv, ST_TYPE_Q8_1, 32, 9);
        test_from_float((st_cpu_level) lv, ST_TYPE_Q8_K, 256, 5);
        test_from_float((st_cpu_level) lv, ST_TYPE_F16, 1, 77);
        test_from_float((st_cpu_level) lv, ST_TYPE_BF16, 1, 77);
        test_from_float((st_cpu_level) lv, ST_TYPE_F32, 1, 9);
        test_from_float_specials((st_cpu_level) lv, ST_TYPE_F16);
        test_from_float_specials((st_cpu_level) lv, ST_TYPE_BF16);

        for (k = 0; k < sizeof(wtypes) / sizeof(wtypes[0]); k++) {
            const st_type_traits *tr = st_type_traits_get(wtypes[k]);

            if (tr == NULL || !tr->supported || tr->vec_dot == NULL) {
                skip("%s: no reference kernel", tname(wtypes[k]));
                continue;
            }
            if (tr->block_size == 1) {
                /* element types: odd lengths 1..77 hit every tail path */
                test_vec_dot((st_cpu_level) lv, wtypes[k], 1, 77);
            } else if (tr->block_size == 32) {
                /* 1..13 blocks: the 4-block loop and every tail */
                test_vec_dot((st_cpu_level) lv, wtypes[k], 32, 13);
            } else {
                test_vec_dot((st_cpu_level) lv, wtypes[k], 256, 5);
            }
        }
    }
    if (st_cpu_level_supported(ST_CPU_AVX2)) {
        test_vec_f16();
    } else {
        skip("vec_f16 AVX2 helpers: no AVX2");
    }
    /* the reference loop uses the selected level's st_vec_* helpers,
     * which are the AVX2 ones from that level up */
    if (st_cpu_level_selected() >= ST_CPU_AVX2) {
        test_attn_fused("avx2", st_attn_f16_run_avx2);
    } else {
        skip("avx2 fused attention: scalar kernels selected");
    }
    if (st_cpu_level_selected() >= ST_CPU_AVX2
        && st_cpu_level_supported(ST_CPU_AVX512))
    {
        test_attn_fused("avx512", st_attn_f16_run_avx512);
    } else {
        skip("avx512 fused attention: no AVX-512 or scalar selected");
    }
    test_swiglu();
    ok(st_attn_f16_run_kernel() != NULL, "fused attention kernel selected");
    return done_testing();
}
