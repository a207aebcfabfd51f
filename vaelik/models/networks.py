"""Encoder and decoder networks (plain ``torch.nn`` modules, no Pyro inside)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Encoder", "Decoder"]


def _body(in_features: int, hidden_dim: int) -> tuple[nn.Module, int]:
    if hidden_dim == 0:
        return nn.Identity(), in_features
    return nn.Sequential(nn.Linear(in_features, hidden_dim), nn.ReLU()), hidden_dim


class Encoder(nn.Module):
    """Amortised diagonal-Normal encoder :math:`q(z \\mid x)`.

    Parameters
    ----------
    data_dim, latent_dim : int
        Sizes of x and z.
    hidden_dim : int
        Width of the one hidden ReLU layer; ``0`` makes the encoder linear.

    Returns (from ``forward``)
    -------
    loc, scale : torch.Tensor
        Each of shape ``(B, latent_dim)``; ``scale = softplus(raw) + 1e-5``.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.body, width = _body(data_dim, hidden_dim)
        # loc and the raw scale come from one fused layer (one matmul instead of two)
        self.head = nn.Linear(width, 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.head(self.body(x))
        loc, raw = h[..., : self.latent_dim], h[..., self.latent_dim :]
        return loc, F.softplus(raw) + 1e-5


class Decoder(nn.Module):
    """Decoder :math:`z \\mapsto` parameters of :math:`p(x \\mid z)`.

    Outputs ``out_features`` raw values per example (a mean, logits, or a mean
    and a raw scale, as the likelihood asks); ``hidden_dim=0`` makes it linear.
    """

    def __init__(self, latent_dim: int, out_features: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.body, width = _body(latent_dim, hidden_dim)
        self.head = nn.Linear(width, out_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
