
/*
 * The bridge between the event loop and the engine thread.
 *
 * Ownership rule (DESIGN.md, "one step in flight"): while a task is
 * posted (m->in_flight), the pool thread owns the engine; the event loop
 * does not touch it. Between steps the event loop owns it: the completion
 * handler takes every live sequence's output, submits requests that
 * arrived during the step, releases sequences whose clients went away,
 * and posts the next step while the engine has work. The thread pool's
 * queue (a mutex) is the memory barrier of the hand-off.
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_handlers.h"


static void ngx_http_starling_load_thread(void *data, ngx_log_t *log);
static void ngx_http_starling_step_thread(void *data, ngx_log_t *log);
static void ngx_http_starling_task_done(ngx_event_t *ev);
static void ngx_http_starling_between_steps(ngx_http_starling_model_t *m);
static void ngx_http_starling_post(ngx_http_starling_model_t *m,
    ngx_uint_t load);


ngx_int_t
ngx_http_starling_bridge_init(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf)
{
    ngx_uint_t                  i;
    ngx_thread_pool_t          *tp;
    ngx_http_starling_model_t  *m;

    tp = ngx_thread_pool_get(cycle, &smcf->pool_name);
    if (tp == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "starling: thread pool \"%V\" not found",
                      &smcf->pool_name);
        return NGX_ERROR;
    }

    smcf->pool = tp;
    m = smcf->models.elts;

    ngx_http_starling_metrics_attach(cycle, smcf);

    for (i = 0; i < smcf->models.nelts; i++) {
        m[i].pool = tp;
        m[i].log = cycle->log;
        m[i].engine = NULL;
        m[i].info = NULL;
        m[i].loaded = 0;
        m[i].load_failed = 0;
        m[i].in_flight = 0;
        m[i].n_live = 0;
        m[i].n_waiting = 0;
        ngx_queue_init(&m[i].live);
        ngx_queue_init(&m[i].waiting);
        ngx_queue_init(&m[i].session_ops);

        m[i].orphans = ngx_array_create(cycle->pool, 8, sizeof(st_seq *));
        if (m[i].orphans == NULL) {
            return NGX_ERROR;
        }

        m[i].task = ngx_thread_task_alloc(cycle->pool, 0);
        if (m[i].task == NULL) {
            return NGX_ERROR;
        }

        m[i].task->ctx = &m[i];
        m[i].task->event.data = &m[i];
        m[i].task->event.handler = ngx_http_starling_task_done;

        /* the load runs on the pool thread: the worker keeps answering
         * (/ready says 503) while a large model is read and checked */
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "starling: model \"%V\" loading from \"%V\"",
                      &m[i].name, &m[i].path);
        ngx_http_starling_post(&m[i], 1);
    }

    return NGX_OK;
}


void
ngx_http_starling_bridge_exit(ngx_cycle_t *cycle,
    ngx_http_starling_main_conf_t *smcf)
{
    ngx_uint_t                  i, k;
    ngx_queue_t                *head, *q;
    ngx_http_starling_ctx_t    *ctx;
    ngx_http_starling_model_t  *m;

    (void) cycle;

    /* the thread pools have been joined by now (ngx_thread_pool_module's
     * exit_process runs before ours), so no step is running */

    m = smcf->models.elts;

    for (i = 0; i < smcf->models.nelts; i++) {

        /* a terminated worker (SIGTERM, nginx -s stop) exits with its
         * requests open and their pool cleanups never run: count them
         * out of the shared gauge and drop their job ids here */
        for (k = 0; k < 2; k++) {
            head = k ? &m[i].waiting : &m[i].live;
            if (head->next == NULL) {
                continue;                   /* not initialised */
            }
            for (q = ngx_queue_head(head); q != ngx_queue_sentinel(head);
                 q = ngx_queue_next(q))
            {
                ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);
                ngx_http_starling_count_finish(ctx->request, ctx);
                ngx_http_starling_job_unregister(ctx);
            }
        }
        if (m[i].engine != NULL) {
            st_engine_free(m[i].engine);
            m[i].engine = NULL;
        }
        m[i].loaded = 0;
    }

    ngx_http_starling_metrics_detach(smcf);
}


static void
ngx_http_starling_post(ngx_http_starling_model_t *m, ngx_uint_t load)
{
    m->task_is_load = load;
    m->task->handler = load ? ngx_http_starling_load_thread
                            : ngx_http_starling_step_thread;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, m->log, 0,
                   "starling: post %s, model \"%V\", %ui live, "
                   "%ui waiting", load ? "load" : "step", &m->name,
                   m->n_live, m->n_waiting);

    if (ngx_thread_task_post(m->pool, m->task) != NGX_OK) {
        /* the pool queue is full (max_queue) or the task is active; the
         * next completion or request retries */
        ngx_log_error(NGX_LOG_ALERT, m->log, 0,
                      "starling: cannot post a task for model \"%V\"",
                      &m->name);
        return;
    }

    m->in_flight = 1;
}


