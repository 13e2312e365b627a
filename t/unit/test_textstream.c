/*
 * Textstream unit tests (TAP): UTF-8 repair and stop strings.
 */
#include "tap.h"
#include "text/textstream.h"

#include <time.h>

#define FFFD "\xEF\xBF\xBD"

typedef struct {
    char   text[4096];
    size_t len;
    int    chunks_valid;   /* every take() chunk was valid UTF-8 */
    int    last_rc;
    int    stop_index;
} run_result;


/* Independent strict UTF-8 validator (RFC 3629). */
static int
valid_utf8(const unsigned char *s, size_t n)
{
    size_t   i = 0, k, need;
    uint32_t cp, min;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((s[i] & 0xE0) == 0xC0) {
            need = 1; cp = s[i] & 0x1F; min = 0x80;
        } else if ((s[i] & 0xF0) == 0xE0) {
            need = 2; cp = s[i] & 0x0F; min = 0x800;
        } else if ((s[i] & 0xF8) == 0xF0) {
            need = 3; cp = s[i] & 0x07; min = 0x10000;
        } else {
            return 0;
        }
        if (i + need >= n) {
            return 0;
        }
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += need + 1;
    }
    return 1;
}


static void
collect(st_textstream *ts, run_result *r)
{
    size_t      n;
    const char *p = st_textstream_take(ts, &n);

    if (!valid_utf8((const unsigned char *) p, n)) {
        r->chunks_valid = 0;
    }
    if (r->len + n < sizeof(r->text)) {
        memcpy(r->text + r->len, p, n);
        r->len += n;
    }
    r->text[r->len] = '\0';
}


/* Pushes NULL-terminated pieces, then finish(). */
static void
run(const char *const *stops, size_t n_stops, const char *const *pieces,
    run_result *r)
{
    st_textstream *ts;
    st_error       err;
    size_t         i;

    memset(r, 0, sizeof(*r));
    r->chunks_valid = 1;
    r->stop_index = -2;
    if (st_textstream_create(&ts, stops, n_stops, &err) != ST_OK) {
        diag("create: %s", err.msg);
        return;
    }
    for (i = 0; pieces[i] != NULL; i++) {
        r->last_rc = st_textstream_push(ts, pieces[i], strlen(pieces[i]));
        collect(ts, r);
    }
    st_textstream_finish(ts);
    collect(ts, r);
    r->stop_index = st_textstream_stop_index(ts);
    st_textstream_free(ts);
}


static int
is(const run_result *r, const char *want)
{
    if (r->len == strlen(want) && memcmp(r->text, want, r->len) == 0) {
        return 1;
    }
    diag("got %zu bytes \"%s\", want \"%s\"", r->len, r->text, want);
    return 0;
}


