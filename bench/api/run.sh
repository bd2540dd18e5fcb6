#!/usr/bin/env bash
# bench/api/run.sh [ASTER_BIN] — the jobs API under load, beside nginx.
#
# In one run, on loopback only, with wrk at 64 connections for 10 s each:
#   1. nginx answering a static 200 (the ceiling for HTTP on this machine),
#   2. aster: GET /api/v1/jobs/{id},
#   3. aster: POST /api/v1/jobs, every request a job of its own (post.lua),
# then prints requests/s, p99 latency, error counts and the ratios to nginx
# against the targets of the API issue.  Compare figures only within a run:
# wrk shares the machine's cores with the server it measures.
#
# ASTER_BIN defaults to build/aster (build first: make build).  wrk and nginx
# (Debian packages) are installed when missing.  Everything it starts is
# stopped by PID and its temp dir removed on exit, however it exits.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build/aster}"
duration="${BENCH_DURATION:-10s}"
conns="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"

# Targets from the API issue.
GET_RATE_MIN=0.50 # GET rate / nginx rate, at least
GET_P99_MAX=2.00  # GET p99 / nginx p99, at most
POST_RATE_MIN=20000

die() { echo "bench/api: $*" >&2; exit 1; }

[ -x "$bin" ] || die "$bin not found or not executable (build first: make build)"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# ---- cleanup ------------------------------------------------------------------
tmp=""
pids=()
policy_rc_d="" # set while our policy-rc.d is in place for the install
SUDO=""

stop_pid() { # stop_pid PID: SIGTERM, up to 5 s of grace, then SIGKILL
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench/api: PID $pid ignored SIGTERM for 5 s; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    [ -n "$policy_rc_d" ] && $SUDO rm -f "$policy_rc_d"
    [ -n "$tmp" ] && rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- dependencies ---------------------------------------------------------------
nginx_bin="$(command -v nginx || true)"
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -n "$nginx_bin" ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    line="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            SUDO=sudo
        else
            die "missing ${missing[*]}; run as root: apt-get update && $line"
        fi
    fi
    echo "bench/api: installing ${missing[*]}" >&2
    # Debian's nginx package would start a system nginx on port 80: keep it
    # from starting any service during the install (policy-rc.d, exit 101).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        policy_rc_d=/usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        $SUDO apt-get update -q >/dev/null &&
            $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            die "could not install ${missing[*]}; run: apt-get update && $line"
    fi
    [ -n "$policy_rc_d" ] && $SUDO rm -f "$policy_rc_d" && policy_rc_d=""
    nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi
[ -x "$nginx_bin" ] || die "nginx not found after install"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/aster-bench-api.XXXXXX")"
chmod 755 "$tmp" # nginx's workers may run as another user

# ---- helpers ------------------------------------------------------------------------
free_port() { # a TCP port free on 127.0.0.1 right now
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' && return
    fi
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return; }
    done
    die "no free port found"
}

wait_http() { # wait_http URL PID NAME: until URL answers 2xx, at most 10 s
    local url="$1" pid="$2" name="$3" i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench/api: $name did not answer $url within 10 s" >&2
    return 1
}

busy_ticks() { # CPU ticks spent busy, all cores, since boot
    awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}
procs_ticks() { # CPU ticks used by these PIDs and their children
    local p sum=0 t
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
        t="$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)"
        sum=$((sum + t))
    done
    echo "$sum"
}

