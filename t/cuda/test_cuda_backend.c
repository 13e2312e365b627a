/*
 * The whole CUDA backend (through the shim here, on a GPU under test-gpu)
 * against the CPU backend, in lockstep: both prefill a reference prompt,
 * then for ST_CUDA_TEST_STEPS steps (32 by default) each takes its argmax;
 * while they agree the id is fed to both.
 *
 * Expectations (measured, see src/backend/cuda/README.md):
 * - trained models (the two in models/): identical ids for every step; first
 *   logits within TOL_SHIPPED (max |d| / max(1, |cpu|)).
 * - synthetic random-weight models (../shared): their logits are chaotic
 *   (std ~24; a 1e-7 change in a matmul sum flips an F16 rounding in
 *   attention and can move a logit by ~2; the CPU backend itself leaves
 *   llama.cpp's ids on some prompts). The CPU's AVX-512 dot products add
 *   blocks in another order than its scalar reference, which the kernels
 *   follow, so bit equality is not available. Required: ids equal, or the
 *   first differing step explained: the CPU's own gap between its pick
 *   and the CUDA pick is no larger than the largest logit difference
 *   measured at that step; and first-step logits within TOL_SYNTH_RMS (rms) or within twice the
 *   CPU backend's own rms distance from llama.cpp's logits.
 * Also: the cuBLAS path (forced for every batch), batch invariance (two
 * sequences in one batch), the out-of-memory message, /health fields.
 */
#include "cuda_test.h"
#include "backend/backend.h"
#include "refjson.h"

#include <dirent.h>

#define KV_BLOCK_TOKENS 16

#define TOL_SHIPPED   1e-2      /* measured <= 3.8e-3 (F32), 1e-6 (Q8_0) */
#define TOL_SYNTH_RMS 0.05      /* logit std ~24; measured 2e-6 .. 0.04,
                                   and 0.41 on one chaotic prompt where the
                                   CPU is 0.3 from llama.cpp */
#define TOL_GEMM      1e-2      /* cuBLAS path, shipped models */

typedef struct {
    st_backend  *be;
    st_kv_cache  kv;
    st_kv_seq    seq[2];
} side;


static int
argmax(const float *l, uint32_t n)
{
    uint32_t i, best = 0;

    for (i = 1; i < n; i++) {
        if (l[i] > l[best]) {
            best = i;
        }
    }
    return (int) best;
}


static int
side_init(side *s, const st_model *m, int cuda, uint32_t max_tokens,
    uint32_t n_blocks, st_threadpool *tp, st_error *err)
{
    const st_hparams *hp = &m->hp;
    st_kv_geometry    geo;
    st_status         rc;

    memset(s, 0, sizeof(*s));
    geo.n_layer = hp->n_layer;
    geo.kv_dim = hp->n_head_kv * hp->head_dim;
    geo.block_tokens = KV_BLOCK_TOKENS;
    geo.n_blocks = n_blocks;
    rc = cuda ? st_backend_cuda_create(&s->be, m, max_tokens, &geo, 0, err)
              : st_backend_cpu_create(&s->be, m, max_tokens, tp, err);
    if (rc != ST_OK) {
        return -1;
    }
    rc = st_kv_cache_init(&s->kv, hp->n_layer, geo.kv_dim, KV_BLOCK_TOKENS,
                          n_blocks, !cuda, err);
    return rc == ST_OK ? 0 : -1;
}


static void
side_free(side *s)
{
    st_kv_seq_release(&s->kv, &s->seq[0]);
    st_kv_seq_release(&s->kv, &s->seq[1]);
    st_kv_seq_free(&s->seq[0]);
    st_kv_seq_free(&s->seq[1]);
    st_kv_cache_free(&s->kv);
    if (s->be) {
        s->be->free(s->be);
    }
}


static double
rms_diff(const float *a, const float *b, uint32_t n)
{
    double   sum = 0.0;
    uint32_t i;

    for (i = 0; i < n; i++) {
        sum += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
    }
    return sqrt(sum / n);
}


typedef struct {
    uint32_t same;          /* steps with equal ids */
    uint32_t steps;
    int      explained;     /* first difference within the measured noise */
    double   gap_cpu;       /* at the first difference: cpu[id_cpu] - cpu[id_gpu] */
    double   max_abs;       /* ... and max |gpu - cpu| there */
    int32_t  id_cpu, id_gpu;
    int32_t  ids[64];
} lockstep;


static st_status
side_step(side *s, const int32_t *tok, uint32_t n_tok, uint32_t pos0,
    float *logits, st_error *err)
{
    st_batch_entry b[256];
    uint32_t       i;

    for (i = 0; i < n_tok; i++) {
        b[i].token = tok[i];
        b[i].pos = pos0 + i;
        b[i].seq = &s->seq[0];
        b[i].want_logits = i + 1 == n_tok;
    }
    return s->be->run(s->be, &s->kv, b, n_tok, logits, err);
}


