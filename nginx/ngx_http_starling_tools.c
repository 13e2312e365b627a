
/*
 * Tools on /v1/chat/completions: function calls parsed out of a choice's
 * generated text (src/api/st_api_tools.c) and rendered as OpenAI's
 * message.tool_calls, or, streaming, as tool_calls deltas: content is
 * streamed until a "<tool_call>" begins (a possible start of one is held
 * back), the rest is held until the choice ends, then each call goes out
 * as a delta with its id, type and name, followed by its arguments in
 * pieces; finish_reason is "tool_calls". A call that does not parse (or
 * names a function not in tools) is plain content.
 *
 * tool_choice "required" or a named function is enforced with the
 * engine's constrained decoding: the output must be the JSON of one call
 * ({"name", "arguments"} matching the tool's parameters schema), which
 * is then parsed as one <tool_call>.
 *
 * Llama 3 templates (ctx->tools_style): a call is the whole reply, a bare
 * {"name", "parameters"} object (st_api_tools_llama3.c). Streaming holds
 * the text while it may still be one (blanks, <|python_tag|>, then "{"),
 * and streams it as content from the first byte that rules a call out;
 * forced calls use "parameters" as the arguments key.
 *
 * Mistral v3 (st_api_tools_mistral.c): calls follow "[TOOL_CALLS]" as a
 * JSON array; streaming holds back from that marker as it does from
 * "<tool_call>"; a forced call is parsed as a one-element array.
 */

#include "ngx_http_starling_output.h"


#define NGX_HTTP_STARLING_ARGS_PIECE  16

static const char  ngx_http_starling_call_open[] = "<tool_call>";
static const char  ngx_http_starling_mistral_open[] = "[TOOL_CALLS]";


ngx_int_t
ngx_http_starling_tools_setup(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const st_api_request *req, st_error *err)
{
    int       rc;
    size_t    i;
    st_jbuf   schema;

    if (req->n_tools == 0 || req->tool_choice == ST_API_TOOLS_NONE) {
        return NGX_OK;
    }

    ctx->tools = ngx_pcalloc(r->pool, req->n_tools * sizeof(st_api_tool));
    if (ctx->tools == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < req->n_tools; i++) {
        ctx->tools[i].name = (char *) ngx_pstrdup(r->pool, &(ngx_str_t) {
                                 ngx_strlen(req->tools[i].name) + 1,
                                 (u_char *) req->tools[i].name });
        if (ctx->tools[i].name == NULL) {
            return NGX_ERROR;
        }
    }

    ctx->n_tools = req->n_tools;
    ctx->tools_on = 1;
    ctx->tools_style = st_api_tools_style_of(
                           (const char *) ctx->model->chat_template.data,
                           ctx->model->info->chat_template);
    ctx->parallel_tool_calls = req->parallel_tool_calls;

    st_jbuf_init(&schema);
    rc = st_api_tools_call_schema(req, ctx->tools_style, &schema);
    if (rc <= 0) {
        st_jbuf_free(&schema);
        return rc < 0 ? NGX_ERROR : NGX_OK;
    }

    if (st_constraint_from_json_schema(&ctx->constraint, schema.data,
                                       schema.len, err)
        != ST_OK)
    {
        st_jbuf_free(&schema);
        ctx->constraint = NULL;
        return err->code == ST_ERR_NOMEM ? NGX_ERROR : NGX_DECLINED;
    }

    st_jbuf_free(&schema);
    ctx->sreq.constraint = ctx->constraint;
    ctx->tool_forced = 1;
    ctx->tool_held = 1;             /* nothing is content */
    return NGX_OK;
}


