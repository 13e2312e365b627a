/*
 * Token sampler; the processing order is documented in sampler.h.
 *
 * Cost per token: O(n_vocab) scans for bias/greedy/softmax and O(n_vocab)
 * expected quickselects for top-k (by rank) and top-p (by mass); nothing
 * is ever fully sorted.
 *
 * History for penalties lives in one small hash map (token -> counts in
 * the repeat window and among generated tokens), so applying penalties
 * costs O(distinct tokens seen), not O(n_vocab) memory per request.
 */
#include "engine/sampler.h"
#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* bias at or below this bans the token (OpenAI: -100 "should result in a
 * ban or exclusive selection of the relevant token") */
#define ST_BIAS_BAN  (-100.0f)
#define ST_BIAS_MAX  100.0f

typedef struct {
    int32_t  token;      /* -1: empty slot */
    uint32_t n_window;   /* occurrences in the repeat-penalty window */
    uint32_t n_gen;      /* occurrences among generated tokens */
} st_hist_entry;

typedef struct {
    int32_t token;
    float   logit;
} st_cand;

struct st_sampler {
    st_sampling_params params;       /* logit_bias points at bias below */
    uint32_t           n_vocab;
    st_rng             rng;

    st_logit_bias     *bias;         /* (n_bias) copy, sorted by token */
    size_t             n_bias;
    size_t             n_force;      /* entries at ST_BIAS_MAX */

    st_hist_entry     *hist;         /* (hist_cap) open addressing */
    size_t             hist_cap;     /* power of two */
    size_t             hist_used;

    int32_t           *window;       /* (window_cap) ring of last tokens */
    size_t             window_cap;   /* 0 when repeat_last_n <= 0 */
    size_t             window_len;
    size_t             window_head;  /* next slot to write */

    st_cand           *cand;         /* (n_vocab) scratch candidates */
    st_cand           *saved;        /* raw logits of edited tokens */
    size_t             saved_cap;
    size_t             n_saved;
};


void
st_sampling_defaults(st_sampling_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->seed = 0;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
    p->n_probs = 0;
}


static int
st_bias_cmp(const void *a, const void *b)
{
    const st_logit_bias *x = a, *y = b;

    return (x->token > y->token) - (x->token < y->token);
}


/* Checks every logit_bias entry; the duplicate check works on a sorted
 * copy in *sorted_out (caller frees) so create can keep it. */
static st_status
st_bias_validate(const st_sampling_params *p, uint32_t n_vocab,
    st_logit_bias **sorted_out, st_error *err)
{
    st_logit_bias *sorted;
    size_t         i;

    *sorted_out = NULL;
    if (p->n_logit_bias == 0) {
        return ST_OK;
    }
    if (p->logit_bias == NULL) {
        return st_error_set(err, ST_ERR_INVALID,
            "logit_bias: %zu entries but no array", p->n_logit_bias);
    }
    if (p->n_logit_bias > n_vocab) {
        return st_error_set(err, ST_ERR_INVALID,
            "logit_bias: %zu entries, more than the vocabulary (%u)",
            p->n_logit_bias, n_vocab);
    }
    for (i = 0; i < p->n_logit_bias; i++) {
        const st_logit_bias *b = &p->logit_bias[i];

        if (b->token < 0 || (uint32_t) b->token >= n_vocab) {
            return st_error_set(err, ST_ERR_INVALID,
                "logit_bias: token id %d is outside the vocabulary "
                "(0..%u)", (int) b->token, n_vocab - 1);
        }
        if (isnan(b->bias)
            || (isinf(b->bias) && b->bias > 0)
            || (isfinite(b->bias)
                && (b->bias < -ST_BIAS_MAX || b->bias > ST_BIAS_MAX)))
        {
            return st_error_set(err, ST_ERR_INVALID,
                "logit_bias: value for token %d must be in -100..100 "
                "or -inf", (int) b->token);
        }
    }

    sorted = malloc(p->n_logit_bias * sizeof(*sorted));
    if (sorted == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "logit_bias: out of memory");
    }
    memcpy(sorted, p->logit_bias, p->n_logit_bias * sizeof(*sorted));
    qsort(sorted, p->n_logit_bias, sizeof(*sorted), st_bias_cmp);
    for (i = 1; i < p->n_logit_bias; i++) {
        if (sorted[i].token == sorted[i - 1].token) {
            st_error_set(err, ST_ERR_INVALID,
                "logit_bias: token id %d appears twice",
                (int) sorted[i].token);
            free(sorted);
            return ST_ERR_INVALID;
        }
    }
    *sorted_out = sorted;
    return ST_OK;
}


