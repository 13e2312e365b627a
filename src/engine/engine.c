/*
 * The engine: sequences, the step loop (admission, batch building with
 * prefill chunking, sampling, retirement) and per-sequence output queues.
 * See engine.h for the threading rule.
 */
#include "starling/st_engine.h"
#include "model/model.h"
#include "backend/registry.h"
#include "engine/sampler.h"
#include "text/textstream.h"
#include "text/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

    int                cancelled;
    int                released;
    st_finish_reason   finish;
    int                stop_index;
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
    float             *logits;          /* (max_seqs, n_vocab) */
    st_engine_stats    stats;
};


static double
st_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}


static void
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


static void
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


void
st_engine_params_default(st_engine_params *p)
{
    memset(p, 0, sizeof(*p));
    p->backend = ST_BACKEND_CPU;
}


const char *
st_finish_reason_str(st_finish_reason r)
{
    switch (r) {
    case ST_FINISH_NONE:      return "none";
    case ST_FINISH_STOP:      return "stop";
    case ST_FINISH_LENGTH:    return "length";
    case ST_FINISH_CANCELLED: return "cancelled";
    case ST_FINISH_ERROR:     return "error";
    }
    return "unknown";
}


/* Picks and creates the compute backend: cuda, cpu, or auto (CUDA when a
 * device is usable, else the CPU with a note saying why). */
static st_status
st_engine_backend_create(st_engine *e, uint32_t n_blocks, st_error *err)
{
    const st_hparams       *hp = &e->model->hp;
    const st_backend_entry *cuda, *cpu;
    st_kv_geometry          geo;
    st_backend_args         args;
    char                    why[160] = "";
    int                     n_dev = 0;
    st_status               rc;

    geo.n_layer = hp->n_layer;
    geo.kv_dim = hp->n_head_kv * hp->head_dim;
    geo.block_tokens = ST_KV_BLOCK_TOKENS;
    geo.n_blocks = n_blocks;
    args.model = e->model;
    args.max_tokens = e->step_tokens;
    args.tp = e->tp;
    args.kv = &geo;
    args.device = -1;

    if (e->params.backend != ST_BACKEND_CPU) {
        cuda = st_backend_find("cuda");
        if (cuda == NULL) {
            snprintf(why, sizeof(why), "this build has no CUDA backend");
        } else {
            n_dev = cuda->device_count(why, sizeof(why));
        }
        if (n_dev > 0) {
            args.device = e->params.device < 0 ? 0 : e->params.device % n_dev;
            rc = cuda->create(&e->be, &args, err);
            if (rc == ST_OK || e->params.backend == ST_BACKEND_CUDA) {
                return rc;
            }
            snprintf(why, sizeof(why), "CUDA backend failed: %.120s",
                     err ? err->msg : "");
        } else if (e->params.backend == ST_BACKEND_CUDA) {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "engine: backend cuda: %s", why);
        }
        snprintf(e->info.backend_note, sizeof(e->info.backend_note),
                 "backend auto: using the CPU (%s)", why);
    }
    cpu = st_backend_find("cpu");
    if (cpu == NULL) {
        return st_error_set(err, ST_ERR_INTERNAL, "engine: no CPU backend");
    }
    return cpu->create(&e->be, &args, err);
}


int
st_engine_backend_built(const char *name)
{
    return st_backend_find(name) != NULL;
}


int
st_engine_cuda_probe(char *why, size_t why_len)
{
    const st_backend_entry *cuda = st_backend_find("cuda");

    if (cuda == NULL) {
        snprintf(why, why_len, "this build of Starling has no CUDA backend");
        return 0;
    }
    return cuda->device_count(why, why_len);
}


const char *
st_engine_backend_health(const st_engine *e)
{
    return e->be->health_json ? e->be->health_json(e->be) : NULL;
}


