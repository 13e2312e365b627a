/*
 * Tools for /v1/chat/completions: the request fields ("tools",
 * "tool_choice", "parallel_tool_calls", tool and assistant tool_calls
 * messages), their rendering into the prompt, and function calls parsed
 * back out of generated text.
 *
 * Format: the Hermes convention, as Qwen2.5's ChatML template writes it
 * (the tool list in the system turn inside <tools></tools>, one JSON
 * object per line, each the tool as `tojson` prints it; a call as
 * <tool_call>\n{"name": N, "arguments": A}\n</tool_call>; a run of tool
 * results as one user turn of <tool_response>\n...\n</tool_response>).
 * For ChatML this is the model's own format, byte for byte; Llama 3 gets
 * Meta's own (st_api_tools_llama3.c); the other families get the Hermes
 * text in their own turns (documented as the generic format).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "st_api_field.h"


#define ST_API_MAX_TOOLS      128
#define ST_API_MAX_TOOL_NAME  64
#define ST_API_MAX_CALLS      16

static const char  st_qwen_default_system[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";


/* JSON text of a yajl tree; spaced: Python json.dumps' ", " and ": "
 * (what the templates' tojson prints), else compact */
void
st_api_json_dump(st_jbuf *b, yajl_val v, int spaced)
{
    size_t  i;

    switch (v->type) {
    case yajl_t_string:
        st_jbuf_add_jstr(b, v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        st_jbuf_adds(b, v->u.number.r);
        break;
    case yajl_t_true:
        st_jbuf_adds(b, "true");
        break;
    case yajl_t_false:
        st_jbuf_adds(b, "false");
        break;
    case yajl_t_object:
        st_jbuf_adds(b, "{");
        for (i = 0; i < v->u.object.len; i++) {
            if (i) {
                st_jbuf_adds(b, spaced ? ", " : ",");
            }
            st_jbuf_add_jstr(b, v->u.object.keys[i],
                             strlen(v->u.object.keys[i]));
            st_jbuf_adds(b, spaced ? ": " : ":");
            st_api_json_dump(b, v->u.object.values[i], spaced);
        }
        st_jbuf_adds(b, "}");
        break;
    case yajl_t_array:
        st_jbuf_adds(b, "[");
        for (i = 0; i < v->u.array.len; i++) {
            if (i) {
                st_jbuf_adds(b, spaced ? ", " : ",");
            }
            st_api_json_dump(b, v->u.array.values[i], spaced);
        }
        st_jbuf_adds(b, "]");
        break;
    default:
        st_jbuf_adds(b, "null");
        break;
    }
}


static int
st_api_tool_name_ok(const char *s)
{
    size_t  n = strlen(s), i;

    if (n == 0 || n > ST_API_MAX_TOOL_NAME) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}


const st_api_tool *
st_api_tool_find(const st_api_tool *tools, size_t n, const char *name)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strcmp(tools[i].name, name) == 0) {
            return &tools[i];
        }
    }
    return NULL;
}


