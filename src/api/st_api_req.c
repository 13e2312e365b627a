/*
 * Request parsing and validation for every API surface. The body is
 * parsed into a yajl tree, then each known field is checked; every
 * problem is collected (the worker API reports all of them at once, the
 * OpenAI surface reports the first). Unknown fields are ignored, and JSON
 * null counts as "not given" for optional fields (OpenAI clients send
 * null for unset options).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "st_api_field.h"
#include "st_api_format.h"


#define ST_API_MAX_DEPTH      32
#define ST_API_MAX_STOP       4
#define ST_API_MAX_STOP_BYTES 256
#define ST_API_MAX_JOB_ID     128
#define ST_API_MAX_BIAS       1024


static int
st_api_stop(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val     v = st_api_opt(obj, "stop");
    yajl_val     item;
    size_t       i, n, len;
    const char  *s;

    if (v == NULL) {
        return 0;
    }

    if (v->type == yajl_t_string) {
        n = 1;
    } else if (v->type == yajl_t_array) {
        n = v->u.array.len;
        if (n > ST_API_MAX_STOP) {
            st_api_err(req, "stop", "max_items", "",
                       "stop takes at most %d strings", ST_API_MAX_STOP);
            return -1;
        }
    } else {
        st_api_type_err(req, "stop", v, "a string or an array of strings");
        return -1;
    }

    req->stop = calloc(n ? n : 1, sizeof(char *));
    if (req->stop == NULL) {
        *nomem = 1;
        return -1;
    }

    for (i = 0; i < n; i++) {
        item = (v->type == yajl_t_string) ? v : v->u.array.values[i];

        if (item->type != yajl_t_string) {
            st_api_type_err(req, "stop", item, "a string or an array of "
                            "strings");
            return -1;
        }

        s = item->u.string;
        len = strlen(s);

        if (len == 0 || len > ST_API_MAX_STOP_BYTES) {
            st_api_err(req, "stop", "length", "",
                       "each stop string must be 1..%d bytes",
                       ST_API_MAX_STOP_BYTES);
            return -1;
        }

        req->stop[req->n_stop] = st_api_strdup(req, s, len, nomem);
        if (req->stop[req->n_stop] == NULL) {
            return -1;
        }
        req->n_stop++;
    }

    return 1;
}


static int
st_api_logit_bias(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val     v = st_api_opt(obj, "logit_bias");
    yajl_val     b;
    size_t       i, n;
    const char  *key;
    char        *end, vb[96];
    long         id;

    if (v == NULL) {
        return 0;
    }

    if (v->type != yajl_t_object) {
        st_api_type_err(req, "logit_bias", v, "an object");
        return -1;
    }

    n = v->u.object.len;
    if (n > ST_API_MAX_BIAS) {
        st_api_err(req, "logit_bias", "max_items", "",
                   "logit_bias takes at most %d entries", ST_API_MAX_BIAS);
        return -1;
    }

    req->logit_bias = calloc(n ? n : 1, sizeof(st_logit_bias));
    if (req->logit_bias == NULL) {
        *nomem = 1;
        return -1;
    }

    for (i = 0; i < n; i++) {
        key = v->u.object.keys[i];
        b = v->u.object.values[i];

        errno = 0;
        id = strtol(key, &end, 10);
        if (key[0] == '\0' || *end != '\0' || errno != 0 || id < 0
            || id > INT32_MAX)
        {
            st_api_err(req, "logit_bias", "type", "",
                       "logit_bias keys must be token ids");
            return -1;
        }

        if (b->type != yajl_t_number
            || !(b->u.number.flags & YAJL_NUMBER_DOUBLE_VALID)
            || !isfinite(b->u.number.d)
            || b->u.number.d < -100 || b->u.number.d > 100)
        {
            st_api_err(req, "logit_bias", "range",
                       st_api_val_json(b, vb, sizeof(vb)),
                       "logit_bias values must be numbers in -100..100");
            return -1;
        }

        req->logit_bias[i].token = (int32_t) id;
        /* OpenAI: -100 bans the token, 100 forces it */
        req->logit_bias[i].bias = (b->u.number.d <= -100)
                                  ? -INFINITY : (float) b->u.number.d;
    }

    req->n_logit_bias = n;
    req->sampling.logit_bias = req->logit_bias;
    req->sampling.n_logit_bias = n;
    return 1;
}


