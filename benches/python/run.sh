#!/usr/bin/env bash
# Usage: benches/python/run.sh PORT DBFILE
# Runs setup.sh (idempotent), then serves the mobync 0.2.0 (Python) baseline
# with waitress on 127.0.0.1:PORT, SQLite database DBFILE (created if missing).
# THREADS (default 4) sets waitress's worker threads; CONNECTION_LIMIT
# (default 1000) its open-connection limit. Runs in the foreground; stop it
# with SIGINT/SIGTERM to its pid.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 PORT DBFILE" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup.sh"
exec "$here/.venv/bin/python" "$here/server.py" --port "$1" --db "$2" --threads "${THREADS:-4}"
