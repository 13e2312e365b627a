/*
 * CUDA backend: the forward pass (staging the step inputs, enqueueing the
 * kernels) and the per-batch-size decode graphs.
 */
#include "backend/cuda/st_cuda_internal.h"

/* ---- the forward pass ------------------------------------------------- */

/* Step inputs in one upload: tokens, pos, blk_off, out_rows (n each),
 * kv_row (n, 8-aligned), then the block tables. */
typedef struct {
    size_t tokens, pos, blk_off, out_rows, kv_row, blocks, total;
} st_cuda_in_layout;


/* (Re)allocates the step-input buffers for bytes; moving the device
 * buffer makes every captured graph stale. */
st_status
st_cuda_in_alloc(st_cuda_impl *c, size_t bytes, st_error *err)
{
    cudaError_t e;

    bytes = st_align256(bytes);
    cudaFreeHost(c->h_in);
    cudaFree(c->d_in);
    c->h_in = NULL;
    c->d_in = NULL;
    c->in_cap = 0;
    c->in_gen++;
    e = cudaMallocHost((void **) &c->h_in, bytes);
    if (e != cudaSuccess) {
        c->h_in = NULL;
        return st_cuda_fail(err, "cudaMallocHost (step inputs)", e);
    }
    e = cudaMalloc((void **) &c->d_in, bytes);
    if (e != cudaSuccess) {
        c->d_in = NULL;
        return st_cuda_fail(err, "cudaMalloc (step inputs)", e);
    }
    c->in_cap = bytes;
    return ST_OK;
}