st_status
st_engine_create(st_engine **out, const st_engine_params *p, st_error *err)
{
    st_engine        *e;
    st_status         rc;
    const st_hparams *hp;
    uint64_t          n_blocks, per_block;
    long              ncpu;
    int               n_threads;

    *out = NULL;
    if (p == NULL || p->path == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "engine: no model path");
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "engine: out of memory");
    }
    e->params = *p;

    rc = st_model_load(&e->model, p->path, p->sha256, err);
    if (rc != ST_OK) {
        goto fail;
    }
    hp = &e->model->hp;
    rc = st_tokenizer_load(&e->tok, e->model->gguf, err);
    if (rc != ST_OK) {
        goto fail;
    }
    if (st_tokenizer_n_vocab(e->tok) != hp->n_vocab) {
        rc = st_error_set(err, ST_ERR_FORMAT, "engine: tokenizer vocab %u != "
                          "model vocab %u", st_tokenizer_n_vocab(e->tok),
                          hp->n_vocab);
        goto fail;
    }

    e->n_ctx = p->n_ctx ? p->n_ctx : hp->n_ctx_train;
    e->max_seqs = p->max_seqs ? p->max_seqs : 16;
    e->step_tokens = p->step_tokens ? p->step_tokens : 512;
    if (e->step_tokens < e->max_seqs) {
        e->step_tokens = e->max_seqs;
    }
    if (e->n_ctx < 2 || e->n_ctx > (1u << 24) || e->max_seqs > 4096) {
        rc = st_error_set(err, ST_ERR_INVALID,
                          "engine: bad n_ctx %u or max_seqs %u", e->n_ctx,
                          e->max_seqs);
        goto fail;
    }

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = p->n_threads ? (int) p->n_threads : (ncpu > 0 ? (int) ncpu : 1);
    rc = st_threadpool_create(&e->tp, n_threads, err);
    if (rc != ST_OK) {
        goto fail;
    }

    /* KV pool: the budget in bytes, or every sequence at full context */
    per_block = (uint64_t) ST_KV_BLOCK_TOKENS * hp->n_head_kv * hp->head_dim
                * sizeof(st_f16) * 2 * hp->n_layer;
    if (p->kv_bytes) {
        n_blocks = p->kv_bytes / per_block;
    } else {
        n_blocks = (uint64_t) e->max_seqs
                   * ((e->n_ctx + ST_KV_BLOCK_TOKENS - 1) / ST_KV_BLOCK_TOKENS);
    }
    if (n_blocks == 0 || n_blocks > (1u << 30)) {
        rc = st_error_set(err, ST_ERR_INVALID,
                          "engine: KV budget gives %llu blocks",
                          (unsigned long long) n_blocks);
        goto fail;
    }
    rc = st_engine_backend_create(e, (uint32_t) n_blocks, err);
    if (rc != ST_OK) {
        goto fail;
    }
    rc = st_kv_cache_init(&e->kv, hp->n_layer, hp->n_head_kv * hp->head_dim,
                          ST_KV_BLOCK_TOKENS, (uint32_t) n_blocks,
                          strcmp(e->be->name, "cpu") == 0, err);
    if (rc != ST_OK) {
        goto fail;
    }

    e->batch = calloc(e->step_tokens, sizeof(st_batch_entry));
    e->batch_seq = calloc(e->step_tokens, sizeof(st_seq *));
    e->logits = malloc(sizeof(float) * (size_t) e->max_seqs * hp->n_vocab);
    if (!e->batch || !e->batch_seq || !e->logits) {
        rc = st_error_set(err, ST_ERR_NOMEM, "engine: out of memory");
        goto fail;
    }

    {
        st_model_info  *in = &e->info;
        st_gguf_str     s;
        const char     *slash;

        char note[sizeof(in->backend_note)];

        memcpy(note, in->backend_note, sizeof(note));
        memset(in, 0, sizeof(*in));
        memcpy(in->backend_note, note, sizeof(note));
        if (st_gguf_find(e->model->gguf, "general.name") != NULL
            && st_gguf_get_str(e->model->gguf, "general.name", &s, NULL)
               == ST_OK && s.len > 0)
        {
            snprintf(in->name, sizeof(in->name), "%.*s",
                     (int) (s.len > 127 ? 127 : s.len), s.ptr);
        } else {
            slash = strrchr(p->path, '/');
            snprintf(in->name, sizeof(in->name), "%s",
                     slash ? slash + 1 : p->path);
        }
        snprintf(in->arch, sizeof(in->arch), "%s", hp->arch);
        snprintf(in->quant_kind, sizeof(in->quant_kind), "%s",
                 st_model_quant_name(e->model));
        in->tokenizer_kind = st_tokenizer_kind_name(e->tok);
        in->backend = e->be->name;
        snprintf(in->device, sizeof(in->device), "%s", e->be->device);
        in->device_bytes = e->be->device_bytes;
        in->chat_template = NULL;
        if (st_gguf_find(e->model->gguf, "tokenizer.chat_template") != NULL
            && st_gguf_get_str(e->model->gguf, "tokenizer.chat_template", &s,
                               NULL) == ST_OK)
        {
            /* NUL-terminated copy kept by the model's lifetime */
            char *t = malloc(s.len + 1);
            if (t != NULL) {
                memcpy(t, s.ptr, s.len);
                t[s.len] = '\0';
                in->chat_template = t;
            }
        }
        in->n_vocab = hp->n_vocab;
        in->n_ctx_train = hp->n_ctx_train;
        in->n_ctx = e->n_ctx;
        in->n_layer = hp->n_layer;
        in->n_embd = hp->n_embd;
        in->n_head = hp->n_head;
        in->n_head_kv = hp->n_head_kv;
        in->n_ff = hp->n_ff;
        in->n_params = e->model->n_params;
        in->weight_bytes = e->model->weight_bytes;
        in->kv_bytes = e->kv.bytes;
        in->kv_block_tokens = ST_KV_BLOCK_TOKENS;
        in->kv_blocks_total = e->kv.n_blocks;
    }

    *out = e;
    return ST_OK;

