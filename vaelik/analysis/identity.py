r"""Reconstruction term against the equivalent deterministic loss (claims C1, C4, C5).

Per test example, ``pointwise.csv`` holds ``recon`` (:math:`\log p(x\mid z)` at one z
sample) and ``loss_sum`` (the family's loss summed over the d dimensions at the same
z: the SSE of a Normal, the SAE of a Laplace, the summed BCE of a Bernoulli). A family
whose reconstruction term is exactly affine in that sum states the line,
:math:`\log p(x\mid z) = a + b \cdot \mathrm{loss\_sum}`, as a method of the data
dimension and the scale; fitting evaluates it at the run's scale and stores slope
and intercept with the family's facts (``eval.json`` ``family``), or the reason why
there is none (per-dimension, predicted and Bayesian scales; the continuous
Bernoulli's log-normaliser). This module fits the line and compares it with the
stored one: it holds no formula of any family.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vaelik.rundir.family import FamilyFacts

from ._common import facts_of
from .runs import RunFileError, load_pointwise

__all__ = ["fit_line", "theoretical_line", "identity_table", "pointwise_frame"]


def fit_line(loss_sum: np.ndarray, recon: np.ndarray) -> tuple[float, float, float]:
    r"""Least-squares line ``recon ≈ intercept + slope · loss_sum`` (``numpy.linalg.lstsq``).

    Parameters
    ----------
    loss_sum, recon : numpy.ndarray, shape (n,)
        Equivalent loss and reconstruction log-likelihood per example.

    Returns
    -------
    slope, intercept, r2 : float
        :math:`R^2 = 1 - \sum (y - \hat y)^2 / \sum (y - \bar y)^2`; NaN when
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


def theoretical_line(facts: FamilyFacts | None) -> tuple[float, float, str]:
    """The line a run's family states, from its stored facts.

    Parameters
    ----------
    facts : FamilyFacts or None
        :func:`vaelik.analysis._common.facts_of` of a runs-table row.

    Returns
    -------
    slope, intercept : float
        NaN where the family states no line for this run.
    reason : str
        Empty when both are defined, else why not.
    """
    if facts is None:
        return math.nan, math.nan, "eval.json states no family facts; re-run `vaelik evaluate` on this run"
    if facts.line_slope is None or facts.line_intercept is None:
        return math.nan, math.nan, facts.line_reason or "the family states no line for this run"
    return float(facts.line_slope), float(facts.line_intercept), ""


def _label(facts: FamilyFacts | None) -> str:
    return facts.loss_sum_label if facts is not None and facts.loss_sum_label else "summed loss"


def identity_table(runs: pd.DataFrame) -> pd.DataFrame:
    r"""Fit and stated lines of ``recon`` on ``loss_sum`` for every completed run.

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs`.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run, likelihood, family, scale, scale_mode, model, data,
        loss_sum_label`` (what ``loss_sum`` is, e.g. "SSE Σ(x−x̂)²", from the family's
        facts), ``n``, ``slope, intercept, r2`` (fitted), ``slope_theory,
        intercept_theory`` (the line the family states at the run's scale),
        ``slope_rel_error`` (:math:`|\hat a / a - 1|`), ``intercept_abs_error``
        (nats), ``reason`` (why there is no stated line, if there is none).
        ``frame.attrs["problems"]`` lists runs whose ``pointwise.csv`` could not be read.
    """
    cols = ["run", "likelihood", "family", "scale", "scale_mode", "model", "data", "loss_sum_label",
            "n", "slope", "intercept", "r2", "slope_theory", "intercept_theory", "slope_rel_error",
            "intercept_abs_error", "reason"]
    rows, problems = [], []
    if not runs.empty:
        done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
        for _, row in done.iterrows():
            try:
                pw = load_pointwise(row["path"])
            except RunFileError as exc:
                problems.append(f"{row['run']}: {exc}")
                continue
            slope, intercept, r2 = fit_line(pw["loss_sum"].to_numpy(), pw["recon"].to_numpy())
            facts = facts_of(row)
            s_th, i_th, reason = theoretical_line(facts)
            rows.append({
                "run": row["run"], "likelihood": row["likelihood"],
                "family": facts.name if facts is not None else None, "scale": row.get("scale"),
                "scale_mode": row.get("scale_mode"), "model": row.get("model"),
                "data": row.get("data"), "loss_sum_label": _label(facts), "n": int(len(pw)),
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
    """``run, loss_sum_label, loss_sum, recon`` of every completed run's ``pointwise.csv``.

    ``loss_sum_label`` says what ``loss_sum`` is for that run's family (for figures).
    Runs whose file cannot be read are left out (see :func:`identity_table` for
    the list of problems).
    """
    cols = ["run", "loss_sum_label", "loss_sum", "recon"]
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
            frames.append(pd.DataFrame({"run": row["run"], "loss_sum_label": _label(facts_of(row)),
                                        "loss_sum": pw["loss_sum"], "recon": pw["recon"]}))
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]
