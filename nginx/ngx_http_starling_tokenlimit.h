/*
 * Starling nginx module: token budgets per key in a shared zone
 * (ngx_http_starling_tokenlimit.c).
 */

#ifndef _NGX_HTTP_STARLING_TOKENLIMIT_H_INCLUDED_
#define _NGX_HTTP_STARLING_TOKENLIMIT_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


struct ngx_http_starling_token_limit_conf_s {
    ngx_shm_zone_t             *zone;
    ngx_uint_t                  rate;            /* tokens per minute */
    ngx_uint_t                  burst;           /* bucket size, tokens */
};


char *ngx_http_starling_token_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_starling_token_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_starling_token_limit_merge(ngx_conf_t *cf,
    ngx_http_starling_token_limit_conf_t *tl);

/* before any work: NGX_OK admits the request (RateLimit-* headers set);
 * NGX_DECLINED means it was answered (429, or an error), *rc is the
 * handler's return value */
ngx_int_t ngx_http_starling_token_limit_check(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_int_t *rc);
/* charge tokens to the request's key (may leave a debt) */
void ngx_http_starling_token_limit_charge(ngx_http_starling_ctx_t *ctx,
    ngx_uint_t tokens);


#endif /* _NGX_HTTP_STARLING_TOKENLIMIT_H_INCLUDED_ */
