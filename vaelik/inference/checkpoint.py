"""``checkpoint.pt``: saving and loading a run's tensors (the one torch file of a run directory).

Saved atomically through :mod:`vaelik.rundir`; loaded with
``torch.load(weights_only=True)``, so a checkpoint never runs pickled code.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from vaelik.errors import InputError
from vaelik.rundir import atomic_write_bytes

__all__ = ["CHECKPOINT_KEYS", "load_checkpoint", "save_checkpoint"]

#: keys every vaelik checkpoint holds
CHECKPOINT_KEYS = frozenset({"config", "epoch", "params", "optimizer", "rng", "metrics"})


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Save tensors/primitives only, atomically (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
        raise InputError(
            f"checkpoint {path} is not a vaelik checkpoint; start the run again with --overwrite"
        )
    return state
