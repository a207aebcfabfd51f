r"""Equivalent deterministic losses, per element.

Each is what ``torch.nn.functional`` reports with ``reduction="none"``.

A likelihood names one of these as its ``loss_name``; its labels (MSE, SSE ...) are in
:data:`vaelik.rundir.family.LOSS_LABELS`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["EPS", "LOSSES", "bce_loss", "mae_loss", "mse_loss"]

#: probabilities are clamped to [EPS, 1 - EPS] before a BCE of a non-logit mean
EPS = 1e-6


def mse_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    r"""Squared error per element, :math:`(x - \hat x)^2`."""
    return (x - x_hat).pow(2)


def mae_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    r"""Absolute error per element, :math:`|x - \hat x|`."""
    return (x - x_hat).abs()


def bce_loss(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""Binary cross-entropy per element, :math:`-x\log p - (1-x)\log(1-p)`.

    ``p`` is clamped to ``[1e-6, 1 - 1e-6]`` so that a mean outside (0, 1), e.g. a
    Normal decoder's, still gives a finite number. ``x`` may lie outside [0, 1]
    (e.g. the synthetic ``ppca`` data, where BCE is reported but meaningless);
    ``F.binary_cross_entropy`` would raise there, so the formula is written out.
    """
    p = p.clamp(EPS, 1 - EPS)
    return -(x * torch.log(p) + (1 - x) * torch.log1p(-p))


#: The losses by name (the ``loss_name`` of a likelihood, the eval.json / metrics.csv key).
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_loss,
    "mae": mae_loss,
    "bce": bce_loss,
}
