/*
 * Embedding requests (engine_embed.c) on the shipped models:
 *   - a reference path: the CPU forward run one token at a time, each
 *     row's final hidden state from the backend's hidden hook, checked to
 *     be the output-normed state by reproducing that row's logits through
 *     the output matrix;
 *   - the engine's embedding (prompt prefilled in chunks through the
 *     normal step loop) equals the mean (cls: first, last: last row) of
 *     the reference rows, L2-normalised unless asked not to;
 *   - batch invariance: the same vector, bit for bit, alone, batched with
 *     other embeddings and generating sequences, and with another prefill
 *     chunk size;
 *   - the prompt may fill the context, one more token is refused; the KV
 *     blocks are free once it finished; no tokens are generated;
 *   - the model's declared pooling (GGUF <arch>.pooling_type, written into
 *     a copy of the file): 2 (cls) and 3 (last) give the explicit
 *     poolings' vectors, 0 (none) and 4 (rank) are refused naming them.
 */
#include "tap.h"
#include "starling/st_engine.h"
#include "model/model.h"
#include "backend/cpu/forward.h"
#include "quant/quant.h"
#include "gguf/gguf.h"
#include "gguf_writer.h"

#include <math.h>
#include <unistd.h>

#define MAX_POS  64
#define MAX_EMBD 512

static const char *texts[] = {
    "Once upon a time",
    "The cat sat on the mat and looked at the big red ball",
    "Lily",
};


static int
tokenize(st_engine *e, const char *text, st_tokens *toks)
{
    st_error err;

    memset(toks, 0, sizeof(*toks));
    if (st_tokenize(st_engine_tokenizer(e), text, strlen(text), 1, 1, toks,
                    &err) != ST_OK)
    {
        diag("tokenize: %s", err.msg);
        return 0;
    }
    return 1;
}


/* Reference rows: hidden (n, E) one token per forward run; also checks
 * each row against the logits of its run. */
static int
reference_rows(const char *path, const int32_t *ids, uint32_t n,
    float *hidden, uint32_t *E_out, double *max_logit_err)
{
    st_model       *m = NULL;
    st_forward     *f = NULL;
    st_kv_cache     kv;
    st_kv_seq       seq;
    st_batch_entry  b;
    st_error        err;
    float          *logits = NULL;
    void           *qrow = NULL;
    uint32_t        i, v, E = 0;
    int             good = 0;
    const st_type_traits *tr, *dtr;

    memset(&kv, 0, sizeof(kv));
    memset(&seq, 0, sizeof(seq));
    *max_logit_err = 0.0;
    if (st_model_load(&m, path, NULL, &err) != ST_OK
        || st_forward_create(&f, m, 1, NULL, &err) != ST_OK
        || st_kv_cache_init(&kv, m->hp.n_layer,
                            m->hp.n_head_kv * m->hp.head_dim, 16,
                            MAX_POS / 16, 1, &err) != ST_OK
        || st_kv_seq_reserve(&kv, &seq, MAX_POS) != ST_OK)
    {
        diag("reference %s: %s", path, err.msg);
        goto done;
    }
    E = m->hp.n_embd;
    logits = malloc(sizeof(float) * m->hp.n_vocab);
    /* room for E values in any vec_dot type (at most 4 bytes a value) */
    qrow = malloc(sizeof(float) * E + 64);
    tr = st_type_traits_get(m->output.type);
    dtr = tr ? st_type_traits_get(tr->vec_dot_type) : NULL;
    if (E > MAX_EMBD || n > MAX_POS || !logits || !qrow || !tr
        || !tr->vec_dot || !dtr || !dtr->from_float)
    {
        diag("reference: unexpected model shape");
        goto done;
    }
    for (i = 0; i < n; i++) {
        b.token = ids[i];
        b.pos = i;
        b.seq = &seq;
        b.want_logits = 1;
        b.want_hidden = 1;
        if (st_forward_run(f, &kv, &b, 1, logits, &err) != ST_OK
            || st_forward_hidden(f, &b, 1, hidden + (size_t) i * E, &err)
               != ST_OK)
        {
            diag("reference forward: %s", err.msg);
            goto done;
        }
        /* logits[v] = output row v . hidden, by the reference dot of the
         * weight type (the hidden row quantized as the matmul does): the
         * hook returns the state the head reads */
        dtr->from_float(hidden + (size_t) i * E, qrow, E);
        for (v = 0; v < m->hp.n_vocab; v++) {
            float  dot;
            double a;

            tr->vec_dot(E, &dot, (const char *) m->output.data
                                 + (size_t) v * m->output.row_bytes, qrow);
            a = fabs((double) dot - logits[v]) / (1.0 + fabs(dot));
            if (a > *max_logit_err) {
                *max_logit_err = a;
            }
        }
    }
    good = 1;
done:
    *E_out = E;
    free(logits);
    free(qrow);
    st_kv_seq_free(&seq);
    st_kv_cache_free(&kv);
    st_forward_free(f);
    st_model_free(m);
    return good;
}


