/*
 * Starling nginx module: the shared-memory counters and /metrics.
 *
 * Every worker adds its requests' figures to counters and histograms in
 * one shared zone (atomics only), so a scrape answered by any worker
 * gives the totals of all of them, across reloads. Engine gauges
 * (running, waiting, KV cache) are per worker: each worker publishes its
 * own into a slot of the zone and /metrics sums the slots of the workers
 * that are alive. The text is Prometheus exposition format 0.0.4; names
 * and units follow Prometheus conventions (base units: seconds; counters
 * end in _total), checked by promtool in t/100-metrics.t.
 */

#include <signal.h>
#include <errno.h>

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_tokenlimit.h"


static ngx_int_t ngx_http_starling_shm_init(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_starling_observe(ngx_http_starling_shm_t *shm,
    ngx_uint_t h, double ms);
static void ngx_http_starling_add_label(st_jbuf *b, const u_char *s,
    size_t len);
static void ngx_http_starling_render_hist(st_jbuf *b,
    ngx_http_starling_shm_t *shm, ngx_uint_t h);
static void ngx_http_starling_render_models(st_jbuf *b,
    ngx_http_starling_shm_t *shm);
static void ngx_http_starling_count_tenant(ngx_http_request_t *r,
    ngx_http_starling_shm_t *shm, ngx_http_starling_ctx_t *ctx);
static void ngx_http_starling_render_tenants(st_jbuf *b,
    ngx_http_starling_shm_t *shm);


/* histogram bucket upper bounds, milliseconds (1 ms ... 60 s) */
static const ngx_uint_t  ngx_http_starling_le_ms[
    NGX_HTTP_STARLING_HIST_BUCKETS] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
    60000, 120000
};


typedef struct {
    const char  *name;
    const char  *help;
} ngx_http_starling_metric_name_t;


static const ngx_http_starling_metric_name_t
    ngx_http_starling_hists[NGX_HTTP_STARLING_NHIST] = {
    { "starling_ttft_seconds",
      "Time to first token: submit to the first generated token." },
    { "starling_inter_token_latency_seconds",
      "Mean time between generated tokens, one observation per request "
      "with two or more tokens." },
    { "starling_request_latency_seconds",
      "Generation request latency: start to end, however it ends." },
    { "starling_queue_time_seconds",
      "Time a request waited: submit to its first engine step." },
    { "starling_prefill_time_seconds",
      "Prompt processing time: first engine step to the first token." },
    { "starling_decode_time_seconds",
      "Decode time: first token to the last token." }
};


static const char  *ngx_http_starling_rej_names[NGX_HTTP_STARLING_NREJ] = {
    "queue_full", "queue_timeout", "token_budget", "invalid", "not_ready"
};


/* this worker's gauge slot in the zone (per process) */
static ngx_http_starling_worker_slot_t  *ngx_http_starling_slot;


/* ---- shared-memory counters --------------------------------------- */

/* the counters and worker slots (~130 KB), plus room in the slab pool
 * for the job registry: a node is at most ~200 bytes (a 256-byte slab
 * chunk), so a few thousand jobs */
