
/*
 * nginx checks client_max_body_size itself, before a location's content
 * handler runs (a declared Content-Length) or while it reads the body
 * (chunked), and answers with its own HTML 413 page. In a starling
 * location an API client expects the API's error object instead: these
 * filters rewrite nginx's special 413 response (r->err_status, set only
 * by ngx_http_special_response_handler) into it. The module's own
 * replies never set err_status, so they pass through untouched.
 */

#include "ngx_http_starling_output.h"


static ngx_http_output_header_filter_pt  ngx_http_starling_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_starling_next_body_filter;

static u_char  ngx_http_starling_413_body[] =
    "{\"error\":{\"message\":\"request body is larger than "
    "client_max_body_size\",\"type\":\"invalid_request_error\","
    "\"param\":null,\"code\":\"body_too_large\"}}\n";


static ngx_uint_t
ngx_http_starling_is_nginx_413(ngx_http_request_t *r)
{
    ngx_http_starling_loc_conf_t  *slcf;

    if (r != r->main || r->err_status != NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return 0;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    return slcf != NULL && slcf->surface != NGX_HTTP_STARLING_OFF;
}


static ngx_int_t
ngx_http_starling_413_header_filter(ngx_http_request_t *r)
{
    if (ngx_http_starling_is_nginx_413(r)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "starling: nginx's 413 answered as an API error");
        ngx_str_set(&r->headers_out.content_type, "application/json");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
        r->headers_out.content_type_lowcase = NULL;
        r->headers_out.charset.len = 0;
        ngx_http_clear_content_length(r);
        r->headers_out.content_length_n =
            sizeof(ngx_http_starling_413_body) - 1;
    }

    return ngx_http_starling_next_header_filter(r);
}


static ngx_int_t
ngx_http_starling_413_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl, out;
    ngx_uint_t    last;

    if (in == NULL || !ngx_http_starling_is_nginx_413(r)) {
        return ngx_http_starling_next_body_filter(r, in);
    }

    /* the HTML page comes in one chain ending with last_buf: drop it and
     * send the error object in its place, once */
    last = 0;
    for (cl = in; cl != NULL; cl = cl->next) {
        if (cl->buf->last_buf) {
            last = 1;
        }
        cl->buf->pos = cl->buf->last;
        if (cl->buf->in_file) {
            cl->buf->file_pos = cl->buf->file_last;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ngx_http_starling_413_body;
    b->last = b->pos + sizeof(ngx_http_starling_413_body) - 1;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_starling_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_starling_body_limit_init(ngx_conf_t *cf)
{
    ngx_http_starling_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_starling_413_header_filter;

    ngx_http_starling_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_starling_413_body_filter;

    return NGX_OK;
}
