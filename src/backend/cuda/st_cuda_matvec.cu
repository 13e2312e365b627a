/*
 * The quantized matvec of the CUDA backend (contract in
 * st_cuda_kernels.h): decode-sized batches, weights in their GGUF block
 * formats, the CPU's per-block arithmetic and summation order. Same text
 * for nvcc and the shim, as st_cuda_kernels.cu.
 */
#include "backend/cuda/st_cuda_compat.h"
#include "backend/cuda/st_cuda_kernels.h"
#include "backend/cuda/st_cuda_blocks.h"
#include "backend/cuda/st_cuda_quant_types.h"

/* ---------------------------------------------------------------------- */
/* matvec: a warp per output, one weight pass for up to 16 batch rows     */
/* ---------------------------------------------------------------------- */

/* Block b of a quantized weight row times the activation's block: the
 * value(s) the CPU adds to its sum for this block. Two-term types (q4_K,
 * q5_K) do sum -= *ta; sum += *tb; Q4_0 and IQ4_NL sum = fma(*tb, *ta,
 * sum); the others sum += *tb. Q8_0 and Q5_0 are not block-term types:
 * the CPU keeps 8 lanes a dot
 * (st_k_matvec). The other types added for issue 10 (Q4_1, Q5_1, Q2_K,
 * Q3_K, IQ4_XS) are in st_cuda_quant_types.h. */
static __device__ void
st_block_term(int type, const uint8_t *wr, const uint8_t *ar, uint32_t b,
    float *ta, float *tb)
{
    int32_t isum = 0;
    int     j, l, g;

    *ta = 0.0f;
    switch (type) {
    case ST_CUDA_IQ4_NL:
    case ST_CUDA_Q4_0: {
        /* the block order (quant_ref.c): ta = d_x * d_y, tb = the exact
         * sum of (q - 8) * q8 (|.| <= 32768, exact as a float); the sum
         * is fma(tb, ta, sum) */
        const uint8_t *x = wr + (size_t) b * 18;
        const uint8_t *y = ar + (size_t) b * 34;

        /* words of 4 nibbles (low: values 4j.., high: 16 + 4j..) times
         * the values, minus 8 * their sum */
        for (j = 0; j < 4; j++) {
            int xv = st_ld32_a2(x + 2 + 4 * j);
            int ylo = st_ld32_a2(y + 2 + 4 * j), yhi = st_ld32_a2(y + 18 + 4 * j);

            if (type == ST_CUDA_IQ4_NL) {
                /* the code-book values of the nibbles */
                isum = __dp4a(st_iq4nl_values4((uint32_t) xv & 0x0f0f0f0fu),
                              ylo, isum);
                isum = __dp4a(st_iq4nl_values4(((uint32_t) xv >> 4)
                                               & 0x0f0f0f0fu), yhi, isum);
                continue;
            }
            isum = __dp4a(xv & 0x0f0f0f0f, ylo, isum);
            isum = __dp4a((xv >> 4) & 0x0f0f0f0f, yhi, isum);
            isum -= 8 * (__dp4a(0x01010101, ylo, 0) + __dp4a(0x01010101, yhi, 0));
        }
        *ta = st_h2f(st_ld16(x)) * st_h2f(st_ld16(y));
        *tb = (float) isum;
        return;
    }
    case ST_CUDA_Q4_K:
    case ST_CUDA_Q5_K: {
        int            q5 = type == ST_CUDA_Q5_K;
        const uint8_t *x = wr + (size_t) b * (q5 ? 176 : 144);
        const uint8_t *y = ar + (size_t) b * 292;
        const uint8_t *q4 = x + (q5 ? 48 : 16), *qh = x + 16;
        const int8_t  *q8 = (const int8_t *) (y + 4);
        const int16_t *bsums = (const int16_t *) (y + 260);
        float          yd = *(const float *) y;
        int            sc[8], m[8];
        int32_t        msum = 0, sub;
        unsigned       u1 = 1, u2 = 2;

        for (j = 0; j < 8; j++) {
            st_scale_min_k4(j, x + 4, &sc[j], &m[j]);
        }
        for (g = 0; g < 16; g++) {
            msum += bsums[g] * m[g / 2];
        }
        for (j = 0; j < 8; j += 2) {
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += ((q4[l] & 0xf) + (q5 && (qh[l] & u1) ? 16 : 0)) * q8[l];
            }
            isum += sc[j] * sub;
            sub = 0;
            for (l = 0; l < 32; l++) {
                sub += ((q4[l] >> 4) + (q5 && (qh[l] & u2) ? 16 : 0))
                       * q8[l + 32];
            }
            isum += sc[j + 1] * sub;
            q4 += 32;
            q8 += 64;
            u1 <<= 2;
            u2 <<= 2;
        }
        *ta = (yd * st_h2f(st_ld16(x + 2))) * (float) msum;
        *tb = (yd * st_h2f(st_ld16(x))) * (float) isum;
        return;
    }
    case ST_CUDA_Q6_K: {
        const uint8_t *x = wr + (size_t) b * 210;
        const uint8_t *y = ar + (size_t) b * 292;
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t  *sc = (const int8_t *) (x + 192);
        const int8_t  *q8 = (const int8_t *) (y + 4);
        int32_t        sub[8];
        int            h, q[4];

        for (h = 0; h < 2; h++) {
            for (g = 0; g < 8; g++) {
                sub[g] = 0;
            }
            for (l = 0; l < 32; l++) {
                q[0] = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                q[1] = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                q[2] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                q[3] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                for (g = 0; g < 4; g++) {
                    sub[2 * g + l / 16] += q[g] * q8[l + 32 * g];
                }
            }
            for (g = 0; g < 8; g++) {
                isum += sc[g] * sub[g];
            }
            ql += 64;
            qh += 32;
            sc += 8;
            q8 += 128;
        }
        *tb = (st_h2f(st_ld16(x + 208)) * *(const float *) y) * (float) isum;
        return;
    }
    }
    st_block_term_qt(type, wr, ar, b, ta, tb);
}


