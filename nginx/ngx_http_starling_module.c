
/*
 * Starling: LLM inference served by nginx.
 *
 * The module definition: configuration slots and process hooks. Each
 * worker loads every declared model in init_process (on the thread pool,
 * so the worker answers /ready with 503 while loading) and frees them in
 * exit_process, after the thread pools have stopped.
 *
 * Files (nginx/; each header is included only where its concern is used):
 *
 *   ngx_http_starling_module.c     module definition, process init/exit
 *   ngx_http_starling_conf.c/.h    directives, create/merge conf; the
 *                                  conf types and the model
 *   ngx_http_starling_ctx.h        the per-request context
 *   ngx_http_starling_bridge.c/.h  thread pool: model load, step loop
 *   ngx_http_starling_handler.c    content handler, routing, body
 *   ngx_http_starling_handlers.h   the handler and its endpoints
 *   ngx_http_starling_generate.c   generation requests -> engine
 *   ngx_http_starling_embeddings.c /v1/embeddings: inputs -> embedding
 *                                  sequences -> one list object
 *   ngx_http_starling_lifecycle.c  timers, disconnects, engine output
 *   ngx_http_starling_tokenize.c   /tokenize, /detokenize
 *   ngx_http_starling_cancel.c     /cancel
 *   ngx_http_starling_session.c    session ids, /v1/session/close,
 *                                  /v1/sessions, session store, variables
 *   ngx_http_starling_ops.c        health/ready/metrics/models, variables,
 *                                  shared-memory counters
 *   ngx_http_starling_shm.h        the shared zone: counters, registry root
 *   ngx_http_starling_jobs.c/.h    job registry (job_id -> worker, cancel)
 *   ngx_http_starling_output.h     responses (sse, errors, render)
 *   ngx_http_starling_sse.c        response/SSE output plumbing
 *   ngx_http_starling_errors.c     error responses in the API's shapes
 *   ngx_http_starling_body_limit.c nginx's own 413 page as the API's error
 *   ngx_http_starling_render.c     engine output -> JSON, chunks, events
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_output.h"


static ngx_int_t ngx_http_starling_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_starling_init_process(ngx_cycle_t *cycle);
static void ngx_http_starling_exit_process(ngx_cycle_t *cycle);


static ngx_http_module_t  ngx_http_starling_module_ctx = {
    ngx_http_starling_preconfiguration,    /* preconfiguration */
    ngx_http_starling_body_limit_init,     /* postconfiguration */

    ngx_http_starling_create_main_conf,    /* create main configuration */
    ngx_http_starling_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_starling_create_loc_conf,     /* create location configuration */
    ngx_http_starling_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_starling_module = {
    NGX_MODULE_V1,
    &ngx_http_starling_module_ctx,         /* module context */
    ngx_http_starling_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_starling_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_starling_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_starling_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_starling_session_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_starling_add_variables(cf);
}


static ngx_int_t
ngx_http_starling_init_process(ngx_cycle_t *cycle)
{
    ngx_http_starling_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_starling_module);
    if (smcf == NULL || smcf->models.nelts == 0) {
        return NGX_OK;
    }

    /* a worker that crashed left its registry entries; this may be its
     * replacement */
    ngx_http_starling_jobs_sweep(smcf->shm_zone, cycle->log);

    return ngx_http_starling_bridge_init(cycle, smcf);
}


static void
ngx_http_starling_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_starling_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_starling_module);
    if (smcf == NULL || smcf->models.nelts == 0) {
        return;
    }

    ngx_http_starling_bridge_exit(cycle, smcf);
}
