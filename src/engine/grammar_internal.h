/*
 * Compiled grammar layout shared by grammar_parse.c (builds it),
 * grammar_match.c (runs it) and grammar_mask.c (walks tokens through it).
 *
 * All rules' elements live in one array. Rule r's alternatives start at
 * el[rule_start[r]], each a run of elements closed by ST_GE_ALT (another
 * alternative follows) or ST_GE_END (last one). A stack holds element
 * indices; its top is the next element to match, always an ST_GE_CHAR.
 */
#ifndef ST_GRAMMAR_INTERNAL_H
#define ST_GRAMMAR_INTERNAL_H

#include "engine/grammar.h"

enum {
    ST_GE_END = 0,   /* end of the rule's last alternative */
    ST_GE_ALT = 1,   /* end of an alternative, another follows */
    ST_GE_RULE = 2,  /* value: rule id */
    ST_GE_CHAR = 3   /* value: char class id */
};

typedef struct {
    uint32_t type;
    uint32_t value;
} st_gelem;

typedef struct {
    uint32_t off;    /* first range in rng[] (pairs lo, hi inclusive) */
    uint32_t n;      /* number of ranges */
    uint32_t neg;    /* 1: matches code points outside the ranges */
} st_gclass;

struct st_grammar {
    st_gelem  *el;          /* (n_el) */
    uint32_t   n_el;
    uint32_t  *rule_start;  /* (n_rules) index into el */
    uint32_t   n_rules;
    uint32_t   root;
    st_gclass *cls;         /* (n_cls) */
    uint32_t   n_cls;
    uint32_t  *rng;         /* (2 * n_rng) */
    uint32_t   n_rng;
};

/* the matcher refuses to grow past these (they bound memory per step) */
#define ST_GRAMMAR_MAX_STACKS  4096
#define ST_GRAMMAR_MAX_DEPTH   1024

static inline int
st_gclass_match(const st_grammar *g, uint32_t cls, uint32_t cp)
{
    const st_gclass *c = &g->cls[cls];
    const uint32_t *r = g->rng + 2 * (size_t)c->off;
    int in = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (cp >= r[2 * i] && cp <= r[2 * i + 1]) {
            in = 1;
            break;
        }
    }
    return in != (int)c->neg;
}

/* 1 if some code point in [lo, hi] matches the class */
int st_gclass_intersects(const st_grammar *g, uint32_t cls, uint32_t lo,
    uint32_t hi);

/*
 * A set of stacks: stack i is data[off[i] .. off[i] + len[i]), bottom
 * first. Sets are kept sorted and free of duplicates (canonical), so
 * equal matcher states compare and hash equal.
 */
typedef struct {
    uint32_t *data;
    size_t    n_data, cap_data;
    uint32_t *off, *len;
    size_t    n, cap;
} st_gstacks;

void st_gstacks_free(st_gstacks *s);
void st_gstacks_clear(st_gstacks *s);
int  st_gstacks_copy(st_gstacks *dst, const st_gstacks *src);
/* initial set: root expanded. 0 ok, -1 nomem/limit */
int  st_gstacks_init(const st_grammar *g, st_gstacks *out);
/* dst = stacks of src advanced over code point cp (canonical); -1 on
 * memory or limit, else the number of stacks (0: cp not allowed) */
int  st_gstacks_advance(const st_grammar *g, const st_gstacks *src,
    uint32_t cp, st_gstacks *dst);
int  st_gstacks_accepting(const st_gstacks *s);
uint64_t st_gstacks_hash(const st_gstacks *s);
int  st_gstacks_equal(const st_gstacks *a, const st_gstacks *b);

/* partial UTF-8 code point carried between tokens */
typedef struct {
    uint32_t value;   /* bits decoded so far */
    uint32_t rem;     /* continuation bytes still expected (0: none) */
    uint32_t lo_min;  /* lowest valid code point of this length */
} st_gutf8;

/*
 * Matcher states are interned: a state is (stack set, partial UTF-8),
 * numbered in the order first seen. trans[s * 256 + b] caches the state
 * reached from s on byte b (ST_GSTATE_UNKNOWN until computed,
 * ST_GSTATE_DEAD if b is not allowed), so walking the token trie costs
 * a table lookup per node once a state has been seen. Masks are cached
 * per state too (grammar_mask.c). Caches never change results: a state
 * is a pure function of the grammar and the bytes fed.
 */
#define ST_GSTATE_UNKNOWN  (-1)
#define ST_GSTATE_DEAD     (-2)
#define ST_GRAMMAR_MAX_STATES  8192

typedef struct {
    st_gstacks stacks;
    st_gutf8   u8;
    uint64_t   hash;
    int32_t    mask_slot;   /* index into the mask cache, -1: none */
    int        loop_known;  /* loop[] computed */
    uint64_t   loop[2];     /* ASCII bytes b with trans(s, b) == s */
    int        loop_hi;     /* every non-ASCII code point leads back to s
                               (s at a character boundary) */
    int32_t    base;        /* the boundary state with the same stacks
                               (itself when at a boundary; -1 unknown) */
} st_gstate;

struct st_grammar_matcher {
    const st_grammar *g;
    st_gstate  *states;     /* (n_states) */
    size_t      n_states, cap_states;
    int32_t    *trans;      /* (cap_states * 256) */
    int32_t    *index;      /* (index_cap) open addressing: state ids */
    size_t      index_cap;
    int32_t     cur;        /* current state */
    st_gstacks  scratch;

    /* mask cache (grammar_mask.c) */
    uint32_t   *masks;      /* (mask_cap * mask_words) */
    size_t      mask_words, mask_cap, n_masks;
    const void *mask_vocab; /* vocab the cached masks belong to */
    int32_t    *walk;       /* (walk_cap) DFS scratch: state per depth */
    size_t      walk_cap;
};

/* state reached from s on byte b: id >= 0, ST_GSTATE_DEAD, or -3 on
 * memory failure / limits (err set) */
int32_t st_grammar_trans(st_grammar_matcher *m, int32_t s, unsigned char b,
    st_error *err);
/* forget every state but the current one (keeps memory bounded); the
 * current state becomes id 0. -1 on memory failure. */
int st_grammar_matcher_compact(st_grammar_matcher *m, st_error *err);

#endif /* ST_GRAMMAR_INTERNAL_H */
