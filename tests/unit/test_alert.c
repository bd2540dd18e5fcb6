/* test_alert.c — the alerter (src/engine/alert.c) against a real SQLite
 * store in a temporary directory and a real webhook sink (libmicrohttpd
 * inside this process, on a loopback port the kernel picks).
 *
 * The alerter runs on its own thread; the tests act as the engine (they
 * write executions to the store and call on_final / on_missed) and poll the
 * store and the sink with a deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/job.h"
#include "engine/alert.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"
#include "util/uuid.h"

static char tmpdir[512];

/* ---- the sink: behaviour by path ----
 *   /ok       200                      /global  200 (the global webhook)
 *   /flaky    500 while sink.fail > 0 (counting down), then 200
 *   /hang     200 after 3 s (returns early when the sink stops)
 * Every request is recorded: path, body, signature and alert id headers. */
#define REC_MAX 256

typedef struct rec {
    char path[32];
    char *body;
    char sig[128];
    char ctype[64];
    char alert_id[64];
} rec;

static struct {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    rec recs[REC_MAX];
    int n;
    atomic_int fail, stopping;
} sink = {.mu = PTHREAD_MUTEX_INITIALIZER};

typedef struct sink_req {
    char *body;
    size_t len;
} sink_req;

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t n)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(out, n, "%s", v ? v : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **ctx)
{
    sink_req *q = *ctx;
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned code = 200;
    (void)cls;
    (void)method;
    (void)version;

    if (!q) {
        *ctx = calloc(1, sizeof(sink_req));
        return MHD_YES;
    }
    if (*upload_size) {
        q->body = realloc(q->body, q->len + *upload_size + 1);
        memcpy(q->body + q->len, upload, *upload_size);
        q->len += *upload_size;
        q->body[q->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&sink.mu);
    if (sink.n < REC_MAX) {
        rec *x = &sink.recs[sink.n++];
        snprintf(x->path, sizeof(x->path), "%s", url);
        x->body = strdup(q->body ? q->body : "");
        copy_header(c, "X-Aster-Signature", x->sig, sizeof(x->sig));
        copy_header(c, "Content-Type", x->ctype, sizeof(x->ctype));
        copy_header(c, "X-Aster-Alert-Id", x->alert_id, sizeof(x->alert_id));
    }
    pthread_mutex_unlock(&sink.mu);
    if (!strcmp(url, "/flaky") && atomic_fetch_sub(&sink.fail, 1) > 0)
        code = 500;
    if (!strcmp(url, "/hang"))
        for (int i = 0; i < 300 && !atomic_load(&sink.stopping); i++)
            usleep(10 * 1000);
    r = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
    sink_req *q = *ctx;
    (void)cls;
    (void)c;
    (void)toe;
    if (q) {
        free(q->body);
        free(q);
        *ctx = NULL;
    }
}

static int sink_start(void)
{
    struct sockaddr_in a;
    const union MHD_DaemonInfo *info;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sink.d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!sink.d)
        return -1;
    info = MHD_get_daemon_info(sink.d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port)
        return -1;
    sink.port = info->port;
    return 0;
}

static void sink_reset(void)
{
    pthread_mutex_lock(&sink.mu);
    for (int i = 0; i < sink.n; i++)
        free(sink.recs[i].body);
    sink.n = 0;
    pthread_mutex_unlock(&sink.mu);
    atomic_store(&sink.fail, 0);
}

/* Requests recorded on `path`; copies the last one into *last if given
 * (its body owned by the caller, free()). */
static int sink_count(const char *path, rec *last)
{
    int n = 0;

    pthread_mutex_lock(&sink.mu);
    for (int i = 0; i < sink.n; i++) {
        if (strcmp(sink.recs[i].path, path))
            continue;
        n++;
        if (last) {
            free(last->body);
            *last = sink.recs[i];
            last->body = strdup(sink.recs[i].body);
        }
    }
    pthread_mutex_unlock(&sink.mu);
    return n;
}

static void url_of(char *buf, size_t n, const char *path)
{
    snprintf(buf, n, "http://127.0.0.1:%u%s", (unsigned)sink.port, path);
}

