/*
 * Kernels of the CUDA backend (see st_cuda_kernels.h for the contract).
 * The same text runs on a GPU (nvcc) and on the CPU through the shim
 * (g++ -x c++): kernels use only what the shim provides (README there):
 * static __shared__ arrays, __syncthreads, __syncwarp, xor shuffles.
 *
 * Block layouts are ggml's (src/quant/quant.h); comments give the byte
 * offsets used here. The quantized matvec is in st_cuda_matvec.cu.
 */
#include "backend/cuda/st_cuda_compat.h"
#include "backend/cuda/st_cuda_kernels.h"
#include "backend/cuda/st_cuda_blocks.h"
#include "backend/cuda/st_cuda_quant_types.h"

#include <math.h>

#define ST_ATT_CHUNK 256           /* keys scored per pass in attention */

/* ---------------------------------------------------------------------- */
/* type helpers                                                            */
/* ---------------------------------------------------------------------- */

/* Element i of a weight row, dequantized with the CPU's arithmetic
 * (quant_ref.c to_float). */
static __device__ float
st_dq(int type, const uint8_t *row, uint32_t i)
{
    switch (type) {
    case ST_CUDA_F32:
        return ((const float *) row)[i];
    case ST_CUDA_F16:
        return st_h2f(((const uint16_t *) row)[i]);
    case ST_CUDA_BF16:
        return st_bf2f(((const uint16_t *) row)[i]);
    case ST_CUDA_Q4_0: {
        /* 18 bytes: d f16, qs[16]; low nibbles are elements 0..15 */
        const uint8_t *b = row + (size_t) (i / 32) * 18;
        uint32_t       j = i % 32;
        int            q = j < 16 ? (b[2 + j] & 0xf) : (b[2 + j - 16] >> 4);
        return (float) (q - 8) * st_h2f(st_ld16(b));
    }
    case ST_CUDA_Q8_0: {
        /* 34 bytes: d f16, qs[32] int8 */
        const uint8_t *b = row + (size_t) (i / 32) * 34;
        return (float) (int8_t) b[2 + i % 32] * st_h2f(st_ld16(b));
    }
    case ST_CUDA_Q4_K:
    case ST_CUDA_Q5_K: {
        /* q4_K 144 bytes: d, dmin, scales[12] @4, qs[128] @16;
         * q5_K 176 bytes: d, dmin, scales[12] @4, qh[32] @16, qs[128] @48 */
        int            q5 = type == ST_CUDA_Q5_K;
        const uint8_t *b = row + (size_t) (i / 256) * (q5 ? 176 : 144);
        const uint8_t *qs = b + (q5 ? 48 : 16);
        uint32_t       j = i % 256, p = j / 64, l = j % 64;
        int            sub = (int) (2 * p + (l >= 32)), sc, m, q;
        float          d = st_h2f(st_ld16(b)), dmin = st_h2f(st_ld16(b + 2));
        float          d1, m1;

        st_scale_min_k4(sub, b + 4, &sc, &m);
        d1 = d * (float) sc;
        m1 = dmin * (float) m;
        q = l < 32 ? (qs[p * 32 + l] & 0xf) : (qs[p * 32 + l - 32] >> 4);
        if (q5 && (b[16 + l % 32] & (1u << sub))) {
            q += 16;
        }
        return d1 * (float) q - m1;
    }
    case ST_CUDA_Q8_1: {
        /* 36 bytes: d f16, s f16 @2, qs[32] int8 @4 (activations only) */
        const uint8_t *b = row + (size_t) (i / 32) * 36;
        return (float) (int8_t) b[4 + i % 32] * st_h2f(st_ld16(b));
    }
    case ST_CUDA_Q8_K: {
        /* 292 bytes: d f32, qs[256] int8 @4 (activations only) */
        const uint8_t *b = row + (size_t) (i / 256) * 292;
        return *(const float *) b * (float) (int8_t) b[4 + i % 256];
    }
    case ST_CUDA_Q6_K: {
        /* 210 bytes: ql[128], qh[64] @128, scales[16] int8 @192, d @208 */
        const uint8_t *b = row + (size_t) (i / 256) * 210;
        uint32_t       j = i % 256, h = j / 128, jj = j % 128;
        uint32_t       l = jj % 32, g = jj / 32;
        const uint8_t *ql = b + h * 64, *qh = b + 128 + h * 32;
        const int8_t  *sc = (const int8_t *) (b + 192) + h * 8;
        int            is = (int) (l / 16), q;
        float          d = st_h2f(st_ld16(b + 208));

        switch (g) {
        case 0: q = (ql[l] & 0xf) | ((qh[l] & 3) << 4); break;
        case 1: q = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4); break;
        case 2: q = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4); break;
        default: q = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4); break;
        }
        return d * (float) sc[is + 2 * (int) g] * (float) (int8_t) (q - 32);
    }
    }
    return st_dq_qt(type, row, i);     /* Q4_1 .. IQ4_XS */
}


