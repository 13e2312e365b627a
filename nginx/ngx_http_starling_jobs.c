
/*
 * The job registry, shared by the workers: job_id -> owning worker and a
 * cancel flag. A job id is unique across the workers (a duplicate is
 * answered 409), and /cancel may land on any worker: the owner sees the
 * flag at its next step boundary.
 *
 * The registry is an rbtree in the shared zone's slab pool, keyed by the
 * crc32 of the job id (the id itself is compared on a collision), under
 * the slab pool's mutex. An entry is removed by its request's pool
 * cleanup, on every path. A worker that dies leaves its entries behind:
 * they are dropped when a lookup meets one, when the zone is full, and
 * when a worker starts (the master respawns a worker that crashed).
 */

#include "ngx_http_starling_jobs.h"


/* longer ids run unregistered (the API layer allows up to
 * ST_API_MAX_JOB_ID) */
#define NGX_HTTP_STARLING_JOB_ID_LEN  128


struct ngx_http_starling_job_s {
    ngx_rbtree_node_t   node;              /* key: crc32 of the id */
    ngx_pid_t           pid;               /* owning worker */
    ngx_atomic_t        cancel;            /* set by any worker */
    ngx_atomic_t        ended;             /* the engine is done with it;
                                              output may still be going
                                              out (set by the owner) */
    size_t              len;
    u_char              id[1];
};


static void ngx_http_starling_job_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_starling_job_t *ngx_http_starling_job_lookup(
    ngx_slab_pool_t *shpool, ngx_http_starling_shm_t *shm, uint32_t hash,
    u_char *id, size_t len, ngx_log_t *log);
static ngx_uint_t ngx_http_starling_job_dead(ngx_http_starling_job_t *job);
static ngx_uint_t ngx_http_starling_jobs_sweep_locked(
    ngx_slab_pool_t *shpool, ngx_http_starling_shm_t *shm, ngx_log_t *log);


void
ngx_http_starling_jobs_init(ngx_http_starling_shm_t *shm)
{
    ngx_rbtree_init(&shm->jobs, &shm->jobs_sentinel,
                    ngx_http_starling_job_insert);
}


static void
ngx_http_starling_job_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t       **p;
    ngx_http_starling_job_t  *j, *jt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            j = (ngx_http_starling_job_t *) node;
            jt = (ngx_http_starling_job_t *) temp;

            p = (ngx_memn2cmp(j->id, jt->id, j->len, jt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* a worker that died (crash) leaves its entries behind */
static ngx_uint_t
ngx_http_starling_job_dead(ngx_http_starling_job_t *job)
{
    if (job->pid == ngx_pid) {
        return 0;
    }

    return kill(job->pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


/* slab pool locked; an entry of a dead worker met here is dropped */
static ngx_http_starling_job_t *
ngx_http_starling_job_lookup(ngx_slab_pool_t *shpool,
    ngx_http_starling_shm_t *shm, uint32_t hash, u_char *id, size_t len,
    ngx_log_t *log)
{
    ngx_int_t                 rc;
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_http_starling_job_t  *job;

    node = shm->jobs.root;
    sentinel = shm->jobs.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        job = (ngx_http_starling_job_t *) node;

        rc = ngx_memn2cmp(id, job->id, len, job->len);

        if (rc == 0) {
            if (ngx_http_starling_job_dead(job)) {
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                               "starling job: dropping entry of dead "
                               "worker %P", job->pid);
                ngx_rbtree_delete(&shm->jobs, &job->node);
                ngx_slab_free_locked(shpool, job);
                return NULL;
            }

            return job;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* slab pool locked; returns how many entries were dropped */
static ngx_uint_t
ngx_http_starling_jobs_sweep_locked(ngx_slab_pool_t *shpool,
    ngx_http_starling_shm_t *shm, ngx_log_t *log)
{
    ngx_uint_t                n;
    ngx_rbtree_node_t        *node, *next;
    ngx_http_starling_job_t  *job;

    n = 0;

    if (shm->jobs.root == shm->jobs.sentinel) {
        return 0;
    }

    /* ngx_rbtree_delete() relinks nodes, it does not move them: the
     * successor taken before a delete is still the next one after it */
    for (node = ngx_rbtree_min(shm->jobs.root, shm->jobs.sentinel);
         node != NULL;
         node = next)
    {
        next = ngx_rbtree_next(&shm->jobs, node);
        job = (ngx_http_starling_job_t *) node;

        if (ngx_http_starling_job_dead(job)) {
            ngx_rbtree_delete(&shm->jobs, node);
            ngx_slab_free_locked(shpool, job);
            n++;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "starling job: swept %ui entries of dead workers", n);

    return n;
}


void
ngx_http_starling_jobs_sweep(ngx_shm_zone_t *zone, ngx_log_t *log)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_starling_shm_t  *shm;

    if (zone == NULL || zone->data == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    shm = zone->data;

    ngx_shmtx_lock(&shpool->mutex);
    (void) ngx_http_starling_jobs_sweep_locked(shpool, shm, log);
    ngx_shmtx_unlock(&shpool->mutex);
}


/* NGX_OK (registered, or the zone is full: the job runs unregistered),
 * NGX_DECLINED: a job with this id is running in some worker */
ngx_int_t
ngx_http_starling_job_register(ngx_http_starling_ctx_t *ctx)
{
    size_t                    size;
    uint32_t                  hash;
    ngx_log_t                *log;
    ngx_shm_zone_t           *zone;
    ngx_slab_pool_t          *shpool;
    ngx_http_starling_job_t  *job;
    ngx_http_starling_shm_t  *shm;

    ctx->job = NULL;
    log = ctx->request->connection->log;

    zone = ngx_http_starling_shm_zone(ctx->request);
    if (zone == NULL || zone->data == NULL
        || ctx->job_id.len > NGX_HTTP_STARLING_JOB_ID_LEN)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, log, 0,
                       "starling job: not registered (no zone or long id)");
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    shm = zone->data;
    hash = ngx_crc32_short(ctx->job_id.data, ctx->job_id.len);

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_starling_job_lookup(shpool, shm, hash, ctx->job_id.data,
                                     ctx->job_id.len, log)
        != NULL)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, log, 0,
                       "starling job: duplicate job_id");
        return NGX_DECLINED;
    }

    size = offsetof(ngx_http_starling_job_t, id) + ctx->job_id.len;

    job = ngx_slab_alloc_locked(shpool, size);

    if (job == NULL
        && ngx_http_starling_jobs_sweep_locked(shpool, shm, log) > 0)
    {
        job = ngx_slab_alloc_locked(shpool, size);
    }

    if (job == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "starling: job registry in shared zone \"%V\" is "
                      "full; the job runs unregistered (no duplicate "
                      "check, /cancel only on this worker)",
                      &zone->shm.name);
        return NGX_OK;
    }

    job->node.key = hash;
    job->pid = ngx_pid;
    job->cancel = 0;
    job->ended = 0;
    job->len = ctx->job_id.len;
    ngx_memcpy(job->id, ctx->job_id.data, job->len);

    ngx_rbtree_insert(&shm->jobs, &job->node);

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->job = job;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "starling job: registered %p, hash %uD", job, hash);

    return NGX_OK;
}


