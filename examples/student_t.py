r"""A user-defined likelihood in one file, outside the package: Student-t observations.

The class states its facts (loss, scale symbol, no reconstruction line) and its
option ``df``; nothing inside ``vaelik`` names it. Use it by its ``module:Class``
name from the repository root, with its option::

    vaelik train --likelihood examples.student_t:StudentT --lik-opt df=4 --scale learned

or, once imported (or published as a ``vaelik.likelihoods`` entry point), by its
``name`` ``"student-t"``. See ``docs/extending.md``.

.. math::
    \log p(x \mid z) = \sum_j \log \mathrm{St}(x_j;\ \nu, \hat x_j, \sigma)

Its equivalent loss is reported as MSE (the Student-t with ν → ∞ is the Normal).

Run ``python examples/student_t.py`` for a two-epoch fit on the bundled digits.
"""

from __future__ import annotations

import pyro.distributions as dist

from vaelik.models import LocationScaleLikelihood
from vaelik.validate import check_positive


class StudentT(LocationScaleLikelihood):
    """Student-t with ``df`` degrees of freedom around the decoder mean.

    Parameters
    ----------
    scale : float or str
        A fixed scale or a scale mode (``"learned"``, ``"per_dim"``,
        ``"predicted"``, ``"bayesian"``); ``"optimal"`` is not available
        (no closed-form ML scale).
    df : float
        Degrees of freedom ν > 0 (fixed, not learned).
    **kwargs
        ``min_scale``, ``init_scale``, ... of :class:`LocationScaleLikelihood`.
    """

    name = "student-t"
    label = "Student-t"
    loss_name = "mse"  # reported loss: squared error; summed over d it is the SSE
    scale_symbol = "σ"
    scale_power = None  # a learned σ has no closed-form target (it is not √MSE)
    options = ("df",)
    line_reason = "log p sums log(1 + (x - x̂)²/(ν σ²)) per element: not a line in the SSE"
    point_estimate = "loc"

    def __init__(self, scale="learned", *, df: float = 3.0, **kwargs) -> None:
        super().__init__(scale, **kwargs)
        self.df = check_positive("df", df)

    def base(self, loc, scale):
        return dist.StudentT(loc.new_tensor(self.df), loc, scale)


if __name__ == "__main__":
    from vaelik.inference import TrainConfig, fit

    result = fit(
        TrainConfig(data="digits", likelihood="student-t", scale="learned", init_scale=0.3,
                    epochs=2, iwae_samples=50),
        progress=False,
    )
    print(result.metrics.to_string(index=False))
