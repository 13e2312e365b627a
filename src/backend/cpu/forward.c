/*
 * Batched forward pass on the CPU: executes the model's plan (model.h),
 * one layer after the other.
 *
 * A batch is a list of (token, position, sequence) rows. Every row is
 * computed independently except in attention, where a row reads the K/V
 * of its own sequence only (positions 0..pos, written by earlier steps or
 * by earlier rows of this batch in the same layer). So a sequence's result
 * never depends on what else is in the batch: matmuls are row-invariant
 * (matmul.h) and everything else is per row.
 */
#include "backend/cpu/forward.h"
#include "backend/cpu/act.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/vec_f16.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* attention scratch per thread, in head_dim units: q and accumulator of
 * every head of one group */
#define ST_ATTN_SCRATCH  (2 * ST_ATTN_HEADS_MAX)

struct st_forward {
    const st_model     *m;
    st_threadpool      *tp;
    uint32_t            max_tokens;
    st_matmul_scratch   mm;
    float              *x;        /* (T, n_embd) residual stream */
    float              *xn;       /* (T, n_embd) normalised input */
    float              *q;        /* (T, n_head*hd) */
    float              *k;        /* (T, n_kv*hd) */
    float              *v;        /* (T, n_kv*hd) */
    float              *attn;     /* (T, n_head*hd) attention output */
    float              *proj;     /* (T, n_embd) projection output */
    float              *gate;     /* (T, n_ff) */
    float              *up;       /* (T, n_ff) */
    float              *rope_cs;  /* (T, n_rope_sets, n_rot + 2) cos/sin
                                     pairs per row and rope set */
    uint32_t           *out_rows; /* (T) rows that want logits */
    int                 n_threads;
    float              *attn_scratch; /* per thread: ST_ATTN_SCRATCH * hd */
    st_gelu_table       gelu;     /* GeGLU models only */
};


st_status
st_forward_create(st_forward **out, const st_model *m, uint32_t max_tokens,
    st_threadpool *tp, st_error *err)
{
    const st_hparams *hp = &m->hp;
    st_forward       *f;
    size_t            T = max_tokens, qdim, kvdim;

    *out = NULL;
    if (max_tokens == 0) {
        return st_error_set(err, ST_ERR_INVALID, "forward: max_tokens is 0");
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "forward: out of memory");
    }
    qdim = (size_t) hp->n_head * hp->head_dim;
    kvdim = (size_t) hp->n_head_kv * hp->head_dim;
    f->m = m;
    f->tp = tp;
    f->max_tokens = max_tokens;
    f->n_threads = tp ? st_threadpool_size(tp) : 1;
    f->x = malloc(sizeof(float) * T * hp->n_embd);
    f->xn = malloc(sizeof(float) * T * hp->n_embd);
    f->q = malloc(sizeof(float) * T * qdim);
    f->k = malloc(sizeof(float) * T * kvdim);
    f->v = malloc(sizeof(float) * T * kvdim);
    f->attn = malloc(sizeof(float) * T * qdim);
    f->proj = malloc(sizeof(float) * T * hp->n_embd);
    f->gate = malloc(sizeof(float) * T * hp->n_ff);
    f->up = malloc(sizeof(float) * T * hp->n_ff);
    f->rope_cs = malloc(sizeof(float) * T * m->plan.n_rope_sets
                        * (hp->n_rot + 2));
    f->out_rows = malloc(sizeof(uint32_t) * T);
    f->attn_scratch = malloc(sizeof(float) * ST_ATTN_SCRATCH * hp->head_dim
                             * f->n_threads);
    if (!f->x || !f->xn || !f->q || !f->k || !f->v || !f->attn || !f->proj
        || !f->gate || !f->up || !f->rope_cs || !f->out_rows
        || !f->attn_scratch
        || (m->plan.act == ST_ACT_GELU_TANH
            && st_gelu_table_init(&f->gelu) != 0))
    {
        st_forward_free(f);
        return st_error_set(err, ST_ERR_NOMEM,
                            "forward: cannot allocate buffers for %u tokens",
                            max_tokens);
    }
    *out = f;
    return ST_OK;
}


