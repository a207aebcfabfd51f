"""Small helpers shared by the analysis modules (family names, verdict words)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

HELD = "held"
NOT_HELD = "did not hold"
NOT_MEASURED = "not measured in these runs"

_FAMILIES = {
    "normal": "normal",
    "gaussian": "normal",
    "laplace": "laplace",
    "bernoulli": "bernoulli",
    "continuousbernoulli": "continuous_bernoulli",
    "cb": "continuous_bernoulli",
    "cbernoulli": "continuous_bernoulli",
}

#: Families whose observation distribution has a scale parameter (σ or b).
SCALED_FAMILIES = ("normal", "laplace")


def family(name: object) -> str:
    """Canonical family name: ``normal``, ``laplace``, ``bernoulli``, ``continuous_bernoulli``.

    Spelling variants (``Normal``, ``continuous-bernoulli``, ``cb``) map to one name;
    an unknown family is returned lower-cased.
    """
    key = str(name).lower().replace("-", "").replace("_", "").replace(" ", "")
    return _FAMILIES.get(key, str(name).lower())


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
