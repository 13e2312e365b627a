/*
 * starling-kbench: CPU kernel throughput (figures, not a test).
 *
 *   starling-kbench [n_out n_in [type]]   default 896 x 4864 (an FFN of a
 *                                         0.5B model: W (896, 4864)),
 *                                         every type or just the one named
 *
 * For each weight type, GEMV (1 activation row, decode) at 1 and 2
 * threads: "hot" repeats one matrix (it fits in L3 on most CPUs), "cold"
 * rotates through copies totalling > 96 MiB so weights come from DRAM.
 * Prints GB/s of weights read and GFLOP/s (2 * n_in * n_out per row),
 * plus a 64-row GEMM (prefill) figure, an 8-row one against cold weights
 * (batched decode, as a multiple of the cold GEMV), a plain streaming-read
 * bandwidth and the core's measured int8 / FP32 instruction throughput
 * for comparison. ST_CPU_KERNELS=scalar|avx2|avx512 picks the kernel set.
 */
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "base/threadpool.h"
#include "quantize.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KB_COLD_BYTES  (96u << 20)
#define KB_MIN_SEC     0.25
#define KB_PREFILL     64
/* batched decode: this many sequences' rows against cold weights */
#define KB_BATCH       8

static double
kb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}


static uint64_t kb_rng = 0x853c49e6748fea9bull;

static float
kb_randf(void)
{
    kb_rng ^= kb_rng << 13;
    kb_rng ^= kb_rng >> 7;
    kb_rng ^= kb_rng << 17;
    return (float) ((double) (kb_rng >> 11) / 9007199254740992.0 - 0.5);
}


/* ---------------------------------------------------------- stream read */

typedef struct {
    const uint64_t *buf;
    size_t          n_words;
    uint64_t        sink[64];
} kb_stream_ctx;

static void
kb_stream_fn(void *vctx, int ith, int nth)
{
    kb_stream_ctx  *c = vctx;
    size_t          per = c->n_words / (size_t) nth / 8 * 8;
    const uint64_t *p = c->buf + per * (size_t) ith;
    uint64_t        a[8] = { 0 };
    size_t          i;
    int             k;

    for (i = 0; i < per; i += 8) {
        for (k = 0; k < 8; k++) {
            a[k] += p[i + k];
        }
    }
    c->sink[ith & 63] = a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6]
                        ^ a[7];
}


static void
kb_stream(st_threadpool *tp, int nth)
{
    size_t         bytes = 256u << 20;
    kb_stream_ctx  c;
    uint64_t      *buf = malloc(bytes);
    double         t0, t, best = 1e30;
    int            rep;

    if (buf == NULL) {
        printf("stream: out of memory\n");
        return;
    }
    memset(buf, 1, bytes);
    memset(&c, 0, sizeof(c));
    c.buf = buf;
    c.n_words = bytes / 8;
    for (rep = 0; rep < 5; rep++) {
        t0 = kb_now();
        st_threadpool_run(tp, kb_stream_fn, &c);
        t = kb_now() - t0;
        if (t < best) {
            best = t;
        }
    }
    printf("stream read 256 MiB, %d thread%s: %6.1f GB/s\n", nth,
           nth > 1 ? "s" : " ", (double) bytes / best * 1e-9);
    free(buf);
}


/* ---------------------------------------------------------- team */

static void
kb_empty_fn(void *vctx, int ith, int nth)
{
    (void) vctx;
    (void) ith;
    (void) nth;
}


/* Cost of one parallel region with nothing in it: back to back (workers
 * still spinning) and after a pause long enough for them to sleep. */
static void
kb_team(st_threadpool *tp)
{
    struct timespec pause = { 0, 2000000 };
    double          t0, hot, cold = 0;
    int             i, n = 20000;

    t0 = kb_now();
    for (i = 0; i < n; i++) {
        st_threadpool_run(tp, kb_empty_fn, NULL);
    }
    hot = (kb_now() - t0) / n;
    for (i = 0; i < 50; i++) {
        nanosleep(&pause, NULL);
        t0 = kb_now();
        st_threadpool_run(tp, kb_empty_fn, NULL);
        cold += kb_now() - t0;
    }
    printf("team of %d: empty region %.2f us back to back, %.2f us after "
           "the workers slept\n", st_threadpool_size(tp), hot * 1e6,
           cold / 50 * 1e6);
}


/* ------------------------------------------------- measured core peak */

/* The single core's throughput of the instructions the kernels are
 * built on, each in 10 independent chains (more than latency x pipes),
 * so the figure is the pipes' rate on this machine as it is (a shared
 * core, a lower vector clock: both show here and not in /proc/cpuinfo).
 * One vpdpbusd zmm = 64 multiply-adds = 128 int8 operations, one
 * vpmaddubsw ymm = 32 pairs (64 ops; its vpmaddwd/vpaddd follow-ups
 * not counted), one FMA = 2 x lanes FLOP. */
#define KB_PEAK_N  2000000

static volatile uint64_t kb_sink;   /* keeps the chains' results alive */

