"""Sweeps: a TOML grid of configurations, one run directory each, re-runnable.

This package sits above :mod:`vaelik.inference` (it trains with
:func:`vaelik.inference.fit` / :func:`~vaelik.inference.resume`), beside the
CLI; nothing in :mod:`vaelik.inference` imports it. It never prints: ``vaelik
sweep`` shows the progress and the summary.

A grid file names fixed values at the top level, the values to cross in a
``[grid]`` table and, optionally, explicit extra configurations in ``[[extra]]``
tables (see ``docs/sweeps.md``)::

    data = "digits"
    epochs = 20
    [grid]
    likelihood = ["normal", "laplace"]
    scale = ["learned", 0.1]
    seed = [0, 1]

Modules: :mod:`~vaelik.sweep.grid` (the file, its expansion, run names),
:mod:`~vaelik.sweep.driver` (:func:`run_sweep`), :mod:`~vaelik.sweep.worker`
(one configuration, in a worker), :mod:`~vaelik.sweep.local` (a process pool),
:mod:`~vaelik.sweep.ray_backend` (Ray tasks), :mod:`~vaelik.sweep.table`
(``sweep.csv``).

Examples
--------
>>> from vaelik.sweep import Grid, expand
>>> grid = Grid(base={"data": "digits"}, axes={"scale": ["learned", 0.1], "seed": [0, 1]})
>>> [run.name for run in expand(grid).runs]
['learned-s0', 'learned-s1', '0.1-s0', '0.1-s1']
"""

from vaelik.sweep.driver import (
    GRID_COPY,
    SweepInterrupted,
    SweepProgress,
    SweepResult,
    default_jobs,
    run_sweep,
)
from vaelik.sweep.grid import (
    GRID_KEYS,
    Expansion,
    Grid,
    SweepRun,
    check_run,
    config_hash,
    expand,
    grid_from_dict,
    grid_to_toml,
    load_grid,
)
from vaelik.sweep.table import METRIC_KEYS, SWEEP_CSV, sweep_table
from vaelik.sweep.worker import RunOutcome, train_one

__all__ = [
    "GRID_COPY",
    "GRID_KEYS",
    "METRIC_KEYS",
    "SWEEP_CSV",
    "Expansion",
    "Grid",
    "RunOutcome",
    "SweepInterrupted",
    "SweepProgress",
    "SweepResult",
    "SweepRun",
    "check_run",
    "config_hash",
    "default_jobs",
    "expand",
    "grid_from_dict",
    "grid_to_toml",
    "load_grid",
    "run_sweep",
    "sweep_table",
    "train_one",
]
