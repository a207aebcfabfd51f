r"""Early stopping on the validation ELBO, and the best epoch's parameters.

After every epoch the validation ELBO :math:`v_t` (nats per point,
``metrics.csv`` split ``val``) updates an exponential moving average

.. math::
    s_1 = v_1, \qquad s_t = s_{t-1} + \alpha\,(v_t - s_{t-1}), \qquad \alpha = 0.3

(:data:`SMOOTHING`). The epoch **improves** when the average beats the best
average so far,

.. math::
    s_t > s_\mathrm{best} + \delta, \qquad
    \delta = 10^{-4} \cdot \max(1, |s_\mathrm{best}|) \text{ nats per point}

(:func:`improves`, :data:`MIN_IMPROVEMENT`: a relative 10⁻⁴, at least 10⁻⁴
nats). After ``patience`` epochs in a row without improvement the run stops
(``patience = 0``: never).

Why an average: even with the same z draws every epoch (common random numbers,
:func:`vaelik.inference.svi.epoch_metrics`) the parameters themselves jitter
from epoch to epoch with the minibatch noise, by about ±0.3 nats per point on
``ppca`` at ``--lr 1e-3``, while a fit that is still converging gains a few
hundredths of a nat per epoch. Compared raw, the best epoch is an upward
outlier that the next ``patience`` epochs rarely beat, and the run stopped while
its trend still rose (on ``ppca``: σ = 0.109 against the planted 0.1 at epoch
57). The average shrinks the jitter by a factor
:math:`\sqrt{\alpha/(2-\alpha)} \approx 0.42` and lets the trend show.

The **best epoch** (whose parameters are kept, as a CPU copy, and evaluated) is
the epoch with the highest raw validation ELBO. Without a validation split
there is nothing to compare: every epoch is the best (the last parameters are
the fitted ones) and the run never stops early.

The state (the average and its best, the best epoch, its ELBO and parameters,
the epochs without improvement, whether the run stopped) is part of the
checkpoint, so that a resumed run stops where the uninterrupted one stops.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["MIN_IMPROVEMENT", "SMOOTHING", "EarlyStopping", "SmoothedBest", "improves"]

#: relative improvement of the validation ELBO that counts (at least this many nats)
MIN_IMPROVEMENT = 1e-4
#: weight α of the newest epoch in the moving average of the validation ELBO
SMOOTHING = 0.3


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


class SmoothedBest:
    """The moving average of the validation ELBO, its best value and the epochs since.

    Examples
    --------
    >>> track = SmoothedBest()
    >>> [track.update(v) for v in (1.0, 2.0, 1.0, 1.0)]  # averages 1, 1.3, 1.21, 1.147
    [True, True, False, False]
    >>> track.flat, round(track.best, 3)
    (2, 1.3)
    """

    def __init__(self) -> None:
        self.value = -math.inf
        self.best = -math.inf
        self.flat = 0

    def update(self, elbo: float) -> bool:
        """Add one epoch's validation ELBO; True when the average improved (:func:`improves`)."""
        first = not math.isfinite(self.value)
        self.value = float(elbo) if first else self.value + SMOOTHING * (float(elbo) - self.value)
        if improves(self.value, self.best):
            self.best, self.flat = self.value, 0
            return True
        self.flat += 1
        return False

    def state_dict(self) -> dict[str, float]:
        """``smoothed``, ``best_smoothed``, ``flat`` (numbers only)."""
        return {"smoothed": self.value, "best_smoothed": self.best, "flat": self.flat}

    def load_state_dict(self, state: dict[str, Any], fallback: float, flat: int) -> None:
        """Put back a :meth:`state_dict`; a state from before the average starts at ``fallback``."""
        self.value = float(state.get("smoothed", fallback))
        self.best = float(state.get("best_smoothed", fallback))
        self.flat = int(state.get("flat", flat))


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
    track : SmoothedBest
        The moving average of the validation ELBO and its best value so far.
    bad_epochs : int
        Epochs since the moving average last improved.
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
        self.track = SmoothedBest()
        self.bad_epochs = 0
        self.stopped = False
        self.best_params: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_elbo: float | None, names: list[str],
               params: list[torch.Tensor]) -> bool:
        """Record ``epoch`` with its validation ELBO (None: no validation split); True: stop now."""
        if val_elbo is None:
            self.best_epoch, self.best_params = epoch, None
            return False
        val_elbo = float(val_elbo)
        if val_elbo > self.best_elbo:
            self.best_epoch, self.best_elbo = epoch, val_elbo
            self.best_params = {n: p.detach().cpu().clone() for n, p in zip(names, params, strict=True)}
        self.track.update(val_elbo)
        self.bad_epochs = self.track.flat
        self.stopped = self.stopped or (self.patience > 0 and self.bad_epochs >= self.patience)
        return self.stopped

    def summary(self, epochs_run: int) -> dict[str, Any]:
        """``best_epoch``, ``epochs_run``, ``stopped_early`` for ``eval.json``."""
        return {"best_epoch": self.best_epoch or epochs_run, "epochs_run": epochs_run,
                "stopped_early": bool(self.stopped)}

    def state_dict(self) -> dict[str, Any]:
        """The state, as tensors and numbers only (a checkpoint's ``best``)."""
        return {"epoch": self.best_epoch, "elbo": self.best_elbo, "bad_epochs": self.bad_epochs,
                **self.track.state_dict(),
                "stopped": int(self.stopped), "params": dict(self.best_params or {}),
                "has_params": int(self.best_params is not None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict`."""
        self.best_epoch, self.best_elbo = int(state["epoch"]), float(state["elbo"])
        self.bad_epochs, self.stopped = int(state["bad_epochs"]), bool(state["stopped"])
        # a checkpoint from before the moving average: it starts again from the best ELBO
        self.track.load_state_dict(state, self.best_elbo, self.bad_epochs)
        self.best_params = dict(state["params"]) if state["has_params"] else None
