r"""Observation likelihoods: one small class per family, and a registry by name.

A likelihood turns the decoder output into the ``pyro.distributions``
observation distribution :math:`p(x \mid z)` (batch shape ``(B,)``, event shape
``(d,)``), owns its scale (fixed, learned, per dimension, predicted, optimal or
Bayesian) and states its equivalent deterministic loss:

=====================  ===============  ====================================
family                 loss             exact relation (per example)
=====================  ===============  ====================================
``Normal(scale=σ)``    MSE              :math:`-\log p = \tfrac d2\log(2\pi\sigma^2) + \tfrac{\mathrm{SSE}}{2\sigma^2}`
``Laplace(scale=b)``   MAE              :math:`-\log p = d\log(2b) + \tfrac{\|x-\hat x\|_1}{b}`
``Bernoulli()``        BCE              :math:`-\log p = \sum_j \mathrm{BCE}(x_j, p_j)`
``ContinuousBernoulli``BCE              :math:`-\log p = \sum_j \mathrm{BCE}(x_j, \lambda_j) - \log C(\lambda_j)`
=====================  ===============  ====================================

A user adds a family by subclassing :class:`Likelihood` (or
:class:`LocationScaleLikelihood` for a family with a location and a scale) and
giving it a ``name``; the subclass is then available to :func:`get_likelihood`
and to ``vaelik train --likelihood NAME`` in the same process.
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
from vaelik.models.distributions import GlobalScaleLaplace, GlobalScaleNormal, is_global
from vaelik.validate import check_positive

__all__ = [
    "Likelihood",
    "LocationScaleLikelihood",
    "Normal",
    "Laplace",
    "GlobalScaleNormal",
    "GlobalScaleLaplace",
    "Bernoulli",
    "ContinuousBernoulli",
    "get_likelihood",
    "likelihood_names",
    "mse_loss",
    "mae_loss",
    "bce_loss",
    "SCALE_MODES",
]

#: Scale modes of location-scale families (a positive number means "fixed").
SCALE_MODES = ("learned", "per_dim", "predicted", "optimal", "bayesian")

_REGISTRY: dict[str, type[Likelihood]] = {}

#: probabilities are clamped to [EPS, 1 - EPS] before a BCE of a non-logit mean
EPS = 1e-6


# ----------------------------------------------------------------------------------------
# Equivalent deterministic losses, per element (as torch.nn.functional reports them with
# reduction="none").


def mse_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Squared error per element, :math:`(x - \\hat x)^2`."""
    return (x - x_hat).pow(2)


def mae_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Absolute error per element, :math:`|x - \\hat x|`."""
    return (x - x_hat).abs()


def bce_loss(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""Binary cross-entropy per element, :math:`-x\log p - (1-x)\log(1-p)`.

    ``p`` is clamped to ``[1e-6, 1 - 1e-6]`` so that a mean outside (0, 1), e.g. a
    Normal decoder's, still gives a finite number. ``x`` may lie outside [0, 1]
    (e.g. the synthetic ``ppca`` data, where BCE is reported but meaningless);
    ``F.binary_cross_entropy`` would raise there, so the formula is written out.
    """
    p = p.clamp(EPS, 1 - EPS)
    return -(x * torch.log(p) + (1 - x) * torch.log1p(-p))


_LOSSES = {"mse": mse_loss, "mae": mae_loss, "bce": bce_loss}


# ----------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------


