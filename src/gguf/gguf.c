/*
 * GGUF v2/v3 loader.
 *
 * The file is untrusted input: every count, length and offset is checked
 * against the bytes that remain BEFORE it is used to read or to allocate,
 * and every allocation is proportional to bytes that were actually
 * present in the file (counts are bounded by remaining bytes divided by
 * the smallest possible encoding of one element, and arrays are walked
 * once to validate them before their item tables are allocated).
 *
 * Layout (little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x (string key, u32 value type, value),
 *   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 type,
 *                u64 offset),
 *   padding to general.alignment, data section.
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * elements. v1 used 32-bit counts and is not supported.
 *
 * This file parses and validates; gguf_index.c holds the key and name
 * lookups, gguf_get.c the accessors and typed getters, gguf_internal.h
 * the handle they share.
 */
#include "gguf/gguf.h"
#include "gguf/gguf_internal.h"
#include "base/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>


#define ST_GGUF_HEADER_BYTES       24   /* magic, version, 2 counts */
#define ST_GGUF_DEFAULT_ALIGNMENT  32
#define ST_GGUF_MAX_DEPTH          4    /* nesting of arrays */
#define ST_GGUF_MAX_DIMS           4
#define ST_GGUF_NAME_MAX           128  /* tensor name incl. NUL */
#define ST_GGUF_VTYPE_COUNT        13

/* Smallest encodings, used to bound hostile counts by the bytes left:
 * a kv is at least key length + value type + a 1-byte value; a tensor
 * info at least name length + n_dims + one ne + type + offset. */
#define ST_GGUF_MIN_KV_BYTES       (8 + 4 + 1)
#define ST_GGUF_MIN_TENSOR_BYTES   (8 + 4 + 8 + 4 + 8)
#define ST_GGUF_MIN_STRING_BYTES   8
#define ST_GGUF_MIN_ARRAY_BYTES    (4 + 8)

/* Printable copy of a file string for messages. */
#define ST_GGUF_SHOW_MAX           48


typedef struct {
    const uint8_t  *base;
    size_t          size;
    size_t          pos;
} st_gguf_rd;

/* What is being parsed, for error messages. */
typedef struct {
    st_error       *err;
    uint64_t        key_no;
    char            key[ST_GGUF_SHOW_MAX + 4];
} st_gguf_ctx;



static void st_gguf_value_free(st_gguf_value *v);


/* ---- small helpers ---- */

uint32_t
st_gguf_le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


uint64_t
st_gguf_le64(const uint8_t *p)
{
    return (uint64_t) st_gguf_le32(p) | (uint64_t) st_gguf_le32(p + 4) << 32;
}


static size_t
st_gguf_left(const st_gguf_rd *rd)
{
    return rd->size - rd->pos;
}


static int
st_gguf_is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}


/* Copies a file string for a message: non-printable bytes become '?',
 * long ones are cut with "...". */
static const char *
st_gguf_show(char *buf, const char *s, uint64_t len)
{
    uint64_t  i, n = len > ST_GGUF_SHOW_MAX ? ST_GGUF_SHOW_MAX : len;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        buf[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char) c;
    }
    if (n < len) {
        memcpy(buf + n, "...", 4);
    } else {
        buf[n] = '\0';
    }
    return buf;
}


const char *
st_gguf_vtype_name(uint32_t type)
{
    static const char *names[ST_GGUF_VTYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string",
        "array", "u64", "i64", "f64"
    };

    return type < ST_GGUF_VTYPE_COUNT ? names[type] : "unknown";
}


/* Encoded size of a scalar value type; 0 for string/array/unknown. */
size_t
st_gguf_scalar_bytes(uint32_t type)
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


/* ---- metadata values ---- */

/* Pass 1: checks that a value of `type` at rd->pos lies entirely inside
 * the file (recursively for arrays) and advances past it. Allocates
 * nothing, so a hostile count costs at most one walk of the file. */
