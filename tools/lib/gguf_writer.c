/*
 * Streaming GGUF v3 writer (see gguf_writer.h for the phases).
 *
 * File layout written (all integers little-endian):
 *   "GGUF" u32 version=3 u64 n_tensors u64 n_kv
 *   n_kv x { string key, u32 type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type,
 *                 u64 offset }
 *   zero padding to the alignment
 *   tensor data, each tensor at its offset, zero-padded to the alignment
 * where string = u64 length + bytes (no NUL).
 */
#include "gguf_writer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_GW_VERSION        3
#define ST_GW_DEFAULT_ALIGN  32
#define ST_GW_MAX_DEPTH      8          /* nesting of arrays in add_value */
#define ST_GW_FILE_BUF_BYTES (1u << 20) /* stdio buffer for tensor data */

typedef struct {
    uint8_t *p;
    size_t   len;
    size_t   cap;
} st_gw_buf;

typedef struct {
    char     name[ST_GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    uint64_t ne[4];
    st_type  type;
    uint64_t nbytes;
    uint64_t offset;         /* in the data section, set by begin_data */
} st_gw_tensor;

typedef struct {
    char   *ptr;             /* copy; may hold NULs */
    size_t  len;
} st_gw_key;

enum { ST_GW_DESCRIBE = 0, ST_GW_DATA, ST_GW_DONE };

struct st_gguf_writer {
    st_error      err;          /* first failure, sticky */
    int           phase;

    st_gw_buf     kv;           /* serialized key/value pairs */
    st_gw_key    *keys;         /* for the uniqueness check */
    uint64_t      n_kv;
    uint64_t      cap_kv;

    st_gw_tensor *tensors;
    uint64_t      n_tensors;
    uint64_t      cap_tensors;
    uint32_t      alignment;

    FILE         *fp;
    char         *path;
    char         *file_buf;     /* setvbuf buffer */
    uint64_t      cur;          /* tensor receiving data */
    uint64_t      cur_written;  /* its bytes so far */
    uint64_t      pos_bytes;    /* bytes written to the file */
};


static st_status
st_gw_fail(st_gguf_writer *w, st_error *err, st_status code,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static st_status
st_gw_fail(st_gguf_writer *w, st_error *err, st_status code,
    const char *fmt, ...)
{
    va_list ap;

    if (w->err.code == ST_OK) {
        w->err.code = code;
        va_start(ap, fmt);
        vsnprintf(w->err.msg, sizeof(w->err.msg), fmt, ap);
        va_end(ap);
    }
    if (err != NULL) {
        *err = w->err;
    }
    return w->err.code;
}


/* Returns the sticky error (copied to err) or ST_OK. */
static st_status
st_gw_check(st_gguf_writer *w, st_error *err)
{
    if (w->err.code != ST_OK && err != NULL) {
        *err = w->err;
    }
    return w->err.code;
}


static int
st_gw_reserve(st_gw_buf *b, size_t more)
{
    size_t  cap;
    uint8_t *p;

    if (more > SIZE_MAX / 2 - b->len) {
        return -1;
    }
    if (b->len + more <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}


static int
st_gw_put(st_gw_buf *b, const void *data, size_t len)
{
    if (st_gw_reserve(b, len) != 0) {
        return -1;
    }
    if (len) {
        memcpy(b->p + b->len, data, len);
    }
    b->len += len;
    return 0;
}


/* Little-endian integer of `bytes` bytes. */
static int
st_gw_put_le(st_gw_buf *b, uint64_t v, size_t bytes)
{
    uint8_t tmp[8];
    size_t  i;

    for (i = 0; i < bytes; i++) {
        tmp[i] = (uint8_t) (v >> (8 * i));
    }
    return st_gw_put(b, tmp, bytes);
}


static int
st_gw_put_str(st_gw_buf *b, const char *s, size_t len)
{
    if (st_gw_put_le(b, (uint64_t) len, 8) != 0) {
        return -1;
    }
    return st_gw_put(b, s, len);
}


static size_t
st_gw_scalar_bytes(uint32_t type)
{
    switch (type) {
    case ST_GGUF_UINT8: case ST_GGUF_INT8: case ST_GGUF_BOOL:
        return 1;
    case ST_GGUF_UINT16: case ST_GGUF_INT16:
        return 2;
    case ST_GGUF_UINT32: case ST_GGUF_INT32: case ST_GGUF_FLOAT32:
        return 4;
    case ST_GGUF_UINT64: case ST_GGUF_INT64: case ST_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}


static int
st_gw_host_is_le(void)
{
    const uint16_t one = 1;
    uint8_t        b;

    memcpy(&b, &one, 1);
    return b == 1;
}


st_status
st_gguf_writer_create(st_gguf_writer **out, st_error *err)
{
    st_gguf_writer *w;

    if (out == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL out");
    }
    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->alignment = ST_GW_DEFAULT_ALIGN;
    *out = w;
    return ST_OK;
}


void
st_gguf_writer_free(st_gguf_writer *w)
{
    uint64_t i;

    if (w == NULL) {
        return;
    }
    if (w->fp != NULL) {
        /* Not finished: the file is incomplete, do not leave it behind. */
        fclose(w->fp);
        if (w->path != NULL) {
            unlink(w->path);
        }
    }
    for (i = 0; i < w->n_kv; i++) {
        free(w->keys[i].ptr);
    }
    free(w->keys);
    free(w->kv.p);
    free(w->tensors);
    free(w->path);
    free(w->file_buf);
    free(w);
}


const st_error *
st_gguf_writer_error(const st_gguf_writer *w)
{
    return &w->err;
}


/* Starts a pair: phase and uniqueness checks, then "key, type". */
static st_status
st_gw_key_begin(st_gguf_writer *w, const char *key, size_t len,
    uint32_t type, st_error *err)
{
    st_gw_key *keys;
    uint64_t   i, cap;

    if (st_gw_check(w, err) != ST_OK) {
        return w->err.code;
    }
    if (w->phase != ST_GW_DESCRIBE) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: metadata added after data began");
    }
    if (key == NULL || len == 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID, "gguf writer: empty key");
    }
    for (i = 0; i < w->n_kv; i++) {
        if (w->keys[i].len == len && memcmp(w->keys[i].ptr, key, len) == 0) {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: duplicate key '%.*s'",
                              (int) (len > 100 ? 100 : len), key);
        }
    }
    if (w->n_kv == w->cap_kv) {
        cap = w->cap_kv ? w->cap_kv * 2 : 32;
        keys = realloc(w->keys, cap * sizeof(*keys));
        if (keys == NULL) {
            return st_gw_fail(w, err, ST_ERR_NOMEM,
                              "gguf writer: out of memory (keys)");
        }
        w->keys = keys;
        w->cap_kv = cap;
    }
    w->keys[w->n_kv].ptr = malloc(len);
    if (w->keys[w->n_kv].ptr == NULL) {
        return st_gw_fail(w, err, ST_ERR_NOMEM,
                          "gguf writer: out of memory (key)");
    }
    memcpy(w->keys[w->n_kv].ptr, key, len);
    w->keys[w->n_kv].len = len;
    w->n_kv++;

    if (st_gw_put_str(&w->kv, key, len) != 0
        || st_gw_put_le(&w->kv, type, 4) != 0)
    {
        return st_gw_fail(w, err, ST_ERR_NOMEM,
                          "gguf writer: out of memory (metadata)");
    }
    return ST_OK;
}


static st_status
st_gw_nomem(st_gguf_writer *w, st_error *err, const char *key)
{
    return st_gw_fail(w, err, ST_ERR_NOMEM,
                      "gguf writer: out of memory writing '%.100s'", key);
}


static st_status
st_gw_add_scalar(st_gguf_writer *w, const char *key, uint32_t type,
    uint64_t bits, st_error *err)
{
    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_key_begin(w, key, key ? strlen(key) : 0, type, err) != ST_OK) {
        return w->err.code;
    }
    if (st_gw_put_le(&w->kv, bits, st_gw_scalar_bytes(type)) != 0) {
        return st_gw_nomem(w, err, key);
    }
    return ST_OK;
}