static st_status
st_params_validate(const st_sampling_params *p, st_error *err)
{
    /* Written as !(in range) so that NaN fails every check. */
    if (!(p->temperature >= 0.0f && p->temperature <= 2.0f)) {
        return st_error_set(err, ST_ERR_INVALID,
            "temperature must be in 0..2");
    }
    if (p->top_k < 0) {
        return st_error_set(err, ST_ERR_INVALID,
            "top_k must be >= 0 (0 disables it)");
    }
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) {
        return st_error_set(err, ST_ERR_INVALID,
            "top_p must be in (0, 1]");
    }
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) {
        return st_error_set(err, ST_ERR_INVALID, "min_p must be in 0..1");
    }
    if (!(p->repeat_penalty > 0.0f && isfinite(p->repeat_penalty))) {
        return st_error_set(err, ST_ERR_INVALID,
            "repeat_penalty must be finite and > 0 (1 disables it)");
    }
    if (p->repeat_last_n < -1) {
        return st_error_set(err, ST_ERR_INVALID,
            "repeat_last_n must be >= -1 (-1: whole history, 0: off)");
    }
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f)) {
        return st_error_set(err, ST_ERR_INVALID,
            "frequency_penalty must be in -2..2");
    }
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f)) {
        return st_error_set(err, ST_ERR_INVALID,
            "presence_penalty must be in -2..2");
    }
    if (p->n_probs < 0 || p->n_probs > ST_MAX_TOP_LOGPROBS) {
        return st_error_set(err, ST_ERR_INVALID,
            "n_probs (top logprobs) must be in 0..%d", ST_MAX_TOP_LOGPROBS);
    }
    return ST_OK;
}


st_status
st_sampling_validate(const st_sampling_params *p, uint32_t n_vocab,
    st_error *err)
{
    st_logit_bias *sorted;
    st_status      rc;

    if (p == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "no sampling parameters");
    }
    if (n_vocab == 0 || n_vocab > (uint32_t) INT32_MAX) {
        return st_error_set(err, ST_ERR_INVALID,
            "n_vocab %u is not a usable vocabulary size", n_vocab);
    }
    rc = st_params_validate(p, err);
    if (rc != ST_OK) {
        return rc;
    }
    rc = st_bias_validate(p, n_vocab, &sorted, err);
    free(sorted);
    return rc;
}


/* ---- history hash map ------------------------------------------------ */

static size_t
st_hist_slot(const st_sampler *s, int32_t token)
{
    /* Fibonacci hashing spreads consecutive ids over the table */
    uint64_t h = (uint64_t) (uint32_t) token * 0x9e3779b97f4a7c15ULL;
    size_t   mask = s->hist_cap - 1;
    size_t   i = (size_t) (h >> 32) & mask;

    while (s->hist[i].token != -1 && s->hist[i].token != token) {
        i = (i + 1) & mask;
    }
    return i;
}


static int
st_hist_grow(st_sampler *s)
{
    st_hist_entry *old = s->hist;
    size_t         old_cap = s->hist_cap, i, j;
    size_t         cap = old_cap ? old_cap * 2 : 64;

    s->hist = malloc(cap * sizeof(*s->hist));
    if (s->hist == NULL) {
        s->hist = old;
        return -1;
    }
    for (i = 0; i < cap; i++) {
        s->hist[i].token = -1;
        s->hist[i].n_window = 0;
        s->hist[i].n_gen = 0;
    }
    s->hist_cap = cap;
    for (i = 0; i < old_cap; i++) {
        if (old[i].token != -1) {
            j = st_hist_slot(s, old[i].token);
            s->hist[j] = old[i];
        }
    }
    free(old);
    return 0;
}


/* Returns the entry for token, creating it; NULL only when out of memory
 * (the penalty history then misses this token: sampling still works). */
