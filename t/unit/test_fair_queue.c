/*
 * Weighted fair queueing in the engine (src/engine/fair_queue.c), on the
 * shipped stories260K model, counted in tokens and steps (no clock):
 * weights 1:3 give token shares within 10% of 1:3 while both tenants
 * have requests queued; a newcomer is admitted at the next free slot
 * however long another tenant's queue; a lower priority value goes first
 * within its tenant; without tenants admission stays first-come
 * first-served.
 */
#include "tap.h"
#include "starling/st_engine.h"

#define MAX_REQ 256

static const int32_t prompt[] = { 1, 403, 407, 261, 378 };

typedef struct {
    st_seq   *seq;
    int       tenant;          /* index for the counts */
    uint32_t  tokens;
    int       done, first_step;
} req_t;

static req_t    reqs[MAX_REQ];
static int      n_reqs;


static st_engine *
make_engine(const char *model, uint32_t max_seqs)
{
    st_engine_params p;
    st_engine       *e;
    st_error         err;

    st_engine_params_default(&p);
    p.path = model;
    p.max_seqs = max_seqs;
    p.n_threads = 1;
    p.n_ctx = 128;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        diag("engine: %s", err.msg);
        return NULL;
    }
    return e;
}


static int
submit(st_engine *e, int tenant_ix, uint64_t tenant, uint32_t weight,
    int32_t priority, uint32_t max_tokens)
{
    st_request  req;
    st_error    err;
    req_t      *r = &reqs[n_reqs];

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0;
    req.prompt = prompt;
    req.n_prompt = sizeof(prompt) / sizeof(prompt[0]);
    req.max_tokens = max_tokens;
    req.ignore_eos = 1;
    req.tenant = tenant;
    req.weight = weight;
    req.priority = priority;
    memset(r, 0, sizeof(*r));
    r->tenant = tenant_ix;
    r->first_step = -1;
    if (st_engine_submit(e, &req, &r->seq, &err) != ST_OK) {
        diag("submit: %s", err.msg);
        return -1;
    }
    return n_reqs++;
}


/* one step; adds each request's new tokens to counts[tenant] */
static void
step(st_engine *e, int step_no, uint64_t *counts)
{
    st_error       err;
    st_seq_output  out;
    int            i;

    st_engine_step(e, &err);
    for (i = 0; i < n_reqs; i++) {
        req_t *r = &reqs[i];

        if (r->done) {
            continue;
        }
        st_seq_take(r->seq, &out);
        if (out.n_tokens > 0 && r->first_step < 0) {
            r->first_step = step_no;
        }
        r->tokens += (uint32_t) out.n_tokens;
        if (counts != NULL) {
            counts[r->tenant] += out.n_tokens;
        }
        if (out.finish != ST_FINISH_NONE) {
            r->done = 1;
            st_seq_release(e, r->seq);
        }
    }
}


static void
drain(st_engine *e)
{
    int s = 0;

    while (st_engine_has_work(e) && s++ < 100000) {
        step(e, 0, NULL);
    }
    n_reqs = 0;
}


static int
finished(int tenant)
{
    int i, n = 0;

    for (i = 0; i < n_reqs; i++) {
        n += reqs[i].done && reqs[i].tenant == tenant;
    }
    return n;
}


int
main(void)
{
    char        model[1024];
    st_engine  *e;
    uint64_t    counts[3];
    int         i, s, light, urgent, fifo_ok;
    double      ratio;

    snprintf(model, sizeof(model), "%s/models/stories260K.gguf",
             tap_root_dir());
    e = make_engine(model, 8);
    if (!ok(e != NULL, "engine on stories260K")) {
        return done_testing();
    }

    /* weights 1:3, 100 requests each, 8 tokens; shares counted from b's
     * 10th to its 80th finished request (both always have some queued) */
    for (i = 0; i < 100; i++) {
        submit(e, 0, 11, 1, 0, 8);
        submit(e, 1, 22, 3, 0, 8);
    }
    memset(counts, 0, sizeof(counts));
    for (s = 1; finished(1) < 10; s++) {
        step(e, s, NULL);
    }
    for (; finished(1) < 80; s++) {
        step(e, s, counts);
    }
    ratio = counts[0] ? (double) counts[1] / (double) counts[0] : 0;
    diag("weights 1:3: a %llu tokens, b %llu tokens, b/a %.3f",
         (unsigned long long) counts[0], (unsigned long long) counts[1],
         ratio);
    ok(ratio > 2.7 && ratio < 3.3, "token shares b/a %.3f within 10%% of 3",
       ratio);
    ok(finished(0) < 100 && finished(0) > 0, "a still had requests queued");
    drain(e);

    /* a newcomer behind a 60-request queue: admitted at the next free
     * slot, so its first token comes within one request's length */
    for (i = 0; i < 60; i++) {
        submit(e, 0, 11, 1, 0, 16);
    }
    for (s = 1; s <= 3; s++) {
        step(e, s, NULL);
    }
    light = submit(e, 1, 33, 1, 0, 4);
    for (; !reqs[light].done; s++) {
        step(e, s, NULL);
    }
    ok(reqs[light].first_step > 0 && reqs[light].first_step - 3 <= 16 + 1,
       "light tenant's first token %d steps after it arrived (a heavy "
       "request lasts 16; FIFO would be ~%d)", reqs[light].first_step - 3,
       60 * 16 / 8);
    ok(finished(0) < 20, "most heavy requests were still queued (%d done)",
       finished(0));
    drain(e);

    /* priority within a tenant */
    for (i = 0; i < 30; i++) {
        submit(e, 0, 11, 1, 5, 8);
    }
    urgent = submit(e, 0, 11, 1, -1, 8);
    for (s = 1; !reqs[urgent].done; s++) {
        step(e, s, NULL);
    }
    ok(finished(0) <= 8 + 1, "priority -1 finished among the first "
       "(%d of its tenant's requests done by then)", finished(0));
    drain(e);

    /* no tenants: first-come first-served */
    for (i = 0; i < 20; i++) {
        submit(e, 0, 0, 0, 0, 4);
    }
    for (s = 1; st_engine_has_work(e); s++) {
        step(e, s, NULL);
    }
    fifo_ok = 1;
    for (i = 1; i < 20; i++) {
        if (reqs[i].first_step < reqs[i - 1].first_step) {
            fifo_ok = 0;
        }
    }
    ok(fifo_ok, "default tenant: first tokens in submission order");
    n_reqs = 0;

    st_engine_free(e);
    return done_testing();
}
