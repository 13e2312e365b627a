/*
 * Decoder-only transformers (llama, qwen2, mistral-style, qwen3, gemma3):
 * hyper-parameters from GGUF metadata, weights used in place from the
 * mmap'd file, and one description of the architecture (st_plan and the
 * per-layer st_layer_plan) that every backend's forward pass executes.
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

/* Gated FFN activation: act(gate) * up. */
typedef enum {
    ST_ACT_SILU = 0,        /* SwiGLU: g / (1 + exp(-g)) */
    ST_ACT_GELU_TANH = 1    /* GeGLU, ggml's tanh GELU looked up on F16(g) */
} st_act;

/* Most RoPE frequency sets one model uses (gemma3: global and local). */
#define ST_ROPE_SETS_MAX  2

typedef struct {
    char         arch[32];
    uint32_t     n_vocab;
    uint32_t     n_ctx_train;
    uint32_t     n_embd;
    uint32_t     n_layer;
    uint32_t     n_head;
    uint32_t     n_head_kv;
    uint32_t     head_dim;     /* attention.key_length, n_embd / n_head by
                                  default (== value_length) */
    uint32_t     n_ff;
    uint32_t     n_rot;        /* rope dimensions (<= head_dim) */
    float        rope_base;
    float        rope_freq_scale; /* 1 / linear scaling factor */
    float        rms_eps;
    st_rope_type rope_type;
    uint32_t     file_type;    /* general.file_type, 0xffffffff if absent */
    uint32_t     n_swa;        /* attention.sliding_window, 0 = none */
    uint32_t     swa_pattern;  /* every swa_pattern-th layer is global */
    float        rope_base_swa; /* rope base of sliding-window layers */
    float        logit_softcap; /* final_logit_softcapping, 0 = none */
    uint32_t     pooling_type; /* <arch>.pooling_type (1 mean, 2 cls,
                                  3 last...), ST_POOLING_ABSENT if absent */
} st_hparams;

#define ST_POOLING_ABSENT 0xffffffffu

/*
 * What one layer computes, beyond the weights it has (a NULL norm or bias
 * in st_layer is a step the layer skips):
 *
 *   h   = attn_norm(x)
 *   q,k,v = wq h + bq, wk h + bk, wv h + bv          (biases if present)
 *   q,k = q_norm(q), k_norm(k) per head               (if present)
 *   q,k = rope(q, k) with rope set rope_set           (NORM or NEOX)
 *   q   = q * attn_q_scale    (plan; then kernel scale 1, else 1/sqrt(hd))
 *   a   = attention over keys at p0 > pos - window_tokens (0: all p0 <= pos)
 *   x   = x + post_attn_norm(wo a)                    (norm if present)
 *   x   = x + post_ffn_norm(w_down (act(w_gate h') * (w_up h'))),
 *         h' = ffn_norm(x)
 */
typedef struct {
    uint32_t     window_tokens;  /* sliding window, 0 = full causal */
    uint32_t     rope_set;       /* index into st_plan.rope_* */
} st_layer_plan;

/* What the whole model computes around the layers. */
typedef struct {
    st_act       act;
    float        emb_scale;      /* x = embedding * emb_scale (1: none) */
    float        attn_q_scale;   /* 0: scale 1/sqrt(hd) in the kernel */
    float        logit_softcap;  /* logits = c tanh(logits / c); 0: none */
    const float *rope_freqs;     /* (n_rot / 2) frequency divisors or NULL */
    uint32_t     n_rope_sets;
    float        rope_base[ST_ROPE_SETS_MAX];
    float        rope_theta_scale[ST_ROPE_SETS_MAX]; /* base^(-2/n_rot) */
    float        rope_freq_scale[ST_ROPE_SETS_MAX];  /* 1 / linear factor */
} st_plan;

typedef struct {
    st_layer_plan plan;
    const float *attn_norm;            /* (n_embd) */
    st_weight    wq, wk, wv, wo;       /* (n_embd -> n_head*hd), (n_embd -> n_kv*hd) x2, (n_head*hd -> n_embd) */
    const float *bq, *bk, *bv;         /* qwen2 biases or NULL */
    const float *q_norm, *k_norm;      /* (hd) per-head RMSNorm or NULL */
    const float *post_attn_norm;       /* (n_embd) gemma3, or NULL */
    const float *ffn_norm;             /* (n_embd) */
    st_weight    w_gate, w_up, w_down; /* (n_embd -> n_ff) x2, (n_ff -> n_embd) */
    const float *post_ffn_norm;        /* (n_embd) gemma3, or NULL */
} st_layer;

typedef struct st_model {
    st_gguf     *gguf;
    st_hparams   hp;
    st_weight    tok_embd;     /* (n_vocab rows of n_embd) */
    const float *output_norm;  /* (n_embd) */
    st_weight    output;       /* (n_embd -> n_vocab); == tok_embd if tied */
    st_layer    *layers;       /* n_layer */
    st_plan      plan;
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
    int      want_hidden; /* return its final-normed hidden state
                             (backend.h: hidden) */
} st_batch_entry;

#endif /* ST_MODEL_H */