void
st_api_tools_fields(st_api_request *req, yajl_val root, int *nomem)
{
    size_t       i;
    yajl_val     v, t, type, fn, name, p, c;
    st_jbuf      jb;
    char         field[64];

    req->parallel_tool_calls = 1;
    (void) st_api_bool(req, root, "parallel_tool_calls",
                       &req->parallel_tool_calls);

    v = st_api_opt(root, "tools");
    if (v != NULL) {
        if (v->type != yajl_t_array) {
            st_api_type_err(req, "tools", v, "an array");
            return;
        }
        if (v->u.array.len > ST_API_MAX_TOOLS) {
            st_api_err(req, "tools", "max_items", "",
                       "tools takes at most %d tools", ST_API_MAX_TOOLS);
            return;
        }

        req->tools = calloc(v->u.array.len ? v->u.array.len : 1,
                            sizeof(st_api_tool));
        if (req->tools == NULL) {
            *nomem = 1;
            return;
        }

        for (i = 0; i < v->u.array.len; i++) {
            t = v->u.array.values[i];
            snprintf(field, sizeof(field), "tools[%zu]", i);

            type = t->type == yajl_t_object ? st_api_opt(t, "type") : NULL;
            fn = t->type == yajl_t_object ? st_api_opt(t, "function") : NULL;
            name = (fn != NULL && fn->type == yajl_t_object)
                   ? st_api_opt(fn, "name") : NULL;
            p = (fn != NULL && fn->type == yajl_t_object)
                ? st_api_opt(fn, "parameters") : NULL;

            if (type == NULL || type->type != yajl_t_string
                || strcmp(type->u.string, "function") != 0
                || fn == NULL || fn->type != yajl_t_object)
            {
                st_api_err(req, field, "type", "",
                           "%s must be {\"type\":\"function\",\"function\":"
                           "{...}}", field);
                return;
            }
            if (name == NULL || name->type != yajl_t_string
                || !st_api_tool_name_ok(name->u.string))
            {
                st_api_err(req, field, "name", "",
                           "%s.function.name must be 1..%d characters of "
                           "a-z, A-Z, 0-9, _ and -", field,
                           ST_API_MAX_TOOL_NAME);
                return;
            }
            if (p != NULL && p->type != yajl_t_object) {
                st_api_err(req, field, "type", "",
                           "%s.function.parameters must be a JSON Schema "
                           "object", field);
                return;
            }
            if (st_api_tool_find(req->tools, req->n_tools, name->u.string)) {
                st_api_err(req, field, "duplicate", "",
                           "%s: a tool with this name is listed twice",
                           field);
                return;
            }

            st_jbuf_init(&jb);
            st_api_json_dump(&jb, t, 1);
            if (jb.failed) {
                st_jbuf_free(&jb);
                *nomem = 1;
                return;
            }

            req->tools[i].json = jb.data;
            req->tools[i].name = st_api_strdup(req, name->u.string,
                                               strlen(name->u.string),
                                               nomem);
            req->n_tools++;
            if (req->tools[i].name == NULL) {
                return;
            }

            st_jbuf_init(&jb);
            if (p != NULL) {
                st_api_json_dump(&jb, p, 0);
            } else {
                st_jbuf_adds(&jb, "{\"type\":\"object\"}");
            }
            if (jb.failed) {
                st_jbuf_free(&jb);
                *nomem = 1;
                return;
            }
            req->tools[i].parameters = jb.data;
        }
    }

    c = st_api_opt(root, "tool_choice");
    if (c == NULL) {
        req->tool_choice = ST_API_TOOLS_AUTO;
        return;
    }

    if (c->type == yajl_t_string) {
        if (strcmp(c->u.string, "none") == 0) {
            req->tool_choice = ST_API_TOOLS_NONE;
            return;
        }
        if (strcmp(c->u.string, "auto") == 0) {
            req->tool_choice = ST_API_TOOLS_AUTO;
            return;
        }
        if (strcmp(c->u.string, "required") == 0) {
            req->tool_choice = ST_API_TOOLS_REQUIRED;
            if (req->n_tools == 0) {
                st_api_err(req, "tool_choice", "dependency", "",
                           "tool_choice \"required\" needs tools");
            }
            return;
        }
        st_api_err(req, "tool_choice", "enum", "",
                   "tool_choice must be none, auto, required or "
                   "{\"type\":\"function\",\"function\":{\"name\":...}}");
        return;
    }

    fn = c->type == yajl_t_object ? st_api_opt(c, "function") : NULL;
    name = (fn != NULL && fn->type == yajl_t_object)
           ? st_api_opt(fn, "name") : NULL;

    if (name == NULL || name->type != yajl_t_string) {
        st_api_err(req, "tool_choice", "type", "",
                   "tool_choice must be none, auto, required or "
                   "{\"type\":\"function\",\"function\":{\"name\":...}}");
        return;
    }

    if (st_api_tool_find(req->tools, req->n_tools, name->u.string) == NULL) {
        st_api_err(req, "tool_choice", "unknown_tool", "",
                   "tool_choice names a function that is not in tools");
        return;
    }

    req->tool_choice = ST_API_TOOLS_NAMED;
    req->tool_choice_name = st_api_strdup(req, name->u.string,
                                          strlen(name->u.string), nomem);
}


