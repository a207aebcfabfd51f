r"""Location-scale laws binned onto L grey levels of [0, 1]: probability masses, in log space.

The data lie on the grid :math:`x_k = k/(L-1)`, :math:`k = 0, \dots, L-1`. A
continuous law with CDF :math:`F` (location :math:`\mu`, scale :math:`s`,
standardised :math:`u = (y - \mu)/s`) gives level :math:`x` the mass of its bin of
half-width :math:`h = 1/(2(L-1))`,

.. math::
    P(x) = F\Big(\frac{x + h - \mu}{s}\Big) - F\Big(\frac{x - h - \mu}{s}\Big),
    \qquad P(0) = F\Big(\frac{h - \mu}{s}\Big), \qquad
    P(1) = 1 - F\Big(\frac{1 - h - \mu}{s}\Big),

with *open* edge bins (level 0 takes all the mass below :math:`h`, level 1 all
the mass above :math:`1 - h`), so the L masses sum to 1 for any :math:`\mu` and
:math:`s`. Drawing :math:`y` from the law, clamping it to [0, 1] and rounding it
to the nearest level has exactly these masses (:meth:`BinnedLocationScale.sample`).

Stability (every standard law here is symmetric, :math:`F(-u) = 1 - F(u)`):

* the difference of two CDFs is taken on the side of the mode where both are
  small: for a bin centred above :math:`\mu` it is :math:`F(-a') - F(-b')` with
  the standardised edges reflected, so it never subtracts two numbers close to 1;
* it is computed from log-CDFs (:func:`log_ndtr` from ``erfcx``/``erfc``,
  ``F.logsigmoid``, the Laplace closed form), :math:`\log(e^U - e^L) = U + \log(1 - e^{-(U - L)})` with
  :func:`log1mexp`, so tails far below float underflow stay finite;
* when :math:`\delta = U - L` falls below :func:`midpoint_threshold` (a bin much
  narrower than the scale, where :math:`\delta` is lost to rounding) the mass is
  the log density at the bin centre times the bin width,
  :math:`\log f(u) - \log s + \log 2h`; the threshold balances the rounding error
  of :math:`\delta` against the midpoint rule's error :math:`O(w^2)`,
  :math:`w = h/s`. (The Laplace law's kink makes that error :math:`O(w)` in the
  bin around its mode, which it computes exactly with ``expm1`` instead.)

Every branch is finite for every input, so gradients through ``torch.where`` stay
finite at the edges and for tiny scales.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch.distributions import constraints

__all__ = [
    "BinnedLaplace",
    "BinnedLocationScale",
    "BinnedLogistic",
    "BinnedNormal",
    "bin_half_width",
    "log1mexp",
    "log_ndtr",
    "midpoint_threshold",
]

_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_SQRT2 = math.sqrt(2.0)


def bin_half_width(levels: int) -> float:
    r"""Half the spacing of ``levels`` equally spaced values on [0, 1], :math:`h = 1/(2(L-1))`.

    >>> bin_half_width(17)
    0.03125
    """
    return 1.0 / (2 * (levels - 1))


def midpoint_threshold(dtype: torch.dtype) -> float:
    r"""Below this :math:`\delta = U - L` a bin's log mass is taken as log density × width.

    :math:`\delta` is a difference of two log-CDFs, each rounded at relative
    precision :math:`\epsilon`, so the exact formula errs by about
    :math:`\epsilon/\delta`; the midpoint rule errs by about
    :math:`w^2 (f''/f)/6 \approx \delta^2/24` (:math:`\delta \approx 2w` near the
    mode). They are equal at :math:`\delta = (24\epsilon)^{1/3}`: 0.014 in float32
    (both errors about 1e-5), 1.7e-5 in float64 (about 1e-11).
    """
    return (24 * torch.finfo(dtype).eps) ** (1.0 / 3.0)


def log_ndtr(u: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\Phi(u)`, with accurate gradients far in the lower tail.

    :math:`\log(\mathrm{erfcx}(-u/\sqrt2)/2) - u^2/2` for :math:`u < 0`
    (:math:`\mathrm{erfcx}(t) = e^{t^2}\mathrm{erfc}(t)` keeps the tail finite) and
    :math:`\log(1 - \mathrm{erfc}(u/\sqrt2)/2)` for :math:`u \ge 0`. Values equal
    ``torch.special.log_ndtr``; its gradient, :math:`\approx -u` in the tail, is
    right where that of ``torch.special.log_ndtr`` goes wrong in float32 below
    :math:`u \approx -10^3` (and NaN further out).
    """
    neg = u.clamp_max(0.0)
    left = torch.log(torch.special.erfcx(-neg / _SQRT2) / 2) - neg * neg / 2
    right = torch.log1p(-0.5 * torch.special.erfc(u.clamp_min(0.0) / _SQRT2))
    return torch.where(u < 0, left, right)


