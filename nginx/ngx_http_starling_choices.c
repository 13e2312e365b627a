
/*
 * Several choices in one OpenAI request: "n" > 1 and completions prompt
 * batches ("prompt": ["a", "b"]). The request's ctx holds no sequence of
 * its own; every choice is a child ctx in r->pool with its own sequence,
 * queued in the bridge like any request, and this file gathers their
 * output into one reply (or one stream, chunks tagged with "index").
 *
 * Choice i is of prompt i / n; its sampler is seeded with seed + i, so
 * the choices differ and a request is reproducible. The first choice of
 * each prompt (its "leader") is submitted at once; the others follow once
 * the leader's prefill is done (its first output), so that they find the
 * prompt's full KV blocks in the prefix cache and share them by
 * reference instead of computing the prompt again.
 *
 * Finalization is deferred to a posted event: the bridge walks its live
 * queue while output is delivered, and a request's cleanup unlinks all of
 * its choices (possibly the next link of that walk).
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


static void ngx_http_starling_choices_end_handler(ngx_event_t *ev);
static void ngx_http_starling_choices_followers(ngx_http_starling_ctx_t *leader);


ngx_int_t
ngx_http_starling_choices_create(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_uint_t n_prompts,
    int32_t *const *prompt_ids, const size_t *n_prompt_ids,
    const ngx_str_t *echo_texts)
{
    ngx_uint_t                i, n, p;
    ngx_http_starling_ctx_t  *c;

    n = ctx->n_per_prompt;

    ctx->n_choices = n * n_prompts;
    ctx->choices = ngx_pcalloc(r->pool,
                               ctx->n_choices * sizeof(ngx_http_starling_ctx_t *));
    if (ctx->choices == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->n_choices; i++) {
        p = i / n;

        c = ngx_pcalloc(r->pool, sizeof(ngx_http_starling_ctx_t));
        if (c == NULL) {
            return NGX_ERROR;
        }

        c->request = r;
        c->model = ctx->model;
        c->surface = ctx->surface;
        c->id = ctx->id;
        c->created = ctx->created;
        c->start_msec = ctx->start_msec;
        c->correlation_id = ctx->correlation_id;
        c->stream = ctx->stream;
        c->include_usage = ctx->include_usage;
        c->logprobs = ctx->logprobs;
        c->top_logprobs = ctx->top_logprobs;
        c->max_tokens = ctx->max_tokens;
        c->stop = ctx->stop;
        c->n_stop = ctx->n_stop;
        c->tools = ctx->tools;
        c->n_tools = ctx->n_tools;
        c->tools_on = ctx->tools_on;
        c->parallel_tool_calls = ctx->parallel_tool_calls;
        c->tool_forced = ctx->tool_forced;
        c->tool_held = ctx->tool_held;
        c->finish = ST_FINISH_NONE;
        st_jbuf_init(&c->text);
        st_jbuf_init(&c->scratch);

        c->sreq = ctx->sreq;
        c->sreq.prompt = prompt_ids[p];
        c->sreq.n_prompt = (uint32_t) n_prompt_ids[p];
        /* documented: choice i samples with seed + i */
        c->sreq.sampling.seed = ctx->sreq.sampling.seed + i;
        c->prompt_tokens = (uint32_t) n_prompt_ids[p];

        if (echo_texts != NULL) {
            c->echo_text = echo_texts[p];
            if (c->stream) {
                c->echo = 1;
            } else {
                st_jbuf_add(&c->text, (const char *) c->echo_text.data,
                            c->echo_text.len);
                c->text_offset = c->echo_text.len;
                if (c->text.failed) {
                    st_jbuf_free(&c->text);
                    return NGX_ERROR;
                }
            }
        }

        if (c->logprobs && !c->stream) {
            c->lps = ngx_array_create(r->pool, 16,
                                      sizeof(ngx_http_starling_lp_t));
            if (c->lps == NULL) {
                return NGX_ERROR;
            }
        }

        c->parent = ctx;
        c->index = i;
        ctx->choices[i] = c;
    }

    return NGX_OK;
}


/* the leaders (first choice of every prompt) go to the engine now */
ngx_int_t
ngx_http_starling_choices_submit(ngx_http_starling_ctx_t *ctx, st_error *err)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->n_choices; i += ctx->n_per_prompt) {
        if (ngx_http_starling_submit(ctx->choices[i], err) != NGX_OK) {
            return NGX_ERROR;
        }
        ctx->choices[i]->submitted = 1;
    }

    return NGX_OK;
}


