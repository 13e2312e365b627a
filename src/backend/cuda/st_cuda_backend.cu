/*
 * The CUDA backend (backend.h): weights uploaded once to device memory in
 * their GGUF formats (no host fallback), K/V in device memory with the
 * engine's block geometry (F16), and the forward pass of model_forward.c
 * as kernels (st_cuda_kernels.cu) plus cuBLAS for prefill-sized
 * projections.
 *
 * Matmuls: batches of fewer than gemm_min_rows rows (decode) run the
 * quantized matvec kernel, which reads the weights in their own format and
 * mirrors the CPU numerics; larger batches (prefill) run cublasGemmEx with
 * FP32 accumulation: F16/BF16 weights as stored times activations rounded
 * to F16/BF16 (as the CPU rounds them), F32 as F32, and quantized weights
 * as F32 tiles dequantized on the fly times activations passed through the
 * CPU's Q8_0/Q8_K quantizer and back to F32 (so the GEMM computes the
 * CPU's dot products up to summation order). Results are deterministic
 * for a given batch shape; they are not bit-invariant across the
 * matvec/GEMM switch (ST_CUDA_GEMM_MIN_ROWS, default 16; 0 = never GEMM).
 *
 * Memory layout (one device): [weights arena][K/V: per layer K then V,
 * each (n_blocks * block_tokens, kv_dim) F16][scratch activations].
 *
 * Decode steps (every row wants logits, fewer rows than the cuBLAS
 * threshold) replay a CUDA graph captured once per batch size: the
 * kernels read everything that changes between steps (tokens, positions,
 * KV rows, block tables) from the step-input buffer, whose address and
 * per-size layout stay fixed, so a step is one input copy, one graph
 * launch and one logits copy. ST_CUDA_GRAPHS=0 turns graphs off.
 */
/* The engine headers are C11; C++ spells _Static_assert static_assert. */
#if !defined(_Static_assert)
#define _Static_assert static_assert
#endif
extern "C" {
#include "backend/backend.h"
}

#include "backend/cuda/st_cuda_compat.h"
#include "backend/cuda/st_cuda_kernels.h"
#include "backend/cuda/st_cuda_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_CUDA_LOGIT_ROWS    64          /* output rows per head pass */
#define ST_CUDA_TILE_BYTES    (64u << 20) /* F32 dequant tile for cuBLAS */
#define ST_CUDA_GEMM_MIN_ROWS 16
#define ST_CUDA_GRAPH_MAX_ROWS 64         /* <= ST_CUDA_LOGIT_ROWS */

typedef struct {
    const uint8_t *d;
    int            type;
    size_t         row_bytes;
    uint32_t       n_in;
    uint32_t       n_out;
} st_cuda_weight;

typedef struct {
    const float    *attn_norm, *ffn_norm;    /* (n_embd) */
    const float    *bq, *bk, *bv;            /* qwen2 biases or NULL */
    st_cuda_weight  wq, wk, wv, wo, w_gate, w_up, w_down;
} st_cuda_layer;

typedef struct {
    const st_model  *m;
    int              device;
    cudaStream_t     stream;
    cublasHandle_t   blas;
    uint32_t         max_tokens;
    uint32_t         gemm_min_rows;   /* 0: never cuBLAS */
    st_kv_geometry   geo;

    uint8_t         *arena;           /* weights */
    uint64_t         weight_bytes;
    st_cuda_weight   tok_embd, output;
    const float     *output_norm;
    st_cuda_layer   *layers;          /* host array of device pointers */

    uint16_t        *kv;              /* (n_layer, 2, n_blocks*bt, kv_dim) */
    uint64_t         kv_bytes;
    size_t           kv_layer_elems;  /* n_blocks * bt * kv_dim */

    /* scratch, sized for max_tokens rows */
    float           *x;               /* (T, E) residual stream */
    float           *xn;              /* (T, E) normalised */
    float           *q;               /* (T, n_head*hd) */
    float           *k, *v;           /* (T, kv_dim) */
    float           *attn;            /* (T, n_head*hd) */
    float           *proj;            /* (T, E) */
    float           *gate, *up;       /* (T, n_ff) */
    float           *logits;          /* (LOGIT_ROWS, n_vocab) */
    uint8_t         *act;             /* (T, max_in) activations as vec_dot type */
    float           *actf;            /* (T, max_in) those dequantized (cuBLAS) */
    float           *tile;            /* F32 weight tile for cuBLAS or NULL */
    /* which input act / actf hold (q, k and v share one conversion of
     * the normalised rows; gate and up another); reset by the caller
     * whenever the input's contents change */
    const float     *act_src;
    int              act_vdt;
    int              actf_ok;
    size_t           tile_elems;
    uint64_t         scratch_bytes;

    /* per-step inputs: host staging (pinned) and its device copy; the
     * device buffer moves only when a step needs more room, and in_gen
     * counts the moves (graphs captured before a move are stale) */
    uint8_t         *h_in, *d_in;
    size_t           in_cap;
    uint64_t         in_gen;

    /* decode graphs by batch rows (1..graph_max_rows), NULL = none yet */
    cudaGraphExec_t *graphs;          /* (graph_max_rows + 1) */
    uint64_t        *graph_gen;       /* in_gen each was captured at */
    uint32_t         graph_max_rows;  /* 0: graphs off */
    uint32_t         graph_slots;     /* entries of graphs / graph_gen */
    uint64_t         graph_captures, graph_replays;

    char             health[512];
} st_cuda_impl;


