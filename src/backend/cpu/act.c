/*
 * Gated FFN activations (act.h).
 */
#include "backend/cpu/act.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_f16.h"
#include "base/f16.h"
#include "model/gelu.h"

#include <math.h>
#include <stdlib.h>

int
st_gelu_table_init(st_gelu_table *t)
{
    t->v = malloc(sizeof(float) * ST_GELU_TABLE_SIZE);
    if (t->v == NULL) {
        return -1;
    }
    st_gelu_table_fill(t->v);
    return 0;
}


void
st_gelu_table_free(st_gelu_table *t)
{
    free(t->v);
    t->v = NULL;
}


/* The exponentials of a chunk at once where the CPU has AVX2 (vec_f16.h:
 * st_vec_expf_avx2 / _avx512 give expf's bits lane for lane), then the division
 * and product, each rounded once as in the scalar loop: the same bits
 * at every level. libm's expf per element was 4% of a 0.5B prefill. */
#define ST_SWIGLU_CHUNK  256

void
st_swiglu(float *gate, const float *up, size_t n)
{
    float         e[ST_SWIGLU_CHUNK];
    size_t        i, j, m;
    st_cpu_level  lv = st_cpu_level_selected();
    void        (*vexp)(float *, int64_t) = lv >= ST_CPU_AVX512
                                            ? st_vec_expf_avx512
                                            : st_vec_expf_avx2;

    if (lv < ST_CPU_AVX2) {
        for (i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1.0f + expf(-g)) * up[i];
        }
        return;
    }
    for (i = 0; i < n; i += m) {
        m = n - i < ST_SWIGLU_CHUNK ? n - i : ST_SWIGLU_CHUNK;
        for (j = 0; j < m; j++) {
            e[j] = -gate[i + j];
        }
        vexp(e, (int64_t) m);
        for (j = 0; j < m; j++) {
            gate[i + j] = gate[i + j] / (1.0f + e[j]) * up[i + j];
        }
    }
}


void
st_geglu(const st_gelu_table *t, float *gate, const float *up, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        float x = gate[i];

        if (x <= -10.0f) {
            gate[i] = 0.0f;
        } else if (x >= 10.0f) {
            gate[i] = x * up[i];
        } else {
            gate[i] = t->v[st_f32_to_f16(x)] * up[i];
        }
    }
}


void
st_softcap(float *x, size_t n, float cap)
{
    float  inv = 1.0f / cap;
    size_t i;

    for (i = 0; i < n; i++) {
        x[i] = tanhf(x[i] * inv) * cap;
    }
}
