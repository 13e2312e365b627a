/*
 * Element-wise kernels of the architectures beyond llama (st_cuda_arch.h).
 */
#include "backend/cuda/st_cuda_compat.h"
#include "backend/cuda/st_cuda_arch.h"

#include <math.h>


static __global__ void
st_k_scale(float *x, float s, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        x[i] *= s;
    }
}


extern "C" int
st_cuda_scale(float *x, float s, size_t count, void *stream)
{
    if (count == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_scale,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, x, s, count);
}


/* ggml_vec_geglu_f32: the table entry of F16(g) between -10 and 10 */
static __global__ void
st_k_geglu(float *gate, const float *up, const float *table, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        float g = gate[i];

        if (g <= -10.0f) {
            gate[i] = 0.0f;
        } else if (g >= 10.0f) {
            gate[i] = g * up[i];
        } else {
            gate[i] = table[st_f2h(g)] * up[i];
        }
    }
}


extern "C" int
st_cuda_geglu(float *gate, const float *up, const float *table,
    size_t count, void *stream)
{
    if (count == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_geglu,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, gate, up, table, count);
}


static __global__ void
st_k_softcap(float *x, float inv, float cap, size_t count)
{
    size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

    if (i < count) {
        x[i] = tanhf(x[i] * inv) * cap;
    }
}


extern "C" int
st_cuda_softcap(float *x, float cap, size_t count, void *stream)
{
    if (count == 0) {
        return 0;
    }
    return ST_LAUNCH(st_k_softcap,
        dim3((unsigned) ((count + 255) / 256)), dim3(256), 0,
        (cudaStream_t) stream, x, 1.0f / cap, cap, count);
}
