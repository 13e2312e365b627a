/*
 * The CPU forward pass (forward.c): one batched transformer pass over the
 * paged KV cache, with llama.cpp's CPU numerics (see model/model.h).
 */
#ifndef ST_CPU_FORWARD_H
#define ST_CPU_FORWARD_H

#include "base/threadpool.h"
#include "model/model.h"

/* Per-engine scratch for the forward pass (sized for max_tokens rows). */
typedef struct st_forward st_forward;

st_status st_forward_create(st_forward **out, const st_model *m,
    uint32_t max_tokens, st_threadpool *tp, st_error *err);
void st_forward_free(st_forward *f);

/* Runs the batch; writes n_vocab logits for each entry with want_logits,
 * in batch order, to logits (n_want x n_vocab). Entries' positions must
 * have KV slots (st_kv_seq covers pos). n <= max_tokens. */
st_status st_forward_run(st_forward *f, st_kv_cache *kv,
    const st_batch_entry *batch, uint32_t n, float *logits, st_error *err);

/* After st_forward_run() of the same batch: the output-normed final
 * hidden state of each entry with want_hidden, in batch order, to out
 * (n_want x n_embd). It reads the residual stream the run left behind. */
st_status st_forward_hidden(st_forward *f, const st_batch_entry *batch,
    uint32_t n, float *out, st_error *err);

#endif /* ST_CPU_FORWARD_H */
