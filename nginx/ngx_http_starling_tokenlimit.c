
/*
 * Token budgets: starling_token_limit_zone KEY zone=NAME:SIZE and
 * starling_token_limit zone=NAME rate=N/m [burst=M].
 *
 * A token bucket per key (any nginx variable, as limit_req), kept in a
 * shared-memory zone so that every worker charges the same budget: it
 * holds `burst` tokens and refills at `rate` tokens per minute. A request
 * is admitted while its key has at least one token; its prompt tokens
 * are charged when it is submitted and its completion tokens when it
 * ends, however it ends. A request that finds no token is answered 429
 * with Retry-After (seconds until one token is back) before any work is
 * done. A stream that spends the budget mid-way is not cut: it finishes,
 * and what it spent beyond the budget is debt (the bucket goes below
 * zero) that later requests wait out. Every response of a limited
 * location carries RateLimit-Limit, RateLimit-Remaining and
 * RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers).
 *
 * Amounts are kept in units of 1/60000 token, so that a refill of
 * `rate` tokens per minute is exactly `rate` units per millisecond.
 */

#include "ngx_http_starling_tokenlimit.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_output.h"


#define NGX_HTTP_STARLING_TL_UNIT      60000     /* units per token */
#define NGX_HTTP_STARLING_TL_MAX_RATE  100000000 /* tokens per minute */


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;           /* most recent first */
} ngx_http_starling_tl_shctx_t;


typedef struct {
    ngx_http_starling_tl_shctx_t *sh;
    ngx_slab_pool_t              *shpool;
    ngx_http_complex_value_t      key;
} ngx_http_starling_tl_zone_t;


typedef struct {
    ngx_str_node_t                sn;            /* key, in the zone */
    ngx_queue_t                   lru;
    ngx_msec_t                    last;          /* last refill */
    int64_t                       units;         /* < 0: debt */
    uint32_t                      rate;          /* of the last update */
    uint32_t                      burst;
} ngx_http_starling_tl_node_t;


static ngx_int_t ngx_http_starling_tl_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_http_starling_tl_node_t *ngx_http_starling_tl_get(
    ngx_http_starling_tl_zone_t *z, ngx_str_t *key, uint32_t hash,
    ngx_uint_t rate, ngx_uint_t burst, ngx_log_t *log);
static void ngx_http_starling_tl_refill(ngx_http_starling_tl_node_t *n,
    ngx_uint_t rate, ngx_uint_t burst);
static void ngx_http_starling_tl_expire(ngx_http_starling_tl_zone_t *z,
    ngx_uint_t force);
static ngx_int_t ngx_http_starling_tl_headers(ngx_http_request_t *r,
    ngx_http_starling_token_limit_conf_t *tl, int64_t units,
    ngx_uint_t retry_s);


/* ---- configuration -------------------------------------------------- */

char *
ngx_http_starling_token_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char                            *p;
    ssize_t                            size;
    ngx_str_t                         *value, name, s;
    ngx_uint_t                         i;
    ngx_shm_zone_t                    *shm_zone;
    ngx_http_starling_tl_zone_t       *z;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_starling_tl_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &z->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    size = 0;
    name.len = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');
            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;
            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_starling_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" is already bound to key \"%V\"",
                           &cmd->name, &name,
                           &((ngx_http_starling_tl_zone_t *)
                             shm_zone->data)->key.value);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_starling_tl_init_zone;
    shm_zone->data = z;

    return NGX_CONF_OK;
}


char *
ngx_http_starling_token_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_starling_loc_conf_t *slcf = conf;

    u_char                                *p;
    ngx_int_t                              n;
    ngx_str_t                             *value, s;
    ngx_uint_t                             i;
    ngx_shm_zone_t                        *shm_zone;
    ngx_http_starling_token_limit_conf_t  *tl;

    if (slcf->token_limit != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tl = ngx_pcalloc(cf->pool, sizeof(ngx_http_starling_token_limit_conf_t));
    if (tl == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone = NULL;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.len = value[i].len - 5;
            s.data = value[i].data + 5;

            shm_zone = ngx_shared_memory_add(cf, &s, 0,
                                             &ngx_http_starling_module);
            if (shm_zone == NULL) {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            p = value[i].data + value[i].len - 2;
            if (value[i].len < 8 || ngx_strncmp(p, "/m", 2) != 0) {
                goto invalid;
            }
            n = ngx_atoi(value[i].data + 5, value[i].len - 7);
            if (n <= 0 || n > NGX_HTTP_STARLING_TL_MAX_RATE) {
                goto invalid;
            }
            tl->rate = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n <= 0 || n > NGX_HTTP_STARLING_TL_MAX_RATE) {
                goto invalid;
            }
            tl->burst = (ngx_uint_t) n;
            continue;
        }

        goto invalid;
    }

    if (shm_zone == NULL || tl->rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs zone=NAME and rate=N/m",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* default: one minute's worth */
    if (tl->burst == 0) {
        tl->burst = tl->rate;
    }

    tl->zone = shm_zone;
    slcf->token_limit = tl;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid starling_token_limit parameter \"%V\" "
                       "(rate=N/m with N 1-%d, burst=N)", &value[i],
                       NGX_HTTP_STARLING_TL_MAX_RATE);
    return NGX_CONF_ERROR;
}


