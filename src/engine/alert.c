/* alert.c — the alerter thread: raise, store, log, count, deliver.
 *
 * DESIGN
 * ------
 * One thread runs a loop around libcurl's multi handle:
 *
 *   take the inbox (on_final / on_missed events, under `mu`)
 *   -> raise their alerts (one store write each)
 *   -> every absence_check_ms: scan for final failures without an alert
 *      (what lease reclaims mark failed, and anything an event missed),
 *      and for jobs whose absence alert is due
 *   -> claim due deliveries from the store, up to FLY_MAX in flight
 *   -> curl_multi_perform, then record each finished delivery
 *   -> curl_multi_poll until the next due time, a socket, or a wake-up
 *      (curl_multi_wakeup from on_final / on_missed / stop).
 *
 * Identity.  Every alert is raised with a dedupe key naming its event:
 *   failed:EXEC_ID                 consecutive_failures:LAST_SUCCESS_ID|none
 *   missed:FIRST_AT:LAST_AT        no_success:SINCE (µs, the absence's start)
 * and the store keeps one alert per (job, key).  So the engine's report and
 * the scan may both see a failure, a restart may see it again, and still one
 * alert is stored, logged, counted and sent.
 *
 * The delivery queue is the alerts table (delivery_state pending,
 * next_delivery_at).  Starting an attempt moves next_delivery_at to the end
 * of a lease (timeout + margin), so the next claim skips it while it flies
 * and, should the process die, it is due again afterwards.  Its end writes
 * delivered / pending with the backoff / failed.  Deliveries are
 * at-least-once: the alert id lets a receiver drop a repeat. */
#include "engine/alert.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/job_json.h"
#include "util/mem.h"
#include "util/uuid.h"

#ifndef ASTER_VERSION
#define ASTER_VERSION "0.0.0"
#endif

#define COMPONENT "alert"

#define DEFAULT_MAX_ATTEMPTS     8
#define DEFAULT_RETRY_BASE_MS    1000
#define DEFAULT_ABSENCE_CHECK_MS 5000
/* A webhook gets this long to answer; an attempt never holds a slot longer. */
#define DELIVERY_TIMEOUT_MS 10000
/* The claim on an attempt outlives its timeout, so it is never claimed
 * twice by this process; after a crash it is due again this much later. */
#define DELIVERY_LEASE_MS (DELIVERY_TIMEOUT_MS + 5000)
#define RETRY_CAP_MS      (5 * 60 * 1000)
/* Deliveries in flight at once: enough that a few dead webhooks (each
 * holding a slot for up to the timeout) leave room for the others. */
#define FLY_MAX 16
/* Events waiting for the thread.  Past this the engine is far ahead of the
 * store; failures are found again by the scan, missed reports are dropped
 * (and counted in the log). */
#define INBOX_MAX 10000
/* The failure scan re-reads this much before its last run: a result is
 * committed a little after its finished_at (a loop turn, or longer while
 * the store is unavailable). */
#define SCAN_SLACK_US (10 * 60 * ASTER_US_PER_SEC)
/* At start, the scan looks this far back: failures recorded while a
 * previous process died before alerting. */
#define SCAN_LOOKBACK_US (60 * 60 * ASTER_US_PER_SEC)
/* Rows per store read in the scans; a scan reads at most SCAN_PAGES. */
#define SCAN_PAGE  100
#define SCAN_PAGES 10
/* The loop wakes at least this often, whatever it waits for. */
#define POLL_MAX_MS 1000

/* ---- events from the engine ---------------------------------------------------- */

typedef enum { EV_FINAL, EV_MISSED } ev_kind;

/* What a raise needs to know about a job (borrowed strings). */
typedef struct jinfo {
    const char *id, *name, *webhook;
    int32_t after_failures;
} jinfo;

typedef struct event {
    struct event *next;
    ev_kind kind;
    char job_id[ASTER_ID_LEN + 1];
    char *job_name, *webhook; /* owned */
    int32_t after_failures;
    /* EV_FINAL */
    char exec_id[ASTER_ID_LEN + 1];
    aster_exec_status status;
    int32_t attempt;
    char *error; /* owned; may be NULL */
    /* EV_MISSED */
    int64_t n;
    aster_time_us first_at, last_at;
} event;

/* One delivery attempt in flight. */
typedef struct flight {
    struct flight *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char id[ASTER_ID_LEN + 1];
    char job_id[ASTER_ID_LEN + 1];
    int32_t attempts; /* made before this one */
    char errbuf[CURL_ERROR_SIZE];
} flight;

