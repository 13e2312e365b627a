/*
 * Model loading: hyper-parameters from GGUF metadata and weight tensors
 * (validated shapes and types), used in place from the mapping.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int
st_arch_supported(const char *arch)
{
    return strcmp(arch, "llama") == 0 || strcmp(arch, "qwen2") == 0
           || strcmp(arch, "mistral") == 0;
}


static st_status
st_get_u32_arch(const st_gguf *g, const char *arch, const char *suffix,
    uint32_t *out, int required, uint32_t dflt, st_error *err)
{
    char key[128];

    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    if (st_gguf_find(g, key) == NULL) {
        if (required) {
            return st_error_set(err, ST_ERR_FORMAT,
                                "model: missing metadata key '%s'", key);
        }
        *out = dflt;
        return ST_OK;
    }
    return st_gguf_get_u32(g, key, out, err);
}


static st_status
st_get_f32_arch(const st_gguf *g, const char *arch, const char *suffix,
    float *out, float dflt, st_error *err)
{
    char key[128];

    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    if (st_gguf_find(g, key) == NULL) {
        *out = dflt;
        return ST_OK;
    }
    return st_gguf_get_f32(g, key, out, err);
}


/* Looks up a tensor, checks its shape (ne0 x ne1; ne1 == 0 for vectors)
 * and that its type is one the kernels support. */
static st_status
st_bind(const st_model *m, const char *name, uint64_t ne0, uint64_t ne1,
    int optional, const st_gguf_tensor **out, st_error *err)
{
    const st_gguf_tensor  *t;
    const st_type_traits  *tr;

    *out = NULL;
    t = st_gguf_find_tensor(m->gguf, name);
    if (t == NULL) {
        if (optional) {
            return ST_OK;
        }
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: missing tensor '%s'", name);
    }
    if (t->ne[0] != ne0 || (ne1 == 0 ? t->n_dims != 1 : t->ne[1] != ne1)
        || t->ne[2] != 1 || t->ne[3] != 1)
    {
        return st_error_set(err, ST_ERR_FORMAT,
            "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], "
            "expected [%llu, %llu]", name,
            (unsigned long long) t->ne[0], (unsigned long long) t->ne[1],
            (unsigned long long) t->ne[2], (unsigned long long) t->ne[3],
            (unsigned long long) ne0, (unsigned long long) (ne1 ? ne1 : 1));
    }
    tr = st_type_traits_get(t->type);
    if (tr == NULL || !tr->supported) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "model: tensor '%s' has type %s, not supported",
                            name, tr ? tr->name : "unknown");
    }
    if (ne1 == 0 && t->type != ST_TYPE_F32) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "model: vector '%s' must be F32, is %s",
                            name, tr->name);
    }
    *out = t;
    return ST_OK;
}


static st_status
st_bind_matrix(st_model *m, const char *name, uint64_t n_in, uint64_t n_out,
    st_weight *w, st_error *err)
{
    const st_gguf_tensor *t;
    st_status             rc;

    rc = st_bind(m, name, n_in, n_out, 0, &t, err);
    if (rc != ST_OK) {
        return rc;
    }
    w->data = t->data;
    w->type = t->type;
    w->n_in = (int64_t) n_in;
    w->n_out = (int64_t) n_out;
    w->row_bytes = st_row_bytes(t->type, n_in);
    return ST_OK;
}


static st_status
st_bind_vector(st_model *m, const char *name, uint64_t n, int optional,
    const float **v, st_error *err)
{
    const st_gguf_tensor *t;
    st_status             rc;

    rc = st_bind(m, name, n, 0, optional, &t, err);
    *v = t ? t->data : NULL;
    return rc;
}


