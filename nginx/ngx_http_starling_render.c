
/*
 * Rendering of engine output: OpenAI completion/chat objects and chunks,
 * worker-API events, logprobs. Called between steps by on_output().
 */

#include "ngx_http_starling_output.h"


static const char *
ngx_http_starling_stop_reason(const st_seq_output *out)
{
    switch (out->finish) {
    case ST_FINISH_STOP:
        if (out->dead_end) {
            return "GRAMMAR_DEAD_END";
        }
        return out->stop_index >= 0 ? "STOP_SEQUENCE" : "EOS";
    case ST_FINISH_LENGTH:
        return "MAX_TOKENS";
    case ST_FINISH_CANCELLED:
        return "CANCELLED";
    default:
        return "ERROR";
    }
}


static const char *
ngx_http_starling_openai_reason(st_finish_reason f)
{
    return f == ST_FINISH_LENGTH ? "length" : "stop";
}


static void
ngx_http_starling_piece(ngx_http_starling_ctx_t *ctx, int32_t id,
    st_jbuf *b, ngx_uint_t with_bytes)
{
    char         piece[256];
    size_t       n, i;
    const st_tokenizer  *tok = st_engine_tokenizer(ctx->model->engine);

    n = st_token_to_piece(tok, id, piece, sizeof(piece), 0);
    if (n > sizeof(piece)) {
        n = sizeof(piece);
    }

    st_jbuf_add_jstr(b, piece, n);

    if (with_bytes) {
        st_jbuf_adds(b, ",\"bytes\":[");
        for (i = 0; i < n; i++) {
            st_jbuf_addf(b, i ? ",%u" : "%u", (unsigned char) piece[i]);
        }
        st_jbuf_adds(b, "]");
    }
}


/* chat: {"content":[{"token","logprob","bytes","top_logprobs":[...]}]} */
static void
ngx_http_starling_chat_logprobs(ngx_http_starling_ctx_t *ctx, st_jbuf *b,
    const ngx_http_starling_lp_t *lp, size_t n)
{
    size_t  i, k;

    st_jbuf_adds(b, "{\"content\":[");

    for (i = 0; i < n; i++) {
        st_jbuf_adds(b, i ? ",{\"token\":" : "{\"token\":");
        ngx_http_starling_piece(ctx, lp[i].token, b, 1);
        st_jbuf_adds(b, ",\"logprob\":");
        st_jbuf_add_float(b, lp[i].logprob);
        st_jbuf_adds(b, ",\"top_logprobs\":[");
        for (k = 0; k < lp[i].n_top && k < ctx->top_logprobs; k++) {
            st_jbuf_adds(b, k ? ",{\"token\":" : "{\"token\":");
            ngx_http_starling_piece(ctx, lp[i].top[k].token, b, 1);
            st_jbuf_adds(b, ",\"logprob\":");
            st_jbuf_add_float(b, lp[i].top[k].logprob);
            st_jbuf_adds(b, "}");
        }
        st_jbuf_adds(b, "]}");
    }

    st_jbuf_adds(b, "]}");
}


/* completions: {"tokens","token_logprobs","top_logprobs","text_offset"} */
static void
ngx_http_starling_completion_logprobs(ngx_http_starling_ctx_t *ctx,
    st_jbuf *b, const ngx_http_starling_lp_t *lp, size_t n)
{
    size_t  i, k;

    st_jbuf_adds(b, "{\"tokens\":[");
    for (i = 0; i < n; i++) {
        if (i) {
            st_jbuf_adds(b, ",");
        }
        ngx_http_starling_piece(ctx, lp[i].token, b, 0);
    }

    st_jbuf_adds(b, "],\"token_logprobs\":[");
    for (i = 0; i < n; i++) {
        if (i) {
            st_jbuf_adds(b, ",");
        }
        if (lp[i].none) {
            st_jbuf_adds(b, "null");
        } else {
            st_jbuf_add_float(b, lp[i].logprob);
        }
    }

    st_jbuf_adds(b, "],\"top_logprobs\":[");
    for (i = 0; i < n; i++) {
        if (lp[i].none) {
            st_jbuf_adds(b, i ? ",null" : "null");
            continue;
        }
        st_jbuf_adds(b, i ? ",{" : "{");
        for (k = 0; k < lp[i].n_top && k < ctx->top_logprobs; k++) {
            if (k) {
                st_jbuf_adds(b, ",");
            }
            ngx_http_starling_piece(ctx, lp[i].top[k].token, b, 0);
            st_jbuf_adds(b, ":");
            st_jbuf_add_float(b, lp[i].top[k].logprob);
        }
        st_jbuf_adds(b, "}");
    }

    st_jbuf_adds(b, "],\"text_offset\":[");
    for (i = 0; i < n; i++) {
        st_jbuf_addf(b, i ? ",%zu" : "%zu", lp[i].offset);
    }
    st_jbuf_adds(b, "]}");
}


