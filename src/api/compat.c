/* compat.c — the one place that knows the shapes of the systems Aster
 * replaces (../shared/seeds/, docs/migrating.md): their routes, mapped onto
 * Aster's own handlers, and their job fields, translated once before
 * Aster's validation.  Switched off whole by --no-compat / ASTER_COMPAT=0
 * (http.c then never consults the table, req.c never calls the aliases).
 *
 * Every route here is a wrapper: it calls Aster's handler and reshapes the
 * answer, adding what the old client reads next to Aster's own fields.  Only
 * two answers need what no handler gives in one call, and read the store:
 * the failed-executions list (failed or timed out) and the queue stats.
 *
 * Who runs where: like every handler, on libmicrohttpd's threads; nothing
 * here keeps state between requests. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "core/job_json.h"
#include "util/limits.h"
#include "util/mem.h"
#include "util/time.h"

/* ---- job fields --------------------------------------------------------- */

typedef enum {
    AL_RENAME,   /* same value, Aster's name */
    AL_NOT,      /* isActive: paused = !isActive */
    AL_STATUS,   /* "active" | "paused" -> paused */
    AL_INTERVAL, /* "30s", "5m", "00:05:00", seconds -> milliseconds */
} alias_kind;

/* Each old name once; two rows with one `field` are two aliases of it. */
static const struct alias {
    const char *old;   /* the old system's field */
    const char *field; /* Aster's */
    alias_kind kind;
} aliases[] = {
    {"cron_expr", "schedule", AL_RENAME},        /* seeds 000/001 */
    {"maxRetryCount", "max_retries", AL_RENAME}, /* seed 002 */
    {"isActive", "paused", AL_NOT},              /* seed 002 */
    {"status", "paused", AL_STATUS},             /* seeds 000/001 */
    {"timeout", "timeout_ms", AL_INTERVAL},      /* seeds 000/001: a PostgreSQL INTERVAL */
};

/* Seed 002's one-off switch: not an alias of one field (see recurring()). */
#define RECURRING "isRecurring"

static int interval_error(aster_err *err)
{
    return aster_err_set(err, ASTER_EINVAL, "timeout",
                         "must be an interval (\"30s\", \"5m\", \"1h30m\", \"00:05:00\") or a "
                         "number of seconds, between 1ms and 24h");
}

/* "HH:MM:SS" (how PostgreSQL prints an INTERVAL) into seconds. */
static int hms_seconds(const char *s, int64_t *out)
{
    int h, m, sec, n = 0;
    if (sscanf(s, "%d:%d:%d%n", &h, &m, &sec, &n) != 3 || s[n] || h < 0 || m < 0 || m > 59 ||
        sec < 0 || sec > 59 || !isdigit((unsigned char)s[0]))
        return -1;
    *out = (int64_t)h * 3600 + m * 60 + sec;
    return 0;
}

/* The old `timeout` as milliseconds, checked against Aster's bounds so that
 * the error names the field the client sent. */
static int interval_ms(const json_t *v, int64_t *out, aster_err *err)
{
    const int64_t max_s = ASTER_TIMEOUT_MS_MAX / 1000;
    int64_t ms, secs;

    if (json_is_integer(v)) {
        secs = json_integer_value(v);
        if (secs < 1 || secs > max_s)
            return interval_error(err);
        ms = secs * 1000;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d * 1000 >= 1 && d <= (double)max_s))
            return interval_error(err);
        ms = (int64_t)(d * 1000 + 0.5);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t digits = strspn(s, "0123456789");
        int64_t us;
        if (*s && !s[digits] && digits <= 6) {
            ms = strtoll(s, NULL, 10) * 1000; /* bare seconds, as a string */
        } else if (!hms_seconds(s, &secs)) {
            ms = secs * 1000;
        } else {
            aster_err tmp = {0};
            if (aster_duration_parse(s, "timeout", &us, &tmp))
                return interval_error(err);
            ms = us / 1000;
        }
    } else {
        return interval_error(err);
    }
    if (ms < 1 || ms > ASTER_TIMEOUT_MS_MAX)
        return interval_error(err);
    *out = ms;
    return 0;
}

