"""Every ArviZ call of vaelik, working on both ArviZ generations.

ArviZ 0.23 (Python 3.11) holds data in ``arviz.InferenceData``; ArviZ 1.x
(Python >= 3.12) in ``xarray.DataTree``, with a different ``from_dict``,
``summary`` (columns ``hdi94_lb``/``hdi94_ub`` instead of ``hdi_3%``/``hdi_97%``)
and ``compare`` (``elpd`` instead of ``elpd_loo``, no ``ic=`` argument). This
module hides the difference: the rest of vaelik passes numpy arrays in and gets
pandas frames with the normalised columns documented below out.

The data layout is the one of ``posterior.nc`` in ``docs/run-directory.md``:

* ``log_likelihood/x`` -- dims ``(chain=1, draw=S, obs=n)``;
* ``posterior/scale`` -- dims ``(chain=1, draw=S)``, absent when there is no scale;
* ``observed_data/x`` -- dims ``(obs=n, dim=d)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaelik.atomic import atomic_path

__all__ = [
    "arviz_version",
    "arviz_generation",
    "build_run_data",
    "save_run_data",
    "load_run_data",
    "summarize_scale",
    "compare_runs",
    "SUMMARY_COLUMNS",
    "COMPARE_COLUMNS",
    "HDI_PROB",
]

#: Probability mass of the highest-density interval reported by :func:`summarize_scale`.
HDI_PROB = 0.94
#: Fewest log-likelihood draws per run for PSIS-LOO (ArviZ 1.x fits a Pareto tail
#: to min(S/5, 3·sqrt(S)) >= 5 draws); 100 or more is advisable.
MIN_DRAWS = 25
#: Columns of :func:`summarize_scale`.
SUMMARY_COLUMNS = ("mean", "sd", "hdi_lower", "hdi_upper", "interval", "prob", "draws")
#: Columns of :func:`compare_runs`.
COMPARE_COLUMNS = ("rank", "elpd", "p", "se", "elpd_diff", "dse", "weight", "warning")


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
    log_lik: np.ndarray, observed: np.ndarray, scale_draws: np.ndarray | None
) -> Any:
    """Build the ArviZ data of one run from numpy arrays.

    Parameters
    ----------
    log_lik : numpy.ndarray, shape (draws, n)
        ``log_lik[s, i]`` is the s-th independent estimate of :math:`\\log p(x_i)`;
        :math:`\\operatorname{logmeanexp}_s` of a column is the K-sample estimate.
    observed : numpy.ndarray, shape (n, d)
        The test data.
    scale_draws : numpy.ndarray of shape (draws,), or None
        Draws of the observation scale (σ or b) from the guide for ``bayesian``,
        the constant value repeated for other scaled families, ``None`` when the
        family has no scale.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Groups ``log_likelihood`` (``x``: chain, draw, obs), ``observed_data``
        (``x``: obs, dim) and, if ``scale_draws`` is given, ``posterior``
        (``scale``: chain, draw). One chain.
    """
    import xarray as xr

    ll = _as_array("log_lik", log_lik, 2)
    obs = _as_array("observed", observed, 2)
    if ll.shape[1] != obs.shape[0]:
        raise ValueError(
            f"log_lik has {ll.shape[1]} observations but observed has {obs.shape[0]} rows; "
            "both must describe the same test examples"
        )
    groups: dict[str, xr.Dataset] = {
        "log_likelihood": xr.Dataset({"x": (("chain", "draw", "obs"), ll[None])}),
        "observed_data": xr.Dataset({"x": (("obs", "dim"), obs)}),
    }
    if scale_draws is not None:
        scale = _as_array("scale_draws", scale_draws, 1)
        if scale.shape[0] != ll.shape[0]:
            raise ValueError(
                f"scale_draws has {scale.shape[0]} draws but log_lik has {ll.shape[0]}; "
                "pass one scale draw per log-likelihood draw"
            )
        groups = {"posterior": xr.Dataset({"scale": (("chain", "draw"), scale[None])}), **groups}
    az = _az()
    if arviz_generation() == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return az.InferenceData(**groups)
    return xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})


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
    """Read run data written by :func:`save_run_data` (fully into memory).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        The same object kind :func:`build_run_data` returns under this ArviZ.
    """
    az = _az()
    if arviz_generation() == 0:
        data = az.from_netcdf(str(path), engine="h5netcdf")
        for group in data.groups():
            getattr(data, group).load()
        return data
    import xarray as xr

    with xr.open_datatree(str(path), engine="h5netcdf") as tree:
        return tree.load().copy()


def _log_lik_shape(name: str, data: Any) -> tuple[int, int]:
    if "log_likelihood" not in _groups(data):
        raise ValueError(f"run {name!r} has no log_likelihood group; it cannot be compared")
    group = data["log_likelihood"] if arviz_generation() else data.log_likelihood
    values = np.asarray(group["x"].values)
    return int(values.shape[0] * values.shape[1]), int(values.shape[-1])


def _groups(data: Any) -> list[str]:
    if arviz_generation() == 0:
        return list(data.groups())
    return [str(name) for name in data.children]


def _scale_draws(data: Any) -> np.ndarray | None:
    if "posterior" not in _groups(data):
        return None
    posterior = data["posterior"] if arviz_generation() else data.posterior
    if "scale" not in posterior.data_vars:
        return None
    return np.asarray(posterior["scale"].values, dtype=float).ravel()


def summarize_scale(data: Any, prob: float = HDI_PROB) -> pd.DataFrame:
    """ArviZ summary of the ``scale`` draws of one run.

    Parameters
    ----------
    data : arviz.InferenceData or xarray.DataTree
        From :func:`build_run_data` or :func:`load_run_data`.
    prob : float
        Mass of the highest-density interval, in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row (index ``scale``) with columns ``mean``, ``sd``, ``hdi_lower``,
        ``hdi_upper`` (the narrowest interval holding ``prob`` of the draws:
        :math:`\\arg\\min_{[l,u]} (u-l)` s.t. :math:`P(l \\le \\sigma \\le u) \\ge`
        ``prob``), ``interval`` (``"HDI"``), ``prob`` and ``draws``. Empty (same
        columns) when the run has no scale draws.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in the interval (0, 1) but got {prob}")
    draws = _scale_draws(data)
    if draws is None:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    az = _az()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sd of constant draws etc.
        if arviz_generation() == 0:
            raw = az.summary(data, var_names=["scale"], kind="stats", hdi_prob=prob, round_to="none")
            pct = f"{100 * (1 - prob) / 2:g}"
            lower, upper = f"hdi_{pct}%", f"hdi_{100 - float(pct):g}%"
        else:
            raw = az.summary(
                data, var_names=["scale"], kind="stats", ci_kind="hdi", ci_prob=prob, round_to="none"
            )
            lower, upper = [c for c in raw.columns if str(c).endswith("_lb")][0], [
                c for c in raw.columns if str(c).endswith("_ub")
            ][0]
    frame = pd.DataFrame(
        {
            "mean": raw["mean"].astype(float),
            "sd": raw["sd"].astype(float),
            "hdi_lower": raw[lower].astype(float),
            "hdi_upper": raw[upper].astype(float),
        }
    )
    frame["interval"] = "HDI"
    frame["prob"] = prob
    frame["draws"] = int(draws.size)
    frame.index = ["scale"]
    return frame[list(SUMMARY_COLUMNS)]


