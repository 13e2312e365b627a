/*
 * Matrix multiplication of quantized/float weights by float activations,
 * with llama.cpp's CPU numerics: each activation row is first converted to
 * the weight type's vec_dot type (quant.h), then every output element is
 * one vec_dot of a weight row with that converted row.
 *
 * Batch invariance (a product promise): y[r][o] depends only on weight row
 * o and activation row r, never on n_rows, thread count or tiling; the
 * reduction order inside a dot product is fixed.
 */
#ifndef ST_MATMUL_H
#define ST_MATMUL_H

#include "base/threadpool.h"
#include "model/weight.h"


/* Scratch for converted activations; grown on demand, owned by caller. */
typedef struct {
    void   *buf;
    size_t  cap;
} st_matmul_scratch;

/* y (n_rows, n_out) = x (n_rows, n_in) . W^T.
 * Returns ST_ERR_NOMEM if scratch cannot grow. */
st_status st_matmul(st_threadpool *tp, st_matmul_scratch *scratch,
    const st_weight *w, const float *x, int64_t n_rows, float *y);

void st_matmul_scratch_free(st_matmul_scratch *s);

/* Selected kernel set, for logs/benchmarks: "scalar", "avx2", "avx512". */
const char *st_cpu_kernels_name(void);

#endif /* ST_MATMUL_H */
