"""Fail-over end-to-end tests: real `aster api|scheduler|worker|serve`
processes sharing a private PostgreSQL server on loopback, killed with
SIGKILL, paused with SIGSTOP, and the server itself restarted under load.

What every test checks in the end is the store, read through the API: for
each every-second job, each second of the observed window has exactly one
execution row (none missing, none twice) and every execution reaches a final
status.  Take-over and reclaim times are printed (visible under `pytest -s`),
recorded as properties in the JUnit report, and listed in a terminal
summary section "Aster fail-over times".

Timings are generous (2 cores, ASan builds); each test takes 12-30 s."""
import collections
import json
import math
import os
import signal
import time

import pytest

from conftest import wait_for
from pgcluster import (FINAL, Cluster, PgServer, epoch_seconds, parse_t, pg_unavailable_reason,
                       role_missing)

# These tests start their own PostgreSQL (they restart it): run them once per
# build, in the PostgreSQL pass of `make test` (make e2e-pg), not twice.
pytestmark = pytest.mark.skipif(os.environ.get("ASTER_TEST_STORE") != "postgres",
                                reason="cluster tests run in the PostgreSQL pass (make e2e-pg)")

EVERY_SECOND = "* * * * * *"
FAR = "0 0 1 1 *"  # once a year: only manual triggers run
SETTLE_TIMEOUT = 45  # for every execution to reach a final status


# ---- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    """A private PostgreSQL server for this module, which tests may stop and
    start again (same port); removed at the end."""
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def cluster(pg, tmp_path, request):
    """A fresh database on `pg` and the processes a test starts on it (each
    logging to tmp_path); every process is killed at the end, by PID."""
    if not pg.running:  # an earlier test failed during an outage
        pg.start()
    db = pg.createdb("c_" + request.node.name)
    c = Cluster(pg, db, tmp_path)
    print(f"\n[{request.node.name}] database {c.store}, logs in {tmp_path}", flush=True)
    try:
        yield c
    finally:
        c.close()
        if not pg.running:
            pg.start()
        pg.dropdb(db)


class _Figures:
    """A plugin registered at run time: lists the figures at the end."""

    def __init__(self):
        self.lines = []

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("Aster fail-over times")
            for line in self.lines:
                terminalreporter.write_line(line)


_FIGURES = _Figures()


@pytest.fixture
def report(request, record_property):
    """report(key, seconds, text): prints a timing, records it as a JUnit
    property and lists it in the terminal summary."""
    pm = request.config.pluginmanager
    if not pm.is_registered(_FIGURES):
        pm.register(_FIGURES, "aster-failover-figures")

    def rep(key, seconds, text):
        line = f"{request.node.name}: {text}: {seconds:.2f} s"
        print(line, flush=True)
        record_property(key, round(seconds, 3))
        _FIGURES.lines.append(line)

    return rep


def need(*roles):
    for r in roles:
        why = role_missing(r)
        if why:
            pytest.skip(why)


# ---- helpers -----------------------------------------------------------------

def create_job(front, **doc):
    """POST /api/v1/jobs on `front` (an api or serve process)."""
    r = front.post("/api/v1/jobs", doc)
    assert r.status == 201, r.body
    return r.json()


def pause_all(api, jobs):
    for j in jobs:
        r = api.post(f"/api/v1/jobs/{j['id']}/pause")
        assert r.status == 200, r.body


def executions(api, job_id):
    """Every execution of a job, through the API's pagination."""
    out, cursor = [], None
    for _ in range(100):  # bounded: 100 pages of 1000
        q = f"/api/v1/executions?job_id={job_id}&limit=1000"
        if cursor:
            q += f"&cursor={cursor}"
        r = api.get(q, timeout=30)
        assert r.status == 200, r.body
        page = r.json()
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out
    raise AssertionError("more than 100 pages of executions")


def execution(api, exec_id):
    r = api.get(f"/api/v1/executions/{exec_id}")
    assert r.status == 200, r.body
    return r.json()


def sleep_until(t):
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def unfinished(c):
    return int(c.query("SELECT count(*) FROM executions "
                       "WHERE status IN ('pending', 'running')")[0][0])


