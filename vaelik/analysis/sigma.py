"""Learned scales against the errors they should converge to (claims C2, C3, C4).

For a fixed decoder mean :math:`\\hat x`, the Gaussian log-likelihood
:math:`\\sum_{n,j} \\log \\mathcal N(x_{nj}; \\hat x_{nj}, \\sigma^2)` is maximised at

.. math:: \\sigma^2 = \\frac{1}{N d} \\sum_{n,j} (x_{nj} - \\hat x_{nj})^2 = \\mathrm{MSE},

so a learned global σ should end with :math:`\\sigma^2/\\mathrm{MSE} \\approx 1` (C2);
per dimension :math:`\\sigma_j^2 = \\mathrm{mean}_n (x_{nj} - \\hat x_{nj})^2` (C3); and for
the Laplace :math:`b = \\mathrm{MAE}` (C4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import SCALED_FAMILIES, family, num
from .runs import RunFileError, load_per_dim

__all__ = ["sigma_table", "sigma_over_epochs", "per_dim_frame", "per_dim_summary"]

_ID = ["run", "likelihood", "scale", "scale_mode", "model", "data", "seed"]


def _ids(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: frame[c] if c in frame.columns else None for c in _ID}, index=frame.index)


def sigma_table(runs: pd.DataFrame) -> pd.DataFrame:
    """C2/C4 table: the final scale of every Normal or Laplace run against its error.

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs` (completed runs are kept).

    Returns
    -------
    pandas.DataFrame
        One row per scaled run: ``run, likelihood, scale, scale_mode, model, data,
        seed``, ``sigma`` (eval.json ``scale``: σ, b, or the RMS of per-dimension
        scales), ``mse``, ``rmse`` (:math:`\\sqrt{\\mathrm{MSE}}`), ``sigma2_over_mse``
        (:math:`\\sigma^2/\\mathrm{MSE}`, Normal only), ``mae``, ``b_over_mae``
        (:math:`b/\\mathrm{MAE}`, Laplace only), ``min_scale``, ``scales_at_bound``.
        Ratios are recomputed from ``scale`` and the errors (eval.json's own
        ``sigma2_over_mse``/``b_over_mae`` are not trusted blindly).
    """
    if runs.empty:
        return pd.DataFrame(columns=[*_ID, "sigma", "mse", "rmse", "sigma2_over_mse", "mae",
                                     "b_over_mae", "min_scale", "scales_at_bound"])
    done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
    fam = done["likelihood"].map(family)
    done = done[fam.isin(SCALED_FAMILIES)]
    fam = fam[done.index]
    out = _ids(done)
    out["sigma"] = num(done, "scale_value")
    out["mse"] = num(done, "mse")
    out["rmse"] = np.sqrt(out["mse"])
    out["sigma2_over_mse"] = np.where(fam == "normal", out["sigma"] ** 2 / out["mse"], np.nan)
    out["mae"] = num(done, "mae")
    out["b_over_mae"] = np.where(fam == "laplace", out["sigma"] / out["mae"], np.nan)
    out["min_scale"] = num(done, "min_scale")
    out["scales_at_bound"] = num(done, "scales_at_bound")
    return out.reset_index(drop=True)


def sigma_over_epochs(metrics: pd.DataFrame) -> pd.DataFrame:
    """Over-training frame: scale against √MSE (or MAE) per epoch and split.

    Parameters
    ----------
    metrics : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.metrics`.

    Returns
    -------
    pandas.DataFrame
        One row per run x epoch x split of scaled runs: ``run, likelihood,
        scale, scale_mode, epoch, split``, ``sigma`` (metrics ``scale``), ``rmse``
        (:math:`\\sqrt{\\mathrm{MSE}}`), ``mae``, ``target`` (``rmse`` for Normal,
        ``mae`` for Laplace: what the scale should track) and ``ratio``
        (:math:`\\sigma^2/\\mathrm{MSE}` for Normal, :math:`b/\\mathrm{MAE}` for Laplace).
        A train ratio far below the test ratio late in training is over-fitting
        of the scale to the training reconstructions.
    """
    cols = ["run", "likelihood", "scale", "scale_mode", "epoch", "split", "sigma", "rmse", "mae",
            "target", "ratio"]
    if metrics.empty:
        return pd.DataFrame(columns=cols)
    fam = metrics["likelihood"].map(family)
    keep = metrics[fam.isin(SCALED_FAMILIES) & num(metrics, "scale_value").notna()]
    fam = fam[keep.index]
    out = keep[["run", "likelihood", "scale", "scale_mode", "epoch", "split"]].copy()
    out["sigma"] = num(keep, "scale_value")
    out["rmse"] = np.sqrt(num(keep, "mse"))
    out["mae"] = num(keep, "mae")
    out["target"] = np.where(fam == "laplace", out["mae"], out["rmse"])
    out["ratio"] = np.where(fam == "laplace", out["sigma"] / out["mae"], out["sigma"] ** 2 / out["rmse"] ** 2)
    return out[cols].sort_values(["run", "split", "epoch"]).reset_index(drop=True)


def per_dim_frame(runs: pd.DataFrame, modes: tuple[str, ...] = ("per_dim", "predicted")) -> pd.DataFrame:
    """C3 frame: per-dimension scale against per-dimension RMSE (``per_dim.csv``).

    Parameters
    ----------
    runs : pandas.DataFrame
        :attr:`vaelik.analysis.Runs.runs`.
    modes : tuple of str
        Scale modes to read (default ``per_dim`` and ``predicted``).

    Returns
    -------
    pandas.DataFrame
        One row per run x dimension: ``run, likelihood, scale_mode, image_shape,
        dim, sigma, mse, rmse, mae, target`` (``rmse`` for Normal, ``mae`` for
        Laplace), ``min_scale`` and ``at_bound`` (σ_j within 1 % of the lower
        bound). ``frame.attrs["problems"]`` lists runs whose ``per_dim.csv``
        could not be read.
    """
    cols = ["run", "likelihood", "scale_mode", "image_shape", "dim", "sigma", "mse", "rmse", "mae",
            "target", "min_scale", "at_bound"]
    frames, problems = [], []
    if not runs.empty:
        done = runs[runs["completed"].astype(bool)] if "completed" in runs.columns else runs
        for _, row in done.iterrows():
            if row.get("scale_mode") not in modes or family(row["likelihood"]) not in SCALED_FAMILIES:
                continue
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
            f["target"] = f["mae"] if family(row["likelihood"]) == "laplace" else f["rmse"]
            min_scale = float(row["min_scale"]) if pd.notna(row.get("min_scale")) else np.nan
            f["min_scale"] = min_scale
            f["at_bound"] = f["sigma"] <= 1.01 * min_scale if np.isfinite(min_scale) else False
            for c in ("run", "likelihood", "scale_mode", "image_shape"):
                f[c] = row.get(c)
            frames.append(f[cols])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    out.attrs["problems"] = problems
    return out


def per_dim_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`per_dim_frame` per run (C3).

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run, likelihood, scale_mode, n_dims, n_at_bound``,
        ``correlation`` (Pearson r of σ_j and the target over all dims),
        ``median_ratio`` (median of :math:`\\sigma_j^2/\\mathrm{MSE}_j` for Normal,
        :math:`b_j/\\mathrm{MAE}_j` for Laplace, over dims not at the bound and
        with a non-zero error).
    """
    cols = ["run", "likelihood", "scale_mode", "n_dims", "n_at_bound", "correlation", "median_ratio"]
    rows = []
    for run, f in frame.groupby("run", sort=True):
        lap = family(f["likelihood"].iloc[0]) == "laplace"
        sigma = f["sigma"].to_numpy(float)
        target = f["target"].to_numpy(float)
        ok = ~f["at_bound"].to_numpy(bool) & (target > 0) & np.isfinite(sigma)
        ratio = sigma[ok] / target[ok] if lap else sigma[ok] ** 2 / target[ok] ** 2
        both = np.isfinite(sigma) & np.isfinite(target)
        corr = (
            float(np.corrcoef(sigma[both], target[both])[0, 1])
            if both.sum() > 2 and np.std(sigma[both]) > 0 and np.std(target[both]) > 0
            else np.nan
        )
        rows.append({
            "run": run,
            "likelihood": f["likelihood"].iloc[0],
            "scale_mode": f["scale_mode"].iloc[0],
            "n_dims": int(len(f)),
            "n_at_bound": int(f["at_bound"].astype(bool).sum()),
            "correlation": corr,
            "median_ratio": float(np.median(ratio)) if ratio.size else np.nan,
        })
    return pd.DataFrame(rows, columns=cols)