void
st_forward_free(st_forward *f)
{
    if (f == NULL) {
        return;
    }
    st_matmul_scratch_free(&f->mm);
    free(f->x);
    free(f->xn);
    free(f->q);
    free(f->k);
    free(f->v);
    free(f->attn);
    free(f->proj);
    free(f->gate);
    free(f->up);
    free(f->rope_cs);
    free(f->out_rows);
    free(f->attn_scratch);
    st_gelu_table_free(&f->gelu);
    free(f);
}


/* y = x / sqrt(mean(x^2) + eps) * w, ggml's arithmetic: squares in float,
 * summed in double, scale in float. */
static void
st_rms_norm(const float *x, const float *w, float *y, uint32_t n, float eps)
{
    double    sum = 0.0;
    float     mean, scale;
    uint32_t  i;

    for (i = 0; i < n; i++) {
        sum += (double) (x[i] * x[i]);
    }
    mean = (float) (sum / n);
    scale = 1.0f / sqrtf(mean + eps);
    for (i = 0; i < n; i++) {
        y[i] = (x[i] * scale) * w[i];
    }
}


/* cos/sin table for one position and rope set, as ggml's rope cache
 * builds it: theta starts at pos and is multiplied by theta_scale per
 * pair (in float); each pair's angle is theta / freq_factor (Llama 3)
 * times freq_scale (linear scaling). */
static void
st_rope_table(const st_model *m, uint32_t set, uint32_t pos, float *cs)
{
    const st_plan  *p = &m->plan;
    float           theta_scale = p->rope_theta_scale[set];
    float           freq_scale = p->rope_freq_scale[set];
    float           theta = (float) pos;
    uint32_t        i;

    for (i = 0; i < m->hp.n_rot; i += 2) {
        float t = p->rope_freqs ? theta / p->rope_freqs[i / 2] : theta;

        t = t * freq_scale;
        cs[i] = cosf(t);
        cs[i + 1] = sinf(t);
        theta *= theta_scale;
    }
}


