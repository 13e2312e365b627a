/*
 * The real (nvcc) CUDA library on a machine without a usable GPU: the
 * device count is 0 with the runtime's reason, and creating the backend
 * fails cleanly with that reason. On a machine with a GPU both checks are
 * reported as skipped (test-gpu covers that case).
 */
#include "cuda_test.h"
#include "backend/backend.h"

int
main(void)
{
    char        why[160] = "";
    int         n;
    st_model   *m = NULL;
    st_backend *b = NULL;
    st_error    err = { 0 };
    char        path[1024];

    n = st_backend_cuda_device_count(why, sizeof(why));
    if (n > 0) {
        skip("%d CUDA device(s) present: the no-device path is not "
             "reachable here", n);
        return done_testing();
    }
    ok(n == 0 && strstr(why, "cudaGetDeviceCount") != NULL
       && strchr(why, '(') != NULL,
       "no device: count 0, reason \"%s\"", why);

    snprintf(path, sizeof(path), "%s/models/stories260K.gguf",
             tap_root_dir());
    if (st_model_load(&m, path, NULL, &err) != ST_OK) {
        ok(0, "load %s: %s", path, err.msg);
        return done_testing();
    }
    {
        st_kv_geometry geo = { m->hp.n_layer,
                               m->hp.n_head_kv * m->hp.head_dim, 16, 4 };
        st_status      rc = st_backend_cuda_create(&b, m, 8, &geo, -1, &err);

        ok(rc == ST_ERR_UNSUPPORTED && b == NULL
           && strstr(err.msg, "cudaGetDeviceCount") != NULL,
           "create fails with the reason: %s", err.msg);
    }
    st_model_free(m);
    return done_testing();
}
