#!/usr/bin/env bash
# bench/queue-pg/run.sh [ASTER_BIN] — Aster's PostgreSQL queue beside
# graphile-worker and pgbench, on one throwaway PostgreSQL server.
#
# In one run, everything on 127.0.0.1, every process started here and stopped
# by PID on exit:
#   sink      nginx answering 200 to any POST (the HTTP target of every job);
#             wrk POSTs to it for 5 s to show its ceiling.
#   pgbench   single-row INSERTs into a small table, -c 8 -j 2 -T 10,
#             prepared statements: the ceiling for anything that writes a row
#             per job.
#   create    POST /api/v1/jobs on `aster api` with PostgreSQL, wrk -c64 10 s,
#             a new job name per request (bench/api/post.lua).
#   aster     for W in 1 2 4: QPG_N (100,000) manual triggers of one job
#             (schedule "0 0 1 1 *", target the sink) enqueued through
#             `aster api` (POST /api/v1/jobs/{id}/trigger, wrk -c64,
#             trigger.lua) BEFORE any worker runs, then W `aster worker`
#             processes drain them.  Figures from the executions table:
#             executions/s = succeeded / (last finished_at - first started_at);
#             start latency = started_at - created_at, which here includes the
#             time a trigger waited in the queue.
#   steady    the latency without the backlog: workers already running,
#             triggers at QPG_STEADY_RATE (2,000/s) for QPG_STEADY_SECS (10 s),
#             paced by trigger.lua; p50/p99 of started_at - created_at.
#   graphile  graphile-worker (npm, pinned in package-lock.json): the same
#             QPG_N jobs added with addJobs (bulk add_jobs), then drained by one
#             process whose task POSTs to the sink with node's fetch, once with
#             graphile's defaults and once tuned (gw.mjs says how); once more
#             tuned with a task that does nothing (graphile-worker's own
#             ceiling, not the same work); then the same steady stage, the
#             jobs due added every 5 ms (addJobs: one add_job transaction per
#             job tops out far below 2,000/s with fsync on, since PostgreSQL
#             serializes the commits of transactions that NOTIFY).
# Then it prints the table: each drain rate beside tuned graphile-worker's
# (target: Aster >= 2x), creation beside 10,000/s and pgbench.
#
# ASTER_BIN defaults to build/aster (make build).  When it has the
# `api`/`worker`/`scheduler` commands the cluster is 1 api + 1 scheduler + W
# workers; without them (QPG_ROLES=serve, or auto on an older binary) one
# `aster serve --store postgres://...` does everything, the triggers are
# drained while they are enqueued, and only W=1 is run.
#
# Installs what it lacks with apt-get (postgresql, nginx, wrk, curl, python3,
# nodejs, npm) and graphile-worker with `npm ci` into bench/queue-pg/node_modules.
#
# Environment:
#   QPG_N=100000           jobs per drain          QPG_WORKERS="1 2 4"
#   QPG_STEADY_RATE=2000   QPG_STEADY_SECS=10      QPG_STEADY_WORKERS=1
#   QPG_DRAIN_MAX=300      seconds a drain may take before it is cut short
#   QPG_DEFAULTS_MAX=120   the same for graphile-worker with its defaults (one job
#                          at a time: its rate is the same over 120 s as over all)
#   QPG_FSYNC=on           PostgreSQL's fsync (off: as scripts/pg-test.sh)
#   QPG_ROLES=auto|roles|serve
#   QPG_STAGES="sink pgbench create aster steady graphile"  (a subset for a quick look)
#   QPG_WORKER_CONCURRENCY  passed to `aster worker --concurrency` when set
#   GW_CONCURRENCY=200 GW_POOL=25   tuned graphile-worker's concurrency and pool
#   QPG_PG_STATS=1         load pg_stat_statements and print, after each drain, the
#                          statements that took PostgreSQL's time (a diagnosis: it
#                          costs a little throughput)
#   QPG_KEEP=1             keep the temp dir (logs, JSON) and print its path
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build/aster}"
N="${QPG_N:-100000}"
WORKERS="${QPG_WORKERS:-1 2 4}"
STEADY_RATE="${QPG_STEADY_RATE:-2000}"
STEADY_SECS="${QPG_STEADY_SECS:-10}"
STEADY_WORKERS="${QPG_STEADY_WORKERS:-1}"
DRAIN_MAX="${QPG_DRAIN_MAX:-300}"
DEFAULTS_MAX="${QPG_DEFAULTS_MAX:-120}"
FSYNC="${QPG_FSYNC:-on}"
ROLES="${QPG_ROLES:-auto}"
STAGES=" ${QPG_STAGES:-sink pgbench create aster steady graphile} "
WORKER_CONC="${QPG_WORKER_CONCURRENCY:-}"
PG_STATS="${QPG_PG_STATS:-}"

