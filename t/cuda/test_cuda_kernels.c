/*
 * Every CUDA kernel against a CPU reference on random inputs with odd
 * sizes. Through the shim the kernels run the CPU's arithmetic, so most
 * comparisons are exact; on a GPU (test-gpu) expf/cosf/sinf may differ by
 * an ulp, hence the small tolerances where those appear.
 */
#include "cuda_test.h"
#include "quant/quant.h"
#include "backend/cpu/vec_f16.h"
#include "quantize.h"

#if ST_CUDA_TEST_GPU
#define CT_TRANSCENDENTAL_TOL 1e-5     /* device expf/sinf/cosf vs glibc */
#else
#define CT_TRANSCENDENTAL_TOL 0.0
#endif


/* ---- matvec + activation quantizers ------------------------------------ */

/*
 * Weight rows of the types tools/lib has no quantizer for (Q4_1, Q5_0,
 * Q5_1, Q2_K, Q3_K, IQ4_NL, IQ4_XS): random bytes, which reach every
 * quant, high bit, scale and code-book entry, with the f16 scale fields
 * (byte offsets in the block) set to finite values of either sign.
 * Returns 0 for other types.
 */
static int
ct_random_blocks(st_type type, uint8_t *w, size_t bytes)
{
    int      f16_at[2] = { -1, -1 }, k;
    size_t   i, b, bb;

    switch (type) {
    case ST_TYPE_Q4_1: case ST_TYPE_Q5_1:
        f16_at[0] = 0;              /* d */
        f16_at[1] = 2;              /* m */
        break;
    case ST_TYPE_Q5_0: case ST_TYPE_IQ4_NL: case ST_TYPE_IQ4_XS:
        f16_at[0] = 0;              /* d */
        break;
    case ST_TYPE_Q2_K:
        f16_at[0] = 80;             /* d */
        f16_at[1] = 82;             /* dmin */
        break;
    case ST_TYPE_Q3_K:
        f16_at[0] = 108;            /* d */
        break;
    default:
        return 0;
    }
    bb = st_type_traits_get(type)->type_size;
    for (i = 0; i < bytes; i++) {
        w[i] = (uint8_t) ct_rand_u32();
    }
    for (b = 0; b < bytes / bb; b++) {
        for (k = 0; k < 2; k++) {
            if (f16_at[k] >= 0) {
                st_f16 h = st_f32_to_f16(ct_randf(0.05f));
                memcpy(w + b * bb + f16_at[k], &h, sizeof(h));
            }
        }
    }
    return 1;
}


