/*
 * Token masks: the vocabulary's byte strings in a trie (preorder array,
 * each node knowing where its subtree ends), walked depth-first with the
 * matcher's byte transitions, so a prefix shared by many tokens is
 * matched once and a dead prefix prunes its whole subtree. The mask of a
 * state is cached on the state (a state recurs often: inside a JSON
 * string, every ordinary character leads back to the same state).
 *
 * Shortcut: each node knows the ASCII bytes below it (and whether any
 * byte below is not ASCII) and where its descendants' tokens lie in a
 * preorder token list. When every byte below a node loops back to the
 * state reached at the node (free text inside a JSON string), every
 * token below is allowed: they are set from the list without walking.
 */
#include "engine/grammar_internal.h"

#include <stdlib.h>
#include <string.h>

#define ST_GRAMMAR_MASK_SLOTS 64
/* subtrees at least this big try the loop shortcut (computing a state's
 * loop set costs 128 transitions) */
#define ST_LOOP_MIN_TOKENS    8

struct st_grammar_vocab {
    uint32_t       n_vocab;
    uint32_t       n_nodes;
    unsigned char *byte;      /* (n_nodes) byte leading into the node */
    uint32_t      *end;       /* (n_nodes) one past the subtree */
    int32_t       *tok_head;  /* (n_nodes) first token ending here, -1 */
    int32_t       *tok_next;  /* (n_vocab) next token with the same bytes */
    uint8_t       *eog;       /* (n_vocab) */
    uint32_t       max_len;   /* longest piece, bytes */
    uint64_t      *below;     /* (2 * n_nodes) ASCII bytes in the subtree
                                 (descendants only) */
    uint8_t       *below_hi;  /* (n_nodes) a byte >= 0x80 below */
    uint8_t       *utf8_ok;   /* (n_nodes) bit k: every descendant's bytes
                                 after this node are well-formed UTF-8 (a
                                 prefix of it) from decoder state k */
    uint32_t      *tok_lo;    /* (n_nodes + 1) first token of the node in
                                 tok_order; its subtree's tokens end at
                                 tok_lo[end[node]] */
    int32_t       *tok_order; /* tokens in preorder of their nodes */
    unsigned char *bytes;     /* every piece, concatenated */
    uint32_t      *piece_off; /* (n_vocab + 1) piece i: bytes[off[i]..off[i+1]) */
};

typedef struct {
    const unsigned char *s;
    uint32_t             len;
    int32_t              id;
} st_piece_ref;


static int
st_piece_cmp(const void *a, const void *b)
{
    const st_piece_ref *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->s, y->s, n) : 0;

    if (c != 0) {
        return c;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id);
}


/* UTF-8 decoder states for utf8_ok: at a boundary, or expecting more
 * continuation bytes (with the second-byte limits of E0, ED, F0, F4) */
enum { U8_B, U8_C1, U8_C2, U8_C2_E0, U8_C2_ED, U8_C3, U8_C3_F0, U8_C3_F4 };

/* next decoder state, or -1 if b is not allowed in state k */
static int
st_u8_next(int k, unsigned char b)
{
    int cont = (b & 0xC0) == 0x80;

    switch (k) {
    case U8_B:
        if (b < 0x80) return U8_B;
        if (b >= 0xC2 && b <= 0xDF) return U8_C1;
        if (b == 0xE0) return U8_C2_E0;
        if (b == 0xED) return U8_C2_ED;
        if (b >= 0xE1 && b <= 0xEF) return U8_C2;
        if (b == 0xF0) return U8_C3_F0;
        if (b == 0xF4) return U8_C3_F4;
        if (b >= 0xF1 && b <= 0xF3) return U8_C3;
        return -1;
    case U8_C1: return cont ? U8_B : -1;
    case U8_C2: return cont ? U8_C1 : -1;
    case U8_C2_E0: return b >= 0xA0 && b <= 0xBF ? U8_C1 : -1;
    case U8_C2_ED: return b >= 0x80 && b <= 0x9F ? U8_C1 : -1;
    case U8_C3: return cont ? U8_C2 : -1;
    case U8_C3_F0: return b >= 0x90 && b <= 0xBF ? U8_C2 : -1;
    case U8_C3_F4: return b >= 0x80 && b <= 0x8F ? U8_C2 : -1;
    }
    return -1;
}