struct aster_alerter {
    const aster_logger *log;
    aster_store *store;
    aster_metrics *metrics;
    char *webhook, *secret;
    int max_attempts;
    int64_t retry_base_ms, absence_check_ms;
    bool (*active)(void *arg);
    void *active_arg;

    pthread_t thread;
    CURLM *multi;

    /* Shared with on_final / on_missed / stop: guarded by mu. */
    pthread_mutex_t mu;
    event *head, **tail;
    size_t queued, dropped;
    bool stopping;

    /* The thread's own. */
    flight *flying;
    size_t nflying;
    aster_time_us scan_since, next_scan;
    uint64_t rng;
};

/* ---- small helpers -------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* Ref-counted inside libcurl, so the runner's own call does not conflict. */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void log_err(const aster_alerter *a, aster_log_level lv, const char *what,
                    const aster_err *err)
{
    const aster_kv kv[] = {ASTER_KV_STR("error", err->msg), ASTER_KV_STR("field", err->field)};
    aster_log(a->log, lv, COMPONENT, what, kv, ASTER_NELEM(kv));
}

/* xorshift64*: jitter only, no secrets. */
static uint64_t next_rand(aster_alerter *a)
{
    uint64_t x = a->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return x * UINT64_C(2685821657736338717);
}

/* Delay before the attempt after `attempts` failed ones, in ms. */
static int64_t backoff_ms(aster_alerter *a, int32_t attempts)
{
    int64_t d = a->retry_base_ms;

    for (int32_t i = 1; i < attempts && d < RETRY_CAP_MS; i++)
        d *= 2;
    if (d > RETRY_CAP_MS)
        d = RETRY_CAP_MS;
    /* +-20% so that alerts failing together do not retry in lockstep. */
    d = d * (80 + (int64_t)(next_rand(a) % 41)) / 100;
    return d > 0 ? d : 1;
}

static void fmt_time(aster_time_us t, char *buf, size_t n)
{
    aster_time_format_ms(t, buf, n);
}

/* ---- raising ----------------------------------------------------------------------- */

/* Stores the alert unless its event has one; on a new one logs it at
 * error and counts it.  Returns true when raised now. */
static bool raise_alert(aster_alerter *a, const jinfo *j, const char *exec_id, const char *kind,
                        const char *dedupe, const char *message)
{
    bool deliver = (j->webhook && *j->webhook) || a->webhook, inserted = false;
    aster_time_us now = aster_time_now();
    aster_err err = {0};
    aster_alert al;
    int rc;

    aster_alert_init(&al);
    aster_uuid7(al.id);
    snprintf(al.job_id, sizeof(al.job_id), "%s", j->id);
    snprintf(al.execution_id, sizeof(al.execution_id), "%s", exec_id ? exec_id : "");
    al.kind = aster_strdup(kind);
    al.message = aster_strdup(message);
    al.created_at = now;
    al.delivery_state = aster_strdup(deliver ? "pending" : "none");
    al.next_delivery_at = deliver ? now : 0;
    rc = aster_store_alert_raise(a->store, &al, dedupe, &inserted, &err);
    if (rc && rc != ASTER_ENOENT) /* ENOENT: the job was deleted meanwhile */
        log_err(a, ASTER_LOG_WARN, "cannot record an alert", &err);
    if (!rc && inserted) {
        const aster_kv kv[] = {ASTER_KV_STR("job_id", al.job_id),
                               ASTER_KV_STR("execution_id", al.execution_id),
                               ASTER_KV_STR("kind", kind),
                               ASTER_KV_STR("alert_id", al.id),
                               ASTER_KV_STR("job_name", j->name),
                               ASTER_KV_STR("delivery", al.delivery_state),
                               ASTER_KV_STR("alert_message", message)};
        aster_log(a->log, ASTER_LOG_ERROR, COMPONENT, message, kv, ASTER_NELEM(kv));
        aster_metrics_alert(a->metrics, kind);
    }
    aster_alert_fini(&al);
    return !rc && inserted;
}

/* A streak of final failures reached the job's threshold: once per streak,
 * the streak named by the success before it. */
