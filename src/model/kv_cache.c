#include "model/kv_cache.h"

#include <stdlib.h>
#include <string.h>


st_status
st_kv_cache_init(st_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim,
    uint32_t block_tokens, uint32_t n_blocks, int with_storage,
    st_error *err)
{
    size_t    per_layer;
    uint32_t  l, i, cap;

    memset(kv, 0, sizeof(*kv));
    if (block_tokens == 0 || n_blocks == 0 || kv_dim == 0 || n_layer == 0
        || n_blocks > (1u << 28))
    {
        return st_error_set(err, ST_ERR_INVALID, "kv cache: bad geometry");
    }

    kv->block_tokens = block_tokens;
    kv->n_blocks = n_blocks;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;

    per_layer = (size_t) n_blocks * block_tokens * kv_dim;
    for (cap = 16; cap < 2 * n_blocks; cap *= 2) { /* load <= 1/2 */ }

    kv->k = calloc(n_layer, sizeof(st_f16 *));
    kv->v = calloc(n_layer, sizeof(st_f16 *));
    kv->free_list = malloc(sizeof(uint32_t) * n_blocks);
    kv->ref = calloc(n_blocks, sizeof(uint32_t));
    kv->hash = calloc(n_blocks, sizeof(uint64_t));
    kv->registered = calloc(n_blocks, 1);
    kv->tokens = malloc(sizeof(int32_t) * (size_t) n_blocks * block_tokens);
    kv->lru_prev = malloc(sizeof(uint32_t) * n_blocks);
    kv->lru_next = malloc(sizeof(uint32_t) * n_blocks);
    kv->table = malloc(sizeof(uint32_t) * cap);
    if (!kv->k || !kv->v || !kv->free_list || !kv->ref || !kv->hash
        || !kv->registered || !kv->tokens || !kv->lru_prev || !kv->lru_next
        || !kv->table)
    {
        goto nomem;
    }
    for (l = 0; with_storage && l < n_layer; l++) {
        kv->k[l] = calloc(per_layer, sizeof(st_f16));
        kv->v[l] = calloc(per_layer, sizeof(st_f16));
        if (kv->k[l] == NULL || kv->v[l] == NULL) {
            goto nomem;
        }
    }
    /* stack: pop from the end, lowest ids first */
    for (i = 0; i < n_blocks; i++) {
        kv->free_list[i] = n_blocks - 1 - i;
    }
    kv->n_free = n_blocks;
    memset(kv->table, 0xff, sizeof(uint32_t) * cap);
    kv->table_mask = cap - 1;
    kv->lru_head = kv->lru_tail = ST_KV_NONE;
    kv->bytes = (uint64_t) per_layer * sizeof(st_f16) * 2 * n_layer;
    return ST_OK;

nomem:
    st_kv_cache_free(kv);
    return st_error_set(err, ST_ERR_NOMEM,
                        "kv cache: cannot allocate %u blocks of %u tokens",
                        n_blocks, block_tokens);
}


void
st_kv_cache_free(st_kv_cache *kv)
{
    uint32_t l;

    for (l = 0; l < kv->n_layer; l++) {
        if (kv->k) {
            free(kv->k[l]);
        }
        if (kv->v) {
            free(kv->v[l]);
        }
    }
    free(kv->k);
    free(kv->v);
    free(kv->free_list);
    free(kv->ref);
    free(kv->hash);
    free(kv->registered);
    free(kv->tokens);
    free(kv->lru_prev);
    free(kv->lru_next);
    free(kv->table);
    memset(kv, 0, sizeof(*kv));
}


/* FNV-1a over the block's ids, seeded with the previous block's hash,
 * then a final avalanche (splitmix64's) so table slots spread well. */
static uint64_t
st_kv_block_hash(uint64_t chain, const int32_t *ids, uint32_t n)
{
    uint64_t h = chain ^ 0xcbf29ce484222325ull;
    uint32_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (uint32_t) ids[i]) * 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}


