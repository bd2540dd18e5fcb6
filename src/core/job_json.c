/* job_json.c — the job document, in and out.
 *
 * One validation path: create, full replace and merge patch all end in
 * aster_job_from_json over a complete document, so a rule is written once. */
#include "core/job_json.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cron/cron.h"
#include "store/store.h"
#include "util/jsonw.h"
#include "util/limits.h"
#include "util/mem.h"
#include "util/uuid.h"

/* Every field a job document may carry, writable or read-only. */
static const char *const writable[] = {
    "name",
    "schedule",
    "timezone",
    "type",
    "api",
    "method",
    "headers",
    "body",
    "command",
    "args",
    "env",
    "cwd",
    "max_retries",
    "retry_backoff_ms",
    "retry_backoff_max_ms",
    "timeout_ms",
    "overlap",
    "misfire",
    "misfire_grace_ms",
    "dst_gap",
    "dst_overlap",
    "paused",
    "alert_webhook",
    "alert_after_failures",
    "alert_if_no_success_for",
};
static const char *const readonly[] = {"id", "created_at", "updated_at", "next_fire_at"};

static int known_field(const char *k)
{
    for (size_t i = 0; i < ASTER_NELEM(writable); i++)
        if (!strcmp(k, writable[i]))
            return 1;
    for (size_t i = 0; i < ASTER_NELEM(readonly); i++)
        if (!strcmp(k, readonly[i]))
            return 1;
    return 0;
}

/* ---- typed getters: absent (or null) leaves *out as the default ---- */

static int get_str(const json_t *doc, const char *key, size_t max, const char **out, aster_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return aster_err_set(err, ASTER_EINVAL, key, "must be a string");
    if (json_string_length(v) > max)
        return aster_err_set(err, ASTER_EINVAL, key, "is longer than %zu bytes", max);
    *out = json_string_value(v);
    return 0;
}

static int get_int(const json_t *doc, const char *key, int64_t min, int64_t max, int64_t *out,
                   aster_err *err)
{
    const json_t *v = json_object_get(doc, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return aster_err_set(err, ASTER_EINVAL, key, "must be an integer");
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return aster_err_set(err, ASTER_EINVAL, key, "%lld is out of range %lld-%lld", (long long)n,
                             (long long)min, (long long)max);
    *out = n;
    return 0;
}

static int get_enum(const json_t *doc, const char *key, int (*parse)(const char *), int *out,
                    const char *choices, aster_err *err)
{
    const char *s = NULL;
    int rc = get_str(doc, key, 64, &s, err);
    if (rc || !s)
        return rc;
    int v = parse(s);
    if (v < 0)
        return aster_err_set(err, ASTER_EINVAL, key, "'%s' is not one of %s", s, choices);
    *out = v;
    return 0;
}

static int valid_name(const char *s, aster_err *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > ASTER_NAME_MAX)
        return aster_err_set(err, ASTER_EINVAL, "name", "must be 1-%d characters", ASTER_NAME_MAX);
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return aster_err_set(err, ASTER_EINVAL, "name",
                                 "may hold only letters, digits, '.', '_' and '-'");
    if (aster_uuid_is_uuid(s))
        return aster_err_set(err, ASTER_EINVAL, "name",
                             "must not have the form of a UUID (ids are UUIDs)");
    return 0;
}

/* http(s) URL with a host, checked by libcurl's own parser. */
static int valid_url(const char *s, const char *field, aster_err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = 0;

    if (!*s || curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        rc = aster_err_set(err, ASTER_EINVAL, field, "'%.200s' is not a valid URL", s);
    else if (strcmp(scheme, "http") && strcmp(scheme, "https"))
        rc = aster_err_set(err, ASTER_EINVAL, field, "scheme '%s' is not http or https", scheme);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int valid_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

static int check_headers(const json_t *h, aster_err *err)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(h))
        return aster_err_set(err, ASTER_EINVAL, "headers", "must be an object of strings");
    if (json_object_size(h) > ASTER_HEADERS_MAX)
        return aster_err_set(err, ASTER_EINVAL, "headers", "more than %d headers",
                             ASTER_HEADERS_MAX);
    json_object_foreach((json_t *)h, k, v)
    {
        char field[ASTER_HEADER_NAME_MAX + 16];
        snprintf(field, sizeof(field), "headers.%.*s", ASTER_HEADER_NAME_MAX, k);
        if (strlen(k) > ASTER_HEADER_NAME_MAX || !valid_token(k))
            return aster_err_set(err, ASTER_EINVAL, field, "is not a valid header name");
        if (!json_is_string(v))
            return aster_err_set(err, ASTER_EINVAL, field, "must be a string");
        if (json_string_length(v) > ASTER_HEADER_VALUE_MAX || has_ctl(json_string_value(v)))
            return aster_err_set(err, ASTER_EINVAL, field,
                                 "must be at most %d bytes without control characters",
                                 ASTER_HEADER_VALUE_MAX);
    }
    return 0;
}

