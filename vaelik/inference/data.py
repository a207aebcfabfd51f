"""Data sets: the bundled digits, synthetic sets with a known truth, and user files.

Nothing is downloaded. Every loader returns a :class:`Dataset` of float32
tensors of shape ``(n, d)`` (images are flattened), split deterministically
from the seed into test, validation and train rows: one permutation of the rows,
its first ``round(n · test_fraction)`` rows are the test split, the next
``round(n · val_fraction)`` the validation split (none when ``val_fraction`` is 0)
and the rest the training split. The test split does not depend on
``val_fraction``: carving a validation split only takes rows from the training split.

Scaling of user files: ``uint8`` arrays (and IDX ``ubyte`` files) are divided
by 255; other integer arrays by their maximum (so values lie in [0, 1]);
floating-point arrays are used as they are.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelik.errors import InputError
from vaelik.validate import check_int

__all__ = ["Dataset", "load_data", "BUILTIN_DATA", "read_idx"]

#: Built-in data sets and the options each accepts (``--data-opt KEY=VALUE``); the keys are
#: the ``--data`` names (the choices listed by ``vaelik train --help``).
BUILTIN_DATA: dict[str, dict[str, Any]] = {
    "digits": {},
    "digits-binary": {"threshold": 0.5},
    "ppca": {"n": 2000, "d": 20, "k": 4, "sigma": 0.1, "data_seed": 0},
    "laplace-noise": {"n": 2000, "d": 20, "k": 4, "b": 0.1, "data_seed": 0},
}


@dataclass
class Dataset:
    """A data set split into train, validation and test.

    Attributes
    ----------
    name : str
        Built-in name or the file path.
    train, test : torch.Tensor
        Float32 tensors of shape ``(n_train, d)`` and ``(n_test, d)``.
    val : torch.Tensor
        The validation split, float32 ``(n_val, d)``; ``n_val = 0`` when there is none.
    image_shape : tuple of int or None
        Shape to reshape one row into for display.
    binary : bool
        Whether every value is 0 or 1.
    scaling : str
        How raw values were mapped (documented in the run's config).
    params : dict
        Generating parameters of synthetic sets (W, μ are not stored; the seed is).
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    image_shape: tuple[int, ...] | None = None
    binary: bool = False
    scaling: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    val: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.val is None:
            self.val = self.train[:0]

    @property
    def dim(self) -> int:
        """Number of values per row, ``d``."""
        return int(self.train.shape[1])

    def info(self) -> dict[str, Any]:
        """JSON-ready description written to ``config.json``."""
        return {
            "name": self.name,
            "dim": self.dim,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "n_test": int(self.test.shape[0]),
            "binary": self.binary,
            "scaling": self.scaling,
            "params": self.params,
        }


# ----------------------------------------------------------------------------------------
# Built-in data


def _digits_file() -> Path:
    """scikit-learn's copy of the 8×8 digits (1,797 rows of 64 pixel values 0..16 and a label)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it (~2 s)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the bundled digits come with scikit-learn: pip install scikit-learn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def _digits() -> tuple[np.ndarray, tuple[int, int]]:
    path = _digits_file()
    if path.is_file():
        pixels = np.loadtxt(path, delimiter=",", dtype=np.float32)[:, :-1]
    else:  # a scikit-learn that keeps the file elsewhere
        from sklearn.datasets import load_digits

        pixels = load_digits().data.astype(np.float32)
    return pixels / 16.0, (8, 8)


def _linear_gaussian(n: int, d: int, k: int, noise: str, level: float, data_seed: int):
    r"""X = W z + μ + ε, z ~ N(0, I_k), ε ~ N(0, σ²) or Laplace(0, b) per dimension."""
    rng = np.random.default_rng(data_seed)
    w = rng.normal(size=(d, k)) / math.sqrt(k)
    mu = rng.normal(size=d)
    z = rng.normal(size=(n, k))
    if noise == "normal":
        eps = rng.normal(scale=level, size=(n, d))
    else:
        eps = rng.laplace(scale=level, size=(n, d))
    return (z @ w.T + mu + eps).astype(np.float32)


def _builtin(name: str, options: dict[str, Any]) -> tuple[np.ndarray, dict]:
    defaults = BUILTIN_DATA[name]
    unknown = set(options) - set(defaults)
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise InputError(
            f"unknown data option(s) {', '.join(sorted(unknown))} for {name!r}; allowed: {allowed}"
        )
    params = {**defaults, **options}
    if name == "digits":
        x, shape = _digits()
        return x, {"image_shape": shape, "scaling": "pixel values 0..16 divided by 16"}
    if name == "digits-binary":
        x, shape = _digits()
        t = params["threshold"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1:
            raise InputError(
                f"data option threshold of 'digits-binary' must be a number in [0, 1), got {t!r}"
            )
        t = float(t)
        return (x > t).astype(np.float32), {
            "image_shape": shape,
            "scaling": f"pixel/16 > {t} -> 1, else 0",
            "params": params,
        }
    for key, low in (("n", 2), ("d", 1), ("k", 1), ("data_seed", 0)):
        value = params[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2000.0 from a JSON/TOML file
        params[key] = check_int(f"data option {key} of {name!r}", value, low)
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
    x = _linear_gaussian(
        params["n"], params["d"], params["k"], noise, level, params["data_seed"]
    )
    return x, {"scaling": "none (synthetic)", "params": params}


# ----------------------------------------------------------------------------------------
# Files

_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST-format IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(
            f"cannot read IDX file {path} ({reason}); check that it is a complete, "
            "uncompressed or gzipped IDX file"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise InputError(
            f"{path} is not an IDX file (bad magic number); give a .npy, .npz or MNIST-format "
            "IDX file"
        )
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(
            f"truncated IDX file {path}: the header is incomplete; copy or download it again"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header < expected:
        raise InputError(
            f"truncated IDX file {path}: header promises shape {shape} "
            f"({expected} bytes of data) but only {len(raw) - header} bytes follow; copy or "
            "download it again"
        )
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)


def _read_file(path: str, key: str | None) -> np.ndarray:
    if not os.path.exists(path):
        raise InputError(f"data file {path} does not exist (built-in data: {', '.join(BUILTIN_DATA)})")
    if os.path.isdir(path):
        raise InputError(f"data path {path} is a folder; give a .npy, .npz or IDX file")
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if key is None:
                    if len(keys) != 1:
                        raise InputError(
                            f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                            "choose one with --data-key NAME"
                        )
                    key = keys[0]
                if key not in keys:
                    raise InputError(
                        f"{path} has no array {key!r}; it has: {', '.join(keys) or 'none'}; "
                        "choose one with --data-key NAME"
                    )
                return archive[key]
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as e:
        text = str(e)
        if "pickle" in text:  # numpy's fallback for a non-.npy file, or an object array
            kind = ".npz" if lower.endswith(".npz") else ".npy"
            raise InputError(
                f"cannot read data file {path}: not a {kind} file of numbers (it is damaged, "
                f"of another format, or holds Python objects, which vaelik never unpickles); "
                "save a numeric array with numpy.save / numpy.savez"
            ) from None
        first = text.splitlines()[0] if text else type(e).__name__
        raise InputError(
            f"cannot read data file {path}: {first}; check that it is a complete .npy/.npz file"
        ) from None
    if "idx" in lower or lower.endswith("-ubyte") or lower.endswith(".gz"):
        return read_idx(path)
    hint = ""
    if lower.endswith((".csv", ".txt", ".tsv")):
        hint = ("; convert a text table once with "
                "numpy.save('data.npy', numpy.loadtxt('data.csv', delimiter=','))")
    raise InputError(
        f"unsupported data file {path}: use .npy, .npz or an IDX file (*-idx*-ubyte){hint}")


def _scale_file_array(x: np.ndarray) -> tuple[np.ndarray, str]:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0, "uint8 divided by 255"
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        top = float(x.max()) if x.size else 1.0
        top = top if top > 0 else 1.0
        return x.astype(np.float32) / top, f"integers divided by their maximum ({top:g})"
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32), "none (floating point)"
    raise InputError(f"data must be numeric, got dtype {x.dtype}")


# ----------------------------------------------------------------------------------------


def _check_array(x: np.ndarray, name: str) -> None:
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


def load_data(
    spec: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    key: str | None = None,
    options: dict[str, Any] | None = None,
    val_fraction: float = 0.0,
) -> Dataset:
    """Load a built-in data set or a user file and split it into train/validation/test.

    Parameters
    ----------
    spec : str
        ``"digits"``, ``"digits-binary"``, ``"ppca"``, ``"laplace-noise"``, or a
        path to a ``.npy``/``.npz``/IDX file.
    seed : int
        Seed of the permutation that splits the rows.
    test_fraction : float
        Fraction of rows held out as the test split (at least one row).
    key : str, optional
        Array name inside a ``.npz`` with several arrays.
    options : dict, optional
        Options of a built-in set, e.g. ``{"sigma": 0.05, "n": 500}`` for ``ppca``.
    val_fraction : float
        Fraction of all rows taken from the training split as the validation
        split (at least one row when positive; 0: none). :func:`vaelik.inference.fit`
        passes ``TrainConfig.val_fraction`` (default 0.1).

    Raises
    ------
    InputError
        Unknown name, unreadable file, NaN/inf, wrong dimensionality, empty data,
        or test and validation fractions that leave no training row.
    """
    options = dict(options or {})
    extra: dict[str, Any] = {}
    if spec in BUILTIN_DATA:
        x, extra = _builtin(spec, options)
        name = spec
    else:
        if options:
            raise InputError("data options (--data-opt) apply only to built-in data sets")
        if not os.path.exists(spec) and not any(sep in spec for sep in ("/", ".", os.sep)):
            raise InputError(
                f"unknown data {spec!r}: not a built-in set ({', '.join(BUILTIN_DATA)}) "
                "and not a file path"
            )
        raw = _read_file(spec, key)
        _check_array(raw, spec)
        shape = tuple(raw.shape[1:])
        x, scaling = _scale_file_array(raw)
        extra = {"scaling": scaling, "image_shape": shape if len(shape) == 2 else None}
        name = spec
    x = x.reshape(x.shape[0], -1)
    _check_array(x, name)
    n = x.shape[0]
    n_test = min(n - 1, max(1, int(round(n * test_fraction))))
    n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0
    if n_test + n_val >= n:
        raise InputError(
            f"test-fraction {test_fraction} and val-fraction {val_fraction} leave no training "
            f"row of the {n}; lower them (--val-fraction 0 takes no validation split)"
        )
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    data = torch.from_numpy(np.ascontiguousarray(x))
    return Dataset(
        name=name,
        train=data[perm[n_test + n_val:]].contiguous(),
        test=data[perm[:n_test]].contiguous(),
        val=data[perm[n_test:n_test + n_val]].contiguous(),
        image_shape=tuple(extra.get("image_shape") or ()) or None,
        binary=bool(np.isin(x, (0.0, 1.0)).all()),
        scaling=extra.get("scaling", "none"),
        params=extra.get("params", {}),
    )
