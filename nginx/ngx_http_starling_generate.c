
/*
 * Generation requests (completions, chat, execute): picks the model,
 * turns the prompt into ids in the event loop, checks the limits, copies
 * what the engine reads into r->pool, submits the sequence and arms the
 * request's timer (ngx_http_starling_lifecycle.c).
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_tokenlimit.h"
#include "ngx_http_starling_tenant.h"


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


ngx_int_t
ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    char                          **stop, msg[192];
    const char *const              *extra_stop;
    size_t                          i, n_extra, n_ctx, limit;
    ngx_int_t                       rc;
    int32_t                        *ids;
    st_jbuf                         chat;
    st_error                        err;
    st_status                       st;
    const char                     *text;
    size_t                          text_len;
    st_logit_bias                  *bias;
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

    if (m->n_live + m->n_waiting >= limit) {
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
    n_ctx = m->info->n_ctx;

    /* prompt -> ids, in the event loop */
    ctx->tokens.ids = NULL;
    ctx->tokens.n = 0;
    ctx->tokens.cap = 0;
    n_extra = 0;
    extra_stop = NULL;

    if (req->kind == ST_API_CHAT) {
        st_jbuf_init(&chat);
        st = st_api_chat_render((const char *) m->chat_template.data,
                                m->info->chat_template, req->messages,
                                req->n_messages, &chat, &extra_stop,
                                &n_extra, &err);
        if (st != ST_OK) {
            st_jbuf_free(&chat);
            return ngx_http_starling_reject(r, ctx,
                       st == ST_ERR_NOMEM ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                          : NGX_HTTP_BAD_REQUEST,
                       "messages", "chat_template", err.msg);
        }
        st = st_tokenize(tok, chat.data ? chat.data : "", chat.len, 1, 1,
                         &ctx->tokens, &err);
        st_jbuf_free(&chat);

    } else if (req->prompt_ids != NULL) {
        st = ST_OK;
        for (i = 0; i < req->n_prompt_ids; i++) {
            if ((uint32_t) req->prompt_ids[i] >= m->info->n_vocab) {
                return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                           "prompt", "range",
                           "prompt token id out of the vocabulary");
            }
        }
        ctx->tokens.ids = malloc(req->n_prompt_ids * sizeof(int32_t));
        if (ctx->tokens.ids == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_memcpy(ctx->tokens.ids, req->prompt_ids,
                   req->n_prompt_ids * sizeof(int32_t));
        ctx->tokens.n = req->n_prompt_ids;
        ctx->tokens.cap = req->n_prompt_ids;

    } else {
        text = req->prompt ? req->prompt : "";
        text_len = req->prompt_len;

        if (!st_api_utf8_valid(text, text_len)) {
            return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "prompt", "utf8", "prompt is not valid UTF-8");
        }

        st = st_tokenize(tok, text, text_len, 1, 1, &ctx->tokens, &err);
    }

    if (st != ST_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->tokens.n == 0) {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages" : "prompt",
                   "length", "the prompt is empty");
    }

    if (ctx->tokens.n + 1 > n_ctx
        || (slcf->max_prompt_tokens
            && ctx->tokens.n > slcf->max_prompt_tokens))
    {
        ngx_snprintf((u_char *) msg, sizeof(msg),
                     "the prompt is %uz tokens; this model's context is %uz "
                     "tokens (limit for prompts: %uz)%Z", ctx->tokens.n,
                     n_ctx, slcf->max_prompt_tokens
                            && slcf->max_prompt_tokens < n_ctx - 1
                            ? slcf->max_prompt_tokens : n_ctx - 1);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages" : "prompt",
                   "context_length_exceeded", msg);
    }

    if (st_sampling_validate(&req->sampling, m->info->n_vocab, &err)
        != ST_OK)
    {
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

    /* tenant, weight and priority for the engine's fair queueing */
    if (ngx_http_starling_tenant_apply(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    ctx->max_tokens = ctx->sreq.max_tokens;
    ctx->stream = (req->kind == ST_API_EXECUTE) ? 1 : req->stream;
    ctx->include_usage = req->include_usage;
    ctx->logprobs = req->logprobs;
    ctx->top_logprobs = (ngx_uint_t) req->top_logprobs;

    if (ctx->logprobs && !ctx->stream) {
        ctx->lps = ngx_array_create(r->pool, 16,
                                    sizeof(ngx_http_starling_lp_t));
        if (ctx->lps == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_starling_submit(ctx, &err) != NGX_OK) {
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
