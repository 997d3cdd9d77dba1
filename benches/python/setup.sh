#!/usr/bin/env bash
# Baseline: mobync 0.2.0 (Python, PyPI) behind Flask + waitress.
# Creates benches/python/.venv if missing and installs the pinned packages.
# Idempotent; exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
# Skip pip entirely when everything is already installed at the pinned versions.
if "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {"mobync": "0.2.0", "flask": None, "waitress": None}
for name, ver in want.items():
    got = m.version(name)
    if ver and got != ver:
        sys.exit(1)
PY
then
    exit 0
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "mobync==0.2.0" "flask>=3,<4" "waitress>=3,<4"
"$venv/bin/python" -c "import mobync, flask, waitress" 
