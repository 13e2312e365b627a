/*
 * starling-tokbench: single-thread tokenizer throughput.
 *
 *   starling-tokbench [-s seconds] [-p] [vocab.gguf ...]
 *
 * For each vocab: load time, then tokens/s for st_tokenize on a short
 * English text (one call per text, as a server does per prompt) and on
 * the same text repeated 64 times (one long call). -p parses special
 * tokens (add_special and parse_special on). Without files it uses
 * the two models/ files and, when present, ../shared/reference/tokenizer/ vocabs.
 */
#include "gguf/gguf.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char short_text[] =
    "Once upon a time, there was a little girl named Lily. She loved to "
    "play outside in the park with her dog, Max. One day, they found a "
    "big red ball under a tree. \"Can we keep it?\" Lily asked her mom.";


static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}


/* tokens/s for repeated st_tokenize(text) calls over about `secs` */
static double
bench(const st_tokenizer *t, const char *text, size_t len, int special,
    double secs, size_t *n_tokens)
{
    st_tokens out = { NULL, 0, 0 };
    st_error  err = { 0 };
    double    t0, t1;
    size_t    total = 0, calls = 0, batch = 1, i;

    t0 = now_s();
    for (;;) {
        for (i = 0; i < batch; i++) {
            out.n = 0;
            if (st_tokenize(t, text, len, special, special, &out, &err) != ST_OK) {
                fprintf(stderr, "tokenize: %s\n", err.msg);
                free(out.ids);
                return 0.0;
            }
            total += out.n;
        }
        calls += batch;
        t1 = now_s();
        if (t1 - t0 >= secs) {
            break;
        }
        if (batch < 4096) {
            batch *= 2;
        }
    }
    *n_tokens = calls ? total / calls : 0;
    free(out.ids);
    return (double) total / (t1 - t0);
}


static int
run(const char *path, double secs, int special)
{
    st_gguf      *g = NULL;
    st_tokenizer *t = NULL;
    st_error      err = { 0 };
    double        t0, load_ms, rate_short, rate_long;
    size_t        n_short, n_long, slen = sizeof(short_text) - 1, k;
    char         *longt;
    const char   *name = strrchr(path, '/');

    name = name ? name + 1 : path;
    t0 = now_s();
    if (st_gguf_open(&g, path, NULL, &err) != ST_OK
        || st_tokenizer_load(&t, g, &err) != ST_OK)
    {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        st_gguf_close(g);
        return 1;
    }
    load_ms = (now_s() - t0) * 1e3;
    longt = malloc(slen * 64 + 64);
    if (longt == NULL) {
        st_tokenizer_free(t);
        st_gguf_close(g);
        return 1;
    }
    for (k = 0; k < 64; k++) {
        memcpy(longt + k * (slen + 1), short_text, slen);
        longt[k * (slen + 1) + slen] = ' ';
    }
    rate_short = bench(t, short_text, slen, special, secs, &n_short);
    rate_long = bench(t, longt, 64 * (slen + 1), special, secs, &n_long);
    printf("%-42s %-3s %-10s vocab %6u  load %7.1f ms  short (%zu B, %zu tok): "
        "%6.2f M tok/s  long (%zu tok): %6.2f M tok/s\n",
        name, st_tokenizer_kind_name(t), st_tokenizer_pre_name(t),
        st_tokenizer_n_vocab(t), load_ms, slen, n_short, rate_short / 1e6,
        n_long, rate_long / 1e6);
    free(longt);
    st_tokenizer_free(t);
    st_gguf_close(g);
    return 0;
}


int
main(int argc, char **argv)
{
    static const char *defaults[] = {
        "models/stories260K.gguf",
        "models/TinyStories-656K-Q8_0.gguf",
        "../shared/reference/tokenizer/ggml-vocab-llama-spm.gguf",
        "../shared/reference/tokenizer/ggml-vocab-gpt-2.gguf",
        "../shared/reference/tokenizer/ggml-vocab-llama-bpe.reconstructed.gguf",
        "../shared/reference/tokenizer/ggml-vocab-qwen2.reconstructed.gguf",
        NULL
    };
    double      secs = 0.5;
    int         special = 0, i, n_files = 0, rc = 0;
    struct stat sb;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (strcmp(argv[i], "-p") == 0) {
            special = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-s seconds] [-p] [vocab.gguf ...]\n",
                argv[0]);
            return 2;
        } else {
            n_files++;
            rc |= run(argv[i], secs, special);
        }
    }
    if (n_files == 0) {
        for (i = 0; defaults[i] != NULL; i++) {
            if (stat(defaults[i], &sb) == 0) {
                rc |= run(defaults[i], secs, special);
            }
        }
    }
    return rc;
}
