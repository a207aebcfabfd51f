#!/usr/bin/env bash
# Run the whole test suite: ruff, unit tests and docstring examples, marked training tests, and the analysis
# tests again under Python 3.12 with ArviZ 1.x and without torch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
# CI only: Debian's Fashion-MNIST package, read by the one test on the real files (it skips without
# them); never required, and nothing is downloaded by vaelik itself
if [ "${CI:-}" = "true" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    timeout 300 apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
        || echo "dataset-fashion-mnist not installed: the test on the real files will skip" >&2
fi
# lint first (pyflakes, pycodestyle, imports, bugbear, pyupgrade, numpy-style docstrings)
.venv/bin/ruff check vaelik tests benchmarks examples
.venv/bin/python -m pytest -q -ra "$@"
if [ -f .ci/analysis-py312.sh ]; then
    bash .ci/analysis-py312.sh
fi