void
st_api_tools_message(st_api_request *req, yajl_val m, st_api_message *out,
    size_t index, int *nomem)
{
    size_t             i;
    yajl_val           v, tc, id, fn, name, args;
    char               field[64];
    st_api_tool_call  *call;

    if (strcmp(out->role, "tool") == 0) {
        v = st_api_opt(m, "tool_call_id");
        if (v != NULL && v->type == yajl_t_string) {
            out->tool_call_id = st_api_strdup(req, v->u.string,
                                              strlen(v->u.string), nomem);
        } else if (v != NULL) {
            snprintf(field, sizeof(field), "messages[%zu].tool_call_id",
                     index);
            st_api_type_err(req, field, v, "a string");
        }
        return;
    }

    v = st_api_opt(m, "tool_calls");
    if (v == NULL || strcmp(out->role, "assistant") != 0) {
        return;
    }

    snprintf(field, sizeof(field), "messages[%zu].tool_calls", index);

    if (v->type != yajl_t_array || v->u.array.len > ST_API_MAX_CALLS) {
        st_api_err(req, field, "type", "",
                   "%s must be an array of at most %d function calls",
                   field, ST_API_MAX_CALLS);
        return;
    }

    out->tool_calls = calloc(v->u.array.len ? v->u.array.len : 1,
                             sizeof(st_api_tool_call));
    if (out->tool_calls == NULL) {
        *nomem = 1;
        return;
    }

    for (i = 0; i < v->u.array.len; i++) {
        tc = v->u.array.values[i];
        id = tc->type == yajl_t_object ? st_api_opt(tc, "id") : NULL;
        fn = tc->type == yajl_t_object ? st_api_opt(tc, "function") : NULL;
        name = (fn != NULL && fn->type == yajl_t_object)
               ? st_api_opt(fn, "name") : NULL;
        args = (fn != NULL && fn->type == yajl_t_object)
               ? st_api_opt(fn, "arguments") : NULL;

        if (name == NULL || name->type != yajl_t_string
            || (args != NULL && args->type != yajl_t_string)
            || (id != NULL && id->type != yajl_t_string))
        {
            st_api_err(req, field, "type", "",
                       "%s[%zu] must be {\"id\",\"type\":\"function\","
                       "\"function\":{\"name\",\"arguments\":\"<JSON "
                       "text>\"}}", field, i);
            return;
        }

        call = &out->tool_calls[out->n_tool_calls++];
        call->name = st_api_strdup(req, name->u.string,
                                   strlen(name->u.string), nomem);
        call->arguments = st_api_strdup(req,
                                        args ? args->u.string : "{}",
                                        strlen(args ? args->u.string : "{}"),
                                        nomem);
        call->id = id ? st_api_strdup(req, id->u.string,
                                      strlen(id->u.string), nomem)
                      : NULL;
        if (call->name == NULL || call->arguments == NULL
            || (id != NULL && call->id == NULL))
        {
            return;
        }
    }
}


/* A call's arguments as the template's `tojson` prints them: the JSON
 * text re-serialised with spaced separators (text that is not JSON is
 * written as a JSON string, which is what tojson does with a string). */
static void
st_api_tool_args(st_jbuf *b, const char *args)
{
    yajl_val  v;
    char      ebuf[64];

    v = yajl_tree_parse(args, ebuf, sizeof(ebuf));
    if (v == NULL) {
        st_jbuf_add_jstr(b, args, strlen(args));
        return;
    }
    st_api_json_dump(b, v, 1);
    yajl_tree_free(v);
}


static void
st_api_tools_block(st_jbuf *b, const st_api_request *req)
{
    size_t  i;

    st_jbuf_adds(b, "# Tools\n\nYou may call one or more functions to assist "
                 "with the user query.\n\nYou are provided with function "
                 "signatures within <tools></tools> XML tags:\n<tools>");
    for (i = 0; i < req->n_tools; i++) {
        if (req->tool_choice == ST_API_TOOLS_NAMED
            && strcmp(req->tools[i].name, req->tool_choice_name) != 0)
        {
            continue;
        }
        st_jbuf_adds(b, "\n");
        st_jbuf_adds(b, req->tools[i].json);
    }
    st_jbuf_adds(b, "\n</tools>\n\nFor each function call, return a json "
                 "object with function name and arguments within "
                 "<tool_call></tool_call> XML tags:\n<tool_call>\n"
                 "{\"name\": <function-name>, \"arguments\": "
                 "<args-json-object>}\n</tool_call>");
}


