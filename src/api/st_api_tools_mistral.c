/*
 * Tools in Mistral v3's own format (Mistral-7B-Instruct-v0.3's template):
 *
 *   [AVAILABLE_TOOLS] [{"type": "function", "function": {...}}, ...]
 *   [/AVAILABLE_TOOLS]           (just before the last user turn, no
 *                                 newline between)
 *   [INST] {user}[/INST]         ("{system}\n\n" before the user text
 *                                 only when that turn is the last message,
 *                                 as the template does)
 *   [TOOL_CALLS] [{"name": N, "arguments": A, "id": "ID"}, ...]</s>
 *   [TOOL_RESULTS] {"content": C, "call_id": "ID"}[/TOOL_RESULTS]
 *    {answer, trimmed}</s>
 *
 * The template wants 9-character call ids: the last 9 characters of the
 * ids sent are used (what vLLM does), a shorter id is a 400. The tool's
 * string fields are written as the template writes them (unescaped),
 * other fields as tojson. The model answers calls after [TOOL_CALLS], as
 * a JSON array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "starling/st_chat.h"
#include "st_api_field.h"


#define ST_MI_ID_LEN  9

static const char  st_mi_calls[] = "[TOOL_CALLS]";


static int
st_mi_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}


static const char *
st_mi_id(const char *id)
{
    size_t  n = id ? strlen(id) : 0;

    return n < ST_MI_ID_LEN ? NULL : id + n - ST_MI_ID_LEN;
}


static st_status
st_mi_tools(st_jbuf *b, const st_api_request *req, st_error *err)
{
    size_t    i, k, n = 0, nk;
    yajl_val  v, fn, val;
    char      ebuf[64];

    st_jbuf_adds(b, "[AVAILABLE_TOOLS] [");
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
        fn = st_api_opt(v, "function");
        if (n++) {
            st_jbuf_adds(b, ", ");
        }
        st_jbuf_adds(b, "{\"type\": \"function\", \"function\": {");
        nk = 0;
        for (k = 0; fn != NULL && fn->type == yajl_t_object
                    && k < fn->u.object.len; k++)
        {
            if (strcmp(fn->u.object.keys[k], "return") == 0) {
                continue;
            }
            if (nk++) {
                st_jbuf_adds(b, ", ");
            }
            val = fn->u.object.values[k];
            st_jbuf_adds(b, "\"");
            st_jbuf_adds(b, fn->u.object.keys[k]);
            st_jbuf_adds(b, "\": ");
            if (val->type == yajl_t_string) {
                st_jbuf_adds(b, "\"");
                st_jbuf_adds(b, val->u.string);
                st_jbuf_adds(b, "\"");
            } else {
                st_api_json_dump(b, val, 1);
            }
        }
        st_jbuf_adds(b, "}}");
        yajl_tree_free(v);
    }
    st_jbuf_adds(b, "][/AVAILABLE_TOOLS]");
    return ST_OK;
}


st_status
st_api_tools_render_mistral(const st_api_request *req, st_jbuf *out,
    const char *const **stop, size_t *n_stop, st_error *err)
{
    size_t                 i, j, first, last_user, turn;
    st_status              rc;
    yajl_val               v;
    char                   ebuf[64];
    const char            *id;
    const st_api_message  *m, *sys = NULL;

    first = 0;
    if (req->n_messages > 0
        && (strcmp(req->messages[0].role, "system") == 0
            || strcmp(req->messages[0].role, "developer") == 0))
    {
        sys = &req->messages[0];
        first = 1;
    }

    /* the template's checks: user/assistant alternate (tool turns and
     * calls aside), and no other role */
    last_user = req->n_messages;
    turn = 0;
    for (i = first; i < req->n_messages; i++) {
        m = &req->messages[i];
        if (strcmp(m->role, "tool") == 0 || m->n_tool_calls > 0) {
            continue;
        }
        if (strcmp(m->role, "user") != 0
            && strcmp(m->role, "assistant") != 0)
        {
            return st_error_set(err, ST_ERR_INVALID, "messages[%zu]: the "
                                "Mistral template takes user and assistant "
                                "turns after one optional system message",
                                i);
        }
        if ((strcmp(m->role, "user") == 0) != (turn % 2 == 0)) {
            return st_error_set(err, ST_ERR_INVALID, "messages[%zu]: the "
                                "Mistral template needs user and assistant "
                                "turns to alternate", i);
        }
        if (strcmp(m->role, "user") == 0) {
            last_user = i;
        }
        turn++;
    }

    for (i = first; i < req->n_messages; i++) {
        m = &req->messages[i];

        if (strcmp(m->role, "user") == 0) {
            if (i == last_user) {
                rc = st_mi_tools(out, req, err);
                if (rc != ST_OK) {
                    return rc;
                }
            }
            st_jbuf_adds(out, "[INST] ");
            if (i + 1 == req->n_messages && sys != NULL) {
                st_jbuf_add(out, sys->content, sys->content_len);
                st_jbuf_adds(out, "\n\n");
            }
            st_jbuf_add(out, m->content, m->content_len);
            st_jbuf_adds(out, "[/INST]");
            continue;
        }

        if (m->n_tool_calls > 0) {
            st_jbuf_adds(out, "[TOOL_CALLS] [");
            for (j = 0; j < m->n_tool_calls; j++) {
                id = st_mi_id(m->tool_calls[j].id);
                if (id == NULL) {
                    return st_error_set(err, ST_ERR_INVALID, "messages[%zu]"
                                        ": the Mistral template needs tool "
                                        "call ids of at least 9 characters",
                                        i);
                }
                if (j) {
                    st_jbuf_adds(out, ", ");
                }
                st_jbuf_adds(out, "{\"name\": ");
                st_jbuf_add_jstr(out, m->tool_calls[j].name,
                                 strlen(m->tool_calls[j].name));
                st_jbuf_adds(out, ", \"arguments\": ");
                v = yajl_tree_parse(m->tool_calls[j].arguments, ebuf,
                                    sizeof(ebuf));
                if (v != NULL) {
                    st_api_json_dump(out, v, 1);
                    yajl_tree_free(v);
                } else {
                    st_jbuf_add_jstr(out, m->tool_calls[j].arguments,
                                     strlen(m->tool_calls[j].arguments));
                }
                st_jbuf_adds(out, ", \"id\": \"");
                st_jbuf_adds(out, id);
                st_jbuf_adds(out, "\"}");
            }
            st_jbuf_adds(out, "]</s>");
            continue;
        }

        if (strcmp(m->role, "tool") == 0) {
            id = st_mi_id(m->tool_call_id);
            if (id == NULL) {
                return st_error_set(err, ST_ERR_INVALID, "messages[%zu]: "
                                    "the Mistral template needs a "
                                    "tool_call_id of at least 9 characters",
                                    i);
            }
            st_jbuf_adds(out, "[TOOL_RESULTS] {\"content\": ");
            st_jbuf_add(out, m->content, m->content_len);
            st_jbuf_adds(out, ", \"call_id\": \"");
            st_jbuf_adds(out, id);
            st_jbuf_adds(out, "\"}[/TOOL_RESULTS]");
            continue;
        }

        /* assistant */
        st_jbuf_adds(out, " ");
        for (j = 0; j < m->content_len && st_mi_space(m->content[j]); j++) {
            /* trim */
        }
        turn = m->content_len;
        while (turn > j && st_mi_space(m->content[turn - 1])) {
            turn--;
        }
        st_jbuf_add(out, m->content + j, turn - j);
        st_jbuf_adds(out, "</s>");
    }

    if (out->failed) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }

    *stop = st_chat_stop_strings(ST_CHAT_MISTRAL_V3, n_stop);
    return ST_OK;
}


