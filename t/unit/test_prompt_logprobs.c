/*
 * Prompt token logprobs (st_request.prompt_logprobs, for completions
 * echo + logprobs), checked against the sampler's own logprobs: the
 * top alternatives reported for prompt token i + 1 must be those of the
 * first generated token of a separate request whose prompt is tokens
 * 0..i (temperature 1, no penalties: the sampler reports the model's
 * log-softmax there), and token i + 1's logprob must equal its entry
 * when it is among them. Long prompts cross several steps (at most
 * ST_PROMPT_LP_ROWS rows with logits each), and the prefix cache must
 * not skip positions.
 */
#include "tap.h"
#include "starling/st_engine.h"
#include "starling/st_tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TOP 5


static st_seq *
submit(st_engine *e, const int32_t *ids, size_t n, int prompt_lp,
    uint32_t max_tokens)
{
    st_request req;
    st_seq *s = NULL;
    st_error err = { 0 };

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 1.0f;
    req.sampling.repeat_penalty = 1.0f;
    req.sampling.n_probs = N_TOP;
    req.sampling.seed = 1;
    req.prompt = ids;
    req.n_prompt = n;
    req.max_tokens = max_tokens;
    req.prompt_logprobs = prompt_lp;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        diag("submit: %s", err.msg);
    }
    return s;
}


typedef struct {
    st_token_out     p[512];
    st_token_logprob tops[512][N_TOP];
    size_t           n_prompt_out;
    int              got_prompt, takes_with_prompt;
    st_token_logprob first_top[N_TOP];
    uint32_t         first_n_top;
    st_finish_reason finish;
} result;


static void
run(st_engine *e, st_seq *s, result *r)
{
    st_error err = { 0 };

    memset(r, 0, sizeof(*r));
    while (st_engine_has_work(e)) {
        st_seq_output o;
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
            break;
        }
        st_seq_take(s, &o);
        if (o.prompt_logprobs) {
            r->takes_with_prompt++;
            r->got_prompt = 1;
            r->n_prompt_out = o.n_prompt_out;
            for (size_t i = 0; i < o.n_prompt_out && i < 512; i++) {
                r->p[i] = o.prompt_tokens[i];
                memcpy(r->tops[i], o.prompt_tokens[i].top,
                       sizeof(st_token_logprob) * o.prompt_tokens[i].n_top);
            }
        }
        for (size_t k = 0; k < o.n_tokens; k++) {
            if (o.tokens[k].token >= 0 && r->first_n_top == 0) {
                r->first_n_top = o.tokens[k].n_top;
                memcpy(r->first_top, o.tokens[k].top,
                       sizeof(st_token_logprob) * o.tokens[k].n_top);
            }
        }
        if (o.finish != ST_FINISH_NONE) {
            r->finish = o.finish;
        }
    }
    st_seq_release(e, s);
}


static void
check_model(const char *model, const char *name)
{
    char path[1024];
    st_engine_params p;
    st_engine *e = NULL;
    st_error err = { 0 };
    st_tokens toks = { 0 };
    const char *text = "Once upon a time, there was a little girl named "
        "Lily. She loved to play outside in the sun with her dog. One day "
        "she saw a big red ball in the park and she ran to get it.";
    static result full, ref;
    int bad_top = 0, bad_lp = 0, compared = 0;

    snprintf(path, sizeof(path), "%s/%s", tap_shared_dir(), model);
    st_engine_params_default(&p);
    p.path = path;
    p.n_threads = 1;
    p.max_seqs = 2;
    p.n_ctx = 256;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        skip("%s: %s", name, err.msg);
        return;
    }
    st_tokenize(st_engine_tokenizer(e), text, strlen(text), 1, 1, &toks,
                &err);
    if (!ok(toks.n > 40, "%s: prompt of %zu tokens",
            name, toks.n))
    {
        goto done;
    }
    /* warm the prefix cache with the same prompt: prompt logprobs must
     * still cover every position */
    run(e, submit(e, toks.ids, toks.n, 0, 1), &ref);
    run(e, submit(e, toks.ids, toks.n, 1, 3), &full);
    ok(full.got_prompt && full.takes_with_prompt == 1
       && full.n_prompt_out == toks.n - 1, "%s: prompt logprobs once, "
       "%zu of %zu tokens", name, full.n_prompt_out, toks.n);
    ok(full.finish == ST_FINISH_LENGTH, "%s: then generates (finish %d)",
       name, full.finish);
    for (size_t i = 0; i + 1 < toks.n && i < full.n_prompt_out; i += 7) {
        const st_token_out *t = &full.p[i];
        run(e, submit(e, toks.ids, i + 1, 0, 1), &ref);
        compared++;
        if (t->token != toks.ids[i + 1] || t->n_top != N_TOP
            || ref.first_n_top != N_TOP)
        {
            bad_top++;
            continue;
        }
        for (uint32_t k = 0; k < N_TOP; k++) {
            if (full.tops[i][k].token != ref.first_top[k].token
                || fabsf(full.tops[i][k].logprob - ref.first_top[k].logprob)
                   > 1e-3f)
            {
                if (bad_top++ < 3) {
                    diag("pos %zu top %u: %d %g vs %d %g", i, k,
                         full.tops[i][k].token, full.tops[i][k].logprob,
                         ref.first_top[k].token, ref.first_top[k].logprob);
                }
                break;
            }
        }
        for (uint32_t k = 0; k < N_TOP; k++) {
            if (full.tops[i][k].token == t->token
                && full.tops[i][k].logprob != t->logprob)
            {
                bad_lp++;
            }
        }
        if (!(t->logprob <= 0.0f) || (N_TOP > 0
            && t->logprob > full.tops[i][0].logprob))
        {
            bad_lp++;
        }
    }
    ok(compared > 3 && bad_top == 0, "%s: %d positions' alternatives equal "
       "the sampler's for the prefix alone (%d differ)", name, compared,
       bad_top);
    ok(bad_lp == 0, "%s: token logprobs consistent with the alternatives "
       "(%d bad)", name, bad_lp);
    /* a one-token prompt: nothing but the first token's null */
    {
        run(e, submit(e, toks.ids, 1, 1, 1), &full);
        ok(full.got_prompt && full.n_prompt_out == 0, "%s: one-token "
           "prompt: no prompt logprobs beyond the null", name);
    }
done:
    free(toks.ids);
    st_engine_free(e);
}


int
main(void)
{
    check_model("models/stories260K.gguf", "stories260K (SPM)");
    check_model("models/synthetic/synth-qwen2-F16-embQ4_0.gguf",
                "synth-qwen2 (BPE)");
    return done_testing();
}