static void
st_lru_remove(st_kv_cache *kv, uint32_t b)
{
    uint32_t p = kv->lru_prev[b], n = kv->lru_next[b];

    if (p != ST_KV_NONE) {
        kv->lru_next[p] = n;
    } else {
        kv->lru_head = n;
    }
    if (n != ST_KV_NONE) {
        kv->lru_prev[n] = p;
    } else {
        kv->lru_tail = p;
    }
    kv->n_lru--;
}


static void
st_lru_push(st_kv_cache *kv, uint32_t b)
{
    kv->lru_prev[b] = kv->lru_tail;
    kv->lru_next[b] = ST_KV_NONE;
    if (kv->lru_tail != ST_KV_NONE) {
        kv->lru_next[kv->lru_tail] = b;
    } else {
        kv->lru_head = b;
    }
    kv->lru_tail = b;
    kv->n_lru++;
}


static uint32_t
st_table_find(const st_kv_cache *kv, uint64_t h, const int32_t *ids)
{
    uint32_t i = (uint32_t) h & kv->table_mask, b;

    while ((b = kv->table[i]) != ST_KV_NONE) {
        if (kv->hash[b] == h
            && memcmp(kv->tokens + (size_t) b * kv->block_tokens, ids,
                      sizeof(int32_t) * kv->block_tokens) == 0)
        {
            return b;
        }
        i = (i + 1) & kv->table_mask;
    }
    return ST_KV_NONE;
}


static void
st_table_insert(st_kv_cache *kv, uint32_t b)
{
    uint32_t i = (uint32_t) kv->hash[b] & kv->table_mask;

    while (kv->table[i] != ST_KV_NONE) {
        i = (i + 1) & kv->table_mask;
    }
    kv->table[i] = b;
    kv->registered[b] = 1;
    kv->n_registered++;
}


/* Linear-probing deletion by backward shift (no tombstones). */
static void
st_table_remove(st_kv_cache *kv, uint32_t b)
{
    uint32_t i = (uint32_t) kv->hash[b] & kv->table_mask, j, home, x;

    while (kv->table[i] != b) {
        i = (i + 1) & kv->table_mask;
    }
    j = i;
    for ( ;; ) {
        j = (j + 1) & kv->table_mask;
        x = kv->table[j];
        if (x == ST_KV_NONE) {
            break;
        }
        home = (uint32_t) kv->hash[x] & kv->table_mask;
        /* move x into the hole at i if its home is not in (i, j] */
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) {
            kv->table[i] = x;
            i = j;
        }
    }
    kv->table[i] = ST_KV_NONE;
    kv->registered[b] = 0;
    kv->n_registered--;
}


static uint32_t
st_kv_alloc_block(st_kv_cache *kv)
{
    uint32_t b;

    if (kv->n_free > 0) {
        b = kv->free_list[--kv->n_free];
    } else if (kv->n_lru > 0) {
        b = kv->lru_head;             /* least recently used cached block */
        st_lru_remove(kv, b);
        st_table_remove(kv, b);
        kv->evictions++;
    } else {
        return ST_KV_NONE;
    }
    kv->ref[b] = 1;
    return b;
}


static st_status
st_kv_seq_grow(st_kv_seq *seq, uint32_t need)
{
    uint32_t *nb;

    if (need <= seq->cap_blocks) {
        return ST_OK;
    }
    nb = realloc(seq->blocks, sizeof(uint32_t) * need);
    if (nb == NULL) {
        return ST_ERR_NOMEM;
    }
    seq->blocks = nb;
    seq->cap_blocks = need;
    return ST_OK;
}


st_status
st_kv_seq_reserve(st_kv_cache *kv, st_kv_seq *seq, uint32_t n_pos)
{
    uint32_t  need, i;

    need = (n_pos + kv->block_tokens - 1) / kv->block_tokens;
    if (need <= seq->n_blocks) {
        return ST_OK;
    }
    if (need - seq->n_blocks > st_kv_available(kv)) {
        return ST_ERR_FULL;
    }
    if (st_kv_seq_grow(seq, need) != ST_OK) {
        return ST_ERR_NOMEM;
    }
    for (i = seq->n_blocks; i < need; i++) {
        seq->blocks[i] = st_kv_alloc_block(kv);
    }
    seq->n_blocks = need;
    return ST_OK;
}


