/*
 * Starling nginx module: configuration-time check of a declared model
 * file. starling_model runs it while the configuration is parsed, so
 * `nginx -t`, start-up and `nginx -s reload` refuse a file that a worker
 * could not load (truncated, corrupt, unsupported architecture or tensor
 * type, wrong shapes, sha256 mismatch) with the directive's file:line,
 * instead of workers failing with [emerg] after a reload. The weights
 * are not read (only sha256=, when given, reads the whole file).
 */

#include "ngx_http_starling_conf.h"


ngx_int_t
ngx_http_starling_check_model_file(ngx_conf_t *cf,
    ngx_http_starling_model_t *m)
{
    u_char          sha[65];
    st_error        err;
    st_status       rc;
    st_model_check  mc;

    if (m->sha256.len != 0 && m->sha256.len != 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "starling_model \"%V\": bad sha256 length",
                           &m->name);
        return NGX_ERROR;
    }

    if (m->sha256.len) {
        ngx_memcpy(sha, m->sha256.data, 64);
        sha[64] = '\0';
    }

    ngx_memzero(&err, sizeof(st_error));

    /* ngx_conf_full_name() NUL-terminated the path */
    rc = st_engine_check_model((const char *) m->path.data,
                               m->sha256.len ? (const char *) sha : NULL,
                               &mc, &err);
    if (rc != ST_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "starling_model \"%V\": \"%V\" cannot be "
                           "served: %s", &m->name, &m->path, err.msg);
        return NGX_ERROR;
    }

    ngx_log_debug7(NGX_LOG_DEBUG_CORE, cf->log, 0,
                   "starling: model \"%V\" checked: %s %s, %uL params, "
                   "%uD layers, ctx %uD, %uL bytes",
                   &m->name, mc.arch, mc.quant_kind, mc.n_params,
                   mc.n_layer, mc.n_ctx_train, mc.file_bytes);

    return NGX_OK;
}