/* Fields shared by every generating surface. */
static void
st_api_sampling(st_api_request *req, yajl_val obj, const st_api_limits *lim,
    int *nomem)
{
    double      d;
    long long   ll;
    uint64_t    seed;
    yajl_val    so;

    if (st_api_double(req, obj, "temperature", 0, 2, &d) > 0) {
        req->sampling.temperature = (float) d;
    }
    if (st_api_double(req, obj, "top_p", 0, 1, &d) > 0) {
        req->sampling.top_p = (float) d;
    }
    if (st_api_int(req, obj, "top_k", 0, 1000000, &ll) > 0) {
        req->sampling.top_k = (int32_t) ll;
    }
    if (st_api_double(req, obj, "min_p", 0, 1, &d) > 0) {
        req->sampling.min_p = (float) d;
    }
    if (st_api_double(req, obj, "repeat_penalty", 0.01, 10, &d) > 0) {
        req->sampling.repeat_penalty = (float) d;
    }
    if (st_api_int(req, obj, "repeat_last_n", 0, 1 << 20, &ll) > 0) {
        req->sampling.repeat_last_n = (int32_t) ll;
    }
    if (st_api_double(req, obj, "presence_penalty", -2, 2, &d) > 0) {
        req->sampling.presence_penalty = (float) d;
    }
    if (st_api_double(req, obj, "frequency_penalty", -2, 2, &d) > 0) {
        req->sampling.frequency_penalty = (float) d;
    }
    if (st_api_seed(req, obj, "seed", &seed) > 0) {
        req->sampling.seed = seed;
    }

    if (st_api_int(req, obj, "max_tokens", 1, lim->max_tokens_limit, &ll)
        > 0)
    {
        req->max_tokens = (uint32_t) ll;
    }
    if (req->kind == ST_API_CHAT
        && st_api_int(req, obj, "max_completion_tokens", 1,
                      lim->max_tokens_limit, &ll) > 0)
    {
        req->max_tokens = (uint32_t) ll;
    }

    if (req->kind == ST_API_EXECUTE) {
        if (st_api_int(req, obj, "n", 1, 1, &ll) < 0) {
            /* message says "between 1 and 1"; make it clearer */
            snprintf(req->errors[req->n_errors - 1].message,
                     sizeof(req->errors[0].message),
                     "the worker API generates one sequence (n=1)");
        }
    } else if (st_api_int(req, obj, "n", 1, ST_API_MAX_CHOICES, &ll) > 0) {
        req->n = (uint32_t) ll;
    }

    (void) st_api_bool(req, obj, "ignore_eos", &req->ignore_eos);
    (void) st_api_bool(req, obj, "stream", &req->stream);

    so = st_api_opt(obj, "stream_options");
    if (so != NULL) {
        if (so->type != yajl_t_object) {
            st_api_type_err(req, "stream_options", so, "an object");
        } else {
            (void) st_api_bool(req, so, "include_usage",
                               &req->include_usage);
        }
    }

    (void) st_api_stop(req, obj, nomem);
    (void) st_api_logit_bias(req, obj, nomem);
    st_api_constraint(req, obj, nomem);
}


static int
st_api_prompt_ids(st_api_request *req, yajl_val arr, int *nomem)
{
    size_t    i, n = arr->u.array.len;
    yajl_val  t;

    req->prompt_ids = calloc(n ? n : 1, sizeof(int32_t));
    if (req->prompt_ids == NULL) {
        *nomem = 1;
        return -1;
    }

    for (i = 0; i < n; i++) {
        t = arr->u.array.values[i];
        if (t->type != yajl_t_number
            || !(t->u.number.flags & YAJL_NUMBER_INT_VALID)
            || t->u.number.i < 0 || t->u.number.i > INT32_MAX)
        {
            st_api_err(req, "prompt", "type", "",
                       "prompt token arrays must hold token ids (integers "
                       ">= 0)");
            return -1;
        }
        req->prompt_ids[i] = (int32_t) t->u.number.i;
    }

    req->n_prompt_ids = n;
    return 1;
}


