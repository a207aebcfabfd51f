"""Running a sweep: :func:`run_sweep` trains what is not complete yet, re-runnably.

Each configuration of the grid is trained into its own run directory under the
sweep folder, in ``jobs`` spawned processes on this machine
(:mod:`vaelik.sweep.local`) or on a Ray cluster (:mod:`vaelik.sweep.ray_backend`),
and ``sweep.csv`` (:mod:`vaelik.sweep.table`) is rewritten after every run.
Nothing here prints: progress goes to a callback (:class:`SweepProgress`), the
outcome is the returned :class:`SweepResult`; ``vaelik sweep`` shows both.

Re-run semantics: a run whose ``status`` reads ``completed`` is never trained
again; one that is ``running`` (a killed sweep), ``interrupted`` or ``failed``
is resumed from its checkpoint when its stored configuration is the one asked
for, else restarted from scratch. One sweep at a time works on a folder: it
holds ``.sweep.lock`` (:class:`filelock.FileLock`) throughout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vaelik.errors import InputError
from vaelik.rundir import Status, atomic_write_bytes, read_status
from vaelik.rundir.lock import is_run_dir
from vaelik.sweep.grid import Grid, SweepRun, check_run, expand, grid_to_toml, load_grid
from vaelik.sweep.table import SweepTable
from vaelik.sweep.worker import RunOutcome, same_config
from vaelik.validate import check_int

__all__ = [
    "GRID_COPY",
    "GRID_COPY_MARK",
    "LOCK_FILE",
    "SweepInterrupted",
    "SweepProgress",
    "SweepResult",
    "default_jobs",
    "run_sweep",
]

#: the sweep's copy of its grid file: a name of its own, so that ``--out .`` beside the user's
#: ``grid.toml`` never replaces it; its first line is :data:`GRID_COPY_MARK`
GRID_COPY = "sweep-grid.toml"
#: first line of :data:`GRID_COPY` (a TOML comment): a file without it is not the sweep's to replace
GRID_COPY_MARK = "# vaelik sweep: a copy of the grid file this sweep folder was last run with\n"
LOCK_FILE = ".sweep.lock"


@dataclass(frozen=True)
class SweepProgress:
    """One progress report of :func:`run_sweep`, given to its ``on_progress`` callback.

    Reported once before the first run starts (``outcome`` None, ``running``
    empty), when a run starts (``outcome`` None) and when a run's outcome comes
    back (``outcome`` set).

    Attributes
    ----------
    total : int
        Configurations in the grid.
    done : int
        Configurations finished: complete before this sweep, or back with an outcome now.
    running : tuple of str
        The runs in flight, in the order they started.
    outcome : RunOutcome or None
        The outcome that has just come back, if this report is about one.
    """

    total: int
    done: int
    running: tuple[str, ...] = ()
    outcome: RunOutcome | None = None


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns (and :class:`SweepInterrupted` carries).

    Attributes
    ----------
    out : Path
        The sweep folder.
    table : pandas.DataFrame
        The contents of ``sweep.csv`` (one row per configuration).
    results : dict of str to RunOutcome
        This session's outcome per run name (runs already complete are absent).
    notes : list of str
        Expansion notes and warnings (e.g. a completed run with another configuration).
    seconds : float
        Wall time of this session.
    """

    out: Path
    table: Any
    results: dict[str, RunOutcome]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        """Names of the runs that failed in this session."""
        return [n for n, r in self.results.items() if r.status == "failed"]


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM, after a clean stop; ``result`` is where it got to."""

    def __init__(self, result: SweepResult) -> None:
        super().__init__("sweep interrupted")
        self.result = result


def default_jobs() -> int:
    """Runs trained at once by default: the number of cores."""
    return max(1, os.cpu_count() or 1)


def _threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _check_count(label: str, value: int | None) -> None:
    if value is not None:
        check_int(label, value, 1)


def _sweep_folder(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"sweep output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create sweep folder {out}: {e.strerror or e}") from None
    return out


def _check_grid_copy(out: Path) -> Path:
    """The path of the grid copy in ``out``; refused if a file there is not a copy the sweep wrote."""
    path = out / GRID_COPY
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"{path} is not a file the sweep wrote; move it or choose another --out")
    if path.exists():
        try:
            with open(path, "rb") as f:
                ours = f.read(len(GRID_COPY_MARK.encode())) == GRID_COPY_MARK.encode()
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror or e}; choose another --out") from None
        if not ours:
            raise InputError(f"{path} was not written by `vaelik sweep`; move it or choose another --out")
    return path


def _lock_folder(out: Path) -> FileLock:
    """Hold ``.sweep.lock`` of ``out`` (refused at once if another sweep holds it)."""
    lock = FileLock(out / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise InputError(f"sweep folder {out} is in use by another `vaelik sweep`; "
                         "wait for it to finish or stop it first") from None
    return lock


def _check_not_in_run(out: Path) -> None:
    """Refuse a sweep folder that is a run directory or lies inside one."""
    full = Path(os.path.abspath(out))
    for folder in (full, *full.parents):
        if is_run_dir(folder):
            shown = folder if out.is_absolute() else os.path.relpath(folder)
            where = "is" if folder == full else "is inside"
            raise InputError(f"sweep folder {out} {where} the run directory {shown}; choose a "
                             "--out outside any run")


def step_budget(config: dict) -> float:
    """How long a run may train, in units of one full-batch pass: ``epochs / batch_size``.

    The sweep starts its runs in decreasing order of it: on the same data, a run's
    steps are ``epochs · ceil(n / batch_size)``, so this orders them by their most
    steps without loading the data (the demo's linear run, at batch 64 among runs
    at 128, starts first instead of running alone at the end).

    Examples
    --------
    >>> step_budget({"epochs": 150, "batch_size": 64}) > step_budget({"epochs": 150, "batch_size": 128})
    True
    """
    epochs = config.get("epochs") or 0
    batch = config.get("batch_size") or 128
    try:
        return float(epochs) / float(batch)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0


def run_sweep(
    grid: Grid | str | os.PathLike,
    out: str | os.PathLike,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "local",
    address: str | None = None,
    overrides: dict[str, Any] | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> SweepResult:
    """Train every configuration of ``grid`` that is not complete under ``out``.

    Parameters
    ----------
    grid : Grid or path
        A parsed grid, or the path of a grid file.
    out : path
        The sweep folder: one run directory per configuration, ``sweep-grid.toml``
        (:data:`GRID_COPY`: a copy of the grid, under a name of its own) and
        ``sweep.csv`` (one row per run: configuration,
        status, reason, seconds and the key metrics of ``eval.json``).
    jobs : int, optional
        Configurations trained at once (default: the number of cores); each
        process uses ``threads`` torch threads. With Ray, the CPUs given to the
        local cluster (``address="local"``).
    threads : int, optional
        Torch threads per local process (default ``max(1, cores // jobs)``, so
        that jobs x threads does not oversubscribe the CPU). Small networks run
        fastest with 1 (``vaelik demo`` uses 1; see ``docs/sweeps.md``).
    backend : {"local", "ray"}
        Spawned processes on this machine, or tasks on a Ray cluster.
    address : str, optional
        Ray address (``"local"`` or None starts a local Ray; ``"auto"`` or
        ``"ray://host:10001"`` connects to a cluster).
    overrides : dict, optional
        Values applied over every configuration (e.g. ``{"device": "cuda"}``).
    on_progress : callable, optional
        Called in this process with a :class:`SweepProgress` before the first
        run, when a run starts and when its outcome comes back.

    Returns
    -------
    SweepResult

    Raises
    ------
    InputError
        A bad grid or grid row (every row is checked before anything is written),
        an unusable output folder, a folder in use by another sweep.
    SweepInterrupted
        A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM with the local backend) after
        a clean stop: running runs are marked ``interrupted`` and ``sweep.csv``
        is written; its ``result`` holds the table.

    Examples
    --------
    >>> result = run_sweep("examples/grid.toml", "sweeps/grid", jobs=2)  # doctest: +SKIP
    >>> result.table[["run", "status", "mse"]]                           # doctest: +SKIP
    """
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    if overrides:
        grid = Grid(base={**grid.base, **overrides}, axes=grid.axes, extra=grid.extra,
                    text=grid.text)
    if backend not in ("local", "ray"):
        raise InputError(f"backend must be 'local' or 'ray', got {backend!r}")
    _check_count("jobs", jobs)
    _check_count("threads", threads)
    expansion = expand(grid)
    # every row is checked before anything is written: a bad row is bad input, not a failed run
    invalid = [(run.name, problem) for run in expansion.runs if (problem := check_run(run))]
    if invalid:
        name, problem = invalid[0]
        more = (f" ({len(invalid) - 1} more invalid rows; `vaelik sweep --dry-run` lists them)"
                if len(invalid) > 1 else "")
        raise InputError(f"grid row {name}: {problem}{more}; nothing was run")
    _check_not_in_run(Path(out))  # before the folder is created or anything written
    _check_grid_copy(Path(out))
    out = _sweep_folder(out)
    notes = list(expansion.notes)
    start = time.perf_counter()
    lock = _lock_folder(out)
    try:
        text = grid.text if grid.text is not None else grid_to_toml(grid)
        if not text.startswith(GRID_COPY_MARK):  # a sweep run from its own copy keeps one mark
            text = GRID_COPY_MARK + text
        atomic_write_bytes(_check_grid_copy(out), text.encode())
        todo: list[SweepRun] = []
        for run in expansion.runs:
            run_dir = out / run.name
            if read_status(run_dir) == Status.COMPLETED:
                if not same_config(run_dir, run.config):
                    notes.append(f"{run.name}: completed with another configuration; kept "
                                 "(delete the folder to train it again)")
                continue
            todo.append(run)
        # the most steps first (stable: grid order otherwise), so that a long run starts while
        # the short ones fill the other workers instead of running alone at the end
        todo.sort(key=lambda r: -step_budget(r.config))
        results: dict[str, RunOutcome] = {}
        table = SweepTable(out, expansion)
        running: list[str] = []
        total = len(expansion)

        def report(outcome: RunOutcome | None = None) -> None:
            if on_progress is not None:
                done = total - len(todo) + len(results)
                on_progress(SweepProgress(total, done, tuple(running), outcome))

        def started(name: str) -> None:
            running.append(name)
            report()

        def record(outcome: RunOutcome) -> None:
            results[outcome.name] = outcome
            if outcome.name in running:
                running.remove(outcome.name)
            table.update(outcome)
            table.write()
            report(outcome)

        def result() -> SweepResult:
            for outcome in results.values():  # statuses may change after an outcome
                table.update(outcome)
            return SweepResult(out=out, table=table.write(), results=results, notes=notes,
                               seconds=time.perf_counter() - start)

        table.write()
        report()
        try:
            if todo:
                if backend == "ray":
                    from vaelik.sweep.ray_backend import run_ray

                    run_ray(todo, out, address=address, jobs=jobs, started=started, record=record)
                else:
                    from vaelik.sweep.local import run_local

                    jobs = jobs or default_jobs()
                    run_local(todo, out, jobs=jobs, threads=threads or _threads(jobs),
                              started=started, record=record)
        except KeyboardInterrupt as e:
            raise SweepInterrupted(result()) from e
        return result()
    finally:
        lock.release()
