#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>


st_status
st_kv_cache_init(st_kv_cache *kv, uint32_t n_layer, uint32_t kv_dim,
    uint32_t block_tokens, uint32_t n_blocks, int with_storage,
    st_error *err)
{
    size_t    per_layer;
    uint32_t  l, i;

    memset(kv, 0, sizeof(*kv));
    if (block_tokens == 0 || n_blocks == 0 || kv_dim == 0 || n_layer == 0) {
        return st_error_set(err, ST_ERR_INVALID, "kv cache: empty geometry");
    }

    kv->block_tokens = block_tokens;
    kv->n_blocks = n_blocks;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;

    per_layer = (size_t) n_blocks * block_tokens * kv_dim;
    kv->k = calloc(n_layer, sizeof(st_f16 *));
    kv->v = calloc(n_layer, sizeof(st_f16 *));
    kv->free_list = malloc(sizeof(uint32_t) * n_blocks);
    if (kv->k == NULL || kv->v == NULL || kv->free_list == NULL) {
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

    if (kv->k != NULL) {
        for (l = 0; l < kv->n_layer; l++) {
            free(kv->k[l]);
        }
    }
    if (kv->v != NULL) {
        for (l = 0; l < kv->n_layer; l++) {
            free(kv->v[l]);
        }
    }
    free(kv->k);
    free(kv->v);
    free(kv->free_list);
    memset(kv, 0, sizeof(*kv));
}


st_status
st_kv_seq_reserve(st_kv_cache *kv, st_kv_seq *seq, uint32_t n_pos)
{
    uint32_t  need, i, *nb;

    need = (n_pos + kv->block_tokens - 1) / kv->block_tokens;
    if (need <= seq->n_blocks) {
        return ST_OK;
    }
    if (need - seq->n_blocks > kv->n_free) {
        return ST_ERR_FULL;
    }
    if (need > seq->cap_blocks) {
        nb = realloc(seq->blocks, sizeof(uint32_t) * need);
        if (nb == NULL) {
            return ST_ERR_NOMEM;
        }
        seq->blocks = nb;
        seq->cap_blocks = need;
    }
    for (i = seq->n_blocks; i < need; i++) {
        seq->blocks[i] = kv->free_list[--kv->n_free];
    }
    seq->n_blocks = need;
    return ST_OK;
}


void
st_kv_seq_release(st_kv_cache *kv, st_kv_seq *seq)
{
    while (seq->n_blocks > 0) {
        kv->free_list[kv->n_free++] = seq->blocks[--seq->n_blocks];
    }
}


void
st_kv_seq_free(st_kv_seq *seq)
{
    free(seq->blocks);
    memset(seq, 0, sizeof(*seq));
}