# run_wrk NAME SERVER_PID wrk-args... : runs wrk into $tmp/wrk-NAME.txt and
# prints its output, indented.  Also measures the CPU the rest of the machine
# used meanwhile (all busy time less the server's and wrk's) into
# $tmp/other-NAME, since another process's load skews the comparison.
run_wrk() {
    local name="$1" spid="$2" out hz b0 b1 s0 s1 t0 t1 wt
    out="$tmp/wrk-$name.txt"
    shift 2
    hz="$(getconf CLK_TCK)"
    b0="$(busy_ticks)"; s0="$(procs_ticks "$spid")"; t0="$(date +%s.%N)"
    # wrk stops by itself after -d; the timeout is a backstop.
    local TIMEFORMAT='%3U %3S'
    { time timeout 120 wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" >"$out" 2>&1; } \
        2>"$tmp/time-$name" || { cat "$out" >&2; die "wrk failed: wrk $*"; }
    b1="$(busy_ticks)"; s1="$(procs_ticks "$spid")"; t1="$(date +%s.%N)"
    wt="$(tail -1 "$tmp/time-$name")"
    awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" -v wt="$wt" '
        BEGIN { split(wt, w, " "); dt = t1 - t0
                srv = s / hz / dt; wrk = (w[1] + w[2]) / dt; all = b / hz / dt
                other = all - srv - wrk; if (other < 0) other = 0
                printf "%.2f %.2f %.2f\n", srv, wrk, other }' >"$tmp/cpu-$name"
    sed 's/^/    /' "$out"
    read -r c_srv c_wrk c_other <"$tmp/cpu-$name"
    echo "    CPU (cores): server $c_srv, wrk $c_wrk, everything else $c_other"
    awk -v o="$c_other" 'BEGIN { exit !(o > 0.15) }' &&
        echo "    WARNING: other processes used $c_other cores during this stage: figures are skewed" >&2
    return 0
}

# wrk figures: "RATE P99_MS NON2XX SOCKERR"
wrk_figures() {
    awk '
    function ms(v,   n, u) {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return n / 1000
        if (u == "ms") return n
        if (u == "s")  return n * 1000
        if (u == "m")  return n * 60000
        if (u == "h")  return n * 3600000
        return -1
    }
    /^Requests\/sec:/            { rate = $2 }
    /Latency Distribution/       { dist = 1 }
    dist && $1 == "99%"          { p99 = ms($2); dist = 0 }
    /Non-2xx or 3xx responses:/  { non2xx = $NF }
    /Socket errors:/ {
        gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10
    }
    END {
        if (rate == "" || p99 == "") exit 1
        printf "%s %s %d %d\n", rate, p99, non2xx + 0, sockerr + 0
    }' "$1" || die "could not parse wrk output in $1"
}

# ---- 1. nginx ---------------------------------------------------------------------------
echo "== machine: $(nproc) cores, load $(cut -d" " -f1-3 /proc/loadavg); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $("$nginx_bin" -v 2>&1 | sed 's/.*: //')"
echo "== wrk -t$threads -c$conns -d$duration --latency"

ng="$tmp/nginx"
mkdir -p "$ng/logs"
ng_port="$(free_port)"
cat >"$ng/nginx.conf" <<EOF
worker_processes auto;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    # wrk keeps its connections open: let nginx keep them for the whole run,
    # as aster does, rather than closing each after 1000 requests.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$ng_port;
        default_type text/plain;
        location / { return 200 "ok"; }
    }
}
EOF
"$nginx_bin" -p "$ng/" -e "$ng/logs/error.log" -c "$ng/nginx.conf" -g 'daemon off;' \
    >"$ng/logs/stdout.log" 2>&1 &
ng_pid=$!
pids+=("$ng_pid")
wait_http "http://127.0.0.1:$ng_port/" "$ng_pid" nginx ||
    { cat "$ng/logs/"* >&2; die "nginx did not start"; }

echo "== nginx: GET http://127.0.0.1:$ng_port/ (static 200)"
run_wrk nginx "$ng_pid" "http://127.0.0.1:$ng_port/"
read -r ng_rate ng_p99 ng_non2xx ng_sockerr < <(wrk_figures "$tmp/wrk-nginx.txt")
stop_pid "$ng_pid" # free the cores for aster
pids=()

# ---- 2. aster GET ---------------------------------------------------------------------------
as_port="$(free_port)"
"$bin" serve --listen "127.0.0.1:$as_port" --store "sqlite:$tmp/aster.db" --log-level warn \
    >"$tmp/aster.log" 2>&1 &
as_pid=$!
pids+=("$as_pid")
base="http://127.0.0.1:$as_port"
wait_http "$base/healthz" "$as_pid" aster || { cat "$tmp/aster.log" >&2; die "aster did not start"; }

hdrs="$(curl -sS --max-time 5 -o "$tmp/created.json" -D - -w '%{http_code}' \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench-get","schedule":"0 0 1 1 *","api":"http://127.0.0.1:9/x"}' \
    "$base/api/v1/jobs")"
