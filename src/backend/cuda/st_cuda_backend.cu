/*
 * The CUDA backend (backend.h): weights uploaded once to device memory in
 * their GGUF formats (no host fallback), K/V in device memory with the
 * engine's block geometry (F16), and the forward pass of backend/cpu/forward.c
 * as kernels (st_cuda_kernels.cu) plus cuBLAS for prefill-sized
 * projections.
 *
 * Matmuls: decode rows (the leading rows of a batch that are their
 * sequence's only row) and the logits head always run the quantized matvec
 * kernel, which reads the weights in their own format, mirrors the CPU
 * numerics and gives each row the same bits whatever else is in the step;
 * prefill rows, when there are at least gemm_min_rows of them, run
 * cublasGemmEx with
 * FP32 accumulation: F16/BF16 weights as stored times activations rounded
 * to F16/BF16 (as the CPU rounds them), F32 as F32, and quantized weights
 * as F32 tiles dequantized on the fly times activations passed through the
 * CPU's Q8_0/Q8_K quantizer and back to F32 (so the GEMM computes the
 * CPU's dot products up to summation order). A prefill chunk's bits can
 * depend on its size (cuBLAS picks algorithms by shape); a running
 * stream's cannot (ST_CUDA_GEMM_MIN_ROWS, default 16; 0 = never GEMM).
 *
 * Memory layout (one device): [weights arena][K/V: per layer K then V,
 * each (n_blocks * block_tokens, kv_dim) F16][scratch activations].
 *
 * Decode steps (every row wants logits, fewer rows than the cuBLAS
 * threshold) replay a CUDA graph captured once per batch size: the
 * kernels read everything that changes between steps (tokens, positions,
 * KV rows, block tables) from the step-input buffer, whose address and
 * per-size layout stay fixed, so a step is one input copy, one graph
 * launch and one logits copy. ST_CUDA_GRAPHS=0 turns graphs off.
 */
#include "backend/cuda/st_cuda_internal.h"

st_status
st_cuda_fail(st_error *err, const char *what, int e)
{
    return st_error_set(err, ST_ERR_INTERNAL, "cuda: %s: %s (%d)", what,
                        cudaGetErrorString((cudaError_t) e), e);
}


extern "C" int
st_backend_cuda_device_count(char *why, size_t why_len)
{
    int         n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);

    if (e != cudaSuccess) {
        (void) cudaGetLastError();
        if (why != NULL && why_len > 0) {
            snprintf(why, why_len, "cudaGetDeviceCount: %s (%d)",
                     cudaGetErrorString(e), (int) e);
        }
        return 0;
    }
    if (n <= 0 && why != NULL && why_len > 0) {
        snprintf(why, why_len, "cudaGetDeviceCount: no CUDA device");
    }
    return n > 0 ? n : 0;
}


/* ---- create / free ---------------------------------------------------- */

static void
st_cuda_free(st_backend *b)
{
    st_cuda_impl *c;

    if (b == NULL) {
        return;
    }
    c = (st_cuda_impl *) b->impl;
    if (c != NULL) {
        float *bufs[] = { c->x, c->xn, c->q, c->k, c->v, c->attn, c->proj,
                          c->gate, c->up, c->logits };
        size_t i;

        for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            cudaFree(bufs[i]);
        }
        cudaFree(c->act);
        cudaFree(c->tile);
        cudaFree(c->actf);
        cudaFree(c->kv);
        cudaFree(c->arena);
        cudaFree(c->d_in);
        cudaFreeHost(c->h_in);
        if (c->graphs != NULL) {
            for (i = 0; i < c->graph_slots; i++) {
                if (c->graphs[i] != NULL) {
                    cudaGraphExecDestroy(c->graphs[i]);
                }
            }
        }
        free(c->graphs);
        free(c->graph_gen);
        free(c->layers);
        if (c->blas != NULL) {
            cublasDestroy(c->blas);
        }
        if (c->stream != NULL) {
            cudaStreamDestroy(c->stream);
        }
        free(c);
    }
    free(b);
}


static const char *
st_cuda_health(st_backend *b)
{
    return ((st_cuda_impl *) b->impl)->health;
}


