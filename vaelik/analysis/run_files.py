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
    resolve,
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
        For any content that is not such an archive: missing, truncated or
        damaged (bad CRC), objects, an array missing, not numbers, or shapes
        that do not fit together.
    """
    path = Path(run_path) / IMAGES_FILE
    hint = "re-run `vaelik evaluate` on this run"
    try:
        with open(resolve(path), "rb") as fh:  # closed whatever np.load makes of the bytes
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy gives an array
                raise RunFileError(f"{path}: not an .npz archive; {hint}")
            with loaded as npz:
                arrays = {key: np.asarray(npz[key]) for key in npz.files}
    except RunFileError:
        raise
    except FileNotFoundError:
        raise RunFileError(f"{path}: missing; {hint}") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad CRC, not an npz: a bad file
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise RunFileError(f"{path}: unreadable ({text}); {hint}") from None
    missing = [k for k in IMAGE_ARRAYS if k not in arrays]
    if missing:
        raise RunFileError(f"{path}: lacks array(s) {', '.join(missing)}; {hint}")
    for key in IMAGE_ARRAYS:
        if arrays[key].dtype.kind not in "biuf":
            raise RunFileError(f"{path}: {key} holds {arrays[key].dtype} values, expected numbers; {hint}")
    for key in ("originals", "reconstructions", "prior_samples"):
        if arrays[key].ndim != 2:
            raise RunFileError(f"{path}: {key} has shape {arrays[key].shape}, expected (n, d); {hint}")
    originals = arrays["originals"]
    if arrays["reconstructions"].shape != originals.shape or \
            arrays["prior_samples"].shape[1] != originals.shape[1]:
        raise RunFileError(f"{path}: originals {originals.shape}, reconstructions "
                           f"{arrays['reconstructions'].shape} and prior_samples "
                           f"{arrays['prior_samples'].shape} do not fit together; {hint}")
    shape = arrays["image_shape"].ravel()
    if shape.size not in (0, 2, 3) or not np.all(np.isfinite(shape)) or np.any(shape < 1) \
            or np.any(shape != np.round(shape)) or np.any(shape > 1e6):
        raise RunFileError(f"{path}: image_shape is {shape.tolist()[:4]}, expected (C, H, W) or "
                           f"(H, W) positive integers, or nothing; {hint}")
    shape = shape.astype(int)
    arrays["image_shape"] = shape
    if shape.size in (2, 3):
        d = int(np.prod(shape))
        for key in ("originals", "reconstructions", "prior_samples"):
            if arrays[key].shape[1] != d:
                raise RunFileError(
                    f"{path}: {key} has shape {arrays[key].shape}, expected (n, {d}) for images "
                    f"of shape {tuple(shape)}"
                )
    return arrays
