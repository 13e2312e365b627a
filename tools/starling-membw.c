/*
 * starling-membw: streaming-read memory bandwidth, single- and
 * multi-threaded, over a buffer much larger than the last-level cache.
 *
 *   starling-membw [--size-mib 1024] [-t 1,2] [-r 5] [-m MODEL.gguf]
 *
 * Decode speed of a memory-bound model is at most bandwidth / bytes read
 * per token (about the weight bytes): with -m the file size gives that
 * ceiling in tokens/s for each thread count, to compare with
 * starling-bench's tg figures.
 *
 * Each thread sums its own contiguous slice with 8 independent 64-bit
 * accumulators (so the loop is load-bound, not add-latency-bound); the
 * time is from a barrier release to the last thread's end; the best of
 * -r runs is reported (GB = 1e9 bytes).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MEMBW_MAX_THREADS 256
#define MEMBW_MAX_LIST    16

/* Start line: workers report ready, then wait for go (or abort). */
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t  cond;
    int             ready;
    int             go;        /* 1 run, -1 abort */
} membw_start;

typedef struct {
    const uint64_t *p;
    size_t          n_words;
    membw_start    *start;
    uint64_t        sum;
} membw_slice;

static volatile uint64_t membw_sink;


static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static uint64_t
read_slice(const uint64_t *p, size_t n)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    size_t   i;

    for (i = 0; i + 8 <= n; i += 8) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
        a4 += p[i + 4];
        a5 += p[i + 5];
        a6 += p[i + 6];
        a7 += p[i + 7];
    }
    for (; i < n; i++) {
        a0 += p[i];
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}


static void *
slice_main(void *arg)
{
    membw_slice *s = arg;
    membw_start *st = s->start;
    int          go;

    pthread_mutex_lock(&st->mutex);
    st->ready++;
    pthread_cond_broadcast(&st->cond);
    while (st->go == 0) {
        pthread_cond_wait(&st->cond, &st->mutex);
    }
    go = st->go;
    pthread_mutex_unlock(&st->mutex);
    if (go > 0) {
        s->sum = read_slice(s->p, s->n_words);
    }
    return NULL;
}


/* One timed pass with nth threads (the caller is thread 0); seconds, or
 * a negative value if threads could not be started. */
