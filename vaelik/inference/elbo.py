"""The ELBO estimators offered by ``--elbo``.

``trace``, ``meanfield`` and ``jit-trace`` are Pyro's own; ``jit-meanfield``
is :class:`MeanField_ELBO` with ``jit=True``: a ``pyro.infer.ELBO`` subclass
that computes :class:`pyro.infer.TraceMeanField_ELBO`'s loss (analytic KL)
from one guide trace and one replayed model trace, then records that
computation once with ``torch.jit.trace`` so a training step runs no Pyro
Python code at all (see ``docs/performance.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pyro.infer
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from torch.distributions import kl_divergence

from vaelik.errors import InputError
from vaelik.validate import check_choice

__all__ = ["ELBOS", "MeanField_ELBO", "make_elbo"]


class MeanField_ELBO(pyro.infer.ELBO):
    r"""Mean-field ELBO with analytic KL, computed from the explicit model and guide.

    For every latent site ``z`` of the guide and observed site ``x`` of the model

    .. math::
        -\mathrm{ELBO} = \sum_z s_z\,\mathrm{KL}\big(q(z)\,\|\,p(z)\big)
            - \sum_x s_x \log p(x \mid z), \qquad z \sim q

    where :math:`s` is the plate scale (``num_data / batch_size``). Where torch
    has no closed-form KL the site falls back to the sampled
    :math:`\log q(z) - \log p(z)`, as ``TraceMeanField_ELBO`` does. The
    operations, and so the gradients, are those of
    ``TraceMeanField_ELBO.differentiable_loss``; what is left out is Pyro's
    generic bookkeeping (``compute_log_prob`` of every site, score-function
    parts, shape checks) and its two host syncs per step (``torch_item`` of the
    loss). The loss returned is a 0-d tensor; nothing is read back to the host.

    Parameters
    ----------
    num_particles : int
        Samples of z per data point (vectorised with ``vectorize_particles``).
    vectorize_particles : bool
    max_plate_nesting : int
    jit : bool
        Record the loss once per (model, guide, argument shapes, keyword
        arguments) with ``torch.jit.trace`` and replay the recording afterwards.
        The model and guide must then have a static structure and create all
        their parameters on the first call. Recording runs the model and guide
        once, so it draws from the RNG once.

    Examples
    --------
    >>> elbo = MeanField_ELBO(max_plate_nesting=1)
    >>> loss = elbo.differentiable_loss(vae.model, vae.guide, x)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        max_plate_nesting: int = float("inf"),
        jit: bool = False,
    ) -> None:
        super().__init__(
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=max_plate_nesting,
        )
        self.jit = jit
        self._compiled: dict[Any, tuple[list[str], Callable]] = {}

    # -- one particle ----------------------------------------------------------------
    def _get_trace(self, model, guide, args, kwargs):
        guide_trace, model_trace = guide_and_model_traces(model, guide, *args, **kwargs)
        return model_trace, guide_trace

    @staticmethod
    def _particle_loss(model_trace, guide_trace) -> torch.Tensor:
        elbo = 0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                log_p = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
                elbo = elbo + scale_and_mask(log_p, site["scale"], site["mask"]).sum()
                continue
            q_site = guide_trace.nodes[name]
            kl = kl_or_estimate(q_site["fn"], site["fn"], q_site["value"])
            elbo = elbo - scale_and_mask(kl, q_site["scale"], q_site["mask"]).sum()
        for name, q_site in guide_trace.nodes.items():
            if q_site["type"] == "sample" and name not in model_trace.nodes:
                raise InputError(
                    f"guide site {name!r} is not in the model; MeanField_ELBO supports no "
                    "auxiliary guide sites"
                )
        return -elbo

    def _eager_loss(self, model, guide, args, kwargs) -> torch.Tensor:
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss + self._particle_loss(model_trace, guide_trace) / self.num_particles
        return loss

    # -- the ELBO interface ------------------------------------------------------------
    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative ELBO as a differentiable 0-d tensor (no host sync)."""
        if not self.jit:
            return self._eager_loss(model, guide, args, kwargs)
        key = _cache_key(model, guide, args, kwargs)
        entry = self._compiled.get(key)
        if entry is None:
            entry = self._compile(model, guide, args, kwargs)
            self._compiled[key] = entry
        names, compiled = entry
        store = dict(pyro.get_param_store().named_parameters())
        # the plain interpreter: the recorded aten ops run as they are and autograd
        # records them as in eager mode, so the gradients are bit-identical to the
        # eager loss; the optimising executor would re-derive the backward pass
        # (different rounding) and was slower at these sizes (docs/performance.md)
        with torch.jit.optimized_execution(False):
            return compiled(*[store[n] for n in names], *args)

    def _compile(self, model, guide, args, kwargs):
        # create every parameter, then record the loss with the unconstrained
        # parameters as explicit inputs (the tracer follows them by identity)
        with poutine.block(), poutine.trace(param_only=True) as capture:
            self._eager_loss(model, guide, args, kwargs)
        names = sorted(capture.trace.nodes)
        store = dict(pyro.get_param_store().named_parameters())
        n = len(names)

        def loss_fn(*params_and_args):
            return self._eager_loss(model, guide, params_and_args[n:], kwargs)

        inputs = tuple(store[name] for name in names) + tuple(args)
        with warnings.catch_warnings(), pyro.validation_enabled(False):
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            compiled = torch.jit.trace(loss_fn, inputs, check_trace=False)
        return names, compiled

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negative ELBO as a Python float."""
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Backpropagate the negative ELBO and return it as a float (used by ``pyro.infer.SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss)


