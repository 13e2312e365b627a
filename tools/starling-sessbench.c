/*
 * starling-sessbench: time to first token of turn N of a chat, with and
 * without sessions, through st_engine.
 *
 *   starling-sessbench -m MODEL.gguf [-H 2000] [-u 32] [-g 16] [-t 2]
 *                      [-r 3] [--store DIR]
 *
 * A chat history of -H tokens (ids drawn from the vocabulary, fixed seed)
 * is the previous turns; turn N adds -u new tokens and generates -g.
 * Modes, each repeated -r times (mean, min, max of TTFT in ms):
 *   recompute  no session and an empty KV cache: the whole history is
 *              prefilled (what a server without sessions does once the
 *              history's blocks are gone);
 *   resident   the session kept turn N-1's blocks: only the -u new tokens
 *              are prefilled;
 *   restored   (with --store) the session was spilled to DIR by a filler
 *              request under a KV budget that cannot hold both, and is
 *              read back (SHA-256 checked) before the new tokens.
 * The restored turn's ids and logprobs are compared with the resident
 * turn's and the program fails if they differ.
 */
#include "starling/st_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GEN 256

typedef struct {
    const char *model;
    const char *store;
    uint32_t    history, user, gen, threads, reps;
} opts;

typedef struct {
    double   ttft_ms;
    uint32_t cached;
    int32_t  ids[MAX_GEN];
    float    lp[MAX_GEN];
    uint32_t n;
    st_session_result session;
} turn_res;


static int
run_turn(st_engine *e, const int32_t *ids, uint32_t n, uint32_t gen,
    const char *session, turn_res *res)
{
    st_request    req;
    st_seq       *s;
    st_seq_output out;
    st_error      err;
    size_t        k;

    memset(&req, 0, sizeof(req));
    memset(res, 0, sizeof(*res));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.0f;
    req.sampling.n_probs = 1;
    req.prompt = ids;
    req.n_prompt = n;
    req.max_tokens = gen;
    req.ignore_eos = 1;
    req.session_id = session;
    req.session_id_len = session ? strlen(session) : 0;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        fprintf(stderr, "starling-sessbench: submit: %s\n", err.msg);
        return -1;
    }
    for ( ;; ) {
        if (st_engine_step(e, &err) != ST_OK) {
            fprintf(stderr, "starling-sessbench: step: %s\n", err.msg);
        }
        st_seq_take(s, &out);
        for (k = 0; k < out.n_tokens; k++) {
            if (out.tokens[k].token >= 0 && res->n < MAX_GEN) {
                res->ids[res->n] = out.tokens[k].token;
                res->lp[res->n] = out.tokens[k].logprob;
                res->n++;
            }
        }
        if (out.finish != ST_FINISH_NONE) {
            break;
        }
    }
    res->ttft_ms = out.ttft_ms;
    res->cached = out.n_cached_tokens;
    res->session = out.session;
    st_seq_release(e, s);
    return out.finish == ST_FINISH_ERROR ? -1 : 0;
}


static st_engine *
make_engine(const opts *o, uint64_t kv_bytes)
{
    st_engine_params p;
    st_engine       *e;
    st_error         err;

    st_engine_params_default(&p);
    p.path = o->model;
    p.n_threads = o->threads;
    p.max_seqs = 2;
    p.n_ctx = o->history + o->user + o->gen + 64;
    p.kv_bytes = kv_bytes;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        fprintf(stderr, "starling-sessbench: %s\n", err.msg);
        return NULL;
    }
    return e;
}


static void
report(const char *mode, const double *v, uint32_t n, uint32_t cached)
{
    double sum = 0, lo = v[0], hi = v[0];
    uint32_t i;

    for (i = 0; i < n; i++) {
        sum += v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    printf("%-10s  %10.1f  %8.1f  %8.1f  %8u\n", mode, sum / n, lo, hi,
           cached);
}


static int
parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v == 0 || v > 1000000) {
        return -1;
    }
    *out = (uint32_t) v;
    return 0;
}


