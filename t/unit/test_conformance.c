/*
 * Conformance with llama.cpp: for every reference file (prompt, greedy
 * continuation, top-5 logits per step, full first-step logits), check
 *   - prompt ids equal llama.cpp's exactly;
 *   - first-step logits within the tolerance stated below;
 *   - teacher-forced argmax at every step equals llama.cpp's greedy id,
 *     except at a near-tie (reference top1-top2 margin below our measured
 *     logit error), which is reported;
 *   - free-running greedy generation through the engine API equals the
 *     reference ids (same near-tie rule: ids must agree up to such a step).
 * The engine follows llama.cpp's normal numerics (activations converted to
 * the weight's vec_dot type, F16 KV cache, F16 V accumulation), so it is
 * checked against the normal reference files; the .f32math files are only
 * reported.
 */
#include "tap.h"
#include "refjson.h"
#include "starling/st_engine.h"
#include "model/model.h"
#include "backend/cpu/forward.h"

#include <dirent.h>
#include <math.h>
#include <unistd.h>

/* Tolerances on |our logit - llama.cpp's| over the whole first-step
 * vector. The two real models (F32, Q8_0) agree to ~1e-5: only summation
 * order differs. The synthetic random-weight files amplify summation-order
 * differences: a last-bit change before an activation quantizer (Q8_0/Q8_K)
 * or an F16/BF16 rounding flips a quantized value, and random weights
 * spread that through the network. Two llama.cpp builds on the same CPU
 * differ by up to 0.40 on synth-qwen2-F16 (../shared/reference README), and
 * our scalar/AVX2/AVX-512 kernel sets differ among themselves by the same
 * order, so the tolerance there is stated per file kind and the greedy-id
 * rule below uses the logit error measured at every step. */
#define TOL_REAL_MAX_ABS   0.02
#define TOL_REAL_RMS       0.002
#define TOL_SYNTH_MAX_ABS  2.5
#define TOL_SYNTH_RMS      0.6

typedef struct {
    st_model    *m;
    st_forward  *f;
    st_kv_cache  kv;
    st_kv_seq    seq;
    uint32_t     cap;
} tf_ctx;


static int
tf_init(tf_ctx *c, const char *path, uint32_t cap)
{
    st_error err;

    memset(c, 0, sizeof(*c));
    c->cap = cap;
    if (st_model_load(&c->m, path, NULL, &err) != ST_OK
        || st_forward_create(&c->f, c->m, cap, NULL, &err) != ST_OK
        || st_kv_cache_init(&c->kv, c->m->hp.n_layer,
                            c->m->hp.n_head_kv * c->m->hp.head_dim, 16,
                            (cap + 15) / 16, 1, &err) != ST_OK
        || st_kv_seq_reserve(&c->kv, &c->seq, cap) != ST_OK)
    {
        diag("load %s: %s", path, err.msg);
        return 0;
    }
    return 1;
}


static void
tf_free(tf_ctx *c)
{
    st_kv_seq_free(&c->seq);
    st_kv_cache_free(&c->kv);
    st_forward_free(c->f);
    st_model_free(c->m);
}


/* forward ids[0..n) at positions pos0.., logits of the last row */
static int
tf_run(tf_ctx *c, const int32_t *ids, uint32_t n, uint32_t pos0, float *logits)
{
    st_batch_entry b[256];
    st_error       err;
    uint32_t       i;

    for (i = 0; i < n; i++) {
        b[i].token = ids[i];
        b[i].pos = pos0 + i;
        b[i].seq = &c->seq;
        b[i].want_logits = i == n - 1;
    }
    if (st_forward_run(c->f, &c->kv, b, n, logits, &err) != ST_OK) {
        diag("forward: %s", err.msg);
        return 0;
    }
    return 1;
}


static int32_t
argmax(const float *v, uint32_t n)
{
    uint32_t i, best = 0;

    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return (int32_t) best;
}