/* decoder state of a matcher's partial code point */
static int
st_u8_kind(const st_gutf8 *u)
{
    switch (u->rem) {
    case 0: return U8_B;
    case 1: return U8_C1;
    case 2:
        if (u->lo_min == 0x800) {      /* after a 3-byte lead */
            return u->value == 0x0 ? U8_C2_E0 : u->value == 0xD ? U8_C2_ED
                : U8_C2;
        }
        return U8_C2;
    default:
        return u->value == 0 ? U8_C3_F0 : u->value == 4 ? U8_C3_F4 : U8_C3;
    }
}


/* below / below_hi / utf8_ok / tok_lo / tok_order from the preorder trie */
static int
st_vocab_index(st_grammar_vocab *v)
{
    uint32_t n = v->n_nodes, k = 0;
    uint32_t *stack;
    size_t depth = 0;

    v->below = calloc(2 * (size_t)n, sizeof(uint64_t));
    v->below_hi = calloc(n, 1);
    v->tok_lo = malloc(((size_t)n + 1) * sizeof(uint32_t));
    v->tok_order = malloc((size_t)v->n_vocab * sizeof(int32_t));
    v->utf8_ok = malloc(n);
    stack = malloc(((size_t)v->max_len + 2) * sizeof(uint32_t));
    if (v->below == NULL || v->below_hi == NULL || v->tok_lo == NULL
        || v->tok_order == NULL || v->utf8_ok == NULL || stack == NULL)
    {
        free(stack);
        return -1;
    }
    memset(v->utf8_ok, 0xFF, n);
    for (uint32_t i = 0; i < n; i++) {
        v->tok_lo[i] = k;
        for (int32_t id = v->tok_head[i]; id >= 0; id = v->tok_next[id]) {
            v->tok_order[k++] = id;
        }
    }
    v->tok_lo[n] = k;
    /* ancestors of node i are the open nodes on a stack (preorder) */
    stack[0] = 0;
    for (uint32_t i = 1; i < n; i++) {
        unsigned char b = v->byte[i];
        while (depth > 0 && v->end[stack[depth]] <= i) {
            depth--;
        }
        for (size_t a = 0; a <= depth; a++) {
            uint32_t up = stack[a];
            if (b < 0x80) {
                v->below[2 * (size_t)up + (b >> 6)] |= 1ull << (b & 63);
            } else {
                v->below_hi[up] = 1;
            }
        }
        stack[++depth] = i;
    }
    /* children come after their parent in preorder: going backwards, a
     * node is final before its parent reads it */
    {
        uint32_t *parent = malloc((size_t)n * sizeof(uint32_t));
        if (parent == NULL) {
            free(stack);
            return -1;
        }
        depth = 0;
        stack[0] = 0;
        for (uint32_t i = 1; i < n; i++) {
            while (depth > 0 && v->end[stack[depth]] <= i) {
                depth--;
            }
            parent[i] = stack[depth];
            stack[++depth] = i;
        }
        for (uint32_t i = n; i-- > 1;) {
            for (int k = 0; k < 8; k++) {
                int nk = st_u8_next(k, v->byte[i]);
                if (nk < 0 || !((v->utf8_ok[i] >> nk) & 1)) {
                    v->utf8_ok[parent[i]] &= (uint8_t)~(1u << k);
                }
            }
        }
        free(parent);
    }
    free(stack);
    return 0;
}


/* 1 if every stack top's class is constant over U+0080..U+10FFFF */
static int
st_state_hi_constant(const st_grammar_matcher *m, int32_t s)
{
    const st_grammar *g = m->g;
    const st_gstacks *st = &m->states[s].stacks;

    for (size_t i = 0; i < st->n; i++) {
        const st_gclass *c;
        const uint32_t *r;
        if (st->len[i] == 0) {
            continue;
        }
        c = &g->cls[g->el[st->data[st->off[i] + st->len[i] - 1]].value];
        r = g->rng + 2 * (size_t)c->off;
        for (uint32_t k = 0; k < c->n; k++) {
            if (r[2 * k + 1] >= 0x80
                && !(r[2 * k] <= 0x80 && r[2 * k + 1] >= 0x10FFFF))
            {
                return 0;
            }
        }
    }
    return 1;
}


