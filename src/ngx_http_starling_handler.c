
/*
 * The content handler: routes a location's surface, reads and validates
 * the body in the event loop, turns generation requests into engine
 * requests (tokenized here), and renders every step's output as OpenAI
 * chunks, worker-API events or a final JSON body.
 */

#include "ngx_http_starling.h"


static ngx_http_starling_surface_e ngx_http_starling_route(
    ngx_http_request_t *r, ngx_http_starling_surface_e s);
static ngx_http_starling_ctx_t *ngx_http_starling_ctx_create(
    ngx_http_request_t *r, ngx_http_starling_loc_conf_t *slcf);
static u_char *ngx_http_starling_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void ngx_http_starling_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_starling_read_body(ngx_http_request_t *r,
    u_char **body, size_t *len);
static ngx_int_t ngx_http_starling_validation_error(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
static ngx_int_t ngx_http_starling_not_allowed(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const char *allow);
static ngx_int_t ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
static void ngx_http_starling_cleanup(void *data);
static void ngx_http_starling_test_reading(ngx_http_request_t *r);
static void ngx_http_starling_timer_handler(ngx_event_t *ev);
static ngx_msec_t ngx_http_starling_timer_delay(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_loc_conf_t *slcf, ngx_msec_t dflt);


static ngx_str_t  ngx_http_starling_corr_header =
    ngx_string("X-Correlation-ID");


ngx_int_t
ngx_http_starling_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_starling_ctx_t         *ctx;
    ngx_http_core_loc_conf_t        *clcf;
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

    if (surface == NGX_HTTP_STARLING_OFF) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx, NGX_HTTP_NOT_FOUND,
                   "invalid_request_error", NULL, "not_found",
                   "unknown endpoint");
    }

    switch (surface) {

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

    /* answer an over-long declared body in the API's own error shape;
     * chunked bodies are still limited by client_max_body_size (nginx's
     * own 413 page) */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->client_max_body_size
        && r->headers_in.content_length_n > clcf->client_max_body_size)
    {
        r->keepalive = 0;
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "invalid_request_error", NULL, "body_too_large",
                   "request body is larger than client_max_body_size");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_starling_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* 405 in the API's error shape, with Allow */
static ngx_int_t
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
    ctx->job_slot = -1;
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

    if (ctx->model != NULL && (ctx->queued_in || ctx->seq != NULL)) {
        if (!ctx->done) {
            ngx_http_starling_count_finish(ctx->request, ctx);
        }
        ngx_http_starling_detach(ctx);
    }

    st_jbuf_free(&ctx->text);
    st_jbuf_free(&ctx->scratch);
    free(ctx->tokens.ids);
    ctx->tokens.ids = NULL;
}


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
        kind = ST_API_CHAT;
        break;
    case NGX_HTTP_STARLING_EXECUTE:
        kind = ST_API_EXECUTE;
        break;
    case NGX_HTTP_STARLING_TOKENIZE:
        kind = ST_API_TOKENIZE;
        break;
    case NGX_HTTP_STARLING_DETOKENIZE:
        kind = ST_API_DETOKENIZE;
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
    default:
        rc = ngx_http_starling_generate(r, ctx, req);
        break;
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


static ngx_int_t
ngx_http_starling_validation_error(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_int_t  rc;
    st_jbuf    jb;

    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);

    if (ctx->surface == NGX_HTTP_STARLING_COMPLETIONS
        || ctx->surface == NGX_HTTP_STARLING_CHAT)
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