#define NGX_HTTP_STARLING_SHM_SIZE  (1024 * 1024)


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
    /* until the init replaces it with the zone's struct: the init gives
     * this cycle its generation number */
    smcf->shm_zone->data = smcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_starling_shm_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_starling_shm_t        *shm;
    ngx_http_starling_main_conf_t  *smcf;

    smcf = zone->data;

    if (data != NULL) {
        /* reload: keep counting where the old cycle was */
        zone->data = data;
        shm = data;
        smcf->generation = ngx_atomic_fetch_add(&shm->generation, 1) + 1;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        shm = shpool->data;
        smcf->generation = ngx_atomic_fetch_add(&shm->generation, 1) + 1;
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
    shm->generation = 1;
    smcf->generation = 1;

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
        (void) ngx_atomic_fetch_add(
                   &shm->rejected[NGX_HTTP_STARLING_REJ_INVALID], 1);
        break;

    case NGX_HTTP_STARLING_STAT_REJECTED:
        (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
        (void) ngx_atomic_fetch_add(&shm->requests_rejected, 1);
        (void) ngx_atomic_fetch_add(
                   &shm->rejected[NGX_HTTP_STARLING_REJ_QUEUE_FULL], 1);
        break;

    case NGX_HTTP_STARLING_STAT_NOT_READY:
        (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
        (void) ngx_atomic_fetch_add(&shm->requests_rejected, 1);
        (void) ngx_atomic_fetch_add(
                   &shm->rejected[NGX_HTTP_STARLING_REJ_NOT_READY], 1);
        break;

    case NGX_HTTP_STARLING_STAT_BUDGET:
        (void) ngx_atomic_fetch_add(&shm->requests_total, 1);
        (void) ngx_atomic_fetch_add(&shm->requests_rejected, 1);
        (void) ngx_atomic_fetch_add(
                   &shm->rejected[NGX_HTTP_STARLING_REJ_TOKEN_BUDGET], 1);
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

    ngx_http_starling_metrics_publish(
        ngx_http_get_module_main_conf(ctx->request, ngx_http_starling_module),
        ctx->model);
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
    (void) ngx_atomic_fetch_add(
               &shm->rejected[NGX_HTTP_STARLING_REJ_QUEUE_TIMEOUT], 1);
    (void) ngx_atomic_fetch_add(&shm->active, -1);
}


void
ngx_http_starling_count_finish(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx)
{
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

    ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_E2E,
                              (double) (ngx_current_msec - ctx->start_msec));

    ngx_http_starling_metrics_publish(
        ngx_http_get_module_main_conf(r, ngx_http_starling_module),
        ctx->model);

    if (!ctx->has_figures) {
        return;
    }

    /* the request's single end: its completion tokens go to its token
     * budget (beyond the budget, as a debt) */
    ngx_http_starling_token_limit_charge(ctx, ctx->completion_tokens);

    (void) ngx_atomic_fetch_add(&shm->prompt_tokens, ctx->prompt_tokens);
    (void) ngx_atomic_fetch_add(&shm->completion_tokens,
                                ctx->completion_tokens);
    (void) ngx_atomic_fetch_add(&shm->cached_tokens, ctx->cached_tokens);
    /* every prompt is looked up in the prefix cache */
    (void) ngx_atomic_fetch_add(&shm->prefix_queries_tokens,
                                ctx->prompt_tokens);

    ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_QUEUE,
                              ctx->queue_ms);

    ngx_http_starling_count_tenant(r, shm, ctx);

    if (ctx->completion_tokens == 0) {
        return;
    }

    ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_TTFT,
                              ctx->ttft_ms);
    ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_PREFILL,
                              ctx->ttft_ms > ctx->queue_ms
                              ? ctx->ttft_ms - ctx->queue_ms : 0);
    ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_DECODE,
                              ctx->decode_ms);

    if (ctx->completion_tokens >= 2) {
        ngx_http_starling_observe(shm, NGX_HTTP_STARLING_HIST_ITL,
                                  ctx->decode_ms
                                  / (ctx->completion_tokens - 1));
    }
}


static void
ngx_http_starling_observe(ngx_http_starling_shm_t *shm, ngx_uint_t h,
    double ms)
{
    ngx_uint_t                 i;
    ngx_http_starling_hist_t  *hist;

    if (ms < 0) {
        ms = 0;
    }

    hist = &shm->hist[h];

    for (i = 0; i < NGX_HTTP_STARLING_HIST_BUCKETS; i++) {
        if (ms <= (double) ngx_http_starling_le_ms[i]) {
            break;
        }
    }

    /* non-cumulative here; /metrics sums them */
    (void) ngx_atomic_fetch_add(&hist->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&hist->sum_us,
                                (ngx_atomic_int_t) (ms * 1000));
    (void) ngx_atomic_fetch_add(&hist->count, 1);
}


/* ---- per-tenant counters -------------------------------------------- */

