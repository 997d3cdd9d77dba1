#!/usr/bin/env bash
# Throughput and latency of 10-diff syncs with 64 concurrent devices (16
# owners): the todo example (release) on SQLite and on PostgreSQL, and the
# Python mobync 0.2.0 baseline (benches/python), side by side.
#
#   benches/run.sh            # build, then REPEATS rounds of every server
#
# Each run starts one server on its own free port with a fresh database, runs
# `load` against it, stops it and removes the database; the runs of the
# servers are interleaved (A B C A B C ...) so that drift hits them alike.
# Two workloads:
#   same-work   every device does ROUNDS rounds (capped at DURATION s):
#               the same syncs and the same final history for every server
#   sustained   every device syncs for SUSTAINED s (rounds unbounded): the
#               history grows with the server's speed
# Prints one Markdown table per workload (medians over the runs).
#
# Servers: todo-sqlite; todo-postgres (DATABASE_URL as PG_ADMIN gives it: with
# a plain postgres:// URL libpq negotiates TLS, also on 127.0.0.1, when the
# server has ssl=on); todo-postgres-nossl (the same with ?sslmode=disable);
# python-sqlite (benches/python/run.sh); todo-pgconn and todo-pgconn-nossl
# (the same models on a concrete PgConnection: target/release/todo_pg);
# todo-sqlite-normal (SQLITE_SYNCHRONOUS=NORMAL; todo-sqlite is the default
# FULL); todo-sqlite-solo (group commit off: ROCKET_MOBYNC='{group_commit=false}',
# each sync committed on its own); old-sqlite and old-postgres-nossl (the binary $OLD_TODO, an earlier
# build of the todo example, for before/after figures; it gets
# SQLITE_SYNCHRONOUS=FULL too, which a build older than that setting ignores:
# it runs NORMAL).
#
# Environment (defaults): REPEATS=3 ROUNDS=30 DURATION=30 SUSTAINED=20
# OWNERS=16 DEVICES=64 CHANGES=10 UPDATE_RATIO=0.5 SERVERS="todo-sqlite
# todo-postgres todo-postgres-nossl python-sqlite" WORKLOADS="same-work
# sustained" NO_BUILD=1
# (skip cargo build) PG_ADMIN=postgres://postgres@127.0.0.1:5432/postgres
# PY_THREADS=4 (waitress threads) OUT=<dir for the JSON lines>.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

REPEATS="${REPEATS:-3}"
ROUNDS="${ROUNDS:-30}"
DURATION="${DURATION:-30}"
SUSTAINED="${SUSTAINED:-20}"
OWNERS="${OWNERS:-16}"
DEVICES="${DEVICES:-64}"
CHANGES="${CHANGES:-10}"
UPDATE_RATIO="${UPDATE_RATIO:-0.5}"
SERVERS="${SERVERS:-todo-sqlite todo-postgres todo-postgres-nossl python-sqlite}"
WORKLOADS="${WORKLOADS:-same-work sustained}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
PY_THREADS="${PY_THREADS:-4}"
OUT="${OUT:-$(mktemp -d /tmp/mobync-bench-run.XXXXXX)}"
mkdir -p "$OUT"

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p todo --features postgres -p mobync-bench
fi
bin="$root/target/release"

python_ok=1
if [ ! -x "$root/benches/python/run.sh" ]; then
    echo "TODO: benches/python/run.sh is missing: the Python baseline is skipped" >&2
    python_ok=0
    SERVERS="$(echo "$SERVERS" | tr ' ' '\n' | grep -v '^python' | tr '\n' ' ')"
else
    "$root/benches/python/setup.sh"
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
busy="$(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|ld)$' || true)"
if [ "$busy" != "0" ]; then
    echo "WARNING: $busy compiler processes are running: the figures will be noisy" >&2
fi
echo "results: $OUT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_pid=""
db_name=""
db_dir=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
    if [ -n "$db_name" ]; then
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null || true
        db_name=""
    fi
    if [ -n "$db_dir" ]; then
        rm -rf "$db_dir"
        db_dir=""
    fi
}
trap cleanup EXIT INT TERM

