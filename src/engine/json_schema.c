/*
 * JSON Schema -> GBNF (what is supported: json_schema.h).
 *
 * Each schema node becomes one rule "sN"; $defs are compiled once, on
 * first reference ("dN"), so recursive schemas work. Objects list their
 * properties in declared order, optional ones as optional:
 *   first_i ::= kv_i rest_{i+1} | first_{i+1}    (p_i optional)
 *   first_i ::= kv_i rest_{i+1}                  (p_i required)
 *   rest_i  ::= ("," ws kv_i)? rest_{i+1}  /  "," ws kv_i rest_{i+1}
 * Integer ranges are spelled digit by digit (same-length spans split at
 * the first differing digit), so bounds are exact.
 */
#include "engine/json_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_JS_MAX_DEPTH   64
#define ST_JS_MAX_REPEAT  1000

#define ST_JS_PRELUDE \
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n" \
    "json-char ::= [^\"\\\\\\x00-\\x1F\\x7F] | \"\\\\\" ([\"\\\\/bfnrt] | " \
    "\"u\" ([0-9a-cA-CefEF] [0-9a-fA-F] | [dD] [0-7]) [0-9a-fA-F]{2})\n" \
    "json-string ::= \"\\\"\" json-char* \"\\\"\"\n" \
    "json-int ::= \"-\"? ([0-9] | [1-9] [0-9]{0,15})\n" \
    "json-number ::= json-int (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?\n" \
    "json-bool ::= \"true\" | \"false\"\n" \
    "json-null ::= \"null\"\n" \
    "json-value ::= json-object | json-array | json-string | json-number | " \
    "json-bool | json-null\n" \
    "json-object ::= \"{\" ws ( json-string ws \":\" ws json-value ws " \
    "(\",\" ws json-string ws \":\" ws json-value ws)* )? \"}\"\n" \
    "json-array ::= \"[\" ws ( json-value ws (\",\" ws json-value ws)* )? " \
    "\"]\"\n"

static const char st_js_prelude[] = ST_JS_PRELUDE;
static const char st_js_object_gbnf[] = "root ::= \" \"? json-object\n"
    ST_JS_PRELUDE;

const char *
st_json_object_gbnf(void)
{
    return st_js_object_gbnf;
}


typedef struct {
    char  *s;
    size_t n, cap;
    int    nomem;
} st_jsbuf;

typedef struct {
    const st_jv *root;
    st_jsbuf     out;
    unsigned     next_id;
    char       **ref_names;     /* refs compiled so far */
    unsigned    *ref_ids;
    size_t       n_refs;
    st_error    *err;
    int          failed;
} st_jsc;


static void
st_jsb_add(st_jsbuf *b, const char *s, size_t n)
{
    if (b->nomem) {
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        char *ns;
        while (nc < b->n + n + 1) {
            nc *= 2;
        }
        ns = realloc(b->s, nc);
        if (ns == NULL) {
            b->nomem = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}


static void __attribute__((format(printf, 2, 3)))
st_jsb_addf(st_jsbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->nomem = 1;
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        st_jsb_add(b, tmp, (size_t)n);
        return;
    }
    {
        char *big = malloc((size_t)n + 1);
        if (big == NULL) {
            b->nomem = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        st_jsb_add(b, big, (size_t)n);
        free(big);
    }
}


static int __attribute__((format(printf, 4, 5)))
st_jsc_fail(st_jsc *c, st_status code, const char *path, const char *fmt,
    ...)
{
    char what[200];
    va_list ap;

    if (c->failed) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    st_error_set(c->err, code, "json_schema at '%s': %s",
        path[0] ? path : "/", what);
    c->failed = 1;
    return -1;
}


/* GBNF string literal of bytes s[0..n) (valid UTF-8) */
static void
st_jsb_literal(st_jsbuf *b, const char *s, size_t n)
{
    st_jsb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };
            st_jsb_add(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7F) {
            st_jsb_addf(b, "\\x%02X", ch);
        } else {
            st_jsb_add(b, (const char *)&ch, 1);
        }
    }
    st_jsb_add(b, "\"", 1);
}


/* compact JSON of v into b */
static void
st_jsb_json(st_jsbuf *b, const st_jv *v)
{
    switch (v->type) {
    case ST_JV_NULL:
        st_jsb_add(b, "null", 4);
        break;
    case ST_JV_BOOL:
        st_jsb_add(b, v->b ? "true" : "false", v->b ? 4 : 5);
        break;
    case ST_JV_NUMBER:
        st_jsb_add(b, v->str, v->len);
        break;
    case ST_JV_STRING:
        st_jsb_add(b, "\"", 1);
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->str[i];
            if (ch == '"' || ch == '\\') {
                char e[2] = { '\\', (char)ch };
                st_jsb_add(b, e, 2);
            } else if (ch == '\n') {
                st_jsb_add(b, "\\n", 2);
            } else if (ch == '\t') {
                st_jsb_add(b, "\\t", 2);
            } else if (ch == '\r') {
                st_jsb_add(b, "\\r", 2);
            } else if (ch < 0x20) {
                st_jsb_addf(b, "\\u%04x", ch);
            } else {
                st_jsb_add(b, (const char *)&ch, 1);
            }
        }
        st_jsb_add(b, "\"", 1);
        break;
    case ST_JV_ARRAY:
    case ST_JV_OBJECT:
        st_jsb_add(b, v->type == ST_JV_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i > 0) {
                st_jsb_add(b, ",", 1);
            }
            if (v->type == ST_JV_OBJECT) {
                st_jv key = { 0 };
                key.type = ST_JV_STRING;
                key.str = v->keys[i];
                key.len = v->key_lens[i];
                st_jsb_json(b, &key);
                st_jsb_add(b, ":", 1);
            }
            st_jsb_json(b, v->items[i]);
        }
        st_jsb_add(b, v->type == ST_JV_ARRAY ? "]" : "}", 1);
        break;
    }
}