extern "C" int
st_cuda_type_supported(int type)
{
    switch (type) {
    case ST_CUDA_F32: case ST_CUDA_F16: case ST_CUDA_BF16: case ST_CUDA_Q4_0:
    case ST_CUDA_Q8_0: case ST_CUDA_Q4_K: case ST_CUDA_Q5_K: case ST_CUDA_Q6_K:
    case ST_CUDA_Q4_1: case ST_CUDA_Q5_0: case ST_CUDA_Q5_1: case ST_CUDA_Q2_K:
    case ST_CUDA_Q3_K: case ST_CUDA_IQ4_NL: case ST_CUDA_IQ4_XS:
        return 1;
    }
    return 0;   /* Q8_1 and Q8_K are activation types only */
}


extern "C" int
st_cuda_vec_dot_type(int type)
{
    switch (type) {
    case ST_CUDA_Q4_0: case ST_CUDA_Q8_0: case ST_CUDA_Q5_0:
    case ST_CUDA_IQ4_NL:
        return ST_CUDA_Q8_0;
    case ST_CUDA_Q4_1: case ST_CUDA_Q5_1:
        return ST_CUDA_Q8_1;
    case ST_CUDA_Q4_K: case ST_CUDA_Q5_K: case ST_CUDA_Q6_K:
    case ST_CUDA_Q2_K: case ST_CUDA_Q3_K: case ST_CUDA_IQ4_XS:
        return ST_CUDA_Q8_K;
    }
    return type;
}


extern "C" size_t
st_cuda_row_bytes(int type, int64_t n)
{
    switch (type) {
    case ST_CUDA_F32: return (size_t) n * 4;
    case ST_CUDA_F16: case ST_CUDA_BF16: return (size_t) n * 2;
    case ST_CUDA_Q4_0: return (size_t) n / 32 * 18;
    case ST_CUDA_Q8_0: return (size_t) n / 32 * 34;
    case ST_CUDA_Q4_K: return (size_t) n / 256 * 144;
    case ST_CUDA_Q5_K: return (size_t) n / 256 * 176;
    case ST_CUDA_Q6_K: return (size_t) n / 256 * 210;
    case ST_CUDA_Q8_K: return (size_t) n / 256 * 292;
    case ST_CUDA_Q4_1: return (size_t) n / 32 * 20;
    case ST_CUDA_Q5_0: return (size_t) n / 32 * 22;
    case ST_CUDA_Q5_1: return (size_t) n / 32 * 24;
    case ST_CUDA_Q8_1: return (size_t) n / 32 * 36;
    case ST_CUDA_IQ4_NL: return (size_t) n / 32 * 18;
    case ST_CUDA_Q2_K: return (size_t) n / 256 * 84;
    case ST_CUDA_Q3_K: return (size_t) n / 256 * 110;
    case ST_CUDA_IQ4_XS: return (size_t) n / 256 * 136;
    }
    return 0;
}


extern "C" uint32_t
st_cuda_block_values(int type)
{
    switch (type) {
    case ST_CUDA_F32: case ST_CUDA_F16: case ST_CUDA_BF16:
        return 1;
    case ST_CUDA_Q4_0: case ST_CUDA_Q8_0: case ST_CUDA_Q4_1: case ST_CUDA_Q5_0:
    case ST_CUDA_Q5_1: case ST_CUDA_Q8_1: case ST_CUDA_IQ4_NL:
        return 32;
    case ST_CUDA_Q4_K: case ST_CUDA_Q5_K: case ST_CUDA_Q6_K: case ST_CUDA_Q8_K:
    case ST_CUDA_Q2_K: case ST_CUDA_Q3_K: case ST_CUDA_IQ4_XS:
        return 256;
    }
    return 0;
}