ngx_http_starling_model_t *
ngx_http_starling_pick_model(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_http_starling_main_conf_t  *smcf;

    if (req->model == NULL || req->model[0] == '\0') {
        return ctx->model;
    }

    if (ngx_strlen(req->model) == ctx->model->name.len
        && ngx_strncmp(req->model, ctx->model->name.data,
                       ctx->model->name.len) == 0)
    {
        return ctx->model;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    return ngx_http_starling_find_model(smcf, (u_char *) req->model,
                                        ngx_strlen(req->model));
}


ngx_int_t
ngx_http_starling_unavailable(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_http_starling_model_t *m)
{
    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_REJECTED);

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


static ngx_int_t
ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    char                          **stop, msg[192];
    const char *const              *extra_stop;
    size_t                          i, n_extra, n_ctx, limit;
    int32_t                        *ids;
    st_jbuf                         chat;
    st_error                        err;
    st_status                       st;
    const char                     *text;
    size_t                          text_len;
    st_logit_bias                  *bias;
    const st_tokenizer             *tok;
    ngx_http_starling_model_t      *m;
    ngx_http_starling_loc_conf_t   *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    m = ngx_http_starling_pick_model(r, ctx, req);
    if (m == NULL) {
        ngx_snprintf((u_char *) msg, sizeof(msg), "the model \"%s\" does "
                     "not exist%Z", req->model);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_NOT_FOUND, "model",
                                        "model_not_found", msg);
    }

    ctx->model = m;

    if (!m->loaded) {
        return ngx_http_starling_unavailable(r, ctx, m);
    }

    if (req->job_id != NULL) {
        ctx->job_id.len = ngx_strlen(req->job_id);
        ctx->job_id.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                           ctx->job_id.len,
                                           (u_char *) req->job_id });
        if (ctx->job_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* unique across the workers (the registry is in shared memory) */
        if (ngx_http_starling_job_register(ctx) == NGX_DECLINED) {
            ctx->job_id.len = 0;
            ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_INVALID);
            return ngx_http_starling_error_status(r, ctx, NGX_HTTP_CONFLICT,
                       "invalid_request_error", "job_id", "duplicate",
                       "a job with this job_id is running");
        }
    }

    /* bounded queue: max_seqs run, queue_size wait, the rest is told to
     * come back later */
    limit = (m->max_seqs ? m->max_seqs : 16) + slcf->queue_size;
    if (m->n_live + m->n_waiting >= limit) {
        ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_REJECTED);
        if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx,
                   NGX_HTTP_TOO_MANY_REQUESTS, "rate_limit_error", NULL,
                   "queue_full", "too many requests are queued; retry later");
    }

    tok = st_engine_tokenizer(m->engine);
    n_ctx = m->info->n_ctx;

    /* prompt -> ids, in the event loop */
    ctx->tokens.ids = NULL;
    ctx->tokens.n = 0;
    ctx->tokens.cap = 0;
    n_extra = 0;
    extra_stop = NULL;

    if (req->kind == ST_API_CHAT) {
        st_jbuf_init(&chat);
        st = st_api_chat_render((const char *) m->chat_template.data,
                                m->info->chat_template, req->messages,
                                req->n_messages, &chat, &extra_stop,
                                &n_extra, &err);
        if (st != ST_OK) {
            st_jbuf_free(&chat);
            return ngx_http_starling_reject(r, ctx,
                       st == ST_ERR_NOMEM ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                          : NGX_HTTP_BAD_REQUEST,
                       "messages", "chat_template", err.msg);
        }
        st = st_tokenize(tok, chat.data ? chat.data : "", chat.len, 1, 1,
                         &ctx->tokens, &err);
        st_jbuf_free(&chat);

    } else if (req->prompt_ids != NULL) {
        st = ST_OK;
        for (i = 0; i < req->n_prompt_ids; i++) {
            if ((uint32_t) req->prompt_ids[i] >= m->info->n_vocab) {
                return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                           "prompt", "range",
                           "prompt token id out of the vocabulary");
            }
        }
        ctx->tokens.ids = malloc(req->n_prompt_ids * sizeof(int32_t));
        if (ctx->tokens.ids == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_memcpy(ctx->tokens.ids, req->prompt_ids,
                   req->n_prompt_ids * sizeof(int32_t));
        ctx->tokens.n = req->n_prompt_ids;
        ctx->tokens.cap = req->n_prompt_ids;

    } else {
        text = req->prompt ? req->prompt : "";
        text_len = req->prompt_len;

        if (!st_api_utf8_valid(text, text_len)) {
            return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                       "prompt", "utf8", "prompt is not valid UTF-8");
        }

        st = st_tokenize(tok, text, text_len, 1, 1, &ctx->tokens, &err);
    }

    if (st != ST_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->tokens.n == 0) {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages" : "prompt",
                   "length", "the prompt is empty");
    }

    if (ctx->tokens.n + 1 > n_ctx
        || (slcf->max_prompt_tokens
            && ctx->tokens.n > slcf->max_prompt_tokens))
    {
        ngx_snprintf((u_char *) msg, sizeof(msg),
                     "the prompt is %uz tokens; this model's context is %uz "
                     "tokens (limit for prompts: %uz)%Z", ctx->tokens.n,
                     n_ctx, slcf->max_prompt_tokens
                            && slcf->max_prompt_tokens < n_ctx - 1
                            ? slcf->max_prompt_tokens : n_ctx - 1);
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   req->kind == ST_API_CHAT ? "messages" : "prompt",
                   "context_length_exceeded", msg);
    }

    if (st_sampling_validate(&req->sampling, m->info->n_vocab, &err)
        != ST_OK)
    {
        return ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                   "sampling", "range", err.msg);
    }

    /* copy what the engine reads at submit time into r->pool: the
     * request may wait for a step boundary */
    ids = ngx_palloc(r->pool, ctx->tokens.n * sizeof(int32_t));
    stop = ngx_palloc(r->pool, (req->n_stop + n_extra + 1) * sizeof(char *));
    bias = ngx_palloc(r->pool, (req->n_logit_bias + 1)
                               * sizeof(st_logit_bias));
    if (ids == NULL || stop == NULL || bias == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ids, ctx->tokens.ids, ctx->tokens.n * sizeof(int32_t));
    ctx->prompt_tokens = (uint32_t) ctx->tokens.n;
    free(ctx->tokens.ids);
    ctx->tokens.ids = NULL;

    for (i = 0; i < req->n_stop; i++) {
        stop[i] = (char *) ngx_pstrdup(r->pool, &(ngx_str_t) {
                               ngx_strlen(req->stop[i]) + 1,
                               (u_char *) req->stop[i] });
        if (stop[i] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    for (i = 0; i < n_extra; i++) {
        stop[req->n_stop + i] = (char *) extra_stop[i];
    }
    ctx->stop = stop;
    ctx->n_stop = req->n_stop + n_extra;

    if (req->n_logit_bias) {
        ngx_memcpy(bias, req->logit_bias,
                   req->n_logit_bias * sizeof(st_logit_bias));
    }

    ctx->sreq.prompt = ids;
    ctx->sreq.n_prompt = ctx->prompt_tokens;
    ctx->sreq.max_tokens = req->max_tokens ? req->max_tokens
                                           : (uint32_t) slcf->max_tokens;
    ctx->sreq.sampling = req->sampling;
    ctx->sreq.sampling.logit_bias = bias;
    ctx->sreq.sampling.n_logit_bias = req->n_logit_bias;
    ctx->sreq.stop = (const char *const *) stop;
    ctx->sreq.n_stop = ctx->n_stop;
    ctx->sreq.ignore_eos = req->ignore_eos;

    ctx->max_tokens = ctx->sreq.max_tokens;
    ctx->stream = (req->kind == ST_API_EXECUTE) ? 1 : req->stream;
    ctx->include_usage = req->include_usage;
    ctx->logprobs = req->logprobs;
    ctx->top_logprobs = (ngx_uint_t) req->top_logprobs;

    if (ctx->logprobs && !ctx->stream) {
        ctx->lps = ngx_array_create(r->pool, 16,
                                    sizeof(ngx_http_starling_lp_t));
        if (ctx->lps == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_starling_submit(ctx, &err) != NGX_OK) {
        if (err.code == ST_ERR_FULL) {
            if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            return ngx_http_starling_reject(r, ctx,
                       NGX_HTTP_TOO_MANY_REQUESTS, NULL, "queue_full",
                       err.msg);
        }
        return ngx_http_starling_reject(r, ctx,
                   err.code == ST_ERR_INVALID || err.code == ST_ERR_CONTEXT
                   ? NGX_HTTP_BAD_REQUEST : NGX_HTTP_INTERNAL_SERVER_ERROR,
                   "prompt", "engine", err.msg);
    }

    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_STARTED);

    /* the client may go away while the engine works: nginx then
     * finalizes the request and the pool cleanup frees the sequence */
    r->read_event_handler = ngx_http_starling_test_reading;

    ctx->timer.handler = ngx_http_starling_timer_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ctx->timer.cancelable = 0;
    ngx_add_timer(&ctx->timer,
                  ngx_http_starling_timer_delay(ctx, slcf,
                                                slcf->queue_timeout));

    return NGX_DONE;
}


/* nginx's check for a client that went away; such a request is logged
 * 499 even when the stream had started (its status was 200) */
static void
ngx_http_starling_test_reading(ngx_http_request_t *r)
{
    ngx_http_starling_ctx_t  *ctx;

    ngx_http_test_reading(r);

    if (r->connection->error) {
        /* finalization was posted, r is still here */
        ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);
        if (ctx != NULL && !ctx->done) {
            r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
        }
    }
}


