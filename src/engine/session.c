/*
 * Sessions: lookup by id, turns (begin, resume, end), LRU eviction of idle
 * sessions under KV pressure, spill store bookkeeping (size bound,
 * expiry), close and listing. The file format is session_store.c.
 */
#include "engine/engine_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


const char *
st_session_result_str(st_session_result r)
{
    switch (r) {
    case ST_SESSION_NONE:     return "none";
    case ST_SESSION_MISS:     return "miss";
    case ST_SESSION_HIT:      return "hit";
    case ST_SESSION_RESTORED: return "restored";
    }
    return "unknown";
}


int
st_session_id_valid(const char *id, size_t len)
{
    size_t i;

    if (id == NULL || len == 0 || len > ST_SESSION_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) id[i] < 0x20 || (unsigned char) id[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}


static uint32_t
st_session_bucket(const char *id, size_t len)
{
    uint32_t h = 2166136261u;
    size_t   i;

    for (i = 0; i < len; i++) {
        h = (h ^ (unsigned char) id[i]) * 16777619u;
    }
    return h % ST_SESSION_BUCKETS;
}


static st_session *
st_session_find(st_sessions *ss, const char *id, size_t len)
{
    st_session *x;

    for (x = ss->buckets[st_session_bucket(id, len)]; x; x = x->hnext) {
        if (x->id_len == len && memcmp(x->id, id, len) == 0) {
            return x;
        }
    }
    return NULL;
}


static void
st_lru_unlink(st_sessions *ss, st_session *x)
{
    if (x->prev) {
        x->prev->next = x->next;
    } else {
        ss->lru_head = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    } else {
        ss->lru_tail = x->prev;
    }
    x->prev = x->next = NULL;
}


static void
st_lru_append(st_sessions *ss, st_session *x)
{
    x->prev = ss->lru_tail;
    x->next = NULL;
    if (ss->lru_tail) {
        ss->lru_tail->next = x;
    } else {
        ss->lru_head = x;
    }
    ss->lru_tail = x;
}


/* Forgets the spill file, if any. */
static void
st_session_unspill(st_sessions *ss, st_session *x)
{
    if (x->spill_path == NULL) {
        return;
    }
    unlink(x->spill_path);
    free(x->spill_path);
    x->spill_path = NULL;
    ss->store_bytes -= x->spill_bytes;
    x->spill_bytes = 0;
}


/* Drops whatever the session keeps (blocks, file, tokens); it stays
 * known. */
static void
st_session_clear(st_engine *e, st_session *x)
{
    st_kv_seq_release(&e->kv, &x->kv);
    st_session_unspill(&e->sessions, x);
    x->n_tokens = 0;
    x->state = ST_SESSION_EMPTY;
}


static void
st_session_destroy(st_engine *e, st_session *x)
{
    st_sessions  *ss = &e->sessions;
    st_session  **pp;

    st_session_clear(e, x);
    for (pp = &ss->buckets[st_session_bucket(x->id, x->id_len)]; *pp;
         pp = &(*pp)->hnext)
    {
        if (*pp == x) {
            *pp = x->hnext;
            break;
        }
    }
    st_lru_unlink(ss, x);
    ss->n_sessions--;
    st_kv_seq_free(&x->kv);
    free(x->tokens);
    free(x);
}


void
st_sessions_free(st_engine *e)
{
    while (e->sessions.lru_head != NULL) {
        st_session_destroy(e, e->sessions.lru_head);
    }
    free(e->sessions.dir);
    e->sessions.dir = NULL;
}


/* Spill files of processes that no longer exist (a crashed worker's) are
 * nobody's: remove them. Live processes' files are left alone. */
static void
st_store_sweep(const char *dir)
{
    DIR           *d = opendir(dir);
    struct dirent *de;
    char           path[4096], *end;
    long           pid;

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "starling-", 9) != 0
            || strstr(de->d_name, ".kvs") == NULL)
        {
            continue;
        }
        pid = strtol(de->d_name + 9, &end, 10);
        if (end == de->d_name + 9 || *end != '-' || pid <= 0
            || pid == (long) getpid()
            || kill((pid_t) pid, 0) == 0 || errno != ESRCH)
        {
            continue;                  /* alive (or not ours to judge) */
        }
        if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, de->d_name)
            < sizeof(path))
        {
            unlink(path);
        }
    }
    closedir(d);
}


