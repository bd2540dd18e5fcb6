#!/usr/bin/env python3
"""fire.py — the Aster side of bench/fire/run.sh (standard library only).

  fire.py measure PORT PID N SECS SINK OUT.json
      create N jobs on "* * * * * *" POSTing to SINK, wait for the next
      second boundary (+1 s), sample Aster's CPU over SECS seconds, then
      pause every job and wait (bounded) until nothing is pending/running.
  fire.py stats DB OUT.json          add the figures read from Aster's db
  fire.py spawn PORT K OUT.json      K manual triggers of one /bin/true job
  fire.py spawn-stats DB OUT.json    executions/s from the db
  fire.py report DIR                 the summary table from DIR/*.json
"""
import concurrent.futures as cf
import http.client
import json
import os
import sqlite3
import sys
import threading
import time

THREADS = 16
_local = threading.local()


def req(port, method, path, body=None):
    """One API call over a per-thread keep-alive connection."""
    for attempt in range(3):
        c = getattr(_local, "conn", None)
        if c is None:
            c = _local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdr = {"Content-Type": "application/json"} if data is not None else {}
            c.request(method, path, body=data, headers=hdr)
            r = c.getresponse()
            out = r.read()
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {out[:200]!r}")
            return json.loads(out) if out else None
        except (OSError, http.client.HTTPException):
            c.close()
            _local.conn = None
            if attempt == 2:
                raise
            time.sleep(0.05)


def pool_map(fn, items):
    with cf.ThreadPoolExecutor(THREADS) as ex:
        return list(ex.map(fn, items))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (fields 14, 15)


def sleep_until(t):
    while True:
        d = t - time.time()
        if d <= 0:
            return
        time.sleep(min(d, 0.5))


def wait_idle(port, bound_s):
    """Until no execution is pending or running, or bound_s has passed."""
    end = time.time() + bound_s
    while time.time() < end:
        busy = False
        for st in ("pending", "running"):
            r = req(port, "GET", f"/api/v1/executions?status={st}&limit=1")
            busy = busy or bool(r["items"])
        if not busy:
            return True
        time.sleep(0.5)
    return False


