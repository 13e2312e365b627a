
/*
 * Starling nginx module: types shared by the module's files.
 *
 *   ngx_http_starling_module.c   module definition, process init/exit
 *   src/ngx_http_starling_conf.c   directives, create/merge conf
 *   src/ngx_http_starling_bridge.c thread pool: model load, step loop
 *   src/ngx_http_starling_handler.c content handler, routing, body
 *   src/ngx_http_starling_errors.c  error responses in the API's shapes
 *   src/ngx_http_starling_generate.c generation requests -> engine
 *   src/ngx_http_starling_lifecycle.c timers, disconnects, engine output
 *   src/ngx_http_starling_render.c  engine output -> JSON, chunks, events
 *   src/ngx_http_starling_tokenize.c /tokenize, /detokenize, /cancel
 *   src/ngx_http_starling_sse.c    response/SSE output plumbing
 *   src/ngx_http_starling_ops.c    health/ready/metrics/models, variables
 */

#ifndef _NGX_HTTP_STARLING_H_INCLUDED_
#define _NGX_HTTP_STARLING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if !(NGX_THREADS)
#error "the starling module needs nginx built with --with-threads"
#endif

#include <ngx_thread_pool.h>

#include "starling/st_engine.h"
#include "starling/st_api.h"


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
    NGX_HTTP_STARLING_METRICS
} ngx_http_starling_surface_e;


typedef struct ngx_http_starling_model_s  ngx_http_starling_model_t;
typedef struct ngx_http_starling_ctx_s    ngx_http_starling_ctx_t;


#define NGX_HTTP_STARLING_JOBS       1024
#define NGX_HTTP_STARLING_JOB_ID_LEN 128

typedef struct {
    ngx_pid_t       pid;                   /* 0: free */
    ngx_atomic_t    cancel;                /* set by any worker */
    size_t          len;
    u_char          id[NGX_HTTP_STARLING_JOB_ID_LEN];
} ngx_http_starling_job_t;


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

    /* running worker-API jobs of every worker: /cancel may land on any
     * worker, and job ids are unique across them */
    ngx_atomic_t    jobs_lock;             /* ngx_spinlock */
    ngx_http_starling_job_t  jobs[NGX_HTTP_STARLING_JOBS];
} ngx_http_starling_shm_t;


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
    ngx_http_starling_shm_t    *shm;
    ngx_int_t                   request_id_index;
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
    ngx_msec_t                  stream_timeout;
    ngx_msec_t                  request_timeout;  /* wall clock; 0: off */
} ngx_http_starling_loc_conf_t;


/* per generation request; lives in r->pool, touched by the event loop
 * only (the pool thread sees the engine, never this) */
struct ngx_http_starling_ctx_s {
    ngx_http_request_t         *request;
    ngx_http_starling_model_t  *model;
    ngx_http_starling_surface_e surface;         /* resolved */
    st_api_request             *api;             /* heap; freed at once */

    ngx_queue_t                 queue;           /* live or waiting */
    ngx_uint_t                  queued_in;       /* 0, 1 live, 2 waiting */
    st_seq                     *seq;
    ngx_int_t                   job_slot;        /* shm jobs[], -1: none */

    /* copied from the API request */
    ngx_str_t                   job_id;
    ngx_str_t                   id;              /* "cmpl-..." */
    time_t                      created;
    ngx_uint_t                  stream;
    ngx_uint_t                  include_usage;
    ngx_uint_t                  logprobs;
    ngx_uint_t                  top_logprobs;
    uint32_t                    max_tokens;

    st_request                  sreq;            /* what was submitted */
    st_tokens                   tokens;          /* prompt ids (heap) */
    char                      **stop;            /* r->pool copies */
    size_t                      n_stop;

    /* output */
    ngx_uint_t                  header_sent;
    ngx_uint_t                  done;            /* terminal sent */
    ngx_uint_t                  cancel_requested;
    ngx_uint_t                  timed_out;        /* request_timeout hit */
    ngx_msec_t                  start_msec;
    ngx_uint_t                  n_events;
    ngx_chain_t                *out;             /* pending body */
    ngx_chain_t               **last_out;
    st_jbuf                     text;            /* non-stream text */
    ngx_array_t                *lps;             /* non-stream logprobs */
    st_jbuf                     scratch;         /* event being built */
    size_t                      text_offset;
    ngx_event_t                 timer;           /* drain + queue limit */

    /* figures for variables and logs */
    ngx_str_t                   correlation_id;
    ngx_http_log_handler_pt     orig_log_handler;
    uint32_t                    prompt_tokens;
    uint32_t                    completion_tokens;
    uint32_t                    cached_tokens;
    double                      ttft_ms;
    double                      queue_ms;
    double                      decode_ms;
    st_finish_reason            finish;
    ngx_uint_t                  has_figures;
};


extern ngx_module_t  ngx_http_starling_module;


