/*
 * starling-synth: write a GGUF model with seeded random weights in the
 * exact tensor shapes of a named architecture, for speed measurements and
 * engine tests (speed does not depend on weight values).
 *
 *   starling-synth --arch qwen2.5-0.5b --type q8_0 -o /tmp/qwen-q8_0.gguf
 *
 * Tensor names and metadata keys are llama.cpp's. The tokenizer is copied
 * key by key (every tokenizer.* key, original types) from a vocab GGUF.
 *
 * Weight types per --type (1-D tensors, i.e. norms and biases, are F32):
 *   f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k,
 *     iq4_xs: every 2-D tensor in that type, token embedding and output
 *     included, like llama-quantize --pure. (llama-quantize would make
 *     output.weight Q6_K for q4_0; the llama.cpp reference files in
 *     shared/reference/bench are all-Q4_0 by their sizes, so this matches
 *     them.) q2_k, q3_k and iq4_xs rows that are not a multiple of 256
 *     fall back to IQ4_NL, as in llama.cpp.
 *   q4_k: llama.cpp's Q4_K_M recipe: Q4_K, with Q6_K for output.weight
 *     (token_embd when tied) and for attn_v/ffn_down in the layers
 *     llama.cpp gives more bits (first and last eighth, every third in
 *     between). Rows whose length is not a multiple of 256 cannot hold
 *     k-quants: as llama.cpp, Q5_0 replaces Q4_K and Q8_0 Q6_K there.
 *
 * Values: N(0, std) (std 0.02 by default) from splitmix64 + Box-Muller,
 * one stream per tensor seeded by (seed, tensor name), so a tensor's
 * values do not depend on its neighbours or its type; norm weights are
 * 1 + N(0, std). Data is generated, quantized and written in chunks of
 * about 1M values: memory use stays small whatever the file size.
 */
#include "gguf/gguf.h"
#include "gguf_writer.h"
#include "quant/quant.h"
#include "quantize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYNTH_CHUNK_VALUES (1u << 20)
#define SYNTH_PAD_SCORE    (-1000.0f)   /* llama.cpp's converter's value */
#define SYNTH_TOKEN_UNUSED 5            /* llama_token_type UNUSED */

typedef struct {
    const char *name;          /* --arch value */
    const char *gguf_arch;     /* general.architecture */
    uint32_t    n_layer;
    uint32_t    n_embd;
    uint32_t    n_head;
    uint32_t    n_head_kv;
    uint32_t    n_ff;
    uint32_t    n_vocab;       /* 0: the tokenizer's token count */
    uint32_t    n_ctx;
    float       rope_base;
    float       rms_eps;
    int         tied_output;   /* no output.weight */
    int         qkv_bias;
    const char *default_vocab; /* relative to the shared dir, or "@" for
                                  the repo's models/ */
} synth_arch;

static const synth_arch synth_archs[] = {
    { "qwen2.5-0.5b", "qwen2", 24, 896, 14, 2, 4864, 151936, 32768,
      1e6f, 1e-6f, 1, 1,
      "reference/tokenizer/ggml-vocab-qwen2.reconstructed.gguf" },
    { "tinyllama-1.1b", "llama", 22, 2048, 32, 4, 5632, 32000, 2048,
      10000.0f, 1e-5f, 0, 0,
      "reference/tokenizer/ggml-vocab-llama-spm.gguf" },
    /* a few MB, for tests: rows of 256 so every --type is really used */
    { "tiny", "llama", 2, 256, 4, 2, 512, 0, 512,
      10000.0f, 1e-5f, 0, 0, "@models/stories260K.gguf" },
};

typedef struct {
    const char *name;
    st_type     type;          /* base type of 2-D weights */
    uint32_t    file_type;     /* llama_ftype */
} synth_type;

static const synth_type synth_types[] = {
    { "f32",  ST_TYPE_F32,  0 },
    { "f16",  ST_TYPE_F16,  1 },
    { "q4_0", ST_TYPE_Q4_0, 2 },
    { "q8_0", ST_TYPE_Q8_0, 7 },
    { "q4_k", ST_TYPE_Q4_K, 15 },   /* MOSTLY_Q4_K_M */
    { "bf16", ST_TYPE_BF16, 32 },
    /* pure files (llama_ftype of the type; q3_k: MOSTLY_Q3_K_S) */
    { "q4_1", ST_TYPE_Q4_1, 3 },
    { "q5_0", ST_TYPE_Q5_0, 8 },
    { "q5_1", ST_TYPE_Q5_1, 9 },
    { "q2_k", ST_TYPE_Q2_K, 10 },
    { "q3_k", ST_TYPE_Q3_K, 11 },
    { "iq4_nl", ST_TYPE_IQ4_NL, 25 },
    { "iq4_xs", ST_TYPE_IQ4_XS, 30 },
};