def measure(port, pid, n, secs, sink, out):
    port, pid, n, secs = int(port), int(pid), int(n), int(secs)
    # Created paused, then resumed together: jobs that fired while the rest
    # were still being created would slow the creation down and start the
    # load piecemeal.
    t = time.time()
    ids = pool_map(lambda i: req(port, "POST", "/api/v1/jobs", {
        "name": f"fire-{i}", "schedule": "* * * * * *", "api": sink,
        "max_retries": 0, "paused": True})["id"], range(n))
    create_s = time.time() - t
    t = time.time()
    pool_map(lambda i: req(port, "POST", f"/api/v1/jobs/{i}/resume"), ids)
    resume_s = time.time() - t
    t0 = int(time.time()) + 2          # a whole second, >= 1 s after the last create
    sleep_until(t0)
    c0 = cpu_ticks(pid)
    sleep_until(t0 + secs)
    c1 = cpu_ticks(pid)
    t = time.time()
    pool_map(lambda i: req(port, "POST", f"/api/v1/jobs/{i}/pause"), ids)
    pause_s = time.time() - t
    drained = wait_idle(port, 30)
    hz = os.sysconf("SC_CLK_TCK")
    res = {"n": n, "secs": secs, "t0": t0, "create_s": round(create_s, 2),
           "create_per_s": round(n / create_s), "resume_s": round(resume_s, 2), "pause_s": round(pause_s, 2),
           "drained": drained, "cpu_pct": round(100.0 * (c1 - c0) / hz / secs, 1)}
    with open(out, "w") as f:
        json.dump(res, f)


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def stats(db, out):
    with open(out) as f:
        res = json.load(f)
    n, secs, t0 = res["n"], res["secs"], res["t0"]
    lo, hi = t0 * 1_000_000, (t0 + secs) * 1_000_000
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT status, count(*) FROM executions WHERE trigger <> 'manual' "
        "AND scheduled_at >= ? AND scheduled_at < ? GROUP BY status", (lo, hi)).fetchall()
    by = dict(rows)
    drift = [r[0] for r in con.execute(
        "SELECT drift_ms FROM executions WHERE trigger <> 'manual' AND scheduled_at >= ? "
        "AND scheduled_at < ? AND drift_ms IS NOT NULL ORDER BY drift_ms", (lo, hi))]
    # Worst second: the fewest succeeded fires scheduled in one second.
    per_sec = [r[0] for r in con.execute(
        "SELECT count(*) FROM executions WHERE trigger <> 'manual' AND status = 'succeeded' "
        "AND scheduled_at >= ? AND scheduled_at < ? GROUP BY scheduled_at", (lo, hi))]
    # Whether the engine keeps up, or runs behind more each second: the
    # median drift of the window's first and last 5 seconds (exec/s counts
    # the window's fires, which a backlog finishes after the window).
    def p50_of(a, b):
        d = [r[0] for r in con.execute(
            "SELECT drift_ms FROM executions WHERE trigger <> 'manual' AND scheduled_at >= ? "
            "AND scheduled_at < ? AND drift_ms IS NOT NULL ORDER BY drift_ms", (a, b))]
        return pct(d, 50)
    first5 = p50_of(lo, lo + 5_000_000)
    last5 = p50_of(hi - 5_000_000, hi)
    con.close()
    ok = by.get("succeeded", 0)
    found = sum(by.values())
    res.update({
        "expected": n * secs, "found": found, "succeeded": ok,
        "missed": n * secs - ok, "not_recorded": n * secs - found,
        "statuses": by, "exec_per_s": round(ok / secs),
        "min_per_second": min(per_sec) if per_sec else 0,
        "drift_p50": pct(drift, 50), "drift_p99": pct(drift, 99),
        "drift_max": drift[-1] if drift else None,
        "drift_p50_first5": first5, "drift_p50_last5": last5,
    })
    with open(out, "w") as f:
        json.dump(res, f)


def spawn(port, k, out):
    port, k = int(port), int(k)
    job = req(port, "POST", "/api/v1/jobs", {
        "name": "spawn", "schedule": "0 0 1 1 *", "command": "/bin/true",
        "max_retries": 0})
    t = time.time()
    pool_map(lambda i: req(port, "POST", f"/api/v1/jobs/{job['id']}/trigger"), range(k))
    t_sent = time.time()
    drained = wait_idle(port, 120)
    with open(out, "w") as f:
        json.dump({"k": k, "t_start": t, "trigger_s": round(t_sent - t, 3),
                   "trigger_per_s": round(k / (t_sent - t)), "drained": drained}, f)


def spawn_stats(db, out):
    with open(out) as f:
        res = json.load(f)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    by = dict(con.execute("SELECT status, count(*) FROM executions GROUP BY status").fetchall())
    first_start, last_fin = con.execute(
        "SELECT min(started_at), max(finished_at) FROM executions").fetchone()
    con.close()
    ok = by.get("succeeded", 0)
    wall = last_fin / 1e6 - res["t_start"]
    run = (last_fin - first_start) / 1e6
    res.update({"statuses": by, "succeeded": ok, "wall_s": round(wall, 3),
                "exec_per_s": round(ok / wall), "run_s": round(run, 3),
                "exec_per_s_running": round(ok / run) if run > 0 else None})
    with open(out, "w") as f:
        json.dump(res, f)


