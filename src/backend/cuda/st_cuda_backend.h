/*
 * Test and tooling hooks of the CUDA backend beyond backend.h (C
 * callable; the backend itself is created with st_backend_cuda_create).
 */
#ifndef ST_CUDA_BACKEND_H
#define ST_CUDA_BACKEND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct st_backend;

/* Decode-step CUDA graphs of a CUDA backend: graphs captured so far (one
 * per batch size, plus recaptures after the step-input buffer moved) and
 * steps run by replaying one. Returns 1 if graphs are on, 0 if off
 * (ST_CUDA_GRAPHS=0, or capture failed on this device), -1 if b is not a
 * CUDA backend. */
int st_cuda_backend_graph_stats(const struct st_backend *b,
    uint64_t *captures, uint64_t *replays);

#ifdef __cplusplus
}
#endif

#endif /* ST_CUDA_BACKEND_H */
