
/*
 * Directives:
 *
 *   starling_model NAME path=FILE [backend=cpu|cuda|auto] [ctx=N]
 *                  [threads=N] [max_seqs=N] [kv=SIZE] [sha256=HEX]
 *                  [chat_template=auto|chatml|llama2|llama3|mistral-v1|
 *                   mistral-v3|mistral-v3-tekken|mistral-v7|zephyr|phi3|
 *                   phi4|gemma|plain];
 *                                                          http
 *   starling SURFACE [model=NAME];                         location
 *   starling_thread_pool NAME;             (starling)      http
 *   starling_max_tokens N;                 (2048)          http/server/loc
 *                                          1..1048576
 *   starling_max_prompt_tokens N;          (0: context)    http/server/loc
 *                                          0..16777216
 *   starling_max_prompt_chars N;           (32768)         http/server/loc
 *                                          1..16777216
 *   starling_queue N [timeout=TIME];       (64 30s)        http/server/loc
 *                                          0..65536, 1ms..1h
 *   starling_request_timeout TIME;         (0: off)        http/server/loc
 */

#include "ngx_http_starling_shm.h"
#include "ngx_http_starling_handlers.h"
#include "ngx_http_starling_tokenlimit.h"
#include "ngx_http_starling_tenant.h"

#include <sys/wait.h>


extern ngx_module_t  ngx_thread_pool_module;


static ngx_int_t ngx_http_starling_cuda_probe(ngx_conf_t *cf, u_char *why,
    size_t why_len);
