/*
 * GGUF loader and SHA-256 tests: a valid image built here and read back,
 * a table of corruptions (each must fail cleanly with a message), every
 * truncation, a seeded mutation fuzz loop, and the shipped models.
 */
#include "tap.h"

#include "gguf/gguf.h"
#include "base/sha256.h"

#include <ctype.h>
#include <dirent.h>
#include <stdint.h>


/* ---- a small GGUF writer ---- */

typedef struct {
    uint8_t  *p;
    size_t    n;
    size_t    cap;
    int       oom;
} wbuf;

static void
w_bytes(wbuf *w, const void *src, size_t n)
{
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        uint8_t *p;
        while (cap < w->n + n) {
            cap *= 2;
        }
        p = realloc(w->p, cap);
        if (p == NULL) {
            w->oom = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void
w_u8(wbuf *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void
w_u16(wbuf *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
    w_bytes(w, b, 2);
}

static void
w_u32(wbuf *w, uint32_t v)
{
    uint8_t b[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16),
                     (uint8_t) (v >> 24) };
    w_bytes(w, b, 4);
}

static void
w_u64(wbuf *w, uint64_t v)
{
    w_u32(w, (uint32_t) v);
    w_u32(w, (uint32_t) (v >> 32));
}

static void
w_f32(wbuf *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    w_u32(w, u);
}

static void
w_str(wbuf *w, const char *s)
{
    w_u64(w, strlen(s));
    w_bytes(w, s, strlen(s));
}

static void
w_key(wbuf *w, const char *key, uint32_t type)
{
    w_str(w, key);
    w_u32(w, type);
}

static void
w_pad(wbuf *w, size_t align)
{
    while (w->n % align != 0) {
        w_u8(w, 0);
    }
}


/* Knobs that turn the valid image into a corrupt one. */
typedef struct {
    const char  *name;
    uint32_t     n_dims;
    uint64_t     ne[5];
    uint32_t     type;
    uint64_t     offset;
} tensor_spec;

typedef struct {
    uint32_t     version;
    int          huge_key_len;     /* key #1 length = 2^62 */
    uint32_t     u8_vtype;         /* value type written for t.u8 */
    uint32_t     arr_elem_type;    /* element type of t.arr_u32 */
    int          huge_arr_count;   /* t.arr_str claims 2^61 strings */
    int          nest_depth;       /* levels of t.nested (2 = valid) */
    int          dup_key;          /* general.architecture twice */
    int          align_mode;       /* 0 absent, 1 u32 32, 2 u32 0, 3 u32 3,
                                      4 u64 32, 5 u32 64 */
    tensor_spec  t[3];
} image_spec;

#define N_SPEC_TENSORS 3
#define DATA_BYTES     192

static void
spec_default(image_spec *s)
{
    static const tensor_spec t[N_SPEC_TENSORS] = {
        { "tok.weight", 2, { 8, 2, 0, 0, 0 }, ST_TYPE_F32, 0 },
        { "q.weight",   2, { 32, 2, 0, 0, 0 }, ST_TYPE_Q8_0, 64 },
        { "norm",       1, { 8, 0, 0, 0, 0 }, ST_TYPE_F32, 160 },
    };

    memset(s, 0, sizeof(*s));
    s->version = 3;
    s->u8_vtype = ST_GGUF_UINT8;
    s->arr_elem_type = ST_GGUF_UINT32;
    s->nest_depth = 2;
    s->align_mode = 1;
    memcpy(s->t, t, sizeof(t));
}

/* Nested arrays of i32: depth 1 is [7, 8]; depth d is [x, x] of depth d-1
 * (a single element beyond depth 6); the valid image instead has
 * [[1, 2], [3]]. */
static void
w_nested(wbuf *w, int depth)
{
    if (depth <= 1) {
        w_u32(w, ST_GGUF_INT32);
        w_u64(w, 2);
        w_u32(w, 7);
        w_u32(w, 8);
        return;
    }
    /* a single chain beyond a few levels keeps deep images small */
    w_u32(w, ST_GGUF_ARRAY);
    w_u64(w, depth > 6 ? 1 : 2);
    w_nested(w, depth - 1);
    if (depth <= 6) {
        w_nested(w, depth - 1);
    }
}

static int
build_image(const image_spec *s, wbuf *w)
{
    uint64_t  n_kv = 16 + (s->dup_key ? 1 : 0) + (s->align_mode ? 1 : 0);
    size_t    align = s->align_mode == 5 ? 64 : 32, i, d;
    static const char *strs[] = { "a", "bc", "", "def" };

    memset(w, 0, sizeof(*w));
    w_bytes(w, "GGUF", 4);
    w_u32(w, s->version);
    w_u64(w, N_SPEC_TENSORS);
    w_u64(w, n_kv);

    /* #0 */
    w_key(w, "general.architecture", ST_GGUF_STRING);
    w_str(w, "llama");
    /* #1 */
    if (s->huge_key_len) {
        w_u64(w, (uint64_t) 1 << 62);
        w_bytes(w, "t.u8", 4);
        w_u32(w, s->u8_vtype);
    } else {
        w_key(w, "t.u8", s->u8_vtype);
    }
    w_u8(w, 200);
    w_key(w, "t.i8", ST_GGUF_INT8);        w_u8(w, (uint8_t) -5);
    w_key(w, "t.u16", ST_GGUF_UINT16);     w_u16(w, 60000);
    w_key(w, "t.i16", ST_GGUF_INT16);      w_u16(w, (uint16_t) -30000);
    w_key(w, "t.u32", ST_GGUF_UINT32);     w_u32(w, 4000000000u);
    w_key(w, "t.i32", ST_GGUF_INT32);      w_u32(w, (uint32_t) -2000000000);
    w_key(w, "t.f32", ST_GGUF_FLOAT32);    w_f32(w, 1.5f);
    w_key(w, "t.bool", ST_GGUF_BOOL);      w_u8(w, 1);
    w_key(w, "t.u64", ST_GGUF_UINT64);     w_u64(w, ((uint64_t) 1 << 40) + 3);
    w_key(w, "t.i64", ST_GGUF_INT64);      w_u64(w, (uint64_t) -((int64_t) 1 << 40));
    w_key(w, "t.f64", ST_GGUF_FLOAT64);
    {
        double   dv = 2.25;
        uint64_t u;
        memcpy(&u, &dv, 8);
        w_u64(w, u);
    }
    /* #12 */
    w_key(w, "t.arr_u32", ST_GGUF_ARRAY);
    w_u32(w, s->arr_elem_type);
    w_u64(w, 4);
    for (i = 1; i <= 4; i++) {
        w_u32(w, (uint32_t) i);
    }
    /* #13 */
    w_key(w, "t.arr_str", ST_GGUF_ARRAY);
    w_u32(w, ST_GGUF_STRING);
    w_u64(w, s->huge_arr_count ? (uint64_t) 1 << 61 : 4);
    for (i = 0; i < 4; i++) {
        w_str(w, strs[i]);
    }
    /* #14 */
    w_key(w, "t.nested", ST_GGUF_ARRAY);
    if (s->nest_depth == 2) {
        w_u32(w, ST_GGUF_ARRAY);
        w_u64(w, 2);
        w_u32(w, ST_GGUF_INT32); w_u64(w, 2); w_u32(w, 1); w_u32(w, 2);
        w_u32(w, ST_GGUF_INT32); w_u64(w, 1); w_u32(w, 3);
    } else {
        w_nested(w, s->nest_depth);
    }
    /* #15 */
    w_key(w, "t.empty_arr", ST_GGUF_ARRAY);
    w_u32(w, ST_GGUF_STRING);
    w_u64(w, 0);
    if (s->dup_key) {
        w_key(w, "general.architecture", ST_GGUF_STRING);
        w_str(w, "gpt2");
    }
    switch (s->align_mode) {
    case 1: w_key(w, "general.alignment", ST_GGUF_UINT32); w_u32(w, 32); break;
    case 2: w_key(w, "general.alignment", ST_GGUF_UINT32); w_u32(w, 0); break;
    case 3: w_key(w, "general.alignment", ST_GGUF_UINT32); w_u32(w, 3); break;
    case 4: w_key(w, "general.alignment", ST_GGUF_UINT64); w_u64(w, 32); break;
    case 5: w_key(w, "general.alignment", ST_GGUF_UINT32); w_u32(w, 64); break;
    default: break;
    }

    for (i = 0; i < N_SPEC_TENSORS; i++) {
        w_str(w, s->t[i].name);
        w_u32(w, s->t[i].n_dims);
        for (d = 0; d < s->t[i].n_dims && d < 5; d++) {
            w_u64(w, s->t[i].ne[d]);
        }
        w_u32(w, s->t[i].type);
        w_u64(w, s->t[i].offset);
    }

    /* data: tok.weight = 0, 0.5, 1, ...; q.weight = bytes 0..67;
     * norm = 1.0; zero padding between */
    w_pad(w, align);
    {
        size_t base = w->n;
        for (i = 0; i < 16; i++) {
            w_f32(w, (float) i * 0.5f);
        }
        for (i = 0; i < 68; i++) {
            w_u8(w, (uint8_t) i);
        }
        while (w->n - base < 160) {
            w_u8(w, 0);
        }
        for (i = 0; i < 8; i++) {
            w_f32(w, 1.0f);
        }
        if (w->n - base != DATA_BYTES) {
            w->oom = 1;
        }
    }
    return w->oom ? -1 : 0;
}


/* Opens a private exact-size copy so valgrind flags any over-read. */
static st_status
open_copy(const uint8_t *img, size_t n, st_gguf **g, st_error *err,
    uint8_t **copy)
{
    *copy = malloc(n ? n : 1);
    if (*copy == NULL) {
        return ST_ERR_NOMEM;
    }
    memcpy(*copy, img, n);
    return st_gguf_open_memory(g, *copy, n, err);
}

/* Expects failure with a message; returns 1 when it failed cleanly. */
static int
expect_fail(const uint8_t *img, size_t n, st_status want, const char *want_sub,
    const char *what)
{
    st_gguf   *g = NULL;
    st_error   err = { ST_OK, "" };
    uint8_t   *copy;
    st_status  rc = open_copy(img, n, &g, &err, &copy);
    int        good;

    good = rc != ST_OK && g == NULL && err.code == rc && err.msg[0] != '\0'
           && (want == ST_OK || rc == want)
           && (want_sub == NULL || strstr(err.msg, want_sub) != NULL);
    ok(good, "%s: %s (%s)", what, st_status_str(rc), err.msg);
    if (g != NULL) {
        st_gguf_close(g);
    }
    free(copy);
    return good;
}

static void
expect_spec_fail(const image_spec *s, st_status want, const char *sub,
    const char *what)
{
    wbuf w;

    if (build_image(s, &w) != 0) {
        ok(0, "%s: build", what);
        return;
    }
    expect_fail(w.p, w.n, want, sub, what);
    free(w.p);
}

static int
str_eq(st_gguf_str s, const char *c)
{
    return s.ptr != NULL && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}


/* ---- tests ---- */

static void
test_sha256(void)
{
    static const struct { const char *in, *hex; } vec[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
          "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
    };
    char           hex[ST_SHA256_HEX_BYTES];
    uint8_t        dig[ST_SHA256_DIGEST_BYTES], buf[1000];
    st_sha256_ctx  c;
    size_t         i, k, step;
    int            all = 1;

    for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        st_sha256_buf_hex(vec[i].in, strlen(vec[i].in), hex);
        ok(strcmp(hex, vec[i].hex) == 0, "sha256 FIPS vector %zu (len %zu)",
           i, strlen(vec[i].in));
    }

    /* one million 'a', fed in uneven pieces */
    memset(buf, 'a', sizeof(buf));
    st_sha256_init(&c);
    for (k = 0, step = 1; k < 1000000; k += step, step = step % 997 + 1) {
        st_sha256_update(&c, buf, k + step > 1000000 ? 1000000 - k : step);
    }
    st_sha256_final(&c, dig);
    st_sha256_hex(dig, hex);
    ok(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
                   "f1809a48a497200e046d39ccc7112cd0") == 0,
       "sha256 of 10^6 'a' in uneven chunks");

    /* every length 0..200 near block boundaries: streaming == one shot */
    for (i = 0; i < 200; i++) {
        buf[i] = (uint8_t) (i * 37 + 11);
    }
    for (k = 0; k <= 200; k++) {
        char h1[ST_SHA256_HEX_BYTES];
        st_sha256_buf_hex(buf, k, h1);
        st_sha256_init(&c);
        st_sha256_update(&c, buf, k / 3);
        st_sha256_update(&c, buf + k / 3, k - k / 3);
        st_sha256_final(&c, dig);
        st_sha256_hex(dig, hex);
        if (strcmp(h1, hex) != 0) {
            all = 0;
        }
    }
    ok(all, "sha256 streaming equals one shot for lengths 0..200");
}


