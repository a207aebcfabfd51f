r"""Checks and scaling of raw arrays, their image layout, and the subset rule.

Scaling to [0, 1]:

* ``uint8`` (and IDX ``ubyte``): grey levels :math:`k \in \{0, \dots, 255\}`
  become :math:`k / 255`; ``levels = 256``.
* other integers, all :math:`\ge 0` with maximum :math:`m > 0`: :math:`k / m`,
  ``levels = m + 1`` (so the values are again :math:`k / (L - 1)`); all zero:
  ``levels = 2``. Negative integers are refused: a grey level is never negative
  (shift them, or save them as floating point to use them as they are).
* ``bool``: 0 and 1, ``levels = 2``.
* floating point: used as they are, ``levels = None``; values beyond float32's
  range (:math:`\pm 3.4 \cdot 10^{38}`) are refused, since vaelik computes in float32.

Subsets (``--data-opt n=N``): the rows kept are the first N of
``numpy.random.default_rng([subset_seed, stream]).permutation(n_rows)``, in the
file's order (``stream`` 0 for the training rows, 1 for an official test set);
so N equal to the number of rows keeps every row in its order.
"""

from __future__ import annotations

import numpy as np

from vaelik.errors import InputError

__all__ = ["check_array", "image_layout", "scale_array", "scale_levels", "subset_rows"]

_F32_MAX = float(np.finfo(np.float32).max)


def check_array(x: np.ndarray, name: str, *, finite: bool = True) -> None:
    """Raise :class:`InputError` unless ``x`` is a non-empty real array of >= 2 rows of finite values.

    ``finite=False`` skips the scan for NaN and inf (values scaled from integers are finite).
    """
    if x.ndim < 2:
        raise InputError(
            f"data {name} must have at least 2 dimensions (examples x features), got shape "
            f"{tuple(x.shape)}; reshape it to (n, 1) if it is one feature"
        )
    if x.shape[0] == 0 or x[0].size == 0:
        raise InputError(
            f"data {name} is empty (shape {tuple(x.shape)}); give at least 2 rows of at least "
            "1 feature"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise InputError(
            f"data {name} must hold real numbers, got dtype {x.dtype}; convert it to float32"
        )
    if finite and np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(x.shape[0], -1))[0])
            kinds = [k for k, m in (("NaN", np.isnan(x)), ("+inf", np.isposinf(x)),
                                    ("-inf", np.isneginf(x))) if m.any()]
            raise InputError(
                f"data {name} contains {int(bad.sum())} non-finite value(s) ({', '.join(kinds)}), "
                f"first in row {int(rows[0])}; remove or impute them"
            )
    if x.shape[0] < 2:
        raise InputError(
            f"data {name} has {x.shape[0]} row; at least 2 are needed for a train/test split"
        )


def scale_levels(x: np.ndarray, levels: int) -> np.ndarray:
    r"""Grey levels :math:`k` to float32 :math:`k / (L - 1)`, with ``L = levels``.

    >>> scale_levels(np.array([0, 51, 255], np.uint8), 256).tolist()
    [0.0, 0.20000000298023224, 1.0]
    """
    return x.astype(np.float32) / np.float32(levels - 1)


def scale_array(x: np.ndarray, name: str) -> tuple[np.ndarray, str, int | None]:
    """Map a checked raw array to float32 values in [0, 1] (integers) or as they are (floats).

    Returns
    -------
    values : numpy.ndarray
        Float32, the shape of ``x``.
    scaling : str
        What was done, in words (recorded in ``config.json``).
    levels : int or None
        Number of grey levels of integer data; None for floating point.

    Raises
    ------
    InputError
        Negative integers, floating-point values beyond float32's range, or a
        non-numeric dtype.
    """
    if x.dtype == np.uint8:
        return scale_levels(x, 256), "uint8 divided by 255", 256
    if x.dtype == np.bool_:
        return x.astype(np.float32), "booleans as 0 and 1", 2
    if np.issubdtype(x.dtype, np.integer):
        low = int(x.min())
        if low < 0:
            row = int(np.nonzero((x < 0).reshape(x.shape[0], -1).any(1))[0][0])
            raise InputError(
                f"data {name} holds negative integers (smallest {low}, first in row {row}); "
                "integer data are read as grey levels 0..max and divided by their maximum, so "
                "shift them to start at 0, or save them as float32 to use them as they are"
            )
        top = int(x.max())
        levels = top + 1 if top > 0 else 2
        return scale_levels(x, levels), f"integers divided by their maximum ({levels - 1})", levels
    if np.issubdtype(x.dtype, np.floating):
        # only wider types can exceed float32 (comparing float16 to _F32_MAX overflows the cast)
        big = np.abs(x) > _F32_MAX if x.dtype.itemsize > 4 else np.zeros(x.shape, bool)
        if big.any():
            row = int(np.nonzero(big.reshape(x.shape[0], -1).any(1))[0][0])
            raise InputError(
                f"data {name} has {int(big.sum())} value(s) that overflow float32 (largest "
                f"magnitude {float(np.abs(x).max()):.3g}; float32 holds up to {_F32_MAX:.3g}), "
                f"first in row {row}; vaelik computes in float32: rescale them"
            )
        return x.astype(np.float32), "none (floating point)", None
    raise InputError(f"data {name} must hold real numbers, got dtype {x.dtype}; convert it "
                     "to float32")


def image_layout(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int] | None, str]:
    """The rows of ``x`` as images ``(n, C, H, W)``, when they are images.

    ``(n, H, W)`` is one channel; ``(n, C, H, W)`` with C = 1 or 3 is taken as
    it is, else ``(n, H, W, C)`` with C = 1 or 3 is moved to channel-major;
    anything else (``(n, d)``, other 4-D arrays) is not an image.

    Returns
    -------
    x : numpy.ndarray
        ``x``, its axes moved when it was channel-last.
    image_shape : tuple of int or None
        ``(C, H, W)``, or None.
    note : str
        How the layout was read ("" when nothing was moved).
    """
    if x.ndim == 3:
        return x, (1, *x.shape[1:]), ""
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x, tuple(x.shape[1:]), ""
    if x.ndim == 4 and x.shape[3] in (1, 3):
        moved = np.ascontiguousarray(np.moveaxis(x, 3, 1))
        return moved, tuple(moved.shape[1:]), "; channel-last (n, H, W, C) read as (n, C, H, W)"
    return x, None, ""


def subset_rows(n_rows: int, n: int | None, subset_seed: int, stream: int = 0, *,
                label: str = "n", rows: str = "rows") -> np.ndarray | None:
    """Indices of the rows a subset keeps (sorted), or None to keep every row.

    The first ``n`` of ``numpy.random.default_rng([subset_seed, stream]).permutation(n_rows)``;
    ``label`` and ``rows`` name the option and the rows in the message.

    >>> subset_rows(10, 3, 0).tolist() == sorted(np.random.default_rng([0, 0]).permutation(10)[:3])
    True
    """
    if n is None:
        return None
    if n > n_rows:
        raise InputError(f"data option {label}={n} is more than the {n_rows} {rows}; give "
                         f"{label} <= {n_rows} (or leave it out to use them all)")
    order = np.random.default_rng([subset_seed, stream]).permutation(n_rows)
    return np.sort(order[:n])
