/*
 * Paged KV cache: O(1) block allocator, prefix registration and lookup
 * (chained hashes, token verification), LRU eviction order, and a random
 * churn run checked against invariants.
 */
#include "tap.h"
#include "model/kv_cache.h"

static int
check_invariants(const st_kv_cache *kv, st_kv_seq *seqs, int n_seqs)
{
    uint32_t *refs = calloc(kv->n_blocks, sizeof(uint32_t));
    uint32_t  b, n_ref0_reg = 0, n_unref = 0, i;
    int       s, good = 1;

    for (s = 0; s < n_seqs; s++) {
        for (i = 0; i < seqs[s].n_blocks; i++) {
            refs[seqs[s].blocks[i]]++;
        }
    }
    for (b = 0; b < kv->n_blocks; b++) {
        good &= refs[b] == kv->ref[b];
        if (kv->ref[b] == 0) {
            n_unref++;
            n_ref0_reg += kv->registered[b];
        }
    }
    good &= n_unref == kv->n_free + kv->n_lru;
    good &= n_ref0_reg == kv->n_lru;
    free(refs);
    return good;
}


int
main(void)
{
    st_kv_cache kv;
    st_kv_seq   a = {0}, b = {0}, c = {0}, seqs[8];
    st_error    err;
    int32_t     toks[256], other[256];
    uint32_t    i, got, rng = 12345;
    int         s, round, good;

    ok(st_kv_cache_init(&kv, 2, 8, 16, 0, 1, &err) != ST_OK,
       "zero blocks rejected: %s", err.msg);
    ok(st_kv_cache_init(&kv, 2, 8, 16, 8, 1, &err) == ST_OK, "8 blocks");

    for (i = 0; i < 256; i++) {
        toks[i] = (int32_t) (i * 7 + 3);
        other[i] = toks[i];
    }
    other[40] = 999;                     /* differs in block 2 */

    ok(st_kv_seq_reserve(&kv, &a, 50) == ST_OK && a.n_blocks == 4,
       "50 positions take 4 blocks");
    ok(st_kv_available(&kv) == 4, "4 left");
    ok(st_kv_seq_reserve(&kv, &b, 80) == ST_ERR_FULL && b.n_blocks == 0,
       "over-reservation fails and changes nothing");

    st_kv_commit(&kv, &a, toks, 50);
    ok(a.n_committed == 3 && kv.n_registered == 3,
       "3 full blocks registered, the partial one not");

    got = st_kv_prefix_lookup(&kv, &b, toks, 100, 99);
    ok(got == 48 && b.n_blocks == 3 && kv.ref[a.blocks[0]] == 2,
       "same prompt shares 3 blocks (48 tokens)");
    got = st_kv_prefix_lookup(&kv, &c, other, 100, 99);
    ok(got == 32, "prompt differing in block 2 shares 2 blocks");
    st_kv_seq_release(&kv, &c);
    ok(check_invariants(&kv, (st_kv_seq[]){a, b}, 2), "invariants hold");

    got = st_kv_prefix_lookup(&kv, &c, toks, 40, 39);
    ok(got == 32, "lookup never covers max_tokens (39 -> 32)");
    st_kv_seq_release(&kv, &c);

    st_kv_seq_release(&kv, &a);
    st_kv_seq_release(&kv, &b);
    ok(kv.n_lru == 3 && kv.n_free == 5 && st_kv_available(&kv) == 8,
       "released registered blocks stay cached and evictable");
    got = st_kv_prefix_lookup(&kv, &a, toks, 100, 99);
    ok(got == 48 && kv.n_lru == 0, "cache hit after release");
    st_kv_seq_release(&kv, &a);

    /* eviction: the free blocks go first, then the LRU */
    ok(st_kv_seq_reserve(&kv, &c, 16 * 5) == ST_OK && kv.evictions == 0,
       "5 free blocks used without eviction");
    ok(st_kv_seq_reserve(&kv, &c, 16 * 6) == ST_OK && kv.evictions == 1
       && kv.n_registered == 2, "6th block evicts one cached block");
    got = st_kv_prefix_lookup(&kv, &a, toks, 100, 99);
    ok(got == 32, "the deepest block of the chain was evicted first");
    st_kv_seq_release(&kv, &a);
    st_kv_seq_release(&kv, &c);
    st_kv_seq_free(&a);
    st_kv_seq_free(&b);
    st_kv_seq_free(&c);
    st_kv_cache_free(&kv);

    /* random churn: 8 sequences over 40 blocks with overlapping prompts */
    st_kv_cache_init(&kv, 1, 4, 4, 40, 0, &err);
    memset(seqs, 0, sizeof(seqs));
    good = 1;
    for (round = 0; round < 20000 && good; round++) {
        rng = rng * 1103515245u + 12345u;
        s = (int) ((rng >> 16) % 8);
        if (seqs[s].n_blocks == 0 || ((rng >> 8) & 3) == 0) {
            int32_t  p[64];
            uint32_t n = 4 + (rng >> 20) % 60, j;

            st_kv_seq_release(&kv, &seqs[s]);
            for (j = 0; j < n; j++) {
                p[j] = (int32_t) (j < 20 ? j : (j * (1 + (rng >> 28))));
            }
            got = st_kv_prefix_lookup(&kv, &seqs[s], p, n, n - 1);
            if (st_kv_seq_reserve(&kv, &seqs[s], n) == ST_OK) {
                st_kv_commit(&kv, &seqs[s], p, n);
            }
            good &= got % 4 == 0 && got < n;
        } else {
            st_kv_seq_release(&kv, &seqs[s]);
        }
        good &= check_invariants(&kv, seqs, 8);
    }
    ok(good, "20000 random lookups/reserves/commits/releases keep the "
       "ref counts, free list and LRU consistent (%llu evictions)",
       (unsigned long long) kv.evictions);
    for (s = 0; s < 8; s++) {
        st_kv_seq_release(&kv, &seqs[s]);
        st_kv_seq_free(&seqs[s]);
    }
    ok(st_kv_available(&kv) == 40, "everything back in the pool");
    st_kv_cache_free(&kv);
    return done_testing();
}
