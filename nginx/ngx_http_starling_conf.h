
/*
 * Starling nginx module: configuration types. The surfaces a location
 * serves, the main and location configurations, and the model: declared
 * by starling_model, with its engine's state in each worker process.
 */

#ifndef _NGX_HTTP_STARLING_CONF_H_INCLUDED_
#define _NGX_HTTP_STARLING_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if !(NGX_THREADS)
#error "the starling module needs nginx built with --with-threads"
#endif

#include <ngx_thread_pool.h>

#include "starling/st_engine.h"


/* which API a location serves ("starling SURFACE;") */
typedef enum {
    NGX_HTTP_STARLING_OFF = 0,
    NGX_HTTP_STARLING_OPENAI,         /* routes by URI suffix */
    NGX_HTTP_STARLING_WORKER,         /* routes by URI suffix */
    NGX_HTTP_STARLING_COMPLETIONS,
    NGX_HTTP_STARLING_CHAT,
    NGX_HTTP_STARLING_MODELS,
    NGX_HTTP_STARLING_EXECUTE,
    NGX_HTTP_STARLING_CANCEL,
    NGX_HTTP_STARLING_HEALTH,
    NGX_HTTP_STARLING_READY,
    NGX_HTTP_STARLING_TOKENIZE,
    NGX_HTTP_STARLING_DETOKENIZE,
    NGX_HTTP_STARLING_METRICS,
    NGX_HTTP_STARLING_SESSION_CLOSE,  /* POST .../session/close */
    NGX_HTTP_STARLING_SESSIONS,       /* GET .../sessions */
    NGX_HTTP_STARLING_APPLY_TEMPLATE, /* chat messages -> prompt, no run */
    NGX_HTTP_STARLING_RESPONSES,      /* POST /v1/responses */
    NGX_HTTP_STARLING_EMBEDDINGS      /* POST /v1/embeddings */
} ngx_http_starling_surface_e;


typedef struct ngx_http_starling_model_s  ngx_http_starling_model_t;
typedef struct ngx_http_starling_ctx_s    ngx_http_starling_ctx_t;
typedef struct ngx_http_starling_token_limit_conf_s
    ngx_http_starling_token_limit_conf_t;


struct ngx_http_starling_model_s {
    /* configuration (starling_model) */
    ngx_str_t                   name;
    ngx_str_t                   path;
    ngx_str_t                   sha256;
    ngx_str_t                   chat_template;   /* "auto", "chatml"... */
    st_backend_kind             backend;
    ngx_uint_t                  n_ctx;
    ngx_uint_t                  n_threads;
    ngx_uint_t                  max_seqs;
    off_t                       kv_bytes;      /* 0: engine default */
    u_char                     *file;            /* for messages */
    ngx_uint_t                  line;

    /* per worker process state (event loop only) */
    st_engine                  *engine;
    const st_model_info        *info;
    ngx_uint_t                  loaded;          /* 1: engine usable */
    ngx_uint_t                  load_failed;
    ngx_uint_t                  in_flight;       /* a task is running */
    ngx_uint_t                  between;         /* in between_steps() */
    ngx_thread_task_t          *task;
    ngx_thread_pool_t          *pool;
    ngx_log_t                  *log;

    ngx_queue_t                 live;            /* ctxs with a seq */
    ngx_queue_t                 waiting;         /* ctxs not submitted */
    ngx_uint_t                  n_live;
    ngx_uint_t                  n_waiting;
    ngx_array_t                *orphans;         /* st_seq* to release */
    st_engine_stats             stats;           /* as of the last step */
    ngx_queue_t                 session_ops;     /* session close/list
                                                    waiting for the step */

    /* written by the pool thread, read after completion */
    st_status                   task_rc;
    st_error                    task_err;
    ngx_uint_t                  task_is_load;
    double                      step_ms;
};


typedef struct {
    ngx_array_t                 models;          /* model_t */
    ngx_str_t                   pool_name;
    ngx_thread_pool_t          *pool;
    ngx_shm_zone_t             *shm_zone;
    ngx_atomic_uint_t           generation;      /* of this cycle, see
                                                    shm_t.generation */
    ngx_int_t                   request_id_index;
    ngx_str_t                   session_store;   /* "" = no spilling */
    off_t                       session_store_size;
    ngx_msec_t                  session_max_idle;
} ngx_http_starling_main_conf_t;


typedef struct {
    ngx_http_starling_surface_e surface;
    ngx_str_t                   model_name;
    ngx_http_starling_model_t  *model;           /* resolved at merge */
    ngx_uint_t                  max_tokens;
    ngx_uint_t                  max_prompt_tokens;
    ngx_uint_t                  max_prompt_chars;
    ngx_uint_t                  queue_size;
    ngx_msec_t                  queue_timeout;
    ngx_msec_t                  request_timeout;  /* wall clock; 0: off */
    ngx_http_starling_token_limit_conf_t  *token_limit;  /* NULL: none */
    ngx_http_complex_value_t   *tenant;          /* NULL: default tenant */
    ngx_uint_t                  tenant_weight;
    ngx_http_complex_value_t   *priority;        /* NULL: 0 */
} ngx_http_starling_loc_conf_t;


extern ngx_module_t  ngx_http_starling_module;
extern ngx_command_t  ngx_http_starling_commands[];


void *ngx_http_starling_create_main_conf(ngx_conf_t *cf);
char *ngx_http_starling_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_starling_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_starling_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
ngx_http_starling_model_t *ngx_http_starling_find_model(
    ngx_http_starling_main_conf_t *smcf, u_char *name, size_t len);
/* ngx_http_starling_model_check.c: validate the file (nginx -t) */
ngx_int_t ngx_http_starling_check_model_file(ngx_conf_t *cf,
    ngx_http_starling_model_t *m);


#endif /* _NGX_HTTP_STARLING_CONF_H_INCLUDED_ */