def wait_settled(c, timeout=SETTLE_TIMEOUT):
    """Waits for every execution in the database to reach a final status."""
    deadline = time.time() + timeout
    n = None
    while time.time() < deadline:
        n = unfinished(c)
        if n == 0:
            return
        time.sleep(0.25)
    rows = c.query("SELECT job_id, scheduled_at, status, attempt, claimed_by, lease_until "
                   "FROM executions WHERE status IN ('pending', 'running') "
                   "ORDER BY scheduled_at LIMIT 20")
    raise AssertionError(f"{n} executions still pending/running {timeout} s after the load "
                         f"stopped; first ones: {rows}\n{c.dump_logs(15)}")


def check_every_second(api, jobs, w_start, w_end, want_status=("succeeded",)):
    """Asserts, for each job, exactly one non-manual execution per second in
    [w_start, w_end] with a final status in want_status.  Returns the rows."""
    assert w_end - w_start >= 5, (w_start, w_end)
    problems, rows = [], []
    for j in jobs:
        ex = [e for e in executions(api, j["id"]) if e["trigger"] != "manual"]
        by_sec = collections.defaultdict(list)
        for e in ex:
            by_sec[round(parse_t(e["scheduled_at"]))].append(e)
        for s in range(w_start, w_end + 1):
            got = by_sec.get(s, [])
            rows += got
            if len(got) != 1:
                problems.append(f"{j['name']} @{s}: {len(got)} executions "
                                f"{[(e['id'], e['status']) for e in got]}")
            for e in got:
                if e["status"] not in want_status:
                    problems.append(f"{j['name']} @{s}: status {e['status']} attempt "
                                    f"{e['attempt']} error {e['error']!r}")
    assert not problems, (f"{len(problems)} problems in window {w_start}..{w_end} "
                          f"({w_end - w_start + 1} s x {len(jobs)} jobs):\n"
                          + "\n".join(problems[:40]))
    return rows


def wait_one_leader(schedulers, timeout=30):
    """The single scheduler whose aster_scheduler_leader is 1."""
    def one():
        ls = [s for s in schedulers if s.alive() and s.leader() == 1]
        return ls[0] if len(ls) == 1 else None
    return wait_for(one, timeout, 0.2)


def gained(proc, after=0.0):
    """proc's "leadership gained" log lines at or after `after`."""
    return [l for l in proc.log_lines("leadership gained") if (l["_t"] or 0) >= after]


def first_fire_created_after(c, t):
    """The creation time (epoch s) of the first non-manual execution created
    after t, or None."""
    rows = c.query("SELECT created_at FROM executions WHERE \"trigger\" <> 'manual'")
    ts = sorted(epoch_seconds(r[0]) for r in rows)
    after = [x for x in ts if x > t]
    return after[0] if after else None


def node_of(proc, node_ids):
    """Which of node_ids (claimed_by values) is this process: by its PID as
    one ':'-separated part of the id, else by the id appearing in its log."""
    for n in node_ids:
        if str(proc.pid) in n.split(":"):
            return n
    text = proc.logs()
    for n in node_ids:
        if n in text:
            return n
    return None


# ---- tests -------------------------------------------------------------------

