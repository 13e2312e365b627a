/*
 * starling-grammarbench: what constrained decoding costs per token.
 *
 *   starling-grammarbench -m model.gguf [-t threads] [-n tokens] [-b 1,8]
 *                         [-s schema.json]
 *
 * 1. Mask cost alone: a JSON document valid for the schema is tokenized
 *    with the model's tokenizer and replayed token by token through a
 *    fresh matcher (cold caches, as each request starts): per token, the
 *    time of the mask (trie walk or cache hit) and of the advance.
 * 2. In the engine: for each batch size, b unconstrained sequences and
 *    then b sequences constrained by the schema decode side by side
 *    (temperature 0.8, fixed seeds); the mean decode step time of each,
 *    counted over steps where all b sequences were decoding. The
 *    difference, per sequence, is the mask's share of a step.
 * Figures are wall-clock on whatever machine runs it.
 */
#include "starling/st_engine.h"
#include "engine/constraint.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *default_schema =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\"},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},"
    "\"email\":{\"type\":\"string\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"address\":{\"type\":\"object\",\"properties\":{"
    "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":\"string\"}},\"required\":[\"street\",\"city\","
    "\"zip\"],\"additionalProperties\":false},"
    "\"active\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"email\",\"tags\",\"address\","
    "\"active\"],\"additionalProperties\":false}";

static const char *default_doc =
    "{\"name\": \"Ada Lovelace\", \"age\": 36, \"email\": "
    "\"ada@example.org\", \"tags\": [\"math\", \"engines\", \"poetry\"], "
    "\"address\": {\"street\": \"12 St James's Square\", \"city\": "
    "\"London\", \"zip\": \"SW1Y 4JH\"}, \"active\": true}";


static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


/* CPU time of this thread: the mask replay runs on it alone, and on a
 * shared machine wall-clock spikes would measure other processes */
static double
cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL) {
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}


/* part 1: returns mean mask cost per token in us (cold caches) */
static double
bench_masks(const st_tokenizer *tok, const char *schema, const char *doc)
{
    st_error err = { 0 };
    st_constraint *c = NULL;
    st_grammar_vocab *v = NULL;
    st_tokens toks = { 0 };
    double t0, build_ms, mask_ms = 0, max_ms = 0, adv_ms = 0;
    uint32_t *mask;
    st_grammar_matcher *m = NULL;
    size_t n_ok = 0;

    if (st_constraint_from_json_schema(&c, schema, strlen(schema), &err)
        != ST_OK)
    {
        fprintf(stderr, "schema: %s\n", err.msg);
        return -1;
    }
    t0 = now_ms();
    if (st_grammar_vocab_from_tokenizer(&v, tok, &err) != ST_OK) {
        fprintf(stderr, "vocab: %s\n", err.msg);
        st_constraint_free(c);
        return -1;
    }
    build_ms = now_ms() - t0;
    st_tokenize(tok, doc, strlen(doc), 0, 0, &toks, &err);
    mask = malloc(st_grammar_mask_words(v) * sizeof(uint32_t));
    st_grammar_matcher_create(&m, st_constraint_grammar(c), &err);
    for (size_t i = 0; i < toks.n; i++) {
        double t1 = cpu_ms(), t2, t3;
        if (st_grammar_mask(m, v, mask, &err) != ST_OK) {
            fprintf(stderr, "mask: %s\n", err.msg);
            break;
        }
        t2 = cpu_ms();
        if (!((mask[toks.ids[i] >> 5] >> (toks.ids[i] & 31)) & 1)) {
            fprintf(stderr, "token %zu (id %d) of the document is masked "
                    "(the document must be valid for the schema)\n", i,
                    toks.ids[i]);
            break;
        }
        if (st_grammar_accept_token(m, v, toks.ids[i], &err) != ST_OK) {
            fprintf(stderr, "accept: %s\n", err.msg);
            break;
        }
        t3 = cpu_ms();
        mask_ms += t2 - t1;
        adv_ms += t3 - t2;
        if (t2 - t1 > max_ms) {
            max_ms = t2 - t1;
        }
        n_ok++;
    }
    printf("vocab %u tokens: trie built in %.1f ms\n",
           st_grammar_vocab_n(v), build_ms);
    printf("replay of a %zu-token document (cold caches, thread CPU "
           "time): mask %.1f us/token "
           "(max %.1f us), advance %.2f us/token, %s\n", toks.n,
           n_ok ? 1e3 * mask_ms / (double)n_ok : 0, 1e3 * max_ms,
           n_ok ? 1e3 * adv_ms / (double)n_ok : 0,
           st_grammar_matcher_done(m) ? "grammar complete" : "INCOMPLETE");
    st_grammar_matcher_free(m);
    free(mask);
    free(toks.ids);
    st_grammar_vocab_free(v);
    st_constraint_free(c);
    return n_ok ? 1e3 * mask_ms / (double)n_ok : -1;
}


