"""``sweep.csv``: one row per configuration of a sweep, rebuilt from the run directories.

A row holds the run name, the configuration keys worth showing (likelihood,
scale, model, latent_dim and every key that varies), the ``status`` word, the
``reason`` of a failure, the ``seconds`` of this session's attempt (else train +
eval time from ``eval.json``) and the key metrics of ``eval.json``
(:data:`METRIC_KEYS`; ``scale`` is written as ``scale_value``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vaelik.rundir import EVAL_FILE, Status, read_json, read_status, write_csv
from vaelik.sweep.grid import Expansion, SweepRun, _canonical
from vaelik.sweep.worker import RunOutcome, status_word

__all__ = ["METRIC_KEYS", "SWEEP_CSV", "SweepTable", "sweep_table"]

SWEEP_CSV = "sweep.csv"
#: eval.json keys copied into sweep.csv
METRIC_KEYS = ("elbo", "log_px", "mse", "mae", "bce", "scale", "scale_ratio",
               "active_units", "comparable")


def _columns(expansion: Expansion) -> list[str]:
    fixed = [k for k in ("likelihood", "scale", "model", "latent_dim") if k not in expansion.varying]
    return ["run", *fixed, *expansion.varying]


def _row(out: Path, run: SweepRun, columns: list[str], outcome: RunOutcome | None) -> dict[str, Any]:
    """One ``sweep.csv`` row, from the run directory and this session's outcome (if any)."""
    run_dir = out / run.name
    status = read_status(run_dir)
    row: dict[str, Any] = {"run": run.name}
    row.update({k: run.config.get(k) for k in columns[1:]})
    if isinstance(row.get("data_options"), dict):
        row["data_options"] = _canonical(row["data_options"])
    session = outcome.status if outcome is not None else None
    word = status_word(status)
    if word == Status.MISSING and session in ("failed", Status.INTERRUPTED):
        word = session
    elif word == Status.RUNNING and session == Status.INTERRUPTED:
        word = Status.INTERRUPTED
    reason = ""
    if word == "failed":
        reason = (status or "").split(":", 1)[-1].strip() or (outcome.reason if outcome else "")
    row["status"], row["reason"] = word, reason
    evaluation: dict[str, Any] = {}
    if word == Status.COMPLETED:
        try:
            evaluation = read_json(run_dir / EVAL_FILE)  # any bytes: a RunFileError (ValueError)
        except (OSError, ValueError):
            evaluation = {}
    seconds = outcome.seconds if outcome is not None else None
    if seconds is None and evaluation:
        parts = [evaluation.get("seconds_train"), evaluation.get("seconds_eval")]
        seconds = sum(p for p in parts if isinstance(p, (int, float))) or None
    row["seconds"] = round(seconds, 2) if isinstance(seconds, (int, float)) else None
    for key in METRIC_KEYS:
        row["scale_value" if key == "scale" else key] = evaluation.get(key)
    return row


class SweepTable:
    """The rows of ``sweep.csv``, refreshed one run at a time and written atomically."""

    def __init__(self, out: Path, expansion: Expansion) -> None:
        self.out, self.runs = out, {r.name: r for r in expansion.runs}
        self.columns = _columns(expansion)
        self.rows = {r.name: _row(out, r, self.columns, None) for r in expansion.runs}

    def update(self, outcome: RunOutcome) -> None:
        """Re-read the run directory of ``outcome.name`` and merge this session's outcome."""
        self.rows[outcome.name] = _row(self.out, self.runs[outcome.name], self.columns, outcome)

    def frame(self):
        """The rows as a :class:`pandas.DataFrame`."""
        import pandas as pd

        return pd.DataFrame(list(self.rows.values()))

    def write(self):
        """Write ``sweep.csv`` (atomically) and return its frame."""
        frame = self.frame()
        write_csv(self.out / SWEEP_CSV, frame)
        return frame


def sweep_table(out: str | os.PathLike, expansion: Expansion,
                results: dict[str, RunOutcome] | None = None):
    """The ``sweep.csv`` frame, built from the run directories (and a session's outcomes)."""
    table = SweepTable(Path(out), expansion)
    for outcome in (results or {}).values():
        table.update(outcome)
    return table.frame()
