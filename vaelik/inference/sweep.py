"""Sweeps: a TOML grid of configurations, one run directory each, re-runnable.

A grid file names fixed values at the top level, the values to cross in a
``[grid]`` table and, optionally, explicit extra configurations in ``[[extra]]``
tables (see ``docs/sweeps.md``)::

    data = "digits"
    epochs = 20
    [grid]
    likelihood = ["normal", "laplace"]
    scale = ["learned", 0.1]
    seed = [0, 1]

:func:`~vaelik.inference.grid.expand` (module :mod:`vaelik.inference.grid`, re-exported
here) turns it into a list of :class:`SweepRun` (each a full
:class:`~vaelik.inference.TrainConfig` and a stable, path-safe run name);
:func:`run_sweep` trains what is not ``completed`` yet, each run in its own run
directory under the sweep folder, in ``jobs`` spawned processes on this machine
or on a Ray cluster (:mod:`vaelik.inference.sweep_ray`), and keeps ``sweep.csv``
(one row per run) up to date.

Re-run semantics: a run whose ``status`` reads ``completed`` is never trained
again; one that is ``running`` (a killed sweep), ``interrupted`` or ``failed``
is resumed from its checkpoint when its stored configuration is the one asked
for, else restarted from scratch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelik.errors import DivergenceError, InputError
from vaelik.inference.config import TrainConfig
from vaelik.inference.grid import (  # noqa: F401 - re-exported: the sweep's public API
    GRID_KEYS,
    _canonical,
    _fmt,
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
from vaelik.rundir import (
    atomic_write_bytes,
    read_status,
    write_csv,
    write_status,
)

__all__ = [
    "GRID_COPY",
    "GRID_KEYS",
    "SWEEP_CSV",
    "Expansion",
    "Grid",
    "SweepResult",
    "SweepRun",
    "describe",
    "expand",
    "grid_from_dict",
    "grid_to_toml",
    "load_grid",
    "run_sweep",
    "sweep_table",
]

SWEEP_CSV = "sweep.csv"
GRID_COPY = "grid.toml"
LOCK_FILE = ".sweep.lock"
LOCK_DIR = ".locks"
#: eval.json keys copied into sweep.csv
METRIC_KEYS = ("elbo", "log_px", "mse", "mae", "bce", "scale", "scale_ratio",
               "active_units", "comparable")


# ----------------------------------------------------------------------------------------
# Running one configuration (in a worker process, a Ray task, or here)


def _status_word(status: str | None) -> str:
    if status is None:
        return "missing"
    return status.split(":", 1)[0].strip()


def _can_resume(run_dir: Path, config: dict[str, Any]) -> bool:
    """True if ``run_dir`` holds a checkpoint written by exactly ``config``."""
    return (run_dir / "checkpoint.pt").is_file() and _same_config(run_dir, config)


class _Flags:
    in_run = False


def train_one(name: str, config: dict[str, Any], run_dir: str | os.PathLike) -> dict[str, Any]:
    """Train (or resume) one configuration into ``run_dir``; never raises for a failed fit.

    Returns a dict with ``name``, ``status`` (``completed``, ``failed``,
    ``interrupted`` or ``skipped``), ``reason``, ``seconds`` and ``resumed``.
    """
    from vaelik.inference.svi import fit, resume

    run_dir = Path(run_dir)
    out = {"name": name, "status": "completed", "reason": "", "seconds": 0.0, "resumed": False}
    if read_status(run_dir) == "completed":
        return {**out, "status": "skipped", "reason": "already completed"}
    before = read_status(run_dir)
    tick = time.perf_counter()
    _Flags.in_run = True
    try:
        if _can_resume(run_dir, config):
            try:
                resume(run_dir, progress=False)
                out["resumed"] = True
            except InputError:  # truncated/foreign checkpoint: start again
                fit(TrainConfig.from_dict(config), run_dir, progress=False, overwrite=True)
        else:
            fit(TrainConfig.from_dict(config), run_dir, progress=False, overwrite=True)
    except KeyboardInterrupt:
        _mark(run_dir, "interrupted", only_if_running=True)
        out.update(status="interrupted", reason="interrupted")
    except (InputError, DivergenceError) as e:
        out.update(status="failed", reason=str(e))
        _mark(run_dir, f"failed: {e}", before)
    except Exception as e:  # noqa: BLE001 - one bad configuration must not stop the sweep
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        out.update(status="failed", reason=reason)
        _mark(run_dir, f"failed: {reason}", before)
    finally:
        _Flags.in_run = False
    out["seconds"] = time.perf_counter() - tick
    return out


def _mark(run_dir: Path, status: str, before: str | None = None,
          only_if_running: bool = False) -> None:
    """Write ``status`` unless the run says ``completed`` (or, optionally, is not ``running``).

    A ``failed: ...`` line that the fit wrote itself during this attempt (it differs
    from ``before``, the status when the attempt started) is kept: it is more precise.
    """
    current = read_status(run_dir)
    if current == "completed" or (only_if_running and current not in (None, "running")):
        return
    if status.startswith("failed") and current and current.startswith("failed") and current != before:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_status(run_dir, status)
    except OSError:
        pass


# -- worker processes of the local backend ----------------------------------------------


def _init_worker(threads: int, parent: int) -> None:
    """Initialiser of a spawned worker: thread count, signals, and a parent watchdog."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group: the driver decides, and tells us with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)

    def watchdog() -> None:  # a SIGKILLed driver cannot stop us: stop ourselves
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watchdog, daemon=True, name="vaelik-parent-watchdog").start()


