/*
 * starling-bench: llama-bench-style speed figures for the Starling CPU
 * engine on any GGUF model.
 *
 *   starling-bench -m MODEL.gguf -p 128,512 -n 128 -t 1,2 -r 5 [--json]
 *
 * For each model and thread count:
 *   ppN  prefill N tokens of one sequence on a fresh KV cache, in forward
 *        batches of up to -b rows (default 512, llama.cpp's n_ubatch),
 *        logits for the last token only (as llama-bench);
 *   tgN  after an untimed 8-token prompt, N decode steps of one token each
 *        (every step computes logits; the next token is their argmax);
 *   tgNxB  (-B B, B > 1) the same for B sequences decoded together: each
 *        step is one forward batch of B rows, one token of each sequence;
 *        tokens/s counts all B, and a line after the table gives the step
 *        time against the single-row step (-B 1,8 measures both).
 * tokens/s = N / wall time, mean +- sample sd over -r repetitions after
 * one warm-up run. These go through the model-level API (model.h,
 * kv_cache.h): they measure the engine's forward pass alone.
 *
 * --engine adds the same tests through st_engine (submit/step, greedy
 * sampling, detokenization): ppN = submit -> first token of an N-token
 * prompt (max_tokens 1); tgN = tokens/s of N decode steps after the
 * first token.
 *
 * Before the figures it prints the CPU kernel level and the resident
 * memory (VmRSS) after loading, and after them VmRSS again (the mmap'd
 * weights count once read). VmRSS is the whole process's: run one model
 * per process for a clean figure. --json prints one JSON object per result
 * on stdout instead of the table.
 */
#include "starling/st_engine.h"
#include "backend/cpu/matmul.h"
#include "model/model.h"
#include "backend/cpu/forward.h"
#include "base/threadpool.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_LIST     16
#define BENCH_MAX_MODELS   8
#define BENCH_TG_PROMPT    8         /* untimed prompt before tg */
#define BENCH_KV_BLOCK     16

typedef struct {
    unsigned long long v[BENCH_MAX_LIST];
    int                n;
} bench_list;

typedef struct {
    const char *models[BENCH_MAX_MODELS];
    int         n_models;
    bench_list  pp, tg, threads, dbatch;
    uint32_t    reps;
    uint32_t    batch;
    int         json;
    int         engine;
} bench_opts;

typedef struct {
    const char *path;
    const char *file;           /* base name */
    st_model   *m;
    char        type[96];       /* "qwen2 Q8_0" */
    uint64_t    rss_kib;
} bench_model;


static void
usage(FILE *fp)
{
    fprintf(fp,
        "usage: starling-bench -m MODEL.gguf [-m ...] [options]\n"
        "  -p LIST    prompt lengths to prefill (default 512; 0 = none)\n"
        "  -n LIST    tokens to generate (default 128; 0 = none)\n"
        "  -t LIST    thread counts (default: online cores)\n"
        "  -r N       repetitions (default 5), after one warm-up\n"
        "  -b N       forward batch rows for prefill (default 512)\n"
        "  -B LIST    sequences decoded together in tg (default 1)\n"
        "  --engine   also measure through st_engine (submit/step)\n"
        "  --json     JSON lines on stdout instead of the table\n"
        "LIST is comma-separated, e.g. -p 128,512 -t 1,2\n");
}


static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static int
parse_list(const char *s, bench_list *l, unsigned long long max)
{
    char *end;

    l->n = 0;
    for (;;) {
        if (l->n == BENCH_MAX_LIST || *s < '0' || *s > '9') {
            return 0;
        }
        errno = 0;
        l->v[l->n] = strtoull(s, &end, 10);
        if (errno != 0 || end == s || l->v[l->n] > max) {
            return 0;
        }
        l->n++;
        if (*end == '\0') {
            return 1;
        }
        if (*end != ',') {
            return 0;
        }
        s = end + 1;
    }
}


/* VmRSS of this process in KiB (0 if unknown). */
static uint64_t
rss_kib(void)
{
    FILE              *fp = fopen("/proc/self/status", "r");
    char               line[256];
    unsigned long long kib = 0;

    if (fp == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) {
            break;
        }
    }
    fclose(fp);
    return kib;
}


