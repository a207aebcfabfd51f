"""Find and read run directories into tidy pandas tables.

A *run directory* is a folder holding ``config.json`` (see ``docs/run-directory.md``).
File names, columns and status values come from :mod:`vaelik.rundir`, which
owns the contract. This module only reads files: it never imports torch or the training code, and no
content of any file raises out of :func:`load_runs` -- a run that cannot be read
is listed with the status ``unreadable: <file>: <reason>`` (it enters no
analysis) and one line saying what was wrong is appended to :attr:`Runs.problems`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vaelik.config import FIELDS, TrainConfig
from vaelik.rundir import (
    CONFIG_FILE,
    EVAL_FILE,
    METRICS_COLUMNS,
    METRICS_FILE,
    RunFileError,
    Status,
    read_eval,
    read_metrics,
    read_record,
    read_status,
)
from vaelik.rundir.check import json_type_problems
from vaelik.rundir.family import FamilyFacts

from ._common import data_identity
from .run_files import load_images, load_per_dim, load_pointwise

__all__ = [
    "CONVERGENCE_WORDS",
    "convergence_columns",
    "family_columns",
    "CONFIG_COLUMNS",
    "RunFileError",
    "Runs",
    "find_run_dirs",
    "load_images",
    "load_per_dim",
    "load_pointwise",
    "load_runs",
]

#: Config keys copied (flattened) into :attr:`Runs.runs` and joined onto :attr:`Runs.metrics`:
#: the fields declared ``key_column`` in :mod:`vaelik.config`, and ``scale_mode`` after ``scale``.
CONFIG_COLUMNS = tuple(
    col for spec in FIELDS.values() if spec.key_column
    for col in ((spec.column, "scale_mode") if spec.name == "scale" else (spec.column,))
)

_MAX_DEPTH = 3

@dataclass(frozen=True)
class Runs:
    """Every run found under one path, as tidy tables.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per run directory found. Columns:
        ``run`` (config ``name``, else the folder name), ``path``, ``status``
        (``completed``, ``running``, ``failed: ...``, ``interrupted``,
        ``missing``, or ``unreadable: <file>: <reason>`` for a run whose files
        cannot be read: it has only the columns that could be read), ``completed`` (bool), the flattened config
        (:data:`CONFIG_COLUMNS` plus the other fields declared with a report
        column in :mod:`vaelik.config`: ``hidden_dim, epochs, batch_size, lr,
        min_scale, elbo_estimator, likelihood_options`` (``"df=4"``, None when
        empty); and ``data_dim, image_shape, binary``), ``data_id`` (the data set
        with its ``.npz`` key and options, :func:`vaelik.analysis._common.data_identity`:
        ``"ppca (sigma=0.05)"``), ``scale`` as a
        string (``"0.1"`` or ``"learned"``), and every scalar of ``eval.json``.
        Two eval keys are renamed so they cannot collide with config keys:
        ``eval.json`` ``scale`` (the numeric σ or b) becomes ``scale_value``;
        config ``elbo`` (the estimator name) becomes ``elbo_estimator``.
        The ``ppca`` block is flattened to ``ppca_sigma2_learned``,
        ``ppca_sigma2_ml``, ``ppca_exact_log_px``, ``ppca_elbo``. The ``family``
        facts become ``family`` and ``family_<fact>`` columns (:func:`family_columns`).
        The convergence verdict becomes ``converged`` (bool; true for a run whose
        eval.json does not record it), ``convergence`` (``converged``, ``not
        converged`` or ``not recorded``) and ``convergence_reasons``,
        ``convergence_notes`` (the lists joined with ``"; "``); see
        :func:`convergence_columns`.
    metrics : pandas.DataFrame
        One row per run x epoch x split from ``metrics.csv`` with ``run``, ``path``
        and the :data:`CONFIG_COLUMNS` joined. The measured ``scale`` column of
        ``metrics.csv`` is renamed ``scale_value`` (``scale`` is the config setting,
        as in :attr:`runs`; the ``family`` columns are joined too). Only completed runs unless
        ``load_runs(..., include_incomplete=True)``.
    problems : list of str
        One line per file that could not be read, naming the run and the file.
    root : pathlib.Path
        The path that was searched.
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    root: Path = Path(".")

    @property
    def completed(self) -> pd.DataFrame:
        """Rows of :attr:`runs` whose status is ``completed``."""
        if self.runs.empty:
            return self.runs
        return self.runs[self.runs["completed"]].reset_index(drop=True)


