/*
 * Engine side of output constraints (public part: st_constraint in
 * st_engine.h): the grammar inside a constraint, and the vocabulary the
 * masks are computed against, built once per model from its tokenizer.
 */
#ifndef ST_CONSTRAINT_H
#define ST_CONSTRAINT_H

#include "starling/st_engine.h"
#include "engine/grammar.h"

const st_grammar *st_constraint_grammar(const st_constraint *c);

/* Every token's bytes as generation renders them (st_token_to_piece,
 * special = 0); control tokens have none; end-of-generation tokens are
 * marked as such. */
st_status st_grammar_vocab_from_tokenizer(st_grammar_vocab **out,
    const st_tokenizer *t, st_error *err);

#endif /* ST_CONSTRAINT_H */