def test_leader_then_worker_killed_under_load(cluster, sink, report):
    """Two schedulers, three workers, one API server; 20 every-second jobs.
    kill -9 of the scheduler leader, then of a busy worker: the standby takes
    over with a larger fencing token, every second keeps exactly one
    execution, and every execution ends (succeeded: the sink answers 200)."""
    need("api", "scheduler", "worker")
    c = cluster
    api = c.start("api", name="api")
    scheds = [c.start("scheduler", name="sched-a"), c.start("scheduler", name="sched-b")]
    workers = [c.start("worker", name=f"worker-{i}") for i in range(3)]
    c.wait_healthy()
    wait_one_leader(scheds)

    # 15 quick jobs and 5 that take 1.5 s, so that workers always hold
    # running executions when one is killed.
    jobs = [create_job(api, name=f"tick-{i}", schedule=EVERY_SECOND,
                       api=sink.url + ("/ok" if i < 15 else "/slow?ms=1500"))
            for i in range(20)]
    t0 = time.time()
    w_start = math.ceil(t0) + 2  # first fires, then a short warm-up

    sleep_until(t0 + 5)
    leader = wait_one_leader(scheds, 10)
    standby = next(s for s in scheds if s is not leader)
    old = gained(leader)
    assert old, "the leader never logged 'leadership gained':\n" + leader.logs()[-3000:]
    old_token = int(old[-1]["fencing_token"])
    t_kill = time.time()
    leader.kill9()

    wait_for(lambda: standby.leader() == 1, 30, 0.1)
    t_seen = time.time()
    new = gained(standby, t_kill - 0.001)
    assert new, ("the standby became leader without logging 'leadership gained' after the "
                 "kill:\n" + standby.logs()[-3000:])
    assert int(new[-1]["fencing_token"]) > old_token, (new[-1], old_token)
    assert new[-1].get("node"), new[-1]
    takeover = new[-1]["_t"] - t_kill
    report("leader_takeover_s", takeover,
           "leader kill -9 -> standby logs 'leadership gained' "
           f"(token {old_token} -> {new[-1]['fencing_token']}; metric seen at "
           f"+{t_seen - t_kill:.2f} s)")
    # its first write may still be on its way
    first = wait_for(lambda: first_fire_created_after(c, t_kill + 0.05), 15, 0.1)
    report("leader_first_fire_s", first - t_kill,
           "leader kill -9 -> first fire created by the new leader")
    assert takeover < 10, takeover  # lease 5 s + ~1 s, with room for ASan

    # kill -9 the worker holding the most running executions
    sleep_until(t_seen + 1)
    running = c.query("SELECT claimed_by, count(*) FROM executions WHERE status = 'running' "
                      "AND claimed_by IS NOT NULL GROUP BY claimed_by ORDER BY 2 DESC")
    victim, vnode = None, None
    for node, _n in running:
        for w in workers:
            if node_of(w, [node]):
                victim, vnode = w, node
                break
        if victim:
            break
    if victim is None:
        victim = workers[0]
        print(f"no running execution matched to a worker ({running}); killing {victim}",
              flush=True)
    held = c.query(f"SELECT id FROM executions WHERE status = 'running' AND "
                   f"claimed_by = '{vnode}'") if vnode else []
    t_wkill = time.time()
    victim.kill9()
    print(f"killed {victim} (node {vnode}) holding {len(held)} running executions", flush=True)

    sleep_until(t_wkill + 10)
    t_end = time.time()
    pause_all(api, jobs)  # no new fires; the window ends before the pauses
    w_end = math.floor(t_end) - 2
    wait_settled(c)
    rows = check_every_second(api, jobs, w_start, w_end)

    if held:
        ids = ",".join(f"'{i}'" for i in (h[0] for h in held))
        after = c.query(f"SELECT id, status, attempt, claimed_by FROM executions "
                        f"WHERE id IN ({ids})")
        for eid, status, attempt, by in after:
            assert status in FINAL, (eid, status)
            # quick ones may have finished just before the kill; those that
            # did not were run again (ATLEAST_ONCE, the default) elsewhere
            if int(attempt) > 1:
                assert by != vnode, (eid, by)
        print(f"the killed worker's executions now: {collections.Counter((s, a) for _, s, a, _ in after)}",
              flush=True)
    assert standby.leader() == 1 and standby.alive()
    reruns = sum(1 for e in rows if e["attempt"] > 1)
    print(f"window {w_start}..{w_end}: {len(rows)} executions, all succeeded, "
          f"{reruns} run again after the worker kill", flush=True)


