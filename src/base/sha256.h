/*
 * SHA-256 (FIPS 180-4), streaming. Used to verify model files against a
 * configured digest before they are trusted.
 */
#ifndef ST_SHA256_H
#define ST_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define ST_SHA256_DIGEST_BYTES  32
#define ST_SHA256_BLOCK_BYTES   64
#define ST_SHA256_HEX_BYTES     65      /* 64 hex digits + NUL */

typedef struct {
    uint32_t h[8];                          /* chaining state */
    uint64_t total_bytes;                   /* message length so far */
    uint8_t  block[ST_SHA256_BLOCK_BYTES];  /* partial input block */
    size_t   block_len_bytes;               /* bytes held in block */
} st_sha256_ctx;

void st_sha256_init(st_sha256_ctx *ctx);
void st_sha256_update(st_sha256_ctx *ctx, const void *data, size_t len_bytes);
/* Writes the digest; ctx must be re-initialised before reuse. */
void st_sha256_final(st_sha256_ctx *ctx,
    uint8_t digest[ST_SHA256_DIGEST_BYTES]);

/* Lower-case hex of a digest, NUL-terminated (65 bytes). */
void st_sha256_hex(const uint8_t digest[ST_SHA256_DIGEST_BYTES],
    char hex[ST_SHA256_HEX_BYTES]);
/* One shot: hex digest of a buffer. */
void st_sha256_buf_hex(const void *data, size_t len_bytes,
    char hex[ST_SHA256_HEX_BYTES]);

#endif /* ST_SHA256_H */
