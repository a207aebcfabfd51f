#!/usr/bin/env bash
# Run the whole test suite: ruff, unit tests and docstring examples, marked training tests, and the analysis
# tests again under Python 3.12 with ArviZ 1.x and without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
# lint first (pyflakes, pycodestyle, imports, bugbear, pyupgrade, numpy-style docstrings)
.venv/bin/ruff check vaelik tests benchmarks examples
.venv/bin/python -m pytest -q -ra "$@"
if [ -f .ci/analysis-py312.sh ]; then
    bash .ci/analysis-py312.sh
fi