static int check_args(const json_t *a, aster_err *err)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(a))
        return aster_err_set(err, ASTER_EINVAL, "args", "must be an array of strings");
    if (json_array_size(a) > ASTER_ARGS_MAX)
        return aster_err_set(err, ASTER_EINVAL, "args", "more than %d arguments", ASTER_ARGS_MAX);
    json_array_foreach(a, i, v)
    {
        char field[32];
        snprintf(field, sizeof(field), "args[%zu]", i);
        if (!json_is_string(v))
            return aster_err_set(err, ASTER_EINVAL, field, "must be a string");
        if (json_string_length(v) > ASTER_ARG_MAX)
            return aster_err_set(err, ASTER_EINVAL, field, "is longer than %d bytes",
                                 ASTER_ARG_MAX);
    }
    return 0;
}

static int check_env(const json_t *e, aster_err *err)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(e))
        return aster_err_set(err, ASTER_EINVAL, "env", "must be an object of strings");
    if (json_object_size(e) > ASTER_ENV_MAX)
        return aster_err_set(err, ASTER_EINVAL, "env", "more than %d variables", ASTER_ENV_MAX);
    json_object_foreach((json_t *)e, k, v)
    {
        char field[ASTER_ENV_NAME_MAX + 8];
        int ok = strlen(k) <= ASTER_ENV_NAME_MAX && (isalpha((unsigned char)k[0]) || k[0] == '_');
        for (const char *p = k; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '_';
        snprintf(field, sizeof(field), "env.%.*s", ASTER_ENV_NAME_MAX, k);
        if (!ok)
            return aster_err_set(err, ASTER_EINVAL, field, "is not a valid variable name");
        if (!json_is_string(v))
            return aster_err_set(err, ASTER_EINVAL, field, "must be a string");
        if (json_string_length(v) > ASTER_ENV_VALUE_MAX)
            return aster_err_set(err, ASTER_EINVAL, field, "is longer than %d bytes",
                                 ASTER_ENV_VALUE_MAX);
    }
    return 0;
}

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

