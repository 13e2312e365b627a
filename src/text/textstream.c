/*
 * Streaming text safety: UTF-8 repair + stop strings; see textstream.h.
 *
 * Pipeline per byte:  decoder -> valid UTF-8 bytes -> stop matcher ->
 * held tail -> released output.
 *
 * Decoder: the WHATWG "UTF-8 decode" state machine (the same as the
 * Unicode "best practice" for U+FFFD substitution): a lead byte fixes
 * the length and the allowed range of the second byte (E0: A0..BF,
 * ED: 80..9F, F0: 90..BF, F4: 80..8F), which rules out overlongs,
 * surrogates and code points above U+10FFFF as early as possible. Each
 * maximal invalid subpart becomes one U+FFFD; a byte that breaks a
 * sequence is then decoded afresh. Complete sequences pass through as
 * their original bytes.
 *
 * Stop matcher: one KMP automaton per stop string, fed with the
 * decoder's output. state[i] = length of the longest prefix of stop i
 * that is a suffix of the text so far, so the text that must be held
 * back is exactly the last max_i(state[i]) bytes, and a match is
 * state[i] == len[i]. O(1) amortised per byte per stop string: no
 * rescans, whatever the piece sizes.
 *
 * Stop strings are themselves passed through the decoder at create
 * time, so they are valid UTF-8; a match therefore always begins on a
 * character boundary of the output and releasing the text before it
 * never splits a character.
 *
 * If several stop strings could match, the one that ends first wins
 * (generation stops as early as possible); among those ending at the
 * same byte the longest wins (it starts first, so none of it leaks),
 * then the lowest index.
 */
#include "text/textstream.h"

#include <stdlib.h>
#include <string.h>

#define ST_UTF8_REPLACEMENT      "\xEF\xBF\xBD"
#define ST_UTF8_REPLACEMENT_LEN  3

typedef struct {
    uint8_t  buf[4];       /* bytes of the sequence being decoded */
    uint32_t n;            /* bytes in buf */
    uint32_t needed;       /* continuation bytes still expected */
    uint8_t  lower, upper; /* allowed range of the next continuation */
} st_utf8_dec;

typedef struct {
    char   *text;          /* normalised stop string */
    size_t  len;
    size_t *fail;          /* (len) KMP failure function */
    size_t  state;         /* matched prefix length */
} st_stop;

typedef struct {
    char   *p;
    size_t  len;
    size_t  cap;
} st_buf;

struct st_textstream {
    st_utf8_dec dec;
    st_stop    *stops;
    size_t      n_stops;
    st_buf      held;      /* valid text not yet released */
    st_buf      out;       /* released, not yet taken */
    int         out_taken; /* out handed to the caller: clear on next op */
    int         stopped;
    int         stop_index;
    int         nomem;
    uint64_t    work;      /* automaton steps + bytes copied (for tests) */
};


static int
st_buf_append(st_buf *b, const void *data, size_t len)
{
    size_t cap;
    char  *p;

    if (b->len + len > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < b->len + len) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    if (len > 0) {
        memcpy(b->p + b->len, data, len);
    }
    b->len += len;
    return 0;
}


/* ---- UTF-8 decoder ---------------------------------------------------- */

typedef int (*st_emit_fn)(void *ctx, const uint8_t *bytes, size_t len);


static int
st_utf8_feed(st_utf8_dec *d, uint8_t c, st_emit_fn emit, void *ctx)
{
    for (;;) {
        if (d->needed == 0) {
            if (c < 0x80) {
                return emit(ctx, &c, 1);
            }
            d->lower = 0x80;
            d->upper = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                d->needed = 1;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (c == 0xE0) {
                    d->lower = 0xA0;     /* no overlongs */
                } else if (c == 0xED) {
                    d->upper = 0x9F;     /* no surrogates */
                }
                d->needed = 2;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (c == 0xF0) {
                    d->lower = 0x90;     /* no overlongs */
                } else if (c == 0xF4) {
                    d->upper = 0x8F;     /* nothing above U+10FFFF */
                }
                d->needed = 3;
            } else {
                /* 80..C1 (stray continuation, overlong lead), F5..FF */
                return emit(ctx, (const uint8_t *) ST_UTF8_REPLACEMENT,
                            ST_UTF8_REPLACEMENT_LEN);
            }
            d->buf[0] = c;
            d->n = 1;
            return 0;
        }

        if (c < d->lower || c > d->upper) {
            /* the partial sequence is one maximal invalid subpart; the
             * current byte starts over */
            d->needed = 0;
            d->n = 0;
            if (emit(ctx, (const uint8_t *) ST_UTF8_REPLACEMENT,
                     ST_UTF8_REPLACEMENT_LEN) != 0)
            {
                return -1;
            }
            continue;
        }
        d->lower = 0x80;
        d->upper = 0xBF;
        d->buf[d->n++] = c;
        if (--d->needed == 0) {
            size_t len = d->n;

            d->n = 0;
            return emit(ctx, d->buf, len);
        }
        return 0;
    }
}