static void
test_valid_image(const uint8_t *img, size_t n)
{
    st_gguf               *g = NULL;
    st_error               err = { ST_OK, "" };
    uint8_t               *copy;
    const st_gguf_value   *v, *a;
    const st_gguf_tensor  *t;
    st_gguf_str            s;
    uint32_t               u32;
    float                  f;
    int                    b, good;
    int64_t                i64;
    uint64_t               i;

    ok(open_copy(img, n, &g, &err, &copy) == ST_OK, "valid image parses (%s)",
       err.msg);
    if (g == NULL) {
        free(copy);
        return;
    }
    ok(st_gguf_version(g) == 3 && st_gguf_file_size(g) == n, "version, size");
    ok(st_gguf_n_kv(g) == 17 && st_gguf_n_tensors(g) == 3, "counts");
    ok(st_gguf_alignment(g) == 32 && st_gguf_data_offset(g) == n - DATA_BYTES,
       "alignment 32, data offset %zu", st_gguf_data_offset(g));

    ok(st_gguf_get_str(g, "general.architecture", &s, &err) == ST_OK
       && str_eq(s, "llama"), "string value");
    v = st_gguf_find(g, "t.u8");
    ok(v && v->type == ST_GGUF_UINT8 && v->v.u64 == 200, "u8");
    v = st_gguf_find(g, "t.i8");
    ok(v && v->type == ST_GGUF_INT8 && v->v.i64 == -5, "i8");
    v = st_gguf_find(g, "t.u16");
    ok(v && v->type == ST_GGUF_UINT16 && v->v.u64 == 60000, "u16");
    v = st_gguf_find(g, "t.i16");
    ok(v && v->type == ST_GGUF_INT16 && v->v.i64 == -30000, "i16");
    v = st_gguf_find(g, "t.u32");
    ok(v && v->type == ST_GGUF_UINT32 && v->v.u64 == 4000000000u, "u32");
    v = st_gguf_find(g, "t.i32");
    ok(v && v->type == ST_GGUF_INT32 && v->v.i64 == -2000000000, "i32");
    v = st_gguf_find(g, "t.f32");
    ok(v && v->type == ST_GGUF_FLOAT32 && v->v.f64 == 1.5, "f32");
    v = st_gguf_find(g, "t.bool");
    ok(v && v->type == ST_GGUF_BOOL && v->v.u64 == 1, "bool");
    v = st_gguf_find(g, "t.u64");
    ok(v && v->type == ST_GGUF_UINT64 && v->v.u64 == ((uint64_t) 1 << 40) + 3,
       "u64");
    v = st_gguf_find(g, "t.i64");
    ok(v && v->type == ST_GGUF_INT64 && v->v.i64 == -((int64_t) 1 << 40),
       "i64");
    v = st_gguf_find(g, "t.f64");
    ok(v && v->type == ST_GGUF_FLOAT64 && v->v.f64 == 2.25, "f64");
    ok(st_gguf_find(g, "t.u") == NULL && st_gguf_find(g, "t.u8x") == NULL
       && st_gguf_find(g, "") == NULL, "absent keys are not found");

    /* typed getters */
    ok(st_gguf_get_u32(g, "t.u16", &u32, &err) == ST_OK && u32 == 60000,
       "get_u32 widens u16");
    ok(st_gguf_get_u32(g, "t.u32", &u32, &err) == ST_OK && u32 == 4000000000u,
       "get_u32 u32");
    ok(st_gguf_get_u32(g, "t.i8", &u32, &err) == ST_ERR_FORMAT,
       "get_u32 rejects a negative value: %s", err.msg);
    ok(st_gguf_get_u32(g, "t.u64", &u32, &err) == ST_ERR_FORMAT,
       "get_u32 rejects 2^40+3: %s", err.msg);
    ok(st_gguf_get_u32(g, "t.f32", &u32, &err) == ST_ERR_FORMAT
       && strstr(err.msg, "t.f32") != NULL, "get_u32 on f32: %s", err.msg);
    ok(st_gguf_get_u32(g, "nope", &u32, &err) == ST_ERR_FORMAT
       && strstr(err.msg, "nope") != NULL, "missing key: %s", err.msg);
    ok(st_gguf_get_f32(g, "t.f64", &f, &err) == ST_OK && f == 2.25f,
       "get_f32 f64");
    ok(st_gguf_get_f32(g, "t.u8", &f, &err) == ST_ERR_FORMAT, "get_f32 on u8");
    ok(st_gguf_get_bool(g, "t.bool", &b, &err) == ST_OK && b == 1, "get_bool");
    ok(st_gguf_get_str(g, "t.bool", &s, &err) == ST_ERR_FORMAT,
       "get_str on bool");

    /* arrays */
    ok(st_gguf_get_arr(g, "t.arr_u32", ST_GGUF_UINT32, &a, &err) == ST_OK
       && a->arr_n == 4 && a->arr_items == NULL, "array of u32");
    good = a != NULL;
    for (i = 0; good && i < 4; i++) {
        good = st_gguf_arr_i64(a, i, &i64) == 0 && i64 == (int64_t) i + 1;
    }
    ok(good && st_gguf_arr_i64(a, 4, &i64) == -1
       && st_gguf_arr_f32(a, 0, &f) == -1, "u32 array elements");
    ok(st_gguf_get_arr(g, "t.arr_u32", ST_GGUF_INT32, &a, &err)
       == ST_ERR_FORMAT, "get_arr checks the element type: %s", err.msg);
    ok(st_gguf_get_arr(g, "t.arr_str", ST_GGUF_STRING, &a, &err) == ST_OK
       && a->arr_n == 4, "array of strings");
    ok(str_eq(st_gguf_arr_str(a, 0), "a") && str_eq(st_gguf_arr_str(a, 1), "bc")
       && st_gguf_arr_str(a, 2).len == 0 && st_gguf_arr_str(a, 2).ptr != NULL
       && str_eq(st_gguf_arr_str(a, 3), "def")
       && st_gguf_arr_str(a, 4).ptr == NULL
       && st_gguf_arr_str(st_gguf_find(g, "t.u8"), 0).ptr == NULL,
       "string elements, bounds");
    ok(st_gguf_get_arr(g, "t.nested", ST_GGUF_ARRAY, &a, &err) == ST_OK
       && a->arr_n == 2 && a->arr_items != NULL
       && a->arr_items[0].type == ST_GGUF_ARRAY
       && a->arr_items[0].arr_type == ST_GGUF_INT32
       && a->arr_items[0].arr_n == 2 && a->arr_items[1].arr_n == 1
       && st_gguf_arr_i64(&a->arr_items[0], 1, &i64) == 0 && i64 == 2
       && st_gguf_arr_i64(&a->arr_items[1], 0, &i64) == 0 && i64 == 3,
       "nested array [[1, 2], [3]]");
    ok(st_gguf_get_arr(g, "t.empty_arr", ST_GGUF_STRING, &a, &err) == ST_OK
       && a->arr_n == 0 && st_gguf_arr_str(a, 0).ptr == NULL, "empty array");

    /* every key found through the index */
    good = 1;
    for (i = 0; i < st_gguf_n_kv(g); i++) {
        const st_gguf_kv *kv = st_gguf_kv_at(g, i);
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int) kv->key.len, kv->key.ptr);
        good = good && st_gguf_find(g, key) == &kv->value;
    }
    ok(good && st_gguf_kv_at(g, st_gguf_n_kv(g)) == NULL, "kv_at / find agree");

    /* tensors */
    t = st_gguf_find_tensor(g, "tok.weight");
    ok(t && t == st_gguf_tensor_at(g, 0) && t->n_dims == 2 && t->ne[0] == 8
       && t->ne[1] == 2 && t->ne[2] == 1 && t->ne[3] == 1
       && t->type == ST_TYPE_F32 && t->nbytes == 64 && t->offset == 0
       && t->data == copy + n - DATA_BYTES, "tensor tok.weight");
    if (t) {
        float x;
        memcpy(&x, (const uint8_t *) t->data + 4 * 5, 4);
        ok(x == 2.5f, "tok.weight[5] = 2.5");
    }
    t = st_gguf_find_tensor(g, "q.weight");
    ok(t && t->type == ST_TYPE_Q8_0 && t->nbytes == 68 && t->offset == 64
       && ((const uint8_t *) t->data)[67] == 67, "tensor q.weight (Q8_0)");
    t = st_gguf_find_tensor(g, "norm");
    ok(t && t->n_dims == 1 && t->nbytes == 32 && t->offset == 160
       && (const uint8_t *) t->data + t->nbytes == copy + n,
       "tensor norm ends at EOF");
    ok(st_gguf_find_tensor(g, "nope") == NULL
       && st_gguf_find_tensor(g, "norm ") == NULL
       && st_gguf_tensor_at(g, 3) == NULL, "absent tensors");

    st_gguf_close(g);
    free(copy);
}


