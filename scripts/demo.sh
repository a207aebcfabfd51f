#!/usr/bin/env bash
# Train the standard grid on the bundled digits and write demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/vaelik demo "$@"
