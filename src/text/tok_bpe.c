/*
 * Byte-level BPE ("gpt2"), as llama.cpp's BPE session:
 *   1. pre-tokenize with the regex list of tokenizer.ggml.pre (PCRE2, UTF +
 *      UCP); with several regexes each one splits the pieces of the last,
 *      and text between matches is kept as its own piece;
 *   2. per piece ("word"): if merges are ignored (llama-bpe) and the word
 *      is a token, emit it; otherwise start from single bytes and apply
 *      the lowest-rank merge first (ties: leftmost);
 *   3. each symbol is its token, or failing that the one-character tokens
 *      of its bytes' GPT-2 characters (llama.cpp's fallback).
 *
 * llama.cpp works on text mapped through GPT-2's bytes_to_unicode table;
 * we undo that mapping once at load time (token texts and merges become
 * raw bytes) so encoding needs no per-call conversion. The mapping is
 * one-to-one, so lookups give the same answers.
 *
 * Invalid UTF-8 in the input: PCRE2_MATCH_INVALID_UTF makes such bytes
 * match nothing, so they end up in their own pieces and are encoded
 * byte-wise (llama.cpp replaces them with U+FFFD instead; we keep the
 * bytes so that decoding returns the input).
 */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* llama.cpp's regexes (src/llama-vocab.cpp), PCRE2 syntax */
#define RE_GPT2 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3 \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])" \
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])" \
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    int32_t  prev;
    int32_t  next;
    uint32_t start;
    uint32_t n;          /* bytes; 0 = merged into its left neighbour */
    int32_t  sym;        /* interned string id of the symbol's bytes */
} bpe_sym;

typedef struct {
    int32_t  rank;
    int32_t  left;
    int32_t  right;
    int32_t  result;     /* sym of left + right */
    uint32_t size;
} bpe_bigram;


/* Strict UTF-8 -> raw bytes through the inverse GPT-2 table. Returns the
 * raw length, or -1 when the text is not a sequence of mapped chars. */
static int64_t
gpt2_decode(const char *s, size_t n, char *out)
{
    size_t   i = 0, o = 0, k, cl;
    uint32_t cp;
    uint8_t  c;
    int      b;

    while (i < n) {
        c = (uint8_t) s[i];
        if (c < 0x80) {
            cp = c;
            cl = 1;
        } else if (c >= 0xc2 && c < 0xe0) {
            cp = c & 0x1f;
            cl = 2;
        } else if (c >= 0xe0 && c < 0xf0) {
            cp = c & 0x0f;
            cl = 3;
        } else if (c >= 0xf0 && c < 0xf5) {
            cp = c & 0x07;
            cl = 4;
        } else {
            return -1;
        }
        if (cl > n - i) {
            return -1;
        }
        for (k = 1; k < cl; k++) {
            if (((uint8_t) s[i + k] & 0xc0) != 0x80) {
                return -1;
            }
            cp = (cp << 6) | ((uint8_t) s[i + k] & 0x3f);
        }
        b = st_tok_cp_to_byte(cp);
        if (b < 0) {
            return -1;
        }
        out[o++] = (char) b;
        i += cl;
    }
    return (int64_t) o;
}


static int32_t
sym_intern(st_tokenizer *t, const char *s, size_t n)
{
    int32_t id = st_tok_strmap_get(&t->sym_map, &t->sym, s, n);
    int64_t nid;

    if (id >= 0) {
        return id;
    }
    nid = st_tok_strtab_add(&t->sym, s, n);
    if (nid < 0 || nid > INT32_MAX
        || st_tok_strmap_put(&t->sym_map, &t->sym, (uint32_t) nid) != 0)
    {
        return -1;
    }
    return (int32_t) nid;
}


static inline int
bg_before(const bpe_bigram *a, const bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}


