"""The local backend of :func:`vaelik.sweep.run_sweep`: a pool of spawned worker processes.

``jobs`` processes (``concurrent.futures.ProcessPoolExecutor``, spawn context)
are reused from run to run; each runs :func:`vaelik.sweep.worker.execute`.
Ctrl-C, or a scheduler's SIGTERM, stops the sweep cleanly: the workers are
asked to stop (SIGTERM: the run in progress raises ``KeyboardInterrupt`` at its
next step and is marked ``interrupted``), queued runs are not started.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaelik.rundir import Status
from vaelik.sweep.grid import SweepRun
from vaelik.sweep.worker import RunOutcome, execute, init_worker, mark, run_lock_path

__all__ = ["run_local"]

#: seconds the workers get to stop their runs after a Ctrl-C before they are killed
STOP_GRACE = 30.0


def run_local(todo: list[SweepRun], out: Path, *, jobs: int, threads: int,
              started: Callable[[str], None], record: Callable[[RunOutcome], None]) -> None:
    """Train ``todo`` in ``jobs`` spawned worker processes, at most ``jobs`` in flight.

    ``started(name)`` is called when a run is handed to a worker, ``record(outcome)``
    when it comes back (both in this process).
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    jobs = min(jobs, len(todo))
    queue = list(todo)
    inflight: dict[Any, SweepRun] = {}
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                   initializer=init_worker, initargs=(threads, os.getpid()))
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # a scheduler's SIGTERM stops the sweep as cleanly as Ctrl-C
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while queue or inflight:
            while queue and len(inflight) < jobs:
                run = queue.pop(0)
                future = executor.submit(execute, run.name, run.config, str(out / run.name),
                                         str(run_lock_path(out, run.name)))
                inflight[future] = run
                started(run.name)
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                run = inflight.pop(future)
                record(_outcome(future, run))
    except KeyboardInterrupt:
        _stop(executor, inflight, out, record)
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        executor.shutdown(wait=True, cancel_futures=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _outcome(future: Any, run: SweepRun) -> RunOutcome:
    try:
        return future.result()
    except BaseException as e:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
        return RunOutcome(run.name, "failed", f"worker crashed: {type(e).__name__}: {e}")


def _stop(executor: Any, inflight: dict[Any, SweepRun], out: Path,
          record: Callable[[RunOutcome], None], grace: float = STOP_GRACE) -> None:
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
            mark(out / run.name, Status.INTERRUPTED, only_if_running=True)
            record(RunOutcome(run.name, Status.INTERRUPTED, Status.INTERRUPTED))
    finally:
        if in_main:
            signal.signal(signal.SIGINT, signal.default_int_handler)
