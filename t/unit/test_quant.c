/*
 * Tensor formats (src/quant/quant_ref.c): type table, f16/bf16 conversions,
 * dequantization, activation quantizers, reference dot products and the
 * simple weight quantizers; then real tensors from the shipped Q8_0 model
 * and (when ../shared is there) the synthetic Q4_K_M model.
 */
#include "tap.h"
#include "quant/quant.h"
#include "quantize.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void
rng_seed(uint64_t s)
{
    rng_state = s ? s : 1;
}


static uint64_t
rng_u64(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}


static uint32_t
rng_u32(void)
{
    return (uint32_t) (rng_u64() >> 32);
}


static double
rng_uniform(void)
{
    return ((double) (rng_u64() >> 11) + 0.5) / 9007199254740992.0;
}


static float
rng_gauss(void)
{
    double u1 = rng_uniform(), u2 = rng_uniform();

    return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}


static uint32_t
f32_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}


static float
bits_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}


static void
fill_gauss(float *x, int64_t n, float scale)
{
    int64_t i;

    for (i = 0; i < n; i++) {
        x[i] = rng_gauss() * scale;
    }
}


/* Quantize with the weight quantizer, dequantize with to_float. */
static int
roundtrip(st_type t, const float *x, float *out, int64_t n, void *buf)
{
    const st_type_traits *tr = st_type_traits_get(t);

    if (tr == NULL || tr->to_float == NULL) {
        return 0;
    }
    st_quantize_row(t, x, buf, n);
    tr->to_float(buf, out, n);
    return 1;
}


/* ------------------------------------------------------------------ */
/* type table                                                           */
/* ------------------------------------------------------------------ */

static void
test_traits(void)
{
    static const struct {
        uint32_t    id;
        const char *name;
        uint32_t    bs, ts;
    } known[] = {
        {  0, "f32", 1, 4 },      {  1, "f16", 1, 2 },
        {  2, "q4_0", 32, 18 },   {  3, "q4_1", 32, 20 },
        {  6, "q5_0", 32, 22 },   {  7, "q5_1", 32, 24 },
        {  8, "q8_0", 32, 34 },   {  9, "q8_1", 32, 36 },
        { 10, "q2_K", 256, 84 },  { 11, "q3_K", 256, 110 },
        { 12, "q4_K", 256, 144 }, { 13, "q5_K", 256, 176 },
        { 14, "q6_K", 256, 210 }, { 15, "q8_K", 256, 292 },
        { 16, "iq2_xxs", 256, 66 }, { 17, "iq2_xs", 256, 74 },
        { 18, "iq3_xxs", 256, 98 }, { 19, "iq1_s", 256, 50 },
        { 20, "iq4_nl", 32, 18 }, { 21, "iq3_s", 256, 110 },
        { 22, "iq2_s", 256, 82 }, { 23, "iq4_xs", 256, 136 },
        { 24, "i8", 1, 1 },       { 25, "i16", 1, 2 },
        { 26, "i32", 1, 4 },      { 27, "i64", 1, 8 },
        { 28, "f64", 1, 8 },      { 29, "iq1_m", 256, 56 },
        { 30, "bf16", 1, 2 },     { 34, "tq1_0", 256, 54 },
        { 35, "tq2_0", 256, 66 }, { 39, "mxfp4", 32, 17 },
        { 40, "nvfp4", 64, 36 },
    };
    static const uint32_t unknown[] = { 4, 5, 31, 32, 33, 36, 37, 38, 41,
                                        1000, UINT32_MAX };
    static const struct {
        st_type w, vd;
    } vdt[] = {
        { ST_TYPE_F32, ST_TYPE_F32 },   { ST_TYPE_F16, ST_TYPE_F16 },
        { ST_TYPE_BF16, ST_TYPE_BF16 }, { ST_TYPE_Q8_0, ST_TYPE_Q8_0 },
        { ST_TYPE_Q4_0, ST_TYPE_Q8_0 }, { ST_TYPE_Q4_K, ST_TYPE_Q8_K },
        { ST_TYPE_Q5_K, ST_TYPE_Q8_K }, { ST_TYPE_Q6_K, ST_TYPE_Q8_K },
        { ST_TYPE_Q4_1, ST_TYPE_Q8_1 }, { ST_TYPE_Q5_0, ST_TYPE_Q8_0 },
        { ST_TYPE_Q5_1, ST_TYPE_Q8_1 }, { ST_TYPE_Q2_K, ST_TYPE_Q8_K },
        { ST_TYPE_Q3_K, ST_TYPE_Q8_K }, { ST_TYPE_IQ4_NL, ST_TYPE_Q8_0 },
        { ST_TYPE_IQ4_XS, ST_TYPE_Q8_K },
    };
    const st_type_traits *tr, *vtr;
    size_t                i;
    int                   bad = 0, n_supported = 0;
    uint32_t              id;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        tr = st_type_traits_get(known[i].id);
        if (tr == NULL || strcmp(tr->name, known[i].name) != 0
            || tr->block_size != known[i].bs || tr->type_size != known[i].ts)
        {
            diag("type %u: got %s %u %u", known[i].id, tr ? tr->name : "NULL",
                 tr ? tr->block_size : 0, tr ? tr->type_size : 0);
            bad++;
        }
    }
    ok(bad == 0, "block/type sizes and names of all %zu ggml types",
       sizeof(known) / sizeof(known[0]));

    bad = 0;
    for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        if (st_type_traits_get(unknown[i]) != NULL) {
            diag("id %u should be unknown", unknown[i]);
            bad++;
        }
    }
    ok(bad == 0, "unassigned / removed ids have no traits");

    for (id = 0; id < 64; id++) {
        tr = st_type_traits_get(id);
        if (tr != NULL && tr->supported) {
            n_supported++;
        }
    }
    bad = 0;
    for (i = 0; i < sizeof(vdt) / sizeof(vdt[0]); i++) {
        tr = st_type_traits_get(vdt[i].w);
        vtr = st_type_traits_get(vdt[i].vd);
        if (tr == NULL || !tr->supported || tr->vec_dot_type != vdt[i].vd
            || tr->to_float == NULL || tr->vec_dot == NULL || vtr == NULL
            || vtr->from_float == NULL || vtr->to_float == NULL)
        {
            diag("type %d: traits incomplete", (int) vdt[i].w);
            bad++;
        }
    }
    ok(bad == 0 && n_supported == 15,
       "supported = f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K "
       "q5_K q6_K iq4_nl iq4_xs (%d), vec_dot types and functions set",
       n_supported);
    tr = st_type_traits_get(ST_TYPE_Q8_K);
    ok(tr != NULL && !tr->supported && tr->from_float && tr->to_float,
       "q8_K: activation type with from_float/to_float, not a weight type");
    tr = st_type_traits_get(ST_TYPE_Q8_1);
    ok(tr != NULL && !tr->supported && tr->from_float && tr->to_float,
       "q8_1: activation type with from_float/to_float, not a weight type");

    ok(st_row_bytes(ST_TYPE_Q4_K, 512) == 288
       && st_row_bytes(ST_TYPE_Q6_K, 768) == 630
       && st_row_bytes(ST_TYPE_Q8_0, 128) == 136
       && st_row_bytes(ST_TYPE_F32, 7) == 28
       && st_row_bytes(ST_TYPE_BF16, 3) == 6
       && st_row_bytes(ST_TYPE_NVFP4, 128) == 72
       && st_row_bytes(ST_TYPE_IQ2_XXS, 256) == 66,
       "st_row_bytes for whole blocks");
    ok(st_row_bytes(ST_TYPE_Q4_K, 100) == 0 && st_row_bytes(4, 32) == 0
       && st_row_bytes(77, 32) == 0
       && st_row_bytes(ST_TYPE_F32, UINT64_MAX / 2) == 0,
       "st_row_bytes: partial block, unknown type, overflow -> 0");
}


/* ------------------------------------------------------------------ */
/* f16 / bf16                                                           */
/* ------------------------------------------------------------------ */