static st_status
st_gguf_skip_value(st_gguf_ctx *cx, st_gguf_rd *rd, uint32_t type, int depth)
{
    size_t    esz, at;
    uint32_t  etype;
    uint64_t  n, i, len;

    esz = st_gguf_scalar_bytes(type);
    if (esz != 0) {
        if (st_gguf_left(rd) < esz) {
            return st_error_set(cx->err, ST_ERR_FORMAT,
                "gguf: key #%llu '%s': %s value truncated at byte %zu "
                "(file size %zu)", (unsigned long long) cx->key_no, cx->key,
                st_gguf_vtype_name(type), rd->pos, rd->size);
        }
        rd->pos += esz;
        return ST_OK;
    }

    if (type == ST_GGUF_STRING) {
        if (st_gguf_left(rd) < 8) {
            return st_error_set(cx->err, ST_ERR_FORMAT,
                "gguf: key #%llu '%s': string length truncated at byte %zu "
                "(file size %zu)", (unsigned long long) cx->key_no, cx->key,
                rd->pos, rd->size);
        }
        len = st_gguf_le64(rd->base + rd->pos);
        if (len > st_gguf_left(rd) - 8) {
            return st_error_set(cx->err, ST_ERR_FORMAT,
                "gguf: key #%llu '%s': string of %llu bytes at byte %zu runs "
                "past end of file (size %zu)", (unsigned long long) cx->key_no,
                cx->key, (unsigned long long) len, rd->pos, rd->size);
        }
        rd->pos += 8 + (size_t) len;
        return ST_OK;
    }

    if (type != ST_GGUF_ARRAY) {
        return st_error_set(cx->err, ST_ERR_FORMAT,
            "gguf: key #%llu '%s': unknown value type %u",
            (unsigned long long) cx->key_no, cx->key, type);
    }

    if (depth >= ST_GGUF_MAX_DEPTH) {
        return st_error_set(cx->err, ST_ERR_FORMAT,
            "gguf: key #%llu '%s': arrays nested deeper than %d levels",
            (unsigned long long) cx->key_no, cx->key, ST_GGUF_MAX_DEPTH);
    }
    if (st_gguf_left(rd) < ST_GGUF_MIN_ARRAY_BYTES) {
        return st_error_set(cx->err, ST_ERR_FORMAT,
            "gguf: key #%llu '%s': array header truncated at byte %zu "
            "(file size %zu)", (unsigned long long) cx->key_no, cx->key,
            rd->pos, rd->size);
    }
    etype = st_gguf_le32(rd->base + rd->pos);
    n = st_gguf_le64(rd->base + rd->pos + 4);
    rd->pos += ST_GGUF_MIN_ARRAY_BYTES;
    if (etype >= ST_GGUF_VTYPE_COUNT) {
        return st_error_set(cx->err, ST_ERR_FORMAT,
            "gguf: key #%llu '%s': array of unknown element type %u",
            (unsigned long long) cx->key_no, cx->key, etype);
    }

    esz = st_gguf_scalar_bytes(etype);
    if (esz == 0) {
        esz = etype == ST_GGUF_STRING ? ST_GGUF_MIN_STRING_BYTES
                                      : ST_GGUF_MIN_ARRAY_BYTES;
    }
    if (n > st_gguf_left(rd) / esz) {
        return st_error_set(cx->err, ST_ERR_FORMAT,
            "gguf: key #%llu '%s': array of %llu %ss at byte %zu does not "
            "fit in the %zu bytes left", (unsigned long long) cx->key_no,
            cx->key, (unsigned long long) n, st_gguf_vtype_name(etype),
            rd->pos, st_gguf_left(rd));
    }
    if (st_gguf_scalar_bytes(etype) != 0) {
        rd->pos += (size_t) n * esz;
        return ST_OK;
    }

    for (i = 0; i < n; i++) {
        at = rd->pos;
        if (etype == ST_GGUF_STRING) {
            if (st_gguf_left(rd) < 8
                || (len = st_gguf_le64(rd->base + rd->pos))
                   > st_gguf_left(rd) - 8)
            {
                return st_error_set(cx->err, ST_ERR_FORMAT,
                    "gguf: key #%llu '%s': array of %llu strings truncated "
                    "at byte %zu (element %llu, file size %zu)",
                    (unsigned long long) cx->key_no, cx->key,
                    (unsigned long long) n, at, (unsigned long long) i,
                    rd->size);
            }
            rd->pos += 8 + (size_t) len;
        } else {
            st_status rc = st_gguf_skip_value(cx, rd, ST_GGUF_ARRAY,
                                              depth + 1);
            if (rc != ST_OK) {
                return rc;
            }
        }
    }
    return ST_OK;
}


/* Pass 2: decodes a value already validated by st_gguf_skip_value();
 * the only possible failure is running out of memory. */
