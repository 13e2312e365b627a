
/*
 * Starling nginx module: the per-request context of a generation (and
 * of every other Starling request: its correlation id and log handler).
 */

#ifndef _NGX_HTTP_STARLING_CTX_H_INCLUDED_
#define _NGX_HTTP_STARLING_CTX_H_INCLUDED_


#include "ngx_http_starling_conf.h"

#include "starling/st_api.h"


typedef struct ngx_http_starling_job_s  ngx_http_starling_job_t;


/* non-stream logprobs, one per generated token */
typedef struct {
    int32_t           token;
    float             logprob;
    uint32_t          n_top;
    size_t            offset;           /* completion text offset, bytes */
    ngx_uint_t        none;             /* the prompt's first token: null */
    st_token_logprob  top[ST_MAX_TOP_LOGPROBS];
} ngx_http_starling_lp_t;


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
    ngx_http_starling_job_t    *job;             /* registry entry (shm) */

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
    ngx_uint_t                  admitted;        /* the engine started it:
                                                    the queue timeout is over */
    ngx_uint_t                  done;            /* terminal sent */
    ngx_uint_t                  cancel_requested;
    ngx_uint_t                  timed_out;        /* request_timeout hit */
    ngx_uint_t                  active;          /* counted in the active
                                                    gauge, outcome not yet */
    ngx_msec_t                  start_msec;
    ngx_uint_t                  n_events;
    ngx_chain_t                *out;             /* pending body */
    ngx_chain_t               **last_out;
    st_jbuf                     text;            /* non-stream text */
    ngx_array_t                *lps;             /* non-stream logprobs */
    st_jbuf                     scratch;         /* event being built */
    size_t                      text_offset;
    ngx_event_t                 timer;           /* drain + queue limit */

    /* n > 1 or a prompt batch (ngx_http_starling_choices.c): the
     * request's ctx holds no sequence; each choice is a child ctx in
     * r->pool with its own sequence, rendered under its index */
    ngx_http_starling_ctx_t    *parent;          /* child: the request's */
    ngx_http_starling_ctx_t   **choices;         /* parent: n_choices */
    ngx_uint_t                  n_choices;
    ngx_uint_t                  n_per_prompt;    /* the request's n */
    ngx_uint_t                  n_ended;         /* parent: choices done */
    ngx_uint_t                  index;           /* child: choice index */
    ngx_uint_t                  submitted;       /* child: given to the
                                                    engine (followers wait
                                                    for their prompt's
                                                    first prefill) */
    ngx_uint_t                  echo;            /* completions echo */
    ngx_str_t                   echo_text;       /* prompt text (r->pool) */
    ngx_event_t                 end_event;       /* parent: deferred
                                                    finalization */
    ngx_int_t                   end_rc;
    uint32_t                    usage_cached_tokens; /* parent: leaders'
                                                    cache hits (usage);
                                                    cached_tokens: all */

    /* tools (ngx_http_starling_tools.c): calls parsed out of the text */
    st_api_tool                *tools;           /* names (r->pool) */
    size_t                      n_tools;
    ngx_uint_t                  tools_on;
    st_api_tools_style          tools_style;     /* Hermes or Llama 3 */
    ngx_uint_t                  tool_plain;      /* stream, Llama 3: the
                                                    reply is no call */
    ngx_uint_t                  parallel_tool_calls;
    size_t                      tool_sent;       /* stream: content out */
    ngx_uint_t                  tool_held;       /* stream: a call began */
    ngx_uint_t                  tool_calls;      /* calls found */
    ngx_uint_t                  tool_forced;     /* required / named: the
                                                    output is one call's
                                                    JSON (constrained) */
    st_constraint              *constraint;      /* ours; freed in the
                                                    cleanup */

    /* /v1/responses (ngx_http_starling_responses.c) */
    ngx_str_t                   instructions;    /* echoed back */
    ngx_str_t                   text_format;     /* responses: echoed
                                                    (empty: text) */

    /* /v1/embeddings (ngx_http_starling_embeddings.c) */
    float                      *embedding;       /* child: (n_embd) in
                                                    r->pool, once done */
    ngx_uint_t                  embed_base64;    /* parent: encoding */

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

    /* sessions (ngx_http_starling_session.c) */
    ngx_str_t                   session_id;
    ngx_uint_t                  session_close;   /* close, not list */
    st_session_result           session_result;
    /* token budget (ngx_http_starling_tokenlimit.c): set when admitted */
    ngx_http_starling_token_limit_conf_t  *token_limit;
    ngx_str_t                   token_limit_key;
    uint32_t                    token_limit_hash;

    /* fair queueing (ngx_http_starling_tenant.c) */
    ngx_str_t                   tenant;          /* empty: default */
    ngx_uint_t                  priority_set;
};


#endif /* _NGX_HTTP_STARLING_CTX_H_INCLUDED_ */
