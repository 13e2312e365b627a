/*
 * Tokenizers built from GGUF metadata (tokenizer.ggml.*):
 *   - "llama": SentencePiece-style (scores, byte fallback, space prefix)
 *   - "gpt2":  byte-level BPE with a pre-tokenizer regex (PCRE2) chosen by
 *              tokenizer.ggml.pre: default/gpt-2, llama-bpe, qwen2, ...
 * Behaviour matches llama.cpp's llama_tokenize/llama_token_to_piece.
 */
#ifndef ST_TOKENIZER_H
#define ST_TOKENIZER_H

#include "starling/st_tokenizer.h"
#include "gguf/gguf.h"

/* Builds the tokenizer from a GGUF file's tokenizer.ggml.* keys. */
st_status st_tokenizer_load(st_tokenizer **out, const st_gguf *g, st_error *err);
void      st_tokenizer_free(st_tokenizer *t);

#endif /* ST_TOKENIZER_H */
