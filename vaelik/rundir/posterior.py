r"""``posterior.nc``: the ArviZ data of one run, built, saved and loaded on both ArviZ generations.

ArviZ 0.23 (Python 3.11) holds data in ``arviz.InferenceData``; ArviZ 1.x
(Python >= 3.12) in ``xarray.DataTree``. Both read and write the same netCDF
groups; this module builds them from numpy arrays and hides which object comes
back. ArviZ and xarray are imported on the first call (torch is never imported).

Layout (``docs/run-directory.md``):

* ``log_likelihood/x`` -- dims ``(chain=1, draw=S, obs=n)``: S independent IWAE
  estimates of :math:`\log p(x_i)`, so that :math:`\operatorname{logmeanexp}_s`
  of a column is the K-sample estimate;
* ``observed_data/x`` -- dims ``(obs=n, dim=d)``: the test data;
* ``posterior/scale`` -- dims ``(chain=1, draw=S)``: draws of the observation
  scale from its variational posterior q(scale), **only** for a real posterior
  (``scale_mode: bayesian``); draw s of ``log_likelihood`` used scale draw s;
* ``constant_data/scale`` -- dims ``()``: a *point estimate* of the scale
  (``fixed``, ``learned``, ``optimal``; the RMS of the scales for ``per_dim`` /
  ``predicted``), with attribute ``scale_mode``. Never stored as repeated draws.

Neither scale variable is written for a family without a scale.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vaelik.rundir.io import RunFileError, atomic_path
from vaelik.rundir.staging import resolve

__all__ = [
    "arviz_generation",
    "arviz_version",
    "build_run_data",
    "group",
    "groups",
    "load_run_data",
    "save_run_data",
    "scale_draws",
    "scale_point",
]


def _az() -> Any:
    """Import ArviZ, silencing only the refactor notice that 0.23 prints on import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz.*")
        warnings.filterwarnings("ignore", message=r".*ArviZ is undergoing a major refactor.*")
        import arviz as az
    return az


def arviz_version() -> str:
    """The installed ArviZ version string."""
    return str(_az().__version__)


def arviz_generation() -> int:
    """0 for ArviZ 0.x (InferenceData), 1 for ArviZ 1.x (xarray DataTree)."""
    return 0 if arviz_version().split(".")[0] == "0" else 1


def _as_array(name: str, value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values; pass finite numbers")
    return array


def build_run_data(
    log_lik: np.ndarray,
    observed: np.ndarray,
    scale_draws: np.ndarray | None = None,
    *,
    scale_point: float | None = None,
    scale_mode: str | None = None,
) -> Any:
    r"""Build the ArviZ data of one run from numpy arrays.

    Parameters
    ----------
    log_lik : numpy.ndarray, shape (draws, n)
        ``log_lik[s, i]`` is the s-th independent estimate of :math:`\log p(x_i)`;
        :math:`\operatorname{logmeanexp}_s` of a column is the K-sample estimate.
    observed : numpy.ndarray, shape (n, d)
        The test data.
    scale_draws : numpy.ndarray of shape (draws,), or None
        Draws of the observation scale (σ or b) from its variational posterior,
        one per log-likelihood draw: only for a Bayesian scale.
    scale_point : float or None
        A point estimate of the scale (fixed, learned, optimal, or the RMS of
        per-dimension scales). Stored as ``constant_data/scale``, not as draws.
    scale_mode : str or None
        The run's scale mode, stored as an attribute of the scale variable.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Groups ``log_likelihood`` (``x``: chain, draw, obs), ``observed_data``
        (``x``: obs, dim), and ``posterior`` (``scale``: chain, draw) or
        ``constant_data`` (``scale``: scalar) when a scale is given. One chain.

    Raises
    ------
    ValueError
        On arrays of the wrong shape, non-finite values, or both a posterior and
        a point estimate of the scale.
    """
    import xarray as xr

    ll = _as_array("log_lik", log_lik, 2)
    obs = _as_array("observed", observed, 2)
    if ll.shape[1] != obs.shape[0]:
        raise ValueError(
            f"log_lik has {ll.shape[1]} observations but observed has {obs.shape[0]} rows; "
            "both must describe the same test examples"
        )
    if scale_draws is not None and scale_point is not None:
        raise ValueError(
            "pass scale_draws (a posterior) or scale_point (a point estimate), not both"
        )
    attrs = {"scale_mode": str(scale_mode)} if scale_mode is not None else {}
    groups_: dict[str, xr.Dataset] = {}
    if scale_draws is not None:
        scale = _as_array("scale_draws", scale_draws, 1)
        if scale.shape[0] != ll.shape[0]:
            raise ValueError(
                f"scale_draws has {scale.shape[0]} draws but log_lik has {ll.shape[0]}; "
                "pass one scale draw per log-likelihood draw"
            )
        groups_["posterior"] = xr.Dataset(
            {"scale": xr.Variable(("chain", "draw"), scale[None], attrs=attrs)})
    groups_["log_likelihood"] = xr.Dataset({"x": (("chain", "draw", "obs"), ll[None])})
    groups_["observed_data"] = xr.Dataset({"x": (("obs", "dim"), obs)})
    if scale_point is not None:
        point = _as_array("scale_point", scale_point, 0)
        groups_["constant_data"] = xr.Dataset(
            {"scale": xr.Variable((), point, attrs={**attrs, "kind": "point estimate"})})
    az = _az()
    if arviz_generation() == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return az.InferenceData(**groups_)
    return xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups_.items()})