static void
ngx_http_starling_lp_fill(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_lp_t *lp, const st_token_out *t)
{
    lp->token = t->token;
    lp->none = 0;
    lp->logprob = t->logprob;
    lp->offset = ctx->text_offset;
    lp->n_top = t->n_top < ST_MAX_TOP_LOGPROBS ? t->n_top
                                               : ST_MAX_TOP_LOGPROBS;
    if (lp->n_top) {
        ngx_memcpy(lp->top, t->top, lp->n_top * sizeof(st_token_logprob));
    }
}


/*
 * echo + logprobs: the prompt's entries (its first token with null
 * logprobs, then each token's given those before it) into lp[0..n), n =
 * the prompt's token count; text offsets are the tokens' piece lengths
 * summed, within the echoed text.
 */
static void
ngx_http_starling_prompt_lps(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out, ngx_http_starling_lp_t *lp)
{
    size_t               i, off = 0, n;
    char                 piece[256];
    const st_tokenizer  *tok = st_engine_tokenizer(ctx->model->engine);

    for (i = 0; i <= out->n_prompt_out; i++) {
        ngx_memzero(&lp[i], sizeof(lp[i]));
        lp[i].offset = off < ctx->echo_text.len ? off : ctx->echo_text.len;
        if (i == 0) {
            lp[i].token = ctx->sreq.prompt[0];
            lp[i].none = 1;
        } else {
            ngx_http_starling_lp_fill(ctx, &lp[i], &out->prompt_tokens[i - 1]);
            lp[i].offset = off < ctx->echo_text.len ? off
                                                    : ctx->echo_text.len;
        }
        n = st_token_to_piece(tok, lp[i].token, piece, sizeof(piece), 0);
        off += n;
    }
}


/* "id","object","created","model" of OpenAI objects */
static void
ngx_http_starling_openai_head(ngx_http_starling_ctx_t *ctx, st_jbuf *b,
    const char *object)
{
    ngx_http_starling_model_t  *m = ctx->model;

    st_jbuf_addf(b, "{\"id\":\"%s%.*s\",\"object\":\"%s\",\"created\":%ld,"
                 "\"model\":",
                 ctx->surface == NGX_HTTP_STARLING_CHAT ? "chatcmpl-"
                                                        : "cmpl-",
                 (int) ctx->id.len, (char *) ctx->id.data, object,
                 (long) ctx->created);
    st_jbuf_add_jstr(b, (const char *) m->name.data, m->name.len);
}


static void
ngx_http_starling_usage(ngx_http_starling_ctx_t *ctx, st_jbuf *b)
{
    st_jbuf_addf(b, "\"usage\":{\"prompt_tokens\":%u,"
                 "\"completion_tokens\":%u,\"total_tokens\":%u,"
                 "\"prompt_tokens_details\":{\"cached_tokens\":%u}}",
                 ctx->prompt_tokens, ctx->completion_tokens,
                 ctx->prompt_tokens + ctx->completion_tokens,
                 ctx->n_choices ? ctx->usage_cached_tokens
                                : ctx->cached_tokens);
}