/* pool thread */
static void
ngx_http_starling_load_thread(void *data, ngx_log_t *log)
{
    ngx_http_starling_model_t *m = data;

    u_char            *path, *sha;
    struct timespec    t0, t1;
    st_engine_params   p;

    (void) log;

    st_engine_params_default(&p);

    /* ngx_str_t values from the configuration are not NUL-terminated
     * where they come from a directive argument; path was made full by
     * ngx_conf_full_name (terminated); copy both to be sure */
    path = malloc(m->path.len + 1);
    sha = malloc(m->sha256.len + 1);
    if (path == NULL || sha == NULL) {
        free(path);
        free(sha);
        m->task_rc = st_error_set(&m->task_err, ST_ERR_NOMEM,
                                  "out of memory");
        return;
    }

    ngx_memcpy(path, m->path.data, m->path.len);
    path[m->path.len] = '\0';
    if (m->sha256.len) {
        ngx_memcpy(sha, m->sha256.data, m->sha256.len);
    }
    sha[m->sha256.len] = '\0';

    p.path = (const char *) path;
    p.sha256 = m->sha256.len ? (const char *) sha : NULL;
    p.backend = m->backend;
    p.n_ctx = (uint32_t) m->n_ctx;
    p.n_threads = (uint32_t) m->n_threads;
    p.max_seqs = (uint32_t) m->max_seqs;
    p.kv_bytes = (uint64_t) m->kv_bytes;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    m->task_rc = st_engine_create(&m->engine, &p, &m->task_err);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    m->step_ms = (t1.tv_sec - t0.tv_sec) * 1e3
                 + (t1.tv_nsec - t0.tv_nsec) / 1e6;

    free(path);
    free(sha);
}


/* pool thread */
static void
ngx_http_starling_step_thread(void *data, ngx_log_t *log)
{
    ngx_http_starling_model_t *m = data;

    struct timespec  t0, t1;

    (void) log;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    m->task_rc = st_engine_step(m->engine, &m->task_err);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    m->step_ms = (t1.tv_sec - t0.tv_sec) * 1e3
                 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
}


/* event loop */
static void
ngx_http_starling_task_done(ngx_event_t *ev)
{
    ngx_http_starling_model_t *m = ev->data;

    m->in_flight = 0;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, m->log, 0,
                   "starling: %s done, model \"%V\", rc %d, %.3f ms",
                   m->task_is_load ? "load" : "step", &m->name,
                   (int) m->task_rc, m->step_ms);

    if (m->task_is_load) {
        if (m->task_rc != ST_OK) {
            m->engine = NULL;
            m->load_failed = 1;
            ngx_log_error(NGX_LOG_EMERG, m->log, 0,
                          "starling: model \"%V\" (%s:%ui) failed to load: "
                          "%s", &m->name, m->file, m->line,
                          m->task_err.msg);
        } else {
            m->info = st_engine_info(m->engine);
            m->loaded = 1;
            ngx_http_starling_session_store_init(m);
            if (m->info->backend_note[0] != '\0') {
                ngx_log_error(NGX_LOG_WARN, m->log, 0,
                              "starling: model \"%V\": %s", &m->name,
                              m->info->backend_note);
            }
            /* one summary line per model and worker */
            ngx_log_error(NGX_LOG_NOTICE, m->log, 0,
                          "starling: model \"%V\" loaded in %.0f ms: %s "
                          "%s, %.2fM params, weights %.1f MiB, KV cache "
                          "%.1f MiB (%uD blocks), %s tokenizer, vocab %uD, "
                          "ctx %uD, backend %s",
                          &m->name, m->step_ms, m->info->arch,
                          m->info->quant_kind, m->info->n_params / 1e6,
                          m->info->weight_bytes / 1048576.0,
                          m->info->kv_bytes / 1048576.0,
                          m->info->kv_blocks_total,
                          m->info->tokenizer_kind, m->info->n_vocab,
                          m->info->n_ctx, m->info->backend);
        }

    } else if (m->task_rc != ST_OK) {
        /* the engine reports the failure to every active sequence */
        ngx_log_error(NGX_LOG_ERR, m->log, 0,
                      "starling: step failed for model \"%V\": %s",
                      &m->name, m->task_err.msg);
    }

    ngx_http_starling_between_steps(m);

    ngx_http_starling_metrics_publish(
        ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                            ngx_http_starling_module), m);
}


