/*
 * st_matmul and the thread team.
 *
 *   - every weight type vs a naive double-precision reference (weights
 *     dequantized, activations converted by the scalar from_float and
 *     dequantized): |y - ref| <= 1e-5 * sum|products| per element;
 *   - batch invariance: row r of an n-row call is bit-identical to the
 *     same row computed alone, with 1 and 2 threads, and 1 vs 2 threads;
 *   - shapes: odd n_out (67), n_rows 1, 3, 17, 40 (> one row block),
 *     a 1 x 3001 "logits" shape, a wide 70 x 67 "prefill" shape;
 *   - GEMM tile kernels (kernels.h) at every level this CPU has, every
 *     type, many n_in (odd block counts, float tails): each element
 *     bit-identical to that level's vec_dot; Q8_0 weights also with raw
 *     random bytes (-128 included);
 *   - argument errors; the team running 10000 tiny regions.
 */
#include "tap.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/kernels.h"
#include "base/threadpool.h"
#include "quantize.h"

#include <math.h>
#include <stdatomic.h>
#include <time.h>

#define ST_MM_TOL 1e-5

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint32_t
rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 16);
}

static float
rng_f(void)
{
    return (float) ((double) rng_u32() / 2147483648.0 - 1.0);
}


/* A weight matrix: random floats through the reference weight quantizer. */
static int
make_weight(st_weight *w, st_type t, int64_t n_in, int64_t n_out)
{
    float   *row;
    uint8_t *data;
    int64_t  o, i;

    w->type = t;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = (size_t) st_row_bytes(t, (uint64_t) n_in);
    data = malloc(w->row_bytes * (size_t) n_out);
    row = malloc((size_t) n_in * sizeof(float));
    if (data == NULL || row == NULL || w->row_bytes == 0) {
        free(data);
        free(row);
        return -1;
    }
    for (o = 0; o < n_out; o++) {
        for (i = 0; i < n_in; i++) {
            row[i] = rng_f() * 0.5f;
        }
        st_quantize_row(t, row, data + (size_t) o * w->row_bytes, n_in);
    }
    free(row);
    w->data = data;
    return 0;
}


/* y_ref (n_rows, n_out) in double, and the magnitude sum |w*x|. */
static int
reference(const st_weight *w, const float *x, int64_t n_rows, double *yref,
    double *mag)
{
    const st_type_traits *wt = st_type_traits_get(w->type);
    const st_type_traits *vt = st_type_traits_get(wt->vec_dot_type);
    size_t                qb = st_row_bytes(wt->vec_dot_type,
                                            (uint64_t) w->n_in);
    float                *wd = malloc((size_t) w->n_in * sizeof(float));
    float                *xd = malloc((size_t) w->n_in * sizeof(float));
    void                 *xq = malloc(qb);
    int64_t               r, o, i;

    if (wd == NULL || xd == NULL || xq == NULL) {
        free(wd); free(xd); free(xq);
        return -1;
    }
    for (r = 0; r < n_rows; r++) {
        vt->from_float(x + r * w->n_in, xq, w->n_in);
        vt->to_float(xq, xd, w->n_in);
        for (o = 0; o < w->n_out; o++) {
            double s = 0, m = 0;

            const uint8_t *wrow = (const uint8_t *) w->data
                                  + (size_t) o * w->row_bytes;

            if (wt->vec_dot_type == ST_TYPE_Q8_1) {
                /* q4_1/q5_1: the min term goes through the activation's
                 * stored s = f16(d * sum q), as the format defines it:
                 * sum (w_i - m) * x_i + sum_b m_b * s_b */
                const st_block_q8_1 *xb = xq;
                int64_t              b, nb = w->n_in / 32;

                for (b = 0; b < nb; b++) {
                    st_f16 mh;
                    double mb, t;
                    int    j;

                    memcpy(&mh, wrow + (size_t) b * wt->type_size + 2, 2);
                    mb = st_f16_to_f32(mh);
                    wt->to_float(wrow + (size_t) b * wt->type_size, wd, 32);
                    for (j = 0; j < 32; j++) {
                        t = ((double) wd[j] - mb) * xd[32 * b + j];
                        s += t;
                        m += fabs(t);
                    }
                    t = mb * st_f16_to_f32(xb[b].s);
                    s += t;
                    m += fabs(t);
                }
            } else {
                wt->to_float(wrow, wd, w->n_in);
                for (i = 0; i < w->n_in; i++) {
                    s += (double) wd[i] * xd[i];
                    m += fabs((double) wd[i] * xd[i]);
                }
            }
            yref[r * w->n_out + o] = s;
            mag[r * w->n_out + o] = m;
        }
    }
    free(wd); free(xd); free(xq);
    return 0;
}