static void
test_corruptions(const uint8_t *img, size_t n)
{
    image_spec  s;
    uint8_t    *b = malloc(n);
    size_t      len;
    int         all = 1;

    if (b == NULL) {
        ok(0, "malloc");
        return;
    }

    /* every truncation */
    for (len = 0; len < n; len++) {
        st_gguf   *g = NULL;
        st_error   err = { ST_OK, "" };
        uint8_t   *copy;
        st_status  rc = open_copy(img, len, &g, &err, &copy);
        if (rc == ST_OK || err.msg[0] == '\0' || g != NULL) {
            if (all) {
                diag("truncation to %zu bytes: %s", len, st_status_str(rc));
            }
            all = 0;
            st_gguf_close(g);
        }
        free(copy);
    }
    ok(all, "every truncation 0..%zu fails with a message", n - 1);
    {
        st_gguf *g = NULL;
        st_error err;
        ok(st_gguf_open_memory(&g, NULL, 0, &err) == ST_ERR_FORMAT && !g,
           "empty image: %s", err.msg);
    }
    expect_fail(img, n - 1, ST_ERR_FORMAT, "past end of file",
                "truncated by one byte");

    memcpy(b, img, n);
    b[0] = 'g';
    expect_fail(b, n, ST_ERR_FORMAT, "magic", "bad magic");
    memcpy(b, img, n);
    b[4] = 1;
    expect_fail(b, n, ST_ERR_UNSUPPORTED, "version 1", "version 1");
    b[4] = 4;
    expect_fail(b, n, ST_ERR_UNSUPPORTED, "version 4", "version 4");
    b[4] = 0; b[7] = 3;
    expect_fail(b, n, ST_ERR_UNSUPPORTED, "big-endian", "big-endian file");

    memcpy(b, img, n);
    memset(b + 16, 0xff, 7);
    b[23] = 0x7f;
    expect_fail(b, n, ST_ERR_FORMAT, "keys", "n_kv = 2^63-1");
    memcpy(b, img, n);
    b[23] = 0x80;
    expect_fail(b, n, ST_ERR_FORMAT, "keys", "n_kv = 2^63 + 17");
    memcpy(b, img, n);
    memset(b + 8, 0xff, 8);
    expect_fail(b, n, ST_ERR_FORMAT, "tensors", "n_tensors = 2^64-1");
    memcpy(b, img, n);
    b[8] = 4;
    expect_fail(b, n, ST_ERR_FORMAT, NULL, "n_tensors one too many");
    memcpy(b, img, n);
    b[16] = 18;
    expect_fail(b, n, ST_ERR_FORMAT, NULL, "n_kv one too many");

    spec_default(&s); s.version = 2;
    {
        wbuf w;
        st_gguf *g = NULL;
        st_error err;
        build_image(&s, &w);
        ok(st_gguf_open_memory(&g, w.p, w.n, &err) == ST_OK
           && st_gguf_version(g) == 2, "version 2 parses");
        st_gguf_close(g);
        free(w.p);
    }
    spec_default(&s); s.huge_key_len = 1;
    expect_spec_fail(&s, ST_ERR_FORMAT, "key #1", "key length 2^62");
    spec_default(&s); s.u8_vtype = 13;
    expect_spec_fail(&s, ST_ERR_FORMAT, "unknown value type 13",
                     "unknown value type");
    spec_default(&s); s.u8_vtype = 0xffffffffu;
    expect_spec_fail(&s, ST_ERR_FORMAT, "unknown value type",
                     "value type 2^32-1");
    spec_default(&s); s.arr_elem_type = 99;
    expect_spec_fail(&s, ST_ERR_FORMAT, "element type 99",
                     "array element type unknown");
    spec_default(&s); s.huge_arr_count = 1;
    expect_spec_fail(&s, ST_ERR_FORMAT, "t.arr_str", "array count 2^61");
    spec_default(&s); s.nest_depth = 4;
    {
        wbuf w;
        st_gguf *g = NULL;
        st_error err;
        const st_gguf_value *v;
        int64_t x = 0;
        build_image(&s, &w);
        ok(st_gguf_open_memory(&g, w.p, w.n, &err) == ST_OK
           && (v = st_gguf_find(g, "t.nested")) != NULL
           && st_gguf_arr_i64(&v->arr_items[1].arr_items[0].arr_items[1], 1,
                              &x) == 0 && x == 8,
           "arrays nested 4 deep parse");
        st_gguf_close(g);
        free(w.p);
    }
    spec_default(&s); s.nest_depth = 5;
    expect_spec_fail(&s, ST_ERR_FORMAT, "nested deeper", "nesting too deep");
    spec_default(&s); s.nest_depth = 40;
    expect_spec_fail(&s, ST_ERR_FORMAT, "nested deeper", "nesting 40 deep");
    spec_default(&s); s.dup_key = 1;
    expect_spec_fail(&s, ST_ERR_FORMAT, "duplicate key 'general.architecture'",
                     "duplicate key");
    spec_default(&s); s.align_mode = 2;
    expect_spec_fail(&s, ST_ERR_FORMAT, "alignment", "alignment 0");
    spec_default(&s); s.align_mode = 3;
    expect_spec_fail(&s, ST_ERR_FORMAT, "alignment", "alignment 3");
    spec_default(&s); s.align_mode = 4;
    expect_spec_fail(&s, ST_ERR_FORMAT, "u64, expected u32",
                     "alignment not u32");
    spec_default(&s); s.align_mode = 5;
    expect_spec_fail(&s, ST_ERR_FORMAT, "'norm': offset 160 is not a "
                     "multiple of the alignment 64", "alignment 64 vs offsets");
    spec_default(&s); s.align_mode = 0;
    {
        wbuf w;
        st_gguf *g = NULL;
        st_error err;
        build_image(&s, &w);
        ok(st_gguf_open_memory(&g, w.p, w.n, &err) == ST_OK
           && st_gguf_alignment(g) == 32, "no alignment key: default 32");
        st_gguf_close(g);
        free(w.p);
    }

    spec_default(&s); s.t[0].n_dims = 0;
    expect_spec_fail(&s, ST_ERR_FORMAT, "n_dims 0", "n_dims 0");
    spec_default(&s); s.t[0].n_dims = 5; s.t[0].ne[2] = s.t[0].ne[3] = 1;
    s.t[0].ne[4] = 1;
    expect_spec_fail(&s, ST_ERR_FORMAT, "n_dims 5", "n_dims 5");
    spec_default(&s); s.t[0].ne[1] = 0;
    expect_spec_fail(&s, ST_ERR_FORMAT, "ne[1] is 0", "ne = 0");
    spec_default(&s); s.t[0].ne[0] = (uint64_t) 1 << 32;
    s.t[0].ne[1] = (uint64_t) 1 << 32;
    expect_spec_fail(&s, ST_ERR_FORMAT, "overflows", "ne product overflow");
    spec_default(&s); s.t[0].ne[0] = UINT64_MAX;
    expect_spec_fail(&s, ST_ERR_FORMAT, "overflows", "ne = 2^64-1");
    spec_default(&s); s.t[0].ne[0] = (uint64_t) 1 << 61; s.t[0].ne[1] = 1;
    expect_spec_fail(&s, ST_ERR_FORMAT, "tok.weight", "huge tensor past EOF");
    spec_default(&s); s.t[1].type = 99;
    expect_spec_fail(&s, ST_ERR_UNSUPPORTED,
                     "tensor 'q.weight': unknown tensor type id 99",
                     "unknown tensor type");
    spec_default(&s); s.t[1].type = 4;
    expect_spec_fail(&s, ST_ERR_UNSUPPORTED, "type id 4",
                     "removed tensor type 4");
    spec_default(&s); s.t[1].ne[0] = 33;
    expect_spec_fail(&s, ST_ERR_FORMAT, "not a multiple of the q8_0 block",
                     "ne[0] not a multiple of the block size");
    spec_default(&s); s.t[2].offset = 161;
    expect_spec_fail(&s, ST_ERR_FORMAT, "not a multiple of the alignment",
                     "misaligned offset");
    spec_default(&s); s.t[2].offset = 192;
    expect_spec_fail(&s, ST_ERR_FORMAT,
                     "tensor 'norm': data [offset 192, 32 bytes] past end",
                     "data past EOF");
    spec_default(&s); s.t[2].offset = (uint64_t) 0xffffffffffffffe0ULL;
    expect_spec_fail(&s, ST_ERR_FORMAT, "past end", "offset near 2^64");
    spec_default(&s); s.t[2].name = "tok.weight";
    expect_spec_fail(&s, ST_ERR_FORMAT, "duplicate tensor name 'tok.weight'",
                     "duplicate tensor name");
    spec_default(&s); s.t[2].name = "";
    expect_spec_fail(&s, ST_ERR_FORMAT, "name length 0", "empty tensor name");
    spec_default(&s);
    s.t[2].name = "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
                  "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn";
    expect_spec_fail(&s, ST_ERR_FORMAT, "name length 128",
                     "tensor name of 128 bytes");
    {
        /* a NUL inside a tensor name would make lookups ambiguous */
        wbuf w;
        uint8_t *p;
        spec_default(&s);
        s.t[2].name = "noXm";
        build_image(&s, &w);
        p = memmem(w.p, w.n, "noXm", 4);
        if (p != NULL) {
            p[2] = '\0';
        }
        expect_fail(w.p, w.n, ST_ERR_FORMAT, "NUL", "NUL in tensor name");
        free(w.p);
    }

    free(b);
}