/* loop set of state s (ASCII bytes leading back to s); -1 on error */
static int
st_state_loops(st_grammar_matcher *m, int32_t s, st_error *err)
{
    uint64_t loop[2] = { 0, 0 };

    if (m->states[s].loop_known) {
        return 0;
    }
    for (uint32_t b = 0; b < 128; b++) {
        int32_t t = st_grammar_trans(m, s, (unsigned char)b, err);
        if (t < ST_GSTATE_DEAD) {
            return -1;
        }
        if (t == s) {
            loop[b >> 6] |= 1ull << (b & 63);
        }
    }
    m->states[s].loop[0] = loop[0];
    m->states[s].loop[1] = loop[1];
    m->states[s].loop_hi = 0;
    if (m->states[s].u8.rem == 0 && st_state_hi_constant(m, s)) {
        /* every class decides all non-ASCII code points alike: one of
         * them (U+00E9) tells for all */
        int32_t t = st_grammar_trans(m, s, 0xC3, err);
        if (t < ST_GSTATE_DEAD) {
            return -1;
        }
        if (t >= 0) {
            t = st_grammar_trans(m, t, 0xA9, err);
            if (t < ST_GSTATE_DEAD) {
                return -1;
            }
        }
        m->states[s].loop_hi = t == s;
    }
    m->states[s].loop_known = 1;
    return 0;
}


st_status
st_grammar_vocab_create(st_grammar_vocab **out, uint32_t n_vocab,
    const char *const *pieces, const uint32_t *lens, const uint8_t *eog,
    st_error *err)
{
    st_grammar_vocab *v = calloc(1, sizeof(*v));
    st_piece_ref *refs = NULL;
    uint32_t *path = NULL;
    size_t n_refs = 0, total = 1, depth = 0, n_nodes = 1;
    const st_piece_ref *prev = NULL;

    *out = NULL;
    if (v == NULL || n_vocab == 0 || n_vocab > INT32_MAX) {
        free(v);
        return st_error_set(err, n_vocab ? ST_ERR_NOMEM : ST_ERR_INVALID,
            "grammar vocab: %s", n_vocab ? "out of memory" : "empty vocab");
    }
    v->n_vocab = n_vocab;
    v->tok_next = malloc(n_vocab * sizeof(int32_t));
    v->eog = calloc(n_vocab, 1);
    refs = malloc(n_vocab * sizeof(*refs));
    v->piece_off = malloc(((size_t)n_vocab + 1) * sizeof(uint32_t));
    if (v->tok_next == NULL || v->eog == NULL || refs == NULL
        || v->piece_off == NULL)
    {
        goto nomem;
    }
    {
        size_t sum = 0;
        for (uint32_t i = 0; i < n_vocab; i++) {
            sum += (eog != NULL && eog[i]) ? 0 : lens[i];
            if (sum > UINT32_MAX) {
                free(refs);
                st_grammar_vocab_free(v);
                return st_error_set(err, ST_ERR_INVALID,
                    "grammar vocab: pieces over 4 GiB");
            }
        }
        v->bytes = malloc(sum + 1);
        if (v->bytes == NULL) {
            goto nomem;
        }
        sum = 0;
        for (uint32_t i = 0; i < n_vocab; i++) {
            v->piece_off[i] = (uint32_t)sum;
            if (!(eog != NULL && eog[i]) && lens[i] > 0) {
                memcpy(v->bytes + sum, pieces[i], lens[i]);
                sum += lens[i];
            }
        }
        v->piece_off[n_vocab] = (uint32_t)sum;
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        v->tok_next[i] = -1;
        v->eog[i] = eog != NULL && eog[i] != 0;
        if (v->eog[i] || lens[i] == 0) {
            continue;
        }
        refs[n_refs].s = v->bytes + v->piece_off[i];
        refs[n_refs].len = lens[i];
        refs[n_refs].id = (int32_t)i;
        n_refs++;
        total += lens[i];
        if (lens[i] > v->max_len) {
            v->max_len = lens[i];
        }
    }
    qsort(refs, n_refs, sizeof(*refs), st_piece_cmp);
    /* upper bound of the node count: every byte a node, plus the root */
    v->byte = malloc(total);
    v->end = malloc(total * sizeof(uint32_t));
    v->tok_head = malloc(total * sizeof(int32_t));
    path = malloc(((size_t)v->max_len + 1) * sizeof(uint32_t));
    if (v->byte == NULL || v->end == NULL || v->tok_head == NULL
        || path == NULL)
    {
        goto nomem;
    }
    v->byte[0] = 0;
    v->tok_head[0] = -1;
    path[0] = 0;
    for (size_t r = 0; r < n_refs; r++) {
        const st_piece_ref *p = &refs[r];
        size_t lcp = 0;
        if (prev != NULL) {
            uint32_t n = prev->len < p->len ? prev->len : p->len;
            while (lcp < n && prev->s[lcp] == p->s[lcp]) {
                lcp++;
            }
        }
        /* close nodes deeper than the common prefix */
        while (depth > lcp) {
            v->end[path[depth]] = (uint32_t)n_nodes;
            depth--;
        }
        for (size_t k = lcp; k < p->len; k++) {
            v->byte[n_nodes] = p->s[k];
            v->tok_head[n_nodes] = -1;
            path[++depth] = (uint32_t)n_nodes;
            n_nodes++;
        }
        /* same bytes as an earlier token: chain it (ids stay ascending) */
        {
            uint32_t node = path[depth];
            int32_t *link = &v->tok_head[node];
            while (*link >= 0) {
                link = &v->tok_next[*link];
            }
            *link = p->id;
        }
        prev = p;
    }
    while (depth > 0) {
        v->end[path[depth]] = (uint32_t)n_nodes;
        depth--;
    }
    v->end[0] = (uint32_t)n_nodes;
    v->n_nodes = (uint32_t)n_nodes;
    if (st_vocab_index(v) != 0) {
        goto nomem;
    }
    free(refs);
    free(path);
    *out = v;
    return ST_OK;
nomem:
    free(refs);
    free(path);
    st_grammar_vocab_free(v);
    return st_error_set(err, ST_ERR_NOMEM, "grammar vocab: out of memory");
}