typedef struct {
    char     name[ST_GGUF_MAX_NAME + 1];
    st_type  type;
    uint32_t n_dims;
    uint64_t ne[2];
    int      is_norm;
} synth_tensor;

typedef struct {
    synth_tensor *t;
    size_t        n;
    size_t        cap;
} synth_list;


static void
usage(FILE *fp)
{
    fprintf(fp,
        "usage: starling-synth --arch NAME -o FILE [options]\n"
        "  --arch NAME     qwen2.5-0.5b | tinyllama-1.1b | tiny\n"
        "  --type T        f32 | f16 | bf16 | q8_0 | q4_0 | q4_k | q4_1 | "
        "q5_0 | q5_1\n"
        "                  | q2_k | q3_k | iq4_nl | iq4_xs (default q8_0)\n"
        "  --seed N        RNG seed (default 1)\n"
        "  --std S         weight standard deviation (default 0.02)\n"
        "  --vocab FILE    GGUF to copy tokenizer.* keys from (default: per "
        "arch,\n"
        "                  under $ST_SHARED or ../shared; tiny: "
        "models/stories260K.gguf)\n"
        "  --n-layer N     override the layer count (smaller test files)\n"
        "  --ctx N         override context_length\n"
        "  -o FILE         output path\n");
}


static int
parse_u64(const char *s, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && s[0] != '-';
}


static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/* ---- random numbers: splitmix64 + Box-Muller ---- */

typedef struct {
    uint64_t state;
    double   spare;
    int      has_spare;
} synth_rng;


static uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}


static void
synth_rng_init(synth_rng *r, uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a of the name */

    for (; *name; name++) {
        h = (h ^ (uint8_t) *name) * 0x100000001b3ull;
    }
    r->state = seed ^ h;
    (void) splitmix64(&r->state);
    r->has_spare = 0;
}


static double
synth_normal(synth_rng *r)
{
    double u1, u2, rad;

    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* u1 in (0, 1]: log() never sees 0 */
    u1 = ((splitmix64(&r->state) >> 11) + 1) * 0x1.0p-53;
    u2 = (splitmix64(&r->state) >> 11) * 0x1.0p-53;
    rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(6.283185307179586 * u2);
    r->has_spare = 1;
    return rad * cos(6.283185307179586 * u2);
}


/* ---- tensor list ---- */

static int
list_add(synth_list *l, const char *name, st_type type, uint32_t n_dims,
    uint64_t ne0, uint64_t ne1, int is_norm)
{
    synth_tensor *t;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        t = realloc(l->t, cap * sizeof(*t));
        if (t == NULL) {
            return -1;
        }
        l->t = t;
        l->cap = cap;
    }
    t = &l->t[l->n++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->type = n_dims == 1 ? ST_TYPE_F32 : type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->is_norm = is_norm;
    return 0;
}


/* llama.cpp's use_more_bits(): layers that get Q6_K in Q4_K_M. */
static int
more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}


/* k-quants need rows of 256; fall back like llama.cpp (see top). */
static st_type
fit_type(st_type t, uint64_t ne0)
{
    if (ne0 % ST_QK_K == 0) {
        return t;
    }
    if (t == ST_TYPE_Q4_K) {
        return ST_TYPE_Q5_0;
    }
    if (t == ST_TYPE_Q2_K || t == ST_TYPE_Q3_K || t == ST_TYPE_IQ4_XS) {
        return ST_TYPE_IQ4_NL;
    }
    if (t == ST_TYPE_Q6_K) {
        return ST_TYPE_Q8_0;
    }
    return t;
}


