/*
 * GELU(tanh) table (gelu.h).
 */
#include "model/gelu.h"
#include "base/f16.h"

#include <math.h>

/* ggml's constants for the tanh approximation */
#define ST_GELU_COEF_A      0.044715f
#define ST_SQRT_2_OVER_PI   0.79788456080286535587989211986876f


void
st_gelu_table_fill(float *t)
{
    uint32_t i;

    for (i = 0; i < ST_GELU_TABLE_SIZE; i++) {
        float x = st_f16_to_f32((st_f16) i);
        float g = 0.5f * x * (1.0f + tanhf(ST_SQRT_2_OVER_PI * x
                                           * (1.0f + ST_GELU_COEF_A * x * x)));

        t[i] = st_f16_to_f32(st_f32_to_f16(g));
    }
}