/* Builds the stored target document (new reference) from `doc`. */
static int build_target(const json_t *doc, const aster_job_rules *rules, json_t **out,
                        aster_target_kind *kind, aster_err *err)
{
    const json_t *api = json_object_get(doc, "api"), *cmd = json_object_get(doc, "command");
    const char *s = NULL;
    json_t *t;
    int has_api = api && !json_is_null(api), has_cmd = cmd && !json_is_null(cmd);
    static const char *const http_only[] = {"method", "headers", "body"};
    static const char *const cmd_only[] = {"args", "env", "cwd"};

    if (has_api && has_cmd)
        return aster_err_set(err, ASTER_EINVAL, "api",
                             "give exactly one target: 'api' (HTTP) or 'command', not both");
    if (!has_api && !has_cmd)
        return aster_err_set(err, ASTER_EINVAL, "api",
                             "a target is required: 'api' (an HTTP URL) or 'command'");
    /* A field of the other kind of target is a mistake worth naming. */
    for (size_t i = 0; i < 3; i++) {
        const char *f = has_api ? cmd_only[i] : http_only[i];
        const json_t *v = json_object_get(doc, f);
        if (v && !json_is_null(v))
            return aster_err_set(err, ASTER_EINVAL, f, "does not apply to %s jobs",
                                 has_api ? "HTTP" : "command");
    }
    if (has_api) {
        const json_t *h = json_object_get(doc, "headers");
        const char *method = "POST", *body = NULL;
        if (get_str(doc, "api", ASTER_URL_MAX, &s, err) || valid_url(s, "api", err) ||
            get_str(doc, "method", 16, &method, err))
            return ASTER_EINVAL;
        char up[17];
        size_t i;
        for (i = 0; i < 16 && method[i]; i++)
            up[i] = (char)toupper((unsigned char)method[i]);
        up[i] = '\0';
        for (i = 0; i < ASTER_NELEM(methods) && strcmp(methods[i], up); i++)
            ;
        if (i == ASTER_NELEM(methods))
            return aster_err_set(err, ASTER_EINVAL, "method",
                                 "'%s' is not one of GET, POST, PUT, PATCH, DELETE, HEAD, "
                                 "OPTIONS",
                                 method);
        if (h && !json_is_null(h) && check_headers(h, err))
            return ASTER_EINVAL;
        if (get_str(doc, "body", ASTER_JOB_BODY_MAX, &body, err))
            return ASTER_EINVAL;
        t = json_pack("{s:s,s:s}", "api", s, "method", methods[i]);
        if (h && !json_is_null(h))
            json_object_set(t, "headers", (json_t *)h);
        if (body)
            json_object_set_new(t, "body", json_string(body));
        *kind = ASTER_TARGET_HTTP;
    } else {
        const json_t *a = json_object_get(doc, "args"), *e = json_object_get(doc, "env");
        const char *cwd = NULL;
        if (get_str(doc, "command", ASTER_PATH_MAX, &s, err))
            return ASTER_EINVAL;
        if (!*s)
            return aster_err_set(err, ASTER_EINVAL, "command", "must not be empty");
        if (has_ctl(s))
            return aster_err_set(err, ASTER_EINVAL, "command", "holds control characters");
        if ((a && !json_is_null(a) && check_args(a, err)) ||
            (e && !json_is_null(e) && check_env(e, err)) ||
            get_str(doc, "cwd", ASTER_PATH_MAX, &cwd, err))
            return ASTER_EINVAL;
        if (cwd && cwd[0] != '/')
            return aster_err_set(err, ASTER_EINVAL, "cwd", "must be an absolute path");
        if (!rules->allow_commands)
            return aster_err_set(err, ASTER_EPERM, "command",
                                 "command jobs are disabled on this server; the operator "
                                 "must start aster with --allow-commands");
        t = json_pack("{s:s}", "command", s);
        json_object_set_new(t, "args", a && !json_is_null(a) ? json_deep_copy(a) : json_array());
        json_object_set_new(t, "env", e && !json_is_null(e) ? json_deep_copy(e) : json_object());
        if (cwd)
            json_object_set_new(t, "cwd", json_string(cwd));
        *kind = ASTER_TARGET_COMMAND;
    }
    *out = t;
    return 0;
}

static int parse_delivery(const char *s)
{
    return aster_delivery_parse(s);
}
static int parse_overlap(const char *s)
{
    return aster_overlap_parse(s);
}
static int parse_misfire(const char *s)
{
    return aster_misfire_parse(s);
}
static int parse_gap(const char *s)
{
    aster_dst_gap g;
    return aster_dst_gap_parse(s, &g, NULL) ? -1 : (int)g;
}
static int parse_overlap_dst(const char *s)
{
    aster_dst_overlap o;
    return aster_dst_overlap_parse(s, &o, NULL) ? -1 : (int)o;
}