static void
bg_push(bpe_bigram *h, size_t *n, bpe_bigram v)
{
    size_t i = (*n)++, p;

    while (i > 0) {
        p = (i - 1) / 2;
        if (!bg_before(&v, &h[p])) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}


static bpe_bigram
bg_pop(bpe_bigram *h, size_t *n)
{
    bpe_bigram top = h[0], last = h[--(*n)];
    size_t     i = 0, c;

    for (;;) {
        c = 2 * i + 1;
        if (c >= *n) {
            break;
        }
        if (c + 1 < *n && bg_before(&h[c + 1], &h[c])) {
            c++;
        }
        if (!bg_before(&h[c], &last)) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}


static inline void
bg_try(const st_tokenizer *t, bpe_sym *sy, int32_t l, int32_t r,
    bpe_bigram *h, size_t *nh)
{
    bpe_bigram b;

    if (l < 0 || r < 0) {
        return;
    }
    if (!st_tok_pairmap_get(&t->merges, sy[l].sym, sy[r].sym, &b.rank,
            &b.result))
    {
        return;
    }
    b.left = l;
    b.right = r;
    b.size = sy[l].n + sy[r].n;
    bg_push(h, nh, b);
}


/* Runs the merges over w[0..n); the symbol chain starts at syms[0]. */
static int
bpe_merge(const st_tokenizer *t, const uint8_t *w, size_t n,
    st_tok_scratch *s)
{
    bpe_sym    *sy;
    bpe_bigram *h, b;
    size_t      nh = 0, i;
    bpe_sym    *L, *R;

    if (st_tok_scratch_reserve(&s->syms, &s->syms_cap, n * sizeof(bpe_sym)) != 0
        || st_tok_scratch_reserve(&s->heap, &s->heap_cap,
               3 * n * sizeof(bpe_bigram)) != 0)
    {
        return -1;
    }
    sy = s->syms;
    h = s->heap;
    for (i = 0; i < n; i++) {
        sy[i].prev = (int32_t) i - 1;
        sy[i].next = i + 1 == n ? -1 : (int32_t) i + 1;
        sy[i].start = (uint32_t) i;
        sy[i].n = 1;
        sy[i].sym = t->byte_sym[w[i]];
    }
    for (i = 1; i < n; i++) {
        bg_try(t, sy, (int32_t) i - 1, (int32_t) i, h, &nh);
    }
    while (nh > 0) {
        b = bg_pop(h, &nh);
        L = &sy[b.left];
        R = &sy[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) {
            continue;   /* stale: one side changed since it was queued */
        }
        L->n += R->n;
        L->sym = b.result;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) {
            sy[R->next].prev = b.left;
        }
        bg_try(t, sy, L->prev, b.left, h, &nh);
        bg_try(t, sy, b.left, L->next, h, &nh);
    }
    return 0;
}


static st_status
bpe_word(const st_tokenizer *t, const uint8_t *w, size_t n, st_tok_scratch *s,
    st_tokens *out, st_error *err)
{
    bpe_sym   *sy;
    int32_t    id, i, tok;
    size_t     k, m, cl;
    char       u8[4];
    st_status  rc;

    if (n == 0) {
        return ST_OK;
    }
    id = st_tok_strmap_get(&t->sym_map, &t->sym, w, n);
    if (id >= 0 && (uint32_t) id < t->n_vocab
        && (t->ignore_merges || (t->attr[id] & ST_TOK_ATTR_BPE_SELF)))
    {
        return st_tok_push(out, id, err);
    }
    if (n > INT32_MAX / 4 || bpe_merge(t, w, n, s) != 0) {
        return st_error_set(err, ST_ERR_NOMEM,
            "tokenize: no memory for a %zu-byte word", n);
    }
    sy = s->syms;
    for (i = 0; i != -1; i = sy[i].next) {
        if (sy[i].sym >= 0 && (uint32_t) sy[i].sym < t->n_vocab) {
            if ((rc = st_tok_push(out, sy[i].sym, err)) != ST_OK) {
                return rc;
            }
            continue;
        }
        /* not a token: llama.cpp looks up each byte of the mapped text
         * as a one-byte token and drops those it does not find */
        for (k = 0; k < sy[i].n; k++) {
            cl = st_tok_utf8_put(st_tok_byte_to_cp(w[sy[i].start + k]), u8);
            for (m = 0; m < cl; m++) {
                tok = t->one_char_tok[(uint8_t) u8[m]];
                if (tok >= 0 && (rc = st_tok_push(out, tok, err)) != ST_OK) {
                    return rc;
                }
            }
        }
    }
    return ST_OK;
}


/* Calls fn for every match of re in text[0..len) and every gap between. */
typedef st_status (*piece_fn)(void *ctx, const char *p, size_t n);

static st_status
regex_split(const pcre2_code *re, const char *text, size_t len,
    pcre2_match_data *md, piece_fn fn, void *ctx)
{
    size_t      pos = 0, gap = 0, ms, me, cl;
    PCRE2_SIZE *ov;
    st_status   st;

    while (pos < len) {
        if (pcre2_match(re, (PCRE2_SPTR) text, len, pos, 0, md, NULL) < 0) {
            break;      /* no match (or a match limit): the rest is a gap */
        }
        ov = pcre2_get_ovector_pointer(md);
        ms = ov[0];
        me = ov[1];
        if (ms < pos || me < ms || me > len) {
            break;
        }
        if (me == ms) {
            /* empty match (none of our patterns makes one): the char
             * there stays in the gap, search on after it */
            cl = st_tok_utf8_len((uint8_t) text[ms]);
            pos = ms + (cl < len - ms ? cl : len - ms);
            continue;
        }
        if (ms > gap && (st = fn(ctx, text + gap, ms - gap)) != ST_OK) {
            return st;
        }
        if ((st = fn(ctx, text + ms, me - ms)) != ST_OK) {
            return st;
        }
        pos = gap = me;
    }
    if (gap < len) {
        return fn(ctx, text + gap, len - gap);
    }
    return ST_OK;
}


typedef struct {
    const st_tokenizer *t;
    st_tok_scratch     *s;
    st_tokens          *out;
    st_error           *err;
    /* multi-regex stages: pieces as (offset, length) pairs */
    const char         *base;
    uint32_t           *pieces;
    size_t              n_pieces;
} bpe_ctx;


static st_status
on_word(void *ctx, const char *p, size_t n)
{
    bpe_ctx *c = ctx;

    return bpe_word(c->t, (const uint8_t *) p, n, c->s, c->out, c->err);
}


static st_status
on_piece(void *ctx, const char *p, size_t n)
{
    bpe_ctx *c = ctx;

    c->pieces[2 * c->n_pieces] = (uint32_t) (p - c->base);
    c->pieces[2 * c->n_pieces + 1] = (uint32_t) n;
    c->n_pieces++;
    return ST_OK;
}


st_status
st_tok_bpe_encode(const st_tokenizer *t, const char *text, size_t len,
    st_tok_scratch *s, st_tokens *out, st_error *err)
{
    bpe_ctx    c;
    uint32_t  *a = NULL, *b = NULL, *tmp;
    size_t     n_a, i;
    int        r;
    st_status  st = ST_OK;

    if (len == 0) {
        return ST_OK;
    }
    if (len > UINT32_MAX / 2) {
        return st_error_set(err, ST_ERR_INVALID,
            "tokenize: text of %zu bytes is too long", len);
    }
    if (s->md == NULL) {
        s->md = pcre2_match_data_create(1, NULL);
        if (s->md == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "tokenize: no memory");
        }
    }
    c.t = t;
    c.s = s;
    c.out = out;
    c.err = err;
    c.base = text;
    if (t->n_re == 1) {
        return regex_split(t->re[0], text, len, s->md, on_word, &c);
    }

    /* every piece is at least one byte: len pairs bound each stage */
    a = malloc(2 * len * sizeof(uint32_t));
    b = malloc(2 * len * sizeof(uint32_t));
    if (a == NULL || b == NULL) {
        st = st_error_set(err, ST_ERR_NOMEM, "tokenize: no memory");
        goto done;
    }
    a[0] = 0;
    a[1] = (uint32_t) len;
    n_a = 1;
    for (r = 0; r < t->n_re - 1; r++) {
        c.pieces = b;
        c.n_pieces = 0;
        for (i = 0; i < n_a; i++) {
            regex_split(t->re[r], text + a[2 * i], a[2 * i + 1], s->md,
                on_piece, &c);
        }
        tmp = a;
        a = b;
        b = tmp;
        n_a = c.n_pieces;
    }
    for (i = 0; i < n_a && st == ST_OK; i++) {
        st = regex_split(t->re[t->n_re - 1], text + a[2 * i], a[2 * i + 1],
            s->md, on_word, &c);
    }
done:
    free(a);
    free(b);
    return st;
}


