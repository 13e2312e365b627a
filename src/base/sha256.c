/*
 * SHA-256 as specified in FIPS 180-4, sections 4.1.2, 4.2.2, 5.1.1, 6.2.
 * Written for clarity; hashing a model file is a once-per-load cost.
 */
#include "base/sha256.h"

#include <string.h>


/* First 32 bits of the fractional parts of the cube roots of the first
 * 64 primes (FIPS 180-4 4.2.2). */
static const uint32_t st_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
    0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};


static uint32_t
st_sha256_rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}


/* Process one 64-byte block (FIPS 180-4 6.2.2). */
static void
st_sha256_compress(uint32_t h[8], const uint8_t *block)
{
    uint32_t  w[64], a, b, c, d, e, f, g, hh, t1, t2, s0, s1;
    int       t;

    for (t = 0; t < 16; t++) {
        w[t] = (uint32_t) block[4 * t] << 24
               | (uint32_t) block[4 * t + 1] << 16
               | (uint32_t) block[4 * t + 2] << 8
               | (uint32_t) block[4 * t + 3];
    }
    for (t = 16; t < 64; t++) {
        s0 = st_sha256_rotr(w[t - 15], 7) ^ st_sha256_rotr(w[t - 15], 18)
             ^ (w[t - 15] >> 3);
        s1 = st_sha256_rotr(w[t - 2], 17) ^ st_sha256_rotr(w[t - 2], 19)
             ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    a = h[0]; b = h[1]; c = h[2]; d = h[3];
    e = h[4]; f = h[5]; g = h[6]; hh = h[7];

    for (t = 0; t < 64; t++) {
        s1 = st_sha256_rotr(e, 6) ^ st_sha256_rotr(e, 11)
             ^ st_sha256_rotr(e, 25);
        t1 = hh + s1 + ((e & f) ^ (~e & g)) + st_sha256_k[t] + w[t];
        s0 = st_sha256_rotr(a, 2) ^ st_sha256_rotr(a, 13)
             ^ st_sha256_rotr(a, 22);
        t2 = s0 + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }

    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}


void
st_sha256_init(st_sha256_ctx *ctx)
{
    /* FIPS 180-4 5.3.3: square roots of the first 8 primes. */
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    memcpy(ctx->h, h0, sizeof(h0));
    ctx->total_bytes = 0;
    ctx->block_len_bytes = 0;
}


void
st_sha256_update(st_sha256_ctx *ctx, const void *data, size_t len_bytes)
{
    const uint8_t  *p = data;
    size_t          take;

    ctx->total_bytes += len_bytes;

    if (ctx->block_len_bytes > 0) {
        take = ST_SHA256_BLOCK_BYTES - ctx->block_len_bytes;
        if (take > len_bytes) {
            take = len_bytes;
        }
        memcpy(ctx->block + ctx->block_len_bytes, p, take);
        ctx->block_len_bytes += take;
        p += take;
        len_bytes -= take;
        if (ctx->block_len_bytes < ST_SHA256_BLOCK_BYTES) {
            return;
        }
        st_sha256_compress(ctx->h, ctx->block);
        ctx->block_len_bytes = 0;
    }

    /* Whole blocks straight from the input, no copy. */
    while (len_bytes >= ST_SHA256_BLOCK_BYTES) {
        st_sha256_compress(ctx->h, p);
        p += ST_SHA256_BLOCK_BYTES;
        len_bytes -= ST_SHA256_BLOCK_BYTES;
    }

    if (len_bytes > 0) {
        memcpy(ctx->block, p, len_bytes);
        ctx->block_len_bytes = len_bytes;
    }
}


void
st_sha256_final(st_sha256_ctx *ctx, uint8_t digest[ST_SHA256_DIGEST_BYTES])
{
    uint64_t  total_bits = ctx->total_bytes * 8;
    size_t    n = ctx->block_len_bytes;
    int       i;

    /* Padding (5.1.1): a 1 bit, zeros, then the 64-bit big-endian bit
     * length ending the last block. */
    ctx->block[n++] = 0x80;
    if (n > ST_SHA256_BLOCK_BYTES - 8) {
        memset(ctx->block + n, 0, ST_SHA256_BLOCK_BYTES - n);
        st_sha256_compress(ctx->h, ctx->block);
        n = 0;
    }
    memset(ctx->block + n, 0, ST_SHA256_BLOCK_BYTES - 8 - n);
    for (i = 0; i < 8; i++) {
        ctx->block[ST_SHA256_BLOCK_BYTES - 1 - i] =
            (uint8_t) (total_bits >> (8 * i));
    }
    st_sha256_compress(ctx->h, ctx->block);

    for (i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t) (ctx->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t) (ctx->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t) (ctx->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t) ctx->h[i];
    }
    ctx->block_len_bytes = 0;
}


void
st_sha256_hex(const uint8_t digest[ST_SHA256_DIGEST_BYTES],
    char hex[ST_SHA256_HEX_BYTES])
{
    static const char  digits[] = "0123456789abcdef";
    int                i;

    for (i = 0; i < ST_SHA256_DIGEST_BYTES; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 0x0f];
    }
    hex[2 * ST_SHA256_DIGEST_BYTES] = '\0';
}


void
st_sha256_buf_hex(const void *data, size_t len_bytes,
    char hex[ST_SHA256_HEX_BYTES])
{
    st_sha256_ctx  ctx;
    uint8_t        digest[ST_SHA256_DIGEST_BYTES];

    st_sha256_init(&ctx);
    st_sha256_update(&ctx, data, len_bytes);
    st_sha256_final(&ctx, digest);
    st_sha256_hex(digest, hex);
}
