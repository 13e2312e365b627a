/*
 * Gated FFN activations (act.h).
 */
#include "backend/cpu/act.h"
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


void
st_swiglu(float *gate, const float *up, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
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
