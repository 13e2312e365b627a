
/*
 * Worker-API utility endpoints: /tokenize, /detokenize.
 */

#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


ngx_int_t
ngx_http_starling_tokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    char                        piece[256];
    size_t                      i, n, off;
    ngx_int_t                   rc;
    st_jbuf                     b;
    st_error                    err;
    st_tokens                   toks;
    const st_tokenizer         *tok;
    ngx_http_starling_model_t  *m;

    m = ngx_http_starling_pick_model(r, ctx, req);
    if (m == NULL) {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                        "model_not_found",
                                        "unknown model");
    }

    if (!m->loaded) {
        return ngx_http_starling_unavailable(r, ctx, m);
    }

    tok = st_engine_tokenizer(m->engine);

    toks.ids = NULL;
    toks.n = 0;
    toks.cap = 0;

    if (st_tokenize(tok, req->prompt ? req->prompt : "", req->prompt_len,
                    req->add_special, 1, &toks, &err)
        != ST_OK)
    {
        free(toks.ids);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st_jbuf_init(&b);
    st_jbuf_adds(&b, "{\"tokens\":[");
    for (i = 0; i < toks.n; i++) {
        st_jbuf_addf(&b, i ? ",%d" : "%d", (int) toks.ids[i]);
    }
    st_jbuf_adds(&b, "]");

    if (req->with_pieces) {
        st_jbuf_adds(&b, ",\"pieces\":[");
        off = 0;
        for (i = 0; i < toks.n; i++) {
            n = st_token_to_piece(tok, toks.ids[i], piece, sizeof(piece), 1);
            if (n > sizeof(piece)) {
                n = sizeof(piece);
            }
            st_jbuf_addf(&b, "%s{\"id\":%d,\"piece\":", i ? "," : "",
                         (int) toks.ids[i]);
            st_jbuf_add_jstr(&b, piece, n);
            st_jbuf_addf(&b, ",\"offset\":%zu}", off);
            off += n;
        }
        st_jbuf_adds(&b, "]");
    }

    st_jbuf_addf(&b, ",\"n_tokens\":%zu}\n", toks.n);
    free(toks.ids);

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}


ngx_int_t
ngx_http_starling_detokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    char                       *text;
    size_t                      i, n;
    ngx_int_t                   rc;
    st_jbuf                     b;
    const st_tokenizer         *tok;
    ngx_http_starling_model_t  *m;

    m = ngx_http_starling_pick_model(r, ctx, req);
    if (m == NULL) {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                        "model_not_found",
                                        "unknown model");
    }

    if (!m->loaded) {
        return ngx_http_starling_unavailable(r, ctx, m);
    }

    for (i = 0; i < req->n_prompt_ids; i++) {
        if ((uint32_t) req->prompt_ids[i] >= m->info->n_vocab) {
            return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "tokens", "range", "token id out of the vocabulary");
        }
    }

    tok = st_engine_tokenizer(m->engine);

    n = st_detokenize(tok, req->prompt_ids, req->n_prompt_ids, NULL, 0, 0,
                      0);
    text = malloc(n + 1);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = st_detokenize(tok, req->prompt_ids, req->n_prompt_ids, text, n + 1,
                      0, 0);

    st_jbuf_init(&b);
    st_jbuf_adds(&b, "{\"content\":");
    st_jbuf_add_jstr(&b, text, n);
    st_jbuf_adds(&b, "}\n");
    free(text);

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}
