r"""The Laplace likelihood: the MAE loss with a scale b (claim C4)."""

from __future__ import annotations

import math

import pyro.distributions as dist

from vaelik.models.distributions import GlobalScaleLaplace, is_global
from vaelik.models.likelihoods.base import LocationScaleLikelihood

__all__ = ["Laplace"]


class Laplace(LocationScaleLikelihood):
    r"""Laplace :math:`\prod_j \frac{1}{2b} e^{-|x_j - \hat x_j|/b}`, equivalent to MAE (C4).

    .. math::
        \log p(x \mid z) = -d \log(2b) - \frac{\|x - \hat x\|_1}{b}

    The maximum-likelihood b given the decoder mean is the mean absolute error
    (b/MAE → 1).

    Examples
    --------
    >>> Laplace(0.5).recon_line(d=3, scale=0.5)
    (-2.0, -0.0)
    """

    name = "laplace"
    label = "Laplace"
    loss_name = "mae"
    scale_symbol = "b"
    scale_power = 1
    point_estimate = "loc"

    def base(self, loc, scale):
        """``Laplace(loc, scale)`` per element; a global scale stays unbroadcast."""
        if is_global(scale):
            return GlobalScaleLaplace(loc, scale)
        return dist.Laplace(loc, scale)

    def optimal_scale(self, x, loc):
        r"""The mean absolute error, :math:`\hat b = \frac{1}{Bd}\sum_{n,j} |x_{nj} - \hat x_{nj}|`."""
        return (x - loc).abs().mean(dim=(-2, -1), keepdim=True)

    def recon_line(self, d, scale):
        r"""Slope :math:`-1/b` and intercept :math:`-d\log(2b)` in the summed absolute error."""
        b = float(scale)
        return -1.0 / b, -d * math.log(2 * b)
