/*
 * libFuzzer target: the byte-level BPE tokenizer and its PCRE2
 * pre-tokenizer regexes with real vocabularies (gpt-2, llama-bpe, qwen2
 * from $ST_SHARED/reference/tokenizer, ../shared by default): tokenize
 * arbitrary bytes, check every id is in the vocabulary, detokenize, and
 * check that valid UTF-8 without special-token parsing round-trips
 * exactly (byte-level BPE loses nothing). With no vocabulary found it
 * says so and exits 0 (skipped).
 */
#include "gguf/gguf.h"
#include "text/tokenizer.h"

#include "starling/st_api.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *bpe_files[] = {
    "ggml-vocab-gpt-2.gguf",
    "ggml-vocab-llama-bpe.reconstructed.gguf",
    "ggml-vocab-qwen2.reconstructed.gguf",
};
#define N_BPE (sizeof(bpe_files) / sizeof(bpe_files[0]))

static st_tokenizer *bpe_t[N_BPE];
static st_gguf      *bpe_g[N_BPE];
static size_t        bpe_n;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *shared = getenv("ST_SHARED");
    char        path[4096];
    size_t      i;

    (void) argc; (void) argv;
    if (shared == NULL || *shared == '\0') {
        shared = "../shared";
    }
    for (i = 0; i < N_BPE; i++) {
        snprintf(path, sizeof(path), "%s/reference/tokenizer/%s", shared,
                 bpe_files[i]);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "fuzz_bpe: %s absent, not fuzzed\n", path);
            continue;
        }
        if (st_gguf_open(&bpe_g[bpe_n], path, NULL, NULL) != ST_OK
            || st_tokenizer_load(&bpe_t[bpe_n], bpe_g[bpe_n], NULL) != ST_OK
            || st_tokenizer_kind(bpe_t[bpe_n]) != ST_TOK_BPE)
        {
            fprintf(stderr, "fuzz_bpe: %s does not load as BPE\n", path);
            abort();   /* harness set-up, not input */
        }
        bpe_n++;
    }
    if (bpe_n == 0) {
        fprintf(stderr, "fuzz_bpe: no BPE vocabulary under %s/reference/"
                "tokenizer: skipped\n", shared);
        exit(0);
    }
    return 0;
}




int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const st_tokenizer *t;
    st_tokens           out = {0};
    char               *buf;
    size_t              i, len, n;
    int                 add_special, parse_special;

    if (size < 1) {
        return 0;
    }
    t = bpe_t[(data[0] >> 3) % bpe_n];
    add_special = data[0] & 1;
    parse_special = data[0] & 2;
    data++;
    size--;
    if (st_tokenize(t, (const char *) data, size, add_special, parse_special,
                    &out, NULL) != ST_OK)
    {
        free(out.ids);
        return 0;
    }
    n = st_tokenizer_n_vocab(t);
    for (i = 0; i < out.n; i++) {
        if (out.ids[i] < 0 || (size_t) out.ids[i] >= n) {
            abort();
        }
    }
    len = st_detokenize(t, out.ids, out.n, NULL, 0, 1, 0);
    buf = malloc(len + 1);
    if (buf != NULL) {
        if (st_detokenize(t, out.ids, out.n, buf, len, 1, 0) != len) {
            abort();
        }
        if (!add_special && !parse_special && st_api_utf8_valid((const char *) data, size)
            && (len != size || memcmp(buf, data, size) != 0))
        {
            fprintf(stderr, "fuzz_bpe: round trip changed %zu bytes into %zu\n",
                    size, len);
            abort();
        }
        free(buf);
    }
    free(out.ids);
    return 0;
}