class Likelihood:
    """Base class of an observation likelihood :math:`p(x \\mid z)`.

    Subclasses set the class attributes and implement :meth:`observation`.
    Defining ``name`` registers the subclass for :func:`get_likelihood`.

    Attributes
    ----------
    name : str
        Registry name (``--likelihood NAME``).
    loss_name : {"mse", "mae", "bce"}
        The deterministic loss this family is equivalent to.
    point_estimate : str
        Which statistic of the observation distribution the losses are computed
        from (``"loc"``, ``"probs"``, ``"mean"``); it is always ``.mean``.
    unit_interval : bool
        Whether the data must lie in [0, 1].
    """

    name: ClassVar[str] = ""
    loss_name: ClassVar[str] = "mse"
    point_estimate: ClassVar[str] = "mean"
    unit_interval: ClassVar[bool] = False
    scale_mode: str = "none"
    min_scale: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.name:
            _REGISTRY[cls.name] = cls

    # -- hooks used by the model and guide --------------------------------------------
    def output_multiplier(self) -> int:
        """How many values per data dimension the decoder must output."""
        return 1

    def model_scale(self, data_dim: int, x: torch.Tensor) -> torch.Tensor | None:
        """Global scale, called in the model *outside* the data plate."""
        return None

    def guide_scale(self, data_dim: int, x: torch.Tensor) -> None:
        """Variational posterior of a latent scale, called in the guide."""
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
        return _LOSSES[cls.loss_name](x, x_hat)

    def is_normalised_on(self, x: torch.Tensor) -> tuple[bool, str]:
        """Whether :math:`p(x \\mid z)` is a normalised density/mass on data like ``x``."""
        return True, "normalised density on this data"

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
        """JSON-ready description (registry name, scale mode, bound)."""
        return {"likelihood": self.name, "scale_mode": self.scale_mode}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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
        return 2 if self.scale_mode == "predicted" else 1

    def _prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        loc = x.new_tensor(math.log(self.prior_median))
        return dist.LogNormal(loc, x.new_tensor(self.prior_log_sd))

    def model_scale(self, data_dim: int, x: torch.Tensor) -> torch.Tensor | None:
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
        if self.scale_mode == "bayesian":
            q_loc = pyro.param("scale_q_loc", x.new_tensor(math.log(self.init_scale)))
            q_sd = pyro.param(
                "scale_q_sd", x.new_tensor(0.1), constraint=constraints.positive
            )
            pyro.sample("scale", dist.LogNormal(q_loc, q_sd))

    def observation(self, out, scale, x):
        d = x.shape[-1]
        if self.scale_mode == "predicted":
            loc, raw = out[..., :d], out[..., d:]
            scale = self.min_scale + F.softplus(raw)
        else:
            loc = out
            if self.scale_mode == "optimal":
                scale = self.optimal_scale(x, loc.detach()).clamp_min(self.min_scale)
        return self.base(loc, scale).to_event(1)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["scale"] = self.fixed_scale if self.scale_mode == "fixed" else self.scale_mode
        info["min_scale"] = self.min_scale
        return info

    def __repr__(self) -> str:
        scale = self.fixed_scale if self.scale_mode == "fixed" else repr(self.scale_mode)
        return f"{type(self).__name__}(scale={scale})"


class Normal(LocationScaleLikelihood):
    r"""Gaussian :math:`\mathcal N(x; \hat x, \sigma^2 I)`, equivalent to MSE (DESIGN C1).

    .. math::
        -\log p(x \mid z) = \frac d2 \log(2\pi\sigma^2) + \frac{\|x - \hat x\|^2}{2\sigma^2}

    so at fixed σ the negative log-likelihood is affine in the sum of squared
    errors with slope :math:`1/(2\sigma^2)`, and the maximum-likelihood σ given
    the decoder mean is :math:`\sigma^2 = \mathrm{SSE}/(N d)` (C2).

    Examples
    --------
    >>> lik = Normal(scale="learned")
    >>> get_likelihood("normal", scale=0.1).fixed_scale
    0.1
    """

    name = "normal"
    loss_name = "mse"
    point_estimate = "loc"

    def base(self, loc, scale):
        # a global scale (fixed, learned, Bayesian, optimal) stays unbroadcast; per-dim and
        # predicted scales vary over the data dimensions and take torch's Normal
        if is_global(scale):
            return GlobalScaleNormal(loc, scale)
        return dist.Normal(loc, scale)

    def optimal_scale(self, x, loc):
        # argmax_σ Σ log N(x; loc, σ²) = sqrt(mean (x - loc)²), over batch and dimensions
        return (x - loc).pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()