/* End of input: a truncated sequence is one invalid subpart. */
static int
st_utf8_flush(st_utf8_dec *d, st_emit_fn emit, void *ctx)
{
    if (d->needed == 0) {
        return 0;
    }
    d->needed = 0;
    d->n = 0;
    return emit(ctx, (const uint8_t *) ST_UTF8_REPLACEMENT,
                ST_UTF8_REPLACEMENT_LEN);
}


/* Normalises arbitrary bytes into valid UTF-8 (used for stop strings). */
static int
st_emit_to_buf(void *ctx, const uint8_t *bytes, size_t len)
{
    return st_buf_append(ctx, bytes, len);
}


/* ---- stop matcher ----------------------------------------------------- */

static void
st_stop_build(st_stop *s)
{
    size_t i, k = 0;

    /* fail[i] = length of the longest proper border of text[0..i] */
    s->fail[0] = 0;
    for (i = 1; i < s->len; i++) {
        while (k > 0 && s->text[i] != s->text[k]) {
            k = s->fail[k - 1];
        }
        if (s->text[i] == s->text[k]) {
            k++;
        }
        s->fail[i] = k;
    }
}


/* Advances one stop automaton by byte c; returns 1 on a full match. */
static int
st_stop_step(st_stop *s, char c, uint64_t *work)
{
    size_t k = s->state;

    (*work)++;
    if (k == s->len) {
        k = s->fail[k - 1];
    }
    while (k > 0 && s->text[k] != c) {
        k = s->fail[k - 1];
        (*work)++;
    }
    if (s->text[k] == c) {
        k++;
    }
    s->state = k;
    return k == s->len;
}


static int
st_out_append(st_textstream *ts, const char *p, size_t len)
{
    ts->work += len;
    if (st_buf_append(&ts->out, p, len) != 0) {
        ts->nomem = 1;
        return -1;
    }
    return 0;
}


/* Receives valid UTF-8 from the decoder. */
static int
st_emit_text(void *ctx, const uint8_t *bytes, size_t len)
{
    st_textstream *ts = ctx;
    size_t         i, j, best_len;
    int            best;

    if (ts->stopped) {
        return 0;
    }
    if (ts->n_stops == 0) {
        return st_out_append(ts, (const char *) bytes, len);
    }
    for (i = 0; i < len; i++) {
        ts->work++;
        if (st_buf_append(&ts->held, &bytes[i], 1) != 0) {
            ts->nomem = 1;
            return -1;
        }
        best = -1;
        best_len = 0;
        for (j = 0; j < ts->n_stops; j++) {
            if (ts->stops[j].len == 0) {
                continue;              /* ignored empty stop string */
            }
            if (st_stop_step(&ts->stops[j], (char) bytes[i], &ts->work)
                && ts->stops[j].len > best_len)
            {
                best = (int) j;
                best_len = ts->stops[j].len;
            }
        }
        if (best >= 0) {
            /* the automaton state guarantees held ends with the stop */
            ts->stopped = 1;
            ts->stop_index = best;
            if (st_out_append(ts, ts->held.p, ts->held.len - best_len)
                != 0)
            {
                return -1;
            }
            ts->held.len = 0;
            return 0;
        }
    }
    return 0;
}


/* Releases held text that can no longer start a stop string. */
static int
st_release_held(st_textstream *ts)
{
    size_t keep = 0, j, n;

    for (j = 0; j < ts->n_stops; j++) {
        if (ts->stops[j].state > keep) {
            keep = ts->stops[j].state;
        }
    }
    if (keep >= ts->held.len) {
        return 0;
    }
    n = ts->held.len - keep;
    if (st_out_append(ts, ts->held.p, n) != 0) {
        return -1;
    }
    memmove(ts->held.p, ts->held.p + n, keep);
    ts->work += keep;
    ts->held.len = keep;
    return 0;
}


/* ---- public API ------------------------------------------------------- */

