/*
 * Tokenizer: loading from GGUF metadata, special-token splitting, the
 * encode entry point, pieces and detokenization. The two algorithms live
 * in tok_spm.c and tok_bpe.c; behaviour follows llama.cpp's llama_vocab
 * (src/llama-vocab.cpp), with the differences listed in the notes below.
 *
 * Deliberate differences from llama.cpp:
 *   - SPM vocab without byte tokens: a character with no token becomes one
 *     <unk> (llama.cpp throws std::out_of_range and aborts).
 *   - BPE and invalid UTF-8: kept byte-wise (llama.cpp substitutes U+FFFD).
 *   - Unknown tokenizer.ggml.pre: GPT-2 regex and st_tokenizer_warning()
 *     says so (llama.cpp refuses to load).
 *   - BPE pieces with characters outside GPT-2's byte table are copied as
 *     UTF-8 (llama.cpp renders "[UNK_BYTE_0x..]").
 *   - Qwen2's regex runs in PCRE2 with real Unicode classes; llama.cpp runs
 *     it through std::regex after collapsing non-ASCII characters to class
 *     representatives (symbols and marks count as letters there). Same ids
 *     for all reference vectors; exotic text may split differently.
 *   - Detokenize never applies llama.cpp's clean_spaces (" ," -> ",")
 *     cleanup: pieces concatenate to the exact bytes.
 *   - lstrip/rstrip token attributes: only Phi-3's rstrip rule is applied.
 */
#include "text/tok_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE     "\xe2\x96\x81"   /* U+2581, SentencePiece's space */
#define SPM_SPACE_LEN 3


/* ---- metadata helpers ------------------------------------------------ */

static int
kv_int(const st_gguf *g, const char *key, int64_t *out)
{
    const st_gguf_value *v = st_gguf_find(g, key);

    if (v == NULL) {
        return 0;
    }
    switch (v->type) {
    case ST_GGUF_UINT8: case ST_GGUF_UINT16: case ST_GGUF_UINT32:
    case ST_GGUF_UINT64: case ST_GGUF_BOOL:
        *out = v->v.u64 > (uint64_t) INT64_MAX ? -1 : (int64_t) v->v.u64;
        return 1;
    case ST_GGUF_INT8: case ST_GGUF_INT16: case ST_GGUF_INT32:
    case ST_GGUF_INT64:
        *out = v->v.i64;
        return 1;
    default:
        return 0;
    }
}


static int
kv_bool(const st_gguf *g, const char *key, int *out)
{
    const st_gguf_value *v = st_gguf_find(g, key);

    if (v == NULL) {
        return 0;
    }
    if (v->type == ST_GGUF_BOOL) {
        *out = v->v.u64 != 0;
        return 1;
    }
    return 0;
}


static int
kv_str_eq(st_gguf_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && s.ptr != NULL && memcmp(s.ptr, lit, n) == 0;
}


/* A special-token key overrides the default only with an id inside the
 * vocab (llama.cpp: "bad special token ... using default id"). */
static void
load_special_id(const st_tokenizer *t, const st_gguf *g, const char *key,
    int32_t *id)
{
    int64_t v;

    if (*id >= 0 && (uint32_t) *id >= t->n_vocab) {
        *id = -1;
    }
    if (kv_int(g, key, &v) && v >= 0 && v < (int64_t) t->n_vocab) {
        *id = (int32_t) v;
    }
}


static int
text_is(const st_tokenizer *t, uint32_t id, const char *lit)
{
    size_t      n;
    const char *s = st_tok_strtab_get(&t->text, id, &n);

    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}


static int
text_in(const st_tokenizer *t, uint32_t id, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (text_is(t, id, *list)) {
            return 1;
        }
    }
    return 0;
}


/* ---- pre-tokenizer names ---------------------------------------------- */

typedef struct {
    const char *name;
    st_tok_pre  pre;
    int         llama3_flags;    /* ignore_merges + add_bos */
} pre_entry;