/* literal rule text matching exactly the compact JSON of v */
static void
st_jsb_json_literal(st_jsbuf *b, const st_jv *v)
{
    st_jsbuf tmp = { 0 };

    st_jsb_json(&tmp, v);
    if (tmp.nomem) {
        b->nomem = 1;
    } else {
        st_jsb_literal(b, tmp.s, tmp.n);
    }
    free(tmp.s);
}


/* ---- integer ranges --------------------------------------------------- */

/* alternatives for digit strings of equal length in [a, b] */
static void
st_js_same_len(st_jsbuf *o, const char *a, const char *b, size_t n)
{
    size_t k;
    int zeros = 1, nines = 1;

    if (n == 0) {
        st_jsb_add(o, "\"\"", 2);
        return;
    }
    if (a[0] == b[0]) {
        st_jsb_addf(o, "\"%c\" (", a[0]);
        st_js_same_len(o, a + 1, b + 1, n - 1);
        st_jsb_add(o, ")", 1);
        return;
    }
    for (k = 1; k < n; k++) {
        zeros &= a[k] == '0';
        nines &= b[k] == '9';
    }
    if (zeros && nines) {
        st_jsb_addf(o, "[%c-%c]", a[0], b[0]);
        if (n > 1) {
            st_jsb_addf(o, " [0-9]{%zu}", n - 1);
        }
        return;
    }
    {
        char lo[24], hi[24];
        char first_mid = (char)(zeros ? a[0] : a[0] + 1);
        char last_mid = (char)(nines ? b[0] : b[0] - 1);
        int alt = 0;
        memset(lo, '0', n - 1);
        memset(hi, '9', n - 1);
        st_jsb_add(o, "(", 1);
        if (!zeros) {
            st_jsb_addf(o, "\"%c\" (", a[0]);
            st_js_same_len(o, a + 1, hi, n - 1);
            st_jsb_add(o, ")", 1);
            alt = 1;
        }
        if (first_mid <= last_mid) {
            if (alt) {
                st_jsb_add(o, " | ", 3);
            }
            st_jsb_addf(o, "[%c-%c]", first_mid, last_mid);
            if (n > 1) {
                st_jsb_addf(o, " [0-9]{%zu}", n - 1);
            }
            alt = 1;
        }
        if (!nines) {
            if (alt) {
                st_jsb_add(o, " | ", 3);
            }
            st_jsb_addf(o, "\"%c\" (", b[0]);
            st_js_same_len(o, lo, b + 1, n - 1);
            st_jsb_add(o, ")", 1);
        }
        st_jsb_add(o, ")", 1);
    }
}


