/*
 * Grammar matcher: stack sets (llama.cpp's model of a pushdown automaton
 * run on all alternatives at once), advanced code point by code point,
 * with interned states and a byte transition cache (grammar_internal.h).
 */
#include "engine/grammar_internal.h"

#include <stdlib.h>
#include <string.h>


void
st_gstacks_free(st_gstacks *s)
{
    free(s->data);
    free(s->off);
    free(s->len);
    memset(s, 0, sizeof(*s));
}


void
st_gstacks_clear(st_gstacks *s)
{
    s->n = 0;
    s->n_data = 0;
}


static int
st_gs_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    size_t nc;
    void *nb;

    if (need <= *cap) {
        return 0;
    }
    nc = *cap ? *cap * 2 : 16;
    while (nc < need) {
        nc *= 2;
    }
    nb = realloc(*buf, nc * elem);
    if (nb == NULL) {
        return -1;
    }
    *buf = nb;
    *cap = nc;
    return 0;
}


static int
st_gs_cmp(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    if (na != nb) {
        return na < nb ? -1 : 1;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}


/* inserts stack w[0..n) keeping the set sorted and unique */
static int
st_gs_add(st_gstacks *s, const uint32_t *w, size_t n)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = st_gs_cmp(s->data + s->off[mid], s->len[mid], w, n);
        if (c == 0) {
            return 0;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (s->n >= ST_GRAMMAR_MAX_STACKS) {
        return -1;
    }
    if (st_gs_grow((void **)&s->data, &s->cap_data, s->n_data + n + 1,
                   sizeof(uint32_t)) != 0
        || st_gs_grow((void **)&s->off, &s->cap, s->n + 1,
                      sizeof(uint32_t)) != 0)
    {
        return -1;
    }
    /* len has the same capacity as off */
    {
        uint32_t *nl = realloc(s->len, s->cap * sizeof(uint32_t));
        if (nl == NULL) {
            return -1;
        }
        s->len = nl;
    }
    memmove(s->off + lo + 1, s->off + lo, (s->n - lo) * sizeof(uint32_t));
    memmove(s->len + lo + 1, s->len + lo, (s->n - lo) * sizeof(uint32_t));
    if (n > 0) {
        memcpy(s->data + s->n_data, w, n * sizeof(uint32_t));
    }
    s->off[lo] = (uint32_t)s->n_data;
    s->len[lo] = (uint32_t)n;
    s->n_data += n;
    s->n++;
    return 0;
}


int
st_gstacks_copy(st_gstacks *dst, const st_gstacks *src)
{
    st_gstacks_clear(dst);
    if (st_gs_grow((void **)&dst->data, &dst->cap_data, src->n_data + 1,
                   sizeof(uint32_t)) != 0
        || st_gs_grow((void **)&dst->off, &dst->cap, src->n + 1,
                      sizeof(uint32_t)) != 0)
    {
        return -1;
    }
    {
        uint32_t *nl = realloc(dst->len, dst->cap * sizeof(uint32_t));
        if (nl == NULL) {
            return -1;
        }
        dst->len = nl;
    }
    if (src->n_data > 0) {
        memcpy(dst->data, src->data, src->n_data * sizeof(uint32_t));
    }
    if (src->n > 0) {
        memcpy(dst->off, src->off, src->n * sizeof(uint32_t));
        memcpy(dst->len, src->len, src->n * sizeof(uint32_t));
    }
    dst->n = src->n;
    dst->n_data = src->n_data;
    return 0;
}


/*
 * Adds to `out` every stack reachable from w[0..n) by expanding rule
 * references at the top until a char class (or nothing) is on top.
 * w has room for ST_GRAMMAR_MAX_DEPTH + 2 entries; entries below the
 * top are never modified and the top is restored before returning.
 */
static int
st_gs_expand(const st_grammar *g, uint32_t *w, size_t n, st_gstacks *out,
    int depth)
{
    uint32_t pos, next, a;
    int next_end;

    if (depth > ST_GRAMMAR_MAX_DEPTH) {
        return -1;
    }
    if (n == 0) {
        return st_gs_add(out, w, 0);
    }
    pos = w[n - 1];
    if (g->el[pos].type == ST_GE_CHAR) {
        return st_gs_add(out, w, n);
    }
    /* ST_GE_RULE: replace by (continuation, alternative start) */
    next = pos + 1;
    next_end = g->el[next].type == ST_GE_END || g->el[next].type == ST_GE_ALT;
    a = g->rule_start[g->el[pos].value];
    for (;;) {
        size_t m = n - 1;
        int rc;
        if (!next_end) {
            w[m++] = next;
        }
        if (g->el[a].type != ST_GE_END && g->el[a].type != ST_GE_ALT) {
            if (m >= ST_GRAMMAR_MAX_DEPTH) {
                w[n - 1] = pos;
                return -1;
            }
            w[m++] = a;
        }
        rc = st_gs_expand(g, w, m, out, depth + 1);
        w[n - 1] = pos;
        if (rc != 0) {
            return rc;
        }
        while (g->el[a].type != ST_GE_END && g->el[a].type != ST_GE_ALT) {
            a++;
        }
        if (g->el[a].type == ST_GE_END) {
            break;
        }
        a++;
    }
    return 0;
}


int
st_gstacks_init(const st_grammar *g, st_gstacks *out)
{
    uint32_t w[ST_GRAMMAR_MAX_DEPTH + 2];
    uint32_t a = g->rule_start[g->root];

    st_gstacks_clear(out);
    for (;;) {
        size_t m = 0;
        if (g->el[a].type != ST_GE_END && g->el[a].type != ST_GE_ALT) {
            w[m++] = a;
        }
        if (st_gs_expand(g, w, m, out, 0) != 0) {
            return -1;
        }
        while (g->el[a].type != ST_GE_END && g->el[a].type != ST_GE_ALT) {
            a++;
        }
        if (g->el[a].type == ST_GE_END) {
            break;
        }
        a++;
    }
    return 0;
}


int
st_gstacks_advance(const st_grammar *g, const st_gstacks *src, uint32_t cp,
    st_gstacks *dst)
{
    uint32_t w[ST_GRAMMAR_MAX_DEPTH + 2];

    st_gstacks_clear(dst);
    for (size_t i = 0; i < src->n; i++) {
        const uint32_t *st = src->data + src->off[i];
        size_t n = src->len[i], m;
        uint32_t top, next;

        if (n == 0) {
            continue;
        }
        top = st[n - 1];
        if (!st_gclass_match(g, g->el[top].value, cp)) {
            continue;
        }
        memcpy(w, st, (n - 1) * sizeof(uint32_t));
        m = n - 1;
        next = top + 1;
        if (g->el[next].type != ST_GE_END && g->el[next].type != ST_GE_ALT) {
            w[m++] = next;
        }
        if (st_gs_expand(g, w, m, dst, 0) != 0) {
            return -1;
        }
    }
    return (int)dst->n;
}


int
st_gstacks_accepting(const st_gstacks *s)
{
    /* sorted by length first: an empty stack comes first */
    return s->n > 0 && s->len[0] == 0;
}


uint64_t
st_gstacks_hash(const st_gstacks *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < s->n; i++) {
        const uint32_t *st = s->data + s->off[i];
        h = (h ^ (0x9e37u + s->len[i])) * 0x100000001b3ull;
        for (size_t j = 0; j < s->len[i]; j++) {
            h = (h ^ st[j]) * 0x100000001b3ull;
        }
    }
    return h ^ (h >> 29);
}


