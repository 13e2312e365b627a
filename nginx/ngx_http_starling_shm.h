
/*
 * Starling nginx module: the shared-memory zone. Counters aggregated
 * across the workers (atomics only) for /metrics, and the root of the
 * job registry (ngx_http_starling_jobs.c).
 */

#ifndef _NGX_HTTP_STARLING_SHM_H_INCLUDED_
#define _NGX_HTTP_STARLING_SHM_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


/* latency histograms: bucket upper bounds shared by every histogram
 * (ngx_http_starling_metrics.c), counts non-cumulative in the zone */
#define NGX_HTTP_STARLING_HIST_BUCKETS  15

typedef struct {
    ngx_atomic_t    bucket[NGX_HTTP_STARLING_HIST_BUCKETS + 1];
    ngx_atomic_t    sum_us;
    ngx_atomic_t    count;
} ngx_http_starling_hist_t;

enum {
    NGX_HTTP_STARLING_HIST_TTFT = 0,       /* submit -> first token */
    NGX_HTTP_STARLING_HIST_ITL,            /* mean gap between tokens */
    NGX_HTTP_STARLING_HIST_E2E,            /* request start -> end */
    NGX_HTTP_STARLING_HIST_QUEUE,          /* submit -> first step */
    NGX_HTTP_STARLING_HIST_PREFILL,        /* first step -> first token */
    NGX_HTTP_STARLING_HIST_DECODE,         /* first token -> last token */
    NGX_HTTP_STARLING_NHIST
};

/* rejections by reason */
enum {
    NGX_HTTP_STARLING_REJ_QUEUE_FULL = 0,
    NGX_HTTP_STARLING_REJ_QUEUE_TIMEOUT,
    NGX_HTTP_STARLING_REJ_TOKEN_BUDGET,
    NGX_HTTP_STARLING_REJ_INVALID,
    NGX_HTTP_STARLING_REJ_NOT_READY,
    NGX_HTTP_STARLING_NREJ
};

/* Gauges of one worker's engines, written by that worker only (after
 * each step and each admission change) and summed over the live
 * workers at scrape time: a worker that exits or crashes drops out, so
 * the sums never drift. Old workers draining after a reload keep their
 * slot until they exit. */
#define NGX_HTTP_STARLING_WORKER_SLOTS  64
#define NGX_HTTP_STARLING_MODEL_SLOTS   16
#define NGX_HTTP_STARLING_MODEL_NAME    64

typedef struct {
    u_char          name[NGX_HTTP_STARLING_MODEL_NAME];
    ngx_atomic_t    name_len;              /* 0: slot unused */
    ngx_atomic_t    loaded;
    ngx_atomic_t    running;               /* sequences in the batch */
    ngx_atomic_t    waiting;               /* queued in engine + glue */
    ngx_atomic_t    kv_blocks_total;
    ngx_atomic_t    kv_blocks_free;
    /* cumulative engine figures already added to the zone's totals */
    ngx_atomic_t    seen_preemptions;
} ngx_http_starling_model_gauges_t;

typedef struct {
    ngx_atomic_t                      pid;  /* 0: free */
    /* the configuration cycle the worker runs (shm_t.generation when it
     * was forked): /ready counts the workers of its own generation */
    ngx_atomic_t                      generation;
    ngx_http_starling_model_gauges_t  model[NGX_HTTP_STARLING_MODEL_SLOTS];
} ngx_http_starling_worker_slot_t;

/* per-tenant counters: a bounded label set, the first tenants seen take
 * the slots (for the zone's life), the rest are counted as "__other__"
 * (the last slot) */
#define NGX_HTTP_STARLING_TENANT_SLOTS  32
#define NGX_HTTP_STARLING_TENANT_NAME   64

typedef struct {
    u_char          name[NGX_HTTP_STARLING_TENANT_NAME];
    ngx_atomic_t    name_len;              /* 0: free */
    ngx_atomic_t    requests;
    ngx_atomic_t    prompt_tokens;
    ngx_atomic_t    completion_tokens;
} ngx_http_starling_tenant_stats_t;

typedef struct {
    ngx_atomic_t    requests_total;
    ngx_atomic_t    requests_ok;
    ngx_atomic_t    requests_invalid;      /* 4xx before generation */
    ngx_atomic_t    requests_rejected;     /* 429/503 overload */
    ngx_atomic_t    requests_cancelled;
    ngx_atomic_t    requests_failed;
    ngx_atomic_t    prompt_tokens;
    ngx_atomic_t    completion_tokens;
    ngx_atomic_t    cached_tokens;
    ngx_atomic_t    active;                /* gauge, summed over workers */
    ngx_atomic_t    rejected[NGX_HTTP_STARLING_NREJ];
    ngx_atomic_t    prefix_queries_tokens; /* prompt tokens looked up */
    ngx_atomic_t    preemptions;
    /* configuration cycles so far: the master adds one at each start
     * and reload, before it forks that cycle's workers */
    ngx_atomic_t    generation;

    ngx_http_starling_hist_t         hist[NGX_HTTP_STARLING_NHIST];
    ngx_http_starling_tenant_stats_t tenants[NGX_HTTP_STARLING_TENANT_SLOTS];
    ngx_http_starling_worker_slot_t  workers[NGX_HTTP_STARLING_WORKER_SLOTS];

    /* running worker-API jobs of every worker, keyed by a hash of the
     * job id (ngx_http_starling_jobs.c); nodes in the zone's slab pool,
     * under its mutex */
    ngx_rbtree_t       jobs;
    ngx_rbtree_node_t  jobs_sentinel;
} ngx_http_starling_shm_t;


ngx_int_t ngx_http_starling_init_shm(ngx_conf_t *cf,
    ngx_http_starling_main_conf_t *smcf);
ngx_shm_zone_t *ngx_http_starling_shm_zone(ngx_http_request_t *r);
ngx_http_starling_shm_t *ngx_http_starling_shm(ngx_http_request_t *r);

#define NGX_HTTP_STARLING_STAT_INVALID   1     /* 4xx before generation */
#define NGX_HTTP_STARLING_STAT_REJECTED  2     /* 429: queue full */
#define NGX_HTTP_STARLING_STAT_NOT_READY 3     /* 503: model not loaded */
#define NGX_HTTP_STARLING_STAT_BUDGET    4     /* 429: token budget */

void ngx_http_starling_stat(ngx_http_request_t *r, ngx_uint_t what);
/* a request handed to the engine: requests_total and the active gauge
 * go up, ctx->active is set */
void ngx_http_starling_count_start(ngx_http_starling_ctx_t *ctx);
/* the end of a started request, whichever way it ends: the gauge goes
 * down and one outcome (from ctx->finish: ok, failed, cancelled; or
 * rejected for a queue timeout) goes up. Only the first call per request
 * counts, so every end path may call it. */
void ngx_http_starling_count_finish(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_count_timeout(ngx_http_starling_ctx_t *ctx);

/* per-worker gauges (ngx_http_starling_metrics.c): claim a slot in
 * init_process, publish a model's engine state, free it at exit */
void ngx_http_starling_metrics_attach(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf);
void ngx_http_starling_metrics_publish(ngx_http_starling_main_conf_t *smcf,
    ngx_http_starling_model_t *m);
void ngx_http_starling_metrics_detach(ngx_http_starling_main_conf_t *smcf);
void ngx_http_starling_workers_ready(ngx_http_starling_main_conf_t *smcf,
    ngx_uint_t *ready, ngx_uint_t *total);


#endif /* _NGX_HTTP_STARLING_SHM_H_INCLUDED_ */