def _on_sigterm(signum: int, frame: Any) -> None:
    if _Flags.in_run:
        raise KeyboardInterrupt
    os._exit(0)


class _RunLock:
    """An exclusive ``flock`` on ``<sweep>/.locks/<name>.lock`` while a run trains.

    Guards against a worker orphaned by a SIGKILLed sweep (it exits within a second,
    see the watchdog) and against two sweeps on one folder.
    """

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self) -> _RunLock:  # noqa: PYI034
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"{self.path} is held by another process") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock


def _execute(name: str, config: dict[str, Any], run_dir: str, lock: str) -> dict[str, Any]:
    """Worker entry point: :func:`train_one` under the run's lock."""
    try:
        with _RunLock(Path(lock)):
            return train_one(name, config, run_dir)
    except TimeoutError as e:
        return {"name": name, "status": "failed", "reason": f"busy: {e}", "seconds": 0.0,
                "resumed": False}


# ----------------------------------------------------------------------------------------
# The sweep


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    out : Path
        The sweep folder.
    table : pandas.DataFrame
        The contents of ``sweep.csv`` (one row per configuration).
    results : dict of str to dict
        This session's outcome per run name (runs already complete are absent).
    notes : list of str
        Expansion notes and warnings (e.g. a completed run with another configuration).
    """

    out: Path
    table: Any
    results: dict[str, dict[str, Any]]
    notes: list[str]

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r["status"] == "failed"]


class _SweepLock:
    def __init__(self, out: Path) -> None:
        self.path, self.fd = out / LOCK_FILE, None

    def __enter__(self) -> _SweepLock:  # noqa: PYI034
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise InputError(f"sweep folder {self.path.parent} is in use by another `vaelik sweep`; "
                             "wait for it to finish or stop it first") from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def _threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _columns(expansion: Expansion) -> list[str]:
    fixed = [k for k in ("likelihood", "scale", "model", "latent_dim") if k not in expansion.varying]
    return ["run", *fixed, *expansion.varying]


def _row(out: Path, run: SweepRun, columns: list[str], session: dict[str, Any]) -> dict[str, Any]:
    """One ``sweep.csv`` row, from the run directory and this session's outcome."""
    run_dir = out / run.name
    status = read_status(run_dir)
    row: dict[str, Any] = {"run": run.name}
    row.update({k: run.config.get(k) for k in columns[1:]})
    if isinstance(row.get("data_options"), dict):
        row["data_options"] = _canonical(row["data_options"])
    word = _status_word(status)
    if word == "missing" and session.get("status") in ("failed", "interrupted"):
        word = session["status"]
    elif word == "running" and session.get("status") == "interrupted":
        word = "interrupted"
    reason = ""
    if word == "failed":
        reason = (status or "").split(":", 1)[-1].strip() or session.get("reason", "")
    row["status"], row["reason"] = word, reason
    evaluation: dict[str, Any] = {}
    if word == "completed":
        try:
            evaluation = json.loads((run_dir / "eval.json").read_text())
        except (OSError, ValueError):
            evaluation = {}
    seconds = session.get("seconds")
    if seconds is None and evaluation:
        parts = [evaluation.get("seconds_train"), evaluation.get("seconds_eval")]
        seconds = sum(p for p in parts if isinstance(p, (int, float))) or None
    row["seconds"] = round(seconds, 2) if isinstance(seconds, (int, float)) else None
    for key in METRIC_KEYS:
        row["scale_value" if key == "scale" else key] = evaluation.get(key)
    return row