die() { echo "bench/queue-pg: $*" >&2; exit 1; }
note() { echo "bench/queue-pg: $*" >&2; }
stage() { [[ "$STAGES" == *" $1 "* ]]; }

[ -x "$bin" ] || die "$bin not found or not executable (build first: make build)"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
for v in N STEADY_RATE STEADY_SECS STEADY_WORKERS DRAIN_MAX DEFAULTS_MAX; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "QPG_$v must be a positive integer"
done
[ "$N" -le 10000000 ] && [ "$DRAIN_MAX" -le 3600 ] && [ "$STEADY_SECS" -le 300 ] ||
    die "QPG_N <= 10,000,000, QPG_DRAIN_MAX <= 3600 and QPG_STEADY_SECS <= 300, please"
case "$FSYNC" in on | off) ;; *) die "QPG_FSYNC is on or off" ;; esac

if [ "$ROLES" = auto ]; then
    help_text="$("$bin" help 2>&1 || true)"
    if grep -qE '^[[:space:]]+worker[[:space:]]' <<<"$help_text"; then ROLES=roles; else ROLES=serve; fi
fi
case "$ROLES" in
    roles) ;;
    serve)
        note "serve mode: one 'aster serve' per stage, drained while enqueued, W=1 only"
        WORKERS=1
        ;;
    *) die "QPG_ROLES is auto, roles or serve" ;;
esac

# ---- cleanup ------------------------------------------------------------------
tmp=""
pids=()
pg_started=0
policy_rc_d=""
as_pg=()
bindir=""

stop_pid() { # stop_pid PID: SIGTERM, up to 10 s of grace, then SIGKILL
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "PID $pid ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

stop_pids() { # stop_pids PID...: every one of them, and forget them
    local p q keep=()
    for p in "$@"; do stop_pid "$p"; done
    for q in "${pids[@]}"; do
        for p in "$@"; do [ "$p" = "$q" ] && continue 2; done
        keep+=("$q")
    done
    pids=("${keep[@]}")
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    if [ "$pg_started" -eq 1 ]; then
        (cd "$tmp" && "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/pg" -m fast -w stop >/dev/null 2>&1) || true
    fi
    [ -n "$policy_rc_d" ] && rm -f "$policy_rc_d"
    if [ -n "$tmp" ]; then
        if [ -n "${QPG_KEEP:-}" ]; then echo "kept: $tmp" >&2; else rm -rf "$tmp"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- dependencies ---------------------------------------------------------------
find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && printf '%s\n' "$d"
    done | sort -V | tail -n 1
}
nginx_bin="$(command -v nginx || true)"
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
bindir="$(find_bindir)"
missing=()
[ -n "$bindir" ] || missing+=(postgresql)
[ -n "$nginx_bin" ] || missing+=(nginx-light)
for c in wrk curl python3; do command -v "$c" >/dev/null || missing+=("$c"); done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; as root: apt-get update && apt-get install -y ${missing[*]}"
    note "installing ${missing[*]}"
    # The postgresql and nginx packages would start system services: keep
    # them from starting anything during the install (policy-rc.d, exit 101).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_rc_d=/usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null &&
            apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            die "could not install ${missing[*]}"
    fi
    [ -n "$policy_rc_d" ] && rm -f "$policy_rc_d" && policy_rc_d=""
    nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
    bindir="$(find_bindir)"
fi
[ -x "$nginx_bin" ] || die "nginx not found"
[ -n "$bindir" ] || die "PostgreSQL's initdb/pgbench not found"
if stage graphile && [ ! -f "$here/node_modules/graphile-worker/package.json" ]; then
    note "installing graphile-worker into $here/node_modules"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $here"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile="$(ulimit -n)"
[ "$nofile" = unlimited ] && nofile=65536

tmp="$(mktemp -d "${TMPDIR:-/tmp}/aster-queue-pg.XXXXXX")"
chmod 755 "$tmp"

# ---- helpers ----------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # wait_http URL PID NAME: until URL answers 2xx, at most 15 s
    local url="$1" pid="$2" name="$3" i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { note "$name exited"; return 1; }
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    note "$name did not answer $url within 15 s"
    return 1
}

