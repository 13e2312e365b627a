/*
 * Tokenizer containers: string tables, string -> id hash map, pair -> rank
 * map, the GPT-2 byte <-> unicode table and small growable buffers.
 */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>


uint64_t
st_tok_hash(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t       h = 0x9e3779b97f4a7c15ull ^ ((uint64_t) n * 0xff51afd7ed558ccdull);
    uint64_t       w;
    uint32_t       a, b;

    while (n > 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    /* 1..8 bytes left: two overlapping fixed-size loads, no byte loop */
    if (n >= 4) {
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        w = ((uint64_t) a << 32) | b;
    } else if (n > 0) {
        w = (uint64_t) s[0] | ((uint64_t) s[n / 2] << 8)
            | ((uint64_t) s[n - 1] << 16);
    } else {
        w = 0;
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}


void
st_tok_strtab_free(st_tok_strtab *t)
{
    free(t->data);
    free(t->e);
    memset(t, 0, sizeof(*t));
}


int64_t
st_tok_strtab_add(st_tok_strtab *t, const void *s, size_t n)
{
    size_t       ncap;
    char        *d;
    st_tok_span *o;

    if (n > UINT32_MAX || t->data_len + n > UINT32_MAX || t->n == UINT32_MAX - 1) {
        return -1;
    }
    if (t->n == t->cap) {
        ncap = t->cap ? (size_t) t->cap * 2 : 256;
        if (ncap > UINT32_MAX - 1) {
            ncap = UINT32_MAX - 1;
        }
        o = realloc(t->e, ncap * sizeof(st_tok_span));
        if (o == NULL) {
            return -1;
        }
        t->e = o;
        t->cap = (uint32_t) ncap;
    }
    if (t->data_len + n > t->data_cap) {
        ncap = t->data_cap ? t->data_cap * 2 : 4096;
        while (ncap < t->data_len + n) {
            ncap *= 2;
        }
        d = realloc(t->data, ncap);
        if (d == NULL) {
            return -1;
        }
        t->data = d;
        t->data_cap = ncap;
    }
    if (n > 0) {
        memcpy(t->data + t->data_len, s, n);
    }
    t->e[t->n].off = (uint32_t) t->data_len;
    t->e[t->n].len = (uint32_t) n;
    t->data_len += n;
    return t->n++;
}


int
st_tok_strmap_init(st_tok_strmap *m, uint32_t expect)
{
    uint64_t cap = 64;

    while (cap < (uint64_t) expect * 2) {
        cap *= 2;
    }
    m->slots = calloc(cap, sizeof(uint64_t));
    if (m->slots == NULL) {
        return -1;
    }
    m->mask = (uint32_t) (cap - 1);
    m->count = 0;
    return 0;
}


void
st_tok_strmap_free(st_tok_strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}


static void
strmap_insert_slot(uint64_t *slots, uint32_t mask, uint64_t h, uint32_t idx)
{
    uint32_t i = (uint32_t) h & mask;

    while (slots[i] != 0) {
        i = (i + 1) & mask;
    }
    slots[i] = (h & 0xffffffff00000000ull) | ((uint64_t) idx + 1);
}


static int
strmap_grow(st_tok_strmap *m, const st_tok_strtab *t)
{
    uint64_t  ncap = ((uint64_t) m->mask + 1) * 2;
    uint64_t *ns;
    uint32_t  i, idx;
    size_t    n;
    const char *s;

    if (ncap > (1ull << 31)) {
        return -1;
    }
    ns = calloc(ncap, sizeof(uint64_t));
    if (ns == NULL) {
        return -1;
    }
    for (i = 0; i <= m->mask; i++) {
        if (m->slots[i] != 0) {
            idx = (uint32_t) (m->slots[i] & 0xffffffffu) - 1;
            s = st_tok_strtab_get(t, idx, &n);
            strmap_insert_slot(ns, (uint32_t) (ncap - 1), st_tok_hash(s, n), idx);
        }
    }
    free(m->slots);
    m->slots = ns;
    m->mask = (uint32_t) (ncap - 1);
    return 0;
}


int
st_tok_strmap_put(st_tok_strmap *m, const st_tok_strtab *t, uint32_t idx)
{
    size_t      n, n2;
    const char *s, *s2;
    uint64_t    h, tag;
    uint32_t    i, j;

    if ((uint64_t) (m->count + 1) * 2 > (uint64_t) m->mask + 1) {
        if (strmap_grow(m, t) != 0) {
            return -1;
        }
    }
    s = st_tok_strtab_get(t, idx, &n);
    h = st_tok_hash(s, n);
    tag = h & 0xffffffff00000000ull;
    i = (uint32_t) h & m->mask;
    while (m->slots[i] != 0) {
        if ((m->slots[i] & 0xffffffff00000000ull) == tag) {
            j = (uint32_t) (m->slots[i] & 0xffffffffu) - 1;
            s2 = st_tok_strtab_get(t, j, &n2);
            if (n2 == n && memcmp(s, s2, n) == 0) {
                m->slots[i] = tag | ((uint64_t) idx + 1);
                return 0;
            }
        }
        i = (i + 1) & m->mask;
    }
    m->slots[i] = tag | ((uint64_t) idx + 1);
    m->count++;
    return 0;
}


int32_t
st_tok_strmap_get(const st_tok_strmap *m, const st_tok_strtab *t,
    const void *s, size_t n)
{
    uint64_t    h = st_tok_hash(s, n);
    uint64_t    tag = h & 0xffffffff00000000ull;
    uint32_t    i = (uint32_t) h & m->mask;
    uint32_t    j;
    uint64_t    slot;

    while ((slot = m->slots[i]) != 0) {
        if ((slot & 0xffffffff00000000ull) == tag) {
            j = (uint32_t) (slot & 0xffffffffu) - 1;
            if (t->e[j].len == n && st_tok_eq(t->data + t->e[j].off, s, n)) {
                return (int32_t) j;
            }
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}


int
st_tok_pairmap_init(st_tok_pairmap *m, uint32_t expect)
{
    uint64_t cap = 64;

    while (cap < (uint64_t) expect * 2) {
        cap *= 2;
    }
    memset(m, 0, sizeof(*m));
    m->keys = malloc(cap * sizeof(uint64_t));
    m->rank = malloc(cap * sizeof(int32_t));
    m->result = malloc(cap * sizeof(int32_t));
    if (m->keys == NULL || m->rank == NULL || m->result == NULL) {
        st_tok_pairmap_free(m);
        return -1;
    }
    memset(m->keys, 0xff, cap * sizeof(uint64_t));
    m->mask = (uint32_t) (cap - 1);
    return 0;
}


void
st_tok_pairmap_free(st_tok_pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->result);
    memset(m, 0, sizeof(*m));
}


static inline uint32_t
pair_slot(uint64_t key, uint32_t mask)
{
    key *= 0x9e3779b97f4a7c15ull;
    return (uint32_t) (key >> 32) & mask;
}


void
st_tok_pairmap_put(st_tok_pairmap *m, int32_t a, int32_t b, int32_t rank,
    int32_t result)
{
    uint64_t key = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
    uint32_t i = pair_slot(key, m->mask);

    /* sized at init for every merge: never more than half full */
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) {
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->result[i] = result;
    m->count++;
}


int
st_tok_pairmap_get(const st_tok_pairmap *m, int32_t a, int32_t b,
    int32_t *rank, int32_t *result)
{
    uint64_t key = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
    uint32_t i = pair_slot(key, m->mask);
    uint64_t k;

    while ((k = m->keys[i]) != UINT64_MAX) {
        if (k == key) {
            *rank = m->rank[i];
            *result = m->result[i];
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}


/* GPT-2's table: printable Latin-1 bytes keep their code point; the other
 * 68 bytes (0x00-0x20, 0x7f-0xa0, 0xad) map to U+0100.. in byte order. */
uint32_t
st_tok_byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) {
        return b;
    }
    if (b <= 0x20) {
        return 256 + b;
    }
    if (b <= 0xa0) {
        return 256 + 33 + (b - 0x7f);
    }
    return 256 + 67;    /* 0xad */
}


int
st_tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) {
        uint8_t b = (uint8_t) cp;
        return ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac)
                || b >= 0xae) ? (int) b : -1;
    }
    cp -= 256;
    if (cp < 33) {
        return (int) cp;
    }
    if (cp < 67) {
        return (int) (0x7f + cp - 33);
    }
    return cp == 67 ? 0xad : -1;
}