class _Index:
    """The rows of ``sweep.csv``, refreshed one run at a time and written atomically."""

    def __init__(self, out: Path, expansion: Expansion) -> None:
        self.out, self.runs = out, {r.name: r for r in expansion.runs}
        self.columns = _columns(expansion)
        self.rows = {r.name: _row(out, r, self.columns, {}) for r in expansion.runs}

    def update(self, name: str, session: dict[str, Any]) -> None:
        self.rows[name] = _row(self.out, self.runs[name], self.columns, session)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(list(self.rows.values()))

    def write(self):
        frame = self.frame()
        write_csv(self.out / SWEEP_CSV, frame)
        return frame


def sweep_table(out: str | os.PathLike, expansion: Expansion,
                results: dict[str, dict[str, Any]] | None = None):
    """The ``sweep.csv`` frame, built from the run directories (and a session's outcomes)."""
    index = _Index(Path(out), expansion)
    for name, session in (results or {}).items():
        index.update(name, session)
    return index.frame()


def _print_summary(table, results: dict[str, dict[str, Any]], seconds: float, stream=None) -> None:
    stream = stream or sys.stderr
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    done_now = sum(1 for r in results.values() if r["status"] == "completed")
    parts = [f"{counts.get('completed', 0)}/{len(table)} completed ({done_now} this time)"]
    parts += [f"{n} {w}" for w, n in sorted(counts.items()) if w != "completed"]
    print(f"sweep: {', '.join(parts)} in {seconds:.1f} s", file=stream)
    bad = table[table["status"] != "completed"]
    width = max([len(r) for r in bad["run"]] + [3])
    for _, row in bad.iterrows():
        reason = f"  {row['reason']}" if row["reason"] else ""
        print(f"  {row['run']:<{width}}  {row['status']}{reason}", file=stream)