st_status
st_engine_session_store(st_engine *e, const char *dir, uint64_t max_bytes,
    double max_idle_ms, st_error *err)
{
    char *d;

    if (dir == NULL || dir[0] == '\0' || max_bytes == 0 || max_idle_ms < 0) {
        return st_error_set(err, ST_ERR_INVALID,
                            "session store: needs a directory and a size");
    }
    if (e->kv.k == NULL) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "session store: the %s backend keeps KV on the "
                            "device; spilling needs the CPU backend",
                            e->be->name);
    }
    if (access(dir, W_OK | X_OK) != 0) {
        return st_error_set(err, ST_ERR_IO,
                            "session store: \"%s\" is not a writable "
                            "directory", dir);
    }
    st_store_sweep(dir);
    d = strdup(dir);
    if (d == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    free(e->sessions.dir);
    e->sessions.dir = d;
    e->sessions.store_max_bytes = max_bytes;
    e->sessions.max_idle_ms = max_idle_ms;
    return ST_OK;
}


st_status
st_session_begin(st_engine *e, st_seq *s, const char *id, size_t id_len,
    st_error *err)
{
    st_sessions *ss = &e->sessions;
    st_session  *x;
    uint32_t     b;

    if (!st_session_id_valid(id, id_len)) {
        return st_error_set(err, ST_ERR_INVALID,
                            "session_id must be 1..%d printable ASCII "
                            "characters", ST_SESSION_ID_MAX);
    }
    st_sessions_expire(e, st_now_ms());
    x = st_session_find(ss, id, id_len);
    if (x != NULL && x->busy != NULL) {
        return st_error_set(err, ST_ERR_INVALID,
                            "session has a turn in flight");
    }
    if (x == NULL) {
        x = calloc(1, sizeof(*x));
        if (x == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "out of memory");
        }
        memcpy(x->id, id, id_len);
        x->id[id_len] = '\0';
        x->id_len = (uint32_t) id_len;
        x->state = ST_SESSION_EMPTY;
        b = st_session_bucket(id, id_len);
        x->hnext = ss->buckets[b];
        ss->buckets[b] = x;
        ss->n_sessions++;
    } else {
        st_lru_unlink(ss, x);
    }
    st_lru_append(ss, x);             /* most recently used */
    x->busy = s;
    x->closing = 0;
    x->last_used_ms = st_now_ms();
    s->session = x;
    return ST_OK;
}


static uint32_t
st_common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t i, n = na < nb ? na : nb;

    for (i = 0; i < n && a[i] == b[i]; i++) { /* */ }
    return i;
}


uint32_t
st_session_resume(st_engine *e, st_seq *s)
{
    st_sessions *ss = &e->sessions;
    st_session  *x = s->session;
    uint32_t     keep, got = 0;
    double       t0;
    st_error     err;
    st_kv_seq    tmp;

    if (x == NULL || s->kv.n_blocks != 0) {
        return 0;
    }
    /* leave at least one token to compute so the step yields logits */
    keep = st_common_prefix(x->tokens, x->n_tokens, s->tokens,
                            s->n_tokens - 1);
    if (x->state == ST_SESSION_RESIDENT) {
        if (keep > 0) {
            tmp = s->kv;
            s->kv = x->kv;
            x->kv = tmp;
            got = st_kv_seq_truncate(&e->kv, &s->kv, x->tokens, keep);
        }
        st_kv_seq_release(&e->kv, &x->kv);
        s->session_result = got > 0 ? ST_SESSION_HIT : ST_SESSION_MISS;

    } else if (x->state == ST_SESSION_SPILLED) {
        if (keep > 0) {
            t0 = st_now_ms();
            got = 0;
            if (st_session_reserve(e, &s->kv, keep) == ST_OK) {
                got = st_session_spill_read(&e->kv, x, &s->kv, keep, &err);
            }
            if (got == 0) {
                st_kv_seq_release(&e->kv, &s->kv);
            }
            if (got > 0) {
                st_kv_commit(&e->kv, &s->kv, s->tokens, got);
                ss->restores++;
                ss->restore_bytes += x->spill_bytes;
                ss->restore_ms += st_now_ms() - t0;
            } else {
                ss->restore_failures++;
            }
        }
        st_session_unspill(ss, x);
        s->session_result = got > 0 ? ST_SESSION_RESTORED : ST_SESSION_MISS;

    } else {
        s->session_result = ST_SESSION_MISS;
    }
    if (s->session_result == ST_SESSION_MISS) {
        ss->misses++;
    } else {
        ss->hits++;
    }
    x->n_tokens = 0;
    x->state = ST_SESSION_EMPTY;
    return got;
}