static void
test_f16(void)
{
    static const struct {
        float    f;
        uint16_t h;
    } to_h[] = {
        { 1.0f, 0x3c00 },       { -2.5f, 0xc100 },
        { 65504.0f, 0x7bff },   { 0x1p-24f, 0x0001 },
        { 0x1p-14f, 0x0400 },   { 0x1.ff8p-15f, 0x03ff },  /* max subnormal */
        { 0.0f, 0x0000 },       { -0.0f, 0x8000 },
        { 0.1f, 0x2e66 },       { 0.333333343f, 0x3555 },
        { 65519.99f, 0x7bff },  { 65520.0f, 0x7c00 },      /* tie -> inf */
        { 1e10f, 0x7c00 },      { -1e10f, 0xfc00 },
        { 1.0f + 0x1p-11f, 0x3c00 },                       /* tie -> even */
        { 1.0f + 3 * 0x1p-11f, 0x3c02 },                   /* tie -> even */
        { 1.0f + 0x1p-11f + 0x1p-20f, 0x3c01 },            /* above tie */
        { 0x1p-25f, 0x0000 },                              /* tie -> 0 */
        { 0x1.000002p-25f, 0x0001 },                       /* above tie */
        { 0x1.8p-24f, 0x0002 },                            /* 1.5 -> 2 */
        { 0x1.4p-23f, 0x0002 },                            /* 2.5 -> 2 */
        { 0x1.ffcp-15f, 0x0400 },   /* rounds up into the first normal */
        { 1e-45f, 0x0000 },                                /* f32 denorm */
    };
    static const struct {
        uint16_t h;
        float    f;
    } to_f[] = {
        { 0x3c00, 1.0f }, { 0xc100, -2.5f }, { 0x7bff, 65504.0f },
        { 0x0001, 0x1p-24f }, { 0x8001, -0x1p-24f }, { 0x03ff, 0x1.ff8p-15f },
        { 0x0400, 0x1p-14f }, { 0x3555, 0.333251953125f },
    };
    size_t   i;
    int      bad = 0, bad2 = 0, nan_ok;
    uint32_t u, k;
    uint16_t h, hb;
    float    f, lo, hi, dlo, dhi;

    for (i = 0; i < sizeof(to_h) / sizeof(to_h[0]); i++) {
        h = st_f32_to_f16(to_h[i].f);
        if (h != to_h[i].h) {
            diag("f32 %a -> f16 0x%04x, want 0x%04x", (double) to_h[i].f, h,
                 to_h[i].h);
            bad++;
        }
    }
    ok(bad == 0, "f32 -> f16 known values (ties, overflow, subnormals)");

    bad = 0;
    for (i = 0; i < sizeof(to_f) / sizeof(to_f[0]); i++) {
        if (f32_bits(st_f16_to_f32(to_f[i].h)) != f32_bits(to_f[i].f)) {
            bad++;
        }
    }
    ok(bad == 0, "f16 -> f32 known values");

    ok(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0
       && isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0
       && st_f32_to_f16(INFINITY) == 0x7c00
       && st_f32_to_f16(-INFINITY) == 0xfc00, "f16 infinities");
    nan_ok = isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0x7c01))
             && st_f32_to_f16(NAN) == 0x7e00
             && (st_f32_to_f16(-NAN) & 0x7fff) == 0x7e00
             && st_f32_to_f16(bits_f32(0x7f800001)) == 0x7e00
             && st_f32_to_f16(bits_f32(0x7fa02000)) == 0x7f01;
    ok(nan_ok, "f16 NaN: stays NaN, quiet, top payload bits kept");

    /* every non-NaN f16 survives f16 -> f32 -> f16 */
    bad = 0;
    for (u = 0; u < 65536; u++) {
        h = (uint16_t) u;
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            continue;
        }
        if (st_f32_to_f16(st_f16_to_f32(h)) != h) {
            bad++;
        }
    }
    ok(bad == 0, "all 63490 non-NaN f16 round-trip through f32 exactly "
       "(%d bad)", bad);

    /* f32 -> f16 is the nearest f16, ties to even (checked against the
     * neighbours, and against the compiler's _Float16 where it has one) */
    rng_seed(11);
    bad = 0;
    for (k = 0; k < 300000; k++) {
        u = rng_u32();
        if (k & 1) {
            /* concentrate on the f16 range and its edges */
            u = (u & 0x80000000)
                | (0x33000000 + (u % (0x47800000 - 0x33000000)));
        }
        if (k % 7 == 0) {
            u &= 0xffffe000 | (k % 3 == 0 ? 0x1000 : 0);  /* exact ties */
        }
        f = bits_f32(u);
        if (isnan(f)) {
            continue;
        }
        h = st_f32_to_f16(f);
        if (isinf(f) || fabsf(f) >= 65520.0f) {
            bad += (h & 0x7fff) != 0x7c00;
            continue;
        }
        /* neighbours toward and away from zero */
        hb = (uint16_t) (h & 0x7fff);
        lo = hb ? st_f16_to_f32((uint16_t) (hb - 1)) : -1.0f;
        hi = hb < 0x7bff ? st_f16_to_f32((uint16_t) (hb + 1)) : 1e30f;
        dlo = fabsf(fabsf(f) - lo);
        dhi = fabsf(fabsf(f) - hi);
        {
            double e = fabs((double) fabsf(f) - st_f16_to_f32(hb));

            if ((hb && e > dlo) || e > dhi
                || (hb && e == dlo && (hb & 1))
                || (e == dhi && (hb & 1))
                || ((h & 0x8000) != 0) != (signbit(f) != 0))
            {
                if (bad < 5) {
                    diag("f32 0x%08x -> f16 0x%04x not nearest-even", u, h);
                }
                bad++;
            }
        }
#ifdef __FLT16_MAX__
        {
            _Float16 c = (_Float16) f;
            uint16_t cb;

            memcpy(&cb, &c, sizeof(cb));
            if (cb != h) {
                if (bad2 < 5) {
                    diag("f32 0x%08x: 0x%04x vs _Float16 0x%04x", u, h, cb);
                }
                bad2++;
            }
        }
#endif
    }
    ok(bad == 0, "f32 -> f16 is nearest, ties to even (300000 samples)");
#ifdef __FLT16_MAX__
    ok(bad2 == 0, "f32 -> f16 equals the compiler's _Float16 conversion");
#else
    skip("no _Float16 in this compiler");
#endif
}


static void
test_bf16(void)
{
    static const struct {
        uint32_t f;
        uint16_t b;
    } to_b[] = {
        { 0x3f800000, 0x3f80 },   /* 1.0 */
        { 0xc0200000, 0xc020 },   /* -2.5 */
        { 0x3f808000, 0x3f80 },   /* tie, even below */
        { 0x3f818000, 0x3f82 },   /* tie, odd below -> up */
        { 0x3f808001, 0x3f81 },   /* above tie */
        { 0x3f807fff, 0x3f80 },   /* below tie */
        { 0x7f7fffff, 0x7f80 },   /* FLT_MAX rounds to inf */
        { 0x7f800000, 0x7f80 },   /* inf */
        { 0xff800000, 0xff80 },   /* -inf */
        { 0x7fc00000, 0x7fc0 },   /* qNaN */
        { 0x7f800001, 0x7fc0 },   /* sNaN, low payload: made quiet */
        { 0x7fa00000, 0x7fe0 },   /* sNaN: quiet bit set, payload kept */
        { 0xffc00001, 0xffc0 },   /* -NaN */
        { 0x00000001, 0x0000 },   /* f32 denormal, not flushed: rounds */
        { 0x00018000, 0x0002 },   /* denormal tie -> even */
        { 0x80000000, 0x8000 },
    };
    size_t   i;
    int      bad = 0;
    uint32_t u;
    uint16_t b;

    for (i = 0; i < sizeof(to_b) / sizeof(to_b[0]); i++) {
        b = st_f32_to_bf16(bits_f32(to_b[i].f));
        if (b != to_b[i].b) {
            diag("f32 0x%08x -> bf16 0x%04x, want 0x%04x", to_b[i].f, b,
                 to_b[i].b);
            bad++;
        }
    }
    ok(bad == 0, "f32 -> bf16 known values (ties, inf, NaN quieting)");
    ok(st_bf16_to_f32(0x3f80) == 1.0f && st_bf16_to_f32(0xc020) == -2.5f
       && f32_bits(st_bf16_to_f32(0x0001)) == 0x00010000,
       "bf16 -> f32 known values");

    bad = 0;
    for (u = 0; u < 65536; u++) {
        b = (uint16_t) u;
        if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) {
            continue;
        }
        bad += st_f32_to_bf16(st_bf16_to_f32(b)) != b;
    }
    ok(bad == 0, "all non-NaN bf16 round-trip through f32 exactly");

    /* nearest-even against the neighbours */
    rng_seed(12);
    bad = 0;
    for (i = 0; i < 200000; i++) {
        uint32_t x = rng_u32() & 0x7fffffff;
        uint32_t down = x & 0xffff0000, up = down + 0x10000;
        uint32_t want;

        if (i % 5 == 0) {
            x = down | 0x8000;                      /* exact tie */
        }
        if (x >= 0x7f7f8000) {
            continue;                               /* inf / NaN territory */
        }
        if ((x & 0xffff) > 0x8000
            || ((x & 0xffff) == 0x8000 && (down & 0x10000)))
        {
            want = up >> 16;
        } else {
            want = down >> 16;
        }
        bad += st_f32_to_bf16(bits_f32(x)) != want;
    }
    ok(bad == 0, "f32 -> bf16 nearest-even on 200000 samples");
}


/* ------------------------------------------------------------------ */
/* activation quantizers                                                */
/* ------------------------------------------------------------------ */

static void
test_q8_0_from_float(void)
{
    const st_type_traits *tr = st_type_traits_get(ST_TYPE_Q8_0);
    st_block_q8_0         b[64];
    float                 x[64 * 32], amax, id, prod;
    int                   i, j, bad = 0, bad_d = 0, n_ref_diff = 0;
    long                  q_ref;

    /* amax = 127: d = 1, multiplier 1; halves go to the even neighbour */
    memset(x, 0, sizeof(x));
    x[0] = 127.0f;
    x[1] = 0.5f;  x[2] = 1.5f;  x[3] = 2.5f;   x[4] = -0.5f;
    x[5] = -1.5f; x[6] = -2.5f; x[7] = 3.5f;   x[8] = -126.5f;
    x[9] = 0.49999997f;
    tr->from_float(x, b, 32);
    ok(b[0].d == 0x3c00 && b[0].qs[0] == 127 && b[0].qs[1] == 0
       && b[0].qs[2] == 2 && b[0].qs[3] == 2 && b[0].qs[4] == 0
       && b[0].qs[5] == -2 && b[0].qs[6] == -2 && b[0].qs[7] == 4
       && b[0].qs[8] == -126 && b[0].qs[9] == 0,
       "q8_0: d = amax/127 as f16, halves round to even (not roundf)");

    memset(x, 0, sizeof(x));
    x[33] = -0.0f;
    tr->from_float(x, b, 64);
    bad = b[0].d != 0 || b[1].d != 0;
    for (j = 0; j < 32; j++) {
        bad += b[0].qs[j] != 0 || b[1].qs[j] != 0;
    }
    ok(bad == 0, "q8_0: all-zero block -> d 0, q 0");

    /* random blocks: q == rint(x * (127/amax)) with the multiplier rounded
     * once; count how often ggml's portable roundf(x * (1/d)) differs */
    rng_seed(21);
    bad = 0;
    for (i = 0; i < 400; i++) {
        fill_gauss(x, 64 * 32, (float) pow(10.0, (double) (i % 9) - 4.0));
        if (i % 4 == 0) {
            /* values on a grid of halves of the step: many ties */
            for (j = 0; j < 64 * 32; j++) {
                x[j] = (float) ((int) (x[j] * 1e4f) % 254) * 0.5f;
            }
        }
        tr->from_float(x, b, 64 * 32);
        for (j = 0; j < 64 * 32; j++) {
            int blk = j / 32, k;

            amax = 0.0f;
            for (k = 0; k < 32; k++) {
                amax = fmaxf(amax, fabsf(x[blk * 32 + k]));
            }
            if (j % 32 == 0 && b[blk].d != st_f32_to_f16(amax / 127.f)) {
                bad_d++;
            }
            id = amax != 0.0f ? 127.f / amax : 0.0f;
            prod = x[j] * id;
            q_ref = lrintf(prod);           /* default mode: half to even */
            if (b[blk].qs[j % 32] != q_ref) {
                bad++;
            }
            {
                float d = amax / 127.f;
                float id2 = d != 0.0f ? 1.0f / d : 0.0f;

                n_ref_diff += (long) roundf(x[j] * id2) != q_ref;
            }
        }
    }
    ok(bad == 0 && bad_d == 0, "q8_0: matches x86 arithmetic on 819200 "
       "values (%d q, %d d mismatches)", bad, bad_d);
    diag("q8_0: ggml's portable quantize_row_q8_0_ref would differ in %d of "
         "819200 values (mostly ties)", n_ref_diff);
}


