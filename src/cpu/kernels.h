/*
 * CPU kernel sets: per-ISA vec_dot and activation quantizers, chosen at
 * run time (cpu_features.c). Internal to src/cpu (and its tests/tools).
 *
 * Every SIMD from_float here is bit-identical to the scalar reference in
 * quant.c; every SIMD vec_dot computes the same exact integer per-block
 * sums as the reference and differs only in float summation order.
 */
#ifndef ST_KERNELS_H
#define ST_KERNELS_H

#include "quant.h"

typedef enum {
    ST_CPU_SCALAR = 0,
    ST_CPU_AVX2   = 1,           /* AVX2 + FMA + F16C */
    ST_CPU_AVX512 = 2,           /* + AVX-512 F/BW/VL/VNNI/BF16 */
    ST_CPU_LEVEL_COUNT
} st_cpu_level;

/* Highest level this CPU supports. */
st_cpu_level st_cpu_level_detect(void);
/* Level in use: detected, or forced by ST_CPU_KERNELS=scalar|avx2|avx512
 * (read once; a level the CPU lacks falls back to the detected one). */
st_cpu_level st_cpu_level_selected(void);
const char *st_cpu_level_name(st_cpu_level level);
int st_cpu_level_supported(st_cpu_level level);

/* Kernels of one level; NULL when the type has none (callers use the
 * level below, finally quant.c's scalar reference). wtype is the weight
 * type; from_float is keyed by the vec_dot type it produces. */
st_vec_dot_fn    st_cpu_vec_dot(st_cpu_level level, st_type wtype);
st_from_float_fn st_cpu_from_float(st_cpu_level level, st_type vdtype);

/* Per-ISA tables (kernels_avx2.c, kernels_avx512.c). */
st_vec_dot_fn    st_cpu_avx2_vec_dot(st_type wtype);
st_from_float_fn st_cpu_avx2_from_float(st_type vdtype);
st_vec_dot_fn    st_cpu_avx512_vec_dot(st_type wtype);
st_from_float_fn st_cpu_avx512_from_float(st_type vdtype);

#endif /* ST_KERNELS_H */