st_status
st_api_chat_render_tools(const char *family, const char *model_template,
    const st_api_request *req, st_jbuf *out, const char *const **stop,
    size_t *n_stop, st_error *err)
{
    size_t           i, j, k, n;
    int              with_tools;
    st_jbuf         *texts;
    st_api_message  *msgs;
    st_status        rc;
    const st_api_message  *m;

    with_tools = req->n_tools > 0 && req->tool_choice != ST_API_TOOLS_NONE;

    if (with_tools) {
        switch (st_api_tools_style_of(family, model_template)) {
        case ST_API_TOOLS_STYLE_LLAMA3:
            return st_api_tools_render_llama3(req, out, stop, n_stop, err);
        case ST_API_TOOLS_STYLE_MISTRAL:
            return st_api_tools_render_mistral(req, out, stop, n_stop, err);
        default:
            break;
        }
    }

    n = req->n_messages + 1;
    msgs = calloc(n, sizeof(st_api_message));
    texts = calloc(n, sizeof(st_jbuf));
    if (msgs == NULL || texts == NULL) {
        free(msgs);
        free(texts);
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }

    k = 0;
    i = 0;

    if (with_tools) {
        st_jbuf_init(&texts[k]);
        m = req->n_messages ? &req->messages[0] : NULL;
        if (m != NULL && (strcmp(m->role, "system") == 0
                          || strcmp(m->role, "developer") == 0))
        {
            st_jbuf_add(&texts[k], m->content, m->content_len);
            st_jbuf_adds(&texts[k], "\n\n");
            i = 1;
        } else if (model_template != NULL
                   && strstr(model_template, st_qwen_default_system))
        {
            /* Qwen2.5's template: its default system text */
            st_jbuf_adds(&texts[k], st_qwen_default_system);
            st_jbuf_adds(&texts[k], "\n\n");
        }
        st_api_tools_block(&texts[k], req);
        msgs[k].role = "system";
        k++;
    }

    for (; i < req->n_messages; i++) {
        m = &req->messages[i];
        st_jbuf_init(&texts[k]);

        if (strcmp(m->role, "tool") == 0) {
            /* a run of tool results: one user turn */
            for (j = i; j < req->n_messages
                        && strcmp(req->messages[j].role, "tool") == 0; j++)
            {
                st_jbuf_adds(&texts[k], j == i ? "<tool_response>\n"
                                               : "\n<tool_response>\n");
                st_jbuf_add(&texts[k], req->messages[j].content,
                            req->messages[j].content_len);
                st_jbuf_adds(&texts[k], "\n</tool_response>");
            }
            msgs[k].role = "user";
            k++;
            i = j - 1;
            continue;
        }

        st_jbuf_add(&texts[k], m->content, m->content_len);

        for (j = 0; j < m->n_tool_calls; j++) {
            st_jbuf_adds(&texts[k], (j == 0 && m->content_len == 0)
                                    ? "<tool_call>\n{\"name\": \""
                                    : "\n<tool_call>\n{\"name\": \"");
            st_jbuf_adds(&texts[k], m->tool_calls[j].name);
            st_jbuf_adds(&texts[k], "\", \"arguments\": ");
            st_api_tool_args(&texts[k], m->tool_calls[j].arguments);
            st_jbuf_adds(&texts[k], "}\n</tool_call>");
        }

        msgs[k].role = m->role;
        k++;
    }

    rc = ST_OK;
    for (j = 0; j < k; j++) {
        if (texts[j].failed) {
            rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
        }
        msgs[j].content = texts[j].data ? texts[j].data : "";
        msgs[j].content_len = texts[j].len;
    }

    if (rc == ST_OK) {
        rc = st_api_chat_render(family, model_template, msgs, k, out, stop,
                                n_stop, err);
    }

    for (j = 0; j < k; j++) {
        st_jbuf_free(&texts[j]);
    }
    free(texts);
    free(msgs);
    return rc;
}


