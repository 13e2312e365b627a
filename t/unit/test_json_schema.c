/*
 * JSON Schema -> grammar (TAP): a table of schemas, each compiled and
 * then sampled 1,000 times (seeded) through token masks on a byte-level
 * (BPE-like) and an SPM-like synthetic vocabulary; every output must
 * parse as JSON and validate against the schema, checked by the small
 * validator below (written from the JSON Schema text, not from the
 * compiler). Unsupported keywords and bad JSON give errors with where.
 */
#include "tap.h"
#include "engine/grammar.h"
#include "engine/json_schema.h"
#include "base/rng.h"
#include "starling/st_engine.h"

#include <locale.h>
#include <math.h>
#include <regex.h>
#include <sys/stat.h>


/* ---- validator ----------------------------------------------------- */

static size_t
utf8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return k;
}


static int jv_equal(const st_jv *a, const st_jv *b);

static int
jv_equal(const st_jv *a, const st_jv *b)
{
    if (a->type != b->type) {
        return 0;
    }
    switch (a->type) {
    case ST_JV_NULL: return 1;
    case ST_JV_BOOL: return a->b == b->b;
    case ST_JV_NUMBER: return a->num == b->num;
    case ST_JV_STRING:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case ST_JV_ARRAY:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            if (!jv_equal(a->items[i], b->items[i])) return 0;
        }
        return 1;
    case ST_JV_OBJECT:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            const st_jv *o = st_jv_get(b, a->keys[i]);
            if (o == NULL || !jv_equal(a->items[i], o)) return 0;
        }
        return 1;
    }
    return 0;
}


static int
type_ok(const char *t, const st_jv *v)
{
    if (strcmp(t, "null") == 0) return v->type == ST_JV_NULL;
    if (strcmp(t, "boolean") == 0) return v->type == ST_JV_BOOL;
    if (strcmp(t, "string") == 0) return v->type == ST_JV_STRING;
    if (strcmp(t, "object") == 0) return v->type == ST_JV_OBJECT;
    if (strcmp(t, "array") == 0) return v->type == ST_JV_ARRAY;
    if (strcmp(t, "number") == 0) return v->type == ST_JV_NUMBER;
    if (strcmp(t, "integer") == 0) {
        return v->type == ST_JV_NUMBER && v->num == floor(v->num);
    }
    return 0;
}


/* each test pattern (ECMA-262, as in the schemas) and the POSIX ERE
 * written by hand for the same language; the validator matches the
 * decoded string with the ERE (patterns of the table are unanchored
 * where the ECMA one is) */
static const struct {
    const char *ecma;
    const char *ere;
} patterns[] = {
    { "^\\d{3}-[A-Z]{2,4}$", "^[0-9]{3}-[A-Z]{2,4}$" },
    { "^(foo|ba[rz])+\\.txt$", "^(foo|ba[rz])+\\.txt$" },
    { "^[^\"\\\\a-y]+$", "^[^\"\\a-y]+$" },
    { "[\"\\\\] x*", "[\"\\] x*" },
    { "^a.{0,8}b$", "^a.{0,8}b$" },
    { "^(?:x|y\\d)?z{2,}(?<n>q)$", "^(x|y[0-9])?z{2,}(q)$" },
    { "^\\S+-\\D+$", "^[^[:space:]]+-[^0-9]+$" },
    { "^caf\\u00e9 \\x41\\.\\t?$", "^caf\xc3\xa9 A\\.\t?$" },
    { "ab|^c(d|)$", "ab|^c(d|)$" },
};


static int
pattern_ok(const char *ecma, const st_jv *v)
{
    regex_t re;
    int     rc;

    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        if (strcmp(patterns[i].ecma, ecma) == 0) {
            if (regcomp(&re, patterns[i].ere, REG_EXTENDED | REG_NOSUB)
                != 0)
            {
                return 0;
            }
            rc = regexec(&re, v->str, 0, NULL, 0) == 0
                 && strlen(v->str) == v->len;
            regfree(&re);
            return rc;
        }
    }
    return 0;
}


static int
ere_ok(const char *ere, const char *str)
{
    regex_t re;
    int     rc;

    if (regcomp(&re, ere, REG_EXTENDED | REG_NOSUB) != 0) {
        return 0;
    }
    rc = regexec(&re, str, 0, NULL, 0) == 0;
    regfree(&re);
    return rc;
}


#define DATE_ERE "([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
#define TIME_ERE "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?" \
    "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"