/*
 * Event loop, engine idle: deliver output, release orphans, submit
 * waiting requests, post the next step.
 */
static void
ngx_http_starling_between_steps(ngx_http_starling_model_t *m)
{
    st_seq                   **orphan;
    ngx_uint_t                 i;
    ngx_queue_t               *q, *next, pending;
    st_error                   err;
    st_seq_output              out;
    ngx_http_starling_ctx_t   *ctx;

    m->between = 1;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, m->log, 0,
                   "starling: between steps, model \"%V\": %ui live, "
                   "%ui waiting, %ui orphans", &m->name, m->n_live,
                   m->n_waiting, m->orphans->nelts);

    if (!m->loaded) {
        /* load failed: fail everyone who waited for it */
        while (!ngx_queue_empty(&m->waiting)) {
            q = ngx_queue_head(&m->waiting);
            ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);
            ngx_queue_remove(q);
            ctx->queued_in = 0;
            m->n_waiting--;
            ngx_memzero(&out, sizeof(st_seq_output));
            out.finish = ST_FINISH_ERROR;
            ngx_cpystrn((u_char *) out.error, (u_char *) "model not loaded",
                        sizeof(out.error));
            ngx_http_starling_on_output(ctx, &out);
        }
        m->between = 0;
        return;
    }

    /* sequences whose requests died during the step */
    orphan = m->orphans->elts;
    for (i = 0; i < m->orphans->nelts; i++) {
        st_seq_cancel(orphan[i]);
        st_seq_release(m->engine, orphan[i]);
    }
    m->orphans->nelts = 0;

    /* output of the step; on_output may finalize the request, whose
     * cleanup unlinks only that ctx, so keep the next link first */
    for (q = ngx_queue_head(&m->live); q != ngx_queue_sentinel(&m->live);
         q = next)
    {
        next = ngx_queue_next(q);
        ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);

        if (ctx->cancel_requested == 0
            && ngx_http_starling_job_cancelled(ctx))
        {
            ctx->cancel_requested = 1;          /* /cancel elsewhere */
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log,
                           0, "starling: cancelled from another worker");
        }

        if (ctx->cancel_requested == 1) {
            st_seq_cancel(ctx->seq);
            ctx->cancel_requested = 2;
        }

        st_seq_take(ctx->seq, &out);
        ngx_http_starling_on_output(ctx, &out);
    }

    /* requests that arrived during the step; taken off the list first,
     * so that whatever submit() does with one cannot make this loop
     * revisit it */
    ngx_queue_init(&pending);
    if (!ngx_queue_empty(&m->waiting)) {
        ngx_queue_add(&pending, &m->waiting);
        ngx_queue_init(&m->waiting);
    }

    while (!ngx_queue_empty(&pending)) {
        q = ngx_queue_head(&pending);
        ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);
        ngx_queue_remove(q);
        ctx->queued_in = 0;
        m->n_waiting--;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "starling: submitting a request that waited");

        if (ngx_http_starling_submit(ctx, &err) != NGX_OK) {
            ngx_memzero(&out, sizeof(st_seq_output));
            out.finish = ST_FINISH_ERROR;
            ngx_cpystrn((u_char *) out.error, (u_char *) err.msg,
                        sizeof(out.error));
            ngx_http_starling_on_output(ctx, &out);
        }
    }

    /* session close/list requests that arrived during the step */
    ngx_http_starling_session_ops(m);

    /* /health and /metrics read this copy while a step runs */
    st_engine_get_stats(m->engine, &m->stats);

    m->between = 0;

    ngx_http_starling_kick(m);
}


/* Post a step if the engine is idle and has something to do. */
void
ngx_http_starling_kick(ngx_http_starling_model_t *m)
{
    /* during between_steps() the loop posts once, at its end */
    if (m->loaded && !m->in_flight && !m->between
        && st_engine_has_work(m->engine))
    {
        ngx_http_starling_post(m, 0);
        return;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, m->log, 0,
                   "starling: no step posted, model \"%V\": loaded %ui, "
                   "in flight %ui, between steps %ui", &m->name, m->loaded,
                   m->in_flight, m->between);
}


/*
 * Hand a validated request to the engine: at once when idle, else at the
 * end of the running step.
 */
