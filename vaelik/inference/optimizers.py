"""The optimisers offered by ``--optimizer``: a registry of name -> factory.

Each factory takes the list of parameter tensors and the learning rate and
returns one ``torch.optim.Optimizer`` over all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vaelik.validate import check_choice

__all__ = ["OPTIMIZERS", "make_optimizer"]


def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _clipped_adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    from pyro.optim.clipped_adam import ClippedAdam

    return ClippedAdam(params, lr=lr, clip_norm=10.0)


#: ``--optimizer`` name -> factory ``(params, lr) -> optimiser``; the keys are the choices
OPTIMIZERS: dict[str, Callable[[list[torch.Tensor], float], torch.optim.Optimizer]] = {
    "adam": _adam,                  # torch.optim.Adam
    "clipped-adam": _clipped_adam,  # Pyro's ClippedAdam, gradient norm clipped at 10
}


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Build the optimiser registered as ``name`` over ``params``.

    Raises
    ------
    InputError
        If ``name`` is not a key of :data:`OPTIMIZERS` (the message lists them).
    """
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)](params, lr)