/* merge: a zone named by starling_token_limit must be declared */
char *
ngx_http_starling_token_limit_merge(ngx_conf_t *cf,
    ngx_http_starling_token_limit_conf_t *tl)
{
    if (tl != NULL && tl->zone->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown starling_token_limit zone \"%V\" "
                           "(declare it with starling_token_limit_zone)",
                           &tl->zone->shm.name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_starling_tl_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_starling_tl_zone_t  *oz = data;

    size_t                        len;
    ngx_http_starling_tl_zone_t  *z;

    z = zone->data;

    if (oz) {
        if (z->key.value.len != oz->key.value.len
            || ngx_strncmp(z->key.value.data, oz->key.value.data,
                           z->key.value.len) != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0,
                          "starling_token_limit_zone \"%V\" uses the key "
                          "\"%V\" while previously it used \"%V\"",
                          &zone->shm.name, &z->key.value, &oz->key.value);
            return NGX_ERROR;
        }

        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_alloc(z->shpool, sizeof(ngx_http_starling_tl_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&z->sh->lru);

    len = sizeof(" in starling_token_limit_zone \"\"") + zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in starling_token_limit_zone \"%V\"%Z",
                &zone->shm.name);

    return NGX_OK;
}


/* ---- the bucket (under the zone's mutex) ----------------------------- */

static void
ngx_http_starling_tl_refill(ngx_http_starling_tl_node_t *n, ngx_uint_t rate,
    ngx_uint_t burst)
{
    int64_t         full;
    ngx_msec_int_t  ms;

    ms = (ngx_msec_int_t) (ngx_current_msec - n->last);
    if (ms > 0) {
        full = (int64_t) burst * NGX_HTTP_STARLING_TL_UNIT;
        /* ms < 2^31 and rate <= 10^8: no overflow */
        n->units += (int64_t) ms * (int64_t) rate;
        if (n->units > full) {
            n->units = full;
        }
    }

    n->last = ngx_current_msec;
    n->rate = (uint32_t) rate;
    n->burst = (uint32_t) burst;
}


/* drops least recently used buckets: those already full again (they
 * hold nothing a new bucket would not), or any when memory is short */
static void
ngx_http_starling_tl_expire(ngx_http_starling_tl_zone_t *z,
    ngx_uint_t force)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_http_starling_tl_node_t  *n;

    for (i = 0; i < (force ? 16 : 2); i++) {
        if (ngx_queue_empty(&z->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&z->sh->lru);
        n = ngx_queue_data(q, ngx_http_starling_tl_node_t, lru);

        if (!force) {
            ngx_http_starling_tl_refill(n, n->rate, n->burst);
            if (n->units < (int64_t) n->burst * NGX_HTTP_STARLING_TL_UNIT) {
                return;
            }
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&z->sh->rbtree, &n->sn.node);
        ngx_slab_free_locked(z->shpool, n);
    }
}


static ngx_http_starling_tl_node_t *
ngx_http_starling_tl_get(ngx_http_starling_tl_zone_t *z, ngx_str_t *key,
    uint32_t hash, ngx_uint_t rate, ngx_uint_t burst, ngx_log_t *log)
{
    ngx_str_node_t               *sn;
    ngx_http_starling_tl_node_t  *n;

    sn = ngx_str_rbtree_lookup(&z->sh->rbtree, key, hash);

    if (sn != NULL) {
        n = (ngx_http_starling_tl_node_t *) sn;
        ngx_queue_remove(&n->lru);
        ngx_queue_insert_head(&z->sh->lru, &n->lru);
        ngx_http_starling_tl_refill(n, rate, burst);
        return n;
    }

    ngx_http_starling_tl_expire(z, 0);

    n = ngx_slab_alloc_locked(z->shpool,
                              sizeof(ngx_http_starling_tl_node_t) + key->len);
    if (n == NULL) {
        ngx_http_starling_tl_expire(z, 1);
        n = ngx_slab_alloc_locked(z->shpool,
                                  sizeof(ngx_http_starling_tl_node_t)
                                  + key->len);
        if (n == NULL) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "starling: could not allocate a token bucket%s",
                          z->shpool->log_ctx);
            return NULL;
        }
    }

    n->sn.node.key = hash;
    n->sn.str.len = key->len;
    n->sn.str.data = (u_char *) n + sizeof(ngx_http_starling_tl_node_t);
    ngx_memcpy(n->sn.str.data, key->data, key->len);

    n->units = (int64_t) burst * NGX_HTTP_STARLING_TL_UNIT;
    n->last = ngx_current_msec;
    n->rate = (uint32_t) rate;
    n->burst = (uint32_t) burst;

    ngx_rbtree_insert(&z->sh->rbtree, &n->sn.node);
    ngx_queue_insert_head(&z->sh->lru, &n->lru);

    return n;
}


