"""Compatibility end to end (docs/migrating.md): each system Aster replaces
(../shared/seeds/) replays its own flow against the real binary with only
its own routes and field names; the field aliases, one by one and mixed;
and --no-compat, which answers 404 on every old route and leaves /api/v1
as it is."""
import datetime
import time

import pytest

from conftest import http, wait_for

FAR = "0 0 1 1 *"  # once a year: only triggers run


def call(s, method, path, body=None):
    return http(method, s.url + path, body)


def ok(r, status=200):
    assert r.status == status, (r.status, r.body)
    return r.json() if r.body else None


def assert_error(r, fields, also=()):
    """A 400 whose error names one of `fields` and, in its message, every
    field of `also`."""
    assert r.status == 400, (r.status, r.body)
    e = r.json()["error"]
    assert e["field"] in fields, e
    for f in also:
        assert f in e["message"], e


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# ---- seed 003: /api/jobs, /api/executions, /api/metrics ----------------------

def test_seed_003_flow(server, sink):
    # Its own example document: a 6-field cron with seconds, an HTTP POST job.
    doc = {"schedule": "* * * * * *", "api": sink.url + "/ok", "type": "ATLEAST_ONCE"}
    job = ok(call(server, "POST", "/api/jobs", doc), 201)
    jid = job["jobId"]
    assert jid == job["id"] and job["schedule"] == "* * * * * *"
    assert job["api"] == sink.url + "/ok" and job["type"] == "ATLEAST_ONCE"

    got = ok(call(server, "GET", f"/api/jobs/{jid}"))
    assert got["jobId"] == jid and got["schedule"] == doc["schedule"]

    def succeeded():
        page = ok(call(server, "GET", f"/api/jobs/{jid}/executions"))
        assert page["executions"] == page["items"] and "next_cursor" in page
        return [e for e in page["executions"] if e["status"] == "SUCCESS"]

    e = wait_for(succeeded, timeout=10)[0]
    assert e["executionId"] == e["id"] and e["jobId"] == jid == e["job_id"]
    assert e["scheduledTime"] == e["scheduled_at"] and e["executedTime"] == e["started_at"]
    assert e["httpStatus"] == 200 and e["retryCount"] == 0 and e["errorMessage"] is None
    assert e["duration"] == e["duration_ms"] >= 0

    # PUT changes what it is sent and keeps the rest.
    put = ok(call(server, "PUT", f"/api/jobs/{jid}", {"schedule": "31 10-15 1 * * MON-FRI"}))
    assert put["jobId"] == jid and put["schedule"] == "31 10-15 1 * * MON-FRI"
    assert put["api"] == sink.url + "/ok"

    recent = ok(call(server, "GET", "/api/executions"))
    assert recent["executions"] and all(x["status"] == x["status"].upper()
                                        for x in recent["executions"])
    assert any(x["jobId"] == jid for x in recent["executions"])

    m = ok(call(server, "GET", "/api/metrics"))
    assert m["totalExecutions"] >= 1 and m["successfulExecutions"] >= 1
    assert m["activeJobs"] == 1 and m["totalJobs"] == 1
    assert "activeExecutions" in m and "averageDrift" in m
    assert m["averageDrift"] is None or m["averageDrift"] >= 0
    assert m["jobs"]["active"] == 1  # Aster's own figures stay beside them

    assert call(server, "GET", "/api/jobs/no-such-job").status == 404
    assert_error(call(server, "POST", "/api/jobs", {"schedule": "* * *", "api": sink.url}),
                 {"schedule", "minute", "hour"})


# ---- seed 004: /jobs, trigger, alerts, /observability/* ---------------------