/* Prefill then lockstep greedy decode; first-step logits of both out. */
static int
run_lockstep(side *cpu, side *gpu, const st_model *m, const int32_t *prompt,
    uint32_t n_p, uint32_t steps, float *first_cpu, float *first_gpu,
    lockstep *ls, st_error *err)
{
    uint32_t V = m->hp.n_vocab, k;
    float   *lc = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    int      rc = -1;

    memset(ls, 0, sizeof(*ls));
    ls->steps = steps;
    if (lc == NULL || lg == NULL || n_p > 256 || steps > 64
        || st_kv_seq_reserve(&cpu->kv, &cpu->seq[0], n_p + steps) != ST_OK
        || st_kv_seq_reserve(&gpu->kv, &gpu->seq[0], n_p + steps) != ST_OK
        || side_step(cpu, prompt, n_p, 0, lc, err) != ST_OK
        || side_step(gpu, prompt, n_p, 0, lg, err) != ST_OK)
    {
        goto done;
    }
    memcpy(first_cpu, lc, sizeof(float) * V);
    memcpy(first_gpu, lg, sizeof(float) * V);
    for (k = 0; k < steps; k++) {
        int32_t a = argmax(lc, V), b = argmax(lg, V);

        if (a != b) {
            ls->id_cpu = a;
            ls->id_gpu = b;
            ls->gap_cpu = (double) lc[a] - lc[b];
            ls->max_abs = ct_max_abs(lg, lc, V);
            ls->explained = ls->gap_cpu <= ls->max_abs;
            break;
        }
        ls->ids[k] = a;
        ls->same++;
        if (k + 1 < steps
            && (side_step(cpu, &a, 1, n_p + k, lc, err) != ST_OK
                || side_step(gpu, &a, 1, n_p + k, lg, err) != ST_OK))
        {
            goto done;
        }
    }
    rc = 0;
done:
    free(lc);
    free(lg);
    return rc;
}


static uint32_t
env_u32(const char *name, uint32_t dflt)
{
    const char *v = getenv(name);

    return v ? (uint32_t) strtoul(v, NULL, 10) : dflt;
}


/* One model against its reference prompts (json files matching
 * dir/<stem>.prompt*.json); shipped = trained model, strict checks. */