fail:
    st_engine_free(e);
    return rc;
}


static void
st_seq_destroy(st_seq *s)
{
    st_kv_seq_free(&s->kv);
    st_sampler_free(s->sampler);
    st_textstream_free(s->ts);
    free(s->tokens);
    free(s->out);
    free(s->out_text_off);
    free(s->tops);
    free(s->text);
    free(s);
}


static void
st_list_destroy(st_engine *e, st_seq_list *l)
{
    st_seq *s, *next;

    for (s = l->head; s; s = next) {
        next = s->next;
        st_kv_seq_release(&e->kv, &s->kv);
        st_seq_destroy(s);
    }
    l->head = l->tail = NULL;
    l->n = 0;
}


void
st_engine_free(st_engine *e)
{
    if (e == NULL) {
        return;
    }
    st_list_destroy(e, &e->queued);
    st_list_destroy(e, &e->active);
    st_list_destroy(e, &e->done);
    if (e->be != NULL) {
        e->be->free(e->be);
    }
    st_threadpool_free(e->tp);
    st_kv_cache_free(&e->kv);
    st_tokenizer_free(e->tok);
    st_model_free(e->model);
    free((char *) e->info.chat_template);
    free(e->batch);
    free(e->batch_seq);
    free(e->logits);
    free(e);
}


const st_model_info *
st_engine_info(const st_engine *e)
{
    return &e->info;
}


const st_tokenizer *
st_engine_tokenizer(const st_engine *e)
{
    return e->tok;
}