static st_status
st_cuda_stage(st_cuda_impl *c, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, st_cuda_in_layout *lay, uint32_t *n_out, st_error *err)
{
    const st_hparams *hp = &c->m->hp;
    size_t            n_blk = 0, need;
    uint32_t          i, j, kvdim = hp->n_head_kv * hp->head_dim;
    const st_kv_seq  *prev = NULL;
    int32_t          *tokens, *out_rows;
    uint32_t         *pos, *blk_off, *blocks;
    uint64_t         *kv_row;

    for (i = 0; i < n; i++) {
        const st_batch_entry *e = &batch[i];

        if (e->token < 0 || (uint32_t) e->token >= hp->n_vocab) {
            return st_error_set(err, ST_ERR_INVALID,
                                "forward: token id %d out of range", e->token);
        }
        if (e->seq == NULL
            || (uint64_t) e->seq->n_blocks * kv->block_tokens <= e->pos)
        {
            return st_error_set(err, ST_ERR_INTERNAL,
                                "forward: no KV slot for position %u", e->pos);
        }
        if (e->seq != prev) {
            n_blk += e->seq->n_blocks;
            prev = e->seq;
        }
    }
    lay->tokens = 0;
    lay->pos = lay->tokens + 4 * (size_t) n;
    lay->blk_off = lay->pos + 4 * (size_t) n;
    lay->out_rows = lay->blk_off + 4 * (size_t) n;
    lay->kv_row = (lay->out_rows + 4 * (size_t) n + 7) & ~(size_t) 7;
    lay->blocks = lay->kv_row + 8 * (size_t) n;
    lay->total = lay->blocks + 4 * n_blk;
    need = st_align256(lay->total);
    if (need > c->in_cap) {
        /* block tables longer than the KV pool (blocks shared between
         * sequences, or one sequence on several rows): room for twice
         * as much, and the graphs recaptured against the new buffer */
        st_status rc = st_cuda_in_alloc(c, 2 * need, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    tokens = (int32_t *) (c->h_in + lay->tokens);
    pos = (uint32_t *) (c->h_in + lay->pos);
    blk_off = (uint32_t *) (c->h_in + lay->blk_off);
    out_rows = (int32_t *) (c->h_in + lay->out_rows);
    kv_row = (uint64_t *) (c->h_in + lay->kv_row);
    blocks = (uint32_t *) (c->h_in + lay->blocks);

    n_blk = 0;
    prev = NULL;
    *n_out = 0;
    for (i = 0; i < n; i++) {
        const st_batch_entry *e = &batch[i];

        if (e->seq != prev) {
            for (j = 0; j < e->seq->n_blocks; j++) {
                blocks[n_blk + j] = e->seq->blocks[j];
            }
            blk_off[i] = (uint32_t) n_blk;
            n_blk += e->seq->n_blocks;
            prev = e->seq;
        } else {
            blk_off[i] = blk_off[i - 1];
        }
        tokens[i] = e->token;
        pos[i] = e->pos;
        kv_row[i] = ((uint64_t) e->seq->blocks[e->pos / kv->block_tokens]
                     * kv->block_tokens + e->pos % kv->block_tokens) * kvdim;
        if (e->want_logits) {
            out_rows[(*n_out)++] = (int32_t) i;
        }
    }
    {
        cudaError_t e = cudaMemcpyAsync(c->d_in, c->h_in, lay->total,
                                        cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) {
            return st_cuda_fail(err, "cudaMemcpy (step inputs)", e);
        }
    }
    return ST_OK;
}


#define ST_CK(expr, what)                                                    \
    do {                                                                     \
        int st_e_ = (expr);                                                  \
        if (st_e_ != 0) {                                                    \
            return st_cuda_fail(err, what, st_e_);                           \
        }                                                                    \
    } while (0)


/*
 * Enqueues the forward pass of n staged rows on c->stream: embedding,
 * layers, final norm and output head for the n_out rows that want logits.
 * With logits != NULL the logits are copied to the host after each head
 * pass; with NULL (graph capture, n_out <= ST_CUDA_LOGIT_ROWS) they stay
 * in c->logits. Everything that changes between steps is read by the
 * kernels from c->d_in, so the same calls for the same n launch the same
 * kernels with the same arguments.
 */
static st_status
st_cuda_enqueue(st_cuda_impl *c, st_kv_cache *kv, uint32_t n, uint32_t n_out,
    const st_cuda_in_layout *lay, float *logits, st_error *err)
{
    const st_hparams  *hp = &c->m->hp;
    const st_plan     *p = &c->m->plan;
    uint32_t           E = hp->n_embd, qdim = hp->n_head * hp->head_dim;
    uint32_t           kvdim = hp->n_head_kv * hp->head_dim, l, r0;
    uint32_t           hd = hp->head_dim;
    float              kq_scale;
    st_status          rc;
    const int32_t     *d_tokens, *d_out_rows;
    const uint32_t    *d_pos, *d_blk_off, *d_blocks;
    const uint64_t    *d_kv_row;

    d_tokens = (const int32_t *) (c->d_in + lay->tokens);
    d_pos = (const uint32_t *) (c->d_in + lay->pos);
    d_blk_off = (const uint32_t *) (c->d_in + lay->blk_off);
    d_out_rows = (const int32_t *) (c->d_in + lay->out_rows);
    d_kv_row = (const uint64_t *) (c->d_in + lay->kv_row);
    d_blocks = (const uint32_t *) (c->d_in + lay->blocks);
    /* Q already scaled when the plan says so (gemma3) */
    kq_scale = p->attn_q_scale != 0.0f ? 1.0f : 1.0f / sqrtf((float) hd);

    ST_CK(st_cuda_embed(c->tok_embd.d, c->tok_embd.type, c->tok_embd.row_bytes,
                        d_tokens, n, E, c->x, c->stream), "embed");
    if (p->emb_scale != 1.0f) {
        ST_CK(st_cuda_scale(c->x, p->emb_scale, (size_t) n * E, c->stream),
              "scale");
    }

    /* the layers, as the model's plan describes them (model.h) */
    for (l = 0; l < hp->n_layer; l++) {
        const st_cuda_layer *L = &c->layers[l];
        const st_layer_plan *lp = &c->m->layers[l].plan;
        uint16_t            *kc = c->kv + 2 * l * c->kv_layer_elems;
        uint16_t            *vc = kc + c->kv_layer_elems;

        /* attention block */
        ST_CK(st_cuda_rmsnorm(c->x, NULL, L->attn_norm, n, E, hp->rms_eps,
                              c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->wq, c->xn, n, c->lead_rows, c->q, err))
            || (rc = st_cuda_matmul(c, &L->wk, c->xn, n, c->lead_rows, c->k, err))
            || (rc = st_cuda_matmul(c, &L->wv, c->xn, n, c->lead_rows, c->v, err)))
        {
            return rc;
        }
        ST_CK(st_cuda_add_bias(c->q, L->bq, n, qdim, c->stream), "bias");
        ST_CK(st_cuda_add_bias(c->k, L->bk, n, kvdim, c->stream), "bias");
        ST_CK(st_cuda_add_bias(c->v, L->bv, n, kvdim, c->stream), "bias");
        if (L->q_norm != NULL) {
            ST_CK(st_cuda_rmsnorm(c->q, NULL, L->q_norm, n * hp->n_head, hd,
                                  hp->rms_eps, c->q, c->stream), "q_norm");
        }
        if (L->k_norm != NULL) {
            ST_CK(st_cuda_rmsnorm(c->k, NULL, L->k_norm, n * hp->n_head_kv,
                                  hd, hp->rms_eps, c->k, c->stream), "k_norm");
        }
        ST_CK(st_cuda_rope_store_ff(c->q, c->k, c->v, d_pos, d_kv_row, kc, vc,
                                    n, hp->n_head, hp->n_head_kv, hd,
                                    hp->n_rot, hp->rope_type == ST_ROPE_NEOX,
                                    p->rope_theta_scale[lp->rope_set],
                                    p->rope_freq_scale[lp->rope_set],
                                    c->rope_freqs, c->stream),
              "rope");
        if (p->attn_q_scale != 0.0f) {
            ST_CK(st_cuda_scale(c->q, p->attn_q_scale, (size_t) n * qdim,
                                c->stream), "scale");
        }
        ST_CK(st_cuda_attention_win(c->q, kc, vc, d_blocks, d_blk_off, d_pos,
                                    n, hp->n_head, hp->n_head_kv, hd,
                                    kv->block_tokens, lp->window_tokens,
                                    kq_scale, c->attn, c->stream),
              "attention");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->wo, c->attn, n, c->lead_rows, c->proj, err))) {
            return rc;
        }
        if (L->post_attn_norm != NULL) {
            ST_CK(st_cuda_rmsnorm(c->proj, NULL, L->post_attn_norm, n, E,
                                  hp->rms_eps, c->proj, c->stream), "rmsnorm");
        }
        ST_CK(st_cuda_add(c->x, c->proj, (size_t) n * E, c->stream), "add");

        /* feed-forward block (gated: SwiGLU or GeGLU) */
        ST_CK(st_cuda_rmsnorm(c->x, NULL, L->ffn_norm, n, E, hp->rms_eps,
                              c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->w_gate, c->xn, n, c->lead_rows, c->gate, err))
            || (rc = st_cuda_matmul(c, &L->w_up, c->xn, n, c->lead_rows, c->up, err)))
        {
            return rc;
        }
        if (p->act == ST_ACT_GELU_TANH) {
            ST_CK(st_cuda_geglu(c->gate, c->up, c->gelu,
                                (size_t) n * hp->n_ff, c->stream), "geglu");
        } else {
            ST_CK(st_cuda_swiglu(c->gate, c->up, (size_t) n * hp->n_ff,
                                 c->stream), "swiglu");
        }
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->w_down, c->gate, n, c->lead_rows, c->proj, err))) {
            return rc;
        }
        if (L->post_ffn_norm != NULL) {
            ST_CK(st_cuda_rmsnorm(c->proj, NULL, L->post_ffn_norm, n, E,
                                  hp->rms_eps, c->proj, c->stream), "rmsnorm");
        }
        ST_CK(st_cuda_add(c->x, c->proj, (size_t) n * E, c->stream), "add");
    }

    /* final norm and output head for rows that want logits, in passes of
     * ST_CUDA_LOGIT_ROWS rows */
    for (r0 = 0; r0 < n_out; r0 += ST_CUDA_LOGIT_ROWS) {
        uint32_t    cnt = n_out - r0 < ST_CUDA_LOGIT_ROWS
                          ? n_out - r0 : ST_CUDA_LOGIT_ROWS;
        cudaError_t e;

        ST_CK(st_cuda_rmsnorm(c->x, d_out_rows + r0, c->output_norm, cnt, E,
                              hp->rms_eps, c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &c->output, c->xn, cnt, cnt, c->logits, err))) {
            return rc;
        }
        if (p->logit_softcap != 0.0f) {
            ST_CK(st_cuda_softcap(c->logits, p->logit_softcap,
                                  (size_t) cnt * hp->n_vocab, c->stream),
                  "softcap");
        }
        if (logits == NULL) {
            continue;
        }
        e = cudaMemcpyAsync(logits + (size_t) r0 * hp->n_vocab, c->logits,
                            sizeof(float) * cnt * hp->n_vocab,
                            cudaMemcpyDeviceToHost, c->stream);
        if (e != cudaSuccess) {
            return st_cuda_fail(err, "cudaMemcpy (logits)", e);
        }
    }
    return ST_OK;
}