def test_worker_kill_takes_back_its_executions(cluster, sink, report):
    """A worker killed with -9 while running slow executions: within the
    heartbeat deadline another worker runs the ATLEAST_ONCE ones again as
    attempt 2, and the ATMOST_ONCE ones fail with "lost: executor died"
    (never sent again)."""
    need("api", "scheduler", "worker")
    c = cluster
    api = c.start("api", name="api")
    sched = c.start("scheduler", name="sched")
    w1 = c.start("worker", name="worker-1")
    c.wait_healthy()
    wait_one_leader([sched])
    least = create_job(api, name="slow-least", schedule=FAR, type="ATLEAST_ONCE",
                       api=sink.url + "/slow?ms=20000")
    most = create_job(api, name="slow-most", schedule=FAR, type="ATMOST_ONCE",
                      api=sink.url + "/slow?ms=20000")
    exl = [api.post(f"/api/v1/jobs/{least['id']}/trigger").json() for _ in range(2)]
    exm = [api.post(f"/api/v1/jobs/{most['id']}/trigger").json() for _ in range(2)]
    all_ids = [e["id"] for e in exl + exm]
    # all four running on worker-1 (the only worker yet), requests sent
    wait_for(lambda: sink.count() >= 4, 20, 0.1)
    wait_for(lambda: all(execution(api, i)["status"] == "running" for i in all_ids), 10, 0.2)
    owners = {r[0] for r in c.query(
        "SELECT claimed_by FROM executions WHERE id IN (%s)" % ",".join(f"'{i}'" for i in all_ids))}
    assert len(owners) == 1 and None not in owners, owners
    node1 = owners.pop()

    w2 = c.start("worker", name="worker-2")
    c.wait_healthy([w2])
    time.sleep(1)  # its first heartbeat
    t_kill = time.time()
    w1.kill9()

    least_ids = {e["id"] for e in exl}
    seen = {}  # execution id -> time its take-back was observed
    deadline = t_kill + 30
    while time.time() < deadline and len(seen) < 4:
        for eid in all_ids:
            if eid in seen:
                continue
            x = execution(api, eid)
            if eid in least_ids and x["attempt"] >= 2:
                seen[eid] = time.time()
            if eid not in least_ids and x["status"] in FINAL:
                assert x["status"] == "failed", x
                assert "lost: executor died" in (x["error"] or ""), x
                assert x["attempt"] == 1, x
                seen[eid] = time.time()
        time.sleep(0.1)
    assert len(seen) == 4, (f"taken back after 30 s: {len(seen)} of 4: "
                            f"{[execution(api, i) for i in all_ids]}\n{c.dump_logs(20)}")
    t_least = max(seen[e["id"]] for e in exl) - t_kill
    t_most = max(seen[e["id"]] for e in exm) - t_kill
    report("reclaim_atleast_once_s", t_least, "worker kill -9 -> ATLEAST_ONCE back as attempt 2")
    report("reclaim_atmost_once_s", t_most,
           "worker kill -9 -> ATMOST_ONCE failed 'lost: executor died'")
    for e in exm:  # the stored finish time agrees with what was observed
        x = execution(api, e["id"])
        assert x["finished_at"] and parse_t(x["finished_at"]) - t_kill < 15, x
    assert t_least < 15 and t_most < 15, (t_least, t_most)

    # attempt 2 of the ATLEAST_ONCE ones was sent by worker-2
    def attempt2_sent(eid):
        with sink.lock:
            return [r for r in sink.requests
                    if {k.lower(): v for k, v in r["headers"].items()}.get(
                        "x-aster-execution-id") == eid
                    and {k.lower(): v for k, v in r["headers"].items()}.get(
                        "x-aster-attempt") == "2"]
    for e in exl:
        wait_for(lambda: attempt2_sent(e["id"]), 15, 0.1)
    rows = c.query("SELECT id, claimed_by FROM executions WHERE id IN (%s)"
                   % ",".join(f"'{e['id']}'" for e in exl))
    for eid, by in rows:
        assert by and by != node1, (eid, by, node1)
    # the ATMOST_ONCE ones were never sent again
    with sink.lock:
        for e in exm:
            n = len([r for r in sink.requests
                     if {k.lower(): v for k, v in r["headers"].items()}.get(
                         "x-aster-execution-id") == e["id"]])
            assert n == 1, (e["id"], n)
    # and attempt 2 finishes normally (the sink answers after 20 s)
    for e in exl:
        x = wait_for(lambda: (lambda x: x if x["status"] in FINAL else None)(
            execution(api, e["id"])), 40, 0.5)
        assert x["status"] == "succeeded" and x["attempt"] == 2, x
        # (the lost attempt 1 leaves no entry in x["attempts"] on either
        # backend: reclaim only moves the execution on)
        assert x["attempts"][-1]["attempt"] == 2, x["attempts"]
        assert x["attempts"][-1]["status"] == "succeeded", x["attempts"]