static void check_streak(aster_alerter *a, const jinfo *j, const char *exec_id)
{
    char last_ok[ASTER_ID_LEN + 1], key[96], msg[512];
    aster_err err = {0};
    int64_t streak = 0;

    if (j->after_failures <= 0)
        return;
    if (aster_store_job_fail_streak(a->store, j->id, j->after_failures, &streak, last_ok, &err)) {
        log_err(a, ASTER_LOG_WARN, "cannot read a job's failure streak", &err);
        return;
    }
    if (streak < j->after_failures)
        return;
    snprintf(key, sizeof(key), "consecutive_failures:%s", last_ok[0] ? last_ok : "none");
    snprintf(msg, sizeof(msg), "job '%.200s' failed %d times in a row", j->name,
             (int)j->after_failures);
    raise_alert(a, j, exec_id, "consecutive_failures", key, msg);
}

static void on_failure(aster_alerter *a, const jinfo *j, const char *exec_id,
                       aster_exec_status status, int32_t attempt, const char *error)
{
    char key[64], msg[768];
    const char *lost = error && !strncmp(error, "lost:", 5) ? " (lost)" : "";

    if (status == ASTER_EXEC_TIMED_OUT)
        snprintf(msg, sizeof(msg), "job '%.200s' timed out after %d attempt%s: %.400s", j->name,
                 (int)attempt, attempt == 1 ? "" : "s", error ? error : "no detail");
    else
        snprintf(msg, sizeof(msg), "job '%.200s' failed%s after %d attempt%s: %.400s", j->name,
                 lost, (int)attempt, attempt == 1 ? "" : "s", error ? error : "no detail");
    snprintf(key, sizeof(key), "failed:%s", exec_id);
    raise_alert(a, j, exec_id, "failed", key, msg);
    /* Also when the failure alert existed already: the streak check is
     * idempotent, and a restart between the two must not lose it. */
    check_streak(a, j, exec_id);
}

static void on_missed_event(aster_alerter *a, const jinfo *j, int64_t n, aster_time_us first_at,
                            aster_time_us last_at)
{
    char key[96], msg[512], t1[ASTER_TIME_BUFSZ], t2[ASTER_TIME_BUFSZ];

    fmt_time(first_at, t1, sizeof(t1));
    fmt_time(last_at, t2, sizeof(t2));
    snprintf(key, sizeof(key), "missed:%" PRId64 ":%" PRId64, first_at, last_at);
    if (n == 1)
        snprintf(msg, sizeof(msg), "job '%.200s' missed 1 fire at %s", j->name, t1);
    else
        snprintf(msg, sizeof(msg), "job '%.200s' missed %" PRId64 " fires from %s to %s", j->name,
                 n, t1, t2);
    raise_alert(a, j, NULL, "missed", key, msg);
}

static void process_events(aster_alerter *a, event *ev)
{
    for (event *next; ev; ev = next) {
        jinfo j = {.id = ev->job_id,
                   .name = ev->job_name,
                   .webhook = ev->webhook,
                   .after_failures = ev->after_failures};
        next = ev->next;
        if (ev->kind == EV_FINAL)
            on_failure(a, &j, ev->exec_id, ev->status, ev->attempt, ev->error);
        else
            on_missed_event(a, &j, ev->n, ev->first_at, ev->last_at);
        aster_free(ev->job_name);
        aster_free(ev->webhook);
        aster_free(ev->error);
        aster_free(ev);
    }
}

/* ---- periodic scans ------------------------------------------------------------------ */

/* Loads job `id` for a raise; false when it is gone or unreadable. */
static bool load_job(aster_alerter *a, const char *id, aster_job *job)
{
    aster_err err = {0};
    int rc = aster_store_job_get(a->store, id, job, &err);

    if (rc && rc != ASTER_ENOENT)
        log_err(a, ASTER_LOG_WARN, "cannot read a job", &err);
    return rc == 0;
}

/* Final failures that have no "failed" alert yet: executions the engine
 * never reported (lease reclaims under ATMOST_ONCE), or whose report was
 * lost with a previous process. */