hz="$(getconf CLK_TCK)"
pids_ticks() { # CPU ticks (user + system) of these live PIDs
    local p sum=0 t
    for p in "$@"; do
        t="$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)"
        sum=$((sum + t))
    done
    echo "$sum"
}
pg_ticks() { # CPU ticks of the whole PostgreSQL server: postmaster, live backends, reaped ones
    local pm t kids
    pm="$(head -1 "$tmp/pg/postmaster.pid")"
    t="$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")"
    kids="$(pgrep -P "$pm" | tr '\n' ' ' || true)"
    # shellcheck disable=SC2086
    echo $((t + $(pids_ticks $kids)))
}
secs_of() { awk -v t="$1" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'; }

# Other sessions' processes on the machine skew every figure: each stage
# measures the CPU used by processes that are not this script's (busy time
# less that of this script's process tree and PostgreSQL's), in cores.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 }' /proc/stat; } # user nice system
ours_ticks() { # this script and its descendants (live, and reaped through cutime), and PostgreSQL
    local pm
    pm="$(head -1 "$tmp/pg/postmaster.pid")"
    ps -e -o pid=,ppid= | awk -v root="$$" -v pm="$pm" '
        { parent[$1] = $2; pid[NR] = $1 }
        END {
            for (i = 1; i <= NR; i++) {
                q = pid[i]
                for (d = 0; d < 64 && q > 1; d++) {
                    if (q == root || q == pm) { print pid[i]; break }
                    q = parent[q]
                }
            }
        }' | while read -r p; do
        awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{ s += $1 } END { print s + 0 }'
}
win_b0=0 win_o0=0 win_t0=0
win_begin() { win_b0="$(busy_ticks)"; win_o0="$(ours_ticks)"; win_t0="$(date +%s.%N)"; }
win_end() { # win_end NAME: writes $tmp/NAME.win.json
    local b1 o1 t1
    b1="$(busy_ticks)"; o1="$(ours_ticks)"; t1="$(date +%s.%N)"
    awk -v b=$((b1 - win_b0)) -v o=$((o1 - win_o0)) -v t0="$win_t0" -v t1="$t1" -v hz="$hz" '
        BEGIN { dt = t1 - t0; other = (b - o) / hz / dt; if (other < 0) other = 0
                printf "{\"wall_s\": %.2f, \"busy_cores\": %.2f, \"others_cores\": %.2f}\n", dt, b / hz / dt, other }' \
        >"$tmp/$1.win.json"
    awk '/others_cores/ { split($0, a, "\"others_cores\": "); if (a[2] + 0 > 0.2) exit 0; exit 1 }' "$tmp/$1.win.json" &&
        note "$1: other processes on this machine used $(sed 's/.*"others_cores": \([0-9.]*\).*/\1/' "$tmp/$1.win.json") cores meanwhile: figures skewed"
    return 0
}

# ---- PostgreSQL -------------------------------------------------------------------
# As scripts/pg-test.sh does it, but durable by default (QPG_FSYNC=on): a
# queue is only as fast as its commits, and production commits are fsync'd.
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$tmp"
    as_pg=(runuser -u postgres --)
fi
(cd "$tmp" && "${as_pg[@]}" "$bindir/initdb" -D "$tmp/pg" -U aster --auth=trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$tmp/initdb.log" 2>&1) || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
pg_extra=""
[ -n "$PG_STATS" ] && pg_extra="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
for _ in 1 2 3 4 5; do
    pgport="$(free_port)"
    if (cd "$tmp" && "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $pgport -k $tmp -c max_connections=400 -c fsync=$FSYNC $pg_extra" \
        start >/dev/null 2>&1); then
        pg_started=1
        break
    fi
done
[ "$pg_started" -eq 1 ] || { cat "$tmp/pg.log" >&2; die "PostgreSQL did not start"; }

pgurl() { echo "postgres://aster@127.0.0.1:$pgport/$1"; }
psql_q() { # psql_q DB SQL: one value per line, unaligned
    "$bindir/psql" -h 127.0.0.1 -p "$pgport" -U aster -d "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}
newdb() { "$bindir/createdb" -h 127.0.0.1 -p "$pgport" -U aster "$1"; }
# A stage's database is dropped once it is measured, so that no autovacuum of
# it runs during the next stage; a CHECKPOINT before each measured window
# starts every one with the same clean slate.
dropdb_q() { "$bindir/dropdb" -h 127.0.0.1 -p "$pgport" -U aster --force "$1"; }
settle() { psql_q postgres "CHECKPOINT" >/dev/null; }
if [ -n "$PG_STATS" ]; then
    psql_q postgres "CREATE EXTENSION pg_stat_statements" >/dev/null || die "pg_stat_statements is not available"
fi
pgss_reset() { [ -z "$PG_STATS" ] || psql_q postgres "SELECT pg_stat_statements_reset()" >/dev/null; }
pgss_dump() { # pgss_dump DB NAME JOBS: the statements that took the most time in DB, per job
    [ -n "$PG_STATS" ] || return 0
    psql_q postgres "SELECT format('%10s calls %8s ms %7s us/call %6s calls/job %7s us/job  %s', s.calls,
            round(s.total_exec_time), round((s.mean_exec_time * 1000)::numeric), round(s.calls::numeric / $3, 2),
            round((s.total_exec_time * 1000 / $3)::numeric), regexp_replace(left(s.query, 110), '\s+', ' ', 'g'))
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = '$1' ORDER BY s.total_exec_time DESC LIMIT 10" >"$tmp/$2.pgss.txt"
    echo "   pg_stat_statements, $1 (top 10 by time):"
    sed 's/^/     /' "$tmp/$2.pgss.txt"
}
pg_settings="$(psql_q postgres "SELECT string_agg(name || ' ' || setting || coalesce(unit, ''), ', ' ORDER BY name)
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')")"

# ---- the sink: nginx answering 200 to anything -----------------------------------------
ng="$tmp/nginx"
mkdir -p "$ng"
ngport="$(free_port)"
cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections $((nofile - 100)); }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$ngport backlog=16384;
        location / { return 200 "ok"; }
    }
}
EOF
"$nginx_bin" -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf" -g 'daemon off;' >"$ng/stdout.log" 2>&1 &
ng_pid=$!
pids+=("$ng_pid")
sink="http://127.0.0.1:$ngport/hook"
wait_http "http://127.0.0.1:$ngport/" "$ng_pid" nginx || { cat "$ng/error.log" >&2; die "nginx did not start"; }

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL" \
    "$("$bindir/postgres" --version | awk '{print $3}') ($pg_settings); nginx" \
    "$("$nginx_bin" -v 2>&1 | sed 's/.*\///'); node $(node --version 2>/dev/null || echo -);" \
    "graphile-worker $(sed -n 's/^  "version": "\(.*\)",/\1/p' "$here/node_modules/graphile-worker/package.json" 2>/dev/null || echo -)"