static void
test_matvec_type(st_type type, uint32_t n_in, uint32_t n_out, uint32_t n)
{
    const st_type_traits *tr = st_type_traits_get(type);
    const st_type_traits *vtr = st_type_traits_get(tr->vec_dot_type);
    size_t   wrow = st_row_bytes(type, n_in), arow;
    float   *wf = malloc(sizeof(float) * n_in * n_out);
    uint8_t *w = malloc(wrow * n_out);
    float   *x = malloc(sizeof(float) * n_in * n);
    float   *ref = malloc(sizeof(float) * n_out * n);
    float   *got = malloc(sizeof(float) * n_out * n);
    uint8_t *act, *act_got;
    void    *dw, *dx, *dact, *dy;
    uint32_t r, o;
    int      vdt = st_cuda_vec_dot_type((int) type), e;
    double   rel;

    if (tr->to_float == NULL || tr->vec_dot == NULL
        || vtr->from_float == NULL)
    {
        ok(0, "%s: the CPU has a scalar reference (to_float, vec_dot, "
           "%s from_float)", tr->name, vtr->name);
        free(wf);
        free(w);
        free(x);
        free(ref);
        free(got);
        return;
    }
    arow = st_cuda_row_bytes(vdt, n_in);
    ok(arow == st_row_bytes(tr->vec_dot_type, n_in)
       && (int) tr->vec_dot_type == vdt,
       "%s: activation type %s (%zu bytes a row) as the CPU's", tr->name,
       vtr->name, arow);
    act = malloc(arow * n);
    act_got = malloc(arow * n);
    ct_fill(wf, (size_t) n_in * n_out, 1.0f);
    ct_fill(x, (size_t) n_in * n, 2.0f);
    if (!ct_random_blocks(type, w, wrow * n_out)) {
        for (o = 0; o < n_out; o++) {
            st_quantize_row(type, wf + (size_t) o * n_in, w + o * wrow, n_in);
        }
    }
    for (r = 0; r < n; r++) {
        vtr->from_float(x + (size_t) r * n_in, act + r * arow, n_in);
        for (o = 0; o < n_out; o++) {
            tr->vec_dot(n_in, &ref[(size_t) r * n_out + o], w + o * wrow,
                        act + r * arow);
        }
    }

    dw = ct_dev(w, wrow * n_out);
    dx = ct_dev(x, sizeof(float) * n_in * n);
    dact = ct_dev(NULL, arow * n);
    dy = ct_dev(NULL, sizeof(float) * n_out * n);
    e = vdt == ST_CUDA_F32 ? 0 : st_cuda_quantize_act(dx, n, n_in, vdt, dact, NULL);
    if (vdt == ST_CUDA_F32) {
        st_cuda_upload(dact, x, arow * n);
    }
    e = e ? e : st_cuda_matvec(dw, (int) type, wrow, n_in, n_out, dact, n, dy, NULL);
    ok(e == 0, "%s: launches (%d)", tr->name, e);
    ct_get(act_got, dact, arow * n);
    ct_get(got, dy, sizeof(float) * n_out * n);
    if (vdt == ST_CUDA_Q8_0 || vdt == ST_CUDA_Q8_1 || vdt == ST_CUDA_Q8_K) {
        float *af = malloc(sizeof(float) * n_in * n);
        float *ag = malloc(sizeof(float) * n_in * n);
        void  *daf = ct_dev(NULL, sizeof(float) * n_in * n);
        int    e2 = st_cuda_dequant_f32(dact, vdt, arow, n_in, 0, n, daf, NULL);
        ct_get(ag, daf, sizeof(float) * n_in * n);
        for (r = 0; r < n; r++) {
            vtr->to_float(act + r * arow, af + (size_t) r * n_in, n_in);
        }
        ok(e2 == 0 && memcmp(af, ag, sizeof(float) * n_in * n) == 0,
           "%s: %s activations back to F32 equal the CPU's", tr->name,
           vtr->name);
        st_cuda_free(daf);
        free(af);
        free(ag);
    }
    ok(memcmp(act, act_got, arow * n) == 0,
       "%s: activations as %s equal the CPU's bytes (%u x %u)", tr->name,
       vtr->name, n, n_in);
    rel = ct_max_rel(got, ref, (size_t) n_out * n);
    if (type == ST_TYPE_F32 || type == ST_TYPE_F16 || type == ST_TYPE_BF16) {
        /* lane-strided sum vs the CPU's sequential one */
        ok(rel < 2e-6, "%s: matvec (%u x %u, %u rows) within 2e-6 rel: %.3g",
           tr->name, n_out, n_in, n, rel);
    } else {
        ok(rel == 0.0, "%s: matvec (%u x %u, %u rows) bit-equal to the CPU "
           "reference (max rel %.3g)", tr->name, n_out, n_in, n, rel);
    }

    /* batch rows share one weight pass; each row must be the bytes of
     * that row run alone (same per-element order) */
    if (n > 1) {
        float   *one = malloc(sizeof(float) * n_out);
        uint32_t diff = 0;

        for (r = 0; r < n && e == 0; r++) {
            e = st_cuda_matvec(dw, (int) type, wrow, n_in, n_out,
                               (const uint8_t *) dact + r * arow, 1, dy,
                               NULL);
            ct_get(one, dy, sizeof(float) * n_out);
            diff += memcmp(one, got + (size_t) r * n_out,
                           sizeof(float) * n_out) != 0;
        }
        ok(e == 0 && diff == 0, "%s: each of %u batch rows equals its "
           "single-row matvec (%u differ)", tr->name, n, diff);
        free(one);
    }

    /* dequantize to F32 (the cuBLAS prefill path) and embedding rows */
    {
        float    *h = malloc(sizeof(float) * n_in * 3);
        float    *row = malloc(sizeof(float) * n_in * 3);
        float    *emb = malloc(sizeof(float) * n_in * 3);
        int32_t   tok[3] = { (int32_t) n_out - 1, 0, (int32_t) n_out / 2 };
        void     *dh = ct_dev(NULL, sizeof(float) * n_in * 3);
        void     *dt = ct_dev(tok, sizeof(tok));
        void     *de = ct_dev(NULL, sizeof(float) * n_in * 3);
        int       bad_h = 0, bad_e = 0;
        uint32_t  i, k;

        e = st_cuda_dequant_f32(dw, (int) type, wrow, n_in, 1, 3, dh, NULL);
        e = e ? e : st_cuda_embed(dw, (int) type, wrow, dt, 3, n_in, de, NULL);
        ct_get(h, dh, sizeof(float) * n_in * 3);
        ct_get(emb, de, sizeof(float) * n_in * 3);
        for (k = 0; k < 3; k++) {
            tr->to_float(w + (1 + k) * wrow, row + (size_t) k * n_in, n_in);
            for (i = 0; i < n_in; i++) {
                bad_h += memcmp(&h[k * n_in + i], &row[k * n_in + i], 4) != 0;
            }
        }
        for (k = 0; k < 3; k++) {
            tr->to_float(w + (size_t) tok[k] * wrow, row, n_in);
            bad_e += memcmp(row, emb + (size_t) k * n_in,
                            sizeof(float) * n_in) != 0;
        }
        ok(e == 0 && bad_h == 0, "%s: dequant to F32 equals the CPU's "
           "to_float (%d differ)", tr->name, bad_h);
        ok(bad_e == 0, "%s: embedding rows equal the CPU's to_float",
           tr->name);
        st_cuda_free(dh);
        st_cuda_free(dt);
        st_cuda_free(de);
        free(h);
        free(row);
        free(emb);
    }

    st_cuda_free(dw);
    st_cuda_free(dx);
    st_cuda_free(dact);
    st_cuda_free(dy);
    free(wf);
    free(w);
    free(x);
    free(ref);
    free(got);
    free(act);
    free(act_got);
}


