/*
 * CPU kernel sets: per-ISA vec_dot and activation quantizers, chosen at
 * run time (cpu_features.c). Internal to src/backend/cpu (and its tests/tools).
 *
 * Every SIMD from_float here is bit-identical to the scalar reference in
 * quant_ref.c, and so is every SIMD vec_dot of a quantized type: each
 * forms the reference's exact integer sums and then takes its float steps
 * in its order (Q8_0 and Q5_0: ggml's x86 8-lane fma chains and
 * hsum_float_8 tree; Q4_0 and IQ4_NL: one fma chain over the blocks'
 * exact sums; the other types: one scalar accumulator, block after
 * block). F32/F16/BF16 dots differ between levels in summation order
 * only. Every GEMM tile kernel (gemm_avx2.c, gemm_kquant_avx2.c,
 * gemm_avx512.c) is bit-identical to the vec_dot of its own level, hence
 * for quantized types to the reference. Types without an AVX-512 kernel
 * use the AVX2 one at that level.
 */
#ifndef ST_KERNELS_H
#define ST_KERNELS_H

#include "quant/quant.h"

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
 * level below, finally quant_ref.c's scalar reference). wtype is the weight
 * type; from_float is keyed by the vec_dot type it produces. */
st_vec_dot_fn    st_cpu_vec_dot(st_cpu_level level, st_type wtype);
st_from_float_fn st_cpu_from_float(st_cpu_level level, st_type vdtype);

/* GEMM microkernel: nw weight rows (w_stride bytes apart) times n_a
 * converted activation rows (a_stride bytes apart), n_a a multiple of
 * na:
 *   out[r * out_stride + o] = vec_dot(n, w row o, a row r)
 * for o < nw, r < n_a, where every element is BIT-IDENTICAL to what
 * st_cpu_vec_dot() of the same level gives (batch invariance: the tiling
 * of a matmul must never change a result). Kernels with a_scales set
 * also read every Q8_0 activation block's scale as f32 (a_scales row r,
 * block b: a_scales[r * as_stride + b], equal to st_f16_to_f32(d));
 * kernels with ST_GEMM_A_SUMS also read st_gemm_a_sums8() of every activation
 * row (row r: a_sums + r * sums_stride), with ST_GEMM_A_BSUMS
 * st_gemm_a_bsums() instead. */
typedef struct {
    int64_t       n;             /* values per row */
    float        *out;
    size_t        out_stride;    /* floats between output rows */
    const void   *w;
    size_t        w_stride;      /* bytes */
    const void   *a;
    size_t        a_stride;      /* bytes */
    const float  *a_scales;
    size_t        as_stride;     /* floats */
    int64_t       n_a;
    const int32_t *a_sums;
    size_t        sums_stride;   /* int32s */
} st_gemm_args;

typedef void (*st_gemm_fn)(const st_gemm_args *g);

/* the largest n the Q8_0/Q5_0/IQ4_NL tile kernels take (their per-call
 * weight staging lives on the stack) */
#define ST_GEMM_N_MAX  16384

typedef struct {
    st_gemm_fn  fn;              /* NULL: none, use vec_dot per element */
    int         nw;              /* weight rows per tile */
    int         na;              /* activation rows per tile */
    int64_t     max_n;           /* larger rows: vec_dot per element */
    int         a_scales;        /* ST_GEMM_A_* bits: activation extras */
} st_gemm_kernel;

/* a_scales bits (one field, so that positional initializers of older
 * kernel tables stay complete): */
#define ST_GEMM_A_SCALES  1      /* Q8_0 activation scales as f32 */
#define ST_GEMM_A_SUMS    2      /* st_gemm_a_sums8() rows, as a_sums */
#define ST_GEMM_A_BSUMS   4      /* st_gemm_a_bsums() rows, as a_sums */

