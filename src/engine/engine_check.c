/*
 * Checking a model file without loading it: what `nginx -t` runs for
 * every declared model. The GGUF structure (header, metadata, tensor
 * table, every offset and size inside the file), the architecture, the
 * hyper-parameters, every tensor's type and shape and the tokenizer are
 * validated exactly as a load does; weights stay unread in the mapping
 * (only a sha256, when given, reads the whole file). No backend, KV
 * cache or thread is created.
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <string.h>


st_status
st_engine_check_model(const char *path, const char *sha256,
    st_model_check *out, st_error *err)
{
    st_model      *m;
    st_tokenizer  *tok;
    st_status      rc;

    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (path == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "engine: no model path");
    }

    rc = st_model_load(&m, path, sha256, err);
    if (rc != ST_OK) {
        return rc;
    }

    rc = st_tokenizer_load(&tok, m->gguf, err);
    if (rc != ST_OK) {
        st_model_free(m);
        return rc;
    }

    if (st_tokenizer_n_vocab(tok) != m->hp.n_vocab) {
        rc = st_error_set(err, ST_ERR_FORMAT, "engine: tokenizer vocab %u != "
                          "model vocab %u", st_tokenizer_n_vocab(tok),
                          m->hp.n_vocab);
    } else if (out != NULL) {
        snprintf(out->arch, sizeof(out->arch), "%s", m->hp.arch);
        snprintf(out->quant_kind, sizeof(out->quant_kind), "%s",
                 st_model_quant_name(m));
        out->n_vocab = m->hp.n_vocab;
        out->n_ctx_train = m->hp.n_ctx_train;
        out->n_layer = m->hp.n_layer;
        out->n_params = m->n_params;
        out->weight_bytes = m->weight_bytes;
        out->file_bytes = st_gguf_file_size(m->gguf);
    }

    st_tokenizer_free(tok);
    st_model_free(m);
    return rc;
}