static uint32_t
e_n_embd(const st_engine *e)
{
    return st_engine_info(e)->n_embd;
}


static st_engine *
make_engine(const char *path, uint32_t step_tokens, uint32_t n_ctx)
{
    st_engine_params p;
    st_engine       *e;
    st_error         err;

    st_engine_params_default(&p);
    p.path = path;
    p.step_tokens = step_tokens;
    p.n_threads = 2;
    p.n_ctx = n_ctx;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        diag("engine: %s", err.msg);
        return NULL;
    }
    return e;
}


static st_seq *
submit_embed(st_engine *e, const st_tokens *t, st_pooling pool, int norm,
    st_error *err)
{
    st_request req;
    st_seq    *s = NULL;

    memset(&req, 0, sizeof(req));
    req.prompt = t->ids;
    req.n_prompt = t->n;
    req.embedding = 1;
    req.pooling = pool;
    req.normalize = norm;
    if (st_engine_submit(e, &req, &s, err) != ST_OK) {
        return NULL;
    }
    return s;
}


static st_seq *
submit_gen(st_engine *e, const st_tokens *t)
{
    st_request req;
    st_seq    *s = NULL;
    st_error   err;

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 0.0f;
    req.prompt = t->ids;
    req.n_prompt = t->n;
    req.max_tokens = 12;
    req.ignore_eos = 1;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        diag("submit: %s", err.msg);
    }
    return s;
}


/* Steps until every seq finished; copies each embedding to vec. */
static int
run_all(st_engine *e, st_seq **s, size_t n, float (*vec)[MAX_EMBD],
    uint32_t *n_gen)
{
    st_seq_output out;
    st_error      err;
    size_t        i, done = 0;
    int           guard = 0;
    char          fin[16] = {0};

    while (done < n && guard++ < 1000) {
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (fin[i]) {
                continue;
            }
            st_seq_take(s[i], &out);
            if (out.finish == ST_FINISH_NONE) {
                continue;
            }
            fin[i] = 1;
            done++;
            if (n_gen) {
                n_gen[i] = out.n_generated;
            }
            if (vec && out.embedding) {
                memcpy(vec[i], out.embedding, sizeof(float) * out.n_embd);
            } else if (vec && n_gen == NULL) {
                diag("seq %zu finished %s: %s", i,
                     st_finish_reason_str(out.finish), out.error);
            }
        }
    }
    return done == n;
}


