r"""The Normal likelihood: the MSE loss with a scale σ (claims C1, C2, C3)."""

from __future__ import annotations

import math

import pyro.distributions as dist

from vaelik.models.distributions import GlobalScaleNormal, is_global
from vaelik.models.likelihoods.base import LocationScaleLikelihood

__all__ = ["Normal"]


class Normal(LocationScaleLikelihood):
    r"""Gaussian :math:`\mathcal N(x; \hat x, \sigma^2 I)`, equivalent to MSE (DESIGN C1).

    .. math::
        \log p(x \mid z) = -\frac d2 \log(2\pi\sigma^2) - \frac{\|x - \hat x\|^2}{2\sigma^2}

    so at one σ the reconstruction term is affine in the sum of squared errors
    (:meth:`recon_line`), and the maximum-likelihood σ given the decoder mean is
    :math:`\sigma^2 = \mathrm{SSE}/(N d) = \mathrm{MSE}` (C2: σ²/MSE → 1).

    Examples
    --------
    >>> Normal(scale=0.1).fixed_scale
    0.1
    >>> Normal(0.5).recon_line(d=2, scale=0.5)[0]
    -2.0
    """

    name = "normal"
    label = "Normal"
    loss_name = "mse"
    scale_symbol = "σ"
    scale_power = 2
    point_estimate = "loc"

    def base(self, loc, scale):
        """``Normal(loc, scale)`` per element; a global scale stays unbroadcast."""
        # a global scale (fixed, learned, Bayesian, optimal) stays unbroadcast; per-dim and
        # predicted scales vary over the data dimensions and take torch's Normal
        if is_global(scale):
            return GlobalScaleNormal(loc, scale)
        return dist.Normal(loc, scale)

    def optimal_scale(self, x, loc):
        r"""The root mean squared error, :math:`\hat\sigma = \sqrt{\tfrac{1}{Bd}\sum_{n,j} (x_{nj} - \hat x_{nj})^2}`."""
        # argmax_σ Σ log N(x; loc, σ²) = sqrt(mean (x - loc)²), over batch and dimensions
        return (x - loc).pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()

    def recon_line(self, d, scale):
        r"""Slope :math:`-1/(2\sigma^2)` and intercept :math:`-\tfrac d2\log(2\pi\sigma^2)` in the SSE."""
        var = float(scale) ** 2
        return -1.0 / (2 * var), -d / 2 * math.log(2 * math.pi * var)