static void
test_q8_K_from_float(void)
{
    const st_type_traits *tr = st_type_traits_get(ST_TYPE_Q8_K);
    st_block_q8_K        *b;
    float                *x, max, amax, iscale;
    int                   i, j, g, bad = 0, sum, v;
    int64_t               n = 8 * ST_QK_K;

    b = malloc(8 * sizeof(*b));
    x = malloc((size_t) n * sizeof(float));
    if (b == NULL || x == NULL) {
        ok(0, "q8_K: allocation");
        free(b);
        free(x);
        return;
    }

    /* signed max: the largest-magnitude value maps to -127 */
    memset(x, 0, (size_t) n * sizeof(float));
    x[0] = 1.0f;
    x[1] = -4.0f;
    x[2] = 4.0f;                    /* same |x|: the first one (-4) wins */
    x[3] = 2.0f;
    x[300] = 1.0f;                  /* block 1: max +1 */
    tr->from_float(x, b, 2 * ST_QK_K);
    ok(b[0].qs[1] == -127 && b[0].qs[2] == 127 && b[0].qs[0] == 32
       && b[0].qs[3] == 64 && b[0].d == 1.0f / (-127.f / -4.0f)
       && b[0].bsums[0] == 32 - 127 + 127 + 64 && b[1].qs[300 - 256] == -127
       && b[1].d < 0.0f,
       "q8_K: signed max -> -127, d = 1/iscale, bsums");
    /* -127/-4 * 1 = 31.75 -> 32; 63.5 -> 64 (even) */

    rng_seed(22);
    for (i = 0; i < 50; i++) {
        fill_gauss(x, n, (float) pow(10.0, (double) (i % 7) - 3.0));
        if (i == 7) {
            memset(x + 3 * ST_QK_K, 0, ST_QK_K * sizeof(float));
        }
        tr->from_float(x, b, n);
        for (j = 0; j < 8; j++) {
            const float *xb = x + j * ST_QK_K;

            max = 0.0f;
            amax = 0.0f;
            for (g = 0; g < ST_QK_K; g++) {
                if (fabsf(xb[g]) > amax) {
                    amax = fabsf(xb[g]);
                    max = xb[g];
                }
            }
            if (amax == 0.0f) {
                bad += b[j].d != 0.0f;
                for (g = 0; g < ST_QK_K; g++) {
                    bad += b[j].qs[g] != 0;
                }
                continue;
            }
            iscale = -127.f / max;
            bad += b[j].d != 1 / iscale;
            for (g = 0; g < ST_QK_K; g++) {
                v = (int) lrintf(iscale * xb[g]);
                bad += b[j].qs[g] != (v < 127 ? v : 127);
            }
            for (g = 0; g < 16; g++) {
                sum = 0;
                for (v = 0; v < 16; v++) {
                    sum += b[j].qs[16 * g + v];
                }
                bad += b[j].bsums[g] != sum;
            }
        }
    }
    ok(bad == 0, "q8_K: matches quantize_row_q8_K_ref semantics on 400 "
       "blocks incl. a zero block (%d mismatches)", bad);
    free(b);
    free(x);
}


/* ------------------------------------------------------------------ */
/* hand-built blocks                                                    */
/* ------------------------------------------------------------------ */

/* Pack 6-bit (scale, min) pairs the way the format describes it, written
 * out bit by bit (independent of quant_ref.c's packer). */
static void
pack_k4_scales(const int sc[8], const int m[8], uint8_t out[12])
{
    int j, bit;

    memset(out, 0, 12);
    for (j = 0; j < 8; j++) {
        for (bit = 0; bit < 6; bit++) {
            int sb = (sc[j] >> bit) & 1, mb = (m[j] >> bit) & 1;

            if (j < 4) {
                out[j] |= (uint8_t) (sb << bit);
                out[j + 4] |= (uint8_t) (mb << bit);
            } else if (bit < 4) {
                out[j + 4] |= (uint8_t) (sb << bit);
                out[j + 4] |= (uint8_t) (mb << (bit + 4));
            } else {
                out[j - 4] |= (uint8_t) (sb << (bit + 2));
                out[j] |= (uint8_t) (mb << (bit + 2));
            }
        }
    }
}


static void
test_hand_blocks(void)
{
    static const int sc[8] = { 1, 2, 3, 4, 17, 33, 48, 63 };
    static const int mn[8] = { 0, 1, 2, 63, 5, 40, 21, 62 };
    st_block_q4_0 b40;
    st_block_q8_0 b80;
    st_block_q4_K b4k;
    st_block_q5_K b5k;
    st_block_q6_K b6k;
    st_block_q8_K b8k;
    float         y[ST_QK_K], want;
    int           j, v, q, bad;

    /* q4_0: d = 0.5, element j: nibble j (low) / 15 - j (high) */
    b40.d = 0x3800;
    for (j = 0; j < 16; j++) {
        b40.qs[j] = (uint8_t) (j | ((15 - j) << 4));
    }
    st_type_traits_get(ST_TYPE_Q4_0)->to_float(&b40, y, 32);
    bad = 0;
    for (j = 0; j < 16; j++) {
        bad += y[j] != (float) (j - 8) * 0.5f;
        bad += y[j + 16] != (float) (7 - j) * 0.5f;
    }
    ok(bad == 0, "q4_0 hand-built block: (q - 8) * d, low nibbles first");

    /* q8_0: d = 0.25 */
    b80.d = 0x3400;
    for (j = 0; j < 32; j++) {
        b80.qs[j] = (int8_t) (j * 8 - 128);
    }
    st_type_traits_get(ST_TYPE_Q8_0)->to_float(&b80, y, 32);
    bad = 0;
    for (j = 0; j < 32; j++) {
        bad += y[j] != (float) (j * 8 - 128) * 0.25f;
    }
    ok(bad == 0, "q8_0 hand-built block: q * d");

    /* q4_K: d = 1, dmin = 0.5; value v in sub-block s = v / 32 has
     * y = sc[s] * q - 0.5 * m[s] */
    b4k.d = 0x3c00;
    b4k.dmin = 0x3800;
    pack_k4_scales(sc, mn, b4k.scales);
    for (j = 0; j < 128; j++) {
        b4k.qs[j] = (uint8_t) ((j % 16) | ((15 - (j * 7) % 16) << 4));
    }
    st_type_traits_get(ST_TYPE_Q4_K)->to_float(&b4k, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        int s = v / 32, l = v % 32, chunk = v / 64;
        uint8_t byte = b4k.qs[32 * chunk + l];

        q = (s % 2 == 0) ? (byte & 15) : (byte >> 4);
        want = (float) (sc[s] * q) - 0.5f * (float) mn[s];
        bad += y[v] != want;
    }
    ok(bad == 0, "q4_K hand-built block: 6-bit scales/mins of all 8 "
       "sub-blocks, d*sc*q - dmin*m");

    /* q5_K: same scales, 5th bit from qh */
    b5k.d = 0x3c00;
    b5k.dmin = 0x3800;
    pack_k4_scales(sc, mn, b5k.scales);
    for (j = 0; j < 128; j++) {
        b5k.qs[j] = (uint8_t) ((j % 16) | ((15 - (j * 7) % 16) << 4));
    }
    for (j = 0; j < 32; j++) {
        b5k.qh[j] = (uint8_t) (j * 37 + 11);
    }
    st_type_traits_get(ST_TYPE_Q5_K)->to_float(&b5k, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        int s = v / 32, l = v % 32, chunk = v / 64;
        uint8_t byte = b5k.qs[32 * chunk + l];

        q = (s % 2 == 0) ? (byte & 15) : (byte >> 4);
        q += ((b5k.qh[l] >> s) & 1) << 4;
        want = (float) (sc[s] * q) - 0.5f * (float) mn[s];
        bad += y[v] != want;
    }
    ok(bad == 0, "q5_K hand-built block: 5th bit of sub-block s is bit s "
       "of qh[l]");

    /* q6_K: d = 0.5, scales -8..7; q of value v from ql/qh positions */
    b6k.d = 0x3800;
    for (j = 0; j < 16; j++) {
        b6k.scales[j] = (int8_t) (j - 8);
    }
    for (j = 0; j < 128; j++) {
        b6k.ql[j] = (uint8_t) (j * 29 + 3);
    }
    for (j = 0; j < 64; j++) {
        b6k.qh[j] = (uint8_t) (j * 53 + 7);
    }
    st_type_traits_get(ST_TYPE_Q6_K)->to_float(&b6k, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        int h = v / 128, r = v % 128, quarter = r / 32, l = r % 32;
        uint8_t lb = b6k.ql[64 * h + l + 32 * (quarter & 1)];
        uint8_t hb = b6k.qh[32 * h + l];

        q = (quarter < 2 ? (lb & 15) : (lb >> 4))
            | (((hb >> (2 * quarter)) & 3) << 4);
        want = 0.5f * (float) b6k.scales[v / 16] * (float) (q - 32);
        bad += y[v] != want;
    }
    ok(bad == 0, "q6_K hand-built block: ql/qh packing, int8 scale per 16");

    b8k.d = 0.125f;
    for (j = 0; j < ST_QK_K; j++) {
        b8k.qs[j] = (int8_t) (j - 128);
    }
    st_type_traits_get(ST_TYPE_Q8_K)->to_float(&b8k, y, ST_QK_K);
    bad = 0;
    for (j = 0; j < ST_QK_K; j++) {
        bad += y[j] != (float) (j - 128) * 0.125f;
    }
    ok(bad == 0, "q8_K hand-built block: d * q");
}


