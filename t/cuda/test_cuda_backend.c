/*
 * The whole CUDA backend (through the shim here, on a GPU under test-gpu)
 * against the CPU backend, in lockstep: both prefill a reference prompt,
 * then for ST_CUDA_TEST_STEPS steps (32 by default) each takes its argmax;
 * while they agree the id is fed to both.
 *
 * Expectations (measured, see src/backend/cuda/README.md):
 * - trained models (the two in models/): identical ids for every step; first
 *   logits within TOL_SHIPPED (max |d| / max(1, |cpu|)), every step's
 *   within TOL_STEP_F32 / TOL_STEP_Q8_0 (max |d|).
 * - synthetic random-weight models (../shared): their logits are chaotic
 *   (std ~24; a 1e-7 change in a matmul sum flips an F16 rounding in
 *   attention and can move a logit by ~2; the CPU backend itself leaves
 *   llama.cpp's ids on some prompts). The CPU's AVX-512 dot products add
 *   blocks in another order than its scalar reference, which the kernels
 *   follow, so bit equality is not available. Required, with the fixed
 *   per-model tolerances of synth_tols: logits within them at every
 *   step, ids equal, or a first differing step where the CPU's own gap
 *   between its pick and the CUDA pick is below the fixed top-5
 *   tolerance; first-step rms within its bound.
 * Also: the cuBLAS path (forced for every batch), batch invariance (two
 * sequences in one batch), the out-of-memory message, /health fields.
 */
#include "cuda_test.h"
#include "backend/backend.h"
#include "refjson.h"

#include <dirent.h>

#define KV_BLOCK_TOKENS 16

#define TOL_SHIPPED   1e-2      /* measured <= 3.8e-3 (F32), 1e-6 (Q8_0) */
#define TOL_GEMM      1e-2      /* cuBLAS path, shipped models */

/* Shipped models, every lockstep step: max |cuda - cpu| over the whole
 * vocabulary (the same bounds as test_conformance's against llama.cpp).
 * Measured: 4.4e-3 (F32); Q8_0 ~2e-6, except 0.135 at step 17 of prompt 2
 * where one Q8_0 activation rounding flips (0.067 on the top-5 ids, and
 * the CUDA logits are 0.067 from llama.cpp's there). */
#define TOL_STEP_F32  0.03
#define TOL_STEP_Q8_0 0.3

/* Synthetic models: fixed tolerances on |cuda - cpu|, stated here and
 * never scaled by a measured error (the old rule accepted a flip when the
 * gap was below the logit difference measured at that very step, and a
 * first-step rms up to 2x the CPU's own distance from llama.cpp).
 *   all   max |cuda - cpu| over the whole vocabulary at every step while
 *         the ids agree (and at the first step where they differ);
 *   top5  max |cuda - cpu| over the CPU's top-5 ids at those steps, and
 *         the largest CPU gap (its pick minus the CUDA pick) at which a
 *         flip is accepted;
 *   rms   first step, whole vocabulary.
 * Measured through the shim (32 steps, AVX2 CPU kernels; quantized
 * types are bit-identical at every CPU level since the K-quant and
 * Q8_0/Q4_0 kernels follow quant_ref.c exactly, so the matvec-prefill
 * first steps below are now 0 at scalar, AVX2 and AVX-512 alike):
 *   synth-llama-F32           all 0.031  top5 0.011  rms 1.3e-4
 *   synth-llama-Q4_K_M        all 3.71   top5 2.59   rms 0 (3.1e-5
 *                             before; 0.41 with the old AVX-512 K-quant
 *                             kernels, over the 0.05 bound)
 *                             (flips at steps 21 / 24, CPU gaps 0.40 /
 *                             0.27)
 *   synth-llama-BF16-embQ4_0  all 0.79   top5 0.42   rms 0.11 (prompt 2:
 *                             the CPU backend is 0.11 rms / 0.50 max from
 *                             llama.cpp there, the CUDA kernels 2.2e-6;
 *                             flip at step 14, CPU gap 0.21)
 *   synth-qwen2-F16-embQ4_0   all 0.45   top5 0.19   rms 0.042
 *   synth-qwen3-Q4_K_M        all 1.15   top5 0.42   rms 0.163 (prompt
 *                             1: 0.093 against the AVX2 CPU kernels, 0
 *                             with ST_CPU_KERNELS=scalar, whose block
 *                             order the CUDA kernels follow; flips at
 *                             steps 23 / 29, CPU gaps 0.10 / 0.29)
 *   synth-llama3-Q5_K_M       all 0.18   top5 0.13   rms 0.045 (flips
 *                             at steps 6 / 25, CPU gaps 0.024 / 0.014)
 *   synth-gemma3-Q8_0         all 0.13   top5 0.094  rms 0.034 (prompt
 *                             2, 22 rows through the sliding window)
 * synthetic-2 (llama3 rope, n_embd 256, vocab 512; issue 10's types).
 * Prompt 1 (matvec prefill): all 32 steps bit-equal for Q4_1, Q5_0,
 * Q5_1, IQ4_NL; <= 1.5e-6 for the K-quant mixes (their Q6_K / Q4_K
 * tensors), except Q3_K_M 0.063 at step 23. Prompt 2 (22 tokens: cuBLAS
 * prefill of dequantized tiles; with the matvec instead,
 * ST_CUDA_GEMM_MIN_ROWS=0, all 32 steps are bit-equal / <= 2e-6), max
 * over both prompts:
 *   synth-llama3-Q4_1         all 0.181  top5 0.109  rms 0.041
 *   synth-llama3-Q5_0         all 0.071  top5 0.051  rms 0.017
 *   synth-llama3-Q5_1         all 0.156  top5 0.146  rms 0.036
 *                             (prompt 2 flips at step 2, CPU gap 0.062)
 *   synth-llama3-IQ4_NL       all 0.094  top5 0.064  rms 0.020
 *   synth-llama3-IQ4_XS       all 0.083  top5 0.040  rms 0.025
 *                             (prompt 2 flips at step 1, CPU gap 0.010)
 *   synth-llama3-Q2_K         all 0.120  top5 0.098  rms 0.044
 *                             (prompt 2 flips at step 9, CPU gap 0.0006)
 *   synth-llama3-Q3_K_M       all 0.118  top5 0.088  rms 0.020
 * Not measured on a device (no GPU in these sessions). */
