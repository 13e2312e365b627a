/*
 * POST /v1/embeddings: the request's fields (input in its four OpenAI
 * shapes, encoding_format, dimensions, the normalize extension) and the
 * response object, with vectors as JSON numbers or as base64 of their
 * little-endian float32 bytes (what OpenAI's clients decode).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "st_api_field.h"


/* one input that is an array of token ids; field names it in errors */
static int
st_api_embed_ids(st_api_request *req, yajl_val arr, const char *field,
    st_api_prompt *out, int *nomem)
{
    size_t    i, n = arr->u.array.len;
    yajl_val  t;

    if (n == 0) {
        st_api_err(req, field, "length", "", "%s is empty", field);
        return -1;
    }
    out->ids = calloc(n, sizeof(int32_t));
    if (out->ids == NULL) {
        *nomem = 1;
        return -1;
    }
    for (i = 0; i < n; i++) {
        t = arr->u.array.values[i];
        if (t->type != yajl_t_number
            || !(t->u.number.flags & YAJL_NUMBER_INT_VALID)
            || t->u.number.i < 0 || t->u.number.i > INT32_MAX)
        {
            st_api_err(req, field, "type", "",
                       "%s must hold token ids (integers >= 0)", field);
            return -1;
        }
        out->ids[i] = (int32_t) t->u.number.i;
    }
    out->n_ids = n;
    return 0;
}


static int
st_api_embed_text(st_api_request *req, yajl_val s, const char *field,
    st_api_prompt *out, int *nomem)
{
    out->len = strlen(s->u.string);
    if (out->len == 0) {
        st_api_err(req, field, "length", "", "%s is empty", field);
        return -1;
    }
    out->text = st_api_strdup(req, s->u.string, out->len, nomem);
    return out->text != NULL ? 0 : -1;
}


static void
st_api_embed_input(st_api_request *req, yajl_val v, int *nomem)
{
    size_t         i, n;
    yajl_val       item;
    char           field[64];

    if (v == NULL) {
        st_api_err(req, "input", "required", "", "input is required");
        return;
    }
    if (v->type == yajl_t_string) {
        n = 1;
    } else if (v->type == yajl_t_array) {
        n = v->u.array.len;
        if (n == 0) {
            st_api_err(req, "input", "length", "", "input is empty");
            return;
        }
        /* [int, ...] is one input of token ids */
        if (v->u.array.values[0]->type == yajl_t_number) {
            n = 1;
        } else if (n > ST_API_MAX_EMBED_INPUTS) {
            st_api_err(req, "input", "max_items", "",
                       "input takes at most %d items",
                       ST_API_MAX_EMBED_INPUTS);
            return;
        }
    } else {
        st_api_type_err(req, "input", v, "a string, an array of strings, "
                        "an array of token ids or an array of such arrays");
        return;
    }

    req->inputs = calloc(n, sizeof(st_api_prompt));
    if (req->inputs == NULL) {
        *nomem = 1;
        return;
    }
    if (v->type == yajl_t_string) {
        if (st_api_embed_text(req, v, "input", &req->inputs[0], nomem) == 0) {
            req->n_inputs = 1;
        }
        return;
    }
    if (v->u.array.values[0]->type == yajl_t_number) {
        req->n_inputs = 1;
        (void) st_api_embed_ids(req, v, "input", &req->inputs[0], nomem);
        return;
    }
    for (i = 0; i < n; i++) {
        item = v->u.array.values[i];
        snprintf(field, sizeof(field), "input[%zu]", i);
        req->n_inputs++;         /* freed by st_api_request_free */
        if (item->type == yajl_t_string) {
            if (st_api_embed_text(req, item, field, &req->inputs[i], nomem)) {
                return;
            }
        } else if (item->type == yajl_t_array) {
            if (st_api_embed_ids(req, item, field, &req->inputs[i], nomem)) {
                return;
            }
        } else {
            st_api_type_err(req, field, item, "a string or an array of "
                            "token ids");
            return;
        }
    }
}