/* Captures the decode step of n rows into c->graphs[n]. 1 = captured,
 * 0 = graphs unusable here (the caller runs the kernels directly), -1 =
 * a kernel launch failed (err set). */
static int
st_cuda_graph_capture(st_cuda_impl *c, st_kv_cache *kv, uint32_t n,
    const st_cuda_in_layout *lay, st_error *err)
{
    cudaGraph_t     graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t     e, e_end;
    st_status       rc;

    if (c->graphs[n] != NULL) {
        cudaGraphExecDestroy(c->graphs[n]);
        c->graphs[n] = NULL;
    }
    /* thread-local mode: other threads (other backends in this process)
     * may allocate meanwhile; this thread makes no such call until the
     * capture ends */
    e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        return 0;
    }
    rc = st_cuda_enqueue(c, kv, n, n, lay, NULL, err);
    e_end = cudaStreamEndCapture(c->stream, &graph);
    if (rc != ST_OK) {
        if (graph != NULL) {
            cudaGraphDestroy(graph);
        }
        return -1;
    }
    if (e_end != cudaSuccess || graph == NULL) {
        (void) cudaGetLastError();
        return 0;
    }
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        return 0;
    }
    c->graphs[n] = exec;
    c->graph_gen[n] = c->in_gen;
    c->graph_captures++;
    return 1;
}


