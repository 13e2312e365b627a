
/*
 * Starling nginx module: the bridge between the event loop and the
 * engine thread (ngx_http_starling_bridge.c).
 */

#ifndef _NGX_HTTP_STARLING_BRIDGE_H_INCLUDED_
#define _NGX_HTTP_STARLING_BRIDGE_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


/* process init / exit: load every model on the pool thread, free them */
ngx_int_t ngx_http_starling_bridge_init(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf);
void ngx_http_starling_bridge_exit(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf);

/* a validated request to the engine: now when idle, else at the step's end */
ngx_int_t ngx_http_starling_submit(ngx_http_starling_ctx_t *ctx,
    st_error *err);
/* unlink a request and give its sequence back */
void ngx_http_starling_detach(ngx_http_starling_ctx_t *ctx);
/* cancel a request of this worker (ends at the next step boundary) */
void ngx_http_starling_cancel(ngx_http_starling_ctx_t *ctx);
/* this worker's running or waiting request with this job_id */
ngx_http_starling_ctx_t *ngx_http_starling_find_job(
    ngx_http_starling_main_conf_t *smcf, u_char *job_id, size_t len);
/* post a step if the engine is idle and has work */
void ngx_http_starling_kick(ngx_http_starling_model_t *m);


#endif /* _NGX_HTTP_STARLING_BRIDGE_H_INCLUDED_ */