static double
pass(const uint64_t *buf, size_t n_words, int nth)
{
    pthread_t   th[MEMBW_MAX_THREADS];
    membw_slice sl[MEMBW_MAX_THREADS];
    membw_start start;
    size_t      per = n_words / (size_t) nth;
    double      t0, t1;
    uint64_t    sum = 0;
    int         i, started = 1;

    memset(&start, 0, sizeof(start));
    if (pthread_mutex_init(&start.mutex, NULL) != 0) {
        return -1;
    }
    if (pthread_cond_init(&start.cond, NULL) != 0) {
        pthread_mutex_destroy(&start.mutex);
        return -1;
    }
    for (i = 0; i < nth; i++) {
        sl[i].p = buf + per * (size_t) i;
        sl[i].n_words = i == nth - 1 ? n_words - per * (size_t) i : per;
        sl[i].start = &start;
        sl[i].sum = 0;
    }
    for (i = 1; i < nth; i++) {
        if (pthread_create(&th[i], NULL, slice_main, &sl[i]) != 0) {
            break;
        }
        started++;
    }
    pthread_mutex_lock(&start.mutex);
    while (start.ready < started - 1) {
        pthread_cond_wait(&start.cond, &start.mutex);
    }
    start.go = started == nth ? 1 : -1;
    pthread_cond_broadcast(&start.cond);
    pthread_mutex_unlock(&start.mutex);
    t0 = now_s();
    if (started == nth) {
        sl[0].sum = read_slice(sl[0].p, sl[0].n_words);
    }
    for (i = 1; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = now_s();
    for (i = 0; i < nth; i++) {
        sum += sl[i].sum;
    }
    membw_sink = sum;
    pthread_cond_destroy(&start.cond);
    pthread_mutex_destroy(&start.mutex);
    return started == nth ? t1 - t0 : -1;
}


static int
parse_list(const char *s, unsigned long long *v, int *n, unsigned long long max)
{
    char *end;

    *n = 0;
    for (;;) {
        if (*n == MEMBW_MAX_LIST || *s < '0' || *s > '9') {
            return 0;
        }
        errno = 0;
        v[*n] = strtoull(s, &end, 10);
        if (errno != 0 || end == s || v[*n] == 0 || v[*n] > max) {
            return 0;
        }
        (*n)++;
        if (*end == '\0') {
            return 1;
        }
        if (*end != ',') {
            return 0;
        }
        s = end + 1;
    }
}


static void
usage(FILE *fp)
{
    fprintf(fp,
        "usage: starling-membw [options]\n"
        "  --size-mib N   buffer size (default 1024)\n"
        "  -t LIST        thread counts (default 1,<online cores>)\n"
        "  -r N           runs per thread count, best reported (default 5)\n"
        "  -m FILE        also print bandwidth / FILE size as a decode "
        "tokens/s ceiling\n");
}


int
main(int argc, char **argv)
{
    unsigned long long threads[MEMBW_MAX_LIST], v[MEMBW_MAX_LIST];
    unsigned long long size_mib = 1024, reps = 5;
    int                n_threads = 0, n, i, r;
    long               cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char        *model = NULL;
    uint64_t          *buf;
    size_t             bytes, n_words, k;
    double             best, secs, gbs, model_bytes = 0;
    struct stat        st;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (val == NULL) {
            fprintf(stderr, "starling-membw: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--size-mib") == 0 && parse_list(val, v, &n, 1 << 20)
            && n == 1)
        {
            size_mib = v[0];
        } else if (strcmp(a, "-t") == 0
                   && parse_list(val, threads, &n_threads, MEMBW_MAX_THREADS))
        {
            continue;
        } else if (strcmp(a, "-r") == 0 && parse_list(val, v, &n, 1000)
                   && n == 1)
        {
            reps = v[0];
        } else if (strcmp(a, "-m") == 0) {
            model = val;
        } else {
            fprintf(stderr, "starling-membw: bad option %s %s\n", a, val);
            usage(stderr);
            return 2;
        }
    }
    if (n_threads == 0) {
        threads[n_threads++] = 1;
        if (cores > 1) {
            threads[n_threads++] = cores < MEMBW_MAX_THREADS
                                   ? (unsigned long long) cores
                                   : MEMBW_MAX_THREADS;
        }
    }
    if (model != NULL) {
        if (stat(model, &st) != 0) {
            fprintf(stderr, "starling-membw: %s: %s\n", model,
                    strerror(errno));
            return 1;
        }
        model_bytes = (double) st.st_size;
    }

    bytes = (size_t) size_mib << 20;
    buf = aligned_alloc(4096, bytes);
    if (buf == NULL) {
        fprintf(stderr, "starling-membw: cannot allocate %llu MiB\n",
                size_mib);
        return 1;
    }
    n_words = bytes / sizeof(uint64_t);
    /* Touch every page (and give the sum something to add). */
    for (k = 0; k < n_words; k++) {
        buf[k] = k;
    }

    printf("# buffer %llu MiB, best of %llu runs, %ld online cores\n",
           size_mib, reps, cores);
    printf("| threads | GB/s | GiB/s |%s\n",
           model ? " decode ceiling t/s |" : "");
    printf("| ------: | ---: | ----: |%s\n", model ? " -----------------: |"
                                                   : "");
    for (i = 0; i < n_threads; i++) {
        best = 0;
        for (r = 0; r < (int) reps; r++) {
            secs = pass(buf, n_words, (int) threads[i]);
            if (secs < 0) {
                fprintf(stderr, "starling-membw: cannot start %llu "
                        "threads\n", threads[i]);
                free(buf);
                return 1;
            }
            if (best == 0 || secs < best) {
                best = secs;
            }
        }
        gbs = (double) bytes / best / 1e9;
        if (model) {
            printf("| %7llu | %.2f | %.2f | %.1f |\n", threads[i], gbs,
                   (double) bytes / best / (1ull << 30),
                   gbs * 1e9 / model_bytes);
        } else {
            printf("| %7llu | %.2f | %.2f |\n", threads[i], gbs,
                   (double) bytes / best / (1ull << 30));
        }
        fflush(stdout);
    }
    free(buf);
    return 0;
}
