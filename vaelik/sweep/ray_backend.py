"""The Ray backend of :func:`vaelik.sweep.run_sweep` (``--backend ray``).

Each configuration is one Ray task. The task trains into a temporary folder on
whichever node runs it and returns the run directory's files as bytes, so the
workers need not share a filesystem with the driver; the driver writes them
into the sweep folder atomically, ``status`` last. A run that has a checkpoint
here (an interrupted or killed earlier sweep) ships its files with the task,
which resumes it.

Ray is an optional dependency (``pip install 'vaelik[ray]'``), imported only here.
Ray >= 2.60 enables token authentication by default: a local cluster started
by ``address="local"`` writes ``~/.ray/auth_token``; to reach a secured remote
cluster, provide its token (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``)
-- see ``docs/sweeps.md``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaelik.errors import InputError
from vaelik.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    STATUS_FILE,
    Status,
    atomic_write_bytes,
    read_status,
)
from vaelik.sweep.grid import SweepRun
from vaelik.sweep.worker import RunOutcome, can_resume, train_one

__all__ = ["import_ray", "run_ray"]

#: files of a run directory sent with a task so that it can resume
RESUME_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, STATUS_FILE)


def import_ray():
    """Import Ray, or raise an :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray needs Ray, which is not installed: "
                         "pip install 'vaelik[ray]'") from None
    return ray


def remote_train(name: str, config: dict[str, Any], seed_files: dict[str, bytes],
                 threads: int) -> dict[str, Any]:
    """Body of the Ray task: train in a temporary folder, return outcome and file bytes."""
    import torch

    torch.set_num_threads(max(1, threads))
    tmp = Path(tempfile.mkdtemp(prefix="vaelik-ray-"))
    try:
        run_dir = tmp / name
        run_dir.mkdir()
        for fname, data in seed_files.items():
            (run_dir / fname).write_bytes(data)
        outcome = train_one(name, config, run_dir)
        files = {}
        for path in sorted(run_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files[path.name] = path.read_bytes()
        return {"outcome": outcome, "files": files, "node": os.uname().nodename}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a returned run directory: old status removed first, each file atomically, status last."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "status").unlink(missing_ok=True)
    for fname, data in files.items():
        if fname != "status" and "/" not in fname and not fname.startswith("."):
            atomic_write_bytes(run_dir / fname, data)
    if "status" in files:
        atomic_write_bytes(run_dir / "status", files["status"])


def _seed_files(run: SweepRun, run_dir: Path) -> dict[str, bytes]:
    if read_status(run_dir) == Status.COMPLETED or not can_resume(run_dir, run.config):
        return {}
    return {f: (run_dir / f).read_bytes() for f in RESUME_FILES if (run_dir / f).is_file()}


def run_ray(todo: list[SweepRun], out: Path, *, address: str | None, jobs: int | None,
            started: Callable[[str], None], record: Callable[[RunOutcome], None],
            cpus_per_task: int = 1) -> None:
    """Send ``todo`` to a Ray cluster and write each returned run into ``out``.

    ``started(name)`` is called when a run's task is submitted, ``record(outcome)``
    when it comes back; ``jobs`` is the CPU count of a local cluster.
    """
    ray = import_ray()
    initialised = False
    if not ray.is_initialized():
        if address in (None, "", "local"):
            ray.init(num_cpus=jobs or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False)
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as e:
                raise InputError(f"cannot connect to the Ray cluster at {address}: {e}") from None
        initialised = True
    task = ray.remote(num_cpus=cpus_per_task, max_retries=0)(remote_train)
    refs: dict[Any, SweepRun] = {}
    try:
        for run in todo:
            ref = task.remote(run.name, run.config, _seed_files(run, out / run.name), cpus_per_task)
            refs[ref] = run
            started(run.name)
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            run = refs.pop(done[0])
            try:
                payload = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a lost node or a crashed worker
                msg = (str(e).strip().splitlines() or [""])[-1]
                record(RunOutcome(run.name, "failed", f"ray task failed: {type(e).__name__}: {msg}"))
            else:
                write_files(out / run.name, payload["files"])
                record(payload["outcome"])
    except KeyboardInterrupt:
        for ref, run in refs.items():
            ray.cancel(ref, force=True)
            record(RunOutcome(run.name, Status.INTERRUPTED, Status.INTERRUPTED))
        raise
    finally:
        if initialised:
            ray.shutdown()
