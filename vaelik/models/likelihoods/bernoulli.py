r"""Likelihoods of data in [0, 1] without a scale: Bernoulli and continuous Bernoulli (C5)."""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from vaelik.models.likelihoods.base import Likelihood

__all__ = ["Bernoulli", "ContinuousBernoulli"]


class Bernoulli(Likelihood):
    r"""Bernoulli with decoder logits, equivalent to BCE (C5).

    .. math::
        \log p(x \mid z) = -\sum_j \big[-x_j \log p_j - (1 - x_j)\log(1 - p_j)\big]

    exactly minus the summed BCE (:meth:`recon_line`: slope −1, intercept 0). On
    grey-level data (x not in {0, 1}) this is still the BCE loss, but it is
    **not** a normalised density over [0, 1]; runs on such data are marked
    ``comparable: false``.
    """

    name = "bernoulli"
    label = "Bernoulli"
    loss_name = "bce"
    point_estimate = "probs"
    unit_interval = True
    discrete = True  # a mass over {0, 1}; normalised on binary data only (is_normalised_on)
    levels = 2

    def raw_location(self, mean):
        """The logits of the mean, the mean clipped to [0.001, 0.999] (a blank pixel: -6.9)."""
        return torch.logit(mean.clamp(1e-3, 1 - 1e-3))

    def observed_loss(self, obs, x):
        """BCE from the logits, exactly.

        Clamping the probabilities at 1e-6, as :meth:`loss` must for other families'
        means, changed −log p by up to 7 nats on a confidently wrong pixel.
        """
        logits = getattr(obs, "base_dist", obs).logits
        return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")

    def observation(self, out, scale, x):
        """Independent Bernoulli per dimension with logits ``out`` (``scale`` is unused).

        Its support is not validated, so grey levels in [0, 1] are accepted (C5).
        """
        # validate_args=False: grey levels are outside the {0, 1} support on purpose (see C5).
        return dist.Bernoulli(logits=out, validate_args=False).to_event(1)

    def recon_line(self, d, scale):
        """``log p = -BCE``: slope −1, intercept 0."""
        return -1.0, 0.0

    def is_normalised_on(self, x):
        """Normalised (a probability mass) only if every value of ``x`` is 0 or 1."""
        binary = bool(((x == 0) | (x == 1)).all())
        if binary:
            return True, "binary data: a normalised probability mass"
        return False, "Bernoulli on grey levels is not a normalised density (C5)"


class ContinuousBernoulli(Likelihood):
    r"""Continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019), a density on [0, 1].

    .. math::
        \log p(x \mid \lambda) = x \log\lambda + (1 - x)\log(1 - \lambda) + \log C(\lambda)

    Its mean is **not** λ: :math:`\lambda/(2\lambda - 1) + 1/(\log(1-\lambda) - \log\lambda)`;
    the losses are computed from that mean. The reconstruction term is not a line
    in the summed BCE: the log-normaliser :math:`\log C(\lambda)` varies with λ.
    """

    name = "cbernoulli"
    label = "continuous Bernoulli"
    loss_name = "bce"
    point_estimate = "mean"
    unit_interval = True
    line_reason = (
        "log p = -BCE + sum_j log C(lambda_j): the log-normaliser varies with lambda, "
        "so recon is not a line in the summed BCE (R^2 < 1)"
    )

    def observation(self, out, scale, x):
        r"""Independent continuous Bernoulli per dimension, :math:`\lambda` from logits ``out``.

        ``scale`` is unused.
        """
        return dist.ContinuousBernoulli(logits=out).to_event(1)