@pytest.mark.parametrize("topology", ["roles", "serve"])
def test_postgres_restart_under_load(cluster, sink, report, topology):
    """PostgreSQL stopped for a few seconds under every-second load, then
    started again on the same port: every process answers 503 in /readyz
    during the outage and 200 after it, stays up, and every second of the
    window (outage included: those fires are created late, within grace)
    has exactly one execution, succeeded."""
    c = cluster
    if topology == "roles":
        need("api", "scheduler", "worker")
        api = c.start("api", name="api")
        procs = [api, c.start("scheduler", name="sched"), c.start("worker", name="worker")]
    else:
        api = c.start("serve", name="serve")
        procs = [api]
    c.wait_healthy()
    for p in procs:
        p.wait_status("/readyz", 200, 30)
    jobs = [create_job(api, name=f"tick-{i}", schedule=EVERY_SECOND, api=sink.url + "/ok")
            for i in range(10)]
    t0 = time.time()
    w_start = math.ceil(t0) + 2
    sleep_until(t0 + 5)

    t_down = time.time()
    c.pg.stop()
    seen, bodies = {}, {}
    # down for at least 3 s, and until every process has said 503 (max 15 s)
    while time.time() < t_down + 15 and (time.time() < t_down + 3 or len(seen) < len(procs)):
        for p in procs:
            if p.name in seen:
                continue
            try:
                r = p.get("/readyz", timeout=2)
            except OSError:
                continue
            if r.status == 503:
                seen[p.name] = time.time() - t_down
                bodies[p.name] = r.body
        time.sleep(0.1)
    t_up = time.time()
    c.pg.start()
    assert len(seen) == len(procs), (f"/readyz never answered 503 while PostgreSQL was down "
                                     f"({t_up - t_down:.1f} s): answered by {sorted(seen)}")
    for name, body in bodies.items():
        doc = json.loads(body)  # a JSON reason
        assert doc.get("status") != "ready" and (doc.get("reason") or doc.get("error")), (name, doc)
    print(f"/readyz 503 after {({k: round(v, 2) for k, v in seen.items()})} s; "
          f"PostgreSQL down {t_up - t_down:.1f} s", flush=True)

    ready = {}
    for p in procs:
        p.wait_status("/readyz", 200, 40)
        ready[p.name] = time.time() - t_up
    report(f"pg_restart_ready_{topology}_s", max(ready.values()),
           f"PostgreSQL back -> /readyz 200 on every process ({topology})")
    for p in procs:
        assert p.alive(), p
    sleep_until(t_up + max(ready.values()) + 5)
    t_end = time.time()
    pause_all(api, jobs)
    w_end = math.floor(t_end) - 2
    wait_settled(c)
    rows = check_every_second(api, jobs, w_start, w_end)
    late = [e for e in rows if t_down - 1 <= parse_t(e["scheduled_at"]) <= t_up]
    assert late, "no fire was due during the outage?"
    print(f"window {w_start}..{w_end}: {len(rows)} executions, all succeeded; "
          f"{len(late)} were due during the outage (max drift "
          f"{max(e['drift_ms'] or 0 for e in late)} ms)", flush=True)