/* The value of Aster's field for the old value `v` (new reference), or NULL
 * with `err` set naming the old field.  null stays null (in a merge patch it
 * resets the field). */
static json_t *translate(const struct alias *a, json_t *v, aster_err *err)
{
    int64_t ms;

    if (json_is_null(v) || a->kind == AL_RENAME)
        return json_incref(v);
    switch (a->kind) {
    case AL_NOT:
        if (json_is_boolean(v))
            return json_boolean(!json_is_true(v));
        aster_err_set(err, ASTER_EINVAL, a->old, "must be true or false");
        return NULL;
    case AL_STATUS:
        if (json_is_string(v) && !strcmp(json_string_value(v), "active"))
            return json_false();
        if (json_is_string(v) && !strcmp(json_string_value(v), "paused"))
            return json_true();
        aster_err_set(err, ASTER_EINVAL, a->old, "must be \"active\" or \"paused\"");
        return NULL;
    case AL_INTERVAL:
        return interval_ms(v, &ms, err) ? NULL : json_integer(ms);
    case AL_RENAME:
        break;
    }
    return json_incref(v);
}

/* A document naming one field twice is ambiguous: refused, naming both. */
static int check_mixes(const json_t *doc, aster_err *err)
{
    for (size_t i = 0; i < ASTER_NELEM(aliases); i++) {
        const struct alias *a = &aliases[i];
        if (!json_object_get(doc, a->old))
            continue;
        if (json_object_get(doc, a->field))
            return aster_err_set(err, ASTER_EINVAL, a->old,
                                 "'%s' and '%s' are one field ('%s' is the older name); give "
                                 "one of them",
                                 a->old, a->field, a->old);
        for (size_t j = i + 1; j < ASTER_NELEM(aliases); j++)
            if (!strcmp(aliases[j].field, a->field) && json_object_get(doc, aliases[j].old))
                return aster_err_set(err, ASTER_EINVAL, a->old,
                                     "'%s' and '%s' both set '%s'; give one of them", a->old,
                                     aliases[j].old, a->field);
    }
    return 0;
}

/* Seed 002: `isRecurring: false` with an RFC 3339 timestamp as the schedule
 * is a one-off, which Aster spells "@at TIMESTAMP".  Runs after the renames,
 * so the schedule may have come as cron_expr. */
static int recurring(json_t *doc, aster_err *err)
{
    json_t *v = json_object_get(doc, RECURRING), *s = json_object_get(doc, "schedule");
    const char *sched = json_is_string(s) ? json_string_value(s) : NULL;
    aster_time_us at = 0;
    char buf[ASTER_TIME_BUFSZ + 8], t[ASTER_TIME_BUFSZ];
    int stamp, oneoff;

    if (!v)
        return 0;
    if (!json_is_boolean(v) && !json_is_null(v))
        return aster_err_set(err, ASTER_EINVAL, RECURRING, "must be true or false");
    stamp = sched && !aster_time_parse_rfc3339(sched, "schedule", &at, NULL);
    oneoff = sched && !strncasecmp(sched, "@at ", 4);
    if (json_is_false(v) && !stamp && !oneoff)
        return aster_err_set(err, ASTER_EINVAL, RECURRING,
                             "a job that does not recur needs a timestamp as its schedule "
                             "(RFC 3339, e.g. 2026-03-08T06:30:00Z)");
    if (json_is_true(v) && (stamp || oneoff))
        return aster_err_set(err, ASTER_EINVAL, RECURRING,
                             "a timestamp schedule fires once: set isRecurring to false");
    if (json_is_false(v) && stamp) {
        snprintf(buf, sizeof(buf), "@at %s", aster_time_format_ms(at, t, sizeof(t)));
        json_object_set_new(doc, "schedule", json_string(buf));
    }
    json_object_del(doc, RECURRING);
    return 0;
}

