/*
 * The GELU(tanh) numerics of the GeGLU architectures (gemma3), shared by
 * the backends: ggml computes GELU by looking up the F16-rounded input in
 * a table of F16 results, and so does every Starling backend.
 */
#ifndef ST_MODEL_GELU_H
#define ST_MODEL_GELU_H

#include <stdint.h>

#define ST_GELU_TABLE_SIZE  65536

/* t[h] = F16(gelu_tanh(f32(h))) as float, for every F16 bit pattern h
 * (ggml_table_gelu_f16). Use: x <= -10 -> 0, x >= 10 -> x, else
 * t[F16(x)] (ggml_vec_geglu_f32). */
void st_gelu_table_fill(float *t);

#endif /* ST_MODEL_GELU_H */
