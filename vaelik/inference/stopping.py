r"""Early stopping on the validation ELBO, and the best epoch's parameters.

After every epoch the validation ELBO (nats per point, ``metrics.csv`` split
``val``) is compared with the best so far. The epoch **improves** when

.. math::
    \mathrm{ELBO}_\mathrm{val} > \mathrm{best} + \delta, \qquad
    \delta = 10^{-4} \cdot \max(1, |\mathrm{best}|) \text{ nats per point}

(:data:`MIN_IMPROVEMENT`: a relative 10⁻⁴, at least 10⁻⁴ nats); the first epoch
always improves. An improving epoch becomes the best: its parameters are kept
(a copy on the CPU). After ``patience`` epochs in a row without improvement the
run stops (``patience = 0``: never). Without a validation split there is nothing
to compare: every epoch is the best (the last parameters are the fitted ones)
and the run never stops early.

The state (best epoch, its ELBO and parameters, the epochs without improvement,
whether the run stopped) is part of the checkpoint, so that a resumed run stops
where the uninterrupted one stops.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["MIN_IMPROVEMENT", "EarlyStopping", "improves"]

#: relative improvement of the validation ELBO that counts (at least this many nats)
MIN_IMPROVEMENT = 1e-4


def improves(elbo: float, best: float) -> bool:
    """Whether a validation ELBO ``elbo`` improves on ``best`` (the rule above).

    Examples
    --------
    >>> improves(-100.02, -100.0), improves(-99.98, -100.0), improves(0.5, -math.inf)
    (False, True, True)
    """
    if not math.isfinite(best):
        return True
    return elbo > best + MIN_IMPROVEMENT * max(1.0, abs(best))


class EarlyStopping:
    """The early-stopping counters and the best epoch's parameters.

    Parameters
    ----------
    patience : int
        Epochs in a row without improvement after which the run stops; 0: never.

    Attributes
    ----------
    best_epoch : int
        The best epoch so far (1-based; 0 before the first).
    best_elbo : float
        Its validation ELBO, nats per point (``-inf`` without a validation split).
    bad_epochs : int
        Epochs since the best one.
    stopped : bool
        Whether the run stopped early.
    best_params : dict of str to torch.Tensor or None
        The best epoch's unconstrained parameters by name (CPU copies); None
        when the last parameters are the best (no validation split).
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best_epoch = 0
        self.best_elbo = -math.inf
        self.bad_epochs = 0
        self.stopped = False
        self.best_params: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_elbo: float | None, names: list[str],
               params: list[torch.Tensor]) -> bool:
        """Record ``epoch`` with its validation ELBO (None: no validation split); True: stop now."""
        if val_elbo is None:
            self.best_epoch, self.best_params = epoch, None
            return False
        if improves(val_elbo, self.best_elbo):
            self.best_epoch, self.best_elbo, self.bad_epochs = epoch, float(val_elbo), 0
            self.best_params = {n: p.detach().cpu().clone() for n, p in zip(names, params, strict=True)}
        else:
            self.bad_epochs += 1
            self.stopped = self.patience > 0 and self.bad_epochs >= self.patience
        return self.stopped

    def summary(self, epochs_run: int) -> dict[str, Any]:
        """``best_epoch``, ``epochs_run``, ``stopped_early`` for ``eval.json``."""
        return {"best_epoch": self.best_epoch or epochs_run, "epochs_run": epochs_run,
                "stopped_early": bool(self.stopped)}

    def state_dict(self) -> dict[str, Any]:
        """The state, as tensors and numbers only (a checkpoint's ``best``)."""
        return {"epoch": self.best_epoch, "elbo": self.best_elbo, "bad_epochs": self.bad_epochs,
                "stopped": int(self.stopped), "params": dict(self.best_params or {}),
                "has_params": int(self.best_params is not None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict`."""
        self.best_epoch, self.best_elbo = int(state["epoch"]), float(state["elbo"])
        self.bad_epochs, self.stopped = int(state["bad_epochs"]), bool(state["stopped"])
        self.best_params = dict(state["params"]) if state["has_params"] else None