int aster_compat_job_fields(json_t *doc, aster_err *err)
{
    if (!json_is_object(doc))
        return 0;
    /* Everything is checked before anything is rewritten. */
    if (check_mixes(doc, err))
        return ASTER_EINVAL;
    for (size_t i = 0; i < ASTER_NELEM(aliases); i++) {
        json_t *v = json_object_get(doc, aliases[i].old), *nv;
        if (!v)
            continue;
        nv = translate(&aliases[i], v, err);
        if (!nv)
            return ASTER_EINVAL;
        json_object_set_new(doc, aliases[i].field, nv);
        json_object_del(doc, aliases[i].old);
    }
    return recurring(doc, err);
}

/* ---- answers ------------------------------------------------------------ */

/* A success whose JSON body can be reshaped.  Aster's job answers come as
 * text (aster_resp_jw); the old forms are rare enough to parse them back. */
static int ok(aster_resp *resp)
{
    if (!resp->json && resp->text && resp->content_type &&
        !strcmp(resp->content_type, "application/json")) {
        resp->json = json_loads(resp->text, 0, NULL);
        aster_free(resp->text);
        resp->text = NULL;
    }
    return resp->status >= 200 && resp->status < 300 && json_is_object(resp->json);
}

static void copy_field(json_t *o, const char *to, const char *from)
{
    json_t *v = json_object_get(o, from);
    json_object_set(o, to, v ? v : json_null());
}

/* Every old job answer: Aster's job, and its id as `jobId`. */
static void job_answer(aster_resp *resp)
{
    if (ok(resp))
        copy_field(resp->json, "jobId", "id");
}

/* The old systems' execution statuses, upper case; Aster's statuses that
 * they lacked keep their name (TIMED_OUT, SKIPPED, MISSED, CANCELLED). */
static void old_status(json_t *o)
{
    static const struct {
        const char *aster, *old;
    } map[] = {{"succeeded", "SUCCESS"}, {"failed", "FAILED"}};
    const char *s = json_string_value(json_object_get(o, "status"));
    char up[32];
    size_t i;

    if (!s)
        return;
    for (i = 0; i < ASTER_NELEM(map); i++)
        if (!strcmp(s, map[i].aster)) {
            json_object_set_new(o, "status", json_string(map[i].old));
            return;
        }
    for (i = 0; i + 1 < sizeof(up) && s[i]; i++)
        up[i] = (char)toupper((unsigned char)s[i]);
    up[i] = '\0';
    json_object_set_new(o, "status", json_string(up));
}

/* An execution's old fields, beside Aster's (NULL: attempts - 1). */
typedef struct field_map {
    const char *old, *aster;
} field_map;

static const field_map exec_003[] = {
    {"executionId", "id"},          {"jobId", "job_id"},         {"scheduledTime", "scheduled_at"},
    {"executedTime", "started_at"}, {"duration", "duration_ms"}, {"httpStatus", "http_status"},
    {"errorMessage", "error"},      {"retryCount", NULL},
};
static const field_map exec_004[] = {
    {"executionId", "id"},       {"jobId", "job_id"},   {"completed_at", "finished_at"},
    {"duration", "duration_ms"}, {"retry_count", NULL},
};
static const field_map alert_old[] = {{"jobId", "job_id"}, {"executionId", "execution_id"}};

typedef struct shape {
    const field_map *fields;
    size_t n;
    int status; /* upper-case execution status */
} shape;

static const shape shape_003 = {exec_003, ASTER_NELEM(exec_003), 1};
static const shape shape_004 = {exec_004, ASTER_NELEM(exec_004), 1};
static const shape shape_alert = {alert_old, ASTER_NELEM(alert_old), 0};

