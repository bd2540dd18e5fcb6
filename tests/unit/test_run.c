/* Unit tests for src/engine/run*.c: the executors, on a real libuv loop,
 * against a real HTTP sink (libmicrohttpd inside this process, on a
 * loopback port the kernel picks) and real commands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/run.h"
#include "util/time.h"

/* ---- the sink: behaviour by path ----
 *   /ok        200 "ok body"          /fail   503 "unavailable"
 *   /slow      200 after 3 s          /hold   200 after 100 ms
 *   /big       200, 200 KiB of 'b'    /redirect 302 to /ok
 *   /close     the connection is closed without an answer
 *   /echo      200, "METHOD\n" + "Name: value\n" per header + "\n" + body
 * Thread per connection, so a sleeping handler blocks no one else.  `cur`
 * counts /hold requests between their first byte and their response: its
 * peak is what the client had in flight (other paths are not counted: a
 * /slow whose client gave up still sleeps here). */
#define BIG_LEN (200 * 1024)

static struct {
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_int cur, peak, stopping;
    atomic_int conns; /* TCP connections accepted */
} sink;

typedef struct sbuf {
    char *p;
    size_t len;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    b->p = realloc(b->p, b->len + n + 1);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

typedef struct sink_req {
    sbuf body;
    int counted;
} sink_req;

static void uncount(sink_req *q)
{
    if (q->counted) {
        q->counted = 0;
        atomic_fetch_sub(&sink.cur, 1);
    }
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    sbuf *b = cls;
    (void)kind;
    sb_add(b, k, strlen(k));
    sb_add(b, ": ", 2);
    sb_add(b, v, strlen(v));
    sb_add(b, "\n", 1);
    return MHD_YES;
}

static void nap(int ms) /* returns early when the sink stops */
{
    for (int i = 0; i < ms / 10 && !atomic_load(&sink.stopping); i++)
        usleep(10 * 1000);
}

static enum MHD_Result respond(struct MHD_Connection *c, sink_req *q, unsigned code,
                               const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;
    if (code == 302)
        MHD_add_response_header(r, "Location", "/ok");
    /* Uncounted before the response can reach the client, so its next
     * request never overlaps this one in the count. */
    uncount(q);
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **ctx)
{
    sink_req *q = *ctx;
    (void)cls;
    (void)version;
    if (!q) {
        int now;
        q = calloc(1, sizeof(*q));
        *ctx = q;
        if (strcmp(url, "/hold"))
            return MHD_YES;
        q->counted = 1;
        now = atomic_fetch_add(&sink.cur, 1) + 1;
        for (int p = atomic_load(&sink.peak);
             now > p && !atomic_compare_exchange_weak(&sink.peak, &p, now);)
            ;
        return MHD_YES;
    }
    if (*upload_size) {
        sb_add(&q->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(url, "/ok"))
        return respond(c, q, 200, "ok body", 7);
    if (!strcmp(url, "/fail"))
        return respond(c, q, 503, "unavailable", 11);
    if (!strcmp(url, "/close")) {
        uncount(q);
        return MHD_NO; /* MHD drops the connection without an answer */
    }
    if (!strcmp(url, "/redirect"))
        return respond(c, q, 302, "", 0);
    if (!strcmp(url, "/slow")) {
        nap(3000);
        return respond(c, q, 200, "slow", 4);
    }
    if (!strcmp(url, "/hold")) {
        nap(100);
        return respond(c, q, 200, "held", 4);
    }
    if (!strcmp(url, "/big")) {
        char *big = malloc(BIG_LEN);
        memset(big, 'b', BIG_LEN);
        enum MHD_Result ret = respond(c, q, 200, big, BIG_LEN);
        free(big);
        return ret;
    }
    if (!strcmp(url, "/echo")) {
        sbuf out = {0};
        enum MHD_Result ret;
        sb_add(&out, method, strlen(method));
        sb_add(&out, "\n", 1);
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_header, &out);
        sb_add(&out, "\n", 1);
        if (q->body.len)
            sb_add(&out, q->body.p, q->body.len);
        ret = respond(c, q, 200, out.p, out.len);
        free(out.p);
        return ret;
    }
    return respond(c, q, 404, "no such path", 12);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
    sink_req *q = *ctx;
    (void)cls;
    (void)c;
    (void)toe;
    if (!q)
        return;
    uncount(q);
    free(q->body.p);
    free(q);
    *ctx = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    (void)ctx;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&sink.conns, 1);
}