/* The matvec launcher refuses what it cannot index: types without
 * kernels, activation-only types, rows that are not whole blocks. */
static void
test_matvec_refuses(void)
{
    void *d = ct_dev(NULL, 4096);

    ok(st_cuda_matvec(d, ST_TYPE_IQ2_XXS, 66, 256, 1, d, 1, d, NULL) != 0,
       "matvec: iq2_xxs weights refused");
    ok(st_cuda_matvec(d, ST_CUDA_Q8_1, 36, 32, 1, d, 1, d, NULL) != 0
       && st_cuda_matvec(d, ST_CUDA_Q8_K, 292, 256, 1, d, 1, d, NULL) != 0,
       "matvec: activation types (q8_1, q8_K) refused as weights");
    ok(st_cuda_matvec(d, ST_CUDA_Q5_1, 24, 48, 1, d, 1, d, NULL) != 0
       && st_cuda_matvec(d, ST_CUDA_IQ4_XS, 136, 288, 1, d, 1, d, NULL) != 0,
       "matvec: rows of part blocks refused (q5_1 x 48, iq4_xs x 288)");
    ok(!st_cuda_type_supported(ST_TYPE_IQ2_XXS)
       && st_cuda_type_supported(ST_TYPE_IQ4_XS)
       && st_cuda_block_values(ST_TYPE_IQ2_XXS) == 0,
       "type table: iq2_xxs unknown, iq4_xs a weight type");
    st_cuda_free(d);
}


/* ---- rmsnorm --------------------------------------------------------- */

