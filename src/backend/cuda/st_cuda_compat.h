/*
 * What the CUDA sources see: the real CUDA headers under nvcc, the CPU
 * shim (src/backend/cuda/shim/) under a host C++ compiler. Kernels are written once
 * against this header and launched with ST_LAUNCH so that both builds
 * compile the same text.
 */
#ifndef ST_CUDA_COMPAT_H
#define ST_CUDA_COMPAT_H

#include <stdint.h>

#if defined(__CUDACC__)

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>

#define ST_CUDA_SHIM 0
/* A launch is an int expression: 0 or the cudaError_t of the launch. */
#define ST_LAUNCH(kernel, grid, block, shmem, stream, ...)                   \
    (kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__),           \
     (int) cudaGetLastError())
#define ST_DYN_SHARED(type, name) extern __shared__ type name[]
/* before a loop with a constant trip count: registers, not local memory */
#define ST_UNROLL _Pragma("unroll")

#else

#include "backend/cuda/shim/st_cuda_shim.h"

#define ST_CUDA_SHIM 1
/* The shim copies the arguments at the launch, as CUDA does, so that a
 * stream capture can record them (st_shim_kernel_node). */
#define ST_LAUNCH(kernel, grid, block, shmem, stream, ...)                   \
    st_shim_launch((grid), (block), (shmem), (stream), kernel, __VA_ARGS__)
#define ST_DYN_SHARED(type, name)                                            \
    type *name = static_cast<type *>(st_shim_dyn_smem())
#define ST_UNROLL

#endif

/* IEEE half <-> float, round to nearest even (bit patterns as uint16_t,
 * the way the engine and GGUF store them). */
static __device__ __forceinline__ float
st_h2f(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}


static __device__ __forceinline__ uint16_t
st_f2h(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}


/* bfloat16, as ggml rounds it (nearest even; NaN kept quiet). */
static __device__ __forceinline__ float
st_bf2f(uint16_t h)
{
    return __uint_as_float((uint32_t) h << 16);
}


static __device__ __forceinline__ uint16_t
st_f2bf(float f)
{
    uint32_t u = __float_as_uint(f);

    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t) ((u >> 16) | 64);
    }
    return (uint16_t) ((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

#endif /* ST_CUDA_COMPAT_H */
