/*
 * Engine API tests on the shipped models: batch invariance (a sequence's
 * ids and logprobs are bit-identical alone, among others, with any prefill
 * chunk size and after preemption), cancellation in every state, stop
 * strings, length limits and input validation.
 */
#include "tap.h"
#include "starling/st_engine.h"

#include <math.h>

#define N_SEQ 6
#define N_TOP 5         /* top alternatives kept per token */

typedef struct {
    int32_t  ids[256];
    float    logprobs[256];
    uint32_t n_top[256];
    st_token_logprob top[256][N_TOP];
    uint32_t n;
    st_finish_reason finish;
    char     text[4096];
    size_t   text_len;
} run_out;

static const char *prompts[N_SEQ] = {
    "Once upon a time",
    "One day, a little girl named Lily",
    "The cat sat on the",
    "Tom and his dog went to the park. They",
    "Lily",
    "Once upon a time, there was a big red ball that liked to bounce and "
    "bounce all day long in the sunny garden"
};


static st_engine *
make_engine(const char *model, uint32_t max_seqs, uint32_t step_tokens,
    uint64_t kv_bytes, uint32_t threads)
{
    st_engine_params p;
    st_engine       *e;
    st_error         err;

    st_engine_params_default(&p);
    p.path = model;
    p.max_seqs = max_seqs;
    p.step_tokens = step_tokens;
    p.kv_bytes = kv_bytes;
    p.n_threads = threads;
    p.n_ctx = 256;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        diag("engine: %s", err.msg);
        return NULL;
    }
    return e;
}


static st_seq *
submit(st_engine *e, int i, float temp, uint32_t max_tokens,
    const char *const *stop, size_t n_stop)
{
    st_request req;
    st_tokens  toks = {0};
    st_seq    *s = NULL;
    st_error   err;

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = temp;
    req.sampling.top_k = 40;
    req.sampling.top_p = 0.95f;
    req.sampling.seed = 1234 + (uint64_t) i;
    req.sampling.n_probs = 2;
    st_tokenize(st_engine_tokenizer(e), prompts[i], strlen(prompts[i]), 1, 1,
                &toks, &err);
    req.prompt = toks.ids;
    req.n_prompt = toks.n;
    req.max_tokens = max_tokens;
    req.ignore_eos = 1;
    req.stop = stop;
    req.n_stop = n_stop;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        diag("submit: %s", err.msg);
    }
    free(toks.ids);
    return s;
}


/* Records one generated token: id, logprob and top alternatives. */
static void
append_token(run_out *o, const st_token_out *t)
{
    uint32_t j;

    if (t->token < 0 || o->n >= 256) {
        return;
    }
    o->ids[o->n] = t->token;
    o->logprobs[o->n] = t->logprob;
    o->n_top[o->n] = t->n_top < N_TOP ? t->n_top : N_TOP;
    memset(o->top[o->n], 0, sizeof(o->top[o->n]));
    for (j = 0; j < o->n_top[o->n]; j++) {
        o->top[o->n][j] = t->top[j];
    }
    o->n++;
}


static void
collect(st_seq *s, run_out *o)
{
    st_seq_output out;
    size_t        k;

    st_seq_take(s, &out);
    for (k = 0; k < out.n_tokens; k++) {
        const st_token_out *t = &out.tokens[k];
        append_token(o, t);
        if (o->text_len + t->text_len < sizeof(o->text)) {
            memcpy(o->text + o->text_len, t->text, t->text_len);
            o->text_len += t->text_len;
        }
    }
    o->finish = out.finish;
}


