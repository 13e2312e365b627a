/*
 * Persistent compute team (see threadpool.h).
 *
 * One parallel region at a time: the caller publishes fn/ctx, resets the
 * slot counter and bumps a generation counter; workers still spinning see
 * that without a lock or system call, sleeping ones (counted in
 * n_sleeping) get a condvar broadcast. Slots 1..nth-1 are claimed with an atomic counter, by the
 * workers as they wake up and by the caller once its own slot 0 is done:
 * a worker that wakes late (a futex wake-up of an idle vCPU can take
 * 100 us or more in a VM) finds its slot already run by the caller and
 * never touches ctx, so a region never waits for a sleeping thread.
 * Workers first spin briefly on the generation (back-to-back matmuls of
 * a decode step come microseconds apart), then sleep on the condition
 * variable, so an idle engine uses no CPU.
 *
 * st_threadpool_run() must not be called concurrently on one team (the
 * engine drives it from its single step thread).
 */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ST_CPU_RELAX() _mm_pause()
#else
#define ST_CPU_RELAX() ((void) 0)
#endif

/* Spin iterations (one pause instruction each, ~10-140 cycles depending
 * on the CPU; 25 ns on the Zen 5 development machine) before sleeping.
 * Workers: ~100 us, long enough to bridge the gaps between the matmuls
 * of one decode step, short enough that an idle engine goes to sleep at
 * once. The caller waiting for the workers spins longer (~1 ms): it has
 * nothing else to do, and sleeping would add a second futex wake-up
 * (tens of microseconds in a VM) to a worker that was just woken. */
#define ST_TP_SPIN_ITERS       4096
#define ST_TP_DONE_SPIN_ITERS  40000

typedef struct {
    st_threadpool *tp;
    pthread_t      thread;
    int            ith;
} st_tp_worker;

struct st_threadpool {
    int              n_threads;        /* including the caller */
    st_tp_worker    *workers;          /* n_threads - 1 */
    int              n_started;

    pthread_mutex_t  mutex;
    pthread_cond_t   work_cond;        /* generation changed or stop */
    pthread_cond_t   done_cond;        /* all workers finished */

    st_parallel_fn   fn;               /* written before generation bump */
    void            *ctx;
    atomic_uint      generation;
    atomic_int       next_slot;        /* next ith to claim (1..nth-1) */
    atomic_int       n_done;           /* slots 1..nth-1 finished */
    atomic_int       n_sleeping;       /* workers in (or entering) the
                                          work_cond wait */
    atomic_int       caller_waiting;   /* caller in the done_cond wait */
    atomic_int       stop;
};


/* Claims and runs free slots of the current region. A slot number is
 * taken before fn/ctx are read, so a thread that comes late either gets
 * nothing (>= nth) or a slot of the region now being published (the
 * caller resets next_slot only after writing fn/ctx). */
static void
st_tp_run_slots(st_threadpool *tp)
{
    int nth = tp->n_threads, ith;

    for ( ;; ) {
        ith = atomic_fetch_add(&tp->next_slot, 1);
        if (ith >= nth) {
            return;
        }
        tp->fn(tp->ctx, ith, nth);

        /* The last slot to finish wakes the caller if it went to sleep.
         * All flags are sequentially consistent: either the caller sees
         * n_done complete before it waits, or we see caller_waiting and
         * signal under the mutex it waits with. */
        if (atomic_fetch_add(&tp->n_done, 1) + 1 == nth - 1
            && atomic_load(&tp->caller_waiting))
        {
            pthread_mutex_lock(&tp->mutex);
            pthread_cond_signal(&tp->done_cond);
            pthread_mutex_unlock(&tp->mutex);
        }
    }
}


static void *
st_tp_worker_main(void *arg)
{
    st_tp_worker   *w = arg;
    st_threadpool  *tp = w->tp;
    unsigned        seen = 0;   /* the value at creation: reading it here
                                   could miss a region started before
                                   this thread got going */
    int             i;

    for ( ;; ) {
        unsigned gen;

        for (i = 0; i < ST_TP_SPIN_ITERS; i++) {
            if (atomic_load(&tp->generation) != seen
                || atomic_load(&tp->stop))
            {
                break;
            }
            ST_CPU_RELAX();
        }

        if (i == ST_TP_SPIN_ITERS) {
            /* Announce the sleep before the last check of generation: the
             * caller bumps generation before it reads n_sleeping, so one
             * of the two sees the other (see st_threadpool_run). */
            pthread_mutex_lock(&tp->mutex);
            atomic_fetch_add(&tp->n_sleeping, 1);
            while (atomic_load(&tp->generation) == seen
                   && !atomic_load(&tp->stop))
            {
                pthread_cond_wait(&tp->work_cond, &tp->mutex);
            }
            atomic_fetch_sub(&tp->n_sleeping, 1);
            pthread_mutex_unlock(&tp->mutex);
        }

        if (atomic_load(&tp->stop)) {
            return NULL;
        }

        gen = atomic_load(&tp->generation);
        seen = gen;

        st_tp_run_slots(tp);
    }
}


