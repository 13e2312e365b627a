/*
 * GGUF reader internals shared by gguf.c (parsing and validation),
 * gguf_index.c (kv key and tensor name lookups) and gguf_get.c
 * (accessors and typed getters). Not part of the engine API: include
 * gguf.h instead.
 */
#ifndef ST_GGUF_INTERNAL_H
#define ST_GGUF_INTERNAL_H

#include "gguf/gguf.h"


/* Hash index over kv keys or tensor names: open addressing, slots hold
 * the item index + 1 (0 = empty). Grows as items are added so memory
 * follows what was parsed, not what the header claims. */
typedef struct {
    uint64_t  hash;
    uint64_t  idx1;
} st_gguf_slot;

typedef struct {
    st_gguf_slot  *slots;
    uint64_t       cap;          /* power of two, or 0 */
    uint64_t       n;
} st_gguf_index;

struct st_gguf {
    const uint8_t   *base;
    size_t           size_bytes;
    void            *map;        /* mmap'd region, or NULL for memory */
    size_t           map_bytes;

    uint32_t         version;
    uint32_t         alignment;
    size_t           data_offset; /* start of the data section */

    uint64_t         n_kv;
    uint64_t         kv_cap;
    st_gguf_kv      *kvs;
    st_gguf_index    kv_index;

    uint64_t         n_tensors;
    uint64_t         tensor_cap;
    st_gguf_tensor  *tensors;
    st_gguf_index    tensor_index;
};


/* gguf.c: little-endian reads and scalar sizes */
uint32_t st_gguf_le32(const uint8_t *p);
uint64_t st_gguf_le64(const uint8_t *p);
size_t st_gguf_scalar_bytes(uint32_t type);

/* gguf_index.c */
uint64_t st_gguf_hash(const char *s, size_t len);
int st_gguf_index_add(st_gguf_index *ix, uint64_t hash, uint64_t idx);
uint64_t st_gguf_kv_lookup(const st_gguf *g, const char *s, size_t len);
uint64_t st_gguf_tensor_lookup(const st_gguf *g, const char *name,
    size_t len);

#endif /* ST_GGUF_INTERNAL_H */