static void
mean_sd(const double *x, uint32_t n, double *mean, double *sd)
{
    double   s = 0, ss = 0;
    uint32_t i;

    for (i = 0; i < n; i++) {
        s += x[i];
    }
    *mean = n ? s / n : 0;
    for (i = 0; i < n; i++) {
        ss += (x[i] - *mean) * (x[i] - *mean);
    }
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}


static void
fmt_size(char *buf, size_t cap, uint64_t bytes)
{
    if (bytes >= (1ull << 30)) {
        snprintf(buf, cap, "%.2f GiB", (double) bytes / (1ull << 30));
    } else {
        snprintf(buf, cap, "%.2f MiB", (double) bytes / (1ull << 20));
    }
}


static void
fmt_params(char *buf, size_t cap, uint64_t n)
{
    if (n >= 1000000000ull) {
        snprintf(buf, cap, "%.2f B", (double) n / 1e9);
    } else {
        snprintf(buf, cap, "%.2f M", (double) n / 1e6);
    }
}


/* Deterministic token ids spread over the vocabulary. */
static int32_t
bench_token(uint32_t i, uint32_t n_vocab)
{
    return (int32_t) (((uint64_t) i * 2654435761u + 7) % n_vocab);
}


static void
print_header(void)
{
    printf("| %-34s | %10s | %10s | %-12s | %7s | %14s | %20s |\n",
           "model", "size", "params", "backend", "threads", "test", "t/s");
    /* right-aligned columns end in ':' as in llama-bench's markdown */
    printf("| %s | %s | %s | %s | %s | %s | %s |\n",
           "----------------------------------", "---------:", "---------:",
           "------------", "------:", "-------------:",
           "-------------------:");
}


/* s as a JSON string body (file names may hold quotes or controls). */
static void
json_str(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
}


static void
report(const bench_opts *o, const bench_model *bm, uint32_t threads,
    const char *mode, const char *test, uint32_t n_prompt, uint32_t n_gen,
    const double *ts, const double *ns, uint32_t n)
{
    double   mean, sd;
    char     size[32], params[32], t[48], v[48], backend[32];
    uint32_t i;

    mean_sd(ts, n, &mean, &sd);
    if (o->json) {
        printf("{\"model_file\":\"");
        json_str(bm->file);
        printf("\",\"model_type\":\"");
        json_str(bm->type);
        printf("\",\"model_size\":%llu,\"model_n_params\":%llu,"
               "\"backend\":\"CPU\",\"kernels\":\"%s\",\"n_threads\":%u,"
               "\"mode\":\"%s\",\"test\":\"%s\",\"n_prompt\":%u,"
               "\"n_gen\":%u,\"n_batch\":%u,\"rss_kib\":%llu,"
               "\"avg_ts\":%.6f,\"stddev_ts\":%.6f,\"samples_ts\":[",
               (unsigned long long) bm->m->weight_bytes,
               (unsigned long long) bm->m->n_params, st_cpu_kernels_name(),
               threads, mode, test, n_prompt, n_gen, o->batch,
               (unsigned long long) bm->rss_kib, mean, sd);
        for (i = 0; i < n; i++) {
            printf("%s%.6f", i ? "," : "", ts[i]);
        }
        printf("],\"samples_ns\":[");
        for (i = 0; i < n; i++) {
            printf("%s%.0f", i ? "," : "", ns[i]);
        }
        printf("]}\n");
    } else {
        fmt_size(size, sizeof(size), bm->m->weight_bytes);
        fmt_params(params, sizeof(params), bm->m->n_params);
        snprintf(backend, sizeof(backend), "CPU %s", st_cpu_kernels_name());
        snprintf(t, sizeof(t), "%s%s%s", test, strcmp(mode, "model") ? " " : "",
                 strcmp(mode, "model") ? mode : "");
        snprintf(v, sizeof(v), "%.2f \xc2\xb1 %.2f", mean, sd);
        /* "\xc2\xb1" is two bytes wide in printf's count, one on screen */
        printf("| %-34.34s | %10s | %10s | %-12s | %7u | %14s | %21s |\n",
               bm->type, size, params, backend, threads, t, v);
    }
    fflush(stdout);
}