typedef struct {
    const char *stem;
    double      all, top5, rms;
} synth_tol;

static const synth_tol synth_tols[] = {
    { "synth-llama-F32",          0.1, 0.05, 0.01 },
    { "synth-llama-Q4_K_M",       6.0, 4.0,  0.05 },
    { "synth-llama-BF16-embQ4_0", 1.5, 1.0,  0.2 },
    { "synth-qwen2-F16-embQ4_0",  1.0, 0.5,  0.1 },
    /* second set: the architectures of the model plan (qwen3 q/k norms,
     * Llama-3 rope factors, gemma3 sliding window / GeGLU / post norms) */
    { "synth-qwen3-Q4_K_M",       3.0, 1.5,  0.3 },
    { "synth-llama3-Q5_K_M",      1.0, 0.5,  0.1 },
    { "synth-gemma3-Q8_0",        0.5, 0.25, 0.1 },
    { "synth-llama3-Q4_1",        0.4,  0.25, 0.08 },
    { "synth-llama3-Q5_0",        0.2,  0.12, 0.04 },
    { "synth-llama3-Q5_1",        0.3,  0.25, 0.08 },
    { "synth-llama3-IQ4_NL",      0.2,  0.15, 0.05 },
    { "synth-llama3-IQ4_XS",      0.2,  0.1,  0.05 },
    { "synth-llama3-Q2_K",        0.25, 0.2,  0.08 },
    { "synth-llama3-Q3_K_M",      0.25, 0.2,  0.04 },
};


static const synth_tol *
synth_tol_for(const char *stem)
{
    size_t i;

    for (i = 0; i < sizeof(synth_tols) / sizeof(synth_tols[0]); i++) {
        if (strcmp(synth_tols[i].stem, stem) == 0) {
            return &synth_tols[i];
        }
    }
    return NULL;
}

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
    uint32_t compared;      /* steps whose logits were compared */
    double   gap_cpu;       /* at the first difference: cpu[id_cpu] - cpu[id_gpu] */
    double   max_abs;       /* ... and max |gpu - cpu| there */
    double   step_abs;      /* max |gpu - cpu| over every compared step */
    double   step_rel;      /* max |gpu - cpu| / max(1, |cpu|), same steps */
    double   step_top5;     /* max |gpu - cpu| over the CPU's top-5 ids */
    double   ref_cpu, ref_gpu;  /* max |x - llama.cpp| over its top-5 ids,
                                   while the ids equal llama.cpp's */
    const double *ref_top5; /* llama.cpp's top5_per_step (or NULL) */
    const double *ref_ids;  /* and greedy_ids */
    long     n_ref;
    uint32_t worst_step;    /* where step_abs was reached */
    int32_t  id_cpu, id_gpu;
    int32_t  ids[64];
} lockstep;


