"""Figures: one function per figure; each takes tidy frames and returns a Figure.

Computing the data (``sigma``, ``identity``, ``compare``) is kept apart from
drawing it. Every function uses the Agg backend-compatible object API (no
``pyplot`` state is left behind: figures are created with
:class:`matplotlib.figure.Figure`), labels axes with units, and never shows.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

__all__ = [
    "plot_sigma_over_epochs",
    "plot_identity",
    "plot_test_metrics",
    "plot_reconstructions",
    "plot_prior_samples",
    "plot_scale_heatmap",
    "plot_per_dim_scale",
    "plot_sigma_sweep",
    "empty_figure",
]

_MAX_PANELS = 12


def empty_figure(message: str) -> Figure:
    """A small figure that says why there is nothing to draw."""
    fig = Figure(figsize=(5, 1.2))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _grid(n: int, ncols: int = 4, size: float = 3.0) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size * ncols, size * 0.85 * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _one(values: pd.Series, default: str) -> str:
    """The labels in ``values`` joined ("σ", "σ or b"); ``default`` when there are none."""
    found = [str(v) for v in pd.unique(values.dropna())] if len(values) else []
    return " or ".join(found) if found else default


def plot_sigma_over_epochs(frame: pd.DataFrame) -> Figure:
    """Learned scale against its target (√MSE, MAE, ... as the family states) over epochs.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`vaelik.analysis.sigma.sigma_over_epochs` (``symbol`` and ``target_label``
        label the lines).
    """
    frame = frame[frame["scale_mode"].isin(["learned", "optimal", "bayesian", "per_dim", "predicted"])
                  & frame["split"].isin(["train", "test"])]  # not the validation split
    if frame.empty:
        return empty_figure("No learned scales in these runs.")
    splits = sorted(frame["split"].unique())
    fig, axes = _grid(len(splits), ncols=2, size=5.0)
    runs = sorted(frame["run"].unique())
    palette = dict(zip(runs, sns.color_palette("tab10", len(runs)), strict=False))
    for ax, split in zip(axes, splits, strict=False):
        part = frame[frame["split"] == split]
        for run, g in part.groupby("run", sort=True):
            ax.plot(g["epoch"], g["sigma"], color=palette[run], label=f"{run}: {g['symbol'].iloc[0]}")
            if g["target"].notna().any():
                ax.plot(g["epoch"], g["target"], color=palette[run], linestyle="--",
                        label=f"{run}: {g['target_label'].iloc[0]}")
        ax.set_title(f"{split} split")
        ax.set_xlabel("epoch")
        ax.set_ylabel("scale and its target (data units)")
    axes[-1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Learned scale (solid) against {_one(frame['target_label'], 'its target')} (dashed)")
    return fig


def plot_identity(points: pd.DataFrame, identity: pd.DataFrame) -> Figure:
    """Reconstruction log-likelihood against the equivalent summed loss, one panel per run.

    Parameters
    ----------
    points : pandas.DataFrame
        ``run, loss_sum, recon`` per test example
        (:func:`vaelik.analysis.identity.pointwise_frame`).
    identity : pandas.DataFrame
        :func:`vaelik.analysis.identity.identity_table`: the line the family states is
        drawn where defined, the least-squares line always; the x axis is labelled
        with the run's ``loss_sum_label``.
    """
    if points.empty or identity.empty:
        return empty_figure("No pointwise.csv in these runs.")
    rows = identity.head(_MAX_PANELS)
    fig, axes = _grid(len(rows))
    for ax, (_, row) in zip(axes, rows.iterrows(), strict=False):
        pts = points[points["run"] == row["run"]]
        ax.scatter(pts["loss_sum"], pts["recon"], s=8, alpha=0.6, label="test examples")
        xs = np.linspace(pts["loss_sum"].min(), pts["loss_sum"].max(), 50) if len(pts) else np.array([])
        if xs.size and np.isfinite(row["slope_theory"]) and np.isfinite(row["intercept_theory"]):
            ax.plot(xs, row["intercept_theory"] + row["slope_theory"] * xs, color="k", label="theory")
        if xs.size and np.isfinite(row["slope"]):
            ax.plot(xs, row["intercept"] + row["slope"] * xs, color="C3", linestyle=":",
                    label=f"fit, R²={row['r2']:.4g}")
        label = row.get("loss_sum_label")
        ax.set_xlabel(textwrap.fill(label if isinstance(label, str) and label else "summed loss", 26))
        ax.set_ylabel("recon log p(x|z) (nats)")
        ax.set_title(f"{row['run']}", fontsize="small")
        ax.legend(fontsize="xx-small")
    fig.suptitle("Reconstruction term against the equivalent summed loss, per test example")
    return fig


_METRIC_LABELS = {
    "mse": "test MSE (per element)",
    "mae": "test MAE (per element)",
    "bce": "test BCE (nats per element)",
    "kl": "test KL (nats per point)",
}


def plot_test_metrics(runs: pd.DataFrame, metrics: tuple[str, ...] = ("mse", "mae", "bce", "kl")) -> Figure:
    """Test metrics per likelihood and scale, bars = mean, error bars = sd over seeds.

    Parameters
    ----------
    runs : pandas.DataFrame
        Completed rows of :attr:`vaelik.analysis.Runs.runs`.
    """
    if runs.empty:
        return empty_figure("No completed runs.")
    data = runs.copy()
    data["likelihood"] = data["likelihood"].astype(str)
    setting = data["model"].astype(str) + " on " + data["data"].astype(str)
    if setting.nunique() > 1:  # do not average over different models or data sets
        data["likelihood"] = data["likelihood"] + "\n(" + setting + ")"
    data["scale"] = data["scale"].astype(str)
    fig, axes = _grid(len(metrics), ncols=2, size=5.0)
    for i, (ax, metric) in enumerate(zip(axes, metrics, strict=False)):
        data[metric] = pd.to_numeric(data.get(metric), errors="coerce")
        sns.barplot(data=data, x="likelihood", y=metric, hue="scale", errorbar="sd", ax=ax,
                    legend=i == 0)
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.set_xlabel("likelihood")
        ax.tick_params(axis="x", labelrotation=20)
    if axes and axes[0].get_legend() is not None:
        # outside the axes, so that no bar hides behind it
        sns.move_legend(axes[0], "upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                        title="scale", frameon=False)
    fig.suptitle("Test metrics (mean ± sd over seeds; losses of the observation mean)")
    return fig


def _is_image(shape: np.ndarray) -> bool:
    """``image_shape`` of an image: ``(C, H, W)`` with C = 1 or 3, or ``(H, W)`` (older runs)."""
    shape = np.asarray(shape).ravel()
    return shape.size == 2 or (shape.size == 3 and int(shape[0]) in (1, 3))


def _pixels(row: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One flattened image as ``imshow`` takes it: (H, W) grey, or (H, W, 3) colour in [0, 1]."""
    img = np.asarray(row, float).reshape(shape)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0)
    return img