static void
test_rmsnorm(void)
{
    uint32_t E = 333, n = 5, r, i;
    float    x[5 * 333], w[333], ref[5 * 333], got[5 * 333];
    int32_t  rows[3] = { 4, 0, 2 };
    void    *dx, *dw, *dy, *dr;
    int      e;

    ct_fill(x, E * n, 3.0f);
    ct_fill(w, E, 1.5f);
    for (r = 0; r < n; r++) {
        double sum = 0.0;
        float  mean, scale;
        for (i = 0; i < E; i++) {
            sum += (double) (x[r * E + i] * x[r * E + i]);
        }
        mean = (float) (sum / E);
        scale = 1.0f / sqrtf(mean + 1e-5f);
        for (i = 0; i < E; i++) {
            ref[r * E + i] = (x[r * E + i] * scale) * w[i];
        }
    }
    dx = ct_dev(x, sizeof(x));
    dw = ct_dev(w, sizeof(w));
    dy = ct_dev(NULL, sizeof(got));
    dr = ct_dev(rows, sizeof(rows));
    e = st_cuda_rmsnorm(dx, NULL, dw, n, E, 1e-5f, dy, NULL);
    ct_get(got, dy, sizeof(got));
    ok(e == 0 && ct_max_rel(got, ref, E * n) <= 1e-7,
       "rmsnorm (5 x 333) matches the CPU (max rel %.3g)",
       ct_max_rel(got, ref, E * n));
    e = st_cuda_rmsnorm(dx, dr, dw, 3, E, 1e-5f, dy, NULL);
    ct_get(got, dy, sizeof(float) * 3 * E);
    ok(e == 0 && ct_max_rel(got, ref + 4 * E, E) <= 1e-7
       && ct_max_rel(got + E, ref, E) <= 1e-7
       && ct_max_rel(got + 2 * E, ref + 2 * E, E) <= 1e-7,
       "rmsnorm with a row map picks rows 4, 0, 2");
    st_cuda_free(dx);
    st_cuda_free(dw);
    st_cuda_free(dy);
    st_cuda_free(dr);
}


/* ---- element-wise ---------------------------------------------------- */