/* ------------------------------------------------------------------ */
/* quantize -> dequantize error, and vec_dot exactness                  */
/* ------------------------------------------------------------------ */

/*
 * Largest error the simple quantizer may make on block b (of bs values),
 * read back from the quantized bytes.
 */
static double
block_error_bound(st_type t, const void *q, int64_t b, const float *x)
{
    double amax = 0.0;
    int    j;

    switch (t) {
    case ST_TYPE_F32:
        return 0.0;
    case ST_TYPE_F16:
        return fabs(x[b]) * 0x1p-11 + 0x1p-25;
    case ST_TYPE_BF16:
        return fabs(x[b]) * 0x1p-8;
    case ST_TYPE_Q8_0: {
        /* half a step, plus the f16 rounding of d (relative 2^-11, or
         * 2^-25 absolute where d is an f16 subnormal) over 127 steps */
        const st_block_q8_0 *blk = (const st_block_q8_0 *) q + b;

        for (j = 0; j < 32; j++) {
            amax = fmax(amax, fabs(x[32 * b + j]));
        }
        return 0.5 * st_f16_to_f32(blk->d) + amax * 0x1p-10
               + 127.0 * 0x1p-25 + 1e-30;
    }
    case ST_TYPE_Q4_0: {
        /* a full step on the side opposite the largest value */
        const st_block_q4_0 *blk = (const st_block_q4_0 *) q + b;

        return fabs(st_f16_to_f32(blk->d)) * 1.001 + 1e-30;
    }
    case ST_TYPE_Q4_K: {
        const st_block_q4_K *blk = (const st_block_q4_K *) q + b;

        return 0.5 * (63.0 * st_f16_to_f32(blk->d) + st_f16_to_f32(blk->dmin))
               * 1.01 + 1e-30;
    }
    case ST_TYPE_Q5_K: {
        const st_block_q5_K *blk = (const st_block_q5_K *) q + b;

        return 0.5 * (63.0 * st_f16_to_f32(blk->d) + st_f16_to_f32(blk->dmin))
               * 1.01 + 1e-30;
    }
    case ST_TYPE_Q6_K: {
        const st_block_q6_K *blk = (const st_block_q6_K *) q + b;

        return 0.5 * 127.0 * st_f16_to_f32(blk->d) * 1.01 + 1e-30;
    }
    case ST_TYPE_Q4_1: {
        /* half a step, plus the f16 rounding of the min */
        const st_block_q4_1 *blk = (const st_block_q4_1 *) q + b;

        return 0.5 * st_f16_to_f32(blk->d) * 1.01
               + fabs(st_f16_to_f32(blk->m)) * 0x1p-10 + 1e-30;
    }
    case ST_TYPE_Q5_1: {
        const st_block_q5_1 *blk = (const st_block_q5_1 *) q + b;

        return 0.5 * st_f16_to_f32(blk->d) * 1.01
               + fabs(st_f16_to_f32(blk->m)) * 0x1p-10 + 1e-30;
    }
    case ST_TYPE_Q5_0: {
        const st_block_q5_0 *blk = (const st_block_q5_0 *) q + b;

        /* a step, the clipped side's f16-rounded 16 d */
        return fabs(st_f16_to_f32(blk->d)) * 1.01 + 1e-30;
    }
    case ST_TYPE_Q2_K: {
        /* half a step of the largest 4-bit scale, the mins' rounding */
        const st_block_q2_K *blk = (const st_block_q2_K *) q + b;

        return 0.5 * (15.0 * st_f16_to_f32(blk->d) + st_f16_to_f32(blk->dmin))
               * 1.01 + 1e-30;
    }
    case ST_TYPE_Q3_K: {
        /* the positive end is clipped at 3 of 4 steps: one step */
        const st_block_q3_K *blk = (const st_block_q3_K *) q + b;

        return 31.0 * st_f16_to_f32(blk->d) * 1.01 + 1e-30;
    }
    case ST_TYPE_IQ4_NL: {
        /* the widest gap of the grid (113 -> 127 clipped, 24 between
         * 89 and 113): half of it, or the clipped top */
        const st_block_iq4_nl *blk = (const st_block_iq4_nl *) q + b;

        return 14.0 * fabs(st_f16_to_f32(blk->d)) * 1.01 + 1e-30;
    }
    case ST_TYPE_IQ4_XS: {
        /* as iq4_nl, the sub-block scale off by up to half of d */
        const st_block_iq4_xs *blk = (const st_block_iq4_xs *) q + b;

        return (14.0 * 31.0 + 0.5 * 127.0) * st_f16_to_f32(blk->d) * 1.01
               + 1e-30;
    }
    default:
        return 0.0;
    }
}

/*
 * The double value of a dot in its vec_dot type's terms: sum x_i * y_i
 * over the dequantized rows, except that Q8_1's activation sum enters
 * through its stored s (f16(d * sum q), as the format defines it): for
 * q4_1/q5_1 x q8_1 that is  sum (x_i - m) * y_i + sum_b m_b * s_b.
 * abs_sum: the sum of |terms| the value is made of.
 */
static void
dot_ref(st_type t, const void *xq, const void *yq, int64_t n, double *ref,
    double *abs_sum)
{
    const st_type_traits *tr = st_type_traits_get(t);
    const st_type_traits *vtr = st_type_traits_get(tr->vec_dot_type);
    int64_t               nb = n / tr->block_size, b, i;
    float                *xd = malloc((size_t) n * sizeof(float));
    float                *yd = malloc((size_t) n * sizeof(float));
    uint8_t              *x0 = NULL;

    *ref = *abs_sum = NAN;
    if (xd == NULL || yd == NULL) {
        free(xd); free(yd);
        return;
    }
    vtr->to_float(yq, yd, n);
    *ref = *abs_sum = 0.0;
    if (tr->vec_dot_type == ST_TYPE_Q8_1) {
        /* q4_1 and q5_1 keep m right after d: zero it to get q * d */
        const st_block_q8_1 *y = yq;
        size_t               rb = st_row_bytes(t, (uint64_t) n);

        x0 = malloc(rb);
        if (x0 == NULL) {
            *ref = *abs_sum = NAN;
            free(xd); free(yd);
            return;
        }
        memcpy(x0, xq, rb);
        for (b = 0; b < nb; b++) {
            st_f16 m;

            memcpy(&m, x0 + b * tr->type_size + 2, 2);
            memset(x0 + b * tr->type_size + 2, 0, 2);
            *ref += (double) st_f16_to_f32(m) * st_f16_to_f32(y[b].s);
            *abs_sum += fabs((double) st_f16_to_f32(m)
                             * st_f16_to_f32(y[b].s));
        }
        xq = x0;
    }
    tr->to_float(xq, xd, n);
    for (i = 0; i < n; i++) {
        *ref += (double) xd[i] * yd[i];
        *abs_sum += fabs((double) xd[i] * yd[i]);
    }
    free(x0);
    free(xd);
    free(yd);
}