static const pre_entry pre_table[] = {
    { "default",          ST_TOK_PRE_DEFAULT, 0 },
    { "llama3",           ST_TOK_PRE_LLAMA3,  1 },
    { "llama-v3",         ST_TOK_PRE_LLAMA3,  1 },
    { "llama-bpe",        ST_TOK_PRE_LLAMA3,  1 },
    { "falcon3",          ST_TOK_PRE_LLAMA3,  1 },
    { "falcon-h1",        ST_TOK_PRE_LLAMA3,  1 },
    { "pixtral",          ST_TOK_PRE_LLAMA3,  1 },
    { "midm-2.0",         ST_TOK_PRE_LLAMA3,  1 },
    { "lfm2",             ST_TOK_PRE_LLAMA3,  1 },
    { "dbrx",             ST_TOK_PRE_LLAMA3,  0 },
    { "smaug-bpe",        ST_TOK_PRE_LLAMA3,  0 },
    { "gpt-2",            ST_TOK_PRE_GPT2,    0 },
    { "phi-2",            ST_TOK_PRE_GPT2,    0 },
    { "jina-es",          ST_TOK_PRE_GPT2,    0 },
    { "jina-de",          ST_TOK_PRE_GPT2,    0 },
    { "jina-v2-es",       ST_TOK_PRE_GPT2,    0 },
    { "jina-v2-de",       ST_TOK_PRE_GPT2,    0 },
    { "gigachat",         ST_TOK_PRE_GPT2,    0 },
    { "mpt",              ST_TOK_PRE_GPT2,    0 },
    { "olmo",             ST_TOK_PRE_GPT2,    0 },
    { "jais",             ST_TOK_PRE_GPT2,    0 },
    { "qwen2",            ST_TOK_PRE_QWEN2,   0 },
    { "deepseek-r1-qwen", ST_TOK_PRE_QWEN2,   0 },
    { "stablelm2",        ST_TOK_PRE_QWEN2,   0 },
    { NULL,               ST_TOK_PRE_GPT2,    0 }
};

/* llama.cpp recognises end-of-turn tokens by their text */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81"
    "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "<end_of_utterance>", NULL
};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", NULL
};


/* ---- load ------------------------------------------------------------- */

typedef struct {
    st_tokenizer pub;
    char         warning[160];
} tok_full;


static int
special_cmp_ctx_len(const st_tokenizer *t, int32_t a, int32_t b)
{
    uint32_t la = t->text.e[a].len, lb = t->text.e[b].len;

    if (la != lb) {
        return la > lb ? -1 : 1;
    }
    return a < b ? -1 : (a > b);
}


/* insertion sort by (length desc, id asc): lists are a few hundred ids */
static void
sort_specials(const st_tokenizer *t)
{
    uint32_t i, j;
    int32_t  v;

    for (i = 1; i < t->n_special; i++) {
        v = t->special[i];
        j = i;
        while (j > 0 && special_cmp_ctx_len(t, v, t->special[j - 1]) < 0) {
            t->special[j] = t->special[j - 1];
            j--;
        }
        t->special[j] = v;
    }
}


static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/* True when every token is ▁* followed by text without ▁: then no token
 * spans "x▁" for a non-▁ character x, so merges never cross that point. */
static int
spm_words_independent(const st_tokenizer *t)
{
    uint32_t    i;
    size_t      n, k;
    const char *s;

    for (i = 0; i < t->n_vocab; i++) {
        s = st_tok_strtab_get(&t->text, i, &n);
        k = 0;
        while (k + SPM_SPACE_LEN <= n && memcmp(s + k, SPM_SPACE, SPM_SPACE_LEN) == 0) {
            k += SPM_SPACE_LEN;
        }
        if (k < n && memmem(s + k, n - k, SPM_SPACE, SPM_SPACE_LEN) != NULL) {
            return 0;
        }
    }
    return 1;
}