/* Device name for JSON: printable ASCII without quotes or backslashes. */
static void
st_cuda_json_name(char *dst, size_t len, const char *src)
{
    size_t i;

    for (i = 0; i + 1 < len && src[i] != '\0'; i++) {
        unsigned char ch = (unsigned char) src[i];
        dst[i] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
                 ? '?' : (char) ch;
    }
    dst[i] = '\0';
}


static st_status
st_cuda_alloc(void **p, size_t bytes, const char *what, st_error *err)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);

    if (e != cudaSuccess) {
        *p = NULL;
        return st_cuda_fail(err, what, e);
    }
    return ST_OK;
}


extern "C" st_status
st_backend_cuda_create(st_backend **out, const st_model *m,
    uint32_t max_tokens, const st_kv_geometry *geo, int device, st_error *err)
{
    const st_hparams *hp = &m->hp;
    st_backend       *b;
    st_cuda_impl     *c;
    st_cuda_uploader  up;
    cudaDeviceProp    prop;
    cudaError_t       e;
    st_status         rc;
    size_t            free_b = 0, total_b = 0, T = max_tokens, E, qdim, kvdim;
    size_t            max_in, max_quant_elems = 0, tile_bytes, need;
    int               n_dev, rt_ver = 0, rt_major, rt_minor, i;
    uint32_t          l;
    const char       *env;
    char              why[160] = "", name[256];

    *out = NULL;
    if (max_tokens == 0 || geo == NULL || geo->block_tokens == 0
        || geo->n_layer != hp->n_layer
        || geo->kv_dim != hp->n_head_kv * hp->head_dim)
    {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: bad max_tokens or KV geometry");
    }
    if (hp->head_dim > 256 || hp->n_rot > hp->head_dim || hp->n_rot % 2) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "cuda: head_dim %u / n_rot %u not supported "
                            "(head_dim <= 256)", hp->head_dim, hp->n_rot);
    }
    n_dev = st_backend_cuda_device_count(why, sizeof(why));
    if (n_dev == 0) {
        return st_error_set(err, ST_ERR_UNSUPPORTED, "cuda: %s", why);
    }
    if (device < 0) {
        device = 0;
    }
    if (device >= n_dev) {
        return st_error_set(err, ST_ERR_INVALID,
                            "cuda: device %d does not exist (%d devices)",
                            device, n_dev);
    }

    /* weight types first: a clear error before any allocation */
    if ((rc = st_cuda_check_weight(&m->tok_embd, "token_embd.weight", err))
        || (rc = st_cuda_check_weight(&m->output, "output.weight", err)))
    {
        return rc;
    }
    for (l = 0; l < hp->n_layer; l++) {
        const st_layer *L = &m->layers[l];
        const st_weight *ws[7] = { &L->wq, &L->wk, &L->wv, &L->wo,
                                   &L->w_gate, &L->w_up, &L->w_down };
        /* GGUF tensor names, in the order of ws */
        static const char *const names[7] = {
            "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
            "ffn_up", "ffn_down"
        };
        for (i = 0; i < 7; i++) {
            char nm[48];
            snprintf(nm, sizeof(nm), "blk.%u.%s.weight", l, names[i]);
            if ((rc = st_cuda_check_weight(ws[i], nm, err))) {
                return rc;
            }
            if (!st_cuda_is_float_type((int) ws[i]->type)) {
                size_t el = (size_t) ws[i]->n_in * ws[i]->n_out;
                max_quant_elems = el > max_quant_elems ? el : max_quant_elems;
            }
        }
    }
    if (!st_cuda_is_float_type((int) m->output.type)) {
        size_t el = (size_t) m->output.n_in * m->output.n_out;
        max_quant_elems = el > max_quant_elems ? el : max_quant_elems;
    }

    e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "cudaSetDevice", e);
    }
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        return st_cuda_fail(err, "cudaGetDeviceProperties", e);
    }
    cudaRuntimeGetVersion(&rt_ver);
    rt_major = rt_ver / 1000;
    rt_minor = (rt_ver % 1000) / 10;

    /* from here on every failure goes through fail: st_cuda_free()
     * releases whatever exists by then */
    b = (st_backend *) calloc(1, sizeof(*b));
    if (b == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "cuda: out of memory");
    }
    c = (st_cuda_impl *) calloc(1, sizeof(*c));
    b->impl = c;
    if (c == NULL) {
        rc = st_error_set(err, ST_ERR_NOMEM, "cuda: out of memory");
        goto fail;
    }
    b->name = "cuda";
    b->run = st_cuda_run;
    b->hidden = st_cuda_hidden;
    b->free = st_cuda_free;
    b->health_json = st_cuda_health;
    c->m = m;
    c->device = device;
    c->max_tokens = max_tokens;
    c->geo = *geo;
    c->gemm_min_rows = ST_CUDA_GEMM_MIN_ROWS;
    env = getenv("ST_CUDA_GEMM_MIN_ROWS");
    if (env != NULL) {
        c->gemm_min_rows = (uint32_t) strtoul(env, NULL, 10);
    }
    /* decode graphs for batches below the cuBLAS threshold, whose logits
     * fit one head pass */
    c->graph_max_rows = c->gemm_min_rows == 0 ? ST_CUDA_GRAPH_MAX_ROWS
                        : c->gemm_min_rows - 1;
    if (c->graph_max_rows > ST_CUDA_GRAPH_MAX_ROWS) {
        c->graph_max_rows = ST_CUDA_GRAPH_MAX_ROWS;
    }
    if (c->graph_max_rows > max_tokens) {
        c->graph_max_rows = max_tokens;
    }
    env = getenv("ST_CUDA_GRAPHS");
    if (env != NULL && strcmp(env, "0") == 0) {
        c->graph_max_rows = 0;
    }
    c->graph_slots = c->graph_max_rows + 1;
    c->graphs = (cudaGraphExec_t *) calloc(c->graph_slots,
                                           sizeof(cudaGraphExec_t));
    c->graph_gen = (uint64_t *) calloc(c->graph_slots, sizeof(uint64_t));
    c->layers = (st_cuda_layer *) calloc(hp->n_layer, sizeof(st_cuda_layer));
    if (c->layers == NULL || c->graphs == NULL || c->graph_gen == NULL) {
        rc = st_error_set(err, ST_ERR_NOMEM, "cuda: out of memory");
        goto fail;
    }

    /* sizes: weights, KV, scratch; then one check against free memory */
    memset(&up, 0, sizeof(up));
    up.err = err;
    st_cuda_put_model(c, &up);
    c->weight_bytes = up.off;
    c->kv_layer_elems = (size_t) geo->n_blocks * geo->block_tokens
                        * geo->kv_dim;
    c->kv_bytes = (uint64_t) c->kv_layer_elems * 2 * sizeof(uint16_t)
                  * hp->n_layer;
    E = hp->n_embd;
    qdim = (size_t) hp->n_head * hp->head_dim;
    kvdim = (size_t) hp->n_head_kv * hp->head_dim;
    max_in = E > hp->n_ff ? E : hp->n_ff;
    max_in = max_in > qdim ? max_in : qdim;
    tile_bytes = 0;
    if (max_quant_elems > 0 && c->gemm_min_rows > 0) {
        tile_bytes = max_quant_elems * 4 < ST_CUDA_TILE_BYTES
                     ? max_quant_elems * 4 : ST_CUDA_TILE_BYTES;
        if (tile_bytes < max_in * 4) {
            tile_bytes = max_in * 4;
        }
    }
    c->tile_elems = tile_bytes / 4;
    c->scratch_bytes = sizeof(float) * T * (3 * E + 2 * qdim + 2 * kvdim
                                            + 2 * (size_t) hp->n_ff)
                       + sizeof(float) * ST_CUDA_LOGIT_ROWS * hp->n_vocab
                       + 4 * T * max_in * (tile_bytes ? 2 : 1) + tile_bytes;
    need = c->weight_bytes + c->kv_bytes + c->scratch_bytes;
    e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess) {
        rc = st_cuda_fail(err, "cudaMemGetInfo", e);
        goto fail;
    }
    if (need > free_b) {
        rc = st_error_set(err, ST_ERR_NOMEM,
                          "cuda: device %d (%s) has %llu bytes free; the "
                          "model needs %llu (weights %llu, KV cache %llu, "
                          "scratch %llu)", device, prop.name,
                          (unsigned long long) free_b,
                          (unsigned long long) need,
                          (unsigned long long) c->weight_bytes,
                          (unsigned long long) c->kv_bytes,
                          (unsigned long long) c->scratch_bytes);
        goto fail;
    }

    if ((rc = st_cuda_alloc((void **) &c->arena, c->weight_bytes, "cudaMalloc (weights)", err))
        || (rc = st_cuda_alloc((void **) &c->kv, c->kv_bytes, "cudaMalloc (KV cache)", err))
        || (rc = st_cuda_alloc((void **) &c->x, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->xn, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->proj, 4 * T * E, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->q, 4 * T * qdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->attn, 4 * T * qdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->k, 4 * T * kvdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->v, 4 * T * kvdim, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->gate, 4 * T * hp->n_ff, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->up, 4 * T * hp->n_ff, "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->logits,
                               4 * (size_t) ST_CUDA_LOGIT_ROWS * hp->n_vocab,
                               "cudaMalloc", err))
        || (rc = st_cuda_alloc((void **) &c->act, 4 * T * max_in, "cudaMalloc", err))
        || (tile_bytes > 0
            && (rc = st_cuda_alloc((void **) &c->tile, tile_bytes, "cudaMalloc", err)))
        || (tile_bytes > 0
            && (rc = st_cuda_alloc((void **) &c->actf, 4 * T * max_in, "cudaMalloc", err))))
    {
        goto fail;
    }
    /* K/V start as zeros so that an unwritten slot is never NaN */
    e = cudaMemset(c->kv, 0, c->kv_bytes);
    if (e != cudaSuccess) {
        rc = st_cuda_fail(err, "cudaMemset (KV cache)", e);
        goto fail;
    }
    up.base = c->arena;
    up.off = 0;
    up.rc = ST_OK;
    st_cuda_put_model(c, &up);
    if (up.rc != ST_OK) {
        rc = up.rc;
        goto fail;
    }
    /* step inputs: per-row fields for max_tokens rows and block tables as
     * long as the whole KV pool (grown only if blocks are shared) */
    rc = st_cuda_in_alloc(c, 32 * T + 64 + 4 * (size_t) geo->n_blocks, err);
    if (rc != ST_OK) {
        goto fail;
    }
    e = cudaStreamCreate(&c->stream);
    if (e != cudaSuccess) {
        rc = st_cuda_fail(err, "cudaStreamCreate", e);
        goto fail;
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        c->blas = NULL;
        rc = st_error_set(err, ST_ERR_INTERNAL, "cuda: cublasCreate failed");
        goto fail;
    }
    cublasSetStream(c->blas, c->stream);

    /* one kernel launch now: a device the binary has no code for (below
     * sm_80) fails here, at load, rather than on the first request */
    {
        int ke = st_cuda_add(c->x, c->xn, 1, c->stream);
        if (ke == 0) {
            ke = (int) cudaStreamSynchronize(c->stream);
        }
        if (ke != 0) {
            rc = st_cuda_fail(err, "test launch", ke);
            goto fail;
        }
    }

    b->device_bytes = c->weight_bytes + c->kv_bytes;
    st_cuda_json_name(name, sizeof(name), prop.name);
    snprintf(b->device, sizeof(b->device), "%.100s (cuda:%d, sm_%d%d)", name,
             device, prop.major, prop.minor);
    snprintf(c->health, sizeof(c->health),
             "\"memory_type\":\"cuda\",\"device_name\":\"%.200s\","
             "\"compute_capability\":\"%d.%d\","
             "\"cuda_runtime_version\":\"%d.%d\",\"vram_bytes\":%llu,"
             "\"vram_weights_bytes\":%llu,\"vram_kv_bytes\":%llu",
             name, prop.major, prop.minor, rt_major, rt_minor,
             (unsigned long long) b->device_bytes,
             (unsigned long long) c->weight_bytes,
             (unsigned long long) c->kv_bytes);
    *out = b;
    return ST_OK;

fail:
    st_cuda_free(b);
    return rc;
}