/* Runs the given sequences to completion, stepping the engine. */
static void
run_all(st_engine *e, st_seq **s, run_out *o, int n)
{
    int i, busy, guard = 0;
    st_error err;

    do {
        st_engine_step(e, &err);
        busy = 0;
        for (i = 0; i < n; i++) {
            if (s[i] != NULL && o[i].finish == ST_FINISH_NONE) {
                collect(s[i], &o[i]);
                busy |= o[i].finish == ST_FINISH_NONE;
            }
        }
    } while (busy && ++guard < 10000);
    for (i = 0; i < n; i++) {
        if (s[i] != NULL) {
            st_seq_release(e, s[i]);
        }
    }
}


static int
same_run(const run_out *a, const run_out *b)
{
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof(int32_t)) == 0
           && memcmp(a->logprobs, b->logprobs, a->n * sizeof(float)) == 0
           && memcmp(a->n_top, b->n_top, a->n * sizeof(uint32_t)) == 0
           && memcmp(a->top, b->top, a->n * sizeof(a->top[0])) == 0
           && a->text_len == b->text_len
           && memcmp(a->text, b->text, a->text_len) == 0;
}


static void
batch_invariance(const char *model, float temp)
{
    static run_out solo[N_SEQ], mixed[N_SEQ], chunked[N_SEQ], tight[N_SEQ];
    st_seq    *s[N_SEQ];
    st_engine *e;
    int        i, all;
    const char *mname = strrchr(model, '/') + 1;

    memset(solo, 0, sizeof(solo));
    memset(mixed, 0, sizeof(mixed));
    memset(chunked, 0, sizeof(chunked));
    memset(tight, 0, sizeof(tight));

    /* alone, one thread */
    e = make_engine(model, 1, 512, 0, 1);
    if (e == NULL) {
        ok(0, "%s: engine", mname);
        return;
    }
    for (i = 0; i < N_SEQ; i++) {
        st_seq *one = submit(e, i, temp, 40, NULL, 0);
        run_all(e, &one, &solo[i], 1);
    }
    st_engine_free(e);

    /* all together, two threads, default chunking */
    e = make_engine(model, 16, 512, 0, 2);
    for (i = 0; i < N_SEQ; i++) {
        s[i] = submit(e, i, temp, 40, NULL, 0);
    }
    run_all(e, s, mixed, N_SEQ);
    st_engine_free(e);

    /* together with a 7-token step budget: prompts prefilled in chunks,
     * interleaved with other sequences' decode rows */
    e = make_engine(model, 16, 7, 0, 2);
    for (i = 0; i < N_SEQ; i++) {
        s[i] = submit(e, i, temp, 40, NULL, 0);
    }
    run_all(e, s, chunked, N_SEQ);
    st_engine_free(e);

    /* a KV pool too small for all at once: sequences get preempted and
     * recomputed */
    e = make_engine(model, 16, 64, 1, 2);   /* 1 byte -> rejected */
    ok(e == NULL, "%s: a KV budget below one block is rejected", mname);
    {
        const st_model_info *in;
        uint64_t per_block;

        e = make_engine(model, 16, 64, 0, 2);
        in = st_engine_info(e);
        per_block = in->kv_bytes / in->kv_blocks_total;
        st_engine_free(e);
        e = make_engine(model, 16, 64, per_block * 12, 2);
    }
    for (i = 0; i < N_SEQ; i++) {
        s[i] = submit(e, i, temp, 40, NULL, 0);
    }
    run_all(e, s, tight, N_SEQ);
    {
        st_engine_stats st;
        st_engine_get_stats(e, &st);
        ok(st.kv_blocks_free == st.kv_blocks_total && st.seqs_active == 0,
           "%s: all KV blocks back in the pool (%u/%u)", mname,
           st.kv_blocks_free, st.kv_blocks_total);
    }
    st_engine_free(e);

    all = 1;
    for (i = 0; i < N_SEQ; i++) {
        all &= solo[i].n == 40;
    }
    ok(all, "%s temp %.1f: every solo run produced 40 tokens", mname, temp);
    for (i = 0; i < N_SEQ; i++) {
        ok(same_run(&solo[i], &mixed[i]) && same_run(&solo[i], &chunked[i])
           && same_run(&solo[i], &tight[i]),
           "%s temp %.1f seq %d: ids, logprobs and text bit-identical alone, "
           "in a batch of %d, with 7-token chunks and under preemption",
           mname, temp, i, N_SEQ);
    }
}