/* Bytes of each token as llama_token_to_piece(special = true) renders it. */
static st_status
build_pieces(st_tokenizer *t, st_error *err)
{
    uint32_t    i;
    size_t      n, k, o, cl;
    const char *s;
    char       *buf = NULL;
    size_t      cap = 0;
    uint16_t    a;
    int         hi, lo, b;
    uint32_t    cp;
    uint8_t     c;

    for (i = 0; i < t->n_vocab; i++) {
        s = st_tok_strtab_get(&t->text, i, &n);
        a = t->attr[i];
        if (st_tok_scratch_reserve((void **) &buf, &cap, n + 4) != 0) {
            goto nomem;
        }
        o = 0;
        if (a & (ST_TOK_ATTR_UNKNOWN | ST_TOK_ATTR_CONTROL | ST_TOK_ATTR_USER)) {
            memcpy(buf, s, n);
            o = n;
        } else if (a & ST_TOK_ATTR_NORMAL) {
            if (t->kind == ST_TOK_SPM) {
                for (k = 0; k < n; k++) {
                    if (k + SPM_SPACE_LEN <= n
                        && memcmp(s + k, SPM_SPACE, SPM_SPACE_LEN) == 0)
                    {
                        buf[o++] = ' ';
                        k += SPM_SPACE_LEN - 1;
                    } else {
                        buf[o++] = s[k];
                    }
                }
            } else {
                /* GPT-2 chars back to bytes; anything else copied as is */
                for (k = 0; k < n; k += cl) {
                    c = (uint8_t) s[k];
                    cl = st_tok_utf8_len(c);
                    b = -1;
                    if (cl == 2 && k + 1 < n && c >= 0xc2
                        && ((uint8_t) s[k + 1] & 0xc0) == 0x80)
                    {
                        cp = ((uint32_t) (c & 0x1f) << 6)
                             | ((uint8_t) s[k + 1] & 0x3f);
                        b = st_tok_cp_to_byte(cp);
                    } else if (cl == 1) {
                        b = st_tok_cp_to_byte(c);
                    }
                    if (b >= 0) {
                        buf[o++] = (char) b;
                    } else {
                        if (cl > n - k) {
                            cl = n - k;
                        }
                        memcpy(buf + o, s + k, cl);
                        o += cl;
                    }
                }
            }
        } else if ((a & ST_TOK_ATTR_BYTE) && t->kind == ST_TOK_SPM) {
            /* "<0xXX>" */
            hi = n >= 6 ? hexval(s[3]) : -1;
            lo = n >= 6 ? hexval(s[4]) : -1;
            buf[o++] = (char) (hi >= 0 && lo >= 0 ? hi * 16 + lo : 0);
        }
        if (st_tok_strtab_add(&t->piece, buf, o) < 0) {
            goto nomem;
        }
    }
    free(buf);
    return ST_OK;

nomem:
    free(buf);
    return st_error_set(err, ST_ERR_NOMEM, "tokenizer: no memory for pieces");
}