/*
 * Warp w of block b computes outputs (b * ST_WARPS + w) * opw .. + opw - 1
 * for rows r0 .. r0 + nr - 1 (r0 = blockIdx.y * rows_per): one pass over
 * a weight row serves every row of a small batch.
 *
 * Q8_0, Q5_0: 8 lanes a row (the CPU's 8-lane fma chains), 4 rows a
 * pass, reading weights and activations straight from global memory.
 * Other quantized types: the warp copies the weight bytes of 32 blocks at a
 * time into shared memory with 16-byte loads (the aligned words that
 * cover them: every load a whole, coalesced 512 bytes per warp), then
 * lane l computes the CPU's term of block b0 + l for each row from there
 * (st_block_term, unchanged), and lane r adds row r's 32 terms in block
 * order. Float types: lane l keeps a partial sum per row over elements
 * l, l + 32, ... (consecutive lanes read consecutive elements), and lane
 * r adds row r's 32 partials in lane order. Either way each row's value
 * is computed exactly as by a kernel that serves that row alone.
 *
 * Reading the aligned words around a row may touch up to 15 bytes before
 * or after it: never outside the allocation (cudaMalloc allocations and
 * the weights arena's tensors are 256-byte aligned and padded).
 *
 * Barriers: quantized, two per chunk (staged -> terms -> sums); they also
 * order the next chunk's (or output's) writes after this one's reads.
 * Float types, one per output: part alternates between two halves by
 * output, and a lane reaches the output that reuses a half only through
 * the barrier of the output in between.
 *
 * Dynamic shared memory: ST_WARPS * wwords uint4 of staged weights, then
 * part (ST_WARPS, 32 lanes, rows_per, 2) floats; float types: no staging,
 * part twice.
 */
#define ST_MV_ROWS 16              /* batch rows served by one weight pass */

