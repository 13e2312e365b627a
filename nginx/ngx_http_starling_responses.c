
/*
 * POST /v1/responses: engine output as a Responses API object, or as its
 * stream of typed events (response.created, response.in_progress,
 * response.output_item.added, response.content_part.added,
 * response.output_text.delta*, response.output_text.done,
 * response.content_part.done, response.output_item.done, then
 * response.completed or response.incomplete), each an SSE "event:" line
 * with a "data:" object carrying "type" and "sequence_number".
 *
 * With tools the text is held until the end, so that a function call is
 * never streamed as text: it is then sent as message and function_call
 * items (arguments in one response.function_call_arguments.delta).
 * Stateless: "store" is always false and no id can be continued.
 */

#include "ngx_http_starling_output.h"


static ngx_int_t ngx_http_starling_resp_event(ngx_http_starling_ctx_t *ctx,
    const char *type, st_jbuf *body);
static void ngx_http_starling_resp_object(ngx_http_starling_ctx_t *ctx,
    st_jbuf *b, const char *status, ngx_uint_t final);


static const char *
ngx_http_starling_resp_status(ngx_http_starling_ctx_t *ctx)
{
    return (ctx->timed_out || ctx->finish == ST_FINISH_LENGTH)
           ? "incomplete" : "completed";
}


/* "msg_<id>" / "fc_<id>_<i>" */
static void
ngx_http_starling_resp_msg_id(ngx_http_starling_ctx_t *ctx, st_jbuf *b)
{
    st_jbuf_addf(b, "\"msg_%.*s\"", (int) ctx->id.len, (char *) ctx->id.data);
}


static void
ngx_http_starling_resp_message_item(ngx_http_starling_ctx_t *ctx,
    st_jbuf *b, const char *text, size_t len, const char *status)
{
    st_jbuf_adds(b, "{\"type\":\"message\",\"id\":");
    ngx_http_starling_resp_msg_id(ctx, b);
    st_jbuf_addf(b, ",\"status\":\"%s\",\"role\":\"assistant\",\"content\":",
                 status);
    if (text == NULL) {
        st_jbuf_adds(b, "[]}");
        return;
    }
    st_jbuf_adds(b, "[{\"type\":\"output_text\",\"text\":");
    st_jbuf_add_jstr(b, text, len);
    st_jbuf_adds(b, ",\"annotations\":[]}]}");
}


static void
ngx_http_starling_resp_call_item(ngx_http_starling_ctx_t *ctx, st_jbuf *b,
    const st_api_tool_call *call, size_t i, const char *arguments)
{
    st_jbuf_addf(b, "{\"type\":\"function_call\",\"id\":\"fc_%.*s_%zu\","
                 "\"call_id\":", (int) ctx->id.len, (char *) ctx->id.data,
                 i);
    st_jbuf_add_jstr(b, call->id, ngx_strlen(call->id));
    st_jbuf_adds(b, ",\"name\":");
    st_jbuf_add_jstr(b, call->name, ngx_strlen(call->name));
    st_jbuf_adds(b, ",\"arguments\":");
    st_jbuf_add_jstr(b, arguments, ngx_strlen(arguments));
    st_jbuf_addf(b, ",\"status\":\"%s\"}",
                 arguments[0] ? "completed" : "in_progress");
}


/* the calls in the text (tools only); *content_len: the text before */
static int
ngx_http_starling_resp_calls(ngx_http_starling_ctx_t *ctx,
    st_api_tool_call **calls, size_t *content_len)
{
    int  n;

    *calls = NULL;
    *content_len = ctx->text.len;

    if (!ctx->tools_on) {
        return 0;
    }

    n = ngx_http_starling_tools_parse(ctx, calls, content_len);
    while (n > 0 && *content_len > 0
           && (ctx->text.data[*content_len - 1] == '\n'
               || ctx->text.data[*content_len - 1] == ' '))
    {
        (*content_len)--;
    }
    return n;
}


static void
ngx_http_starling_resp_output(ngx_http_starling_ctx_t *ctx, st_jbuf *b)
{
    int                i, n;
    size_t             content_len;
    st_api_tool_call  *calls;

    n = ngx_http_starling_resp_calls(ctx, &calls, &content_len);
    if (n < 0) {
        b->failed = 1;
        return;
    }

    st_jbuf_adds(b, "[");
    if (n == 0 || content_len > 0) {
        ngx_http_starling_resp_message_item(ctx, b,
            ctx->text.data ? ctx->text.data : "", content_len, "completed");
    }
    for (i = 0; i < n; i++) {
        if (i || content_len > 0) {
            st_jbuf_adds(b, ",");
        }
        ngx_http_starling_resp_call_item(ctx, b, &calls[i], (size_t) i,
                                         calls[i].arguments);
    }
    st_jbuf_adds(b, "]");

    if (n > 0) {
        st_api_tool_calls_free(calls, (size_t) n);
    }
}


