/*
 * The model loader's architecture descriptions and plans, on the second
 * synthetic set (../shared/models/synthetic-2):
 *   - the plan of each architecture (q/k norms, rope sets and Llama-3
 *     factors, sliding windows, GeGLU, embedding scale);
 *   - every key or tensor that would change the math and is not
 *     implemented refuses the file with an error naming it: each case
 *     rewrites a real file with one change (a key added or replaced, a
 *     tensor dropped or added) and loads it;
 *   - gemma3's sliding window: a prompt longer than the window gives the
 *     same logits prefilled at once or in two parts (what prefix reuse
 *     does), and final_logit_softcapping caps the logits exactly as
 *     c * tanh(l / c).
 */
#include "tap.h"
#include "model/model.h"
#include "backend/cpu/forward.h"
#include "gguf_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One change to a file: a key to replace or add (value as string, u32 or
 * f32), a tensor to drop, a tensor (F32 vector of extra_n) to add. */
typedef struct {
    const char *key;
    int         kind;          /* 0 none, 's' string, 'u' u32, 'f' f32 */
    const char *s;
    uint32_t    u;
    float       f;
    const char *drop_tensor;
    const char *extra_tensor;
    uint64_t    extra_n;
} mutation;


static int
rewrite(const char *src, const char *dst, const mutation *mu)
{
    st_gguf        *g = NULL;
    st_gguf_writer *w = NULL;
    st_error        err;
    uint64_t        i;
    int             written = 0;
    float          *extra = NULL;

    if (st_gguf_open(&g, src, NULL, &err) != ST_OK
        || st_gguf_writer_create(&w, &err) != ST_OK)
    {
        diag("rewrite %s: %s", src, err.msg);
        st_gguf_close(g);
        return 0;
    }
    for (i = 0; i < st_gguf_n_kv(g); i++) {
        const st_gguf_kv *kv = st_gguf_kv_at(g, i);

        if (mu->kind && strlen(mu->key) == kv->key.len
            && memcmp(mu->key, kv->key.ptr, kv->key.len) == 0)
        {
            continue;                  /* replaced below */
        }
        st_gguf_writer_add_value(w, kv->key.ptr, kv->key.len, &kv->value,
                                 &err);
    }
    if (mu->kind == 's') {
        st_gguf_writer_add_str(w, mu->key, mu->s, &err);
    } else if (mu->kind == 'u') {
        st_gguf_writer_add_u32(w, mu->key, mu->u, &err);
    } else if (mu->kind == 'f') {
        st_gguf_writer_add_f32(w, mu->key, mu->f, &err);
    }
    written = 1;
    for (i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);

        if (mu->drop_tensor && strcmp(t->name, mu->drop_tensor) == 0) {
            continue;
        }
        st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, &err);
    }
    if (mu->extra_tensor) {
        uint64_t ne[1] = { mu->extra_n };

        st_gguf_writer_add_tensor(w, mu->extra_tensor, ST_TYPE_F32, 1, ne,
                                  &err);
        extra = calloc(mu->extra_n, sizeof(float));
    }
    st_gguf_writer_begin_data(w, dst, &err);
    for (i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);

        if (mu->drop_tensor && strcmp(t->name, mu->drop_tensor) == 0) {
            continue;
        }
        st_gguf_writer_write(w, t->data, t->nbytes, &err);
    }
    if (mu->extra_tensor && extra != NULL) {
        st_gguf_writer_write(w, extra, mu->extra_n * sizeof(float), &err);
    }
    if (st_gguf_writer_finish(w, &err) != ST_OK) {
        diag("rewrite %s: %s", src, err.msg);
        written = 0;
    }
    free(extra);
    st_gguf_writer_free(w);
    st_gguf_close(g);
    return written;
}


/* Loads src changed by mu; expects a refusal whose message holds want. */
static void
expect_refused(const char *src, const mutation *mu, const char *want,
    const char *what)
{
    char      dst[256];
    st_model *m = NULL;
    st_error  err;
    st_status rc;

    snprintf(dst, sizeof(dst), "/tmp/st_test_model_load_%ld.gguf",
             (long) getpid());
    if (!rewrite(src, dst, mu)) {
        ok(0, "%s: file rewritten", what);
        return;
    }
    memset(&err, 0, sizeof(err));
    rc = st_model_load(&m, dst, NULL, &err);
    ok(rc != ST_OK && strstr(err.msg, want) != NULL,
       "%s: refused naming it (%s)", what, rc != ST_OK ? err.msg : "loaded");
    st_model_free(m);
    unlink(dst);
}


