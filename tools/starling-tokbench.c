/*
 * starling-tokbench: single-thread tokenizer throughput.
 *
 *   starling-tokbench [-s seconds] [-p] [-c chars [-f file]] [vocab.gguf ...]
 *
 * For each vocab: load time, then tokens/s for st_tokenize on a short
 * English text (one call per text, as a server does per prompt) and on
 * the same text repeated 64 times (one long call). -p parses special
 * tokens (add_special and parse_special on). Without files it uses
 * the two models/ files and, when present, ../shared/reference/tokenizer/ vocabs.
 *
 * -c N: instead, the time of one call on an N-byte prompt (the text
 * repeated, add_special and parse_special on, as the server tokenizes a
 * prompt in its event loop): the shortest and longest of the calls made
 * in -s seconds, i.e. how long that prompt stalls the event loop.
 * -f FILE: with -c, the prompt is FILE's bytes (repeated to N bytes).
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


/* -c: one call on an n_chars prompt, best and worst of ~secs */
static const char *fill_path;    /* -f */

static int
stall(const st_tokenizer *t, const char *name, size_t n_chars, double secs)
{
    st_tokens out = { NULL, 0, 0 };
    st_error  err = { 0 };
    size_t    slen = sizeof(short_text) - 1, k, calls = 0;
    double    t0, t1, t_start, best = 1e30, worst = 0.0;
    char     *text = malloc(n_chars + 1);

    if (text == NULL) {
        return 1;
    }
    for (k = 0; k < n_chars; k++) {
        text[k] = k % (slen + 1) == slen ? ' ' : short_text[k % (slen + 1)];
    }
    if (fill_path != NULL) {
        FILE  *f = fopen(fill_path, "rb");
        size_t got = f ? fread(text, 1, n_chars, f) : 0;

        if (f) {
            fclose(f);
        }
        if (got == 0) {
            fprintf(stderr, "%s: cannot read\n", fill_path);
            free(text);
            return 1;
        }
        for (k = got; k < n_chars; k++) {
            text[k] = text[k % got];
        }
    }
    t_start = now_s();
    do {
        out.n = 0;
        t0 = now_s();
        if (st_tokenize(t, text, n_chars, 1, 1, &out, &err) != ST_OK) {
            fprintf(stderr, "tokenize: %s\n", err.msg);
            free(out.ids);
            free(text);
            return 1;
        }
        t1 = now_s();
        best = t1 - t0 < best ? t1 - t0 : best;
        worst = t1 - t0 > worst ? t1 - t0 : worst;
        calls++;
    } while (t1 - t_start < secs);
    printf("%-42s %-3s vocab %6u  %zu B prompt -> %zu tok: one call "
        "%.2f ms best, %.2f ms worst (%zu calls)\n", name,
        st_tokenizer_kind_name(t), st_tokenizer_n_vocab(t), n_chars, out.n,
        best * 1e3, worst * 1e3, calls);
    free(out.ids);
    free(text);
    return 0;
}


static int
run(const char *path, double secs, int special, size_t n_chars)
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
    if (n_chars) {
        k = (size_t) stall(t, name, n_chars, secs);
        st_tokenizer_free(t);
        st_gguf_close(g);
        return (int) k;
    }
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
    size_t      n_chars = 0;
    struct stat sb;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (strcmp(argv[i], "-p") == 0) {
            special = 1;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            n_chars = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
            fill_path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-s seconds] [-p] [-c chars [-f file]] [vocab.gguf ...]\n",
                argv[0]);
            return 2;
        } else {
            n_files++;
            rc |= run(argv[i], secs, special, n_chars);
        }
    }
    if (n_files == 0) {
        for (i = 0; defaults[i] != NULL; i++) {
            if (stat(defaults[i], &sb) == 0) {
                rc |= run(defaults[i], secs, special, n_chars);
            }
        }
    }
    return rc;
}
