/*
 * Sessions: a conversation's KV blocks kept across turns.
 *
 * A session names the K/V of tokens[0, n_tokens) of its last turn. Between
 * turns it holds references to those blocks (pinned: the prefix cache
 * cannot evict them); during a turn the blocks move to the turn's
 * sequence, which extends them, and move back when the turn ends. A turn
 * whose tokens do not start with the session's keeps only the common
 * prefix (the session is replaced).
 *
 * Under KV pressure, idle sessions are evicted least recently used first
 * (a session with a turn in flight holds no blocks of its own, so it is
 * never a candidate). With a store configured (session_store.c) an
 * evicted session is spilled to a file and restored, checksum-verified,
 * on its next turn; otherwise, or when the file is bad, the turn
 * recomputes from its tokens.
 *
 * All of it runs under the engine's threading rule: submit/close/list
 * from the owner between steps, eviction and restore inside a step.
 */
#ifndef ST_SESSION_H
#define ST_SESSION_H

#include "starling/st_engine.h"
#include "model/kv_cache.h"

#define ST_SESSION_BUCKETS 256

typedef struct st_session st_session;

struct st_session {
    st_session     *hnext;           /* hash bucket chain */
    st_session     *prev, *next;     /* LRU: head = least recently used */
    char            id[ST_SESSION_ID_MAX + 1];
    uint32_t        id_len;
    st_session_state state;

    int32_t        *tokens;          /* (n_tokens) ids whose K/V are kept */
    uint32_t        n_tokens;
    uint32_t        cap_tokens;
    st_kv_seq       kv;              /* resident blocks (idle only) */

    st_seq         *busy;            /* turn in flight, or NULL */
    int             closing;         /* closed during its turn */
    double          last_used_ms;

    char           *spill_path;      /* when spilled */
    uint64_t        spill_bytes;
};

typedef struct {
    st_session     *buckets[ST_SESSION_BUCKETS];
    st_session     *lru_head, *lru_tail;
    uint32_t        n_sessions;

    /* spill store (off when dir == NULL) */
    char           *dir;
    uint64_t        store_max_bytes;
    double          max_idle_ms;
    uint64_t        store_bytes;
    uint64_t        next_file;

    /* counters, as reported in st_engine_stats */
    uint64_t        hits, misses, restores, restore_failures;
    uint64_t        spills, spill_bytes, restore_bytes;
    double          restore_ms;
    uint64_t        evictions, expired;
} st_sessions;

struct st_engine;

void st_sessions_free(struct st_engine *e);

/* submit: find or create the session for a turn; error if it has a turn
 * in flight or the id is malformed. */
st_status st_session_begin(struct st_engine *e, st_seq *s, const char *id,
    size_t id_len, st_error *err);
/* First admission of s: make the session's K/V (resident or spilled)
 * the start of s's block table. Returns the tokens s need not compute. */
uint32_t st_session_resume(struct st_engine *e, st_seq *s);
/* s finished: its blocks become the session's (dropped on error or after
 * a close). */
void st_session_end_turn(struct st_engine *e, st_seq *s,
    st_finish_reason why);
/* reserve that evicts idle sessions, least recently used first, while the
 * pool is short. */
st_status st_session_reserve(struct st_engine *e, st_kv_seq *seq,
    uint32_t n_pos);
/* Spilled sessions idle longer than max_idle are removed. */
void st_sessions_expire(struct st_engine *e, double now_ms);

void st_sessions_get_stats(const struct st_engine *e, st_engine_stats *out);

/* session_store.c: the spill files. */
st_status st_session_spill_write(const st_kv_cache *kv, st_session *ss,
    const char *path, uint64_t *bytes, st_error *err);
/* Fills seq's blocks (already reserved for n_want positions) with the
 * first n_want positions of the spill file, checking every block's
 * SHA-256; the tokens in the file must equal ss->tokens. Returns the
 * positions restored, or 0 if the file is missing, truncated or corrupt
 * (the caller then drops the blocks and recomputes). */
uint32_t st_session_spill_read(st_kv_cache *kv, const st_session *ss,
    st_kv_seq *seq, uint32_t n_want, st_error *err);

#endif /* ST_SESSION_H */
