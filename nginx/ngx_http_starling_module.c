
/*
 * Starling: LLM inference served by nginx.
 *
 * The module definition: configuration slots and process hooks. Each
 * worker loads every declared model in init_process (on the thread pool,
 * so the worker answers /ready with 503 while loading) and frees them in
 * exit_process, after the thread pools have stopped.
 */

#include "ngx_http_starling.h"


static ngx_int_t ngx_http_starling_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_starling_init_process(ngx_cycle_t *cycle);
static void ngx_http_starling_exit_process(ngx_cycle_t *cycle);


static ngx_http_module_t  ngx_http_starling_module_ctx = {
    ngx_http_starling_preconfiguration,    /* preconfiguration */
    NULL,                                  /* postconfiguration */

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
