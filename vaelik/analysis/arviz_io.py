"""The analysis' ArviZ calls (scale summary, model comparison), working on both ArviZ generations.

ArviZ 0.23 (Python 3.11) holds data in ``arviz.InferenceData``; ArviZ 1.x
(Python >= 3.12) in ``xarray.DataTree``, with a different ``summary`` (columns
``hdi94_lb``/``hdi94_ub`` instead of ``hdi_3%``/``hdi_97%``) and ``compare``
(``elpd`` instead of ``elpd_loo``, no ``ic=`` argument). This module hides the
difference: the rest of vaelik passes run data in and gets pandas frames with
the normalised columns documented below out.

Building, saving and loading ``posterior.nc`` belongs to the run directory
(:mod:`vaelik.rundir.posterior`, layout in ``docs/run-directory.md``);
:func:`build_run_data`, :func:`save_run_data` and :func:`load_run_data` are
re-exported here for the analysis' callers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vaelik.rundir.posterior import (
    _az,
    arviz_generation,
    arviz_version,
    build_run_data,
    group,
    load_run_data,
    save_run_data,
    scale_draws,
    scale_point,
)

__all__ = [
    "COMPARE_COLUMNS",
    "HDI_PROB",
    "POINT_ESTIMATE",
    "SUMMARY_COLUMNS",
    "arviz_generation",
    "arviz_version",
    "build_run_data",
    "compare_runs",
    "load_run_data",
    "save_run_data",
    "summarize_scale",
]

#: Probability mass of the highest-density interval reported by :func:`summarize_scale`.
HDI_PROB = 0.94
#: Fewest log-likelihood draws per run for PSIS-LOO (ArviZ 1.x fits a Pareto tail
#: to min(S/5, 3·sqrt(S)) >= 5 draws); 100 or more is advisable.
MIN_DRAWS = 25
#: ``interval`` of :func:`summarize_scale` for a scale that is a point estimate, not a posterior.
POINT_ESTIMATE = "point estimate"
#: Columns of :func:`summarize_scale`.
SUMMARY_COLUMNS = ("mean", "sd", "hdi_lower", "hdi_upper", "interval", "prob", "draws")
#: Columns of :func:`compare_runs`.
COMPARE_COLUMNS = ("rank", "elpd", "p", "se", "elpd_diff", "dse", "weight", "warning")


def _log_lik_shape(name: str, data: Any) -> tuple[int, int]:
    log_lik = group(data, "log_likelihood")
    if log_lik is None:
        raise ValueError(f"run {name!r} has no log_likelihood group; it cannot be compared")
    values = np.asarray(log_lik["x"].values)
    return int(values.shape[0] * values.shape[1]), int(values.shape[-1])


def _point_row(value: float) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"mean": [float(value)], "sd": [np.nan], "hdi_lower": [np.nan], "hdi_upper": [np.nan],
         "interval": [POINT_ESTIMATE], "prob": [np.nan], "draws": [0]},
        index=["scale"],
    )
    return frame[list(SUMMARY_COLUMNS)]


def summarize_scale(data: Any, prob: float = HDI_PROB) -> pd.DataFrame:
    r"""Summary of the observation scale of one run: an HDI of posterior draws, or a point estimate.

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
        ``hdi_upper``, ``interval``, ``prob`` and ``draws``. For a posterior
        (draws of a Bayesian scale): the ArviZ summary, ``hdi_lower``/``hdi_upper``
        the narrowest interval holding ``prob`` of the draws
        (:math:`\arg\min_{[l,u]} (u-l)` s.t. :math:`P(l \le \sigma \le u) \ge`
        ``prob``), ``interval`` ``"HDI"``. For a point estimate (fixed, learned,
        optimal; or draws that are all equal, as files written before the
        point-estimate layout held): ``mean`` the value, ``interval``
        ``"point estimate"``, ``sd``/``hdi_*``/``prob`` NaN, ``draws`` 0. Empty
        (same columns) when the run has no scale.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in the interval (0, 1) but got {prob}")
    draws = scale_draws(data)
    if draws is None:
        point = scale_point(data)
        if point is None:
            return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        return _point_row(point)
    if draws.size and np.all(draws == draws[0]):
        return _point_row(float(draws[0]))  # identical "draws" are one number, not a posterior
    az = _az()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if arviz_generation() == 0:
            raw = az.summary(data, var_names=["scale"], kind="stats", hdi_prob=prob, round_to="none")
            pct = f"{100 * (1 - prob) / 2:g}"
            lower, upper = f"hdi_{pct}%", f"hdi_{100 - float(pct):g}%"
        else:
            raw = az.summary(
                data, var_names=["scale"], kind="stats", ci_kind="hdi", ci_prob=prob, round_to="none"
            )
            lower = next(c for c in raw.columns if str(c).endswith("_lb"))
            upper = next(c for c in raw.columns if str(c).endswith("_ub"))
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
    r"""Compare runs by PSIS-LOO expected log predictive density (``az.compare``).

    .. math:: \widehat{\mathrm{elpd}}_{\mathrm{loo}} = \sum_i \log p(x_i \mid x_{-i})

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
