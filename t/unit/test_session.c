/*
 * Engine sessions on the shipped models: a turn that extends its session
 * computes only the new tokens and gives exactly the ids and logprobs of
 * a fresh run; edited history replaces the session; close frees the
 * blocks; idle sessions are evicted least recently used first; spill and
 * restore are bit-exact; a corrupt or truncated spill file means
 * recompute (same output); the store size bound and max_idle expiry.
 */
#include "tap.h"
#include "starling/st_engine.h"
#include "engine/engine_internal.h"   /* st_sessions_expire, st_now_ms */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_IDS 256

typedef struct {
    int32_t           ids[MAX_IDS];
    float             logprobs[MAX_IDS];
    uint32_t          n;
    uint32_t          n_cached;
    st_session_result session;
    st_finish_reason  finish;
} turn_out;

static uint64_t per_block_bytes;


static st_engine *
make_engine(const char *model, uint32_t n_blocks)
{
    st_engine_params p;
    st_engine       *e;
    st_error         err;

    st_engine_params_default(&p);
    p.path = model;
    p.max_seqs = 4;
    p.step_tokens = 64;
    p.n_threads = 1;
    p.n_ctx = 256;
    p.kv_bytes = per_block_bytes * n_blocks;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        diag("engine: %s", err.msg);
        return NULL;
    }
    return e;
}


/* Ids that are not special tokens for the tiny models (EOS is ignored
 * anyway). */
static void
make_ids(int32_t *ids, uint32_t n, uint32_t seed)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        ids[i] = (int32_t) (10 + (seed * 131 + i * 17) % 200);
    }
}


static st_seq *
submit(st_engine *e, const int32_t *ids, uint32_t n, uint32_t max_tokens,
    const char *session, st_error *err)
{
    st_request req;
    st_seq    *s = NULL;

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.0f;
    req.sampling.n_probs = 1;
    req.prompt = ids;
    req.n_prompt = n;
    req.max_tokens = max_tokens;
    req.ignore_eos = 1;
    req.session_id = session;
    req.session_id_len = session ? strlen(session) : 0;
    if (st_engine_submit(e, &req, &s, err) != ST_OK) {
        return NULL;
    }
    return s;
}


/* Steps until every given sequence finished; records their output. */
static void
run(st_engine *e, st_seq **s, turn_out *o, int n)
{
    st_seq_output out;
    st_error      err;
    int           i, busy, guard = 0;
    size_t        k;

    memset(o, 0, sizeof(*o) * n);
    do {
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
        }
        busy = 0;
        for (i = 0; i < n; i++) {
            st_seq_take(s[i], &out);
            for (k = 0; k < out.n_tokens; k++) {
                if (out.tokens[k].token >= 0 && o[i].n < MAX_IDS) {
                    o[i].ids[o[i].n] = out.tokens[k].token;
                    o[i].logprobs[o[i].n] = out.tokens[k].logprob;
                    o[i].n++;
                }
            }
            o[i].finish = out.finish;
            o[i].n_cached = out.n_cached_tokens;
            o[i].session = out.session;
            busy |= out.finish == ST_FINISH_NONE;
        }
    } while (busy && ++guard < 10000);
    for (i = 0; i < n; i++) {
        st_seq_release(e, s[i]);
    }
}


static turn_out
turn(st_engine *e, const int32_t *ids, uint32_t n, uint32_t max_tokens,
    const char *session)
{
    turn_out  o;
    st_seq   *s;
    st_error  err;

    s = submit(e, ids, n, max_tokens, session, &err);
    if (s == NULL) {
        diag("submit: %s", err.msg);
        memset(&o, 0, sizeof(o));
        o.finish = ST_FINISH_ERROR;
        return o;
    }
    run(e, &s, &o, 1);
    return o;
}


static int
same_output(const turn_out *a, const turn_out *b)
{
    return a->n == b->n && a->n > 0
           && memcmp(a->ids, b->ids, sizeof(int32_t) * a->n) == 0
           && memcmp(a->logprobs, b->logprobs, sizeof(float) * a->n) == 0;
}


/* history = prompt + generated ids, then extra new ids */
static uint32_t
extend(int32_t *dst, const int32_t *prompt, uint32_t n_prompt,
    const turn_out *t, uint32_t n_extra, uint32_t seed)
{
    memcpy(dst, prompt, sizeof(int32_t) * n_prompt);
    memcpy(dst + n_prompt, t->ids, sizeof(int32_t) * t->n);
    make_ids(dst + n_prompt + t->n, n_extra, seed);
    return n_prompt + t->n + n_extra;
}