st_status
st_gguf_writer_add_u8(st_gguf_writer *w, const char *key, uint8_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_UINT8, v, err);
}


st_status
st_gguf_writer_add_i8(st_gguf_writer *w, const char *key, int8_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_INT8, (uint8_t) v, err);
}


st_status
st_gguf_writer_add_u16(st_gguf_writer *w, const char *key, uint16_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_UINT16, v, err);
}


st_status
st_gguf_writer_add_i16(st_gguf_writer *w, const char *key, int16_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_INT16, (uint16_t) v, err);
}


st_status
st_gguf_writer_add_u32(st_gguf_writer *w, const char *key, uint32_t v,
    st_error *err)
{
    if (w != NULL && key != NULL && strcmp(key, "general.alignment") == 0) {
        /* The data layout depends on it: validate like readers do. */
        if (v == 0 || (v & (v - 1)) != 0) {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: general.alignment %u is not a "
                              "power of two", v);
        }
        if (st_gw_add_scalar(w, key, ST_GGUF_UINT32, v, err) != ST_OK) {
            return w->err.code;
        }
        w->alignment = v;
        return ST_OK;
    }
    return st_gw_add_scalar(w, key, ST_GGUF_UINT32, v, err);
}


st_status
st_gguf_writer_add_i32(st_gguf_writer *w, const char *key, int32_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_INT32, (uint32_t) v, err);
}


