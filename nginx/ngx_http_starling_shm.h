
/*
 * Starling nginx module: the shared-memory zone. Counters aggregated
 * across the workers (atomics only) for /metrics, and the root of the
 * job registry (ngx_http_starling_jobs.c).
 */

#ifndef _NGX_HTTP_STARLING_SHM_H_INCLUDED_
#define _NGX_HTTP_STARLING_SHM_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


/* shared-memory counters, aggregated across workers (atomics only) */
#define NGX_HTTP_STARLING_TTFT_BUCKETS  12

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
    ngx_atomic_t    ttft_bucket[NGX_HTTP_STARLING_TTFT_BUCKETS + 1];
    ngx_atomic_t    ttft_sum_us;
    ngx_atomic_t    ttft_count;
    ngx_atomic_t    active;                /* gauge, summed over workers */

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
#define NGX_HTTP_STARLING_STAT_REJECTED  2     /* 429/503 overload */

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


#endif /* _NGX_HTTP_STARLING_SHM_H_INCLUDED_ */
