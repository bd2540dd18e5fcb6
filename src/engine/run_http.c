/* run_http.c — HTTP attempts: libcurl's multi interface on the engine's
 * libuv loop, in the shape of curl's docs/examples/multi-uv.c.
 *
 * curl tells us which sockets to watch (on_socket: one uv_poll_t each) and
 * when to call it back (on_curl_timer: one uv_timer_t); the loop calls
 * curl_multi_socket_action, and finished transfers are collected with
 * curl_multi_info_read.  No thread per execution (libcurl's threaded
 * resolver may use one for a DNS lookup; an IP literal needs none).
 *
 * At most r->max_in_flight transfers are in the multi; the rest wait on
 * r->queue in submission order.  Connections are reused through the
 * multi's connection cache (sized to max_in_flight), and easy handles
 * through a pool, so a steady load neither reconnects nor reallocates.
 *
 * Redirects are not followed: a scheduler that silently follows one may
 * POST to a place the operator never named.  A 3xx is recorded as a failure
 * whose error says so. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/run_int.h"
#include "util/limits.h"
#include "util/mem.h"

/* Connections per host, and idle connections kept (see http_init). */
#define HTTP_CONN_CAP 100000

#ifndef ASTER_VERSION
#define ASTER_VERSION "0.0.0"
#endif

static void pump(aster_runner *r);

/* ---- socket and timer glue ---- */

static void check_done(aster_runner *r);

static void on_sock_closed(uv_handle_t *h)
{
    run_sock *k = h->data;
    aster_runner *r = k->r;
    aster_free(k);
    aster__run_unref(r);
}

static void sock_close(run_sock *k)
{
    link_del(&k->link);
    uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    run_sock *k = p->data;
    aster_runner *r = k->r;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT; /* let curl find out */
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    /* k may be closed by on_socket during this call: not used after it. */
    curl_multi_socket_action(r->multi, k->fd, flags, &running);
    check_done(r);
}

/* CURLMOPT_SOCKETFUNCTION: watch, change or forget one socket. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    aster_runner *r = userp;
    run_sock *k = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            /* Stop before curl closes the fd, so epoll forgets it first. */
            uv_poll_stop(&k->poll);
            curl_multi_assign(r->multi, s, NULL);
            sock_close(k);
        }
        return 0;
    }
    if (!k) {
        k = aster_calloc(1, sizeof(*k));
        k->fd = s;
        k->r = r;
        if (uv_poll_init_socket(r->loop, &k->poll, s)) {
            /* Returning -1 would mark the whole multi dead; unwatched, the
             * one transfer on this socket ends at its timeout instead. */
            aster_free(k);
            return 0;
        }
        k->poll.data = k;
        link_push(&r->socks, &k->link);
        r->refs++;
        curl_multi_assign(r->multi, s, k);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&k->poll, events, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
    aster_runner *r = t->data;
    int running;

    r->in_curl_timer = true;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    r->in_curl_timer = false;
    check_done(r);
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi. */
static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
    aster_runner *r = userp;

    (void)multi;
    if (ms < 0) {
        uv_timer_stop(&r->curl_timer);
        return 0;
    }
    /* 0 means "as soon as possible": the next loop iteration.  Inside the
     * timer's own callback a 0 would rerun it in the same pass of libuv's
     * timer loop, and again if curl keeps asking: 1 ms breaks that. */
    if (ms == 0 && r->in_curl_timer)
        ms = 1;
    uv_timer_start(&r->curl_timer, on_curl_timeout, (uint64_t)ms, 0);
    return 0;
}

int aster__run_http_init(aster_runner *r, aster_err *err)
{
    r->multi = curl_multi_init();
    if (!r->multi)
        return aster_err_set(err, ASTER_EIO, NULL, "cannot create a libcurl multi handle");
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    /* We admit at most max_in_flight transfers, so curl never needs to
     * queue one behind a per-host limit of its own; and up to as many idle
     * connections stay cached for the next fire.  (Capping connections per
     * host at 256 made libcurl 7.88 queue transfers until they timed out:
     * bench/fire at 10,000 jobs fell from 9,400 to 1,600 executions/s.) */
    long n = r->max_in_flight > HTTP_CONN_CAP ? HTTP_CONN_CAP : (long)r->max_in_flight;
    curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS, n);
    curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, n);
    r->pool_cap = r->max_in_flight < 1024 ? r->max_in_flight : 1024;
    r->pool = aster_calloc(r->pool_cap, sizeof(*r->pool));
    return 0;
}

/* ---- one transfer ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    aster__run_output(ud, p, size * n);
    return size * n; /* keep reading past the cap: the connection stays reusable */
}