/* Leading rows that are the only row of their sequence in the batch: the
 * engine puts decode rows first. (The logits head sees only rows that
 * want logits, one per sequence, and is always matvec.) */
static uint32_t
st_cuda_lead_rows(const st_batch_entry *batch, uint32_t n)
{
    uint32_t i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < n; j++) {
            if (j != i && batch[j].seq == batch[i].seq) {
                return i;
            }
        }
    }
    return n;
}


st_status
st_cuda_run(st_backend *b, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, float *logits, st_error *err)
{
    st_cuda_impl      *c = (st_cuda_impl *) b->impl;
    const st_hparams  *hp = &c->m->hp;
    uint32_t           n_out = 0;
    st_cuda_in_layout  lay = { 0, 0, 0, 0, 0, 0, 0 };
    st_status          rc;
    cudaError_t        e;
    int                replayed = 0;

    if (n == 0) {
        return ST_OK;
    }
    if (n > c->max_tokens) {
        return st_error_set(err, ST_ERR_INVALID,
                            "forward: batch of %u rows exceeds %u", n,
                            c->max_tokens);
    }
    if (kv->block_tokens != c->geo.block_tokens
        || kv->n_blocks > c->geo.n_blocks)
    {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: KV geometry differs from the backend's");
    }
    rc = st_cuda_stage(c, kv, batch, n, &lay, &n_out, err);
    if (rc != ST_OK) {
        return rc;
    }
    c->lead_rows = st_cuda_lead_rows(batch, n);

    /* a decode step: replay the graph of this batch size (captured on
     * first use, or again after the step-input buffer moved), then fetch
     * the logits */
    if (n <= c->graph_max_rows && n_out == n) {
        int cap = 1;

        if (c->graphs[n] == NULL || c->graph_gen[n] != c->in_gen) {
            cap = st_cuda_graph_capture(c, kv, n, &lay, err);
            if (cap < 0) {
                return ST_ERR_INTERNAL;
            }
            if (cap == 0) {
                c->graph_max_rows = 0;     /* no graphs on this device */
            }
        }
        if (cap > 0) {
            e = cudaGraphLaunch(c->graphs[n], c->stream);
            if (e != cudaSuccess) {
                return st_cuda_fail(err, "cudaGraphLaunch", e);
            }
            c->graph_replays++;
            e = cudaMemcpyAsync(logits, c->logits,
                                sizeof(float) * n * hp->n_vocab,
                                cudaMemcpyDeviceToHost, c->stream);
            if (e != cudaSuccess) {
                return st_cuda_fail(err, "cudaMemcpy (logits)", e);
            }
            replayed = 1;
        }
    }
    if (!replayed) {
        rc = st_cuda_enqueue(c, kv, n, n_out, &lay, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "forward", e);
    }
    return ST_OK;
}