/* ---------------------------------------------------------------------- */
/* embedding, norms, element-wise                                          */
/* ---------------------------------------------------------------------- */

static __global__ void
st_k_embed(const uint8_t *w, int type, size_t row_bytes, const int32_t *tokens,
    uint32_t E, float *out)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;

    if (i < E) {
        out[(size_t) r * E + i] =
            st_dq(type, w + (size_t) tokens[r] * row_bytes, i);
    }
}


extern "C" int
st_cuda_embed(const void *w, int type, size_t row_bytes, const int32_t *tokens,
    uint32_t n, uint32_t E, float *out, void *stream)
{
    dim3 grid((E + 255) / 256, n), block(256);

    if (n == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_embed, grid, block, 0,
        (cudaStream_t) stream, (const uint8_t *) w, type, row_bytes, tokens,
        E, out);
}


/* One block (256 threads) per row. Squares in float, summed in double in
 * a fixed tree; scale = 1 / sqrtf(mean + eps) as the CPU. */
static __global__ void
st_k_rmsnorm(const float *x, const int32_t *rows, const float *w, uint32_t E,
    float eps, float *y)
{
    __shared__ double part[256];
    uint32_t          r = blockIdx.x, t = threadIdx.x, i, s;
    const float      *xr = x + (size_t) (rows ? (uint32_t) rows[r] : r) * E;
    double            sum = 0.0;
    float             mean, scale;

    for (i = t; i < E; i += 256) {
        sum += (double) (xr[i] * xr[i]);
    }
    part[t] = sum;
    __syncthreads();
    for (s = 128; s > 0; s >>= 1) {
        if (t < s) {
            part[t] += part[t + s];
        }
        __syncthreads();
    }
    mean = (float) (part[0] / E);
    scale = 1.0f / sqrtf(mean + eps);
    for (i = t; i < E; i += 256) {
        y[(size_t) r * E + i] = (xr[i] * scale) * w[i];
    }
}


extern "C" int
st_cuda_rmsnorm(const float *x, const int32_t *rows, const float *w,
    uint32_t n, uint32_t E, float eps, float *y, void *stream)
{
    if (n == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_rmsnorm, dim3(n), dim3(256), 0,
        (cudaStream_t) stream, x, rows, w, E, eps, y);
}


static __global__ void
st_k_add_bias(float *y, const float *b, uint32_t dim, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        y[i] += b[i % dim];
    }
}


extern "C" int
st_cuda_add_bias(float *y, const float *b, uint32_t n, uint32_t dim,
    void *stream)
{
    size_t count = (size_t) n * dim;

    if (count == 0 || b == NULL) {
        return 0;
    }
    return ST_LAUNCH(st_k_add_bias,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, y, b, dim, count);
}


static __global__ void
st_k_add(float *x, const float *y, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        x[i] += y[i];
    }
}


extern "C" int
st_cuda_add(float *x, const float *y, size_t count, void *stream)
{
    if (count == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_add,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, x, y, count);
}


static __global__ void
st_k_swiglu(float *gate, const float *up, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}


extern "C" int
st_cuda_swiglu(float *gate, const float *up, size_t count, void *stream)
{
    if (count == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_swiglu,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, gate, up, count);
}


/* ---------------------------------------------------------------------- */
/* RoPE + KV store                                                         */
/* ---------------------------------------------------------------------- */

/* Rotates pair p (0 <= p < n_rot/2) of one head in place. theta is built
 * as the CPU builds its table: pos, multiplied by theta_scale p times. */
static __device__ void
st_rope_pair(float *h, uint32_t p, uint32_t n_rot, int neox, float pos,
    float theta_scale, float freq_scale, const float *ff)
{
    float    theta = pos, t, c, s, x0, x1;
    uint32_t i, a, b;

    for (i = 0; i < p; i++) {
        theta *= theta_scale;
    }
    t = (ff ? theta / ff[p] : theta) * freq_scale;
    c = cosf(t);
    s = sinf(t);
    a = neox ? p : 2 * p;
    b = neox ? p + n_rot / 2 : 2 * p + 1;
    x0 = h[a];
    x1 = h[b];
    h[a] = x0 * c - x1 * s;
    h[b] = x0 * s + x1 * c;
}