static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static void
test_fuzz(const uint8_t *img, size_t n)
{
    uint64_t   seed = 0x5eed1234abcdULL;
    int        i, k, n_ok = 0, clean = 1;
    uint8_t   *b = malloc(n);

    if (b == NULL) {
        ok(0, "malloc");
        return;
    }
    for (i = 0; i < 2000; i++) {
        st_gguf   *g = NULL;
        st_error   err = { ST_OK, "" };
        st_status  rc;
        int        muts = 1 + (int) (rng_next(&seed) % 4);

        memcpy(b, img, n);
        for (k = 0; k < muts; k++) {
            size_t pos = rng_next(&seed) % n;
            switch (rng_next(&seed) % 4) {
            case 0: b[pos] = (uint8_t) rng_next(&seed); break;
            case 1: b[pos] ^= (uint8_t) (1u << (rng_next(&seed) % 8)); break;
            case 2: b[pos] = 0xff; break;
            default: b[pos] = (uint8_t) (b[pos] + 1); break;
            }
        }
        rc = st_gguf_open_memory(&g, b, n, &err);
        if (rc == ST_OK) {
            uint64_t t;
            n_ok++;
            /* touch everything the handle hands out */
            for (t = 0; t < st_gguf_n_tensors(g); t++) {
                const st_gguf_tensor *ti = st_gguf_tensor_at(g, t);
                volatile uint8_t x = ((const uint8_t *) ti->data)[ti->nbytes - 1];
                (void) x;
                if (st_gguf_find_tensor(g, ti->name) != ti) {
                    clean = 0;
                }
            }
            st_gguf_close(g);
        } else if (g != NULL || err.msg[0] == '\0' || err.code != rc) {
            clean = 0;
        }
    }
    ok(clean, "2000 seeded mutations return cleanly (%d parsed OK)", n_ok);
    free(b);
}