echo "== aster: $bin ($("$bin" version 2>/dev/null | head -1 || true)), mode $ROLES; N=$N; workers: $WORKERS"

# wrk_rate FILE: Requests/sec; wrk_secs FILE: the run's length in s
wrk_rate() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_secs() {
    sed -n 's/.* requests in \([0-9.]*\)\([a-z]*\),.*/\1 \2/p' "$1" |
        awk '{ print ($2 == "ms") ? $1 / 1000 : ($2 == "m") ? $1 * 60 : ($2 == "h") ? $1 * 3600 : $1 }'
}
wrk_p99() {
    awk '
    function ms(v,   n, u) { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        return u == "us" ? n / 1000 : u == "ms" ? n : u == "s" ? n * 1000 : n * 60000 }
    /Latency Distribution/ { d = 1 } d && $1 == "99%" { print ms($2); exit }' "$1"
}

# ---- aster processes ---------------------------------------------------------------------
# History pruning would delete executions past 1000 per job before they are
# counted: keep them all.  Env, not flags, so that every role accepts it.
export ASTER_HISTORY_PER_JOB=10000000 ASTER_HISTORY_PRUNE_INTERVAL=1d

aster_pid="" aster_port=""
start_aster() { # start_aster ROLE DB NAME [ARGS...]: sets aster_pid, aster_port
    local role="$1" db="$2" name="$3"
    shift 3
    aster_port="$(free_port)"
    "$bin" "$role" --listen "127.0.0.1:$aster_port" --store "$(pgurl "$db")" --log-level warn \
        --log-format json "$@" >"$tmp/$name.log" 2>&1 &
    aster_pid=$!
    pids+=("$aster_pid")
    wait_http "http://127.0.0.1:$aster_port/healthz" "$aster_pid" "aster $role ($name)" ||
        { tail -5 "$tmp/$name.log" >&2; die "aster $role did not start"; }
}

create_job() { # create_job BASE NAME: prints the new job's id
    local out="$tmp/job-$2.json" code id
    code="$(curl -sS --max-time 10 -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"name\":\"$2\",\"schedule\":\"0 0 1 1 *\",\"api\":\"$sink\",\"body\":\"{\\\"i\\\":1}\",\"max_retries\":0}" \
        "$1/api/v1/jobs")"
    [ "$code" = 201 ] || { cat "$out" >&2; die "creating job $2 answered $code"; }
    id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$out")"
    [ -n "$id" ] || die "no id in $(cat "$out")"
    echo "$id"
}

