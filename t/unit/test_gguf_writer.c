/*
 * GGUF writer tests: a file with every metadata type and tensors of
 * several types is written to a temp file, read back with the gguf.h
 * reader and compared field by field; a copy made through
 * st_gguf_writer_add_value() must be byte-identical; misuse must come
 * back as errors (sticky), never crashes, and leave no partial file.
 */
#include "tap.h"

#include "gguf/gguf.h"
#include "gguf_writer.h"
#include "quantize.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>


static int
make_temp(char *path, size_t cap, const char *tag)
{
    const char *dir = getenv("TMPDIR");
    int         fd;

    snprintf(path, cap, "%s/st-gguf-writer-%s-XXXXXX",
             dir && dir[0] ? dir : "/tmp", tag);
    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}


static int
file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}


static uint8_t *
read_all(const char *path, size_t *n)
{
    FILE    *fp = fopen(path, "rb");
    uint8_t *p = NULL;
    long     len;

    *n = 0;
    if (fp == NULL) {
        return NULL;
    }
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0
        && fseek(fp, 0, SEEK_SET) == 0)
    {
        p = malloc(len ? (size_t) len : 1);
        if (p != NULL && fread(p, 1, (size_t) len, fp) == (size_t) len) {
            *n = (size_t) len;
        } else {
            free(p);
            p = NULL;
        }
    }
    fclose(fp);
    return p;
}


static int
str_eq(st_gguf_str s, const char *want, size_t want_len)
{
    return s.len == want_len && (want_len == 0
                                 || memcmp(s.ptr, want, want_len) == 0);
}


/* ---- the sample file ---- */

enum { N_TENSORS = 6 };

typedef struct {
    const char *name;
    st_type     type;
    uint32_t    n_dims;
    uint64_t    ne[4];
} tensor_spec;

static const tensor_spec specs[N_TENSORS] = {
    { "tok.f32",           ST_TYPE_F32,  2, { 7, 3, 1, 1 } },
    { "blk.0.f16",         ST_TYPE_F16,  2, { 64, 2, 1, 1 } },
    { "blk.0.q8_0",        ST_TYPE_Q8_0, 2, { 64, 3, 1, 1 } },
    { "blk.0.q4_0",        ST_TYPE_Q4_0, 3, { 32, 1, 2, 1 } },
    { "blk.1.q4_K",        ST_TYPE_Q4_K, 4, { 256, 2, 1, 1 } },
    { "bf16.vec",          ST_TYPE_BF16, 1, { 5, 1, 1, 1 } },
};

static const uint8_t  arr_u8[3]  = { 0, 7, 255 };
static const int8_t   arr_i8[3]  = { -128, 0, 127 };
static const uint16_t arr_u16[2] = { 1, 65535 };
static const int16_t  arr_i16[2] = { -32768, 32767 };
static const uint32_t arr_u32[3] = { 0, 1, 4294967295u };
static const int32_t  arr_i32[3] = { -5, 0, 2147483647 };
static const float    arr_f32[3] = { 1.5f, -0.25f, 1e-6f };
static const uint8_t  arr_bool[4] = { 1, 0, 1, 1 };
static const uint64_t arr_u64[2] = { 0, UINT64_MAX };
static const int64_t  arr_i64[2] = { INT64_MIN, 42 };
static const double   arr_f64[2] = { 3.141592653589793, -1e300 };
static const char    *arr_str[4] = { "hello", "", "\xe2\x96\x81world", "x" };


/* Fills tensor i's data deterministically (any bytes are valid for the
 * writer; F32 gets real floats and Q8_0 real quantized rows). */
static uint8_t *
make_data(int i, uint64_t nbytes)
{
    uint8_t *p = malloc(nbytes);
    uint64_t k;

    if (p == NULL) {
        return NULL;
    }
    if (specs[i].type == ST_TYPE_F32) {
        float *f = (float *) p;
        for (k = 0; k < nbytes / 4; k++) {
            f[k] = (float) k * 0.5f - 3.0f;
        }
    } else if (specs[i].type == ST_TYPE_Q8_0) {
        float x[64];
        for (k = 0; k < 64; k++) {
            x[k] = sinf((float) k);
        }
        for (k = 0; k < specs[i].ne[1]; k++) {
            st_quantize_row(ST_TYPE_Q8_0, x, p + k * 68, 64);
        }
    } else {
        for (k = 0; k < nbytes; k++) {
            p[k] = (uint8_t) (k * 31 + (uint64_t) i * 7 + 1);
        }
    }
    return p;
}