int
st_gstacks_equal(const st_gstacks *a, const st_gstacks *b)
{
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (st_gs_cmp(a->data + a->off[i], a->len[i],
                      b->data + b->off[i], b->len[i]) != 0)
        {
            return 0;
        }
    }
    return 1;
}


int
st_gclass_intersects(const st_grammar *g, uint32_t cls, uint32_t lo,
    uint32_t hi)
{
    const st_gclass *c = &g->cls[cls];
    const uint32_t *r = g->rng + 2 * (size_t)c->off;

    if (!c->neg) {
        for (uint32_t i = 0; i < c->n; i++) {
            if (r[2 * i] <= hi && r[2 * i + 1] >= lo) {
                return 1;
            }
        }
        return 0;
    }
    /* negated: some point of [lo, hi] lies outside every range */
    for (uint64_t cur = lo; cur <= hi;) {
        int moved = 0;
        for (uint32_t i = 0; i < c->n; i++) {
            if (r[2 * i] <= cur && r[2 * i + 1] >= cur) {
                cur = (uint64_t)r[2 * i + 1] + 1;
                moved = 1;
            }
        }
        if (!moved) {
            return 1;
        }
    }
    return 0;
}


int
st_grammar_partial_viable(const st_grammar *g, const st_gstacks *s,
    const st_gutf8 *u8)
{
    uint32_t shift = 6 * u8->rem;
    uint32_t lo = u8->value << shift, hi = lo | ((1u << shift) - 1);

    if (lo < u8->lo_min) {
        lo = u8->lo_min;
    }
    if (hi > 0x10FFFF) {
        hi = 0x10FFFF;
    }
    if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) {
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->len[i] > 0) {
            uint32_t top = s->data[s->off[i] + s->len[i] - 1];
            if (st_gclass_intersects(g, g->el[top].value, lo, hi)) {
                return 1;
            }
        }
    }
    return 0;
}


