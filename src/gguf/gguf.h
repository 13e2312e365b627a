/*
 * GGUF v2/v3 reader: mmap the file, parse and validate everything against
 * the file length before use. Read-only; the mapping lives as long as the
 * st_gguf handle.
 */
#ifndef ST_GGUF_H
#define ST_GGUF_H

#include "starling/st_common.h"
#include "quant/quant.h"

typedef enum {
    ST_GGUF_UINT8 = 0, ST_GGUF_INT8 = 1, ST_GGUF_UINT16 = 2, ST_GGUF_INT16 = 3,
    ST_GGUF_UINT32 = 4, ST_GGUF_INT32 = 5, ST_GGUF_FLOAT32 = 6, ST_GGUF_BOOL = 7,
    ST_GGUF_STRING = 8, ST_GGUF_ARRAY = 9, ST_GGUF_UINT64 = 10, ST_GGUF_INT64 = 11,
    ST_GGUF_FLOAT64 = 12
} st_gguf_vtype;

/* A string inside the mapped file: NOT NUL-terminated. */
typedef struct {
    const char *ptr;
    uint64_t    len;
} st_gguf_str;

/* One metadata value. Scalars are decoded; arrays point into the mapping.
 * For arrays of strings, use st_gguf_arr_str(): elements are
 * variable-length so they are indexed once at load (offsets table). */
typedef struct st_gguf_value {
    st_gguf_vtype type;
    union {
        uint64_t    u64;   /* all unsigned ints and bool */
        int64_t     i64;   /* all signed ints */
        double      f64;   /* float32/float64 */
        st_gguf_str str;
    } v;
    /* arrays */
    st_gguf_vtype arr_type;
    uint64_t      arr_n;
    const void   *arr_data;        /* first element in the mapping */
    const struct st_gguf_value *arr_items; /* decoded items for arrays of
                                      strings/arrays (NULL for numbers) */
} st_gguf_value;

typedef struct {
    st_gguf_str   key;
    st_gguf_value value;
} st_gguf_kv;

typedef struct {
    char          name[128];     /* NUL-terminated copy */
    uint32_t      n_dims;        /* 1..4 */
    uint64_t      ne[4];         /* ne[0] = row length (innermost); unused = 1 */
    st_type       type;
    uint64_t      offset;        /* relative to the data section */
    uint64_t      nbytes;
    const void   *data;          /* pointer into the mapping, validated */
} st_gguf_tensor;

typedef struct st_gguf st_gguf;

/* Open and validate a file. sha256_hex: optional (NULL or "") lower/upper
 * case hex digest the whole file must match. */
st_status st_gguf_open(st_gguf **out, const char *path, const char *sha256_hex,
    st_error *err);
/* Parse an in-memory image (not copied; must outlive the handle).
 * Used by tests to feed corrupted images. */
st_status st_gguf_open_memory(st_gguf **out, const void *data, size_t size,
    st_error *err);
void st_gguf_close(st_gguf *g);

uint32_t st_gguf_version(const st_gguf *g);
size_t   st_gguf_file_size(const st_gguf *g);
uint64_t st_gguf_n_kv(const st_gguf *g);
const st_gguf_kv *st_gguf_kv_at(const st_gguf *g, uint64_t i);
const st_gguf_value *st_gguf_find(const st_gguf *g, const char *key);
uint64_t st_gguf_n_tensors(const st_gguf *g);
const st_gguf_tensor *st_gguf_tensor_at(const st_gguf *g, uint64_t i);
const st_gguf_tensor *st_gguf_find_tensor(const st_gguf *g, const char *name);

/* Typed getters: return ST_OK and set *out, or an error naming the key
 * (missing key -> ST_ERR_FORMAT unless the caller checks st_gguf_find
 * first; wrong type -> ST_ERR_FORMAT). Integer getters accept any integer
 * type whose value fits. st_gguf_get_f32 accepts float32/float64. */
st_status st_gguf_get_u32(const st_gguf *g, const char *key, uint32_t *out, st_error *err);
st_status st_gguf_get_f32(const st_gguf *g, const char *key, float *out, st_error *err);
st_status st_gguf_get_bool(const st_gguf *g, const char *key, int *out, st_error *err);
st_status st_gguf_get_str(const st_gguf *g, const char *key, st_gguf_str *out, st_error *err);
/* Array getter: checks the element type (ST_GGUF_ARRAY value). */
st_status st_gguf_get_arr(const st_gguf *g, const char *key, st_gguf_vtype elem,
    const st_gguf_value **out, st_error *err);
/* i-th string of an array of strings (bounds-checked; returns len 0/NULL
 * on misuse). */
st_gguf_str st_gguf_arr_str(const st_gguf_value *arr, uint64_t i);

/* i-th element of a numeric array, converted (the elements in the
 * mapping are unaligned little-endian). Return 0, or -1 on a wrong element
 * type, an out-of-range index or (i64) a u64 above INT64_MAX.
 * st_gguf_arr_i64 takes integer and bool arrays, st_gguf_arr_f32
 * float32/float64 ones. */
int st_gguf_arr_i64(const st_gguf_value *arr, uint64_t i, int64_t *out);
int st_gguf_arr_f32(const st_gguf_value *arr, uint64_t i, float *out);

/* "u32", "string", ... ("unknown" for ids outside the enum). */
const char *st_gguf_vtype_name(uint32_t type);
/* general.alignment (default 32) and the data section's file offset. */
uint32_t st_gguf_alignment(const st_gguf *g);
size_t   st_gguf_data_offset(const st_gguf *g);

#endif /* ST_GGUF_H */