static st_status
add_all_kv(st_gguf_writer *w, st_error *err)
{
    st_gguf_writer_add_str(w, "general.architecture", "llama", err);
    st_gguf_writer_add_u32(w, "general.alignment", 64, err);
    st_gguf_writer_add_u8(w, "t.u8", 200, err);
    st_gguf_writer_add_i8(w, "t.i8", -100, err);
    st_gguf_writer_add_u16(w, "t.u16", 60000, err);
    st_gguf_writer_add_i16(w, "t.i16", -30000, err);
    st_gguf_writer_add_u32(w, "t.u32", 4000000000u, err);
    st_gguf_writer_add_i32(w, "t.i32", -2000000000, err);
    st_gguf_writer_add_f32(w, "t.f32", 1e-6f, err);
    st_gguf_writer_add_bool(w, "t.bool", 1, err);
    st_gguf_writer_add_bool(w, "t.bool0", 0, err);
    st_gguf_writer_add_u64(w, "t.u64", UINT64_MAX - 1, err);
    st_gguf_writer_add_i64(w, "t.i64", INT64_MIN + 1, err);
    st_gguf_writer_add_f64(w, "t.f64", -2.5e-300, err);
    st_gguf_writer_add_strn(w, "t.str_nul", "a\0b", 3, err);
    st_gguf_writer_add_str(w, "t.str_empty", "", err);
    st_gguf_writer_add_arr(w, "a.u8", ST_GGUF_UINT8, arr_u8, 3, err);
    st_gguf_writer_add_arr(w, "a.i8", ST_GGUF_INT8, arr_i8, 3, err);
    st_gguf_writer_add_arr(w, "a.u16", ST_GGUF_UINT16, arr_u16, 2, err);
    st_gguf_writer_add_arr(w, "a.i16", ST_GGUF_INT16, arr_i16, 2, err);
    st_gguf_writer_add_arr(w, "a.u32", ST_GGUF_UINT32, arr_u32, 3, err);
    st_gguf_writer_add_arr(w, "a.i32", ST_GGUF_INT32, arr_i32, 3, err);
    st_gguf_writer_add_arr(w, "a.f32", ST_GGUF_FLOAT32, arr_f32, 3, err);
    st_gguf_writer_add_arr(w, "a.bool", ST_GGUF_BOOL, arr_bool, 4, err);
    st_gguf_writer_add_arr(w, "a.u64", ST_GGUF_UINT64, arr_u64, 2, err);
    st_gguf_writer_add_arr(w, "a.i64", ST_GGUF_INT64, arr_i64, 2, err);
    st_gguf_writer_add_arr(w, "a.f64", ST_GGUF_FLOAT64, arr_f64, 2, err);
    st_gguf_writer_add_arr(w, "a.empty", ST_GGUF_INT32, NULL, 0, err);
    return st_gguf_writer_add_arr_str(w, "a.str", arr_str, NULL, 4, err);
}


static int
write_sample(const char *path, uint64_t *file_bytes)
{
    st_gguf_writer *w = NULL;
    st_error        err = {0};
    st_status       rc;
    uint8_t        *data;
    uint64_t        nbytes, off;
    int             i, good = 1;

    if (st_gguf_writer_create(&w, &err) != ST_OK) {
        diag("create: %s", err.msg);
        return 0;
    }
    rc = add_all_kv(w, &err);
    for (i = 0; i < N_TENSORS && rc == ST_OK; i++) {
        rc = st_gguf_writer_add_tensor(w, specs[i].name, specs[i].type,
                                       specs[i].n_dims, specs[i].ne, &err);
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_begin_data(w, path, &err);
    }
    for (i = 0; i < N_TENSORS && rc == ST_OK; i++) {
        nbytes = st_gguf_writer_tensor_bytes(w, (uint64_t) i);
        data = make_data(i, nbytes);
        if (data == NULL) {
            rc = ST_ERR_NOMEM;
            break;
        }
        /* Odd-sized chunks for some tensors: streaming must not care. */
        for (off = 0; off < nbytes && rc == ST_OK; ) {
            uint64_t n = (i % 2) ? 13 : nbytes;
            if (n > nbytes - off) {
                n = nbytes - off;
            }
            rc = st_gguf_writer_write(w, data + off, (size_t) n, &err);
            off += n;
        }
        free(data);
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_finish(w, &err);
    }
    if (rc != ST_OK) {
        diag("write_sample: %s", err.msg);
        good = 0;
    }
    *file_bytes = st_gguf_writer_file_bytes(w);
    st_gguf_writer_free(w);
    return good;
}


