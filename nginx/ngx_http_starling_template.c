
/*
 * POST …/apply-template (openai surface; "starling apply_template" for
 * one location): a chat request's messages rendered with the model's
 * chat template, without generating. The body is a chat completions body
 * (its sampling fields are checked and ignored); the reply is
 * {"prompt", "tokens", "n_tokens", "stop"}: the exact text and token ids
 * /v1/chat/completions would feed the model, and the end-of-turn strings
 * it would stop on. llama.cpp's server answers the same path with
 * {"prompt"}.
 */

#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


ngx_int_t
ngx_http_starling_apply_template(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    size_t                      i, n_stop;
    ngx_int_t                   rc;
    st_jbuf                     chat, b;
    st_error                    err;
    st_status                   st;
    st_tokens                   toks;
    const char *const          *stop;
    ngx_http_starling_model_t  *m;

    m = ngx_http_starling_pick_model(r, ctx, req);
    if (m == NULL) {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                        "model_not_found", "unknown model");
    }

    ctx->model = m;

    if (!m->loaded) {
        return ngx_http_starling_unavailable(r, ctx, m);
    }

    st_jbuf_init(&chat);
    /* with tools and tool turns, as /v1/chat/completions renders them
     * (without, the same as st_api_chat_render) */
    st = st_api_chat_render_tools((const char *) m->chat_template.data,
                                  m->info->chat_template, req, &chat, &stop,
                                  &n_stop, &err);
    if (st != ST_OK) {
        st_jbuf_free(&chat);
        return ngx_http_starling_reject(r, ctx,
                   st == ST_ERR_NOMEM ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                      : NGX_HTTP_BAD_REQUEST,
                   "messages", "chat_template", err.msg);
    }

    toks.ids = NULL;
    toks.n = 0;
    toks.cap = 0;

    if (st_tokenize(st_engine_tokenizer(m->engine),
                    chat.data ? chat.data : "", chat.len, 1, 1, &toks, &err)
        != ST_OK)
    {
        st_jbuf_free(&chat);
        free(toks.ids);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st_jbuf_init(&b);
    st_jbuf_adds(&b, "{\"object\":\"chat.template\",\"model\":");
    st_jbuf_add_jstr(&b, (const char *) m->name.data, m->name.len);
    st_jbuf_adds(&b, ",\"prompt\":");
    st_jbuf_add_jstr(&b, chat.data ? chat.data : "", chat.len);
    st_jbuf_adds(&b, ",\"tokens\":[");
    for (i = 0; i < toks.n; i++) {
        st_jbuf_addf(&b, i ? ",%d" : "%d", (int) toks.ids[i]);
    }
    st_jbuf_addf(&b, "],\"n_tokens\":%zu,\"stop\":[", toks.n);
    for (i = 0; i < n_stop; i++) {
        if (i) {
            st_jbuf_adds(&b, ",");
        }
        st_jbuf_add_jstr(&b, stop[i], ngx_strlen(stop[i]));
    }
    st_jbuf_adds(&b, "]}\n");

    st_jbuf_free(&chat);
    free(toks.ids);

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}