static void
test_type_roundtrip_and_dot(st_type t, const int64_t *lens, int n_lens,
    double max_rel_rms)
{
    const st_type_traits *tr = st_type_traits_get(t);
    const st_type_traits *vtr = st_type_traits_get(tr->vec_dot_type);
    int64_t               n, i, bs = tr->block_size;
    int                   li, rep, bad_bound = 0, bad_dot = 0;
    float                *x, *xd, *y, *yd, s, scale;
    void                 *xq, *yq;
    double                num, den, worst_rel = 0.0, ref, abs_sum, tol;
    double                worst_dot = 0.0;

    for (li = 0; li < n_lens; li++) {
        n = lens[li];
        x = malloc((size_t) n * sizeof(float));
        xd = malloc((size_t) n * sizeof(float));
        y = malloc((size_t) n * sizeof(float));
        yd = malloc((size_t) n * sizeof(float));
        xq = malloc(st_row_bytes(t, n) + 1);
        yq = malloc(st_row_bytes(tr->vec_dot_type, n) + 1);
        if (!x || !xd || !y || !yd || !xq || !yq) {
            ok(0, "%s: allocation", tr->name);
            free(x); free(xd); free(y); free(yd); free(xq); free(yq);
            return;
        }
        for (rep = 0; rep < 6; rep++) {
            rng_seed((uint64_t) (1000 * t + 10 * li + rep + 1));
            scale = rep == 0 ? 1.0f : rep == 1 ? 1e-3f : rep == 2 ? 50.0f
                    : 0.02f;
            fill_gauss(x, n, scale);
            if (rep == 4) {
                /* a shifted block: all positive (mins matter for K-quants) */
                for (i = 0; i < n; i++) {
                    x[i] = fabsf(x[i]) + 0.1f;
                }
            }
            if (rep == 5 && n >= bs) {
                memset(x, 0, (size_t) bs * sizeof(float));   /* zero block */
            }
            roundtrip(t, x, xd, n, xq);
            num = 0.0;
            den = 0.0;
            for (i = 0; i < n; i++) {
                double e = fabs((double) xd[i] - x[i]);
                double bound = block_error_bound(t, xq,
                    t == ST_TYPE_F16 || t == ST_TYPE_BF16 || t == ST_TYPE_F32
                    ? i : i / bs, x);

                if (!(e <= bound)) {
                    if (bad_bound < 3) {
                        diag("%s n=%lld rep %d [%lld]: x %g -> %g (bound %g)",
                             tr->name, (long long) n, rep, (long long) i,
                             (double) x[i], (double) xd[i], bound);
                    }
                    bad_bound++;
                }
                num += e * e;
                den += (double) x[i] * x[i];
            }
            if (den > 0.0 && rep != 4) {
                worst_rel = fmax(worst_rel, sqrt(num / den));
            }

            /* vec_dot(x_q, from_float(y)) against double dot of the
             * dequantized operands */
            fill_gauss(y, n, rep == 2 ? 3.0f : 1.0f);
            vtr->from_float(y, yq, n);
            vtr->to_float(yq, yd, n);
            tr->vec_dot(n, &s, xq, yq);
            dot_ref(t, xq, yq, n, &ref, &abs_sum);
            /* quantized: exact block sums, rounding only per block;
             * float rows: f32 accumulation over n terms */
            tol = (bs > 1 ? 1e-5 : fmax(1e-5, (double) n * 0x1p-24))
                  * abs_sum + 1e-35;
            if (!(fabs(s - ref) <= tol)) {
                if (bad_dot < 3) {
                    diag("%s n=%lld rep %d: dot %.9g vs %.9g (tol %g)",
                         tr->name, (long long) n, rep, (double) s, ref, tol);
                }
                bad_dot++;
            }
            if (abs_sum > 0.0) {
                worst_dot = fmax(worst_dot, fabs(s - ref) / abs_sum);
            }
        }
        free(x); free(xd); free(y); free(yd); free(xq); free(yq);
    }
    ok(bad_bound == 0, "%s: quantize/dequantize error within the per-block "
       "bound (%d over)", tr->name, bad_bound);
    ok(worst_rel <= max_rel_rms, "%s: relative rms error %.3g <= %.3g",
       tr->name, worst_rel, max_rel_rms);
    ok(bad_dot == 0, "%s x %s: vec_dot equals the double dot of the "
       "dequantized rows (worst %.2g of sum|xy|)", tr->name, vtr->name,
       worst_dot);
}


static void
test_all_types(void)
{
    static const int64_t l32[] = { 32, 64, 96, 256, 4096 };
    static const int64_t lk[] = { 256, 512, 2048 };
    static const int64_t lf[] = { 1, 7, 33, 256, 1000, 4096 };

    test_type_roundtrip_and_dot(ST_TYPE_F32, lf, 6, 0.0);
    test_type_roundtrip_and_dot(ST_TYPE_F16, lf, 6, 4e-4);
    test_type_roundtrip_and_dot(ST_TYPE_BF16, lf, 6, 3e-3);
    test_type_roundtrip_and_dot(ST_TYPE_Q8_0, l32, 5, 0.012);
    test_type_roundtrip_and_dot(ST_TYPE_Q4_0, l32, 5, 0.2);
    test_type_roundtrip_and_dot(ST_TYPE_Q4_K, lk, 3, 0.2);
    test_type_roundtrip_and_dot(ST_TYPE_Q5_K, lk, 3, 0.1);
    test_type_roundtrip_and_dot(ST_TYPE_Q6_K, lk, 3, 0.06);
    test_type_roundtrip_and_dot(ST_TYPE_Q4_1, l32, 5, 0.12);
    test_type_roundtrip_and_dot(ST_TYPE_Q5_0, l32, 5, 0.1);
    test_type_roundtrip_and_dot(ST_TYPE_Q5_1, l32, 5, 0.06);
    test_type_roundtrip_and_dot(ST_TYPE_IQ4_NL, l32, 5, 0.15);
    test_type_roundtrip_and_dot(ST_TYPE_Q2_K, lk, 3, 0.5);
    test_type_roundtrip_and_dot(ST_TYPE_Q3_K, lk, 3, 0.3);
    test_type_roundtrip_and_dot(ST_TYPE_IQ4_XS, lk, 3, 0.15);
}


/* Non-finite inputs must not crash or read out of range. */
static void
test_nonfinite(void)
{
    static const st_type types[] = {
        ST_TYPE_Q8_0, ST_TYPE_Q4_0, ST_TYPE_Q4_K, ST_TYPE_Q5_K, ST_TYPE_Q6_K,
        ST_TYPE_Q8_K, ST_TYPE_Q8_1, ST_TYPE_Q4_1, ST_TYPE_Q5_0, ST_TYPE_Q5_1,
        ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_IQ4_NL, ST_TYPE_IQ4_XS
    };
    float   x[ST_QK_K];
    uint8_t buf[512];
    size_t  i;
    int     j;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        for (j = 0; j < ST_QK_K; j++) {
            x[j] = j % 3 == 0 ? NAN : j % 3 == 1 ? INFINITY : -1e38f;
        }
        st_quantize_row(types[i], x, buf, ST_QK_K);
    }
    st_type_traits_get(ST_TYPE_Q8_0)->from_float(x, buf, ST_QK_K);
    st_type_traits_get(ST_TYPE_Q8_K)->from_float(x, buf, ST_QK_K);
    st_type_traits_get(ST_TYPE_Q8_1)->from_float(x, buf, ST_QK_K);
    ok(1, "NaN/inf/huge inputs to every quantizer: no crash");
}


/* ------------------------------------------------------------------ */
/* GGUF (a minimal local reader: the test must not depend on gguf.c)    */
/* ------------------------------------------------------------------ */

typedef struct {
    uint8_t       *map;
    size_t         size;
    size_t         data_off;
    uint64_t       n_tensors;
    size_t         infos_off;     /* first tensor info */
} mini_gguf;

typedef struct {
    uint32_t       type;
    uint64_t       ne[4];
    uint32_t       n_dims;
    const uint8_t *data;
} mini_tensor;


static int
mg_skip(const mini_gguf *g, size_t *p, size_t n)
{
    if (n > g->size || *p > g->size - n) {
        return -1;
    }
    *p += n;
    return 0;
}


static int
mg_u32(const mini_gguf *g, size_t *p, uint32_t *v)
{
    if (mg_skip(g, p, 4) != 0) {
        return -1;
    }
    memcpy(v, g->map + *p - 4, 4);
    return 0;
}


static int
mg_u64(const mini_gguf *g, size_t *p, uint64_t *v)
{
    if (mg_skip(g, p, 8) != 0) {
        return -1;
    }
    memcpy(v, g->map + *p - 8, 8);
    return 0;
}


static int
mg_skip_value(const mini_gguf *g, size_t *p, uint32_t vt, int depth)
{
    static const int sz[13] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    uint64_t         len, k;
    uint32_t         et;

    if (vt > 12 || depth > 2) {
        return -1;
    }
    if (vt == 8) {
        return mg_u64(g, p, &len) != 0 ? -1 : mg_skip(g, p, len);
    }
    if (vt == 9) {
        if (mg_u32(g, p, &et) != 0 || mg_u64(g, p, &len) != 0 || et > 12) {
            return -1;
        }
        if (et != 8 && et != 9) {
            return len > g->size ? -1 : mg_skip(g, p, len * sz[et]);
        }
        for (k = 0; k < len; k++) {
            if (mg_skip_value(g, p, et, depth + 1) != 0) {
                return -1;
            }
        }
        return 0;
    }
    return mg_skip(g, p, sz[vt]);
}


static int
mg_open(mini_gguf *g, const char *path)
{
    struct stat st;
    size_t      p = 0, klen_p;
    uint32_t    version, vt, align = 32, n_dims, i32;
    uint64_t    n_kv, k, klen, len, t, d;
    int         fd;

    memset(g, 0, sizeof(*g));
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_size < 24) {
        close(fd);
        return -1;
    }
    g->size = (size_t) st.st_size;
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        return -1;
    }
    if (memcmp(g->map, "GGUF", 4) != 0) {
        return -1;
    }
    p = 4;
    if (mg_u32(g, &p, &version) != 0 || version < 2
        || mg_u64(g, &p, &g->n_tensors) != 0 || mg_u64(g, &p, &n_kv) != 0)
    {
        return -1;
    }
    for (k = 0; k < n_kv; k++) {
        if (mg_u64(g, &p, &klen) != 0) {
            return -1;
        }
        klen_p = p;
        if (mg_skip(g, &p, klen) != 0 || mg_u32(g, &p, &vt) != 0) {
            return -1;
        }
        if (klen == 17 && memcmp(g->map + klen_p, "general.alignment", 17) == 0
            && vt == 4)
        {
            if (mg_u32(g, &p, &align) != 0 || align == 0) {
                return -1;
            }
            continue;
        }
        if (mg_skip_value(g, &p, vt, 0) != 0) {
            return -1;
        }
    }
    g->infos_off = p;
    for (t = 0; t < g->n_tensors; t++) {
        if (mg_u64(g, &p, &len) != 0 || mg_skip(g, &p, len) != 0
            || mg_u32(g, &p, &n_dims) != 0 || n_dims > 4)
        {
            return -1;
        }
        for (d = 0; d < n_dims; d++) {
            if (mg_skip(g, &p, 8) != 0) {
                return -1;
            }
        }
        if (mg_u32(g, &p, &i32) != 0 || mg_skip(g, &p, 8) != 0) {
            return -1;
        }
    }
    g->data_off = (p + align - 1) / align * align;
    return g->data_off <= g->size ? 0 : -1;
}


