/* http.c — libmicrohttpd glue: body collection with a cap, routing, auth,
 * and turning an aster_resp into an MHD response.
 *
 * Who runs where: libmicrohttpd's internal epoll threads call on_request
 * and on_completed; handlers therefore run on those threads, one request on
 * one thread at a time. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_int.h"
#include "util/mem.h"
#include "util/time.h"

/* Bytes beyond the body cap that are read and dropped rather than cut off
 * (see on_request). */
#define DISCARD_MAX (64u << 20)

/* Per-request state, from the first callback to on_completed. */
typedef struct req_ctx {
    char *body;
    size_t len, cap;
    int too_large;
    int answered; /* a response is queued */
    aster_mono_us started;
} req_ctx;

void aster_resp_json(aster_resp *resp, int status, json_t *body)
{
    json_decref(resp->json);
    resp->status = status;
    resp->json = body;
}

void aster_resp_jw(aster_resp *resp, int status, aster_jw *w)
{
    json_decref(resp->json);
    resp->json = NULL;
    aster_free(resp->text);
    resp->status = status;
    resp->text = aster_jw_take(w, NULL);
    resp->content_type = "application/json";
}

void aster_resp_error(aster_resp *resp, int status, const char *code, const char *field,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *e;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (a path, a value): scrubbed, they
     * are always valid JSON strings, so an error never loses its body. */
    aster_utf8_scrub(msg);
    e = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (field && *field) {
        char f[128];
        snprintf(f, sizeof(f), "%s", field);
        aster_utf8_scrub(f);
        json_object_set_new(e, "field", json_string(f));
    }
    aster_resp_json(resp, status, json_pack("{s:o}", "error", e));
}

void aster_resp_err(aster_resp *resp, const aster_err *err)
{
    static const struct {
        int code, status;
    } map[] = {
        {ASTER_EINVAL, MHD_HTTP_BAD_REQUEST},        {ASTER_ENOENT, MHD_HTTP_NOT_FOUND},
        {ASTER_EEXIST, MHD_HTTP_CONFLICT},           {ASTER_ECONFLICT, MHD_HTTP_CONFLICT},
        {ASTER_ELIMIT, MHD_HTTP_CONTENT_TOO_LARGE},  {ASTER_EUNAVAIL, MHD_HTTP_SERVICE_UNAVAILABLE},
        {ASTER_EBUSY, MHD_HTTP_SERVICE_UNAVAILABLE}, {ASTER_EPERM, MHD_HTTP_FORBIDDEN},
    };
    int status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    for (size_t i = 0; i < ASTER_NELEM(map); i++)
        if (map[i].code == err->code)
            status = map[i].status;
    aster_resp_error(resp, status, aster_err_name(err->code), err->field, "%s",
                     err->msg[0] ? err->msg : "internal error");
}

const char *aster_req_query(const aster_req *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Matches `path` against `pattern`, capturing {x} segments into `buf`
 * (NUL-separated) and `params`.  Returns 1 on a match. */
static int match(const char *pattern, const char *path, char *buf, size_t bufsz,
                 const char **params)
{
    const char *p = pattern, *s = path;
    size_t used = 0, np = 0;

    while (*p && *s) {
        if (*p == '{') {
            const char *pend = strchr(p, '}');
            size_t n = strcspn(s, "/");
            if (!pend || n == 0 || np == ASTER_MAX_PATH_PARAMS || used + n + 1 > bufsz)
                return 0;
            memcpy(buf + used, s, n);
            buf[used + n] = '\0';
            params[np++] = buf + used;
            used += n + 1;
            p = pend + 1;
            s += n;
        } else if (*p++ != *s++) {
            return 0;
        }
    }
    return *p == '\0' && *s == '\0';
}

/* Routes are numbered across Aster's table and then the compatibility
 * table (compat.c); the number labels metrics, and routes_total() means
 * "no route". */
static size_t routes_total(void)
{
    return aster_nroutes + aster_compat_nroutes;
}

static const aster_route *route_at(size_t i)
{
    return i < aster_nroutes ? &aster_routes[i] : &aster_compat_routes[i - aster_nroutes];
}

/* Finds the route's number, or returns routes_total() and fills `allow`
 * when the path exists under other methods (405; else allow stays empty:
 * 404). */
static size_t route_find(const aster_api *api, const char *method, const char *path, char *buf,
                         size_t bufsz, const char **params, char *allow, size_t allowsz)
{
    size_t n = api->opts.compat ? routes_total() : aster_nroutes;
    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const aster_route *r = route_at(i);
        if (api->opts.observe_only && !(r->flags & ROUTE_OPEN))
            continue;
        if (!match(r->pattern, path, buf, bufsz, params))
            continue;
        if (!strcmp(r->method, method) || (!strcmp(method, "HEAD") && !strcmp(r->method, "GET")))
            return i;
        if (!strstr(allow, r->method)) {
            size_t l = strlen(allow);
            snprintf(allow + l, allowsz - l, "%s%s", l ? ", " : "", r->method);
        }
    }
    return routes_total();
}

