"""Reading and writing run-directory files: atomic writes, JSON, CSV, the status, the folder.

Every file is written under a temporary name in its own folder and moved into
place with ``os.replace``: a reader, or a process killed half-way, never sees
half a file. ``status`` is written last; a run is complete only when it reads
``completed`` (:class:`~vaelik.rundir.schema.Status`). Torch-free: standard
library, numpy and pandas only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaelik.errors import InputError
from vaelik.rundir.schema import CONFIG_FILE, RUN_FILES, STATUS_FILE, Status

__all__ = [
    "MAX_RUN_NAME",
    "RunFileError",
    "atomic_path",
    "atomic_write_bytes",
    "clear_run_files",
    "prepare_run_dir",
    "probe_writable",
    "read_csv",
    "read_json",
    "read_status",
    "safe_run_name",
    "write_csv",
    "write_json",
    "write_status",
]

#: the longest name :func:`safe_run_name` returns
MAX_RUN_NAME = 80


class RunFileError(ValueError):
    """A file of a run directory is missing or does not follow ``docs/run-directory.md``."""


# ---------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    For writers that need a file name (netCDF, savefig). On an error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes 0600 files; give the result the mode a plain open() would (umask)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------- JSON and CSV


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    elif hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays, torch tensors
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; null means "not available"
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (NaN/inf become null).

    Arrays and tensors (anything with ``tolist()``) become lists.
    """
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object (``config.json``, ``eval.json``).

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If it is not JSON or not a JSON object.
    """
    with open(path, encoding="utf-8") as fh:
        value = json.load(fh)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")  # noqa: TRY004 - a bad file
    return value


def _missing(columns: Iterable[str], required: Iterable[str]) -> list[str]:
    have = set(columns)
    return [c for c in required if c not in have]


def write_csv(path: str | os.PathLike, frame: pd.DataFrame,
              required: Iterable[str] = ()) -> None:
    """Write a DataFrame as CSV without its index, atomically.

    Parameters
    ----------
    path : path-like
        Where to write.
    frame : pandas.DataFrame
        The table.
    required : iterable of str
        Columns the file's contract requires (e.g. ``schema.METRICS_COLUMNS``);
        a frame without one of them is a programming error (``ValueError``).
    """
    missing = _missing(frame.columns, required)
    if missing:
        raise ValueError(f"{Path(path).name}: frame lacks column(s) {', '.join(missing)}")
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def read_csv(path: str | os.PathLike, required: Iterable[str] = (), numeric: bool = True,
             hint: str = "re-run `vaelik evaluate` on this run") -> pd.DataFrame:
    """Read a CSV file of a run directory and check its required columns.

    Parameters
    ----------
    path : path-like
        The file.
    required : iterable of str
        Columns that must be present.
    numeric : bool
        Convert every column to numbers (unparseable values become NaN).
    hint : str
        What to do when the file is missing (the message is ``<path>: missing; <hint>``).

    Raises
    ------
    RunFileError
        If the file is missing, unreadable, or lacks a required column.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise RunFileError(f"{path}: missing; {hint}") from exc
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunFileError(f"{path}: unreadable ({exc})") from exc
    missing = _missing(frame.columns, required)
    if missing:
        raise RunFileError(f"{path}: lacks column(s) {', '.join(missing)}")
    if numeric:
        for col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


# ---------------------------------------------------------------- status


def write_status(run_dir: str | os.PathLike, status: str) -> None:
    """Write the one-line ``status`` file (a :class:`Status` value), atomically.

    Line breaks and runs of white space in ``status`` (a failure's reason)
    become single spaces.
    """
    line = " ".join(str(status).split())
    atomic_write_bytes(Path(run_dir) / STATUS_FILE, (line + "\n").encode())


