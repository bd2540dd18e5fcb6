/* run.c — the runner's shared part: ids, results, delivery and teardown.
 * The kinds live in run_http.c and run_cmd.c; the life of an entry is drawn
 * in run_int.h. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/run_int.h"
#include "util/mem.h"

#define DEFAULT_MAX_IN_FLIGHT 1000
#define DEFAULT_OUTPUT_CAP    (64 * 1024)
#define DEFAULT_KILL_GRACE_MS 5000

/* ---- curl_global_init, once per process ----
 * libcurl wants it called before any other curl function and not
 * concurrently with other threads using curl; the runner is the first user
 * of transfers, so aster_runner_new does it, under pthread_once so that
 * several runners (tests, separate engines) stay safe.  Never undone:
 * curl_global_cleanup at exit buys nothing and races other threads. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the id table: cancel by id in O(1) even with thousands queued ---- */

static size_t bucket_of(const aster_runner *r, uint64_t id)
{
    return (size_t)(id * UINT64_C(0x9E3779B97F4A7C15) >> 20) & (r->nbuckets - 1);
}

static void table_grow(aster_runner *r)
{
    size_t old_n = r->nbuckets;
    run_entry **old = r->buckets;

    r->nbuckets = old_n ? old_n * 2 : 64;
    r->buckets = aster_calloc(r->nbuckets, sizeof(*r->buckets));
    for (size_t i = 0; i < old_n; i++) {
        run_entry *e = old[i], *next;
        for (; e; e = next) {
            size_t b = bucket_of(r, e->id);
            next = e->hnext;
            e->hnext = r->buckets[b];
            r->buckets[b] = e;
        }
    }
    aster_free(old);
}

static void table_add(aster_runner *r, run_entry *e)
{
    if (r->nhashed >= r->nbuckets)
        table_grow(r);
    size_t b = bucket_of(r, e->id);
    e->hnext = r->buckets[b];
    r->buckets[b] = e;
    r->nhashed++;
}

static run_entry *table_find(const aster_runner *r, uint64_t id)
{
    if (!r->nbuckets)
        return NULL;
    for (run_entry *e = r->buckets[bucket_of(r, id)]; e; e = e->hnext)
        if (e->id == id)
            return e;
    return NULL;
}

static void table_del(aster_runner *r, run_entry *e)
{
    run_entry **pp = &r->buckets[bucket_of(r, e->id)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == e) {
            *pp = e->hnext;
            e->hnext = NULL;
            r->nhashed--;
            return;
        }
}

/* ---- output: capped, then made a valid UTF-8 C string ---- */

void aster__run_output(run_entry *e, const char *p, size_t n)
{
    size_t cap = e->r->output_cap, room = cap - e->out_len, take = n < room ? n : room;

    if (e->state != RUN_ACTIVE) /* decided: res.output is final */
        return;
    e->res.output_dropped += n - take;
    if (!take)
        return;
    if (e->out_len + take + 1 > e->out_alloc) {
        /* Grow geometrically but never past the cap: 10,000 queued jobs
         * must not each hold 64 KiB for a two-byte answer. */
        size_t want = e->out_alloc ? e->out_alloc * 2 : 1024;
        if (want < e->out_len + take + 1)
            want = e->out_len + take + 1;
        if (want > cap + 1)
            want = cap + 1;
        e->out = aster_realloc(e->out, want);
        e->out_alloc = want;
    }
    memcpy(e->out + e->out_len, p, take);
    e->out_len += take;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return c ? 1 : 0; /* NUL would end the C string early */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* The output is stored as text and served as JSON (jansson refuses invalid
 * UTF-8), while commands and servers may emit any bytes.  Each byte that is
 * NUL or not part of valid UTF-8 becomes '?': the length, and so the cap,
 * is unchanged. */
static void make_text(char *s, size_t n)
{
    unsigned char *u = (unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k) {
            i += k;
        } else {
            u[i] = '?';
            i++;
        }
    }
}

/* ---- results and delivery ---- */

