/* h_jobs.c — /api/v1/jobs, executions and the schedule preview. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/job_json.h"
#include "cron/cron.h"
#include "util/mem.h"
#include "util/uuid.h"

static const aster_job_rules *rules(const aster_req *req)
{
    static const aster_job_rules with = {.allow_commands = true}, without = {0};
    return req->api->opts.allow_commands ? &with : &without;
}

/* Tells the scheduler, after the write: with the job as stored when it was
 * created or changed (so it need not read it back), or NULL (deleted,
 * triggered: it looks for itself). */
static void notify(aster_req *req, const char *job_id, const aster_job *job)
{
    if (req->api->opts.on_job_change)
        req->api->opts.on_job_change(req->api->opts.cb_arg, job_id, job);
}

static void answer_job(aster_resp *resp, int status, const aster_job *job)
{
    aster_jw w;
    aster_jw_init(&w);
    aster_job_write(job, &w);
    aster_resp_jw(resp, status, &w);
}

/* ---- jobs ---- */

void aster_h_job_create(aster_req *req, aster_resp *resp)
{
    json_t *doc = aster_req_body_json(req, resp);
    aster_job job;
    aster_err err = {0};

    if (!doc)
        return;
    aster_job_init(&job);
    if (aster_job_from_json(doc, rules(req), &job, &err))
        goto fail;
    aster_uuid7(job.id);
    if (!job.name) {
        char name[ASTER_ID_LEN + 8];
        snprintf(name, sizeof(name), "job-%s", job.id);
        job.name = aster_strdup(name);
    }
    job.created_at = job.updated_at = aster_time_now();
    job.version = 1;
    aster_job_update_next(&job, job.created_at);
    if (aster_store_job_insert(req->api->opts.store, &job, &err))
        goto fail;
    notify(req, job.id, &job);
    snprintf(resp->location, sizeof(resp->location), "/api/v1/jobs/%s", job.id);
    answer_job(resp, MHD_HTTP_CREATED, &job);
    goto out;
fail:
    aster_resp_err(resp, &err);
out:
    aster_job_fini(&job);
    json_decref(doc);
}

void aster_h_job_list(aster_req *req, aster_resp *resp)
{
    aster_job_filter f = {.paused = -1};
    aster_job *jobs = NULL;
    size_t n = 0;
    aster_err err = {0};
    int limit;

    if (aster_req_limit(req, resp, &limit) || aster_req_cursor(req, resp, &f.after_id) ||
        aster_req_bool(req, resp, "paused", &f.paused))
        return;
    f.name_prefix = aster_req_query(req, "name_prefix");
    f.limit = aster_page_fetch(limit);
    if (aster_store_job_list(req->api->opts.store, &f, &jobs, &n, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    aster_jw w;
    aster_jw_init(&w);
    aster_jw_begin(&w, '{');
    aster_jw_key(&w, "items");
    aster_jw_begin(&w, '[');
    for (size_t i = 0; i < shown; i++)
        aster_job_write(&jobs[i], &w);
    aster_jw_end(&w, ']');
    aster_jw_key(&w, "next_cursor");
    aster_jw_str(&w, aster_page_cursor(shown ? jobs[shown - 1].id : NULL, n, limit));
    aster_jw_end(&w, '}');
    aster_resp_jw(resp, MHD_HTTP_OK, &w);
    aster_store_free_jobs(jobs, n);
}

void aster_h_job_get(aster_req *req, aster_resp *resp)
{
    aster_job job;
    if (aster_req_load_job(req, resp, &job))
        return;
    answer_job(resp, MHD_HTTP_OK, &job);
    aster_job_fini(&job);
}

/* Stores `job` (already changed from `old_version`) and answers with it. */
/* Stores `job`, changed from the stored version `old_version` whose
 * next_fire_at was `old_next`, and answers with it. */
static void save_job(aster_req *req, aster_resp *resp, aster_job *job, int64_t old_version,
                     aster_time_us old_next)
{
    aster_err err = {0};
    aster_time_us after;
    job->updated_at = aster_time_now();
    job->version = old_version + 1;
    /* A fire that is due but not yet taken by the scheduler (it is a tick
     * away) must not be lost to an unrelated change: compute from just
     * before it.  A paused job has none, so resuming catches nothing up. */
    after = old_next && old_next <= job->updated_at ? old_next - ASTER_US_PER_SEC : job->updated_at;
    aster_job_update_next(job, after);
    if (aster_store_job_update(req->api->opts.store, job, old_version, &err)) {
        if (err.code == ASTER_ECONFLICT)
            aster_resp_error(resp, MHD_HTTP_CONFLICT, "conflict", NULL,
                             "the job changed while this request ran; retry it");
        else
            aster_resp_err(resp, &err);
        return;
    }
    notify(req, job->id, job);
    answer_job(resp, MHD_HTTP_OK, job);
}

void aster_h_job_replace(aster_req *req, aster_resp *resp)
{
    json_t *doc = aster_req_body_json(req, resp), *id;
    aster_job job, next;
    aster_err err = {0};

    if (!doc)
        return;
    if (aster_req_load_job(req, resp, &job)) {
        json_decref(doc);
        return;
    }
    id = json_object_get(doc, "id");
    if (id && !json_is_null(id) && (!json_is_string(id) || strcmp(json_string_value(id), job.id))) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "id",
                         "does not match the job in the path");
        goto out;
    }
    /* A full replace: every field not in the document takes its default,
     * except the name, which stays when not given. */
    aster_job_init(&next);
    next.name = aster_strdup(job.name);
    if (aster_job_from_json(doc, rules(req), &next, &err)) {
        aster_resp_err(resp, &err);
        aster_job_fini(&next);
        goto out;
    }
    memcpy(next.id, job.id, sizeof(job.id));
    next.created_at = job.created_at;
    save_job(req, resp, &next, job.version, job.next_fire_at);
    aster_job_fini(&next);
out:
    aster_job_fini(&job);
    json_decref(doc);
}