/* A loopback port nobody listens on. */
static uint16_t closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- fixtures ---------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    const char *base = getenv("ASTER_TEST_TMPDIR");

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_alert.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        return -1;
    return sink_start();
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&sink.stopping, 1);
    MHD_stop_daemon(sink.d);
    sink_reset();
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static aster_store *open_db(const char *name)
{
    const aster_store_opts opts = {.exclusive = false, .migrate = true};
    aster_store *st = NULL;
    aster_err err = {0};
    char url[PATH_MAX + 16];

    sink_reset();
    snprintf(url, sizeof(url), "sqlite:%s/%s.db", tmpdir, name);
    if (aster_store_open(url, &opts, &st, &err))
        fail_msg("open %s: %s", url, err.msg);
    return st;
}

/* A job in the store, and in *j (aster_job_fini). */
static void make_job(aster_store *st, aster_job *j, const char *name, const char *webhook,
                     int after_failures, int64_t no_success_ms)
{
    aster_err err = {0};

    aster_job_init(j);
    aster_uuid7(j->id);
    j->name = aster_strdup(name);
    j->schedule = aster_strdup("* * * * *");
    j->timezone = aster_strdup("UTC");
    j->target = aster_strdup("{\"url\":\"http://127.0.0.1:9/\",\"method\":\"POST\"}");
    j->alert_webhook = aster_strdup(webhook);
    j->alert_after_failures = after_failures;
    j->alert_if_no_success_ms = no_success_ms;
    j->created_at = j->updated_at = aster_time_now();
    j->version = 1;
    if (aster_store_job_insert(st, j, &err))
        fail_msg("insert %s: %s", name, err.msg);
}

/* A finished execution of `job` in the store (committed before on_final,
 * as the engine does), and in *e (aster_exec_fini). */
static void finish_exec(aster_store *st, const aster_job *job, aster_exec_status status,
                        aster_exec *e)
{
    aster_err err = {0};
    aster_time_us now = aster_time_now();

    aster_exec_init(e);
    aster_uuid7(e->id);
    memcpy(e->job_id, job->id, sizeof(e->job_id));
    e->trigger = ASTER_TRIGGER_MANUAL;
    e->status = status;
    e->attempt = 3;
    e->scheduled_at = e->not_before = e->created_at = now;
    e->started_at = now;
    e->finished_at = now;
    if (status != ASTER_EXEC_SUCCEEDED)
        e->error =
            aster_strdup(status == ASTER_EXEC_TIMED_OUT ? "timed out after 30000 ms" : "HTTP 503");
    if (aster_store_exec_insert(st, e, 1, NULL, &err))
        fail_msg("insert exec: %s", err.msg);
}

static void run_final(aster_store *st, aster_alerter *a, const aster_job *job,
                      aster_exec_status status)
{
    aster_exec e;

    finish_exec(st, job, status, &e);
    aster_alerter_on_final(a, job, &e);
    aster_exec_fini(&e);
}

static aster_alerter *start_alerter(aster_store *st, aster_metrics *m, const aster_logger *lg,
                                    const char *webhook, const char *secret, int max_attempts,
                                    int64_t retry_base_ms)
{
    aster_alerter_opts o = {.log = lg,
                            .store = st,
                            .metrics = m,
                            .webhook = webhook,
                            .secret = secret,
                            .max_attempts = max_attempts,
                            .retry_base_ms = retry_base_ms,
                            .absence_check_ms = 100};
    aster_alerter *a = NULL;
    aster_err err = {0};

    if (aster_alerter_start(&o, &a, &err))
        fail_msg("alerter: %s", err.msg);
    return a;
}

/* The job's alerts (newest first); free with aster_store_free_alerts. */
static size_t alerts_of(aster_store *st, const char *job_id, const char *kind, aster_alert **out)
{
    aster_alert_filter f = {.job_id = job_id, .kind = kind, .limit = 100};
    aster_alert *al = NULL;
    aster_err err = {0};
    size_t n = 0;

    assert_int_equal(aster_store_alert_list(st, &f, &al, &n, &err), 0);
    if (out)
        *out = al;
    else
        aster_store_free_alerts(al, n);
    return n;
}

static size_t count_alerts(aster_store *st, const char *job_id, const char *kind)
{
    return alerts_of(st, job_id, kind, NULL);
}

/* Polls `cond` every 10 ms for up to `ms`. */
#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        for (int w_ = 0; w_ < (ms) / 10 && !(cond); w_++)                                          \
            usleep(10 * 1000);                                                                     \
    } while (0)

