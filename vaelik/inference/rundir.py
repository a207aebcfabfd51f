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
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

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
]

COMPLETED = "completed"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}; the run never finished an epoch")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"checkpoint {path} is corrupt or truncated ({first})") from None
    if not isinstance(state, dict) or "params" not in state:
        raise InputError(f"checkpoint {path} is not a vaelik checkpoint")
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
        raise InputError(f"output path {path} exists and is not a folder")
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
        raise InputError(f"cannot write to output folder {path}: {reason}") from None
    if overwrite:
        for name in ("status", "eval.json", "checkpoint.pt", "metrics.csv"):
            (path / name).unlink(missing_ok=True)
    return path