st_status
st_tokenizer_load(st_tokenizer **out, const st_gguf *g, st_error *err)
{
    tok_full            *f;
    st_tokenizer        *t;
    st_gguf_str          model, pre, name, s;
    const st_gguf_value *toks = NULL, *sc, *tt;
    const pre_entry     *pe;
    st_status            st;
    uint32_t             i;
    int64_t              id;
    int                  flag;
    int32_t              ty;
    float                fv;
    char                 hex[7], num[24], lower[64];
    size_t               k, n;

    if (out == NULL || g == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "tokenizer: NULL argument");
    }
    *out = NULL;
    if (st_gguf_find(g, "tokenizer.ggml.model") == NULL) {
        return st_error_set(err, ST_ERR_FORMAT,
            "tokenizer: missing key tokenizer.ggml.model");
    }
    if ((st = st_gguf_get_str(g, "tokenizer.ggml.model", &model, err)) != ST_OK) {
        return st;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "tokenizer: no memory");
    }
    t = &f->pub;
    t->bos = t->eos = t->unk = t->eot = t->eom = t->pad = -1;

    if (kv_str_eq(model, "llama")) {
        t->kind = ST_TOK_SPM;
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = 1;
        t->add_space_prefix = 1;
        snprintf(t->pre_name, sizeof(t->pre_name), "default");
    } else if (kv_str_eq(model, "gpt2")) {
        t->kind = ST_TOK_BPE;
        t->bos = 11;
        t->eos = 11;
        t->pre = ST_TOK_PRE_DEFAULT;
        snprintf(t->pre_name, sizeof(t->pre_name), "default");
        if (st_gguf_find(g, "tokenizer.ggml.pre") != NULL
            && st_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL) == ST_OK
            && pre.len > 0)
        {
            n = pre.len < sizeof(t->pre_name) - 1 ? (size_t) pre.len
                                                  : sizeof(t->pre_name) - 1;
            memcpy(t->pre_name, pre.ptr, n);
            t->pre_name[n] = '\0';
            for (pe = pre_table; pe->name != NULL; pe++) {
                if (kv_str_eq(pre, pe->name)) {
                    break;
                }
            }
            t->pre = pe->pre;
            if (pe->name == NULL) {
                snprintf(f->warning, sizeof(f->warning),
                    "unknown tokenizer.ggml.pre '%s': using the GPT-2 "
                    "pre-tokenizer regex", t->pre_name);
            } else if (pe->llama3_flags) {
                t->ignore_merges = 1;
                t->add_bos = 1;
            }
        }
    } else {
        n = model.len < 32 ? (size_t) model.len : 32;
        st = st_error_set(err, ST_ERR_UNSUPPORTED,
            "tokenizer: tokenizer.ggml.model '%.*s' is not supported "
            "(llama, gpt2)", (int) n, model.ptr ? model.ptr : "");
        goto fail;
    }

    /* tokens */
    if (st_gguf_find(g, "tokenizer.ggml.tokens") == NULL) {
        st = st_error_set(err, ST_ERR_FORMAT,
            "tokenizer: missing key tokenizer.ggml.tokens");
        goto fail;
    }
    if ((st = st_gguf_get_arr(g, "tokenizer.ggml.tokens", ST_GGUF_STRING,
             &toks, err)) != ST_OK)
    {
        goto fail;
    }
    if (toks->arr_n == 0 || toks->arr_n > (uint64_t) INT32_MAX / 2) {
        st = st_error_set(err, ST_ERR_FORMAT,
            "tokenizer: tokenizer.ggml.tokens has %llu entries",
            (unsigned long long) toks->arr_n);
        goto fail;
    }
    t->n_vocab = (uint32_t) toks->arr_n;
    t->score = calloc(t->n_vocab, sizeof(float));
    t->attr = calloc(t->n_vocab, sizeof(uint16_t));
    if (t->score == NULL || t->attr == NULL
        || st_tok_strmap_init(&t->text_map, t->n_vocab) != 0)
    {
        goto nomem;
    }
    for (i = 0; i < t->n_vocab; i++) {
        s = st_gguf_arr_str(toks, i);
        if (s.len == 0 || s.ptr == NULL) {
            /* llama.cpp's name for empty entries */
            n = (size_t) snprintf(num, sizeof(num), "[EMPTY_%u]", i);
            id = st_tok_strtab_add(&t->text, num, n);
        } else {
            id = st_tok_strtab_add(&t->text, s.ptr, (size_t) s.len);
        }
        if (id < 0 || st_tok_strmap_put(&t->text_map, &t->text, i) != 0) {
            goto nomem;
        }
        t->attr[i] = ST_TOK_ATTR_NORMAL;
    }

    /* scores (f32, or i32 as llama.cpp also accepts) */
    sc = st_gguf_find(g, "tokenizer.ggml.scores");
    if (sc != NULL) {
        if (sc->type != ST_GGUF_ARRAY
            || (sc->arr_type != ST_GGUF_FLOAT32 && sc->arr_type != ST_GGUF_INT32)
            || sc->arr_n < t->n_vocab || sc->arr_data == NULL)
        {
            st = st_error_set(err, ST_ERR_FORMAT,
                "tokenizer: tokenizer.ggml.scores is not a float32/int32 "
                "array of %u entries", t->n_vocab);
            goto fail;
        }
        for (i = 0; i < t->n_vocab; i++) {
            /* array data in the mapping may be unaligned */
            if (sc->arr_type == ST_GGUF_FLOAT32) {
                memcpy(&fv, (const char *) sc->arr_data + 4 * (size_t) i, 4);
            } else {
                memcpy(&ty, (const char *) sc->arr_data + 4 * (size_t) i, 4);
                fv = (float) ty;
            }
            t->score[i] = fv;
        }
    }

    tt = st_gguf_find(g, "tokenizer.ggml.token_type");
    if (tt != NULL) {
        if (tt->type != ST_GGUF_ARRAY || tt->arr_type != ST_GGUF_INT32
            || tt->arr_n < t->n_vocab || tt->arr_data == NULL)
        {
            st = st_error_set(err, ST_ERR_FORMAT,
                "tokenizer: tokenizer.ggml.token_type is not an int32 array "
                "of %u entries", t->n_vocab);
            goto fail;
        }
        for (i = 0; i < t->n_vocab; i++) {
            memcpy(&ty, (const char *) tt->arr_data + 4 * (size_t) i, 4);
            switch (ty) {
            case ST_TOKEN_NORMAL:       t->attr[i] = ST_TOK_ATTR_NORMAL; break;
            case ST_TOKEN_UNKNOWN:      t->attr[i] = ST_TOK_ATTR_UNKNOWN; break;
            case ST_TOKEN_CONTROL:      t->attr[i] = ST_TOK_ATTR_CONTROL; break;
            case ST_TOKEN_USER_DEFINED: t->attr[i] = ST_TOK_ATTR_USER; break;
            case ST_TOKEN_UNUSED:       t->attr[i] = ST_TOK_ATTR_UNUSED; break;
            case ST_TOKEN_BYTE:         t->attr[i] = ST_TOK_ATTR_BYTE; break;
            default:                    t->attr[i] = 0; break;
            }
        }
    }

    if (kv_bool(g, "tokenizer.ggml.add_space_prefix", &flag)) {
        t->add_space_prefix = flag;
    }
    load_special_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos);
    load_special_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos);
    load_special_id(t, g, "tokenizer.ggml.eot_token_id", &t->eot);
    load_special_id(t, g, "tokenizer.ggml.eom_token_id", &t->eom);
    load_special_id(t, g, "tokenizer.ggml.unknown_token_id", &t->unk);
    load_special_id(t, g, "tokenizer.ggml.padding_token_id", &t->pad);
    if (kv_bool(g, "tokenizer.ggml.add_bos_token", &flag)) {
        t->add_bos = flag;
    }
    if (kv_bool(g, "tokenizer.ggml.add_eos_token", &flag)) {
        t->add_eos = flag;
    }
    if (t->bos < 0) {
        t->add_bos = 0;
    }
    if (t->eos < 0) {
        t->add_eos = 0;
    }

    /* end-of-generation set, and llama.cpp's forcing of those tokens to
     * control type (so they only parse/render as special) */
    for (i = 0; i < t->n_vocab; i++) {
        if (t->eot < 0 && text_in(t, i, eot_texts)) {
            t->eot = (int32_t) i;
            t->attr[i] |= ST_TOK_ATTR_CONTROL;
        }
        if (t->eom < 0 && text_is(t, i, "<|eom_id|>")) {
            t->eom = (int32_t) i;
            t->attr[i] |= ST_TOK_ATTR_CONTROL;
        }
        if (text_in(t, i, eog_texts)) {
            t->attr[i] |= ST_TOK_ATTR_EOG | ST_TOK_ATTR_CONTROL;
        }
    }
    if (t->eos >= 0) {
        t->attr[t->eos] |= ST_TOK_ATTR_EOG;
    }
    if (t->eot >= 0) {
        t->attr[t->eot] |= ST_TOK_ATTR_EOG;
    }
    if (t->eom >= 0) {
        t->attr[t->eom] |= ST_TOK_ATTR_EOG;
    }

    /* tokens split out of the text before encoding */
    t->special = malloc(t->n_vocab * sizeof(int32_t));
    if (t->special == NULL) {
        goto nomem;
    }
    for (i = 0; i < t->n_vocab; i++) {
        if (t->attr[i] & (ST_TOK_ATTR_CONTROL | ST_TOK_ATTR_USER
                          | ST_TOK_ATTR_UNKNOWN))
        {
            t->special[t->n_special++] = (int32_t) i;
            t->special_first[(uint8_t) t->text.data[t->text.e[i].off]] = 1;
        }
    }
    sort_specials(t);

    /* Phi-3: llama.cpp strips spaces after special tokens */
    if (st_gguf_find(g, "general.name") != NULL
        && st_gguf_get_str(g, "general.name", &name, NULL) == ST_OK)
    {
        n = name.len < sizeof(lower) - 1 ? (size_t) name.len : sizeof(lower) - 1;
        for (k = 0; k < n; k++) {
            lower[k] = (char) tolower((unsigned char) name.ptr[k]);
        }
        lower[n] = '\0';
        if (strstr(lower, "phi-3") != NULL || strstr(lower, "phi3") != NULL) {
            for (i = 0; i < t->n_special; i++) {
                t->attr[t->special[i]] |= ST_TOK_ATTR_RSTRIP;
            }
            for (i = 0; i < t->n_vocab; i++) {
                if (text_is(t, i, "</s>")) {
                    t->attr[i] |= ST_TOK_ATTR_RSTRIP;
                }
                if (text_is(t, i, "<unk>") || text_is(t, i, "<s>")
                    || text_is(t, i, "<|endoftext|>"))
                {
                    t->attr[i] &= (uint16_t) ~ST_TOK_ATTR_RSTRIP;
                }
            }
        }
    }

    /* SPM byte fallback: <0xXX>, else the byte itself as a token */
    for (k = 0; k < 256; k++) {
        hex[0] = (char) k;
        t->one_char_tok[k] = st_tok_strmap_get(&t->text_map, &t->text, hex, 1);
        snprintf(hex, sizeof(hex), "<0x%02X>", (unsigned) k);
        t->byte_tok[k] = st_tok_strmap_get(&t->text_map, &t->text, hex, 6);
        if (t->byte_tok[k] < 0) {
            hex[0] = (char) k;
            t->byte_tok[k] = t->one_char_tok[k];
        }
    }
    t->spm_space_tok = st_tok_strmap_get(&t->text_map, &t->text, SPM_SPACE,
        SPM_SPACE_LEN);
    t->spm_word_split = t->kind == ST_TOK_SPM && spm_words_independent(t);
    t->spm_uniform_score = 1;
    for (i = 0; i < t->n_vocab; i++) {
        if (!(t->score[i] == t->score[0])) {   /* also false for NaN */
            t->spm_uniform_score = 0;
            break;
        }
    }

    if (t->kind == ST_TOK_BPE && (st = st_tok_bpe_setup(t, g, err)) != ST_OK) {
        goto fail;
    }
    if ((st = build_pieces(t, err)) != ST_OK) {
        goto fail;
    }
    *out = t;
    return ST_OK;

