"""How fast a learned scale reaches its maximum-likelihood value, by the scale's learning rate.

``OMP_NUM_THREADS=1 python benchmarks/scale_lr.py`` prints one Markdown table
(``docs/convergence.md``, "Scales that keep up"); ``--quick`` makes a tiny run
(the smoke test), ``--epochs``/``--only`` shorten it.

For each data set (``ppca``: learned σ, planted 0.1; ``laplace-noise``: learned
b, planted 0.1; ``digits``: learned σ) and each option, one fit with the default
flags otherwise, in this process, driving the same
:class:`~vaelik.inference.svi.Trainer` as ``vaelik train``:

- ``×F``: ``--scale-lr-factor F`` (the scale's learning rate is ``F × --lr``;
  ``×1`` is the behaviour before the option existed);
- ``optimal``: ``--scale optimal``, the closed-form ML scale of each batch at
  the detached decoder mean (no parameter, no lag; a reference, not a learned scale).

Every ``--every`` steps it evaluates, on the training split, the scale ratio
:math:`s^p/\\mathrm{loss}` that ``eval.json`` reports (σ²/MSE, b/MAE; 1 at the ML
scale). Columns: the first step at which the ratio is within 5 % of 1, the
step from which it stays there to the end ("—": never), the final ratio, the final scale, the relative std of the scale
over the last ``--tail`` epochs (oscillation; a scale still falling shows here too),
the final test ELBO, and wall seconds per fit. Each option runs with ``--seeds``
(default 0 and 1): steps are listed per seed, the other columns are means.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: data set -> (likelihood, what was planted)
SETS = {"ppca": ("normal", "σ=0.1"), "laplace-noise": ("laplace", "b=0.1"),
        "digits": ("normal", "—")}
#: the options compared: a --scale-lr-factor, or "optimal" (--scale optimal)
OPTIONS: tuple[float | str, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, "optimal")
WITHIN = 0.05


def run_one(data: str, option: float | str, *, seed: int = 0, epochs: int | None, every: int,
            tail: int, n: int | None = None, hidden: int | None = None) -> dict:
    """One fit; the trajectory of the training-split ratio and the final numbers."""
    import pyro

    from vaelik.inference import TrainConfig
    from vaelik.inference.run import build
    from vaelik.inference.svi import Trainer
    from vaelik.inference.terms import split_metrics

    likelihood, _ = SETS[data]
    fields = {"data": data, "likelihood": likelihood, "seed": seed}
    if option == "optimal":
        fields["scale"] = "optimal"
    else:
        fields["scale"], fields["scale_lr_factor"] = "learned", float(option)
    if epochs is not None:
        fields["epochs"] = epochs
    if n is not None and data != "digits":
        fields["data_options"] = {"n": n}
    if hidden is not None:
        fields["hidden_dim"] = hidden
    config = TrainConfig(**fields)
    data_set, model = build(config)
    pyro.clear_param_store()
    pyro.set_rng_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    x_train, x_test = data_set.train, data_set.test
    facts = model.likelihood.facts()
    loss_key = facts.loss
    steps_per_epoch = x_train.shape[0] // config.batch_size
    tick = time.perf_counter()
    trajectory: list[tuple[int, float]] = []  # (step, ratio)
    epoch_scales: list[float] = []
    with model.params():
        trainer = Trainer(config, model, x_train)
        step = 0
        for _ in range(config.epochs):
            perm = torch.randperm(x_train.shape[0], generator=gen)
            for start in range(0, steps_per_epoch, every):
                count = min(every, steps_per_epoch - start)
                if trainer.run(perm, start, count) is not None:
                    raise RuntimeError(f"{data} {option}: non-finite loss at step {step + count}")
                step += count
                with torch.no_grad():
                    m = split_metrics(model, x_train)
                trajectory.append((step, facts.ratio(m["scale"], m[loss_key])))
            epoch_scales.append(m["scale"])
        seconds = time.perf_counter() - tick
        with torch.no_grad():
            test = split_metrics(model, x_test)
    first = next((s for s, ratio in trajectory if abs(ratio - 1) <= WITHIN), None)
    reached = None
    for s, ratio in reversed(trajectory):
        if abs(ratio - 1) > WITHIN:
            break
        reached = s
    last = epoch_scales[-tail:]
    return {
        "data": data, "option": option, "seed": seed, "steps": step, "first": first,
        "reached": reached,
        "ratio": trajectory[-1][1], "scale": epoch_scales[-1],
        "scale_rsd": statistics.pstdev(last) / statistics.fmean(last),
        "test_elbo": test["elbo"], "seconds": seconds,
    }


def _label(option: float | str) -> str:
    return option if isinstance(option, str) else f"×{option:g}"


def _steps(values: list[int | None]) -> str:
    return ", ".join("—" if v is None else str(v) for v in values)


def table(results: list[dict]) -> str:
    """The Markdown table of :func:`run_one` results, one row per data set and option.

    Steps are listed per seed; ratio, scale, oscillation and ELBO are means over the seeds.
    """
    ratio_name = {"ppca": "σ²/MSE", "laplace-noise": "b/MAE", "digits": "σ²/MSE"}
    lines = ["| data (planted) | scale lr | first step within ±5 % | step from which it stays "
             "within ±5 % | final ratio (train) | final scale | scale rel. std, last epochs "
             "| test ELBO | s per fit |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    keys = list(dict.fromkeys((r["data"], r["option"]) for r in results))
    for data, option in keys:
        rs = [r for r in results if (r["data"], r["option"]) == (data, option)]
        mean = {k: statistics.fmean(r[k] for r in rs)
                for k in ("ratio", "scale", "scale_rsd", "test_elbo", "seconds")}
        lines.append(
            f"| {data} ({SETS[data][1]}) | {_label(option)} | {_steps([r['first'] for r in rs])} "
            f"| {_steps([r['reached'] for r in rs])} of {rs[0]['steps']} "
            f"| {ratio_name[data]} {mean['ratio']:.3f} | {mean['scale']:.4f} "
            f"| {100 * mean['scale_rsd']:.2f} % | {mean['test_elbo']:.2f} | {mean['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default: the flag's)")
    parser.add_argument("--every", type=int, default=1, help="steps between ratio evaluations")
    parser.add_argument("--tail", type=int, default=10, help="epochs of the scale's std")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per option")
    parser.add_argument("--only", nargs="*", default=list(SETS), choices=list(SETS),
                        help="data sets to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    kwargs = {"epochs": args.epochs, "every": args.every, "tail": args.tail}
    if args.quick:
        kwargs.update(epochs=2, every=4, tail=2, n=300, hidden=16)
    seeds = [0] if args.quick else args.seeds
    results = []
    for data in args.only:
        for option in ((1.0, "optimal") if args.quick else OPTIONS):
            for seed in seeds:
                results.append(run_one(data, option, seed=seed, **kwargs))
                print(f"# {data} {_label(option)} seed {seed}: {results[-1]['seconds']:.1f} s",
                      file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); default flags "
          f"otherwise; seeds {', '.join(map(str, seeds))}; ratio on the training split every "
          f"{kwargs['every']} step(s)")
    print()
    print(table(results))
    return 0 if all(math.isfinite(r["ratio"]) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
