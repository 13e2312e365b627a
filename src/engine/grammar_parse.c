/*
 * GBNF parser: grammar text -> st_grammar (layout in grammar_internal.h).
 *
 * Groups and repetitions become synthetic rules, as in llama.cpp:
 *   X*      -> R ::= X R | ""
 *   X+      -> X R  with R as for X*
 *   X?      -> R ::= X | ""
 *   X{m,n}  -> X (m times) then a chain R_k ::= X R_{k-1} | "" (k = n-m)
 * where X is the last element: a string literal, a class, a rule
 * reference or a group. After parsing, every referenced rule must be
 * defined, the root must exist, and no rule may be left-recursive.
 */
#include "engine/grammar_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_GRAMMAR_MAX_REPEAT  1000     /* bound of {m,n} */
#define ST_GRAMMAR_MAX_ELEMS   (1u << 22)
#define ST_GRAMMAR_MAX_NEST    256

typedef struct {
    st_gelem *el;
    size_t    n, cap;
} st_gvec;

typedef struct {
    char     *name;        /* NULL for synthetic rules */
    size_t    name_len;
    st_gvec   body;
    int       defined;
    size_t    ref_pos;     /* first reference (for "undefined" errors) */
} st_grule;

typedef struct {
    const char *src, *p, *end;
    st_grule   *rules;
    size_t      n_rules, cap_rules;
    st_gclass  *cls;
    size_t      n_cls, cap_cls;
    uint32_t   *rng;        /* pairs */
    size_t      n_rng, cap_rng;
    size_t      n_elems;    /* total, to bound the size */
    int         nest;
    st_error   *err;
    int         failed;
} st_gparser;


static int
st_gp_fail(st_gparser *ps, const char *at, const char *fmt, const char *arg)
{
    size_t line = 1, col = 1;
    char what[160];

    if (ps->failed) {
        return -1;
    }
    for (const char *q = ps->src; q < at && q < ps->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            col++;
        }
    }
    snprintf(what, sizeof(what), fmt, arg ? arg : "");
    st_error_set(ps->err, ST_ERR_INVALID, "grammar: line %zu, column %zu: %s",
        line, col, what);
    ps->failed = 1;
    return -1;
}


static int
st_gp_nomem(st_gparser *ps)
{
    if (!ps->failed) {
        st_error_set(ps->err, ST_ERR_NOMEM, "grammar: out of memory");
        ps->failed = 1;
    }
    return -1;
}


static int
st_grow(void **buf, size_t *cap, size_t need, size_t elem)
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
st_gvec_push(st_gparser *ps, st_gvec *v, uint32_t type, uint32_t value)
{
    if (++ps->n_elems > ST_GRAMMAR_MAX_ELEMS) {
        return st_gp_fail(ps, ps->p, "grammar too large (over %s elements)",
            "4194304");
    }
    if (st_grow((void **)&v->el, &v->cap, v->n + 1, sizeof(st_gelem)) != 0) {
        return st_gp_nomem(ps);
    }
    v->el[v->n].type = type;
    v->el[v->n].value = value;
    v->n++;
    return 0;
}


static int
st_gvec_append(st_gparser *ps, st_gvec *v, const st_gelem *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (st_gvec_push(ps, v, src[i].type, src[i].value) != 0) {
            return -1;
        }
    }
    return 0;
}


/* rule id for a name (creating an undefined entry), or a synthetic rule
 * when name == NULL; -1 on memory failure */
static long
st_gp_rule(st_gparser *ps, const char *name, size_t len, size_t ref_pos)
{
    st_grule *r;

    if (name != NULL) {
        for (size_t i = 0; i < ps->n_rules; i++) {
            r = &ps->rules[i];
            if (r->name != NULL && r->name_len == len
                && memcmp(r->name, name, len) == 0)
            {
                return (long)i;
            }
        }
    }
    if (ps->n_rules >= UINT32_MAX / 2
        || st_grow((void **)&ps->rules, &ps->cap_rules, ps->n_rules + 1,
                   sizeof(st_grule)) != 0)
    {
        st_gp_nomem(ps);
        return -1;
    }
    r = &ps->rules[ps->n_rules];
    memset(r, 0, sizeof(*r));
    r->ref_pos = ref_pos;
    if (name != NULL) {
        r->name = malloc(len + 1);
        if (r->name == NULL) {
            st_gp_nomem(ps);
            return -1;
        }
        memcpy(r->name, name, len);
        r->name[len] = '\0';
        r->name_len = len;
    } else {
        r->defined = 1;
    }
    return (long)ps->n_rules++;
}