# enqueue URL COUNT NAME [RATE]: COUNT triggers through wrk + trigger.lua into
# $tmp/NAME.txt; prints "ACCEPTED SECONDS" (SECONDS: wrk's run, which ends
# when the last trigger has been answered).
enqueue() {
    local url="$1" count="$2" name="$3" rate="${4:-}" conns=64 bound accepted secs wpid i
    bound=$((DRAIN_MAX + 60))
    if [ -n "$rate" ]; then
        conns=32
        bound=$((count / rate + 60))
    fi
    rm -f "$tmp/$name.done."*
    QPG_COUNT="$count" QPG_RATE="$rate" QPG_THREADS=2 QPG_DONE="$tmp/$name.done" \
        wrk -t2 -c"$conns" -d"${bound}s" --timeout 30s -s "$here/trigger.lua" "$url" >"$tmp/$name.txt" 2>&1 &
    wpid=$!
    pids+=("$wpid")
    # wrk runs for its whole -d unless interrupted: SIGINT once both threads
    # are done (again while it runs: a thread that has stopped may take it).
    for ((i = 0; i < (bound + 30) * 10; i++)); do
        [ "$(find "$tmp" -maxdepth 1 -name "$name.done.*" | wc -l)" -ge 2 ] && break
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    for ((i = 0; i < 100; i++)); do
        kill -0 "$wpid" 2>/dev/null || break
        kill -INT "$wpid" 2>/dev/null || true
        sleep 0.1
    done
    stop_pids "$wpid"
    accepted="$(sed -n 's/^triggers: \([0-9]*\) accepted.*/\1/p' "$tmp/$name.txt")"
    secs="$(wrk_secs "$tmp/$name.txt")"
    [ -n "$accepted" ] && [ -n "$secs" ] || { cat "$tmp/$name.txt" >&2; die "could not read wrk's output ($name)"; }
    grep -q '^first refused' "$tmp/$name.txt" && note "$name: $(grep '^first refused' "$tmp/$name.txt")"
    grep -q ' 0 unanswered' "$tmp/$name.txt" || note "$name: $(grep '^triggers:' "$tmp/$name.txt")"
    echo "$accepted $secs"
}

unfinished() { psql_q "$1" "SELECT count(*) FROM executions WHERE status IN ('pending', 'running')"; }

wait_drained() { # wait_drained DB BOUND_S: until no execution is pending or running
    # EXISTS, every 0.5 s: a count(*) over 100,000 rows would itself load the
    # server being measured (the drain's span comes from the rows anyway).
    local db="$1" bound="$2" i
    for ((i = 0; i < bound * 2; i++)); do
        [ "$(psql_q "$db" "SELECT EXISTS (SELECT 1 FROM executions WHERE status IN ('pending', 'running'))")" = f ] &&
            return 0
        sleep 0.5
    done
    note "$db: $(unfinished "$db") executions still unfinished after $bound s"
    return 1
}

exec_stats() { # exec_stats DB: the figures of its manual executions, one JSON object
    psql_q "$1" "SELECT json_build_object(
        'total', count(*),
        'succeeded', count(*) FILTER (WHERE status = 'succeeded'),
        'failed', count(*) FILTER (WHERE status NOT IN ('succeeded', 'pending', 'running')),
        'unfinished', count(*) FILTER (WHERE status IN ('pending', 'running')),
        'retried', count(*) FILTER (WHERE attempt > 1),
        'drain_s', (max(finished_at) - min(started_at)) / 1e6,
        'per_s', count(*) FILTER (WHERE status = 'succeeded')
                 / nullif((max(finished_at) - min(started_at)) / 1e6, 0),
        'enqueue_span_s', (max(created_at) - min(created_at)) / 1e6,
        'lat_p50_ms', percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at) / 1e3,
        'lat_p99_ms', percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - created_at) / 1e3,
        'lat_max_ms', max(started_at - created_at) / 1e3,
        'first_error', min(error))
        FROM executions WHERE \"trigger\" = 'manual'"
}

# ---- 1. sink ---------------------------------------------------------------------------
if stage sink; then
    echo "== sink: wrk -t2 -c64 -d5s POST $sink"
    printf 'wrk.method = "POST"\nwrk.body = "{\\"i\\":1}"\nwrk.headers["Content-Type"] = "application/json"\n' \
        >"$tmp/sink.lua"
    timeout 60 wrk -t2 -c64 -d5s --latency -s "$tmp/sink.lua" "$sink" >"$tmp/sink.txt" 2>&1 ||
        { cat "$tmp/sink.txt" >&2; die "wrk against the sink failed"; }
    printf '{"per_s": %s, "p99_ms": %s}\n' "$(wrk_rate "$tmp/sink.txt")" "$(wrk_p99 "$tmp/sink.txt")" >"$tmp/sink.json"
    echo "   $(cat "$tmp/sink.json")"