static void
ngx_http_starling_count_tenant(ngx_http_request_t *r,
    ngx_http_starling_shm_t *shm, ngx_http_starling_ctx_t *ctx)
{
    size_t                             len;
    ngx_uint_t                         i;
    ngx_slab_pool_t                   *shpool;
    ngx_http_starling_tenant_stats_t  *ts, *slot;

    len = ctx->tenant.len;
    if (len == 0) {
        return;
    }

    slot = NULL;
    ts = shm->tenants;

    /* names are written once, under the mutex, before name_len */
    for (i = 0; i < NGX_HTTP_STARLING_TENANT_SLOTS - 1; i++) {
        if (ts[i].name_len == 0) {
            break;
        }
        if (ts[i].name_len == len && len <= NGX_HTTP_STARLING_TENANT_NAME
            && ngx_memcmp(ts[i].name, ctx->tenant.data, len) == 0)
        {
            slot = &ts[i];
            break;
        }
    }

    if (slot == NULL && len <= NGX_HTTP_STARLING_TENANT_NAME
        && i < NGX_HTTP_STARLING_TENANT_SLOTS - 1)
    {
        shpool = (ngx_slab_pool_t *) ngx_http_starling_shm_zone(r)->shm.addr;
        ngx_shmtx_lock(&shpool->mutex);

        for (i = 0; i < NGX_HTTP_STARLING_TENANT_SLOTS - 1; i++) {
            if (ts[i].name_len == 0) {
                ngx_memcpy(ts[i].name, ctx->tenant.data, len);
                ngx_memory_barrier();
                ts[i].name_len = len;
                slot = &ts[i];
                break;
            }
            if (ts[i].name_len == len
                && ngx_memcmp(ts[i].name, ctx->tenant.data, len) == 0)
            {
                slot = &ts[i];
                break;
            }
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    if (slot == NULL) {
        slot = &ts[NGX_HTTP_STARLING_TENANT_SLOTS - 1];
    }

    (void) ngx_atomic_fetch_add(&slot->requests, 1);
    (void) ngx_atomic_fetch_add(&slot->prompt_tokens, ctx->prompt_tokens);
    (void) ngx_atomic_fetch_add(&slot->completion_tokens,
                                ctx->completion_tokens);
}


static void
ngx_http_starling_render_tenants(st_jbuf *b, ngx_http_starling_shm_t *shm)
{
    size_t                             len;
    ngx_uint_t                         i, k;
    ngx_atomic_uint_t                  v;
    ngx_http_starling_tenant_stats_t  *ts;
    static const char                 *names[3][2] = {
        { "starling_tenant_requests_total",
          "Generation requests that ended, per tenant." },
        { "starling_tenant_prompt_tokens_total",
          "Prompt tokens per tenant." },
        { "starling_tenant_completion_tokens_total",
          "Generated tokens per tenant." }
    };

    ts = shm->tenants;

    for (k = 0; k < 3; k++) {
        st_jbuf_addf(b, "# HELP %s %s The first %d tenants have their "
                     "own label, the others are \"__other__\".\n"
                     "# TYPE %s counter\n", names[k][0], names[k][1],
                     NGX_HTTP_STARLING_TENANT_SLOTS - 1, names[k][0]);

        for (i = 0; i < NGX_HTTP_STARLING_TENANT_SLOTS; i++) {
            len = ts[i].name_len;
            if (i < NGX_HTTP_STARLING_TENANT_SLOTS - 1
                && (len == 0 || len > NGX_HTTP_STARLING_TENANT_NAME))
            {
                continue;
            }
            v = k == 0 ? ts[i].requests
                : k == 1 ? ts[i].prompt_tokens : ts[i].completion_tokens;
            if (i == NGX_HTTP_STARLING_TENANT_SLOTS - 1) {
                if (ts[i].requests == 0) {
                    continue;
                }
                st_jbuf_addf(b, "%s{tenant=\"__other__\"} %lu\n",
                             names[k][0], (unsigned long) v);
                continue;
            }
            st_jbuf_addf(b, "%s{tenant=", names[k][0]);
            ngx_http_starling_add_label(b, ts[i].name, len);
            st_jbuf_addf(b, "} %lu\n", (unsigned long) v);
        }
    }
}


/* ---- per-worker gauges ---------------------------------------------- */

static ngx_uint_t
ngx_http_starling_pid_alive(ngx_pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH);
}


void
ngx_http_starling_metrics_attach(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf)
{
    size_t                            len;
    ngx_uint_t                        i;
    ngx_slab_pool_t                  *shpool;
    ngx_http_starling_shm_t          *shm;
    ngx_http_starling_model_t        *m;
    ngx_http_starling_worker_slot_t  *slot;

    if (smcf->shm_zone == NULL || smcf->shm_zone->data == NULL) {
        return;
    }

    shm = smcf->shm_zone->data;
    shpool = (ngx_slab_pool_t *) smcf->shm_zone->shm.addr;

    slot = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_STARLING_WORKER_SLOTS; i++) {
        /* free, or left by a worker that crashed */
        if (!ngx_http_starling_pid_alive((ngx_pid_t) shm->workers[i].pid)) {
            slot = &shm->workers[i];
            slot->pid = 0;
            break;
        }
    }

    if (slot != NULL) {
        ngx_memzero(slot->model, sizeof(slot->model));

        m = smcf->models.elts;
        for (i = 0; i < smcf->models.nelts
                    && i < NGX_HTTP_STARLING_MODEL_SLOTS; i++)
        {
            len = ngx_min(m[i].name.len, NGX_HTTP_STARLING_MODEL_NAME);
            ngx_memcpy(slot->model[i].name, m[i].name.data, len);
            slot->model[i].name_len = len;
        }

        slot->generation = smcf->generation;
        ngx_memory_barrier();
        slot->pid = (ngx_atomic_uint_t) ngx_pid;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "starling: all %d metrics worker slots are taken: "
                      "this worker's engine gauges are not in /metrics",
                      NGX_HTTP_STARLING_WORKER_SLOTS);
        return;
    }

    if (smcf->models.nelts > NGX_HTTP_STARLING_MODEL_SLOTS) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "starling: only the first %d models have engine "
                      "gauges in /metrics", NGX_HTTP_STARLING_MODEL_SLOTS);
    }

    ngx_http_starling_slot = slot;
}