/* "prompt": ["a", "b", ...] or [[1, 2], [3, 4], ...]: one choice per
 * prompt (times n), all submitted together */
static void
st_api_prompt_batch(st_api_request *req, yajl_val p, int *nomem)
{
    size_t          i, j, n = p->u.array.len;
    yajl_val        item, t;
    st_api_prompt  *bp;
    char            field[64];

    if (n > ST_API_MAX_CHOICES) {
        st_api_err(req, "prompt", "max_items", "",
                   "prompt takes at most %d prompts", ST_API_MAX_CHOICES);
        return;
    }

    req->batch = calloc(n, sizeof(st_api_prompt));
    if (req->batch == NULL) {
        *nomem = 1;
        return;
    }

    for (i = 0; i < n; i++) {
        item = p->u.array.values[i];
        bp = &req->batch[i];
        snprintf(field, sizeof(field), "prompt[%zu]", i);

        if (item->type == yajl_t_string) {
            bp->len = strlen(item->u.string);
            bp->text = st_api_strdup(req, item->u.string, bp->len, nomem);
            if (bp->text == NULL) {
                return;
            }
            req->n_batch++;
            continue;
        }

        if (item->type != yajl_t_array || item->u.array.len == 0) {
            st_api_err(req, field, "type", "",
                       "%s must be a string or a non-empty array of token "
                       "ids", field);
            return;
        }

        bp->ids = calloc(item->u.array.len, sizeof(int32_t));
        if (bp->ids == NULL) {
            *nomem = 1;
            return;
        }
        req->n_batch++;

        for (j = 0; j < item->u.array.len; j++) {
            t = item->u.array.values[j];
            if (t->type != yajl_t_number
                || !(t->u.number.flags & YAJL_NUMBER_INT_VALID)
                || t->u.number.i < 0 || t->u.number.i > INT32_MAX)
            {
                st_api_err(req, field, "type", "",
                           "%s must hold token ids (integers >= 0)", field);
                return;
            }
            bp->ids[j] = (int32_t) t->u.number.i;
        }
        bp->n_ids = item->u.array.len;
    }
}


static void
st_api_completions(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val     p;
    long long    ll;
    int          echo = 0;
    const char  *s;

    p = st_api_opt(obj, "prompt");

    /* OpenAI accepts a string, [string], [int...] or [[int...]], and
     * batches of several strings or token arrays */
    if (p != NULL && p->type == yajl_t_array && p->u.array.len == 1
        && (p->u.array.values[0]->type == yajl_t_string
            || p->u.array.values[0]->type == yajl_t_array))
    {
        p = p->u.array.values[0];
    }

    if (p != NULL && p->type == yajl_t_array && p->u.array.len > 1
        && p->u.array.values[0]->type != yajl_t_number)
    {
        st_api_prompt_batch(req, p, nomem);
        p = NULL;

    } else if (p == NULL) {
        st_api_err(req, "prompt", "required", "", "prompt is required");

    } else if (p->type == yajl_t_string) {
        s = p->u.string;
        req->prompt_len = strlen(s);
        req->prompt = st_api_strdup(req, s, req->prompt_len, nomem);

    } else if (p->type == yajl_t_array) {
        if (p->u.array.len == 0) {
            st_api_err(req, "prompt", "length", "", "prompt is empty");
        } else {
            (void) st_api_prompt_ids(req, p, nomem);
        }

    } else {
        st_api_type_err(req, "prompt", p, "a string or an array of token "
                        "ids");
    }

    if (st_api_int(req, obj, "logprobs", 0, ST_MAX_TOP_LOGPROBS, &ll) > 0) {
        req->logprobs = 1;
        req->top_logprobs = (int) ll;
        req->sampling.n_probs = ll > 0 ? (int32_t) ll : 1;
    }

    if (st_api_bool(req, obj, "echo", &echo) > 0 && echo) {
        req->echo = 1;          /* with logprobs: the prompt's too */
    }

    /* best_of = n is n choices; ranking best_of > n candidates by their
     * logprob is not offered */
    if (st_api_int(req, obj, "best_of", 1, ST_API_MAX_CHOICES, &ll) > 0
        && (uint32_t) ll != req->n)
    {
        st_api_err(req, "best_of", "unsupported", "",
                   (uint32_t) ll < req->n
                   ? "best_of must be >= n"
                   : "best_of > n is not supported (best_of must equal n)");
    }

    if (req->n * (req->n_batch ? req->n_batch : 1)
        > ST_API_MAX_CHOICES)
    {
        st_api_err(req, "n", "range", "",
                   "n times the number of prompts must be at most %d",
                   ST_API_MAX_CHOICES);
    }

    p = st_api_opt(obj, "suffix");
    if (p != NULL && !(p->type == yajl_t_string && p->u.string[0] == '\0')) {
        st_api_err(req, "suffix", "unsupported", "",
                   "suffix is not supported");
    }

    if (req->max_tokens == 0) {
        req->max_tokens = 16;           /* OpenAI's default */
    }
}


