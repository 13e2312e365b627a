/*
 * Model loading: hyper-parameters from GGUF metadata and weight tensors
 * (validated shapes and types), used in place from the mapping.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* What the loader needs to know of each architecture: which optional
 * parts it may or must have, and the math around them (llama.cpp's graph
 * for that architecture, src/models/<arch>.cpp). */
typedef struct {
    const char   *name;
    st_rope_type  rope_type;
    unsigned      qkv_bias:1;     /* attn_{q,k,v}.bias allowed */
    unsigned      qk_norm:1;      /* attn_{q,k}_norm required */
    unsigned      post_norms:1;   /* post_attention_norm, post_ffw_norm */
    unsigned      rope_freqs:1;   /* rope_freqs.weight allowed */
    unsigned      swa:1;          /* attention.sliding_window read */
    unsigned      emb_sqrt:1;     /* embedding scaled by sqrt(n_embd) */
    st_act        act;
} st_arch_desc;

static const st_arch_desc st_archs[] = {
    /* name      rope          bias qkn post freqs swa sqrt act */
    { "llama",   ST_ROPE_NORM, 1,   0,  0,   1,    0,  0,   ST_ACT_SILU },
    { "mistral", ST_ROPE_NORM, 1,   0,  0,   1,    0,  0,   ST_ACT_SILU },
    { "qwen2",   ST_ROPE_NEOX, 1,   0,  0,   0,    0,  0,   ST_ACT_SILU },
    { "qwen3",   ST_ROPE_NEOX, 0,   1,  0,   0,    0,  0,   ST_ACT_SILU },
    { "gemma3",  ST_ROPE_NEOX, 0,   1,  1,   0,    1,  1,   ST_ACT_GELU_TANH },
};

#define ST_ARCHS_LIST  "llama, mistral, qwen2, qwen3, gemma3"


static const st_arch_desc *
st_arch_find(const char *arch)
{
    size_t i;

    for (i = 0; i < sizeof(st_archs) / sizeof(st_archs[0]); i++) {
        if (strcmp(st_archs[i].name, arch) == 0) {
            return &st_archs[i];
        }
    }
    return NULL;
}


/* Tensors the loader has taken: every tensor of the file must be one of
 * them, or the file is refused (a tensor that is not used would be math
 * silently left out). */
typedef struct {
    st_model               *m;
    const st_arch_desc     *arch;
    const st_gguf_tensor  **bound;     /* (n_tensors) */
    uint64_t                n_bound;
} st_loader;


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
st_bind(st_loader *ld, const char *name, uint64_t ne0, uint64_t ne1,
    int optional, const st_gguf_tensor **out, st_error *err)
{
    const st_gguf_tensor  *t;
    const st_type_traits  *tr;

    *out = NULL;
    t = st_gguf_find_tensor(ld->m->gguf, name);
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
    if (ld->n_bound < st_gguf_n_tensors(ld->m->gguf)) {
        ld->bound[ld->n_bound++] = t;
    }
    return ST_OK;
}


static st_status
st_bind_matrix(st_loader *ld, const char *name, uint64_t n_in, uint64_t n_out,
    st_weight *w, st_error *err)
{
    const st_gguf_tensor *t;
    st_status             rc;

    rc = st_bind(ld, name, n_in, n_out, 0, &t, err);
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
st_bind_vector(st_loader *ld, const char *name, uint64_t n, int optional,
    const float **v, st_error *err)
{
    const st_gguf_tensor *t;
    st_status             rc;

    rc = st_bind(ld, name, n, 0, optional, &t, err);
    *v = t ? t->data : NULL;
    return rc;
}


/* rope.scaling.*: linear scaling is a frequency factor; any other kind
 * changes the math in a way not implemented here, so the file is refused
 * naming the key. */
static st_status
st_load_rope_scaling(st_model *m, st_error *err)
{
    st_hparams *hp = &m->hp;
    const char *a = hp->arch;
    float       factor = 1.0f, attn = 1.0f;
    char        key[128];
    st_status   rc;

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
                "model: %s '%.*s' is not supported (supported: none, "
                "linear, and Llama-3 rope_freqs.weight)", key,
                (int) (t.len > 32 ? 32 : t.len), t.ptr);
        }
    }
    snprintf(key, sizeof(key), "%s.rope.scaling.factor", a);
    if (st_gguf_find(m->gguf, key) == NULL) {
        snprintf(key, sizeof(key), "%s.rope.scale_linear", a);  /* old name */
    }
    if (st_gguf_find(m->gguf, key) != NULL
        && (rc = st_gguf_get_f32(m->gguf, key, &factor, err)))
    {
        return rc;
    }
    if (factor == 0.0f) {
        factor = 1.0f;                      /* llama.cpp: 0 means none */
    }
    if (!(factor > 0.0f) || !isfinite(factor)) {
        return st_error_set(err, ST_ERR_FORMAT, "model: %s %g is not positive",
                            key, (double) factor);
    }
    hp->rope_freq_scale = 1.0f / factor;
    snprintf(key, sizeof(key), "%s.rope.scaling.attn_factor", a);
    if (st_gguf_find(m->gguf, key) != NULL
        && (rc = st_gguf_get_f32(m->gguf, key, &attn, err)))
    {
        return rc;
    }
    if (attn != 1.0f) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "model: %s %g is not supported (only 1)", key,
                            (double) attn);
    }
    return ST_OK;
}


