/*
 * Output-constraint fields of the generating surfaces (/v1/completions,
 * /v1/chat/completions, /execute):
 *
 *   "response_format": {"type": "text"}
 *                      {"type": "json_object"}
 *                      {"type": "json_schema", "json_schema": {"name": ...,
 *                       "schema": {...}, "strict": true|false,
 *                       "description": ...}}
 *   "grammar": "GBNF text"          (llama.cpp's extension field)
 *
 * The schema (or grammar) is compiled here, at parse time, so that a bad
 * one is a 400 naming where it is wrong. "strict": false schemas are
 * enforced exactly like strict ones (the output always validates).
 */
#include "st_api_format.h"
#include "st_api_field.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
st_api_constraint_err(st_api_request *req, const char *field,
    const st_error *err, int *nomem)
{
    if (err->code == ST_ERR_NOMEM) {
        *nomem = 1;
        return;
    }
    st_api_err(req, field, err->code == ST_ERR_UNSUPPORTED ? "unsupported"
               : "invalid", "", "%s", err->msg);
}


/* js holds "name", "strict" and "schema" (chat's response_format.json_schema,
 * or the Responses API's flat text.format); field names it in errors.
 * need_schema: a missing schema is a 400 (Responses), else any object
 * (chat, as OpenAI does). */
static void
st_api_json_schema(st_api_request *req, yajl_val js, const char *field,
    int need_schema, int *nomem)
{
    yajl_val  schema, v;
    st_jbuf   b;
    st_error  err = { ST_OK, "" };
    char      f[64];

    snprintf(f, sizeof(f), "%s.name", field);
    v = st_api_opt(js, "name");
    if (v != NULL && v->type != yajl_t_string) {
        st_api_type_err(req, f, v, "a string");
        return;
    }
    snprintf(f, sizeof(f), "%s.strict", field);
    v = st_api_opt(js, "strict");
    if (v != NULL && v->type != yajl_t_true && v->type != yajl_t_false
        && v->type != yajl_t_null)
    {
        st_api_type_err(req, f, v, "a boolean");
        return;
    }
    snprintf(f, sizeof(f), "%s.schema", field);
    schema = st_api_opt(js, "schema");
    if (schema == NULL && need_schema) {
        st_api_err(req, f, "required", "", "%s is required for type "
                   "json_schema", f);
        return;
    }
    if (schema == NULL) {
        /* OpenAI: no schema means any JSON object */
        if (st_constraint_json_object(&req->constraint, &err) != ST_OK) {
            st_api_constraint_err(req, field, &err, nomem);
        }
        return;
    }
    if (schema->type != yajl_t_object && schema->type != yajl_t_true) {
        st_api_type_err(req, f, schema, "an object");
        return;
    }
    st_jbuf_init(&b);
    st_api_json_dump(&b, schema, 0);   /* compact, as the compiler reads it */
    if (b.failed) {
        st_jbuf_free(&b);
        *nomem = 1;
        return;
    }
    if (st_constraint_from_json_schema(&req->constraint, b.data, b.len, &err)
        != ST_OK)
    {
        st_api_constraint_err(req, f, &err, nomem);
    }
    st_jbuf_free(&b);
}


static void
st_api_chat_json_schema(st_api_request *req, yajl_val rf, int *nomem)
{
    yajl_val  js;

    js = st_api_opt(rf, "json_schema");
    if (js == NULL) {
        st_api_err(req, "response_format.json_schema", "required", "",
                   "response_format type json_schema needs a json_schema "
                   "object");
        return;
    }
    if (js->type != yajl_t_object) {
        st_api_type_err(req, "response_format.json_schema", js, "an object");
        return;
    }
    st_api_json_schema(req, js, "response_format.json_schema", 0, nomem);
}


int
st_api_text_format(st_api_request *req, yajl_val fmt, int *nomem)
{
    yajl_val  t;
    st_error  err = { ST_OK, "" };
    char      vb[96];

    if (fmt->type != yajl_t_object) {
        st_api_type_err(req, "text.format", fmt, "an object");
        return -1;
    }
    t = st_api_opt(fmt, "type");
    if (t == NULL || t->type != yajl_t_string) {
        st_api_err(req, "text.format.type", "required", "",
                   "text.format.type must be \"text\", \"json_object\" "
                   "or \"json_schema\"");
        return -1;
    }
    if (strcmp(t->u.string, "text") == 0) {
        return 0;
    }
    if (strcmp(t->u.string, "json_object") == 0) {
        if (st_constraint_json_object(&req->constraint, &err) != ST_OK) {
            st_api_constraint_err(req, "text.format", &err, nomem);
            return -1;
        }
        return 1;
    }
    if (strcmp(t->u.string, "json_schema") == 0) {
        st_api_json_schema(req, fmt, "text.format", 1, nomem);
        return req->constraint != NULL ? 2 : -1;
    }
    st_api_err(req, "text.format.type", "enum",
               st_api_val_json(t, vb, sizeof(vb)),
               "text.format.type must be \"text\", \"json_object\" or "
               "\"json_schema\"");
    return -1;
}


void
st_api_constraint(st_api_request *req, yajl_val obj, int *nomem)
{
    yajl_val  rf, g, t;
    st_error  err = { ST_OK, "" };
    int       formatted = 0;

    rf = st_api_opt(obj, "response_format");
    g = st_api_opt(obj, "grammar");

    if (rf != NULL) {
        if (rf->type != yajl_t_object) {
            st_api_type_err(req, "response_format", rf, "an object");
            return;
        }
        t = st_api_opt(rf, "type");
        if (t == NULL || t->type != yajl_t_string) {
            st_api_err(req, "response_format.type", "required", "",
                       "response_format.type must be \"text\", "
                       "\"json_object\" or \"json_schema\"");
            return;
        }
        if (strcmp(t->u.string, "text") == 0) {
            formatted = 0;
        } else if (strcmp(t->u.string, "json_object") == 0) {
            formatted = 1;
        } else if (strcmp(t->u.string, "json_schema") == 0) {
            formatted = 2;
        } else {
            char vb[96];
            st_api_err(req, "response_format.type", "enum",
                       st_api_val_json(t, vb, sizeof(vb)),
                       "response_format.type must be \"text\", "
                       "\"json_object\" or \"json_schema\"");
            return;
        }
    }
    if (g != NULL && g->type != yajl_t_null) {
        if (g->type != yajl_t_string) {
            st_api_type_err(req, "grammar", g, "a string");
            return;
        }
        if (formatted) {
            st_api_err(req, "grammar", "exclusive", "",
                       "grammar and a json response_format cannot be used "
                       "together");
            return;
        }
        if (st_constraint_from_gbnf(&req->constraint, g->u.string,
                                    strlen(g->u.string), &err) != ST_OK)
        {
            st_api_constraint_err(req, "grammar", &err, nomem);
        }
        return;
    }
    if (formatted == 1) {
        if (st_constraint_json_object(&req->constraint, &err) != ST_OK) {
            st_api_constraint_err(req, "response_format", &err, nomem);
        }
    } else if (formatted == 2) {
        st_api_chat_json_schema(req, rf, nomem);
    }
}
