
/*
 * Worker-API POST /cancel {"job_id"}: a job of this worker is cancelled
 * here; a job of another worker is flagged in the shared registry and
 * ends at that worker's next step boundary.
 */

#include "ngx_http_starling_bridge.h"
#include "ngx_http_starling_jobs.h"
#include "ngx_http_starling_output.h"
#include "ngx_http_starling_handlers.h"


/* POST /cancel {"job_id"}: idempotent; 200 whether or not the job is
 * (still) running here. */
ngx_int_t
ngx_http_starling_cancel_request(ngx_http_request_t *r, st_api_request *req)
{
    size_t                          len;
    ngx_int_t                       rc;
    st_jbuf                         b;
    const char                     *status;
    ngx_http_starling_ctx_t        *job;
    ngx_http_starling_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_starling_module);

    len = ngx_strlen(req->job_id);
    job = ngx_http_starling_find_job(smcf, (u_char *) req->job_id, len);

    if (job != NULL) {
        status = job->cancel_requested ? "already_cancelling" : "cancelling";
        ngx_http_starling_cancel(job);

    } else {
        switch (ngx_http_starling_job_cancel(r, (u_char *) req->job_id, len)) {
        case 1:
            /* another worker runs it: cancelled at its next step boundary */
            status = "cancelling";
            break;
        case 2:
            /* generation is over; the rest of its output is on its way */
            status = "finished";
            break;
        default:
            status = "not_found";
        }
    }

    st_jbuf_init(&b);
    st_jbuf_adds(&b, "{\"job_id\":");
    st_jbuf_add_jstr(&b, req->job_id, len);
    st_jbuf_addf(&b, ",\"status\":\"%s\"}\n", status);

    if (b.failed) {
        st_jbuf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_starling_send_json(r, NGX_HTTP_OK, b.data, b.len);
    st_jbuf_free(&b);
    return rc;
}
