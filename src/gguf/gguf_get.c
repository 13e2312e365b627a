/*
 * GGUF accessors and typed getters over a parsed handle (gguf.c): file
 * facts, kv and tensor lookup by index or name, and scalar / string /
 * array values checked against the type the caller expects.
 */
#include "gguf/gguf_internal.h"

#include <string.h>


/* ---- accessors ---- */

uint32_t
st_gguf_version(const st_gguf *g)
{
    return g->version;
}


size_t
st_gguf_file_size(const st_gguf *g)
{
    return g->size_bytes;
}


uint32_t
st_gguf_alignment(const st_gguf *g)
{
    return g->alignment;
}


size_t
st_gguf_data_offset(const st_gguf *g)
{
    return g->data_offset;
}


uint64_t
st_gguf_n_kv(const st_gguf *g)
{
    return g->n_kv;
}


const st_gguf_kv *
st_gguf_kv_at(const st_gguf *g, uint64_t i)
{
    return i < g->n_kv ? &g->kvs[i] : NULL;
}


const st_gguf_value *
st_gguf_find(const st_gguf *g, const char *key)
{
    uint64_t  i;

    if (key == NULL) {
        return NULL;
    }
    i = st_gguf_kv_lookup(g, key, strlen(key));
    return i == UINT64_MAX ? NULL : &g->kvs[i].value;
}


uint64_t
st_gguf_n_tensors(const st_gguf *g)
{
    return g->n_tensors;
}


const st_gguf_tensor *
st_gguf_tensor_at(const st_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}


const st_gguf_tensor *
st_gguf_find_tensor(const st_gguf *g, const char *name)
{
    uint64_t  i;

    if (name == NULL) {
        return NULL;
    }
    i = st_gguf_tensor_lookup(g, name, strlen(name));
    return i == UINT64_MAX ? NULL : &g->tensors[i];
}


/* ---- typed getters ---- */

static st_status
st_gguf_get_any(const st_gguf *g, const char *key, const st_gguf_value **out,
    st_error *err)
{
    *out = st_gguf_find(g, key);
    if (*out == NULL) {
        return st_error_set(err, ST_ERR_FORMAT, "gguf: missing key '%s'",
                            key != NULL ? key : "(null)");
    }
    return ST_OK;
}


static st_status
st_gguf_wrong_type(const char *key, const st_gguf_value *v,
    const char *expected, st_error *err)
{
    return st_error_set(err, ST_ERR_FORMAT, "gguf: key '%s' is a %s, "
                        "expected %s", key, st_gguf_vtype_name(v->type),
                        expected);
}


st_status
st_gguf_get_u32(const st_gguf *g, const char *key, uint32_t *out,
    st_error *err)
{
    const st_gguf_value  *v;
    st_status             rc = st_gguf_get_any(g, key, &v, err);

    if (rc != ST_OK) {
        return rc;
    }
    switch (v->type) {
    case ST_GGUF_UINT8: case ST_GGUF_UINT16: case ST_GGUF_UINT32:
    case ST_GGUF_UINT64:
        if (v->v.u64 > UINT32_MAX) {
            break;
        }
        *out = (uint32_t) v->v.u64;
        return ST_OK;
    case ST_GGUF_INT8: case ST_GGUF_INT16: case ST_GGUF_INT32:
    case ST_GGUF_INT64:
        if (v->v.i64 < 0 || v->v.i64 > (int64_t) UINT32_MAX) {
            break;
        }
        *out = (uint32_t) v->v.i64;
        return ST_OK;
    default:
        return st_gguf_wrong_type(key, v, "an integer", err);
    }
    return st_error_set(err, ST_ERR_FORMAT,
        "gguf: key '%s': value does not fit in u32", key);
}


st_status
st_gguf_get_f32(const st_gguf *g, const char *key, float *out, st_error *err)
{
    const st_gguf_value  *v;
    st_status             rc = st_gguf_get_any(g, key, &v, err);

    if (rc != ST_OK) {
        return rc;
    }
    if (v->type != ST_GGUF_FLOAT32 && v->type != ST_GGUF_FLOAT64) {
        return st_gguf_wrong_type(key, v, "a float", err);
    }
    *out = (float) v->v.f64;
    return ST_OK;
}


