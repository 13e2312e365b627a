/*
 * Llama-family transformer (llama, qwen2, mistral-style): hyper-parameters
 * from GGUF metadata, weights used in place from the mmap'd file, and a
 * batched forward pass over a paged KV cache.
 *
 * Numerics follow llama.cpp's CPU backend (default context): matmul inputs
 * converted to the weight's vec_dot type (see quant.h), K and V stored as
 * F16, attention as ggml's flash-attention kernel computes it (Q rounded to
 * F16, K.Q accumulated in F32/F64, online softmax in F32, V accumulated in
 * an F16 buffer), RMSNorm sums in double.
 */
#ifndef ST_MODEL_H
#define ST_MODEL_H

#include "starling/st_common.h"
#include "gguf/gguf.h"
#include "model/weight.h"
#include "model/kv_cache.h"

typedef enum { ST_ROPE_NORM = 0, ST_ROPE_NEOX = 1 } st_rope_type;

typedef struct {
    char         arch[32];
    uint32_t     n_vocab;
    uint32_t     n_ctx_train;
    uint32_t     n_embd;
    uint32_t     n_layer;
    uint32_t     n_head;
    uint32_t     n_head_kv;
    uint32_t     head_dim;     /* n_embd / n_head */
    uint32_t     n_ff;
    uint32_t     n_rot;        /* rope dimensions (<= head_dim) */
    float        rope_base;
    float        rope_freq_scale; /* 1 / linear scaling factor */
    float        rms_eps;
    st_rope_type rope_type;
    uint32_t     file_type;    /* general.file_type, 0xffffffff if absent */
} st_hparams;

typedef struct {
    const float *attn_norm;            /* (n_embd) */
    st_weight    wq, wk, wv, wo;       /* (n_embd -> n_head*hd), (n_embd -> n_kv*hd) x2, (n_head*hd -> n_embd) */
    const float *bq, *bk, *bv;         /* qwen2 biases or NULL */
    const float *ffn_norm;             /* (n_embd) */
    st_weight    w_gate, w_up, w_down; /* (n_embd -> n_ff) x2, (n_ff -> n_embd) */
} st_layer;

typedef struct st_model {
    st_gguf     *gguf;
    st_hparams   hp;
    st_weight    tok_embd;     /* (n_vocab rows of n_embd) */
    const float *output_norm;  /* (n_embd) */
    st_weight    output;       /* (n_embd -> n_vocab); == tok_embd if tied */
    st_layer    *layers;       /* n_layer */
    uint64_t     n_params;
    uint64_t     weight_bytes;
} st_model;

st_status st_model_load(st_model **out, const char *path, const char *sha256,
    st_error *err);
void st_model_free(st_model *m);
/* "F32", "Q8_0", "Q4_K_M"... from general.file_type (or the dominant
 * layer type when the key is absent). */
const char *st_model_quant_name(const st_model *m);

/* One row of a forward batch. */
typedef struct {
    int32_t  token;
    uint32_t pos;
    const st_kv_seq *seq;   /* block table the token's K/V go to and read from */
    int      want_logits;
} st_batch_entry;

#endif /* ST_MODEL_H */
