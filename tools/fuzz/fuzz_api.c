/*
 * libFuzzer target: the API layer's request parser and error writers on
 * arbitrary bodies, for every surface (make fuzz).
 */
#include "starling/st_api.h"

#include <stdint.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_api_limits   lim = { 2048, 32768 };
    st_api_request *req;
    st_jbuf         b;
    int             k;

    if (size < 1) {
        return 0;
    }
    k = data[0] % 6;
    req = st_api_parse((st_api_kind) k, (const char *) data + 1, size - 1,
                       &lim);
    if (req != NULL) {
        st_jbuf_init(&b);
        st_api_write_errors(&b, req);
        st_jbuf_free(&b);
        st_api_request_free(req);
    }
    return 0;
}