static void
mg_close(mini_gguf *g)
{
    if (g->map != NULL) {
        munmap(g->map, g->size);
    }
    g->map = NULL;
}


static int
mg_find(const mini_gguf *g, const char *name, mini_tensor *out)
{
    size_t   p = g->infos_off, name_p;
    uint64_t t, len = 0, off = 0, nel = 1, bytes;
    uint32_t d;

    for (t = 0; t < g->n_tensors; t++) {
        memset(out, 0, sizeof(*out));
        mg_u64(g, &p, &len);
        name_p = p;
        mg_skip(g, &p, len);
        mg_u32(g, &p, &out->n_dims);
        nel = 1;
        for (d = 0; d < 4; d++) {
            out->ne[d] = 1;
        }
        for (d = 0; d < out->n_dims; d++) {
            mg_u64(g, &p, &out->ne[d]);
            nel *= out->ne[d];
        }
        mg_u32(g, &p, &out->type);
        mg_u64(g, &p, &off);
        if (len == strlen(name) && memcmp(g->map + name_p, name, len) == 0) {
            bytes = st_row_bytes(out->type, out->ne[0]) * (nel / out->ne[0]);
            if (bytes == 0 || off > g->size - g->data_off
                || bytes > g->size - g->data_off - off)
            {
                return -1;
            }
            out->data = g->map + g->data_off + off;
            return 0;
        }
    }
    return -1;
}


/* ------------------------------------------------------------------ */
/* real tensors                                                         */
/* ------------------------------------------------------------------ */

/* vec_dot on real weight rows: exact against the dequantized double dot. */
static int
dot_check_rows(const mini_tensor *t, int64_t n_rows, double *worst)
{
    const st_type_traits *tr = st_type_traits_get(t->type);
    const st_type_traits *vtr = st_type_traits_get(tr->vec_dot_type);
    int64_t               n = (int64_t) t->ne[0], r;
    uint64_t              rb = st_row_bytes(t->type, t->ne[0]);
    float                *y, *yd, *xd, s;
    void                 *yq;
    double                ref, abs_sum;
    int                   bad = 0;

    y = malloc((size_t) n * sizeof(float));
    yd = malloc((size_t) n * sizeof(float));
    xd = malloc((size_t) n * sizeof(float));
    yq = malloc(st_row_bytes(tr->vec_dot_type, (uint64_t) n));
    if (!y || !yd || !xd || !yq) {
        free(y); free(yd); free(xd); free(yq);
        return -1;
    }
    *worst = 0.0;
    rng_seed(77);
    for (r = 0; r < n_rows; r++) {
        fill_gauss(y, n, 1.0f);
        vtr->from_float(y, yq, n);
        vtr->to_float(yq, yd, n);
        tr->to_float(t->data + r * rb, xd, n);
        tr->vec_dot(n, &s, t->data + r * rb, yq);
        dot_ref(t->type, t->data + r * rb, yq, n, &ref, &abs_sum);
        if (!(fabs(s - ref) <= 1e-5 * abs_sum)) {
            bad++;
        }
        if (abs_sum > 0) {
            *worst = fmax(*worst, fabs(s - ref) / abs_sum);
        }
    }
    free(y); free(yd); free(xd); free(yq);
    return bad;
}


static void
test_tinystories_q8_0(void)
{
    char        path[1024];
    mini_gguf   g;
    mini_tensor t;
    int64_t     n, rows, r, i;
    uint64_t    rb;
    float      *row;
    uint8_t    *req;
    int         bad_finite = 0, same = 0, bad_dot;
    double      sum_abs = 0.0, worst;

    snprintf(path, sizeof(path), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    if (mg_open(&g, path) != 0 || mg_find(&g, "token_embd.weight", &t) != 0) {
        mg_close(&g);
        skip("%s: not found or unreadable", path);
        skip("(q8_0 re-quantization)");
        skip("(q8_0 real vec_dot)");
        return;
    }
    n = (int64_t) t.ne[0];
    rows = (int64_t) t.ne[1];
    rb = st_row_bytes(t.type, t.ne[0]);
    row = malloc((size_t) n * sizeof(float));
    req = malloc(rb);
    if (t.type != ST_TYPE_Q8_0 || row == NULL || req == NULL) {
        ok(0, "token_embd.weight is q8_0 (type %u)", t.type);
        free(row);
        free(req);
        mg_close(&g);
        return;
    }
    for (r = 0; r < rows; r++) {
        st_type_traits_get(ST_TYPE_Q8_0)->to_float(t.data + r * rb, row, n);
        for (i = 0; i < n; i++) {
            bad_finite += !isfinite(row[i]);
            sum_abs += fabs(row[i]);
        }
        /* q * d re-quantizes to the same bytes: the block max is +-127 d */
        st_quantize_row(ST_TYPE_Q8_0, row, req, n);
        same += memcmp(req, t.data + r * rb, rb) == 0;
    }
    ok(bad_finite == 0, "TinyStories token_embd.weight [%lld x %lld] q8_0: "
       "all dequantized values finite (mean |w| %.4f)", (long long) n,
       (long long) rows, sum_abs / (double) (n * rows));
    ok(same == rows, "q8_0: dequantized rows re-quantize to identical bytes "
       "(%d of %lld)", same, (long long) rows);
    bad_dot = dot_check_rows(&t, rows < 256 ? rows : 256, &worst);
    ok(bad_dot == 0, "q8_0 x q8_0 vec_dot on 256 real rows (worst %.2g)",
       worst);
    free(row);
    free(req);
    mg_close(&g);
}


/* mean |q - f| and mean |f| over the first n_rows rows */
static int
compare_with_f32(const mini_tensor *q, const mini_tensor *f, int64_t n_rows,
    double *mae, double *mean_abs, double *mae_ours)
{
    const st_type_traits *tr = st_type_traits_get(q->type);
    int64_t               n = (int64_t) q->ne[0], r, i;
    uint64_t              rb = st_row_bytes(q->type, q->ne[0]);
    float                *row, *ours;
    void                 *buf;
    const float          *fr;

    if (tr == NULL || tr->to_float == NULL || f->type != ST_TYPE_F32
        || f->ne[0] != q->ne[0] || f->ne[1] != q->ne[1])
    {
        return -1;
    }
    row = malloc((size_t) n * sizeof(float));
    ours = malloc((size_t) n * sizeof(float));
    buf = malloc(rb);
    if (!row || !ours || !buf) {
        free(row); free(ours); free(buf);
        return -1;
    }
    *mae = *mean_abs = *mae_ours = 0.0;
    for (r = 0; r < n_rows; r++) {
        tr->to_float(q->data + r * rb, row, n);
        fr = (const float *) (const void *) (f->data + r * n * sizeof(float));
        roundtrip(q->type, fr, ours, n, buf);
        for (i = 0; i < n; i++) {
            *mae += fabs((double) row[i] - fr[i]);
            *mae_ours += fabs((double) ours[i] - fr[i]);
            *mean_abs += fabs(fr[i]);
        }
    }
    *mae /= (double) (n * n_rows);
    *mae_ours /= (double) (n * n_rows);
    *mean_abs /= (double) (n * n_rows);
    free(row); free(ours); free(buf);
    return 0;
}


static void
test_synthetic(void)
{
    static const struct {
        const char *name;
        uint32_t    type;
        int64_t     rows;
        double      max_rel;     /* mean abs error / mean abs value */
    } cases[] = {
        { "blk.0.attn_q.weight", ST_TYPE_Q4_K, 256, 0.12 },
        { "blk.0.ffn_gate.weight", ST_TYPE_Q4_K, 768, 0.12 },
        { "token_embd.weight", ST_TYPE_Q4_K, 512, 0.12 },
        { "blk.1.attn_v.weight", ST_TYPE_Q6_K, 128, 0.03 },
        { "blk.1.ffn_down.weight", ST_TYPE_Q6_K, 256, 0.03 },
        { "output.weight", ST_TYPE_Q6_K, 512, 0.03 },
    };
    char        pq[1024], pf[1024];
    mini_gguf   gq, gf;
    mini_tensor tq, tf;
    size_t      i;
    double      mae, mean_abs, mae_ours, worst;
    int         bad;

    snprintf(pq, sizeof(pq), "%s/models/synthetic/synth-llama-Q4_K_M.gguf",
             tap_shared_dir());
    snprintf(pf, sizeof(pf), "%s/models/synthetic/synth-llama-F32.gguf",
             tap_shared_dir());
    if (access(pq, R_OK) != 0 || access(pf, R_OK) != 0) {
        skip("%s not present", pq);
        return;
    }
    if (mg_open(&gq, pq) != 0 || mg_open(&gf, pf) != 0) {
        ok(0, "synthetic models parse");
        mg_close(&gq);
        mg_close(&gf);
        return;
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (mg_find(&gq, cases[i].name, &tq) != 0
            || mg_find(&gf, cases[i].name, &tf) != 0
            || tq.type != cases[i].type
            || (int64_t) tq.ne[1] < cases[i].rows)
        {
            ok(0, "synthetic %s: found with type %u", cases[i].name,
               cases[i].type);
            continue;
        }
        if (compare_with_f32(&tq, &tf, cases[i].rows, &mae, &mean_abs,
                             &mae_ours) != 0)
        {
            ok(0, "synthetic %s: compare", cases[i].name);
            continue;
        }
        diag("%s (%s, %llu x %lld rows): mean |err| %.3g, mean |w| %.3g "
             "(rel %.4f); our simple quantizer: rel %.4f", cases[i].name,
             st_type_traits_get(tq.type)->name,
             (unsigned long long) tq.ne[0], (long long) cases[i].rows, mae,
             mean_abs, mae / mean_abs, mae_ours / mean_abs);
        ok(mae / mean_abs < cases[i].max_rel,
           "synthetic %s (%s) dequantizes to the F32 original within "
           "quantization error (rel %.4f < %.2f)", cases[i].name,
           st_type_traits_get(tq.type)->name, mae / mean_abs,
           cases[i].max_rel);
        if (i == 0 || i == 3) {
            bad = dot_check_rows(&tq, 64, &worst);
            ok(bad == 0, "%s x q8_K vec_dot on 64 real rows of %s (worst "
               "%.2g)", st_type_traits_get(tq.type)->name, cases[i].name,
               worst);
        }
    }
    mg_close(&gq);
    mg_close(&gf);
}


/* ------------------------------------------------------------------ */
/* the remaining weight types: Q8_1, hand-built blocks, exact dots      */
/* ------------------------------------------------------------------ */

/* ggml's kvalues_iq4nl, written out here independently of quant_ref.c */
static const int iq4_grid[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113
};


/* q8_1 = q8_0's d and quants, plus s = f16(d * sum q) with the f32 d */
static void
test_q8_1_from_float(void)
{
    const st_type_traits *t1 = st_type_traits_get(ST_TYPE_Q8_1);
    const st_type_traits *t0 = st_type_traits_get(ST_TYPE_Q8_0);
    float                 x[32 * 64], amax, d;
    st_block_q8_1         b1[64];
    st_block_q8_0         b0[64];
    int                   i, j, sum, bad = 0;

    rng_seed(4242);
    fill_gauss(x, 32 * 64, 2.0f);
    for (j = 0; j < 32; j++) {
        x[j] = (float) (j - 16) * 0.5f;   /* ties: x * 127 / 8 hits .5 */
        x[32 + j] = 0.0f;                 /* zero block */
    }
    t1->from_float(x, b1, 32 * 64);
    t0->from_float(x, b0, 32 * 64);
    for (i = 0; i < 64; i++) {
        amax = 0.0f;
        sum = 0;
        for (j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[32 * i + j]));
            sum += b1[i].qs[j];
        }
        d = amax / 127.f;
        bad += b1[i].d != b0[i].d
               || memcmp(b1[i].qs, b0[i].qs, 32) != 0
               || b1[i].s != st_f32_to_f16(d * (float) sum);
    }
    ok(bad == 0, "q8_1: d and quants as q8_0, s = f16(d * sum q) on 64 "
       "blocks incl. ties and a zero block (%d bad)", bad);
    ok(b1[1].d == 0 && b1[1].s == 0 && b1[0].qs[0] == -127
       && b1[0].qs[31] == 119 && b1[0].s == st_f32_to_f16(8.f / 127.f * -127.f),
       "q8_1: hand values (amax 8: q = round(x * 127 / 8), s of a "
       "ramp -8..7.5)");
}