#define KB_CHAINS(op)                                                    \
    for (i = 0; i < KB_PEAK_N; i++) {                                    \
        op(0); op(1); op(2); op(3); op(4);                               \
        op(5); op(6); op(7); op(8); op(9);                               \
        __asm__ __volatile__("" : "+v" (s[0]), "+v" (s[1]), "+v" (s[2]),  \
                             "+v" (s[3]), "+v" (s[4]), "+v" (s[5]),      \
                             "+v" (s[6]), "+v" (s[7]), "+v" (s[8]),      \
                             "+v" (s[9]));                               \
    }

__attribute__((target("avx512f,avx512vnni")))
static double
kb_peak_dpbusd(void)
{
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5), s[10];
    double  t0 = kb_now();
    long    i;
    int     k;

    for (k = 0; k < 10; k++) {
        s[k] = _mm512_set1_epi32(k);
    }
#define KB_OP(k) s[k] = _mm512_dpbusd_epi32(s[k], a, b)
    KB_CHAINS(KB_OP)
#undef KB_OP
    kb_sink = (uint64_t) _mm512_reduce_add_epi32(s[0]);
    return 10.0 * KB_PEAK_N * 128 / (kb_now() - t0) * 1e-9;
}


__attribute__((target("avx2")))
static double
kb_peak_maddubs(void)
{
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5), s[10];
    double  t0 = kb_now();
    long    i;
    int     k;

    for (k = 0; k < 10; k++) {
        s[k] = _mm256_set1_epi16((short) k);
    }
    /* an add keeps each chain dependent (maddubs takes no accumulator) */
#define KB_OP(k) s[k] = _mm256_add_epi16(s[k], _mm256_maddubs_epi16(a, s[k]))
    KB_CHAINS(KB_OP)
#undef KB_OP
    kb_sink = (uint64_t) _mm256_extract_epi16(s[0], 0);
    (void) b;
    return 10.0 * KB_PEAK_N * 64 / (kb_now() - t0) * 1e-9;
}


__attribute__((target("avx512f")))
static double
kb_peak_fma512(void)
{
    __m512 x = _mm512_set1_ps(0.999f), s[10];
    double t0 = kb_now();
    long   i;
    int    k;

    for (k = 0; k < 10; k++) {
        s[k] = _mm512_set1_ps((float) k);
    }
#define KB_OP(k) s[k] = _mm512_fmadd_ps(s[k], x, x)
    KB_CHAINS(KB_OP)
#undef KB_OP
    kb_sink = (uint64_t) _mm512_reduce_add_ps(s[0]);
    return 10.0 * KB_PEAK_N * 32 / (kb_now() - t0) * 1e-9;
}


__attribute__((target("avx2,fma")))
static double
kb_peak_fma256(void)
{
    __m256 x = _mm256_set1_ps(0.999f), s[10];
    double t0 = kb_now();
    long   i;
    int    k;

    for (k = 0; k < 10; k++) {
        s[k] = _mm256_set1_ps((float) k);
    }
#define KB_OP(k) s[k] = _mm256_fmadd_ps(s[k], x, x)
    KB_CHAINS(KB_OP)
#undef KB_OP
    kb_sink = (uint64_t) _mm256_cvtss_f32(s[0]);
    return 10.0 * KB_PEAK_N * 16 / (kb_now() - t0) * 1e-9;
}


static void
kb_peak(void)
{
    if (!st_cpu_level_supported(ST_CPU_AVX2)) {
        printf("core peak: no AVX2, not measured\n");
        return;
    }
    printf("core peak, 1 thread (measured): int8 vpmaddubsw ymm %.0f GOP/s",
           kb_peak_maddubs());
    if (st_cpu_level_supported(ST_CPU_AVX512)) {
        printf(", vpdpbusd zmm %.0f GOP/s", kb_peak_dpbusd());
    }
    printf(" | FP32 FMA ymm %.0f GFLOP/s", kb_peak_fma256());
    if (st_cpu_level_supported(ST_CPU_AVX512)) {
        printf(", zmm %.0f GFLOP/s", kb_peak_fma512());
    }
    printf("\n");
}


/* ---------------------------------------------------------- matmul */

static double
kb_time(st_threadpool *tp, st_matmul_scratch *sc, st_weight *w,
    const uint8_t *copies, int n_copies, const float *x, int64_t n_rows,
    float *y)
{
    double t0 = kb_now(), t;
    long   calls = 0;

    do {
        w->data = copies + (size_t) (calls % n_copies) * w->row_bytes
                           * (size_t) w->n_out;
        if (st_matmul(tp, sc, w, x, n_rows, y) != ST_OK) {
            return -1;
        }
        calls++;
        t = kb_now() - t0;
    } while (t < KB_MIN_SEC || calls < 3);
    return t / (double) calls;
}


