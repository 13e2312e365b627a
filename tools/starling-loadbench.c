/*
 * starling-loadbench: drives N concurrent streaming completions against a
 * running server (Starling in nginx, or any OpenAI-compatible server) and
 * prints aggregate generated tokens/s, time to first token and
 * inter-token latency.
 *
 *   starling-loadbench -p 8080 -c 1,4,8,16 -n 128 -w 3
 *
 * One process, non-blocking sockets and poll(): every stream is read as
 * it arrives, so the client itself adds no queueing. Each wave starts N
 * requests at once; figures are over all waves of a concurrency level.
 * Token events are SSE "data:" chunks carrying text; the token count is
 * the usage.completion_tokens of the final chunk when the server sends
 * it (stream_options.include_usage), else the number of text chunks.
 * A stream counts as an error when its status is not 200, when no text
 * came, or when it ends in an error event (an OpenAI-style
 * data: {"error":...} chunk, or the worker API's event: error) after the
 * 200; its tokens are not counted.
 *
 * Two-tenant (or more) mode: --tenants a:8,b:24 starts 8 streams with
 * "X-Tenant: a" and 24 with "X-Tenant: b" per wave (header name:
 * --tenant-header) and prints, per tenant, its generated tokens/s over
 * the wave (until its own last token) and its TTFT; with
 * starling_tenant $http_x_tenant weight=... this shows the fair shares.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 256

typedef struct {
    int      fd;
    char    *req;
    size_t   req_len, req_off;
    char    *buf;              /* raw response bytes */
    size_t   len, cap;
    size_t   scan;             /* decoded-body scan position */
    char    *body;             /* de-chunked body */
    size_t   body_len, body_cap;
    size_t   raw_off;          /* parse position in buf */
    int      headers_done, chunked, done, failed, status;
    int      sse_error;        /* the stream ended in an error event */
    long     chunk_left;       /* -1: expecting a size line */
    double   t_start, t_first, t_last;
    double  *gaps;
    size_t   n_gaps, cap_gaps;
    long     n_text_events, usage_tokens;
    int      tenant;           /* index into the --tenants list */
} stream;

#define MAX_TENANTS 8

typedef struct {
    char     name[64];
    int      count;            /* streams per wave */
    long     tokens;
    double   busy_ms;          /* wave start -> its last token, summed */
    double  *ttft;
    size_t   n_ttft;
    int      errors;
} tenant;


/* "a:8,b:24" -> tenants; returns the number, or -1 */
static int
parse_tenants(const char *spec, tenant *t)
{
    int          n = 0;
    const char  *p = spec, *colon, *end;

    while (*p) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        colon = memchr(p, ':', (size_t) (end - p));
        if (n == MAX_TENANTS || colon == NULL || colon == p
            || (size_t) (colon - p) >= sizeof(t[n].name))
        {
            return -1;
        }
        memset(&t[n], 0, sizeof(t[n]));
        memcpy(t[n].name, p, (size_t) (colon - p));
        t[n].count = atoi(colon + 1);
        if (t[n].count <= 0 || t[n].count > MAX_CONC) {
            return -1;
        }
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}


static void
append(char **p, size_t *len, size_t *cap, const char *src, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *p = realloc(*p, *cap);
    }
    memcpy(*p + *len, src, n);
    *len += n;
    (*p)[*len] = '\0';
}


/* Handles complete SSE events in the de-chunked body. */
static void
scan_events(stream *s, double t)
{
    char *ev, *end;

    for ( ;; ) {
        ev = s->body + s->scan;
        end = strstr(ev, "\n\n");
        if (end == NULL) {
            return;
        }
        *end = '\0';
        if (strncmp(ev, "data: ", 6) == 0) {
            const char *d = ev + 6, *u;
            if (strcmp(d, "[DONE]") == 0) {
                s->done = 1;
            } else if (strncmp(d, "{\"error\":", 9) == 0) {
                /* an OpenAI-style error object in place of a chunk: the
                 * server gave up on this stream after the 200 */
                s->sse_error = 1;
                s->done = 1;
            } else {
                /* a chunk with generated text: "text":"x" or "content":"x" */
                const char *txt = strstr(d, "\"text\":\"");
                if (txt == NULL) {
                    txt = strstr(d, "\"content\":\"");
                }
                if (txt != NULL && txt[strlen(txt[1] == 't' ? "\"text\":\""
                                                 : "\"content\":\"")] != '"')
                {
                    if (s->t_first == 0) {
                        s->t_first = t;
                    } else {
                        if (s->n_gaps == s->cap_gaps) {
                            s->cap_gaps = s->cap_gaps ? 2 * s->cap_gaps : 256;
                            s->gaps = realloc(s->gaps,
                                              sizeof(double) * s->cap_gaps);
                        }
                        s->gaps[s->n_gaps++] = t - s->t_last;
                    }
                    s->t_last = t;
                    s->n_text_events++;
                }
                u = strstr(d, "\"completion_tokens\":");
                if (u != NULL) {
                    s->usage_tokens = strtol(u + 20, NULL, 10);
                }
            }
        } else if (strncmp(ev, "event: end", 10) == 0) {
            s->done = 1;
        } else if (strncmp(ev, "event: error", 12) == 0) {
            s->sse_error = 1;
            s->done = 1;
        }
        s->scan = (size_t) (end - s->body) + 2;
    }
}