st_status
st_gguf_get_bool(const st_gguf *g, const char *key, int *out, st_error *err)
{
    const st_gguf_value  *v;
    st_status             rc = st_gguf_get_any(g, key, &v, err);

    if (rc != ST_OK) {
        return rc;
    }
    if (v->type != ST_GGUF_BOOL) {
        return st_gguf_wrong_type(key, v, "a bool", err);
    }
    *out = v->v.u64 != 0;
    return ST_OK;
}


st_status
st_gguf_get_str(const st_gguf *g, const char *key, st_gguf_str *out,
    st_error *err)
{
    const st_gguf_value  *v;
    st_status             rc = st_gguf_get_any(g, key, &v, err);

    if (rc != ST_OK) {
        return rc;
    }
    if (v->type != ST_GGUF_STRING) {
        return st_gguf_wrong_type(key, v, "a string", err);
    }
    *out = v->v.str;
    return ST_OK;
}


st_status
st_gguf_get_arr(const st_gguf *g, const char *key, st_gguf_vtype elem,
    const st_gguf_value **out, st_error *err)
{
    const st_gguf_value  *v;
    st_status             rc = st_gguf_get_any(g, key, &v, err);

    if (rc != ST_OK) {
        return rc;
    }
    if (v->type != ST_GGUF_ARRAY) {
        return st_gguf_wrong_type(key, v, "an array", err);
    }
    if (v->arr_type != elem) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: key '%s' is an array of %s, expected an array of %s", key,
            st_gguf_vtype_name(v->arr_type), st_gguf_vtype_name(elem));
    }
    *out = v;
    return ST_OK;
}


st_gguf_str
st_gguf_arr_str(const st_gguf_value *arr, uint64_t i)
{
    st_gguf_str  none = { NULL, 0 };

    if (arr == NULL || arr->type != ST_GGUF_ARRAY
        || arr->arr_type != ST_GGUF_STRING || i >= arr->arr_n
        || arr->arr_items == NULL)
    {
        return none;
    }
    return arr->arr_items[i].v.str;
}


int
st_gguf_arr_i64(const st_gguf_value *arr, uint64_t i, int64_t *out)
{
    const uint8_t  *p;
    size_t          esz;
    uint64_t        u;

    if (arr == NULL || arr->type != ST_GGUF_ARRAY || i >= arr->arr_n) {
        return -1;
    }
    esz = st_gguf_scalar_bytes(arr->arr_type);
    if (esz == 0 || arr->arr_type == ST_GGUF_FLOAT32
        || arr->arr_type == ST_GGUF_FLOAT64)
    {
        return -1;
    }
    p = (const uint8_t *) arr->arr_data + i * esz;
    switch (arr->arr_type) {
    case ST_GGUF_UINT8:  *out = p[0]; return 0;
    case ST_GGUF_BOOL:   *out = p[0] != 0; return 0;
    case ST_GGUF_INT8:   *out = (int8_t) p[0]; return 0;
    case ST_GGUF_UINT16: *out = (uint16_t) (p[0] | p[1] << 8); return 0;
    case ST_GGUF_INT16:  *out = (int16_t) (uint16_t) (p[0] | p[1] << 8);
                         return 0;
    case ST_GGUF_UINT32: *out = st_gguf_le32(p); return 0;
    case ST_GGUF_INT32:  *out = (int32_t) st_gguf_le32(p); return 0;
    case ST_GGUF_INT64:  *out = (int64_t) st_gguf_le64(p); return 0;
    case ST_GGUF_UINT64:
        u = st_gguf_le64(p);
        if (u > (uint64_t) INT64_MAX) {
            return -1;
        }
        *out = (int64_t) u;
        return 0;
    default:
        return -1;
    }
}


int
st_gguf_arr_f32(const st_gguf_value *arr, uint64_t i, float *out)
{
    const uint8_t  *p;
    uint32_t        bits32;
    uint64_t        bits64;
    double          d;

    if (arr == NULL || arr->type != ST_GGUF_ARRAY || i >= arr->arr_n) {
        return -1;
    }
    if (arr->arr_type == ST_GGUF_FLOAT32) {
        p = (const uint8_t *) arr->arr_data + i * 4;
        bits32 = st_gguf_le32(p);
        memcpy(out, &bits32, sizeof(float));
        return 0;
    }
    if (arr->arr_type == ST_GGUF_FLOAT64) {
        p = (const uint8_t *) arr->arr_data + i * 8;
        bits64 = st_gguf_le64(p);
        memcpy(&d, &bits64, sizeof(double));
        *out = (float) d;
        return 0;
    }
    return -1;
}
