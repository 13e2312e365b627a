/*
 * libFuzzer target: tokenize arbitrary bytes with the shipped models'
 * vocabularies (SPM with and without byte fallback), detokenize the ids
 * and check piece lengths (make fuzz).
 */
#include "gguf/gguf.h"
#include "text/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

static st_tokenizer *toks_t[2];
static st_gguf      *toks_g[2];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *paths[2] = { "models/stories260K.gguf",
                                    "models/TinyStories-656K-Q8_0.gguf" };
    st_tokens  out = {0};
    char       buf[4096];
    int        m;

    if (size < 1) {
        return 0;
    }
    m = data[0] & 1;
    if (toks_t[m] == NULL) {
        if (st_gguf_open(&toks_g[m], paths[m], NULL, NULL) != ST_OK
            || st_tokenizer_load(&toks_t[m], toks_g[m], NULL) != ST_OK)
        {
            abort();   /* harness set-up, not input */
        }
    }
    if (st_tokenize(toks_t[m], (const char *) data + 1, size - 1,
                    data[0] & 2, data[0] & 4, &out, NULL) == ST_OK)
    {
        st_detokenize(toks_t[m], out.ids, out.n, buf, sizeof(buf), 1, 0);
    }
    free(out.ids);
    return 0;
}
