/*
 * starling-generate: offline text generation with the Starling engine.
 *
 *   starling-generate -m MODEL.gguf -p "Once upon a time" -n 64 --temp 0
 *
 * Generation goes through the same engine API the nginx module uses
 * (submit + step loop). --json prints prompt ids, generated ids and the
 * top logits of the first generated position (computed by one direct
 * forward pass over the prompt) so people and tests can compare with
 * llama.cpp's references.
 */
#include "starling/st_engine.h"
#include "model/model.h"
#include "backend/cpu/forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
usage(FILE *fp)
{
    fprintf(fp,
        "usage: starling-generate -m MODEL.gguf -p PROMPT [options]\n"
        "  -n N               tokens to generate (default 64)\n"
        "  --temp T           temperature, 0 = greedy (default 0)\n"
        "  --seed S           RNG seed (default 1)\n"
        "  --top-k K --top-p P --min-p P --repeat-penalty R\n"
        "  -t N               threads (default: all cores)\n"
        "  -c N               context size (default: model's)\n"
        "  --stop STR         stop string (repeatable)\n"
        "  --ignore-eos       keep going after end-of-generation tokens\n"
        "  --no-special       do not parse special tokens in the prompt\n"
        "  --sha256 HEX       verify the model file\n"
        "  --json             print ids and first-step top logits as JSON\n"
        "  --stats            print timings to stderr\n");
}


static int
parse_u64(const char *s, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && s[0] != '-';
}


static int
parse_f32(const char *s, float *out)
{
    char *end;

    errno = 0;
    *out = strtof(s, &end);
    return errno == 0 && end != s && *end == '\0';
}


static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}


/* Top-5 logits of the position after the prompt, by a direct forward. */
static int
first_step_top(const st_engine *e, const char *path, const int32_t *ids,
    size_t n, int32_t top_id[5], float top_logit[5])
{
    st_model    *m = NULL;
    st_forward  *f = NULL;
    st_kv_cache  kv;
    st_kv_seq    seq = {0};
    st_batch_entry *b = NULL;
    float       *logits = NULL;
    st_error     err;
    uint32_t     i, j, n_vocab = st_engine_info(e)->n_vocab;
    int          ok = 0;

    memset(&kv, 0, sizeof(kv));
    if (st_model_load(&m, path, NULL, &err) != ST_OK
        || st_forward_create(&f, m, (uint32_t) n, NULL, &err) != ST_OK
        || st_kv_cache_init(&kv, m->hp.n_layer,
                            m->hp.n_head_kv * m->hp.head_dim, 16,
                            (uint32_t) (n + 15) / 16, 1, &err) != ST_OK
        || st_kv_seq_reserve(&kv, &seq, (uint32_t) n) != ST_OK)
    {
        goto done;
    }
    b = calloc(n, sizeof(*b));
    logits = malloc(sizeof(float) * n_vocab);
    if (b == NULL || logits == NULL) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        b[i].token = ids[i];
        b[i].pos = i;
        b[i].seq = &seq;
        b[i].want_logits = (i == n - 1);
    }
    if (st_forward_run(f, &kv, b, (uint32_t) n, logits, &err) != ST_OK) {
        goto done;
    }
    for (j = 0; j < 5; j++) {
        int32_t best = -1;
        for (i = 0; i < n_vocab; i++) {
            uint32_t k;
            int      used = 0;
            for (k = 0; k < j; k++) {
                used |= top_id[k] == (int32_t) i;
            }
            if (!used && (best < 0 || logits[i] > logits[best])) {
                best = (int32_t) i;
            }
        }
        top_id[j] = best;
        top_logit[j] = logits[best];
    }
    ok = 1;

done:
    free(b);
    free(logits);
    st_kv_seq_free(&seq);
    st_kv_cache_free(&kv);
    st_forward_free(f);
    st_model_free(m);
    return ok;
}