static st_hist_entry *
st_hist_get(st_sampler *s, int32_t token)
{
    size_t i;

    /* keep the load factor under 1/2 */
    if ((s->hist_used + 1) * 2 > s->hist_cap && st_hist_grow(s) != 0) {
        if (s->hist_cap == 0 || s->hist_used + 1 >= s->hist_cap) {
            return NULL;
        }
    }
    i = st_hist_slot(s, token);
    if (s->hist[i].token == -1) {
        s->hist[i].token = token;
        s->hist_used++;
    }
    return &s->hist[i];
}


static void
st_sampler_record(st_sampler *s, int32_t token, int generated)
{
    st_hist_entry *e;
    int32_t        old;

    if (token < 0 || (uint32_t) token >= s->n_vocab) {
        return;
    }
    e = st_hist_get(s, token);
    if (e == NULL) {
        return;
    }
    if (generated) {
        e->n_gen++;
    }
    if (s->params.repeat_last_n < 0) {
        /* -1: the window is the whole history */
        e->n_window++;
        return;
    }
    if (s->window_cap == 0) {
        return;
    }
    if (s->window_len == s->window_cap) {
        old = s->window[s->window_head];
        e = st_hist_get(s, old);
        if (e != NULL && e->n_window > 0) {
            e->n_window--;
        }
        s->window_len--;
    }
    s->window[s->window_head] = token;
    s->window_head = (s->window_head + 1) % s->window_cap;
    s->window_len++;
    e = st_hist_get(s, token);
    if (e != NULL) {
        e->n_window++;
    }
}


/* ---- create / free ----------------------------------------------------- */

st_status
st_sampler_create(st_sampler **out, const st_sampling_params *p,
    uint32_t n_vocab, st_error *err)
{
    st_sampler    *s;
    st_logit_bias *sorted = NULL;
    size_t         i;
    st_status      rc;

    *out = NULL;
    rc = st_sampling_validate(p, n_vocab, err);
    if (rc != ST_OK) {
        return rc;
    }
    rc = st_bias_validate(p, n_vocab, &sorted, err);
    if (rc != ST_OK) {
        return rc;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        free(sorted);
        return st_error_set(err, ST_ERR_NOMEM, "sampler: out of memory");
    }
    s->params = *p;
    s->n_vocab = n_vocab;
    s->bias = sorted;
    s->n_bias = p->n_logit_bias;
    for (i = 0; i < s->n_bias; i++) {
        s->n_force += s->bias[i].bias >= ST_BIAS_MAX;
    }
    s->params.logit_bias = sorted;
    st_rng_seed(&s->rng, p->seed);

    s->cand = malloc((size_t) n_vocab * sizeof(*s->cand));
    s->saved_cap = s->n_bias + 64;
    s->saved = malloc(s->saved_cap * sizeof(*s->saved));
    if (p->repeat_last_n > 0) {
        s->window_cap = (size_t) p->repeat_last_n;
        s->window = malloc(s->window_cap * sizeof(*s->window));
    }
    if (s->cand == NULL || s->saved == NULL
        || (s->window_cap > 0 && s->window == NULL)
        || st_hist_grow(s) != 0)
    {
        st_sampler_free(s);
        return st_error_set(err, ST_ERR_NOMEM, "sampler: out of memory");
    }
    *out = s;
    return ST_OK;
}


void
st_sampler_free(st_sampler *s)
{
    if (s == NULL) {
        return;
    }
    free(s->bias);
    free(s->hist);
    free(s->window);
    free(s->cand);
    free(s->saved);
    free(s);
}


void
st_sampler_accept_prompt(st_sampler *s, const int32_t *ids, size_t n)
{
    size_t i, start = 0;

    /* only the last repeat_last_n prompt tokens can ever be in the window */
    if (s->params.repeat_last_n == 0) {
        return;
    }
    if (s->params.repeat_last_n > 0 && n > s->window_cap) {
        start = n - s->window_cap;
    }
    for (i = start; i < n; i++) {
        st_sampler_record(s, ids[i], 0);
    }
}


/* ---- logit edits ------------------------------------------------------- */

/* Remembers a token's logit before an edit, so that the chosen token's
 * logprob can be computed from the raw row afterwards. A token edited
 * twice (bias, then penalty) is saved twice; the first entry is the raw
 * value, and st_raw_logit returns the first match. */
