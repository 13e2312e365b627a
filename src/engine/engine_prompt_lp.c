/*
 * Prompt token logprobs (completions echo + logprobs): the logprob of
 * each prompt token given the ones before it, with the top alternatives,
 * from the logits of the prompt rows themselves (log-softmax of the raw
 * logits: no bias, penalty or temperature applies to the prompt).
 *
 * Such a sequence computes its whole prompt (no prefix reuse until every
 * prompt logprob is in) and asks for logits at each prompt row, at most
 * ST_PROMPT_LP_ROWS rows per step over all sequences, so the logits
 * buffer grows by a fixed amount once, not with the prompt.
 */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


st_status
st_seq_prompt_lp_init(st_engine *e, st_seq *s, st_error *err)
{
    uint32_t n = s->n_prompt - 1;
    uint32_t rows = e->max_seqs + ST_PROMPT_LP_ROWS;

    if (s->n_prompt < 2) {
        s->prompt_lp = 1;       /* nothing to compute: only the null */
        return ST_OK;
    }
    if (e->logits_rows < rows) {
        float *nl = realloc(e->logits,
                            sizeof(float) * (size_t) rows * e->info.n_vocab);
        if (nl == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "out of memory");
        }
        e->logits = nl;
        e->logits_rows = rows;
    }
    s->plp = calloc(n, sizeof(*s->plp));
    s->plp_tops = calloc((size_t) n * (s->n_probs > 0 ? s->n_probs : 1),
                         sizeof(*s->plp_tops));
    if (s->plp == NULL || s->plp_tops == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    s->prompt_lp = 1;
    return ST_OK;
}


int
st_seq_prompt_lp_pending(const st_seq *s)
{
    return s->prompt_lp && s->n_prompt > 1 && s->n_plp < s->n_prompt - 1;
}


int
st_seq_prompt_lp_wants(const st_seq *s, uint32_t pos)
{
    return s->plp != NULL && pos + 1 < s->n_prompt && pos >= s->n_plp;
}


/* row: the logits at prompt position pos, which predict token pos + 1 */
void
st_seq_prompt_lp_add(const st_engine *e, st_seq *s, uint32_t pos,
    const float *row)
{
    uint32_t          v, n_vocab = e->info.n_vocab, k, n_top = 0;
    int32_t           next = s->tokens[pos + 1];
    float             mx = -INFINITY;
    double            sum = 0;
    float             lse;
    st_token_out     *o = &s->plp[pos];
    st_token_logprob *top = s->plp_tops + (size_t) pos
                            * (s->n_probs > 0 ? s->n_probs : 1);

    for (v = 0; v < n_vocab; v++) {
        if (row[v] > mx) {
            mx = row[v];
        }
    }
    for (v = 0; v < n_vocab; v++) {
        sum += exp((double) row[v] - mx);
    }
    lse = mx + (float) log(sum);
    /* the best n_probs, highest first (ties: lower id first) */
    for (v = 0; v < n_vocab && s->n_probs > 0; v++) {
        if (n_top == (uint32_t) s->n_probs && row[v] <= top[n_top - 1].logprob)
        {
            continue;
        }
        k = n_top < (uint32_t) s->n_probs ? n_top++ : n_top - 1;
        while (k > 0 && top[k - 1].logprob < row[v]) {
            top[k] = top[k - 1];
            k--;
        }
        top[k].token = (int32_t) v;
        top[k].logprob = row[v];
    }
    for (k = 0; k < n_top; k++) {
        top[k].logprob -= lse;
    }
    memset(o, 0, sizeof(*o));
    o->token = next;
    o->index = pos + 1;
    o->logprob = row[next] - lse;
    o->n_top = n_top;
    o->top = top;
    s->n_plp = pos + 1;
}


void
st_seq_prompt_lp_take(st_seq *s, st_seq_output *out)
{
    if (!s->prompt_lp || s->plp_taken || st_seq_prompt_lp_pending(s)) {
        return;
    }
    out->prompt_tokens = s->plp;
    out->n_prompt_out = s->n_prompt > 1 ? s->n_prompt - 1 : 0;
    out->prompt_logprobs = 1;
    s->plp_taken = 1;
}


void
st_seq_prompt_lp_free(st_seq *s)
{
    free(s->plp);
    free(s->plp_tops);
}