static void
test_hand_blocks_new(void)
{
    st_block_q4_1   b41;
    st_block_q5_0   b50;
    st_block_q5_1   b51;
    st_block_q2_K   b2k;
    st_block_q3_K   b3k;
    st_block_iq4_nl bnl;
    st_block_iq4_xs bxs;
    float           y[ST_QK_K];
    double          want[ST_QK_K];
    int             j, v, g, l, sh, c, q, bad, sc3[16], ls[8];
    static const uint8_t qh5[4] = { 0x0f, 0xf0, 0xc3, 0xa5 };

    /* q4_1: d = 0.5, m = -2 */
    b41.d = 0x3800;
    b41.m = 0xc000;
    for (j = 0; j < 16; j++) {
        b41.qs[j] = (uint8_t) (j | ((15 - j) << 4));
    }
    st_type_traits_get(ST_TYPE_Q4_1)->to_float(&b41, y, 32);
    bad = 0;
    for (j = 0; j < 16; j++) {
        bad += y[j] != (float) j * 0.5f - 2.0f;
        bad += y[j + 16] != (float) (15 - j) * 0.5f - 2.0f;
    }
    ok(bad == 0, "q4_1 hand-built block: q * d + m, low nibbles first");

    /* q5_0: d = 0.25; the 5th bit of value j is bit j % 8 of qh[j / 8] */
    b50.d = 0x3400;
    memcpy(b50.qh, qh5, 4);
    for (j = 0; j < 16; j++) {
        b50.qs[j] = (uint8_t) ((j * 5 % 16) | ((j * 11 % 16) << 4));
    }
    st_type_traits_get(ST_TYPE_Q5_0)->to_float(&b50, y, 32);
    bad = 0;
    for (j = 0; j < 32; j++) {
        int lo = j < 16 ? b50.qs[j] & 15 : b50.qs[j - 16] >> 4;

        q = lo + 16 * ((qh5[j / 8] >> (j % 8)) & 1);
        bad += y[j] != (float) (q - 16) * 0.25f;
    }
    ok(bad == 0, "q5_0 hand-built block: (q - 16) * d, qh bit j for value j");

    /* q5_1: d = 0.5, m = 1 */
    b51.d = 0x3800;
    b51.m = 0x3c00;
    memcpy(b51.qh, qh5, 4);
    memcpy(b51.qs, b50.qs, 16);
    st_type_traits_get(ST_TYPE_Q5_1)->to_float(&b51, y, 32);
    bad = 0;
    for (j = 0; j < 32; j++) {
        int lo = j < 16 ? b51.qs[j] & 15 : b51.qs[j - 16] >> 4;

        q = lo + 16 * ((qh5[j / 8] >> (j % 8)) & 1);
        bad += y[j] != (float) q * 0.5f + 1.0f;
    }
    ok(bad == 0, "q5_1 hand-built block: q * d + m");

    /* q2_K: d = 1, dmin = 0.5, scale g = g, min g = 15 - g; walk the
     * format's order: 2 halves x 4 bit pairs x 32 bytes */
    b2k.d = 0x3c00;
    b2k.dmin = 0x3800;
    for (g = 0; g < 16; g++) {
        b2k.scales[g] = (uint8_t) (g | ((15 - g) << 4));
    }
    for (j = 0; j < 64; j++) {
        b2k.qs[j] = (uint8_t) (j * 73 + 5);
    }
    v = 0;
    for (c = 0; c < 2; c++) {
        for (sh = 0; sh < 8; sh += 2) {
            for (l = 0; l < 32; l++, v++) {
                q = (b2k.qs[32 * c + l] >> sh) & 3;
                g = v / 16;
                want[v] = (double) (g * q) - 0.5 * (15 - g);
            }
        }
    }
    st_type_traits_get(ST_TYPE_Q2_K)->to_float(&b2k, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        bad += (double) y[v] != want[v];
    }
    ok(bad == 0, "q2_K hand-built block: 2-bit order, 4-bit scale/min per 16");

    /* q3_K: d = 0.5; 16 scales 0..63 packed as ggml's quantizer packs
     * them; the high bit of value v is bit v / 32 of hmask[v % 32] */
    b3k.d = 0x3800;
    memset(b3k.scales, 0, 12);
    for (g = 0; g < 16; g++) {
        sc3[g] = (g * 23 + 9) % 64;
        if (g < 8) {
            b3k.scales[g] = (uint8_t) (sc3[g] & 15);
        } else {
            b3k.scales[g - 8] |= (uint8_t) ((sc3[g] & 15) << 4);
        }
        b3k.scales[g % 4 + 8] |= (uint8_t) ((sc3[g] >> 4) << (2 * (g / 4)));
    }
    for (j = 0; j < 64; j++) {
        b3k.qs[j] = (uint8_t) (j * 91 + 17);
    }
    for (j = 0; j < 32; j++) {
        b3k.hmask[j] = (uint8_t) (j * 57 + 3);
    }
    v = 0;
    for (c = 0; c < 2; c++) {
        for (sh = 0; sh < 8; sh += 2) {
            for (l = 0; l < 32; l++, v++) {
                q = (b3k.qs[32 * c + l] >> sh) & 3;
                if (!((b3k.hmask[l] >> (4 * c + sh / 2)) & 1)) {
                    q -= 4;
                }
                want[v] = 0.5 * (sc3[v / 16] - 32) * q;
            }
        }
    }
    st_type_traits_get(ST_TYPE_Q3_K)->to_float(&b3k, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        bad += (double) y[v] != want[v];
    }
    ok(bad == 0, "q3_K hand-built block: packed 6-bit scales - 32, hmask "
       "high bit (clear: q - 4)");

    /* iq4_nl: d = 0.5 */
    bnl.d = 0x3800;
    for (j = 0; j < 16; j++) {
        bnl.qs[j] = (uint8_t) (j | ((j * 7 % 16) << 4));
    }
    st_type_traits_get(ST_TYPE_IQ4_NL)->to_float(&bnl, y, 32);
    bad = 0;
    for (j = 0; j < 16; j++) {
        bad += y[j] != 0.5f * (float) iq4_grid[j];
        bad += y[j + 16] != 0.5f * (float) iq4_grid[j * 7 % 16];
    }
    ok(bad == 0, "iq4_nl hand-built block: d * grid[nibble]");

    /* iq4_xs: d = 0.25, sub-block scales: low 4 bits in scales_l
     * nibbles, high 2 bits in scales_h */
    bxs.d = 0x3400;
    bxs.scales_h = 0;
    memset(bxs.scales_l, 0, 4);
    for (j = 0; j < 8; j++) {
        ls[j] = (j * 29 + 5) % 64;
        bxs.scales_l[j / 2] |= (uint8_t) ((ls[j] & 15) << (4 * (j % 2)));
        bxs.scales_h |= (uint16_t) ((ls[j] >> 4) << (2 * j));
    }
    for (j = 0; j < 128; j++) {
        bxs.qs[j] = (uint8_t) (j * 37 + 1);
    }
    st_type_traits_get(ST_TYPE_IQ4_XS)->to_float(&bxs, y, ST_QK_K);
    bad = 0;
    for (v = 0; v < ST_QK_K; v++) {
        int sb = v / 32, r = v % 32;
        uint8_t byte = bxs.qs[16 * sb + r % 16];

        q = r < 16 ? byte & 15 : byte >> 4;
        bad += (double) y[v] != 0.25 * (ls[sb] - 32) * iq4_grid[q];
    }
    ok(bad == 0, "iq4_xs hand-built block: 6-bit sub-block scales - 32, "
       "grid values");
}


