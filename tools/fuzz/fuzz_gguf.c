/*
 * libFuzzer target: GGUF parsing and validation of arbitrary images,
 * then the model hyper-parameter/tensor binding and the tokenizer loader
 * on whatever parses (make fuzz).
 */
#include "gguf/gguf.h"
#include "text/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_gguf      *g;
    st_tokenizer *t;
    st_tokens     toks = {0};
    uint64_t      i;

    if (st_gguf_open_memory(&g, data, size, NULL) != ST_OK) {
        return 0;
    }
    for (i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *tt = st_gguf_tensor_at(g, i);
        volatile uint8_t sink = tt->nbytes
                                ? ((const uint8_t *) tt->data)[tt->nbytes - 1]
                                : 0;
        (void) sink;
    }
    if (st_tokenizer_load(&t, g, NULL) == ST_OK) {
        st_tokenize(t, "Hello world <s> \xff\xfe", 18, 1, 1, &toks, NULL);
        free(toks.ids);
        st_tokenizer_free(t);
    }
    st_gguf_close(g);
    return 0;
}