void
st_api_embeddings_fields(st_api_request *req, yajl_val root, int *nomem)
{
    yajl_val   v;
    long long  ll;
    int        b;

    st_api_embed_input(req, st_api_opt(root, "input"), nomem);

    req->normalize = 1;
    v = st_api_opt(root, "encoding_format");
    if (v != NULL) {
        if (v->type != yajl_t_string) {
            st_api_type_err(req, "encoding_format", v, "a string");
        } else if (strcmp(v->u.string, "base64") == 0) {
            req->encoding_base64 = 1;
        } else if (strcmp(v->u.string, "float") != 0) {
            st_api_err(req, "encoding_format", "enum", "",
                       "encoding_format must be \"float\" or \"base64\"");
        }
    }
    if (st_api_int(req, root, "dimensions", 1, INT32_MAX, &ll) > 0) {
        req->dimensions = (uint32_t) ll;
    }
    if (st_api_bool(req, root, "normalize", &b) > 0) {
        req->normalize = b;
    }
    v = st_api_opt(root, "user");
    if (v != NULL && v->type != yajl_t_string) {
        st_api_type_err(req, "user", v, "a string");
    }
}


static const char st_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


/* base64 of v's little-endian float32 bytes, whatever the host order */
static void
st_api_embed_base64(st_jbuf *b, const float *v, uint32_t n)
{
    unsigned char  in[3], ch;
    char           out[4];
    size_t         total = (size_t) n * 4, i, k;
    uint32_t       u = 0;
    int            j;

    st_jbuf_add(b, "\"", 1);
    for (i = 0; i < total; i += 3) {
        for (j = 0; j < 3; j++) {
            k = i + (size_t) j;
            if (k >= total) {
                in[j] = 0;
                continue;
            }
            if (k % 4 == 0) {
                memcpy(&u, &v[k / 4], 4);
            }
            ch = (unsigned char) (u >> (8 * (k % 4)));
            in[j] = ch;
        }
        out[0] = st_b64[in[0] >> 2];
        out[1] = st_b64[((in[0] & 3) << 4) | (in[1] >> 4)];
        out[2] = i + 1 < total ? st_b64[((in[1] & 15) << 2) | (in[2] >> 6)]
                               : '=';
        out[3] = i + 2 < total ? st_b64[in[2] & 63] : '=';
        st_jbuf_add(b, out, 4);
    }
    st_jbuf_add(b, "\"", 1);
}


void
st_api_embeddings_write(st_jbuf *b, const char *model,
    const float *const *vecs, size_t n, uint32_t n_embd, int base64,
    uint64_t prompt_tokens)
{
    size_t    i;
    uint32_t  d;

    st_jbuf_adds(b, "{\"object\":\"list\",\"data\":[");
    for (i = 0; i < n; i++) {
        st_jbuf_addf(b, "%s{\"object\":\"embedding\",\"index\":%zu,"
                     "\"embedding\":", i ? "," : "", i);
        if (base64) {
            st_api_embed_base64(b, vecs[i], n_embd);
        } else {
            st_jbuf_add(b, "[", 1);
            for (d = 0; d < n_embd; d++) {
                /* 9 significant digits: the float32 round-trips, so the
                 * two encodings carry the same vector */
                st_jbuf_addf(b, d ? ",%.9g" : "%.9g", (double) vecs[i][d]);
            }
            st_jbuf_add(b, "]", 1);
        }
        st_jbuf_add(b, "}", 1);
    }
    st_jbuf_adds(b, "],\"model\":");
    st_jbuf_add_jstr(b, model, strlen(model));
    st_jbuf_addf(b, ",\"usage\":{\"prompt_tokens\":%llu,"
                 "\"total_tokens\":%llu}}\n",
                 (unsigned long long) prompt_tokens,
                 (unsigned long long) prompt_tokens);
}
