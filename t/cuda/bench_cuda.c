/*
 * Decode / prefill throughput of the CUDA backend (make test-gpu). Models:
 * $ST_BENCH_MODEL, or the synthetic and shipped ones that exist. Prints
 * tokens/s and, for decode at batch 1, the weight bytes streamed per token
 * against the device's time per token (a bandwidth figure to compare with
 * the H100's 3.35 TB/s; tiny models are launch-bound, not bandwidth-bound).
 */
#include "cuda_test.h"
#include "backend/backend.h"
#include "backend/cuda/st_cuda_backend.h"

#include <time.h>

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec * 1e-9;
}


static void
bench(const char *path)
{
    st_model      *m = NULL;
    st_backend    *b = NULL;
    st_error       err = { 0 };
    st_kv_cache    kv;
    st_kv_seq      seq[16];
    st_batch_entry batch[512];
    uint32_t       n_pre = 512, steps = 128, i, s, n_ctx, bs;
    float         *logits;
    double         t0, t;

    memset(seq, 0, sizeof(seq));
    if (st_model_load(&m, path, NULL, &err) != ST_OK) {
        printf("# %s: %s\n", path, err.msg);
        return;
    }
    n_ctx = m->hp.n_ctx_train;
    if (n_pre + steps > n_ctx) {
        n_pre = n_ctx / 2;
        steps = n_ctx / 4;
    }
    {
        uint32_t       per_seq = (n_pre + steps) / 16 + 2;
        st_kv_geometry geo = { m->hp.n_layer,
                               m->hp.n_head_kv * m->hp.head_dim, 16,
                               per_seq * 16 };
        if (st_backend_cuda_create(&b, m, 512, &geo, 0, &err) != ST_OK
            || st_kv_cache_init(&kv, geo.n_layer, geo.kv_dim, 16,
                                geo.n_blocks, 0, &err) != ST_OK)
        {
            printf("# %s: %s\n", path, err.msg);
            st_model_free(m);
            if (b) {
                b->free(b);
            }
            return;
        }
    }
    logits = malloc(sizeof(float) * m->hp.n_vocab * 16);
    printf("# %s on %s: weights %.1f MB in VRAM\n", path, b->device,
           m->weight_bytes / 1e6);

    /* prefill: one batch of n_pre tokens */
    st_kv_seq_reserve(&kv, &seq[0], n_pre + steps);
    for (i = 0; i < n_pre; i++) {
        batch[i].token = (int32_t) (1 + i % (m->hp.n_vocab - 1));
        batch[i].pos = i;
        batch[i].seq = &seq[0];
        batch[i].want_logits = i + 1 == n_pre;
    }
    b->run(b, &kv, batch, n_pre, logits, &err);      /* warm-up */
    t0 = now_s();
    if (b->run(b, &kv, batch, n_pre, logits, &err) != ST_OK) {
        printf("# prefill: %s\n", err.msg);
    }
    t = now_s() - t0;
    printf("prefill %u tokens: %.1f ms, %.0f tokens/s\n", n_pre, t * 1e3,
           n_pre / t);

    /* decode, batch 1 (one untimed step first: it captures the graph) */
    batch[0].token = 1;
    batch[0].pos = n_pre;
    batch[0].seq = &seq[0];
    batch[0].want_logits = 1;
    b->run(b, &kv, batch, 1, logits, &err);
    t0 = now_s();
    for (s = 0; s < steps; s++) {
        batch[0].token = 1 + s;
        batch[0].pos = n_pre + s;
        batch[0].seq = &seq[0];
        batch[0].want_logits = 1;
        if (b->run(b, &kv, batch, 1, logits, &err) != ST_OK) {
            printf("# decode: %s\n", err.msg);
            break;
        }
    }
    t = now_s() - t0;
    printf("decode batch 1: %.3f ms/token, %.0f tokens/s, weights "
           "streamed at %.0f GB/s\n", t * 1e3 / steps, steps / t,
           (double) m->weight_bytes * steps / t / 1e9);

    /* decode, batches of 8 (one weight pass, a graph) and 16 (cuBLAS):
     * sequences at the same, shallow depth; seq 0 rewrites its first
     * positions: timing only */
    for (i = 1; i < 16; i++) {
        st_kv_seq_reserve(&kv, &seq[i], (n_pre + steps) / 16);
    }
    bs = 8;
    for (s = 0; s <= steps / 16; s++) {
        if (s == 1) {
            t0 = now_s();          /* step 0 captured the graph */
        }
        for (i = 0; i < bs; i++) {
            batch[i].token = 1 + s + i;
            batch[i].pos = s;
            batch[i].seq = &seq[i];
            batch[i].want_logits = 1;
        }
        if (b->run(b, &kv, batch, bs, logits, &err) != ST_OK) {
            printf("# decode8: %s\n", err.msg);
            break;
        }
    }
    t = now_s() - t0;
    printf("decode batch 8: %.3f ms/step, %.0f tokens/s\n",
           t * 1e3 / (steps / 16), bs * (steps / 16) / t);
    bs = 16;
    t0 = now_s();
    for (s = 0; s < steps / 16; s++) {
        for (i = 0; i < bs; i++) {
            batch[i].token = 1 + s + i;
            batch[i].pos = s;
            batch[i].seq = &seq[i];
            batch[i].want_logits = 1;
        }
        if (b->run(b, &kv, batch, bs, logits, &err) != ST_OK) {
            printf("# decode16: %s\n", err.msg);
            break;
        }
    }
    t = now_s() - t0;
    printf("decode batch 16: %.3f ms/step, %.0f tokens/s\n",
           t * 1e3 / (steps / 16), bs * (steps / 16) / t);

    {
        uint64_t cap = 0, rep = 0;
        int      on = st_cuda_backend_graph_stats(b, &cap, &rep);
        printf("graphs %s: %llu captures, %llu replays\n",
               on == 1 ? "on" : "off (ST_CUDA_GRAPHS=0 or unsupported)",
               (unsigned long long) cap, (unsigned long long) rep);
    }
    free(logits);
    b->free(b);
    st_kv_cache_free(&kv);
    st_model_free(m);
}


/* With decode graphs (the default), then without, unless the caller
 * chose with ST_CUDA_GRAPHS. */
static void
bench_both(const char *path)
{
    if (getenv("ST_CUDA_GRAPHS") != NULL) {
        bench(path);
        return;
    }
    bench(path);
    setenv("ST_CUDA_GRAPHS", "0", 1);
    bench(path);
    unsetenv("ST_CUDA_GRAPHS");
}


int
main(void)
{
    static const char *names[] = {
        "models/synthetic/synth-llama-Q4_K_M.gguf",
        "models/synthetic/synth-qwen2-F16-embQ4_0.gguf",
        "models/synthetic/synth-llama-F32.gguf",
    };
    const char *env = getenv("ST_BENCH_MODEL");
    char        path[1024];
    size_t      i;

    if (env != NULL) {
        bench(env);
        return 0;
    }
    snprintf(path, sizeof(path), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    bench_both(path);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        FILE *fp;
        snprintf(path, sizeof(path), "%s/%s", tap_shared_dir(), names[i]);
        if ((fp = fopen(path, "rb")) != NULL) {
            fclose(fp);
            bench_both(path);
        }
    }
    return 0;
}
