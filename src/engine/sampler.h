/*
 * Token sampler: turns one row of logits into a token id.
 *
 * Processing order (documented, stable):
 *   0. constraint mask (st_sampler_sample_masked): tokens whose bit is
 *      clear become -inf (grammar / response_format; logprobs still
 *      describe the model's unconstrained distribution)
 *   1. logit bias (token -> additive bias; -inf or <= -100 bans, and
 *      +100 is exclusive selection: when any token has +100, only the
 *      tokens at +100 stay candidates — OpenAI: "-100 or 100 should
 *      result in a ban or exclusive selection of the relevant token")
 *   2. repetition penalty (llama.cpp style: divide positive / multiply
 *      negative logits of tokens seen in the last repeat_last_n tokens,
 *      prompt + generated, each distinct token once),
 *      then frequency and presence penalties (OpenAI style) over the
 *      generated tokens: logit -= count * frequency + (count > 0) * presence
 *   3. temperature == 0 -> greedy argmax (lowest id on exact ties); stop
 *   4. top-k -> softmax(logits / temperature) -> top-p (smallest best-first
 *      set with mass >= top_p, at least 1) -> min-p (keep p >= min_p *
 *      p_max; top-p and min-p are both measured on the top-k softmax)
 *   5. draw with the per-request RNG (xoshiro256** seeded from `seed` by
 *      splitmix64; same seed + same logits + same history => same ids)
 * The result depends only on the logits row, the params and the history
 * (never on batch composition or threads). NaN logits count as banned.
 * "Best first" orders are always by logit, then lower id on ties.
 * Logprobs (when requested) are log-softmax of the raw model logits
 * (before steps 1-5), like OpenAI's; the normaliser is summed in double.
 */
#ifndef ST_SAMPLER_H
#define ST_SAMPLER_H

#include "starling/st_sampling.h"

typedef struct st_sampler st_sampler;

st_status st_sampler_create(st_sampler **out, const st_sampling_params *p,
    uint32_t n_vocab, st_error *err);
void st_sampler_free(st_sampler *s);
/* Tell the sampler about prompt tokens (repeat penalty window only;
 * frequency/presence penalties count generated tokens). Normally called
 * once, before the first st_sampler_sample; only the last repeat_last_n
 * ids are kept. */
void st_sampler_accept_prompt(st_sampler *s, const int32_t *ids, size_t n);

/* Samples from logits[0..n_vocab) (the row may be modified in place).
 * If n_probs > 0, fills *chosen (logprob of the sampled token) and
 * top[0..n_probs) (highest first; entries past the number of finite
 * logits get token -1, logprob -inf); either may be NULL. Records the
 * token for penalties. Returns -1 only if no token can be drawn (every
 * logit banned, -inf or NaN): the caller must treat that as an error. */
int32_t st_sampler_sample(st_sampler *s, float *logits,
    st_token_logprob *chosen, st_token_logprob *top);

/* As st_sampler_sample, after banning every token whose bit in mask is
 * clear (bit id % 32 of word id / 32; mask NULL: none banned). */
int32_t st_sampler_sample_masked(st_sampler *s, float *logits,
    const uint32_t *mask, st_token_logprob *chosen, st_token_logprob *top);

#endif /* ST_SAMPLER_H */
