/*
 * CPU execution of CUDA kernel sources ("the shim").
 *
 * The backend's .cu files are compiled as host C++ (g++ -x c++) with this
 * header in place of the CUDA headers. A kernel launch runs the grid's
 * blocks one after another on the calling thread; inside a block every
 * CUDA thread is a cooperative fiber with its own stack, switched only at
 * __syncthreads, __syncwarp and warp shuffles (which are a warp barrier
 * plus an exchange of values among the 32 lanes). Device memory is host
 * memory; stream operations run synchronously, or are recorded into a
 * graph while the stream captures (graph launch replays the records);
 * events are no-ops; cublasGemmEx is a plain loop with float
 * accumulation. Limits are listed in src/backend/cuda/shim/README.md.
 *
 * Test-only: nothing here is used by the nvcc build.
 */
#ifndef ST_CUDA_SHIM_H
#define ST_CUDA_SHIM_H

#include <math.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

/* ---- qualifiers ---------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
/* One block runs at a time per host thread, so a block's shared memory
 * is a thread_local static: shared by the block's fibers, reused by the
 * next block (CUDA does not initialise shared memory either). */
#define __shared__ static thread_local

/* ---- geometry ------------------------------------------------------ */

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1)
        : x(vx), y(vy), z(vz) {}
};
typedef dim3 uint3;

/* 16-byte vector, 16-aligned as CUDA's (the one vector type provided). */
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

struct st_shim_fiber;

/* The running fiber and its launch; valid inside kernels only. */
extern thread_local st_shim_fiber *st_shim_cur;
extern thread_local dim3 st_shim_block_idx, st_shim_block_dim,
                         st_shim_grid_dim;

struct st_shim_fiber {
    void     *sp;           /* saved stack pointer (or ucontext) */
    void     *stack;
    size_t    stack_bytes;
    dim3      tid;
    unsigned  linear;       /* threadIdx linearised */
    int       state;        /* 0 runnable, 1 block barrier, 2 warp barrier, 3 done */
    unsigned  wait_gen;
    void     *uctx;         /* ucontext_t * where asm switching is absent */
};

#define threadIdx (st_shim_cur->tid)
#define blockIdx  (st_shim_block_idx)
#define blockDim  (st_shim_block_dim)
#define gridDim   (st_shim_grid_dim)
#define warpSize  32

/* ---- barriers, shuffles, atomics ----------------------------------- */

void st_shim_syncthreads(void);
void st_shim_syncwarp(void);
/* Puts v (8 bytes) in this lane's slot, waits for the warp, returns the
 * slot of src_lane. */
uint64_t st_shim_exchange(uint64_t v, unsigned src_lane);

#define __syncthreads() st_shim_syncthreads()
#define __syncwarp(...) st_shim_syncwarp()

template <typename T>
static inline T
st_shim_shfl(T v, unsigned src_lane)
{
    uint64_t u = 0, r;
    T        out;

    static_assert(sizeof(T) <= 8, "shuffle of a value over 8 bytes");
    memcpy(&u, &v, sizeof(T));
    r = st_shim_exchange(u, src_lane & 31u);
    memcpy(&out, &r, sizeof(T));
    return out;
}

template <typename T>
static inline T
__shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    (void) mask;
    (void) width;
    return st_shim_shfl(v, (st_shim_cur->linear & 31u) ^ (unsigned) lane_mask);
}

template <typename T>
static inline T
__shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    unsigned lane = st_shim_cur->linear & 31u;

    (void) mask;
    (void) width;
    /* out-of-range source: CUDA returns the caller's own value */
    return st_shim_shfl(v, lane + delta < 32 ? lane + delta : lane);
}

template <typename T>
static inline T
__shfl_sync(unsigned mask, T v, int src_lane, int width = 32)
{
    (void) mask;
    (void) width;
    return st_shim_shfl(v, (unsigned) src_lane);
}

/* Fibers never run at the same time, so a read-modify-write is atomic. */
template <typename T>
static inline T
atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}

template <typename T>
static inline T
atomicMax(T *p, T v)
{
    T old = *p;
    *p = old > v ? old : v;
    return old;
}

/* ---- math ---------------------------------------------------------- */

/* expf, sqrtf, cosf, sinf, fmaf... are the C library's (math.h) */

static inline float    __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int      __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
static inline float    __uint_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned v; memcpy(&v, &f, 4); return v; }
static inline float    __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }

/* Four int8 products of a and b (bytes of the ints) added to c. */
static inline int
__dp4a(int a, int b, int c)
{
    int k;

    for (k = 0; k < 4; k++) {
        c += (int) (int8_t) (a >> (8 * k)) * (int) (int8_t) (b >> (8 * k));
    }
    return c;
}


/* __byte_perm(x, y, s), default mode: byte n of the result is byte
 * (s >> 4n) & 7 of the 8 bytes y:x (x bytes 0..3, y bytes 4..7). */
