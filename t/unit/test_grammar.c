/*
 * GBNF parser, matcher and token masks (TAP).
 *
 * Masks are checked against brute force (feed each token's bytes to a
 * clone of the matcher), on byte-level (BPE-like: every byte plus merged
 * multi-byte pieces, including pieces that split UTF-8 sequences) and
 * SPM-like vocabularies (pieces with a leading space, <0xNN> byte
 * fallbacks rendered as single bytes).
 */
#include "tap.h"
#include "engine/grammar.h"
#include "base/rng.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>


static st_grammar *
gparse(const char *text, st_error *err)
{
    st_grammar *g = NULL;

    memset(err, 0, sizeof(*err));
    if (st_grammar_parse(&g, text, strlen(text), NULL, err) != ST_OK) {
        return NULL;
    }
    return g;
}


/* 1 if the n bytes of s are a sentence of g, 0 if not, -1 on error */
static int
matches_len(const st_grammar *g, const char *s, size_t n)
{
    st_grammar_matcher *m;
    st_error err;
    int rc;

    if (st_grammar_matcher_create(&m, g, &err) != ST_OK) {
        return -1;
    }
    rc = st_grammar_matcher_accept(m, s, n, &err);
    if (rc == 1) {
        rc = st_grammar_matcher_accepting(m);
    }
    st_grammar_matcher_free(m);
    return rc;
}


static int
matches(const st_grammar *g, const char *s)
{
    return matches_len(g, s, strlen(s));
}