/* max |a - b| over the 5 largest entries of b */
static double
top5_diff(const float *a, const float *b, uint32_t n)
{
    int32_t  top[5];
    uint32_t k, i, j;
    double   m = 0.0;

    for (k = 0; k < 5 && k < n; k++) {
        int32_t best = -1;
        for (i = 0; i < n; i++) {
            int taken = 0;
            for (j = 0; j < k; j++) {
                taken |= top[j] == (int32_t) i;
            }
            if (!taken && (best < 0 || b[i] > b[best])) {
                best = (int32_t) i;
            }
        }
        top[k] = best;
        if (fabs((double) a[best] - b[best]) > m) {
            m = fabs((double) a[best] - b[best]);
        }
    }
    return m;
}


static st_status
side_step(side *s, const int32_t *tok, uint32_t n_tok, uint32_t pos0,
    float *logits, st_error *err)
{
    st_batch_entry *b = calloc(n_tok, sizeof(*b));
    st_status       rc;
    uint32_t        i;

    if (b == NULL) {
        snprintf(err->msg, sizeof(err->msg), "no memory for %u entries",
                 n_tok);
        return ST_ERR_NOMEM;
    }
    for (i = 0; i < n_tok; i++) {
        b[i].token = tok[i];
        b[i].pos = pos0 + i;
        b[i].seq = &s->seq[0];
        b[i].want_logits = i + 1 == n_tok;
    }
    rc = s->be->run(s->be, &s->kv, b, n_tok, logits, err);
    free(b);
    return rc;
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

    {
        const double *rt = ls->ref_top5, *ri = ls->ref_ids;
        long          nr = ls->n_ref;

        memset(ls, 0, sizeof(*ls));
        ls->ref_top5 = rt;
        ls->ref_ids = ri;
        ls->n_ref = nr;
    }
    ls->steps = steps;
    if (lc == NULL || lg == NULL || steps > 64
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
        double  d_abs = ct_max_abs(lg, lc, V), d_rel = ct_max_rel(lg, lc, V);

        ls->compared++;
        if (d_abs > ls->step_abs) {
            ls->step_abs = d_abs;
            ls->worst_step = k;
        }
        ls->step_rel = d_rel > ls->step_rel ? d_rel : ls->step_rel;
        d_abs = top5_diff(lg, lc, V);
        ls->step_top5 = d_abs > ls->step_top5 ? d_abs : ls->step_top5;
        if (ls->ref_top5 != NULL && (long) k < ls->n_ref) {
            uint32_t j, prefix_ok = 1;
            for (j = 0; j < k; j++) {
                prefix_ok &= ls->ids[j] == (int32_t) ls->ref_ids[j];
            }
            for (j = 0; prefix_ok && j < 5; j++) {
                int32_t id = (int32_t) ls->ref_top5[k * 10 + 2 * j];
                double  r = ls->ref_top5[k * 10 + 2 * j + 1];
                if (fabs(lc[id] - r) > ls->ref_cpu) {
                    ls->ref_cpu = fabs(lc[id] - r);
                }
                if (fabs(lg[id] - r) > ls->ref_gpu) {
                    ls->ref_gpu = fabs(lg[id] - r);
                }
            }
        }
        if (a != b) {
            ls->id_cpu = a;
            ls->id_gpu = b;
            ls->gap_cpu = (double) lc[a] - lc[b];
            ls->max_abs = d_abs;
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
    const synth_tol *tol = shipped ? NULL : synth_tol_for(stem);

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
        double   *num = NULL, *ref = NULL, *rtop5 = NULL;
        long      n_p, n_ref, i;
        int32_t  *prompt = NULL;
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
        if (n_p > 0) {
            prompt = malloc(sizeof(int32_t) * (size_t) n_p);
        }
        if (n_p <= 0 || prompt == NULL) {
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

        memset(&ls, 0, sizeof(ls));
        n_ref = ref_numbers(json, "greedy_ids", &ref);
        if (n_ref > 0 && ref_numbers(json, "top5_per_step", &rtop5)
                         == n_ref * 10)
        {
            ls.ref_top5 = rtop5;
            ls.ref_ids = ref;
            ls.n_ref = n_ref;
        }
        if (side_init(&cpu, m, 0, (uint32_t) n_p, n_blocks, tp, &err) != 0
            || side_init(&gpu, m, 1, (uint32_t) n_p, n_blocks, tp, &err) != 0)
        {
            ok(0, "%s: backends: %s", de->d_name, err.msg);
        } else if (run_lockstep(&cpu, &gpu, m, prompt, (uint32_t) n_p, steps,
                                l_cpu, l_gpu, &ls, &err) != 0)
        {
            ok(0, "%s: generate: %s", de->d_name, err.msg);
        } else {
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
                double tol_step = strstr(stem, "Q8_0") ? TOL_STEP_Q8_0
                                                       : TOL_STEP_F32;
                ok(ls.step_abs <= tol_step, "%s: max |cuda - cpu| within "
                   "%.3g at all %u steps (max %.3g at step %u; max rel %.3g)",
                   de->d_name, tol_step, ls.compared, ls.step_abs,
                   ls.worst_step, ls.step_rel);
            } else if (tol == NULL) {
                ok(0, "%s: a tolerance is stated for %s", de->d_name, stem);
            } else {
                ok(ls.step_abs <= tol->all && ls.step_top5 <= tol->top5,
                   "%s: max |cuda - cpu| within %.3g (top-5: %.3g) at all "
                   "%u compared steps (max %.3g at step %u; top-5 %.3g)",
                   de->d_name, tol->all, tol->top5, ls.compared,
                   ls.step_abs, ls.worst_step, ls.step_top5);
                ok(ls.same == steps || ls.gap_cpu < tol->top5,
                   "%s: greedy ids equal the CPU backend's for %u of %u "
                   "steps%s", de->d_name, ls.same, steps,
                   ls.same == steps ? "" : ", then a flip where the CPU's "
                   "own gap to the CUDA pick is below the fixed tolerance");
                if (ls.same < steps) {
                    diag("step %u: cpu %d, cuda %d; cpu gap %.4g (tolerance "
                         "%.3g), max |cuda - cpu| %.4g", ls.same, ls.id_cpu,
                         ls.id_gpu, ls.gap_cpu, tol->top5, ls.max_abs);
                }
                /* llama.cpp's own logits, for scale only */
                double  *lf = NULL;
                long     n_lf = ref_numbers(json, "logits_first", &lf);
                if (n_lf == (long) V) {
                    float *lff = malloc(sizeof(float) * V);
                    for (i = 0; i < (long) V; i++) {
                        lff[i] = (float) lf[i];
                    }
                    diag("%s: first-step rms |cpu - llama.cpp| %.3g, "
                         "|cuda - llama.cpp| %.3g", de->d_name,
                         rms_diff(l_cpu, lff, V), rms_diff(l_gpu, lff, V));
                    free(lff);
                }
                free(lf);
                ok(rms <= tol->rms, "%s: first-step logits: rms |cuda - "
                   "cpu| %.3g <= %.3g; max abs %.3g", de->d_name, rms,
                   tol->rms, ct_max_abs(l_gpu, l_cpu, V));
            }
            diag("%s: max |x - llama.cpp| on its top-5 while the ids agree: "
                 "cpu %.3g, cuda %.3g; max |cuda - cpu| on the CPU's top-5 "
                 "%.3g", de->d_name, ls.ref_cpu, ls.ref_gpu, ls.step_top5);
        }
        free(ref);
        free(rtop5);
        ref = rtop5 = NULL;
        side_free(&cpu);
        side_free(&gpu);

        /* extra checks on the first prompt of the shipped models */
        if (shipped && n_files == 1) {
            side      c2, g2;
            float    *l_c2 = malloc(sizeof(float) * V);
            float    *l_g2 = malloc(sizeof(float) * V);
            lockstep  ls2 = { 0 };

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
        free(prompt);
    }
    if (dir != NULL) {
        closedir(dir);
    }
    ok(n_files > 0, "%s: %d reference prompts", stem, n_files);
    st_model_free(m);
}


/* The models `names` of ../shared/models/<set> against the references
 * in ../shared/reference/generation/<set>; absent files are skipped. */
static void
test_synth_set(const char *set, const char *const *names, size_t n,
    st_threadpool *tp)
{
    char   model[1024], refs[1024];
    size_t i;

    snprintf(refs, sizeof(refs), "%s/reference/generation/%s",
             tap_shared_dir(), set);
    for (i = 0; i < n; i++) {
        FILE *fp;
        snprintf(model, sizeof(model), "%s/models/%s/%s.gguf",
                 tap_shared_dir(), set, names[i]);
        fp = fopen(model, "rb");
        if (fp == NULL) {
            skip("%s: not present (needs ../shared)", names[i]);
            continue;
        }
        fclose(fp);
        test_model(model, refs, names[i], tp, 0);
    }
}


int
main(void)
{
    static const char *synth[] = {
        "synth-llama-F32", "synth-llama-Q4_K_M", "synth-llama-BF16-embQ4_0",
        "synth-qwen2-F16-embQ4_0"
    };
    /* second set: the architectures of the model plan (qwen3 q/k norms,
     * Llama-3 rope factors, gemma3 sliding window / GeGLU / post norms) and
     * issue 10's weight types; prompt 2 (22 tokens) prefills through the
     * cuBLAS path (dequantized tiles), decode through the matvec */
    static const char *synth2[] = {
        "synth-qwen3-Q4_K_M", "synth-llama3-Q5_K_M", "synth-gemma3-Q8_0",
        "synth-llama3-Q4_1", "synth-llama3-Q5_0", "synth-llama3-Q5_1",
        "synth-llama3-IQ4_NL", "synth-llama3-IQ4_XS", "synth-llama3-Q2_K",
        "synth-llama3-Q3_K_M"
    };
    st_threadpool *tp = NULL;
    st_error       err = { 0 };
    char           model[1024], refs[1024];
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

    test_synth_set("synthetic", synth, sizeof(synth) / sizeof(synth[0]), tp);
    test_synth_set("synthetic-2", synth2, sizeof(synth2) / sizeof(synth2[0]),
                   tp);

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

    /* weights the CUDA backend cannot run are refused at create, before
     * any allocation, with the GGUF tensor name and the type */
    {
        static const struct {
            uint32_t    type;       /* put on blk.0.ffn_up / output */
            const char *name;
            const char *want[2];
        } bad[] = {
            { ST_TYPE_IQ2_XXS, "blk.0.ffn_up.weight",
              { "type iq2_xxs (ggml type 16)", "does not support" } },
            { 31, "blk.0.ffn_up.weight",
              { "type unknown (ggml type 31)", "does not support" } },
            /* a supported type whose rows are not that type's bytes */
            { ST_TYPE_Q4_1, "blk.0.ffn_up.weight",
              { "(q4_1) has 256 bytes per row",
                "64 values of the type take 40" } },
            { ST_TYPE_Q3_K, "output.weight",
              { "(q3_K) has 64 inputs per row", "256-value blocks" } },
        };
        st_model *m = NULL;
        size_t    k;

        snprintf(model, sizeof(model), "%s/models/stories260K.gguf",
                 tap_root_dir());
        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            st_backend *be = NULL;
            st_weight  *w;
            st_status   rc;

            if (st_model_load(&m, model, NULL, &err) != ST_OK) {
                ok(0, "load %s: %s", model, err.msg);
                break;
            }
            w = strcmp(bad[k].name, "output.weight") == 0
                ? &m->output : &m->layers[0].w_up;
            w->type = (st_type) bad[k].type;
            memset(&err, 0, sizeof(err));
            rc = st_backend_cuda_create(&be, m, 8, &(st_kv_geometry) {
                                            m->hp.n_layer,
                                            m->hp.n_head_kv * m->hp.head_dim,
                                            KV_BLOCK_TOKENS, 8 }, 0, &err);
            ok(rc == ST_ERR_UNSUPPORTED && be == NULL
               && strstr(err.msg, bad[k].name)
               && strstr(err.msg, bad[k].want[0])
               && strstr(err.msg, bad[k].want[1]),
               "weight refused: %s", err.msg);
            if (be != NULL) {
                be->free(be);
            }
            st_model_free(m);
            m = NULL;
        }
    }

    st_cuda_shim_counters(&launches, &threads, &switches);
    diag("shim: %llu launches, %llu threads, %llu fiber switches",
         (unsigned long long) launches, (unsigned long long) threads,
         (unsigned long long) switches);
    st_threadpool_free(tp);
    return done_testing();
}
