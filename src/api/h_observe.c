/* h_observe.c — /metrics and the alert lists. */
#include <string.h>

#include "api/api_int.h"
#include "core/job_json.h"
#include "util/mem.h"
#include "util/uuid.h"

/* Prometheus scrapes this; like /healthz it needs no API key, so that the
 * monitoring system holds no secret that could also change jobs. */
void aster_h_metrics(aster_req *req, aster_resp *resp)
{
    aster_api *api = req->api;
    aster_metrics_gauges g = {0};
    aster_err err = {0};

    if (!api->opts.metrics) {
        aster_resp_error(resp, MHD_HTTP_NOT_FOUND, "not_found", NULL, "metrics are disabled");
        return;
    }
    if (api->opts.in_flight)
        g.in_flight = (int64_t)api->opts.in_flight(api->opts.cb_arg);
    /* A store that does not answer leaves its gauges at 0: /metrics must
     * keep working when the database does not (that is when it matters). */
    if (aster_store_job_count(api->opts.store, &g.jobs_active, &g.jobs_paused, &err))
        aster_err_clear(&err);
    if (aster_store_queue_depth(api->opts.store, aster_time_now(), &g.queue_depth, &err))
        aster_err_clear(&err);
    resp->status = MHD_HTTP_OK;
    resp->text = aster_metrics_render(api->opts.metrics, &g);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void list_alerts(aster_req *req, aster_resp *resp, const char *job_id)
{
    aster_alert_filter f = {.job_id = job_id, .kind = aster_req_query(req, "kind")};
    aster_alert *alerts = NULL;
    size_t n = 0;
    aster_err err = {0};
    int limit;

    if (aster_req_limit(req, resp, &limit) || aster_req_cursor(req, resp, &f.before_id) ||
        aster_req_time(req, resp, "since", &f.since))
        return;
    f.limit = aster_page_fetch(limit);
    if (aster_store_alert_list(req->api->opts.store, &f, &alerts, &n, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    json_t *items = json_array();
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(items, aster_alert_to_json(&alerts[i]));
    aster_resp_page(resp, items, shown ? alerts[shown - 1].id : NULL, n, limit);
    aster_store_free_alerts(alerts, n);
}

void aster_h_alert_list(aster_req *req, aster_resp *resp)
{
    const char *job = aster_req_query(req, "job_id");
    if (job && !aster_uuid_is_uuid(job)) {
        aster_resp_error(resp, MHD_HTTP_BAD_REQUEST, "invalid", "job_id", "is not a job id");
        return;
    }
    list_alerts(req, resp, job);
}

void aster_h_job_alerts(aster_req *req, aster_resp *resp)
{
    aster_job job;
    if (aster_req_load_job(req, resp, &job))
        return;
    list_alerts(req, resp, job.id);
    aster_job_fini(&job);
}

/* The figures the systems we replace call "metrics", at a glance.  The
 * execution window is this process's own (see aster_metrics_window). */
void aster_h_stats(aster_req *req, aster_resp *resp)
{
    aster_api *api = req->api;
    aster_metrics_window w;
    int64_t active = 0, paused = 0, depth = 0;
    aster_err err = {0};

    if (aster_store_job_count(api->opts.store, &active, &paused, &err) ||
        aster_store_queue_depth(api->opts.store, aster_time_now(), &depth, &err)) {
        aster_resp_err(resp, &err);
        return;
    }
    aster_metrics_window_read(api->opts.metrics, aster_time_now() / ASTER_US_PER_SEC, &w);
    json_t *minute = json_object(), *hour = json_object();
    for (int s = 0; s < ASTER_EXEC_STATUS_COUNT; s++) {
        const char *name = aster_exec_status_name((aster_exec_status)s);
        if (!aster_exec_status_is_final((aster_exec_status)s))
            continue;
        json_object_set_new(minute, name, json_integer(w.last_minute[s]));
        json_object_set_new(hour, name, json_integer(w.last_hour[s]));
    }
    json_t *o = json_pack(
        "{s:{s:I,s:I,s:I},s:{s:o,s:o},s:{s:o,s:o},s:{s:o},s:I,s:I}", "jobs", "total",
        (json_int_t)(active + paused), "active", (json_int_t)active, "paused", (json_int_t)paused,
        "executions", "last_minute", minute, "last_hour", hour, "drift_ms", "p50",
        w.drift_p50_ms >= 0 ? json_real(w.drift_p50_ms) : json_null(), "p99",
        w.drift_p99_ms >= 0 ? json_real(w.drift_p99_ms) : json_null(), "duration_ms", "avg",
        w.duration_avg_ms >= 0 ? json_real(w.duration_avg_ms) : json_null(), "in_flight",
        (json_int_t)(api->opts.in_flight ? api->opts.in_flight(api->opts.cb_arg) : 0),
        "queue_depth", (json_int_t)depth);
    aster_resp_json(resp, MHD_HTTP_OK, o);
}