# start_server NAME PORT: sets server_pid (and db_name / db_dir).
start_server() {
    local name="$1" port="$2"
    case "$name" in
        todo-sqlite | todo-sqlite-normal | todo-sqlite-solo | old-sqlite)
            db_dir="$(mktemp -d /tmp/mobync-bench-db.XXXXXX)"
            local program="$bin/todo" sync=FULL mobync="{}"
            case "$name" in *-normal) sync=NORMAL ;; *-solo) mobync="{group_commit=false}" ;; old-*) program="$OLD_TODO" ;; esac
            DATABASE_URL="$db_dir/todo.sqlite" ROCKET_PORT="$port" ROCKET_ADDRESS=127.0.0.1 SQLITE_SYNCHRONOUS="$sync" \
                ROCKET_MOBYNC="$mobync" ROCKET_LOG_LEVEL=critical ROCKET_CLI_COLORS=false "$program" >/dev/null 2>>"$OUT/$name.stderr" &
            server_pid=$!
            ;;
        todo-postgres | todo-postgres-nossl | todo-pgconn | todo-pgconn-nossl | old-postgres-nossl)
            db_name="bench_load_$$_$RANDOM"
            psql "$PG_ADMIN" -qc "CREATE DATABASE $db_name" >/dev/null
            local admin="${PG_ADMIN%%\?*}" query="" program="$bin/todo"
            [ "$admin" != "$PG_ADMIN" ] && query="?${PG_ADMIN#*\?}"
            case "$name" in *-nossl) query="?sslmode=disable" ;; esac
            case "$name" in todo-pgconn*) program="$bin/todo_pg" ;; old-*) program="$OLD_TODO" ;; esac
            DATABASE_URL="${admin%/*}/$db_name$query" ROCKET_PORT="$port" ROCKET_ADDRESS=127.0.0.1 \
                ROCKET_LOG_LEVEL=critical ROCKET_CLI_COLORS=false "$program" >/dev/null 2>>"$OUT/$name.stderr" &
            server_pid=$!
            ;;
        python-sqlite)
            db_dir="$(mktemp -d /tmp/mobync-bench-db.XXXXXX)"
            THREADS="$PY_THREADS" "$root/benches/python/run.sh" "$port" "$db_dir/py.sqlite" \
                >/dev/null 2>>"$OUT/$name.stderr" &
            server_pid=$!
            ;;
        *)
            echo "unknown server $name" >&2
            exit 2
            ;;
    esac
}

for workload in $WORKLOADS; do
    case "$workload" in
        same-work) bounds=(--rounds "$ROUNDS" --duration "$DURATION") ;;
        sustained) bounds=(--rounds 1000000 --duration "$SUSTAINED") ;;
        *) echo "unknown workload $workload" >&2; exit 2 ;;
    esac
    for rep in $(seq 1 "$REPEATS"); do
        for name in $SERVERS; do
            port="$(free_port)"
            start_server "$name" "$port"
            echo "== $workload run $rep: $name on port $port (pid $server_pid)"
            if ! "$bin/load" --url "http://127.0.0.1:$port" --label "$name" --server-pid "$server_pid" \
                --owners "$OWNERS" --devices "$DEVICES" --changes "$CHANGES" --update-ratio "$UPDATE_RATIO" \
                "${bounds[@]}" --json >"$OUT/last.txt" 2>&1; then
                echo "load against $name failed" >&2
            fi
            cat "$OUT/last.txt" >>"$OUT/$workload.log"
            grep -v '^{' "$OUT/last.txt" || true
            grep '^{' "$OUT/last.txt" >>"$OUT/$workload.jsonl" || true
            cleanup
        done
    done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for workload in $WORKLOADS; do
    echo
    case "$workload" in
        same-work) echo "### same work: $DEVICES devices / $OWNERS owners, $CHANGES changes per sync, $ROUNDS rounds per device (cap ${DURATION} s), medians of $REPEATS runs" ;;
        sustained) echo "### sustained: $DEVICES devices / $OWNERS owners, $CHANGES changes per sync, ${SUSTAINED} s, medians of $REPEATS runs" ;;
    esac
    echo
    "$bin/table" "$OUT/$workload.jsonl"
done
if [ "$python_ok" = 0 ]; then
    echo
    echo "TODO: the Python baseline (benches/python/run.sh) was missing; its rows are not in the tables."
fi