static void
test_type(st_threadpool *tp1, st_threadpool *tp2, st_type t, int64_t n_in,
    int64_t n_out)
{
    static const int64_t  rows_list[] = { 1, 3, 17, 40 };
    const st_type_traits *tr = st_type_traits_get(t);
    st_matmul_scratch     sc = { NULL, 0 };
    st_weight             w;
    int64_t               max_rows = 40, k, r, i;
    float                *x, *y1, *y2, *yr;
    double               *yref, *mag, worst = 0;
    int                   acc_bad = 0, inv_bad = 0, thr_bad = 0, st_bad = 0;

    if (make_weight(&w, t, n_in, n_out) != 0) {
        ok(0, "%s: weight alloc", tr->name);
        return;
    }
    x = malloc((size_t) (max_rows * n_in) * sizeof(float));
    y1 = malloc((size_t) (max_rows * n_out) * sizeof(float));
    y2 = malloc((size_t) (max_rows * n_out) * sizeof(float));
    yr = malloc((size_t) n_out * sizeof(float));
    yref = malloc((size_t) (max_rows * n_out) * sizeof(double));
    mag = malloc((size_t) (max_rows * n_out) * sizeof(double));
    if (!x || !y1 || !y2 || !yr || !yref || !mag) {
        ok(0, "%s: alloc", tr->name);
        goto done;
    }
    for (i = 0; i < max_rows * n_in; i++) {
        x[i] = rng_f() * (i % 7 == 0 ? 4.0f : 1.0f);
    }
    if (reference(&w, x, max_rows, yref, mag) != 0) {
        ok(0, "%s: reference alloc", tr->name);
        goto done;
    }

    for (k = 0; k < (int64_t) (sizeof(rows_list) / sizeof(rows_list[0]));
         k++)
    {
        int64_t n_rows = rows_list[k];

        st_bad |= st_matmul(tp1, &sc, &w, x, n_rows, y1) != ST_OK;
        st_bad |= st_matmul(tp2, &sc, &w, x, n_rows, y2) != ST_OK;
        if (memcmp(y1, y2, (size_t) (n_rows * n_out) * sizeof(float)) != 0) {
            thr_bad = 1;
        }
        for (i = 0; i < n_rows * n_out; i++) {
            double err = fabs((double) y1[i] - yref[i]);

            if (mag[i] > 0 && err / mag[i] > worst) {
                worst = err / mag[i];
            }
            if (!(err <= ST_MM_TOL * mag[i])) {
                if (!acc_bad) {
                    diag("%s rows %lld elem %lld: %.9g vs %.9g (mag %.3g)",
                         tr->name, (long long) n_rows, (long long) i,
                         y1[i], yref[i], mag[i]);
                }
                acc_bad = 1;
            }
        }
        /* each row alone, with both teams */
        for (r = 0; r < n_rows; r++) {
            st_bad |= st_matmul(tp1, &sc, &w, x + r * n_in, 1, yr) != ST_OK;
            inv_bad |= memcmp(yr, y1 + r * n_out,
                              (size_t) n_out * sizeof(float)) != 0;
            st_bad |= st_matmul(tp2, &sc, &w, x + r * n_in, 1, yr) != ST_OK;
            inv_bad |= memcmp(yr, y1 + r * n_out,
                              (size_t) n_out * sizeof(float)) != 0;
        }
    }
    ok(!st_bad, "%s %lldx%lld: st_matmul returns ST_OK", tr->name,
       (long long) n_out, (long long) n_in);
    ok(!acc_bad, "%s: rows 1/3/17/40 within %.0e*sum|w*x| of the double "
       "reference (worst %.2e)", tr->name, ST_MM_TOL, worst);
    ok(!inv_bad, "%s: every row of a 3/17/40-row call bit-identical to the "
       "row alone (1 and 2 threads)", tr->name);
    ok(!thr_bad, "%s: 1 thread and 2 threads bit-identical", tr->name);

done:
    st_matmul_scratch_free(&sc);
    free((void *) w.data);
    free(x); free(y1); free(y2); free(yr); free(yref); free(mag);
}


