"""What a claim is: :class:`Claim`, the frames its judge reads, and the registry.

The claims themselves (C1-C8) are entries in :mod:`vaelik.analysis.claims`. A
claim states what is claimed, the named numbers it is judged by
(:attr:`Claim.tolerances`) and a judge: a function from the analysis frames
(:class:`Frames`) and those numbers to a :class:`Judgement` (verdict, measured
numbers, tables, figures). The tolerance text shown in the report is generated
from the same numbers by :meth:`Claim.tolerance_text`, so a tolerance is written
once. Adding a claim is one :class:`Claim` plus its judge, passed to
:func:`register_claim` (or in ``claims=`` to :func:`vaelik.analysis.write_report`).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from vaelik.errors import InputError

from ._common import HELD, NOT_HELD, not_measured
from .render import Section
from .runs import Runs

__all__ = ["Claim", "Frames", "Judgement", "CLAIMS", "register_claim", "judge_claims", "verdict_of",
           "is_true", "converged_mask"]


@dataclass(frozen=True)
class Frames:
    """The tidy frames the judges read, computed once per report.

    The claims are judged on converged runs only: a completed run whose
    ``eval.json`` says ``converged: false`` is left out of every frame the
    judges read (and listed in :attr:`left_out`); a run that does not record the
    verdict (an older run directory) counts as converged.

    Attributes
    ----------
    runs : pandas.DataFrame
        The runs the claims rest on: completed (:attr:`vaelik.analysis.Runs.completed`)
        and converged.
    metrics : pandas.DataFrame
        Per-epoch metrics of those runs (from :attr:`vaelik.analysis.Runs.metrics`).
    identity : pandas.DataFrame
        :func:`vaelik.analysis.identity_table` of those runs.
    points : pandas.DataFrame
        :func:`vaelik.analysis.pointwise_frame` of those runs.
    sigma : pandas.DataFrame
        :func:`vaelik.analysis.sigma_table` of those runs.
    per_dim : pandas.DataFrame
        :func:`vaelik.analysis.per_dim_frame` of those runs.
    problems : list of str
        Problems met while computing the frames.
    completed : pandas.DataFrame
        Every completed run, converged or not (column ``converged``): what the
        comparison, image and ArviZ sections show.
    left_out : pandas.DataFrame
        ``run, reason``: the completed runs left out of the claims and why
        (``not converged: <the reasons from eval.json>``).
    """

    runs: pd.DataFrame
    metrics: pd.DataFrame
    identity: pd.DataFrame
    points: pd.DataFrame
    sigma: pd.DataFrame
    per_dim: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    completed: pd.DataFrame = field(default_factory=pd.DataFrame)
    left_out: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["run", "reason"]))

    @classmethod
    def from_runs(cls, runs: Runs) -> Frames:
        """Compute every frame from loaded runs (completed and converged runs only)."""
        from .identity import identity_table, pointwise_frame
        from .sigma import per_dim_frame, sigma_table

        done = runs.completed
        ok = converged_mask(done)
        judged = done[ok].reset_index(drop=True)
        left = done[~ok]
        reasons = left["convergence_reasons"] if "convergence_reasons" in left.columns else \
            pd.Series("", index=left.index)
        left_out = pd.DataFrame({
            "run": left["run"].astype(str),
            "reason": ["not converged" + (f": {r}" if isinstance(r, str) and r else "") for r in reasons],
        }, columns=["run", "reason"]).reset_index(drop=True)
        metrics = runs.metrics
        if "path" in metrics.columns and "path" in done.columns:
            metrics = metrics[~metrics["path"].isin(set(left["path"]))].reset_index(drop=True)
        ident = identity_table(judged)
        per_dim = per_dim_frame(judged)
        problems = [*ident.attrs.get("problems", []), *per_dim.attrs.get("problems", [])]
        return cls(runs=judged, metrics=metrics, identity=ident, points=pointwise_frame(judged),
                   sigma=sigma_table(judged), per_dim=per_dim, problems=problems, completed=done,
                   left_out=left_out)


def converged_mask(runs: pd.DataFrame) -> pd.Series:
    """True for each run that converged or does not record the verdict (column ``converged``)."""
    if "converged" not in runs.columns:
        return pd.Series(True, index=runs.index, dtype=bool)
    return runs["converged"].map(lambda v: not (v is False or str(v).lower() == "false")).astype(bool)


@dataclass
class Judgement:
    """What a judge found.

    Attributes
    ----------
    verdict : str
        ``held``, ``did not hold`` or ``not measured in these runs: <why>`` (see :func:`verdict_of`).
    numbers : list of str
        The measured numbers, one line per run or group.
    tables : list of (caption, DataFrame)
    figures : list of (slug, caption, Figure)
    """

    verdict: str
    numbers: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list = field(default_factory=list)


#: A judge: the frames and the claim's tolerances in, a judgement out.
Judge = Callable[[Frames, Mapping[str, float]], Judgement]


def _number_text(value: float) -> str:
    # 0.01 -> "0.01", -0.5 -> "−0.5" (the report's minus sign), 4 -> "4"
    return f"{value:g}".replace("-", "−")


@dataclass(frozen=True)
class Claim:
    """One claim of the design, with the numbers it is judged by.

    Attributes
    ----------
    id : str
        ``C1`` .. ``C8`` (the section anchor and the verdict table's key).
    title : str
        Short name of the claim.
    statement : str
        What is claimed, exactly.
    tolerances : mapping of str to float
        The named numbers the judge compares against (e.g. ``{"ratio": 0.1}``).
    tolerance_template : str
        The tolerance as text, with a ``{name}`` field for each tolerance; see
        :meth:`tolerance_text`.
    judge : callable
        ``judge(frames, tolerances) -> Judgement``.
    reading : str
        The plain-language reading shown under the numbers.
    """

    id: str
    title: str
    statement: str
    tolerances: Mapping[str, float]
    tolerance_template: str
    judge: Judge
    reading: str = ""

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.tolerance_template) if f}
        if fields != set(self.tolerances):
            raise InputError(
                f"claim {self.id}: tolerance_template fields {sorted(fields)} must name exactly its "
                f"tolerances {sorted(self.tolerances)}; write each tolerance once, as a named number")
        object.__setattr__(self, "tolerances", MappingProxyType(dict(self.tolerances)))

    def tolerance_text(self) -> str:
        """The tolerance as shown in the report, generated from :attr:`tolerances`.

        Examples
        --------
        >>> claim = Claim("C0", "t", "s", {"ratio": 0.1}, "|σ²/MSE − 1| < {ratio}", judge=None)
        >>> print(claim.tolerance_text())
        |σ²/MSE − 1| < 0.1
        """
        return self.tolerance_template.format(**{k: _number_text(v) for k, v in self.tolerances.items()})

    def section(self, frames: Frames) -> Section:
        """Judge the claim on ``frames`` and lay the result out as a report section."""
        found = self.judge(frames, self.tolerances)
        return Section(self.id, self.title, found.verdict, self.tolerance_text(), self.statement,
                       list(found.numbers), self.reading, list(found.tables), list(found.figures))


#: The registered claims, in report order (C1..C8 are registered by :mod:`vaelik.analysis.claims`).
CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim, *, replace: bool = False) -> Claim:
    """Add ``claim`` to :data:`CLAIMS` (the report judges every registered claim, in order).

    Raises
    ------
    InputError
        If a claim with the same id is registered and ``replace`` is false.
    """
    if claim.id in CLAIMS and not replace:
        raise InputError(f"claim {claim.id} is already registered; pick another id or pass replace=True")
    CLAIMS[claim.id] = claim
    return claim


def judge_claims(frames: Frames, claims: Iterable[Claim] | None = None) -> list[Section]:
    """One section per claim (default: every registered claim), judged on ``frames``."""
    return [claim.section(frames) for claim in (CLAIMS.values() if claims is None else claims)]


def verdict_of(ok: list[bool], why_none: str) -> str:
    """``held`` if every check passed, ``did not hold`` if one failed, not measured if there were none."""
    if not ok:
        return not_measured(why_none)
    return HELD if all(ok) else NOT_HELD


def is_true(value: object) -> bool:
    """``True`` or the string ``true`` (any case), as eval.json booleans are read back."""
    return value is True or str(value).lower() == "true"