/* Embeddings: c->x still holds the (n, E) residual stream of the last
 * run; the output norm of every row goes to c->xn (free after a run),
 * then the wanted rows come to the host, one copy per run of adjacent
 * rows (an embedding sequence's rows are adjacent in the batch). */
st_status
st_cuda_hidden(st_backend *b, const st_batch_entry *batch, uint32_t n,
    float *out, st_error *err)
{
    st_cuda_impl      *c = (st_cuda_impl *) b->impl;
    const st_hparams  *hp = &c->m->hp;
    uint32_t           E = hp->n_embd, i, j, n_out = 0;
    cudaError_t        e;

    if (n == 0) {
        return ST_OK;
    }
    if (n > c->max_tokens) {
        return st_error_set(err, ST_ERR_INVALID,
                            "forward: batch of %u rows exceeds %u", n,
                            c->max_tokens);
    }
    ST_CK(st_cuda_rmsnorm(c->x, NULL, c->output_norm, n, E, hp->rms_eps,
                          c->xn, c->stream), "rmsnorm");
    for (i = 0; i < n; i = j) {
        if (!batch[i].want_hidden) {
            j = i + 1;
            continue;
        }
        for (j = i + 1; j < n && batch[j].want_hidden; j++) {
            /* extend the run */
        }
        e = cudaMemcpyAsync(out + (size_t) n_out * E,
                            c->xn + (size_t) i * E,
                            sizeof(float) * (size_t) (j - i) * E,
                            cudaMemcpyDeviceToHost, c->stream);
        if (e != cudaSuccess) {
            return st_cuda_fail(err, "cudaMemcpy (hidden)", e);
        }
        n_out += j - i;
    }
    e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "hidden", e);
    }
    return ST_OK;
}


extern "C" int
st_cuda_backend_graph_stats(const st_backend *b, uint64_t *captures,
    uint64_t *replays)
{
    const st_cuda_impl *c;

    if (b == NULL || b->name == NULL || strcmp(b->name, "cuda") != 0) {
        return -1;
    }
    c = (const st_cuda_impl *) b->impl;
    *captures = c->graph_captures;
    *replays = c->graph_replays;
    return c->graph_max_rows > 0 ? 1 : 0;
}
