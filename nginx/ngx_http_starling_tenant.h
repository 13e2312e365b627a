/*
 * Starling nginx module: tenants and priorities for fair queueing
 * (ngx_http_starling_tenant.c).
 */

#ifndef _NGX_HTTP_STARLING_TENANT_H_INCLUDED_
#define _NGX_HTTP_STARLING_TENANT_H_INCLUDED_


#include "ngx_http_starling_ctx.h"


char *ngx_http_starling_tenant_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* sets ctx->sreq's tenant, weight and priority from the location's
 * variables: NGX_OK, or NGX_DECLINED when the request was answered (a
 * bad priority: 400) with *rc the handler's return value */
ngx_int_t ngx_http_starling_tenant_apply(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_int_t *rc);


#endif /* _NGX_HTTP_STARLING_TENANT_H_INCLUDED_ */