static void
test_parse_errors(void)
{
    static const struct {
        const char *text;
        const char *want;   /* substring of the message */
    } cases[] = {
        { "root ::= \"abc", "line 1, column 10: unterminated string" },
        { "root ::= [a-", "line 1, column 10: unterminated character" },
        { "root ::= foo", "line 1, column 10: undefined rule 'foo'" },
        { "root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' "
          "is defined twice" },
        { "root ::= ( \"a\" ", "expected ')'" },
        { "root ::= \"a\" )", "line 1, column 14: unmatched ')'" },
        { "root ::= * \"a\"", "line 1, column 10: '*' has nothing" },
        { "root ::= \"a\"{3,1}", "n < m" },
        { "root ::= \"a\"{2000}", "over 1000" },
        { "root ::= [z-a]", "reversed" },
        { "root ::= \"\\q\"", "unknown escape" },
        { "root ::= \"\\xZZ\"", "hex digit" },
        { "\n\n  root \"a\"", "line 3, column 8: expected '::='" },
        { "a ::= \"x\"", "no rule named 'root'" },
        { "root ::= root \"a\" | \"b\"", "left-recursive" },
        { "root ::= x\nx ::= y? root\ny ::= \"a\"", "left-recursive" },
        { "root ::= \"a\" b ::= \"c\"", "missing newline" },
        { "root ::= [\xff]", "invalid UTF-8" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_error err;
        st_grammar *g = gparse(cases[i].text, &err);
        ok(g == NULL && err.code == ST_ERR_INVALID
           && strstr(err.msg, cases[i].want) != NULL,
           "bad grammar %zu rejected: %s", i, err.msg);
        st_grammar_free(g);
    }
}


static void
test_match(void)
{
    static const struct {
        const char *grammar;
        const char *yes[6];
        const char *no[6];
    } cases[] = {
        { "root ::= \"ab\" | \"c\"", { "ab", "c" }, { "", "a", "abc", "b" } },
        { "root ::= [a-c]+ \"!\"?", { "a", "abc!", "cc" },
          { "", "!", "ad", "a!!" } },
        { "root ::= [^\"\\\\]*", { "", "x y", "\xc3\xa9\xe2\x82\xac" },
          { "\"", "a\\" } },
        { "root ::= \"x\"{2,3}", { "xx", "xxx" }, { "x", "xxxx" } },
        { "root ::= (\"a\" \"b\"){2,}", { "abab", "ababab" },
          { "ab", "aba" } },
        { "root ::= item (\",\" item)*\nitem ::= [0-9]{1,2}  # comment\n",
          { "1", "1,22,3" }, { "", "123", "1,", ",1" } },
        { "root ::= \"(\" inner \")\"\ninner ::= root | \"\"",
          { "()", "((()))" }, { "(", "(()", ")(" } },
        { "root ::= \"\\u00e9\" [\\U0001F600-\\U0001F64F] .",
          { "\xc3\xa9\xf0\x9f\x98\x80z", "\xc3\xa9\xf0\x9f\x99\x8f\xe2\x82\xac" },
          { "\xc3\xa9\xf0\x9f\x98\x80", "e\xf0\x9f\x98\x80z" } },
        { "root ::= (\n  \"a\"\n  | \"b\"\n)\n", { "a", "b" }, { "ab" } },
        { "root ::= \"a\" |\n  \"b\"", { "a", "b" }, { "" } },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_error err;
        st_grammar *g = gparse(cases[i].grammar, &err);
        if (!ok(g != NULL, "grammar %zu parses (%s)", i, err.msg)) {
            continue;
        }
        for (size_t k = 0; k < 6 && cases[i].yes[k]; k++) {
            ok(matches(g, cases[i].yes[k]) == 1, "grammar %zu accepts "
               "\"%s\"", i, cases[i].yes[k]);
        }
        for (size_t k = 0; k < 6 && cases[i].no[k]; k++) {
            ok(matches(g, cases[i].no[k]) == 0, "grammar %zu rejects "
               "\"%s\"", i, cases[i].no[k]);
        }
        st_grammar_free(g);
    }
}


/* ---- synthetic vocabularies ------------------------------------------ */

typedef struct {
    char     **pieces;
    uint32_t  *lens;
    uint8_t   *eog;
    uint32_t   n;
} tvocab;


static void
tv_add(tvocab *v, const char *s, size_t len, int eog)
{
    v->pieces = realloc(v->pieces, (v->n + 1) * sizeof(char *));
    v->lens = realloc(v->lens, (v->n + 1) * sizeof(uint32_t));
    v->eog = realloc(v->eog, (v->n + 1));
    v->pieces[v->n] = malloc(len + 1);
    memcpy(v->pieces[v->n], s, len);
    v->lens[v->n] = (uint32_t)len;
    v->eog[v->n] = (uint8_t)eog;
    v->n++;
}


static void
tv_free(tvocab *v)
{
    for (uint32_t i = 0; i < v->n; i++) {
        free(v->pieces[i]);
    }
    free(v->pieces);
    free(v->lens);
    free(v->eog);
}


static const char *const tv_words[] = {
    "{", "}", "{\"", "\":", "\": ", "\",", "\", \"", "\"}", "\"", " \"",
    "[", "]", "[]", "{}", ",", ", ", ":", " ", "  ", "\n", "\\", "\\\"",
    "\\n", "\\u", "true", "false", "null", "tr", "ue", "fa", "lse", "nu",
    "0", "1", "12", "-", "-1", ".", ".5", "e", "e+", "E-", "00", "10", "42",
    "name", "age", "tags", "id", "ok", "a", "b", "ab", "abc", "hello",
    " world", "\xc3", "\xa9", "\xc3\xa9", "caf", "caf\xc3", "\xe2\x82",
    "\xac", "\xe2\x82\xac", "\xf0\x9f", "\x98\x80", "\"name\"", "\"age\":",
    "1,", "],", "}]", "\"}]", "x", "yz", "<", ">", "\t",
};


/* byte-level BPE-like: every byte, then merged pieces; eos last */
static void
tv_bpe(tvocab *v)
{
    memset(v, 0, sizeof(*v));
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tv_add(v, &c, 1, 0);
    }
    for (size_t i = 0; i < sizeof(tv_words) / sizeof(tv_words[0]); i++) {
        tv_add(v, tv_words[i], strlen(tv_words[i]), 0);
    }
    tv_add(v, "", 0, 1);           /* <|endoftext|> */
}