void aster__run_error(run_entry *e, const char *fmt, ...)
{
    va_list ap;
    if (e->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof(e->error), fmt, ap);
    va_end(ap);
    /* One line: curl's and strerror's texts have none, but be sure. */
    for (char *p = e->error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void on_defer(uv_idle_t *h);

/* Delivery waits for the loop: cb is never called from inside submit or
 * cancel, nor from inside a curl or libuv callback that is still using
 * its state.  During a batch, deliver() itself picks up the rest. */
static void kick(aster_runner *r)
{
    if (!r->delivering && !uv_is_closing((uv_handle_t *)&r->defer))
        uv_idle_start(&r->defer, on_defer);
}

void aster__run_finish(run_entry *e, aster_exec_status status)
{
    aster_runner *r = e->r;

    if (e->state != RUN_QUEUED && e->state != RUN_ACTIVE)
        return;
    if (e->state == RUN_QUEUED)
        link_del(&e->q);
    table_del(r, e);
    e->state = RUN_DONE;
    e->res.status = status;
    e->res.finished_at = aster_time_now();
    if (!e->res.started_at)
        e->res.started_at = e->res.finished_at; /* never started: zero duration */
    if (status == ASTER_EXEC_SUCCEEDED) {
        e->res.error = NULL;
    } else {
        if (!e->error[0])
            aster__run_error(e, "%s",
                             status == ASTER_EXEC_CANCELLED ? "cancelled"
                                                            : aster_exec_status_name(status));
        e->res.error = e->error;
    }
    if (e->out) {
        e->out[e->out_len] = '\0';
        make_text(e->out, e->out_len);
        e->res.output = e->out;
    } else {
        e->res.output = "";
    }
    link_push(&r->done, &e->q);
    kick(r);
}

static void runner_final(aster_runner *r)
{
    int *done = r->done_flag;
    aster_free(r->buckets);
    aster_free(r->pool);
    aster_free(r->rdbuf);
    aster_free(r);
    if (done)
        *done = 1;
}

void aster__run_unref(aster_runner *r)
{
    if (--r->refs == 0 && r->closing)
        runner_final(r);
}

static void entry_maybe_free(run_entry *e)
{
    aster_runner *r = e->r;

    if (e->state != RUN_REPORTED || e->handles > 0)
        return;
    link_del(&e->all);
    if (e->kind == ASTER_TARGET_HTTP)
        aster__run_http_fini_entry(e);
    aster_free(e->out);
    aster_free(e);
    aster__run_unref(r);
}

void aster__run_handle_closed(run_entry *e)
{
    e->handles--;
    entry_maybe_free(e);
}

/* Calls back the entries on r->done as of now.  Entries finished by those
 * callbacks (a submit of a bad target, a cancel) wait for the next batch,
 * so a callback that keeps resubmitting cannot starve the loop.  The batch
 * stays on r->done, counted rather than moved, so that aster_runner_free
 * called from a callback still delivers all of it before it returns. */
static void deliver(aster_runner *r)
{
    size_t n = 0;
    bool outer = !r->delivering;

    for (const run_link *l = r->done.next; l != &r->done; l = l->next)
        n++;
    r->delivering = true;
    while (n-- > 0 && !link_empty(&r->done)) {
        run_entry *e = RUN_CONTAINER(r->done.next, run_entry, q);
        link_del(&e->q);
        e->state = RUN_REPORTED;
        r->pending--;
        e->cb(e->arg, &e->res);
        entry_maybe_free(e);
    }
    if (outer)
        r->delivering = false;
}

static void on_defer(uv_idle_t *h)
{
    aster_runner *r = h->data;
    deliver(r);
    if (link_empty(&r->done))
        uv_idle_stop(&r->defer);
}

/* ---- public ---- */

int aster_runner_new(uv_loop_t *loop, const aster_runner_opts *opts, aster_runner **out,
                     aster_err *err)
{
    aster_runner *r;

    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return aster_err_set(err, ASTER_EIO, NULL, "cannot initialise libcurl: %s",
                             curl_easy_strerror(curl_init_rc));
    r = aster_calloc(1, sizeof(*r));
    r->loop = loop;
    r->max_in_flight = opts && opts->max_in_flight ? opts->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
    r->output_cap = opts && opts->output_cap ? opts->output_cap : DEFAULT_OUTPUT_CAP;
    r->kill_grace_ms =
        opts && opts->kill_grace_ms > 0 ? opts->kill_grace_ms : DEFAULT_KILL_GRACE_MS;
    r->next_id = 1;
    link_init(&r->all);
    link_init(&r->done);
    link_init(&r->queue);
    link_init(&r->socks);
    if (aster__run_http_init(r, err)) {
        aster_free(r);
        return err ? err->code : ASTER_EIO;
    }
    /* After the only failure point: from here every handle is closed by
     * aster_runner_free. */
    uv_timer_init(loop, &r->curl_timer);
    r->curl_timer.data = r;
    uv_idle_init(loop, &r->defer);
    r->defer.data = r;
    r->refs = 2;
    r->rdbuf = aster_malloc(RUN_READ_BUF);
    *out = r;
    return 0;
}

uint64_t aster_runner_submit(aster_runner *r, const aster_run_req *req, aster_run_cb cb, void *arg)
{
    run_entry *e = aster_calloc(1, sizeof(*e));
    json_t *target = NULL;
    json_error_t jerr;

    e->r = r;
    e->id = r->next_id++;
    e->kind = req->kind;
    e->cb = cb;
    e->arg = arg;
    e->timeout_ms = req->timeout_ms;
    e->state = RUN_ACTIVE;
    e->res.http_status = -1;
    e->res.exit_code = -1;
    link_init(&e->q);
    link_push(&r->all, &e->all);
    table_add(r, e);
    r->refs++;
    r->pending++;

    if (r->closing) {
        aster__run_error(e, "cancelled: the runner is shutting down");
        aster__run_finish(e, ASTER_EXEC_CANCELLED);
    } else if (!req->target || !(target = json_loads(req->target, 0, &jerr)) ||
               !json_is_object(target)) {
        aster__run_error(e, "invalid target: %s",
                         !req->target ? "none"
                         : target     ? "not an object"
                                      : jerr.text);
        aster__run_finish(e, ASTER_EXEC_FAILED);
    } else if (req->kind == ASTER_TARGET_HTTP) {
        aster__run_http_submit(e, req, target);
    } else if (req->kind == ASTER_TARGET_COMMAND) {
        aster__run_cmd_submit(e, req, target);
    } else {
        aster__run_error(e, "invalid target: unknown kind %d", (int)req->kind);
        aster__run_finish(e, ASTER_EXEC_FAILED);
    }
    json_decref(target);
    return e->id;
}

void aster_runner_cancel(aster_runner *r, uint64_t id)
{
    run_entry *e = table_find(r, id);

    if (!e)
        return;
    if (e->kind == ASTER_TARGET_HTTP)
        aster__run_http_cancel(e);
    else
        aster__run_cmd_cancel(e);
}

size_t aster_runner_in_flight(const aster_runner *r)
{
    return r->pending;
}

static void on_runner_handle_closed(uv_handle_t *h)
{
    aster__run_unref(h->data);
}

void aster_runner_free(aster_runner *r, int *done)
{
    if (!r)
        return;
    r->closing = true;
    r->done_flag = done;
    /* Decide every entry still open; killing a command's group outright
     * (SIGKILL, no grace): graceful shutdown is the engine's job, before it
     * calls this. */
    for (run_link *l = r->all.next; l != &r->all; l = l->next) {
        run_entry *e = RUN_CONTAINER(l, run_entry, all);
        if (e->kind == ASTER_TARGET_HTTP)
            aster__run_http_cancel(e);
        else
            aster__run_cmd_abort(e);
    }
    /* Callbacks run now, before this returns, so the caller can rely on
     * every cb having been called once free returns.  A submit from inside
     * one is answered CANCELLED in the next pass. */
    while (!link_empty(&r->done))
        deliver(r);
    aster__run_http_close(r);
    uv_close((uv_handle_t *)&r->defer, on_runner_handle_closed);
    uv_close((uv_handle_t *)&r->curl_timer, on_runner_handle_closed);
    /* Entries that are reported and hold no handles are already freed;
     * the rest go with their close callbacks, the runner with the last. */
}
