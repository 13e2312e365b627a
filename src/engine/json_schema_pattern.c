/*
 * JSON Schema string `pattern` (an ECMA-262 regular expression, a
 * subset) and `format` -> GBNF of the JSON string text.
 *
 * The regex describes the string's value; the grammar describes its JSON
 * text, so every character is spelled in one JSON encoding: '"' as \",
 * '\' as \\, control characters and DEL as \u00XX, everything else as
 * itself (UTF-8). Supported: literals, '.', classes [...] / [^...] with
 * ranges, \d \w \s \D \W \S, escapes (\n \t \r \f \v \0 \xHH \uHHHH and
 * escaped punctuation), groups (...) (?:...) (?<name>...), alternation,
 * quantifiers * + ? {n} {n,} {n,m} (lazy forms: the same language), '^'
 * at the start and '$' at the end of a top-level alternative. A pattern
 * that is not anchored matches any string containing a match, so
 * generating a match of the pattern itself is always valid. Anything
 * else (backreferences, lookaround, \b, \p{...}, anchors inside,
 * unbounded repetition of what can match "" — the grammar would be
 * left-recursive) is refused, naming it.
 *
 * Formats: date (RFC 3339 full-date; February only to the 28th so every
 * date exists without leap-year arithmetic), time (full-time with an
 * offset), date-time, uuid (lowercase hex 8-4-4-4-12).
 */
#include "engine/json_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_RX_MAX_DEPTH   32
#define ST_RX_MAX_REPEAT  1000
#define ST_RX_MAX_RANGES  64

typedef struct {
    char  *s;
    size_t n, cap;
    int    nomem;
} st_rxbuf;

typedef struct {
    uint32_t lo, hi;
} st_rxrange;

typedef struct {
    st_rxrange r[ST_RX_MAX_RANGES];
    size_t     n;
    int        negated;
} st_rxclass;

typedef struct {
    const char *p, *end, *start;
    st_rxbuf    out;
    st_error   *err;
    int         failed;
    int         alt_start;  /* at the start of a top-level alternative */
} st_rx;


static void
st_rxb_add(st_rxbuf *b, const char *s, size_t n)
{
    if (b->nomem) {
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char  *ns;
        while (cap < b->n + n + 1) {
            cap *= 2;
        }
        ns = realloc(b->s, cap);
        if (ns == NULL) {
            b->nomem = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}


static void __attribute__((format(printf, 2, 3)))
st_rxb_addf(st_rxbuf *b, const char *fmt, ...)
{
    char    tmp[64];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        st_rxb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n
                                                   : sizeof(tmp) - 1);
    }
}


static int __attribute__((format(printf, 2, 3)))
st_rx_fail(st_rx *x, const char *fmt, ...)
{
    char    what[160];
    va_list ap;

    if (x->failed) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    st_error_set(x->err, ST_ERR_UNSUPPORTED, "%s (at offset %zu)", what,
                 (size_t)(x->p - x->start));
    x->failed = 1;
    return -1;
}


