"""One configuration of a sweep, trained in a worker process, a Ray task or here.

:func:`train_one` trains (or resumes) one configuration into its run directory
and returns a :class:`RunOutcome`; a failed fit is an outcome, not an exception.
:func:`execute` is the entry point of a local worker process: :func:`train_one`
while holding the run's lock (:class:`filelock.FileLock` on
``<sweep>/.locks/<name>.lock``), so that a worker orphaned by a killed sweep and
the sweep that re-runs the grid never train one run at once. :func:`init_worker`
sets a spawned worker up: its torch threads, its signals, and a watchdog that
ends it when its parent (the sweep) is gone.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from vaelik.errors import DivergenceError, InputError
from vaelik.inference.config import TrainConfig
from vaelik.rundir import CHECKPOINT_FILE, CONFIG_FILE, Status, read_status, write_status
from vaelik.rundir.lock import sweep_owns

__all__ = ["LOCK_DIR", "RunOutcome", "execute", "init_worker", "run_lock_path", "train_one"]

#: folder of the per-run lock files inside a sweep folder
LOCK_DIR = ".locks"
#: how long a worker waits for a run's lock (held by an orphan of a killed sweep) before giving up
RUN_LOCK_TIMEOUT = 60.0
#: how often the watchdog of a worker checks that its parent is alive
WATCHDOG_INTERVAL = 0.5


@dataclass(frozen=True)
class RunOutcome:
    """What one attempt at one configuration came to.

    Attributes
    ----------
    name : str
        The run name (its folder in the sweep folder).
    status : str
        ``completed``, ``failed``, ``interrupted``, or ``skipped`` (it was
        complete already).
    reason : str
        Why it failed or stopped (empty when completed).
    seconds : float or None
        Wall time of the attempt (None when it is unknown: a crashed worker).
    resumed : bool
        Whether it continued from a checkpoint.
    """

    name: str
    status: str
    reason: str = ""
    seconds: float | None = None
    resumed: bool = False


def status_word(status: str | None) -> str:
    """The first word of a ``status`` file (``failed: ...`` -> ``failed``); ``missing`` if none."""
    if status is None:
        return Status.MISSING
    return status.split(":", 1)[0].strip()


def same_config(run_dir: Path, config: dict[str, Any]) -> bool:
    """True if ``run_dir``'s config.json resolves to the same configuration as ``config``.

    The stored file is read as resume reads it (:meth:`TrainConfig.from_stored`: a field
    it lacks takes the value of the vaelik that wrote it), so a run written before a
    field existed is not taken for one made with today's default.
    """
    try:
        stored = json.loads((run_dir / CONFIG_FILE).read_text())
        return TrainConfig.from_stored(stored).to_dict() == TrainConfig.from_dict(config).to_dict()
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def can_resume(run_dir: Path, config: dict[str, Any]) -> bool:
    """True if ``run_dir`` holds a checkpoint written by exactly ``config``."""
    return (run_dir / CHECKPOINT_FILE).is_file() and same_config(run_dir, config)


class _Flags:
    in_run = False  # a SIGTERM interrupts a run (KeyboardInterrupt), else ends the worker


def train_one(name: str, config: dict[str, Any], run_dir: str | os.PathLike) -> RunOutcome:
    """Train (or resume) one configuration into ``run_dir``; never raises for a failed fit.

    A run already ``completed`` is skipped; one with a checkpoint written by the
    same configuration is resumed (started again if the checkpoint is unusable);
    any other is trained from scratch, replacing what the folder holds.
    """
    from vaelik.inference import fit, resume

    run_dir = Path(run_dir)
    if read_status(run_dir) == Status.COMPLETED:
        return RunOutcome(name, "skipped", "already completed", 0.0)
    before = read_status(run_dir)
    status, reason, resumed = Status.COMPLETED, "", False
    tick = time.perf_counter()
    _Flags.in_run = True
    try:
        if can_resume(run_dir, config):
            try:
                resume(run_dir, progress=False)
                resumed = True
            except InputError:  # truncated/foreign checkpoint: start again
                fit(TrainConfig.from_dict(config), run_dir, progress=False, overwrite=True)
        else:
            fit(TrainConfig.from_dict(config), run_dir, progress=False, overwrite=True)
    except KeyboardInterrupt:
        mark(run_dir, Status.INTERRUPTED, only_if_running=True)
        status, reason = Status.INTERRUPTED, Status.INTERRUPTED
    except (InputError, DivergenceError) as e:
        status, reason = "failed", str(e)
        mark(run_dir, f"failed: {e}", before)
    except Exception as e:  # noqa: BLE001 - one bad configuration must not stop the sweep
        status, reason = "failed", f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        mark(run_dir, f"failed: {reason}", before)
    finally:
        _Flags.in_run = False
    return RunOutcome(name, status, reason, time.perf_counter() - tick, resumed)


def mark(run_dir: Path, status: str, before: str | None = None,
         only_if_running: bool = False) -> None:
    """Write ``status`` unless the run says ``completed`` (or, optionally, is not ``running``).

    A ``failed: ...`` line that the fit wrote itself during this attempt (it differs
    from ``before``, the status when the attempt started) is kept: it is more precise.
    """
    current = read_status(run_dir)
    if current == Status.COMPLETED or (only_if_running and current not in (None, Status.RUNNING)):
        return
    if status.startswith("failed") and current and current.startswith("failed") and current != before:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_status(run_dir, status)
    except OSError:
        pass


# -- worker processes of the local backend ----------------------------------------------


def run_lock_path(out: Path, name: str) -> Path:
    """The lock file of run ``name`` in the sweep folder ``out``."""
    return out / LOCK_DIR / f"{name}.lock"


def execute(name: str, config: dict[str, Any], run_dir: str, lock: str) -> RunOutcome:
    """Worker entry point: :func:`train_one` while holding the run's file lock.

    The lock is waited for (an orphaned worker of a SIGKILLed sweep still holds it
    until its watchdog ends it, within :data:`WATCHDOG_INTERVAL`); after
    :data:`RUN_LOCK_TIMEOUT` seconds the run is reported ``failed: busy``.
    """
    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(lock, timeout=RUN_LOCK_TIMEOUT), sweep_owns(Path(run_dir).parent):
            return train_one(name, config, run_dir)
    except TimeoutError as e:  # filelock.Timeout
        return RunOutcome(name, "failed", f"busy: {e}", 0.0)


def init_worker(threads: int, parent: int) -> None:
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
            time.sleep(WATCHDOG_INTERVAL)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watchdog, daemon=True, name="vaelik-parent-watchdog").start()


def _on_sigterm(signum: int, frame: Any) -> None:
    if _Flags.in_run:
        raise KeyboardInterrupt
    os._exit(0)
