/*
 * The CUDA backend's kernels, as C-callable launchers (the backend and the
 * kernel tests call these; tests are plain C). Every pointer is a device
 * pointer; stream is a cudaStream_t (NULL = default stream). Each launcher
 * returns 0 or a cudaError_t from the launch.
 *
 * Numerics mirror the CPU backend (src/backend/cpu/forward.c, quant_ref.c):
 * matmuls convert activations to the weight's vec_dot type first (Q8_0 for
 * Q4_0/Q5_0/Q8_0/IQ4_NL weights, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants and
 * IQ4_XS, F16/BF16 for F16/BF16) and add the
 * per-block products in block order, so quantized matmuls give the same
 * bits as the CPU's scalar reference. No kernel uses atomics: every
 * reduction has a fixed order, so the same input gives the same bytes.
 */
#ifndef ST_CUDA_KERNELS_H
#define ST_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Weight types (ggml ids, as in src/quant/quant.h). */
#define ST_CUDA_F32   0
#define ST_CUDA_F16   1
#define ST_CUDA_Q4_0  2
#define ST_CUDA_Q4_1  3
#define ST_CUDA_Q5_0  6
#define ST_CUDA_Q5_1  7
#define ST_CUDA_Q8_0  8
#define ST_CUDA_Q8_1  9
#define ST_CUDA_Q2_K  10
#define ST_CUDA_Q3_K  11
#define ST_CUDA_Q4_K  12
#define ST_CUDA_Q5_K  13
#define ST_CUDA_Q6_K  14
#define ST_CUDA_Q8_K  15
#define ST_CUDA_IQ4_NL 20
#define ST_CUDA_IQ4_XS 23
#define ST_CUDA_BF16  30

/* 1 if type is a weight type these kernels handle. */
int st_cuda_type_supported(int type);
/* Activation type the matmul converts inputs to, and its bytes per row
 * of n values (n a multiple of the block size). */
int st_cuda_vec_dot_type(int type);
size_t st_cuda_row_bytes(int type, int64_t n);
/* Values per block of a weight or activation type (1 for float types,
 * 0 if unknown). */
uint32_t st_cuda_block_values(int type);

/* out (n, E) = rows tokens[i] of the (n_vocab, E) weight, dequantized. */
int st_cuda_embed(const void *w, int type, size_t row_bytes,
    const int32_t *tokens, uint32_t n, uint32_t E, float *out, void *stream);

/* y (n, E) = rmsnorm(x[rows[i]]) * w; rows NULL = identity. Sum of
 * squares in double, as the CPU. */
int st_cuda_rmsnorm(const float *x, const int32_t *rows, const float *w,
    uint32_t n, uint32_t E, float eps, float *y, void *stream);

/* RoPE on q (n, n_head*hd) and k (n, n_kv*hd) in place at pos[i], then K
 * and V of row i stored as F16 at element offset kv_row[i] of kcache /
 * vcache. neox: 0 = adjacent pairs, 1 = halves. theta_scale =
 * rope_base^(-2/n_rot), computed by the caller (powf, as the CPU). */
int st_cuda_rope_store(float *q, float *k, const float *v,
    const uint32_t *pos, const uint64_t *kv_row, uint16_t *kcache,
    uint16_t *vcache, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t n_rot, int neox, float theta_scale,
    float freq_scale, void *stream);
/* The same with per-pair frequency divisors (Llama 3 rope_freqs, n_rot/2
 * values; NULL = none): angle = (theta / freq_factors[pair]) * freq_scale. */
int st_cuda_rope_store_ff(float *q, float *k, const float *v,
    const uint32_t *pos, const uint64_t *kv_row, uint16_t *kcache,
    uint16_t *vcache, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t n_rot, int neox, float theta_scale,
    float freq_scale, const float *freq_factors, void *stream);

/* Attention over the paged F16 cache, one (row, head) per block: out
 * (n, n_head*hd). Row i attends positions 0..pos[i] of the block table
 * blocks + blk_off[i] (block ids; a position p lives at element
 * ((blocks[p / block_tokens] * block_tokens + p % block_tokens) * kv_dim).
 * As the CPU: Q rounded to F16, K.Q summed in double, online softmax in
 * float with the V accumulator rounded to F16 after every key. */
int st_cuda_attention(const float *q, const uint16_t *kcache,
    const uint16_t *vcache, const uint32_t *blocks, const uint32_t *blk_off,
    const uint32_t *pos, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t block_tokens, float *out, void *stream);
/* The same with a sliding window (window > 0: row i attends positions
 * > pos[i] - window only) and the K.Q scale given (1 when Q is already
 * scaled; st_cuda_attention uses 1/sqrtf(hd)). */
int st_cuda_attention_win(const float *q, const uint16_t *kcache,
    const uint16_t *vcache, const uint32_t *blocks, const uint32_t *blk_off,
    const uint32_t *pos, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t block_tokens, uint32_t window, float scale,
    float *out, void *stream);

/* act (n rows of st_cuda_row_bytes(vdt, n_in)) = x (n, n_in) converted to
 * the vec_dot type vdt (F32: a copy). */
int st_cuda_quantize_act(const float *x, uint32_t n, uint32_t n_in, int vdt,
    void *act, void *stream);

/* y (n, n_out) = W . act^T, W (n_out rows of row_bytes, type), act from
 * st_cuda_quantize_act. A warp per output; one pass over a weight row
 * serves up to 16 batch rows, each row's value computed exactly as for
 * that row alone. May read the aligned 16-byte words around W's rows
 * (inside any 256-byte aligned and padded allocation). */
int st_cuda_matvec(const void *w, int type, size_t row_bytes, uint32_t n_in,
    uint32_t n_out, const void *act, uint32_t n, float *y, void *stream);

/* out (rows, n_in) F32 = rows row0.. of W, dequantized with the CPU's
 * to_float arithmetic (for cuBLAS). type may also be Q8_0 / Q8_1 / Q8_K
 * activation rows from st_cuda_quantize_act. */
int st_cuda_dequant_f32(const void *w, int type, size_t row_bytes,
    uint32_t n_in, uint32_t row0, uint32_t rows, float *out, void *stream);

/* y (n, dim) += b (dim) broadcast; x += y elementwise (count values). */
int st_cuda_add_bias(float *y, const float *b, uint32_t n, uint32_t dim,
    void *stream);
int st_cuda_add(float *x, const float *y, size_t count, void *stream);

/* gate = silu(gate) * up, elementwise over count values. */
int st_cuda_swiglu(float *gate, const float *up, size_t count, void *stream);

/* ids[i] = argmax of row i of logits (n, n_vocab), lowest id on ties. */
int st_cuda_argmax(const float *logits, uint32_t n, uint32_t n_vocab,
    int32_t *ids, void *stream);

/* Device memory for tests and tools written in C (0 / NULL on failure). */
void *st_cuda_malloc(size_t bytes);
void  st_cuda_free(void *p);
int   st_cuda_upload(void *dst, const void *src, size_t bytes);
int   st_cuda_download(void *dst, const void *src, size_t bytes);
int   st_cuda_sync(void);
/* Kernel launches / fiber switches / threads run so far (the shim counts
 * them; 0 on a GPU). */
void  st_cuda_shim_counters(uint64_t *launches, uint64_t *threads,
          uint64_t *switches);

#ifdef __cplusplus
}
#endif

#endif /* ST_CUDA_KERNELS_H */