static void
st_save_raw(st_sampler *s, int32_t token, float raw)
{
    st_cand *grown;
    size_t   cap;

    if (s->params.n_probs == 0) {
        return;
    }
    if (s->n_saved == s->saved_cap) {
        cap = s->saved_cap * 2;
        grown = realloc(s->saved, cap * sizeof(*s->saved));
        if (grown == NULL) {
            return;       /* logprob of this token falls back to edited */
        }
        s->saved = grown;
        s->saved_cap = cap;
    }
    s->saved[s->n_saved].token = token;
    s->saved[s->n_saved].logit = raw;
    s->n_saved++;
}


static void
st_apply_bias(st_sampler *s, float *logits)
{
    size_t  i;
    int32_t t;

    for (i = 0; i < s->n_bias; i++) {
        t = s->bias[i].token;
        st_save_raw(s, t, logits[t]);
        if (s->bias[i].bias <= ST_BIAS_BAN) {
            logits[t] = -INFINITY;
        } else {
            logits[t] += s->bias[i].bias;
        }
    }
    if (s->n_force == 0) {
        return;
    }
    /* +100 is exclusive selection: every token without it is banned (no
     * raw value to save: a banned token is never the chosen one) */
    i = 0;
    for (t = 0; t < (int32_t) s->n_vocab; t++) {
        while (i < s->n_bias && s->bias[i].token < t) {
            i++;
        }
        if (i < s->n_bias && s->bias[i].token == t
            && s->bias[i].bias >= ST_BIAS_MAX)
        {
            continue;
        }
        logits[t] = -INFINITY;
    }
}


static void
st_apply_penalties(st_sampler *s, float *logits)
{
    const st_sampling_params *p = &s->params;
    int     rep = p->repeat_penalty != 1.0f && p->repeat_last_n != 0;
    int     fp = p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
    size_t  i;
    int32_t t;
    float   l;

    if (!rep && !fp) {
        return;
    }
    for (i = 0; i < s->hist_cap; i++) {
        t = s->hist[i].token;
        if (t == -1 || (s->hist[i].n_window == 0 && s->hist[i].n_gen == 0)) {
            continue;
        }
        l = logits[t];
        st_save_raw(s, t, l);
        if (rep && s->hist[i].n_window > 0) {
            /* llama.cpp: shrink toward "less likely" on both signs */
            l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        }
        if (fp && s->hist[i].n_gen > 0) {
            l -= (float) s->hist[i].n_gen * p->frequency_penalty
                 + p->presence_penalty;
        }
        logits[t] = l;
    }
}


/* ---- selection helpers ------------------------------------------------- */

/* Total order used everywhere: higher logit first, lower id on ties. */
static int
st_cand_better(const st_cand *a, const st_cand *b)
{
    return a->logit > b->logit
           || (a->logit == b->logit && a->token < b->token);
}


static void
st_cand_swap(st_cand *a, st_cand *b)
{
    st_cand t = *a;

    *a = *b;
    *b = t;
}


/* Median-of-three Lomuto partition of c[lo..hi) (hi - lo >= 2):
 * returns store such that c[lo..store) are better than c[store] (the
 * pivot) and c(store..hi) are not. */
static size_t
st_cand_partition(st_cand *c, size_t lo, size_t hi)
{
    size_t  mid = lo + (hi - lo) / 2, i, store = lo;
    st_cand pivot;

    if (st_cand_better(&c[mid], &c[lo])) {
        st_cand_swap(&c[mid], &c[lo]);
    }
    if (st_cand_better(&c[hi - 1], &c[lo])) {
        st_cand_swap(&c[hi - 1], &c[lo]);
    }
    if (st_cand_better(&c[mid], &c[hi - 1])) {
        st_cand_swap(&c[mid], &c[hi - 1]);
    }
    pivot = c[hi - 1];
    for (i = lo; i < hi - 1; i++) {
        if (st_cand_better(&c[i], &pivot)) {
            st_cand_swap(&c[i], &c[store]);
            store++;
        }
    }
    st_cand_swap(&c[store], &c[hi - 1]);
    return store;
}


/* Reorders c[0..n) so that its best k elements come first (in no
 * particular order): quickselect, O(n) average, deterministic. */