int aster_job_from_json(const json_t *doc, const aster_job_rules *rules, aster_job *job,
                        aster_err *err)
{
    const char *k, *name = NULL, *schedule = NULL, *tzname = "UTC", *webhook = NULL, *nosucc = NULL;
    const json_t *v;
    json_t *target = NULL;
    aster_cron *cron = NULL;
    const aster_tz *tz;
    aster_target_kind kind = ASTER_TARGET_HTTP;
    int delivery = ASTER_DELIVERY_ATLEAST_ONCE, overlap = ASTER_OVERLAP_ALLOW,
        misfire = ASTER_MISFIRE_RUN_ONCE, gap = ASTER_DST_GAP_AUTO, dover = ASTER_DST_OVERLAP_AUTO;
    int64_t retries = 3, backoff = 1000, backoff_max = 3600000, timeout = 30000, grace = 60000,
            after_failures = 0, nosucc_us = 0;
    bool paused = false;
    int rc = ASTER_EINVAL;

    if (!json_is_object(doc))
        return aster_err_set(err, ASTER_EINVAL, "", "the job must be a JSON object");
    json_object_foreach((json_t *)doc, k, v)
    {
        if (!known_field(k))
            return aster_err_set(err, ASTER_EINVAL, k, "is not a job field");
    }
    if (get_str(doc, "name", ASTER_NAME_MAX * 4, &name, err) || (name && valid_name(name, err)))
        goto out;
    if (get_str(doc, "schedule", ASTER_SCHEDULE_MAX, &schedule, err))
        goto out;
    if (!schedule) {
        aster_err_set(err, ASTER_EINVAL, "schedule", "is required");
        goto out;
    }
    if (get_str(doc, "timezone", 128, &tzname, err) || aster_tz_get(tzname, &tz, err))
        goto out;
    if (aster_cron_parse(schedule, &cron, err))
        goto out;
    if (get_enum(doc, "type", parse_delivery, &delivery, "ATLEAST_ONCE, ATMOST_ONCE", err) ||
        get_enum(doc, "overlap", parse_overlap, &overlap, "allow, forbid, replace", err) ||
        get_enum(doc, "misfire", parse_misfire, &misfire, "skip, run_once, run_all", err) ||
        get_enum(doc, "dst_gap", parse_gap, &gap, "auto, shift, skip", err) ||
        get_enum(doc, "dst_overlap", parse_overlap_dst, &dover, "auto, first, last, both", err))
        goto out;
    if (get_int(doc, "max_retries", 0, ASTER_MAX_RETRIES_MAX, &retries, err) ||
        get_int(doc, "retry_backoff_ms", 1, ASTER_BACKOFF_MS_MAX, &backoff, err) ||
        get_int(doc, "retry_backoff_max_ms", 1, ASTER_BACKOFF_MS_MAX, &backoff_max, err) ||
        get_int(doc, "timeout_ms", 1, ASTER_TIMEOUT_MS_MAX, &timeout, err) ||
        get_int(doc, "misfire_grace_ms", 0, ASTER_GRACE_MS_MAX, &grace, err) ||
        get_int(doc, "alert_after_failures", 0, ASTER_ALERT_AFTER_MAX, &after_failures, err))
        goto out;
    if (backoff_max < backoff) {
        aster_err_set(err, ASTER_EINVAL, "retry_backoff_max_ms",
                      "must be at least retry_backoff_ms (%lld)", (long long)backoff);
        goto out;
    }
    v = json_object_get(doc, "paused");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            aster_err_set(err, ASTER_EINVAL, "paused", "must be true or false");
            goto out;
        }
        paused = json_is_true(v);
    }
    if (get_str(doc, "alert_webhook", ASTER_URL_MAX, &webhook, err) ||
        (webhook && valid_url(webhook, "alert_webhook", err)))
        goto out;
    if (get_str(doc, "alert_if_no_success_for", 64, &nosucc, err) ||
        (nosucc && aster_duration_parse(nosucc, "alert_if_no_success_for", &nosucc_us, err)))
        goto out;
    if (nosucc && (nosucc_us < ASTER_US_PER_SEC || nosucc_us > ASTER_NO_SUCCESS_MAX_US)) {
        aster_err_set(err, ASTER_EINVAL, "alert_if_no_success_for", "must be between 1s and 366d");
        goto out;
    }
    rc = build_target(doc, rules, &target, &kind, err);
    if (rc)
        goto out;

    /* Everything is valid: only now is `job` written. */
    if (name) {
        aster_free(job->name);
        job->name = aster_strdup(name);
    }
    aster_free(job->schedule);
    job->schedule = aster_strdup(schedule);
    aster_free(job->timezone);
    job->timezone = aster_strdup(aster_tz_name(tz));
    aster_free(job->target);
    job->target = json_dumps(target, JSON_COMPACT | JSON_SORT_KEYS);
    job->target_kind = kind;
    job->delivery = (aster_delivery)delivery;
    job->overlap = (aster_overlap)overlap;
    job->misfire = (aster_misfire)misfire;
    job->dst_gap = gap;
    job->dst_overlap = dover;
    job->max_retries = (int32_t)retries;
    job->retry_backoff_ms = backoff;
    job->retry_backoff_max_ms = backoff_max;
    job->timeout_ms = timeout;
    job->misfire_grace_ms = grace;
    job->paused = paused;
    aster_free(job->alert_webhook);
    job->alert_webhook = aster_strdup(webhook);
    job->alert_after_failures = (int32_t)after_failures;
    job->alert_if_no_success_ms = nosucc_us / 1000;
    rc = 0;
out:
    json_decref(target);
    aster_cron_free(cron);
    return rc;
}

/* The writable part of a job, as a document aster_job_from_json accepts. */
static json_t *job_input_doc(const aster_job *job)
{
    json_t *doc = aster_job_to_json(job);
    if (!doc)
        return NULL;
    for (size_t i = 0; i < ASTER_NELEM(readonly); i++)
        json_object_del(doc, readonly[i]);
    /* Absent and null mean the same on input; drop nulls so a patch that
     * switches the target kind does not trip over the other kind's nulls. */
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(doc, tmp, k, v)
    {
        if (json_is_null(v))
            json_object_del(doc, k);
    }
    return doc;
}