void aster_h_job_patch(aster_req *req, aster_resp *resp)
{
    json_t *doc = aster_req_body_json(req, resp);
    aster_job job;
    aster_err err = {0};

    if (!doc)
        return;
    if (aster_req_load_job(req, resp, &job)) {
        json_decref(doc);
        return;
    }
    int64_t version = job.version;
    if (aster_job_patch(doc, rules(req), &job, &err))
        aster_resp_err(resp, &err);
    else
        save_job(req, resp, &job, version, job.next_fire_at);
    aster_job_fini(&job);
    json_decref(doc);
}

void aster_h_job_delete(aster_req *req, aster_resp *resp)
{
    aster_job job;
    aster_err err = {0};
    if (aster_req_load_job(req, resp, &job))
        return;
    if (aster_store_job_delete(req->api->opts.store, job.id, &err)) {
        aster_resp_err(resp, &err);
    } else {
        notify(req, job.id, NULL);
        resp->status = MHD_HTTP_NO_CONTENT;
    }
    aster_job_fini(&job);
}

static void set_paused(aster_req *req, aster_resp *resp, bool paused)
{
    aster_job job;
    if (aster_req_load_job(req, resp, &job))
        return;
    job.paused = paused;
    save_job(req, resp, &job, job.version, job.next_fire_at);
    aster_job_fini(&job);
}

void aster_h_job_pause(aster_req *req, aster_resp *resp)
{
    set_paused(req, resp, true);
}

void aster_h_job_resume(aster_req *req, aster_resp *resp)
{
    set_paused(req, resp, false);
}

void aster_h_job_trigger(aster_req *req, aster_resp *resp)
{
    aster_job job;
    aster_exec ex;
    aster_err err = {0};

    if (aster_req_load_job(req, resp, &job))
        return;
    aster_exec_init(&ex);
    aster_uuid7(ex.id);
    memcpy(ex.job_id, job.id, sizeof(ex.job_id));
    ex.created_at = ex.scheduled_at = ex.not_before = aster_time_now();
    ex.trigger = ASTER_TRIGGER_MANUAL;
    ex.status = ASTER_EXEC_PENDING;
    if (aster_store_exec_insert(req->api->opts.store, &ex, 1, NULL, &err)) {
        aster_resp_err(resp, &err);
    } else {
        notify(req, job.id, NULL);
        snprintf(resp->location, sizeof(resp->location), "/api/v1/executions/%s", ex.id);
        aster_resp_json(resp, MHD_HTTP_ACCEPTED, aster_exec_to_json(&ex, false));
    }
    aster_exec_fini(&ex);
    aster_job_fini(&job);
}

/* ---- executions ---- */

