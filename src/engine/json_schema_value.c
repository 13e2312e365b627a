/*
 * A small JSON tree parser (RFC 8259) for schemas: strict syntax, UTF-8
 * checked, \u escapes decoded (surrogate pairs joined), depth bounded.
 */
#include "engine/json_schema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ST_JV_MAX_DEPTH 128

typedef struct {
    const char *src, *p, *end;
    st_error   *err;
    int         failed;
} st_jp;


static void
st_jp_fail(st_jp *jp, const char *at, const char *what)
{
    size_t line = 1, col = 1;

    if (jp->failed) {
        return;
    }
    for (const char *q = jp->src; q < at && q < jp->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            col++;
        }
    }
    st_error_set(jp->err, ST_ERR_INVALID, "JSON: line %zu, column %zu: %s",
        line, col, what);
    jp->failed = 1;
}


static void
st_jp_ws(st_jp *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t'
                               || *jp->p == '\n' || *jp->p == '\r'))
    {
        jp->p++;
    }
}


typedef struct {
    char  *s;
    size_t n, cap;
} st_jbytes;


static int
st_jb_put(st_jbytes *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 32;
        char *ns;
        while (nc < b->n + n + 1) {
            nc *= 2;
        }
        ns = realloc(b->s, nc);
        if (ns == NULL) {
            return -1;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}


static int
st_jp_hex4(st_jp *jp, uint32_t *v)
{
    *v = 0;
    if (jp->end - jp->p < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        char c = *jp->p++;
        *v <<= 4;
        if (c >= '0' && c <= '9') {
            *v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            *v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            *v |= (uint32_t)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    return 0;
}


static int
st_jb_utf8(st_jbytes *b, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp; n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return st_jb_put(b, u, n);
}


/* string at jp->p (on the opening quote) */
static int
st_jp_string(st_jp *jp, char **out, size_t *out_len)
{
    st_jbytes b = { NULL, 0, 0 };
    const char *start = jp->p;

    jp->p++;
    if (st_jb_put(&b, "", 0) != 0) {
        goto nomem;
    }
    for (;;) {
        unsigned char c;
        if (jp->p >= jp->end) {
            st_jp_fail(jp, start, "unterminated string");
            goto fail;
        }
        c = (unsigned char)*jp->p;
        if (c == '"') {
            jp->p++;
            break;
        }
        if (c < 0x20) {
            st_jp_fail(jp, jp->p, "control character in string");
            goto fail;
        }
        if (c == '\\') {
            const char *esc = jp->p;
            char e;
            uint32_t cp;
            jp->p++;
            if (jp->p >= jp->end) {
                st_jp_fail(jp, esc, "unterminated escape");
                goto fail;
            }
            e = *jp->p++;
            switch (e) {
            case '"': case '\\': case '/':
                if (st_jb_put(&b, &e, 1) != 0) goto nomem;
                continue;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (st_jp_hex4(jp, &cp) != 0) {
                    st_jp_fail(jp, esc, "bad \\u escape");
                    goto fail;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (jp->end - jp->p < 6 || jp->p[0] != '\\'
                        || jp->p[1] != 'u')
                    {
                        st_jp_fail(jp, esc, "unpaired surrogate escape");
                        goto fail;
                    }
                    jp->p += 2;
                    if (st_jp_hex4(jp, &lo) != 0 || lo < 0xDC00
                        || lo > 0xDFFF)
                    {
                        st_jp_fail(jp, esc, "unpaired surrogate escape");
                        goto fail;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    st_jp_fail(jp, esc, "unpaired surrogate escape");
                    goto fail;
                }
                break;
            default:
                st_jp_fail(jp, esc, "unknown escape");
                goto fail;
            }
            if (st_jb_utf8(&b, cp) != 0) {
                goto nomem;
            }
            continue;
        }
        /* UTF-8 sequence, checked */
        {
            size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2
                : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
            uint32_t cp = n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu)
                : (c & 0x07u);
            if (n == 0 || (size_t)(jp->end - jp->p) < n) {
                st_jp_fail(jp, jp->p, "invalid UTF-8");
                goto fail;
            }
            for (size_t k = 1; k < n; k++) {
                unsigned char cc = (unsigned char)jp->p[k];
                if ((cc & 0xC0) != 0x80) {
                    st_jp_fail(jp, jp->p, "invalid UTF-8");
                    goto fail;
                }
                cp = (cp << 6) | (cc & 0x3F);
            }
            if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
                || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            {
                st_jp_fail(jp, jp->p, "invalid UTF-8");
                goto fail;
            }
            if (st_jb_put(&b, jp->p, n) != 0) {
                goto nomem;
            }
            jp->p += n;
        }
    }
    *out = b.s;
    *out_len = b.n;
    return 0;
nomem:
    if (!jp->failed) {
        st_error_set(jp->err, ST_ERR_NOMEM, "JSON: out of memory");
        jp->failed = 1;
    }
fail:
    free(b.s);
    return -1;
}


static st_jv *st_jp_value(st_jp *jp, int depth);


static int
st_jv_push(st_jv *v, st_jv *item, char *key, size_t key_len)
{
    if ((v->n & (v->n - 1)) == 0 || v->n == 0) {
        size_t nc = v->n ? v->n * 2 : 4;
        st_jv **ni = realloc(v->items, nc * sizeof(st_jv *));
        if (ni == NULL) {
            return -1;
        }
        v->items = ni;
        if (v->type == ST_JV_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof(char *));
            size_t *nl;
            if (nk == NULL) {
                return -1;
            }
            v->keys = nk;
            nl = realloc(v->key_lens, nc * sizeof(size_t));
            if (nl == NULL) {
                return -1;
            }
            v->key_lens = nl;
        }
    }
    v->items[v->n] = item;
    if (v->type == ST_JV_OBJECT) {
        v->keys[v->n] = key;
        v->key_lens[v->n] = key_len;
    }
    v->n++;
    return 0;
}


static st_jv *
st_jp_number(st_jp *jp, st_jv *v)
{
    const char *s = jp->p;
    int is_int = 1;

    if (jp->p < jp->end && *jp->p == '-') {
        jp->p++;
    }
    if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
        st_jp_fail(jp, s, "bad number");
        return NULL;
    }
    if (*jp->p == '0') {
        jp->p++;
    } else {
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
            jp->p++;
        }
    }
    if (jp->p < jp->end && *jp->p == '.') {
        is_int = 0;
        jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
            st_jp_fail(jp, s, "bad number");
            return NULL;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
            jp->p++;
        }
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        is_int = 0;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) {
            jp->p++;
        }
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
            st_jp_fail(jp, s, "bad number");
            return NULL;
        }
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
            jp->p++;
        }
    }
    v->type = ST_JV_NUMBER;
    v->len = (size_t)(jp->p - s);
    v->str = malloc(v->len + 1);
    if (v->str == NULL) {
        st_error_set(jp->err, ST_ERR_NOMEM, "JSON: out of memory");
        jp->failed = 1;
        return NULL;
    }
    memcpy(v->str, s, v->len);
    v->str[v->len] = '\0';
    v->num = strtod(v->str, NULL);
    v->is_int = is_int;
    if (is_int && v->len <= 19) {
        v->i = strtoll(v->str, NULL, 10);
    } else if (is_int) {
        v->is_int = 0;      /* too large to be used as an exact bound */
    }
    return v;
}