int
main(int argc, char **argv)
{
    const char         *model = NULL, *prompt = NULL, *sha = NULL;
    const char         *stops[16];
    size_t              n_stop = 0;
    unsigned long long  v;
    int                 json = 0, stats = 0, parse_special = 1, i;
    st_engine_params    ep;
    st_request          req;
    st_engine          *e = NULL;
    st_seq             *s = NULL;
    st_tokens           toks = {0};
    st_error            err;
    st_seq_output       out;
    int32_t            *gen = NULL;
    size_t              n_gen = 0;
    double              t0, t1;
    int                 rc = 1;

    st_engine_params_default(&ep);
    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.0f;
    req.sampling.seed = 1;
    req.max_tokens = 64;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int         bad = 0;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        } else if (strcmp(a, "--stats") == 0) {
            stats = 1;
            continue;
        } else if (strcmp(a, "--ignore-eos") == 0) {
            req.ignore_eos = 1;
            continue;
        } else if (strcmp(a, "--no-special") == 0) {
            parse_special = 0;
            continue;
        }
        if (val == NULL) {
            fprintf(stderr, "starling-generate: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "-m") == 0) {
            model = val;
        } else if (strcmp(a, "-p") == 0) {
            prompt = val;
        } else if (strcmp(a, "--sha256") == 0) {
            sha = val;
        } else if (strcmp(a, "-n") == 0) {
            bad = !parse_u64(val, &v) || v == 0 || v > 1000000;
            req.max_tokens = (uint32_t) v;
        } else if (strcmp(a, "-t") == 0) {
            bad = !parse_u64(val, &v) || v > 1024;
            ep.n_threads = (uint32_t) v;
        } else if (strcmp(a, "-c") == 0) {
            bad = !parse_u64(val, &v) || v > (1u << 24);
            ep.n_ctx = (uint32_t) v;
        } else if (strcmp(a, "--seed") == 0) {
            bad = !parse_u64(val, &v);
            req.sampling.seed = v;
        } else if (strcmp(a, "--temp") == 0) {
            bad = !parse_f32(val, &req.sampling.temperature);
        } else if (strcmp(a, "--top-k") == 0) {
            bad = !parse_u64(val, &v) || v > 1000000;
            req.sampling.top_k = (int32_t) v;
        } else if (strcmp(a, "--top-p") == 0) {
            bad = !parse_f32(val, &req.sampling.top_p);
        } else if (strcmp(a, "--min-p") == 0) {
            bad = !parse_f32(val, &req.sampling.min_p);
        } else if (strcmp(a, "--repeat-penalty") == 0) {
            bad = !parse_f32(val, &req.sampling.repeat_penalty);
        } else if (strcmp(a, "--stop") == 0) {
            bad = n_stop == sizeof(stops) / sizeof(stops[0]);
            if (!bad) {
                stops[n_stop++] = val;
            }
        } else {
            fprintf(stderr, "starling-generate: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "starling-generate: bad value for %s: %s\n", a,
                    val);
            return 2;
        }
    }
    if (model == NULL || prompt == NULL) {
        usage(stderr);
        return 2;
    }

    ep.path = model;
    ep.sha256 = sha;
    ep.max_seqs = 1;
    t0 = now_ms();
    if (st_engine_create(&e, &ep, &err) != ST_OK) {
        fprintf(stderr, "starling-generate: %s\n", err.msg);
        return 1;
    }
    t1 = now_ms();
    if (stats) {
        fprintf(stderr, "load: %.1f ms\n", t1 - t0);
    }

    if (st_tokenize(st_engine_tokenizer(e), prompt, strlen(prompt), 1,
                    parse_special, &toks, &err) != ST_OK)
    {
        fprintf(stderr, "starling-generate: %s\n", err.msg);
        goto done;
    }
    req.prompt = toks.ids;
    req.n_prompt = toks.n;
    req.stop = stops;
    req.n_stop = n_stop;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        fprintf(stderr, "starling-generate: %s\n", err.msg);
        goto done;
    }
    gen = malloc(sizeof(int32_t) * (req.max_tokens + 1));
    if (gen == NULL) {
        goto done;
    }

    t0 = now_ms();
    do {
        size_t k;

        if (st_engine_step(e, &err) != ST_OK) {
            fprintf(stderr, "starling-generate: step failed: %s\n", err.msg);
            goto done;
        }
        st_seq_take(s, &out);
        for (k = 0; k < out.n_tokens; k++) {
            if (out.tokens[k].token >= 0 && n_gen < req.max_tokens) {
                gen[n_gen++] = out.tokens[k].token;
            }
            if (!json) {
                fwrite(out.tokens[k].text, 1, out.tokens[k].text_len, stdout);
                fflush(stdout);
            }
        }
    } while (out.finish == ST_FINISH_NONE);
    t1 = now_ms();

    if (out.finish == ST_FINISH_ERROR) {
        fprintf(stderr, "starling-generate: %s\n", out.error);
        goto done;
    }

    if (json) {
        int32_t top_id[5];
        float   top_logit[5];
        size_t  k;

        printf("{\"prompt_ids\":[");
        for (k = 0; k < toks.n; k++) {
            printf("%s%d", k ? "," : "", toks.ids[k]);
        }
        printf("],\"generated_ids\":[");
        for (k = 0; k < n_gen; k++) {
            printf("%s%d", k ? "," : "", gen[k]);
        }
        printf("],\"finish_reason\":\"%s\"", st_finish_reason_str(out.finish));
        if (first_step_top(e, model, toks.ids, toks.n, top_id, top_logit)) {
            printf(",\"top5_first\":[");
            for (k = 0; k < 5; k++) {
                printf("%s[%d,%.9g]", k ? "," : "", top_id[k], top_logit[k]);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("\n");
    }
    if (stats) {
        fprintf(stderr, "prompt: %zu tokens, generated: %zu tokens in %.1f ms"
                " (%.1f tokens/s incl. prefill; ttft %.2f ms)\n",
                toks.n, n_gen, t1 - t0,
                n_gen ? n_gen * 1000.0 / (t1 - t0) : 0.0, out.ttft_ms);
    }
    rc = 0;

done:
    if (s != NULL) {
        st_seq_release(e, s);
    }
    free(gen);
    free(toks.ids);
    st_engine_free(e);
    return rc;
}