/* RFC 3339 full-date: the day exists in that month of that year */
static int
date_ok(const char *d)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };
    int y, m, day, leap;

    if (sscanf(d, "%4d-%2d-%2d", &y, &m, &day) != 3 || m < 1 || m > 12) {
        return 0;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return day >= 1 && day <= mdays[m - 1] + (m == 2 && leap);
}


static int
format_ok(const char *f, const st_jv *v)
{
    if (strcmp(f, "date") == 0) {
        return ere_ok("^" DATE_ERE "$", v->str) && date_ok(v->str);
    }
    if (strcmp(f, "time") == 0) {
        return ere_ok("^" TIME_ERE "$", v->str);
    }
    if (strcmp(f, "date-time") == 0) {
        return ere_ok("^" DATE_ERE "[Tt]" TIME_ERE "$", v->str)
               && date_ok(v->str);
    }
    if (strcmp(f, "uuid") == 0) {
        return ere_ok("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      "[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", v->str);
    }
    return 0;
}


static int validate(const st_jv *root, const st_jv *s, const st_jv *v);

static int
validate(const st_jv *root, const st_jv *s, const st_jv *v)
{
    const st_jv *k;

    if (s->type == ST_JV_BOOL) {
        return s->b;
    }
    if ((k = st_jv_get(s, "$ref")) != NULL) {
        const st_jv *t = NULL;
        if (strcmp(k->str, "#") == 0) t = root;
        else if (strncmp(k->str, "#/$defs/", 8) == 0)
            t = st_jv_get(st_jv_get(root, "$defs"), k->str + 8);
        else if (strncmp(k->str, "#/definitions/", 14) == 0)
            t = st_jv_get(st_jv_get(root, "definitions"), k->str + 14);
        return t != NULL && validate(root, t, v);
    }
    if ((k = st_jv_get(s, "type")) != NULL) {
        int any = 0;
        if (k->type == ST_JV_STRING) {
            any = type_ok(k->str, v);
        } else {
            for (size_t i = 0; i < k->n; i++) {
                any |= type_ok(k->items[i]->str, v);
            }
        }
        if (!any) return 0;
    }
    if ((k = st_jv_get(s, "const")) != NULL && !jv_equal(k, v)) {
        return 0;
    }
    if ((k = st_jv_get(s, "enum")) != NULL) {
        int any = 0;
        for (size_t i = 0; i < k->n; i++) any |= jv_equal(k->items[i], v);
        if (!any) return 0;
    }
    if ((k = st_jv_get(s, "anyOf")) != NULL) {
        int any = 0;
        for (size_t i = 0; i < k->n; i++) any |= validate(root, k->items[i], v);
        if (!any) return 0;
    }
    if ((k = st_jv_get(s, "oneOf")) != NULL) {
        int n = 0;
        for (size_t i = 0; i < k->n; i++) n += validate(root, k->items[i], v);
        if (n != 1) return 0;
    }
    if (v->type == ST_JV_STRING) {
        size_t n = utf8_len(v->str, v->len);
        if ((k = st_jv_get(s, "pattern")) && !pattern_ok(k->str, v)) return 0;
        if ((k = st_jv_get(s, "format")) && !format_ok(k->str, v)) return 0;
        if ((k = st_jv_get(s, "minLength")) && n < (size_t)k->num) return 0;
        if ((k = st_jv_get(s, "maxLength")) && n > (size_t)k->num) return 0;
    }
    if (v->type == ST_JV_NUMBER) {
        if ((k = st_jv_get(s, "minimum")) && v->num < k->num) return 0;
        if ((k = st_jv_get(s, "maximum")) && v->num > k->num) return 0;
        if ((k = st_jv_get(s, "exclusiveMinimum")) && v->num <= k->num)
            return 0;
        if ((k = st_jv_get(s, "exclusiveMaximum")) && v->num >= k->num)
            return 0;
    }
    if (v->type == ST_JV_ARRAY) {
        if ((k = st_jv_get(s, "minItems")) && v->n < (size_t)k->num) return 0;
        if ((k = st_jv_get(s, "maxItems")) && v->n > (size_t)k->num) return 0;
        if ((k = st_jv_get(s, "items")) != NULL) {
            for (size_t i = 0; i < v->n; i++) {
                if (!validate(root, k, v->items[i])) return 0;
            }
        }
    }
    if (v->type == ST_JV_OBJECT) {
        const st_jv *props = st_jv_get(s, "properties");
        const st_jv *add = st_jv_get(s, "additionalProperties");
        if ((k = st_jv_get(s, "required")) != NULL) {
            for (size_t i = 0; i < k->n; i++) {
                if (st_jv_get(v, k->items[i]->str) == NULL) return 0;
            }
        }
        for (size_t i = 0; i < v->n; i++) {
            const st_jv *ps = st_jv_get(props, v->keys[i]);
            /* a declared property twice is invalid output (a map's
             * keys may repeat: RFC 8259 only says SHOULD be unique) */
            for (size_t j = 0; ps != NULL && j < i; j++) {
                if (strcmp(v->keys[i], v->keys[j]) == 0) return 0;
            }
            if (ps != NULL) {
                if (!validate(root, ps, v->items[i])) return 0;
            } else if (add != NULL) {
                if (!validate(root, add, v->items[i])) return 0;
            }
        }
    }
    return 1;
}


/* ---- vocabularies (same shapes as test_grammar.c) ------------------- */

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
    for (uint32_t i = 0; i < v->n; i++) free(v->pieces[i]);
    free(v->pieces);
    free(v->lens);
    free(v->eog);
}

static const char *const tv_words[] = {
    "{", "}", "{\"", "\":", "\": ", "\",", "\", \"", "\"}", "\"", " \"",
    "[", "]", "[]", "{}", ",", ", ", ":", " ", "\n", "\\", "\\\"", "\\n",
    "\\u", "true", "false", "null", "tr", "ue", "0", "1", "12", "-", "-1",
    ".", ".5", "e", "e+", "00", "10", "42", "99", "100", "name", "age",
    "tags", "id", "kind", "a", "ab", "abc", "hello", " world", "\xc3",
    "\xa9", "\xc3\xa9", "caf\xc3", "\xe2\x82\xac", "\"name\"", "\"age\":",
    "\"tags\": [", "\"id\":", "1,", "],", "}]", "\"}]", "x", "\"red\"",
    "red", "green", "blue", "\"kind\":", "child", "ren", "children",
};

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
    tv_add(v, "", 0, 1);
}

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