/* The next timer delay: `dflt`, but never past the request's wall-clock
 * deadline (starling_request_timeout). */
static ngx_msec_t
ngx_http_starling_timer_delay(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_loc_conf_t *slcf, ngx_msec_t dflt)
{
    ngx_msec_t  elapsed, left;

    if (slcf->request_timeout == 0 || ctx->timed_out) {
        return dflt;
    }
    elapsed = ngx_current_msec - ctx->start_msec;
    left = elapsed >= slcf->request_timeout
           ? 1 : slcf->request_timeout - elapsed;
    return left < dflt ? left : dflt;
}


/*
 * Until the first token the timer is the queue timeout (503 + Retry-After);
 * afterwards it only keeps the stream known to nginx: a worker that
 * is shutting down (quit, reload) waits for non-cancelable timers, so
 * open streams drain instead of being cut.
 */
static void
ngx_http_starling_timer_handler(ngx_event_t *ev)
{
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_starling_ctx_t        *ctx = ev->data;
    ngx_http_starling_loc_conf_t   *slcf;

    r = ctx->request;
    c = r->connection;
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    if (slcf->request_timeout && !ctx->done && !ctx->timed_out
        && ngx_current_msec - ctx->start_msec >= slcf->request_timeout)
    {
        /* wall-clock limit: the sequence is cancelled at the next step
         * boundary and the stream ends normally (stop_reason TIMEOUT,
         * finish_reason "length") */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "starling: request timeout (%M ms)",
                      slcf->request_timeout);
        ctx->timed_out = 1;
        ngx_http_starling_cancel(ctx);
        ngx_add_timer(&ctx->timer, slcf->stream_timeout);
        return;
    }

    if (ctx->header_sent || ctx->done) {
        ngx_add_timer(&ctx->timer,
                      ngx_http_starling_timer_delay(ctx, slcf,
                                                    slcf->stream_timeout));
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "starling: no output within the queue timeout");

    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_TIMEOUT);
    ctx->done = 1;
    ngx_http_starling_detach(ctx);

    if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
        ngx_http_starling_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_starling_finish(ctx,
        ngx_http_starling_error_status(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
            "server_error", NULL, "queue_timeout",
            "the request waited too long for the engine; retry later"));
}