/* De-chunks what arrived; returns 0 on protocol error. */
static int
parse(stream *s, double t)
{
    char *p, *eol;

    if (!s->headers_done) {
        char *h = strstr(s->buf, "\r\n\r\n");
        if (h == NULL) {
            return 1;
        }
        s->status = atoi(s->buf + 9);
        s->chunked = strcasestr(s->buf, "transfer-encoding: chunked") != NULL;
        s->headers_done = 1;
        s->raw_off = (size_t) (h - s->buf) + 4;
        s->chunk_left = -1;
    }
    while (s->raw_off < s->len) {
        p = s->buf + s->raw_off;
        if (!s->chunked) {
            append(&s->body, &s->body_len, &s->body_cap, p, s->len - s->raw_off);
            s->raw_off = s->len;
            break;
        }
        if (s->chunk_left < 0) {
            eol = strstr(p, "\r\n");
            if (eol == NULL) {
                break;
            }
            s->chunk_left = strtol(p, NULL, 16);
            s->raw_off += (size_t) (eol - p) + 2;
            if (s->chunk_left == 0) {
                s->done = 1;
                break;
            }
            continue;
        }
        if (s->chunk_left > 0) {
            size_t n = s->len - s->raw_off;
            if (n > (size_t) s->chunk_left) {
                n = (size_t) s->chunk_left;
            }
            append(&s->body, &s->body_len, &s->body_cap, p, n);
            s->raw_off += n;
            s->chunk_left -= (long) n;
            continue;
        }
        if (s->len - s->raw_off < 2) {      /* CRLF after the chunk */
            break;
        }
        s->raw_off += 2;
        s->chunk_left = -1;
    }
    if (s->body != NULL) {
        scan_events(s, t);
    }
    return 1;
}


static int
open_conn(const char *host, int port)
{
    struct sockaddr_in sa;
    int                fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1
        || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0)
    {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: starling-loadbench [-h HOST] [-p PORT] [--path /v1/completions]\n"
        "         [-c 1,4,8,16] [-n MAX_TOKENS] [-w WAVES] [--prompt TEXT]\n"
        "         [--model NAME] [--temp T] [--ignore-eos] [--json]\n"
        "         [--tenants NAME:N,NAME:N [--tenant-header X-Tenant]]\n");
}


