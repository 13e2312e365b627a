/*
 * Compute backends: one interface to run a batched forward pass, whatever
 * executes it. The engine owns scheduling, the KV block tables and
 * sampling; a backend owns the weights' home (host mmap or device memory),
 * the KV storage (host arrays in st_kv_cache, or device memory with the
 * same block geometry) and the kernels.
 */
#ifndef ST_BACKEND_H
#define ST_BACKEND_H

#include "base/threadpool.h"
#include "model/model.h"

typedef struct st_backend st_backend;

struct st_backend {
    const char  *name;                 /* "cpu", "cuda" */
    char         device[128];          /* "AVX-512 (2 threads)", "NVIDIA H100 ..." */
    uint64_t     device_bytes;         /* device memory used: weights + KV (0 on CPU) */
    void        *impl;

    /* Same contract as st_forward_run (model.h): n rows, logits for rows
     * with want_logits, in batch order, (n_want, n_vocab) on the host. */
    st_status  (*run)(st_backend *b, st_kv_cache *kv,
                      const st_batch_entry *batch, uint32_t n, float *logits,
                      st_error *err);
    /* Right after a successful run() of the same batch: the final hidden
     * state, after the output norm, of each row with want_hidden, in
     * batch order, (n_want_hidden, n_embd) on the host (embeddings). */
    st_status  (*hidden)(st_backend *b, const st_batch_entry *batch,
                         uint32_t n, float *out, st_error *err);
    void       (*free)(st_backend *b);
    /* Extra fields for /health (JSON object members without braces, e.g.
     * "\"device_name\":\"...\",\"compute_capability\":\"9.0\""), or NULL. */
    const char *(*health_json)(st_backend *b);
};

/* The KV geometry a backend must provide storage for. */
typedef struct {
    uint32_t n_layer;
    uint32_t kv_dim;          /* n_head_kv * head_dim */
    uint32_t block_tokens;
    uint32_t n_blocks;
} st_kv_geometry;

st_status st_backend_cpu_create(st_backend **out, const st_model *m,
    uint32_t max_tokens, st_threadpool *tp, st_error *err);

/* CUDA backend (backend/cuda/): device = -1 picks worker_index mod
 * device_count. Weights go to VRAM once; no host fallback. Linked only
 * into programs built with the CUDA registry (backend/registry.c). */
st_status st_backend_cuda_create(st_backend **out, const st_model *m,
    uint32_t max_tokens, const st_kv_geometry *kv, int device,
    st_error *err);

/* Number of usable CUDA devices (0 when none) and, when 0, why (driver
 * missing, no device...). */
int st_backend_cuda_device_count(char *why, size_t why_len);

#endif /* ST_BACKEND_H */
