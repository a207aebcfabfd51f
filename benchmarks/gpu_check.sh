#!/usr/bin/env bash
# The GPU checks, as one script for a machine with CUDA (the project's CI has none).
#
# Runs the CUDA-marked tests, trains one run per model kind and scale mode with
# --device cuda (each must complete and write a finite eval.json), runs the demo
# on the GPU, and prints where each wrote. Outputs go to $OUT (default ./gpu-out).
# Missing pure-Python packages can be installed from wheels first (see
# docs/performance.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
PY=${PY:-python3}
$PY -c "import torch, pyro; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'pyro', pyro.__version__)"
$PY -m pytest -q -p no:cacheprovider -o addopts="" tests/test_performance_equivalence.py -k cuda 2>&1 | tail -3
fails=0
for spec in "vae normal learned" "vae normal predicted" "vae normal bayesian" "ae laplace learned" \
            "linear normal learned" "vae bernoulli -" "vae cbernoulli -"; do
    set -- $spec
    name="$1-$2-$3"
    scale=(); [ "$3" != "-" ] && scale=(--scale "$3")
    if $PY -m vaelik.cli train --data digits --model "$1" --likelihood "$2" "${scale[@]}" \
        --device cuda --epochs 5 --hidden-dim 64 --iwae-samples 200 --quiet --out "$OUT/runs/$name" \
        >"$OUT/$name.log" 2>&1; then
        $PY - "$OUT/runs/$name" <<'PY'
import json, math, sys
e = json.load(open(sys.argv[1] + "/eval.json"))
bad = [k for k in ("elbo", "mse") if not math.isfinite(e[k])]
print(f"{sys.argv[1].rsplit('/', 1)[-1]:28s} elbo {e['elbo']:9.3f}  mse {e['mse']:.5f}  log_px {e['log_px']}  scale {e['scale']}")
sys.exit(1 if bad else 0)
PY
    else
        echo "FAILED $name: $(tail -1 "$OUT/$name.log")"; fails=$((fails + 1))
    fi
done
start=$SECONDS
$PY -m vaelik.cli demo --device cuda --out "$OUT/demo" 2>&1 | tail -2
echo "demo on cuda: $((SECONDS - start)) s"
grep -E "^\| C[0-9]" "$OUT/demo/report.md" | cut -d'|' -f2,4 || true
exit $fails