/* request pool cleanup: every path that registered comes here */
void
ngx_http_starling_job_unregister(ngx_http_starling_ctx_t *ctx)
{
    ngx_shm_zone_t   *zone;
    ngx_slab_pool_t  *shpool;

    if (ctx->job == NULL) {
        return;
    }

    zone = ngx_http_starling_shm_zone(ctx->request);
    if (zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    /* only the owner removes a live worker's entry */
    ngx_rbtree_delete(&((ngx_http_starling_shm_t *) zone->data)->jobs,
                      &ctx->job->node);
    ngx_slab_free_locked(shpool, ctx->job);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "starling job: unregistered %p", ctx->job);

    ctx->job = NULL;
}


/* 1: the job runs in some worker and is now marked; 2: the engine has
 * finished it (its output is still being delivered); 0: unknown */
ngx_int_t
ngx_http_starling_job_cancel(ngx_http_request_t *r, u_char *id, size_t len)
{
    ngx_int_t                 found;
    ngx_shm_zone_t           *zone;
    ngx_slab_pool_t          *shpool;
    ngx_http_starling_job_t  *job;

    zone = ngx_http_starling_shm_zone(r);
    if (zone == NULL || zone->data == NULL
        || len > NGX_HTTP_STARLING_JOB_ID_LEN)
    {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    job = ngx_http_starling_job_lookup(shpool, zone->data,
                                       ngx_crc32_short(id, len), id, len,
                                       r->connection->log);
    found = 0;

    if (job != NULL && job->ended) {
        found = 2;

    } else if (job != NULL) {
        job->cancel = 1;
        found = 1;
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "starling job: cancel flagged for worker %P",
                       job->pid);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "starling job: cancel in the registry: %s",
                   found ? "found" : "not found");

    return found;
}


/* owner side, between steps: was the job cancelled from another worker?
 * (the entry is ours until our cleanup removes it; the flag is atomic) */
ngx_uint_t
ngx_http_starling_job_cancelled(ngx_http_starling_ctx_t *ctx)
{
    return ctx->job != NULL && ctx->job->cancel;
}


/* owner side: the engine no longer runs the job (it finished or the
 * request is ending); a /cancel from now on has nothing to stop */
void
ngx_http_starling_job_ended(ngx_http_starling_ctx_t *ctx)
{
    if (ctx->job != NULL) {
        ctx->job->ended = 1;
    }
}