static int sink_start(void **state)
{
    struct sockaddr_in a;
    const union MHD_DaemonInfo *info;
    (void)state;

    signal(SIGPIPE, SIG_IGN);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sink.d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, NULL, MHD_OPTION_END);
    if (!sink.d)
        return -1;
    info = MHD_get_daemon_info(sink.d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port)
        return -1;
    sink.port = info->port;
    return 0;
}

static int sink_stop(void **state)
{
    (void)state;
    atomic_store(&sink.stopping, 1);
    MHD_stop_daemon(sink.d);
    return 0;
}

/* ---- the loop side ---- */

typedef struct outcome {
    int called;
    aster_exec_status status;
    int32_t http_status, exit_code;
    char *error;  /* NULL when res->error was */
    char *output; /* never NULL once called */
    size_t dropped;
    aster_time_us started_at, finished_at;
} outcome;

typedef struct env {
    uv_loop_t loop;
    aster_runner *r;
    int calls;
} env;

static env *cur_env;

static void on_result(void *arg, const aster_run_result *res)
{
    outcome *o = arg;
    o->called++;
    o->status = res->status;
    o->http_status = res->http_status;
    o->exit_code = res->exit_code;
    free(o->error);
    free(o->output);
    o->error = res->error ? strdup(res->error) : NULL;
    assert_non_null(res->output);
    o->output = strdup(res->output);
    o->dropped = res->output_dropped;
    o->started_at = res->started_at;
    o->finished_at = res->finished_at;
    cur_env->calls++;
}

static void outcome_fini(outcome *o)
{
    free(o->error);
    free(o->output);
    memset(o, 0, sizeof(*o));
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *count reaches want, or ms pass (false). */
static int run_until(env *e, const int *count, int want, int64_t ms)
{
    uv_timer_t t;
    int expired = 0;

    uv_timer_init(&e->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (*count < want && !expired)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT); /* t lives on this stack: finish closing it */
    return *count >= want;
}

static void spin(env *e, int64_t ms)
{
    static const int never = 0;
    run_until(e, &never, 1, ms);
}

static void env_open(env *e, size_t max_in_flight, size_t output_cap)
{
    aster_runner_opts o = {max_in_flight, output_cap, 500};
    aster_err err = {0};

    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(aster_runner_new(&e->loop, &o, &e->r, &err), 0);
    cur_env = e;
}

static void env_close(env *e)
{
    int done = 0;
    aster_runner_free(e->r, &done);
    assert_true(run_until(e, &done, 1, 5000));
    assert_int_equal(uv_loop_close(&e->loop), 0); /* every handle closed */
}

static aster_run_req http_req(const char *target, int64_t timeout_ms)
{
    aster_run_req q = {
        .exec_id = "exec-1",
        .job_id = "job-1",
        .kind = ASTER_TARGET_HTTP,
        .target = target,
        .scheduled_at = INT64_C(1772951400) * ASTER_US_PER_SEC,
        .attempt = 2,
        .timeout_ms = timeout_ms,
        .idempotency_key = "idem-1",
    };
    return q;
}

static aster_run_req cmd_req(const char *target, int64_t timeout_ms)
{
    aster_run_req q = http_req(target, timeout_ms);
    q.kind = ASTER_TARGET_COMMAND;
    return q;
}

/* Submits and waits for the one outcome. */
static void run_one(env *e, const aster_run_req *q, outcome *o)
{
    int before = e->calls;
    uint64_t id = aster_runner_submit(e->r, q, on_result, o);
    assert_true(id > 0);
    assert_int_equal(o->called, 0); /* never from inside submit */
    assert_true(run_until(e, &e->calls, before + 1, 10000));
    assert_int_equal(o->called, 1);
    assert_true(o->started_at > 0 && o->started_at <= o->finished_at);
}

static char *url(const char *path)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%u%s", (unsigned)sink.port, path);
    return buf;
}

/* ---- HTTP ---- */