st_status
st_gguf_writer_add_f32(st_gguf_writer *w, const char *key, float v,
    st_error *err)
{
    uint32_t bits;

    memcpy(&bits, &v, 4);
    return st_gw_add_scalar(w, key, ST_GGUF_FLOAT32, bits, err);
}


st_status
st_gguf_writer_add_bool(st_gguf_writer *w, const char *key, int v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_BOOL, v != 0, err);
}


st_status
st_gguf_writer_add_u64(st_gguf_writer *w, const char *key, uint64_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_UINT64, v, err);
}


st_status
st_gguf_writer_add_i64(st_gguf_writer *w, const char *key, int64_t v,
    st_error *err)
{
    return st_gw_add_scalar(w, key, ST_GGUF_INT64, (uint64_t) v, err);
}


st_status
st_gguf_writer_add_f64(st_gguf_writer *w, const char *key, double v,
    st_error *err)
{
    uint64_t bits;

    memcpy(&bits, &v, 8);
    return st_gw_add_scalar(w, key, ST_GGUF_FLOAT64, bits, err);
}


st_status
st_gguf_writer_add_strn(st_gguf_writer *w, const char *key, const char *s,
    size_t len, st_error *err)
{
    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (s == NULL && len != 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: NULL string for '%.100s'",
                          key ? key : "");
    }
    if (st_gw_key_begin(w, key, key ? strlen(key) : 0, ST_GGUF_STRING, err)
        != ST_OK)
    {
        return w->err.code;
    }
    if (st_gw_put_str(&w->kv, s, len) != 0) {
        return st_gw_nomem(w, err, key);
    }
    return ST_OK;
}


st_status
st_gguf_writer_add_str(st_gguf_writer *w, const char *key, const char *s,
    st_error *err)
{
    return st_gguf_writer_add_strn(w, key, s, s ? strlen(s) : 0, err);
}