void
st_session_end_turn(st_engine *e, st_seq *s, st_finish_reason why)
{
    st_session *x = s->session;
    st_kv_seq   tmp;
    int32_t    *t;
    uint32_t    n;

    if (x == NULL) {
        return;
    }
    s->session = NULL;
    x->busy = NULL;
    x->last_used_ms = st_now_ms();
    st_lru_unlink(&e->sessions, x);    /* most recently used again */
    st_lru_append(&e->sessions, x);
    if (x->closing) {
        st_session_destroy(e, x);
        return;
    }
    if (x->state != ST_SESSION_EMPTY) {
        return;                        /* never started: keeps what it had */
    }
    /* positions [0, n_past) have K/V; keep them unless the turn failed */
    n = s->n_past < s->kv.n_blocks * e->kv.block_tokens
        ? s->n_past : s->kv.n_blocks * e->kv.block_tokens;
    if (why == ST_FINISH_ERROR || n == 0) {
        return;
    }
    if (n > x->cap_tokens) {
        t = realloc(x->tokens, sizeof(int32_t) * n);
        if (t == NULL) {
            return;                    /* the blocks are released */
        }
        x->tokens = t;
        x->cap_tokens = n;
    }
    memcpy(x->tokens, s->tokens, sizeof(int32_t) * n);
    x->n_tokens = n;
    tmp = x->kv;
    x->kv = s->kv;
    s->kv = tmp;
    x->n_tokens = st_kv_seq_truncate(&e->kv, &x->kv, x->tokens, n);
    x->state = ST_SESSION_RESIDENT;
}


/* Oldest spilled files go first until extra more bytes fit the store. */
static int
st_store_make_room(st_engine *e, uint64_t extra)
{
    st_sessions *ss = &e->sessions;
    st_session  *x, *next;

    if (extra > ss->store_max_bytes) {
        return 0;
    }
    for (x = ss->lru_head; x && ss->store_bytes + extra > ss->store_max_bytes;
         x = next)
    {
        next = x->next;
        if (x->state == ST_SESSION_SPILLED) {
            st_session_unspill(ss, x);
            x->n_tokens = 0;
            x->state = ST_SESSION_EMPTY;
            ss->expired++;
        }
    }
    return ss->store_bytes + extra <= ss->store_max_bytes;
}


/* Evicts the least recently used idle resident session: spilled when a
 * store is configured and has room, otherwise dropped. 0 if none. */