static void
check_plans(const char *dir)
{
    char      path[1100];
    st_model *m;
    st_error  err;

    snprintf(path, sizeof(path), "%s/synth-qwen3-Q4_K_M.gguf", dir);
    if (st_model_load(&m, path, NULL, &err) == ST_OK) {
        ok(m->hp.rope_type == ST_ROPE_NEOX && m->layers[0].q_norm != NULL
           && m->layers[0].k_norm != NULL && m->layers[0].bq == NULL
           && m->plan.act == ST_ACT_SILU && m->plan.emb_scale == 1.0f
           && m->plan.n_rope_sets == 1 && m->plan.rope_freqs == NULL
           && m->layers[1].plan.window_tokens == 0,
           "qwen3: q/k norms, NEOX rope, no biases, SwiGLU, one rope set");
        st_model_free(m);
    } else {
        ok(0, "qwen3 loads: %s", err.msg);
    }

    snprintf(path, sizeof(path), "%s/synth-llama3-Q5_K_M.gguf", dir);
    if (st_model_load(&m, path, NULL, &err) == ST_OK) {
        ok(m->hp.rope_type == ST_ROPE_NORM && m->plan.rope_freqs != NULL
           && m->layers[0].q_norm == NULL && m->plan.rope_base[0] == 500000.0f
           && m->plan.rope_freq_scale[0] == 1.0f,
           "llama3: rope_freqs.weight factors, base 5e5, no q/k norms");
        st_model_free(m);
    } else {
        ok(0, "llama3 loads: %s", err.msg);
    }

    snprintf(path, sizeof(path), "%s/synth-gemma3-Q8_0.gguf", dir);
    if (st_model_load(&m, path, NULL, &err) == ST_OK) {
        ok(m->plan.act == ST_ACT_GELU_TANH && m->plan.emb_scale == 16.0f
           && m->plan.attn_q_scale == 0.125f && m->plan.n_rope_sets == 2
           && m->plan.rope_base[0] == 1e6f && m->plan.rope_base[1] == 1e4f
           && m->layers[0].plan.window_tokens == 8
           && m->layers[0].plan.rope_set == 1
           && m->layers[1].plan.window_tokens == 0
           && m->layers[1].plan.rope_set == 0
           && m->layers[0].post_attn_norm != NULL
           && m->layers[0].post_ffn_norm != NULL
           && m->plan.logit_softcap == 0.0f,
           "gemma3: layer 0 local (window 8, base 1e4), layer 1 global "
           "(base 1e6), GeGLU, sqrt(n_embd) embedding scale, Q scale 1/8");
        st_model_free(m);
    } else {
        ok(0, "gemma3 loads: %s", err.msg);
    }
}


/* Last-row logits of ids[0..n) on a fresh cache, fed in one batch or in
 * two (split rows first, then the rest). */
static int
run_split(const char *path, const int32_t *ids, uint32_t n, uint32_t split,
    float *logits)
{
    st_model       *m = NULL;
    st_forward     *f = NULL;
    st_kv_cache     kv;
    st_kv_seq       seq;
    st_batch_entry  b[64];
    st_error        err;
    uint32_t        i, p0;
    int             good = 0;

    memset(&kv, 0, sizeof(kv));
    memset(&seq, 0, sizeof(seq));
    if (n > 64 || st_model_load(&m, path, NULL, &err) != ST_OK
        || st_forward_create(&f, m, 64, NULL, &err) != ST_OK
        || st_kv_cache_init(&kv, m->hp.n_layer,
                            m->hp.n_head_kv * m->hp.head_dim, 16, 4, 1,
                            &err) != ST_OK
        || st_kv_seq_reserve(&kv, &seq, 64) != ST_OK)
    {
        diag("run %s: %s", path, err.msg);
        goto done;
    }
    if (m->hp.n_vocab != 512) {
        diag("run %s: vocabulary %u, expected 512", path, m->hp.n_vocab);
        goto done;
    }
    for (i = 0; i < n; i++) {
        b[i].token = ids[i];
        b[i].pos = i;
        b[i].seq = &seq;
        b[i].want_logits = i == n - 1;
    }
    p0 = split > 0 && split < n ? split : n;
    if (p0 < n) {
        b[p0 - 1].want_logits = 0;
        if (st_forward_run(f, &kv, b, p0, NULL, &err) != ST_OK) {
            diag("forward: %s", err.msg);
            goto done;
        }
    }
    if (st_forward_run(f, &kv, b + (p0 < n ? p0 : 0), p0 < n ? n - p0 : n,
                       logits, &err) != ST_OK)
    {
        diag("forward: %s", err.msg);
        goto done;
    }
    good = 1;
done:
    st_kv_seq_free(&seq);
    st_kv_cache_free(&kv);
    st_forward_free(f);
    st_model_free(m);
    return good;
}