static st_status
st_load_hparams(st_loader *ld, st_error *err)
{
    st_model             *m = ld->m;
    st_hparams           *hp = &m->hp;
    st_gguf_str           s;
    const st_gguf_value  *toks;
    st_status             rc;
    const char           *a;
    uint32_t              v_len;

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
    ld->arch = st_arch_find(hp->arch);
    if (ld->arch == NULL) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "model: architecture '%s' is not supported "
            "(supported: " ST_ARCHS_LIST ")", hp->arch);
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
        || hp->n_head % hp->n_head_kv != 0
        || hp->n_layer > 1024 || hp->n_embd > 65536 || hp->n_ff > 262144
        || hp->n_head > 1024)
    {
        return st_error_set(err, ST_ERR_FORMAT,
            "model: inconsistent hyper-parameters (n_embd %u, n_layer %u, "
            "n_head %u, n_head_kv %u, n_ff %u, n_ctx %u)", hp->n_embd,
            hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff,
            hp->n_ctx_train);
    }
    /* head size: attention.key_length (qwen3 and gemma3 may differ from
     * n_embd / n_head); V heads must be as long */
    if ((rc = st_get_u32_arch(m->gguf, a, "attention.key_length",
                              &hp->head_dim, 0, hp->n_embd / hp->n_head, err))
        || (rc = st_get_u32_arch(m->gguf, a, "attention.value_length",
                                 &v_len, 0, hp->head_dim, err)))
    {
        return rc;
    }
    if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0
        || (hp->head_dim == hp->n_embd / hp->n_head
            && hp->n_embd % hp->n_head != 0))
    {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: attention.key_length %u invalid",
                            hp->head_dim);
    }
    if (v_len != hp->head_dim) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "model: attention.value_length %u != key_length %u is not "
            "supported", v_len, hp->head_dim);
    }
    if ((rc = st_get_u32_arch(m->gguf, a, "rope.dimension_count", &hp->n_rot,
                              0, hp->head_dim, err)))
    {
        return rc;
    }
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0 || hp->n_rot == 0) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: rope.dimension_count %u invalid for head "
                            "dim %u", hp->n_rot, hp->head_dim);
    }
    if ((rc = st_get_f32_arch(m->gguf, a, "rope.freq_base", &hp->rope_base,
                              10000.0f, err))
        || (rc = st_get_f32_arch(m->gguf, a, "attention.layer_norm_rms_epsilon",
                                 &hp->rms_eps, 1e-5f, err))
        || (rc = st_load_rope_scaling(m, err)))
    {
        return rc;
    }
    if (!(hp->rope_base > 0.0f) || !(hp->rms_eps > 0.0f)) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: rope.freq_base / rms epsilon not positive");
    }
    hp->rope_type = ld->arch->rope_type;

    /* sliding-window attention (gemma3): every swa_pattern-th layer is
     * global, the others see the last n_swa positions and use their own
     * rope base */
    hp->n_swa = 0;
    hp->swa_pattern = 1;
    hp->rope_base_swa = 10000.0f;
    if (ld->arch->swa) {
        if ((rc = st_get_u32_arch(m->gguf, a, "attention.sliding_window",
                                  &hp->n_swa, 0, 0, err)))
        {
            return rc;
        }
        if (hp->n_swa > 0
            && ((rc = st_get_u32_arch(m->gguf, a,
                                      "attention.sliding_window_pattern",
                                      &hp->swa_pattern, 0, 6, err))
                || (rc = st_get_f32_arch(m->gguf, a, "rope.freq_base_swa",
                                         &hp->rope_base_swa, 10000.0f, err))))
        {
            return rc;
        }
        if (!(hp->rope_base_swa > 0.0f)) {
            return st_error_set(err, ST_ERR_FORMAT,
                                "model: rope.freq_base_swa not positive");
        }
        if ((rc = st_get_f32_arch(m->gguf, a, "final_logit_softcapping",
                                  &hp->logit_softcap, 0.0f, err)))
        {
            return rc;
        }
        if (hp->logit_softcap < 0.0f || !isfinite(hp->logit_softcap)) {
            return st_error_set(err, ST_ERR_FORMAT,
                                "model: final_logit_softcapping %g invalid",
                                (double) hp->logit_softcap);
        }
    }

    /* embedding pooling the model declares (checked when an embedding
     * is asked for, so that generation models load whatever it says) */
    if ((rc = st_get_u32_arch(m->gguf, a, "pooling_type", &hp->pooling_type,
                              0, ST_POOLING_ABSENT, err)))
    {
        return rc;
    }

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