size_t
st_tok_utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char) (0xc0 | (cp >> 6));
        o[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char) (0xe0 | (cp >> 12));
        o[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char) (0xf0 | (cp >> 18));
    o[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}


st_status
st_tok_push(st_tokens *out, int32_t id, st_error *err)
{
    size_t   ncap;
    int32_t *p;

    if (out->n == out->cap) {
        ncap = out->cap ? out->cap * 2 : 64;
        p = realloc(out->ids, ncap * sizeof(int32_t));
        if (p == NULL) {
            return st_error_set(err, ST_ERR_NOMEM,
                "tokenize: cannot grow the id array to %zu ids", ncap);
        }
        out->ids = p;
        out->cap = ncap;
    }
    out->ids[out->n++] = id;
    return ST_OK;
}


int
st_tok_scratch_reserve(void **p, size_t *cap, size_t need)
{
    size_t ncap;
    void  *np;

    if (need <= *cap) {
        return 0;
    }
    ncap = *cap ? *cap : 1024;
    while (ncap < need) {
        ncap *= 2;
    }
    np = realloc(*p, ncap);
    if (np == NULL) {
        return -1;
    }
    *p = np;
    *cap = ncap;
    return 0;
}


void
st_tok_scratch_free(st_tok_scratch *s)
{
    free(s->syms);
    free(s->heap);
    free(s->text);
    if (s->md != NULL) {
        pcre2_match_data_free(s->md);
    }
    memset(s, 0, sizeof(*s));
}