static int
arr_num_eq(const st_gguf *g, const char *key, st_gguf_vtype elem,
    const void *want, uint64_t n, size_t es)
{
    const st_gguf_value *v = NULL;

    if (st_gguf_get_arr(g, key, elem, &v, NULL) != ST_OK || v->arr_n != n) {
        return 0;
    }
    /* The reader's element bytes are little-endian, as is this host. */
    return n == 0 || memcmp(v->arr_data, want, n * es) == 0;
}


static void
check_sample(const char *path, uint64_t file_bytes)
{
    st_gguf             *g = NULL;
    st_error             err = {0};
    const st_gguf_value *v;
    const st_gguf_tensor *t;
    st_gguf_str          s;
    uint8_t             *data;
    int                  i, good;
    uint32_t             u32;
    float                f32;

    if (!ok(st_gguf_open(&g, path, NULL, &err) == ST_OK,
            "sample reads back (%s)", err.msg))
    {
        return;
    }
    ok(st_gguf_version(g) == 3, "version 3");
    ok(st_gguf_file_size(g) == file_bytes, "file size %zu == writer's %llu",
       st_gguf_file_size(g), (unsigned long long) file_bytes);
    ok(st_gguf_n_kv(g) == 29, "29 kv (%llu)",
       (unsigned long long) st_gguf_n_kv(g));
    ok(st_gguf_alignment(g) == 64 && st_gguf_data_offset(g) % 64 == 0,
       "alignment 64, data offset %zu aligned", st_gguf_data_offset(g));

    ok(st_gguf_get_str(g, "general.architecture", &s, NULL) == ST_OK
       && str_eq(s, "llama", 5), "string");
    v = st_gguf_find(g, "t.u8");
    ok(v && v->type == ST_GGUF_UINT8 && v->v.u64 == 200, "u8");
    v = st_gguf_find(g, "t.i8");
    ok(v && v->type == ST_GGUF_INT8 && v->v.i64 == -100, "i8");
    v = st_gguf_find(g, "t.u16");
    ok(v && v->type == ST_GGUF_UINT16 && v->v.u64 == 60000, "u16");
    v = st_gguf_find(g, "t.i16");
    ok(v && v->type == ST_GGUF_INT16 && v->v.i64 == -30000, "i16");
    ok(st_gguf_get_u32(g, "t.u32", &u32, NULL) == ST_OK && u32 == 4000000000u
       && st_gguf_find(g, "t.u32")->type == ST_GGUF_UINT32, "u32");
    v = st_gguf_find(g, "t.i32");
    ok(v && v->type == ST_GGUF_INT32 && v->v.i64 == -2000000000, "i32");
    ok(st_gguf_get_f32(g, "t.f32", &f32, NULL) == ST_OK && f32 == 1e-6f
       && st_gguf_find(g, "t.f32")->type == ST_GGUF_FLOAT32, "f32");
    v = st_gguf_find(g, "t.bool");
    ok(v && v->type == ST_GGUF_BOOL && v->v.u64 == 1, "bool true");
    v = st_gguf_find(g, "t.bool0");
    ok(v && v->type == ST_GGUF_BOOL && v->v.u64 == 0, "bool false");
    v = st_gguf_find(g, "t.u64");
    ok(v && v->type == ST_GGUF_UINT64 && v->v.u64 == UINT64_MAX - 1, "u64");
    v = st_gguf_find(g, "t.i64");
    ok(v && v->type == ST_GGUF_INT64 && v->v.i64 == INT64_MIN + 1, "i64");
    v = st_gguf_find(g, "t.f64");
    ok(v && v->type == ST_GGUF_FLOAT64 && v->v.f64 == -2.5e-300, "f64");
    v = st_gguf_find(g, "t.str_nul");
    ok(v && v->type == ST_GGUF_STRING && str_eq(v->v.str, "a\0b", 3),
       "string with a NUL byte");
    v = st_gguf_find(g, "t.str_empty");
    ok(v && v->type == ST_GGUF_STRING && v->v.str.len == 0, "empty string");

    ok(arr_num_eq(g, "a.u8", ST_GGUF_UINT8, arr_u8, 3, 1), "u8 array");
    ok(arr_num_eq(g, "a.i8", ST_GGUF_INT8, arr_i8, 3, 1), "i8 array");
    ok(arr_num_eq(g, "a.u16", ST_GGUF_UINT16, arr_u16, 2, 2), "u16 array");
    ok(arr_num_eq(g, "a.i16", ST_GGUF_INT16, arr_i16, 2, 2), "i16 array");
    ok(arr_num_eq(g, "a.u32", ST_GGUF_UINT32, arr_u32, 3, 4), "u32 array");
    ok(arr_num_eq(g, "a.i32", ST_GGUF_INT32, arr_i32, 3, 4), "i32 array");
    ok(arr_num_eq(g, "a.f32", ST_GGUF_FLOAT32, arr_f32, 3, 4), "f32 array");
    ok(arr_num_eq(g, "a.bool", ST_GGUF_BOOL, arr_bool, 4, 1), "bool array");
    ok(arr_num_eq(g, "a.u64", ST_GGUF_UINT64, arr_u64, 2, 8), "u64 array");
    ok(arr_num_eq(g, "a.i64", ST_GGUF_INT64, arr_i64, 2, 8), "i64 array");
    ok(arr_num_eq(g, "a.f64", ST_GGUF_FLOAT64, arr_f64, 2, 8), "f64 array");
    ok(arr_num_eq(g, "a.empty", ST_GGUF_INT32, NULL, 0, 4), "empty array");
    good = st_gguf_get_arr(g, "a.str", ST_GGUF_STRING, &v, NULL) == ST_OK
           && v->arr_n == 4;
    for (i = 0; good && i < 4; i++) {
        good = str_eq(st_gguf_arr_str(v, (uint64_t) i), arr_str[i],
                      strlen(arr_str[i]));
    }
    ok(good, "array of strings (incl. empty and UTF-8)");

    ok(st_gguf_n_tensors(g) == N_TENSORS, "%d tensors", N_TENSORS);
    for (i = 0; i < N_TENSORS; i++) {
        uint64_t nbytes;
        uint32_t d;

        t = st_gguf_find_tensor(g, specs[i].name);
        if (!ok(t != NULL && t == st_gguf_tensor_at(g, (uint64_t) i),
                "tensor %s found in order", specs[i].name))
        {
            continue;
        }
        good = t->type == specs[i].type && t->n_dims == specs[i].n_dims;
        for (d = 0; d < 4; d++) {
            good = good && t->ne[d] == specs[i].ne[d];
        }
        ok(good, "%s: type and shape", specs[i].name);
        nbytes = st_row_bytes(specs[i].type, specs[i].ne[0])
                 * specs[i].ne[1] * specs[i].ne[2] * specs[i].ne[3];
        ok(t->nbytes == nbytes && t->offset % 64 == 0,
           "%s: %llu bytes at aligned offset %llu", specs[i].name,
           (unsigned long long) t->nbytes, (unsigned long long) t->offset);
        data = make_data(i, nbytes);
        ok(data != NULL && memcmp(t->data, data, nbytes) == 0,
           "%s: data round-trips", specs[i].name);
        free(data);
    }
    t = st_gguf_find_tensor(g, "tok.f32");
    ok(t && ((const float *) t->data)[20] == 7.0f, "f32 data readable");
    st_gguf_close(g);
}