/* token preferred when a run must wind down: the first allowed of these
 * pieces (so runs end; a uniform walk rarely closes deep strings) */
/* (-, b and q end the "patterns" schema's strings) */
static const char *const wind_down[] = {
    "\"", "-", "b", "q", "}", "]", ",", "0", "1", "a", "n", "u", "null", "true", "[", "{",
    "-", " ",
};


static int32_t
pick(const tvocab *tv, const uint32_t *mask, st_rng *rng, int step)
{
    uint32_t allowed[2048], n = 0;

    if (step > 40 && st_rng_uniform(rng) < 0.8) {
        for (uint32_t id = 0; id < tv->n; id++) {
            if (tv->eog[id] && ((mask[id >> 5] >> (id & 31)) & 1)) {
                return (int32_t)id;
            }
        }
        for (size_t w = 0; w < sizeof(wind_down) / sizeof(wind_down[0]); w++) {
            size_t wl = strlen(wind_down[w]);
            for (uint32_t id = 0; id < tv->n; id++) {
                if (tv->lens[id] == wl
                    && memcmp(tv->pieces[id], wind_down[w], wl) == 0
                    && ((mask[id >> 5] >> (id & 31)) & 1))
                {
                    return (int32_t)id;
                }
            }
        }
    }
    for (uint32_t id = 0; id < tv->n && n < 2048; id++) {
        if ((mask[id >> 5] >> (id & 31)) & 1) {
            allowed[n++] = id;
        }
    }
    if (n == 0) {
        return -1;
    }
    return (int32_t)allowed[st_rng_next(rng) % n];
}


