/*
 * Element-wise activations on the CPU (act.c), with ggml's CPU arithmetic:
 * SwiGLU in float, GeGLU through ggml's F16 table of the tanh GELU.
 */
#ifndef ST_CPU_ACT_H
#define ST_CPU_ACT_H

#include <stddef.h>

/* GELU(tanh) of every F16 value, rounded to F16 and held as float
 * (model/gelu.h), indexed by the F16 bit pattern of the input. */
typedef struct {
    float *v;
} st_gelu_table;

int  st_gelu_table_init(st_gelu_table *t);   /* 0 on success (-1: memory) */
void st_gelu_table_free(st_gelu_table *t);

/* gate[i] = silu(gate[i]) * up[i] */
void st_swiglu(float *gate, const float *up, size_t n);

/* gate[i] = gelu(gate[i]) * up[i]: 0 at or below -10, the identity at or
 * above 10, else the table entry of F16(gate[i]) (ggml_vec_geglu_f32). */
void st_geglu(const st_gelu_table *t, float *gate, const float *up, size_t n);

/* x[i] = cap * tanh(x[i] / cap), as ggml's scale, tanh, scale: final
 * logit soft-capping */
void st_softcap(float *x, size_t n, float cap);

#endif /* ST_CPU_ACT_H */
