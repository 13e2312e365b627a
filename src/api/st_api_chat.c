/*
 * Chat prompt rendering for /v1/chat/completions: the one place the
 * module turns messages into prompt text. The formats themselves live in
 * the engine's chat module (include/starling/st_chat.h); this maps API roles and
 * the configured family onto it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "starling/st_api.h"
#include "starling/st_chat.h"


int
st_api_chat_family_valid(const char *family)
{
    if (family == NULL || strcmp(family, "auto") == 0) {
        return 1;
    }

    return st_chat_family_from_name(family) != ST_CHAT_UNKNOWN;
}


st_status
st_api_chat_render(const char *family, const char *model_template,
    const st_api_message *msgs, size_t n_msgs, st_jbuf *out,
    const char *const **stop, size_t *n_stop, st_error *err)
{
    size_t           i, len;
    char            *text;
    st_status        rc;
    st_chat_msg     *cm;
    st_chat_family   fam;

    *stop = NULL;
    *n_stop = 0;

    if (family == NULL || strcmp(family, "auto") == 0) {
        fam = st_chat_detect(model_template);
    } else {
        fam = st_chat_family_from_name(family);
    }

    if (fam == ST_CHAT_UNKNOWN) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "the model's chat template is not a known "
                            "family; set chat_template= in starling_model");
    }

    cm = calloc(n_msgs ? n_msgs : 1, sizeof(st_chat_msg));
    if (cm == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }

    for (i = 0; i < n_msgs; i++) {
        /* OpenAI's "developer" role is the newer name of "system" */
        const char  *role = strcmp(msgs[i].role, "developer") == 0
                            ? "system" : msgs[i].role;

        rc = st_chat_role_from_name(role, strlen(role), &cm[i].role, err);
        if (rc != ST_OK) {
            free(cm);
            return rc;
        }

        cm[i].content = msgs[i].content;
        cm[i].content_len = msgs[i].content_len;
    }

    text = NULL;
    len = 0;
    rc = st_chat_render(fam, cm, n_msgs, 1, &text, &len, err);
    free(cm);

    if (rc != ST_OK) {
        return rc;
    }

    st_jbuf_add(out, text, len);
    free(text);

    if (out->failed) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }

    *stop = st_chat_stop_strings(fam, n_stop);
    return ST_OK;
}