def test_seed_004_flow(server, sink):
    doc = {"schedule": FAR, "api": sink.url + "/ok", "type": "ATLEAST_ONCE"}
    job = ok(call(server, "POST", "/jobs", doc), 201)
    jid = job["jobId"]
    assert jid == job["id"]
    assert ok(call(server, "GET", f"/jobs/{jid}"))["jobId"] == jid

    ex = ok(call(server, "POST", f"/jobs/{jid}/trigger"), 202)
    assert ex["executionId"] == ex["id"] and ex["jobId"] == jid
    assert ex["status"] == "PENDING" and ex["retry_count"] == 0

    def final(status):
        items = ok(call(server, "GET", f"/jobs/{jid}/executions"))["executions"]
        return [e for e in items if e["status"] == status]

    e = wait_for(lambda: final("SUCCESS"), timeout=10)[0]
    assert e["executionId"] == ex["executionId"] and e["http_status"] == 200
    assert e["completed_at"] == e["finished_at"] and e["duration"] >= 0

    # A failing target, no retries: FAILED, a failed list entry and an alert.
    put = ok(call(server, "PUT", f"/jobs/{jid}",
                  {"api": sink.url + "/fail", "type": "ATMOST_ONCE"}))
    assert put["api"] == sink.url + "/fail" and put["schedule"] == FAR
    bad = ok(call(server, "POST", f"/jobs/{jid}/trigger"), 202)
    wait_for(lambda: final("FAILED"), timeout=10)
    failed = ok(call(server, "GET", "/observability/executions/failed"))
    assert [x["executionId"] for x in failed["executions"]] == [bad["executionId"]]
    assert failed["executions"][0]["http_status"] == 500

    # Alerts: the list answers even before any alert is raised.
    mine = ok(call(server, "GET", f"/jobs/{jid}/alerts"))
    assert mine["alerts"] == mine["items"] and "next_cursor" in mine

    recent = ok(call(server, "GET", "/observability/executions/recent"))
    assert [x["status"] for x in recent["executions"]] == ["FAILED", "SUCCESS"]

    h = call(server, "GET", "/observability/health")
    assert h.status == 200 and h.json()["status"] == "healthy"
    assert h.json()["database"] == "connected" and h.json()["timestamp"].endswith("Z")

    m = ok(call(server, "GET", "/observability/metrics"))
    assert m["successfulExecutions"] >= 1 and m["failedExecutions"] >= 1
    assert m["totalExecutions"] >= 2

    assert call(server, "DELETE", f"/jobs/{jid}").status == 204
    assert call(server, "GET", f"/jobs/{jid}").status == 404
    assert call(server, "POST", f"/jobs/{jid}/trigger").status == 404
    assert call(server, "GET", f"/jobs/{jid}/alerts").status == 404


def test_seed_004_failure_raises_an_alert(server, sink):
    job = ok(call(server, "POST", "/jobs", {"schedule": FAR, "api": sink.url + "/fail",
                                           "type": "ATMOST_ONCE"}), 201)
    jid = job["jobId"]
    ex = ok(call(server, "POST", f"/jobs/{jid}/trigger"), 202)
    alerts = wait_for(lambda: ok(call(server, "GET", f"/jobs/{jid}/alerts"))["alerts"])
    assert alerts[0]["jobId"] == jid and alerts[0]["executionId"] == ex["executionId"]
    assert alerts[0]["kind"] == "failed"
    every = ok(call(server, "GET", "/observability/alerts"))
    assert every["alerts"] == every["items"] and every["alerts"][0]["jobId"] == jid


def test_seed_004_failed_list_includes_timeouts(server, sink):
    job = ok(call(server, "POST", "/jobs", {"schedule": FAR, "api": sink.url + "/hang",
                                           "type": "ATMOST_ONCE", "timeout": 1}), 201)
    assert job["timeout_ms"] == 1000
    ex = ok(call(server, "POST", f"/jobs/{job['jobId']}/trigger"), 202)
    got = wait_for(lambda: ok(call(server, "GET", "/observability/executions/failed"))
                   ["executions"], timeout=10)
    assert got[0]["executionId"] == ex["executionId"] and got[0]["status"] == "TIMED_OUT"


# ---- seeds 000/001: POST /jobs with a command job ----------------------------

