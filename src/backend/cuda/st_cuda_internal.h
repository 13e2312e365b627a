/*
 * Internals shared by the CUDA backend's parts:
 *   st_cuda_backend.cu  lifecycle: device count, create (one cleanup
 *                       path), free, health
 *   st_cuda_weights.cu  weight checks and the upload into one arena
 *   st_cuda_matmul.cu   projections: matvec kernels or cuBLAS GEMM
 *   st_cuda_forward.cu  the forward pass, step inputs, decode graphs
 * Kernels are in st_cuda_kernels.cu / st_cuda_matvec.cu.
 */
#ifndef ST_CUDA_INTERNAL_H
#define ST_CUDA_INTERNAL_H

/* The engine headers are C11; C++ spells _Static_assert static_assert. */
#if !defined(_Static_assert)
#define _Static_assert static_assert
#endif
extern "C" {
#include "backend/backend.h"
#include "model/gelu.h"
}

#include "backend/cuda/st_cuda_compat.h"
#include "backend/cuda/st_cuda_kernels.h"
#include "backend/cuda/st_cuda_arch.h"
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
    const float    *q_norm, *k_norm;         /* (hd) or NULL */
    const float    *post_attn_norm, *post_ffn_norm; /* (n_embd) or NULL */
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
    const float     *rope_freqs;      /* (n_rot / 2) or NULL */
    const float     *gelu;            /* (ST_GELU_TABLE_SIZE) GeGLU models */
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
    uint32_t         act_n;          /* rows act holds */
    int              act_vdt;
    uint32_t         lead_rows;      /* this step: leading rows that are
                                        their sequence's only row (decode
                                        rows); never sent to cuBLAS */
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

typedef struct {
    uint8_t   *base;      /* device arena (NULL while sizing) */
    size_t     off;
    st_status  rc;
    st_error  *err;
} st_cuda_uploader;

/* device allocations are kept 256-byte aligned */
static inline size_t
st_align256(size_t v)
{
    return (v + 255) & ~(size_t) 255;
}

/* st_cuda_backend.cu: an error from the CUDA runtime, as st_error */
st_status st_cuda_fail(st_error *err, const char *what, int e);

/* st_cuda_weights.cu */
st_status st_cuda_check_weight(const st_weight *w, const char *name, st_error *err);
void st_cuda_put_model(st_cuda_impl *c, st_cuda_uploader *u);

/* st_cuda_matmul.cu */
int st_cuda_is_float_type(int type);
/* y (n, n_out) = x (n, n_in) . W^T; the first n_lead rows always by the
 * matvec kernels (batch-invariant), the rest by cuBLAS when they are at
 * least gemm_min_rows. */
st_status st_cuda_matmul(st_cuda_impl *c, const st_cuda_weight *w, const float *x,
    uint32_t n, uint32_t n_lead, float *y, st_error *err);

/* st_cuda_forward.cu */
st_status st_cuda_in_alloc(st_cuda_impl *c, size_t bytes, st_error *err);
st_status st_cuda_run(st_backend *b, st_kv_cache *kv, const st_batch_entry *batch, uint32_t n, float *logits, st_error *err);
/* backend.h hidden: output-normed residual rows of the last run */
st_status st_cuda_hidden(st_backend *b, const st_batch_entry *batch,
    uint32_t n, float *out, st_error *err);

#endif /* ST_CUDA_INTERNAL_H */
