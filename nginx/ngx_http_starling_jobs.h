
/*
 * Starling nginx module: the job registry (ngx_http_starling_jobs.c):
 * the worker-API jobs running in every worker, so that job ids are
 * unique across the workers and /cancel may land on any of them.
 */

#ifndef _NGX_HTTP_STARLING_JOBS_H_INCLUDED_
#define _NGX_HTTP_STARLING_JOBS_H_INCLUDED_


#include "ngx_http_starling_shm.h"


/* at zone creation (slab pool locked or not yet shared) */
void ngx_http_starling_jobs_init(ngx_http_starling_shm_t *shm);
/* at worker start: drop entries of workers that died */
void ngx_http_starling_jobs_sweep(ngx_shm_zone_t *zone, ngx_log_t *log);
ngx_int_t ngx_http_starling_job_register(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_job_unregister(ngx_http_starling_ctx_t *ctx);
ngx_int_t ngx_http_starling_job_cancel(ngx_http_request_t *r, u_char *id,
    size_t len);
ngx_uint_t ngx_http_starling_job_cancelled(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_job_ended(ngx_http_starling_ctx_t *ctx);


#endif /* _NGX_HTTP_STARLING_JOBS_H_INCLUDED_ */