st_status
st_textstream_create(st_textstream **out, const char *const *stop,
    size_t n_stop, st_error *err)
{
    st_textstream *ts;
    st_utf8_dec    dec;
    st_buf         norm;
    st_stop       *s;
    size_t         i, j, raw_len;

    *out = NULL;
    if (n_stop > 0 && stop == NULL) {
        return st_error_set(err, ST_ERR_INVALID,
            "stop: %zu strings but no array", n_stop);
    }
    ts = calloc(1, sizeof(*ts));
    if (ts == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "textstream: out of memory");
    }
    ts->stop_index = -1;
    if (n_stop > 0) {
        ts->stops = calloc(n_stop, sizeof(*ts->stops));
        if (ts->stops == NULL) {
            goto nomem;
        }
    }
    for (i = 0; i < n_stop; i++) {
        if (stop[i] == NULL) {
            st_textstream_free(ts);
            return st_error_set(err, ST_ERR_INVALID,
                "stop[%zu] is NULL", i);
        }
        raw_len = strlen(stop[i]);
        if (raw_len == 0) {
            continue;                  /* documented: empty is ignored */
        }
        memset(&dec, 0, sizeof(dec));
        memset(&norm, 0, sizeof(norm));
        for (j = 0; j < raw_len; j++) {
            if (st_utf8_feed(&dec, (uint8_t) stop[i][j], st_emit_to_buf,
                             &norm) != 0)
            {
                free(norm.p);
                goto nomem;
            }
        }
        if (st_utf8_flush(&dec, st_emit_to_buf, &norm) != 0) {
            free(norm.p);
            goto nomem;
        }
        /* ts->stops is indexed like stop[] so stop_index maps back; an
         * ignored (empty) entry keeps len 0 and is skipped */
        s = &ts->stops[i];
        s->text = norm.p;
        s->len = norm.len;
        s->fail = malloc(s->len * sizeof(*s->fail));
        if (s->fail == NULL) {
            goto nomem;
        }
        st_stop_build(s);
    }
    ts->n_stops = n_stop;
    *out = ts;
    return ST_OK;

nomem:
    ts->n_stops = n_stop;
    st_textstream_free(ts);
    return st_error_set(err, ST_ERR_NOMEM, "textstream: out of memory");
}


void
st_textstream_free(st_textstream *ts)
{
    size_t i;

    if (ts == NULL) {
        return;
    }
    if (ts->stops != NULL) {
        for (i = 0; i < ts->n_stops; i++) {
            free(ts->stops[i].text);
            free(ts->stops[i].fail);
        }
        free(ts->stops);
    }
    free(ts->held.p);
    free(ts->out.p);
    free(ts);
}


static void
st_textstream_begin(st_textstream *ts)
{
    if (ts->out_taken) {
        ts->out.len = 0;
        ts->out_taken = 0;
    }
}


int
st_textstream_push(st_textstream *ts, const char *piece, size_t len)
{
    size_t i;

    st_textstream_begin(ts);
    if (ts->nomem) {
        return -1;
    }
    for (i = 0; i < len && !ts->stopped; i++) {
        if (st_utf8_feed(&ts->dec, (uint8_t) piece[i], st_emit_text, ts)
            != 0)
        {
            return -1;
        }
    }
    if (ts->stopped) {
        return 1;
    }
    if (st_release_held(ts) != 0) {
        return -1;
    }
    return 0;
}


void
st_textstream_finish(st_textstream *ts)
{
    st_textstream_begin(ts);
    if (ts->stopped || ts->nomem) {
        return;
    }
    /* a truncated sequence becomes U+FFFD, which could still complete a
     * stop string that ends in U+FFFD */
    if (st_utf8_flush(&ts->dec, st_emit_text, ts) != 0 || ts->stopped) {
        return;
    }
    /* nothing more can come: a held partial match is just text */
    if (st_out_append(ts, ts->held.p, ts->held.len) == 0) {
        ts->held.len = 0;
    }
}


const char *
st_textstream_take(st_textstream *ts, size_t *len)
{
    st_textstream_begin(ts);
    ts->out_taken = 1;
    *len = ts->out.len;
    /* never NULL, even before the first append */
    return ts->out.p != NULL ? ts->out.p : "";
}


uint64_t
st_textstream_work(const st_textstream *ts)
{
    return ts->work;
}


int
st_textstream_stop_index(const st_textstream *ts)
{
    return ts->stopped ? ts->stop_index : -1;
}


st_status
st_textstream_status(const st_textstream *ts)
{
    return ts->nomem ? ST_ERR_NOMEM : ST_OK;
}