static st_status
st_load_hparams(st_model *m, st_error *err)
{
    st_hparams           *hp = &m->hp;
    st_gguf_str           s;
    const st_gguf_value  *toks;
    st_status             rc;
    const char           *a;

    rc = st_gguf_get_str(m->gguf, "general.architecture", &s, err);
    if (rc != ST_OK) {
        return rc;
    }
    if (s.len == 0 || s.len >= sizeof(hp->arch)) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: bad general.architecture");
    }
    memcpy(hp->arch, s.ptr, s.len);
    hp->arch[s.len] = '\0';
    if (!st_arch_supported(hp->arch)) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "model: architecture '%s' is not supported "
            "(supported: llama, qwen2, mistral)", hp->arch);
    }
    a = hp->arch;

    if ((rc = st_get_u32_arch(m->gguf, a, "embedding_length", &hp->n_embd, 1,
                              0, err))
        || (rc = st_get_u32_arch(m->gguf, a, "block_count", &hp->n_layer, 1,
                                 0, err))
        || (rc = st_get_u32_arch(m->gguf, a, "feed_forward_length", &hp->n_ff,
                                 1, 0, err))
        || (rc = st_get_u32_arch(m->gguf, a, "attention.head_count",
                                 &hp->n_head, 1, 0, err))
        || (rc = st_get_u32_arch(m->gguf, a, "context_length",
                                 &hp->n_ctx_train, 0, 2048, err)))
    {
        return rc;
    }
    if ((rc = st_get_u32_arch(m->gguf, a, "attention.head_count_kv",
                              &hp->n_head_kv, 0, hp->n_head, err)))
    {
        return rc;
    }
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0
        || hp->n_head_kv == 0 || hp->n_ff == 0 || hp->n_ctx_train == 0
        || hp->n_embd % hp->n_head != 0 || hp->n_head % hp->n_head_kv != 0
        || hp->n_layer > 1024 || hp->n_embd > 65536 || hp->n_ff > 262144)
    {
        return st_error_set(err, ST_ERR_FORMAT,
            "model: inconsistent hyper-parameters (n_embd %u, n_layer %u, "
            "n_head %u, n_head_kv %u, n_ff %u, n_ctx %u)", hp->n_embd,
            hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff,
            hp->n_ctx_train);
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = st_get_u32_arch(m->gguf, a, "rope.dimension_count", &hp->n_rot,
                              0, hp->head_dim, err)))
    {
        return rc;
    }
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: rope.dimension_count %u invalid for head "
                            "dim %u", hp->n_rot, hp->head_dim);
    }
    if ((rc = st_get_f32_arch(m->gguf, a, "rope.freq_base", &hp->rope_base,
                              10000.0f, err))
        || (rc = st_get_f32_arch(m->gguf, a, "attention.layer_norm_rms_epsilon",
                                 &hp->rms_eps, 1e-5f, err)))
    {
        return rc;
    }
    {
        float factor = 1.0f;
        char  key[128];

        /* linear rope scaling (rope.scaling.type "linear") */
        snprintf(key, sizeof(key), "%s.rope.scaling.factor", a);
        if (st_gguf_find(m->gguf, key) != NULL
            && (rc = st_gguf_get_f32(m->gguf, key, &factor, err)))
        {
            return rc;
        }
        snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
        if (st_gguf_find(m->gguf, key) != NULL) {
            st_gguf_str t;
            if ((rc = st_gguf_get_str(m->gguf, key, &t, err))) {
                return rc;
            }
            if (!(t.len == 4 && memcmp(t.ptr, "none", 4) == 0)
                && !(t.len == 6 && memcmp(t.ptr, "linear", 6) == 0))
            {
                return st_error_set(err, ST_ERR_UNSUPPORTED,
                    "model: rope scaling type '%.*s' is not supported",
                    (int) (t.len > 32 ? 32 : t.len), t.ptr);
            }
        }
        if (!(factor > 0.0f)) {
            factor = 1.0f;
        }
        hp->rope_freq_scale = 1.0f / factor;
    }
    if (!(hp->rope_base > 0.0f) || !(hp->rms_eps > 0.0f)) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: rope.freq_base / rms epsilon not positive");
    }
    /* llama.cpp: qwen2 uses NEOX-style rotation (halves), llama adjacent pairs */
    hp->rope_type = strcmp(a, "qwen2") == 0 ? ST_ROPE_NEOX : ST_ROPE_NORM;

    hp->file_type = 0xffffffffu;
    if (st_gguf_find(m->gguf, "general.file_type") != NULL
        && (rc = st_gguf_get_u32(m->gguf, "general.file_type",
                                 &hp->file_type, err)))
    {
        return rc;
    }

    rc = st_gguf_get_arr(m->gguf, "tokenizer.ggml.tokens", ST_GGUF_STRING,
                         &toks, err);
    if (rc != ST_OK) {
        return rc;
    }
    if (toks->arr_n == 0 || toks->arr_n > (1u << 24)) {
        return st_error_set(err, ST_ERR_FORMAT, "model: bad vocabulary size %llu",
                            (unsigned long long) toks->arr_n);
    }
    hp->n_vocab = (uint32_t) toks->arr_n;
    return ST_OK;
}