static void
embeddings(const char *path)
{
    static float ref[MAX_POS * MAX_EMBD];
    float        got[8][MAX_EMBD], want[MAX_EMBD];
    st_engine   *e = NULL;
    st_tokens    t[3];
    st_seq      *s[8];
    st_error     err;
    uint32_t     E, i, d, k, n_gen[8];
    double       lerr, acc[MAX_EMBD], n2, maxd;
    static const struct { st_pooling p; int norm; const char *name; }
                 modes[] = {
        { ST_POOLING_MODEL, 1, "model's (mean), normalised" },
        { ST_POOLING_MEAN, 0, "mean, not normalised" },
        { ST_POOLING_CLS, 1, "cls" },
        { ST_POOLING_LAST, 1, "last" },
    };
    st_engine_stats st;

    e = make_engine(path, 5, 64);
    if (e == NULL || !tokenize(e, texts[1], &t[1])) {
        ok(0, "%s: engine", path);
        st_engine_free(e);
        return;
    }
    tokenize(e, texts[0], &t[0]);
    tokenize(e, texts[2], &t[2]);
    if (!reference_rows(path, t[1].ids, t[1].n, ref, &E, &lerr)) {
        ok(0, "%s: reference rows", path);
        goto done;
    }
    ok(lerr < 1e-5, "%s: hidden rows reproduce the logits through the "
       "output matrix (max rel. err %.2g)", path, lerr);

    for (k = 0; k < sizeof(modes) / sizeof(modes[0]); k++) {
        s[0] = submit_embed(e, &t[1], modes[k].p, modes[k].norm, &err);
        if (s[0] == NULL || !run_all(e, s, 1, got, n_gen)) {
            ok(0, "%s: %s embedding ran", path, modes[k].name);
            continue;
        }
        st_seq_release(e, s[0]);
        memset(acc, 0, sizeof(acc));
        if (modes[k].p == ST_POOLING_CLS || modes[k].p == ST_POOLING_LAST) {
            i = modes[k].p == ST_POOLING_CLS ? 0 : t[1].n - 1;
            for (d = 0; d < E; d++) {
                acc[d] = ref[(size_t) i * E + d];
            }
        } else {
            for (i = 0; i < t[1].n; i++) {
                for (d = 0; d < E; d++) {
                    acc[d] += ref[(size_t) i * E + d];
                }
            }
            for (d = 0; d < E; d++) {
                acc[d] /= t[1].n;
            }
        }
        n2 = 0.0;
        for (d = 0; d < E; d++) {
            n2 += acc[d] * acc[d];
        }
        maxd = 0.0;
        for (d = 0; d < E; d++) {
            want[d] = (float) (modes[k].norm ? acc[d] / sqrt(n2) : acc[d]);
            if (fabs(want[d] - got[0][d]) > maxd) {
                maxd = fabs(want[d] - got[0][d]);
            }
        }
        /* chunked batched prefill vs one token per run: same math, the
         * kernels may group sums differently */
        ok(maxd < 1e-4 * (modes[k].norm ? 1.0 : sqrt(n2)) && n_gen[0] == 0,
           "%s: %s embedding of %u tokens equals the reference (max abs "
           "diff %.2g, %u generated)", path, modes[k].name,
           (unsigned) t[1].n, maxd, n_gen[0]);
    }
    n2 = 0.0;
    for (d = 0; d < E; d++) {
        n2 += (double) got[0][d] * got[0][d];     /* "last", normalised */
    }
    ok(fabs(n2 - 1.0) < 1e-5, "%s: normalised vector has unit norm (%.8f)",
       path, n2);

    /* batch invariance: alone (already in want via a fresh run), then
     * with others, then with another chunk size */
    s[0] = submit_embed(e, &t[1], ST_POOLING_MODEL, 1, &err);
    run_all(e, s, 1, got, NULL);
    st_seq_release(e, s[0]);
    memcpy(want, got[0], sizeof(float) * E);

    s[0] = submit_gen(e, &t[0]);
    s[1] = submit_embed(e, &t[0], ST_POOLING_MODEL, 1, &err);
    s[2] = submit_embed(e, &t[1], ST_POOLING_MODEL, 1, &err);
    s[3] = submit_gen(e, &t[2]);
    s[4] = submit_embed(e, &t[2], ST_POOLING_MODEL, 1, &err);
    s[5] = submit_embed(e, &t[1], ST_POOLING_MODEL, 1, &err);
    if (!run_all(e, s, 6, got, n_gen)) {
        ok(0, "%s: mixed batch ran", path);
        goto done;
    }
    ok(memcmp(got[2], want, sizeof(float) * E) == 0
       && memcmp(got[5], want, sizeof(float) * E) == 0,
       "%s: embedding bit-identical alone and batched with generating "
       "sequences and other embeddings", path);
    ok(n_gen[0] == 12 && n_gen[3] == 12 && n_gen[1] == 0,
       "%s: generating neighbours ran to their length (%u, %u)", path,
       n_gen[0], n_gen[3]);
    for (i = 0; i < 6; i++) {
        st_seq_release(e, s[i]);
    }
    st_engine_get_stats(e, &st);
    ok(st.kv_blocks_free == st.kv_blocks_total && st.seqs_active == 0,
       "%s: KV blocks all free after the embeddings (%u/%u)", path,
       st.kv_blocks_free, st.kv_blocks_total);
    st_engine_free(e);

    e = make_engine(path, 512, 64);
    if (e == NULL) {
        ok(0, "%s: engine 2", path);
        goto done;
    }
    s[0] = submit_embed(e, &t[2], ST_POOLING_MODEL, 1, &err);
    s[1] = submit_embed(e, &t[1], ST_POOLING_MODEL, 1, &err);
    run_all(e, s, 2, got, NULL);
    ok(memcmp(got[1], want, sizeof(float) * E) == 0,
       "%s: bit-identical with the whole prompt in one step", path);
    st_seq_release(e, s[0]);
    st_seq_release(e, s[1]);
    st_engine_free(e);

    /* context limits: 64 tokens fit, 65 do not */
    e = make_engine(path, 512, 64);
    if (e != NULL) {
        int32_t    ids[65];
        st_tokens  big;

        for (i = 0; i < 65; i++) {
            ids[i] = t[1].ids[i % t[1].n];
        }
        big.ids = ids;
        big.n = 64;
        s[0] = submit_embed(e, &big, ST_POOLING_MODEL, 1, &err);
        ok(s[0] != NULL && run_all(e, s, 1, got, NULL),
           "%s: an input filling the context is embedded", path);
        if (s[0]) {
            st_seq_release(e, s[0]);
        }
        big.n = 65;
        s[0] = submit_embed(e, &big, ST_POOLING_MODEL, 1, &err);
        ok(s[0] == NULL && err.code == ST_ERR_CONTEXT,
           "%s: one token more is refused: %s", path, err.msg);
        big.n = 0;
        s[0] = submit_embed(e, &big, ST_POOLING_MODEL, 1, &err);
        ok(s[0] == NULL && err.code == ST_ERR_INVALID,
           "%s: empty input refused: %s", path, err.msg);
        s[0] = submit_embed(e, &t[1], (st_pooling) 9, 1, &err);
        ok(s[0] == NULL && err.code == ST_ERR_INVALID,
           "%s: bad pooling refused: %s", path, err.msg);
    }
done:
    st_engine_free(e);
    for (i = 0; i < 3; i++) {
        free(t[i].ids);
    }
}