def run_sweep(
    grid: Grid | str | os.PathLike,
    out: str | os.PathLike,
    *,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Train every configuration of ``grid`` that is not complete under ``out``.

    Parameters
    ----------
    grid : Grid or path
        A parsed grid, or the path of a grid file.
    out : path
        The sweep folder: one run directory per configuration, ``grid.toml`` (a
        copy of the grid) and ``sweep.csv`` (one row per run: configuration,
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
    progress : bool
        One progress bar over the grid, and the summary on stderr.
    overrides : dict, optional
        Values applied over every configuration (e.g. ``{"device": "cuda"}``).
    on_result : callable, optional
        Called in this process with each run's outcome dict.

    Returns
    -------
    SweepResult

    Raises
    ------
    InputError
        A bad grid, an unusable output folder, a folder in use by another sweep.
    KeyboardInterrupt
        After a clean stop: running runs are marked ``interrupted`` and
        ``sweep.csv`` is written.
    """
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    if overrides:
        grid = Grid(base={**grid.base, **overrides}, axes=grid.axes, extra=grid.extra,
                    text=grid.text)
    if backend not in ("local", "ray"):
        raise InputError(f"backend must be 'local' or 'ray', got {backend!r}")
    for label, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{label} must be an integer >= 1, got {value!r}")
    expansion = expand(grid)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"sweep output {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create sweep folder {out}: {e.strerror or e}") from None
    notes = list(expansion.notes)
    start = time.perf_counter()
    with _SweepLock(out):
        text = grid.text if grid.text is not None else grid_to_toml(grid)
        atomic_write_bytes(out / GRID_COPY, text.encode())
        todo: list[SweepRun] = []
        for run in expansion.runs:
            run_dir = out / run.name
            if read_status(run_dir) == "completed":
                if not _same_config(run_dir, run.config):
                    notes.append(f"{run.name}: completed with another configuration; kept "
                                 "(delete the folder to train it again)")
                continue
            todo.append(run)
        results: dict[str, dict[str, Any]] = {}
        index = _Index(out, expansion)

        def record(result: dict[str, Any]) -> None:
            results[result["name"]] = result
            index.update(result["name"], result)
            index.write()
            if on_result is not None:
                on_result(result)

        index.write()
        try:
            if todo:
                if backend == "ray":
                    from vaelik.inference.sweep_ray import run_ray

                    run_ray(todo, out, address=address, jobs=jobs, progress=progress,
                            total=len(expansion), record=record)
                else:
                    jobs = jobs or default_jobs()
                    _run_local(todo, out, jobs=jobs, threads=threads or _threads(jobs),
                               progress=progress, total=len(expansion), record=record)
        except KeyboardInterrupt:
            for name, outcome in results.items():
                index.update(name, outcome)
            table = index.write()
            if progress:
                _print_summary(table, results, time.perf_counter() - start)
            raise
        for name, outcome in results.items():  # statuses may change after an outcome
            index.update(name, outcome)
        table = index.write()
    if progress:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        _print_summary(table, results, time.perf_counter() - start)
    return SweepResult(out=out, table=table, results=results, notes=notes)


def _same_config(run_dir: Path, config: dict[str, Any]) -> bool:
    """True if ``run_dir``'s config.json resolves to the same configuration as ``config``."""
    try:
        stored = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return TrainConfig.from_dict(stored).to_dict() == TrainConfig.from_dict(config).to_dict()


class _Progress:
    """One tqdm bar over the grid; the postfix lists the runs in flight."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, desc="sweep", unit="run", disable=not enabled,
                        dynamic_ncols=True)
        self.running: list[str] = []

    def start(self, name: str) -> None:
        self.running.append(name)
        self._show()

    def finish(self, name: str) -> None:
        if name in self.running:
            self.running.remove(name)
        self.bar.update(1)
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(", ".join(self.running), refresh=True)

    def close(self) -> None:
        self.bar.close()


def _run_local(todo: list[SweepRun], out: Path, *, jobs: int, threads: int, progress: bool,
               total: int, record: Callable[[dict[str, Any]], None]) -> None:
    """Train ``todo`` in ``jobs`` spawned worker processes, at most ``jobs`` in flight."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    jobs = min(jobs, len(todo))
    bar = _Progress(total, total - len(todo), progress)
    queue = list(todo)
    inflight: dict[Any, SweepRun] = {}
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, os.getpid()))
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # a scheduler's SIGTERM stops the sweep as cleanly as Ctrl-C
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while queue or inflight:
            while queue and len(inflight) < jobs:
                run = queue.pop(0)
                future = executor.submit(_execute, run.name, run.config, str(out / run.name),
                                         str(out / LOCK_DIR / f"{run.name}.lock"))
                inflight[future] = run
                bar.start(run.name)
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                run = inflight.pop(future)
                record(_outcome(future, run))
                bar.finish(run.name)
    except KeyboardInterrupt:
        _stop_local(executor, inflight, out, record)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        bar.close()
        executor.shutdown(wait=True, cancel_futures=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _outcome(future: Any, run: SweepRun) -> dict[str, Any]:
    try:
        return future.result()
    except BaseException as e:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
        return {"name": run.name, "status": "failed", "seconds": None, "resumed": False,
                "reason": f"worker crashed: {type(e).__name__}: {e}"}


def _stop_local(executor: Any, inflight: dict[Any, SweepRun], out: Path,
                record: Callable[[dict[str, Any]], None], grace: float = 30.0) -> None:
    """Ask the workers to stop (SIGTERM), wait for their runs, mark the rest interrupted."""
    from concurrent.futures import wait

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        processes = dict(getattr(executor, "_processes", None) or {})
        for pid in processes:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        done, pending = wait(list(inflight), timeout=grace)
        for future in done:
            record(_outcome(future, inflight[future]))
        for pid, process in processes.items():
            if process.is_alive():
                os.kill(pid, signal.SIGKILL)
        for future in pending:
            run = inflight[future]
            _mark(out / run.name, "interrupted", only_if_running=True)
            record({"name": run.name, "status": "interrupted", "reason": "interrupted",
                    "seconds": None, "resumed": False})
    finally:
        if in_main:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def describe(expansion: Expansion, stream=None) -> None:
    """Print the expanded grid (``--dry-run``): one line per run, its size, the notes."""
    stream = stream or sys.stdout
    width = max([len(r.name) for r in expansion.runs] + [3])
    shown = [k for k in expansion.varying]
    for run in expansion.runs:
        values = "  ".join(f"{k}={_fmt(v) if (v := run.config.get(k)) is not None else '-'}"
                           for k in shown)
        problem = check_run(run)
        flag = f"  INVALID: {problem}" if problem else ""
        print(f"{run.name:<{width}}  {values}{flag}", file=stream)
    print(f"{len(expansion)} configuration{'s' * (len(expansion) != 1)}", file=stream)
    for note in expansion.notes:
        print(f"note: {note}", file=stream)