static st_status
st_load_tensors(st_model *m, st_error *err)
{
    st_hparams  *hp = &m->hp;
    uint32_t     l, qdim, kvdim;
    char         name[96];
    st_status    rc;
    uint64_t     i;

    qdim = hp->n_head * hp->head_dim;
    kvdim = hp->n_head_kv * hp->head_dim;

    if ((rc = st_bind_matrix(m, "token_embd.weight", hp->n_embd, hp->n_vocab,
                             &m->tok_embd, err))
        || (rc = st_bind_vector(m, "output_norm.weight", hp->n_embd, 0,
                                &m->output_norm, err)))
    {
        return rc;
    }
    if (st_gguf_find_tensor(m->gguf, "output.weight") != NULL) {
        rc = st_bind_matrix(m, "output.weight", hp->n_embd, hp->n_vocab,
                            &m->output, err);
        if (rc != ST_OK) {
            return rc;
        }
    } else {
        m->output = m->tok_embd;   /* tied embeddings */
    }

    m->layers = calloc(hp->n_layer, sizeof(st_layer));
    if (m->layers == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "model: out of memory");
    }
    for (l = 0; l < hp->n_layer; l++) {
        st_layer *L = &m->layers[l];

#define ST_NAME(suffix) (snprintf(name, sizeof(name), "blk.%u." suffix, l), name)
        if ((rc = st_bind_vector(m, ST_NAME("attn_norm.weight"), hp->n_embd, 0,
                                 &L->attn_norm, err))
            || (rc = st_bind_matrix(m, ST_NAME("attn_q.weight"), hp->n_embd,
                                    qdim, &L->wq, err))
            || (rc = st_bind_matrix(m, ST_NAME("attn_k.weight"), hp->n_embd,
                                    kvdim, &L->wk, err))
            || (rc = st_bind_matrix(m, ST_NAME("attn_v.weight"), hp->n_embd,
                                    kvdim, &L->wv, err))
            || (rc = st_bind_matrix(m, ST_NAME("attn_output.weight"), qdim,
                                    hp->n_embd, &L->wo, err))
            || (rc = st_bind_vector(m, ST_NAME("attn_q.bias"), qdim, 1,
                                    &L->bq, err))
            || (rc = st_bind_vector(m, ST_NAME("attn_k.bias"), kvdim, 1,
                                    &L->bk, err))
            || (rc = st_bind_vector(m, ST_NAME("attn_v.bias"), kvdim, 1,
                                    &L->bv, err))
            || (rc = st_bind_vector(m, ST_NAME("ffn_norm.weight"), hp->n_embd,
                                    0, &L->ffn_norm, err))
            || (rc = st_bind_matrix(m, ST_NAME("ffn_gate.weight"), hp->n_embd,
                                    hp->n_ff, &L->w_gate, err))
            || (rc = st_bind_matrix(m, ST_NAME("ffn_up.weight"), hp->n_embd,
                                    hp->n_ff, &L->w_up, err))
            || (rc = st_bind_matrix(m, ST_NAME("ffn_down.weight"), hp->n_ff,
                                    hp->n_embd, &L->w_down, err)))
        {
            return rc;
        }
#undef ST_NAME
    }

    for (i = 0; i < st_gguf_n_tensors(m->gguf); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(m->gguf, i);
        m->weight_bytes += t->nbytes;
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return ST_OK;
}


st_status
st_model_load(st_model **out, const char *path, const char *sha256,
    st_error *err)
{
    st_model  *m;
    st_status  rc;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "model: out of memory");
    }
    rc = st_gguf_open(&m->gguf, path, sha256, err);
    if (rc == ST_OK) {
        rc = st_load_hparams(m, err);
    }
    if (rc == ST_OK) {
        rc = st_load_tensors(m, err);
    }
    if (rc != ST_OK) {
        st_model_free(m);
        return rc;
    }
    *out = m;
    return ST_OK;
}


void
st_model_free(st_model *m)
{
    if (m == NULL) {
        return;
    }
    free(m->layers);
    st_gguf_close(m->gguf);
    free(m);
}


const char *
st_model_quant_name(const st_model *m)
{
    switch (m->hp.file_type) {
    case 0:  return "F32";
    case 1:  return "F16";
    case 2:  return "Q4_0";
    case 3:  return "Q4_1";
    case 7:  return "Q8_0";
    case 8:  return "Q5_0";
    case 9:  return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: break;
    }
    /* no (known) file type: name the type of the first layer's FFN */
    return m->hp.n_layer > 0
           ? st_type_traits_get(m->layers[0].w_gate.type)->name : "unknown";
}