st_status
st_engine_submit(st_engine *e, const st_request *req, st_seq **out,
    st_error *err)
{
    st_seq    *s;
    st_status  rc;
    size_t     i;

    *out = NULL;
    if (req->n_prompt == 0) {
        return st_error_set(err, ST_ERR_INVALID, "prompt is empty");
    }
    if (req->max_tokens == 0) {
        return st_error_set(err, ST_ERR_INVALID, "max_tokens must be >= 1");
    }
    if (req->n_prompt + 1 > e->n_ctx) {
        return st_error_set(err, ST_ERR_CONTEXT,
                            "prompt has %zu tokens, the context holds %u",
                            req->n_prompt, e->n_ctx);
    }
    for (i = 0; i < req->n_prompt; i++) {
        if (req->prompt[i] < 0
            || (uint32_t) req->prompt[i] >= e->info.n_vocab)
        {
            return st_error_set(err, ST_ERR_INVALID,
                                "prompt token %zu: id %d out of range", i,
                                req->prompt[i]);
        }
    }
    rc = st_sampling_validate(&req->sampling, e->info.n_vocab, err);
    if (rc != ST_OK) {
        return rc;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    s->cap_tokens = (uint32_t) req->n_prompt + 16;
    s->tokens = malloc(sizeof(int32_t) * s->cap_tokens);
    if (s->tokens == NULL) {
        st_seq_destroy(s);
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    memcpy(s->tokens, req->prompt, sizeof(int32_t) * req->n_prompt);
    s->n_tokens = s->n_prompt = (uint32_t) req->n_prompt;
    s->max_tokens = req->max_tokens;
    s->ignore_eos = req->ignore_eos;
    s->n_probs = req->sampling.n_probs;
    s->stop_index = -1;

    rc = st_sampler_create(&s->sampler, &req->sampling, e->info.n_vocab, err);
    if (rc == ST_OK) {
        st_sampler_accept_prompt(s->sampler, req->prompt, req->n_prompt);
        rc = st_textstream_create(&s->ts, req->stop, req->n_stop, err);
    }
    if (rc != ST_OK) {
        st_seq_destroy(s);
        return rc;
    }
    s->t_submit_ms = st_now_ms();
    s->state = ST_SEQ_QUEUED;
    st_list_push(&e->queued, s);
    *out = s;
    return ST_OK;
}


void
st_seq_cancel(st_seq *s)
{
    s->cancelled = 1;
}


static void
st_seq_finish(st_engine *e, st_seq *s, st_finish_reason why)
{
    if (s->state == ST_SEQ_DONE) {
        return;
    }
    s->finish = why;
    st_kv_seq_release(&e->kv, &s->kv);
    st_list_remove(s->state == ST_SEQ_QUEUED ? &e->queued : &e->active, s);
    s->state = ST_SEQ_DONE;
    if (s->released) {
        st_seq_destroy(s);
        return;
    }
    st_list_push(&e->done, s);
}


void
st_seq_release(st_engine *e, st_seq *s)
{
    s->released = 1;
    s->cancelled = 1;
    if (s->state == ST_SEQ_DONE) {
        st_list_remove(&e->done, s);
        st_seq_destroy(s);
    }
    /* otherwise it is retired (and freed) at the next step */
}


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
    memcpy(s->text + s->text_len, text, len);
    s->out_text_off[s->n_out] = s->text_len;
    s->text_len += len;

    o = &s->out[s->n_out++];
    memset(o, 0, sizeof(*o));
    o->token = token;
    o->index = s->n_generated;
    o->text_len = len;
    return o;
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
    memcpy(out->error, s->error, sizeof(out->error));
    out->n_prompt_tokens = s->n_prompt;
    out->n_cached_tokens = s->n_cached;
    out->n_generated = s->n_generated;
    out->queue_ms = s->t_start_ms > 0 ? s->t_start_ms - s->t_submit_ms : 0;
    out->ttft_ms = s->t_first_ms > 0 ? s->t_first_ms - s->t_submit_ms : 0;
    out->decode_ms = s->t_last_ms > s->t_first_ms ? s->t_last_ms - s->t_first_ms
                                                  : 0;
}


/* Called with a freshly sampled token; decides whether s goes on. */
static void
st_seq_accept(st_engine *e, st_seq *s, int32_t tok, float logprob,
    const st_token_logprob *top)
{
    char          piece[256];
    size_t        plen, tlen;
    const char   *text;
    int           stopped;
    st_token_out *o;
    double        now = st_now_ms();

    if (s->t_first_ms == 0) {
        s->t_first_ms = now;
    }
    s->t_last_ms = now;

    if (!s->ignore_eos && st_tokenizer_is_eog(e->tok, tok)) {
        st_textstream_finish(s->ts);
        text = st_textstream_take(s->ts, &tlen);
        if (tlen > 0 && st_seq_out_push(s, -1, text, tlen) == NULL) {
            snprintf(s->error, sizeof(s->error), "out of memory");
            st_seq_finish(e, s, ST_FINISH_ERROR);
            return;
        }
        st_seq_finish(e, s, ST_FINISH_STOP);
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

    if (!stopped && (s->n_generated >= s->max_tokens
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
    } else if (s->n_generated >= s->max_tokens || s->n_tokens >= e->n_ctx) {
        st_seq_finish(e, s, ST_FINISH_LENGTH);
    }
}


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
            /* sits out the rest of this step, so that it cannot take its
             * (cached) blocks straight back: every retry makes progress */
            s->preempted_at = e->step_id;
            return 1;
        }
    }
    return 0;
}


