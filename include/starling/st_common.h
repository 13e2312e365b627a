/*
 * Starling engine: shared basics (errors, status codes).
 * Plain C11; never includes nginx or CUDA headers.
 */
#ifndef ST_COMMON_H
#define ST_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_OK = 0,
    ST_ERR_IO,            /* open/read/mmap failed */
    ST_ERR_FORMAT,        /* corrupt or truncated file, bad metadata */
    ST_ERR_UNSUPPORTED,   /* valid but not supported (arch, tensor type) */
    ST_ERR_NOMEM,
    ST_ERR_INVALID,       /* bad argument / bad input from a caller */
    ST_ERR_CONTEXT,       /* prompt or generation does not fit the context */
    ST_ERR_DIGEST,        /* sha256 mismatch */
    ST_ERR_FULL,          /* no capacity (sequences, KV blocks) */
    ST_ERR_INTERNAL
} st_status;

/* Every fallible engine call takes an optional st_error*: on failure it
 * holds a human-readable, precise message (which key/tensor, what was
 * wrong). Messages never contain prompt text. */
typedef struct {
    st_status code;
    char      msg[256];
} st_error;

/* Sets err (if non-NULL) and returns code. printf-style. */
st_status st_error_set(st_error *err, st_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

const char *st_status_str(st_status code);

#endif /* ST_COMMON_H */