static st_status
st_cuda_fail(st_error *err, const char *what, int e)
{
    return st_error_set(err, ST_ERR_INTERNAL, "cuda: %s: %s (%d)", what,
                        cudaGetErrorString((cudaError_t) e), e);
}


extern "C" int
st_backend_cuda_device_count(char *why, size_t why_len)
{
    int         n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);

    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        if (why != NULL && why_len > 0) {
            snprintf(why, why_len, "cudaGetDeviceCount: %s (%d)",
                     cudaGetErrorString(e), (int) e);
        }
        return 0;
    }
    if (n <= 0 && why != NULL && why_len > 0) {
        snprintf(why, why_len, "cudaGetDeviceCount: no CUDA device");
    }
    return n > 0 ? n : 0;
}


/* ---- weights -------------------------------------------------------- */

static size_t
st_align256(size_t v)
{
    return (v + 255) & ~(size_t) 255;
}


static st_status
st_cuda_check_weight(const st_weight *w, const char *name, st_error *err)
{
    if (!st_cuda_type_supported((int) w->type)) {
        const st_type_traits *tr = st_type_traits_get(w->type);
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s has type %s, which the CUDA "
                            "backend does not support", name,
                            tr ? tr->name : "unknown");
    }
    if (w->n_in > UINT32_MAX || w->n_out > UINT32_MAX) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: weight %s is too large", name);
    }
    return ST_OK;
}


typedef struct {
    uint8_t   *base;      /* device arena (NULL while sizing) */
    size_t     off;
    st_status  rc;
    st_error  *err;
} st_cuda_uploader;


static const void *
st_cuda_put(st_cuda_uploader *u, const void *host, size_t bytes)
{
    size_t      off = u->off;
    cudaError_t e;

    u->off = st_align256(u->off + bytes);
    if (u->base == NULL || host == NULL || u->rc != ST_OK) {
        return NULL;
    }
    e = cudaMemcpy(u->base + off, host, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        u->rc = st_cuda_fail(u->err, "cudaMemcpy (weights)", e);
        return NULL;
    }
    return u->base + off;
}


static void
st_cuda_put_weight(st_cuda_uploader *u, const st_weight *w, st_cuda_weight *out)
{
    out->type = (int) w->type;
    out->row_bytes = w->row_bytes;
    out->n_in = (uint32_t) w->n_in;
    out->n_out = (uint32_t) w->n_out;
    out->d = (const uint8_t *) st_cuda_put(u, w->data,
                                           (size_t) w->n_out * w->row_bytes);
}


/* Sizes (base == NULL) or uploads every tensor; the same walk both times
 * so that offsets agree. */
static void
st_cuda_put_model(st_cuda_impl *c, st_cuda_uploader *u)
{
    const st_model   *m = c->m;
    const st_hparams *hp = &m->hp;
    size_t            E = hp->n_embd;
    size_t            qdim = (size_t) hp->n_head * hp->head_dim;
    size_t            kvdim = (size_t) hp->n_head_kv * hp->head_dim;
    uint32_t          l;

    st_cuda_put_weight(u, &m->tok_embd, &c->tok_embd);
    if (m->output.data == m->tok_embd.data) {
        c->output = c->tok_embd;           /* tied: one copy */
    } else {
        st_cuda_put_weight(u, &m->output, &c->output);
    }
    c->output_norm = (const float *) st_cuda_put(u, m->output_norm,
                                                 E * sizeof(float));
    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];
        st_cuda_layer  *D = &c->layers[l];

        D->attn_norm = (const float *) st_cuda_put(u, L->attn_norm, E * 4);
        D->ffn_norm = (const float *) st_cuda_put(u, L->ffn_norm, E * 4);
        D->bq = L->bq ? (const float *) st_cuda_put(u, L->bq, qdim * 4) : NULL;
        D->bk = L->bk ? (const float *) st_cuda_put(u, L->bk, kvdim * 4) : NULL;
        D->bv = L->bv ? (const float *) st_cuda_put(u, L->bv, kvdim * 4) : NULL;
        st_cuda_put_weight(u, &L->wq, &D->wq);
        st_cuda_put_weight(u, &L->wk, &D->wk);
        st_cuda_put_weight(u, &L->wv, &D->wv);
        st_cuda_put_weight(u, &L->wo, &D->wo);
        st_cuda_put_weight(u, &L->w_gate, &D->w_gate);
        st_cuda_put_weight(u, &L->w_up, &D->w_up);
        st_cuda_put_weight(u, &L->w_down, &D->w_down);
    }
}


/* ---- matmul ---------------------------------------------------------- */

static int
st_cuda_is_float_type(int type)
{
    return type == ST_CUDA_F32 || type == ST_CUDA_F16 || type == ST_CUDA_BF16;
}


/* act = x converted to vdt, unless it already holds exactly that. */
static int
st_cuda_act(st_cuda_impl *c, const float *x, uint32_t n, uint32_t n_in,
    int vdt)
{
    int e;

    if (c->act_src == x && c->act_vdt == vdt) {
        return 0;
    }
    e = st_cuda_quantize_act(x, n, n_in, vdt, c->act, c->stream);
    c->act_src = e == 0 ? x : NULL;
    c->act_vdt = vdt;
    c->actf_ok = 0;
    return e;
}