static st_session_state
state_of(st_engine *e, const char *id, int *found)
{
    st_session_info info[16];
    size_t          n, i;

    n = st_engine_sessions_list(e, info, 16);
    for (i = 0; i < n && i < 16; i++) {
        if (strcmp(info[i].id, id) == 0) {
            *found = 1;
            return info[i].state;
        }
    }
    *found = 0;
    return ST_SESSION_EMPTY;
}


static void
pin_extend_replace_close(const char *model)
{
    st_engine       *e = make_engine(model, 64), *ref = make_engine(model, 64);
    int32_t          p1[40], p2[120], p3[120];
    uint32_t         n2, n3;
    turn_out         t1, t2, r2, t3, r3;
    st_engine_stats  st;
    st_seq          *a, *b;
    st_error         err;

    if (e == NULL || ref == NULL) {
        ok(0, "engines");
        return;
    }
    make_ids(p1, 40, 1);
    t1 = turn(e, p1, 40, 12, "chat-1");
    ok(t1.n == 12 && t1.session == ST_SESSION_MISS && t1.n_cached == 0,
       "turn 1: 12 tokens, a miss (%u, result %s)", t1.n,
       st_session_result_str(t1.session));
    st_engine_get_stats(e, &st);
    ok(st.sessions_resident == 1 && st.session_blocks == 4,
       "turn 1 leaves 51 positions pinned in 4 blocks (%u sessions, %u "
       "blocks)", st.sessions_resident, st.session_blocks);

    n2 = extend(p2, p1, 40, &t1, 9, 2);
    t2 = turn(e, p2, n2, 10, "chat-1");
    r2 = turn(ref, p2, n2, 10, NULL);
    ok(t2.session == ST_SESSION_HIT && t2.n_cached == 40 + 12 - 1,
       "turn 2 extends: hit, %u tokens cached (want 51)", t2.n_cached);
    ok(same_output(&t2, &r2), "turn 2: ids and logprobs equal a fresh run");

    /* edited history: the second half differs */
    memcpy(p3, p2, sizeof(int32_t) * n2);
    p3[30] = p3[30] + 1;
    n3 = n2;
    t3 = turn(e, p3, n3, 8, "chat-1");
    r3 = turn(ref, p3, n3, 8, NULL);
    ok(t3.session == ST_SESSION_HIT && t3.n_cached == 16,
       "edited at 30: only the common whole blocks are kept (%u cached)",
       t3.n_cached);
    ok(same_output(&t3, &r3), "edited turn: output equals a fresh run");

    /* a second turn while one is in flight is refused */
    a = submit(e, p3, n3, 4, "chat-1", &err);
    b = submit(e, p3, n3, 4, "chat-1", &err);
    ok(a != NULL && b == NULL && strstr(err.msg, "in flight") != NULL,
       "a concurrent turn of one session is refused (%s)", err.msg);
    if (a != NULL) {
        run(e, &a, &t3, 1);
    }
    b = submit(e, p1, 3, 2, "", &err);
    ok(b == NULL, "an empty session id is refused");

    st_engine_get_stats(e, &st);
    ok(st.session_blocks > 0, "session pins %u blocks", st.session_blocks);
    ok(st_engine_session_close(e, "chat-1", 6) == 1, "close: found");
    st_engine_get_stats(e, &st);
    ok(st.sessions_resident == 0 && st.session_blocks == 0
       && st.kv_blocks_free == st.kv_blocks_total,
       "close frees every block (%u/%u free)", st.kv_blocks_free,
       st.kv_blocks_total);
    ok(st_engine_session_close(e, "chat-1", 6) == 0,
       "close again: not found (idempotent)");
    st_engine_free(e);
    st_engine_free(ref);
}


/* 12 blocks; three idle sessions of 2 blocks each; an 8-block request
 * finds 6 free and evicts exactly one session: the least recently used. */