def save_run_data(data: Any, path: str | os.PathLike[str]) -> Path:
    """Write run data to netCDF (h5netcdf engine) atomically.

    The file is written under a temporary name in the same folder and moved into
    place with :func:`os.replace`, so a reader never sees half a file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        if arviz_generation() == 0:
            data.to_netcdf(tmp, engine="h5netcdf")
        else:
            data.to_netcdf(tmp, engine="h5netcdf", mode="w")
    return target


def load_run_data(path: str | os.PathLike[str]) -> Any:
    """Read run data written by :func:`save_run_data` (fully into memory) and check its layout.

    Any file that is not such data (not netCDF/HDF5, truncated, damaged, groups
    or dimensions other than the layout above, values that are not numbers) is
    a :class:`~vaelik.rundir.RunFileError` naming it, never another exception.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        The same object kind :func:`build_run_data` returns under this ArviZ.

    Raises
    ------
    RunFileError
        If the file is missing, unreadable or not laid out as documented.
    """
    path = Path(path)
    source = resolve(path)
    if not source.is_file():
        raise RunFileError(f"{path}: missing; re-run `vaelik evaluate` on this run")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file's warnings say no more than its error
            data = _load(source)
    except Exception as exc:  # noqa: BLE001 - any content of the file is a bad file
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise RunFileError(f"{path}: unreadable ({text})") from None
    problem = _layout_problem(data)
    if problem:
        raise RunFileError(f"{path}: {problem}; re-run `vaelik evaluate` on this run")
    return data


def _load(path: Path) -> Any:
    az = _az()
    if arviz_generation() == 0:
        data = az.from_netcdf(str(path), engine="h5netcdf")
        for name in data.groups():
            getattr(data, name).load()
        return data
    import xarray as xr

    with xr.open_datatree(str(path), engine="h5netcdf") as tree:
        return tree.load().copy()


#: the dimensions of each variable of the layout (module docstring)
_LAYOUT = {("log_likelihood", "x"): ("chain", "draw", "obs"), ("observed_data", "x"): ("obs", "dim"),
           ("posterior", "scale"): ("chain", "draw"), ("constant_data", "scale"): ()}


def _layout_problem(data: Any) -> str | None:
    """Why ``data`` is not laid out as :func:`build_run_data` lays it out (None if it is)."""
    try:
        present = groups(data)
        if "log_likelihood" not in present:
            return "has no log_likelihood group"
        for (name, var), dims in _LAYOUT.items():
            ds = group(data, name)
            if ds is None:
                continue
            if var not in ds.data_vars:
                return f"group {name} has no variable {var}"
            values = ds[var]
            if tuple(values.dims) != dims:
                return f"{name}/{var} has dimensions {tuple(values.dims)}, expected {dims}"
            array = np.asarray(values.values)
            if array.dtype.kind not in "biuf":
                return f"{name}/{var} holds {array.dtype} values, expected numbers"
            if dims and array.size == 0:
                return f"{name}/{var} is empty"
        return None
    except Exception as exc:  # noqa: BLE001 - a structure we cannot even walk is a bad file
        return f"not laid out as documented ({type(exc).__name__})"


def groups(data: Any) -> list[str]:
    """Names of the groups present in run data (either ArviZ generation)."""
    if arviz_generation() == 0:
        return list(data.groups())
    return [str(name) for name in data.children]


def group(data: Any, name: str) -> Any | None:
    """One group of run data as an ``xarray.Dataset``-like object, or None if absent."""
    if name not in groups(data):
        return None
    return data[name] if arviz_generation() else getattr(data, name)


def scale_draws(data: Any) -> np.ndarray | None:
    """The posterior draws of the scale, flattened over (chain, draw); None if not a posterior."""
    posterior = group(data, "posterior")
    if posterior is None or "scale" not in posterior.data_vars:
        return None
    draws = np.asarray(posterior["scale"].values, dtype=float).ravel()
    return draws if draws.size else None


def scale_point(data: Any) -> float | None:
    """The point estimate of the scale (``constant_data/scale``); None if none was stored."""
    const = group(data, "constant_data")
    if const is None or "scale" not in const.data_vars:
        return None
    values = np.asarray(const["scale"].values, dtype=float).ravel()
    return float(values[0]) if values.size else None