static void
sample_schema(const char *name, const char *schema, const tvocab *tv,
    const char *vname, int runs)
{
    st_error err = { 0 };
    char *gbnf = NULL;
    st_grammar *g = NULL;
    st_grammar_vocab *v = NULL;
    st_jv *sj = NULL;
    uint32_t *mask = NULL;
    int bad = 0, incomplete = 0;

    if (!ok(st_json_schema_to_gbnf(schema, strlen(schema), &gbnf, NULL,
                                   &err) == ST_OK,
            "%s: schema compiles (%s)", name, err.msg)
        || !ok(st_grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err) == ST_OK,
               "%s: grammar parses (%s)", name, err.msg))
    {
        if (gbnf) diag("%s", gbnf);
        free(gbnf);
        return;
    }
    st_jv_parse(&sj, schema, strlen(schema), &err);
    st_grammar_vocab_create(&v, tv->n, (const char *const *)tv->pieces,
        tv->lens, tv->eog, &err);
    mask = malloc(st_grammar_mask_words(v) * sizeof(uint32_t));
    for (int r = 0; r < runs; r++) {
        st_grammar_matcher *m = NULL;
        st_rng rng;
        char out[8192];
        size_t n_out = 0;
        int complete = 0;
        st_jv *val = NULL;

        st_rng_seed(&rng, 1000003ull * (uint64_t)r + 7);
        st_grammar_matcher_create(&m, g, &err);
        for (int step = 0; step < 600; step++) {
            int32_t id;
            if (st_grammar_matcher_done(m)) {
                complete = 1;
                break;
            }
            if (st_grammar_mask(m, v, mask, &err) != ST_OK) {
                diag("mask: %s", err.msg);
                break;
            }
            id = pick(tv, mask, &rng, step);
            if (id < 0) {
                break;
            }
            if (tv->eog[id]) {
                complete = 1;
                break;
            }
            if (n_out + tv->lens[id] >= sizeof(out) - 1
                || st_grammar_accept_token(m, v, id, &err) != ST_OK)
            {
                break;
            }
            memcpy(out + n_out, tv->pieces[id], tv->lens[id]);
            n_out += tv->lens[id];
        }
        out[n_out] = '\0';
        if (!complete) {
            if (incomplete++ < 2) {
                diag("%s/%s run %d unfinished: %.300s", name, vname, r, out);
            }
        } else if (st_jv_parse(&val, out, n_out, &err) != ST_OK
                   || !validate(sj, sj, val))
        {
            if (bad < 3) {
                diag("%s/%s run %d invalid: %s (%s)", name, vname, r, out,
                     err.msg);
            }
            bad++;
        }
        st_jv_free(val);
        st_grammar_matcher_free(m);
    }
    ok(bad == 0 && incomplete == 0, "%s/%s: %d seeded runs, every output "
       "parses and validates (%d invalid, %d unfinished)", name, vname, runs,
       bad, incomplete);
    free(mask);
    st_grammar_vocab_free(v);
    st_jv_free(sj);
    st_grammar_free(g);
    free(gbnf);
}


static const struct {
    const char *name;
    const char *schema;
} schemas[] = {
    { "person",
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
      "\"minLength\":1,\"maxLength\":12},\"age\":{\"type\":\"integer\","
      "\"minimum\":0,\"maximum\":150},\"tags\":{\"type\":\"array\","
      "\"items\":{\"type\":\"string\",\"maxLength\":5},\"minItems\":1,"
      "\"maxItems\":3}},\"required\":[\"name\",\"age\",\"tags\"],"
      "\"additionalProperties\":false}" },
    { "optional",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},"
      "\"b\":{\"type\":\"null\"},\"c\":{\"type\":\"number\"}},"
      "\"required\":[\"b\"],\"additionalProperties\":false}" },
    { "enum-const",
      "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\","
      "\"green\",\"blue\",42,null]},\"v\":{\"const\":\"caf\\u00e9\"}},"
      "\"required\":[\"color\",\"v\"],\"additionalProperties\":false}" },
    { "anyof-types",
      "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"integer\","
      "\"exclusiveMinimum\":-20,\"maximum\":-3},{\"type\":[\"string\","
      "\"null\"],\"maxLength\":2}]},\"maxItems\":4}" },
    { "int-ranges",
      "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"integer\","
      "\"minimum\":17,\"maximum\":1234},{\"type\":\"integer\","
      "\"minimum\":-5},{\"type\":\"integer\",\"maximum\":-100}]},"
      "\"minItems\":2,\"maxItems\":5}" },
    { "ref-recursive",
      "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"id\":"
      "{\"type\":\"integer\",\"minimum\":0,\"maximum\":99},\"children\":{"
      "\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},"
      "\"maxItems\":2}},\"required\":[\"id\",\"children\"],"
      "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}" },
    { "map",
      "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}"
    },
    { "any", "{}" },
    { "patterns",
      "{\"type\":\"object\",\"properties\":{"
      "\"p0\":{\"type\":\"string\",\"pattern\":\"^\\\\d{3}-[A-Z]{2,4}$\"},"
      "\"p1\":{\"type\":\"string\",\"pattern\":\"^(foo|ba[rz])+\\\\.txt$\"},"
      "\"p2\":{\"type\":\"string\",\"pattern\":\"^[^\\\"\\\\\\\\a-y]+$\"},"
      "\"p3\":{\"type\":\"string\",\"pattern\":\"[\\\"\\\\\\\\] x*\"},"
      "\"p4\":{\"type\":\"string\",\"pattern\":\"^a.{0,8}b$\"},"
      "\"p5\":{\"type\":\"string\",\"pattern\":"
      "\"^(?:x|y\\\\d)?z{2,}(?<n>q)$\"},"
      "\"p6\":{\"pattern\":\"^\\\\S+-\\\\D+$\"},"
      "\"p7\":{\"type\":\"string\",\"pattern\":"
      "\"^caf\\\\u00e9 \\\\x41\\\\.\\\\t?$\"},"
      "\"p8\":{\"type\":[\"string\",\"null\"],\"pattern\":\"ab|^c(d|)$\"}},"
      "\"required\":[\"p0\",\"p1\",\"p2\",\"p3\",\"p4\",\"p5\",\"p6\","
      "\"p7\",\"p8\"],\"additionalProperties\":false}" },
    { "formats",
      "{\"type\":\"array\",\"items\":{\"anyOf\":["
      "{\"type\":\"string\",\"format\":\"date\"},"
      "{\"type\":\"string\",\"format\":\"time\"},"
      "{\"type\":\"string\",\"format\":\"date-time\"},"
      "{\"type\":\"string\",\"format\":\"uuid\"}]},"
      "\"minItems\":1,\"maxItems\":4}" },
    { "oneof",
      "{\"type\":\"array\",\"items\":{\"oneOf\":["
      "{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
      "{\"type\":\"string\",\"maxLength\":3},{\"const\":null},"
      "{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"}},"
      "\"required\":[\"k\"],\"additionalProperties\":false}]},"
      "\"maxItems\":3}" },
};