/* Shapes: 1 x many outputs (logits) and many rows x few outputs. */
static void
test_shapes(st_threadpool *tp2)
{
    st_matmul_scratch sc = { NULL, 0 };
    st_weight         w;
    float            *x, *y, *yr;
    int64_t           n_in = 64, r, bad = 0;

    if (make_weight(&w, ST_TYPE_Q8_0, n_in, 3001) != 0) {
        ok(0, "alloc");
        return;
    }
    x = malloc(70 * (size_t) n_in * sizeof(float));
    y = malloc(70 * 3001 * sizeof(float));
    yr = malloc(3001 * sizeof(float));
    if (!x || !y || !yr) {
        ok(0, "alloc");
        goto done;
    }
    for (r = 0; r < 70 * n_in; r++) {
        x[r] = rng_f();
    }
    ok(st_matmul(tp2, &sc, &w, x, 70, y) == ST_OK
       && st_matmul(NULL, &sc, &w, x + 69 * n_in, 1, yr) == ST_OK
       && memcmp(yr, y + 69 * 3001, 3001 * sizeof(float)) == 0,
       "q8_0 70 x 3001 on 2 threads: last row equals 1 x 3001 with no team");

    w.n_out = 3;                  /* 70 rows x 3 outputs */
    ok(st_matmul(tp2, &sc, &w, x, 70, y) == ST_OK, "70 x 3 call");
    for (r = 0; r < 70; r++) {
        st_matmul(NULL, &sc, &w, x + r * n_in, 1, yr);
        bad |= memcmp(yr, y + r * 3, 3 * sizeof(float)) != 0;
    }
    ok(!bad, "70 rows x 3 outputs: rows bit-identical to rows alone");

    /* argument checks */
    w.n_out = 3001;
    w.row_bytes += 1;
    ok(st_matmul(tp2, &sc, &w, x, 1, y) == ST_ERR_INVALID,
       "row_bytes mismatch -> ST_ERR_INVALID");
    w.row_bytes -= 1;
    w.n_in = 33;
    ok(st_matmul(tp2, &sc, &w, x, 1, y) == ST_ERR_INVALID,
       "n_in not a multiple of the block -> ST_ERR_INVALID");
    w.n_in = n_in;
    w.type = ST_TYPE_IQ2_XXS;
    ok(st_matmul(tp2, &sc, &w, x, 1, y) == ST_ERR_UNSUPPORTED,
       "iq2_xxs weights (no kernels) -> ST_ERR_UNSUPPORTED");
    w.type = ST_TYPE_Q8_0;
    ok(st_matmul(tp2, &sc, &w, x, 0, y) == ST_OK, "0 rows is a no-op");

done:
    st_matmul_scratch_free(&sc);
    free((void *) w.data);
    free(x); free(y); free(yr);
}


typedef struct {
    atomic_long sum;
    long        per_thread[8];
} region_ctx;

static void
region_fn(void *vctx, int ith, int nth)
{
    region_ctx *c = vctx;

    atomic_fetch_add(&c->sum, ith + 1);
    if (ith < 8 && nth <= 8) {
        c->per_thread[ith]++;      /* each slot written by one thread */
    }
}


