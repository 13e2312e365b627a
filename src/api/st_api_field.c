/*
 * Typed readers of request JSON fields (yajl tree), shared by the
 * request parsers in st_api_req.c: each one checks a field's type and
 * range and reports a problem through st_api_err() in the worker API's
 * error shape (field, constraint, value, message).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "st_api_field.h"


void
st_api_err(st_api_request *req, const char *field, const char *constraint,
    const char *value, const char *fmt, ...)
{
    st_api_error  *e;
    va_list        ap;

    if (req->n_errors == ST_API_MAX_ERRORS) {
        req->n_errors_dropped++;
        return;
    }

    e = &req->errors[req->n_errors++];
    snprintf(e->field, sizeof(e->field), "%s", field);
    snprintf(e->constraint, sizeof(e->constraint), "%s", constraint);
    snprintf(e->value, sizeof(e->value), "%s", value ? value : "");

    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}


/* JSON text of a scalar value for error reports ("" for containers and
 * for strings, which may be user text: only their length is shown). */
const char *
st_api_val_json(yajl_val v, char *buf, size_t size)
{
    buf[0] = '\0';

    if (v == NULL) {
        return buf;
    }

    switch (v->type) {
    case yajl_t_number:
        snprintf(buf, size, "%.*s", (int) (size - 1), v->u.number.r);
        break;
    case yajl_t_true:
        snprintf(buf, size, "true");
        break;
    case yajl_t_false:
        snprintf(buf, size, "false");
        break;
    case yajl_t_null:
        snprintf(buf, size, "null");
        break;
    default:
        break;
    }

    return buf;
}


static const char *
st_api_type_name(yajl_val v)
{
    switch (v->type) {
    case yajl_t_string: return "string";
    case yajl_t_number: return "number";
    case yajl_t_object: return "object";
    case yajl_t_array:  return "array";
    case yajl_t_true:
    case yajl_t_false:  return "boolean";
    default:            return "null";
    }
}


yajl_val
st_api_get(yajl_val obj, const char *key)
{
    size_t  i;

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


/* NULL when absent or null */
yajl_val
st_api_opt(yajl_val obj, const char *key)
{
    yajl_val  v = st_api_get(obj, key);

    return (v == NULL || v->type == yajl_t_null) ? NULL : v;
}


void
st_api_type_err(st_api_request *req, const char *field, yajl_val v,
    const char *want)
{
    char  vb[96];

    st_api_err(req, field, "type", st_api_val_json(v, vb, sizeof(vb)),
               "%s must be %s, got %s", field, want, st_api_type_name(v));
}


int
st_api_bool(st_api_request *req, yajl_val obj, const char *key, int *out)
{
    yajl_val  v = st_api_opt(obj, key);

    if (v == NULL) {
        return 0;
    }

    if (v->type != yajl_t_true && v->type != yajl_t_false) {
        st_api_type_err(req, key, v, "a boolean");
        return -1;
    }

    *out = (v->type == yajl_t_true);
    return 1;
}


int
st_api_double(st_api_request *req, yajl_val obj, const char *key,
    double min, double max, double *out)
{
    yajl_val  v = st_api_opt(obj, key);
    char      vb[96];

    if (v == NULL) {
        return 0;
    }

    if (v->type != yajl_t_number) {
        st_api_type_err(req, key, v, "a number");
        return -1;
    }

    if (!(v->u.number.flags & YAJL_NUMBER_DOUBLE_VALID)
        || !isfinite(v->u.number.d))
    {
        st_api_err(req, key, "range", st_api_val_json(v, vb, sizeof(vb)),
                   "%s must be a finite number", key);
        return -1;
    }

    if (v->u.number.d < min || v->u.number.d > max) {
        st_api_err(req, key, "range", st_api_val_json(v, vb, sizeof(vb)),
                   "%s must be between %g and %g", key, min, max);
        return -1;
    }

    *out = v->u.number.d;
    return 1;
}


int
st_api_int(st_api_request *req, yajl_val obj, const char *key,
    long long min, long long max, long long *out)
{
    yajl_val  v = st_api_opt(obj, key);
    char      vb[96];

    if (v == NULL) {
        return 0;
    }

    if (v->type != yajl_t_number) {
        st_api_type_err(req, key, v, "an integer");
        return -1;
    }

    if (!(v->u.number.flags & YAJL_NUMBER_INT_VALID)) {
        st_api_err(req, key, "type", st_api_val_json(v, vb, sizeof(vb)),
                   "%s must be an integer", key);
        return -1;
    }

    if (v->u.number.i < min || v->u.number.i > max) {
        st_api_err(req, key, "range", st_api_val_json(v, vb, sizeof(vb)),
                   "%s must be between %lld and %lld", key, min, max);
        return -1;
    }

    *out = v->u.number.i;
    return 1;
}


int
st_api_seed(st_api_request *req, yajl_val obj, const char *key,
    uint64_t *out)
{
    yajl_val             v = st_api_opt(obj, key);
    const char          *s;
    char                 vb[96], *end;
    unsigned long long   u;

    if (v == NULL) {
        return 0;
    }

    if (v->type != yajl_t_number) {
        st_api_type_err(req, key, v, "an integer");
        return -1;
    }

    s = v->u.number.r;

    if (s[0] == '-') {
        /* OpenAI's seed is a signed 64-bit integer; the worker API's an
         * unsigned one */
        if (req->kind == ST_API_EXECUTE
            || !(v->u.number.flags & YAJL_NUMBER_INT_VALID))
        {
            goto bad;
        }
        *out = (uint64_t) v->u.number.i;
        return 1;
    }

    if (!isdigit((unsigned char) s[0]) || strpbrk(s, ".eE") != NULL) {
        goto bad;
    }

    errno = 0;
    u = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        goto bad;
    }

    *out = (uint64_t) u;
    return 1;

bad:

    st_api_err(req, key, "range", st_api_val_json(v, vb, sizeof(vb)),
               "%s must be an integer that fits in 64 bits", key);
    return -1;
}


char *
st_api_strdup(st_api_request *req, const char *s, size_t len, int *nomem)
{
    char  *p;

    (void) req;

    p = malloc(len + 1);
    if (p == NULL) {
        *nomem = 1;
        return NULL;
    }

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