void
st_kv_seq_release(st_kv_cache *kv, st_kv_seq *seq)
{
    uint32_t b;

    while (seq->n_blocks > 0) {
        b = seq->blocks[--seq->n_blocks];
        if (--kv->ref[b] > 0) {
            continue;
        }
        if (kv->registered[b]) {
            st_lru_push(kv, b);       /* stays reusable until evicted */
        } else {
            kv->free_list[kv->n_free++] = b;
        }
    }
    seq->n_committed = 0;
    seq->chain = 0;
}


void
st_kv_seq_free(st_kv_seq *seq)
{
    free(seq->blocks);
    memset(seq, 0, sizeof(*seq));
}


uint32_t
st_kv_prefix_lookup(st_kv_cache *kv, st_kv_seq *seq, const int32_t *tokens,
    uint32_t n, uint32_t max_tokens)
{
    uint32_t bt = kv->block_tokens, n_full, i, b;
    uint64_t h;

    if (seq->n_blocks != 0) {
        return 0;
    }
    n_full = (n < max_tokens ? n : max_tokens) / bt;
    if (st_kv_seq_grow(seq, n_full) != ST_OK) {
        return 0;
    }
    for (i = 0; i < n_full; i++) {
        h = st_kv_block_hash(seq->chain, tokens + (size_t) i * bt, bt);
        b = st_table_find(kv, h, tokens + (size_t) i * bt);
        if (b == ST_KV_NONE) {
            break;
        }
        if (kv->ref[b]++ == 0) {
            st_lru_remove(kv, b);
        }
        seq->blocks[seq->n_blocks++] = b;
        seq->chain = h;
        seq->n_committed++;
    }
    kv->hits_tokens += (uint64_t) seq->n_blocks * bt;
    return seq->n_blocks * bt;
}


void
st_kv_commit(st_kv_cache *kv, st_kv_seq *seq, const int32_t *tokens,
    uint32_t n_valid)
{
    uint32_t bt = kv->block_tokens, i, b;
    uint64_t h;

    while ((seq->n_committed + 1) * bt <= n_valid
           && seq->n_committed < seq->n_blocks)
    {
        i = seq->n_committed;
        b = seq->blocks[i];
        h = st_kv_block_hash(seq->chain, tokens + (size_t) i * bt, bt);
        /* the same content may already be registered under another block
         * (two sequences computed it at once): keep that one */
        if (!kv->registered[b]
            && st_table_find(kv, h, tokens + (size_t) i * bt) == ST_KV_NONE)
        {
            kv->hash[b] = h;
            memcpy(kv->tokens + (size_t) b * bt, tokens + (size_t) i * bt,
                   sizeof(int32_t) * bt);
            st_table_insert(kv, b);
        }
        seq->chain = h;
        seq->n_committed++;
    }
}


/* Drops seq's last block reference. */
static void
st_kv_seq_pop(st_kv_cache *kv, st_kv_seq *seq)
{
    uint32_t b = seq->blocks[--seq->n_blocks];

    if (--kv->ref[b] > 0) {
        return;
    }
    if (kv->registered[b]) {
        st_lru_push(kv, b);
    } else {
        kv->free_list[kv->n_free++] = b;
    }
}


uint32_t
st_kv_seq_truncate(st_kv_cache *kv, st_kv_seq *seq, const int32_t *tokens,
    uint32_t n_keep)
{
    uint32_t bt = kv->block_tokens, last, i;
    uint64_t h;

    if (n_keep > seq->n_blocks * bt) {
        n_keep = seq->n_blocks * bt;
    }
    if (n_keep % bt != 0) {
        last = seq->blocks[n_keep / bt];
        if (kv->registered[last] || kv->ref[last] > 1) {
            n_keep -= n_keep % bt;
        }
    }
    while (seq->n_blocks > (n_keep + bt - 1) / bt) {
        st_kv_seq_pop(kv, seq);
    }
    if (seq->n_committed > n_keep / bt) {
        seq->n_committed = n_keep / bt;
        h = 0;
        for (i = 0; i < seq->n_committed; i++) {
            h = st_kv_block_hash(h, tokens + (size_t) i * bt, bt);
        }
        seq->chain = h;
    }
    return n_keep;
}