static void
test_threadpool(void)
{
    st_threadpool *tp = NULL;
    st_error       err;
    region_ctx     c;
    int            i, n = 10000, nth;

    ok(st_threadpool_create(&tp, 3, &err) == ST_OK && tp != NULL,
       "3-thread team created");
    if (tp == NULL) {
        return;
    }
    nth = st_threadpool_size(tp);
    memset(&c, 0, sizeof(c));
    atomic_init(&c.sum, 0);
    for (i = 0; i < n; i++) {
        st_threadpool_run(tp, region_fn, &c);
    }
    ok(atomic_load(&c.sum) == (long) n * nth * (nth + 1) / 2
       && c.per_thread[0] == n && c.per_thread[1] == n
       && c.per_thread[2] == n,
       "10000 regions: every thread ran every region once (sum %ld)",
       atomic_load(&c.sum));

    /* regions after the workers went to sleep: slots may be run by the
     * caller while a worker is still waking up */
    memset(&c, 0, sizeof(c));
    atomic_init(&c.sum, 0);
    for (i = 0; i < 40; i++) {
        struct timespec pause = { 0, 500000 };

        nanosleep(&pause, NULL);
        st_threadpool_run(tp, region_fn, &c);
    }
    ok(atomic_load(&c.sum) == 40L * nth * (nth + 1) / 2
       && c.per_thread[0] == 40 && c.per_thread[1] == 40
       && c.per_thread[2] == 40,
       "40 regions after sleeping workers: every ith ran once each");
    st_threadpool_free(tp);

    memset(&c, 0, sizeof(c));
    st_threadpool_run(NULL, region_fn, &c);
    ok(c.per_thread[0] == 1 && atomic_load(&c.sum) == 1,
       "NULL team runs fn(ctx, 0, 1) on the caller");

    ok(st_threadpool_create(&tp, -1, &err) == ST_ERR_INVALID && tp == NULL,
       "negative thread count rejected: %s", err.msg);
    i = st_threadpool_create(&tp, 0, &err) == ST_OK;
    ok(i && st_threadpool_size(tp) >= 1, "0 threads = online cores (%d)",
       st_threadpool_size(tp));
    st_threadpool_free(tp);
    st_threadpool_free(NULL);
}


/* One type at one level: tiles (gemv: the decode kernel) at a few
 * offsets vs vec_dot per element. */
