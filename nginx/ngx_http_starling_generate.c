
/*
 * Generation requests (completions, chat, execute): picks the model,
 * turns the prompt into ids (in the event loop, or on the model's thread
 * pool for a long one), checks the limits, copies what the engine reads
 * into r->pool, submits the sequence and arms the request's timer
 * (ngx_http_starling_lifecycle.c).
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_tokenlimit.h"
#include "ngx_http_starling_tenant.h"


/* A prompt text of at least this many bytes is tokenized on the model's
 * thread pool (between engine steps), not in the event loop: 32 KiB of
 * one repeated letter takes ~27 ms with a 152k-entry BPE vocab, 19 ms
 * with a 32k SPM one, English text ~0.5-1.4 ms (starling-tokbench -c,
 * AMD EPYC Zen 3); 1 KiB stays well under a millisecond. */
#define NGX_HTTP_STARLING_TOKENIZE_INLINE_MAX  1024


/* A tokenization on the pool thread: the thread reads tok and text and
 * writes tokens, st, err only; the rest is the event loop's. Allocated
 * outside r->pool (ngx_alloc), freed by the completion handler; the
 * request is kept alive meanwhile (r->main->blocked). */
typedef struct {
    ngx_thread_task_t               task;
    ngx_http_request_t             *r;
    ngx_http_starling_ctx_t        *ctx;
    st_api_request                 *req;     /* owned until completion */
    const st_tokenizer             *tok;
    const char                     *text;
    size_t                          len;
    char                           *owned;   /* malloc'd text or NULL */
    const char *const              *extra_stop;
    size_t                          n_extra;
    st_tokens                       tokens;
    st_status                       st;
    st_error                        err;
} ngx_http_starling_tok_job_t;


static ngx_int_t ngx_http_starling_generate_ids(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req,
    const char *const *extra_stop, size_t n_extra);
static ngx_int_t ngx_http_starling_tokenize_async(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req, const char *text,
    size_t len, char *owned, const char *const *extra_stop, size_t n_extra);
static void ngx_http_starling_tok_thread(void *data, ngx_log_t *log);
static void ngx_http_starling_tok_done(ngx_event_t *ev);