/* conf */
extern ngx_command_t  ngx_http_starling_commands[];
void *ngx_http_starling_create_main_conf(ngx_conf_t *cf);
char *ngx_http_starling_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_starling_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_starling_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
ngx_http_starling_model_t *ngx_http_starling_find_model(
    ngx_http_starling_main_conf_t *smcf, u_char *name, size_t len);

/* bridge */
ngx_int_t ngx_http_starling_bridge_init(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf);
void ngx_http_starling_bridge_exit(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_submit(ngx_http_starling_ctx_t *ctx,
    st_error *err);
void ngx_http_starling_detach(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_cancel(ngx_http_starling_ctx_t *ctx);
ngx_http_starling_ctx_t *ngx_http_starling_find_job(
    ngx_http_starling_main_conf_t *smcf, u_char *job_id, size_t len);
void ngx_http_starling_kick(ngx_http_starling_model_t *m);

/* non-stream logprobs, one per generated token */
typedef struct {
    int32_t           token;
    float             logprob;
    uint32_t          n_top;
    size_t            offset;           /* completion text offset, bytes */
    st_token_logprob  top[ST_MAX_TOP_LOGPROBS];
} ngx_http_starling_lp_t;


/* handler */
ngx_int_t ngx_http_starling_handler(ngx_http_request_t *r);

/* errors (responses in the surface's error shape) */
ngx_int_t ngx_http_starling_error_status(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_uint_t status, const char *type,
    const char *param, const char *code, const char *message);
ngx_int_t ngx_http_starling_not_allowed(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const char *allow);
ngx_int_t ngx_http_starling_validation_error(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
ngx_int_t ngx_http_starling_reject(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_uint_t status, const char *field,
    const char *constraint, const char *message);
ngx_int_t ngx_http_starling_unavailable(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_http_starling_model_t *m);

/* generate (generation requests -> engine) */
ngx_http_starling_model_t *ngx_http_starling_pick_model(
    ngx_http_request_t *r, ngx_http_starling_ctx_t *ctx,
    st_api_request *req);
ngx_int_t ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);

/* lifecycle (a submitted request: timers, disconnects, engine output) */
void ngx_http_starling_test_reading(ngx_http_request_t *r);
ngx_msec_t ngx_http_starling_timer_delay(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_loc_conf_t *slcf, ngx_msec_t dflt);
void ngx_http_starling_timer_handler(ngx_event_t *ev);
void ngx_http_starling_on_output(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);

/* render (engine output -> OpenAI objects / worker events) */
ngx_int_t ngx_http_starling_emit_tokens(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_emit_end(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_reply_full(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);

/* tokenize (worker utility endpoints) */
ngx_int_t ngx_http_starling_tokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
ngx_int_t ngx_http_starling_detokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
ngx_int_t ngx_http_starling_cancel_request(ngx_http_request_t *r,
    st_api_request *req);

/* sse / output */
ngx_int_t ngx_http_starling_send_json(ngx_http_request_t *r,
    ngx_uint_t status, const char *body, size_t len);
ngx_int_t ngx_http_starling_send_body(ngx_http_request_t *r,
    ngx_uint_t status, const char *content_type, const char *body,
    size_t len);
ngx_int_t ngx_http_starling_stream_header(ngx_http_starling_ctx_t *ctx);
ngx_int_t ngx_http_starling_stream_event(ngx_http_starling_ctx_t *ctx,
    const char *event, const char *data, size_t len, ngx_uint_t last);
void ngx_http_starling_finish(ngx_http_starling_ctx_t *ctx, ngx_int_t rc);
ngx_int_t ngx_http_starling_set_retry_after(ngx_http_request_t *r,
    ngx_uint_t seconds);

/* ops */
ngx_int_t ngx_http_starling_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_starling_init_shm(ngx_conf_t *cf,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_health(ngx_http_request_t *r,
    ngx_http_starling_model_t *m);
ngx_int_t ngx_http_starling_ready(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_metrics(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_models(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);
void ngx_http_starling_count_finish(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_stat(ngx_http_request_t *r, ngx_uint_t what);
ngx_int_t ngx_http_starling_job_register(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_job_unregister(ngx_http_starling_ctx_t *ctx);
ngx_int_t ngx_http_starling_job_cancel(ngx_http_request_t *r, u_char *id,
    size_t len);
ngx_uint_t ngx_http_starling_job_cancelled(ngx_http_starling_ctx_t *ctx);

#define NGX_HTTP_STARLING_STAT_INVALID   1     /* 4xx before generation */
#define NGX_HTTP_STARLING_STAT_REJECTED  2     /* 429/503 overload */
#define NGX_HTTP_STARLING_STAT_STARTED   3     /* handed to the engine */
#define NGX_HTTP_STARLING_STAT_TIMEOUT   4     /* queue timeout, 503 */


#endif /* _NGX_HTTP_STARLING_H_INCLUDED_ */
