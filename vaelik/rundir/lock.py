"""Who may write a run directory, and when: one owner at a time, never inside another run.

Three rules, each one function here (torch-free; :mod:`filelock` and the
standard library):

- **One owner.** ``vaelik train``, ``--resume`` and ``vaelik evaluate`` hold the
  run directory's lock, :data:`LOCK_FILE` inside it, for as long as they may
  write there (:func:`hold_run_dir`). A second writer is refused at once with
  one line: it never waits, and it never writes.
- **No run inside a run or a sweep.** A new run directory is never created
  inside another run directory, inside a sweep folder (a folder holding one of
  :data:`SWEEP_MARKERS`), as a sweep folder itself, or in a folder that holds
  run directories (:func:`check_new_run_dir`). A sweep's own workers are the
  exception: they train inside :func:`sweep_owns` of their sweep folder.
- **Probes never follow links.** The lock file is opened without following a
  symbolic link (a link planted under its name is refused, and the file it
  points to is never touched), and it is never truncated.

The lock is advisory (``flock`` through :class:`filelock.FileLock`): it keeps
vaelik processes apart, on one machine or on a file system that supports it.
The lock file stays in the folder after the run (an empty hidden file).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from vaelik.errors import InputError
from vaelik.rundir.schema import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, STATUS_FILE

__all__ = [
    "LOCK_FILE",
    "SWEEP_MARKERS",
    "check_new_run_dir",
    "hold_run_dir",
    "is_run_dir",
    "is_sweep_folder",
    "sweep_owns",
]

#: the lock file inside a run directory (empty; held while a process may write the run)
LOCK_FILE = ".run.lock"
#: files only a sweep folder holds: its own lock and its table (``vaelik.sweep``);
#: ``grid.toml`` alone is not one (a user's grid file may be named so)
SWEEP_MARKERS = (".sweep.lock", "sweep.csv")
#: how many run directories a refusal names
_NAMED = 3

_OWNED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "vaelik_sweeps_owned", default=frozenset())


def _key(path: str | os.PathLike) -> str:
    return os.path.realpath(path)


def is_run_dir(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a run: a ``config.json`` and a status, checkpoint, metrics or lock.

    ``config.json`` alone is not enough (many tools write one).
    """
    folder = Path(folder)
    try:
        if not (folder / CONFIG_FILE).is_file():
            return False
        return any(os.path.lexists(folder / name)
                   for name in (STATUS_FILE, CHECKPOINT_FILE, METRICS_FILE, LOCK_FILE))
    except OSError:
        return False


def is_sweep_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a sweep's marker files (:data:`SWEEP_MARKERS`)."""
    try:
        return any(os.path.lexists(Path(folder) / name) for name in SWEEP_MARKERS)
    except OSError:
        return False


@contextlib.contextmanager
def sweep_owns(folder: str | os.PathLike) -> Iterator[None]:
    """Let run directories be created directly inside the sweep folder ``folder``.

    Used by the sweep's own workers (:func:`vaelik.sweep.worker.train_one`) around
    the fit of one of its runs; process-local (a context variable).
    """
    token = _OWNED.set(_OWNED.get() | {_key(folder)})
    try:
        yield
    finally:
        _OWNED.reset(token)


def _child_runs(folder: Path) -> list[str]:
    try:
        children = sorted(p.name for p in folder.iterdir() if p.is_dir() and is_run_dir(p))
    except OSError:
        return []
    return children


def check_new_run_dir(path: str | os.PathLike) -> None:
    """Refuse ``path`` as the folder of a new run where it would mix with other runs.

    Refused: ``path`` inside a run directory (any level up), inside a sweep folder
    (unless this process trains for that sweep, :func:`sweep_owns`), a sweep
    folder itself, or a folder that holds run directories. Nothing is created.

    Raises
    ------
    InputError
        One line naming the folder in the way and what to do.
    """
    path = Path(path)
    full = Path(os.path.abspath(path))
    owned = _OWNED.get()
    if is_sweep_folder(full):
        raise InputError(f"output folder {path} is a sweep folder (it holds {_marker(full)}); "
                         "choose a new folder for the run, outside the sweep")
    for parent in full.parents:
        shown = parent if path.is_absolute() else os.path.relpath(parent)
        if is_run_dir(parent):
            raise InputError(f"output folder {path} is inside the run directory {shown}; "
                             "choose a --out outside it")
        if is_sweep_folder(parent) and _key(parent) not in owned:
            raise InputError(f"output folder {path} is inside the sweep folder {shown}; add the "
                             "configuration to the sweep's grid, or choose a --out outside it")
    runs = _child_runs(full) if full.is_dir() else []
    if runs:
        named = ", ".join(runs[:_NAMED]) + (", ..." if len(runs) > _NAMED else "")
        raise InputError(f"output folder {path} holds run directories ({named}); choose a new "
                         "folder for the run (one folder per run)")


def _marker(folder: Path) -> str:
    return next((m for m in SWEEP_MARKERS if os.path.lexists(folder / m)), SWEEP_MARKERS[0])


def _open_no_follow(path: Path) -> None:
    """Create ``path`` if missing (never truncating it, never through a symbolic link)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    os.close(fd)


def _reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return f"{LOCK_FILE} is a symbolic link; remove it"
    return e.strerror or type(e).__name__


@contextlib.contextmanager
def hold_run_dir(path: str | os.PathLike, *, command: str = "train") -> Iterator[Path]:
    """Hold the lock of the run directory ``path`` (an existing folder) for the ``with`` body.

    Refused at once, never waited for, when another process (or another holder in
    this one) holds it.

    Parameters
    ----------
    path : path-like
        The run directory; it must exist.
    command : str
        What is about to write there (``train``, ``resume``, ``evaluate``), for
        the messages.

    Yields
    ------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        The folder is in use by another writer, or the lock file cannot be
        created (a read-only folder or file system, a symbolic link planted as
        :data:`LOCK_FILE`).
    """
    path = Path(path)
    lock_path = path / LOCK_FILE
    try:
        _open_no_follow(lock_path)
        lock = FileLock(str(lock_path), timeout=0)
        lock.acquire()
    except Timeout:
        raise InputError(
            f"run directory {path} is in use by another vaelik process (a train, resume or "
            f"evaluate); wait for it to finish or stop it, then {command} again") from None
    except OSError as e:
        raise InputError(
            f"cannot write to run directory {path} ({_reason(e)}); `vaelik {command}` needs "
            "a writable run directory (copy the run to a writable place)") from None
    try:
        yield path
    finally:
        lock.release()