static st_status
st_gguf_decode_value(st_gguf_ctx *cx, st_gguf_rd *rd, uint32_t type,
    st_gguf_value *v)
{
    const uint8_t  *p = rd->base + rd->pos;
    uint64_t        i, n;
    uint32_t        bits32;
    float           f32;
    st_gguf_value  *items;
    st_status       rc;

    memset(v, 0, sizeof(*v));
    v->type = (st_gguf_vtype) type;

    switch (type) {
    case ST_GGUF_UINT8:   v->v.u64 = p[0]; break;
    case ST_GGUF_BOOL:    v->v.u64 = p[0] != 0; break;
    case ST_GGUF_INT8:    v->v.i64 = (int8_t) p[0]; break;
    case ST_GGUF_UINT16:  v->v.u64 = (uint16_t) (p[0] | p[1] << 8); break;
    case ST_GGUF_INT16:   v->v.i64 = (int16_t) (uint16_t) (p[0] | p[1] << 8);
                          break;
    case ST_GGUF_UINT32:  v->v.u64 = st_gguf_le32(p); break;
    case ST_GGUF_INT32:   v->v.i64 = (int32_t) st_gguf_le32(p); break;
    case ST_GGUF_UINT64:  v->v.u64 = st_gguf_le64(p); break;
    case ST_GGUF_INT64:   v->v.i64 = (int64_t) st_gguf_le64(p); break;
    case ST_GGUF_FLOAT32:
        bits32 = st_gguf_le32(p);
        memcpy(&f32, &bits32, sizeof(f32));
        v->v.f64 = f32;
        break;
    case ST_GGUF_FLOAT64: {
        uint64_t bits64 = st_gguf_le64(p);
        memcpy(&v->v.f64, &bits64, sizeof(double));
        break;
    }
    case ST_GGUF_STRING:
        v->v.str.len = st_gguf_le64(p);
        v->v.str.ptr = (const char *) p + 8;
        rd->pos += 8 + (size_t) v->v.str.len;
        return ST_OK;
    case ST_GGUF_ARRAY:
        v->arr_type = (st_gguf_vtype) st_gguf_le32(p);
        n = st_gguf_le64(p + 4);
        v->arr_n = n;
        rd->pos += ST_GGUF_MIN_ARRAY_BYTES;
        v->arr_data = rd->base + rd->pos;
        if (st_gguf_scalar_bytes(v->arr_type) != 0) {
            rd->pos += (size_t) n * st_gguf_scalar_bytes(v->arr_type);
            return ST_OK;
        }
        if (n == 0) {
            return ST_OK;
        }
        /* n is bounded by the bytes the elements really occupy */
        if (n > SIZE_MAX / sizeof(st_gguf_value)
            || (items = calloc((size_t) n, sizeof(st_gguf_value))) == NULL)
        {
            return st_error_set(cx->err, ST_ERR_NOMEM,
                "gguf: key #%llu '%s': no memory for %llu array items",
                (unsigned long long) cx->key_no, cx->key,
                (unsigned long long) n);
        }
        v->arr_items = items;
        for (i = 0; i < n; i++) {
            rc = st_gguf_decode_value(cx, rd, v->arr_type, &items[i]);
            if (rc != ST_OK) {
                return rc;
            }
        }
        return ST_OK;
    default:
        return st_error_set(cx->err, ST_ERR_INTERNAL,
            "gguf: key #%llu '%s': value type %u passed validation",
            (unsigned long long) cx->key_no, cx->key, type);
    }
    rd->pos += st_gguf_scalar_bytes(type);
    return ST_OK;
}


static void
st_gguf_value_free(st_gguf_value *v)
{
    uint64_t        i;
    st_gguf_value  *items;

    if (v->type != ST_GGUF_ARRAY || v->arr_items == NULL) {
        return;
    }
    items = (st_gguf_value *) v->arr_items;
    for (i = 0; i < v->arr_n; i++) {
        st_gguf_value_free(&items[i]);
    }
    free(items);
    v->arr_items = NULL;
}


/* ---- the file ---- */

