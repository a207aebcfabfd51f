r"""The built-in data sets, their options (``--data-opt KEY=VALUE``), and the generated ones.

* ``digits``: scikit-learn's bundled 8 × 8 digits (1,797 images, grey levels 0..16,
  divided by 16: 17 levels), split at random by the seed;
* ``digits-binary``: the same, thresholded (``threshold``, default 0.5);
* ``ppca``, ``laplace-noise``: :math:`x = W z + \mu + \varepsilon` with Normal or
  Laplace noise (:func:`linear_gaussian`), split at random;
* ``fashion-mnist``, ``mnist``, ``cifar10``: read from their files
  (:mod:`vaelik.inference.data.images`), with their official test split;
  ``threshold=t`` binarises them (a pixel is 1 where value/255 > t), the data a
  Bernoulli is scored on.

Subset options: ``n`` (every set but the synthetic ones, whose ``n`` is the
number of rows generated) keeps ``n`` rows: of all rows before the random
split, or of the official training rows; ``n_test`` keeps ``n_test`` of an
official test set; ``subset_seed`` (default 0) seeds which rows, independently
of ``--seed``, so that runs with different seeds share their data
(:func:`vaelik.inference.data.arrays.subset_rows`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vaelik.errors import InputError
from vaelik.inference.data.images import IMAGE_SETS
from vaelik.validate import check_int

__all__ = ["BUILTIN_DATA", "SUBSET_OPTIONS", "digits", "linear_gaussian", "resolve_options"]

#: options that take a subset of the rows, with their defaults (None: every row)
SUBSET_OPTIONS: dict[str, Any] = {"n": None, "subset_seed": 0}

#: Built-in data sets and the options each accepts (``--data-opt KEY=VALUE``), with their
#: defaults; the keys are the ``--data`` names (the choices listed by ``vaelik train --help``).
BUILTIN_DATA: dict[str, dict[str, Any]] = {
    "digits": {**SUBSET_OPTIONS},
    "digits-binary": {"threshold": 0.5, **SUBSET_OPTIONS},
    "ppca": {"n": 2000, "d": 20, "k": 4, "sigma": 0.1, "data_seed": 0},
    "laplace-noise": {"n": 2000, "d": 20, "k": 4, "b": 0.1, "data_seed": 0},
    **{name: {"n": None, "n_test": None, "subset_seed": 0, "threshold": None} for name in IMAGE_SETS},
}

#: the generated sets (their ``n`` is the number of rows generated, not a subset)
SYNTHETIC = ("ppca", "laplace-noise")


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value  # 2000.0 from TOML


def resolve_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The options of a data set with its defaults filled in and every value checked.

    Raises
    ------
    InputError
        An unknown key or a bad value (one line naming the option).
    """
    unknown = set(options) - set(defaults)
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise InputError(
            f"unknown data option(s) {', '.join(sorted(unknown))} for {name!r}; allowed: {allowed}"
        )
    params = {**defaults, **options}
    lows = {"n": 2, "n_test": 1, "subset_seed": 0, "d": 1, "k": 1, "data_seed": 0}
    for key, low in lows.items():
        if key in params and params[key] is not None:
            params[key] = check_int(f"data option {key} of {name!r}", _as_int(params[key]), low,
                                    OPTION_BELOW.get(key))
    return params


#: upper bounds (exclusive) of the integer data options: beyond them numpy cannot even allocate
#: the array (n = 10**30 failed deep inside numpy); the seeds take numpy's 32-bit range
OPTION_BELOW = {"n": 10**9, "n_test": 10**9, "d": 10**6, "k": 10**6, "subset_seed": 2**32,
                "data_seed": 2**32}


def subset_params(params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The subset options to record: all of them when one was given, else none."""
    keys = [k for k in ("n", "n_test", "subset_seed") if k in params]
    return {k: params[k] for k in keys} if any(k in options for k in keys) else {}


def digits_file() -> Path:
    """scikit-learn's copy of the 8×8 digits (1,797 rows of 64 pixel values 0..16 and a label)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it (~2 s)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the bundled digits come with scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def digits() -> np.ndarray:
    """scikit-learn's bundled digits as grey levels 0..16, ``(1797, 1, 8, 8)`` ``int64``.

    Read from scikit-learn's file, without importing scikit-learn (about 2 s a process,
    once in every sweep worker).
    """
    path = digits_file()
    if path.is_file():
        pixels = np.loadtxt(path, delimiter=",", dtype=np.int64)[:, :-1]
    else:  # a scikit-learn that keeps the file elsewhere
        from sklearn.datasets import load_digits

        pixels = load_digits().images.astype(np.int64)
    return pixels.reshape(-1, 1, 8, 8)


def threshold(params: dict[str, Any], name: str = "digits-binary") -> float:
    """The checked ``threshold`` option (``digits-binary``, and the image sets when given)."""
    t = params["threshold"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1:
        raise InputError(
            f"data option threshold of {name!r} must be a number in [0, 1), got {t!r}"
        )
    return float(t)


def linear_gaussian(name: str, params: dict[str, Any]) -> np.ndarray:
    r"""Rows :math:`x = W z + \mu + \varepsilon` of a synthetic set, float32 ``(n, d)``.

    :math:`z \sim N(0, I_k)`, :math:`W_{ij} \sim N(0, 1/k)`, :math:`\mu_j \sim N(0, 1)`,
    :math:`\varepsilon_j \sim N(0, \sigma^2)` (``ppca``) or Laplace(0, b)
    (``laplace-noise``), all drawn from ``data_seed``.
    """
    if not 1 <= params["k"] <= params["d"]:
        raise InputError(f"data option k must be between 1 and d={params['d']}, got {params['k']}")
    noise, level_key = ("normal", "sigma") if name == "ppca" else ("laplace", "b")
    level = params[level_key]
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (
        math.isfinite(level) and level > 0
    ):
        raise InputError(
            f"data option {level_key} of {name!r} must be a positive number, got {level!r}"
        )
    n, d, k = params["n"], params["d"], params["k"]
    rng = np.random.default_rng(params["data_seed"])
    w = rng.normal(size=(d, k)) / math.sqrt(k)
    mu = rng.normal(size=d)
    z = rng.normal(size=(n, k))
    if noise == "normal":
        eps = rng.normal(scale=level, size=(n, d))
    else:
        eps = rng.laplace(scale=level, size=(n, d))
    return (z @ w.T + mu + eps).astype(np.float32)
