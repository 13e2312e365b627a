/*
 * Run-time CPU dispatch: which kernel set (scalar, AVX2, AVX-512) runs.
 * The ISA-specific files are compiled with their -m flags, so nothing in
 * them may run before the checks here say the CPU has those features.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static st_cpu_level    st_cpu_level_sel;
static pthread_once_t  st_cpu_level_once = PTHREAD_ONCE_INIT;

static const char *st_cpu_level_names[ST_CPU_LEVEL_COUNT] = {
    "scalar", "avx2", "avx512"
};


#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* F16C from CPUID.1:ECX[29] (clang's __builtin_cpu_supports lacks it) */
static int
st_cpu_has_f16c(void)
{
    unsigned a, b, c, d;

    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif


st_cpu_level
st_cpu_level_detect(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
          && st_cpu_has_f16c()))
    {
        return ST_CPU_SCALAR;
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vnni")
        && __builtin_cpu_supports("avx512bf16"))
    {
        return ST_CPU_AVX512;
    }
    return ST_CPU_AVX2;
#else
    return ST_CPU_SCALAR;
#endif
}


static void
st_cpu_level_init(void)
{
    const char   *env = getenv("ST_CPU_KERNELS");
    st_cpu_level  det = st_cpu_level_detect();
    int           i;

    st_cpu_level_sel = det;
    if (env == NULL) {
        return;
    }
    for (i = 0; i < ST_CPU_LEVEL_COUNT; i++) {
        if (strcmp(env, st_cpu_level_names[i]) == 0 && (st_cpu_level) i <= det)
        {
            st_cpu_level_sel = (st_cpu_level) i;
        }
    }
}


st_cpu_level
st_cpu_level_selected(void)
{
    pthread_once(&st_cpu_level_once, st_cpu_level_init);
    return st_cpu_level_sel;
}


int
st_cpu_level_supported(st_cpu_level level)
{
    return level >= ST_CPU_SCALAR && level <= st_cpu_level_detect();
}


const char *
st_cpu_level_name(st_cpu_level level)
{
    if (level < ST_CPU_SCALAR || level >= ST_CPU_LEVEL_COUNT) {
        return "unknown";
    }
    return st_cpu_level_names[level];
}


const char *
st_cpu_kernels_name(void)
{
    return st_cpu_level_name(st_cpu_level_selected());
}


st_vec_dot_fn
st_cpu_vec_dot(st_cpu_level level, st_type wtype)
{
    const st_type_traits *tr;
    st_vec_dot_fn         fn = NULL;

    if (level >= ST_CPU_AVX512) {
        fn = st_cpu_avx512_vec_dot(wtype);
    }
    if (fn == NULL && level >= ST_CPU_AVX2) {
        fn = st_cpu_avx2_vec_dot(wtype);
    }
    if (fn == NULL) {
        tr = st_type_traits_get(wtype);
        fn = tr ? tr->vec_dot : NULL;
    }
    return fn;
}


st_gemm_kernel
st_cpu_gemm(st_cpu_level level, st_type wtype)
{
    st_gemm_kernel none = { NULL, 0, 0, 0, 0 };

    /* a level's tile kernel exists only beside that level's own vec_dot,
     * which is the one it reproduces */
    if (level >= ST_CPU_AVX512 && st_cpu_avx512_vec_dot(wtype) != NULL) {
        return st_cpu_avx512_gemm(wtype);
    }
    if (level >= ST_CPU_AVX512
        && (wtype == ST_TYPE_Q4_1 || wtype == ST_TYPE_Q5_1))
    {
        /* no AVX-512 vec_dot, so the level's is AVX2's: a quantized
         * kernel gives the reference's bits, hence that one's too */
        return st_cpu_avx512_gemm_q4_1(wtype == ST_TYPE_Q5_1);
    }
    if (level >= ST_CPU_AVX2 && st_cpu_avx2_vec_dot(wtype) != NULL) {
        st_gemm_kernel kq = st_cpu_avx2_kquant_gemm(wtype);

        return kq.fn != NULL ? kq : st_cpu_avx2_gemm(wtype);
    }
    return none;
}


st_gemm_kernel
st_cpu_gemv(st_cpu_level level, st_type wtype)
{
    st_gemm_kernel none = { NULL, 0, 0, 0, 0 };

    if (level >= ST_CPU_AVX512 && st_cpu_avx512_vec_dot(wtype) != NULL) {
        return st_cpu_avx512_gemv(wtype);
    }
    if (level >= ST_CPU_AVX2 && st_cpu_avx2_vec_dot(wtype) != NULL) {
        return st_cpu_avx2_gemv(wtype);
    }
    return none;
}


st_from_float_fn
st_cpu_from_float(st_cpu_level level, st_type vdtype)
{
    const st_type_traits *tr;
    st_from_float_fn      fn = NULL;

    if (level >= ST_CPU_AVX512) {
        fn = st_cpu_avx512_from_float(vdtype);
    }
    if (fn == NULL && level >= ST_CPU_AVX2) {
        fn = st_cpu_avx2_from_float(vdtype);
    }
    if (fn == NULL) {
        tr = st_type_traits_get(vdtype);
        fn = tr ? tr->from_float : NULL;
    }
    return fn;
}