ngx_http_starling_model_t *
ngx_http_starling_pick_model(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_http_starling_main_conf_t  *smcf;

    if (req->model == NULL || req->model[0] == '\0') {
        return ctx->model;
    }

    if (ngx_strlen(req->model) == ctx->model->name.len
        && ngx_strncmp(req->model, ctx->model->name.data,
                       ctx->model->name.len) == 0)
    {
        return ctx->model;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    return ngx_http_starling_find_model(smcf, (u_char *) req->model,
                                        ngx_strlen(req->model));
}


/* echo: the prompt's own text, or the text of its token ids */
static ngx_int_t
ngx_http_starling_echo_text(ngx_http_request_t *r, const st_tokenizer *tok,
    const char *text, size_t len, const int32_t *ids, size_t n_ids,
    ngx_str_t *echo)
{
    size_t  cap;

    if (text != NULL) {
        echo->len = len;
        echo->data = ngx_pnalloc(r->pool, len + 1);
        if (echo->data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(echo->data, text, len);
        return NGX_OK;
    }

    cap = st_detokenize(tok, ids, n_ids, NULL, 0, 0, 0);
    echo->data = ngx_pnalloc(r->pool, cap + 1);
    if (echo->data == NULL) {
        return NGX_ERROR;
    }
    echo->len = st_detokenize(tok, ids, n_ids, (char *) echo->data, cap, 0,
                              0);
    return NGX_OK;
}


/*
 * One completions prompt (text or ids) -> ids in r->pool, checked against
 * the vocabulary and the context. NGX_OK, or NGX_DECLINED with the reply
 * (400) in *rc, or NGX_ERROR.
 */
static ngx_int_t
ngx_http_starling_batch_prompt(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const st_api_prompt *bp, size_t index,
    int32_t **ids, size_t *n_ids, ngx_str_t *echo, ngx_int_t *rc)
{
    char                           msg[192];
    size_t                         i, n_ctx;
    st_error                       err;
    st_tokens                      toks;
    ngx_http_starling_model_t     *m = ctx->model;
    ngx_http_starling_loc_conf_t  *slcf;
    const st_tokenizer            *tok = st_engine_tokenizer(m->engine);

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);
    n_ctx = m->info->n_ctx;

    toks.ids = NULL;
    toks.n = 0;
    toks.cap = 0;

    if (bp->text != NULL) {
        if (!st_api_utf8_valid(bp->text, bp->len)) {
            ngx_snprintf((u_char *) msg, sizeof(msg),
                         "prompt[%uz] is not valid UTF-8%Z", index);
            goto invalid;
        }
        if (st_tokenize(tok, bp->text, bp->len, 1, 1, &toks, &err)
            != ST_OK)
        {
            free(toks.ids);
            return NGX_ERROR;
        }
    } else {
        for (i = 0; i < bp->n_ids; i++) {
            if ((uint32_t) bp->ids[i] >= m->info->n_vocab) {
                ngx_snprintf((u_char *) msg, sizeof(msg),
                             "prompt[%uz]: token id out of the "
                             "vocabulary%Z", index);
                goto invalid;
            }
        }
    }

    *n_ids = bp->text != NULL ? toks.n : bp->n_ids;

    if (*n_ids == 0) {
        free(toks.ids);
        ngx_snprintf((u_char *) msg, sizeof(msg), "prompt[%uz] is empty%Z",
                     index);
        goto invalid;
    }

    if (*n_ids + 1 > n_ctx
        || (slcf->max_prompt_tokens && *n_ids > slcf->max_prompt_tokens))
    {
        free(toks.ids);
        ngx_snprintf((u_char *) msg, sizeof(msg),
                     "prompt[%uz] is %uz tokens; this model's context is "
                     "%uz tokens%Z", index, *n_ids, n_ctx);
        *rc = ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                                       "prompt", "context_length_exceeded",
                                       msg);
        return NGX_DECLINED;
    }

    *ids = ngx_palloc(r->pool, *n_ids * sizeof(int32_t));
    if (*ids == NULL) {
        free(toks.ids);
        return NGX_ERROR;
    }
    ngx_memcpy(*ids, bp->text != NULL ? toks.ids : bp->ids,
               *n_ids * sizeof(int32_t));
    free(toks.ids);

    if (echo == NULL) {
        return NGX_OK;
    }

    return ngx_http_starling_echo_text(r, tok, bp->text, bp->len, *ids,
                                       *n_ids, echo);

invalid:

    free(toks.ids);
    *rc = ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST, "prompt",
                                   "invalid", msg);
    return NGX_DECLINED;
}


/* the request's reference to its output constraint (the sequence holds
 * its own once submitted) */
static void
ngx_http_starling_constraint_cleanup(void *data)
{
    st_constraint_free(data);
}