int
main(int argc, char **argv)
{
    opts          o = { NULL, NULL, 2000, 32, 16, 2, 3 };
    st_engine    *e;
    int32_t      *hist, *turn_ids, *filler;
    uint32_t      i, r, n_vocab, n_turn, per_block_bytes, need_blocks;
    uint64_t      x = 0x9e3779b97f4a7c15ull;
    double        t_re[64], t_res[64], t_sp[64];
    uint32_t      c_re = 0, c_res = 0, c_sp = 0;
    turn_res      res, ref;
    char          sid[32];
    int           rc = 0;

    for (i = 1; i < (uint32_t) argc; i++) {
        const char *a = argv[i], *v = i + 1 < (uint32_t) argc ? argv[i + 1]
                                                               : NULL;
        int bad = v == NULL;

        if (!bad && strcmp(a, "-m") == 0) {
            o.model = v;
        } else if (!bad && strcmp(a, "--store") == 0) {
            o.store = v;
        } else if (!bad && strcmp(a, "-H") == 0) {
            bad = parse_u32(v, &o.history);
        } else if (!bad && strcmp(a, "-u") == 0) {
            bad = parse_u32(v, &o.user);
        } else if (!bad && strcmp(a, "-g") == 0) {
            bad = parse_u32(v, &o.gen) || o.gen > MAX_GEN;
        } else if (!bad && strcmp(a, "-t") == 0) {
            bad = parse_u32(v, &o.threads);
        } else if (!bad && strcmp(a, "-r") == 0) {
            bad = parse_u32(v, &o.reps) || o.reps > 64;
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "usage: starling-sessbench -m MODEL.gguf [-H 2000] "
                    "[-u 32] [-g 16] [-t 2] [-r 3 (<= 64)] [--store DIR]\n");
            return 2;
        }
        i++;
    }
    if (o.store != NULL && o.history < 128) {
        fprintf(stderr, "starling-sessbench: --store needs -H >= 128\n");
        return 2;
    }
    if (o.model == NULL) {
        fprintf(stderr, "starling-sessbench: -m MODEL.gguf is required\n");
        return 2;
    }

    /* the default KV pool: two full contexts */
    e = make_engine(&o, 0);
    if (e == NULL) {
        return 1;
    }
    n_vocab = st_engine_info(e)->n_vocab;
    per_block_bytes = (uint32_t) (st_engine_info(e)->kv_bytes
                                  / st_engine_info(e)->kv_blocks_total);
    n_turn = o.history + o.user;
    hist = malloc(sizeof(int32_t) * n_turn);
    turn_ids = malloc(sizeof(int32_t) * (n_turn + o.gen));
    filler = malloc(sizeof(int32_t) * (n_turn + o.gen + 16));
    if (hist == NULL || turn_ids == NULL || filler == NULL) {
        return 1;
    }
    for (i = 0; i < n_turn; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hist[i] = (int32_t) (3 + x % (n_vocab - 3));
    }
    printf("model %s (%s, %s), %u threads; history %u tokens, turn adds %u, "
           "generates %u; %u runs\n", st_engine_info(e)->name,
           st_engine_info(e)->arch, st_engine_info(e)->quant_kind,
           o.threads, o.history, o.user, o.gen, o.reps);
    printf("%-10s  %10s  %8s  %8s  %8s\n", "mode", "TTFT ms", "min", "max",
           "cached");

    for (r = 0; r < o.reps && rc == 0; r++) {
        /* recompute: a fresh engine, nothing cached */
        st_engine_free(e);
        e = make_engine(&o, 0);
        if (e == NULL || run_turn(e, hist, n_turn, o.gen, NULL, &res) != 0) {
            return 1;
        }
        t_re[r] = res.ttft_ms;
        c_re = res.cached;
        fprintf(stderr, "run %u: recompute %.1f ms\n", r + 1, res.ttft_ms);

        /* resident: turn N-1 (the history minus its last turn) ran in
         * this session; turn N extends it */
        snprintf(sid, sizeof(sid), "bench-%u", r);
        if (run_turn(e, hist, o.history, 1, sid, &res) != 0) {
            return 1;
        }
        memcpy(turn_ids, hist, sizeof(int32_t) * o.history);
        turn_ids[o.history] = res.ids[0];
        memcpy(turn_ids + o.history + 1, hist + o.history,
               sizeof(int32_t) * (o.user - 1));
        if (run_turn(e, turn_ids, n_turn, o.gen, sid, &ref) != 0) {
            return 1;
        }
        t_res[r] = ref.ttft_ms;
        c_res = ref.cached;
        fprintf(stderr, "run %u: resident %.1f ms\n", r + 1, ref.ttft_ms);
    }

    if (o.store != NULL) {
        /* a pool that holds the session or the filler, not both */
        need_blocks = (n_turn + o.gen + 15) / 16;
        for (r = 0; r < o.reps && rc == 0; r++) {
            st_error err;
            turn_res fr;
            uint32_t n_fill = (need_blocks - 4) * 16 - 1;

            st_engine_free(e);
            e = make_engine(&o, (uint64_t) per_block_bytes
                                * (need_blocks + 8));
            if (e == NULL
                || st_engine_session_store(e, o.store, (uint64_t) 1 << 34, 0,
                                           &err) != ST_OK)
            {
                fprintf(stderr, "starling-sessbench: store: %s\n",
                        e ? err.msg : "no engine");
                return 1;
            }
            snprintf(sid, sizeof(sid), "bench-spill-%u", r);
            if (run_turn(e, hist, o.history, 1, sid, &res) != 0) {
                return 1;
            }
            /* a filler prompt (reversed history: no shared prefix) needs
             * more blocks than are free: the idle session is spilled */
            for (i = 0; i < n_fill; i++) {
                filler[i] = hist[n_turn - 1 - i % n_turn];
            }
            if (run_turn(e, filler, n_fill, 1, NULL, &fr) != 0) {
                return 1;
            }
            if (run_turn(e, turn_ids, n_turn, o.gen, sid, &res) != 0) {
                return 1;
            }
            t_sp[r] = res.ttft_ms;
            c_sp = res.cached;
            fprintf(stderr, "run %u: restored %.1f ms\n", r + 1,
                    res.ttft_ms);
            if (res.session != ST_SESSION_RESTORED) {
                fprintf(stderr, "starling-sessbench: the session was not "
                        "restored (%s)\n", st_session_result_str(res.session));
                rc = 1;
            } else if (res.n != ref.n
                       || memcmp(res.ids, ref.ids, sizeof(int32_t) * res.n)
                       || memcmp(res.lp, ref.lp, sizeof(float) * res.n))
            {
                fprintf(stderr, "starling-sessbench: restored output differs "
                        "from the resident one\n");
                rc = 1;
            }
        }
    }

    report("recompute", t_re, o.reps, c_re);
    report("resident", t_res, o.reps, c_res);
    if (o.store != NULL && rc == 0) {
        report("restored", t_sp, o.reps, c_sp);
        printf("restored turns: ids and logprobs equal the resident turn's\n");
    }
    st_engine_free(e);
    free(hist);
    free(turn_ids);
    free(filler);
    return rc;
}