static void list_execs(aster_req *req, aster_resp *resp, const char *job_id)
{
    aster_exec_filter f = {.job_id = job_id, .status = -1};
    aster_exec *execs = NULL;
    size_t n = 0;
    aster_err err = {0};
    int limit;

    if (aster_req_limit(req, resp, &limit) || aster_req_cursor(req, resp, &f.before_id) ||
        aster_req_status(req, resp, &f.status) || aster_req_time(req, resp, "since", &f.since))
        return;
    f.limit = aster_page_fetch(limit);
    if (aster_store_exec_list(req->api->opts.store, &f, &execs, &n, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    json_t *items = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(items, aster_exec_to_json(&execs[i], false));
    aster_resp_page(resp, items, shown ? execs[shown - 1].id : NULL, n, limit);
    aster_store_free_execs(execs, n);
}

void aster_h_job_executions(aster_req *req, aster_resp *resp)
{
    aster_job job;
    if (aster_req_load_job(req, resp, &job))
        return;
    list_execs(req, resp, job.id);
    aster_job_fini(&job);
}

void aster_h_exec_list(aster_req *req, aster_resp *resp)
{
    const char *job = aster_req_query(req, "job_id");
    if (job && !aster_uuid_is_uuid(job)) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "job_id", "is not a job id");
        return;
    }
    list_execs(req, resp, job);
}

void aster_h_exec_get(aster_req *req, aster_resp *resp)
{
    aster_exec ex;
    aster_err err = {0};
    aster_exec_init(&ex);
    if (!aster_uuid_is_uuid(req->params[0]) ||
        aster_store_exec_get(req->api->opts.store, req->params[0], &ex, &err)) {
        if (!err.code || err.code == ASTER_ENOENT)
            aster_resp_error(resp, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no execution '%s'",
                             req->params[0]);
        else
            aster_resp_err(resp, &err);
    } else {
        aster_attempt *at = NULL;
        size_t n = 0;
        if (aster_store_attempt_list(req->api->opts.store, ex.id, &at, &n, &err)) {
            aster_resp_err(resp, &err);
        } else {
            json_t *o = aster_exec_to_json(&ex, true), *list = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(list, aster_attempt_to_json(&at[i]));
            json_object_set_new(o, "attempts", list);
            aster_resp_json(resp, MHD_HTTP_OK, o);
            aster_store_free_attempts(at, n);
        }
    }
    aster_exec_fini(&ex);
}

/* ---- schedule preview ---- */

void aster_h_schedule_preview(aster_req *req, aster_resp *resp)
{
    const char *expr = aster_req_query(req, "schedule");
    const char *tzname = aster_req_query(req, "timezone");
    const char *count_s = aster_req_query(req, "count");
    const char *gap_s = aster_req_query(req, "dst_gap");
    const char *ovl_s = aster_req_query(req, "dst_overlap");
    aster_dst_policy pol = {ASTER_DST_GAP_AUTO, ASTER_DST_OVERLAP_AUTO};
    aster_cron *cron = NULL;
    const aster_tz *tz;
    aster_err err = {0};
    aster_time_us from;
    long count = 5;

    if (!expr) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "schedule", "is required");
        return;
    }
    if (count_s) {
        char *end;
        count = strtol(count_s, &end, 10);
        if (!*count_s || *end || count < 1 || count > 1000) {
            aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "count",
                             "must be an integer 1-1000");
            return;
        }
    }
    if (aster_req_time(req, resp, "from", &from))
        return;
    if (!aster_req_query(req, "from"))
        from = aster_time_now();
    if (aster_tz_get(tzname ? tzname : "UTC", &tz, &err) ||
        (gap_s && aster_dst_gap_parse(gap_s, &pol.gap, &err)) ||
        (ovl_s && aster_dst_overlap_parse(ovl_s, &pol.overlap, &err)) ||
        aster_cron_parse(expr, &cron, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    json_t *fires = json_array();
    int64_t after = from / ASTER_US_PER_SEC - (from % ASTER_US_PER_SEC < 0), next;
    int64_t anchor = after;
    for (long i = 0; i < count && aster_cron_next(cron, tz, pol, anchor, after, &next) == 1; i++) {
        json_array_append_new(fires, aster_json_time(next * ASTER_US_PER_SEC));
        after = next;
    }
    aster_resp_json(resp, MHD_HTTP_OK,
                    json_pack("{s:s,s:s,s:o}", "schedule", expr, "timezone", aster_tz_name(tz),
                              "fires", fires));
    aster_cron_free(cron);
}
