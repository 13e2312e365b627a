/*
 * Gated FFN activations (act.h).
 */
#include "backend/cpu/act.h"
#include "base/f16.h"

#include <math.h>
#include <stdlib.h>

/* ggml's constants for the tanh approximation */
#define ST_GELU_COEF_A      0.044715f
#define ST_SQRT_2_OVER_PI   0.79788456080286535587989211986876f


int
st_gelu_table_init(st_gelu_table *t)
{
    uint32_t i;

    t->v = malloc(sizeof(float) * 65536);
    if (t->v == NULL) {
        return -1;
    }
    for (i = 0; i < 65536; i++) {
        float x = st_f16_to_f32((st_f16) i);
        float g = 0.5f * x * (1.0f + tanhf(ST_SQRT_2_OVER_PI * x
                                           * (1.0f + ST_GELU_COEF_A * x * x)));

        t->v[i] = st_f16_to_f32(st_f32_to_f16(g));
    }
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