/* Rotates n_heads heads of hd values in place. */
static void
st_rope_apply(const st_hparams *hp, const float *cs, float *x,
    uint32_t n_heads)
{
    uint32_t h, i, hd = hp->head_dim, half = hp->n_rot / 2;

    for (h = 0; h < n_heads; h++) {
        float *p = x + (size_t) h * hd;

        if (hp->rope_type == ST_ROPE_NORM) {
            for (i = 0; i < hp->n_rot; i += 2) {
                float x0 = p[i], x1 = p[i + 1];
                p[i] = x0 * cs[i] - x1 * cs[i + 1];
                p[i + 1] = x0 * cs[i + 1] + x1 * cs[i];
            }
        } else {
            for (i = 0; i < half; i++) {
                float x0 = p[i], x1 = p[i + half];
                p[i] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                p[i + half] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}


typedef struct {
    st_forward             *f;
    const st_kv_cache      *kv;
    const st_batch_entry   *batch;
    uint32_t                n;
    uint32_t                layer;
    st_attn_f16_run_fn      run;      /* fused kernel, resolved once */
    atomic_uint             next;     /* items handed out so far */
} st_attn_job;


/* Attention of one row for heads h0 .. h0 + nh - 1, each the way ggml's
 * CPU flash-attention kernel computes it with an F16 KV cache: Q rounded
 * to F16; K.Q products in F32 summed in F64; online softmax in F32; the
 * weighted sum of V kept in an F16 accumulator that is rounded after
 * every key (the exact loop is spelled out in vec_f16.h). Keys are fed
 * block by block of the paged cache, in position order; the heads are
 * independent and only share the walk over the blocks. */
static void
st_attn_heads(const st_attn_job *job, uint32_t row, uint32_t h0, uint32_t nh,
    float *scratch)
{
    const st_forward      *f = job->f;
    const st_hparams      *hp = &f->m->hp;
    const st_kv_cache     *kv = job->kv;
    const st_batch_entry  *e = &job->batch[row];
    const st_model        *m = f->m;
    uint32_t               win = m->layers[job->layer].plan.window_tokens;
    uint32_t               hd = hp->head_dim;
    uint32_t               group = hp->n_head / hp->n_head_kv;
    uint32_t               bt = kv->block_tokens;
    const st_f16          *kbase = kv->k[job->layer];
    const st_f16          *vbase = kv->v[job->layer];
    const float           *q = f->q + ((size_t) row * hp->n_head + h0) * hd;
    float                 *out = f->attn + ((size_t) row * hp->n_head + h0) * hd;
    /* Q already scaled when the plan says so (gemma3) */
    float                  scale = m->plan.attn_q_scale != 0.0f
                                   ? 1.0f : 1.0f / sqrtf((float) hd);
    st_attn_f16_state      st[ST_ATTN_HEADS_MAX];
    size_t                 off[ST_ATTN_HEADS_MAX];
    uint32_t               c, run, i;

    for (i = 0; i < nh; i++) {
        off[i] = (size_t) ((h0 + i) / group) * hd;
        st_attn_f16_begin(&st[i], q + (size_t) i * hd, hd, scale,
                          scratch + (size_t) i * 2 * hd);
    }
    /* a sliding window sees keys at p0 > pos - window (llama.cpp masks
     * the others with -inf, which its kernel skips: skipping them here is
     * the same arithmetic) */
    c = win > 0 && e->pos + 1 > win ? e->pos + 1 - win : 0;
    for ( ; c <= e->pos; c += run) {
        size_t r = st_kv_row(kv, e->seq, c);

        run = bt - c % bt;
        /* blocks that follow each other in the cache go as one run: the
         * kernel carries its state across calls exactly, so only the
         * per-call overhead changes */
        while (c + run <= e->pos
               && st_kv_row(kv, e->seq, c + run)
                  == r + (size_t) run * kv->kv_dim)
        {
            run += bt;
        }
        if (run > e->pos + 1 - c) {
            run = e->pos + 1 - c;
        }
        job->run(st, nh, off, kbase + r, vbase + r, kv->kv_dim, run);
    }
    for (i = 0; i < nh; i++) {
        st_attn_f16_end(&st[i], out + (size_t) i * hd);
    }
}


/* Items are (row, group of up to ST_ATTN_HEADS_MAX heads), handed out
 * dynamically, latest rows first: a row's cost grows with its position,
 * so a static split of a prefill batch would give the last thread most
 * of the work. */
static void
st_attn_worker(void *ctx, int ith, int nth)
{
    st_attn_job  *job = ctx;
    st_forward   *f = job->f;
    uint32_t      n_head = f->m->hp.n_head;
    uint32_t      n_grp = (n_head + ST_ATTN_HEADS_MAX - 1) / ST_ATTN_HEADS_MAX;
    uint32_t      total = job->n * n_grp, i, it, h0, nh;
    float        *scratch = f->attn_scratch + (size_t) ith * ST_ATTN_SCRATCH
                                              * f->m->hp.head_dim;

    (void) nth;
    for ( ;; ) {
        it = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (it >= total) {
            return;
        }
        i = total - 1 - it;
        /* groups of equal size: 14 heads -> 7 + 7, not 8 + 6 */
        h0 = (uint32_t) ((uint64_t) n_head * (i % n_grp) / n_grp);
        nh = (uint32_t) ((uint64_t) n_head * (i % n_grp + 1) / n_grp) - h0;
        st_attn_heads(job, i / n_grp, h0, nh, scratch);
    }
}


static void
st_add_bias(float *y, const float *b, uint32_t n_rows, uint32_t dim)
{
    uint32_t r, i;

    if (b == NULL) {
        return;
    }
    for (r = 0; r < n_rows; r++) {
        for (i = 0; i < dim; i++) {
            y[(size_t) r * dim + i] += b[i];
        }
    }
}


/* Row-wise work between the matmuls. Every row is computed by the same
 * operations in the same order whichever thread takes it; large batches
 * split the rows across the team. */
typedef enum {
    ST_ROWS_ROPE_TABLE,          /* rope_cs of the row's position */
    ST_ROWS_NORM,                /* xn = rms_norm(x) * norm_w */
    ST_ROWS_RESID_NORM,          /* proj = post_norm(proj) if post_w;
                                    x += proj; then as NORM (norm_w set) */
    ST_ROWS_QKV_POST,            /* biases, q/k norms, RoPE, Q scale, K/V
                                    into the cache */
    ST_ROWS_GLU                  /* gate = act(gate) * up */
} st_rows_op;

typedef struct {
    st_forward             *f;
    const st_layer         *L;
    st_kv_cache            *kv;
    const st_batch_entry   *batch;
    uint32_t                layer;
    uint32_t                n;
    st_rows_op              op;
    const float            *norm_w;
    const float            *post_w;
} st_rows_job;

/* below this many values a row pass stays on the caller: waking the
 * team costs more */
#define ST_ROWS_PAR_MIN  (32 * 1024)

/* attention below this many key values (keys x heads x head_dim) runs
 * on the caller: a few microseconds, less than waking a sleeping worker */
#define ST_ATTN_PAR_MIN  (64 * 1024)

#define ST_ROPE_STRIDE(hp)  ((size_t) (hp)->n_rot + 2)


/* RMSNorm of each of n_heads heads of hd values, in place, with the
 * same (hd) weight. */
static void
st_head_norm(float *x, const float *w, uint32_t n_heads, uint32_t hd,
    float eps)
{
    uint32_t h;

    for (h = 0; h < n_heads; h++) {
        st_rms_norm(x + (size_t) h * hd, w, x + (size_t) h * hd, hd, eps);
    }
}


static void
st_rows_do(const st_rows_job *j, uint32_t i0, uint32_t i1)
{
    st_forward        *f = j->f;
    const st_hparams  *hp = &f->m->hp;
    uint32_t           E = hp->n_embd, i;
    size_t             d;

    switch (j->op) {
    case ST_ROWS_ROPE_TABLE: {
        uint32_t ns = f->m->plan.n_rope_sets, s;

        for (i = i0; i < i1; i++) {
            for (s = 0; s < ns; s++) {
                st_rope_table(f->m, s, j->batch[i].pos,
                              f->rope_cs + ((size_t) i * ns + s)
                                           * ST_ROPE_STRIDE(hp));
            }
        }
        break;
    }

    case ST_ROWS_RESID_NORM:
        for (i = i0; i < i1; i++) {
            float       *x = f->x + (size_t) i * E;
            float       *p = f->proj + (size_t) i * E;

            if (j->post_w != NULL) {
                st_rms_norm(p, j->post_w, p, E, hp->rms_eps);
            }
            for (d = 0; d < E; d++) {
                x[d] += p[d];
            }
        }
        if (j->norm_w == NULL) {
            break;
        }
        /* fall through */
    case ST_ROWS_NORM:
        for (i = i0; i < i1; i++) {
            st_rms_norm(f->x + (size_t) i * E, j->norm_w,
                        f->xn + (size_t) i * E, E, hp->rms_eps);
        }
        break;

    case ST_ROWS_QKV_POST: {
        const st_layer *L = j->L;
        uint32_t        qdim = hp->n_head * hp->head_dim;
        uint32_t        kvdim = hp->n_head_kv * hp->head_dim;
        const st_plan  *p = &f->m->plan;
        uint32_t        ns = p->n_rope_sets;

        for (i = i0; i < i1; i++) {
            float  *q = f->q + (size_t) i * qdim;
            float  *k = f->k + (size_t) i * kvdim;
            float  *v = f->v + (size_t) i * kvdim;
            const float *cs = f->rope_cs + ((size_t) i * ns + L->plan.rope_set)
                                           * ST_ROPE_STRIDE(hp);
            size_t  row = st_kv_row(j->kv, j->batch[i].seq, j->batch[i].pos);

            st_add_bias(q, L->bq, 1, qdim);
            st_add_bias(k, L->bk, 1, kvdim);
            st_add_bias(v, L->bv, 1, kvdim);
            if (L->q_norm != NULL) {
                st_head_norm(q, L->q_norm, hp->n_head, hp->head_dim,
                             hp->rms_eps);
            }
            if (L->k_norm != NULL) {
                st_head_norm(k, L->k_norm, hp->n_head_kv, hp->head_dim,
                             hp->rms_eps);
            }
            st_rope_apply(hp, cs, q, hp->n_head);
            st_rope_apply(hp, cs, k, hp->n_head_kv);
            if (p->attn_q_scale != 0.0f) {
                for (d = 0; d < qdim; d++) {
                    q[d] *= p->attn_q_scale;
                }
            }
            st_vec_f32_to_f16(k, j->kv->k[j->layer] + row, kvdim);
            st_vec_f32_to_f16(v, j->kv->v[j->layer] + row, kvdim);
        }
        break;
    }

    case ST_ROWS_GLU: {
        size_t d0 = (size_t) i0 * hp->n_ff, nd = (size_t) (i1 - i0) * hp->n_ff;

        if (f->m->plan.act == ST_ACT_GELU_TANH) {
            st_geglu(&f->gelu, f->gate + d0, f->up + d0, nd);
        } else {
            st_swiglu(f->gate + d0, f->up + d0, nd);
        }
        break;
    }
    }
}


static void
st_rows_worker(void *ctx, int ith, int nth)
{
    const st_rows_job *j = ctx;

    st_rows_do(j, (uint32_t) ((uint64_t) j->n * ith / nth),
               (uint32_t) ((uint64_t) j->n * (ith + 1) / nth));
}


static void
st_rows(st_rows_job *j, st_rows_op op, const float *norm_w,
    size_t values_per_row)
{
    j->op = op;
    j->norm_w = norm_w;
    if (op != ST_ROWS_RESID_NORM) {
        j->post_w = NULL;
    }
    if (j->f->n_threads > 1 && j->n > 1
        && (size_t) j->n * values_per_row >= ST_ROWS_PAR_MIN)
    {
        st_threadpool_run(j->f->tp, st_rows_worker, j);
    } else {
        st_rows_do(j, 0, j->n);
    }
}


st_status
st_forward_run(st_forward *f, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, float *logits, st_error *err)
{
    const st_model        *m = f->m;
    const st_hparams      *hp = &m->hp;
    const st_type_traits  *emb_tr;
    uint32_t               qdim, kvdim, E, l, i, n_out;
    st_status              rc;
    st_attn_job            job;
    st_rows_job            rj;
    uint64_t               attn_work;

    if (n == 0) {
        return ST_OK;
    }
    if (n > f->max_tokens) {
        return st_error_set(err, ST_ERR_INVALID,
                            "forward: batch of %u rows exceeds %u", n,
                            f->max_tokens);
    }
    E = hp->n_embd;
    qdim = hp->n_head * hp->head_dim;
    kvdim = hp->n_head_kv * hp->head_dim;

    /* token embeddings: (n, E) */
    emb_tr = st_type_traits_get(m->tok_embd.type);
    for (i = 0; i < n; i++) {
        const st_batch_entry *e = &batch[i];

        if (e->token < 0 || (uint32_t) e->token >= hp->n_vocab) {
            return st_error_set(err, ST_ERR_INVALID,
                                "forward: token id %d out of range", e->token);
        }
        if (e->seq == NULL
            || e->seq->n_blocks * kv->block_tokens <= e->pos)
        {
            return st_error_set(err, ST_ERR_INTERNAL,
                                "forward: no KV slot for position %u", e->pos);
        }
        emb_tr->to_float((const char *) m->tok_embd.data
                             + (size_t) e->token * m->tok_embd.row_bytes,
                         f->x + (size_t) i * E, E);
        if (m->plan.emb_scale != 1.0f) {
            float   *x = f->x + (size_t) i * E;
            uint32_t d;

            for (d = 0; d < E; d++) {
                x[d] *= m->plan.emb_scale;
            }
        }
    }

    attn_work = 0;
    for (i = 0; i < n; i++) {
        attn_work += (uint64_t) batch[i].pos + 1;     /* keys read */
    }

    rj.f = f;
    rj.kv = kv;
    rj.batch = batch;
    rj.n = n;
    rj.L = NULL;
    rj.layer = 0;
    rj.post_w = NULL;
    /* RoPE tables once per row and rope set, shared by the layers */
    st_rows(&rj, ST_ROWS_ROPE_TABLE, NULL,
            (size_t) hp->n_rot * 8 * m->plan.n_rope_sets);
    if (hp->n_layer > 0) {
        st_rows(&rj, ST_ROWS_NORM, m->layers[0].attn_norm, E);
    }

    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];

        /* attention block; xn = attn_norm(x) is ready */
        if ((rc = st_matmul(f->tp, &f->mm, &L->wq, f->xn, n, f->q))
            || (rc = st_matmul(f->tp, &f->mm, &L->wk, f->xn, n, f->k))
            || (rc = st_matmul(f->tp, &f->mm, &L->wv, f->xn, n, f->v)))
        {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        rj.L = L;
        rj.layer = l;
        st_rows(&rj, ST_ROWS_QKV_POST, NULL, qdim + 2 * (size_t) kvdim);

        job.f = f;
        job.kv = kv;
        job.batch = batch;
        job.n = n;
        job.layer = l;
        job.run = st_attn_f16_run_kernel();
        atomic_init(&job.next, 0);
        if (f->n_threads > 1
            && attn_work * hp->n_head * hp->head_dim >= ST_ATTN_PAR_MIN)
        {
            st_threadpool_run(f->tp, st_attn_worker, &job);
        } else {
            st_attn_worker(&job, 0, 1);
        }

        if ((rc = st_matmul(f->tp, &f->mm, &L->wo, f->attn, n, f->proj))) {
            return st_error_set(err, rc, "forward: matmul failed");
        }

        /* feed-forward block: x += post_attn_norm(proj); xn = ffn_norm(x) */
        rj.post_w = L->post_attn_norm;
        st_rows(&rj, ST_ROWS_RESID_NORM, L->ffn_norm, 2 * (size_t) E);
        if ((rc = st_matmul(f->tp, &f->mm, &L->w_gate, f->xn, n, f->gate))
            || (rc = st_matmul(f->tp, &f->mm, &L->w_up, f->xn, n, f->up)))
        {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        st_rows(&rj, ST_ROWS_GLU, NULL, (size_t) hp->n_ff * 4);
        if ((rc = st_matmul(f->tp, &f->mm, &L->w_down, f->gate, n, f->proj))) {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        /* x += post_ffn_norm(proj), and the next layer's attn_norm */
        rj.post_w = L->post_ffn_norm;
        st_rows(&rj, ST_ROWS_RESID_NORM,
                l + 1 < hp->n_layer ? m->layers[l + 1].attn_norm : NULL,
                2 * (size_t) E);
    }

    /* final norm and output head, only for rows that want logits */
    n_out = 0;
    for (i = 0; i < n; i++) {
        if (batch[i].want_logits) {
            st_rms_norm(f->x + (size_t) i * E, m->output_norm,
                        f->xn + (size_t) n_out * E, E, hp->rms_eps);
            n_out++;
        }
    }
    if (n_out > 0) {
        rc = st_matmul(f->tp, &f->mm, &m->output, f->xn, n_out, logits);
        if (rc != ST_OK) {
            return st_error_set(err, rc, "forward: output matmul failed");
        }
        if (m->plan.logit_softcap != 0.0f) {
            st_softcap(logits, (size_t) n_out * hp->n_vocab,
                       m->plan.logit_softcap);
        }
    }
    return ST_OK;
}


st_status
st_forward_hidden(st_forward *f, const st_batch_entry *batch, uint32_t n,
    float *out, st_error *err)
{
    const st_hparams *hp = &f->m->hp;
    uint32_t          E = hp->n_embd, i, n_out = 0;

    if (n > f->max_tokens) {
        return st_error_set(err, ST_ERR_INVALID,
                            "forward: batch of %u rows exceeds %u", n,
                            f->max_tokens);
    }
    /* f->x: (n, E) residual stream after the last layer */
    for (i = 0; i < n; i++) {
        if (batch[i].want_hidden) {
            st_rms_norm(f->x + (size_t) i * E, f->m->output_norm,
                        out + (size_t) n_out * E, E, hp->rms_eps);
            n_out++;
        }
    }
    return ST_OK;
}