static void
test_elementwise(void)
{
    size_t n = 1001, i;
    float  a[1001], b[1001], ref[1001], got[1001], bias[13];
    void  *da, *db, *dbias;
    int    e;

    ct_fill(a, n, 6.0f);
    ct_fill(b, n, 2.0f);
    ct_fill(bias, 13, 1.0f);
    da = ct_dev(a, sizeof(a));
    db = ct_dev(b, sizeof(b));
    dbias = ct_dev(bias, sizeof(bias));

    for (i = 0; i < n; i++) {
        ref[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
    }
    e = st_cuda_swiglu(da, db, n, NULL);
    ct_get(got, da, sizeof(got));
    ok(e == 0 && ct_max_rel(got, ref, n) <= CT_TRANSCENDENTAL_TOL,
       "swiglu (1001) matches (max rel %.3g)", ct_max_rel(got, ref, n));

    st_cuda_upload(da, a, sizeof(a));
    for (i = 0; i < n; i++) {
        ref[i] = a[i] + b[i];
    }
    e = st_cuda_add(da, db, n, NULL);
    ct_get(got, da, sizeof(got));
    ok(e == 0 && memcmp(got, ref, sizeof(got)) == 0, "add (1001) exact");

    /* 77 rows of 13 */
    st_cuda_upload(da, a, sizeof(a));
    for (i = 0; i < 77 * 13; i++) {
        ref[i] = a[i] + bias[i % 13];
    }
    e = st_cuda_add_bias(da, dbias, 77, 13, NULL);
    ct_get(got, da, sizeof(float) * 77 * 13);
    ok(e == 0 && memcmp(got, ref, sizeof(float) * 77 * 13) == 0,
       "add_bias (77 x 13) exact");
    st_cuda_free(da);
    st_cuda_free(db);
    st_cuda_free(dbias);
}


/* ---- argmax ------------------------------------------------------------- */

static void
test_argmax(void)
{
    uint32_t V = 50257, n = 3;
    float   *l = malloc(sizeof(float) * V * n);
    int32_t  got[3];
    void    *dl, *di;
    int      e;

    ct_fill(l, (size_t) V * n, 10.0f);
    l[0 * V + 777] = 50.0f;
    l[0 * V + 40000] = 50.0f;       /* tie: lowest id wins */
    l[1 * V + V - 1] = 60.0f;
    l[2 * V + 0] = 70.0f;
    l[2 * V + 1] = 70.0f;
    dl = ct_dev(l, sizeof(float) * V * n);
    di = ct_dev(NULL, sizeof(got));
    e = st_cuda_argmax(dl, n, V, di, NULL);
    ct_get(got, di, sizeof(got));
    ok(e == 0 && got[0] == 777 && got[1] == (int32_t) V - 1 && got[2] == 0,
       "argmax with ties picks the lowest id (%d %d %d)", got[0], got[1],
       got[2]);
    st_cuda_free(dl);
    st_cuda_free(di);
    free(l);
}


/* ---- rope + KV store + attention ------------------------------------------ */

static void
ref_rope(float *x, uint32_t n_heads, uint32_t hd, uint32_t n_rot, int neox,
    uint32_t pos, float base, float freq_scale)
{
    float    cs[256];
    float    theta_scale = powf(base, -2.0f / (float) n_rot);
    float    theta = (float) pos;
    uint32_t h, i, half = n_rot / 2;

    for (i = 0; i < n_rot; i += 2) {
        float t = theta * freq_scale;
        cs[i] = cosf(t);
        cs[i + 1] = sinf(t);
        theta *= theta_scale;
    }
    for (h = 0; h < n_heads; h++) {
        float *p = x + (size_t) h * hd;
        for (i = 0; i < half; i++) {
            uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = p[a], x1 = p[b];
            p[a] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
            p[b] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
        }
    }
}


/* The CPU's attention of one (row, head) (backend/cpu/forward.c st_attn_one). */
static void
ref_attn(const float *q, const st_f16 *kc, const st_f16 *vc,
    const uint32_t *tab, uint32_t bt, uint32_t kvdim, uint32_t kh,
    uint32_t hd, uint32_t pos, float *out)
{
    float    qf[256], acc[256];
    float    scale = 1.0f / sqrtf((float) hd), M = -INFINITY, S = 0.0f, s_inv;
    uint32_t c, d;

    st_vec_f16_round(q, qf, hd);
    for (d = 0; d < hd; d++) {
        acc[d] = 0.0f;
    }
    for (c = 0; c <= pos; c++) {
        size_t        r = ((size_t) tab[c / bt] * bt + c % bt) * kvdim
                          + (size_t) kh * hd;
        double        dot = st_vec_dot_f16_f32_d(hd, kc + r, qf);
        float         s = (float) dot * scale, ms = 1.0f, vs = 1.0f;

        if (s > M) {
            float m_old = M;
            M = s;
            ms = expf(m_old - M);
            st_vec_f16_scale_round(acc, ms, hd);
        } else {
            vs = expf(s - M);
        }
        st_vec_f16_mad_round(acc, vc + r, vs, hd);
        S = S * ms + vs;
    }
    s_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (d = 0; d < hd; d++) {
        out[d] = acc[d] * s_inv;
    }
}


static void
test_rope_attention(uint32_t n_head, uint32_t n_kv, uint32_t hd,
    uint32_t n_rot, int neox, uint32_t ctx)
{
    const uint32_t bt = 16, n_blocks = (ctx + bt - 1) / bt + 3, n = 5;
    uint32_t  kvdim = n_kv * hd, qdim = n_head * hd, i, r, h;
    size_t    cache_elems = (size_t) n_blocks * bt * kvdim;
    st_f16   *kc = calloc(cache_elems, sizeof(st_f16));
    st_f16   *vc = calloc(cache_elems, sizeof(st_f16));
    st_f16   *kg = malloc(cache_elems * sizeof(st_f16));
    st_f16   *vg = malloc(cache_elems * sizeof(st_f16));
    uint32_t *tab = malloc(sizeof(uint32_t) * n_blocks);
    float    *q = malloc(sizeof(float) * n * qdim);
    float    *k = malloc(sizeof(float) * n * kvdim);
    float    *v = malloc(sizeof(float) * n * kvdim);
    float    *qg = malloc(sizeof(float) * n * qdim);
    float    *ref = malloc(sizeof(float) * n * qdim);
    float    *got = malloc(sizeof(float) * n * qdim);
    uint32_t  pos[5], blk_off[5] = { 0, 0, 0, 0, 0 };
    uint64_t  kv_row[5];
    float     theta_scale = powf(10000.0f, -2.0f / (float) n_rot);
    void     *dq, *dk, *dv, *dkc, *dvc, *dpos, *drow, *dtab, *doff, *dout;
    int       e;
    double    rel;

    /* a shuffled block table: positions are scattered over the pool */
    for (i = 0; i < n_blocks; i++) {
        tab[i] = i;
    }
    for (i = n_blocks - 1; i > 0; i--) {
        uint32_t j = ct_rand_u32() % (i + 1), t = tab[i];
        tab[i] = tab[j];
        tab[j] = t;
    }
    /* earlier positions already in the cache: random F16 K/V */
    for (i = 0; i < ctx - n; i++) {
        size_t row = ((size_t) tab[i / bt] * bt + i % bt) * kvdim;
        uint32_t d;
        for (d = 0; d < kvdim; d++) {
            kc[row + d] = st_f32_to_f16(ct_randf(2.0f));
            vc[row + d] = st_f32_to_f16(ct_randf(2.0f));
        }
    }
    /* the batch: the last n positions of the sequence (a prefill chunk) */
    for (r = 0; r < n; r++) {
        pos[r] = ctx - n + r;
        kv_row[r] = ((uint64_t) tab[pos[r] / bt] * bt + pos[r] % bt) * kvdim;
    }
    ct_fill(q, (size_t) n * qdim, 2.0f);
    ct_fill(k, (size_t) n * kvdim, 2.0f);
    ct_fill(v, (size_t) n * kvdim, 2.0f);

    dq = ct_dev(q, sizeof(float) * n * qdim);
    dk = ct_dev(k, sizeof(float) * n * kvdim);
    dv = ct_dev(v, sizeof(float) * n * kvdim);
    dkc = ct_dev(kc, cache_elems * sizeof(st_f16));
    dvc = ct_dev(vc, cache_elems * sizeof(st_f16));
    dpos = ct_dev(pos, sizeof(pos));
    drow = ct_dev(kv_row, sizeof(kv_row));
    dtab = ct_dev(tab, sizeof(uint32_t) * n_blocks);
    doff = ct_dev(blk_off, sizeof(blk_off));
    dout = ct_dev(NULL, sizeof(float) * n * qdim);

    /* CPU: rope, store, attend */
    for (r = 0; r < n; r++) {
        uint32_t d;
        ref_rope(q + (size_t) r * qdim, n_head, hd, n_rot, neox, pos[r],
                 10000.0f, 1.0f);
        ref_rope(k + (size_t) r * kvdim, n_kv, hd, n_rot, neox, pos[r],
                 10000.0f, 1.0f);
        for (d = 0; d < kvdim; d++) {
            kc[kv_row[r] + d] = st_f32_to_f16(k[(size_t) r * kvdim + d]);
            vc[kv_row[r] + d] = st_f32_to_f16(v[(size_t) r * kvdim + d]);
        }
    }
    for (r = 0; r < n; r++) {
        for (h = 0; h < n_head; h++) {
            ref_attn(q + ((size_t) r * n_head + h) * hd, kc, vc, tab, bt,
                     kvdim, h / (n_head / n_kv), hd, pos[r],
                     ref + ((size_t) r * n_head + h) * hd);
        }
    }

    e = st_cuda_rope_store(dq, dk, dv, dpos, drow, dkc, dvc, n, n_head, n_kv,
                           hd, n_rot, neox, theta_scale, 1.0f, NULL);
    ct_get(qg, dq, sizeof(float) * n * qdim);
    ct_get(kg, dkc, cache_elems * sizeof(st_f16));
    ct_get(vg, dvc, cache_elems * sizeof(st_f16));
    rel = ct_max_rel(qg, q, (size_t) n * qdim);
    ok(e == 0 && rel <= CT_TRANSCENDENTAL_TOL,
       "rope %s (heads %u/%u, hd %u, n_rot %u) on Q matches (max rel %.3g)",
       neox ? "neox" : "norm", n_head, n_kv, hd, n_rot, rel);
    if (CT_TRANSCENDENTAL_TOL == 0.0) {
        ok(memcmp(kg, kc, cache_elems * sizeof(st_f16)) == 0
           && memcmp(vg, vc, cache_elems * sizeof(st_f16)) == 0,
           "K/V stored as F16 at the block-table rows, bit-equal");
    } else {
        /* an ulp of sinf can flip an F16 rounding: compare as floats */
        size_t i2, bad = 0;
        for (i2 = 0; i2 < cache_elems; i2++) {
            bad += fabsf(st_f16_to_f32(kg[i2]) - st_f16_to_f32(kc[i2]))
                   > 1e-3f * (1.0f + fabsf(st_f16_to_f32(kc[i2])));
            bad += vg[i2] != vc[i2];
        }
        ok(bad == 0, "K/V stored at the block-table rows (%zu differ)", bad);
    }

    e = st_cuda_attention(dq, dkc, dvc, dtab, doff, dpos, n, n_head, n_kv, hd,
                          bt, dout, NULL);
    ct_get(got, dout, sizeof(float) * n * qdim);
    rel = ct_max_rel(got, ref, (size_t) n * qdim);
    ok(e == 0 && rel <= (CT_TRANSCENDENTAL_TOL > 0 ? 1e-3 : 0.0),
       "attention (ctx %u, heads %u/%u, hd %u, 5 rows) matches the CPU "
       "(max rel %.3g)", ctx, n_head, n_kv, hd, rel);

    st_cuda_free(dq);
    st_cuda_free(dk);
    st_cuda_free(dv);
    st_cuda_free(dkc);
    st_cuda_free(dvc);
    st_cuda_free(dpos);
    st_cuda_free(drow);
    st_cuda_free(dtab);
    st_cuda_free(doff);
    st_cuda_free(dout);
    free(kc);
    free(vc);
    free(kg);
    free(vg);
    free(tab);
    free(q);
    free(k);
    free(v);
    free(qg);
    free(ref);
    free(got);
}


int
main(void)
{
    uint64_t launches, threads, switches;

    test_matvec_type(ST_TYPE_F32, 97, 37, 3);
    test_matvec_type(ST_TYPE_F16, 161, 37, 3);
    test_matvec_type(ST_TYPE_BF16, 161, 37, 2);
    test_matvec_type(ST_TYPE_Q8_0, 32 * 41, 37, 3);
    test_matvec_type(ST_TYPE_Q4_0, 32 * 7, 37, 3);
    test_matvec_type(ST_TYPE_Q4_K, 256 * 3, 13, 3);
    test_matvec_type(ST_TYPE_Q5_K, 256 * 3, 13, 2);
    test_matvec_type(ST_TYPE_Q6_K, 256 * 35, 7, 2);
    /* more rows than one weight pass serves (16), rows not 4-aligned */
    test_matvec_type(ST_TYPE_Q8_0, 32 * 9, 21, 19);
    test_matvec_type(ST_TYPE_Q4_0, 32 * 65, 9, 17);
    test_matvec_type(ST_TYPE_Q4_K, 256 * 2, 9, 16);
    test_matvec_type(ST_TYPE_Q6_K, 256 * 1, 11, 18);
    test_matvec_type(ST_TYPE_F16, 97, 11, 17);
    test_matvec_type(ST_TYPE_F32, 33, 11, 15);
    /* issue 10's types: random blocks (every bit pattern of the quants,
     * high bits and scales); one row, a few rows, and > 16 rows */
    test_matvec_type(ST_TYPE_Q4_1, 32 * 41, 37, 3);
    test_matvec_type(ST_TYPE_Q5_0, 32 * 41, 37, 3);
    test_matvec_type(ST_TYPE_Q5_1, 32 * 41, 37, 3);
    test_matvec_type(ST_TYPE_IQ4_NL, 32 * 41, 37, 3);
    test_matvec_type(ST_TYPE_Q2_K, 256 * 35, 7, 2);
    test_matvec_type(ST_TYPE_Q3_K, 256 * 35, 7, 2);
    test_matvec_type(ST_TYPE_IQ4_XS, 256 * 35, 7, 2);
    test_matvec_type(ST_TYPE_Q4_1, 32 * 7, 9, 1);
    test_matvec_type(ST_TYPE_Q5_0, 32 * 65, 9, 17);
    test_matvec_type(ST_TYPE_Q5_1, 32 * 9, 21, 19);
    test_matvec_type(ST_TYPE_IQ4_NL, 32 * 9, 11, 18);
    test_matvec_type(ST_TYPE_Q2_K, 256 * 3, 13, 16);
    test_matvec_type(ST_TYPE_Q3_K, 256 * 2, 9, 17);
    test_matvec_type(ST_TYPE_IQ4_XS, 256 * 1, 11, 1);
    test_matvec_refuses();
    test_rmsnorm();
    test_elementwise();
    test_argmax();
    test_rope_attention(8, 4, 32, 32, 0, 21);
    test_rope_attention(4, 2, 64, 64, 1, 300);       /* > one score chunk */
    test_rope_attention(6, 1, 40, 24, 1, 17);        /* partial rotation, MQA */
    test_rope_attention(2, 2, 160, 160, 0, 9);       /* hd > 128 threads */
    st_cuda_shim_counters(&launches, &threads, &switches);
    diag("shim: %llu launches, %llu threads, %llu fiber switches",
         (unsigned long long) launches, (unsigned long long) threads,
         (unsigned long long) switches);
    return done_testing();
}
