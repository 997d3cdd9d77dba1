#!/usr/bin/env bash
# CPU profile of the release todo server under the load generator, with perf
# (software event cpu-clock: this VM has no hardware counters), system-wide,
# so that the PostgreSQL backends and the load generator show up too.
#
#   benches/profile.sh sqlite|postgres CHANGES [SECONDS]
#
# Starts the todo binary on a fresh database, runs `load` (64 devices, 16
# owners, CHANGES changes per sync) for SECONDS+5 s, records 499 Hz samples
# with call graphs (dwarf unwinding) for SECONDS s in the middle, then prints
#   1. the CPU split by process (comm),
#   2. the hottest symbols of the todo process (self time),
#   3. the hottest symbols of the todo process including callees (children),
#   4. the hottest symbols of the postgres backends (postgres only).
# Needs perf (perf_event_paranoid <= 1, or root). NO_BUILD=1 skips the build;
# TODO_BIN=<path> profiles that todo binary (an earlier build) instead. The
# samples stay in <the printed directory>/perf.data: benches/serial-write.py
# splits the serial write of a SQLite profile by part.
# PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres) may carry a
# query, e.g. ?sslmode=disable, which the server's DATABASE_URL keeps.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
backend="${1:?usage: $0 sqlite|postgres CHANGES [SECONDS]}"
changes="${2:?usage: $0 sqlite|postgres CHANGES [SECONDS]}"
secs="${3:-10}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p todo --features postgres -p mobync-bench
fi
bin="$root/target/release"
out="$(mktemp -d /tmp/mobync-profile.XXXXXX)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

db_name=""
pid=""
cleanup() {
    [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    [ -n "$db_name" ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null
    rm -f "$out"/db.sqlite*
}
trap cleanup EXIT INT TERM

case "$backend" in
    sqlite) url="$out/db.sqlite" ;;
    postgres)
        db_name="bench_prof_$$"
        psql "$PG_ADMIN" -qc "CREATE DATABASE $db_name" >/dev/null
        admin="${PG_ADMIN%%\?*}"
        query=""
        [ "$admin" != "$PG_ADMIN" ] && query="?${PG_ADMIN#*\?}"
        url="${admin%/*}/$db_name$query"
        ;;
    *) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac

DATABASE_URL="$url" ROCKET_PORT="$port" ROCKET_ADDRESS=127.0.0.1 ROCKET_LOG_LEVEL=critical \
    "${TODO_BIN:-$bin/todo}" >/dev/null 2>"$out/todo.stderr" &
pid=$!
"$bin/load" --url "http://127.0.0.1:$port" --label "todo-$backend-$changes" --server-pid "$pid" \
    --changes "$changes" --rounds 1000000 --duration "$((secs + 5))" >"$out/load.txt" 2>&1 &
load_pid=$!
sleep 3
perf record -a -F 499 -e cpu-clock --call-graph dwarf,16384 -o "$out/perf.data" -- sleep "$secs" 2>"$out/perf-record.txt" >/dev/null
wait "$load_pid" || true
cat "$out/load.txt"

echo
echo "## CPU by process (all CPUs, $secs s)"
perf report -i "$out/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12
echo
echo "## todo's worker threads (Rocket names its async and blocking threads rocket-worker-thread): self time"
perf report -i "$out/perf.data" --no-children --comm rocket-worker-t --sort dso,sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -40
echo
echo "## todo's worker threads: time including callees (children), by symbol"
perf report -i "$out/perf.data" --children --comm rocket-worker-t --sort sym --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | head -80
if [ "$backend" = postgres ]; then
    echo
    echo "## postgres backends: self time by symbol"
    perf report -i "$out/perf.data" --no-children --comm postgres --sort dso,sym --stdio -g none 2>/dev/null \
        | grep -E '^ +[0-9]' | head -25
fi
echo
echo "perf data: $out/perf.data (perf report -i $out/perf.data --comm rocket-worker-t)"