static void
test_big_string_array(void)
{
    wbuf                  w;
    uint32_t              i, n = 150000;
    char                  tok[16];
    st_gguf              *g = NULL;
    st_error              err;
    const st_gguf_value  *a = NULL;
    int                   good = 1;

    memset(&w, 0, sizeof(w));
    w_bytes(&w, "GGUF", 4);
    w_u32(&w, 3);
    w_u64(&w, 0);
    w_u64(&w, 1);
    w_key(&w, "tokenizer.ggml.tokens", ST_GGUF_ARRAY);
    w_u32(&w, ST_GGUF_STRING);
    w_u64(&w, n);
    for (i = 0; i < n; i++) {
        snprintf(tok, sizeof(tok), "t%u", i);
        w_str(&w, tok);
    }
    ok(!w.oom && st_gguf_open_memory(&g, w.p, w.n, &err) == ST_OK
       && st_gguf_get_arr(g, "tokenizer.ggml.tokens", ST_GGUF_STRING, &a, &err)
          == ST_OK && a->arr_n == n, "150000-string array, no tensors");
    for (i = 0; a != NULL && i < n; i += 7919) {
        snprintf(tok, sizeof(tok), "t%u", i);
        good = good && str_eq(st_gguf_arr_str(a, i), tok);
    }
    ok(a != NULL && good && str_eq(st_gguf_arr_str(a, n - 1), "t149999"),
       "indexed string lookups");
    /* truncate inside the array: message names the key and element */
    st_gguf_close(g);
    g = NULL;
    ok(st_gguf_open_memory(&g, w.p, w.n - 3, &err) == ST_ERR_FORMAT
       && strstr(err.msg, "key #0 'tokenizer.ggml.tokens': array of 150000 "
                 "strings truncated at byte") != NULL
       && strstr(err.msg, "element 149999") != NULL, "%s", err.msg);
    free(w.p);
}


