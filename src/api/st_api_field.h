/*
 * Request JSON field readers (st_api_field.c), shared by the request
 * parsers (st_api_req.c). Internal to the API layer: not part of st_api.h.
 */
#ifndef ST_API_FIELD_H
#define ST_API_FIELD_H

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"


/* records one validation problem (up to ST_API_MAX_ERRORS) */
void st_api_err(st_api_request *req, const char *field,
    const char *constraint, const char *value, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
const char *st_api_val_json(yajl_val v, char *buf, size_t size);
yajl_val st_api_get(yajl_val obj, const char *key);
yajl_val st_api_opt(yajl_val obj, const char *key);
void st_api_type_err(st_api_request *req, const char *field, yajl_val v,
    const char *want);
int st_api_bool(st_api_request *req, yajl_val obj, const char *key, int *out);
int st_api_double(st_api_request *req, yajl_val obj, const char *key,
    double min, double max, double *out);
int st_api_int(st_api_request *req, yajl_val obj, const char *key,
    long long min, long long max, long long *out);
int st_api_seed(st_api_request *req, yajl_val obj, const char *key,
    uint64_t *out);
char *st_api_strdup(st_api_request *req, const char *s, size_t len,
    int *nomem);
/* st_api_session.c: "session_id" into req->session_id */
void st_api_session_field(st_api_request *req, yajl_val obj, int required,
    int *nomem);
/* JSON text of a tree; spaced: ", " and ": " as Python's json.dumps
 * (st_api_tools.c) */
void st_api_json_dump(st_jbuf *b, yajl_val v, int spaced);

/* the tool of that name in tools, or NULL (st_api_tools.c) */
const st_api_tool *st_api_tool_find(const st_api_tool *tools, size_t n,
    const char *name);

/* Llama 3's tool prompt, the whole of it (st_api_tools_llama3.c) */
st_status st_api_tools_render_llama3(const st_api_request *req,
    st_jbuf *out, const char *const **stop, size_t *n_stop, st_error *err);

/* Mistral v3's tool prompt, the whole of it (st_api_tools_mistral.c) */
st_status st_api_tools_render_mistral(const st_api_request *req,
    st_jbuf *out, const char *const **stop, size_t *n_stop, st_error *err);

#endif /* ST_API_FIELD_H */
