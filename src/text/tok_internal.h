/*
 * Tokenizer internals shared by tokenizer.c (load, special tokens, pieces),
 * tok_spm.c (SentencePiece-style merges), tok_bpe.c (byte-level BPE and
 * the PCRE2 pre-tokenizer) and tok_map.c (string tables and hash maps).
 * Not part of the engine API: include tokenizer.h instead.
 */
#ifndef ST_TOK_INTERNAL_H
#define ST_TOK_INTERNAL_H

#include "text/tokenizer.h"

#include <string.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

/* Token attribute bits. The low bits follow llama.cpp's llama_token_attr
 * so that the same "attr & (CONTROL | UNKNOWN)" rules read the same;
 * llama.cpp ORs CONTROL into tokens it recognises as end-of-turn by
 * their text, which is why these are flags and not one type. */
enum {
    ST_TOK_ATTR_UNKNOWN  = 1u << 0,
    ST_TOK_ATTR_UNUSED   = 1u << 1,
    ST_TOK_ATTR_NORMAL   = 1u << 2,
    ST_TOK_ATTR_CONTROL  = 1u << 3,
    ST_TOK_ATTR_USER     = 1u << 4,
    ST_TOK_ATTR_BYTE     = 1u << 5,
    ST_TOK_ATTR_LSTRIP   = 1u << 7,
    ST_TOK_ATTR_RSTRIP   = 1u << 8,
    /* ours, not llama.cpp's */
    ST_TOK_ATTR_EOG      = 1u << 12,  /* ends generation */
    ST_TOK_ATTR_BPE_SELF = 1u << 13   /* BPE over its own bytes gives it */
};

/* Pre-tokenizer families (tokenizer.ggml.pre), each one regex list. */
typedef enum {
    ST_TOK_PRE_DEFAULT = 0,   /* llama.cpp DEFAULT: 4 regexes in sequence */
    ST_TOK_PRE_GPT2,
    ST_TOK_PRE_LLAMA3,
    ST_TOK_PRE_QWEN2
} st_tok_pre;

/* Append-only table of byte strings, index = id. */
typedef struct {
    uint32_t off;        /* byte offset in data */
    uint32_t len;        /* bytes */
} st_tok_span;

typedef struct {
    char        *data;
    size_t       data_len;
    size_t       data_cap;
    st_tok_span *e;      /* (n) */
    uint32_t     n;
    uint32_t     cap;
} st_tok_strtab;

/* Open-addressing hash map: string (held in a strtab) -> its index.
 * Slot = hash tag (high 32 bits) | (index + 1); 0 = empty. */
typedef struct {
    uint64_t *slots;
    uint32_t  mask;
    uint32_t  count;
} st_tok_strmap;

/* Open-addressing map (left sym, right sym) -> (merge rank, merged sym). */
typedef struct {
    uint64_t *keys;      /* left << 32 | right; UINT64_MAX = empty */
    int32_t  *rank;
    int32_t  *result;
    uint32_t  mask;
    uint32_t  count;
} st_tok_pairmap;

/* Per-call working memory (never shared between threads). */
typedef struct {
    void   *syms;
    size_t  syms_cap;    /* bytes */
    void   *heap;
    size_t  heap_cap;    /* bytes */
    char   *text;
    size_t  text_cap;    /* bytes */
    pcre2_match_data *md;
} st_tok_scratch;

struct st_tokenizer {
    st_tok_kind  kind;
    st_tok_pre   pre;
    char         pre_name[48];
    uint32_t     n_vocab;

    st_tok_strtab text;       /* (n_vocab) token text as stored in GGUF */
    st_tok_strmap text_map;   /* token text -> id */
    float        *score;      /* (n_vocab) SPM merge priority */
    uint16_t     *attr;       /* (n_vocab) ST_TOK_ATTR_* */
    st_tok_strtab piece;      /* (n_vocab) bytes the token renders as */

    int32_t bos, eos, unk, eot, eom, pad;
    int     add_bos, add_eos, add_space_prefix, ignore_merges;

    /* special-token splitting: control/user-defined/unknown ids sorted by
     * text length (longest first, then id), and which first bytes occur */
    int32_t  *special;
    uint32_t  n_special;
    uint8_t   special_first[256];