static inline unsigned
__byte_perm(unsigned x, unsigned y, unsigned s)
{
    unsigned long long xy = ((unsigned long long) y << 32) | x;
    unsigned           r = 0, n;

    for (n = 0; n < 4; n++) {
        r |= (unsigned) ((xy >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
    }
    return r;
}

/* ---- half / bfloat16 ----------------------------------------------- */

struct __half { uint16_t x; };
struct __nv_bfloat16 { uint16_t x; };

float    st_shim_h2f(uint16_t h);
uint16_t st_shim_f2h(float f);      /* round to nearest even */
float    st_shim_bf2f(uint16_t h);
uint16_t st_shim_f2bf(float f);     /* round to nearest even */

static inline float  __half2float(__half h) { return st_shim_h2f(h.x); }
static inline __half __float2half(float f) { __half h; h.x = st_shim_f2h(f); return h; }
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
static inline float __bfloat162float(__nv_bfloat16 h) { return st_shim_bf2f(h.x); }
static inline __nv_bfloat16 __float2bfloat16(float f) { __nv_bfloat16 h; h.x = st_shim_f2bf(f); return h; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.x = u; return h; }

/* ---- launch -------------------------------------------------------- */

typedef struct st_shim_stream *cudaStream_t;

typedef void (*st_shim_body_fn)(void *ctx);

/* Runs body once per CUDA thread of the grid; returns 0 or a cudaError_t. */
int st_shim_launch_raw(dim3 grid, dim3 block, size_t shmem_bytes,
    st_shim_body_fn body, void *ctx);
/* 0 or cudaErrorInvalidConfiguration (checked at launch and at capture). */
int st_shim_check_config(dim3 grid, dim3 block);
/* Dynamic shared memory of the running launch. */
void *st_shim_dyn_smem(void);

/* One operation of a stream: a kernel launch with its copied arguments,
 * a copy, a memset, a GEMM. Run now, or recorded into a graph while the
 * stream captures. */
struct st_shim_node {
    virtual ~st_shim_node() {}
    virtual int run() = 0;                    /* 0 or a cudaError_t */
    virtual st_shim_node *clone() const = 0;  /* NULL: out of memory */
};

/* 1 while s captures into a graph. */
int st_shim_capturing(cudaStream_t s);
/* Records node (owned from here on; NULL = allocation failed) into the
 * graph s captures; 0 or a cudaError_t. */
int st_shim_record(cudaStream_t s, st_shim_node *node);
/* Checks an operation on stream s against the captures in progress:
 * 0 = run it now, 1 = record it, or a cudaError_t (an operation capture
 * forbids; the capture is then invalidated). */
int st_shim_route(cudaStream_t s);

/* A kernel launch: the kernel, its arguments converted to the
 * parameter types and copied (as CUDA copies them at launch), the
 * geometry. */
template <typename... P>
struct st_shim_kernel_node : st_shim_node {
    void (*fn)(P...);
    std::tuple<typename std::decay<P>::type...> args;
    dim3   grid, block;
    size_t shmem;

    template <typename... A>
    st_shim_kernel_node(void (*f)(P...), dim3 g, dim3 b, size_t sh, A &&...a)
        : fn(f), args(std::forward<A>(a)...), grid(g), block(b), shmem(sh) {}

    static void body(void *ctx)
    {
        st_shim_kernel_node *n = static_cast<st_shim_kernel_node *>(ctx);
        std::apply(n->fn, n->args);
    }

    int run() override
    {
        return st_shim_launch_raw(grid, block, shmem, body, this);
    }

    st_shim_node *clone() const override
    {
        return new (std::nothrow) st_shim_kernel_node(*this);
    }
};

template <typename... P, typename... A>
static inline int
st_shim_launch(dim3 grid, dim3 block, size_t shmem_bytes, cudaStream_t s,
    void (*fn)(P...), A &&...a)
{
    static_assert(sizeof...(P) == sizeof...(A),
                  "kernel launched with a wrong number of arguments");
    st_shim_kernel_node<P...> node(fn, grid, block, shmem_bytes,
                                   std::forward<A>(a)...);
    int                       route = st_shim_route(s), e;

    if (route == 0) {
        return node.run();
    }
    if (route != 1) {
        return route;
    }
    if ((e = st_shim_check_config(grid, block)) != 0) {
        return e;
    }
    return st_shim_record(s, node.clone());
}

/* ---- runtime API --------------------------------------------------- */

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906
} cudaError_t;

typedef enum {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;

typedef struct st_shim_event  *cudaEvent_t;
typedef struct st_shim_graph  *cudaGraph_t;
typedef struct st_shim_graph_exec *cudaGraphExec_t;

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
};

enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2
};

struct cudaDeviceProp {
    char    name[256];
    size_t  totalGlobalMem;
    int     major;
    int     minor;
    int     multiProcessorCount;
    int     memoryBusWidth;
};

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes,
    cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
    cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
/* Graphs: stream capture records the stream's operations; instantiate
 * copies them; launch runs the copy in order on the calling thread. */
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g,
    unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

/* ---- cuBLAS (the calls the backend makes) -------------------------- */

typedef struct st_shim_cublas *cublasHandle_t;
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
typedef cudaDataType cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
/* Column-major C (m, n) = alpha op(A) op(B) + beta C, float accumulation. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta,
    cublasOperation_t tb, int m, int n, int k, const void *alpha,
    const void *A, cudaDataType a_type, int lda, const void *B,
    cudaDataType b_type, int ldb, const void *beta, void *C,
    cudaDataType c_type, int ldc, cublasComputeType_t compute,
    cublasGemmAlgo_t algo);

/* Counters for tests and the README's cost figures. */
struct st_shim_stats {
    uint64_t launches;
    uint64_t threads;
    uint64_t switches;
    uint64_t graph_launches;     /* cudaGraphLaunch calls */
    uint64_t graph_nodes;        /* nodes recorded by captures */
};
void st_shim_stats_get(st_shim_stats *out);

#endif /* ST_CUDA_SHIM_H */
