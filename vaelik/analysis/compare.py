"""Test metrics side by side over likelihood x scale, and the σ-as-β sweep (C6).

Losses (MSE, MAE, BCE) are computed from the *mean of the observation
distribution* for every family, so they compare across families. The ELBO and
log p(x) are compared only between runs whose likelihood is a normalised density
on the data (``comparable: true``); a Bernoulli on grey levels is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import HELD, NOT_HELD, data_id_of, family_of, not_measured, num

__all__ = [
    "COMPARE_METRICS", "comparison_table", "format_mean_sd", "c6_frame", "c6_check",
    "heldout_ranking"]

#: Metrics summarised by :func:`comparison_table` (``scale_value`` is eval.json's numeric scale;
#: the group column ``scale`` is the configured scale as a string).
COMPARE_METRICS = ("mse", "mae", "bce", "elbo", "log_px", "kl", "active_units", "mutual_info",
                   "scale_value", "seconds_train")
_DENSITY_METRICS = ("elbo", "log_px")
_GROUP = ["data", "model", "likelihood", "scale"]


def by_data_identity(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``data`` replaced by the data identity (``"ppca (sigma=0.05)"``).

    Tables and series that group by ``data`` then never mix runs fitted on
    different data sets of one name (:func:`vaelik.analysis._common.data_identity`).
    """
    return runs.assign(data=data_id_of(runs)) if not runs.empty else runs


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of the test metrics, per data x model x likelihood x scale.

    ``data`` is the data identity: the data set with its options (``"ppca (sigma=0.05)"``).

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs` (only completed runs are used).

    Returns
    -------
    pandas.DataFrame
        One row per group: ``data, model, likelihood, scale, scale_mode, n_runs``,
        then ``<metric>_mean`` and ``<metric>_sd`` (sample sd, ddof=1; NaN for one
        run) for each of :data:`COMPARE_METRICS`, and ``note``. ``elbo`` and
        ``log_px`` are NaN for groups that are not comparable (the note says why).
    """
    metric_cols = [f"{m}_{s}" for m in COMPARE_METRICS for s in ("mean", "sd")]
    cols = [*_GROUP, "scale_mode", "n_runs", *metric_cols, "note"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    done = runs[runs["completed"].astype(bool)].copy() if "completed" in runs.columns else runs.copy()
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = by_data_identity(done)
    values = pd.DataFrame({m: num(done, m) for m in COMPARE_METRICS})
    comparable = done["comparable"] if "comparable" in done.columns else pd.Series(True, index=done.index)
    comparable = comparable.map(lambda v: v is True or str(v).lower() == "true")
    for m in _DENSITY_METRICS:
        values.loc[~comparable, m] = np.nan
    rows = []
    for key, idx in done.groupby(_GROUP, sort=True, dropna=False).groups.items():
        g = values.loc[idx]
        row = dict(zip(_GROUP, key, strict=False))
        row["scale_mode"] = done.loc[idx, "scale_mode"].iloc[0]
        row["n_runs"] = int(len(idx))
        for m in COMPARE_METRICS:
            col = g[m].dropna()
            row[f"{m}_mean"] = float(col.mean()) if len(col) else np.nan
            row[f"{m}_sd"] = float(col.std(ddof=1)) if len(col) > 1 else np.nan
        notes = []
        if not comparable.loc[idx].all():
            reasons = done.loc[idx, "comparable_reason"] if "comparable_reason" in done.columns else []
            reason = next((str(r) for r in reasons if isinstance(r, str) and r), "")
            notes.append("elbo/log_px not comparable" + (f": {reason}" if reason else ""))
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def format_mean_sd(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Display form of :func:`comparison_table`: one ``mean ± sd`` string per metric."""
    out = table[[*_GROUP, "n_runs"]].copy()
    for m in COMPARE_METRICS:
        mean, sd = table[f"{m}_mean"], table[f"{m}_sd"]
        out[m] = [
            "n/a" if pd.isna(a) else (f"{a:.{digits}g}" if pd.isna(b) else f"{a:.{digits}g} ± {b:.2g}")
            for a, b in zip(mean, sd, strict=False)
        ]
    out["note"] = table["note"]
    return out


def c6_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """C6 frame: Normal runs with a fixed σ, and the learned-σ runs to mark beside them.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run, data`` (the data identity: data set and options),
        ``model, latent_dim, seed, kind`` (``fixed`` or
        ``learned``), ``sigma`` (the fixed value, or the learned final σ), ``mse``,
        ``kl`` (nats per point), ``active_units``, ``elbo``.
    """
    cols = ["run", "data", "model", "latent_dim", "seed", "kind", "sigma", "mse", "kl",
            "active_units", "elbo"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
    done = by_data_identity(done)
    normal = done[(family_of(done) == "normal")
                  & done["scale_mode"].isin(["fixed", "learned"])]
    if normal.empty:
        return pd.DataFrame(columns=cols)
    out = normal[["run", "data", "model", "latent_dim", "seed"]].copy()
    out["kind"] = normal["scale_mode"].astype(str)
    fixed_from_config = pd.to_numeric(normal["scale"], errors="coerce")
    out["sigma"] = num(normal, "scale_value").where(lambda s: s.notna(), fixed_from_config)
    for m in ("mse", "kl", "active_units", "elbo"):
        out[m] = num(normal, m)
    return out[cols].sort_values(["kind", "sigma", "seed"]).reset_index(drop=True)


def _smallest_step_over_spread(means: pd.Series, spread: pd.Series) -> float:
    """Smallest |step| of the seed means between consecutive σ over the seed range at either end.

    NaN when no step has a measured spread (one seed per σ): nothing to compare with.
    """
    steps = np.abs(np.diff(means.to_numpy(float)))
    ends = np.maximum(spread.to_numpy(float)[:-1], spread.to_numpy(float)[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ends > 0, steps / ends, np.inf)
    ratio = ratio[np.isfinite(ends)]
    return float(ratio.min()) if ratio.size else np.nan


def c6_check(frame: pd.DataFrame, min_sigmas: int = 3, min_step_over_spread: float = 1.0) -> pd.DataFrame:
    """Is MSE increasing and KL decreasing in the fixed σ, by more than the seeds disagree? One row per series.

    A series is the fixed-σ runs of one ``data x model x latent_dim`` (``data``: the
    data set with its options, as :func:`c6_frame` gives it); values
    are averaged over seeds at each σ, then checked for strict monotonicity. Where
    a σ has several seeds, each step between consecutive σ must also be larger
    than ``min_step_over_spread`` times the seed range (max − min) at either end:
    a step the seeds disagree on by more than it moves is not a measured trend.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`c6_frame`.
    min_sigmas : int
        Fewest distinct fixed σ a series needs to be judged (claim C6's tolerance).
    min_step_over_spread : float
        Smallest allowed |step| / seed range (claim C6's tolerance).

    Returns
    -------
    pandas.DataFrame
        ``data, model, latent_dim, n_sigmas, sigmas, mse_increasing,
        kl_decreasing, active_units_nonincreasing``, ``mse_step_over_spread`` and
        ``kl_step_over_spread`` (the smallest |step| of the seed means over the
        seed range at its ends; NaN with one seed per σ, inf where the seeds
        agree exactly), ``verdict``. A series with fewer than ``min_sigmas``
        distinct σ is "not measured".
    """
    cols = ["data", "model", "latent_dim", "n_sigmas", "sigmas", "mse_increasing", "kl_decreasing",
            "active_units_nonincreasing", "mse_step_over_spread", "kl_step_over_spread", "verdict"]
    fixed = frame[frame["kind"] == "fixed"] if not frame.empty else frame
    rows = []
    if not fixed.empty:
        for key, g in fixed.groupby(["data", "model", "latent_dim"], sort=True, dropna=False):
            by_sigma = g.groupby("sigma", sort=True)[["mse", "kl", "active_units"]]
            means = by_sigma.mean()
            spread = by_sigma.max() - by_sigma.min()
            spread[by_sigma.count() < 2] = np.nan  # one seed: no spread measured
            n = len(means)
            mse_up = bool(np.all(np.diff(means["mse"].to_numpy()) > 0)) if n >= 2 else False
            kl_down = bool(np.all(np.diff(means["kl"].to_numpy()) < 0)) if n >= 2 else False
            au = means["active_units"].to_numpy()
            au_ok = bool(np.all(np.diff(au) <= 0)) if n >= 2 and np.isfinite(au).all() else False
            mse_res = _smallest_step_over_spread(means["mse"], spread["mse"]) if n >= 2 else np.nan
            kl_res = _smallest_step_over_spread(means["kl"], spread["kl"]) if n >= 2 else np.nan
            resolved = all(np.isnan(r) or r > min_step_over_spread for r in (mse_res, kl_res))
            if n < min_sigmas:
                verdict = not_measured(f"only {n} distinct fixed σ (need {min_sigmas})")
            else:
                verdict = HELD if (mse_up and kl_down and resolved) else NOT_HELD
            rows.append({
                "data": key[0], "model": key[1], "latent_dim": key[2], "n_sigmas": n,
                "sigmas": ", ".join(f"{s:g}" for s in means.index),
                "mse_increasing": mse_up, "kl_decreasing": kl_down,
                "active_units_nonincreasing": au_ok, "mse_step_over_spread": mse_res,
                "kl_step_over_spread": kl_res, "verdict": verdict,
            })
    return pd.DataFrame(rows, columns=cols)


def heldout_ranking(pointwise: dict[str, pd.DataFrame]) -> pd.DataFrame:
    r"""Rank runs scored on the *same* test points by their summed test log p(x).

    For runs :math:`r` with per-point estimates :math:`\ell_{ri} = \log p_r(x_i)`
    (``pointwise.csv`` column ``log_px``, the IWAE estimate), the table gives
    :math:`\sum_i \ell_{ri}`, its standard error :math:`\sqrt{n}\,\mathrm{sd}_i(\ell_{ri})`,
    the difference to the best run and the standard error of that *paired*
    difference, :math:`\sqrt{n}\,\mathrm{sd}_i(\ell_{\mathrm{best},i} - \ell_{ri})`.
    This is held-out data, so no leave-one-out correction is needed.

    Parameters
    ----------
    pointwise : dict of str to pandas.DataFrame
        Run name to its ``pointwise.csv`` frame; all must have the same ``index`` column.

    Returns
    -------
    pandas.DataFrame
        Indexed by run, best first: ``rank, sum_log_px, se, diff, dse, mean_log_px``.
    """
    columns = ["rank", "sum_log_px", "se", "diff", "dse", "mean_log_px"]
    if not pointwise:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({name: pw.set_index("index")["log_px"] for name, pw in pointwise.items()})
    frame = frame.dropna(axis=1, how="any")
    if frame.empty:
        return pd.DataFrame(columns=columns)
    n = len(frame)
    total = frame.sum().sort_values(ascending=False)
    best = total.index[0]
    out = pd.DataFrame(index=total.index)
    out["rank"] = range(1, len(total) + 1)
    out["sum_log_px"] = total
    out["se"] = frame.std(ddof=1).reindex(total.index) * np.sqrt(n)
    out["diff"] = total[best] - total
    diffs = frame[[best]].to_numpy() - frame[total.index].to_numpy()
    out["dse"] = diffs.std(axis=0, ddof=1) * np.sqrt(n)
    out["mean_log_px"] = total / n
    return out