/* The delivery state of the job's only alert of `kind`, into buf. */
static const char *state_of(aster_store *st, const char *job_id, const char *kind, char *buf,
                            size_t n, int *attempts)
{
    aster_alert *al = NULL;
    size_t cnt = alerts_of(st, job_id, kind, &al);

    snprintf(buf, n, "%s", cnt == 1 ? al[0].delivery_state : "?");
    if (attempts)
        *attempts = cnt == 1 ? al[0].delivery_attempts : -1;
    aster_store_free_alerts(al, cnt);
    return buf;
}

static bool state_is(aster_store *st, const char *job_id, const char *kind, const char *want)
{
    char buf[32];
    return !strcmp(state_of(st, job_id, kind, buf, sizeof(buf), NULL), want);
}

static void hmac_hex(const char *secret, const char *body, char out[7 + 64 + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), md,
         &len);
    assert_int_equal(len, 32);
    strcpy(out, "sha256=");
    for (unsigned i = 0; i < len; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static bool has_text(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* ---- tests ------------------------------------------------------------------- */

/* One alert per final failure (reported twice, and found by the scan too),
 * logged at error, counted, delivered once with a valid signature. */
static void test_final_failure_once(void **state)
{
    aster_store *st = open_db("final");
    aster_metrics *m = aster_metrics_new(NULL, NULL, 0);
    char url[128], sig[7 + 64 + 1], logpath[PATH_MAX];
    aster_logger lg;
    aster_alerter *a;
    aster_alert *al = NULL;
    aster_job job;
    aster_exec e, ok;
    rec got = {0};
    json_t *doc;
    char *text, logbuf[8192] = "";
    int fd;
    ssize_t len;

    (void)state;
    snprintf(logpath, sizeof(logpath), "%s/final.log", tmpdir);
    fd = open(logpath, O_CREAT | O_RDWR | O_TRUNC, 0644);
    assert_true(fd >= 0);
    aster_log_init(&lg, ASTER_LOG_INFO, ASTER_LOG_JSON, fd);
    url_of(url, sizeof(url), "/ok");
    make_job(st, &job, "nightly-report", url, 0, 0);
    a = start_alerter(st, m, &lg, NULL, "s3cret", 0, 0);

    finish_exec(st, &job, ASTER_EXEC_FAILED, &e);
    aster_alerter_on_final(a, &job, &e);
    aster_alerter_on_final(a, &job, &e);
    /* A success is no alert. */
    finish_exec(st, &job, ASTER_EXEC_SUCCEEDED, &ok);
    aster_alerter_on_final(a, &job, &ok);

    WAIT_FOR(state_is(st, job.id, "failed", "delivered"), 5000);
    usleep(400 * 1000); /* several scans later */
    assert_int_equal(count_alerts(st, job.id, NULL), 1);
    assert_int_equal(alerts_of(st, job.id, "failed", &al), 1);
    assert_string_equal(al[0].execution_id, e.id);
    assert_string_equal(al[0].delivery_state, "delivered");
    assert_int_equal(al[0].delivery_attempts, 1);
    assert_true(has_text(al[0].message, "nightly-report"));
    assert_true(has_text(al[0].message, "HTTP 503"));

    /* The webhook: one request, JSON, signed over the exact body. */
    assert_int_equal(sink_count("/ok", &got), 1);
    assert_string_equal(got.ctype, "application/json");
    hmac_hex("s3cret", got.body, sig);
    assert_string_equal(got.sig, sig);
    assert_string_equal(got.alert_id, al[0].id);
    doc = json_loads(got.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), al[0].id);
    assert_string_equal(json_string_value(json_object_get(doc, "job_id")), job.id);
    assert_string_equal(json_string_value(json_object_get(doc, "job_name")), "nightly-report");
    assert_string_equal(json_string_value(json_object_get(doc, "execution_id")), e.id);
    assert_string_equal(json_string_value(json_object_get(doc, "kind")), "failed");
    assert_string_equal(json_string_value(json_object_get(doc, "message")), al[0].message);
    assert_non_null(json_string_value(json_object_get(doc, "created_at")));
    json_decref(doc);

    aster_alerter_stop(a);
    /* A restart does not raise it again. */
    a = start_alerter(st, m, &lg, NULL, "s3cret", 0, 0);
    aster_alerter_on_final(a, &job, &e);
    usleep(300 * 1000);
    aster_alerter_stop(a);
    assert_int_equal(count_alerts(st, job.id, NULL), 1);
    assert_int_equal(sink_count("/ok", NULL), 1);

    /* Logged at error with its fields; the secret never. */
    len = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
    assert_true(len > 0);
    logbuf[len] = '\0';
    assert_true(has_text(logbuf, "\"level\":\"error\""));
    assert_true(has_text(logbuf, "\"component\":\"alert\""));
    assert_true(has_text(logbuf, al[0].id));
    assert_true(has_text(logbuf, "\"kind\":\"failed\""));
    assert_true(has_text(logbuf, e.id));
    assert_false(has_text(logbuf, "s3cret"));
    close(fd);

    text = aster_metrics_render(m, &(aster_metrics_gauges){0});
    assert_true(has_text(text, "aster_alerts_total{kind=\"failed\"} 1\n"));
    assert_true(has_text(text, "aster_alert_deliveries_total{result=\"delivered\"} 1\n"));
    aster_free(text);

    free(got.body);
    aster_store_free_alerts(al, 1);
    aster_exec_fini(&e);
    aster_exec_fini(&ok);
    aster_job_fini(&job);
    aster_metrics_free(m);
    aster_store_close(st);
}

/* An ATMOST_ONCE execution lost with its executor is marked failed by the
 * store's reclaim, which the engine never reports: the scan finds it. */
static void test_lost_found_by_scan(void **state)
{
    aster_store *st = open_db("lost");
    aster_time_us now = aster_time_now();
    aster_err err = {0};
    aster_alert *al = NULL;
    aster_alerter *a;
    aster_job job;
    aster_exec e;
    size_t failed = 0;

    (void)state;
    make_job(st, &job, "once", NULL, 0, 0);
    job.delivery = ASTER_DELIVERY_ATMOST_ONCE;
    assert_int_equal(aster_store_job_update(st, &job, 0, &err), 0);
    aster_exec_init(&e);
    aster_uuid7(e.id);
    memcpy(e.job_id, job.id, sizeof(e.job_id));
    e.status = ASTER_EXEC_RUNNING;
    e.attempt = 1;
    e.claimed_by = aster_strdup("dead-worker");
    e.lease_until = now - ASTER_US_PER_SEC;
    e.scheduled_at = e.not_before = e.created_at = e.started_at = now - 10 * ASTER_US_PER_SEC;
    assert_int_equal(aster_store_exec_insert(st, &e, 1, NULL, &err), 0);
    assert_int_equal(aster_store_exec_reclaim(st, NULL, now, 0, now, NULL, &failed, &err), 0);
    assert_int_equal(failed, 1);

    a = start_alerter(st, NULL, NULL, NULL, NULL, 0, 0);
    WAIT_FOR(count_alerts(st, job.id, "failed") == 1, 3000);
    usleep(300 * 1000);
    aster_alerter_stop(a);
    assert_int_equal(alerts_of(st, job.id, NULL, &al), 1);
    assert_string_equal(al[0].kind, "failed");
    assert_string_equal(al[0].execution_id, e.id);
    assert_true(has_text(al[0].message, "lost"));
    assert_string_equal(al[0].delivery_state, "none"); /* no webhook anywhere */
    aster_store_free_alerts(al, 1);
    aster_exec_fini(&e);
    aster_job_fini(&job);
    aster_store_close(st);
}

/* consecutive_failures: once when the streak reaches N, again only after a
 * success resets it; timed_out counts as a failure. */
static void test_consecutive_failures(void **state)
{
    aster_store *st = open_db("streak");
    aster_alerter *a;
    aster_job job;

    (void)state;
    make_job(st, &job, "flappy", NULL, 3, 0);
    a = start_alerter(st, NULL, NULL, NULL, NULL, 0, 0);
    for (int i = 1; i <= 4; i++) {
        run_final(st, a, &job, i == 2 ? ASTER_EXEC_TIMED_OUT : ASTER_EXEC_FAILED);
        WAIT_FOR(count_alerts(st, job.id, "failed") == (size_t)i, 3000);
        assert_int_equal(count_alerts(st, job.id, "failed"), i);
        usleep(50 * 1000);
        assert_int_equal(count_alerts(st, job.id, "consecutive_failures"), i >= 3 ? 1 : 0);
    }
    run_final(st, a, &job, ASTER_EXEC_SUCCEEDED);
    for (int i = 1; i <= 3; i++) {
        run_final(st, a, &job, ASTER_EXEC_FAILED);
        WAIT_FOR(count_alerts(st, job.id, "failed") == (size_t)(4 + i), 3000);
        usleep(50 * 1000);
        assert_int_equal(count_alerts(st, job.id, "consecutive_failures"), i >= 3 ? 2 : 1);
    }
    usleep(300 * 1000);
    aster_alerter_stop(a);
    assert_int_equal(count_alerts(st, job.id, "consecutive_failures"), 2);
    assert_int_equal(count_alerts(st, job.id, "failed"), 7);
    aster_job_fini(&job);
    aster_store_close(st);
}

/* missed: one alert per report, with the count, to the global webhook when
 * the job names none. */
static void test_missed(void **state)
{
    aster_store *st = open_db("missed");
    aster_time_us t1 = aster_time_now() - 3600 * ASTER_US_PER_SEC, t2 = t1 + 240 * ASTER_US_PER_SEC;
    char global[128];
    aster_alert *al = NULL;
    aster_alerter *a;
    aster_job job;
    rec got = {0};

    (void)state;
    url_of(global, sizeof(global), "/global");
    make_job(st, &job, "minutely", NULL, 0, 0);
    a = start_alerter(st, NULL, NULL, global, NULL, 0, 0);
    aster_alerter_on_missed(a, &job, 5, t1, t2);
    aster_alerter_on_missed(a, &job, 5, t1, t2); /* the same report again */
    aster_alerter_on_missed(a, &job, 0, t1, t2); /* nothing missed: no alert */
    WAIT_FOR(state_is(st, job.id, "missed", "delivered"), 3000);
    aster_alerter_on_missed(a, &job, 1, t2 + 60 * ASTER_US_PER_SEC, t2 + 60 * ASTER_US_PER_SEC);
    WAIT_FOR(count_alerts(st, job.id, "missed") == 2, 3000);
    WAIT_FOR(sink_count("/global", NULL) == 2, 3000);
    aster_alerter_stop(a);
    assert_int_equal(alerts_of(st, job.id, "missed", &al), 2);
    assert_true(has_text(al[1].message, "5 fires"));
    assert_true(has_text(al[0].message, "1 fire"));
    assert_string_equal(al[1].execution_id, "");
    assert_int_equal(sink_count("/global", &got), 2);
    assert_string_equal(got.sig, ""); /* no secret: no signature */
    free(got.body);
    aster_store_free_alerts(al, 2);
    aster_job_fini(&job);
    aster_store_close(st);
}

/* no_success: once per absence period, never while the job succeeds. */
static void test_no_success(void **state)
{
    aster_store *st = open_db("absence");
    aster_alerter *a;
    aster_job idle, busy, paused;
    aster_exec e;
    aster_err err = {0};

    (void)state;
    make_job(st, &idle, "idle", NULL, 0, 1000);
    make_job(st, &busy, "busy", NULL, 0, 1000);
    make_job(st, &paused, "paused", NULL, 0, 1000);
    paused.paused = true;
    assert_int_equal(aster_store_job_update(st, &paused, 0, &err), 0);
    a = start_alerter(st, NULL, NULL, NULL, NULL, 0, 0);
    /* 2.5 s: idle crosses its 1 s once; busy succeeds every 300 ms. */
    for (int i = 0; i < 8; i++) {
        run_final(st, a, &busy, ASTER_EXEC_SUCCEEDED);
        usleep(300 * 1000);
    }
    assert_int_equal(count_alerts(st, idle.id, "no_success"), 1);
    assert_int_equal(count_alerts(st, busy.id, NULL), 0);
    assert_int_equal(count_alerts(st, paused.id, NULL), 0);
    /* idle succeeds: a new period begins, and alerts again 1 s later. */
    finish_exec(st, &idle, ASTER_EXEC_SUCCEEDED, &e);
    aster_exec_fini(&e);
    usleep(500 * 1000);
    assert_int_equal(count_alerts(st, idle.id, "no_success"), 1);
    WAIT_FOR(count_alerts(st, idle.id, "no_success") == 2, 3000);
    usleep(300 * 1000);
    aster_alerter_stop(a);
    assert_int_equal(count_alerts(st, idle.id, "no_success"), 2);
    aster_job_fini(&idle);
    aster_job_fini(&busy);
    aster_job_fini(&paused);
    aster_store_close(st);
}

/* 500, 500, then 200: three attempts, one alert id, delivered. */
static void test_retry_then_delivered(void **state)
{
    aster_store *st = open_db("retry");
    aster_metrics *m = aster_metrics_new(NULL, NULL, 0);
    char url[128], buf[32];
    aster_alerter *a;
    aster_job job;
    int attempts = 0;
    char *text;

    (void)state;
    atomic_store(&sink.fail, 2);
    url_of(url, sizeof(url), "/flaky");
    make_job(st, &job, "retried", url, 0, 0);
    a = start_alerter(st, m, NULL, NULL, NULL, 0, 50);
    run_final(st, a, &job, ASTER_EXEC_FAILED);
    WAIT_FOR(state_is(st, job.id, "failed", "delivered"), 5000);
    aster_alerter_stop(a);
    assert_string_equal(state_of(st, job.id, "failed", buf, sizeof(buf), &attempts), "delivered");
    assert_int_equal(attempts, 3);
    assert_int_equal(sink_count("/flaky", NULL), 3);
    pthread_mutex_lock(&sink.mu);
    for (int i = 1; i < sink.n; i++)
        assert_string_equal(sink.recs[i].alert_id, sink.recs[0].alert_id);
    pthread_mutex_unlock(&sink.mu);
    text = aster_metrics_render(m, &(aster_metrics_gauges){0});
    assert_true(has_text(text, "aster_alert_deliveries_total{result=\"delivered\"} 1\n"));
    assert_true(has_text(text, "aster_alert_deliveries_total{result=\"failed\"} 2\n"));
    aster_free(text);
    aster_metrics_free(m);
    aster_job_fini(&job);
    aster_store_close(st);
}

/* A down webhook (closed port) and a hanging one are retried / wait, and
 * neither delays another job's delivery to a working sink; after
 * max_attempts the dead one is "failed". */
static void test_down_webhook_does_not_delay(void **state)
{
    aster_store *st = open_db("down");
    char dead[128], hang[128], ok[128], buf[32];
    aster_job down, slow, fine;
    aster_alerter *a;
    aster_mono_us t0;
    int attempts = 0;

    (void)state;
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%u/", (unsigned)closed_port());
    url_of(hang, sizeof(hang), "/hang");
    url_of(ok, sizeof(ok), "/ok");
    make_job(st, &down, "down", dead, 0, 0);
    make_job(st, &slow, "slow", hang, 0, 0);
    make_job(st, &fine, "fine", ok, 0, 0);
    a = start_alerter(st, NULL, NULL, NULL, NULL, 4, 100);
    run_final(st, a, &down, ASTER_EXEC_FAILED);
    run_final(st, a, &slow, ASTER_EXEC_FAILED);
    WAIT_FOR(sink_count("/hang", NULL) == 1, 3000);
    assert_int_equal(sink_count("/hang", NULL), 1);
    t0 = aster_mono_now();
    run_final(st, a, &fine, ASTER_EXEC_FAILED);
    WAIT_FOR(sink_count("/ok", NULL) == 1, 3000);
    assert_int_equal(sink_count("/ok", NULL), 1);
    assert_true(aster_mono_now() - t0 < 1000 * 1000); /* while /hang still holds its slot */
    WAIT_FOR(state_is(st, fine.id, "failed", "delivered"), 2000);
    assert_true(state_is(st, fine.id, "failed", "delivered"));
    /* 4 attempts at 100, 200, 400 ms of backoff (+-20%): gone in ~1 s. */
    WAIT_FOR(state_is(st, down.id, "failed", "failed"), 5000);
    assert_string_equal(state_of(st, down.id, "failed", buf, sizeof(buf), &attempts), "failed");
    assert_int_equal(attempts, 4);
    /* Stopped while /hang holds: it stays pending, not counted. */
    aster_alerter_stop(a);
    assert_string_equal(state_of(st, slow.id, "failed", buf, sizeof(buf), &attempts), "pending");
    assert_int_equal(attempts, 0);
    aster_job_fini(&down);
    aster_job_fini(&slow);
    aster_job_fini(&fine);
    aster_store_close(st);
}

/* Pending deliveries live in the store: a stopped alerter's are sent by the
 * next one, which keeps counting attempts. */
static void test_stop_start_resumes(void **state)
{
    aster_store *st = open_db("resume");
    char url[128], buf[32];
    aster_alerter *a;
    aster_job job;
    int attempts = 0;

    (void)state;
    atomic_store(&sink.fail, 1000000);
    url_of(url, sizeof(url), "/flaky");
    make_job(st, &job, "resumed", url, 0, 0);
    a = start_alerter(st, NULL, NULL, NULL, NULL, 20, 100);
    run_final(st, a, &job, ASTER_EXEC_FAILED);
    WAIT_FOR(sink_count("/flaky", NULL) >= 2, 3000);
    aster_alerter_stop(a);
    state_of(st, job.id, "failed", buf, sizeof(buf), &attempts);
    assert_string_equal(buf, "pending");
    assert_true(attempts >= 2);

    atomic_store(&sink.fail, 0);
    a = start_alerter(st, NULL, NULL, NULL, NULL, 20, 100);
    WAIT_FOR(state_is(st, job.id, "failed", "delivered"), 5000);
    aster_alerter_stop(a);
    assert_true(state_is(st, job.id, "failed", "delivered"));
    {
        int before = attempts;
        state_of(st, job.id, "failed", buf, sizeof(buf), &attempts);
        assert_int_equal(attempts, sink_count("/flaky", NULL));
        assert_true(attempts > before);
    }
    assert_int_equal(count_alerts(st, job.id, NULL), 1);
    aster_alerter_stop(NULL);
    aster_alerter_on_final(NULL, &job, NULL);
    aster_job_fini(&job);
    aster_store_close(st);
}

/* The store's identity: one alert per (job, dedupe key). */
static void test_store_dedupe(void **state)
{
    aster_store *st = open_db("dedupe");
    aster_err err = {0};
    aster_job job;
    aster_alert al;
    bool inserted = false;
    aster_alert *due = NULL;
    size_t n = 0;
    aster_time_us next = 0;

    (void)state;
    make_job(st, &job, "d", NULL, 0, 0);
    for (int i = 0; i < 3; i++) {
        aster_alert_init(&al);
        aster_uuid7(al.id);
        memcpy(al.job_id, job.id, sizeof(al.job_id));
        al.kind = aster_strdup("missed");
        al.message = aster_strdup("m");
        al.delivery_state = aster_strdup("pending");
        al.created_at = al.next_delivery_at = 1000 + i;
        assert_int_equal(
            aster_store_alert_raise(st, &al, i < 2 ? "missed:1:2" : NULL, &inserted, &err), 0);
        assert_int_equal(inserted, i != 1);
        aster_alert_fini(&al);
    }
    assert_int_equal(count_alerts(st, job.id, NULL), 2);
    assert_int_equal(aster_store_alert_next_due(st, &next, &err), 0);
    assert_int_equal(next, 1000);
    assert_int_equal(aster_store_alert_due(st, 1001, 10, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(aster_store_alert_set_delivery(st, due[0].id, "delivered", 1, 0, &err), 0);
    aster_store_free_alerts(due, n);
    assert_int_equal(aster_store_alert_due(st, 5000, 10, &due, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(due[0].created_at, 1002);
    aster_store_free_alerts(due, n);
    assert_int_equal(aster_store_alert_set_delivery(st, "0190a0a0-0000-7000-8000-000000000000",
                                                    "failed", 1, 0, &err),
                     ASTER_ENOENT);
    aster_job_fini(&job);
    aster_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_dedupe),
        cmocka_unit_test(test_final_failure_once),
        cmocka_unit_test(test_lost_found_by_scan),
        cmocka_unit_test(test_consecutive_failures),
        cmocka_unit_test(test_missed),
        cmocka_unit_test(test_no_success),
        cmocka_unit_test(test_retry_then_delivered),
        cmocka_unit_test(test_down_webhook_does_not_delay),
        cmocka_unit_test(test_stop_start_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
