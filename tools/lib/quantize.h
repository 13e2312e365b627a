/*
 * Test/tool weight quantizer (tools/lib/quantize.c).
 */
#ifndef ST_QUANTIZE_H
#define ST_QUANTIZE_H

#include "quant/quant.h"

/* Simple round-to-nearest weight quantizer (for tests and synthetic
 * model writers; not bit-identical to llama-quantize). Types: F32, F16,
 * BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * Q8_K, IQ4_NL, IQ4_XS; any other type leaves y
 * untouched. n must be a multiple of the block size (a partial last
 * block is ignored). */
void st_quantize_row(st_type type, const float *x, void *y, int64_t n);

#endif /* ST_QUANTIZE_H */