static st_status
st_gguf_parse_header(st_gguf *g, st_gguf_rd *rd, uint64_t *n_kv,
    uint64_t *n_tensors, st_error *err)
{
    uint32_t  version;
    size_t    left;

    if (g->size_bytes < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        if (g->size_bytes < 4 && memcmp(g->base, "GGUF", g->size_bytes) == 0)
        {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: file too small (%zu bytes) for a GGUF header",
                g->size_bytes);
        }
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: bad magic (not a GGUF file)");
    }
    if (g->size_bytes < ST_GGUF_HEADER_BYTES) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: file too small (%zu bytes) for the %d-byte GGUF header",
            g->size_bytes, ST_GGUF_HEADER_BYTES);
    }

    version = st_gguf_le32(g->base + 4);
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 16) != 0) {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                "gguf: big-endian GGUF (version %u byte-swapped) not "
                "supported", __builtin_bswap32(version));
        }
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "gguf: version %u not supported (only versions 2 and 3)",
            version);
    }
    g->version = version;

    *n_tensors = st_gguf_le64(g->base + 8);
    *n_kv = st_gguf_le64(g->base + 16);
    rd->pos = ST_GGUF_HEADER_BYTES;
    left = st_gguf_left(rd);

    if (*n_kv > left / ST_GGUF_MIN_KV_BYTES) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: header claims %llu metadata keys but only %zu bytes "
            "follow", (unsigned long long) *n_kv, left);
    }
    if (*n_tensors > left / ST_GGUF_MIN_TENSOR_BYTES
        || *n_kv * ST_GGUF_MIN_KV_BYTES
           + *n_tensors * ST_GGUF_MIN_TENSOR_BYTES > left)
    {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: header claims %llu tensors and %llu keys but only %zu "
            "bytes follow", (unsigned long long) *n_tensors,
            (unsigned long long) *n_kv, left);
    }
    return ST_OK;
}


static st_status
st_gguf_parse_kvs(st_gguf *g, st_gguf_rd *rd, uint64_t n_kv, st_error *err)
{
    st_gguf_ctx     cx;
    st_gguf_rd      rd2;
    st_gguf_kv     *kv;
    uint64_t        i, len, dup;
    uint32_t        type;
    size_t          at;
    st_status       rc;

    cx.err = err;

    for (i = 0; i < n_kv; i++) {
        cx.key_no = i;
        at = rd->pos;
        if (st_gguf_left(rd) < 8) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: key #%llu: truncated at byte %zu (file size %zu)",
                (unsigned long long) i, at, rd->size);
        }
        len = st_gguf_le64(rd->base + rd->pos);
        if (len > st_gguf_left(rd) - 8) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: key #%llu: name of %llu bytes at byte %zu runs past "
                "end of file (size %zu)", (unsigned long long) i,
                (unsigned long long) len, at, rd->size);
        }
        rd->pos += 8;

        if (g->n_kv == g->kv_cap) {
            uint64_t cap = g->kv_cap ? g->kv_cap * 2 : 32;
            if (cap > n_kv) {
                cap = n_kv;
            }
            kv = realloc(g->kvs, (size_t) cap * sizeof(st_gguf_kv));
            if (kv == NULL) {
                return st_error_set(err, ST_ERR_NOMEM,
                    "gguf: no memory for %llu keys", (unsigned long long) cap);
            }
            g->kvs = kv;
            g->kv_cap = cap;
        }
        kv = &g->kvs[g->n_kv];
        memset(kv, 0, sizeof(*kv));
        kv->key.ptr = (const char *) rd->base + rd->pos;
        kv->key.len = len;
        rd->pos += (size_t) len;
        st_gguf_show(cx.key, kv->key.ptr, len);

        dup = st_gguf_kv_lookup(g, kv->key.ptr, (size_t) len);
        if (dup != UINT64_MAX) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: duplicate key '%s' (#%llu and #%llu)", cx.key,
                (unsigned long long) dup, (unsigned long long) i);
        }

        if (st_gguf_left(rd) < 4) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: key #%llu '%s': value type truncated at byte %zu "
                "(file size %zu)", (unsigned long long) i, cx.key, rd->pos,
                rd->size);
        }
        type = st_gguf_le32(rd->base + rd->pos);
        rd->pos += 4;

        rd2 = *rd;
        rc = st_gguf_skip_value(&cx, rd, type, 0);
        if (rc != ST_OK) {
            return rc;
        }
        /* count the kv before decoding so that close() frees whatever a
         * failed decode allocated */
        g->n_kv++;
        rc = st_gguf_decode_value(&cx, &rd2, type, &kv->value);
        if (rc != ST_OK) {
            return rc;
        }
        if (st_gguf_index_add(&g->kv_index, st_gguf_hash(kv->key.ptr,
                                                         (size_t) len), i)
            != 0)
        {
            return st_error_set(err, ST_ERR_NOMEM,
                "gguf: no memory for the key index");
        }
    }
    return ST_OK;
}