static st_jv *
st_jp_value(st_jp *jp, int depth)
{
    st_jv *v;
    const char *at;

    st_jp_ws(jp);
    at = jp->p;
    if (depth > ST_JV_MAX_DEPTH) {
        st_jp_fail(jp, at, "nested over 128 deep");
        return NULL;
    }
    if (jp->p >= jp->end) {
        st_jp_fail(jp, at, "unexpected end of JSON");
        return NULL;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        st_error_set(jp->err, ST_ERR_NOMEM, "JSON: out of memory");
        jp->failed = 1;
        return NULL;
    }
    switch (*jp->p) {
    case '{':
    case '[': {
        int obj = *jp->p == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? ST_JV_OBJECT : ST_JV_ARRAY;
        jp->p++;
        st_jp_ws(jp);
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            size_t key_len = 0;
            st_jv *item;
            st_jp_ws(jp);
            if (obj) {
                if (jp->p >= jp->end || *jp->p != '"') {
                    st_jp_fail(jp, jp->p, "expected a string key");
                    goto fail;
                }
                if (st_jp_string(jp, &key, &key_len) != 0) {
                    goto fail;
                }
                st_jp_ws(jp);
                if (jp->p >= jp->end || *jp->p != ':') {
                    free(key);
                    st_jp_fail(jp, jp->p, "expected ':'");
                    goto fail;
                }
                jp->p++;
            }
            item = st_jp_value(jp, depth + 1);
            if (item == NULL) {
                free(key);
                goto fail;
            }
            if (st_jv_push(v, item, key, key_len) != 0) {
                free(key);
                st_jv_free(item);
                st_error_set(jp->err, ST_ERR_NOMEM, "JSON: out of memory");
                jp->failed = 1;
                goto fail;
            }
            st_jp_ws(jp);
            if (jp->p < jp->end && *jp->p == ',') {
                jp->p++;
                continue;
            }
            if (jp->p < jp->end && *jp->p == close) {
                jp->p++;
                return v;
            }
            st_jp_fail(jp, jp->p, obj ? "expected ',' or '}'"
                : "expected ',' or ']'");
            goto fail;
        }
    }
    case '"':
        v->type = ST_JV_STRING;
        if (st_jp_string(jp, &v->str, &v->len) != 0) {
            goto fail;
        }
        return v;
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = { "true", "false", "null" };
        int w = *jp->p == 't' ? 0 : *jp->p == 'f' ? 1 : 2;
        size_t n = strlen(words[w]);
        if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, words[w], n) != 0) {
            st_jp_fail(jp, at, "unexpected word");
            goto fail;
        }
        jp->p += n;
        v->type = w == 2 ? ST_JV_NULL : ST_JV_BOOL;
        v->b = w == 0;
        return v;
    }
    default:
        if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')) {
            if (st_jp_number(jp, v) == NULL) {
                goto fail;
            }
            return v;
        }
        st_jp_fail(jp, at, "unexpected character");
        goto fail;
    }
fail:
    st_jv_free(v);
    return NULL;
}


st_status
st_jv_parse(st_jv **out, const char *text, size_t len, st_error *err)
{
    st_jp jp = { text, text, text + len, err, 0 };
    st_jv *v;

    *out = NULL;
    v = st_jp_value(&jp, 0);
    if (v == NULL) {
        return err != NULL && err->code != ST_OK ? err->code
            : ST_ERR_INVALID;
    }
    st_jp_ws(&jp);
    if (jp.p != jp.end) {
        st_jp_fail(&jp, jp.p, "text after the JSON value");
        st_jv_free(v);
        return ST_ERR_INVALID;
    }
    *out = v;
    return ST_OK;
}


void
st_jv_free(st_jv *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        st_jv_free(v->items[i]);
        if (v->keys != NULL) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    free(v->str);
    free(v);
}


const st_jv *
st_jv_get(const st_jv *obj, const char *key)
{
    size_t kl = strlen(key);

    if (obj == NULL || obj->type != ST_JV_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < obj->n; i++) {
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) {
            return obj->items[i];
        }
    }
    return NULL;
}