static void
eviction_order(const char *model)
{
    st_engine  *e = make_engine(model, 12);
    int32_t     pa[20], pb[20], pc[20], big[100], ha[40];
    turn_out    ta, tb, tc, tbig;
    int         fa, fb, fc;
    st_session_state sa, sb, sc;
    st_engine_stats  st;

    if (e == NULL) {
        ok(0, "engine");
        return;
    }
    make_ids(pa, 20, 3);
    make_ids(pb, 20, 4);
    make_ids(pc, 20, 5);
    ta = turn(e, pa, 20, 12, "a");
    tb = turn(e, pb, 20, 12, "b");
    tc = turn(e, pc, 20, 12, "c");
    /* a again (its whole history, one new token): a becomes the most
     * recently used, b the least */
    memcpy(ha, pa, sizeof(pa));
    memcpy(ha + 20, ta.ids, sizeof(int32_t) * ta.n);
    ta = turn(e, ha, 32, 1, "a");
    ok(ta.session == ST_SESSION_HIT && ta.n_cached == 31,
       "a resumed (%u cached)", ta.n_cached);
    st_engine_get_stats(e, &st);
    ok(st.session_blocks == 6, "three idle sessions pin 6 of 12 blocks (%u)",
       st.session_blocks);

    /* 100 + 20 - 1 = 119 positions: 8 blocks, 6 free */
    make_ids(big, 100, 6);
    tbig = turn(e, big, 100, 20, NULL);
    ok(tbig.n == 20 && tbig.finish == ST_FINISH_LENGTH,
       "the big request completes (%u tokens)", tbig.n);
    sa = state_of(e, "a", &fa);
    sb = state_of(e, "b", &fb);
    sc = state_of(e, "c", &fc);
    ok(fa && fb && fc && sb == ST_SESSION_EMPTY && sa == ST_SESSION_RESIDENT
       && sc == ST_SESSION_RESIDENT,
       "the least recently used session (b) was evicted, a and c kept "
       "(a %d, b %d, c %d)", sa, sb, sc);
    st_engine_get_stats(e, &st);
    ok(st.session_evictions == 1, "one eviction (%llu)",
       (unsigned long long) st.session_evictions);

    /* b's next turn recomputes, and is still right */
    {
        int32_t  hb[40];
        turn_out t, r;
        st_engine *ref = make_engine(model, 64);

        memcpy(hb, pb, sizeof(pb));
        memcpy(hb + 20, tb.ids, sizeof(int32_t) * tb.n);
        t = turn(e, hb, 32, 6, "b");
        r = ref ? turn(ref, hb, 32, 6, NULL) : t;
        ok(t.session == ST_SESSION_MISS && same_output(&t, &r),
           "evicted b: a miss with the right output");
        st_engine_free(ref);
    }
    (void) tc;
    st_engine_free(e);
}


static int
spill_files(const char *dir, char *first, size_t len)
{
    DIR           *d = opendir(dir);
    struct dirent *de;
    int            n = 0;

    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".kvs") != NULL
            && strstr(de->d_name, ".tmp") == NULL)
        {
            if (n++ == 0 && first) {
                snprintf(first, len, "%s/%s", dir, de->d_name);
            }
        }
    }
    closedir(d);
    return n;
}


typedef enum { DAMAGE_NONE, DAMAGE_FLIP, DAMAGE_TRUNCATE } damage;

/* Turn 1 on session s, evicted (spilled) by a big request, then turn 2.
 * Compares with turn 2 on an engine where s never left memory. */
static void
spill_restore(const char *model, damage how)
{
    char        dir[] = "/tmp/st-session-XXXXXX", file[512];
    st_engine  *e = make_engine(model, 12), *ref = make_engine(model, 64);
    int32_t     p1[30], p2[80], big[120];
    uint32_t    n2;
    turn_out    t1, r1, t2, r2, tbig;
    st_engine_stats st;
    st_error    err;
    int         found;
    const char *what = how == DAMAGE_NONE ? "intact"
                       : how == DAMAGE_FLIP ? "corrupt" : "truncated";

    if (e == NULL || ref == NULL || mkdtemp(dir) == NULL) {
        ok(0, "setup");
        return;
    }
    ok(st_engine_session_store(e, dir, 1 << 24, 0, &err) == ST_OK,
       "store configured");
    make_ids(p1, 30, 7);
    t1 = turn(e, p1, 30, 14, "s");
    r1 = turn(ref, p1, 30, 14, "s");
    make_ids(big, 120, 8);
    tbig = turn(e, big, 120, 40, NULL);       /* 159 positions: 10 blocks */
    (void) tbig;
    ok(state_of(e, "s", &found) == ST_SESSION_SPILLED && found,
       "%s: the idle session was spilled", what);
    ok(spill_files(dir, file, sizeof(file)) == 1, "one spill file");
    if (how != DAMAGE_NONE) {
        FILE *f = fopen(file, "r+b");
        long  size;

        if (f != NULL) {
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            if (how == DAMAGE_FLIP) {
                int c;

                fseek(f, size - 100, SEEK_SET);  /* inside the last block */
                c = fgetc(f);
                fseek(f, size - 100, SEEK_SET);
                fputc(c ^ 0x01, f);
                fclose(f);
            } else {
                fclose(f);
                ok(truncate(file, size - 5000) == 0, "file truncated");
            }
        }
    }
    n2 = extend(p2, p1, 30, &t1, 11, 9);
    t2 = turn(e, p2, n2, 12, "s");
    r2 = turn(ref, p2, n2, 12, "s");
    st_engine_get_stats(e, &st);
    if (how == DAMAGE_NONE) {
        ok(t2.session == ST_SESSION_RESTORED && t2.n_cached == 43,
           "restored: %u tokens cached (want 43), result %s", t2.n_cached,
           st_session_result_str(t2.session));
        ok(r2.session == ST_SESSION_HIT && r2.n_cached == 43,
           "reference turn stayed in memory (%s)",
           st_session_result_str(r2.session));
        ok(st.session_restores == 1 && st.session_spills == 1
           && st.session_restore_bytes > 0,
           "1 spill, 1 restore, %llu bytes",
           (unsigned long long) st.session_restore_bytes);
    } else {
        ok(t2.session == ST_SESSION_MISS && st.session_restore_failures == 1,
           "%s file: a miss, counted as a restore failure", what);
    }
    ok(same_output(&t1, &r1), "turn 1 equal on both engines");
    ok(same_output(&t2, &r2),
       "%s: turn 2 gives exactly the ids and logprobs of a session that "
       "never left memory", what);
    ok(spill_files(dir, NULL, 0) == 0, "the spill file is gone after use");
    st_engine_free(e);
    st_engine_free(ref);
    rmdir(dir);
}