static void
test_utf8(void)
{
    static const struct {
        const char *in;
        const char *want;
        const char *name;
    } cases[] = {
        { "plain ascii", "plain ascii", "ascii passes" },
        { "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "\xC3\xA9\xE2\x82\xAC"
          "\xF0\x9F\x98\x80", "2/3/4-byte sequences pass" },
        { "a\x80" "b", "a" FFFD "b", "stray continuation" },
        { "\xC0\xAF", FFFD FFFD, "overlong lead C0 + stray" },
        { "\xC1\xBF", FFFD FFFD, "overlong lead C1" },
        { "\xE0\x80\xAF", FFFD FFFD FFFD, "overlong 3-byte" },
        { "\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD, "overlong 4-byte" },
        { "\xED\xA0\x80", FFFD FFFD FFFD, "surrogate U+D800" },
        { "\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, "above U+10FFFF" },
        { "\xF5\xFF\xFE", FFFD FFFD FFFD, "F5, FF, FE" },
        { "\xF0\x9F\x98" "A", FFFD "A", "truncated 4-byte then ASCII: one "
          "U+FFFD" },
        { "\xE2\x82\xE2\x82\xAC", FFFD "\xE2\x82\xAC",
          "truncated then valid" },
        { "\xE2\x82", FFFD, "truncated at end -> one U+FFFD at finish" },
        /* Unicode 15, Table 3-8 example */
        { "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
          "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d",
          "Unicode Table 3-8 (maximal subparts)" },
        { "\xEF\xBF\xBF\xF4\x8F\xBF\xBF", "\xEF\xBF\xBF\xF4\x8F\xBF\xBF",
          "U+FFFF and U+10FFFF are valid" },
    };
    size_t     i, j;
    run_result r, rb;
    const char *pieces[2], *bytewise[64];
    static char bytes[64][2];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pieces[0] = cases[i].in;
        pieces[1] = NULL;
        run(NULL, 0, pieces, &r);
        /* the same, one byte per piece */
        for (j = 0; cases[i].in[j] != '\0'; j++) {
            bytes[j][0] = cases[i].in[j];
            bytes[j][1] = '\0';
            bytewise[j] = bytes[j];
        }
        bytewise[j] = NULL;
        run(NULL, 0, bytewise, &rb);
        ok(is(&r, cases[i].want) && is(&rb, cases[i].want)
            && r.chunks_valid && rb.chunks_valid, "%s", cases[i].name);
    }
}


static void
test_bytewise_hold(void)
{
    st_textstream *ts;
    st_error       err;
    size_t         n;
    const char    *p;
    const char     euro[] = "\xE2\x82\xAC";

    st_textstream_create(&ts, NULL, 0, &err);
    st_textstream_push(ts, euro, 1);
    p = st_textstream_take(ts, &n);
    ok(n == 0 && p != NULL, "first byte of U+20AC held");
    st_textstream_push(ts, euro + 1, 1);
    p = st_textstream_take(ts, &n);
    ok(n == 0, "second byte held");
    st_textstream_push(ts, euro + 2, 1);
    p = st_textstream_take(ts, &n);
    ok(n == 3 && memcmp(p, euro, 3) == 0, "released when complete");
    p = st_textstream_take(ts, &n);
    ok(n == 0, "take twice: second is empty");
    st_textstream_push(ts, "x", 1);
    st_textstream_push(ts, "y", 1);
    p = st_textstream_take(ts, &n);
    ok(n == 2 && memcmp(p, "xy", 2) == 0, "output accumulates until take");
    ok(st_textstream_stop_index(ts) == -1
        && st_textstream_status(ts) == ST_OK, "no stop, status ok");
    st_textstream_free(ts);
}


static void
test_stops(void)
{
    run_result r;

    {
        const char *stops[] = { "STOP" };
        const char *pieces[] = { "abc ST", "O", "P and more", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "abc ") && r.stop_index == 0 && r.last_rc == 1,
            "stop split across 3 pieces");
    }
    {
        const char    *stops[] = { "STOP" };
        st_textstream *ts;
        st_error       err;
        size_t         n;
        const char    *p;
        int            rc;

        st_textstream_create(&ts, stops, 1, &err);
        st_textstream_push(ts, "xST", 3);
        p = st_textstream_take(ts, &n);
        ok(n == 1 && p[0] == 'x', "possible stop prefix held back");
        rc = st_textstream_push(ts, "OX", 2);
        p = st_textstream_take(ts, &n);
        ok(rc == 0 && n == 4 && memcmp(p, "STOX", 4) == 0,
            "prefix released when it stops matching");
        st_textstream_push(ts, "STO", 3);
        p = st_textstream_take(ts, &n);
        ok(n == 0, "held again");
        st_textstream_finish(ts);
        p = st_textstream_take(ts, &n);
        ok(n == 3 && memcmp(p, "STO", 3) == 0
            && st_textstream_stop_index(ts) == -1,
            "finish releases a held partial match");
        st_textstream_free(ts);
    }
    {
        const char *stops[] = { "</s>" };
        const char *pieces[] = { "</s>hello", "more", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "") && r.stop_index == 0 && r.last_rc == 1,
            "stop at the very start; later pushes return 1");
    }
    {
        const char *stops[] = { "abcd", "bc" };
        const char *pieces[] = { "xa", "bcd", NULL };

        run(stops, 2, pieces, &r);
        ok(is(&r, "xa") && r.stop_index == 1,
            "overlapping stops: earliest-ending wins");
    }
    {
        const char *stops[] = { "b", "ab" };
        const char *pieces[] = { "xab", NULL };

        run(stops, 2, pieces, &r);
        ok(is(&r, "x") && r.stop_index == 1,
            "same end: the longest stop wins");
    }
    {
        const char *stops[] = { "aab" };
        const char *pieces[] = { "a", "a", "a", "b", "c", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "a") && r.stop_index == 0, "KMP fallback (aaab / aab)");
    }
    {
        const char *stops[] = { "abac" };
        const char *pieces[] = { "ababa", "c", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "ab") && r.stop_index == 0,
            "self-overlapping stop (ababac / abac)");
    }
    {
        const char *stops[] = { "", "X" };
        const char *pieces[] = { "abXcd", NULL };

        run(stops, 2, pieces, &r);
        ok(is(&r, "ab") && r.stop_index == 1,
            "empty stop ignored, index preserved");
    }
    {
        const char *stops[] = { "\xC3\xA9!" };
        const char *pieces[] = { "caf", "\xC3", "\xA9", "!", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "caf") && r.stop_index == 0, "multibyte stop byte-wise");
    }
    {
        const char *stops[] = { "ab" };
        const char *pieces[] = { "a", "\xC3", "\xA9", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "a\xC3\xA9") && r.chunks_valid && r.stop_index == -1,
            "held prefix + incomplete char, released whole");
    }
    {
        const char *stops[] = { "x" FFFD };
        const char *pieces[] = { "ax", "\xFF", "b", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "a") && r.stop_index == 0,
            "stops match the normalised text (invalid byte = U+FFFD)");
    }
    {
        const char *stops[] = { "\x80" };   /* normalised to U+FFFD */
        const char *pieces[] = { "ok\xC3", "(", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "ok") && r.stop_index == 0,
            "invalid stop string normalised too");
    }
    {
        const char *stops[] = { "zz" FFFD };
        const char *pieces[] = { "zz\xE2\x82", NULL };

        run(stops, 1, pieces, &r);
        ok(is(&r, "") && r.stop_index == 0,
            "truncated tail at finish can complete a stop");
    }
}


