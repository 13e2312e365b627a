
/*
 * Starling nginx module: the content handler and the endpoints it
 * dispatches to (generation and its lifecycle, the worker utility
 * endpoints, /cancel, the operations endpoints and variables).
 */

#ifndef _NGX_HTTP_STARLING_HANDLERS_H_INCLUDED_
#define _NGX_HTTP_STARLING_HANDLERS_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


/* handler (routing, context, body) */
ngx_int_t ngx_http_starling_handler(ngx_http_request_t *r);

/* generate (generation requests -> engine) */
ngx_http_starling_model_t *ngx_http_starling_pick_model(
    ngx_http_request_t *r, ngx_http_starling_ctx_t *ctx,
    st_api_request *req);
ngx_int_t ngx_http_starling_generate(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);

/* ngx_http_starling_embeddings.c: POST /v1/embeddings */
ngx_int_t ngx_http_starling_embeddings(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
void ngx_http_starling_embeddings_output(ngx_http_starling_ctx_t *c,
    const st_seq_output *out);

/* lifecycle (a submitted request: timers, disconnects, engine output) */
void ngx_http_starling_test_reading(ngx_http_request_t *r);
ngx_msec_t ngx_http_starling_timer_delay(ngx_http_starling_ctx_t *ctx,
    ngx_http_starling_loc_conf_t *slcf, ngx_msec_t dflt);
void ngx_http_starling_timer_handler(ngx_event_t *ev);
void ngx_http_starling_on_output(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);

/* apply-template (chat messages -> prompt text and ids, no generation) */
ngx_int_t ngx_http_starling_apply_template(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);

/* tokenize (worker utility endpoints) */
ngx_int_t ngx_http_starling_tokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
ngx_int_t ngx_http_starling_detokenize(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);

/* cancel (POST /cancel) */
ngx_int_t ngx_http_starling_cancel_request(ngx_http_request_t *r,
    st_api_request *req);

/* ops (operations endpoints, variables) */
ngx_int_t ngx_http_starling_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_starling_health(ngx_http_request_t *r,
    ngx_http_starling_model_t *m);
ngx_int_t ngx_http_starling_ready(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_metrics(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);
ngx_int_t ngx_http_starling_models(ngx_http_request_t *r,
    ngx_http_starling_main_conf_t *smcf);

/* session (session ids, /v1/session/close, /v1/sessions, the store) */
ngx_int_t ngx_http_starling_session_id(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
ngx_int_t ngx_http_starling_session_request(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, st_api_request *req);
void ngx_http_starling_session_ops(ngx_http_starling_model_t *m);
void ngx_http_starling_session_unqueue(ngx_http_starling_ctx_t *ctx);
char *ngx_http_starling_session_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_starling_session_store_init(ngx_http_starling_model_t *m);
ngx_int_t ngx_http_starling_session_add_variables(ngx_conf_t *cf);
void ngx_http_starling_session_metrics(st_jbuf *b,
    ngx_http_starling_main_conf_t *smcf);


#endif /* _NGX_HTTP_STARLING_HANDLERS_H_INCLUDED_ */
