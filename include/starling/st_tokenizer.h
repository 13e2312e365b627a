/*
 * Tokenizer API (public): text <-> token ids with llama.cpp's behaviour
 * (llama_tokenize / llama_token_to_piece / llama_detokenize). Built from a
 * model's GGUF metadata by the engine; callers get one from
 * st_engine_tokenizer(). See src/text/tokenizer.h for the kinds supported.
 */
#ifndef ST_TOKENIZER_PUBLIC_H
#define ST_TOKENIZER_PUBLIC_H

#include "starling/st_common.h"

typedef enum { ST_TOK_SPM = 0, ST_TOK_BPE = 1 } st_tok_kind;

/* llama.cpp token types (tokenizer.ggml.token_type) */
typedef enum {
    ST_TOKEN_UNDEFINED = 0, ST_TOKEN_NORMAL = 1, ST_TOKEN_UNKNOWN = 2,
    ST_TOKEN_CONTROL = 3, ST_TOKEN_USER_DEFINED = 4, ST_TOKEN_UNUSED = 5,
    ST_TOKEN_BYTE = 6
} st_token_type;

typedef struct st_tokenizer st_tokenizer;

/* Growable id array owned by the caller (free(ids) when done). */
typedef struct {
    int32_t *ids;
    size_t   n;
    size_t   cap;
} st_tokens;


st_tok_kind st_tokenizer_kind(const st_tokenizer *t);
const char *st_tokenizer_kind_name(const st_tokenizer *t); /* "spm" | "bpe" */
const char *st_tokenizer_pre_name(const st_tokenizer *t);  /* "default", "qwen2" ... */
/* NULL, or a note about a fallback taken at load (e.g. an unknown
 * tokenizer.ggml.pre handled with the GPT-2 regex). */
const char *st_tokenizer_warning(const st_tokenizer *t);
uint32_t    st_tokenizer_n_vocab(const st_tokenizer *t);
int32_t     st_tokenizer_bos(const st_tokenizer *t);       /* -1 if none */
int32_t     st_tokenizer_eos(const st_tokenizer *t);       /* -1 if none */
int         st_tokenizer_add_bos(const st_tokenizer *t);
int         st_tokenizer_is_eog(const st_tokenizer *t, int32_t id); /* eos, eot, eom, ... */
st_token_type st_tokenizer_token_type(const st_tokenizer *t, int32_t id);
/* Find a token by its exact text (e.g. "<|im_end|>"); -1 if absent. */
int32_t     st_tokenizer_find(const st_tokenizer *t, const char *text, size_t len);

/* Appends the ids of text[0..len) to out (out->n grows).
 * add_special: BOS (and EOS) as the vocab says; parse_special: recognise
 * control/special token text such as "<|im_start|>". Never fails on any
 * byte sequence (invalid UTF-8 is tokenized byte-wise); errors only for
 * memory. A vocab without byte-fallback maps unknown chars to <unk>. */
st_status st_tokenize(const st_tokenizer *t, const char *text, size_t len,
    int add_special, int parse_special, st_tokens *out, st_error *err);

/* Exact bytes of one token, as llama_token_to_piece(lstrip=0, special):
 * SPM "\xe2\x96\x81" -> " ", "<0x41>" -> byte 0x41; BPE byte-unicode ->
 * bytes; control tokens render their text only when special != 0.
 * Returns the piece length; copies min(len, cap) bytes. */
size_t st_token_to_piece(const st_tokenizer *t, int32_t id, char *buf,
    size_t cap, int special);

/* Concatenated pieces of ids (special tokens rendered if special != 0).
 * The SPM leading space of the first piece is removed when
 * remove_leading_space != 0 (llama_detokenize's behaviour).
 * Returns total length; writes at most cap bytes. */
size_t st_detokenize(const st_tokenizer *t, const int32_t *ids, size_t n,
    char *buf, size_t cap, int special, int remove_leading_space);

#endif /* ST_TOKENIZER_PUBLIC_H */