fi

# ---- 2. pgbench -----------------------------------------------------------------------
if stage pgbench; then
    echo "== pgbench: one-row INSERT per transaction, -c 8 -j 2 -T 10 -M prepared"
    newdb pgb
    psql_q pgb "CREATE TABLE qpg_insert (id bigserial PRIMARY KEY, payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())" >/dev/null
    settle
    timeout 60 "$bindir/pgbench" -h 127.0.0.1 -p "$pgport" -U aster -n -M prepared -c 8 -j 2 -T 10 \
        -f "$here/insert.sql" pgb >"$tmp/pgbench.txt" 2>&1 || { cat "$tmp/pgbench.txt" >&2; die "pgbench failed"; }
    tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$tmp/pgbench.txt" | tail -1)"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$tmp/pgbench.txt")"
    rows="$(psql_q pgb "SELECT count(*) FROM qpg_insert")"
    printf '{"per_s": %s, "lat_avg_ms": %s, "rows": %s}\n' "$tps" "${lat:-null}" "$rows" >"$tmp/pgbench.json"
    dropdb_q pgb
    echo "   $(cat "$tmp/pgbench.json")"
fi

# ---- 3. job creation through aster api -------------------------------------------------
if stage create; then
    newdb aster_create
    if [ "$ROLES" = roles ]; then start_aster api aster_create create-api; else start_aster serve aster_create create-serve; fi
    api_pid="$aster_pid"
    base="http://127.0.0.1:$aster_port"
    echo "== create: wrk -t2 -c64 -d10s POST $base/api/v1/jobs (bench/api/post.lua)"
    settle
    t0="$(pg_ticks)"
    a0="$(pids_ticks "$api_pid")"
    win_begin
    BENCH_TAG="$$" timeout 60 wrk -t2 -c64 -d10s --latency -s "$root/bench/api/post.lua" "$base/api/v1/jobs" \
        >"$tmp/create.txt" 2>&1 || { cat "$tmp/create.txt" >&2; die "wrk (create) failed"; }
    win_end create
    t1="$(pg_ticks)"
    a1="$(pids_ticks "$api_pid")"
    non201="$(sed -n 's/^non-201: \([0-9]*\)$/\1/p' "$tmp/create.txt")"
    grep '^first non-201' "$tmp/create.txt" >&2 || true
    stored="$(psql_q aster_create "SELECT count(*) FROM jobs")"
    printf '{"per_s": %s, "p99_ms": %s, "non201": %s, "stored": %s, "secs": %s, "cpu_api_s": %s, "cpu_pg_s": %s}\n' \
        "$(wrk_rate "$tmp/create.txt")" "$(wrk_p99 "$tmp/create.txt")" "${non201:-null}" "$stored" \
        "$(wrk_secs "$tmp/create.txt")" "$(secs_of $((a1 - a0)))" "$(secs_of $((t1 - t0)))" >"$tmp/create.json"
    echo "   $(cat "$tmp/create.json")"
    stop_pids "$api_pid"
    dropdb_q aster_create
fi

