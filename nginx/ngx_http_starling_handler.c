
/*
 * The content handler: routes a location's surface, sets up the request
 * context (correlation id, log handler, pool cleanup), reads the body in
 * the event loop, parses it, and dispatches it to generation
 * (ngx_http_starling_generate.c) or a worker utility endpoint.
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


static ngx_http_starling_surface_e ngx_http_starling_route(
    ngx_http_request_t *r, ngx_http_starling_surface_e s);
static ngx_http_starling_ctx_t *ngx_http_starling_ctx_create(
    ngx_http_request_t *r, ngx_http_starling_loc_conf_t *slcf);
static u_char *ngx_http_starling_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void ngx_http_starling_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_starling_read_body(ngx_http_request_t *r,
    u_char **body, size_t *len);
static void ngx_http_starling_cleanup(void *data);


static ngx_str_t  ngx_http_starling_corr_header =
    ngx_string("X-Correlation-ID");


ngx_int_t
ngx_http_starling_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_starling_ctx_t         *ctx;
    ngx_http_starling_loc_conf_t    *slcf;
    ngx_http_starling_main_conf_t   *smcf;
    ngx_http_starling_surface_e      surface;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);
    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    ctx = ngx_http_starling_ctx_create(r, slcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    surface = ngx_http_starling_route(r, slcf->surface);
    ctx->surface = surface;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: route \"%V\": surface %d -> %d", &r->uri,
                   (int) slcf->surface, (int) surface);

    if (surface == NGX_HTTP_STARLING_OFF) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx, NGX_HTTP_NOT_FOUND,
                   "invalid_request_error", NULL, "not_found",
                   "unknown endpoint");
    }

    switch (surface) {

    case NGX_HTTP_STARLING_SESSIONS:

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_starling_not_allowed(r, ctx, "GET, HEAD");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_starling_session_request(r, ctx, NULL);

    case NGX_HTTP_STARLING_HEALTH:
    case NGX_HTTP_STARLING_READY:
    case NGX_HTTP_STARLING_METRICS:
    case NGX_HTTP_STARLING_MODELS:

        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_starling_not_allowed(r, ctx, "GET, HEAD");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        switch (surface) {
        case NGX_HTTP_STARLING_HEALTH:
            return ngx_http_starling_health(r, ctx->model);
        case NGX_HTTP_STARLING_READY:
            return ngx_http_starling_ready(r, smcf);
        case NGX_HTTP_STARLING_METRICS:
            return ngx_http_starling_metrics(r, smcf);
        default:
            return ngx_http_starling_models(r, smcf);
        }

    default:
        break;
    }

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_starling_not_allowed(r, ctx, "POST");
    }

    /* an over-long body never gets here: nginx answers 413 itself
     * (declared length: before this handler; chunked: while reading), and
     * ngx_http_starling_body_limit.c gives that reply the API's shape */
    rc = ngx_http_read_client_request_body(r, ngx_http_starling_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_uint_t
ngx_http_starling_suffix(ngx_str_t *uri, const char *suffix)
{
    size_t  n = ngx_strlen(suffix);

    return uri->len >= n
           && ngx_strncmp(uri->data + uri->len - n, suffix, n) == 0;
}


static ngx_http_starling_surface_e
ngx_http_starling_route(ngx_http_request_t *r, ngx_http_starling_surface_e s)
{
    ngx_str_t  *uri = &r->uri;

    if (s == NGX_HTTP_STARLING_OPENAI) {
        if (ngx_http_starling_suffix(uri, "/chat/completions")) {
            return NGX_HTTP_STARLING_CHAT;
        }
        if (ngx_http_starling_suffix(uri, "/completions")) {
            return NGX_HTTP_STARLING_COMPLETIONS;
        }
        if (ngx_http_starling_suffix(uri, "/models")) {
            return NGX_HTTP_STARLING_MODELS;
        }
        if (ngx_http_starling_suffix(uri, "/session/close")) {
            return NGX_HTTP_STARLING_SESSION_CLOSE;
        }
        if (ngx_http_starling_suffix(uri, "/sessions")) {
            return NGX_HTTP_STARLING_SESSIONS;
        }
        if (ngx_http_starling_suffix(uri, "/responses")) {
            return NGX_HTTP_STARLING_RESPONSES;
        }
        if (ngx_http_starling_suffix(uri, "/embeddings")) {
            return NGX_HTTP_STARLING_EMBEDDINGS;
        }
        if (ngx_http_starling_suffix(uri, "/apply-template")) {
            return NGX_HTTP_STARLING_APPLY_TEMPLATE;
        }
        return NGX_HTTP_STARLING_OFF;
    }

    if (s == NGX_HTTP_STARLING_WORKER) {
        static const struct {
            const char                  *suffix;
            ngx_http_starling_surface_e  surface;
        } routes[] = {
            { "/execute", NGX_HTTP_STARLING_EXECUTE },
            { "/cancel", NGX_HTTP_STARLING_CANCEL },
            { "/health", NGX_HTTP_STARLING_HEALTH },
            { "/ready", NGX_HTTP_STARLING_READY },
            { "/detokenize", NGX_HTTP_STARLING_DETOKENIZE },
            { "/tokenize", NGX_HTTP_STARLING_TOKENIZE },
            { "/metrics", NGX_HTTP_STARLING_METRICS },
            { "/session/close", NGX_HTTP_STARLING_SESSION_CLOSE },
            { "/sessions", NGX_HTTP_STARLING_SESSIONS },
            { NULL, NGX_HTTP_STARLING_OFF }
        };
        ngx_uint_t  i;

        for (i = 0; routes[i].suffix != NULL; i++) {
            if (ngx_http_starling_suffix(uri, routes[i].suffix)) {
                return routes[i].surface;
            }
        }
        return NGX_HTTP_STARLING_OFF;
    }

    return s;
}


/* Correlation id: the client's X-Correlation-ID when it is sane,
 * else $request_id; echoed in the response and in every log line. */
static ngx_int_t
ngx_http_starling_correlation(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx)
{
    size_t                          i;
    ngx_uint_t                      n;
    ngx_list_part_t                *part;
    ngx_table_elt_t                *h, *out;
    ngx_http_variable_value_t      *vv;
    ngx_http_starling_main_conf_t  *smcf;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (n = 0; /* void */; n++) {
        if (n >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            h = part->elts;
            n = 0;
        }

        if (h[n].key.len == ngx_http_starling_corr_header.len
            && ngx_strncasecmp(h[n].key.data,
                               ngx_http_starling_corr_header.data,
                               h[n].key.len) == 0)
        {
            if (h[n].value.len == 0 || h[n].value.len > 128) {
                break;
            }
            for (i = 0; i < h[n].value.len; i++) {
                if (h[n].value.data[i] <= 0x20 || h[n].value.data[i] >= 0x7f
                    || h[n].value.data[i] == '"')
                {
                    break;
                }
            }
            if (i == h[n].value.len) {
                ctx->correlation_id = h[n].value;
            }
            break;
        }
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    vv = ngx_http_get_indexed_variable(r, smcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_ERROR;
    }

    ctx->id.data = vv->data;
    ctx->id.len = vv->len;

    if (ctx->correlation_id.len == 0) {
        ctx->correlation_id = ctx->id;
    }

    out = ngx_list_push(&r->headers_out.headers);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->hash = 1;
    out->key = ngx_http_starling_corr_header;
    out->value = ctx->correlation_id;
#if (nginx_version >= 1023000)
    out->next = NULL;
#endif

    return NGX_OK;
}


static ngx_http_starling_ctx_t *
ngx_http_starling_ctx_create(ngx_http_request_t *r,
    ngx_http_starling_loc_conf_t *slcf)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_starling_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_starling_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->model = slcf->model;
    ctx->finish = ST_FINISH_NONE;
    ctx->created = ngx_time();
    ctx->start_msec = ngx_current_msec;
    st_jbuf_init(&ctx->text);
    st_jbuf_init(&ctx->scratch);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_starling_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_starling_module);

    if (ngx_http_starling_correlation(r, ctx) != NGX_OK) {
        return NULL;
    }

    ctx->orig_log_handler = r->log_handler;
    r->log_handler = ngx_http_starling_log_error;

    return ctx;
}