/* SPM-like: <unk>, <s>, </s> (no bytes; </s> is eog), 256 byte-fallback
 * tokens, words with a leading space (the "\xe2\x96\x81" marker already
 * rendered as a space), duplicates of single bytes */
static void
tv_spm(tvocab *v)
{
    memset(v, 0, sizeof(*v));
    tv_add(v, "", 0, 0);
    tv_add(v, "", 0, 0);
    tv_add(v, "", 0, 1);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tv_add(v, &c, 1, 0);
    }
    for (size_t i = 0; i < sizeof(tv_words) / sizeof(tv_words[0]); i++) {
        char buf[64];
        size_t n = strlen(tv_words[i]);
        tv_add(v, tv_words[i], n, 0);
        buf[0] = ' ';
        memcpy(buf + 1, tv_words[i], n);
        tv_add(v, buf, n + 1, 0);
    }
}


/* brute force: token allowed iff its bytes are accepted (eog: iff the
 * matcher accepts); returns the number of mismatches with mask */
static int
check_mask(st_grammar_matcher *m, const tvocab *tv, const uint32_t *mask)
{
    int bad = 0;

    for (uint32_t id = 0; id < tv->n; id++) {
        int want, got = (mask[id >> 5] >> (id & 31)) & 1;
        if (tv->eog[id]) {
            want = st_grammar_matcher_accepting(m);
        } else if (tv->lens[id] == 0) {
            want = 0;
        } else {
            st_grammar_matcher *c;
            st_error err;
            if (st_grammar_matcher_clone(&c, m, &err) != ST_OK) {
                return -1;
            }
            want = st_grammar_matcher_accept(c, tv->pieces[id], tv->lens[id],
                &err) == 1;
            st_grammar_matcher_free(c);
        }
        if (want != got) {
            if (bad < 3) {
                diag("token %u (\"%.*s\"): mask %d, brute force %d", id,
                     (int)tv->lens[id], tv->pieces[id], got, want);
            }
            bad++;
        }
    }
    return bad;
}


/*
 * Random walks: each step picks a uniformly random allowed token (the
 * seeded RNG), checks the mask against brute force every `check_every`
 * steps, and stops at eog or `done`. The output must be a sentence.
 */
static void
random_walks(const char *name, const char *grammar, const tvocab *tv,
    int runs, int check_every)
{
    st_error err;
    st_grammar *g = gparse(grammar, &err);
    st_grammar_vocab *v = NULL;
    uint32_t *mask;
    int bad_mask = 0, bad_out = 0, stuck = 0, ended = 0;

    if (!ok(g != NULL, "%s: grammar parses (%s)", name, err.msg)) {
        return;
    }
    if (!ok(st_grammar_vocab_create(&v, tv->n, (const char *const *)
            tv->pieces, tv->lens, tv->eog, &err) == ST_OK,
            "%s: vocab builds (%s)", name, err.msg))
    {
        st_grammar_free(g);
        return;
    }
    mask = malloc(st_grammar_mask_words(v) * sizeof(uint32_t));
    for (int r = 0; r < runs; r++) {
        st_grammar_matcher *m;
        st_rng rng;
        char out[4096];
        size_t n_out = 0;

        st_rng_seed(&rng, (uint64_t)r + 1);
        if (st_grammar_matcher_create(&m, g, &err) != ST_OK) {
            bad_out++;
            break;
        }
        for (int step = 0; step < 400; step++) {
            uint32_t allowed[1024], n_allowed = 0, id;
            if (st_grammar_matcher_done(m)) {
                ended++;
                break;
            }
            if (st_grammar_mask(m, v, mask, &err) != ST_OK) {
                diag("mask: %s", err.msg);
                bad_mask++;
                break;
            }
            if (step % check_every == 0 && check_mask(m, tv, mask) != 0) {
                bad_mask++;
            }
            for (id = 0; id < tv->n && n_allowed < 1024; id++) {
                if ((mask[id >> 5] >> (id & 31)) & 1) {
                    allowed[n_allowed++] = id;
                }
            }
            if (n_allowed == 0) {
                stuck++;
                break;
            }
            id = allowed[st_rng_next(&rng) % n_allowed];
            if (tv->eog[id]) {
                ended++;
                break;
            }
            if (n_out + tv->lens[id] >= sizeof(out)
                || st_grammar_accept_token(m, v, (int32_t)id, &err) != ST_OK)
            {
                bad_out++;
                break;
            }
            memcpy(out + n_out, tv->pieces[id], tv->lens[id]);
            n_out += tv->lens[id];
        }
        out[n_out] = '\0';
        /* (the output may hold NUL bytes: its length, not strlen) */
        if (st_grammar_matcher_accepting(m) && matches_len(g, out, n_out) != 1)
        {
            if (bad_out < 3) {
                diag("%s run %d: output not a sentence: %s", name, r, out);
            }
            bad_out++;
        }
        st_grammar_matcher_free(m);
    }
    ok(bad_mask == 0, "%s: masks equal brute force (%d bad)", name,
       bad_mask);
    ok(bad_out == 0 && stuck == 0, "%s: %d runs, %d complete, every "
       "output a sentence (%d bad, %d stuck)", name, runs, ended, bad_out,
       stuck);
    free(mask);
    st_grammar_vocab_free(v);
    st_grammar_free(g);
}