/* event loop: this worker's view of model m, as of now */
void
ngx_http_starling_metrics_publish(ngx_http_starling_main_conf_t *smcf,
    ngx_http_starling_model_t *m)
{
    ngx_uint_t                         i;
    ngx_http_starling_shm_t           *shm;
    ngx_http_starling_model_gauges_t  *g;

    if (ngx_http_starling_slot == NULL || smcf == NULL || m == NULL) {
        return;
    }

    i = m - (ngx_http_starling_model_t *) smcf->models.elts;
    if (i >= smcf->models.nelts || i >= NGX_HTTP_STARLING_MODEL_SLOTS) {
        return;
    }

    shm = smcf->shm_zone->data;
    g = &ngx_http_starling_slot->model[i];

    if (m->loaded && !m->in_flight) {
        st_engine_get_stats(m->engine, &m->stats);
    }

    g->loaded = m->loaded ? 1 : 0;

    if (!m->loaded) {
        return;
    }

    g->running = m->stats.seqs_active;
    g->waiting = m->stats.seqs_queued + m->n_waiting;
    g->kv_blocks_total = m->stats.kv_blocks_total;
    g->kv_blocks_free = m->stats.kv_blocks_free;

    /* the engine's counters are per worker and vanish with it: add what
     * is new to the zone's totals so that they only ever go up */
    if (m->stats.preemptions > g->seen_preemptions) {
        (void) ngx_atomic_fetch_add(&shm->preemptions,
                                    m->stats.preemptions
                                    - g->seen_preemptions);
        g->seen_preemptions = m->stats.preemptions;
    }
}


void
ngx_http_starling_metrics_detach(ngx_http_starling_main_conf_t *smcf)
{
    (void) smcf;

    if (ngx_http_starling_slot != NULL) {
        ngx_http_starling_slot->pid = 0;
        ngx_http_starling_slot = NULL;
    }
}


/* ---- /metrics ------------------------------------------------------- */

/* a label value: Prometheus escapes only backslash, quote and newline */
static void
ngx_http_starling_add_label(st_jbuf *b, const u_char *s, size_t len)
{
    size_t  i;

    st_jbuf_adds(b, "\"");
    for (i = 0; i < len; i++) {
        switch (s[i]) {
        case '\\':
            st_jbuf_adds(b, "\\\\");
            break;
        case '"':
            st_jbuf_adds(b, "\\\"");
            break;
        case '\n':
            st_jbuf_adds(b, "\\n");
            break;
        default:
            st_jbuf_add(b, (const char *) &s[i], 1);
        }
    }
    st_jbuf_adds(b, "\"");
}


static void
ngx_http_starling_render_hist(st_jbuf *b, ngx_http_starling_shm_t *shm,
    ngx_uint_t h)
{
    const char                *name;
    ngx_uint_t                 i;
    ngx_atomic_uint_t          cum, count;
    ngx_http_starling_hist_t  *hist;

    name = ngx_http_starling_hists[h].name;
    hist = &shm->hist[h];

    st_jbuf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name,
                 ngx_http_starling_hists[h].help, name);

    /* read count first: buckets are added before it, so the +Inf bucket
     * is never below _count in one scrape */
    count = hist->count;
    cum = 0;
    for (i = 0; i < NGX_HTTP_STARLING_HIST_BUCKETS; i++) {
        cum += hist->bucket[i];
        st_jbuf_addf(b, "%s_bucket{le=\"%g\"} %lu\n", name,
                     ngx_http_starling_le_ms[i] / 1000.0,
                     (unsigned long) cum);
    }
    cum += hist->bucket[NGX_HTTP_STARLING_HIST_BUCKETS];
    st_jbuf_addf(b, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n"
                 "%s_count %lu\n", name, (unsigned long) cum, name,
                 hist->sum_us / 1e6, name, (unsigned long) count);
}