ngx_int_t
ngx_http_starling_emit_tokens(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    size_t                   i;
    ngx_int_t                rc;
    st_jbuf                 *b = &ctx->scratch;
    const st_token_out      *t;
    ngx_http_starling_lp_t   lp, *slot;

    if (ctx->surface == NGX_HTTP_STARLING_RESPONSES) {
        return ngx_http_starling_responses_tokens(ctx, out);
    }

    if (ctx->stream && ctx->echo && out->n_tokens) {
        /* echo: the prompt is the choice's first text */
        ctx->echo = 0;
        st_jbuf_reset(b);
        ngx_http_starling_openai_head(ctx, b, "text_completion");
        st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"text\":",
                     (unsigned) ctx->index);
        st_jbuf_add_jstr(b, (const char *) ctx->echo_text.data,
                         ctx->echo_text.len);
        st_jbuf_adds(b, ",\"logprobs\":");
        if (out->prompt_logprobs && ctx->logprobs) {
            slot = ngx_palloc(ctx->request->pool, (out->n_prompt_out + 1)
                                              * sizeof(ngx_http_starling_lp_t));
            if (slot == NULL) {
                return NGX_ERROR;
            }
            ngx_http_starling_prompt_lps(ctx, out, slot);
            ngx_http_starling_completion_logprobs(ctx, b, slot,
                                                  out->n_prompt_out + 1);
        } else {
            st_jbuf_adds(b, "null");
        }
        st_jbuf_adds(b, ",\"finish_reason\":null}]");
        if (ctx->include_usage) {
            st_jbuf_adds(b, ",\"usage\":null");
        }
        st_jbuf_adds(b, "}");
        ctx->text_offset += ctx->echo_text.len;
        rc = ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
        if (rc == NGX_ERROR || b->failed) {
            return NGX_ERROR;
        }
    }

    if (!ctx->stream && ctx->lps != NULL && out->prompt_logprobs) {
        slot = ngx_array_push_n(ctx->lps, out->n_prompt_out + 1);
        if (slot == NULL) {
            return NGX_ERROR;
        }
        ngx_http_starling_prompt_lps(ctx, out, slot);
    }

    for (i = 0; i < out->n_tokens; i++) {
        t = &out->tokens[i];

        if (!ctx->stream) {
            if (ctx->lps != NULL && t->token >= 0) {
                slot = ngx_array_push(ctx->lps);
                if (slot == NULL) {
                    return NGX_ERROR;
                }
                ngx_http_starling_lp_fill(ctx, slot, t);
            }
            st_jbuf_add(&ctx->text, t->text, t->text_len);
            ctx->text_offset += t->text_len;
            if (ctx->text.failed) {
                return NGX_ERROR;
            }
            continue;
        }

        st_jbuf_reset(b);

        if (ctx->surface == NGX_HTTP_STARLING_EXECUTE) {
            st_jbuf_adds(b, "{\"t\":");
            st_jbuf_add_jstr(b, t->text, t->text_len);
            st_jbuf_addf(b, ",\"i\":%u,\"id\":%d}", t->index,
                         (int) t->token);
            rc = ngx_http_starling_stream_event(ctx, "token", b->data,
                                                b->len, 0);
            if (rc == NGX_ERROR || b->failed) {
                return NGX_ERROR;
            }
            continue;
        }

        if (ctx->tools_on && ctx->surface == NGX_HTTP_STARLING_CHAT) {
            /* content until a call begins (logprobs are not streamed
             * with tools) */
            if (ngx_http_starling_tools_stream(ctx, t->text, t->text_len, 0)
                == NGX_ERROR)
            {
                return NGX_ERROR;
            }
            continue;
        }

        /* OpenAI: a chunk per token with text (or logprobs to report) */
        if (t->text_len == 0 && !(ctx->logprobs && t->token >= 0)) {
            continue;
        }

        if (ctx->surface == NGX_HTTP_STARLING_CHAT) {
            ngx_http_starling_openai_head(ctx, b, "chat.completion.chunk");
            st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"delta\":"
                         "{\"content\":", (unsigned) ctx->index);
            st_jbuf_add_jstr(b, t->text, t->text_len);
            st_jbuf_adds(b, "},\"logprobs\":");
        } else {
            ngx_http_starling_openai_head(ctx, b, "text_completion");
            st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"text\":",
                         (unsigned) ctx->index);
            st_jbuf_add_jstr(b, t->text, t->text_len);
            st_jbuf_adds(b, ",\"logprobs\":");
        }

        if (ctx->logprobs && t->token >= 0) {
            ngx_http_starling_lp_fill(ctx, &lp, t);
            if (ctx->surface == NGX_HTTP_STARLING_CHAT) {
                ngx_http_starling_chat_logprobs(ctx, b, &lp, 1);
            } else {
                ngx_http_starling_completion_logprobs(ctx, b, &lp, 1);
            }
        } else {
            st_jbuf_adds(b, "null");
        }

        ctx->text_offset += t->text_len;
        st_jbuf_adds(b, ",\"finish_reason\":null}]");
        if (ctx->include_usage) {
            st_jbuf_adds(b, ",\"usage\":null");
        }
        st_jbuf_adds(b, "}");

        rc = ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
        if (rc == NGX_ERROR || b->failed) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_starling_emit_end(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    ngx_int_t   rc;
    st_jbuf    *b = &ctx->scratch;
    double      tps;

    if (ctx->surface == NGX_HTTP_STARLING_RESPONSES) {
        return ngx_http_starling_responses_end(ctx, out);
    }

    if (ctx->surface == NGX_HTTP_STARLING_EXECUTE) {

        tps = (out->decode_ms > 0 && out->n_generated > 1)
              ? (out->n_generated - 1) * 1000.0 / out->decode_ms : 0;

        st_jbuf_reset(b);
        st_jbuf_addf(b, "{\"job_id\":");
        st_jbuf_add_jstr(b, (const char *) ctx->job_id.data, ctx->job_id.len);
        st_jbuf_addf(b, ",\"prompt_tokens\":%u,\"cached_tokens\":%u,"
                     "\"tokens_out\":%u,\"queue_ms\":%.3f,\"ttft_ms\":%.3f,"
                     "\"decode_time_ms\":%.3f,\"tokens_per_second\":%.2f}",
                     ctx->prompt_tokens, ctx->cached_tokens,
                     ctx->completion_tokens, out->queue_ms, out->ttft_ms,
                     out->decode_ms, tps);

        rc = ngx_http_starling_stream_event(ctx, "metrics", b->data, b->len,
                                            0);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        st_jbuf_reset(b);

        if (out->finish == ST_FINISH_ERROR) {
            st_jbuf_adds(b, "{\"code\":\"ENGINE_ERROR\",\"message\":");
            st_jbuf_add_jstr(b, out->error, ngx_strlen(out->error));
            st_jbuf_adds(b, "}");
            return ngx_http_starling_stream_event(ctx, "error", b->data,
                                                  b->len, 1);
        }

        st_jbuf_addf(b, "{\"job_id\":");
        st_jbuf_add_jstr(b, (const char *) ctx->job_id.data, ctx->job_id.len);
        st_jbuf_addf(b, ",\"tokens_out\":%u,\"decode_time_ms\":%.3f,"
                     "\"stop_reason\":\"%s\",\"stop_sequence_matched\":",
                     ctx->completion_tokens, out->decode_ms,
                     ctx->timed_out ? "TIMEOUT"
                                    : ngx_http_starling_stop_reason(out));
        if (out->stop_index >= 0 && (size_t) out->stop_index < ctx->n_stop) {
            st_jbuf_add_jstr(b, ctx->stop[out->stop_index],
                             ngx_strlen(ctx->stop[out->stop_index]));
        } else {
            st_jbuf_adds(b, "null");
        }
        st_jbuf_adds(b, "}");

        if (b->failed) {
            return NGX_ERROR;
        }

        return ngx_http_starling_stream_event(ctx, "end", b->data, b->len, 1);
    }

    rc = ngx_http_starling_emit_finish(ctx, out);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (out->finish == ST_FINISH_ERROR) {
        return ngx_http_starling_stream_event(ctx, NULL, "[DONE]", 6, 1);
    }

    return ngx_http_starling_emit_tail(ctx);
}