int
st_api_tool_calls_parse_mistral(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len)
{
    size_t             i, n, k = strlen(st_mi_calls);
    const char        *p = NULL;
    char              *json, ebuf[64];
    yajl_val           v, c, name, args;
    st_jbuf            jb;
    st_api_tool_call  *out;

    *calls = NULL;
    *content_len = len;

    for (i = 0; i + k <= len; i++) {
        if (memcmp(text + i, st_mi_calls, k) == 0) {
            p = text + i;
            break;
        }
    }
    if (p == NULL) {
        return 0;
    }

    n = len - (size_t) (p - text) - k;
    json = malloc(n + 1);
    if (json == NULL) {
        return -1;
    }
    memcpy(json, p + k, n);
    json[n] = '\0';
    v = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    free(json);

    if (v == NULL || v->type != yajl_t_array || v->u.array.len == 0
        || v->u.array.len > 16)
    {
        goto plain;
    }
    for (i = 0; i < v->u.array.len; i++) {
        c = v->u.array.values[i];
        name = c->type == yajl_t_object ? st_api_opt(c, "name") : NULL;
        args = c->type == yajl_t_object ? st_api_opt(c, "arguments") : NULL;
        if (name == NULL || name->type != yajl_t_string
            || (n_tools && !st_api_tool_find(tools, n_tools, name->u.string))
            || (args != NULL && args->type != yajl_t_object))
        {
            goto plain;
        }
    }

    out = calloc(v->u.array.len, sizeof(st_api_tool_call));
    if (out == NULL) {
        yajl_tree_free(v);
        return -1;
    }
    for (i = 0; i < v->u.array.len; i++) {
        c = v->u.array.values[i];
        args = st_api_opt(c, "arguments");
        st_jbuf_init(&jb);
        if (args != NULL) {
            st_api_json_dump(&jb, args, 0);
        } else {
            st_jbuf_adds(&jb, "{}");
        }
        out[i].arguments = jb.data;
        out[i].name = strdup(st_api_opt(c, "name")->u.string);
        st_jbuf_init(&jb);
        st_jbuf_addf(&jb, "call_%s_%zu", id_prefix, i);
        out[i].id = jb.data;
        if (out[i].arguments == NULL || out[i].name == NULL
            || out[i].id == NULL)
        {
            st_api_tool_calls_free(out, i + 1);
            yajl_tree_free(v);
            return -1;
        }
    }
    n = v->u.array.len;
    yajl_tree_free(v);

    *calls = out;
    *content_len = (size_t) (p - text);
    return (int) n;

plain:
    if (v != NULL) {
        yajl_tree_free(v);
    }
    return 0;
}