/* The plan: what the architecture computes around the weights (see
 * model.h), from its description and the hyper-parameters. */
static st_status
st_make_plan(st_loader *ld, st_error *err)
{
    st_model          *m = ld->m;
    const st_hparams  *hp = &m->hp;
    st_plan           *p = &m->plan;
    uint32_t           l, i;

    p->act = ld->arch->act;
    p->emb_scale = ld->arch->emb_sqrt ? sqrtf((float) hp->n_embd) : 1.0f;
    p->attn_q_scale = 0.0f;
    if (strcmp(hp->arch, "gemma3") == 0) {
        /* Q scaled before attention (kernel scale 1): 1/sqrt(head size),
         * but 1/sqrt(n_embd / n_head) for the 62-layer (27B) model */
        p->attn_q_scale = hp->n_layer == 62
            ? 1.0f / sqrtf((float) (hp->n_embd / hp->n_head))
            : 1.0f / sqrtf((float) hp->head_dim);
    }
    p->logit_softcap = hp->logit_softcap;

    p->n_rope_sets = hp->n_swa > 0 ? 2 : 1;
    p->rope_base[0] = hp->rope_base;
    p->rope_freq_scale[0] = hp->rope_freq_scale;
    p->rope_base[1] = hp->rope_base_swa;
    p->rope_freq_scale[1] = 1.0f;
    for (i = 0; i < ST_ROPE_SETS_MAX; i++) {
        p->rope_theta_scale[i] = powf(p->rope_base[i],
                                      -2.0f / (float) hp->n_rot);
    }
    if (p->rope_freqs != NULL) {
        for (i = 0; i < hp->n_rot / 2; i++) {
            if (!(p->rope_freqs[i] > 0.0f) || !isfinite(p->rope_freqs[i])) {
                return st_error_set(err, ST_ERR_FORMAT,
                                    "model: rope_freqs.weight[%u] = %g is not "
                                    "a positive factor", i,
                                    (double) p->rope_freqs[i]);
            }
        }
    }
    if (hp->n_swa > 0 && hp->swa_pattern == 0) {
        return st_error_set(err, ST_ERR_FORMAT,
                            "model: attention.sliding_window_pattern is 0");
    }
    for (l = 0; l < hp->n_layer; l++) {
        st_layer_plan *lp = &m->layers[l].plan;
        int            local = hp->n_swa > 0
                               && l % hp->swa_pattern < hp->swa_pattern - 1;

        lp->window_tokens = local ? hp->n_swa : 0;
        lp->rope_set = local ? 1 : 0;
    }
    return ST_OK;
}


