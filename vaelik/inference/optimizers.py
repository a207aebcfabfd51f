"""The optimisers offered by ``--optimizer``: a registry of name -> factory.

Each factory takes the parameters (tensors, or torch param-group dicts) and the
learning rate and returns one ``torch.optim.Optimizer`` over all of them.
:func:`param_groups` splits a model's parameters into the two groups a fit
uses: the likelihood's scale parameters (their own learning rate,
``--scale-lr-factor`` times ``--lr``) and the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch

from vaelik.validate import check_choice

__all__ = ["OPTIMIZERS", "SCALE_GROUP", "make_optimizer", "param_groups"]

#: the ``"group"`` entry of the param group holding the likelihood's scale parameters
SCALE_GROUP = "scale"

Params = list[torch.Tensor] | list[dict[str, Any]]


def _adam(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _clipped_adam(params: Params, lr: float) -> torch.optim.Optimizer:
    from pyro.optim.clipped_adam import ClippedAdam

    return ClippedAdam(params, lr=lr, clip_norm=10.0)


#: ``--optimizer`` name -> factory ``(params, lr) -> optimiser``; the keys are the choices
OPTIMIZERS: dict[str, Callable[[Params, float], torch.optim.Optimizer]] = {
    "adam": _adam,                  # torch.optim.Adam
    "clipped-adam": _clipped_adam,  # Pyro's ClippedAdam, gradient norm clipped at 10
}


def param_groups(names: Sequence[str], params: Sequence[torch.Tensor], scale_names: Collection[str],
                 lr: float, scale_lr: float) -> list[dict[str, Any]]:
    """Torch param groups: the parameters ``scale_names`` at ``scale_lr``, the rest at ``lr``.

    Parameters
    ----------
    names, params : sequence
        The Pyro parameter names and their unconstrained tensors, in the same order.
    scale_names : collection of str
        The likelihood's scale parameters (:meth:`~vaelik.models.likelihoods.Likelihood.scale_params`);
        names the model does not have are ignored.
    lr, scale_lr : float
        The learning rates of the two groups.

    Returns
    -------
    list of dict
        ``{"params", "lr", "group", "names"}`` per group, ``group`` being ``"rest"``
        or :data:`SCALE_GROUP`; the scale group only when the model has scale
        parameters and ``scale_lr != lr`` (so a fixed-scale fit, or one with
        ``--scale-lr-factor 1``, has the one group of before it existed, and an
        older checkpoint resumes into it). Within a group the parameters keep the
        order of ``names``.
    """
    scale = set(scale_names) if scale_lr != lr else set()
    groups = []
    for group, rate, take in (("rest", lr, False), (SCALE_GROUP, scale_lr, True)):
        members = [(n, p) for n, p in zip(names, params, strict=True) if (n in scale) is take]
        if members or not take:
            groups.append({"params": [p for _, p in members], "lr": rate, "group": group,
                           "names": [n for n, _ in members]})
    return groups


def make_optimizer(name: str, params: Params, lr: float) -> torch.optim.Optimizer:
    """Build the optimiser registered as ``name`` over ``params``.

    ``params`` is a list of tensors or of torch param-group dicts (e.g. from
    :func:`param_groups`); ``lr`` is the default of groups that set none.

    Raises
    ------
    InputError
        If ``name`` is not a key of :data:`OPTIMIZERS` (the message lists them).
    """
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)](params, lr)