def log1mexp(delta: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 - e^{-\delta})` for :math:`\delta > 0`, accurate for small and large δ.

    ``log(-expm1(-δ))`` below :math:`\log 2`, ``log1p(-exp(-δ))`` above (Mächler, 2012).
    """
    return torch.where(delta < _LOG2, torch.log(-torch.expm1(-delta)), torch.log1p(-torch.exp(-delta)))


class BinnedLocationScale(dist.TorchDistribution):
    r"""A symmetric location-scale law binned onto ``levels`` values of [0, 1] (a mass per element).

    Subclasses give the standard law through :meth:`log_cdf`, :meth:`log_pdf`
    and :meth:`sample_standard`. Batch shape: ``broadcast(loc.shape,
    scale.shape)``, event shape ``()``; :meth:`log_prob` returns the log mass of
    each element (the module docstring gives the formula).

    Parameters
    ----------
    loc : torch.Tensor
        Location :math:`\mu` (any real, e.g. the decoder output).
    scale : torch.Tensor or float
        Scale :math:`s > 0`, broadcastable to ``loc``; kept at its own shape
        (``.scale``), as :mod:`vaelik.models.distributions` does for a global scale.
    levels : int
        Number of levels L >= 2; values ``k / (L - 1)``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval  # the grid within it is checked by the likelihood
    has_rsample = False

    def __init__(self, loc, scale, levels: int, validate_args=None) -> None:
        if not isinstance(loc, torch.Tensor):
            loc = torch.as_tensor(loc, dtype=torch.get_default_dtype())
        if not isinstance(scale, torch.Tensor):
            scale = loc.new_tensor(scale)
        self.loc, self.scale, self.levels = loc, scale, int(levels)
        batch_shape = torch.broadcast_shapes(loc.shape, scale.shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same law with ``loc`` expanded to ``batch_shape`` (the scale stays unbroadcast)."""
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale
        new.levels = self.levels
        super(BinnedLocationScale, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- the standard law (location 0, scale 1, symmetric) --------------------------------
    @staticmethod
    def log_cdf(u: torch.Tensor) -> torch.Tensor:
        r""":math:`\log F(u)` of the standard law, finite for every finite ``u``."""
        raise NotImplementedError

    @staticmethod
    def log_pdf(u: torch.Tensor) -> torch.Tensor:
        r""":math:`\log f(u)` of the standard law."""
        raise NotImplementedError

    @staticmethod
    def sample_standard(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """Draws of the standard law, of ``shape``, dtype and device of ``like``."""
        raise NotImplementedError

    # -- the binned law -------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        r"""The location clamped to [0, 1] (not the binned law's mean; the point estimate of the losses)."""
        return self.loc.clamp(0.0, 1.0).expand(self.batch_shape)

    @property
    def mode(self) -> torch.Tensor:
        """The level nearest to the clamped location (the median of the binned law)."""
        step = self.levels - 1
        return torch.round(self.loc.clamp(0.0, 1.0) * step).div(step).expand(self.batch_shape)

    def sample(self, sample_shape=()):
        """Draw from the continuous law, clamp to [0, 1], round to the nearest level."""
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            y = self.loc + self.scale * self.sample_standard(shape, self.loc)
            step = self.levels - 1
            return torch.round(y.clamp(0.0, 1.0) * step) / step

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r"""Log mass of the level ``value`` (one of :math:`k/(L-1)`), per element.

        Edge levels (within half a bin of 0 or 1) take the open edge bins; interior
        levels take the CDF difference over :math:`[x - h, x + h]`, in log space,
        with the midpoint rule where that difference is lost to rounding. Two
        log-CDF evaluations per element serve all three cases.
        """
        if self._validate_args:
            self._validate_sample(value)
        h = bin_half_width(self.levels)
        lo = (value - h - self.loc) / self.scale  # standardised bin edges
        hi = (value + h - self.loc) / self.scale
        bottom, top = value < h, value > 1 - h
        # reflect a bin centred above the location: F(hi) - F(lo) = F(-lo) - F(-hi);
        # the edge bins need log F(hi) = log P(y < h) and log F(-lo) = log P(y > 1 - h)
        above = lo + hi > 0
        upper = self.log_cdf(torch.where(~bottom & (top | above), -lo, hi))
        lower = self.log_cdf(torch.where(above, -hi, lo))
        interior = self.log_interior(lo, hi, upper, lower, math.log(2 * h) - torch.log(self.scale))
        return torch.where(bottom | top, upper, interior)

    def log_interior(self, lo: torch.Tensor, hi: torch.Tensor, upper: torch.Tensor,
                     lower: torch.Tensor, log_width: torch.Tensor) -> torch.Tensor:
        r""":math:`\log(F(hi) - F(lo))` of the standard law, from the reflected log-CDFs.

        ``upper`` and ``lower`` are :math:`\log F` of the bin's standardised edges on
        the side of the mode where both are small (reflected above it), so the mass
        is :math:`U + \log(1 - e^{-(U - L)})` (:func:`log1mexp`); where
        :math:`\delta = U - L` is below :func:`midpoint_threshold` it is the midpoint
        rule :math:`\log f(\tfrac{lo + hi}2) + \log(hi - lo)`. ``log_width`` is
        :math:`\log(hi - lo) = \log 2h - \log s`, passed in because ``hi - lo``
        loses digits to rounding.
        """
        delta = upper - lower
        tau = midpoint_threshold(delta.dtype)
        exact = upper + log1mexp(delta.clamp_min(tau))  # clamped: finite in the unused branch
        midpoint = self.log_pdf((lo + hi) / 2) + log_width
        return torch.where(delta > tau, exact, midpoint)


class BinnedNormal(BinnedLocationScale):
    r"""A Normal :math:`\mathcal N(\mu, \sigma^2)` binned onto ``levels`` values of [0, 1].

    Examples
    --------
    >>> import torch
    >>> d = BinnedNormal(torch.tensor(0.5), 0.1, levels=2)
    >>> d.log_prob(torch.tensor([0.0, 1.0])).exp()
    tensor([0.5000, 0.5000])
    """

    @staticmethod
    def log_cdf(u):
        r""":math:`\log\Phi(u)` (:func:`log_ndtr`)."""
        return log_ndtr(u)

    @staticmethod
    def log_pdf(u):
        r""":math:`-u^2/2 - \tfrac12\log 2\pi`."""
        return -0.5 * u * u - _HALF_LOG_2PI

    @staticmethod
    def sample_standard(shape, like):
        """Standard Normal draws."""
        return torch.randn(shape, dtype=like.dtype, device=like.device)

    @property
    def stddev(self) -> torch.Tensor:
        """The continuous law's σ, expanded to ``batch_shape``."""
        return self.scale.expand(self.batch_shape)


class BinnedLaplace(BinnedLocationScale):
    r"""A Laplace law with scale b binned onto ``levels`` values of [0, 1].

    .. math::
        \log F(u) = u - \log 2 \ (u \le 0), \qquad \log F(u) = \log(1 - \tfrac12 e^{-u}) \ (u > 0)
    """

    @staticmethod
    def log_cdf(u):
        r"""The Laplace log-CDF, each branch evaluated only where it is finite."""
        left = torch.clamp_max(u, 0.0) - _LOG2
        right = torch.log1p(-0.5 * torch.exp(-torch.clamp_min(u, 0.0)))
        return torch.where(u <= 0, left, right)

    @staticmethod
    def log_pdf(u):
        r""":math:`-|u| - \log 2`."""
        return -u.abs() - _LOG2

    def log_interior(self, lo, hi, upper, lower, log_width):
        r"""As the base class, but a bin around the kink at 0 is exact for every width.

        There :math:`F(hi) - F(lo) = -\tfrac12(\mathrm{expm1}(-hi) + \mathrm{expm1}(lo))`,
        without cancellation; the midpoint rule would err by :math:`O(w)` at the kink.
        """
        general = super().log_interior(lo, hi, upper, lower, log_width)
        around = (lo < 0) & (hi > 0)
        mass = -0.5 * (torch.expm1(-hi.clamp_min(0.0)) + torch.expm1(lo.clamp_max(0.0)))
        return torch.where(around, torch.log(torch.where(around, mass, torch.ones_like(mass))), general)

    @staticmethod
    def sample_standard(shape, like):
        """Standard Laplace draws."""
        return torch.distributions.Laplace(like.new_zeros(()), like.new_ones(())).sample(shape)

    @property
    def stddev(self) -> torch.Tensor:
        r"""The continuous law's :math:`\sqrt2\, b`, expanded to ``batch_shape``."""
        return (math.sqrt(2) * self.scale).expand(self.batch_shape)


class BinnedLogistic(BinnedLocationScale):
    r"""A logistic law with scale s, :math:`F(u) = \sigma(u)`, binned onto ``levels`` values of [0, 1].

    .. math::
        \log F(u) = \log\sigma(u), \qquad \log f(u) = \log\sigma(u) + \log\sigma(-u)
    """

    @staticmethod
    def log_cdf(u):
        r""":math:`\log\sigma(u)` (``F.logsigmoid``)."""
        return F.logsigmoid(u)

    @staticmethod
    def log_pdf(u):
        r""":math:`\log\sigma(u) + \log\sigma(-u)`."""
        return F.logsigmoid(u) + F.logsigmoid(-u)

    @staticmethod
    def sample_standard(shape, like):
        r"""Standard logistic draws, :math:`\log U - \log(1 - U)`."""
        p = torch.rand(shape, dtype=like.dtype, device=like.device)
        tiny = torch.finfo(like.dtype).tiny
        return torch.log(p.clamp_min(tiny)) - torch.log1p(-p)

    @property
    def stddev(self) -> torch.Tensor:
        r"""The continuous law's :math:`\pi s/\sqrt3`, expanded to ``batch_shape``."""
        return (math.pi / math.sqrt(3) * self.scale).expand(self.batch_shape)
