/*
 * Paged KV cache with prefix reuse.
 *
 * A pool of fixed-size blocks (block_tokens positions each, all layers, K
 * and V as F16); every sequence owns a block table mapping position p to
 * block table[p / block_tokens]. Allocation and free are O(1).
 *
 * Prefix reuse: once a sequence has filled a block, the block is
 * registered under a content hash that chains the hashes of all earlier
 * blocks of the sequence (so equal tokens at equal positions after an
 * equal prefix give the same key; the tokens are stored and compared too,
 * so a hash collision cannot alias). A new sequence whose prompt starts
 * with registered blocks shares them (reference counted) instead of
 * recomputing them. Blocks nobody references stay registered and form an
 * LRU list: they are evicted, oldest first, only when the free list is
 * empty. Shared blocks are always full, so no sequence ever writes into a
 * block another one reads.
 */
#ifndef ST_KV_CACHE_H
#define ST_KV_CACHE_H

#include "starling/st_common.h"
#include "quant/quant.h"

#define ST_KV_NONE 0xffffffffu

typedef struct {
    uint32_t  block_tokens;
    uint32_t  n_blocks;
    uint32_t  n_layer;
    uint32_t  kv_dim;          /* n_head_kv * head_dim */
    st_f16  **k;               /* [layer] -> (n_blocks * block_tokens, kv_dim),
                                  NULL when the storage is on a device */
    st_f16  **v;               /* same layout as k */
    uint64_t  bytes;

    uint32_t *free_list;       /* stack of never-registered free blocks */
    uint32_t  n_free;

    /* per block */
    uint32_t *ref;             /* sequences using the block */
    uint64_t *hash;            /* chained content hash, when registered */
    uint8_t  *registered;      /* in the prefix table */
    int32_t  *tokens;          /* (n_blocks, block_tokens) ids, when registered */
    uint32_t *lru_prev;        /* LRU of registered blocks with ref == 0 */
    uint32_t *lru_next;
    uint32_t  lru_head, lru_tail, n_lru;

    /* prefix table: open addressing (linear probing), hash -> block id */
    uint32_t *table;
    uint32_t  table_mask;
    uint32_t  n_registered;

    uint64_t  hits_tokens;     /* prompt tokens served from the cache */
    uint64_t  evictions;
} st_kv_cache;

/* A sequence's block table. */
typedef struct st_kv_seq {
    uint32_t *blocks;          /* block ids, in position order */
    uint32_t  n_blocks;
    uint32_t  cap_blocks;
    uint32_t  n_committed;     /* leading blocks registered or looked up */
    uint64_t  chain;           /* hash of blocks [0, n_committed) */
} st_kv_seq;

/* with_storage = 0: block accounting only (the K/V data lives on a
 * device, e.g. the CUDA backend's VRAM). */
st_status st_kv_cache_init(st_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim,
    uint32_t block_tokens, uint32_t n_blocks, int with_storage,
    st_error *err);
void st_kv_cache_free(st_kv_cache *kv);

/* Blocks a new allocation can take (free + evictable). */
static inline uint32_t
st_kv_available(const st_kv_cache *kv)
{
    return kv->n_free + kv->n_lru;
}

/* Make seq cover positions [0, n_pos): allocate blocks as needed (taking
 * free blocks first, then evicting the least recently used registered
 * ones). ST_ERR_FULL (nothing changed) if the pool cannot supply them. */
st_status st_kv_seq_reserve(st_kv_cache *kv, st_kv_seq *seq, uint32_t n_pos);
/* Drop all of seq's block references (registered blocks stay cached). */
void st_kv_seq_release(st_kv_cache *kv, st_kv_seq *seq);
void st_kv_seq_free(st_kv_seq *seq);   /* frees the table itself */

/* For an empty seq: share the registered blocks that match the start of
 * tokens[0..n), never covering more than max_tokens tokens. Returns the
 * number of tokens whose K/V are now available (a multiple of
 * block_tokens). */
uint32_t st_kv_prefix_lookup(st_kv_cache *kv, st_kv_seq *seq,
    const int32_t *tokens, uint32_t n, uint32_t max_tokens);
/* Register seq's blocks that are full (positions < n_valid computed);
 * tokens are the sequence's ids from position 0. */
void st_kv_commit(st_kv_cache *kv, st_kv_seq *seq, const int32_t *tokens,
    uint32_t n_valid);

/* Shrink seq (which covers tokens[0..) computed) to positions [0, n_keep)
 * so that the next position can be written: blocks past n_keep are
 * released, and when n_keep ends inside a block that is registered or
 * shared (so not writable), n_keep drops to that block's start. The
 * commit chain is recomputed from tokens. Returns the positions kept. */
uint32_t st_kv_seq_truncate(st_kv_cache *kv, st_kv_seq *seq,
    const int32_t *tokens, uint32_t n_keep);

/* Bytes of one block's K and V over all layers. */
static inline uint64_t
st_kv_block_bytes(const st_kv_cache *kv)
{
    return (uint64_t) kv->block_tokens * kv->kv_dim * sizeof(st_f16) * 2
           * kv->n_layer;
}

static inline size_t
st_kv_row(const st_kv_cache *kv, const st_kv_seq *seq, uint32_t pos)
{
    return ((size_t) seq->blocks[pos / kv->block_tokens] * kv->block_tokens
            + pos % kv->block_tokens) * kv->kv_dim;
}

#endif /* ST_KV_CACHE_H */