static int64_t
st_pow10(size_t d)
{
    int64_t p = 1;
    while (d-- > 0) {
        p *= 10;
    }
    return p;
}


/* non-negative integers in [lo, hi] (hi < 0: unbounded), no leading 0 */
static void
st_js_nonneg(st_jsbuf *o, int64_t lo, int64_t hi)
{
    char a[24], b[24];
    size_t dl = (size_t)snprintf(a, sizeof(a), "%lld", (long long)lo);
    size_t dh = hi >= 0 ? (size_t)snprintf(b, sizeof(b), "%lld",
                                           (long long)hi) : 18;
    int alt = 0;

    st_jsb_add(o, "(", 1);
    for (size_t d = dl; d <= dh; d++) {
        int64_t s = d == dl ? lo : st_pow10(d - 1);
        int64_t e = st_pow10(d) - 1;
        if (hi >= 0 && d == dh) {
            e = hi;
        }
        snprintf(a, sizeof(a), "%lld", (long long)s);
        snprintf(b, sizeof(b), "%lld", (long long)e);
        if (alt) {
            st_jsb_add(o, " | ", 3);
        }
        st_js_same_len(o, a, b, d);
        alt = 1;
    }
    st_jsb_add(o, ")", 1);
}


/* rule body for integers in [lo, hi]; has_lo/has_hi say which bounds
 * exist (bounds within +-10^17) */
static void
st_js_int_range(st_jsbuf *o, int has_lo, int64_t lo, int has_hi, int64_t hi)
{
    int alt = 0;

    if (!has_lo && !has_hi) {
        st_jsb_add(o, "json-int", 8);
        return;
    }
    st_jsb_add(o, "(", 1);
    /* negative part: -[max(1,-hi) .. -lo] */
    if (!has_lo || lo < 0) {
        int64_t nlo = has_hi && hi < 0 ? -hi : 1;
        st_jsb_add(o, "\"-\" ", 4);
        if (has_lo) {
            st_js_nonneg(o, nlo, -lo);
        } else if (nlo == 1) {
            st_jsb_add(o, "[1-9] [0-9]{0,15}", 17);
        } else {
            st_js_nonneg(o, nlo, -1);
        }
        alt = 1;
    }
    if (!has_hi || hi >= 0) {
        int64_t plo = has_lo && lo > 0 ? lo : 0;
        if (alt) {
            st_jsb_add(o, " | ", 3);
        }
        if (!has_hi && plo == 0) {
            st_jsb_add(o, "([0-9] | [1-9] [0-9]{0,15})", 27);
        } else {
            st_js_nonneg(o, plo, has_hi ? hi : -1);
        }
    }
    st_jsb_add(o, ")", 1);
}


/* ---- schema nodes ----------------------------------------------------- */

static int st_js_node(st_jsc *c, const st_jv *s, const char *path,
    int depth, unsigned *id_out);


static int
st_js_known(st_jsc *c, const st_jv *s, const char *path)
{
    static const char *const known[] = {
        "type", "properties", "required", "additionalProperties", "items",
        "minItems", "maxItems", "minLength", "maxLength", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const",
        "anyOf", "oneOf", "pattern", "format", "$ref", "$defs",
        "definitions", "title", "description",
        "default", "examples", "$schema", "$id", "$comment", "strict",
        NULL
    };

    for (size_t i = 0; i < s->n; i++) {
        size_t k;
        for (k = 0; known[k] != NULL; k++) {
            if (strcmp(s->keys[i], known[k]) == 0) {
                break;
            }
        }
        if (known[k] == NULL) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path,
                "unsupported keyword '%.64s'", s->keys[i]);
        }
    }
    return 0;
}


static int
st_js_count(st_jsc *c, const st_jv *s, const char *key, const char *path,
    long *out)
{
    const st_jv *v = st_jv_get(s, key);

    if (v == NULL) {
        return 0;
    }
    if (v->type != ST_JV_NUMBER || !v->is_int || v->i < 0
        || v->i > ST_JS_MAX_REPEAT)
    {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' must be an "
            "integer in 0..%d", key, ST_JS_MAX_REPEAT);
    }
    *out = (long)v->i;
    return 1;
}