static void
cancellation(const char *model)
{
    st_engine       *e = make_engine(model, 2, 512, 0, 1);
    st_seq          *a, *b, *c;
    st_seq_output    out;
    st_engine_stats  st;
    st_error         err;

    a = submit(e, 0, 0, 100, NULL, 0);
    b = submit(e, 1, 0, 100, NULL, 0);
    c = submit(e, 2, 0, 100, NULL, 0);     /* queued: max_seqs is 2 */
    st_engine_step(e, &err);               /* a, b prefill */
    st_engine_get_stats(e, &st);
    ok(st.seqs_active == 2 && st.seqs_queued == 1,
       "two active, one queued");
    st_seq_cancel(c);                      /* cancel while queued */
    st_seq_cancel(a);                      /* cancel while decoding */
    st_seq_cancel(a);                      /* idempotent */
    st_engine_step(e, &err);
    st_seq_take(a, &out);
    ok(out.finish == ST_FINISH_CANCELLED, "active sequence cancelled");
    st_seq_take(c, &out);
    ok(out.finish == ST_FINISH_CANCELLED, "queued sequence cancelled");
    st_engine_get_stats(e, &st);
    ok(st.seqs_active == 1, "one sequence left running");
    /* release while running (client went away): freed at the next step */
    st_seq_release(e, b);
    st_engine_step(e, &err);
    st_engine_get_stats(e, &st);
    ok(st.seqs_active == 0 && st.kv_blocks_free == st.kv_blocks_total,
       "released sequence retired within one step, KV blocks free");
    st_seq_release(e, a);
    st_seq_release(e, c);
    ok(!st_engine_has_work(e), "engine idle");

    /* cancel during prefill: a long prompt prefilled 4 tokens per step */
    st_engine_free(e);
    e = make_engine(model, 2, 4, 0, 1);
    a = submit(e, 5, 0, 10, NULL, 0);
    st_engine_step(e, &err);
    st_seq_take(a, &out);
    ok(out.n_tokens == 0 && out.finish == ST_FINISH_NONE,
       "long prompt still prefilling after one step");
    st_seq_cancel(a);
    st_engine_step(e, &err);
    st_seq_take(a, &out);
    st_engine_get_stats(e, &st);
    ok(out.finish == ST_FINISH_CANCELLED
       && st.kv_blocks_free == st.kv_blocks_total,
       "cancelled during prefill, blocks freed");
    st_seq_release(e, a);
    st_engine_free(e);
}


static void
limits_and_stops(const char *model)
{
    st_engine      *e = make_engine(model, 4, 512, 0, 1);
    st_seq         *s;
    run_out         o, ref;
    st_request      req;
    st_error        err;
    int32_t         ids[300];
    const char     *stop[1];
    char            needle[32];
    char           *p;
    size_t          i;

    /* greedy reference text */
    memset(&ref, 0, sizeof(ref));
    s = submit(e, 0, 0, 30, NULL, 0);
    run_all(e, &s, &ref, 1);
    ok(ref.finish == ST_FINISH_LENGTH && ref.n == 30,
       "max_tokens ends with finish=length");

    /* a stop string taken from the middle of that text */
    p = ref.text + ref.text_len / 2;
    snprintf(needle, sizeof(needle), "%.6s", p);
    stop[0] = needle;
    memset(&o, 0, sizeof(o));
    s = submit(e, 0, 0, 30, stop, 1);
    run_all(e, &s, &o, 1);
    ok(o.finish == ST_FINISH_STOP
       && o.text_len == (size_t) (strstr(ref.text, needle) - ref.text)
       && memcmp(o.text, ref.text, o.text_len) == 0,
       "stop string: text up to (not including) the match, finish=stop");

    /* validation */
    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.max_tokens = 1;
    req.prompt = ids;
    req.n_prompt = 0;
    ok(st_engine_submit(e, &req, &s, &err) == ST_ERR_INVALID,
       "empty prompt rejected: %s", err.msg);
    for (i = 0; i < 300; i++) {
        ids[i] = 1;
    }
    req.n_prompt = 300;
    ok(st_engine_submit(e, &req, &s, &err) == ST_ERR_CONTEXT,
       "prompt longer than the context rejected: %s", err.msg);
    req.n_prompt = 2;
    ids[1] = 1 << 20;
    ok(st_engine_submit(e, &req, &s, &err) == ST_ERR_INVALID,
       "out-of-vocab id rejected: %s", err.msg);
    ids[1] = 1;
    req.sampling.temperature = NAN;
    ok(st_engine_submit(e, &req, &s, &err) == ST_ERR_INVALID,
       "NaN temperature rejected: %s", err.msg);
    st_engine_free(e);
}


