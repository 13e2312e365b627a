/*
 * A weight matrix as it lies in the model file: what every backend's
 * matmul consumes.
 */
#ifndef ST_WEIGHT_H
#define ST_WEIGHT_H

#include "quant/quant.h"

/* Weight matrix W: n_out rows of n_in values, type wtype, row-major
 * (ggml layout: ne[0] = n_in, ne[1] = n_out). */
typedef struct {
    const void *data;
    st_type     type;
    int64_t     n_in;
    int64_t     n_out;
    size_t      row_bytes;
} st_weight;

#endif /* ST_WEIGHT_H */