/* One block per row: rotate q and k, then store k and v as F16. */
static __global__ void
st_k_rope_store(float *q, float *k, const float *v, const uint32_t *pos,
    const uint64_t *kv_row, uint16_t *kcache, uint16_t *vcache,
    uint32_t n_head, uint32_t n_kv, uint32_t hd, uint32_t n_rot, int neox,
    float theta_scale, float freq_scale, const float *ff)
{
    uint32_t r = blockIdx.x, t = threadIdx.x, half = n_rot / 2, i;
    uint32_t kvdim = n_kv * hd, n_pairs = (n_head + n_kv) * half;
    float    fpos = (float) pos[r];
    float   *qr = q + (size_t) r * n_head * hd, *kr = k + (size_t) r * kvdim;
    uint16_t *kd = kcache + kv_row[r], *vd = vcache + kv_row[r];

    for (i = t; i < n_pairs; i += blockDim.x) {
        uint32_t h = i / half, p = i % half;
        float   *base = h < n_head ? qr + (size_t) h * hd
                                   : kr + (size_t) (h - n_head) * hd;
        st_rope_pair(base, p, n_rot, neox, fpos, theta_scale, freq_scale, ff);
    }
    __syncthreads();
    for (i = t; i < kvdim; i += blockDim.x) {
        kd[i] = st_f2h(kr[i]);
        vd[i] = st_f2h(v[(size_t) r * kvdim + i]);
    }
}


extern "C" int
st_cuda_rope_store(float *q, float *k, const float *v, const uint32_t *pos,
    const uint64_t *kv_row, uint16_t *kcache, uint16_t *vcache, uint32_t n,
    uint32_t n_head, uint32_t n_kv, uint32_t hd, uint32_t n_rot, int neox,
    float theta_scale, float freq_scale, void *stream)
{
    return st_cuda_rope_store_ff(q, k, v, pos, kv_row, kcache, vcache, n,
        n_head, n_kv, hd, n_rot, neox, theta_scale, freq_scale, NULL, stream);
}


extern "C" int
st_cuda_rope_store_ff(float *q, float *k, const float *v,
    const uint32_t *pos, const uint64_t *kv_row, uint16_t *kcache,
    uint16_t *vcache, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t n_rot, int neox, float theta_scale,
    float freq_scale, const float *freq_factors, void *stream)
{
    if (n == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_rope_store, dim3(n), dim3(128), 0,
        (cudaStream_t) stream, q, k, v, pos, kv_row, kcache, vcache, n_head,
        n_kv, hd, n_rot, neox, theta_scale, freq_scale, freq_factors);
}


/* ---------------------------------------------------------------------- */
/* attention                                                               */
/* ---------------------------------------------------------------------- */

/*
 * Block (ST_WARPS warps) per (head, row). Keys are taken in chunks: the
 * warps score the chunk's keys (a warp per key, lanes over dimensions,
 * double sums reduced by xor shuffles: exact, so equal to the CPU's
 * sequential double sum), then thread d replays the CPU's online softmax
 * over the chunk's scores in key order for dimension d. Every thread
 * tracks the same M and S. hd <= 32 * ST_WARPS * 2 (256).
 */