ngx_int_t
ngx_http_starling_submit(ngx_http_starling_ctx_t *ctx, st_error *err)
{
    ngx_http_starling_model_t  *m = ctx->model;

    if (m->in_flight || !m->loaded) {
        /* the engine is the pool thread's until the step completes */
        ngx_queue_insert_tail(&m->waiting, &ctx->queue);
        ctx->queued_in = 2;
        m->n_waiting++;
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "starling: submit waits for the step's end "
                       "(in flight %ui, loaded %ui), %ui waiting",
                       m->in_flight, m->loaded, m->n_waiting);
        return NGX_OK;
    }

    if (st_engine_submit(m->engine, &ctx->sreq, &ctx->seq, err) != ST_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "starling: engine refused the request: %s",
                       err->msg);
        ctx->seq = NULL;
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "starling: admitted seq %p, %uD prompt tokens, "
                   "%ui live", ctx->seq, ctx->sreq.n_prompt, m->n_live + 1);

    ngx_queue_insert_tail(&m->live, &ctx->queue);
    ctx->queued_in = 1;
    m->n_live++;

    ngx_http_starling_kick(m);
    return NGX_OK;
}


/*
 * The request is going away (pool cleanup) or has finished: unlink it
 * and give its sequence back. During a step the engine is not ours, so
 * the sequence waits in the orphan list for the step's end.
 */
void
ngx_http_starling_detach(ngx_http_starling_ctx_t *ctx)
{
    st_seq                    **slot;
    ngx_http_starling_model_t  *m = ctx->model;

    ngx_http_starling_job_ended(ctx);

    if (ctx->n_choices) {
        ngx_http_starling_choices_detach(ctx);
    }

    if (ctx->queued_in == 2) {
        ngx_queue_remove(&ctx->queue);
        m->n_waiting--;
        ctx->queued_in = 0;
    }

    if (ctx->queued_in == 1) {
        ngx_queue_remove(&ctx->queue);
        m->n_live--;
        ctx->queued_in = 0;
    }

    if (ctx->seq == NULL) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "starling: detach seq %p: %s", ctx->seq,
                   m->in_flight ? "orphaned until the step ends"
                                : "released now");

    if (!m->in_flight) {
        st_seq_cancel(ctx->seq);
        st_seq_release(m->engine, ctx->seq);
        ctx->seq = NULL;
        /* a cancelled sequence is freed by the next step */
        ngx_http_starling_kick(m);
        return;
    }

    slot = ngx_array_push(m->orphans);
    if (slot == NULL) {
        /* cannot happen short of memory exhaustion; the sequence then
         * runs to its end unobserved */
        ngx_log_error(NGX_LOG_ALERT, m->log, 0,
                      "starling: cannot queue a sequence for release");
        ctx->seq = NULL;
        return;
    }

    *slot = ctx->seq;
    ctx->seq = NULL;
}


/* /cancel: the stream ends with stop_reason CANCELLED at the next step */
void
ngx_http_starling_cancel(ngx_http_starling_ctx_t *ctx)
{
    if (ctx->done || ctx->cancel_requested) {
        return;
    }

    if (ctx->n_choices) {
        /* n > 1: the choices end at the next step boundary */
        ctx->cancel_requested = 1;
        ngx_http_starling_choices_cancel(ctx);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "starling: cancel, %s, step in flight %ui",
                   ctx->queued_in == 2 ? "waiting (finished now)"
                                       : "live (at the step boundary)",
                   ctx->model->in_flight);

    if (ctx->queued_in == 2) {
        /* never reached the engine: finish it now */
        st_seq_output  out;

        ngx_queue_remove(&ctx->queue);
        ctx->model->n_waiting--;
        ctx->queued_in = 0;
        ngx_memzero(&out, sizeof(st_seq_output));
        out.finish = ST_FINISH_CANCELLED;
        ctx->cancel_requested = 2;
        ngx_http_starling_on_output(ctx, &out);
        return;
    }

    ctx->cancel_requested = 1;

    if (!ctx->model->in_flight && ctx->seq != NULL) {
        st_seq_cancel(ctx->seq);
        ctx->cancel_requested = 2;
        ngx_http_starling_kick(ctx->model);
    }
}


ngx_http_starling_ctx_t *
ngx_http_starling_find_job(ngx_http_starling_main_conf_t *smcf,
    u_char *job_id, size_t len)
{
    ngx_uint_t                  i, k;
    ngx_queue_t                *head, *q;
    ngx_http_starling_ctx_t    *ctx;
    ngx_http_starling_model_t  *m;

    m = smcf->models.elts;

    for (i = 0; i < smcf->models.nelts; i++) {
        for (k = 0; k < 2; k++) {
            head = k ? &m[i].waiting : &m[i].live;
            if (head->next == NULL) {
                continue;                   /* not initialised */
            }
            for (q = ngx_queue_head(head); q != ngx_queue_sentinel(head);
                 q = ngx_queue_next(q))
            {
                ctx = ngx_queue_data(q, ngx_http_starling_ctx_t, queue);
                if (ctx->job_id.len == len
                    && ngx_strncmp(ctx->job_id.data, job_id, len) == 0)
                {
                    return ctx;
                }
            }
        }
    }

    return NULL;
}