typedef struct {
    const u_char  *name;
    size_t         len;
    uint64_t       loaded, running, waiting, kv_total, kv_free;
} ngx_http_starling_model_sum_t;


#define NGX_HTTP_STARLING_MODEL_SUMS  64

static void
ngx_http_starling_render_models(st_jbuf *b, ngx_http_starling_shm_t *shm)
{
    size_t                             len;
    ngx_uint_t                         w, j, k, n;
    ngx_http_starling_model_gauges_t  *g;
    ngx_http_starling_model_sum_t      sums[NGX_HTTP_STARLING_MODEL_SUMS],
                                      *s;

    /* sum the live workers' slots by model name (after a reload the old
     * workers may still serve models that the new ones do not) */
    n = 0;
    for (w = 0; w < NGX_HTTP_STARLING_WORKER_SLOTS; w++) {
        if (!ngx_http_starling_pid_alive((ngx_pid_t) shm->workers[w].pid)) {
            continue;
        }

        for (j = 0; j < NGX_HTTP_STARLING_MODEL_SLOTS; j++) {
            g = &shm->workers[w].model[j];
            len = g->name_len;
            if (len == 0 || len > NGX_HTTP_STARLING_MODEL_NAME) {
                continue;
            }

            for (k = 0; k < n; k++) {
                if (sums[k].len == len
                    && ngx_memcmp(sums[k].name, g->name, len) == 0)
                {
                    break;
                }
            }

            if (k == n) {
                if (n == NGX_HTTP_STARLING_MODEL_SUMS) {
                    continue;
                }
                ngx_memzero(&sums[n], sizeof(sums[n]));
                sums[n].name = g->name;
                sums[n].len = len;
                n++;
            }

            s = &sums[k];
            s->loaded += g->loaded;
            if (g->loaded) {
                s->running += g->running;
                s->waiting += g->waiting;
                s->kv_total += g->kv_blocks_total;
                s->kv_free += g->kv_blocks_free;
            }
        }
    }

#define NGX_HTTP_STARLING_GAUGE(metric, help, expr)                          \
    st_jbuf_adds(b, "# HELP " metric " " help "\n"                          \
                 "# TYPE " metric " gauge\n");                               \
    for (k = 0; k < n; k++) {                                               \
        s = &sums[k];                                                        \
        st_jbuf_adds(b, metric "{model=");                                   \
        ngx_http_starling_add_label(b, s->name, s->len);                     \
        expr;                                                                \
    }

    NGX_HTTP_STARLING_GAUGE("starling_model_loaded",
        "Worker processes that have the model loaded.",
        st_jbuf_addf(b, "} %llu\n", (unsigned long long) s->loaded))

    NGX_HTTP_STARLING_GAUGE("starling_requests_running",
        "Sequences in the engine's batch (all workers).",
        st_jbuf_addf(b, "} %llu\n", (unsigned long long) s->running))

    NGX_HTTP_STARLING_GAUGE("starling_requests_waiting",
        "Requests waiting for a sequence slot (all workers).",
        st_jbuf_addf(b, "} %llu\n", (unsigned long long) s->waiting))

    NGX_HTTP_STARLING_GAUGE("starling_kv_blocks_free",
        "Free or evictable KV cache blocks (all workers).",
        st_jbuf_addf(b, "} %llu\n", (unsigned long long) s->kv_free))

    NGX_HTTP_STARLING_GAUGE("starling_kv_cache_usage_ratio",
        "Fraction of KV cache blocks in use by sequences, 0 to 1 "
        "(all workers).",
        st_jbuf_addf(b, "} %.6f\n", s->kv_total
                     ? (double) (s->kv_total - s->kv_free) / s->kv_total
                     : 0.0))

#undef NGX_HTTP_STARLING_GAUGE
}


