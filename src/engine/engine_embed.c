/*
 * Embedding sequences: a prompt prefilled through the normal step loop
 * whose final hidden states (after the output norm, from the backend's
 * hidden hook) are pooled instead of sampled. The sum runs in double in
 * position order, so the vector does not depend on how the prompt was
 * chunked or what else shared its steps.
 */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *
st_pooling_name(uint32_t t)
{
    switch (t) {
    case 0: return "none";
    case 1: return "mean";
    case 2: return "cls";
    case 3: return "last";
    case 4: return "rank";
    default: return "unknown";
    }
}


st_status
st_seq_embed_init(st_engine *e, st_seq *s, const st_request *req,
    st_error *err)
{
    uint32_t    E = e->info.n_embd, t;
    st_pooling  p = req->pooling;

    if (e->be->hidden == NULL) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "the %s backend cannot return hidden states",
                            e->be->name);
    }
    if (p == ST_POOLING_MODEL) {
        t = e->model->hp.pooling_type;
        if (t == ST_POOLING_ABSENT || t == 1) {
            p = ST_POOLING_MEAN;
        } else if (t == 2) {
            p = ST_POOLING_CLS;
        } else if (t == 3) {
            p = ST_POOLING_LAST;
        } else {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "the model declares pooling type %u (%s); "
                                "embeddings support mean (1), cls (2) and "
                                "last (3)", t, st_pooling_name(t));
        }
    } else if (p != ST_POOLING_MEAN && p != ST_POOLING_CLS
               && p != ST_POOLING_LAST)
    {
        return st_error_set(err, ST_ERR_INVALID, "bad pooling %d", (int) p);
    }
    if (e->hidden == NULL) {
        /* (step_tokens, n_embd), allocated by the first embedding */
        e->hidden = malloc(sizeof(float) * (size_t) e->step_tokens * E);
        if (e->hidden == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "out of memory");
        }
    }
    s->embed_acc = calloc(E, sizeof(double));
    s->embed_vec = calloc(E, sizeof(float));
    if (s->embed_acc == NULL || s->embed_vec == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    s->embed = 1;
    s->embed_dim = E;
    s->embed_pool = p;
    s->embed_normalize = req->normalize != 0;
    return ST_OK;
}


int
st_seq_embed_wants(const st_seq *s, uint32_t pos)
{
    switch (s->embed_pool) {
    case ST_POOLING_CLS:
        return pos == 0;
    case ST_POOLING_LAST:
        return pos + 1 == s->n_prompt;
    default:
        return 1;
    }
}


void
st_seq_embed_reset(const st_engine *e, st_seq *s)
{
    memset(s->embed_acc, 0, sizeof(double) * e->info.n_embd);
    s->embed_rows = 0;
}


void
st_seq_embed_add(const st_engine *e, st_seq *s, const float *row)
{
    uint32_t E = e->info.n_embd, d;

    for (d = 0; d < E; d++) {
        s->embed_acc[d] += (double) row[d];
    }
    s->embed_rows++;
}


void
st_seq_embed_finish(st_engine *e, st_seq *s)
{
    uint32_t E = e->info.n_embd, d;
    double   n2 = 0.0, v, scale;

    if (s->embed_rows == 0) {
        /* cannot happen: every pooling takes at least one position */
        snprintf(s->error, sizeof(s->error), "embedding saw no positions");
        st_seq_finish(e, s, ST_FINISH_ERROR);
        return;
    }
    for (d = 0; d < E; d++) {
        v = s->embed_acc[d] / s->embed_rows;
        s->embed_acc[d] = v;
        n2 += v * v;
    }
    scale = 1.0;
    if (s->embed_normalize && n2 > 0.0) {
        scale = 1.0 / sqrt(n2);
    }
    for (d = 0; d < E; d++) {
        s->embed_vec[d] = (float) (s->embed_acc[d] * scale);
    }
    s->embed_done = 1;
    st_seq_finish(e, s, ST_FINISH_STOP);
}