/* Copies every kv and tensor of src through add_value: the file must come
 * out byte-identical. */
static void
check_copy(const char *src, const char *dst)
{
    st_gguf         *g = NULL;
    st_gguf_writer  *w = NULL;
    st_error         err = {0};
    st_status        rc;
    const st_gguf_kv *kv;
    const st_gguf_tensor *t;
    uint64_t         i;
    uint8_t         *a, *b;
    size_t           na, nb;

    if (!ok(st_gguf_open(&g, src, NULL, &err) == ST_OK, "reopen (%s)",
            err.msg))
    {
        return;
    }
    rc = st_gguf_writer_create(&w, &err);
    for (i = 0; rc == ST_OK && i < st_gguf_n_kv(g); i++) {
        kv = st_gguf_kv_at(g, i);
        rc = st_gguf_writer_add_value(w, kv->key.ptr, (size_t) kv->key.len,
                                      &kv->value, &err);
    }
    for (i = 0; rc == ST_OK && i < st_gguf_n_tensors(g); i++) {
        t = st_gguf_tensor_at(g, i);
        rc = st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
                                       &err);
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_begin_data(w, dst, &err);
    }
    for (i = 0; rc == ST_OK && i < st_gguf_n_tensors(g); i++) {
        t = st_gguf_tensor_at(g, i);
        rc = st_gguf_writer_write(w, t->data, (size_t) t->nbytes, &err);
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_finish(w, &err);
    }
    ok(rc == ST_OK, "copy through add_value (%s)", err.msg);
    st_gguf_writer_free(w);
    st_gguf_close(g);

    a = read_all(src, &na);
    b = read_all(dst, &nb);
    ok(a && b && na == nb && memcmp(a, b, na) == 0,
       "copy is byte-identical (%zu vs %zu bytes)", na, nb);
    free(a);
    free(b);
}


