/*
 * Persistent compute team for the CPU backend. Created once per engine;
 * workers sleep on a condition variable when idle (no busy-spinning while
 * nginx waits for clients), and st_threadpool_run() wakes them for one
 * parallel region. The calling thread takes part as thread 0.
 */
#ifndef ST_THREADPOOL_H
#define ST_THREADPOOL_H

#include "starling/st_common.h"

typedef struct st_threadpool st_threadpool;

/* Work function: called once per thread with ith in [0, nth). */
typedef void (*st_parallel_fn)(void *ctx, int ith, int nth);

/* n_threads total including the caller; 0 = number of online cores. */
st_status st_threadpool_create(st_threadpool **out, int n_threads,
    st_error *err);
void st_threadpool_free(st_threadpool *tp);
int  st_threadpool_size(const st_threadpool *tp);
/* Runs fn(ctx, ith, nth) once for every ith in [0, nth) and returns when
 * all have finished. tp may be NULL: fn(ctx, 0, 1) on the caller.
 * The caller runs ith 0, then any ith whose worker has not woken up yet,
 * so several ith may run one after another on one thread: fn must not
 * wait for another ith (no barriers inside fn); per-ith scratch is fine.
 * Not reentrant: one region at a time per team. */
void st_threadpool_run(st_threadpool *tp, st_parallel_fn fn, void *ctx);

#endif /* ST_THREADPOOL_H */