static st_status
st_gguf_parse_alignment(st_gguf *g, st_error *err)
{
    const st_gguf_value  *v = st_gguf_find(g, "general.alignment");

    g->alignment = ST_GGUF_DEFAULT_ALIGNMENT;
    if (v == NULL) {
        return ST_OK;
    }
    if (v->type != ST_GGUF_UINT32) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: general.alignment is a %s, expected u32",
            st_gguf_vtype_name(v->type));
    }
    if (!st_gguf_is_pow2(v->v.u64)) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: general.alignment %llu is not a power of two",
            (unsigned long long) v->v.u64);
    }
    g->alignment = (uint32_t) v->v.u64;
    return ST_OK;
}


/* Reads one tensor info into t (shape, type and size; data is placed
 * later, once the data section's start is known). */
static st_status
st_gguf_parse_tensor_info(st_gguf *g, st_gguf_rd *rd, uint64_t i,
    st_gguf_tensor *t, st_error *err)
{
    const st_type_traits       *lay;
    uint64_t                    len, nelem, nblocks, dup;
    uint32_t                    d, type;
    size_t                      at = rd->pos;
    char                        show[ST_GGUF_SHOW_MAX + 4];

    if (st_gguf_left(rd) < 8) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor #%llu: truncated at byte %zu (file size %zu)",
            (unsigned long long) i, at, rd->size);
    }
    len = st_gguf_le64(rd->base + rd->pos);
    if (len == 0 || len >= ST_GGUF_NAME_MAX) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor #%llu: name length %llu at byte %zu (must be "
            "1..%d)", (unsigned long long) i, (unsigned long long) len, at,
            ST_GGUF_NAME_MAX - 1);
    }
    if (len > st_gguf_left(rd) - 8) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor #%llu: name at byte %zu runs past end of file "
            "(size %zu)", (unsigned long long) i, at, rd->size);
    }
    rd->pos += 8;
    memcpy(t->name, rd->base + rd->pos, (size_t) len);
    t->name[len] = '\0';
    rd->pos += (size_t) len;
    if (strlen(t->name) != len) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor #%llu: name '%s' contains a NUL byte",
            (unsigned long long) i, st_gguf_show(show, t->name, strlen(t->name)));
    }
    st_gguf_show(show, t->name, len);

    dup = st_gguf_tensor_lookup(g, t->name, (size_t) len);
    if (dup != UINT64_MAX) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: duplicate tensor name '%s' (#%llu and #%llu)", show,
            (unsigned long long) dup, (unsigned long long) i);
    }

    if (st_gguf_left(rd) < 4) {
        goto truncated;
    }
    t->n_dims = st_gguf_le32(rd->base + rd->pos);
    rd->pos += 4;
    if (t->n_dims < 1 || t->n_dims > ST_GGUF_MAX_DIMS) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor '%s': n_dims %u (must be 1..%d)", show, t->n_dims,
            ST_GGUF_MAX_DIMS);
    }
    if (st_gguf_left(rd) < (size_t) t->n_dims * 8) {
        goto truncated;
    }
    nelem = 1;
    for (d = 0; d < ST_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
    }
    for (d = 0; d < t->n_dims; d++) {
        t->ne[d] = st_gguf_le64(rd->base + rd->pos);
        rd->pos += 8;
        if (t->ne[d] == 0) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: tensor '%s': ne[%u] is 0", show, d);
        }
        /* ggml counts elements in int64_t */
        if (t->ne[d] > (uint64_t) INT64_MAX / nelem) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: tensor '%s': element count overflows (ne[%u] = %llu)",
                show, d, (unsigned long long) t->ne[d]);
        }
        nelem *= t->ne[d];
    }

    if (st_gguf_left(rd) < 4 + 8) {
        goto truncated;
    }
    type = st_gguf_le32(rd->base + rd->pos);
    rd->pos += 4;
    t->offset = st_gguf_le64(rd->base + rd->pos);
    rd->pos += 8;

    /* quant_types.c knows the block layout of every current ggml type, also
     * those the engine cannot compute with, so any valid file sizes */
    lay = st_type_traits_get(type);
    if (lay == NULL || lay->block_size == 0 || lay->type_size == 0) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "gguf: tensor '%s': unknown tensor type id %u", show, type);
    }
    t->type = (st_type) type;
    if (t->ne[0] % lay->block_size != 0) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor '%s': row length %llu is not a multiple of the "
            "%s block size %u", show, (unsigned long long) t->ne[0],
            lay->name, lay->block_size);
    }
    nblocks = nelem / lay->block_size;
    if (nblocks > UINT64_MAX / lay->type_size) {
        return st_error_set(err, ST_ERR_FORMAT,
            "gguf: tensor '%s': byte size overflows", show);
    }
    t->nbytes = nblocks * lay->type_size;
    return ST_OK;

