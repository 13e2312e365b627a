/*
 * Spill files of evicted sessions.
 *
 * Layout (host byte order: a file is only read back by the process that
 * wrote it):
 *   header   8 bytes "STSPILL1", then uint32 version, n_layer, kv_dim,
 *            block_tokens, n_tokens, n_blocks
 *   tokens   int32 (n_tokens)
 *   digest   SHA-256 of header + tokens (32 bytes)
 *   blocks   n_blocks times: for each layer, the block's K rows then its V
 *            rows (block_tokens, kv_dim) F16, followed by the SHA-256 of
 *            those bytes (32 bytes)
 * A block is copied into the cache only after its digest matched, so a
 * truncated or corrupt file can at worst make the turn recompute.
 */
#include "engine/session.h"
#include "base/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_SPILL_MAGIC   "STSPILL1"
#define ST_SPILL_VERSION 1u

typedef struct {
    char     magic[8];
    uint32_t version, n_layer, kv_dim, block_tokens, n_tokens, n_blocks;
} st_spill_header;


static size_t
st_spill_block_bytes(const st_kv_cache *kv)
{
    return (size_t) st_kv_block_bytes(kv);
}


/* Copies block b's K and V of every layer to buf (or back, to_cache). */
static void
st_spill_copy(st_kv_cache *kv, uint32_t b, uint8_t *buf, int to_cache)
{
    size_t   rows = (size_t) kv->block_tokens * kv->kv_dim;
    size_t   off = (size_t) b * rows;
    uint32_t l;

    for (l = 0; l < kv->n_layer; l++) {
        if (to_cache) {
            memcpy(kv->k[l] + off, buf, rows * sizeof(st_f16));
            memcpy(kv->v[l] + off, buf + rows * sizeof(st_f16),
                   rows * sizeof(st_f16));
        } else {
            memcpy(buf, kv->k[l] + off, rows * sizeof(st_f16));
            memcpy(buf + rows * sizeof(st_f16), kv->v[l] + off,
                   rows * sizeof(st_f16));
        }
        buf += 2 * rows * sizeof(st_f16);
    }
}


st_status
st_session_spill_write(const st_kv_cache *kv, st_session *ss,
    const char *path, uint64_t *bytes, st_error *err)
{
    st_spill_header hdr;
    st_sha256_ctx   c;
    uint8_t         dg[ST_SHA256_DIGEST_BYTES], *buf;
    size_t          bb = st_spill_block_bytes(kv);
    char            tmp[4200];
    uint32_t        i;
    FILE           *f;
    int             ok;

    *bytes = 0;
    if (kv->k == NULL || ss->kv.n_blocks == 0
        || ss->n_tokens > ss->kv.n_blocks * kv->block_tokens)
    {
        return st_error_set(err, ST_ERR_INVALID, "spill: nothing to write");
    }
    memset(&hdr, 0, sizeof(hdr));
    memcpy(hdr.magic, ST_SPILL_MAGIC, 8);
    hdr.version = ST_SPILL_VERSION;
    hdr.n_layer = kv->n_layer;
    hdr.kv_dim = kv->kv_dim;
    hdr.block_tokens = kv->block_tokens;
    hdr.n_tokens = ss->n_tokens;
    hdr.n_blocks = (ss->n_tokens + kv->block_tokens - 1) / kv->block_tokens;

    buf = malloc(bb);
    if (buf == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "spill: out of memory");
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        free(buf);
        return st_error_set(err, ST_ERR_IO, "spill: cannot create %s", tmp);
    }
    st_sha256_init(&c);
    st_sha256_update(&c, &hdr, sizeof(hdr));
    st_sha256_update(&c, ss->tokens, sizeof(int32_t) * ss->n_tokens);
    st_sha256_final(&c, dg);
    ok = fwrite(&hdr, sizeof(hdr), 1, f) == 1
         && fwrite(ss->tokens, sizeof(int32_t), ss->n_tokens, f)
            == ss->n_tokens
         && fwrite(dg, sizeof(dg), 1, f) == 1;
    for (i = 0; ok && i < hdr.n_blocks; i++) {
        st_spill_copy((st_kv_cache *) kv, ss->kv.blocks[i], buf, 0);
        st_sha256_init(&c);
        st_sha256_update(&c, buf, bb);
        st_sha256_final(&c, dg);
        ok = fwrite(buf, bb, 1, f) == 1 && fwrite(dg, sizeof(dg), 1, f) == 1;
    }
    free(buf);
    if (fclose(f) != 0) {
        ok = 0;
    }
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return st_error_set(err, ST_ERR_IO, "spill: cannot write %s", path);
    }
    *bytes = sizeof(hdr) + sizeof(int32_t) * (uint64_t) ss->n_tokens
             + ST_SHA256_DIGEST_BYTES
             + (uint64_t) hdr.n_blocks * (bb + ST_SHA256_DIGEST_BYTES);
    return ST_OK;
}


