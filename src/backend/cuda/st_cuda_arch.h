/*
 * Element-wise kernels of the architectures beyond llama (gemma3's GeGLU,
 * embedding and Q scales, final-logit softcapping), as C-callable
 * launchers like st_cuda_kernels.h: device pointers, stream a
 * cudaStream_t, 0 or a cudaError_t returned. Numerics as the CPU backend
 * (src/backend/cpu/act.c).
 */
#ifndef ST_CUDA_ARCH_H
#define ST_CUDA_ARCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x[i] *= s over count values. */
int st_cuda_scale(float *x, float s, size_t count, void *stream);

/* gate[i] = gelu(gate[i]) * up[i], gelu by the F16 table of
 * model/gelu.h (table: ST_GELU_TABLE_SIZE floats on the device). */
int st_cuda_geglu(float *gate, const float *up, const float *table,
    size_t count, void *stream);

/* x[i] = cap * tanhf(x[i] * (1 / cap)) over count values. */
int st_cuda_softcap(float *x, float cap, size_t count, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* ST_CUDA_ARCH_H */
