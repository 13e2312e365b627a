/*
 * The backends compiled into a program, as an explicit table.
 *
 * registry.c is not part of libstarling.a: every program that creates an
 * engine links one build of it, build/backends_cpu.o (the CPU only) or
 * build/backends_cuda.o (CPU + CUDA, which then needs the CUDA library
 * on the link line). Choosing an object instead of weak symbols keeps the
 * engine's symbols hidden and the link free of --whole-archive.
 */
#ifndef ST_BACKEND_REGISTRY_H
#define ST_BACKEND_REGISTRY_H

#include "backend/backend.h"

/* What a backend needs to start; each uses the members it knows. */
typedef struct {
    const st_model       *model;
    uint32_t              max_tokens;   /* rows per forward call */
    st_threadpool        *tp;           /* CPU */
    const st_kv_geometry *kv;           /* device backends: KV storage */
    int                   device;       /* device index, -1: any */
} st_backend_args;

typedef struct {
    const char *name;                   /* "cpu", "cuda" */
    /* Usable devices, or 0 with the reason in why. */
    int       (*device_count)(char *why, size_t why_len);
    st_status (*create)(st_backend **out, const st_backend_args *a,
                        st_error *err);
} st_backend_entry;

/* The entry named name ("cpu", "cuda"), or NULL when not compiled in. */
const st_backend_entry *st_backend_find(const char *name);

#endif /* ST_BACKEND_REGISTRY_H */