st_status
st_engine_step(st_engine *e, st_error *err)
{
    st_seq     *s, *next;
    uint32_t    n = 0, n_logits = 0, budget, i;
    st_status   rc;
    double      now = st_now_ms();
    st_token_logprob top[ST_MAX_TOP_LOGPROBS], chosen;

    e->step_id++;

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

    /* admit FIFO */
    while (e->queued.head && e->active.n < e->max_seqs) {
        s = e->queued.head;
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
        n = 0;
        /* decode rows first: running streams never wait behind prefill */
        for (s = e->active.head; s && budget > 0; s = s->next) {
            if (s->n_past + 1 != s->n_tokens || s->n_past < s->n_prompt
                || s->preempted_at == e->step_id)
            {
                continue;
            }
            if (st_kv_seq_reserve(&e->kv, &s->kv, s->n_past + 1) != ST_OK) {
                continue;
            }
            e->batch[n].token = s->tokens[s->n_past];
            e->batch[n].pos = s->n_past;
            e->batch[n].seq = &s->kv;
            e->batch[n].want_logits = 1;
            e->batch_seq[n] = s;
            n++;
            budget--;
        }
        /* then prefill chunks (prompt, or everything after preemption) */
        for (s = e->active.head; s && budget > 0; s = s->next) {
            uint32_t todo, take, j;

            if ((s->n_past + 1 == s->n_tokens && s->n_past >= s->n_prompt)
                || s->preempted_at == e->step_id)
            {
                continue;
            }
            if (s->n_past == 0 && s->kv.n_blocks == 0) {
                /* share cached blocks of an equal prefix; leave at least
                 * one token to compute so the step yields logits */
                s->n_past = st_kv_prefix_lookup(&e->kv, &s->kv, s->tokens,
                                                s->n_tokens, s->n_tokens - 1);
                if (!s->started) {
                    s->n_cached = s->n_past;
                }
            }
            s->started = 1;
            todo = s->n_tokens - s->n_past;
            take = todo < budget ? todo : budget;
            if (st_kv_seq_reserve(&e->kv, &s->kv, s->n_past + take) != ST_OK) {
                continue;
            }
            for (j = 0; j < take; j++) {
                e->batch[n].token = s->tokens[s->n_past + j];
                e->batch[n].pos = s->n_past + j;
                e->batch[n].seq = &s->kv;
                e->batch[n].want_logits = (j == todo - 1);
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
        if (e->batch[i].pos < e->batch_seq[i]->n_prompt) {
            e->stats.tokens_prefilled++;
        }
    }
    for (s = e->active.head; s; s = s->next) {
        st_kv_commit(&e->kv, &s->kv, s->tokens, s->n_past);
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
        tok = st_sampler_sample(s->sampler, row, &chosen, top);
        if (tok < 0) {
            snprintf(s->error, sizeof(s->error),
                     "every token is banned (logit_bias)");
            st_seq_finish(e, s, ST_FINISH_ERROR);
            continue;
        }
        e->stats.tokens_generated++;
        st_seq_accept(e, s, tok, chosen.logprob, top);
    }
    return ST_OK;
}


int
st_engine_has_work(const st_engine *e)
{
    return e->queued.n > 0 || e->active.n > 0;
}


void
st_engine_get_stats(const st_engine *e, st_engine_stats *out)
{
    *out = e->stats;
    out->seqs_active = e->active.n;
    out->seqs_queued = e->queued.n;
    out->kv_blocks_total = e->kv.n_blocks;
    out->kv_blocks_free = st_kv_available(&e->kv);
    out->kv_blocks_cached = e->kv.n_registered;
    out->prefix_hit_tokens = e->kv.hits_tokens;
    out->kv_evictions = e->kv.evictions;
}