static void
st_cand_select(st_cand *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n, store;

    if (k == 0 || k >= n) {
        return;
    }
    while (hi - lo > 1) {
        store = st_cand_partition(c, lo, hi);
        if (store == k || store + 1 == k) {
            return;
        }
        if (store > k) {
            hi = store;
        } else {
            lo = store + 1;
        }
    }
}


/* Top-p without sorting: c[i].logit holds weights. Reorders c so that
 * c[0..m) is the smallest best-first set whose weight reaches target
 * and returns m (>= 1). Quickselect on mass instead of rank: O(n)
 * expected. Ties (equal weight) are ordered by id, as everywhere. */
static size_t
st_cand_select_mass(st_cand *c, size_t n, double target)
{
    size_t lo = 0, hi = n, store, i;
    double need = target, m;

    while (hi - lo > 1) {
        store = st_cand_partition(c, lo, hi);
        m = 0.0;
        for (i = lo; i < store; i++) {
            m += c[i].logit;
        }
        if (m >= need) {
            hi = store;                  /* the cut is among the better */
        } else if (m + c[store].logit >= need) {
            return store + 1;            /* the pivot completes the set */
        } else {
            need -= m + c[store].logit;  /* keep all better + pivot */
            lo = store + 1;
        }
    }
    /* one element left: it completes the set (or rounding left the
     * target unreachable and everything up to hi is kept) */
    return hi > lo ? lo + 1 : hi;
}


/* ---- logprobs ---------------------------------------------------------- */

typedef struct {
    double lse;          /* log(sum(exp(raw))) of the raw row */
    size_t n_top;
} st_logprob_ctx;


/* log-softmax normaliser and top-n of the raw row; must run before any
 * edit of logits. */
static void
st_logprobs_prepare(st_sampler *s, const float *logits, st_token_logprob *top,
    st_logprob_ctx *lp)
{
    uint32_t i, n = s->n_vocab;
    size_t   n_top = (size_t) s->params.n_probs, j, k;
    float    max = -INFINITY;
    double   sum = 0.0;
    st_cand  best[ST_MAX_TOP_LOGPROBS], c;

    for (i = 0; i < n; i++) {
        if (logits[i] > max) {       /* NaN never compares greater */
            max = logits[i];
        }
    }
    if (max == -INFINITY) {
        lp->lse = -INFINITY;
    } else {
        for (i = 0; i < n; i++) {
            if (logits[i] > -INFINITY) {
                sum += exp((double) logits[i] - (double) max);
            }
        }
        lp->lse = (double) max + log(sum);
    }

    /* top-n by insertion into a small sorted array (n_top <= 20) */
    k = 0;
    for (i = 0; i < n; i++) {
        if (!(logits[i] >= -INFINITY)) {
            continue;                /* NaN */
        }
        c.token = (int32_t) i;
        c.logit = logits[i];
        if (k == n_top && !st_cand_better(&c, &best[k - 1])) {
            continue;
        }
        j = k < n_top ? k++ : k - 1;
        while (j > 0 && st_cand_better(&c, &best[j - 1])) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = c;
    }
    lp->n_top = k;
    if (top != NULL) {
        for (j = 0; j < n_top; j++) {
            if (j < k) {
                top[j].token = best[j].token;
                top[j].logprob = (float) ((double) best[j].logit - lp->lse);
            } else {
                top[j].token = -1;
                top[j].logprob = -INFINITY;
            }
        }
    }
}


static float
st_raw_logit(const st_sampler *s, const float *logits, int32_t token)
{
    size_t i;

    for (i = 0; i < s->n_saved; i++) {
        if (s->saved[i].token == token) {
            return s->saved[i].logit;
        }
    }
    return logits[token];
}


/* ---- sampling ---------------------------------------------------------- */

static int32_t
st_argmax(const float *logits, uint32_t n)
{
    uint32_t i;
    int32_t  best = -1;
    float    max = -INFINITY;

    /* strict > keeps the lowest id on exact ties and skips NaN */
    for (i = 0; i < n; i++) {
        if (logits[i] > max) {
            max = logits[i];
            best = (int32_t) i;
        }
    }
    return best;
}