uint32_t
st_session_spill_read(st_kv_cache *kv, const st_session *ss, st_kv_seq *seq,
    uint32_t n_want, st_error *err)
{
    st_spill_header hdr;
    st_sha256_ctx   c;
    uint8_t         dg[ST_SHA256_DIGEST_BYTES], want[ST_SHA256_DIGEST_BYTES];
    uint8_t        *buf = NULL;
    int32_t        *toks = NULL;
    size_t          bb = st_spill_block_bytes(kv);
    uint32_t        i, need;
    FILE           *f;

    if (ss->spill_path == NULL || kv->k == NULL) {
        return 0;
    }
    f = fopen(ss->spill_path, "rb");
    if (f == NULL) {
        st_error_set(err, ST_ERR_IO, "spill: cannot open the file");
        return 0;
    }
    if (fread(&hdr, sizeof(hdr), 1, f) != 1
        || memcmp(hdr.magic, ST_SPILL_MAGIC, 8) != 0
        || hdr.version != ST_SPILL_VERSION || hdr.n_layer != kv->n_layer
        || hdr.kv_dim != kv->kv_dim || hdr.block_tokens != kv->block_tokens
        || hdr.n_tokens != ss->n_tokens
        || hdr.n_blocks != (hdr.n_tokens + kv->block_tokens - 1)
                           / kv->block_tokens)
    {
        st_error_set(err, ST_ERR_FORMAT, "spill: bad header");
        goto fail;
    }
    toks = malloc(sizeof(int32_t) * (hdr.n_tokens ? hdr.n_tokens : 1));
    buf = malloc(bb);
    if (toks == NULL || buf == NULL) {
        st_error_set(err, ST_ERR_NOMEM, "spill: out of memory");
        goto fail;
    }
    if (fread(toks, sizeof(int32_t), hdr.n_tokens, f) != hdr.n_tokens
        || fread(want, sizeof(want), 1, f) != 1)
    {
        st_error_set(err, ST_ERR_FORMAT, "spill: truncated");
        goto fail;
    }
    st_sha256_init(&c);
    st_sha256_update(&c, &hdr, sizeof(hdr));
    st_sha256_update(&c, toks, sizeof(int32_t) * hdr.n_tokens);
    st_sha256_final(&c, dg);
    if (memcmp(dg, want, sizeof(dg)) != 0
        || memcmp(toks, ss->tokens, sizeof(int32_t) * hdr.n_tokens) != 0)
    {
        st_error_set(err, ST_ERR_DIGEST, "spill: header digest mismatch");
        goto fail;
    }
    if (n_want > hdr.n_tokens) {
        n_want = hdr.n_tokens;
    }
    need = (n_want + kv->block_tokens - 1) / kv->block_tokens;
    if (need == 0 || seq->n_blocks < need) {
        st_error_set(err, ST_ERR_INVALID, "spill: no blocks to restore into");
        goto fail;
    }
    for (i = 0; i < need; i++) {
        if (fread(buf, bb, 1, f) != 1 || fread(want, sizeof(want), 1, f) != 1)
        {
            st_error_set(err, ST_ERR_FORMAT, "spill: truncated");
            goto fail;
        }
        st_sha256_init(&c);
        st_sha256_update(&c, buf, bb);
        st_sha256_final(&c, dg);
        if (memcmp(dg, want, sizeof(dg)) != 0) {
            st_error_set(err, ST_ERR_DIGEST, "spill: block %u digest "
                         "mismatch", i);
            goto fail;
        }
        st_spill_copy(kv, seq->blocks[i], buf, 1);
    }
    fclose(f);
    free(buf);
    free(toks);
    return n_want;

fail:
    fclose(f);
    free(buf);
    free(toks);
    return 0;
}