/* a string with a pattern or a format (json_schema_pattern.c) */
static int
st_js_string_shaped(st_jsc *c, const st_jv *s, const st_jv *pat,
    const st_jv *fmt, int has_len, const char *path, st_jsbuf *o)
{
    st_error e = { ST_OK, "" };
    char *g = NULL;
    const char *fg;

    (void)s;
    if (pat != NULL && fmt != NULL) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'pattern' with "
            "'format'");
    }
    if (has_len) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' with "
            "minLength/maxLength", pat != NULL ? "pattern" : "format");
    }
    if (fmt != NULL) {
        if (fmt->type != ST_JV_STRING) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'format' must "
                "be a string");
        }
        fg = st_js_format_gbnf(fmt->str);
        if (fg == NULL) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "unsupported "
                "format '%.40s' (supported: date, time, date-time, uuid)",
                fmt->str);
        }
        st_jsb_add(o, fg, strlen(fg));
        return 0;
    }
    if (pat->type != ST_JV_STRING) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'pattern' must be "
            "a string");
    }
    if (st_js_pattern_gbnf(pat->str, pat->len, &g, &e) != ST_OK) {
        return st_jsc_fail(c, e.code, path, "pattern: %.150s", e.msg);
    }
    st_jsb_add(o, g, strlen(g));
    free(g);
    return 0;
}


static int
st_js_string(st_jsc *c, const st_jv *s, const char *path, st_jsbuf *o)
{
    long mn = 0, mx = -1;
    int r1 = st_js_count(c, s, "minLength", path, &mn);
    int r2 = st_js_count(c, s, "maxLength", path, &mx);

    const st_jv *pat = st_jv_get(s, "pattern"), *fmt = st_jv_get(s, "format");

    if (r1 < 0 || r2 < 0) {
        return -1;
    }
    if (pat != NULL || fmt != NULL) {
        return st_js_string_shaped(c, s, pat, fmt, r1 + r2 > 0, path, o);
    }
    if (r2 > 0 && mx < mn) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path,
            "maxLength < minLength");
    }
    if (r1 == 0 && r2 == 0) {
        st_jsb_add(o, "json-string", 11);
    } else if (r2 > 0) {
        st_jsb_addf(o, "\"\\\"\" json-char{%ld,%ld} \"\\\"\"", mn, mx);
    } else {
        st_jsb_addf(o, "\"\\\"\" json-char{%ld,} \"\\\"\"", mn);
    }
    return 0;
}


static int
st_js_bound(st_jsc *c, const st_jv *s, const char *key, const char *path,
    int64_t *out)
{
    const st_jv *v = st_jv_get(s, key);

    if (v == NULL) {
        return 0;
    }
    if (v->type != ST_JV_NUMBER) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' must be a "
            "number", key);
    }
    if (!v->is_int) {
        /* a fractional bound on an integer: round toward the inside */
        double d = v->num;
        if (d != d || d > 1e17 || d < -1e17) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' must be "
                "within +-1e17", key);
        }
        if ((double)(int64_t)d == d) {     /* 5.0, 1e2: integral */
            *out = (int64_t)d;
            return 1;
        }
        if (strstr(key, "inimum") != NULL) {
            int64_t t = (int64_t)d;
            *out = (double)t < d ? t + 1 : t;
            /* exclusive fractional minimum: x > d means x >= ceil(d),
             * unless d is integral (handled by is_int) */
            return strncmp(key, "exclusive", 9) == 0 ? 3 : 1;
        }
        {
            int64_t t = (int64_t)d;
            *out = (double)t > d ? t - 1 : t;
            return strncmp(key, "exclusive", 9) == 0 ? 3 : 1;
        }
    }
    if (v->i > 100000000000000000LL || v->i < -100000000000000000LL) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' must be "
            "within +-1e17", key);
    }
    *out = v->i;
    return 1;
}


