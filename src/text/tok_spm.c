/*
 * SentencePiece-style ("llama") encoding, as llama.cpp's SPM session:
 * symbols are UTF-8 characters (length from the lead byte, not validated),
 * adjacent pairs whose concatenation is a token are merged highest score
 * first (ties: leftmost), then each symbol is its token or, failing that,
 * byte-fallback tokens <0xXX>.
 */
#include "text/tok_internal.h"

#include <string.h>

typedef struct {
    int32_t  prev;
    int32_t  next;
    uint32_t start;      /* byte offset in the text */
    uint32_t n;          /* bytes; 0 = merged into its left neighbour */
    int32_t  id;         /* token spelled by the symbol, -1 if none */
} spm_sym;

typedef struct {
    float    score;
    int32_t  left;
    int32_t  right;
    int32_t  id;         /* token of left + right */
    uint32_t size;       /* bytes of left + right when queued */
} spm_bigram;


/* a comes out of the queue before b */
static inline int
spm_before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}


static void
spm_heap_push(spm_bigram *h, size_t *n, spm_bigram v)
{
    size_t i = (*n)++, p;

    while (i > 0) {
        p = (i - 1) / 2;
        if (!spm_before(&v, &h[p])) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}


static spm_bigram
spm_heap_pop(spm_bigram *h, size_t *n)
{
    spm_bigram top = h[0], last = h[--(*n)];
    size_t     i = 0, c;

    for (;;) {
        c = 2 * i + 1;
        if (c >= *n) {
            break;
        }
        if (c + 1 < *n && spm_before(&h[c + 1], &h[c])) {
            c++;
        }
        if (!spm_before(&h[c], &last)) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}


static inline void
spm_try_bigram(const st_tokenizer *t, const char *text, spm_sym *sy,
    int32_t l, int32_t r, spm_bigram *heap, size_t *nheap)
{
    spm_bigram b;
    int32_t    id;
    uint32_t   size;

    if (l < 0 || r < 0) {
        return;
    }
    size = sy[l].n + sy[r].n;
    id = st_tok_strmap_get(&t->text_map, &t->text, text + sy[l].start, size);
    if (id < 0) {
        return;
    }
    b.score = t->score[id];
    b.left = l;
    b.right = r;
    b.id = id;
    b.size = size;
    spm_heap_push(heap, nheap, b);
}


static inline int
is_space_sym(const char *p, size_t n)
{
    return n == 3 && (uint8_t) p[0] == 0xe2 && (uint8_t) p[1] == 0x96
           && (uint8_t) p[2] == 0x81;
}


/* All scores equal: the queue order is "leftmost pair that is a token".
 * Pairs left of the cursor are known not to be tokens and only the pairs
 * touching a merged symbol change, so after a merge the cursor steps back
 * one symbol: same merges as the queue, in linear time. */
static void
spm_scan(const st_tokenizer *t, const char *text, spm_sym *sy)
{
    int32_t  p = 0, r, id;
    uint32_t size;

    while (p >= 0 && (r = sy[p].next) >= 0) {
        size = sy[p].n + sy[r].n;
        id = st_tok_strmap_get(&t->text_map, &t->text, text + sy[p].start, size);
        if (id < 0) {
            p = r;
            continue;
        }
        sy[p].n = size;
        sy[p].id = id;
        sy[r].n = 0;
        sy[p].next = sy[r].next;
        if (sy[r].next >= 0) {
            sy[sy[r].next].prev = p;
        }
        if (sy[p].prev >= 0) {
            p = sy[p].prev;
        }
    }
}


/* Merges symbols sy[0..n) (one word, or the whole text) and emits them. */
static st_status
spm_word(const st_tokenizer *t, const char *text, spm_sym *sy, size_t n,
    spm_bigram *heap, st_tokens *out, st_error *err)
{
    size_t      nheap = 0, k;
    int32_t     i, bt;
    spm_bigram  b;
    spm_sym    *L, *R;
    st_status   rc;
    int         all_bytes;

    for (k = 0; k < n; k++) {
        sy[k].prev = (int32_t) k - 1;
        sy[k].next = k + 1 == n ? -1 : (int32_t) k + 1;
    }
    if (t->spm_uniform_score) {
        spm_scan(t, text, sy);
        goto emit;
    }
    for (k = 1; k < n; k++) {
        spm_try_bigram(t, text, sy, (int32_t) k - 1, (int32_t) k, heap, &nheap);
    }
    while (nheap > 0) {
        b = spm_heap_pop(heap, &nheap);
        L = &sy[b.left];
        R = &sy[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) {
            continue;   /* stale: one side changed since it was queued */
        }
        L->n += R->n;
        L->id = b.id;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) {
            sy[R->next].prev = b.left;
        }
        spm_try_bigram(t, text, sy, L->prev, b.left, heap, &nheap);
        spm_try_bigram(t, text, sy, b.left, L->next, heap, &nheap);
    }

emit:
    for (i = 0; i != -1; i = sy[i].next) {
        if (sy[i].id >= 0) {
            if ((rc = st_tok_push(out, sy[i].id, err)) != ST_OK) {
                return rc;
            }
            continue;
        }
        /* never merged, so one character that is not a token: byte
         * fallback. llama.cpp throws when a byte has no token (vocab
         * without <0xXX>); we emit one <unk> for the character instead. */
        all_bytes = 1;
        for (k = 0; k < sy[i].n; k++) {
            if (t->byte_tok[(uint8_t) text[sy[i].start + k]] < 0) {
                all_bytes = 0;
                break;
            }
        }
        if (!all_bytes) {
            if (t->unk >= 0 && (rc = st_tok_push(out, t->unk, err)) != ST_OK) {
                return rc;
            }
            continue;
        }
        for (k = 0; k < sy[i].n; k++) {
            bt = t->byte_tok[(uint8_t) text[sy[i].start + k]];
            if ((rc = st_tok_push(out, bt, err)) != ST_OK) {
                return rc;
            }
        }
    }
    return ST_OK;
}


st_status
st_tok_spm_encode(const st_tokenizer *t, const char *text, size_t len,
    st_tok_scratch *s, st_tokens *out, st_error *err)
{
    spm_sym   *sy;
    size_t     n_sym = 0, off = 0, cl, cap_sym;
    st_status  rc;
    int        space, prev_space = 1;

    if (len == 0) {
        return ST_OK;
    }
    if (len > INT32_MAX / 4) {
        return st_error_set(err, ST_ERR_INVALID,
            "tokenize: text of %zu bytes is too long", len);
    }
    /* whole text at once, or word by word (see spm_word_split) */
    cap_sym = t->spm_word_split ? (len < 64 ? len : 64) : len;

    for (;;) {
        if (st_tok_scratch_reserve(&s->syms, &s->syms_cap,
                cap_sym * sizeof(spm_sym)) != 0
            /* every merge queues at most 2 new pairs */
            || st_tok_scratch_reserve(&s->heap, &s->heap_cap,
                   3 * cap_sym * sizeof(spm_bigram)) != 0)
        {
            return st_error_set(err, ST_ERR_NOMEM,
                "tokenize: no memory for %zu symbols", cap_sym);
        }
        sy = s->syms;
        while (off < len) {
            cl = st_tok_utf8_len((uint8_t) text[off]);
            if (cl > len - off) {
                cl = len - off;
            }
            space = is_space_sym(text + off, cl);
            if (t->spm_word_split && space && !prev_space && n_sym > 0) {
                if ((rc = spm_word(t, text, sy, n_sym, s->heap, out, err)) != ST_OK) {
                    return rc;
                }
                n_sym = 0;
            }
            if (n_sym == cap_sym) {
                break;      /* grow and go on with this word */
            }
            prev_space = space;
            sy[n_sym].start = (uint32_t) off;
            sy[n_sym].n = (uint32_t) cl;
            sy[n_sym].id = space ? t->spm_space_tok
                           : cl == 1 ? t->one_char_tok[(uint8_t) text[off]]
                           : st_tok_strmap_get(&t->text_map, &t->text, text + off, cl);
            n_sym++;
            off += cl;
        }
        if (off >= len) {
            break;
        }
        cap_sym *= 2;
    }
    return spm_word(t, text, sy, n_sym, s->heap, out, err);
}