int
ngx_http_starling_tools_parse(ngx_http_starling_ctx_t *c,
    st_api_tool_call **calls, size_t *content_len)
{
    int   i, n;
    char  prefix[96];

    ngx_snprintf((u_char *) prefix, sizeof(prefix), "%V_%ui%Z", &c->id,
                 c->index);

    if (c->tools_style == ST_API_TOOLS_STYLE_LLAMA3) {
        /* the whole reply is the call (forced or not): one per turn */
        n = st_api_tool_calls_parse_llama3(c->text.data ? c->text.data : "",
                                           c->text.len, c->tools,
                                           c->n_tools, prefix, calls,
                                           content_len);
        if (c->tool_forced) {
            *content_len = n > 0 ? 0 : c->text.len;
        }
        return n;
    }

    if (c->tools_style == ST_API_TOOLS_STYLE_MISTRAL) {
        st_jbuf  w;

        if (!c->tool_forced) {
            n = st_api_tool_calls_parse_mistral(
                    c->text.data ? c->text.data : "", c->text.len, c->tools,
                    c->n_tools, prefix, calls, content_len);
        } else {
            /* the constrained output is the bare JSON of one call */
            st_jbuf_init(&w);
            st_jbuf_adds(&w, "[TOOL_CALLS] [");
            st_jbuf_add(&w, c->text.data ? c->text.data : "", c->text.len);
            st_jbuf_adds(&w, "]");
            if (w.failed) {
                st_jbuf_free(&w);
                return -1;
            }
            n = st_api_tool_calls_parse_mistral(w.data, w.len, c->tools,
                                                c->n_tools, prefix, calls,
                                                content_len);
            st_jbuf_free(&w);
            *content_len = n > 0 ? 0 : c->text.len;
        }
        if (n > 1 && !c->parallel_tool_calls) {
            for (i = 1; i < n; i++) {
                free((*calls)[i].id);
                free((*calls)[i].name);
                free((*calls)[i].arguments);
            }
            n = 1;
        }
        return n;
    }

    if (c->tool_forced) {
        /* the constrained output is the bare JSON of one call */
        st_jbuf  w;

        st_jbuf_init(&w);
        st_jbuf_adds(&w, ngx_http_starling_call_open);
        st_jbuf_add(&w, c->text.data ? c->text.data : "", c->text.len);
        st_jbuf_adds(&w, "</tool_call>");
        if (w.failed) {
            st_jbuf_free(&w);
            return -1;
        }
        n = st_api_tool_calls_parse(w.data, w.len, c->tools, c->n_tools,
                                    prefix, calls, content_len);
        st_jbuf_free(&w);
        *content_len = n > 0 ? 0 : c->text.len;
        return n;
    }

    n = st_api_tool_calls_parse(c->text.data ? c->text.data : "",
                                c->text.len, c->tools, c->n_tools, prefix,
                                calls, content_len);
    if (n > 1 && !c->parallel_tool_calls) {
        /* parallel_tool_calls false: the first call only */
        for (i = 1; i < n; i++) {
            free((*calls)[i].id);
            free((*calls)[i].name);
            free((*calls)[i].arguments);
        }
        n = 1;
    }
    return n;
}


/* non-stream: "message":{...} of one choice; c->tool_calls tells the
 * finish_reason */
ngx_int_t
ngx_http_starling_tools_message(ngx_http_starling_ctx_t *c, st_jbuf *b)
{
    int                i, n;
    size_t             content_len;
    st_api_tool_call  *calls;

    n = ngx_http_starling_tools_parse(c, &calls, &content_len);
    if (n < 0) {
        return NGX_ERROR;
    }

    st_jbuf_adds(b, "{\"role\":\"assistant\",\"content\":");

    if (n == 0) {
        st_jbuf_add_jstr(b, c->text.data ? c->text.data : "", c->text.len);
        st_jbuf_adds(b, "}");
        return NGX_OK;
    }

    while (content_len > 0
           && (c->text.data[content_len - 1] == '\n'
               || c->text.data[content_len - 1] == ' '))
    {
        content_len--;
    }

    if (content_len) {
        st_jbuf_add_jstr(b, c->text.data, content_len);
    } else {
        st_jbuf_adds(b, "null");
    }

    st_jbuf_adds(b, ",\"tool_calls\":[");
    for (i = 0; i < n; i++) {
        st_jbuf_adds(b, i ? ",{\"id\":" : "{\"id\":");
        st_jbuf_add_jstr(b, calls[i].id, ngx_strlen(calls[i].id));
        st_jbuf_adds(b, ",\"type\":\"function\",\"function\":{\"name\":");
        st_jbuf_add_jstr(b, calls[i].name, ngx_strlen(calls[i].name));
        st_jbuf_adds(b, ",\"arguments\":");
        st_jbuf_add_jstr(b, calls[i].arguments,
                         ngx_strlen(calls[i].arguments));
        st_jbuf_adds(b, "}}");
    }
    st_jbuf_adds(b, "]}");

    st_api_tool_calls_free(calls, (size_t) n);
    c->tool_calls = 1;
    return NGX_OK;
}