static void
test_model(const char *model_path, const char *ref_dir, const char *stem,
    st_threadpool *tp, int shipped)
{
    st_model      *m = NULL;
    st_error       err = { 0 };
    DIR           *dir;
    struct dirent *de;
    uint32_t       steps = env_u32("ST_CUDA_TEST_STEPS", 32), V;
    int            n_files = 0;
    char           prefix[256];

    if (steps > 64) {
        steps = 64;
    }
    if (st_model_load(&m, model_path, NULL, &err) != ST_OK) {
        ok(0, "%s: load: %s", stem, err.msg);
        return;
    }
    V = m->hp.n_vocab;
    snprintf(prefix, sizeof(prefix), "%s.prompt", stem);
    dir = opendir(ref_dir);
    while (dir != NULL && (de = readdir(dir)) != NULL) {
        char      path[1024];
        char     *json;
        double   *num = NULL, *ref = NULL;
        long      n_p, n_ref, i;
        int32_t   prompt[256];
        float    *l_cpu, *l_gpu;
        side      cpu, gpu;
        uint32_t  n_blocks, m_ref = 0;
        lockstep  ls;
        double    rel, rms;

        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0
            || strstr(de->d_name, ".json") == NULL)
        {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", ref_dir, de->d_name);
        json = ref_read_file(path, NULL);
        n_p = json ? ref_numbers(json, "prompt_ids", &num) : -1;
        if (n_p <= 0 || n_p > 256) {
            ok(0, "%s: reading prompt_ids", de->d_name);
            free(json);
            free(num);
            continue;
        }
        n_files++;
        for (i = 0; i < n_p; i++) {
            prompt[i] = (int32_t) num[i];
        }
        l_cpu = malloc(sizeof(float) * V);
        l_gpu = malloc(sizeof(float) * V);
        n_blocks = 2 * (((uint32_t) n_p + steps) / KV_BLOCK_TOKENS + 2);

        if (side_init(&cpu, m, 0, (uint32_t) n_p, n_blocks, tp, &err) != 0
            || side_init(&gpu, m, 1, (uint32_t) n_p, n_blocks, tp, &err) != 0)
        {
            ok(0, "%s: backends: %s", de->d_name, err.msg);
        } else if (run_lockstep(&cpu, &gpu, m, prompt, (uint32_t) n_p, steps,
                                l_cpu, l_gpu, &ls, &err) != 0)
        {
            ok(0, "%s: generate: %s", de->d_name, err.msg);
        } else {
            n_ref = ref_numbers(json, "greedy_ids", &ref);
            for (i = 0; i < n_ref && i < (long) ls.same
                        && ref[i] == ls.ids[i]; i++) {
                m_ref++;
            }
            rel = ct_max_rel(l_gpu, l_cpu, V);
            rms = rms_diff(l_gpu, l_cpu, V);
            if (shipped) {
                ok(ls.same == steps, "%s: %u greedy ids equal the CPU "
                   "backend's (%u equal; %u equal llama.cpp's)", de->d_name,
                   steps, ls.same, m_ref);
                ok(rel <= TOL_SHIPPED, "%s: first-step logits within %.0e "
                   "(max rel %.3g, max abs %.3g, rms %.3g)", de->d_name,
                   TOL_SHIPPED, rel, ct_max_abs(l_gpu, l_cpu, V), rms);
            } else {
                ok(ls.same == steps || ls.explained, "%s: greedy ids equal "
                   "the CPU backend's for %u of %u steps%s", de->d_name,
                   ls.same, steps, ls.same == steps ? "" : ", then a flip "
                   "within the measured logit noise");
                if (ls.same < steps) {
                    diag("step %u: cpu %d, cuda %d; cpu gap %.4g, max "
                         "|cuda - cpu| %.4g", ls.same, ls.id_cpu, ls.id_gpu,
                         ls.gap_cpu, ls.max_abs);
                }
                /* llama.cpp's own logits, for scale: the CPU backend is
                 * as far from them on the chaotic prompts */
                double  *lf = NULL;
                long     n_lf = ref_numbers(json, "logits_first", &lf);
                double   rms_ref = -1.0;
                if (n_lf == (long) V) {
                    float *lff = malloc(sizeof(float) * V);
                    for (i = 0; i < (long) V; i++) {
                        lff[i] = (float) lf[i];
                    }
                    rms_ref = rms_diff(l_cpu, lff, V);
                    free(lff);
                }
                free(lf);
                ok(rms <= TOL_SYNTH_RMS || rms <= 2 * rms_ref, "%s: "
                   "first-step logits: rms |cuda - cpu| %.3g <= %.2g or <= "
                   "2x rms |cpu - llama.cpp| (%.3g); max abs %.3g",
                   de->d_name, rms, TOL_SYNTH_RMS, rms_ref,
                   ct_max_abs(l_gpu, l_cpu, V));
            }
            free(ref);
        }
        side_free(&cpu);
        side_free(&gpu);

        /* extra checks on the first prompt of the shipped models */
        if (shipped && n_files == 1) {
            side      c2, g2;
            float    *l_c2 = malloc(sizeof(float) * V);
            float    *l_g2 = malloc(sizeof(float) * V);
            lockstep  ls2;

            /* cuBLAS for every batch (prefill and decode) */
            setenv("ST_CUDA_GEMM_MIN_ROWS", "1", 1);
            if (side_init(&c2, m, 0, (uint32_t) n_p, n_blocks, tp, &err) == 0
                && side_init(&g2, m, 1, (uint32_t) n_p, n_blocks, tp,
                             &err) == 0
                && run_lockstep(&c2, &g2, m, prompt, (uint32_t) n_p, steps,
                                l_c2, l_g2, &ls2, &err) == 0)
            {
                rel = ct_max_rel(l_g2, l_c2, V);
                ok(rel <= TOL_GEMM && ls2.same == steps, "%s: cuBLAS path: "
                   "first-step logits within %.0e (max rel %.3g), %u of %u "
                   "greedy ids equal", de->d_name, TOL_GEMM, rel, ls2.same,
                   steps);
            } else {
                ok(0, "%s: cuBLAS path: %s", de->d_name, err.msg);
            }
            unsetenv("ST_CUDA_GEMM_MIN_ROWS");
            side_free(&c2);
            side_free(&g2);

            /* batch invariance: the prompt of two sequences in one
             * interleaved batch, each the same bytes as alone (matvec
             * path: cuBLAS results depend on the batch shape) */
            setenv("ST_CUDA_GEMM_MIN_ROWS", "0", 1);
            if (side_init(&g2, m, 1, (uint32_t) n_p * 2, n_blocks, tp,
                          &err) == 0)
            {
                st_batch_entry *b = calloc((size_t) n_p * 2, sizeof(*b));
                float          *two = malloc(sizeof(float) * V * 2);
                int             k;

                st_kv_seq_reserve(&g2.kv, &g2.seq[0], (uint32_t) n_p);
                st_kv_seq_reserve(&g2.kv, &g2.seq[1], (uint32_t) n_p);
                for (i = 0; i < 2 * n_p; i++) {
                    k = (int) (i % 2);
                    b[i].token = prompt[i / 2];
                    b[i].pos = (uint32_t) (i / 2);
                    b[i].seq = &g2.seq[k];
                    b[i].want_logits = i / 2 + 1 == n_p;
                }
                if (g2.be->run(g2.be, &g2.kv, b, (uint32_t) n_p * 2, two,
                               &err) == ST_OK)
                {
                    ok(memcmp(two, l_gpu, sizeof(float) * V) == 0
                       && memcmp(two + V, l_gpu, sizeof(float) * V) == 0,
                       "%s: two sequences in one interleaved batch give the "
                       "bytes of one alone", de->d_name);
                } else {
                    ok(0, "batch run: %s", err.msg);
                }
                free(b);
                free(two);
            } else {
                ok(0, "batch backend: %s", err.msg);
            }
            unsetenv("ST_CUDA_GEMM_MIN_ROWS");
            side_free(&g2);

            /* /health fields */
            if (side_init(&g2, m, 1, 4, 4, tp, &err) == 0) {
                const char *h = g2.be->health_json(g2.be);
                ok(h != NULL && strstr(h, "\"memory_type\":\"cuda\"")
                   && strstr(h, "\"device_name\":") && strstr(h,
                   "\"compute_capability\":") && strstr(h,
                   "\"cuda_runtime_version\":") && strstr(h,
                   "\"vram_bytes\":") && g2.be->device_bytes > 0,
                   "health_json: %s", h ? h : "(null)");
            }
            side_free(&g2);
            free(l_c2);
            free(l_g2);
        }

        free(l_cpu);
        free(l_gpu);
        free(json);
        free(num);
    }
    if (dir != NULL) {
        closedir(dir);
    }
    ok(n_files > 0, "%s: %d reference prompts", stem, n_files);
    st_model_free(m);
}