static void scan_failures(aster_alerter *a, aster_time_us now)
{
    for (int page = 0; page < SCAN_PAGES; page++) {
        aster_exec *ex = NULL;
        aster_err err = {0};
        size_t n = 0, raised = 0;

        if (aster_store_exec_unalerted_failures(a->store, a->scan_since, "failed:", SCAN_PAGE, &ex,
                                                &n, &err)) {
            log_err(a, ASTER_LOG_WARN, "cannot scan for failures", &err);
            return; /* scan_since stays: the next scan reads it all again */
        }
        for (size_t i = 0; i < n; i++) {
            aster_job job;
            aster_job_init(&job);
            if (load_job(a, ex[i].job_id, &job)) {
                jinfo j = {.id = job.id,
                           .name = job.name,
                           .webhook = job.alert_webhook,
                           .after_failures = job.alert_after_failures};
                on_failure(a, &j, ex[i].id, ex[i].status, ex[i].attempt, ex[i].error);
                raised++;
            }
            aster_job_fini(&job);
        }
        aster_store_free_execs(ex, n);
        if (n < SCAN_PAGE || raised == 0)
            break;
    }
    if (now - SCAN_SLACK_US > a->scan_since)
        a->scan_since = now - SCAN_SLACK_US;
}

static void check_absence(aster_alerter *a, aster_time_us now)
{
    char after[ASTER_ID_LEN + 1] = "";

    for (int page = 0; page < SCAN_PAGES; page++) {
        aster_job_absence *abs = NULL;
        aster_err err = {0};
        size_t n = 0;

        if (aster_store_job_absent(a->store, now, "no_success:", after, SCAN_PAGE, &abs, &n,
                                   &err)) {
            log_err(a, ASTER_LOG_WARN, "cannot check for absent successes", &err);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            char key[64], msg[512], dur[64], since[ASTER_TIME_BUFSZ];
            aster_job job;

            aster_job_init(&job);
            if (load_job(a, abs[i].job_id, &job)) {
                jinfo j = {.id = job.id, .name = job.name, .webhook = job.alert_webhook};
                aster_duration_format(abs[i].no_success_ms * ASTER_US_PER_MS, dur, sizeof(dur));
                fmt_time(abs[i].since, since, sizeof(since));
                snprintf(key, sizeof(key), "no_success:%" PRId64, abs[i].since);
                snprintf(msg, sizeof(msg), "job '%.200s' has not succeeded for %s (since %s)",
                         job.name, dur, since);
                raise_alert(a, &j, NULL, "no_success", key, msg);
            }
            aster_job_fini(&job);
        }
        if (n)
            memcpy(after, abs[n - 1].job_id, sizeof(after));
        aster_free(abs);
        if (n < SCAN_PAGE)
            break;
    }
}

/* ---- delivery ----------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void flight_free(flight *f)
{
    if (!f)
        return;
    if (f->easy)
        curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->headers);
    aster_free(f->body);
    aster_free(f);
}

static char *make_body(const aster_alert *al, const char *job_name, int32_t attempt)
{
    json_t *o = aster_alert_to_json(al);
    char *s, *out;

    json_object_del(o, "delivery_state");
    json_object_del(o, "delivery_attempts");
    json_object_set_new(o, "job_name", json_string(job_name ? job_name : ""));
    json_object_set_new(o, "delivery_attempt", json_integer(attempt));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    out = aster_strdup(s);
    free(s); /* jansson's allocator */
    return out;
}

/* "sha256=" + lower-case hex of HMAC-SHA256(secret, body). */
static void sign(const char *secret, const char *body, char out[7 + 64 + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), md,
         &len);
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < len && i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i + 1] = hex[md[i] & 0xf];
    }
    out[7 + 64] = '\0';
}

static void set_delivery(aster_alerter *a, const char *id, const char *state, int32_t attempts,
                         aster_time_us next)
{
    aster_err err = {0};
    int rc = aster_store_alert_set_delivery(a->store, id, state, attempts, next, &err);

    if (rc && rc != ASTER_ENOENT)
        log_err(a, ASTER_LOG_WARN, "cannot record an alert's delivery", &err);
}

static bool flying(const aster_alerter *a, const char *id)
{
    for (const flight *f = a->flying; f; f = f->next)
        if (!strcmp(f->id, id))
            return true;
    return false;
}