def test_seed_000_command_flow(start_server):
    s = start_server(args=["--allow-commands"])
    doc = {"name": "backup", "cron_expr": "* * * * * *", "command": "/bin/echo",
           "args": ["hello"], "env": {"GREETING": "1"}, "max_retries": 3,
           "timeout": "30s", "status": "active"}
    job = ok(call(s, "POST", "/jobs", doc), 201)
    jid = job["jobId"]
    assert jid == job["id"] and job["name"] == "backup"
    assert job["schedule"] == "* * * * * *" and job["timeout_ms"] == 30000
    assert job["paused"] is False and job["command"] == "/bin/echo"
    assert job["args"] == ["hello"] and job["env"] == {"GREETING": "1"}
    assert ok(call(s, "GET", "/jobs/backup"))["jobId"] == jid  # by name, too

    runs = wait_for(lambda: [e for e in ok(call(s, "GET", f"/jobs/{jid}/executions"))
                             ["executions"] if e["status"] == "SUCCESS"], timeout=10)
    assert runs[0]["exit_code"] == 0 and runs[0]["jobId"] == jid

    paused = ok(call(s, "POST", "/jobs", dict(doc, name="later", status="paused")), 201)
    assert paused["paused"] is True and paused["next_fire_at"] is None
    m = ok(call(s, "GET", "/observability/metrics"))
    assert m["activeJobs"] == 1 and m["pausedJobs"] == 1 and m["successfulExecutions"] >= 1

    assert_error(call(s, "POST", "/jobs", dict(doc, name="x", status="disabled")), {"status"})


# ---- seed 002: camelCase on /api/v1/jobs, GET /queue/stats -------------------

QUEUES = {"ready", "processing", "retry", "completed", "failed"}


def test_seed_002_flow(server, sink):
    stats = ok(call(server, "GET", "/queue/stats"))
    assert stats == dict.fromkeys(QUEUES, 0)

    # A one-off: isRecurring false with a timestamp schedule, 2 s ahead.
    at = rfc3339(time.time() + 2)
    once = ok(call(server, "POST", "/api/v1/jobs", {
        "schedule": at, "api": sink.url + "/slow?ms=1500", "type": "ATLEAST_ONCE",
        "isRecurring": False, "maxRetryCount": 2, "isActive": True}), 201)
    assert "jobId" not in once  # /api/v1 answers stay Aster's
    assert once["schedule"] == "@at " + at.replace("Z", ".000Z")
    assert once["max_retries"] == 2 and once["paused"] is False
    assert ok(call(server, "GET", f"/api/v1/jobs/{once['id']}"))["schedule"] == once["schedule"]

    # A recurring job that fails: attempts wait out a backoff, then fail.
    rec = ok(call(server, "POST", "/api/v1/jobs", {
        "schedule": "* * * * * *", "api": sink.url + "/fail", "type": "ATLEAST_ONCE",
        "isRecurring": True, "maxRetryCount": 1, "isActive": True}), 201)

    seen = {}

    def queues(*names):
        st = ok(call(server, "GET", "/queue/stats"))
        assert set(st) == QUEUES, st
        for k, v in st.items():
            seen[k] = max(seen.get(k, 0), v)
        return all(seen[n] >= 1 for n in names)

    wait_for(lambda: queues("processing", "retry", "completed", "failed"), timeout=15,
             interval=0.1)
    paused = ok(call(server, "PATCH", f"/api/v1/jobs/{rec['id']}", {"isActive": False}))
    assert paused["paused"] is True

    runs = ok(call(server, "GET", f"/api/v1/jobs/{once['id']}/executions"))["items"]
    assert [e["status"] for e in runs] == ["succeeded"]  # Aster's statuses on /api/v1
    assert ok(call(server, "GET", f"/api/v1/jobs/{once['id']}"))["next_fire_at"] is None
    assert sink.count("/slow?ms=1500") == 1


# ---- aliases ------------------------------------------------------------------

BASE = {"schedule": FAR, "api": "http://127.0.0.1:9/x"}