def guide_and_model_traces(model, guide, *args, **kwargs):
    """Run ``guide`` and replay ``model`` on its samples: ``(guide_trace, model_trace)``."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        *args, **kwargs
    )
    return guide_trace, model_trace


def kl_or_estimate(q, p, value: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(q\|p)`, in closed form where torch has it, else estimated.

    The estimate is the one-sample :math:`\log q(v) - \log p(v)` at the guide's
    sample ``value``.
    """
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(value) - p.log_prob(value)


def _callable_key(fn) -> Any:
    # a bound method is a new object on every attribute access (so its id() is not
    # stable, which makes Pyro's JitTrace_ELBO re-trace); key on what it binds instead
    return (getattr(fn, "__func__", fn), getattr(fn, "__self__", None))


def _cache_key(model, guide, args, kwargs) -> Any:
    shapes = tuple(
        (tuple(a.shape), a.dtype, a.device) if torch.is_tensor(a) else ("value", a) for a in args
    )
    return _callable_key(model), _callable_key(guide), shapes, tuple(sorted(kwargs.items()))


def make_elbo(name: str, num_particles: int = 1) -> pyro.infer.ELBO:
    """Build an ELBO estimator by its ``--elbo`` name.

    Parameters
    ----------
    name : str
        A key of :data:`ELBOS`: ``trace``, ``meanfield``, ``jit-trace`` or
        ``jit-meanfield``; ``Trace_ELBO`` (Monte Carlo KL), ``TraceMeanField_ELBO`` (analytic KL
        where torch has it), Pyro's ``JitTrace_ELBO``, and
        :class:`MeanField_ELBO` recorded once with ``torch.jit.trace`` (the
        default: the same gradients as ``meanfield``, without Pyro's per-step
        Python overhead).
    num_particles : int
        Samples of z per data point, vectorised.

    Raises
    ------
    InputError
        If ``name`` is not a key of :data:`ELBOS` (the message lists them).
    """
    common = {"num_particles": num_particles, "vectorize_particles": num_particles > 1,
              "max_plate_nesting": 1}
    return ELBOS[check_choice("elbo", name, ELBOS)](**common)


#: ``--elbo`` name -> factory of the estimator (keyword arguments: ``num_particles``,
#: ``vectorize_particles``, ``max_plate_nesting``); the keys are the choices, in this order
ELBOS: dict[str, Callable[..., pyro.infer.ELBO]] = {
    "trace": pyro.infer.Trace_ELBO,
    "meanfield": pyro.infer.TraceMeanField_ELBO,
    "jit-trace": lambda **common: pyro.infer.JitTrace_ELBO(ignore_jit_warnings=True, **common),
    "jit-meanfield": lambda **common: MeanField_ELBO(jit=True, **common),
}