static int
st_js_integer(st_jsc *c, const st_jv *s, const char *path, st_jsbuf *o)
{
    int64_t lo = 0, hi = 0, x;
    int has_lo = 0, has_hi = 0, r;

    if ((r = st_js_bound(c, s, "minimum", path, &x)) < 0) {
        return -1;
    }
    if (r > 0) {
        has_lo = 1;
        lo = x;
    }
    if ((r = st_js_bound(c, s, "exclusiveMinimum", path, &x)) < 0) {
        return -1;
    }
    if (r > 0) {
        x = r == 3 ? x : x + 1;
        if (!has_lo || x > lo) {
            lo = x;
        }
        has_lo = 1;
    }
    if ((r = st_js_bound(c, s, "maximum", path, &x)) < 0) {
        return -1;
    }
    if (r > 0) {
        has_hi = 1;
        hi = x;
    }
    if ((r = st_js_bound(c, s, "exclusiveMaximum", path, &x)) < 0) {
        return -1;
    }
    if (r > 0) {
        x = r == 3 ? x : x - 1;
        if (!has_hi || x < hi) {
            hi = x;
        }
        has_hi = 1;
    }
    if (has_lo && has_hi && lo > hi) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "no integer lies "
            "between the minimum and the maximum");
    }
    st_js_int_range(o, has_lo, lo, has_hi, hi);
    return 0;
}


static int
st_js_array(st_jsc *c, const st_jv *s, const char *path, int depth,
    st_jsbuf *o)
{
    const st_jv *items = st_jv_get(s, "items");
    long mn = 0, mx = -1;
    int r1 = st_js_count(c, s, "minItems", path, &mn);
    int r2 = st_js_count(c, s, "maxItems", path, &mx);
    char item[32], sub[600];

    const st_jv *pat = st_jv_get(s, "pattern"), *fmt = st_jv_get(s, "format");

    if (r1 < 0 || r2 < 0) {
        return -1;
    }
    if (pat != NULL || fmt != NULL) {
        return st_js_string_shaped(c, s, pat, fmt, r1 + r2 > 0, path, o);
    }
    if (r2 > 0 && mx < mn) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path,
            "maxItems < minItems");
    }
    if (items != NULL) {
        unsigned id;
        snprintf(sub, sizeof(sub), "%s/items", path);
        if (st_js_node(c, items, sub, depth + 1, &id) != 0) {
            return -1;
        }
        snprintf(item, sizeof(item), "s%u", id);
    } else {
        snprintf(item, sizeof(item), "json-value");
    }
    if (r2 > 0 && mx == 0) {
        st_jsb_add(o, "\"[\" ws \"]\"", 10);
        return 0;
    }
    st_jsb_add(o, "\"[\" ws ", 7);
    if (mn == 0) {
        st_jsb_add(o, "(", 1);
    }
    st_jsb_addf(o, "%s ws (\",\" ws %s ws)", item, item);
    if (mx < 0) {
        st_jsb_addf(o, "{%ld,}", mn > 0 ? mn - 1 : 0);
    } else {
        st_jsb_addf(o, "{%ld,%ld}", mn > 0 ? mn - 1 : 0, mx - 1);
    }
    if (mn == 0) {
        st_jsb_add(o, ")?", 2);
    }
    st_jsb_add(o, " \"]\"", 4);
    return 0;
}


static int
st_js_required(const st_jv *req, const char *key, size_t len)
{
    if (req == NULL) {
        return 0;
    }
    for (size_t i = 0; i < req->n; i++) {
        const st_jv *r = req->items[i];
        if (r->type == ST_JV_STRING && r->len == len
            && memcmp(r->str, key, len) == 0)
        {
            return 1;
        }
    }
    return 0;
}