/* new class from ranges; returns class id or -1 */
static long
st_gp_class(st_gparser *ps, const uint32_t *pairs, size_t n_pairs, int neg)
{
    if (st_grow((void **)&ps->cls, &ps->cap_cls, ps->n_cls + 1,
                sizeof(st_gclass)) != 0
        || st_grow((void **)&ps->rng, &ps->cap_rng,
                   2 * (ps->n_rng + n_pairs), sizeof(uint32_t)) != 0)
    {
        st_gp_nomem(ps);
        return -1;
    }
    if (n_pairs > 0) {
        /* an empty class (e.g. [^] or a bad range) may come before any
         * range storage exists: no pointer arithmetic on NULL */
        memcpy(ps->rng + 2 * ps->n_rng, pairs,
               2 * n_pairs * sizeof(uint32_t));
    }
    ps->cls[ps->n_cls].off = (uint32_t)ps->n_rng;
    ps->cls[ps->n_cls].n = (uint32_t)n_pairs;
    ps->cls[ps->n_cls].neg = (uint32_t)(neg != 0);
    ps->n_rng += n_pairs;
    return (long)ps->n_cls++;
}


static int
st_is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


static void
st_gp_space(st_gparser *ps, int newline_ok)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t') {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n') {
                ps->p++;
            }
        } else if (newline_ok && (c == '\n' || c == '\r')) {
            ps->p++;
        } else {
            break;
        }
    }
}


/* decodes one UTF-8 code point of the grammar text */
static int
st_gp_utf8(st_gparser *ps, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)ps->p;
    size_t left = (size_t)(ps->end - ps->p), n;
    uint32_t v;

    if (left == 0) {
        return st_gp_fail(ps, ps->p, "unexpected end of grammar%s", "");
    }
    if (s[0] < 0x80) {
        *cp = s[0];
        ps->p++;
        return 0;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        v = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        v = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        v = s[0] & 0x07;
    } else {
        return st_gp_fail(ps, ps->p, "invalid UTF-8 in grammar%s", "");
    }
    if (left < n) {
        return st_gp_fail(ps, ps->p, "invalid UTF-8 in grammar%s", "");
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return st_gp_fail(ps, ps->p, "invalid UTF-8 in grammar%s", "");
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF))
        || (v >= 0xD800 && v <= 0xDFFF))
    {
        return st_gp_fail(ps, ps->p, "invalid UTF-8 in grammar%s", "");
    }
    *cp = v;
    ps->p += n;
    return 0;
}


static int
st_gp_hex(st_gparser *ps, size_t digits, uint32_t *cp)
{
    uint32_t v = 0;
    const char *at = ps->p;

    for (size_t i = 0; i < digits; i++) {
        char c = ps->p < ps->end ? *ps->p : '\0';
        int d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return st_gp_fail(ps, ps->p, "expected a hex digit in escape%s",
                "");
        }
        v = v * 16 + (uint32_t)d;
        ps->p++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return st_gp_fail(ps, at, "escape is not a Unicode scalar value%s",
            "");
    }
    *cp = v;
    return 0;
}


/* one (possibly escaped) character of a literal or class */
static int
st_gp_char(st_gparser *ps, uint32_t *cp)
{
    if (ps->p < ps->end && *ps->p == '\\') {
        const char *at = ps->p;
        char c;
        ps->p++;
        if (ps->p >= ps->end) {
            return st_gp_fail(ps, at, "unterminated escape%s", "");
        }
        c = *ps->p++;
        switch (c) {
        case 'n': *cp = '\n'; return 0;
        case 'r': *cp = '\r'; return 0;
        case 't': *cp = '\t'; return 0;
        case '\\': case '"': case '[': case ']': case '-': case '^':
        case '/': case '\'':
            *cp = (uint32_t)c;
            return 0;
        case 'x': return st_gp_hex(ps, 2, cp);
        case 'u': return st_gp_hex(ps, 4, cp);
        case 'U': return st_gp_hex(ps, 8, cp);
        default:
            return st_gp_fail(ps, at, "unknown escape \\%s",
                (char[2]){ c, '\0' });
        }
    }
    return st_gp_utf8(ps, cp);
}


static int st_gp_alternates(st_gparser *ps, uint32_t rule);


