
/*
 * Error responses in the surface's shape: the OpenAI error object, the
 * worker API's list of field errors, 405 with Allow, 503 while a model
 * is not ready.
 */

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"


ngx_int_t
ngx_http_starling_error_status(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_uint_t status, const char *type,
    const char *param, const char *code, const char *message)
{
    ngx_int_t  rc;
    st_jbuf    jb;

    (void) ctx;

    st_jbuf_init(&jb);
    st_api_write_openai_error(&jb, message, type, param, code);

    if (jb.failed) {
        st_jbuf_free(&jb);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, status, jb.data, jb.len);
    st_jbuf_free(&jb);
    return rc;
}


/* 405 in the API's error shape, with Allow */
ngx_int_t
ngx_http_starling_not_allowed(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const char *allow)
{
    ngx_table_elt_t  *h;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_http_starling_error_status(r, ctx, NGX_HTTP_NOT_ALLOWED,
               "invalid_request_error", NULL, "method_not_allowed",
               "method not allowed");
}


ngx_int_t
ngx_http_starling_validation_error(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_int_t  rc;
    st_jbuf    jb;

    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);

    if (ctx->surface == NGX_HTTP_STARLING_COMPLETIONS
        || ctx->surface == NGX_HTTP_STARLING_CHAT
        || ctx->surface == NGX_HTTP_STARLING_APPLY_TEMPLATE
        || ctx->surface == NGX_HTTP_STARLING_RESPONSES
        || ctx->surface == NGX_HTTP_STARLING_EMBEDDINGS)
    {
        /* OpenAI reports one error; the first one found */
        return ngx_http_starling_error_status(r, ctx, NGX_HTTP_BAD_REQUEST,
                   "invalid_request_error", req->errors[0].field,
                   req->errors[0].constraint, req->errors[0].message);
    }

    st_jbuf_init(&jb);
    st_api_write_errors(&jb, req);
    if (jb.failed) {
        st_jbuf_free(&jb);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_BAD_REQUEST, jb.data, jb.len);
    st_jbuf_free(&jb);
    return rc;
}


/* A problem found after parsing, reported in the surface's error shape */
ngx_int_t
ngx_http_starling_reject(ngx_http_request_t *r, ngx_http_starling_ctx_t *ctx,
    ngx_uint_t status, const char *field, const char *constraint,
    const char *message)
{
    ngx_int_t        rc;
    st_jbuf          jb;
    st_api_request  *one;

    if (status == NGX_HTTP_BAD_REQUEST
        && ctx->surface == NGX_HTTP_STARLING_EXECUTE)
    {
        one = calloc(1, sizeof(st_api_request));
        if (one == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        one->n_errors = 1;
        ngx_cpystrn((u_char *) one->errors[0].field, (u_char *) field,
                    sizeof(one->errors[0].field));
        ngx_cpystrn((u_char *) one->errors[0].constraint,
                    (u_char *) constraint, sizeof(one->errors[0].constraint));
        ngx_cpystrn((u_char *) one->errors[0].message, (u_char *) message,
                    sizeof(one->errors[0].message));

        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);
        st_jbuf_init(&jb);
        st_api_write_errors(&jb, one);
        free(one);
        rc = jb.failed ? NGX_HTTP_INTERNAL_SERVER_ERROR
                       : ngx_http_starling_send_json(r, status, jb.data,
                                                     jb.len);
        st_jbuf_free(&jb);
        return rc;
    }

    if (status == NGX_HTTP_BAD_REQUEST || status == NGX_HTTP_NOT_FOUND) {
        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);
    } else if (status == NGX_HTTP_TOO_MANY_REQUESTS) {
        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_REJECTED);
    }

    return ngx_http_starling_error_status(r, ctx, status,
               status >= 500 ? "server_error"
               : status == 429 ? "rate_limit_error"
               : "invalid_request_error",
               field, constraint, message);
}


ngx_int_t
ngx_http_starling_unavailable(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_http_starling_model_t *m)
{
    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_NOT_READY);

    if (ngx_http_starling_set_retry_after(r, m->load_failed ? 30 : 1)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_starling_error_status(r, ctx,
               NGX_HTTP_SERVICE_UNAVAILABLE, "server_error", NULL,
               m->load_failed ? "model_failed" : "model_loading",
               m->load_failed ? "the model failed to load"
                              : "the model is still loading");
}