ngx_int_t
ngx_http_starling_metrics(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf)
{
    st_jbuf                     b;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_http_starling_shm_t    *shm;
    ngx_http_starling_model_t  *m;

    shm = ngx_http_starling_shm(r);
    if (shm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* this worker's figures are as fresh as the scrape */
    m = smcf->models.elts;
    for (i = 0; i < smcf->models.nelts; i++) {
        ngx_http_starling_metrics_publish(smcf, &m[i]);
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

    st_jbuf_adds(&b, "# HELP starling_rejections_total Requests refused "
                 "before or instead of generation, by reason.\n"
                 "# TYPE starling_rejections_total counter\n");
    for (i = 0; i < NGX_HTTP_STARLING_NREJ; i++) {
        st_jbuf_addf(&b, "starling_rejections_total{reason=\"%s\"} %lu\n",
                     ngx_http_starling_rej_names[i],
                     (unsigned long) shm->rejected[i]);
    }

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
                 "starling_cached_tokens_total %lu\n"
                 "# HELP starling_prefix_cache_queries_tokens_total Prompt "
                 "tokens looked up in the prefix cache.\n"
                 "# TYPE starling_prefix_cache_queries_tokens_total "
                 "counter\n"
                 "starling_prefix_cache_queries_tokens_total %lu\n"
                 "# HELP starling_prefix_cache_hits_tokens_total Prompt "
                 "tokens found in the prefix cache.\n"
                 "# TYPE starling_prefix_cache_hits_tokens_total counter\n"
                 "starling_prefix_cache_hits_tokens_total %lu\n"
                 "# HELP starling_preemptions_total Sequences preempted "
                 "for lack of KV cache memory (recomputed later).\n"
                 "# TYPE starling_preemptions_total counter\n"
                 "starling_preemptions_total %lu\n",
                 (unsigned long) shm->prompt_tokens,
                 (unsigned long) shm->completion_tokens,
                 (unsigned long) shm->cached_tokens,
                 (unsigned long) shm->prefix_queries_tokens,
                 (unsigned long) shm->cached_tokens,
                 (unsigned long) shm->preemptions);

    for (i = 0; i < NGX_HTTP_STARLING_NHIST; i++) {
        ngx_http_starling_render_hist(&b, shm, i);
    }

    st_jbuf_addf(&b, "# HELP starling_active_requests Requests being "
                 "generated or queued (all workers).\n"
                 "# TYPE starling_active_requests gauge\n"
                 "starling_active_requests %ld\n",
                 (long) (ngx_atomic_int_t) shm->active);

    ngx_http_starling_render_models(&b, shm);
    ngx_http_starling_render_tenants(&b, shm);

    /* sessions: the answering worker's engines (sessions live in one
     * worker) */
    ngx_http_starling_session_metrics(&b, smcf);

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_body(r, NGX_HTTP_OK,
                                     "text/plain; version=0.0.4",
                                     b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}


/*
 * /ready for the whole instance, not just the worker that answers: how
 * many live workers of this configuration cycle have every model loaded
 * (ready), out of worker_processes (total). During a reload the old
 * cycle's workers are of another generation and do not count; a worker
 * that crashed leaves a dead pid and its respawn takes a slot anew.
 * Without the zone's slots (more workers than slots) total is 0: the
 * caller falls back to this worker's own state.
 */
void
ngx_http_starling_workers_ready(ngx_http_starling_main_conf_t *smcf,
    ngx_uint_t *ready, ngx_uint_t *total)
{
    ngx_uint_t                        i, k, n, ok;
    ngx_core_conf_t                  *ccf;
    ngx_http_starling_shm_t          *shm;
    ngx_http_starling_worker_slot_t  *slot;

    *ready = 0;
    *total = 0;

    if (ngx_http_starling_slot == NULL || smcf->shm_zone == NULL
        || smcf->shm_zone->data == NULL)
    {
        return;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    shm = smcf->shm_zone->data;
    n = ngx_min(smcf->models.nelts, NGX_HTTP_STARLING_MODEL_SLOTS);

    for (i = 0; i < NGX_HTTP_STARLING_WORKER_SLOTS; i++) {
        slot = &shm->workers[i];
        if (slot->pid == 0 || slot->generation != smcf->generation
            || !ngx_http_starling_pid_alive((ngx_pid_t) slot->pid))
        {
            continue;
        }
        ok = 1;
        for (k = 0; k < n; k++) {
            if (!slot->model[k].loaded) {
                ok = 0;
                break;
            }
        }
        *ready += ok;
    }

    *total = ccf->worker_processes > 0 ? (ngx_uint_t) ccf->worker_processes
                                       : 1;
}