static int
build_tensors(synth_list *l, const synth_arch *a, uint32_t n_layer,
    uint32_t n_vocab, const synth_type *ty)
{
    char     nm[ST_GGUF_MAX_NAME + 1];
    uint64_t E = a->n_embd, F = a->n_ff, V = n_vocab;
    uint64_t Q = (uint64_t) a->n_head * (a->n_embd / a->n_head);
    uint64_t KV = (uint64_t) a->n_head_kv * (a->n_embd / a->n_head);
    st_type  base = ty->type, emb, out, v_t, down_t;
    int      k4 = ty->type == ST_TYPE_Q4_K;
    uint32_t i;

    emb = base;
    out = k4 ? ST_TYPE_Q6_K : base;
    if (k4 && a->tied_output) {
        emb = ST_TYPE_Q6_K;         /* the tied embedding is the output */
    }
    if (list_add(l, "token_embd.weight", fit_type(emb, E), 2, E, V, 0)) {
        return -1;
    }
    for (i = 0; i < n_layer; i++) {
        v_t = (k4 && more_bits(i, n_layer)) ? ST_TYPE_Q6_K : base;
        down_t = v_t;
#define ADD(suffix, type, nd, n0, n1, norm)                                 \
        snprintf(nm, sizeof(nm), "blk.%u.%s", i, suffix);                   \
        if (list_add(l, nm, fit_type(type, n0), nd, n0, n1, norm)) {        \
            return -1;                                                      \
        }
        ADD("attn_norm.weight", base, 1, E, 1, 1);
        ADD("attn_q.weight", base, 2, E, Q, 0);
        if (a->qkv_bias) {
            ADD("attn_q.bias", base, 1, Q, 1, 0);
        }
        ADD("attn_k.weight", base, 2, E, KV, 0);
        if (a->qkv_bias) {
            ADD("attn_k.bias", base, 1, KV, 1, 0);
        }
        ADD("attn_v.weight", v_t, 2, E, KV, 0);
        if (a->qkv_bias) {
            ADD("attn_v.bias", base, 1, KV, 1, 0);
        }
        ADD("attn_output.weight", base, 2, Q, E, 0);
        ADD("ffn_norm.weight", base, 1, E, 1, 1);
        ADD("ffn_gate.weight", base, 2, E, F, 0);
        ADD("ffn_up.weight", base, 2, E, F, 0);
        ADD("ffn_down.weight", down_t, 2, F, E, 0);
#undef ADD
    }
    if (list_add(l, "output_norm.weight", base, 1, E, 1, 1)) {
        return -1;
    }
    if (!a->tied_output
        && list_add(l, "output.weight", fit_type(out, E), 2, E, V, 0))
    {
        return -1;
    }
    return 0;
}


/* ---- tokenizer copy ---- */

static int
key_is(const st_gguf_kv *kv, const char *s)
{
    return kv->key.len == strlen(s) && memcmp(kv->key.ptr, s, kv->key.len)
                                       == 0;
}


/* Copies tokenizer.* from vocab, padding the per-token arrays from
 * n_tok to n_vocab (extra tokens "<|extra_N|>", type UNUSED, score
 * -1000). */