/* one UTF-8 code point from x->p (advanced); -1 on bad UTF-8 */
static int32_t
st_rx_utf8(st_rx *x)
{
    const unsigned char *p = (const unsigned char *)x->p;
    size_t   left = (size_t)(x->end - x->p), n, i;
    uint32_t cp;

    if (p[0] < 0x80) {
        x->p++;
        return p[0];
    }
    if ((p[0] & 0xE0) == 0xC0) {
        n = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        n = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return -1;
    }
    if (left < n) {
        return -1;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return -1;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    x->p += n;
    return (int32_t)cp;
}


/* the JSON text of code point cp inside a string, as a GBNF literal */
static void
st_rx_literal(st_rxbuf *b, uint32_t cp)
{
    char u[4];

    if (cp == '"') {
        st_rxb_add(b, "\"\\\\\\\"\"", 6);          /* "\\\"" */
    } else if (cp == '\\') {
        st_rxb_add(b, "\"\\\\\\\\\"", 6);          /* "\\\\" */
    } else if (cp < 0x20 || cp == 0x7F) {
        st_rxb_addf(b, "\"\\\\u%04x\"", cp);       /* "\\u00XX" */
    } else if (cp < 0x80) {
        u[0] = (char)cp;
        st_rxb_add(b, "\"", 1);
        st_rxb_add(b, u, 1);
        st_rxb_add(b, "\"", 1);
    } else {
        st_rxb_addf(b, cp > 0xFFFF ? "\"\\U%08x\"" : "\"\\u%04x\"", cp);
    }
}


/* a code point inside a GBNF character class */
static void
st_rx_class_cp(st_rxbuf *b, uint32_t cp)
{
    if (cp < 0x80 && (cp < 0x30 || (cp > 0x39 && cp < 0x41)
                      || (cp > 0x5A && cp < 0x61) || cp > 0x7A))
    {
        st_rxb_addf(b, "\\x%02X", cp);     /* punctuation and controls */
    } else if (cp < 0x80) {
        char c = (char)cp;
        st_rxb_add(b, &c, 1);
    } else {
        st_rxb_addf(b, cp > 0xFFFF ? "\\U%08x" : "\\u%04x", cp);
    }
}


static int
st_rx_class_add(st_rx *x, st_rxclass *c, uint32_t lo, uint32_t hi)
{
    if (c->n == ST_RX_MAX_RANGES) {
        return st_rx_fail(x, "a character class with over %d ranges",
                          ST_RX_MAX_RANGES);
    }
    c->r[c->n].lo = lo;
    c->r[c->n].hi = hi;
    c->n++;
    return 0;
}


static int
st_rx_class_has(const st_rxclass *c, uint32_t cp)
{
    for (size_t i = 0; i < c->n; i++) {
        if (cp >= c->r[i].lo && cp <= c->r[i].hi) {
            return 1;
        }
    }
    return 0;
}


/* \d \w \s into c; 1 if e is one of them */
static int
st_rx_class_escape(st_rx *x, st_rxclass *c, char e)
{
    switch (e) {
    case 'd':
        return st_rx_class_add(x, c, '0', '9') == 0 ? 1 : -1;
    case 'w':
        if (st_rx_class_add(x, c, '0', '9') || st_rx_class_add(x, c, 'A', 'Z')
            || st_rx_class_add(x, c, 'a', 'z')
            || st_rx_class_add(x, c, '_', '_'))
        {
            return -1;
        }
        return 1;
    case 's':
        if (st_rx_class_add(x, c, ' ', ' ') || st_rx_class_add(x, c, 9, 13)
            || st_rx_class_add(x, c, 0xA0, 0xA0)
            || st_rx_class_add(x, c, 0x2028, 0x2029)
            || st_rx_class_add(x, c, 0xFEFF, 0xFEFF))
        {
            return -1;
        }
        return 1;
    }
    return 0;
}


/* the GBNF of "one character of c" (JSON-encoded), parenthesised */
static void
st_rx_class_emit(st_rxbuf *b, const st_rxclass *c)
{
    static const uint32_t special[] = { '"', '\\' };
    size_t i;
    int    plain = 0;

    st_rxb_add(b, "(", 1);
    if (c->negated) {
        /* every character but c's, the ones JSON escapes (added back
         * below) and the controls (never generated: a valid subset) */
        st_rxb_add(b, "[^", 2);
        for (i = 0; i < c->n; i++) {
            st_rx_class_cp(b, c->r[i].lo);
            if (c->r[i].hi != c->r[i].lo) {
                st_rxb_add(b, "-", 1);
                st_rx_class_cp(b, c->r[i].hi);
            }
        }
        st_rxb_add(b, "\\x22\\x5C\\x00-\\x1F\\x7F]", 22);
        for (i = 0; i < 2; i++) {
            if (!st_rx_class_has(c, special[i])) {
                st_rxb_add(b, " | ", 3);
                st_rx_literal(b, special[i]);
            }
        }
        st_rxb_add(b, ")", 1);
        return;
    }
    /* plain ranges with '"', '\', the controls and DEL cut out; those
     * each get their own escaped alternative */
    for (i = 0; i < c->n; i++) {
        uint32_t lo = c->r[i].lo, hi = c->r[i].hi, a;
        for (a = lo; a <= hi; ) {
            uint32_t z;
            if (a < 0x20 || a == '"' || a == '\\' || a == 0x7F) {
                a++;
                continue;
            }
            z = a;
            while (z < hi && !(z + 1 < 0x20 || z + 1 == '"'
                               || z + 1 == '\\' || z + 1 == 0x7F))
            {
                z++;
            }
            if (!plain) {
                st_rxb_add(b, "[", 1);
                plain = 1;
            }
            st_rx_class_cp(b, a);
            if (z != a) {
                st_rxb_add(b, "-", 1);
                st_rx_class_cp(b, z);
            }
            if (z == UINT32_MAX) {
                break;
            }
            a = z + 1;
        }
    }
    if (plain) {
        st_rxb_add(b, "]", 1);
    }
    for (uint32_t cp = 0; cp < 0x80; cp++) {
        if ((cp < 0x20 || cp == '"' || cp == '\\' || cp == 0x7F)
            && st_rx_class_has(c, cp))
        {
            if (plain) {
                st_rxb_add(b, " | ", 3);
            }
            st_rx_literal(b, cp);
            plain = 1;
        }
    }
    st_rxb_add(b, ")", 1);
}


static int
st_rx_hex(st_rx *x, size_t digits, uint32_t *out)
{
    uint32_t v = 0;

    for (size_t i = 0; i < digits; i++) {
        char h = x->p < x->end ? *x->p : '\0';
        int  d = h >= '0' && h <= '9' ? h - '0'
               : h >= 'a' && h <= 'f' ? h - 'a' + 10
               : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) {
            return st_rx_fail(x, "'\\%c' needs %zu hex digits",
                              digits == 2 ? 'x' : 'u', digits);
        }
        v = v * 16 + (uint32_t)d;
        x->p++;
    }
    *out = v;
    return 0;
}