/* OpenAI: the chunk that ends one choice (or the error object) */
ngx_int_t
ngx_http_starling_emit_finish(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    st_jbuf     *b = &ctx->scratch;
    ngx_int_t    rc;
    ngx_uint_t   timed_out;

    timed_out = ctx->timed_out
                || (ctx->parent != NULL && ctx->parent->timed_out);

    if (out->finish != ST_FINISH_ERROR && ctx->tools_on
        && ctx->surface == NGX_HTTP_STARLING_CHAT
        && ngx_http_starling_tools_stream(ctx, NULL, 0, 1) == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    st_jbuf_reset(b);

    if (out->finish == ST_FINISH_ERROR) {
        st_api_write_openai_error(b, out->error[0] ? out->error
                                                   : "engine failure",
                                  "server_error", NULL, "engine_error");
        if (b->len && b->data[b->len - 1] == '\n') {
            b->len--;
        }
    } else {
        if (ctx->surface == NGX_HTTP_STARLING_CHAT) {
            ngx_http_starling_openai_head(ctx, b, "chat.completion.chunk");
            st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"delta\":{},"
                         "\"logprobs\":null,\"finish_reason\":",
                         (unsigned) ctx->index);
        } else {
            ngx_http_starling_openai_head(ctx, b, "text_completion");
            st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"text\":\"\","
                         "\"logprobs\":null,\"finish_reason\":",
                         (unsigned) ctx->index);
        }
        st_jbuf_addf(b, "\"%s\"}]", ctx->tool_calls ? "tool_calls"
                                    : timed_out ? "length"
                                    : ngx_http_starling_openai_reason(
                                        out->finish));
        if (ctx->include_usage) {
            st_jbuf_adds(b, ",\"usage\":null");
        }
        st_jbuf_adds(b, "}");
    }

    rc = ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
    if (rc == NGX_ERROR || b->failed) {
        return NGX_ERROR;
    }

    return rc;
}


