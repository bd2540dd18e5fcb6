#!/usr/bin/env bash
# bench/cron/run.sh [BENCH_BIN] [SECONDS] — aster's next-fire rate against
# croner's on the same expression mix, twice.  Builds nothing: BENCH_BIN is
# the bench_cron executable (default build/bench_cron).  Installs croner
# (pinned in package-lock.json) under bench/cron/ when it is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build/bench_cron}"
secs="${2:-2}"

[ -x "$bin" ] || { echo "error: $bin not found (build first: make build)" >&2; exit 1; }
if [ ! -d "$here/node_modules/croner" ]; then
    npm install --prefix "$here" --no-audit --no-fund --silent >/dev/null
fi

for run in 1 2; do
    a="$("$bin" "$secs")"
    c="$(cd "$here" && node croner.mjs "$secs")"
    ar="$(sed -E 's/^aster: ([0-9]+)\/s.*/\1/' <<<"$a")"
    cr="$(sed -E 's/^croner: ([0-9]+)\/s.*/\1/' <<<"$c")"
    echo "run $run: $a"
    echo "run $run: $c"
    awk -v a="$ar" -v c="$cr" 'BEGIN { printf "aster: %d/s  croner: %d/s  ratio: %.1f\n", a, c, a / c }'
done