/*
 * The escape after a '\' (x->p at the letter): a single code point in
 * *cp (return 0), or a class escape added to c (return 1; c may be NULL
 * outside a class, then \D \W \S are allowed and set c's negation).
 */
static int
st_rx_escape(st_rx *x, uint32_t *cp, st_rxclass *c, int in_class)
{
    char e;
    int  r;

    if (x->p >= x->end) {
        return st_rx_fail(x, "pattern ends with '\\'");
    }
    e = *x->p++;
    if (c == NULL && strchr("dwsDWS", e) != NULL) {
        return st_rx_fail(x, "a class escape as a range end");
    }
    if ((r = st_rx_class_escape(x, c, e)) != 0) {
        return r;
    }
    if (e == 'D' || e == 'W' || e == 'S') {
        if (in_class) {
            return st_rx_fail(x, "'\\%c' inside a character class is not "
                              "supported", e);
        }
        c->negated = 1;
        return st_rx_class_escape(x, c, (char)(e - 'A' + 'a'));
    }
    switch (e) {
    case 'n': *cp = '\n'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case '0': *cp = 0; return 0;
    case 'x': return st_rx_hex(x, 2, cp);
    case 'u':
        if (x->p < x->end && *x->p == '{') {
            return st_rx_fail(x, "'\\u{...}' escapes are not supported");
        }
        if (st_rx_hex(x, 4, cp) != 0) {
            return -1;
        }
        if (*cp >= 0xD800 && *cp <= 0xDFFF) {
            return st_rx_fail(x, "surrogate escapes are not supported");
        }
        return 0;
    case 'b':
        if (in_class) {
            *cp = '\b';
            return 0;
        }
        return st_rx_fail(x, "word boundary '\\b' is not supported");
    case 'B':
        return st_rx_fail(x, "word boundary '\\B' is not supported");
    case 'p': case 'P':
        return st_rx_fail(x, "unicode property escapes '\\%c{...}' are not "
                          "supported", e);
    case 'k':
        return st_rx_fail(x, "named backreferences are not supported");
    case 'c':
        return st_rx_fail(x, "control escapes '\\cX' are not supported");
    }
    if (e >= '1' && e <= '9') {
        return st_rx_fail(x, "backreferences are not supported");
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')
        || (unsigned char)e >= 0x80)
    {
        return st_rx_fail(x, "unknown escape '\\%c'", e);
    }
    *cp = (unsigned char)e;     /* escaped punctuation: itself */
    return 0;
}