/* replaces seq[start..) (the last element X) by the repetition min..max
 * (max < 0: unbounded) */
static int
st_gp_repeat(st_gparser *ps, st_gvec *seq, size_t start, long min, long max)
{
    size_t n_x = seq->n - start;
    st_gelem *x = malloc(n_x * sizeof(st_gelem));
    long r, prev = -1;
    int rc = -1;

    if (x == NULL) {
        return st_gp_nomem(ps);
    }
    memcpy(x, seq->el + start, n_x * sizeof(st_gelem));
    seq->n = start;
    ps->n_elems -= n_x;
    for (long i = 0; i < min; i++) {
        if (st_gvec_append(ps, seq, x, n_x) != 0) {
            goto done;
        }
    }
    if (max < 0) {
        /* R ::= X R | "" */
        if ((r = st_gp_rule(ps, NULL, 0, 0)) < 0) {
            goto done;
        }
        st_gvec *b = &ps->rules[r].body;
        if (st_gvec_append(ps, b, x, n_x) != 0
            || st_gvec_push(ps, b, ST_GE_RULE, (uint32_t)r) != 0
            || st_gvec_push(ps, b, ST_GE_ALT, 0) != 0
            || st_gvec_push(ps, b, ST_GE_END, 0) != 0
            || st_gvec_push(ps, seq, ST_GE_RULE, (uint32_t)r) != 0)
        {
            goto done;
        }
    } else {
        /* R_1 ::= X | "" ; R_k ::= X R_{k-1} | "" */
        for (long k = 1; k <= max - min; k++) {
            if ((r = st_gp_rule(ps, NULL, 0, 0)) < 0) {
                goto done;
            }
            st_gvec *b = &ps->rules[r].body;
            if (st_gvec_append(ps, b, x, n_x) != 0
                || (prev >= 0
                    && st_gvec_push(ps, b, ST_GE_RULE, (uint32_t)prev) != 0)
                || st_gvec_push(ps, b, ST_GE_ALT, 0) != 0
                || st_gvec_push(ps, b, ST_GE_END, 0) != 0)
            {
                goto done;
            }
            prev = r;
        }
        if (prev >= 0
            && st_gvec_push(ps, seq, ST_GE_RULE, (uint32_t)prev) != 0)
        {
            goto done;
        }
    }
    rc = 0;
done:
    free(x);
    return rc;
}


static int
st_gp_number(st_gparser *ps, long *out)
{
    long v = 0;
    const char *at = ps->p;

    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        return st_gp_fail(ps, ps->p, "expected a number%s", "");
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        v = v * 10 + (*ps->p - '0');
        ps->p++;
        if (v > ST_GRAMMAR_MAX_REPEAT) {
            return st_gp_fail(ps, at, "repetition count over %s", "1000");
        }
    }
    *out = v;
    return 0;
}