static int
st_js_object(st_jsc *c, const st_jv *s, const char *path, int depth,
    st_jsbuf *o)
{
    const st_jv *props = st_jv_get(s, "properties");
    const st_jv *req = st_jv_get(s, "required");
    const st_jv *add = st_jv_get(s, "additionalProperties");
    char sub[600];
    unsigned *kv, base;
    size_t n;

    if (props != NULL && props->type != ST_JV_OBJECT) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'properties' must "
            "be an object");
    }
    if (req != NULL && req->type != ST_JV_ARRAY) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'required' must be "
            "an array");
    }
    for (size_t i = 0; req != NULL && i < req->n; i++) {
        const st_jv *r = req->items[i];
        if (r->type != ST_JV_STRING
            || st_jv_get(props, r->str) == NULL)
        {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'required' "
                "names a property not in 'properties'");
        }
    }
    n = props != NULL ? props->n : 0;
    if (add != NULL && add->type != ST_JV_BOOL) {
        unsigned vid;
        if (n > 0) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "a schema for "
                "'additionalProperties' next to 'properties'");
        }
        snprintf(sub, sizeof(sub), "%s/additionalProperties", path);
        if (st_js_node(c, add, sub, depth + 1, &vid) != 0) {
            return -1;
        }
        st_jsb_addf(o, "\"{\" ws ( json-string ws \":\" ws s%u ws (\",\" ws "
            "json-string ws \":\" ws s%u ws)* )? \"}\"", vid, vid);
        return 0;
    }
    if (n == 0) {
        if (add == NULL || add->b) {
            st_jsb_add(o, "json-object", 11);
        } else {
            st_jsb_add(o, "\"{\" ws \"}\"", 10);
        }
        return 0;
    }
    kv = malloc(n * sizeof(unsigned));
    if (kv == NULL) {
        o->nomem = 1;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(sub, sizeof(sub), "%s/properties/%.200s", path,
            props->keys[i]);
        if (st_js_node(c, props->items[i], sub, depth + 1, &kv[i]) != 0) {
            free(kv);
            return -1;
        }
    }
    /* rules f<base>_i (first) and r<base>_i (rest), i = 0..n */
    base = c->next_id++;
    st_jsb_addf(o, "\"{\" ws f%u-0 \"}\"", base);
    for (size_t i = 0; i <= n; i++) {
        if (i == n) {
            st_jsb_addf(&c->out, "f%u-%zu ::= \"\"\nr%u-%zu ::= \"\"\n",
                base, i, base, i);
            break;
        }
        {
            int rq = st_js_required(req, props->keys[i], props->key_lens[i]);
            st_jv key = { 0 };
            key.type = ST_JV_STRING;
            key.str = props->keys[i];
            key.len = props->key_lens[i];
            st_jsb_addf(&c->out, "k%u-%zu ::= ", base, i);
            st_jsb_json_literal(&c->out, &key);
            st_jsb_addf(&c->out, " ws \":\" ws s%u ws\n", kv[i]);
            if (rq) {
                st_jsb_addf(&c->out, "f%u-%zu ::= k%u-%zu r%u-%zu\n"
                    "r%u-%zu ::= \",\" ws k%u-%zu r%u-%zu\n",
                    base, i, base, i, base, i + 1,
                    base, i, base, i, base, i + 1);
            } else {
                st_jsb_addf(&c->out, "f%u-%zu ::= k%u-%zu r%u-%zu | "
                    "f%u-%zu\nr%u-%zu ::= (\",\" ws k%u-%zu)? r%u-%zu\n",
                    base, i, base, i, base, i + 1, base, i + 1,
                    base, i, base, i, base, i + 1);
            }
        }
    }
    free(kv);
    return 0;
}


static int
st_js_ref(st_jsc *c, const st_jv *s, const char *path, int depth,
    unsigned *id_out)
{
    const st_jv *ref = st_jv_get(s, "$ref"), *target = NULL;
    const char *name;

    if (ref->type != ST_JV_STRING) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'$ref' must be a "
            "string");
    }
    for (size_t i = 0; i < c->n_refs; i++) {
        if (strcmp(c->ref_names[i], ref->str) == 0) {
            *id_out = c->ref_ids[i];
            return 0;
        }
    }
    if (strcmp(ref->str, "#") == 0) {
        target = c->root;
    } else if (strncmp(ref->str, "#/$defs/", 8) == 0) {
        name = ref->str + 8;
        target = st_jv_get(st_jv_get(c->root, "$defs"), name);
    } else if (strncmp(ref->str, "#/definitions/", 14) == 0) {
        name = ref->str + 14;
        target = st_jv_get(st_jv_get(c->root, "definitions"), name);
    } else {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'$ref' must be "
            "\"#\", \"#/$defs/NAME\" or \"#/definitions/NAME\"");
    }
    if (target == NULL) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'$ref' %.100s "
            "points at nothing", ref->str);
    }
    {
        /* register before compiling so that recursion finds it */
        char **nn = realloc(c->ref_names, (c->n_refs + 1) * sizeof(char *));
        unsigned *ni;
        if (nn == NULL) {
            c->out.nomem = 1;
            return -1;
        }
        c->ref_names = nn;
        ni = realloc(c->ref_ids, (c->n_refs + 1) * sizeof(unsigned));
        if (ni == NULL) {
            c->out.nomem = 1;
            return -1;
        }
        c->ref_ids = ni;
        c->ref_names[c->n_refs] = strdup(ref->str);
        if (c->ref_names[c->n_refs] == NULL) {
            c->out.nomem = 1;
            return -1;
        }
        *id_out = c->next_id++;
        c->ref_ids[c->n_refs++] = *id_out;
    }
    {
        unsigned inner;
        if (st_js_node(c, target, ref->str + 1, depth + 1, &inner) != 0) {
            return -1;
        }
        st_jsb_addf(&c->out, "s%u ::= s%u\n", *id_out, inner);
    }
    return 0;
}