static int
gemm_check(st_cpu_level level, st_type t, int64_t n_in, int raw_bytes,
    int gemv, int64_t ncol)
{
    const st_type_traits *tr = st_type_traits_get(t);
    st_gemm_kernel        gk = gemv ? st_cpu_gemv(level, t)
                                    : st_cpu_gemm(level, t);
    st_vec_dot_fn         dot = st_cpu_vec_dot(level, t);
    st_from_float_fn      conv = st_cpu_from_float(level, tr->vec_dot_type);
    size_t                wrb = (size_t) st_row_bytes(t, (uint64_t) n_in);
    size_t                arb = (size_t) st_row_bytes(tr->vec_dot_type,
                                                      (uint64_t) n_in);
    int64_t               nw, na, o, r, i;
    uint8_t              *wq, *aq;
    float                *row, *out, *as, ref;
    int32_t              *sums;
    int                   bad = 0;
    st_gemm_args          g;

    if (gk.fn == NULL || dot == NULL || conv == NULL) {
        return 0;                /* nothing to compare at this level */
    }
    if (ncol == 0) {
        ncol = gk.na;
    }
    nw = gk.nw + 1;              /* one spare row: tiles at offset 0 and 1 */
    na = ncol + 1;
    wq = malloc(wrb * (size_t) nw);
    aq = malloc(arb * (size_t) na);
    row = malloc(sizeof(float) * (size_t) n_in);
    out = malloc(sizeof(float) * (size_t) (na * nw));
    as = malloc(sizeof(float) * (size_t) (na * (n_in / 32 + 1)));
    sums = malloc(sizeof(int32_t) * (size_t) (na * (n_in / 32 + 1) * 8));
    if (wq == NULL || aq == NULL || row == NULL || out == NULL || as == NULL
        || sums == NULL)
    {
        free(wq); free(aq); free(row); free(out); free(as); free(sums);
        return 1;
    }
    for (o = 0; o < nw; o++) {
        for (i = 0; i < n_in; i++) {
            /* mixed magnitudes so float sums really round */
            row[i] = rng_f() * (float) (1 << (rng_u32() % 12));
        }
        st_quantize_row(t, row, wq + (size_t) o * wrb, n_in);
        if (raw_bytes && t == ST_TYPE_Q8_0) {
            st_block_q8_0 *b = (st_block_q8_0 *) (wq + (size_t) o * wrb);

            for (i = 0; i < n_in / ST_QK8_0; i++) {
                int j;

                for (j = 0; j < ST_QK8_0; j++) {
                    b[i].qs[j] = (int8_t) (rng_u32() & 0xff);
                }
                b[i].qs[i % ST_QK8_0] = -128;
            }
        }
    }
    for (r = 0; r < na; r++) {
        for (i = 0; i < n_in; i++) {
            row[i] = rng_f() * (float) (1 << (rng_u32() % 12));
        }
        if (t == ST_TYPE_F32) {
            memcpy(aq + (size_t) r * arb, row, arb);
        } else {
            conv(row, aq + (size_t) r * arb, n_in);
        }
        if (gk.a_scales) {
            const st_block_q8_0 *b = (const st_block_q8_0 *)
                                     (aq + (size_t) r * arb);

            for (i = 0; i < n_in / 32; i++) {
                as[r * (n_in / 32) + i] = st_f16_to_f32(b[i].d);
            }
        }
        if (gk.a_scales & ST_GEMM_A_SUMS) {
            st_gemm_a_sums8(aq + (size_t) r * arb, n_in,
                            sums + r * (n_in / 32) * 8);
        } else if (gk.a_scales & ST_GEMM_A_BSUMS) {
            st_gemm_a_bsums(aq + (size_t) r * arb, n_in,
                            sums + r * (n_in / 32) * 8);
        }
    }
    for (i = 0; i < 4; i++) {
        int64_t ow = i & 1, ra = i >> 1;

        memset(out, 0, sizeof(float) * (size_t) (na * nw));
        g.n = n_in;
        g.out = out;
        g.out_stride = (size_t) nw;
        g.w = wq + (size_t) ow * wrb;
        g.w_stride = wrb;
        g.a = aq + (size_t) ra * arb;
        g.a_stride = arb;
        g.a_scales = as + ra * (n_in / 32);
        g.as_stride = (size_t) (n_in / 32);
        g.a_sums = sums + ra * (n_in / 32) * 8;
        g.sums_stride = (size_t) (n_in / 32) * 8;
        g.n_a = ncol;
        gk.fn(&g);
        for (o = 0; o < gk.nw; o++) {
            for (r = 0; r < ncol; r++) {
                dot(n_in, &ref, wq + (size_t) (o + ow) * wrb,
                    aq + (size_t) (r + ra) * arb);
                if (memcmp(&ref, &out[r * nw + o], sizeof(float)) != 0) {
                    if (bad++ < 3) {
                        diag("%s %s n_in %lld: w %lld a %lld: gemm %.9g "
                             "vec_dot %.9g", st_cpu_level_name(level),
                             tr->name, (long long) n_in,
                             (long long) (o + ow), (long long) (r + ra),
                             out[r * nw + o], ref);
                    }
                }
            }
        }
    }
    free(wq); free(aq); free(row); free(out); free(as); free(sums);
    return bad;
}