static void
kb_type(st_threadpool *tps[2], st_type type, int64_t n_out, int64_t n_in)
{
    const st_type_traits *tr = st_type_traits_get(type);
    st_matmul_scratch     sc = { NULL, 0 };
    st_weight             w;
    size_t                mat_bytes;
    int                   n_copies, i, t;
    uint8_t              *copies;
    float                *row, *x, *y;
    double                flop = 2.0 * (double) n_in * (double) n_out;

    w.type = type;
    w.n_in = n_in;
    w.n_out = n_out;
    w.row_bytes = (size_t) st_row_bytes(type, (uint64_t) n_in);
    if (w.row_bytes == 0) {
        printf("%-5s  n_in %lld not a multiple of the block\n", tr->name,
               (long long) n_in);
        return;
    }
    mat_bytes = w.row_bytes * (size_t) n_out;
    n_copies = (int) (KB_COLD_BYTES / mat_bytes) + 1;
    copies = malloc(mat_bytes * (size_t) n_copies);
    row = malloc((size_t) n_in * sizeof(float));
    x = malloc((size_t) (KB_PREFILL * n_in) * sizeof(float));
    y = malloc((size_t) (KB_PREFILL * n_out) * sizeof(float));
    if (!copies || !row || !x || !y) {
        printf("%-5s  out of memory\n", tr->name);
        goto done;
    }
    for (i = 0; i < n_out; i++) {
        int64_t k;

        for (k = 0; k < n_in; k++) {
            row[k] = kb_randf();
        }
        st_quantize_row(type, row, copies + (size_t) i * w.row_bytes, n_in);
    }
    for (i = 1; i < n_copies; i++) {
        memcpy(copies + (size_t) i * mat_bytes, copies, mat_bytes);
    }
    for (i = 0; i < KB_PREFILL * n_in; i++) {
        x[i] = kb_randf();
    }

    for (t = 0; t < 2; t++) {
        double hot, cold, pre, batch;

        hot = kb_time(tps[t], &sc, &w, copies, 1, x, 1, y);
        cold = kb_time(tps[t], &sc, &w, copies, n_copies, x, 1, y);
        pre = kb_time(tps[t], &sc, &w, copies, 1, x, KB_PREFILL, y);
        batch = kb_time(tps[t], &sc, &w, copies, n_copies, x, KB_BATCH, y);
        if (hot < 0 || cold < 0 || pre < 0 || batch < 0) {
            printf("%-5s  st_matmul failed\n", tr->name);
            break;
        }
        printf("%-5s %dT  %7.2f MB  gemv hot %7.1f us %6.1f GB/s %6.1f "
               "GFLOP/s | cold %7.1f us %6.1f GB/s %6.1f GFLOP/s | "
               "gemm x%d %7.1f GFLOP/s | x%d cold %7.1f us = %.2fx gemv\n",
               tr->name, t + 1, (double) mat_bytes * 1e-6, hot * 1e6,
               (double) mat_bytes / hot * 1e-9, flop / hot * 1e-9,
               cold * 1e6, (double) mat_bytes / cold * 1e-9,
               flop / cold * 1e-9, KB_PREFILL,
               flop * KB_PREFILL / pre * 1e-9, KB_BATCH, batch * 1e6,
               batch / cold);
    }

done:
    st_matmul_scratch_free(&sc);
    free(copies);
    free(row);
    free(x);
    free(y);
}


int
main(int argc, char **argv)
{
    static const st_type types[] = {
        ST_TYPE_F32, ST_TYPE_F16, ST_TYPE_BF16, ST_TYPE_Q8_0, ST_TYPE_Q4_0,
        ST_TYPE_Q4_K, ST_TYPE_Q5_K, ST_TYPE_Q6_K, ST_TYPE_Q4_1, ST_TYPE_Q5_0,
        ST_TYPE_Q5_1, ST_TYPE_IQ4_NL, ST_TYPE_Q2_K, ST_TYPE_Q3_K,
        ST_TYPE_IQ4_XS
    };
    st_threadpool *tps[2] = { NULL, NULL };
    st_error       err;
    int64_t        n_out = 896, n_in = 4864;
    const char    *only;
    size_t         k;

    if (argc >= 3) {
        n_out = atoll(argv[1]);
        n_in = atoll(argv[2]);
    }
    only = argc >= 4 ? argv[3] : NULL;
    if (n_out <= 0 || n_in <= 0) {
        fprintf(stderr, "usage: %s [n_out n_in [type]]\n", argv[0]);
        return 2;
    }
    if (st_threadpool_create(&tps[0], 1, &err) != ST_OK
        || st_threadpool_create(&tps[1], 2, &err) != ST_OK)
    {
        fprintf(stderr, "threadpool: %s\n", err.msg);
        st_threadpool_free(tps[0]);
        return 1;
    }
    printf("kernels %s, W (%lld out, %lld in), 1 activation row "
           "(gemv) and %d rows (gemm)\n", st_cpu_kernels_name(),
           (long long) n_out, (long long) n_in, KB_PREFILL);
    kb_stream(tps[0], 1);
    kb_stream(tps[1], 2);
    kb_team(tps[1]);
    kb_peak();
    for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        const st_type_traits *tr = st_type_traits_get(types[k]);

        if (tr != NULL && tr->supported
            && (only == NULL || strcmp(only, tr->name) == 0))
        {
            kb_type(tps, types[k], n_out, n_in);
        }
    }
    st_threadpool_free(tps[0]);
    st_threadpool_free(tps[1]);
    return 0;
}