static __global__ void
st_k_matvec(const uint8_t *w, int type, size_t row_bytes, uint32_t n_in,
    uint32_t n_out, const uint8_t *act, size_t act_row_bytes, float *y,
    uint32_t opw, uint32_t n, uint32_t rows_per, uint32_t bs,
    uint32_t blk_bytes, uint32_t wwords)
{
    ST_DYN_SHARED(uint4, smem);
    uint32_t       lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    uint32_t       r0 = blockIdx.y * rows_per, j, i, r;
    uint32_t       nr = n - r0 < rows_per ? n - r0 : rows_per;
    uint4         *wbuf = smem + (size_t) warp * wwords;
    size_t         part_n = (size_t) 32 * rows_per * 2;
    int            flt = type == ST_CUDA_F32 || type == ST_CUDA_F16
                         || type == ST_CUDA_BF16;
    float         *part = (float *) (smem + (size_t) ST_WARPS * wwords)
                          + (size_t) warp * part_n * (flt ? 2 : 1);
    const uint8_t *ar0 = act + (size_t) r0 * act_row_bytes;
    int            two = type == ST_CUDA_Q4_K || type == ST_CUDA_Q5_K;
    uint32_t       nb = flt ? 32 : n_in / bs, b0, e;

    for (j = 0; j < opw; j++) {
        uint32_t       o = (blockIdx.x * ST_WARPS + warp) * opw + j;
        /* warps past the end compute a copy of the last row, unstored */
        const uint8_t *wr = w + (size_t) (o < n_out ? o : n_out - 1) * row_bytes;
        float          sum = 0.0f;       /* row `lane`'s value */

        if (flt) {
            float  acc[ST_MV_ROWS];
            float *pf = part + (j & 1) * part_n;   /* this output's half */

ST_UNROLL
            for (r = 0; r < ST_MV_ROWS; r++) {
                acc[r] = 0.0f;
            }
            for (i = lane; i < n_in; i += 32) {
                float a = type == ST_CUDA_F32 ? ((const float *) wr)[i]
                          : type == ST_CUDA_F16
                            ? st_h2f(((const uint16_t *) wr)[i])
                            : st_bf2f(((const uint16_t *) wr)[i]);
ST_UNROLL
                for (r = 0; r < ST_MV_ROWS; r++) {
                    const uint8_t *ar = ar0 + (size_t) r * act_row_bytes;
                    float          b;

                    if (r >= nr) {
                        break;
                    }
                    b = type == ST_CUDA_F32 ? ((const float *) ar)[i]
                        : type == ST_CUDA_F16
                          ? st_h2f(((const uint16_t *) ar)[i])
                          : st_bf2f(((const uint16_t *) ar)[i]);
                    acc[r] += a * b;
                }
            }
ST_UNROLL
            for (r = 0; r < ST_MV_ROWS; r++) {
                if (r < nr) {
                    pf[(lane * rows_per + r) * 2 + 1] = acc[r];
                }
            }
            __syncwarp();
            if (lane < nr) {
                for (i = 0; i < 32; i++) {
                    sum += pf[(i * rows_per + lane) * 2 + 1];
                }
            }
        } else if (type == ST_CUDA_Q8_0 || type == ST_CUDA_Q5_0) {
            /* the CPU's 8-lane order (quant_ref.c, st_lanes8): lane
             * 8 g + k keeps lane k's fma chain for row rb + g over every
             * block, then the groups of 8 add in hsum_float_8's tree
             * (xor 4, 2, 1 is exactly ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)))
             * and lane r takes row r's value from lane 8 (r - rb). */
            uint32_t k = lane % 8, g = lane / 8, rb;
            int      q8 = type == ST_CUDA_Q8_0;
            int      q5 = type == ST_CUDA_Q5_0;
            uint32_t xb = q8 ? 34 : q5 ? 22 : 18;     /* block bytes */
            uint32_t xo = (q5 ? 6 : 2) + 4 * (q8 ? k : k % 4);

            for (rb = 0; rb < nr; rb += 4) {
                float acc = 0.0f, v;

                if (rb + g < nr) {
                    const uint8_t *ar = ar0 + (size_t) (rb + g) * act_row_bytes;

                    for (i = 0; i < nb; i++) {
                        const uint8_t *x = wr + (size_t) i * xb;
                        const uint8_t *yb = ar + (size_t) i * 34;
                        int            yv = st_ld32_a2(yb + 2 + 4 * k);
                        int            xv = st_ld32_a2(x + xo);
                        int32_t        isum;

                        if (q8) {
                            isum = __dp4a(xv, yv, 0);
                        } else {
                            /* values 4k .. 4k + 3: nibbles of bytes
                             * 4 (k % 4) .., low for k < 4 */
                            xv = k < 4 ? xv & 0x0f0f0f0f : (xv >> 4) & 0x0f0f0f0f;
                            xv |= st_q5_high4((uint32_t) st_ld32_a2(x + 2),
                                              4 * k);
                            isum = __dp4a(xv, yv, 0)
                                   - 16 * __dp4a(0x01010101, yv, 0);
                        }
                        acc = fmaf(st_h2f(st_ld16(x)) * st_h2f(st_ld16(yb)),
                                   (float) isum, acc);
                    }
                }
                acc += __shfl_xor_sync(0xffffffffu, acc, 4);
                acc += __shfl_xor_sync(0xffffffffu, acc, 2);
                acc += __shfl_xor_sync(0xffffffffu, acc, 1);
                v = __shfl_sync(0xffffffffu, acc, (int) (((lane - rb) & 3) * 8));
                if (lane >= rb && lane < rb + 4) {
                    sum = v;
                }
            }
        } else {
            for (b0 = 0; b0 < nb; b0 += 32) {
                uint32_t       cb = nb - b0 < 32 ? nb - b0 : 32;
                uintptr_t      p = (uintptr_t) (wr + (size_t) b0 * blk_bytes);
                uintptr_t      p0 = p & ~(uintptr_t) 15;
                uint32_t       words = (uint32_t) ((p - p0 + (size_t) cb
                                                    * blk_bytes + 15) / 16);
                const uint4   *src = (const uint4 *) p0;
                const uint8_t *wc = (const uint8_t *) wbuf + (p - p0);

                /* the part from the previous chunk and wbuf are free
                 * again: every lane passed this chunk's first barrier
                 * only after its reads of them */
                for (i = lane; i < words; i += 32) {
                    wbuf[i] = src[i];
                }
                __syncwarp();
                for (r = 0; r < nr; r++) {
                    float ta = 0.0f, tb = 0.0f;

                    if (lane < cb) {
                        st_block_term(type, wc, ar0 + (size_t) r * act_row_bytes
                                      + (size_t) b0 * (act_row_bytes / nb),
                                      lane, &ta, &tb);
                    }
                    part[(lane * rows_per + r) * 2] = ta;
                    part[(lane * rows_per + r) * 2 + 1] = tb;
                }
                __syncwarp();
                if (lane < nr) {
                    e = cb;
                    for (i = 0; i < e; i++) {
                        if (type == ST_CUDA_Q4_0 || type == ST_CUDA_IQ4_NL) {
                            sum = fmaf(part[(i * rows_per + lane) * 2 + 1],
                                       part[(i * rows_per + lane) * 2], sum);
                            continue;
                        }
                        if (two) {
                            sum -= part[(i * rows_per + lane) * 2];
                        }
                        sum += part[(i * rows_per + lane) * 2 + 1];
                    }
                }
            }
        }
        if (lane < nr && o < n_out) {
            y[(size_t) (r0 + lane) * n_out + o] = sum;
        }
    }
}


