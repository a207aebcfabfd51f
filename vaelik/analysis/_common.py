"""Small helpers shared by the analysis modules (family facts of a run, verdict words)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from vaelik.rundir.family import FamilyFacts

HELD = "held"
NOT_HELD = "did not hold"
NOT_MEASURED = "not measured in these runs"

FAMILY_PREFIX = "family_"

#: the ``--model`` names of the linear models (pPCA, claim C8); vaelik.models.MODELS has them
LINEAR_MODELS = ("linear", "linear-diag")


def family_of(frame: pd.DataFrame) -> pd.Series:
    """The family name each row's run stated (eval.json ``family.name``); NaN where none was."""
    if "family" not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    return frame["family"]


def facts_of(row: Mapping[str, Any] | pd.Series) -> FamilyFacts | None:
    """The :class:`~vaelik.rundir.family.FamilyFacts` a runs-table row carries, or None.

    The runs table holds them as a ``family`` column (the name) and ``family_<fact>``
    columns (:func:`vaelik.analysis.runs.family_columns`). None for a run whose
    eval.json has no facts (written before they existed: re-run ``vaelik evaluate``).
    """
    name = row.get("family")
    if not isinstance(name, str) or not name:
        return None
    values: dict[str, Any] = {"name": name}
    for key in row.keys():
        if isinstance(key, str) and key.startswith(FAMILY_PREFIX):
            value = row[key]
            if not _missing(value):  # a missing fact takes its default
                values[key[len(FAMILY_PREFIX):]] = value
    values.pop("options", None)  # a display string in the table
    try:
        return FamilyFacts.from_dict(values)
    except (TypeError, ValueError):
        return None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _option_text(value: object) -> str:
    # one spelling per value: sigma=0.5 and sigma=0.50 are one data set, k=4 and k=4.0 too
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def data_identity(config: Mapping[str, Any]) -> str:
    """Name of the data set a run was fitted on, with what selects or generates it.

    The ``data`` name, then ``[key]`` for an array chosen inside a ``.npz``
    (``data_key``) and ``(k=v, ...)`` for the options of a built-in data set
    (``data_options``, sorted by key). Two runs with the same identity were
    fitted on the same data (for built-in sets; a file is identified by its
    path); runs are paired over test points, and grouped in C6 and C7, only
    within one identity. An option given explicitly at its default value
    (``sigma=0.1`` for ``ppca``) gives another identity than leaving it out:
    such runs are kept apart, never wrongly paired.

    Examples
    --------
    >>> data_identity({"data": "ppca", "data_options": {"sigma": 0.05, "k": 4.0}})
    'ppca (k=4, sigma=0.05)'
    >>> data_identity({"data": "x.npz", "data_key": "train", "data_options": {}})
    'x.npz[train]'
    """
    text = str(config.get("data", "unknown"))
    key = config.get("data_key")
    if key not in (None, ""):
        text += f"[{key}]"
    options = config.get("data_options")
    if isinstance(options, Mapping) and options:
        text += " (" + ", ".join(f"{k}={_option_text(v)}" for k, v in sorted(options.items(), key=str)) + ")"
    return text


def data_id_of(frame: pd.DataFrame) -> pd.Series:
    """Each run's data identity (column ``data_id``, :func:`data_identity`); ``data`` where absent."""
    if "data_id" in frame.columns:
        return frame["data_id"].where(frame["data_id"].notna(), frame.get("data")).astype(str)
    if "data" in frame.columns:
        return frame["data"].astype(str)
    return pd.Series("unknown", index=frame.index, dtype=object)


def scored_split(frame: pd.DataFrame) -> pd.Series:
    """The test split each run was scored on: ``"<data identity>, seed <s>, n_test <n>"``.

    The test rows are drawn from the seed, so runs share test points only when data
    set, data options, seed and test size all agree.
    """
    def text(v: object) -> str:
        return "n/a" if _missing(v) else _option_text(v)

    seed = frame["seed"] if "seed" in frame.columns else pd.Series(np.nan, index=frame.index)
    n_test = frame["n_test"] if "n_test" in frame.columns else pd.Series(np.nan, index=frame.index)
    return data_id_of(frame) + ", seed " + seed.map(text) + ", n_test " + n_test.map(text)


def not_measured(why: str) -> str:
    """Verdict text for a claim the runs did not measure."""
    return f"{NOT_MEASURED}: {why}"


def num(frame: pd.DataFrame, column: str) -> pd.Series:
    """Column as floats (NaN where missing or not a number); NaN series if absent."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def fmt(value: object, digits: int = 4) -> str:
    """Format a number for text: ``g`` with ``digits`` significant digits, ``n/a`` for NaN."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "n/a"
    return f"{x:.{digits}g}"