static st_status
copy_tokenizer(st_gguf_writer *w, const st_gguf *vocab, uint64_t n_tok,
    uint32_t n_vocab, st_error *err)
{
    const st_gguf_kv *kv;
    uint64_t          i, j;
    st_status         rc = ST_OK;
    uint64_t          n_pad = n_vocab - n_tok;

    for (i = 0; i < st_gguf_n_kv(vocab) && rc == ST_OK; i++) {
        kv = st_gguf_kv_at(vocab, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0) {
            continue;
        }
        if (n_pad == 0 || kv->value.type != ST_GGUF_ARRAY
            || kv->value.arr_n != n_tok)
        {
            /* a special token id past the rows would index nothing */
            if (kv->key.len > 9
                && memcmp(kv->key.ptr + kv->key.len - 9, "_token_id", 9) == 0
                && kv->value.type == ST_GGUF_UINT32
                && kv->value.v.u64 >= n_vocab
                && kv->value.v.u64 != 0xffffffffu)
            {
                return st_error_set(err, ST_ERR_INVALID,
                                    "%.*s = %llu is past the %u rows",
                                    (int) kv->key.len, kv->key.ptr,
                                    (unsigned long long) kv->value.v.u64,
                                    n_vocab);
            }
            rc = st_gguf_writer_add_value(w, kv->key.ptr,
                                          (size_t) kv->key.len, &kv->value,
                                          err);
            continue;
        }
        if (key_is(kv, "tokenizer.ggml.tokens")) {
            const char **strs = malloc(n_vocab * sizeof(*strs));
            size_t      *lens = malloc(n_vocab * sizeof(*lens));
            char        *pad = malloc(n_pad * 24 + 1);
            char        *p = pad;
            char         key[64];

            if (strs == NULL || lens == NULL || pad == NULL) {
                rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
            } else {
                for (j = 0; j < n_tok; j++) {
                    st_gguf_str s = st_gguf_arr_str(&kv->value, j);
                    strs[j] = s.ptr;
                    lens[j] = (size_t) s.len;
                }
                for (j = 0; j < n_pad; j++) {
                    int n = snprintf(p, 24, "<|extra_%llu|>",
                                     (unsigned long long) j);
                    strs[n_tok + j] = p;
                    lens[n_tok + j] = (size_t) n;
                    p += n;
                }
                snprintf(key, sizeof(key), "%.*s", (int) kv->key.len,
                         kv->key.ptr);
                rc = st_gguf_writer_add_arr_str(w, key, strs, lens, n_vocab,
                                                err);
            }
            free(strs);
            free(lens);
            free(pad);
        } else if (key_is(kv, "tokenizer.ggml.scores")
                   || key_is(kv, "tokenizer.ggml.token_type"))
        {
            int      is_scores = key_is(kv, "tokenizer.ggml.scores");
            uint32_t es = 4;            /* f32 and i32 elements */
            uint8_t *buf;

            if (kv->value.arr_type != (is_scores ? ST_GGUF_FLOAT32
                                                 : ST_GGUF_INT32))
            {
                return st_error_set(err, ST_ERR_FORMAT,
                                    "%.*s has an unexpected element type",
                                    (int) kv->key.len, kv->key.ptr);
            }
            buf = malloc((size_t) n_vocab * es);
            if (buf == NULL) {
                return st_error_set(err, ST_ERR_NOMEM, "out of memory");
            }
            memcpy(buf, kv->value.arr_data, (size_t) n_tok * es);
            for (j = n_tok; j < n_vocab; j++) {
                if (is_scores) {
                    float f = SYNTH_PAD_SCORE;
                    memcpy(buf + j * es, &f, 4);
                } else {
                    int32_t t = SYNTH_TOKEN_UNUSED;
                    memcpy(buf + j * es, &t, 4);
                }
            }
            rc = st_gguf_writer_add_arr(w, is_scores ? "tokenizer.ggml.scores"
                                        : "tokenizer.ggml.token_type",
                                        is_scores ? ST_GGUF_FLOAT32
                                        : ST_GGUF_INT32, buf, n_vocab, err);
            free(buf);
        } else {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "cannot pad per-token array %.*s",
                                (int) kv->key.len, kv->key.ptr);
        }
    }
    return rc;
}


/* ---- data ---- */

static st_status
write_tensor(st_gguf_writer *w, const synth_tensor *t, uint64_t seed,
    float std, float *xbuf, uint8_t *qbuf, st_error *err)
{
    synth_rng rng;
    uint64_t  rows = t->ne[1], ne0 = t->ne[0], done = 0, chunk, k, n;
    uint64_t  row_bytes = st_row_bytes(t->type, ne0);
    st_status rc;

    synth_rng_init(&rng, seed, t->name);
    chunk = SYNTH_CHUNK_VALUES / ne0;
    if (chunk == 0) {
        chunk = 1;
    }
    while (done < rows) {
        n = rows - done < chunk ? rows - done : chunk;
        for (k = 0; k < n * ne0; k++) {
            xbuf[k] = (float) ((t->is_norm ? 1.0 : 0.0)
                               + std * synth_normal(&rng));
        }
        st_quantize_row(t->type, xbuf, qbuf, (int64_t) (n * ne0));
        rc = st_gguf_writer_write(w, qbuf, (size_t) (n * row_bytes), err);
        if (rc != ST_OK) {
            return rc;
        }
        done += n;
    }
    return ST_OK;
}


