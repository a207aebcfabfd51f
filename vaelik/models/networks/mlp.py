"""The multilayer perceptron: one hidden ReLU layer, or none (``hidden_dim=0``: affine).

Registered as ``"mlp"`` in :data:`vaelik.models.networks.NETWORKS`; see the
package docstring for the shape contract that :func:`build` fulfils.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vaelik.validate import check_int

__all__ = ["Encoder", "Decoder", "build"]


def _body(in_features: int, hidden_dim: int) -> tuple[nn.Module, int]:
    if hidden_dim == 0:
        return nn.Identity(), in_features
    return nn.Sequential(nn.Linear(in_features, hidden_dim), nn.ReLU()), hidden_dim


class Encoder(nn.Module):
    r"""Amortised diagonal-Normal encoder :math:`x \mapsto (\mu(x), s(x))`.

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
        r"""``(loc, scale)`` of :math:`q(z \mid x)` for ``x`` of shape ``(B, data_dim)``."""
        h = self.head(self.body(x))
        loc, raw = h[..., : self.latent_dim], h[..., self.latent_dim :]
        return loc, F.softplus(raw) + 1e-5


class Decoder(nn.Module):
    r"""Decoder :math:`z \mapsto` raw parameters of :math:`p(x \mid z)`.

    Outputs ``out_features`` raw values per example (a mean, logits, or a mean
    and a raw scale, as the likelihood asks); ``hidden_dim=0`` makes it affine.
    """

    def __init__(self, latent_dim: int, out_features: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.body, width = _body(latent_dim, hidden_dim)
        self.head = nn.Linear(width, out_features)
        #: floats of the widest tensor made for one z (the hidden layer, or the output)
        self.floats_per_sample = max(width, out_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Raw outputs of shape ``(..., out_features)`` for ``z`` of shape ``(..., latent_dim)``."""
        return self.head(self.body(z))


def build(
    data_shape: tuple[int, ...], latent_dim: int, out_multiplier: int, *, hidden_dim: int = 256
) -> tuple[Encoder, Decoder]:
    """Encoder and decoder MLPs for flat data of ``d = prod(data_shape)`` values.

    Parameters
    ----------
    data_shape : tuple of int
        Shape of one example; the MLP only uses its size ``d``.
    latent_dim : int
        Size k of z.
    out_multiplier : int
        Raw decoder outputs per data value (``likelihood.output_multiplier()``).
    hidden_dim : int
        Width of the hidden layer of both networks; ``0`` makes both affine.

    Examples
    --------
    >>> enc, dec = build((8, 8), latent_dim=2, out_multiplier=1, hidden_dim=16)
    >>> [t.shape for t in enc(torch.zeros(5, 64))], dec(torch.zeros(3, 5, 2)).shape
    ([torch.Size([5, 2]), torch.Size([5, 2])], torch.Size([3, 5, 64]))
    """
    check_int("hidden_dim", hidden_dim, 0)
    d = math.prod(data_shape)
    # the encoder is created first: the initial weights depend on this order (one seed)
    encoder = Encoder(d, latent_dim, hidden_dim)
    decoder = Decoder(latent_dim, d * out_multiplier, hidden_dim)
    return encoder, decoder
