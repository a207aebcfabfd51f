r"""Observation likelihoods: one small module per family, each stating its facts once.

A likelihood turns the decoder output into the ``pyro.distributions``
observation distribution :math:`p(x \mid z)`, owns its scale, and states the
facts the analysis needs (:meth:`Likelihood.facts`): its equivalent loss, its
scale symbol, what a learned scale converges to, and its reconstruction line.

* :mod:`~vaelik.models.likelihoods.base` -- :class:`Likelihood`,
  :class:`LocationScaleLikelihood` and the registry they fill;
* :mod:`~vaelik.models.likelihoods.normal` (σ, MSE), :mod:`~vaelik.models.likelihoods.laplace`
  (b, MAE), :mod:`~vaelik.models.likelihoods.bernoulli` (Bernoulli and continuous
  Bernoulli, BCE);
* :mod:`~vaelik.models.likelihoods.discretised` (discretised Normal, Laplace, logistic:
  log probability masses on L grey levels), on the binned laws of
  :mod:`~vaelik.models.likelihoods.binned`;
* :mod:`~vaelik.models.likelihoods.losses` -- the per-element losses;
* :mod:`~vaelik.models.likelihoods.registry` -- :func:`get_likelihood` by name, entry
  point (group ``vaelik.likelihoods``) or ``module:Class``.

A user adds a family in one file: subclass :class:`Likelihood` (or
:class:`LocationScaleLikelihood`) and state its facts; see ``docs/extending.md``.
"""

from vaelik.models.distributions import GlobalScaleLaplace, GlobalScaleNormal
from vaelik.models.likelihoods.base import (
    GLOBAL_SCALE_MODES,
    SCALE_MODES,
    Likelihood,
    LocationScaleLikelihood,
)
from vaelik.models.likelihoods.bernoulli import Bernoulli, ContinuousBernoulli
from vaelik.models.likelihoods.discretised import (
    DiscretisedLaplace,
    DiscretisedLikelihood,
    DiscretisedLogistic,
    DiscretisedNormal,
)
from vaelik.models.likelihoods.laplace import Laplace
from vaelik.models.likelihoods.losses import EPS, bce_loss, mae_loss, mse_loss
from vaelik.models.likelihoods.normal import Normal
from vaelik.models.likelihoods.registry import (
    ENTRY_POINT_GROUP,
    get_likelihood,
    likelihood_class,
    likelihood_names,
    likelihood_options,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EPS",
    "GLOBAL_SCALE_MODES",
    "SCALE_MODES",
    "Bernoulli",
    "ContinuousBernoulli",
    "DiscretisedLaplace",
    "DiscretisedLikelihood",
    "DiscretisedLogistic",
    "DiscretisedNormal",
    "GlobalScaleLaplace",
    "GlobalScaleNormal",
    "Laplace",
    "Likelihood",
    "LocationScaleLikelihood",
    "Normal",
    "bce_loss",
    "get_likelihood",
    "likelihood_class",
    "likelihood_names",
    "likelihood_options",
    "mae_loss",
    "mse_loss",
]