/*
 * With unit scales every float step of a dot is exact, so vec_dot must
 * equal the integer dot of the dequantized weights and the activation
 * quants exactly: random weight bytes with d = 1 (m, dmin = 1 or -1),
 * activations q8 in -60..60 with d = 1 (and consistent s, bsums).
 */
static void
test_hand_dots(void)
{
    static const st_type types[] = {
        ST_TYPE_Q4_1, ST_TYPE_Q5_0, ST_TYPE_Q5_1, ST_TYPE_IQ4_NL,
        ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_IQ4_XS
    };
    size_t ti;

    for (ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        st_type               t = types[ti];
        const st_type_traits *tr = st_type_traits_get(t);
        int64_t               n = 1024, nb = n / tr->block_size, i, b;
        size_t                wb = st_row_bytes(t, n);
        uint8_t               w[4096], a[4096];
        float                 xd[1024], s;
        int8_t                q8[1024];
        double                want = 0.0;
        int                   bad = 0, rep, g, k, sum;

        for (rep = 0; rep < 20; rep++) {
            rng_seed((uint64_t) (500 + 31 * t + rep));
            for (i = 0; i < (int64_t) wb; i++) {
                w[i] = (uint8_t) rng_u32();
            }
            for (i = 0; i < n; i++) {
                q8[i] = (int8_t) ((int) (rng_u32() % 121) - 60);
            }
            /* unit scales, written at each type's offsets */
            for (b = 0; b < nb; b++) {
                uint8_t *blk = w + b * tr->type_size;
                st_f16   one = 0x3c00, pm = rep % 2 ? 0xbc00 : 0x3c00;

                switch (t) {
                case ST_TYPE_Q4_1: case ST_TYPE_Q5_1:
                    memcpy(blk, &one, 2);
                    memcpy(blk + 2, &pm, 2);
                    break;
                case ST_TYPE_Q5_0: case ST_TYPE_IQ4_NL:
                    memcpy(blk, &one, 2);
                    break;
                case ST_TYPE_Q2_K:
                    memcpy(blk + 80, &one, 2);
                    memcpy(blk + 82, &pm, 2);
                    break;
                case ST_TYPE_Q3_K:
                    memcpy(blk + 108, &one, 2);
                    break;
                case ST_TYPE_IQ4_XS:
                    memcpy(blk, &one, 2);
                    break;
                default:
                    break;
                }
            }
            /* activations in the vec_dot type, d = 1 */
            if (tr->vec_dot_type == ST_TYPE_Q8_K) {
                st_block_q8_K *y = (st_block_q8_K *) (void *) a;

                for (b = 0; b < n / ST_QK_K; b++) {
                    y[b].d = 1.0f;
                    memcpy(y[b].qs, q8 + b * ST_QK_K, ST_QK_K);
                    for (g = 0; g < 16; g++) {
                        sum = 0;
                        for (k = 0; k < 16; k++) {
                            sum += y[b].qs[16 * g + k];
                        }
                        y[b].bsums[g] = (int16_t) sum;
                    }
                }
            } else if (tr->vec_dot_type == ST_TYPE_Q8_1) {
                st_block_q8_1 *y = (st_block_q8_1 *) (void *) a;

                for (b = 0; b < n / 32; b++) {
                    y[b].d = 0x3c00;
                    memcpy(y[b].qs, q8 + b * 32, 32);
                    sum = 0;
                    for (k = 0; k < 32; k++) {
                        sum += y[b].qs[k];
                    }
                    y[b].s = st_f32_to_f16((float) sum);   /* |sum| < 2048 */
                }
            } else {
                st_block_q8_0 *y = (st_block_q8_0 *) (void *) a;

                for (b = 0; b < n / 32; b++) {
                    y[b].d = 0x3c00;
                    memcpy(y[b].qs, q8 + b * 32, 32);
                }
            }
            tr->to_float(w, xd, n);
            want = 0.0;
            for (i = 0; i < n; i++) {
                want += (double) xd[i] * q8[i];
            }
            tr->vec_dot(n, &s, w, a);
            if ((double) s != want) {
                if (bad < 2) {
                    diag("%s rep %d: vec_dot %.9g, exact %.9g", tr->name, rep,
                         (double) s, want);
                }
                bad++;
            }
        }
        ok(bad == 0, "%s x %s: unit scales, random bytes: vec_dot equals "
           "the exact integer dot of the dequantized rows (20 rows)",
           tr->name, st_type_traits_get(tr->vec_dot_type)->name);
    }
}


/*
 * ../shared/models/synthetic-2: the same random llama3 model quantized by
 * llama-quantize to each type. Its weights, dequantized here, must agree
 * with the Q5_K_M file's (Q5_K) within the two quantization errors (a
 * misread bit layout gives errors of the size of the weights), and
 * vec_dot must match the double dot on real rows.
 */
static void
test_synthetic2(void)
{
    static const struct {
        const char *file;
        const char *tensor;
        uint32_t    type;
        double      max_rel;
    } cases[] = {
        { "Q4_1", "blk.0.ffn_gate.weight", ST_TYPE_Q4_1, 0.12 },
        { "Q5_0", "blk.0.ffn_gate.weight", ST_TYPE_Q5_0, 0.08 },
        { "Q5_1", "blk.0.ffn_gate.weight", ST_TYPE_Q5_1, 0.08 },
        { "IQ4_NL", "blk.0.ffn_gate.weight", ST_TYPE_IQ4_NL, 0.12 },
        { "IQ4_XS", "blk.0.ffn_gate.weight", ST_TYPE_IQ4_XS, 0.12 },
        { "Q2_K", "blk.0.ffn_gate.weight", ST_TYPE_Q2_K, 0.45 },
        { "Q2_K", "blk.0.ffn_down.weight", ST_TYPE_Q3_K, 0.3 },
        { "Q3_K_M", "blk.0.ffn_gate.weight", ST_TYPE_Q3_K, 0.3 },
        { "IQ4_XS", "token_embd.weight", ST_TYPE_IQ4_XS, 0.12 },
    };
    char        pr[1024], pq[1024];
    mini_gguf   gr, gq;
    mini_tensor tr5, tq;
    size_t      i;
    int64_t     n, rows, r, k;
    float      *a, *b;
    double      num, den, worst;
    int         bad;

    snprintf(pr, sizeof(pr), "%s/models/synthetic-2/synth-llama3-Q5_K_M.gguf",
             tap_shared_dir());
    if (access(pr, R_OK) != 0 || mg_open(&gr, pr) != 0) {
        skip("%s not present", pr);
        return;
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(pq, sizeof(pq), "%s/models/synthetic-2/synth-llama3-%s.gguf",
                 tap_shared_dir(), cases[i].file);
        if (mg_open(&gq, pq) != 0) {
            skip("%s not present", pq);
            continue;
        }
        if (mg_find(&gq, cases[i].tensor, &tq) != 0
            || mg_find(&gr, cases[i].tensor, &tr5) != 0
            || tq.type != cases[i].type || tr5.type != ST_TYPE_Q5_K
            || tq.ne[0] != tr5.ne[0] || tq.ne[1] != tr5.ne[1])
        {
            ok(0, "synthetic-2 %s %s: found as type %u", cases[i].file,
               cases[i].tensor, cases[i].type);
            mg_close(&gq);
            continue;
        }
        n = (int64_t) tq.ne[0];
        rows = (int64_t) tq.ne[1];
        a = malloc((size_t) n * sizeof(float));
        b = malloc((size_t) n * sizeof(float));
        if (a == NULL || b == NULL) {
            ok(0, "alloc");
            free(a); free(b);
            mg_close(&gq);
            continue;
        }
        num = den = 0.0;
        for (r = 0; r < rows; r++) {
            st_type_traits_get(tq.type)->to_float(
                tq.data + r * st_row_bytes(tq.type, tq.ne[0]), a, n);
            st_type_traits_get(ST_TYPE_Q5_K)->to_float(
                tr5.data + r * st_row_bytes(ST_TYPE_Q5_K, tr5.ne[0]), b, n);
            for (k = 0; k < n; k++) {
                num += fabs((double) a[k] - b[k]);
                den += fabs((double) b[k]);
            }
        }
        free(a);
        free(b);
        ok(den > 0 && num / den < cases[i].max_rel,
           "synthetic-2 %s %s (%s, %lld x %lld): dequantized = the Q5_K "
           "file's within quantization error (rel %.4f < %.2f)",
           cases[i].file, cases[i].tensor, st_type_traits_get(tq.type)->name,
           (long long) n, (long long) rows, num / den, cases[i].max_rel);
        bad = dot_check_rows(&tq, rows < 64 ? rows : 64, &worst);
        ok(bad == 0, "synthetic-2 %s %s: vec_dot on 64 real rows (worst "
           "%.2g)", cases[i].file, cases[i].tensor, worst);
        mg_close(&gq);
    }
    mg_close(&gr);
}


int
main(void)
{
    test_traits();
    test_f16();
    test_bf16();
    test_q8_0_from_float();
    test_q8_K_from_float();
    test_q8_1_from_float();
    test_hand_blocks();
    test_hand_blocks_new();
    test_hand_dots();
    test_all_types();
    test_nonfinite();
    test_tinystories_q8_0();
    test_synthetic();
    test_synthetic2();
    return done_testing();
}