int
main(int argc, char **argv)
{
    const char         *arch_name = NULL, *type_name = "q8_0", *out = NULL;
    const char         *vocab_path = NULL;
    const synth_arch   *a = NULL;
    const synth_type   *ty = NULL;
    synth_arch          arch;
    unsigned long long  v, seed = 1, n_layer_arg = 0, ctx_arg = 0;
    float               std = 0.02f;
    char                vpath[1024], key[128], name[160];
    st_gguf            *vocab = NULL;
    st_gguf_writer     *w = NULL;
    const st_gguf_value *toks;
    synth_list          tl = {0};
    st_error            err = {0};
    st_status           rc = ST_OK;
    uint64_t            n_tok, n_params = 0, max_ne0 = 0, i;
    uint32_t            n_vocab, n_layer;
    float              *xbuf = NULL;
    uint8_t            *qbuf = NULL;
    double              t0 = now_s();
    int                 ai, ret = 1;

    for (ai = 1; ai < argc; ai++) {
        const char *o = argv[ai], *val = ai + 1 < argc ? argv[ai + 1] : NULL;

        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (val == NULL) {
            fprintf(stderr, "starling-synth: %s needs a value\n", o);
            usage(stderr);
            return 2;
        }
        ai++;
        if (strcmp(o, "--arch") == 0) {
            arch_name = val;
        } else if (strcmp(o, "--type") == 0) {
            type_name = val;
        } else if (strcmp(o, "-o") == 0) {
            out = val;
        } else if (strcmp(o, "--vocab") == 0) {
            vocab_path = val;
        } else if (strcmp(o, "--seed") == 0 && parse_u64(val, &v)) {
            seed = v;
        } else if (strcmp(o, "--n-layer") == 0 && parse_u64(val, &v)
                   && v >= 1 && v <= 1000)
        {
            n_layer_arg = v;
        } else if (strcmp(o, "--ctx") == 0 && parse_u64(val, &v)
                   && v >= 1 && v <= 0xffffffffull)
        {
            ctx_arg = v;
        } else if (strcmp(o, "--std") == 0) {
            char *end;
            std = strtof(val, &end);
            if (end == val || *end != '\0' || !(std > 0) || !isfinite(std)) {
                fprintf(stderr, "starling-synth: bad --std %s\n", val);
                return 2;
            }
        } else {
            fprintf(stderr, "starling-synth: bad option %s %s\n", o, val);
            usage(stderr);
            return 2;
        }
    }
    for (i = 0; arch_name && i < sizeof(synth_archs) / sizeof(*synth_archs);
         i++)
    {
        if (strcmp(arch_name, synth_archs[i].name) == 0) {
            a = &synth_archs[i];
        }
    }
    for (i = 0; i < sizeof(synth_types) / sizeof(*synth_types); i++) {
        if (strcmp(type_name, synth_types[i].name) == 0) {
            ty = &synth_types[i];
        }
    }
    if (a == NULL || ty == NULL || out == NULL) {
        fprintf(stderr, "starling-synth: need a known --arch, --type and "
                "-o\n");
        usage(stderr);
        return 2;
    }
    arch = *a;
    a = &arch;
    if (ctx_arg) {
        arch.n_ctx = (uint32_t) ctx_arg;
    }
    n_layer = n_layer_arg ? (uint32_t) n_layer_arg : a->n_layer;

    /* tokenizer */
    if (vocab_path == NULL) {
        if (a->default_vocab[0] == '@') {
            const char *root = getenv("ST_ROOT");
            snprintf(vpath, sizeof(vpath), "%s/%s", root ? root : ".",
                     a->default_vocab + 1);
        } else {
            const char *sh = getenv("ST_SHARED");
            snprintf(vpath, sizeof(vpath), "%s/%s", sh ? sh : "../shared",
                     a->default_vocab);
        }
        vocab_path = vpath;
    }
    if (st_gguf_open(&vocab, vocab_path, NULL, &err) != ST_OK) {
        fprintf(stderr, "starling-synth: vocab %s: %s\n", vocab_path,
                err.msg);
        goto done;
    }
    if (st_gguf_get_arr(vocab, "tokenizer.ggml.tokens", ST_GGUF_STRING,
                        &toks, &err) != ST_OK)
    {
        fprintf(stderr, "starling-synth: vocab %s: %s\n", vocab_path,
                err.msg);
        goto done;
    }
    n_tok = toks->arr_n;
    n_vocab = a->n_vocab ? a->n_vocab : (uint32_t) n_tok;
    if (n_tok > n_vocab || n_tok == 0) {
        /* Dropping tokens would leave merges and special ids pointing
         * past the embedding rows. */
        fprintf(stderr, "starling-synth: vocab %s has %llu tokens, more than "
                "%s's %u embedding rows\n", vocab_path,
                (unsigned long long) n_tok, a->name, n_vocab);
        goto done;
    }
    if (n_tok < n_vocab) {
        fprintf(stderr, "starling-synth: padding the token list from %llu to "
                "%u with <|extra_N|> (type unused)\n",
                (unsigned long long) n_tok, n_vocab);
    }

    if (build_tensors(&tl, a, n_layer, n_vocab, ty) != 0) {
        fprintf(stderr, "starling-synth: out of memory\n");
        goto done;
    }

    /* metadata, in llama.cpp's order: general, arch, tokenizer */
    if (st_gguf_writer_create(&w, &err) != ST_OK) {
        fprintf(stderr, "starling-synth: %s\n", err.msg);
        goto done;
    }
    snprintf(name, sizeof(name), "synthetic %s %s seed %llu", a->name,
             ty->name, seed);
    st_gguf_writer_add_str(w, "general.architecture", a->gguf_arch, &err);
    st_gguf_writer_add_str(w, "general.name", name, &err);
    st_gguf_writer_add_str(w, "general.description",
                           "random weights by starling-synth (shapes only; "
                           "not a trained model)", &err);
    st_gguf_writer_add_u32(w, "general.file_type", ty->file_type, &err);
    if (ty->type != ST_TYPE_F32 && ty->type != ST_TYPE_F16
        && ty->type != ST_TYPE_BF16)
    {
        st_gguf_writer_add_u32(w, "general.quantization_version", 2, &err);
    }
#define ARCH_KEY(suffix) \
    (snprintf(key, sizeof(key), "%s.%s", a->gguf_arch, suffix), key)
    st_gguf_writer_add_u32(w, ARCH_KEY("vocab_size"), n_vocab, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("context_length"), a->n_ctx, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("embedding_length"), a->n_embd, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("block_count"), n_layer, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("feed_forward_length"), a->n_ff, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count"), a->n_head,
                           &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count_kv"),
                           a->n_head_kv, &err);
    st_gguf_writer_add_f32(w, ARCH_KEY("rope.freq_base"), a->rope_base, &err);
    st_gguf_writer_add_u32(w, ARCH_KEY("rope.dimension_count"),
                           a->n_embd / a->n_head, &err);
    st_gguf_writer_add_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"),
                           a->rms_eps, &err);
