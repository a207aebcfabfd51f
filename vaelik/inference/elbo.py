"""The ELBO estimators offered by ``--elbo``, all Pyro's own."""

from __future__ import annotations

import pyro.infer

from vaelik.errors import InputError

__all__ = ["make_elbo"]


class _JitTraceMeanField_ELBO(pyro.infer.JitTraceMeanField_ELBO):
    """``JitTraceMeanField_ELBO`` that traces once.

    Pyro 1.9.2 tests ``self._loss_and_surrogate_loss`` but caches the compiled
    function as ``self._differentiable_loss``, so it re-traces on every step
    (~8x slower than the non-JIT estimator). Pointing the tested attribute at
    the cached function after the first call restores the intended caching.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs):
        loss = super().differentiable_loss(model, guide, *args, **kwargs)
        if getattr(self, "_loss_and_surrogate_loss", None) is None:
            self._loss_and_surrogate_loss = self._differentiable_loss
        return loss


def make_elbo(name: str, num_particles: int = 1) -> pyro.infer.ELBO:
    """Build an ELBO estimator by its ``--elbo`` name.

    Parameters
    ----------
    name : {"trace", "meanfield", "jit-trace", "jit-meanfield"}
        ``Trace_ELBO`` (Monte Carlo KL), ``TraceMeanField_ELBO`` (analytic KL
        where torch has it), and their JIT-traced variants.
    num_particles : int
        Samples of z per data point, vectorised.
    """
    common = {"num_particles": num_particles, "vectorize_particles": num_particles > 1,
              "max_plate_nesting": 1}
    if name == "trace":
        return pyro.infer.Trace_ELBO(**common)
    if name == "meanfield":
        return pyro.infer.TraceMeanField_ELBO(**common)
    if name == "jit-trace":
        return pyro.infer.JitTrace_ELBO(ignore_jit_warnings=True, **common)
    if name == "jit-meanfield":
        return _JitTraceMeanField_ELBO(ignore_jit_warnings=True, **common)
    raise InputError(
        f"unknown elbo {name!r}; choose one of: trace, meanfield, jit-trace, jit-meanfield"
    )

