r"""A user-defined likelihood, outside the package: Student-t observations.

Importing this file registers the family under the name ``"student-t"``; from
then on, in the same process, ``get_likelihood("student-t", scale="learned")``
and ``TrainConfig(likelihood="student-t", ...)`` accept it like a built-in one.
See ``docs/extending.md``.

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
    loss_name = "mse"
    point_estimate = "loc"

    def __init__(self, scale="learned", *, df: float = 3.0, **kwargs) -> None:
        super().__init__(scale, **kwargs)
        self.df = check_positive("df", df)

    def base(self, loc, scale):
        return dist.StudentT(loc.new_tensor(self.df), loc, scale)

    def describe(self):
        return {**super().describe(), "df": self.df}


if __name__ == "__main__":
    from vaelik.inference import TrainConfig, fit

    result = fit(
        TrainConfig(data="digits", likelihood="student-t", scale="learned", init_scale=0.3,
                    epochs=2, iwae_samples=50),
        progress=False,
    )
    print(result.metrics.to_string(index=False))