/* Numeric array body (type, count, elements) from host-layout data. */
static int
st_gw_put_num_array(st_gw_buf *b, uint32_t elem, const void *data,
    uint64_t n)
{
    size_t         es = st_gw_scalar_bytes(elem);
    const uint8_t *p = data;
    uint64_t       i, v;

    if (st_gw_put_le(b, elem, 4) != 0 || st_gw_put_le(b, n, 8) != 0) {
        return -1;
    }
    if (n > (SIZE_MAX / 2) / es) {
        return -1;
    }
    if (elem == ST_GGUF_BOOL) {
        for (i = 0; i < n; i++) {
            if (st_gw_put_le(b, p[i] != 0, 1) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (st_gw_host_is_le()) {
        return st_gw_put(b, data, (size_t) n * es);
    }
    for (i = 0; i < n; i++) {
        v = 0;
        /* Big-endian host: the value's bytes are reversed in memory. */
        memcpy((uint8_t *) &v + (8 - es), p + i * es, es);
        if (st_gw_put_le(b, v, es) != 0) {
            return -1;
        }
    }
    return 0;
}


st_status
st_gguf_writer_add_arr(st_gguf_writer *w, const char *key, st_gguf_vtype elem,
    const void *data, uint64_t n, st_error *err)
{
    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_scalar_bytes(elem) == 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: '%.100s': array element type %s is "
                          "not a number", key ? key : "",
                          st_gguf_vtype_name(elem));
    }
    if (data == NULL && n != 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: '%.100s': NULL array data",
                          key ? key : "");
    }
    if (st_gw_key_begin(w, key, key ? strlen(key) : 0, ST_GGUF_ARRAY, err)
        != ST_OK)
    {
        return w->err.code;
    }
    if (st_gw_put_num_array(&w->kv, elem, data, n) != 0) {
        return st_gw_nomem(w, err, key);
    }
    return ST_OK;
}


st_status
st_gguf_writer_add_arr_str(st_gguf_writer *w, const char *key,
    const char *const *strs, const size_t *lens, uint64_t n, st_error *err)
{
    uint64_t i;
    size_t   len;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (strs == NULL && n != 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: '%.100s': NULL string array",
                          key ? key : "");
    }
    for (i = 0; i < n; i++) {
        if (strs[i] == NULL && (lens == NULL || lens[i] != 0)) {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: '%.100s': string %llu is NULL",
                              key ? key : "", (unsigned long long) i);
        }
    }
    if (st_gw_key_begin(w, key, key ? strlen(key) : 0, ST_GGUF_ARRAY, err)
        != ST_OK)
    {
        return w->err.code;
    }
    if (st_gw_put_le(&w->kv, ST_GGUF_STRING, 4) != 0
        || st_gw_put_le(&w->kv, n, 8) != 0)
    {
        return st_gw_nomem(w, err, key);
    }
    for (i = 0; i < n; i++) {
        len = lens ? lens[i] : strlen(strs[i]);
        if (st_gw_put_str(&w->kv, strs[i], len) != 0) {
            return st_gw_nomem(w, err, key);
        }
    }
    return ST_OK;
}


/* Value body of a reader value (without the type tag for the top level:
 * the caller wrote it). Returns 0, -1 out of memory, -2 malformed. */