ALIASES = [
    ("cron_expr", {"schedule": None, "cron_expr": "*/5 * * * *"}, "schedule", "*/5 * * * *"),
    ("maxRetryCount", {"maxRetryCount": 7}, "max_retries", 7),
    ("isActive-false", {"isActive": False}, "paused", True),
    ("isActive-true", {"isActive": True}, "paused", False),
    ("status-paused", {"status": "paused"}, "paused", True),
    ("status-active", {"status": "active"}, "paused", False),
    ("timeout-seconds", {"timeout": "30s"}, "timeout_ms", 30000),
    ("timeout-minutes", {"timeout": "5m"}, "timeout_ms", 300000),
    ("timeout-compound", {"timeout": "1h30m"}, "timeout_ms", 5400000),
    ("timeout-number", {"timeout": 45}, "timeout_ms", 45000),
    ("timeout-fraction", {"timeout": 1.5}, "timeout_ms", 1500),
    ("timeout-interval", {"timeout": "00:02:30"}, "timeout_ms", 150000),
    ("isRecurring-true", {"isRecurring": True}, "schedule", FAR),
    ("isRecurring-false", {"schedule": "2030-01-02T03:04:05Z", "isRecurring": False},
     "schedule", "@at 2030-01-02T03:04:05.000Z"),
    ("isRecurring-false-cron_expr", {"schedule": None, "cron_expr": "2030-01-02T03:04:05Z",
                                     "isRecurring": False},
     "schedule", "@at 2030-01-02T03:04:05.000Z"),
]


def doc_with(changes):
    d = dict(BASE)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


@pytest.mark.parametrize("changes,field,want", [pytest.param(c, f, w, id=i)
                                                 for i, c, f, w in ALIASES])
def test_alias_translated(server, changes, field, want):
    for path in ("/api/v1/jobs", "/api/jobs", "/jobs"):
        job = ok(call(server, "POST", path, doc_with(changes)), 201)
        assert job[field] == want, (path, job)
        for old in changes:
            if old not in BASE:
                assert old not in job  # the answer speaks Aster's names


BAD = [
    ("status-other", {"status": "disabled"}, {"status"}),
    ("status-number", {"status": 1}, {"status"}),
    ("isActive-string", {"isActive": "yes"}, {"isActive"}),
    ("timeout-word", {"timeout": "soon"}, {"timeout"}),
    ("timeout-zero", {"timeout": 0}, {"timeout"}),
    ("timeout-negative", {"timeout": -5}, {"timeout"}),
    ("timeout-too-long", {"timeout": "25h"}, {"timeout"}),
    ("timeout-bool", {"timeout": True}, {"timeout"}),
    ("isRecurring-false-cron", {"isRecurring": False}, {"isRecurring"}),
    ("isRecurring-true-timestamp", {"schedule": "2030-01-02T03:04:05Z", "isRecurring": True},
     {"isRecurring"}),
    ("isRecurring-string", {"isRecurring": "no"}, {"isRecurring"}),
]


@pytest.mark.parametrize("changes,fields", [pytest.param(c, f, id=i) for i, c, f in BAD])
def test_alias_bad_value_names_the_old_field(server, changes, fields):
    assert_error(call(server, "POST", "/api/v1/jobs", doc_with(changes)), fields)


MIXES = [
    ("cron_expr+schedule", {"cron_expr": "* * * * *"}, ("cron_expr", "schedule")),
    ("maxRetryCount+max_retries", {"maxRetryCount": 1, "max_retries": 2},
     ("maxRetryCount", "max_retries")),
    ("isActive+paused", {"isActive": True, "paused": False}, ("isActive", "paused")),
    ("status+paused", {"status": "active", "paused": False}, ("status", "paused")),
    ("timeout+timeout_ms", {"timeout": "30s", "timeout_ms": 30000}, ("timeout", "timeout_ms")),
    ("isActive+status", {"isActive": True, "status": "active"}, ("isActive", "status")),
]


