/*
 * GGUF hash index over kv keys and tensor names (FNV-1a, open
 * addressing), filled by the parser and read by the lookups.
 */
#include "gguf/gguf_internal.h"

#include <stdlib.h>
#include <string.h>


uint64_t
st_gguf_hash(const char *s, size_t len)
{
    uint64_t  h = 0xcbf29ce484222325ULL;     /* FNV-1a */
    size_t    i;

    for (i = 0; i < len; i++) {
        h ^= (uint8_t) s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}


/* ---- hash index ---- */

static int
st_gguf_index_grow(st_gguf_index *ix)
{
    uint64_t       cap = ix->cap ? ix->cap * 2 : 16, i, j;
    st_gguf_slot  *slots;

    if (cap > SIZE_MAX / sizeof(st_gguf_slot)) {
        return -1;
    }
    slots = calloc((size_t) cap, sizeof(st_gguf_slot));
    if (slots == NULL) {
        return -1;
    }
    for (i = 0; i < ix->cap; i++) {
        if (ix->slots[i].idx1 == 0) {
            continue;
        }
        j = ix->slots[i].hash & (cap - 1);
        while (slots[j].idx1 != 0) {
            j = (j + 1) & (cap - 1);
        }
        slots[j] = ix->slots[i];
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}


int
st_gguf_index_add(st_gguf_index *ix, uint64_t hash, uint64_t idx)
{
    uint64_t  j;

    /* keep the load factor <= 1/2 */
    if ((ix->n + 1) * 2 > ix->cap && st_gguf_index_grow(ix) != 0) {
        return -1;
    }
    j = hash & (ix->cap - 1);
    while (ix->slots[j].idx1 != 0) {
        j = (j + 1) & (ix->cap - 1);
    }
    ix->slots[j].hash = hash;
    ix->slots[j].idx1 = idx + 1;
    ix->n++;
    return 0;
}


/* Index of the kv whose key is s[0..len), or UINT64_MAX. */
uint64_t
st_gguf_kv_lookup(const st_gguf *g, const char *s, size_t len)
{
    uint64_t             h, j;
    const st_gguf_slot  *sl;
    const st_gguf_kv    *kv;

    if (g->kv_index.cap == 0) {
        return UINT64_MAX;
    }
    h = st_gguf_hash(s, len);
    for (j = h & (g->kv_index.cap - 1); ; j = (j + 1) & (g->kv_index.cap - 1)) {
        sl = &g->kv_index.slots[j];
        if (sl->idx1 == 0) {
            return UINT64_MAX;
        }
        kv = &g->kvs[sl->idx1 - 1];
        if (sl->hash == h && kv->key.len == len
            && memcmp(kv->key.ptr, s, len) == 0)
        {
            return sl->idx1 - 1;
        }
    }
}


uint64_t
st_gguf_tensor_lookup(const st_gguf *g, const char *name, size_t len)
{
    uint64_t             h, j;
    const st_gguf_slot  *sl;
    const st_gguf_tensor *t;

    if (g->tensor_index.cap == 0) {
        return UINT64_MAX;
    }
    h = st_gguf_hash(name, len);
    for (j = h & (g->tensor_index.cap - 1); ;
         j = (j + 1) & (g->tensor_index.cap - 1))
    {
        sl = &g->tensor_index.slots[j];
        if (sl->idx1 == 0) {
            return UINT64_MAX;
        }
        t = &g->tensors[sl->idx1 - 1];
        if (sl->hash == h && strlen(t->name) == len
            && memcmp(t->name, name, len) == 0)
        {
            return sl->idx1 - 1;
        }
    }
}