static int
st_session_evict_lru(st_engine *e)
{
    st_sessions *ss = &e->sessions;
    st_session  *x;
    uint64_t     need, bytes;
    char         path[4096];
    st_error     err;

    for (x = ss->lru_head; x; x = x->next) {
        if (x->busy == NULL && x->state == ST_SESSION_RESIDENT) {
            break;
        }
    }
    if (x == NULL) {
        return 0;
    }
    ss->evictions++;
    need = st_kv_block_bytes(&e->kv) * x->kv.n_blocks + 4096
           + sizeof(int32_t) * (uint64_t) x->n_tokens;
    if (ss->dir != NULL && st_store_make_room(e, need)) {
        snprintf(path, sizeof(path), "%s/starling-%ld-%p-%llu.kvs", ss->dir,
                 (long) getpid(), (void *) e,
                 (unsigned long long) ss->next_file++);
        if (st_session_spill_write(&e->kv, x, path, &bytes, &err) == ST_OK) {
            x->spill_path = strdup(path);
            if (x->spill_path == NULL) {
                unlink(path);
            } else {
                x->spill_bytes = bytes;
                ss->store_bytes += bytes;
                ss->spills++;
                ss->spill_bytes += bytes;
                st_kv_seq_release(&e->kv, &x->kv);
                x->state = ST_SESSION_SPILLED;
                return 1;
            }
        }
    }
    st_session_clear(e, x);
    return 1;
}


st_status
st_session_reserve(st_engine *e, st_kv_seq *seq, uint32_t n_pos)
{
    st_status rc;

    for ( ;; ) {
        rc = st_kv_seq_reserve(&e->kv, seq, n_pos);
        if (rc != ST_ERR_FULL || !st_session_evict_lru(e)) {
            return rc;
        }
    }
}


void
st_sessions_expire(st_engine *e, double now_ms)
{
    st_sessions *ss = &e->sessions;
    st_session  *x, *next;

    if (ss->max_idle_ms <= 0) {
        return;
    }
    for (x = ss->lru_head; x; x = next) {
        next = x->next;
        if (now_ms - x->last_used_ms <= ss->max_idle_ms) {
            break;                     /* the rest were used later */
        }
        if (x->busy == NULL && x->state != ST_SESSION_RESIDENT) {
            ss->expired += x->state == ST_SESSION_SPILLED;
            st_session_destroy(e, x);
        }
    }
}


int
st_engine_session_close(st_engine *e, const char *id, size_t id_len)
{
    st_session *x;

    if (!st_session_id_valid(id, id_len)) {
        return 0;
    }
    x = st_session_find(&e->sessions, id, id_len);
    if (x == NULL) {
        return 0;
    }
    if (x->busy != NULL) {
        x->closing = 1;
        return 1;
    }
    st_session_destroy(e, x);
    return 1;
}


size_t
st_engine_sessions_list(st_engine *e, st_session_info *out, size_t cap)
{
    st_session *x;
    size_t      n = 0;
    double      now = st_now_ms();

    st_sessions_expire(e, now);
    for (x = e->sessions.lru_tail; x; x = x->prev) {
        if (x->closing) {
            continue;
        }
        if (n < cap) {
            st_session_info *o = &out[n];

            memcpy(o->id, x->id, x->id_len + 1);
            o->state = x->state;
            o->busy = x->busy != NULL;
            o->n_tokens = x->n_tokens;
            o->bytes = x->state == ST_SESSION_SPILLED
                       ? x->spill_bytes
                       : st_kv_block_bytes(&e->kv) * x->kv.n_blocks;
            o->idle_ms = x->busy ? 0 : now - x->last_used_ms;
        }
        n++;
    }
    return n;
}


void
st_sessions_get_stats(const st_engine *e, st_engine_stats *out)
{
    const st_sessions *ss = &e->sessions;
    const st_session  *x;

    out->sessions_resident = out->sessions_spilled = out->session_blocks = 0;
    for (x = ss->lru_head; x; x = x->next) {
        if (x->state == ST_SESSION_RESIDENT) {
            out->sessions_resident++;
            out->session_blocks += x->kv.n_blocks;
        } else if (x->state == ST_SESSION_SPILLED) {
            out->sessions_spilled++;
        }
    }
    out->session_hits = ss->hits;
    out->session_misses = ss->misses;
    out->session_restores = ss->restores;
    out->session_restore_failures = ss->restore_failures;
    out->session_spills = ss->spills;
    out->session_spill_bytes = ss->spill_bytes;
    out->session_restore_bytes = ss->restore_bytes;
    out->session_restore_ms = ss->restore_ms;
    out->session_evictions = ss->evictions;
    out->session_expired = ss->expired;
    out->session_store_bytes = ss->store_bytes;
}