static void
check_case(const char *model_path, const char *json_path, int strict,
    int synth)
{
    char          *json = ref_read_file(json_path, NULL);
    char          *prompt;
    double        *pids = NULL, *gids = NULL, *first = NULL, *top5 = NULL;
    long           n_pids, n_gids, n_first, n_top5;
    st_engine     *e = NULL;
    st_engine_params ep;
    st_error       err;
    st_tokens      toks = {0};
    tf_ctx         tf;
    float         *logits = NULL;
    uint32_t       n_vocab, i, step;
    double         max_abs = 0, sq = 0, step_err = 0, err_all;
    double         tol_max = synth ? TOL_SYNTH_MAX_ABS : TOL_REAL_MAX_ABS;
    double         tol_rms = synth ? TOL_SYNTH_RMS : TOL_REAL_RMS;
    int            same, top5_same = 0, tf_mismatch = 0, tf_bad = 0;
    const char    *name = strrchr(json_path, '/') ? strrchr(json_path, '/') + 1
                                                  : json_path;

    if (json == NULL) {
        ok(0, "%s: readable", name);
        return;
    }
    prompt = ref_string(json, "prompt");
    n_pids = ref_numbers(json, "prompt_ids", &pids);
    n_gids = ref_numbers(json, "greedy_ids", &gids);
    n_first = ref_numbers(json, "logits_first", &first);
    n_top5 = ref_numbers(json, "top5_per_step", &top5);
    if (prompt == NULL || n_pids <= 0 || n_gids <= 0 || n_first <= 0
        || n_top5 != n_gids * 10)
    {
        ok(0, "%s: reference fields present", name);
        goto done;
    }

    st_engine_params_default(&ep);
    ep.path = model_path;
    ep.n_threads = 1;
    ep.max_seqs = 1;
    ep.n_ctx = 512;
    if (st_engine_create(&e, &ep, &err) != ST_OK) {
        ok(0, "%s: engine loads (%s)", name, err.msg);
        goto done;
    }
    n_vocab = st_engine_info(e)->n_vocab;

    /* prompt ids */
    st_tokenize(st_engine_tokenizer(e), prompt, strlen(prompt), 1, 1, &toks,
                &err);
    same = (long) toks.n == n_pids;
    for (i = 0; same && i < toks.n; i++) {
        same = toks.ids[i] == (int32_t) pids[i];
    }
    ok(same, "%s: prompt ids equal llama.cpp's (%zu ids)", name, toks.n);
    if (!same) {
        goto done;
    }

    /* first-step logits and teacher-forced steps */
    if (!tf_init(&tf, model_path, (uint32_t) (n_pids + n_gids + 1))) {
        ok(0, "%s: model loads for teacher forcing", name);
        goto done;
    }
    logits = malloc(sizeof(float) * n_vocab);
    if (!tf_run(&tf, toks.ids, (uint32_t) toks.n, 0, logits)) {
        ok(0, "%s: forward", name);
        tf_free(&tf);
        goto done;
    }
    if ((long) n_vocab != n_first) {
        ok(0, "%s: vocab size matches logits_first", name);
        tf_free(&tf);
        goto done;
    }
    for (i = 0; i < n_vocab; i++) {
        double d = fabs((double) logits[i] - first[i]);
        max_abs = d > max_abs ? d : max_abs;
        sq += d * d;
    }
    sq = sqrt(sq / n_vocab);
    if (strict) {
        ok(max_abs <= tol_max && sq <= tol_rms,
           "%s: first-step logits max|diff| %.3g rms %.3g (tolerance %.3g / %.3g)",
           name, max_abs, sq, tol_max, tol_rms);
    } else {
        diag("%s: first-step logits vs f32math: max|diff| %.3g rms %.3g",
             name, max_abs, sq);
    }

    /* teacher forcing: our logits at every step, fed llama.cpp's ids;
     * the error of a step = max |ours - theirs| over its reference top-5 */
    err_all = max_abs;
    {
        int32_t *got_ids = malloc(sizeof(int32_t) * (size_t) n_gids);
        double  *errs = malloc(sizeof(double) * (size_t) n_gids);
        int     *t5s = malloc(sizeof(int) * (size_t) n_gids);

    for (step = 0; step < (uint32_t) n_gids; step++) {
        int32_t  tok;
        uint32_t k;
        int      t5 = 1;
        double   e_step = 0;

        if (step > 0) {
            tok = (int32_t) gids[step - 1];
            if (!tf_run(&tf, &tok, 1, (uint32_t) (n_pids + step - 1),
                        logits))
            {
                break;
            }
        }
        got_ids[step] = argmax(logits, n_vocab);
        for (k = 0; k < 5; k++) {
            double de = fabs(logits[(int32_t) top5[step * 10 + 2 * k]]
                             - top5[step * 10 + 2 * k + 1]);
            e_step = de > e_step ? de : e_step;
        }
        errs[step] = e_step;
        step_err = e_step > step_err ? e_step : step_err;
        for (k = 0; k < 5; k++) {
            /* top-5 ids in order (ties aside) */
            int32_t id = (int32_t) top5[step * 10 + 2 * k];
            uint32_t better = 0, j;
            for (j = 0; j < n_vocab; j++) {
                better += logits[j] > logits[id];
            }
            t5 &= better == k;
        }
        t5s[step] = t5;
    }
    err_all = step_err > err_all ? step_err : err_all;
    for (step = 0; step < (uint32_t) n_gids; step++) {
        int32_t  want = (int32_t) gids[step], got = got_ids[step];
        double   margin = top5[step * 10 + 1] - top5[step * 10 + 3];

        top5_same += t5s[step];
        if (got != want) {
            tf_mismatch++;
            if (margin > 2 * err_all + 1e-4) {
                tf_bad++;
                diag("%s: step %u: got %d want %d, reference margin %.4g",
                     name, step, got, want, margin);
            } else {
                diag("%s: step %u: near-tie (margin %.4g <= 2 x measured "
                     "logit error %.3g; error at this step %.3g): got %d "
                     "want %d", name, step, margin, err_all, errs[step], got,
                     want);
            }
        }
    }
        free(got_ids);
        free(errs);
        free(t5s);
    }
    diag("%s: max logit error over all steps (reference top-5): %.3g", name,
         step_err);
    tf_free(&tf);
    if (strict) {
        ok(tf_bad == 0, "%s: teacher-forced argmax = llama.cpp greedy at "
           "%ld/%ld steps (%d near-ties); top-5 order equal at %d steps",
           name, n_gids - tf_mismatch, n_gids, tf_mismatch - tf_bad,
           top5_same);
    } else {
        diag("%s: teacher-forced argmax = f32math greedy at %ld/%ld steps",
             name, n_gids - tf_mismatch, n_gids);
    }

    /* free-running greedy through the engine API */
    if (strict) {
        st_request     req;
        st_seq        *s;
        st_seq_output  out;
        int32_t        gen[512];
        uint32_t       n_gen = 0;
        size_t         k;
        long           first_diff = -1;

        memset(&req, 0, sizeof(req));
        st_sampling_defaults(&req.sampling);
        req.sampling.temperature = 0;
        req.prompt = toks.ids;
        req.n_prompt = toks.n;
        req.max_tokens = (uint32_t) n_gids;
        req.ignore_eos = 1;
        if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
            ok(0, "%s: submit (%s)", name, err.msg);
            goto done;
        }
        do {
            st_engine_step(e, &err);
            st_seq_take(s, &out);
            for (k = 0; k < out.n_tokens; k++) {
                if (out.tokens[k].token >= 0 && n_gen < 512) {
                    gen[n_gen++] = out.tokens[k].token;
                }
            }
        } while (out.finish == ST_FINISH_NONE);
        st_seq_release(e, s);
        for (i = 0; i < n_gen && i < (uint32_t) n_gids; i++) {
            if (gen[i] != (int32_t) gids[i]) {
                first_diff = i;
                break;
            }
        }
        if (first_diff < 0 && n_gen != (uint32_t) n_gids) {
            first_diff = n_gen;
        }
        if (first_diff >= 0) {
            double margin = top5[first_diff * 10 + 1] - top5[first_diff * 10 + 3];
            ok(margin <= 2 * err_all + 1e-4,
               "%s: greedy ids equal llama.cpp's up to step %ld, where the "
               "reference margin %.4g is below 2 x our measured logit error "
               "%.3g", name, first_diff, margin, err_all);
        } else {
            ok(1, "%s: greedy ids equal llama.cpp's (%u ids)", name, n_gen);
        }
    }

