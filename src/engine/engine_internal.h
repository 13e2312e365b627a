/*
 * Engine internals shared by its three parts:
 *   engine.c         public API and lifecycle (create, submit, cancel,
 *                    release, stats, backend choice)
 *   engine_step.c    the scheduler: one step's phases (retire, admit,
 *                    build the batch with prefill chunking and
 *                    preemption, forward, sample)
 *   engine_output.c  per-sequence output: accepted tokens, text released
 *                    through the text stream, stop strings, takes
 * See include/starling/st_engine.h for the threading rule.
 */
#ifndef ST_ENGINE_INTERNAL_H
#define ST_ENGINE_INTERNAL_H

#include "starling/st_engine.h"
#include "model/model.h"
#include "backend/registry.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/constraint.h"
#include "engine/fair_queue.h"
#include "text/textstream.h"
#include "text/tokenizer.h"

#include <time.h>

#define ST_KV_BLOCK_TOKENS 16

typedef enum {
    ST_SEQ_QUEUED = 0,
    ST_SEQ_ACTIVE,
    ST_SEQ_DONE
} st_seq_state;

struct st_seq {
    st_seq            *prev, *next;     /* in queued / active / done list */
    st_seq_state       state;
    uint64_t           id;              /* admission order */

    int32_t           *tokens;          /* prompt + generated */
    uint32_t           n_tokens;
    uint32_t           cap_tokens;
    uint32_t           n_prompt;
    uint32_t           n_past;          /* tokens whose K/V are cached */
    uint32_t           n_generated;
    uint32_t           n_cached;        /* prompt tokens reused from the
                                           prefix cache at first admission */
    int                started;         /* has been in a batch */
    uint64_t           preempted_at;    /* step id of the last preemption */
    uint32_t           max_tokens;
    int                ignore_eos;
    int32_t            n_probs;
    st_kv_seq          kv;
    st_sampler        *sampler;
    st_textstream     *ts;
    st_constraint     *constraint;      /* NULL: unconstrained */
    st_grammar_matcher *gm;             /* with constraint: position */
    uint32_t          *gmask;           /* with constraint: (mask words) */

    int                cancelled;
    int                released;
    st_finish_reason   finish;
    int                stop_index;
    /* prompt logprobs (engine_prompt_lp.c) */
    int                prompt_lp;       /* asked for */
    st_token_out      *plp;             /* (n_prompt - 1): token i + 1 */
    st_token_logprob  *plp_tops;        /* (n_prompt - 1, n_probs) */
    uint32_t           n_plp;           /* prompt positions done */
    int                plp_taken;
    int                dead_end;        /* stopped: the grammar could not
                                           go on (st_seq_output.dead_end) */
    char               error[128];
    int                finish_taken;

    /* output since the previous take */
    int                taken;
    st_token_out      *out;
    uint32_t           n_out, cap_out;
    size_t            *out_text_off;
    st_token_logprob  *tops;            /* cap_out * ST_MAX_TOP_LOGPROBS */
    char              *text;
    size_t             text_len, text_cap;

    double             t_submit_ms, t_start_ms, t_first_ms, t_last_ms;

    st_session        *session;         /* session.c: turn of, or NULL */
    st_session_result  session_result;
    /* fair queueing (fair_queue.c) */
    st_fq_tenant      *tenant;          /* while queued or active */
    int32_t            priority;        /* lower first, within a tenant */
    uint64_t           fq_step;         /* prefill order: visited in step */

    /* embedding request (engine_embed.c) */
    int                embed;
    st_pooling         embed_pool;      /* resolved: MEAN, CLS or LAST */
    int                embed_normalize;
    double            *embed_acc;       /* (n_embd) sum of pooled rows */
    uint32_t           embed_rows;
    float             *embed_vec;       /* (embed_dim) result */
    uint32_t           embed_dim;       /* n_embd */
    int                embed_done;
};

typedef struct {
    st_seq *head, *tail;
    uint32_t n;
} st_seq_list;