@pytest.mark.parametrize("changes,pair", [pytest.param(c, p, id=i) for i, c, p in MIXES])
def test_alias_mixed_with_its_field_is_refused_naming_both(server, changes, pair):
    for path in ("/api/v1/jobs", "/jobs"):
        assert_error(call(server, "POST", path, doc_with(changes)), set(pair), pair)
    assert ok(call(server, "GET", "/api/v1/jobs"))["items"] == []  # nothing was created


def test_aliases_on_updates(server):
    job = ok(call(server, "POST", "/api/v1/jobs", BASE), 201)
    p = ok(call(server, "PATCH", f"/api/v1/jobs/{job['id']}",
                {"isActive": False, "timeout": "5m", "maxRetryCount": 0}))
    assert p["paused"] is True and p["timeout_ms"] == 300000 and p["max_retries"] == 0
    r = ok(call(server, "PUT", f"/api/v1/jobs/{job['id']}",
                {"cron_expr": "0 * * * *", "api": BASE["api"], "status": "active"}))
    assert r["schedule"] == "0 * * * *" and r["paused"] is False and r["timeout_ms"] == 30000
    assert "jobId" not in r
    u = ok(call(server, "PUT", f"/jobs/{job['id']}", {"status": "paused", "timeout": 10}))
    assert u["jobId"] == job["id"] and u["paused"] is True and u["timeout_ms"] == 10000
    assert u["schedule"] == "0 * * * *"
    assert_error(call(server, "PUT", f"/api/jobs/{job['id']}",
                      {"isActive": True, "paused": True}), {"isActive", "paused"},
                 ("isActive", "paused"))


# ---- --no-compat ---------------------------------------------------------------

OLD_ROUTES = [
    ("POST", "/api/jobs"), ("PUT", "/api/jobs/{id}"), ("GET", "/api/jobs/{id}"),
    ("GET", "/api/jobs/{id}/executions"), ("GET", "/api/executions"), ("GET", "/api/metrics"),
    ("POST", "/jobs"), ("PUT", "/jobs/{id}"), ("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}"),
    ("GET", "/jobs/{id}/executions"), ("POST", "/jobs/{id}/trigger"),
    ("GET", "/jobs/{id}/alerts"), ("GET", "/observability/health"),
    ("GET", "/observability/metrics"), ("GET", "/observability/alerts"),
    ("GET", "/observability/executions/recent"), ("GET", "/observability/executions/failed"),
    ("GET", "/queue/stats"),
]


@pytest.mark.parametrize("how", [{"args": ["--no-compat"]}, {"env": {"ASTER_COMPAT": "0"}}],
                         ids=["flag", "env"])
def test_no_compat_turns_every_old_route_and_alias_off(start_server, how):
    s = start_server(**how)
    job = ok(call(s, "POST", "/api/v1/jobs", BASE), 201)
    assert "jobId" not in job
    for method, path in OLD_ROUTES:
        r = call(s, method, path.replace("{id}", job["id"]),
                 BASE if method in ("POST", "PUT") else None)
        assert r.status == 404, (method, path, r.status, r.body)
        assert r.json()["error"]["code"] == "not_found"
    for old in ("cron_expr", "maxRetryCount", "isActive", "status", "timeout", "isRecurring"):
        assert_error(call(s, "POST", "/api/v1/jobs", dict(BASE, **{old: True})), {old})
    # /api/v1 itself is untouched.
    assert ok(call(s, "GET", f"/api/v1/jobs/{job['id']}"))["id"] == job["id"]
    assert ok(call(s, "POST", f"/api/v1/jobs/{job['id']}/trigger"), 202)
    assert ok(call(s, "GET", "/api/v1/stats"))["jobs"]["total"] == 1


def test_compat_routes_exist_when_on(server):
    job = ok(call(server, "POST", "/api/v1/jobs", BASE), 201)
    for method, path in OLD_ROUTES:
        if method in ("POST", "PUT", "DELETE"):
            continue
        r = call(server, method, path.replace("{id}", job["id"]))
        assert r.status == 200, (method, path, r.status, r.body)
    r = call(server, "PATCH", f"/jobs/{job['id']}", {})
    assert r.status == 405 and "GET" in r.headers["Allow"]