def test_paused_leader_is_fenced(cluster, sink, report):
    """SIGSTOP of the leader for longer than its lease (2 s): the standby
    takes over; jobs paused meanwhile get no fire from the old leader when it
    wakes with its stale schedule (its writes are fenced), the old leader
    logs "leadership lost", and every second of the other jobs keeps exactly
    one execution."""
    need("api", "scheduler", "worker")
    c = cluster
    lease = ("--leader-lease", "2s")
    api = c.start("api", name="api")
    scheds = [c.start("scheduler", *lease, name="sched-a"),
              c.start("scheduler", *lease, name="sched-b")]
    c.start("worker", name="worker")
    c.wait_healthy()
    wait_one_leader(scheds)
    jobs = [create_job(api, name=f"tick-{i}", schedule=EVERY_SECOND, api=sink.url + "/ok")
            for i in range(6)]
    probes, steady = jobs[:3], jobs[3:]
    t0 = time.time()
    w_start = math.ceil(t0) + 2
    sleep_until(t0 + 4)

    a = wait_one_leader(scheds, 10)
    b = next(s for s in scheds if s is not a)
    ga = gained(a)
    assert ga, "the leader never logged 'leadership gained':\n" + a.logs()[-3000:]
    token_a = int(ga[-1]["fencing_token"])
    t_stop = time.time()
    a.send(signal.SIGSTOP)
    wait_for(lambda: b.leader() == 1, 20, 0.1)
    g = gained(b, t_stop)
    assert g, b.logs()[-3000:]
    token_b = int(g[-1]["fencing_token"])
    assert token_b > token_a, (token_a, token_b)
    report("stopped_leader_takeover_s", g[-1]["_t"] - t_stop,
           "leader SIGSTOP -> standby 'leadership gained' (lease 2 s)")

    # The old leader, frozen, still believes these jobs fire every second.
    pause_all(api, probes)
    t_pause = time.time()
    sleep_until(t_pause + 4)  # seconds its stale timers will find due
    t_cont = time.time()
    a.send(signal.SIGCONT)
    lost = wait_for(lambda: [l for l in a.log_lines("leadership lost")
                             if (l["_t"] or 0) >= t_stop], 15, 0.1)
    assert int(lost[-1]["fencing_token"]) == token_a, (lost[-1], token_a)
    print(f"old leader logged 'leadership lost' {lost[-1]['_t'] - t_cont:.2f} s after SIGCONT",
          flush=True)
    wait_for(lambda: a.leader() == 0, 10, 0.1)
    sleep_until(t_cont + 4)
    assert b.leader() == 1 and a.leader() == 0

    t_end = time.time()
    pause_all(api, steady)
    w_end = math.floor(t_end) - 2
    wait_settled(c)
    check_every_second(api, steady, w_start, w_end)

    # No fire of a paused job after the pause: neither the new leader (it
    # knows) nor the old one (stale, but fenced) created one.
    bad = []
    for j in probes:
        for e in executions(api, j["id"]):
            if e["trigger"] != "manual" and parse_t(e["scheduled_at"]) >= t_pause + 2:
                bad.append(e)
    if bad:
        ids = ",".join(f"'{e['id']}'" for e in bad)
        created = c.query(f"SELECT id, scheduled_at, created_at FROM executions WHERE id IN ({ids})")
        pytest.fail(f"{len(bad)} fires of paused jobs after the pause (t_pause {t_pause:.3f}, "
                    f"SIGCONT {t_cont:.3f}): created_at {[(i, epoch_seconds(s), epoch_seconds(k)) for i, s, k in created]} "
                    f"-- created after SIGCONT means the old leader wrote them\n{a.logs()[-3000:]}")
    # where the store says so, the current term is the new leader's
    try:
        row = c.query("SELECT token FROM leader")
    except RuntimeError:
        row = None
    if row:
        assert int(row[0][0]) == token_b, (row, token_b)
    woke = [(l.get("msg"), l.get("reason") or l.get("error")) for l in a.log_lines()
            if (l["_t"] or 0) >= t_cont - 0.5 and l.get("level") in ("warn", "error")]
    print(f"old leader's warnings/errors on waking: {woke[:10]}", flush=True)


def lock_waiters(c):
    """(application_name, query) of this database's sessions waiting for a
    lock."""
    return [(r[0], r[1]) for r in c.query(
        "SELECT application_name, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'")]


def sessions_of(c, app):
    """(state, wait_event_type, query) of the sessions of one process."""
    return c.query("SELECT state, coalesce(wait_event_type, '-'), "
                   "regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_activity "
                   f"WHERE datname = current_database() AND application_name = '{app}'")