/* Starts one attempt of `al`.  The job gives the URL and the name. */
static void start_delivery(aster_alerter *a, const aster_alert *al, aster_time_us now)
{
    const char *url;
    aster_job job;
    flight *f = NULL;
    aster_err err = {0};
    char sig[7 + 64 + 1], idh[64];
    int rc;

    aster_job_init(&job);
    if (!load_job(a, al->job_id, &job))
        goto out; /* deleted: its alerts went with it */
    url = job.alert_webhook && *job.alert_webhook ? job.alert_webhook : a->webhook;
    if (!url) { /* the global webhook was removed since the alert was raised */
        set_delivery(a, al->id, "none", al->delivery_attempts, 0);
        goto out;
    }
    rc = aster_store_alert_set_delivery(a->store, al->id, "pending", al->delivery_attempts,
                                        now + DELIVERY_LEASE_MS * ASTER_US_PER_MS, &err);
    if (rc) {
        if (rc != ASTER_ENOENT)
            log_err(a, ASTER_LOG_WARN, "cannot claim an alert's delivery", &err);
        goto out;
    }
    f = aster_calloc(1, sizeof(*f));
    memcpy(f->id, al->id, sizeof(f->id));
    memcpy(f->job_id, al->job_id, sizeof(f->job_id));
    f->attempts = al->delivery_attempts;
    f->body = make_body(al, job.name, al->delivery_attempts + 1);
    f->headers = curl_slist_append(f->headers, "Content-Type: application/json");
    f->headers = curl_slist_append(f->headers, "User-Agent: aster/" ASTER_VERSION);
    snprintf(idh, sizeof(idh), "X-Aster-Alert-Id: %s", al->id);
    f->headers = curl_slist_append(f->headers, idh);
    if (a->secret) {
        char hdr[sizeof(sig) + 32];
        sign(a->secret, f->body, sig);
        snprintf(hdr, sizeof(hdr), "X-Aster-Signature: %s", sig);
        f->headers = curl_slist_append(f->headers, hdr);
    }
    f->easy = curl_easy_init();
    if (!f->easy || !f->headers) {
        const aster_kv kv[] = {ASTER_KV_STR("alert_id", al->id)};
        aster_log(a->log, ASTER_LOG_WARN, COMPONENT, "cannot create a libcurl handle", kv,
                  ASTER_NELEM(kv));
        set_delivery(a, al->id, "pending", al->delivery_attempts, now + POLL_MAX_MS * 1000);
        goto out;
    }
    curl_easy_setopt(f->easy, CURLOPT_URL, url);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, (long)DELIVERY_TIMEOUT_MS);
    curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(f->body));
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(f->easy, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(f->easy, CURLOPT_PRIVATE, f);
    if (curl_multi_add_handle(a->multi, f->easy) != CURLM_OK) {
        set_delivery(a, al->id, "pending", al->delivery_attempts, now + POLL_MAX_MS * 1000);
        goto out;
    }
    f->next = a->flying;
    a->flying = f;
    a->nflying++;
    f = NULL;
out:
    flight_free(f);
    aster_job_fini(&job);
}

static void start_due(aster_alerter *a, aster_time_us now)
{
    aster_alert *al = NULL;
    aster_err err = {0};
    size_t n = 0;

    if (a->nflying >= FLY_MAX)
        return;
    if (aster_store_alert_due(a->store, now, FLY_MAX - a->nflying, &al, &n, &err)) {
        log_err(a, ASTER_LOG_WARN, "cannot read the alert queue", &err);
        return;
    }
    for (size_t i = 0; i < n && a->nflying < FLY_MAX; i++)
        if (!flying(a, al[i].id))
            start_delivery(a, &al[i], now);
    aster_store_free_alerts(al, n);
}

static void unlink_flight(aster_alerter *a, flight *f)
{
    for (flight **p = &a->flying; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            a->nflying--;
            return;
        }
}