static int
st_api_role_ok(const char *role)
{
    static const char  *roles[] = {
        "system", "developer", "user", "assistant", "tool", NULL
    };
    size_t  i;

    for (i = 0; roles[i] != NULL; i++) {
        if (strcmp(role, roles[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


/* yajl accepts UTF-8 that encodes surrogates (ED A0 80..); the prompt
 * checks do not: message content gets the same strict check, so a chat
 * request cannot carry what a completion request may not. */
static void
st_api_content_utf8(st_api_request *req, const char *field,
    const st_api_message *msg)
{
    if (!st_api_utf8_valid(msg->content, msg->content_len)) {
        st_api_err(req, field, "utf8", "", "%s is not valid UTF-8", field);
    }
}


static void
st_api_chat(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val        msgs, m, role, content, part, type, text;
    st_api_message *out;
    st_jbuf         jb;
    size_t          i, j;
    long long       ll;
    char            field[64];

    msgs = st_api_opt(obj, "messages");

    if (msgs == NULL) {
        st_api_err(req, "messages", "required", "", "messages is required");
        goto sampling;
    }

    if (msgs->type != yajl_t_array) {
        st_api_type_err(req, "messages", msgs, "an array");
        goto sampling;
    }

    if (msgs->u.array.len == 0) {
        st_api_err(req, "messages", "min_items", "",
                   "messages must not be empty");
        goto sampling;
    }

    req->messages = calloc(msgs->u.array.len, sizeof(st_api_message));
    if (req->messages == NULL) {
        *nomem = 1;
        return;
    }

    for (i = 0; i < msgs->u.array.len; i++) {
        m = msgs->u.array.values[i];

        if (m->type != yajl_t_object) {
            snprintf(field, sizeof(field), "messages[%zu]", i);
            st_api_type_err(req, field, m, "an object");
            continue;
        }

        role = st_api_opt(m, "role");
        if (role == NULL || role->type != yajl_t_string
            || !st_api_role_ok(role->u.string))
        {
            snprintf(field, sizeof(field), "messages[%zu].role", i);
            st_api_err(req, field, "enum", "",
                       "%s must be one of system, developer, user, "
                       "assistant, tool", field);
            continue;
        }

        out = &req->messages[req->n_messages];
        out->role = st_api_strdup(req, role->u.string,
                                  strlen(role->u.string), nomem);
        if (out->role == NULL) {
            return;
        }
        req->n_messages++;

        st_api_tools_message(req, m, out, i, nomem);
        if (*nomem) {
            return;
        }

        content = st_api_opt(m, "content");
        snprintf(field, sizeof(field), "messages[%zu].content", i);

        if (content == NULL) {
            if (strcmp(role->u.string, "assistant") != 0) {
                st_api_err(req, field, "required", "",
                           "%s is required", field);
            }
            out->content = st_api_strdup(req, "", 0, nomem);
            if (out->content == NULL) {
                return;
            }
            continue;
        }

        if (content->type == yajl_t_string) {
            out->content_len = strlen(content->u.string);
            out->content = st_api_strdup(req, content->u.string,
                                         out->content_len, nomem);
            if (out->content == NULL) {
                return;
            }
            st_api_content_utf8(req, field, out);
            continue;
        }

        if (content->type != yajl_t_array) {
            st_api_type_err(req, field, content, "a string or an array of "
                            "content parts");
            continue;
        }

        /* content parts: only text parts are supported; joined */
        st_jbuf_init(&jb);
        for (j = 0; j < content->u.array.len; j++) {
            part = content->u.array.values[j];
            type = (part->type == yajl_t_object) ? st_api_opt(part, "type")
                                                 : NULL;
            text = (part->type == yajl_t_object) ? st_api_opt(part, "text")
                                                 : NULL;
            if (type == NULL || type->type != yajl_t_string
                || strcmp(type->u.string, "text") != 0
                || text == NULL || text->type != yajl_t_string)
            {
                st_api_err(req, field, "unsupported", "",
                           "%s: only text content parts are supported",
                           field);
                break;
            }
            st_jbuf_adds(&jb, text->u.string);
        }

        if (jb.failed) {
            st_jbuf_free(&jb);
            *nomem = 1;
            return;
        }

        out->content = jb.data ? jb.data : st_api_strdup(req, "", 0, nomem);
        out->content_len = jb.len;
        if (out->content == NULL) {
            return;
        }
        st_api_content_utf8(req, field, out);
    }

sampling:

    st_api_tools_fields(req, obj, nomem);

    {
        int  lp = 0;

        if (st_api_bool(req, obj, "logprobs", &lp) > 0) {
            req->logprobs = lp;
        }
    }

    if (st_api_int(req, obj, "top_logprobs", 0, ST_MAX_TOP_LOGPROBS, &ll)
        > 0)
    {
        if (!req->logprobs) {
            st_api_err(req, "top_logprobs", "dependency", "",
                       "top_logprobs requires logprobs to be true");
        }
        req->top_logprobs = (int) ll;
    }

    if (req->logprobs) {
        req->sampling.n_probs = req->top_logprobs > 0 ? req->top_logprobs
                                                      : 1;
    }
}


static void
st_api_execute(st_api_request *req, yajl_val obj, const st_api_limits *lim,
    int *nomem)
{
    yajl_val     v;
    size_t       n;
    const char  *s;

    v = st_api_get(obj, "job_id");
    if (v == NULL || v->type == yajl_t_null) {
        st_api_err(req, "job_id", "required", "", "job_id is required");
    } else if (v->type != yajl_t_string) {
        st_api_type_err(req, "job_id", v, "a string");
    } else {
        s = v->u.string;
        n = strlen(s);
        if (n == 0 || n > ST_API_MAX_JOB_ID) {
            st_api_err(req, "job_id", "length", "",
                       "job_id must be 1..%d characters", ST_API_MAX_JOB_ID);
        } else {
            req->job_id = st_api_strdup(req, s, n, nomem);
        }
    }

    v = st_api_get(obj, "prompt");
    if (v == NULL || v->type == yajl_t_null) {
        st_api_err(req, "prompt", "required", "", "prompt is required");
    } else if (v->type != yajl_t_string) {
        st_api_type_err(req, "prompt", v, "a string");
    } else {
        s = v->u.string;
        n = strlen(s);
        /* never echo the prompt: report its length only */
        if (n == 0) {
            st_api_err(req, "prompt", "length", "0",
                       "prompt must not be empty");
        } else if (st_api_utf8_chars(s, n) > lim->max_prompt_chars) {
            char  vb[32];

            snprintf(vb, sizeof(vb), "%zu", st_api_utf8_chars(s, n));
            st_api_err(req, "prompt", "length", vb,
                       "prompt must be at most %u characters (value is "
                       "its length)", lim->max_prompt_chars);
        } else {
            req->prompt_len = n;
            req->prompt = st_api_strdup(req, s, n, nomem);
        }
    }

    if (req->max_tokens == 0) {
        req->max_tokens = lim->max_tokens_limit < 256
                          ? lim->max_tokens_limit : 256;
    }
}


static void
st_api_tokenize(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val  v;

    v = st_api_opt(obj, "content");
    if (v == NULL) {
        v = st_api_opt(obj, "prompt");
    }

    if (v == NULL) {
        st_api_err(req, "content", "required", "", "content is required");
    } else if (v->type != yajl_t_string) {
        st_api_type_err(req, "content", v, "a string");
    } else {
        req->prompt_len = strlen(v->u.string);
        req->prompt = st_api_strdup(req, v->u.string, req->prompt_len,
                                    nomem);
    }

    req->add_special = 1;
    (void) st_api_bool(req, obj, "add_special", &req->add_special);
    (void) st_api_bool(req, obj, "with_pieces", &req->with_pieces);
}


static void
st_api_detokenize(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val  v = st_api_opt(obj, "tokens");

    if (v == NULL) {
        st_api_err(req, "tokens", "required", "", "tokens is required");
    } else if (v->type != yajl_t_array) {
        st_api_type_err(req, "tokens", v, "an array of token ids");
    } else if (st_api_prompt_ids(req, v, nomem) < 0 && !*nomem) {
        snprintf(req->errors[req->n_errors - 1].field,
                 sizeof(req->errors[0].field), "tokens");
    }
}


static void
st_api_cancel(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val  v = st_api_get(obj, "job_id");

    if (v == NULL || v->type == yajl_t_null) {
        st_api_err(req, "job_id", "required", "", "job_id is required");
    } else if (v->type != yajl_t_string || v->u.string[0] == '\0') {
        st_api_type_err(req, "job_id", v, "a non-empty string");
    } else {
        req->job_id = st_api_strdup(req, v->u.string, strlen(v->u.string),
                                    nomem);
    }
}


/*
 * Cheap scan before yajl: bounds nesting (yajl_tree_free recurses, so a
 * 1 MB "[[[[..." body would otherwise exhaust the stack) and rejects
 * \u0000, which yajl_tree's NUL-terminated strings would silently cut.
 */
static int
st_api_prescan(st_api_request *req, const char *body, size_t len)
{
    size_t  i, depth = 0;
    int     in_str = 0;

    for (i = 0; i < len; i++) {
        if (in_str) {
            if (body[i] == '\\') {
                if (i + 5 < len && memcmp(body + i + 1, "u0000", 5) == 0) {
                    st_api_err(req, "body", "nul", "",
                               "strings must not contain NUL characters");
                    return -1;
                }
                i++;
            } else if (body[i] == '"') {
                in_str = 0;
            }
            continue;
        }

        switch (body[i]) {
        case '"':
            in_str = 1;
            break;
        case '{':
        case '[':
            if (++depth > ST_API_MAX_DEPTH) {
                st_api_err(req, "body", "depth", "",
                           "JSON nesting deeper than %d levels",
                           ST_API_MAX_DEPTH);
                return -1;
            }
            break;
        case '}':
        case ']':
            if (depth) {
                depth--;
            }
            break;
        case '\0':
            st_api_err(req, "body", "json", "",
                       "request body contains a NUL byte");
            return -1;
        default:
            break;
        }
    }

    return 0;
}


st_api_request *
st_api_parse(st_api_kind kind, const char *body, size_t len,
    const st_api_limits *lim)
{
    st_api_request  *req;
    yajl_val         root, v;
    char            *text, ebuf[256], *nl;
    int              nomem = 0;

    req = calloc(1, sizeof(st_api_request));
    if (req == NULL) {
        return NULL;
    }

    req->kind = kind;
    req->n = 1;
    st_sampling_defaults(&req->sampling);

    if (len == 0) {
        st_api_err(req, "body", "required", "", "request body is empty");
        return req;
    }

    if (st_api_prescan(req, body, len) != 0) {
        return req;
    }

    text = malloc(len + 1);
    if (text == NULL) {
        free(req);
        return NULL;
    }
    memcpy(text, body, len);
    text[len] = '\0';

    ebuf[0] = '\0';
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);

    if (root == NULL) {
        /* yajl's message continues with an excerpt of the input: keep
         * only its first line so that no prompt text is echoed */
        nl = strchr(ebuf, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        if (strstr(ebuf, "UTF8") != NULL) {
            st_api_err(req, "body", "utf8", "",
                       "request body is not valid UTF-8");
        } else {
            st_api_err(req, "body", "json", "",
                       "request body is not valid JSON (%s)",
                       ebuf[0] ? ebuf : "parse error");
        }
        return req;
    }

    if (root->type != yajl_t_object) {
        st_api_err(req, "body", "type", "",
                   "request body must be a JSON object");
        yajl_tree_free(root);
        return req;
    }

    v = st_api_opt(root, "model");
    if (v != NULL) {
        if (v->type != yajl_t_string) {
            st_api_type_err(req, "model", v, "a string");
        } else {
            req->model = st_api_strdup(req, v->u.string,
                                       strlen(v->u.string), &nomem);
        }
    }

    switch (kind) {
    case ST_API_COMPLETIONS:
        st_api_sampling(req, root, lim, &nomem);
        st_api_completions(req, root, &nomem);
        break;
    case ST_API_CHAT:
        st_api_sampling(req, root, lim, &nomem);
        st_api_chat(req, root, &nomem);
        break;
    case ST_API_EXECUTE:
        st_api_execute(req, root, lim, &nomem);
        st_api_sampling(req, root, lim, &nomem);
        if (st_api_opt(root, "max_tokens") == NULL && req->max_tokens == 0) {
            req->max_tokens = 256;
        }
        break;
    case ST_API_TOKENIZE:
        st_api_tokenize(req, root, &nomem);
        break;
    case ST_API_DETOKENIZE:
        st_api_detokenize(req, root, &nomem);
        break;
    case ST_API_CANCEL:
        st_api_cancel(req, root, &nomem);
        break;
    case ST_API_RESPONSES:
        st_api_responses_fields(req, root, lim, &nomem);
        break;
    case ST_API_EMBEDDINGS:
        st_api_embeddings_fields(req, root, &nomem);
        break;
    case ST_API_SESSION_CLOSE:
        break;
    }
    if (kind == ST_API_COMPLETIONS || kind == ST_API_CHAT
        || kind == ST_API_EXECUTE || kind == ST_API_SESSION_CLOSE)
    {
        st_api_session_field(req, root, kind == ST_API_SESSION_CLOSE,
                             &nomem);
    }

    yajl_tree_free(root);

    if (nomem) {
        st_api_request_free(req);
        return NULL;
    }

    return req;
}


void
st_api_request_free(st_api_request *req)
{
    size_t  i;

    if (req == NULL) {
        return;
    }

    free(req->model);
    free(req->job_id);
    free(req->session_id);
    free(req->prompt);
    free(req->prompt_ids);

    for (i = 0; i < req->n_batch; i++) {
        free(req->batch[i].text);
        free(req->batch[i].ids);
    }
    free(req->batch);

    for (i = 0; i < req->n_inputs; i++) {
        free(req->inputs[i].text);
        free(req->inputs[i].ids);
    }
    free(req->inputs);

    for (i = 0; i < req->n_messages; i++) {
        free(req->messages[i].role);
        free(req->messages[i].content);
        free(req->messages[i].tool_call_id);
        st_api_tool_calls_free(req->messages[i].tool_calls,
                               req->messages[i].n_tool_calls);
    }
    free(req->messages);

    for (i = 0; i < req->n_tools; i++) {
        free(req->tools[i].name);
        free(req->tools[i].json);
        free(req->tools[i].parameters);
    }
    free(req->tools);
    free(req->tool_choice_name);
    free(req->instructions);
    free(req->text_format);

    for (i = 0; i < req->n_stop; i++) {
        free(req->stop[i]);
    }
    free(req->stop);
    free(req->logit_bias);
    st_constraint_free(req->constraint);
    free(req);
}
