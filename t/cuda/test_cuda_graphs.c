/*
 * Decode-step CUDA graphs: a backend replaying graphs against one with
 * ST_CUDA_GRAPHS=0, fed the same batches. Several sequences decode with
 * changing batch sizes (1, 3, 5, 2 rows in turn), each at its own
 * position, with 4-token KV blocks so that rows cross block boundaries at
 * different steps; the logits of every step must be the same bytes, and
 * the graph backend must capture once per batch size. Then a batch with
 * one sequence on many rows outgrows the step-input buffer, which moves:
 * the next decode steps recapture (once per size) and still match.
 */
#include "cuda_test.h"
#include "backend/backend.h"
#include "backend/cuda/st_cuda_backend.h"

#define BLOCK_TOKENS 4
#define N_SEQ        5
#define MAX_TOKENS   16
#define N_BLOCKS     64

typedef struct {
    st_backend  *be;
    st_kv_cache  kv;
    st_kv_seq    seq[N_SEQ];
} side;


static int
side_init(side *s, const st_model *m, int graphs, st_error *err)
{
    st_kv_geometry geo;

    memset(s, 0, sizeof(*s));
    geo.n_layer = m->hp.n_layer;
    geo.kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    geo.block_tokens = BLOCK_TOKENS;
    geo.n_blocks = N_BLOCKS;
    if (graphs) {
        unsetenv("ST_CUDA_GRAPHS");
    } else {
        setenv("ST_CUDA_GRAPHS", "0", 1);
    }
    if (st_backend_cuda_create(&s->be, m, MAX_TOKENS, &geo, 0, err) != ST_OK)
    {
        unsetenv("ST_CUDA_GRAPHS");
        return -1;
    }
    unsetenv("ST_CUDA_GRAPHS");
    return st_kv_cache_init(&s->kv, geo.n_layer, geo.kv_dim, BLOCK_TOKENS,
                            N_BLOCKS, 0, err) == ST_OK ? 0 : -1;
}


static void
side_free(side *s)
{
    int i;

    for (i = 0; i < N_SEQ; i++) {
        st_kv_seq_release(&s->kv, &s->seq[i]);
        st_kv_seq_free(&s->seq[i]);
    }
    st_kv_cache_free(&s->kv);
    if (s->be) {
        s->be->free(s->be);
    }
}


/* The same batch on both sides (entries name sequence indexes through
 * seq_idx); logits of both out. */
static int
run_both(side *a, side *b, const int32_t *tok, const uint32_t *pos,
    const int *seq_idx, const int *want, uint32_t n, float *la, float *lb,
    st_error *err)
{
    st_batch_entry ea[MAX_TOKENS], eb[MAX_TOKENS];
    uint32_t       i;

    for (i = 0; i < n; i++) {
        int k = seq_idx[i];

        if (st_kv_seq_reserve(&a->kv, &a->seq[k], pos[i] + 1) != ST_OK
            || st_kv_seq_reserve(&b->kv, &b->seq[k], pos[i] + 1) != ST_OK)
        {
            snprintf(err->msg, sizeof(err->msg), "KV reserve failed");
            return -1;
        }
        ea[i].token = eb[i].token = tok[i];
        ea[i].pos = eb[i].pos = pos[i];
        ea[i].want_logits = eb[i].want_logits = want[i];
        ea[i].seq = &a->seq[k];
        eb[i].seq = &b->seq[k];
    }
    if (a->be->run(a->be, &a->kv, ea, n, la, err) != ST_OK
        || b->be->run(b->be, &b->kv, eb, n, lb, err) != ST_OK)
    {
        return -1;
    }
    return 0;
}


static int32_t
argmax(const float *l, uint32_t n)
{
    uint32_t i, best = 0;

    for (i = 1; i < n; i++) {
        if (l[i] > l[best]) {
            best = i;
        }
    }
    return (int32_t) best;
}


