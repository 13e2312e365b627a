/*
 * POST /v1/responses: the Responses API's request onto the chat request
 * the engine runs. "instructions" becomes the system turn, "input" (a
 * string, or a list of messages and function_call / function_call_output
 * items) the conversation, "tools" (the flat Responses function shape)
 * the chat tools. Stateless: nothing is stored ("store" is accepted and
 * has store: false semantics), so "previous_response_id" is a 400.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "st_api_field.h"
#include "st_api_format.h"


#define ST_API_MAX_INPUT  256


/* text of a message's content: a string, or input_text / output_text
 * parts joined */
static char *
st_api_resp_text(st_api_request *req, yajl_val content, const char *field,
    size_t *len, int *nomem)
{
    size_t    i;
    yajl_val  part, type, text;
    st_jbuf   jb;

    if (content == NULL) {
        *len = 0;
        return st_api_strdup(req, "", 0, nomem);
    }

    if (content->type == yajl_t_string) {
        *len = strlen(content->u.string);
        return st_api_strdup(req, content->u.string, *len, nomem);
    }

    if (content->type != yajl_t_array) {
        st_api_type_err(req, field, content, "a string or an array of "
                        "content parts");
        return NULL;
    }

    st_jbuf_init(&jb);
    for (i = 0; i < content->u.array.len; i++) {
        part = content->u.array.values[i];
        type = part->type == yajl_t_object ? st_api_opt(part, "type") : NULL;
        text = part->type == yajl_t_object ? st_api_opt(part, "text") : NULL;
        if (type == NULL || type->type != yajl_t_string
            || (strcmp(type->u.string, "input_text") != 0
                && strcmp(type->u.string, "output_text") != 0)
            || text == NULL || text->type != yajl_t_string)
        {
            st_jbuf_free(&jb);
            st_api_err(req, field, "unsupported", "",
                       "%s: only input_text and output_text parts are "
                       "supported", field);
            return NULL;
        }
        st_jbuf_adds(&jb, text->u.string);
    }

    if (jb.failed) {
        st_jbuf_free(&jb);
        *nomem = 1;
        return NULL;
    }

    *len = jb.len;
    return jb.data ? jb.data : st_api_strdup(req, "", 0, nomem);
}


static st_api_message *
st_api_resp_push(st_api_request *req, const char *role, int *nomem)
{
    st_api_message  *m = &req->messages[req->n_messages];

    m->role = st_api_strdup(req, role, strlen(role), nomem);
    if (m->role == NULL) {
        return NULL;
    }
    req->n_messages++;
    return m;
}


static void
st_api_resp_input(st_api_request *req, yajl_val in, int *nomem)
{
    size_t           i;
    yajl_val         item, type, role, v, name, args, call_id;
    st_api_message  *m;
    const char      *t;
    char             field[64];

    if (in->type == yajl_t_string) {
        m = st_api_resp_push(req, "user", nomem);
        if (m == NULL) {
            return;
        }
        m->content_len = strlen(in->u.string);
        m->content = st_api_strdup(req, in->u.string, m->content_len, nomem);
        if (m->content != NULL
            && !st_api_utf8_valid(m->content, m->content_len))
        {
            st_api_err(req, "input", "utf8", "", "input is not valid UTF-8");
        }
        return;
    }

    for (i = 0; i < in->u.array.len; i++) {
        item = in->u.array.values[i];
        snprintf(field, sizeof(field), "input[%zu]", i);

        if (item->type != yajl_t_object) {
            st_api_type_err(req, field, item, "an object");
            return;
        }

        type = st_api_opt(item, "type");
        t = (type != NULL && type->type == yajl_t_string) ? type->u.string
                                                          : "message";

        if (strcmp(t, "message") == 0) {
            role = st_api_opt(item, "role");
            if (role == NULL || role->type != yajl_t_string
                || (strcmp(role->u.string, "user") != 0
                    && strcmp(role->u.string, "assistant") != 0
                    && strcmp(role->u.string, "system") != 0
                    && strcmp(role->u.string, "developer") != 0))
            {
                st_api_err(req, field, "enum", "", "%s.role must be one of "
                           "user, assistant, system, developer", field);
                return;
            }
            m = st_api_resp_push(req, role->u.string, nomem);
            if (m == NULL) {
                return;
            }
            m->content = st_api_resp_text(req, st_api_opt(item, "content"),
                                          field, &m->content_len, nomem);
            if (m->content == NULL) {
                return;
            }
            if (!st_api_utf8_valid(m->content, m->content_len)) {
                st_api_err(req, field, "utf8", "", "%s is not valid UTF-8",
                           field);
            }
            continue;
        }

        if (strcmp(t, "function_call") == 0) {
            /* an earlier call of the model: an assistant turn */
            name = st_api_opt(item, "name");
            args = st_api_opt(item, "arguments");
            call_id = st_api_opt(item, "call_id");
            if (name == NULL || name->type != yajl_t_string
                || (args != NULL && args->type != yajl_t_string))
            {
                st_api_err(req, field, "type", "", "%s: a function_call "
                           "needs name and arguments (JSON text)", field);
                return;
            }
            m = st_api_resp_push(req, "assistant", nomem);
            if (m == NULL) {
                return;
            }
            m->content = st_api_strdup(req, "", 0, nomem);
            m->tool_calls = calloc(1, sizeof(st_api_tool_call));
            if (m->content == NULL || m->tool_calls == NULL) {
                *nomem = 1;
                return;
            }
            m->n_tool_calls = 1;
            m->tool_calls[0].name = st_api_strdup(req, name->u.string,
                                        strlen(name->u.string), nomem);
            v = args;
            m->tool_calls[0].arguments = st_api_strdup(req,
                v ? v->u.string : "{}", strlen(v ? v->u.string : "{}"),
                nomem);
            if (call_id != NULL && call_id->type == yajl_t_string) {
                m->tool_calls[0].id = st_api_strdup(req, call_id->u.string,
                                          strlen(call_id->u.string), nomem);
            }
            continue;
        }

        if (strcmp(t, "function_call_output") == 0) {
            v = st_api_opt(item, "output");
            if (v == NULL || v->type != yajl_t_string) {
                st_api_err(req, field, "type", "", "%s: a "
                           "function_call_output needs output (a string)",
                           field);
                return;
            }
            m = st_api_resp_push(req, "tool", nomem);
            if (m == NULL) {
                return;
            }
            m->content_len = strlen(v->u.string);
            m->content = st_api_strdup(req, v->u.string, m->content_len,
                                       nomem);
            call_id = st_api_opt(item, "call_id");
            if (call_id != NULL && call_id->type == yajl_t_string) {
                m->tool_call_id = st_api_strdup(req, call_id->u.string,
                                                strlen(call_id->u.string),
                                                nomem);
            }
            continue;
        }

        st_api_err(req, field, "unsupported", "", "%s: items of type %s "
                   "are not supported (message, function_call, "
                   "function_call_output)", field,
                   strlen(t) < 40 ? t : "(long)");
        return;
    }
}


