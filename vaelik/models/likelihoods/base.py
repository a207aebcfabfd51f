r"""The likelihood base classes, the facts each family states, and the registry of names.

A likelihood turns the decoder output into the ``pyro.distributions``
observation distribution :math:`p(x \mid z)` (batch shape ``(B,)``, event shape
``(d,)``), owns its scale (fixed, learned, per dimension, predicted, optimal or
Bayesian) and states its facts once: the loss it is equivalent to, its scale
symbol, what a learned scale converges to, and its reconstruction line
(:meth:`Likelihood.recon_line`). :meth:`Likelihood.facts` turns them into the
JSON-ready :class:`~vaelik.rundir.family.FamilyFacts` that fitting writes into
``eval.json``; the analysis reads only those.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions import constraints

from vaelik.errors import InputError
from vaelik.models.likelihoods.losses import LOSSES
from vaelik.rundir.family import LOSS_LABELS, FamilyFacts, LossLabels, power_label, root_label
from vaelik.validate import check_positive

__all__ = ["GLOBAL_SCALE_MODES", "REGISTRY", "SCALE_MODES", "Likelihood", "LocationScaleLikelihood"]

#: Scale modes of location-scale families (a positive number means "fixed").
SCALE_MODES = ("learned", "per_dim", "predicted", "optimal", "bayesian")

#: Modes with one scale for every example and dimension (the reconstruction line exists).
GLOBAL_SCALE_MODES = ("fixed", "learned", "optimal")

_NOT_GLOBAL = {
    "per_dim": "one scale per dimension",
    "predicted": "a scale predicted per point and dimension",
    "bayesian": "a scale that varies across posterior draws",
}

#: Every subclass that sets ``name``, by name (filled by ``__init_subclass__``).
REGISTRY: dict[str, type[Likelihood]] = {}


class Likelihood:
    r"""Base class of an observation likelihood :math:`p(x \mid z)`.

    Subclasses set the class attributes and implement :meth:`observation`
    (and, where it exists, :meth:`recon_line`). Defining ``name`` registers the
    subclass for :func:`~vaelik.models.likelihoods.get_likelihood`.

    Attributes
    ----------
    name : str
        Registry name (``--likelihood NAME``).
    label : str
        Human-readable name for tables and figures (default: the class name).
    loss_name : {"mse", "mae", "bce"}
        The deterministic loss this family is equivalent to (its per-element mean is
        the eval.json / metrics.csv key of that name).
    loss_labels : LossLabels or None
        Labels of that loss; None takes them from ``LOSS_LABELS[loss_name]`` (set it
        for a loss of your own, together with :meth:`loss`).
    scale_symbol : str or None
        ``"σ"``, ``"b"``, or None for a family without a scale.
    scale_power : float or None
        A learned global scale :math:`s` converges to :math:`s^p = \text{loss}`
        (Normal 2, Laplace 1); None when no such target is stated.
    options : tuple of str
        The family's own constructor options (e.g. ``("df",)``), recorded in the facts.
    line_reason : str
        Why :meth:`recon_line` is None (said in the report).
    point_estimate : str
        Which statistic of the observation distribution the losses are computed
        from (``"loc"``, ``"probs"``, ``"mean"``); it is always ``.mean``.
    unit_interval : bool
        Whether the data must lie in [0, 1].
    discrete : bool
        Whether :math:`\log p(x \mid z)` is a log probability *mass* over ``levels``
        values per dimension (discretised families, Bernoulli) rather than a log density.
    levels : int or None
        The number of values per dimension of a discrete family (Bernoulli 2); None
        for a density.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    loss_name: ClassVar[str] = "mse"
    loss_labels: ClassVar[LossLabels | None] = None
    scale_symbol: ClassVar[str | None] = None
    scale_power: ClassVar[float | None] = None
    options: ClassVar[tuple[str, ...]] = ()
    line_reason: ClassVar[str] = "no closed-form line of recon against the summed loss is stated"
    point_estimate: ClassVar[str] = "mean"
    unit_interval: ClassVar[bool] = False
    discrete: ClassVar[bool] = False
    levels: int | None = None
    scale_mode: str = "none"
    min_scale: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.name:
            REGISTRY[cls.name] = cls

    @classmethod
    def data_options(cls, levels: int | None) -> dict[str, Any]:
        """Options this family takes from the data set, given the data's number of levels.

        None by default; a discretised family returns ``{"levels": levels}``. Merge
        them *under* the user's own options (an explicit ``--lik-opt`` wins).
        """
        return {}

    # -- hooks used by the model and guide --------------------------------------------
    def output_multiplier(self) -> int:
        """How many values per data dimension the decoder must output."""
        return 1

    def scale_params(self) -> tuple[str, ...]:
        """The names of the Pyro parameters this likelihood creates for its scale.

        The optimiser gives them a learning rate of their own (``--scale-lr-factor``):
        Adam moves an unconstrained log-scale by about the learning rate per step,
        which at the networks' rate lags far behind the decoder. None by default.
        """
        return ()

    def model_scale(self, data_dim: int, x: torch.Tensor) -> torch.Tensor | None:
        """Global scale, called in the model *outside* the data plate."""
        return None

    def guide_scale(self, data_dim: int, x: torch.Tensor) -> None:
        """Variational posterior of a latent scale, called in the guide."""
        return None

    def raw_location(self, mean: torch.Tensor) -> torch.Tensor | None:
        """The decoder output (its first ``d`` values) that puts the location at ``mean``.

        Used to start the decoder at the training data's mean (``--data-init
        standardise``): the model adds it to the decoder's output as a fixed offset.
        None (the default): the family has no such value, and no offset is added.
        """
        return None

    def observation(
        self, out: torch.Tensor, scale: torch.Tensor | None, x: torch.Tensor
    ) -> dist.TorchDistribution:
        """Observation distribution with batch shape ``(B,)`` and event shape ``(d,)``.

        Parameters
        ----------
        out : torch.Tensor
            Decoder output, shape ``(..., B, d * output_multiplier())``.
        scale : torch.Tensor or None
            What :meth:`model_scale` returned.
        x : torch.Tensor
            The observed minibatch, shape ``(B, d)`` (used by the ``optimal`` scale).
        """
        raise NotImplementedError

    # -- facts about the family -------------------------------------------------------
    @classmethod
    def loss(cls, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """The equivalent deterministic loss per element (MSE, MAE or BCE)."""
        return LOSSES[cls.loss_name](x, x_hat)

    def observed_loss(self, obs: dist.TorchDistribution, x: torch.Tensor) -> torch.Tensor:
        """The equivalent loss per element of ``x`` under the observation ``obs`` (shape ``(n, d)``).

        :meth:`loss` at the distribution's mean; a family whose mean loses precision
        (a Bernoulli's probabilities saturate in float32 long before its logits do)
        computes it from the parameters instead.
        """
        return self.loss(x, obs.mean)

    def recon_line(self, d: int, scale: float | None) -> tuple[float, float] | None:
        r"""Slope and intercept of :math:`\log p(x \mid z)` against the summed loss.

        Per example, :math:`\log p(x\mid z) = a + b\,\sum_j \mathrm{loss}(x_j, \hat x_j)`
        exactly, at one global ``scale`` (None for a family without one) and data
        dimension ``d``. None when the family has no such line (say why in
        ``line_reason``).

        Returns
        -------
        (slope, intercept) or None
        """
        return None

    def is_normalised_on(self, x: torch.Tensor) -> tuple[bool, str]:
        r"""Whether :math:`p(x \mid z)` is a normalised density/mass on data like ``x``."""
        return True, "normalised density on this data"

    def family_options(self) -> dict[str, Any]:
        """The values of the family's own ``options`` (JSON-ready)."""
        return {key: getattr(self, key) for key in self.options}

    def facts(
        self, d: int | None = None, scale: float | None = None, loss: float | None = None
    ) -> FamilyFacts:
        r"""The family's facts, evaluated for one run where numbers are given.

        Parameters
        ----------
        d : int, optional
            Data dimension (for the line's intercept).
        scale : float, optional
            The run's global scale (σ, b); for per-dimension or predicted scales their RMS.
        loss : float, optional
            The run's per-element mean of ``loss_name`` (for the ratio :math:`s^p/\mathrm{loss}`).

        Returns
        -------
        FamilyFacts
            Static facts always; ``line_slope``/``line_intercept`` when the line exists for
            this scale mode and ``d`` (and ``scale``) are given; ``scale_ratio`` when the
            family states a scale power and ``scale`` and ``loss`` are given.
        """
        labels = self.loss_labels or LOSS_LABELS.get(self.loss_name)
        if labels is None:
            labels = LossLabels(self.loss_name.upper(), "loss_sum", f"summed {self.loss_name}")
        symbol, power = self.scale_symbol, self.scale_power
        has_target = symbol is not None and power is not None
        affine = self.recon_line(1, 1.0 if symbol is not None else None) is not None
        base = FamilyFacts(
            name=self.name or type(self).__name__,
            label=self.label or type(self).__name__,
            loss=self.loss_name,
            loss_label=labels.label,
            loss_sum_column=labels.sum_column,
            loss_sum_label=labels.sum_label,
            scale_symbol=symbol,
            scale_power=float(power) if has_target else None,
            target_label=root_label(labels.label, power) if has_target else None,
            ratio_label=f"{power_label(symbol, power)}/{labels.label}" if has_target else None,
            affine=affine,
            line_reason="" if affine else self.line_reason,
            options=self.family_options(),
            discrete=bool(self.discrete),
            levels=int(self.levels) if self.discrete and self.levels is not None else None,
        )
        line, reason = self._run_line(d, scale)
        ratio = None
        if has_target and _finite(scale) and _finite(loss) and loss > 0:
            ratio = base.ratio(float(scale), float(loss))
        return base.with_run(
            line_slope=line[0] if line else None,
            line_intercept=line[1] if line else None,
            line_reason=reason if line is None else "",
            scale_ratio=ratio,
        )

    def _run_line(self, d: int | None, scale: float | None) -> tuple[tuple[float, float] | None, str]:
        """The line for this instance's run, or None and why not."""
        if d is None:
            return None, "data dimension unknown"
        line = self.recon_line(int(d), None)
        return line, "" if line is not None else self.line_reason

    def check_data(self, x: torch.Tensor) -> None:
        """Raise :class:`~vaelik.errors.InputError` if ``x`` is outside the support."""
        if self.unit_interval:
            lo, hi = float(x.min()), float(x.max())
            if not (lo >= 0 and hi <= 1):  # also refuses NaN, which compares False
                raise InputError(
                    f"likelihood {self.name!r} needs data in [0, 1], but the data range is "
                    f"[{lo:.4g}, {hi:.4g}]; rescale it or use --likelihood normal/laplace"
                )

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (registry name, scale mode, options)."""
        return {"likelihood": self.name, "scale_mode": self.scale_mode, **self.family_options()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class LocationScaleLikelihood(Likelihood):
    r"""A family with a location (the decoder mean) and a positive scale.

    Subclasses implement :meth:`base` (the per-element distribution) and, for
    ``scale="optimal"``, :meth:`optimal_scale`.

    Parameters
    ----------
    scale : float or {"learned", "per_dim", "predicted", "optimal", "bayesian"}
        A positive number fixes the scale. ``"learned"``: one global
        ``pyro.param`` with constraint ``greater_than(min_scale)``.
        ``"per_dim"``: one such parameter per data dimension. ``"predicted"``:
        the decoder outputs a second value per dimension, mapped to
        ``min_scale + softplus(raw)`` (heteroscedastic). ``"optimal"``: the
        maximum-likelihood scale of the current batch given the decoder mean
        (no parameter, no gradient through it), clipped below at ``min_scale``.
        ``"bayesian"``: a global latent scale with a LogNormal prior in the
        model and a LogNormal variational posterior in the guide.
    min_scale : float
        Lower bound of learned, per-dimension, predicted and optimal scales:
        without it a scale collapses to 0 on pixels the decoder fits exactly.
    init_scale : float
        Initial value of learned / per-dimension scales and the guide's median.
    prior_median, prior_log_sd : float
        The ``bayesian`` prior :math:`\log\sigma \sim \mathcal N(\log m, s^2)`.
    """

    scale_symbol: ClassVar[str | None] = "σ"

    def __init__(
        self,
        scale: float | str = "learned",
        *,
        min_scale: float = 1e-3,
        init_scale: float = 1.0,
        prior_median: float = 0.3,
        prior_log_sd: float = 1.5,
    ) -> None:
        if isinstance(scale, str):
            try:
                scale = float(scale)
            except ValueError:
                if scale not in SCALE_MODES:
                    raise InputError(
                        f"unknown scale {scale!r} for likelihood {self.name!r}; use a positive "
                        f"number or one of: {', '.join(SCALE_MODES)}"
                    ) from None
        if isinstance(scale, str):
            self.scale_mode = scale
            self.fixed_scale = None
        else:
            self.scale_mode = "fixed"
            self.fixed_scale = check_positive("scale", scale)
        self.min_scale = check_positive("min_scale", min_scale)
        self.init_scale = check_positive("init_scale", init_scale)
        self.prior_median = check_positive("prior_median", prior_median)
        self.prior_log_sd = check_positive("prior_log_sd", prior_log_sd)
        # only a learned scale starts at init_scale and is bounded by min_scale; a fixed,
        # predicted, optimal or Bayesian scale ignores the pair (Normal(0.5, min_scale=2) is fine)
        if self.scale_mode in ("learned", "per_dim") and self.init_scale <= self.min_scale:
            raise InputError(
                f"init_scale ({init_scale}) must be larger than min_scale ({min_scale}); "
                "raise init_scale or lower min_scale"
            )

    # -- family-specific --------------------------------------------------------------
    def base(self, loc: torch.Tensor, scale: torch.Tensor) -> dist.TorchDistribution:
        """Per-element distribution with the given location and scale."""
        raise NotImplementedError

    def optimal_scale(self, x: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
        """Maximum-likelihood global scale of ``x`` given ``loc`` (for ``"optimal"``)."""
        raise NotImplementedError(
            f"likelihood {self.name!r} does not define optimal_scale; "
            "use another scale mode"
        )

    # -- hooks ------------------------------------------------------------------------
    def output_multiplier(self) -> int:
        """2 for a ``predicted`` scale (a location and a raw scale per dimension), else 1."""
        return 2 if self.scale_mode == "predicted" else 1

    def _prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        loc = x.new_tensor(math.log(self.prior_median))
        return dist.LogNormal(loc, x.new_tensor(self.prior_log_sd))

    #: the Pyro parameters a scale mode creates (:meth:`scale_params`)
    SCALE_PARAMS: ClassVar[dict[str, tuple[str, ...]]] = {
        "learned": ("scale",),
        "per_dim": ("scale",),
        "bayesian": ("scale_q_loc", "scale_q_sd"),
    }

    def scale_params(self) -> tuple[str, ...]:
        """The scale's Pyro parameters, by scale mode (:data:`SCALE_PARAMS`).

        ``("scale",)`` for a learned or per-dimension scale, the guide's
        ``("scale_q_loc", "scale_q_sd")`` for a Bayesian one, none otherwise.
        """
        return self.SCALE_PARAMS.get(self.scale_mode, ())

    def model_scale(self, data_dim: int, x: torch.Tensor) -> torch.Tensor | None:
        """The scale for the model, by scale mode.

        ``fixed``: the number as a tensor; ``learned`` / ``per_dim``: the
        ``pyro.param`` ``"scale"`` (shape ``()`` / ``(data_dim,)``, bounded below by
        ``min_scale``); ``bayesian``: a ``pyro.sample`` ``"scale"`` from the
        LogNormal prior; ``predicted`` / ``optimal``: None (computed in
        :meth:`observation`).
        """
        mode = self.scale_mode
        if mode == "fixed":
            return x.new_tensor(self.fixed_scale)
        if mode in ("learned", "per_dim"):
            shape = () if mode == "learned" else (data_dim,)
            init = x.new_full(shape, self.init_scale)
            return pyro.param("scale", init, constraint=constraints.greater_than(self.min_scale))
        if mode == "bayesian":
            return pyro.sample("scale", self._prior(x))
        return None  # predicted / optimal: computed in observation()

    def guide_scale(self, data_dim: int, x: torch.Tensor) -> None:
        """For ``bayesian``: sample ``"scale"`` from the LogNormal posterior; else nothing.

        Its parameters are ``scale_q_loc`` (initially ``log(init_scale)``) and
        ``scale_q_sd`` (initially 0.1).
        """
        if self.scale_mode == "bayesian":
            q_loc = pyro.param("scale_q_loc", x.new_tensor(math.log(self.init_scale)))
            q_sd = pyro.param(
                "scale_q_sd", x.new_tensor(0.1), constraint=constraints.positive
            )
            pyro.sample("scale", dist.LogNormal(q_loc, q_sd))

    def raw_location(self, mean):
        """The location is the decoder's output itself: ``mean``."""
        return mean

    def observation(self, out, scale, x):
        """:meth:`base` at the decoder mean, as one event over the ``d`` dimensions.

        With a ``predicted`` scale, ``out`` holds the mean and a raw scale, mapped to
        ``min_scale + softplus(raw)``; with ``optimal``, the scale is
        :meth:`optimal_scale` of the batch at the detached mean, clipped below at
        ``min_scale``; otherwise it is ``scale`` from :meth:`model_scale`.
        """
        d = x.shape[-1]
        if self.scale_mode == "predicted":
            loc, raw = out[..., :d], out[..., d:]
            scale = self.min_scale + F.softplus(raw)
        else:
            loc = out
            if self.scale_mode == "optimal":
                scale = self.optimal_scale(x, loc.detach()).clamp_min(self.min_scale)
        return self.base(loc, scale).to_event(1)

    def _run_line(self, d, scale):
        if self.scale_mode not in GLOBAL_SCALE_MODES:
            what = _NOT_GLOBAL.get(self.scale_mode, f"scale mode {self.scale_mode!r}")
            return None, f"{what}: recon is not a function of the summed loss alone"
        if not (_finite(scale) and float(scale) > 0) or d is None:
            return None, "scale or data dimension unknown"
        line = self.recon_line(int(d), float(scale))
        return line, "" if line is not None else self.line_reason

    def describe(self) -> dict[str, Any]:
        """JSON-ready description, adding ``scale`` (number or mode) and ``min_scale``."""
        info = super().describe()
        info["scale"] = self.fixed_scale if self.scale_mode == "fixed" else self.scale_mode
        info["min_scale"] = self.min_scale
        return info

    def __repr__(self) -> str:
        scale = self.fixed_scale if self.scale_mode == "fixed" else repr(self.scale_mode)
        return f"{type(self).__name__}(scale={scale})"