/* ids, logprobs and alternatives bit-identical (text not compared) */
static int
same_tokens(const run_out *a, const run_out *b)
{
    uint32_t i;

    if (a->n != b->n || memcmp(a->ids, b->ids, a->n * sizeof(int32_t)) != 0
        || memcmp(a->logprobs, b->logprobs, a->n * sizeof(float)) != 0
        || memcmp(a->n_top, b->n_top, a->n * sizeof(uint32_t)) != 0)
    {
        return 0;
    }
    for (i = 0; i < a->n; i++) {
        if (memcmp(a->top[i], b->top[i], sizeof(a->top[i])) != 0) {
            return 0;
        }
    }
    return 1;
}


/* The logprobs are real: every one <= 0, not all 0, N_TOP alternatives
 * per token in descending order, and the sampled token's logprob equals
 * its entry when it is among them (else is no higher than the last). */
static int
real_logprobs(const run_out *o)
{
    uint32_t i, j;
    int      some_negative = 0;

    for (i = 0; i < o->n; i++) {
        int found = 0;

        if (!(o->logprobs[i] <= 0.0f) || o->n_top[i] != N_TOP) {
            return 0;
        }
        some_negative |= o->logprobs[i] < 0.0f;
        for (j = 0; j < N_TOP; j++) {
            if (!(o->top[i][j].logprob <= 0.0f)
                || (j > 0 && o->top[i][j].logprob > o->top[i][j - 1].logprob))
            {
                return 0;
            }
            if (o->top[i][j].token == o->ids[i]) {
                found = 1;
                if (o->top[i][j].logprob != o->logprobs[i]) {
                    return 0;
                }
            }
        }
        if (!found && o->logprobs[i] > o->top[i][N_TOP - 1].logprob) {
            return 0;
        }
    }
    return o->n > 0 && some_negative;
}


/* Prefix reuse: a second request with the same long prompt (or the same
 * "system prompt" and another question) reuses cached blocks, reports
 * them, and produces exactly the output of a cold run. */