static int
st_rx_class(st_rx *x, st_rxclass *c)
{
    memset(c, 0, sizeof(*c));
    if (x->p < x->end && *x->p == '^') {
        c->negated = 1;
        x->p++;
    }
    if (x->p < x->end && *x->p == ']') {
        return st_rx_fail(x, "an empty character class");
    }
    while (x->p < x->end && *x->p != ']') {
        uint32_t lo, hi;
        int      r;
        if (*x->p == '\\') {
            x->p++;
            r = st_rx_escape(x, &lo, c, 1);
            if (r < 0) {
                return -1;
            }
            if (r == 1) {
                continue;
            }
        } else {
            int32_t u = st_rx_utf8(x);
            if (u < 0) {
                return st_rx_fail(x, "invalid UTF-8");
            }
            lo = (uint32_t)u;
        }
        hi = lo;
        if (x->p + 1 < x->end && *x->p == '-' && x->p[1] != ']') {
            x->p++;
            if (*x->p == '\\') {
                x->p++;
                if (st_rx_escape(x, &hi, NULL, 1) != 0) {
                    return -1;
                }
            } else {
                int32_t u = st_rx_utf8(x);
                if (u < 0) {
                    return st_rx_fail(x, "invalid UTF-8");
                }
                hi = (uint32_t)u;
            }
            if (hi < lo) {
                return st_rx_fail(x, "a range out of order");
            }
        }
        if (st_rx_class_add(x, c, lo, hi) != 0) {
            return -1;
        }
    }
    if (x->p >= x->end) {
        return st_rx_fail(x, "unterminated character class");
    }
    x->p++;
    return 0;
}


static int st_rx_alt(st_rx *x, st_rxbuf *o, int depth, int *nullable);


static int
st_rx_number(st_rx *x, long *out)
{
    long v = 0;
    int  any = 0;

    while (x->p < x->end && *x->p >= '0' && *x->p <= '9') {
        v = v * 10 + (*x->p - '0');
        if (v > ST_RX_MAX_REPEAT) {
            return st_rx_fail(x, "a repetition count over %d",
                              ST_RX_MAX_REPEAT);
        }
        any = 1;
        x->p++;
    }
    *out = v;
    return any;
}


/* a quantifier after an atom, appended to o; 0 if none. *nullable: the
 * atom can match "" (in), the quantified atom can (out). */