# ---- 4. aster: N triggers enqueued, then drained by W workers ---------------------------
worker_args=()
[ -n "$WORKER_CONC" ] && worker_args=(--concurrency "$WORKER_CONC")
if stage aster; then
    for w in $WORKERS; do
        db="aster_w$w"
        newdb "$db"
        stage_pids=()
        if [ "$ROLES" = roles ]; then
            start_aster api "$db" "w$w-api"
            stage_pids+=("$aster_pid")
            base="http://127.0.0.1:$aster_port"
            start_aster scheduler "$db" "w$w-scheduler"
            stage_pids+=("$aster_pid")
        else
            start_aster serve "$db" "w$w-serve"
            stage_pids+=("$aster_pid")
            base="http://127.0.0.1:$aster_port"
        fi
        job="$(create_job "$base" "drain-w$w")"
        echo "== aster, $w worker(s): enqueue $N triggers (wrk -t2 -c64, trigger.lua), then drain"
        read -r accepted enq_s < <(enqueue "$base/api/v1/jobs/$job/trigger" "$N" "enqueue-w$w")
        echo "   enqueued $accepted in ${enq_s} s"
        wk=()
        settle
        pgss_reset
        t0="$(pg_ticks)"
        win_begin
        if [ "$ROLES" = roles ]; then
            pending="$(unfinished "$db")"
            [ "$pending" -eq "$accepted" ] || note "w$w: $pending executions pending, $accepted triggers accepted"
            wk_ports=()
            for ((i = 1; i <= w; i++)); do
                start_aster worker "$db" "w$w-worker$i" "${worker_args[@]}"
                wk+=("$aster_pid")
                wk_ports+=("$aster_port")
                stage_pids+=("$aster_pid")
            done
        else
            wk=("${stage_pids[0]}")
        fi
        a0=0 # the workers are new: all their CPU counts (serve: also the enqueue's)
        drained=1
        wait_drained "$db" "$DRAIN_MAX" || drained=0
        win_end "aster-w$w"
        t1="$(pg_ticks)"
        a1="$(pids_ticks "${wk[@]}")"
        exec_stats "$db" >"$tmp/aster-w$w.stats.json"
        # Each worker's share, from its own /metrics: all of them took part?
        shares=""
        if [ "$ROLES" = roles ]; then
            for p in "${wk_ports[@]}"; do
                shares+="$(curl -fsS --max-time 5 "http://127.0.0.1:$p/metrics" 2>/dev/null |
                    awk '/^aster_executions_total[{ ]/ { s += $NF } END { printf "%d", s }'),"
            done
        fi
        printf '{"workers": %d, "mode": "%s", "accepted": %s, "enqueue_s": %s, "drained": %d, "cpu_aster_s": %s, "cpu_pg_s": %s, "shares": [%s]}\n' \
            "$w" "$ROLES" "$accepted" "$enq_s" "$drained" "$(secs_of $((a1 - a0)))" "$(secs_of $((t1 - t0)))" \
            "${shares%,}" >"$tmp/aster-w$w.meta.json"
        echo "   $(cat "$tmp/aster-w$w.stats.json")"
        pgss_dump "$db" "aster-w$w" "$accepted"
        stop_pids "${stage_pids[@]}"
        dropdb_q "$db"
    done
fi

# ---- 5. aster: steady trigger rate, workers running --------------------------------------
if stage steady; then
    db=aster_steady
    newdb "$db"
    stage_pids=()
    wk=()
    if [ "$ROLES" = roles ]; then
        start_aster api "$db" steady-api
        stage_pids+=("$aster_pid")
        base="http://127.0.0.1:$aster_port"
        start_aster scheduler "$db" steady-scheduler
        stage_pids+=("$aster_pid")
        for ((i = 1; i <= STEADY_WORKERS; i++)); do
            start_aster worker "$db" "steady-worker$i" "${worker_args[@]}"
            wk+=("$aster_pid")
            stage_pids+=("$aster_pid")
        done
    else
        start_aster serve "$db" steady-serve
        stage_pids+=("$aster_pid")
        wk=("$aster_pid")
        base="http://127.0.0.1:$aster_port"
    fi
    job="$(create_job "$base" steady)"
    count=$((STEADY_RATE * STEADY_SECS))
    echo "== aster steady: $STEADY_RATE triggers/s for $STEADY_SECS s ($STEADY_WORKERS worker(s) running)"
    a0="$(pids_ticks "${wk[@]}")"
    settle
    pgss_reset
    t0="$(pg_ticks)"
    win_begin
    read -r accepted enq_s < <(enqueue "$base/api/v1/jobs/$job/trigger" "$count" steady "$STEADY_RATE")
    drained=1
    wait_drained "$db" 60 || drained=0
    win_end aster-steady
    t1="$(pg_ticks)"
    a1="$(pids_ticks "${wk[@]}")"
    exec_stats "$db" >"$tmp/aster-steady.stats.json"
    printf '{"workers": %d, "mode": "%s", "accepted": %s, "enqueue_s": %s, "drained": %d, "cpu_aster_s": %s, "cpu_pg_s": %s}\n' \
        "$STEADY_WORKERS" "$ROLES" "$accepted" "$enq_s" "$drained" "$(secs_of $((a1 - a0)))" "$(secs_of $((t1 - t0)))" \
        >"$tmp/aster-steady.meta.json"
    echo "   $(cat "$tmp/aster-steady.stats.json")"
    pgss_dump "$db" aster-steady "$accepted"
    stop_pids "${stage_pids[@]}"
    dropdb_q "$db"
fi

