
/*
 * Sessions in the nginx module: the session id of a generation request
 * (the body's "session_id", else the X-Session-ID header), POST
 * /v1/session/close, GET /v1/sessions, the starling_session_store
 * directive, the $starling_session_id and $starling_session variables
 * and the session lines of /metrics.
 *
 * The engine is touched between steps only: a close or a listing that
 * arrives while a step is in flight waits for its end
 * (ngx_http_starling_session_ops(), called by the bridge).
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


#define NGX_HTTP_STARLING_SESSION_QUEUED  3    /* ctx->queued_in */


static ngx_str_t  ngx_http_starling_session_header =
    ngx_string("X-Session-ID");


static ngx_int_t ngx_http_starling_session_run(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx);
static ngx_int_t ngx_http_starling_session_var(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_starling_session_vars[] = {

    { ngx_string("starling_session_id"), NULL,
      ngx_http_starling_session_var, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_session"), NULL,
      ngx_http_starling_session_var, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_starling_session_id(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    ngx_uint_t        n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_str_t         id;

    ngx_str_null(&id);

    if (req->session_id != NULL) {
        id.data = (u_char *) req->session_id;
        id.len = ngx_strlen(req->session_id);

    } else {
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

            if (h[n].key.len == ngx_http_starling_session_header.len
                && ngx_strncasecmp(h[n].key.data,
                                   ngx_http_starling_session_header.data,
                                   h[n].key.len) == 0)
            {
                id = h[n].value;
                break;
            }
        }

        if (id.data == NULL) {
            return NGX_OK;
        }

        if (!st_session_id_valid((const char *) id.data, id.len)) {
            return NGX_DECLINED;
        }
    }

    ctx->session_id.data = ngx_pnalloc(r->pool, id.len + 1);
    if (ctx->session_id.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->session_id.data, id.data, id.len);
    ctx->session_id.data[id.len] = '\0';
    ctx->session_id.len = id.len;

    ctx->sreq.session_id = (const char *) ctx->session_id.data;
    ctx->sreq.session_id_len = id.len;

    return NGX_OK;
}


/* POST /v1/session/close and GET /v1/sessions: now when the engine is
 * idle, else at the end of the step in flight. */
ngx_int_t
ngx_http_starling_session_request(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req)
{
    size_t                      len;
    ngx_http_starling_model_t  *m = ctx->model;

    if (req != NULL) {
        len = ngx_strlen(req->session_id);
        ctx->session_id.data = ngx_pnalloc(r->pool, len + 1);
        if (ctx->session_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_memcpy(ctx->session_id.data, req->session_id, len + 1);
        ctx->session_id.len = len;
        ctx->session_close = 1;
    }

    if (m == NULL || !m->loaded) {
        if (ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_http_starling_error_status(r, ctx,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "server_error", NULL,
                   "model_not_loaded", "the model is not loaded yet");
    }

    if (!m->in_flight) {
        return ngx_http_starling_session_run(r, ctx);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling: session request waits for the step");

    ngx_queue_insert_tail(&m->session_ops, &ctx->queue);
    ctx->queued_in = NGX_HTTP_STARLING_SESSION_QUEUED;

    if (req == NULL) {
        /* GET: no body reading holds the request open */
        r->main->count++;
    }

    return NGX_DONE;
}


void
ngx_http_starling_session_ops(ngx_http_starling_model_t *m)
{
    ngx_int_t                 rc;
    ngx_queue_t              *q;
    ngx_http_starling_ctx_t  *ctx;

    while (!ngx_queue_empty(&m->session_ops)) {
        q = ngx_queue_head(&m->session_ops);
        ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);
        ngx_queue_remove(q);
        ctx->queued_in = 0;

        rc = ngx_http_starling_session_run(ctx->request, ctx);
        ngx_http_finalize_request(ctx->request, rc);
    }
}


void
ngx_http_starling_session_unqueue(ngx_http_starling_ctx_t *ctx)
{
    if (ctx->queued_in == NGX_HTTP_STARLING_SESSION_QUEUED) {
        ngx_queue_remove(&ctx->queue);
        ctx->queued_in = 0;
    }
}


static const char *
ngx_http_starling_session_state(st_session_state s)
{
    switch (s) {
    case ST_SESSION_RESIDENT:
        return "resident";
    case ST_SESSION_SPILLED:
        return "spilled";
    default:
        return "empty";
    }
}


static ngx_int_t
ngx_http_starling_session_run(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx)
{
    size_t                      i, n, cap;
    st_jbuf                     b;
    ngx_int_t                   rc;
    st_session_info            *info;
    ngx_http_starling_model_t  *m = ctx->model;

    st_jbuf_init(&b);

    if (ctx->session_close) {
        n = (size_t) st_engine_session_close(m->engine,
                                             (const char *) ctx->session_id.data,
                                             ctx->session_id.len);
        st_engine_get_stats(m->engine, &m->stats);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "starling: session \"%V\" close: %s",
                       &ctx->session_id, n ? "closed" : "not found");

        st_jbuf_adds(&b, "{\"session_id\":");
        st_jbuf_add_jstr(&b, (const char *) ctx->session_id.data,
                         ctx->session_id.len);
        st_jbuf_addf(&b, ",\"status\":\"%s\"}\n", n ? "closed" : "not_found");

    } else {
        n = st_engine_sessions_list(m->engine, NULL, 0);
        cap = n;
        info = ngx_alloc((cap ? cap : 1) * sizeof(st_session_info),
                         r->connection->log);
        if (info == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        n = st_engine_sessions_list(m->engine, info, cap);

        st_jbuf_adds(&b, "{\"object\":\"list\",\"data\":[");
        for (i = 0; i < n && i < cap; i++) {
            st_jbuf_adds(&b, i ? ",{\"session_id\":" : "{\"session_id\":");
            st_jbuf_add_jstr(&b, info[i].id, ngx_strlen(info[i].id));
            st_jbuf_addf(&b, ",\"state\":\"%s\",\"busy\":%s,\"tokens\":%u,"
                         "\"bytes\":%llu,\"idle_ms\":%.0f}",
                         ngx_http_starling_session_state(info[i].state),
                         info[i].busy ? "true" : "false", info[i].n_tokens,
                         (unsigned long long) info[i].bytes, info[i].idle_ms);
        }
        st_jbuf_adds(&b, "]}\n");
        ngx_free(info);
    }

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}


/* starling_session_store PATH [size=SIZE] [max_idle=TIME]; */
char *
ngx_http_starling_session_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_starling_main_conf_t *smcf = conf;

    ngx_str_t        *value, s;
    ngx_uint_t        i;
    ngx_file_info_t   fi;

    if (smcf->session_store.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(value[1].data, &fi) == NGX_FILE_ERROR
        || !ngx_is_dir(&fi))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "starling_session_store \"%V\" is not a "
                           "directory", &value[1]);
        return NGX_CONF_ERROR;
    }

    smcf->session_store = value[1];
    smcf->session_store_size = 256 * 1024 * 1024;
    smcf->session_max_idle = 3600 * 1000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            smcf->session_store_size = ngx_parse_offset(&s);
            if (smcf->session_store_size <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_idle=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;
            smcf->session_max_idle = ngx_parse_time(&s, 0);
            if (smcf->session_max_idle == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_idle \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* after a model loaded in a worker: give its engine the store */
void
ngx_http_starling_session_store_init(ngx_http_starling_model_t *m)
{
    st_error                        err;
    ngx_http_starling_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_starling_module);

    if (smcf == NULL || smcf->session_store.len == 0) {
        return;
    }

    if (st_engine_session_store(m->engine,
                                (const char *) smcf->session_store.data,
                                (uint64_t) smcf->session_store_size,
                                (double) smcf->session_max_idle, &err)
        != ST_OK)
    {
        ngx_log_error(NGX_LOG_ERR, m->log, 0,
                      "starling: model \"%V\": %s; evicted sessions will "
                      "be recomputed", &m->name, err.msg);
    }
}


ngx_int_t
ngx_http_starling_session_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_starling_session_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_starling_session_var(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char               *s;
    ngx_http_starling_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);

    if (ctx == NULL || ctx->session_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (data == 0) {
        v->data = ctx->session_id.data;
        v->len = ctx->session_id.len;

    } else {
        if (ctx->session_result == ST_SESSION_NONE) {
            v->not_found = 1;
            return NGX_OK;
        }
        s = st_session_result_str(ctx->session_result);
        v->data = (u_char *) s;
        v->len = ngx_strlen(s);
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* this worker's session figures, appended to /metrics */
void
ngx_http_starling_session_metrics(st_jbuf *b,
    ngx_http_starling_main_conf_t *smcf)
{
    ngx_uint_t                  i, k;
    ngx_http_starling_model_t  *m;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
    } fam[] = {
        { "starling_sessions_resident", "gauge",
          "Idle sessions whose KV is in memory (answering worker)." },
        { "starling_sessions_spilled", "gauge",
          "Sessions spilled to the session store (answering worker)." },
        { "starling_session_blocks", "gauge",
          "KV blocks pinned by idle sessions (answering worker)." },
        { "starling_session_turns_total", "counter",
          "Session turns by result (answering worker)." },
        { "starling_session_spills_total", "counter",
          "Sessions spilled to disk (answering worker)." },
        { "starling_session_spill_bytes_total", "counter",
          "Bytes written to the session store (answering worker)." },
        { "starling_session_restore_bytes_total", "counter",
          "Bytes restored from the session store (answering worker)." },
        { "starling_session_restore_seconds_total", "counter",
          "Time spent restoring sessions (answering worker)." },
        { "starling_session_evictions_total", "counter",
          "Idle sessions evicted for KV memory (answering worker)." },
        { "starling_session_store_bytes", "gauge",
          "Spill files on disk (answering worker)." },
    };

    m = smcf->models.elts;

    for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
        st_jbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[k].name,
                     fam[k].help, fam[k].name, fam[k].type);

        for (i = 0; i < smcf->models.nelts; i++) {
            st_engine_stats *st = &m[i].stats;

            if (!m[i].loaded) {
                continue;
            }

            if (k == 3) {
                st_jbuf_adds(b, "starling_session_turns_total{model=");
                st_jbuf_add_jstr(b, (const char *) m[i].name.data,
                                 m[i].name.len);
                st_jbuf_addf(b, ",result=\"hit\"} %llu\n",
                             (unsigned long long)
                             (st->session_hits - st->session_restores));
                st_jbuf_adds(b, "starling_session_turns_total{model=");
                st_jbuf_add_jstr(b, (const char *) m[i].name.data,
                                 m[i].name.len);
                st_jbuf_addf(b, ",result=\"restored\"} %llu\n",
                             (unsigned long long) st->session_restores);
                st_jbuf_adds(b, "starling_session_turns_total{model=");
                st_jbuf_add_jstr(b, (const char *) m[i].name.data,
                                 m[i].name.len);
                st_jbuf_addf(b, ",result=\"miss\"} %llu\n",
                             (unsigned long long) st->session_misses);
                continue;
            }

            st_jbuf_addf(b, "%s{model=", fam[k].name);
            st_jbuf_add_jstr(b, (const char *) m[i].name.data, m[i].name.len);

            switch (k) {
            case 0:
                st_jbuf_addf(b, "} %u\n", st->sessions_resident);
                break;
            case 1:
                st_jbuf_addf(b, "} %u\n", st->sessions_spilled);
                break;
            case 2:
                st_jbuf_addf(b, "} %u\n", st->session_blocks);
                break;
            case 4:
                st_jbuf_addf(b, "} %llu\n",
                             (unsigned long long) st->session_spills);
                break;
            case 5:
                st_jbuf_addf(b, "} %llu\n",
                             (unsigned long long) st->session_spill_bytes);
                break;
            case 6:
                st_jbuf_addf(b, "} %llu\n",
                             (unsigned long long) st->session_restore_bytes);
                break;
            case 7:
                st_jbuf_addf(b, "} %.6f\n", st->session_restore_ms / 1000.0);
                break;
            case 8:
                st_jbuf_addf(b, "} %llu\n",
                             (unsigned long long) st->session_evictions);
                break;
            default:
                st_jbuf_addf(b, "} %llu\n",
                             (unsigned long long) st->session_store_bytes);
                break;
            }
        }
    }
}