class Laplace(LocationScaleLikelihood):
    r"""Laplace :math:`\prod_j \frac{1}{2b} e^{-|x_j - \hat x_j|/b}`, equivalent to MAE (C4).

    .. math::
        -\log p(x \mid z) = d \log(2b) + \frac{\|x - \hat x\|_1}{b}

    The maximum-likelihood b given the decoder mean is the mean absolute error.
    """

    name = "laplace"
    loss_name = "mae"
    point_estimate = "loc"

    def base(self, loc, scale):
        if is_global(scale):
            return GlobalScaleLaplace(loc, scale)
        return dist.Laplace(loc, scale)

    def optimal_scale(self, x, loc):
        return (x - loc).abs().mean(dim=(-2, -1), keepdim=True)


class Bernoulli(Likelihood):
    r"""Bernoulli with decoder logits, equivalent to BCE (C5).

    .. math::
        -\log p(x \mid z) = \sum_j -x_j \log p_j - (1 - x_j)\log(1 - p_j)

    On grey-level data (x not in {0, 1}) this is still the BCE loss, but it is
    **not** a normalised density over [0, 1]; runs on such data are marked
    ``comparable: false``.
    """

    name = "bernoulli"
    loss_name = "bce"
    point_estimate = "probs"
    unit_interval = True

    def observation(self, out, scale, x):
        # validate_args=False: grey levels are outside the {0, 1} support on purpose (see C5).
        return dist.Bernoulli(logits=out, validate_args=False).to_event(1)

    def is_normalised_on(self, x):
        binary = bool(((x == 0) | (x == 1)).all())
        if binary:
            return True, "binary data: a normalised probability mass"
        return False, "Bernoulli on grey levels is not a normalised density (C5)"


class ContinuousBernoulli(Likelihood):
    r"""Continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019), a density on [0, 1].

    .. math::
        \log p(x \mid \lambda) = x \log\lambda + (1 - x)\log(1 - \lambda) + \log C(\lambda)

    Its mean is **not** λ: :math:`\lambda/(2\lambda - 1) + 1/(\log(1-\lambda) - \log\lambda)`;
    the losses are computed from that mean.
    """

    name = "cbernoulli"
    loss_name = "bce"
    point_estimate = "mean"
    unit_interval = True

    def observation(self, out, scale, x):
        return dist.ContinuousBernoulli(logits=out).to_event(1)


def likelihood_names() -> list[str]:
    """Registered likelihood names, including user subclasses defined so far."""
    return sorted(_REGISTRY)


def get_likelihood(name: str, **kwargs: Any) -> Likelihood:
    """Build a registered likelihood by name.

    Parameters
    ----------
    name : str
        ``"normal"``, ``"laplace"``, ``"bernoulli"``, ``"cbernoulli"`` or the
        ``name`` of a user subclass.
    **kwargs
        Passed to the class, e.g. ``scale="learned"``. ``scale=None`` is dropped.

    Raises
    ------
    InputError
        If the name is unknown (the message lists the known ones), or the family
        has no scale and one was given.
    """
    if name not in _REGISTRY and isinstance(name, str) and name.lower() in _REGISTRY:
        name = name.lower()  # "Normal" means "normal"
    if name not in _REGISTRY:
        raise InputError(
            f"unknown likelihood {name!r}; choose one of: {', '.join(likelihood_names())}"
        )
    cls = _REGISTRY[name]
    if kwargs.get("scale") is None:
        kwargs.pop("scale", None)
    if not issubclass(cls, LocationScaleLikelihood):
        if "scale" in kwargs:
            raise InputError(f"likelihood {name!r} has no scale; drop --scale {kwargs['scale']}")
        kwargs.pop("min_scale", None)
    return cls(**kwargs)