void
st_grammar_vocab_free(st_grammar_vocab *v)
{
    if (v == NULL) {
        return;
    }
    free(v->byte);
    free(v->end);
    free(v->tok_head);
    free(v->tok_next);
    free(v->eog);
    free(v->bytes);
    free(v->piece_off);
    free(v->below);
    free(v->below_hi);
    free(v->utf8_ok);
    free(v->tok_lo);
    free(v->tok_order);
    free(v);
}


uint32_t
st_grammar_vocab_n(const st_grammar_vocab *v)
{
    return v->n_vocab;
}


size_t
st_grammar_mask_words(const st_grammar_vocab *v)
{
    return ((size_t)v->n_vocab + 31) / 32;
}


int
st_grammar_vocab_is_eog(const st_grammar_vocab *v, int32_t id)
{
    return id >= 0 && (uint32_t)id < v->n_vocab && v->eog[id];
}


/* computes the mask of state m->cur into mask (no cache) */
static st_status
st_grammar_mask_walk(st_grammar_matcher *m, const st_grammar_vocab *v,
    uint32_t *mask, st_error *err)
{
    size_t words = st_grammar_mask_words(v), d = 0;
    uint32_t *node_at, *iter;
    int32_t *state_at;

    if (m->walk_cap < (size_t)v->max_len + 1) {
        int32_t *w = realloc(m->walk, 3 * ((size_t)v->max_len + 1)
                             * sizeof(int32_t));
        if (w == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
        }
        m->walk = w;
        m->walk_cap = (size_t)v->max_len + 1;
    }
    state_at = m->walk;
    node_at = (uint32_t *)(m->walk + m->walk_cap);
    iter = (uint32_t *)(m->walk + 2 * m->walk_cap);

    memset(mask, 0, words * sizeof(uint32_t));
    node_at[0] = 0;
    iter[0] = 1;
    state_at[0] = m->cur;
    for (;;) {
        uint32_t c = iter[d];
        int32_t t;

        if (c >= v->end[node_at[d]]) {
            if (d == 0) {
                break;
            }
            d--;
            continue;
        }
        iter[d] = v->end[c];
        t = st_grammar_trans(m, state_at[d], v->byte[c], err);
        if (t == ST_GSTATE_DEAD) {
            continue;
        }
        if (t < 0) {
            return err != NULL ? err->code : ST_ERR_INTERNAL;
        }
        for (int32_t id = v->tok_head[c]; id >= 0; id = v->tok_next[id]) {
            mask[id >> 5] |= 1u << (id & 31);
        }
        if (v->end[c] > c + 1
            && v->tok_lo[v->end[c]] - v->tok_lo[c + 1] >= ST_LOOP_MIN_TOKENS
            && m->states[t].base >= 0)
        {
            /* inside a character, the stacks are those of the boundary
             * state `base`: once the character completes (as utf8_ok
             * guarantees it can) a looping base is where every path is */
            const uint64_t *bl = v->below + 2 * (size_t)c;
            int32_t base = m->states[t].base;
            int k = st_u8_kind(&m->states[t].u8);
            if (st_state_loops(m, base, err) != 0) {
                return err != NULL ? err->code : ST_ERR_INTERNAL;
            }
            if ((bl[0] & ~m->states[base].loop[0]) == 0
                && (bl[1] & ~m->states[base].loop[1]) == 0
                && (k == U8_B ? (!v->below_hi[c]
                                 || (m->states[base].loop_hi
                                     && (v->utf8_ok[c] & 1)))
                              : (m->states[base].loop_hi
                                 && ((v->utf8_ok[c] >> k) & 1))))
            {
                for (uint32_t k = v->tok_lo[c + 1]; k < v->tok_lo[v->end[c]];
                     k++)
                {
                    int32_t id = v->tok_order[k];
                    mask[id >> 5] |= 1u << (id & 31);
                }
                continue;
            }
        }
        if (v->end[c] > c + 1) {
            d++;
            node_at[d] = c;
            iter[d] = c + 1;
            state_at[d] = t;
        }
    }
    if (st_grammar_matcher_accepting(m)) {
        for (uint32_t id = 0; id < v->n_vocab; id++) {
            if (v->eog[id]) {
                mask[id >> 5] |= 1u << (id & 31);
            }
        }
    }
    return ST_OK;
}


