/*
 * Batched forward pass of the llama-family transformer on the CPU.
 *
 * A batch is a list of (token, position, sequence) rows. Every row is
 * computed independently except in attention, where a row reads the K/V
 * of its own sequence only (positions 0..pos, written by earlier steps or
 * by earlier rows of this batch in the same layer). So a sequence's result
 * never depends on what else is in the batch: matmuls are row-invariant
 * (matmul.h) and everything else is per row.
 */
#include "model.h"
#include "vec_f16.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    float              *rope_cs;  /* (n_rot) cos/sin pairs scratch */
    uint32_t           *out_rows; /* (T) rows that want logits */
    int                 n_threads;
    float              *attn_scratch; /* per thread: 3 * hd floats */
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
    f->rope_cs = malloc(sizeof(float) * (hp->n_rot + 2));
    f->out_rows = malloc(sizeof(uint32_t) * T);
    f->attn_scratch = malloc(sizeof(float) * 3 * hp->head_dim * f->n_threads);
    if (!f->x || !f->xn || !f->q || !f->k || !f->v || !f->attn || !f->proj
        || !f->gate || !f->up || !f->rope_cs || !f->out_rows
        || !f->attn_scratch)
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


/* cos/sin table for one position, as ggml's rope cache builds it: theta
 * starts at pos and is multiplied by theta_scale per pair (in float). */
