/*
 * The CUDA backend's hidden hook (embeddings) against the CPU backend's:
 * the same prompt prefilled by both with want_hidden on every row, the
 * output-normed final hidden states compared element by element, for a
 * prompt alone and for two prompts in one batch (rows of each sequence
 * picked out in batch order, a row without want_hidden skipped).
 *
 * Tolerance: TOL_HIDDEN on max |cuda - cpu| / max(1, |cpu|), fixed, the
 * bound test_cuda_backend puts on the first-step logits of these models
 * (TOL_SHIPPED). Measured through the shim (AVX2 CPU kernels): 7.2e-4
 * (stories260K F32), 1.0e-3 (Q8_0). The synthetic random-weight models
 * are left to test_cuda_backend: their states are chaotic (a 1e-7
 * change flips an F16 rounding in attention), which only its per-model
 * logit tolerances describe; the rows here go through the same output
 * norm kernel whatever the architecture.
 */
#include "cuda_test.h"
#include "backend/backend.h"

#define KV_BLOCK_TOKENS 16
#define N_BLOCKS        16
#define TOL_HIDDEN      1e-2

static const int32_t prompt_a[] = {
    1, 403, 407, 261, 378, 275, 285, 310, 436, 271, 311, 414, 262, 349, 385,
    261, 365, 299, 262, 438
};
static const int32_t prompt_b[] = { 1, 365, 299, 262, 438, 403, 407 };

#define NA (sizeof(prompt_a) / sizeof(prompt_a[0]))
#define NB (sizeof(prompt_b) / sizeof(prompt_b[0]))


typedef struct {
    st_backend  *be;
    st_kv_cache  kv;
    st_kv_seq    seq[2];
} side;


static int
side_init(side *s, const st_model *m, int cuda, st_threadpool *tp,
    st_error *err)
{
    st_kv_geometry geo;

    memset(s, 0, sizeof(*s));
    geo.n_layer = m->hp.n_layer;
    geo.kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    geo.block_tokens = KV_BLOCK_TOKENS;
    geo.n_blocks = N_BLOCKS;
    if ((cuda ? st_backend_cuda_create(&s->be, m, 64, &geo, 0, err)
              : st_backend_cpu_create(&s->be, m, 64, tp, err)) != ST_OK
        || st_kv_cache_init(&s->kv, geo.n_layer, geo.kv_dim, KV_BLOCK_TOKENS,
                            N_BLOCKS, !cuda, err) != ST_OK
        || st_kv_seq_reserve(&s->kv, &s->seq[0], 64) != ST_OK
        || st_kv_seq_reserve(&s->kv, &s->seq[1], 64) != ST_OK)
    {
        return -1;
    }
    return 0;
}


static void
side_free(side *s)
{
    st_kv_seq_free(&s->seq[0]);
    st_kv_seq_free(&s->seq[1]);
    st_kv_cache_free(&s->kv);
    if (s->be) {
        s->be->free(s->be);
    }
}


/* Prefill a (and b when two) in one batch: hidden rows of a, then b's
 * rows from position 1 on (its first row is not asked for). */
static int
side_hidden(side *s, int two, float *out, uint32_t *n_out, st_error *err)
{
    st_batch_entry b[NA + NB];
    uint32_t       i, n = 0;

    memset(b, 0, sizeof(b));
    for (i = 0; i < NA; i++, n++) {
        b[n].token = prompt_a[i];
        b[n].pos = i;
        b[n].seq = &s->seq[0];
        b[n].want_logits = i + 1 == NA;
        b[n].want_hidden = 1;
    }
    for (i = 0; two && i < NB; i++, n++) {
        b[n].token = prompt_b[i];
        b[n].pos = i;
        b[n].seq = &s->seq[1];
        b[n].want_hidden = i > 0;
    }
    *n_out = NA + (two ? NB - 1 : 0);
    {
        float logits[2 * 4096];

        if (s->be->run(s->be, &s->kv, b, n, logits, err) != ST_OK) {
            return -1;
        }
    }
    return s->be->hidden(s->be, b, n, out, err) == ST_OK ? 0 : -1;
}


static void
test_model(const char *path, const char *stem, st_threadpool *tp)
{
    st_model  *m = NULL;
    side       cpu, gpu;
    st_error   err = { 0 };
    float     *hc = NULL, *hg = NULL;
    uint32_t   n_c, n_g, E;
    int        two;

    memset(&cpu, 0, sizeof(cpu));
    memset(&gpu, 0, sizeof(gpu));
    if (st_model_load(&m, path, NULL, &err) != ST_OK) {
        ok(0, "%s: load: %s", stem, err.msg);
        return;
    }
    E = m->hp.n_embd;
    if (m->hp.n_vocab > 4096) {
        ok(0, "%s: vocabulary too large for this test", stem);
        st_model_free(m);
        return;
    }
    hc = malloc(sizeof(float) * (NA + NB) * E);
    hg = malloc(sizeof(float) * (NA + NB) * E);
    for (two = 0; two <= 1 && hc && hg; two++) {
        if (side_init(&cpu, m, 0, tp, &err) != 0
            || side_init(&gpu, m, 1, NULL, &err) != 0
            || side_hidden(&cpu, two, hc, &n_c, &err) != 0
            || side_hidden(&gpu, two, hg, &n_g, &err) != 0)
        {
            ok(0, "%s: run: %s", stem, err.msg);
        } else {
            double rel = ct_max_rel(hg, hc, (size_t) n_c * E);

            ok(n_c == n_g && rel <= TOL_HIDDEN,
               "%s: %s: %u hidden rows within %.0e of the CPU's (max rel "
               "%.2g)", stem, two ? "two sequences in one batch" : "alone",
               n_c, TOL_HIDDEN, rel);
        }
        side_free(&cpu);
        side_free(&gpu);
    }
    free(hc);
    free(hg);
    st_model_free(m);
}


int
main(void)
{
    st_threadpool *tp = NULL;
    st_error       err = { 0 };
    char           model[1024];

    if (st_threadpool_create(&tp, 1, &err) != ST_OK) {
        printf("Bail out! threadpool: %s\n", err.msg);
        return 1;
    }
    snprintf(model, sizeof(model), "%s/models/stories260K.gguf",
             tap_root_dir());
    test_model(model, "stories260K", tp);
    snprintf(model, sizeof(model), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    test_model(model, "TinyStories-656K-Q8_0", tp);
    st_threadpool_free(tp);
    return done_testing();
}