static void
prefix_reuse(const char *model)
{
    static const char *sys =
        "Once upon a time, there was a little girl named Lily. She loved to "
        "play outside in the park with her friends and her dog. ";
    const char        *q1 = "One day, she saw a big red ball.";
    const char        *q2 = "One day, her dog ran away.";
    char               p1[512], p2[512];
    st_engine         *e;
    st_request         req;
    st_tokens          t1 = {0}, t2 = {0};
    st_seq            *s;
    st_seq_output      out;
    run_out            cold, warm, cold2, warm2;
    st_engine_stats    st;
    st_error           err;
    uint32_t           common = 0, cached;

    snprintf(p1, sizeof(p1), "%s%s", sys, q1);
    snprintf(p2, sizeof(p2), "%s%s", sys, q2);

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.7f;
    req.sampling.seed = 99;
    req.sampling.n_probs = N_TOP;   /* real logprobs and alternatives */
    req.max_tokens = 24;
    req.ignore_eos = 1;

    /* cold runs: one engine per prompt, nothing cached */
    memset(&cold, 0, sizeof(cold));
    memset(&cold2, 0, sizeof(cold2));
    e = make_engine(model, 4, 512, 0, 1);
    st_tokenize(st_engine_tokenizer(e), p1, strlen(p1), 1, 1, &t1, &err);
    st_tokenize(st_engine_tokenizer(e), p2, strlen(p2), 1, 1, &t2, &err);
    while (common < t1.n && common < t2.n && t1.ids[common] == t2.ids[common]) {
        common++;
    }
    req.prompt = t1.ids;
    req.n_prompt = t1.n;
    st_engine_submit(e, &req, &s, &err);
    run_all(e, &s, &cold, 1);
    st_engine_free(e);
    e = make_engine(model, 4, 512, 0, 1);
    req.prompt = t2.ids;
    req.n_prompt = t2.n;
    st_engine_submit(e, &req, &s, &err);
    run_all(e, &s, &cold2, 1);
    st_engine_free(e);

    /* warm: prompt 1, then prompt 1 again, then prompt 2, same engine */
    e = make_engine(model, 4, 512, 0, 1);
    req.prompt = t1.ids;
    req.n_prompt = t1.n;
    st_engine_submit(e, &req, &s, &err);
    memset(&warm, 0, sizeof(warm));
    run_all(e, &s, &warm, 1);

    memset(&warm, 0, sizeof(warm));
    st_engine_submit(e, &req, &s, &err);
    st_engine_step(e, &err);
    st_seq_take(s, &out);
    cached = out.n_cached_tokens;
    ok(cached == (t1.n - 1) / 16 * 16 && cached > 0,
       "same prompt again: %u of %zu prompt tokens served from the cache",
       cached, t1.n);
    collect(s, &warm);
    {
        size_t k;
        for (k = 0; k < out.n_tokens; k++) {   /* first step's tokens */
            append_token(&warm, &out.tokens[k]);
        }
    }
    warm.finish = out.finish;
    run_all(e, &s, &warm, 1);
    ok(cold.n == 24 && real_logprobs(&cold) && real_logprobs(&cold2),
       "cold runs: %u tokens, each with a logprob < 0 somewhere and %d "
       "alternatives, best first, the sampled one among them or below",
       cold.n, N_TOP);
    ok(same_tokens(&warm, &cold),
       "cached run: exactly the cold run's tokens, logprobs and top-%d "
       "alternatives", N_TOP);

    memset(&warm2, 0, sizeof(warm2));
    req.prompt = t2.ids;
    req.n_prompt = t2.n;
    st_engine_submit(e, &req, &s, &err);
    st_engine_step(e, &err);
    st_seq_take(s, &out);
    ok(out.n_cached_tokens == common / 16 * 16,
       "shared system prompt: %u cached tokens (common prefix %u tokens)",
       out.n_cached_tokens, common);
    {
        size_t k;
        for (k = 0; k < out.n_tokens; k++) {
            append_token(&warm2, &out.tokens[k]);
        }
    }
    warm2.finish = out.finish;
    run_all(e, &s, &warm2, 1);
    ok(same_tokens(&warm2, &cold2),
       "with a cached system prompt: same tokens, logprobs and top-%d "
       "alternatives as cold", N_TOP);
    st_engine_get_stats(e, &st);
    ok(st.kv_blocks_free == st.kv_blocks_total && st.kv_blocks_cached > 0,
       "idle engine: every block available (%u cached for reuse)",
       st.kv_blocks_cached);
    st_engine_free(e);
    free(t1.ids);
    free(t2.ids);
}


/* A sequence longer than the whole KV pool fails with a clear error while
 * one that fits completes; nothing hangs. */