static const char *const json_gbnf =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" "
    "| \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws "
    "value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" "
    "([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? "
    "([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";


static void
test_masks(void)
{
    tvocab bpe, spm;
    struct stat sb;
    /* the valgrind pass of make test runs without ../shared: fewer runs */
    int runs = stat(tap_shared_dir(), &sb) == 0 ? 1000 : 40;

    tv_bpe(&bpe);
    tv_spm(&spm);
    random_walks("bpe json", json_gbnf, &bpe, runs, 41);
    random_walks("spm json", json_gbnf, &spm, runs, 41);
    random_walks("bpe utf8", "root ::= \"caf\" [\\u00e9\\u20ac]{1,3} "
                 "\"\\\"\"", &bpe, runs / 5, 1);
    random_walks("spm words", "root ::= (\" \" [a-z]+){1,4}", &spm,
                 runs * 3 / 10, 1);
    random_walks("bpe counted", "root ::= \"[\" ([0-9] \",\"){2,5} \"]\"",
                 &bpe, runs * 3 / 10, 1);
    tv_free(&bpe);
    tv_free(&spm);
}


/* ---- grammar files (t/data/grammars, see its README) ----------------- */

static char *
slurp(const char *path, size_t *len)
{
    FILE  *f = fopen(path, "rb");
    char  *buf;
    long   n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}


/* the value of each "# key: value" line, "\n"/"\t" decoded, one by one:
 * returns the next one after *at (NULL when none) */
static const char *
comment_value(const char *text, const char *key, const char **at,
    char *out, size_t cap)
{
    size_t      kl = strlen(key);
    const char *p = *at ? *at : text;

    while ((p = strstr(p, "# ")) != NULL) {
        const char *v = p + 2, *eol;
        size_t      n = 0;
        p = v;
        if (strncmp(v, key, kl) != 0 || v[kl] != ':' || v[kl + 1] != ' ') {
            continue;
        }
        v += kl + 2;
        eol = strchr(v, '\n');
        if (eol == NULL) {
            eol = v + strlen(v);
        }
        for (; v < eol && n + 1 < cap; v++) {
            if (v[0] == '\\' && v + 1 < eol && (v[1] == 'n' || v[1] == 't')) {
                out[n++] = v[1] == 'n' ? '\n' : '\t';
                v++;
            } else {
                out[n++] = *v;
            }
        }
        out[n] = '\0';
        *at = eol;
        return out;
    }
    return NULL;
}


