/*
 * Batch invariance of decode rows on the CUDA backend, at the default
 * cuBLAS threshold (no ST_CUDA_GEMM_MIN_ROWS override): a decoding
 * sequence's logits are the same bytes whether its decode row runs alone
 * or in a step that also carries another sequence's 24-row prefill chunk
 * (which goes through cuBLAS), and whether 20 decode rows run together
 * (more rows than the threshold) or one at a time. Prefill rows may use
 * cuBLAS; a running stream's bits must not depend on what else runs.
 */
#include "cuda_test.h"
#include "backend/backend.h"

#define BLOCK_TOKENS 16
#define N_SEQ        20
#define MAX_TOKENS   64
#define N_BLOCKS     128
#define PROMPT_LEN   6
#define CHUNK        24

typedef struct {
    st_backend  *be;
    st_kv_cache  kv;
    st_kv_seq    seq[N_SEQ + 1];
} side;


static int
side_init(side *s, const st_model *m, st_error *err)
{
    st_kv_geometry geo;

    memset(s, 0, sizeof(*s));
    unsetenv("ST_CUDA_GEMM_MIN_ROWS");
    geo.n_layer = m->hp.n_layer;
    geo.kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    geo.block_tokens = BLOCK_TOKENS;
    geo.n_blocks = N_BLOCKS;
    if (st_backend_cuda_create(&s->be, m, MAX_TOKENS, &geo, 0, err) != ST_OK)
    {
        return -1;
    }
    return st_kv_cache_init(&s->kv, geo.n_layer, geo.kv_dim, BLOCK_TOKENS,
                            N_BLOCKS, 0, err) == ST_OK ? 0 : -1;
}


static void
side_free(side *s)
{
    int i;

    for (i = 0; i < N_SEQ + 1; i++) {
        st_kv_seq_release(&s->kv, &s->seq[i]);
        st_kv_seq_free(&s->seq[i]);
    }
    st_kv_cache_free(&s->kv);
    if (s->be) {
        s->be->free(s->be);
    }
}


static int32_t
tok_of(int seq, uint32_t pos, uint32_t n_vocab)
{
    return (int32_t) ((7u + 31u * (uint32_t) seq + 13u * pos) % n_vocab);
}


/* Prefills sequence k (PROMPT_LEN tokens, alone, one batch). */
static int
prefill(side *s, int k, uint32_t n_vocab, float *logits, st_error *err)
{
    st_batch_entry b[PROMPT_LEN];
    uint32_t       i;

    if (st_kv_seq_reserve(&s->kv, &s->seq[k], PROMPT_LEN + 1) != ST_OK) {
        return -1;
    }
    for (i = 0; i < PROMPT_LEN; i++) {
        b[i].token = tok_of(k, i, n_vocab);
        b[i].pos = i;
        b[i].seq = &s->seq[k];
        b[i].want_logits = i + 1 == PROMPT_LEN;
    }
    return s->be->run(s->be, &s->kv, b, PROMPT_LEN, logits, err) == ST_OK
           ? 0 : -1;
}


static void
test_model(const char *path)
{
    st_model       *m = NULL;
    st_error        err = { 0 };
    side            a, b;
    st_batch_entry  e[MAX_TOKENS];
    float          *alone, *mixed, *tmp;
    uint32_t        V, i, n;
    int             k, same;
    const char     *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (st_model_load(&m, path, NULL, &err) != ST_OK) {
        ok(0, "%s: load: %s", name, err.msg);
        return;
    }
    V = m->hp.n_vocab;
    alone = malloc(sizeof(float) * V * N_SEQ);
    mixed = malloc(sizeof(float) * V * MAX_TOKENS);
    tmp = malloc(sizeof(float) * V);
    if (side_init(&a, m, &err) != 0 || side_init(&b, m, &err) != 0) {
        ok(0, "%s: backends: %s", name, err.msg);
        goto done;
    }

    /* side a: every sequence prefilled, then its first decode row alone */
    for (k = 0; k < N_SEQ; k++) {
        if (prefill(&a, k, V, tmp, &err) != 0) {
            ok(0, "%s: prefill: %s", name, err.msg);
            goto done;
        }
        e[0].token = tok_of(k, PROMPT_LEN, V);
        e[0].pos = PROMPT_LEN;
        e[0].seq = &a.seq[k];
        e[0].want_logits = 1;
        if (a.be->run(a.be, &a.kv, e, 1, alone + (size_t) k * V, &err)
            != ST_OK)
        {
            ok(0, "%s: decode alone: %s", name, err.msg);
            goto done;
        }
    }

    /* side b, step 1: sequence 0's decode row together with a 24-row
     * prefill chunk of another sequence (25 rows: above the threshold) */
    for (k = 0; k < N_SEQ; k++) {
        if (prefill(&b, k, V, tmp, &err) != 0) {
            ok(0, "%s: prefill: %s", name, err.msg);
            goto done;
        }
    }
    st_kv_seq_reserve(&b.kv, &b.seq[N_SEQ], CHUNK);
    n = 0;
    e[n].token = tok_of(0, PROMPT_LEN, V);
    e[n].pos = PROMPT_LEN;
    e[n].seq = &b.seq[0];
    e[n].want_logits = 1;
    n++;
    for (i = 0; i < CHUNK; i++, n++) {
        e[n].token = tok_of(N_SEQ, i, V);
        e[n].pos = i;
        e[n].seq = &b.seq[N_SEQ];
        e[n].want_logits = 0;
    }
    if (b.be->run(b.be, &b.kv, e, n, mixed, &err) != ST_OK) {
        ok(0, "%s: mixed step: %s", name, err.msg);
        goto done;
    }
    ok(memcmp(mixed, alone, sizeof(float) * V) == 0,
       "%s: a decode row next to a %u-row prefill chunk gives the bytes of "
       "the row alone (max abs diff %.3g)", name, CHUNK,
       ct_max_abs(mixed, alone, V));

    /* side b, step 2: the other 19 sequences' first decode rows and
     * sequence 0's second: 20 decode rows in one batch; sequences 1..19
     * must match their rows alone */
    n = 0;
    for (k = 1; k < N_SEQ; k++, n++) {
        e[n].token = tok_of(k, PROMPT_LEN, V);
        e[n].pos = PROMPT_LEN;
        e[n].seq = &b.seq[k];
        e[n].want_logits = 1;
    }
    st_kv_seq_reserve(&b.kv, &b.seq[0], PROMPT_LEN + 2);
    e[n].token = tok_of(0, PROMPT_LEN + 1, V);
    e[n].pos = PROMPT_LEN + 1;
    e[n].seq = &b.seq[0];
    e[n].want_logits = 1;
    n++;
    if (b.be->run(b.be, &b.kv, e, n, mixed, &err) != ST_OK) {
        ok(0, "%s: 20-row decode step: %s", name, err.msg);
        goto done;
    }
    same = 1;
    for (k = 1; k < N_SEQ; k++) {
        same &= memcmp(mixed + (size_t) (k - 1) * V, alone + (size_t) k * V,
                       sizeof(float) * V) == 0;
    }
    ok(same, "%s: %d decode rows in one batch give the bytes of each row "
       "alone", name, N_SEQ);

done:
    side_free(&a);
    side_free(&b);
    free(alone);
    free(mixed);
    free(tmp);
    st_model_free(m);
}


int
main(void)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/models/stories260K.gguf",
             tap_root_dir());
    test_model(path);
    snprintf(path, sizeof(path), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    test_model(path);
    return done_testing();
}
