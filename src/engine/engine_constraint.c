/*
 * Constrained sequences: the per-sequence grammar matcher, the mask it
 * gives before each sample and the advance after it. A mask depends only
 * on the sequence's own matcher state, never on the batch.
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


st_status
st_seq_constrain(st_engine *e, st_seq *s, st_constraint *c, st_error *err)
{
    st_status rc;

    if (e->gvocab == NULL) {
        rc = st_grammar_vocab_from_tokenizer(&e->gvocab, e->tok, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    rc = st_grammar_matcher_create(&s->gm, st_constraint_grammar(c), err);
    if (rc != ST_OK) {
        return rc;
    }
    s->gmask = malloc(st_grammar_mask_words(e->gvocab) * sizeof(uint32_t));
    if (s->gmask == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    /* a vocabulary may lack what the grammar starts with (a small SPM
     * vocab without "{"): refuse now rather than fail at the first step
     * (the mask is cached, so the first step does not compute it again) */
    rc = st_grammar_mask(s->gm, e->gvocab, s->gmask, err);
    if (rc != ST_OK) {
        return rc;
    }
    {
        size_t w, words = st_grammar_mask_words(e->gvocab);
        for (w = 0; w < words && s->gmask[w] == 0; w++) {
        }
        if (w == words) {
            return st_error_set(err, ST_ERR_INVALID, "no token of the "
                "model's vocabulary can start the grammar's output");
        }
    }
    s->constraint = st_constraint_ref(c);
    return ST_OK;
}


int32_t
st_seq_sample(st_engine *e, st_seq *s, float *row, st_token_logprob *chosen,
    st_token_logprob *top)
{
    st_error err = { ST_OK, "" };
    int32_t tok;

    if (s->gm == NULL) {
        tok = st_sampler_sample(s->sampler, row, chosen, top);
        if (tok < 0) {
            snprintf(s->error, sizeof(s->error),
                     "every token is banned (logit_bias)");
        }
        return tok;
    }
    if (st_grammar_mask(s->gm, e->gvocab, s->gmask, &err) != ST_OK) {
        snprintf(s->error, sizeof(s->error), "%s", err.msg);
        return -1;
    }
    tok = st_sampler_sample_masked(s->sampler, row, s->gmask, chosen, top);
    if (tok < 0) {
        /* no token of the vocabulary continues the grammar here, or
         * logit_bias bans all that do: the choice ends with what it has
         * (llama.cpp's server fails the whole batch instead) */
        return ST_SAMPLE_DEAD_END;
    }
    if (st_grammar_accept_token(s->gm, e->gvocab, tok, &err) != ST_OK) {
        snprintf(s->error, sizeof(s->error), "%s", err.msg);
        return -1;
    }
    return tok;
}


int
st_seq_constraint_done(const st_seq *s)
{
    return s->gm != NULL && st_grammar_matcher_done(s->gm);
}