int aster_job_patch(const json_t *patch, const aster_job_rules *rules, aster_job *job,
                    aster_err *err)
{
    const char *k;
    json_t *v, *doc;
    aster_job tmp;
    int rc;

    if (!json_is_object(patch))
        return aster_err_set(err, ASTER_EINVAL, "", "the patch must be a JSON object");
    if (!(doc = job_input_doc(job)))
        return aster_err_set(err, ASTER_EIO, "", "the stored job is not valid UTF-8");
    json_object_foreach((json_t *)patch, k, v)
    {
        if (json_is_null(v))
            json_object_del(doc, k);
        else
            json_object_set(doc, k, v);
    }
    aster_job_copy(&tmp, job);
    rc = aster_job_from_json(doc, rules, &tmp, err);
    if (!rc) {
        aster_job_fini(job);
        *job = tmp;
    } else {
        aster_job_fini(&tmp);
    }
    json_decref(doc);
    return rc;
}

void aster_job_update_next(aster_job *job, aster_time_us after)
{
    aster_cron *cron = NULL;
    const aster_tz *tz = NULL;
    int64_t next = 0;
    aster_dst_policy pol = {(aster_dst_gap)job->dst_gap, (aster_dst_overlap)job->dst_overlap};

    job->next_fire_at = 0;
    if (job->paused || aster_cron_parse(job->schedule, &cron, NULL) ||
        aster_tz_get(job->timezone, &tz, NULL))
        goto out;
    int64_t after_sec = after / ASTER_US_PER_SEC - (after % ASTER_US_PER_SEC < 0);
    if (aster_cron_next(cron, tz, pol, job->created_at / ASTER_US_PER_SEC, after_sec, &next) == 1)
        job->next_fire_at = next * ASTER_US_PER_SEC;
out:
    aster_cron_free(cron);
}

json_t *aster_json_time(aster_time_us t)
{
    char buf[ASTER_TIME_BUFSZ];
    return t ? json_string(aster_time_format_ms(t, buf, sizeof(buf))) : json_null();
}

char *aster_duration_format(int64_t us, char *buf, size_t n)
{
    static const struct {
        int64_t us;
        const char *unit;
    } units[] = {{86400 * ASTER_US_PER_SEC, "d"},
                 {3600 * ASTER_US_PER_SEC, "h"},
                 {60 * ASTER_US_PER_SEC, "m"},
                 {ASTER_US_PER_SEC, "s"},
                 {ASTER_US_PER_MS, "ms"}};
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ASTER_NELEM(units) && len < n; i++) {
        int64_t q = us / units[i].us;
        if (!q)
            continue;
        len += (size_t)snprintf(buf + len, n - len, "%lld%s", (long long)q, units[i].unit);
        us -= q * units[i].us;
    }
    if (!buf[0])
        snprintf(buf, n, "0s");
    return buf;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A member of the stored target, copied as the text it is, or `absent`. */
static void target_member(aster_jw *w, const char *target, const char *key, const char *absent)
{
    size_t n = 0;
    const char *v = target ? aster_jw_member(target, key, &n) : NULL;
    aster_jw_key(w, key);
    if (v)
        aster_jw_raw(w, v, n);
    else
        aster_jw_raw(w, absent, strlen(absent));
}

/* One member: its key, then its value. */
static void put_str(aster_jw *w, const char *key, const char *s)
{
    aster_jw_key(w, key);
    aster_jw_str(w, s);
}

static void put_int(aster_jw *w, const char *key, int64_t v)
{
    aster_jw_key(w, key);
    aster_jw_int(w, v);
}

static void put_time(aster_jw *w, const char *key, aster_time_us t)
{
    char buf[ASTER_TIME_BUFSZ];
    put_str(w, key, t ? aster_time_format_ms(t, buf, sizeof(buf)) : NULL);
}