typedef struct {
    const char  *file;
    const char  *sha256;
    uint32_t     n_layer, n_embd, n_vocab;
    st_type      embd_type;
    int          has_output;
    const char  *bos_piece;
} model_fact;

static void
test_model(const char *dir, const model_fact *m)
{
    char                   path[1024], wrong[65];
    st_gguf               *g = NULL;
    st_error               err = { ST_OK, "" };
    st_gguf_str            s;
    uint32_t               u;
    const st_gguf_value   *a;
    const st_gguf_tensor  *t;
    st_status              rc;

    snprintf(path, sizeof(path), "%s/models/%s", dir, m->file);
    rc = st_gguf_open(&g, path, m->sha256, &err);
    if (rc == ST_ERR_IO) {
        skip("%s not readable (%s)", path, err.msg);
        return;
    }
    ok(rc == ST_OK, "%s opens, sha256 verified (%s)", m->file, err.msg);
    if (g == NULL) {
        return;
    }
    ok(st_gguf_version(g) == 3, "%s: GGUF v3", m->file);
    ok(st_gguf_get_str(g, "general.architecture", &s, &err) == ST_OK
       && str_eq(s, "llama"), "%s: architecture llama", m->file);
    ok(st_gguf_get_u32(g, "llama.block_count", &u, &err) == ST_OK
       && u == m->n_layer, "%s: block_count %u", m->file, m->n_layer);
    ok(st_gguf_get_u32(g, "llama.embedding_length", &u, &err) == ST_OK
       && u == m->n_embd, "%s: embedding_length %u", m->file, m->n_embd);
    ok(st_gguf_get_arr(g, "tokenizer.ggml.tokens", ST_GGUF_STRING, &a, &err)
       == ST_OK && a->arr_n == m->n_vocab
       && str_eq(st_gguf_arr_str(a, 1), m->bos_piece),
       "%s: %u tokens, token 1 = %s", m->file, m->n_vocab, m->bos_piece);
    t = st_gguf_find_tensor(g, "token_embd.weight");
    ok(t && t->type == m->embd_type && t->ne[0] == m->n_embd
       && t->ne[1] == m->n_vocab, "%s: token_embd.weight type %d [%u, %u]",
       m->file, (int) m->embd_type, m->n_embd, m->n_vocab);
    ok((st_gguf_find_tensor(g, "output.weight") != NULL) == m->has_output,
       "%s: output.weight %s", m->file, m->has_output ? "present" : "absent");
    if (m->embd_type == ST_TYPE_Q8_0) {
        float f = 0;
        ok(st_gguf_get_arr(g, "tokenizer.ggml.scores", ST_GGUF_FLOAT32, &a,
                           &err) == ST_OK
           && st_gguf_arr_f32(a, 100, &f) == 0 && f == -1000.0f,
           "%s: scores are -1000", m->file);
    } else {
        ok(st_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", &u, &err)
           == ST_OK && u == 4294967295u, "%s: u32 4294967295 read back",
           m->file);
    }
    st_gguf_close(g);

    /* wrong digest: flip the last hex digit */
    snprintf(wrong, sizeof(wrong), "%s", m->sha256);
    wrong[63] = wrong[63] == '0' ? '1' : '0';
    g = NULL;
    rc = st_gguf_open(&g, path, wrong, &err);
    ok(rc == ST_ERR_DIGEST && g == NULL && strstr(err.msg, wrong) != NULL
       && strstr(err.msg, m->sha256) != NULL, "%s: wrong digest: %s",
       m->file, err.msg);
    {
        char upper[65];
        size_t i;
        for (i = 0; i < 64; i++) {
            upper[i] = (char) toupper((unsigned char) m->sha256[i]);
        }
        upper[64] = '\0';
        rc = st_gguf_open(&g, path, upper, &err);
        ok(rc == ST_OK, "%s: upper-case digest accepted", m->file);
        st_gguf_close(g);
        g = NULL;
    }
    ok(st_gguf_open(&g, path, "1234", &err) == ST_ERR_INVALID,
       "%s: malformed digest rejected: %s", m->file, err.msg);
}