/* y (n, n_out) = x (n, n_in) . W^T. The caller resets c->act_src when x
 * has new contents. */
static st_status
st_cuda_matmul(st_cuda_impl *c, const st_cuda_weight *w, const float *x,
    uint32_t n, float *y, st_error *err)
{
    int vdt = st_cuda_vec_dot_type(w->type), e;

    if (n == 0) {
        return ST_OK;
    }
    if (c->blas != NULL && c->gemm_min_rows > 0 && n >= c->gemm_min_rows) {
        const float    one = 1.0f, zero = 0.0f;
        cublasStatus_t s;

        if (st_cuda_is_float_type(w->type)) {
            /* activations in the weight's own type (F16/BF16 products are
             * exact in F32), FP32 accumulation */
            cudaDataType_t dt = w->type == ST_CUDA_F32 ? CUDA_R_32F
                                : w->type == ST_CUDA_BF16 ? CUDA_R_16BF
                                : CUDA_R_16F;
            const void    *b = x;

            if (dt != CUDA_R_32F) {
                if ((e = st_cuda_act(c, x, n, w->n_in, vdt))) {
                    return st_cuda_fail(err, "quantize (gemm)", e);
                }
                b = c->act;
            }
            s = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) w->n_out,
                             (int) n, (int) w->n_in, &one, w->d, dt,
                             (int) w->n_in, b, dt, (int) w->n_in, &zero, y,
                             CUDA_R_32F, (int) w->n_out, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT);
            if (s != CUBLAS_STATUS_SUCCESS) {
                return st_error_set(err, ST_ERR_INTERNAL,
                                    "cuda: cublasGemmEx failed (%d)", (int) s);
            }
            return ST_OK;
        }
        /* quantized: the activations go through the CPU's quantizer (Q8_0
         * or Q8_K) and back to F32, the weights are dequantized to F32
         * tiles of whole rows; an FP32 GEMM then computes the CPU's dot
         * products up to summation order */
        {
            uint32_t rows = (uint32_t) (c->tile_elems / w->n_in), r0, cnt;

            if (rows > 65535) {
                rows = 65535;         /* grid.y limit of the dequant kernel */
            }
            if (rows == 0) {
                return st_error_set(err, ST_ERR_INTERNAL,
                                    "cuda: dequant tile too small");
            }
            e = st_cuda_act(c, x, n, w->n_in, vdt);
            if (e == 0 && !c->actf_ok) {
                e = st_cuda_dequant_f32(c->act, vdt,
                                        st_cuda_row_bytes(vdt, w->n_in),
                                        w->n_in, 0, n, c->actf, c->stream);
                c->actf_ok = e == 0;
            }
            if (e) {
                return st_cuda_fail(err, "quantize (gemm)", e);
            }
            for (r0 = 0; r0 < w->n_out; r0 += rows) {
                cnt = w->n_out - r0 < rows ? w->n_out - r0 : rows;
                e = st_cuda_dequant_f32(w->d, w->type, w->row_bytes, w->n_in,
                                        r0, cnt, c->tile, c->stream);
                if (e) {
                    return st_cuda_fail(err, "dequant", e);
                }
                s = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) cnt,
                                 (int) n, (int) w->n_in, &one, c->tile,
                                 CUDA_R_32F, (int) w->n_in, c->actf,
                                 CUDA_R_32F, (int) w->n_in, &zero, y + r0,
                                 CUDA_R_32F, (int) w->n_out,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                if (s != CUBLAS_STATUS_SUCCESS) {
                    return st_error_set(err, ST_ERR_INTERNAL,
                                        "cuda: cublasGemmEx failed (%d)",
                                        (int) s);
                }
            }
        }
        return ST_OK;
    }

    if (vdt != ST_CUDA_F32) {
        if ((e = st_cuda_act(c, x, n, w->n_in, vdt))) {
            return st_cuda_fail(err, "quantize", e);
        }
    }
    e = st_cuda_matvec(w->d, w->type, w->row_bytes, w->n_in, w->n_out,
                       vdt == ST_CUDA_F32 ? (const void *) x : c->act, n, y,
                       c->stream);
    return e ? st_cuda_fail(err, "matvec", e) : ST_OK;
}


/* ---- the forward pass ------------------------------------------------- */

/* Step inputs in one upload: tokens, pos, blk_off, out_rows (n each),
 * kv_row (n, 8-aligned), then the block tables. */
typedef struct {
    size_t tokens, pos, blk_off, out_rows, kv_row, blocks, total;
} st_cuda_in_layout;


/* (Re)allocates the step-input buffers for bytes; moving the device
 * buffer makes every captured graph stale. */
static st_status
st_cuda_in_alloc(st_cuda_impl *c, size_t bytes, st_error *err)
{
    cudaError_t e;

    bytes = st_align256(bytes);
    cudaFreeHost(c->h_in);
    cudaFree(c->d_in);
    c->h_in = NULL;
    c->d_in = NULL;
    c->in_cap = 0;
    c->in_gen++;
    e = cudaMallocHost((void **) &c->h_in, bytes);
    if (e != cudaSuccess) {
        c->h_in = NULL;
        return st_cuda_fail(err, "cudaMallocHost (step inputs)", e);
    }
    e = cudaMalloc((void **) &c->d_in, bytes);
    if (e != cudaSuccess) {
        c->d_in = NULL;
        return st_cuda_fail(err, "cudaMalloc (step inputs)", e);
    }
    c->in_cap = bytes;
    return ST_OK;
}