def _image_rows(images: Mapping[str, Mapping[str, np.ndarray]], keys: list[tuple[str, str]],
                n: int, title: str) -> Figure:
    labels = list(images)
    rows = [(label, key, row_title) for label in labels for key, row_title in keys]
    ncols = max(1, min(n, min(images[label][key].shape[0] for label, key, _ in rows)))
    fig = Figure(figsize=(1.1 * ncols + 1.5, 1.15 * len(rows) + 0.6), layout="constrained")
    grid = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (label, key, row_title) in enumerate(rows):
        arrays = images[label]
        shape = tuple(int(s) for s in arrays["image_shape"])
        for c in range(ncols):
            ax = grid[r][c]
            ax.imshow(_pixels(arrays[key][c], shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        grid[r][0].set_ylabel(f"{label}\n{row_title}", fontsize="x-small", rotation=0,
                              ha="right", va="center")
    fig.suptitle(title)
    return fig


def plot_reconstructions(images: Mapping[str, Mapping[str, np.ndarray]], n: int = 8) -> Figure:
    """Originals above reconstructions (observation mean at z = E_q[z]), one pair of rows per run.

    Parameters
    ----------
    images : mapping of label to the arrays of :func:`vaelik.analysis.runs.load_images`
        Only entries whose ``image_shape`` is an image's (``(C, H, W)`` with C = 1
        or 3, drawn grey or in colour; ``(H, W)`` of older runs) are drawn.
    """
    images = {k: v for k, v in images.items() if _is_image(v["image_shape"])}
    if not images:
        return empty_figure("No image data in these runs.")
    return _image_rows(images, [("originals", "original"), ("reconstructions", "reconstruction")],
                       n, "Originals and reconstructions per likelihood (pixel value 0–1)")


def plot_prior_samples(images: Mapping[str, Mapping[str, np.ndarray]], n: int = 8) -> Figure:
    """Observation means at z ~ N(0, I), one row per run."""
    images = {k: v for k, v in images.items() if _is_image(v["image_shape"])}
    if not images:
        return empty_figure("No image data in these runs.")
    return _image_rows(images, [("prior_samples", "prior sample")], n,
                       "Decoded prior samples per likelihood (observation mean, 0–1)")


def plot_scale_heatmap(per_dim: pd.DataFrame) -> Figure:
    """Per-pixel scale σ_j as a heat map, one panel per per-dim / predicted run.

    Parameters
    ----------
    per_dim : pandas.DataFrame
        :func:`vaelik.analysis.sigma.per_dim_frame`; ``image_shape`` like ``"1x8x8"``
        (C x H x W; the C channels side by side) or ``"8x8"`` (older runs); a strip
        is drawn when the data are not images.
    """
    if per_dim.empty:
        return empty_figure("No per-dimension or predicted scales in these runs.")
    runs = sorted(per_dim["run"].unique())[:_MAX_PANELS]
    fig, axes = _grid(len(runs), size=3.2)
    for ax, run in zip(axes, runs, strict=False):
        g = per_dim[per_dim["run"] == run].sort_values("dim")
        values = g["sigma"].to_numpy(float)
        shape_text = g["image_shape"].iloc[0]
        try:
            shape = tuple(int(s) for s in str(shape_text).split("x"))
            img = values.reshape(shape)
            if img.ndim == 3:  # (C, H, W): the channels side by side
                img = np.concatenate(list(img), axis=1)
        except (ValueError, TypeError):
            img = values[None, :]
        im = ax.imshow(img, cmap="viridis")
        fig.colorbar(im, ax=ax, label=f"{_one(g['symbol'], 'scale')}_j (data units)")
        ax.set_title(f"{run} ({g['scale_mode'].iloc[0]})", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Per-pixel scale (pixels at the lower bound are the darkest)")
    return fig


def plot_per_dim_scale(per_dim: pd.DataFrame) -> Figure:
    """Per-dimension scale against its per-dimension target (e.g. RMSE_j), with the identity line (C3)."""
    if per_dim.empty:
        return empty_figure("No per-dimension or predicted scales in these runs.")
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    sns.scatterplot(data=per_dim.assign(at_bound=per_dim["at_bound"].astype(bool)), x="target",
                    y="sigma", hue="run", style="at_bound", ax=ax, s=25)
    hi = float(np.nanmax(np.r_[per_dim["target"].to_numpy(float), per_dim["sigma"].to_numpy(float)]))
    symbol, target = _one(per_dim["symbol"], "scale"), _one(per_dim["target_label"], "target")
    ax.plot([0, hi], [0, hi], color="k", linewidth=0.8, label=f"{symbol}_j = {target}_j")
    ax.set_xlabel(f"per-dimension {target}_j (data units)")
    ax.set_ylabel(f"per-dimension scale {symbol}_j (data units)")
    ax.legend(fontsize="x-small")
    ax.set_title("C3: per-dimension scale against per-dimension error")
    return fig


def plot_sigma_sweep(frame: pd.DataFrame) -> Figure:
    """C6: MSE, KL and active units against a fixed σ (log x axis), learned σ marked.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`vaelik.analysis.compare.c6_frame`.
    """
    fixed = frame[frame["kind"] == "fixed"] if not frame.empty else frame
    if fixed.empty:
        return empty_figure("No fixed-σ Normal runs in these runs.")
    learned = frame[(frame["kind"] == "learned") & frame["data"].isin(fixed["data"].unique())]
    labels = {"mse": "test MSE (per element)", "kl": "test KL (nats per point)",
              "active_units": "active units (count)"}
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, labels, strict=False):
        sns.lineplot(data=fixed, x="sigma", y=metric, hue="data", marker="o", errorbar="sd", ax=ax,
                     legend=metric == "mse")
        if not learned.empty:
            ax.scatter(learned["sigma"], learned[metric], marker="*", s=160, color="C3", zorder=5,
                       label="learned σ")
        ax.set_xscale("log")
        ax.set_xlabel("fixed σ (data units, log scale)")
        ax.set_ylabel(labels[metric])
    axes[0].legend(fontsize="x-small")
    fig.suptitle("C6: a fixed σ acts as β (mean ± sd over seeds; ★ = learned-σ runs)")
    return fig
