/*
 * Output constraints (public API in st_engine.h): a compiled grammar with
 * a reference count, and the per-model vocabulary the engine masks with.
 */
#include "engine/constraint.h"
#include "engine/json_schema.h"
#include "text/tokenizer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct st_constraint {
    st_grammar  *grammar;
    atomic_uint  refs;
};


static st_status
st_constraint_wrap(st_constraint **out, st_grammar *g, st_error *err)
{
    st_constraint *c = malloc(sizeof(*c));

    if (c == NULL) {
        st_grammar_free(g);
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    c->grammar = g;
    atomic_init(&c->refs, 1);
    *out = c;
    return ST_OK;
}


st_status
st_constraint_from_gbnf(st_constraint **out, const char *text, size_t len,
    st_error *err)
{
    st_grammar *g;
    st_status rc;

    *out = NULL;
    rc = st_grammar_parse(&g, text, len, NULL, err);
    if (rc != ST_OK) {
        return rc;
    }
    return st_constraint_wrap(out, g, err);
}


st_status
st_constraint_from_json_schema(st_constraint **out, const char *schema,
    size_t len, st_error *err)
{
    char *gbnf = NULL;
    size_t n = 0;
    st_status rc;

    *out = NULL;
    rc = st_json_schema_to_gbnf(schema, len, &gbnf, &n, err);
    if (rc != ST_OK) {
        return rc;
    }
    rc = st_constraint_from_gbnf(out, gbnf, n, err);
    free(gbnf);
    return rc;
}


st_status
st_constraint_json_object(st_constraint **out, st_error *err)
{
    const char *t = st_json_object_gbnf();

    return st_constraint_from_gbnf(out, t, strlen(t), err);
}


st_constraint *
st_constraint_ref(st_constraint *c)
{
    if (c != NULL) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    }
    return c;
}


void
st_constraint_free(st_constraint *c)
{
    if (c == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        st_grammar_free(c->grammar);
        free(c);
    }
}


const st_grammar *
st_constraint_grammar(const st_constraint *c)
{
    return c->grammar;
}


st_status
st_grammar_vocab_from_tokenizer(st_grammar_vocab **out,
    const st_tokenizer *t, st_error *err)
{
    uint32_t n = st_tokenizer_n_vocab(t), i;
    char **pieces = calloc(n, sizeof(char *));
    uint32_t *lens = calloc(n, sizeof(uint32_t));
    uint8_t *eog = calloc(n, 1);
    st_status rc = ST_ERR_NOMEM;
    char buf[512];

    *out = NULL;
    if (pieces == NULL || lens == NULL || eog == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        size_t len;
        eog[i] = st_tokenizer_is_eog(t, (int32_t)i) != 0;
        if (eog[i] || st_tokenizer_token_type(t, (int32_t)i)
                      == ST_TOKEN_CONTROL)
        {
            continue;      /* never text: only eog tokens, by the rule */
        }
        len = st_token_to_piece(t, (int32_t)i, buf, sizeof(buf), 0);
        if (len > sizeof(buf)) {
            /* longer than any real piece: leave it out (never allowed) */
            continue;
        }
        pieces[i] = malloc(len + 1);
        if (pieces[i] == NULL) {
            goto done;
        }
        memcpy(pieces[i], buf, len);
        lens[i] = (uint32_t)len;
    }
    rc = st_grammar_vocab_create(out, n, (const char *const *)pieces, lens,
        eog, err);
    if (rc != ST_OK) {
        goto free_all;
    }
done:
    if (rc == ST_ERR_NOMEM && *out == NULL) {
        st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
free_all:
    if (pieces != NULL) {
        for (i = 0; i < n; i++) {
            free(pieces[i]);
        }
    }
    free(pieces);
    free(lens);
    free(eog);
    return rc;
}