static void
check_gemma3_runs(const char *gemma3)
{
    /* 22 ids, longer than the window of 8 */
    static const int32_t ids[22] = {
        1, 7, 45, 300, 12, 99, 101, 5, 250, 3, 77, 18, 400, 2, 64, 128,
        33, 9, 311, 150, 11, 6
    };
    float     a[512], b[512], c[512];
    char      dst[256];
    mutation  mu;
    uint32_t  i;
    int       same = 1, capped = 1;

    if (!run_split(gemma3, ids, 22, 0, a) || !run_split(gemma3, ids, 22, 13, b))
    {
        ok(0, "gemma3 forward runs");
        return;
    }
    for (i = 0; i < 512; i++) {
        same = same && memcmp(&a[i], &b[i], sizeof(float)) == 0;
    }
    ok(same, "gemma3: 22 rows through the window of 8 give the same logits "
       "in one batch as in 13 + 9 (prefix reuse stays exact)");

    memset(&mu, 0, sizeof(mu));
    mu.key = "gemma3.final_logit_softcapping";
    mu.kind = 'f';
    mu.f = 3.0f;
    snprintf(dst, sizeof(dst), "/tmp/st_test_model_cap_%ld.gguf",
             (long) getpid());
    if (!rewrite(gemma3, dst, &mu) || !run_split(dst, ids, 22, 0, c)) {
        ok(0, "gemma3 with a softcap runs");
        unlink(dst);
        return;
    }
    unlink(dst);
    for (i = 0; i < 512; i++) {
        float want = tanhf(a[i] * (1.0f / 3.0f)) * 3.0f;
        capped = capped && memcmp(&want, &c[i], sizeof(float)) == 0
                 && fabsf(c[i]) <= 3.0f;
    }
    ok(capped, "gemma3: final_logit_softcapping 3 gives 3 tanh(l / 3) of "
       "the uncapped logits");
}


int
main(void)
{
    char       dir[1000], llama3[1100], qwen3[1100], gemma3[1100];
    mutation   mu;

    snprintf(dir, sizeof(dir), "%s/models/synthetic-2", tap_shared_dir());
    snprintf(llama3, sizeof(llama3), "%s/synth-llama3-Q5_K_M.gguf", dir);
    snprintf(qwen3, sizeof(qwen3), "%s/synth-qwen3-Q4_K_M.gguf", dir);
    snprintf(gemma3, sizeof(gemma3), "%s/synth-gemma3-Q8_0.gguf", dir);
    if (access(llama3, R_OK) != 0 || access(qwen3, R_OK) != 0
        || access(gemma3, R_OK) != 0)
    {
        skip("%s not present (needs ../shared)", dir);
        return done_testing();
    }
    check_plans(dir);
    check_gemma3_runs(gemma3);

    memset(&mu, 0, sizeof(mu));
    mu.key = "general.architecture";
    mu.kind = 's';
    mu.s = "phi3";
    expect_refused(llama3, &mu, "architecture 'phi3' is not supported "
                   "(supported: llama, mistral, qwen2, qwen3, gemma3)",
                   "unknown architecture");

    memset(&mu, 0, sizeof(mu));
    mu.key = "llama.rope.scaling.type";
    mu.kind = 's';
    mu.s = "yarn";
    expect_refused(llama3, &mu, "llama.rope.scaling.type 'yarn' is not "
                   "supported", "YaRN rope scaling");

    memset(&mu, 0, sizeof(mu));
    mu.key = "llama.rope.scaling.attn_factor";
    mu.kind = 'f';
    mu.f = 0.5f;
    expect_refused(llama3, &mu, "llama.rope.scaling.attn_factor",
                   "rope attention factor");

    memset(&mu, 0, sizeof(mu));
    mu.key = "llama.attention.value_length";
    mu.kind = 'u';
    mu.u = 32;
    expect_refused(llama3, &mu, "attention.value_length 32",
                   "V heads shorter than K heads");

    memset(&mu, 0, sizeof(mu));
    mu.extra_tensor = "blk.0.attn_q_norm.weight";
    mu.extra_n = 64;
    expect_refused(llama3, &mu, "tensor 'blk.0.attn_q_norm.weight' is not "
                   "supported for architecture llama",
                   "a tensor the architecture does not use");

    memset(&mu, 0, sizeof(mu));
    mu.extra_tensor = "rope_freqs.weight";
    mu.extra_n = 32;
    expect_refused(qwen3, &mu, "tensor 'rope_freqs.weight' is not supported "
                   "for architecture qwen3",
                   "rope factors on an architecture without them");

    memset(&mu, 0, sizeof(mu));
    mu.drop_tensor = "blk.1.attn_k_norm.weight";
    expect_refused(qwen3, &mu, "missing tensor 'blk.1.attn_k_norm.weight'",
                   "qwen3 without its k norm");

    memset(&mu, 0, sizeof(mu));
    mu.drop_tensor = "blk.0.post_ffw_norm.weight";
    expect_refused(gemma3, &mu, "missing tensor 'blk.0.post_ffw_norm.weight'",
                   "gemma3 without a post-FFN norm");

    memset(&mu, 0, sizeof(mu));
    mu.key = "gemma3.attention.sliding_window_pattern";
    mu.kind = 'u';
    mu.u = 0;
    expect_refused(gemma3, &mu, "sliding_window_pattern is 0",
                   "sliding-window pattern 0");

    memset(&mu, 0, sizeof(mu));
    mu.key = "gemma3.final_logit_softcapping";
    mu.kind = 'f';
    mu.f = -1.0f;
    expect_refused(gemma3, &mu, "final_logit_softcapping -1 invalid",
                   "negative softcap");

    return done_testing();
}