def test_stale_leader_write_is_refused_by_the_fence(cluster, sink, report):
    """The fencing check itself, made to matter: the leader's fire write is
    held (a row lock on the leadership row) until the leadership has passed
    to another term; when it resumes, the store refuses it (the leader logs
    "leadership lost" ... "fenced"), and no fire is written while no
    scheduler holds a valid term."""
    need("api", "scheduler", "worker")
    c = cluster
    api = c.start("api", name="api")
    scheds = [c.start("scheduler", name="sched-a"), c.start("scheduler", name="sched-b")]
    c.start("worker", name="worker")
    c.wait_healthy()
    wait_one_leader(scheds)
    jobs = [create_job(api, name=f"tick-{i}", schedule=EVERY_SECOND, api=sink.url + "/ok")
            for i in range(4)]
    t0 = time.time()
    w_start = math.ceil(t0) + 2
    sleep_until(t0 + 3)
    a = wait_one_leader(scheds, 10)
    token_a = int(gained(a)[-1]["fencing_token"])

    # Hold the leadership row until the leader's fire write (its fence,
    # SELECT ... FOR SHARE) waits for it; if its renewal comes first, let
    # go and try again.
    s = c.session()
    blocked = False
    for _ in range(6):
        row = s.run("BEGIN; SELECT token, lease_until FROM leader WHERE id = 1 FOR UPDATE")
        deadline = time.time() + 3
        while time.time() < deadline and not blocked:
            w = lock_waiters(c)
            blocked = any(app == a.name and "FOR SHARE" in q for app, q in w)
            if any(app == a.name and "FOR SHARE" not in q for app, q in w):
                break  # its renewal waits: not what this test needs
            time.sleep(0.05)
        if blocked:
            break
        s.run("ROLLBACK")
        time.sleep(0.7)
    assert blocked, "the leader's fence never waited on the held row: " + repr(lock_waiters(c))
    assert int(row[0][0]) == token_a, (row, token_a)
    # Another term begins, with a lease of 4 s that nobody will renew.
    per_s = round(int(row[0][1]) / epoch_seconds(row[0][1]))  # the store's time unit
    t_i = time.time()
    lease_end = t_i + 4
    s.run(f"UPDATE leader SET token = token + 1, node = 'intruder', "
          f"lease_until = {int(lease_end * per_s)}; COMMIT")
    lost = wait_for(lambda: [l for l in a.log_lines("leadership lost") if (l["_t"] or 0) >= t_i - 0.5],
                    10, 0.05)
    report("fenced_write_refused_s", lost[-1]["_t"] - t_i,
           "term moved on -> held leader's write refused, 'leadership lost'")
    assert "fenc" in (lost[-1].get("reason") or ""), lost[-1]
    assert int(lost[-1]["fencing_token"]) == token_a, lost[-1]
    # a scheduler takes the leadership back once the intruder's lease ends
    nl = wait_one_leader(scheds, 20)
    t_back = time.time()
    g = gained(nl, t_i)
    assert g and int(g[-1]["fencing_token"]) == token_a + 2, (g, token_a)
    assert g[-1]["_t"] >= lease_end - 0.05, (g[-1]["_t"], lease_end)
    report("fenced_takeover_s", g[-1]["_t"] - lease_end,
           f"intruder's lease ended -> {nl.name} 'leadership gained'")
    sleep_until(t_back + 3)
    t_end = time.time()
    pause_all(api, jobs)
    w_end = math.floor(t_end) - 2
    wait_settled(c)

    # no fire was written while no scheduler held a valid term
    created = sorted(epoch_seconds(r[0]) for r in c.query(
        "SELECT created_at FROM executions WHERE \"trigger\" <> 'manual'"))
    during = [x for x in created if t_i + 0.05 < x < lease_end - 0.05]
    assert not during, (f"{len(during)} fires written while the intruder held the term "
                        f"({t_i:.3f}..{lease_end:.3f}): {during[:10]}\n{a.logs()[-3000:]}")
    check_every_second(api, jobs, w_start, w_end)