done:
    free(logits);
    free(toks.ids);
    st_engine_free(e);
    free(prompt);
    free(pids);
    free(gids);
    free(first);
    free(top5);
    free(json);
}


static void
run_dir(const char *dir, const char *models_dir, int want_synth)
{
    DIR           *d = opendir(dir);
    struct dirent *de;
    char         **names = NULL;
    size_t         n = 0, i;

    if (d == NULL) {
        skip("%s not present", dir);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) {
            names = realloc(names, sizeof(char *) * (n + 1));
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(char *),
          (int (*)(const void *, const void *)) strcmp);
    for (i = 0; i < n; i++) {
        char  jpath[1024], mpath[1024], model[256];
        char *dot;
        int   f32math = strstr(names[i], ".f32math.") != NULL;

        snprintf(model, sizeof(model), "%s", names[i]);
        dot = strstr(model, f32math ? ".f32math." : ".prompt");
        if (dot == NULL) {
            free(names[i]);
            continue;
        }
        *dot = '\0';
        snprintf(jpath, sizeof(jpath), "%s/%s", dir, names[i]);
        snprintf(mpath, sizeof(mpath), "%s/%s.gguf", models_dir, model);
        if (access(mpath, R_OK) != 0) {
            skip("%s: model %s not present", names[i], mpath);
        } else {
            check_case(mpath, jpath, !f32math, want_synth);
        }
        free(names[i]);
    }
    free(names);
}


int
main(void)
{
    char dir[1024], models[1024];
    char sdir[1024];

    /* the real models, from the repository's copies */
    snprintf(dir, sizeof(dir), "%s/t/data/reference/generation", tap_root_dir());
    snprintf(models, sizeof(models), "%s/models", tap_root_dir());
    run_dir(dir, models, 0);

    /* the held-back-free full set and the synthetic files, from ../shared */
    snprintf(sdir, sizeof(sdir), "%s/reference/generation/synthetic",
             tap_shared_dir());
    snprintf(models, sizeof(models), "%s/models/synthetic", tap_shared_dir());
    run_dir(sdir, models, 1);

    return done_testing();
}
