r"""Which likelihood fits this data best: families ranked by test bits/dim on the same discrete data.

Bits/dim compare across families only when they are bits of the *same discrete
data*: a discretised family's exact log mass (``bits_per_dim_kind`` ``exact``)
and a density's bound on dequantised data (``bound``) on one data set (its data
identity, :func:`vaelik.analysis._common.data_identity`) and one ``scored_data``
(``levels=256``, ``binary``, ...). A Bernoulli on binarised data is another data
set and is ranked in a group of its own. Everything else is listed with the reason
(:func:`not_ranked`): a Bernoulli on grey levels, a deterministic encoder, a
density on continuous data, a run written before the kinds existed.

Per test image i of a run, from ``pointwise.csv`` ``log_px`` (the IWAE estimate),

.. math::
    b_i = -\frac{\log p(x_i) - d \log L_\mathrm{deq}}{d \ln 2},

with :math:`L_\mathrm{deq}` the levels a density's data were dequantised from
(no correction for an exact mass), the same conversion as ``eval.json``'s
``bits_per_dim``. A *configuration* (likelihood, scale, model, network, latent
and hidden sizes) pools its runs' images over seeds: its bits/dim is the mean
:math:`\bar b` of its N pooled values and ``se`` = sd(b)/√N. Configurations are
ranked by :math:`\bar b`, lowest first. Against the best one, images are paired by
test index within one scored split (data identity, seed and test size: the same
test images, and for dequantised data the same noise); over the M pairs,
:math:`\delta_j = b_j - b^\mathrm{best}_j`, ``diff`` = mean(δ) and

.. math::
    \mathrm{paired\ se} = \sqrt{\frac{\sum_j (\delta_j - \bar\delta)^2}{M (M - 1)}} .
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._claim import converged_mask, is_true
from ._common import data_id_of, num, scored_split

__all__ = ["ENTRY_KEYS", "RANK_COLUMNS", "RANKED_KINDS", "Ranking", "bits_per_image",
           "rank_families", "ranking_groups", "not_ranked"]

#: the bits/dim kinds that are bits of discrete data (eval.json ``bits_per_dim_kind``)
RANKED_KINDS = ("exact", "bound")

#: the runs-table columns that make one configuration (its runs differ by seed only)
ENTRY_KEYS = ("likelihood", "scale", "model", "network", "latent_dim", "hidden_dim")

#: columns of one group's ranking table
RANK_COLUMNS = ["rank", "likelihood", "scale", "model", "network", "kind", "runs", "images",
                "bits_per_dim", "se", "diff", "paired_se", "pairs", "mse", "learned_scale",
                "active_units", "converged"]


@dataclass(frozen=True)
class Ranking:
    """The ranking of one group of runs scoring the same discrete data.

    Attributes
    ----------
    data_id : str
        The data identity (data set and options).
    scored_data : str
        ``levels=L`` or ``binary``.
    table : pandas.DataFrame
        :data:`RANK_COLUMNS`, best first.
    """

    data_id: str
    scored_data: str
    table: pd.DataFrame

    @property
    def caption(self) -> str:
        """What the table ranks, in words."""
        what = "binarised data" if self.scored_data == "binary" else self.scored_data.replace("=", " = ")
        return (f"Which likelihood fits {self.data_id} best ({what}): test bits/dim, lower is better "
                "(bound: a dequantised density's upper bound; diff and paired se against the best, "
                "paired over test images)")


def bits_per_image(log_px: pd.Series | np.ndarray, d: int, dequantised: float | None) -> np.ndarray:
    r"""Bits/dim of each test image: :math:`-(\log p(x_i) - d \log L_\mathrm{deq}) / (d \ln 2)`.

    Parameters
    ----------
    log_px : array-like
        ``pointwise.csv`` ``log_px``, nats per image.
    d : int
        Dimensions per image.
    dequantised : float or None
        L of a density scored on dequantised data (``eval.json`` ``dequantised``);
        None or NaN for an exact mass.

    Examples
    --------
    >>> float(bits_per_image([-784 * math.log(256)], 784, None)[0])
    8.0
    >>> float(bits_per_image([0.0], 784, 256)[0])
    8.0
    """
    correction = 0.0 if dequantised is None or not math.isfinite(float(dequantised)) else \
        d * math.log(float(dequantised))
    return -(np.asarray(log_px, dtype=float) - correction) / (d * math.log(2))


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as text, ``""`` where missing."""
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _ranked_mask(runs: pd.DataFrame) -> pd.Series:
    comparable = runs["comparable"].map(is_true) if "comparable" in runs.columns else \
        pd.Series(False, index=runs.index)
    kinds = _text(runs, "bits_per_dim_kind").isin(RANKED_KINDS)
    scored = _text(runs, "scored_data") != ""
    finite = np.isfinite(num(runs, "bits_per_dim"))
    return comparable & kinds & scored & finite


