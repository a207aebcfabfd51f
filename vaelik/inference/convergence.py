r"""Did a fit converge? A verdict from its metric rows and a few numbers of the evaluation.

:func:`judge_convergence` is a pure function (standard library only): it reads the
per-epoch rows of ``metrics.csv`` and numbers that :mod:`vaelik.inference.evaluate`
computes, and returns a :class:`Convergence`: ``converged``, the *reasons* (each
one line: what was measured, the threshold, what to change) and *notes* (facts
worth knowing that do not make a run unconverged). A run is converged when there
is no reason. The verdict is written into ``eval.json`` (``converged``,
``convergence_reasons``, ``convergence_notes``); ``vaelik train`` warns with the
first reason, and the report judges its claims on converged runs only.

The criteria, each with a named threshold (module constants):

1. **The ELBO still rises.** On the ``val`` split of ``metrics.csv`` when present,
   else on ``train`` (never ``test``: the test split is only reported), the
   least-squares slope of the ELBO (nats per point) over the last
   :data:`ELBO_WINDOW` epochs is a reason when it exceeds both
   :math:`\max(\text{ELBO\_RISE}, \text{ELBO\_RISE\_REL}\cdot|\text{ELBO}|)`
   per epoch and :data:`ELBO_NOISE_SE` standard errors of the slope (so that the
   epoch-to-epoch noise of a one-sample ELBO, about 0.3 nats on the digits, is
   not read as a trend). A run of one epoch has no trend and is a reason.
2. **The scale lags its target.** For a family that states a scale target
   (``scale_power``: Normal σ² = MSE, Laplace b = MAE) with one global learned
   scale (``scale_mode == "learned"``), the ratio :math:`s^p/\mathrm{loss}` *on
   the training split* (the split the scale is fitted to, so that it is exactly
   1 at the optimum of the training ELBO, unlike the test split's ratio) is a
   reason when :math:`|\text{ratio} - 1| >` :data:`RATIO_TOL`.
3. **Scales at the floor.** A learned scale within :data:`FLOOR_MARGIN` of
   ``min_scale`` on a dimension whose training data vary (standard deviation
   above ``min_scale``) is a reason: the density grows without bound there. On a
   dimension whose training values are (nearly) constant the data put it
   there, and it is a note.
4. **No active units.** No latent dimension with
   :math:`\mathrm{Var}_x(\mathbb E_q[z_i]) > 0.01` is a *note* for a run with
   a fixed scale -- posterior collapse at a large fixed σ is the optimum of that
   objective (what claim C6 shows), not a fit that stopped early -- and a
   *reason* for every other scale mode.

5. **Short of a known optimum.** For a linear-Gaussian model (the pPCA check of
   ``eval.json``), whose optimum is known in closed form, two gaps, each
   against :math:`\max(\text{OPTIMUM\_GAP\_REL}\cdot|\log p_\mathrm{ML}|, \text{OPTIMUM\_GAP\_ABS})`
   nats per point (the tolerances of claim C8), on the *validation split*:
   the exact log p(x) of the learned parameters below that of the pPCA
   maximum-likelihood solution (fitted on the training split): the parameters
   are short of the optimum; and the closed-form ELBO below the exact log p(x)
   of the learned parameters: q(z|x) is short of the exact posterior. Held-out
   rows, because the ML solution's last hundredths of a nat on the training
   split come from fitting its noise (the sample eigenvalues barely above σ²),
   which early stopping on the validation ELBO rightly declines: on ``ppca``
   with d = 30 and 3 planted components, a fit within 0.034 nats of the
   optimum on the test split was 0.07 nats short of it on the training split.
   A gap counts when it exceeds the tolerance by more than
   :data:`SE_ALLOWANCE` standard errors of the mean of its paired per-point
   differences: on ``ppca``'s 200 validation rows the parameter gap has a
   standard error of 0.02–0.03 nats (one fit 0.10 ± 0.03 short on them was
   0.037 short on the 400 test rows).
   Without a validation split the training split is judged instead: the exact
   log p(x) against the pPCA solution with as many components as the fit's
   active directions, and that solution against the one with all k (the unused
   dimensions must not be worth more). An ELBO trend flattened by a learning
   rate reduced on plateaus can look converged while the parameters still
   creep toward the optimum: this criterion sees it.

Fixed scales are not checked against the floor (the user chose them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ELBO_NOISE_SE",
    "ELBO_RISE",
    "ELBO_RISE_REL",
    "ELBO_WINDOW",
    "FLOOR_MARGIN",
    "OPTIMUM_GAP_ABS",
    "OPTIMUM_GAP_REL",
    "SE_ALLOWANCE",
    "RATIO_TOL",
    "SCALE_LR_FLAG",
    "Convergence",
    "judge_convergence",
]

#: epochs over which the ELBO trend is measured: long enough to average the
#: one-sample noise of a few epochs, short enough to see the end of the fit
ELBO_WINDOW = 5
#: nats per point per epoch: a fit gaining this much per epoch is still moving by
#: more than the 0.05 nats per point the claims allow against an optimum
ELBO_RISE = 0.05
#: the same relative to |ELBO| per epoch (0.1 %): on data with a large ELBO
#: (many dimensions) a fit rising by 1 % in ten more epochs is not done
ELBO_RISE_REL = 1e-3
#: the slope must also exceed this many standard errors of the least-squares slope,
#: so that noise in a flat ELBO is not read as a rise
ELBO_NOISE_SE = 2.0
#: |s^p/loss − 1| allowed on the training split: the tolerance of claims C2 and C4
RATIO_TOL = 0.1
#: a scale at most this factor above ``min_scale`` is "at the floor" (as ``scales_at_bound``)
FLOOR_MARGIN = 1.01
#: the shortfall of the exact log p(x) below a known optimum's allowed on the training split,
#: relative to |log p_ML(x)| and at least this many nats per point: claim C8's tolerances
OPTIMUM_GAP_REL = 0.01
OPTIMUM_GAP_ABS = 0.05
#: criterion 5 on the validation split: a gap counts beyond the tolerance plus this many
#: standard errors of its mean (a one-sided 2.3 % test that the data show the shortfall)
SE_ALLOWANCE = 2.0
#: the flag that sets the scale parameters' own learning rate, named in the advice
SCALE_LR_FLAG = "--scale-lr-factor"

_SPLIT_PREFERENCE = ("val", "train")


@dataclass(frozen=True)
class Convergence:
    """The convergence verdict of one run.

    Attributes
    ----------
    converged : bool
        True when there is no reason.
    reasons : list of str
        Why the run did not converge, one short line each: what was measured,
        the threshold, what to change.
    notes : list of str
        Facts that do not make the run unconverged (e.g. scales at the floor on
        constant dimensions; no active units at a fixed scale).
    """

    converged: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The ``eval.json`` keys: ``converged``, ``convergence_reasons``, ``convergence_notes``."""
        return {"converged": self.converged, "convergence_reasons": list(self.reasons),
                "convergence_notes": list(self.notes)}

    def warning(self) -> str | None:
        """One line for the user naming the first reason (None when converged).

        Examples
        --------
        >>> Convergence(False, ["a: raise --epochs", "b"]).warning()
        'run did not converge: a: raise --epochs (+1 more in eval.json)'
        """
        if self.converged or not self.reasons:
            return None
        more = f" (+{len(self.reasons) - 1} more in eval.json)" if len(self.reasons) > 1 else ""
        return f"run did not converge: {self.reasons[0]}{more}"