/* The tokenizer of a shipped model copied key by key keeps its values. */
static void
check_model_vocab_copy(const char *dst)
{
    char             path[1024];
    st_gguf         *g = NULL, *h = NULL;
    st_gguf_writer  *w = NULL;
    st_error         err = {0};
    st_status        rc;
    const st_gguf_kv *kv;
    const st_gguf_value *a, *b;
    uint64_t         i, n_copied = 0;
    int              good;

    snprintf(path, sizeof(path), "%s/models/stories260K.gguf",
             tap_root_dir());
    if (st_gguf_open(&g, path, NULL, &err) != ST_OK) {
        skip("models/stories260K.gguf not readable: %s", err.msg);
        return;
    }
    rc = st_gguf_writer_create(&w, &err);
    for (i = 0; rc == ST_OK && i < st_gguf_n_kv(g); i++) {
        kv = st_gguf_kv_at(g, i);
        if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0) {
            rc = st_gguf_writer_add_value(w, kv->key.ptr,
                                          (size_t) kv->key.len, &kv->value,
                                          &err);
            n_copied++;
        }
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_begin_data(w, dst, &err);
    }
    if (rc == ST_OK) {
        rc = st_gguf_writer_finish(w, &err);
    }
    st_gguf_writer_free(w);
    if (!ok(rc == ST_OK && st_gguf_open(&h, dst, NULL, &err) == ST_OK,
            "vocab-only copy of stories260K writes and reads (%s)", err.msg))
    {
        st_gguf_close(g);
        return;
    }
    good = st_gguf_n_kv(h) == n_copied && n_copied > 3;
    if (good) {
        good = st_gguf_get_arr(g, "tokenizer.ggml.tokens", ST_GGUF_STRING,
                               &a, NULL) == ST_OK
               && st_gguf_get_arr(h, "tokenizer.ggml.tokens", ST_GGUF_STRING,
                                  &b, NULL) == ST_OK
               && a->arr_n == b->arr_n;
        for (i = 0; good && i < a->arr_n; i++) {
            st_gguf_str x = st_gguf_arr_str(a, i), y = st_gguf_arr_str(b, i);
            good = x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0;
        }
    }
    if (good) {
        good = st_gguf_get_arr(g, "tokenizer.ggml.scores", ST_GGUF_FLOAT32,
                               &a, NULL) == ST_OK
               && st_gguf_get_arr(h, "tokenizer.ggml.scores", ST_GGUF_FLOAT32,
                                  &b, NULL) == ST_OK
               && a->arr_n == b->arr_n
               && memcmp(a->arr_data, b->arr_data, a->arr_n * 4) == 0;
    }
    ok(good, "%llu tokenizer keys copied with their values",
       (unsigned long long) n_copied);
    st_gguf_close(h);
    st_gguf_close(g);
}