/* Responses tools are flat ({"type":"function","name",...}): the chat
 * shape ({"type":"function","function":{...}}) is what gets rendered */
static void
st_api_resp_tools(st_api_request *req, yajl_val tools, int *nomem)
{
    size_t    i, k;
    int       first;
    yajl_val  t, type, name, params;
    st_jbuf   jb;
    char      field[64];

    if (tools->type != yajl_t_array || tools->u.array.len > 128) {
        st_api_err(req, "tools", "type", "", "tools must be an array of at "
                   "most 128 function tools");
        return;
    }

    req->tools = calloc(tools->u.array.len ? tools->u.array.len : 1,
                        sizeof(st_api_tool));
    if (req->tools == NULL) {
        *nomem = 1;
        return;
    }

    for (i = 0; i < tools->u.array.len; i++) {
        t = tools->u.array.values[i];
        snprintf(field, sizeof(field), "tools[%zu]", i);
        type = t->type == yajl_t_object ? st_api_opt(t, "type") : NULL;
        name = t->type == yajl_t_object ? st_api_opt(t, "name") : NULL;

        if (type == NULL || type->type != yajl_t_string
            || strcmp(type->u.string, "function") != 0
            || name == NULL || name->type != yajl_t_string
            || name->u.string[0] == '\0' || strlen(name->u.string) > 64)
        {
            st_api_err(req, field, "type", "", "%s: only function tools "
                       "({\"type\":\"function\",\"name\",...}) are "
                       "supported", field);
            return;
        }

        st_jbuf_init(&jb);
        st_jbuf_adds(&jb, "{\"type\": \"function\", \"function\": {");
        first = 1;
        for (k = 0; k < t->u.object.len; k++) {
            if (strcmp(t->u.object.keys[k], "type") == 0
                || strcmp(t->u.object.keys[k], "strict") == 0)
            {
                continue;
            }
            if (!first) {
                st_jbuf_adds(&jb, ", ");
            }
            first = 0;
            st_jbuf_add_jstr(&jb, t->u.object.keys[k],
                             strlen(t->u.object.keys[k]));
            st_jbuf_adds(&jb, ": ");
            st_api_json_dump(&jb, t->u.object.values[k], 1);
        }
        st_jbuf_adds(&jb, "}}");

        if (jb.failed) {
            st_jbuf_free(&jb);
            *nomem = 1;
            return;
        }

        req->tools[i].json = jb.data;
        req->tools[i].name = st_api_strdup(req, name->u.string,
                                           strlen(name->u.string), nomem);
        req->n_tools++;
        if (req->tools[i].name == NULL) {
            return;
        }

        params = st_api_opt(t, "parameters");
        st_jbuf_init(&jb);
        if (params != NULL && params->type == yajl_t_object) {
            st_api_json_dump(&jb, params, 0);
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


void
st_api_responses_fields(st_api_request *req, yajl_val root,
    const st_api_limits *lim, int *nomem)
{
    double           d;
    long long        ll;
    uint64_t         seed;
    size_t           n;
    int              store = 0;     /* accepted; nothing is ever stored */
    yajl_val         v, in, fmt;
    st_api_message  *m;
    st_jbuf          jb;

    v = st_api_opt(root, "previous_response_id");
    if (v != NULL) {
        st_api_err(req, "previous_response_id", "unsupported", "",
                   "previous_response_id is not supported: responses are "
                   "not stored (send the whole conversation as input)");
    }

    v = st_api_opt(root, "text");
    if (v != NULL && v->type != yajl_t_object && v->type != yajl_t_null) {
        st_api_type_err(req, "text", v, "an object");
    }
    fmt = (v != NULL && v->type == yajl_t_object) ? st_api_opt(v, "format")
                                                  : NULL;
    if (fmt != NULL && fmt->type != yajl_t_null
        && st_api_text_format(req, fmt, nomem) > 0)
    {
        /* echoed in the response object, as given */
        st_jbuf_init(&jb);
        st_api_json_dump(&jb, fmt, 0);
        if (jb.failed) {
            st_jbuf_free(&jb);
            *nomem = 1;
            return;
        }
        req->text_format = jb.data;
    }
    if (*nomem) {
        return;
    }

    in = st_api_opt(root, "input");
    if (in == NULL) {
        st_api_err(req, "input", "required", "", "input is required");
        return;
    }
    if (in->type != yajl_t_string && in->type != yajl_t_array) {
        st_api_type_err(req, "input", in, "a string or an array of items");
        return;
    }
    if ((in->type == yajl_t_array
         && (in->u.array.len == 0 || in->u.array.len > ST_API_MAX_INPUT))
        || (in->type == yajl_t_string && in->u.string[0] == '\0'))
    {
        st_api_err(req, "input", "length", "",
                   "input must be a non-empty string or 1..%d items",
                   ST_API_MAX_INPUT);
        return;
    }

    n = (in->type == yajl_t_array ? in->u.array.len : 1) + 1;
    req->messages = calloc(n, sizeof(st_api_message));
    if (req->messages == NULL) {
        *nomem = 1;
        return;
    }

    v = st_api_opt(root, "instructions");
    if (v != NULL) {
        if (v->type != yajl_t_string) {
            st_api_type_err(req, "instructions", v, "a string");
            return;
        }
        m = st_api_resp_push(req, "system", nomem);
        if (m == NULL) {
            return;
        }
        m->content_len = strlen(v->u.string);
        m->content = st_api_strdup(req, v->u.string, m->content_len, nomem);
        req->instructions = st_api_strdup(req, v->u.string,
                                          m->content_len, nomem);
        if (m->content == NULL || req->instructions == NULL) {
            return;
        }
    }

    st_api_resp_input(req, in, nomem);
    if (*nomem) {
        return;
    }

    if (st_api_double(req, root, "temperature", 0, 2, &d) > 0) {
        req->sampling.temperature = (float) d;
    }
    if (st_api_double(req, root, "top_p", 0, 1, &d) > 0) {
        req->sampling.top_p = (float) d;
    }
    if (st_api_seed(req, root, "seed", &seed) > 0) {
        req->sampling.seed = seed;
    }
    if (st_api_int(req, root, "max_output_tokens", 1, lim->max_tokens_limit,
                   &ll) > 0)
    {
        req->max_tokens = (uint32_t) ll;
    }
    (void) st_api_bool(req, root, "stream", &req->stream);
    (void) st_api_bool(req, root, "store", &store);

    v = st_api_opt(root, "tools");
    if (v != NULL) {
        st_api_resp_tools(req, v, nomem);
        if (*nomem) {
            return;
        }
    }

    req->parallel_tool_calls = 1;
    (void) st_api_bool(req, root, "parallel_tool_calls",
                       &req->parallel_tool_calls);

    v = st_api_opt(root, "tool_choice");
    if (v != NULL) {
        if (v->type == yajl_t_string && strcmp(v->u.string, "none") == 0) {
            req->tool_choice = ST_API_TOOLS_NONE;
        } else if (v->type == yajl_t_string
                   && strcmp(v->u.string, "auto") == 0)
        {
            req->tool_choice = ST_API_TOOLS_AUTO;
        } else if (v->type == yajl_t_string
                   && strcmp(v->u.string, "required") == 0)
        {
            req->tool_choice = ST_API_TOOLS_REQUIRED;
        } else {
            st_api_err(req, "tool_choice", "unsupported", "",
                       "tool_choice must be none, auto or required");
        }
    }
}