/* OpenAI: the usage chunk (stream_options.include_usage) and [DONE] */
ngx_int_t
ngx_http_starling_emit_tail(ngx_http_starling_ctx_t *ctx)
{
    st_jbuf     *b = &ctx->scratch;
    ngx_int_t    rc;

    if (ctx->include_usage) {
        st_jbuf_reset(b);
        ngx_http_starling_openai_head(ctx, b,
            ctx->surface == NGX_HTTP_STARLING_CHAT ? "chat.completion.chunk"
                                                   : "text_completion");
        st_jbuf_adds(b, ",\"choices\":[],");
        ngx_http_starling_usage(ctx, b);
        st_jbuf_adds(b, "}");

        rc = ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
        if (rc == NGX_ERROR || b->failed) {
            return NGX_ERROR;
        }
    }

    return ngx_http_starling_stream_event(ctx, NULL, "[DONE]", 6, 1);
}


/* one element of a non-stream reply's "choices" (c: the request's ctx
 * or one of its choices; rendered into the request's buffer b) */
static void
ngx_http_starling_choice(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_ctx_t *c, st_jbuf *b)
{
    ngx_http_starling_lp_t  *lp;
    size_t                   n_lp;

    lp = c->lps ? c->lps->elts : NULL;
    n_lp = c->lps ? c->lps->nelts : 0;

    if (ctx->surface == NGX_HTTP_STARLING_CHAT) {
        st_jbuf_addf(b, "{\"index\":%u,\"message\":", (unsigned) c->index);
        if (c->tools_on) {
            if (ngx_http_starling_tools_message(c, b) != NGX_OK) {
                b->failed = 1;
            }
        } else {
            st_jbuf_adds(b, "{\"role\":\"assistant\",\"content\":");
            st_jbuf_add_jstr(b, c->text.data ? c->text.data : "",
                             c->text.len);
            st_jbuf_adds(b, "}");
        }
        st_jbuf_adds(b, ",\"logprobs\":");
        if (lp != NULL) {
            ngx_http_starling_chat_logprobs(c, b, lp, n_lp);
        } else {
            st_jbuf_adds(b, "null");
        }
    } else {
        st_jbuf_addf(b, "{\"index\":%u,\"text\":", (unsigned) c->index);
        st_jbuf_add_jstr(b, c->text.data ? c->text.data : "", c->text.len);
        st_jbuf_adds(b, ",\"logprobs\":");
        if (lp != NULL) {
            ngx_http_starling_completion_logprobs(c, b, lp, n_lp);
        } else {
            st_jbuf_adds(b, "null");
        }
    }

    st_jbuf_addf(b, ",\"finish_reason\":\"%s\"}",
                 c->tool_calls ? "tool_calls"
                 : ctx->timed_out ? "length"
                 : ngx_http_starling_openai_reason(c->finish));
}


ngx_int_t
ngx_http_starling_reply_full(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    ngx_uint_t   i;
    ngx_int_t    rc;
    st_jbuf     *b = &ctx->scratch;

    (void) out;

    if (ctx->surface == NGX_HTTP_STARLING_RESPONSES) {
        return ngx_http_starling_responses_reply(ctx);
    }

    st_jbuf_reset(b);

    ngx_http_starling_openai_head(ctx, b,
        ctx->surface == NGX_HTTP_STARLING_CHAT ? "chat.completion"
                                               : "text_completion");
    st_jbuf_adds(b, ",\"choices\":[");

    if (ctx->n_choices == 0) {
        ngx_http_starling_choice(ctx, ctx, b);
    }

    for (i = 0; i < ctx->n_choices; i++) {
        if (i) {
            st_jbuf_adds(b, ",");
        }
        ngx_http_starling_choice(ctx, ctx->choices[i], b);
    }

    st_jbuf_adds(b, "],");
    ngx_http_starling_usage(ctx, b);
    st_jbuf_adds(b, "}\n");

    if (b->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(ctx->request, NGX_HTTP_OK, b->data,
                                     b->len);
    return rc;
}
