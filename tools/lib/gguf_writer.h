/*
 * Streaming GGUF v3 writer, for tests and tools (synthetic models).
 *
 * Three phases, in this order:
 *   1. describe: st_gguf_writer_add_*() metadata (kept in memory, already
 *      serialized) and st_gguf_writer_add_tensor() tensor infos;
 *   2. st_gguf_writer_begin_data(): writes header, metadata and tensor
 *      infos, padded to the alignment;
 *   3. st_gguf_writer_write(): tensor data, in the order the tensors were
 *      added, in chunks of any size not crossing a tensor's end; each
 *      tensor starts on an alignment boundary (zero padding);
 *   then st_gguf_writer_finish() checks every byte was written and closes.
 *
 * Tensor data is never held by the writer, so a 1 GB file costs only the
 * caller's chunk buffer. The alignment is 32 unless a "general.alignment"
 * u32 key is added (a power of two).
 *
 * Errors are sticky: after the first failure every call returns the same
 * status (and copies the message to err), so a caller may chain many adds
 * and check once. st_gguf_writer_free() without a successful finish
 * removes the incomplete file. Values are written little-endian.
 */
#ifndef ST_GGUF_WRITER_H
#define ST_GGUF_WRITER_H

#include "starling/st_common.h"
#include "quant/quant.h"
#include "gguf/gguf.h"

typedef struct st_gguf_writer st_gguf_writer;

/* Longest tensor name llama.cpp accepts is 63 bytes (GGML_MAX_NAME 64). */
#define ST_GGUF_MAX_NAME 63

st_status st_gguf_writer_create(st_gguf_writer **out, st_error *err);
void st_gguf_writer_free(st_gguf_writer *w);
/* First error (code ST_OK while none). */
const st_error *st_gguf_writer_error(const st_gguf_writer *w);

/* Scalars. Keys must be unique (ST_ERR_INVALID otherwise). */
st_status st_gguf_writer_add_u8(st_gguf_writer *w, const char *key, uint8_t v,
    st_error *err);
st_status st_gguf_writer_add_i8(st_gguf_writer *w, const char *key, int8_t v,
    st_error *err);
st_status st_gguf_writer_add_u16(st_gguf_writer *w, const char *key, uint16_t v,
    st_error *err);
st_status st_gguf_writer_add_i16(st_gguf_writer *w, const char *key, int16_t v,
    st_error *err);
st_status st_gguf_writer_add_u32(st_gguf_writer *w, const char *key, uint32_t v,
    st_error *err);
st_status st_gguf_writer_add_i32(st_gguf_writer *w, const char *key, int32_t v,
    st_error *err);
st_status st_gguf_writer_add_f32(st_gguf_writer *w, const char *key, float v,
    st_error *err);
st_status st_gguf_writer_add_bool(st_gguf_writer *w, const char *key, int v,
    st_error *err);
st_status st_gguf_writer_add_u64(st_gguf_writer *w, const char *key, uint64_t v,
    st_error *err);
st_status st_gguf_writer_add_i64(st_gguf_writer *w, const char *key, int64_t v,
    st_error *err);
st_status st_gguf_writer_add_f64(st_gguf_writer *w, const char *key, double v,
    st_error *err);
/* NUL-terminated string / len bytes (may contain NULs). */
st_status st_gguf_writer_add_str(st_gguf_writer *w, const char *key,
    const char *s, st_error *err);
st_status st_gguf_writer_add_strn(st_gguf_writer *w, const char *key,
    const char *s, size_t len, st_error *err);

/* Array of n numbers of type elem (any scalar type but STRING), read from
 * data in host layout: e.g. elem ST_GGUF_FLOAT32 -> const float[n],
 * ST_GGUF_BOOL -> one byte each (0/1). */
st_status st_gguf_writer_add_arr(st_gguf_writer *w, const char *key,
    st_gguf_vtype elem, const void *data, uint64_t n, st_error *err);
/* Array of n strings; lens NULL means NUL-terminated strings. */
st_status st_gguf_writer_add_arr_str(st_gguf_writer *w, const char *key,
    const char *const *strs, const size_t *lens, uint64_t n, st_error *err);
/* Copy a value decoded by the gguf.h reader, keeping its type (arrays of
 * strings and nested arrays included). */
st_status st_gguf_writer_add_value(st_gguf_writer *w, const char *key,
    size_t key_len, const st_gguf_value *v, st_error *err);

/* Tensor info: ne[0] is the row length (a multiple of the type's block
 * size), n_dims 1..4, every ne >= 1. Names unique, <= ST_GGUF_MAX_NAME
 * bytes. */
st_status st_gguf_writer_add_tensor(st_gguf_writer *w, const char *name,
    st_type type, uint32_t n_dims, const uint64_t *ne, st_error *err);
/* Bytes of data the i-th added tensor takes (0 if no such tensor). */
uint64_t st_gguf_writer_tensor_bytes(const st_gguf_writer *w, uint64_t i);
uint64_t st_gguf_writer_n_tensors(const st_gguf_writer *w);

/* Creates/truncates path and writes everything before the tensor data. */
st_status st_gguf_writer_begin_data(st_gguf_writer *w, const char *path,
    st_error *err);
/* Next nbytes of tensor data; may not cross the current tensor's end. */
st_status st_gguf_writer_write(st_gguf_writer *w, const void *data,
    size_t nbytes, st_error *err);
/* All data written? Flush and close; the file is then complete. */
st_status st_gguf_writer_finish(st_gguf_writer *w, st_error *err);
/* Total file size once finished (header + metadata + padded data). */
uint64_t st_gguf_writer_file_bytes(const st_gguf_writer *w);

#endif /* ST_GGUF_WRITER_H */
