#!/usr/bin/env bash
# Run tests/analysis under Python 3.12 with ArviZ 1.x and WITHOUT torch.
# The analysis layer must work on both ArviZ generations (0.x on 3.11, 1.x on >= 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."

PY312="${PY312:-}"
if [ -z "$PY312" ]; then
  for candidate in /root/.pyenv/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then PY312="$candidate"; break; fi
  done
fi
if [ -z "$PY312" ]; then
  echo "analysis-py312: no Python 3.12 found; set PY312=/path/to/python3.12" >&2
  exit 1
fi

VENV="${VENV312:-.venv312}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV"
fi
log="$VENV/install.log"
{
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "arviz>=1" h5netcdf h5py pandas seaborn matplotlib "jinja2>=3.1" pytest hypothesis
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
} >"$log" 2>&1 || { tail -40 "$log" >&2; echo "analysis-py312: install failed; log: $log" >&2; exit 1; }

# Guard: this environment must not have torch, and must have ArviZ 1.x.
"$VENV/bin/python" - <<'PY'
import importlib.util, sys
import warnings
warnings.simplefilter("ignore")
import arviz
assert importlib.util.find_spec("torch") is None, "torch must not be installed in the analysis-only venv"
assert int(arviz.__version__.split(".")[0]) >= 1, f"expected ArviZ 1.x, got {arviz.__version__}"
print(f"analysis-py312: Python {sys.version.split()[0]}, ArviZ {arviz.__version__}, no torch")
PY

# Warnings are errors here too; conftests above tests/analysis (which import torch)
# are not loaded.
"$VENV/bin/python" -m pytest tests/analysis -q -p no:cacheprovider \
  -o "filterwarnings=error" --confcutdir=tests/analysis "$@"