def find_run_dirs(path: str | Path, max_depth: int = _MAX_DEPTH) -> list[Path]:
    """Return the run directories at or below ``path``, sorted.

    Parameters
    ----------
    path : str or Path
        A run directory, a folder of run directories, or a sweep folder.
    max_depth : int
        How many folder levels below ``path`` are searched (default 3).

    Returns
    -------
    list of Path
        Folders that contain ``config.json``; the search does not descend into a
        run directory.
    """
    root = Path(path)
    if not root.is_dir():
        return []
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / CONFIG_FILE).is_file():
            found.append(folder)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:
            return
        for child in children:
            if not child.name.startswith("."):
                walk(child, depth + 1)

    walk(root, 0)
    return sorted(found)


def _scale_string(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format(float(value), "g")
    return str(value)


def _scale_mode_from_config(scale: object, likelihood: object) -> str:
    """Scale mode implied by the config ``scale`` (eval.json's ``scale_mode`` wins when present)."""
    if scale is None or str(scale) in ("", "none"):
        return "none"
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return "fixed"
    return str(scale)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _float_or_nan(value: object) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _options_string(value: object) -> str | None:
    if not isinstance(value, dict) or not value:
        return None
    return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))


def _config_value(spec, config: dict) -> object:
    """A config field as its report column: the declared columns, read from config.json."""
    if spec.name == "scale":
        return _scale_string(config.get("scale"))
    if isinstance(spec.default, dict):
        return _options_string(config.get(spec.name))
    if spec.key_column and isinstance(spec.default, str):
        return str(config.get(spec.name, "unknown"))  # a key column is never missing
    return config.get(spec.name)


def _config_row(config: dict, run_dir: Path) -> dict:
    info = config.get("data_info") if isinstance(config.get("data_info"), dict) else {}
    row = {"run": str(config.get("name") or run_dir.name), "path": str(run_dir)}
    for spec in FIELDS.values():
        if spec.column is not None:
            row[spec.column] = _config_value(spec, config)
    row["scale_mode"] = _scale_mode_from_config(config.get("scale"), config.get("likelihood"))
    row.update({
        "data_dim": info.get("dim"),
        "image_shape": "x".join(str(int(s)) for s in info.get("image_shape") or []) or None,
        "binary": info.get("binary"),
        "data_id": data_identity(config),  # data set + options: what pairing, C6 and C7 group by
    })
    return row


_EVAL_RENAMES = {"scale": "scale_value"}


def _eval_row(evaluation: dict) -> dict:
    row: dict = {}
    for key, value in evaluation.items():
        if key == "ppca" and isinstance(value, dict):
            for sub, subvalue in value.items():
                if _is_scalar(subvalue):
                    row[f"ppca_{sub}"] = _float_or_nan(subvalue)
            continue
        if not _is_scalar(value):
            continue
        row[_EVAL_RENAMES.get(key, key)] = value
    # A null number is NaN in a table; keep strings and bools as they are.
    for key in ("scale_value", "scale_ratio", "scale_ratio_train", "log_px", "c7_bound_own_entropy"):
        if key in row:
            row[key] = _float_or_nan(row[key])
    return row


def family_columns(evaluation: dict) -> dict:
    """The family facts of ``eval.json`` (key ``family``) as columns of the runs table.

    ``family`` holds the family's name and ``family_<fact>`` each other fact of
    :class:`~vaelik.rundir.family.FamilyFacts` (``family_scale_symbol``,
    ``family_ratio_label``, ``family_line_slope``, ...; ``family_options`` as text
    ``"df=4"``). Empty when the run stored no facts.
    """
    try:
        facts = FamilyFacts.from_dict(evaluation.get("family"))
    except ValueError:
        return {}
    row: dict = {"family": facts.name}
    for key, value in facts.to_dict().items():
        if key == "options":
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        if key != "name":
            row[f"family_{key}"] = value
    return row


#: values of the runs table's ``convergence`` column
CONVERGENCE_WORDS = ("converged", "not converged", "not recorded")