/* src (a llama file) with llama.pooling_type = type added, to dst. */
static int
with_pooling(const char *src, const char *dst, uint32_t type)
{
    st_gguf        *g = NULL;
    st_gguf_writer *w = NULL;
    st_error        err;
    uint64_t        i;
    int             good;

    if (st_gguf_open(&g, src, NULL, &err) != ST_OK
        || st_gguf_writer_create(&w, &err) != ST_OK)
    {
        diag("rewrite %s: %s", src, err.msg);
        st_gguf_close(g);
        return 0;
    }
    for (i = 0; i < st_gguf_n_kv(g); i++) {
        const st_gguf_kv *kv = st_gguf_kv_at(g, i);

        st_gguf_writer_add_value(w, kv->key.ptr, kv->key.len, &kv->value,
                                 &err);
    }
    st_gguf_writer_add_u32(w, "llama.pooling_type", type, &err);
    for (i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);

        st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                  &err);
    }
    st_gguf_writer_begin_data(w, dst, &err);
    for (i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);

        st_gguf_writer_write(w, t->data, t->nbytes, &err);
    }
    good = st_gguf_writer_finish(w, &err) == ST_OK;
    if (!good) {
        diag("rewrite %s: %s", src, err.msg);
    }
    st_gguf_writer_free(w);
    st_gguf_close(g);
    return good;
}