static st_status
compile_regexes(st_tokenizer *t, st_error *err)
{
    const char *list[4];
    int         n = 0, i, ec;
    PCRE2_SIZE  eo;
    char        msg[128];

    switch (t->pre) {
    case ST_TOK_PRE_DEFAULT:
        list[n++] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
        list[n++] = RE_GPT2;
        list[n++] = "\\p{N}+";
        list[n++] = "[0-9][0-9][0-9]";
        break;
    case ST_TOK_PRE_GPT2:
        list[n++] = RE_GPT2;
        break;
    case ST_TOK_PRE_LLAMA3:
        list[n++] = RE_LLAMA3;
        break;
    case ST_TOK_PRE_QWEN2:
        list[n++] = RE_QWEN2;
        break;
    }
    for (i = 0; i < n; i++) {
        t->re[i] = pcre2_compile((PCRE2_SPTR) list[i], PCRE2_ZERO_TERMINATED,
            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
        if (t->re[i] == NULL) {
            pcre2_get_error_message(ec, (PCRE2_UCHAR *) msg, sizeof(msg));
            return st_error_set(err, ST_ERR_INTERNAL,
                "tokenizer: pre-tokenizer regex %d does not compile at %zu: %s",
                i, (size_t) eo, msg);
        }
        t->n_re = i + 1;
        /* JIT is only faster; without it pcre2_match interprets */
        (void) pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE);
    }
    return ST_OK;
}


