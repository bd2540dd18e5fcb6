#!/usr/bin/env bash
# bench/fire/run.sh [ASTER_BIN] [SECONDS] — Aster firing N HTTP jobs every
# second (N = 1000 and 10000) against a local nginx that answers 200, beside
# croner doing the same in node; then command jobs (/bin/true) beside a bare
# posix_spawn loop.  Figures come from Aster's own execution records.
#
#   ASTER_BIN   default build/aster (bench_spawn is taken from the same dir)
#   SECONDS     measured window per N, default 30
# Environment: FIRE_NS="1000 10000"  FIRE_CONCURRENCY (default: Aster's own,
#              --concurrency 1000)  FIRE_TRIGGERS=2000
#              FIRE_KEEP=1 keeps the temp dir (dbs, logs, JSON) and prints it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/build/aster}")"
secs="${2:-30}"
ns="${FIRE_NS:-1000 10000}"
conc="${FIRE_CONCURRENCY:-}"
triggers="${FIRE_TRIGGERS:-2000}"

[ -x "$bin" ] || { echo "error: $bin not found (build first)" >&2; exit 1; }
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 300 ] ||
    { echo "error: SECONDS must be 1..300" >&2; exit 2; }

tmp="$(mktemp -d /tmp/aster-fire.XXXXXX)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${FIRE_KEEP:-}" ]; then echo "kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ----
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx ..." >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
if [ ! -d "$here/node_modules/croner" ] || [ ! -d "$here/node_modules/undici" ]; then
    npm install --prefix "$here" --no-audit --no-fund --silent >/dev/null
fi
spawn_bin="$(dirname "$bin")/bench_spawn"
if [ ! -x "$spawn_bin" ]; then
    spawn_bin="$tmp/bench_spawn"
    cc -O2 -o "$spawn_bin" "$here/bench_spawn.c"
fi
curl_bin="$(dirname "$bin")/bench_curl"
if [ ! -x "$curl_bin" ]; then
    curl_bin="$tmp/bench_curl"
    cc -O2 -o "$curl_bin" "$here/bench_curl.c" -lcurl
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile="$(ulimit -n)"
[ "$nofile" = unlimited ] && nofile=65536
# Aster's default --concurrency (1000), as an operator gets it.  Far more
# to one host is slower, not faster: libcurl 7.88 walks its whole list of
# connections to a host for every transfer (at 15,000, 10,000 jobs ran at
# 4,000 executions/s instead of 10,000; docs/operations.md).
conc="${conc:-1000}"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # URL: until it answers, at most 10 s
    local i
    for i in $(seq 1 100); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "error: $1 never answered" >&2
    return 1
}
start_aster() { # PORT DB LOG [ARGS...]: sets apid
    local port="$1" db="$2" log="$3"
    shift 3
    "$bin" serve --listen "127.0.0.1:$port" --store "sqlite:$db" --log-level warn \
        --concurrency "$conc" "$@" >"$log" 2>&1 &
    apid=$!
    pids+=("$apid")
    wait_http "http://127.0.0.1:$port/healthz"
}
stop_aster() { # TAG: graceful, as an operator would; SIGKILL (noted) if stuck
    local i
    kill -TERM "$apid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$apid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$apid" 2>/dev/null; then
        echo "WARNING: aster (pid $apid) still running 15 s after SIGTERM; SIGKILL" >&2
        kill -KILL "$apid" 2>/dev/null || true
        touch "$tmp/$1.killed"
    fi
    wait "$apid" 2>/dev/null || true
}

# ---- the sink: nginx answering 200 to anything ----
ngport="$(free_port)"
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections $((nofile - 100)); }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$ngport backlog=16384;
        location / { return 200; }
    }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
sink="http://127.0.0.1:$ngport/"
wait_http "$sink"

echo "aster: $bin ($("$bin" --version 2>/dev/null | head -1 || true)); window ${secs} s;" \
    "concurrency $conc; nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'); node $(node --version);" \
    "$(nproc) cores"

# ---- HTTP jobs: Aster, then croner, for each N ----
for n in $ns; do
    port="$(free_port)"
    echo "aster  N=$n ..." >&2
    start_aster "$port" "$tmp/aster-$n.db" "$tmp/aster-$n.log"
    python3 "$here/fire.py" measure "$port" "$apid" "$n" "$secs" "$sink" "$tmp/aster-$n.json"
    stop_aster "aster-$n"
    python3 "$here/fire.py" stats "$tmp/aster-$n.db" "$tmp/aster-$n.json"
    if grep -q . "$tmp/aster-$n.log"; then
        echo "aster log (N=$n, level warn): $(wc -l <"$tmp/aster-$n.log") lines, first:" >&2
        head -3 "$tmp/aster-$n.log" >&2
    fi
    echo "libcurl N=$n ..." >&2
    # The floor for any scheduler with $conc requests in flight: a bare
    # libcurl loop starting the same N POSTs at each second (bench_curl.c).
    "$curl_bin" "$sink" "$n" "$conc" "$((secs + 1))" >"$tmp/curl-$n.json" ||
        echo "bench_curl N=$n failed" >&2
    echo "croner N=$n ..." >&2
    # Its fetch backlog grows past node's default 4 GB heap at N=10000.
    (cd "$here" && node --max-old-space-size=12288 croner.mjs "$n" "$secs" "$sink") \
        >"$tmp/croner-$n.json" 2>"$tmp/croner-$n.err" ||
        echo "croner N=$n failed: $(grep -m1 -E 'FATAL|Error' "$tmp/croner-$n.err" || true)" >&2
done

# ---- command jobs: Aster beside a bare posix_spawn loop ----
echo "spawn ..." >&2
"$spawn_bin" 3 /bin/true | tee "$tmp/bare.txt" >&2
sed -E 's/^spawn: ([0-9]+)\/s.*/{"per_s": \1}/' "$tmp/bare.txt" >"$tmp/bare.json"
port="$(free_port)"
start_aster "$port" "$tmp/spawn.db" "$tmp/spawn.log" --allow-commands
python3 "$here/fire.py" spawn "$port" "$triggers" "$tmp/spawn.json"
stop_aster spawn
python3 "$here/fire.py" spawn-stats "$tmp/spawn.db" "$tmp/spawn.json"

echo
python3 "$here/fire.py" report "$tmp"