def compare_runs(runs: Mapping[str, Any]) -> pd.DataFrame:
    """Compare runs by PSIS-LOO expected log predictive density (``az.compare``).

    .. math:: \\widehat{\\mathrm{elpd}}_{\\mathrm{loo}} = \\sum_i \\log p(x_i \\mid x_{-i})

    Only meaningful for runs on the same test examples whose likelihoods are
    normalised densities on those data (``comparable: true`` in ``eval.json``).

    Parameters
    ----------
    runs : mapping of str to run data
        At least two runs with a ``log_likelihood`` group of equal ``obs`` size.

    Returns
    -------
    pandas.DataFrame
        Index: run names, best first. Columns: ``rank`` (0 is best), ``elpd``
        (nats, summed over test points), ``p`` (effective number of parameters),
        ``se``, ``elpd_diff`` (elpd of the best run minus this run's, >= 0), ``dse`` (se of the difference),
        ``weight`` (stacking weights), ``warning`` (bool: Pareto k too high).
        ``frame.attrs["warnings"]`` holds the text of warnings ArviZ raised
        (deprecation notices of the libraries left out).
    """
    if len(runs) < 2:
        raise ValueError(f"compare_runs needs at least two runs, got {len(runs)}")
    sizes = {name: _log_lik_shape(name, data) for name, data in runs.items()}
    if len({n for _, n in sizes.values()}) > 1:
        raise ValueError(
            "compare_runs needs runs scored on the same test examples; got obs sizes "
            + ", ".join(f"{name}: {n}" for name, (_, n) in sizes.items())
        )
    few = {name: s for name, (s, _) in sizes.items() if s < MIN_DRAWS}
    if few:
        raise ValueError(
            f"PSIS-LOO needs at least {MIN_DRAWS} log-likelihood draws per run; got "
            + ", ".join(f"{name}: {s}" for name, s in few.items())
            + ". Write more draws to posterior.nc"
        )
    az = _az()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Draws are independent guide / importance samples, so the relative
        # efficiency r_eff is 1 (and no posterior group is needed to estimate it).
        elpds = {name: az.loo(data, pointwise=True, reff=1.0) for name, data in runs.items()}
        if arviz_generation() == 0:
            raw = az.compare(elpds, ic="loo", method="stacking", scale="log")
            raw = raw.rename(columns={"elpd_loo": "elpd", "p_loo": "p"})
        else:
            raw = az.compare(elpds, method="stacking", round_to="none")
    frame = pd.DataFrame(index=[str(i) for i in raw.index])
    for col in COMPARE_COLUMNS:
        if col == "warning":
            frame[col] = raw[col].astype(bool).to_numpy() if col in raw.columns else False
        elif col == "rank":
            frame[col] = raw[col].astype(int).to_numpy()
        else:
            frame[col] = pd.to_numeric(raw[col], errors="coerce").astype(float).to_numpy() if col in raw.columns else np.nan
    # ArviZ 0.x reports elpd_diff as best − this (≥ 0), ArviZ 1.x as this − best (≤ 0):
    # one convention here, recomputed from the elpd column.
    frame["elpd_diff"] = float(frame["elpd"].max()) - frame["elpd"]
    # Keep what concerns the fit (Pareto k, ...), not the libraries' own deprecations.
    frame.attrs["warnings"] = sorted(
        {str(w.message).strip() for w in caught if not issubclass(w.category, DeprecationWarning)}
    )
    return frame