static st_status
st_cuda_stage(st_cuda_impl *c, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, st_cuda_in_layout *lay, uint32_t *n_out, st_error *err)
{
    const st_hparams *hp = &c->m->hp;
    size_t            n_blk = 0, need;
    uint32_t          i, j, kvdim = hp->n_head_kv * hp->head_dim;
    const st_kv_seq  *prev = NULL;
    int32_t          *tokens, *out_rows;
    uint32_t         *pos, *blk_off, *blocks;
    uint64_t         *kv_row;

    for (i = 0; i < n; i++) {
        const st_batch_entry *e = &batch[i];

        if (e->token < 0 || (uint32_t) e->token >= hp->n_vocab) {
            return st_error_set(err, ST_ERR_INVALID,
                                "forward: token id %d out of range", e->token);
        }
        if (e->seq == NULL
            || (uint64_t) e->seq->n_blocks * kv->block_tokens <= e->pos)
        {
            return st_error_set(err, ST_ERR_INTERNAL,
                                "forward: no KV slot for position %u", e->pos);
        }
        if (e->seq != prev) {
            n_blk += e->seq->n_blocks;
            prev = e->seq;
        }
    }
    lay->tokens = 0;
    lay->pos = lay->tokens + 4 * (size_t) n;
    lay->blk_off = lay->pos + 4 * (size_t) n;
    lay->out_rows = lay->blk_off + 4 * (size_t) n;
    lay->kv_row = (lay->out_rows + 4 * (size_t) n + 7) & ~(size_t) 7;
    lay->blocks = lay->kv_row + 8 * (size_t) n;
    lay->total = lay->blocks + 4 * n_blk;
    need = st_align256(lay->total);
    if (need > c->in_cap) {
        /* block tables longer than the KV pool (blocks shared between
         * sequences, or one sequence on several rows): room for twice
         * as much, and the graphs recaptured against the new buffer */
        st_status rc = st_cuda_in_alloc(c, 2 * need, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    tokens = (int32_t *) (c->h_in + lay->tokens);
    pos = (uint32_t *) (c->h_in + lay->pos);
    blk_off = (uint32_t *) (c->h_in + lay->blk_off);
    out_rows = (int32_t *) (c->h_in + lay->out_rows);
    kv_row = (uint64_t *) (c->h_in + lay->kv_row);
    blocks = (uint32_t *) (c->h_in + lay->blocks);

    n_blk = 0;
    prev = NULL;
    *n_out = 0;
    for (i = 0; i < n; i++) {
        const st_batch_entry *e = &batch[i];

        if (e->seq != prev) {
            for (j = 0; j < e->seq->n_blocks; j++) {
                blocks[n_blk + j] = e->seq->blocks[j];
            }
            blk_off[i] = (uint32_t) n_blk;
            n_blk += e->seq->n_blocks;
            prev = e->seq;
        } else {
            blk_off[i] = blk_off[i - 1];
        }
        tokens[i] = e->token;
        pos[i] = e->pos;
        kv_row[i] = ((uint64_t) e->seq->blocks[e->pos / kv->block_tokens]
                     * kv->block_tokens + e->pos % kv->block_tokens) * kvdim;
        if (e->want_logits) {
            out_rows[(*n_out)++] = (int32_t) i;
        }
    }
    {
        cudaError_t e = cudaMemcpyAsync(c->d_in, c->h_in, lay->total,
                                        cudaMemcpyHostToDevice, c->stream);
        if (e != cudaSuccess) {
            return st_cuda_fail(err, "cudaMemcpy (step inputs)", e);
        }
    }
    return ST_OK;
}


#define ST_CK(expr, what)                                                    \
    do {                                                                     \
        int st_e_ = (expr);                                                  \
        if (st_e_ != 0) {                                                    \
            return st_cuda_fail(err, what, st_e_);                           \
        }                                                                    \
    } while (0)


/*
 * Enqueues the forward pass of n staged rows on c->stream: embedding,
 * layers, final norm and output head for the n_out rows that want logits.
 * With logits != NULL the logits are copied to the host after each head
 * pass; with NULL (graph capture, n_out <= ST_CUDA_LOGIT_ROWS) they stay
 * in c->logits. Everything that changes between steps is read by the
 * kernels from c->d_in, so the same calls for the same n launch the same
 * kernels with the same arguments.
 */
static st_status
st_cuda_enqueue(st_cuda_impl *c, st_kv_cache *kv, uint32_t n, uint32_t n_out,
    const st_cuda_in_layout *lay, float *logits, st_error *err)
{
    const st_hparams  *hp = &c->m->hp;
    uint32_t           E = hp->n_embd, qdim = hp->n_head * hp->head_dim;
    uint32_t           kvdim = hp->n_head_kv * hp->head_dim, l, r0;
    float              theta_scale;
    st_status          rc;
    const int32_t     *d_tokens, *d_out_rows;
    const uint32_t    *d_pos, *d_blk_off, *d_blocks;
    const uint64_t    *d_kv_row;

    d_tokens = (const int32_t *) (c->d_in + lay->tokens);
    d_pos = (const uint32_t *) (c->d_in + lay->pos);
    d_blk_off = (const uint32_t *) (c->d_in + lay->blk_off);
    d_out_rows = (const int32_t *) (c->d_in + lay->out_rows);
    d_kv_row = (const uint64_t *) (c->d_in + lay->kv_row);
    d_blocks = (const uint32_t *) (c->d_in + lay->blocks);
    theta_scale = powf(hp->rope_base, -2.0f / (float) hp->n_rot);

    ST_CK(st_cuda_embed(c->tok_embd.d, c->tok_embd.type, c->tok_embd.row_bytes,
                        d_tokens, n, E, c->x, c->stream), "embed");

    for (l = 0; l < hp->n_layer; l++) {
        const st_cuda_layer *L = &c->layers[l];
        uint16_t            *kc = c->kv + 2 * l * c->kv_layer_elems;
        uint16_t            *vc = kc + c->kv_layer_elems;

        /* attention block */
        ST_CK(st_cuda_rmsnorm(c->x, NULL, L->attn_norm, n, E, hp->rms_eps,
                              c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->wq, c->xn, n, c->q, err))
            || (rc = st_cuda_matmul(c, &L->wk, c->xn, n, c->k, err))
            || (rc = st_cuda_matmul(c, &L->wv, c->xn, n, c->v, err)))
        {
            return rc;
        }
        ST_CK(st_cuda_add_bias(c->q, L->bq, n, qdim, c->stream), "bias");
        ST_CK(st_cuda_add_bias(c->k, L->bk, n, kvdim, c->stream), "bias");
        ST_CK(st_cuda_add_bias(c->v, L->bv, n, kvdim, c->stream), "bias");
        ST_CK(st_cuda_rope_store(c->q, c->k, c->v, d_pos, d_kv_row, kc, vc, n,
                                 hp->n_head, hp->n_head_kv, hp->head_dim,
                                 hp->n_rot, hp->rope_type == ST_ROPE_NEOX,
                                 theta_scale, hp->rope_freq_scale, c->stream),
              "rope");
        ST_CK(st_cuda_attention(c->q, kc, vc, d_blocks, d_blk_off, d_pos, n,
                                hp->n_head, hp->n_head_kv, hp->head_dim,
                                kv->block_tokens, c->attn, c->stream),
              "attention");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->wo, c->attn, n, c->proj, err))) {
            return rc;
        }
        ST_CK(st_cuda_add(c->x, c->proj, (size_t) n * E, c->stream), "add");

        /* feed-forward block (SwiGLU) */
        ST_CK(st_cuda_rmsnorm(c->x, NULL, L->ffn_norm, n, E, hp->rms_eps,
                              c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->w_gate, c->xn, n, c->gate, err))
            || (rc = st_cuda_matmul(c, &L->w_up, c->xn, n, c->up, err)))
        {
            return rc;
        }
        ST_CK(st_cuda_swiglu(c->gate, c->up, (size_t) n * hp->n_ff,
                             c->stream), "swiglu");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &L->w_down, c->gate, n, c->proj, err))) {
            return rc;
        }
        ST_CK(st_cuda_add(c->x, c->proj, (size_t) n * E, c->stream), "add");
    }

    /* final norm and output head for rows that want logits, in passes of
     * ST_CUDA_LOGIT_ROWS rows */
    for (r0 = 0; r0 < n_out; r0 += ST_CUDA_LOGIT_ROWS) {
        uint32_t    cnt = n_out - r0 < ST_CUDA_LOGIT_ROWS
                          ? n_out - r0 : ST_CUDA_LOGIT_ROWS;
        cudaError_t e;

        ST_CK(st_cuda_rmsnorm(c->x, d_out_rows + r0, c->output_norm, cnt, E,
                              hp->rms_eps, c->xn, c->stream), "rmsnorm");
        c->act_src = NULL;
        if ((rc = st_cuda_matmul(c, &c->output, c->xn, cnt, c->logits, err))) {
            return rc;
        }
        if (logits == NULL) {
            continue;
        }
        e = cudaMemcpyAsync(logits + (size_t) r0 * hp->n_vocab, c->logits,
                            sizeof(float) * cnt * hp->n_vocab,
                            cudaMemcpyDeviceToHost, c->stream);
        if (e != cudaSuccess) {
            return st_cuda_fail(err, "cudaMemcpy (logits)", e);
        }
    }
    return ST_OK;
}