static uint32_t
lcg(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}


/* Streams buf in random pieces; output must not depend on the split. */
static void
test_split_invariance(void)
{
    const char    *stops[] = { "\xC3\xA9x", "ab", "\xE2\x82\xAC\xE2" };
    unsigned char  buf[300];
    static const unsigned char alphabet[] = {
        'a', 'b', 'x', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0x80, 0xF0, 0x9F,
        0xFF, 0xED, 0xA0
    };
    char           one[1200], split[1200];
    size_t         n1, n2, pos, len, n;
    int            t, same = 1, valid = 1, idx1, idx2, stopped = 0;
    int            ref_ok = 1;
    uint32_t       x = 12345;
    st_textstream *ts;
    st_error       err;
    const char    *p;

    for (t = 0; t < 400; t++) {
        size_t blen = 20 + lcg(&x) % 200, i;
        size_t ns = t % 4;        /* 0..3 stop strings */

        for (i = 0; i < blen; i++) {
            /* mostly plain text so that stops are rare-ish */
            buf[i] = lcg(&x) % 3 ? (unsigned char) ('a' + lcg(&x) % 8)
                     : alphabet[lcg(&x) % sizeof(alphabet)];
        }

        st_textstream_create(&ts, stops, ns, &err);
        st_textstream_push(ts, (const char *) buf, blen);
        st_textstream_finish(ts);
        p = st_textstream_take(ts, &n1);
        memcpy(one, p, n1);
        idx1 = st_textstream_stop_index(ts);
        st_textstream_free(ts);

        st_textstream_create(&ts, stops, ns, &err);
        n2 = 0;
        for (pos = 0; pos < blen; pos += len) {
            len = 1 + lcg(&x) % 5;
            if (len > blen - pos) {
                len = blen - pos;
            }
            st_textstream_push(ts, (const char *) buf + pos, len);
            p = st_textstream_take(ts, &n);
            valid &= valid_utf8((const unsigned char *) p, n);
            memcpy(split + n2, p, n);
            n2 += n;
        }
        st_textstream_finish(ts);
        p = st_textstream_take(ts, &n);
        valid &= valid_utf8((const unsigned char *) p, n);
        memcpy(split + n2, p, n);
        n2 += n;
        idx2 = st_textstream_stop_index(ts);
        st_textstream_free(ts);

        same &= n1 == n2 && memcmp(one, split, n1) == 0 && idx1 == idx2;

        /* naive reference: normalise without stops, then find the
         * earliest-ending (then longest) match by brute force */
        {
            char   norm[1200];
            size_t nn, e, k, want_len;
            int    want_idx = -1;

            st_textstream_create(&ts, NULL, 0, &err);
            st_textstream_push(ts, (const char *) buf, blen);
            st_textstream_finish(ts);
            p = st_textstream_take(ts, &nn);
            memcpy(norm, p, nn);
            st_textstream_free(ts);
            want_len = nn;
            for (e = 1; e <= nn && want_idx < 0; e++) {
                size_t best = 0;

                for (k = 0; k < ns; k++) {
                    size_t sl = strlen(stops[k]);

                    if (sl <= e && sl > best
                        && memcmp(norm + e - sl, stops[k], sl) == 0)
                    {
                        best = sl;
                        want_idx = (int) k;
                        want_len = e - sl;
                    }
                }
            }
            ref_ok &= idx1 == want_idx && n1 == want_len
                      && memcmp(one, norm, n1) == 0;
        }
        valid &= valid_utf8((const unsigned char *) one, n1);
        stopped += idx1 >= 0;
    }
    ok(same, "400 random byte strings: output independent of the split");
    ok(valid, "every released chunk is valid UTF-8");
    ok(ref_ok, "matches a brute-force earliest-ending stop search");
    ok(stopped > 50, "stops exercised (%d/400 matched)", stopped);
}