/* body of one type alternative */
static int
st_js_typed(st_jsc *c, const st_jv *s, const char *type, const char *path,
    int depth, st_jsbuf *o)
{
    if (strcmp(type, "string") == 0) {
        return st_js_string(c, s, path, o);
    }
    if (st_jv_get(s, "format") != NULL) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'format' on type "
            "'%.40s' (formats are supported on strings)", type);
    }
    if (strcmp(type, "integer") == 0) {
        return st_js_integer(c, s, path, o);
    }
    if (strcmp(type, "number") == 0) {
        if (st_jv_get(s, "minimum") || st_jv_get(s, "maximum")
            || st_jv_get(s, "exclusiveMinimum")
            || st_jv_get(s, "exclusiveMaximum"))
        {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "minimum/maximum "
                "are supported on integers only");
        }
        st_jsb_add(o, "json-number", 11);
        return 0;
    }
    if (strcmp(type, "boolean") == 0) {
        st_jsb_add(o, "json-bool", 9);
        return 0;
    }
    if (strcmp(type, "null") == 0) {
        st_jsb_add(o, "json-null", 9);
        return 0;
    }
    if (strcmp(type, "object") == 0) {
        return st_js_object(c, s, path, depth, o);
    }
    if (strcmp(type, "array") == 0) {
        return st_js_array(c, s, path, depth, o);
    }
    return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "unknown type "
        "'%.40s'", type);
}


