#!/usr/bin/env python3
"""report.py DIR N RATE SECS CORES — the summary table of bench/queue-pg/run.sh.

Reads the JSON files run.sh left in DIR (a missing stage is shown as "-")
and prints every figure beside tuned graphile-worker's, pgbench's and the
targets of issue 8: Aster's drain rate at least 2x tuned graphile-worker's,
job creation at least 10,000/s.
"""
import json
import os
import sys

DRAIN_RATIO_MIN = 2.0
CREATE_MIN = 10000


def load(d, name):
    """DIR/NAME.json, merged with DIR/NAME.{stats,meta,win}.json."""
    out = {}
    for suffix in ("", ".stats", ".meta", ".win"):
        p = os.path.join(d, f"{name}{suffix}.json")
        if os.path.exists(p):
            with open(p) as f:
                text = f.read().strip()
            if text:
                out.update(json.loads(text.splitlines()[-1]))
    return out or None


def num(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def verdict(ok):
    return "ok" if ok else "MISSED"


def main():
    d, n, rate, secs, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    sink = load(d, "sink")
    pgb = load(d, "pgbench")
    create = load(d, "create")
    gw = {c: load(d, f"gw-{c}") for c in ("defaults", "tuned", "noop", "steady")}
    gw_add = {c: load(d, f"gw-{c}.add") for c in ("defaults", "tuned", "noop")}
    gw_feed = load(d, "gw-steady.feed")
    aster = {}
    for name in sorted(os.listdir(d)):
        if name.startswith("aster-w") and name.endswith(".meta.json"):
            w = int(name[len("aster-w"):-len(".meta.json")])
            aster[w] = load(d, f"aster-w{w}")
    steady = load(d, "aster-steady")
    ref = gw["tuned"]["per_s"] if gw["tuned"] and gw["tuned"].get("per_s") else None

    print(f"== summary: one run on {cores} cores shared by PostgreSQL, nginx, the queue and the load"
          " generators; compare figures only within a run")
    print()
    print("ceilings")
    print(f"  nginx sink, POST (wrk -c64)                 {num(sink and sink['per_s']):>10} req/s")
    print(f"  pgbench single-row INSERT (-c8, prepared)   {num(pgb and pgb['per_s']):>10} tx/s")
    print()
    print(f"drain: {n:,} jobs queued before the consumers start, each a POST to the sink")
    print(f"  {'':32} {'jobs/s':>9} {'vs tuned gw':>12} {'start p50':>10} {'p99 ms':>9}"
          f" {'CPU s: queue':>13} {'PostgreSQL':>10} {'others':>7}  done")
    rows = []
    for w in sorted(aster):
        a = aster[w]
        label = f"aster, {w} worker{'s' if w > 1 else ''}"
        if a.get("mode") == "serve":
            label = "aster serve (drains while enqueued)"
        rows.append((label, a.get("per_s"), a.get("lat_p50_ms"), a.get("lat_p99_ms"), a.get("cpu_aster_s"),
                     a.get("cpu_pg_s"), a.get("others_cores"), a.get("succeeded"), True))
    for c in ("defaults", "tuned", "noop"):
        g = gw[c]
        if g:
            label = f"graphile-worker, {c}" + (f" (c={g['concurrency']})" if c == "tuned" else "")
            if c == "noop":
                label = "graphile-worker, tuned, no-op task"
            rows.append((label, g.get("per_s"), g.get("lat_p50_ms"), g.get("lat_p99_ms"), g.get("cpu_s"),
                         g.get("cpu_pg_s"), g.get("others_cores"), g.get("finished"), False))
    noisy = False
    for label, per_s, p50, p99, cq, cpg, oth, done, is_aster in rows:
        noisy = noisy or (oth or 0) > 0.2
        ratio = per_s / ref if (ref and per_s and "no-op" not in label) else None
        mark = ""
        if is_aster and ratio is not None:
            mark = f" {verdict(ratio >= DRAIN_RATIO_MIN)}"
        rtxt = f"{ratio:.2f}x{mark}" if ratio is not None else "-"
        print(f"  {label:32} {num(per_s):>9} {rtxt:>12} {num(p50, 1):>10} {num(p99, 1):>9}"
              f" {num(cq, 1):>13} {num(cpg, 1):>10} {num(oth, 2):>7}  {num(done)}")
    print("  (start latency = start - trigger/add time, so here it includes the wait behind the backlog;"
          " CPU = seconds of CPU over the drain;")
    print("   others = cores used meanwhile by processes not started by this run; the no-op row is not the same")
    print("   work: graphile-worker's own ceiling here, without the POST)")
    if noisy:
        print("  WARNING other processes used more than 0.2 cores during a drain: the machine was not quiet, rerun")
    for w in sorted(aster):
        a = aster[w]
        if w > 1 and a.get("shares"):
            print(f"  aster, {w} workers: executions per worker (their /metrics): "
                  + ", ".join(num(x) for x in a["shares"]))
    for w in sorted(aster):
        a = aster[w]
        problems = []
        if a.get("failed"):
            problems.append(f"{a['failed']} failed (first error: {a.get('first_error')})")
        if a.get("unfinished"):
            problems.append(f"{a['unfinished']} unfinished")
        if a.get("retried"):
            problems.append(f"{a['retried']} retried")
        if a.get("accepted") is not None and a.get("total") is not None and a["accepted"] != a["total"]:
            problems.append(f"{a['accepted']} triggers accepted but {a['total']} executions stored")
        shares = a.get("shares") or []
        if a.get("mode") == "roles" and shares and (len(shares) != w or min(shares) == 0):
            problems.append(f"executions per worker (from /metrics): {shares}")
        if problems:
            print(f"  WARNING aster {w} worker(s): " + "; ".join(problems))
    for c in ("defaults", "tuned", "noop"):
        g = gw[c]
        if g and c == "defaults" and g.get("timed_out") and not g.get("errors"):
            print(f"  NOTE graphile-worker defaults: cut short by QPG_DEFAULTS_MAX; its rate is over the"
                  f" {num(g.get('finished'))} of {num(g.get('jobs'))} jobs done")
        elif g and (g.get("errors") or g.get("timed_out")):
            print(f"  WARNING graphile-worker {c}: {g.get('errors')} errors, cut short: {g.get('timed_out')}"
                  f" ({g.get('finished')} of {g.get('jobs')} done)")
    if sink and sink.get("per_s"):
        top = max([r[1] or 0 for r in rows if "no-op" not in r[0]] or [0])
        if top > 0.8 * sink["per_s"]:
            print("  NOTE the fastest drain is above 80% of the sink's own rate: the sink may be the limit")
    print()
    print(f"steady: {rate:,} jobs/s for {secs} s, consumers already running: time from trigger to start")
    print(f"  {'':32} {'offered/s':>9} {'done':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'others':>7}")
    if steady:
        offered = steady["accepted"] / steady["enqueue_s"] if steady.get("enqueue_s") else None
        label = f"aster, {steady['workers']} worker{'s' if steady['workers'] > 1 else ''}"
        if steady.get("mode") == "serve":
            label = "aster serve"
        print(f"  {label:32} {num(offered):>9} {num(steady.get('succeeded')):>8} {num(steady.get('lat_p50_ms'), 1):>9}"
              f" {num(steady.get('lat_p99_ms'), 1):>9} {num(steady.get('lat_max_ms'), 1):>9}"
              f" {num(steady.get('others_cores'), 2):>7}")
        if steady.get("failed") or steady.get("unfinished"):
            print(f"  WARNING aster steady: {steady.get('failed')} failed, {steady.get('unfinished')} unfinished")
    g = gw["steady"]
    if g:
        offered = gw_feed.get("per_s") if gw_feed else None
        print(f"  {'graphile-worker, tuned':32} {num(offered):>9} {num(g.get('finished')):>8} {num(g.get('lat_p50_ms'), 1):>9}"
              f" {num(g.get('lat_p99_ms'), 1):>9} {num(g.get('lat_max_ms'), 1):>9}"
              f" {num(g.get('others_cores'), 2):>7}")
    print("  (aster: triggers POSTed to aster api by wrk, one per request; graphile-worker: addJobs every 5 ms)")
    print()
    print("enqueue")
    for w in sorted(aster):
        a = aster[w]
        if a.get("enqueue_s"):
            print(f"  aster, POST /api/v1/jobs/{{id}}/trigger (wrk -c64), before {w} worker(s): "
                  f"{num(a['accepted'] / a['enqueue_s'])}/s ({num(a['accepted'])} in {a['enqueue_s']:.1f} s)")
    for c in ("defaults", "tuned"):
        if gw_add.get(c):
            print(f"  graphile-worker addJobs (10,000 per call), before {c}: {num(gw_add[c]['per_s'])}/s")
    print()
    print("job creation")
    if create:
        print(f"  POST /api/v1/jobs, aster api + PostgreSQL (wrk -c64): {num(create['per_s'])}/s,"
              f" p99 {num(create.get('p99_ms'), 1)} ms, non-201 {create.get('non201')}, jobs stored {num(create.get('stored'))};"
              f" CPU s: api {create.get('cpu_api_s')}, PostgreSQL {create.get('cpu_pg_s')},"
              f" others {num(create.get('others_cores'), 2)} cores")
    print()
    print("targets")
    if ref:
        for w in sorted(aster):
            a = aster[w]
            if a.get("per_s"):
                r = a["per_s"] / ref
                print(f"  aster drain, {w} worker(s), vs tuned graphile-worker: {r:.2f}x"
                      f" (target >= {DRAIN_RATIO_MIN:.2f}) {verdict(r >= DRAIN_RATIO_MIN)}")
    if create:
        ok = create["per_s"] >= CREATE_MIN and not create.get("non201")
        line = f"  job creation: {num(create['per_s'])}/s (target >= {CREATE_MIN:,}/s, no non-201) {verdict(ok)}"
        if pgb and pgb.get("per_s"):
            line += f"; {create['per_s'] / pgb['per_s']:.2f}x pgbench's single-row INSERT rate"
        print(line)


if __name__ == "__main__":
    main()