/* ---- interned states -------------------------------------------------- */

static uint64_t
st_gstate_hash(const st_gstacks *s, const st_gutf8 *u8)
{
    uint64_t h = st_gstacks_hash(s);
    h ^= ((uint64_t)u8->value << 8 | u8->rem) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}


static int
st_gm_index_rebuild(st_grammar_matcher *m, size_t cap)
{
    int32_t *idx = malloc(cap * sizeof(int32_t));

    if (idx == NULL) {
        return -1;
    }
    for (size_t i = 0; i < cap; i++) {
        idx[i] = -1;
    }
    for (size_t s = 0; s < m->n_states; s++) {
        size_t j = (size_t)m->states[s].hash & (cap - 1);
        while (idx[j] >= 0) {
            j = (j + 1) & (cap - 1);
        }
        idx[j] = (int32_t)s;
    }
    free(m->index);
    m->index = idx;
    m->index_cap = cap;
    return 0;
}


/* id of (s, u8), adding it if new; -3 on memory failure, -4 when full */
static int32_t
st_gm_intern(st_grammar_matcher *m, const st_gstacks *s, const st_gutf8 *u8)
{
    uint64_t h = st_gstate_hash(s, u8);
    size_t j = (size_t)h & (m->index_cap - 1);
    st_gstate *st;

    while (m->index[j] >= 0) {
        st = &m->states[m->index[j]];
        if (st->hash == h && st->u8.value == u8->value
            && st->u8.rem == u8->rem && st_gstacks_equal(&st->stacks, s))
        {
            return m->index[j];
        }
        j = (j + 1) & (m->index_cap - 1);
    }
    if (m->n_states >= ST_GRAMMAR_MAX_STATES) {
        return -4;
    }
    if (m->n_states == m->cap_states) {
        size_t nc = m->cap_states ? m->cap_states * 2 : 16;
        st_gstate *ns = realloc(m->states, nc * sizeof(st_gstate));
        int32_t *nt;
        if (ns == NULL) {
            return -3;
        }
        m->states = ns;
        nt = realloc(m->trans, nc * 256 * sizeof(int32_t));
        if (nt == NULL) {
            return -3;
        }
        m->trans = nt;
        m->cap_states = nc;
    }
    st = &m->states[m->n_states];
    memset(st, 0, sizeof(*st));
    if (st_gstacks_copy(&st->stacks, s) != 0) {
        st_gstacks_free(&st->stacks);
        return -3;
    }
    st->u8 = *u8;
    st->hash = h;
    st->mask_slot = -1;
    st->loop_known = 0;
    st->base = u8->rem == 0 ? (int32_t)m->n_states : -1;
    for (size_t b = 0; b < 256; b++) {
        m->trans[m->n_states * 256 + b] = ST_GSTATE_UNKNOWN;
    }
    m->n_states++;
    if (m->n_states * 2 > m->index_cap) {
        if (st_gm_index_rebuild(m, m->index_cap * 2) != 0) {
            return -3;
        }
    } else {
        m->index[j] = (int32_t)(m->n_states - 1);
    }
    return (int32_t)(m->n_states - 1);
}