struct st_engine {
    st_engine_params   params;
    st_model          *model;
    st_tokenizer      *tok;
    st_threadpool     *tp;
    st_backend        *be;
    st_kv_cache        kv;
    st_model_info      info;
    uint32_t           n_ctx;
    uint32_t           max_seqs;
    uint32_t           step_tokens;

    st_seq_list        queued, active, done;
    uint64_t           next_id;
    uint64_t           step_id;         /* current step, from 1 */

    st_batch_entry    *batch;           /* (step_tokens) */
    st_seq           **batch_seq;       /* (step_tokens) owner of each row */
    float             *logits;          /* (logits_rows, n_vocab) */
    uint32_t           logits_rows;     /* max_seqs, + ST_PROMPT_LP_ROWS
                                           once prompt logprobs are asked */
    float             *hidden;          /* (step_tokens, n_embd), from the
                                           first embedding request */
    st_grammar_vocab  *gvocab;          /* token bytes for constraints,
                                           built at the first one */
    st_engine_stats    stats;
    st_sessions        sessions;        /* session.c */
    st_fair_queue      fq;              /* tenants with work */
};



static inline double
st_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}


static inline void
st_list_push(st_seq_list *l, st_seq *s)
{
    s->prev = l->tail;
    s->next = NULL;
    if (l->tail) {
        l->tail->next = s;
    } else {
        l->head = s;
    }
    l->tail = s;
    l->n++;
}


static inline void
st_list_remove(st_seq_list *l, st_seq *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        l->head = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    } else {
        l->tail = s->prev;
    }
    s->prev = s->next = NULL;
    l->n--;
}


/* engine.c: finishes s (KV released, moved to the done list or freed if
 * the owner released it already). */
void st_seq_finish(st_engine *e, st_seq *s, st_finish_reason why);
void st_seq_destroy(st_seq *s);
/* engine_constraint.c: attach a constraint at submit; sample one token
 * (masked and advancing the grammar when constrained; -1 with s->error
 * set on a failure, ST_SAMPLE_DEAD_END when the grammar allows no token
 * of the vocabulary that logit_bias leaves); 1 when the grammar is
 * complete and nothing more can follow */
#define ST_SAMPLE_DEAD_END  (-2)
st_status st_seq_constrain(st_engine *e, st_seq *s, st_constraint *c,
    st_error *err);
int32_t st_seq_sample(st_engine *e, st_seq *s, float *row,
    st_token_logprob *chosen, st_token_logprob *top);
int st_seq_constraint_done(const st_seq *s);

/* engine_prompt_lp.c: prompt token logprobs (echo + logprobs) */
#define ST_PROMPT_LP_ROWS  32           /* prompt rows with logits a step */
st_status st_seq_prompt_lp_init(st_engine *e, st_seq *s, st_error *err);
int st_seq_prompt_lp_pending(const st_seq *s);
int st_seq_prompt_lp_wants(const st_seq *s, uint32_t pos);
void st_seq_prompt_lp_add(const st_engine *e, st_seq *s, uint32_t pos,
    const float *row);
void st_seq_prompt_lp_take(st_seq *s, st_seq_output *out);
void st_seq_prompt_lp_free(st_seq *s);

/* engine_output.c: called with a freshly sampled token; decides whether
 * s goes on. */
void st_seq_accept(st_engine *e, st_seq *s, int32_t tok, float logprob,
    const st_token_logprob *top);
/* a constrained sequence that cannot go on: the text it holds back is
 * released and it stops (ST_FINISH_STOP with dead_end set) */
void st_seq_dead_end(st_engine *e, st_seq *s);

/* engine_embed.c: set s up as an embedding sequence at submit; whether
 * the prompt position pos is pooled; the pool restarts (preemption);
 * add one output-normed hidden row; pool, normalise and finish s. */
st_status st_seq_embed_init(st_engine *e, st_seq *s, const st_request *req,
    st_error *err);
int st_seq_embed_wants(const st_seq *s, uint32_t pos);
void st_seq_embed_reset(const st_engine *e, st_seq *s);
void st_seq_embed_add(const st_engine *e, st_seq *s, const float *row);
void st_seq_embed_finish(st_engine *e, st_seq *s);

#endif /* ST_ENGINE_INTERNAL_H */