static void
test_models(void)
{
    static const model_fact facts[] = {
        { "stories260K.gguf",
          "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d",
          5, 64, 512, ST_TYPE_F32, 1, "<s>" },
        { "TinyStories-656K-Q8_0.gguf",
          "c773a9eb8883751131f30e0c1965c56b1102a4972fdac6a6f71fe156ba6d8cb7",
          2, 128, 2048, ST_TYPE_Q8_0, 0, "<|start_story|>" },
    };
    size_t     i;
    st_gguf   *g = NULL;
    st_error   err;

    for (i = 0; i < sizeof(facts) / sizeof(facts[0]); i++) {
        test_model(tap_root_dir(), &facts[i]);
    }
    ok(st_gguf_open(&g, "/nonexistent/x.gguf", NULL, &err) == ST_ERR_IO
       && g == NULL && strstr(err.msg, "/nonexistent/x.gguf") != NULL,
       "missing file: %s", err.msg);
    ok(st_gguf_open(&g, "/", NULL, &err) == ST_ERR_IO,
       "directory: %s", err.msg);
}


static void
test_synthetic(const char *set)
{
    char            dir[1024], path[2048];
    DIR            *d;
    struct dirent  *e;
    int             n = 0;

    snprintf(dir, sizeof(dir), "%s/models/%s", tap_shared_dir(), set);
    d = opendir(dir);
    if (d == NULL) {
        skip("no %s", dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t      len = strlen(e->d_name);
        st_gguf    *g = NULL;
        st_error    err = { ST_OK, "" };
        st_gguf_str arch = { NULL, 0 };
        st_status   rc;

        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rc = st_gguf_open(&g, path, NULL, &err);
        if (rc == ST_OK) {
            rc = st_gguf_get_str(g, "general.architecture", &arch, &err);
        }
        ok(rc == ST_OK && st_gguf_n_tensors(g) > 0,
           "synthetic %s opens (%llu tensors, arch %.*s) %s", e->d_name,
           g ? (unsigned long long) st_gguf_n_tensors(g) : 0ULL,
           (int) arch.len, arch.ptr ? arch.ptr : "", err.msg);
        st_gguf_close(g);
        n++;
    }
    closedir(d);
    if (n == 0) {
        skip("no .gguf in %s", dir);
    }
}


int
main(void)
{
    image_spec  s;
    wbuf        w;

    test_sha256();

    spec_default(&s);
    if (build_image(&s, &w) != 0) {
        ok(0, "build the valid image");
        return done_testing();
    }
    diag("valid image: %zu bytes", w.n);
    test_valid_image(w.p, w.n);
    test_corruptions(w.p, w.n);
    test_fuzz(w.p, w.n);
    free(w.p);

    test_big_string_array();
    test_models();
    test_synthetic("synthetic");
    test_synthetic("synthetic-2");
    return done_testing();
}