static int
st_gw_put_value(st_gw_buf *b, const st_gguf_value *v, int depth)
{
    size_t      es;
    uint64_t    i;
    st_gguf_str s;

    if (depth > ST_GW_MAX_DEPTH) {
        return -2;
    }
    switch (v->type) {
    case ST_GGUF_UINT8: case ST_GGUF_UINT16: case ST_GGUF_UINT32:
    case ST_GGUF_UINT64: case ST_GGUF_BOOL:
        return st_gw_put_le(b, v->v.u64, st_gw_scalar_bytes(v->type));
    case ST_GGUF_INT8: case ST_GGUF_INT16: case ST_GGUF_INT32:
    case ST_GGUF_INT64:
        return st_gw_put_le(b, (uint64_t) v->v.i64,
                            st_gw_scalar_bytes(v->type));
    case ST_GGUF_FLOAT32: {
        float    f = (float) v->v.f64;
        uint32_t bits;

        memcpy(&bits, &f, 4);
        return st_gw_put_le(b, bits, 4);
    }
    case ST_GGUF_FLOAT64: {
        uint64_t bits;

        memcpy(&bits, &v->v.f64, 8);
        return st_gw_put_le(b, bits, 8);
    }
    case ST_GGUF_STRING:
        return st_gw_put_str(b, v->v.str.ptr, (size_t) v->v.str.len);
    case ST_GGUF_ARRAY:
        break;
    default:
        return -2;
    }

    if (st_gw_put_le(b, v->arr_type, 4) != 0
        || st_gw_put_le(b, v->arr_n, 8) != 0)
    {
        return -1;
    }
    if (v->arr_type == ST_GGUF_STRING) {
        for (i = 0; i < v->arr_n; i++) {
            s = st_gguf_arr_str(v, i);
            if (s.ptr == NULL && s.len != 0) {
                return -2;
            }
            if (st_gw_put_str(b, s.ptr, (size_t) s.len) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (v->arr_type == ST_GGUF_ARRAY) {
        if (v->arr_items == NULL && v->arr_n != 0) {
            return -2;
        }
        for (i = 0; i < v->arr_n; i++) {
            int rc = st_gw_put_value(b, &v->arr_items[i], depth + 1);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    es = st_gw_scalar_bytes(v->arr_type);
    if (es == 0 || (v->arr_data == NULL && v->arr_n != 0)
        || v->arr_n > (SIZE_MAX / 2) / es)
    {
        return -2;
    }
    /* The reader's numeric arrays are the file's little-endian bytes. */
    return st_gw_put(b, v->arr_data, (size_t) v->arr_n * es);
}


st_status
st_gguf_writer_add_value(st_gguf_writer *w, const char *key, size_t key_len,
    const st_gguf_value *v, st_error *err)
{
    int rc;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (v == NULL || (v->type != ST_GGUF_STRING && v->type != ST_GGUF_ARRAY
                      && st_gw_scalar_bytes(v->type) == 0))
    {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: '%.*s': bad value",
                          (int) (key_len > 100 ? 100 : key_len),
                          key ? key : "");
    }
    if (key != NULL && key_len == sizeof("general.alignment") - 1
        && memcmp(key, "general.alignment", key_len) == 0)
    {
        if (v->type != ST_GGUF_UINT32 || v->v.u64 == 0
            || (v->v.u64 & (v->v.u64 - 1)) != 0)
        {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: general.alignment must be a "
                              "power-of-two u32");
        }
        w->alignment = (uint32_t) v->v.u64;
    }
    if (st_gw_key_begin(w, key, key_len, v->type, err) != ST_OK) {
        return w->err.code;
    }
    rc = st_gw_put_value(&w->kv, v, 0);
    if (rc == -1) {
        return st_gw_fail(w, err, ST_ERR_NOMEM,
                          "gguf writer: out of memory writing '%.*s'",
                          (int) (key_len > 100 ? 100 : key_len), key);
    }
    if (rc != 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: '%.*s': malformed value",
                          (int) (key_len > 100 ? 100 : key_len), key);
    }
    return ST_OK;
}


st_status
st_gguf_writer_add_tensor(st_gguf_writer *w, const char *name, st_type type,
    uint32_t n_dims, const uint64_t *ne, st_error *err)
{
    const st_type_traits *tt;
    st_gw_tensor         *t;
    uint64_t              i, cap, n_rows, row_bytes;
    size_t                len;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_check(w, err) != ST_OK) {
        return w->err.code;
    }
    if (w->phase != ST_GW_DESCRIBE) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor added after data began");
    }
    len = name ? strlen(name) : 0;
    if (len == 0 || len > ST_GGUF_MAX_NAME) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor name '%.80s' must be 1..%d "
                          "bytes", name ? name : "", ST_GGUF_MAX_NAME);
    }
    for (i = 0; i < w->n_tensors; i++) {
        if (strcmp(w->tensors[i].name, name) == 0) {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: duplicate tensor '%s'", name);
        }
    }
    if (n_dims < 1 || n_dims > 4 || ne == NULL) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s': n_dims %u not in 1..4",
                          name, n_dims);
    }
    tt = st_type_traits_get(type);
    if (tt == NULL || tt->block_size == 0 || tt->type_size == 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s': unknown type %u",
                          name, (unsigned) type);
    }
    n_rows = 1;
    for (i = 0; i < n_dims; i++) {
        if (ne[i] == 0 || ne[i] > INT64_MAX) {
            return st_gw_fail(w, err, ST_ERR_INVALID,
                              "gguf writer: tensor '%s': ne[%llu] = %llu",
                              name, (unsigned long long) i,
                              (unsigned long long) ne[i]);
        }
        if (i > 0) {
            if (n_rows > INT64_MAX / ne[i]) {
                return st_gw_fail(w, err, ST_ERR_INVALID,
                                  "gguf writer: tensor '%s' too large", name);
            }
            n_rows *= ne[i];
        }
    }
    row_bytes = st_row_bytes(type, ne[0]);
    if (row_bytes == 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s': row of %llu is not a "
                          "multiple of %s's block of %u", name,
                          (unsigned long long) ne[0], tt->name,
                          tt->block_size);
    }
    if (n_rows > (UINT64_MAX / 2) / row_bytes) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s' too large", name);
    }
    if (w->n_tensors == w->cap_tensors) {
        cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        t = realloc(w->tensors, cap * sizeof(*t));
        if (t == NULL) {
            return st_gw_fail(w, err, ST_ERR_NOMEM,
                              "gguf writer: out of memory (tensors)");
        }
        w->tensors = t;
        w->cap_tensors = cap;
    }
    t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof(*t));
    memcpy(t->name, name, len + 1);
    t->n_dims = n_dims;
    for (i = 0; i < 4; i++) {
        t->ne[i] = i < n_dims ? ne[i] : 1;
    }
    t->type = type;
    t->nbytes = n_rows * row_bytes;
    return ST_OK;
}


