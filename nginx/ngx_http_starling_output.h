
/*
 * Starling nginx module: responses. Whole bodies and SSE streams
 * (ngx_http_starling_sse.c), error bodies in the surface's shape
 * (ngx_http_starling_errors.c), engine output rendered as OpenAI objects
 * or worker-API events (ngx_http_starling_render.c).
 */

#ifndef _NGX_HTTP_STARLING_OUTPUT_H_INCLUDED_
#define _NGX_HTTP_STARLING_OUTPUT_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


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

/* body_limit: nginx's own 413 page rewritten into the API's error
 * (postconfiguration) */
ngx_int_t ngx_http_starling_body_limit_init(ngx_conf_t *cf);

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

/* render (engine output -> OpenAI objects / worker events) */
ngx_int_t ngx_http_starling_emit_tokens(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_emit_end(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_emit_finish(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_emit_tail(ngx_http_starling_ctx_t *ctx);
ngx_int_t ngx_http_starling_reply_full(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);

/* tools: ngx_http_starling_tools.c */
ngx_int_t ngx_http_starling_tools_setup(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, const st_api_request *req, st_error *err);
ngx_int_t ngx_http_starling_tools_stream(ngx_http_starling_ctx_t *ctx,
    const char *text, size_t len, ngx_uint_t final);
/* calls in a choice's text (parallel_tool_calls applied); -1: no memory */
int ngx_http_starling_tools_parse(ngx_http_starling_ctx_t *c,
    st_api_tool_call **calls, size_t *content_len);
ngx_int_t ngx_http_starling_tools_message(ngx_http_starling_ctx_t *c,
    st_jbuf *b);

/* /v1/responses: ngx_http_starling_responses.c */
ngx_int_t ngx_http_starling_responses_header(ngx_http_starling_ctx_t *ctx);
ngx_int_t ngx_http_starling_responses_tokens(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_responses_end(ngx_http_starling_ctx_t *ctx,
    const st_seq_output *out);
ngx_int_t ngx_http_starling_responses_reply(ngx_http_starling_ctx_t *ctx);

/* choices (n > 1, prompt batches): ngx_http_starling_choices.c */
ngx_int_t ngx_http_starling_choices_create(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_uint_t n_prompts,
    int32_t *const *prompt_ids, const size_t *n_prompt_ids,
    const ngx_str_t *echo_texts);
ngx_int_t ngx_http_starling_choices_submit(ngx_http_starling_ctx_t *ctx,
    st_error *err);
void ngx_http_starling_choice_output(ngx_http_starling_ctx_t *child,
    const st_seq_output *out);
void ngx_http_starling_choices_detach(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_choices_cancel(ngx_http_starling_ctx_t *ctx);
void ngx_http_starling_choices_free(ngx_http_starling_ctx_t *ctx);
/* finalizes the request with rc after the bridge's walk (posted) */
void ngx_http_starling_choices_end(ngx_http_starling_ctx_t *ctx,
    ngx_int_t rc);


#endif /* _NGX_HTTP_STARLING_OUTPUT_H_INCLUDED_ */