static void
test_errors(void)
{
    static const struct {
        const char *schema;
        const char *want;
    } cases[] = {
        { "{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}",
          "at '/': pattern: backreferences are not supported" },
        { "{\"type\":\"object\",\"properties\":{\"x\":{\"format\":"
          "\"email\"}}}", "at '/properties/x': unsupported format 'email'" },
        { "{\"pattern\":\"a(?=b)\"}", "lookahead/lookbehind" },
        { "{\"pattern\":\"\\\\bword\"}", "word boundary" },
        { "{\"pattern\":\"\\\\p{L}\"}", "unicode property" },
        { "{\"pattern\":\"a**\"}", "quantifier on a quantifier" },
        { "{\"pattern\":\"*a\"}", "nothing to repeat" },
        { "{\"pattern\":\"a^b\"}", "'^' inside the pattern" },
        { "{\"pattern\":\"a$b\"}", "'$' inside the pattern" },
        { "{\"pattern\":\"(^a)\"}", "'^' inside the pattern" },
        { "{\"pattern\":\"[b-a]\"}", "out of order" },
        { "{\"pattern\":\"(ab\"}", "unterminated group" },
        { "{\"pattern\":\"ab)\"}", "unbalanced ')'" },
        { "{\"pattern\":\"[ab\"}", "unterminated character class" },
        { "{\"pattern\":\"a{2000}\"}", "over 1000" },
        { "{\"pattern\":\"(a?)*\"}", "can match the empty string" },
        { "{\"pattern\":\"x(|b){2,}\"}", "can match the empty string" },
        { "{\"pattern\":\"x\",\"maxLength\":3}", "with minLength" },
        { "{\"type\":\"integer\",\"format\":\"int32\"}",
          "'format' on type 'integer'" },
        { "{\"anyOf\":[true],\"oneOf\":[true]}", "next to 'anyOf'" },
        { "{\"type\":\"number\",\"minimum\":1}", "integers only" },
        { "{\"type\":\"strin\"}", "unknown type 'strin'" },
        { "{\"$ref\":\"#/$defs/nope\"}", "points at nothing" },
        { "{\"$ref\":\"http://x\"}", "'$ref' must be" },
        { "{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}",
          "no integer" },
        { "{\"type\":\"array\",\"maxItems\":5000}", "0..1000" },
        { "{\"type\":\"object\",\"required\":[\"z\"]}", "'required' names" },
        { "{\"type\":\"string\",}", "JSON: line 1, column 18" },
        { "{\"type\":\n \"string\"", "JSON: line 2, column 10" },
        { "{\"oneOf\":[]}", "'oneOf' must be a non-empty array" },
        { "{\"type\":\"string\",\"contentEncoding\":\"base64\"}",
          "unsupported keyword 'contentEncoding'" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_error err = { 0 };
        char *g = NULL;
        st_status rc = st_json_schema_to_gbnf(cases[i].schema,
            strlen(cases[i].schema), &g, NULL, &err);
        ok(rc != ST_OK && g == NULL && strstr(err.msg, cases[i].want),
           "bad schema %zu rejected: %s", i, err.msg);
        free(g);
    }
}


static void
test_json_object(void)
{
    st_grammar *g = NULL;
    st_error err = { 0 };
    const char *t = st_json_object_gbnf();

    ok(st_grammar_parse(&g, t, strlen(t), NULL, &err) == ST_OK,
       "json_object grammar parses (%s)", err.msg);
    st_grammar_free(g);
}


/* every integer in -1500..1500 is accepted iff it lies in the bounds */
static void
test_int_ranges(void)
{
    static const char *const bounds[] = {
        "\"minimum\":0,\"maximum\":150", "\"minimum\":17,\"maximum\":1234",
        "\"minimum\":-5", "\"maximum\":-100", "\"minimum\":-999,\"maximum\":-10",
        "\"minimum\":-37,\"maximum\":1001", "\"exclusiveMinimum\":9,"
        "\"exclusiveMaximum\":100", "\"minimum\":1.5,\"maximum\":99.5",
        "\"minimum\":100", "\"maximum\":7", "\"minimum\":0,\"maximum\":0",
    };

    for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
        char schema[256], *gbnf = NULL, num[32];
        st_grammar *g = NULL;
        st_jv *sj = NULL, *val = NULL;
        st_error err = { 0 };
        int bad = 0;

        snprintf(schema, sizeof(schema), "{\"type\":\"integer\",%s}",
            bounds[b]);
        if (st_json_schema_to_gbnf(schema, strlen(schema), &gbnf, NULL, &err)
            != ST_OK
            || st_grammar_parse(&g, gbnf, strlen(gbnf), NULL, &err) != ST_OK)
        {
            ok(0, "integer %s compiles (%s)", bounds[b], err.msg);
            free(gbnf);
            continue;
        }
        st_jv_parse(&sj, schema, strlen(schema), &err);
        for (int n = -1500; n <= 1500; n++) {
            st_grammar_matcher *m = NULL;
            int got, want;
            snprintf(num, sizeof(num), "%d", n);
            st_jv_parse(&val, num, strlen(num), &err);
            want = validate(sj, sj, val);
            st_jv_free(val);
            st_grammar_matcher_create(&m, g, &err);
            got = st_grammar_matcher_accept(m, num, strlen(num), &err) == 1
                && st_grammar_matcher_accepting(m);
            st_grammar_matcher_free(m);
            if (got != want && bad++ < 3) {
                diag("%s: %d grammar %d schema %d", bounds[b], n, got, want);
            }
        }
        ok(bad == 0, "integer %s: -1500..1500 exact (%d wrong)", bounds[b],
           bad);
        st_jv_free(sj);
        st_grammar_free(g);
        free(gbnf);
    }
}