static void
st_rope_table(const st_hparams *hp, uint32_t pos, float *cs)
{
    float     theta_scale = powf(hp->rope_base, -2.0f / (float) hp->n_rot);
    float     theta = (float) pos;
    uint32_t  i;

    for (i = 0; i < hp->n_rot; i += 2) {
        float t = theta * hp->rope_freq_scale;
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
} st_attn_job;


/* Attention of one (row, head) pair, the way ggml's CPU flash-attention
 * kernel computes it with an F16 KV cache: Q rounded to F16; K.Q products
 * in F32 summed in F64; online softmax in F32; the weighted sum of V kept
 * in an F16 accumulator that is rounded after every key. */
static void
st_attn_one(const st_attn_job *job, uint32_t row, uint32_t h, float *scratch)
{
    const st_forward      *f = job->f;
    const st_hparams      *hp = &f->m->hp;
    const st_kv_cache     *kv = job->kv;
    const st_batch_entry  *e = &job->batch[row];
    uint32_t               hd = hp->head_dim;
    uint32_t               kh = h / (hp->n_head / hp->n_head_kv);
    const st_f16          *kbase = kv->k[job->layer];
    const st_f16          *vbase = kv->v[job->layer];
    const float           *qsrc = f->q + ((size_t) row * hp->n_head + h) * hd;
    float                 *out = f->attn + ((size_t) row * hp->n_head + h) * hd;
    float                 *qf = scratch;        /* (hd) Q as F16 values */
    float                 *acc = scratch + hd;  /* (hd) F16-valued accumulator */
    float                  scale = 1.0f / sqrtf((float) hd);
    float                  M = -INFINITY, S = 0.0f, s_inv;
    uint32_t               c, d;

    st_vec_f16_round(qsrc, qf, hd);
    for (d = 0; d < hd; d++) {
        acc[d] = 0.0f;
    }

    for (c = 0; c <= e->pos; c++) {
        size_t        r = st_kv_row(kv, e->seq, c) + (size_t) kh * hd;
        const st_f16 *kr = kbase + r, *vr = vbase + r;
        double        dot;
        float         s, ms = 1.0f, vs = 1.0f;

        dot = st_vec_dot_f16_f32_d(hd, kr, qf);
        s = (float) dot * scale;

        if (s > M) {
            float m_old = M;
            M = s;
            ms = expf(m_old - M);
            st_vec_f16_scale_round(acc, ms, hd);
        } else {
            vs = expf(s - M);
        }
        st_vec_f16_mad_round(acc, vr, vs, hd);
        S = S * ms + vs;
    }

    s_inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (d = 0; d < hd; d++) {
        out[d] = acc[d] * s_inv;
    }
}


static void
st_attn_worker(void *ctx, int ith, int nth)
{
    st_attn_job  *job = ctx;
    st_forward   *f = job->f;
    uint32_t      n_head = f->m->hp.n_head;
    uint64_t      total = (uint64_t) job->n * n_head, i0, i1, i;
    float        *scratch = f->attn_scratch + (size_t) ith * 3 * f->m->hp.head_dim;

    i0 = total * ith / nth;
    i1 = total * (ith + 1) / nth;
    for (i = i0; i < i1; i++) {
        st_attn_one(job, (uint32_t) (i / n_head), (uint32_t) (i % n_head),
                    scratch);
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


st_status
st_forward_run(st_forward *f, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, float *logits, st_error *err)
{
    const st_model        *m = f->m;
    const st_hparams      *hp = &m->hp;
    const st_type_traits  *emb_tr;
    uint32_t               qdim, kvdim, E, l, i, d, n_out;
    st_status              rc;
    st_attn_job            job;

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
    }

    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];

        /* attention block */
        for (i = 0; i < n; i++) {
            st_rms_norm(f->x + (size_t) i * E, L->attn_norm,
                        f->xn + (size_t) i * E, E, hp->rms_eps);
        }
        if ((rc = st_matmul(f->tp, &f->mm, &L->wq, f->xn, n, f->q))
            || (rc = st_matmul(f->tp, &f->mm, &L->wk, f->xn, n, f->k))
            || (rc = st_matmul(f->tp, &f->mm, &L->wv, f->xn, n, f->v)))
        {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        st_add_bias(f->q, L->bq, n, qdim);
        st_add_bias(f->k, L->bk, n, kvdim);
        st_add_bias(f->v, L->bv, n, kvdim);

        for (i = 0; i < n; i++) {
            size_t row = st_kv_row(kv, batch[i].seq, batch[i].pos);
            st_f16 *kd = kv->k[l] + row, *vd = kv->v[l] + row;

            st_rope_table(hp, batch[i].pos, f->rope_cs);
            st_rope_apply(hp, f->rope_cs, f->q + (size_t) i * qdim,
                          hp->n_head);
            st_rope_apply(hp, f->rope_cs, f->k + (size_t) i * kvdim,
                          hp->n_head_kv);
            for (d = 0; d < kvdim; d++) {
                kd[d] = st_f32_to_f16(f->k[(size_t) i * kvdim + d]);
                vd[d] = st_f32_to_f16(f->v[(size_t) i * kvdim + d]);
            }
        }

        job.f = f;
        job.kv = kv;
        job.batch = batch;
        job.n = n;
        job.layer = l;
        st_threadpool_run(f->tp, st_attn_worker, &job);

        if ((rc = st_matmul(f->tp, &f->mm, &L->wo, f->attn, n, f->proj))) {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        for (i = 0; i < n * E; i++) {
            f->x[i] += f->proj[i];
        }

        /* feed-forward block (SwiGLU) */
        for (i = 0; i < n; i++) {
            st_rms_norm(f->x + (size_t) i * E, L->ffn_norm,
                        f->xn + (size_t) i * E, E, hp->rms_eps);
        }
        if ((rc = st_matmul(f->tp, &f->mm, &L->w_gate, f->xn, n, f->gate))
            || (rc = st_matmul(f->tp, &f->mm, &L->w_up, f->xn, n, f->up)))
        {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        for (i = 0; i < n * hp->n_ff; i++) {
            float g = f->gate[i];
            f->gate[i] = g / (1.0f + expf(-g)) * f->up[i];
        }
        if ((rc = st_matmul(f->tp, &f->mm, &L->w_down, f->gate, n, f->proj))) {
            return st_error_set(err, rc, "forward: matmul failed");
        }
        for (i = 0; i < n * E; i++) {
            f->x[i] += f->proj[i];
        }
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
    }
    return ST_OK;
}