def test_leader_frozen_mid_write_does_not_block_takeover(cluster, sink, report):
    """The leader frozen (SIGSTOP) in the middle of its fire-writing
    transaction, which holds the leadership row FOR SHARE: its lease ends
    and the standby must still take over within the lease and a little,
    as for a leader that died; when the old one wakes, nothing is doubled.
    (A leader cut off by the network mid-transaction is the same case: its
    session stays open on the server until TCP notices.)"""
    need("api", "scheduler", "worker")
    c = cluster
    lease = ("--leader-lease", "2s")
    api = c.start("api", name="api")
    scheds = [c.start("scheduler", *lease, name="sched-a"),
              c.start("scheduler", *lease, name="sched-b")]
    c.start("worker", name="worker")
    c.wait_healthy()
    wait_one_leader(scheds)
    jobs = [create_job(api, name=f"tick-{i}", schedule=EVERY_SECOND, api=sink.url + "/ok")
            for i in range(4)]
    t0 = time.time()
    w_start = math.ceil(t0) + 2
    sleep_until(t0 + 3)

    # Lock one job's row: the leader's next fire write (fence taken, then
    # the fire's insert checks its job) waits on it.  Freeze the leader
    # there, then let the row go: its transaction stays open, idle.
    s = c.session()
    blocked = False
    for _ in range(6):
        a = wait_one_leader(scheds, 10)  # a leader held up too long loses its lease
        b = next(x for x in scheds if x is not a)
        s.run(f"BEGIN; SELECT id FROM jobs WHERE id = '{jobs[0]['id']}' FOR UPDATE")
        deadline = time.time() + 3
        while time.time() < deadline and not blocked:
            blocked = any(app == a.name and q.startswith(("INSERT INTO executions", "UPDATE jobs"))
                          for app, q in lock_waiters(c))
            time.sleep(0.02)
        if blocked:
            break
        s.run("ROLLBACK")
        time.sleep(0.5)
    assert blocked, "the leader's fire write never waited on the job row: " + repr(lock_waiters(c))
    a.send(signal.SIGSTOP)
    t_stop = time.time()
    s.run("ROLLBACK")
    try:
        ok = True
        wait_for(lambda: b.leader() == 1, 15, 0.1)
    except AssertionError:
        ok = False
    state = {"frozen leader": sessions_of(c, a.name), "standby": sessions_of(c, b.name)}
    a.send(signal.SIGCONT)
    t_cont = time.time()
    assert ok, (f"the standby did not take over in 15 s while the old leader sat frozen in its "
                f"fire-writing transaction (lease 2 s); sessions then: {state}")
    g = gained(b, t_stop)
    assert g, b.logs()[-3000:]
    report("frozen_mid_write_takeover_s", g[-1]["_t"] - t_stop,
           "leader SIGSTOP inside its write -> standby 'leadership gained' (lease 2 s)")
    wait_for(lambda: a.leader() == 0, 15, 0.1)
    sleep_until(max(t_cont + 3, w_start + 8))  # a window of at least 5 s to check
    t_end = time.time()
    pause_all(api, jobs)
    w_end = math.floor(t_end) - 2
    wait_settled(c)
    check_every_second(api, jobs, w_start, w_end)


def test_replace_fire_claimed_by_the_leader_cancels_another_workers_attempt(cluster, sink):
    """overlap=replace across processes: the leader (`serve`, which also
    works) writes the new fire already claimed in its tick; the attempt it
    replaces runs on another worker, which must stop it when told."""
    need("api", "worker", "serve")
    c = cluster
    api = c.start("api", name="api")
    w1 = c.start("worker", name="worker-1")
    c.wait_healthy()
    job = create_job(api, name="replace", schedule="* * * * * *", overlap="replace",
                     paused=True, timeout_ms=20000, api=sink.url + "/slow?ms=20000")
    old = api.post(f"/api/v1/jobs/{job['id']}/trigger").json()  # a paused job: only worker-1
    wait_for(lambda: execution(api, old["id"])["status"] == "running", 10, 0.1)
    lead = c.start("serve", name="serve")
    c.wait_healthy([lead])
    wait_one_leader([lead])
    r = api.post(f"/api/v1/jobs/{job['id']}/resume")
    assert r.status == 200, r.body
    wait_for(lambda: execution(api, old["id"])["status"] == "cancelled", 10, 0.2)
    api.post(f"/api/v1/jobs/{job['id']}/pause")
    assert w1.alive()