/* ---- model-level tests ---- */

/* One prefill of n tokens at positions 0..n-1 on a fresh sequence. */
static st_status
run_pp(st_forward *f, st_kv_cache *kv, st_kv_seq *seq, st_batch_entry *b,
    uint32_t batch, uint32_t n, uint32_t n_vocab, float *logits,
    st_error *err)
{
    uint32_t  done = 0, k, c;
    st_status rc;

    st_kv_seq_release(kv, seq);
    if (st_kv_seq_reserve(kv, seq, n) != ST_OK) {
        return st_error_set(err, ST_ERR_FULL, "KV cache too small for %u", n);
    }
    while (done < n) {
        c = n - done < batch ? n - done : batch;
        for (k = 0; k < c; k++) {
            b[k].token = bench_token(done + k, n_vocab);
            b[k].pos = done + k;
            b[k].seq = seq;
            b[k].want_logits = (done + k == n - 1);
        }
        rc = st_forward_run(f, kv, b, c, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
        done += c;
    }
    return ST_OK;
}


static int32_t
argmax(const float *x, uint32_t n)
{
    uint32_t i, best = 0;

    for (i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return (int32_t) best;
}


/* Untimed prompt, then n timed single-token steps; *secs = their time. */
static st_status
run_tg(st_forward *f, st_kv_cache *kv, st_kv_seq *seq, st_batch_entry *b,
    uint32_t n, uint32_t n_vocab, float *logits, double *secs,
    st_error *err)
{
    uint32_t  i, pos = BENCH_TG_PROMPT;
    double    t0;
    st_status rc;

    rc = run_pp(f, kv, seq, b, BENCH_TG_PROMPT, BENCH_TG_PROMPT, n_vocab,
                logits, err);
    if (rc != ST_OK) {
        return rc;
    }
    if (st_kv_seq_reserve(kv, seq, BENCH_TG_PROMPT + n) != ST_OK) {
        return st_error_set(err, ST_ERR_FULL, "KV cache too small");
    }
    t0 = now_s();
    for (i = 0; i < n; i++) {
        b[0].token = argmax(logits, n_vocab);
        b[0].pos = pos++;
        b[0].seq = seq;
        b[0].want_logits = 1;
        rc = st_forward_run(f, kv, b, 1, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    *secs = now_s() - t0;
    return ST_OK;
}


/* B sequences with untimed 8-token prompts, then n timed steps of one
 * token each for all of them (a forward batch of B rows). */
static st_status
run_tgb(st_forward *f, st_kv_cache *kv, st_kv_seq *seqs, uint32_t nseq,
    st_batch_entry *b, uint32_t n, uint32_t n_vocab, float *logits,
    int32_t *next, double *secs, st_error *err)
{
    uint32_t  i, s, pos = BENCH_TG_PROMPT;
    double    t0;
    st_status rc;

    for (s = 0; s < nseq; s++) {
        rc = run_pp(f, kv, &seqs[s], b, BENCH_TG_PROMPT, BENCH_TG_PROMPT,
                    n_vocab, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
        if (st_kv_seq_reserve(kv, &seqs[s], BENCH_TG_PROMPT + n) != ST_OK) {
            return st_error_set(err, ST_ERR_FULL, "KV cache too small");
        }
        /* different sequences: the first tokens differ */
        next[s] = (argmax(logits, n_vocab) + (int32_t) s) % (int32_t) n_vocab;
    }
    t0 = now_s();
    for (i = 0; i < n; i++) {
        for (s = 0; s < nseq; s++) {
            b[s].token = next[s];
            b[s].pos = pos;
            b[s].seq = &seqs[s];
            b[s].want_logits = 1;
        }
        pos++;
        rc = st_forward_run(f, kv, b, nseq, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
        for (s = 0; s < nseq; s++) {
            next[s] = argmax(logits + (size_t) s * n_vocab, n_vocab);
        }
    }
    *secs = now_s() - t0;
    return ST_OK;
}


static int
bench_model_level(const bench_opts *o, bench_model *bm, uint32_t threads,
    st_kv_cache *kv)
{
    st_threadpool  *tp = NULL;
    st_forward     *f = NULL;
    st_kv_seq       seq = {0};
    st_batch_entry *b = NULL;
    float          *logits = NULL;
    double         *ts = NULL, *ns = NULL, t0, secs = 0;
    uint32_t        n_vocab = bm->m->hp.n_vocab, r, n;
    st_error        err = {0};
    char            test[32];
    int             i, ok = 0;

    uint32_t        max_b = 1, k;
    st_kv_seq      *seqs = NULL;
    int32_t        *next = NULL;
    double          step1 = 0;

    for (k = 0; k < (uint32_t) o->dbatch.n; k++) {
        if (o->dbatch.v[k] > max_b) {
            max_b = (uint32_t) o->dbatch.v[k];
        }
    }
    b = calloc(o->batch > max_b ? o->batch : max_b, sizeof(*b));
    logits = malloc(sizeof(float) * n_vocab * max_b);
    seqs = calloc(max_b, sizeof(*seqs));
    next = calloc(max_b, sizeof(*next));
    if (seqs == NULL || next == NULL) {
        fprintf(stderr, "starling-bench: out of memory\n");
        goto done;
    }
    ts = malloc(sizeof(double) * o->reps);
    ns = malloc(sizeof(double) * o->reps);
    if (b == NULL || logits == NULL || ts == NULL || ns == NULL) {
        fprintf(stderr, "starling-bench: out of memory\n");
        goto done;
    }
    if (st_threadpool_create(&tp, (int) threads, &err) != ST_OK
        || st_forward_create(&f, bm->m, o->batch, tp, &err) != ST_OK)
    {
        fprintf(stderr, "starling-bench: %s: %s\n", bm->file, err.msg);
        goto done;
    }
    for (i = 0; i < o->pp.n; i++) {
        n = (uint32_t) o->pp.v[i];
        if (n == 0) {
            continue;
        }
        for (r = 0; r <= o->reps; r++) {        /* r == 0: warm-up */
            t0 = now_s();
            if (run_pp(f, kv, &seq, b, o->batch, n, n_vocab, logits, &err)
                != ST_OK)
            {
                fprintf(stderr, "starling-bench: pp%u: %s\n", n, err.msg);
                goto done;
            }
            secs = now_s() - t0;
            if (r > 0) {
                ts[r - 1] = n / secs;
                ns[r - 1] = secs * 1e9;
            }
        }
        snprintf(test, sizeof(test), "pp%u", n);
        report(o, bm, threads, "model", test, n, 0, ts, ns, o->reps);
    }
    for (i = 0; i < o->tg.n; i++) {
        n = (uint32_t) o->tg.v[i];
        if (n == 0) {
            continue;
        }
        for (k = 0; k < (uint32_t) o->dbatch.n; k++) {
            uint32_t nb = (uint32_t) o->dbatch.v[k];
            double   mean = 0;

            for (r = 0; r <= o->reps; r++) {
                /* a shorter warm-up: caches and pages are hot after a few */
                uint32_t  nr = r == 0 ? (n < 16 ? n : 16) : n;
                st_status rc = nb == 1
                    ? run_tg(f, kv, &seq, b, nr, n_vocab, logits, &secs, &err)
                    : run_tgb(f, kv, seqs, nb, b, nr, n_vocab, logits, next,
                              &secs, &err);

                if (rc != ST_OK) {
                    fprintf(stderr, "starling-bench: tg%u x%u: %s\n", n, nb,
                            err.msg);
                    goto done;
                }
                if (r > 0) {
                    ts[r - 1] = (double) nb * n / secs;
                    ns[r - 1] = secs * 1e9;
                    mean += secs / n / o->reps;
                }
            }
            if (nb == 1) {
                snprintf(test, sizeof(test), "tg%u", n);
                step1 = mean;
            } else {
                snprintf(test, sizeof(test), "tg%ux%u", n, nb);
            }
            report(o, bm, threads, "model", test, 0, n * nb, ts, ns, o->reps);
            if (nb > 1 && step1 > 0 && !o->json) {
                printf("# tg%ux%u, %u threads: a step of %u rows takes "
                       "%.2f ms, %.2fx the single-row step (%.2f ms)\n",
                       n, nb, threads, nb, mean * 1e3, mean / step1,
                       step1 * 1e3);
            }
        }
    }
    ok = 1;

done:
    st_kv_seq_release(kv, &seq);
    st_kv_seq_free(&seq);
    for (k = 0; seqs != NULL && k < max_b; k++) {
        st_kv_seq_release(kv, &seqs[k]);
        st_kv_seq_free(&seqs[k]);
    }
    free(seqs);
    free(next);
    st_forward_free(f);
    st_threadpool_free(tp);
    free(b);
    free(logits);
    free(ts);
    free(ns);
    return ok;
}


/* ---- engine-level tests ---- */

/* One request; *first_s = submit -> first token, *rest_s = first token ->
 * finish, *n_out = tokens generated. */
static int
engine_request(st_engine *e, const int32_t *prompt, uint32_t n_prompt,
    uint32_t max_tokens, double *first_s, double *rest_s, uint32_t *n_out,
    st_error *err)
{
    st_request    req;
    st_seq       *s = NULL;
    st_seq_output out;
    double        t0, t_first = 0;
    uint32_t      n = 0;

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.0f;
    req.prompt = prompt;
    req.n_prompt = n_prompt;
    req.max_tokens = max_tokens;
    req.ignore_eos = 1;
    t0 = now_s();
    if (st_engine_submit(e, &req, &s, err) != ST_OK) {
        return 0;
    }
    do {
        if (st_engine_step(e, err) != ST_OK) {
            st_seq_release(e, s);
            return 0;
        }
        st_seq_take(s, &out);
        if (n == 0 && out.n_generated > 0) {
            t_first = now_s();
        }
        n = out.n_generated;
    } while (out.finish == ST_FINISH_NONE);
    *first_s = t_first - t0;
    *rest_s = now_s() - t_first;
    *n_out = n;
    st_seq_release(e, s);
    if (out.finish == ST_FINISH_ERROR) {
        st_error_set(err, ST_ERR_INTERNAL, "%s", out.error);
        return 0;
    }
    return 1;
}


static int
bench_engine_level(const bench_opts *o, bench_model *bm, uint32_t threads)
{
    st_engine_params ep;
    st_engine       *e = NULL;
    st_error         err = {0};
    int32_t         *prompt = NULL;
    double          *ts = NULL, *ns = NULL, first, rest;
    uint32_t         max_n = BENCH_TG_PROMPT, n, r, n_out, k;
    uint32_t         n_vocab = bm->m->hp.n_vocab;
    char             test[32];
    int              i, ok = 0;

    for (i = 0; i < o->pp.n; i++) {
        if (o->pp.v[i] + 1 > max_n) {
            max_n = (uint32_t) o->pp.v[i] + 1;
        }
    }
    for (i = 0; i < o->tg.n; i++) {
        if (BENCH_TG_PROMPT + o->tg.v[i] + 1 > max_n) {
            max_n = BENCH_TG_PROMPT + (uint32_t) o->tg.v[i] + 1;
        }
    }
    st_engine_params_default(&ep);
    ep.path = bm->path;
    ep.n_threads = threads;
    ep.max_seqs = 1;
    ep.n_ctx = max_n + BENCH_KV_BLOCK;
    ep.step_tokens = o->batch;
    prompt = malloc(sizeof(int32_t) * max_n);
    ts = malloc(sizeof(double) * o->reps);
    ns = malloc(sizeof(double) * o->reps);
    if (prompt == NULL || ts == NULL || ns == NULL) {
        fprintf(stderr, "starling-bench: out of memory\n");
        goto done;
    }
    for (k = 0; k < max_n; k++) {
        prompt[k] = bench_token(k, n_vocab);
    }
    if (st_engine_create(&e, &ep, &err) != ST_OK) {
        fprintf(stderr, "starling-bench: engine: %s\n", err.msg);
        goto done;
    }
    for (i = 0; i < o->pp.n; i++) {
        n = (uint32_t) o->pp.v[i];
        if (n == 0) {
            continue;
        }
        for (r = 0; r <= o->reps; r++) {
            if (!engine_request(e, prompt, n, 1, &first, &rest, &n_out,
                                &err))
            {
                fprintf(stderr, "starling-bench: engine pp%u: %s\n", n,
                        err.msg);
                goto done;
            }
            if (r > 0) {
                ts[r - 1] = n / first;
                ns[r - 1] = first * 1e9;
            }
        }
        snprintf(test, sizeof(test), "pp%u", n);
        report(o, bm, threads, "engine", test, n, 0, ts, ns, o->reps);
    }
    for (i = 0; i < o->tg.n; i++) {
        n = (uint32_t) o->tg.v[i];
        if (n == 0) {
            continue;
        }
        for (r = 0; r <= o->reps; r++) {
            /* the first token ends the prefill; n decode steps follow */
            if (!engine_request(e, prompt, BENCH_TG_PROMPT, n + 1, &first,
                                &rest, &n_out, &err))
            {
                fprintf(stderr, "starling-bench: engine tg%u: %s\n", n,
                        err.msg);
                goto done;
            }
            if (n_out != n + 1) {
                fprintf(stderr, "starling-bench: engine tg%u: generated %u "
                        "tokens\n", n, n_out);
                goto done;
            }
            if (r > 0) {
                ts[r - 1] = n / rest;
                ns[r - 1] = rest * 1e9;
            }
        }
        snprintf(test, sizeof(test), "tg%u", n);
        report(o, bm, threads, "engine", test, 0, n, ts, ns, o->reps);
    }
    ok = 1;

done:
    st_engine_free(e);
    free(prompt);
    free(ts);
    free(ns);
    return ok;
}


static int
bench_one(const bench_opts *o, const char *path)
{
    bench_model  bm;
    st_kv_cache  kv;
    st_error     err = {0};
    uint32_t     max_pos = BENCH_TG_PROMPT, max_tg = 0, n_blocks;
    const char  *slash = strrchr(path, '/');
    double       t0 = now_s(), load_s;
    int          i, ok = 1;
    char         size[32], params[32];

    memset(&bm, 0, sizeof(bm));
    memset(&kv, 0, sizeof(kv));
    bm.path = path;
    bm.file = slash ? slash + 1 : path;
    if (st_model_load(&bm.m, path, NULL, &err) != ST_OK) {
        fprintf(stderr, "starling-bench: %s: %s\n", path, err.msg);
        return 0;
    }
    load_s = now_s() - t0;
    bm.rss_kib = rss_kib();
    snprintf(bm.type, sizeof(bm.type), "%s %s", bm.m->hp.arch,
             st_model_quant_name(bm.m));
    fmt_size(size, sizeof(size), bm.m->weight_bytes);
    fmt_params(params, sizeof(params), bm.m->n_params);
    fprintf(o->json ? stderr : stdout,
            "# %s: %s, %s, %s params, %u layers, n_embd %u, vocab %u; "
            "kernels %s; load %.1f ms; VmRSS after load %.1f MiB\n",
            bm.file, bm.type, size, params, bm.m->hp.n_layer,
            bm.m->hp.n_embd, bm.m->hp.n_vocab, st_cpu_kernels_name(),
            load_s * 1e3, bm.rss_kib / 1024.0);

    for (i = 0; i < o->pp.n; i++) {
        if (o->pp.v[i] > max_pos) {
            max_pos = (uint32_t) o->pp.v[i];
        }
    }
    for (i = 0; i < o->tg.n; i++) {
        if (BENCH_TG_PROMPT + o->tg.v[i] > max_pos) {
            max_pos = BENCH_TG_PROMPT + (uint32_t) o->tg.v[i];
        }
        if (o->tg.v[i] > max_tg) {
            max_tg = (uint32_t) o->tg.v[i];
        }
    }
    n_blocks = (max_pos + BENCH_KV_BLOCK - 1) / BENCH_KV_BLOCK;
    for (i = 0; i < o->dbatch.n; i++) {
        uint32_t per = (BENCH_TG_PROMPT + max_tg + BENCH_KV_BLOCK - 1)
                       / BENCH_KV_BLOCK;

        /* the sequences of a batched tg, beside the single one */
        if ((o->dbatch.v[i] + 1) * per > n_blocks) {
            n_blocks = (uint32_t) (o->dbatch.v[i] + 1) * per;
        }
    }
    if (st_kv_cache_init(&kv, bm.m->hp.n_layer,
                         bm.m->hp.n_head_kv * bm.m->hp.head_dim,
                         BENCH_KV_BLOCK, n_blocks, 1, &err) != ST_OK)
    {
        fprintf(stderr, "starling-bench: KV cache: %s\n", err.msg);
        st_model_free(bm.m);
        return 0;
    }
    if (!o->json) {
        print_header();
    }
    for (i = 0; i < o->threads.n && ok; i++) {
        ok = bench_model_level(o, &bm, (uint32_t) o->threads.v[i], &kv);
        if (ok && o->engine) {
            ok = bench_engine_level(o, &bm, (uint32_t) o->threads.v[i]);
        }
    }
    /* Weights are mmap'd: pages count once touched, so this is the
     * working set (process-wide: earlier -m models' buffers included). */
    fprintf(o->json ? stderr : stdout, "# %s: VmRSS after runs %.1f MiB\n\n",
            bm.file, rss_kib() / 1024.0);
    st_kv_cache_free(&kv);
    st_model_free(bm.m);
    return ok;
}


int
main(int argc, char **argv)
{
    bench_opts         o;
    long               cores = sysconf(_SC_NPROCESSORS_ONLN);
    int                i, bad, ok = 1;

    memset(&o, 0, sizeof(o));
    o.pp.n = 1;
    o.pp.v[0] = 512;
    o.tg.n = 1;
    o.tg.v[0] = 128;
    o.threads.n = 1;
    o.threads.v[0] = cores > 0 ? (unsigned long long) cores : 1;
    o.reps = 5;
    o.batch = 512;
    o.dbatch.n = 1;
    o.dbatch.v[0] = 1;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bench_list  l;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
            continue;
        } else if (strcmp(a, "--engine") == 0) {
            o.engine = 1;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "starling-bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        bad = 0;
        if (strcmp(a, "-m") == 0) {
            bad = o.n_models == BENCH_MAX_MODELS;
            if (!bad) {
                o.models[o.n_models++] = val;
            }
        } else if (strcmp(a, "-p") == 0) {
            bad = !parse_list(val, &o.pp, 1u << 20);
        } else if (strcmp(a, "-n") == 0) {
            bad = !parse_list(val, &o.tg, 1u << 20);
        } else if (strcmp(a, "-t") == 0) {
            bad = !parse_list(val, &l, 1024);
            for (int k = 0; !bad && k < l.n; k++) {
                bad = l.v[k] == 0;
            }
            if (!bad) {
                o.threads = l;
            }
        } else if (strcmp(a, "-r") == 0) {
            bad = !parse_list(val, &l, 1000) || l.n != 1 || l.v[0] == 0;
            o.reps = bad ? 0 : (uint32_t) l.v[0];
        } else if (strcmp(a, "-B") == 0) {
            bad = !parse_list(val, &l, 512);
            for (int k = 0; !bad && k < l.n; k++) {
                bad = l.v[k] == 0;
            }
            if (!bad) {
                o.dbatch = l;
            }
        } else if (strcmp(a, "-b") == 0) {
            bad = !parse_list(val, &l, 1u << 16) || l.n != 1 || l.v[0] == 0;
            o.batch = bad ? 0 : (uint32_t) l.v[0];
        } else {
            fprintf(stderr, "starling-bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "starling-bench: bad value for %s: %s\n", a, val);
            return 2;
        }
    }
    if (o.n_models == 0) {
        usage(stderr);
        return 2;
    }
    for (i = 0; i < o.n_models; i++) {
        ok &= bench_one(&o, o.models[i]);
    }
    return ok ? 0 : 1;
}