/* Captures the decode step of n rows into c->graphs[n]. 1 = captured,
 * 0 = graphs unusable here (the caller runs the kernels directly), -1 =
 * a kernel launch failed (err set). */
static int
st_cuda_graph_capture(st_cuda_impl *c, st_kv_cache *kv, uint32_t n,
    const st_cuda_in_layout *lay, st_error *err)
{
    cudaGraph_t     graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t     e, e_end;
    st_status       rc;

    if (c->graphs[n] != NULL) {
        cudaGraphExecDestroy(c->graphs[n]);
        c->graphs[n] = NULL;
    }
    /* thread-local mode: other threads (other backends in this process)
     * may allocate meanwhile; this thread makes no such call until the
     * capture ends */
    e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        return 0;
    }
    rc = st_cuda_enqueue(c, kv, n, n, lay, NULL, err);
    e_end = cudaStreamEndCapture(c->stream, &graph);
    if (rc != ST_OK) {
        if (graph != NULL) {
            cudaGraphDestroy(graph);
        }
        return -1;
    }
    if (e_end != cudaSuccess || graph == NULL) {
        (void) cudaGetLastError();
        return 0;
    }
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        return 0;
    }
    c->graphs[n] = exec;
    c->graph_gen[n] = c->in_gen;
    c->graph_captures++;
    return 1;
}


