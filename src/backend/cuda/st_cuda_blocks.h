/*
 * Device helpers shared by the kernel sources (st_cuda_kernels.cu,
 * st_cuda_matvec.cu): loads from ggml's block layouts and the launch
 * geometry they share. Included by .cu files only (after
 * st_cuda_compat.h).
 */
#ifndef ST_CUDA_BLOCKS_H
#define ST_CUDA_BLOCKS_H

#include <stdint.h>

#define ST_WARPS 4                 /* warps per block in matvec/attention */

static __device__ __forceinline__ uint16_t
st_ld16(const uint8_t *p)
{
    return *(const uint16_t *) p;   /* 2-aligned in every block layout */
}


/* Four bytes at a 2-aligned address as an int (little-endian, as
 * __dp4a takes them): Q4_0/Q8_0 blocks are 18/34 bytes, so their quants
 * are 4-aligned only every other block. */
static __device__ __forceinline__ int
st_ld32_a2(const uint8_t *p)
{
    return (int) ((uint32_t) st_ld16(p) | ((uint32_t) st_ld16(p + 2) << 16));
}


/* 6-bit scale and min j of a K-quant block's 12 scale bytes. */
static __device__ __forceinline__ void
st_scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#endif /* ST_CUDA_BLOCKS_H */