def convergence_columns(evaluation: dict) -> dict:
    """The convergence verdict of ``eval.json`` as columns of the runs table.

    ``converged`` is False only when eval.json says ``converged: false``; a run
    that does not record the verdict (older run directories) counts as converged
    and its ``convergence`` reads ``not recorded``.

    Examples
    --------
    >>> convergence_columns({"converged": False, "convergence_reasons": ["a", "b"]})["convergence_reasons"]
    'a; b'
    >>> convergence_columns({})["convergence"]
    'not recorded'
    """
    value = evaluation.get("converged")
    recorded = isinstance(value, bool) or str(value).lower() in ("true", "false")
    converged = not recorded or value is True or str(value).lower() == "true"

    def joined(key: str) -> str:
        items = evaluation.get(key)
        return "; ".join(map(str, items)) if isinstance(items, list) else ""

    return {"converged": converged,
            "convergence": CONVERGENCE_WORDS[2] if not recorded else CONVERGENCE_WORDS[0 if converged else 1],
            "convergence_reasons": joined("convergence_reasons"),
            "convergence_notes": joined("convergence_notes")}


def _read_metrics(run_dir: Path) -> pd.DataFrame:
    frame = read_metrics(run_dir / METRICS_FILE)
    # The measured scale becomes scale_value, as in the runs table; "scale" is the config setting.
    return frame.rename(columns={"scale": "scale_value"})


#: declared types of ``config.json``: the configuration's fields, and what the analysis reads
#: of ``data_info`` (written by ``vaelik.inference.data``)
_CONFIG_HINTS = {**typing.get_type_hints(TrainConfig), "data_info": dict}
_DATA_INFO_HINTS = {"dim": int, "image_shape": list[int] | None, "binary": bool | None}


def _read_config(run_dir: Path) -> dict:
    """``config.json``, its values checked against the declared field types."""
    config = read_record(run_dir / CONFIG_FILE, _CONFIG_HINTS)
    problems = [f"data_info.{p}" for p in json_type_problems(config.get("data_info", {}), _DATA_INFO_HINTS)]
    if problems:
        raise RunFileError(f"{run_dir / CONFIG_FILE}: {'; '.join(problems)}")
    return config


class _Unreadable(Exception):
    """A run that cannot be analysed: ``row`` holds what could be read."""

    def __init__(self, row: dict, reason: str) -> None:
        super().__init__(reason)
        self.row, self.reason = row, reason


def _read_run(run_dir: Path) -> tuple[dict, pd.DataFrame | None, dict]:
    """The runs-table row, the metrics and the family columns of one run directory.

    Raises
    ------
    _Unreadable
        If config.json, or (for a completed run) eval.json or metrics.csv, cannot be used.
    """
    row: dict = {"run": run_dir.name, "path": str(run_dir)}
    try:
        config = _read_config(run_dir)
        row = _config_row(config, run_dir)
    except RunFileError as exc:
        raise _Unreadable(row, str(exc)) from None
    status = read_status(run_dir) or Status.MISSING
    row["status"] = status
    row["completed"] = Status.is_completed(status)
    evaluation: dict = {}
    metrics = None
    if (run_dir / EVAL_FILE).exists() or row["completed"]:
        try:
            evaluation = read_eval(run_dir / EVAL_FILE)
        except RunFileError as exc:
            if row["completed"]:  # a completed run promises its evaluation
                raise _Unreadable(row, str(exc)) from None
            evaluation = {}
    if (run_dir / METRICS_FILE).exists() or row["completed"]:
        try:
            metrics = _read_metrics(run_dir)
        except RunFileError as exc:
            if row["completed"]:
                raise _Unreadable(row, str(exc)) from None
            metrics = None
    eval_row = _eval_row(evaluation)
    for key in ("likelihood", "latent_dim"):
        eval_row.pop(key, None)  # config is the source of these
    if eval_row.get("scale_mode"):
        row["scale_mode"] = str(eval_row.pop("scale_mode"))
    if row.get("data_dim") is None and eval_row.get("data_dim") is not None:
        row["data_dim"] = eval_row["data_dim"]
    eval_row.pop("data_dim", None)
    row.update({k: v for k, v in eval_row.items() if k not in row})
    row.update(convergence_columns(evaluation))
    facts = family_columns(evaluation)
    row.update(facts)
    return row, metrics, facts


