
/*
 * Operations surface: /health, /ready, /v1/models, and the
 * $starling_* variables for access_log and map. /metrics and the
 * shared-memory counters behind it are ngx_http_starling_metrics.c.
 */

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


static ngx_int_t ngx_http_starling_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


enum {
    NGX_HTTP_STARLING_VAR_MODEL = 0,
    NGX_HTTP_STARLING_VAR_PROMPT_TOKENS,
    NGX_HTTP_STARLING_VAR_COMPLETION_TOKENS,
    NGX_HTTP_STARLING_VAR_CACHED_TOKENS,
    NGX_HTTP_STARLING_VAR_TTFT,
    NGX_HTTP_STARLING_VAR_QUEUE_TIME,
    NGX_HTTP_STARLING_VAR_TPOT,
    NGX_HTTP_STARLING_VAR_FINISH_REASON,
    NGX_HTTP_STARLING_VAR_BACKEND,
    NGX_HTTP_STARLING_VAR_CORRELATION_ID,
    NGX_HTTP_STARLING_VAR_PREFILL_TIME,
    NGX_HTTP_STARLING_VAR_DECODE_TIME,
    NGX_HTTP_STARLING_VAR_TENANT,
    NGX_HTTP_STARLING_VAR_PRIORITY
};


static ngx_http_variable_t  ngx_http_starling_vars[] = {

    { ngx_string("starling_model"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_prompt_tokens"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_PROMPT_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_completion_tokens"), NULL,
      ngx_http_starling_variable, NGX_HTTP_STARLING_VAR_COMPLETION_TOKENS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_cached_tokens"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_CACHED_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_ttft"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_TTFT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_queue_time"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_QUEUE_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_tpot"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_TPOT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_finish_reason"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_FINISH_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_backend"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_BACKEND, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_correlation_id"), NULL,
      ngx_http_starling_variable, NGX_HTTP_STARLING_VAR_CORRELATION_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_prefill_time"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_PREFILL_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_decode_time"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_DECODE_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_tenant"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_TENANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("starling_priority"), NULL, ngx_http_starling_variable,
      NGX_HTTP_STARLING_VAR_PRIORITY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_starling_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_starling_vars; v->name.len; v++) {
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
ngx_http_starling_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    const char               *s;
    ngx_http_starling_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_starling_module);

    if (ctx == NULL || ctx->model == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 8);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    switch (data) {

    case NGX_HTTP_STARLING_VAR_MODEL:
        v->data = ctx->model->name.data;
        v->len = ctx->model->name.len;
        return NGX_OK;

    case NGX_HTTP_STARLING_VAR_BACKEND:
        s = ctx->model->info ? ctx->model->info->backend : NULL;
        if (s == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = (u_char *) s;
        v->len = ngx_strlen(s);
        return NGX_OK;

    case NGX_HTTP_STARLING_VAR_CORRELATION_ID:
        v->data = ctx->correlation_id.data;
        v->len = ctx->correlation_id.len;
        return NGX_OK;

    case NGX_HTTP_STARLING_VAR_TENANT:
        if (ctx->tenant.len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->data = ctx->tenant.data;
        v->len = ctx->tenant.len;
        return NGX_OK;

    case NGX_HTTP_STARLING_VAR_PRIORITY:
        if (!ctx->priority_set) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->len = ngx_sprintf(p, "%D", ctx->sreq.priority) - p;
        return NGX_OK;

    case NGX_HTTP_STARLING_VAR_FINISH_REASON:
        if (ctx->finish == ST_FINISH_NONE) {
            v->not_found = 1;
            return NGX_OK;
        }
        s = ctx->timed_out ? "timeout" : st_finish_reason_str(ctx->finish);
        v->data = (u_char *) s;
        v->len = ngx_strlen(s);
        return NGX_OK;

    default:
        break;
    }

    if (!ctx->has_figures) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_STARLING_VAR_PROMPT_TOKENS:
        v->len = ngx_sprintf(p, "%uD", ctx->prompt_tokens) - p;
        break;

    case NGX_HTTP_STARLING_VAR_COMPLETION_TOKENS:
        v->len = ngx_sprintf(p, "%uD", ctx->completion_tokens) - p;
        break;

    case NGX_HTTP_STARLING_VAR_CACHED_TOKENS:
        v->len = ngx_sprintf(p, "%uD", ctx->cached_tokens) - p;
        break;

    /* times in seconds with millisecond resolution, like $request_time */
    case NGX_HTTP_STARLING_VAR_TTFT:
        v->len = ngx_sprintf(p, "%.3f", ctx->ttft_ms / 1000.0) - p;
        break;

    case NGX_HTTP_STARLING_VAR_QUEUE_TIME:
        v->len = ngx_sprintf(p, "%.3f", ctx->queue_ms / 1000.0) - p;
        break;

    /* first engine step -> first token (prompt processing) */
    case NGX_HTTP_STARLING_VAR_PREFILL_TIME:
        if (ctx->completion_tokens == 0) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->len = ngx_sprintf(p, "%.3f", ctx->ttft_ms > ctx->queue_ms
                                        ? (ctx->ttft_ms - ctx->queue_ms)
                                          / 1000.0
                                        : 0.0) - p;
        break;

    /* first token -> last token */
    case NGX_HTTP_STARLING_VAR_DECODE_TIME:
        if (ctx->completion_tokens == 0) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->len = ngx_sprintf(p, "%.3f", ctx->decode_ms / 1000.0) - p;
        break;

    case NGX_HTTP_STARLING_VAR_TPOT:
        if (ctx->completion_tokens < 2) {
            v->not_found = 1;
            return NGX_OK;
        }
        v->len = ngx_sprintf(p, "%.4f", ctx->decode_ms / 1000.0
                                        / (ctx->completion_tokens - 1)) - p;
        break;

    default:
        v->not_found = 1;
    }

    return NGX_OK;
}


/* ---- endpoints ------------------------------------------------------ */

static ngx_int_t
ngx_http_starling_send_jbuf(ngx_http_request_t *r, ngx_uint_t status,
    st_jbuf *b, const char *content_type)
{
    ngx_int_t  rc;

    if (b->failed) {
        st_jbuf_free(b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_body(r, status,
                                     content_type ? content_type
                                                  : "application/json",
                                     b->data, b->len);
    st_jbuf_free(b);
    return rc;
}


ngx_int_t
ngx_http_starling_health(ngx_http_request_t *r, ngx_http_starling_model_t *m)
{
    st_jbuf               b;
    const char           *status;
    const st_model_info  *info;

    if (m->loaded && !m->in_flight) {
        st_engine_get_stats(m->engine, &m->stats);
    }

    info = m->loaded ? m->info : NULL;
    status = m->loaded ? "ok" : m->load_failed ? "error" : "loading";

    st_jbuf_init(&b);
    st_jbuf_addf(&b, "{\"status\":\"%s\",\"model\":", status);
    st_jbuf_add_jstr(&b, (const char *) m->name.data, m->name.len);
    st_jbuf_addf(&b, ",\"model_loaded\":%s", m->loaded ? "true" : "false");
    /* which worker answered: every worker keeps its own engine */
    st_jbuf_addf(&b, ",\"worker_pid\":%ld", (long) ngx_pid);

    if (info != NULL) {
        st_jbuf_addf(&b, ",\"backend\":\"%s\",\"memory_type\":\"%s\","
                     "\"vram_bytes\":%llu",
                     info->backend,
                     ngx_strcmp(info->backend, "cuda") == 0 ? "cuda" : "cpu",
                     ngx_strcmp(info->backend, "cuda") == 0
                     ? (unsigned long long) (info->weight_bytes
                                             + info->kv_bytes)
                     : 0ULL);
        st_jbuf_adds(&b, ",\"arch\":");
        st_jbuf_add_jstr(&b, info->arch, ngx_strlen(info->arch));
        st_jbuf_adds(&b, ",\"quant_kind\":");
        st_jbuf_add_jstr(&b, info->quant_kind, ngx_strlen(info->quant_kind));
        st_jbuf_addf(&b, ",\"tokenizer_kind\":\"%s\",\"vocab_size\":%u,"
                     "\"context_length\":%u,\"n_params\":%llu,"
                     "\"weight_bytes\":%llu,\"kv_bytes\":%llu,"
                     "\"kv_block_tokens\":%u,\"kv_blocks_total\":%u,"
                     "\"kv_blocks_free\":%u,\"active_sequences\":%u,"
                     "\"queued_sequences\":%u,\"waiting_requests\":%u,"
                     "\"live_requests\":%u,\"steps\":%llu}",
                     info->tokenizer_kind, info->n_vocab, info->n_ctx,
                     (unsigned long long) info->n_params,
                     (unsigned long long) info->weight_bytes,
                     (unsigned long long) info->kv_bytes,
                     info->kv_block_tokens, m->stats.kv_blocks_total,
                     m->stats.kv_blocks_free, m->stats.seqs_active,
                     m->stats.seqs_queued, (unsigned) m->n_waiting,
                     (unsigned) m->n_live,
                     (unsigned long long) m->stats.steps);
    } else {
        st_jbuf_adds(&b, ",\"memory_type\":\"cpu\",\"vram_bytes\":0}");
    }

    st_jbuf_adds(&b, "\n");

    return ngx_http_starling_send_jbuf(r, m->load_failed
                                          ? NGX_HTTP_SERVICE_UNAVAILABLE
                                          : NGX_HTTP_OK, &b, NULL);
}


ngx_int_t
ngx_http_starling_ready(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf)
{
    st_jbuf                     b;
    ngx_uint_t                  i, ready, w_ready, w_total;
    ngx_http_starling_model_t  *m;

    m = smcf->models.elts;
    ready = 1;

    for (i = 0; i < smcf->models.nelts; i++) {
        if (!m[i].loaded) {
            ready = 0;
        }
    }

    /* a load balancer's probe lands on any worker: ready means every
     * worker can serve, not only this one */
    ngx_http_starling_workers_ready(smcf, &w_ready, &w_total);
    if (w_total == 0) {
        w_total = 1;
        w_ready = ready;
    }
    if (w_ready < w_total) {
        ready = 0;
    }

    st_jbuf_init(&b);
    st_jbuf_addf(&b, "{\"ready\":%s,\"workers\":{\"ready\":%lu,"
                 "\"total\":%lu},\"models\":{", ready ? "true" : "false",
                 (unsigned long) w_ready, (unsigned long) w_total);
    for (i = 0; i < smcf->models.nelts; i++) {
        if (i) {
            st_jbuf_adds(&b, ",");
        }
        st_jbuf_add_jstr(&b, (const char *) m[i].name.data, m[i].name.len);
        st_jbuf_addf(&b, ":\"%s\"", m[i].loaded ? "ready"
                                    : m[i].load_failed ? "failed"
                                    : "loading");
    }
    st_jbuf_adds(&b, "}}\n");

    if (!ready && ngx_http_starling_set_retry_after(r, 1) != NGX_OK) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_starling_send_jbuf(r, ready ? NGX_HTTP_OK
                                                : NGX_HTTP_SERVICE_UNAVAILABLE,
                                       &b, NULL);
}


ngx_int_t
ngx_http_starling_models(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf)
{
    st_jbuf                     b;
    ngx_uint_t                  i;
    ngx_http_starling_model_t  *m;

    m = smcf->models.elts;

    st_jbuf_init(&b);
    st_jbuf_adds(&b, "{\"object\":\"list\",\"data\":[");
    for (i = 0; i < smcf->models.nelts; i++) {
        st_jbuf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
        st_jbuf_add_jstr(&b, (const char *) m[i].name.data, m[i].name.len);
        st_jbuf_addf(&b, ",\"object\":\"model\",\"created\":%ld,"
                     "\"owned_by\":\"starling\",\"loaded\":%s,"
                     "\"state\":\"%s\"", (long) ngx_time(),
                     m[i].loaded ? "true" : "false",
                     m[i].loaded ? "ready"
                     : m[i].load_failed ? "failed" : "loading");

        /* what the answering worker loaded */
        if (m[i].loaded && m[i].info != NULL) {
            st_jbuf_adds(&b, ",\"arch\":");
            st_jbuf_add_jstr(&b, m[i].info->arch,
                             ngx_strlen(m[i].info->arch));
            st_jbuf_adds(&b, ",\"type\":");
            st_jbuf_add_jstr(&b, m[i].info->quant_kind,
                             ngx_strlen(m[i].info->quant_kind));
            st_jbuf_addf(&b, ",\"backend\":\"%s\",\"context_length\":%u,"
                         "\"context_length_train\":%u,\"vocab_size\":%u,"
                         "\"n_params\":%llu,\"weight_bytes\":%llu",
                         m[i].info->backend, m[i].info->n_ctx,
                         m[i].info->n_ctx_train, m[i].info->n_vocab,
                         (unsigned long long) m[i].info->n_params,
                         (unsigned long long) m[i].info->weight_bytes);
        }

        st_jbuf_adds(&b, "}");
    }
    st_jbuf_adds(&b, "]}\n");

    return ngx_http_starling_send_jbuf(r, NGX_HTTP_OK, &b, NULL);
}