nomem:
    st = st_error_set(err, ST_ERR_NOMEM, "tokenizer: no memory for %u tokens",
        t->n_vocab);
fail:
    st_tokenizer_free(t);
    return st;
}


void
st_tokenizer_free(st_tokenizer *t)
{
    if (t == NULL) {
        return;
    }
    st_tok_bpe_free(t);
    st_tok_strtab_free(&t->text);
    st_tok_strmap_free(&t->text_map);
    st_tok_strtab_free(&t->piece);
    free(t->score);
    free(t->attr);
    free(t->special);
    free((tok_full *) t);
}


/* ---- accessors -------------------------------------------------------- */

st_tok_kind
st_tokenizer_kind(const st_tokenizer *t)
{
    return t->kind;
}


const char *
st_tokenizer_kind_name(const st_tokenizer *t)
{
    return t->kind == ST_TOK_SPM ? "spm" : "bpe";
}


const char *
st_tokenizer_pre_name(const st_tokenizer *t)
{
    return t->pre_name;
}


const char *
st_tokenizer_warning(const st_tokenizer *t)
{
    const tok_full *f = (const tok_full *) t;

    return f->warning[0] != '\0' ? f->warning : NULL;
}


uint32_t
st_tokenizer_n_vocab(const st_tokenizer *t)
{
    return t->n_vocab;
}