static st_status
st_cuda_run(st_backend *b, st_kv_cache *kv, const st_batch_entry *batch,
    uint32_t n, float *logits, st_error *err)
{
    st_cuda_impl      *c = (st_cuda_impl *) b->impl;
    const st_hparams  *hp = &c->m->hp;
    uint32_t           n_out = 0;
    st_cuda_in_layout  lay = { 0, 0, 0, 0, 0, 0, 0 };
    st_status          rc;
    cudaError_t        e;
    int                replayed = 0;

    if (n == 0) {
        return ST_OK;
    }
    if (n > c->max_tokens) {
        return st_error_set(err, ST_ERR_INVALID,
                            "forward: batch of %u rows exceeds %u", n,
                            c->max_tokens);
    }
    if (kv->block_tokens != c->geo.block_tokens
        || kv->n_blocks > c->geo.n_blocks)
    {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: KV geometry differs from the backend's");
    }
    rc = st_cuda_stage(c, kv, batch, n, &lay, &n_out, err);
    if (rc != ST_OK) {
        return rc;
    }

    /* a decode step: replay the graph of this batch size (captured on
     * first use, or again after the step-input buffer moved), then fetch
     * the logits */
    if (n <= c->graph_max_rows && n_out == n) {
        int cap = 1;

        if (c->graphs[n] == NULL || c->graph_gen[n] != c->in_gen) {
            cap = st_cuda_graph_capture(c, kv, n, &lay, err);
            if (cap < 0) {
                return ST_ERR_INTERNAL;
            }
            if (cap == 0) {
                c->graph_max_rows = 0;     /* no graphs on this device */
            }
        }
        if (cap > 0) {
            e = cudaGraphLaunch(c->graphs[n], c->stream);
            if (e != cudaSuccess) {
                return st_cuda_fail(err, "cudaGraphLaunch", e);
            }
            c->graph_replays++;
            e = cudaMemcpyAsync(logits, c->logits,
                                sizeof(float) * n * hp->n_vocab,
                                cudaMemcpyDeviceToHost, c->stream);
            if (e != cudaSuccess) {
                return st_cuda_fail(err, "cudaMemcpy (logits)", e);
            }
            replayed = 1;
        }
    }
    if (!replayed) {
        rc = st_cuda_enqueue(c, kv, n, n_out, &lay, logits, err);
        if (rc != ST_OK) {
            return rc;
        }
    }
    e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "forward", e);
    }
    return ST_OK;
}


extern "C" int
st_cuda_backend_graph_stats(const st_backend *b, uint64_t *captures,
    uint64_t *replays)
{
    const st_cuda_impl *c;

    if (b == NULL || b->name == NULL || strcmp(b->name, "cuda") != 0) {
        return -1;
    }
    c = (const st_cuda_impl *) b->impl;
    *captures = c->graph_captures;
    *replays = c->graph_replays;
    return c->graph_max_rows > 0 ? 1 : 0;
}


/* ---- create / free ---------------------------------------------------- */

static void
st_cuda_free(st_backend *b)
{
    st_cuda_impl *c;

    if (b == NULL) {
        return;
    }
    c = (st_cuda_impl *) b->impl;
    if (c != NULL) {
        float *bufs[] = { c->x, c->xn, c->q, c->k, c->v, c->attn, c->proj,
                          c->gate, c->up, c->logits };
        size_t i;

        for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            cudaFree(bufs[i]);
        }
        cudaFree(c->act);
        cudaFree(c->tile);
        cudaFree(c->actf);
        cudaFree(c->kv);
        cudaFree(c->arena);
        cudaFree(c->d_in);
        cudaFreeHost(c->h_in);
        if (c->graphs != NULL) {
            for (i = 0; i < c->graph_slots; i++) {
                if (c->graphs[i] != NULL) {
                    cudaGraphExecDestroy(c->graphs[i]);
                }
            }
        }
        free(c->graphs);
        free(c->graph_gen);
        free(c->layers);
        if (c->blas != NULL) {
            cublasDestroy(c->blas);
        }
        if (c->stream != NULL) {
            cudaStreamDestroy(c->stream);
        }
        free(c);
    }
    free(b);
}


static const char *
st_cuda_health(st_backend *b)
{
    return ((st_cuda_impl *) b->impl)->health;
}


/* Device name for JSON: printable ASCII without quotes or backslashes. */
static void
st_cuda_json_name(char *dst, size_t len, const char *src)
{
    size_t i;

    for (i = 0; i + 1 < len && src[i] != '\0'; i++) {
        unsigned char ch = (unsigned char) src[i];
        dst[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
                 ? '?' : (char) ch;
    }
    dst[i] = '\0';
}


static st_status
st_cuda_alloc(void **p, size_t bytes, const char *what, st_error *err)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);

    if (e != cudaSuccess) {
        *p = NULL;
        return st_cuda_fail(err, what, e);
    }
    return ST_OK;
}


