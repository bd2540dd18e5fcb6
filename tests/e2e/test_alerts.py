"""Alerts and retention end to end, through `aster serve` and real sinks."""
import hashlib
import hmac
import json
import time

from conftest import db_query, wait_for

FAR = "0 0 1 1 *"


def create(server, **doc):
    r = server.post("/api/v1/jobs", doc)
    assert r.status == 201, r.body
    return r.json()


def alerts(server, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    r = server.get("/api/v1/alerts?" + qs)
    assert r.status == 200, r.body
    return r.json()["items"]


def webhook_posts(sink):
    return [r for r in sink.requests if r["path"] == "/hook"]


def test_one_alert_per_final_failure_signed(start_server, sink):
    s = start_server(env={"ASTER_ALERT_WEBHOOK": sink.url + "/hook",
                          "ASTER_ALERT_WEBHOOK_SECRET": "s3cret"})
    job = create(s, name="flaky", schedule=FAR, api=sink.url + "/fail", max_retries=1,
                 retry_backoff_ms=100)
    for _ in range(2):
        s.post(f"/api/v1/jobs/{job['id']}/trigger")
    wait_for(lambda: len(webhook_posts(sink)) >= 2, timeout=15)
    time.sleep(1.0)
    posts = webhook_posts(sink)
    assert len(posts) == 2  # two final failures (each after a retry): two alerts
    ids = set()
    for p in posts:
        sig = p["headers"]["X-Aster-Signature"]
        want = "sha256=" + hmac.new(b"s3cret", p["body"], hashlib.sha256).hexdigest()
        assert sig == want
        body = json.loads(p["body"])
        assert body["kind"] == "failed" and body["job_id"] == job["id"]
        ids.add(body["id"])
    assert len(ids) == 2
    stored = alerts(s, job_id=job["id"])
    assert {a["id"] for a in stored} == ids
    assert all(a["delivery_state"] == "delivered" for a in stored)
    assert len(s.get(f"/api/v1/jobs/{job['id']}/alerts").json()["items"]) == 2
    assert "s3cret" not in s.logs()
    errors = [json.loads(l) for l in s.logs().splitlines()
              if l.startswith("{") and '"level":"error"' in l and '"component":"alert"' in l]
    assert len(errors) == 2


def test_consecutive_failures_alert(start_server, sink):
    s = start_server(env={"ASTER_ALERT_WEBHOOK": sink.url + "/hook"})
    job = create(s, schedule=FAR, api=sink.url + "/fail", max_retries=0,
                 alert_after_failures=3)
    for _ in range(4):
        s.post(f"/api/v1/jobs/{job['id']}/trigger")
        time.sleep(0.3)
    wait_for(lambda: len(alerts(s, job_id=job["id"], kind="consecutive_failures")) == 1,
             timeout=10)
    time.sleep(1)
    assert len(alerts(s, job_id=job["id"], kind="consecutive_failures")) == 1
    assert len(alerts(s, job_id=job["id"], kind="failed")) == 4


def test_down_webhook_does_not_delay_fires(start_server, sink):
    s = start_server()
    bad = create(s, schedule="* * * * * *", api=sink.url + "/fail", max_retries=0,
                 alert_webhook="http://127.0.0.1:9/down")
    good = create(s, schedule="* * * * * *", api=sink.url + "/ok")
    time.sleep(5)
    for j in (bad, good):
        s.post(f"/api/v1/jobs/{j['id']}/pause")
    ex = s.get(f"/api/v1/jobs/{good['id']}/executions?limit=100").json()["items"]
    assert len(ex) >= 4
    assert max(e["drift_ms"] for e in ex if e["drift_ms"] is not None) < 500
    assert alerts(s, job_id=bad["id"])  # raised, delivery being retried
    assert all(a["delivery_state"] in ("pending", "failed")
               for a in alerts(s, job_id=bad["id"]))


def test_absence_alert_once(start_server, sink):
    s = start_server(env={"ASTER_ALERT_WEBHOOK": sink.url + "/hook"})
    failing = create(s, schedule="* * * * * *", api=sink.url + "/fail", max_retries=0,
                     alert_if_no_success_for="2s")
    healthy = create(s, schedule="* * * * * *", api=sink.url + "/ok",
                     alert_if_no_success_for="2s")
    wait_for(lambda: alerts(s, job_id=failing["id"], kind="no_success"), timeout=15)
    time.sleep(6)
    assert len(alerts(s, job_id=failing["id"], kind="no_success")) == 1
    assert alerts(s, job_id=healthy["id"], kind="no_success") == []
    for j in (failing, healthy):
        s.post(f"/api/v1/jobs/{j['id']}/pause")


def test_missed_fires_alert(start_server, sink):
    import signal
    s = start_server()
    job = create(s, schedule="* * * * * *", api=sink.url + "/ok", misfire="skip",
                 misfire_grace_ms=500)
    wait_for(lambda: sink.count("/ok") >= 1, timeout=5)
    s.stop(signal.SIGKILL)
    time.sleep(3)
    s2 = start_server(db=s.db)
    wait_for(lambda: alerts(s2, job_id=job["id"], kind="missed"), timeout=10)
    s2.post(f"/api/v1/jobs/{job['id']}/pause")


def test_pruner_keeps_exactly_the_configured_history(start_server, sink):
    s = start_server(env={"ASTER_HISTORY_PER_JOB": "3", "ASTER_HISTORY_PRUNE_INTERVAL": "1s"})
    job = create(s, schedule="* * * * * *", api=sink.url + "/ok")
    wait_for(lambda: sink.count("/ok") >= 6, timeout=10)
    s.post(f"/api/v1/jobs/{job['id']}/pause")
    time.sleep(2.5)  # at least one pruning pass after the last execution

    def count():
        return db_query(s.db, "SELECT count(*) FROM executions WHERE job_id = ?",
                        (job["id"],))[0][0]
    assert count() == 3
    kept = s.get(f"/api/v1/jobs/{job['id']}/executions").json()["items"]
    assert len(kept) == 3
    m = s.get("/metrics").body.decode()
    pruned = [l for l in m.splitlines() if l.startswith("aster_history_pruned_total")]
    assert float(pruned[0].split()[1]) >= 3


def test_bad_retention_settings_exit_2(tmp_path):
    from conftest import new_database, run_aster, store_url
    store = store_url(new_database(tmp_path, "x"))
    for env in ({"ASTER_HISTORY_MAX_AGE": "soon"}, {"ASTER_HISTORY_PER_JOB": "0"},
                {"ASTER_HISTORY_PRUNE_INTERVAL": "10ms"}):
        p = run_aster("serve", "--store", store, env=env)
        assert p.returncode == 2, (env, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1