/* For a Q8_0 row of n values (n / 32 blocks): out[8 * b + j] = 8 * (the
 * sum of values 4j..4j+3 of block b), exact. The AVX2 Q5_0 tile
 * multiplies the raw 5-bit values (0..31) and subtracts twice this, which
 * gives the same integer lane sums as (value - 16) products. */
void st_gemm_a_sums8(const void *xq, int64_t n, int32_t *out);
/* For a Q8_0 row: out[b] = -8 * (the sum of block b's 32 values), exact:
 * the Q4_0 GEMM starts each block's integer sum there and adds the raw
 * nibbles (0..15) times the values. */
void st_gemm_a_bsums(const void *xq, int64_t n, int32_t *out);

/* Part i of n of the bytes [p, p + bytes): prefetched a 64-byte line at a
 * time, spread over a loop of n steps. The decode kernels fetch the
 * weight rows of their next call this way while they work on their own:
 * the hardware prefetchers stop at 4 KiB page boundaries, and without it
 * every call began with cache misses (Q4_0 decode on the 0.5B shape ran
 * 1.6x slower; 2x on n_in = 896 rows with the AVX-512 Q4_0 kernel). A prefetch never faults, so the span may run past the
 * end of the matrix. */
static inline void
st_prefetch_part(const void *p, size_t bytes, int64_t i, int64_t n)
{
    size_t per = (bytes / 64 + (size_t) n - 1) / (size_t) n * 64;
    size_t off, end = (size_t) (i + 1) * per;

    for (off = (size_t) i * per; off < end && off < bytes; off += 64) {
        /* an asm statement: GCC deletes a finite loop whose body is only
         * __builtin_prefetch (no side effects), which is what became of
         * this loop before */
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("prefetcht0 %0"
                             : : "m" (*((const char *) p + off)));
#else
        __builtin_prefetch((const char *) p + off, 0, 3);
#endif
    }
}

/* The tile kernel matching st_cpu_vec_dot(level, wtype), if any. */
st_gemm_kernel st_cpu_gemm(st_cpu_level level, st_type wtype);
/* The same for decode: fewer activation rows than st_cpu_gemm()'s na;
 * na = 1, nw weight rows per call (several independent dot chains where
 * vec_dot has one), same contract and bits. */
st_gemm_kernel st_cpu_gemv(st_cpu_level level, st_type wtype);

/* Per-ISA tables (kernels_avx2.c, kernels_avx512.c, gemm_*.c). */
st_gemm_kernel   st_cpu_avx512_gemm(st_type wtype);
st_gemm_kernel   st_cpu_avx512_gemm_q4_0(void);   /* gemm_q4_0_avx512.c */
st_gemm_kernel   st_cpu_avx512_gemm_iq4_nl(void); /* gemm_q4_0_avx512.c */
st_gemm_kernel   st_cpu_avx2_gemm_iq4_nl(void);   /* gemm_q4_0_avx2.c */
st_gemm_kernel   st_cpu_avx512_gemm_q4_1(int q5); /* Q4_1 / Q5_1, gemm_q4_0_avx512.c */
st_gemm_kernel   st_cpu_avx2_gemm_q4_0(void);     /* gemm_q4_0_avx2.c */
st_gemm_kernel   st_cpu_avx2_gemm(st_type wtype);
st_gemm_kernel   st_cpu_avx512_gemv(st_type wtype);
st_gemm_kernel   st_cpu_avx2_gemv(st_type wtype);
st_gemm_kernel   st_cpu_avx2_kquant_gemm(st_type wtype); /* Q2_K Q3_K IQ4_XS */
st_vec_dot_fn    st_cpu_avx2_vec_dot(st_type wtype);
st_from_float_fn st_cpu_avx2_from_float(st_type vdtype);
st_vec_dot_fn    st_cpu_avx512_vec_dot(st_type wtype);
st_from_float_fn st_cpu_avx512_from_float(st_type vdtype);

#endif /* ST_KERNELS_H */
