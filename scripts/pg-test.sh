#!/usr/bin/env bash
# pg-test.sh — run a command against a throwaway PostgreSQL server.
#
#   scripts/pg-test.sh build/test_store_pg
#
# Installs Debian's postgresql when it is missing, creates a cluster in a
# temporary directory, starts it on 127.0.0.1 only, on a free port, with its
# socket in that directory, creates the database aster_test, and runs the
# command with ASTER_TEST_PG_URL=postgres://aster@127.0.0.1:PORT/aster_test
# (trust authentication: loopback only, and gone when the command ends).
# The server is stopped and the directory removed however the script exits;
# the command's exit status is the script's.
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user the package creates.  fsync is off: the cluster is thrown
# away, and the tests check what PostgreSQL answers, not its disk.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

find_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && printf '%s\n' "$d"
    done | sort -V | tail -n 1
}

bindir=$(find_bindir)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pg-test: PostgreSQL is not installed (apt-get install postgresql)" >&2
        exit 1
    fi
    echo "pg-test: installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
    bindir=$(find_bindir)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aster-pg.XXXXXX")
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$tmp"
    as_pg=(runuser -u postgres --)
fi
started=0

# shellcheck disable=SC2317  # run by the trap
cleanup() {
    local rc=$?
    if [ "$started" -eq 1 ]; then
        (cd "$tmp" && "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The postgres user may not be allowed into the caller's directory.
cd "$tmp"
"${as_pg[@]}" "$bindir/initdb" -D "$tmp/data" -U aster --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }

# A port found free may be taken before the server binds it: try a few.
for _ in 1 2 3 4 5; do
    port=$(free_port)
    if "${as_pg[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c fsync=off -c max_connections=200" \
        start >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ "$started" -ne 1 ]; then
    echo "pg-test: the server did not start:" >&2
    cat "$tmp/server.log" >&2 || true
    exit 1
fi
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U aster aster_test

export ASTER_TEST_PG_URL="postgres://aster@127.0.0.1:$port/aster_test"
echo "pg-test: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
cd - >/dev/null
set +e
"$@"
rc=$?
set -e
exit "$rc"