/* the leader's prompt is in the KV cache: its followers may start */
static void
ngx_http_starling_choices_followers(ngx_http_starling_ctx_t *leader)
{
    ngx_uint_t                i;
    st_error                  err;
    st_seq_output             out;
    ngx_http_starling_ctx_t  *ctx = leader->parent, *c;

    for (i = leader->index + 1;
         i < ctx->n_choices && i < leader->index + ctx->n_per_prompt;
         i++)
    {
        c = ctx->choices[i];
        if (c->submitted) {
            continue;
        }
        c->submitted = 1;

        ngx_memzero(&out, sizeof(st_seq_output));

        if (ctx->cancel_requested || ctx->done) {
            out.finish = ST_FINISH_CANCELLED;
            ngx_http_starling_choice_output(c, &out);
            continue;
        }

        if (ngx_http_starling_submit(c, &err) != NGX_OK) {
            out.finish = ST_FINISH_ERROR;
            ngx_cpystrn((u_char *) out.error, (u_char *) err.msg,
                        sizeof(out.error));
            ngx_http_starling_choice_output(c, &out);
        }
    }
}


/*
 * Engine output of one choice (event loop, between steps, or at once
 * for a choice that never reached the engine).
 */
void
ngx_http_starling_choice_output(ngx_http_starling_ctx_t *c,
    const st_seq_output *out)
{
    ngx_uint_t                i;
    ngx_int_t                 rc;
    ngx_http_request_t       *r = c->request;
    ngx_http_starling_ctx_t  *ctx = c->parent, *o;

    if (c->done) {
        return;
    }

    if (ctx->surface == NGX_HTTP_STARLING_EMBEDDINGS) {
        ngx_http_starling_embeddings_output(c, out);
        return;
    }

    if (out->queue_ms > 0 || out->n_tokens || out->n_generated) {
        c->admitted = 1;
        ctx->admitted = 1;
    }

    if (c->index % ctx->n_per_prompt == 0
        && (out->n_tokens || out->n_generated
            || out->finish != ST_FINISH_NONE))
    {
        ngx_http_starling_choices_followers(c);
    }

    if (out->n_tokens == 0 && out->finish == ST_FINISH_NONE) {
        return;
    }

    if (ctx->done) {
        /* the reply is over (an error, or the client went away): the
         * remaining choices only wind down */
        if (out->finish != ST_FINISH_NONE) {
            c->done = 1;
            ngx_http_starling_detach(c);
        }
        return;
    }

    c->cached_tokens = out->n_cached_tokens;
    c->completion_tokens = out->n_generated;
    c->has_figures = 1;

    if (ctx->stream && !ctx->header_sent) {
        if (out->finish == ST_FINISH_ERROR && out->n_tokens == 0) {
            goto failed;
        }

        ctx->ttft_ms = out->ttft_ms;
        ctx->queue_ms = out->queue_ms;

        rc = ngx_http_starling_stream_header(ctx);
        if (rc == NGX_ERROR || rc > NGX_OK) {
            goto broken;
        }

        /* the header chunk carried choice 0's role: the others' now */
        for (i = 1; ctx->surface == NGX_HTTP_STARLING_CHAT
                    && i < ctx->n_choices; i++)
        {
            st_jbuf_reset(&ctx->scratch);
            st_jbuf_addf(&ctx->scratch, "{\"id\":\"chatcmpl-%.*s\","
                         "\"object\":\"chat.completion.chunk\","
                         "\"created\":%ld,\"model\":",
                         (int) ctx->id.len, (char *) ctx->id.data,
                         (long) ctx->created);
            st_jbuf_add_jstr(&ctx->scratch,
                             (const char *) ctx->model->name.data,
                             ctx->model->name.len);
            st_jbuf_addf(&ctx->scratch, ",\"choices\":[{\"index\":%u,"
                         "\"delta\":{\"role\":\"assistant\",\"content\":"
                         "\"\"},\"logprobs\":null,\"finish_reason\":null}]%s}",
                         (unsigned) i,
                         ctx->include_usage ? ",\"usage\":null" : "");
            if (ctx->scratch.failed
                || ngx_http_starling_stream_event(ctx, NULL,
                       ctx->scratch.data, ctx->scratch.len, 0) == NGX_ERROR)
            {
                goto broken;
            }
        }
    }

    if (out->finish == ST_FINISH_ERROR) {
        goto failed;
    }

    if (ngx_http_starling_emit_tokens(c, out) == NGX_ERROR) {
        goto broken;
    }

    if (out->finish == ST_FINISH_NONE) {
        if (ctx->stream) {
            ngx_http_run_posted_requests(r->connection);
        }
        return;
    }

    /* this choice is complete */
    c->finish = out->finish;
    c->done = 1;
    ngx_http_starling_detach(c);

    if (ctx->stream && ngx_http_starling_emit_finish(c, out) == NGX_ERROR) {
        goto broken;
    }

    if (++ctx->n_ended < ctx->n_choices) {
        return;
    }

    /* all choices are complete: one usage for the request (the prompts
     * counted once each, the completions of every choice) */
    ctx->completion_tokens = 0;
    ctx->cached_tokens = 0;
    ctx->usage_cached_tokens = 0;
    ctx->finish = ST_FINISH_LENGTH;

    for (i = 0; i < ctx->n_choices; i++) {
        o = ctx->choices[i];
        ctx->completion_tokens += o->completion_tokens;
        ctx->cached_tokens += o->cached_tokens;
        if (i % ctx->n_per_prompt == 0) {
            ctx->usage_cached_tokens += o->cached_tokens;
        }
        if (o->finish == ST_FINISH_STOP) {
            ctx->finish = ST_FINISH_STOP;
        }
    }

    ctx->decode_ms = out->decode_ms;
    ctx->has_figures = 1;
    ctx->done = 1;
    ngx_http_starling_count_finish(r, ctx);

    if (ctx->stream) {
        ngx_http_starling_choices_end(ctx, ngx_http_starling_emit_tail(ctx));
        return;
    }

    ctx->header_sent = 1;
    ngx_http_starling_choices_end(ctx, ngx_http_starling_reply_full(ctx,
                                                                    out));
    return;

failed:

    c->done = 1;
    ngx_http_starling_detach(c);
    ctx->finish = ST_FINISH_ERROR;
    ctx->done = 1;
    ngx_http_starling_choices_cancel(ctx);
    ngx_http_starling_count_finish(r, ctx);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "starling: generation failed: %s", out->error);

    if (ctx->stream && ctx->header_sent) {
        rc = ngx_http_starling_emit_finish(c, out);
        if (rc != NGX_ERROR) {
            rc = ngx_http_starling_stream_event(ctx, NULL, "[DONE]", 6, 1);
        }
        ngx_http_starling_choices_end(ctx, rc);
        return;
    }

    ctx->header_sent = 1;
    ngx_http_starling_choices_end(ctx,
        ngx_http_starling_error_status(r, ctx,
            NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL,
            "engine_error", out->error[0] ? out->error : "engine failure"));
    return;