# ---- 6. graphile-worker ------------------------------------------------------------------------
if stage graphile; then
    # noop: tuned, with a task that returns at once: not the same work, only
    # graphile-worker's own ceiling, to show what the POST costs it.
    for cfg in defaults tuned noop; do
        db="gw_$cfg"
        newdb "$db"
        gwcfg="$cfg" gwtask=post gwmax="$DRAIN_MAX"
        [ "$cfg" = noop ] && gwcfg=tuned gwtask=noop
        [ "$cfg" = defaults ] && [ "$DEFAULTS_MAX" -lt "$DRAIN_MAX" ] && gwmax="$DEFAULTS_MAX"
        echo "== graphile-worker $cfg: add $N jobs (addJobs), then drain (1 process)"
        (cd "$here" && timeout $((DRAIN_MAX + 60)) node gw.mjs add "$(pgurl "$db")" "$N") \
            >"$tmp/gw-$cfg.add.json" 2>"$tmp/gw-$cfg.add.err" || { cat "$tmp/gw-$cfg.add.err" >&2; die "gw.mjs add failed"; }
        echo "   added: $(cat "$tmp/gw-$cfg.add.json")"
        settle
        pgss_reset
        t0="$(pg_ticks)"
        win_begin
        (cd "$here" && GW_TASK="$gwtask" timeout $((DRAIN_MAX + 60)) node gw.mjs drain "$(pgurl "$db")" "$gwcfg" "$N" "$sink" "$gwmax") \
            >"$tmp/gw-$cfg.json" 2>"$tmp/gw-$cfg.err" || { cat "$tmp/gw-$cfg.err" >&2; die "gw.mjs drain failed"; }
        win_end "gw-$cfg"
        t1="$(pg_ticks)"
        printf '{"cpu_pg_s": %s}\n' "$(secs_of $((t1 - t0)))" >"$tmp/gw-$cfg.meta.json"
        grep -v '^ready$' "$tmp/gw-$cfg.err" | grep -v ExperimentalWarning | head -5 >&2 || true
        echo "   $(cat "$tmp/gw-$cfg.json")"
        pgss_dump "$db" "gw-$cfg" "$N"
        dropdb_q "$db"
    done

    db=gw_steady
    newdb "$db"
    count=$((STEADY_RATE * STEADY_SECS))
    echo "== graphile-worker steady (tuned): $STEADY_RATE jobs/s for $STEADY_SECS s, added every 5 ms"
    (cd "$here" && node gw.mjs add "$(pgurl "$db")" 0 >/dev/null 2>"$tmp/gw-steady.add.err") ||
        { cat "$tmp/gw-steady.add.err" >&2; die "gw.mjs migrate failed"; }
    (cd "$here" && exec timeout $((STEADY_SECS + 120)) node gw.mjs drain "$(pgurl "$db")" tuned "$count" "$sink" \
        $((STEADY_SECS + 60))) >"$tmp/gw-steady.json" 2>"$tmp/gw-steady.err" &
    gw_pid=$!
    pids+=("$gw_pid")
    for ((i = 0; i < 150; i++)); do
        grep -q '^ready$' "$tmp/gw-steady.err" && break
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q '^ready$' "$tmp/gw-steady.err" || { cat "$tmp/gw-steady.err" >&2; die "graphile-worker did not start"; }
    settle
    t0="$(pg_ticks)"
    win_begin
    (cd "$here" && timeout $((STEADY_SECS + 60)) node gw.mjs feed "$(pgurl "$db")" "$STEADY_RATE" "$STEADY_SECS") \
        >"$tmp/gw-steady.feed.json" 2>"$tmp/gw-steady.feed.err" || { cat "$tmp/gw-steady.feed.err" >&2; die "gw.mjs feed failed"; }
    wait "$gw_pid" || { cat "$tmp/gw-steady.err" >&2; die "graphile-worker (steady) failed"; }
    stop_pids "$gw_pid"
    win_end gw-steady
    t1="$(pg_ticks)"
    printf '{"cpu_pg_s": %s}\n' "$(secs_of $((t1 - t0)))" >"$tmp/gw-steady.meta.json"
    echo "   fed: $(cat "$tmp/gw-steady.feed.json")"
    echo "   $(cat "$tmp/gw-steady.json")"
    dropdb_q "$db"
fi

# ---- 7. summary --------------------------------------------------------------------------------
if grep -lE '"level":"(error|fatal)"' "$tmp"/*.log >/dev/null 2>&1; then
    note "aster logged errors:"
    grep -hE '"level":"(error|fatal)"' "$tmp"/*.log | head -5 >&2
fi
echo
python3 "$here/report.py" "$tmp" "$N" "$STEADY_RATE" "$STEADY_SECS" "$(nproc)"
