/*
 * Weighted fair queueing of tenants.
 *
 * Policy. Every sequence belongs to a tenant (st_request.tenant; 0 is
 * the default tenant) with a weight. Each tenant with work has a virtual
 * time: the tokens (prefill and decode rows) computed for it divided by
 * its weight. When a sequence slot is free, the queued sequence of the
 * tenant with the least virtual time is admitted; within a tenant, the
 * lowest priority value first, then arrival order. The step's prefill
 * budget goes to prefilling sequences in the same order. A tenant that
 * had no work starts at the least virtual time of the busy tenants, so
 * idle time is not saved up as credit and a newcomer's first request is
 * admitted at the next free slot, however long the others' queues are.
 * Under saturation (every tenant always has queued work) tenants are
 * computed tokens in proportion to their weights. Running sequences are
 * never stopped for fairness: every admitted stream still gets one
 * token per step.
 */
#include "engine/engine_internal.h"

#include <stdlib.h>


static st_fq_tenant *
st_fq_find(st_fair_queue *fq, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < fq->n; i++) {
        if (fq->t[i]->id == id) {
            return fq->t[i];
        }
    }
    return NULL;
}


st_status
st_fq_join(st_fair_queue *fq, st_seq *s, uint64_t tenant, uint32_t weight,
    int32_t priority, st_error *err)
{
    st_fq_tenant  *t, **grown;
    uint32_t       i, cap;

    t = st_fq_find(fq, tenant);
    if (t == NULL) {
        if (fq->n == fq->cap) {
            cap = fq->cap ? fq->cap * 2 : 8;
            grown = realloc(fq->t, cap * sizeof(*grown));
            if (grown == NULL) {
                return st_error_set(err, ST_ERR_NOMEM,
                                    "engine: out of memory");
            }
            fq->t = grown;
            fq->cap = cap;
        }
        t = calloc(1, sizeof(*t));
        if (t == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "engine: out of memory");
        }
        t->id = tenant;
        /* start level with the busy tenants: no credit for idle time */
        for (i = 0; i < fq->n; i++) {
            if (i == 0 || fq->t[i]->vtime < t->vtime) {
                t->vtime = fq->t[i]->vtime;
            }
        }
        fq->t[fq->n++] = t;
    }

    t->weight = weight ? weight : 1;
    t->n_seqs++;
    s->tenant = t;
    s->priority = priority;
    return ST_OK;
}


void
st_fq_leave(st_fair_queue *fq, st_seq *s)
{
    st_fq_tenant *t = s->tenant;
    uint32_t      i;

    if (t == NULL) {
        return;
    }
    s->tenant = NULL;
    if (--t->n_seqs > 0) {
        return;
    }
    for (i = 0; i < fq->n; i++) {
        if (fq->t[i] == t) {
            fq->t[i] = fq->t[--fq->n];
            break;
        }
    }
    free(t);
}


void
st_fq_charge(st_seq *s, uint32_t tokens)
{
    if (s->tenant != NULL) {
        s->tenant->vtime += (double) tokens / s->tenant->weight;
    }
}


int
st_fq_before(const st_seq *a, const st_seq *b)
{
    if (a->tenant != b->tenant && a->tenant != NULL && b->tenant != NULL
        && a->tenant->vtime != b->tenant->vtime)
    {
        return a->tenant->vtime < b->tenant->vtime;
    }
    if (a->tenant == b->tenant && a->priority != b->priority) {
        return a->priority < b->priority;
    }
    /* arrival: queued sequences have no id yet, their list is FIFO */
    return a->t_submit_ms < b->t_submit_ms
           || (a->t_submit_ms == b->t_submit_ms && a->id < b->id);
}


st_seq *
st_fq_pick(st_seq *head)
{
    st_seq *s, *best = head;

    for (s = head; s != NULL; s = s->next) {
        if (st_fq_before(s, best)) {
            best = s;
        }
    }
    return best;
}


void
st_fq_free(st_fair_queue *fq)
{
    uint32_t i;

    for (i = 0; i < fq->n; i++) {
        free(fq->t[i]);
    }
    free(fq->t);
    fq->t = NULL;
    fq->n = fq->cap = 0;
}
