/*
 * CUDA backend: one projection, by the quantized matvec kernels (decode)
 * or cuBLAS GEMM (prefill-sized batches); see st_cuda_backend.cu.
 */
#include "backend/cuda/st_cuda_internal.h"

/* ---- matmul ---------------------------------------------------------- */

int
st_cuda_is_float_type(int type)
{
    return type == ST_CUDA_F32 || type == ST_CUDA_F16 || type == ST_CUDA_BF16;
}


/* act = x converted to vdt, unless it already holds exactly that. */
static int
st_cuda_act(st_cuda_impl *c, const float *x, uint32_t n, uint32_t n_in,
    int vdt)
{
    int e;

    if (c->act_src == x && c->act_n == n && c->act_vdt == vdt) {
        return 0;
    }
    e = st_cuda_quantize_act(x, n, n_in, vdt, c->act, c->stream);
    c->act_src = e == 0 ? x : NULL;
    c->act_n = n;
    c->act_vdt = vdt;
    c->actf_ok = 0;
    return e;
}


/* y (n, n_out) = x (n, n_in) . W^T, by cuBLAS when allowed and n is at
 * least gemm_min_rows, else by the matvec kernels. The caller resets
 * c->act_src when x has new contents. */
static st_status
st_cuda_matmul_rows(st_cuda_impl *c, const st_cuda_weight *w, const float *x,
    uint32_t n, int allow_gemm, float *y, st_error *err)
{
    int vdt = st_cuda_vec_dot_type(w->type), e;

    if (n == 0) {
        return ST_OK;
    }
    if (allow_gemm && c->blas != NULL && c->gemm_min_rows > 0
        && n >= c->gemm_min_rows)
    {
        const float    one = 1.0f, zero = 0.0f;
        cublasStatus_t s;

        if (st_cuda_is_float_type(w->type)) {
            /* activations in the weight's own type (F16/BF16 products are
             * exact in F32), FP32 accumulation */
            cudaDataType_t dt = w->type == ST_CUDA_F32 ? CUDA_R_32F
                                : w->type == ST_CUDA_BF16 ? CUDA_R_16BF
                                : CUDA_R_16F;
            const void    *b = x;

            if (dt != CUDA_R_32F) {
                if ((e = st_cuda_act(c, x, n, w->n_in, vdt))) {
                    return st_cuda_fail(err, "quantize (gemm)", e);
                }
                b = c->act;
            }
            s = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) w->n_out,
                             (int) n, (int) w->n_in, &one, w->d, dt,
                             (int) w->n_in, b, dt, (int) w->n_in, &zero, y,
                             CUDA_R_32F, (int) w->n_out, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT);
            if (s != CUBLAS_STATUS_SUCCESS) {
                return st_error_set(err, ST_ERR_INTERNAL,
                                    "cuda: cublasGemmEx failed (%d)", (int) s);
            }
            return ST_OK;
        }
        /* quantized: the activations go through the CPU's quantizer (Q8_0
         * or Q8_K) and back to F32, the weights are dequantized to F32
         * tiles of whole rows; an FP32 GEMM then computes the CPU's dot
         * products up to summation order */
        {
            uint32_t rows = (uint32_t) (c->tile_elems / w->n_in), r0, cnt;

            if (rows > 65535) {
                rows = 65535;         /* grid.y limit of the dequant kernel */
            }
            if (rows == 0) {
                return st_error_set(err, ST_ERR_INTERNAL,
                                    "cuda: dequant tile too small");
            }
            e = st_cuda_act(c, x, n, w->n_in, vdt);
            if (e == 0 && !c->actf_ok) {
                e = st_cuda_dequant_f32(c->act, vdt,
                                        st_cuda_row_bytes(vdt, w->n_in),
                                        w->n_in, 0, n, c->actf, c->stream);
                c->actf_ok = e == 0;
            }
            if (e) {
                return st_cuda_fail(err, "quantize (gemm)", e);
            }
            for (r0 = 0; r0 < w->n_out; r0 += rows) {
                cnt = w->n_out - r0 < rows ? w->n_out - r0 : rows;
                e = st_cuda_dequant_f32(w->d, w->type, w->row_bytes, w->n_in,
                                        r0, cnt, c->tile, c->stream);
                if (e) {
                    return st_cuda_fail(err, "dequant", e);
                }
                s = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) cnt,
                                 (int) n, (int) w->n_in, &one, c->tile,
                                 CUDA_R_32F, (int) w->n_in, c->actf,
                                 CUDA_R_32F, (int) w->n_in, &zero, y + r0,
                                 CUDA_R_32F, (int) w->n_out,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                if (s != CUBLAS_STATUS_SUCCESS) {
                    return st_error_set(err, ST_ERR_INTERNAL,
                                        "cuda: cublasGemmEx failed (%d)",
                                        (int) s);
                }
            }
        }
        return ST_OK;
    }

    if (vdt != ST_CUDA_F32) {
        if ((e = st_cuda_act(c, x, n, w->n_in, vdt))) {
            return st_cuda_fail(err, "quantize", e);
        }
    }
    e = st_cuda_matvec(w->d, w->type, w->row_bytes, w->n_in, w->n_out,
                       vdt == ST_CUDA_F32 ? (const void *) x : c->act, n, y,
                       c->stream);
    return e ? st_cuda_fail(err, "matvec", e) : ST_OK;
}


/*
 * Decode rows must give the same bits whatever else is in the step, so
 * they never go through cuBLAS (whose results depend on the batch shape):
 * the leading n_lead rows run the matvec kernels, whose per-row result
 * does not depend on the number of rows; the prefill rows after them use
 * cuBLAS when there are enough of them.
 */
st_status
st_cuda_matmul(st_cuda_impl *c, const st_cuda_weight *w, const float *x,
    uint32_t n, uint32_t n_lead, float *y, st_error *err)
{
    st_status rc;

    if (n_lead > n) {
        n_lead = n;
    }
    if (n_lead == 0 || n - n_lead < c->gemm_min_rows || c->gemm_min_rows == 0)
    {
        return st_cuda_matmul_rows(c, w, x, n, n_lead == 0, y, err);
    }
    rc = st_cuda_matmul_rows(c, w, x, n_lead, 0, y, err);
    if (rc != ST_OK) {
        return rc;
    }
    return st_cuda_matmul_rows(c, w, x + (size_t) n_lead * w->n_in,
                               n - n_lead, 1, y + (size_t) n_lead * w->n_out,
                               err);
}