static __global__ void
st_k_attention(const float *q, const uint16_t *kcache, const uint16_t *vcache,
    const uint32_t *blocks, const uint32_t *blk_off, const uint32_t *pos,
    uint32_t n_head, uint32_t n_kv, uint32_t hd, uint32_t block_tokens,
    uint32_t window, float scale, float *out)
{
    __shared__ float qf[256];
    __shared__ float score[ST_ATT_CHUNK];
    uint32_t         h = blockIdx.x, r = blockIdx.y, t = threadIdx.x;
    uint32_t         lane = t % 32, warp = t / 32, nt = blockDim.x;
    uint32_t         kh = h / (n_head / n_kv), kvdim = n_kv * hd;
    uint32_t         last = pos[r], first, c0, c, d, cn;
    const uint32_t  *tab = blocks + blk_off[r];
    const float     *qr = q + ((size_t) r * n_head + h) * hd;
    float            M = -INFINITY, S = 0.0f, acc0 = 0.0f, acc1 = 0.0f;

    for (d = t; d < hd; d += nt) {
        qf[d] = st_h2f(st_f2h(qr[d]));
    }
    __syncthreads();

    /* a sliding window sees positions > last - window only */
    first = window > 0 && last + 1 > window ? last + 1 - window : 0;
    for (c0 = first; c0 <= last; c0 += ST_ATT_CHUNK) {
        cn = last - c0 + 1 < ST_ATT_CHUNK ? last - c0 + 1 : ST_ATT_CHUNK;
        for (c = warp; c < cn; c += nt / 32) {
            uint32_t        p = c0 + c;
            size_t          row = ((size_t) tab[p / block_tokens] * block_tokens
                                   + p % block_tokens) * kvdim
                                  + (size_t) kh * hd;
            const uint16_t *kr = kcache + row;
            double          dot = 0.0;
            int             o;

            for (d = lane; d < hd; d += 32) {
                dot += (double) (st_h2f(kr[d]) * qf[d]);
            }
            for (o = 16; o > 0; o >>= 1) {
                dot += __shfl_xor_sync(0xffffffffu, dot, o);
            }
            if (lane == 0) {
                score[c] = (float) dot * scale;
            }
        }
        __syncthreads();

        /* thread t owns dimensions t and t + nt */
        for (c = 0; c < cn; c++) {
            uint32_t        p = c0 + c;
            size_t          row = ((size_t) tab[p / block_tokens] * block_tokens
                                   + p % block_tokens) * kvdim
                                  + (size_t) kh * hd;
            const uint16_t *vr = vcache + row;
            float           s = score[c], ms = 1.0f, vs = 1.0f;

            if (s > M) {
                float m_old = M;
                M = s;
                ms = expf(m_old - M);
                acc0 = st_h2f(st_f2h(acc0 * ms));
                acc1 = st_h2f(st_f2h(acc1 * ms));
            } else {
                vs = expf(s - M);
            }
            if (t < hd) {
                acc0 = st_h2f(st_f2h(fmaf(st_h2f(vr[t]), vs, acc0)));
            }
            if (t + nt < hd) {
                acc1 = st_h2f(st_f2h(fmaf(st_h2f(vr[t + nt]), vs, acc1)));
            }
            S = S * ms + vs;
        }
        __syncthreads();
    }

    {
        float  s_inv = S == 0.0f ? 0.0f : 1.0f / S;
        float *o = out + ((size_t) r * n_head + h) * hd;

        if (t < hd) {
            o[t] = acc0 * s_inv;
        }
        if (t + nt < hd) {
            o[t + nt] = acc1 * s_inv;
        }
    }
}


extern "C" int
st_cuda_attention(const float *q, const uint16_t *kcache,
    const uint16_t *vcache, const uint32_t *blocks, const uint32_t *blk_off,
    const uint32_t *pos, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t block_tokens, float *out, void *stream)
{
    return st_cuda_attention_win(q, kcache, vcache, blocks, blk_off, pos, n,
        n_head, n_kv, hd, block_tokens, 0, 1.0f / sqrtf((float) hd), out,
        stream);
}


extern "C" int
st_cuda_attention_win(const float *q, const uint16_t *kcache,
    const uint16_t *vcache, const uint32_t *blocks, const uint32_t *blk_off,
    const uint32_t *pos, uint32_t n, uint32_t n_head, uint32_t n_kv,
    uint32_t hd, uint32_t block_tokens, uint32_t window, float scale,
    float *out, void *stream)
{
    if (n == 0) {
        return 0;
    }
    if (hd > 2 * 32 * ST_WARPS || n_kv == 0 || n_head % n_kv != 0) {
        return 1;   /* cudaErrorInvalidValue */
    }
    return ST_LAUNCH(st_k_attention, dim3(n_head, n),
        dim3(32 * ST_WARPS), 0, (cudaStream_t) stream, q, kcache, vcache,
        blocks, blk_off, pos, n_head, n_kv, hd, block_tokens, window, scale,
        out);
}


/* ---------------------------------------------------------------------- */
/* activation quantizers                                                   */
/* ---------------------------------------------------------------------- */

/* Round half to even, out of range / NaN -> INT32_MIN (cvtps2dq). */
static __device__ __forceinline__ int32_t
st_round_i32(float v)
{
    if (!(fabsf(v) < 2147483648.f)) {
        return INT32_MIN;
    }
    return (int32_t) rintf(v);
}


static __device__ __forceinline__ float
st_max_ps(float a, float b)
{
    return a > b ? a : b;
}


/* One thread per 32-value block: llama.cpp's x86 quantize_row_q8_0 (the
 * CPU reference, quant_ref.c), max taken in the same lane order; y gets
 * d (f16) and qs[32] @2. Returns d before its rounding to f16. */
