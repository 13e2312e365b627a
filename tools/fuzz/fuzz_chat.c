/*
 * libFuzzer target: chat templates: st_chat_detect on an arbitrary
 * template string (as found in a GGUF), then st_chat_render of arbitrary
 * messages with the detected family (or, for a template nothing
 * recognises, a family the input picks), st_chat_family_from_name,
 * st_chat_role_from_name and st_chat_stop_strings.
 *
 * Input: byte 0 = flags (family pick, add_generation_prompt), then the
 * template up to the first NUL, then messages separated by NUL bytes,
 * each one role byte followed by its content.
 */
#include "starling/st_chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 32

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_chat_msg    msgs[MAX_MSGS];
    st_chat_role   role;
    st_chat_family fam;
    st_status      rc;
    const char    *p, *end, *nul;
    char          *tmpl, *out = NULL;
    size_t         n = 0, out_len = 0, tlen, ns, i;
    const char *const *stops;
    uint8_t        flags;

    if (size < 1) {
        return 0;
    }
    flags = data[0];
    p = (const char *) data + 1;
    end = (const char *) data + size;
    nul = memchr(p, '\0', end - p);
    tlen = (nul ? nul : end) - p;
    tmpl = malloc(tlen + 1);
    if (tmpl == NULL) {
        return 0;
    }
    memcpy(tmpl, p, tlen);
    tmpl[tlen] = '\0';
    fam = st_chat_detect(tmpl);
    if (fam < ST_CHAT_UNKNOWN || fam >= ST_CHAT_N_FAMILIES) {
        abort();
    }
    (void) st_chat_family_from_name(tmpl);
    (void) st_chat_role_from_name(tmpl, tlen, &role, NULL);
    free(tmpl);
    if (fam == ST_CHAT_UNKNOWN) {
        /* ST_CHAT_UNKNOWN itself is a valid (refused) choice too */
        fam = (st_chat_family) ((int) ((flags >> 1) % (ST_CHAT_N_FAMILIES + 1)) - 1);
    }
    (void) st_chat_family_name(fam);
    stops = st_chat_stop_strings(fam, &ns);
    for (i = 0; i < ns; i++) {
        (void) strlen(stops[i]);
    }

    p = nul ? nul + 1 : end;
    while (p < end && n < MAX_MSGS) {
        nul = memchr(p, '\0', end - p);
        const char *e = nul ? nul : end;
        if (e > p) {
            /* roles 0..2 valid, 3 outside the enum (must be refused) */
            msgs[n].role = (st_chat_role) ((uint8_t) p[0] % 4);
            msgs[n].content = p + 1;
            msgs[n].content_len = e - p - 1;
            n++;
        }
        p = nul ? nul + 1 : end;
    }
    rc = st_chat_render(fam, msgs, n, flags & 1, &out, &out_len, NULL);
    if (rc == ST_OK) {
        if (out == NULL || out[out_len] != '\0') {
            abort();
        }
    } else if (out != NULL && rc != ST_ERR_INVALID && rc != ST_ERR_UNSUPPORTED
               && rc != ST_ERR_NOMEM)
    {
        abort();
    }
    free(out);
    return 0;
}