int32_t
st_grammar_trans(st_grammar_matcher *m, int32_t s, unsigned char b,
    st_error *err)
{
    const st_grammar *g = m->g;
    int32_t t = m->trans[(size_t)s * 256 + b];
    st_gutf8 u8 = m->states[s].u8, nu8 = { 0, 0, 0 };
    uint32_t cp;
    int n;

    if (t != ST_GSTATE_UNKNOWN) {
        return t;
    }
    if (u8.rem == 0) {
        if (b < 0x80) {
            cp = b;
            goto advance;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            nu8.value = b & 0x1F; nu8.rem = 1; nu8.lo_min = 0x80;
        } else if (b >= 0xE0 && b <= 0xEF) {
            nu8.value = b & 0x0F; nu8.rem = 2; nu8.lo_min = 0x800;
        } else if (b >= 0xF0 && b <= 0xF4) {
            nu8.value = b & 0x07; nu8.rem = 3; nu8.lo_min = 0x10000;
        } else {
            t = ST_GSTATE_DEAD;
            goto done;
        }
        goto partial;
    }
    if ((b & 0xC0) != 0x80) {
        t = ST_GSTATE_DEAD;
        goto done;
    }
    nu8.value = (u8.value << 6) | (b & 0x3F);
    nu8.rem = u8.rem - 1;
    nu8.lo_min = u8.lo_min;
    if (nu8.rem > 0) {
        goto partial;
    }
    cp = nu8.value;
    if (cp < u8.lo_min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        t = ST_GSTATE_DEAD;
        goto done;
    }
    nu8.value = 0;
    nu8.lo_min = 0;
advance:
    n = st_gstacks_advance(g, &m->states[s].stacks, cp, &m->scratch);
    if (n < 0) {
        st_error_set(err, ST_ERR_INVALID, "grammar: matcher over %d stacks "
            "or %d deep (grammar too ambiguous)", ST_GRAMMAR_MAX_STACKS,
            ST_GRAMMAR_MAX_DEPTH);
        return -3;
    }
    if (n == 0) {
        t = ST_GSTATE_DEAD;
        goto done;
    }
    t = st_gm_intern(m, &m->scratch, &nu8);
    goto interned;
partial:
    if (!st_grammar_partial_viable(g, &m->states[s].stacks, &nu8)) {
        t = ST_GSTATE_DEAD;
        goto done;
    }
    if (st_gstacks_copy(&m->scratch, &m->states[s].stacks) != 0) {
        t = -3;
    } else {
        t = st_gm_intern(m, &m->scratch, &nu8);
        if (t >= 0 && m->states[t].base < 0) {
            m->states[t].base = m->states[s].base;
        }
    }
interned:
    if (t == -3) {
        st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
        return -3;
    }
    if (t == -4) {
        st_error_set(err, ST_ERR_FULL, "grammar: over %d matcher states",
            ST_GRAMMAR_MAX_STATES);
        return -3;
    }
done:
    m->trans[(size_t)s * 256 + b] = t;
    return t;
}


static void
st_gm_states_free(st_grammar_matcher *m)
{
    for (size_t i = 0; i < m->n_states; i++) {
        st_gstacks_free(&m->states[i].stacks);
    }
    m->n_states = 0;
}