static __device__ float
st_quantize_q8_0_block(const float *x, uint8_t *y)
{
    float lane[8], amax, d, id;
    int   j, k;

    for (k = 0; k < 8; k++) {
        lane[k] = fabsf(x[k]);
        for (j = 1; j < 4; j++) {
            lane[k] = st_max_ps(lane[k], fabsf(x[8 * j + k]));
        }
    }
    for (k = 0; k < 4; k++) {
        lane[k] = st_max_ps(lane[k + 4], lane[k]);
    }
    lane[0] = st_max_ps(lane[0], lane[2]);
    lane[1] = st_max_ps(lane[1], lane[3]);
    amax = st_max_ps(lane[0], lane[1]);
    d = amax / 127.f;
    *(uint16_t *) y = st_f2h(d);
    id = amax != 0.0f ? 127.f / amax : 0.0f;
    for (j = 0; j < 32; j++) {
        int32_t v = st_round_i32(x[j] * id);
        y[2 + j] = (uint8_t) (int8_t) (v < -128 ? -128 : v > 127 ? 127 : v);
    }
    return d;
}


/* One thread per 32-value block: llama.cpp's x86 quantize_row_q8_1 (the
 * CPU reference): the Q8_0 quants and d, then s = f16(d * sum of the
 * quants). 36 bytes: d f16, s f16 @2, qs[32] @4. */
static __device__ void
st_quantize_q8_1_block(const float *x, uint8_t *y)
{
    uint8_t  q8_0[34];
    int32_t  sum = 0;
    int      j;
    float    d = st_quantize_q8_0_block(x, q8_0);

    for (j = 0; j < 32; j++) {
        y[4 + j] = q8_0[2 + j];
        sum += (int8_t) q8_0[2 + j];
    }
    y[0] = q8_0[0];
    y[1] = q8_0[1];
    *(uint16_t *) (y + 2) = st_f2h(d * (float) sum);
}


/* One thread per 256-value block: ggml's quantize_row_q8_K_ref.
 * 292 bytes: d f32, qs[256] @4, bsums[16] int16 @260. */
static __device__ void
st_quantize_q8_K_block(const float *x, uint8_t *y)
{
    float    max = 0.0f, amax = 0.0f, iscale;
    int8_t  *qs = (int8_t *) (y + 4);
    int16_t *bsums = (int16_t *) (y + 260);
    int      j, g, sum;

    for (j = 0; j < 256; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        for (j = 0; j < 292; j++) {
            y[j] = 0;
        }
        return;
    }
    iscale = -127.f / max;
    for (j = 0; j < 256; j++) {
        int32_t v = (int32_t) rintf(iscale * x[j]);
        qs[j] = (int8_t) (v < 127 ? v : 127);
    }
    for (g = 0; g < 16; g++) {
        sum = 0;
        for (j = 0; j < 16; j++) {
            sum += qs[16 * g + j];
        }
        bsums[g] = (int16_t) sum;
    }
    *(float *) y = 1 / iscale;
}


static __global__ void
st_k_quantize_act(const float *x, uint32_t n_in, int vdt, uint8_t *act,
    size_t act_row_bytes)
{
    uint32_t     r = blockIdx.y;
    uint32_t     i = blockIdx.x * blockDim.x + threadIdx.x;
    const float *xr = x + (size_t) r * n_in;
    uint8_t     *ar = act + (size_t) r * act_row_bytes;

    switch (vdt) {
    case ST_CUDA_F32:
        if (i < n_in) {
            ((float *) ar)[i] = xr[i];
        }
        break;
    case ST_CUDA_F16:
        if (i < n_in) {
            ((uint16_t *) ar)[i] = st_f2h(xr[i]);
        }
        break;
    case ST_CUDA_BF16:
        if (i < n_in) {
            ((uint16_t *) ar)[i] = st_f2bf(xr[i]);
        }
        break;
    case ST_CUDA_Q8_0:
        if (i < n_in / 32) {
            st_quantize_q8_0_block(xr + (size_t) i * 32, ar + (size_t) i * 34);
        }
        break;
    case ST_CUDA_Q8_1:
        if (i < n_in / 32) {
            st_quantize_q8_1_block(xr + (size_t) i * 32, ar + (size_t) i * 36);
        }
        break;
    case ST_CUDA_Q8_K:
        if (i < n_in / 256) {
            st_quantize_q8_K_block(xr + (size_t) i * 256,
                                   ar + (size_t) i * 292);
        }
        break;
    }
}