static void
st_tp_stop_workers(st_threadpool *tp)
{
    int i;

    pthread_mutex_lock(&tp->mutex);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->work_cond);
    pthread_mutex_unlock(&tp->mutex);

    for (i = 0; i < tp->n_started; i++) {
        pthread_join(tp->workers[i].thread, NULL);
    }
    tp->n_started = 0;
}


st_status
st_threadpool_create(st_threadpool **out, int n_threads, st_error *err)
{
    st_threadpool *tp;
    int            i, rc;

    *out = NULL;

    if (n_threads < 0 || n_threads > 1024) {
        return st_error_set(err, ST_ERR_INVALID,
                            "threadpool: bad thread count %d", n_threads);
    }
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = (n > 0 && n <= 1024) ? (int) n : 1;
    }

    tp = calloc(1, sizeof(*tp));
    if (tp == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "threadpool: out of memory");
    }
    tp->n_threads = n_threads;
    atomic_init(&tp->generation, 0);
    atomic_init(&tp->n_done, 0);
    atomic_init(&tp->next_slot, n_threads);
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->caller_waiting, 0);
    atomic_init(&tp->stop, 0);

    if (pthread_mutex_init(&tp->mutex, NULL) != 0) {
        free(tp);
        return st_error_set(err, ST_ERR_INTERNAL,
                            "threadpool: pthread_mutex_init() failed");
    }
    if (pthread_cond_init(&tp->work_cond, NULL) != 0) {
        pthread_mutex_destroy(&tp->mutex);
        free(tp);
        return st_error_set(err, ST_ERR_INTERNAL,
                            "threadpool: pthread_cond_init() failed");
    }
    if (pthread_cond_init(&tp->done_cond, NULL) != 0) {
        pthread_cond_destroy(&tp->work_cond);
        pthread_mutex_destroy(&tp->mutex);
        free(tp);
        return st_error_set(err, ST_ERR_INTERNAL,
                            "threadpool: pthread_cond_init() failed");
    }

    if (n_threads > 1) {
        tp->workers = calloc((size_t) n_threads - 1, sizeof(st_tp_worker));
        if (tp->workers == NULL) {
            st_threadpool_free(tp);
            return st_error_set(err, ST_ERR_NOMEM,
                                "threadpool: out of memory");
        }
        for (i = 0; i < n_threads - 1; i++) {
            tp->workers[i].tp = tp;
            tp->workers[i].ith = i + 1;
            rc = pthread_create(&tp->workers[i].thread, NULL,
                                st_tp_worker_main, &tp->workers[i]);
            if (rc != 0) {
                st_threadpool_free(tp);
                return st_error_set(err, ST_ERR_INTERNAL,
                                    "threadpool: pthread_create() failed "
                                    "for thread %d of %d (error %d)",
                                    i + 1, n_threads, rc);
            }
            tp->n_started++;
        }
    }

    *out = tp;
    return ST_OK;
}


void
st_threadpool_free(st_threadpool *tp)
{
    if (tp == NULL) {
        return;
    }
    st_tp_stop_workers(tp);
    pthread_cond_destroy(&tp->done_cond);
    pthread_cond_destroy(&tp->work_cond);
    pthread_mutex_destroy(&tp->mutex);
    free(tp->workers);
    free(tp);
}


int
st_threadpool_size(const st_threadpool *tp)
{
    return tp ? tp->n_threads : 1;
}


void
st_threadpool_run(st_threadpool *tp, st_parallel_fn fn, void *ctx)
{
    int n_workers, i;

    if (tp == NULL || tp->n_threads <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    n_workers = tp->n_threads - 1;

    /* Publish, then wake only if someone sleeps: spinning workers see the
     * generation change without any lock or system call. */
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->n_done, 0);
    atomic_store(&tp->next_slot, 1);
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->mutex);
        pthread_cond_broadcast(&tp->work_cond);
        pthread_mutex_unlock(&tp->mutex);
    }

    fn(ctx, 0, tp->n_threads);
    st_tp_run_slots(tp);        /* slots no worker has taken yet */

    for (i = 0; i < ST_TP_DONE_SPIN_ITERS; i++) {
        if (atomic_load(&tp->n_done) == n_workers)
        {
            return;
        }
        ST_CPU_RELAX();
    }

    pthread_mutex_lock(&tp->mutex);
    atomic_store(&tp->caller_waiting, 1);
    while (atomic_load(&tp->n_done) != n_workers) {
        pthread_cond_wait(&tp->done_cond, &tp->mutex);
    }
    atomic_store(&tp->caller_waiting, 0);
    pthread_mutex_unlock(&tp->mutex);
}