static int
st_gm_reset_tables(st_grammar_matcher *m)
{
    st_gm_states_free(m);
    m->n_masks = 0;
    return st_gm_index_rebuild(m, 64);
}


int
st_grammar_matcher_compact(st_grammar_matcher *m, st_error *err)
{
    st_gstacks keep = { 0 };
    st_gutf8 u8 = m->states[m->cur].u8;
    int32_t id;

    if (st_gstacks_copy(&keep, &m->states[m->cur].stacks) != 0
        || st_gm_reset_tables(m) != 0)
    {
        st_gstacks_free(&keep);
        return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory"),
            -1;
    }
    id = st_gm_intern(m, &keep, &u8);
    st_gstacks_free(&keep);
    if (id < 0) {
        st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
        return -1;
    }
    m->cur = id;
    return 0;
}


st_status
st_grammar_matcher_create(st_grammar_matcher **out, const st_grammar *g,
    st_error *err)
{
    st_grammar_matcher *m = calloc(1, sizeof(*m));
    st_gstacks init = { 0 };
    st_gutf8 u8 = { 0, 0, 0 };

    *out = NULL;
    if (m == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
    }
    m->g = g;
    if (st_gm_index_rebuild(m, 64) != 0) {
        st_grammar_matcher_free(m);
        return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
    }
    if (st_gstacks_init(g, &init) != 0) {
        st_gstacks_free(&init);
        st_grammar_matcher_free(m);
        return st_error_set(err, ST_ERR_INVALID, "grammar: start state over "
            "%d stacks or %d deep", ST_GRAMMAR_MAX_STACKS,
            ST_GRAMMAR_MAX_DEPTH);
    }
    m->cur = st_gm_intern(m, &init, &u8);
    st_gstacks_free(&init);
    if (m->cur < 0) {
        st_grammar_matcher_free(m);
        return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
    }
    *out = m;
    return ST_OK;
}


st_status
st_grammar_matcher_clone(st_grammar_matcher **out,
    const st_grammar_matcher *m, st_error *err)
{
    st_grammar_matcher *c;
    st_status rc = st_grammar_matcher_create(&c, m->g, err);
    int32_t id;

    if (rc != ST_OK) {
        return rc;
    }
    id = st_gm_intern(c, &m->states[m->cur].stacks, &m->states[m->cur].u8);
    if (id < 0) {
        st_grammar_matcher_free(c);
        return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
    }
    c->cur = id;
    *out = c;
    return ST_OK;
}


void
st_grammar_matcher_free(st_grammar_matcher *m)
{
    if (m == NULL) {
        return;
    }
    st_gm_states_free(m);
    free(m->states);
    free(m->trans);
    free(m->index);
    st_gstacks_free(&m->scratch);
    free(m->masks);
    free(m->walk);
    free(m);
}


const st_grammar *
st_grammar_matcher_grammar(const st_grammar_matcher *m)
{
    return m->g;
}


int
st_grammar_matcher_accept(st_grammar_matcher *m, const char *bytes,
    size_t len, st_error *err)
{
    int32_t s;

    if (m->n_states > ST_GRAMMAR_MAX_STATES / 2
        && st_grammar_matcher_compact(m, err) != 0)
    {
        return -1;
    }
    s = m->cur;
    for (size_t i = 0; i < len; i++) {
        s = st_grammar_trans(m, s, (unsigned char)bytes[i], err);
        if (s == ST_GSTATE_DEAD) {
            return 0;
        }
        if (s < 0) {
            return -1;
        }
    }
    m->cur = s;
    return 1;
}


int
st_grammar_matcher_accepting(const st_grammar_matcher *m)
{
    const st_gstate *st = &m->states[m->cur];
    return st->u8.rem == 0 && st_gstacks_accepting(&st->stacks);
}


int
st_grammar_matcher_done(const st_grammar_matcher *m)
{
    const st_gstate *st = &m->states[m->cur];
    return st->u8.rem == 0 && st->stacks.n == 1 && st->stacks.len[0] == 0;
}
