"""How the IWAE estimate's chunk shape changes its time: particles per chunk, interleaved in one process.

``OMP_NUM_THREADS=1 python benchmarks/iwae_chunks.py`` prints one Markdown table
(``docs/performance.md``, "Particles per chunk"); ``--quick`` makes a tiny run.

:func:`vaelik.inference.estimators.iwae_log_px` bounds the widest tensor of a
chunk by ``CHUNK_FLOATS``. Which rows and particles fill a chunk is free: the
rule before ``CHUNK_PARTICLES`` took as many rows as fit one particle
(``CHUNK_PARTICLES = 1`` here), so at n ≥ 2²³/d rows a chunk held one particle and
the encoder ran once per particle; the default takes fewer rows and up to 16
particles (a whole group of 10 at K = 1000, 100 groups). Both contenders run
the same model on the same points, alternately (``--repeats`` times each), in
this process with the same threads; the table gives the median seconds and
their ratio. The estimates differ only by Monte Carlo error (other draws).

Cells: the MLP VAE of ``vaelik compare`` (784–256–16, Normal with a learned σ)
and its conv VAE (``--network conv --hidden-dim 64``, 28 × 28), untrained, on
``--n`` uniform points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _model(network: str, hidden: int):
    from vaelik.models import build_model, get_likelihood

    torch.manual_seed(0)
    lik = get_likelihood("normal", scale="learned", init_scale=0.1)
    model = build_model("vae", lik, 784, 16, hidden, data_shape=(1, 28, 28), network=network)
    with model.params():
        pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, torch.rand(8, 784))
    return model


def time_cell(network: str, hidden: int, n: int, k: int, repeats: int) -> dict:
    """Median seconds of the estimate with one particle per chunk (old rule) and with the default."""
    from vaelik.inference import estimators

    model = _model(network, hidden)
    x = torch.rand(n, 784)
    default = estimators.CHUNK_PARTICLES
    seconds: dict[int, list[float]] = {1: [], default: []}
    means = {}
    with model.params(), torch.no_grad():
        for _ in range(repeats):
            for particles in (1, default):
                estimators.CHUNK_PARTICLES = particles
                torch.manual_seed(1)
                start = time.perf_counter()
                est = estimators.iwae_log_px(model, x, k)
                seconds[particles].append(time.perf_counter() - start)
                means[particles] = float(est.logsumexp(0).mean())
    estimators.CHUNK_PARTICLES = default
    old, new = statistics.median(seconds[1]), statistics.median(seconds[default])
    return {"cell": f"{network} (hidden {hidden}), {n} × 784, K = {k}", "old": old, "new": new,
            "ratio": new / old, "diff": means[default] - means[1]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="points (default 10,000: a test set)")
    p.add_argument("--k", type=int, default=1000, help="particles (default 1000)")
    p.add_argument("--repeats", type=int, default=2, help="timed estimates per contender (default 2)")
    p.add_argument("--only", choices=["mlp", "conv"], help="one cell")
    p.add_argument("--quick", action="store_true", help="200 points, K = 20, one repeat")
    args = p.parse_args(argv)
    n, k, repeats = (200, 20, 1) if args.quick else (args.n, args.k, args.repeats)
    cells = [("mlp", 256), ("conv", 64)]
    if args.only:
        cells = [c for c in cells if c[0] == args.only]
    print(f"# iwae_log_px, {torch.get_num_threads()} thread(s), median of {repeats}")
    print("| cell | one particle per chunk (s) | default (s) | default / one | mean log p(x) difference (nats) |")
    print("|---|---:|---:|---:|---:|")
    for network, hidden in cells:
        r = time_cell(network, hidden, n, k, repeats)
        print(f"| {r['cell']} | {r['old']:.1f} | {r['new']:.1f} | **{r['ratio']:.2f}×** | {r['diff']:+.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