def not_ranked(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run the ranking leaves out, with the reason: ``run, likelihood, data, reason``.

    Parameters
    ----------
    runs : pandas.DataFrame
        The completed runs (:attr:`vaelik.analysis.Runs.completed`).
    """
    cols = ["run", "likelihood", "data", "reason"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    left = runs[~_ranked_mask(runs)]
    reasons = []
    for _, row in left.iterrows():
        kind = _text(left.loc[[row.name]], "bits_per_dim_kind").iloc[0]
        if not is_true(row.get("comparable")):
            reason = row.get("comparable_reason")
            reasons.append(str(reason) if isinstance(reason, str) and reason
                           else "comparable is not true in eval.json")
        elif kind == "density":
            if str(row.get("dequantise")) == "auto":
                reasons.append("a density on continuous data (no grey levels): its bits/dim are "
                               "bits of nothing discrete")
            else:
                reasons.append("a density on the grey levels themselves (dequantise: none, or a run "
                               "older than dequantisation): not a probability of discrete data; "
                               "train with --dequantise auto")
        elif kind == "":
            reasons.append("eval.json has no bits_per_dim_kind (written by an older vaelik); "
                           "re-run `vaelik evaluate` on it")
        else:
            reasons.append("no finite bits/dim")
    return pd.DataFrame({"run": left["run"].astype(str), "likelihood": _text(left, "likelihood"),
                         "data": data_id_of(left), "reason": reasons}, columns=cols).reset_index(drop=True)


def _scale_text(row: pd.Series) -> str:
    value = row.get("scale_value")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if math.isnan(value):
        return "n/a"
    symbol = row.get("family_scale_symbol")
    symbol = symbol if isinstance(symbol, str) and symbol else "scale"
    return f"{symbol} = {value:.4g}"


def rank_families(group: pd.DataFrame, bits: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Rank the configurations of one group of runs that score the same discrete data.

    Parameters
    ----------
    group : pandas.DataFrame
        Runs-table rows of one data identity and ``scored_data`` (completed,
        comparable, ``exact`` or ``bound``); column ``split`` is the scored split
        (:func:`vaelik.analysis._common.scored_split`).
    bits : mapping of str to pandas.Series
        Run name to its per-image bits/dim (:func:`bits_per_image`), indexed by the
        test index.

    Returns
    -------
    pandas.DataFrame
        :data:`RANK_COLUMNS`, best (lowest bits/dim) first; ``learned_scale`` is
        the mean scale over the runs with its symbol (``σ = 0.05``), ``mse`` and
        ``active_units`` means over the runs, ``converged`` ``"k of n"``.
    """
    group = group[group["run"].isin(list(bits))]
    if group.empty:
        return pd.DataFrame(columns=RANK_COLUMNS)
    keys = [k for k in ENTRY_KEYS if k in group.columns]
    entry = group[keys].astype(str).agg(" | ".join, axis=1)
    pooled: dict[str, pd.Series] = {}
    rows = []
    for name, idx in entry.groupby(entry, sort=False).groups.items():
        runs = group.loc[idx]
        # (split, test index) -> bits; two runs of one configuration on one split are averaged
        series = pd.concat([bits[row.run].rename_axis("index").to_frame("b").assign(split=row.split)
                            for row in runs.itertuples()])
        series = series.groupby(["split", "index"])["b"].mean()
        series = series.dropna()
        pooled[name] = series
        first = runs.iloc[0]
        n = len(series)
        ok = converged_mask(runs)
        rows.append({
            "_entry": name,
            "likelihood": str(first.get("likelihood")),
            "scale": str(first.get("scale")),
            "model": str(first.get("model")),
            "network": str(first.get("network", "mlp")) if first.get("network") is not None else "mlp",
            "kind": str(first.get("bits_per_dim_kind")),
            "runs": int(len(runs)),
            "images": n,
            "bits_per_dim": float(series.mean()) if n else np.nan,
            "se": float(series.std(ddof=1) / math.sqrt(n)) if n > 1 else np.nan,
            "mse": float(num(runs, "mse").mean()),
            "learned_scale": _scale_text(runs.assign(scale_value=num(runs, "scale_value").mean()).iloc[0]),
            "active_units": float(num(runs, "active_units").mean()),
            "converged": f"{int(ok.sum())} of {len(ok)}",
        })
    table = pd.DataFrame(rows).sort_values(["bits_per_dim", "_entry"], kind="stable").reset_index(drop=True)
    best = pooled[table["_entry"].iloc[0]]
    diffs, ses, pairs = [], [], []
    for name in table["_entry"]:
        shared = pooled[name].index.intersection(best.index)
        delta = (pooled[name].loc[shared] - best.loc[shared]).to_numpy(float)
        m = len(delta)
        pairs.append(m)
        diffs.append(float(delta.mean()) if m else np.nan)
        ses.append(float(delta.std(ddof=1) / math.sqrt(m)) if m > 1 else np.nan)
    table["diff"], table["paired_se"], table["pairs"] = diffs, ses, pairs
    table["rank"] = range(1, len(table) + 1)
    return table[RANK_COLUMNS]


def ranking_groups(runs: pd.DataFrame, load_pointwise: Callable[[str], pd.DataFrame],
                   problems: list[str] | None = None) -> list[Ranking]:
    """One :class:`Ranking` per data identity and ``scored_data`` among the completed ``runs``.

    Parameters
    ----------
    runs : pandas.DataFrame
        The completed runs (:attr:`vaelik.analysis.Runs.completed`).
    load_pointwise : callable
        Run path to its ``pointwise.csv`` frame (:func:`vaelik.analysis.load_pointwise`).
    problems : list of str, optional
        Appended to: a run whose ``pointwise.csv`` cannot be read (it is left out).

    Returns
    -------
    list of Ranking
        Sorted by data identity, then ``scored_data``.
    """
    if runs.empty:
        return []
    ranked = runs[_ranked_mask(runs)].copy()
    if ranked.empty:
        return []
    ranked["data_id"] = data_id_of(ranked)
    ranked["split"] = scored_split(ranked)
    ranked["scored_data"] = _text(ranked, "scored_data")
    out = []
    for (data_id, scored), group in ranked.groupby(["data_id", "scored_data"], sort=True):
        bits: dict[str, pd.Series] = {}
        for row in group.itertuples():
            try:
                pw = load_pointwise(row.path)
                d = int(float(row.data_dim))
                deq = row.dequantised if row.bits_per_dim_kind == "bound" else None
                bits[row.run] = pd.Series(bits_per_image(pw["log_px"], d, deq),
                                          index=pd.Index(pw["index"].astype(int), name="index"))
            except Exception as exc:  # noqa: BLE001 - one unreadable run must not stop the others
                if problems is not None:
                    problems.append(f"{row.run}: pointwise.csv unreadable for the bits/dim ranking ({exc})")
        if bits:
            out.append(Ranking(str(data_id), str(scored), rank_families(group, bits)))
    return out
