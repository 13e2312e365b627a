/*
 * libFuzzer target: model binding (st_model_load: GGUF open from a path,
 * hyper-parameters, tensor shapes and types) on arbitrary files, then
 * what the engine reads next from the same file: the tokenizer and the
 * chat template's family. The input is written to a memfd and loaded
 * through /proc/self/fd, so the real path-based entry (mmap) is what runs.
 * Seeds: tools/fuzz/corpus_model (tiny models from mkseeds.py); `make
 * fuzz` also seeds from the shipped models in models/.
 */
#include "model/model.h"
#include "text/tokenizer.h"
#include "starling/st_chat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int  model_fd = -1;
static char model_path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_model     *m;
    st_tokenizer *t;
    st_tokens     toks = {0};
    st_error      err = { ST_OK, "" };
    st_gguf_str   tmpl;
    uint32_t      l;

    if (model_fd < 0) {
        model_fd = memfd_create("fuzz_model", 0);
        if (model_fd < 0) {
            abort();   /* harness set-up, not input */
        }
        snprintf(model_path, sizeof(model_path), "/proc/self/fd/%d", model_fd);
    }
    if (ftruncate(model_fd, 0) != 0
        || (size > 0 && pwrite(model_fd, data, size, 0) != (ssize_t) size))
    {
        abort();
    }
    if (st_model_load(&m, model_path, NULL, &err) != ST_OK) {
        if (err.code == ST_OK || memchr(err.msg, '\0', sizeof(err.msg)) == NULL) {
            abort();   /* a failure must say why */
        }
        return 0;
    }
    /* every bound weight must lie inside the mapping: touch its last byte */
    {
        volatile uint8_t sink = 0;
        for (l = 0; l < m->hp.n_layer; l++) {
            const st_layer *ly = &m->layers[l];
            sink ^= ((const uint8_t *) ly->attn_norm)[m->hp.n_embd * 4 - 1];
            sink ^= ((const uint8_t *) ly->ffn_norm)[m->hp.n_embd * 4 - 1];
        }
        sink ^= ((const uint8_t *) m->output_norm)[m->hp.n_embd * 4 - 1];
        (void) sink;
    }
    (void) st_model_quant_name(m);
    if (st_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, NULL) == ST_OK) {
        char *s = malloc(tmpl.len + 1);
        if (s != NULL) {
            memcpy(s, tmpl.ptr, tmpl.len);
            s[tmpl.len] = '\0';
            (void) st_chat_detect(s);
            free(s);
        }
    }
    if (st_tokenizer_load(&t, m->gguf, NULL) == ST_OK) {
        if (st_tokenize(t, "Hello <s> world\xe2\x96\x81 \xff", 20, 1, 1, &toks,
                        NULL) == ST_OK)
        {
            char buf[256];
            st_detokenize(t, toks.ids, toks.n, buf, sizeof(buf), 1, 1);
        }
        free(toks.ids);
        st_tokenizer_free(t);
    }
    st_model_free(m);
    return 0;
}