static void
ngx_http_starling_resp_object(ngx_http_starling_ctx_t *ctx, st_jbuf *b,
    const char *status, ngx_uint_t final)
{
    st_jbuf_addf(b, "{\"id\":\"resp_%.*s\",\"object\":\"response\","
                 "\"created_at\":%ld,\"status\":\"%s\",\"error\":null,"
                 "\"incomplete_details\":%s,\"instructions\":",
                 (int) ctx->id.len, (char *) ctx->id.data,
                 (long) ctx->created, status,
                 ngx_strcmp(status, "incomplete") == 0
                 ? "{\"reason\":\"max_output_tokens\"}" : "null");
    if (ctx->instructions.data != NULL) {
        st_jbuf_add_jstr(b, (const char *) ctx->instructions.data,
                         ctx->instructions.len);
    } else {
        st_jbuf_adds(b, "null");
    }
    st_jbuf_addf(b, ",\"max_output_tokens\":%u,\"model\":", ctx->max_tokens);
    st_jbuf_add_jstr(b, (const char *) ctx->model->name.data,
                     ctx->model->name.len);
    st_jbuf_adds(b, ",\"output\":");

    if (final) {
        ngx_http_starling_resp_output(ctx, b);
    } else {
        st_jbuf_adds(b, "[]");
    }

    st_jbuf_addf(b, ",\"parallel_tool_calls\":%s,\"previous_response_id\":"
                 "null,\"store\":false,\"temperature\":",
                 (ctx->tools_on && !ctx->parallel_tool_calls) ? "false"
                                                              : "true");
    st_jbuf_add_float(b, ctx->sreq.sampling.temperature);
    st_jbuf_adds(b, ",\"top_p\":");
    st_jbuf_add_float(b, ctx->sreq.sampling.top_p);
    st_jbuf_adds(b, ",\"text\":{\"format\":");
    if (ctx->text_format.len) {
        st_jbuf_add(b, (const char *) ctx->text_format.data,
                    ctx->text_format.len);
    } else {
        st_jbuf_adds(b, "{\"type\":\"text\"}");
    }
    st_jbuf_adds(b, "},\"truncation\":\"disabled\",\"metadata\":{},"
                 "\"usage\":");

    if (final) {
        st_jbuf_addf(b, "{\"input_tokens\":%u,\"input_tokens_details\":"
                     "{\"cached_tokens\":%u},\"output_tokens\":%u,"
                     "\"output_tokens_details\":{\"reasoning_tokens\":0},"
                     "\"total_tokens\":%u}}",
                     ctx->prompt_tokens, ctx->cached_tokens,
                     ctx->completion_tokens,
                     ctx->prompt_tokens + ctx->completion_tokens);
    } else {
        st_jbuf_adds(b, "null}");
    }
}


/* one event: body holds the fields after "type" and "sequence_number"
 * (",..." or empty) */