/* Outputs per warp: 1 on a GPU (more warps in flight); 8 in the shim,
 * where starting a fiber costs more than a loop iteration. */
#if ST_CUDA_SHIM
#define ST_MATVEC_OPW 8
#else
#define ST_MATVEC_OPW 1
#endif


extern "C" int
st_cuda_matvec(const void *w, int type, size_t row_bytes, uint32_t n_in,
    uint32_t n_out, const void *act, uint32_t n, float *y, void *stream)
{
    uint32_t per_block = ST_WARPS * ST_MATVEC_OPW, rows_per, blk_bytes = 0;
    uint32_t bs = 1;
    uint32_t wwords = 0;
    size_t   smem;

    if (n == 0 || n_out == 0) {
        return 0;
    }
    if (!st_cuda_type_supported(type)) {
        return 1;
    }
    if (type != ST_CUDA_F32 && type != ST_CUDA_F16 && type != ST_CUDA_BF16) {
        bs = st_cuda_block_values(type);
        if (n_in % bs != 0) {
            return (int) cudaErrorInvalidValue;   /* not whole blocks */
        }
        /* 32 blocks and the alignment slack on both sides */
        blk_bytes = (uint32_t) st_cuda_row_bytes(type, bs);
        wwords = (32 * blk_bytes + 30) / 16 + 1;
    }
    rows_per = n < ST_MV_ROWS ? n : ST_MV_ROWS;
    smem = (size_t) ST_WARPS * wwords * 16
           + (size_t) ST_WARPS * 32 * rows_per * 2 * sizeof(float)
             * (wwords == 0 ? 2 : 1);

    return ST_LAUNCH(st_k_matvec,
        dim3((n_out + per_block - 1) / per_block,
             (n + rows_per - 1) / rows_per), dim3(32 * ST_WARPS), smem,
        (cudaStream_t) stream, (const uint8_t *) w, type, row_bytes, n_in,
        n_out, (const uint8_t *) act,
        st_cuda_row_bytes(st_cuda_vec_dot_type(type), n_in), y,
        (uint32_t) ST_MATVEC_OPW, n, rows_per, bs, blk_bytes, wwords);
}