truncated:
    return st_error_set(err, ST_ERR_FORMAT,
        "gguf: tensor '%s': info truncated at byte %zu (file size %zu)",
        show, rd->pos, rd->size);
}


static st_status
st_gguf_parse_tensors(st_gguf *g, st_gguf_rd *rd, uint64_t n_tensors,
    st_error *err)
{
    st_gguf_tensor  *t;
    uint64_t         i, data_size;
    size_t           pad;
    char             show[ST_GGUF_SHOW_MAX + 4];
    st_status        rc;

    for (i = 0; i < n_tensors; i++) {
        if (g->n_tensors == g->tensor_cap) {
            uint64_t cap = g->tensor_cap ? g->tensor_cap * 2 : 64;
            if (cap > n_tensors) {
                cap = n_tensors;
            }
            t = realloc(g->tensors, (size_t) cap * sizeof(st_gguf_tensor));
            if (t == NULL) {
                return st_error_set(err, ST_ERR_NOMEM,
                    "gguf: no memory for %llu tensor infos",
                    (unsigned long long) cap);
            }
            g->tensors = t;
            g->tensor_cap = cap;
        }
        t = &g->tensors[g->n_tensors];
        memset(t, 0, sizeof(*t));
        rc = st_gguf_parse_tensor_info(g, rd, i, t, err);
        if (rc != ST_OK) {
            return rc;
        }
        g->n_tensors++;
        if (st_gguf_index_add(&g->tensor_index,
                              st_gguf_hash(t->name, strlen(t->name)), i) != 0)
        {
            return st_error_set(err, ST_ERR_NOMEM,
                "gguf: no memory for the tensor index");
        }
    }

    /* The data section starts at the next multiple of the alignment. It
     * may lie past the end when there is no tensor data at all. */
    pad = (g->alignment - rd->pos % g->alignment) % g->alignment;
    g->data_offset = rd->pos + pad;
    data_size = g->data_offset < rd->size ? rd->size - g->data_offset : 0;

    for (i = 0; i < g->n_tensors; i++) {
        t = &g->tensors[i];
        st_gguf_show(show, t->name, strlen(t->name));
        if (t->offset % g->alignment != 0) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: tensor '%s': offset %llu is not a multiple of the "
                "alignment %u", show, (unsigned long long) t->offset,
                g->alignment);
        }
        if (t->offset > data_size || t->nbytes > data_size - t->offset) {
            return st_error_set(err, ST_ERR_FORMAT,
                "gguf: tensor '%s': data [offset %llu, %llu bytes] past end "
                "of file (size %zu)", show, (unsigned long long) t->offset,
                (unsigned long long) t->nbytes, rd->size);
        }
        t->data = rd->base + g->data_offset + (size_t) t->offset;
    }
    return ST_OK;
}


static st_status
st_gguf_parse(st_gguf *g, st_error *err)
{
    st_gguf_rd  rd = { g->base, g->size_bytes, 0 };
    uint64_t    n_kv = 0, n_tensors = 0;
    st_status   rc;

    rc = st_gguf_parse_header(g, &rd, &n_kv, &n_tensors, err);
    if (rc != ST_OK) {
        return rc;
    }
    rc = st_gguf_parse_kvs(g, &rd, n_kv, err);
    if (rc != ST_OK) {
        return rc;
    }
    rc = st_gguf_parse_alignment(g, err);
    if (rc != ST_OK) {
        return rc;
    }
    return st_gguf_parse_tensors(g, &rd, n_tensors, err);
}