/*
 * Engine output for one request (event loop, between steps). After
 * ngx_http_starling_finish() the ctx may be gone: return at once.
 */
void
ngx_http_starling_on_output(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    if (ctx->done) {
        return;
    }

    if (out->n_tokens == 0 && out->finish == ST_FINISH_NONE) {
        return;
    }

    ctx->prompt_tokens = out->n_prompt_tokens ? out->n_prompt_tokens
                                              : ctx->prompt_tokens;
    ctx->cached_tokens = out->n_cached_tokens;
    ctx->completion_tokens = out->n_generated;
    ctx->queue_ms = out->queue_ms;
    ctx->ttft_ms = out->ttft_ms;
    ctx->decode_ms = out->decode_ms;
    ctx->has_figures = 1;

    if (ctx->stream) {
        if (!ctx->header_sent) {
            if (out->finish == ST_FINISH_ERROR && out->n_tokens == 0) {
                goto failed_early;
            }
            rc = ngx_http_starling_stream_header(ctx);
            if (rc == NGX_ERROR || rc > NGX_OK) {
                goto broken;
            }
        }

        if (ngx_http_starling_emit_tokens(ctx, out) == NGX_ERROR) {
            goto broken;
        }

        if (out->finish == ST_FINISH_NONE) {
            ngx_http_run_posted_requests(c);
            return;
        }

        ctx->finish = out->finish;
        ctx->done = 1;
        ngx_http_starling_detach(ctx);
        ngx_http_starling_count_finish(r, ctx);

        rc = ngx_http_starling_emit_end(ctx, out);
        ngx_http_starling_finish(ctx, rc);
        return;
    }

    /* non-streaming: collect, answer once at the end */
    if (ngx_http_starling_emit_tokens(ctx, out) == NGX_ERROR) {
        goto broken;
    }

    if (out->finish == ST_FINISH_NONE) {
        return;
    }

    ctx->finish = out->finish;
    ctx->done = 1;
    ctx->header_sent = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_count_finish(r, ctx);

    if (out->finish == ST_FINISH_ERROR) {
        goto failed_late;
    }

    ngx_http_starling_finish(ctx, ngx_http_starling_reply_full(ctx, out));
    return;

failed_early:

    ctx->finish = out->finish;
    ctx->done = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_count_finish(r, ctx);

failed_late:

    ngx_log_error(NGX_LOG_ERR, c->log, 0, "starling: generation failed: %s",
                  out->error);
    ngx_http_starling_finish(ctx,
        ngx_http_starling_error_status(r, ctx,
            NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error", NULL,
            "engine_error", out->error[0] ? out->error : "engine failure"));
    return;

broken:

    r->headers_out.status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
    ctx->done = 1;
    ngx_http_starling_detach(ctx);
    ngx_http_starling_finish(ctx, NGX_ERROR);
}


