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