int
main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/v1/completions";
    const char *prompt = "Once upon a time, there was a little girl named "
                         "Lily. She loved to play outside in the park.";
    const char *model = "default", *conc_list = "1,4,8,16";
    const char *tenants_spec = NULL, *tenant_header = "X-Tenant";
    tenant      tn[MAX_TENANTS];
    int         n_tenants = 0, total_conc = 0;
    char        conc_buf[16];
    int         port = 8080, max_tokens = 128, waves = 3, json = 0, i;
    int         ignore_eos = 0;
    double      temp = 0.0;
    char        body[4096], *list, *tok;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) { json = 1; continue; }
        if (strcmp(a, "--ignore-eos") == 0) { ignore_eos = 1; continue; }
        if (v == NULL) { usage(); return 2; }
        i++;
        if (strcmp(a, "-h") == 0) host = v;
        else if (strcmp(a, "-p") == 0) port = atoi(v);
        else if (strcmp(a, "--path") == 0) path = v;
        else if (strcmp(a, "-c") == 0) conc_list = v;
        else if (strcmp(a, "-n") == 0) max_tokens = atoi(v);
        else if (strcmp(a, "-w") == 0) waves = atoi(v);
        else if (strcmp(a, "--prompt") == 0) prompt = v;
        else if (strcmp(a, "--model") == 0) model = v;
        else if (strcmp(a, "--temp") == 0) temp = atof(v);
        else if (strcmp(a, "--tenants") == 0) tenants_spec = v;
        else if (strcmp(a, "--tenant-header") == 0) tenant_header = v;
        else { usage(); return 2; }
    }
    if (tenants_spec != NULL) {
        n_tenants = parse_tenants(tenants_spec, tn);
        if (n_tenants <= 0) {
            fprintf(stderr, "bad --tenants \"%s\" (NAME:N,NAME:N)\n",
                    tenants_spec);
            return 2;
        }
        for (i = 0; i < n_tenants; i++) {
            total_conc += tn[i].count;
        }
        if (total_conc > MAX_CONC) {
            fprintf(stderr, "--tenants: %d streams, at most %d\n",
                    total_conc, MAX_CONC);
            return 2;
        }
        /* one concurrency level: every tenant's streams at once */
        snprintf(conc_buf, sizeof(conc_buf), "%d", total_conc);
        conc_list = conc_buf;
    }
    if (port <= 0 || max_tokens <= 0 || waves <= 0) {
        usage();
        return 2;
    }
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":%d,"
             "\"temperature\":%g,\"stream\":true,%s"
             "\"stream_options\":{\"include_usage\":true}}",
             model, prompt, max_tokens, temp,
             ignore_eos ? "\"ignore_eos\":true," : "");

    if (!json) {
        printf("%-6s %10s %12s %12s %12s %12s %8s\n", "conc", "tok/s",
               "ttft_mean", "ttft_p99", "itl_mean", "itl_p99", "errors");
    }
    list = strdup(conc_list);
    for (tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int      n = atoi(tok), w, k, errors = 0;
        long     total_tokens = 0;
        double   busy_ms = 0, *ttft = NULL, *itl = NULL;
        size_t   n_ttft = 0, n_itl = 0, cap_itl = 0;

        if (n <= 0 || n > MAX_CONC) {
            fprintf(stderr, "concurrency %d out of range\n", n);
            continue;
        }
        ttft = malloc(sizeof(double) * (size_t) n * (size_t) waves);
        for (w = 0; w < waves; w++) {
            stream         st[MAX_CONC];
            struct pollfd  pfd[MAX_CONC];
            double         t0 = now_ms(), t_end, deadline = t0 + 600000;
            int            live = 0;

            memset(st, 0, sizeof(st));
            for (k = 0; k < n; k++) {
                char hdr[512], th[160];
                int  hl, j, c;

                th[0] = '\0';
                st[k].tenant = -1;
                /* stream k belongs to the tenant whose block holds k */
                for (j = 0, c = k; n_tenants > 0; j = (j + 1) % n_tenants) {
                    if (c < tn[j].count) {
                        break;
                    }
                    c -= tn[j].count;
                }
                if (n_tenants > 0) {
                    st[k].tenant = j;
                    snprintf(th, sizeof(th), "%s: %s\r\n", tenant_header,
                             tn[j].name);
                }
                hl = snprintf(hdr, sizeof(hdr),
                    "POST %s HTTP/1.1\r\nHost: %s\r\n%s"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n", path, host, th,
                    strlen(body));
                st[k].req_len = (size_t) hl + strlen(body);
                st[k].req = malloc(st[k].req_len + 1);
                memcpy(st[k].req, hdr, (size_t) hl);
                memcpy(st[k].req + hl, body, strlen(body));
                st[k].fd = open_conn(host, port);
                st[k].t_start = now_ms();
                if (st[k].fd < 0) {
                    st[k].failed = 1;
                    errors++;
                } else {
                    live++;
                }
            }
            while (live > 0 && now_ms() < deadline) {
                for (k = 0; k < n; k++) {
                    pfd[k].fd = (st[k].failed || st[k].done) ? -1 : st[k].fd;
                    pfd[k].events = st[k].req_off < st[k].req_len
                                    ? POLLOUT : POLLIN;
                }
                if (poll(pfd, (nfds_t) n, 1000) < 0 && errno != EINTR) {
                    break;
                }
                for (k = 0; k < n; k++) {
                    stream *s = &st[k];
                    char    rb[16384];
                    ssize_t r;

                    if (pfd[k].fd < 0 || pfd[k].revents == 0) {
                        continue;
                    }
                    if (s->req_off < s->req_len) {
                        r = write(s->fd, s->req + s->req_off,
                                  s->req_len - s->req_off);
                        if (r > 0) {
                            s->req_off += (size_t) r;
                        } else if (r < 0 && errno != EAGAIN) {
                            s->failed = 1;
                        }
                    } else {
                        r = read(s->fd, rb, sizeof(rb));
                        if (r > 0) {
                            append(&s->buf, &s->len, &s->cap, rb, (size_t) r);
                            parse(s, now_ms());
                        } else if (r == 0) {
                            s->done = 1;
                        } else if (errno != EAGAIN) {
                            s->failed = 1;
                        }
                    }
                    if (s->done || s->failed) {
                        live--;
                        close(s->fd);
                        if (s->status != 200 || s->t_first == 0
                            || s->sse_error)
                        {
                            if (!s->failed) {
                                errors++;
                            }
                            s->failed = 1;
                        }
                    }
                }
            }
            t_end = now_ms();
            busy_ms += t_end - t0;
            for (k = 0; k < n_tenants; k++) {
                double last = t0;
                int    j;

                for (j = 0; j < n; j++) {
                    if (st[j].tenant == k && st[j].t_last > last) {
                        last = st[j].t_last;
                    }
                }
                tn[k].busy_ms += last - t0;
            }
            for (k = 0; k < n; k++) {
                stream *s = &st[k];
                size_t  g;

                if (s->tenant >= 0) {
                    tenant *tt = &tn[s->tenant];

                    if (tt->ttft == NULL) {
                        tt->ttft = malloc(sizeof(double) * (size_t) tt->count
                                          * (size_t) waves);
                    }
                    if (!s->failed && s->t_first > 0 && tt->ttft != NULL) {
                        tt->ttft[tt->n_ttft++] = s->t_first - s->t_start;
                        tt->tokens += s->usage_tokens > 0 ? s->usage_tokens
                                                          : s->n_text_events;
                    } else {
                        tt->errors++;
                    }
                }

                if (!s->failed && s->t_first > 0) {
                    ttft[n_ttft++] = s->t_first - s->t_start;
                    total_tokens += s->usage_tokens > 0 ? s->usage_tokens
                                                        : s->n_text_events;
                    for (g = 0; g < s->n_gaps; g++) {
                        if (n_itl == cap_itl) {
                            cap_itl = cap_itl ? 2 * cap_itl : 1024;
                            itl = realloc(itl, sizeof(double) * cap_itl);
                        }
                        itl[n_itl++] = s->gaps[g];
                    }
                }
                free(s->req);
                free(s->buf);
                free(s->body);
                free(s->gaps);
            }
        }
        {
            double tm = 0, im = 0, tp = 0, ip = 0;
            size_t j;

            qsort(ttft, n_ttft, sizeof(double), cmp_double);
            qsort(itl, n_itl, sizeof(double), cmp_double);
            for (j = 0; j < n_ttft; j++) tm += ttft[j];
            for (j = 0; j < n_itl; j++) im += itl[j];
            tm = n_ttft ? tm / n_ttft : 0;
            im = n_itl ? im / n_itl : 0;
            /* nearest-rank percentile: with few samples p99 is the max */
            tp = n_ttft ? ttft[(size_t) ceil(0.99 * n_ttft) - 1] : 0;
            ip = n_itl ? itl[(size_t) ceil(0.99 * n_itl) - 1] : 0;
            if (json) {
                printf("{\"concurrency\":%d,\"waves\":%d,\"tokens\":%ld,"
                       "\"tokens_per_s\":%.1f,\"ttft_ms_mean\":%.2f,"
                       "\"ttft_ms_p99\":%.2f,\"itl_ms_mean\":%.3f,"
                       "\"itl_ms_p99\":%.3f,\"errors\":%d}\n", n, waves,
                       total_tokens, total_tokens * 1000.0 / busy_ms, tm, tp,
                       im, ip, errors);
            } else {
                printf("%-6d %10.1f %10.2fms %10.2fms %10.3fms %10.3fms %8d\n",
                       n, total_tokens * 1000.0 / busy_ms, tm, tp, im, ip,
                       errors);
            }
            fflush(stdout);
        }
        free(ttft);
        free(itl);
    }
    for (i = 0; i < n_tenants; i++) {
        double  tm = 0, tp = 0;
        size_t  j;

        qsort(tn[i].ttft, tn[i].n_ttft, sizeof(double), cmp_double);
        for (j = 0; j < tn[i].n_ttft; j++) tm += tn[i].ttft[j];
        tm = tn[i].n_ttft ? tm / tn[i].n_ttft : 0;
        tp = tn[i].n_ttft ? tn[i].ttft[(size_t) ceil(0.99 * tn[i].n_ttft) - 1]
                          : 0;
        if (json) {
            printf("{\"tenant\":\"%s\",\"streams\":%d,\"tokens\":%ld,"
                   "\"tokens_per_s\":%.1f,\"ttft_ms_mean\":%.2f,"
                   "\"ttft_ms_p99\":%.2f,\"errors\":%d}\n", tn[i].name,
                   tn[i].count, tn[i].tokens,
                   tn[i].busy_ms > 0 ? tn[i].tokens * 1000.0 / tn[i].busy_ms
                                     : 0.0, tm, tp, tn[i].errors);
        } else {
            if (i == 0) {
                printf("%-12s %8s %10s %12s %12s %8s\n", "tenant", "streams",
                       "tok/s", "ttft_mean", "ttft_p99", "errors");
            }
            printf("%-12s %8d %10.1f %10.2fms %10.2fms %8d\n", tn[i].name,
                   tn[i].count,
                   tn[i].busy_ms > 0 ? tn[i].tokens * 1000.0 / tn[i].busy_ms
                                     : 0.0, tm, tp, tn[i].errors);
        }
        free(tn[i].ttft);
    }
    free(list);
    return 0;
}
