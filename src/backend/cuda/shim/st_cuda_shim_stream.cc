/*
 * The shim's streams, stream capture and graphs, "device" memory (host
 * memory) and the cuBLAS GEMM on the CPU. See st_cuda_shim.h and
 * src/backend/cuda/shim/README.md.
 */
#include "backend/cuda/shim/st_cuda_shim.h"
#include "backend/cuda/shim/st_cuda_shim_internal.h"

#include <cstdio>
#include <cstdlib>

/* ---- streams and capture --------------------------------------------- */

struct st_shim_graph {
    st_shim_node **nodes;
    size_t         n, cap;
};

struct st_shim_graph_exec {
    st_shim_node **nodes;
    size_t         n;
};

struct st_shim_stream {
    st_shim_graph         *capture;     /* graph being recorded or NULL */
    cudaStreamCaptureMode  mode;
    int                    invalid;     /* a forbidden call happened */
    st_shim_stream        *next;        /* list of capturing streams */
};

namespace {

/* Streams capturing on this thread. CUDA's global mode also watches the
 * other threads; the shim treats global like thread-local. */
thread_local st_shim_stream *capturing;
thread_local uint64_t        graph_launches, graph_nodes;

void
st_shim_graph_free(st_shim_graph *g)
{
    size_t i;

    if (g == NULL) {
        return;
    }
    for (i = 0; i < g->n; i++) {
        delete g->nodes[i];
    }
    free(g->nodes);
    free(g);
}


void
st_shim_invalidate_all(void)
{
    st_shim_stream *s;

    for (s = capturing; s != NULL; s = s->next) {
        s->invalid = 1;
    }
}


/* A call capture forbids (allocation, synchronous copy, device sync)
 * while a stream of this thread captures in global or thread-local mode:
 * every capture is invalidated, as CUDA does. */
cudaError_t
st_shim_unsafe(int implicit_sync)
{
    st_shim_stream *s;

    for (s = capturing; s != NULL; s = s->next) {
        if (implicit_sync || s->mode != cudaStreamCaptureModeRelaxed) {
            st_shim_invalidate_all();
            st_shim_last_error = implicit_sync ? cudaErrorStreamCaptureImplicit
                                       : cudaErrorStreamCaptureUnsupported;
            return st_shim_last_error;
        }
    }
    return cudaSuccess;
}


/* A stream operation given as a callable (copies, memsets, GEMMs). */
template <typename F>
struct st_shim_fn_node : st_shim_node {
    F f;

    explicit st_shim_fn_node(const F &fn) : f(fn) {}
    int run() override { return f(); }
    st_shim_node *clone() const override
    {
        return new (std::nothrow) st_shim_fn_node(*this);
    }
};


/* Runs f now or records it, as st_shim_launch does for kernels. */
template <typename F>
int
st_shim_submit(cudaStream_t s, const F &f)
{
    int route = st_shim_route(s);

    if (route == 0) {
        return f();
    }
    if (route != 1) {
        return route;
    }
    return st_shim_record(s, new (std::nothrow) st_shim_fn_node<F>(f));
}

}  /* namespace */


void
st_shim_graph_counts(uint64_t *launches, uint64_t *nodes)
{
    *launches = graph_launches;
    *nodes = graph_nodes;
}


int
st_shim_capturing(cudaStream_t s)
{
    return s != NULL && s->capture != NULL;
}


int
st_shim_route(cudaStream_t s)
{
    if (s != NULL && s->capture != NULL) {
        if (s->invalid) {
            st_shim_last_error = cudaErrorStreamCaptureInvalidated;
            return st_shim_last_error;
        }
        return 1;
    }
    if (s == NULL && capturing != NULL) {
        /* the legacy stream synchronises with the capturing one */
        return st_shim_unsafe(1);
    }
    return 0;
}


int
st_shim_record(cudaStream_t s, st_shim_node *node)
{
    st_shim_graph *g = s->capture;

    if (node == NULL) {
        s->invalid = 1;
        st_shim_last_error = cudaErrorMemoryAllocation;
        return st_shim_last_error;
    }
    if (g->n == g->cap) {
        size_t         cap = g->cap ? 2 * g->cap : 64;
        st_shim_node **p = (st_shim_node **) realloc(g->nodes,
                                                     cap * sizeof(*p));
        if (p == NULL) {
            delete node;
            s->invalid = 1;
            st_shim_last_error = cudaErrorMemoryAllocation;
            return st_shim_last_error;
        }
        g->nodes = p;
        g->cap = cap;
    }
    g->nodes[g->n++] = node;
    graph_nodes++;
    return 0;
}