static void finish_delivery(aster_alerter *a, flight *f, CURLcode code, long status)
{
    bool ok = code == CURLE_OK && status >= 200 && status <= 299;
    int32_t attempts = f->attempts + 1;
    aster_time_us now = aster_time_now();
    char why[CURL_ERROR_SIZE + 32];

    aster_metrics_alert_delivery(a->metrics, ok);
    if (ok) {
        const aster_kv kv[] = {ASTER_KV_STR("alert_id", f->id), ASTER_KV_STR("job_id", f->job_id),
                               ASTER_KV_INT("attempt", attempts),
                               ASTER_KV_INT("http_status", status)};
        set_delivery(a, f->id, "delivered", attempts, 0);
        aster_log(a->log, ASTER_LOG_INFO, COMPONENT, "alert delivered", kv, ASTER_NELEM(kv));
        return;
    }
    if (code != CURLE_OK)
        snprintf(why, sizeof(why), "%s", f->errbuf[0] ? f->errbuf : curl_easy_strerror(code));
    else
        snprintf(why, sizeof(why), "HTTP %ld", status);
    if (attempts >= a->max_attempts) {
        const aster_kv kv[] = {ASTER_KV_STR("alert_id", f->id), ASTER_KV_STR("job_id", f->job_id),
                               ASTER_KV_INT("attempts", attempts), ASTER_KV_STR("error", why)};
        set_delivery(a, f->id, "failed", attempts, 0);
        aster_log(a->log, ASTER_LOG_ERROR, COMPONENT, "alert delivery failed; giving up", kv,
                  ASTER_NELEM(kv));
    } else {
        int64_t delay = backoff_ms(a, attempts);
        const aster_kv kv[] = {ASTER_KV_STR("alert_id", f->id), ASTER_KV_STR("job_id", f->job_id),
                               ASTER_KV_INT("attempt", attempts), ASTER_KV_STR("error", why),
                               ASTER_KV_INT("retry_in_ms", delay)};
        set_delivery(a, f->id, "pending", attempts, now + delay * ASTER_US_PER_MS);
        aster_log(a->log, ASTER_LOG_WARN, COMPONENT, "alert delivery failed; will retry", kv,
                  ASTER_NELEM(kv));
    }
}

static void collect(aster_alerter *a)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(a->multi, &left))) {
        CURL *c = msg->easy_handle;
        CURLcode code = msg->data.result; /* msg dies with remove_handle */
        flight *f = NULL;
        long status = 0;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&f);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(a->multi, c);
        unlink_flight(a, f);
        finish_delivery(a, f, code, status);
        flight_free(f);
    }
}

/* Stop: abandoned attempts are due again at once for the next start (they
 * did not complete, so they do not count). */
static void abandon_all(aster_alerter *a)
{
    aster_time_us now = aster_time_now();

    while (a->flying) {
        flight *f = a->flying;
        a->flying = f->next;
        a->nflying--;
        curl_multi_remove_handle(a->multi, f->easy);
        set_delivery(a, f->id, "pending", f->attempts, now);
        flight_free(f);
    }
}

/* ---- the thread --------------------------------------------------------------------- */

/* How long to sleep.  A process that does not deliver (`active` false)
 * must not wake for alerts due: another delivers them, and until it has,
 * they stay due and would wake this one at once, again and again. */
static int64_t wait_ms(aster_alerter *a, aster_time_us now, bool active)
{
    aster_time_us next = a->next_scan, due = 0;
    aster_err err = {0};
    int64_t ms;

    if (active && a->nflying < FLY_MAX && !aster_store_alert_next_due(a->store, &due, &err) &&
        due && due < next)
        next = due;
    ms = (next - now + 999) / 1000;
    if (ms < 0)
        ms = 0;
    return ms > POLL_MAX_MS ? POLL_MAX_MS : ms;
}

static void *run(void *arg)
{
    aster_alerter *a = arg;

    for (;;) {
        event *ev;
        bool stop;
        aster_time_us now;
        int running = 0;

        pthread_mutex_lock(&a->mu);
        ev = a->head;
        a->head = NULL;
        a->tail = &a->head;
        a->queued = 0;
        stop = a->stopping;
        if (a->dropped) {
            const aster_kv kv[] = {ASTER_KV_INT("dropped", a->dropped)};
            aster_log(a->log, ASTER_LOG_WARN, COMPONENT,
                      "alert events dropped: the alerter fell behind", kv, ASTER_NELEM(kv));
            a->dropped = 0;
        }
        pthread_mutex_unlock(&a->mu);

        process_events(a, ev);
        if (stop)
            break;
        now = aster_time_now();
        bool active = !a->active || a->active(a->active_arg);
        if (now >= a->next_scan) {
            if (active) {
                scan_failures(a, now);
                check_absence(a, now);
            }
            a->next_scan = now + a->absence_check_ms * ASTER_US_PER_MS;
        }
        if (active)
            start_due(a, now);
        curl_multi_perform(a->multi, &running);
        collect(a);
        curl_multi_poll(a->multi, NULL, 0, (int)wait_ms(a, aster_time_now(), active), NULL);
    }
    abandon_all(a);
    return NULL;
}

/* ---- the interface ------------------------------------------------------------------- */

static void alerter_free(aster_alerter *a)
{
    if (!a)
        return;
    if (a->multi)
        curl_multi_cleanup(a->multi);
    pthread_mutex_destroy(&a->mu);
    aster_free(a->webhook);
    aster_free(a->secret);
    aster_free(a);
}

