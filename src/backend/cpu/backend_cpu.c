/*
 * The CPU backend: weights used in place from the mapping, KV in host
 * arrays, kernels from src/backend/cpu (chosen at run time by CPU features).
 */
#include "backend/backend.h"
#include "backend/cpu/forward.h"
#include "backend/cpu/matmul.h"

#include <stdio.h>
#include <stdlib.h>


static st_status
st_cpu_run(st_backend *b, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, float *logits, st_error *err)
{
    return st_forward_run(b->impl, kv, batch, n, logits, err);
}


static st_status
st_cpu_hidden(st_backend *b, const st_batch_entry *batch, uint32_t n,
    float *out, st_error *err)
{
    return st_forward_hidden(b->impl, batch, n, out, err);
}


static void
st_cpu_free(st_backend *b)
{
    st_forward_free(b->impl);
    free(b);
}


st_status
st_backend_cpu_create(st_backend **out, const st_model *m, uint32_t max_tokens,
    st_threadpool *tp, st_error *err)
{
    st_backend *b;
    st_status   rc;

    *out = NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "backend: out of memory");
    }
    rc = st_forward_create((st_forward **) &b->impl, m, max_tokens, tp, err);
    if (rc != ST_OK) {
        free(b);
        return rc;
    }
    b->name = "cpu";
    snprintf(b->device, sizeof(b->device), "%s, %d threads",
             st_cpu_kernels_name(), tp ? st_threadpool_size(tp) : 1);
    b->run = st_cpu_run;
    b->hidden = st_cpu_hidden;
    b->free = st_cpu_free;
    *out = b;
    return ST_OK;
}