broken:

    r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    if (ctx->finish == ST_FINISH_NONE) {
        ctx->finish = ST_FINISH_CANCELLED;
    }
    c->done = 1;
    ngx_http_starling_detach(c);
    ctx->done = 1;
    ngx_http_starling_choices_cancel(ctx);
    ngx_http_starling_count_finish(r, ctx);
    ngx_http_starling_choices_end(ctx, NGX_ERROR);
}


/* finalization after the bridge's walk over its queues */
void
ngx_http_starling_choices_end(ngx_http_starling_ctx_t *ctx, ngx_int_t rc)
{
    ctx->end_rc = rc;
    ctx->end_event.handler = ngx_http_starling_choices_end_handler;
    ctx->end_event.data = ctx;
    ctx->end_event.log = ctx->request->connection->log;

    ngx_post_event(&ctx->end_event, &ngx_posted_events);
}


static void
ngx_http_starling_choices_end_handler(ngx_event_t *ev)
{
    ngx_http_starling_ctx_t  *ctx = ev->data;

    ngx_http_starling_finish(ctx, ctx->end_rc);
}


/* the request is going away: every choice gives its sequence back */
void
ngx_http_starling_choices_detach(ngx_http_starling_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->n_choices; i++) {
        ctx->choices[i]->done = 1;
        ngx_http_starling_detach(ctx->choices[i]);
    }

    if (ctx->end_event.posted) {
        ngx_delete_posted_event(&ctx->end_event);
    }
}


/*
 * /cancel-like end of every choice (request timeout, an error, the
 * client gone). A choice waiting for the step's end is marked only: it
 * is cancelled once submitted, at the next step boundary, so that no
 * output is delivered from here.
 */
void
ngx_http_starling_choices_cancel(ngx_http_starling_ctx_t *ctx)
{
    ngx_uint_t                i;
    ngx_http_starling_ctx_t  *c;

    for (i = 0; i < ctx->n_choices; i++) {
        c = ctx->choices[i];

        if (c->done || c->cancel_requested) {
            continue;
        }

        c->cancel_requested = 1;

        if (c->queued_in == 1 && !ctx->model->in_flight && c->seq != NULL) {
            st_seq_cancel(c->seq);
            c->cancel_requested = 2;
            ngx_http_starling_kick(ctx->model);
        }
    }
}


void
ngx_http_starling_choices_free(ngx_http_starling_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->n_choices; i++) {
        st_jbuf_free(&ctx->choices[i]->text);
        st_jbuf_free(&ctx->choices[i]->scratch);
    }
}