static int
st_js_node(st_jsc *c, const st_jv *s, const char *path, int depth,
    unsigned *id_out)
{
    st_jsbuf body = { 0 };
    const st_jv *t, *en, *cn, *any;
    const char *anykw = "anyOf";
    char sub[600];
    unsigned id;
    int rc = -1;

    if (depth > ST_JS_MAX_DEPTH) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "schema nested over "
            "64 deep");
    }
    if (s->type == ST_JV_BOOL) {
        if (!s->b) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "schema 'false' "
                "matches nothing");
        }
        id = c->next_id++;
        st_jsb_addf(&c->out, "s%u ::= json-value\n", id);
        *id_out = id;
        return 0;
    }
    if (s->type != ST_JV_OBJECT) {
        return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "a schema must be an "
            "object or a boolean");
    }
    if (st_js_known(c, s, path) != 0) {
        return -1;
    }
    if (st_jv_get(s, "$ref") != NULL) {
        if (s->n > 1 && (st_jv_get(s, "type") || st_jv_get(s, "properties")
                         || st_jv_get(s, "anyOf") || st_jv_get(s, "oneOf")))
        {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'$ref' next to "
                "other constraints");
        }
        return st_js_ref(c, s, path, depth, id_out);
    }
    t = st_jv_get(s, "type");
    en = st_jv_get(s, "enum");
    cn = st_jv_get(s, "const");
    any = st_jv_get(s, "anyOf");
    if (st_jv_get(s, "oneOf") != NULL) {
        if (any != NULL) {
            return st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'oneOf' next "
                "to 'anyOf'");
        }
        /* as llama.cpp: compiled as anyOf (exact when the alternatives
         * exclude each other, as discriminated unions do) */
        any = st_jv_get(s, "oneOf");
        anykw = "oneOf";
    }
    if (cn != NULL) {
        st_jsb_json_literal(&body, cn);
    } else if (en != NULL) {
        if (en->type != ST_JV_ARRAY || en->n == 0) {
            st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'enum' must be a "
                "non-empty array");
            goto done;
        }
        for (size_t i = 0; i < en->n; i++) {
            if (i > 0) {
                st_jsb_add(&body, " | ", 3);
            }
            st_jsb_json_literal(&body, en->items[i]);
        }
    } else if (any != NULL) {
        if (any->type != ST_JV_ARRAY || any->n == 0) {
            st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'%s' must be a "
                "non-empty array", anykw);
            goto done;
        }
        for (size_t i = 0; i < any->n; i++) {
            unsigned sid;
            snprintf(sub, sizeof(sub), "%s/%s/%zu", path, anykw, i);
            if (st_js_node(c, any->items[i], sub, depth + 1, &sid) != 0) {
                goto done;
            }
            st_jsb_addf(&body, "%ss%u", i > 0 ? " | " : "", sid);
        }
    } else if (t != NULL && t->type == ST_JV_STRING) {
        if (st_js_typed(c, s, t->str, path, depth, &body) != 0) {
            goto done;
        }
    } else if (t != NULL && t->type == ST_JV_ARRAY && t->n > 0) {
        for (size_t i = 0; i < t->n; i++) {
            if (t->items[i]->type != ST_JV_STRING) {
                st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'type' lists a "
                    "non-string");
                goto done;
            }
            if (i > 0) {
                st_jsb_add(&body, " | ", 3);
            }
            st_jsb_add(&body, "(", 1);
            if (st_js_typed(c, s, t->items[i]->str, path, depth, &body) != 0)
            {
                goto done;
            }
            st_jsb_add(&body, ")", 1);
        }
    } else if (t != NULL) {
        st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "'type' must be a string "
            "or a non-empty array");
        goto done;
    } else if (st_jv_get(s, "properties") || st_jv_get(s, "required")
               || st_jv_get(s, "additionalProperties"))
    {
        if (st_js_object(c, s, path, depth, &body) != 0) {
            goto done;
        }
    } else if (st_jv_get(s, "items") || st_jv_get(s, "minItems")
               || st_jv_get(s, "maxItems"))
    {
        if (st_js_array(c, s, path, depth, &body) != 0) {
            goto done;
        }
    } else if (st_jv_get(s, "minLength") || st_jv_get(s, "maxLength")
               || st_jv_get(s, "pattern") || st_jv_get(s, "format"))
    {
        if (st_js_string(c, s, path, &body) != 0) {
            goto done;
        }
    } else if (st_jv_get(s, "minimum") || st_jv_get(s, "maximum")
               || st_jv_get(s, "exclusiveMinimum")
               || st_jv_get(s, "exclusiveMaximum"))
    {
        st_jsc_fail(c, ST_ERR_UNSUPPORTED, path, "minimum/maximum without "
            "\"type\": \"integer\"");
        goto done;
    } else {
        st_jsb_add(&body, "json-value", 10);
    }
    if (body.nomem) {
        c->out.nomem = 1;
        goto done;
    }
    id = c->next_id++;
    st_jsb_addf(&c->out, "s%u ::= %s\n", id, body.s);
    *id_out = id;
    rc = 0;
done:
    free(body.s);
    return rc;
}


st_status
st_json_schema_to_gbnf(const char *schema, size_t len, char **gbnf,
    size_t *gbnf_len, st_error *err)
{
    st_jsc c;
    st_jv *root = NULL;
    st_status rc;
    unsigned id;

    *gbnf = NULL;
    if (gbnf_len != NULL) {
        *gbnf_len = 0;
    }
    rc = st_jv_parse(&root, schema, len, err);
    if (rc != ST_OK) {
        return rc;
    }
    memset(&c, 0, sizeof(c));
    c.root = root;
    c.err = err;
    st_jsb_add(&c.out, st_js_prelude, sizeof(st_js_prelude) - 1);
    if (st_js_node(&c, root, "", 0, &id) == 0) {
        /* one leading space: SPM pieces carry it ("\xe2\x96\x81{") */
        st_jsb_addf(&c.out, "root ::= \" \"? s%u\n", id);
    }
    for (size_t i = 0; i < c.n_refs; i++) {
        free(c.ref_names[i]);
    }
    free(c.ref_names);
    free(c.ref_ids);
    st_jv_free(root);
    if (c.out.nomem && !c.failed) {
        st_error_set(err, ST_ERR_NOMEM, "json_schema: out of memory");
        c.failed = 1;
        rc = ST_ERR_NOMEM;
    } else if (c.failed) {
        rc = err != NULL ? err->code : ST_ERR_UNSUPPORTED;
    }
    if (c.failed) {
        free(c.out.s);
        return rc;
    }
    *gbnf = c.out.s;
    if (gbnf_len != NULL) {
        *gbnf_len = c.out.n;
    }
    return ST_OK;
}