static void test_http_ok(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[512];
    (void)state;

    env_open(&e, 8, 0);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"POST\"}", url("/ok"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_int_equal(o.http_status, 200);
    assert_int_equal(o.exit_code, -1);
    assert_null(o.error);
    assert_string_equal(o.output, "ok body");
    assert_int_equal(o.dropped, 0);
    assert_int_equal(aster_runner_in_flight(e.r), 0);
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_503(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[512];
    (void)state;

    env_open(&e, 8, 0);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/fail"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_int_equal(o.http_status, 503);
    assert_string_equal(o.error, "HTTP 503");
    assert_string_equal(o.output, "unavailable");
    outcome_fini(&o);

    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/redirect"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED); /* redirects are not followed */
    assert_int_equal(o.http_status, 302);
    assert_non_null(strstr(o.error, "HTTP 302"));
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_timeout(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[512];
    aster_mono_us t0;
    (void)state;

    env_open(&e, 8, 0);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/slow"));
    q = http_req(t, 300);
    t0 = aster_mono_now();
    run_one(&e, &q, &o);
    assert_true(aster_mono_now() - t0 < 2 * ASTER_US_PER_SEC);
    assert_int_equal(o.status, ASTER_EXEC_TIMED_OUT);
    assert_string_equal(o.error, "timed out after 300 ms");
    assert_int_equal(o.http_status, -1);
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_refused(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[512];
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;

    /* A port that was free a moment ago and has no listener. */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);

    env_open(&e, 8, 0);
    snprintf(t, sizeof(t), "{\"api\":\"http://127.0.0.1:%u/ok\"}", (unsigned)ntohs(a.sin_port));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_int_equal(o.http_status, -1);
    assert_non_null(o.error);
    assert_non_null(strstr(o.error, "onnect")); /* curl's own text */
    outcome_fini(&o);

    /* Closed without an answer: curl's text again. */
    snprintf(t, sizeof(t), "{\"api\":\"%s\"}", url("/close"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_int_equal(o.http_status, -1);
    assert_non_null(o.error);
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_cap(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[512];
    (void)state;

    env_open(&e, 8, 4096);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/big"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_int_equal(strlen(o.output), 4096);
    assert_int_equal(o.dropped, BIG_LEN - 4096);
    assert_int_equal(strspn(o.output, "b"), 4096);
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_echo(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    char t[1024];
    (void)state;

    env_open(&e, 8, 0);
    /* The job's method, headers and body; its Idempotency-Key loses to ours. */
    snprintf(t, sizeof(t),
             "{\"api\":\"%s\",\"method\":\"PUT\",\"headers\":{\"X-Custom\":\"yes\","
             "\"Content-Type\":\"text/plain\",\"Idempotency-Key\":\"theirs\"},"
             "\"body\":\"hello body\"}",
             url("/echo"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_true(!strncmp(o.output, "PUT\n", 4));
    assert_non_null(strcasestr(o.output, "\nX-Custom: yes\n"));
    assert_non_null(strcasestr(o.output, "\nContent-Type: text/plain\n"));
    assert_null(strcasestr(o.output, "application/json"));
    assert_non_null(strcasestr(o.output, "\nIdempotency-Key: idem-1\n"));
    assert_null(strcasestr(o.output, "theirs"));
    assert_non_null(strcasestr(o.output, "\nX-Aster-Job-Id: job-1\n"));
    assert_non_null(strcasestr(o.output, "\nX-Aster-Execution-Id: exec-1\n"));
    assert_non_null(strcasestr(o.output, "\nX-Aster-Scheduled-At: 2026-03-08T06:30:00.000Z\n"));
    assert_non_null(strcasestr(o.output, "\nX-Aster-Attempt: 2\n"));
    assert_non_null(strcasestr(o.output, "\nUser-Agent: aster/"));
    assert_non_null(strstr(o.output, "\n\nhello body"));
    outcome_fini(&o);

    /* Default method POST; a body without Content-Type is JSON. */
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"body\":\"{\\\"a\\\":1}\"}", url("/echo"));
    q = http_req(t, 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_true(!strncmp(o.output, "POST\n", 5));
    assert_non_null(strcasestr(o.output, "\nContent-Type: application/json\n"));
    assert_non_null(strstr(o.output, "\n\n{\"a\":1}"));
    outcome_fini(&o);
    env_close(&e);
}

static void test_http_cancel(void **state)
{
    env e;
    outcome a = {0}, b = {0};
    aster_run_req q;
    char t[512];
    uint64_t ida, idb;
    aster_mono_us t0;
    (void)state;

    env_open(&e, 1, 0); /* one slot: b waits behind a */
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/slow"));
    q = http_req(t, 10000);
    ida = aster_runner_submit(e.r, &q, on_result, &a);
    idb = aster_runner_submit(e.r, &q, on_result, &b);
    assert_int_equal(aster_runner_in_flight(e.r), 2);
    spin(&e, 100);
    assert_int_equal(a.called + b.called, 0);

    aster_runner_cancel(e.r, idb); /* queued */
    assert_int_equal(b.called, 0); /* not from inside cancel either */
    assert_true(run_until(&e, &e.calls, 1, 2000));
    assert_int_equal(b.status, ASTER_EXEC_CANCELLED);
    assert_int_equal(a.called, 0);

    t0 = aster_mono_now();
    aster_runner_cancel(e.r, ida); /* running */
    assert_true(run_until(&e, &e.calls, 2, 2000));
    assert_true(aster_mono_now() - t0 < ASTER_US_PER_SEC);
    assert_int_equal(a.status, ASTER_EXEC_CANCELLED);
    assert_string_equal(a.error, "cancelled");

    aster_runner_cancel(e.r, ida);     /* finished: no-op */
    aster_runner_cancel(e.r, 9999999); /* unknown: no-op */
    spin(&e, 20);
    assert_int_equal(a.called, 1);
    assert_int_equal(b.called, 1);
    assert_int_equal(aster_runner_in_flight(e.r), 0);
    outcome_fini(&a);
    outcome_fini(&b);
    env_close(&e);
}

static void test_http_max_in_flight(void **state)
{
    env e;
    outcome o[10];
    aster_run_req q;
    char t[512];
    (void)state;

    memset(o, 0, sizeof(o));
    env_open(&e, 2, 0);
    atomic_store(&sink.peak, 0);
    atomic_store(&sink.conns, 0);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/hold"));
    q = http_req(t, 5000);
    for (int i = 0; i < 10; i++)
        assert_true(aster_runner_submit(e.r, &q, on_result, &o[i]) > 0);
    assert_int_equal(aster_runner_in_flight(e.r), 10);
    assert_true(run_until(&e, &e.calls, 10, 10000));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(o[i].called, 1);
        assert_int_equal(o[i].status, ASTER_EXEC_SUCCEEDED);
        outcome_fini(&o[i]);
    }
    assert_int_equal(atomic_load(&sink.peak), 2);
    /* Ten requests over the two connections of the two slots: reused. */
    assert_int_equal(atomic_load(&sink.conns), 2);
    env_close(&e);
}

static void test_bad_target(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 0);
    q = http_req("{not json", 1000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_true(!strncmp(o.error, "invalid target", 14));
    outcome_fini(&o);

    q = cmd_req("{\"args\":[]}", 1000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_string_equal(o.error, "invalid target: no 'command'");
    outcome_fini(&o);
    env_close(&e);
}

/* ---- commands ---- */

/* Processes of group pgid still alive (zombies are dead: whether our
 * container's init reaps orphans is not ours to test). */
static int live_in_group(int pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    while (d && (de = readdir(d))) {
        char path[300], buf[512], st = 0;
        int ppid = 0, pg = 0;
        FILE *f;
        char *rp;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
            sscanf(rp + 1, " %c %d %d", &st, &ppid, &pg) == 3 && pg == pgid && st != 'Z' &&
            st != 'X')
            n++;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

/* A killed process closes its files a moment before the kernel is done
 * with it: give the group up to a second to be gone. */
static int group_gone(int pgid)
{
    for (int i = 0; i < 100 && live_in_group(pgid); i++)
        usleep(10 * 1000);
    return live_in_group(pgid) == 0;
}

static void test_cmd_echo(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 0);
    q = cmd_req("{\"command\":\"/bin/echo\",\"args\":[\"hi\"],\"env\":{}}", 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_string_equal(o.output, "hi\n");
    assert_int_equal(o.exit_code, 0);
    assert_int_equal(o.http_status, -1);
    assert_null(o.error);
    outcome_fini(&o);

    /* stdout and stderr in one capture, in order. */
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"echo out; echo err >&2; echo out2\"]}",
                5000);
    run_one(&e, &q, &o);
    assert_string_equal(o.output, "out\nerr\nout2\n");
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_exit_status(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 0);
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"exit 3\"]}", 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_int_equal(o.exit_code, 3);
    assert_string_equal(o.error, "exit status 3");
    outcome_fini(&o);

    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"kill -9 $$\"]}", 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_int_equal(o.exit_code, -1);
    assert_string_equal(o.error, "killed by signal 9");
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_env_cwd(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 0);
    /* Exactly the job's env plus PATH and ours: HOME is not passed on. */
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"echo \\\"$X|$HOME|$PATH|$ASTER_JOB_ID|"
                "$ASTER_EXECUTION_ID|$ASTER_ATTEMPT|$ASTER_SCHEDULED_AT\\\"\"],"
                "\"env\":{\"X\":\"forty two\",\"ASTER_JOB_ID\":\"spoofed\"}}",
                5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_string_equal(o.output, "forty two||/usr/local/bin:/usr/bin:/bin|job-1|exec-1|2|"
                                  "2026-03-08T06:30:00.000Z\n");
    outcome_fini(&o);

    /* A job's PATH replaces the default, and a bare name is searched in it. */
    q = cmd_req("{\"command\":\"sh\",\"args\":[\"-c\",\"echo $PATH\"],\"env\":{\"PATH\":\"/bin\"}}",
                5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_string_equal(o.output, "/bin\n");
    outcome_fini(&o);

    q = cmd_req("{\"command\":\"/bin/pwd\",\"cwd\":\"/\"}", 5000);
    run_one(&e, &q, &o);
    assert_string_equal(o.output, "/\n");
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_cap(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 4096);
    q = cmd_req("{\"command\":\"/usr/bin/head\",\"args\":[\"-c\",\"200000\",\"/dev/zero\"]}", 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    assert_int_equal(o.dropped, 200000 - 4096);
    /* NUL bytes are not text: each became '?', the length kept. */
    assert_int_equal(strlen(o.output), 4096);
    assert_int_equal(strspn(o.output, "?"), 4096);
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_timeout(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    aster_mono_us t0;
    int pgid;
    (void)state;

    env_open(&e, 8, 0); /* kill grace 500 ms */
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\","
                "\"echo $$; trap '' TERM; sleep 30; echo survived\"]}",
                300);
    t0 = aster_mono_now();
    run_one(&e, &q, &o);
    assert_true(aster_mono_now() - t0 < 2 * ASTER_US_PER_SEC);
    assert_int_equal(o.status, ASTER_EXEC_TIMED_OUT);
    assert_string_equal(o.error, "timed out after 300 ms");
    assert_int_equal(o.exit_code, -1); /* SIGKILL */
    assert_null(strstr(o.output, "survived"));
    pgid = atoi(o.output);
    assert_true(pgid > 1);
    assert_true(group_gone(pgid)); /* sleep is gone too */
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_cancel(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    uint64_t id;
    aster_mono_us t0;
    (void)state;

    env_open(&e, 8, 0);
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"echo $$; sleep 30\"]}", 10000);
    id = aster_runner_submit(e.r, &q, on_result, &o);
    spin(&e, 150);
    assert_int_equal(o.called, 0);
    t0 = aster_mono_now();
    aster_runner_cancel(e.r, id);
    assert_true(run_until(&e, &e.calls, 1, 3000));
    assert_true(aster_mono_now() - t0 < ASTER_US_PER_SEC); /* SIGTERM sufficed */
    assert_int_equal(o.status, ASTER_EXEC_CANCELLED);
    assert_string_equal(o.error, "cancelled");
    assert_true(group_gone(atoi(o.output)));
    outcome_fini(&o);
    env_close(&e);
}

static void test_cmd_missing(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    (void)state;

    env_open(&e, 8, 0);
    q = cmd_req("{\"command\":\"/no/such\"}", 5000);
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_string_equal(o.error, "cannot run /no/such: no such file or directory");
    assert_int_equal(o.exit_code, -1);
    outcome_fini(&o);

    q = cmd_req("{\"command\":\"/dev/null\"}", 5000); /* not executable */
    run_one(&e, &q, &o);
    assert_int_equal(o.status, ASTER_EXEC_FAILED);
    assert_string_equal(o.error, "cannot run /dev/null: permission denied");
    outcome_fini(&o);
    env_close(&e);
}

/* A background grandchild keeps the pipe open: the result still comes,
 * about a second after the exit, not when the grandchild ends. */
static void test_cmd_pipe_held(void **state)
{
    env e;
    outcome o = {0};
    aster_run_req q;
    aster_mono_us t0;
    (void)state;

    env_open(&e, 8, 0);
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"echo $$; sleep 10 & exit 0\"]}",
                20000);
    t0 = aster_mono_now();
    run_one(&e, &q, &o);
    assert_true(aster_mono_now() - t0 < 3 * ASTER_US_PER_SEC);
    assert_int_equal(o.status, ASTER_EXEC_SUCCEEDED);
    kill(-atoi(o.output), SIGKILL); /* the test's own cleanup */
    outcome_fini(&o);
    env_close(&e);
}

/* Freeing with work in flight: every cb fires (CANCELLED) before free
 * returns, the command's group is killed, and every handle closes. */
static void test_free_in_flight(void **state)
{
    env e;
    outcome h = {0}, c = {0};
    aster_run_req q;
    char t[512];
    int done = 0, pgid;
    (void)state;

    env_open(&e, 8, 0);
    snprintf(t, sizeof(t), "{\"api\":\"%s\",\"method\":\"GET\"}", url("/slow"));
    q = http_req(t, 10000);
    aster_runner_submit(e.r, &q, on_result, &h);
    q = cmd_req("{\"command\":\"/bin/sh\",\"args\":[\"-c\",\"echo $$; trap '' TERM; sleep 30\"]}",
                10000);
    aster_runner_submit(e.r, &q, on_result, &c);
    spin(&e, 150);
    aster_runner_free(e.r, &done);
    assert_int_equal(h.called, 1);
    assert_int_equal(c.called, 1);
    assert_int_equal(h.status, ASTER_EXEC_CANCELLED);
    assert_int_equal(c.status, ASTER_EXEC_CANCELLED);
    pgid = atoi(c.output);
    assert_true(run_until(&e, &done, 1, 5000));
    assert_int_equal(uv_loop_close(&e.loop), 0);
    assert_true(pgid > 1);
    assert_true(group_gone(pgid));
    outcome_fini(&h);
    outcome_fini(&c);
}

/* Callbacks may call back in.  re[0]'s callback frees the runner: re[1],
 * in the same batch, is still delivered before free returns, and so is
 * re[2], which re[1]'s callback submits to the closing runner (CANCELLED).
 * The submit does not call back from inside itself. */
static int free_done;
static outcome re[3];

static void on_result_reenter(void *arg, const aster_run_result *res)
{
    outcome *o = arg;
    on_result(arg, res);
    if (o == &re[0]) {
        aster_runner_free(cur_env->r, &free_done);
        assert_int_equal(re[1].called, 1);
        assert_int_equal(re[2].called, 1);
        assert_int_equal(free_done, 0); /* handles still closing */
    } else if (o == &re[1]) {
        aster_run_req q = http_req("{\"api\":\"http://127.0.0.1:1/\"}", 1000);
        aster_runner_submit(cur_env->r, &q, on_result, &re[2]);
        assert_int_equal(re[2].called, 0);
    }
}

static void test_reentrant(void **state)
{
    env e;
    aster_run_req q;
    (void)state;

    memset(re, 0, sizeof(re));
    free_done = 0;
    env_open(&e, 8, 0);
    q = http_req("{not json", 1000);
    aster_runner_submit(e.r, &q, on_result_reenter, &re[0]);
    aster_runner_submit(e.r, &q, on_result_reenter, &re[1]);
    assert_true(run_until(&e, &free_done, 1, 5000));
    assert_int_equal(uv_loop_close(&e.loop), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(re[i].called, 1);
        assert_int_equal(re[i].status, i == 2 ? ASTER_EXEC_CANCELLED : ASTER_EXEC_FAILED);
        if (i == 2)
            assert_string_equal(re[i].error, "cancelled: the runner is shutting down");
        outcome_fini(&re[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_ok),         cmocka_unit_test(test_http_503),
        cmocka_unit_test(test_http_timeout),    cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_cap),        cmocka_unit_test(test_http_echo),
        cmocka_unit_test(test_http_cancel),     cmocka_unit_test(test_http_max_in_flight),
        cmocka_unit_test(test_bad_target),      cmocka_unit_test(test_cmd_echo),
        cmocka_unit_test(test_cmd_exit_status), cmocka_unit_test(test_cmd_env_cwd),
        cmocka_unit_test(test_cmd_cap),         cmocka_unit_test(test_cmd_timeout),
        cmocka_unit_test(test_cmd_cancel),      cmocka_unit_test(test_cmd_missing),
        cmocka_unit_test(test_cmd_pipe_held),   cmocka_unit_test(test_free_in_flight),
        cmocka_unit_test(test_reentrant),
    };
    return cmocka_run_group_tests(tests, sink_start, sink_stop);
}
