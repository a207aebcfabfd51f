r"""Discretised likelihoods for data on L grey levels: Normal, Laplace and logistic (bits/dim > 0).

Images stored with 8 bits take the values :math:`k/255`; the bundled digits take
:math:`k/16`. A continuous density on such data can grow without bound on a
repeated value; a *discretised* family gives each of the L levels the mass of
its bin instead (:mod:`~vaelik.models.likelihoods.binned`), so
:math:`\log P(x \mid z)` is a log probability mass, :math:`\le 0`, and
bits/dim :math:`= -\log P(x)/(d \ln 2)` is positive and comparable across
families scored on the same levels (:func:`vaelik.rundir.family.bits_per_dim`).

``levels`` is the family's option (``--lik-opt levels=17``; default 256). The data
set's recorded number of levels reaches it through one place,
:meth:`DiscretisedLikelihood.data_options`. The data must lie on the grid
:math:`k/(L-1)`: :meth:`~DiscretisedLikelihood.check_data` refuses other data with
one line.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from vaelik.errors import InputError
from vaelik.models.likelihoods.base import LocationScaleLikelihood
from vaelik.models.likelihoods.binned import (
    BinnedLaplace,
    BinnedLocationScale,
    BinnedLogistic,
    BinnedNormal,
)
from vaelik.validate import check_int

__all__ = [
    "DEFAULT_LEVELS",
    "DiscretisedLaplace",
    "DiscretisedLikelihood",
    "DiscretisedLogistic",
    "DiscretisedNormal",
]

#: Levels of 8-bit data: the default of ``levels``.
DEFAULT_LEVELS = 256

#: How far (in units of the level spacing) a value may lie from the grid k/(L-1) (at least;
#: more where the data's float type cannot hold k/(L-1) that closely).
GRID_TOLERANCE = 1e-3

_CHECK_CHUNK = 1 << 22


class DiscretisedLikelihood(LocationScaleLikelihood):
    r"""A location-scale law binned onto ``levels`` values of [0, 1]; its log p is a log mass.

    .. math::
        \log P(x \mid z) = \sum_{j=1}^d \log\Big[F\Big(\frac{x_j + h - \hat x_j}{s_j}\Big)
        - F\Big(\frac{x_j - h - \hat x_j}{s_j}\Big)\Big], \qquad h = \frac{1}{2(L-1)},

    with open edge bins at 0 and 1 (:mod:`~vaelik.models.likelihoods.binned`).
    Subclasses name the binned law (``binned``).

    Parameters
    ----------
    scale : float or {"learned", "per_dim", "predicted", "bayesian"}
        As for :class:`~vaelik.models.likelihoods.base.LocationScaleLikelihood`;
        ``"optimal"`` is refused (a binned law has no closed-form ML scale).
    levels : int
        Number of levels L >= 2 of the data, values :math:`k/(L-1)` (256 for 8-bit
        data, 17 for the bundled digits). Set from the data's levels where the data
        record them (:meth:`data_options`).
    **kwargs
        ``min_scale``, ``init_scale``, ... of ``LocationScaleLikelihood``.
    """

    binned: ClassVar[type[BinnedLocationScale]] = BinnedNormal
    options = ("levels",)
    discrete = True
    scale_power = None  # the ML scale of a binned law is not a power of the loss (edge bins)
    point_estimate = "loc clamped to [0, 1]"
    unit_interval = True
    line_reason = ("log P sums log bin masses (CDF differences) per element: "
                   "not a line in the summed loss")

    def __init__(self, scale: float | str = "learned", *, levels: int = DEFAULT_LEVELS,
                 **kwargs: Any) -> None:
        if scale == "optimal":
            raise InputError(f"likelihood {self.name!r} has no optimal scale (a binned law has "
                             "no closed-form ML scale); use --scale learned, per_dim or predicted")
        super().__init__(scale, **kwargs)
        self.levels = check_int("levels", levels, 2)

    @classmethod
    def data_options(cls, levels: int | None) -> dict[str, Any]:
        """The options set from the data: ``{"levels": levels}`` (none when the data record none).

        The one place where a data set's recorded number of levels reaches the
        family; an explicit ``--lik-opt levels=N`` should override it.
        """
        return {} if levels is None else {"levels": int(levels)}

    def base(self, loc: torch.Tensor, scale: torch.Tensor) -> BinnedLocationScale:
        """The binned law per element, at the decoder output ``loc`` and ``scale``."""
        return self.binned(loc, scale, self.levels)

    def check_data(self, x: torch.Tensor) -> None:
        """Refuse data outside [0, 1] or off the grid :math:`k/(L-1)` with one line."""
        super().check_data(x)
        step = self.levels - 1
        flat = x.reshape(-1)
        # rounding of k/(L-1) in x's dtype, magnified by L-1, must not count as off the grid
        tol = max(GRID_TOLERANCE, 8 * step * torch.finfo(x.dtype).eps) if x.is_floating_point() \
            else GRID_TOLERANCE
        for start in range(0, flat.numel(), _CHECK_CHUNK):  # bounded memory on large data sets
            part = flat[start:start + _CHECK_CHUNK] * step
            off = (part - torch.round(part)).abs()
            if bool((off > tol).any()):
                bad = float(flat[start + int(off.argmax())])
                raise InputError(
                    f"likelihood {self.name!r} needs data on {self.levels} levels k/{step}, but "
                    f"{bad:.6g} is not one; pass --lik-opt levels=N with the data's number of levels"
                )

    def is_normalised_on(self, x: torch.Tensor) -> tuple[bool, str]:
        """Always a normalised mass on the checked data (:meth:`check_data`)."""
        return True, f"probability mass over {self.levels} levels"

    def __repr__(self) -> str:
        scale = self.fixed_scale if self.scale_mode == "fixed" else repr(self.scale_mode)
        return f"{type(self).__name__}(scale={scale}, levels={self.levels})"


class DiscretisedNormal(DiscretisedLikelihood):
    r"""Discretised Normal: :math:`F = \Phi`, scale σ, reported with the MSE.

    Examples
    --------
    >>> DiscretisedNormal(0.1, levels=17)
    DiscretisedNormal(scale=0.1, levels=17)
    """

    name = "dnormal"
    label = "discretised Normal"
    loss_name = "mse"
    scale_symbol = "σ"
    binned = BinnedNormal


class DiscretisedLaplace(DiscretisedLikelihood):
    r"""Discretised Laplace: :math:`F(u) = \tfrac12 e^{u}` (u ≤ 0), scale b, reported with the MAE."""

    name = "dlaplace"
    label = "discretised Laplace"
    loss_name = "mae"
    scale_symbol = "b"
    binned = BinnedLaplace


class DiscretisedLogistic(DiscretisedLikelihood):
    r"""Discretised logistic (as in PixelCNN++): :math:`F(u) = \sigma(u)`, scale s, reported with the MSE."""

    name = "dlogistic"
    label = "discretised logistic"
    loss_name = "mse"
    scale_symbol = "s"
    binned = BinnedLogistic
