
/*
 * Tenants and priorities: starling_tenant $variable [weight=N] and
 * starling_priority $variable. Each generation request is put in the
 * tenant named by the variable (an API key's tenant from map,
 * $remote_user, a header); the engine admits queued requests and shares
 * each step's prefill budget by weighted fair queueing across tenants
 * (src/engine/fair_queue.c), and orders a tenant's own requests by
 * priority (lower first). A request without a tenant (unset or empty)
 * is in the default tenant, weight 1.
 */

#include "ngx_http_starling_tenant.h"
#include "ngx_http_starling_output.h"


#define NGX_HTTP_STARLING_MAX_WEIGHT    1000
#define NGX_HTTP_STARLING_MAX_PRIORITY  1000000


char *
ngx_http_starling_tenant_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_starling_loc_conf_t *slcf = conf;

    ngx_int_t                          n;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_compile_complex_value_t   ccv;

    if (slcf->tenant != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    slcf->tenant = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (slcf->tenant == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = slcf->tenant;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    slcf->tenant_weight = 1;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "weight=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);
            if (n < 1 || n > NGX_HTTP_STARLING_MAX_WEIGHT) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid starling_tenant weight \"%V\": "
                                   "it must be between 1 and %d",
                                   &value[i], NGX_HTTP_STARLING_MAX_WEIGHT);
                return NGX_CONF_ERROR;
            }
            slcf->tenant_weight = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid starling_tenant parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* 64-bit id of a tenant name: two independent 32-bit hashes */
static uint64_t
ngx_http_starling_tenant_id(ngx_str_t *name)
{
    return ((uint64_t) ngx_crc32_long(name->data, name->len) << 32)
           | ngx_murmur_hash2(name->data, name->len);
}


ngx_int_t
ngx_http_starling_tenant_apply(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_int_t *rc)
{
    u_char                        *p, *last;
    ngx_int_t                      n;
    ngx_str_t                      v;
    ngx_uint_t                     neg;
    ngx_http_starling_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);

    ctx->sreq.tenant = 0;
    ctx->sreq.weight = 1;
    ctx->sreq.priority = 0;

    if (slcf->tenant != NULL) {
        if (ngx_http_complex_value(r, slcf->tenant, &v) != NGX_OK) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }

        if (v.len) {
            ctx->tenant = v;
            /* 0 is the default tenant */
            ctx->sreq.tenant = ngx_http_starling_tenant_id(&v) | 1;
            ctx->sreq.weight = (uint32_t) slcf->tenant_weight;
        }
    }

    if (slcf->priority != NULL) {
        if (ngx_http_complex_value(r, slcf->priority, &v) != NGX_OK) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }

        if (v.len) {
            p = v.data;
            last = v.data + v.len;
            neg = (*p == '-');
            if (neg || *p == '+') {
                p++;
            }
            n = (p < last) ? ngx_atoi(p, last - p) : NGX_ERROR;
            if (n == NGX_ERROR || n > NGX_HTTP_STARLING_MAX_PRIORITY) {
                *rc = ngx_http_starling_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                          "priority", "range",
                          "priority must be an integer between -1000000 "
                          "and 1000000");
                return NGX_DECLINED;
            }
            ctx->sreq.priority = (int32_t) (neg ? -n : n);
            ctx->priority_set = 1;
        }
    }

    return NGX_OK;
}