cudaError_t
cudaStreamCreate(cudaStream_t *s)
{
    *s = (cudaStream_t) calloc(1, sizeof(st_shim_stream));
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}


cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
    st_shim_stream **pp;

    if (s == NULL) {
        return cudaSuccess;
    }
    for (pp = &capturing; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    st_shim_graph_free(s->capture);
    free(s);
    return cudaSuccess;
}


cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
    if (s != NULL && s->capture != NULL) {
        s->invalid = 1;
        return cudaErrorStreamCaptureUnsupported;
    }
    return st_shim_route(s) == 0 ? cudaSuccess : st_shim_last_error;
}


cudaError_t
cudaDeviceSynchronize(void)
{
    return st_shim_unsafe(1);
}


cudaError_t
cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    if (s == NULL) {
        return cudaErrorStreamCaptureUnsupported;  /* legacy stream */
    }
    if (s->capture != NULL) {
        return cudaErrorStreamCaptureInvalidated;  /* already capturing */
    }
    s->capture = (st_shim_graph *) calloc(1, sizeof(st_shim_graph));
    if (s->capture == NULL) {
        return cudaErrorMemoryAllocation;
    }
    s->mode = mode;
    s->invalid = 0;
    s->next = capturing;
    capturing = s;
    return cudaSuccess;
}


cudaError_t
cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    st_shim_stream **pp;
    int              invalid;

    *g = NULL;
    if (s == NULL || s->capture == NULL) {
        return cudaErrorInvalidValue;
    }
    for (pp = &capturing; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    invalid = s->invalid;
    if (invalid) {
        st_shim_graph_free(s->capture);
    } else {
        *g = s->capture;
    }
    s->capture = NULL;
    s->invalid = 0;
    s->next = NULL;
    return invalid ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
}


cudaError_t
cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st)
{
    *st = s == NULL || s->capture == NULL ? cudaStreamCaptureStatusNone
          : s->invalid ? cudaStreamCaptureStatusInvalidated
          : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}


cudaError_t
cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g,
    unsigned long long flags)
{
    st_shim_graph_exec *x;
    size_t              i;

    (void) flags;
    *exec = NULL;
    if (g == NULL) {
        return cudaErrorInvalidValue;
    }
    x = (st_shim_graph_exec *) calloc(1, sizeof(*x));
    if (x == NULL) {
        return cudaErrorMemoryAllocation;
    }
    x->nodes = (st_shim_node **) calloc(g->n ? g->n : 1, sizeof(*x->nodes));
    if (x->nodes == NULL) {
        free(x);
        return cudaErrorMemoryAllocation;
    }
    for (i = 0; i < g->n; i++) {
        x->nodes[i] = g->nodes[i]->clone();
        x->n = i + 1;
        if (x->nodes[i] == NULL) {
            cudaGraphExecDestroy(x);
            return cudaErrorMemoryAllocation;
        }
    }
    *exec = x;
    return cudaSuccess;
}


cudaError_t
cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    size_t i;
    int    route, e;

    if (exec == NULL) {
        return cudaErrorInvalidValue;
    }
    route = st_shim_route(s);
    if (route == 1) {
        /* a graph launched into a capture (child graph): not modelled */
        s->invalid = 1;
        return cudaErrorStreamCaptureUnsupported;
    }
    if (route != 0) {
        return (cudaError_t) route;
    }
    graph_launches++;
    for (i = 0; i < exec->n; i++) {
        if ((e = exec->nodes[i]->run()) != 0) {
            st_shim_last_error = (cudaError_t) e;
            return st_shim_last_error;
        }
    }
    return cudaSuccess;
}


cudaError_t
cudaGraphDestroy(cudaGraph_t g)
{
    st_shim_graph_free(g);
    return cudaSuccess;
}


cudaError_t
cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    size_t i;

    if (exec == NULL) {
        return cudaSuccess;
    }
    for (i = 0; i < exec->n; i++) {
        delete exec->nodes[i];
    }
    free(exec->nodes);
    free(exec);
    return cudaSuccess;
}


/* ---- memory ------------------------------------------------------------ */