static int
st_gp_sequence(st_gparser *ps, st_gvec *seq, int nested)
{
    size_t last = (size_t)-1;     /* start of the last element */

    for (;;) {
        const char *at = ps->p;
        char c;

        if (ps->p >= ps->end) {
            return 0;
        }
        c = *ps->p;
        if (c == '"') {
            ps->p++;
            last = seq->n;
            for (;;) {
                uint32_t cp, pair[2];
                long id;
                if (ps->p >= ps->end) {
                    return st_gp_fail(ps, at, "unterminated string literal%s",
                        "");
                }
                if (*ps->p == '"') {
                    ps->p++;
                    break;
                }
                if (st_gp_char(ps, &cp) != 0) {
                    return -1;
                }
                pair[0] = pair[1] = cp;
                if ((id = st_gp_class(ps, pair, 1, 0)) < 0
                    || st_gvec_push(ps, seq, ST_GE_CHAR, (uint32_t)id) != 0)
                {
                    return -1;
                }
            }
        } else if (c == '[') {
            uint32_t pairs[512];
            size_t np = 0;
            int neg = 0;
            long id;
            ps->p++;
            if (ps->p < ps->end && *ps->p == '^') {
                neg = 1;
                ps->p++;
            }
            for (;;) {
                uint32_t lo, hi;
                if (ps->p >= ps->end) {
                    return st_gp_fail(ps, at, "unterminated character class%s",
                        "");
                }
                if (*ps->p == ']') {
                    ps->p++;
                    break;
                }
                if (st_gp_char(ps, &lo) != 0) {
                    return -1;
                }
                hi = lo;
                if (ps->p + 1 < ps->end && *ps->p == '-'
                    && ps->p[1] != ']')
                {
                    const char *rat = ps->p;
                    ps->p++;
                    if (st_gp_char(ps, &hi) != 0) {
                        return -1;
                    }
                    if (hi < lo) {
                        return st_gp_fail(ps, rat,
                            "character range is reversed%s", "");
                    }
                }
                if (np == sizeof(pairs) / sizeof(pairs[0]) / 2) {
                    return st_gp_fail(ps, at,
                        "character class has over %s ranges", "256");
                }
                pairs[2 * np] = lo;
                pairs[2 * np + 1] = hi;
                np++;
            }
            last = seq->n;
            if ((id = st_gp_class(ps, pairs, np, neg)) < 0
                || st_gvec_push(ps, seq, ST_GE_CHAR, (uint32_t)id) != 0)
            {
                return -1;
            }
        } else if (c == '.') {
            long id;
            ps->p++;
            last = seq->n;
            if ((id = st_gp_class(ps, NULL, 0, 1)) < 0
                || st_gvec_push(ps, seq, ST_GE_CHAR, (uint32_t)id) != 0)
            {
                return -1;
            }
        } else if (st_is_word(c)) {
            const char *name = ps->p;
            long id;
            while (ps->p < ps->end && st_is_word(*ps->p)) {
                ps->p++;
            }
            /* `name ::=` starts the next rule: the sequence ends here */
            {
                const char *save = ps->p;
                st_gp_space(ps, 0);
                if (ps->end - ps->p >= 3 && memcmp(ps->p, "::=", 3) == 0) {
                    ps->p = name;
                    return st_gp_fail(ps, name,
                        "missing newline before rule definition%s", "");
                }
                ps->p = save;
            }
            if ((id = st_gp_rule(ps, name, (size_t)(ps->p - name),
                                 (size_t)(name - ps->src))) < 0)
            {
                return -1;
            }
            last = seq->n;
            if (st_gvec_push(ps, seq, ST_GE_RULE, (uint32_t)id) != 0) {
                return -1;
            }
        } else if (c == '(') {
            long id;
            ps->p++;
            if (++ps->nest > ST_GRAMMAR_MAX_NEST) {
                return st_gp_fail(ps, at, "groups nested over %s deep",
                    "256");
            }
            if ((id = st_gp_rule(ps, NULL, 0, 0)) < 0) {
                return -1;
            }
            st_gp_space(ps, 1);
            if (st_gp_alternates(ps, (uint32_t)id) != 0) {
                return -1;
            }
            if (ps->p >= ps->end || *ps->p != ')') {
                return st_gp_fail(ps, ps->p, "expected ')' to close the "
                    "group opened at %s", "its '('");
            }
            ps->p++;
            ps->nest--;
            last = seq->n;
            if (st_gvec_push(ps, seq, ST_GE_RULE, (uint32_t)id) != 0) {
                return -1;
            }
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            long min, max;
            if (last == (size_t)-1) {
                return st_gp_fail(ps, at, "'%s' has nothing to repeat",
                    (char[2]){ c, '\0' });
            }
            ps->p++;
            if (c == '*') {
                min = 0; max = -1;
            } else if (c == '+') {
                min = 1; max = -1;
            } else if (c == '?') {
                min = 0; max = 1;
            } else {
                st_gp_space(ps, nested);
                if (st_gp_number(ps, &min) != 0) {
                    return -1;
                }
                st_gp_space(ps, nested);
                max = min;
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    st_gp_space(ps, nested);
                    max = -1;
                    if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
                        if (st_gp_number(ps, &max) != 0) {
                            return -1;
                        }
                        if (max < min) {
                            return st_gp_fail(ps, at,
                                "repetition {m,n} has n < m%s", "");
                        }
                    }
                    st_gp_space(ps, nested);
                }
                if (ps->p >= ps->end || *ps->p != '}') {
                    return st_gp_fail(ps, ps->p, "expected '}'%s", "");
                }
                ps->p++;
            }
            if (st_gp_repeat(ps, seq, last, min, max) != 0) {
                return -1;
            }
            last = (size_t)-1;
        } else {
            return 0;
        }
        st_gp_space(ps, nested);
    }
}


