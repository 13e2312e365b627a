
/*
 * POST /v1/embeddings: every input becomes an embedding sequence (a
 * child ctx of ngx_http_starling_choices.c, so that the bridge queues,
 * cancels and detaches it as any choice), prefilled through the engine's
 * normal step loop; the pooled vectors are gathered in r->pool and sent
 * as one OpenAI "list" object (st_api_embeddings_write).
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_tokenlimit.h"


static ngx_int_t ngx_http_starling_embeddings_reply(
    ngx_http_starling_ctx_t *ctx);


/*
 * One input (text or ids) -> ids in r->pool, checked against the
 * vocabulary and the context. NGX_OK, NGX_DECLINED with the reply (400)
 * in *rc, or NGX_ERROR.
 */
static ngx_int_t
ngx_http_starling_embed_input(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const st_api_prompt *in, size_t index,
    int32_t **ids, size_t *n_ids, ngx_int_t *rc)
{
    char                           msg[192];
    size_t                         i, n_ctx, limit;
    st_error                       err;
    st_tokens                      toks;
    ngx_http_starling_model_t     *m = ctx->model;
    ngx_http_starling_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);
    n_ctx = m->info->n_ctx;
    limit = slcf->max_prompt_tokens && slcf->max_prompt_tokens < n_ctx
            ? slcf->max_prompt_tokens : n_ctx;

    toks.ids = NULL;
    toks.n = 0;
    toks.cap = 0;

    if (in->text != NULL) {
        if (!st_api_utf8_valid(in->text, in->len)) {
            ngx_snprintf((u_char *) msg, sizeof(msg),
                         "input[%uz] is not valid UTF-8%Z", index);
            goto invalid;
        }
        if (st_tokenize(st_engine_tokenizer(m->engine), in->text, in->len,
                        1, 1, &toks, &err)
            != ST_OK)
        {
            free(toks.ids);
            return NGX_ERROR;
        }
    } else {
        for (i = 0; i < in->n_ids; i++) {
            if ((uint32_t) in->ids[i] >= m->info->n_vocab) {
                ngx_snprintf((u_char *) msg, sizeof(msg),
                             "input[%uz]: token id %D is out of the "
                             "vocabulary%Z", index, in->ids[i]);
                goto invalid;
            }
        }
    }

    *n_ids = in->text != NULL ? toks.n : in->n_ids;

    if (*n_ids == 0) {
        ngx_snprintf((u_char *) msg, sizeof(msg), "input[%uz] is empty%Z",
                     index);
        goto invalid;
    }

    if (*n_ids > limit) {
        free(toks.ids);
        ngx_snprintf((u_char *) msg, sizeof(msg),
                     "input[%uz] is %uz tokens; at most %uz fit (this "
                     "model's context is %uz tokens)%Z", index, *n_ids,
                     limit, n_ctx);
        *rc = ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                                       "input", "context_length_exceeded",
                                       msg);
        return NGX_DECLINED;
    }

    *ids = ngx_palloc(r->pool, *n_ids * sizeof(int32_t));
    if (*ids == NULL) {
        free(toks.ids);
        return NGX_ERROR;
    }
    ngx_memcpy(*ids, in->text != NULL ? toks.ids : in->ids,
               *n_ids * sizeof(int32_t));
    free(toks.ids);
    return NGX_OK;

invalid:

    free(toks.ids);
    *rc = ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST, "input",
                                   "invalid", msg);
    return NGX_DECLINED;
}


ngx_int_t
ngx_http_starling_embeddings(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    char                            msg[192];
    size_t                          i, limit, *n_ids;
    int32_t                       **ids;
    ngx_int_t                       rc = NGX_ERROR;
    st_error                        err;
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

    if (req->dimensions && req->dimensions != m->info->n_embd) {
        ngx_snprintf((u_char *) msg, sizeof(msg), "dimensions must be %uD, "
                     "this model's embedding size (reducing it is not "
                     "supported)%Z", m->info->n_embd);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                                        "dimensions", "unsupported", msg);
    }

    /* bounded queue, as for generation: every input is one sequence */
    limit = (m->max_seqs ? m->max_seqs : 16) + slcf->queue_size;

    if (m->n_live + m->n_waiting >= limit
        || (m->n_live + m->n_waiting > 0
            && m->n_live + m->n_waiting + req->n_inputs > limit))
    {
        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_REJECTED);
        if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx,
                   NGX_HTTP_TOO_MANY_REQUESTS, "rate_limit_error", NULL,
                   "queue_full", "too many requests are queued; retry later");
    }

    if (ngx_http_starling_token_limit_check(r, ctx, &rc) != NGX_OK) {
        return rc;
    }

    ids = ngx_pcalloc(r->pool, req->n_inputs * sizeof(int32_t *));
    n_ids = ngx_pcalloc(r->pool, req->n_inputs * sizeof(size_t));
    if (ids == NULL || n_ids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->prompt_tokens = 0;
    for (i = 0; i < req->n_inputs; i++) {
        switch (ngx_http_starling_embed_input(r, ctx, &req->inputs[i], i,
                                              &ids[i], &n_ids[i], &rc))
        {
        case NGX_OK:
            break;
        case NGX_DECLINED:
            return rc;
        default:
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->prompt_tokens += (uint32_t) n_ids[i];
    }

    ngx_memzero(&ctx->sreq, sizeof(st_request));
    ctx->sreq.embedding = 1;
    ctx->sreq.pooling = ST_POOLING_MODEL;
    ctx->sreq.normalize = req->normalize;
    ctx->stream = 0;
    ctx->n_per_prompt = 1;
    ctx->embed_base64 = req->encoding_base64 ? 1 : 0;

    if (ngx_http_starling_choices_create(r, ctx, req->n_inputs, ids, n_ids,
                                         NULL)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_starling_choices_submit(ctx, &err) != NGX_OK) {
        if (err.code == ST_ERR_FULL) {
            if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            return ngx_http_starling_reject(r, ctx,
                       NGX_HTTP_TOO_MANY_REQUESTS, NULL, "queue_full",
                       err.msg);
        }
        /* a model whose declared pooling is not supported, or a backend
         * without hidden states: the request cannot be served */
        return ngx_http_starling_reject(r, ctx,
                   err.code == ST_ERR_NOMEM || err.code == ST_ERR_INTERNAL
                   ? NGX_HTTP_INTERNAL_SERVER_ERROR : NGX_HTTP_BAD_REQUEST,
                   err.code == ST_ERR_UNSUPPORTED ? "model" : "input",
                   "engine", err.msg);
    }

    ngx_http_starling_count_start(ctx);
    ngx_http_starling_token_limit_charge(ctx, ctx->prompt_tokens);

    r->read_event_handler = ngx_http_starling_test_reading;

    ctx->timer.handler = ngx_http_starling_timer_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ctx->timer.cancelable = 0;
    ngx_add_timer(&ctx->timer,
                  ngx_http_starling_timer_delay(ctx, slcf,
                                                slcf->queue_timeout));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: embeddings: %uz inputs, %uD tokens",
                   req->n_inputs, ctx->prompt_tokens);

    return NGX_DONE;
}


