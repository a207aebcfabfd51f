"""The files of one run that the report reads beside the runs table.

``pointwise.csv`` (one row per test example), ``per_dim.csv`` (one row per data
dimension) and ``images.npz``, each read through :mod:`vaelik.rundir`'s names
and checks; a bad file is a :class:`~vaelik.rundir.RunFileError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaelik.rundir import (
    IMAGE_ARRAYS,
    IMAGES_FILE,
    PER_DIM_COLUMNS,
    PER_DIM_FILE,
    POINTWISE_FILE,
    POINTWISE_REQUIRED,
    RunFileError,
    read_csv,
)

__all__ = ["load_images", "load_per_dim", "load_pointwise"]


def load_pointwise(run_path: str | Path) -> pd.DataFrame:
    """Read ``pointwise.csv``: one row per test example.

    Parameters
    ----------
    run_path : str or Path
        The run directory.

    Returns
    -------
    pandas.DataFrame
        Columns ``index, elbo, recon, kl, log_px, loss_sum`` and, when written,
        ``sse, sae, bce_sum``; all numeric.

    Raises
    ------
    RunFileError
        If the file is missing, unreadable or lacks a required column.
    """
    return read_csv(Path(run_path) / POINTWISE_FILE, POINTWISE_REQUIRED)


def load_per_dim(run_path: str | Path) -> pd.DataFrame:
    """Read ``per_dim.csv``: one row per data dimension (``dim, scale, mse, mae``).

    Raises
    ------
    RunFileError
        If the file is missing, unreadable or lacks a required column.
    """
    return read_csv(Path(run_path) / PER_DIM_FILE, PER_DIM_COLUMNS)


def load_images(run_path: str | Path) -> dict[str, np.ndarray]:
    """Read ``images.npz`` (``np.load(..., allow_pickle=False)``).

    Returns
    -------
    dict of str to numpy.ndarray
        ``originals`` (n, d), ``reconstructions`` (n, d), ``prior_samples`` (m, d)
        and ``image_shape`` (3,) ``(C, H, W)`` -- (2,) ``(H, W)`` in older runs, (0,)
        when the data are not images.

    Raises
    ------
    RunFileError
        If the file is missing, unreadable, holds objects, or lacks an array.
    """
    path = Path(run_path) / IMAGES_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in npz.files}
    except FileNotFoundError as exc:
        raise RunFileError(f"{path}: missing; re-run `vaelik evaluate` on this run") from exc
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{path}: unreadable ({exc})") from exc
    missing = [k for k in IMAGE_ARRAYS if k not in arrays]
    if missing:
        raise RunFileError(f"{path}: lacks array(s) {', '.join(missing)}")
    shape = arrays["image_shape"].astype(int).ravel()
    arrays["image_shape"] = shape
    if shape.size in (2, 3):
        d = int(np.prod(shape))
        for key in ("originals", "reconstructions", "prior_samples"):
            if arrays[key].ndim != 2 or arrays[key].shape[1] != d:
                raise RunFileError(
                    f"{path}: {key} has shape {arrays[key].shape}, expected (n, {d}) for images "
                    f"of shape {tuple(shape)}"
                )
    return arrays