static void
kv_too_small(const char *model)
{
    st_engine           *e;
    const st_model_info *in;
    uint64_t             per_block;
    st_seq              *both[2];
    run_out              outs[2];

    e = make_engine(model, 4, 512, 0, 1);
    in = st_engine_info(e);
    per_block = in->kv_bytes / in->kv_blocks_total;
    st_engine_free(e);
    e = make_engine(model, 4, 512, per_block * 3, 1);   /* 48 positions */

    both[0] = submit(e, 5, 0, 40, NULL, 0);  /* ~30-token prompt + 40 */
    both[1] = submit(e, 4, 0, 8, NULL, 0);   /* "Lily" + 8 */
    memset(outs, 0, sizeof(outs));
    run_all(e, both, outs, 2);
    ok(outs[0].finish == ST_FINISH_ERROR,
       "a sequence that outgrows the whole KV pool fails (not a hang)");
    ok(outs[1].finish == ST_FINISH_LENGTH && outs[1].n == 8,
       "a sequence that fits completes next to it");
    st_engine_free(e);
}


/* Under KV pressure the oldest running stream gets one token every step
 * (README "Scheduling": the newest sequence is preempted so that every
 * running stream advances); a decode row whose block reservation fails
 * must not just sit the step out. */
static void
decode_never_stalls(const char *model)
{
    st_engine           *e;
    const st_model_info *in;
    uint64_t             per_block;
    st_seq              *s[3];
    st_seq_output        out;
    st_error             err;
    uint32_t             got[3] = {0, 0, 0}, steps = 0, stalls = 0;
    int                  i, first_seen = 0, finished = 0, guard = 0;
    size_t               k;

    e = make_engine(model, 4, 64, 0, 1);
    in = st_engine_info(e);
    per_block = in->kv_bytes / in->kv_blocks_total;
    st_engine_free(e);
    /* 6 blocks of 16 positions; three sequences of ~50 positions each */
    e = make_engine(model, 4, 64, per_block * 6, 1);
    s[0] = submit(e, 0, 0, 40, NULL, 0);
    s[1] = submit(e, 2, 0, 40, NULL, 0);
    s[2] = submit(e, 4, 0, 40, NULL, 0);

    while (st_engine_has_work(e) && guard++ < 2000) {
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
            break;
        }
        steps++;
        for (i = 0; i < 3; i++) {
            uint32_t n_new = 0;

            st_seq_take(s[i], &out);
            for (k = 0; k < out.n_tokens; k++) {
                n_new += out.tokens[k].token >= 0;
            }
            got[i] += n_new;
            if (i == 0 && !finished) {
                if (first_seen && n_new != 1) {
                    stalls++;
                }
                first_seen |= n_new > 0;
                finished = out.finish != ST_FINISH_NONE;
            }
        }
    }
    ok(got[0] == 40 && got[1] == 40 && got[2] == 40,
       "KV pressure: all three streams complete (%u/%u/%u tokens, %u steps)",
       got[0], got[1], got[2], steps);
    ok(stalls == 0, "KV pressure: the oldest stream advanced every step "
       "(%u steps without its token)", stalls);
    for (i = 0; i < 3; i++) {
        st_seq_release(e, s[i]);
    }
    st_engine_free(e);
}


int
main(void)
{
    char m1[1024], m2[1024];

    snprintf(m1, sizeof(m1), "%s/models/stories260K.gguf", tap_root_dir());
    snprintf(m2, sizeof(m2), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    batch_invariance(m1, 0.0f);
    batch_invariance(m1, 0.8f);
    batch_invariance(m2, 0.0f);
    batch_invariance(m2, 0.8f);
    cancellation(m1);
    limits_and_stops(m1);
    prefix_reuse(m1);
    prefix_reuse(m2);
    kv_too_small(m1);
    decode_never_stalls(m1);
    return done_testing();
}