static st_status
st_load_tensors(st_loader *ld, st_error *err)
{
    st_model    *m = ld->m;
    st_hparams  *hp = &m->hp;
    uint32_t     l, qdim, kvdim, hd;
    char         name[96];
    st_status    rc;
    uint64_t     i, j, n_t;
    int          bias = ld->arch->qkv_bias ? 1 : -1;
    int          qkn = ld->arch->qk_norm ? 0 : -1;
    int          post = ld->arch->post_norms ? 0 : -1;

    hd = hp->head_dim;
    qdim = hp->n_head * hd;
    kvdim = hp->n_head_kv * hd;
    n_t = st_gguf_n_tensors(m->gguf);
    ld->bound = calloc(n_t ? n_t : 1, sizeof(*ld->bound));
    m->layers = calloc(hp->n_layer, sizeof(st_layer));
    if (ld->bound == NULL || m->layers == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "model: out of memory");
    }

    if ((rc = st_bind_matrix(ld, "token_embd.weight", hp->n_embd, hp->n_vocab,
                             &m->tok_embd, err))
        || (rc = st_bind_vector(ld, "output_norm.weight", hp->n_embd, 0,
                                &m->output_norm, err)))
    {
        return rc;
    }
    if (st_gguf_find_tensor(m->gguf, "output.weight") != NULL) {
        rc = st_bind_matrix(ld, "output.weight", hp->n_embd, hp->n_vocab,
                            &m->output, err);
        if (rc != ST_OK) {
            return rc;
        }
    } else {
        m->output = m->tok_embd;   /* tied embeddings */
    }
    /* Llama 3.1+ frequency factors (the rope.scaling "llama3" type) */
    if (ld->arch->rope_freqs
        && (rc = st_bind_vector(ld, "rope_freqs.weight", hp->n_rot / 2, 1,
                                &m->plan.rope_freqs, err)))
    {
        return rc;
    }

    for (l = 0; l < hp->n_layer; l++) {
        st_layer *L = &m->layers[l];

#define ST_NAME(suffix) (snprintf(name, sizeof(name), "blk.%u." suffix, l), name)
/* a part the architecture has: required (0), optional (1), none (-1) */
#define ST_PART(want, suffix, n, ptr)                                        \
        ((want) < 0 ? ((*(ptr) = NULL), ST_OK)                               \
         : st_bind_vector(ld, ST_NAME(suffix), (n), (want), (ptr), err))
        if ((rc = st_bind_vector(ld, ST_NAME("attn_norm.weight"), hp->n_embd,
                                 0, &L->attn_norm, err))
            || (rc = st_bind_matrix(ld, ST_NAME("attn_q.weight"), hp->n_embd,
                                    qdim, &L->wq, err))
            || (rc = st_bind_matrix(ld, ST_NAME("attn_k.weight"), hp->n_embd,
                                    kvdim, &L->wk, err))
            || (rc = st_bind_matrix(ld, ST_NAME("attn_v.weight"), hp->n_embd,
                                    kvdim, &L->wv, err))
            || (rc = st_bind_matrix(ld, ST_NAME("attn_output.weight"), qdim,
                                    hp->n_embd, &L->wo, err))
            || (rc = ST_PART(bias, "attn_q.bias", qdim, &L->bq))
            || (rc = ST_PART(bias, "attn_k.bias", kvdim, &L->bk))
            || (rc = ST_PART(bias, "attn_v.bias", kvdim, &L->bv))
            || (rc = ST_PART(qkn, "attn_q_norm.weight", hd, &L->q_norm))
            || (rc = ST_PART(qkn, "attn_k_norm.weight", hd, &L->k_norm))
            || (rc = ST_PART(post, "post_attention_norm.weight", hp->n_embd,
                             &L->post_attn_norm))
            || (rc = st_bind_vector(ld, ST_NAME("ffn_norm.weight"), hp->n_embd,
                                    0, &L->ffn_norm, err))
            || (rc = st_bind_matrix(ld, ST_NAME("ffn_gate.weight"), hp->n_embd,
                                    hp->n_ff, &L->w_gate, err))
            || (rc = st_bind_matrix(ld, ST_NAME("ffn_up.weight"), hp->n_embd,
                                    hp->n_ff, &L->w_up, err))
            || (rc = st_bind_matrix(ld, ST_NAME("ffn_down.weight"), hp->n_ff,
                                    hp->n_embd, &L->w_down, err))
            || (rc = ST_PART(post, "post_ffw_norm.weight", hp->n_embd,
                             &L->post_ffn_norm)))
        {
            return rc;
        }
#undef ST_PART
#undef ST_NAME
    }

    /* every tensor of the file must have been taken */
    for (i = 0; i < n_t; i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(m->gguf, i);

        for (j = 0; j < ld->n_bound && ld->bound[j] != t; j++) {
            /* search */
        }
        if (j == ld->n_bound) {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "model: tensor '%s' is not supported for "
                                "architecture %s", t->name, hp->arch);
        }
        m->weight_bytes += t->nbytes;
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return st_make_plan(ld, err);
}


st_status
st_model_load(st_model **out, const char *path, const char *sha256,
    st_error *err)
{
    st_model   *m;
    st_loader   ld;
    st_status   rc;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "model: out of memory");
    }
    memset(&ld, 0, sizeof(ld));
    ld.m = m;
    rc = st_gguf_open(&m->gguf, path, sha256, err);
    if (rc == ST_OK) {
        rc = st_load_hparams(&ld, err);
    }
    if (rc == ST_OK) {
        rc = st_load_tensors(&ld, err);
    }
    free(ld.bound);
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