uint64_t
st_gguf_writer_tensor_bytes(const st_gguf_writer *w, uint64_t i)
{
    return (w != NULL && i < w->n_tensors) ? w->tensors[i].nbytes : 0;
}


uint64_t
st_gguf_writer_n_tensors(const st_gguf_writer *w)
{
    return w ? w->n_tensors : 0;
}


static uint64_t
st_gw_align(uint64_t x, uint32_t a)
{
    return (x + a - 1) / a * a;
}


static st_status
st_gw_fwrite(st_gguf_writer *w, const void *p, size_t n, st_error *err)
{
    if (n != 0 && fwrite(p, 1, n, w->fp) != n) {
        return st_gw_fail(w, err, ST_ERR_IO, "gguf writer: write to %s "
                          "failed: %s", w->path, strerror(errno));
    }
    w->pos_bytes += n;
    return ST_OK;
}


static st_status
st_gw_pad(st_gguf_writer *w, st_error *err)
{
    static const uint8_t zeros[256];
    uint64_t             pad;
    size_t               n;

    pad = st_gw_align(w->pos_bytes, w->alignment) - w->pos_bytes;
    while (pad > 0) {
        n = pad > sizeof(zeros) ? sizeof(zeros) : (size_t) pad;
        if (st_gw_fwrite(w, zeros, n, err) != ST_OK) {
            return w->err.code;
        }
        pad -= n;
    }
    return ST_OK;
}


st_status
st_gguf_writer_begin_data(st_gguf_writer *w, const char *path, st_error *err)
{
    st_gw_buf     hdr = {0};
    st_gw_tensor *t;
    uint64_t      i, j, off;
    size_t        plen;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_check(w, err) != ST_OK) {
        return w->err.code;
    }
    if (w->phase != ST_GW_DESCRIBE || path == NULL) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: begin_data called twice or without "
                          "a path");
    }

    /* Offsets relative to the data section, each tensor aligned. */
    off = 0;
    for (i = 0; i < w->n_tensors; i++) {
        t = &w->tensors[i];
        t->offset = off;
        off = st_gw_align(off + t->nbytes, w->alignment);
    }

    if (st_gw_put(&hdr, "GGUF", 4) != 0
        || st_gw_put_le(&hdr, ST_GW_VERSION, 4) != 0
        || st_gw_put_le(&hdr, w->n_tensors, 8) != 0
        || st_gw_put_le(&hdr, w->n_kv, 8) != 0
        || st_gw_put(&hdr, w->kv.p, w->kv.len) != 0)
    {
        goto nomem;
    }
    for (i = 0; i < w->n_tensors; i++) {
        t = &w->tensors[i];
        if (st_gw_put_str(&hdr, t->name, strlen(t->name)) != 0
            || st_gw_put_le(&hdr, t->n_dims, 4) != 0)
        {
            goto nomem;
        }
        for (j = 0; j < t->n_dims; j++) {
            if (st_gw_put_le(&hdr, t->ne[j], 8) != 0) {
                goto nomem;
            }
        }
        if (st_gw_put_le(&hdr, (uint64_t) t->type, 4) != 0
            || st_gw_put_le(&hdr, t->offset, 8) != 0)
        {
            goto nomem;
        }
    }

    plen = strlen(path);
    w->path = malloc(plen + 1);
    w->file_buf = malloc(ST_GW_FILE_BUF_BYTES);
    if (w->path == NULL || w->file_buf == NULL) {
        goto nomem;
    }
    memcpy(w->path, path, plen + 1);
    w->fp = fopen(path, "wb");
    if (w->fp == NULL) {
        free(hdr.p);
        return st_gw_fail(w, err, ST_ERR_IO, "gguf writer: cannot create "
                          "%s: %s", path, strerror(errno));
    }
    setvbuf(w->fp, w->file_buf, _IOFBF, ST_GW_FILE_BUF_BYTES);
    w->phase = ST_GW_DATA;
    if (st_gw_fwrite(w, hdr.p, hdr.len, err) != ST_OK) {
        free(hdr.p);
        return w->err.code;
    }
    free(hdr.p);
    /* The metadata is in the file now; release it. */
    free(w->kv.p);
    w->kv.p = NULL;
    w->kv.len = w->kv.cap = 0;
    return st_gw_pad(w, err);