/* Work (automaton steps + bytes copied, counted by the stream) for n
 * bytes of input pushed in pieces of `piece` bytes; *released = bytes
 * released. */
static uint64_t
work_for(const char *const *stops, size_t n_stops, const char *pattern,
    size_t n, size_t piece, size_t *released)
{
    st_textstream *ts;
    st_error       err;
    char           buf[64];
    size_t         i, k, got, plen = strlen(pattern);
    uint64_t       w;

    *released = 0;
    if (st_textstream_create(&ts, stops, n_stops, &err) != ST_OK) {
        return UINT64_MAX;
    }
    for (i = 0; i < n; i += piece) {
        size_t m = n - i < piece ? n - i : piece;
        for (k = 0; k < m; k++) {
            buf[k] = pattern[(i + k) % plen];
        }
        st_textstream_push(ts, buf, m);
        (void) st_textstream_take(ts, &got);
        *released += got;
    }
    w = st_textstream_work(ts);
    st_textstream_free(ts);
    return w;
}


/* Linear time, by counting work rather than timing it: for inputs that
 * keep stop automata half-matched (KMP fall-backs, held text), the work
 * per input byte stays under a fixed bound, and doubling the input
 * doubles the work (within 5%). The bound: per byte 1 held append, at
 * most 2 amortised automaton steps per stop, and each byte is copied at
 * most once out and moved at most max-stop-length times while held:
 * 1 + 2 x 4 + 1 + 18 = 28 < 32. */
static void
test_linear(void)
{
    static const char *stops[] = { "ab", "needle in haystack", "aaaaaaaab",
                                   "\xE2\x82\xAC!" };
    static const struct {
        const char *pattern;
        size_t      piece;
    } cases[] = {
        { "a", 1 },                        /* "aaaaaaaab" half-matched */
        { "a", 7 },
        { "aaaaaaaac", 1 },                /* fall back at every 9th */
        { "needle in haystacc", 5 },       /* long partial matches */
        { "\xE2\x82\xAC\xE2\x82", 3 },     /* multi-byte, split */
    };
    const size_t n = 1 << 16;
    size_t       c, rel1, rel2;
    int          lin = 1, bounded = 1;

    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint64_t w1 = work_for(stops, 4, cases[c].pattern, n,
                               cases[c].piece, &rel1);
        uint64_t w2 = work_for(stops, 4, cases[c].pattern, 2 * n,
                               cases[c].piece, &rel2);
        double   ratio = (double) w2 / (double) w1;

        diag("pattern %zu, pieces of %zu: work %llu for %zu bytes, %llu for "
             "%zu (x%.3f), %.2f per byte", c, cases[c].piece,
             (unsigned long long) w1, n, (unsigned long long) w2, 2 * n,
             ratio, (double) w2 / (double) (2 * n));
        lin &= ratio > 1.9 && ratio < 2.1;
        bounded &= w2 <= 32 * (uint64_t) (2 * n);
        if (c == 0) {
            /* "aaaaaaaa" (8 bytes) can still start "aaaaaaaab" */
            ok(rel2 == 2 * n - 8, "%zu bytes of 'a' one byte at a time: all "
               "but the possible-stop tail released (%zu)", 2 * n, rel2);
        }
    }
    ok(bounded, "work per input byte under the fixed bound of 32");
    ok(lin, "twice the input, twice the work (within 5%%)");
}


int
main(void)
{
    (void) skip;
    (void) tap_shared_dir;
    (void) tap_root_dir;

    test_utf8();
    test_bytewise_hold();
    test_stops();
    test_split_invariance();
    test_linear();
    return done_testing();
}
