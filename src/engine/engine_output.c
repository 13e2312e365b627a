/*
 * Per-sequence output: each accepted token's entry (id, logprobs, the text
 * the text stream releases with it), stop conditions, and st_seq_take().
 */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Output entry for a new token (or a text-only tail when token < 0). */
static st_token_out *
st_seq_out_push(st_seq *s, int32_t token, const char *text, size_t len)
{
    st_token_out *o;

    if (s->taken) {
        s->n_out = 0;
        s->text_len = 0;
        s->taken = 0;
    }
    if (s->n_out == s->cap_out) {
        uint32_t          cap = s->cap_out ? s->cap_out * 2 : 16;
        st_token_out     *no = realloc(s->out, sizeof(*no) * cap);
        size_t           *nt;
        st_token_logprob *ntop;

        if (no == NULL) {
            return NULL;
        }
        s->out = no;
        nt = realloc(s->out_text_off, sizeof(*nt) * cap);
        if (nt == NULL) {
            return NULL;
        }
        s->out_text_off = nt;
        ntop = realloc(s->tops, sizeof(*ntop) * cap * ST_MAX_TOP_LOGPROBS);
        if (ntop == NULL) {
            return NULL;
        }
        s->tops = ntop;
        s->cap_out = cap;
    }
    if (s->text_len + len > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        char  *nt;

        while (cap < s->text_len + len) {
            cap *= 2;
        }
        nt = realloc(s->text, cap);
        if (nt == NULL) {
            return NULL;
        }
        s->text = nt;
        s->text_cap = cap;
    }
    if (len > 0) {                  /* s->text is NULL until some text */
        memcpy(s->text + s->text_len, text, len);
    }
    s->out_text_off[s->n_out] = s->text_len;
    s->text_len += len;

    o = &s->out[s->n_out++];
    memset(o, 0, sizeof(*o));
    o->token = token;
    o->index = s->n_generated;
    o->text_len = len;
    return o;
}


/* The text the stream still holds (a partial stop-string match, an
 * incomplete UTF-8 tail) goes out as a text-only entry; s stops. */
static void
st_seq_flush_stop(st_engine *e, st_seq *s)
{
    const char  *text;
    size_t       tlen;

    st_textstream_finish(s->ts);
    text = st_textstream_take(s->ts, &tlen);
    if (tlen > 0 && st_seq_out_push(s, -1, text, tlen) == NULL) {
        snprintf(s->error, sizeof(s->error), "out of memory");
        st_seq_finish(e, s, ST_FINISH_ERROR);
        return;
    }
    st_seq_finish(e, s, ST_FINISH_STOP);
}


void
st_seq_dead_end(st_engine *e, st_seq *s)
{
    s->dead_end = 1;
    st_seq_flush_stop(e, s);
}


void
st_seq_take(st_seq *s, st_seq_output *out)
{
    uint32_t i;

    memset(out, 0, sizeof(*out));
    if (s->taken) {
        s->n_out = 0;
        s->text_len = 0;
    }
    for (i = 0; i < s->n_out; i++) {
        s->out[i].text = s->text + s->out_text_off[i];
        s->out[i].top = s->tops + (size_t) i * ST_MAX_TOP_LOGPROBS;
    }
    out->tokens = s->out;
    out->n_tokens = s->n_out;
    s->taken = 1;

    out->finish = s->state == ST_SEQ_DONE ? s->finish : ST_FINISH_NONE;
    out->stop_index = s->stop_index;
    st_seq_prompt_lp_take(s, out);
    out->dead_end = s->state == ST_SEQ_DONE && s->dead_end;
    memcpy(out->error, s->error, sizeof(out->error));
    out->n_prompt_tokens = s->n_prompt;
    out->n_cached_tokens = s->n_cached;
    out->session = s->session_result;
    out->n_generated = s->n_generated;
    if (s->embed_done) {
        out->embedding = s->embed_vec;
        out->n_embd = s->embed_dim;
    }
    out->queue_ms = s->t_start_ms > 0 ? s->t_start_ms - s->t_submit_ms : 0;
    out->ttft_ms = s->t_first_ms > 0 ? s->t_first_ms - s->t_submit_ms : 0;
    out->decode_ms = s->t_last_ms > s->t_first_ms ? s->t_last_ms - s->t_first_ms
                                                  : 0;
}


/* Called with a freshly sampled token; decides whether s goes on. */
void
st_seq_accept(st_engine *e, st_seq *s, int32_t tok, float logprob,
    const st_token_logprob *top)
{
    char          piece[256];
    size_t        plen, tlen;
    const char   *text;
    int           stopped, complete;
    st_token_out *o;
    double        now = st_now_ms();

    if (s->t_first_ms == 0) {
        s->t_first_ms = now;
    }
    s->t_last_ms = now;

    if (!s->ignore_eos && st_tokenizer_is_eog(e->tok, tok)) {
        st_seq_flush_stop(e, s);
        return;
    }

    /* keep the token for re-prefill after preemption and for penalties */
    if (s->n_tokens == s->cap_tokens) {
        uint32_t  cap = s->cap_tokens * 2;
        int32_t  *nt = realloc(s->tokens, sizeof(int32_t) * cap);
        if (nt == NULL) {
            snprintf(s->error, sizeof(s->error), "out of memory");
            st_seq_finish(e, s, ST_FINISH_ERROR);
            return;
        }
        s->tokens = nt;
        s->cap_tokens = cap;
    }
    s->tokens[s->n_tokens++] = tok;

    plen = st_token_to_piece(e->tok, tok, piece, sizeof(piece), 0);
    if (plen > sizeof(piece)) {
        plen = sizeof(piece);
    }
    stopped = st_textstream_push(s->ts, piece, plen);
    if (stopped < 0) {
        snprintf(s->error, sizeof(s->error), "out of memory");
        st_seq_finish(e, s, ST_FINISH_ERROR);
        return;
    }
    s->n_generated++;

    complete = st_seq_constraint_done(s);
    if (!stopped && (complete || s->n_generated >= s->max_tokens
                     || s->n_tokens >= e->n_ctx))
    {
        st_textstream_finish(s->ts);
    }
    text = st_textstream_take(s->ts, &tlen);
    o = st_seq_out_push(s, tok, text, tlen);
    if (o == NULL) {
        snprintf(s->error, sizeof(s->error), "out of memory");
        st_seq_finish(e, s, ST_FINISH_ERROR);
        return;
    }
    o->index = s->n_generated - 1;
    if (s->n_probs > 0) {
        o->logprob = logprob;
        o->n_top = (uint32_t) s->n_probs;
        memcpy(s->tops + (size_t) (s->n_out - 1) * ST_MAX_TOP_LOGPROBS, top,
               sizeof(st_token_logprob) * (size_t) s->n_probs);
    }

    if (stopped) {
        s->stop_index = st_textstream_stop_index(s->ts);
        st_seq_finish(e, s, ST_FINISH_STOP);
    } else if (complete) {
        st_seq_finish(e, s, ST_FINISH_STOP);   /* the grammar is complete */
    } else if (s->n_generated >= s->max_tokens || s->n_tokens >= e->n_ctx) {
        st_seq_finish(e, s, ST_FINISH_LENGTH);
    }
}