int
main(void)
{
    static const char *synth[] = {
        "synth-llama-F32", "synth-llama-Q4_K_M", "synth-llama-BF16-embQ4_0",
        "synth-qwen2-F16-embQ4_0"
    };
    st_threadpool *tp = NULL;
    st_error       err = { 0 };
    char           model[1024], refs[1024];
    size_t         i;
    uint64_t       launches, threads, switches;

    (void) ref_string;
    if (st_threadpool_create(&tp, 1, &err) != ST_OK) {
        printf("Bail out! threadpool: %s\n", err.msg);
        return 1;
    }

    snprintf(refs, sizeof(refs), "%s/t/data/reference/generation",
             tap_root_dir());
    snprintf(model, sizeof(model), "%s/models/stories260K.gguf",
             tap_root_dir());
    test_model(model, refs, "stories260K", tp, 1);
    snprintf(model, sizeof(model), "%s/models/TinyStories-656K-Q8_0.gguf",
             tap_root_dir());
    test_model(model, refs, "TinyStories-656K-Q8_0", tp, 1);

    snprintf(refs, sizeof(refs), "%s/reference/generation/synthetic",
             tap_shared_dir());
    for (i = 0; i < sizeof(synth) / sizeof(synth[0]); i++) {
        FILE *fp;
        snprintf(model, sizeof(model), "%s/models/synthetic/%s.gguf",
                 tap_shared_dir(), synth[i]);
        fp = fopen(model, "rb");
        if (fp == NULL) {
            skip("%s: not present (needs ../shared)", synth[i]);
            continue;
        }
        fclose(fp);
        test_model(model, refs, synth[i], tp, 0);
    }

#if !ST_CUDA_TEST_GPU
    /* the "does not fit" error names bytes needed and free */
    {
        st_model *m = NULL;
        side      s;

        snprintf(model, sizeof(model), "%s/models/stories260K.gguf",
                 tap_root_dir());
        setenv("ST_SHIM_VRAM_BYTES", "100000", 1);
        if (st_model_load(&m, model, NULL, &err) == ST_OK) {
            int rc = side_init(&s, m, 1, 8, 8, tp, &err);
            ok(rc != 0 && err.code == ST_ERR_NOMEM
               && strstr(err.msg, "100000 bytes free")
               && strstr(err.msg, "needs"),
               "too little device memory: %s", err.msg);
            side_free(&s);
        }
        unsetenv("ST_SHIM_VRAM_BYTES");
        st_model_free(m);
    }
#endif

    st_cuda_shim_counters(&launches, &threads, &switches);
    diag("shim: %llu launches, %llu threads, %llu fiber switches",
         (unsigned long long) launches, (unsigned long long) threads,
         (unsigned long long) switches);
    st_threadpool_free(tp);
    return done_testing();
}