static void
test_gemm_kernels(void)
{
    static const st_type  types[] = {
        ST_TYPE_F32, ST_TYPE_F16, ST_TYPE_BF16, ST_TYPE_Q8_0, ST_TYPE_Q4_0,
        ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q5_K, ST_TYPE_Q4_1, ST_TYPE_Q5_0,
        ST_TYPE_Q5_1, ST_TYPE_IQ4_NL, ST_TYPE_Q2_K, ST_TYPE_Q3_K,
        ST_TYPE_IQ4_XS
    };
    static const int64_t  n_float[] = { 1, 7, 15, 16, 17, 31, 32, 33, 63,
                                        64, 65, 100, 127, 128, 129, 200,
                                        256, 896 };
    static const int64_t  n_q[] = { 32, 64, 96, 128, 160, 192, 224, 288,
                                    512, 896, 4864 };
    static const int64_t  n_k[] = { 256, 512, 768, 1280, 4864 };
    st_cpu_level          level;
    size_t                k, j, n_n;
    const int64_t        *ns;

    for (level = ST_CPU_SCALAR; level < ST_CPU_LEVEL_COUNT; level++) {
        if (!st_cpu_level_supported(level)) {
            skip("gemm kernels: CPU lacks %s", st_cpu_level_name(level));
            continue;
        }
        for (k = 0; k < 2 * sizeof(types) / sizeof(types[0]); k++) {
            int                   gemv = k % 2;
            st_type               t = types[k / 2];
            const st_type_traits *tr = st_type_traits_get(t);
            st_gemm_kernel        gk = gemv ? st_cpu_gemv(level, t)
                                            : st_cpu_gemm(level, t);
            int                   bad = 0;

            if (tr == NULL || !tr->supported || gk.fn == NULL) {
                continue;
            }
            if (tr->block_size == 1) {
                ns = n_float;
                n_n = sizeof(n_float) / sizeof(n_float[0]);
            } else if (tr->block_size == 32) {
                ns = n_q;
                n_n = sizeof(n_q) / sizeof(n_q[0]);
            } else {
                ns = n_k;
                n_n = sizeof(n_k) / sizeof(n_k[0]);
            }
            for (j = 0; j < n_n; j++) {
                bad += gemm_check(level, t, ns[j], 0, gemv, 0);
                bad += gemm_check(level, t, ns[j], 1, gemv, 0);
                if (gk.na == 1 && !gemv) {
                    /* a tile of any number of activation rows: more
                     * than one pass of its column groups (8 on AVX-512)
                     * and a rest */
                    bad += gemm_check(level, t, ns[j], 0, gemv, 11);
                    bad += gemm_check(level, t, ns[j], 0, gemv, 2);
                    bad += gemm_check(level, t, ns[j], 0, gemv, 12);
                    bad += gemm_check(level, t, ns[j], 0, gemv, 37);
                }
            }
            ok(bad == 0, "%s %s: %dx%d %s bit-identical to vec_dot "
               "(%zu sizes)", st_cpu_level_name(level), tr->name, gk.nw,
               gk.na, gemv ? "decode kernel" : "GEMM tiles", n_n);
        }
    }
}


int
main(void)
{
    static const st_type types[] = {
        ST_TYPE_F32, ST_TYPE_F16, ST_TYPE_BF16, ST_TYPE_Q8_0, ST_TYPE_Q4_0,
        ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q5_K, ST_TYPE_Q4_1, ST_TYPE_Q5_0,
        ST_TYPE_Q5_1, ST_TYPE_IQ4_NL, ST_TYPE_Q2_K, ST_TYPE_Q3_K,
        ST_TYPE_IQ4_XS
    };
    st_threadpool *tp1 = NULL, *tp2 = NULL;
    st_error       err;
    size_t         k;

    (void) tap_root_dir;
    (void) tap_shared_dir;
    diag("kernels: %s", st_cpu_kernels_name());

    test_threadpool();

    if (st_threadpool_create(&tp1, 1, &err) != ST_OK
        || st_threadpool_create(&tp2, 2, &err) != ST_OK)
    {
        ok(0, "teams: %s", err.msg);
        return done_testing();
    }
    for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        const st_type_traits *tr = st_type_traits_get(types[k]);

        if (tr == NULL || !tr->supported) {
            skip("type %u not supported", (unsigned) types[k]);
            continue;
        }
        test_type(tp1, tp2, types[k], 512, 67);
    }
    test_type(tp1, tp2, ST_TYPE_F32, 37, 67);   /* odd n_in, tails */
    test_type(tp1, tp2, ST_TYPE_F16, 37, 67);
    test_shapes(tp2);
    test_gemm_kernels();

    st_threadpool_free(tp1);
    st_threadpool_free(tp2);
    return done_testing();
}