/* Steps 4-5 of sampler.h on the edited row. */
static int32_t
st_sample_dist(st_sampler *s, const float *logits)
{
    const st_sampling_params *p = &s->params;
    st_cand  *c = s->cand;
    size_t    n = 0, i, keep;
    uint32_t  v;
    double    inv_t = 1.0 / (double) p->temperature;
    double    z = 0.0, mass, cum, u;
    float     max;

    for (v = 0; v < s->n_vocab; v++) {
        if (logits[v] > -INFINITY) {         /* skips bans and NaN */
            c[n].token = (int32_t) v;
            c[n].logit = logits[v];
            n++;
        }
    }
    if (n == 0) {
        return -1;
    }

    /* top-k */
    if (p->top_k > 0 && (size_t) p->top_k < n) {
        st_cand_select(c, n, (size_t) p->top_k);
        n = (size_t) p->top_k;
    }

    /* softmax(logit / T): probabilities kept unnormalised in .logit from
     * here on; z is the normaliser over every top-k survivor. */
    max = c[0].logit;
    for (i = 1; i < n; i++) {
        if (c[i].logit > max) {
            max = c[i].logit;
        }
    }
    for (i = 0; i < n; i++) {
        /* z sums the same rounded weights that top-p accumulates */
        c[i].logit = (float) exp(((double) c[i].logit - (double) max)
                                 * inv_t);
        z += c[i].logit;
    }

    /* min-p, relative to the max probability (whose weight is 1 here).
     * Applied before the top-p cut in code, but the result is the same
     * as top-p then min-p: both keep a best-first prefix, so the final
     * set is the shorter prefix, and top-p still measures against z. */
    if (p->min_p > 0.0f) {
        keep = 0;
        for (i = 0; i < n; i++) {
            if (c[i].logit >= p->min_p) {
                c[keep++] = c[i];
            }
        }
        n = keep;   /* >= 1: the max has weight 1 >= min_p */
    }

    /* top-p: smallest best-first prefix with cumulative mass >= top_p */
    if (p->top_p < 1.0f) {
        double target = (double) p->top_p * z;

        mass = 0.0;
        for (i = 0; i < n; i++) {
            mass += c[i].logit;
        }
        if (mass > target) {
            n = st_cand_select_mass(c, n, target);
        }
    }

    mass = 0.0;
    for (i = 0; i < n; i++) {
        mass += c[i].logit;
    }
    u = st_rng_uniform(&s->rng) * mass;
    cum = 0.0;
    for (i = 0; i < n; i++) {
        cum += c[i].logit;
        if (u < cum) {
            return c[i].token;
        }
    }
    return c[n - 1].token;   /* u rounded up to mass */
}


int32_t
st_sampler_sample(st_sampler *s, float *logits, st_token_logprob *chosen,
    st_token_logprob *top)
{
    return st_sampler_sample_masked(s, logits, NULL, chosen, top);
}


int32_t
st_sampler_sample_masked(st_sampler *s, float *logits, const uint32_t *mask,
    st_token_logprob *chosen, st_token_logprob *top)
{
    st_logprob_ctx lp = { 0.0, 0 };
    int32_t        id;
    float          raw;

    s->n_saved = 0;
    if (s->params.n_probs > 0) {
        st_logprobs_prepare(s, logits, top, &lp);
    }
    if (mask != NULL) {
        /* step 0: tokens the constraint forbids are -inf; the chosen token
         * is always allowed, so its raw logit is never needed from here */
        for (uint32_t w = 0; w < (s->n_vocab + 31) / 32; w++) {
            uint32_t bits = mask[w];
            if (bits == 0xFFFFFFFFu) {
                continue;
            }
            for (uint32_t b = 0; b < 32 && w * 32 + b < s->n_vocab; b++) {
                if (!((bits >> b) & 1u)) {
                    logits[w * 32 + b] = -INFINITY;
                }
            }
        }
    }

    st_apply_bias(s, logits);
    st_apply_penalties(s, logits);

    if (s->params.temperature <= 0.0f) {
        id = st_argmax(logits, s->n_vocab);
    } else {
        id = st_sample_dist(s, logits);
    }

    if (s->params.n_probs > 0 && chosen != NULL) {
        chosen->token = id;
        if (id >= 0) {
            raw = st_raw_logit(s, logits, id);
            chosen->logprob = (float) ((double) raw - lp.lse);
        } else {
            chosen->logprob = -INFINITY;
        }
    }
    if (id >= 0) {
        st_sampler_record(s, id, 1);
    }
    return id;
}