static u_char *
ngx_http_starling_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char                   *p;
    ngx_http_starling_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);
    if (ctx == NULL) {
        return buf;
    }

    p = buf;

    if (ctx->orig_log_handler) {
        p = ctx->orig_log_handler(r, sr, buf, len);
        len -= p - buf;
    }

    return ngx_snprintf(p, len, ", correlation_id: \"%V\"",
                        &ctx->correlation_id);
}


/* request pool cleanup: the request is gone (finished, failed, or the
 * client went away): free heap memory and let the engine drop the seq */
static void
ngx_http_starling_cleanup(void *data)
{
    ngx_http_starling_ctx_t *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_starling_job_unregister(ctx);

    /* whatever ended it, a started request is counted once (a no-op
     * when an end path counted it already) */
    ngx_http_starling_count_finish(ctx->request, ctx);

    ngx_http_starling_session_unqueue(ctx);

    if (ctx->model != NULL
        && (ctx->queued_in || ctx->seq != NULL || ctx->n_choices))
    {
        ngx_http_starling_detach(ctx);
    }

    ngx_http_starling_choices_free(ctx);

    if (ctx->constraint != NULL) {
        st_constraint_free(ctx->constraint);
        ctx->constraint = NULL;
    }

    st_jbuf_free(&ctx->text);
    st_jbuf_free(&ctx->scratch);
    free(ctx->tokens.ids);
    ctx->tokens.ids = NULL;
}


