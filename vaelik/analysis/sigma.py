r"""Learned scales against the errors they should converge to (claims C2, C3, C4).

Each run states its family's facts (``eval.json`` ``family``): the scale symbol
(σ, b, ...), the loss, and the power :math:`p` with which a learned global scale
:math:`s` converges to :math:`s^p = \mathrm{loss}` for a fixed decoder mean. For a
Normal, :math:`\sum_{n,j} \log \mathcal N(x_{nj}; \hat x_{nj}, \sigma^2)` is maximised at

.. math:: \sigma^2 = \frac{1}{N d} \sum_{n,j} (x_{nj} - \hat x_{nj})^2 = \mathrm{MSE},

so :math:`\sigma^2/\mathrm{MSE} \approx 1` after training (C2); per dimension
:math:`\sigma_j^2 = \mathrm{mean}_n (x_{nj} - \hat x_{nj})^2` (C3); for a Laplace
:math:`b = \mathrm{MAE}` (C4). This module reads those facts: it names no family.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import FAMILY_PREFIX, facts_of, num
from .runs import RunFileError, load_per_dim

__all__ = ["sigma_table", "sigma_over_epochs", "per_dim_frame", "per_dim_summary"]

_ID = ["run", "likelihood", "family", "scale", "scale_mode", "model", "data", "seed"]
_LABELS = ["symbol", "target_label", "ratio_label"]


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: frame[c] if c in frame.columns else None for c in _ID}, index=frame.index)


def _completed(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs


def _scaled(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Rows whose family has a scale, and the facts of each row (by index)."""
    cols = [c for c in frame.columns if c == "family" or str(c).startswith(FAMILY_PREFIX)]
    cache: dict = {}
    facts = {}
    for idx, values in zip(frame.index, frame[cols].itertuples(index=False, name=None), strict=False):
        key = tuple(str(v) for v in values)  # one lookup per distinct set of facts
        if key not in cache:
            cache[key] = facts_of(dict(zip(cols, values, strict=False)))
        if cache[key] is not None and cache[key].has_scale:
            facts[idx] = cache[key]
    return frame.loc[list(facts)], facts


def _loss(frame: pd.DataFrame, facts: dict) -> pd.Series:
    """Each row's value of its family's loss column (``mse``, ``mae``, ...)."""
    columns = {name: num(frame, name) for name in {f.loss for f in facts.values()}}
    return pd.Series([columns[facts[i].loss][i] for i in frame.index], index=frame.index, dtype=float)


def _labels(out: pd.DataFrame, facts: dict) -> None:
    out["symbol"] = [facts[i].scale_symbol for i in out.index]
    out["target_label"] = [facts[i].target_label for i in out.index]
    out["ratio_label"] = [facts[i].ratio_label for i in out.index]


