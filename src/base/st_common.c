#include "starling/st_common.h"

#include <stdarg.h>
#include <stdio.h>


st_status
st_error_set(st_error *err, st_status code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}


const char *
st_status_str(st_status code)
{
    switch (code) {
    case ST_OK:              return "ok";
    case ST_ERR_IO:          return "io error";
    case ST_ERR_FORMAT:      return "format error";
    case ST_ERR_UNSUPPORTED: return "unsupported";
    case ST_ERR_NOMEM:       return "out of memory";
    case ST_ERR_INVALID:     return "invalid argument";
    case ST_ERR_CONTEXT:     return "context overflow";
    case ST_ERR_DIGEST:      return "digest mismatch";
    case ST_ERR_FULL:        return "capacity exhausted";
    case ST_ERR_INTERNAL:    return "internal error";
    }
    return "unknown";
}