static void
test_model(const char *path, uint32_t steps)
{
    static const uint32_t sizes[] = { 1, 3, 5, 2 };
    st_model  *m = NULL;
    st_error   err = { 0 };
    side       a, b;
    uint32_t   V, s, i, k, n_pos[N_SEQ], pos[MAX_TOKENS], n, bad_step = 0;
    uint32_t   bad = 0, max_pos = 0, crossings = 0;
    int32_t    next[N_SEQ], tok[MAX_TOKENS];
    int        seq_idx[MAX_TOKENS], want[MAX_TOKENS], on;
    float     *la, *lb;
    uint64_t   cap = 0, rep = 0, cap0, rep0, cap_off = 0, rep_off = 0;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    if (st_model_load(&m, path, NULL, &err) != ST_OK) {
        ok(0, "%s: load: %s", name, err.msg);
        return;
    }
    V = m->hp.n_vocab;
    la = malloc(sizeof(float) * V * MAX_TOKENS);
    lb = malloc(sizeof(float) * V * MAX_TOKENS);
    if (side_init(&a, m, 0, &err) != 0 || side_init(&b, m, 1, &err) != 0) {
        ok(0, "%s: backends: %s", name, err.msg);
        goto done;
    }

    /* prefill: sequence k gets a prompt of 2 + 3k tokens (not a graph:
     * only the last row wants logits) */
    for (k = 0; k < N_SEQ; k++) {
        n = 2 + 3 * k;
        for (i = 0; i < n; i++) {
            tok[i] = (int32_t) ((7 + 31 * i + 13 * k) % V);
            pos[i] = i;
            seq_idx[i] = (int) k;
            want[i] = i + 1 == n;
        }
        if (run_both(&a, &b, tok, pos, seq_idx, want, n, la, lb, &err) != 0) {
            ok(0, "%s: prefill: %s", name, err.msg);
            goto done;
        }
        bad += memcmp(la, lb, sizeof(float) * V) != 0;
        next[k] = argmax(la, V);
        n_pos[k] = n;
    }
    ok(bad == 0, "%s: prefills equal with and without graphs", name);

    /* decode: batch sizes cycle, rows are sequences 0..B-1 */
    bad = 0;
    for (s = 0; s < steps; s++) {
        n = sizes[s % 4];
        for (i = 0; i < n; i++) {
            tok[i] = next[i];
            pos[i] = n_pos[i];
            seq_idx[i] = (int) i;
            want[i] = 1;
            crossings += pos[i] % BLOCK_TOKENS == 0;
        }
        if (run_both(&a, &b, tok, pos, seq_idx, want, n, la, lb, &err) != 0) {
            ok(0, "%s: decode step %u: %s", name, s, err.msg);
            goto done;
        }
        if (memcmp(la, lb, sizeof(float) * V * n) != 0) {
            if (bad++ == 0) {
                bad_step = s;
            }
        }
        for (i = 0; i < n; i++) {
            next[i] = argmax(la + (size_t) i * V, V);
            n_pos[i]++;
            max_pos = n_pos[i] > max_pos ? n_pos[i] : max_pos;
        }
    }
    ok(bad == 0, "%s: %u decode steps (batch sizes 1, 3, 5, 2; positions "
       "up to %u; %u rows at a new KV block): graph replay gives the "
       "non-graph logits' bytes (%u steps differ, first %u)", name, steps,
       max_pos, crossings, bad, bad_step);
    on = st_cuda_backend_graph_stats(b.be, &cap, &rep);
    ok(on == 1 && cap == 4 && rep == steps, "%s: one capture per batch size "
       "(%llu captures, %llu replays of %u steps)", name,
       (unsigned long long) cap, (unsigned long long) rep, steps);
    on = st_cuda_backend_graph_stats(a.be, &cap_off, &rep_off);
    ok(on == 0 && cap_off == 0 && rep_off == 0,
       "%s: ST_CUDA_GRAPHS=0 captures nothing", name);

    /* sequences 0 and 1 to 48 positions (12 blocks) at least, by prefill
     * chunks (no graph), whatever the number of steps */
    bad = 0;
    for (k = 0; k < 2; k++) {
        while (n_pos[k] < 48) {
            n = 48 - n_pos[k] < MAX_TOKENS ? 48 - n_pos[k] : MAX_TOKENS;
            for (i = 0; i < n; i++) {
                tok[i] = i == 0 ? next[k] : (int32_t) ((5 + 17 * i) % V);
                pos[i] = n_pos[k] + i;
                seq_idx[i] = (int) k;
                want[i] = i + 1 == n;
            }
            if (run_both(&a, &b, tok, pos, seq_idx, want, n, la, lb,
                         &err) != 0)
            {
                ok(0, "%s: extend: %s", name, err.msg);
                goto done;
            }
            bad += memcmp(la, lb, sizeof(float) * V) != 0;
            next[k] = argmax(la, V);
            n_pos[k] += n;
        }
    }

    /* sequences 0 and 1 alternating on 16 rows (8 tokens each, all
     * logits): the block tables are sent once per change of sequence,
     * 16 x 12 blocks, and outgrow the step-input buffer */
    n = MAX_TOKENS;
    for (i = 0; i < n; i++) {
        k = i % 2;
        tok[i] = next[k];
        pos[i] = n_pos[k] + i / 2;
        seq_idx[i] = (int) k;
        want[i] = 1;
    }
    if (run_both(&a, &b, tok, pos, seq_idx, want, n, la, lb, &err) != 0) {
        ok(0, "%s: interleaved batch: %s", name, err.msg);
        goto done;
    }
    ok(bad == 0 && memcmp(la, lb, sizeof(float) * V * n) == 0,
       "%s: prefill chunks and an interleaved %u-row batch equal", name, n);
    n_pos[0] += n / 2;
    n_pos[1] += n / 2;
    next[0] = argmax(la + (size_t) (n - 2) * V, V);
    next[1] = argmax(la + (size_t) (n - 1) * V, V);

    /* the buffer moved: the next steps recapture, once per size */
    st_cuda_backend_graph_stats(b.be, &cap0, &rep0);
    bad = 0;
    for (s = 0; s < 8; s++) {
        n = sizes[s % 4];
        for (i = 0; i < n; i++) {
            tok[i] = next[i];
            pos[i] = n_pos[i];
            seq_idx[i] = (int) i;
            want[i] = 1;
        }
        if (run_both(&a, &b, tok, pos, seq_idx, want, n, la, lb, &err) != 0) {
            ok(0, "%s: decode after regrow: %s", name, err.msg);
            goto done;
        }
        bad += memcmp(la, lb, sizeof(float) * V * n) != 0;
        for (i = 0; i < n; i++) {
            next[i] = argmax(la + (size_t) i * V, V);
            n_pos[i]++;
        }
    }
    st_cuda_backend_graph_stats(b.be, &cap, &rep);
    ok(bad == 0 && cap - cap0 == 4 && rep - rep0 == 8,
       "%s: after the step-input buffer moved: %llu recaptures, %llu "
       "replays, %u steps differ", name, (unsigned long long) (cap - cap0),
       (unsigned long long) (rep - rep0), bad);

done:
    side_free(&a);
    side_free(&b);
    free(la);
    free(lb);
    st_model_free(m);
}


int
main(void)
{
    char     path[1024];
    uint32_t steps = 40;
    uint64_t launches, threads, switches;

    if (getenv("ST_CUDA_TEST_STEPS") != NULL) {
        steps = (uint32_t) strtoul(getenv("ST_CUDA_TEST_STEPS"), NULL, 10);
    }
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf",
             tap_root_dir());
    test_model(path, steps);
    snprintf(path, sizeof(path), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    test_model(path, steps);

    st_cuda_shim_counters(&launches, &threads, &switches);
    diag("shim: %llu launches, %llu threads, %llu fiber switches",
         (unsigned long long) launches, (unsigned long long) threads,
         (unsigned long long) switches);
    return done_testing();
}
