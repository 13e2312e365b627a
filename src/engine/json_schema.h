/*
 * JSON Schema -> GBNF compiler (json_schema.c) and the small JSON tree it
 * reads schemas with (json_schema_value.c; the engine has no JSON
 * library, the API layer's yajl stays above it).
 *
 * Supported (what OpenAI `strict: true` schemas use): type (one name or a
 * list), object with properties / required / additionalProperties (false,
 * or a schema when there are no properties), array with items / minItems /
 * maxItems, string with minLength / maxLength, or with a pattern (a
 * regex subset, json_schema_pattern.c) or a format (date, time,
 * date-time, uuid), integer with minimum /
 * maximum / exclusiveMinimum / exclusiveMaximum, number, boolean, null,
 * enum, const, anyOf, oneOf (compiled as anyOf, as llama.cpp does: exact
 * when the alternatives exclude each other), $ref to "#", "#/$defs/NAME" or
 * "#/definitions/NAME" (recursion allowed), {} / true (any JSON value).
 * Annotations (title, description, default, examples, $schema, $id,
 * $comment, strict) are ignored. Anything else is an error naming the
 * keyword and its JSON pointer, never silently dropped.
 *
 * Generated text: one optional leading space (an SPM model's first piece
 * usually starts with one), then the value, nothing after it;
 * properties in declared order; whitespace between
 * tokens limited (at most one newline and 20 spaces/tabs), so a model
 * cannot run on forever in whitespace; strings never contain \u escapes of
 * surrogates (so their length in code points is exact); integers at most
 * 16 digits unless bounds say otherwise; a property not in `required` may
 * be left out; when additionalProperties is absent only the declared
 * properties are produced (a valid subset).
 */
#ifndef ST_JSON_SCHEMA_H
#define ST_JSON_SCHEMA_H

#include "starling/st_common.h"

#include <stdint.h>

/* ---- JSON tree ------------------------------------------------------ */

typedef enum {
    ST_JV_NULL, ST_JV_BOOL, ST_JV_NUMBER, ST_JV_STRING, ST_JV_ARRAY,
    ST_JV_OBJECT
} st_jv_type;

typedef struct st_jv st_jv;
struct st_jv {
    st_jv_type type;
    int        b;          /* BOOL */
    double     num;        /* NUMBER */
    int        is_int;     /* NUMBER written without fraction/exponent */
    int64_t    i;          /* NUMBER, when is_int and it fits */
    char      *str;        /* STRING (UTF-8, NUL-terminated); NUMBER: text */
    size_t     len;        /* STRING bytes */
    st_jv    **items;      /* ARRAY items / OBJECT values */
    char     **keys;       /* OBJECT keys (NUL-terminated) */
    size_t    *key_lens;
    size_t     n;
};

/* Parses text[0..len) (one JSON value, RFC 8259; depth <= 128).
 * ST_ERR_INVALID with "line L, column C: ..." on bad JSON. */
st_status st_jv_parse(st_jv **out, const char *text, size_t len,
    st_error *err);
void st_jv_free(st_jv *v);
/* member of an object, or NULL */
const st_jv *st_jv_get(const st_jv *obj, const char *key);

/* ---- compiler ------------------------------------------------------- */

/* Compiles a JSON schema (JSON text) to GBNF text with root rule "root"
 * (*gbnf malloc'd, NUL-terminated). ST_ERR_INVALID for bad JSON;
 * ST_ERR_UNSUPPORTED naming the keyword and its JSON pointer. */
st_status st_json_schema_to_gbnf(const char *schema, size_t len,
    char **gbnf, size_t *gbnf_len, st_error *err);

/* json_schema_pattern.c: GBNF (an expression, malloc'd) of the JSON
 * text of a string whose value matches the ECMA-262 pattern[0..len) (the
 * subset listed there); ST_ERR_UNSUPPORTED naming what is not supported,
 * with its offset. */
st_status st_js_pattern_gbnf(const char *pattern, size_t len, char **out,
    st_error *err);
/* GBNF expression of a string of that `format`, or NULL if unsupported */
const char *st_js_format_gbnf(const char *format);

/* GBNF of any JSON object (response_format json_object) */
const char *st_json_object_gbnf(void);

#endif /* ST_JSON_SCHEMA_H */
