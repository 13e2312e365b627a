/*
 * CUDA backend: weight type checks and the upload of every weight into
 * one device arena (sized in a first pass, filled in a second).
 */
#include "backend/cuda/st_cuda_internal.h"

/* ---- weights -------------------------------------------------------- */

st_status
st_cuda_check_weight(const st_weight *w, const char *name, st_error *err)
{
    uint32_t bs;

    if (!st_cuda_type_supported((int) w->type)) {
        const st_type_traits *tr = st_type_traits_get(w->type);
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s has type %s (ggml type %u), "
                            "which the CUDA backend does not support", name,
                            tr ? tr->name : "unknown", (unsigned) w->type);
    }
    if (w->n_in > UINT32_MAX || w->n_out > UINT32_MAX) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s is too large", name);
    }
    /* the kernels index whole blocks of row_bytes-strided rows */
    bs = st_cuda_block_values((int) w->type);
    if (w->n_in == 0 || w->n_in % bs != 0) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s (%s) has %llu inputs per row, "
                            "not a multiple of the type's %u-value blocks",
                            name, st_type_traits_get(w->type)->name,
                            (unsigned long long) w->n_in, bs);
    }
    if (w->row_bytes != st_cuda_row_bytes((int) w->type, w->n_in)) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s (%s) has %zu bytes per row; "
                            "%llu values of the type take %zu", name,
                            st_type_traits_get(w->type)->name, w->row_bytes,
                            (unsigned long long) w->n_in,
                            st_cuda_row_bytes((int) w->type, w->n_in));
    }
    return ST_OK;
}




static const void *
st_cuda_put(st_cuda_uploader *u, const void *host, size_t bytes)
{
    size_t      off = u->off;
    cudaError_t e;

    u->off = st_align256(u->off + bytes);
    if (u->base == NULL || host == NULL || u->rc != ST_OK) {
        return NULL;
    }
    e = cudaMemcpy(u->base + off, host, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        u->rc = st_cuda_fail(u->err, "cudaMemcpy (weights)", e);
        return NULL;
    }
    return u->base + off;
}


static void
st_cuda_put_weight(st_cuda_uploader *u, const st_weight *w, st_cuda_weight *out)
{
    out->type = (int) w->type;
    out->row_bytes = w->row_bytes;
    out->n_in = (uint32_t) w->n_in;
    out->n_out = (uint32_t) w->n_out;
    out->d = (const uint8_t *) st_cuda_put(u, w->data,
                                           (size_t) w->n_out * w->row_bytes);
}


/* Sizes (base == NULL) or uploads every tensor; the same walk both times
 * so that offsets agree. */
void
st_cuda_put_model(st_cuda_impl *c, st_cuda_uploader *u)
{
    const st_model   *m = c->m;
    const st_hparams *hp = &m->hp;
    size_t            E = hp->n_embd;
    size_t            qdim = (size_t) hp->n_head * hp->head_dim;
    size_t            kvdim = (size_t) hp->n_head_kv * hp->head_dim;
    uint32_t          l;

    st_cuda_put_weight(u, &m->tok_embd, &c->tok_embd);
    if (m->output.data == m->tok_embd.data) {
        c->output = c->tok_embd;           /* tied: one copy */
    } else {
        st_cuda_put_weight(u, &m->output, &c->output);
    }
    c->output_norm = (const float *) st_cuda_put(u, m->output_norm,
                                                 E * sizeof(float));
    c->rope_freqs = m->plan.rope_freqs
        ? (const float *) st_cuda_put(u, m->plan.rope_freqs,
                                      hp->n_rot / 2 * sizeof(float))
        : NULL;
    c->gelu = NULL;
    if (m->plan.act == ST_ACT_GELU_TANH) {
        float *t = NULL;

        /* the table of model/gelu.h, built on the host for the upload */
        if (u->base != NULL && u->rc == ST_OK) {
            t = (float *) malloc(sizeof(float) * ST_GELU_TABLE_SIZE);
            if (t == NULL) {
                u->rc = st_error_set(u->err, ST_ERR_NOMEM,
                                     "cuda: out of memory (GELU table)");
            } else {
                st_gelu_table_fill(t);
            }
        }
        c->gelu = (const float *) st_cuda_put(u, t, sizeof(float)
                                                    * ST_GELU_TABLE_SIZE);
        free(t);
    }
    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];
        st_cuda_layer  *D = &c->layers[l];

        D->attn_norm = (const float *) st_cuda_put(u, L->attn_norm, E * 4);
        D->ffn_norm = (const float *) st_cuda_put(u, L->ffn_norm, E * 4);
        D->bq = L->bq ? (const float *) st_cuda_put(u, L->bq, qdim * 4) : NULL;
        D->bk = L->bk ? (const float *) st_cuda_put(u, L->bk, kvdim * 4) : NULL;
        D->bv = L->bv ? (const float *) st_cuda_put(u, L->bv, kvdim * 4) : NULL;
        D->q_norm = L->q_norm
            ? (const float *) st_cuda_put(u, L->q_norm, hp->head_dim * 4) : NULL;
        D->k_norm = L->k_norm
            ? (const float *) st_cuda_put(u, L->k_norm, hp->head_dim * 4) : NULL;
        D->post_attn_norm = L->post_attn_norm
            ? (const float *) st_cuda_put(u, L->post_attn_norm, E * 4) : NULL;
        D->post_ffn_norm = L->post_ffn_norm
            ? (const float *) st_cuda_put(u, L->post_ffn_norm, E * 4) : NULL;
        st_cuda_put_weight(u, &L->wq, &D->wq);
        st_cuda_put_weight(u, &L->wk, &D->wk);
        st_cuda_put_weight(u, &L->wv, &D->wv);
        st_cuda_put_weight(u, &L->wo, &D->wo);
        st_cuda_put_weight(u, &L->w_gate, &D->w_gate);
        st_cuda_put_weight(u, &L->w_up, &D->w_up);
        st_cuda_put_weight(u, &L->w_down, &D->w_down);
    }
}
