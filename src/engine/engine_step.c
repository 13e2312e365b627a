/*
 * The scheduler: st_engine_step() runs one step's phases (retire,
 * admit, build the batch with prefill chunking, preempt the newest
 * sequence when KV blocks run out, forward, sample).
 */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Preempt the most recently admitted active sequence that holds KV
 * blocks: release them (registered ones stay cached) and make it
 * recompute prompt + generated tokens later. 0 if nobody holds any. */
static int
st_preempt_newest(st_engine *e)
{
    st_seq *s;

    for (s = e->active.tail; s != NULL; s = s->prev) {
        if (s->kv.n_blocks > 0) {
            st_kv_seq_release(&e->kv, &s->kv);
            s->n_past = 0;
            if (s->embed) {
                st_seq_embed_reset(e, s);
            }
            /* sits out the rest of this step, so that it cannot take its
             * (cached) blocks straight back: every retry makes progress */
            s->preempted_at = e->step_id;
            e->stats.preemptions++;
            return 1;
        }
    }
    return 0;
}


st_status
st_engine_step(st_engine *e, st_error *err)
{
    st_seq     *s, *next;
    uint32_t    n = 0, n_logits = 0, n_hidden, budget, lp_rows, i;
    int         reserved;
    st_status   rc;
    uint64_t    prefill_pass;
    double      now = st_now_ms();
    st_token_logprob top[ST_MAX_TOP_LOGPROBS], chosen;

    e->step_id++;
    /* one mark per batch-building pass (a pass may be retried after a
     * preemption): unique across steps and passes */
    prefill_pass = e->step_id << 16;

    /* retire cancelled sequences, wherever they are */
    for (s = e->queued.head; s; s = next) {
        next = s->next;
        if (s->cancelled) {
            st_seq_finish(e, s, ST_FINISH_CANCELLED);
        }
    }
    for (s = e->active.head; s; s = next) {
        next = s->next;
        if (s->cancelled) {
            st_seq_finish(e, s, ST_FINISH_CANCELLED);
        }
    }

    /* admit by weighted fair queueing across tenants (fair_queue.c) */
    while (e->queued.head && e->active.n < e->max_seqs) {
        s = st_fq_pick(e->queued.head);
        st_list_remove(&e->queued, s);
        s->state = ST_SEQ_ACTIVE;
        s->id = e->next_id++;
        s->t_start_ms = now;
        st_list_push(&e->active, s);
    }
    if (e->active.n == 0) {
        return ST_OK;
    }

    /* a sequence whose tokens need more blocks than the whole pool has
     * can never run: fail it rather than preempt forever */
    for (s = e->active.head; s; s = next) {
        next = s->next;
        if (((uint64_t) s->n_tokens + e->kv.block_tokens - 1)
            / e->kv.block_tokens > e->kv.n_blocks)
        {
            snprintf(s->error, sizeof(s->error),
                     "KV cache too small for this sequence (%u positions)",
                     s->n_tokens);
            st_seq_finish(e, s, ST_FINISH_ERROR);
        }
    }
    if (e->active.n == 0) {
        return ST_OK;
    }

    /* build the batch; when nothing fits, preempt the newest sequence
     * holding KV memory and try again (each retry frees blocks, so this
     * ends) */
    for ( ;; ) {
        budget = e->step_tokens;
        lp_rows = ST_PROMPT_LP_ROWS;
        n = 0;
        n_hidden = 0;
        /* decode rows first: running streams never wait behind prefill */
        for (s = e->active.head; s && budget > 0; s = s->next) {
            if (s->n_past + 1 != s->n_tokens || s->n_past < s->n_prompt
                || s->preempted_at == e->step_id)
            {
                continue;
            }
            /* no block for the next token: preempt the newest sequence
             * holding KV (which may be s itself, then it sits out) until
             * it fits; an older stream never waits for a newer one */
            reserved = 0;
            while (s->preempted_at != e->step_id) {
                if (st_session_reserve(e, &s->kv, s->n_past + 1) == ST_OK) {
                    reserved = 1;
                    break;
                }
                if (!st_preempt_newest(e)) {
                    break;
                }
            }
            if (!reserved) {
                continue;
            }
            e->batch[n].token = s->tokens[s->n_past];
            e->batch[n].pos = s->n_past;
            e->batch[n].seq = &s->kv;
            e->batch[n].want_logits = 1;
            e->batch[n].want_hidden = 0;
            e->batch_seq[n] = s;
            n++;
            budget--;
        }
        /* then prefill chunks (prompt, or everything after preemption),
         * in fair-queueing order: the tenant with the least virtual time
         * first (fair_queue.c) */
        prefill_pass++;
        while (budget > 0) {
            uint32_t todo, take, j;

            s = NULL;
            for (next = e->active.head; next; next = next->next) {
                if ((next->n_past + 1 == next->n_tokens
                     && next->n_past >= next->n_prompt)
                    || next->preempted_at == e->step_id
                    || next->fq_step == prefill_pass)
                {
                    continue;
                }
                if (s == NULL || st_fq_before(next, s)) {
                    s = next;
                }
            }
            if (s == NULL) {
                break;
            }
            s->fq_step = prefill_pass;
            if (s->n_past == 0 && s->kv.n_blocks == 0 && !s->embed
                && !st_seq_prompt_lp_pending(s))
            {
                /* share cached blocks of an equal prefix; leave at least
                 * one token to compute so the step yields logits */
                if (!s->started && s->session != NULL) {
                    s->n_past = st_session_resume(e, s);
                }
                if (s->n_past == 0) {
                    s->n_past = st_kv_prefix_lookup(&e->kv, &s->kv, s->tokens,
                                                    s->n_tokens,
                                                    s->n_tokens - 1);
                }
                if (!s->started) {
                    s->n_cached = s->n_past;
                }
            }
            s->started = 1;
            todo = s->n_tokens - s->n_past;
            take = todo < budget ? todo : budget;
            if (st_seq_prompt_lp_wants(s, s->n_past)) {
                /* prompt rows with logits: a fixed number a step */
                if (lp_rows == 0) {
                    continue;
                }
                take = take < lp_rows ? take : lp_rows;
            }
            if (st_session_reserve(e, &s->kv, s->n_past + take) != ST_OK) {
                continue;
            }
            for (j = 0; j < take; j++) {
                e->batch[n].token = s->tokens[s->n_past + j];
                e->batch[n].pos = s->n_past + j;
                e->batch[n].seq = &s->kv;
                if (s->embed) {
                    /* every position computed, none sampled */
                    e->batch[n].want_logits = 0;
                    e->batch[n].want_hidden =
                        st_seq_embed_wants(s, s->n_past + j);
                    n_hidden += e->batch[n].want_hidden;
                } else {
                    e->batch[n].want_logits = (j == todo - 1);
                    if (st_seq_prompt_lp_wants(s, s->n_past + j)) {
                        e->batch[n].want_logits = 1;
                        lp_rows--;
                    }
                    e->batch[n].want_hidden = 0;
                }
                e->batch_seq[n] = s;
                n++;
            }
            budget -= take;
        }
        if (n > 0 || !st_preempt_newest(e)) {
            break;
        }
    }
    if (n == 0) {
        /* everyone who held blocks sat out this step after preemption:
         * the next step starts from a free pool, oldest first */
        return ST_OK;
    }

    rc = e->be->run(e->be, &e->kv, e->batch, n, e->logits, err);
    if (rc == ST_OK && n_hidden > 0) {
        rc = e->be->hidden(e->be, e->batch, n, e->hidden, err);
    }
    if (rc != ST_OK) {
        for (s = e->active.head; s; s = next) {
            next = s->next;
            snprintf(s->error, sizeof(s->error), "%.127s",
                     err ? err->msg : "forward failed");
            st_seq_finish(e, s, ST_FINISH_ERROR);
        }
        return rc;
    }
    e->stats.steps++;

    /* advance positions, register newly filled blocks for prefix reuse,
     * then sample rows that produced logits */
    for (i = 0; i < n; i++) {
        e->batch_seq[i]->n_past++;
        st_fq_charge(e->batch_seq[i], 1);
        if (e->batch[i].pos < e->batch_seq[i]->n_prompt) {
            e->stats.tokens_prefilled++;
        }
    }
    for (s = e->active.head; s; s = s->next) {
        st_kv_commit(&e->kv, &s->kv, s->tokens, s->n_past);
    }
    /* pool embedding rows (batch order is position order per sequence) */
    n_hidden = 0;
    for (i = 0; i < n; i++) {
        if (e->batch[i].want_hidden) {
            st_seq_embed_add(e, e->batch_seq[i],
                             e->hidden + (size_t) n_hidden * e->info.n_embd);
            n_hidden++;
        }
    }
    for (i = 0; i < n; i++) {
        float   *row;
        int32_t  tok;

        if (!e->batch[i].want_logits) {
            continue;
        }
        s = e->batch_seq[i];
        row = e->logits + (size_t) n_logits * e->info.n_vocab;
        n_logits++;
        if (st_seq_prompt_lp_wants(s, (uint32_t) e->batch[i].pos)) {
            st_seq_prompt_lp_add(e, s, (uint32_t) e->batch[i].pos, row);
            continue;
        }
        tok = st_seq_sample(e, s, row, &chosen, top);
        if (tok == ST_SAMPLE_DEAD_END) {
            st_seq_dead_end(e, s);
            continue;
        }
        if (tok < 0) {
            st_seq_finish(e, s, ST_FINISH_ERROR);
            continue;
        }
        e->stats.tokens_generated++;
        st_seq_accept(e, s, tok, chosen.logprob, top);
    }
    /* embedding sequences whose prompt is all in: pooled, finished, their
     * blocks released */
    for (s = e->active.head; s; s = next) {
        next = s->next;
        if (s->embed && s->n_past == s->n_tokens) {
            st_seq_embed_finish(e, s);
        }
    }
    return ST_OK;
}