static int is_write(const char *method)
{
    return strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "OPTIONS");
}

/* Returns the number of the route that answered (routes_total(): none). */
static size_t dispatch(aster_api *api, struct MHD_Connection *conn, const char *method,
                       const char *url, req_ctx *ctx, aster_resp *resp)
{
    char buf[512];
    aster_req req = {.api = api, .conn = conn, .method = method, .path = url};
    size_t idx;
    const aster_route *r;

    if (ctx->too_large) {
        aster_resp_error(resp, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL,
                         "request body is larger than %zu bytes", api->opts.max_body);
        return routes_total();
    }
    idx = route_find(api, method, url, buf, sizeof(buf), req.params, resp->allow,
                     sizeof(resp->allow));
    if (idx == routes_total()) {
        if (resp->allow[0])
            aster_resp_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
                             "%s is not allowed on %s (allowed: %s)", method, url, resp->allow);
        else
            aster_resp_error(resp, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no route %s %s", method,
                             url);
        return idx;
    }
    r = route_at(idx);
    req.access = ASTER_KEY_WRITE;
    if (!(r->flags & ROUTE_OPEN) && api->opts.keys) {
        const char *auth =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        req.access = aster_keys_check(api->opts.keys, auth);
        if (req.access == ASTER_KEY_NONE) {
            aster_resp_error(resp, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
                             "missing or wrong API key (Authorization: Bearer KEY)");
            return idx;
        }
        if (req.access == ASTER_KEY_READ && is_write(method)) {
            aster_resp_error(resp, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
                             "this API key is read-only");
            return idx;
        }
    }
    req.body = ctx->body;
    req.body_len = ctx->len;
    r->fn(&req, resp);
    return idx;
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, aster_resp *resp)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;
    char *body = NULL;
    size_t len = 0;
    const char *ctype = "application/json";

    if (resp->json) {
        body = json_dumps(resp->json, JSON_COMPACT);
        len = body ? strlen(body) : 0;
    } else if (resp->text) {
        body = resp->text;
        resp->text = NULL;
        len = strlen(body);
        ctype = resp->content_type ? resp->content_type : "text/plain; charset=utf-8";
    }
    /* MHD frees the body with free(): json_dumps and aster_malloc both use
     * the C allocator. */
    mr = MHD_create_response_from_buffer(len, body ? body : (void *)"",
                                         body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!mr) {
        free(body);
        return MHD_NO;
    }
    if (len)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (resp->location[0])
        MHD_add_response_header(mr, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (resp->allow[0] && resp->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, resp->allow);
    if (resp->status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    ret = MHD_queue_response(conn, (unsigned)resp->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    aster_api *api = cls;
    req_ctx *ctx = *con_cls;
    aster_resp resp = {.status = 500};
    enum MHD_Result ret;

    (void)version;
    if (!ctx) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        ctx = aster_calloc(1, sizeof(*ctx));
        ctx->started = aster_mono_now();
        atomic_fetch_add(&api->active, 1);
        *con_cls = ctx;
        if (!cl || strtoull(cl, NULL, 10) <= api->opts.max_body)
            return MHD_YES;
        ctx->too_large = 1;
        /* Over the cap.  A client that asked "Expect: 100-continue" waits
         * for our word, and one that declares an absurd size is not worth
         * reading: both get the 413 at once.  Any other client is sending
         * the body already and would only see a reset if we closed on it
         * now, so its body is read and dropped, and the 413 follows. */
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if (!(expect && !strcasecmp(expect, "100-continue")) &&
            strtoull(cl, NULL, 10) <= api->opts.max_body + DISCARD_MAX)
            return MHD_YES;
    } else if (ctx->answered) {
        *upload_size = 0; /* a body after an early answer: discard it */
        return MHD_YES;
    } else if (*upload_size) {
        size_t n = *upload_size;
        if (!ctx->too_large && ctx->len + n > api->opts.max_body) {
            ctx->too_large = 1;
        } else if (!ctx->too_large) {
            if (ctx->len + n + 1 > ctx->cap) {
                ctx->cap = (ctx->len + n + 1) * 2;
                if (ctx->cap > api->opts.max_body + 1)
                    ctx->cap = api->opts.max_body + 1;
                ctx->body = aster_realloc(ctx->body, ctx->cap);
            }
            memcpy(ctx->body + ctx->len, upload_data, n);
            ctx->len += n;
            ctx->body[ctx->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    ctx->answered = 1;
    size_t route = dispatch(api, conn, method, url, ctx, &resp);
    ret = send_resp(conn, &resp);
    json_decref(resp.json);
    aster_free(resp.text);
    double secs = (double)(aster_mono_now() - ctx->started) / 1e6;
    aster_metrics_http(api->opts.metrics, route, resp.status, secs);
    if (aster_log_enabled(api->opts.log, ASTER_LOG_INFO)) {
        /* The route pattern, not the raw path: ids and names stay out of
         * the aggregate view, and the line stays short. */
        const aster_kv kv[] = {
            ASTER_KV_STR("method", method),
            ASTER_KV_STR("route", route < routes_total() ? route_at(route)->pattern : url),
            ASTER_KV_INT("status", resp.status), ASTER_KV_DBL("latency_ms", secs * 1000.0)};
        aster_log(api->opts.log, ASTER_LOG_INFO, "api", "request", kv, ASTER_NELEM(kv));
    }
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    aster_api *api = cls;
    req_ctx *ctx = *con_cls;
    (void)conn;
    (void)toe;
    if (ctx) {
        atomic_fetch_sub(&api->active, 1);
        aster_free(ctx->body);
        aster_free(ctx);
        *con_cls = NULL;
    }
}

int aster_api_start(const aster_api_opts *opts, const aster_addr *addr, aster_api **out,
                    aster_err *err)
{
    aster_api *api = aster_calloc(1, sizeof(*api));
    unsigned threads = opts->threads;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC;
    char where[80];

    api->opts = *opts;
    if (!threads) {
        /* Handlers block while their write waits for its group commit;
         * more threads than cores let more writes share one fsync. */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (n > 0 ? (unsigned)n : 1) * 32;
        if (threads > 256)
            threads = 256;
    }
    if (addr->ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    api->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api, MHD_OPTION_SOCK_ADDR,
                                (const struct sockaddr *)&addr->ss, MHD_OPTION_THREAD_POOL_SIZE,
                                threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
                                MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_LIMIT,
                                10000u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!api->mhd) {
        aster_free(api);
        return aster_err_set(err, ASTER_EIO, "listen",
                             "cannot listen on %s (address in use or not available)",
                             aster_addr_format(addr, -1, where, sizeof(where)));
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : 0;
    *out = api;
    return 0;
}

aster_metrics *aster_api_metrics_new(void)
{
    /* Label values point into the static route tables, which outlive any
     * metrics object. */
    static const char *patterns[ASTER_MAX_ROUTES], *methods[ASTER_MAX_ROUTES];
    if (routes_total() > ASTER_MAX_ROUTES) {
        fprintf(stderr, "aster: more routes than ASTER_MAX_ROUTES\n");
        abort();
    }
    for (size_t i = 0; i < routes_total(); i++) {
        patterns[i] = route_at(i)->pattern;
        methods[i] = route_at(i)->method;
    }
    return aster_metrics_new(patterns, methods, routes_total());
}

int aster_api_port(const aster_api *api)
{
    return api->port;
}

void aster_api_stop(aster_api *api, int64_t grace_ms)
{
    if (!api)
        return;
    /* Stop accepting first, then give requests in progress the grace period
     * before MHD_stop_daemon closes every connection.  Idle keep-alive
     * connections do not hold shutdown up: only requests count. */
    int lfd = (int)MHD_quiesce_daemon(api->mhd);
    if (lfd >= 0)
        close(lfd);
    aster_mono_us deadline = aster_mono_now() + grace_ms * 1000;
    while (atomic_load(&api->active) > 0 && aster_mono_now() < deadline)
        usleep(5000);
    MHD_stop_daemon(api->mhd);
    aster_free(api);
}