/* alternates into rule `rule`'s body (seq | seq | ...) */
static int
st_gp_alternates(st_gparser *ps, uint32_t rule)
{
    st_gvec body = { NULL, 0, 0 };
    int nested = ps->nest > 0;

    for (;;) {
        if (st_gp_sequence(ps, &body, nested) != 0) {
            goto fail;
        }
        if (ps->p < ps->end && *ps->p == '|') {
            ps->p++;
            if (st_gvec_push(ps, &body, ST_GE_ALT, 0) != 0) {
                goto fail;
            }
            st_gp_space(ps, 1);
            continue;
        }
        break;
    }
    if (st_gvec_push(ps, &body, ST_GE_END, 0) != 0) {
        goto fail;
    }
    free(ps->rules[rule].body.el);
    ps->rules[rule].body = body;
    return 0;
fail:
    free(body.el);
    return -1;
}


static int
st_gp_rules(st_gparser *ps)
{
    st_gp_space(ps, 1);
    while (ps->p < ps->end) {
        const char *name = ps->p;
        long id;

        if (!st_is_word(*ps->p)) {
            return st_gp_fail(ps, ps->p, "expected a rule name%s", "");
        }
        while (ps->p < ps->end && st_is_word(*ps->p)) {
            ps->p++;
        }
        if ((id = st_gp_rule(ps, name, (size_t)(ps->p - name),
                             (size_t)(name - ps->src))) < 0)
        {
            return -1;
        }
        if (ps->rules[id].defined) {
            return st_gp_fail(ps, name, "rule '%s' is defined twice",
                ps->rules[id].name);
        }
        ps->rules[id].defined = 1;
        st_gp_space(ps, 0);
        if (ps->end - ps->p < 3 || memcmp(ps->p, "::=", 3) != 0) {
            return st_gp_fail(ps, ps->p, "expected '::=' after rule name%s",
                "");
        }
        ps->p += 3;
        st_gp_space(ps, 1);
        if (st_gp_alternates(ps, (uint32_t)id) != 0) {
            return -1;
        }
        if (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r') {
            if (*ps->p == ')') {
                return st_gp_fail(ps, ps->p, "unmatched ')'%s", "");
            }
            return st_gp_fail(ps, ps->p, "unexpected character '%s'",
                (char[2]){ *ps->p, '\0' });
        }
        st_gp_space(ps, 1);
    }
    return 0;
}


/*
 * Left recursion: rule A is left-recursive if A can reach A through the
 * first elements of alternatives whose earlier elements are all nullable.
 */
static int
st_gp_nullable(st_gparser *ps, unsigned char *nullable)
{
    int changed = 1;

    memset(nullable, 0, ps->n_rules);
    while (changed) {
        changed = 0;
        for (size_t r = 0; r < ps->n_rules; r++) {
            const st_gvec *b = &ps->rules[r].body;
            int all = 1;
            if (nullable[r]) {
                continue;
            }
            for (size_t i = 0; i < b->n; i++) {
                const st_gelem *e = &b->el[i];
                if (e->type == ST_GE_ALT || e->type == ST_GE_END) {
                    if (all) {
                        nullable[r] = 1;
                        changed = 1;
                        break;
                    }
                    all = 1;
                } else if (e->type == ST_GE_CHAR
                           || !nullable[e->value])
                {
                    all = 0;
                }
            }
        }
    }
    return 0;
}


static int
st_gp_left_rec_dfs(st_gparser *ps, const unsigned char *nullable,
    unsigned char *mark, uint32_t r)
{
    const st_gvec *b = &ps->rules[r].body;
    int skip = 0;

    if (mark[r] == 1) {
        return 1;
    }
    if (mark[r] == 2) {
        return 0;
    }
    mark[r] = 1;
    for (size_t i = 0; i < b->n; i++) {
        const st_gelem *e = &b->el[i];
        if (e->type == ST_GE_ALT || e->type == ST_GE_END) {
            skip = 0;
            continue;
        }
        if (skip) {
            continue;
        }
        if (e->type == ST_GE_CHAR) {
            skip = 1;
            continue;
        }
        if (st_gp_left_rec_dfs(ps, nullable, mark, e->value)) {
            return 1;
        }
        if (!nullable[e->value]) {
            skip = 1;
        }
    }
    mark[r] = 2;
    return 0;
}


