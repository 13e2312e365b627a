/*
 * Sampling parameters of a request and the logprob record (public API).
 * How they are applied, in order, is documented in src/engine/sampler.h.
 */
#ifndef ST_SAMPLING_H
#define ST_SAMPLING_H

#include "starling/st_common.h"

typedef struct {
    int32_t token;
    float   bias;
} st_logit_bias;

typedef struct {
    float    temperature;        /* 0 = greedy */
    int32_t  top_k;              /* <= 0: off */
    float    top_p;              /* 1: off */
    float    min_p;              /* 0: off */
    float    repeat_penalty;     /* 1: off */
    int32_t  repeat_last_n;      /* window of repeat_penalty, in tokens;
                                    0: off, -1: whole history */
    float    frequency_penalty;  /* 0: off */
    float    presence_penalty;   /* 0: off */
    uint64_t seed;
    const st_logit_bias *logit_bias;  /* copied by st_sampler_create;
                                         ids unique and < n_vocab, values
                                         in -100..100 or -INFINITY */
    size_t   n_logit_bias;
    int32_t  n_probs;            /* top logprobs to report, 0..20 */
} st_sampling_params;

/* Fills llama.cpp-like defaults: temperature 1, top_k 0, top_p 1, min_p 0,
 * penalties off, repeat_last_n 64, seed 0, n_probs 0. */
void st_sampling_defaults(st_sampling_params *p);
/* Range checks; message names the field. NaN fails every check.
 * temperature 0..2, top_k >= 0, top_p (0, 1], min_p 0..1,
 * repeat_penalty finite > 0, repeat_last_n >= -1, frequency/presence
 * penalty -2..2, logit_bias ids in 0..n_vocab-1 (no duplicates) with
 * values in -100..100 or -inf, n_probs 0..20. ST_ERR_INVALID, or
 * ST_ERR_NOMEM (the duplicate check sorts a copy). */
st_status st_sampling_validate(const st_sampling_params *p, uint32_t n_vocab,
    st_error *err);

#define ST_MAX_TOP_LOGPROBS 20

typedef struct {
    int32_t token;
    float   logprob;
} st_token_logprob;

#endif /* ST_SAMPLING_H */