static void
ngx_http_starling_body_handler(ngx_http_request_t *r)
{
    u_char                         *body;
    size_t                          len;
    ngx_int_t                       rc;
    st_api_kind                     kind;
    st_api_limits                   lim;
    st_api_request                 *req;
    ngx_http_starling_ctx_t        *ctx;
    ngx_http_starling_loc_conf_t   *slcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    if (ngx_http_starling_read_body(r, &body, &len) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (ctx->surface) {
    case NGX_HTTP_STARLING_COMPLETIONS:
        kind = ST_API_COMPLETIONS;
        break;
    case NGX_HTTP_STARLING_CHAT:
    case NGX_HTTP_STARLING_APPLY_TEMPLATE:
        kind = ST_API_CHAT;
        break;
    case NGX_HTTP_STARLING_EXECUTE:
        kind = ST_API_EXECUTE;
        break;
    case NGX_HTTP_STARLING_RESPONSES:
        kind = ST_API_RESPONSES;
        break;
    case NGX_HTTP_STARLING_EMBEDDINGS:
        kind = ST_API_EMBEDDINGS;
        break;
    case NGX_HTTP_STARLING_TOKENIZE:
        kind = ST_API_TOKENIZE;
        break;
    case NGX_HTTP_STARLING_DETOKENIZE:
        kind = ST_API_DETOKENIZE;
        break;
    case NGX_HTTP_STARLING_SESSION_CLOSE:
        kind = ST_API_SESSION_CLOSE;
        break;
    default:
        kind = ST_API_CANCEL;
        break;
    }

    lim.max_tokens_limit = (uint32_t) slcf->max_tokens;
    lim.max_prompt_chars = (uint32_t) slcf->max_prompt_chars;

    req = st_api_parse(kind, (const char *) body, len, &lim);
    if (req == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (req->n_errors) {
        rc = ngx_http_starling_validation_error(r, ctx, req);
        st_api_request_free(req);
        ngx_http_finalize_request(r, rc);
        return;
    }

    switch (kind) {
    case ST_API_TOKENIZE:
        rc = ngx_http_starling_tokenize(r, ctx, req);
        break;
    case ST_API_DETOKENIZE:
        rc = ngx_http_starling_detokenize(r, ctx, req);
        break;
    case ST_API_CANCEL:
        rc = ngx_http_starling_cancel_request(r, req);
        break;
    case ST_API_SESSION_CLOSE:
        rc = ngx_http_starling_session_request(r, ctx, req);
        break;
    case ST_API_EMBEDDINGS:
        rc = ngx_http_starling_embeddings(r, ctx, req);
        break;
    default:
        rc = ctx->surface == NGX_HTTP_STARLING_APPLY_TEMPLATE
             ? ngx_http_starling_apply_template(r, ctx, req)
             : ngx_http_starling_generate(r, ctx, req);
        break;
    }

    if (rc == NGX_AGAIN) {
        /* the prompt is being tokenized on the pool: req belongs to that
         * job, which goes on with the request when it is done
         * (ngx_http_starling_generate.c) */
        return;
    }

    st_api_request_free(req);

    if (rc == NGX_DONE) {
        /* generation started: the request stays open until the engine
         * finishes it (ngx_http_starling_finish) */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_starling_read_body(ngx_http_request_t *r, u_char **body,
    size_t *len)
{
    u_char       *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *body = (u_char *) "";
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    size = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *body = p;
    *len = size;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }
            p += n;
            continue;
        }

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    return NGX_OK;
}