static void reshape(json_t *o, const shape *sh)
{
    for (size_t i = 0; i < sh->n; i++) {
        if (sh->fields[i].aster) {
            copy_field(o, sh->fields[i].old, sh->fields[i].aster);
        } else {
            json_int_t a = json_integer_value(json_object_get(o, "attempt"));
            json_object_set_new(o, sh->fields[i].old, json_integer(a > 1 ? a - 1 : 0));
        }
    }
    if (sh->status)
        old_status(o);
}

/* A page {"items", "next_cursor"} keeps its keys and gains the list under
 * the old name (`key`), each item reshaped. */
static void page_answer(aster_resp *resp, const char *key, const shape *sh)
{
    json_t *items, *v;
    size_t i;

    if (!ok(resp))
        return;
    items = json_object_get(resp->json, "items");
    json_array_foreach(items, i, v)
    {
        reshape(v, sh);
    }
    json_object_set(resp->json, key, items);
}

/* ---- seed 003 and 004: jobs --------------------------------------------- */

/* POST /jobs serves both seed 004 ({schedule, api, type}) and seeds 000/001
 * ({name, cron_expr, command, ...}): the aliases make both Aster's. */
static void job_create(aster_req *req, aster_resp *resp)
{
    aster_h_job_create(req, resp);
    job_answer(resp);
}

static void job_get(aster_req *req, aster_resp *resp)
{
    aster_h_job_get(req, resp);
    job_answer(resp);
}

/* The old PUTs change the fields sent and keep the rest: Aster's merge
 * patch, not its full replace. */
static void job_update(aster_req *req, aster_resp *resp)
{
    aster_h_job_patch(req, resp);
    job_answer(resp);
}

static void job_executions_003(aster_req *req, aster_resp *resp)
{
    aster_h_job_executions(req, resp);
    page_answer(resp, "executions", &shape_003);
}

static void executions_003(aster_req *req, aster_resp *resp)
{
    aster_h_exec_list(req, resp);
    page_answer(resp, "executions", &shape_003);
}

static void job_executions_004(aster_req *req, aster_resp *resp)
{
    aster_h_job_executions(req, resp);
    page_answer(resp, "executions", &shape_004);
}

static void job_trigger(aster_req *req, aster_resp *resp)
{
    aster_h_job_trigger(req, resp);
    if (ok(resp))
        reshape(resp->json, &shape_004);
}

static void job_alerts(aster_req *req, aster_resp *resp)
{
    aster_h_job_alerts(req, resp);
    page_answer(resp, "alerts", &shape_alert);
}

/* ---- seed 003 and 004: observability ------------------------------------ */

static json_int_t stat_int(const json_t *o, const char *group, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(o, group), key));
}

/* GET /api/metrics (003) and /observability/metrics (004): Aster's stats
 * with the old figures beside them.  Counts are this process's last hour;
 * averageDrift is the median drift (Aster keeps percentiles). */
static void metrics(aster_req *req, aster_resp *resp)
{
    json_t *o, *hour, *v;
    const char *k;
    json_int_t total = 0;

    aster_h_stats(req, resp);
    if (!ok(resp))
        return;
    o = resp->json;
    hour = json_object_get(json_object_get(o, "executions"), "last_hour");
    json_object_foreach(hour, k, v)
    {
        total += json_integer_value(v);
    }
    json_object_set_new(o, "totalJobs", json_integer(stat_int(o, "jobs", "total")));
    json_object_set_new(o, "activeJobs", json_integer(stat_int(o, "jobs", "active")));
    json_object_set_new(o, "pausedJobs", json_integer(stat_int(o, "jobs", "paused")));
    json_object_set_new(o, "totalExecutions", json_integer(total));
    json_object_set_new(o, "successfulExecutions",
                        json_integer(json_integer_value(json_object_get(hour, "succeeded"))));
    json_object_set_new(o, "failedExecutions",
                        json_integer(json_integer_value(json_object_get(hour, "failed")) +
                                     json_integer_value(json_object_get(hour, "timed_out"))));
    copy_field(o, "activeExecutions", "in_flight");
    json_object_set(o, "averageDrift", json_object_get(json_object_get(o, "drift_ms"), "p50"));
    json_object_set(o, "averageDuration",
                    json_object_get(json_object_get(o, "duration_ms"), "avg"));
}