static int
st_gguf_hex_ok(const char *s)
{
    size_t  i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
              || (s[i] >= 'A' && s[i] <= 'F')))
        {
            return 0;
        }
    }
    return i == 2 * ST_SHA256_DIGEST_BYTES;
}


st_status
st_gguf_open_memory(st_gguf **out, const void *data, size_t size,
    st_error *err)
{
    st_gguf    *g;
    st_status   rc;

    if (out == NULL || (data == NULL && size != 0)) {
        return st_error_set(err, ST_ERR_INVALID,
            "gguf: st_gguf_open_memory: bad arguments");
    }
    *out = NULL;
    g = calloc(1, sizeof(st_gguf));
    if (g == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "gguf: no memory");
    }
    /* a zero-length image still needs a readable base for the magic
     * comparison; any non-NULL pointer will do as nothing is read */
    g->base = data != NULL ? data : (const uint8_t *) "";
    g->size_bytes = size;

    rc = st_gguf_parse(g, err);
    if (rc != ST_OK) {
        st_gguf_close(g);
        return rc;
    }
    *out = g;
    return ST_OK;
}


st_status
st_gguf_open(st_gguf **out, const char *path, const char *sha256_hex,
    st_error *err)
{
    int            fd;
    struct stat    st;
    void          *map;
    size_t         size;
    st_gguf       *g;
    st_status      rc;
    st_sha256_ctx  sha;
    uint8_t        digest[ST_SHA256_DIGEST_BYTES];
    char           actual[ST_SHA256_HEX_BYTES];

    if (out == NULL || path == NULL) {
        return st_error_set(err, ST_ERR_INVALID,
            "gguf: st_gguf_open: bad arguments");
    }
    *out = NULL;
    if (sha256_hex != NULL && sha256_hex[0] != '\0'
        && !st_gguf_hex_ok(sha256_hex))
    {
        return st_error_set(err, ST_ERR_INVALID,
            "gguf: expected sha256 for '%s' is not 64 hex digits", path);
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return st_error_set(err, ST_ERR_IO, "gguf: open('%s') failed: %s",
                            path, strerror(errno));
    }
    if (fstat(fd, &st) == -1) {
        rc = st_error_set(err, ST_ERR_IO, "gguf: fstat('%s') failed: %s",
                          path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return st_error_set(err, ST_ERR_IO, "gguf: '%s' is not a regular file",
                            path);
    }
    if (st.st_size == 0) {
        close(fd);
        return st_error_set(err, ST_ERR_FORMAT, "gguf: '%s' is empty", path);
    }
    if ((uint64_t) st.st_size > SIZE_MAX) {
        close(fd);
        return st_error_set(err, ST_ERR_IO, "gguf: '%s' too large to map",
                            path);
    }
    size = (size_t) st.st_size;
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = st_error_set(err, ST_ERR_IO, "gguf: mmap('%s', %zu bytes) "
                          "failed: %s", path, size, strerror(errno));
        close(fd);
        return rc;
    }
    /* the mapping keeps the file referenced */
    close(fd);

    if (sha256_hex != NULL && sha256_hex[0] != '\0') {
        st_sha256_init(&sha);
        st_sha256_update(&sha, map, size);
        st_sha256_final(&sha, digest);
        st_sha256_hex(digest, actual);
        if (strcasecmp(actual, sha256_hex) != 0) {
            munmap(map, size);
            return st_error_set(err, ST_ERR_DIGEST,
                "gguf: sha256 mismatch: expected %s, actual %s (%s)",
                sha256_hex, actual, path);
        }
    }

    g = calloc(1, sizeof(st_gguf));
    if (g == NULL) {
        munmap(map, size);
        return st_error_set(err, ST_ERR_NOMEM, "gguf: no memory");
    }
    g->map = map;
    g->map_bytes = size;
    g->base = map;
    g->size_bytes = size;

    rc = st_gguf_parse(g, err);
    if (rc != ST_OK) {
        st_gguf_close(g);
        return rc;
    }
    *out = g;
    return ST_OK;
}


void
st_gguf_close(st_gguf *g)
{
    uint64_t  i;

    if (g == NULL) {
        return;
    }
    for (i = 0; i < g->n_kv; i++) {
        st_gguf_value_free(&g->kvs[i].value);
    }
    free(g->kvs);
    free(g->tensors);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    if (g->map != NULL) {
        munmap(g->map, g->map_bytes);
    }
    free(g);
}