static void
test_grammar_files(int runs)
{
    char dir[1024], path[1400], want[512];
    DIR *d;
    struct dirent *de;
    tvocab bpe;
    int n_good = 0, n_bad = 0;

    tv_bpe(&bpe);
    for (int bad = 0; bad < 2; bad++) {
        snprintf(dir, sizeof(dir), "%s/t/data/grammars%s", tap_root_dir(),
                 bad ? "/bad" : "");
        d = opendir(dir);
        if (!ok(d != NULL, "grammar files in %s", dir)) {
            continue;
        }
        while ((de = readdir(d)) != NULL) {
            size_t nl = strlen(de->d_name), len = 0;
            const char *at = NULL;
            char *text;
            st_grammar *g;
            st_error err;

            if (nl < 6 || strcmp(de->d_name + nl - 5, ".gbnf") != 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            text = slurp(path, &len);
            if (!ok(text != NULL, "%s read", de->d_name)) {
                continue;
            }
            memset(&err, 0, sizeof(err));
            g = NULL;
            st_grammar_parse(&g, text, len, NULL, &err);
            if (bad) {
                n_bad++;
                if (comment_value(text, "expect", &at, want, sizeof(want))
                    == NULL)
                {
                    want[0] = '\0';
                }
                ok(g == NULL && err.code == ST_ERR_INVALID && want[0]
                   && strstr(err.msg, want) != NULL,
                   "bad/%s rejected: %s", de->d_name, err.msg);
            } else if (ok(g != NULL, "%s parses (%s)", de->d_name, err.msg)) {
                char sentence[512];
                n_good++;
                at = NULL;
                while (comment_value(text, "yes", &at, sentence,
                                     sizeof(sentence)))
                {
                    ok(matches(g, sentence) == 1, "%s accepts \"%s\"",
                       de->d_name, sentence);
                }
                at = NULL;
                while (comment_value(text, "no", &at, sentence,
                                     sizeof(sentence)))
                {
                    ok(matches(g, sentence) == 0, "%s rejects \"%s\"",
                       de->d_name, sentence);
                }
                random_walks(de->d_name, text, &bpe, runs, 7);
            }
            st_grammar_free(g);
            free(text);
        }
        closedir(d);
    }
    ok(n_good >= 6 && n_bad >= 9, "%d grammar files parse, %d bad ones "
       "rejected", n_good, n_bad);
    tv_free(&bpe);
}


/* llama.cpp's own grammars (the .gbnf files of its grammars folder),
 * where ST_LLAMA_GRAMMARS names one (read at test time only, never
 * copied here) */
static void
test_llama_grammars(void)
{
    const char *dir = getenv("ST_LLAMA_GRAMMARS");
    char path[1400];
    DIR *d;
    struct dirent *de;
    int n = 0;

    if (dir == NULL || (d = opendir(dir)) == NULL) {
        skip("llama.cpp grammars: set ST_LLAMA_GRAMMARS to its grammars/");
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name), len = 0;
        char *text;
        st_grammar *g = NULL;
        st_error err;

        if (nl < 6 || strcmp(de->d_name + nl - 5, ".gbnf") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if ((text = slurp(path, &len)) == NULL) {
            continue;
        }
        memset(&err, 0, sizeof(err));
        ok(st_grammar_parse(&g, text, len, NULL, &err) == ST_OK,
           "llama.cpp %s parses (%s)", de->d_name, err.msg);
        st_grammar_free(g);
        free(text);
        n++;
    }
    closedir(d);
    ok(n > 0, "llama.cpp grammars: %d files", n);
}


int
main(void)
{
    test_parse_errors();
    test_match();
    test_masks();
    {
        struct stat sb;     /* fewer walks in the valgrind pass, as above */
        test_grammar_files(stat(tap_shared_dir(), &sb) == 0 ? 100 : 20);
    }
    test_llama_grammars();
    return done_testing();
}