static ngx_int_t
ngx_http_starling_resp_event(ngx_http_starling_ctx_t *ctx, const char *type,
    st_jbuf *body)
{
    ngx_int_t   rc;
    st_jbuf    *b = &ctx->scratch;

    st_jbuf_reset(b);
    st_jbuf_addf(b, "{\"type\":\"%s\",\"sequence_number\":%lu", type,
                 ctx->n_events);
    if (body != NULL && body->len) {
        st_jbuf_add(b, body->data, body->len);
    }
    st_jbuf_adds(b, "}");

    if (b->failed || (body != NULL && body->failed)) {
        return NGX_ERROR;
    }

    rc = ngx_http_starling_stream_event(ctx, type, b->data, b->len, 0);
    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_starling_resp_lifecycle(ngx_http_starling_ctx_t *ctx,
    const char *type, const char *status, ngx_uint_t final)
{
    ngx_int_t  rc;
    st_jbuf    d;

    st_jbuf_init(&d);
    st_jbuf_adds(&d, ",\"response\":");
    ngx_http_starling_resp_object(ctx, &d, status, final);
    rc = ngx_http_starling_resp_event(ctx, type, &d);
    st_jbuf_free(&d);
    return rc;
}


/* output_item.added + content_part.added of the message item */
static ngx_int_t
ngx_http_starling_resp_open_message(ngx_http_starling_ctx_t *ctx,
    ngx_uint_t index)
{
    ngx_int_t  rc;
    st_jbuf    d;

    st_jbuf_init(&d);
    st_jbuf_addf(&d, ",\"output_index\":%lu,\"item\":", index);
    ngx_http_starling_resp_message_item(ctx, &d, NULL, 0, "in_progress");
    rc = ngx_http_starling_resp_event(ctx, "response.output_item.added", &d);

    if (rc == NGX_OK) {
        st_jbuf_reset(&d);
        st_jbuf_adds(&d, ",\"item_id\":");
        ngx_http_starling_resp_msg_id(ctx, &d);
        st_jbuf_addf(&d, ",\"output_index\":%lu,\"content_index\":0,"
                     "\"part\":{\"type\":\"output_text\",\"text\":\"\","
                     "\"annotations\":[]}", index);
        rc = ngx_http_starling_resp_event(ctx, "response.content_part.added",
                                          &d);
    }

    st_jbuf_free(&d);
    return rc;
}


static ngx_int_t
ngx_http_starling_resp_text_delta(ngx_http_starling_ctx_t *ctx,
    ngx_uint_t index, const char *text, size_t len)
{
    ngx_int_t  rc;
    st_jbuf    d;

    st_jbuf_init(&d);
    st_jbuf_adds(&d, ",\"item_id\":");
    ngx_http_starling_resp_msg_id(ctx, &d);
    st_jbuf_addf(&d, ",\"output_index\":%lu,\"content_index\":0,"
                 "\"delta\":", index);
    st_jbuf_add_jstr(&d, text, len);
    rc = ngx_http_starling_resp_event(ctx, "response.output_text.delta", &d);
    st_jbuf_free(&d);
    return rc;
}


/* output_text.done, content_part.done, output_item.done */
static ngx_int_t
ngx_http_starling_resp_close_message(ngx_http_starling_ctx_t *ctx,
    ngx_uint_t index, const char *text, size_t len)
{
    ngx_int_t  rc;
    st_jbuf    d;

    st_jbuf_init(&d);
    st_jbuf_adds(&d, ",\"item_id\":");
    ngx_http_starling_resp_msg_id(ctx, &d);
    st_jbuf_addf(&d, ",\"output_index\":%lu,\"content_index\":0,\"text\":",
                 index);
    st_jbuf_add_jstr(&d, text, len);
    rc = ngx_http_starling_resp_event(ctx, "response.output_text.done", &d);

    if (rc == NGX_OK) {
        st_jbuf_reset(&d);
        st_jbuf_adds(&d, ",\"item_id\":");
        ngx_http_starling_resp_msg_id(ctx, &d);
        st_jbuf_addf(&d, ",\"output_index\":%lu,\"content_index\":0,"
                     "\"part\":{\"type\":\"output_text\",\"text\":", index);
        st_jbuf_add_jstr(&d, text, len);
        st_jbuf_adds(&d, ",\"annotations\":[]}");
        rc = ngx_http_starling_resp_event(ctx, "response.content_part.done",
                                          &d);
    }

    if (rc == NGX_OK) {
        st_jbuf_reset(&d);
        st_jbuf_addf(&d, ",\"output_index\":%lu,\"item\":", index);
        ngx_http_starling_resp_message_item(ctx, &d, text, len, "completed");
        rc = ngx_http_starling_resp_event(ctx, "response.output_item.done",
                                          &d);
    }

    st_jbuf_free(&d);
    return rc;
}


ngx_int_t
ngx_http_starling_responses_header(ngx_http_starling_ctx_t *ctx)
{
    if (ngx_http_starling_resp_lifecycle(ctx, "response.created",
                                         "in_progress", 0) != NGX_OK
        || ngx_http_starling_resp_lifecycle(ctx, "response.in_progress",
                                            "in_progress", 0) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->tools_on) {
        return NGX_OK;              /* items once the text is complete */
    }

    return ngx_http_starling_resp_open_message(ctx, 0);
}


ngx_int_t
ngx_http_starling_responses_tokens(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    size_t               i;
    const st_token_out  *t;

    for (i = 0; i < out->n_tokens; i++) {
        t = &out->tokens[i];

        st_jbuf_add(&ctx->text, t->text, t->text_len);
        if (ctx->text.failed) {
            return NGX_ERROR;
        }

        if (ctx->stream && !ctx->tools_on && t->text_len
            && ngx_http_starling_resp_text_delta(ctx, 0, t->text,
                                                 t->text_len) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_starling_responses_end(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    int                i, n;
    size_t             content_len;
    ngx_uint_t         index;
    ngx_int_t          rc;
    st_jbuf            d, *b = &ctx->scratch;
    st_api_tool_call  *calls;
    const char        *text, *status;

    if (out->finish == ST_FINISH_ERROR) {
        st_jbuf_init(&d);
        st_jbuf_adds(&d, ",\"code\":\"engine_error\",\"message\":");
        text = out->error[0] ? out->error : "engine failure";
        st_jbuf_add_jstr(&d, text, ngx_strlen(text));
        st_jbuf_adds(&d, ",\"param\":null");
        rc = ngx_http_starling_resp_event(ctx, "error", &d);
        st_jbuf_free(&d);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
        return ngx_http_starling_stream_event(ctx, NULL, NULL, 0, 1);
    }

    ctx->finish = out->finish;
    text = ctx->text.data ? ctx->text.data : "";

    if (!ctx->tools_on) {
        rc = ngx_http_starling_resp_close_message(ctx, 0, text,
                                                  ctx->text.len);
    } else {
        n = ngx_http_starling_resp_calls(ctx, &calls, &content_len);
        if (n < 0) {
            return NGX_ERROR;
        }

        rc = NGX_OK;
        index = 0;

        if (n == 0 || content_len > 0) {
            rc = ngx_http_starling_resp_open_message(ctx, 0);
            if (rc == NGX_OK && content_len) {
                rc = ngx_http_starling_resp_text_delta(ctx, 0, text,
                                                       content_len);
            }
            if (rc == NGX_OK) {
                rc = ngx_http_starling_resp_close_message(ctx, 0, text,
                                                          content_len);
            }
            index = 1;
        }

        for (i = 0; i < n && rc == NGX_OK; i++, index++) {
            st_jbuf_init(&d);
            st_jbuf_addf(&d, ",\"output_index\":%lu,\"item\":", index);
            ngx_http_starling_resp_call_item(ctx, &d, &calls[i], (size_t) i,
                                             "");
            rc = ngx_http_starling_resp_event(ctx,
                     "response.output_item.added", &d);

            st_jbuf_reset(&d);
            st_jbuf_addf(&d, ",\"item_id\":\"fc_%.*s_%d\",\"output_index\":"
                         "%lu,\"delta\":", (int) ctx->id.len,
                         (char *) ctx->id.data, i, index);
            st_jbuf_add_jstr(&d, calls[i].arguments,
                             ngx_strlen(calls[i].arguments));
            if (rc == NGX_OK) {
                rc = ngx_http_starling_resp_event(ctx,
                         "response.function_call_arguments.delta", &d);
            }

            st_jbuf_reset(&d);
            st_jbuf_addf(&d, ",\"item_id\":\"fc_%.*s_%d\",\"output_index\":"
                         "%lu,\"arguments\":", (int) ctx->id.len,
                         (char *) ctx->id.data, i, index);
            st_jbuf_add_jstr(&d, calls[i].arguments,
                             ngx_strlen(calls[i].arguments));
            if (rc == NGX_OK) {
                rc = ngx_http_starling_resp_event(ctx,
                         "response.function_call_arguments.done", &d);
            }

            st_jbuf_reset(&d);
            st_jbuf_addf(&d, ",\"output_index\":%lu,\"item\":", index);
            ngx_http_starling_resp_call_item(ctx, &d, &calls[i], (size_t) i,
                                             calls[i].arguments);
            if (rc == NGX_OK) {
                rc = ngx_http_starling_resp_event(ctx,
                         "response.output_item.done", &d);
            }
            st_jbuf_free(&d);
        }

        if (n > 0) {
            st_api_tool_calls_free(calls, (size_t) n);
        }
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    status = ngx_http_starling_resp_status(ctx);
    rc = ngx_http_starling_resp_lifecycle(ctx,
             ngx_strcmp(status, "incomplete") == 0 ? "response.incomplete"
                                                   : "response.completed",
             status, 1);
    if (rc != NGX_OK || b->failed) {
        return NGX_ERROR;
    }

    return ngx_http_starling_stream_event(ctx, NULL, NULL, 0, 1);
}


ngx_int_t
ngx_http_starling_responses_reply(ngx_http_starling_ctx_t *ctx)
{
    ngx_int_t  rc;
    st_jbuf    b;

    st_jbuf_init(&b);
    ngx_http_starling_resp_object(ctx, &b, ngx_http_starling_resp_status(ctx),
                                  1);
    st_jbuf_adds(&b, "\n");

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(ctx->request, NGX_HTTP_OK, b.data,
                                     b.len);
    st_jbuf_free(&b);
    return rc;
}
