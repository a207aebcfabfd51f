"""Writing the run directory (see ``docs/run-directory.md``): atomic files and the status.

Every file is written to a temporary name in the same folder and renamed with
``os.replace``, so a reader (or a killed process) never leaves half a file.
``status`` is written last; a run is complete only when it reads ``completed``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vaelik.atomic import atomic_write_bytes
from vaelik.errors import InputError

__all__ = [
    "atomic_write_bytes",
    "write_json",
    "write_csv",
    "write_status",
    "read_status",
    "save_checkpoint",
    "load_checkpoint",
    "prepare_run_dir",
    "safe_run_name",
]

COMPLETED = "completed"
#: the longest name :func:`safe_run_name` returns
MAX_RUN_NAME = 80
#: files a run writes; ``prepare_run_dir(overwrite=True)`` removes these (and only these)
RUN_FILES = ("status", "eval.json", "checkpoint.pt", "metrics.csv", "pointwise.csv",
             "per_dim.csv", "images.npz", "posterior.nc")


def safe_run_name(text: str, limit: int = MAX_RUN_NAME) -> str:
    """A readable, path-safe folder name for a run, made from ``text``.

    The contract (the sweep names its run folders with it; joining the result to
    an output folder never leaves that folder):

    - only the characters ``[A-Za-z0-9._-]``: every run of other characters
      (``/``, ``\\``, spaces, ``<``, non-ASCII, ...) becomes one ``_``;
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; null means "not available"
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (NaN/inf become null)."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV without its index."""
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def write_status(run_dir: str | os.PathLike, status: str) -> None:
    """Write the one-line ``status`` file (``running``, ``completed``, ``failed: ...``)."""
    line = " ".join(status.split())  # one line, whatever the reason held
    atomic_write_bytes(Path(run_dir) / "status", (line + "\n").encode())


def read_status(run_dir: str | os.PathLike) -> str | None:
    """The status line of a run directory, or None if there is none."""
    try:
        return (Path(run_dir) / "status").read_text().strip()
    except OSError:
        return None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save tensors/primitives only, atomically (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


_CHECKPOINT_KEYS = {"config", "epoch", "params", "optimizer", "rng", "metrics"}


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"no checkpoint at {path}: the run never finished an epoch or the file was removed; "
            "start it again with --overwrite"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        first = (str(e).splitlines() or [type(e).__name__])[0].split(". ")[0][:160]
        raise InputError(
            f"checkpoint {path} is corrupt or truncated ({first}); start the run again with "
            "--overwrite"
        ) from None
    if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= set(state):
        raise InputError(
            f"checkpoint {path} is not a vaelik checkpoint; start the run again with --overwrite"
        )
    return state


def prepare_run_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Create the output folder, refusing to clobber an existing run.

    Raises
    ------
    InputError
        If the folder holds a run (unless ``overwrite``), cannot be created, or
        is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {path} exists and is not a folder; choose another --out")
    if (path / "config.json").exists() and not overwrite:
        status = read_status(path) or "no status"
        if status == COMPLETED:
            raise InputError(
                f"output folder {path} already holds a completed run; choose another --out "
                "or pass --overwrite"
            )
        raise InputError(
            f"output folder {path} already holds a run ({status}); continue it with "
            f"`vaelik train --resume {path}` or pass --overwrite"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise InputError(
            f"cannot write to output folder {path} ({reason}); choose a writable --out"
        ) from None
    if overwrite:
        for name in RUN_FILES:  # stale results of the old run must not outlive it
            (path / name).unlink(missing_ok=True)
    return path