int32_t
st_tokenizer_bos(const st_tokenizer *t)
{
    return t->bos;
}


int32_t
st_tokenizer_eos(const st_tokenizer *t)
{
    return t->eos;
}


int
st_tokenizer_add_bos(const st_tokenizer *t)
{
    return t->add_bos;
}


int
st_tokenizer_is_eog(const st_tokenizer *t, int32_t id)
{
    return id >= 0 && (uint32_t) id < t->n_vocab
           && (t->attr[id] & ST_TOK_ATTR_EOG) != 0;
}


st_token_type
st_tokenizer_token_type(const st_tokenizer *t, int32_t id)
{
    uint16_t a;

    if (id < 0 || (uint32_t) id >= t->n_vocab) {
        return ST_TOKEN_UNDEFINED;
    }
    a = t->attr[id];
    if (a & ST_TOK_ATTR_CONTROL) {
        return ST_TOKEN_CONTROL;
    }
    if (a & ST_TOK_ATTR_UNKNOWN) {
        return ST_TOKEN_UNKNOWN;
    }
    if (a & ST_TOK_ATTR_USER) {
        return ST_TOKEN_USER_DEFINED;
    }
    if (a & ST_TOK_ATTR_BYTE) {
        return ST_TOKEN_BYTE;
    }
    if (a & ST_TOK_ATTR_UNUSED) {
        return ST_TOKEN_UNUSED;
    }
    if (a & ST_TOK_ATTR_NORMAL) {
        return ST_TOKEN_NORMAL;
    }
    return ST_TOKEN_UNDEFINED;
}