cudaError_t
cudaMalloc(void **p, size_t bytes)
{
    /* 256-byte alignment, and sizes rounded up to 256 bytes: a device
     * allocates whole granules, so a kernel may read the aligned 16-byte
     * word that holds an allocation's last byte */
    size_t padded = ((bytes ? bytes : 1) + 255) & ~(size_t) 255;

    *p = NULL;
    if (st_shim_unsafe(0) != cudaSuccess) {
        return st_shim_last_error;
    }
    if (posix_memalign(p, 256, padded) != 0) {
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    return cudaSuccess;
}


cudaError_t
cudaFree(void *p)
{
    if (st_shim_unsafe(0) != cudaSuccess) {
        return st_shim_last_error;
    }
    free(p);
    return cudaSuccess;
}


cudaError_t
cudaMallocHost(void **p, size_t bytes)
{
    return cudaMalloc(p, bytes);
}


cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }


cudaError_t
cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    (void) kind;
    if (st_shim_unsafe(1) != cudaSuccess) {
        return st_shim_last_error;
    }
    if (bytes) {
        memmove(dst, src, bytes);
    }
    return cudaSuccess;
}


cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
    cudaStream_t s)
{
    (void) kind;
    /* recorded: the pointers, not the bytes (a replay reads src again) */
    return (cudaError_t) st_shim_submit(s, [=]() {
        if (bytes) {
            memmove(dst, src, bytes);
        }
        return 0;
    });
}


cudaError_t
cudaMemset(void *p, int v, size_t bytes)
{
    if (st_shim_unsafe(1) != cudaSuccess) {
        return st_shim_last_error;
    }
    memset(p, v, bytes);
    return cudaSuccess;
}


cudaError_t
cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
    return (cudaError_t) st_shim_submit(s, [=]() {
        memset(p, v, bytes);
        return 0;
    });
}


cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = NULL; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { (void) e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { (void) e; (void) s; return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { (void) e; return cudaSuccess; }

cudaError_t
cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    (void) a;
    (void) b;
    *ms = 0.0f;
    return cudaSuccess;
}


/* ---- cuBLAS ----------------------------------------------------------- */

struct st_shim_cublas { cudaStream_t stream; };


cublasStatus_t
cublasCreate(cublasHandle_t *h)
{
    *h = (cublasHandle_t) calloc(1, sizeof(st_shim_cublas));
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}


cublasStatus_t cublasDestroy(cublasHandle_t h) { free(h); return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t
cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    if (h == NULL) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}


static float
st_shim_load(const void *p, cudaDataType t, size_t i)
{
    switch (t) {
    case CUDA_R_32F: return ((const float *) p)[i];
    case CUDA_R_16F: return st_shim_h2f(((const uint16_t *) p)[i]);
    case CUDA_R_16BF: return st_shim_bf2f(((const uint16_t *) p)[i]);
    }
    return 0.0f;
}


cublasStatus_t
cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
    int m, int n, int k, const void *alpha, const void *A,
    cudaDataType a_type, int lda, const void *B, cudaDataType b_type,
    int ldb, const void *beta, void *C, cudaDataType c_type, int ldc,
    cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    float al = *(const float *) alpha, be = *(const float *) beta;
    int   i, j, l;

    (void) algo;
    if (h == NULL) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    if (compute != CUBLAS_COMPUTE_32F || c_type != CUDA_R_32F) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (m < 0 || n < 0 || k < 0) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (st_shim_capturing(h->stream)) {
        /* captured: the arguments now, the product at replay */
        int e = st_shim_submit(h->stream, [=]() {
            float a1 = al, b1 = be;
            return (int) cublasGemmEx(h, ta, tb, m, n, k, &a1, A, a_type,
                                      lda, B, b_type, ldb, &b1, C, c_type,
                                      ldc, compute, algo);
        });
        return e == 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
    }
    for (j = 0; j < n; j++) {
        for (i = 0; i < m; i++) {
            float acc = 0.0f;
            for (l = 0; l < k; l++) {
                /* op(A)(i, l), op(B)(l, j), column-major */
                size_t ai = ta == CUBLAS_OP_N ? (size_t) l * lda + i
                                              : (size_t) i * lda + l;
                size_t bi = tb == CUBLAS_OP_N ? (size_t) j * ldb + l
                                              : (size_t) l * ldb + j;
                acc += st_shim_load(A, a_type, ai) * st_shim_load(B, b_type, bi);
            }
            float *c = (float *) C + (size_t) j * ldc + i;
            *c = be == 0.0f ? al * acc : al * acc + be * *c;
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}
