
/*
 * Operations surface: /health, /ready, /metrics (Prometheus text from a
 * shared-memory zone, so that every worker's requests are counted),
 * /v1/models, the shared-memory counters behind /metrics, and the
 * $starling_* variables for access_log and map.
 */

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


static ngx_int_t ngx_http_starling_shm_init(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_starling_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* TTFT histogram upper bounds, milliseconds */
static const ngx_uint_t  ngx_http_starling_ttft_le_ms[
    NGX_HTTP_STARLING_TTFT_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};


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
    NGX_HTTP_STARLING_VAR_CORRELATION_ID
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


/* ---- shared-memory counters --------------------------------------- */

/* the counters, plus room in the slab pool for the job registry: a node
 * is at most ~200 bytes (a 256-byte slab chunk), so a few thousand jobs */
#define NGX_HTTP_STARLING_SHM_SIZE  (512 * 1024)


ngx_int_t
ngx_http_starling_init_shm(ngx_conf_t *cf,
    ngx_http_starling_main_conf_t *smcf)
{
    ngx_str_t  name = ngx_string("starling_metrics");

    smcf->shm_zone = ngx_shared_memory_add(cf, &name,
                                           NGX_HTTP_STARLING_SHM_SIZE,
                                           &ngx_http_starling_module);
    if (smcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    smcf->shm_zone->init = ngx_http_starling_shm_init;
    smcf->shm_zone->data = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_starling_shm_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_starling_shm_t  *shm;

    if (data != NULL) {
        /* reload: keep counting where the old cycle was */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    shm = ngx_slab_calloc(shpool, sizeof(ngx_http_starling_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    ngx_http_starling_jobs_init(shm);

    /* a full registry is logged (warn) by the registry itself */
    shpool->log_nomem = 0;

    shpool->data = shm;
    zone->data = shm;

    return NGX_OK;
}


ngx_shm_zone_t *
ngx_http_starling_shm_zone(ngx_http_request_t *r)
{
    ngx_http_starling_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    return smcf->shm_zone;
}


ngx_http_starling_shm_t *
ngx_http_starling_shm(ngx_http_request_t *r)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_http_starling_shm_zone(r);

    return zone != NULL ? zone->data : NULL;
}


void
ngx_http_starling_stat(ngx_http_request_t *r, ngx_uint_t what)
{
    ngx_http_starling_shm_t  *shm;

    shm = ngx_http_starling_shm(r);
    if (shm == NULL) {
        return;
    }

    switch (what) {

    case NGX_HTTP_STARLING_STAT_INVALID:
        (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
        (void) ngx_atomic_fetch_add(&shm->requests_invalid, 1);
        break;

    case NGX_HTTP_STARLING_STAT_REJECTED:
        (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
        (void) ngx_atomic_fetch_add(&shm->requests_rejected, 1);
        break;

    }
}


void
ngx_http_starling_count_start(ngx_http_starling_ctx_t *ctx)
{
    ngx_http_starling_shm_t  *shm;

    shm = ngx_http_starling_shm(ctx->request);
    if (shm == NULL || ctx->active) {
        return;
    }

    ctx->active = 1;
    (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
    (void) ngx_atomic_fetch_add(&shm->active, 1);
}


/* queue timeout (503): a rejection, counted after the start */
void
ngx_http_starling_count_timeout(ngx_http_starling_ctx_t *ctx)
{
    ngx_http_starling_shm_t  *shm;

    shm = ngx_http_starling_shm(ctx->request);
    if (shm == NULL || !ctx->active) {
        return;
    }

    ctx->active = 0;
    (void) ngx_atomic_fetch_add(&shm->requests_rejected, 1);
    (void) ngx_atomic_fetch_add(&shm->active, -1);
}


void
ngx_http_starling_count_finish(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx)
{
    ngx_uint_t                i;
    ngx_http_starling_shm_t  *shm;

    shm = ngx_http_starling_shm(r);
    if (shm == NULL || !ctx->active) {
        return;
    }

    ctx->active = 0;
    (void) ngx_atomic_fetch_add(&shm->active, -1);

    switch (ctx->finish) {
    case ST_FINISH_STOP:
    case ST_FINISH_LENGTH:
        (void) ngx_atomic_fetch_add(&shm->requests_ok, 1);
        break;
    case ST_FINISH_ERROR:
        (void) ngx_atomic_fetch_add(&shm->requests_failed, 1);
        break;
    default:
        /* cancelled by /cancel, or the client went away (before or
         * while its reply was written, or the worker was terminated) */
        (void) ngx_atomic_fetch_add(&shm->requests_cancelled, 1);
        break;
    }

    if (!ctx->has_figures) {
        return;
    }

    (void) ngx_atomic_fetch_add(&shm->prompt_tokens, ctx->prompt_tokens);
    (void) ngx_atomic_fetch_add(&shm->completion_tokens,
                                ctx->completion_tokens);
    (void) ngx_atomic_fetch_add(&shm->cached_tokens, ctx->cached_tokens);

    if (ctx->completion_tokens == 0) {
        return;
    }

    for (i = 0; i < NGX_HTTP_STARLING_TTFT_BUCKETS; i++) {
        if (ctx->ttft_ms <= ngx_http_starling_ttft_le_ms[i]) {
            break;
        }
    }

    /* non-cumulative here; /metrics sums them */
    (void) ngx_atomic_fetch_add(&shm->ttft_bucket[i], 1);
    (void) ngx_atomic_fetch_add(&shm->ttft_sum_us,
                                (ngx_atomic_int_t) (ctx->ttft_ms * 1000));
    (void) ngx_atomic_fetch_add(&shm->ttft_count, 1);
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
    ngx_uint_t                  i, ready;
    ngx_http_starling_model_t  *m;

    m = smcf->models.elts;
    ready = 1;

    for (i = 0; i < smcf->models.nelts; i++) {
        if (!m[i].loaded) {
            ready = 0;
        }
    }

    st_jbuf_init(&b);
    st_jbuf_addf(&b, "{\"ready\":%s,\"models\":{", ready ? "true" : "false");
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
                     "\"owned_by\":\"starling\"}", (long) ngx_time());
    }
    st_jbuf_adds(&b, "]}\n");

    return ngx_http_starling_send_jbuf(r, NGX_HTTP_OK, &b, NULL);
}


ngx_int_t
ngx_http_starling_metrics(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf)
{
    st_jbuf                     b;
    ngx_uint_t                  i, cum;
    ngx_http_starling_shm_t    *shm;
    ngx_http_starling_model_t  *m;

    shm = ngx_http_starling_shm(r);
    if (shm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st_jbuf_init(&b);

    st_jbuf_adds(&b, "# HELP starling_requests_total Requests by outcome "
                 "(all workers).\n# TYPE starling_requests_total counter\n");
    st_jbuf_addf(&b, "starling_requests_total{outcome=\"ok\"} %lu\n"
                 "starling_requests_total{outcome=\"invalid\"} %lu\n"
                 "starling_requests_total{outcome=\"rejected\"} %lu\n"
                 "starling_requests_total{outcome=\"cancelled\"} %lu\n"
                 "starling_requests_total{outcome=\"failed\"} %lu\n",
                 (unsigned long) shm->requests_ok,
                 (unsigned long) shm->requests_invalid,
                 (unsigned long) shm->requests_rejected,
                 (unsigned long) shm->requests_cancelled,
                 (unsigned long) shm->requests_failed);

    st_jbuf_addf(&b, "# HELP starling_prompt_tokens_total Prompt tokens.\n"
                 "# TYPE starling_prompt_tokens_total counter\n"
                 "starling_prompt_tokens_total %lu\n"
                 "# HELP starling_completion_tokens_total Generated "
                 "tokens.\n"
                 "# TYPE starling_completion_tokens_total counter\n"
                 "starling_completion_tokens_total %lu\n"
                 "# HELP starling_cached_tokens_total Prompt tokens served "
                 "from the prefix cache.\n"
                 "# TYPE starling_cached_tokens_total counter\n"
                 "starling_cached_tokens_total %lu\n",
                 (unsigned long) shm->prompt_tokens,
                 (unsigned long) shm->completion_tokens,
                 (unsigned long) shm->cached_tokens);

    st_jbuf_adds(&b, "# HELP starling_ttft_seconds Time to first token.\n"
                 "# TYPE starling_ttft_seconds histogram\n");
    cum = 0;
    for (i = 0; i < NGX_HTTP_STARLING_TTFT_BUCKETS; i++) {
        cum += shm->ttft_bucket[i];
        st_jbuf_addf(&b, "starling_ttft_seconds_bucket{le=\"%g\"} %lu\n",
                     ngx_http_starling_ttft_le_ms[i] / 1000.0,
                     (unsigned long) cum);
    }
    cum += shm->ttft_bucket[NGX_HTTP_STARLING_TTFT_BUCKETS];
    st_jbuf_addf(&b, "starling_ttft_seconds_bucket{le=\"+Inf\"} %lu\n"
                 "starling_ttft_seconds_sum %.6f\n"
                 "starling_ttft_seconds_count %lu\n",
                 (unsigned long) cum, shm->ttft_sum_us / 1e6,
                 (unsigned long) shm->ttft_count);

    st_jbuf_addf(&b, "# HELP starling_active_requests Requests being "
                 "generated or queued (all workers).\n"
                 "# TYPE starling_active_requests gauge\n"
                 "starling_active_requests %ld\n",
                 (long) (ngx_atomic_int_t) shm->active);

    /* this worker's engines (the scrape lands on one worker) */
    st_jbuf_adds(&b, "# HELP starling_model_loaded Model loaded in the "
                 "answering worker.\n# TYPE starling_model_loaded gauge\n");
    m = smcf->models.elts;
    for (i = 0; i < smcf->models.nelts; i++) {
        st_jbuf_adds(&b, "starling_model_loaded{model=");
        st_jbuf_add_jstr(&b, (const char *) m[i].name.data, m[i].name.len);
        st_jbuf_addf(&b, "} %d\n", m[i].loaded ? 1 : 0);
    }

    for (i = 0; i < smcf->models.nelts; i++) {
        if (m[i].loaded && !m[i].in_flight) {
            st_engine_get_stats(m[i].engine, &m[i].stats);
        }
    }

    st_jbuf_adds(&b, "# HELP starling_kv_blocks_free Free KV cache blocks "
                 "in the answering worker.\n"
                 "# TYPE starling_kv_blocks_free gauge\n");
    for (i = 0; i < smcf->models.nelts; i++) {
        if (m[i].loaded) {
            st_jbuf_adds(&b, "starling_kv_blocks_free{model=");
            st_jbuf_add_jstr(&b, (const char *) m[i].name.data,
                             m[i].name.len);
            st_jbuf_addf(&b, "} %u\n", m[i].stats.kv_blocks_free);
        }
    }

    st_jbuf_adds(&b, "# HELP starling_queued_requests Requests waiting for "
                 "a sequence slot in the answering worker.\n"
                 "# TYPE starling_queued_requests gauge\n");
    for (i = 0; i < smcf->models.nelts; i++) {
        if (m[i].loaded) {
            st_jbuf_adds(&b, "starling_queued_requests{model=");
            st_jbuf_add_jstr(&b, (const char *) m[i].name.data,
                             m[i].name.len);
            st_jbuf_addf(&b, "} %u\n", m[i].stats.seqs_queued
                                       + (unsigned) m[i].n_waiting);
        }
    }

    ngx_http_starling_session_metrics(&b, smcf);

    return ngx_http_starling_send_jbuf(r, NGX_HTTP_OK, &b,
                                       "text/plain; version=0.0.4");
}
