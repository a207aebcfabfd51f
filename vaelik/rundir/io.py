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
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaelik.errors import InputError
from vaelik.rundir.check import EVAL_TYPES, json_type_problems
from vaelik.rundir.schema import (
    CONFIG_FILE,
    METRICS_COLUMNS,
    METRICS_REQUIRED,
    RUN_FILES,
    STAGING_DIR,
    STATUS_FILE,
    Status,
)
from vaelik.rundir.staging import resolve

__all__ = [
    "MAX_RUN_NAME",
    "RunFileError",
    "atomic_path",
    "atomic_write_bytes",
    "clear_run_files",
    "prepare_run_dir",
    "probe_writable",
    "read_csv",
    "read_eval",
    "read_json",
    "read_metrics",
    "read_record",
    "read_status",
    "safe_run_name",
    "write_csv",
    "write_json",
    "write_status",
]

#: the longest name :func:`safe_run_name` returns
MAX_RUN_NAME = 80


class RunFileError(InputError):
    """A file of a run directory is missing or does not follow ``docs/run-directory.md``.

    Raised by every reader of this package for *any* content of the file (bad
    encoding, truncated, not the format, wrong types); the message is one line
    naming the file. An :class:`~vaelik.errors.InputError` (the CLI exits with
    code 2) and so a ``ValueError``.
    """


def _reason(exc: BaseException) -> str:
    """An exception as a short one-line reason."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _unreadable(path: Path, exc: BaseException, hint: str) -> RunFileError:
    if isinstance(exc, FileNotFoundError):
        return RunFileError(f"{path}: missing" + (f"; {hint}" if hint else ""))
    return RunFileError(f"{path}: unreadable ({_reason(exc)})" + (f"; {hint}" if hint else ""))


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


def read_json(path: str | os.PathLike, hint: str = "") -> dict:
    """Read a JSON object (``config.json``, ``eval.json``); never fails otherwise than as below.

    Parameters
    ----------
    path : path-like
        The file (read through :func:`~vaelik.rundir.staging.resolve`, so a
        committed evaluation that is still being swapped in reads whole).
    hint : str
        What to do about a bad file, appended to the message.

    Raises
    ------
    RunFileError
        If the file is missing or unreadable, is not UTF-8 JSON, or is not a
        JSON object (whatever its bytes).
    """
    path = Path(path)
    try:
        with open(resolve(path), encoding="utf-8") as fh:
            value = json.load(fh)
    except Exception as exc:  # noqa: BLE001 - any content (even deep nesting) is a bad file
        raise _unreadable(path, exc, hint) from None
    if not isinstance(value, dict):
        raise RunFileError(f"{path}: holds a JSON {type(value).__name__}, expected a JSON object"
                           + (f"; {hint}" if hint else ""))
    return value


def read_record(path: str | os.PathLike, types: Mapping[str, Any], hint: str = "") -> dict:
    """Read a JSON object and check its values against declared ``types``.

    Parameters
    ----------
    path : path-like
        The file.
    types : mapping of str to type
        Declared type per key (``typing.get_type_hints`` of a TypedDict or a
        dataclass, e.g. :class:`vaelik.config.TrainConfig` for ``config.json``);
        see :func:`vaelik.rundir.check.json_type_problems`. Keys the file lacks
        (older runs) are not problems; a present key whose value has another JSON
        type than declared is.
    hint : str
        What to do about a bad file, appended to the message.

    Raises
    ------
    RunFileError
        As :func:`read_json`, or naming the first keys of the wrong type.
    """
    record = read_json(path, hint)
    problems = json_type_problems(record, types)
    if problems:
        raise RunFileError(f"{Path(path)}: {'; '.join(problems)}" + (f"; {hint}" if hint else ""))
    return record


def read_eval(path: str | os.PathLike, hint: str = "re-run `vaelik evaluate` on this run") -> dict:
    """Read ``eval.json``: :func:`read_record` against :class:`~vaelik.rundir.schema.EvalRecord`."""
    return read_record(path, EVAL_TYPES, hint)


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
        frame = pd.read_csv(resolve(path), encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - any content (encoding, quoting, size) is a bad file
        raise _unreadable(path, exc, hint) from None
    missing = _missing(frame.columns, required)
    if missing:
        raise RunFileError(f"{path}: lacks column(s) {', '.join(missing)}"
                           + (f"; {hint}" if hint else ""))
    if numeric:
        for col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def read_metrics(path: str | os.PathLike, hint: str = "train the run again") -> pd.DataFrame:
    """Read ``metrics.csv`` strictly: every value a number where the schema says so.

    Columns of :data:`~vaelik.rundir.schema.METRICS_COLUMNS` that the file lacks
    are added as NaN (older runs); ``split`` is text, every other column
    numeric. An empty cell is NaN (``scale`` of a family without one); a cell
    that is not a number is a problem.

    Raises
    ------
    RunFileError
        If the file is missing or unreadable (:func:`read_csv`), lacks
        ``epoch`` or ``split``, or holds text where a number belongs.
    """
    path = Path(path)
    frame = read_csv(path, METRICS_REQUIRED, numeric=False, hint=hint)
    for col in METRICS_COLUMNS:
        if col not in frame.columns:
            frame[col] = np.nan
        elif col != "split":
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() & frame[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RunFileError(f"{path}: column {col} holds {str(frame[col].iloc[row])[:30]!r} "
                                   f"in row {row + 1}, not a number; {hint}")
            frame[col] = values
    frame["split"] = frame["split"].astype(str)
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
        non-empty ``status`` file (readers show :data:`Status.MISSING`). Any
        bytes read: bytes that are not UTF-8 and control characters become
        U+FFFD, NUL bytes are dropped.
    """
    try:  # a status is one short line: read at most 4 KiB of whatever the file holds
        with open(Path(run_dir) / STATUS_FILE, "rb") as fh:
            raw = fh.read(4096)
    except (OSError, ValueError):
        return None
    lines = raw.decode("utf-8", errors="replace").replace("\x00", "").strip().splitlines()
    if not lines:
        return None
    # a control character (an escape sequence) would reach a terminal through an error message
    return "".join(c if c.isprintable() else "\ufffd" for c in lines[0].strip()) or None


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
    staging = path / STAGING_DIR  # an old evaluation's staged files must not be swapped in later
    if staging.is_symlink():
        staging.unlink()
    elif staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