static void
check_errors(const char *path)
{
    st_gguf_writer *w = NULL;
    st_error        err = {0};
    uint64_t        ne[4] = { 64, 2, 1, 1 }, bad_ne[4] = { 33, 1, 1, 1 };
    uint8_t         buf[256] = {0};
    char            long_name[80];
    st_status       rc;

    ok(st_gguf_writer_add_u32(NULL, "k", 1, &err) == ST_ERR_INVALID,
       "NULL writer is an error");

    /* Each misuse on a fresh writer. */
    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_u32(w, "a", 1, NULL);
    rc = st_gguf_writer_add_i32(w, "a", 2, &err);
    ok(rc == ST_ERR_INVALID && strstr(err.msg, "duplicate key 'a'") != NULL,
       "duplicate key: %s", err.msg);
    ok(st_gguf_writer_add_u32(w, "b", 1, &err) == ST_ERR_INVALID
       && st_gguf_writer_error(w)->code == ST_ERR_INVALID,
       "errors are sticky");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_u32(w, "general.alignment", 48, &err)
       == ST_ERR_INVALID, "alignment 48 refused: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_str(w, "", "x", &err) == ST_ERR_INVALID,
       "empty key refused");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_arr(w, "s", ST_GGUF_STRING, buf, 1, &err)
       == ST_ERR_INVALID, "add_arr of strings refused: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_tensor(w, "q", ST_TYPE_Q8_0, 1, bad_ne, &err)
       == ST_ERR_INVALID, "row not a block multiple: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_tensor(w, "q", ST_TYPE_F32, 5, ne, &err)
       == ST_ERR_INVALID, "5 dims refused");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_add_tensor(w, "q", (st_type) 4, 2, ne, &err)
       == ST_ERR_INVALID, "type without layout refused: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ok(st_gguf_writer_add_tensor(w, long_name, ST_TYPE_F32, 2, ne, &err)
       == ST_ERR_INVALID, "80-byte tensor name refused");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_tensor(w, "t", ST_TYPE_F32, 2, ne, NULL);
    ok(st_gguf_writer_add_tensor(w, "t", ST_TYPE_F16, 2, ne, &err)
       == ST_ERR_INVALID, "duplicate tensor refused: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_write(w, buf, 4, &err) == ST_ERR_INVALID,
       "data before begin_data refused");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    ok(st_gguf_writer_begin_data(w, "/nonexistent-dir/x/y.gguf", &err)
       == ST_ERR_IO, "unwritable path: %s", err.msg);
    st_gguf_writer_free(w);

    /* Too much data for a tensor; then an incomplete file is removed. */
    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_tensor(w, "t", ST_TYPE_F16, 1, ne, NULL); /* 128 B */
    rc = st_gguf_writer_begin_data(w, path, &err);
    ok(rc == ST_OK && file_exists(path), "begin_data creates the file");
    ok(st_gguf_writer_add_u32(w, "late", 1, &err) == ST_ERR_INVALID,
       "metadata after begin_data refused");
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_tensor(w, "t", ST_TYPE_F16, 1, ne, NULL);
    st_gguf_writer_begin_data(w, path, NULL);
    ok(st_gguf_writer_write(w, buf, 200, &err) == ST_ERR_INVALID,
       "writing past a tensor's end refused: %s", err.msg);
    st_gguf_writer_free(w);

    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_tensor(w, "t", ST_TYPE_F16, 1, ne, NULL);
    st_gguf_writer_begin_data(w, path, NULL);
    st_gguf_writer_write(w, buf, 100, NULL);
    ok(st_gguf_writer_finish(w, &err) == ST_ERR_INVALID,
       "finish with missing data refused: %s", err.msg);
    st_gguf_writer_free(w);
    ok(!file_exists(path), "incomplete file removed by free");

    st_gguf_writer_create(&w, NULL);
    st_gguf_writer_add_tensor(w, "t", ST_TYPE_F16, 1, ne, NULL);
    st_gguf_writer_begin_data(w, path, NULL);
    st_gguf_writer_write(w, buf, 128, NULL);
    ok(st_gguf_writer_write(w, buf, 1, &err) == ST_ERR_INVALID,
       "data after the last tensor refused");
    st_gguf_writer_free(w);
}


int
main(void)
{
    char     p1[512], p2[512], p3[512], p4[512];
    uint64_t file_bytes = 0;
    int      good;

    (void) tap_shared_dir;      /* everything here is made or shipped */
    if (make_temp(p1, sizeof(p1), "a") != 0
        || make_temp(p2, sizeof(p2), "b") != 0
        || make_temp(p3, sizeof(p3), "c") != 0
        || make_temp(p4, sizeof(p4), "d") != 0)
    {
        ok(0, "temp files");
        return done_testing();
    }
    good = write_sample(p1, &file_bytes);
    if (ok(good, "sample written (%llu bytes)",
           (unsigned long long) file_bytes))
    {
        check_sample(p1, file_bytes);
        check_copy(p1, p2);
    }
    check_model_vocab_copy(p3);
    check_errors(p4);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    unlink(p4);
    return done_testing();
}