int aster_alerter_start(const aster_alerter_opts *o, aster_alerter **out, aster_err *err)
{
    aster_alerter *a;
    aster_time_us now = aster_time_now();
    int rc;

    if (!o || !o->store || !out)
        return aster_err_set(err, ASTER_EINVAL, "alerter", "no store or handle given");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return aster_err_set(err, ASTER_EIO, NULL, "libcurl initialisation failed: %s",
                             curl_easy_strerror(curl_init_rc));
    a = aster_calloc(1, sizeof(*a));
    a->log = o->log;
    a->store = o->store;
    a->metrics = o->metrics;
    a->webhook = o->webhook && *o->webhook ? aster_strdup(o->webhook) : NULL;
    a->secret = o->secret && *o->secret ? aster_strdup(o->secret) : NULL;
    a->max_attempts = o->max_attempts > 0 ? o->max_attempts : DEFAULT_MAX_ATTEMPTS;
    a->retry_base_ms = o->retry_base_ms > 0 ? o->retry_base_ms : DEFAULT_RETRY_BASE_MS;
    a->absence_check_ms = o->absence_check_ms > 0 ? o->absence_check_ms : DEFAULT_ABSENCE_CHECK_MS;
    a->active = o->active;
    a->active_arg = o->active_arg;
    a->tail = &a->head;
    a->scan_since = now - SCAN_LOOKBACK_US;
    a->next_scan = now;
    a->rng = (uint64_t)now ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)a;
    if (!a->rng)
        a->rng = 1;
    pthread_mutex_init(&a->mu, NULL);
    a->multi = curl_multi_init();
    if (!a->multi) {
        rc = aster_err_set(err, ASTER_EIO, NULL, "cannot create a libcurl multi handle");
        goto fail;
    }
    if ((rc = pthread_create(&a->thread, NULL, run, a)) != 0) {
        rc = aster_err_set(err, ASTER_EIO, NULL, "cannot start the alerter thread: %s",
                           strerror(rc));
        goto fail;
    }
    *out = a;
    return 0;
fail:
    alerter_free(a);
    return rc;
}

void aster_alerter_stop(aster_alerter *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_mutex_unlock(&a->mu);
    curl_multi_wakeup(a->multi);
    pthread_join(a->thread, NULL);
    alerter_free(a);
}

static void post(aster_alerter *a, event *ev)
{
    bool queued = false;

    pthread_mutex_lock(&a->mu);
    if (!a->stopping && a->queued < INBOX_MAX) {
        *a->tail = ev;
        a->tail = &ev->next;
        a->queued++;
        queued = true;
    } else if (!a->stopping) {
        a->dropped++;
    }
    pthread_mutex_unlock(&a->mu);
    if (queued) {
        curl_multi_wakeup(a->multi);
        return;
    }
    aster_free(ev->job_name);
    aster_free(ev->webhook);
    aster_free(ev->error);
    aster_free(ev);
}

static event *event_new(ev_kind kind, const aster_job *job)
{
    event *ev = aster_calloc(1, sizeof(*ev));

    ev->kind = kind;
    snprintf(ev->job_id, sizeof(ev->job_id), "%s", job->id);
    ev->job_name = aster_strdup(job->name ? job->name : "");
    ev->webhook = aster_strdup(job->alert_webhook);
    ev->after_failures = job->alert_after_failures;
    return ev;
}

void aster_alerter_on_final(aster_alerter *a, const aster_job *job, const aster_exec *ex)
{
    event *ev;

    if (!a || !job || !ex)
        return;
    if (ex->status != ASTER_EXEC_FAILED && ex->status != ASTER_EXEC_TIMED_OUT)
        return; /* a success ends a streak by itself: the store counts from it */
    ev = event_new(EV_FINAL, job);
    snprintf(ev->exec_id, sizeof(ev->exec_id), "%s", ex->id);
    ev->status = ex->status;
    ev->attempt = ex->attempt;
    ev->error = aster_strdup(ex->error);
    post(a, ev);
}

void aster_alerter_on_missed(aster_alerter *a, const aster_job *job, int64_t n,
                             aster_time_us first_at, aster_time_us last_at)
{
    event *ev;

    if (!a || !job || n <= 0)
        return;
    ev = event_new(EV_MISSED, job);
    ev->n = n;
    ev->first_at = first_at;
    ev->last_at = last_at;
    post(a, ev);
}
