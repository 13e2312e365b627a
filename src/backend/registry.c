/*
 * The backend table. Built twice by the Makefile: without ST_WITH_CUDA
 * (build/backends_cpu.o) and with it (build/backends_cuda.o).
 */
#include "backend/registry.h"

#include <string.h>


static int
st_cpu_device_count(char *why, size_t why_len)
{
    (void) why;
    (void) why_len;
    return 1;
}


static st_status
st_cpu_create(st_backend **out, const st_backend_args *a, st_error *err)
{
    return st_backend_cpu_create(out, a->model, a->max_tokens, a->tp, err);
}


static const st_backend_entry st_cpu_entry = {
    "cpu", st_cpu_device_count, st_cpu_create
};


#if defined(ST_WITH_CUDA)

static st_status
st_cuda_create(st_backend **out, const st_backend_args *a, st_error *err)
{
    return st_backend_cuda_create(out, a->model, a->max_tokens, a->kv,
                                  a->device, err);
}


static const st_backend_entry st_cuda_entry = {
    "cuda", st_backend_cuda_device_count, st_cuda_create
};

#endif


static const st_backend_entry *const st_backends[] = {
    &st_cpu_entry,
#if defined(ST_WITH_CUDA)
    &st_cuda_entry,
#endif
    NULL
};


const st_backend_entry *
st_backend_find(const char *name)
{
    size_t i;

    for (i = 0; st_backends[i] != NULL; i++) {
        if (strcmp(st_backends[i]->name, name) == 0) {
            return st_backends[i];
        }
    }
    return NULL;
}