extern "C" st_status
st_backend_cuda_create(st_backend **out, const st_model *m,
    uint32_t max_tokens, const st_kv_geometry *geo, int device, st_error *err)
{
    const st_hparams *hp = &m->hp;
    st_backend       *b;
    st_cuda_impl     *c;
    st_cuda_uploader  up;
    cudaDeviceProp    prop;
    cudaError_t       e;
    st_status         rc;
    size_t            free_b = 0, total_b = 0, T = max_tokens, E, qdim, kvdim;
    size_t            max_in, max_quant_elems = 0, tile_bytes, need;
    int               n_dev, rt_ver = 0, rt_major, rt_minor, i;
    uint32_t          l;
    const char       *env;
    char              why[160] = "", name[256];

    *out = NULL;
    if (max_tokens == 0 || geo == NULL || geo->block_tokens == 0
        || geo->n_layer != hp->n_layer
        || geo->kv_dim != hp->n_head_kv * hp->head_dim)
    {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: bad max_tokens or KV geometry");
    }
    if (hp->head_dim > 256 || hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: head_dim %u / n_rot %u not supported "
                            "(head_dim <= 256)", hp->head_dim, hp->n_rot);
    }
    n_dev = st_backend_cuda_device_count(why, sizeof(why));
    if (n_dev == 0) {
        return st_error_set(err, ST_ERR_UNSUPPORTED, "cuda: %s", why);
    }
    if (device < 0) {
        device = 0;
    }
    if (device >= n_dev) {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: device %d does not exist (%d devices)",
                            device, n_dev);
    }

    /* weight types first: a clear error before any allocation */
    if ((rc = st_cuda_check_weight(&m->tok_embd, "token_embd", err))
        || (rc = st_cuda_check_weight(&m->output, "output", err)))
    {
        return rc;
    }
    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];
        const st_weight *ws[7] = { &L->wq, &L->wk, &L->wv, &L->wo,
                                   &L->w_gate, &L->w_up, &L->w_down };
        for (i = 0; i < 7; i++) {
            char nm[48];
            snprintf(nm, sizeof(nm), "blk.%u (matrix %d)", l, i);
            if ((rc = st_cuda_check_weight(ws[i], nm, err))) {
                return rc;
            }
            if (!st_cuda_is_float_type((int) ws[i]->type)) {
                size_t el = (size_t) ws[i]->n_in * ws[i]->n_out;
                max_quant_elems = el > max_quant_elems ? el : max_quant_elems;
            }
        }
    }
    if (!st_cuda_is_float_type((int) m->output.type)) {
        size_t el = (size_t) m->output.n_in * m->output.n_out;
        max_quant_elems = el > max_quant_elems ? el : max_quant_elems;
    }

    e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "cudaSetDevice", e);
    }
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "cudaGetDeviceProperties", e);
    }
    cudaRuntimeGetVersion(&rt_ver);
    rt_major = rt_ver / 1000;
    rt_minor = (rt_ver % 1000) / 10;

    b = (st_backend *) calloc(1, sizeof(*b));
    c = (st_cuda_impl *) calloc(1, sizeof(*c));
    if (b == NULL || c == NULL) {
        free(b);
        free(c);
        return st_error_set(err, ST_ERR_NOMEM, "cuda: out of memory");
    }
    b->impl = c;
    b->name = "cuda";
    b->run = st_cuda_run;
    b->free = st_cuda_free;
    b->health_json = st_cuda_health;
    c->m = m;
    c->device = device;
    c->max_tokens = max_tokens;
    c->geo = *geo;
    c->gemm_min_rows = ST_CUDA_GEMM_MIN_ROWS;
    env = getenv("ST_CUDA_GEMM_MIN_ROWS");
    if (env != NULL) {
        c->gemm_min_rows = (uint32_t) strtoul(env, NULL, 10);
    }
    /* decode graphs for batches below the cuBLAS threshold, whose logits
     * fit one head pass */
    c->graph_max_rows = c->gemm_min_rows == 0 ? ST_CUDA_GRAPH_MAX_ROWS
                        : c->gemm_min_rows - 1;
    if (c->graph_max_rows > ST_CUDA_GRAPH_MAX_ROWS) {
        c->graph_max_rows = ST_CUDA_GRAPH_MAX_ROWS;
    }
    if (c->graph_max_rows > max_tokens) {
        c->graph_max_rows = max_tokens;
    }
    env = getenv("ST_CUDA_GRAPHS");
    if (env != NULL && strcmp(env, "0") == 0) {
        c->graph_max_rows = 0;
    }
    c->graph_slots = c->graph_max_rows + 1;
    c->graphs = (cudaGraphExec_t *) calloc(c->graph_slots,
                                           sizeof(cudaGraphExec_t));
    c->graph_gen = (uint64_t *) calloc(c->graph_slots, sizeof(uint64_t));
    c->layers = (st_cuda_layer *) calloc(hp->n_layer, sizeof(st_cuda_layer));
    if (c->layers == NULL || c->graphs == NULL || c->graph_gen == NULL) {
        st_cuda_free(b);
        return st_error_set(err, ST_ERR_NOMEM, "cuda: out of memory");
    }

    /* sizes: weights, KV, scratch; then one check against free memory */
    memset(&up, 0, sizeof(up));
    up.err = err;
    st_cuda_put_model(c, &up);
    c->weight_bytes = up.off;
    c->kv_layer_elems = (size_t) geo->n_blocks * geo->block_tokens
                        * geo->kv_dim;
    c->kv_bytes = (uint64_t) c->kv_layer_elems * 2 * sizeof(uint16_t)
                  * hp->n_layer;
    E = hp->n_embd;
    qdim = (size_t) hp->n_head * hp->head_dim;
    kvdim = (size_t) hp->n_head_kv * hp->head_dim;
    max_in = E > hp->n_ff ? E : hp->n_ff;
    max_in = max_in > qdim ? max_in : qdim;
    tile_bytes = 0;
    if (max_quant_elems > 0 && c->gemm_min_rows > 0) {
        tile_bytes = max_quant_elems * 4 < ST_CUDA_TILE_BYTES
                     ? max_quant_elems * 4 : ST_CUDA_TILE_BYTES;
        if (tile_bytes < max_in * 4) {
            tile_bytes = max_in * 4;
        }
    }
    c->tile_elems = tile_bytes / 4;
    c->scratch_bytes = sizeof(float) * T * (3 * E + 2 * qdim + 2 * kvdim
                                            + 2 * (size_t) hp->n_ff)
                       + sizeof(float) * ST_CUDA_LOGIT_ROWS * hp->n_vocab
                       + 4 * T * max_in * (tile_bytes ? 2 : 1) + tile_bytes;
    need = c->weight_bytes + c->kv_bytes + c->scratch_bytes;
    e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess) {
        st_cuda_free(b);
        return st_cuda_fail(err, "cudaMemGetInfo", e);
    }
    if (need > free_b) {
        rc = st_error_set(err, ST_ERR_NOMEM,
                          "cuda: device %d (%s) has %llu bytes free; the "
                          "model needs %llu (weights %llu, KV cache %llu, "
                          "scratch %llu)", device, prop.name,
                          (unsigned long long) free_b,
                          (unsigned long long) need,
                          (unsigned long long) c->weight_bytes,
                          (unsigned long long) c->kv_bytes,
                          (unsigned long long) c->scratch_bytes);
        st_cuda_free(b);
        return rc;
    }

    if ((rc = st_cuda_alloc((void **) &c->arena, c->weight_bytes, "cudaMalloc (weights)", err))
        || (rc = st_cuda_alloc((void **) &c->kv, c->kv_bytes, "cudaMalloc (KV cache)", err))
        || (rc = st_cuda_alloc((void **) &c->x, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->xn, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->proj, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->q, 4 * T * qdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->attn, 4 * T * qdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->k, 4 * T * kvdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->v, 4 * T * kvdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->gate, 4 * T * hp->n_ff, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->up, 4 * T * hp->n_ff, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->logits,
                               4 * (size_t) ST_CUDA_LOGIT_ROWS * hp->n_vocab,
                               "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->act, 4 * T * max_in, "cudaMalloc", err))
        || (tile_bytes > 0
            && (rc = st_cuda_alloc((void **) &c->tile, tile_bytes, "cudaMalloc", err)))
        || (tile_bytes > 0
            && (rc = st_cuda_alloc((void **) &c->actf, 4 * T * max_in, "cudaMalloc", err))))
    {
        st_cuda_free(b);
        return rc;
    }
    /* K/V start as zeros so that an unwritten slot is never NaN */
    e = cudaMemset(c->kv, 0, c->kv_bytes);
    if (e != cudaSuccess) {
        st_cuda_free(b);
        return st_cuda_fail(err, "cudaMemset (KV cache)", e);
    }
    up.base = c->arena;
    up.off = 0;
    up.rc = ST_OK;
    st_cuda_put_model(c, &up);
    if (up.rc != ST_OK) {
        st_cuda_free(b);
        return up.rc;
    }
    /* step inputs: per-row fields for max_tokens rows and block tables as
     * long as the whole KV pool (grown only if blocks are shared) */
    rc = st_cuda_in_alloc(c, 32 * T + 64 + 4 * (size_t) geo->n_blocks, err);
    if (rc != ST_OK) {
        st_cuda_free(b);
        return rc;
    }
    e = cudaStreamCreate(&c->stream);
    if (e != cudaSuccess) {
        st_cuda_free(b);
        return st_cuda_fail(err, "cudaStreamCreate", e);
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        st_cuda_free(b);
        return st_error_set(err, ST_ERR_INTERNAL, "cuda: cublasCreate failed");
    }
    cublasSetStream(c->blas, c->stream);

    /* one kernel launch now: a device the binary has no code for (below
     * sm_80) fails here, at load, rather than on the first request */
    {
        int ke = st_cuda_add(c->x, c->xn, 1, c->stream);
        if (ke == 0) {
            ke = (int) cudaStreamSynchronize(c->stream);
        }
        if (ke != 0) {
            st_cuda_free(b);
            return st_cuda_fail(err, "test launch", ke);
        }
    }

    b->device_bytes = c->weight_bytes + c->kv_bytes;
    st_cuda_json_name(name, sizeof(name), prop.name);
    snprintf(b->device, sizeof(b->device), "%.100s (cuda:%d, sm_%d%d)", name,
             device, prop.major, prop.minor);
    snprintf(c->health, sizeof(c->health),
             "\"memory_type\":\"cuda\",\"device_name\":\"%.200s\","
             "\"compute_capability\":\"%d.%d\","
             "\"cuda_runtime_version\":\"%d.%d\",\"vram_bytes\":%llu,"
             "\"vram_weights_bytes\":%llu,\"vram_kv_bytes\":%llu",
             name, prop.major, prop.minor, rt_major, rt_minor,
             (unsigned long long) b->device_bytes,
             (unsigned long long) c->weight_bytes,
             (unsigned long long) c->kv_bytes);
    *out = b;
    return ST_OK;
}