/* ---- engine: real tokenizers, batch invariance ------------------------ */

typedef struct {
    int32_t ids[512];
    size_t  n;
    char    text[4096];
    size_t  len;
    st_finish_reason finish;
} run_out;


static st_seq *
eng_submit(st_engine *e, const char *prompt, uint64_t seed,
    st_constraint *c, uint32_t max_tokens)
{
    st_request req;
    st_tokens toks = { 0 };
    st_seq *s = NULL;
    st_error err = { 0 };

    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.temperature = 1.0f;
    req.sampling.seed = seed;
    st_tokenize(st_engine_tokenizer(e), prompt, strlen(prompt), 1, 1, &toks,
                &err);
    req.prompt = toks.ids;
    req.n_prompt = toks.n;
    req.max_tokens = max_tokens;
    req.constraint = c;
    if (st_engine_submit(e, &req, &s, &err) != ST_OK) {
        diag("submit: %s", err.msg);
    }
    free(toks.ids);
    return s;
}


/* runs seqs[0..n) to the end, collecting each one's output */
static void
eng_run(st_engine *e, st_seq **seqs, run_out *outs, size_t n)
{
    st_error err = { 0 };

    memset(outs, 0, n * sizeof(*outs));
    while (st_engine_has_work(e)) {
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            st_seq_output o;
            st_seq_take(seqs[i], &o);
            for (size_t k = 0; k < o.n_tokens; k++) {
                const st_token_out *t = &o.tokens[k];
                if (t->token >= 0 && outs[i].n < 512) {
                    outs[i].ids[outs[i].n++] = t->token;
                }
                if (outs[i].len + t->text_len < sizeof(outs[i].text)) {
                    memcpy(outs[i].text + outs[i].len, t->text, t->text_len);
                    outs[i].len += t->text_len;
                }
            }
            if (o.finish != ST_FINISH_NONE) {
                outs[i].finish = o.finish;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        outs[i].text[outs[i].len] = '\0';
        st_seq_release(e, seqs[i]);
    }
}


static void
test_engine(const char *model, const char *name)
{
    char path[1024];
    st_engine_params p;
    st_engine *e = NULL;
    st_error err = { 0 };
    st_constraint *c = NULL, *c2 = NULL;
    const char *schema = schemas[0].schema;    /* person */
    st_jv *sj = NULL;
    int bad = 0, differ = 0, runs = 12;

    snprintf(path, sizeof(path), "%s/%s", tap_shared_dir(), model);
    st_engine_params_default(&p);
    p.path = path;
    p.n_threads = 1;
    p.max_seqs = 4;
    p.n_ctx = 512;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        skip("%s: %s", name, err.msg);
        return;
    }
    st_constraint_from_json_schema(&c, schema, strlen(schema), &err);
    st_constraint_from_gbnf(&c2, "root ::= [a-z ]{1,40} \".\"", 22, &err);
    st_jv_parse(&sj, schema, strlen(schema), &err);
    for (int r = 0; r < runs; r++) {
        st_seq *alone[1], *mixed[4];
        run_out a[1], m[4];
        st_jv *val = NULL;

        alone[0] = eng_submit(e, "Once upon a time", 100 + (uint64_t)r, c, 400);
        eng_run(e, alone, a, 1);
        /* the same request next to an unconstrained one, one with another
         * grammar and a second copy of itself with another seed */
        mixed[0] = eng_submit(e, "Lily", 7, NULL, 60);
        mixed[1] = eng_submit(e, "Once upon a time", 100 + (uint64_t)r, c,
                              400);
        mixed[2] = eng_submit(e, "The", 9, c2, 60);
        mixed[3] = eng_submit(e, "Once upon a time", 999, c, 400);
        eng_run(e, mixed, m, 4);
        if (a[0].n != m[1].n
            || memcmp(a[0].ids, m[1].ids, a[0].n * sizeof(int32_t)) != 0)
        {
            differ++;
        }
        if (a[0].finish != ST_FINISH_STOP
            || st_jv_parse(&val, a[0].text, a[0].len, &err) != ST_OK
            || !validate(sj, sj, val))
        {
            if (bad++ < 3) {
                diag("%s run %d (finish %d): %s", name, r, a[0].finish,
                     a[0].text);
            }
        }
        st_jv_free(val);
    }
    ok(bad == 0, "%s: %d constrained generations stop complete and "
       "validate (%d bad)", name, runs, bad);
    ok(differ == 0, "%s: tokens identical alone and in a mixed batch of 4 "
       "(%d differ)", name, differ);
    st_jv_free(sj);
    st_constraint_free(c);
    st_constraint_free(c2);
    st_engine_free(e);
}


