r"""Learning-rate schedules offered by ``--lr-schedule``: a registry of name -> class.

A schedule acts on the optimiser's parameter groups once per epoch, after the
epoch's metrics (:func:`vaelik.inference.svi.train_epochs`); each group keeps
its own base rate (the rate it was created with, e.g. a separate rate for the
scale parameters), and a schedule multiplies it by a common factor.

``none``
    The rate stays as created.
``plateau``
    Reduce on a plateau of the validation ELBO: when half the early-stopping
    ``--patience`` (:data:`PLATEAU_PATIENCE` when the run never stops early)
    epochs in a row have not improved the moving average of the validation ELBO
    (the rule of early stopping, :class:`vaelik.inference.stopping.SmoothedBest`),
    every group's rate is multiplied by :data:`PLATEAU_FACTOR` and the count
    starts again: a run gets a lower rate before it stops. Without a validation
    split there is nothing to compare and the rate stays.
``cosine``
    Cosine annealing over ``--epochs`` E: epoch e (1-based) trains with
    :math:`\mathrm{lr}_e = \mathrm{lr}_0 \cdot \tfrac12\,(1 + \cos(\pi (e - 1) / E))`,
    from lr₀ at epoch 1 towards 0 at the end (early stopping may end it sooner).

The default is ``plateau`` (``docs/convergence.md`` has the measurements): a
constant rate leaves the minibatch noise in the parameters, and a fit that
creeps toward its optimum (a linear VAE) stalls short of it; halving the rate
where the validation ELBO stops rising trades a few epochs for the optimum. The state of a schedule
(its counters and rates) is part of the checkpoint: a resumed run continues it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaelik.inference.stopping import SmoothedBest
from vaelik.validate import check_choice

__all__ = ["LR_SCHEDULES", "PLATEAU_FACTOR", "PLATEAU_PATIENCE", "Schedule", "make_schedule"]

#: ``plateau``: the factor applied to every rate on a plateau
PLATEAU_FACTOR = 0.5
#: ``plateau``: epochs in a row without improvement of the moving average that make a plateau
#: when the run has no early stopping (``--patience 0``); else half the patience
PLATEAU_PATIENCE = 10


class Schedule:
    """``none``: the rates stay as created; the base of the other schedules.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Whose ``param_groups`` rates the schedule sets.
    epochs : int
        ``--epochs``, the most epochs the run trains.
    patience : int
        ``--patience`` of early stopping (0: none).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, patience: int = 0) -> None:
        self.optimizer, self.epochs = optimizer, int(epochs)
        self.patience = int(patience)
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.factor = 1.0

    def step(self, epoch: int, val_elbo: float | None) -> None:
        """Set the rates for the epoch after ``epoch``, given its validation ELBO (None: none)."""

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.factor

    def state_dict(self) -> dict[str, Any]:
        """The state, numbers only (a checkpoint's ``schedule``)."""
        return {"factor": self.factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict` and set the rates from it."""
        self.factor = float(state.get("factor", 1.0))
        self._apply()


class Plateau(Schedule):
    """``plateau``: multiply the rates by :data:`PLATEAU_FACTOR` after a flat stretch."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, patience: int = 0) -> None:
        super().__init__(optimizer, epochs, patience)
        self.track = SmoothedBest()
        self.flat_epochs = max(1, self.patience // 2) if self.patience else PLATEAU_PATIENCE

    def step(self, epoch: int, val_elbo: float | None) -> None:  # noqa: D102 - as the base
        if val_elbo is None or self.track.update(val_elbo):
            return
        if self.track.flat >= self.flat_epochs:
            self.factor *= PLATEAU_FACTOR
            self.track.flat = 0
            self._apply()

    def state_dict(self) -> dict[str, Any]:  # noqa: D102 - as the base
        return {"factor": self.factor, **self.track.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: D102 - as the base
        # a checkpoint from before the moving average holds the raw best as "best"
        self.track.load_state_dict(state, float(state.get("best", -math.inf)), int(state["flat"]))
        super().load_state_dict(state)


class Cosine(Schedule):
    """``cosine``: the rate of epoch e is lr₀ · (1 + cos(π (e − 1) / E)) / 2."""

    def step(self, epoch: int, val_elbo: float | None) -> None:  # noqa: D102 - as the base
        self.factor = 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))
        self._apply()


#: ``--lr-schedule`` name -> class ``(optimizer, epochs, patience)``; the keys are the choices
LR_SCHEDULES: dict[str, type[Schedule]] = {
    "none": Schedule,
    "plateau": Plateau,
    "cosine": Cosine,
}


def make_schedule(name: str, optimizer: torch.optim.Optimizer, epochs: int,
                  patience: int = 0) -> Schedule:
    """Build the schedule registered as ``name`` over ``optimizer``'s groups.

    Raises
    ------
    InputError
        If ``name`` is not a key of :data:`LR_SCHEDULES` (the message lists them).
    """
    return LR_SCHEDULES[check_choice("lr-schedule", name, LR_SCHEDULES)](optimizer, epochs, patience)