/* A store that holds one file: the second spill removes the first; then
 * max_idle expiry removes the second. */
static void
store_bound_and_expiry(const char *model)
{
    char        dir[] = "/tmp/st-session-XXXXXX";
    st_engine  *e = make_engine(model, 12);
    int32_t     p[30], big[120];
    turn_out    t;
    st_engine_stats st;
    st_error    err;
    uint64_t    one;
    int         fx, fy;

    if (e == NULL || mkdtemp(dir) == NULL) {
        ok(0, "setup");
        return;
    }
    /* 3 blocks + header: one file, not two */
    one = per_block_bytes * 3 + 4096 + 4 * 64;
    {
        /* a file left by a process that is gone (pid 2^22 + 1 is above
         * Linux's pid_max limit) is removed when a store opens the
         * directory; another's live file stays */
        char  stale[600], live[600];
        FILE *f;

        snprintf(stale, sizeof(stale), "%s/starling-4194305-0x1-0.kvs", dir);
        snprintf(live, sizeof(live), "%s/starling-1-0x1-0.kvs", dir);
        f = fopen(stale, "w");
        if (f) fclose(f);
        f = fopen(live, "w");
        if (f) fclose(f);
        ok(st_engine_session_store(e, dir, one + one / 2, 60000, &err)
           == ST_OK, "store of %llu bytes",
           (unsigned long long) (one + one / 2));
        ok(access(stale, F_OK) != 0 && access(live, F_OK) == 0,
           "a dead process's spill file is swept, a live one's kept");
        unlink(live);
    }
    make_ids(p, 30, 10);
    t = turn(e, p, 30, 12, "x");
    make_ids(big, 120, 11);
    t = turn(e, big, 120, 40, NULL);
    ok(state_of(e, "x", &fx) == ST_SESSION_SPILLED, "x spilled");
    make_ids(p, 30, 12);
    t = turn(e, p, 30, 12, "y");
    t = turn(e, big, 120, 40, NULL);
    st_engine_get_stats(e, &st);
    ok(state_of(e, "y", &fy) == ST_SESSION_SPILLED
       && state_of(e, "x", &fx) == ST_SESSION_EMPTY && fx,
       "y spilled, x's file removed to make room");
    ok(spill_files(dir, NULL, 0) == 1 && st.session_store_bytes <= one + one / 2
       && st.session_expired == 1,
       "one file on disk, %llu bytes, 1 removed",
       (unsigned long long) st.session_store_bytes);

    st_sessions_expire(e, st_now_ms() + 60001.0);
    st_engine_get_stats(e, &st);
    ok(spill_files(dir, NULL, 0) == 0 && st.sessions_spilled == 0
       && st.session_store_bytes == 0,
       "past max_idle the spilled session expires");
    state_of(e, "y", &fy);
    ok(!fy, "expired session is forgotten");
    (void) t;
    st_engine_free(e);
    rmdir(dir);
}


int
main(void)
{
    char       m1[1024], m2[1024];
    st_engine *probe;

    snprintf(m1, sizeof(m1), "%s/models/stories260K.gguf", tap_root_dir());
    snprintf(m2, sizeof(m2), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    per_block_bytes = 0;             /* the default pool */
    probe = make_engine(m1, 1);
    if (probe == NULL) {
        return done_testing();
    }
    per_block_bytes = st_engine_info(probe)->kv_bytes
                      / st_engine_info(probe)->kv_blocks_total;
    st_engine_free(probe);

    pin_extend_replace_close(m1);
    eviction_order(m1);
    spill_restore(m1, DAMAGE_NONE);
    spill_restore(m1, DAMAGE_FLIP);
    spill_restore(m1, DAMAGE_TRUNCATE);
    store_bound_and_expiry(m1);
    (void) m2;
    return done_testing();
}