/*
 * A grammar dead end mid-generation: root ::= "a" "b" with every token
 * whose piece holds a "b" banned by logit_bias. "a" is the only first
 * token; after it nothing can follow. The sequence must stop (not fail)
 * with the text so far and say why; the engine stays usable.
 */
static void
test_dead_end(const char *model, const char *name)
{
    char path[1024], piece[256];
    st_engine_params p;
    st_engine *e = NULL;
    st_error err = { 0 };
    st_constraint *c = NULL;
    const st_tokenizer *tok;
    st_logit_bias *bias;
    size_t n_bias = 0, n_out = 0;
    uint32_t n_vocab, id;
    st_request req;
    st_tokens toks = { 0 };
    st_seq *s = NULL, *after[1];
    st_seq_output o;
    char text[64];
    st_finish_reason finish = ST_FINISH_NONE;
    int dead = 0, gen = 0;
    run_out a[1];

    snprintf(path, sizeof(path), "%s/%s", tap_shared_dir(), model);
    st_engine_params_default(&p);
    p.path = path;
    p.n_threads = 1;
    p.max_seqs = 2;
    p.n_ctx = 256;
    if (st_engine_create(&e, &p, &err) != ST_OK) {
        skip("%s: %s", name, err.msg);
        return;
    }
    tok = st_engine_tokenizer(e);
    n_vocab = st_tokenizer_n_vocab(tok);
    bias = calloc(n_vocab, sizeof(*bias));
    for (id = 0; bias != NULL && id < n_vocab; id++) {
        size_t n = st_token_to_piece(tok, (int32_t)id, piece, sizeof(piece),
                                     0);
        if (n <= sizeof(piece) && memchr(piece, 'b', n) != NULL) {
            bias[n_bias].token = (int32_t)id;
            bias[n_bias].bias = -INFINITY;
            n_bias++;
        }
    }
    st_constraint_from_gbnf(&c, "root ::= \"a\" \"b\"", 16, &err);
    memset(&req, 0, sizeof(req));
    st_sampling_defaults(&req.sampling);
    req.sampling.seed = 5;
    req.sampling.logit_bias = bias;
    req.sampling.n_logit_bias = n_bias;
    st_tokenize(tok, "Once", 4, 1, 1, &toks, &err);
    req.prompt = toks.ids;
    req.n_prompt = toks.n;
    req.max_tokens = 20;
    req.constraint = c;
    if (!ok(bias != NULL && c != NULL && n_bias > 0
            && st_engine_submit(e, &req, &s, &err) == ST_OK,
            "%s dead end: submitted with %zu tokens banned (%s)", name,
            n_bias, err.msg))
    {
        goto done;
    }
    while (st_engine_has_work(e)) {
        if (st_engine_step(e, &err) != ST_OK) {
            diag("step: %s", err.msg);
            break;
        }
        st_seq_take(s, &o);
        for (size_t k = 0; k < o.n_tokens; k++) {
            gen += o.tokens[k].token >= 0;
            if (n_out + o.tokens[k].text_len < sizeof(text)) {
                memcpy(text + n_out, o.tokens[k].text, o.tokens[k].text_len);
                n_out += o.tokens[k].text_len;
            }
        }
        if (o.finish != ST_FINISH_NONE) {
            finish = o.finish;
            dead = o.dead_end;
            if (o.finish == ST_FINISH_ERROR) {
                diag("error: %s", o.error);
            }
        }
    }
    st_seq_release(e, s);
    text[n_out] = '\0';
    ok(finish == ST_FINISH_STOP && dead, "%s dead end: stops (finish %d, "
       "dead_end %d)", name, finish, dead);
    ok(strcmp(text, "a") == 0 && gen == 1, "%s dead end: the text so far "
       "kept (\"%s\", %d tokens)", name, text, gen);
    /* the engine goes on serving */
    after[0] = eng_submit(e, "Once upon a time", 3, NULL, 8);
    eng_run(e, after, a, 1);
    ok(a[0].finish == ST_FINISH_LENGTH, "%s dead end: the next request "
       "runs (finish %d)", name, a[0].finish);
done:
    free(toks.ids);
    free(bias);
    st_constraint_free(c);
    st_engine_free(e);
}


