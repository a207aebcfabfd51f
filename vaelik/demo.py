"""``vaelik demo``: the standard likelihood grid on the bundled digits, then the report.

The grid (one sweep, see :mod:`vaelik.sweep`), on ``digits`` with a
VAE, for seeds ``0 .. seeds-1``:

- Normal with a fixed σ ∈ {1, 0.3, 0.1} (C1, C6: σ acts as a β),
- Normal with σ learned, per dimension, optimal (closed form) and Bayesian (C2, C3),
- Laplace with b learned (C4), Bernoulli and Continuous Bernoulli (C5),

plus one linear-model Normal learned-σ run (seed 0) for the pPCA check (C8).
The training settings (:data:`DEMO_SETTINGS`) were chosen so that the runs
converge (each run's eval.json says whether it did; early stopping ends it) while
the whole demo runs in about a minute on two CPU cores
(``docs/sweeps.md`` has timings).
Nothing here prints: ``vaelik demo`` shows the progress, the summary and the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelik.errors import InputError
from vaelik.sweep import Grid, SweepProgress, SweepResult, run_sweep
from vaelik.validate import check_positive_int

__all__ = ["DEMO_EPOCHS", "DEMO_SETTINGS", "DemoResult", "demo_grid", "run_demo", "sweep_and_report"]

#: the most epochs of a demo run; early stopping on the validation ELBO ends most runs
#: between 40 and 120 (docs/convergence.md)
DEMO_EPOCHS = 150
#: training settings shared by every demo run (see the module docstring)
DEMO_SETTINGS: dict[str, Any] = {
    "data": "digits",
    "model": "vae",
    "latent_dim": 8,
    "hidden_dim": 64,
    # batch 128 at lr 5e-3 holds every claim with every run converged in 2/3 of the time of
    # batch 64 at 3e-3; batch 256 at 1e-2 left the linear run unconverged (docs/convergence.md)
    "batch_size": 128,
    "lr": 5e-3,
    # halving the rate on a plateau of the validation ELBO lets a learned σ settle at its
    # stationary point (σ²/MSE on the training split within ~1 % instead of ~6 % at a constant lr)
    "lr_schedule": "plateau",
    # half the default patience: the digits runs flatten within a few epochs of their best, and
    # the demo's wall time is spent on the runs that still improve
    "patience": 10,
    "iwae_samples": 200,
}
#: hidden test knob: JSON object of TrainConfig values applied over every demo run
OVERRIDES_ENV = "VAELIK_DEMO_OVERRIDES"


@dataclass
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes
    ----------
    sweep : SweepResult
        The demo's sweep.
    report_html, report_md : Path or None
        The report files (None if the report was skipped).
    report_skipped : str or None
        Why the report was not written (the analysis extra is not installed), else None.
    """

    sweep: SweepResult
    report_html: Path | None
    report_md: Path | None
    report_skipped: str | None = None


def demo_grid(epochs: int = DEMO_EPOCHS, seeds: int = 2, device: str = "cpu",
              overrides: dict[str, Any] | None = None) -> Grid:
    """The demo's grid (see the module docstring)."""
    seed_list = list(range(seeds))
    base = {**DEMO_SETTINGS, "epochs": epochs, "device": device, **(overrides or {})}
    axes = {"likelihood": ["normal"],
            "scale": [1.0, 0.3, 0.1, "learned", "per_dim", "optimal", "bayesian"],
            "seed": seed_list}
    extra = [{"likelihood": "laplace", "scale": "learned", "seed": s} for s in seed_list]
    extra += [{"likelihood": lik, "seed": s} for lik in ("bernoulli", "cbernoulli") for s in seed_list]
    # the linear model's guide holds the exact posterior (docs/convergence.md); at batch 64 and
    # lr 3e-3 it reaches the pPCA optimum (σ² within 1 % of σ²_ML, ELBO 0.14 % below its
    # log p(x)); the shared batch 128 at 5e-3 stopped 0.8 % below, too near C8's 1 %
    extra.append({"likelihood": "normal", "scale": "learned", "model": "linear", "seed": 0,
                  "batch_size": 64, "lr": 3e-3})
    return Grid(base=base, axes=axes, extra=extra)


def _env_overrides() -> dict[str, Any]:
    text = os.environ.get(OVERRIDES_ENV)
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError as e:
        raise InputError(f"{OVERRIDES_ENV} is not a JSON object: {e}") from None
    if not isinstance(values, dict):
        raise InputError(f"{OVERRIDES_ENV} must be a JSON object, got {text!r}")
    return values


def run_demo(out: str | os.PathLike = "demo", epochs: int | None = None, seeds: int = 2,
             jobs: int | None = None, device: str = "cpu",
             overrides: dict[str, Any] | None = None,
             on_progress: Callable[[SweepProgress], None] | None = None) -> DemoResult:
    """Train the demo grid into ``out`` (a sweep folder) and write ``report.html`` / ``report.md``.

    Re-running continues an interrupted demo: completed runs are kept.

    Parameters
    ----------
    out : path
        The sweep folder; the report is written into it.
    epochs : int, optional
        Epochs per run (default :data:`DEMO_EPOCHS`).
    seeds : int
        Seeds per configuration (the linear run uses seed 0 only).
    jobs : int, optional
        Runs trained at once (default: the number of cores).
    device : str
        ``cpu`` or ``cuda``.
    overrides : dict, optional
        TrainConfig values applied over every run (tests use this to shrink the
        demo; so does the ``VAELIK_DEMO_OVERRIDES`` environment variable).
    on_progress : callable, optional
        The sweep's progress callback (see :func:`vaelik.sweep.run_sweep`).

    Examples
    --------
    >>> run_demo("demo", epochs=1, seeds=1)   # doctest: +SKIP
    """
    epochs = DEMO_EPOCHS if epochs is None else epochs
    check_positive_int("epochs", epochs)
    check_positive_int("seeds", seeds)
    grid = demo_grid(epochs, seeds, device, {**_env_overrides(), **(overrides or {})})
    return sweep_and_report(grid, out, jobs=jobs, on_progress=on_progress)


def sweep_and_report(grid: Grid, out: str | os.PathLike, jobs: int | None = None,
                     on_progress: Callable[[SweepProgress], None] | None = None,
                     threads: int | None = 1) -> DemoResult:
    """Train ``grid`` into the sweep folder ``out``, then write ``report.html`` / ``report.md`` there.

    The shared tail of ``vaelik demo`` and ``vaelik compare``
    (:func:`vaelik.compare.run_compare`); the report is skipped (and said why)
    when the analysis extra is not installed. ``threads``: torch threads per run
    (default 1: the demo's small networks run several times slower with two
    threads, measured on 2 cores; --jobs sets the parallelism instead; None: cores // jobs).
    """
    sweep = run_sweep(grid, out, jobs=jobs, threads=threads, on_progress=on_progress)
    try:
        from vaelik.analysis import write_report
    except ImportError as e:  # the analysis extra may be missing
        return DemoResult(sweep, None, None, report_skipped=str(e))
    out = Path(out)
    html, md = out / "report.html", out / "report.md"
    write_report(out, html, md)
    return DemoResult(sweep, html, md)