/*
 * Engine output of one input's sequence (event loop, between steps, or
 * at once for one that never reached the engine). Nothing is sent until
 * every input is pooled; any failure fails the request.
 */
void
ngx_http_starling_embeddings_output(ngx_http_starling_ctx_t *c,
    const st_seq_output *out)
{
    ngx_http_request_t       *r = c->request;
    ngx_http_starling_ctx_t  *ctx = c->parent;
    ngx_uint_t                status;
    const char               *code, *msg;

    if (out->queue_ms > 0 || out->finish != ST_FINISH_NONE) {
        c->admitted = 1;
        ctx->admitted = 1;
    }

    if (out->finish == ST_FINISH_NONE) {
        return;
    }

    c->done = 1;

    if (ctx->done) {
        /* the reply is over (an error, or the client went away) */
        ngx_http_starling_detach(c);
        return;
    }

    if (out->finish == ST_FINISH_STOP && out->embedding != NULL
        && out->n_embd == ctx->model->info->n_embd)
    {
        /* the engine's vector lives until the release: copy it first */
        c->embedding = ngx_palloc(r->pool, out->n_embd * sizeof(float));
        if (c->embedding == NULL) {
            ngx_http_starling_detach(c);
            status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            code = "engine_error";
            msg = "out of memory";
            goto failed;
        }
        ngx_memcpy(c->embedding, out->embedding,
                   out->n_embd * sizeof(float));
        c->finish = ST_FINISH_STOP;
        ngx_http_starling_detach(c);

        if (++ctx->n_ended < ctx->n_choices) {
            return;
        }

        ctx->finish = ST_FINISH_STOP;
        ctx->queue_ms = out->queue_ms;
        ctx->has_figures = 1;
        ctx->done = 1;
        ngx_http_starling_count_finish(r, ctx);
        ctx->header_sent = 1;
        ngx_http_starling_choices_end(ctx,
                                      ngx_http_starling_embeddings_reply(ctx));
        return;
    }

    ngx_http_starling_detach(c);

    if (out->finish == ST_FINISH_CANCELLED && ctx->timed_out) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        code = "timeout";
        msg = "the embeddings did not finish within the request timeout";
    } else if (out->finish == ST_FINISH_CANCELLED) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        code = "cancelled";
        msg = "the request was cancelled";
    } else {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        code = "engine_error";
        msg = out->error[0] ? out->error : "engine failure";
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "starling: embedding failed: %s", msg);
    }

failed:

    ctx->finish = out->finish == ST_FINISH_CANCELLED ? ST_FINISH_CANCELLED
                                                     : ST_FINISH_ERROR;
    ctx->done = 1;
    ngx_http_starling_choices_cancel(ctx);
    ngx_http_starling_count_finish(r, ctx);
    ctx->header_sent = 1;
    ngx_http_starling_choices_end(ctx,
        ngx_http_starling_error_status(r, ctx, status, "server_error", NULL,
                                       code, msg));
}


static ngx_int_t
ngx_http_starling_embeddings_reply(ngx_http_starling_ctx_t *ctx)
{
    char                 *model;
    ngx_int_t             rc;
    ngx_uint_t            i;
    const float         **vecs;
    ngx_http_request_t   *r = ctx->request;

    vecs = ngx_palloc(r->pool, ctx->n_choices * sizeof(float *));
    model = ngx_pnalloc(r->pool, ctx->model->name.len + 1);
    if (vecs == NULL || model == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_cpystrn((u_char *) model, ctx->model->name.data,
                ctx->model->name.len + 1);

    for (i = 0; i < ctx->n_choices; i++) {
        vecs[i] = ctx->choices[i]->embedding;
    }

    st_jbuf_reset(&ctx->scratch);
    st_api_embeddings_write(&ctx->scratch, model,
                            (const float *const *) vecs, ctx->n_choices,
                            ctx->model->info->n_embd, (int) ctx->embed_base64,
                            ctx->prompt_tokens);
    if (ctx->scratch.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, ctx->scratch.data,
                                     ctx->scratch.len);
    return rc;
}
