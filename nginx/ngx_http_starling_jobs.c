
/*
 * The job registry, shared by the workers: job_id -> owning worker and a
 * cancel flag. A job id is unique across the workers (a duplicate is
 * answered 409), and /cancel may land on any worker: the owner sees the
 * flag at its next step boundary.
 */

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_jobs.h"


static ngx_uint_t
ngx_http_starling_job_live(ngx_http_starling_job_t *job)
{
    if (job->pid == 0) {
        return 0;
    }

    /* a worker that died (crash) leaves its entries behind */
    if (kill(job->pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        job->pid = 0;
        return 0;
    }

    return 1;
}


/* NGX_OK (registered or registry full: the job runs unregistered),
 * NGX_DECLINED: a job with this id is running in some worker */
ngx_int_t
ngx_http_starling_job_register(ngx_http_starling_ctx_t *ctx)
{
    ngx_int_t                 i, free_slot;
    ngx_http_starling_job_t  *job;
    ngx_http_starling_shm_t  *shm;

    ctx->job_slot = -1;

    shm = ngx_http_starling_shm(ctx->request);
    if (shm == NULL || ctx->job_id.len > NGX_HTTP_STARLING_JOB_ID_LEN) {
        return NGX_OK;
    }

    free_slot = -1;

    ngx_spinlock(&shm->jobs_lock, ngx_pid, 1024);

    for (i = 0; i < NGX_HTTP_STARLING_JOBS; i++) {
        job = &shm->jobs[i];

        if (!ngx_http_starling_job_live(job)) {
            if (free_slot == -1) {
                free_slot = i;
            }
            continue;
        }

        if (job->len == ctx->job_id.len
            && ngx_memcmp(job->id, ctx->job_id.data, job->len) == 0)
        {
            ngx_unlock(&shm->jobs_lock);
            return NGX_DECLINED;
        }
    }

    if (free_slot != -1) {
        job = &shm->jobs[free_slot];
        job->pid = ngx_pid;
        job->cancel = 0;
        job->len = ctx->job_id.len;
        ngx_memcpy(job->id, ctx->job_id.data, job->len);
        ctx->job_slot = free_slot;
    }

    ngx_unlock(&shm->jobs_lock);

    return NGX_OK;
}


void
ngx_http_starling_job_unregister(ngx_http_starling_ctx_t *ctx)
{
    ngx_http_starling_job_t  *job;
    ngx_http_starling_shm_t  *shm;

    if (ctx->job_slot < 0) {
        return;
    }

    shm = ngx_http_starling_shm(ctx->request);
    if (shm == NULL) {
        return;
    }

    ngx_spinlock(&shm->jobs_lock, ngx_pid, 1024);

    job = &shm->jobs[ctx->job_slot];
    if (job->pid == ngx_pid) {
        job->pid = 0;
    }

    ngx_unlock(&shm->jobs_lock);

    ctx->job_slot = -1;
}


/* 1: the job runs in some worker and is now marked; 0: unknown */
ngx_int_t
ngx_http_starling_job_cancel(ngx_http_request_t *r, u_char *id, size_t len)
{
    ngx_int_t                 i, found;
    ngx_http_starling_job_t  *job;
    ngx_http_starling_shm_t  *shm;

    shm = ngx_http_starling_shm(r);
    if (shm == NULL) {
        return 0;
    }

    found = 0;

    ngx_spinlock(&shm->jobs_lock, ngx_pid, 1024);

    for (i = 0; i < NGX_HTTP_STARLING_JOBS; i++) {
        job = &shm->jobs[i];
        if (ngx_http_starling_job_live(job) && job->len == len
            && ngx_memcmp(job->id, id, len) == 0)
        {
            job->cancel = 1;
            found = 1;
            break;
        }
    }

    ngx_unlock(&shm->jobs_lock);

    return found;
}


/* owner side, between steps: was the job cancelled from another worker? */
ngx_uint_t
ngx_http_starling_job_cancelled(ngx_http_starling_ctx_t *ctx)
{
    ngx_http_starling_shm_t  *shm;

    if (ctx->job_slot < 0) {
        return 0;
    }

    shm = ngx_http_starling_shm(ctx->request);

    return shm != NULL && shm->jobs[ctx->job_slot].cancel;
}