ngx_int_t
ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_int_t                       rc = NGX_ERROR;
    const char                     *p_text;
    size_t                          p_len, n_p_ids, n_new;
    const int32_t                  *p_ids;
    char                            msg[192];
    const char *const              *extra_stop;
    size_t                          i, n_extra, limit;
    st_jbuf                         chat;
    st_error                        err;
    st_status                       st;
    const char                     *text;
    size_t                          text_len;
    const st_tokenizer             *tok;
    ngx_http_starling_model_t      *m;
    ngx_http_starling_loc_conf_t   *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    m = ngx_http_starling_pick_model(r, ctx, req);
    if (m == NULL) {
        ngx_snprintf((u_char *) msg, sizeof(msg), "the model \"%s\" does "
                     "not exist%Z", req->model);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                        "model_not_found", msg);
    }

    ctx->model = m;

    if (!m->loaded) {
        return ngx_http_starling_unavailable(r, ctx, m);
    }

    if (req->job_id != NULL) {
        ctx->job_id.len = ngx_strlen(req->job_id);
        ctx->job_id.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                           ctx->job_id.len,
                                           (u_char *) req->job_id });
        if (ctx->job_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* unique across the workers (the registry is in shared memory) */
        if (ngx_http_starling_job_register(ctx) == NGX_DECLINED) {
            ctx->job_id.len = 0;
            ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);
            return ngx_http_starling_error_status(r, ctx, NGX_HTTP_CONFLICT,
                       "invalid_request_error", "job_id", "duplicate",
                       "a job with this job_id is running");
        }
    }

    /* bounded queue: max_seqs run, queue_size wait, the rest is told to
     * come back later */
    limit = (m->max_seqs ? m->max_seqs : 16) + slcf->queue_size;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: admission: %ui live + %ui waiting, limit %uz",
                   m->n_live, m->n_waiting, limit);

    /* a request's choices count (n > 1, prompt batches) unless the model
     * is idle: then any n fits, the choices taking turns for slots */
    n_new = (req->kind == ST_API_EXECUTE) ? 1
            : (req->n ? req->n : 1) * (req->n_batch ? req->n_batch : 1);

    if (m->n_live + m->n_waiting >= limit
        || (m->n_live + m->n_waiting > 0
            && m->n_live + m->n_waiting + n_new > limit))
    {
        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_REJECTED);
        if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx,
                   NGX_HTTP_TOO_MANY_REQUESTS, "rate_limit_error", NULL,
                   "queue_full", "too many requests are queued; retry later");
    }

    /* token budget of the request's key, before any work */
    if (ngx_http_starling_token_limit_check(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    tok = st_engine_tokenizer(m->engine);

    /* a batch's first prompt takes the single prompt's way; the others
     * are checked one by one below */
    p_text = req->prompt;
    p_len = req->prompt_len;
    p_ids = req->prompt_ids;
    n_p_ids = req->n_prompt_ids;
    if (req->n_batch) {
        p_text = req->batch[0].text;
        p_len = req->batch[0].len;
        p_ids = req->batch[0].ids;
        n_p_ids = req->batch[0].n_ids;
    }

    /* prompt -> ids: in the event loop, or for a long text on the pool
     * (ngx_http_starling_tokenize_async) */
    ctx->tokens.ids = NULL;
    ctx->tokens.n = 0;
    ctx->tokens.cap = 0;
    n_extra = 0;
    extra_stop = NULL;

    if (req->kind == ST_API_CHAT || req->kind == ST_API_RESPONSES) {
        for (i = 0; i < req->n_messages; i++) {
            if (req->messages[i].n_tool_calls
                || ngx_strcmp(req->messages[i].role, "tool") == 0)
            {
                break;
            }
        }

        st_jbuf_init(&chat);
        if (req->n_tools || i < req->n_messages) {
            st = st_api_chat_render_tools((const char *) m->chat_template.data,
                                          m->info->chat_template, req, &chat,
                                          &extra_stop, &n_extra, &err);
        } else {
            st = st_api_chat_render((const char *) m->chat_template.data,
                                    m->info->chat_template, req->messages,
                                    req->n_messages, &chat, &extra_stop,
                                    &n_extra, &err);
        }
        if (st != ST_OK) {
            st_jbuf_free(&chat);
            return ngx_http_starling_reject(r, ctx,
                       st == ST_ERR_NOMEM ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                          : NGX_HTTP_BAD_REQUEST,
                       "messages", "chat_template", err.msg);
        }
        if (chat.len >= NGX_HTTP_STARLING_TOKENIZE_INLINE_MAX
            && m->pool != NULL)
        {
            /* the job owns chat.data from here */
            return ngx_http_starling_tokenize_async(r, ctx, req, chat.data,
                                                    chat.len, chat.data,
                                                    extra_stop, n_extra);
        }
        st = st_tokenize(tok, chat.data ? chat.data : "", chat.len, 1, 1,
                         &ctx->tokens, &err);
        st_jbuf_free(&chat);

    } else if (p_ids != NULL) {
        st = ST_OK;
        for (i = 0; i < n_p_ids; i++) {
            if ((uint32_t) p_ids[i] >= m->info->n_vocab) {
                return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                           "prompt", "range",
                           "prompt token id out of the vocabulary");
            }
        }
        ctx->tokens.ids = malloc(n_p_ids * sizeof(int32_t));
        if (ctx->tokens.ids == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_memcpy(ctx->tokens.ids, p_ids, n_p_ids * sizeof(int32_t));
        ctx->tokens.n = n_p_ids;
        ctx->tokens.cap = n_p_ids;

    } else {
        text = p_text ? p_text : "";
        text_len = p_len;

        if (!st_api_utf8_valid(text, text_len)) {
            return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "prompt", "utf8", "prompt is not valid UTF-8");
        }

        if (text_len >= NGX_HTTP_STARLING_TOKENIZE_INLINE_MAX
            && m->pool != NULL)
        {
            return ngx_http_starling_tokenize_async(r, ctx, req, text,
                                                    text_len, NULL,
                                                    extra_stop, n_extra);
        }
        st = st_tokenize(tok, text, text_len, 1, 1, &ctx->tokens, &err);
    }

    if (st != ST_OK) {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_starling_generate_ids(r, ctx, req, extra_stop, n_extra);
}


/* Tokenize text[0..len) on the model's thread pool; the request goes on
 * in ngx_http_starling_tok_done. Returns NGX_AGAIN (req now belongs to
 * the job) or an HTTP status (req and owned still the caller's). */
static ngx_int_t
ngx_http_starling_tokenize_async(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req, const char *text,
    size_t len, char *owned, const char *const *extra_stop, size_t n_extra)
{
    ngx_http_starling_tok_job_t  *job;

    job = ngx_calloc(sizeof(ngx_http_starling_tok_job_t),
                     r->connection->log);
    if (job == NULL) {
        free(owned);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    job->r = r;
    job->ctx = ctx;
    job->req = req;
    job->tok = st_engine_tokenizer(ctx->model->engine);
    job->text = text;
    job->len = len;
    job->owned = owned;
    job->extra_stop = extra_stop;
    job->n_extra = n_extra;
    job->st = ST_ERR_NOMEM;

    job->task.ctx = job;
    job->task.handler = ngx_http_starling_tok_thread;
    job->task.event.handler = ngx_http_starling_tok_done;
    job->task.event.data = job;
    job->task.event.log = r->connection->log;

    if (ngx_thread_task_post(ctx->model->pool, &job->task) != NGX_OK) {
        free(owned);
        ngx_free(job);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: prompt of %uz bytes tokenized on the pool",
                   len);

    /* nginx must not free the request while the thread reads job */
    r->main->blocked++;
    r->aio = 1;

    return NGX_AGAIN;
}


/* pool thread: the tokenizer is read-only, any thread may use it */
static void
ngx_http_starling_tok_thread(void *data, ngx_log_t *log)
{
    ngx_http_starling_tok_job_t  *job = data;

    (void) log;

    job->st = st_tokenize(job->tok, job->text ? job->text : "", job->len, 1,
                          1, &job->tokens, &job->err);
}


/* event loop: the rest of ngx_http_starling_generate with the ids */
static void
ngx_http_starling_tok_done(ngx_event_t *ev)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_starling_ctx_t      *ctx;
    ngx_http_starling_tok_job_t  *job;

    job = ev->data;
    r = job->r;
    ctx = job->ctx;
    c = r->connection;

    r->main->blocked--;
    r->aio = 0;

    free(job->owned);
    ctx->tokens = job->tokens;

    if (job->st != ST_OK) {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        rc = ngx_http_starling_generate_ids(r, ctx, job->req, job->extra_stop,
                                            job->n_extra);
    }

    st_api_request_free(job->req);
    ngx_free(job);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* The prompt's ids are in ctx->tokens (malloc'd; moved into r->pool or
 * freed here): the limits, the copies the engine reads, submission. */
static ngx_int_t
ngx_http_starling_generate_ids(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req,
    const char *const *extra_stop, size_t n_extra)
{
    ngx_int_t                       rc = NGX_ERROR;
    ngx_uint_t                      n_prompts;
    int32_t                       **batch_ids;
    size_t                         *batch_n;
    ngx_str_t                      *echo;
    const char                     *p_text;
    size_t                          p_len;
    char                          **stop, msg[192];
    size_t                          i, n_ctx;
    int32_t                        *ids;
    st_error                        err;
    st_logit_bias                  *bias;
    const st_tokenizer             *tok;
    ngx_http_starling_model_t      *m;
    ngx_http_starling_loc_conf_t   *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);
    m = ctx->model;
    tok = st_engine_tokenizer(m->engine);
    n_ctx = m->info->n_ctx;

    p_text = req->n_batch ? req->batch[0].text : req->prompt;
    p_len = req->n_batch ? req->batch[0].len : req->prompt_len;

    if (ctx->tokens.n == 0) {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages"
                   : req->kind == ST_API_RESPONSES ? "input" : "prompt",
                   "length", "the prompt is empty");
    }

    if (ctx->tokens.n + 1 > n_ctx
        || (slcf->max_prompt_tokens
            && ctx->tokens.n > slcf->max_prompt_tokens))
    {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        ngx_snprintf((u_char *) msg, sizeof(msg),
                     "the prompt is %uz tokens; this model's context is %uz "
                     "tokens (limit for prompts: %uz)%Z", ctx->tokens.n,
                     n_ctx, slcf->max_prompt_tokens
                            && slcf->max_prompt_tokens < n_ctx - 1
                            ? slcf->max_prompt_tokens : n_ctx - 1);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages"
                   : req->kind == ST_API_RESPONSES ? "input" : "prompt",
                   "context_length_exceeded", msg);
    }

    if (st_sampling_validate(&req->sampling, m->info->n_vocab, &err)
        != ST_OK)
    {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   "sampling", "range", err.msg);
    }

    /* copy what the engine reads at submit time into r->pool: the
     * request may wait for a step boundary */
    ids = ngx_palloc(r->pool, ctx->tokens.n * sizeof(int32_t));
    stop = ngx_palloc(r->pool, (req->n_stop + n_extra + 1) * sizeof(char *));
    bias = ngx_palloc(r->pool, (req->n_logit_bias + 1)
                               * sizeof(st_logit_bias));
    if (ids == NULL || stop == NULL || bias == NULL) {
        free(ctx->tokens.ids);
        ctx->tokens.ids = NULL;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ids, ctx->tokens.ids, ctx->tokens.n * sizeof(int32_t));
    ctx->prompt_tokens = (uint32_t) ctx->tokens.n;
    free(ctx->tokens.ids);
    ctx->tokens.ids = NULL;

    for (i = 0; i < req->n_stop; i++) {
        stop[i] = (char *) ngx_pstrdup(r->pool, &(ngx_str_t) {
                               ngx_strlen(req->stop[i]) + 1,
                               (u_char *) req->stop[i] });
        if (stop[i] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    for (i = 0; i < n_extra; i++) {
        stop[req->n_stop + i] = (char *) extra_stop[i];
    }
    ctx->stop = stop;
    ctx->n_stop = req->n_stop + n_extra;

    if (req->n_logit_bias) {
        ngx_memcpy(bias, req->logit_bias,
                   req->n_logit_bias * sizeof(st_logit_bias));
    }

    ctx->sreq.prompt = ids;
    ctx->sreq.n_prompt = ctx->prompt_tokens;
    ctx->sreq.max_tokens = req->max_tokens ? req->max_tokens
                                           : (uint32_t) slcf->max_tokens;
    ctx->sreq.sampling = req->sampling;
    ctx->sreq.sampling.logit_bias = bias;
    ctx->sreq.sampling.n_logit_bias = req->n_logit_bias;
    ctx->sreq.stop = (const char *const *) stop;
    ctx->sreq.n_stop = ctx->n_stop;
    ctx->sreq.ignore_eos = req->ignore_eos;
    /* echo + logprobs: the prompt tokens' logprobs come first */
    ctx->sreq.prompt_logprobs = req->echo && req->logprobs;

    switch (ngx_http_starling_session_id(r, ctx, req)) {
    case NGX_OK:
        break;
    case NGX_DECLINED:
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   "session_id", "format", "X-Session-ID must be 1..128 "
                   "printable ASCII characters");
    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (req->constraint != NULL) {
        ngx_pool_cleanup_t  *cln;

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->sreq.constraint = st_constraint_ref(req->constraint);
        cln->handler = ngx_http_starling_constraint_cleanup;
        cln->data = ctx->sreq.constraint;
    }

    /* tenant, weight and priority for the engine's fair queueing */
    if (ngx_http_starling_tenant_apply(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    ctx->max_tokens = ctx->sreq.max_tokens;
    ctx->stream = (req->kind == ST_API_EXECUTE) ? 1 : req->stream;
    ctx->include_usage = req->include_usage;
    ctx->logprobs = req->logprobs;
    ctx->top_logprobs = (ngx_uint_t) req->top_logprobs;
    ctx->n_per_prompt = req->n ? req->n : 1;

    switch (ngx_http_starling_tools_setup(r, ctx, req, &err)) {
    case NGX_OK:
        break;
    case NGX_DECLINED:
        /* a parameters schema the constrained decoder cannot compile */
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                                        "tools", "unsupported", err.msg);
    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (req->instructions != NULL) {
        ctx->instructions.len = ngx_strlen(req->instructions);
        ctx->instructions.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                     ctx->instructions.len,
                                     (u_char *) req->instructions });
        if (ctx->instructions.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (req->text_format != NULL) {
        ctx->text_format.len = ngx_strlen(req->text_format);
        ctx->text_format.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                    ctx->text_format.len,
                                    (u_char *) req->text_format });
        if (ctx->text_format.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* several choices (n > 1, a prompt batch) or echo: one child ctx
     * per choice (ngx_http_starling_choices.c) */
    if (req->kind != ST_API_EXECUTE
        && (ctx->n_per_prompt > 1 || req->n_batch || req->echo))
    {
        n_prompts = req->n_batch ? req->n_batch : 1;
        batch_ids = ngx_pcalloc(r->pool, n_prompts * sizeof(int32_t *));
        batch_n = ngx_pcalloc(r->pool, n_prompts * sizeof(size_t));
        echo = ngx_pcalloc(r->pool, n_prompts * sizeof(ngx_str_t));
        if (batch_ids == NULL || batch_n == NULL || echo == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        batch_ids[0] = ids;
        batch_n[0] = ctx->prompt_tokens;
        if (req->echo
            && ngx_http_starling_echo_text(r, tok, p_text, p_len, ids,
                                           batch_n[0], &echo[0]) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (i = 1; i < req->n_batch; i++) {
            switch (ngx_http_starling_batch_prompt(r, ctx, &req->batch[i],
                        i, &batch_ids[i], &batch_n[i],
                        req->echo ? &echo[i] : NULL, &rc))
            {
            case NGX_OK:
                break;
            case NGX_DECLINED:
                return rc;
            default:
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            ctx->prompt_tokens += (uint32_t) batch_n[i];
        }

        if (ngx_http_starling_choices_create(r, ctx, n_prompts, batch_ids,
                                             batch_n,
                                             req->echo ? echo : NULL)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->logprobs && !ctx->stream && ctx->n_choices == 0) {
        ctx->lps = ngx_array_create(r->pool, 16,
                                    sizeof(ngx_http_starling_lp_t));
        if (ctx->lps == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if ((ctx->n_choices ? ngx_http_starling_choices_submit(ctx, &err)
                        : ngx_http_starling_submit(ctx, &err))
        != NGX_OK)
    {
        if (err.code == ST_ERR_FULL) {
            if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            return ngx_http_starling_reject(r, ctx,
                       NGX_HTTP_TOO_MANY_REQUESTS, NULL, "queue_full",
                       err.msg);
        }
        return ngx_http_starling_reject(r, ctx,
                   err.code == ST_ERR_INVALID || err.code == ST_ERR_CONTEXT
                   ? NGX_HTTP_BAD_REQUEST : NGX_HTTP_INTERNAL_SERVER_ERROR,
                   "prompt", "engine", err.msg);
    }

    ngx_http_starling_count_start(ctx);
    ngx_http_starling_token_limit_charge(ctx, ctx->prompt_tokens);

    /* the client may go away while the engine works: nginx then
     * finalizes the request and the pool cleanup frees the sequence */
    r->read_event_handler = ngx_http_starling_test_reading;

    ctx->timer.handler = ngx_http_starling_timer_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ctx->timer.cancelable = 0;
    ngx_add_timer(&ctx->timer,
                  ngx_http_starling_timer_delay(ctx, slcf,
                                                slcf->queue_timeout));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: timer armed: %M ms (queue timeout %M ms)",
                   ngx_http_starling_timer_delay(ctx, slcf,
                                                 slcf->queue_timeout),
                   slcf->queue_timeout);

    return NGX_DONE;
}
