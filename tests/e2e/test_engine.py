"""Engine end-to-end tests: the real `aster serve`, a real HTTP sink on
loopback and real commands.  Timings are generous: the machine is shared."""
import datetime
import signal
import time

import pytest

from conftest import db_execute, db_query, wait_for

FINAL = {"succeeded", "failed", "timed_out", "skipped", "missed", "cancelled"}


def parse_t(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def create(server, **doc):
    r = server.post("/api/v1/jobs", doc)
    assert r.status == 201, r.body
    return r.json()


def executions(server, job_id):
    r = server.get(f"/api/v1/jobs/{job_id}/executions?limit=1000")
    assert r.status == 200, r.body
    return r.json()["items"]


def execution(server, exec_id):
    r = server.get(f"/api/v1/executions/{exec_id}")
    assert r.status == 200, r.body
    return r.json()


def trigger(server, job_id):
    r = server.post(f"/api/v1/jobs/{job_id}/trigger")
    assert r.status == 202, r.body
    return r.json()


def wait_final(server, exec_id, timeout=15):
    return wait_for(lambda: (lambda e: e if e["status"] in FINAL else None)(
        execution(server, exec_id)), timeout)


FAR = "0 0 1 1 *"  # once a year: only manual triggers run in these tests


def test_every_second_job_fires_each_second_with_drift(server, sink):
    job = create(server, name="tick", schedule="* * * * * *", api=sink.url + "/ok")
    wait_for(lambda: len([e for e in executions(server, job["id"])
                          if e["status"] == "succeeded"]) >= 4, timeout=10)
    server.post(f"/api/v1/jobs/{job['id']}/pause")
    ex = [e for e in executions(server, job["id"]) if e["status"] == "succeeded"]
    secs = sorted(parse_t(e["scheduled_at"]) for e in ex)
    assert all(b - a == 1 for a, b in zip(secs, secs[1:])), secs  # one per second
    for e in ex:
        assert e["trigger"] == "schedule" and e["attempt"] == 1
        assert 0 <= e["drift_ms"] < 1000, e
        assert e["http_status"] == 200 and e["duration_ms"] >= 0
        assert parse_t(e["scheduled_at"]) == int(parse_t(e["scheduled_at"]))
    req = sink.requests[0]
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert req["method"] == "POST"
    assert h["x-aster-job-id"] == job["id"]
    assert h["x-aster-attempt"] == "1"
    assert h["idempotency-key"] and h["x-aster-execution-id"]
    assert h["x-aster-scheduled-at"].endswith("Z")


def test_method_headers_and_body_are_sent(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/ok", method="PUT",
                 headers={"X-Custom": "yes"}, body='{"hello": "world"}')
    ex = trigger(server, job["id"])
    assert ex["status"] == "pending" and ex["trigger"] == "manual"
    assert wait_final(server, ex["id"])["status"] == "succeeded"
    req = sink.requests[-1]
    assert req["method"] == "PUT"
    assert req["headers"].get("X-Custom") == "yes"
    assert req["body"] == b'{"hello": "world"}'


def test_retries_follow_backoff_and_stop_at_max(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/fail", max_retries=2,
                 retry_backoff_ms=400)
    ex = trigger(server, job["id"])
    done = wait_final(server, ex["id"], timeout=20)
    assert done["status"] == "failed"
    assert done["attempt"] == 3 and done["http_status"] == 500
    assert [a["attempt"] for a in done["attempts"]] == [1, 2, 3]
    ts = [r["t"] for r in sink.requests if r["path"] == "/fail"]
    assert len(ts) == 3
    keys = {r["headers"]["Idempotency-Key"] for r in sink.requests}
    assert len(keys) == 1  # one fire, one key, every attempt
    g1, g2 = ts[1] - ts[0], ts[2] - ts[1]
    assert 0.3 <= g1 <= 0.9, g1     # 400 ms +-20%, plus scheduling slack
    assert 0.6 <= g2 <= 1.5, g2     # 800 ms +-20%
    time.sleep(1.5)
    assert sink.count("/fail") == 3  # nothing after max_retries


def test_http_timeout_is_enforced(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/hang", timeout_ms=500, max_retries=0)
    t0 = time.time()
    done = wait_final(server, trigger(server, job["id"])["id"])
    assert done["status"] == "timed_out"
    assert time.time() - t0 < 5
    assert "timed out" in done["error"]


def test_connection_closed_is_a_failure(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/close", max_retries=0)
    done = wait_final(server, trigger(server, job["id"])["id"])
    assert done["status"] == "failed" and done["error"]


def test_command_output_captured_and_capped(start_server):
    s = start_server(args=["--allow-commands"])
    job = create(s, schedule=FAR, command="/bin/sh",
                 args=["-c", "echo hello; echo oops >&2; head -c 100000 /dev/zero | tr '\\0' a"])
    done = wait_final(s, trigger(s, job["id"])["id"])
    assert done["status"] == "succeeded" and done["exit_code"] == 0
    out = done["output"]
    assert out.startswith("hello\n") and "oops" in out
    assert out.count("a") <= 65536 + 10
    assert "bytes dropped" in out


def test_command_failure_and_env(start_server):
    s = start_server(args=["--allow-commands"])
    job = create(s, schedule=FAR, command="/bin/sh", args=["-c", "echo $GREETING; exit 3"],
                 env={"GREETING": "hi"}, max_retries=0)
    done = wait_final(s, trigger(s, job["id"])["id"])
    assert done["status"] == "failed" and done["exit_code"] == 3
    assert done["output"].startswith("hi")


def test_command_timeout_kills_a_process_ignoring_sigterm(start_server):
    s = start_server(args=["--allow-commands"])
    job = create(s, schedule=FAR, command="/bin/sh",
                 args=["-c", "trap '' TERM; sleep 60"], timeout_ms=500, max_retries=0)
    t0 = time.time()
    done = wait_final(s, trigger(s, job["id"])["id"], timeout=20)
    assert done["status"] == "timed_out"
    assert time.time() - t0 < 12  # SIGTERM ignored, SIGKILL 5 s later


def test_commands_refused_without_allow_commands(server):
    r = server.post("/api/v1/jobs", {"schedule": FAR, "command": "/bin/true"})
    assert 400 <= r.status < 500
    assert r.json()["error"]["field"] == "command"
    assert "--allow-commands" in r.json()["error"]["message"]


def test_pause_stops_fires_and_resume_does_not_catch_up(server, sink):
    job = create(server, schedule="* * * * * *", api=sink.url + "/ok")
    wait_for(lambda: executions(server, job["id"]), timeout=5)
    assert server.post(f"/api/v1/jobs/{job['id']}/pause").status == 200
    time.sleep(0.3)
    n = len(executions(server, job["id"]))
    time.sleep(2.5)
    assert len(executions(server, job["id"])) == n  # nothing while paused
    assert server.post(f"/api/v1/jobs/{job['id']}/resume").status == 200
    t_resume = time.time()
    wait_for(lambda: len(executions(server, job["id"])) > n, timeout=5)
    new = [e for e in executions(server, job["id"])][: len(executions(server, job["id"])) - n]
    for e in new:  # no fire from the paused window was caught up
        assert parse_t(e["scheduled_at"]) >= int(t_resume)


def test_manual_trigger_runs_a_paused_job(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/ok", paused=True)
    done = wait_final(server, trigger(server, job["id"])["id"])
    assert done["status"] == "succeeded"


def test_overlap_forbid_records_skipped(server, sink):
    job = create(server, schedule="* * * * * *", api=sink.url + "/slow?ms=2500",
                 overlap="forbid", timeout_ms=10000)
    wait_for(lambda: any(e["status"] == "skipped" for e in executions(server, job["id"])),
             timeout=8)
    server.post(f"/api/v1/jobs/{job['id']}/pause")
    ex = executions(server, job["id"])
    assert any(e["status"] in ("running", "succeeded") for e in ex)
    # Never two at once at the sink.
    assert sink.max_concurrent == 1


def test_overlap_replace_cancels_the_running_one(server, sink):
    job = create(server, schedule="* * * * * *", api=sink.url + "/hang",
                 overlap="replace", timeout_ms=20000)
    wait_for(lambda: any(e["status"] == "cancelled" for e in executions(server, job["id"])),
             timeout=8)
    server.post(f"/api/v1/jobs/{job['id']}/pause")


def test_delete_stops_in_flight(server, sink):
    job = create(server, schedule=FAR, api=sink.url + "/hang", timeout_ms=20000)
    trigger(server, job["id"])
    wait_for(lambda: sink.count("/hang") == 1, timeout=5)
    assert server.post(f"/api/v1/jobs/{job['id']}/pause").status == 200
    r = server.get(f"/api/v1/jobs/{job['id']}")
    assert r.status == 200
    from conftest import http
    assert http("DELETE", server.url + f"/api/v1/jobs/{job['id']}").status == 204
    assert server.get(f"/api/v1/jobs/{job['id']}").status == 404
    assert server.get("/healthz").status == 200


def test_kill9_restart_exactly_once_per_fire(start_server, sink, tmp_path):
    s = start_server()
    tick = create(s, name="tick", schedule="* * * * * *", api=sink.url + "/ok")
    least = create(s, name="least", schedule=FAR, api=sink.url + "/hang", timeout_ms=30000,
                   type="ATLEAST_ONCE")
    most = create(s, name="most", schedule=FAR, api=sink.url + "/hang", timeout_ms=30000,
                  type="ATMOST_ONCE")
    e_least = trigger(s, least["id"])
    e_most = trigger(s, most["id"])
    wait_for(lambda: sink.count("/hang") == 2, timeout=5)
    time.sleep(1.2)
    s.stop(signal.SIGKILL)
    down = time.time()
    time.sleep(2.5)
    s2 = start_server(db=s.db)
    # ATMOST_ONCE: never started twice; failed with the reason.
    m = wait_final(s2, e_most["id"])
    assert m["status"] == "failed" and "lost" in m["error"]
    # ATLEAST_ONCE: run again as a new attempt.
    wait_for(lambda: sink.count("/hang") >= 3, timeout=5)
    l = execution(s2, e_least["id"])
    assert l["attempt"] == 2 and l["status"] in ("running", "pending")
    assert sink.count("/hang") == 3
    time.sleep(2.5)
    s2.post(f"/api/v1/jobs/{tick['id']}/pause")
    time.sleep(0.5)
    ex = executions(s2, tick["id"])
    secs = [int(parse_t(e["scheduled_at"])) for e in ex]
    assert len(secs) == len(set(secs)), "a fire was created twice"
    secs.sort()
    assert secs == list(range(secs[0], secs[-1] + 1)), "a fire in the window has no execution"
    assert secs[0] < down < secs[-1]
    for e in ex:
        wait_final(s2, e["id"])


def test_a_fire_written_before_is_never_sent_again(start_server, sink):
    """Fires of a tick are written already claimed and start when the write
    commits; a fire whose row exists (a schedule that stood behind its
    executions) is skipped by the insert and must not start either."""
    s = start_server()
    job = create(s, schedule="* * * * * *", api=sink.url + "/ok?rewind")
    wait_for(lambda: len([e for e in executions(s, job["id"])
                          if e["status"] == "succeeded"]) >= 3, timeout=10)
    s.stop()
    first, n = db_query(s.db, "SELECT min(scheduled_at), count(*) FROM executions "
                        "WHERE job_id = ?", (job["id"],))[0]
    # Put the schedule back to the first fire: every fire since is in grace
    # (60 s) and is computed again at start.
    db_execute(s.db, ("UPDATE jobs SET next_fire_at = ? WHERE id = ?", (first, job["id"])))
    s2 = start_server(db=s.db)
    wait_for(lambda: len(executions(s2, job["id"])) >= n + 2, timeout=10)
    s2.post(f"/api/v1/jobs/{job['id']}/pause")
    time.sleep(0.5)
    sent = [r["headers"].get("X-Aster-Scheduled-At") for r in sink.requests
            if r["path"] == "/ok?rewind"]
    assert len(sent) == len(set(sent)), "an instant was sent twice"
    ex = executions(s2, job["id"])
    assert len(ex) == len({e["scheduled_at"] for e in ex})
    for e in ex:
        assert wait_final(s2, e["id"])["attempt"] == 1


@pytest.mark.parametrize("policy", ["skip", "run_once", "run_all"])
def test_misfire_policies_after_downtime(start_server, sink, policy):
    s = start_server()
    job = create(s, schedule="* * * * * *", api=sink.url + "/ok", misfire=policy,
                 misfire_grace_ms=1000)
    wait_for(lambda: executions(s, job["id"]), timeout=5)
    s.stop(signal.SIGKILL)
    time.sleep(5)
    s2 = start_server(db=s.db)
    time.sleep(1.5)
    s2.post(f"/api/v1/jobs/{job['id']}/pause")
    time.sleep(0.3)
    ex = executions(s2, job["id"])
    missed = [e for e in ex if e["status"] == "missed"]
    catchup = [e for e in ex if e["trigger"] == "catchup"]
    secs = sorted(int(parse_t(e["scheduled_at"])) for e in ex)
    assert len(secs) == len(set(secs))
    if policy == "skip":
        assert len(missed) >= 2 and not catchup
    elif policy == "run_once":
        assert len(catchup) <= 1 and len(missed) >= 1
    else:
        assert len(catchup) >= 2 and not missed


@pytest.mark.parametrize("policy,catchups", [("skip", 0), ("run_once", 1), ("run_all", 100)])
def test_long_outage_stays_bounded(start_server, sink, policy, catchups):
    """Two hours of an every-second job passed over: at most 1,000 `missed`
    rows, one row that counts the rest, and the policy's catch-ups."""
    s = start_server()
    job = create(s, schedule="* * * * * *", api=sink.url + "/ok", misfire=policy,
                 misfire_grace_ms=1000, paused=True)
    s.stop(signal.SIGKILL)
    two_hours_ago = int((time.time() - 7200) * 1e6) // 1000000 * 1000000
    db_execute(s.db, ("UPDATE jobs SET paused = ?, next_fire_at = ? WHERE id = ?",
                      (False, two_hours_ago, job["id"])))
    s2 = start_server(db=s.db)
    def stored():
        return db_query(s.db, "SELECT count(*) FROM executions WHERE job_id = ?",
                        (job["id"],))[0][0]
    wait_for(lambda: stored() >= 1001 + catchups, timeout=20)
    s2.post(f"/api/v1/jobs/{job['id']}/pause")
    rows = []
    cursor = ""
    while True:
        r = s2.get(f"/api/v1/jobs/{job['id']}/executions?limit=1000" +
                   (f"&cursor={cursor}" if cursor else "")).json()
        rows += r["items"]
        if not r["next_cursor"]:
            break
        cursor = r["next_cursor"]
    missed = [e for e in rows if e["status"] == "missed"]
    summary = [e for e in missed if "passed over" in (e["error"] or "")]
    assert len(summary) == 1, [e["error"] for e in missed[:3]]
    passed_over = int(summary[0]["error"].split()[1])
    assert len(missed) == 1001
    assert len([e for e in rows if e["trigger"] == "catchup"]) == catchups
    assert 7190 <= len(missed) - 1 + passed_over + catchups <= 7210