static int
st_rx_quant(st_rx *x, st_rxbuf *o, int *nullable)
{
    char q;
    int  zero = 0;

    if (x->p >= x->end) {
        return 0;
    }
    q = *x->p;
    if (q == '*' || q == '+' || q == '?') {
        if (q != '?' && *nullable) {
            return st_rx_fail(x, "repeating what can match the empty "
                              "string is not supported");
        }
        x->p++;
        st_rxb_add(o, &q, 1);
        zero = q != '+';
    } else if (q == '{') {
        const char *at = x->p;
        long mn, mx = -1;
        int  r;
        x->p++;
        if ((r = st_rx_number(x, &mn)) <= 0) {
            if (r < 0) {
                return -1;
            }
            x->p = at;          /* ECMA: a literal '{' */
            return 0;
        }
        if (x->p < x->end && *x->p == ',') {
            x->p++;
            if ((r = st_rx_number(x, &mx)) < 0) {
                return -1;
            }
            if (r == 0) {
                mx = -2;        /* unbounded */
            }
        } else {
            mx = mn;
        }
        if (x->p >= x->end || *x->p != '}') {
            return st_rx_fail(x, "a malformed {n,m} quantifier");
        }
        x->p++;
        if (mx >= 0 && mx < mn) {
            return st_rx_fail(x, "a {n,m} quantifier with m < n");
        }
        if (*nullable && (mx == -2 || mx > 1)) {
            return st_rx_fail(x, "repeating what can match the empty "
                              "string is not supported");
        }
        zero = mn == 0;
        if (mx == -2) {
            st_rxb_addf(o, "{%ld,}", mn);
        } else {
            st_rxb_addf(o, "{%ld,%ld}", mn, mx);
        }
    } else {
        return 0;
    }
    *nullable = *nullable || zero;
    if (x->p < x->end && *x->p == '?') {
        x->p++;                 /* lazy: the same language */
    }
    if (x->p < x->end && (*x->p == '*' || *x->p == '+' || *x->p == '?'
                          || *x->p == '{'))
    {
        return st_rx_fail(x, "a quantifier on a quantifier");
    }
    return 1;
}


/* one atom (and its quantifier); 0 at the end of a sequence; *nullable:
 * whether it can match "" */
static int
st_rx_atom(st_rx *x, st_rxbuf *o, int depth, int *nullable)
{
    st_rxclass c;
    uint32_t   cp;
    int32_t    u;
    char       ch;

    *nullable = 0;
    if (x->p >= x->end || *x->p == '|' || *x->p == ')') {
        return 0;
    }
    ch = *x->p;
    /* anchors around a top-level alternative: a match of that
     * alternative alone is a match of the pattern */
    if (depth == 0 && ch == '^' && x->alt_start) {
        x->p++;
        x->alt_start = 0;
        *nullable = 1;
        return 1;
    }
    x->alt_start = 0;
    if (depth == 0 && ch == '$'
        && (x->p + 1 == x->end || x->p[1] == '|'))
    {
        x->p++;
        return 0;
    }
    st_rxb_add(o, " ", 1);
    switch (ch) {
    case '(':
        x->p++;
        if (x->p < x->end && *x->p == '?') {
            x->p++;
            if (x->p < x->end && *x->p == ':') {
                x->p++;
            } else if (x->p + 1 < x->end && *x->p == '<' && x->p[1] != '='
                       && x->p[1] != '!')
            {
                const char *gt = memchr(x->p, '>', (size_t)(x->end - x->p));
                if (gt == NULL) {
                    return st_rx_fail(x, "an unterminated group name");
                }
                x->p = gt + 1;  /* named group: a plain group */
            } else {
                return st_rx_fail(x, "lookahead/lookbehind groups are not "
                                  "supported");
            }
        }
        if (depth >= ST_RX_MAX_DEPTH) {
            return st_rx_fail(x, "groups nested over %d deep",
                              ST_RX_MAX_DEPTH);
        }
        st_rxb_add(o, "(", 1);
        if (st_rx_alt(x, o, depth + 1, nullable) != 0) {
            return -1;
        }
        if (x->p >= x->end || *x->p != ')') {
            return st_rx_fail(x, "an unterminated group");
        }
        x->p++;
        st_rxb_add(o, " )", 2);
        break;
    case '[':
        x->p++;
        if (st_rx_class(x, &c) != 0) {
            return -1;
        }
        st_rx_class_emit(o, &c);
        break;
    case '.':
        x->p++;
        memset(&c, 0, sizeof(c));
        c.negated = 1;
        st_rx_class_add(x, &c, '\n', '\n');
        st_rx_class_add(x, &c, '\r', '\r');
        st_rx_class_add(x, &c, 0x2028, 0x2029);
        st_rx_class_emit(o, &c);
        break;
    case '\\':
        x->p++;
        memset(&c, 0, sizeof(c));
        switch (st_rx_escape(x, &cp, &c, 0)) {
        case 0:
            st_rx_literal(o, cp);
            break;
        case 1:
            st_rx_class_emit(o, &c);
            break;
        default:
            return -1;
        }
        break;
    case '*': case '+': case '?':
        return st_rx_fail(x, "nothing to repeat");
    case '^':
        return st_rx_fail(x, "'^' inside the pattern is not supported");
    case '$':
        return st_rx_fail(x, "'$' inside the pattern is not supported");
    case ']': case '}':
    default:
        u = st_rx_utf8(x);
        if (u < 0) {
            return st_rx_fail(x, "invalid UTF-8");
        }
        st_rx_literal(o, (uint32_t)u);
        break;
    }
    return st_rx_quant(x, o, nullable) < 0 ? -1 : 1;
}