def report(d):
    def load(name):
        try:
            with open(os.path.join(d, name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def fmt(v):
        return "-" if v is None else str(v)

    print(f"{'':8}{'jobs':>7}{'exec/s':>9}{'missed':>9}{'drift p50':>11}{'p99':>8}"
          f"{'max':>8}{'CPU%':>7}  notes")
    for n in sorted({int(f.split('-')[1].split('.')[0]) for f in os.listdir(d)
                     if f.startswith(("aster-", "croner-")) and f.endswith(".json")}):
        for who in ("aster", "libcurl", "croner"):
            r = load(f"{'curl' if who == 'libcurl' else who}-{n}.json")
            if not r:
                print(f"{who:8}{n:>7}  (no result)")
                continue
            notes = []
            if who == "aster":
                other = {k: v for k, v in r.get("statuses", {}).items() if k != "succeeded"}
                if other:
                    notes.append("statuses " + ",".join(f"{k}={v}" for k, v in other.items()))
                if r.get("not_recorded"):
                    notes.append(f"not recorded {r['not_recorded']}")
                notes.append(f"worst second {r.get('min_per_second')}/{n}")
                if r.get("drift_p50_first5") is not None:
                    notes.append(f"drift p50 first/last 5 s {r['drift_p50_first5']}/"
                                 f"{r['drift_p50_last5']} ms")
            elif who == "libcurl":
                notes.append(f"bare libcurl loop, {r['c']} in flight: start delay as drift "
                             "(the floor)")
                if r.get("failed"):
                    notes.append(f"failed {r['failed']}")
            else:
                if r.get("not_fired"):
                    notes.append(f"never fired {r['not_fired']}")
                if r.get("failed"):
                    notes.append(f"failed {r['failed']}")
                if r.get("unfinished"):
                    notes.append(f"unanswered 30 s after the window {r['unfinished']}")
            if not r.get("drained", True):
                notes.append("NOT drained")
            if os.path.exists(os.path.join(d, f"{who}-{n}.killed")):
                notes.append("ignored SIGTERM for 15 s: SIGKILLed")
            print(f"{who:8}{n:>7}{fmt(r.get('exec_per_s')):>9}{fmt(r.get('missed')):>9}"
                  f"{fmt(r.get('drift_p50')):>11}{fmt(r.get('drift_p99')):>8}"
                  f"{fmt(r.get('drift_max')):>8}{fmt(r.get('cpu_pct')):>7}  {'; '.join(notes)}")
    print("  (drift in ms; missed = expected fires - succeeded; CPU% of one core over the window)")
    sp, bare = load("spawn.json"), load("bare.json")
    if sp and bare:
        ratio = sp["exec_per_s"] / bare["per_s"] if bare["per_s"] else 0
        print(f"command jobs: aster {sp['exec_per_s']}/s of /bin/true ({sp['succeeded']}/{sp['k']} "
              f"succeeded in {sp['wall_s']} s from the first trigger; triggers accepted at "
              f"{sp['trigger_per_s']}/s; {sp.get('exec_per_s_running')}/s first start to last "
              f"finish)\n              bare posix_spawn+waitpid loop {bare['per_s']}/s  ->  "
              f"aster at {100 * ratio:.0f}% of the machine's limit")
    for n in (1000, 10000):
        a, c = load(f"aster-{n}.json"), load(f"curl-{n}.json")
        if a and c and a.get("drift_p99") is not None and c.get("drift_p99"):
            print(f"drift p99 at {n} jobs: aster {a['drift_p99']} ms, bare libcurl "
                  f"{c['drift_p99']} ms ({a['drift_p99'] / c['drift_p99']:.1f}x the floor)")
    a = load("aster-10000.json")
    if a:
        ok = a["missed"] == 0 and a["drift_p99"] is not None and a["drift_p99"] < 50
        print(f"target: 10,000 jobs every second, no missed fire, drift p99 < 50 ms -> "
              f"{'MET' if ok else 'NOT MET'} (missed {a['missed']}, p99 {a['drift_p99']} ms)")


if __name__ == "__main__":
    cmds = {"measure": measure, "stats": stats, "spawn": spawn, "spawn-stats": spawn_stats,
            "report": report}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
