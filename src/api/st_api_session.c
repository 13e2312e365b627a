/*
 * The session_id request field (chat, completions, execute) and the body
 * of POST /v1/session/close. The id rule is the engine's
 * (st_session_id_valid): 1..128 printable ASCII characters.
 */
#include <string.h>

#include <yajl/yajl_tree.h>

#include "starling/st_api.h"
#include "st_api_field.h"


/* required: the close body must name a session */
void
st_api_session_field(st_api_request *req, yajl_val obj, int required,
    int *nomem)
{
    yajl_val  v = st_api_opt(obj, "session_id");
    size_t    n;

    if (v == NULL || v->type == yajl_t_null) {
        if (required) {
            st_api_err(req, "session_id", "required", "",
                       "session_id is required");
        }
        return;
    }
    if (v->type != yajl_t_string) {
        st_api_type_err(req, "session_id", v, "a string");
        return;
    }
    n = strlen(v->u.string);
    if (!st_session_id_valid(v->u.string, n)) {
        st_api_err(req, "session_id", "format", "",
                   "session_id must be 1..%d printable ASCII characters",
                   ST_SESSION_ID_MAX);
        return;
    }
    req->session_id = st_api_strdup(req, v->u.string, n, nomem);
}
