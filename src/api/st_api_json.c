/*
 * JSON text building for the API layer: a growable buffer, string
 * escaping that never emits invalid UTF-8, error bodies.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "starling/st_api.h"


void
st_jbuf_init(st_jbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


void
st_jbuf_free(st_jbuf *b)
{
    free(b->data);
    st_jbuf_init(b);
}


void
st_jbuf_reset(st_jbuf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}


static int
st_jbuf_reserve(st_jbuf *b, size_t extra)
{
    size_t  need, cap;
    char   *p;

    if (b->failed) {
        return -1;
    }

    need = b->len + extra + 1;          /* keep room for a NUL */
    if (need <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }

    b->data = p;
    b->cap = cap;
    return 0;
}


void
st_jbuf_add(st_jbuf *b, const char *s, size_t len)
{
    if (st_jbuf_reserve(b, len) != 0) {
        return;
    }
    if (len) {
        memcpy(b->data + b->len, s, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}


void
st_jbuf_adds(st_jbuf *b, const char *s)
{
    st_jbuf_add(b, s, strlen(s));
}


void
st_jbuf_addf(st_jbuf *b, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (st_jbuf_reserve(b, 64) != 0) {
        return;
    }

    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);

    if (n < 0) {
        b->failed = 1;
        return;
    }

    if ((size_t) n >= b->cap - b->len) {
        if (st_jbuf_reserve(b, (size_t) n) != 0) {
            return;
        }
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
    }

    b->len += (size_t) n;
}


/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid or
 * truncated. Rejects overlongs, surrogates and code points > U+10FFFF. */
static size_t
st_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char  c = s[0];

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        return (len >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
    }

    if (c >= 0xe0 && c <= 0xef) {
        if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            return 0;
        }
        if (c == 0xe0 && s[1] < 0xa0) {
            return 0;                   /* overlong */
        }
        if (c == 0xed && s[1] >= 0xa0) {
            return 0;                   /* surrogate */
        }
        return 3;
    }

    if (c >= 0xf0 && c <= 0xf4) {
        if (len < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80
            || (s[3] & 0xc0) != 0x80)
        {
            return 0;
        }
        if (c == 0xf0 && s[1] < 0x90) {
            return 0;
        }
        if (c == 0xf4 && s[1] >= 0x90) {
            return 0;
        }
        return 4;
    }

    return 0;
}


int
st_api_utf8_valid(const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i, n;

    for (i = 0; i < len; i += n) {
        n = st_utf8_seq(p + i, len - i);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


size_t
st_api_utf8_chars(const char *s, size_t len)
{
    size_t  i, n = 0;

    for (i = 0; i < len; i++) {
        if (((unsigned char) s[i] & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


size_t
st_api_utf8_complete(const char *s, size_t len)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i, need;

    /* walk back over at most 3 continuation bytes to the lead byte */
    for (i = len; i > 0 && len - i < 4; i--) {
        if ((p[i - 1] & 0xc0) != 0x80) {
            break;
        }
    }

    if (i == 0) {
        return len;
    }

    i--;                                /* lead byte (or ASCII) */
    if (p[i] < 0x80) {
        return len;
    }

    need = (p[i] >= 0xf0) ? 4 : (p[i] >= 0xe0) ? 3 : (p[i] >= 0xc0) ? 2 : 1;
    return (len - i >= need) ? len : i;
}


void
st_jbuf_add_jstr(st_jbuf *b, const char *s, size_t len)
{
    static const char     hex[] = "0123456789abcdef";
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i, n, run;
    char                  esc[6];

    st_jbuf_add(b, "\"", 1);

    i = 0;
    while (i < len) {

        /* copy a run of bytes that need no escaping at once */
        run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80
               && p[run] != '"' && p[run] != '\\')
        {
            run++;
        }
        if (run > i) {
            st_jbuf_add(b, s + i, run - i);
            i = run;
            continue;
        }

        if (p[i] >= 0x80) {
            n = st_utf8_seq(p + i, len - i);
            if (n == 0) {
                st_jbuf_add(b, "\xef\xbf\xbd", 3);   /* U+FFFD */
                i++;
            } else {
                st_jbuf_add(b, s + i, n);
                i += n;
            }
            continue;
        }

        switch (p[i]) {
        case '"':  st_jbuf_add(b, "\\\"", 2); break;
        case '\\': st_jbuf_add(b, "\\\\", 2); break;
        case '\n': st_jbuf_add(b, "\\n", 2); break;
        case '\r': st_jbuf_add(b, "\\r", 2); break;
        case '\t': st_jbuf_add(b, "\\t", 2); break;
        default:
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[p[i] >> 4];
            esc[5] = hex[p[i] & 0xf];
            st_jbuf_add(b, esc, 6);
        }
        i++;
    }

    st_jbuf_add(b, "\"", 1);
}


void
st_jbuf_add_float(st_jbuf *b, double v)
{
    if (!isfinite(v)) {
        /* -inf logprobs (banned tokens) have no JSON form */
        st_jbuf_adds(b, v < 0 ? "-9999.0" : "null");
        return;
    }

    st_jbuf_addf(b, "%.6g", v);
}


void
st_api_write_errors(st_jbuf *b, const st_api_request *req)
{
    const st_api_error  *e;
    size_t               i;

    st_jbuf_adds(b, "{\"errors\":[");

    for (i = 0; i < req->n_errors; i++) {
        e = &req->errors[i];
        if (i) {
            st_jbuf_add(b, ",", 1);
        }
        st_jbuf_adds(b, "{\"field\":");
        st_jbuf_add_jstr(b, e->field, strlen(e->field));
        st_jbuf_adds(b, ",\"constraint\":");
        st_jbuf_add_jstr(b, e->constraint, strlen(e->constraint));
        st_jbuf_adds(b, ",\"message\":");
        st_jbuf_add_jstr(b, e->message, strlen(e->message));
        st_jbuf_adds(b, ",\"value\":");
        st_jbuf_adds(b, e->value[0] ? e->value : "null");
        st_jbuf_add(b, "}", 1);
    }

    st_jbuf_adds(b, "]}\n");
}


void
st_api_write_openai_error(st_jbuf *b, const char *message, const char *type,
    const char *param, const char *code)
{
    st_jbuf_adds(b, "{\"error\":{\"message\":");
    st_jbuf_add_jstr(b, message, strlen(message));
    st_jbuf_adds(b, ",\"type\":");
    st_jbuf_add_jstr(b, type, strlen(type));
    st_jbuf_adds(b, ",\"param\":");
    if (param != NULL && param[0] != '\0') {
        st_jbuf_add_jstr(b, param, strlen(param));
    } else {
        st_jbuf_adds(b, "null");
    }
    st_jbuf_adds(b, ",\"code\":");
    if (code != NULL && code[0] != '\0') {
        st_jbuf_add_jstr(b, code, strlen(code));
    } else {
        st_jbuf_adds(b, "null");
    }
    st_jbuf_adds(b, "}}\n");
}