def _finite(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _slope(ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` against 0, 1, ... and its standard error (NaN below 3 points)."""
    n = len(ys)
    xbar, ybar = (n - 1) / 2, sum(ys) / n
    sxx = sum((i - xbar) ** 2 for i in range(n))
    slope = sum((i - xbar) * (y - ybar) for i, y in enumerate(ys)) / sxx
    if n < 3:
        return slope, math.nan
    resid = sum((y - ybar - slope * (i - xbar)) ** 2 for i, y in enumerate(ys))
    return slope, math.sqrt(resid / (n - 2) / sxx)


def _elbo_trend(rows: list[Mapping[str, Any]], reasons: list[str], notes: list[str]) -> None:
    splits = {str(r.get("split")) for r in rows}
    split = next((s for s in _SPLIT_PREFERENCE if s in splits), None)
    if split is None:
        notes.append("no train or val rows in metrics.csv: the ELBO trend was not judged")
        return
    by_epoch = {}
    for r in rows:
        if str(r.get("split")) == split and _finite(r.get("elbo")) and _finite(r.get("epoch")):
            by_epoch[int(float(r["epoch"]))] = float(r["elbo"])
    elbo = [by_epoch[e] for e in sorted(by_epoch)][-(ELBO_WINDOW + 1):]
    name = "validation" if split == "val" else "training"
    if len(elbo) < 2:
        reasons.append(f"only {len(elbo)} epoch: the {name} ELBO's trend cannot be judged; "
                       "raise --epochs")
        return
    slope, se = _slope(elbo)
    threshold = max(ELBO_RISE, ELBO_RISE_REL * abs(elbo[-1]))
    epochs = len(elbo) - 1
    if slope > threshold and not (slope <= ELBO_NOISE_SE * se):  # NaN se: no noise estimate
        reasons.append(f"{name} ELBO still rising by {slope:.3g} nats/epoch over the last {epochs} "
                       f"epoch{'s' if epochs > 1 else ''} (> {threshold:.3g}): raise --epochs")


def _scale_ratio(ratio: float | None, label: str, reasons: list[str]) -> None:
    if _finite(ratio) and abs(float(ratio) - 1) > RATIO_TOL:
        what = "lags the decoder" if ratio > 1 else "is below its optimum for this decoder"
        reasons.append(f"{label} = {float(ratio):.3g} on the training split (|·−1| > {RATIO_TOL:g}): "
                       f"the scale {what}; raise {SCALE_LR_FLAG} or --epochs")


def _floor(scales: Sequence[float], min_scale: float, spread: Sequence[float] | None,
           reasons: list[str], notes: list[str]) -> None:
    at = [i for i, s in enumerate(scales) if _finite(s) and float(s) <= FLOOR_MARGIN * min_scale]
    if not at:
        return
    if spread is None:  # nothing known about the data: count every scale at the floor
        varying, constant = at, []
    elif len(scales) == 1:  # one global scale: the data vary if any dimension does
        varying, constant = (at, []) if any(float(v) > min_scale for v in spread) else ([], at)
    else:
        varying = [i for i in at if i < len(spread) and float(spread[i]) > min_scale]
        constant = [i for i in at if i not in varying]
    where = "" if len(scales) == 1 else " dimensions"
    if varying:
        reasons.append(f"scale at the floor min_scale={min_scale:g} on {len(varying)} of {len(scales)}"
                       f"{where} where the training data vary: the density is unbounded there; "
                       "raise --min-scale or use a global scale")
    if constant:
        notes.append(f"scale at the floor min_scale={min_scale:g} on {len(constant)} of {len(scales)}"
                     f"{where} whose training values are constant: the data put it there")


def _held_out_gaps(elbo: float, learned: float, best: float, parameter_se: float = 0.0,
                   posterior_se: float = 0.0, *, reasons: list[str]) -> None:
    """Criterion 5 on the validation split: the parameters, then q(z|x), each against C8's tolerance."""
    allowed = max(OPTIMUM_GAP_REL * abs(best), OPTIMUM_GAP_ABS)
    if best - learned - SE_ALLOWANCE * parameter_se > allowed:
        reasons.append(
            f"exact log p(x) on the validation split {learned:.4g} is {best - learned:.3g} ± "
            f"{parameter_se:.2g} nats per point below the pPCA optimum's {best:.4g} (> {allowed:.3g} "
            f"+ {SE_ALLOWANCE:g} standard errors): the parameters are still short of the pPCA "
            "solution; raise --epochs or --patience")
    if learned - elbo - SE_ALLOWANCE * posterior_se > allowed:
        reasons.append(
            f"the closed-form ELBO on the validation split {elbo:.4g} is {learned - elbo:.3g} ± "
            f"{posterior_se:.2g} nats per point below the exact log p(x) of the learned parameters "
            f"{learned:.4g} (> {allowed:.3g} + {SE_ALLOWANCE:g} standard errors): q(z|x) is still "
            "short of the exact posterior; raise --epochs or --patience")


def _optimum_gap(learned: float, active_best: float, best: float, reasons: list[str]) -> None:
    """Criterion 5 (a model with a closed-form optimum): the two gaps the module docstring states."""
    allowed = max(OPTIMUM_GAP_REL * abs(best), OPTIMUM_GAP_ABS)
    if active_best - learned > allowed:
        whose = "the optimum's" if active_best == best else "the optimum's with the components in use,"
        reasons.append(
            f"exact log p(x) on the training split {learned:.4g} is {active_best - learned:.3g} nats "
            f"per point below {whose} {active_best:.4g} (> {allowed:.3g}): the parameters are "
            "still short of the pPCA solution; raise --epochs or --patience")
    if best - active_best > allowed:
        reasons.append(
            f"the latent dimensions the fit leaves unused are worth {best - active_best:.3g} nats per "
            f"point on the training split (> {allowed:.3g}): the pPCA optimum uses them; raise --epochs")


def judge_convergence(
    metrics: Iterable[Mapping[str, Any]],
    *,
    scale_mode: str,
    active_units: int | None = None,
    latent_dim: int | None = None,
    train_ratio: float | None = None,
    ratio_label: str | None = None,
    scales: Sequence[float] | None = None,
    min_scale: float | None = None,
    train_spread: Sequence[float] | None = None,
    optimum: tuple[float, ...] | None = None,
    held_out: tuple[float, ...] | None = None,
) -> Convergence:
    r"""Judge whether a fitted run converged (the criteria are in the module docstring).

    Parameters
    ----------
    metrics : iterable of mapping
        The rows of ``metrics.csv`` (keys ``epoch``, ``split``, ``elbo``, ...), one
        per epoch and split. Empty: the ELBO trend is not judged (a note says so).
    scale_mode : str
        ``eval.json`` ``scale_mode`` (``fixed``, ``learned``, ``per_dim``, ...).
    active_units, latent_dim : int, optional
        Latent dimensions with :math:`\mathrm{Var}_x(\mathbb E_q[z_i]) > 0.01`, and k.
    train_ratio : float, optional
        :math:`s^p/\mathrm{loss}` on the training split; give it only for a family
        that states a scale target and a global learned scale.
    ratio_label : str, optional
        Its label (``"σ²/MSE"``).
    scales : sequence of float, optional
        The learned scale(s): one global value, or d per-dimension values.
    min_scale : float, optional
        The lower bound of learned scales.
    train_spread : sequence of float, optional
        The standard deviation of each of the d dimensions of the training data.
    optimum : (float, float, float) or (float, float), optional
        For a model with a closed-form optimum: the exact log p(x) per training point
        of the learned parameters, of the optimum with the components in use, and of
        the optimum (pPCA: ``exact_log_px_train``, ``ml_log_px_train_active``,
        ``ml_log_px_train``); two values: the middle one is the optimum.
    held_out : tuple of float, optional
        The same model on the validation split: the closed-form ELBO, the exact
        log p(x) of the learned parameters and of the optimum, per point, and
        optionally the standard errors of the two paired gaps (pPCA:
        ``elbo_exact_val``, ``exact_log_px_val``, ``ml_log_px_val``,
        ``parameter_gap_val_se``, ``posterior_gap_val_se``). Given, it is judged
        instead of ``optimum`` (criterion 5).

    Returns
    -------
    Convergence

    Examples
    --------
    >>> rows = [{"epoch": e, "split": "train", "elbo": -10.0} for e in range(1, 8)]
    >>> judge_convergence(rows, scale_mode="learned", train_ratio=1.3, ratio_label="σ²/MSE").reasons
    ['σ²/MSE = 1.3 on the training split (|·−1| > 0.1): the scale lags the decoder; raise --scale-lr-factor or --epochs']
    """
    reasons: list[str] = []
    notes: list[str] = []
    rows = list(metrics)
    if rows:
        _elbo_trend(rows, reasons, notes)
    else:
        notes.append("no metrics rows: the ELBO trend was not judged")
    _scale_ratio(train_ratio, ratio_label or "scale ratio", reasons)
    if scales and _finite(min_scale) and scale_mode not in ("fixed", "none"):
        _floor(scales, float(min_scale), train_spread, reasons, notes)
    if active_units is not None and active_units == 0 and latent_dim:
        text = f"no active units (0 of {latent_dim} latent dimensions with Var(E_q[z]) > 0.01)"
        if scale_mode == "fixed":
            notes.append(f"{text}: posterior collapse is the optimum at this fixed scale (claim C6)")
        else:
            reasons.append(f"{text}: the decoder ignores z; raise --epochs")
    if held_out is not None and all(_finite(v) for v in held_out):
        _held_out_gaps(*(float(v) for v in held_out), reasons=reasons)
    elif optimum is not None and all(_finite(v) for v in optimum):
        learned, *bests = (float(v) for v in optimum)
        _optimum_gap(learned, bests[0], bests[-1], reasons)
    return Convergence(converged=not reasons, reasons=reasons, notes=notes)
