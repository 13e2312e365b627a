/*
 * Encoding entry point: split out special tokens (llama.cpp's
 * tokenizer_st_partition), then hand each text fragment to the SPM or BPE
 * encoder. All working memory is per call, so one st_tokenizer can be
 * used from several threads at once.
 */
#include "text/tok_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE     "\xe2\x96\x81"   /* U+2581, SentencePiece's space */
#define SPM_SPACE_LEN 3


/* ---- special-token partition ------------------------------------------ */

typedef struct {
    uint32_t off;
    uint32_t len;
    int32_t  tok;        /* >= 0: a special token; -1: raw text */
} frag;

typedef struct {
    frag   *v;
    size_t  n;
    size_t  cap;
} frag_list;


static int
frag_add(frag_list *l, uint32_t off, uint32_t len, int32_t tok)
{
    frag  *nv;
    size_t ncap;

    if (l->n == l->cap) {
        ncap = l->cap ? l->cap * 2 : 16;
        nv = realloc(l->v, ncap * sizeof(frag));
        if (nv == NULL) {
            return -1;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n].off = off;
    l->v[l->n].len = len;
    l->v[l->n].tok = tok;
    l->n++;
    return 0;
}


/* llama.cpp's tokenizer_st_partition: for each special token, longest
 * first, split every raw fragment at each of its occurrences. Without
 * parse_special only user-defined tokens are split out (as HF does). */
static st_status
partition(const st_tokenizer *t, const char *text, size_t len,
    int parse_special, frag_list *cur, st_error *err)
{
    uint8_t     present[256];
    frag_list   nxt = { NULL, 0, 0 }, tmp;
    size_t      k, i;
    uint32_t    si, tl, base, blen, rem, m;
    int32_t     id;
    uint16_t    a;
    const char *tx, *hit;
    int         any = 0;

    cur->n = 0;
    if (t->n_special > 0) {
        memset(present, 0, sizeof(present));
        for (k = 0; k < len; k++) {
            present[(uint8_t) text[k]] = 1;
        }
        for (k = 0; k < 256 && !any; k++) {
            any = present[k] && t->special_first[k];
        }
    }
    if (frag_add(cur, 0, (uint32_t) len, -1) != 0) {
        goto nomem;
    }
    if (!any) {
        return ST_OK;
    }

    for (si = 0; si < t->n_special; si++) {
        id = t->special[si];
        a = t->attr[id];
        if (!parse_special && (a & (ST_TOK_ATTR_CONTROL | ST_TOK_ATTR_UNKNOWN))) {
            continue;
        }
        tx = t->text.data + t->text.e[id].off;
        tl = t->text.e[id].len;
        if (tl == 0 || tl > len || !present[(uint8_t) tx[0]]
            || memmem(text, len, tx, tl) == NULL)
        {
            continue;
        }
        nxt.n = 0;
        for (i = 0; i < cur->n; i++) {
            if (cur->v[i].tok >= 0) {
                if (frag_add(&nxt, cur->v[i].off, cur->v[i].len, cur->v[i].tok) != 0) {
                    goto nomem;
                }
                continue;
            }
            base = cur->v[i].off;
            blen = cur->v[i].len;
            while (blen > 0) {
                hit = memmem(text + base, blen, tx, tl);
                if (hit == NULL) {
                    if (frag_add(&nxt, base, blen, -1) != 0) {
                        goto nomem;
                    }
                    break;
                }
                m = (uint32_t) (hit - text);
                if (m > base) {
                    rem = m - base;
                    if (a & ST_TOK_ATTR_LSTRIP) {
                        while (rem > 0 && isspace((unsigned char) text[base + rem - 1])) {
                            rem--;
                        }
                    }
                    if (rem > 0 && frag_add(&nxt, base, rem, -1) != 0) {
                        goto nomem;
                    }
                }
                if (frag_add(&nxt, m, tl, id) != 0) {
                    goto nomem;
                }
                rem = base + blen - (m + tl);
                base = m + tl;
                if (a & ST_TOK_ATTR_RSTRIP) {
                    while (rem > 0 && isspace((unsigned char) text[base])) {
                        base++;
                        rem--;
                    }
                }
                blen = rem;
            }
        }
        tmp = *cur;
        *cur = nxt;
        nxt = tmp;
    }
    free(nxt.v);
    return ST_OK;

nomem:
    free(nxt.v);
    return st_error_set(err, ST_ERR_NOMEM, "tokenize: no memory");
}


/* ---- encode ----------------------------------------------------------- */

/* SPM input: optional leading space, then ' ' -> U+2581 */
static st_status
spm_fragment(const st_tokenizer *t, const char *p, size_t n, int prefix,
    st_tok_scratch *s, st_tokens *out, st_error *err)
{
    size_t k, o = 0;
    char  *b;

    if (n > (SIZE_MAX - SPM_SPACE_LEN) / SPM_SPACE_LEN - 1
        || st_tok_scratch_reserve((void **) &s->text, &s->text_cap,
               (n + 1) * SPM_SPACE_LEN) != 0)
    {
        return st_error_set(err, ST_ERR_NOMEM, "tokenize: no memory");
    }
    b = s->text;
    if (prefix) {
        memcpy(b, SPM_SPACE, SPM_SPACE_LEN);
        o = SPM_SPACE_LEN;
    }
    for (k = 0; k < n; k++) {
        if (p[k] == ' ') {
            memcpy(b + o, SPM_SPACE, SPM_SPACE_LEN);
            o += SPM_SPACE_LEN;
        } else {
            b[o++] = p[k];
        }
    }
    return st_tok_spm_encode(t, b, o, s, out, err);
}


st_status
st_tokenize(const st_tokenizer *t, const char *text, size_t len,
    int add_special, int parse_special, st_tokens *out, st_error *err)
{
    frag_list      fl = { NULL, 0, 0 };
    st_tok_scratch s;
    st_status      st = ST_OK;
    size_t         i;
    int            prev_special = 1;
    const frag    *fv;
    size_t         nf;

    if (t == NULL || out == NULL || (text == NULL && len > 0)) {
        return st_error_set(err, ST_ERR_INVALID, "tokenize: NULL argument");
    }
    if (len > UINT32_MAX / 4) {
        return st_error_set(err, ST_ERR_INVALID,
            "tokenize: text of %zu bytes is too long", len);
    }
    memset(&s, 0, sizeof(s));

    /* fragments: the whole text unless a special token may occur in it */
    nf = 0;
    fv = NULL;
    if (len > 0) {
        if ((st = partition(t, text, len, parse_special, &fl, err)) != ST_OK) {
            goto done;
        }
        fv = fl.v;
        nf = fl.n;
    }

    if (add_special && t->add_bos) {
        if ((st = st_tok_push(out, t->bos, err)) != ST_OK) {
            goto done;
        }
    }
    for (i = 0; i < nf && st == ST_OK; i++) {
        if (fv[i].tok >= 0) {
            st = st_tok_push(out, fv[i].tok, err);
            prev_special = 1;
        } else if (t->kind == ST_TOK_SPM) {
            st = spm_fragment(t, text + fv[i].off, fv[i].len,
                t->add_space_prefix && prev_special, &s, out, err);
            prev_special = 0;
        } else {
            st = st_tok_bpe_encode(t, text + fv[i].off, fv[i].len, &s, out, err);
        }
    }
    if (st == ST_OK && add_special && t->add_eos) {
        st = st_tok_push(out, t->eos, err);
    }

done:
    free(fl.v);
    st_tok_scratch_free(&s);
    return st;
}