extern "C" int
st_cuda_quantize_act(const float *x, uint32_t n, uint32_t n_in, int vdt,
    void *act, void *stream)
{
    uint32_t units = vdt == ST_CUDA_Q8_0 || vdt == ST_CUDA_Q8_1 ? n_in / 32
                     : vdt == ST_CUDA_Q8_K ? n_in / 256 : n_in;

    if (n == 0 || units == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_quantize_act,
        dim3((units + 127) / 128, n), dim3(128), 0, (cudaStream_t) stream,
        x, n_in, vdt, (uint8_t *) act, st_cuda_row_bytes(vdt, n_in));
}


/* ---------------------------------------------------------------------- */
/* dequantize to F32 (cuBLAS prefill)                                      */
/* ---------------------------------------------------------------------- */

static __global__ void
st_k_dequant_f32(const uint8_t *w, int type, size_t row_bytes, uint32_t n_in,
    uint32_t row0, float *out)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;

    if (i < n_in) {
        out[(size_t) r * n_in + i] =
            st_dq(type, w + (size_t) (row0 + r) * row_bytes, i);
    }
}


extern "C" int
st_cuda_dequant_f32(const void *w, int type, size_t row_bytes, uint32_t n_in,
    uint32_t row0, uint32_t rows, float *out, void *stream)
{
    if (rows == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_dequant_f32,
        dim3((n_in + 255) / 256, rows), dim3(256), 0, (cudaStream_t) stream,
        (const uint8_t *) w, type, row_bytes, n_in, row0, out);
}


/* ---------------------------------------------------------------------- */
/* argmax                                                                  */
/* ---------------------------------------------------------------------- */

static __global__ void
st_k_argmax(const float *logits, uint32_t n_vocab, int32_t *ids)
{
    __shared__ float bv[256];
    __shared__ int32_t bi[256];
    uint32_t         r = blockIdx.x, t = threadIdx.x, i, s;
    const float     *lr = logits + (size_t) r * n_vocab;
    float            best = -INFINITY;
    int32_t          best_i = -1;

    for (i = t; i < n_vocab; i += 256) {
        if (lr[i] > best || best_i < 0) {
            best = lr[i];
            best_i = (int32_t) i;
        }
    }
    bv[t] = best;
    bi[t] = best_i;
    __syncthreads();
    for (s = 128; s > 0; s >>= 1) {
        if (t < s) {
            int32_t j = bi[t + s];
            if (j >= 0 && (bi[t] < 0 || bv[t + s] > bv[t]
                           || (bv[t + s] == bv[t] && j < bi[t])))
            {
                bv[t] = bv[t + s];
                bi[t] = j;
            }
        }
        __syncthreads();
    }
    if (t == 0) {
        ids[r] = bi[0] < 0 ? 0 : bi[0];
    }
}


extern "C" int
st_cuda_argmax(const float *logits, uint32_t n, uint32_t n_vocab, int32_t *ids,
    void *stream)
{
    if (n == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_argmax, dim3(n), dim3(256), 0,
        (cudaStream_t) stream, logits, n_vocab, ids);
}


/* ---------------------------------------------------------------------- */
/* memory helpers for C callers                                            */
/* ---------------------------------------------------------------------- */

extern "C" void *
st_cuda_malloc(size_t bytes)
{
    void *p = NULL;

    return cudaMalloc(&p, bytes ? bytes : 1) == cudaSuccess ? p : NULL;
}


extern "C" void
st_cuda_free(void *p)
{
    if (p != NULL) {
        cudaFree(p);
    }
}


extern "C" int
st_cuda_upload(void *dst, const void *src, size_t bytes)
{
    return (int) cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
}


extern "C" int
st_cuda_download(void *dst, const void *src, size_t bytes)
{
    return (int) cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
}


extern "C" int
st_cuda_sync(void)
{
    return (int) cudaDeviceSynchronize();
}


extern "C" void
st_cuda_shim_counters(uint64_t *launches, uint64_t *threads,
    uint64_t *switches)
{
#if ST_CUDA_SHIM
    st_shim_stats s;

    st_shim_stats_get(&s);
    *launches = s.launches;
    *threads = s.threads;
    *switches = s.switches;
#else
    *launches = 0;
    *threads = 0;
    *switches = 0;
#endif
}