def read_status(run_dir: str | os.PathLike) -> str | None:
    """The status of a run directory: the first line of ``status``, stripped.

    The one status reader of vaelik (inference, sweeps, CLI and analysis).

    Returns
    -------
    str or None
        ``completed``, ``running``, ``interrupted``, ``failed: <reason>`` (or
        whatever a foreign file holds); None when there is no readable,
        non-empty ``status`` file (readers show :data:`Status.MISSING`).
    """
    try:
        text = (Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else None


# ---------------------------------------------------------------- the folder


def safe_run_name(text: str, limit: int = MAX_RUN_NAME) -> str:
    r"""A readable, path-safe folder name for a run, made from ``text``.

    The contract (the sweep names its run folders with it; joining the result to
    an output folder never leaves that folder):

    - only the characters ``[A-Za-z0-9._-]``: every run of other characters
      (``/``, ``\``, spaces, ``<``, non-ASCII, ...) becomes one ``_``;
    - no ``..`` anywhere (runs of dots become one dot), so no ``.``/``..`` segment;
    - no leading ``.``, ``-`` or ``_`` (no hidden files, nothing that reads as a
      command-line flag) and no trailing ``.``, ``-`` or ``_``;
    - at most ``limit`` characters (default 80);
    - never empty: a text with nothing usable left gives ``"run"`` (cut to ``limit``);
    - deterministic and idempotent: ``safe_run_name(safe_run_name(t)) ==
      safe_run_name(t)``; a name that already follows the rules is returned unchanged.

    Different texts may give the same name (``"a/b"`` and ``"a b"`` both give
    ``"a_b"``); a caller that needs unique folders adds its own suffix.

    Parameters
    ----------
    text : str
        Any text, e.g. a run name from a config or a grid file.
    limit : int
        Maximum length of the result (>= 1).

    Returns
    -------
    str

    Examples
    --------
    >>> safe_run_name("normal/learned s0")
    'normal_learned_s0'
    >>> safe_run_name("../evil")
    'evil'
    >>> safe_run_name("")
    'run'
    """
    if limit < 1:
        raise InputError(f"limit must be an integer >= 1, got {limit!r}")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))
    name = re.sub(r"\.{2,}", ".", name).lstrip(".-_")
    name = name[:limit].rstrip(".-_")
    return name or "run"[:limit]


def probe_writable(folder: str | os.PathLike) -> None:
    """Create and remove a file in ``folder``, to learn early that it can be written.

    The probe has a fresh unique name (``.write-test.<random>``, created with
    ``O_CREAT | O_EXCL``): it never opens, follows or truncates a file that is
    already there, e.g. a symbolic link planted as ``.write-test``.

    Raises
    ------
    OSError
        If the file cannot be created (a read-only folder or file system, no space).
    """
    fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
    os.close(fd)
    os.unlink(probe)


def _refuse_existing_run(path: Path) -> None:
    status = read_status(path) or "no status"
    if Status.is_completed(status):
        raise InputError(
            f"output folder {path} already holds a completed run; choose another --out "
            "or pass --overwrite"
        )
    raise InputError(
        f"output folder {path} already holds a run ({status}); continue it with "
        f"`vaelik train --resume {path}` or pass --overwrite"
    )


def prepare_run_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Create the output folder of a new run and check that it can be written; change nothing else.

    An old run in the folder is left as it is: with ``overwrite`` its files are
    removed only when the new run starts (:func:`clear_run_files`), after
    everything was checked, so a refused or failed start keeps it.

    Raises
    ------
    InputError
        If the folder holds a run (unless ``overwrite``), is a file, cannot be
        created, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {path} exists and is not a folder; choose another --out")
    if (path / CONFIG_FILE).exists() and not overwrite:
        _refuse_existing_run(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_writable(path)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise InputError(
            f"cannot write to output folder {path} ({reason}); choose a writable --out"
        ) from None
    return path


def clear_run_files(path: str | os.PathLike, keep: Iterable[str] = ()) -> None:
    """Remove the files of :data:`~vaelik.rundir.schema.RUN_FILES` (but ``keep``) and stale temp files.

    Called when a new run replaces an old one (``--overwrite``), so that no
    result of the old run outlives it. Other files in the folder are left alone;
    a symbolic link in the place of a run file is removed, never followed.
    Stale temporary files are the ``.<file>.<random>.tmp`` a killed writer left
    (:func:`atomic_path`).
    """
    path = Path(path)
    keep = set(keep)
    for name in RUN_FILES:
        if name not in keep:
            (path / name).unlink(missing_ok=True)
    for tmp in path.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