static void health(aster_req *req, aster_resp *resp)
{
    char now[ASTER_TIME_BUFSZ];
    json_t *reason;

    aster_h_readyz(req, resp);
    if (!json_is_object(resp->json))
        return;
    reason = json_object_get(resp->json, "reason");
    json_object_set_new(resp->json, "status",
                        json_string(resp->status == MHD_HTTP_OK ? "healthy" : "unhealthy"));
    json_object_set_new(resp->json, "database", json_string(reason ? "disconnected" : "connected"));
    json_object_set_new(resp->json, "timestamp",
                        json_string(aster_time_format_ms(aster_time_now(), now, sizeof(now))));
}

static void alerts(aster_req *req, aster_resp *resp)
{
    aster_h_alert_list(req, resp);
    page_answer(resp, "alerts", &shape_alert);
}

static void executions_recent(aster_req *req, aster_resp *resp)
{
    aster_h_exec_list(req, resp);
    page_answer(resp, "executions", &shape_004);
}

/* The old systems had one FAILED; Aster splits it into failed and
 * timed_out.  No handler lists both at once, so two store pages, newest
 * first each, are merged by id (UUIDv7: fire order). */
static void executions_failed(aster_req *req, aster_resp *resp)
{
    static const aster_exec_status failed[2] = {ASTER_EXEC_FAILED, ASTER_EXEC_TIMED_OUT};
    aster_exec *ex[2] = {NULL, NULL};
    size_t n[2] = {0, 0}, at[2] = {0, 0}, taken = 0;
    aster_exec_filter f = {.status = -1};
    aster_err err = {0};
    const char *last = NULL;
    json_t *items = NULL;
    int limit;

    if (aster_req_limit(req, resp, &limit) || aster_req_cursor(req, resp, &f.before_id) ||
        aster_req_time(req, resp, "since", &f.since))
        return;
    f.limit = aster_page_fetch(limit);
    for (int k = 0; k < 2; k++) {
        f.status = (int)failed[k];
        if (aster_store_exec_list(req->api->opts.store, &f, &ex[k], &n[k], &err)) {
            aster_resp_err(resp, &err);
            goto out;
        }
    }
    items = json_array();
    while (taken < (size_t)f.limit && (at[0] < n[0] || at[1] < n[1])) {
        int k =
            at[1] >= n[1] || (at[0] < n[0] && strcmp(ex[0][at[0]].id, ex[1][at[1]].id) > 0) ? 0 : 1;
        const aster_exec *e = &ex[k][at[k]++];
        if (taken++ < (size_t)limit) {
            json_array_append_new(items, aster_exec_to_json(e, false));
            last = e->id;
        }
    }
    aster_resp_page(resp, items, last, taken, limit);
    page_answer(resp, "executions", &shape_004);
out:
    for (int k = 0; k < 2; k++)
        aster_store_free_execs(ex[k], n[k]);
}

/* ---- seed 002: queue stats ---------------------------------------------- */

typedef struct queue_counts {
    int64_t ready, processing, retry, completed, failed;
} queue_counts;

/* Adds the executions in `status` to `q`, a store page at a time.
 * TODO(store): one counting query (see docs/migrating.md) instead of a walk
 * over every row; the walk is exact but grows with the history kept. */
/* Pending executions split into ready (due) and retry (waiting out a
 * backoff).  The pending set is the queue, small next to the history. */