int
st_api_tools_call_schema(const st_api_request *req, st_api_tools_style style,
    st_jbuf *out)
{
    size_t  i, n = 0;

    if (req->n_tools == 0 || (req->tool_choice != ST_API_TOOLS_REQUIRED
                              && req->tool_choice != ST_API_TOOLS_NAMED))
    {
        return 0;
    }

    if (req->tool_choice == ST_API_TOOLS_REQUIRED && req->n_tools > 1) {
        st_jbuf_adds(out, "{\"anyOf\":[");
    }

    for (i = 0; i < req->n_tools; i++) {
        if (req->tool_choice == ST_API_TOOLS_NAMED
            && strcmp(req->tools[i].name, req->tool_choice_name) != 0)
        {
            continue;
        }
        if (n++) {
            st_jbuf_adds(out, ",");
        }
        st_jbuf_adds(out, "{\"type\":\"object\",\"properties\":{\"name\":"
                     "{\"const\":");
        st_jbuf_add_jstr(out, req->tools[i].name, strlen(req->tools[i].name));
        st_jbuf_adds(out, style == ST_API_TOOLS_STYLE_LLAMA3
                          ? "},\"parameters\":" : "},\"arguments\":");
        st_jbuf_adds(out, req->tools[i].parameters
                          ? req->tools[i].parameters : "{\"type\":\"object\"}");
        st_jbuf_adds(out, style == ST_API_TOOLS_STYLE_LLAMA3
                          ? "},\"required\":[\"name\",\"parameters\"],"
                          : "},\"required\":[\"name\",\"arguments\"],");
        st_jbuf_adds(out, "\"additionalProperties\":false}");
    }

    if (req->tool_choice == ST_API_TOOLS_REQUIRED && req->n_tools > 1) {
        st_jbuf_adds(out, "]}");
    }

    return out->failed ? -1 : 1;
}


void
st_api_tool_calls_free(st_api_tool_call *calls, size_t n)
{
    size_t  i;

    if (calls == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(calls[i].id);
        free(calls[i].name);
        free(calls[i].arguments);
    }
    free(calls);
}


static const char *
st_api_find(const char *s, size_t len, const char *what)
{
    size_t  n = strlen(what), i;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(s + i, what, n) == 0) {
            return s + i;
        }
    }
    return NULL;
}


int
st_api_tool_calls_parse(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len)
{
    static const char   open[] = "<tool_call>", close[] = "</tool_call>";
    const char         *p, *end, *body, *q;
    char               *json, ebuf[64];
    size_t              n = 0, body_len;
    yajl_val            v, name, args;
    st_jbuf             jb;
    st_api_tool_call   *out;

    *calls = NULL;
    *content_len = len;

    p = st_api_find(text, len, open);
    if (p == NULL) {
        return 0;
    }

    out = calloc(ST_API_MAX_CALLS, sizeof(st_api_tool_call));
    if (out == NULL) {
        return -1;
    }

    *content_len = (size_t) (p - text);
    end = text + len;

    while (p != NULL) {
        body = p + sizeof(open) - 1;
        q = st_api_find(body, (size_t) (end - body), close);
        body_len = q ? (size_t) (q - body) : (size_t) (end - body);

        json = malloc(body_len + 1);
        if (json == NULL) {
            st_api_tool_calls_free(out, n);
            return -1;
        }
        memcpy(json, body, body_len);
        json[body_len] = '\0';
        v = yajl_tree_parse(json, ebuf, sizeof(ebuf));
        free(json);

        name = (v != NULL && v->type == yajl_t_object)
               ? st_api_opt(v, "name") : NULL;
        args = (v != NULL && v->type == yajl_t_object)
               ? st_api_opt(v, "arguments") : NULL;
        if (args == NULL && v != NULL && v->type == yajl_t_object) {
            args = st_api_opt(v, "parameters");
        }

        if (name == NULL || name->type != yajl_t_string
            || (n_tools && !st_api_tool_find(tools, n_tools, name->u.string))
            || (args != NULL && args->type != yajl_t_object)
            || n == ST_API_MAX_CALLS)
        {
            /* not a call to one of the tools: the text is plain text */
            if (v != NULL) {
                yajl_tree_free(v);
            }
            st_api_tool_calls_free(out, n);
            *content_len = len;
            return 0;
        }

        st_jbuf_init(&jb);
        if (args != NULL) {
            st_api_json_dump(&jb, args, 0);
        } else {
            st_jbuf_adds(&jb, "{}");
        }
        out[n].arguments = jb.data;
        out[n].name = strdup(name->u.string);
        st_jbuf_init(&jb);
        st_jbuf_addf(&jb, "call_%s_%zu", id_prefix, n);
        out[n].id = jb.data;
        n++;
        yajl_tree_free(v);

        if (out[n - 1].arguments == NULL || out[n - 1].name == NULL
            || out[n - 1].id == NULL)
        {
            st_api_tool_calls_free(out, n);
            return -1;
        }

        if (q == NULL) {
            break;
        }
        q += sizeof(close) - 1;
        p = st_api_find(q, (size_t) (end - q), open);
    }

    *calls = out;
    return (int) n;
}