/* part 2: mean step ms while all b sequences decode; -1 on error */
static double
bench_engine(st_engine *e, int b, uint32_t n_tokens, st_constraint *c)
{
    st_seq *seqs[64];
    st_tokens toks = { 0 };
    st_error err = { 0 };
    double sum = 0;
    int n_steps = 0;
    const char *prompt = "Return the user record as JSON:";

    st_tokenize(st_engine_tokenizer(e), prompt, strlen(prompt), 1, 1, &toks,
                &err);
    for (int i = 0; i < b; i++) {
        st_request req;
        memset(&req, 0, sizeof(req));
        st_sampling_defaults(&req.sampling);
        req.sampling.temperature = 0.8f;
        req.sampling.seed = 42 + (uint64_t)i;
        req.prompt = toks.ids;
        req.n_prompt = toks.n;
        req.max_tokens = n_tokens;
        req.ignore_eos = c == NULL;
        req.constraint = c;
        if (st_engine_submit(e, &req, &seqs[i], &err) != ST_OK) {
            fprintf(stderr, "submit: %s\n", err.msg);
            free(toks.ids);
            return -1;
        }
    }
    free(toks.ids);
    for (int step = 0; st_engine_has_work(e); step++) {
        double t0 = now_ms(), dt;
        int all_decoding = 1;
        if (st_engine_step(e, &err) != ST_OK) {
            fprintf(stderr, "step: %s\n", err.msg);
            return -1;
        }
        dt = now_ms() - t0;
        for (int i = 0; i < b; i++) {
            st_seq_output out;
            st_seq_take(seqs[i], &out);
            if (out.finish != ST_FINISH_NONE || out.n_generated < 2) {
                all_decoding = 0;
            }
            if (out.finish == ST_FINISH_ERROR) {
                fprintf(stderr, "sequence %d: %s\n", i, out.error);
            }
        }
        if (all_decoding) {
            sum += dt;
            n_steps++;
        }
    }
    for (int i = 0; i < b; i++) {
        st_seq_release(e, seqs[i]);
    }
    if (n_steps < 4) {
        fprintf(stderr, "batch %d: only %d steps with all sequences "
                "decoding\n", b, n_steps);
    }
    return n_steps ? sum / n_steps : -1;
}


int
main(int argc, char **argv)
{
    const char *model = NULL, *schema_path = NULL, *batches = "1,8";
    uint32_t threads = 0, n_tokens = 64;
    char *schema = NULL, *list;
    st_engine_params p;
    st_engine *e;
    st_error err = { 0 };
    st_constraint *c = NULL;
    double mask_us;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n_tokens = (uint32_t)atoi(argv[++i]);
        } else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
            batches = argv[++i];
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            schema_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s -m model.gguf [-t threads] "
                    "[-n tokens] [-b 1,8] [-s schema.json]\n", argv[0]);
            return 2;
        }
    }
    if (model == NULL || n_tokens < 4) {
        fprintf(stderr, "need -m model.gguf (and -n >= 4)\n");
        return 2;
    }
    if (schema_path != NULL && (schema = read_file(schema_path)) == NULL) {
        fprintf(stderr, "cannot read %s\n", schema_path);
        return 1;
    }
    st_engine_params_default(&p);
    p.path = model;
    p.n_threads = threads;
    p.max_seqs = 16;
    p.n_ctx = 512;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return 1;
    }
    printf("model %s (vocab %u), threads %u\n", st_engine_info(e)->name,
           st_engine_info(e)->n_vocab, threads);
    mask_us = bench_masks(st_engine_tokenizer(e),
                          schema ? schema : default_schema,
                          schema ? "{}" : default_doc);
    if (st_constraint_from_json_schema(&c, schema ? schema : default_schema,
            strlen(schema ? schema : default_schema), &err) != ST_OK)
    {
        fprintf(stderr, "schema: %s\n", err.msg);
        return 1;
    }
    list = strdup(batches);
    for (char *tokp = strtok(list, ","); tokp; tokp = strtok(NULL, ",")) {
        int b = atoi(tokp);
        double plain, constrained;
        if (b < 1 || b > 16) {
            continue;
        }
        bench_engine(e, b, 8, NULL);     /* warm up */
        plain = bench_engine(e, b, n_tokens, NULL);
        constrained = bench_engine(e, b, n_tokens, c);
        printf("batch %d: decode step %.2f ms plain, %.2f ms constrained: "
               "+%.1f%% (replayed mask %.1f us/token = %.1f%% of the "
               "plain step per sequence)\n", b, plain, constrained,
               100.0 * (constrained - plain) / plain, mask_us,
               100.0 * (mask_us * 1e-3 * b) / plain);
    }
    free(list);
    st_constraint_free(c);
    free(schema);
    st_engine_free(e);
    return 0;
}