int32_t
st_tokenizer_find(const st_tokenizer *t, const char *text, size_t len)
{
    if (text == NULL) {
        return -1;
    }
    return st_tok_strmap_get(&t->text_map, &t->text, text, len);
}


/* ---- decode ----------------------------------------------------------- */

size_t
st_token_to_piece(const st_tokenizer *t, int32_t id, char *buf, size_t cap,
    int special)
{
    size_t      n;
    const char *p;

    if (t == NULL || id < 0 || (uint32_t) id >= t->n_vocab) {
        return 0;
    }
    if (!special && (t->attr[id] & (ST_TOK_ATTR_UNKNOWN | ST_TOK_ATTR_CONTROL))) {
        return 0;
    }
    p = st_tok_strtab_get(&t->piece, (uint32_t) id, &n);
    if (buf != NULL && cap > 0) {
        memcpy(buf, p, n < cap ? n : cap);
    }
    return n;
}


size_t
st_detokenize(const st_tokenizer *t, const int32_t *ids, size_t n, char *buf,
    size_t cap, int special, int remove_leading_space)
{
    size_t      total = 0, i, pn, c;
    const char *p;
    int32_t     id;

    if (t == NULL || (ids == NULL && n > 0)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        id = ids[i];
        if (id < 0 || (uint32_t) id >= t->n_vocab) {
            continue;
        }
        if (!special && (t->attr[id] & (ST_TOK_ATTR_UNKNOWN | ST_TOK_ATTR_CONTROL))) {
            continue;
        }
        p = st_tok_strtab_get(&t->piece, (uint32_t) id, &pn);
        /* llama_detokenize: the first token only, one space */
        if (i == 0 && remove_leading_space && t->add_space_prefix
            && pn > 0 && p[0] == ' ')
        {
            p++;
            pn--;
        }
        if (buf != NULL && total < cap) {
            c = cap - total < pn ? cap - total : pn;
            memcpy(buf + total, p, c);
        }
        total += pn;
    }
    return total;
}
