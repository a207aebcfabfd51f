"""``load_data``: one entry for every data set, and the train/validation/test split.

The split is deterministic from the seed:

* **random** (the bundled digits, the synthetic sets, user files): one
  permutation of the rows (``torch.randperm`` seeded with ``seed``); its first
  ``round(n · test_fraction)`` rows are the test split, the next
  ``round(n · val_fraction)`` the validation split (none when ``val_fraction``
  is 0) and the rest the training split. The test split does not depend on
  ``val_fraction``.
* **official** (Fashion-MNIST, MNIST, CIFAR-10): the set's own test images, in
  their file order, are the test split (``test_fraction`` is not used); the
  validation split is the first ``round(n_train · val_fraction)`` rows of a
  seeded permutation of the official training rows, the rest is the training split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vaelik.errors import InputError
from vaelik.inference.data import builtin
from vaelik.inference.data.arrays import (
    check_array,
    image_layout,
    scale_array,
    scale_levels,
    subset_rows,
)
from vaelik.inference.data.builtin import BUILTIN_DATA, SUBSET_OPTIONS, SYNTHETIC
from vaelik.inference.data.dataset import Dataset
from vaelik.inference.data.files import read_data_file
from vaelik.inference.data.images import IMAGE_SETS, read_image_set

__all__ = ["load_data"]


@dataclass
class _Rows:
    """Scaled rows before the split: ``x`` (n, ...) float32, and ``test`` for an official split."""

    x: np.ndarray
    test: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    levels: int | None = None
    binary: bool | None = None
    scaling: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


def _take(x: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return x if rows is None else x[rows]


def _is_binary(raw: np.ndarray, levels: int | None) -> bool | None:
    """Whether integer grey levels are all 0 or L - 1 (None: decide from the float values)."""
    if levels is None:
        return None
    return bool(((raw == 0) | (raw == levels - 1)).all())


def _image_set(name: str, options: dict[str, Any], data_dir: str | None) -> _Rows:
    params = builtin.resolve_options(name, options, BUILTIN_DATA[name])
    train, test, folder = read_image_set(name, data_dir)
    seed = params["subset_seed"]
    train = _take(train, subset_rows(train.shape[0], params["n"], seed, 0,
                                     rows=f"official training rows of {name}"))
    test = _take(test, subset_rows(test.shape[0], params["n_test"], seed, 1, label="n_test",
                                   rows=f"official test rows of {name}"))
    recorded = builtin.subset_params(params, options)
    if params["threshold"] is not None:
        t = builtin.threshold(params, name)
        return _Rows((scale_levels(train, 256) > t).astype(np.float32),
                     (scale_levels(test, 256) > t).astype(np.float32), tuple(train.shape[1:]), 2,
                     True, f"uint8/255 > {t} -> 1, else 0", {"threshold": params["threshold"], **recorded},
                     str(folder))
    binary = _is_binary(train, 256) and _is_binary(test, 256)
    return _Rows(scale_levels(train, 256), scale_levels(test, 256), tuple(train.shape[1:]), 256,
                 binary, "uint8 divided by 255", recorded, str(folder))


def _builtin(name: str, options: dict[str, Any]) -> _Rows:
    params = builtin.resolve_options(name, options, BUILTIN_DATA[name])
    if name in SYNTHETIC:
        return _Rows(builtin.linear_gaussian(name, params), scaling="none (synthetic)",
                     params=params)
    raw = builtin.digits()
    raw = _take(raw, subset_rows(raw.shape[0], params["n"], params["subset_seed"],
                                 rows=f"rows of {name}"))
    recorded = builtin.subset_params(params, options)
    if name == "digits":
        return _Rows(scale_levels(raw, 17), None, (1, 8, 8), 17, _is_binary(raw, 17),
                     "pixel values 0..16 divided by 16", recorded)
    t = builtin.threshold(params)
    x = (scale_levels(raw, 17) > t).astype(np.float32)
    return _Rows(x, None, (1, 8, 8), 2, True, f"pixel/16 > {t} -> 1, else 0",
                 {"threshold": params["threshold"], **recorded})


def _file(path: str, key: str | None, options: dict[str, Any]) -> _Rows:
    params = builtin.resolve_options(path, options, SUBSET_OPTIONS)
    raw = read_data_file(path, key, list(BUILTIN_DATA))
    check_array(raw, path)
    raw = _take(raw, subset_rows(raw.shape[0], params["n"], params["subset_seed"],
                                 rows=f"rows of {path}"))
    raw, image_shape, note = image_layout(raw)
    x, scaling, levels = scale_array(raw, path)
    return _Rows(x, None, image_shape, levels, _is_binary(raw, levels), scaling + note,
                 builtin.subset_params(params, options))


def _n_val(n: int, val_fraction: float) -> int:
    return max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0


def load_data(
    spec: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    key: str | None = None,
    options: dict[str, Any] | None = None,
    val_fraction: float = 0.0,
    data_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Load a built-in data set or a user file and split it into train/validation/test.

    Parameters
    ----------
    spec : str
        A built-in name (``"digits"``, ``"digits-binary"``, ``"ppca"``,
        ``"laplace-noise"``, ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``), or
        a path to a ``.npy``/``.npz``/IDX file.
    seed : int
        Seed of the permutation that splits the rows.
    test_fraction : float
        Fraction of rows held out as the test split (at least one row); not
        used by sets with an official test split.
    key : str, optional
        Array name inside a ``.npz`` with several arrays.
    options : dict, optional
        Data options, e.g. ``{"sigma": 0.05, "n": 500}`` for ``ppca``, or
        ``{"n": 5000, "n_test": 1000}`` for a subset of ``fashion-mnist``
        (:mod:`vaelik.inference.data.builtin`); a file takes ``n`` and ``subset_seed``.
    val_fraction : float
        Fraction of the rows (of the official training rows, for sets with an
        official split) taken from the training split as the validation split
        (at least one row when positive; 0: none). :func:`vaelik.inference.fit`
        passes ``TrainConfig.val_fraction`` (default 0.1).
    data_dir : str or os.PathLike, optional
        Folder holding the files of ``fashion-mnist``, ``mnist`` or ``cifar10``
        (default: ``$VAELIK_DATA``, then the system data folders;
        :mod:`vaelik.inference.data.images`). Not used by other data.

    Returns
    -------
    Dataset
        Float32 rows ``(n, d)``; images flattened channel-major with
        ``image_shape`` ``(C, H, W)``; grey levels scaled to ``k / (levels - 1)``.

    Raises
    ------
    InputError
        Unknown name, files not found, unreadable file, NaN/inf, negative
        integers, wrong dimensionality, empty data, bad options, or test and
        validation fractions that leave no training row.
    """
    options = dict(options or {})
    if spec in IMAGE_SETS:
        rows = _image_set(spec, options, None if data_dir is None else str(data_dir))
    elif spec in BUILTIN_DATA:
        rows = _builtin(spec, options)
    else:
        if not os.path.exists(spec) and not any(sep in spec for sep in ("/", ".", os.sep)):
            raise InputError(
                f"unknown data {spec!r}: not a built-in set ({', '.join(BUILTIN_DATA)}) "
                "and not a file path"
            )
        rows = _file(spec, key, options)
    x = rows.x.reshape(rows.x.shape[0], -1)
    check_array(x, spec, finite=rows.levels is None)
    binary = rows.binary if rows.binary is not None else bool(np.isin(x, (0.0, 1.0)).all())
    common = {"name": spec, "image_shape": rows.image_shape, "binary": binary,
              "scaling": rows.scaling, "params": rows.params, "levels": rows.levels,
              "source": rows.source}
    gen = torch.Generator().manual_seed(int(seed))
    n = x.shape[0]
    if rows.test is not None:
        n_val = _n_val(n, val_fraction)
        if n_val >= n:
            raise InputError(
                f"val-fraction {val_fraction} leaves no training row of the {n} official "
                "training rows; lower it (--val-fraction 0 takes no validation split)")
        perm = torch.randperm(n, generator=gen)
        data = torch.from_numpy(np.ascontiguousarray(x))
        test = torch.from_numpy(np.ascontiguousarray(rows.test.reshape(rows.test.shape[0], -1)))
        return Dataset(train=data[perm[n_val:]].contiguous(), test=test,
                       val=data[perm[:n_val]].contiguous(), split="official", **common)
    n_test = min(n - 1, max(1, int(round(n * test_fraction))))
    n_val = _n_val(n, val_fraction)
    if n_test + n_val >= n:
        raise InputError(
            f"test-fraction {test_fraction} and val-fraction {val_fraction} leave no training "
            f"row of the {n}; lower them (--val-fraction 0 takes no validation split)"
        )
    perm = torch.randperm(n, generator=gen)
    data = torch.from_numpy(np.ascontiguousarray(x))
    return Dataset(
        train=data[perm[n_test + n_val:]].contiguous(),
        test=data[perm[:n_test]].contiguous(),
        val=data[perm[n_test:n_test + n_val]].contiguous(),
        split="random",
        **common,
    )
