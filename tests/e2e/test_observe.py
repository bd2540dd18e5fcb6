"""Observability end to end: /metrics parsed by the Prometheus client's own
text parser, its counters checked against the executions stored, and the
stats answer."""
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import db_query, http, wait_for

FINAL = ("succeeded", "failed", "timed_out", "skipped", "missed", "cancelled")


def scrape(server):
    r = server.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    return fams


def samples(fams, name):
    return [s for f in fams.values() for s in f.samples if s.name == name]


def test_metrics_names_and_types(server):
    server.get("/api/v1/jobs")
    fams = scrape(server)
    want = {
        "aster_executions": "counter",
        "aster_execution_drift_seconds": "histogram",
        "aster_execution_duration_seconds": "histogram",
        "aster_executions_in_flight": "gauge",
        "aster_queue_depth": "gauge",
        "aster_jobs": "gauge",
        "aster_http_requests": "counter",
        "aster_http_request_duration_seconds": "histogram",
        "aster_alerts": "counter",
        "aster_alert_deliveries": "counter",
        "aster_history_pruned": "counter",
        "aster_scheduler_leader": "gauge",
        "aster_build_info": "gauge",
    }
    for name, typ in want.items():
        assert name in fams, name
        assert fams[name].type == typ, (name, fams[name].type)
    # The route label is the pattern, never the raw path.
    server.get("/api/v1/jobs/some-name-that-does-not-exist")
    fams = scrape(server)
    routes = {s.labels["route"] for s in samples(fams, "aster_http_requests_total")}
    assert "/api/v1/jobs/{id}" in routes
    assert not any("some-name" in r for r in routes)
    assert samples(fams, "aster_scheduler_leader")[0].value in (0, 1)


def test_counters_match_the_executions_stored(server, sink):
    ok = server.post("/api/v1/jobs", {"schedule": "* * * * * *", "api": sink.url + "/ok"}).json()
    bad = server.post("/api/v1/jobs", {"schedule": "* * * * * *", "api": sink.url + "/fail",
                                       "max_retries": 0}).json()
    wait_for(lambda: sink.count("/ok") >= 3 and sink.count("/fail") >= 3, timeout=10)
    for j in (ok, bad):
        server.post(f"/api/v1/jobs/{j['id']}/pause")
    time.sleep(0.5)  # let the last results be recorded
    fams = scrape(server)
    counted = {s.labels["status"]: s.value for s in samples(fams, "aster_executions_total")}
    stored = dict(db_query(server.db, "SELECT status, count(*) FROM executions GROUP BY status"))
    for st in FINAL:
        assert counted.get(st, 0) == stored.get(st, 0), (st, counted, stored)
    drift_count = samples(fams, "aster_execution_drift_seconds_count")[0].value
    assert drift_count == stored.get("succeeded", 0) + stored.get("failed", 0)
    jobs = {s.labels["state"]: s.value for s in samples(fams, "aster_jobs")}
    assert jobs == {"active": 0, "paused": 2}


def test_stats_at_a_glance(server, sink):
    job = server.post("/api/v1/jobs", {"schedule": "* * * * * *", "api": sink.url + "/ok"}).json()
    wait_for(lambda: server.get("/api/v1/stats").json()["executions"]["last_minute"]
             .get("succeeded", 0) >= 2, timeout=10)
    server.post(f"/api/v1/jobs/{job['id']}/pause")
    s = server.get("/api/v1/stats").json()
    assert s["jobs"] == {"total": 1, "active": 0, "paused": 1}
    assert set(s["executions"]) == {"last_minute", "last_hour"}
    assert s["executions"]["last_hour"]["succeeded"] >= s["executions"]["last_minute"]["succeeded"]
    assert s["drift_ms"]["p50"] is not None and s["drift_ms"]["p99"] >= s["drift_ms"]["p50"]
    assert s["duration_ms"]["avg"] is not None
    assert isinstance(s["in_flight"], int) and isinstance(s["queue_depth"], int)


def test_metrics_open_but_stats_need_a_key(start_server):
    s = start_server(env={"ASTER_API_KEYS": "k1"})
    assert s.get("/metrics").status == 200
    assert s.get("/api/v1/stats").status == 401
    assert s.get("/api/v1/stats", headers={"Authorization": "Bearer k1"}).status == 200


def test_request_log_lines(server):
    server.get("/api/v1/jobs")
    import json
    lines = [json.loads(l) for l in server.logs().splitlines() if l.startswith("{")]
    req = [l for l in lines if l["msg"] == "request" and l.get("route") == "/api/v1/jobs"]
    assert req and req[0]["method"] == "GET" and req[0]["status"] == 200
    assert "latency_ms" in req[0]


def test_execution_log_lines(server, sink):
    import json
    job = server.post("/api/v1/jobs", {"schedule": "0 0 1 1 *", "api": sink.url + "/ok"}).json()
    server.post(f"/api/v1/jobs/{job['id']}/trigger")
    wait_for(lambda: '"execution finished"' in server.logs(), timeout=5)
    lines = [json.loads(l) for l in server.logs().splitlines() if l.startswith("{")]
    for msg in ("execution started", "execution finished"):
        l = [x for x in lines if x["msg"] == msg][0]
        for k in ("job_id", "execution_id", "attempt", "status", "drift_ms"):
            assert k in l, (msg, k)
    fin = [x for x in lines if x["msg"] == "execution finished"][0]
    assert fin["status"] == "succeeded" and "duration_ms" in fin