void aster_job_write(const aster_job *job, aster_jw *w)
{
    char dur[64];

    aster_jw_begin(w, '{');
    put_str(w, "id", job->id);
    put_str(w, "name", job->name);
    put_str(w, "schedule", job->schedule);
    put_str(w, "timezone", job->timezone);
    put_str(w, "type", aster_delivery_name(job->delivery));
    /* The target is stored as the JSON text build_target printed, so its
     * members are copied, not parsed and printed again. */
    if (job->target_kind == ASTER_TARGET_HTTP) {
        target_member(w, job->target, "api", "null");
        target_member(w, job->target, "method", "null");
        target_member(w, job->target, "headers", "{}");
        target_member(w, job->target, "body", "null");
    } else {
        target_member(w, job->target, "command", "null");
        target_member(w, job->target, "args", "[]");
        target_member(w, job->target, "env", "{}");
        target_member(w, job->target, "cwd", "null");
    }
    put_int(w, "max_retries", job->max_retries);
    put_int(w, "retry_backoff_ms", job->retry_backoff_ms);
    put_int(w, "retry_backoff_max_ms", job->retry_backoff_max_ms);
    put_int(w, "timeout_ms", job->timeout_ms);
    put_str(w, "overlap", aster_overlap_name(job->overlap));
    put_str(w, "misfire", aster_misfire_name(job->misfire));
    put_int(w, "misfire_grace_ms", job->misfire_grace_ms);
    put_str(w, "dst_gap", aster_dst_gap_name((aster_dst_gap)job->dst_gap));
    put_str(w, "dst_overlap", aster_dst_overlap_name((aster_dst_overlap)job->dst_overlap));
    aster_jw_key(w, "paused");
    aster_jw_bool(w, job->paused);
    put_str(w, "alert_webhook", job->alert_webhook);
    put_int(w, "alert_after_failures", job->alert_after_failures);
    put_str(
        w, "alert_if_no_success_for",
        job->alert_if_no_success_ms
            ? aster_duration_format(job->alert_if_no_success_ms * ASTER_US_PER_MS, dur, sizeof(dur))
            : NULL);
    put_time(w, "next_fire_at", job->next_fire_at);
    put_time(w, "created_at", job->created_at);
    put_time(w, "updated_at", job->updated_at);
    aster_jw_end(w, '}');
}

json_t *aster_job_to_json(const aster_job *job)
{
    aster_jw w;
    json_t *o;

    aster_jw_init(&w);
    aster_job_write(job, &w);
    o = json_loadb(w.buf, w.len, 0, NULL);
    aster_jw_fini(&w);
    return o;
}

static json_t *int_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

json_t *aster_exec_to_json(const aster_exec *ex, bool with_output)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(ex->id));
    json_object_set_new(o, "job_id", json_string(ex->job_id));
    json_object_set_new(o, "scheduled_at", aster_json_time(ex->scheduled_at));
    json_object_set_new(o, "trigger", json_string(aster_trigger_name(ex->trigger)));
    json_object_set_new(o, "status", json_string(aster_exec_status_name(ex->status)));
    json_object_set_new(o, "attempt", json_integer(ex->attempt));
    json_object_set_new(o, "started_at", aster_json_time(ex->started_at));
    json_object_set_new(o, "finished_at", aster_json_time(ex->finished_at));
    json_object_set_new(o, "duration_ms", int_or_null(ex->duration_ms));
    json_object_set_new(o, "drift_ms", int_or_null(ex->drift_ms));
    json_object_set_new(o, "http_status", int_or_null(ex->http_status));
    json_object_set_new(o, "exit_code", int_or_null(ex->exit_code));
    json_object_set_new(o, "error", str_or_null(ex->error));
    if (with_output)
        json_object_set_new(o, "output", str_or_null(ex->output));
    return o;
}

json_t *aster_attempt_to_json(const struct aster_attempt *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "attempt", json_integer(a->attempt));
    json_object_set_new(o, "status", json_string(aster_exec_status_name(a->status)));
    json_object_set_new(o, "started_at", aster_json_time(a->started_at));
    json_object_set_new(o, "finished_at", aster_json_time(a->finished_at));
    json_object_set_new(o, "duration_ms", int_or_null(a->duration_ms));
    json_object_set_new(o, "http_status", int_or_null(a->http_status));
    json_object_set_new(o, "exit_code", int_or_null(a->exit_code));
    json_object_set_new(o, "error", str_or_null(a->error));
    return o;
}

json_t *aster_alert_to_json(const aster_alert *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "job_id", json_string(a->job_id));
    json_object_set_new(o, "execution_id",
                        a->execution_id[0] ? json_string(a->execution_id) : json_null());
    json_object_set_new(o, "kind", str_or_null(a->kind));
    json_object_set_new(o, "message", str_or_null(a->message));
    json_object_set_new(o, "created_at", aster_json_time(a->created_at));
    json_object_set_new(o, "delivery_state", str_or_null(a->delivery_state));
    json_object_set_new(o, "delivery_attempts", json_integer(a->delivery_attempts));
    return o;
}
