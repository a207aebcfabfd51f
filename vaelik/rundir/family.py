r"""What a likelihood family states about itself, as stored in a run directory (torch-free).

Each likelihood class (``vaelik.models.likelihoods``) declares its facts once;
fitting writes them, with the numbers evaluated at the run's scale, into
``eval.json`` under the key ``family``; the analysis reads them back with
:meth:`FamilyFacts.from_dict` and holds no table of family names.

For example a Normal states: loss ``mse`` (summed: SSE), scale symbol σ, scale
power 2 (a learned σ converges to √MSE, so σ²/MSE → 1), and an exact line
:math:`\log p(x\mid z) = -\tfrac{d}{2}\log(2\pi\sigma^2) - \mathrm{SSE}/(2\sigma^2)`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LOSS_LABELS", "FamilyFacts", "LossLabels", "bits_per_dim", "power_label", "root_label"]


@dataclass(frozen=True)
class LossLabels:
    """Labels of one deterministic loss: per element, and summed over the d dimensions.

    Attributes
    ----------
    label : str
        Per-element mean, e.g. ``"MSE"`` (the ``eval.json`` / ``metrics.csv`` key is the
        loss name, e.g. ``mse``).
    sum_column : str
        ``pointwise.csv`` column holding the per-example sum, e.g. ``"sse"``.
    sum_label : str
        Axis label of that sum, e.g. ``"SSE Σ(x−x̂)²"``.
    """

    label: str
    sum_column: str
    sum_label: str


#: Labels of the losses a likelihood can name as ``loss_name`` (keys: the eval.json metric).
LOSS_LABELS: dict[str, LossLabels] = {
    "mse": LossLabels("MSE", "sse", "SSE Σ(x−x̂)²"),
    "mae": LossLabels("MAE", "sae", "SAE Σ|x−x̂|"),
    "bce": LossLabels("BCE", "bce_sum", "summed BCE −Σ[x log p + (1−x) log(1−p)]"),
}

_SUPERSCRIPTS = str.maketrans("0123456789.-", "⁰¹²³⁴⁵⁶⁷⁸⁹·⁻")


def power_label(symbol: str, power: float) -> str:
    """``symbol`` raised to ``power``: ``power_label("σ", 2) == "σ²"``, ``power_label("b", 1) == "b"``."""
    if power == 1:
        return symbol
    return symbol + format(power, "g").translate(_SUPERSCRIPTS)


def root_label(label: str, power: float) -> str:
    """The ``power``-th root of a quantity: ``root_label("MSE", 2) == "√MSE"``."""
    if power == 1:
        return label
    if power == 2:
        return f"√{label}"
    return f"{label}^(1/{format(power, 'g')})"


def bits_per_dim(log_p: Any, d: int) -> Any:
    r"""Bits per dimension of a log-likelihood in nats: :math:`-\log P(x) / (d \ln 2)`.

    Parameters
    ----------
    log_p : float or array-like
        :math:`\log P(x)` of one example (or mean over examples), in nats, summed
        over its ``d`` dimensions; numpy arrays and pandas series work elementwise.
    d : int
        The number of dimensions (pixels × channels).

    Returns
    -------
    float or array-like
        Positive for a log probability *mass* (``FamilyFacts.discrete``): a uniform
        guess over L levels, :math:`\log P = -d \log L`, scores
        :math:`\log_2 L` (8 for 8-bit data; exactly, up to the rounding of the last
        bit). For a log *density* the number may be negative and is not comparable
        with a mass.

    Examples
    --------
    >>> bits_per_dim(-784 * math.log(256), 784)
    8.0
    >>> math.isclose(bits_per_dim(-64 * math.log(17), 64), math.log2(17), rel_tol=1e-15)
    True
    """
    return -log_p / (d * math.log(2))


def _num(value: Any) -> float | None:
    """A finite float, or None (for None, NaN, inf, or anything that is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class FamilyFacts:
    r"""The facts of one likelihood family, JSON-ready (``eval.json["family"]``).

    The static facts come from the likelihood class; ``line_slope``,
    ``line_intercept`` and ``scale_ratio`` are evaluated for one run (at its scale
    and data dimension) and are ``None`` where undefined.

    Attributes
    ----------
    name : str
        The family's registry name (``"normal"``, ``"student-t"``, ...).
    label : str
        Human-readable name (``"Normal"``).
    loss : str
        Key of the per-element equivalent loss in ``eval.json`` and ``metrics.csv``
        (``"mse"``, ``"mae"``, ``"bce"``).
    loss_label : str
        Its label (``"MSE"``).
    loss_sum_column : str
        ``pointwise.csv`` column of the loss summed over the d dimensions (``"sse"``);
        ``pointwise.csv``'s ``loss_sum`` holds the same numbers.
    loss_sum_label : str
        Axis label of that sum (``"SSE Σ(x−x̂)²"``).
    scale_symbol : str or None
        ``"σ"``, ``"b"``, or None for a family without a scale.
    scale_power : float or None
        :math:`p` such that a learned global scale :math:`s` converges to
        :math:`s^p = \mathrm{loss}` (Normal 2: :math:`\sigma^2 = \mathrm{MSE}`;
        Laplace 1: :math:`b = \mathrm{MAE}`). None: no stated target.
    target_label : str or None
        What the scale converges to (``"√MSE"``, ``"MAE"``).
    ratio_label : str or None
        The ratio that should be 1 (``"σ²/MSE"``, ``"b/MAE"``).
    affine : bool
        Whether, at one global scale, :math:`\log p(x\mid z)` is exactly
        ``line_intercept + line_slope · loss_sum`` per example.
    line_reason : str
        Why there is no line for this run ("" when there is one).
    options : dict
        The family's own constructor options and their values (Student-t ``{"df": 4.0}``).
    line_slope, line_intercept : float or None
        The line at this run's scale and data dimension.
    scale_ratio : float or None
        This run's :math:`s^p/\mathrm{loss}` on the test split.
    discrete : bool
        Whether :math:`\log p(x\mid z)` is a log probability *mass* over ``levels``
        values per dimension (discretised families; Bernoulli over {0, 1}), so that
        :func:`bits_per_dim` is positive and comparable between runs on the same
        levels; False for a log *density* (``eval.json`` files written before this
        fact read as False).
    levels : int or None
        The number of values per dimension a discrete family puts mass on (None for
        a density).
    """

    name: str
    label: str = ""
    loss: str = "mse"
    loss_label: str = ""
    loss_sum_column: str = "loss_sum"
    loss_sum_label: str = ""
    scale_symbol: str | None = None
    scale_power: float | None = None
    target_label: str | None = None
    ratio_label: str | None = None
    affine: bool = False
    line_reason: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    line_slope: float | None = None
    line_intercept: float | None = None
    scale_ratio: float | None = None
    discrete: bool = False
    levels: int | None = None

    @property
    def has_scale(self) -> bool:
        """Whether the family has a scale parameter (σ, b, ...)."""
        return self.scale_symbol is not None

    def ratio(self, scale: Any, loss: Any) -> float:
        r""":math:`s^p / \mathrm{loss}` (should be 1 at the ML scale); NaN where undefined.

        Works elementwise on numpy arrays or pandas series too.
        """
        if self.scale_power is None:
            return math.nan
        try:
            return scale**self.scale_power / loss
        except ZeroDivisionError:  # plain Python numbers; numpy and pandas give inf
            return math.inf

    def target(self, loss: Any) -> float:
        r"""What the scale converges to, :math:`\mathrm{loss}^{1/p}` (√MSE, MAE); NaN if none."""
        if self.scale_power is None:
            return math.nan
        return loss ** (1.0 / self.scale_power)

    def with_run(self, **numbers: Any) -> FamilyFacts:
        """A copy with run-evaluated fields replaced (``line_slope=...``, ``line_reason=...``)."""
        return dataclasses.replace(self, **numbers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become None)."""
        out = dataclasses.asdict(self)
        for key in ("line_slope", "line_intercept", "scale_ratio", "scale_power"):
            out[key] = _num(out[key])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FamilyFacts:
        """Read back :meth:`to_dict` output; unknown keys are ignored, missing ones default.

        Raises
        ------
        ValueError
            If ``values`` is not a dict with a string ``name``.
        """
        if not isinstance(values, dict) or not isinstance(values.get("name"), str):
            raise ValueError("family facts must be a JSON object with a string 'name'")
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        for key in ("line_slope", "line_intercept", "scale_ratio", "scale_power"):
            if key in kept:
                kept[key] = _num(kept[key])
        if not isinstance(kept.get("options", {}), dict):
            kept["options"] = {}
        kept["affine"] = bool(kept.get("affine", False))
        kept["discrete"] = bool(kept.get("discrete", False))
        levels = kept.get("levels")
        integral = isinstance(levels, (int, float)) and not isinstance(levels, bool) \
            and math.isfinite(levels) and levels == int(levels) and levels >= 2
        kept["levels"] = int(levels) if integral else None
        return cls(**kept)