st_status
st_grammar_mask(st_grammar_matcher *m, const st_grammar_vocab *v,
    uint32_t *mask, st_error *err)
{
    size_t words = st_grammar_mask_words(v);
    st_gstate *st;
    st_status rc;

    /* bound memory: forget old states (and their masks) now and then */
    if (m->n_states > ST_GRAMMAR_MAX_STATES / 2
        && st_grammar_matcher_compact(m, err) != 0)
    {
        return err != NULL ? err->code : ST_ERR_NOMEM;
    }
    if (m->mask_vocab != v || m->mask_words != words) {
        free(m->masks);
        m->masks = malloc(ST_GRAMMAR_MASK_SLOTS * words * sizeof(uint32_t));
        if (m->masks == NULL) {
            m->mask_vocab = NULL;
            return st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
        }
        m->mask_vocab = v;
        m->mask_words = words;
        m->mask_cap = ST_GRAMMAR_MASK_SLOTS;
        m->n_masks = 0;
        for (size_t i = 0; i < m->n_states; i++) {
            m->states[i].mask_slot = -1;
        }
    }
    st = &m->states[m->cur];
    if (st->mask_slot >= 0 && (size_t)st->mask_slot < m->n_masks) {
        memcpy(mask, m->masks + (size_t)st->mask_slot * words,
            words * sizeof(uint32_t));
        return ST_OK;
    }
    rc = st_grammar_mask_walk(m, v, mask, err);
    if (rc != ST_OK) {
        return rc;
    }
    if (m->n_masks == m->mask_cap) {
        /* full: start over (deterministic; results never depend on it) */
        m->n_masks = 0;
        for (size_t i = 0; i < m->n_states; i++) {
            m->states[i].mask_slot = -1;
        }
    }
    st = &m->states[m->cur];
    st->mask_slot = (int32_t)m->n_masks;
    memcpy(m->masks + m->n_masks * words, mask, words * sizeof(uint32_t));
    m->n_masks++;
    return ST_OK;
}


st_status
st_grammar_accept_token(st_grammar_matcher *m, const st_grammar_vocab *v,
    int32_t id, st_error *err)
{
    int rc;

    if (id < 0 || (uint32_t)id >= v->n_vocab) {
        return st_error_set(err, ST_ERR_INVALID, "grammar: token %d out of "
            "range", (int)id);
    }
    if (v->eog[id]) {
        if (!st_grammar_matcher_accepting(m)) {
            return st_error_set(err, ST_ERR_INVALID, "grammar: end of "
                "generation before the grammar is complete");
        }
        return ST_OK;
    }
    if (v->piece_off[id + 1] == v->piece_off[id]) {
        return st_error_set(err, ST_ERR_INVALID, "grammar: token %d has no "
            "bytes", (int)id);
    }
    rc = st_grammar_matcher_accept(m, (const char *)v->bytes
        + v->piece_off[id], v->piece_off[id + 1] - v->piece_off[id], err);
    if (rc < 0) {
        return err != NULL ? err->code : ST_ERR_INTERNAL;
    }
    if (rc == 0) {
        return st_error_set(err, ST_ERR_INVALID, "grammar: token %d is not "
            "allowed here", (int)id);
    }
    return ST_OK;
}