/* One embedding of text on engine e with pooling p; 1 if it ran. */
static int
embed_one(st_engine *e, const char *text, st_pooling p, float *out,
    st_error *err)
{
    st_tokens  t;
    st_seq    *s;
    float      vec[1][MAX_EMBD];
    int        good = 0;

    if (!tokenize(e, text, &t)) {
        return 0;
    }
    s = submit_embed(e, &t, p, 1, err);
    if (s != NULL && run_all(e, &s, 1, vec, NULL)) {
        memcpy(out, vec[0], sizeof(float) * e_n_embd(e));
        good = 1;
    }
    if (s != NULL) {
        st_seq_release(e, s);
    }
    free(t.ids);
    return good;
}


static void
declared_pooling(const char *path)
{
    static const struct { uint32_t type; st_pooling same; const char *want; }
                 cases[] = {
        { 1, ST_POOLING_MEAN, NULL },
        { 2, ST_POOLING_CLS, NULL },
        { 3, ST_POOLING_LAST, NULL },
        { 0, ST_POOLING_MODEL, "pooling type 0 (none)" },
        { 4, ST_POOLING_MODEL, "pooling type 4 (rank)" },
    };
    char        dst[256];
    float       a[MAX_EMBD], b[MAX_EMBD];
    st_engine  *e, *ref;
    st_error    err;
    size_t      k;

    ref = make_engine(path, 512, 64);
    if (ref == NULL) {
        ok(0, "declared pooling: engine");
        return;
    }
    snprintf(dst, sizeof(dst), "/tmp/st_test_embed_%ld.gguf", (long) getpid());
    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        if (!with_pooling(path, dst, cases[k].type)
            || (e = make_engine(dst, 512, 64)) == NULL)
        {
            ok(0, "pooling_type %u: file rewritten and loaded",
               cases[k].type);
            continue;
        }
        memset(&err, 0, sizeof(err));
        if (cases[k].want == NULL) {
            ok(embed_one(e, texts[1], ST_POOLING_MODEL, a, &err)
               && embed_one(ref, texts[1], cases[k].same, b, &err)
               && memcmp(a, b, sizeof(float) * e_n_embd(e)) == 0,
               "pooling_type %u: the model's pooling is the explicit one's "
               "vector", cases[k].type);
        } else {
            ok(!embed_one(e, texts[1], ST_POOLING_MODEL, a, &err)
               && err.code == ST_ERR_UNSUPPORTED
               && strstr(err.msg, cases[k].want) != NULL,
               "pooling_type %u: refused naming it (%s)", cases[k].type,
               err.msg);
            ok(embed_one(e, texts[1], ST_POOLING_MEAN, a, &err),
               "pooling_type %u: an explicit pooling still works",
               cases[k].type);
        }
        st_engine_free(e);
        unlink(dst);
    }
    st_engine_free(ref);
}


int
main(void)
{
    char m1[1024], m2[1024];

    snprintf(m1, sizeof(m1), "%s/models/stories260K.gguf", tap_root_dir());
    snprintf(m2, sizeof(m2), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    embeddings(m1);
    embeddings(m2);
    declared_pooling(m1);
    return done_testing();
}