/* one chat chunk: {"choices":[{"index","delta":DELTA,...}]} */
static ngx_int_t
ngx_http_starling_tools_chunk(ngx_http_starling_ctx_t *ctx, st_jbuf *delta)
{
    ngx_int_t   rc;
    st_jbuf    *b = &ctx->scratch;

    st_jbuf_reset(b);
    st_jbuf_addf(b, "{\"id\":\"chatcmpl-%.*s\",\"object\":"
                 "\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                 (int) ctx->id.len, (char *) ctx->id.data,
                 (long) ctx->created);
    st_jbuf_add_jstr(b, (const char *) ctx->model->name.data,
                     ctx->model->name.len);
    st_jbuf_addf(b, ",\"choices\":[{\"index\":%u,\"delta\":",
                 (unsigned) ctx->index);
    st_jbuf_add(b, delta->data, delta->len);
    st_jbuf_adds(b, ",\"logprobs\":null,\"finish_reason\":null}]");
    if (ctx->include_usage) {
        st_jbuf_adds(b, ",\"usage\":null");
    }
    st_jbuf_adds(b, "}");

    if (b->failed || delta->failed) {
        return NGX_ERROR;
    }

    rc = ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_starling_tools_content(ngx_http_starling_ctx_t *ctx, size_t end)
{
    ngx_int_t  rc;
    st_jbuf    d;

    if (end <= ctx->tool_sent) {
        return NGX_OK;
    }

    st_jbuf_init(&d);
    st_jbuf_adds(&d, "{\"content\":");
    st_jbuf_add_jstr(&d, ctx->text.data + ctx->tool_sent,
                     end - ctx->tool_sent);
    st_jbuf_adds(&d, "}");
    rc = ngx_http_starling_tools_chunk(ctx, &d);
    st_jbuf_free(&d);

    ctx->tool_sent = end;
    return rc;
}


/*
 * Streaming: text[0..len) is the choice's new output; final: the choice
 * ended (flush, and the calls if any).
 */
ngx_int_t
ngx_http_starling_tools_stream(ngx_http_starling_ctx_t *ctx,
    const char *text, size_t len, ngx_uint_t final)
{
    int                i, n;
    size_t             k, off, piece, safe, content_len, open_len;
    u_char            *p;
    st_jbuf            d;
    ngx_int_t          rc;
    st_api_tool_call  *calls;
    const char        *open;

    if (ctx->tools_style == ST_API_TOOLS_STYLE_MISTRAL) {
        open = ngx_http_starling_mistral_open;
        open_len = sizeof(ngx_http_starling_mistral_open) - 1;
    } else {
        open = ngx_http_starling_call_open;
        open_len = sizeof(ngx_http_starling_call_open) - 1;
    }

    st_jbuf_add(&ctx->text, text, len);
    if (ctx->text.failed) {
        return NGX_ERROR;
    }

    if (!final) {
        if (ctx->tool_held) {
            return NGX_OK;
        }

        if (ctx->tools_style == ST_API_TOOLS_STYLE_LLAMA3
            && !ctx->tool_plain)
        {
            /* a Llama 3 call is the whole reply: held while it may be
             * one (blanks, "<|python_tag|>", then "{") */
            static const char  tag[] = "<|python_tag|>";

            for (k = 0; k < ctx->text.len
                        && (ctx->text.data[k] == ' '
                            || ctx->text.data[k] == '\n'
                            || ctx->text.data[k] == '\t'
                            || ctx->text.data[k] == '\r'); k++)
            {
                /* skip blanks */
            }
            off = ctx->text.len - k;
            if (off == 0
                || (off < sizeof(tag) - 1
                    && ngx_strncmp(ctx->text.data + k, tag, off) == 0))
            {
                return NGX_OK;
            }
            if (off >= sizeof(tag) - 1
                && ngx_strncmp(ctx->text.data + k, tag, sizeof(tag) - 1)
                   == 0)
            {
                k += sizeof(tag) - 1;
                while (k < ctx->text.len
                       && (ctx->text.data[k] == ' '
                           || ctx->text.data[k] == '\n'))
                {
                    k++;
                }
                if (k == ctx->text.len) {
                    return NGX_OK;
                }
            }
            if (ctx->text.data[k] == '{') {
                ctx->tool_held = 1;
                return NGX_OK;
            }
            ctx->tool_plain = 1;
        }

        if (ctx->tools_style == ST_API_TOOLS_STYLE_LLAMA3) {
            safe = ctx->tool_sent
                   + st_api_utf8_complete(ctx->text.data + ctx->tool_sent,
                                          ctx->text.len - ctx->tool_sent);
            return ngx_http_starling_tools_content(ctx, safe);
        }

        p = memmem(ctx->text.data + ctx->tool_sent,
                   ctx->text.len - ctx->tool_sent, open, open_len);
        if (p != NULL) {
            ctx->tool_held = 1;
            return ngx_http_starling_tools_content(ctx,
                       (size_t) (p - (u_char *) ctx->text.data));
        }

        /* hold back what may begin "<tool_call>" ("[TOOL_CALLS]") */
        safe = ctx->text.len;
        for (k = open_len - 1; k > 0; k--) {
            if (k <= ctx->text.len - ctx->tool_sent
                && ngx_strncmp(ctx->text.data + ctx->text.len - k, open, k)
                   == 0)
            {
                safe = ctx->text.len - k;
                break;
            }
        }
        safe = ctx->tool_sent
               + st_api_utf8_complete(ctx->text.data + ctx->tool_sent,
                                      safe - ctx->tool_sent);
        return ngx_http_starling_tools_content(ctx, safe);
    }

    n = ngx_http_starling_tools_parse(ctx, &calls, &content_len);
    if (n < 0) {
        return NGX_ERROR;
    }

    if (n == 0) {
        return ngx_http_starling_tools_content(ctx, ctx->text.len);
    }

    rc = NGX_OK;
    ctx->tool_calls = 1;

    for (i = 0; i < n && rc == NGX_OK; i++) {
        st_jbuf_init(&d);
        st_jbuf_addf(&d, "{\"tool_calls\":[{\"index\":%d,\"id\":", i);
        st_jbuf_add_jstr(&d, calls[i].id, ngx_strlen(calls[i].id));
        st_jbuf_adds(&d, ",\"type\":\"function\",\"function\":{\"name\":");
        st_jbuf_add_jstr(&d, calls[i].name, ngx_strlen(calls[i].name));
        st_jbuf_adds(&d, ",\"arguments\":\"\"}}]}");
        rc = ngx_http_starling_tools_chunk(ctx, &d);
        st_jbuf_free(&d);

        /* the arguments in pieces, as OpenAI streams them */
        len = ngx_strlen(calls[i].arguments);
        for (off = 0; off < len && rc == NGX_OK; off += piece) {
            piece = st_api_utf8_complete(calls[i].arguments + off,
                        ngx_min(len - off, NGX_HTTP_STARLING_ARGS_PIECE));
            if (piece == 0) {
                piece = len - off;
            }
            st_jbuf_init(&d);
            st_jbuf_addf(&d, "{\"tool_calls\":[{\"index\":%d,\"function\":"
                         "{\"arguments\":", i);
            st_jbuf_add_jstr(&d, calls[i].arguments + off, piece);
            st_jbuf_adds(&d, "}}]}");
            rc = ngx_http_starling_tools_chunk(ctx, &d);
            st_jbuf_free(&d);
        }
    }

    st_api_tool_calls_free(calls, (size_t) n);
    return rc;
}