static int count_pending(aster_store *st, aster_time_us now, queue_counts *q, aster_err *err)
{
    aster_exec_filter f = {.status = ASTER_EXEC_PENDING, .limit = ASTER_STORE_MAX_PAGE};
    char last[ASTER_ID_LEN + 1];

    for (;;) {
        aster_exec *ex = NULL;
        size_t n = 0;
        if (aster_store_exec_list(st, &f, &ex, &n, err))
            return err->code;
        for (size_t i = 0; i < n; i++) {
            if (ex[i].not_before <= now)
                q->ready++;
            else if (ex[i].attempt > 1)
                q->retry++;
        }
        if (n)
            memcpy(last, ex[n - 1].id, sizeof(last));
        aster_store_free_execs(ex, n);
        if (n < (size_t)f.limit)
            return 0;
        f.before_id = last;
    }
}

/* GET /queue/stats: the old Redis queues, counted from execution states.
 * ready: pending and due; processing: running; retry: pending, waiting out
 * a retry backoff; completed: succeeded; failed: failed or timed out. */
static void queue_stats(aster_req *req, aster_resp *resp)
{
    queue_counts q = {0};
    int64_t failed = 0, timed_out = 0;
    aster_store *st = req->api->opts.store;
    aster_err err = {0};

    if (count_pending(st, aster_time_now(), &q, &err) ||
        aster_store_exec_count(st, ASTER_EXEC_RUNNING, &q.processing, &err) ||
        aster_store_exec_count(st, ASTER_EXEC_SUCCEEDED, &q.completed, &err) ||
        aster_store_exec_count(st, ASTER_EXEC_FAILED, &failed, &err) ||
        aster_store_exec_count(st, ASTER_EXEC_TIMED_OUT, &timed_out, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    q.failed = failed + timed_out;
    aster_resp_json(resp, MHD_HTTP_OK,
                    json_pack("{s:I,s:I,s:I,s:I,s:I}", "ready", (json_int_t)q.ready, "processing",
                              (json_int_t)q.processing, "retry", (json_int_t)q.retry, "completed",
                              (json_int_t)q.completed, "failed", (json_int_t)q.failed));
}

/* ---- the table ----------------------------------------------------------- */

const aster_route aster_compat_routes[] = {
    /* seed 003 */
    {"POST", "/api/jobs", job_create, 0},
    {"PUT", "/api/jobs/{id}", job_update, 0},
    {"GET", "/api/jobs/{id}", job_get, 0},
    {"GET", "/api/jobs/{id}/executions", job_executions_003, 0},
    {"GET", "/api/executions", executions_003, 0},
    {"GET", "/api/metrics", metrics, 0},
    /* seed 004; POST /jobs also takes the documents of seeds 000/001 */
    {"POST", "/jobs", job_create, 0},
    {"PUT", "/jobs/{id}", job_update, 0},
    {"GET", "/jobs/{id}", job_get, 0},
    {"DELETE", "/jobs/{id}", aster_h_job_delete, 0},
    {"GET", "/jobs/{id}/executions", job_executions_004, 0},
    {"POST", "/jobs/{id}/trigger", job_trigger, 0},
    {"GET", "/jobs/{id}/alerts", job_alerts, 0},
    {"GET", "/observability/health", health, ROUTE_OPEN}, /* a probe, like /readyz */
    {"GET", "/observability/metrics", metrics, 0},
    {"GET", "/observability/alerts", alerts, 0},
    {"GET", "/observability/executions/recent", executions_recent, 0},
    {"GET", "/observability/executions/failed", executions_failed, 0},
    /* seed 002 (its jobs live at Aster's own /api/v1/jobs) */
    {"GET", "/queue/stats", queue_stats, 0},
};
const size_t aster_compat_nroutes = ASTER_NELEM(aster_compat_routes);
/* http.c numbers Aster's routes and these together below ASTER_MAX_ROUTES. */
_Static_assert(ASTER_NELEM(aster_compat_routes) <= ASTER_MAX_ROUTES / 4,
               "the compatibility table takes at most a quarter of ASTER_MAX_ROUTES");