    /* SPM byte fallback: byte -> <0xXX> token (or the one-byte token), -1 */
    int32_t   byte_tok[256];
    int32_t   one_char_tok[256]; /* token whose text is that 1 byte, -1 */
    int32_t   spm_space_tok;     /* token "\xe2\x96\x81", -1 */
    /* no token has U+2581 after another character: SPM merges never cross
     * the start of a word, so words can be encoded one at a time */
    int       spm_word_split;
    /* every score equal (no NaN): merge order is leftmost-first */
    int       spm_uniform_score;

    /* BPE, all in raw bytes (the GPT-2 byte->unicode mapping undone):
     * syms 0..n_vocab-1 are the tokens, later ones are merge parts that
     * are not tokens. */
    st_tok_strtab  sym;
    st_tok_strmap  sym_map;
    st_tok_pairmap merges;
    int32_t        byte_sym[256];     /* sym of each single raw byte */
    pcre2_code    *re[4];
    int            n_re;
};

/* tok_map.c */
uint64_t  st_tok_hash(const void *s, size_t n);
void      st_tok_strtab_free(st_tok_strtab *t);
int64_t   st_tok_strtab_add(st_tok_strtab *t, const void *s, size_t n);
static inline const char *
st_tok_strtab_get(const st_tok_strtab *t, uint32_t i, size_t *n)
{
    *n = t->e[i].len;
    return t->data + t->e[i].off;
}


/* a[0..n) == b[0..n) with fixed-size loads for short strings */
static inline int
st_tok_eq(const char *a, const char *b, size_t n)
{
    uint32_t x0, x1, y0, y1;
    uint64_t u0, u1, v0, v1;

    if (n <= 3) {
        return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2]
                          && a[n - 1] == b[n - 1]);
    }
    if (n <= 8) {
        memcpy(&x0, a, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y0, b, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n <= 16) {
        memcpy(&u0, a, 8);
        memcpy(&u1, a + n - 8, 8);
        memcpy(&v0, b, 8);
        memcpy(&v1, b + n - 8, 8);
        return ((u0 ^ v0) | (u1 ^ v1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}
int       st_tok_strmap_init(st_tok_strmap *m, uint32_t expect);
void      st_tok_strmap_free(st_tok_strmap *m);
/* returns 0 or -1 (no memory); replaces an existing equal key's index */
int       st_tok_strmap_put(st_tok_strmap *m, const st_tok_strtab *t,
    uint32_t idx);
int32_t   st_tok_strmap_get(const st_tok_strmap *m, const st_tok_strtab *t,
    const void *s, size_t n);
int       st_tok_pairmap_init(st_tok_pairmap *m, uint32_t expect);
void      st_tok_pairmap_free(st_tok_pairmap *m);
/* keeps the first value put for a key (llama.cpp's emplace) */
void      st_tok_pairmap_put(st_tok_pairmap *m, int32_t a, int32_t b,
    int32_t rank, int32_t result);
int       st_tok_pairmap_get(const st_tok_pairmap *m, int32_t a, int32_t b,
    int32_t *rank, int32_t *result);

/* GPT-2 bytes_to_unicode: code point of raw byte b, and the inverse
 * (-1 when cp is not one of the 256). */
uint32_t  st_tok_byte_to_cp(uint8_t b);
int       st_tok_cp_to_byte(uint32_t cp);
/* UTF-8 helpers; st_tok_utf8_len is llama.cpp's unicode_len_utf8 (by the
 * lead byte only, never validated). */
static inline size_t
st_tok_utf8_len(uint8_t c)
{
    static const uint8_t lut[16] = {1,1,1,1,1,1,1,1,1,1,1,1,2,2,3,4};
    return lut[c >> 4];
}
size_t    st_tok_utf8_put(uint32_t cp, char *out);

/* growable output; ST_ERR_NOMEM on failure */
st_status st_tok_push(st_tokens *out, int32_t id, st_error *err);
int       st_tok_scratch_reserve(void **p, size_t *cap, size_t need);
void      st_tok_scratch_free(st_tok_scratch *s);

/* tok_spm.c: text already has the ▁ escaping and prefix applied */
st_status st_tok_spm_encode(const st_tokenizer *t, const char *text,
    size_t len, st_tok_scratch *s, st_tokens *out, st_error *err);

/* tok_bpe.c */
st_status st_tok_bpe_setup(st_tokenizer *t, const st_gguf *g, st_error *err);
void      st_tok_bpe_free(st_tokenizer *t);
st_status st_tok_bpe_encode(const st_tokenizer *t, const char *text,
    size_t len, st_tok_scratch *s, st_tokens *out, st_error *err);

#endif /* ST_TOK_INTERNAL_H */
