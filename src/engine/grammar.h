/*
 * Constrained decoding: GBNF grammars (llama.cpp `grammar` syntax) compiled
 * to a pushdown matcher over Unicode code points, fed with token bytes.
 *
 *   st_grammar          compiled grammar, immutable, shareable by threads
 *   st_grammar_matcher  one sequence's position in the grammar (a set of
 *                       stacks, llama.cpp style, plus a partial UTF-8
 *                       code point carried across token boundaries)
 *   st_grammar_vocab    the tokenizer's byte pieces as a trie, built once
 *                       per model; masks walk it so shared prefixes are
 *                       checked once (grammar_mask.c)
 *
 * Syntax: `name ::= alternatives` rules (names [A-Za-z0-9_-]+), `|`,
 * groups `( )`, postfix `* + ? {m} {m,} {m,n}`, string literals "...",
 * char classes [a-z] / [^...], `.` (any code point), rule references,
 * `#` comments; escapes \n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH.
 * A rule ends at a newline unless inside parentheses or after `|`/`::=`.
 * Errors name line:column (1-based). Left recursion is rejected (the
 * matcher expands rules eagerly).
 */
#ifndef ST_GRAMMAR_H
#define ST_GRAMMAR_H

#include "starling/st_common.h"

#include <stdint.h>

typedef struct st_grammar st_grammar;
typedef struct st_grammar_matcher st_grammar_matcher;

/* Parses and compiles text[0..len); `root` names the start rule (NULL:
 * "root"). ST_ERR_INVALID with "line L, column C: ..." on bad syntax. */
st_status st_grammar_parse(st_grammar **out, const char *text, size_t len,
    const char *root, st_error *err);
void st_grammar_free(st_grammar *g);
uint32_t st_grammar_n_rules(const st_grammar *g);

/* Matcher at the start of `g` (g must outlive it). */
st_status st_grammar_matcher_create(st_grammar_matcher **out,
    const st_grammar *g, st_error *err);
void st_grammar_matcher_free(st_grammar_matcher *m);
st_status st_grammar_matcher_clone(st_grammar_matcher **out,
    const st_grammar_matcher *m, st_error *err);
const st_grammar *st_grammar_matcher_grammar(const st_grammar_matcher *m);

/* Feeds bytes (a token's piece). Returns 1 if they were accepted (the
 * matcher moved on), 0 if they are not allowed (the matcher is left as it
 * was), -1 on memory failure or a stack limit (err says which). */
int st_grammar_matcher_accept(st_grammar_matcher *m, const char *bytes,
    size_t len, st_error *err);
/* 1 if the input so far is a complete sentence of the grammar (EOS may
 * come now). */
int st_grammar_matcher_accepting(const st_grammar_matcher *m);
/* 1 if accepting and nothing more can follow (generation must stop). */
int st_grammar_matcher_done(const st_grammar_matcher *m);

/*
 * Token masks (grammar_mask.c). A vocab holds every token's bytes in a
 * trie; tokens with no bytes (control tokens) are never allowed, except
 * end-of-generation tokens, allowed exactly when the matcher accepts.
 * Masks are bitsets: bit (id % 32) of word (id / 32) set = allowed.
 */
typedef struct st_grammar_vocab st_grammar_vocab;

/* pieces[i][0..lens[i]) are token i's bytes; eog[i] != 0 marks end-of-
 * generation tokens (eog may be NULL). Copies what it needs. */
st_status st_grammar_vocab_create(st_grammar_vocab **out, uint32_t n_vocab,
    const char *const *pieces, const uint32_t *lens, const uint8_t *eog,
    st_error *err);
void st_grammar_vocab_free(st_grammar_vocab *v);
uint32_t st_grammar_vocab_n(const st_grammar_vocab *v);
size_t st_grammar_mask_words(const st_grammar_vocab *v);
int st_grammar_vocab_is_eog(const st_grammar_vocab *v, int32_t id);

/* Fills mask[0..st_grammar_mask_words(v)) for the matcher's state.
 * Exact: a token is allowed iff its bytes can continue a sentence of the
 * grammar (a token may end inside a UTF-8 sequence or span rules). */
st_status st_grammar_mask(st_grammar_matcher *m, const st_grammar_vocab *v,
    uint32_t *mask, st_error *err);
/* Advances over token id (must be allowed: ST_ERR_INVALID otherwise).
 * An end-of-generation token is accepted only in an accepting state and
 * leaves the matcher there. */
st_status st_grammar_accept_token(st_grammar_matcher *m,
    const st_grammar_vocab *v, int32_t id, st_error *err);

#endif /* ST_GRAMMAR_H */
