
/*
 * Response plumbing: whole JSON replies and server-sent event streams.
 *
 * A stream's header leaves with the first output (so that a request that
 * times out in the queue can still be answered 503). Each event is its
 * own flushed buffer; when the socket is full nginx's write filter keeps
 * the rest and our write handler pushes it on.
 */

#include "ngx_http_starling_output.h"


static void ngx_http_starling_writer(ngx_http_request_t *r);
static ngx_int_t ngx_http_starling_add_header(ngx_http_request_t *r,
    const char *key, const char *value);


static ngx_int_t
ngx_http_starling_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_starling_set_retry_after(ngx_http_request_t *r, ngx_uint_t seconds)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf(p, "%ui", seconds) = '\0';

    return ngx_http_starling_add_header(r, "Retry-After", (char *) p);
}


ngx_int_t
ngx_http_starling_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *body, size_t len)
{
    return ngx_http_starling_send_body(r, status, "application/json", body,
                                       len);
}


ngx_int_t
ngx_http_starling_send_body(ngx_http_request_t *r, ngx_uint_t status,
    const char *content_type, const char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) content_type;
    r->headers_out.content_type.len = ngx_strlen(content_type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc == NGX_ERROR ? NGX_ERROR : (rc > NGX_OK ? rc : NGX_OK);
    }

    b = ngx_create_temp_buf(r->pool, len ? len : 1);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_starling_stream_header(ngx_http_starling_ctx_t *ctx)
{
    char                *data;
    ngx_int_t            rc;
    st_jbuf             *b = &ctx->scratch;
    ngx_http_request_t  *r = ctx->request;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_starling_add_header(r, "Cache-Control", "no-cache")
        != NGX_OK
        || ngx_http_starling_add_header(r, "X-Accel-Buffering", "no")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

#if (NGX_HTTP_GZIP)
    /* events must not wait in gzip's buffers (gzip_types may list
     * text/event-stream) */
    r->gzip_tested = 1;
    r->gzip_ok = 0;
#endif

    rc = ngx_http_send_header(r);
    ctx->header_sent = 1;

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    r->write_event_handler = ngx_http_starling_writer;

    st_jbuf_reset(b);

    if (ctx->surface == NGX_HTTP_STARLING_EXECUTE) {
        st_jbuf_adds(b, "{\"job_id\":");
        st_jbuf_add_jstr(b, (const char *) ctx->job_id.data,
                         ctx->job_id.len);
        st_jbuf_adds(b, ",\"model\":");
        st_jbuf_add_jstr(b, (const char *) ctx->model->name.data,
                         ctx->model->name.len);
        st_jbuf_addf(b, ",\"started_at\":%llu,\"prompt_tokens\":%u}",
                     (unsigned long long) ctx->created * 1000
                     + (unsigned long long) ngx_timeofday()->msec,
                     ctx->prompt_tokens);
        data = b->data;
        if (b->failed) {
            return NGX_ERROR;
        }
        return ngx_http_starling_stream_event(ctx, "started", data, b->len,
                                              0);
    }

    if (ctx->surface == NGX_HTTP_STARLING_RESPONSES) {
        return ngx_http_starling_responses_header(ctx);
    }

    if (ctx->surface == NGX_HTTP_STARLING_CHAT) {
        /* OpenAI opens a chat stream with the role */
        st_jbuf_addf(b, "{\"id\":\"chatcmpl-%.*s\",\"object\":"
                     "\"chat.completion.chunk\",\"created\":%ld,\"model\":",
                     (int) ctx->id.len, (char *) ctx->id.data,
                     (long) ctx->created);
        st_jbuf_add_jstr(b, (const char *) ctx->model->name.data,
                         ctx->model->name.len);
        st_jbuf_adds(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                     "\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                     "\"finish_reason\":null}]");
        if (ctx->include_usage) {
            st_jbuf_adds(b, ",\"usage\":null");
        }
        st_jbuf_adds(b, "}");
        if (b->failed) {
            return NGX_ERROR;
        }
        return ngx_http_starling_stream_event(ctx, NULL, b->data, b->len, 0);
    }

    /* headers out now, before the first token */
    return ngx_http_starling_stream_event(ctx, NULL, NULL, 0, 0);
}


/*
 * One SSE event: "event: NAME\n" (optional) "data: DATA\n\n". data must
 * be one line (JSON here always is). With data == NULL only a flush.
 */
ngx_int_t
ngx_http_starling_stream_event(ngx_http_starling_ctx_t *ctx,
    const char *event, const char *data, size_t len, ngx_uint_t last)
{
    size_t                     size;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_connection_t          *c;
    ngx_http_request_t        *r = ctx->request;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    if (r->header_only) {
        return NGX_OK;
    }

    size = 0;
    if (event != NULL) {
        size += sizeof("event: \n") - 1 + ngx_strlen(event);
    }
    if (data != NULL) {
        size += sizeof("data: \n\n") - 1 + len;
    }

    if (size) {
        b = ngx_create_temp_buf(r->pool, size);
        if (b == NULL) {
            return NGX_ERROR;
        }

        if (event != NULL) {
            b->last = ngx_sprintf(b->last, "event: %s\n", event);
        }
        if (data != NULL) {
            b->last = ngx_cpymem(b->last, "data: ", 6);
            b->last = ngx_cpymem(b->last, data, len);
            b->last = ngx_cpymem(b->last, "\n\n", 2);
        }

    } else {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }
    }

    b->flush = 1;
    b->last_buf = last;
    b->last_in_chain = 1;
    ctx->n_events++;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN && !last) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!c->write->delayed && !c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return rc;
}


/* the client's socket became writable again mid-stream */
static void
ngx_http_starling_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed || r->aio) {
        return;
    }

    rc = ngx_http_output_filter(r, NULL);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->buffered || c->buffered) {
        if (!wev->delayed && !wev->timer_set) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }
}


/*
 * The request is complete (or broken). rc: what the last output call
 * returned, or an HTTP status. The ctx may be freed on return.
 */
void
ngx_http_starling_finish(ngx_http_starling_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r = ctx->request;

    c = r->connection;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    /* nginx's own writer finishes sending what is buffered */
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_finalize_request(r, rc);

    /* we run from a thread-pool completion or a timer, not from the
     * connection's handler: run what finalization posted */
    ngx_http_run_posted_requests(c);
}
