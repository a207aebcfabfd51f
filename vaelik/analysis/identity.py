"""Reconstruction term against the equivalent deterministic loss (claims C1, C4, C5).

Per test example, ``pointwise.csv`` holds ``recon`` (:math:`\\log p(x\\mid z)` at one z
sample) and ``loss_sum`` (the family's loss summed over the d dimensions at the same
z). For a fixed scale the two are affine:

* Normal (fixed / learned / optimal σ), ``loss_sum`` = SSE:

  .. math:: \\log p(x\\mid z) = -\\tfrac{d}{2}\\log(2\\pi\\sigma^2) - \\frac{\\mathrm{SSE}}{2\\sigma^2}

* Laplace (fixed / learned / optimal b), ``loss_sum`` = SAE:

  .. math:: \\log p(x\\mid z) = -d\\log(2b) - \\frac{\\mathrm{SAE}}{b}

* Bernoulli, ``loss_sum`` = summed BCE: :math:`\\log p(x\\mid z) = -\\mathrm{BCE}` exactly.
* Continuous Bernoulli: :math:`\\log p(x\\mid z) = -\\mathrm{BCE} + \\sum_j \\log C(\\lambda_j)`;
  the log-normaliser depends on λ, so the relation is not affine (R² < 1).

Per-dimension, predicted and Bayesian scales differ across dimensions, points or
draws, so no single line exists: their theoretical slope and intercept are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._common import family, num
from .runs import RunFileError, load_pointwise

__all__ = ["fit_line", "theoretical_line", "identity_table", "pointwise_frame"]

_AFFINE_MODES = ("fixed", "learned", "optimal")


def fit_line(loss_sum: np.ndarray, recon: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line ``recon ≈ intercept + slope · loss_sum`` (``numpy.linalg.lstsq``).

    Parameters
    ----------
    loss_sum, recon : numpy.ndarray, shape (n,)
        Equivalent loss and reconstruction log-likelihood per example.

    Returns
    -------
    slope, intercept, r2 : float
        :math:`R^2 = 1 - \\sum (y - \\hat y)^2 / \\sum (y - \\bar y)^2`; NaN when
        fewer than 3 finite points or no spread in ``loss_sum`` or ``recon``.
    """
    x = np.asarray(loss_sum, dtype=float)
    y = np.asarray(recon, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return math.nan, math.nan, math.nan
    design = np.column_stack([x, np.ones_like(x)])
    (slope, intercept), *_ = np.linalg.lstsq(design, y, rcond=None)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - (intercept + slope * x)) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    return float(slope), float(intercept), float(r2)


def theoretical_line(
    likelihood: str, scale_mode: str, scale: float | None, d: int | None
) -> tuple[float, float, str]:
    """Theoretical slope and intercept of ``recon`` against ``loss_sum``.

    Parameters
    ----------
    likelihood : str
        Family name.
    scale_mode : str
        ``fixed``, ``learned``, ``optimal``, ``per_dim``, ``predicted``, ``bayesian`` or ``none``.
    scale : float or None
        The global σ (Normal) or b (Laplace).
    d : int or None
        Data dimension.

    Returns
    -------
    slope, intercept : float
        NaN where no single line exists.
    reason : str
        Empty when both are defined, else why not (or, for the continuous
        Bernoulli, why the intercept is undefined).
    """
    fam = family(likelihood)
    if fam == "bernoulli":
        return -1.0, 0.0, ""
    if fam == "continuous_bernoulli":
        return -1.0, math.nan, (
            "log p = -BCE + sum_j log C(lambda_j): the log-normaliser varies with lambda, "
            "so the intercept is not a constant and R^2 < 1"
        )
    if fam not in ("normal", "laplace"):
        return math.nan, math.nan, f"no closed form known for family {likelihood!r}"
    if scale_mode not in _AFFINE_MODES:
        what = {
            "per_dim": "one scale per dimension",
            "predicted": "a scale predicted per point and dimension",
            "bayesian": "a scale that varies across posterior draws",
        }.get(scale_mode, f"scale mode {scale_mode!r}")
        return math.nan, math.nan, f"{what}: recon is not a function of the summed loss alone"
    if scale is None or not (np.isfinite(scale) and scale > 0) or d is None or not np.isfinite(d):
        return math.nan, math.nan, "scale or data dimension missing from eval.json / config.json"
    s, dd = float(scale), float(d)
    if fam == "normal":
        return -1.0 / (2 * s * s), -dd / 2 * math.log(2 * math.pi * s * s), ""
    return -1.0 / s, -dd * math.log(2 * s), ""


def identity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Fit and theoretical lines of ``recon`` on ``loss_sum`` for every completed run.

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs`.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run, likelihood, scale, scale_mode, model, data, n``,
        ``slope, intercept, r2`` (fitted), ``slope_theory, intercept_theory``,
        ``slope_rel_error`` (:math:`|\\hat a / a - 1|`), ``intercept_abs_error``
        (nats), ``reason`` (why the theory is undefined, if it is).
        ``frame.attrs["problems"]`` lists runs whose ``pointwise.csv`` could not be read.
    """
    cols = ["run", "likelihood", "scale", "scale_mode", "model", "data", "n", "slope", "intercept",
            "r2", "slope_theory", "intercept_theory", "slope_rel_error", "intercept_abs_error",
            "reason"]
    rows, problems = [], []
    if not runs.empty:
        done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
        scale_values = num(done, "scale_value")
        dims = num(done, "data_dim")
        for idx, row in done.iterrows():
            try:
                pw = load_pointwise(row["path"])
            except RunFileError as exc:
                problems.append(f"{row['run']}: {exc}")
                continue
            slope, intercept, r2 = fit_line(pw["loss_sum"].to_numpy(), pw["recon"].to_numpy())
            scale = scale_values[idx]
            if not np.isfinite(scale) and row.get("scale_mode") == "fixed":
                try:
                    scale = float(row["scale"])
                except (TypeError, ValueError):
                    scale = math.nan
            d = dims[idx]
            s_th, i_th, reason = theoretical_line(
                row["likelihood"], str(row.get("scale_mode")), scale, None if np.isnan(d) else int(d)
            )
            rows.append({
                "run": row["run"], "likelihood": row["likelihood"], "scale": row.get("scale"),
                "scale_mode": row.get("scale_mode"), "model": row.get("model"),
                "data": row.get("data"), "n": int(len(pw)),
                "slope": slope, "intercept": intercept, "r2": r2,
                "slope_theory": s_th, "intercept_theory": i_th,
                "slope_rel_error": abs(slope / s_th - 1) if np.isfinite(s_th) and s_th else math.nan,
                "intercept_abs_error": abs(intercept - i_th) if np.isfinite(i_th) else math.nan,
                "reason": reason,
            })
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["problems"] = problems
    return out


def pointwise_frame(runs: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """``run, loss_sum, recon`` of every completed run's ``pointwise.csv`` (for figures).

    Runs whose file cannot be read are left out (see :func:`identity_table` for
    the list of problems).
    """
    frames = []
    if not runs.empty:
        done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
        for _, row in done.iterrows():
            if names is not None and row["run"] not in names:
                continue
            try:
                pw = load_pointwise(row["path"])
            except RunFileError:
                continue
            frames.append(pd.DataFrame({"run": row["run"], "loss_sum": pw["loss_sum"], "recon": pw["recon"]}))
    if not frames:
        return pd.DataFrame(columns=["run", "loss_sum", "recon"])
    return pd.concat(frames, ignore_index=True)