/* alternatives; *nullable: whether one of them can match "" */
static int
st_rx_alt(st_rx *x, st_rxbuf *o, int depth, int *nullable)
{
    *nullable = 0;
    for (;;) {
        int r, atom_null, seq_null = 1;
        x->alt_start = depth == 0;
        while ((r = st_rx_atom(x, o, depth, &atom_null)) == 1) {
            seq_null = seq_null && atom_null;
        }
        *nullable = *nullable || seq_null;
        if (r < 0) {
            return -1;
        }
        if (x->p < x->end && *x->p == '|') {
            x->p++;
            st_rxb_add(o, " |", 2);
            continue;
        }
        return 0;
    }
}


st_status
st_js_pattern_gbnf(const char *pattern, size_t len, char **out,
    st_error *err)
{
    st_rx x;
    int   nullable;

    *out = NULL;
    memset(&x, 0, sizeof(x));
    x.start = x.p = pattern;
    x.end = pattern + len;
    x.err = err;
    st_rxb_add(&x.out, "\"\\\"\" (", 6);
    if (st_rx_alt(&x, &x.out, 0, &nullable) == 0 && x.p < x.end) {
        st_rx_fail(&x, "unbalanced ')'");
    }
    if (x.failed) {
        free(x.out.s);
        return err != NULL ? err->code : ST_ERR_UNSUPPORTED;
    }
    st_rxb_add(&x.out, " ) \"\\\"\"", 8);
    if (x.out.nomem) {
        free(x.out.s);
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    *out = x.out.s;
    return ST_OK;
}


#define ST_JS_DATE \
    "[0-9]{4} \"-\" ( (\"0\" [13578] | \"1\" [02]) \"-\" (\"0\" [1-9] | " \
    "[12] [0-9] | \"3\" [01]) | (\"0\" [469] | \"11\") \"-\" (\"0\" " \
    "[1-9] | [12] [0-9] | \"30\") | \"02-\" (\"0\" [1-9] | \"1\" [0-9] | " \
    "\"2\" [0-8]) )"
#define ST_JS_TIME \
    "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] " \
    "(\".\" [0-9]{1,6})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" " \
    "[0-5] [0-9])"

const char *
st_js_format_gbnf(const char *format)
{
    static const struct {
        const char *name;
        const char *gbnf;
    } formats[] = {
        { "date", "\"\\\"\" " ST_JS_DATE " \"\\\"\"" },
        { "time", "\"\\\"\" " ST_JS_TIME " \"\\\"\"" },
        { "date-time", "\"\\\"\" " ST_JS_DATE " \"T\" " ST_JS_TIME
          " \"\\\"\"" },
        { "uuid", "\"\\\"\" [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} "
          "\"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12} \"\\\"\"" },
    };

    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if (strcmp(format, formats[i].name) == 0) {
            return formats[i].gbnf;
        }
    }
    return NULL;
}