def sigma_table(runs: pd.DataFrame) -> pd.DataFrame:
    r"""C2/C4 table: the final scale of every run whose family has a scale, against its error.

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs` (completed runs are kept).

    Returns
    -------
    pandas.DataFrame
        One row per run of a family with a scale symbol: ``run, likelihood, family, scale,
        scale_mode, model, data, seed``; ``symbol`` (σ, b, ... from the family's facts),
        ``sigma`` (eval.json ``scale``: the scale, or the RMS of per-dimension scales),
        ``target_label`` and ``target`` (what the scale should converge to, e.g. √MSE or
        MAE; NaN when the family states none), ``ratio_label`` and ``ratio``
        (:math:`s^p/\mathrm{loss}`, e.g. σ²/MSE or b/MAE, recomputed from ``scale`` and
        the loss of the test split, not copied from eval.json), ``ratio_train`` (the same
        on the training split, eval.json ``scale_ratio_train``: NaN unless the run has a
        learned global scale and wrote it), ``mse``, ``rmse``
        (:math:`\sqrt{\mathrm{MSE}}`), ``mae``, ``min_scale``, ``scales_at_bound``.
    """
    cols = [*_ID, "symbol", "sigma", "target_label", "target", "ratio_label", "ratio", "ratio_train",
            "mse", "rmse", "mae", "min_scale", "scales_at_bound"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    done, facts = _scaled(_completed(runs))
    out = _ids(done)
    _labels(out, facts)
    out["sigma"] = num(done, "scale_value")
    loss = _loss(done, facts)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero loss gives inf, not a warning
        out["target"] = [facts[i].target(loss[i]) for i in done.index]
        out["ratio"] = [facts[i].ratio(out["sigma"][i], loss[i]) for i in done.index]
    out["ratio_train"] = num(done, "scale_ratio_train")
    out["mse"] = num(done, "mse")
    out["rmse"] = np.sqrt(out["mse"])
    out["mae"] = num(done, "mae")
    out["min_scale"] = num(done, "min_scale")
    out["scales_at_bound"] = num(done, "scales_at_bound")
    return out[cols].reset_index(drop=True)


def sigma_over_epochs(metrics: pd.DataFrame) -> pd.DataFrame:
    r"""Over-training frame: the scale against its target per epoch and split.

    Parameters
    ----------
    metrics : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.metrics` (with the ``family`` columns joined).

    Returns
    -------
    pandas.DataFrame
        One row per run x epoch x split of runs with a measured scale: ``run,
        likelihood, family, scale, scale_mode, epoch, split``, ``symbol``, ``sigma``
        (metrics ``scale``), ``rmse`` (:math:`\sqrt{\mathrm{MSE}}`), ``mae``,
        ``target_label`` and ``target`` (what the scale should track, e.g. √MSE or
        MAE), ``ratio_label`` and ``ratio`` (e.g. σ²/MSE, b/MAE). A train ratio far
        below the test ratio late in training is over-fitting of the scale to the
        training reconstructions.
    """
    cols = ["run", "likelihood", "family", "scale", "scale_mode", "epoch", "split", "symbol", "sigma",
            "rmse", "mae", "target_label", "target", "ratio_label", "ratio"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    measured = metrics[num(metrics, "scale_value").notna()]
    keep, facts = _scaled(measured)
    out = pd.DataFrame({c: keep[c] if c in keep.columns else None
                        for c in ["run", "likelihood", "family", "scale", "scale_mode", "epoch", "split"]},
                       index=keep.index)
    _labels(out, facts)
    out["sigma"] = num(keep, "scale_value")
    out["rmse"] = np.sqrt(num(keep, "mse"))
    out["mae"] = num(keep, "mae")
    loss = _loss(keep, facts)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["target"] = [facts[i].target(loss[i]) for i in keep.index]
        out["ratio"] = [facts[i].ratio(out["sigma"][i], loss[i]) for i in keep.index]
    return out[cols].sort_values(["run", "split", "epoch"]).reset_index(drop=True)


def per_dim_frame(runs: pd.DataFrame, modes: tuple[str, ...] = ("per_dim", "predicted")) -> pd.DataFrame:
    r"""C3 frame: per-dimension scale against per-dimension error (``per_dim.csv``).

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs`.
    modes : tuple of str
        Scale modes to read (default ``per_dim`` and ``predicted``).

    Returns
    -------
    pandas.DataFrame
        One row per run x dimension: ``run, likelihood, family, scale_mode,
        image_shape, dim, symbol, sigma, mse, rmse, mae`` (test split), ``target_label``
        and ``target`` (the dimension's :math:`\mathrm{loss}_j^{1/p}`, e.g. RMSE_j or
        MAE_j), ``ratio`` (:math:`s_j^p/\mathrm{loss}_j`), ``ratio_split`` (the split
        whose per-dimension loss ``target`` and ``ratio`` use: ``train``, where the scale
        is fitted, when ``per_dim.csv`` has it, else ``test``), ``min_scale`` and
        ``at_bound`` (s_j within 1 % of the lower bound). ``frame.attrs["problems"]``
        lists runs whose ``per_dim.csv`` could not be read.
    """
    cols = ["run", "likelihood", "family", "scale_mode", "image_shape", "dim", "symbol", "sigma",
            "mse", "rmse", "mae", "target_label", "target", "ratio", "ratio_split", "min_scale",
            "at_bound"]
    frames, problems = [], []
    if not runs.empty:
        done, facts = _scaled(_completed(runs))
        for idx, row in done.iterrows():
            if row.get("scale_mode") not in modes:
                continue
            fact = facts[idx]
            try:
                pd_ = load_per_dim(row["path"])
            except RunFileError as exc:
                problems.append(f"{row['run']}: {exc}")
                continue
            f = pd.DataFrame({
                "dim": pd_["dim"].astype(int),
                "sigma": pd_["scale"],
                "mse": pd_["mse"],
                "rmse": np.sqrt(pd_["mse"]),
                "mae": pd_["mae"],
            })
            # the scale is fitted on the training split: compare with its errors there where the
            # run wrote them (mse_train, ...), else with the test split's (older runs)
            train_col = f"{fact.loss}_train"
            split = "train" if train_col in pd_.columns else "test"
            col = train_col if split == "train" else fact.loss
            loss = pd_[col] if col in pd_.columns else pd.Series(np.nan, index=pd_.index)
            f["target"] = fact.target(loss)
            f["ratio"] = fact.ratio(f["sigma"], loss)
            f["ratio_split"] = split
            min_scale = float(row["min_scale"]) if pd.notna(row.get("min_scale")) else np.nan
            f["min_scale"] = min_scale
            f["at_bound"] = f["sigma"] <= 1.01 * min_scale if np.isfinite(min_scale) else False
            f["symbol"], f["target_label"] = fact.scale_symbol, fact.target_label
            for c in ("run", "likelihood", "family", "scale_mode", "image_shape"):
                f[c] = row.get(c)
            frames.append(f[cols])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    out.attrs["problems"] = problems
    return out


def per_dim_summary(frame: pd.DataFrame, quantile: float = 0.9) -> pd.DataFrame:
    r"""Summarise :func:`per_dim_frame` per run (C3).

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`per_dim_frame`.
    quantile : float
        Which quantile of :math:`|s_j^p/\mathrm{loss}_j - 1|` to report as
        ``ratio_dev_quantile`` (claim C3's ``quantile`` tolerance; default 0.9).

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run, likelihood, family, scale_mode, n_dims, n_at_bound``,
        ``n_judged`` (dims not at the bound with a non-zero error: those the ratios
        are taken over), ``correlation`` (Pearson r of the scales and their targets
        over all dims), ``median_ratio`` (median of :math:`s_j^p/\mathrm{loss}_j`,
        e.g. :math:`\sigma_j^2/\mathrm{MSE}_j`, over the judged dims),
        ``ratio_dev_quantile`` (the ``quantile``-quantile of
        :math:`|s_j^p/\mathrm{loss}_j - 1|` over the judged dims: how far the
        scales of most dims are from their own error), ``ratio_min``,
        ``ratio_max`` (over the judged dims) and ``target_cv`` (coefficient of
        variation sd/mean of the targets, e.g. RMSE_j, over all dims: how much the
        per-dimension errors spread; a correlation between scales and targets says
        little when they barely do), ``ratio_split`` (the split of the errors the
        ratios use: ``train`` or, for older runs, ``test``).
    """
    cols = ["run", "likelihood", "family", "scale_mode", "n_dims", "n_at_bound", "n_judged", "correlation",
            "median_ratio", "ratio_dev_quantile", "ratio_min", "ratio_max", "target_cv", "ratio_split"]
    rows = []
    for run, f in frame.groupby("run", sort=True):
        sigma = f["sigma"].to_numpy(float)
        target = f["target"].to_numpy(float)
        ratio = f["ratio"].to_numpy(float)
        ok = ~f["at_bound"].to_numpy(bool) & (target > 0) & np.isfinite(ratio)
        both = np.isfinite(sigma) & np.isfinite(target)
        corr = (
            float(np.corrcoef(sigma[both], target[both])[0, 1])
            if both.sum() > 2 and np.std(sigma[both]) > 0 and np.std(target[both]) > 0
            else np.nan
        )
        mean_target = float(np.mean(target[both])) if both.any() else np.nan
        cv = float(np.std(target[both]) / mean_target) if both.any() and mean_target > 0 else np.nan
        judged = ratio[ok]
        rows.append({
            "run": run,
            "likelihood": f["likelihood"].iloc[0],
            "family": f["family"].iloc[0],
            "scale_mode": f["scale_mode"].iloc[0],
            "n_dims": int(len(f)),
            "n_at_bound": int(f["at_bound"].astype(bool).sum()),
            "n_judged": int(ok.sum()),
            "correlation": corr,
            "median_ratio": float(np.median(judged)) if ok.any() else np.nan,
            "ratio_dev_quantile": float(np.quantile(np.abs(judged - 1), quantile)) if ok.any() else np.nan,
            "ratio_min": float(judged.min()) if ok.any() else np.nan,
            "ratio_max": float(judged.max()) if ok.any() else np.nan,
            "target_cv": cv,
            "ratio_split": f["ratio_split"].iloc[0] if "ratio_split" in f.columns else "test",
        })
    return pd.DataFrame(rows, columns=cols)
