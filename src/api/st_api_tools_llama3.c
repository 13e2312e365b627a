/*
 * Tools in Llama 3.1/3.2's own format (Meta's instruct template, custom
 * JSON tools, tools_in_user_message = true, its default):
 *
 *   <|start_header_id|>system<|end_header_id|>\n\n
 *   Environment: ipython\n
 *   Cutting Knowledge Date: December 2023\n
 *   Today Date: 26 Jul 2024\n\n
 *   {system, trimmed}<|eot_id|>
 *   <|start_header_id|>user<|end_header_id|>\n\n
 *   Given the following functions, ... Do not use variables.\n\n
 *   {each tool as tojson(indent=4)}\n\n
 *   {first user message, trimmed}<|eot_id|>
 *   ... the other turns; an assistant call as
 *   {"name": "N", "parameters": ARGS}<|eot_id|>, a tool result as an
 *   <|start_header_id|>ipython<|end_header_id|>\n\n turn holding the
 *   result as a JSON string ...
 *   <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * The date is the template's own default (date_string unset). The model
 * answers a call as that bare JSON object (sometimes after
 * <|python_tag|>); the template allows one call per assistant turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "starling/st_chat.h"
#include "st_api_field.h"


static const char  st_l3_head[] = "<|start_header_id|>";
static const char  st_l3_mid[] = "<|end_header_id|>\n\n";
static const char  st_l3_eot[] = "<|eot_id|>";
static const char  st_l3_python_tag[] = "<|python_tag|>";


st_api_tools_style
st_api_tools_style_of(const char *family, const char *model_template)
{
    st_chat_family  fam;

    if (family == NULL || strcmp(family, "auto") == 0) {
        fam = st_chat_detect(model_template);
    } else {
        fam = st_chat_family_from_name(family);
    }
    switch (fam) {
    case ST_CHAT_LLAMA3:
        return ST_API_TOOLS_STYLE_LLAMA3;
    case ST_CHAT_MISTRAL_V3:
        return ST_API_TOOLS_STYLE_MISTRAL;
    default:
        return ST_API_TOOLS_STYLE_HERMES;
    }
}


static int
st_l3_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}


/* Jinja's |trim */
static void
st_l3_trimmed(st_jbuf *b, const char *s, size_t len)
{
    while (len > 0 && st_l3_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && st_l3_space(s[len - 1])) {
        len--;
    }
    st_jbuf_add(b, s, len);
}


static void
st_l3_indent(st_jbuf *b, size_t depth)
{
    size_t  i;

    st_jbuf_add(b, "\n", 1);
    for (i = 0; i < depth; i++) {
        st_jbuf_add(b, "    ", 4);
    }
}


/* Python's json.dumps(v, indent=4, ensure_ascii=False), which the
 * template's tojson(indent=4) is */
static void
st_l3_dump_indent(st_jbuf *b, yajl_val v, size_t depth)
{
    size_t  i;

    if (v->type == yajl_t_object && v->u.object.len > 0) {
        st_jbuf_add(b, "{", 1);
        for (i = 0; i < v->u.object.len; i++) {
            if (i) {
                st_jbuf_add(b, ",", 1);
            }
            st_l3_indent(b, depth + 1);
            st_jbuf_add_jstr(b, v->u.object.keys[i],
                             strlen(v->u.object.keys[i]));
            st_jbuf_add(b, ": ", 2);
            st_l3_dump_indent(b, v->u.object.values[i], depth + 1);
        }
        st_l3_indent(b, depth);
        st_jbuf_add(b, "}", 1);
        return;
    }
    if (v->type == yajl_t_array && v->u.array.len > 0) {
        st_jbuf_add(b, "[", 1);
        for (i = 0; i < v->u.array.len; i++) {
            if (i) {
                st_jbuf_add(b, ",", 1);
            }
            st_l3_indent(b, depth + 1);
            st_l3_dump_indent(b, v->u.array.values[i], depth + 1);
        }
        st_l3_indent(b, depth);
        st_jbuf_add(b, "]", 1);
        return;
    }
    st_api_json_dump(b, v, 1);      /* scalars, {} and [] */
}


static void
st_l3_turn(st_jbuf *b, const char *role)
{
    st_jbuf_adds(b, st_l3_head);
    st_jbuf_adds(b, role);
    st_jbuf_adds(b, st_l3_mid);
}


static st_status
st_l3_tools(st_jbuf *b, const st_api_request *req, st_error *err)
{
    size_t    i;
    yajl_val  v;
    char      ebuf[64];

    for (i = 0; i < req->n_tools; i++) {
        if (req->tool_choice == ST_API_TOOLS_NAMED
            && strcmp(req->tools[i].name, req->tool_choice_name) != 0)
        {
            continue;
        }
        v = yajl_tree_parse(req->tools[i].json, ebuf, sizeof(ebuf));
        if (v == NULL) {
            return st_error_set(err, ST_ERR_NOMEM, "out of memory");
        }
        st_l3_dump_indent(b, v, 0);
        yajl_tree_free(v);
        st_jbuf_adds(b, "\n\n");
    }
    return ST_OK;
}


