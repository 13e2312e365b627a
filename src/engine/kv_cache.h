/*
 * Paged KV cache: a pool of fixed-size blocks (block_tokens positions each,
 * all layers, K and V as F16); every sequence owns a block table mapping
 * position p to block table[p / block_tokens]. Allocation and free are O(1)
 * (free list).
 */
#ifndef ST_KV_CACHE_H
#define ST_KV_CACHE_H

#include "st_common.h"
#include "quant.h"

typedef struct {
    uint32_t  block_tokens;
    uint32_t  n_blocks;
    uint32_t  n_layer;
    uint32_t  kv_dim;          /* n_head_kv * head_dim */
    st_f16  **k;               /* [layer] -> (n_blocks * block_tokens, kv_dim) */
    st_f16  **v;               /* same layout as k */
    uint32_t *free_list;       /* stack of free block ids */
    uint32_t  n_free;
    uint64_t  bytes;
} st_kv_cache;

/* A sequence's block table. */
typedef struct st_kv_seq {
    uint32_t *blocks;          /* block ids, in position order */
    uint32_t  n_blocks;
    uint32_t  cap_blocks;
} st_kv_seq;

/* with_storage = 0: block accounting only (the K/V data lives on a
 * device, e.g. the CUDA backend's VRAM). */
st_status st_kv_cache_init(st_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim,
    uint32_t block_tokens, uint32_t n_blocks, int with_storage,
    st_error *err);
void st_kv_cache_free(st_kv_cache *kv);

/* Make seq cover positions [0, n_pos): allocate blocks as needed.
 * ST_ERR_FULL (nothing changed) if the pool cannot supply them. */
st_status st_kv_seq_reserve(st_kv_cache *kv, st_kv_seq *seq, uint32_t n_pos);
/* Return all of seq's blocks to the pool. */
void st_kv_seq_release(st_kv_cache *kv, st_kv_seq *seq);
void st_kv_seq_free(st_kv_seq *seq);   /* frees the table itself */

static inline size_t
st_kv_row(const st_kv_cache *kv, const st_kv_seq *seq, uint32_t pos)
{
    return ((size_t) seq->blocks[pos / kv->block_tokens] * kv->block_tokens
            + pos % kv->block_tokens) * kv->kv_dim;
}

#endif /* ST_KV_CACHE_H */
