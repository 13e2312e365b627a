/*
 * Weighted fair queueing across tenants (fair_queue.c): which queued
 * sequence is admitted next, and in which order sequences get the
 * step's prefill budget.
 */
#ifndef ST_ENGINE_FAIR_QUEUE_H
#define ST_ENGINE_FAIR_QUEUE_H

#include "starling/st_engine.h"

/* a tenant with queued or active sequences */
typedef struct {
    uint64_t  id;
    uint32_t  weight;          /* >= 1 */
    uint32_t  n_seqs;          /* queued + active */
    double    vtime;           /* tokens computed for it / weight */
} st_fq_tenant;

typedef struct {
    st_fq_tenant **t;          /* busy tenants (n) */
    uint32_t       n, cap;
} st_fair_queue;

/* the sequence s (queued) belongs to tenant; weight 0 counts as 1 */
st_status st_fq_join(st_fair_queue *fq, st_seq *s, uint64_t tenant,
    uint32_t weight, int32_t priority, st_error *err);
/* s leaves the queue/batch for good (finished, cancelled, failed) */
void st_fq_leave(st_fair_queue *fq, st_seq *s);
/* tokens of s computed in a step */
void st_fq_charge(st_seq *s, uint32_t tokens);
/* 1 when a goes before b: tenant with less virtual time first, then
 * lower priority value within a tenant, then arrival */
int st_fq_before(const st_seq *a, const st_seq *b);
/* the queued sequence to admit next (head: the queued list) */
st_seq *st_fq_pick(st_seq *head);
void st_fq_free(st_fair_queue *fq);

#endif /* ST_ENGINE_FAIR_QUEUE_H */