int
main(int argc, char **argv)
{
    tvocab bpe, spm;
    /* 1000 seeded runs per schema and vocabulary; the valgrind pass of
     * make test runs without ../shared (to stay short): 40 there */
    struct stat sb;
    int runs = argc > 1 ? atoi(argv[1])
        : stat(tap_shared_dir(), &sb) == 0 ? 1000 : 40;

    /* the validator's EREs count characters, not bytes */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL) {
        diag("no C.UTF-8 locale: pattern checks count bytes");
    }
    test_errors();
    test_json_object();
    test_int_ranges();
    tv_bpe(&bpe);
    tv_spm(&spm);
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        sample_schema(schemas[i].name, schemas[i].schema, &bpe, "bpe", runs);
        sample_schema(schemas[i].name, schemas[i].schema, &spm, "spm", runs);
    }
    tv_free(&bpe);
    tv_free(&spm);
    test_engine("models/stories260K.gguf", "stories260K (SPM)");
    test_engine("models/synthetic/synth-qwen2-F16-embQ4_0.gguf",
                "synth-qwen2 (BPE)");
    test_dead_end("models/stories260K.gguf", "stories260K (SPM)");
    test_dead_end("models/synthetic/synth-qwen2-F16-embQ4_0.gguf",
                  "synth-qwen2 (BPE)");
    return done_testing();
}