st_status
st_tok_bpe_setup(st_tokenizer *t, const st_gguf *g, st_error *err)
{
    const st_gguf_value *merges = NULL;
    st_tok_scratch       s;
    st_gguf_str          ms;
    char                *buf = NULL;
    size_t               buf_cap = 0, n, k;
    const char          *txt, *sp;
    int64_t              la, lb, id;
    int32_t              a, b, r;
    uint32_t             i;
    st_status            st;

    memset(&s, 0, sizeof(s));
    if ((st = compile_regexes(t, err)) != ST_OK) {
        return st;
    }
    if (st_gguf_find(g, "tokenizer.ggml.merges") == NULL) {
        return st_error_set(err, ST_ERR_FORMAT,
            "tokenizer: gpt2 vocab without tokenizer.ggml.merges");
    }
    if ((st = st_gguf_get_arr(g, "tokenizer.ggml.merges", ST_GGUF_STRING,
             &merges, err)) != ST_OK)
    {
        return st;
    }
    if (merges->arr_n > INT32_MAX) {
        return st_error_set(err, ST_ERR_FORMAT,
            "tokenizer: %llu merges is too many",
            (unsigned long long) merges->arr_n);
    }
    if (st_tok_strmap_init(&t->sym_map, t->n_vocab + 1024) != 0
        || st_tok_pairmap_init(&t->merges, (uint32_t) merges->arr_n + 1) != 0)
    {
        return st_error_set(err, ST_ERR_NOMEM, "tokenizer: no memory");
    }

    /* syms 0..n_vocab-1 = tokens in raw bytes; undecodable ones (added
     * tokens with characters outside the byte table) stay empty and out
     * of the map: no byte sequence can spell them */
    for (i = 0; i < t->n_vocab; i++) {
        txt = st_tok_strtab_get(&t->text, i, &n);
        if (st_tok_scratch_reserve((void **) &buf, &buf_cap, n + 1) != 0) {
            goto nomem;
        }
        la = gpt2_decode(txt, n, buf);
        id = st_tok_strtab_add(&t->sym, buf, la > 0 ? (size_t) la : 0);
        if (id < 0) {
            goto nomem;
        }
        if (la > 0 && st_tok_strmap_put(&t->sym_map, &t->sym, i) != 0) {
            goto nomem;
        }
    }

    /* merges: "left right" (split at the first space after byte 0) */
    for (i = 0; i < merges->arr_n; i++) {
        ms = st_gguf_arr_str(merges, i);
        if (ms.len < 3 || ms.ptr == NULL) {
            continue;
        }
        sp = memchr(ms.ptr + 1, ' ', (size_t) ms.len - 1);
        if (sp == NULL) {
            continue;
        }
        if (st_tok_scratch_reserve((void **) &buf, &buf_cap, (size_t) ms.len) != 0) {
            goto nomem;
        }
        la = gpt2_decode(ms.ptr, (size_t) (sp - ms.ptr), buf);
        if (la <= 0) {
            continue;
        }
        lb = gpt2_decode(sp + 1, (size_t) (ms.ptr + ms.len - sp - 1), buf + la);
        if (lb <= 0) {
            continue;
        }
        a = sym_intern(t, buf, (size_t) la);
        b = sym_intern(t, buf + la, (size_t) lb);
        r = sym_intern(t, buf, (size_t) (la + lb));
        if (a < 0 || b < 0 || r < 0) {
            goto nomem;
        }
        st_tok_pairmap_put(&t->merges, a, b, (int32_t) i, r);
    }

    for (k = 0; k < 256; k++) {
        char c = (char) k;

        t->byte_sym[k] = sym_intern(t, &c, 1);
        if (t->byte_sym[k] < 0) {
            goto nomem;
        }
    }

    /* A word that is a token is emitted directly when BPE over its bytes
     * would rebuild that token anyway (almost always): decided once here
     * so encoding skips the merges for common words. */
    if (!t->ignore_merges) {
        for (i = 0; i < t->n_vocab; i++) {
            txt = st_tok_strtab_get(&t->sym, i, &n);
            if (n == 0 || st_tok_strmap_get(&t->sym_map, &t->sym, txt, n) != (int32_t) i) {
                continue;
            }
            if (bpe_merge(t, (const uint8_t *) txt, n, &s) != 0) {
                goto nomem;
            }
            if (((bpe_sym *) s.syms)[0].next == -1
                && ((bpe_sym *) s.syms)[0].sym == (int32_t) i)
            {
                t->attr[i] |= ST_TOK_ATTR_BPE_SELF;
            }
        }
    }
    free(buf);
    st_tok_scratch_free(&s);
    return ST_OK;

nomem:
    free(buf);
    st_tok_scratch_free(&s);
    return st_error_set(err, ST_ERR_NOMEM, "tokenizer: no memory for BPE tables");
}


void
st_tok_bpe_free(st_tokenizer *t)
{
    int i;

    for (i = 0; i < t->n_re; i++) {
        pcre2_code_free(t->re[i]);
    }
    t->n_re = 0;
    st_tok_strtab_free(&t->sym);
    st_tok_strmap_free(&t->sym_map);
    st_tok_pairmap_free(&t->merges);
}