nomem:
    free(hdr.p);
    return st_gw_fail(w, err, ST_ERR_NOMEM,
                      "gguf writer: out of memory (header)");
}


st_status
st_gguf_writer_write(st_gguf_writer *w, const void *data, size_t nbytes,
    st_error *err)
{
    st_gw_tensor *t;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_check(w, err) != ST_OK) {
        return w->err.code;
    }
    if (w->phase != ST_GW_DATA) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor data outside the data phase");
    }
    if (w->cur >= w->n_tensors) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: %zu bytes of data after the last "
                          "tensor", nbytes);
    }
    t = &w->tensors[w->cur];
    if (nbytes > t->nbytes - w->cur_written) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s': %zu bytes written, "
                          "only %llu left of %llu", t->name, nbytes,
                          (unsigned long long) (t->nbytes - w->cur_written),
                          (unsigned long long) t->nbytes);
    }
    if (data == NULL && nbytes != 0) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s': NULL data", t->name);
    }
    if (st_gw_fwrite(w, data, nbytes, err) != ST_OK) {
        return w->err.code;
    }
    w->cur_written += nbytes;
    if (w->cur_written == t->nbytes) {
        w->cur++;
        w->cur_written = 0;
        return st_gw_pad(w, err);
    }
    return ST_OK;
}


st_status
st_gguf_writer_finish(st_gguf_writer *w, st_error *err)
{
    FILE *fp;

    if (w == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "gguf writer: NULL writer");
    }
    if (st_gw_check(w, err) != ST_OK) {
        return w->err.code;
    }
    if (w->phase != ST_GW_DATA) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: finish outside the data phase");
    }
    if (w->cur < w->n_tensors) {
        return st_gw_fail(w, err, ST_ERR_INVALID,
                          "gguf writer: tensor '%s' (%llu of %llu) has "
                          "%llu of %llu bytes", w->tensors[w->cur].name,
                          (unsigned long long) w->cur + 1,
                          (unsigned long long) w->n_tensors,
                          (unsigned long long) w->cur_written,
                          (unsigned long long) w->tensors[w->cur].nbytes);
    }
    fp = w->fp;
    if (fflush(fp) != 0 || ferror(fp)) {
        return st_gw_fail(w, err, ST_ERR_IO, "gguf writer: flush of %s "
                          "failed: %s", w->path, strerror(errno));
    }
    w->fp = NULL;
    if (fclose(fp) != 0) {
        /* fp is gone either way; remove the file we cannot trust. */
        unlink(w->path);
        return st_gw_fail(w, err, ST_ERR_IO, "gguf writer: close of %s "
                          "failed: %s", w->path, strerror(errno));
    }
    w->phase = ST_GW_DONE;
    return ST_OK;
}


uint64_t
st_gguf_writer_file_bytes(const st_gguf_writer *w)
{
    return w ? w->pos_bytes : 0;
}