/* ---- requests ------------------------------------------------------- */

static ngx_int_t
ngx_http_starling_tl_headers(ngx_http_request_t *r,
    ngx_http_starling_token_limit_conf_t *tl, int64_t units,
    ngx_uint_t retry_s)
{
    u_char            *p;
    int64_t            missing;
    ngx_uint_t         i, remaining, reset_s;
    ngx_table_elt_t   *h;
    static ngx_str_t   names[] = {
        ngx_string("RateLimit-Limit"),
        ngx_string("RateLimit-Remaining"),
        ngx_string("RateLimit-Reset"),
        ngx_string("Retry-After")
    };

    remaining = units > 0 ? (ngx_uint_t) (units / NGX_HTTP_STARLING_TL_UNIT)
                          : 0;

    /* seconds until the bucket is full again */
    missing = (int64_t) tl->burst * NGX_HTTP_STARLING_TL_UNIT - units;
    reset_s = missing > 0
              ? (ngx_uint_t) ((missing + (int64_t) tl->rate * 1000 - 1)
                              / ((int64_t) tl->rate * 1000))
              : 0;

    for (i = 0; i < (retry_s ? 4 : 3); i++) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        h = ngx_list_push(&r->headers_out.headers);
        if (p == NULL || h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key = names[i];
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%ui", i == 0 ? tl->burst
                                             : i == 1 ? remaining
                                             : i == 2 ? reset_s
                                             : retry_s) - p;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_starling_token_limit_check(ngx_http_request_t *r,
    ngx_http_starling_ctx_t *ctx, ngx_int_t *rc)
{
    int64_t                                units;
    uint32_t                               hash;
    ngx_str_t                              key;
    ngx_uint_t                             retry_s;
    ngx_http_starling_tl_node_t           *n;
    ngx_http_starling_tl_zone_t           *z;
    ngx_http_starling_loc_conf_t          *slcf;
    ngx_http_starling_token_limit_conf_t  *tl;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_starling_module);
    tl = slcf->token_limit;

    if (tl == NULL) {
        return NGX_OK;
    }

    z = tl->zone->data;

    if (ngx_http_complex_value(r, &z->key, &key) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    /* an empty key is not limited (as limit_req) */
    if (key.len == 0) {
        return NGX_OK;
    }

    if (key.len > 65535) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "starling: the value of the token limit key \"%V\" "
                      "is longer than 65535 bytes", &z->key.value);
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(key.data, key.len);

    ngx_shmtx_lock(&z->shpool->mutex);

    n = ngx_http_starling_tl_get(z, &key, hash, tl->rate, tl->burst,
                                 r->connection->log);
    units = n ? n->units : 0;

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (n == NULL) {
        *rc = NGX_HTTP_SERVICE_UNAVAILABLE;
        return NGX_DECLINED;
    }

    ctx->token_limit = tl;
    ctx->token_limit_key = key;
    ctx->token_limit_hash = hash;

    if (units >= NGX_HTTP_STARLING_TL_UNIT) {
        if (ngx_http_starling_tl_headers(r, tl, units, 0) != NGX_OK) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }
        return NGX_OK;
    }

    /* over budget: seconds until one whole token is back */
    ctx->token_limit = NULL;
    retry_s = (ngx_uint_t) ((NGX_HTTP_STARLING_TL_UNIT - units
                             + (int64_t) tl->rate * 1000 - 1)
                            / ((int64_t) tl->rate * 1000));

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "starling: token budget of \"%V\" spent (%L tokens), "
                  "retry after %ui s", &key,
                  units / NGX_HTTP_STARLING_TL_UNIT, retry_s);

    ngx_http_starling_stat(r, NGX_HTTP_STARLING_STAT_BUDGET);

    if (ngx_http_starling_tl_headers(r, tl, units, retry_s) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    *rc = ngx_http_starling_error_status(r, ctx, NGX_HTTP_TOO_MANY_REQUESTS,
                                         "rate_limit_error", NULL,
                                         "token_budget_exceeded",
                                         "the token budget of this client "
                                         "is spent; retry later");
    return NGX_DECLINED;
}


void
ngx_http_starling_token_limit_charge(ngx_http_starling_ctx_t *ctx,
    ngx_uint_t tokens)
{
    ngx_http_starling_tl_node_t           *n;
    ngx_http_starling_tl_zone_t           *z;
    ngx_http_starling_token_limit_conf_t  *tl;

    tl = ctx->token_limit;

    if (tl == NULL || tokens == 0) {
        return;
    }

    z = tl->zone->data;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* the bucket may have been dropped for memory meanwhile: a new one
     * starts full and takes the charge */
    n = ngx_http_starling_tl_get(z, &ctx->token_limit_key,
                                 ctx->token_limit_hash, tl->rate, tl->burst,
                                 ctx->request->connection->log);
    if (n != NULL) {
        n->units -= (int64_t) tokens * NGX_HTTP_STARLING_TL_UNIT;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}