def _unreadable_row(run_dir: Path, row: dict, reason: str) -> dict:
    """The runs-table row of a run that cannot be analysed (status ``unreadable: ...``)."""
    short = reason.replace(f"{run_dir}{'/'}", "")
    return {**row, "status": Status.unreadable(short), "completed": False,
            "converged": False, "convergence": CONVERGENCE_WORDS[2]}


def load_runs(path: str | Path, include_incomplete: bool = False) -> Runs:
    """Read every run directory under ``path`` into a :class:`Runs`.

    Parameters
    ----------
    path : str or Path
        A single run directory, a folder of run directories, or a sweep folder
        (run directories up to three levels below it).
    include_incomplete : bool
        Also put the ``metrics.csv`` rows of runs whose status is not
        ``completed`` into :attr:`Runs.metrics` (they are always listed in
        :attr:`Runs.runs` with their status).

    Returns
    -------
    Runs
        Tables of runs and per-epoch metrics, and the list of problems met.

    Notes
    -----
    No content of any file raises: a run whose ``config.json`` cannot be read
    (any bytes, a value of another type than its field declares), or a
    *completed* run whose ``eval.json`` or ``metrics.csv`` is missing or
    unreadable (a completed run promises both), is listed in :attr:`Runs.runs`
    with the status ``unreadable: <file>: <reason>`` (``completed`` false, so it
    enters no analysis) and named in :attr:`Runs.problems`. A run that is not
    completed is listed with whatever could be read.

    Examples
    --------
    >>> runs = load_runs("sweeps/likelihoods")          # doctest: +SKIP
    >>> runs.runs[["run", "likelihood", "scale", "mse"]]  # doctest: +SKIP
    """
    root = Path(path)
    problems: list[str] = []
    if not root.exists():
        problems.append(f"{root}: no such file or folder; pass a run directory or a folder of them")
    rows: list[dict] = []
    metric_frames: list[pd.DataFrame] = []
    for run_dir in find_run_dirs(root):
        try:
            row, metrics, facts = _read_run(run_dir)
        except _Unreadable as exc:
            problems.append(f"{exc.row['run']}: {exc.reason}; run listed as unreadable")
            rows.append(_unreadable_row(run_dir, exc.row, exc.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - no content of one run may stop the others
            reason = f"{run_dir}: cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
            problems.append(f"{run_dir.name}: {reason}; run listed as unreadable")
            rows.append(_unreadable_row(run_dir, {"run": run_dir.name, "path": str(run_dir)}, reason))
            continue
        rows.append(row)
        if metrics is not None and (row["completed"] or include_incomplete):
            for col in ("run", "path", *CONFIG_COLUMNS):
                metrics[col] = row[col]
            for col, value in facts.items():
                metrics[col] = value
            metric_frames.append(metrics)
    runs = pd.DataFrame(rows)
    for col in ("run", "path", "status", *CONFIG_COLUMNS):
        if col not in runs.columns:  # no run, or only unreadable ones: the columns are still there
            runs[col] = pd.Series(dtype=object)
    if "completed" not in runs.columns:
        runs["completed"] = pd.Series(dtype=bool)
    if not runs.empty:
        runs = runs.sort_values(["run", "path"], kind="stable").reset_index(drop=True)
        dupes = runs["run"].duplicated(keep=False)
        if dupes.any():
            # A name must identify one run in tables and figures: add the folder.
            runs.loc[dupes, "run"] = [
                f"{name} [{Path(p).parent.name}/{Path(p).name}]"
                for name, p in zip(runs.loc[dupes, "run"], runs.loc[dupes, "path"], strict=False)
            ]
            problems.append("several runs share a name; their folder was added to the name")
    if metric_frames:
        metrics_all = pd.concat(metric_frames, ignore_index=True)
        metrics_all["run"] = metrics_all["path"].map(dict(zip(runs["path"], runs["run"], strict=False)))
    else:
        metrics_all = pd.DataFrame(
            columns=[c for c in METRICS_COLUMNS if c != "scale"] + ["scale_value", "run", "path", *CONFIG_COLUMNS]
        )
    return Runs(runs=runs, metrics=metrics_all, problems=problems, root=root)


def finite(value: object) -> bool:
    """True when ``value`` is a finite number (not None, NaN or inf)."""
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