code="${hdrs##*$'\n'}"
[ "$code" = 201 ] || { cat "$tmp/created.json" >&2; die "creating the job answered $code, not 201"; }
job_id="$(sed -n 's/.*"id"[[:space:]]*:[[:space:]]*"\([0-9a-fA-F-]\{36\}\)".*/\1/p' "$tmp/created.json" | head -1)"
[ -n "$job_id" ] || die "no id in $(cat "$tmp/created.json")"
curl -fsS --max-time 5 -o /dev/null "$base/api/v1/jobs/$job_id" || die "GET of the new job failed"

echo "== aster: GET $base/api/v1/jobs/$job_id"
run_wrk get "$as_pid" "$base/api/v1/jobs/$job_id"
read -r get_rate get_p99 get_non2xx get_sockerr < <(wrk_figures "$tmp/wrk-get.txt")

# ---- 3. aster POST ---------------------------------------------------------------------------
echo "== aster: POST $base/api/v1/jobs (post.lua: a new job name per request)"
BENCH_TAG="$$" run_wrk post "$as_pid" -s "$here/post.lua" "$base/api/v1/jobs"
read -r post_rate post_p99 post_non2xx post_sockerr < <(wrk_figures "$tmp/wrk-post.txt")
post_non201="$(sed -n 's/^non-201: \([0-9]*\)$/\1/p' "$tmp/wrk-post.txt")"
[ -n "$post_non201" ] || die "post.lua printed no non-201 count"
# Count what was stored, as a check that the 201s were real.
stored="$(curl -fsS --max-time 10 "$base/api/v1/jobs?limit=1" >/dev/null && echo ok || echo fail)"
[ "$stored" = ok ] || echo "bench/api: warning: GET /api/v1/jobs failed after the POST run" >&2
if grep -qiE '"level":"(error|fatal)"|\b(ERROR|FATAL)\b' "$tmp/aster.log"; then
    echo "bench/api: aster logged errors during the run:" >&2
    grep -iE 'error|fatal' "$tmp/aster.log" | head -5 >&2
fi

# ---- 4. summary ---------------------------------------------------------------------------
echo
echo "== summary (one run; compare only within it)"
awk -v nr="$ng_rate" -v np="$ng_p99" -v nn="$ng_non2xx" -v ns="$ng_sockerr" \
    -v gr="$get_rate" -v gp="$get_p99" -v gn="$get_non2xx" -v gs="$get_sockerr" \
    -v pr="$post_rate" -v pp="$post_p99" -v pn="$post_non201" -v ps="$post_sockerr" \
    -v gmin="$GET_RATE_MIN" -v pmax="$GET_P99_MAX" -v pmin="$POST_RATE_MIN" '
function verdict(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
    rr = gr / nr; pr99 = gp / np
    printf "nginx static 200:       %7.0f req/s  p99 %6.2f ms  non-2xx %d  socket errors %d\n", nr, np, nn, ns
    printf "GET  /api/v1/jobs/{id}: %7.0f req/s  p99 %6.2f ms  non-2xx %d  socket errors %d\n", gr, gp, gn, gs
    printf "POST /api/v1/jobs:      %7.0f req/s  p99 %6.2f ms  non-201 %d  socket errors %d\n", pr, pp, pn, ps
    printf "GET  /api/v1/jobs/{id}: %.0f req/s  p99 %.2f ms  ratio to nginx %.2f (target >= %.2f) %s\n", gr, gp, rr, gmin, verdict(rr >= gmin)
    printf "GET  /api/v1/jobs/{id}: p99 %.2f ms  ratio to nginx p99 %.2f (target <= %.2f) %s\n", gp, pr99, pmax, verdict(pr99 <= pmax)
    printf "POST /api/v1/jobs:      %.0f req/s  p99 %.2f ms  (target >= %d/s) %s\n", pr, pp, pmin, verdict(pr >= pmin)
    if (gn + gs + pn + ps > 0) printf "errors: GET non-2xx %d, POST non-201 %d, socket errors %d\n", gn, pn, gs + ps
}'
for st in nginx get post; do
    read -r c_srv c_wrk c_other <"$tmp/cpu-$st"
    printf 'CPU during %-5s (cores of %d): server %s, wrk %s, everything else %s%s\n' "$st" "$(nproc)" \
        "$c_srv" "$c_wrk" "$c_other" "$(awk -v o="$c_other" 'BEGIN { if (o > 0.15) print "  <- machine not quiet: rerun" }')"
done