static void release_easy(aster_runner *r, CURL *easy)
{
    if (r->npool < r->pool_cap && !r->closing) {
        curl_easy_reset(easy);
        r->pool[r->npool++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

/* POST, PUT and PATCH always carry a body (Content-Length: 0 at least;
 * some servers answer 411 without it); GET, DELETE and OPTIONS only when
 * the job gives one; HEAD never. */
static bool sends_body(const char *m, bool has_body)
{
    if (!strcmp(m, "HEAD"))
        return false;
    return has_body || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

static void set_method(CURL *c, const run_http *h)
{
    const char *m = h->method;

    if (!strcmp(m, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        return;
    }
    if (!strcmp(m, "GET") && !h->body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (sends_body(m, h->body != NULL)) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->body ? h->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
    }
    if (strcmp(m, "POST"))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
}

static void start(run_entry *e)
{
    aster_runner *r = e->r;
    run_http *h = &e->u.http;
    CURL *c = r->npool ? r->pool[--r->npool] : curl_easy_init();
    CURLMcode mc;

    e->state = RUN_ACTIVE;
    e->res.started_at = aster_time_now();
    if (!c) {
        aster__run_error(e, "cannot create a libcurl handle");
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    /* Only http(s), also after a redirect (none are followed, but a
     * job's URL is user input and file:// or gopher:// must never run). */
    if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK) {
        curl_easy_cleanup(c);
        aster__run_error(e, "this libcurl cannot restrict protocols to http and https");
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a multi-threaded process */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(c, CURLOPT_PRIVATE, e);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    if (e->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
    set_method(c, h);
    mc = curl_multi_add_handle(r->multi, c);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(c);
        aster__run_error(e, "cannot start the transfer: %s", curl_multi_strerror(mc));
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    h->easy = c;
    r->http_active++;
}

/* Starts queued transfers while there is room.  Called from loop callbacks
 * and API calls only, never from inside a curl callback (curl forbids
 * adding handles there). */
static void pump(aster_runner *r)
{
    while (r->http_active < r->max_in_flight && !link_empty(&r->queue) && !r->closing) {
        run_entry *e = RUN_CONTAINER(r->queue.next, run_entry, q);
        link_del(&e->q);
        start(e);
    }
}

static void classify(run_entry *e, CURLcode code, long status)
{
    const run_http *h = &e->u.http;

    e->res.http_status = status > 0 ? (int32_t)status : -1;
    if (code == CURLE_OPERATION_TIMEDOUT) {
        aster__run_error(e, "timed out after %lld ms", (long long)e->timeout_ms);
        aster__run_finish(e, ASTER_EXEC_TIMED_OUT);
    } else if (code != CURLE_OK) {
        aster__run_error(e, "%s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(code));
        aster__run_finish(e, ASTER_EXEC_FAILED);
    } else if (status >= 200 && status <= 299) {
        aster__run_finish(e, ASTER_EXEC_SUCCEEDED);
    } else {
        aster__run_error(e, "HTTP %ld%s", status,
                         status >= 300 && status <= 399 ? " (redirects are not followed)" : "");
        aster__run_finish(e, ASTER_EXEC_FAILED);
    }
}

/* Collects finished transfers; then refills the free slots. */
static void check_done(aster_runner *r)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(r->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *c = msg->easy_handle;
        CURLcode code = msg->data.result; /* msg dies with remove_handle */
        run_entry *e = NULL;
        long status = 0;

        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&e);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(r->multi, c);
        release_easy(r, c);
        e->u.http.easy = NULL;
        r->http_active--;
        classify(e, code, status);
    }
    pump(r);
}

void aster__run_http_cancel(run_entry *e)
{
    aster_runner *r = e->r;
    run_http *h = &e->u.http;

    if (e->state == RUN_ACTIVE && h->easy) {
        curl_multi_remove_handle(r->multi, h->easy);
        release_easy(r, h->easy);
        h->easy = NULL;
        r->http_active--;
        aster__run_finish(e, ASTER_EXEC_CANCELLED);
        pump(r);
    } else if (e->state == RUN_QUEUED || e->state == RUN_ACTIVE) {
        aster__run_finish(e, ASTER_EXEC_CANCELLED);
    }
}

/* ---- submit: everything is built here, so a queued entry is ready ---- */

static struct curl_slist *add(struct curl_slist *l, const char *fmt, ...) ASTER_PRINTF(2, 3);

static struct curl_slist *add(struct curl_slist *l, const char *fmt, ...)
{
    char line[ASTER_HEADER_NAME_MAX + ASTER_HEADER_VALUE_MAX + 8];
    va_list ap;
    struct curl_slist *n;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n = curl_slist_append(l, line);
    if (!n) { /* only on out of memory: the mem.h policy */
        fprintf(stderr, "aster: out of memory (curl_slist_append)\n");
        abort();
    }
    return n;
}

/* Ours always win: the receiver's deduplication and tracing depend on
 * them.  Content-Length and Transfer-Encoding are curl's to compute. */
static bool reserved_header(const char *k)
{
    static const char *const names[] = {
        "Idempotency-Key", "X-Aster-Job-Id", "X-Aster-Execution-Id", "X-Aster-Scheduled-At",
        "X-Aster-Attempt", "Content-Length", "Transfer-Encoding",
    };
    for (size_t i = 0; i < ASTER_NELEM(names); i++)
        if (!strcasecmp(k, names[i]))
            return true;
    return false;
}

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

static struct curl_slist *build_headers(const aster_run_req *req, const json_t *hdrs,
                                        const run_http *h)
{
    struct curl_slist *l = NULL;
    bool has_ct = false, has_ua = false;
    char when[ASTER_TIME_BUFSZ];
    const char *k;
    const json_t *v;

    json_object_foreach((json_t *)hdrs, k, v)
    {
        const char *s = json_string_value(v);
        if (!s || reserved_header(k))
            continue;
        has_ct |= !strcasecmp(k, "Content-Type");
        has_ua |= !strcasecmp(k, "User-Agent");
        /* "Name:" would tell curl to drop the header; "Name;" sends it empty. */
        l = *s ? add(l, "%s: %s", k, s) : add(l, "%s;", k);
    }
    if (req->idempotency_key && *req->idempotency_key)
        l = add(l, "Idempotency-Key: %s", req->idempotency_key);
    l = add(l, "X-Aster-Job-Id: %s", req->job_id ? req->job_id : "");
    l = add(l, "X-Aster-Execution-Id: %s", req->exec_id ? req->exec_id : "");
    l = add(l, "X-Aster-Scheduled-At: %s",
            aster_time_format_ms(req->scheduled_at, when, sizeof(when)));
    l = add(l, "X-Aster-Attempt: %d", (int)req->attempt);
    if (!has_ua)
        l = add(l, "User-Agent: aster/%s", ASTER_VERSION);
    /* Sending a body, curl would claim application/x-www-form-urlencoded:
     * JSON when there is one, no Content-Type for an empty one. */
    if (!has_ct && sends_body(h->method, h->body != NULL))
        l = add(l, "%s", h->body ? "Content-Type: application/json" : "Content-Type:");
    l = add(l, "%s", "Expect:"); /* no 100-continue round trip */
    return l;
}

void aster__run_http_submit(run_entry *e, const aster_run_req *req, const json_t *target)
{
    aster_runner *r = e->r;
    run_http *h = &e->u.http;
    const json_t *url = json_object_get(target, "api"), *m = json_object_get(target, "method"),
                 *hdrs = json_object_get(target, "headers"),
                 *body = json_object_get(target, "body");
    const char *ms = json_is_string(m) ? json_string_value(m) : "POST";
    size_t i;

    for (i = 0; i < ASTER_NELEM(methods) && strcasecmp(methods[i], ms); i++)
        ;
    if (!json_is_string(url) || !*json_string_value(url)) {
        aster__run_error(e, "invalid target: no 'api' URL");
    } else if (i == ASTER_NELEM(methods)) {
        aster__run_error(e, "invalid target: method '%.16s' is not supported", ms);
    } else if (hdrs && !json_is_null(hdrs) && !json_is_object(hdrs)) {
        aster__run_error(e, "invalid target: 'headers' is not an object");
    } else if (body && !json_is_null(body) && !json_is_string(body)) {
        aster__run_error(e, "invalid target: 'body' is not a string");
    }
    if (e->error[0]) {
        aster__run_finish(e, ASTER_EXEC_FAILED);
        return;
    }
    h->url = aster_strdup(json_string_value(url));
    h->method = methods[i];
    if (json_is_string(body)) {
        h->body_len = json_string_length(body);
        h->body = aster_strndup(json_string_value(body), h->body_len);
    }
    h->headers = build_headers(req, json_is_object(hdrs) ? hdrs : NULL, h);

    e->state = RUN_QUEUED;
    link_push(&r->queue, &e->q);
    pump(r);
}

void aster__run_http_fini_entry(run_entry *e)
{
    run_http *h = &e->u.http;
    aster_free(h->url);
    aster_free(h->body);
    curl_slist_free_all(h->headers);
}

void aster__run_http_close(aster_runner *r)
{
    /* Every entry is cancelled (removed from the multi) by now.  Close our
     * polls while their fds are still open, then let curl close the
     * connections without calling back into handles that are closing. */
    while (!link_empty(&r->socks)) {
        run_sock *k = RUN_CONTAINER(r->socks.next, run_sock, link);
        uv_poll_stop(&k->poll);
        sock_close(k);
    }
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_cleanup(r->multi);
    r->multi = NULL;
    for (size_t i = 0; i < r->npool; i++)
        curl_easy_cleanup(r->pool[i]);
    r->npool = 0;
}