st_status
st_api_tools_render_llama3(const st_api_request *req, st_jbuf *out,
    const char *const **stop, size_t *n_stop, st_error *err)
{
    size_t                 i;
    st_status              rc;
    yajl_val               v;
    char                   ebuf[64];
    const st_api_message  *m;

    i = 0;
    st_l3_turn(out, "system");
    st_jbuf_adds(out, "Environment: ipython\n"
                 "Cutting Knowledge Date: December 2023\n"
                 "Today Date: 26 Jul 2024\n\n");
    if (req->n_messages > 0
        && (strcmp(req->messages[0].role, "system") == 0
            || strcmp(req->messages[0].role, "developer") == 0))
    {
        st_l3_trimmed(out, req->messages[0].content,
                      req->messages[0].content_len);
        i = 1;
    }
    st_jbuf_adds(out, st_l3_eot);

    /* the tools go into the first message after the system one, which
     * the template takes as the user's */
    if (i >= req->n_messages) {
        return st_error_set(err, ST_ERR_INVALID, "tools need a first user "
                            "message to go in (the Llama 3 template puts "
                            "them there)");
    }
    st_l3_turn(out, "user");
    st_jbuf_adds(out, "Given the following functions, please respond with a "
                 "JSON for a function call with its proper arguments that "
                 "best answers the given prompt.\n\nRespond in the format "
                 "{\"name\": function name, \"parameters\": dictionary of "
                 "argument name and its value}.Do not use variables.\n\n");
    rc = st_l3_tools(out, req, err);
    if (rc != ST_OK) {
        return rc;
    }
    st_l3_trimmed(out, req->messages[i].content,
                  req->messages[i].content_len);
    st_jbuf_adds(out, st_l3_eot);

    for (i++; i < req->n_messages; i++) {
        m = &req->messages[i];

        if (strcmp(m->role, "tool") == 0) {
            /* the template's "content is iterable" holds for a string
             * too: the result goes in as tojson of it, quoted */
            st_l3_turn(out, "ipython");
            st_jbuf_add_jstr(out, m->content, m->content_len);
            st_jbuf_adds(out, st_l3_eot);
            continue;
        }

        if (m->n_tool_calls > 0) {
            if (m->n_tool_calls > 1) {
                return st_error_set(err, ST_ERR_INVALID, "messages[%zu]: "
                                    "the Llama 3 template takes one tool "
                                    "call per assistant message", i);
            }
            st_l3_turn(out, "assistant");
            st_jbuf_adds(out, "{\"name\": \"");
            st_jbuf_adds(out, m->tool_calls[0].name);
            st_jbuf_adds(out, "\", \"parameters\": ");
            v = yajl_tree_parse(m->tool_calls[0].arguments, ebuf,
                                sizeof(ebuf));
            if (v != NULL) {
                st_api_json_dump(out, v, 1);
                yajl_tree_free(v);
            } else {
                /* tojson of a string that is not JSON text */
                st_jbuf_add_jstr(out, m->tool_calls[0].arguments,
                                 strlen(m->tool_calls[0].arguments));
            }
            st_jbuf_adds(out, "}");
            st_jbuf_adds(out, st_l3_eot);
            continue;
        }

        st_l3_turn(out, strcmp(m->role, "developer") == 0 ? "system"
                                                          : m->role);
        st_l3_trimmed(out, m->content, m->content_len);
        st_jbuf_adds(out, st_l3_eot);
    }

    st_l3_turn(out, "assistant");

    if (out->failed) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }

    *stop = st_chat_stop_strings(ST_CHAT_LLAMA3, n_stop);
    return ST_OK;
}


int
st_api_tool_calls_parse_llama3(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len)
{
    size_t             n = strlen(st_l3_python_tag);
    char              *json, ebuf[64];
    yajl_val           v, name, args;
    st_jbuf            jb;
    st_api_tool_call  *out;

    *calls = NULL;
    *content_len = len;

    while (len > 0 && st_l3_space(*text)) {
        text++;
        len--;
    }
    if (len >= n && memcmp(text, st_l3_python_tag, n) == 0) {
        text += n;
        len -= n;
    }
    while (len > 0 && st_l3_space(*text)) {
        text++;
        len--;
    }
    if (len == 0 || *text != '{') {
        return 0;
    }

    json = malloc(len + 1);
    if (json == NULL) {
        return -1;
    }
    memcpy(json, text, len);
    json[len] = '\0';
    v = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    free(json);

    name = (v != NULL && v->type == yajl_t_object) ? st_api_opt(v, "name")
                                                   : NULL;
    args = (v != NULL && v->type == yajl_t_object)
           ? st_api_opt(v, "parameters") : NULL;
    if (args == NULL && v != NULL && v->type == yajl_t_object) {
        args = st_api_opt(v, "arguments");
    }
    if (name == NULL || name->type != yajl_t_string
        || (n_tools && !st_api_tool_find(tools, n_tools, name->u.string))
        || (args != NULL && args->type != yajl_t_object))
    {
        if (v != NULL) {
            yajl_tree_free(v);
        }
        return 0;
    }

    out = calloc(1, sizeof(st_api_tool_call));
    if (out == NULL) {
        yajl_tree_free(v);
        return -1;
    }
    st_jbuf_init(&jb);
    if (args != NULL) {
        st_api_json_dump(&jb, args, 0);
    } else {
        st_jbuf_adds(&jb, "{}");
    }
    out->arguments = jb.data;
    out->name = strdup(name->u.string);
    st_jbuf_init(&jb);
    st_jbuf_addf(&jb, "call_%s_0", id_prefix);
    out->id = jb.data;
    yajl_tree_free(v);

    if (out->arguments == NULL || out->name == NULL || out->id == NULL) {
        st_api_tool_calls_free(out, 1);
        return -1;
    }

    *calls = out;
    *content_len = 0;
    return 1;
}
