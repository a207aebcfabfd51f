#!/usr/bin/env bash
# Create .venv (Python 3.11) with vaelik and its test tools, once. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "setting up .venv (first run: about a minute)" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.vaelik-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log=.venv/install.log
    {
        .venv/bin/python -m pip install -q --upgrade pip
        # torch first, pinned: 2.13.0 is the local CPU build; a bare `torch` pulls a multi-GB CUDA one.
        .venv/bin/python -m pip install -q "torch==2.13.0"
        .venv/bin/python -m pip install -q -e ".[test,ray]"
    } >"$log" 2>&1 || { tail -40 "$log" >&2; echo "setup failed; full log: $log" >&2; exit 1; }
    touch "$stamp"
fi