#undef ARCH_KEY
    if (st_gguf_writer_error(w)->code != ST_OK) {
        fprintf(stderr, "starling-synth: %s\n", st_gguf_writer_error(w)->msg);
        goto done;
    }
    if (copy_tokenizer(w, vocab, n_tok, n_vocab, &err) != ST_OK) {
        fprintf(stderr, "starling-synth: tokenizer from %s: %s\n",
                vocab_path, err.msg);
        goto done;
    }

    for (i = 0; i < tl.n; i++) {
        const synth_tensor *t = &tl.t[i];
        rc = st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                       &err);
        if (rc != ST_OK) {
            fprintf(stderr, "starling-synth: %s\n", err.msg);
            goto done;
        }
        n_params += t->ne[0] * t->ne[1];
        if (t->ne[0] > max_ne0) {
            max_ne0 = t->ne[0];
        }
    }
    /* chunk buffers: about SYNTH_CHUNK_VALUES values, at least one row */
    {
        /* a chunk is SYNTH_CHUNK_VALUES / ne0 rows (at least one) and no
         * type takes more than 4 bytes a value */
        uint64_t vals = max_ne0 > SYNTH_CHUNK_VALUES ? max_ne0
                                                     : SYNTH_CHUNK_VALUES;
        xbuf = malloc(vals * sizeof(float));
        qbuf = malloc(vals * 4);
        if (xbuf == NULL || qbuf == NULL) {
            fprintf(stderr, "starling-synth: out of memory\n");
            goto done;
        }
    }

    if (st_gguf_writer_begin_data(w, out, &err) != ST_OK) {
        fprintf(stderr, "starling-synth: %s\n", err.msg);
        goto done;
    }
    for (i = 0; i < tl.n; i++) {
        if (write_tensor(w, &tl.t[i], seed, std, xbuf, qbuf, &err) != ST_OK) {
            fprintf(stderr, "starling-synth: %s\n", err.msg);
            goto done;
        }
    }
    if (st_gguf_writer_finish(w, &err) != ST_OK) {
        fprintf(stderr, "starling-synth: %s\n", err.msg);
        goto done;
    }
    printf("wrote %s: %s %s, %u layers, vocab %u, %zu tensors, "
           "%.3f M params, %llu bytes, %.1f s\n", out, a->name, ty->name,
           n_layer, n_vocab, tl.n, (double) n_params / 1e6,
           (unsigned long long) st_gguf_writer_file_bytes(w),
           now_s() - t0);
    ret = 0;

done:
    st_gguf_writer_free(w);      /* removes a partial file */
    st_gguf_close(vocab);
    free(tl.t);
    free(xbuf);
    free(qbuf);
    return ret;
}
