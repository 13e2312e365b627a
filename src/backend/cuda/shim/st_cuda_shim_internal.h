/*
 * State shared by the shim's runtime files (st_cuda_shim.cc,
 * st_cuda_shim_stream.cc); not for kernels or tests.
 */
#ifndef ST_CUDA_SHIM_INTERNAL_H
#define ST_CUDA_SHIM_INTERNAL_H

#include "backend/cuda/shim/st_cuda_shim.h"

/* cudaGetLastError's error of this host thread */
extern thread_local cudaError_t   st_shim_last_error;
/* Graph launches and recorded nodes of this host thread (for
 * st_shim_stats_get). */
void st_shim_graph_counts(uint64_t *launches, uint64_t *nodes);

#endif /* ST_CUDA_SHIM_INTERNAL_H */