static int
st_gp_check(st_gparser *ps, uint32_t root)
{
    unsigned char *nullable, *mark;
    int rc = 0;

    for (size_t r = 0; r < ps->n_rules; r++) {
        if (!ps->rules[r].defined) {
            return st_gp_fail(ps, ps->src + ps->rules[r].ref_pos,
                "undefined rule '%s'", ps->rules[r].name);
        }
    }
    nullable = malloc(ps->n_rules);
    mark = calloc(ps->n_rules, 1);
    if (nullable == NULL || mark == NULL) {
        free(nullable);
        free(mark);
        return st_gp_nomem(ps);
    }
    st_gp_nullable(ps, nullable);
    for (size_t r = 0; r < ps->n_rules && rc == 0; r++) {
        if (mark[r] == 0 && st_gp_left_rec_dfs(ps, nullable, mark,
                                               (uint32_t)r))
        {
            /* name the first named rule on the cycle */
            const char *nm = NULL;
            for (size_t q = 0; q < ps->n_rules; q++) {
                if (mark[q] == 1 && ps->rules[q].name != NULL) {
                    nm = ps->rules[q].name;
                    break;
                }
            }
            st_error_set(ps->err, ST_ERR_INVALID,
                "grammar: rule '%s' is left-recursive (not supported)",
                nm ? nm : "(group)");
            ps->failed = 1;
            rc = -1;
        }
    }
    (void)root;
    free(nullable);
    free(mark);
    return rc;
}


static void
st_gp_free(st_gparser *ps)
{
    for (size_t i = 0; i < ps->n_rules; i++) {
        free(ps->rules[i].name);
        free(ps->rules[i].body.el);
    }
    free(ps->rules);
    free(ps->cls);
    free(ps->rng);
}


st_status
st_grammar_parse(st_grammar **out, const char *text, size_t len,
    const char *root, st_error *err)
{
    st_gparser ps;
    st_grammar *g = NULL;
    long root_id = -1;
    size_t n_el = 0;

    *out = NULL;
    if (text == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "grammar: no text");
    }
    if (root == NULL) {
        root = "root";
    }
    memset(&ps, 0, sizeof(ps));
    ps.src = ps.p = text;
    ps.end = text + len;
    ps.err = err;
    if (memchr(text, '\0', len) != NULL) {
        st_gp_fail(&ps, (const char *)memchr(text, '\0', len),
            "NUL byte in grammar%s", "");
        goto fail;
    }
    if (st_gp_rules(&ps) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < ps.n_rules; i++) {
        if (ps.rules[i].name != NULL && strcmp(ps.rules[i].name, root) == 0) {
            root_id = (long)i;
        }
    }
    if (root_id < 0) {
        st_error_set(err, ST_ERR_INVALID, "grammar: no rule named '%s'",
            root);
        goto fail;
    }
    if (st_gp_check(&ps, (uint32_t)root_id) != 0) {
        goto fail;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        goto nomem;
    }
    for (size_t i = 0; i < ps.n_rules; i++) {
        n_el += ps.rules[i].body.n;
    }
    g->el = malloc(n_el * sizeof(st_gelem));
    g->rule_start = malloc(ps.n_rules * sizeof(uint32_t));
    if (g->el == NULL || g->rule_start == NULL) {
        goto nomem;
    }
    n_el = 0;
    for (size_t i = 0; i < ps.n_rules; i++) {
        g->rule_start[i] = (uint32_t)n_el;
        memcpy(g->el + n_el, ps.rules[i].body.el,
            ps.rules[i].body.n * sizeof(st_gelem));
        n_el += ps.rules[i].body.n;
    }
    g->n_el = (uint32_t)n_el;
    g->n_rules = (uint32_t)ps.n_rules;
    g->root = (uint32_t)root_id;
    g->cls = ps.cls;
    g->n_cls = (uint32_t)ps.n_cls;
    g->rng = ps.rng;
    g->n_rng = (uint32_t)ps.n_rng;
    ps.cls = NULL;
    ps.rng = NULL;
    st_gp_free(&ps);
    *out = g;
    return ST_OK;
nomem:
    st_error_set(err, ST_ERR_NOMEM, "grammar: out of memory");
fail:
    if (g != NULL) {
        free(g->el);
        free(g->rule_start);
        free(g);
    }
    st_gp_free(&ps);
    return err != NULL && err->code != ST_OK ? err->code : ST_ERR_INVALID;
}


void
st_grammar_free(st_grammar *g)
{
    if (g == NULL) {
        return;
    }
    free(g->el);
    free(g->rule_start);
    free(g->cls);
    free(g->rng);
    free(g);
}


uint32_t
st_grammar_n_rules(const st_grammar *g)
{
    return g->n_rules;
}