static char *ngx_http_starling_model(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_starling(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_starling_queue(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_starling_declare_pool(ngx_conf_t *cf,
    ngx_str_t *name);


static ngx_int_t ngx_http_starling_conf_enum(ngx_conf_enum_t *e,
    u_char *data, size_t len, ngx_uint_t *value);


static char *ngx_http_starling_check_bounds(ngx_conf_t *cf, void *post,
    void *data);


/*
 * Bounds of the numeric directives. ngx_conf_check_num_bounds() would do,
 * but its message does not name the directive: this one's answer goes
 * through ngx_conf_handler(), which prints '"NAME" directive value must
 * be between LOW and HIGH in FILE:LINE'.
 */
static ngx_conf_num_bounds_t  ngx_http_starling_max_tokens_bounds = {
    ngx_http_starling_check_bounds, 1, 1048576
};

static ngx_conf_num_bounds_t  ngx_http_starling_prompt_chars_bounds = {
    ngx_http_starling_check_bounds, 1, 16777216
};

/* 0: the model's context minus one (the default); ctx= goes to 2^24 */
static ngx_conf_num_bounds_t  ngx_http_starling_prompt_tokens_bounds = {
    ngx_http_starling_check_bounds, 0, 16777216
};

/* starling_queue N [timeout=TIME]: N may be 0 (no waiting at all) */
#define NGX_HTTP_STARLING_QUEUE_MAX          65536
#define NGX_HTTP_STARLING_QUEUE_TIMEOUT_MAX  3600000   /* ms: 1h */


/* "starling SURFACE" */
static ngx_conf_enum_t  ngx_http_starling_surfaces[] = {
    { ngx_string("openai"), NGX_HTTP_STARLING_OPENAI },
    { ngx_string("worker"), NGX_HTTP_STARLING_WORKER },
    { ngx_string("openai_completions"), NGX_HTTP_STARLING_COMPLETIONS },
    { ngx_string("openai_chat"), NGX_HTTP_STARLING_CHAT },
    { ngx_string("openai_models"), NGX_HTTP_STARLING_MODELS },
    { ngx_string("execute"), NGX_HTTP_STARLING_EXECUTE },
    { ngx_string("cancel"), NGX_HTTP_STARLING_CANCEL },
    { ngx_string("health"), NGX_HTTP_STARLING_HEALTH },
    { ngx_string("ready"), NGX_HTTP_STARLING_READY },
    { ngx_string("tokenize"), NGX_HTTP_STARLING_TOKENIZE },
    { ngx_string("detokenize"), NGX_HTTP_STARLING_DETOKENIZE },
    { ngx_string("metrics"), NGX_HTTP_STARLING_METRICS },
    { ngx_string("apply_template"), NGX_HTTP_STARLING_APPLY_TEMPLATE },
    { ngx_string("openai_responses"), NGX_HTTP_STARLING_RESPONSES },
    { ngx_string("embeddings"), NGX_HTTP_STARLING_EMBEDDINGS },
    { ngx_null_string, 0 }
};


/* starling_model ... backend=VALUE */
static ngx_conf_enum_t  ngx_http_starling_backends[] = {
    { ngx_string("cpu"), ST_BACKEND_CPU },
    { ngx_string("cuda"), ST_BACKEND_CUDA },
    { ngx_string("auto"), ST_BACKEND_AUTO },
    { ngx_null_string, 0 }
};


ngx_command_t  ngx_http_starling_commands[] = {

    { ngx_string("starling_model"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_starling_model,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_starling,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_starling_main_conf_t, pool_name),
      NULL },

    { ngx_string("starling_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_starling_loc_conf_t, max_tokens),
      &ngx_http_starling_max_tokens_bounds },

    { ngx_string("starling_max_prompt_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_starling_loc_conf_t, max_prompt_tokens),
      &ngx_http_starling_prompt_tokens_bounds },

    { ngx_string("starling_max_prompt_chars"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_starling_loc_conf_t, max_prompt_chars),
      &ngx_http_starling_prompt_chars_bounds },

    { ngx_string("starling_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_starling_queue,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling_request_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_starling_loc_conf_t, request_timeout),
      NULL },

    { ngx_string("starling_session_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_starling_session_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling_token_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_starling_token_limit_zone,
      0,
      0,
      NULL },

    { ngx_string("starling_token_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_starling_token_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling_tenant"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_starling_tenant_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("starling_priority"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_starling_loc_conf_t, priority),
      NULL },

      ngx_null_command
};


static ngx_str_t  ngx_http_starling_default_pool = ngx_string("starling");


void *
ngx_http_starling_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_starling_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_starling_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->pool_name = { 0, NULL };
     *     smcf->pool = NULL;
     *     smcf->shm_zone = NULL;
     */

    if (ngx_array_init(&smcf->models, cf->pool, 2,
                       sizeof(ngx_http_starling_model_t))
        != NGX_OK)
    {
        return NULL;
    }

    smcf->request_id_index = NGX_ERROR;

    return smcf;
}


char *
ngx_http_starling_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_starling_main_conf_t *smcf = conf;

    ngx_str_t  name = ngx_string("request_id");

    if (smcf->pool_name.data == NULL) {
        smcf->pool_name = ngx_http_starling_default_pool;
    }

    if (smcf->models.nelts == 0) {
        return NGX_CONF_OK;
    }

    if (ngx_http_starling_declare_pool(cf, &smcf->pool_name) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    smcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (smcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_starling_init_shm(cf, smcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The engine thread lives in an nginx thread pool. When the configuration
 * does not declare the pool (thread_pool NAME threads=1; in the main
 * context, before http{}), declare it the same way the directive would,
 * with one thread: one step is in flight per model at a time.
 */
static ngx_int_t
ngx_http_starling_declare_pool(ngx_conf_t *cf, ngx_str_t *name)
{
    char           *rv;
    void           *tpcf;
    ngx_str_t      *arg;
    ngx_array_t    *args, *saved;
    ngx_command_t  *cmd;

    if (ngx_thread_pool_get(cf->cycle, name) != NULL) {
        return NGX_OK;
    }

    for (cmd = ngx_thread_pool_module.commands; cmd->name.len; cmd++) {
        if (cmd->name.len == sizeof("thread_pool") - 1
            && ngx_strncmp(cmd->name.data, "thread_pool", cmd->name.len) == 0)
        {
            break;
        }
    }

    if (cmd->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "starling: cannot declare thread pool \"%V\"; "
                           "add \"thread_pool %V threads=1;\"", name, name);
        return NGX_ERROR;
    }

    args = ngx_array_create(cf->pool, 3, sizeof(ngx_str_t));
    if (args == NULL) {
        return NGX_ERROR;
    }

    arg = ngx_array_push_n(args, 3);
    if (arg == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&arg[0], "thread_pool");
    arg[1] = *name;
    ngx_str_set(&arg[2], "threads=1");

    tpcf = ngx_get_conf(cf->cycle->conf_ctx, ngx_thread_pool_module);

    saved = cf->args;
    cf->args = args;
    rv = cmd->set(cf, cmd, tpcf);
    cf->args = saved;

    if (rv != NGX_CONF_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static char *
ngx_http_starling_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    u_char  *msg;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    msg = ngx_pnalloc(cf->pool, sizeof("value must be between  and ")
                                + 2 * NGX_INT_T_LEN);
    if (msg == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_sprintf(msg, "value must be between %i and %i%Z",
                       bounds->low, bounds->high);

    return (char *) msg;
}


static ngx_int_t
ngx_http_starling_parse_uint(ngx_str_t *v, size_t skip, ngx_uint_t max,
    ngx_uint_t *out)
{
    ngx_int_t  n;

    n = ngx_atoi(v->data + skip, v->len - skip);
    if (n == NGX_ERROR || (ngx_uint_t) n > max) {
        return NGX_ERROR;
    }

    *out = (ngx_uint_t) n;
    return NGX_OK;
}


static char *
ngx_http_starling_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_starling_main_conf_t *smcf = conf;

    size_t                      i, k;
    ngx_str_t                  *value, s;
    ngx_uint_t                  n;
    ngx_file_info_t             fi;
    ngx_http_starling_model_t  *m;

    value = cf->args->elts;

    if (ngx_http_starling_find_model(smcf, value[1].data, value[1].len)
        != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate starling_model \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    m = ngx_array_push(&smcf->models);
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_starling_model_t));

    m->name = value[1];
    m->backend = ST_BACKEND_CPU;
    ngx_str_set(&m->chat_template, "auto");
    m->file = cf->conf_file->file.name.data;
    m->line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "path=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            if (s.len == 0) {
                goto invalid;
            }
            if (ngx_conf_full_name(cf->cycle, &s, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }
            m->path = s;
            continue;
        }

        if (ngx_strncmp(value[i].data, "backend=", 8) == 0) {
            if (ngx_http_starling_conf_enum(ngx_http_starling_backends,
                                            value[i].data + 8,
                                            value[i].len - 8, &n)
                != NGX_OK)
            {
                goto invalid;
            }
            m->backend = (st_backend_kind) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ctx=", 4) == 0) {
            if (ngx_http_starling_parse_uint(&value[i], 4, 1 << 24,
                                             &m->n_ctx)
                != NGX_OK)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "threads=", 8) == 0) {
            if (ngx_http_starling_parse_uint(&value[i], 8, 1024,
                                             &m->n_threads)
                != NGX_OK)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_seqs=", 9) == 0) {
            if (ngx_http_starling_parse_uint(&value[i], 9, 4096,
                                             &m->max_seqs)
                != NGX_OK || m->max_seqs == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "kv=", 3) == 0) {
            /* KV cache budget, e.g. kv=512m; default: max_seqs full
             * contexts */
            s.data = value[i].data + 3;
            s.len = value[i].len - 3;
            m->kv_bytes = ngx_parse_offset(&s);
            if (m->kv_bytes == NGX_ERROR || m->kv_bytes == 0) {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "sha256=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;
            if (s.len != 64) {
                goto invalid;
            }
            for (k = 0; k < s.len; k++) {
                if (!isxdigit(s.data[k])) {
                    goto invalid;
                }
            }
            m->sha256 = s;
            continue;
        }

        if (ngx_strncmp(value[i].data, "chat_template=", 14) == 0) {
            s.data = value[i].data + 14;
            s.len = value[i].len - 14;
            /* directive arguments are NUL-terminated */
            if (s.len == 0 || !st_api_chat_family_valid((char *) s.data)) {
                goto invalid;
            }
            m->chat_template = s;
            continue;
        }

        goto invalid;
    }

    if (m->path.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "starling_model \"%V\" needs path=FILE",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the workers load the file; catch the common mistakes at nginx -t
     * (ngx_conf_full_name() NUL-terminated the path) */
    if (ngx_file_info(m->path.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "starling_model \"%V\": cannot access \"%V\"",
                           &value[1], &m->path);
        return NGX_CONF_ERROR;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "starling_model \"%V\": \"%V\" is not a file",
                           &value[1], &m->path);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_starling_check_model_file(cf, m) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (m->backend == ST_BACKEND_CUDA) {
        u_char  why[160];

        if (ngx_http_starling_cuda_probe(cf, why, sizeof(why)) <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "starling_model \"%V\": backend=cuda but no "
                               "usable CUDA device: %s (use backend=auto to "
                               "fall back to the CPU)", &value[1], why);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid starling_model parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * Counts usable CUDA devices at configuration time, so that `nginx -t` and
 * start-up fail on a machine where backend=cuda cannot work. CUDA must not
 * be initialised in the master (contexts do not survive fork()), so the
 * probe runs in a short-lived child that reports through a pipe. Returns
 * the count (0 with a reason in why), or -1 if the probe itself failed.
 */
static ngx_int_t
ngx_http_starling_cuda_probe(ngx_conf_t *cf, u_char *why, size_t why_len)
{
    int       fds[2], count;
    char      buf[4 + 160];
    ssize_t   n, got;
    ngx_pid_t pid;

    ngx_cpystrn(why, (u_char *) "this build has no CUDA backend", why_len);
    if (!st_engine_backend_built("cuda")) {
        return 0;
    }

    if (pipe(fds) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "pipe() failed");
        ngx_cpystrn(why, (u_char *) "probe failed (pipe)", why_len);
        return -1;
    }

    pid = fork();
    if (pid == -1) {
        close(fds[0]);
        close(fds[1]);
        ngx_cpystrn(why, (u_char *) "probe failed (fork)", why_len);
        return -1;
    }

    if (pid == 0) {
        /* child: ask the CUDA runtime, report, exit without nginx's
         * exit handlers */
        ngx_memzero(buf, sizeof(buf));
        count = st_engine_cuda_probe(buf + 4, sizeof(buf) - 4);
        ngx_memcpy(buf, &count, 4);
        n = write(fds[1], buf, sizeof(buf));
        _exit(n == (ssize_t) sizeof(buf) ? 0 : 1);
    }

    close(fds[1]);
    got = 0;
    while (got < (ssize_t) sizeof(buf)) {
        n = read(fds[0], buf + got, sizeof(buf) - got);
        if (n <= 0) {
            if (n < 0 && ngx_errno == NGX_EINTR) {
                continue;
            }
            break;
        }
        got += n;
    }
    close(fds[0]);
    /* the master's SIGCHLD handler may have reaped it already (reload) */
    (void) waitpid(pid, NULL, 0);

    if (got != (ssize_t) sizeof(buf)) {
        ngx_cpystrn(why, (u_char *) "probe failed (the CUDA probe process "
                    "died)", why_len);
        return -1;
    }
    ngx_memcpy(&count, buf, 4);
    buf[sizeof(buf) - 1] = '\0';
    ngx_cpystrn(why, (u_char *) buf + 4, why_len);
    return count;
}


ngx_http_starling_model_t *
ngx_http_starling_find_model(ngx_http_starling_main_conf_t *smcf,
    u_char *name, size_t len)
{
    ngx_uint_t                  i;
    ngx_http_starling_model_t  *m;

    m = smcf->models.elts;

    for (i = 0; i < smcf->models.nelts; i++) {
        if (m[i].name.len == len
            && ngx_strncmp(m[i].name.data, name, len) == 0)
        {
            return &m[i];
        }
    }

    return NULL;
}


/*
 * A keyword from an ngx_conf_enum_t table, compared exactly (like the
 * strncmp chains these tables replaced; ngx_conf_set_enum_slot() would
 * also accept other cases, and works for one-argument directives only).
 */
static ngx_int_t
ngx_http_starling_conf_enum(ngx_conf_enum_t *e, u_char *data, size_t len,
    ngx_uint_t *value)
{
    for ( /* void */ ; e->name.len; e++) {
        if (e->name.len == len && ngx_strncmp(e->name.data, data, len) == 0)
        {
            *value = e->value;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static char *
ngx_http_starling(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_starling_loc_conf_t *slcf = conf;

    ngx_uint_t                 surface;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->surface != NGX_HTTP_STARLING_OFF) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_starling_conf_enum(ngx_http_starling_surfaces, value[1].data,
                                    value[1].len, &surface)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown starling surface \"%V\" (use openai, "
                           "worker, openai_completions, openai_chat, "
                           "openai_models, execute, cancel, health, ready, "
                           "tokenize, detokenize or metrics)", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->surface = (ngx_http_starling_surface_e) surface;

    if (cf->args->nelts == 3) {
        if (value[2].len <= 6
            || ngx_strncmp(value[2].data, "model=", 6) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
        slcf->model_name.data = value[2].data + 6;
        slcf->model_name.len = value[2].len - 6;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_starling_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_starling_queue(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_starling_loc_conf_t *slcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value, s;

    if (slcf->queue_size != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid queue size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (n > NGX_HTTP_STARLING_QUEUE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"starling_queue\" size %i is out of range: "
                           "it must be between 0 and %d", n,
                           NGX_HTTP_STARLING_QUEUE_MAX);
        return NGX_CONF_ERROR;
    }

    slcf->queue_size = (ngx_uint_t) n;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "timeout=", 8) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + 8;
        s.len = value[2].len - 8;

        slcf->queue_timeout = ngx_parse_time(&s, 0);
        if (slcf->queue_timeout == (ngx_msec_t) NGX_ERROR
            || slcf->queue_timeout == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid queue timeout \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        if (slcf->queue_timeout > NGX_HTTP_STARLING_QUEUE_TIMEOUT_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"starling_queue\" timeout \"%V\" is out "
                               "of range: it must be between 1ms and 1h",
                               &s);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


void *
ngx_http_starling_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_starling_loc_conf_t  *slcf;

    slcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_starling_loc_conf_t));
    if (slcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     slcf->surface = NGX_HTTP_STARLING_OFF;
     *     slcf->model_name = { 0, NULL };
     *     slcf->model = NULL;
     *     slcf->token_limit = NULL;
     *     slcf->tenant = NULL;
     */

    slcf->max_tokens = NGX_CONF_UNSET_UINT;
    slcf->max_prompt_tokens = NGX_CONF_UNSET_UINT;
    slcf->max_prompt_chars = NGX_CONF_UNSET_UINT;
    slcf->queue_size = NGX_CONF_UNSET_UINT;
    slcf->queue_timeout = NGX_CONF_UNSET_MSEC;
    slcf->request_timeout = NGX_CONF_UNSET_MSEC;
    slcf->priority = NGX_CONF_UNSET_PTR;

    return slcf;
}


char *
ngx_http_starling_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_starling_loc_conf_t *prev = parent;
    ngx_http_starling_loc_conf_t *conf = child;

    ngx_http_starling_main_conf_t  *smcf;

    ngx_conf_merge_uint_value(conf->max_tokens, prev->max_tokens, 2048);
    ngx_conf_merge_uint_value(conf->max_prompt_tokens,
                              prev->max_prompt_tokens, 0);
    ngx_conf_merge_uint_value(conf->max_prompt_chars,
                              prev->max_prompt_chars, 32768);
    ngx_conf_merge_uint_value(conf->queue_size, prev->queue_size, 64);
    ngx_conf_merge_msec_value(conf->queue_timeout, prev->queue_timeout,
                              30000);
    if (conf->token_limit == NULL) {
        conf->token_limit = prev->token_limit;
    }

    if (conf->tenant == NULL) {
        conf->tenant = prev->tenant;
        conf->tenant_weight = prev->tenant_weight;
    }

    ngx_conf_merge_ptr_value(conf->priority, prev->priority, NULL);

    if (ngx_http_starling_token_limit_merge(cf, conf->token_limit)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_msec_value(conf->request_timeout, prev->request_timeout,
                              0);

    if (conf->surface == NGX_HTTP_STARLING_OFF) {
        return NGX_CONF_OK;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_starling_module);

    if (smcf->models.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"starling\" needs a \"starling_model\" in the "
                           "http block");
        return NGX_CONF_ERROR;
    }

    if (conf->model_name.len == 0) {
        conf->model = smcf->models.elts;        /* the first declared */
        return NGX_CONF_OK;
    }

    conf->model = ngx_http_starling_find_model(smcf, conf->model_name.data,
                                               conf->model_name.len);
    if (conf->model == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown starling model \"%V\"",
                           &conf->model_name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
