
/*
 * A submitted generation request until it ends: the client going away,
 * the queue / request / stream timer, and every step's engine output
 * rendered as OpenAI chunks, worker-API events or a final JSON body.
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


/*
 * Period of a stream's timer once its first output is out. It limits
 * nothing (request_timeout and send_timeout do): the timer only keeps the
 * stream known to nginx, so that a shutting-down worker drains it.
 */
#define NGX_HTTP_STARLING_DRAIN_MSEC  60000


/* nginx's check for a client that went away; such a request is logged
 * 499 even when the stream had started (its status was 200) */
void
ngx_http_starling_test_reading(ngx_http_request_t *r)
{
    ngx_http_starling_ctx_t  *ctx;

    ngx_http_test_reading(r);

    if (r->connection->error) {
        /* finalization was posted, r is still here */
        ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);
        if (ctx != NULL && !ctx->done) {
            r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
            /* logged now, before the engine retires the sequence */
            if (ctx->finish == ST_FINISH_NONE) {
                ctx->finish = ST_FINISH_CANCELLED;
            }
        }
    }
}


/* The next timer delay: `dflt`, but never past the request's wall-clock
 * deadline (starling_request_timeout). */
ngx_msec_t
ngx_http_starling_timer_delay(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_loc_conf_t *slcf, ngx_msec_t dflt)
{
    ngx_msec_t  elapsed, left;

    if (slcf->request_timeout == 0 || ctx->timed_out) {
        return dflt;
    }
    elapsed = ngx_current_msec - ctx->start_msec;
    left = elapsed >= slcf->request_timeout
           ? 1 : slcf->request_timeout - elapsed;
    return left < dflt ? left : dflt;
}


/*
 * Until the engine admits the request (gives it a sequence slot; its
 * first step, or its first token) the timer is the queue timeout (503 +
 * Retry-After); afterwards only starling_request_timeout limits it, and
 * the timer otherwise only keeps the request known to nginx: a worker that
 * is shutting down (quit, reload) waits for non-cancelable timers, so
 * open streams drain instead of being cut.
 */
void
ngx_http_starling_timer_handler(ngx_event_t *ev)
{
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_starling_ctx_t        *ctx = ev->data;
    ngx_http_starling_loc_conf_t   *slcf;

    r = ctx->request;
    c = r->connection;
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "starling: timer fired: header sent %ui, done %ui, "
                   "timed out %ui, %M ms since start", ctx->header_sent,
                   ctx->done, ctx->timed_out,
                   ngx_current_msec - ctx->start_msec);

    if (slcf->request_timeout && !ctx->done && !ctx->timed_out
        && ngx_current_msec - ctx->start_msec >= slcf->request_timeout)
    {
        /* wall-clock limit: the sequence is cancelled at the next step
         * boundary and the stream ends normally (stop_reason TIMEOUT,
         * finish_reason "length") */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "starling: request timeout (%M ms)",
                      slcf->request_timeout);
        ctx->timed_out = 1;
        ngx_http_starling_cancel(ctx);
        ngx_add_timer(&ctx->timer, NGX_HTTP_STARLING_DRAIN_MSEC);
        return;
    }

    /* header_sent alone is not enough: a non-streaming reply sends its
     * header at the very end, long after admission */
    if (ctx->admitted || ctx->header_sent || ctx->done) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "starling: timer re-armed (drain)");
        ngx_add_timer(&ctx->timer,
                      ngx_http_starling_timer_delay(ctx, slcf,
                                        NGX_HTTP_STARLING_DRAIN_MSEC));
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "starling: no output within the queue timeout");

    ngx_http_starling_count_timeout(ctx);
    ctx->done = 1;
    ngx_http_starling_detach(ctx);

    if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
        ngx_http_starling_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_starling_finish(ctx,
        ngx_http_starling_error_status(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
            "server_error", NULL, "queue_timeout",
            "the request waited too long for the engine; retry later"));
}


/*
 * Engine output for one request (event loop, between steps). After
 * ngx_http_starling_finish() the ctx may be gone: return at once.
 */
void
ngx_http_starling_on_output(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (ctx->parent != NULL) {
        ngx_http_starling_choice_output(ctx, out);
        return;
    }

    r = ctx->request;
    c = r->connection;

    if (ctx->done) {
        return;
    }

    /* queue_ms is set once the engine gave the sequence a slot (its
     * first step); the queue timeout ends there */
    if (out->queue_ms > 0 || out->n_tokens || out->n_generated) {
        ctx->admitted = 1;
    }

    if (out->n_tokens == 0 && out->finish == ST_FINISH_NONE) {
        return;
    }

    ctx->prompt_tokens = out->n_prompt_tokens ? out->n_prompt_tokens
                                              : ctx->prompt_tokens;
    ctx->cached_tokens = out->n_cached_tokens;
    ctx->session_result = out->session;
    ctx->completion_tokens = out->n_generated;
    ctx->queue_ms = out->queue_ms;
    ctx->ttft_ms = out->ttft_ms;
    ctx->decode_ms = out->decode_ms;
    ctx->has_figures = 1;

    if (ctx->stream) {
        if (!ctx->header_sent) {
            if (out->finish == ST_FINISH_ERROR && out->n_tokens == 0) {
                goto failed_early;
            }
            rc = ngx_http_starling_stream_header(ctx);
            if (rc == NGX_ERROR || rc > NGX_OK) {
                goto broken;
            }
        }

        if (ngx_http_starling_emit_tokens(ctx, out) == NGX_ERROR) {
            goto broken;
        }

        if (out->finish == ST_FINISH_NONE) {
            ngx_http_run_posted_requests(c);
            return;
        }

        ctx->finish = out->finish;
        ctx->done = 1;
        ngx_http_starling_detach(ctx);
        ngx_http_starling_count_finish(r, ctx);

        rc = ngx_http_starling_emit_end(ctx, out);
        ngx_http_starling_finish(ctx, rc);
        return;
    }

    /* non-streaming: collect, answer once at the end */
    if (ngx_http_starling_emit_tokens(ctx, out) == NGX_ERROR) {
        goto broken;
    }

    if (out->finish == ST_FINISH_NONE) {
        return;
    }

    ctx->finish = out->finish;
    ctx->done = 1;
    ctx->header_sent = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_count_finish(r, ctx);

    if (out->finish == ST_FINISH_ERROR) {
        goto failed_late;
    }

    ngx_http_starling_finish(ctx, ngx_http_starling_reply_full(ctx, out));
    return;

failed_early:

    ctx->finish = out->finish;
    ctx->done = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_count_finish(r, ctx);

failed_late:

    ngx_log_error(NGX_LOG_ERR, c->log, 0, "starling: generation failed: %s",
                  out->error);
    ngx_http_starling_finish(ctx,
        ngx_http_starling_error_status(r, ctx,
            NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL,
            "engine_error", out->error[0] ? out->error : "engine failure"));
    return;

broken:

    /* the client went away mid-write (or the output chain failed): it
     * ends here, so it is counted here (cancelled), not in the cleanup */
    r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    if (ctx->finish == ST_FINISH_NONE) {
        ctx->finish = ST_FINISH_CANCELLED;
    }
    ctx->done = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_count_finish(r, ctx);
    ngx_http_starling_finish(ctx, NGX_ERROR);
}
